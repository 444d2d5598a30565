/*
 * test_quality.c - quality_kind_parse/name and quality_check: each rule passing
 * and failing with its exact message and JSON, reject vs warn routing, the
 * balance tolerance boundary, signed adjustments, stockout_days against the
 * days of February in leap and common years, skipped values, and grouping by
 * (facility, period, item) when values override the report's facility/period.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check_json.h"

#include "hibus/quality.h"

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

static struct report *new_report(const char *org_unit, const char *period)
{
    struct report *r = report_new("lmis-report");
    assert_non_null(r);
    assert_true(report_set(&r->org_unit, org_unit));
    assert_true(report_set(&r->period, period));
    return r;
}

static struct report_value *add(struct report *r, const char *item, const char *measure,
                                const char *value)
{
    struct report_value *v = report_add(r, item, measure, value, NULL, NULL);
    assert_non_null(v);
    return v;
}

/* A full R&R line for item: the eight measures, in form order. */
static void add_line(struct report *r, const char *item, const char *ob, const char *rc,
                     const char *co, const char *lo, const char *ad, const char *soh,
                     const char *sod)
{
    add(r, item, "opening_balance", ob);
    add(r, item, "received", rc);
    add(r, item, "consumed", co);
    add(r, item, "losses", lo);
    add(r, item, "adjustments", ad);
    add(r, item, "stock_on_hand", soh);
    add(r, item, "stockout_days", sod);
    add(r, item, "requested", "100");
}

static struct quality_rule rule(enum quality_kind k)
{
    return (struct quality_rule){.kind = k, .action = QUALITY_REJECT};
}

/* One quality_check call with fresh arrays. */
struct run {
    json_t *violations;
    json_t *warnings;
    size_t rejected;
};

static struct run check(const struct quality_rule *rules, size_t n, const struct report *r)
{
    struct run run = {json_array(), json_array(), 0};
    assert_non_null(run.violations);
    assert_non_null(run.warnings);
    run.rejected = quality_check(rules, n, r, run.violations, run.warnings);
    return run;
}

static void run_free(struct run *run)
{
    json_decref(run->violations);
    json_decref(run->warnings);
}

static const char *message(const json_t *arr, size_t i)
{
    const char *s = json_string_value(json_object_get(json_array_get(arr, i), "message"));
    assert_non_null(s);
    return s;
}

/* ------------------------------------------------------------------ */
/* Rule names                                                          */
/* ------------------------------------------------------------------ */

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"non_negative",  "required_measures", "balance",
                                        "stockout_days", "value_ceiling",     "numeric"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        enum quality_kind k = QUALITY_NUMERIC;
        assert_true(quality_kind_parse(names[i], &k));
        assert_int_equal(k, (enum quality_kind)i);
        assert_string_equal(quality_kind_name(k), names[i]);
    }
    enum quality_kind k = QUALITY_BALANCE;
    assert_false(quality_kind_parse("Balance", &k));
    assert_false(quality_kind_parse("non-negative", &k));
    assert_false(quality_kind_parse("", &k));
    assert_false(quality_kind_parse(NULL, &k));
    assert_int_equal(k, QUALITY_BALANCE); /* untouched on failure */
}

/* ------------------------------------------------------------------ */
/* balance                                                             */
/* ------------------------------------------------------------------ */

static void test_balance_passes(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "-5", "1045", "0");
    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 0);
    assert_int_equal(json_array_size(run.violations), 0);
    assert_int_equal(json_array_size(run.warnings), 0);
    run_free(&run);
    report_free(r);
}

static void test_balance_fails(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "0", "1040", "0");
    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"balance\",\"facility\":\"FAC-0042\","
                "\"item\":\"AMOX250\",\"period\":\"202610\","
                "\"message\":\"stock balance does not add up for \\\"AMOX250\\\" at "
                "\\\"FAC-0042\\\" in 202610: opening_balance 1200 + received 500 - consumed 640 - "
                "losses 10 + adjustments 0 = 1050, but stock_on_hand is 1040 (difference -10, "
                "tolerance 0)\","
                "\"values\":{\"opening_balance\":1200,\"received\":500,\"consumed\":640,"
                "\"losses\":10,\"adjustments\":0,\"stock_on_hand\":1040},"
                "\"expected\":1050,\"difference\":-10}]");
    assert_int_equal(json_array_size(run.warnings), 0);
    run_free(&run);
    report_free(r);
}

