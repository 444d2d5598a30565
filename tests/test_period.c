/*
 * test_period.c - DHIS2 period ids on the ISO calendar: parsing every type, the
 * period containing a date (at year boundaries especially), ADX start/duration in
 * both directions, strict dates, and invalid inputs. Table-driven: one row per
 * case, and a failing row names itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hibus/period.h"

static void fmt_date(struct period_date d, char out[11])
{
    period_date_format(d, out);
}

/* Fails with a message naming the case when p does not match. */
static void expect_period(const char *what, const struct period *p, enum period_type t,
                          const char *id, const char *start, const char *end)
{
    char s[11], e[11];
    fmt_date(p->start, s);
    fmt_date(p->end, e);
    if (p->type != t || strcmp(p->id, id) != 0 || strcmp(s, start) != 0 || strcmp(e, end) != 0)
        fail_msg("%s: expected %s %s %s..%s, got %s %s %s..%s", what, period_type_name(t), id,
                 start, end, period_type_name(p->type), p->id, s, e);
}

/* ------------------------------------------------------------------------------------
 * period_parse
 * ------------------------------------------------------------------------------------ */

static const struct parse_case {
    const char *id;
    enum period_type type;
    const char *start, *end;
    int days;
} parse_ok[] = {
    {"20240115", PERIOD_DAILY, "2024-01-15", "2024-01-15", 1},
    {"20240229", PERIOD_DAILY, "2024-02-29", "2024-02-29", 1},
    {"20000229", PERIOD_DAILY, "2000-02-29", "2000-02-29", 1},
    {"2024W1", PERIOD_WEEKLY, "2024-01-01", "2024-01-07", 7},
    {"2025W1", PERIOD_WEEKLY, "2024-12-30", "2025-01-05", 7},
    {"2020W53", PERIOD_WEEKLY, "2020-12-28", "2021-01-03", 7},
    {"2026W53", PERIOD_WEEKLY, "2026-12-28", "2027-01-03", 7},
    {"2021W1", PERIOD_WEEKLY, "2021-01-04", "2021-01-10", 7},
    {"2021W52", PERIOD_WEEKLY, "2021-12-27", "2022-01-02", 7},
    {"2024BiW1", PERIOD_BIWEEKLY, "2024-01-01", "2024-01-14", 14},
    {"2024BiW26", PERIOD_BIWEEKLY, "2024-12-16", "2024-12-29", 14},
    {"2020BiW27", PERIOD_BIWEEKLY, "2020-12-28", "2021-01-10", 14},
    {"2025BiW1", PERIOD_BIWEEKLY, "2024-12-30", "2025-01-12", 14},
    {"202401", PERIOD_MONTHLY, "2024-01-01", "2024-01-31", 31},
    {"202402", PERIOD_MONTHLY, "2024-02-01", "2024-02-29", 29},
    {"202302", PERIOD_MONTHLY, "2023-02-01", "2023-02-28", 28},
    {"202612", PERIOD_MONTHLY, "2026-12-01", "2026-12-31", 31},
    {"202401B", PERIOD_BIMONTHLY, "2024-01-01", "2024-02-29", 60},
    {"202406B", PERIOD_BIMONTHLY, "2024-11-01", "2024-12-31", 61},
    {"202402B", PERIOD_BIMONTHLY, "2024-03-01", "2024-04-30", 61},
    {"2024Q1", PERIOD_QUARTERLY, "2024-01-01", "2024-03-31", 91},
    {"2024Q4", PERIOD_QUARTERLY, "2024-10-01", "2024-12-31", 92},
    {"2024S1", PERIOD_SIXMONTHLY, "2024-01-01", "2024-06-30", 182},
    {"2024S2", PERIOD_SIXMONTHLY, "2024-07-01", "2024-12-31", 184},
    {"2024", PERIOD_YEARLY, "2024-01-01", "2024-12-31", 366},
    {"2023", PERIOD_YEARLY, "2023-01-01", "2023-12-31", 365},
    {"2024April", PERIOD_FINANCIAL_APRIL, "2024-04-01", "2025-03-31", 365},
    {"2023April", PERIOD_FINANCIAL_APRIL, "2023-04-01", "2024-03-31", 366},
    {"2024July", PERIOD_FINANCIAL_JULY, "2024-07-01", "2025-06-30", 365},
    {"2024Oct", PERIOD_FINANCIAL_OCT, "2024-10-01", "2025-09-30", 365},
};

