/*
 * metrics.c - the process's counters and histograms, and their exposition in
 * Prometheus's text format (version 0.0.4) for GET /metrics (see hibus/metrics.h).
 *
 * Entry points: metrics_request, metrics_transaction, metrics_attempt,
 * metrics_dhis2_import, metrics_reload; metrics_render; metrics_reset.
 *
 * One registry: a family per metric (its name, help, type and label names, in a
 * table below) and a series per set of label values, found by hashing. One
 * mutex guards it; an update is a hash, a short probe and an add (at 6,000
 * requests a second, a few tens of thousands of lock/unlock pairs: nothing next
 * to a request's 250 µs). Series are never dropped: a channel removed by a reload
 * keeps its counters until the process ends, as Prometheus expects of a counter.
 */
#include "hibus/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hibus/alloc.h"

enum family_type { COUNTER, GAUGE, HISTOGRAM };

enum family {
    F_REQUESTS,
    F_REQUEST_SECONDS,
    F_TRANSACTIONS,
    F_ATTEMPTS,
    F_ATTEMPT_SECONDS,
    F_DHIS2_VALUES,
    F_DHIS2_CONFLICTS,
    F_RELOADS,
    F_COUNT
};

#define MAX_LABELS 3

static const struct {
    const char *name;
    enum family_type type;
    const char *help;
    const char *labels[MAX_LABELS + 1];
} families[F_COUNT] = {
    [F_REQUESTS] = {"hibus_http_requests_total",
                    COUNTER,
                    "HTTP requests answered, by channel (empty: none matched) and status code.",
                    {"channel", "code", NULL}},
    [F_REQUEST_SECONDS] = {"hibus_http_request_duration_seconds",
                           HISTOGRAM,
                           "Time from a request's first byte to its answer.",
                           {"channel", NULL}},
    [F_TRANSACTIONS] = {"hibus_transactions_total",
                        COUNTER,
                        "Transactions this process queued or ended, by channel and status.",
                        {"channel", "status", NULL}},
    [F_ATTEMPTS] = {"hibus_delivery_attempts_total",
                    COUNTER,
                    "Delivery attempts, by channel, route and outcome.",
                    {"channel", "route", "outcome", NULL}},
    [F_ATTEMPT_SECONDS] = {"hibus_delivery_duration_seconds",
                           HISTOGRAM,
                           "Time one delivery attempt took, until the target's answer.",
                           {"channel", "route", NULL}},
    [F_DHIS2_VALUES] = {"hibus_dhis2_import_values_total",
                        COUNTER,
                        "Data values DHIS2's import summaries counted, by channel and result "
                        "(imported, updated, ignored, deleted).",
                        {"channel", "result", NULL}},
    [F_DHIS2_CONFLICTS] = {"hibus_dhis2_import_conflicts_total",
                           COUNTER,
                           "Conflicts listed in DHIS2's import summaries, by channel.",
                           {"channel", NULL}},
    [F_RELOADS] = {"hibus_config_reloads_total",
                   COUNTER,
                   "Configuration reloads (SIGHUP), by result (applied, refused).",
                   {"result", NULL}},
};

/* Upper bounds in seconds: requests and deliveries run from a millisecond to a
 * DHIS2 import of minutes. */
static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                1,     2.5,  5,     10,   30,  60,   300};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