static void test_balance_tolerance_boundary(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "0", "1040", "0"); /* -10 */
    add_line(r, "ORS", "100", "0", "20", "0", "0", "90", "0");            /* +10 */
    struct quality_rule q = rule(QUALITY_BALANCE);
    q.tolerance = 10;
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 0); /* |difference| == tolerance passes */
    run_free(&run);

    q.tolerance = 9.5;
    run = check(&q, 1, r);
    assert_int_equal(run.rejected, 2);
    assert_string_equal(message(run.violations, 0),
                        "stock balance does not add up for \"AMOX250\" at \"FAC-0042\" in 202610: "
                        "opening_balance 1200 + received 500 - consumed 640 - losses 10 + "
                        "adjustments 0 = 1050, but stock_on_hand is 1040 (difference -10, "
                        "tolerance 9.5)");
    assert_string_equal(message(run.violations, 1),
                        "stock balance does not add up for \"ORS\" at \"FAC-0042\" in 202610: "
                        "opening_balance 100 + received 0 - consumed 20 - losses 0 + "
                        "adjustments 0 = 80, but stock_on_hand is 90 (difference 10, "
                        "tolerance 9.5)");
    run_free(&run);
    report_free(r);
}

static void test_balance_decimals(void **state)
{
    (void)state;
    /* 0.1 + 0.2 != 0.3 in binary; the rule must not report rounding. */
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "VAX", "0.1", "0.2", "0", "0", "0", "0.3", "0");
    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 0);
    run_free(&run);
    report_free(r);

    /* 1.1 - 1.0 is 0.10000000000000009 in binary: still at the boundary. */
    r = new_report("FAC-0042", "202610");
    add_line(r, "VAX", "1", "0", "0", "0", "0", "1.1", "0");
    q.tolerance = 0.1;
    run = check(&q, 1, r);
    assert_int_equal(run.rejected, 0);
    run_free(&run);
    q.tolerance = 0.09;
    run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_string_equal(message(run.violations, 0),
                        "stock balance does not add up for \"VAX\" at \"FAC-0042\" in 202610: "
                        "opening_balance 1 + received 0 - consumed 0 - losses 0 + adjustments 0 = "
                        "1, but stock_on_hand is 1.1 (difference 0.1, tolerance 0.09)");
    run_free(&run);
    report_free(r);
}

static void test_balance_absent_losses_adjustments_are_zero(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "ORS", "opening_balance", "100");
    add(r, "ORS", "received", "0");
    add(r, "ORS", "consumed", "20");
    add(r, "ORS", "stock_on_hand", "81");
    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"balance\",\"facility\":\"FAC-0042\","
                "\"item\":\"ORS\",\"period\":\"202610\","
                "\"message\":\"stock balance does not add up for \\\"ORS\\\" at \\\"FAC-0042\\\" "
                "in 202610: opening_balance 100 + received 0 - consumed 20 - losses 0 + "
                "adjustments 0 = 80, but stock_on_hand is 81 (difference 1, tolerance 0)\","
                "\"values\":{\"opening_balance\":100,\"received\":0,\"consumed\":20,"
                "\"stock_on_hand\":81},\"expected\":80,\"difference\":1}]");
    run_free(&run);
    report_free(r);
}

static void test_balance_not_applicable(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    /* no stock_on_hand */
    add(r, "A", "opening_balance", "100");
    add(r, "A", "received", "0");
    add(r, "A", "consumed", "20");
    /* no opening_balance */
    add(r, "B", "received", "0");
    add(r, "B", "consumed", "20");
    add(r, "B", "stock_on_hand", "1");
    /* stock_on_hand is text: the numeric rule's business */
    add(r, "C", "opening_balance", "100");
    add(r, "C", "received", "0");
    add(r, "C", "consumed", "20");
    add(r, "C", "stock_on_hand", "n/a");
    /* losses is text */
    add_line(r, "D", "100", "0", "20", "x", "0", "1", "0");
    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 0);
    assert_int_equal(json_array_size(run.violations), 0);
    run_free(&run);
    report_free(r);
}

/* ------------------------------------------------------------------ */
/* required_measures                                                   */
/* ------------------------------------------------------------------ */

