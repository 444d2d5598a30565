/*
 * listener.c - the HTTP front door: one request from its first byte to its answer.
 *
 * Order of checks, and why:
 *   /health, /ready        no credentials, so curl-based checks and load balancers work
 *   body limit (413)       decided from Content-Length before the body is read
 *   authentication (401)   before routing, so an anonymous caller learns nothing of paths
 *   routing (404/405/415)
 *   allow list (403)
 *   txlog insert (503)     the promise: nothing is answered as accepted before it is stored
 *   delivery (sync)        primary route first, then the others; every try is an attempt row
 *
 * Entry points: listener_start, listener_quiesce, listener_drain, listener_stop.
 * Invariants: every answer carries X-Request-Id; every error answer is JSON
 * {"error", "code", "details", "request_id"}, libmicrohttpd's own refusals included
 * (see "libmicrohttpd's own answers"); credentials and configured secret
 * headers are redacted before headers are stored or logged.
 */
#define LOG_SUBSYS "listener"
#include "hibus/listener.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/clock.h"
#include "hibus/delivery.h"
#include "hibus/log.h"
#include "hibus/mediator.h"
#include "hibus/metrics.h"
#include "hibus/ratelimit.h"
#include "hibus/router.h"
#include "hibus/text.h"
#include "hibus/tokens.h"
#include "listener_internal.h"

#define REQUEST_ID_MAX 128
#define DB_RETRY_AFTER "5"

/* A client connection, from libmicrohttpd's start notification to its close
 * notification (the socket stays open until after the latter, so shutting it down
 * under conns_mu is safe). */
struct conn {
    struct conn *prev, *next;
    struct conn_list *in;
    int fd;
    long since_ms;       /* when it began waiting for its next request */
    long peer_closed_ms; /* when the client was seen to have closed its side; 0: not */
    bool answered;       /* it has had an answer: kept alive, it holds a whole pool */
};

struct conn_list {
    struct conn *head, *tail;
};

struct listener {
    struct listener_deps deps;
    struct MHD_Daemon *mhd;
    int port;
    atomic_bool draining;
    pthread_mutex_t mu;
    pthread_cond_t idle;
    long in_flight; /* guarded by mu */
    time_t started;
    struct auth_guard *guard; /* failed logins per client address */
    struct ratelimit *rates;  /* clients' rate_limit */
    struct token_cache *tokens;
    size_t connection_memory; /* limits.connection_memory, fixed at start */

    /* Connections (see "connections" below), guarded by conns_mu. */
    pthread_mutex_t conns_mu;
    struct conn_list waiting; /* oldest first: idle, or a request still arriving */
    struct conn_list busy;    /* a whole request is in, a worker answers it */
    struct conn_list cut;     /* shut down, waiting for libmicrohttpd to close them */
    unsigned n_conns, n_cut;
    unsigned max_conns;  /* limits.max_connections at start (deps.cfg may be gone) */
    unsigned n_answered; /* waiting connections that have had an answer */
    bool trim_pending;   /* many were cut: give freed memory back on a quiet tick */
    unsigned long trim_jobs_tick, trim_jobs_done; /* jobs_submitted last tick, at last trim */
    long quiet_since_ms;                          /* when jobs_submitted last moved */
    int hup_fd; /* epoll set: which clients closed their side (EPOLLRDHUP) */
    pthread_t reaper;
    pthread_cond_t reaper_cv;
    bool reaper_started, stopping;

    /* Every certificate set handed to GnuTLS so far, the current one last; kept
     * until the listener stops (a handshake may still use an older one). */
    pthread_mutex_t tls_mu;
    struct tls_creds **tls_served;
    size_t n_tls_served;
    char *client_ca_pem; /* listen.tls.client_ca's contents, for libmicrohttpd */

    /* Workers (see "workers" below), guarded by jobs_mu. */
    pthread_mutex_t jobs_mu;
    pthread_cond_t jobs_cv, jobs_done;
    struct request *jobs_head, *jobs_tail;
    unsigned n_workers, idle_workers, running, max_workers;
    struct worker_slot *workers; /* max_workers of them */
    bool workers_stop;
    atomic_uint retired; /* workers that exited idle since the reaper last looked */
    atomic_ulong jobs_submitted;
};

/* A worker thread's place: free, live, or exited (joined when the place is taken
 * again, or at stop). Guarded by jobs_mu. */
enum { SLOT_FREE, SLOT_LIVE, SLOT_EXITED };
struct worker_slot {
    struct listener *l;
    pthread_t thread;
    int state;
};

/* One request. Created by the URI log callback (so the raw query is kept) and
 * freed by the completion callback. */
struct request {
    struct listener *l;
    const struct config *cfg; /* the snapshot this request started with */
    char id[REQUEST_ID_MAX + 1];
    char *uri;       /* as received, with the query */
    struct buf body; /* as received; body.s NULL when there was none */
    bool too_large;
    bool counted; /* counted in l->in_flight */
    struct timespec t0;

    /* Answered by a worker while the connection is suspended: */
    struct request *next_job;
    struct MHD_Connection *c;
    const char *url, *method; /* libmicrohttpd's, valid until the request completes */
    bool in_worker;           /* answers are kept in resp, queued on resumption */
    bool answered;            /* the worker is done: resp (or none) and ret are set */
    struct MHD_Response *resp;
    unsigned resp_status; /* what it was answered (for GET /metrics too); 0: not yet */
    bool metered;         /* counted in hibus_http_requests_total */
    enum MHD_Result ret;
    const char *channel; /* the channel it was routed to (in cfg); NULL: none */
};

/* ---------------------------------------------------------------- helpers */

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static bool request_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* A time-ordered (version 7, RFC 9562) UUID: 48 bits of Unix time in
 * milliseconds, then 74 random bits. Ordered by time, the request id index
 * (migration 009) grows at its right edge like the others, instead of writing a
 * random leaf page (and, after each checkpoint, its full image to the WAL) for
 * every request as version 4's random ids would. */
static void request_id_new(char out[REQUEST_ID_MAX + 1])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* getrandom on Linux only fails before the pool is seeded; fall back to time. */
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        memcpy(b, &t, sizeof t < sizeof b ? sizeof t : sizeof b);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, REQUEST_ID_MAX + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static void in_flight_add(struct listener *l, long d)
{
    pthread_mutex_lock(&l->mu);
    l->in_flight += d;
    if (l->in_flight == 0)
        pthread_cond_broadcast(&l->idle);
    pthread_mutex_unlock(&l->mu);
}

/* --------------------------------------------------------------- answers */

/* libmicrohttpd's own answers, in hibus's JSON.
 *
 * libmicrohttpd 0.9.75 answers a few requests itself before any hibus callback runs
 * (an HTTP version it does not speak: 505; a request head past its buffer: 431 or
 * 414; broken chunked framing: 400), with an HTML page and no X-Request-Id, and has
 * no option to change that (nor has 1.0). It queues those answers through its
 * exported MHD_queue_response, called through the PLT, so hibus defines that symbol
 * itself (ELF interposition, the mechanism of an LD_PRELOAD wrapper) and passes every
 * call on to libmicrohttpd's own, found with dlsym(RTLD_NEXT). hibus's own answers
 * carry a per-thread mark; a call without it is one of libmicrohttpd's answers, sent
 * instead as a JSON error of the same status with a new request id. The connection is
 * closed after it, as libmicrohttpd decided. Should a later libmicrohttpd call the
 * function directly, its HTML goes out again, and
 * test_errors.test_libmicrohttpd_answers_are_json fails. */
typedef enum MHD_Result (*queue_fn)(struct MHD_Connection *, unsigned int, struct MHD_Response *);

static _Thread_local bool queueing_ours;

static queue_fn mhd_queue(void)
{
    static _Atomic(queue_fn) real;
    queue_fn f = atomic_load(&real);
    if (f == NULL) {
        *(void **)&f = dlsym(RTLD_NEXT, "MHD_queue_response");
        atomic_store(&real, f);
    }
    return f;
}

enum MHD_Result listener_queue_ours(struct MHD_Connection *c, unsigned status,
                                    struct MHD_Response *r)
{
    queue_fn f = mhd_queue();
    if (f == NULL)
        return MHD_NO;
    queueing_ours = true;
    enum MHD_Result ret = f(c, status, r);
    queueing_ours = false;
    return ret;
}

