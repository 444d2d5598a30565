/*
 * period.c - DHIS2 period identifiers on the ISO calendar (see hibus/period.h and
 * FORMATS.md section 3): parsing ids, the period containing a date, ADX's
 * "start/duration" form, and strict ISO dates.
 *
 * Every date computation goes through a day number (days since 1970-01-01 on the
 * proleptic Gregorian calendar), so weeks and year boundaries need no special cases.
 * One table (type_infos) describes every type; parse, format, containing and ADX
 * all read it.
 *
 * The rules come from dhis2/dhis2-core; P = dhis-2/dhis-api/src/main/java/org/hisp/
 * dhis/period/, C = dhis-2/dhis-api/src/main/java/org/hisp/dhis/calendar/. Checked
 * against the tags 2.36.0 .. 2.42.5.2 and master (commit 3f8c14a).
 *
 * Weeks (Weekly, WeeklyWednesday, WeeklyThursday, WeeklyFriday, WeeklySaturday,
 * WeeklySunday). P/WeeklyAbstractPeriodType.java getIsoDate numbers a week with
 * java.time WeekFields.of(first day, 4): week 1 is the first week with at least
 * 4 days in the new year, i.e. the week holding January 4th, and the id's year
 * is that week-based year. C/DateUnitPeriodTypeParser.java getDateTimeFromWeek
 * reads ids back with the same WeekFields. The first day is each class's
 * startOfWeek (P/WeeklyWednesdayPeriodType.java 3, WeeklyThursday 4,
 * WeeklyFriday 5, WeeklySaturday 6, WeeklySunday 7; P/PeriodType.java
 * MAP_WEEK_TYPE). So for every start day, as for ISO weeks, week 1 can begin in
 * the previous December (2022WedW1 = 2021-12-29 .. 2022-01-04) and a year has 52
 * or 53 weeks of its own (2025SunW53 exists although ISO 2025 has 52 weeks, and
 * 2020WedW53 does not although ISO 2020 has 53). A week number beyond the
 * year's own count is invalid, as in DateUnitPeriodTypeParser since DHIS2-20277
 * (commit ef2eb85, in 2.40.11, 2.41.8, 2.42.4 and master); older releases checked
 * every weekly type against the ISO week count.
 *
 * BiWeekly: BiWn covers ISO weeks 2n-1 and 2n of the week-numbering year, 14 days.
 * In a 53-week year, BiW27 starts with week 53 and runs into week 1 of the next
 * year (as DHIS2 does: start = Monday of week 2n-1, end = start + 13 days), so it
 * overlaps the next year's BiW1; period_containing never returns it for a date in
 * the next ISO year.
 *
 * Months ("spans": n months in a 12-month cycle that starts in month `first`).
 * Quarterly, SixMonthly, Yearly, FinancialApril/July/Oct/Sep/Feb/Aug and
 * SixMonthlyApril name the calendar year their cycle starts in: 2024AprilS2 =
 * 2024-10-01 .. 2025-03-31 (P/SixMonthlyAbstractPeriodType.java createPeriod,
 * P/SixMonthlyAprilPeriodType.java getIsoDate), 2024Sep = 2024-09-01 .. 2025-08-31
 * (P/FinancialPeriodType.java createPeriod, P/FinancialSeptemberPeriodType.java,
 * FinancialFebruaryPeriodType.java, FinancialAugustPeriodType.java getIsoDate).
 * The November types name the year the cycle ENDS in (year_shift 1 below):
 * P/SixMonthlyNovemberPeriodType.java getIsoDate writes year + 1 for a November
 * start ("NovS1") and the year for a May start ("NovS2");
 * P/QuarterlyNovemberPeriodType.java writes year + 1 for November ("NovQ1") and
 * the year for February, May, August (NovQ2..4); P/FinancialNovemberPeriodType.java
 * writes start year + 1 ("2025Nov" = 2024-11-01 .. 2025-10-31). The parser agrees
 * (C/DateUnitPeriodTypeParser.java: NovS1, NovQ1 and Nov start in November of
 * year - 1).
 *
 * Id spellings. C/DateUnitType.java (2.36 .. 2.42) matches whole ids with
 * W(\d[\d]?), WedW/ThuW/SatW/SunW(\d[\d]?), BiW(\d[\d]?), (\d{4})[-]?(\d{2}) for
 * months, yyyyMMdd and (from 2.38.0) yyyy-MM-dd for days, and a single digit after
 * Q, S, AprilS, NovS, NovQ; master's P/Period.java Input.of accepts the same set
 * by length (adding FriW). So 2024W01, 2024WedW01, 2024BiW01, 2024-01 and
 * 2024-01-15 are DHIS2 ids, and dhis2-core writes the period back in canonical
 * form (PeriodType.createPeriod(DateInterval) recomputes the id from the start
 * date); 2024-W01, 2024-Q1, 2024Q01 and 2024NovS01 are not.
 *
 * Names: P/PeriodTypeEnum.java (master); the NAME constants of each class in 2.36.
 * TwoYearly has no id (its getIsoDate returns null) and is not a data set type.
 *
 * ADX: AdxPeriod.java, in dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/
 * hisp/dhis/dxf2/adx/ (2.36.3 .. 2.42) and dhis-2/dhis-api/src/main/java/org/hisp/
 * dhis/dxf2/adx/ (master), picks the type from the duration, then from the start's
 * weekday (P7D: Mon, Wed, Thu, Fri on master, Sat, Sun) or month (P6M: Jan/Jul
 * SixMonthly, Apr/Oct SixMonthlyApril, Nov/May SixMonthlyNov; P1Y: Jan Yearly,
 * Feb, Apr, Jul, Aug, Sep, Oct, Nov the financial years, Feb/Aug/Sep on master
 * only: 2.42 answers "invalid yearly type"). serialize() writes start/duration
 * for every type. But every P3M is parsed as QuarterlyPeriodType, whatever the
 * month, as the quarter containing the start: the "2024-11-01/P3M" DHIS2 writes
 * for 2025NovQ1 is read back as 2024Q4. QuarterlyNov thus has no ADX form that
 * DHIS2 understands: period_to_adx refuses it rather than have data filed under
 * the wrong quarter, and period_from_adx reads P3M as calendar quarters only.
 * Unlike DHIS2, hibus also requires the start to be the first day of the period.
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

static bool date_equal(struct period_date a, struct period_date b)
{
    return a.year == b.year && a.month == b.month && a.day == b.day;
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

/* Day number of the first day of week 1 of week-numbering year y, for weeks that
 * start on weekday `first`: the week holding January 4th (WeekFields.of(first, 4)).
 * It lies between December 29th and January 4th. */
