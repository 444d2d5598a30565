/*
 * dhis2-sim.c - a DHIS2 stand-in that speaks the real DHIS2 wire format.
 *
 * Used by hibus's integration tests, the demo and the benchmarks in place of a
 * real DHIS2 server. From an in-memory metadata fixture (metadata.json) it
 * serves the parts of the DHIS2 Web API that hibus talks to:
 *
 *   POST /api/dataValueSets    JSON, CSV and ADX imports, validated and counted
 *                              the way dhis2-core's import service does it for
 *                              the release chosen with --version (2.36 .. 2.42)
 *   GET  /api/dataValueSets    export of stored values
 *   GET  /api/system/info, /api/{organisationUnits,dataElements,
 *        categoryOptionCombos,dataSets}[/{uid}]   metadata checks
 *   /admin/...                 fault injection, stored values, completions,
 *                              counters, reset
 *
 * Every rule names the dhis2-core class it imitates (repository dhis2/dhis2-core;
 * tests/dhis2-sim/README.md lists them with the tags they were read at). No
 * code was copied: the rules are re-implemented here.
 *
 * Period ids and ADX periods are implemented here, independently of hibus's
 * own src/period.c, so that the simulator can catch hibus's mistakes instead
 * of sharing them.
 *
 * Threads: libmicrohttpd runs one thread per connection, so a simulated stall
 * never blocks other clients. The metadata is immutable once loaded; the value
 * store, the completions and the fault counters have mutexes; request counters
 * are atomics.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <microhttpd.h>

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define SIM_MAX_BODY (64u * 1024u * 1024u) /* larger request bodies get 413 */
#define SIM_MAX_PATH 512                   /* longer paths get 414 */
#define SIM_MAX_AUTH 1024                  /* decoded Basic credentials */
#define SIM_MAX_STALL 3600.0               /* seconds */
#define SIM_MAX_VALUE 50000                /* ValidationUtils.VALUE_MAX_LENGTH */
#define SIM_PERIOD_MAX 24                  /* longest canonical period id + NUL */
#define SIM_UID_LEN 11
#define ADX_NS "urn:ihe:qrph:adx:2015"
#define DXF_NS "http://dhis2.org/schema/dxf/2.0"

/* ------------------------------------------------------------------------ */
/* Options, the imitated release and the rules that depend on it           */
/* ------------------------------------------------------------------------ */

static struct {
    const char *address;
    unsigned port;
    const char *metadata_path;
    int minor, patch, hotfix; /* 2.<minor>.<patch>[.<hotfix>] */
    bool patch_given;
    char version[32]; /* the full release, e.g. "2.40.4" */
    bool quiet;
} opt = {"127.0.0.1", 0, NULL, 40, 0, 0, false, "", false};

/* The newest release of each line among dhis2-core's tags, used when --version
 * names no patch release and the fixture's system.version is of another line. */
static const struct {
    int minor, patch, hotfix;
} latest_release[] = {
    {36, 13, 2}, {37, 10, 0}, {38, 7, 0}, {39, 10, 1}, {40, 12, 0}, {41, 9, 1}, {42, 5, 2},
};

/* True when the release is 2.<minor>.<patch> or a later patch of that line. */
static bool line_since(int minor, int patch)
{
    return opt.minor == minor && opt.patch >= patch;
}

/* DefaultDataValueSetService.dataValueUpdateShouldBeIgnored and getCompletionDate:
 * 2.38.6, 2.39.5, 2.40.3 and 2.41.0 on (one backport). */
static bool rule_unchanged_ignored(void)
{
    return opt.minor >= 41 || line_since(38, 6) || line_since(39, 5) || line_since(40, 3);
}

/* ImportSummary.rejectedIndexes: 2.39.2, 2.40.1 and 2.41.0 on. */
static bool rule_rejected_indexes(void)
{
    return opt.minor >= 41 || line_since(39, 2) || line_since(40, 1);
}

/* DateUnitType QUARTERLY_NOV ("2025NovQ1"): 2.38.4, 2.39.3, 2.40.1 and 2.41.0 on. */
static bool rule_quarterly_nov(void)
{
    return opt.minor >= 41 || line_since(38, 4) || line_since(39, 3) || line_since(40, 1);
}

/* DateUnitType FINANCIAL_SEPTEMBER ("2024Sep"): 2.42.0 on. */
static bool rule_financial_sep(void)
{
    return opt.minor >= 42;
}

/* DateUnitType DAILY accepts "2024-01-15" besides "20240115": 2.38.0 on. */
static bool rule_daily_dashes(void)
{
    return opt.minor >= 38;
}

/* DataValueSetImportValidator and ImportConflict with error codes, property,
 * objects and indexes: 2.37.0 on (before: ImportConflict(object, value) only). */
static bool rule_structured(void)
{
    return opt.minor >= 37;
}

/* DataValueSetImportValidator.checkDataValueTargetDataSets (future periods and
 * strictDataElements judged per target data set): 2.39.1 and 2.40.0 on. */
static bool rule_target_data_sets(void)
{
    return opt.minor >= 40 || line_since(39, 1);
}

/* CsvDataValueSetReader takes the data set from the dataSet import option: 2.39.0 on. */
static bool rule_csv_data_set_option(void)
{
    return opt.minor >= 39;
}

/* AdxDataValueSetReader (2.42): an ADX problem fails the whole import. Before,
 * DefaultAdxDataService piped ADX into a DXF2 import with its own conflicts. */
static bool rule_adx_reader(void)
{
    return opt.minor >= 42;
}

/* ------------------------------------------------------------------------ */
/* Global state                                                             */
/* ------------------------------------------------------------------------ */

/* Stops simulated stalls early when the simulator shuts down. */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static bool stopping;

static atomic_ulong n_requests, n_imports, n_faults;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One write(2) per line: connection threads log at once, and a line split between
 * two stdio calls could be spliced into another thread's (tests parse these lines). */
static void logf_(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* A string member of a JSON object, or NULL when absent or not a string. */
static const char *jstr(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_uid(const char *s)
{
    if (!s || strlen(s) != SIM_UID_LEN || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < SIM_UID_LEN; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

/* Current UTC time as DHIS2 prints it: 2026-01-02T10:00:00.000 */
static void now_iso(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03u", (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
}

/* Sleeps up to `seconds`, returning early when the simulator stops. */
static void sim_sleep(double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (seconds > SIM_MAX_STALL)
        seconds = SIM_MAX_STALL;
    long long ns = (long long)(seconds * 1e9);
    deadline.tv_sec += (time_t)(ns / 1000000000LL);
    deadline.tv_nsec += (long)(ns % 1000000000LL);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&stop_mu);
    while (!stopping)
        if (pthread_cond_timedwait(&stop_cv, &stop_mu, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&stop_mu);
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes base64 into a NUL-terminated string; false when invalid or too long. */
static bool b64_decode(const char *in, char *out, size_t size)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64_value((unsigned char)*in);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= size)
                return false;
            out[o++] = (char)((acc >> bits) & 0xFFu);
        }
    }
    out[o] = '\0';
    return true;
}

/* Java's trimToNull: the string without leading/trailing blanks in `buf`, or NULL when blank. */
static const char *trim_to_null(const char *s, char *buf, size_t size)
{
    if (!s)
        return NULL;
    while (*s && (unsigned char)*s <= ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (unsigned char)s[n - 1] <= ' ')
        n--;
    if (n == 0)
        return NULL;
    if (n >= size)
        n = size - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* A malloc'ed trimToNull copy (NULL when blank or out of memory). */
static char *trim_dup(const char *s)
{
    if (!s)
        return NULL;
    while (*s && (unsigned char)*s <= ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (unsigned char)s[n - 1] <= ' ')
        n--;
    return n ? strndup(s, n) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Dates and DHIS2 periods (ISO calendar)                                   */
/* ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const long era = (y >= 0 ? y : y - 399) / 400;
    const long yoe = y - era * 400;
    const long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, int *y, int *m, int *d)
{
    z += 719468;
    const long era = (z >= 0 ? z : z - 146096) / 146097;
    const long doe = z - era * 146097;
    const long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* 0 = Monday .. 6 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(long days)
{
    return (int)(((days % 7) + 7 + 3) % 7);
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return n > 0;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Parses yyyy-MM-dd exactly. */
static bool parse_date(const char *s, size_t len, long *days)
{
    if (len != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
        !all_digits(s + 8, 2))
        return false;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    *days = days_from_civil(y, m, d);
    return true;
}

static void format_date(long days, char *buf, size_t size)
{
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, size, "%04d-%02d-%02d", y, m, d);
}

/* The period types of dhis2-core's PeriodTypeEnum that the simulator knows. */
enum ptype {
    PT_DAILY,
    PT_WEEKLY, /* ISO, Monday */
    PT_WEEKLY_WED,
    PT_WEEKLY_THU,
    PT_WEEKLY_SAT,
    PT_WEEKLY_SUN,
    PT_BIWEEKLY,
    PT_MONTHLY,
    PT_BIMONTHLY,
    PT_QUARTERLY,
    PT_QUARTERLY_NOV,
    PT_SIXMONTHLY,
    PT_SIXMONTHLY_APRIL,
    PT_SIXMONTHLY_NOV,
    PT_YEARLY,
    PT_FIN_APRIL,
    PT_FIN_JULY,
    PT_FIN_SEP,
    PT_FIN_OCT,
    PT_FIN_NOV,
    PT_COUNT
};

enum pkind { PK_DAY, PK_WEEK, PK_MONTH };

static const struct ptype_def {
    const char *name; /* the PeriodType name, as a data set's periodType */
    enum pkind kind;
    int first_day;       /* PK_WEEK: 0 = Monday .. 6 = Sunday */
    int span;            /* PK_WEEK: weeks; PK_MONTH: months */
    int anchor;          /* PK_MONTH: a month that starts a period (1..12) */
    bool names_end_year; /* a period that starts in November is named after the next year */
    const char *tag;     /* the id after the year ("W", "NovQ", "April", ...) */
} ptypes[PT_COUNT] = {
    [PT_DAILY] = {"Daily", PK_DAY, 0, 1, 0, false, ""},
    [PT_WEEKLY] = {"Weekly", PK_WEEK, 0, 1, 0, false, "W"},
    [PT_WEEKLY_WED] = {"WeeklyWednesday", PK_WEEK, 2, 1, 0, false, "WedW"},
    [PT_WEEKLY_THU] = {"WeeklyThursday", PK_WEEK, 3, 1, 0, false, "ThuW"},
    [PT_WEEKLY_SAT] = {"WeeklySaturday", PK_WEEK, 5, 1, 0, false, "SatW"},
    [PT_WEEKLY_SUN] = {"WeeklySunday", PK_WEEK, 6, 1, 0, false, "SunW"},
    [PT_BIWEEKLY] = {"BiWeekly", PK_WEEK, 0, 2, 0, false, "BiW"},
    [PT_MONTHLY] = {"Monthly", PK_MONTH, 0, 1, 1, false, ""},
    [PT_BIMONTHLY] = {"BiMonthly", PK_MONTH, 0, 2, 1, false, "B"},
    [PT_QUARTERLY] = {"Quarterly", PK_MONTH, 0, 3, 1, false, "Q"},
    [PT_QUARTERLY_NOV] = {"QuarterlyNov", PK_MONTH, 0, 3, 11, true, "NovQ"},
    [PT_SIXMONTHLY] = {"SixMonthly", PK_MONTH, 0, 6, 1, false, "S"},
    [PT_SIXMONTHLY_APRIL] = {"SixMonthlyApril", PK_MONTH, 0, 6, 4, false, "AprilS"},
    [PT_SIXMONTHLY_NOV] = {"SixMonthlyNov", PK_MONTH, 0, 6, 11, true, "NovS"},
    [PT_YEARLY] = {"Yearly", PK_MONTH, 0, 12, 1, false, ""},
    [PT_FIN_APRIL] = {"FinancialApril", PK_MONTH, 0, 12, 4, false, "April"},
    [PT_FIN_JULY] = {"FinancialJuly", PK_MONTH, 0, 12, 7, false, "July"},
    [PT_FIN_SEP] = {"FinancialSep", PK_MONTH, 0, 12, 9, false, "Sep"},
    [PT_FIN_OCT] = {"FinancialOct", PK_MONTH, 0, 12, 10, false, "Oct"},
    [PT_FIN_NOV] = {"FinancialNov", PK_MONTH, 0, 12, 11, true, "Nov"},
};

struct period {
    enum ptype type;
    int year;   /* the year in the id */
    int index;  /* week, month, quarter, half... (day of year for daily) */
    long start; /* days since the epoch, inclusive */
    long end;   /* inclusive */
};

/* The period type of a data set's periodType name; Monthly when unknown. */
static enum ptype ptype_by_name(const char *name)
{
    for (int t = 0; name && t < PT_COUNT; t++)
        if (strcmp(ptypes[t].name, name) == 0)
            return (enum ptype)t;
    return PT_MONTHLY;
}

/*
 * First day of week 1 of `year` for weeks starting on `first_day`: the week
 * holding January 4th, i.e. the first week with at least four days in the year
 * (java.time WeekFields.of(firstDay, 4), which DateUnitPeriodTypeParser uses for
 * every weekly period type).
 */
static long week1_start(int year, int first_day)
{
    long jan4 = days_from_civil(year, 1, 4);
    return jan4 - ((weekday(jan4) - first_day + 7) % 7);
}

/* ISO weeks in a year (52 or 53): Calendar.weeksInYear, the limit for every weekly id. */
static int iso_weeks_in_year(int year)
{
    return (int)((week1_start(year + 1, 0) - week1_start(year, 0)) / 7);
}

static bool year_ok(int y)
{
    return y >= 1000 && y <= 9998;
}

/* A month-based period from the month it starts in (months since year 0). */
static bool period_from_start_month(enum ptype t, long mi, struct period *p)
{
    const struct ptype_def *d = &ptypes[t];
    int sy = (int)(mi / 12), sm = (int)(mi % 12) + 1;
    long emi = mi + d->span;
    p->type = t;
    p->index = ((sm - d->anchor + 12) % 12) / d->span + 1;
    p->year = d->names_end_year && sm >= 11 ? sy + 1 : sy;
    if (!year_ok(sy) || !year_ok((int)(emi / 12)))
        return false;
    p->start = days_from_civil(sy, sm, 1);
    p->end = days_from_civil((int)(emi / 12), (int)(emi % 12) + 1, 1) - 1;
    return true;
}

/* Fills start/end from type, year and index; false when out of range. */
static bool period_build(struct period *p)
{
    const struct ptype_def *d = &ptypes[p->type];
    int y = p->year, i = p->index;
    if (!year_ok(y))
        return false;
    switch (d->kind) {
    case PK_DAY:
        if (i < 1 || i > (days_in_month(y, 2) == 29 ? 366 : 365))
            return false;
        p->start = p->end = days_from_civil(y, 1, 1) + i - 1;
        return true;
    case PK_WEEK:
        /* DateUnitPeriodTypeParser: week < 1 or week > weeksInYear(year) is no period
         * (for BiWeekly the ISO week 2n-1 is checked). */
        if (i < 1 || (d->span == 1 ? i : 2 * i - 1) > iso_weeks_in_year(y))
            return false;
        p->start = week1_start(y, d->first_day) + 7L * d->span * (i - 1);
        p->end = p->start + 7L * d->span - 1;
        return true;
    case PK_MONTH: {
        if (i < 1 || i > 12 / d->span)
            return false;
        int sm = d->anchor + (i - 1) * d->span, sy = d->names_end_year ? y - 1 : y;
        if (sm > 12) {
            sm -= 12;
            sy++;
        }
        return period_from_start_month(p->type, (long)sy * 12 + sm - 1, p);
    }
    }
    return false;
}

/* The period of type t that holds the day (PeriodType.createPeriod(date)). */
static bool period_containing(enum ptype t, long day, struct period *p)
{
    const struct ptype_def *d = &ptypes[t];
    int y, m, dd;
    civil_from_days(day, &y, &m, &dd);
    memset(p, 0, sizeof *p);
    p->type = t;
    switch (d->kind) {
    case PK_DAY:
        p->year = y;
        p->index = (int)(day - days_from_civil(y, 1, 1)) + 1;
        return period_build(p);
    case PK_WEEK: {
        int fd = d->span == 2 ? 0 : d->first_day;
        for (int wy = y + 1; wy >= y - 1; wy--) {
            long w1 = week1_start(wy, fd);
            if (w1 <= day) {
                int week = (int)((day - w1) / 7) + 1;
                p->year = wy;
                p->index = d->span == 2 ? (week + 1) / 2 : week;
                p->start = w1 + 7L * d->span * (p->index - 1);
                p->end = p->start + 7L * d->span - 1;
                return year_ok(wy);
            }
        }
        return false;
    }
    case PK_MONTH: {
        long mi = (long)y * 12 + m - 1;
        int offset = ((m - d->anchor) % d->span + d->span) % d->span;
        return period_from_start_month(t, mi - offset, p);
    }
    }
    return false;
}

/* The period k periods after (k < 0: before) p, of the same type. */
static bool period_shift(const struct period *p, int k, struct period *out)
{
    const struct ptype_def *d = &ptypes[p->type];
    if (d->kind == PK_MONTH) {
        int y, m, dd;
        civil_from_days(p->start, &y, &m, &dd);
        return period_from_start_month(p->type, (long)y * 12 + m - 1 + (long)k * d->span, out);
    }
    long step = d->kind == PK_DAY ? 1 : 7L * d->span;
    return period_containing(p->type, p->start + step * k, out);
}

/* The canonical DHIS2 id of a period (Period.getIsoDate: 2024W1, never 2024W01). */
static void period_format(const struct period *p, char *buf, size_t size)
{
    const struct ptype_def *d = &ptypes[p->type];
    int y, m, dd;
    switch (p->type) {
    case PT_DAILY:
        civil_from_days(p->start, &y, &m, &dd);
        snprintf(buf, size, "%04d%02d%02d", y, m, dd);
        return;
    case PT_MONTHLY: snprintf(buf, size, "%04d%02d", p->year, p->index); return;
    case PT_BIMONTHLY: snprintf(buf, size, "%04d%02dB", p->year, p->index); return;
    case PT_YEARLY: snprintf(buf, size, "%04d", p->year); return;
    case PT_FIN_APRIL:
    case PT_FIN_JULY:
    case PT_FIN_SEP:
    case PT_FIN_OCT:
    case PT_FIN_NOV: snprintf(buf, size, "%04d%s", p->year, d->tag); return;
    default: snprintf(buf, size, "%04d%s%d", p->year, d->tag, p->index); return;
    }
}

/* Is the rest of an id the tag followed by 1..max_digits digits? */
static bool tag_number(const char *rest, const char *tag, size_t max_digits, int *n)
{
    size_t tl = strlen(tag), dl;
    if (strncmp(rest, tag, tl) != 0)
        return false;
    dl = strlen(rest + tl);
    if (dl < 1 || dl > max_digits || !all_digits(rest + tl, dl))
        return false;
    *n = num(rest + tl, dl);
    return true;
}

/*
 * Parses a DHIS2 period id like PeriodType.getPeriodFromIsoString with the
 * patterns of dhis2-core's DateUnitType for the imitated release: yyyyMMdd
 * (and yyyy-MM-dd from 2.38), yyyyWn and yyyyWnn (also WedW, ThuW, SatW, SunW,
 * BiW), yyyyMM and yyyy-MM, yyyyNNB, yyyyQn, yyyyNovQn (see rule_quarterly_nov),
 * yyyySn, yyyyAprilSn, yyyyNovSn, yyyy, yyyyApril, yyyyJuly, yyyySep (2.42),
 * yyyyOct, yyyyNov. Ranges as DateUnitPeriodTypeParser checks them.
 */
static bool period_parse(const char *s, struct period *p)
{
    static const enum ptype weekly[] = {PT_WEEKLY,     PT_WEEKLY_WED, PT_WEEKLY_THU,
                                        PT_WEEKLY_SAT, PT_WEEKLY_SUN, PT_BIWEEKLY};
    static const enum ptype halves[] = {PT_QUARTERLY, PT_QUARTERLY_NOV, PT_SIXMONTHLY,
                                        PT_SIXMONTHLY_APRIL, PT_SIXMONTHLY_NOV};
    static const enum ptype financial[] = {PT_FIN_APRIL, PT_FIN_JULY, PT_FIN_SEP, PT_FIN_OCT,
                                           PT_FIN_NOV};
    memset(p, 0, sizeof *p);
    size_t len = s ? strlen(s) : 0;
    if (len < 4 || len > 16 || !all_digits(s, 4))
        return false;
    p->year = num(s, 4);
    const char *r = s + 4;
    size_t rl = len - 4;
    int n;

    if ((rl == 4 && all_digits(r, 4)) ||
        (rule_daily_dashes() && rl == 6 && r[0] == '-' && r[3] == '-' && all_digits(r + 1, 2) &&
         all_digits(r + 4, 2))) {
        int m = rl == 4 ? num(r, 2) : num(r + 1, 2), d = rl == 4 ? num(r + 2, 2) : num(r + 4, 2);
        if (m < 1 || m > 12 || d < 1 || d > days_in_month(p->year, m))
            return false;
        p->type = PT_DAILY;
        p->index = (int)(days_from_civil(p->year, m, d) - days_from_civil(p->year, 1, 1)) + 1;
        return period_build(p);
    }
    for (size_t k = 0; k < sizeof weekly / sizeof weekly[0]; k++)
        if (tag_number(r, ptypes[weekly[k]].tag, 2, &n)) {
            p->type = weekly[k];
            p->index = n;
            return period_build(p);
        }
    if ((rl == 2 && all_digits(r, 2)) || (rl == 3 && r[0] == '-' && all_digits(r + 1, 2))) {
        p->type = PT_MONTHLY;
        p->index = num(r + rl - 2, 2);
        return period_build(p);
    }
    if (rl == 3 && all_digits(r, 2) && r[2] == 'B') {
        p->type = PT_BIMONTHLY;
        p->index = num(r, 2);
        return period_build(p);
    }
    for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++)
        if (tag_number(r, ptypes[halves[k]].tag, 1, &n)) {
            if (halves[k] == PT_QUARTERLY_NOV && !rule_quarterly_nov())
                return false;
            p->type = halves[k];
            p->index = n;
            return period_build(p);
        }
    if (rl == 0) {
        p->type = PT_YEARLY;
        p->index = 1;
        return period_build(p);
    }
    for (size_t k = 0; k < sizeof financial / sizeof financial[0]; k++)
        if (strcmp(r, ptypes[financial[k]].tag) == 0) {
            if (financial[k] == PT_FIN_SEP && !rule_financial_sep())
                return false;
            p->type = financial[k];
            p->index = 1;
            return period_build(p);
        }
    return false;
}

/*
 * Converts an ADX period (ISO 8601 "start/duration") the way dhis2-core's
 * AdxPeriod.parse does: the duration picks a period type (P1D, P7D, P14D, P1M,
 * P2M, P3M, P6M, P1Y; the start's weekday or month picks among the weekly,
 * six-monthly and yearly types) and the period is the one of that type which
 * holds the start date (PeriodType.createPeriod(date)), so the start need not
 * be the first day. In 2.36 only P1D, P7D (any weekday: ISO week), P1M, P2M,
 * P3M, P6M and P1Y exist, and a missing `break` makes P6M from January a Yearly
 * period and P6M from July a FinancialJuly one. On failure `err` gets
 * AdxException's message.
 */
static bool period_from_adx(const char *adx, struct period *p, char *err, size_t errsz)
{
    const char *slash = adx ? strchr(adx, '/') : NULL;
    long start;
    if (!slash || slash == adx || !slash[1] || strchr(slash + 1, '/')) {
        snprintf(err, errsz, "%s not in valid <date>/<duration> format", adx ? adx : "null");
        return false;
    }
    const char *dur = slash + 1;
    int y, m, d;
    enum ptype t;
    bool old = opt.minor <= 36;
    if (!parse_date(adx, (size_t)(slash - adx), &start))
        goto unsupported;
    civil_from_days(start, &y, &m, &d);
    if (strcmp(dur, "P1D") == 0) {
        t = PT_DAILY;
    } else if (strcmp(dur, "P7D") == 0) {
        static const enum ptype by_day[7] = {PT_WEEKLY, PT_COUNT,      PT_WEEKLY_WED, PT_WEEKLY_THU,
                                             PT_COUNT,  PT_WEEKLY_SAT, PT_WEEKLY_SUN};
        t = old ? PT_WEEKLY : by_day[weekday(start)];
        if (t == PT_COUNT) {
            snprintf(err, errsz, "%s is invalid weekly type", adx);
            return false;
        }
    } else if (strcmp(dur, "P14D") == 0 && !old) {
        t = PT_BIWEEKLY;
    } else if (strcmp(dur, "P1M") == 0) {
        t = PT_MONTHLY;
    } else if (strcmp(dur, "P2M") == 0) {
        t = PT_BIMONTHLY;
    } else if (strcmp(dur, "P3M") == 0) {
        t = PT_QUARTERLY;
    } else if (strcmp(dur, "P6M") == 0) {
        if (old && (m == 1 || m == 7))
            t = m == 1 ? PT_YEARLY : PT_FIN_JULY; /* 2.36's fall-through into P1Y */
        else if (!old && (m == 1 || m == 7))
            t = PT_SIXMONTHLY;
        else if (!old && (m == 4 || m == 10))
            t = PT_SIXMONTHLY_APRIL;
        else if (!old && (m == 11 || m == 5))
            t = PT_SIXMONTHLY_NOV;
        else {
            snprintf(err, errsz,
                     old ? "%sis invalid sixmonthly type" : "%s is invalid sixmonthly type", adx);
            return false;
        }
    } else if (strcmp(dur, "P1Y") == 0) {
        if (m == 1)
            t = PT_YEARLY;
        else if (m == 4)
            t = PT_FIN_APRIL;
        else if (m == 7)
            t = PT_FIN_JULY;
        else if (m == 10)
            t = PT_FIN_OCT;
        else if (m == 11 && !old)
            t = PT_FIN_NOV;
        else {
            snprintf(err, errsz, old ? "%sis invalid yearly type" : "%s is invalid yearly type",
                     adx);
            return false;
        }
    } else {
        goto unsupported;
    }
    if (!period_containing(t, start, p))
        goto unsupported;
    return true;
unsupported:
    snprintf(err, errsz, "%s is not a supported duration type", dur);
    return false;
}

/* ------------------------------------------------------------------------ */
/* Metadata (immutable after load)                                          */
/* ------------------------------------------------------------------------ */

enum scheme { SCHEME_UID, SCHEME_CODE, SCHEME_NAME };

enum md_kind {
    MD_ORGUNIT,
    MD_DATAELEMENT,
    MD_COC,
    MD_DATASET,
    MD_CATEGORY,
    MD_CATOPTION,
    MD_COMBO
};

struct md_obj {
    const char *id, *code, *name; /* borrowed from the loaded document */
    json_t *src;                  /* the fixture object */
};

/* One kind of metadata object, with sorted indexes for each id scheme. */
struct md_set {
    enum md_kind kind;
    const char *klass; /* Java class name, for messages */
    struct md_obj *v;
    size_t n;
    struct md_obj **idx[3]; /* by SCHEME_UID, SCHEME_CODE, SCHEME_NAME */
    size_t nidx[3];
};

static struct {
    json_t *root;
    json_t *users, *tokens, *system, *settings;
    struct md_set ous, des, cocs, aocs, all_cocs, dss, cats, catopts, combos;
    const struct md_obj *default_coc, *default_aoc;
} md;

static const char *md_key(const struct md_obj *o, enum scheme s)
{
    return s == SCHEME_UID ? o->id : s == SCHEME_CODE ? o->code : o->name;
}

static int cmp_by_id(const void *a, const void *b)
{
    return strcmp((*(struct md_obj *const *)a)->id, (*(struct md_obj *const *)b)->id);
}
static int cmp_by_code(const void *a, const void *b)
{
    return strcmp((*(struct md_obj *const *)a)->code, (*(struct md_obj *const *)b)->code);
}
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(struct md_obj *const *)a)->name, (*(struct md_obj *const *)b)->name);
}

