/*
 * dhis2-sim.c - a DHIS2 stand-in that speaks the real DHIS2 wire format.
 *
 * Used by hibus's integration tests, the demo and the benchmarks in place of a
 * real DHIS2 server. From an in-memory metadata fixture (metadata.json) it
 * serves the parts of the DHIS2 Web API that hibus talks to:
 *
 *   POST /api/dataValueSets    JSON and ADX imports, validated like DHIS2 does
 *                              (E76xx conflict codes), answered with the 2.38+
 *                              WebMessage envelope (409 on WARNING/ERROR) or the
 *                              pre-2.38 bare ImportSummary (always 200)
 *   GET  /api/dataValueSets    export of stored values
 *   GET  /api/system/info, /api/{organisationUnits,dataElements,
 *        categoryOptionCombos,dataSets}[/{uid}]   metadata checks
 *   /admin/...                 fault injection, stored values, counters, reset
 *
 * Period ids and ADX periods are implemented here, independently of hibus's
 * own src/period.c, so that the simulator can catch hibus's mistakes instead
 * of sharing them. Wire formats: /work/shared/FORMATS.md sections 1-4 and
 * tests/dhis2-sim/README.md.
 *
 * Threads: libmicrohttpd runs one thread per connection, so a simulated stall
 * never blocks other clients. The metadata is immutable once loaded; the value
 * store and the fault counters each have a mutex; request counters are atomics.
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
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <microhttpd.h>

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define SIM_MAX_BODY (64u * 1024u * 1024u) /* larger request bodies get 413 */
#define SIM_MAX_PATH 512                   /* longer paths get 414 */
#define SIM_MAX_AUTH 1024                  /* decoded Basic credentials */
#define SIM_MAX_STALL 3600.0               /* seconds */
#define SIM_MAX_VALUE 50000                /* DHIS2's limit for a value/comment */
#define SIM_PERIOD_MAX 24                  /* longest canonical period id + NUL */
#define SIM_UID_LEN 11
#define ADX_NS "urn:ihe:qrph:adx:2015"

/* ------------------------------------------------------------------------ */
/* Options and global state                                                 */
/* ------------------------------------------------------------------------ */

static struct {
    const char *address;
    unsigned port;
    const char *metadata_path;
    const char *version; /* "2.40" */
    int minor;           /* 40 */
    bool quiet;
} opt = {"127.0.0.1", 0, NULL, "2.40", 40, false};

/* Stops simulated stalls early when the simulator shuts down. */
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static bool stopping;

static atomic_ulong n_requests, n_imports, n_faults;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logf_(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
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

/* Parses yyyy-MM-dd exactly. */
static bool parse_date(const char *s, size_t len, long *days)
{
    int y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return false;
    y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    *days = days_from_civil(y, m, d);
    return true;
}

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
    PT_SIXMONTHLY,
    PT_SIXMONTHLY_APRIL,
    PT_YEARLY,
    PT_FIN_APRIL,
    PT_FIN_JULY,
    PT_FIN_OCT,
    PT_FIN_NOV,
};

/* Weekly variants: id infix and first day of the week (0 = Monday). */
static const struct {
    enum ptype type;
    const char *infix;
    int first_day;
} weekly_types[] = {
    {PT_WEEKLY, "W", 0},        {PT_WEEKLY_WED, "WedW", 2}, {PT_WEEKLY_THU, "ThuW", 3},
    {PT_WEEKLY_SAT, "SatW", 5}, {PT_WEEKLY_SUN, "SunW", 6},
};

/* Financial years and the month they start in. */
static const struct {
    enum ptype type;
    const char *suffix;
    int month;
} financial_types[] = {
    {PT_FIN_APRIL, "April", 4},
    {PT_FIN_JULY, "July", 7},
    {PT_FIN_OCT, "Oct", 10},
    {PT_FIN_NOV, "Nov", 11},
};

struct period {
    enum ptype type;
    int year;   /* the year in the id */
    int index;  /* month, quarter, week, half... (day of year for daily) */
    long start; /* days since the epoch, inclusive */
    long end;   /* inclusive */
};

/*
 * First day of week 1 of `year` for weeks starting on `first_day`: week 1 is
 * the week holding January 4th, i.e. the first week with at least four days in
 * the year (java.time WeekFields.of(firstDay, 4), which DHIS2 uses for every
 * weekly period type).
 */
static long week1_start(int year, int first_day)
{
    long jan4 = days_from_civil(year, 1, 4);
    return jan4 - ((weekday(jan4) - first_day + 7) % 7);
}

static int weekly_first_day(enum ptype t)
{
    for (size_t i = 0; i < sizeof weekly_types / sizeof weekly_types[0]; i++)
        if (weekly_types[i].type == t)
            return weekly_types[i].first_day;
    return 0;
}

/* Fills start/end from type, year and index; false when the index is out of range. */
static bool period_build(struct period *p)
{
    int y = p->year, i = p->index, m0;
    if (y < 1000 || y > 9998)
        return false;
    switch (p->type) {
    case PT_DAILY:
        if (i < 1 || i > (days_in_month(y, 2) == 29 ? 366 : 365))
            return false;
        p->start = p->end = days_from_civil(y, 1, 1) + i - 1;
        return true;
    case PT_WEEKLY:
    case PT_WEEKLY_WED:
    case PT_WEEKLY_THU:
    case PT_WEEKLY_SAT:
    case PT_WEEKLY_SUN: {
        int fd = weekly_first_day(p->type);
        p->start = week1_start(y, fd) + 7L * (i - 1);
        p->end = p->start + 6;
        return i >= 1 && p->start < week1_start(y + 1, fd);
    }
    case PT_BIWEEKLY:
        p->start = week1_start(y, 0) + 14L * (i - 1);
        p->end = p->start + 13;
        return i >= 1 && p->start < week1_start(y + 1, 0);
    case PT_MONTHLY:
        if (i < 1 || i > 12)
            return false;
        m0 = i;
        p->start = days_from_civil(y, m0, 1);
        p->end = p->start + days_in_month(y, m0) - 1;
        return true;
    case PT_BIMONTHLY: /* 202401B = Jan-Feb .. 202406B = Nov-Dec */
        if (i < 1 || i > 6)
            return false;
        m0 = 2 * i - 1;
        p->start = days_from_civil(y, m0, 1);
        p->end = days_from_civil(y, m0 + 1, days_in_month(y, m0 + 1));
        return true;
    case PT_QUARTERLY:
        if (i < 1 || i > 4)
            return false;
        m0 = 3 * i - 2;
        p->start = days_from_civil(y, m0, 1);
        p->end = days_from_civil(y, m0 + 2, days_in_month(y, m0 + 2));
        return true;
    case PT_SIXMONTHLY:
        if (i < 1 || i > 2)
            return false;
        m0 = 6 * i - 5;
        p->start = days_from_civil(y, m0, 1);
        p->end = days_from_civil(y, m0 + 5, days_in_month(y, m0 + 5));
        return true;
    case PT_SIXMONTHLY_APRIL: /* S1 = Apr..Sep, S2 = Oct..Mar of the next year */
        if (i < 1 || i > 2)
            return false;
        if (i == 1) {
            p->start = days_from_civil(y, 4, 1);
            p->end = days_from_civil(y, 9, 30);
        } else {
            p->start = days_from_civil(y, 10, 1);
            p->end = days_from_civil(y + 1, 3, 31);
        }
        return true;
    case PT_YEARLY:
        p->start = days_from_civil(y, 1, 1);
        p->end = days_from_civil(y, 12, 31);
        return true;
    case PT_FIN_APRIL:
    case PT_FIN_JULY:
    case PT_FIN_OCT:
    case PT_FIN_NOV:
        for (size_t k = 0; k < sizeof financial_types / sizeof financial_types[0]; k++)
            if (financial_types[k].type == p->type) {
                m0 = financial_types[k].month;
                p->start = days_from_civil(y, m0, 1);
                p->end = days_from_civil(y + 1, m0, 1) - 1;
            }
        return true;
    }
    return false;
}