static void test_parse_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_ok / sizeof parse_ok[0]; i++) {
        const struct parse_case *c = &parse_ok[i];
        struct period p;
        if (!period_parse(c->id, &p))
            fail_msg("period_parse(\"%s\") failed", c->id);
        expect_period(c->id, &p, c->type, c->id, c->start, c->end);
        if (period_days(&p) != c->days)
            fail_msg("%s: expected %d days, got %d", c->id, c->days, period_days(&p));
    }
}

static const char *const parse_bad[] = {
    "",          "202",       "202413",    "202400",  "2024Q5",   "2024Q0",   "2024S3",
    "2024W0",    "2024W54",   "2021W53",   "2024W53", "2024W01",  "2024W",    "2024BiW0",
    "2024BiW27", "2020BiW28", "202407B",   "202400B", "20230229", "20240230", "20241301",
    "2024-1-01", "2024-01",   "24Q1",      "2024q1",  "2024Q1 ",  " 2024Q1",  "2024April1",
    "2024Apr",   "2024Nov",   "2024SunW1", "abcd",    "2024W1x",  "2024Q11",  "9999April",
};

static void test_parse_invalid(void **state)
{
    (void)state;
    struct period p;
    memset(&p, 0x5a, sizeof p);
    struct period before = p;
    for (size_t i = 0; i < sizeof parse_bad / sizeof parse_bad[0]; i++) {
        if (period_parse(parse_bad[i], &p))
            fail_msg("period_parse(\"%s\") accepted an invalid id as %s", parse_bad[i], p.id);
        /* Out-parameters are written only on success. */
        assert_memory_equal(&p, &before, sizeof p);
    }
    assert_false(period_parse(NULL, &p));
}

/* ------------------------------------------------------------------------------------
 * period_containing
 * ------------------------------------------------------------------------------------ */