/* Finds an object by identifier in the given scheme; NULL when absent. */
static const struct md_obj *md_find(const struct md_set *s, enum scheme sc, const char *key)
{
    if (!key || !*key)
        return NULL;
    size_t lo = 0, hi = s->nidx[sc];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(md_key(s->idx[sc][mid], sc), key);
        if (c == 0)
            return s->idx[sc][mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void md_set_free(struct md_set *s)
{
    free(s->v);
    for (int k = 0; k < 3; k++)
        free(s->idx[k]);
    memset(s, 0, sizeof *s);
}

/* Builds a set from one or two fixture arrays (a2 may be NULL). */
static bool md_set_load(struct md_set *s, enum md_kind kind, const char *klass, const char *what,
                        json_t *a1, json_t *a2)
{
    json_t *arrays[2] = {a1, a2};
    s->kind = kind;
    s->klass = klass;
    size_t total = json_array_size(a1) + json_array_size(a2);
    s->v = calloc(total ? total : 1, sizeof *s->v);
    for (int k = 0; k < 3; k++)
        s->idx[k] = calloc(total ? total : 1, sizeof *s->idx[k]);
    if (!s->v || !s->idx[0] || !s->idx[1] || !s->idx[2]) {
        fprintf(stderr, "dhis2-sim: out of memory\n");
        return false;
    }
    for (int a = 0; a < 2; a++) {
        size_t i;
        json_t *o;
        if (arrays[a] && !json_is_array(arrays[a])) {
            fprintf(stderr, "dhis2-sim: metadata \"%s\" must be an array\n", what);
            return false;
        }
        json_array_foreach(arrays[a], i, o)
        {
            struct md_obj *m = &s->v[s->n];
            m->src = o;
            m->id = jstr(o, "id");
            m->code = jstr(o, "code");
            m->name = jstr(o, "name");
            if (!is_uid(m->id)) {
                fprintf(stderr,
                        "dhis2-sim: metadata \"%s\"[%zu]: \"id\" must be an 11-character "
                        "DHIS2 UID\n",
                        what, i);
                return false;
            }
            s->n++;
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        s->idx[SCHEME_UID][s->nidx[SCHEME_UID]++] = &s->v[i];
        if (s->v[i].code)
            s->idx[SCHEME_CODE][s->nidx[SCHEME_CODE]++] = &s->v[i];
        if (s->v[i].name)
            s->idx[SCHEME_NAME][s->nidx[SCHEME_NAME]++] = &s->v[i];
    }
    qsort(s->idx[0], s->nidx[0], sizeof *s->idx[0], cmp_by_id);
    qsort(s->idx[1], s->nidx[1], sizeof *s->idx[1], cmp_by_code);
    qsort(s->idx[2], s->nidx[2], sizeof *s->idx[2], cmp_by_name);
    /* Duplicate UIDs within one kind are a fixture error (a2 may repeat a1's defaults). */
    for (size_t i = 1; a2 == NULL && i < s->nidx[0]; i++)
        if (strcmp(s->idx[0][i - 1]->id, s->idx[0][i]->id) == 0) {
            fprintf(stderr, "dhis2-sim: metadata \"%s\": id \"%s\" defined twice\n", what,
                    s->idx[0][i]->id);
            return false;
        }
    return true;
}

static const struct md_obj *md_find_default(const struct md_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].name && strcmp(s->v[i].name, "default") == 0)
            return &s->v[i];
    return NULL;
}

static void md_free(void)
{
    md_set_free(&md.ous);
    md_set_free(&md.des);
    md_set_free(&md.cocs);
    md_set_free(&md.aocs);
    md_set_free(&md.all_cocs);
    md_set_free(&md.dss);
    md_set_free(&md.cats);
    md_set_free(&md.catopts);
    md_set_free(&md.combos);
    json_decref(md.root);
    md.root = NULL;
}

/* The category combo a data element (disaggregation) or a data set (attributes)
 * points to; NULL for the default combo. */
static const struct md_obj *md_combo_of(const struct md_obj *o)
{
    return md_find(&md.combos, SCHEME_UID, jstr(o->src, "categoryCombo"));
}

/* Is the option combo one of the combo's (its categoryOptions name exactly the
 * combo's categories)? The default combo has only the default option combo. */
static bool md_combo_has(const struct md_obj *combo, const struct md_obj *coc)
{
    json_t *opts = json_object_get(coc->src, "categoryOptions");
    if (!combo)
        return json_object_size(opts) == 0;
    json_t *cats = json_object_get(combo->src, "categories"), *c;
    size_t i;
    if (json_array_size(cats) != json_object_size(opts))
        return false;
    json_array_foreach(cats, i, c)
    {
        if (!json_is_string(c) || !json_object_get(opts, json_string_value(c)))
            return false;
    }
    return true;
}

/* True when the data set's list `key` ("dataElements", "organisationUnits") holds uid. */
static bool md_dataset_lists(const struct md_obj *ds, const char *key, const char *uid)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ds->src, key), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), uid) == 0)
            return true;
    }
    return false;
}

/* True when the data set lists the data element (by UID). */
static bool md_dataset_has_de(const struct md_obj *ds, const char *de_uid)
{
    return md_dataset_lists(ds, "dataElements", de_uid);
}

/* True when the org unit is assigned to the data set (by UID). */
static bool md_dataset_has_ou(const struct md_obj *ds, const char *ou_uid)
{
    return md_dataset_lists(ds, "organisationUnits", ou_uid);
}

static bool md_de_numeric(const struct md_obj *de)
{
    static const char *const numeric[] = {
        "INTEGER", "INTEGER_POSITIVE", "INTEGER_NEGATIVE", "INTEGER_ZERO_OR_POSITIVE",
        "NUMBER",  "UNIT_INTERVAL",    "PERCENTAGE"};
    const char *vt = jstr(de->src, "valueType");
    for (size_t i = 0; vt && i < sizeof numeric / sizeof numeric[0]; i++)
        if (strcmp(vt, numeric[i]) == 0)
            return true;
    return false;
}

/* A fixture setting (system settings such as keyDataImportStrictDataElements). */
static bool md_setting(const char *name)
{
    return json_is_true(json_object_get(md.settings, name));
}

static bool md_check_refs(void)
{
    static const struct {
        struct md_set *set;
        const char *what;
    } with_combo[] = {{&md.des, "dataElements"}, {&md.dss, "dataSets"}};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < with_combo[k].set->n; i++) {
            const struct md_obj *o = &with_combo[k].set->v[i];
            const char *cc = jstr(o->src, "categoryCombo");
            if (cc && !md_find(&md.combos, SCHEME_UID, cc)) {
                fprintf(stderr, "dhis2-sim: metadata \"%s\" %s: unknown categoryCombo \"%s\"\n",
                        with_combo[k].what, o->id, cc);
                return false;
            }
        }
    for (size_t i = 0; i < md.combos.n; i++) {
        json_t *c;
        size_t j;
        json_array_foreach(json_object_get(md.combos.v[i].src, "categories"), j, c)
        {
            if (!md_find(&md.cats, SCHEME_CODE, json_string_value(c))) {
                fprintf(stderr, "dhis2-sim: metadata categoryCombo %s: unknown category \"%s\"\n",
                        md.combos.v[i].id, json_is_string(c) ? json_string_value(c) : "?");
                return false;
            }
        }
    }
    return true;
}

static bool md_load(const char *path)
{
    json_error_t jerr;
    md.root = json_load_file(path, 0, &jerr);
    if (!md.root) {
        fprintf(stderr, "dhis2-sim: could not read metadata \"%s\": line %d: %s\n", path, jerr.line,
                jerr.text);
        return false;
    }
    json_t *r = md.root;
    md.users = json_object_get(r, "users");
    md.tokens = json_object_get(r, "tokens");
    md.system = json_object_get(r, "system");
    md.settings = json_object_get(r, "settings");
    json_t *cocs = json_object_get(r, "categoryOptionCombos");
    json_t *aocs = json_object_get(r, "attributeOptionCombos");
    /* Without attributeOptionCombos, the category option combos double as AOCs. */
    if (!aocs)
        aocs = cocs;
    if (!md_set_load(&md.ous, MD_ORGUNIT, "OrganisationUnit", "organisationUnits",
                     json_object_get(r, "organisationUnits"), NULL) ||
        !md_set_load(&md.des, MD_DATAELEMENT, "DataElement", "dataElements",
                     json_object_get(r, "dataElements"), NULL) ||
        !md_set_load(&md.cocs, MD_COC, "CategoryOptionCombo", "categoryOptionCombos", cocs, NULL) ||
        !md_set_load(&md.aocs, MD_COC, "CategoryOptionCombo", "attributeOptionCombos", aocs,
                     NULL) ||
        !md_set_load(&md.all_cocs, MD_COC, "CategoryOptionCombo", "categoryOptionCombos", cocs,
                     aocs == cocs ? NULL : aocs) ||
        !md_set_load(&md.dss, MD_DATASET, "DataSet", "dataSets", json_object_get(r, "dataSets"),
                     NULL) ||
        !md_set_load(&md.cats, MD_CATEGORY, "Category", "categories",
                     json_object_get(r, "categories"), NULL) ||
        !md_set_load(&md.catopts, MD_CATOPTION, "CategoryOption", "categoryOptions",
                     json_object_get(r, "categoryOptions"), NULL) ||
        !md_set_load(&md.combos, MD_COMBO, "CategoryCombo", "categoryCombos",
                     json_object_get(r, "categoryCombos"), NULL) ||
        !md_check_refs())
        return false;
    md.default_coc = md_find_default(&md.cocs);
    md.default_aoc = md_find_default(&md.aocs);
    if (!md.default_coc || !md.default_aoc) {
        fprintf(stderr, "dhis2-sim: metadata needs a category option combo and an attribute "
                        "option combo named \"default\"\n");
        return false;
    }
    if (!json_is_array(md.users) && !json_is_array(md.tokens)) {
        fprintf(stderr, "dhis2-sim: metadata has neither \"users\" nor \"tokens\"\n");
        return false;
    }
    if (!json_is_object(md.system)) {
        md.system = json_object();
        json_object_set_new(r, "system", md.system);
    }
    return true;
}

static const struct md_obj *combo_holding(const struct md_obj *coc);

/* A reference to the object uid of set: {"id", "code"} (code when it has one). */
static json_t *md_ref_json(const struct md_set *set, const char *uid)
{
    const struct md_obj *o = uid ? md_find(set, SCHEME_UID, uid) : NULL;
    json_t *j = json_pack("{s:s}", "id", uid ? uid : "");
    if (o != NULL && o->code != NULL)
        json_object_set_new(j, "code", json_string(o->code));
    return j;
}