static void test_required_measures_default(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "0", "1050", "0");
    add(r, "ORS", "opening_balance", "100");
    add(r, "ORS", "received", "0");
    add(r, "ORS", "consumed", "oops"); /* present, even if not a number */
    add(r, "ORS", "adjustments", "0");
    add(r, "ORS", "stock_on_hand", "80");
    struct quality_rule q = rule(QUALITY_REQUIRED_MEASURES);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"required_measures\",\"facility\":\"FAC-0042\","
                "\"item\":\"ORS\",\"period\":\"202610\","
                "\"message\":\"item \\\"ORS\\\" at \\\"FAC-0042\\\" in 202610 lacks losses, "
                "stockout_days; report every required measure, or list only those sent under the "
                "rule's measures\","
                "\"missing\":[\"losses\",\"stockout_days\"],"
                "\"values\":{\"opening_balance\":100,\"received\":0,\"adjustments\":0,"
                "\"stock_on_hand\":80}}]");
    run_free(&run);
    report_free(r);
}

static void test_required_measures_custom(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "ORS", "consumed", "20");
    add(r, "ORS", "stock_on_hand", "80");
    add(r, "ZINC", "consumed", "20");
    char *measures[] = {"consumed", "stock_on_hand"};
    struct quality_rule q = rule(QUALITY_REQUIRED_MEASURES);
    q.measures = measures;
    q.n_measures = 2;
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_string_equal(message(run.violations, 0),
                        "item \"ZINC\" at \"FAC-0042\" in 202610 lacks stock_on_hand; report every "
                        "required measure, or list only those sent under the rule's measures");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(run.violations, 0), "item")), "ZINC");
    run_free(&run);
    report_free(r);
}

/* ------------------------------------------------------------------ */
/* stockout_days                                                       */
/* ------------------------------------------------------------------ */

static size_t stockout(const char *period, const char *start, const char *end, const char *days,
                       char *msg, size_t msglen)
{
    struct report *r = new_report("FAC-0042", period);
    assert_true(report_set(&r->period_start, start));
    assert_true(report_set(&r->period_end, end));
    add(r, "AMOX250", "stockout_days", days);
    struct quality_rule q = rule(QUALITY_STOCKOUT_DAYS);
    struct run run = check(&q, 1, r);
    snprintf(msg, msglen, "%s", run.rejected ? message(run.violations, 0) : "(none)");
    size_t n = run.rejected;
    assert_int_equal(json_array_size(run.violations), n);
    run_free(&run);
    report_free(r);
    return n;
}

