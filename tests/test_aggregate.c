/*
 * test_aggregate.c - the aggregate stage's pure part: the derivation of a period's
 * figures from stock events, on cases computed by hand (each test says the sum), and
 * the two event readers.
 *
 * Every derivation is also checked against the stock report's own identity,
 * opening + received - consumed - losses + adjustments = stock on hand (quality
 * rule `balance`), since a derived report that broke it would be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hibus/aggregate.h"
#include "hibus/period.h"
#include "hibus/report.h"

static long day(const char *iso)
{
    struct period_date d;
    assert_true(period_date_parse(iso, &d));
    return period_day_number(d);
}

static struct agg_row ev(const char *iso, enum agg_kind k, long long q, int64_t seq)
{
    return (struct agg_row){.day = day(iso), .kind = k, .quantity = q, .seq = seq};
}

static struct agg_row evr(const char *iso, enum agg_kind k, long long q, const char *reason,
                          int64_t seq)
{
    return (struct agg_row){
        .day = day(iso), .kind = k, .quantity = q, .reason = reason, .seq = seq};
}

static void derive_month(const struct agg_row *rows, size_t n, const char *period,
                         struct agg_figures *f)
{
    struct period p;
    assert_true(period_parse(period, &p));
    agg_derive(rows, n, period_day_number(p.start), period_day_number(p.end), f);
    assert_int_equal(f->opening_balance + f->received - f->consumed - f->losses + f->adjustments,
                     f->stock_on_hand);
}

/* October 2026 (31 days). Opening 100 from a September receipt; issues of 60 (3rd)
 * and 40 (10th) empty the shelf; 50 arrive on the 20th. Balance at the end of each
 * day is 0 from the 10th to the 19th: 10 stock-out days. */
static void test_month_with_stockout(void **state)
{
    (void)state;
    struct agg_row rows[] = {
        ev("2026-09-20", AGG_RECEIPT, 100, 1),
        ev("2026-10-03", AGG_ISSUE, 60, 2),
        ev("2026-10-10", AGG_ISSUE, 40, 3),
        ev("2026-10-20", AGG_RECEIPT, 50, 4),
    };
    struct agg_figures f;
    derive_month(rows, 4, "202610", &f);
    assert_int_equal(f.opening_balance, 100);
    assert_int_equal(f.received, 50);
    assert_int_equal(f.consumed, 100);
    assert_int_equal(f.losses, 0);
    assert_int_equal(f.adjustments, 0);
    assert_int_equal(f.stock_on_hand, 50);
    assert_int_equal(f.stockout_days, 10);
    assert_false(f.counted);
    /* every event has its effect: the September one only moved the balance */
    assert_int_equal(f.n_effects, 4);
    assert_null(f.effects[0].measure);
    assert_int_equal(f.effects[0].balance, 100);
    assert_string_equal(f.effects[2].measure, "consumed");
    assert_int_equal(f.effects[2].balance, 0);
    agg_figures_free(&f);
}

/* A physical count that disagrees with the running balance: 200 received on the
 * 1st, 50 issued on the 15th (balance 150), counted 140 on the 20th (-10 to
 * adjustments), 20 issued on the 25th: stock on hand 120. */
static void test_count_disagrees(void **state)
{
    (void)state;
    struct agg_row rows[] = {
        ev("2026-10-01", AGG_RECEIPT, 200, 1),
        ev("2026-10-15", AGG_ISSUE, 50, 2),
        ev("2026-10-20", AGG_COUNT, 140, 3),
        ev("2026-10-25", AGG_ISSUE, 20, 4),
    };
    struct agg_figures f;
    derive_month(rows, 4, "202610", &f);
    assert_int_equal(f.opening_balance, 0);
    assert_int_equal(f.received, 200);
    assert_int_equal(f.consumed, 70);
    assert_int_equal(f.adjustments, -10);
    assert_int_equal(f.stock_on_hand, 120);
    assert_int_equal(f.stockout_days, 0);
    assert_true(f.counted);
    assert_int_equal(f.effects[2].amount, -10);
    assert_string_equal(f.effects[2].measure, "adjustments");
    agg_figures_free(&f);
}