/* What libmicrohttpd's answer of this status means to the client. */
static void mhd_refusal(unsigned status, enum hibus_err *code, const char **msg,
                        const char **detail)
{
    *code = HIBUS_E_BAD_REQUEST;
    switch (status) {
    case MHD_HTTP_BAD_REQUEST:
        *msg = "malformed request";
        *detail = "the request could not be read as HTTP/1.1 (its request line, a header "
                  "or its chunked body framing is broken)";
        break;
    case MHD_HTTP_URI_TOO_LONG:
        *code = HIBUS_E_TOO_LARGE;
        *msg = "request target too long";
        *detail = "the request line does not fit in the connection's memory "
                  "(limits.connection_memory): send the data in the body";
        break;
    case MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
        *code = HIBUS_E_TOO_LARGE;
        *msg = "headers too large";
        *detail = "the request head does not fit in the connection's memory "
                  "(limits.connection_memory)";
        break;
    case MHD_HTTP_CONTENT_TOO_LARGE:
        *code = HIBUS_E_TOO_LARGE;
        *msg = "request body too large";
        *detail = "the body's announced size cannot be held";
        break;
    case MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED:
        *code = HIBUS_E_UNSUPPORTED;
        *msg = "HTTP version not supported";
        *detail = "send HTTP/1.1 (or HTTP/1.0)";
        break;
    default:
        *code = status >= 500 ? HIBUS_E_NOMEM : HIBUS_E_BAD_REQUEST;
        *msg = status >= 500 ? "the request could not be handled" : "request refused";
        *detail = status >= 500 ? "hibus could not hold the request in memory; try again"
                                : "the HTTP server refused the request";
        break;
    }
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                   struct MHD_Response *r)
{
    queue_fn f = mhd_queue();
    if (f == NULL)
        return MHD_NO;
    if (queueing_ours)
        return f(c, status, r);
    enum hibus_err code;
    const char *msg, *detail;
    mhd_refusal(status, &code, &msg, &detail);
    char id[REQUEST_ID_MAX + 1];
    request_id_new(id);
    json_t *doc = json_pack("{s:s, s:s, s:[s], s:s}", "error", msg, "code", hibus_errname(code),
                            "details", detail, "request_id", id);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    size_t len = text ? strlen(text) : 0;
    char *body = text ? hibus_xreallocarray(text, len + 2, 1) : NULL;
    if (body != NULL)
        memcpy(body + len, "\n", 2);
    struct MHD_Response *j =
        body ? MHD_create_response_from_buffer(len + 1, body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (j == NULL) {
        free(body);
        return f(c, status, r); /* its own page rather than none */
    }
    MHD_add_response_header(j, "X-Request-Id", id);
    MHD_add_response_header(j, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    LOG_INFO(id, "%u %s (refused by libmicrohttpd before hibus saw the request)", status, msg);
    enum MHD_Result ret = f(c, status, j);
    MHD_destroy_response(j);
    return ret;
}

/* Counts the request in the metrics as its answer is queued, not when
 * libmicrohttpd reports it completed: a client that reads /metrics right after
 * its answer must find it counted. */
static void meter(struct request *rq)
{
    if (rq->metered || rq->resp_status == 0)
        return;
    rq->metered = true;
    metrics_request(rq->channel, rq->resp_status, ms_since(&rq->t0) / 1000.0);
}

/* Queues r (taking it), or in a worker keeps it for the connection's resumption:
 * libmicrohttpd takes answers only from its own thread. */
static enum MHD_Result answer(struct MHD_Connection *c, struct request *rq, unsigned status,
                              struct MHD_Response *r)
{
    rq->resp_status = status;
    if (rq->in_worker) {
        if (rq->resp != NULL)
            MHD_destroy_response(rq->resp);
        rq->resp = r;
        return MHD_YES;
    }
    meter(rq);
    enum MHD_Result ret = listener_queue_ours(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_buffer(struct MHD_Connection *c, struct request *rq, unsigned status,
                                   const char *content_type, const void *body, size_t len,
                                   const char *const *extra /* name, value, ..., NULL */)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "X-Request-Id", rq->id);
    if (content_type != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2)
        MHD_add_response_header(r, extra[i], extra[i + 1]);
    if (atomic_load(&rq->l->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return answer(c, rq, status, r);
}

static enum MHD_Result send_json(struct MHD_Connection *c, struct request *rq, unsigned status,
                                 json_t *doc /* stolen */, const char *const *extra)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return MHD_NO;
    size_t len = strlen(text);
    char *withnl = hibus_xreallocarray(text, len + 2, 1);
    withnl[len] = '\n';
    withnl[len + 1] = '\0';
    enum MHD_Result ret = send_buffer(c, rq, status, "application/json", withnl, len + 1, extra);
    free(withnl);
    return ret;
}

/* details: a JSON array of strings, stolen; may be NULL. */
static enum MHD_Result send_error_status(struct MHD_Connection *c, struct request *rq,
                                         unsigned status, enum hibus_err code, const char *msg,
                                         json_t *details, const char *const *extra)
{
    json_t *doc = json_pack("{s:s, s:s, s:o, s:s}", "error", msg, "code", hibus_errname(code),
                            "details", details ? details : json_array(), "request_id", rq->id);
    LOG_INFO(rq->id, "%u %s", status, msg);
    return send_json(c, rq, status, doc, extra);
}

/* An error answer with the status its code has in HIBUS_ERRORS (hibus/error.h). */
static enum MHD_Result send_error(struct MHD_Connection *c, struct request *rq, enum hibus_err code,
                                  const char *msg, json_t *details, const char *const *extra)
{
    return send_error_status(c, rq, hibus_http_status(code), code, msg, details, extra);
}

static json_t *details1(const char *s)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(s));
    return a;
}

/* 429 with Retry-After: the whole seconds until wait_ms has passed, also said after
 * why in the details. */
static enum MHD_Result send_too_many(struct MHD_Connection *c, struct request *rq, long wait_ms,
                                     const char *msg, const char *why)
{
    char secs[24], detail[512];
    snprintf(secs, sizeof secs, "%ld", (wait_ms + 999) / 1000);
    snprintf(detail, sizeof detail, "%s: try again in %s s", why, secs);
    const char *const extra[] = {"Retry-After", secs, NULL};
    return send_error(c, rq, HIBUS_E_TOO_MANY, msg, details1(detail), extra);
}

/* ---------------------------------------------------------- request data */

struct header_list {
    struct mediator_header *v;
    size_t n;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct header_list *hl = cls;
    /* Header sizes are bounded by libmicrohttpd's connection memory limit. */
    hl->v = hibus_xreallocarray(hl->v, hl->n + 1, sizeof *hl->v);
    hl->v[hl->n].name = hibus_xstrdup(key);
    hl->v[hl->n].value = hibus_xstrdup(value ? value : "");
    hl->n++;
    return MHD_YES;
}

static void header_list_free(struct header_list *hl)
{
    for (size_t i = 0; i < hl->n; i++) {
        free(hl->v[i].name);
        free(hl->v[i].value);
    }
    free(hl->v);
}

/* Headers as one JSON object with lower-case names, secrets redacted; repeated
 * headers are joined with ", " as HTTP allows. */
static json_t *headers_json(const struct config *cfg, const struct mediator_header *h, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        char name[256];
        size_t k = 0;
        for (; h[i].name[k] && k < sizeof name - 1; k++)
            name[k] = (char)((h[i].name[k] >= 'A' && h[i].name[k] <= 'Z') ? h[i].name[k] + 32
                                                                          : h[i].name[k]);
        name[k] = '\0';
        const char *v = config_header_redacted(cfg, name) ? "[redacted]" : h[i].value;
        json_t *old = json_object_get(o, name);
        if (old != NULL && json_is_string(old) && strcmp(v, "[redacted]") != 0) {
            size_t len = strlen(json_string_value(old)) + strlen(v) + 3;
            char *joined = hibus_xmalloc(len);
            snprintf(joined, len, "%s, %s", json_string_value(old), v);
            json_object_set_new(o, name, json_stringn_nocheck(joined, strlen(joined)));
            free(joined);
        } else {
            /* Header values are bytes; invalid UTF-8 is stored escaped rather than lost. */
            json_t *s = json_string(v);
            if (s == NULL)
                s = json_string("[invalid UTF-8]");
            json_object_set_new(o, name, s);
        }
    }
    return o;
}

static char *dump_or_null(json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* ------------------------------------------------------------- endpoints */

static enum MHD_Result serve_health(struct MHD_Connection *c, struct request *rq)
{
    json_t *doc = json_pack("{s:s, s:s, s:I}", "status", "ok", "version", HIBUS_VERSION,
                            "uptime_seconds", (json_int_t)(time(NULL) - rq->l->started));
    return send_json(c, rq, MHD_HTTP_OK, doc, NULL);
}

static enum MHD_Result serve_ready(struct MHD_Connection *c, struct request *rq)
{
    struct hibus_error err = {0};
    const struct config *cfg = rq->cfg;
    if (txlog_ping(rq->l->deps.tl, &err) != HIBUS_OK) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "status", "not ready", "database",
                                "unreachable", "error", err.msg, "request_id", rq->id);
        static const char *const extra[] = {"Retry-After", DB_RETRY_AFTER, NULL};
        return send_json(c, rq, hibus_http_status(HIBUS_E_DB), doc, extra);
    }
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I}", "status", "ready", "database", "ok", "channels",
                            (json_int_t)cfg->n_channels, "clients", (json_int_t)cfg->n_clients);
    return send_json(c, rq, MHD_HTTP_OK, doc, NULL);
}