/*
 * Reads a number of at most `max_digits` digits at *s and requires the string
 * to end there. Weeks allow two digits with a leading zero (2024W01), as
 * DHIS2's own pattern \d{1,2} does; quarters and halves take one digit.
 */
static bool parse_tail_number(const char *s, size_t max_digits, int *n)
{
    size_t len = strlen(s);
    if (len < 1 || len > max_digits || strspn(s, "0123456789") != len)
        return false;
    *n = atoi(s);
    return true;
}

/* Parses a DHIS2 period id (yyyyMM, 2024W1, 2024Q1, ...). */
static bool period_parse(const char *s, struct period *p)
{
    memset(p, 0, sizeof *p);
    if (!s || strlen(s) < 4 || strlen(s) > 16)
        return false;
    for (int k = 0; k < 4; k++)
        if (!isdigit((unsigned char)s[k]))
            return false;
    p->year = atoi((char[5]){s[0], s[1], s[2], s[3], '\0'});
    const char *r = s + 4;
    size_t rl = strlen(r);

    if (rl == 0) {
        p->type = PT_YEARLY;
        p->index = 1;
    } else if (rl == 2 && isdigit((unsigned char)r[0]) && isdigit((unsigned char)r[1])) {
        p->type = PT_MONTHLY;
        p->index = atoi(r);
    } else if (rl == 4 && strspn(r, "0123456789") == 4) {
        int m = (r[0] - '0') * 10 + (r[1] - '0'), d = (r[2] - '0') * 10 + (r[3] - '0');
        if (m < 1 || m > 12 || d < 1 || d > days_in_month(p->year, m))
            return false;
        p->type = PT_DAILY;
        p->index = (int)(days_from_civil(p->year, m, d) - days_from_civil(p->year, 1, 1)) + 1;
    } else if (rl == 3 && r[2] == 'B' && isdigit((unsigned char)r[0]) &&
               isdigit((unsigned char)r[1])) {
        p->type = PT_BIMONTHLY;
        p->index = atoi((char[3]){r[0], r[1], '\0'});
    } else if (r[0] == 'Q' && isdigit((unsigned char)r[1])) {
        p->type = PT_QUARTERLY;
        if (!parse_tail_number(r + 1, 1, &p->index))
            return false;
    } else if (r[0] == 'S' && isdigit((unsigned char)r[1])) {
        p->type = PT_SIXMONTHLY;
        if (!parse_tail_number(r + 1, 1, &p->index))
            return false;
    } else if (strncmp(r, "AprilS", 6) == 0) {
        p->type = PT_SIXMONTHLY_APRIL;
        if (!parse_tail_number(r + 6, 1, &p->index))
            return false;
    } else if (strncmp(r, "BiW", 3) == 0) {
        p->type = PT_BIWEEKLY;
        if (!parse_tail_number(r + 3, 2, &p->index))
            return false;
    } else {
        bool found = false;
        for (size_t k = 0; !found && k < sizeof weekly_types / sizeof weekly_types[0]; k++) {
            size_t n = strlen(weekly_types[k].infix);
            if (strncmp(r, weekly_types[k].infix, n) == 0) {
                p->type = weekly_types[k].type;
                if (!parse_tail_number(r + n, 2, &p->index))
                    return false;
                found = true;
            }
        }
        for (size_t k = 0; !found && k < sizeof financial_types / sizeof financial_types[0]; k++)
            if (strcmp(r, financial_types[k].suffix) == 0) {
                p->type = financial_types[k].type;
                p->index = 1;
                found = true;
            }
        if (!found)
            return false;
    }
    return period_build(p);
}

/* The canonical DHIS2 id of a period (2024W1, never 2024W01). */
static void period_format(const struct period *p, char *buf, size_t size)
{
    int y, m, d;
    switch (p->type) {
    case PT_DAILY:
        civil_from_days(p->start, &y, &m, &d);
        snprintf(buf, size, "%04d%02d%02d", y, m, d);
        return;
    case PT_WEEKLY:
    case PT_WEEKLY_WED:
    case PT_WEEKLY_THU:
    case PT_WEEKLY_SAT:
    case PT_WEEKLY_SUN:
        for (size_t k = 0; k < sizeof weekly_types / sizeof weekly_types[0]; k++)
            if (weekly_types[k].type == p->type)
                snprintf(buf, size, "%04d%s%d", p->year, weekly_types[k].infix, p->index);
        return;
    case PT_BIWEEKLY: snprintf(buf, size, "%04dBiW%d", p->year, p->index); return;
    case PT_MONTHLY: snprintf(buf, size, "%04d%02d", p->year, p->index); return;
    case PT_BIMONTHLY: snprintf(buf, size, "%04d%02dB", p->year, p->index); return;
    case PT_QUARTERLY: snprintf(buf, size, "%04dQ%d", p->year, p->index); return;
    case PT_SIXMONTHLY: snprintf(buf, size, "%04dS%d", p->year, p->index); return;
    case PT_SIXMONTHLY_APRIL: snprintf(buf, size, "%04dAprilS%d", p->year, p->index); return;
    case PT_YEARLY: snprintf(buf, size, "%04d", p->year); return;
    case PT_FIN_APRIL:
    case PT_FIN_JULY:
    case PT_FIN_OCT:
    case PT_FIN_NOV:
        for (size_t k = 0; k < sizeof financial_types / sizeof financial_types[0]; k++)
            if (financial_types[k].type == p->type)
                snprintf(buf, size, "%04d%s", p->year, financial_types[k].suffix);
        return;
    }
    snprintf(buf, size, "?");
}