/* Losses and signed adjustments; the shelf is empty on the 1st (nothing before),
 * so the 1st counts as a stock-out day; a balance below zero (an issue that the
 * records cannot cover) counts too. Opening 0; received 30 on the 2nd; lost 5 on
 * the 3rd; adjustment -5 on the 4th; adjustment +2 on the 5th; issued 30 on the
 * 6th: balance -8 from the 6th to the 30th (25 days) + the 1st = 26 days. */
static void test_losses_adjustments_negative(void **state)
{
    (void)state;
    struct agg_row rows[] = {
        ev("2026-11-02", AGG_RECEIPT, 30, 1),    ev("2026-11-03", AGG_LOSS, 5, 2),
        ev("2026-11-04", AGG_ADJUSTMENT, -5, 3), ev("2026-11-05", AGG_ADJUSTMENT, 2, 4),
        ev("2026-11-06", AGG_ISSUE, 30, 5),
    };
    struct agg_figures f;
    derive_month(rows, 5, "202611", &f);
    assert_int_equal(f.losses, 5);
    assert_int_equal(f.adjustments, -3);
    assert_int_equal(f.stock_on_hand, -8);
    assert_int_equal(f.stockout_days, 26);
    agg_figures_free(&f);
}

/* A late event for a closed period changes that period and the opening balance of
 * the next: periods chain (October's closing is November's opening), with and
 * without the late receipt of 25 on 31 October. */
static void test_late_event_chains(void **state)
{
    (void)state;
    struct agg_row before[] = {ev("2026-10-05", AGG_RECEIPT, 100, 1),
                               ev("2026-11-10", AGG_ISSUE, 30, 2)};
    struct agg_row after[] = {ev("2026-10-05", AGG_RECEIPT, 100, 1),
                              ev("2026-10-31", AGG_RECEIPT, 25, 3),
                              ev("2026-11-10", AGG_ISSUE, 30, 2)};
    struct agg_figures oct0, nov0, oct1, nov1;
    derive_month(before, 1, "202610", &oct0);
    derive_month(before, 2, "202611", &nov0);
    derive_month(after, 2, "202610", &oct1);
    derive_month(after, 3, "202611", &nov1);
    assert_int_equal(oct0.stock_on_hand, 100);
    assert_int_equal(oct1.stock_on_hand, 125);
    assert_int_equal(oct1.received, 125);
    assert_int_equal(nov0.opening_balance, oct0.stock_on_hand);
    assert_int_equal(nov1.opening_balance, oct1.stock_on_hand);
    assert_int_equal(nov1.stock_on_hand, 95);
    assert_int_equal(nov1.received, 0);
    agg_figures_free(&oct0);
    agg_figures_free(&nov0);
    agg_figures_free(&oct1);
    agg_figures_free(&nov1);
}

/* Period boundaries: the last day of September is opening balance, the first and
 * last days of October are in it. Same-day events apply in arrival order: a count
 * of 10 then an issue of 10 leaves 0 (a stock-out day); the other way round, 10. */
static void test_boundaries_and_same_day_order(void **state)
{
    (void)state;
    struct agg_row rows[] = {
        ev("2026-09-30", AGG_RECEIPT, 7, 1),
        ev("2026-10-01", AGG_RECEIPT, 3, 2),
        ev("2026-10-31", AGG_COUNT, 10, 3),
        ev("2026-10-31", AGG_ISSUE, 10, 4),
    };
    struct agg_figures f;
    derive_month(rows, 4, "202610", &f);
    assert_int_equal(f.opening_balance, 7);
    assert_int_equal(f.received, 3);
    assert_int_equal(f.consumed, 10);
    assert_int_equal(f.adjustments, 0);
    assert_int_equal(f.stock_on_hand, 0);
    assert_int_equal(f.stockout_days, 1);
    agg_figures_free(&f);

    struct agg_row swapped[] = {
        ev("2026-09-30", AGG_RECEIPT, 7, 1),
        ev("2026-10-01", AGG_RECEIPT, 3, 2),
        ev("2026-10-31", AGG_ISSUE, 10, 3),
        ev("2026-10-31", AGG_COUNT, 10, 4),
    };
    derive_month(swapped, 4, "202610", &f);
    assert_int_equal(f.adjustments, 10); /* counted 10 where the records said 0 */
    assert_int_equal(f.stock_on_hand, 10);
    assert_int_equal(f.stockout_days, 0);
    agg_figures_free(&f);
}