static enum MHD_Result route_miss(struct MHD_Connection *c, struct request *rq,
                                  enum router_result why, const char *method, const char *path,
                                  const char *ctype)
{
    const struct config *cfg = rq->cfg;
    char msg[640];
    switch (why) {
    case ROUTER_MATCH: break;
    case ROUTER_NO_PATH:
        snprintf(msg, sizeof msg, "no channel serves path \"%.200s\"", path);
        return send_error(c, rq, HIBUS_E_NOT_FOUND, "no channel for this path", details1(msg),
                          NULL);
    case ROUTER_BAD_METHOD: {
        /* Allow: the union of the methods of channels serving this path. */
        char allow[256] = "";
        size_t at = 0;
        for (size_t i = 0; i < cfg->n_channels; i++) {
            const struct config_channel *ch = &cfg->channels[i];
            if (!ch->enabled || !router_path_matches(ch, path))
                continue;
            for (size_t m = 0; m < ch->n_methods; m++) {
                if (strstr(allow, ch->methods[m]) != NULL)
                    continue;
                int w =
                    snprintf(allow + at, sizeof allow - at, "%s%s", at ? ", " : "", ch->methods[m]);
                if (w > 0 && (size_t)w < sizeof allow - at)
                    at += (size_t)w;
            }
        }
        snprintf(msg, sizeof msg, "method %.32s is not accepted on \"%.200s\"; allowed: %s", method,
                 path, allow);
        const char *extra[] = {"Allow", allow, NULL};
        /* 405 and 415 rather than HIBUS_E_INVALID's 422: HTTP has a status for each
         * of these two, and a client or proxy acts on it (405 comes with Allow). */
        return send_error_status(c, rq, MHD_HTTP_METHOD_NOT_ALLOWED, HIBUS_E_INVALID,
                                 "method not allowed", details1(msg), extra);
    }
    case ROUTER_NO_BODY_MATCH:
        snprintf(msg, sizeof msg,
                 "channels serve \"%.200s\", but the body matches none of their match.json "
                 "conditions (it must be a JSON object with the fields they name)",
                 path);
        return send_error(c, rq, HIBUS_E_NOT_FOUND, "no channel for this request body",
                          details1(msg), NULL);
    case ROUTER_BAD_CONTENT_TYPE:
        snprintf(msg, sizeof msg, "content type \"%.100s\" is not accepted on \"%.200s\"",
                 ctype ? ctype : "(none)", path);
        return send_error_status(c, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, HIBUS_E_INVALID,
                                 "unsupported content type", details1(msg), NULL);
    }
    return MHD_NO;
}

/* Queues an answer built from a target's response, plus our own headers. */
static enum MHD_Result send_target_answer(struct MHD_Connection *c, struct request *rq,
                                          const char *txid, const struct mediator_response *a)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        a->body_len, a->body_len ? a->body : (void *)(uintptr_t) "", MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    for (size_t i = 0; i < a->n_headers; i++) {
        const char *n = a->headers[i].name;
        /* MHD writes its own Date and framing headers; the request id is ours. */
        if (strcasecmp(n, "date") == 0 || strcasecmp(n, "x-request-id") == 0 ||
            mediator_header_is_hop_by_hop(n))
            continue;
        MHD_add_response_header(r, n, a->headers[i].value);
    }
    MHD_add_response_header(r, "X-Request-Id", rq->id);
    MHD_add_response_header(r, "X-Hibus-Transaction", txid);
    if (atomic_load(&rq->l->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return answer(c, rq, (unsigned)a->status, r);
}

/* Why the primary route did not deliver, as the client is told: it timed out, or
 * the target did not answer or gave an answer hibus cannot pass on. */
static enum hibus_err route_failure(const struct delivery_route_result *pr)
{
    return pr->rc == HIBUS_E_TIMEOUT ? HIBUS_E_TIMEOUT : HIBUS_E_TARGET;
}

/* The answer to a client of a channel without transform: the primary route's
 * answer as it is (unwrapped for OpenHIM mediators), or a JSON error when the
 * target gave none. *status and *body get what was answered, for the log. */
static json_t *passthrough_error(const struct request *rq, int64_t tx_id,
                                 const struct delivery_route_result *pr, unsigned *status)
{
    const char *why = pr->error ? pr->error : pr->resp.error;
    char msg[800];
    snprintf(msg, sizeof msg, "route \"%.200s\": %s", pr->route->name, why);
    enum hibus_err code = route_failure(pr);
    *status = hibus_http_status(code);
    return json_pack("{s:s, s:s, s:o, s:s, s:I}", "error",
                     code == HIBUS_E_TIMEOUT ? "target timed out"
                     : pr->resp.status == 0  ? "target did not answer"
                                             : "target gave an answer hibus cannot pass on",
                     "code", hibus_errname(code), "details", details1(msg), "request_id", rq->id,
                     "transaction", (json_int_t)tx_id);
}

/* The answer to a client of a sync channel with a transform: hibus's own account
 * of what each route did, with DHIS2's counts and conflicts. 200 when the
 * primary target took the data (successful, completed_with_errors), 502 (504 on
 * a timeout) when it did not. */
static json_t *transform_answer(const struct request *rq, int64_t tx_id,
                                const struct delivery_prepared *p,
                                const struct delivery_result *res, unsigned *status)
{
    const struct delivery_route_result *pr = &res->routes[0];
    if (strcmp(res->status, "successful") == 0 || strcmp(res->status, "completed_with_errors") == 0)
        *status = MHD_HTTP_OK;
    else
        *status = hibus_http_status(route_failure(pr));
    return delivery_account(tx_id, rq->id, p, res);
}

/* 422 (HIBUS_E_INVALID): every problem the reader, the mapping or the quality rules
 * found. */
static json_t *rejection_answer(const struct request *rq, int64_t tx_id,
                                const struct delivery_prepared *p, unsigned *status)
{
    *status = hibus_http_status(HIBUS_E_INVALID);
    json_t *details = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(p->problems, i, v) json_array_append_new(
        details, json_string(json_string_value(json_object_get(v, "message"))));
    return json_pack("{s:s, s:s, s:o, s:O, s:O, s:s, s:I}", "error", "the payload was rejected",
                     "code", hibus_errname(HIBUS_E_INVALID), "details", details, "problems",
                     p->problems, "warnings", p->warnings, "request_id", rq->id, "transaction",
                     (json_int_t)tx_id);
}

static enum MHD_Result store_failed(struct MHD_Connection *c, struct request *rq,
                                    const struct config_channel *ch, const struct hibus_error *err)
{
    LOG_ERROR(rq->id, "could not store request for channel \"%s\": %s%s%s", ch->name, err->msg,
              err->detail[0] ? ": " : "", err->detail);
    static const char *const extra[] = {"Retry-After", DB_RETRY_AFTER, NULL};
    return send_error(c, rq, HIBUS_E_DB,
                      "transaction log unavailable; the request was not accepted",
                      details1("hibus could not store the request in its database; nothing "
                               "was forwarded. Send it again later."),
                      extra);
}

/* An async channel: check the payload now (a bad one is refused at once, 422),
 * store it as queued in one commit, answer 202 with where to ask for the
 * outcome. Delivery workers do the rest. */
static enum MHD_Result serve_async(struct MHD_Connection *c, struct request *rq,
                                   const struct config_channel *ch, struct txlog_request *tr)
{
    struct listener *l = rq->l;
    struct delivery_prepared prep;
    bool ok = delivery_prepare(ch, rq->body.s, rq->body.len, &prep) == HIBUS_OK;
    json_t *pj = ok ? NULL : delivery_problems_json(&prep);
    char *pjs = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    char *key = ok ? delivery_order_key(ch, &prep) : NULL;
    tr->status = ok ? TXLOG_QUEUED : TXLOG_REJECTED;
    tr->mode = "async";
    tr->order_key = key;
    tr->problems_json = pjs;
    int64_t tx_id = 0;
    struct hibus_error err = {0};
    enum hibus_err ins = txlog_insert(l->deps.tl, tr, &tx_id, NULL, &err);
    free(pjs);
    free(key);
    if (ins == HIBUS_OK)
        metrics_transaction(ch->name, tr->status);
    enum MHD_Result ret;
    char txid[32], location[64];
    snprintf(txid, sizeof txid, "%lld", (long long)tx_id);
    snprintf(location, sizeof location, "/transactions/%lld", (long long)tx_id);
    if (ins != HIBUS_OK) {
        ret = store_failed(c, rq, ch, &err);
    } else if (!ok) {
        const char *extra[] = {"X-Hibus-Transaction", txid, NULL};
        unsigned status;
        json_t *answer = rejection_answer(rq, tx_id, &prep, &status);
        LOG_INFO(rq->id, "%s %s -> %u channel=%s client=%s tx=%s status=rejected", tr->method,
                 tr->path, status, ch->name, tr->client, txid);
        ret = send_json(c, rq, status, answer, extra);
    } else {
        /* A worker of this process may take what was just prepared rather than run
         * the transform again; one elsewhere never finds it and prepares. */
        if (rq->cfg->delivery_workers > 0)
            delivery_handoff_put(tx_id, rq->cfg, rq->body.len, &prep);
        const char *extra[] = {"X-Hibus-Transaction", txid, MHD_HTTP_HEADER_LOCATION, location,
                               NULL};
        LOG_INFO(rq->id, "%s %s -> 202 channel=%s client=%s tx=%s status=queued %.1fms", tr->method,
                 tr->path, ch->name, tr->client, txid, ms_since(&rq->t0));
        ret = send_json(c, rq, MHD_HTTP_ACCEPTED,
                        json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)tx_id, "status",
                                  "queued", "location", location, "request_id", rq->id),
                        extra);
    }
    delivery_prepared_free(&prep);
    return ret;
}