/* The JSON a DHIS2 API would return for one metadata object (all fields). */
static json_t *md_obj_json(const struct md_set *s, const struct md_obj *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(o->id));
    if (o->code)
        json_object_set_new(j, "code", json_string(o->code));
    if (o->name) {
        json_object_set_new(j, "name", json_string(o->name));
        json_object_set_new(j, "displayName", json_string(o->name));
    }
    const struct md_obj *combo =
        s->kind == MD_DATAELEMENT || s->kind == MD_DATASET ? md_combo_of(o) : NULL;
    if (combo)
        json_object_set_new(j, "categoryCombo", json_pack("{s:s}", "id", combo->id));
    if (s->kind == MD_DATAELEMENT) {
        const char *vt = jstr(o->src, "valueType");
        const char *agg = jstr(o->src, "aggregationType");
        json_object_set_new(j, "valueType", json_string(vt ? vt : "TEXT"));
        json_object_set_new(j, "domainType", json_string("AGGREGATE"));
        json_object_set_new(j, "aggregationType", json_string(agg ? agg : "SUM"));
        json_object_set_new(
            j, "zeroIsSignificant",
            json_boolean(json_is_true(json_object_get(o->src, "zeroIsSignificant"))));
    } else if (s->kind == MD_DATASET) {
        const char *pt = jstr(o->src, "periodType");
        json_t *dse = json_array(), *ous = json_array(), *v;
        size_t i;
        json_object_set_new(j, "periodType", json_string(pt ? pt : "Monthly"));
        json_object_set_new(
            j, "openFuturePeriods",
            json_integer(json_integer_value(json_object_get(o->src, "openFuturePeriods"))));
        /* references carry id and code, as DHIS2 gives them for fields=x[id,code] */
        json_array_foreach(json_object_get(o->src, "dataElements"), i, v) json_array_append_new(
            dse, json_pack("{s:o}", "dataElement", md_ref_json(&md.des, json_string_value(v))));
        json_array_foreach(json_object_get(o->src, "organisationUnits"), i, v)
            json_array_append_new(ous, md_ref_json(&md.ous, json_string_value(v)));
        json_object_set_new(j, "dataSetElements", dse);
        json_object_set_new(j, "organisationUnits", ous);
    } else if (s->kind == MD_ORGUNIT) {
        /* OrganisationUnit's openingDate and closedDate (dhis2/dhis2-core,
         * dhis-2/dhis-api/src/main/java/org/hisp/dhis/organisationunit/
         * OrganisationUnit.java: Date fields openingDate, closedDate), as DHIS2
         * writes dates: "2025-12-31T00:00:00.000" */
        const char *opened = jstr(o->src, "openingDate"), *closed = jstr(o->src, "closedDate");
        if (opened)
            json_object_set_new(j, "openingDate", json_string(opened));
        if (closed)
            json_object_set_new(j, "closedDate", json_string(closed));
        /* attribute values as DHIS2 writes them on any metadata object that has
         * some: [{"attribute": {"id"}, "value"}] (dhis2/dhis2-core,
         * dhis-2/dhis-api/src/main/java/org/hisp/dhis/attribute/AttributeValue.java:
         * the JSON properties attribute and value); the fixture holds that shape */
        /* parent and path (OrganisationUnit.java: getParent() as a reference with
         * the id, and getPath(): "/" then the uids from the root down to the unit
         * itself, joined with "/", a cycle cut where it closes), and level, the
         * number of "/" in the path (getLevel()). The fixture names the parent's
         * uid. */
        const struct md_obj *chain[32];
        size_t depth = 0;
        for (const struct md_obj *u = o; u != NULL && depth < 32;
             u = md_find(&md.ous, SCHEME_UID, jstr(u->src, "parent"))) {
            bool seen = false;
            for (size_t k = 0; k < depth && !seen; k++)
                seen = chain[k] == u;
            if (seen)
                break;
            chain[depth++] = u;
        }
        char path[32 * 12 + 1] = "";
        for (size_t k = depth; k-- > 0;)
            snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", chain[k]->id);
        json_object_set_new(j, "path", json_string(path));
        json_object_set_new(j, "level", json_integer((json_int_t)depth));
        if (depth > 1)
            json_object_set_new(j, "parent", json_pack("{s:s}", "id", chain[1]->id));
        json_t *av = json_object_get(o->src, "attributeValues");
        json_object_set_new(j, "attributeValues",
                            json_is_array(av) ? json_deep_copy(av) : json_array());
    } else if (s->kind == MD_COC) {
        /* CategoryOptionCombo's categoryCombo and categoryOptions (dhis2/dhis2-core,
         * dhis-2/dhis-api/src/main/java/org/hisp/dhis/category/
         * CategoryOptionCombo.java); a reference to an option carries id, code and
         * name here, whatever fields= asks for */
        json_t *opts = json_array(), *v;
        const char *k;
        json_object_foreach(json_object_get(o->src, "categoryOptions"), k, v)
        {
            const struct md_obj *co = md_find(&md.catopts, SCHEME_CODE, json_string_value(v));
            json_t *ref = json_pack("{s:O}", "code", v);
            if (co != NULL) {
                json_object_set_new(ref, "id", json_string(co->id));
                if (co->name)
                    json_object_set_new(ref, "name", json_string(co->name));
            }
            json_array_append_new(opts, ref);
        }
        json_object_set_new(j, "categoryOptions", opts);
        const struct md_obj *holder = combo_holding(o);
        if (holder != NULL)
            json_object_set_new(j, "categoryCombo", json_pack("{s:s}", "id", holder->id));
    }
    return j;
}

/* ------------------------------------------------------------------------ */
/* Value store                                                              */
/* ------------------------------------------------------------------------ */

struct sv_key {
    char de[SIM_UID_LEN + 1];
    char pe[SIM_PERIOD_MAX];
    char ou[SIM_UID_LEN + 1];
    char coc[SIM_UID_LEN + 1];
    char aoc[SIM_UID_LEN + 1];
};

/* A stored row. Rows are soft-deleted like DHIS2's datavalue.deleted: a deleted
 * row is invisible but makes a later import of the same key an "imported" one. */
struct sv {
    struct sv_key key;
    char *value;   /* NULL for a comment-only value */
    char *comment; /* NULL when none */
    char *stored_by;
    bool followup;
    bool deleted;
    char created[32];
    char last_updated[32];
};