/* A history that starts with a count (the usual start when a facility begins to
 * record events): the count is the stock it had, not an adjustment of +800 from
 * nothing. Counted 800 on the 5th; 310 issued on the 15th; -10 adjusted on the
 * 16th: opening 800, stock on hand 480, no stock-out day. A later month opens at
 * 480. */
static void test_history_starts_with_a_count(void **state)
{
    (void)state;
    struct agg_row rows[] = {
        ev("2026-09-05", AGG_COUNT, 800, 1),
        ev("2026-09-15", AGG_ISSUE, 310, 2),
        ev("2026-09-16", AGG_ADJUSTMENT, -10, 3),
    };
    struct agg_figures f;
    derive_month(rows, 3, "202609", &f);
    assert_int_equal(f.opening_balance, 800);
    assert_int_equal(f.adjustments, -10);
    assert_int_equal(f.consumed, 310);
    assert_int_equal(f.stock_on_hand, 480);
    assert_int_equal(f.stockout_days, 0);
    assert_true(f.counted);
    assert_int_equal(f.effects[0].amount, 0);
    agg_figures_free(&f);
    derive_month(rows, 3, "202610", &f);
    assert_int_equal(f.opening_balance, 480);
    assert_int_equal(f.stock_on_hand, 480);
    agg_figures_free(&f);
}

/* No events at all up to the end: nothing but stock-out days. */
static void test_empty(void **state)
{
    (void)state;
    struct agg_figures f;
    derive_month(NULL, 0, "202602", &f);
    assert_int_equal(f.stock_on_hand, 0);
    assert_int_equal(f.stockout_days, 28);
    agg_figures_free(&f);
}

/* ---- readers ---- */

static struct config_aggregate reasons_cfg(void)
{
    static struct agg_reason reasons[] = {
        {"5b09202e-b8a7-4f77-9e0e-8156f8efc613", "Damage", false, AGG_LOSS},
        {"279d55bd-42e3-438c-a63d-9c021b185dae", "Clinic return", true, AGG_ADJUSTMENT},
        {"c1fc3cf3-da18-44b0-a220-77c985202e06", "Transfer Out", false, AGG_ADJUSTMENT},
        {"9b4b653a-f319-4a1b-bb80-3d6b4eeb4f2b", "Consumed", false, AGG_ISSUE},
    };
    struct config_aggregate a = {.on = true, .period_type = PERIOD_MONTHLY};
    a.reasons = reasons;
    a.n_reasons = sizeof reasons / sizeof reasons[0];
    return a;
}

static json_t *parse_fail(const char *reader, const char *body)
{
    struct config_aggregate a = reasons_cfg();
    struct agg_batch b;
    json_t *problems = json_array();
    assert_int_equal(agg_parse(reader, body, strlen(body), &a, 0, &b, problems), HIBUS_E_INVALID);
    assert_int_equal(b.n, 0);
    return problems;
}

static bool has_problem(const json_t *problems, const char *where, const char *needle)
{
    size_t i;
    const json_t *p;
    json_array_foreach(problems, i, p)
    {
        const char *w = json_string_value(json_object_get(p, "where"));
        const char *m = json_string_value(json_object_get(p, "message"));
        if ((where == NULL || (w != NULL && strcmp(w, where) == 0)) && m != NULL &&
            strstr(m, needle) != NULL)
            return true;
    }
    char *s = json_dumps(problems, JSON_INDENT(2));
    print_message("no problem at %s with \"%s\" in:\n%s\n", where ? where : "-", needle, s);
    free(s);
    return false;
}