static enum MHD_Result serve_channel(struct MHD_Connection *c, struct request *rq,
                                     const struct config_channel *ch,
                                     const struct config_client *client, const char *method,
                                     const char *path, const struct header_list *hl)
{
    struct listener *l = rq->l;
    const struct config *cfg = rq->cfg;
    const char *q = strchr(rq->uri, '?');
    const char *query = q ? q + 1 : "";
    rq->channel = ch->name;

    json_t *hj = headers_json(cfg, hl->v, hl->n);
    char *hjs = dump_or_null(hj);
    json_decref(hj);
    if (hjs == NULL)
        return MHD_NO;

    struct txlog_request tr = {.request_id = rq->id,
                               .channel = ch->name,
                               .client = client->id,
                               .method = method,
                               .path = path,
                               .query = query,
                               .headers_json = hjs,
                               .body = rq->body.s,
                               .body_len = rq->body.len,
                               .status = TXLOG_PROCESSING,
                               .node = l->deps.node,
                               /* held for delivery.lease, renewed by the delivery
                                * workers' keeper while the delivery runs (txlog_hold):
                                * if this process dies, another takes the request over
                                * within a lease */
                               .lease_ms = cfg->delivery_lease_ms};
    if (ch->mode == CONFIG_MODE_ASYNC) {
        tr.lease_ms = 0;
        enum MHD_Result ret = serve_async(c, rq, ch, &tr);
        free(hjs);
        return ret;
    }
    int64_t tx_id = 0;
    struct hibus_error err = {0};
    char received_at[TXLOG_TS_MAX] = "";
    enum hibus_err ins = txlog_insert(l->deps.tl, &tr, &tx_id, received_at, &err);
    if (ins != HIBUS_OK) {
        free(hjs);
        return store_failed(c, rq, ch, &err);
    }
    txlog_hold(l->deps.tl, tx_id);
    char txid[32];
    snprintf(txid, sizeof txid, "%lld", (long long)tx_id);
    const char *extra[] = {"X-Hibus-Transaction", txid, NULL};

    /* The round a delivery worker would run, from what was stored; this thread
     * only turns its outcome into the answer. */
    struct delivery_request drq = {.tx_id = tx_id,
                                   .channel = ch->name,
                                   .path = path,
                                   .tl = l->deps.tl,
                                   .request_id = rq->id,
                                   .method = method,
                                   .query = query,
                                   .headers_json = hjs,
                                   .body = rq->body.s,
                                   .body_len = rq->body.len,
                                   .round = 1};
    struct delivery_round round;
    delivery_round(cfg, ch, &drq, NULL, 0, false, &round);
    free(hjs);
    const struct delivery_prepared *prep = &round.prep;
    const struct delivery_result *res = &round.res;
    const char *status = round.status;
    unsigned code;
    json_t *answer = NULL;
    const struct mediator_response *target_answer = NULL;
    if (res->n_routes == 0) {
        answer = rejection_answer(rq, tx_id, prep, &code);
    } else {
        const struct delivery_route_result *pr = &res->routes[0];
        if (ch->has_transform)
            answer = transform_answer(rq, tx_id, prep, res, &code);
        else if (pr->resp.status == 0 || (pr->error != NULL && !pr->unwrapped))
            answer = passthrough_error(rq, tx_id, pr, &code);
        else {
            target_answer = delivery_answer(pr);
            code = (unsigned)target_answer->status;
        }
    }

    /* Record the outcome, then answer. A failure to record is said loudly: the
     * request is stored, only its outcome is missing, and the row stays
     * "processing" until its lease lapses and a delivery worker takes it. */
    char *body_text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    char *ans_headers = target_answer ? delivery_headers_json(target_answer) : NULL;
    /* the report's facility and period, for hibus ls and a later rerun */
    char *order_key = delivery_order_key(ch, prep);
    struct delivery_outcome out = {.order_key = order_key,
                                   .channel = ch->name,
                                   .status = status,
                                   .response_status = (int)code,
                                   .response_headers_json = ans_headers,
                                   .response_body = target_answer ? target_answer->body : body_text,
                                   .response_body_len = target_answer
                                                            ? target_answer->body_len
                                                            : (body_text ? strlen(body_text) : 0),
                                   .owner = l->deps.node,
                                   .received_at = received_at};
    enum hibus_err rec =
        delivery_record(l->deps.tl, tx_id, prep, res->n_routes ? res : NULL, &out, &err);
    txlog_unhold(l->deps.tl, tx_id);
    if (rec == HIBUS_E_NOT_FOUND)
        LOG_WARN(rq->id,
                 "tx=%s ended %s, but its lease had lapsed (the database was out of reach "
                 "for longer than delivery.lease) and another process took it over: its "
                 "outcome is the one that process records",
                 txid, status);
    else if (rec != HIBUS_OK)
        LOG_ERROR(rq->id, "tx=%s ended %s but its outcome could not be recorded: %s%s%s", txid,
                  status, err.msg, err.detail[0] ? ": " : "", err.detail);
    LOG_INFO(rq->id, "%s %s -> %u channel=%s client=%s tx=%s status=%s %.1fms", method, path, code,
             ch->name, client->id, txid, status, ms_since(&rq->t0));

    enum MHD_Result ret;
    if (target_answer != NULL)
        ret = send_target_answer(c, rq, txid, target_answer);
    else
        ret = send_json(c, rq, code, json_incref(answer), extra);
    json_decref(answer);
    free(body_text);
    free(ans_headers);
    free(order_key);
    delivery_round_free(&round);
    return ret;
}

/* GET /transactions/ID: the outcome of a client's own transaction, for clients
 * of async channels (the 202's Location). Another client's transaction is a
 * 404, as if it did not exist. */
static enum MHD_Result serve_transaction(struct MHD_Connection *c, struct request *rq,
                                         const struct config_client *client, const char *idtext)
{
    char *end;
    long long id = strtoll(idtext, &end, 10);
    json_t *tx = NULL;
    struct hibus_error err = {0};
    enum hibus_err rc = (*idtext == '\0' || *end != '\0' || id <= 0)
                            ? HIBUS_E_NOT_FOUND
                            : txlog_get_json(rq->l->deps.tl, id, &tx, &err);
    const char *owner = rc == HIBUS_OK ? json_string_value(json_object_get(tx, "client")) : NULL;
    if (rc == HIBUS_OK && (owner == NULL || strcmp(owner, client->id) != 0))
        rc = HIBUS_E_NOT_FOUND;
    if (rc == HIBUS_E_NOT_FOUND) {
        json_decref(tx);
        return send_error(c, rq, HIBUS_E_NOT_FOUND, "no such transaction",
                          details1("no transaction with this id was sent by this client"), NULL);
    }
    if (rc != HIBUS_OK) {
        static const char *const extra[] = {"Retry-After", DB_RETRY_AFTER, NULL};
        return send_error(c, rq, HIBUS_E_DB, "transaction log unavailable", details1(err.msg),
                          extra);
    }
    /* What a client may see: not other clients' headers, not its own body back. */
    json_t *view = json_object();
    static const char *const keys[] = {
        "id",          "request_id",      "channel", "status",   "received_at", "finished_at",
        "duration_ms", "response_status", "error",   "problems", "rounds",      "next_attempt_at",
        NULL};
    for (size_t k = 0; keys[k] != NULL; k++) {
        json_t *v = json_object_get(tx, keys[k]);
        json_object_set_new(view, keys[k], v ? json_incref(v) : json_null());
    }
    json_t *atts = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(tx, "attempts"), i, a) json_array_append_new(
        atts,
        json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "route", json_object_get(a, "route"), "attempt",
                  json_object_get(a, "attempt"), "started_at", json_object_get(a, "started_at"),
                  "status_code", json_object_get(a, "status_code"), "error",
                  json_object_get(a, "error"), "details", json_object_get(a, "details")));
    json_object_set_new(view, "attempts", atts);
    json_decref(tx);
    return send_json(c, rq, MHD_HTTP_OK, view, NULL);
}

/* The client the connection's TLS client certificate identifies, or NULL. */
static const struct config_client *certificate_client(struct MHD_Connection *c,
                                                      const struct config *cfg)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return NULL;
    unsigned char sha256[32];
    char subject[512];
    bool verified = false;
    if (!tls_peer_certificate((gnutls_session_t)ci->tls_session, sha256, subject, sizeof subject,
                              &verified))
        return NULL;
    return auth_certificate(cfg, sha256, subject, verified);
}