/* Open addressing with linear probing; deletion shifts entries back (no tombstones). */
static struct {
    pthread_mutex_t mu;
    struct sv **slots;
    size_t cap, n;
} store = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static uint64_t sv_hash(const struct sv_key *k)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[5] = {k->de, k->pe, k->ou, k->coc, k->aoc};
    for (int p = 0; p < 5; p++) {
        for (const char *c = parts[p]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    return h;
}

static bool sv_key_eq(const struct sv_key *a, const struct sv_key *b)
{
    return strcmp(a->de, b->de) == 0 && strcmp(a->pe, b->pe) == 0 && strcmp(a->ou, b->ou) == 0 &&
           strcmp(a->coc, b->coc) == 0 && strcmp(a->aoc, b->aoc) == 0;
}

static void sv_free(struct sv *v)
{
    if (!v)
        return;
    free(v->value);
    free(v->comment);
    free(v->stored_by);
    free(v);
}

/* Slot of the key, or of the empty slot where it would go. Caller holds store.mu. */
static size_t store_slot(const struct sv_key *k)
{
    size_t mask = store.cap - 1, i = (size_t)sv_hash(k) & mask;
    while (store.slots[i] && !sv_key_eq(&store.slots[i]->key, k))
        i = (i + 1) & mask;
    return i;
}

static struct sv *store_get(const struct sv_key *k)
{
    return store.cap ? store.slots[store_slot(k)] : NULL;
}

static bool store_grow(void)
{
    size_t ncap = store.cap ? store.cap * 2 : 1024;
    struct sv **old = store.slots;
    size_t ocap = store.cap;
    store.slots = calloc(ncap, sizeof *store.slots);
    if (!store.slots) {
        store.slots = old;
        return false;
    }
    store.cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            store.slots[store_slot(&old[i]->key)] = old[i];
    free(old);
    return true;
}

/* Inserts a new row (the key must be absent). Caller holds store.mu. */
static bool store_insert(struct sv *v)
{
    if ((store.n + 1) * 10 >= store.cap * 7 && !store_grow())
        return false;
    store.slots[store_slot(&v->key)] = v;
    store.n++;
    return true;
}

static void store_clear(void)
{
    for (size_t i = 0; i < store.cap; i++)
        sv_free(store.slots[i]);
    free(store.slots);
    store.slots = NULL;
    store.cap = store.n = 0;
}

static int sv_cmp(const void *a, const void *b)
{
    const struct sv_key *x = &(*(struct sv *const *)a)->key, *y = &(*(struct sv *const *)b)->key;
    int c;
    if ((c = strcmp(x->de, y->de)) || (c = strcmp(x->pe, y->pe)) || (c = strcmp(x->ou, y->ou)) ||
        (c = strcmp(x->coc, y->coc)))
        return c;
    return strcmp(x->aoc, y->aoc);
}

/* Visible (not deleted) rows sorted by key, as borrowed pointers. Caller holds
 * store.mu and frees the array. */
static struct sv **store_sorted(size_t *n)
{
    struct sv **all = calloc(store.n ? store.n : 1, sizeof *all);
    *n = 0;
    if (!all)
        return NULL;
    for (size_t i = 0; i < store.cap; i++)
        if (store.slots[i] && !store.slots[i]->deleted)
            all[(*n)++] = store.slots[i];
    qsort(all, *n, sizeof *all, sv_cmp);
    return all;
}

/* ------------------------------------------------------------------------ */
/* Data set completions (CompleteDataSetRegistration), under store.mu       */
/* ------------------------------------------------------------------------ */

struct completion {
    char ds[SIM_UID_LEN + 1], pe[SIM_PERIOD_MAX], ou[SIM_UID_LEN + 1], aoc[SIM_UID_LEN + 1];
    char date[32]; /* a completeDate as sent: a date, or a date-time up to milliseconds */
    char stored_by[64];
};

static struct {
    struct completion *v;
    size_t n, cap;
} completions;

/* Registers or updates a completion, as handleComplete does. Caller holds store.mu. */
static bool completion_put(const char *ds, const char *pe, const char *ou, const char *aoc,
                           const char *date, const char *user)
{
    struct completion *c = NULL;
    for (size_t i = 0; i < completions.n && !c; i++)
        if (!strcmp(completions.v[i].ds, ds) && !strcmp(completions.v[i].pe, pe) &&
            !strcmp(completions.v[i].ou, ou) && !strcmp(completions.v[i].aoc, aoc))
            c = &completions.v[i];
    if (!c) {
        if (completions.n == completions.cap) {
            size_t ncap = completions.cap ? completions.cap * 2 : 16;
            struct completion *nv = realloc(completions.v, ncap * sizeof *nv);
            if (!nv)
                return false;
            completions.v = nv;
            completions.cap = ncap;
        }
        c = &completions.v[completions.n++];
        memset(c, 0, sizeof *c);
        snprintf(c->ds, sizeof c->ds, "%s", ds);
        snprintf(c->pe, sizeof c->pe, "%s", pe);
        snprintf(c->ou, sizeof c->ou, "%s", ou);
        snprintf(c->aoc, sizeof c->aoc, "%s", aoc);
    }
    snprintf(c->date, sizeof c->date, "%s", date);
    snprintf(c->stored_by, sizeof c->stored_by, "%s", user ? user : "");
    return true;
}

static int completion_cmp(const void *a, const void *b)
{
    const struct completion *x = a, *y = b;
    int c;
    if ((c = strcmp(x->ds, y->ds)) || (c = strcmp(x->pe, y->pe)) || (c = strcmp(x->ou, y->ou)))
        return c;
    return strcmp(x->aoc, y->aoc);
}

/* ------------------------------------------------------------------------ */
/* Injected faults                                                          */
/* ------------------------------------------------------------------------ */

/* Counts < 0 mean "every import until cleared". */
static struct {
    pthread_mutex_t mu;
    int fail_status, fail_count;
    double stall_seconds;
    int stall_count, drop_count;
} faults = {PTHREAD_MUTEX_INITIALIZER, 500, 0, 0.0, 0, 0};

static bool fault_take(int *count)
{
    if (*count == 0)
        return false;
    if (*count > 0)
        (*count)--;
    return true;
}

static json_t *faults_json(void)
{
    pthread_mutex_lock(&faults.mu);
    json_t *j = json_pack("{s:i, s:i, s:f, s:i, s:i}", "fail_status", faults.fail_status,
                          "fail_count", faults.fail_count, "stall_seconds", faults.stall_seconds,
                          "stall_count", faults.stall_count, "drop_count", faults.drop_count);
    pthread_mutex_unlock(&faults.mu);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Requests and replies                                                     */
/* ------------------------------------------------------------------------ */

struct request {
    struct MHD_Connection *conn;
    const char *method, *url; /* valid for the whole request (MHD) */
    char path[SIM_MAX_PATH];  /* normalised: /api/NN/ and a .json suffix stripped */
    int pinned;               /* NN of /api/NN/, 0 when none */
    const char *user;         /* authenticated user, for storedBy */
    char *body;               /* NUL-terminated request body */
    size_t len, cap;
    bool too_large;
};

static const char *qarg(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool qarg_true(const struct request *r, const char *name)
{
    const char *v = qarg(r, name);
    return v && strcasecmp(v, "true") == 0;
}

static const char *header(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *reason(unsigned status)
{
    const char *p = MHD_get_reason_phrase_for(status);
    return p && *p ? p : "Error";
}

/* A DHIS2 WebMessage: {"httpStatus","httpStatusCode","status","message"}. */
static json_t *webmessage(unsigned status, const char *wm_status, const char *message)
{
    return json_pack("{s:s, s:i, s:s, s:s}", "httpStatus", reason(status), "httpStatusCode",
                     (int)status, "status", wm_status, "message", message);
}

static enum MHD_Result reply_text(struct request *r, unsigned status, char *text, const char *ctype,
                                  const char *hname, const char *hval)
{
    if (!text)
        return MHD_NO; /* out of memory: drop the connection */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    logf_("dhis2-sim: %s %s -> %u", r->method, r->url, status);
    return ret;
}

/* Sends `body` (consumed) as JSON; an extra header when hname is not NULL. */
static enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body,
                                  const char *hname, const char *hval)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    return reply_text(r, status, text, "application/json;charset=UTF-8", hname, hval);
}

static enum MHD_Result reply_error(struct request *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_error(struct request *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply_json(r, status, webmessage(status, "ERROR", msg), NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* XML rendering of an ImportSummary (2.36 and 2.37.0-2.37.2 answer ADX in   */
/* XML; later releases when the client asks for XML only)                   */
/* ------------------------------------------------------------------------ */

static void xml_text_elem(xmlTextWriterPtr w, const char *name, const json_t *v)
{
    if (json_is_string(v))
        xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST json_string_value(v));
    else if (json_is_integer(v))
        xmlTextWriterWriteFormatElement(w, BAD_CAST name, "%" JSON_INTEGER_FORMAT,
                                        json_integer_value(v));
    else if (json_is_boolean(v))
        xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST(json_is_true(v) ? "true" : "false"));
}

/* The ImportSummary's children in Jackson XML's shape (ImportCount and
 * ImportConflict properties are attributes). importOptions are left out. */
static void xml_summary_body(xmlTextWriterPtr w, const json_t *s)
{
    xmlTextWriterWriteAttribute(w, BAD_CAST "responseType", BAD_CAST "ImportSummary");
    xml_text_elem(w, "status", json_object_get(s, "status"));
    xml_text_elem(w, "description", json_object_get(s, "description"));
    const json_t *count = json_object_get(s, "importCount"), *v;
    const char *k;
    xmlTextWriterStartElement(w, BAD_CAST "importCount");
    json_object_foreach((json_t *)count, k, v) xmlTextWriterWriteFormatAttribute(
        w, BAD_CAST k, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    xmlTextWriterEndElement(w);
    xmlTextWriterStartElement(w, BAD_CAST "conflicts");
    size_t i;
    json_array_foreach(json_object_get(s, "conflicts"), i, v)
    {
        xmlTextWriterStartElement(w, BAD_CAST "conflict");
        static const char *const attrs[] = {"errorCode", "object", "property", "value"};
        for (size_t a = 0; a < 4; a++)
            if (jstr(v, attrs[a]))
                xmlTextWriterWriteAttribute(w, BAD_CAST attrs[a], BAD_CAST jstr(v, attrs[a]));
        xmlTextWriterEndElement(w);
    }
    xmlTextWriterEndElement(w);
    if (json_object_get(s, "rejectedIndexes")) {
        xmlTextWriterStartElement(w, BAD_CAST "rejectedIndexes");
        json_array_foreach(json_object_get(s, "rejectedIndexes"), i, v)
            xml_text_elem(w, "rejectedIndex", v);
        xmlTextWriterEndElement(w);
    }
    xml_text_elem(w, "dataSetComplete", json_object_get(s, "dataSetComplete"));
}

/* The bare summary (root importSummary) or the WebMessage (root webMessage). */
static char *summary_xml(const json_t *doc, bool envelope)
{
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
    char *out = NULL;
    if (!w) {
        xmlBufferFree(buf);
        return NULL;
    }
    xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL);
    if (envelope) {
        xmlTextWriterStartElementNS(w, NULL, BAD_CAST "webMessage", BAD_CAST DXF_NS);
        static const char *const fields[] = {"httpStatus", "httpStatusCode", "status", "message"};
        for (size_t i = 0; i < 4; i++)
            xml_text_elem(w, fields[i], json_object_get(doc, fields[i]));
        xmlTextWriterStartElement(w, BAD_CAST "response");
        xml_summary_body(w, json_object_get(doc, "response"));
        xmlTextWriterEndElement(w);
    } else {
        xmlTextWriterStartElementNS(w, NULL, BAD_CAST "importSummary", BAD_CAST DXF_NS);
        xml_summary_body(w, doc);
    }
    xmlTextWriterEndElement(w);
    xmlTextWriterEndDocument(w);
    xmlFreeTextWriter(w); /* flushes into buf */
    out = strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Import options                                                           */
/* ------------------------------------------------------------------------ */

enum strategy { ST_CREATE_AND_UPDATE, ST_CREATE, ST_UPDATE, ST_DELETE };

static const struct {
    const char *name;
    enum strategy st;
} strategies[] = {
    {"CREATE_AND_UPDATE", ST_CREATE_AND_UPDATE},
    {"CREATE", ST_CREATE},
    {"UPDATE", ST_UPDATE},
    {"DELETE", ST_DELETE},
    {"NEW_AND_UPDATES", ST_CREATE_AND_UPDATE},
    {"NEW", ST_CREATE},
    {"UPDATES", ST_UPDATE},
    {"DELETES", ST_DELETE},
};

static const char *strategy_name(enum strategy st)
{
    return strategies[st].name; /* the first four rows are in enum order */
}

static bool parse_strategy(const char *v, bool ignore_case, enum strategy *out)
{
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
        if (ignore_case ? strcasecmp(v, strategies[i].name) == 0
                        : strcmp(v, strategies[i].name) == 0) {
            *out = strategies[i].st;
            return true;
        }
    return false;
}

enum import_format { FMT_JSON, FMT_CSV, FMT_ADX };

struct import_opts {
    enum scheme de, ou, coc, ds, cat, catopt, general; /* coc also applies to AOCs */
    bool dry_run;
    enum strategy strategy;
    bool strict_periods, strict_des, strict_cocs, strict_aocs, strict_ous;
    bool require_coc, require_aoc;
    json_t *id_schemes; /* echo of the schemes of the URL (ImportOptions.idSchemes) */
};

static bool parse_scheme(const char *v, enum scheme *out)
{
    if (strcasecmp(v, "UID") == 0)
        *out = SCHEME_UID;
    else if (strcasecmp(v, "CODE") == 0)
        *out = SCHEME_CODE;
    else if (strcasecmp(v, "NAME") == 0)
        *out = SCHEME_NAME;
    else
        return false;
    return true;
}

static const char *scheme_name(enum scheme s)
{
    return s == SCHEME_UID ? "UID" : s == SCHEME_CODE ? "CODE" : "NAME";
}

/* An import option of the URL or a fixture setting (SettingKey.DATA_IMPORT_STRICT_*). */
static bool strict_option(const struct request *r, const char *name)
{
    return qarg_true(r, name) || md_setting(name);
}

/*
 * The import options of the URL (ImportOptions) and, for JSON, of the payload
 * (DataValueSet's idScheme properties, dryRun, strategy). Identifier schemes
 * follow DefaultDataValueSetService.createIdScheme with
 * DataValueSet.get*IdSchemeProperty and IdSchemes.getScheme: the payload's
 * scheme for the type, else the payload's idScheme, else the URL's scheme for
 * the type, else the URL's idScheme, else UID (ADX: CODE, set by
 * DefaultAdxDataService with IdSchemes.setDefaultIdScheme).
 *
 * Returns 400 for an unusable URL option (err set), -1 for an unusable payload
 * option (err set: the import fails, as DHIS2's IllegalArgumentException
 * does), 0 when fine.
 */
static int import_opts_init(const struct request *r, const json_t *payload, enum import_format fmt,
                            struct import_opts *o, char *err, size_t errsz)
{
    static const struct {
        const char *param;
        size_t offset;
        bool payload; /* DataValueSet has the property */
    } specific[] = {
        {"dataElementIdScheme", offsetof(struct import_opts, de), true},
        {"orgUnitIdScheme", offsetof(struct import_opts, ou), true},
        {"categoryOptionComboIdScheme", offsetof(struct import_opts, coc), true},
        {"dataSetIdScheme", offsetof(struct import_opts, ds), true},
        {"categoryIdScheme", offsetof(struct import_opts, cat), false},
        {"categoryOptionIdScheme", offsetof(struct import_opts, catopt), false},
    };
    const char *v;
    enum scheme url_general = fmt == FMT_ADX ? SCHEME_CODE : SCHEME_UID, pay_general;
    bool have_pay_general = false;

    memset(o, 0, sizeof *o);
    o->id_schemes = json_object();
    if ((v = qarg(r, "idScheme"))) {
        if (!parse_scheme(v, &url_general)) {
            snprintf(err, errsz, "idScheme \"%s\" is not supported by dhis2-sim (UID, CODE, NAME)",
                     v);
            return 400;
        }
        json_object_set_new(o->id_schemes, "idScheme", json_string(scheme_name(url_general)));
    } else if (fmt == FMT_ADX) {
        json_object_set_new(o->id_schemes, "idScheme", json_string("CODE"));
    }
    if ((v = jstr(payload, "idScheme")) && *v) {
        if (!parse_scheme(v, &pay_general)) {
            snprintf(err, errsz, "No enum constant for id scheme: %s", v);
            return -1;
        }
        have_pay_general = true;
    }
    o->general = have_pay_general ? pay_general : url_general;
    for (size_t i = 0; i < sizeof specific / sizeof specific[0]; i++) {
        enum scheme *field = (enum scheme *)((char *)o + specific[i].offset);
        enum scheme url = url_general;
        if ((v = qarg(r, specific[i].param))) {
            if (!parse_scheme(v, &url)) {
                snprintf(err, errsz, "%s \"%s\" is not supported by dhis2-sim (UID, CODE, NAME)",
                         specific[i].param, v);
                return 400;
            }
            json_object_set_new(o->id_schemes, specific[i].param, json_string(scheme_name(url)));
        }
        *field = url;
        if (specific[i].payload && (v = jstr(payload, specific[i].param)) && *v) {
            if (!parse_scheme(v, field)) {
                snprintf(err, errsz, "No enum constant for id scheme: %s", v);
                return -1;
            }
        } else if (specific[i].payload && have_pay_general) {
            *field = pay_general;
        }
    }
    o->strategy = ST_CREATE_AND_UPDATE;
    if ((v = qarg(r, "importStrategy")) && !parse_strategy(v, true, &o->strategy)) {
        snprintf(err, errsz,
                 "importStrategy \"%s\" is not one of CREATE_AND_UPDATE, CREATE, UPDATE, DELETE",
                 v);
        return 400;
    }
    if ((v = jstr(payload, "strategy")) && !parse_strategy(v, false, &o->strategy)) {
        snprintf(err, errsz, "No enum constant org.hisp.dhis.importexport.ImportStrategy.%s", v);
        return -1;
    }
    o->dry_run = qarg_true(r, "dryRun");
    if (json_is_boolean(json_object_get(payload, "dryRun")))
        o->dry_run = json_is_true(json_object_get(payload, "dryRun"));
    o->strict_periods = strict_option(r, "strictPeriods");
    o->strict_des = strict_option(r, "strictDataElements");
    o->strict_cocs = strict_option(r, "strictCategoryOptionCombos");
    o->strict_aocs = strict_option(r, "strictAttributeOptionCombos");
    o->strict_ous = strict_option(r, "strictOrganisationUnits");
    o->require_coc = strict_option(r, "requireCategoryOptionCombo");
    o->require_aoc = strict_option(r, "requireAttributeOptionCombo");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                */
/* ------------------------------------------------------------------------ */

/*
 * The conflicts of an ImportSummary. From 2.37 a conflict with an error code is
 * built like ImportConflict.createConflict: "objects" maps the singular name of
 * each object's type to the identifier as given, "object" is the first of them,
 * and conflicts are merged by (errorCode, objects) into one whose "indexes"
 * lists every request position. Conflicts without a code, and every conflict
 * in 2.36, have the legacy shape {object, value}, merged by (object, value).
 */
struct conflicts {
    json_t *list;   /* array of conflict objects */
    json_t *by_key; /* grouping key -> the conflict object (borrowed from list) */
    bool structured;
};

static void conflict_legacy(struct conflicts *cs, const char *object, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conflict_legacy(struct conflicts *cs, const char *object, const char *fmt, ...)
{
    char key[1200], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(key, sizeof key, "%s:%s", object ? object : "null", msg);
    if (json_object_get(cs->by_key, key))
        return;
    json_t *c = json_object();
    if (object)
        json_object_set_new(c, "object", json_string(object));
    json_object_set_new(c, "value", json_string(msg));
    json_array_append_new(cs->list, c);
    json_object_set(cs->by_key, key, c);
}

/*
 * A conflict with an error code. `objects` (consumed) is an ordered JSON object
 * {typeName: identifier}; legacy_object/legacy_msg are what 2.36 says instead.
 */
static void conflict_code(struct conflicts *cs, long index, const char *code, const char *property,
                          json_t *objects, const char *legacy_object, const char *legacy_msg,
                          const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static void conflict_code(struct conflicts *cs, long index, const char *code, const char *property,
                          json_t *objects, const char *legacy_object, const char *legacy_msg,
                          const char *fmt, ...)
{
    char key[1200], msg[1024];
    va_list ap;
    if (!cs->structured) {
        json_decref(objects);
        conflict_legacy(cs, legacy_object, "%s", legacy_msg);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t used = (size_t)snprintf(key, sizeof key, "%s", code);
    const char *k;
    json_t *v;
    const char *first = NULL;
    json_object_foreach(objects, k, v)
    {
        const char *s = json_is_string(v) ? json_string_value(v) : "null";
        if (!first && json_is_string(v))
            first = s;
        if (used < sizeof key)
            used += (size_t)snprintf(key + used, sizeof key - used, ":%s", s);
    }
    json_t *c = json_object_get(cs->by_key, key);
    if (c) {
        if (index >= 0) {
            json_t *ix = json_object_get(c, "indexes");
            if (!ix) {
                ix = json_array();
                json_object_set_new(c, "indexes", ix);
            }
            json_array_append_new(ix, json_integer(index));
        }
        json_decref(objects);
        return;
    }
    c = json_object();
    if (first)
        json_object_set_new(c, "object", json_string(first));
    json_object_set_new(c, "objects", objects);
    json_object_set_new(c, "value", json_string(msg));
    json_object_set_new(c, "errorCode", json_string(code));
    if (property)
        json_object_set_new(c, "property", json_string(property));
    if (index >= 0)
        json_object_set_new(c, "indexes", json_pack("[I]", (json_int_t)index));
    json_array_append_new(cs->list, c);
    json_object_set(cs->by_key, key, c);
}

/* An ordered {name: id} object; NULL ids are stored as JSON null. */
static json_t *objs(const char *k1, const char *v1, const char *k2, const char *v2)
{
    json_t *o = json_object();
    json_object_set_new(o, k1, v1 ? json_string(v1) : json_null());
    if (k2)
        json_object_set_new(o, k2, v2 ? json_string(v2) : json_null());
    return o;
}

/* ------------------------------------------------------------------------ */
/* Value types (ValidationUtils.valueIsValid, MathUtils)                    */
/* ------------------------------------------------------------------------ */

/* ^(0|-?[1-9]\d*)$ within the 32-bit range of IntegerValidator. */
static bool is_integer(const char *s)
{
    const char *p = s;
    if (strcmp(s, "0") == 0)
        return true;
    if (*p == '-')
        p++;
    if (*p < '1' || *p > '9' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 10)
        return false;
    long long v = strtoll(s, NULL, 10);
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* MathUtils.NUMERIC_REGEXP: ^(-?0|-?[1-9]\d*)(\.\d+)?(E(-)?\d+)?$ */
static bool is_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        p += strspn(p, "0123456789");
    else
        return false;
    if (*p == '.') {
        size_t n = strspn(p + 1, "0123456789");
        if (n == 0)
            return false;
        p += 1 + n;
    }
    if (*p == 'E') {
        p++;
        if (*p == '-')
            p++;
        size_t n = strspn(p, "0123456789");
        if (n == 0)
            return false;
        p += n;
    }
    return *p == '\0';
}

/* MathUtils.isZero: ^0(\.0*)?$ */
static bool is_zero(const char *s)
{
    if (!s || s[0] != '0')
        return false;
    if (s[1] == '\0')
        return true;
    return s[1] == '.' && strspn(s + 2, "0") == strlen(s + 2);
}

/* The i18n text of a ValidationUtils error key. */
static const char *i18n(const char *key)
{
    static const char *const texts[][2] = {
        {"value_not_integer", "Data value is not an integer"},
        {"value_not_positive_integer", "Data value is not a positive integer"},
        {"value_not_zero_or_positive_integer", "Data value is not zero or positive integer"},
        {"value_not_negative_integer", "Data value is not a negative integer"},
        {"value_not_numeric", "Data value is not numeric"},
        {"value_not_percentage", "Data value is not a percentage"},
        {"value_not_unit_interval", "Data value is not a unit interval"},
        {"value_not_bool", "Data value is not a boolean"},
        {"value_not_true_only", "Data value is not true"},
        {"value_not_valid_date", "Data value is not a valid date"},
        {"value_length_greater_than_max_length", "Data value is greater than max length"},
        {"comment_length_greater_than_max_length", "Comment is greater than max length"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (strcmp(texts[i][0], key) == 0)
            return texts[i][1];
    return key;
}

/* NULL when `v` is valid for the value type, else the error key. Blank values
 * are valid (ValidationUtils.valueIsValid). */
static const char *value_type_error(const char *vt, const char *v)
{
    char tmp[8];
    if (!v || !trim_to_null(v, tmp, sizeof tmp))
        return NULL;
    if (strlen(v) > SIM_MAX_VALUE)
        return "value_length_greater_than_max_length";
    if (!vt)
        return NULL;
    if (strcmp(vt, "INTEGER") == 0)
        return is_integer(v) ? NULL : "value_not_integer";
    if (strcmp(vt, "INTEGER_POSITIVE") == 0)
        return is_integer(v) && v[0] != '-' && strcmp(v, "0") != 0 ? NULL
                                                                   : "value_not_positive_integer";
    if (strcmp(vt, "INTEGER_ZERO_OR_POSITIVE") == 0)
        return is_integer(v) && v[0] != '-' ? NULL : "value_not_zero_or_positive_integer";
    if (strcmp(vt, "INTEGER_NEGATIVE") == 0)
        return is_integer(v) && v[0] == '-' ? NULL : "value_not_negative_integer";
    if (strcmp(vt, "NUMBER") == 0)
        return is_number(v) ? NULL : "value_not_numeric";
    if (strcmp(vt, "PERCENTAGE") == 0)
        return is_number(v) && strtod(v, NULL) >= 0 && strtod(v, NULL) <= 100
                   ? NULL
                   : "value_not_percentage";
    if (strcmp(vt, "UNIT_INTERVAL") == 0)
        return is_number(v) && strtod(v, NULL) >= 0 && strtod(v, NULL) <= 1
                   ? NULL
                   : "value_not_unit_interval";
    if (strcmp(vt, "BOOLEAN") == 0)
        return strcasecmp(v, "true") == 0 || strcasecmp(v, "false") == 0 ? NULL : "value_not_bool";
    if (strcmp(vt, "TRUE_ONLY") == 0)
        return strcasecmp(v, "true") == 0 ? NULL : "value_not_true_only";
    if (strcmp(vt, "DATE") == 0) {
        long d;
        return parse_date(v, strlen(v), &d) ? NULL : "value_not_valid_date";
    }
    return NULL; /* TEXT, LONG_TEXT and the types the simulator does not check */
}

/* ------------------------------------------------------------------------ */
/* Reading the payload into DataValueEntry-like objects                     */
/* ------------------------------------------------------------------------ */

/*
 * Every format is read into a header (the DataValueSet properties: dataSet,
 * completeDate, period, orgUnit, attributeOptionCombo, ...) and an array of
 * data values, each a JSON object whose string members are what
 * DataValueEntry's getters return: dataElement, period, orgUnit,
 * categoryOptionCombo, attributeOptionCombo, value, comment, storedBy (strings
 * as sent, absent for null), followup and deleted (booleans).
 */
static const char *const entry_strings[] = {
    "dataElement", "period",   "orgUnit", "categoryOptionCombo", "attributeOptionCombo", "value",
    "comment",     "storedBy", "created", "lastUpdated"};

/* Jackson's view of a String property: strings as they are, numbers and
 * booleans as their text, null as absent; arrays and objects are an error. */
static bool coerce_string(json_t *from, const char *key, json_t *to, char *err, size_t errsz)
{
    json_t *v = json_object_get(from, key);
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v)) {
        json_object_set(to, key, v);
        return true;
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        if (!text)
            return false;
        json_object_set_new(to, key, json_string(text));
        free(text);
        return true;
    }
    snprintf(err, errsz,
             "Cannot deserialize value of type `java.lang.String` from %s value (property \"%s\")",
             json_is_array(v) ? "Array" : "Object", key);
    return false;
}

static bool coerce_bool(json_t *from, const char *key, json_t *to, char *err, size_t errsz)
{
    json_t *v = json_object_get(from, key);
    if (!v || json_is_null(v))
        return true;
    if (json_is_boolean(v) ||
        (json_is_string(v) && (strcasecmp(json_string_value(v), "true") == 0 ||
                               strcasecmp(json_string_value(v), "false") == 0))) {
        json_object_set_new(
            to, key,
            json_boolean(json_is_true(v) ||
                         (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0)));
        return true;
    }
    snprintf(err, errsz, "Cannot deserialize value of type `java.lang.Boolean` (property \"%s\")",
             key);
    return false;
}

/*
 * JSON: the whole document is a DataValueSet (JsonDataValueSetReader reads it
 * with Jackson in one go). Returns false with err set when Jackson would fail.
 */
static bool read_json(const struct request *r, json_t **hdr, json_t **values, char *err,
                      size_t errsz)
{
    static const char *const header_strings[] = {"dataSet",
                                                 "completeDate",
                                                 "period",
                                                 "orgUnit",
                                                 "attributeOptionCombo",
                                                 "idScheme",
                                                 "dataElementIdScheme",
                                                 "orgUnitIdScheme",
                                                 "categoryOptionComboIdScheme",
                                                 "dataSetIdScheme",
                                                 "strategy"};
    json_error_t jerr;
    json_t *doc = json_loadb(r->body ? r->body : "", r->len, JSON_DECODE_ANY, &jerr);
    *hdr = *values = NULL;
    if (!doc) {
        snprintf(err, errsz, "Unexpected character or end of input: line %d, column %d: %s",
                 jerr.line, jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(doc)) {
        snprintf(err, errsz, "Cannot deserialize value of type `DataValueSet` from %s value",
                 json_is_array(doc) ? "Array" : "scalar");
        json_decref(doc);
        return false;
    }
    *hdr = json_object();
    *values = json_array();
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof header_strings / sizeof header_strings[0]; i++)
        ok = coerce_string(doc, header_strings[i], *hdr, err, errsz);
    if (ok)
        ok = coerce_bool(doc, "dryRun", *hdr, err, errsz);
    json_t *aco = json_object_get(doc, "attributeCategoryOptions"), *v;
    size_t i;
    if (ok && aco && !json_is_null(aco)) {
        if (!json_is_array(aco)) {
            snprintf(err, errsz, "Cannot deserialize \"attributeCategoryOptions\": not an array");
            ok = false;
        } else {
            json_t *list = json_array();
            json_array_foreach(aco, i, v)
            {
                if (json_is_string(v))
                    json_array_append(list, v);
            }
            json_object_set_new(*hdr, "attributeCategoryOptions", list);
        }
    }
    json_t *dvs = json_object_get(doc, "dataValues");
    if (ok && dvs && !json_is_null(dvs) && !json_is_array(dvs)) {
        snprintf(err, errsz,
                 "Cannot deserialize value of type `java.util.ArrayList` from %s value "
                 "(property \"dataValues\")",
                 json_is_object(dvs) ? "Object" : "scalar");
        ok = false;
    }
    json_array_foreach(dvs, i, v)
    {
        if (!ok)
            break;
        if (!json_is_object(v)) {
            snprintf(err, errsz,
                     "Cannot deserialize value of type `DataValue` from non-object value "
                     "(dataValues[%zu])",
                     i);
            ok = false;
            break;
        }
        json_t *e = json_object();
        for (size_t k = 0; ok && k < sizeof entry_strings / sizeof entry_strings[0]; k++)
            ok = coerce_string(v, entry_strings[k], e, err, errsz);
        if (ok)
            ok = coerce_bool(v, "followup", e, err, errsz) &&
                 coerce_bool(v, "deleted", e, err, errsz);
        json_array_append_new(*values, e);
    }
    json_decref(doc);
    if (!ok) {
        json_decref(*hdr);
        json_decref(*values);
        *hdr = *values = NULL;
    }
    return ok;
}

/*
 * CSV (CsvDataValueSetReader; StreamingCsvDataValueSet before 2.38) with
 * javacsv's defaults: comma, double quotes ("" inside quotes is a quote),
 * unquoted fields trimmed, empty lines skipped. Columns: dataelement, period,
 * orgunit, categoryoptioncombo, attributeoptioncombo, value, storedby,
 * lastupdated, comment, followup, deleted. The first row is skipped unless
 * firstRowIsHeader=false, whatever it holds. A missing column reads as ""
 * from 2.38 on and as null before.
 */
/* Appends c to the growing cell *buf (kept NUL-terminable); false when out of
 * memory (then *buf is freed). */
static bool push_char(char **buf, size_t *cap, size_t *n, char c)
{
    if (*n + 1 >= *cap) {
        char *nb = realloc(*buf, *cap *= 2);
        if (nb == NULL) {
            free(*buf);
            *buf = NULL;
            return false;
        }
        *buf = nb;
    }
    (*buf)[(*n)++] = c;
    return true;
}

static bool read_csv(const struct request *r, json_t **hdr, json_t **values)
{
    static const char *const columns[] = {"dataElement",
                                          "period",
                                          "orgUnit",
                                          "categoryOptionCombo",
                                          "attributeOptionCombo",
                                          "value",
                                          "storedBy",
                                          "lastUpdated",
                                          "comment",
                                          "followup",
                                          "deleted"};
    const char *p = r->body ? r->body : "", *end = p + r->len;
    bool skip_first =
        !(qarg(r, "firstRowIsHeader") && strcasecmp(qarg(r, "firstRowIsHeader"), "false") == 0);
    bool first = true;
    *hdr = json_object();
    *values = json_array();
    const char *ds = qarg(r, "dataSet");
    if (rule_csv_data_set_option() && ds && *ds)
        json_object_set_new(*hdr, "dataSet", json_string(ds));

    while (p < end) {
        json_t *fields = json_array();
        bool record_end = false;
        while (!record_end) {
            /* one field */
            size_t cap = 64, n = 0;
            char *buf = malloc(cap);
            if (!buf) {
                json_decref(fields);
                return false;
            }
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p < end && *p == '"') {
                p++;
                while (p < end) {
                    if (*p == '"' && p + 1 < end && p[1] == '"') {
                        p++;
                    } else if (*p == '"') {
                        p++;
                        break;
                    }
                    if (!push_char(&buf, &cap, &n, *p++)) {
                        json_decref(fields);
                        return false;
                    }
                }
                while (p < end && *p != ',' && *p != '\n' && *p != '\r')
                    p++; /* text after the closing quote is dropped */
            } else {
                while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                    if (!push_char(&buf, &cap, &n, *p++)) {
                        json_decref(fields);
                        return false;
                    }
                }
                while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                    n--;
            }
            buf[n] = '\0';
            json_array_append_new(fields, json_string(buf));
            free(buf);
            if (p < end && *p == ',') {
                p++;
            } else {
                if (p < end && *p == '\r')
                    p++;
                if (p < end && *p == '\n')
                    p++;
                record_end = true;
            }
        }
        bool empty = json_array_size(fields) == 1 && !*json_string_value(json_array_get(fields, 0));
        if (empty) { /* SkipEmptyRecords */
            json_decref(fields);
            continue;
        }
        if (first && skip_first) {
            first = false;
            json_decref(fields);
            continue;
        }
        first = false;
        json_t *e = json_object();
        for (size_t k = 0; k < sizeof columns / sizeof columns[0]; k++) {
            json_t *f = json_array_get(fields, k);
            const char *s = f ? json_string_value(f) : opt.minor >= 38 ? "" : NULL;
            if (k >= 9)
                json_object_set_new(e, columns[k], json_boolean(s && strcasecmp(s, "true") == 0));
            else if (s)
                json_object_set_new(e, columns[k], json_string(s));
        }
        json_array_append_new(*values, e);
        json_decref(fields);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* ADX (DefaultAdxDataService; AdxDataValueSetReader in 2.42)               */
/* ------------------------------------------------------------------------ */

struct adx_result {
    json_t *values;    /* the data values handed to the DXF2 import */
    json_t *conflicts; /* [[object, message]...]: value-level ADX problems (2.36-2.41) */
    bool failed;       /* the whole import failed */
    char fail_object[128], fail_msg[768];
    long fail_group; /* group number in the description (2.36-2.41) */
};

static bool adx_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ADX_NS) == 0 &&
           strcmp((const char *)n->name, name) == 0;
}

/* The element's attributes without a namespace (xsi:... and the like are skipped). */
static json_t *xml_attrs(xmlNode *n)
{
    json_t *o = json_object();
    for (xmlAttr *a = n->properties; a; a = a->next) {
        if (a->ns)
            continue;
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        json_object_set_new(o, (const char *)a->name, json_string(v ? (const char *)v : ""));
        xmlFree(v);
    }
    return o;
}

/* Xerces XMLChar.isValidName, for ASCII. */
static bool xml_name_ok(const char *s)
{
    if (!s || !*s || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':' || *p == '-' || *p == '.' ||
              (unsigned char)*p >= 0x80))
            return false;
    return true;
}

static const char *scheme_lower(enum scheme s)
{
    return s == SCHEME_UID ? "uid" : s == SCHEME_CODE ? "code" : "name";
}

/*
 * DefaultAdxDataService.convertAttributesToDxf: for a non-default category
 * combo, every category must be an attribute (named by the category's
 * identifier in categoryIdScheme, by code in 2.36), those attributes are
 * removed, and the option combo whose options (in categoryOptionIdScheme)
 * match is put under `name` as its identifier in categoryOptionComboIdScheme.
 */
static bool adx_convert(json_t *attrs, const char *name, const struct md_obj *combo,
                        const struct import_opts *o, char *err, size_t errsz)
{
    if (!combo)
        return true;
    enum scheme cat_scheme = opt.minor <= 36 ? SCHEME_CODE : o->cat;
    json_t *cats = json_object_get(combo->src, "categories"), *c;
    json_t *want = json_object(); /* category code -> option code */
    json_t *seen = json_object(); /* attribute -> value, for messages */
    size_t i;
    bool ok = true;
    json_array_foreach(cats, i, c)
    {
        const struct md_obj *cat = md_find(&md.cats, SCHEME_CODE, json_string_value(c));
        const char *cat_id = cat ? md_key(cat, cat_scheme) : NULL;
        if (!cat_id || !xml_name_ok(cat_id)) {
            if (opt.minor <= 36)
                snprintf(err, errsz, "Category code for %s is missing or invalid: %s",
                         cat && cat->name ? cat->name : "?", cat_id ? cat_id : "null");
            else
                snprintf(err, errsz, "Category %s for %s is missing or invalid: %s",
                         scheme_name(cat_scheme), cat && cat->name ? cat->name : "?",
                         cat_id ? cat_id : "null");
            ok = false;
            break;
        }
        const char *option = jstr(attrs, cat_id);
        if (!option) {
            snprintf(err, errsz, "Category combo %s must have %s",
                     combo->name ? combo->name : combo->id, cat->name ? cat->name : cat_id);
            ok = false;
            break;
        }
        json_object_set_new(seen, cat_id, json_string(option));
        /* the option, as an identifier in categoryOptionIdScheme */
        const char *opt_code = option;
        if (md.catopts.n || o->catopt != SCHEME_CODE) {
            const struct md_obj *co = md_find(&md.catopts, o->catopt, option);
            opt_code = co && co->code ? co->code : NULL;
        }
        json_object_set_new(want, json_string_value(c),
                            opt_code ? json_string(opt_code) : json_null());
        json_object_del(attrs, cat_id);
    }
    const struct md_obj *found = NULL;
    for (size_t k = 0; ok && k < md.all_cocs.n && !found; k++)
        if (md_combo_has(combo, &md.all_cocs.v[k]) &&
            json_equal(json_object_get(md.all_cocs.v[k].src, "categoryOptions"), want))
            found = &md.all_cocs.v[k];
    if (ok && !found) {
        /* like Java's HashMap.toString */
        size_t used =
            (size_t)snprintf(err, errsz, "Invalid attributes:%s{", opt.minor <= 36 ? "" : " ");
        const char *k;
        json_t *v;
        bool firstkv = true;
        json_object_foreach(seen, k, v)
        {
            if (used < errsz)
                used += (size_t)snprintf(err + used, errsz - used, "%s%s=%s", firstkv ? "" : ", ",
                                         k, json_string_value(v));
            firstkv = false;
        }
        if (used < errsz)
            snprintf(err + used, errsz - used, "}");
        ok = false;
    }
    if (ok) {
        const char *id = md_key(found, o->coc);
        json_object_set_new(attrs, name, id ? json_string(id) : json_null());
    }
    json_decref(want);
    json_decref(seen);
    return ok;
}

/* AdxException's object: "ADX Error" unless given, none (null) in 2.36. */
static const char *adx_object(const char *object)
{
    return object ? object : opt.minor <= 36 ? NULL : "ADX Error";
}

static void adx_fail(struct adx_result *res, long group, const char *object, const char *msg)
{
    res->failed = true;
    res->fail_group = group;
    snprintf(res->fail_object, sizeof res->fail_object, "%s", object ? object : "");
    snprintf(res->fail_msg, sizeof res->fail_msg, "%s", msg);
}

/* A value-level ADX problem: a conflict in 2.36-2.41, the end of the import in 2.42. */
static void adx_value_problem(struct adx_result *res, long group, const char *object,
                              const char *msg)
{
    if (rule_adx_reader())
        adx_fail(res, group, object, msg);
    else
        json_array_append_new(res->conflicts, json_pack("[s?,s]", object, msg));
}

/*
 * Converts ADX into the data values of a DXF2 import, with the ADX-level rules
 * of the imitated release (see struct adx_result). A document with a DOCTYPE
 * is refused before parsing (the parser never loads the network or
 * substitutes entities): the import fails, as it does in DHIS2, whose XML
 * reader does not take DTDs.
 */
static void adx_read(const struct request *r, const struct import_opts *o, struct adx_result *res)
{
    const char *body = r->body ? r->body : "";
    char err[768];
    memset(res, 0, sizeof *res);
    res->values = json_array();
    res->conflicts = json_array();
    if (memmem(body, r->len, "<!DOCTYPE", 9)) {
        adx_fail(res, 0, adx_object(NULL), "ADX documents with a DOCTYPE are refused");
        return;
    }
    xmlDoc *doc = xmlReadMemory(body, (int)r->len, "adx.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(err, sizeof err, "ADX document is not well-formed XML: %s",
                 e && e->message ? e->message : "parse error");
        size_t l = strlen(err);
        if (l && err[l - 1] == '\n')
            err[l - 1] = '\0';
        adx_fail(res, 0, adx_object(NULL), err);
        return;
    }
    if (doc->intSubset || doc->extSubset) {
        adx_fail(res, 0, adx_object(NULL), "ADX documents with a DOCTYPE are refused");
        xmlFreeDoc(doc);
        return;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    long group = 0;
    /* XMLReader.moveToStartElement(ROOT, NAMESPACE): without an <adx> root no group
     * is found and the import is empty. */
    for (xmlNode *g = root && adx_is(root, "adx") ? root->children : NULL; g && !res->failed;
         g = g->next) {
        if (!adx_is(g, "group"))
            continue;
        json_t *ga = xml_attrs(g);
        const char *pe = jstr(ga, "period");
        struct period p;
        if (!pe) {
            adx_fail(res, group, adx_object(NULL), "period attribute is required on 'group'");
        } else if (!jstr(ga, "orgUnit")) {
            adx_fail(res, group, adx_object(NULL), "orgUnit attribute is required on 'group'");
        } else if (!period_from_adx(pe, &p, err, sizeof err)) {
            adx_fail(res, group, adx_object(NULL), err);
        } else {
            char iso[SIM_PERIOD_MAX];
            period_format(&p, iso, sizeof iso);
            json_object_set_new(ga, "period", json_string(iso));
            const char *ds_id = jstr(ga, "dataSet");
            if (!json_object_get(ga, "attributeOptionCombo") && ds_id) {
                char b[256];
                const struct md_obj *ds = md_find(&md.dss, o->ds, trim_to_null(ds_id, b, sizeof b));
                if (!ds) {
                    snprintf(err, sizeof err, "No data set matching %s '%s'", scheme_lower(o->ds),
                             ds_id);
                    adx_fail(res, group, adx_object(NULL), err);
                } else {
                    json_object_set_new(ga, "dataSet", json_string(ds->id));
                    if (!adx_convert(ga, "attributeOptionCombo", md_combo_of(ds), o, err,
                                     sizeof err))
                        adx_fail(res, group, adx_object(NULL), err);
                }
            }
        }
        for (xmlNode *d = g->children; d && !res->failed; d = d->next) {
            if (!adx_is(d, "dataValue"))
                continue;
            json_t *va = xml_attrs(d);
            const char *de_id = jstr(va, "dataElement");
            const struct md_obj *de = NULL;
            char b[256];
            if (!de_id) {
                adx_value_problem(res, group, adx_object(NULL),
                                  "dataElement attribute is required on 'dataValue'");
            } else if (!json_object_get(va, "value")) {
                adx_value_problem(res, group, adx_object(NULL),
                                  "value attribute is required on 'dataValue'");
            } else if (!(de = md_find(&md.des, o->de, trim_to_null(de_id, b, sizeof b)))) {
                snprintf(err, sizeof err, "No data element matching %s '%s'", scheme_lower(o->de),
                         de_id);
                adx_value_problem(res, group, adx_object(NULL), err);
            } else if (!json_object_get(va, "categoryOptionCombo") &&
                       !adx_convert(va, "categoryOptionCombo", md_combo_of(de), o, err,
                                    sizeof err)) {
                adx_value_problem(res, group, adx_object(NULL), err);
                de = NULL;
            } else if (!md_de_numeric(de)) {
                /* a non-numeric data element takes its value from <annotation> */
                xmlNode *a = d->children;
                while (a && !adx_is(a, "annotation"))
                    a = a->next;
                if (!a) {
                    adx_value_problem(res, group, rule_adx_reader() ? adx_object(NULL) : de_id,
                                      "DataElement expects text annotation");
                    de = NULL;
                } else {
                    xmlChar *text = xmlNodeGetContent(a);
                    json_object_set_new(va, "value", json_string(text ? (const char *)text : ""));
                    xmlFree(text);
                }
            }
            if (de && !res->failed) {
                /* the group's attributes, then the value's, as one DXF2 dataValue */
                json_t *dxf = json_deep_copy(ga);
                const char *k;
                json_t *v;
                bool null_attr = false;
                json_object_update(dxf, va);
                json_object_foreach(dxf, k, v)
                {
                    if (json_is_null(v) && !null_attr && !rule_adx_reader()) {
                        snprintf(err, sizeof err, "Value for %s is null", k);
                        adx_value_problem(res, group, adx_object(NULL), err);
                        null_attr = true;
                    }
                }
                json_t *e = json_object();
                for (size_t i = 0; i < sizeof entry_strings / sizeof entry_strings[0]; i++)
                    if (jstr(dxf, entry_strings[i]))
                        json_object_set_new(e, entry_strings[i],
                                            json_string(jstr(dxf, entry_strings[i])));
                json_object_set_new(e, "followup",
                                    json_boolean(jstr(dxf, "followup") &&
                                                 strcasecmp(jstr(dxf, "followup"), "true") == 0));
                if (jstr(dxf, "deleted"))
                    json_object_set_new(
                        e, "deleted", json_boolean(strcasecmp(jstr(dxf, "deleted"), "true") == 0));
                if (!null_attr)
                    json_array_append_new(res->values, e);
                else
                    json_decref(e);
                json_decref(dxf);
            }
            json_decref(va);
        }
        json_decref(ga);
        group++;
    }
    xmlFreeDoc(doc);
}

/* ------------------------------------------------------------------------ */
/* Import: the context of one request                                       */
/* ------------------------------------------------------------------------ */

struct import_ctx {
    struct request *r;
    enum import_format fmt;
    struct import_opts o;
    json_t *hdr;    /* DataValueSet properties */
    json_t *values; /* the data values */
    /* DataSetContext: the set-level objects; the outer ones win over a value's own */
    const struct md_obj *ds, *outer_ou, *outer_aoc;
    bool have_outer_pe;
    struct period outer_pe;
    long today;
    struct conflicts cs;
    json_t *rejected; /* ImportSummary.rejectedIndexes */
    long imported, updated, ignored, deleted;
    const char *status;
    char description[900];
    char complete[24]; /* dataSetComplete; "" when not set */
};

/* A value that passed validation, resolved to UIDs. */
struct item {
    long index;
    struct sv_key key;
    const struct md_obj *de;
    const char *raw_value; /* as sent: the zero test uses it */
    char *value;           /* stored form: trimToNull(normalizeBoolean(value)) */
    char *comment;         /* trimToNull(comment) */
    const char *stored_by;
    bool followup, deleted;
    bool zero_skipped; /* 2.36: a zero skipped during validation */
};

static void reject(struct import_ctx *c, long index)
{
    if (index >= 0)
        json_array_append_new(c->rejected, json_integer(index));
}

/* ValidationUtils.normalizeBoolean: true/false variants of BOOLEAN and TRUE_ONLY values. */
static const char *normalize_boolean(const char *v, const char *vt)
{
    static const char *const t[] = {"true", "True", "TRUE", "t", "T", "1"};
    static const char *const f[] = {"false", "False", "FALSE", "f", "F", "0"};
    if (!v || !vt || (strcmp(vt, "BOOLEAN") != 0 && strcmp(vt, "TRUE_ONLY") != 0))
        return v;
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(vt, "TRUE_ONLY") != 0 && strcmp(v, f[i]) == 0)
            return "false";
        if (strcmp(v, t[i]) == 0)
            return "true";
    }
    return v;
}

/* ValidationUtils.dataValueIsZeroAndInsignificant: a zero of a numeric data
 * element whose zeroIsSignificant is false, unless its aggregation type is
 * AVERAGE or AVERAGE_SUM_ORG_UNIT. The value is tested as it was sent. */
static bool zero_insignificant(const struct md_obj *de, const char *raw_value)
{
    const char *agg = jstr(de->src, "aggregationType");
    return md_de_numeric(de) && is_zero(raw_value) &&
           !json_is_true(json_object_get(de->src, "zeroIsSignificant")) &&
           !(agg && (strcmp(agg, "AVERAGE") == 0 || strcmp(agg, "AVERAGE_SUM_ORG_UNIT") == 0));
}

/* The category combo that holds an option combo (NULL: the default one). */
static const struct md_obj *combo_holding(const struct md_obj *coc)
{
    for (size_t i = 0; i < md.combos.n; i++)
        if (md_combo_has(&md.combos.v[i], coc))
            return &md.combos.v[i];
    return NULL;
}

/* The latest period open for data entry in a data set: PeriodType.getFuturePeriod
 * (openFuturePeriods): the current period, rewound one, moved on by the number of
 * open future periods (0 by default, so the current period is not open yet). */
static bool latest_open(enum ptype t, int open_future, long today, struct period *latest)
{
    struct period cur;
    return period_containing(t, today, &cur) && period_shift(&cur, open_future - 1, latest);
}

static int ds_open_future(const struct md_obj *ds)
{
    return (int)json_integer_value(json_object_get(ds->src, "openFuturePeriods"));
}

/*
 * Future periods (E7641). From 2.39.1/2.40 (checkDataValueTargetDataSets) every
 * target data set is checked: the data set of the import, else the data
 * element's data sets that have the org unit and the attribute option combo's
 * category combo (ImportContext.getTargetDataSets); a value whose period ends
 * after the data set's latest open period is refused. Before, the data
 * element's own period type and openFuturePeriods were used whenever the import
 * had a data set or the data element was in one (DataElement.
 * getLatestOpenFuturePeriod). Returns false when a conflict was added.
 */
static bool check_future(struct import_ctx *c, long index, const struct period *p, const char *iso,
                         const char *raw_pe, const char *raw_de, const struct md_obj *de,
                         const struct md_obj *ou, const struct md_obj *aoc)
{
    struct period latest;
    char lid[SIM_PERIOD_MAX];
    bool ok = true;
    if (rule_target_data_sets()) {
        const struct md_obj *aoc_combo = combo_holding(aoc);
        for (size_t i = 0; i < md.dss.n; i++) {
            const struct md_obj *ds = &md.dss.v[i];
            if (c->ds ? ds != c->ds
                      : !md_dataset_has_de(ds, de->id) || !md_dataset_has_ou(ds, ou->id) ||
                            md_combo_of(ds) != aoc_combo)
                continue;
            if (!latest_open(ptype_by_name(jstr(ds->src, "periodType")), ds_open_future(ds),
                             c->today, &latest) ||
                p->end <= latest.end)
                continue;
            period_format(&latest, lid, sizeof lid);
            json_t *o = objs("period", raw_pe, "dataElement", raw_de);
            json_object_set_new(o, "dataSet", json_string(ds->id));
            conflict_code(&c->cs, index, "E7641", "period", o, NULL, NULL,
                          "Period: `%s` is after latest open future period: `%s` for data "
                          "element: `%s` and data set: `%s`",
                          raw_pe ? raw_pe : iso, lid, raw_de, ds->id);
            ok = false;
        }
        return ok;
    }
    const struct md_obj *first = NULL;
    int open = 0;
    for (size_t i = 0; i < md.dss.n; i++)
        if (md_dataset_has_de(&md.dss.v[i], de->id)) {
            if (!first)
                first = &md.dss.v[i];
            if (ds_open_future(&md.dss.v[i]) > open)
                open = ds_open_future(&md.dss.v[i]);
        }
    if (!first)
        return true; /* no period type for the data element: DHIS2 skips the check */
    if (!latest_open(ptype_by_name(jstr(first->src, "periodType")), open, c->today, &latest) ||
        p->end <= latest.end)
        return true;
    period_format(&latest, lid, sizeof lid);
    char legacy[512];
    snprintf(legacy, sizeof legacy,
             "Period: %s is after latest open future period: %s for data element: %s", iso, lid,
             de->id);
    conflict_code(&c->cs, index, "E7641", "period", objs("period", raw_pe, "dataElement", raw_de),
                  iso, legacy,
                  "Period: `%s` is after latest open future period: `%s` for data "
                  "element: `%s`",
                  raw_pe ? raw_pe : iso, lid, raw_de);
    return false;
}

/*
 * Validates one data value like DataValueSetImportValidator.skipDataValue
 * (2.37+) or the loop of DefaultDataValueSetService.saveDataValueSet (2.36), in
 * their order, adding at most one conflict (E7641 may give one per target data
 * set). Fills `it` and returns true when the value goes on to be stored.
 */
static bool resolve_value(struct import_ctx *c, const json_t *dv, long index, struct item *it)
{
    char b_de[256], b_pe[64], b_ou[256], b_coc[256], b_aoc[256], legacy[700];
    const char *raw_de = jstr(dv, "dataElement"), *raw_pe = jstr(dv, "period"),
               *raw_ou = jstr(dv, "orgUnit"), *raw_coc = jstr(dv, "categoryOptionCombo"),
               *raw_aoc = jstr(dv, "attributeOptionCombo"), *raw_value = jstr(dv, "value"),
               *raw_comment = jstr(dv, "comment");
    bool v237 = rule_structured();
    struct conflicts *cs = &c->cs;
    memset(it, 0, sizeof *it);
    it->index = index;

    const struct md_obj *de = md_find(&md.des, c->o.de, trim_to_null(raw_de, b_de, sizeof b_de));
    if (!de) {
        conflict_code(cs, index, "E7610", "dataElement", objs("dataElement", raw_de, NULL, NULL),
                      raw_de, "Data element not found or not accessible",
                      "Data element not found or not accessible: `%s`", raw_de ? raw_de : "null");
        return false;
    }
    struct period p;
    if (c->have_outer_pe) {
        p = c->outer_pe;
    } else if (!period_parse(trim_to_null(raw_pe, b_pe, sizeof b_pe), &p)) {
        conflict_code(cs, index, "E7611", "period", objs("period", raw_pe, NULL, NULL), raw_pe,
                      "Period not valid", "Period not valid: `%s`", raw_pe ? raw_pe : "null");
        return false;
    }
    char iso[SIM_PERIOD_MAX];
    period_format(&p, iso, sizeof iso);
    const struct md_obj *ou =
        c->outer_ou ? c->outer_ou
                    : md_find(&md.ous, c->o.ou, trim_to_null(raw_ou, b_ou, sizeof b_ou));
    if (!ou) {
        conflict_code(cs, index, "E7612", "orgUnit", objs("organisationUnit", raw_ou, NULL, NULL),
                      raw_ou, "Organisation unit not found or not accessible",
                      "Organisation unit not found or not accessible: `%s`",
                      raw_ou ? raw_ou : "null");
        return false;
    }
    const char *coc_id = trim_to_null(raw_coc, b_coc, sizeof b_coc);
    const struct md_obj *coc = md_find(&md.all_cocs, c->o.coc, coc_id);
    if (!coc && coc_id) {
        conflict_code(cs, index, "E7613", "categoryOptionCombo",
                      objs("categoryOptionCombo", raw_coc, NULL, NULL), raw_coc,
                      "Category option combo not found or not accessible for writing data",
                      "Category option combo not found or not accessible for writing data: `%s`",
                      raw_coc);
        return false;
    }
    const char *aoc_id = trim_to_null(raw_aoc, b_aoc, sizeof b_aoc);
    const struct md_obj *aoc =
        c->outer_aoc ? c->outer_aoc : md_find(&md.all_cocs, c->o.coc, aoc_id);
    if (!aoc && aoc_id) {
        conflict_code(cs, index, "E7615", "attributeOptionCombo",
                      objs("categoryOptionCombo", raw_aoc, NULL, NULL), raw_aoc,
                      "Attribute option combo not found or not accessible for writing data",
                      "Attribute option combo not found or not accessible for writing data: `%s`",
                      raw_aoc);
        return false;
    }
    bool deleted = json_is_true(json_object_get(dv, "deleted"));
    if (!raw_value && !raw_comment && !deleted && (!v237 || c->o.strategy != ST_DELETE)) {
        snprintf(legacy, sizeof legacy, "Data value or comment not specified for data element: %s",
                 de->id);
        conflict_code(cs, index, "E7618", "value", objs("dataElement", raw_de, NULL, NULL), "Value",
                      legacy, "Data value or comment not specified for data element: `%s`", raw_de);
        return false;
    }
    const char *vt = jstr(de->src, "valueType");
    const char *value = normalize_boolean(raw_value, vt);
    const char *why = value_type_error(vt, value);
    if (why) {
        snprintf(legacy, sizeof legacy, "%s, must match data element type: %s", i18n(why), de->id);
        if (opt.minor >= 40)
            conflict_code(cs, index, "E7619", "value", objs("dataElement", raw_de, "value", why),
                          value, legacy, "Value must match value type of data element `%s`: `%s`",
                          raw_de, i18n(why));
        else
            conflict_code(cs, index, "E7619", "value", objs("dataElement", raw_de, "value", why),
                          value, legacy,
                          "Value must match data element's `%s` type constraints: %s", raw_de,
                          i18n(why));
        return false;
    }
    if (raw_comment && strlen(raw_comment) > SIM_MAX_VALUE) {
        conflict_code(cs, index, "E7620", "comment",
                      objs("comment", "comment_length_greater_than_max_length", NULL, NULL),
                      "Comment", i18n("comment_length_greater_than_max_length"),
                      "Invalid comment: %s", i18n("comment_length_greater_than_max_length"));
        return false;
    }
    /* Constraints */
    if (!coc && c->o.require_coc) {
        conflict_code(cs, index, "E7630", "categoryOptionCombo", json_object(), value,
                      "Category option combo is required but is not specified",
                      "Category option combo is required but is not specified");
        return false;
    }
    if (!coc)
        coc = md.default_coc;
    if (!aoc && c->o.require_aoc) {
        conflict_code(cs, index, "E7631", "attributeOptionCombo", json_object(), value,
                      "Attribute option combo is required but is not specified",
                      "Attribute option combo is required but is not specified");
        return false;
    }
    if (!aoc)
        aoc = md.default_aoc;
    if (c->o.strict_periods) {
        bool found = false;
        for (size_t i = 0; i < md.dss.n && !found; i++)
            found = md_dataset_has_de(&md.dss.v[i], de->id) &&
                    ptype_by_name(jstr(md.dss.v[i].src, "periodType")) == p.type;
        if (!found) {
            snprintf(legacy, sizeof legacy,
                     "Period type of period: %s not valid for data element: %s", iso, de->id);
            conflict_code(cs, index, "E7632", NULL, objs("period", raw_pe, "dataElement", raw_de),
                          raw_pe, legacy,
                          "Period type of period: `%s` not valid for data element: `%s`",
                          raw_pe ? raw_pe : iso, raw_de);
            return false;
        }
    }
    if (c->o.strict_des) {
        char list[512] = "";
        size_t used = 0;
        bool found = false;
        for (size_t i = 0; i < md.dss.n; i++) {
            const struct md_obj *ds = &md.dss.v[i];
            if (c->ds ? ds != c->ds : !md_dataset_has_de(ds, de->id))
                continue;
            found = found || md_dataset_has_de(ds, de->id);
            if (used < sizeof list)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? "," : "",
                                         ds->id);
        }
        if (!found) {
            snprintf(legacy, sizeof legacy, "Data element: %s is not part of dataset: %s", raw_de,
                     c->ds ? c->ds->id : "null");
            json_t *o = objs("dataElement", raw_de, "dataSet", list);
            if (rule_target_data_sets())
                conflict_code(cs, index, "E7633", "dataElement", o,
                              "DATA_IMPORT_STRICT_DATA_ELEMENTS", legacy,
                              "Data element: `%s` is not part of dataset(s): `%s`", raw_de, list);
            else
                conflict_code(cs, index, "E7633", "dataElement", o,
                              "DATA_IMPORT_STRICT_DATA_ELEMENTS", legacy,
                              "Data element: `%s` is not part of dataset: `%s`", raw_de, list);
            return false;
        }
    }
    if (c->o.strict_cocs && !md_combo_has(md_combo_of(de), coc)) {
        snprintf(legacy, sizeof legacy,
                 "Category option combo: %s must be part of category combo of data element: %s",
                 coc->id, de->id);
        conflict_code(cs, index, "E7634", "categoryOptionCombo",
                      objs("categoryOptionCombo", raw_coc, "dataElement", raw_de), coc->id, legacy,
                      "Category option combo: `%s` must be part of category combo of data "
                      "element: `%s`",
                      raw_coc ? raw_coc : coc->id, raw_de);
        return false;
    }
    if (c->o.strict_aocs) {
        bool found = false;
        for (size_t i = 0; i < md.dss.n && !found; i++)
            found = md_dataset_has_de(&md.dss.v[i], de->id) &&
                    md_combo_has(md_combo_of(&md.dss.v[i]), aoc);
        if (!found) {
            snprintf(legacy, sizeof legacy,
                     "Attribute option combo: %s must be part of category combo of data sets of "
                     "data element: %s",
                     aoc->id, de->id);
            conflict_code(cs, index, "E7635", "attributeOptionCombo",
                          objs("categoryOptionCombo", raw_aoc, "dataElement", raw_de), aoc->id,
                          legacy,
                          "Attribute option combo: `%s` must be part of category combo of data "
                          "sets of data element: `%s`",
                          raw_aoc ? raw_aoc : aoc->id, raw_de);
            return false;
        }
    }
    if (c->o.strict_ous) {
        bool found = false;
        for (size_t i = 0; i < md.dss.n && !found; i++)
            found =
                md_dataset_has_de(&md.dss.v[i], de->id) && md_dataset_has_ou(&md.dss.v[i], ou->id);
        if (!found) {
            snprintf(legacy, sizeof legacy,
                     "Data element: %s must be assigned through data sets to organisation unit: %s",
                     de->id, ou->id);
            conflict_code(cs, index, "E7636", "orgUnit",
                          objs("organisationUnit", raw_ou, "dataElement", raw_de), ou->id, legacy,
                          "Data element: `%s` must be assigned through data sets to organisation "
                          "unit: `%s`",
                          raw_de, raw_ou ? raw_ou : ou->id);
            return false;
        }
    }
    /* 2.36 skips a zero here, before the locking, future period and approval checks */
    bool zero_skip = !v237 && zero_insignificant(de, raw_value);
    if (!zero_skip && !check_future(c, index, &p, iso, raw_pe, raw_de, de, ou, aoc))
        return false;

    it->de = de;
    it->zero_skipped = zero_skip;
    snprintf(it->key.de, sizeof it->key.de, "%s", de->id);
    snprintf(it->key.pe, sizeof it->key.pe, "%s", iso);
    snprintf(it->key.ou, sizeof it->key.ou, "%s", ou->id);
    snprintf(it->key.coc, sizeof it->key.coc, "%s", coc->id);
    snprintf(it->key.aoc, sizeof it->key.aoc, "%s", aoc->id);
    it->raw_value = raw_value;
    it->value = trim_dup(value);
    it->comment = trim_dup(raw_comment);
    const char *by = jstr(dv, "storedBy");
    it->stored_by = by && trim_to_null(by, legacy, sizeof legacy) ? by : c->r->user;
    it->followup = json_is_true(json_object_get(dv, "followup"));
    it->deleted = deleted;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Import: applying values to the store                                     */
/* ------------------------------------------------------------------------ */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Replaces the stored fields of `v` with the item's; false when out of memory. */
static bool sv_assign(struct sv *v, const struct item *it, const char *now)
{
    char *value = it->value ? strdup(it->value) : NULL,
         *comment = it->comment ? strdup(it->comment) : NULL,
         *by = it->stored_by ? strdup(it->stored_by) : NULL;
    if ((it->value && !value) || (it->comment && !comment) || (it->stored_by && !by)) {
        free(value);
        free(comment);
        free(by);
        return false;
    }
    free(v->value);
    free(v->comment);
    free(v->stored_by);
    v->value = value;
    v->comment = comment;
    v->stored_by = by;
    v->followup = it->followup;
    v->deleted = it->deleted;
    snprintf(v->last_updated, sizeof v->last_updated, "%s", now);
    return true;
}

static bool store_new(const struct item *it, const char *now)
{
    struct sv *v = calloc(1, sizeof *v);
    if (!v)
        return false;
    v->key = it->key;
    snprintf(v->created, sizeof v->created, "%s", now);
    if (!sv_assign(v, it, now) || !store_insert(v)) {
        sv_free(v);
        return false;
    }
    return true;
}

/*
 * Stores one valid value like DefaultDataValueSetService.importDataValue
 * (2.37+). A zero of a data element without zeroIsSignificant is skipped when
 * there is no value yet, or under CREATE: ImportSummary.skipValue counts it as
 * ignored, but the count is then replaced (setImportCount) and the value is in
 * no count at all. With a stored value it deletes it (saveDataValueUpdate).
 * From rule_unchanged_ignored, a value equal to the stored one (value, comment,
 * followup) is counted ignored; before, updated. Caller holds store.mu.
 */
static void apply_237(struct import_ctx *c, const struct item *it, const char *now)
{
    struct sv *ex = store_get(&it->key);
    enum strategy st = c->o.strategy;
    bool dry = c->o.dry_run;
    bool zero = zero_insignificant(it->de, it->raw_value);
    bool null_value = !it->value && !it->comment;
    if (zero && (!ex || st == ST_CREATE))
        return; /* skipValue(): in no count */
    if (ex && !ex->deleted) {
        if (st == ST_CREATE_AND_UPDATE || st == ST_UPDATE) {
            if (null_value || it->deleted || zero) {
                if (!dry)
                    ex->deleted = true;
                c->deleted++;
            } else if (rule_unchanged_ignored() && str_eq(ex->value, it->value) &&
                       str_eq(ex->comment, it->comment) && ex->followup == it->followup) {
                c->ignored++; /* dataValueUpdateShouldBeIgnored: no conflict, not rejected */
            } else if (!dry && !sv_assign(ex, it, now)) {
                c->ignored++;
                reject(c, it->index);
            } else {
                c->updated++;
            }
        } else if (st == ST_DELETE) {
            if (!dry)
                ex->deleted = true;
            c->deleted++;
        } else {
            c->ignored++; /* CREATE of an existing value: no conflict */
            reject(c, it->index);
        }
        return;
    }
    if (st != ST_CREATE_AND_UPDATE && st != ST_CREATE) {
        c->ignored++; /* UPDATE or DELETE of a missing value: no conflict */
        reject(c, it->index);
        return;
    }
    if (null_value) {
        c->ignored++; /* saveDataValueCreate ignores null values, not rejected */
        return;
    }
    if (!dry && (ex ? !sv_assign(ex, it, now) : !store_new(it, now))) {
        c->ignored++;
        reject(c, it->index);
        return;
    }
    c->imported++; /* also over a deleted row, and a value sent with "deleted": true */
}

/* The same for 2.36 (saveDataValueSet's loop): counts imported, updated (also
 * unchanged values) and deleted; everything else is ignored. Caller holds store.mu. */
static void apply_236(struct import_ctx *c, const struct item *it, const char *now)
{
    struct sv *ex = store_get(&it->key);
    enum strategy st = c->o.strategy;
    bool dry = c->o.dry_run;
    bool null_value = !it->value && !it->comment;
    if (it->zero_skipped)
        return;
    if (ex && !ex->deleted) {
        if (st == ST_CREATE_AND_UPDATE || st == ST_UPDATE) {
            if (null_value || it->deleted) {
                if (!dry)
                    ex->deleted = true;
                c->deleted++;
            } else if (dry || sv_assign(ex, it, now)) {
                c->updated++;
            }
        } else if (st == ST_DELETE) {
            if (!dry)
                ex->deleted = true;
            c->deleted++;
        }
        return;
    }
    if ((st == ST_CREATE_AND_UPDATE || st == ST_CREATE) && !null_value &&
        (dry || (ex ? sv_assign(ex, it, now) : store_new(it, now))))
        c->imported++;
}

/* ------------------------------------------------------------------------ */
/* Import: the whole request                                                */
/* ------------------------------------------------------------------------ */

/* A failed import: new ImportSummary(ERROR, description). */
static void import_failed(struct import_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void import_failed(struct import_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->description, sizeof c->description, fmt, ap);
    va_end(ap);
    c->status = "ERROR";
    c->imported = c->updated = c->ignored = c->deleted = 0;
    json_array_clear(c->cs.list);
    json_object_clear(c->cs.by_key);
    json_array_clear(c->rejected);
    c->complete[0] = '\0';
}

/*
 * The completion date of the payload. From rule_unchanged_ignored
 * (DefaultDataValueSetService.getCompletionDate): "true" is today, "false" is
 * none, a date after today is today, anything but yyyy-MM-dd fails the import.
 * Before (DateUtils.parseDate): a date or date-time, anything else fails the
 * import. Returns -1 for none, -2 for a failure (err set), else the day.
 */
static long completion_day(const char *s, long today, char *err, size_t errsz)
{
    long day;
    if (!s || !*s)
        return -1;
    if (rule_unchanged_ignored()) {
        if (strcasecmp(s, "true") == 0)
            return today;
        if (strcasecmp(s, "false") == 0)
            return -1;
        if (!parse_date(s, strlen(s), &day)) {
            snprintf(err, errsz, "Text '%s' could not be parsed at index 0", s);
            return -2;
        }
        return day > today ? today : day;
    }
    size_t n = strlen(s);
    if (n >= 10 && parse_date(s, 10, &day) &&
        (n == 10 || (s[10] == 'T' && n >= 16 && isdigit((unsigned char)s[11]))))
        return day;
    snprintf(err, errsz, "Invalid format: \"%s\"", s);
    return -2;
}

/* Set-level objects (createDataSetContext). False when the import fails (err set). */
static bool import_outer(struct import_ctx *c, char *err, size_t errsz)
{
    char b[256];
    const char *ds_id = jstr(c->hdr, "dataSet"), *aoc = jstr(c->hdr, "attributeOptionCombo");
    json_t *aco = json_object_get(c->hdr, "attributeCategoryOptions");
    c->ds = ds_id ? md_find(&md.dss, c->o.ds, ds_id) : NULL;
    if (aoc) {
        c->outer_aoc = md_find(&md.all_cocs, c->o.coc, trim_to_null(aoc, b, sizeof b));
    } else if (aco && c->ds) {
        /* InputUtils.getAttributeOptionCombo(dataSet's combo, options, idScheme) */
        const struct md_obj *combo = md_combo_of(c->ds);
        json_t *codes = json_array(), *v;
        size_t i;
        json_array_foreach(aco, i, v)
        {
            const struct md_obj *co = md_find(&md.catopts, c->o.general, json_string_value(v));
            if (!co) {
                snprintf(err, errsz, "Category option not found or not accessible: `%s`",
                         json_string_value(v));
                json_decref(codes);
                return false;
            }
            json_array_append_new(codes, json_string(co->code ? co->code : co->id));
        }
        for (size_t k = 0; k < md.all_cocs.n && !c->outer_aoc; k++) {
            const struct md_obj *cand = &md.all_cocs.v[k];
            json_t *opts = json_object_get(cand->src, "categoryOptions"), *ov;
            const char *kk;
            size_t matched = 0;
            if (!md_combo_has(combo, cand) || json_object_size(opts) != json_array_size(codes))
                continue;
            json_object_foreach(opts, kk, ov)
            {
                bool hit = false;
                json_array_foreach(codes, i, v)
                {
                    hit = hit || json_equal(v, ov);
                }
                matched += hit;
            }
            if (matched == json_object_size(opts))
                c->outer_aoc = cand;
        }
        json_decref(codes);
        if (!c->outer_aoc) {
            snprintf(err, errsz,
                     "Attribute option combo does not exist for given category combo and category "
                     "options");
            return false;
        }
    }
    c->have_outer_pe =
        period_parse(trim_to_null(jstr(c->hdr, "period"), b, sizeof b), &c->outer_pe);
    c->outer_ou = md_find(&md.ous, c->o.ou, trim_to_null(jstr(c->hdr, "orgUnit"), b, sizeof b));
    return true;
}

/* DataValueSetImportValidator.abortDataSetImport (2.37+) or its 2.36 equivalent:
 * true when the import is aborted (ERROR, no value looked at). */
static bool import_aborted(struct import_ctx *c)
{
    char b[256];
    const char *ds_id = jstr(c->hdr, "dataSet"), *ou = jstr(c->hdr, "orgUnit"),
               *aoc = jstr(c->hdr, "attributeOptionCombo");
    bool abort = false;
    if (!c->ds && trim_to_null(ds_id, b, sizeof b)) {
        conflict_code(&c->cs, -1, "E7600", "dataSet", objs("dataSet", ds_id, NULL, NULL), ds_id,
                      "Data set not found or not accessible",
                      "Data set not found or not accessible: `%s`", ds_id);
        abort = true;
    }
    if (!c->ds && c->o.strict_des && !rule_target_data_sets()) {
        conflict_code(&c->cs, -1, "E7602", "dataSet", json_object(),
                      "DATA_IMPORT_STRICT_DATA_ELEMENTS", "A valid dataset is required",
                      "A valid dataset is required");
        abort = true;
    }
    if (!c->outer_ou && trim_to_null(ou, b, sizeof b)) {
        conflict_code(&c->cs, -1, "E7603", "orgUnit",
                      objs("organisationUnit", ou, "dataSet", ds_id), ou,
                      "Org unit not found or not accessible",
                      "Org unit not found or not accessible: `%s`", ou);
        abort = true;
    }
    if (!c->outer_aoc && trim_to_null(aoc, b, sizeof b)) {
        conflict_code(&c->cs, -1, "E7604", "attributeOptionCombo",
                      objs("categoryOptionCombo", aoc, "dataSet", ds_id), aoc,
                      "Attribute option combo not found or not accessible",
                      "Attribute option combo not found or not accessible: `%s`", aoc);
        abort = true;
    }
    if (abort) {
        c->status = "ERROR";
        snprintf(c->description, sizeof c->description, "Import process was aborted");
    }
    return abort;
}

/*
 * Imports c->values (the import summary ends up in c). The completion of a data
 * set comes first, as in DefaultDataValueSetService: it is registered for the
 * set-level data set, period and org unit under the default attribute option
 * combo (handleComplete gets the fallback option combo), also in a dry run.
 */
static void import_values(struct import_ctx *c)
{
    char err[512], now[32];
    if (!import_outer(c, err, sizeof err)) {
        import_failed(c, "The import process failed: %s", err);
        return;
    }
    if (import_aborted(c))
        return;
    long day = completion_day(jstr(c->hdr, "completeDate"), c->today, err, sizeof err);
    if (day == -2) {
        import_failed(c, "The import process failed: %s", err);
        return;
    }
    now_iso(now, sizeof now);
    pthread_mutex_lock(&store.mu);
    if (c->ds && day >= 0) {
        if (!c->outer_ou) {
            conflict_legacy(&c->cs, "OrganisationUnit", "Must be provided to complete data set");
        } else if (!c->have_outer_pe) {
            conflict_legacy(&c->cs, "Period", "Must be provided to complete data set");
        } else {
            char pe[SIM_PERIOD_MAX];
            period_format(&c->outer_pe, pe, sizeof pe);
            format_date(day, c->complete, sizeof c->complete);
            completion_put(c->ds->id, pe, c->outer_ou->id, md.default_aoc->id, c->complete,
                           c->r->user);
        }
    } else {
        snprintf(c->complete, sizeof c->complete, "false");
    }
    pthread_mutex_unlock(&store.mu);

    size_t n = json_array_size(c->values);
    struct item *items = calloc(n ? n : 1, sizeof *items);
    bool *ok = calloc(n ? n : 1, sizeof *ok);
    if (!items || !ok) {
        free(items);
        free(ok);
        import_failed(c, "The import process failed: out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ok[i] = resolve_value(c, json_array_get(c->values, i), (long)i, &items[i]);
        if (!ok[i]) {
            c->ignored++;
            if (rule_structured())
                reject(c, (long)i);
        }
    }
    pthread_mutex_lock(&store.mu);
    for (size_t i = 0; i < n; i++)
        if (ok[i]) {
            if (rule_structured())
                apply_237(c, &items[i], now);
            else
                apply_236(c, &items[i], now);
        }
    pthread_mutex_unlock(&store.mu);
    if (!rule_structured()) /* ignores = total - imported - updated - deleted */
        c->ignored = (long)n - c->imported - c->updated - c->deleted;
    for (size_t i = 0; i < n; i++) {
        free(items[i].value);
        free(items[i].comment);
    }
    free(items);
    free(ok);
    /* ImportSummary status: SUCCESS without conflicts, else WARNING (ERROR only
     * for an aborted or failed import) */
    c->status = json_array_size(c->cs.list) ? "WARNING" : "SUCCESS";
    snprintf(c->description, sizeof c->description, "Import process completed successfully");
}

static json_t *summary_json(struct import_ctx *c)
{
    json_t *s = json_pack("{s:s, s:s, s:{s:O, s:b, s:b, s:s}, s:s, s:{s:I, s:I, s:I, s:I}, s:O}",
                          "responseType", "ImportSummary", "status", c->status, "importOptions",
                          "idSchemes", c->o.id_schemes, "dryRun", (int)c->o.dry_run, "async", 0,
                          "importStrategy", strategy_name(c->o.strategy), "description",
                          c->description, "importCount", "imported", (json_int_t)c->imported,
                          "updated", (json_int_t)c->updated, "ignored", (json_int_t)c->ignored,
                          "deleted", (json_int_t)c->deleted, "conflicts", c->cs.list);
    if (!s)
        return NULL;
    if (rule_rejected_indexes())
        json_object_set(s, "rejectedIndexes", c->rejected);
    if (c->complete[0])
        json_object_set_new(s, "dataSetComplete", json_string(c->complete));
    return s;
}

/* ------------------------------------------------------------------------ */
/* Replies to an import                                                     */
/* ------------------------------------------------------------------------ */

/*
 * The WebMessage envelope (WebMessageUtils.importSummary: 200 for SUCCESS, 409
 * for WARNING and ERROR) or the bare ImportSummary with 200. 2.36's controller
 * writes the bare summary. 2.37 to 2.41 mark the WebMessage
 * withPlainResponseBefore(V38) and WebMessageControllerAdvice answers the bare
 * summary when the API version of the path (DhisApiVersion.getVersionFromPath:
 * /api/NN/, else the release's DEFAULT, V37 on 2.37) is below 38. 2.42 always
 * answers the envelope.
 */
static bool use_envelope(const struct request *r)
{
    if (opt.minor <= 36)
        return false;
    if (opt.minor >= 42)
        return true;
    int api = opt.minor == 37 ? 37 : opt.minor;
    if (r->pinned >= 28 && r->pinned <= (opt.minor == 37 ? 38 : opt.minor + 1))
        api = r->pinned;
    return api >= 38;
}

enum reply_format { REPLY_JSON, REPLY_XML, REPLY_NOT_ACCEPTABLE };

static bool accept_has(const char *accept, const char *what)
{
    return accept && strcasestr(accept, what) != NULL;
}

/*
 * 2.36 writes ADX imports' summaries as XML and the others as JSON, whatever
 * the client accepts. 2.37.0-2.37.2 declare produces = application/xml for ADX
 * and application/json for JSON and CSV (406 when Accept rules that out).
 * From 2.37.3 the answer is negotiated: XML when the client asks for XML and
 * not for JSON, else JSON.
 */
static enum reply_format reply_format_for(const struct request *r, enum import_format fmt)
{
    const char *accept = header(r, "Accept");
    bool any = !accept || accept_has(accept, "*/*") || accept_has(accept, "application/*");
    if (opt.minor <= 36)
        return fmt == FMT_ADX ? REPLY_XML : REPLY_JSON;
    if (opt.minor == 37 && opt.patch < 3) {
        if (fmt == FMT_ADX)
            return any || accept_has(accept, "application/xml") ? REPLY_XML : REPLY_NOT_ACCEPTABLE;
        return any || accept_has(accept, "json") ? REPLY_JSON : REPLY_NOT_ACCEPTABLE;
    }
    if (!any && !accept_has(accept, "json") && accept_has(accept, "xml"))
        return REPLY_XML;
    return REPLY_JSON;
}

static enum MHD_Result reply_summary(struct request *r, json_t *summary, enum reply_format f)
{
    const char *status = jstr(summary, "status");
    bool envelope = use_envelope(r), ok = status && strcmp(status, "SUCCESS") == 0;
    unsigned http = MHD_HTTP_OK;
    json_t *doc = summary;
    if (envelope) {
        bool warning = status && strcmp(status, "WARNING") == 0;
        http = ok ? MHD_HTTP_OK : MHD_HTTP_CONFLICT;
        doc = webmessage(http,
                         ok        ? "OK"
                         : warning ? "WARNING"
                                   : "ERROR",
                         ok        ? "Import was successful."
                         : warning ? "One more conflicts encountered, please check import "
                                     "summary."
                                   : "An error occurred, please check import summary.");
        json_object_set_new(doc, "response", summary);
    }
    if (f == REPLY_XML) {
        char *text = summary_xml(doc, envelope);
        json_decref(doc);
        return reply_text(r, http, text, "application/xml;charset=UTF-8", NULL, NULL);
    }
    return reply_json(r, http, doc, NULL, NULL);
}

/*
 * Runs one import of `fmt` and answers it. Only an unusable URL option (400),
 * a content type nobody takes (415) or an Accept header 2.37.0-2.37.2 cannot
 * serve (406) are not answered with an import summary: everything else the
 * payload can do wrong is, as in DHIS2, an ImportSummary (ERROR for a payload
 * that cannot be read).
 */
static enum MHD_Result run_import(struct request *r, enum import_format fmt)
{
    enum reply_format rf = reply_format_for(r, fmt);
    if (rf == REPLY_NOT_ACCEPTABLE)
        return reply_error(r, MHD_HTTP_NOT_ACCEPTABLE,
                           "Could not find acceptable representation (2.37.0-2.37.2 answer %s "
                           "only)",
                           fmt == FMT_ADX ? "application/xml" : "application/json");
    struct import_ctx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.fmt = fmt;
    c.today = (long)(time(NULL) / 86400);
    c.cs.list = json_array();
    c.cs.by_key = json_object();
    c.cs.structured = rule_structured();
    c.rejected = json_array();
    c.status = "SUCCESS";

    char rerr[900] = "out of memory", oerr[512] = "";
    struct adx_result adx = {0};
    bool read_ok = true;
    if (fmt == FMT_JSON)
        read_ok = read_json(r, &c.hdr, &c.values, rerr, sizeof rerr);
    else if (fmt == FMT_CSV)
        read_ok = read_csv(r, &c.hdr, &c.values);
    /* the URL's options are bound (400 when unusable) before the body is read */
    int rc = import_opts_init(r, read_ok && fmt == FMT_JSON ? c.hdr : NULL, fmt, &c.o, oerr,
                              sizeof oerr);
    if (rc == 400) {
        json_decref(c.o.id_schemes);
        json_decref(c.hdr);
        json_decref(c.values);
        json_decref(c.cs.list);
        json_decref(c.cs.by_key);
        json_decref(c.rejected);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", oerr);
    }
    if (!read_ok) {
        import_failed(&c, "The import process failed: %s", rerr);
    } else if (rc < 0) {
        import_failed(&c, "The import process failed: %s", oerr);
    } else if (fmt == FMT_ADX) {
        adx_read(r, &c.o, &adx);
        c.hdr = json_object();
        c.values = json_incref(adx.values);
        if (adx.failed && rule_adx_reader()) {
            import_failed(&c, "The import process failed: %s", adx.fail_msg);
        } else if (adx.failed) {
            import_failed(&c, "Data set import failed within group number: %ld", adx.fail_group);
            conflict_legacy(&c.cs, adx.fail_object[0] ? adx.fail_object : NULL, "%s", adx.fail_msg);
        } else {
            import_values(&c);
            /* DefaultAdxDataService adds its own conflicts after the DXF2 import, with
             * the ignored count, and leaves the status as the import set it. */
            size_t i;
            json_t *pair;
            json_array_foreach(adx.conflicts, i, pair)
            {
                conflict_legacy(&c.cs, json_string_value(json_array_get(pair, 0)), "%s",
                                json_string_value(json_array_get(pair, 1)));
                c.ignored++;
            }
        }
    } else {
        import_values(&c);
    }
    json_decref(adx.values);
    json_decref(adx.conflicts);

    json_t *summary = summary_json(&c);
    logf_("dhis2-sim: import %s: imported %ld, updated %ld, ignored %ld, deleted %ld%s", c.status,
          c.imported, c.updated, c.ignored, c.deleted, c.o.dry_run ? " (dry run)" : "");
    json_decref(c.o.id_schemes);
    json_decref(c.hdr);
    json_decref(c.values);
    json_decref(c.cs.list);
    json_decref(c.cs.by_key);
    json_decref(c.rejected);
    if (!summary)
        return MHD_NO;
    return reply_summary(r, summary, rf);
}
/* ------------------------------------------------------------------------ */
/* /api/dataValueSets                                                       */
/* ------------------------------------------------------------------------ */

/* The media type of the request without parameters, lower case. */
static void media_type(const struct request *r, char *buf, size_t size)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    size_t o = 0;
    for (; ct && *ct && *ct != ';' && o + 1 < size; ct++)
        if (!isspace((unsigned char)*ct))
            buf[o++] = (char)tolower((unsigned char)*ct);
    buf[o] = '\0';
}

/*
 * DataValueSetController: application/json, application/adx+xml and
 * application/csv (not text/csv: no handler consumes it, 415).
 */
static enum MHD_Result h_dvs_post(struct request *r, const char *tail, const void *arg)
{
    char type[128];
    (void)tail;
    (void)arg;
    if (qarg_true(r, "async"))
        return reply_error(r, MHD_HTTP_CONFLICT,
                           "Asynchronous import (async=true) is not supported by dhis2-sim");
    if (r->too_large)
        return reply_error(r, 413, "Request body is larger than %u bytes", SIM_MAX_BODY);
    media_type(r, type, sizeof type);
    if (strcmp(type, "application/json") == 0)
        return run_import(r, FMT_JSON);
    if (strcmp(type, "application/adx+xml") == 0)
        return run_import(r, FMT_ADX);
    if (strcmp(type, "application/csv") == 0)
        return run_import(r, FMT_CSV);
    return reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "Content type '%s' not supported",
                       type[0] ? type : "(none)");
}

/* One stored value in DHIS2's export shape. Caller holds store.mu. */
static json_t *sv_export_json(const struct sv *v)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "dataElement", v->key.de, "period",
                          v->key.pe, "orgUnit", v->key.ou, "categoryOptionCombo", v->key.coc,
                          "attributeOptionCombo", v->key.aoc);
    json_object_set_new(j, "value", v->value ? json_string(v->value) : json_null());
    json_object_set_new(j, "storedBy", json_string(v->stored_by ? v->stored_by : ""));
    json_object_set_new(j, "created", json_string(v->created));
    json_object_set_new(j, "lastUpdated", json_string(v->last_updated));
    if (v->comment)
        json_object_set_new(j, "comment", json_string(v->comment));
    json_object_set_new(j, "followup", json_boolean(v->followup));
    return j;
}

static enum MHD_Result h_dvs_get(struct request *r, const char *tail, const void *arg)
{
    const char *ds_id = qarg(r, "dataSet"), *pe_id = qarg(r, "period"), *ou = qarg(r, "orgUnit");
    const struct md_obj *ds = NULL;
    char pe[SIM_PERIOD_MAX] = "";
    (void)tail;
    (void)arg;
    if (ds_id && !(ds = md_find(&md.dss, SCHEME_UID, ds_id)))
        return reply_error(r, MHD_HTTP_CONFLICT, "Data set not found or not accessible: `%s`",
                           ds_id);
    if (pe_id) {
        struct period p;
        if (!period_parse(pe_id, &p))
            return reply_error(r, MHD_HTTP_CONFLICT, "Period not valid: `%s`", pe_id);
        period_format(&p, pe, sizeof pe);
    }
    json_t *out = json_object(), *values = json_array();
    if (ds)
        json_object_set_new(out, "dataSet", json_string(ds->id));
    if (pe[0])
        json_object_set_new(out, "period", json_string(pe));
    if (ou)
        json_object_set_new(out, "orgUnit", json_string(ou));
    pthread_mutex_lock(&store.mu);
    size_t n;
    struct sv **all = store_sorted(&n);
    for (size_t i = 0; all && i < n; i++) {
        const struct sv *v = all[i];
        if ((ds && !md_dataset_has_de(ds, v->key.de)) || (pe[0] && strcmp(pe, v->key.pe)) ||
            (ou && strcmp(ou, v->key.ou)))
            continue;
        json_array_append_new(values, sv_export_json(v));
    }
    pthread_mutex_unlock(&store.mu);
    free(all);
    json_object_set_new(out, "dataValues", values);
    return reply_json(r, MHD_HTTP_OK, out, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Metadata endpoints                                                       */
/* ------------------------------------------------------------------------ */

struct md_route {
    const struct md_set *set;
    const char *resource; /* JSON property of list replies */
};

/* Does the comma-separated fields list (top level only) name `key`? */
static bool field_wanted(const char *fields, const char *key)
{
    const char *p = fields;
    size_t klen = strlen(key);
    while (*p) {
        const char *start = p;
        int depth = 0;
        while (*p && (depth > 0 || *p != ',')) {
            depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
            p++;
        }
        size_t nlen = strcspn(start, "[:,");
        if (nlen > (size_t)(p - start))
            nlen = (size_t)(p - start);
        if ((nlen == klen && strncmp(start, key, klen) == 0) || (nlen == 1 && *start == '*') ||
            (nlen == 0 && p > start)) /* ":all", ":owner" */
            return true;
        if (*p == ',')
            p++;
    }
    return false;
}

/* Keeps only the requested top-level fields of `obj` (consumed). */
static json_t *apply_fields(json_t *obj, const char *fields)
{
    if (!fields || !*fields)
        return obj;
    json_t *out = json_object(), *v;
    const char *k;
    json_object_foreach(obj, k, v) if (field_wanted(fields, k)) json_object_set(out, k, v);
    json_decref(obj);
    return out;
}

/* Is `s` one of the items of a DHIS2 list value, "[a,b,c]" (brackets optional)? */
static bool in_list(const char *s, const char *list)
{
    const char *p = list, *end = list + strlen(list);
    if (*p == '[')
        p++;
    if (end > p && end[-1] == ']')
        end--;
    size_t slen = strlen(s);
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *tok_end = comma ? comma : end;
        if ((size_t)(tok_end - p) == slen && strncmp(p, s, slen) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* The one nested property filters hibus uses: "dataSets.id" on org units (the
 * data sets an org unit is assigned to) and "categoryCombo.id" on data elements and
 * option combos. DHIS2 filters on "associated objects or collection of objects"
 * by a dotted property path (DHIS2 Web API guide, "Metadata object filter", its
 * example /api/dataElements?filter=dataSets.id:eq:ID; dhis2/dhis2-core
 * dhis-2/dhis-api/src/main/java/org/hisp/dhis/organisationunit/OrganisationUnit.java
 * has the collection dataSets, category/CategoryOptionCombo.java and
 * dataelement/DataElement.java the reference categoryCombo). A collection matches when any member
 * does; only eq and in are imitated. NULL when prop is not one of them. */
static const char *nested_value(const struct md_set *set, const struct md_obj *o, const char *prop,
                                size_t i)
{
    if (set->kind == MD_ORGUNIT && strcmp(prop, "dataSets.id") == 0) {
        for (size_t d = 0, k = 0; d < md.dss.n; d++) {
            json_t *v;
            size_t j;
            json_array_foreach(json_object_get(md.dss.v[d].src, "organisationUnits"), j, v)
            {
                if (json_is_string(v) && strcmp(json_string_value(v), o->id) == 0 && k++ == i)
                    return md.dss.v[d].id;
            }
        }
        return NULL;
    }
    if ((set->kind == MD_COC || set->kind == MD_DATAELEMENT) &&
        strcmp(prop, "categoryCombo.id") == 0 && i == 0) {
        const struct md_obj *c = set->kind == MD_COC ? combo_holding(o) : md_combo_of(o);
        return c ? c->id : NULL;
    }
    return NULL;
}

static bool is_nested_prop(const struct md_set *set, const char *prop)
{
    return (set->kind == MD_ORGUNIT && strcmp(prop, "dataSets.id") == 0) ||
           ((set->kind == MD_COC || set->kind == MD_DATAELEMENT) &&
            strcmp(prop, "categoryCombo.id") == 0);
}

/* 1 when the object passes "property:operator:value", 0 when not, -1 when unsupported. */
static int filter_match(const struct md_set *set, const struct md_obj *o, const char *filter)
{
    char prop[32], op[16];
    const char *c1 = strchr(filter, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || (size_t)(c1 - filter) >= sizeof prop)
        return -1;
    size_t oplen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    if (oplen >= sizeof op)
        return -1;
    memcpy(prop, filter, (size_t)(c1 - filter));
    prop[c1 - filter] = '\0';
    memcpy(op, c1 + 1, oplen);
    op[oplen] = '\0';
    const char *val = c2 ? c2 + 1 : "";
    const char *field;
    if (is_nested_prop(set, prop)) {
        if (strcmp(op, "eq") != 0 && strcmp(op, "in") != 0)
            return -1;
        for (size_t i = 0; (field = nested_value(set, o, prop, i)) != NULL; i++)
            if (strcmp(op, "eq") == 0 ? strcmp(field, val) == 0 : in_list(field, val))
                return 1;
        return 0;
    }
    if (strcmp(prop, "id") == 0)
        field = o->id;
    else if (strcmp(prop, "code") == 0)
        field = o->code;
    else if (strcmp(prop, "name") == 0 || strcmp(prop, "displayName") == 0)
        field = o->name;
    else
        return -1;

    if (strcmp(op, "eq") == 0)
        return field && strcmp(field, val) == 0;
    if (strcmp(op, "!eq") == 0 || strcmp(op, "ne") == 0)
        return !field || strcmp(field, val) != 0;
    if (strcmp(op, "in") == 0)
        return field && in_list(field, val);
    if (strcmp(op, "!in") == 0)
        return !field || !in_list(field, val);
    if (strcmp(op, "like") == 0)
        return field && strstr(field, val) != NULL;
    if (strcmp(op, "ilike") == 0)
        return field && strcasestr(field, val) != NULL;
    if (strcmp(op, "null") == 0)
        return !field;
    if (strcmp(op, "!null") == 0)
        return field != NULL;
    return -1;
}

static enum MHD_Result collect_filter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    if (strcmp(key, "filter") == 0 && value)
        json_array_append_new(cls, json_string(value));
    return MHD_YES;
}

static enum MHD_Result h_md_list(struct request *r, const char *tail, const void *arg)
{
    const struct md_route *mr = arg;
    const char *fields = qarg(r, "fields");
    json_t *filters = json_array(), *f;
    size_t fi;
    (void)tail;
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_filter, filters);

    json_t *matched = json_array();
    for (size_t i = 0; i < mr->set->n; i++) {
        bool keep = true;
        json_array_foreach(filters, fi, f)
        {
            int m = filter_match(mr->set, &mr->set->v[i], json_string_value(f));
            if (m < 0) {
                enum MHD_Result ret = reply_error(r, MHD_HTTP_BAD_REQUEST,
                                                  "Unsupported filter: `%s` (dhis2-sim supports "
                                                  "id|code|name with eq, !eq, in, !in, like, "
                                                  "ilike, null, !null; dataSets.id on org "
                                                  "units and categoryCombo.id on data "
                                                  "elements and option combos with eq, in)",
                                                  json_string_value(f));
                json_decref(filters);
                json_decref(matched);
                return ret;
            }
            keep = keep && m;
        }
        if (keep)
            json_array_append_new(matched,
                                  apply_fields(md_obj_json(mr->set, &mr->set->v[i]), fields));
    }
    json_decref(filters);

    json_t *out = json_object();
    const char *paging = qarg(r, "paging");
    if (!paging || strcasecmp(paging, "false") != 0) {
        long page = qarg(r, "page") ? atol(qarg(r, "page")) : 1;
        long size = qarg(r, "pageSize") ? atol(qarg(r, "pageSize")) : 50;
        long total = (long)json_array_size(matched);
        if (page < 1)
            page = 1;
        if (size < 1)
            size = 50;
        long pages = total ? (total + size - 1) / size : 1;
        json_t *slice = json_array();
        for (long i = (page - 1) * size; i < total && i < page * size; i++)
            json_array_append(slice, json_array_get(matched, (size_t)i));
        json_decref(matched);
        matched = slice;
        json_object_set_new(out, "pager",
                            json_pack("{s:I, s:I, s:I, s:I}", "page", (json_int_t)page, "total",
                                      (json_int_t)total, "pageSize", (json_int_t)size, "pageCount",
                                      (json_int_t)pages));
    }
    json_object_set_new(out, mr->resource, matched);
    return reply_json(r, MHD_HTTP_OK, out, NULL, NULL);
}

static enum MHD_Result h_md_item(struct request *r, const char *tail, const void *arg)
{
    const struct md_route *mr = arg;
    const struct md_obj *o = md_find(mr->set, SCHEME_UID, tail);
    if (!o) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s with id %s could not be found.", mr->set->klass, tail);
        json_t *wm = webmessage(MHD_HTTP_NOT_FOUND, "ERROR", msg);
        json_object_set_new(wm, "errorCode", json_string("E1005"));
        return reply_json(r, MHD_HTTP_NOT_FOUND, wm, NULL, NULL);
    }
    return reply_json(r, MHD_HTTP_OK, apply_fields(md_obj_json(mr->set, o), qarg(r, "fields")),
                      NULL, NULL);
}

static enum MHD_Result h_system_info(struct request *r, const char *tail, const void *arg)
{
    char now[32], version[32];
    (void)tail;
    (void)arg;
    json_t *info = json_deep_copy(md.system);
    snprintf(version, sizeof version, "%s", opt.version);
    json_object_set_new(info, "version", json_string(version));
    now_iso(now, sizeof now);
    json_object_set_new(info, "serverDate", json_string(now));
    if (!json_object_get(info, "calendar"))
        json_object_set_new(info, "calendar", json_string("iso8601"));
    return reply_json(r, MHD_HTTP_OK, info, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* /admin (no authentication)                                               */
/* ------------------------------------------------------------------------ */

static bool json_count(const json_t *o, const char *key, int *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    *out = i > INT_MAX ? INT_MAX : i < -1 ? -1 : (int)i;
    return true;
}

static enum MHD_Result h_admin_faults_post(struct request *r, const char *tail, const void *arg)
{
    json_error_t jerr;
    (void)tail;
    (void)arg;
    json_t *b = json_loadb(r->body ? r->body : "", r->len, 0, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "faults must be a JSON object");
    }
    pthread_mutex_lock(&faults.mu);
    if (json_is_true(json_object_get(b, "clear"))) {
        faults.fail_status = 500;
        faults.fail_count = faults.stall_count = faults.drop_count = 0;
        faults.stall_seconds = 0;
    }
    if (json_count(b, "fail_status", &faults.fail_status) && !json_object_get(b, "fail_count"))
        faults.fail_count = 1;
    json_count(b, "fail_count", &faults.fail_count);
    const json_t *st = json_object_get(b, "stall_seconds");
    if (json_is_number(st)) {
        faults.stall_seconds = json_number_value(st);
        if (!json_object_get(b, "stall_count"))
            faults.stall_count = 1;
    }
    json_count(b, "stall_count", &faults.stall_count);
    json_count(b, "drop_count", &faults.drop_count);
    if (faults.fail_status < 100 || faults.fail_status > 599)
        faults.fail_status = 500;
    pthread_mutex_unlock(&faults.mu);
    json_decref(b);
    return reply_json(r, MHD_HTTP_OK,
                      json_pack("{s:s, s:o}", "status", "OK", "faults", faults_json()), NULL, NULL);
}

static enum MHD_Result h_admin_faults_get(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    return reply_json(r, MHD_HTTP_OK, faults_json(), NULL, NULL);
}

static enum MHD_Result h_admin_values(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    json_t *out = json_array();
    pthread_mutex_lock(&store.mu);
    size_t n;
    struct sv **all = store_sorted(&n);
    for (size_t i = 0; all && i < n; i++) {
        const struct sv *v = all[i];
        json_array_append_new(
            out, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "dataElement", v->key.de,
                           "period", v->key.pe, "orgUnit", v->key.ou, "categoryOptionCombo",
                           v->key.coc, "attributeOptionCombo", v->key.aoc, "value",
                           v->value ? json_string(v->value) : json_null(), "comment",
                           v->comment ? json_string(v->comment) : json_null()));
    }
    pthread_mutex_unlock(&store.mu);
    free(all);
    return reply_json(r, MHD_HTTP_OK, out, NULL, NULL);
}

/* The data set completions the imports registered (CompleteDataSetRegistration). */
static enum MHD_Result h_admin_completions(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    json_t *out = json_array();
    pthread_mutex_lock(&store.mu);
    if (completions.n)
        qsort(completions.v, completions.n, sizeof *completions.v, completion_cmp);
    for (size_t i = 0; i < completions.n; i++) {
        const struct completion *c = &completions.v[i];
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "dataSet", c->ds,
                                        "period", c->pe, "orgUnit", c->ou, "attributeOptionCombo",
                                        c->aoc, "completeDate", c->date, "storedBy", c->stored_by));
    }
    pthread_mutex_unlock(&store.mu);
    return reply_json(r, MHD_HTTP_OK, out, NULL, NULL);
}