static void test_generic_reader(void **state)
{
    (void)state;
    const char *body =
        "{\"events\": ["
        "{\"id\": \"e1\", \"facility\": \"FAC-0042\", \"commodity\": \"AMOX250\","
        " \"date\": \"2026-10-03\", \"kind\": \"receipt\", \"quantity\": 500.0},"
        "{\"id\": \"e2\", \"facility\": \"FAC-0042\", \"commodity\": \"AMOX250\","
        " \"date\": \"2026-10-31T22:30:00Z\", \"kind\": \"adjustment\", \"quantity\": -5,"
        " \"reason\": \"Expired\"},"
        "{\"id\": \"e3\", \"facility\": \"FAC-0042\", \"commodity\": \"ORS1L\","
        " \"date\": \"2026-11-01T01:30:00.250+03:00\", \"kind\": \"count\", \"quantity\": 0}]}";
    struct config_aggregate a = reasons_cfg();
    struct agg_batch b;
    json_t *problems = json_array();
    assert_int_equal(agg_parse("stock-event", body, strlen(body), &a, 0, &b, problems), HIBUS_OK);
    assert_int_equal(json_array_size(problems), 0);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.v[0].source_id, "e1");
    assert_int_equal(b.v[0].kind, AGG_RECEIPT);
    assert_int_equal(b.v[0].quantity, 500); /* written 500.0 */
    assert_int_equal(b.v[1].quantity, -5);
    assert_string_equal(b.v[1].reason, "Expired");
    assert_string_equal(b.v[2].date, "2026-11-01T01:30:00.250+03:00");
    assert_int_equal(b.v[2].kind, AGG_COUNT);
    agg_batch_free(&b);
    json_decref(problems);
}

static void test_generic_reader_problems(void **state)
{
    (void)state;
    json_t *p = parse_fail(
        "stock-event",
        "{\"events\": ["
        "{\"id\": \"e1\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-03\","
        " \"kind\": \"gift\", \"quantity\": 1},"
        "{\"id\": \"e2\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-03\","
        " \"kind\": \"issue\", \"quantity\": -4},"
        "{\"id\": \"e3\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-03\","
        " \"kind\": \"issue\", \"quantity\": 1.5},"
        "{\"id\": \"e4\", \"facility\": \"F\", \"commodity\": \"C\","
        " \"date\": \"2026-10-03T10:00:00\", \"kind\": \"issue\", \"quantity\": 1},"
        "{\"id\": \"e5\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-02-30\","
        " \"kind\": \"issue\", \"quantity\": 1, \"colour\": \"red\"},"
        "{\"id\": \"e6\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-04\","
        " \"kind\": \"issue\", \"quantity\": 1},"
        "{\"id\": \"e6\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-04\","
        " \"kind\": \"issue\", \"quantity\": 1},"
        "{\"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-04\","
        " \"kind\": \"issue\", \"quantity\": 1},"
        "{\"id\": \"e8\", \"facility\": \"F\", \"commodity\": \"C\", \"date\": \"2026-10-04\","
        " \"kind\": \"issue\", \"quantity\": 1e30}]}");
    assert_true(has_problem(p, "events[0]", "kind \"gift\""));
    assert_true(has_problem(p, "events[1]", "must not be negative"));
    assert_true(has_problem(p, "events[2]", "whole number, not a fraction (1.5)"));
    assert_true(has_problem(p, "events[3]", "with its offset"));
    assert_true(has_problem(p, "events[4]", "2026-02-30"));
    assert_true(has_problem(p, "events[4].colour", "unknown key"));
    assert_true(has_problem(p, "events[6]", "appears twice (first at events[5])"));
    assert_true(has_problem(p, "events[7]", "id is required"));
    assert_true(has_problem(p, "events[8]", "quantity 1e+30 is out of range"));
    json_decref(p);
    p = parse_fail("stock-event", "{\"events\": {}}");
    assert_true(has_problem(p, "events", "must be a list"));
    json_decref(p);
    p = parse_fail("stock-event", "[1]");
    assert_true(has_problem(p, "body", "must be a stock-event JSON object"));
    json_decref(p);
}

