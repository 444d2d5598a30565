/*
 * cron.c - cron schedules (see hibus/cron.h): the parser of the five fields and
 * the search for the next minute a schedule fires.
 *
 * A field becomes a bit set (bit v: value v allowed). The search walks forward
 * from the minute after `after`, skipping a whole month, day or hour at a time
 * when that unit cannot match, so a schedule is found in at most a few thousand
 * steps a year; timegm() normalises the broken-down time after each skip, which
 * is what makes month ends and leap years come out right without tables.
 */
#include "hibus/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fields in the order written. */
enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F_COUNT };

struct field_spec {
    const char *name;
    int min, max;             /* day-of-week accepts 7 as well (Sunday), folded to 0 */
    const char *const *names; /* names for values min.., or NULL */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct field_spec fields[F_COUNT] = {
    [F_MINUTE] = {"minute", 0, 59, NULL},        [F_HOUR] = {"hour", 0, 23, NULL},
    [F_MDAY] = {"day-of-month", 1, 31, NULL},    [F_MONTH] = {"month", 1, 12, month_names},
    [F_WDAY] = {"day-of-week", 0, 7, day_names},
};

/* A value: a decimal number or (where the field has them) a three-letter name.
 * Returns false when s[0..len) is neither; range is checked by the caller. */
static bool parse_value(const struct field_spec *f, const char *s, size_t len, int *out)
{
    if (len == 0)
        return false;
    if (isdigit((unsigned char)s[0])) {
        int v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i]) || v > 1000)
                return false;
            v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return true;
    }
    for (int i = 0; f->names != NULL && f->names[i] != NULL; i++) {
        if (len == 3 && strncasecmp(s, f->names[i], 3) == 0) {
            *out = f->min + i;
            return true;
        }
    }
    return false;
}

enum item_problem { P_VALUE, P_RANGE, P_BACKWARDS, P_STEP };

/* Writes "<field>: <what is wrong with item>" into msg; always false. */
static bool fail(char *msg, size_t size, const struct field_spec *f, enum item_problem p,
                 const char *item, size_t item_len)
{
    int n = (int)item_len;
    switch (p) {
    case P_VALUE:
        snprintf(msg, size, "%s: invalid value \"%.*s\" (expected a number %d-%d%s)", f->name, n,
                 item, f->min, f->max, f->names ? " or a name" : "");
        break;
    case P_RANGE:
        snprintf(msg, size, "%s: \"%.*s\" is out of range (%d-%d)", f->name, n, item, f->min,
                 f->max);
        break;
    case P_BACKWARDS:
        snprintf(msg, size, "%s: range \"%.*s\" goes backwards (write the smaller first; %d-%d)",
                 f->name, n, item, f->min, f->max);
        break;
    case P_STEP:
        snprintf(msg, size,
                 "%s: invalid step in \"%.*s\" (a step is a whole number from 1 to the largest "
                 "value of the field's range %d-%d)",
                 f->name, n, item, f->min, f->max);
        break;
    }
    return false;
}

/* One item of a list: "*", "v", "a-b", each optionally "/step". */
static bool parse_item(const struct field_spec *f, const char *s, size_t len, uint64_t *bits,
                       char *msg, size_t size)
{
    const char *slash = memchr(s, '/', len);
    size_t base_len = slash ? (size_t)(slash - s) : len;
    int lo, hi, step = 1;
    if (base_len == 1 && s[0] == '*') {
        lo = f->min;
        hi = f->max;
    } else {
        const char *dash = memchr(s, '-', base_len);
        size_t a_len = dash ? (size_t)(dash - s) : base_len;
        if (!parse_value(f, s, a_len, &lo))
            return fail(msg, size, f, P_VALUE, s, a_len);
        if (dash != NULL) {
            size_t b_len = base_len - a_len - 1;
            if (!parse_value(f, dash + 1, b_len, &hi))
                return fail(msg, size, f, P_VALUE, dash + 1, b_len);
        } else {
            hi = slash ? f->max : lo; /* "a/n": from a to the end of the field */
        }
        if (lo < f->min || lo > f->max || hi < f->min || hi > f->max)
            return fail(msg, size, f, P_RANGE, s, base_len);
        if (lo > hi)
            return fail(msg, size, f, P_BACKWARDS, s, base_len);
    }
    if (slash != NULL) {
        size_t st_len = len - base_len - 1;
        if (!parse_value(&fields[F_MINUTE], slash + 1, st_len, &step) || step < 1 || step > f->max)
            return fail(msg, size, f, P_STEP, s, len);
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << (v == 7 && f == &fields[F_WDAY] ? 0 : v);
    return true;
}

static bool parse_field(const struct field_spec *f, const char *s, size_t len, uint64_t *bits,
                        char *msg, size_t size)
{
    *bits = 0;
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t n = comma ? (size_t)(comma - (s + i)) : len - i;
        if (n == 0) {
            snprintf(msg, size, "%s: empty item in \"%.*s\"", f->name, (int)len, s);
            return false;
        }
        if (!parse_item(f, s + i, n, bits, msg, size))
            return false;
        if (comma == NULL)
            return true;
        i += n + 1;
    }
}