static const struct containing_case {
    enum period_type type;
    const char *date;
    const char *id;
    const char *start, *end;
} containing[] = {
    {PERIOD_DAILY, "2024-12-31", "20241231", "2024-12-31", "2024-12-31"},
    {PERIOD_DAILY, "2025-01-01", "20250101", "2025-01-01", "2025-01-01"},
    {PERIOD_DAILY, "2024-02-29", "20240229", "2024-02-29", "2024-02-29"},
    {PERIOD_WEEKLY, "2024-12-30", "2025W1", "2024-12-30", "2025-01-05"},
    {PERIOD_WEEKLY, "2024-12-29", "2024W52", "2024-12-23", "2024-12-29"},
    {PERIOD_WEEKLY, "2025-01-05", "2025W1", "2024-12-30", "2025-01-05"},
    {PERIOD_WEEKLY, "2021-01-03", "2020W53", "2020-12-28", "2021-01-03"},
    {PERIOD_WEEKLY, "2021-01-04", "2021W1", "2021-01-04", "2021-01-10"},
    {PERIOD_WEEKLY, "2022-01-01", "2021W52", "2021-12-27", "2022-01-02"},
    {PERIOD_WEEKLY, "2027-01-01", "2026W53", "2026-12-28", "2027-01-03"},
    {PERIOD_BIWEEKLY, "2024-12-31", "2025BiW1", "2024-12-30", "2025-01-12"},
    {PERIOD_BIWEEKLY, "2024-12-29", "2024BiW26", "2024-12-16", "2024-12-29"},
    {PERIOD_BIWEEKLY, "2021-01-01", "2020BiW27", "2020-12-28", "2021-01-10"},
    {PERIOD_BIWEEKLY, "2021-01-05", "2021BiW1", "2021-01-04", "2021-01-17"},
    {PERIOD_MONTHLY, "2024-12-31", "202412", "2024-12-01", "2024-12-31"},
    {PERIOD_MONTHLY, "2025-01-01", "202501", "2025-01-01", "2025-01-31"},
    {PERIOD_MONTHLY, "2024-02-29", "202402", "2024-02-01", "2024-02-29"},
    {PERIOD_BIMONTHLY, "2024-12-31", "202406B", "2024-11-01", "2024-12-31"},
    {PERIOD_BIMONTHLY, "2025-01-01", "202501B", "2025-01-01", "2025-02-28"},
    {PERIOD_BIMONTHLY, "2024-04-15", "202402B", "2024-03-01", "2024-04-30"},
    {PERIOD_QUARTERLY, "2024-12-31", "2024Q4", "2024-10-01", "2024-12-31"},
    {PERIOD_QUARTERLY, "2025-01-01", "2025Q1", "2025-01-01", "2025-03-31"},
    {PERIOD_QUARTERLY, "2024-06-30", "2024Q2", "2024-04-01", "2024-06-30"},
    {PERIOD_SIXMONTHLY, "2024-12-31", "2024S2", "2024-07-01", "2024-12-31"},
    {PERIOD_SIXMONTHLY, "2025-01-01", "2025S1", "2025-01-01", "2025-06-30"},
    {PERIOD_YEARLY, "2024-12-31", "2024", "2024-01-01", "2024-12-31"},
    {PERIOD_YEARLY, "2025-01-01", "2025", "2025-01-01", "2025-12-31"},
    {PERIOD_FINANCIAL_APRIL, "2025-01-01", "2024April", "2024-04-01", "2025-03-31"},
    {PERIOD_FINANCIAL_APRIL, "2025-03-31", "2024April", "2024-04-01", "2025-03-31"},
    {PERIOD_FINANCIAL_APRIL, "2025-04-01", "2025April", "2025-04-01", "2026-03-31"},
    {PERIOD_FINANCIAL_JULY, "2024-12-31", "2024July", "2024-07-01", "2025-06-30"},
    {PERIOD_FINANCIAL_JULY, "2024-06-30", "2023July", "2023-07-01", "2024-06-30"},
    {PERIOD_FINANCIAL_OCT, "2025-01-01", "2024Oct", "2024-10-01", "2025-09-30"},
    {PERIOD_FINANCIAL_OCT, "2024-09-30", "2023Oct", "2023-10-01", "2024-09-30"},
};

static void test_containing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof containing / sizeof containing[0]; i++) {
        const struct containing_case *c = &containing[i];
        struct period_date d;
        struct period p;
        char what[64];
        snprintf(what, sizeof what, "%s containing %s", period_type_name(c->type), c->date);
        assert_true(period_date_parse(c->date, &d));
        if (!period_containing(c->type, d, &p))
            fail_msg("%s: failed", what);
        expect_period(what, &p, c->type, c->id, c->start, c->end);
        /* The id it gives parses back to the same period. */
        struct period q;
        if (!period_parse(p.id, &q))
            fail_msg("%s: id %s does not parse", what, p.id);
        expect_period(what, &q, c->type, c->id, c->start, c->end);
    }
    struct period p;
    assert_false(period_containing(PERIOD_MONTHLY, (struct period_date){2023, 2, 29}, &p));
    assert_false(period_containing(PERIOD_MONTHLY, (struct period_date){2024, 13, 1}, &p));
}

static void copy_id(char dst[16], const char *src)
{
    snprintf(dst, 16, "%s", src);
}

/* Every day of 2019..2027 lies inside the period of each type that contains it, and
 * the periods tile the calendar. */
