/*
 * admin.c - the admin listener (see hibus/admin.h and docs/admin-api.md).
 *
 * Routes (JSON unless said):
 *   GET  /, /console.js, /console.css     the console (src/console/, compiled in)
 *   GET  /metrics                         Prometheus text; admin.metrics: public
 *                                         answers without a login
 *   GET  /api/me                          the signed-in user and role
 *   GET  /api/events                      server-sent events: each transaction as it
 *                                         is received and as its status changes
 *   GET  /api/channels/hours?hours=N      per channel and hour: received, failed
 *   GET  /api/status                      version, node, start, reloads, database
 *   GET  /api/channels                    each channel, its queue and its last hour
 *   GET  /api/transactions?FILTERS        search (hibus ls), newest first, paged
 *   GET  /api/transactions/ID             one transaction and its attempts; bodies
 *                                         only for operator and admin
 *   POST /api/transactions/ID/rerun       operator: re-queue it
 *   POST /api/rerun {filters, rate}       operator: re-queue what matches
 *   GET  /api/unmapped?days=N             codes payloads sent that no mapping maps
 *   GET  /api/drift                       operator: the mappings against DHIS2 (as
 *                                         hibus check --remote: asks each DHIS2)
 *   POST /api/reload                      admin: reload the configuration (SIGHUP)
 *
 * Every answer but /metrics's is JSON; every error is {"error", "code",
 * "details"}. Each request authenticates with HTTP Basic against admin.users
 * (read from the snapshot it arrived with, so a reload adds or removes users),
 * behind the same failed-login guard as the main listener.
 */
#define LOG_SUBSYS "admin"
#include "hibus/admin.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hibus/alloc.h"
#include "hibus/auth.h"
#include "hibus/buf.h"
#include "hibus/clock.h"
#include "hibus/dhis2.h"
#include "hibus/log.h"
#include "hibus/metrics.h"
#include "hibus/tls.h"
#include "listener_internal.h"

#define ADMIN_MAX_BODY (64 * 1024)
#define ADMIN_MAX_STREAMS 8      /* /api/events at once: each holds a database session */
#define ADMIN_KEEPALIVE_MS 15000 /* an idle event stream gets a comment this often */
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_RERUN_RATE 20.0 /* a second, as hibus rerun */

struct admin {
    struct admin_deps deps;
    struct MHD_Daemon *mhd;
    int port;
    time_t started;
    struct auth_cache *auth;
    struct auth_guard *guard;
    atomic_int streams;   /* open /api/events */
    atomic_bool stopping; /* ends the event streams */
    char *db_url;         /* for the event streams' own sessions */
    long connect_timeout_ms;
};

/* The console's files (generated from src/console/ by scripts/embed-console.cmake). */
struct admin_asset {
    const char *path, *type, *body;
    size_t len;
};
extern const struct admin_asset admin_assets[];
extern const size_t admin_n_assets;

struct admin_request {
    struct buf body;
    bool too_large;
};

/* ---------------------------------------------------------------- answers */

/* The console runs only its own script and style, in no frame of another site. */
static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                            "base-uri 'none'; form-action 'self'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *text, size_t len, const char *const *extra)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    add_security_headers(r);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2)
        MHD_add_response_header(r, extra[i], extra[i + 1]);
    enum MHD_Result ret = listener_queue_ours(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *doc,
                                 const char *const *extra)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(doc);
    if (text == NULL)
        return MHD_NO;
    enum MHD_Result ret = send_text(c, status, "application/json", text, strlen(text), extra);
    free(text);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, enum hibus_err code,
                                  const char *msg, const char *detail, const char *const *extra)
{
    json_t *details = json_array();
    if (detail != NULL && detail[0])
        json_array_append_new(details, json_string(detail));
    return send_json(
        c, status,
        json_pack("{s:s, s:s, s:o}", "error", msg, "code", hibus_errname(code), "details", details),
        extra);
}

static enum MHD_Result send_hibus_error(struct MHD_Connection *c, const struct hibus_error *err)
{
    char detail[800];
    snprintf(detail, sizeof detail, "%s%s%s", err->detail,
             err->detail[0] && err->hint[0] ? " " : "", err->hint);
    return send_error(c, hibus_http_status(err->code), err->code, err->msg, detail, NULL);
}

