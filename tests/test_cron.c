/*
 * test_cron.c - cron schedules: the next fire time for ranges, steps, lists,
 * names, the day-of-month / day-of-week rule of Vixie cron, month ends and leap
 * years; and every kind of invalid expression, with the field it names.
 * Table-driven: a failing row names its expression.
 *
 * The expected times were worked out by hand from a calendar (2026-12-01 is a
 * Tuesday; 2028 and 2104 are leap years, 2100 is not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hibus/cron.h"

/* "YYYY-MM-DD HH:MM[:SS]" in UTC, as seconds since 1970. */
static int64_t at(const char *s)
{
    struct tm tm = {0};
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static void fmt(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
}

struct next_case {
    const char *expr, *after, *want;
};

static const struct next_case next_cases[] = {
    /* steps over * */
    {"*/5 * * * *", "2026-01-01 00:00", "2026-01-01 00:05"},
    {"*/5 * * * *", "2026-01-01 00:03:30", "2026-01-01 00:05"},
    {"*/5 * * * *", "2026-01-01 00:59", "2026-01-01 01:00"},
    {"* * * * *", "2026-01-01 00:00:59", "2026-01-01 00:01"},
    /* strictly after: a time on the slot gives the next one */
    {"0 * * * *", "2026-01-01 10:00", "2026-01-01 11:00"},
    /* month ends */
    {"0 0 1 * *", "2026-01-31 12:00", "2026-02-01 00:00"},
    {"0 0 31 * *", "2026-01-31 00:00", "2026-03-31 00:00"},
    {"0 0 31 * *", "2026-04-01 00:00", "2026-05-31 00:00"},
    {"0 0 30 * *", "2026-01-30 00:00", "2026-03-30 00:00"},
    /* leap years: 2028 is one, 2100 is not (so the next after 2097 is 2104) */
    {"0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"},
    {"0 0 29 2 *", "2097-03-01 00:00", "2104-02-29 00:00"},
    {"0 0 28 2 *", "2028-02-28 00:00", "2029-02-28 00:00"},
    /* year end */
    {"0 0 1 1 *", "2026-12-01 00:00", "2027-01-01 00:00"},
    {"59 23 31 12 *", "2026-12-31 23:59", "2027-12-31 23:59"},
    /* names, case-insensitive, and lists of them */
    {"0 12 * * MON", "2026-12-01 00:00", "2026-12-07 12:00"},
    {"0 0 1 JAN,jul *", "2026-02-01 00:00", "2026-07-01 00:00"},
    {"0 0 * * sat,SUN", "2026-12-01 00:00", "2026-12-05 00:00"},
    {"0 0 * * 6-7", "2026-12-05 00:00", "2026-12-06 00:00"},
    {"0 0 * * wed-fri", "2026-12-03 00:00", "2026-12-04 00:00"},
    {"0 0 1 feb-MAR *", "2026-02-01 00:00", "2026-03-01 00:00"},
    /* 7 is Sunday too */
    {"0 0 * * 7", "2026-12-01 00:00", "2026-12-06 00:00"},
    {"0 0 * * 0", "2026-12-01 00:00", "2026-12-06 00:00"},
    /* both day fields restricted: either matches (Friday 4th comes before the 13th) */
    {"0 0 13 * FRI", "2026-12-01 00:00", "2026-12-04 00:00"},
    {"0 0 13 * FRI", "2026-12-04 00:00", "2026-12-11 00:00"},
    {"0 0 13 * FRI", "2026-12-11 00:00", "2026-12-13 00:00"},
    /* one of them starts with *: both must (odd days that are Mondays) */
    {"0 0 */2 * MON", "2026-12-01 00:00", "2026-12-07 00:00"},
    {"0 0 13 * *", "2026-12-01 00:00", "2026-12-13 00:00"},
    {"0 0 * * 1-5", "2026-12-04 00:00", "2026-12-07 00:00"},
    /* ranges, steps over ranges, lists */
    {"15,45 9-17/4 * * 1-5", "2026-12-05 10:00", "2026-12-07 09:15"},
    {"15,45 9-17/4 * * 1-5", "2026-12-07 09:15", "2026-12-07 09:45"},
    {"15,45 9-17/4 * * 1-5", "2026-12-07 09:45", "2026-12-07 13:15"},
    {"15,45 9-17/4 * * 1-5", "2026-12-07 17:45", "2026-12-08 09:15"},
    {"30/15 * * * *", "2026-12-01 00:46", "2026-12-01 01:30"},
    {"0-10/5,58 * * * *", "2026-12-01 00:11", "2026-12-01 00:58"},
    {"  0   6  *  *  *  ", "2026-12-01 06:00", "2026-12-02 06:00"},
    /* shorthands */
    {"@hourly", "2026-12-01 10:30", "2026-12-01 11:00"},
    {"@daily", "2026-12-01 10:30", "2026-12-02 00:00"},
    {"@midnight", "2026-12-01 10:30", "2026-12-02 00:00"},
    {"@weekly", "2026-12-01 10:30", "2026-12-06 00:00"},
    {"@monthly", "2026-12-01 10:30", "2027-01-01 00:00"},
    {"@YEARLY", "2026-12-01 10:30", "2027-01-01 00:00"},
    {"@annually", "2027-01-01 00:00", "2028-01-01 00:00"},
};

static void test_next(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof next_cases / sizeof next_cases[0]; i++) {
        const struct next_case *k = &next_cases[i];
        struct cron c;
        char msg[256] = "";
        if (!cron_parse(k->expr, &c, msg, sizeof msg))
            fail_msg("\"%s\" refused: %s", k->expr, msg);
        char got[32];
        fmt(cron_next(&c, at(k->after)), got);
        if (strcmp(got, k->want) != 0)
            fail_msg("\"%s\" after %s: got %s, want %s", k->expr, k->after, got, k->want);
    }
}