static enum MHD_Result dispatch(struct MHD_Connection *c, struct request *rq, const char *path,
                                const char *method)
{
    struct listener *l = rq->l;
    const struct config *cfg = rq->cfg;

    if (strcmp(path, "/health") == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return serve_health(c, rq);
    if (strcmp(path, "/ready") == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return serve_ready(c, rq);

    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body exceeds the limit of %zu bytes (limits.max_body)",
                 cfg->max_body);
        return send_error(c, rq, HIBUS_E_TOO_LARGE, "request body too large", details1(msg), NULL);
    }

    /* The path (as decoded) and the query are stored as text: bytes that are not
     * UTF-8 make a malformed request, not a database failure. */
    size_t ulen = strlen(rq->uri), plen = strlen(path);
    size_t bad_uri = text_utf8_invalid_at(rq->uri, ulen),
           bad_path = text_utf8_invalid_at(path, plen);
    if (bad_uri < ulen || bad_path < plen) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "the %s is not UTF-8 (byte 0x%02X at offset %zu): percent-encode the UTF-8 "
                 "bytes of the text",
                 bad_uri < ulen ? "request target" : "decoded path",
                 (unsigned char)(bad_uri < ulen ? rq->uri[bad_uri] : path[bad_path]),
                 bad_uri < ulen ? bad_uri : bad_path);
        return send_error(c, rq, HIBUS_E_BAD_REQUEST, "malformed request", details1(msg), NULL);
    }

    const char *authz =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *peer = ci ? ci->client_addr : NULL;
    /* A client certificate that identifies a client is enough; otherwise (none, or
     * one no client claims) the client authenticates as usual. */
    const struct config_client *client = cfg->tls != NULL ? certificate_client(c, cfg) : NULL;
    long wait_ms = client != NULL ? 0 : auth_guard_wait_ms(l->guard, peer, clock_ms());
    if (wait_ms > 0)
        return send_too_many(c, rq, wait_ms, "too many failed logins",
                             "too many failed logins from this address (limits.login_failures)");
    struct hibus_error dberr = {0};
    enum auth_result ar = client != NULL           ? AUTH_OK
                          : token_is_bearer(authz) ? token_check(l->tokens, l->deps.tl, cfg, authz,
                                                                 clock_ms(), &client, &dberr)
                                                   : auth_basic(cfg, l->deps.auth, authz, &client);
    if (dberr.code != HIBUS_OK) {
        static const char *const extra[] = {"Retry-After", DB_RETRY_AFTER, NULL};
        return send_error(c, rq, HIBUS_E_DB, "transaction log unavailable",
                          details1("the token could not be checked: the database did not answer"),
                          extra);
    }
    if (ar == AUTH_INVALID)
        auth_guard_failed(l->guard, peer, cfg->login_failures, clock_ms());
    else if (ar == AUTH_OK && authz != NULL)
        auth_guard_succeeded(l->guard, peer);
    if (ar != AUTH_OK) {
        static const char *const extra[] = {
            MHD_HTTP_HEADER_WWW_AUTHENTICATE,
            "Basic realm=\"hibus\", charset=\"UTF-8\", Bearer realm=\"hibus\"", NULL};
        bool bearer = token_is_bearer(authz);
        const char *d =
            ar == AUTH_MISSING
                ? "send HTTP basic credentials or a bearer token of a client listed in "
                  "clients.yaml"
            : ar == AUTH_MALFORMED
                ? (bearer ? "the bearer token is not one hibus made (hbt_...: see hibus token new)"
                          : "the Authorization header is not valid basic credentials "
                            "(base64 of client-id:password)")
            : bearer ? "unknown or revoked token, or its client is disabled"
                     : "unknown client, disabled client or wrong password";
        return send_error(c, rq, HIBUS_E_AUTH,
                          ar == AUTH_MISSING ? "authentication required" : "invalid credentials",
                          details1(d), extra);
    }

    long rate_wait = ratelimit_take(l->rates, client->id, client->rate_requests,
                                    client->rate_per_ms, clock_ms());
    if (rate_wait > 0) {
        char why[320];
        snprintf(why, sizeof why,
                 "client \"%s\" may send %u requests per %ld ms (rate_limit in clients.yaml)",
                 client->id, client->rate_requests, client->rate_per_ms);
        return send_too_many(c, rq, rate_wait, "rate limit exceeded", why);
    }

    if (strncmp(path, "/transactions/", 14) == 0 && strcmp(method, "GET") == 0)
        return serve_transaction(c, rq, client, path + 14);

    const char *ctype =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const struct config_channel *ch = NULL;
    enum router_result rr = router_match(cfg->channels, cfg->n_channels, method, path, ctype,
                                         rq->body.s, rq->body.len, &ch);
    if (rr != ROUTER_MATCH)
        return route_miss(c, rq, rr, method, path, ctype);

    if (!auth_allowed(ch, client)) {
        char msg[384];
        snprintf(msg, sizeof msg, "client \"%s\" is not in the allow list of channel \"%s\"",
                 client->id, ch->name);
        return send_error(c, rq, HIBUS_E_FORBIDDEN, "not allowed", details1(msg), NULL);
    }

    struct header_list hl = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &hl);
    enum MHD_Result ret = serve_channel(c, rq, ch, client, method, path, &hl);
    header_list_free(&hl);
    return ret;
}

/* ----------------------------------------------------------- connections */

/* Extra connections libmicrohttpd accepts past limits.max_connections, while the
 * longest-waiting ones are being closed to make room. */
#define CONN_RESERVE 64

static void conn_unlink(struct conn *k)
{
    struct conn_list *in = k->in;
    if (in == NULL)
        return;
    if (k->prev)
        k->prev->next = k->next;
    else
        in->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        in->tail = k->prev;
    k->prev = k->next = NULL;
    k->in = NULL;
}

static void conn_append(struct conn_list *to, struct conn *k)
{
    k->prev = to->tail;
    k->next = NULL;
    if (to->tail)
        to->tail->next = k;
    else
        to->head = k;
    to->tail = k;
    k->in = to;
}

/* Moves k to the end of to (a connection already cut stays cut). Locked. */
static void conn_move(struct conn_list *to, struct conn *k, struct listener *l)
{
    if (k->in == &l->cut)
        return;
    conn_unlink(k);
    conn_append(to, k);
}

/* Shuts k's socket down: libmicrohttpd sees the end of the stream and closes the
 * connection itself. Locked. */
static void conn_cut(struct listener *l, struct conn *k)
{
    if (k->answered)
        l->n_answered--;
    k->answered = false;
    shutdown(k->fd, SHUT_RDWR);
    conn_unlink(k);
    conn_append(&l->cut, k);
    l->n_cut++;
}

/* The struct conn on_connection attached to c, or NULL. */
static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_state(struct listener *l, struct MHD_Connection *c, bool busy)
{
    struct conn *k = conn_of(c);
    if (k == NULL)
        return;
    pthread_mutex_lock(&l->conns_mu);
    if (!busy) {
        k->since_ms = clock_ms();
        if (k->peer_closed_ms != 0) /* its answer may still be on the way */
            k->peer_closed_ms = k->since_ms;
    }
    conn_move(busy ? &l->busy : &l->waiting, k, l);
    pthread_mutex_unlock(&l->conns_mu);
}

/* An answer went out on c: its wait for the next request starts now, and kept alive it
 * counts towards limits.idle_connections. */
static void conn_answered(struct listener *l, struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    if (k == NULL)
        return;
    pthread_mutex_lock(&l->conns_mu);
    k->since_ms = clock_ms();
    if (k->in != &l->cut) {
        conn_move(&l->waiting, k, l);
        if (!k->answered)
            l->n_answered++;
        k->answered = true;
    }
    pthread_mutex_unlock(&l->conns_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct listener *l = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn *k = *socket_context;
        if (k == NULL)
            return;
        pthread_mutex_lock(&l->conns_mu);
        epoll_ctl(l->hup_fd, EPOLL_CTL_DEL, k->fd, NULL);
        if (k->in == &l->cut)
            l->n_cut--;
        if (k->answered)
            l->n_answered--;
        conn_unlink(k);
        l->n_conns--;
        pthread_mutex_unlock(&l->conns_mu);
        free(k);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL)
        return;
    struct conn *k = hibus_xcalloc(1, sizeof *k);
    k->fd = ci->connect_fd;
    k->since_ms = clock_ms();
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = k};
    pthread_mutex_lock(&l->conns_mu);
    epoll_ctl(l->hup_fd, EPOLL_CTL_ADD, k->fd, &ev);
    conn_append(&l->waiting, k);
    l->n_conns++;
    /* Past the limit, the connection that has waited longest for its next request
     * (idle, or sending slowly) makes room: whoever holds many connections without
     * using them cannot lock a new client out. */
    if (l->n_conns - l->n_cut > l->max_conns && l->waiting.head != NULL && l->waiting.head != k)
        conn_cut(l, l->waiting.head);
    pthread_mutex_unlock(&l->conns_mu);
    *socket_context = k;
}

/* A client that closed its side while waiting, CONN_HUP_GRACE_MS ago or more, is
 * gone: libmicrohttpd 0.9.75 in epoll mode takes a short read for an empty socket,
 * so an end of stream that came with the last bytes goes unseen until the idle
 * timeout (src/microhttpd/connection.c, recv_param_adapter); a request that was
 * whole would have reached a worker (busy) by then. */
#define CONN_HUP_GRACE_MS 1000