/*
 * Converts an ADX period (ISO 8601 "start/duration", e.g. 2024-01-01/P1M) to
 * the canonical DHIS2 id. The start must be the first day of a DHIS2 period of
 * the type the duration implies, as DHIS2 requires.
 */
static bool period_from_adx(const char *adx, char *out, size_t size)
{
    const char *slash = adx ? strchr(adx, '/') : NULL;
    long start;
    if (!slash || !parse_date(adx, (size_t)(slash - adx), &start))
        return false;
    const char *dur = slash + 1;
    if (dur[0] != 'P' || !isdigit((unsigned char)dur[1]))
        return false;
    char *endp;
    long n = strtol(dur + 1, &endp, 10);
    char unit = *endp;
    if (unit == '\0' || endp[1] != '\0')
        return false;
    if (unit == 'W') {
        n *= 7;
        unit = 'D';
    }
    if (unit == 'Y') {
        n *= 12;
        unit = 'M';
    }

    int y, m, d;
    civil_from_days(start, &y, &m, &d);
    struct period p = {0};
    p.year = y;
    if (unit == 'D' && n == 1) {
        p.type = PT_DAILY;
        p.index = (int)(start - days_from_civil(y, 1, 1)) + 1;
    } else if (unit == 'D' && (n == 7 || n == 14)) {
        int wd = weekday(start);
        bool found = false;
        for (size_t k = 0; k < sizeof weekly_types / sizeof weekly_types[0]; k++)
            if (weekly_types[k].first_day == wd && (n == 7 || wd == 0)) {
                p.type = n == 7 ? weekly_types[k].type : PT_BIWEEKLY;
                found = true;
            }
        if (!found)
            return false;
        /* The week-based year may differ from the calendar year near January. */
        for (int wy = y + 1; wy >= y - 1; wy--)
            if (week1_start(wy, wd) <= start) {
                p.year = wy;
                p.index = (int)((start - week1_start(wy, wd)) / n) + 1;
                break;
            }
    } else if (unit == 'M' && d == 1) {
        switch (n) {
        case 1:
            p.type = PT_MONTHLY;
            p.index = m;
            break;
        case 2:
            p.type = PT_BIMONTHLY;
            p.index = (m + 1) / 2;
            break;
        case 3:
            p.type = PT_QUARTERLY;
            p.index = (m + 2) / 3;
            break;
        case 6:
            if (m == 1 || m == 7) {
                p.type = PT_SIXMONTHLY;
                p.index = m == 1 ? 1 : 2;
            } else if (m == 4 || m == 10) {
                p.type = PT_SIXMONTHLY_APRIL;
                p.index = m == 4 ? 1 : 2;
            } else {
                return false;
            }
            break;
        case 12:
            p.index = 1;
            if (m == 1) {
                p.type = PT_YEARLY;
            } else {
                bool found = false;
                for (size_t k = 0; k < sizeof financial_types / sizeof financial_types[0]; k++)
                    if (financial_types[k].month == m) {
                        p.type = financial_types[k].type;
                        found = true;
                    }
                if (!found)
                    return false;
            }
            break;
        default: return false;
        }
    } else {
        return false;
    }
    if (!period_build(&p) || p.start != start)
        return false;
    period_format(&p, out, size);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Metadata (immutable after load)                                          */
/* ------------------------------------------------------------------------ */

enum scheme { SCHEME_UID, SCHEME_CODE, SCHEME_NAME };

enum md_kind { MD_ORGUNIT, MD_DATAELEMENT, MD_COC, MD_DATASET, MD_CATEGORY, MD_CATOPTION };

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
    json_t *users, *tokens, *system;
    struct md_set ous, des, cocs, aocs, all_cocs, dss, cats, catopts;
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
    json_decref(md.root);
    md.root = NULL;
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
    json_t *aocs = json_object_get(r, "attributeOptionCombos");
    /* Without attributeOptionCombos, the category option combos double as AOCs. */
    if (!aocs)
        aocs = json_object_get(r, "categoryOptionCombos");
    if (!md_set_load(&md.ous, MD_ORGUNIT, "OrganisationUnit", "organisationUnits",
                     json_object_get(r, "organisationUnits"), NULL) ||
        !md_set_load(&md.des, MD_DATAELEMENT, "DataElement", "dataElements",
                     json_object_get(r, "dataElements"), NULL) ||
        !md_set_load(&md.cocs, MD_COC, "CategoryOptionCombo", "categoryOptionCombos",
                     json_object_get(r, "categoryOptionCombos"), NULL) ||
        !md_set_load(&md.aocs, MD_COC, "CategoryOptionCombo", "attributeOptionCombos", aocs,
                     NULL) ||
        !md_set_load(&md.all_cocs, MD_COC, "CategoryOptionCombo", "categoryOptionCombos",
                     json_object_get(r, "categoryOptionCombos"),
                     aocs == json_object_get(r, "categoryOptionCombos") ? NULL : aocs) ||
        !md_set_load(&md.dss, MD_DATASET, "DataSet", "dataSets", json_object_get(r, "dataSets"),
                     NULL) ||
        !md_set_load(&md.cats, MD_CATEGORY, "Category", "categories",
                     json_object_get(r, "categories"), NULL) ||
        !md_set_load(&md.catopts, MD_CATOPTION, "CategoryOption", "categoryOptions",
                     json_object_get(r, "categoryOptions"), NULL))
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
    if (s->kind == MD_DATAELEMENT) {
        const char *vt = jstr(o->src, "valueType");
        json_object_set_new(j, "valueType", json_string(vt ? vt : "TEXT"));
        json_object_set_new(j, "domainType", json_string("AGGREGATE"));
    } else if (s->kind == MD_DATASET) {
        const char *pt = jstr(o->src, "periodType");
        json_t *dse = json_array(), *ous = json_array(), *v;
        size_t i;
        json_object_set_new(j, "periodType", json_string(pt ? pt : "Monthly"));
        json_array_foreach(json_object_get(o->src, "dataElements"), i, v)
            json_array_append_new(dse, json_pack("{s:{s:O}}", "dataElement", "id", v));
        json_array_foreach(json_object_get(o->src, "organisationUnits"), i, v)
            json_array_append_new(ous, json_pack("{s:O}", "id", v));
        json_object_set_new(j, "dataSetElements", dse);
        json_object_set_new(j, "organisationUnits", ous);
    } else if (s->kind == MD_COC) {
        json_t *opts = json_array(), *v;
        const char *k;
        json_object_foreach(json_object_get(o->src, "categoryOptions"), k, v)
            json_array_append_new(opts, json_pack("{s:O}", "code", v));
        json_object_set_new(j, "categoryOptions", opts);
    }
    return j;
}

