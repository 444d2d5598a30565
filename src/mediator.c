/*
 * mediator.c - the http mediator: forwards a request to a route's target with
 * libcurl and collects the answer.
 *
 * Connection reuse: one CURLSH shares the connection cache, DNS cache and TLS
 * sessions between all easy handles, so keep-alive connections to a target
 * survive from one request to the next whichever thread sends them. Easy
 * handles themselves are kept in a small free list and reset between uses.
 * Everything here is thread-safe after mediator_global_init().
 */
#define LOG_SUBSYS "mediator"
#include "hibus/mediator.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/log.h"

#define MEDIATOR_FREE_HANDLES 64

static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
static pthread_mutex_t free_mu = PTHREAD_MUTEX_INITIALIZER;
static CURL *free_handles[MEDIATOR_FREE_HANDLES];
static size_t n_free_handles;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
    (void)h, (void)access, (void)u;
    pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
    (void)h, (void)u;
    pthread_mutex_unlock(&share_locks[data]);
}

enum hibus_err mediator_global_init(struct hibus_error *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return hibus_error_set(err, HIBUS_E_IO, "could not initialise libcurl");
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_locks[i], NULL);
    share = curl_share_init();
    if (share == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM, "could not create the curl share handle");
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return HIBUS_OK;
}

void mediator_global_cleanup(void)
{
    pthread_mutex_lock(&free_mu);
    for (size_t i = 0; i < n_free_handles; i++)
        curl_easy_cleanup(free_handles[i]);
    n_free_handles = 0;
    pthread_mutex_unlock(&free_mu);
    if (share != NULL) {
        curl_share_cleanup(share);
        share = NULL;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&share_locks[i]);
    curl_global_cleanup();
}

static CURL *handle_get(void)
{
    CURL *h = NULL;
    pthread_mutex_lock(&free_mu);
    if (n_free_handles > 0)
        h = free_handles[--n_free_handles];
    pthread_mutex_unlock(&free_mu);
    if (h == NULL)
        h = curl_easy_init();
    else
        curl_easy_reset(h);
    return h;
}

static void handle_put(CURL *h)
{
    pthread_mutex_lock(&free_mu);
    if (n_free_handles < MEDIATOR_FREE_HANDLES) {
        free_handles[n_free_handles++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&free_mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

bool mediator_header_is_hop_by_hop(const char *name)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",
                                      "proxy-authenticate", "proxy-authorization", "te", "trailer",
                                      "transfer-encoding", "upgrade",
                                      /* set by curl or by our listener itself: */
                                      "host", "content-length", "expect"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (strcasecmp(name, hop[i]) == 0)
            return true;
    return false;
}

/* True when name is listed in a Connection header's value ("close, X-Foo"). */
static bool named_in_connection(const char *connection, const char *name)
{
    if (connection == NULL)
        return false;
    size_t nl = strlen(name);
    for (const char *p = connection; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - p) == nl && strncasecmp(p, name, nl) == 0)
            return true;
        p = e;
    }
    return false;
}

struct body_sink {
    struct buf body;
    size_t max;
    bool too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct body_sink *s = userp;
    size_t n = size * nmemb;
    if (s->body.len + n > s->max) {
        s->too_large = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return buf_append(&s->body, data, n) ? n : 0;
}

static void headers_clear(struct mediator_response *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->n_headers = 0;
}

/* libcurl resends a request by itself when a reused keep-alive connection turns
 * out to be closed before any byte of an answer arrived; it has no option to turn
 * that off. The target may then have received the request twice. libcurl calls
 * CURLOPT_PREREQFUNCTION right before it sends each request (7.80.0), so every call
 * after the first is a resend, and the attempt log shows them. */
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    ((struct mediator_response *)userp)->sends++;
    return CURL_PREREQFUNC_OK;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct mediator_response *r = userp;
    size_t n = size * nmemb;
    /* A status line starts a new header block (after 100 Continue, for one). */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        headers_clear(r);
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n; /* the blank line that ends the block */
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char *name = hibus_xstrndup(data, nl);
    char *value = hibus_xstrndup(v, (size_t)(end - v));
    r->headers = hibus_xreallocarray(r->headers, r->n_headers + 1, sizeof *r->headers);
    r->headers[r->n_headers].name = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
    return n;
}

/* Drops the hop-by-hop headers of the answer, including those its Connection
 * header names, keeping the order of the rest. */
static void response_strip_hop_by_hop(struct mediator_response *r)
{
    const char *connection = NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, "connection") == 0)
            connection = r->headers[i].value;
    size_t keep = 0;
    char *conn_copy = connection ? hibus_xstrdup(connection) : NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        struct mediator_header h = r->headers[i];
        if (mediator_header_is_hop_by_hop(h.name) || named_in_connection(conn_copy, h.name)) {
            free(h.name);
            free(h.value);
        } else {
            r->headers[keep++] = h;
        }
    }
    r->n_headers = keep;
    free(conn_copy);
}

static struct curl_slist *append_header(struct curl_slist *l, const char *name, const char *value,
                                        bool *ok)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = hibus_xmalloc(len);
    snprintf(line, len, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(l, line);
    free(line);
    if (n == NULL) {
        *ok = false;
        return l;
    }
    return n;
}

static char *build_url(const char *base, const char *query)
{
    if (query == NULL || query[0] == '\0')
        return hibus_xstrdup(base);
    size_t len = strlen(base) + strlen(query) + 2;
    char *u = hibus_xmalloc(len);
    snprintf(u, len, "%s%c%s", base, strchr(base, '?') ? '&' : '?', query);
    return u;
}