struct bad_case {
    const char *expr, *msg;
};

static const struct bad_case bad_cases[] = {
    {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
    {"* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"},
    {"", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
    {"61 * * * *", "minute: \"61\" is out of range (0-59)"},
    {"* 24 * * *", "hour: \"24\" is out of range (0-23)"},
    {"* * 0 * *", "day-of-month: \"0\" is out of range (1-31)"},
    {"* * 32 * *", "day-of-month: \"32\" is out of range (1-31)"},
    {"* * * 13 *", "month: \"13\" is out of range (1-12)"},
    {"* * * * 8", "day-of-week: \"8\" is out of range (0-7)"},
    {"* * * FOO *", "month: invalid value \"FOO\" (expected a number 1-12 or a name)"},
    {"* * * * MONDAY", "day-of-week: invalid value \"MONDAY\" (expected a number 0-7 or a name)"},
    {"x * * * *", "minute: invalid value \"x\" (expected a number 0-59)"},
    {"1-x * * * *", "minute: invalid value \"x\" (expected a number 0-59)"},
    {"-5 * * * *", "minute: invalid value \"\" (expected a number 0-59)"},
    {"* * * * sat-sun",
     "day-of-week: range \"sat-sun\" goes backwards (write the smaller first; 0-7)"},
    {"5-2 * * * *", "minute: range \"5-2\" goes backwards (write the smaller first; 0-59)"},
    {"*/0 * * * *",
     "minute: invalid step in \"*/0\" (a step is a whole number from 1 to the largest value "
     "of the field's range 0-59)"},
    {"* */x * * *",
     "hour: invalid step in \"*/x\" (a step is a whole number from 1 to the largest value of "
     "the field's range 0-23)"},
    {"* * * */ *",
     "month: invalid step in \"*/\" (a step is a whole number from 1 to the largest value of "
     "the field's range 1-12)"},
    {"1,,2 * * * *", "minute: empty item in \"1,,2\""},
    {"1, * * * *", "minute: empty item in \"1,\""},
    {"99999999 * * * *", "minute: invalid value \"99999999\" (expected a number 0-59)"},
    {"0 0 30 2 *",
     "the schedule never fires: no month given has the day-of-month given (like February 30)"},
    {"0 0 31 4,6,9,11 *",
     "the schedule never fires: no month given has the day-of-month given (like February 30)"},
    {"@often",
     "unknown shorthand \"@often\" (expected @yearly, @annually, @monthly, @weekly, @daily, "
     "@midnight or @hourly)"},
    {"@daily 5",
     "unknown shorthand \"@daily 5\" (expected @yearly, @annually, @monthly, @weekly, @daily, "
     "@midnight or @hourly)"},
};

static void test_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *k = &bad_cases[i];
        struct cron c = {.minutes = 42};
        char msg[512] = "";
        if (cron_parse(k->expr, &c, msg, sizeof msg))
            fail_msg("\"%s\" accepted", k->expr);
        if (strcmp(msg, k->msg) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", k->expr, msg, k->msg);
        assert_int_equal(c.minutes, 42); /* not written on failure */
    }
}

static void test_too_long(void **state)
{
    (void)state;
    char expr[CRON_MAX_TEXT + 2];
    memset(expr, '1', sizeof expr - 1);
    expr[sizeof expr - 1] = '\0';
    struct cron c;
    char msg[256];
    assert_false(cron_parse(expr, &c, msg, sizeof msg));
    assert_string_equal(msg, "the expression is too long (at most 256 characters)");
}

/* A schedule with no day at all (only reachable by building one by hand). */
static void test_never(void **state)
{
    (void)state;
    struct cron c = {.minutes = 1,
                     .hours = 1,
                     .mdays = 1u << 30,
                     .months = 1u << 2,
                     .wdays = 0x7f,
                     .wday_star = true};
    assert_int_equal(cron_next(&c, at("2026-01-01 00:00")), -1);
}

/* Every minute of a leap day is found, and consecutive calls walk a schedule. */
static void test_walk(void **state)
{
    (void)state;
    struct cron c;
    char msg[256];
    assert_true(cron_parse("*/20 0-1 29 feb *", &c, msg, sizeof msg));
    static const char *const want[] = {"2028-02-29 00:00", "2028-02-29 00:20", "2028-02-29 00:40",
                                       "2028-02-29 01:00", "2028-02-29 01:20", "2028-02-29 01:40",
                                       "2032-02-29 00:00"};
    int64_t t = at("2026-06-01 00:00");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        t = cron_next(&c, t);
        char got[32];
        fmt(t, got);
        assert_string_equal(got, want[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next),     cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_too_long), cmocka_unit_test(test_never),
        cmocka_unit_test(test_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