/* An OpenLMIS v3 stock event (shape of openlmis-stockmanagement's
 * stockEventDto.json): a receipt (sourceId), an issue (destinationId), a Damage
 * adjustment (a DEBIT reason counted as a loss), a physical inventory whose
 * difference is explained in part by a "Clinic return" adjustment. */
static const char openlmis_event[] =
    "{\"facilityId\": \"e6799d64-d10d-4011-b8c2-0e4d4a3f65ce\","
    " \"programId\": \"dce17f2e-af3e-40ad-8e00-3496adef44c3\","
    " \"signature\": \"nurse\", \"lineItems\": ["
    "{\"orderableId\": \"23819693-0670-4c4b-b400-28e009b0d8ff\", \"quantity\": 100,"
    " \"occurredDate\": \"2026-10-02\","
    " \"sourceId\": \"9f2cb5c8-a8e2-4bfb-a1b6-f3f2b0a4a1a1\"},"
    "{\"orderableId\": \"23819693-0670-4c4b-b400-28e009b0d8ff\", \"quantity\": 40,"
    " \"occurredDate\": \"2026-10-09\","
    " \"destinationId\": \"0bd3cd9c-3c2b-4bc4-a4ad-3fa0b8c12a3e\"},"
    "{\"orderableId\": \"23819693-0670-4c4b-b400-28e009b0d8ff\", \"quantity\": 3,"
    " \"occurredDate\": \"2026-10-12\","
    " \"reasonId\": \"5b09202e-b8a7-4f77-9e0e-8156f8efc613\"},"
    "{\"orderableId\": \"23819693-0670-4c4b-b400-28e009b0d8ff\", \"quantity\": 60,"
    " \"occurredDate\": \"2026-10-30\", \"lotId\": null, \"extraData\": {},"
    " \"stockAdjustments\": [{\"reasonId\": \"279d55bd-42e3-438c-a63d-9c021b185dae\","
    " \"quantity\": 2}]}]}";

static void test_openlmis_reader(void **state)
{
    (void)state;
    struct config_aggregate a = reasons_cfg();
    struct agg_batch b, again;
    json_t *problems = json_array();
    assert_int_equal(agg_parse("openlmis-stock-event", openlmis_event, strlen(openlmis_event), &a,
                               0, &b, problems),
                     HIBUS_OK);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.v[0].kind, AGG_RECEIPT);
    assert_int_equal(b.v[1].kind, AGG_ISSUE);
    assert_int_equal(b.v[2].kind, AGG_LOSS);
    assert_int_equal(b.v[2].quantity, 3);
    assert_string_equal(b.v[2].reason, "Damage");
    assert_int_equal(b.v[3].kind, AGG_ADJUSTMENT); /* the count's explained part */
    assert_int_equal(b.v[3].quantity, 2);
    assert_string_equal(b.v[3].reason, "Clinic return");
    assert_int_equal(b.v[4].kind, AGG_COUNT);
    assert_int_equal(b.v[4].quantity, 60);
    assert_string_equal(b.v[0].facility, "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce");
    assert_string_equal(b.v[0].commodity, "23819693-0670-4c4b-b400-28e009b0d8ff");
    /* the same event sent again gets the same source ids; without id or
     * documentNumber they are its content */
    assert_int_equal(agg_parse("openlmis-stock-event", openlmis_event, strlen(openlmis_event), &a,
                               0, &again, problems),
                     HIBUS_OK);
    for (size_t i = 0; i < b.n; i++)
        assert_string_equal(b.v[i].source_id, again.v[i].source_id);
    assert_true(strncmp(b.v[0].source_id, "content:", 8) == 0);
    assert_string_not_equal(b.v[3].source_id, b.v[4].source_id);
    agg_batch_free(&b);
    agg_batch_free(&again);

    /* with a documentNumber, that is the key */
    const char *doc = "{\"facilityId\": \"F\", \"programId\": \"P\", \"documentNumber\": \"D-7\","
                      " \"lineItems\": [{\"orderableId\": \"O\", \"quantity\": 1,"
                      " \"occurredDate\": \"2026-10-02\", \"sourceId\": \"S\"}]}";
    assert_int_equal(agg_parse("openlmis-stock-event", doc, strlen(doc), &a, 0, &b, problems),
                     HIBUS_OK);
    assert_string_equal(b.v[0].source_id, "document:F|D-7:0");
    agg_batch_free(&b);
    assert_int_equal(json_array_size(problems), 0);
    json_decref(problems);

    /* what the event makes of October: 100 in, 40 out, 3 lost, +2 returned, counted
     * 60 where the records said 59 */
    problems = json_array();
    assert_int_equal(agg_parse("openlmis-stock-event", openlmis_event, strlen(openlmis_event), &a,
                               0, &b, problems),
                     HIBUS_OK);
    json_decref(problems);
    struct agg_row rows[5];
    for (size_t i = 0; i < 5; i++)
        rows[i] = ev(b.v[i].date, b.v[i].kind, b.v[i].quantity, (int64_t)i);
    struct agg_figures f;
    derive_month(rows, 5, "202610", &f);
    assert_int_equal(f.received, 100);
    assert_int_equal(f.consumed, 40);
    assert_int_equal(f.losses, 3);
    assert_int_equal(f.adjustments, 3); /* +2 returned, +1 found at the count */
    assert_int_equal(f.stock_on_hand, 60);
    agg_figures_free(&f);
    agg_batch_free(&b);
}