static void test_stockout_days_february(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(stockout("202402", NULL, NULL, "29", msg, sizeof msg), 0);
    assert_int_equal(stockout("202402", NULL, NULL, "30", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days 30 for \"AMOX250\" at \"FAC-0042\" in 202402 is more "
                             "than the 29 days of the period; fix the value at the source");
    assert_int_equal(stockout("202302", NULL, NULL, "28", msg, sizeof msg), 0);
    assert_int_equal(stockout("202302", NULL, NULL, "29", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days 29 for \"AMOX250\" at \"FAC-0042\" in 202302 is more "
                             "than the 28 days of the period; fix the value at the source");
}

static void test_stockout_days_bounds(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(stockout("202610", NULL, NULL, "0", msg, sizeof msg), 0);
    assert_int_equal(stockout("202610", NULL, NULL, "31", msg, sizeof msg), 0);
    assert_int_equal(stockout("202610", NULL, NULL, "-1", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days -1 for \"AMOX250\" at \"FAC-0042\" in 202610 is "
                             "negative; send 0 or more days");
    assert_int_equal(stockout("202610", NULL, NULL, "2.5", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days 2.5 for \"AMOX250\" at \"FAC-0042\" in 202610 is not a "
                             "whole number of days; send whole days");
    assert_int_equal(stockout("2026W40", NULL, NULL, "8", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days 8 for \"AMOX250\" at \"FAC-0042\" in 2026W40 is more "
                             "than the 7 days of the period; fix the value at the source");
    /* text is the numeric rule's business */
    assert_int_equal(stockout("202610", NULL, NULL, "many", msg, sizeof msg), 0);
}

static void test_stockout_days_from_dates(void **state)
{
    (void)state;
    char msg[1024];
    assert_int_equal(stockout(NULL, "2024-02-01", "2024-02-29", "29", msg, sizeof msg), 0);
    assert_int_equal(stockout(NULL, "2024-02-01", "2024-02-29", "30", msg, sizeof msg), 1);
    assert_string_equal(msg, "stockout_days 30 for \"AMOX250\" at \"FAC-0042\" in 2024-02-01 to "
                             "2024-02-29 is more than the 29 days of the period; fix the value at "
                             "the source");
    /* no period at all: only the lower bound can be checked */
    assert_int_equal(stockout(NULL, NULL, NULL, "400", msg, sizeof msg), 0);
    assert_int_equal(stockout(NULL, NULL, NULL, "-2", msg, sizeof msg), 1);
}

static void test_stockout_days_value_period(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    assert_true(report_set(&add(r, "AMOX250", "stockout_days", "30")->period, "202402"));
    add(r, "AMOX250", "stockout_days", "30"); /* 202610: 31 days */
    struct quality_rule q = rule(QUALITY_STOCKOUT_DAYS);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"stockout_days\",\"facility\":\"FAC-0042\","
                "\"item\":\"AMOX250\",\"measure\":\"stockout_days\",\"period\":\"202402\","
                "\"message\":\"stockout_days 30 for \\\"AMOX250\\\" at \\\"FAC-0042\\\" in 202402 "
                "is more than the 29 days of the period; fix the value at the source\","
                "\"values\":{\"stockout_days\":30},\"period_days\":29}]");
    run_free(&run);
    report_free(r);
}

/* ------------------------------------------------------------------ */
/* value_ceiling, non_negative, numeric                                */
/* ------------------------------------------------------------------ */

static void test_value_ceiling(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "consumed", "100000");   /* == max: passes */
    add(r, "AMOX250", "received", "100001");   /* fails */
    add(r, "AMOX250", "AGE_U5", "999999");     /* not a canonical measure */
    add(r, "AMOX250", "stock_on_hand", "1e6"); /* fails */
    struct quality_rule q = rule(QUALITY_VALUE_CEILING);
    q.max = 100000;
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 2);
    assert_json(json_array_get(run.violations, 0),
                "{\"stage\":\"quality\",\"rule\":\"value_ceiling\",\"facility\":\"FAC-0042\","
                "\"item\":\"AMOX250\",\"measure\":\"received\",\"period\":\"202610\","
                "\"message\":\"received 100001 for \\\"AMOX250\\\" at \\\"FAC-0042\\\" in 202610 "
                "is above the ceiling of 100000; check the value at the source or raise max\","
                "\"values\":{\"received\":100001},\"max\":100000}");
    assert_string_equal(message(run.violations, 1),
                        "stock_on_hand 1000000 for \"AMOX250\" at \"FAC-0042\" in 202610 is above "
                        "the ceiling of 100000; check the value at the source or raise max");
    run_free(&run);

    /* Only the listed measures, canonical or not. */
    char *measures[] = {"AGE_U5"};
    q.measures = measures;
    q.n_measures = 1;
    run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    assert_string_equal(message(run.violations, 0),
                        "AGE_U5 999999 for \"AMOX250\" at \"FAC-0042\" in 202610 is above the "
                        "ceiling of 100000; check the value at the source or raise max");
    run_free(&run);
    report_free(r);
}

static void test_non_negative(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "consumed", "0");
    add(r, "AMOX250", "adjustments", "-25"); /* signed by definition */
    add(r, "AMOX250", "losses", "-3");
    report_add(r, "ORS", NULL, "-5", NULL, "dataValues[4]");
    add(r, "ORS", "received", "-0.5");
    struct quality_rule q = rule(QUALITY_NON_NEGATIVE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 3);
    assert_json(json_array_get(run.violations, 0),
                "{\"stage\":\"quality\",\"rule\":\"non_negative\",\"facility\":\"FAC-0042\","
                "\"item\":\"AMOX250\",\"measure\":\"losses\",\"period\":\"202610\","
                "\"message\":\"negative losses -3 for \\\"AMOX250\\\" at \\\"FAC-0042\\\" in "
                "202610; only adjustments may be negative, fix the value at the source\","
                "\"values\":{\"losses\":-3}}");
    assert_json(json_array_get(run.violations, 1),
                "{\"stage\":\"quality\",\"rule\":\"non_negative\",\"facility\":\"FAC-0042\","
                "\"item\":\"ORS\",\"period\":\"202610\",\"where\":\"dataValues[4]\","
                "\"message\":\"negative value -5 for \\\"ORS\\\" at \\\"FAC-0042\\\" in "
                "202610; only adjustments may be negative, fix the value at the source\","
                "\"values\":{}}");
    assert_string_equal(message(run.violations, 2),
                        "negative received -0.5 for \"ORS\" at \"FAC-0042\" in 202610; only "
                        "adjustments may be negative, fix the value at the source");
    run_free(&run);
    report_free(r);
}

/* Losses and adjustments by reason (lmis-report losses_by_reason and
 * adjustments_by_reason): an adjustment by reason is signed like the total, a loss by
 * reason is not; and the breakdown takes no part in balance or required_measures,
 * even when it does not add up to the total (here 4 of the 10 lost have a reason). */
static void test_by_reason_measures(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "-5", "1045", "0");
    add(r, "AMOX250", "losses:Expired", "4");
    add(r, "AMOX250", "adjustments:Transfer out", "-20");
    add(r, "AMOX250", "losses:Damaged", "-1");
    struct quality_rule q[3] = {rule(QUALITY_NON_NEGATIVE), rule(QUALITY_BALANCE),
                                rule(QUALITY_REQUIRED_MEASURES)};
    struct run run = check(q, 3, r);
    assert_int_equal(run.rejected, 1);
    assert_int_equal(json_array_size(run.violations), 1);
    assert_string_equal(message(run.violations, 0),
                        "negative losses:Damaged -1 for \"AMOX250\" at \"FAC-0042\" in 202610; "
                        "only adjustments may be negative, fix the value at the source");
    run_free(&run);
    report_free(r);
}