/* ------------------------------------------------------------------ login */

/* The admin user of the request, or NULL after answering 401 or 429. */
static const struct config_client *login(struct admin *a, struct MHD_Connection *c,
                                         const struct config *cfg, enum MHD_Result *ret)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = ci ? ci->client_addr : NULL;
    long now = clock_ms();
    long wait = addr ? auth_guard_wait_ms(a->guard, addr, now) : 0;
    if (wait > 0) {
        char secs[32];
        snprintf(secs, sizeof secs, "%ld", (wait + 999) / 1000);
        const char *extra[] = {"Retry-After", secs, NULL};
        *ret = send_error(c, 429, HIBUS_E_TOO_MANY, "too many failed logins from this address",
                          "Wait before trying again.", extra);
        return NULL;
    }
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const struct config_client *user = NULL;
    enum auth_result r = auth_basic_in(cfg->admin_users, cfg->n_admin_users, a->auth, h, &user);
    if (r == AUTH_OK) {
        if (addr)
            auth_guard_succeeded(a->guard, addr);
        return user;
    }
    if (r != AUTH_MISSING && addr)
        auth_guard_failed(a->guard, addr, cfg->login_failures, now);
    static const char *const challenge[] = {"WWW-Authenticate",
                                            "Basic realm=\"hibus admin\", charset=\"UTF-8\"", NULL};
    *ret = send_error(c, 401, HIBUS_E_AUTH,
                      r == AUTH_MISSING ? "sign in as an admin user"
                                        : "unknown admin user, disabled, or wrong password",
                      "Admin users are in the file admin.users of hibus.yaml names.", challenge);
    return NULL;
}

static bool allowed(const struct config_client *user, enum config_admin_role need)
{
    return config_admin_role_of(user) >= need;
}

static enum MHD_Result forbidden(struct MHD_Connection *c, const struct config_client *user,
                                 enum config_admin_role need)
{
    char msg[160], detail[160];
    snprintf(msg, sizeof msg, "admin user \"%s\" may not do this", user->id);
    snprintf(detail, sizeof detail, "It needs the role %s or higher; %s has %s.",
             config_admin_roles[need], user->id, config_admin_roles[config_admin_role_of(user)]);
    return send_error(c, 403, HIBUS_E_FORBIDDEN, msg, detail, NULL);
}

/* ---------------------------------------------------------------- handlers */

static enum MHD_Result get_metrics(struct admin *a, struct MHD_Connection *c)
{
    struct buf b = {0};
    metrics_render(&b, a->deps.tl);
    enum MHD_Result ret =
        send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.s ? b.s : "", b.len, NULL);
    buf_free(&b);
    return ret;
}

static enum MHD_Result get_status(struct admin *a, struct MHD_Connection *c,
                                  const struct config *cfg)
{
    struct hibus_error err = {0};
    bool db = txlog_ping(a->deps.tl, &err) == HIBUS_OK;
    char started[32];
    struct tm tm;
    gmtime_r(&a->started, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    bool reload_ok = true;
    double reload_at = 0;
    json_t *reload = json_null();
    if (metrics_last_reload(&reload_ok, &reload_at)) {
        char at[32];
        time_t t = (time_t)reload_at;
        gmtime_r(&t, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        reload = json_pack("{s:s, s:s}", "at", at, "result", reload_ok ? "applied" : "refused");
    }
    return send_json(c, 200,
                     json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:{s:b, s:s*}}", "version",
                               HIBUS_VERSION, "node", a->deps.node, "started_at", started, "config",
                               cfg->path, "channels", (json_int_t)cfg->n_channels,
                               "config_generation", (json_int_t)cfg->generation, "last_reload",
                               reload, "database", "up", db, "error", db ? NULL : err.msg),
                     NULL);
}