static void test_openlmis_reader_problems(void **state)
{
    (void)state;
    json_t *p = parse_fail(
        "openlmis-stock-event",
        "{\"programId\": \"P\", \"lineItems\": [{\"orderableId\": \"O\", \"quantity\": 1,"
        " \"occurredDate\": \"2026-10-02\"}]}");
    assert_true(has_problem(p, "facilityId", "facilityId is required"));
    json_decref(p);
    p = parse_fail("openlmis-stock-event",
                   "{\"facilityId\": \"F\", \"programId\": \"P\", \"lineItems\": ["
                   "{\"orderableId\": \"O\", \"quantity\": 1, \"occurredDate\": \"2026-10-02\","
                   " \"sourceId\": \"S\", \"destinationId\": \"D\"},"
                   "{\"orderableId\": \"O\", \"quantity\": 1, \"occurredDate\": \"2026-10-02\","
                   " \"reasonId\": \"no-such-reason\"},"
                   "{\"orderableId\": \"O\", \"quantity\": -1, \"occurredDate\": \"02/10/2026\"},"
                   "{\"quantity\": 1, \"occurredDate\": \"2026-10-02\"},"
                   "{\"orderableId\": \"O\", \"quantity\": 5, \"occurredDate\": \"2026-10-02\","
                   " \"stockAdjustments\": [{\"reasonId\": \"nope\", \"quantity\": 1}]}]}");
    assert_true(has_problem(p, "lineItems[0]", "cannot both be present"));
    assert_true(has_problem(p, "lineItems[1]", "not in the channel's aggregate.reasons"));
    assert_true(has_problem(p, "lineItems[2]", "occurredDate \"02/10/2026\""));
    assert_true(has_problem(p, "lineItems[2]", "must not be negative"));
    assert_true(has_problem(p, "lineItems[3]", "orderableId is required"));
    assert_true(has_problem(p, "lineItems[4].stockAdjustments[0]", "\"nope\""));
    json_decref(p);
    p = parse_fail("openlmis-stock-event", "{\"facilityId\": \"F\", \"programId\": \"P\"}");
    assert_true(has_problem(p, "lineItems", "must be a list"));
    json_decref(p);
    p = parse_fail("openlmis-stock-event", "{not json");
    assert_true(has_problem(p, NULL, "invalid JSON"));
    json_decref(p);
}