static void test_containing_every_day(void **state)
{
    (void)state;
    struct period_date d = {2019, 1, 1};
    char prev[11][16];
    memset(prev, 0, sizeof prev);
    int day = 0;
    while (d.year < 2028) {
        char s[11];
        period_date_format(d, s);
        struct period_date back;
        assert_true(period_date_parse(s, &back));
        static const enum period_type all[] = {
            PERIOD_DAILY,           PERIOD_WEEKLY,         PERIOD_BIWEEKLY,     PERIOD_MONTHLY,
            PERIOD_BIMONTHLY,       PERIOD_QUARTERLY,      PERIOD_SIXMONTHLY,   PERIOD_YEARLY,
            PERIOD_FINANCIAL_APRIL, PERIOD_FINANCIAL_JULY, PERIOD_FINANCIAL_OCT};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            struct period p;
            if (!period_containing(all[i], d, &p))
                fail_msg("%s containing %s failed", period_type_name(all[i]), s);
            char ps[11], pe[11];
            period_date_format(p.start, ps);
            period_date_format(p.end, pe);
            if (strcmp(ps, s) > 0 || strcmp(pe, s) < 0)
                fail_msg("%s containing %s gave %s (%s..%s)", period_type_name(all[i]), s, p.id, ps,
                         pe);
            /* A new period begins exactly on its start day: no gaps, no overlaps
             * (BiWeekly is left out: 2020BiW27 runs into 2021BiW1, see period.c). */
            if (all[i] != PERIOD_BIWEEKLY) {
                bool starts = strcmp(ps, s) == 0;
                bool changed = strcmp(p.id, prev[i]) != 0;
                if (day > 0 && starts != changed)
                    fail_msg("%s: %s %s but %s starts on %s", s, period_type_name(all[i]),
                             changed ? "changed" : "did not change", p.id, ps);
            }
            copy_id(prev[i], p.id);
        }
        /* next day */
        struct period m;
        assert_true(period_containing(PERIOD_MONTHLY, d, &m));
        if (d.day == m.end.day) {
            d.day = 1;
            if (++d.month > 12) {
                d.month = 1;
                d.year++;
            }
        } else {
            d.day++;
        }
        day++;
    }
}

/* ------------------------------------------------------------------------------------
 * ADX
 * ------------------------------------------------------------------------------------ */

static const struct adx_case {
    const char *id;
    const char *adx;
} adx_ok[] = {
    {"20240115", "2024-01-15/P1D"},  {"2024W1", "2024-01-01/P7D"},
    {"2025W1", "2024-12-30/P7D"},    {"2020W53", "2020-12-28/P7D"},
    {"2024BiW1", "2024-01-01/P14D"}, {"2020BiW27", "2020-12-28/P14D"},
    {"202401", "2024-01-01/P1M"},    {"202402", "2024-02-01/P1M"},
    {"202401B", "2024-01-01/P2M"},   {"202406B", "2024-11-01/P2M"},
    {"2024Q1", "2024-01-01/P3M"},    {"2024Q4", "2024-10-01/P3M"},
    {"2024S2", "2024-07-01/P6M"},    {"2024", "2024-01-01/P1Y"},
    {"2024April", "2024-04-01/P1Y"}, {"2024July", "2024-07-01/P1Y"},
    {"2024Oct", "2024-10-01/P1Y"},
};

static void test_adx_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof adx_ok / sizeof adx_ok[0]; i++) {
        const struct adx_case *c = &adx_ok[i];
        struct period p, q;
        char buf[32];
        if (!period_parse(c->id, &p))
            fail_msg("%s does not parse", c->id);
        if (!period_to_adx(&p, buf, sizeof buf))
            fail_msg("%s: period_to_adx failed", c->id);
        if (strcmp(buf, c->adx) != 0)
            fail_msg("%s: expected ADX %s, got %s", c->id, c->adx, buf);
        if (!period_from_adx(c->adx, &q))
            fail_msg("period_from_adx(\"%s\") failed", c->adx);
        if (strcmp(q.id, c->id) != 0 || q.type != p.type)
            fail_msg("period_from_adx(\"%s\"): expected %s, got %s", c->adx, c->id, q.id);
    }
    /* Too small a buffer is a failure, not a cut. */
    struct period p;
    char small[10];
    assert_true(period_parse("202401", &p));
    assert_false(period_to_adx(&p, small, sizeof small));
    char exact[15];
    assert_true(period_to_adx(&p, exact, sizeof exact));
}