static long week1_start(int y, int first)
{
    long jan4 = day_number((struct period_date){y, 1, 4});
    return jan4 - (weekday(jan4) - first + 7) % 7;
}

static int weeks_in_year(int y, int first)
{
    return (int)((week1_start(y + 1, first) - week1_start(y, first)) / 7);
}

/* Week-numbering year and week of a day, for weeks starting on `first`. */
static void week_of(long dn, int first, int *wy, int *week)
{
    int y = from_day_number(dn).year;
    if (dn < week1_start(y, first))
        y--;
    else if (dn >= week1_start(y + 1, first))
        y++;
    *wy = y;
    *week = (int)((dn - week1_start(y, first)) / 7) + 1;
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
 * The types
 * ------------------------------------------------------------------------------------ */

enum kind {
    KIND_DAY,     /* yyyyMMdd */
    KIND_WEEK,    /* yyyy<tag>n, weeks starting on weekday `first` */
    KIND_BIWEEK,  /* yyyyBiWn, pairs of ISO weeks */
    KIND_MONTH,   /* yyyyMM */
    KIND_BIMONTH, /* yyyyNNB */
    KIND_SPAN     /* yyyy<tag>n (or yyyy<tag> for 12 months): see the file comment */
};

static const struct type_info {
    const char *name; /* DHIS2's periodType name */
    enum kind kind;
    int first;       /* KIND_WEEK: weekday a week starts on, 1 = Monday .. 7 = Sunday;
                        KIND_SPAN: month the 12-month cycle starts in */
    int months;      /* KIND_SPAN: months per period, 3, 6 or 12 */
    int year_shift;  /* KIND_SPAN: id year minus the year the cycle starts in */
    const char *tag; /* KIND_WEEK, KIND_BIWEEK, KIND_SPAN: text after the year */
    const char *adx; /* ISO 8601 duration; NULL: DHIS2's ADX cannot express it */
} type_infos[PERIOD_TYPE_COUNT] = {
    [PERIOD_DAILY] = {"Daily", KIND_DAY, 0, 0, 0, "", "P1D"},
    [PERIOD_WEEKLY] = {"Weekly", KIND_WEEK, 1, 0, 0, "W", "P7D"},
    [PERIOD_BIWEEKLY] = {"BiWeekly", KIND_BIWEEK, 1, 0, 0, "BiW", "P14D"},
    [PERIOD_MONTHLY] = {"Monthly", KIND_MONTH, 0, 0, 0, "", "P1M"},
    [PERIOD_BIMONTHLY] = {"BiMonthly", KIND_BIMONTH, 0, 0, 0, "B", "P2M"},
    [PERIOD_QUARTERLY] = {"Quarterly", KIND_SPAN, 1, 3, 0, "Q", "P3M"},
    [PERIOD_SIXMONTHLY] = {"SixMonthly", KIND_SPAN, 1, 6, 0, "S", "P6M"},
    [PERIOD_YEARLY] = {"Yearly", KIND_SPAN, 1, 12, 0, "", "P1Y"},
    [PERIOD_FINANCIAL_APRIL] = {"FinancialApril", KIND_SPAN, 4, 12, 0, "April", "P1Y"},
    [PERIOD_FINANCIAL_JULY] = {"FinancialJuly", KIND_SPAN, 7, 12, 0, "July", "P1Y"},
    [PERIOD_FINANCIAL_OCT] = {"FinancialOct", KIND_SPAN, 10, 12, 0, "Oct", "P1Y"},
    [PERIOD_WEEKLY_WEDNESDAY] = {"WeeklyWednesday", KIND_WEEK, 3, 0, 0, "WedW", "P7D"},
    [PERIOD_WEEKLY_THURSDAY] = {"WeeklyThursday", KIND_WEEK, 4, 0, 0, "ThuW", "P7D"},
    [PERIOD_WEEKLY_FRIDAY] = {"WeeklyFriday", KIND_WEEK, 5, 0, 0, "FriW", "P7D"},
    [PERIOD_WEEKLY_SATURDAY] = {"WeeklySaturday", KIND_WEEK, 6, 0, 0, "SatW", "P7D"},
    [PERIOD_WEEKLY_SUNDAY] = {"WeeklySunday", KIND_WEEK, 7, 0, 0, "SunW", "P7D"},
    [PERIOD_SIXMONTHLY_APRIL] = {"SixMonthlyApril", KIND_SPAN, 4, 6, 0, "AprilS", "P6M"},
    [PERIOD_SIXMONTHLY_NOV] = {"SixMonthlyNov", KIND_SPAN, 11, 6, 1, "NovS", "P6M"},
    [PERIOD_QUARTERLY_NOV] = {"QuarterlyNov", KIND_SPAN, 11, 3, 1, "NovQ", NULL},
    [PERIOD_FINANCIAL_NOV] = {"FinancialNov", KIND_SPAN, 11, 12, 1, "Nov", "P1Y"},
    [PERIOD_FINANCIAL_SEP] = {"FinancialSep", KIND_SPAN, 9, 12, 0, "Sep", "P1Y"},
    [PERIOD_FINANCIAL_FEB] = {"FinancialFeb", KIND_SPAN, 2, 12, 0, "Feb", "P1Y"},
    [PERIOD_FINANCIAL_AUG] = {"FinancialAug", KIND_SPAN, 8, 12, 0, "Aug", "P1Y"},
};

/* The row of t, or NULL for a value outside the enum. */
static const struct type_info *info(enum period_type t)
{
    if ((unsigned)t >= (unsigned)PERIOD_TYPE_COUNT || type_infos[t].name == NULL)
        return NULL;
    return &type_infos[t];
}

bool period_type_parse(const char *name, enum period_type *out)
{
    for (int t = 0; name != NULL && t < PERIOD_TYPE_COUNT; t++)
        if (type_infos[t].name != NULL && strcmp(name, type_infos[t].name) == 0) {
            *out = (enum period_type)t;
            return true;
        }
    return false;
}

const char *period_type_name(enum period_type t)
{
    const struct type_info *ti = info(t);
    return ti != NULL ? ti->name : "unknown";
}

/* ------------------------------------------------------------------------------------
 * Building periods
 * ------------------------------------------------------------------------------------ */

/* Fills *out for the period of type t numbered n in id year y: the week, bi-week,
 * month, bi-month or span number (unused for Yearly and the financial years); for
 * Daily, n is the month and `day` the day. Checks every range, including that the
 * dates stay within years 1..9999. Writes *out only on success. */
static bool build(enum period_type t, int y, int n, int day, struct period *out)
{
    const struct type_info *ti = info(t);
    struct period p;
    memset(&p, 0, sizeof p);
    p.type = t;
    if (ti == NULL || y < YEAR_MIN || y > YEAR_MAX)
        return false;
    int w, c, k;
    long s;
    switch (ti->kind) {
    case KIND_DAY:
        p.start = (struct period_date){y, n, day};
        if (!date_valid(p.start))
            return false;
        p.end = p.start;
        snprintf(p.id, sizeof p.id, "%04u%02u%02u", (unsigned)y % 10000u, (unsigned)n % 100u,
                 (unsigned)day % 100u); /* ranges checked by date_valid() */
        break;
    case KIND_WEEK:
    case KIND_BIWEEK:
        w = ti->kind == KIND_WEEK ? n : 2 * n - 1;
        if (n < 1 || w > weeks_in_year(y, ti->first))
            return false;
        s = week1_start(y, ti->first) + 7L * (w - 1);
        p.start = from_day_number(s);
        p.end = from_day_number(s + (ti->kind == KIND_WEEK ? 6 : 13));
        if (p.start.year < YEAR_MIN || p.end.year > YEAR_MAX)
            return false;
        snprintf(p.id, sizeof p.id, "%04d%s%d", y, ti->tag, n);
        break;
    case KIND_MONTH:
        if (n < 1 || n > 12)
            return false;
        p.start = (struct period_date){y, n, 1};
        p.end = month_end(y, n);
        snprintf(p.id, sizeof p.id, "%04d%02d", y, n);
        break;
    case KIND_BIMONTH:
        /* n = the bi-month, 1..6: 202402B is March-April. dhis2-core's
         * BiMonthlyPeriodType writes (month + 1) / 2; FORMATS.md's "first
         * month" reading is wrong. */
        if (n < 1 || n > 6)
            return false;
        p.start = (struct period_date){y, 2 * n - 1, 1};
        p.end = months_end(y, 2 * n - 1, 2);
        snprintf(p.id, sizeof p.id, "%04d%02dB", y, n);
        break;
    case KIND_SPAN:
        k = ti->months == 12 ? 1 : n;
        if (k < 1 || k > 12 / ti->months)
            return false;
        /* c = months since year 0 of the first month of the period */
        c = (y - ti->year_shift) * 12 + (ti->first - 1) + (k - 1) * ti->months;
        p.start = (struct period_date){c / 12, c % 12 + 1, 1};
        p.end = months_end(p.start.year, p.start.month, ti->months);
        if (p.start.year < YEAR_MIN || p.end.year > YEAR_MAX)
            return false;
        if (ti->months == 12)
            snprintf(p.id, sizeof p.id, "%04d%s", y, ti->tag);
        else
            snprintf(p.id, sizeof p.id, "%04d%s%d", y, ti->tag, k);
        break;
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

/* The number filling all of s, of 1 to max_digits digits (leading zeros allowed,
 * as in DHIS2's (\d[\d]?) for weeks); -1 if not. Range checks are build()'s. */
static int number(const char *s, size_t max_digits)
{
    size_t n = strlen(s);
    if (n < 1 || n > max_digits)
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
    const char *r = id + 4;
    size_t rlen = len - 4;

    /* Days and months, with DHIS2's dashed spellings (see the file comment). */
    if (rlen == 4 && digits(r, 4) >= 0)
        return build(PERIOD_DAILY, y, digits(r, 2), digits(r + 2, 2), out);
    if (rlen == 6 && r[0] == '-' && r[3] == '-' && digits(r + 1, 2) >= 0 && digits(r + 4, 2) >= 0)
        return build(PERIOD_DAILY, y, digits(r + 1, 2), digits(r + 4, 2), out);
    if (rlen == 2 && digits(r, 2) >= 0)
        return build(PERIOD_MONTHLY, y, digits(r, 2), 0, out);
    if (rlen == 3 && r[0] == '-' && digits(r + 1, 2) >= 0)
        return build(PERIOD_MONTHLY, y, digits(r + 1, 2), 0, out);
    if (rlen == 3 && digits(r, 2) >= 0 && r[2] == 'B')
        return build(PERIOD_BIMONTHLY, y, digits(r, 2), 0, out);

    /* Tagged types. No tag followed by a number is a prefix of another tag followed
     * by a number ("Nov" is only whole), so at most one row can match. */
    for (int t = 0; t < PERIOD_TYPE_COUNT; t++) {
        const struct type_info *ti = &type_infos[t];
        if (ti->name == NULL ||
            (ti->kind != KIND_WEEK && ti->kind != KIND_BIWEEK && ti->kind != KIND_SPAN))
            continue;
        size_t tl = strlen(ti->tag);
        if (strncmp(r, ti->tag, tl) != 0)
            continue;
        const char *num = r + tl;
        if (ti->kind == KIND_SPAN && ti->months == 12) {
            if (*num == '\0')
                return build((enum period_type)t, y, 0, 0, out);
            continue;
        }
        int n = number(num, ti->kind == KIND_SPAN ? 1 : 2);
        if (n >= 0)
            return build((enum period_type)t, y, n, 0, out);
    }
    return false;
}

bool period_containing(enum period_type t, struct period_date d, struct period *out)
{
    const struct type_info *ti = info(t);
    if (ti == NULL || !date_valid(d))
        return false;
    int wy, week, m, c;
    switch (ti->kind) {
    case KIND_DAY: return build(t, d.year, d.month, d.day, out);
    case KIND_WEEK:
        week_of(day_number(d), ti->first, &wy, &week);
        return build(t, wy, week, 0, out);
    case KIND_BIWEEK:
        week_of(day_number(d), 1, &wy, &week);
        return build(t, wy, (week + 1) / 2, 0, out);
    case KIND_MONTH: return build(t, d.year, d.month, 0, out);
    case KIND_BIMONTH: return build(t, d.year, (d.month + 1) / 2, 0, out);
    case KIND_SPAN:
        /* m: months since year 0; c: the calendar year the cycle holding d starts in
         * (m - (first - 1) > 0 for every valid date, so / rounds down). */
        m = d.year * 12 + d.month - 1;
        c = (m - (ti->first - 1)) / 12;
        return build(t, c + ti->year_shift, (m - (c * 12 + ti->first - 1)) / ti->months + 1, 0,
                     out);
    }
    return false;
}

/* ------------------------------------------------------------------------------------
 * ADX: ISO 8601 "start/duration"
 * ------------------------------------------------------------------------------------ */

bool period_to_adx(const struct period *p, char *out, size_t outlen)
{
    const struct type_info *ti = info(p->type);
    if (ti == NULL || ti->adx == NULL || !date_valid(p->start))
        return false;
    char start[11];
    period_date_format(p->start, start);
    int n = snprintf(out, outlen, "%s/%s", start, ti->adx);
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

    /* The type with this duration whose period containing the start begins on it.
     * Types sharing a duration start on different weekdays (P7D) or months (P6M:
     * Jan/Jul, Apr/Oct, May/Nov; P1Y), as in DHIS2's AdxPeriod, so at most one does. */
    for (int t = 0; t < PERIOD_TYPE_COUNT; t++) {
        const struct type_info *ti = &type_infos[t];
        struct period p;
        if (ti->adx == NULL || strcmp(dur, ti->adx) != 0)
            continue;
        if (period_containing((enum period_type)t, d, &p) && date_equal(p.start, d)) {
            *out = p;
            return true;
        }
    }
    return false;
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

long period_day_number(struct period_date d)
{
    return day_number(d);
}

struct period_date period_date_of_day(long day)
{
    return from_day_number(day);
}

int period_days(const struct period *p)
{
    return (int)(day_number(p->end) - day_number(p->start)) + 1;
}