static enum MHD_Result h_admin_stats(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    pthread_mutex_lock(&store.mu);
    size_t n = 0;
    for (size_t i = 0; i < store.cap; i++)
        n += store.slots[i] && !store.slots[i]->deleted;
    pthread_mutex_unlock(&store.mu);
    return reply_json(r, MHD_HTTP_OK,
                      json_pack("{s:I, s:I, s:I, s:I}", "imports",
                                (json_int_t)atomic_load(&n_imports), "requests",
                                (json_int_t)atomic_load(&n_requests), "values", (json_int_t)n,
                                "faults", (json_int_t)atomic_load(&n_faults)),
                      NULL, NULL);
}

static enum MHD_Result h_admin_reset(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    pthread_mutex_lock(&store.mu);
    store_clear();
    completions.n = 0;
    pthread_mutex_unlock(&store.mu);
    pthread_mutex_lock(&faults.mu);
    faults.fail_status = 500;
    faults.fail_count = faults.stall_count = faults.drop_count = 0;
    faults.stall_seconds = 0;
    pthread_mutex_unlock(&faults.mu);
    atomic_store(&n_requests, 0);
    atomic_store(&n_imports, 0);
    atomic_store(&n_faults, 0);
    return reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "OK"), NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum MHD_Result (*handler_fn)(struct request *r, const char *tail, const void *arg);