static void test_numeric(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "consumed", "640");
    add(r, "AMOX250", "received", "12 boxes");
    add(r, "AMOX250", "remarks", "late delivery"); /* not a canonical measure */
    report_add(r, "ORS", "stock_on_hand", "", NULL, "lines[1].stock_on_hand");
    struct quality_rule q = rule(QUALITY_NUMERIC);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 2);
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"numeric\",\"facility\":\"FAC-0042\","
                "\"item\":\"AMOX250\",\"measure\":\"received\",\"period\":\"202610\","
                "\"message\":\"received \\\"12 boxes\\\" for \\\"AMOX250\\\" at \\\"FAC-0042\\\" "
                "in 202610 is not a number; send digits only, e.g. \\\"120\\\"\","
                "\"value\":\"12 boxes\",\"values\":{}},"
                "{\"stage\":\"quality\",\"rule\":\"numeric\",\"facility\":\"FAC-0042\","
                "\"item\":\"ORS\",\"measure\":\"stock_on_hand\",\"period\":\"202610\","
                "\"where\":\"lines[1].stock_on_hand\","
                "\"message\":\"stock_on_hand \\\"\\\" for \\\"ORS\\\" at \\\"FAC-0042\\\" "
                "in 202610 is not a number; send digits only, e.g. \\\"120\\\"\","
                "\"value\":\"\",\"values\":{}}]");
    run_free(&run);
    report_free(r);
}

/* ------------------------------------------------------------------ */
/* Routing, skipped values, grouping                                   */
/* ------------------------------------------------------------------ */

static void test_warn_and_reject_routing(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "-10", "0", "1060", "0");
    struct quality_rule rules[2] = {rule(QUALITY_NON_NEGATIVE), rule(QUALITY_BALANCE)};
    rules[1].action = QUALITY_WARN;
    struct run run = check(rules, 2, r);
    assert_int_equal(run.rejected, 1);
    assert_int_equal(json_array_size(run.violations), 1);
    assert_int_equal(json_array_size(run.warnings), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(run.violations, 0), "rule")),
        "non_negative");
    assert_string_equal(json_string_value(json_object_get(json_array_get(run.warnings, 0), "rule")),
                        "balance");
    run_free(&run);

    /* both warn: nothing rejected */
    rules[0].action = QUALITY_WARN;
    run = check(rules, 2, r);
    assert_int_equal(run.rejected, 0);
    assert_int_equal(json_array_size(run.violations), 0);
    assert_int_equal(json_array_size(run.warnings), 2);
    run_free(&run);
    report_free(r);
}