struct series {
    enum family fam;
    char *labels[MAX_LABELS]; /* values, in the family's label order */
    uint64_t hash;
    double value;             /* counter; histogram: the sum */
    unsigned long long count; /* histogram */
    unsigned long long buckets[N_BOUNDS];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct series **table; /* open addressing, cap a power of two */
static size_t cap, used;
static struct series **order; /* in creation order, for the exposition */
static size_t n_order, cap_order;
static struct {
    bool any, last_ok;
    double last_time;
} reloads;

static uint64_t hash_of(enum family fam, const char *const *labels)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)fam;
    for (int i = 0; i < MAX_LABELS && families[fam].labels[i]; i++) {
        for (const unsigned char *p = (const unsigned char *)labels[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separates ("ab","c") from ("a","bc") */
    }
    return h;
}

static bool same(const struct series *s, enum family fam, const char *const *labels)
{
    if (s->fam != fam)
        return false;
    for (int i = 0; i < MAX_LABELS && families[fam].labels[i]; i++)
        if (strcmp(s->labels[i], labels[i]) != 0)
            return false;
    return true;
}

static void grow(void)
{
    size_t ncap = cap ? cap * 2 : 64;
    struct series **nt = hibus_xcalloc(ncap, sizeof *nt);
    for (size_t i = 0; i < cap; i++) {
        if (table[i] == NULL)
            continue;
        size_t k = table[i]->hash & (ncap - 1);
        while (nt[k] != NULL)
            k = (k + 1) & (ncap - 1);
        nt[k] = table[i];
    }
    free(table);
    table = nt;
    cap = ncap;
}

/* The series of fam with these label values, made when new; mu held. */
static struct series *series_of(enum family fam, const char *const *labels)
{
    uint64_t h = hash_of(fam, labels);
    if (cap != 0) {
        for (size_t k = h & (cap - 1); table[k] != NULL; k = (k + 1) & (cap - 1))
            if (table[k]->hash == h && same(table[k], fam, labels))
                return table[k];
    }
    if ((used + 1) * 4 > cap * 3)
        grow();
    struct series *s = hibus_xcalloc(1, sizeof *s);
    s->fam = fam;
    s->hash = h;
    for (int i = 0; i < MAX_LABELS && families[fam].labels[i]; i++)
        s->labels[i] = hibus_xstrdup(labels[i]);
    size_t k = h & (cap - 1);
    while (table[k] != NULL)
        k = (k + 1) & (cap - 1);
    table[k] = s;
    used++;
    if (n_order == cap_order) {
        cap_order = cap_order ? cap_order * 2 : 64;
        order = hibus_xreallocarray(order, cap_order, sizeof *order);
    }
    order[n_order++] = s;
    return s;
}

static void add(enum family fam, const char *const *labels, double v)
{
    pthread_mutex_lock(&mu);
    series_of(fam, labels)->value += v;
    pthread_mutex_unlock(&mu);
}

static void observe(enum family fam, const char *const *labels, double seconds)
{
    if (!(seconds >= 0)) /* NaN or a clock gone backwards */
        seconds = 0;
    pthread_mutex_lock(&mu);
    struct series *s = series_of(fam, labels);
    s->value += seconds;
    s->count++;
    for (size_t i = 0; i < N_BOUNDS; i++)
        if (seconds <= bounds[i])
            s->buckets[i]++;
    pthread_mutex_unlock(&mu);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

void metrics_request(const char *channel, unsigned code, double seconds)
{
    char c[8];
    snprintf(c, sizeof c, "%u", code);
    const char *l1[] = {or_empty(channel), c};
    add(F_REQUESTS, l1, 1);
    const char *l2[] = {or_empty(channel)};
    observe(F_REQUEST_SECONDS, l2, seconds);
}

void metrics_transaction(const char *channel, const char *status)
{
    const char *l[] = {or_empty(channel), or_empty(status)};
    add(F_TRANSACTIONS, l, 1);
}

void metrics_attempt(const char *channel, const char *route, const char *outcome, double seconds)
{
    const char *l1[] = {or_empty(channel), or_empty(route), or_empty(outcome)};
    add(F_ATTEMPTS, l1, 1);
    const char *l2[] = {or_empty(channel), or_empty(route)};
    observe(F_ATTEMPT_SECONDS, l2, seconds);
}

void metrics_dhis2_import(const char *channel, long long imported, long long updated,
                          long long ignored, long long deleted, long long conflicts)
{
    static const char *const results[] = {"imported", "updated", "ignored", "deleted"};
    const long long v[] = {imported, updated, ignored, deleted};
    for (size_t i = 0; i < 4; i++) {
        const char *l[] = {or_empty(channel), results[i]};
        add(F_DHIS2_VALUES, l, (double)(v[i] > 0 ? v[i] : 0));
    }
    const char *l[] = {or_empty(channel)};
    add(F_DHIS2_CONFLICTS, l, (double)(conflicts > 0 ? conflicts : 0));
}

void metrics_reload(bool ok)
{
    const char *l[] = {ok ? "applied" : "refused"};
    add(F_RELOADS, l, 1);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    pthread_mutex_lock(&mu);
    reloads.any = true;
    reloads.last_ok = ok;
    reloads.last_time = (double)t.tv_sec + (double)t.tv_nsec / 1e9;
    pthread_mutex_unlock(&mu);
}

bool metrics_last_reload(bool *ok, double *at)
{
    pthread_mutex_lock(&mu);
    bool any = reloads.any;
    *ok = reloads.last_ok;
    *at = reloads.last_time;
    pthread_mutex_unlock(&mu);
    return any;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_order; i++) {
        for (int k = 0; k < MAX_LABELS; k++)
            free(order[i]->labels[k]);
        free(order[i]);
    }
    free(order);
    free(table);
    order = NULL;
    table = NULL;
    n_order = cap_order = cap = used = 0;
    memset(&reloads, 0, sizeof reloads);
    pthread_mutex_unlock(&mu);
}

/* ---------------------------------------------------------------- exposition */

static void put(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A label value, escaped as the text format asks: backslash, double quote, newline. */
static void put_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(b, "\\\\");
        else if (*s == '"')
            put(b, "\\\"");
        else if (*s == '\n')
            put(b, "\\n");
        else
            buf_append(b, s, 1);
    }
}