static const struct {
    const char *name, *expr;
} shorthands[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

bool cron_parse(const char *expr, struct cron *out, char *msg, size_t size)
{
    if (strlen(expr) > CRON_MAX_TEXT) {
        snprintf(msg, size, "the expression is too long (at most %d characters)", CRON_MAX_TEXT);
        return false;
    }
    while (isspace((unsigned char)*expr))
        expr++;
    if (expr[0] == '@') {
        size_t n = strcspn(expr, " \t");
        const char *rest = expr + n + strspn(expr + n, " \t");
        for (size_t i = 0; i < sizeof shorthands / sizeof shorthands[0]; i++)
            if (*rest == '\0' && strlen(shorthands[i].name) == n &&
                strncasecmp(expr, shorthands[i].name, n) == 0)
                return cron_parse(shorthands[i].expr, out, msg, size);
        snprintf(msg, size,
                 "unknown shorthand \"%s\" (expected @yearly, @annually, @monthly, @weekly, "
                 "@daily, @midnight or @hourly)",
                 expr);
        return false;
    }
    const char *start[F_COUNT + 1];
    size_t len[F_COUNT + 1];
    int n = 0;
    for (const char *p = expr; *p != '\0';) {
        size_t l = strcspn(p, " \t");
        if (n <= F_COUNT) {
            start[n] = p;
            len[n] = l;
        }
        n++;
        p += l;
        p += strspn(p, " \t");
    }
    if (n != F_COUNT) {
        snprintf(msg, size,
                 "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);
        return false;
    }
    uint64_t bits[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        if (!parse_field(&fields[i], start[i], len[i], &bits[i], msg, size))
            return false;
    struct cron c = {
        .minutes = bits[F_MINUTE],
        .hours = (uint32_t)bits[F_HOUR],
        .mdays = (uint32_t)bits[F_MDAY],
        .months = (uint16_t)bits[F_MONTH],
        .wdays = (uint8_t)bits[F_WDAY],
        .mday_star = start[F_MDAY][0] == '*',
        .wday_star = start[F_WDAY][0] == '*',
    };
    /* 2000-01-01: a leap year ahead, so February 29 is found within the window */
    if (cron_next(&c, 946684800) < 0) {
        snprintf(msg, size,
                 "the schedule never fires: no month given has the day-of-month given (like "
                 "February 30)");
        return false;
    }
    *out = c;
    return true;
}

static bool day_matches(const struct cron *c, const struct tm *tm)
{
    bool md = (c->mdays >> tm->tm_mday) & 1, wd = (c->wdays >> tm->tm_wday) & 1;
    if (c->mday_star || c->wday_star)
        return md && wd;
    return md || wd;
}

int64_t cron_next(const struct cron *c, int64_t after)
{
    int64_t t = after - ((after % 60) + 60) % 60 + 60;
    const int64_t limit = after + 10LL * 366 * 86400;
    while (t <= limit) {
        time_t tt = (time_t)t;
        struct tm tm;
        if (gmtime_r(&tt, &tm) == NULL)
            return -1;
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!((c->hours >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!((c->minutes >> tm.tm_min) & 1)) {
            tm.tm_min++;
        } else {
            return t;
        }
        tm.tm_sec = 0;
        t = (int64_t)timegm(&tm);
    }
    return -1;
}