/* True when the data set lists the data element (by UID). */
static bool md_dataset_has_de(const struct md_obj *ds, const char *de_uid)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ds->src, "dataElements"), i,
                       v) if (json_is_string(v) &&
                              strcmp(json_string_value(v), de_uid) == 0) return true;
    return false;
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

struct sv {
    struct sv_key key;
    char *value;   /* NULL for a comment-only value */
    char *comment; /* NULL when none */
    char *stored_by;
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

/* Inserts a new value (the key must be absent). Caller holds store.mu. */
static bool store_insert(struct sv *v)
{
    if ((store.n + 1) * 10 >= store.cap * 7 && !store_grow())
        return false;
    store.slots[store_slot(&v->key)] = v;
    store.n++;
    return true;
}

static void store_delete(const struct sv_key *k)
{
    if (!store.cap)
        return;
    size_t mask = store.cap - 1, i = store_slot(k);
    if (!store.slots[i])
        return;
    sv_free(store.slots[i]);
    store.slots[i] = NULL;
    store.n--;
    /* Backward-shift: move later entries of the cluster into the hole when allowed. */
    for (size_t j = (i + 1) & mask; store.slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)sv_hash(&store.slots[j]->key) & mask;
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            store.slots[i] = store.slots[j];
            store.slots[j] = NULL;
            i = j;
        }
    }
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
    bool pre238;              /* answer imports with the bare pre-2.38 summary */
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

/* Sends `body` (consumed) as JSON; an extra header when hname is not NULL. */
static enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body,
                                  const char *hname, const char *hval)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO; /* out of memory: drop the connection */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json;charset=UTF-8");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    logf_("dhis2-sim: %s %s -> %u", r->method, r->url, status);
    return ret;
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

struct import_opts {
    enum scheme de, ou, coc, ds, cat, catopt; /* coc also applies to AOCs */
    bool dry_run;
    enum strategy strategy;
    json_t *id_schemes; /* echo of the schemes given explicitly */
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

/* An import option: the payload (JSON property, ADX root attribute) wins over the URL. */
static const char *import_option(const struct request *r, const json_t *payload, const char *name)
{
    const char *v = jstr(payload, name);
    return v ? v : qarg(r, name);
}

/*
 * Works out id schemes, strategy and dryRun. ADX defaults every scheme to
 * CODE, JSON to UID; idScheme overrides the default and the per-type schemes
 * override idScheme. Returns false with a message for an unusable option.
 */
static bool import_opts_init(const struct request *r, const json_t *payload, bool adx,
                             struct import_opts *o, char *err, size_t errsz)
{
    static const struct {
        const char *param;
        size_t offset;
    } specific[] = {
        {"dataElementIdScheme", offsetof(struct import_opts, de)},
        {"orgUnitIdScheme", offsetof(struct import_opts, ou)},
        {"categoryOptionComboIdScheme", offsetof(struct import_opts, coc)},
        {"dataSetIdScheme", offsetof(struct import_opts, ds)},
        {"categoryIdScheme", offsetof(struct import_opts, cat)},
        {"categoryOptionIdScheme", offsetof(struct import_opts, catopt)},
    };
    enum scheme base = adx ? SCHEME_CODE : SCHEME_UID;
    const char *v;