/* {a="x",b="y"} plus, when extra_name is set, one more label. */
static void put_labels(struct buf *b, enum family fam, char *const *values, const char *extra_name,
                       const char *extra_value)
{
    bool any = false;
    for (int i = 0; i < MAX_LABELS && families[fam].labels[i]; i++) {
        put(b, any ? "," : "{");
        any = true;
        putf(b, "%s=\"", families[fam].labels[i]);
        put_value(b, values[i]);
        put(b, "\"");
    }
    if (extra_name) {
        put(b, any ? "," : "{");
        any = true;
        putf(b, "%s=\"%s\"", extra_name, extra_value);
    }
    if (any)
        put(b, "}");
}

/* A number as Prometheus reads it: integers without a point, the rest with %.17g. */
static void put_number(struct buf *b, double v)
{
    if (v == (double)(long long)v && v < 9e15 && v > -9e15)
        putf(b, " %lld\n", (long long)v);
    else
        putf(b, " %.17g\n", v);
}

static void put_head(struct buf *b, const char *name, const char *type, const char *help)
{
    putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_families(struct buf *b)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    for (int f = 0; f < F_COUNT; f++) {
        put_head(b, families[f].name, types[families[f].type], families[f].help);
        for (size_t i = 0; i < n_order; i++) {
            const struct series *s = order[i];
            if (s->fam != (enum family)f)
                continue;
            if (families[f].type != HISTOGRAM) {
                put(b, families[f].name);
                put_labels(b, s->fam, s->labels, NULL, NULL);
                put_number(b, s->value);
                continue;
            }
            for (size_t k = 0; k <= N_BOUNDS; k++) {
                char le[32];
                if (k < N_BOUNDS)
                    snprintf(le, sizeof le, "%g", bounds[k]);
                else
                    snprintf(le, sizeof le, "+Inf");
                putf(b, "%s_bucket", families[f].name);
                put_labels(b, s->fam, s->labels, "le", le);
                put_number(b, (double)(k < N_BOUNDS ? s->buckets[k] : s->count));
            }
            putf(b, "%s_sum", families[f].name);
            put_labels(b, s->fam, s->labels, NULL, NULL);
            put_number(b, s->value);
            putf(b, "%s_count", families[f].name);
            put_labels(b, s->fam, s->labels, NULL, NULL);
            put_number(b, (double)s->count);
        }
    }
}

/* When this process started, since the Unix epoch: /proc/self/stat's starttime
 * (field 22, clock ticks since boot) plus the time of boot. */
static double process_start;

static void read_process_start(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char line[1024];
    if (f != NULL && fgets(line, sizeof line, f) != NULL) {
        const char *p = strrchr(line, ')');
        unsigned long long ticks = 0;
        /* fields from 3 on follow the ')' */
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                        "%*d %*d %*d %*d %llu",
                        &ticks) == 1) {
            struct timespec now, up;
            clock_gettime(CLOCK_REALTIME, &now);
            clock_gettime(CLOCK_BOOTTIME, &up);
            double boot = (double)now.tv_sec - (double)up.tv_sec +
                          ((double)now.tv_nsec - (double)up.tv_nsec) / 1e9;
            process_start = boot + (double)ticks / (double)sysconf(_SC_CLK_TCK);
        }
    }
    if (f)
        fclose(f);
}