/* Losses and adjustments by reason. November 2026; 90 on the shelf from October (a
 * receipt of 100 and 10 lost as Expired on 25 October, which is October's Expired,
 * not November's). In November, with the balance after each event:
 *   2nd  loss 5 Expired        85     12th adjustment -4 Transfer out   75
 *   5th  loss 3 Damaged        82     13th adjustment +2 (no reason)    77
 *   8th  loss 2 Expired        80     15th issue 30                     47
 *   10th loss 1 (no reason)    79     20th count 50 ("Stock take")      50 (+3)
 *   22nd loss 1 (reason "", which is none)                             49
 *   25th receipt 10 ("Donation": receipts have no breakdown)           59
 * losses 5+3+2+1+1 = 12, by reason Damaged 3, Expired 5+2 = 7 (2 have no reason);
 * adjustments -4+2+3 = 1, by reason Transfer out -4 (the +2 without a reason and the
 * count's +3 are in the total only). 90 + 10 - 30 - 12 + 1 = 59. */
static size_t by_reason_fill(struct agg_row *rows, bool late)
{
    size_t n = 0;
    rows[n++] = evr("2026-10-20", AGG_RECEIPT, 100, NULL, 1);
    rows[n++] = evr("2026-10-25", AGG_LOSS, 10, "Expired", 2);
    rows[n++] = evr("2026-11-02", AGG_LOSS, 5, "Expired", 3);
    rows[n++] = evr("2026-11-05", AGG_LOSS, 3, "Damaged", 4);
    rows[n++] = evr("2026-11-08", AGG_LOSS, 2, "Expired", 5);
    rows[n++] = evr("2026-11-10", AGG_LOSS, 1, NULL, 6);
    rows[n++] = evr("2026-11-12", AGG_ADJUSTMENT, -4, "Transfer out", 7);
    rows[n++] = evr("2026-11-13", AGG_ADJUSTMENT, 2, NULL, 8);
    rows[n++] = evr("2026-11-15", AGG_ISSUE, 30, NULL, 9);
    if (late) /* arrived last (seq), happened before the count */
        rows[n++] = evr("2026-11-16", AGG_ADJUSTMENT, 3, "Found in store", 20);
    rows[n++] = evr("2026-11-20", AGG_COUNT, 50, "Stock take", 10);
    rows[n++] = evr("2026-11-22", AGG_LOSS, 1, "", 11);
    rows[n++] = evr("2026-11-25", AGG_RECEIPT, 10, "Donation", 12);
    return n;
}