static enum MHD_Result get_channels(struct admin *a, struct MHD_Connection *c,
                                    const struct config *cfg)
{
    struct buf names = {0};
    for (size_t i = 0; i < cfg->n_channels; i++) {
        if (i)
            buf_append(&names, "\n", 1);
        buf_append(&names, cfg->channels[i].name, strlen(cfg->channels[i].name));
    }
    json_t *stats = NULL, *queue = NULL;
    struct hibus_error err = {0};
    enum hibus_err rc = txlog_channel_stats(a->deps.tl, names.s ? names.s : "", &stats, &err);
    if (rc == HIBUS_OK)
        rc = txlog_queue_depth(a->deps.tl, &queue, &err);
    buf_free(&names);
    if (rc != HIBUS_OK) {
        json_decref(stats);
        return send_hibus_error(c, &err);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        json_t *routes = json_array();
        for (size_t k = 0; k < ch->n_routes; k++)
            json_array_append_new(routes, json_string(ch->routes[k].name));
        json_t *hour = json_object_get(stats, ch->name);
        json_int_t finished = json_integer_value(json_object_get(hour, "finished"));
        json_int_t failed = json_integer_value(json_object_get(hour, "failed"));
        json_t *q = NULL;
        size_t k;
        json_t *row;
        json_array_foreach(queue, k,
                           row) if (strcmp(json_string_value(json_object_get(row, "channel")),
                                           ch->name) == 0) q = row;
        json_array_append_new(
            list,
            json_pack(
                "{s:s, s:s, s:o, s:O?, s:{s:I, s:I, s:I, s:o}, s:{s:I, s:I, s:f}}", "name",
                ch->name, "mode", ch->mode == CONFIG_MODE_ASYNC ? "async" : "sync", "routes",
                routes, "last_success", json_object_get(hour, "last_success"), "last_hour",
                "finished", finished, "failed", failed, "completed_with_errors",
                json_integer_value(json_object_get(hour, "completed_with_errors")), "failure_rate",
                finished ? json_real((double)failed / (double)finished) : json_null(), "queue",
                "queued", json_integer_value(json_object_get(q, "queued")), "processing",
                json_integer_value(json_object_get(q, "processing")), "oldest_queued_seconds",
                json_number_value(json_object_get(q, "oldest_queued_seconds"))));
    }
    json_decref(stats);
    json_decref(queue);
    return send_json(c, 200, json_pack("{s:o}", "channels", list), NULL);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    return v && v[0] ? v : NULL;
}

/* A positive integer argument: *v untouched when absent; false when malformed. */
static bool int_arg(struct MHD_Connection *c, const char *name, long long max, long long *v)
{
    const char *s = arg(c, name);
    if (s == NULL)
        return true;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || x < 1 || x > max)
        return false;
    *v = x;
    return true;
}

static enum MHD_Result get_transactions(struct admin *a, struct MHD_Connection *c,
                                        const struct config *cfg)
{
    long long limit = 50, before = 0;
    if (!int_arg(c, "limit", TXLOG_QUERY_MAX, &limit) || !int_arg(c, "before", INT64_MAX, &before))
        return send_error(c, 400, HIBUS_E_BAD_REQUEST,
                          "limit is a number from 1 to 1000, before a transaction id", NULL, NULL);
    const char *conflicts = arg(c, "conflicts");
    if (conflicts && strcmp(conflicts, "true") != 0 && strcmp(conflicts, "false") != 0)
        return send_error(c, 400, HIBUS_E_BAD_REQUEST, "conflicts is true or false", NULL, NULL);
    const char *facility = arg(c, "facility");
    char *facilities = facility ? config_facility_codes(cfg, facility) : NULL;
    struct txlog_query q = {.channel = arg(c, "channel"),
                            .client = arg(c, "client"),
                            .statuses = arg(c, "status"),
                            .since = arg(c, "since"),
                            .until = arg(c, "until"),
                            .facilities = facilities,
                            .period = arg(c, "period"),
                            .request_id = arg(c, "request_id"),
                            .conflicts = conflicts && strcmp(conflicts, "true") == 0,
                            .before = before,
                            .limit = (int)limit};
    json_t *page = NULL;
    struct hibus_error err = {0};
    enum hibus_err rc = txlog_search(a->deps.tl, &q, &page, &err);
    free(facilities);
    if (rc != HIBUS_OK)
        return send_hibus_error(c, &err);
    return send_json(c, 200, page, NULL);
}