/* Notes which clients closed their side. Locked. */
static void reaper_note_hups(struct listener *l, long now)
{
    struct epoll_event evs[256];
    int n;
    do {
        n = epoll_wait(l->hup_fd, evs, 256, 0);
        for (int i = 0; i < n; i++) {
            struct conn *k = evs[i].data.ptr;
            if (k->peer_closed_ms == 0)
                k->peer_closed_ms = now;
        }
    } while (n == 256);
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Hands memory that malloc keeps in its free lists back to the system (called
 * with conns_mu held; it is let go meanwhile, the walk takes milliseconds). */
static void give_back_memory(struct listener *l, const char *why)
{
    pthread_mutex_unlock(&l->conns_mu);
    long before = rss_kib();
    malloc_trim(0);
    long after = rss_kib();
    LOG_DEBUG(NULL, "gave freed memory back to the system (%s): resident %ld -> %ld KiB", why,
              before, after);
    pthread_mutex_lock(&l->conns_mu);
}

/* A burst of requests leaves what it freed in malloc's arenas (12 MiB of 36 after
 * bench/run's loads): once TRIM_AFTER_JOBS requests have come and then none for
 * TRIM_QUIET_MS, it goes back to the system, once per burst. */
#define TRIM_AFTER_JOBS 1000
#define TRIM_QUIET_MS 2000

static void trim_after_burst(struct listener *l, long now)
{
    unsigned long jobs = atomic_load_explicit(&l->jobs_submitted, memory_order_relaxed);
    if (jobs != l->trim_jobs_tick) {
        l->trim_jobs_tick = jobs;
        l->quiet_since_ms = now;
    } else if (jobs - l->trim_jobs_done >= TRIM_AFTER_JOBS &&
               now - l->quiet_since_ms >= TRIM_QUIET_MS) {
        l->trim_jobs_done = jobs;
        give_back_memory(l, "quiet after a burst");
    }
}

/* Cuts off connections whose next request has not fully arrived within
 * limits.request_deadline of their start or previous answer, whatever the pace
 * of their bytes (libmicrohttpd's idle timeout restarts with each one), and those
 * whose client is gone. */
static void *reaper_main(void *arg)
{
    struct listener *l = arg;
    pthread_mutex_lock(&l->conns_mu);
    while (!l->stopping) {
        const struct config *cfg = config_holder_acquire(l->deps.configs);
        long deadline = cfg->request_deadline_ms;
        unsigned idle_max = cfg->idle_connections, idle_cut = 0;
        config_holder_release(l->deps.configs, cfg);
        long now = clock_ms();
        while (l->waiting.head != NULL && now - l->waiting.head->since_ms >= deadline)
            conn_cut(l, l->waiting.head);
        reaper_note_hups(l, now);
        /* Kept-alive connections idle for a second, past limits.idle_connections, are
         * closed oldest first: each holds libmicrohttpd's whole pool
         * (limits.connection_memory, zeroed after every answer), so these bound what
         * idle clients cost. */
        for (struct conn *k = l->waiting.head, *next; k != NULL; k = next) {
            next = k->next;
            if (k->peer_closed_ms != 0 && now - k->peer_closed_ms >= CONN_HUP_GRACE_MS)
                conn_cut(l, k);
            else if (k->answered && l->n_answered > idle_max && now - k->since_ms >= 1000) {
                conn_cut(l, k);
                idle_cut++;
            }
        }
        /* Their pools are freed once libmicrohttpd closes them; many at once are worth
         * handing back to the system rather than keeping in malloc's free lists. */
        /* Workers that left after a burst leave freed memory in malloc's arenas. */
        if (idle_cut >= 32 || atomic_exchange(&l->retired, 0) >= 8)
            l->trim_pending = true;
        else if (l->trim_pending && idle_cut == 0) {
            l->trim_pending = false;
            l->trim_jobs_done = atomic_load(&l->jobs_submitted);
            give_back_memory(l, "idle connections or workers gone");
        }
        trim_after_burst(l, now);
        struct timespec dl = clock_deadline(deadline < 1000 ? deadline / 4 + 1 : 250);
        pthread_cond_timedwait(&l->reaper_cv, &l->conns_mu, &dl);
    }
    pthread_mutex_unlock(&l->conns_mu);
    return NULL;
}

/* --------------------------------------------------------------- workers */

/* Runs dispatch off libmicrohttpd's threads, which only move bytes: a request may
 * wait for a password check, the database or its target, and a thread per
 * connection would cost every idle connection a thread. */
static enum MHD_Result dispatch(struct MHD_Connection *c, struct request *rq, const char *path,
                                const char *method);

/* Workers idle this long exit, down to WORKERS_KEPT: after a burst of a hundred
 * connections, each idle one held its stack's touched pages and its share of malloc's
 * arenas for the life of the process. */
#define WORKER_IDLE_EXIT_MS 5000
#define WORKERS_KEPT 4

static void *worker_main(void *arg)
{
    struct worker_slot *self = arg;
    struct listener *l = self->l;
    pthread_mutex_lock(&l->jobs_mu);
    for (;;) {
        bool retire = false;
        while (l->jobs_head == NULL && !l->workers_stop && !retire) {
            l->idle_workers++;
            struct timespec dl = clock_deadline(WORKER_IDLE_EXIT_MS);
            int rc = pthread_cond_timedwait(&l->jobs_cv, &l->jobs_mu, &dl);
            l->idle_workers--;
            retire = rc == ETIMEDOUT && l->jobs_head == NULL && l->n_workers > WORKERS_KEPT;
        }
        if (retire) {
            self->state = SLOT_EXITED;
            l->n_workers--;
            atomic_fetch_add(&l->retired, 1);
            break;
        }
        struct request *rq = l->jobs_head;
        if (rq == NULL)
            break; /* stopping, and nothing left to answer */
        l->jobs_head = rq->next_job;
        if (l->jobs_head == NULL)
            l->jobs_tail = NULL;
        l->running++;
        pthread_mutex_unlock(&l->jobs_mu);

        struct MHD_Connection *c = rq->c;
        rq->ret = dispatch(c, rq, rq->url, rq->method);
        rq->answered = true;
        conn_state(l, c, false);
        /* rq belongs to libmicrohttpd's thread again from here on. */
        MHD_resume_connection(c);

        pthread_mutex_lock(&l->jobs_mu);
        l->running--;
        if (l->running == 0 && l->jobs_head == NULL)
            pthread_cond_broadcast(&l->jobs_done);
    }
    pthread_mutex_unlock(&l->jobs_mu);
    return NULL;
}

/* Starts a worker in a free place (joining the thread that left it, if any). Locked. */
static bool worker_start(struct listener *l)
{
    for (unsigned i = 0; i < l->max_workers; i++) {
        struct worker_slot *w = &l->workers[i];
        if (w->state == SLOT_LIVE)
            continue;
        if (w->state == SLOT_EXITED) /* it has let go of jobs_mu: it is returning */
            pthread_join(w->thread, NULL);
        w->l = l;
        w->state = SLOT_FREE;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return false;
        w->state = SLOT_LIVE;
        l->n_workers++;
        return true;
    }
    return false;
}

/* Suspends c and queues rq for a worker, starting one if all are busy; while the
 * listener stops, answers here instead. */
static enum MHD_Result submit(struct listener *l, struct MHD_Connection *c, struct request *rq,
                              const char *url, const char *method)
{
    pthread_mutex_lock(&l->jobs_mu);
    if (l->workers_stop) {
        pthread_mutex_unlock(&l->jobs_mu);
        return dispatch(c, rq, url, method);
    }
    rq->c = c;
    rq->url = url;
    rq->method = method;
    rq->in_worker = true;
    rq->next_job = NULL;
    conn_state(l, c, true);
    MHD_suspend_connection(c);
    if (l->jobs_tail)
        l->jobs_tail->next_job = rq;
    else
        l->jobs_head = rq;
    l->jobs_tail = rq;
    atomic_fetch_add_explicit(&l->jobs_submitted, 1, memory_order_relaxed);
    /* One worker was started with the listener; more as they are needed. */
    if (l->idle_workers == 0 && l->n_workers < l->max_workers)
        worker_start(l);
    pthread_mutex_unlock(&l->jobs_mu);
    /* After the unlock: a worker woken under the lock would only sleep again on it. */
    pthread_cond_signal(&l->jobs_cv);
    return MHD_YES;
}

/* ----------------------------------------------------------- MHD callbacks */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)c;
    struct request *rq = hibus_xcalloc(1, sizeof *rq);
    rq->l = cls;
    rq->cfg = config_holder_acquire(rq->l->deps.configs);
    rq->uri = hibus_xstrdup(uri);
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    in_flight_add(rq->l, 1);
    rq->counted = true;
    return rq;
}

struct cl_count {
    const char *first;
    bool differ;
    unsigned n;
};

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value)
{
    (void)kind;
    struct cl_count *k = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    if (k->n++ == 0)
        k->first = value;
    else if (value == NULL || k->first == NULL || strcmp(value, k->first) != 0)
        k->differ = true;
    return MHD_YES;
}

/* Why the request's framing cannot be trusted, or NULL: both Content-Length and
 * Transfer-Encoding (a smuggling vector: proxies and hibus could disagree on where
 * the body ends), Content-Lengths that differ, or a transfer coding other than
 * chunked (hibus could not find the body's end at all); *code is what to answer
 * (HIBUS_E_UNSUPPORTED for the last, HIBUS_E_BAD_REQUEST for the others). */
static const char *framing_problem(struct MHD_Connection *c, const char *cl, enum hibus_err *code)
{
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    struct cl_count k = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_content_length, &k);
    *code = HIBUS_E_UNSUPPORTED;
    if (te != NULL && strcasecmp(te, "chunked") != 0)
        return "Transfer-Encoding other than chunked: send the body with Content-Length, or "
               "chunked";
    *code = HIBUS_E_BAD_REQUEST;
    if (te != NULL && cl != NULL)
        return "both Content-Length and Transfer-Encoding: send exactly one";
    if (k.differ)
        return "Content-Length given more than once with different values: send one";
    return NULL;
}

/* A header's name must be a token and its value free of control characters
 * other than HTAB (RFC 9110 5.1, 5.5). A folded line (obs-fold) is refused too
 * (RFC 9112 5.2 allows that): libmicrohttpd 0.9.75 appends the continuation to the
 * header's NAME, in a copy, so the name no longer sits in the line it was read
 * from, directly before its value ("Name\0", optional SP/HTAB, value). A spliced
 * name that still looks like a token is caught only that way. */
struct header_check {
    json_t *details;
    size_t bytes;     /* names and values, with ": " and CRLF */
    unsigned hosts;   /* Host header lines */
    const char *host; /* the first one's value */
};

/* What hibus itself refuses, below what libmicrohttpd can hold in a connection's
 * memory (limits.connection_memory, fixed at start): a request target of more than a
 * quarter of it (414) and request headers of more than half (431). */
static size_t request_target_max(const struct listener *l)
{
    return l->connection_memory / 4;
}