static void test_by_reason(void **state)
{
    (void)state;
    struct agg_row rows[16];
    size_t n = by_reason_fill(rows, false);
    struct agg_figures f;
    derive_month(rows, n, "202611", &f);
    assert_int_equal(f.opening_balance, 90);
    assert_int_equal(f.received, 10);
    assert_int_equal(f.consumed, 30);
    assert_int_equal(f.losses, 12);     /* 5 + 3 + 2 + 1 + 1 */
    assert_int_equal(f.adjustments, 1); /* -4 + 2 + 3 */
    assert_int_equal(f.stock_on_hand, 59);
    assert_int_equal(f.stockout_days, 0);
    /* by reason, sorted: October's Expired and the reasonless ones are not there */
    assert_int_equal(f.n_losses_by_reason, 2);
    assert_string_equal(f.losses_by_reason[0].reason, "Damaged");
    assert_int_equal(f.losses_by_reason[0].amount, 3);
    assert_string_equal(f.losses_by_reason[1].reason, "Expired");
    assert_int_equal(f.losses_by_reason[1].amount, 7); /* 5 + 2 */
    assert_int_equal(f.n_adjustments_by_reason, 1);    /* not the count's "Stock take" */
    assert_string_equal(f.adjustments_by_reason[0].reason, "Transfer out");
    assert_int_equal(f.adjustments_by_reason[0].amount, -4);

    struct period p;
    assert_true(period_parse("202611", &p));
    struct agg_line line = {.commodity = "AMOX250", .figures = f};
    char *with = agg_report_json("r", "FAC-0042", &p, &line, 1, true);
    char *without = agg_report_json("r", "FAC-0042", &p, &line, 1, false);
    assert_string_equal(
        with, "{\"report_id\":\"r\",\"facility\":\"FAC-0042\",\"period\":{\"start\":"
              "\"2026-11-01\",\"end\":\"2026-11-30\"},\"lines\":[{\"commodity\":\"AMOX250\","
              "\"opening_balance\":90,\"received\":10,\"consumed\":30,\"losses\":12,"
              "\"adjustments\":1,\"stock_on_hand\":59,\"stockout_days\":0,"
              "\"losses_by_reason\":{\"Damaged\":3,\"Expired\":7},"
              "\"adjustments_by_reason\":{\"Transfer out\":-4}}]}");
    assert_null(strstr(without, "by_reason"));

    /* A late adjustment of +3 "Found in store" on the 16th, before the count: the
     * count now finds 0 more, so every total stays, but the breakdown moved. The
     * body with by_reason differs (the period is sent again); without, it does not. */
    n = by_reason_fill(rows, true);
    struct agg_figures g;
    derive_month(rows, n, "202611", &g);
    assert_int_equal(g.losses, 12);
    assert_int_equal(g.adjustments, 1); /* -4 + 2 + 3 + 0 */
    assert_int_equal(g.stock_on_hand, 59);
    assert_string_equal(g.effects[10].measure, "adjustments"); /* the count: 50 - 50 */
    assert_int_equal(g.effects[10].amount, 0);
    assert_int_equal(g.n_adjustments_by_reason, 2);
    assert_string_equal(g.adjustments_by_reason[0].reason, "Found in store");
    assert_int_equal(g.adjustments_by_reason[0].amount, 3);
    assert_string_equal(g.adjustments_by_reason[1].reason, "Transfer out");
    line.figures = g;
    char *with2 = agg_report_json("r", "FAC-0042", &p, &line, 1, true);
    char *without2 = agg_report_json("r", "FAC-0042", &p, &line, 1, false);
    assert_string_not_equal(with, with2);
    assert_string_equal(without, without2);
    free(with);
    free(without);
    free(with2);
    free(without2);
    agg_figures_free(&f);
    agg_figures_free(&g);
}

static void test_report_json(void **state)
{
    (void)state;
    struct agg_row rows[] = {ev("2026-10-03", AGG_RECEIPT, 5, 1)};
    struct agg_line line = {.commodity = "AMOX250"};
    struct period p;
    assert_true(period_parse("202610", &p));
    agg_derive(rows, 1, period_day_number(p.start), period_day_number(p.end), &line.figures);
    char *s = agg_report_json("aggregate:FAC-0042/202610/1", "FAC-0042", &p, &line, 1, true);
    assert_string_equal(
        s, "{\"report_id\":\"aggregate:FAC-0042/202610/1\",\"facility\":\"FAC-0042\","
           "\"period\":{\"start\":\"2026-10-01\",\"end\":\"2026-10-31\"},\"lines\":[{\"commodity\":"
           "\"AMOX250\",\"opening_balance\":0,\"received\":5,\"consumed\":0,\"losses\":0,"
           "\"adjustments\":0,\"stock_on_hand\":5,\"stockout_days\":2}]}");
    free(s);
    agg_figures_free(&line.figures);
    enum agg_kind k;
    assert_true(agg_kind_parse("count", &k));
    assert_int_equal(k, AGG_COUNT);
    assert_false(agg_kind_parse("Count", &k));
    assert_false(agg_reader_known("lmis-report"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_month_with_stockout),
        cmocka_unit_test(test_count_disagrees),
        cmocka_unit_test(test_losses_adjustments_negative),
        cmocka_unit_test(test_late_event_chains),
        cmocka_unit_test(test_boundaries_and_same_day_order),
        cmocka_unit_test(test_history_starts_with_a_count),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_generic_reader),
        cmocka_unit_test(test_generic_reader_problems),
        cmocka_unit_test(test_openlmis_reader),
        cmocka_unit_test(test_openlmis_reader_problems),
        cmocka_unit_test(test_by_reason),
        cmocka_unit_test(test_report_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