    memset(o, 0, sizeof *o);
    o->id_schemes = json_object();
    if ((v = import_option(r, payload, "idScheme"))) {
        if (!parse_scheme(v, &base)) {
            snprintf(err, errsz, "idScheme \"%s\" is not supported by dhis2-sim (UID, CODE, NAME)",
                     v);
            return false;
        }
        json_object_set_new(o->id_schemes, "idScheme", json_string(scheme_name(base)));
    }
    for (size_t i = 0; i < sizeof specific / sizeof specific[0]; i++) {
        enum scheme *field = (enum scheme *)((char *)o + specific[i].offset);
        *field = base;
        if ((v = import_option(r, payload, specific[i].param))) {
            if (!parse_scheme(v, field)) {
                snprintf(err, errsz, "%s \"%s\" is not supported by dhis2-sim (UID, CODE, NAME)",
                         specific[i].param, v);
                return false;
            }
            json_object_set_new(o->id_schemes, specific[i].param, json_string(scheme_name(*field)));
        }
    }
    o->strategy = ST_CREATE_AND_UPDATE;
    if ((v = import_option(r, payload, "importStrategy"))) {
        bool found = false;
        for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
            if (strcasecmp(v, strategies[i].name) == 0) {
                o->strategy = strategies[i].st;
                found = true;
            }
        if (!found) {
            snprintf(err, errsz,
                     "importStrategy \"%s\" is not one of CREATE_AND_UPDATE, CREATE, "
                     "UPDATE, DELETE",
                     v);
            return false;
        }
    }
    v = import_option(r, payload, "dryRun");
    o->dry_run = v && strcasecmp(v, "true") == 0;
    if (json_is_true(json_object_get(payload, "dryRun")))
        o->dry_run = true;
    return true;
}

static const char *strategy_name(enum strategy st)
{
    return strategies[st].name; /* the first four rows are in enum order */
}

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Conflicts are deduplicated like DHIS2 does: one object per (errorCode,
 * property, object) whose "indexes" lists every request position it applies to.
 */
struct conflicts {
    json_t *list;   /* array of conflict objects */
    json_t *by_key; /* dedup key -> the conflict object (borrowed from list) */
    bool *rejected; /* per request index */
    size_t n;       /* number of values in the request */
};

static void conflict_add(struct conflicts *cs, long index, const char *code, const char *property,
                         const char *object, json_t *objects, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void conflict_add(struct conflicts *cs, long index, const char *code, const char *property,
                         const char *object, json_t *objects, const char *fmt, ...)
{
    char key[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    if (index >= 0 && (size_t)index < cs->n)
        cs->rejected[index] = true;
    int kn =
        snprintf(key, sizeof key, "%s\x1f%s\x1f%s\x1f%s", code ? code : "", property, object, msg);
    json_t *c = (kn > 0 && (size_t)kn < sizeof key) ? json_object_get(cs->by_key, key) : NULL;
    if (c) {
        if (index >= 0)
            json_array_append_new(json_object_get(c, "indexes"), json_integer(index));
        json_decref(objects);
        return;
    }
    c = json_object();
    json_object_set_new(c, "object", json_string(object));
    json_object_set_new(c, "objects", objects ? objects : json_object());
    json_object_set_new(c, "value", json_string(msg));
    if (code)
        json_object_set_new(c, "errorCode", json_string(code));
    json_object_set_new(c, "property", json_string(property));
    if (index >= 0)
        json_object_set_new(c, "indexes", json_pack("[I]", (json_int_t)index));
    json_array_append_new(cs->list, c);
    if (kn > 0 && (size_t)kn < sizeof key)
        json_object_set(cs->by_key, key, c);
}

/* ------------------------------------------------------------------------ */
/* Value types                                                              */
/* ------------------------------------------------------------------------ */

/* ^(0|-?[1-9]\d*)$ within the 32-bit range DHIS2 stores integers in. */
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

/* DHIS2's numeric pattern: ^(-?0|-?[1-9]\d*)(\.\d+)?(E(-)?\d+)?$ */
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

/* NULL when `v` is valid for the value type, else why not. */
static const char *value_type_error(const char *vt, const char *v)
{
    if (strlen(v) > SIM_MAX_VALUE)
        return "value is longer than 50000 characters";
    if (!vt || strcmp(vt, "TEXT") == 0 || strcmp(vt, "LONG_TEXT") == 0)
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
                   : "value_is_percentage";
    if (strcmp(vt, "UNIT_INTERVAL") == 0)
        return is_number(v) && strtod(v, NULL) >= 0 && strtod(v, NULL) <= 1
                   ? NULL
                   : "value_not_unit_interval";
    if (strcmp(vt, "BOOLEAN") == 0)
        return strcmp(v, "true") == 0 || strcmp(v, "false") == 0 ? NULL : "value_not_bool";
    if (strcmp(vt, "TRUE_ONLY") == 0)
        return strcmp(v, "true") == 0 ? NULL : "value_not_true_only";
    if (strcmp(vt, "DATE") == 0) {
        long d;
        return parse_date(v, strlen(v), &d) ? NULL : "value_not_valid_date";
    }
    return NULL; /* other types are not checked by the simulator */
}

/* ------------------------------------------------------------------------ */
/* Import: resolution and validation of one value                          */
/* ------------------------------------------------------------------------ */

/* A request value with every identifier resolved to metadata. */
struct item {
    long index;
    struct sv_key key;
    const struct md_obj *de;
    const char *value, *comment, *stored_by; /* borrowed from the parsed payload */
    bool deleted;
};

/* A value's own property, else the set-level default. */
static const char *dv_field(const json_t *dv, const json_t *set, const char *name)
{
    const char *v = jstr(dv, name);
    return v && *v ? v : jstr(set, name);
}

/*
 * Finds the combo whose categoryOptions match ADX's exploded category
 * attributes (attribute name = category, value = category option). NULL when
 * a category, an option or the combination is unknown.
 */
static const struct md_obj *combo_from_categories(const struct md_set *set, const json_t *cats,
                                                  const struct import_opts *o)
{
    json_t *want = json_object();
    const struct md_obj *found = NULL;
    const char *name;
    json_t *val;
    json_object_foreach((json_t *)cats, name, val)
    {
        const char *option = json_string_value(val);
        const struct md_obj *cat = md_find(&md.cats, o->cat, name);
        if (!cat || !cat->code || !option)
            goto out;
        if (o->catopt != SCHEME_CODE || md.catopts.n) {
            const struct md_obj *co = md_find(&md.catopts, o->catopt, option);
            if (co && co->code)
                option = co->code;
            else if (o->catopt != SCHEME_CODE)
                goto out;
        }
        json_object_set_new(want, cat->code, json_string(option));
    }
    for (size_t i = 0; i < set->n && !found; i++)
        if (json_equal(json_object_get(set->v[i].src, "categoryOptions"), want))
            found = &set->v[i];
out:
    json_decref(want);
    return found;
}

/* "CAT=OPT,CAT2=OPT2" for messages. */
static void categories_text(const json_t *cats, char *buf, size_t size)
{
    const char *name;
    json_t *val;
    size_t used = 0;
    buf[0] = '\0';
    json_object_foreach((json_t *)cats, name, val)
    {
        int n = snprintf(buf + used, size - used, "%s%s=%s", used ? "," : "", name,
                         json_is_string(val) ? json_string_value(val) : "?");
        if (n < 0 || (size_t)n >= size - used)
            return; /* truncated: good enough for a message */
        used += (size_t)n;
    }
}

/*
 * Validates one value like DHIS2's DataValueSetImportValidator, in the same
 * order (data element, period, org unit, COC, AOC, data set, value), adding
 * at most one conflict. Returns true and fills `it` when the value is valid.
 */
static bool resolve_value(const json_t *dv, const json_t *set, long index,
                          const struct import_opts *o, const struct request *r, long today,
                          struct conflicts *cs, struct item *it)
{
    char buf[512];
    memset(it, 0, sizeof *it);
    it->index = index;

    const char *de_id = dv_field(dv, NULL, "dataElement");
    const struct md_obj *de = md_find(&md.des, o->de, de_id);
    if (!de) {
        conflict_add(cs, index, "E7610", "dataElement", de_id ? de_id : "",
                     json_pack("{s:s}", "dataElement", de_id ? de_id : ""),
                     "Data element not found or not accessible: `%s`", de_id ? de_id : "null");
        return false;
    }
    it->de = de;
    snprintf(it->key.de, sizeof it->key.de, "%s", de->id);

    const char *pe_id = dv_field(dv, set, "period");
    struct period p;
    if (!pe_id || json_is_true(json_object_get(dv, "_adxBadPeriod")) || !period_parse(pe_id, &p)) {
        conflict_add(cs, index, "E7611", "period", pe_id ? pe_id : "",
                     json_pack("{s:s}", "period", pe_id ? pe_id : ""), "Period not valid: `%s`",
                     pe_id ? pe_id : "null");
        return false;
    }
    period_format(&p, it->key.pe, sizeof it->key.pe);

    const char *ou_id = dv_field(dv, set, "orgUnit");
    const struct md_obj *ou = md_find(&md.ous, o->ou, ou_id);
    if (!ou) {
        conflict_add(cs, index, "E7612", "orgUnit", ou_id ? ou_id : "",
                     json_pack("{s:s}", "orgUnit", ou_id ? ou_id : ""),
                     "Organisation unit not found or not accessible: `%s`", ou_id ? ou_id : "null");
        return false;
    }
    snprintf(it->key.ou, sizeof it->key.ou, "%s", ou->id);

    /* COC: explicit attribute first, then ADX exploded categories, else the default. */
    const char *coc_id = dv_field(dv, NULL, "categoryOptionCombo");
    const json_t *cats = json_object_get(dv, "_adxCategories");
    const struct md_obj *coc = md.default_coc;
    if (coc_id) {
        coc = md_find(&md.cocs, o->coc, coc_id);
    } else if (json_object_size(cats)) {
        coc = combo_from_categories(&md.cocs, cats, o);
        categories_text(cats, buf, sizeof buf);
        coc_id = buf;
    }
    if (!coc) {
        conflict_add(cs, index, "E7613", "categoryOptionCombo", coc_id,
                     json_pack("{s:s}", "categoryOptionCombo", coc_id),
                     "Category option combo not found or not accessible for writing data: `%s`",
                     coc_id);
        return false;
    }
    snprintf(it->key.coc, sizeof it->key.coc, "%s", coc->id);

    const char *aoc_id = dv_field(dv, set, "attributeOptionCombo");
    const json_t *aoc_cats = json_object_get(dv, "_adxAttributeCategories");
    const struct md_obj *aoc = md.default_aoc;
    if (aoc_id) {
        aoc = md_find(&md.aocs, o->coc, aoc_id);
    } else if (json_object_size(aoc_cats)) {
        aoc = combo_from_categories(&md.aocs, aoc_cats, o);
        categories_text(aoc_cats, buf, sizeof buf);
        aoc_id = buf;
    }
    if (!aoc) {
        conflict_add(cs, index, "E7615", "attributeOptionCombo", aoc_id,
                     json_pack("{s:s}", "attributeOptionCombo", aoc_id),
                     "Attribute option combo not found or not accessible for writing data: `%s`",
                     aoc_id);
        return false;
    }
    snprintf(it->key.aoc, sizeof it->key.aoc, "%s", aoc->id);

    const char *ds_id = dv_field(dv, set, "dataSet");
    if (ds_id) {
        const struct md_obj *ds = md_find(&md.dss, o->ds, ds_id);
        if (!ds) {
            conflict_add(cs, index, "E7600", "dataSet", ds_id, json_pack("{s:s}", "dataSet", ds_id),
                         "Data set not found or not accessible: `%s`", ds_id);
            return false;
        }
        if (!md_dataset_has_de(ds, de->id)) {
            conflict_add(cs, index, "E7633", "dataElement", de->id,
                         json_pack("{s:s, s:s}", "dataElement", de->id, "dataSet", ds->id),
                         "Data element: `%s` is not part of data set: `%s`", de->id, ds->id);
            return false;
        }
    }

    it->value = jstr(dv, "value");
    const char *vt = jstr(de->src, "valueType");
    if (json_object_get(dv, "_adxAnnotation") != NULL && vt != NULL &&
        (strcmp(vt, "TEXT") == 0 || strcmp(vt, "LONG_TEXT") == 0))
        it->value = jstr(dv, "_adxAnnotation");
    if (it->value && !*it->value)
        it->value = NULL;
    it->comment = jstr(dv, "comment");
    if (it->comment && !*it->comment)
        it->comment = NULL;
    it->deleted = json_is_true(json_object_get(dv, "deleted"));
    it->stored_by = jstr(dv, "storedBy");
    if (!it->stored_by || !*it->stored_by)
        it->stored_by = r->user;

    if (o->strategy != ST_DELETE && !it->deleted) {
        if (!it->value && !it->comment) {
            conflict_add(cs, index, "E7618", "value", de->id,
                         json_pack("{s:s}", "dataElement", de->id),
                         "Data value or comment not specified for data element: `%s`", de->id);
            return false;
        }
        const char *why =
            it->value ? value_type_error(jstr(de->src, "valueType"), it->value) : NULL;
        if (why) {
            conflict_add(cs, index, "E7619", "value", it->value,
                         json_pack("{s:s, s:s}", "value", it->value, "dataElement", de->id),
                         "Value must match data element's `%s` type constraints: %s: `%s`", de->id,
                         why, it->value);
            return false;
        }
        if (it->comment && strlen(it->comment) > SIM_MAX_VALUE) {
            conflict_add(cs, index, "E7619", "comment", de->id,
                         json_pack("{s:s}", "dataElement", de->id),
                         "Comment is longer than 50000 characters: `%s`", de->id);
            return false;
        }
    }

    /* No future periods are open for data entry (DHIS2's default, openFuturePeriods = 0). */
    if (p.start > today) {
        conflict_add(cs, index, "E7641", "period", it->key.pe,
                     json_pack("{s:s, s:s}", "period", it->key.pe, "dataElement", de->id),
                     "Period: `%s` is after latest open future period for data element: `%s`",
                     it->key.pe, de->id);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Import: applying values to the store                                     */
/* ------------------------------------------------------------------------ */

struct counts {
    long imported, updated, ignored, deleted;
};

static char *xstrdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Replaces the stored fields of `v` with the item's; false when out of memory. */
static bool sv_assign(struct sv *v, const struct item *it, const char *now)
{
    char *value = xstrdup_or_null(it->value), *comment = xstrdup_or_null(it->comment),
         *by = xstrdup_or_null(it->stored_by);
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
    snprintf(v->last_updated, sizeof v->last_updated, "%s", now);
    return true;
}

static void ignore_with_conflict(struct conflicts *cs, struct counts *c, const struct item *it,
                                 const char *msg)
{
    c->ignored++;
    /* DHIS2 has no error code for these; the conflict has the legacy shape plus indexes. */
    conflict_add(cs, it->index, NULL, "value", it->key.de,
                 json_pack("{s:s, s:s, s:s}", "dataElement", it->key.de, "period", it->key.pe,
                           "orgUnit", it->key.ou),
                 "%s: `%s`", msg, it->key.de);
}

/* Applies valid items in request order. Caller holds store.mu. */
static void apply_items(const struct item *items, size_t n, const struct import_opts *o,
                        struct conflicts *cs, struct counts *c)
{
    char now[32];
    now_iso(now, sizeof now);
    for (size_t i = 0; i < n; i++) {
        const struct item *it = &items[i];
        struct sv *existing = store_get(&it->key);
        bool remove = o->strategy == ST_DELETE || it->deleted;

        if (remove) {
            if (!existing) {
                ignore_with_conflict(cs, c, it, "Data value does not exist and cannot be deleted");
                continue;
            }
            if (!o->dry_run)
                store_delete(&it->key);
            c->deleted++;
        } else if (existing) {
            if (o->strategy == ST_CREATE) {
                ignore_with_conflict(cs, c, it, "Data value exists and import strategy is CREATE");
                continue;
            }
            if (!o->dry_run && !sv_assign(existing, it, now)) {
                ignore_with_conflict(cs, c, it, "Out of memory storing data value");
                continue;
            }
            c->updated++;
        } else {
            if (o->strategy == ST_UPDATE) {
                ignore_with_conflict(cs, c, it,
                                     "Data value does not exist and import strategy is UPDATE");
                continue;
            }
            if (!o->dry_run) {
                struct sv *v = calloc(1, sizeof *v);
                if (v) {
                    v->key = it->key;
                    snprintf(v->created, sizeof v->created, "%s", now);
                }
                if (!v || !sv_assign(v, it, now) || !store_insert(v)) {
                    sv_free(v);
                    ignore_with_conflict(cs, c, it, "Out of memory storing data value");
                    continue;
                }
            }
            c->imported++;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Import: the whole request                                                */
/* ------------------------------------------------------------------------ */

/* DHIS2 reads numbers and booleans into its String value field. */
static void normalise_value(json_t *dv)
{
    json_t *v = json_object_get(dv, "value");
    if (json_is_number(v) || json_is_boolean(v)) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        if (text)
            json_object_set_new(dv, "value", json_string(text));
        free(text);
    }
}

/* Wraps a summary in the 2.38+ WebMessage envelope (or not) and sends it. */
static enum MHD_Result reply_summary(struct request *r, json_t *summary, const char *status)
{
    if (r->pre238)
        return reply_json(r, MHD_HTTP_OK, summary, NULL, NULL);
    bool ok = strcmp(status, "SUCCESS") == 0;
    bool warning = strcmp(status, "WARNING") == 0;
    unsigned http = ok ? MHD_HTTP_OK : MHD_HTTP_CONFLICT;
    json_t *env = webmessage(http,
                             ok        ? "OK"
                             : warning ? "WARNING"
                                       : "ERROR",
                             ok        ? "Import was successful."
                             : warning ? "One more conflicts encountered, please check import "
                                         "summary."
                                       : "An error occurred, please check import summary.");
    json_object_set_new(env, "response", summary);
    return reply_json(r, http, env, NULL, NULL);
}

/*
 * Imports a parsed dataValueSet (JSON, or ADX converted to the same shape;
 * `doc` is consumed) and answers with the import summary.
 */
static enum MHD_Result run_import(struct request *r, json_t *doc, const json_t *payload_opts,
                                  bool adx)
{
    char err[512];
    struct import_opts o;
    if (!import_opts_init(r, payload_opts, adx, &o, err, sizeof err)) {
        json_decref(o.id_schemes);
        json_decref(doc);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
    }
    json_t *values = json_object_get(doc, "dataValues");
    if (values && !json_is_array(values)) {
        json_decref(o.id_schemes);
        json_decref(doc);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "\"dataValues\" must be an array");
    }
    size_t n = json_array_size(values);
    struct conflicts cs = {json_array(), json_object(), calloc(n ? n : 1, sizeof(bool)), n};
    struct item *items = calloc(n ? n : 1, sizeof *items);
    if (!cs.rejected || !items) {
        free(cs.rejected);
        free(items);
        json_decref(cs.list);
        json_decref(cs.by_key);
        json_decref(o.id_schemes);
        json_decref(doc);
        return MHD_NO;
    }

    long today = (long)(time(NULL) / 86400);
    size_t nok = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *dv = json_array_get(values, i);
        if (!json_is_object(dv)) {
            conflict_add(&cs, (long)i, "E7610", "dataElement", "", json_object(),
                         "Data value is not an object");
            continue;
        }
        normalise_value(dv);
        if (resolve_value(dv, adx ? NULL : doc, (long)i, &o, r, today, &cs, &items[nok]))
            nok++;
    }
    struct counts c = {0, 0, (long)(n - nok), 0};
    pthread_mutex_lock(&store.mu);
    apply_items(items, nok, &o, &cs, &c);
    pthread_mutex_unlock(&store.mu);

    const char *status = c.ignored == 0                             ? "SUCCESS"
                         : (c.imported + c.updated + c.deleted) > 0 ? "WARNING"
                                                                    : "ERROR";
    const char *complete = jstr(doc, "completeDate");
    const char *ds = jstr(doc, "dataSet");
    if (!complete || !ds || !md_find(&md.dss, o.ds, ds))
        complete = "false";
    json_t *rejected = json_array();
    for (size_t i = 0; i < n; i++)
        if (cs.rejected[i])
            json_array_append_new(rejected, json_integer((json_int_t)i));

    json_t *summary = json_pack(
        "{s:s, s:s, s:{s:o, s:b, s:b, s:s}, s:s, s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:s}",
        "responseType", "ImportSummary", "status", status, "importOptions", "idSchemes",
        o.id_schemes, "dryRun", (int)o.dry_run, "async", 0, "importStrategy",
        strategy_name(o.strategy), "description", "Import process completed successfully",
        "importCount", "imported", (json_int_t)c.imported, "updated", (json_int_t)c.updated,
        "ignored", (json_int_t)c.ignored, "deleted", (json_int_t)c.deleted, "conflicts", cs.list,
        "rejectedIndexes", rejected, "dataSetComplete", complete);
    logf_("dhis2-sim: import %s: imported %ld, updated %ld, ignored %ld, deleted %ld%s", status,
          c.imported, c.updated, c.ignored, c.deleted, o.dry_run ? " (dry run)" : "");
    json_decref(cs.by_key);
    free(cs.rejected);
    free(items);
    json_decref(doc);
    if (!summary)
        return MHD_NO;
    return reply_summary(r, summary, status);
}

/* ------------------------------------------------------------------------ */
/* ADX                                                                      */
/* ------------------------------------------------------------------------ */

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

static void move_attr(json_t *from, const char *name, json_t *to)
{
    json_t *v = json_object_get(from, name);
    if (v) {
        json_object_set(to, name, v);
        json_object_del(from, name);
    }
}

/*
 * Converts an ADX document to the JSON dataValueSet shape, one value per
 * <dataValue> with its group's orgUnit/period/dataSet copied in; exploded
 * category attributes go to "_adxCategories" (dataValue) and
 * "_adxAttributeCategories" (group). Documents with a DOCTYPE are refused
 * before parsing; the parser never loads the network or substitutes entities.
 * Returns NULL with a message when the document is not usable ADX.
 */
static json_t *adx_to_dvs(const char *body, size_t len, char *err, size_t errsz)
{
    if (memmem(body, len, "<!DOCTYPE", 9)) {
        snprintf(err, errsz, "ADX documents with a DOCTYPE are refused");
        return NULL;
    }
    xmlDoc *doc = xmlReadMemory(body, (int)len, "adx.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(err, errsz, "ADX document is not well-formed XML: %s",
                 e && e->message ? e->message : "parse error");
        size_t l = strlen(err);
        if (l && err[l - 1] == '\n')
            err[l - 1] = '\0';
        return NULL;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (doc->intSubset || doc->extSubset) {
        snprintf(err, errsz, "ADX documents with a DOCTYPE are refused");
        xmlFreeDoc(doc);
        return NULL;
    }
    if (!root || !adx_is(root, "adx")) {
        snprintf(err, errsz, "not an ADX document: the root must be <adx xmlns=\"%s\">", ADX_NS);
        xmlFreeDoc(doc);
        return NULL;
    }

    json_t *out = json_object(), *values = json_array();
    json_object_set_new(out, "dataValues", values);
    json_object_set_new(out, "_adxOptions", xml_attrs(root));
    for (xmlNode *g = root->children; g; g = g->next) {
        if (!adx_is(g, "group"))
            continue;
        json_t *ga = xml_attrs(g), *base = json_object();
        const char *period = jstr(ga, "period");
        char pe[SIM_PERIOD_MAX];
        if (period) {
            bool ok = period_from_adx(period, pe, sizeof pe);
            json_object_set_new(base, "period", json_string(ok ? pe : period));
            if (!ok)
                json_object_set_new(base, "_adxBadPeriod", json_true());
            json_object_del(ga, "period");
        }
        move_attr(ga, "orgUnit", base);
        move_attr(ga, "dataSet", base);
        move_attr(ga, "attributeOptionCombo", base);
        const char *complete = jstr(ga, "completeDate");
        if (complete && !json_object_get(out, "completeDate") && jstr(base, "dataSet")) {
            json_object_set_new(out, "completeDate", json_string(complete));
            json_object_set(out, "dataSet", json_object_get(base, "dataSet"));
        }
        json_object_del(ga, "completeDate");
        if (json_object_size(ga))
            json_object_set(base, "_adxAttributeCategories", ga);

        for (xmlNode *d = g->children; d; d = d->next) {
            if (!adx_is(d, "dataValue"))
                continue;
            json_t *va = xml_attrs(d), *v = json_deep_copy(base);
            static const char *const plain[] = {"dataElement", "value", "categoryOptionCombo",
                                                "comment", "storedBy"};
            for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++)
                move_attr(va, plain[k], v);
            for (xmlNode *a = d->children; a; a = a->next)
                if (adx_is(a, "annotation")) {
                    xmlChar *text = xmlNodeGetContent(a);
                    /* DHIS2 reads <annotation> as the value of a text data
                     * element and ignores it for numeric ones; it is never a
                     * comment (dhis2-core AdxDataService). */
                    if (text)
                        json_object_set_new(v, "_adxAnnotation", json_string((const char *)text));
                    xmlFree(text);
                }
            if (json_object_size(va))
                json_object_set(v, "_adxCategories", va);
            json_decref(va);
            json_array_append_new(values, v);
        }
        json_decref(ga);
        json_decref(base);
    }
    xmlFreeDoc(doc);
    return out;
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

static enum MHD_Result h_dvs_post(struct request *r, const char *tail, const void *arg)
{
    char type[128], err[512];
    (void)tail;
    (void)arg;
    if (qarg_true(r, "async"))
        return reply_error(r, MHD_HTTP_CONFLICT,
                           "Asynchronous import (async=true) is not supported by dhis2-sim");
    if (r->too_large)
        return reply_error(r, 413, "Request body is larger than %u bytes", SIM_MAX_BODY);
    media_type(r, type, sizeof type);
    if (strcmp(type, "application/json") == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, &jerr);
        if (!doc)
            return reply_error(r, MHD_HTTP_BAD_REQUEST, "Invalid JSON payload: line %d: %s",
                               jerr.line, jerr.text);
        if (!json_is_object(doc)) {
            json_decref(doc);
            return reply_error(r, MHD_HTTP_BAD_REQUEST,
                               "Invalid JSON payload: a dataValueSet must be an object");
        }
        return run_import(r, doc, doc, false);
    }
    if (strcmp(type, "application/adx+xml") == 0) {
        json_t *doc = adx_to_dvs(r->body ? r->body : "", r->len, err, sizeof err);
        if (!doc)
            return reply_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
        return run_import(r, doc, json_object_get(doc, "_adxOptions"), true);
    }
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
    json_object_set_new(j, "followup", json_false());
    return j;
}

/* Stored values sorted by key, as borrowed pointers. Caller holds store.mu, frees the array. */
static struct sv **store_sorted(size_t *n)
{
    struct sv **all = calloc(store.n ? store.n : 1, sizeof *all);
    *n = 0;
    if (!all)
        return NULL;
    for (size_t i = 0; i < store.cap; i++)
        if (store.slots[i])
            all[(*n)++] = store.slots[i];
    qsort(all, *n, sizeof *all, sv_cmp);
    return all;
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

/* 1 when the object passes "property:operator:value", 0 when not, -1 when unsupported. */
static int filter_match(const struct md_obj *o, const char *filter)
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
            int m = filter_match(&mr->set->v[i], json_string_value(f));
            if (m < 0) {
                enum MHD_Result ret = reply_error(r, MHD_HTTP_BAD_REQUEST,
                                                  "Unsupported filter: `%s` (dhis2-sim supports "
                                                  "id|code|name with eq, !eq, in, !in, like, "
                                                  "ilike, null, !null)",
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
    const char *fixture = jstr(info, "version");
    size_t vl = strlen(opt.version);
    /* --version wins; the fixture's patch level is kept when it is the same release. */
    if (fixture && strncmp(fixture, opt.version, vl) == 0 &&
        (fixture[vl] == '\0' || fixture[vl] == '.'))
        snprintf(version, sizeof version, "%s", fixture);
    else
        snprintf(version, sizeof version, "%s.0", opt.version);
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

static enum MHD_Result h_admin_stats(struct request *r, const char *tail, const void *arg)
{
    (void)tail;
    (void)arg;
    pthread_mutex_lock(&store.mu);
    size_t n = store.n;
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
 * /api/37/x -> /api/x, remembering that the client pinned version 37 (< 38
 * answers imports with the bare summary); /api/x.json -> /api/x.
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
    r->pre238 = opt.minor < 38 || (pinned > 0 && pinned < 38);
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
               "[--version 2.40|2.37] [--quiet]\n"
               "  --port 0 picks a free port; the chosen one is printed in the line\n"
               "  \"dhis2-sim listening on ADDRESS:PORT\" once the server is ready.\n");
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
        case 'v': {
            long major = strtol(optarg, &end, 10);
            long minor = *end == '.' ? strtol(end + 1, &end, 10) : -1;
            if (major != 2 || minor < 20 || minor > 99 || (*end && *end != '.')) {
                fprintf(stderr, "dhis2-sim: invalid version \"%s\" (expected 2.NN, e.g. 2.40)\n",
                        optarg);
                return false;
            }
            opt.minor = (int)minor;
            opt.version = optarg;
            break;
        }
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
    static char version_buf[16];
    if (!parse_args(argc, argv))
        return 2;
    /* "2.40.4" -> "2.40": the release the wire format depends on. */
    snprintf(version_buf, sizeof version_buf, "2.%d", opt.minor);
    opt.version = version_buf;

    if (!md_load(opt.metadata_path)) {
        md_free();
        return 2;
    }
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
    pthread_mutex_unlock(&store.mu);
    md_free();
    xmlCleanupParser();
    return 0;
}
