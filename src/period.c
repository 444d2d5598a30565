/*
 * period.c - DHIS2 period identifiers on the ISO calendar (see hibus/period.h and
 * FORMATS.md section 3): parsing ids, the period containing a date, ADX's
 * "start/duration" form, and strict ISO dates.
 *
 * Every date computation goes through a day number (days since 1970-01-01 on the
 * proleptic Gregorian calendar), so weeks and year boundaries need no special cases.
 * Weeks follow ISO 8601: Monday start, week 1 is the week holding January 4th, so
 * 2025W1 starts on 2024-12-30 and long years have a W53. The week-numbering year,
 * not the calendar year, prefixes a week id.
 *
 * BiWeekly: BiWn covers ISO weeks 2n-1 and 2n of the week-numbering year, 14 days.
 * In a 53-week year, BiW27 starts with week 53 and runs into week 1 of the next
 * year (as DHIS2 does: start = Monday of week 2n-1, end = start + 13 days), so it
 * overlaps the next year's BiW1; period_containing never returns it for a date in
 * the next ISO year.
 *
 * Pure functions, no global state: thread-safe.
 */
#include "hibus/period.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define YEAR_MIN 1
#define YEAR_MAX 9999

/* ------------------------------------------------------------------------------------
 * Calendar arithmetic
 * ------------------------------------------------------------------------------------ */

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && is_leap(y))
        return 29;
    return dim[m - 1];
}