static void test_skipped_values_ignored(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    add_line(r, "AMOX250", "1200", "500", "640", "10", "0", "1050", "0");
    struct report_value *v = add(r, "AMOX250", "consumed", "-999"); /* duplicate, unmapped */
    v->skipped = true;
    v = add(r, "ZINC", "received", "abc");
    v->skipped = true;
    v = add(r, "ZINC", "stockout_days", "400");
    v->skipped = true;
    /* A skipped stock_on_hand takes ORS out of the balance rule. */
    add(r, "ORS", "opening_balance", "100");
    add(r, "ORS", "received", "0");
    add(r, "ORS", "consumed", "20");
    add(r, "ORS", "stock_on_hand", "5")->skipped = true;
    struct quality_rule rules[] = {rule(QUALITY_NON_NEGATIVE), rule(QUALITY_NUMERIC),
                                   rule(QUALITY_STOCKOUT_DAYS), rule(QUALITY_BALANCE),
                                   rule(QUALITY_VALUE_CEILING)};
    rules[4].max = 2000;
    struct run run = check(rules, sizeof rules / sizeof *rules, r);
    assert_int_equal(run.rejected, 0);
    assert_int_equal(json_array_size(run.violations), 0);
    run_free(&run);

    /* The rules are live: a lower ceiling catches the two values above 999 only
     * (not the skipped ones). */
    rules[4].max = 999;
    run = check(rules, sizeof rules / sizeof *rules, r);
    assert_int_equal(run.rejected, 2);
    assert_string_equal(message(run.violations, 0),
                        "opening_balance 1200 for \"AMOX250\" at \"FAC-0042\" in 202610 is above "
                        "the ceiling of 999; check the value at the source or raise max");
    assert_string_equal(message(run.violations, 1),
                        "stock_on_hand 1050 for \"AMOX250\" at \"FAC-0042\" in 202610 is above "
                        "the ceiling of 999; check the value at the source or raise max");
    run_free(&run);
    report_free(r);
}

static void test_grouping_facilities_items_periods(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    /* AMOX250 at FAC-0042: balances */
    add(r, "AMOX250", "opening_balance", "100");
    add(r, "AMOX250", "received", "50");
    /* ORS at FAC-0042: does not balance (100 - 20 = 80, not 70) */
    add(r, "ORS", "opening_balance", "100");
    add(r, "ORS", "received", "0");
    add(r, "AMOX250", "consumed", "30");
    add(r, "ORS", "consumed", "20");
    add(r, "ORS", "stock_on_hand", "70");
    add(r, "AMOX250", "stock_on_hand", "120");
    /* AMOX250 at FAC-0043 (override): its own numbers, balances only on their own */
    const char *fac43[][2] = {
        {"opening_balance", "10"}, {"received", "0"}, {"consumed", "5"}, {"stock_on_hand", "6"}};
    for (size_t i = 0; i < 4; i++)
        assert_true(report_set(&add(r, "AMOX250", fac43[i][0], fac43[i][1])->org_unit, "FAC-0043"));
    /* AMOX250 at FAC-0042 in 202611 (override): balances */
    const char *nov[][2] = {{"opening_balance", "120"},
                            {"received", "0"},
                            {"consumed", "20"},
                            {"stock_on_hand", "100"}};
    for (size_t i = 0; i < 4; i++)
        assert_true(report_set(&add(r, "AMOX250", nov[i][0], nov[i][1])->period, "202611"));

    struct quality_rule q = rule(QUALITY_BALANCE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 2);
    /* In the order of each group's first value: ORS (value 2) before FAC-0043 (value 8). */
    assert_json(run.violations,
                "[{\"stage\":\"quality\",\"rule\":\"balance\",\"facility\":\"FAC-0042\","
                "\"item\":\"ORS\",\"period\":\"202610\","
                "\"message\":\"stock balance does not add up for \\\"ORS\\\" at \\\"FAC-0042\\\" "
                "in 202610: opening_balance 100 + received 0 - consumed 20 - losses 0 + "
                "adjustments 0 = 80, but stock_on_hand is 70 (difference -10, tolerance 0)\","
                "\"values\":{\"opening_balance\":100,\"received\":0,\"consumed\":20,"
                "\"stock_on_hand\":70},\"expected\":80,\"difference\":-10},"
                "{\"stage\":\"quality\",\"rule\":\"balance\",\"facility\":\"FAC-0043\","
                "\"item\":\"AMOX250\",\"period\":\"202610\","
                "\"message\":\"stock balance does not add up for \\\"AMOX250\\\" at "
                "\\\"FAC-0043\\\" in 202610: opening_balance 10 + received 0 - consumed 5 - "
                "losses 0 + adjustments 0 = 5, but stock_on_hand is 6 (difference 1, "
                "tolerance 0)\","
                "\"values\":{\"opening_balance\":10,\"received\":0,\"consumed\":5,"
                "\"stock_on_hand\":6},\"expected\":5,\"difference\":1}]");
    run_free(&run);

    /* required_measures sees four groups, each lacking the same three. */
    struct quality_rule req = rule(QUALITY_REQUIRED_MEASURES);
    run = check(&req, 1, r);
    assert_int_equal(run.rejected, 4);
    const char *want[][3] = {{"FAC-0042", "AMOX250", "202610"},
                             {"FAC-0042", "ORS", "202610"},
                             {"FAC-0043", "AMOX250", "202610"},
                             {"FAC-0042", "AMOX250", "202611"}};
    for (size_t i = 0; i < 4; i++) {
        const json_t *o = json_array_get(run.violations, i);
        assert_string_equal(json_string_value(json_object_get(o, "facility")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(o, "item")), want[i][1]);
        assert_string_equal(json_string_value(json_object_get(o, "period")), want[i][2]);
        assert_json(json_object_get(o, "missing"),
                    "[\"losses\",\"adjustments\",\"stockout_days\"]");
    }
    run_free(&run);
    report_free(r);
}