static const char *const adx_bad[] = {
    "2024-01-02/P1M",  /* a month starts on day 1 */
    "2024-01-02/P7D",  /* 2024-01-02 is a Tuesday */
    "2024-01-08/P14D", /* Monday of week 2: a bi-week starts on an odd week */
    "2024-02-01/P2M",  /* bi-months start on odd months */
    "2024-02-01/P3M",  /* quarters start in Jan, Apr, Jul, Oct */
    "2024-09-01/P3M",  /* the DHIS2 docs' typo */
    "2024-04-01/P6M",  /* SixMonthlyApril is not supported */
    "2024-02-01/P1Y",  /* no financial year starts in February */
    "2024-11-01/P1Y",  /* FinancialNov is not supported */
    "2023-02-29/P1D",  /* not a date */
    "2024-01-01/P1W",
    "2024-01-01/P1M ",
    "2024-01-01/",
    "2024-01-01",
    "2024-1-01/P1M",
    "2024-01-01P1M",
    "",
    "202401",
    "2024-01-01/p1m",
    "2024-01-01/P01M",
};

static void test_adx_invalid(void **state)
{
    (void)state;
    struct period p;
    for (size_t i = 0; i < sizeof adx_bad / sizeof adx_bad[0]; i++)
        if (period_from_adx(adx_bad[i], &p))
            fail_msg("period_from_adx(\"%s\") accepted an invalid period as %s", adx_bad[i], p.id);
    assert_false(period_from_adx(NULL, &p));
}

/* ------------------------------------------------------------------------------------
 * Dates and type names
 * ------------------------------------------------------------------------------------ */

static void test_dates(void **state)
{
    (void)state;
    static const char *const good[] = {"2024-02-29", "2000-02-29", "2023-12-31", "0001-01-01",
                                       "9999-12-31"};
    static const char *const bad[] = {"2023-02-29", "1900-02-29", "2024-1-01",  "2024-01-1",
                                      "2024/01/01", "2024-13-01", "2024-00-10", "2024-04-31",
                                      "2024-01-00", "",           "20240101",   "2024-01-01T00",
                                      "0000-01-01", "+024-01-01", "2024-0a-01"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct period_date d;
        char out[11];
        if (!period_date_parse(good[i], &d))
            fail_msg("period_date_parse(\"%s\") failed", good[i]);
        period_date_format(d, out);
        assert_string_equal(out, good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct period_date d = {7, 7, 7};
        if (period_date_parse(bad[i], &d))
            fail_msg("period_date_parse(\"%s\") accepted an invalid date", bad[i]);
        assert_int_equal(d.year, 7);
    }
}

static void test_type_names(void **state)
{
    (void)state;
    static const char *const names[] = {"Daily",          "Weekly",        "BiWeekly",    "Monthly",
                                        "BiMonthly",      "Quarterly",     "SixMonthly",  "Yearly",
                                        "FinancialApril", "FinancialJuly", "FinancialOct"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        enum period_type t;
        if (!period_type_parse(names[i], &t))
            fail_msg("period_type_parse(\"%s\") failed", names[i]);
        assert_string_equal(period_type_name(t), names[i]);
    }
    enum period_type t;
    assert_false(period_type_parse("monthly", &t));
    assert_false(period_type_parse("WeeklySunday", &t));
    assert_false(period_type_parse("", &t));
    assert_false(period_type_parse(NULL, &t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),    cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_containing),     cmocka_unit_test(test_containing_every_day),
        cmocka_unit_test(test_adx_round_trip), cmocka_unit_test(test_adx_invalid),
        cmocka_unit_test(test_dates),          cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