enum match { MATCH_EXACT, MATCH_ITEM /* path + "/{uid}", the uid is the tail */ };

struct route {
    const char *method;
    const char *path;
    enum match match;
    handler_fn fn;
    const void *arg;
};

static const struct md_route mr_ous = {&md.ous, "organisationUnits"};
static const struct md_route mr_des = {&md.des, "dataElements"};
static const struct md_route mr_cocs = {&md.all_cocs, "categoryOptionCombos"};
static const struct md_route mr_dss = {&md.dss, "dataSets"};

static const struct route api_routes[] = {
    {"POST", "/api/dataValueSets", MATCH_EXACT, h_dvs_post, NULL},
    {"GET", "/api/dataValueSets", MATCH_EXACT, h_dvs_get, NULL},
    {"GET", "/api/system/info", MATCH_EXACT, h_system_info, NULL},
    {"GET", "/api/organisationUnits", MATCH_EXACT, h_md_list, &mr_ous},
    {"GET", "/api/organisationUnits", MATCH_ITEM, h_md_item, &mr_ous},
    {"GET", "/api/dataElements", MATCH_EXACT, h_md_list, &mr_des},
    {"GET", "/api/dataElements", MATCH_ITEM, h_md_item, &mr_des},
    {"GET", "/api/categoryOptionCombos", MATCH_EXACT, h_md_list, &mr_cocs},
    {"GET", "/api/categoryOptionCombos", MATCH_ITEM, h_md_item, &mr_cocs},
    {"GET", "/api/dataSets", MATCH_EXACT, h_md_list, &mr_dss},
    {"GET", "/api/dataSets", MATCH_ITEM, h_md_item, &mr_dss},
};