/* Bodies are for roles that may act on them: a read-only user sees the rest. */
static void strip_bodies(json_t *tx)
{
    static const char *const keys[] = {"request_body", "request_body_base64", "response_body",
                                       "response_body_base64"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_del(tx, keys[i]);
    json_object_set_new(tx, "bodies", json_string("hidden: your role is read"));
    size_t k;
    json_t *att;
    json_array_foreach(json_object_get(tx, "attempts"), k, att)
    {
        json_object_del(att, "response_excerpt");
        json_object_del(att, "response_excerpt_base64");
    }
}

static enum MHD_Result get_transaction(struct admin *a, struct MHD_Connection *c,
                                       const struct config_client *user, int64_t id)
{
    json_t *tx = NULL;
    struct hibus_error err = {0};
    if (txlog_get_json(a->deps.tl, id, &tx, &err) != HIBUS_OK)
        return send_hibus_error(c, &err);
    config_mask_attempt_urls(tx);
    if (!allowed(user, CONFIG_ADMIN_OPERATOR))
        strip_bodies(tx);
    return send_json(c, 200, tx, NULL);
}

static enum MHD_Result get_me(struct MHD_Connection *c, const struct config_client *user)
{
    return send_json(c, 200,
                     json_pack("{s:s, s:s?, s:s}", "id", user->id, "name", user->name, "role",
                               config_admin_roles[config_admin_role_of(user)]),
                     NULL);
}

static enum MHD_Result get_hours(struct admin *a, struct MHD_Connection *c)
{
    long long hours = 24;
    if (!int_arg(c, "hours", 24 * 31, &hours))
        return send_error(c, 400, HIBUS_E_BAD_REQUEST, "hours is a number from 1 to 744", NULL,
                          NULL);
    json_t *o = NULL;
    struct hibus_error err = {0};
    if (txlog_channel_hours(a->deps.tl, (int)hours, &o, &err) != HIBUS_OK)
        return send_hibus_error(c, &err);
    return send_json(c, 200, json_pack("{s:I, s:o}", "hours", (json_int_t)hours, "channels", o),
                     NULL);
}

static const struct admin_asset *asset_of(const char *url)
{
    const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
    for (size_t i = 0; i < admin_n_assets; i++)
        if (strcmp(admin_assets[i].path, path) == 0)
            return &admin_assets[i];
    return NULL;
}

/* ------------------------------------------------------- /api/events (SSE) */

/* One event stream: a session of its own that LISTENs (txlog_follow), and the
 * bytes of events not yet handed to libmicrohttpd. Its thread (one per
 * connection) blocks in sse_read until there is something to send. */
#define BUF_LIT(b, lit) buf_append((b), (lit), sizeof(lit) - 1)

struct sse {
    struct admin *a;
    struct txlog_follower *f;
    struct buf out;
    size_t off;
    long last_ms;
    int fd; /* the client's socket, to see it close while nothing is sent */
};

/* The client closed its side (a closed tab): libmicrohttpd would only find out
 * at the next write, which may be a keep-alive 15 s away, while the stream holds
 * a database session and one of ADMIN_MAX_STREAMS. */
static bool sse_gone(const struct sse *s)
{
    if (s->fd < 0)
        return false;
    struct pollfd p = {.fd = s->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    char c;
    return (p.revents & POLLIN) && recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct sse *s = cls;
    while (s->off >= s->out.len) {
        s->off = 0;
        s->out.len = 0;
        if (atomic_load(&s->a->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (sse_gone(s))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        struct txlog_summary *v = NULL;
        size_t n = 0;
        struct hibus_error err = {0};
        if (txlog_follow_next(s->f, 1000, &v, &n, &err) != HIBUS_OK) {
            LOG_WARN(NULL, "an event stream ends: %s", err.msg);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *e =
                json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:f}", "id", (json_int_t)v[i].id, "time",
                          v[i].time, "channel", v[i].channel, "client", v[i].client, "status",
                          v[i].status, "response_status",
                          v[i].response_status ? json_integer(v[i].response_status) : json_null(),
                          "duration_ms", v[i].duration_ms);
            char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
            json_decref(e);
            if (text != NULL) {
                BUF_LIT(&s->out, "event: transaction\ndata: ");
                buf_append(&s->out, text, strlen(text));
                BUF_LIT(&s->out, "\n\n");
                free(text);
            }
        }
        free(v);
        long now = clock_ms();
        if (s->out.len == 0 && now - s->last_ms >= ADMIN_KEEPALIVE_MS)
            BUF_LIT(&s->out, ": keep-alive\n\n");
        if (s->out.len > 0)
            s->last_ms = now;
    }
    size_t k = s->out.len - s->off < max ? s->out.len - s->off : max;
    memcpy(buf, s->out.s + s->off, k);
    s->off += k;
    return (ssize_t)k;
}

static void sse_free(void *cls)
{
    struct sse *s = cls;
    txlog_follow_close(s->f);
    buf_free(&s->out);
    atomic_fetch_sub(&s->a->streams, 1);
    free(s);
}

static enum MHD_Result get_events(struct admin *a, struct MHD_Connection *c)
{
    if (atomic_fetch_add(&a->streams, 1) >= ADMIN_MAX_STREAMS) {
        atomic_fetch_sub(&a->streams, 1);
        const char *extra[] = {"Retry-After", "10", NULL};
        return send_error(c, 503, HIBUS_E_TOO_MANY, "too many event streams are open",
                          "Each holds a database session; close a console tab.", extra);
    }
    struct sse *s = hibus_xcalloc(1, sizeof *s);
    s->a = a;
    s->last_ms = clock_ms();
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    struct hibus_error err = {0};
    if (txlog_follow(a->db_url, a->connect_timeout_ms, &s->f, &err) != HIBUS_OK) {
        free(s);
        atomic_fetch_sub(&a->streams, 1);
        return send_hibus_error(c, &err);
    }
    /* a first comment, so that the client knows at once that the stream is open */
    BUF_LIT(&s->out, ": hibus events\nretry: 3000\n\n");
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
    if (r == NULL) {
        sse_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    add_security_headers(r);
    enum MHD_Result ret = listener_queue_ours(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result get_unmapped(struct admin *a, struct MHD_Connection *c)
{
    long long days = 7;
    if (!int_arg(c, "days", 400, &days))
        return send_error(c, 400, HIBUS_E_BAD_REQUEST, "days is a number from 1 to 400", NULL,
                          NULL);
    json_t *list = NULL;
    struct hibus_error err = {0};
    if (txlog_unmapped(a->deps.tl, (int)days, &list, &err) != HIBUS_OK)
        return send_hibus_error(c, &err);
    return send_json(c, 200, json_pack("{s:I, s:o}", "days", (json_int_t)days, "codes", list),
                     NULL);
}

/* The mappings against each DHIS2 they deliver to (dhis2_drift), and the codes of
 * the last 30 days' payloads that no mapping maps. It calls DHIS2 (and records the
 * org units' paths for the next look), so it is an operator's, not a reader's. */
static enum MHD_Result get_drift(struct admin *a, struct MHD_Connection *c,
                                 const struct config *cfg)
{
    json_t *drift = dhis2_drift(cfg, a->deps.tl);
    json_t *codes = NULL;
    struct hibus_error err = {0};
    if (txlog_unmapped(a->deps.tl, 30, &codes, &err) != HIBUS_OK) {
        json_decref(drift);
        return send_hibus_error(c, &err);
    }
    json_object_set_new(drift, "unmapped", codes);
    json_object_set_new(drift, "unmapped_days", json_integer(30));
    return send_json(c, 200, drift, NULL);
}

static enum MHD_Result rerun(struct admin *a, struct MHD_Connection *c,
                             const struct config_client *user, const struct txlog_rerun_filter *f)
{
    long queued = 0, superseded = 0;
    struct hibus_error err = {0};
    if (txlog_rerun(a->deps.tl, f, &queued, &superseded, &err) != HIBUS_OK)
        return send_hibus_error(c, &err);
    LOG_INFO(NULL, "admin user %s re-queued %ld transaction%s (ids %s, channel %s, status %s)",
             user->id, queued, queued == 1 ? "" : "s", f->ids_csv ? f->ids_csv : "any",
             f->channel ? f->channel : "any", f->status ? f->status : "any");
    return send_json(c, 200,
                     json_pack("{s:I, s:I, s:f}", "queued", (json_int_t)queued, "superseded",
                               (json_int_t)superseded, "rate_per_second", f->rate_per_s),
                     NULL);
}

static enum MHD_Result post_rerun_filter(struct admin *a, struct MHD_Connection *c,
                                         const struct config_client *user,
                                         const struct admin_request *rq)
{
    json_error_t jerr;
    json_t *doc =
        rq->body.len ? json_loadb(rq->body.s, rq->body.len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return send_error(c, 400, HIBUS_E_BAD_REQUEST,
                          "the body is a JSON object of filters: channel, status, since, and "
                          "rate (a second)",
                          rq->body.len ? jerr.text : "the body is empty", NULL);
    }
    json_t *problems = json_array();
    const char *fields[] = {"channel", "status", "since"};
    const char *vals[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(doc, fields[i]);
        if (v != NULL && !json_is_string(v)) {
            char m[64];
            snprintf(m, sizeof m, "%s: expected a string", fields[i]);
            json_array_append_new(problems, json_string(m));
        }
        vals[i] = json_string_value(v);
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) if (strcmp(key, "channel") != 0 &&
                                         strcmp(key, "status") != 0 && strcmp(key, "since") != 0 &&
                                         strcmp(key, "rate") != 0)
    {
        char m[128];
        snprintf(m, sizeof m, "%.64s: not a filter (channel, status, since, rate)", key);
        json_array_append_new(problems, json_string(m));
    }
    double rate = ADMIN_RERUN_RATE;
    json_t *r = json_object_get(doc, "rate");
    if (r != NULL) {
        if (!json_is_number(r) || !(json_number_value(r) > 0))
            json_array_append_new(problems, json_string("rate: expected a positive number"));
        else
            rate = json_number_value(r);
    }
    const char *bad;
    size_t bad_len;
    if (vals[1] && !txlog_status_list_valid(vals[1], &bad, &bad_len)) {
        char m[160];
        snprintf(m, sizeof m, "status: \"%.*s\" is not a transaction status", (int)bad_len, bad);
        json_array_append_new(problems, json_string(m));
    }
    if (!vals[0] && !vals[1] && !vals[2])
        json_array_append_new(problems,
                              json_string("give at least one filter: channel, status or since"));
    enum MHD_Result ret;
    if (json_array_size(problems) > 0) {
        ret = send_json(c, 422,
                        json_pack("{s:s, s:s, s:O}", "error", "the rerun's filters are not valid",
                                  "code", hibus_errname(HIBUS_E_INVALID), "details", problems),
                        NULL);
    } else {
        struct txlog_rerun_filter f = {
            .channel = vals[0], .status = vals[1], .since = vals[2], .rate_per_s = rate};
        ret = rerun(a, c, user, &f);
    }
    json_decref(problems);
    json_decref(doc);
    return ret;
}

/* "/api/transactions/123" and "/api/transactions/123/rerun": the id and what
 * follows it; false when the path is not of that shape. */
static bool transaction_path(const char *url, int64_t *id, const char **rest)
{
    static const char prefix[] = "/api/transactions/";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = url + sizeof prefix - 1;
    if (*p < '1' || *p > '9')
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno != 0 || v < 1)
        return false;
    *id = v;
    *rest = end;
    return true;
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    const char *extra[] = {"Allow", allow, NULL};
    return send_error(c, 405, HIBUS_E_INVALID, "method not allowed here", NULL, extra);
}

/* The API's routes: the method each takes and the role it needs. */
enum api {
    API_STATUS,
    API_CHANNELS,
    API_HOURS,
    API_UNMAPPED,
    API_DRIFT,
    API_ME,
    API_EVENTS,
    API_SEARCH,
    API_RERUN,
    API_RELOAD,
    API_TRANSACTION, /* /api/transactions/ID */
    API_RERUN_ONE    /* /api/transactions/ID/rerun */
};

struct api_route {
    const char *path; /* NULL: matched by transaction_path */
    enum api id;
    bool post;
    enum config_admin_role role;
};

static const struct api_route api_routes[] = {
    {"/api/status", API_STATUS, false, CONFIG_ADMIN_READ},
    {"/api/channels", API_CHANNELS, false, CONFIG_ADMIN_READ},
    {"/api/channels/hours", API_HOURS, false, CONFIG_ADMIN_READ},
    {"/api/unmapped", API_UNMAPPED, false, CONFIG_ADMIN_READ},
    {"/api/drift", API_DRIFT, false, CONFIG_ADMIN_OPERATOR},
    {"/api/me", API_ME, false, CONFIG_ADMIN_READ},
    {"/api/events", API_EVENTS, false, CONFIG_ADMIN_READ},
    {"/api/transactions", API_SEARCH, false, CONFIG_ADMIN_READ},
    {"/api/rerun", API_RERUN, true, CONFIG_ADMIN_OPERATOR},
    {"/api/reload", API_RELOAD, true, CONFIG_ADMIN_ADMIN},
    {NULL, API_TRANSACTION, false, CONFIG_ADMIN_READ},
    {NULL, API_RERUN_ONE, true, CONFIG_ADMIN_OPERATOR},
};

/* The route of url (and, for a transaction's, its id), or NULL. */
static const struct api_route *api_route_of(const char *url, int64_t *id)
{
    const char *rest = NULL;
    enum api want = API_TRANSACTION;
    if (transaction_path(url, id, &rest)) {
        if (rest[0] == '\0')
            want = API_TRANSACTION;
        else if (strcmp(rest, "/rerun") == 0)
            want = API_RERUN_ONE;
        else
            return NULL;
    }
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        const struct api_route *r = &api_routes[i];
        if (rest != NULL ? r->path == NULL && r->id == want
                         : r->path != NULL && strcmp(r->path, url) == 0)
            return r;
    }
    return NULL;
}

/* A browser that signed in here keeps sending the user's password, also with a
 * request another site's page makes (a form POSTing to /api/rerun). Browsers say
 * where a request comes from: Sec-Fetch-Site, and Origin on every POST. A POST
 * that says it comes from another site is refused; curl and scripts send
 * neither and pass. */
static bool cross_site(struct MHD_Connection *c)
{
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return true;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin == NULL)
        return false;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *sep = strstr(origin, "://");
    return host == NULL || sep == NULL || strcmp(sep + 3, host) != 0;
}

static enum MHD_Result route(struct admin *a, struct MHD_Connection *c, const struct config *cfg,
                             const char *url, const char *method, const struct admin_request *rq)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0;
    enum MHD_Result ret;
    if (post && cross_site(c))
        return send_error(c, 403, HIBUS_E_FORBIDDEN, "cross-site request refused",
                          "A page of another site may not act here with your login.", NULL);
    if (strcmp(url, "/metrics") == 0) {
        if (!get)
            return method_not_allowed(c, "GET, HEAD");
        if (cfg->admin_metrics != CONFIG_ADMIN_METRICS_PUBLIC && !login(a, c, cfg, &ret))
            return ret;
        return get_metrics(a, c);
    }
    const struct admin_asset *asset = asset_of(url);
    if (asset != NULL) {
        if (!get)
            return method_not_allowed(c, "GET, HEAD");
        if (!login(a, c, cfg, &ret))
            return ret;
        return send_text(c, 200, asset->type, asset->body, asset->len, NULL);
    }
    /* the API: which route, then who (404 before a login is asked), then the
     * method, then the role */
    int64_t id = 0;
    const struct api_route *r = api_route_of(url, &id);
    if (r == NULL)
        return send_error(c, 404, HIBUS_E_NOT_FOUND, "no such admin resource",
                          "See docs/admin-api.md for the routes.", NULL);
    const struct config_client *user = login(a, c, cfg, &ret);
    if (user == NULL)
        return ret;
    if (r->post ? !post : !get)
        return method_not_allowed(c, r->post ? "POST" : "GET, HEAD");
    if (!allowed(user, r->role))
        return forbidden(c, user, r->role);
    switch (r->id) {
    case API_STATUS: return get_status(a, c, cfg);
    case API_CHANNELS: return get_channels(a, c, cfg);
    case API_HOURS: return get_hours(a, c);
    case API_UNMAPPED: return get_unmapped(a, c);
    case API_DRIFT: return get_drift(a, c, cfg);
    case API_ME: return get_me(c, user);
    case API_EVENTS: return get_events(a, c);
    case API_SEARCH: return get_transactions(a, c, cfg);
    case API_TRANSACTION: return get_transaction(a, c, user, id);
    case API_RERUN_ONE: {
        char ids[32];
        snprintf(ids, sizeof ids, "%" PRId64, id);
        struct txlog_rerun_filter f = {.ids_csv = ids, .rate_per_s = ADMIN_RERUN_RATE};
        return rerun(a, c, user, &f);
    }
    case API_RERUN: return post_rerun_filter(a, c, user, rq);
    case API_RELOAD:
        LOG_INFO(NULL, "admin user %s asked for a reload", user->id);
        kill(getpid(), SIGHUP);
        return send_json(c, 202,
                         json_pack("{s:s, s:s}", "reload", "requested", "see",
                                   "GET /api/status (config_generation) and the log"),
                         NULL);
    }
    return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct admin *a = cls;
    struct admin_request *rq = *con_cls;
    if (rq == NULL) {
        *con_cls = hibus_xcalloc(1, sizeof *rq);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (rq->body.len + *upload_size > ADMIN_MAX_BODY)
            rq->too_large = true;
        else
            buf_append(&rq->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_large)
        return send_error(c, 413, HIBUS_E_TOO_LARGE, "the body is larger than 64 KiB", NULL, NULL);
    const struct config *cfg = config_holder_acquire(a->deps.configs);
    enum MHD_Result ret = route(a, c, cfg, url, method, rq);
    config_holder_release(a->deps.configs, cfg);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct admin_request *rq = *con_cls;
    if (rq != NULL) {
        buf_free(&rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    LOG_DEBUG(NULL, "libmicrohttpd: %s", line);
}

/* ------------------------------------------------------------------ life */

enum hibus_err admin_start(const struct admin_deps *deps, struct admin **out,
                           struct hibus_error *err)
{
    *out = NULL;
    const struct config *cfg = deps->cfg;
    if (cfg->admin_port == 0)
        return HIBUS_OK;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->admin_port);
    int gai = getaddrinfo(cfg->admin_address, port, &hints, &ai);
    if (gai != 0)
        return hibus_error_set(err, HIBUS_E_CONFIG, "could not resolve admin.address \"%s\": %s",
                               cfg->admin_address, gai_strerror(gai));
    struct admin *a = hibus_xcalloc(1, sizeof *a);
    a->deps = *deps;
    a->started = time(NULL);
    a->auth = auth_cache_new();
    a->guard = auth_guard_new();
    a->db_url = hibus_xstrdup(cfg->database_url);
    a->connect_timeout_ms = cfg->database_connect_timeout_ms;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* With listen.tls, HTTPS here too, with the same certificate (reloads included) and
     * the same protocol versions and ciphers. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)(uintptr_t)listener_tls_cert},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL}};
    if (cfg->tls != NULL)
        flags |= MHD_USE_TLS;
    a->mhd = a->guard == NULL
                 ? NULL
                 : MHD_start_daemon(flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER,
                                    on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                    MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
                                    MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_ARRAY,
                                    cfg->tls != NULL ? tls_opts : tls_opts + 2, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (a->mhd == NULL) {
        hibus_error_set(err, HIBUS_E_IO, "could not listen on admin.address %s port %d",
                        cfg->admin_address, cfg->admin_port);
        hibus_error_hint(err, "Is another process on that port? Pick another admin.port.");
        admin_stop(a);
        return HIBUS_E_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    a->port = di ? di->port : cfg->admin_port;
    LOG_INFO(NULL, "admin listener on %s port %d (%s; GET /metrics, /api/..., the console)",
             cfg->admin_address, a->port, cfg->tls != NULL ? "HTTPS" : "plain HTTP");
    *out = a;
    return HIBUS_OK;
}

int admin_port(const struct admin *a)
{
    return a ? a->port : 0;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    atomic_store(&a->stopping, true); /* the event streams end within a second */
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    auth_cache_free(a->auth);
    auth_guard_free(a->guard);
    free(a->db_url);
    free(a);
}