static size_t headers_max(const struct listener *l)
{
    return l->connection_memory / 2;
}

static bool is_token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct header_check *hc = cls;
    const char *what = NULL;
    size_t klen = strlen(key);
    hc->bytes += klen + 4 + (value ? strlen(value) : 0);
    if (value != NULL) {
        uintptr_t p = (uintptr_t)key + klen + 1, v = (uintptr_t)value;
        while (p < v && (*(const char *)p == ' ' || *(const char *)p == '\t'))
            p++;
        if (p != v)
            what = "(its name joined with the next line) is folded onto a line that starts "
                   "with a space or tab (obs-fold): send each header on one line";
    }
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0 && hc->hosts++ == 0)
        hc->host = value;
    if (klen == 0 && what == NULL)
        what = "is an empty header name";
    for (size_t i = 0; i < klen && what == NULL; i++)
        if (!is_token_char((unsigned char)key[i]))
            what = "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only, "
                   "no space before the colon)";
    for (const char *v = value; v != NULL && what == NULL && *v; v++)
        if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
            what = "has a control character in its value";
    if (what != NULL) {
        char name[160];
        size_t at = text_escape(name, 0, sizeof name - 1, key);
        name[at] = '\0';
        char msg[512];
        snprintf(msg, sizeof msg, "the header \"%s\" %s", name, what);
        json_array_append_new(hc->details, json_string(msg));
    }
    return MHD_YES;
}

/* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host, any request at most one,
 * and its value is an authority's host[:port] (RFC 3986 3.2.2, possibly empty);
 * otherwise the answer is 400. The request target (RFC 9112 3.2) has no space or
 * control character: libmicrohttpd 0.9.75 takes "GET /a b HTTP/1.1" as the path
 * "/a b", where another parser would see something else. */
static void check_host_and_target(const struct header_check *hc, const char *version,
                                  const char *uri, json_t *details)
{
    if (hc->hosts > 1) {
        json_array_append_new(details, json_string("the Host header is given more than once: "
                                                   "send exactly one"));
    } else if (hc->hosts == 0 && version != NULL && strcmp(version, "HTTP/1.1") == 0) {
        json_array_append_new(details, json_string("an HTTP/1.1 request needs a Host header "
                                                   "(RFC 9112 3.2)"));
    } else if (hc->host != NULL) {
        for (const char *h = hc->host; *h; h++) {
            unsigned char ch = (unsigned char)*h;
            bool alnum = (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
            if (!alnum && (ch == '\0' || strchr("-._~%!$&'()*+,;=:[]", ch) == NULL)) {
                json_array_append_new(details, json_string("the Host header is not a host name or "
                                                           "address with an optional :port"));
                break;
            }
        }
    }
    for (const unsigned char *u = (const unsigned char *)uri; *u; u++) {
        if (*u <= 0x20 || *u == 0x7f) {
            json_array_append_new(details,
                                  json_string("the request target has a space or a control "
                                              "character: percent-encode it (%20 for a space)"));
            break;
        }
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    const struct listener *l = cls;
    struct request *rq = *con_cls;
    if (rq == NULL)
        return MHD_NO;
    const struct config *cfg = rq->cfg;

    if (rq->answered) { /* resumed: a worker has answered */
        struct MHD_Response *r = rq->resp;
        rq->resp = NULL;
        rq->in_worker = false;
        if (r == NULL || rq->ret != MHD_YES) {
            if (r != NULL)
                MHD_destroy_response(r);
            return MHD_NO;
        }
        meter(rq);
        enum MHD_Result ret = listener_queue_ours(c, rq->resp_status, r);
        MHD_destroy_response(r);
        return ret;
    }

    if (rq->id[0] == '\0') { /* first call: headers are in */
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
        if (rid != NULL && request_id_valid(rid))
            hibus_strlcpy(rq->id, rid, sizeof rq->id);
        else
            request_id_new(rq->id);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        enum hibus_err framing_code = HIBUS_OK;
        const char *framing = framing_problem(c, cl, &framing_code);
        if (framing != NULL) {
            /* The body's end is ambiguous, so what follows it cannot be trusted as
             * the next request: answer, and close the connection (RFC 9112 6.1,
             * 6.3). */
            static const char *const close_it[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};
            return send_error(c, rq, framing_code,
                              framing_code == HIBUS_E_UNSUPPORTED ? "transfer coding not supported"
                                                                  : "malformed request",
                              details1(framing), close_it);
        }
        struct header_check hc = {.details = json_array()};
        MHD_get_connection_values(c, MHD_HEADER_KIND, check_header, &hc);
        /* Below libmicrohttpd's own limits (the connection's memory, past which it
         * refuses the request itself), so that what is too long gets hibus's own
         * answer, which says how long it may be. */
        static const char *const close_long[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};
        char why[160];
        if (strlen(rq->uri) > request_target_max(l)) {
            json_decref(hc.details);
            snprintf(why, sizeof why,
                     "the request target is %zu bytes long, more than %zu: send the data in "
                     "the body",
                     strlen(rq->uri), request_target_max(l));
            return send_error_status(c, rq, MHD_HTTP_URI_TOO_LONG, HIBUS_E_TOO_LARGE,
                                     "request target too long", details1(why), close_long);
        }
        if (hc.bytes > headers_max(l)) {
            json_decref(hc.details);
            snprintf(why, sizeof why,
                     "the headers are %zu bytes long, more than %zu (limits.connection_memory "
                     "/ 2)",
                     hc.bytes, headers_max(l));
            return send_error_status(c, rq, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                     HIBUS_E_TOO_LARGE, "headers too large", details1(why),
                                     close_long);
        }
        size_t bad_headers = json_array_size(hc.details);
        check_host_and_target(&hc, version, rq->uri, hc.details);
        if (json_array_size(hc.details) > 0) {
            /* Where this request ends is not to be trusted either. */
            static const char *const close_it[] = {MHD_HTTP_HEADER_CONNECTION, "close", NULL};
            return send_error(c, rq, HIBUS_E_BAD_REQUEST,
                              bad_headers > 0 ? "malformed header" : "malformed request",
                              hc.details, close_it);
        }
        json_decref(hc.details);
        if (cl != NULL) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno != 0 || *end != '\0' || v > cfg->max_body)
                rq->too_large = true;
        }
        /* Refuse at once, without reading a body we would throw away; MHD then
         * closes the connection. */
        if (rq->too_large && strcmp(url, "/health") != 0 && strcmp(url, "/ready") != 0)
            return dispatch(c, rq, url, method);
        return MHD_YES;
    }

    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_large || rq->body.len + n > cfg->max_body) {
            rq->too_large = true;
            return MHD_YES; /* discard; answered 413 at the end */
        }
        return buf_append(&rq->body, upload, n) ? MHD_YES : MHD_NO;
    }
    /* The whole request is in. /health is answered here, at once, whatever the
     * workers are doing; everything else by a worker. */
    if (strcmp(url, "/health") == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return dispatch(c, rq, url, method);
    return submit(rq->l, c, rq, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct request *rq = *con_cls;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        conn_answered(l, c);
    if (rq == NULL)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->id[0])
        LOG_DEBUG(rq->id, "request ended early (code %d)", (int)toe);
    meter(rq); /* an answer not queued (the worker failed): counted all the same */
    config_holder_release(l->deps.configs, rq->cfg);
    if (rq->resp != NULL)
        MHD_destroy_response(rq->resp);
    if (rq->counted)
        in_flight_add(l, -1);
    free(rq->uri);
    buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

#define MHD_LOG_PER_SECOND 10

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    /* Its refusals are logged by MHD_queue_response above, with the request id and
     * without the HTML page this message quotes, which is not what was sent. */
    if (strncmp(buf, "Error processing request (HTTP response code is", 47) == 0)
        return;
    /* Its messages are about connections (one closed early, a malformed request),
     * so one peer can cause any number of them: at most MHD_LOG_PER_SECOND a second
     * are written, and how many were left out is said with the first message of a
     * later second. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static long window;
    static unsigned written, dropped;
    long now = clock_ms() / 1000;
    unsigned said_dropped = 0;
    bool write_it;
    pthread_mutex_lock(&mu);
    if (now != window) {
        said_dropped = dropped;
        window = now;
        written = dropped = 0;
    }
    write_it = written < MHD_LOG_PER_SECOND;
    if (write_it)
        written++;
    else
        dropped++;
    pthread_mutex_unlock(&mu);
    if (said_dropped > 0)
        LOG_WARN(NULL, "libmicrohttpd: %u more messages in the last second were not logged",
                 said_dropped);
    if (write_it)
        LOG_WARN(NULL, "libmicrohttpd: %s", buf);
}

/* ------------------------------------------------------------ life cycle */

/* ------------------------------------------------------------------- TLS */

/* The listener that speaks TLS in this process: GnuTLS's certificate callback has no
 * argument of its own. */
static struct listener *tls_owner;

static void tls_log_served(const struct tls_creds *c, const char *what)
{
    char when[32];
    time_t exp = tls_creds_expires(c);
    struct tm tm;
    gmtime_r(&exp, &tm);
    strftime(when, sizeof when, "%Y-%m-%d", &tm);
    long days = (long)((exp - time(NULL)) / 86400);
    if (days < 30)
        LOG_WARN(NULL, "TLS: %s %s expires on %s, in %ld days: renew it and reload (SIGHUP)", what,
                 tls_creds_subject(c), when, days);
    else
        LOG_INFO(NULL, "TLS: %s %s, valid until %s", what, tls_creds_subject(c), when);
}

/* GnuTLS asks for the server certificate of a handshake: the current configuration's,
 * so a reload brings a new one to new connections; if the configuration has none any
 * more (TLS cannot be turned off without a restart), the last one served. */
int listener_tls_cert(gnutls_session_t session, const gnutls_datum_t *req_ca, int nreqs,
                      const gnutls_pk_algorithm_t *algos, int nalgos, gnutls_pcert_st **pcert,
                      unsigned int *n, gnutls_privkey_t *key)
{
    (void)session, (void)req_ca, (void)nreqs, (void)algos, (void)nalgos;
    struct listener *l = tls_owner;
    const struct config *cfg = config_holder_acquire(l->deps.configs);
    pthread_mutex_lock(&l->tls_mu);
    struct tls_creds *last = l->tls_served[l->n_tls_served - 1];
    if (cfg->tls != NULL && cfg->tls != last) {
        l->tls_served =
            hibus_xreallocarray(l->tls_served, l->n_tls_served + 1, sizeof *l->tls_served);
        l->tls_served[l->n_tls_served++] = last = tls_creds_ref(cfg->tls);
        tls_log_served(last, "now serving the reloaded certificate");
    }
    pthread_mutex_unlock(&l->tls_mu);
    config_holder_release(l->deps.configs, cfg);
    tls_creds_get(last, pcert, n, key);
    return 0;
}

/* Room in RLIMIT_NOFILE for every connection hibus may hold, the database pool and
 * the targets' connections: the soft limit is raised towards the hard one. */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)cfg->max_connections + CONN_RESERVE + 1024;
    if (rl.rlim_cur >= want)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        LOG_WARN(NULL,
                 "open files are limited to %llu: fewer than limits.max_connections (%u) "
                 "connections may be held; raise the limit (ulimit -n, LimitNOFILE=)",
                 (unsigned long long)(rl.rlim_cur > was ? rl.rlim_cur : was), cfg->max_connections);
}