static const struct route admin_routes[] = {
    {"POST", "/admin/faults", MATCH_EXACT, h_admin_faults_post, NULL},
    {"GET", "/admin/faults", MATCH_EXACT, h_admin_faults_get, NULL},
    {"GET", "/admin/values", MATCH_EXACT, h_admin_values, NULL},
    {"GET", "/admin/completions", MATCH_EXACT, h_admin_completions, NULL},
    {"GET", "/admin/stats", MATCH_EXACT, h_admin_stats, NULL},
    {"POST", "/admin/reset", MATCH_EXACT, h_admin_reset, NULL},
};

static enum MHD_Result route(struct request *r, const struct route *routes, size_t n)
{
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        const char *tail = NULL;
        size_t pl = strlen(routes[i].path);
        bool m;
        if (routes[i].match == MATCH_EXACT) {
            m = strcmp(r->path, routes[i].path) == 0;
        } else {
            tail = r->path + pl;
            m = strncmp(r->path, routes[i].path, pl) == 0 && tail[0] == '/' && tail[1] &&
                !strchr(tail + 1, '/');
            tail++;
        }
        if (!m)
            continue;
        if (strcmp(r->method, routes[i].method) != 0) {
            path_known = true;
            continue;
        }
        return routes[i].fn(r, tail, routes[i].arg);
    }
    if (path_known)
        return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "Request method '%s' not supported",
                           r->method);
    return reply_error(r, MHD_HTTP_NOT_FOUND, "No resource found at path %s", r->url);
}