static bool date_valid(struct period_date d)
{
    return d.year >= YEAR_MIN && d.year <= YEAR_MAX && d.month >= 1 && d.month <= 12 &&
           d.day >= 1 && d.day <= days_in_month(d.year, d.month);
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
static long day_number(struct period_date d)
{
    long y = d.year - (d.month <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (d.month + 9) % 12;
    long doy = (153 * mp + 2) / 5 + d.day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static struct period_date from_day_number(long z)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    struct period_date d;
    d.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    d.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    d.year = (int)(yoe + era * 400 + (d.month <= 2));
    return d;
}

/* ISO weekday: 1 = Monday .. 7 = Sunday. 1970-01-01 was a Thursday. */
static int weekday(long dn)
{
    long w = (dn + 3) % 7;
    if (w < 0)
        w += 7;
    return (int)w + 1;
}

/* Day number of the Monday of ISO week 1 of week-numbering year y. */
static long iso_week1_monday(int y)
{
    long jan4 = day_number((struct period_date){y, 1, 4});
    return jan4 - (weekday(jan4) - 1);
}

static int iso_weeks_in_year(int y)
{
    return (int)((iso_week1_monday(y + 1) - iso_week1_monday(y)) / 7);
}

/* ISO week-numbering year and week of a day. */
static void iso_week_of(long dn, int *wy, int *week)
{
    int y = from_day_number(dn).year;
    if (dn < iso_week1_monday(y))
        y--;
    else if (dn >= iso_week1_monday(y + 1))
        y++;
    *wy = y;
    *week = (int)((dn - iso_week1_monday(y)) / 7) + 1;
}

static struct period_date month_end(int y, int m)
{
    return (struct period_date){y, m, days_in_month(y, m)};
}

/* The last day of the span of n months starting at (y, m). */
static struct period_date months_end(int y, int m, int n)
{
    int idx = y * 12 + (m - 1) + n - 1;
    return month_end(idx / 12, idx % 12 + 1);
}

/* ------------------------------------------------------------------------------------
 * Type names
 * ------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum period_type type;
} type_names[] = {
    {"Daily", PERIOD_DAILY},
    {"Weekly", PERIOD_WEEKLY},
    {"BiWeekly", PERIOD_BIWEEKLY},
    {"Monthly", PERIOD_MONTHLY},
    {"BiMonthly", PERIOD_BIMONTHLY},
    {"Quarterly", PERIOD_QUARTERLY},
    {"SixMonthly", PERIOD_SIXMONTHLY},
    {"Yearly", PERIOD_YEARLY},
    {"FinancialApril", PERIOD_FINANCIAL_APRIL},
    {"FinancialJuly", PERIOD_FINANCIAL_JULY},
    {"FinancialOct", PERIOD_FINANCIAL_OCT},
};

#define N_TYPES (sizeof type_names / sizeof type_names[0])

bool period_type_parse(const char *name, enum period_type *out)
{
    for (size_t i = 0; name != NULL && i < N_TYPES; i++)
        if (strcmp(name, type_names[i].name) == 0) {
            *out = type_names[i].type;
            return true;
        }
    return false;
}

const char *period_type_name(enum period_type t)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (type_names[i].type == t)
            return type_names[i].name;
    return "unknown";
}

/* ------------------------------------------------------------------------------------
 * Building periods
 * ------------------------------------------------------------------------------------ */

/* The first month of financial years of type t. */
static int financial_month(enum period_type t)
{
    switch (t) {
    case PERIOD_FINANCIAL_APRIL: return 4;
    case PERIOD_FINANCIAL_JULY: return 7;
    case PERIOD_FINANCIAL_OCT: return 10;
    default: return 0;
    }
}

static const char *financial_suffix(enum period_type t)
{
    switch (t) {
    case PERIOD_FINANCIAL_APRIL: return "April";
    case PERIOD_FINANCIAL_JULY: return "July";
    case PERIOD_FINANCIAL_OCT: return "Oct";
    default: return "";
    }
}

/* Fills *out for the period of type t numbered n in year y (n: day of... see each
 * case; for Daily, (y, n, day) is passed as y, month n, day `day`). Checks ranges.
 * Writes *out only on success. */
static bool build(enum period_type t, int y, int n, int day, struct period *out)
{
    struct period p;
    memset(&p, 0, sizeof p);
    p.type = t;
    if (y < YEAR_MIN || y > YEAR_MAX)
        return false;
    int w;
    switch (t) {
    case PERIOD_DAILY:
        p.start = (struct period_date){y, n, day};
        if (!date_valid(p.start))
            return false;
        p.end = p.start;
        snprintf(p.id, sizeof p.id, "%04u%02u%02u", (unsigned)y % 10000u, (unsigned)n % 100u,
                 (unsigned)day % 100u); /* ranges checked by date_valid() */
        break;
    case PERIOD_WEEKLY:
    case PERIOD_BIWEEKLY:
        w = t == PERIOD_WEEKLY ? n : 2 * n - 1;
        if (n < 1 || w > iso_weeks_in_year(y))
            return false;
        {
            long s = iso_week1_monday(y) + 7L * (w - 1);
            long e = s + (t == PERIOD_WEEKLY ? 6 : 13);
            p.start = from_day_number(s);
            p.end = from_day_number(e);
            if (p.end.year > YEAR_MAX || p.start.year < YEAR_MIN)
                return false;
        }
        snprintf(p.id, sizeof p.id, t == PERIOD_WEEKLY ? "%04dW%d" : "%04dBiW%d", y, n);
        break;
    case PERIOD_MONTHLY:
        if (n < 1 || n > 12)
            return false;
        p.start = (struct period_date){y, n, 1};
        p.end = month_end(y, n);
        snprintf(p.id, sizeof p.id, "%04d%02d", y, n);
        break;
    case PERIOD_BIMONTHLY:
        /* n = the bi-month, 1..6: 202402B is March-April. dhis2-core's
         * BiMonthlyPeriodType writes (month + 1) / 2; FORMATS.md's "first
         * month" reading is wrong. */
        if (n < 1 || n > 6)
            return false;
        p.start = (struct period_date){y, 2 * n - 1, 1};
        p.end = months_end(y, 2 * n - 1, 2);
        snprintf(p.id, sizeof p.id, "%04d%02dB", y, n);
        break;
    case PERIOD_QUARTERLY:
        if (n < 1 || n > 4)
            return false;
        p.start = (struct period_date){y, 3 * n - 2, 1};
        p.end = months_end(y, 3 * n - 2, 3);
        snprintf(p.id, sizeof p.id, "%04dQ%d", y, n);
        break;
    case PERIOD_SIXMONTHLY:
        if (n < 1 || n > 2)
            return false;
        p.start = (struct period_date){y, 6 * n - 5, 1};
        p.end = months_end(y, 6 * n - 5, 6);
        snprintf(p.id, sizeof p.id, "%04dS%d", y, n);
        break;
    case PERIOD_YEARLY:
        p.start = (struct period_date){y, 1, 1};
        p.end = (struct period_date){y, 12, 31};
        snprintf(p.id, sizeof p.id, "%04d", y);
        break;
    case PERIOD_FINANCIAL_APRIL:
    case PERIOD_FINANCIAL_JULY:
    case PERIOD_FINANCIAL_OCT:
        if (y + 1 > YEAR_MAX)
            return false;
        p.start = (struct period_date){y, financial_month(t), 1};
        p.end = months_end(y, financial_month(t), 12);
        snprintf(p.id, sizeof p.id, "%04d%s", y, financial_suffix(t));
        break;
    default: return false;
    }
    *out = p;
    return true;
}

/* ------------------------------------------------------------------------------------
 * Parsing ids
 * ------------------------------------------------------------------------------------ */

/* Exactly n ASCII digits at s, as a number; -1 if not. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* A small unpadded positive integer filling all of s ("1".."99"); -1 if not. */
static int small_number(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 2 || s[0] == '0')
        return -1;
    return digits(s, n);
}

bool period_parse(const char *id, struct period *out)
{
    if (id == NULL)
        return false;
    size_t len = strlen(id);
    if (len < 4 || len >= sizeof out->id)
        return false;
    int y = digits(id, 4);
    if (y < 0)
        return false;
    const char *rest = id + 4;

    if (*rest == '\0')
        return build(PERIOD_YEARLY, y, 0, 0, out);
    if (len == 8 && digits(rest, 4) >= 0)
        return build(PERIOD_DAILY, y, digits(rest, 2), digits(rest + 2, 2), out);
    if (len == 6 && digits(rest, 2) >= 0)
        return build(PERIOD_MONTHLY, y, digits(rest, 2), 0, out);
    if (len == 7 && digits(rest, 2) >= 0 && rest[2] == 'B')
        return build(PERIOD_BIMONTHLY, y, digits(rest, 2), 0, out);
    if (rest[0] == 'Q')
        return build(PERIOD_QUARTERLY, y, small_number(rest + 1), 0, out);
    if (rest[0] == 'S')
        return build(PERIOD_SIXMONTHLY, y, small_number(rest + 1), 0, out);
    if (rest[0] == 'W')
        return build(PERIOD_WEEKLY, y, small_number(rest + 1), 0, out);
    if (strncmp(rest, "BiW", 3) == 0)
        return build(PERIOD_BIWEEKLY, y, small_number(rest + 3), 0, out);
    if (strcmp(rest, "April") == 0)
        return build(PERIOD_FINANCIAL_APRIL, y, 0, 0, out);
    if (strcmp(rest, "July") == 0)
        return build(PERIOD_FINANCIAL_JULY, y, 0, 0, out);
    if (strcmp(rest, "Oct") == 0)
        return build(PERIOD_FINANCIAL_OCT, y, 0, 0, out);
    return false;
}

bool period_containing(enum period_type t, struct period_date d, struct period *out)
{
    if (!date_valid(d))
        return false;
    int wy, week, fm;
    switch (t) {
    case PERIOD_DAILY: return build(t, d.year, d.month, d.day, out);
    case PERIOD_WEEKLY: iso_week_of(day_number(d), &wy, &week); return build(t, wy, week, 0, out);
    case PERIOD_BIWEEKLY:
        iso_week_of(day_number(d), &wy, &week);
        return build(t, wy, (week + 1) / 2, 0, out);
    case PERIOD_MONTHLY: return build(t, d.year, d.month, 0, out);
    case PERIOD_BIMONTHLY: return build(t, d.year, (d.month + 1) / 2, 0, out);
    case PERIOD_QUARTERLY: return build(t, d.year, (d.month - 1) / 3 + 1, 0, out);
    case PERIOD_SIXMONTHLY: return build(t, d.year, (d.month - 1) / 6 + 1, 0, out);
    case PERIOD_YEARLY: return build(t, d.year, 0, 0, out);
    case PERIOD_FINANCIAL_APRIL:
    case PERIOD_FINANCIAL_JULY:
    case PERIOD_FINANCIAL_OCT:
        fm = financial_month(t);
        return build(t, d.month >= fm ? d.year : d.year - 1, 0, 0, out);
    }
    return false;
}

/* ------------------------------------------------------------------------------------
 * ADX: ISO 8601 "start/duration"
 * ------------------------------------------------------------------------------------ */

static const char *adx_duration(enum period_type t)
{
    switch (t) {
    case PERIOD_DAILY: return "P1D";
    case PERIOD_WEEKLY: return "P7D";
    case PERIOD_BIWEEKLY: return "P14D";
    case PERIOD_MONTHLY: return "P1M";
    case PERIOD_BIMONTHLY: return "P2M";
    case PERIOD_QUARTERLY: return "P3M";
    case PERIOD_SIXMONTHLY: return "P6M";
    case PERIOD_YEARLY:
    case PERIOD_FINANCIAL_APRIL:
    case PERIOD_FINANCIAL_JULY:
    case PERIOD_FINANCIAL_OCT: return "P1Y";
    }
    return NULL;
}

bool period_to_adx(const struct period *p, char *out, size_t outlen)
{
    const char *dur = adx_duration(p->type);
    if (dur == NULL || !date_valid(p->start))
        return false;
    char start[11];
    period_date_format(p->start, start);
    int n = snprintf(out, outlen, "%s/%s", start, dur);
    return n > 0 && (size_t)n < outlen;
}

bool period_from_adx(const char *s, struct period *out)
{
    struct period_date d;
    char start[11];
    if (s == NULL || strlen(s) < 12 || s[10] != '/')
        return false;
    memcpy(start, s, 10);
    start[10] = '\0';
    if (!period_date_parse(start, &d))
        return false;
    const char *dur = s + 11;

    /* Which type the duration names; for P1Y the start month decides which year. */
    enum period_type t;
    if (strcmp(dur, "P1Y") == 0) {
        switch (d.month) {
        case 1: t = PERIOD_YEARLY; break;
        case 4: t = PERIOD_FINANCIAL_APRIL; break;
        case 7: t = PERIOD_FINANCIAL_JULY; break;
        case 10: t = PERIOD_FINANCIAL_OCT; break;
        default: return false;
        }
    } else {
        static const enum period_type others[] = {
            PERIOD_DAILY,     PERIOD_WEEKLY,    PERIOD_BIWEEKLY,  PERIOD_MONTHLY,
            PERIOD_BIMONTHLY, PERIOD_QUARTERLY, PERIOD_SIXMONTHLY};
        size_t i;
        for (i = 0; i < sizeof others / sizeof others[0]; i++)
            if (strcmp(dur, adx_duration(others[i])) == 0)
                break;
        if (i == sizeof others / sizeof others[0])
            return false;
        t = others[i];
    }

    /* The start must be the first day of the period that contains it. */
    struct period p;
    if (!period_containing(t, d, &p))
        return false;
    if (p.start.year != d.year || p.start.month != d.month || p.start.day != d.day)
        return false;
    *out = p;
    return true;
}

/* ------------------------------------------------------------------------------------
 * Dates
 * ------------------------------------------------------------------------------------ */

bool period_date_parse(const char *s, struct period_date *out)
{
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    struct period_date d = {digits(s, 4), digits(s + 5, 2), digits(s + 8, 2)};
    if (d.year < 0 || d.month < 0 || d.day < 0 || !date_valid(d))
        return false;
    *out = d;
    return true;
}

void period_date_format(struct period_date d, char out[11])
{
    /* Bounded to what fits: a date_valid() date is always exactly 10 characters. */
    unsigned y = d.year < 0 ? 0u : (unsigned)d.year % 10000u;
    unsigned m = d.month < 0 ? 0u : (unsigned)d.month % 100u;
    unsigned dd = d.day < 0 ? 0u : (unsigned)d.day % 100u;
    snprintf(out, 11, "%04u-%02u-%02u", y, m, dd);
}

int period_days(const struct period *p)
{
    return (int)(day_number(p->end) - day_number(p->start)) + 1;
}