/* Answers what is queued, then stops the workers and the reaper. */
static void stop_threads(struct listener *l)
{
    pthread_mutex_lock(&l->jobs_mu);
    while (l->jobs_head != NULL || l->running > 0)
        pthread_cond_wait(&l->jobs_done, &l->jobs_mu);
    l->workers_stop = true;
    pthread_cond_broadcast(&l->jobs_cv);
    pthread_mutex_unlock(&l->jobs_mu);
    /* No place changes hands once workers_stop is set. */
    for (unsigned i = 0; i < l->max_workers; i++)
        if (l->workers[i].state != SLOT_FREE) {
            pthread_join(l->workers[i].thread, NULL);
            l->workers[i].state = SLOT_FREE;
        }
    l->n_workers = 0;
    pthread_mutex_lock(&l->conns_mu);
    l->stopping = true;
    pthread_cond_broadcast(&l->reaper_cv);
    pthread_mutex_unlock(&l->conns_mu);
    if (l->reaper_started)
        pthread_join(l->reaper, NULL);
    l->reaper_started = false;
}

static void free_listener(struct listener *l)
{
    ratelimit_free(l->rates);
    token_cache_free(l->tokens);
    for (size_t i = 0; i < l->n_tls_served; i++)
        tls_creds_unref(l->tls_served[i]);
    free(l->tls_served);
    free(l->client_ca_pem);
    if (tls_owner == l)
        tls_owner = NULL;
    pthread_mutex_destroy(&l->tls_mu);
    if (l->hup_fd >= 0)
        close(l->hup_fd);
    auth_guard_free(l->guard);
    free(l->workers);
    pthread_cond_destroy(&l->jobs_done);
    pthread_cond_destroy(&l->jobs_cv);
    pthread_mutex_destroy(&l->jobs_mu);
    pthread_cond_destroy(&l->reaper_cv);
    pthread_mutex_destroy(&l->conns_mu);
    pthread_cond_destroy(&l->idle);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

enum hibus_err listener_start(const struct listener_deps *deps, struct listener **out,
                              struct hibus_error *err)
{
    const struct config *cfg = deps->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int gai = getaddrinfo(cfg->listen_address, port, &hints, &ai);
    if (gai != 0)
        return hibus_error_set(err, HIBUS_E_CONFIG, "could not resolve listen address \"%s\": %s",
                               cfg->listen_address, gai_strerror(gai));

    struct listener *l = hibus_xcalloc(1, sizeof *l);
    l->deps = *deps;
    l->started = time(NULL);
    l->guard = auth_guard_new();
    l->rates = ratelimit_new();
    l->tokens = token_cache_new();
    if (l->guard == NULL) {
        ratelimit_free(l->rates);
        token_cache_free(l->tokens);
        free(l);
        freeaddrinfo(ai);
        hibus_error_set(err, HIBUS_E_IO, "no random bytes for the failed-login table");
        return HIBUS_E_IO;
    }
    pthread_mutex_init(&l->mu, NULL);
    clock_cond_init(&l->idle);
    pthread_mutex_init(&l->conns_mu, NULL);
    clock_cond_init(&l->reaper_cv);
    l->hup_fd = epoll_create1(EPOLL_CLOEXEC);
    pthread_mutex_init(&l->jobs_mu, NULL);
    clock_cond_init(&l->jobs_cv); /* monotonic, for the idle workers' timed waits */
    pthread_cond_init(&l->jobs_done, NULL);
    l->max_workers = cfg->workers;
    l->max_conns = cfg->max_connections;
    l->connection_memory = cfg->connection_memory;
    l->workers = hibus_xcalloc(l->max_workers, sizeof *l->workers);
    raise_fd_limit(cfg);
    pthread_mutex_init(&l->tls_mu, NULL);
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)(uintptr_t)listener_tls_cert},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL}, /* MHD_OPTION_HTTPS_MEM_TRUST with a client CA */
        {MHD_OPTION_END, 0, NULL}};
    if (cfg->tls != NULL && cfg->tls_client_ca != NULL) {
        /* libmicrohttpd then asks every client for a certificate (not requiring one). */
        char why[512];
        l->client_ca_pem = tls_read_pem(cfg->tls_client_ca, why, sizeof why);
        if (l->client_ca_pem != NULL)
            tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, l->client_ca_pem};
        else
            LOG_ERROR(NULL, "listen.tls.client_ca: %s; no client certificates are asked for", why);
    }
    if (cfg->tls != NULL) {
        l->tls_served = hibus_xcalloc(1, sizeof *l->tls_served);
        l->tls_served[l->n_tls_served++] = tls_creds_ref(cfg->tls);
        tls_owner = l;
        tls_log_served(cfg->tls, "serving HTTPS with");
    }

    /* libmicrohttpd's threads (one per core, at most 4) only move bytes, with epoll,
     * so an idle or slow connection costs memory, not a thread; a whole request is
     * handed to a worker (submit) while its connection is suspended. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned io_threads = cores < 1 ? 1 : cores > 4 ? 4 : (unsigned)cores;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cfg->tls != NULL)
        flags |= MHD_USE_TLS;
    pthread_mutex_lock(&l->jobs_mu);
    bool started = l->hup_fd >= 0 && worker_start(l);
    pthread_mutex_unlock(&l->jobs_mu);
    if (started && pthread_create(&l->reaper, NULL, reaper_main, l) == 0)
        l->reaper_started = true;
    else
        started = false;
    l->mhd = !started ? NULL
                      : MHD_start_daemon(
                            flags, 0, NULL, NULL, on_request, l, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, l, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, l, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->connection_memory,
                            MHD_OPTION_THREAD_POOL_SIZE, io_threads, MHD_OPTION_CONNECTION_LIMIT,
                            cfg->max_connections + CONN_RESERVE, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            cfg->per_address, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)((cfg->connection_timeout_ms + 999) / 1000), MHD_OPTION_ARRAY,
                            cfg->tls != NULL ? tls_opts : tls_opts + 3, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (l->mhd == NULL) {
        int e = errno;
        stop_threads(l);
        free_listener(l);
        hibus_error_set(err, HIBUS_E_IO, "could not listen on %s:%d: %s", cfg->listen_address,
                        cfg->listen_port, strerror(e));
        hibus_error_hint(err, "Is another process using the port? Change listen.port in %s.",
                         cfg->path);
        return HIBUS_E_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_BIND_PORT);
    l->port = di ? (int)di->port : cfg->listen_port;
    *out = l;
    return HIBUS_OK;
}

int listener_port(const struct listener *l)
{
    return l->port;
}

void listener_quiesce(struct listener *l)
{
    atomic_store(&l->draining, true);
    MHD_socket s = MHD_quiesce_daemon(l->mhd);
    if (s != MHD_INVALID_SOCKET)
        close(s);
}

bool listener_drain(struct listener *l, long timeout_ms)
{
    struct timespec dl = clock_deadline(timeout_ms);
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    while (l->in_flight > 0 && rc == 0)
        rc = pthread_cond_timedwait(&l->idle, &l->mu, &dl);
    bool idle = l->in_flight == 0;
    pthread_mutex_unlock(&l->mu);
    return idle;
}

void listener_stop(struct listener *l)
{
    if (l == NULL)
        return;
    /* Every queued request is answered first: libmicrohttpd must not be stopped
     * with a connection still suspended. */
    stop_threads(l);
    MHD_stop_daemon(l->mhd);
    free_listener(l);
}