enum hibus_err mediator_forward(const struct config_route *route, const struct mediator_request *rq,
                                struct mediator_response *resp)
{
    memset(resp, 0, sizeof *resp);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    resp->started_epoch_ms = (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
    resp->url = rq->url ? hibus_xstrdup(rq->url) : build_url(route->url, rq->query);
    CURL *h = handle_get();
    if (h == NULL) {
        hibus_strlcpy(resp->error, "could not create a curl handle", sizeof resp->error);
        return HIBUS_E_NOMEM;
    }

    bool ok = true, has_ctype = false, has_accept = false;
    struct curl_slist *hdrs = NULL;
    const char *connection = NULL;
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcasecmp(rq->headers[i].name, "connection") == 0)
            connection = rq->headers[i].value;
    for (size_t i = 0; !rq->own_body && i < rq->n_headers; i++) {
        const struct mediator_header *x = &rq->headers[i];
        /* The client's credentials are for hibus, never for the target. */
        if (mediator_header_is_hop_by_hop(x->name) || named_in_connection(connection, x->name) ||
            strcasecmp(x->name, "authorization") == 0 || strcasecmp(x->name, "x-request-id") == 0)
            continue;
        hdrs = append_header(hdrs, x->name, x->value, &ok);
        has_ctype = has_ctype || strcasecmp(x->name, "content-type") == 0;
        has_accept = has_accept || strcasecmp(x->name, "accept") == 0;
    }
    if (rq->request_id != NULL)
        hdrs = append_header(hdrs, "X-Request-Id", rq->request_id, &ok);
    if (rq->own_body && rq->content_type != NULL) {
        hdrs = append_header(hdrs, "Content-Type", rq->content_type, &ok);
        has_ctype = true;
    }
    /* Without one, libcurl would label a POST application/x-www-form-urlencoded (and
     * add an Accept of any type): a target gets no Content-Type the client did not send. */
    if (!has_ctype)
        hdrs = curl_slist_append(hdrs, "Content-Type:"); /* "Name:" removes curl's own */
    if (rq->accept != NULL)
        hdrs = append_header(hdrs, "Accept", rq->accept, &ok);
    else if (!has_accept)
        hdrs = curl_slist_append(hdrs, "Accept:"); /* nor libcurl's Accept: */
    hdrs = curl_slist_append(hdrs, "Expect:");     /* no 100-continue round trip */
    if (route->auth_kind == CONFIG_AUTH_BEARER || route->auth_kind == CONFIG_AUTH_TOKEN) {
        /* DHIS2 personal access tokens use their own scheme name, ApiToken. */
        const char *scheme = route->auth_kind == CONFIG_AUTH_TOKEN ? "ApiToken" : "Bearer";
        size_t len = strlen(route->auth_secret) + strlen(scheme) + 2;
        char *v = hibus_xmalloc(len);
        snprintf(v, len, "%s %s", scheme, route->auth_secret);
        hdrs = append_header(hdrs, "Authorization", v, &ok);
        free(v);
    } else if (route->auth_kind == CONFIG_AUTH_HEADER) {
        hdrs = append_header(hdrs, route->auth_header, route->auth_secret, &ok);
    }
    if (!ok || hdrs == NULL) {
        curl_slist_free_all(hdrs);
        handle_put(h);
        hibus_strlcpy(resp->error, "out of memory", sizeof resp->error);
        return HIBUS_E_NOMEM;
    }

    struct body_sink sink = {.max = rq->max_response ? rq->max_response : SIZE_MAX};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_SHARE, share);
    curl_easy_setopt(h, CURLOPT_URL, resp->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    /* Only http and https, also after a redirect: a route URL or a target's Location
     * must not reach file:// or another scheme. Refused when libcurl cannot say so. */
    if (curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
        curl_slist_free_all(hdrs);
        handle_put(h);
        hibus_strlcpy(resp->error, "libcurl cannot restrict protocols to http and https",
                      sizeof resp->error);
        return HIBUS_E_UNSUPPORTED;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, route->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     route->timeout_ms < 10000 ? route->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Targets' certificates are checked (curl's default) against the system's CAs, or
     * the route's tls.ca_file; tls.verify: false is logged at every start. */
    if (route->tls_ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, route->tls_ca_file);
    if (!route->tls_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, resp);
    if (route->auth_kind == CONFIG_AUTH_BASIC) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, route->auth_user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, route->auth_secret);
    }
    if (strcmp(rq->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(rq->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body_len ? rq->body : "");
    }

    CURLcode cc = curl_easy_perform(h);
    resp->resent = resp->sends > 1 ? resp->sends - 1 : 0;
    curl_off_t us = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us);
    resp->duration_ms = (double)us / 1000.0;
    enum hibus_err rc = HIBUS_OK;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        response_strip_hop_by_hop(resp);
        resp->body = sink.body.s; /* NULL when the answer had no body */
        resp->body_len = sink.body.len;
    } else {
        rc = cc == CURLE_OPERATION_TIMEDOUT ? HIBUS_E_TIMEOUT : HIBUS_E_TARGET;
        if (sink.too_large)
            snprintf(resp->error, sizeof resp->error, "response larger than %zu bytes", sink.max);
        else
            snprintf(resp->error, sizeof resp->error, "%s",
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        resp->status = 0;
        headers_clear(resp);
        buf_free(&sink.body);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    handle_put(h);
    return rc;
}

void mediator_response_free(struct mediator_response *resp)
{
    if (resp == NULL)
        return;
    headers_clear(resp);
    free(resp->body);
    free(resp->url);
    resp->body = NULL;
    resp->url = NULL;
}