/*
 * /api/37/x -> /api/x, remembering the API version the client pinned (see
 * use_envelope); /api/x.json -> /api/x.
 */
static void normalise_path(struct request *r)
{
    const char *u = r->url;
    int pinned = 0;
    size_t nd = strncmp(u, "/api/", 5) == 0 ? strspn(u + 5, "0123456789") : 0;
    if (nd > 0 && nd <= 3 && (u[5 + nd] == '/' || u[5 + nd] == '\0')) {
        pinned = atoi(u + 5);
        snprintf(r->path, sizeof r->path, "/api%s", u + 5 + nd);
    } else {
        snprintf(r->path, sizeof r->path, "%s", u);
    }
    size_t l = strlen(r->path);
    if (l > 5 && strcmp(r->path + l - 5, ".json") == 0)
        r->path[l - 5] = '\0';
    r->pinned = pinned;
}

/* The authenticated user (Basic or ApiToken), or NULL. */
static const char *authenticate(const struct request *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    size_t i;
    json_t *u;
    if (!h)
        return NULL;
    if (strncasecmp(h, "Basic ", 6) == 0) {
        char creds[SIM_MAX_AUTH];
        h += 6;
        while (*h == ' ')
            h++;
        if (!b64_decode(h, creds, sizeof creds))
            return NULL;
        char *colon = strchr(creds, ':');
        if (!colon)
            return NULL;
        *colon = '\0';
        json_array_foreach(md.users, i, u)
        {
            const char *name = jstr(u, "username"), *pass = jstr(u, "password");
            if (name && pass && strcmp(name, creds) == 0 && strcmp(pass, colon + 1) == 0)
                return name;
        }
        return NULL;
    }
    if (strncmp(h, "ApiToken ", 9) == 0) {
        /* A token belongs to a user: the first one of the fixture. */
        const char *owner = jstr(json_array_get(md.users, 0), "username");
        json_array_foreach(md.tokens, i,
                           u) if (json_is_string(u) &&
                                  strcmp(json_string_value(u), h + 9) == 0) return owner
            ? owner
            : "api-token";
    }
    return NULL;
}

/* simDrop / simStall / simFail on the query string. MHD_YES when the request goes on. */
static bool query_faults(struct request *r, enum MHD_Result *ret)
{
    const char *v;
    if ((v = qarg(r, "simDrop")) && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0)) {
        atomic_fetch_add(&n_faults, 1);
        logf_("dhis2-sim: %s %s -> dropped (simDrop)", r->method, r->url);
        *ret = MHD_NO;
        return false;
    }
    if ((v = qarg(r, "simStall")) && strtod(v, NULL) > 0) {
        atomic_fetch_add(&n_faults, 1);
        sim_sleep(strtod(v, NULL));
    }
    if ((v = qarg(r, "simFail"))) {
        long status = strtol(v, NULL, 10);
        if (status >= 100 && status <= 599) {
            atomic_fetch_add(&n_faults, 1);
            *ret = reply_error(r, (unsigned)status, "Simulated failure (simFail=%ld)", status);
            return false;
        }
    }
    return true;
}

/* Faults queued with POST /admin/faults, consumed by dataValueSets imports. */
static bool import_faults(struct request *r, enum MHD_Result *ret)
{
    double stall = 0;
    int fail = 0;
    pthread_mutex_lock(&faults.mu);
    bool drop = fault_take(&faults.drop_count);
    if (!drop) {
        if (fault_take(&faults.stall_count))
            stall = faults.stall_seconds;
        if (fault_take(&faults.fail_count))
            fail = faults.fail_status;
    }
    pthread_mutex_unlock(&faults.mu);
    if (drop) {
        atomic_fetch_add(&n_faults, 1);
        logf_("dhis2-sim: %s %s -> dropped (drop_count)", r->method, r->url);
        *ret = MHD_NO;
        return false;
    }
    if (stall > 0) {
        atomic_fetch_add(&n_faults, 1);
        sim_sleep(stall);
    }
    if (fail) {
        atomic_fetch_add(&n_faults, 1);
        *ret = reply_error(r, (unsigned)fail, "Simulated failure (fail_status=%d)", fail);
        return false;
    }
    return true;
}

static enum MHD_Result dispatch(struct request *r)
{
    enum MHD_Result ret = MHD_NO;
    atomic_fetch_add(&n_requests, 1);
    if (strlen(r->url) >= SIM_MAX_PATH)
        return reply_error(r, MHD_HTTP_URI_TOO_LONG, "URI too long");
    if (strncmp(r->url, "/admin/", 7) == 0) {
        snprintf(r->path, sizeof r->path, "%s", r->url);
        return route(r, admin_routes, sizeof admin_routes / sizeof admin_routes[0]);
    }
    if (strcmp(r->url, "/api") != 0 && strncmp(r->url, "/api/", 5) != 0)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "No resource found at path %s", r->url);

    normalise_path(r);
    if (!query_faults(r, &ret))
        return ret;
    if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/api/dataValueSets") == 0) {
        atomic_fetch_add(&n_imports, 1);
        if (!import_faults(r, &ret))
            return ret;
    }
    r->user = authenticate(r);
    if (!r->user)
        return reply_json(r, MHD_HTTP_UNAUTHORIZED,
                          webmessage(MHD_HTTP_UNAUTHORIZED, "ERROR",
                                     "Full authentication is required to access this resource"),
                          "WWW-Authenticate", "Basic realm=\"DHIS2\"");
    return route(r, api_routes, sizeof api_routes / sizeof api_routes[0]);
}

/* ------------------------------------------------------------------------ */
/* libmicrohttpd callbacks                                                  */
/* ------------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct request *r = *con_cls;
    (void)cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->conn = conn;
        r->method = method;
        r->url = url;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t add = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large)
            return MHD_YES;
        if (r->len + add > SIM_MAX_BODY) {
            r->too_large = true; /* keep reading, answer 413 at the end */
            return MHD_YES;
        }
        if (r->len + add + 1 > r->cap) {
            size_t ncap = r->cap ? r->cap : 4096;
            while (ncap < r->len + add + 1)
                ncap *= 2;
            char *nb = realloc(r->body, ncap);
            if (!nb)
                return MHD_NO;
            r->body = nb;
            r->cap = ncap;
        }
        memcpy(r->body + r->len, upload_data, add);
        r->len += add;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!opt.quiet)
        vfprintf(stderr, fmt, ap);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: dhis2-sim --port N [--address 127.0.0.1] --metadata FILE "
               "[--version 2.NN[.P[.H]]] [--quiet]\n"
               "  --version: the DHIS2 release to imitate, 2.36 to 2.42 (default 2.40); without\n"
               "  a patch release, the fixture's system.version when it is of that line, else\n"
               "  the newest one (2.36.13.2, 2.37.10, 2.38.7, 2.39.10.1, 2.40.12, 2.41.9.1,\n"
               "  2.42.5.2)\n"
               "  --port 0 picks a free port; the chosen one is printed in the line\n"
               "  \"dhis2-sim listening on ADDRESS:PORT\" once the server is ready.\n");
}

/* "2.40", "2.40.4" or "2.40.4.1" into opt.minor/patch/hotfix. */
static bool parse_version(const char *s)
{
    long part[4] = {0, 0, 0, 0};
    int n = 0;
    const char *p = s;
    while (n < 4) {
        char *end;
        if (!isdigit((unsigned char)*p))
            return false;
        part[n++] = strtol(p, &end, 10);
        if (*end == '\0')
            break;
        if (*end != '.')
            return false;
        p = end + 1;
    }
    if (n < 2 || part[0] != 2 || part[1] < 36 || part[1] > 42 || part[2] > 99 || part[3] > 99)
        return false;
    opt.minor = (int)part[1];
    opt.patch_given = n >= 3;
    opt.patch = (int)part[2];
    opt.hotfix = (int)part[3];
    return true;
}

/* Fills the patch release when --version named none: the fixture's system.version
 * when it is of the same line, else the newest release of that line. */
static void settle_version(void)
{
    if (!opt.patch_given) {
        const char *fixture = jstr(md.system, "version");
        int fmaj = 0, fmin = 0, fpatch = 0, fhot = 0;
        if (fixture && sscanf(fixture, "%d.%d.%d.%d", &fmaj, &fmin, &fpatch, &fhot) >= 3 &&
            fmaj == 2 && fmin == opt.minor) {
            opt.patch = fpatch;
            opt.hotfix = fhot;
        } else {
            for (size_t i = 0; i < sizeof latest_release / sizeof latest_release[0]; i++)
                if (latest_release[i].minor == opt.minor) {
                    opt.patch = latest_release[i].patch;
                    opt.hotfix = latest_release[i].hotfix;
                }
        }
    }
    if (opt.hotfix)
        snprintf(opt.version, sizeof opt.version, "2.%d.%d.%d", opt.minor, opt.patch, opt.hotfix);
    else
        snprintf(opt.version, sizeof opt.version, "2.%d.%d", opt.minor, opt.patch);
}

static bool parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"address", required_argument, NULL, 'a'},
        {"metadata", required_argument, NULL, 'm'},
        {"version", required_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_port = false;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "p:a:m:v:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            long p = strtol(optarg, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf(stderr, "dhis2-sim: invalid port \"%s\"\n", optarg);
                return false;
            }
            opt.port = (unsigned)p;
            have_port = true;
            break;
        }
        case 'a': opt.address = optarg; break;
        case 'm': opt.metadata_path = optarg; break;
        case 'v':
            if (!parse_version(optarg)) {
                fprintf(stderr,
                        "dhis2-sim: invalid version \"%s\" (expected 2.36 .. 2.42, optionally "
                        "with a patch release, e.g. 2.40 or 2.40.4)\n",
                        optarg);
                return false;
            }
            break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
    }
    if (!have_port || !opt.metadata_path || optind != argc) {
        usage(stderr);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (!parse_args(argc, argv))
        return 2;
    if (!md_load(opt.metadata_path)) {
        md_free();
        return 2;
    }
    settle_version();
    xmlInitParser();

    /* Signals are taken by sigwait() below; every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.address, &sin.sin_addr) != 1) {
        fprintf(stderr, "dhis2-sim: invalid IPv4 address \"%s\"\n", opt.address);
        md_free();
        return 2;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
            MHD_USE_ERROR_LOG,
        (uint16_t)opt.port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sin,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "dhis2-sim: could not listen on %s:%u: %s\n", opt.address, opt.port,
                strerror(errno));
        md_free();
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info && info->port ? info->port : opt.port;
    printf("dhis2-sim listening on %s:%u\n", opt.address, port);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    logf_("dhis2-sim: signal %d, stopping", sig);

    pthread_mutex_lock(&stop_mu);
    stopping = true;
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
    MHD_stop_daemon(d);

    pthread_mutex_lock(&store.mu);
    store_clear();
    free(completions.v);
    pthread_mutex_unlock(&store.mu);
    md_free();
    xmlCleanupParser();
    return 0;
}