static void render_process(struct buf *b)
{
    put_head(b, "hibus_build_info", "gauge", "The running hibus's version; always 1.");
    putf(b, "hibus_build_info{version=\"%s\"} 1\n", HIBUS_VERSION);

    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_process_start); /* scrapes may run at once */
    put_head(b, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, in seconds.");
    putf(b, "process_start_time_seconds %.3f\n", process_start);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    put_head(b, "process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
    putf(b, "process_cpu_seconds_total %.6f\n",
         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%*s %ld", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    put_head(b, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
    putf(b, "process_resident_memory_bytes %lld\n", (long long)pages * sysconf(_SC_PAGESIZE));
}

/* Polling channels (docs/polling.md), as poll_state holds them: shared by every
 * hibus on the database, like the queue. Nothing when none has run. */
static void render_polls(struct buf *b, struct txlog *tl)
{
    json_t *states = NULL;
    struct hibus_error err = {0};
    if (txlog_poll_states(tl, &states, &err) != HIBUS_OK || json_array_size(states) == 0) {
        json_decref(states);
        return;
    }
    static const struct {
        const char *name, *type, *help, *field;
    } fams[] = {
        {"hibus_poll_runs_total", "counter", "Pulls of a polling channel (slots claimed).", "runs"},
        {"hibus_poll_failures_total", "counter", "Pulls of a polling channel that failed.",
         "failures"},
        {"hibus_poll_last_items", "gauge", "Items the last successful pull stored.", "last_items"},
        {"hibus_poll_failing", "gauge",
         "1 when the last pull of a polling channel failed (its last_error is set), else 0.",
         "last_error"},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        put_head(b, fams[f].name, fams[f].type, fams[f].help);
        size_t i;
        json_t *st;
        json_array_foreach(states, i, st)
        {
            json_t *v = json_object_get(st, fams[f].field);
            putf(b, "%s{channel=\"", fams[f].name);
            put_value(b, json_string_value(json_object_get(st, "channel")));
            put(b, "\"}");
            put_number(b, json_is_string(v)    ? 1
                          : json_is_integer(v) ? (double)json_integer_value(v)
                                               : 0);
        }
    }
    json_decref(states);
}

static void render_database(struct buf *b, struct txlog *tl)
{
    json_t *queue = NULL;
    struct hibus_error err = {0};
    bool up = tl != NULL && txlog_queue_depth(tl, &queue, &err) == HIBUS_OK;
    put_head(b, "hibus_database_up", "gauge",
             "1 when this scrape could read the transaction log, else 0.");
    putf(b, "hibus_database_up %d\n", up ? 1 : 0);
    if (up) {
        put_head(b, "hibus_queue_transactions", "gauge",
                 "Transactions waiting for delivery (queued) or being delivered (processing), "
                 "by channel, across every hibus on the database.");
        size_t i;
        json_t *q;
        json_array_foreach(queue, i, q)
        {
            char *const l[] = {(char *)json_string_value(json_object_get(q, "channel"))};
            static const char *const st[] = {"queued", "processing"};
            for (int k = 0; k < 2; k++) {
                put(b, "hibus_queue_transactions{channel=\"");
                put_value(b, l[0]);
                putf(b, "\",status=\"%s\"}", st[k]);
                put_number(b, json_number_value(json_object_get(q, st[k])));
            }
        }
        put_head(b, "hibus_queue_oldest_age_seconds", "gauge",
                 "Age of the oldest queued transaction, by channel (0: none queued).");
        json_array_foreach(queue, i, q)
        {
            put(b, "hibus_queue_oldest_age_seconds{channel=\"");
            put_value(b, json_string_value(json_object_get(q, "channel")));
            put(b, "\"}");
            put_number(b, json_number_value(json_object_get(q, "oldest_queued_seconds")));
        }
    }
    json_decref(queue);
    if (up)
        render_polls(b, tl);
    if (tl == NULL)
        return;
    struct txlog_pool_stats ps;
    txlog_pool_stats(tl, &ps);
    put_head(b, "hibus_db_pool_connections", "gauge",
             "Database connections of this process's pool: its size (max) and those in use "
             "(busy).");
    putf(b, "hibus_db_pool_connections{state=\"max\"} %d\n", ps.size);
    putf(b, "hibus_db_pool_connections{state=\"busy\"} %d\n", ps.busy);
    put_head(b, "hibus_db_pool_waiting", "gauge", "Calls waiting now for a free connection.");
    putf(b, "hibus_db_pool_waiting %d\n", ps.waiting);
    put_head(b, "hibus_db_pool_waits_total", "counter",
             "Calls that found no free connection and waited.");
    putf(b, "hibus_db_pool_waits_total %llu\n", ps.waits);
    put_head(b, "hibus_db_pool_wait_timeouts_total", "counter",
             "Waits that ended without a connection (the call failed).");
    putf(b, "hibus_db_pool_wait_timeouts_total %llu\n", ps.wait_timeouts);
    put_head(b, "hibus_db_pool_wait_seconds_total", "counter",
             "Time spent waiting for a connection, in seconds.");
    putf(b, "hibus_db_pool_wait_seconds_total %.6f\n", ps.wait_seconds);
}

void metrics_render(struct buf *b, struct txlog *tl)
{
    render_process(b);
    pthread_mutex_lock(&mu);
    render_families(b);
    put_head(b, "hibus_config_last_reload_successful", "gauge",
             "1 when the last reload was applied (or none was asked), 0 when refused.");
    putf(b, "hibus_config_last_reload_successful %d\n", !reloads.any || reloads.last_ok);
    put_head(b, "hibus_config_last_reload_timestamp_seconds", "gauge",
             "When the last reload was asked, since the Unix epoch (0: never).");
    putf(b, "hibus_config_last_reload_timestamp_seconds %.3f\n", reloads.last_time);
    pthread_mutex_unlock(&mu);
    render_database(b, tl);
}