static void test_empty_report_and_no_rules(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    struct quality_rule rules[] = {rule(QUALITY_NON_NEGATIVE), rule(QUALITY_REQUIRED_MEASURES),
                                   rule(QUALITY_BALANCE)};
    struct run run = check(rules, 3, r);
    assert_int_equal(run.rejected, 0);
    run_free(&run);
    add(r, "AMOX250", "consumed", "-1");
    run = check(NULL, 0, r);
    assert_int_equal(run.rejected, 0);
    assert_int_equal(json_array_size(run.violations), 0);
    run_free(&run);
    report_free(r);
}

static void test_long_item_message_is_cut(void **state)
{
    (void)state;
    struct report *r = new_report("FAC-0042", "202610");
    char item[3000];
    memset(item, 'Y', sizeof item - 1);
    item[sizeof item - 1] = '\0';
    add(r, item, "consumed", "-1");
    struct quality_rule q = rule(QUALITY_NON_NEGATIVE);
    struct run run = check(&q, 1, r);
    assert_int_equal(run.rejected, 1);
    const char *msg = message(run.violations, 0);
    assert_int_equal(strlen(msg), 1023);
    assert_string_equal(msg + 1020, "...");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(run.violations, 0), "item")), item);
    run_free(&run);
    report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_balance_passes),
        cmocka_unit_test(test_balance_fails),
        cmocka_unit_test(test_balance_tolerance_boundary),
        cmocka_unit_test(test_balance_decimals),
        cmocka_unit_test(test_balance_absent_losses_adjustments_are_zero),
        cmocka_unit_test(test_balance_not_applicable),
        cmocka_unit_test(test_required_measures_default),
        cmocka_unit_test(test_required_measures_custom),
        cmocka_unit_test(test_stockout_days_february),
        cmocka_unit_test(test_stockout_days_bounds),
        cmocka_unit_test(test_stockout_days_from_dates),
        cmocka_unit_test(test_stockout_days_value_period),
        cmocka_unit_test(test_value_ceiling),
        cmocka_unit_test(test_non_negative),
        cmocka_unit_test(test_by_reason_measures),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_warn_and_reject_routing),
        cmocka_unit_test(test_skipped_values_ignored),
        cmocka_unit_test(test_grouping_facilities_items_periods),
        cmocka_unit_test(test_empty_report_and_no_rules),
        cmocka_unit_test(test_long_item_message_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
