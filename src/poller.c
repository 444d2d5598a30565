/*
 * poller.c - polling channels (see hibus/poller.h and docs/polling.md).
 *
 * Once a second the poller thread looks at every enabled poll channel of the
 * current snapshot: it registers the channel's schedule in poll_state (once per
 * process and schedule), and claims the channel's slot when it is due
 * (txlog_poll_claim: one process per slot). A claimed slot is one pull: the
 * source's pages are fetched one after the other through the http mediator (the
 * poll: source is a struct config_route, so auth, TLS and timeouts are the
 * routes'), and every item of every page is stored as a queued async
 * transaction of the channel, exactly as the listener stores a posted request
 * (src/listener.c serve_async): the transform runs once to reject a bad item at
 * once and to give the delivery order key, and the delivery workers do the rest.
 * Before that, poll.lookups may fill in what an item references by id (one
 * request per reference and pull, cached in the pull).
 *
 * Invariants:
 *  - The cursor moves only when every item of the pull is stored
 *    (txlog_poll_finish with no error); any failure (no answer, an HTTP error,
 *    JSON that is not, an answer of the wrong shape, the database) ends the pull
 *    with the cursor where it was, and the next slot pulls again. Items stored
 *    before the failure are stored again then, unless poll.item_id names their
 *    id: delivery is at least once, never lost.
 *  - An item whose id was seen makes no transaction. The id is recorded after the
 *    transaction is committed, so a crash in between means a duplicate, not a
 *    loss.
 *  - A pull never outlasts its claim: before a request that could end past it,
 *    the claim is renewed (delivery.lease, or poll.timeout and a margin when that
 *    is longer), so a pull of many pages takes as long as it needs and no other
 *    process takes the slot meanwhile; if the claim lapsed (the database was out
 *    of reach, the process stalled), the pull stops with an error.
 */
#define LOG_SUBSYS "poller"

#include "hibus/poller.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/clock.h"
#include "hibus/delivery.h"
#include "hibus/log.h"
#include "hibus/mediator.h"
#include "hibus/metrics.h"

/* How often the thread looks for due slots. */
#define POLLER_LOOK_MS 1000
/* The most of a failed answer's body kept in the error. */
#define ERROR_EXCERPT 200

int64_t poller_next_slot(const struct config_poll *p, int64_t now)
{
    if (p->schedule == NULL)
        return now + (p->every_ms + 999) / 1000;
    return cron_next(&p->cron, now);
}

/* A schedule registered by this process: "channel\nstate_key". */
struct registered {
    char **keys;
    size_t n;
};

struct poller {
    struct config_holder *configs;
    struct txlog *tl;
    const char *node;
    struct clock_ticker *ticker;
    atomic_bool stopping;
    struct registered reg; /* the poller thread's only */
    long quiet_until_ms;   /* database errors are logged at most once a minute */
};

/* A database error while looking: a warning, then (while it lasts) debug lines
 * only, so a database that is down does not write a line a second per channel. */
static void db_trouble(struct poller *pl, const char *channel, const char *what,
                       const struct hibus_error *err)
{
    long now = clock_ms();
    bool loud = now >= pl->quiet_until_ms;
    if (loud)
        pl->quiet_until_ms = now + 60000;
    LOG_AT(loud ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, NULL,
           "poll channel \"%s\": could not %s: %s%s%s (tried again every second; logged at most "
           "once a minute)",
           channel, what, err->msg, err->detail[0] ? ": " : "", err->detail);
}

/* ------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------ */

/* The value at a dotted path of a JSON value, or NULL. */
static json_t *json_at(json_t *doc, const char *dotted)
{
    json_t *v = doc;
    const char *p = dotted;
    while (v != NULL) {
        size_t n = strcspn(p, ".");
        if (!json_is_object(v))
            return NULL;
        v = json_object_getn(v, p, n);
        if (p[n] == '\0')
            return v;
        p += n + 1;
    }
    return NULL;
}

/* A time-ordered (version 7) UUID as the request id of a pulled item, like the
 * listener's (src/listener.c request_id_new). */
static void request_id(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        memset(b, 0x5a, sizeof b);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* Appends value percent-encoded (RFC 3986: everything but the unreserved
 * characters), fit for a query value or a path segment. */
static void append_encoded(struct buf *u, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            buf_append(u, (const char *)c, 1);
        } else {
            char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
            buf_append(u, e, 3);
        }
    }
}

/* Appends name=value to a URL's query. */
static void add_param(struct buf *u, const char *name, const char *value)
{
    buf_append(u, strchr(u->s, '?') ? "&" : "?", 1);
    buf_append(u, name, strlen(name));
    buf_append(u, "=", 1);
    append_encoded(u, value);
}

/* No spaces, control characters or bytes libcurl would have to guess at. */
static bool url_chars(const char *u)
{
    for (const unsigned char *c = (const unsigned char *)u; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f)
            return false;
    return true;
}

/* The length of a URL's origin: scheme, "://", host and port. */
static size_t origin_len(const char *url)
{
    const char *host = strstr(url, "://");
    if (host == NULL)
        return 0;
    host += 3;
    return (size_t)(host - url) + strcspn(host, "/?#");
}

/* A next-page URL from an answer: a path on the source's host ("/api/x?page=2"),
 * or an absolute URL on the same origin (scheme, host and port). NULL otherwise:
 * the request carries the source's credentials, which must not go to whatever
 * host an answer names. Caller frees. */
static char *resolve_url(const char *source, const char *next)
{
    size_t origin = origin_len(source);
    if (strncasecmp(next, "http://", 7) == 0 || strncasecmp(next, "https://", 8) == 0) {
        size_t o = origin_len(next);
        if (o != origin || strncasecmp(next, source, o) != 0 || !url_chars(next))
            return NULL;
        return hibus_xstrdup(next);
    }
    if (next[0] != '/' || next[1] == '/' || !url_chars(next))
        return NULL;
    size_t len = origin + strlen(next) + 1;
    char *u = hibus_xmalloc(len);
    snprintf(u, len, "%.*s%s", (int)origin, source, next);
    return u;
}

/* The path of a URL, and its query (without "?"), for the transaction row. */
static void split_url(const char *url, char *path, size_t psize, const char **query)
{
    const char *host = strstr(url, "://");
    const char *p = host ? host + 3 + strcspn(host + 3, "/?#") : url;
    size_t n = strcspn(p, "?#");
    snprintf(path, psize, "%.*s", (int)n, n ? p : "/");
    if (n == 0)
        snprintf(path, psize, "/");
    *query = p[n] == '?' ? p + n + 1 : "";
}

/* ------------------------------------------------------------------------------------
 * One pull
 * ------------------------------------------------------------------------------------ */

struct pull {
    struct poller *pl;
    const struct config *cfg;
    const struct config_channel *ch;
    const struct config_poll *p;
    const char *cursor;     /* sent as poll.cursor.param, or NULL */
    long renewed, lease_ms; /* renewed: when the claim was last extended (clock_ms) */
    int stored, seen, pages, lookups;
    json_t *looked_up;  /* "<lookup>\n<id>": answer (or null: not found), for this pull */
    char *next_cursor;  /* from the source (cursor.from_items, cursor.token); NULL: none yet */
    double next_number; /* next_cursor as a number, when it is one (from_items) */
    bool next_is_number;
    char error[512]; /* why the pull failed; "" while it has not */
};

static bool failed(struct pull *pu, const char *fmt, ...) HIBUS_PRINTF(2, 3);
static bool failed(struct pull *pu, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pu->error, sizeof pu->error, fmt, ap);
    va_end(ap);
    return false;
}

/* How long a pull's claim lasts from its last renewal: delivery.lease, and at
 * least one request to the source (poll.timeout) and a margin. */
static long poll_lease_ms(const struct config *cfg, const struct config_poll *p)
{
    long one = p->source.timeout_ms + 5000;
    return cfg->delivery_lease_ms > one ? cfg->delivery_lease_ms : one;
}

/* Makes sure one more request fits in the claim, renewing it when it would not
 * (a pull of many pages or lookups takes as long as it needs); false with the
 * error set when the claim is lost: another process may be pulling the slot. */
static bool time_left(struct pull *pu)
{
    long now = clock_ms();
    if (now - pu->renewed + pu->p->source.timeout_ms <= pu->lease_ms)
        return true;
    bool held = false;
    struct hibus_error err = {0};
    if (txlog_poll_renew(pu->pl->tl, pu->ch->name, pu->pl->node, pu->lease_ms, &held, &err) !=
        HIBUS_OK)
        return failed(pu, "could not renew its claim after %d pages and %d lookups: %s", pu->pages,
                      pu->lookups, err.msg);
    if (!held)
        return failed(pu,
                      "its claim lapsed after %d pages and %d lookups (the database was out "
                      "of reach, or the process stalled, for %ld ms); the slot is pulled again",
                      pu->pages, pu->lookups, pu->lease_ms);
    pu->renewed = now;
    return true;
}

/* Puts v at a dotted path of obj, making the objects on the way (replacing what
 * is not one). Takes v's reference. */
static void json_put(json_t *obj, const char *dotted, json_t *v)
{
    size_t n = strcspn(dotted, ".");
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)n, dotted);
    if (dotted[n] == '\0') {
        json_object_set_new(obj, key, v);
        return;
    }
    json_t *next = json_object_get(obj, key);
    if (!json_is_object(next)) {
        next = json_object();
        json_object_set_new(obj, key, next);
    }
    json_put(next, dotted + n + 1, v);
}

/* A string shorter than size, or an integer, at v as text in out (an id, a
 * reference, a cursor); false for anything else. */
static bool scalar_text(const json_t *v, char *out, size_t size)
{
    if (json_is_string(v) && json_string_length(v) < size)
        snprintf(out, size, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    else
        return false;
    return true;
}

/* poll.lookups for one item: each reference the item carries is fetched (once a
 * pull) from the lookup's URL with the source's credentials, and its answer put
 * in the item. A reference the source does not know (404, 410) leaves the item
 * as it is, for the transform to judge; any other failure fails the pull. */
static bool look_up(struct pull *pu, json_t *item, size_t index)
{
    const struct config_poll *p = pu->p;
    for (size_t k = 0; k < p->n_lookups; k++) {
        const struct config_poll_lookup *l = &p->lookups[k];
        json_t *ref = json_at(item, l->id);
        char id[256];
        if (!scalar_text(ref, id, sizeof id) || id[0] == '\0')
            continue; /* nothing to look up: the transform says what is missing */
        char key[300];
        snprintf(key, sizeof key, "%zu\n%s", k, id);
        json_t *got = json_object_get(pu->looked_up, key);
        if (got == NULL) {
            if (!time_left(pu))
                return false;
            struct buf u = {0};
            const char *at = strstr(l->url, "{id}");
            buf_append(&u, l->url, (size_t)(at - l->url));
            append_encoded(&u, id);
            buf_append(&u, at + 4, strlen(at + 4));
            char *url = buf_take(&u, NULL);
            char rid[37];
            request_id(rid);
            struct mediator_request rq = {.request_id = rid,
                                          .method = "GET",
                                          .url = url,
                                          .own_body = true,
                                          .accept = "application/json",
                                          .max_response = pu->cfg->max_body};
            struct mediator_response resp;
            mediator_forward(&p->source, &rq, &resp);
            pu->lookups++;
            json_error_t je;
            json_t *doc = NULL;
            bool ok = false;
            if (resp.status == 404 || resp.status == 410) {
                LOG_WARN(NULL,
                         "poll channel \"%s\": lookup %zu of item %zu of page %d: %s answered "
                         "HTTP %ld; the item is stored without it",
                         pu->ch->name, k, index, pu->pages, url, resp.status);
                doc = json_null();
                ok = true;
            } else if (resp.status == 0) {
                failed(pu, "lookup %zu of item %zu of page %d (%s) had no answer: %s", k, index,
                       pu->pages, url, resp.error);
            } else if (resp.status < 200 || resp.status > 299) {
                failed(pu, "lookup %zu of item %zu of page %d (%s) was answered with HTTP %ld", k,
                       index, pu->pages, url, resp.status);
            } else if ((doc = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, &je)) ==
                           NULL ||
                       !json_is_object(doc)) {
                failed(pu, "lookup %zu of item %zu of page %d (%s) answered %s", k, index,
                       pu->pages, url, doc ? "JSON that is not an object" : "what is not JSON");
            } else {
                ok = true;
            }
            mediator_response_free(&resp);
            free(url);
            if (!ok) {
                json_decref(doc);
                return false;
            }
            json_object_set_new(pu->looked_up, key, doc);
            got = doc;
        }
        if (!json_is_null(got))
            json_put(item, l->into, json_deep_copy(got));
    }
    return true;
}

/* Stores one item as a queued (or, when its transform refuses it, rejected)
 * transaction of the channel. */
static bool store_item(struct pull *pu, json_t *item, size_t index, const char *url)
{
    const struct config_poll *p = pu->p;
    char id_text[256] = "";
    if (p->item_id != NULL) {
        if (!scalar_text(json_at(item, p->item_id), id_text, sizeof id_text))
            LOG_WARN(NULL,
                     "poll channel \"%s\": item %zu of page %d has no id at \"%s\" (a string "
                     "of at most 255 bytes or an integer); it is stored without a check for "
                     "duplicates",
                     pu->ch->name, index, pu->pages, p->item_id);
    }
    struct hibus_error err = {0};
    if (id_text[0] != '\0') {
        bool seen = false;
        if (txlog_poll_seen(pu->pl->tl, pu->ch->name, id_text, &seen, &err) != HIBUS_OK)
            return failed(pu, "could not look item \"%s\" up: %s%s%s", id_text, err.msg,
                          err.detail[0] ? ": " : "", err.detail);
        if (seen) {
            pu->seen++;
            return true;
        }
    }
    if (p->n_lookups > 0 && json_is_object(item) && !look_up(pu, item, index))
        return false;
    char *body = json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
    if (body == NULL)
        return failed(pu, "out of memory");
    size_t len = strlen(body);
    struct delivery_prepared prep;
    bool ok = delivery_prepare(pu->ch, body, len, &prep) == HIBUS_OK;
    json_t *pj = ok ? NULL : delivery_problems_json(&prep);
    char *pjs = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    char *key = ok ? delivery_order_key(pu->ch, &prep) : NULL;
    char rid[37], path[1024];
    request_id(rid);
    const char *query;
    split_url(url, path, sizeof path, &query);
    struct txlog_request tr = {.request_id = rid,
                               .channel = pu->ch->name,
                               .client = "poll",
                               /* an item is delivered as if posted: its JSON is the body */
                               .method = "POST",
                               .path = path,
                               .query = query,
                               .headers_json = "{\"content-type\":\"application/json\"}",
                               .body = body,
                               .body_len = len,
                               .status = ok ? TXLOG_QUEUED : TXLOG_REJECTED,
                               .node = pu->pl->node,
                               .mode = "async",
                               .order_key = key,
                               .problems_json = pjs};
    int64_t tx_id = 0;
    enum hibus_err rc = txlog_insert(pu->pl->tl, &tr, &tx_id, NULL, &err);
    free(pjs);
    free(key);
    free(body);
    delivery_prepared_free(&prep);
    if (rc != HIBUS_OK)
        return failed(pu, "could not store item %zu of page %d: %s%s%s", index, pu->pages, err.msg,
                      err.detail[0] ? ": " : "", err.detail);
    metrics_transaction(pu->ch->name, tr.status);
    LOG_DEBUG(rid, "poll channel \"%s\": item %zu of page %d -> tx=%lld status=%s", pu->ch->name,
              index, pu->pages, (long long)tx_id, tr.status);
    pu->stored++;
    if (id_text[0] != '\0' &&
        txlog_poll_remember(pu->pl->tl, pu->ch->name, id_text, tx_id, &err) != HIBUS_OK)
        return failed(pu, "could not record item \"%s\" (transaction %lld): %s%s%s", id_text,
                      (long long)tx_id, err.msg, err.detail[0] ? ": " : "", err.detail);
    return true;
}

/* The URL of the next request: the source's with the cursor and page or token, or
 * the next URL an answer gave (used as it is). Caller frees. */
static char *page_url(const struct pull *pu, long page, const char *token, const char *next_url)
{
    const struct config_poll *p = pu->p;
    if (next_url != NULL)
        return hibus_xstrdup(next_url);
    struct buf u = {0};
    buf_append(&u, p->source.url, strlen(p->source.url));
    if (p->cursor_param != NULL && pu->cursor != NULL)
        add_param(&u, p->cursor_param, pu->cursor);
    char num[32];
    if (p->paging == CONFIG_PAGING_PAGE) {
        snprintf(num, sizeof num, "%ld", page);
        add_param(&u, p->page_param, num);
        if (p->size_param != NULL) {
            snprintf(num, sizeof num, "%d", p->size);
            add_param(&u, p->size_param, num);
        }
    }
    if (token != NULL)
        add_param(&u, p->token_param, token);
    return buf_take(&u, NULL);
}

/* What follows the page just read: true with *more set, or false (an answer of
 * the wrong shape). *page, *token and *next_url are updated for the next one. */
static bool next_page(struct pull *pu, json_t *doc, size_t n_items, long *page, char **token,
                      char **next_url, bool *more)
{
    const struct config_poll *p = pu->p;
    *more = false;
    switch (p->paging) {
    case CONFIG_PAGING_NONE: return true;
    case CONFIG_PAGING_PAGE: {
        if (p->last != NULL) {
            json_t *v = json_at(doc, p->last);
            if (!json_is_boolean(v))
                return failed(pu,
                              "page %d of the answer has no boolean at \"%s\" (poll.paging.last)",
                              pu->pages, p->last);
            *more = !json_is_true(v);
        } else if (p->total_pages != NULL) {
            json_t *v = json_at(doc, p->total_pages);
            if (!json_is_integer(v))
                return failed(pu,
                              "page %d of the answer has no number at \"%s\" "
                              "(poll.paging.total_pages)",
                              pu->pages, p->total_pages);
            *more = *page - p->first_page + 1 < json_integer_value(v);
        } else {
            *more = p->size == 0 || n_items >= (size_t)p->size;
        }
        /* an empty page ends a pull whatever the answer claims: no endless loop */
        if (n_items == 0)
            *more = false;
        (*page)++;
        return true;
    }
    case CONFIG_PAGING_TOKEN: {
        json_t *v = json_at(doc, p->next_token);
        free(*token);
        *token = NULL;
        if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
            return true;
        if (!json_is_string(v))
            return failed(pu,
                          "page %d of the answer has no string at \"%s\" (poll.paging.next_token)",
                          pu->pages, p->next_token);
        *token = hibus_xstrdup(json_string_value(v));
        *more = true;
        return true;
    }
    case CONFIG_PAGING_NEXT_URL: {
        json_t *v = json_at(doc, p->next_url);
        free(*next_url);
        *next_url = NULL;
        if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
            return true;
        if (!json_is_string(v) ||
            (*next_url = resolve_url(p->source.url, json_string_value(v))) == NULL)
            return failed(pu,
                          "page %d of the answer has no URL at \"%s\" (poll.paging.next_url: a "
                          "path starting with \"/\" or an absolute URL on the source's own "
                          "scheme, host and port)",
                          pu->pages, p->next_url);
        *more = true;
        return true;
    }
    }
    return true;
}

/* cursor.from_items: the item's value at the path, if larger than the largest so
 * far. Numbers compare as numbers; text as text, which orders ISO 8601 times
 * written alike (2026-03-01T06:00:00Z) by time. An item without the value does not
 * move the cursor. */
static void note_item_cursor(struct pull *pu, json_t *item)
{
    json_t *v = json_at(item, pu->p->cursor_items);
    char text[128];
    bool is_number = json_is_number(v);
    if (json_is_real(v))
        snprintf(text, sizeof text, "%.17g", json_real_value(v));
    else if (!scalar_text(v, text, sizeof text) || text[0] == '\0')
        return;
    if (pu->next_cursor != NULL) {
        bool larger = is_number && pu->next_is_number ? json_number_value(v) > pu->next_number
                                                      : strcmp(text, pu->next_cursor) > 0;
        if (!larger)
            return;
        free(pu->next_cursor);
    }
    pu->next_cursor = hibus_xstrdup(text);
    pu->next_is_number = is_number;
    pu->next_number = is_number ? json_number_value(v) : 0;
}

/* cursor.token: the source's own next cursor in a page's answer (the last page's
 * counts); a page without one leaves the one before. */
static void note_token_cursor(struct pull *pu, json_t *doc)
{
    json_t *v = json_at(doc, pu->p->cursor_token);
    char text[512];
    if (!scalar_text(v, text, sizeof text) || text[0] == '\0')
        return;
    free(pu->next_cursor);
    pu->next_cursor = hibus_xstrdup(text);
}

/* Fetches one page and stores its items; false with pu->error set on failure. */
static bool pull_page(struct pull *pu, const char *url, json_t **doc_out, size_t *n_items)
{
    const struct config_poll *p = pu->p;
    if (!time_left(pu))
        return false;
    pu->pages++;
    char rid[37];
    request_id(rid);
    bool post = strcmp(p->method, "POST") == 0;
    struct mediator_request rq = {.request_id = rid,
                                  .method = p->method,
                                  .url = url,
                                  .own_body = true,
                                  .content_type = post ? "application/json" : NULL,
                                  .accept = "application/json",
                                  .body = post && p->body ? p->body : NULL,
                                  .body_len = post && p->body ? strlen(p->body) : 0,
                                  .max_response = pu->cfg->max_body};
    struct mediator_response resp;
    mediator_forward(&p->source, &rq, &resp);
    bool ok = false;
    if (resp.status == 0) {
        failed(pu, "the source did not answer page %d (%s): %s", pu->pages, url, resp.error);
    } else if (resp.status < 200 || resp.status > 299) {
        size_t n = resp.body_len < ERROR_EXCERPT ? resp.body_len : ERROR_EXCERPT;
        failed(pu, "the source answered page %d (%s) with HTTP %ld: %.*s", pu->pages, url,
               resp.status, (int)n, resp.body ? resp.body : "");
    } else {
        json_error_t je;
        json_t *doc = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, &je);
        json_t *items = doc != NULL && p->items != NULL ? json_at(doc, p->items) : doc;
        if (doc == NULL) {
            failed(pu, "the answer to page %d (%s) is not JSON: %s (line %d, column %d)", pu->pages,
                   url, je.text, je.line, je.column);
        } else if (!json_is_array(items)) {
            failed(pu, "the answer to page %d (%s) has no array of items %s%s%s", pu->pages, url,
                   p->items ? "at \""
                            : "(the answer itself; set poll.paging.items to the path "
                              "of the array",
                   p->items ? p->items : "", p->items ? "\" (poll.paging.items)" : ")");
        } else {
            ok = true;
            size_t i;
            json_t *item;
            json_array_foreach(items, i, item)
            {
                if (atomic_load(&pu->pl->stopping)) {
                    ok = failed(pu, "hibus is stopping");
                    break;
                }
                if (p->cursor_items != NULL)
                    note_item_cursor(pu, item);
                if (!store_item(pu, item, i, url)) {
                    ok = false;
                    break;
                }
            }
            *n_items = json_array_size(items);
        }
        if (ok)
            *doc_out = doc;
        else
            json_decref(doc);
    }
    mediator_response_free(&resp);
    return ok;
}

/* Runs one claimed slot: every page, every item; then records the outcome. */
static void pull(struct poller *pl, const struct config *cfg, const struct config_channel *ch,
                 const struct txlog_poll_slot *slot)
{
    const struct config_poll *p = ch->poll;
    struct pull pu = {.pl = pl,
                      .cfg = cfg,
                      .ch = ch,
                      .p = p,
                      .cursor = slot->cursor ? slot->cursor : p->cursor_from,
                      .renewed = clock_ms(),
                      .lease_ms = poll_lease_ms(cfg, ch->poll),
                      .looked_up = json_object()};
    /* The next cursor: the time this pull began, by the database's clock (what
     * "since the last successful pull" means), less cursor.overlap (for a source
     * whose clock is behind); kept only if the pull succeeds. */
    char next_cursor[32];
    time_t started = (time_t)(slot->started - p->cursor_overlap_ms / 1000);
    struct tm tm;
    gmtime_r(&started, &tm);
    strftime(next_cursor, sizeof next_cursor, "%Y-%m-%dT%H:%M:%SZ", &tm);

    long page = p->first_page;
    char *token = NULL, *next_url = NULL;
    bool ok = true, more = true;
    while (ok && more) {
        if (atomic_load(&pl->stopping)) {
            ok = failed(&pu, "hibus is stopping");
            break;
        }
        if (pu.pages >= p->max_pages) {
            ok = failed(&pu,
                        "the source has more than %d pages (poll.paging.max_pages); nothing "
                        "after them was pulled",
                        p->max_pages);
            break;
        }
        char *url = page_url(&pu, page, token, next_url);
        json_t *doc = NULL;
        size_t n = 0;
        ok = pull_page(&pu, url, &doc, &n) &&
             next_page(&pu, doc, n, &page, &token, &next_url, &more);
        if (ok && p->cursor_token != NULL)
            note_token_cursor(&pu, doc);
        json_decref(doc);
        free(url);
    }
    free(token);
    free(next_url);
    json_decref(pu.looked_up);

    /* The error quotes the source's answer: kept to printable ASCII, so that it
     * is one log line and always valid text for PostgreSQL. */
    for (char *c = pu.error; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    struct hibus_error err = {0};
    /* the source's own cursor when it gave one; none: the stored one stays */
    const char *cursor = p->cursor_param == NULL              ? NULL
                         : p->cursor_items || p->cursor_token ? pu.next_cursor
                                                              : next_cursor;
    if (txlog_poll_finish(pl->tl, ch->name, pl->node, ok ? cursor : NULL, pu.stored,
                          ok ? NULL : pu.error, &err) != HIBUS_OK)
        LOG_ERROR(NULL,
                  "poll channel \"%s\": could not record the pull (%s%s%s); the cursor stays "
                  "where it was and the next slot pulls again",
                  ch->name, err.msg, err.detail[0] ? ": " : "", err.detail);
    if (ok && pu.stored == 0 && pu.seen == 0) /* every slot of a quiet source: not news */
        LOG_DEBUG(NULL, "poll channel \"%s\": pulled %d page%s, nothing new", ch->name, pu.pages,
                  pu.pages == 1 ? "" : "s");
    else if (ok)
        LOG_INFO(NULL,
                 "poll channel \"%s\": pulled %d page%s, stored %d item%s (%d seen before)%s%s",
                 ch->name, pu.pages, pu.pages == 1 ? "" : "s", pu.stored, pu.stored == 1 ? "" : "s",
                 pu.seen, cursor ? "; cursor now " : "", cursor ? cursor : "");
    else
        LOG_WARN(NULL,
                 "poll channel \"%s\": pull failed after %d item%s stored, the cursor stays and "
                 "the next slot pulls again: %s",
                 ch->name, pu.stored, pu.stored == 1 ? "" : "s", pu.error);
    free(pu.next_cursor);
}

/* ------------------------------------------------------------------------------------
 * The thread
 * ------------------------------------------------------------------------------------ */

static bool is_registered(const struct registered *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->keys[i], key) == 0)
            return true;
    return false;
}

static int64_t next_slot(void *arg, int64_t wall_now)
{
    return poller_next_slot(arg, wall_now);
}

static void look(struct poller *pl, const struct config *cfg, const struct config_channel *ch)
{
    const struct config_poll *p = ch->poll;
    struct hibus_error err = {0};
    size_t klen = strlen(ch->name) + strlen(p->state_key) + 2;
    char *key = hibus_xmalloc(klen);
    snprintf(key, klen, "%s\n%s", ch->name, p->state_key);
    struct txlog_poll_schedule sch = {
        .key = p->state_key, .timezone = p->timezone, .next = next_slot, .arg = (void *)p};
    if (!is_registered(&pl->reg, key)) {
        if (txlog_poll_register(pl->tl, ch->name, &sch, &err) != HIBUS_OK) {
            db_trouble(pl, ch->name, "register its schedule", &err);
            free(key);
            return;
        }
        pl->reg.keys = hibus_xreallocarray(pl->reg.keys, pl->reg.n + 1, sizeof *pl->reg.keys);
        pl->reg.keys[pl->reg.n++] = key;
        key = NULL;
    }
    free(key);
    struct txlog_poll_slot slot = {0};
    if (txlog_poll_claim(pl->tl, ch->name, &sch, pl->node, poll_lease_ms(cfg, ch->poll), &slot,
                         &err) != HIBUS_OK) {
        db_trouble(pl, ch->name, "look for a due slot", &err);
        return;
    }
    if (slot.claimed)
        pull(pl, cfg, ch, &slot);
    free(slot.cursor);
}

static long poller_tick(void *arg)
{
    struct poller *pl = arg;
    const struct config *cfg = config_holder_acquire(pl->configs);
    for (size_t i = 0; i < cfg->n_channels && !atomic_load(&pl->stopping); i++) {
        const struct config_channel *ch = &cfg->channels[i];
        if (ch->enabled && ch->poll != NULL)
            look(pl, cfg, ch);
    }
    config_holder_release(pl->configs, cfg);
    return POLLER_LOOK_MS;
}

enum hibus_err poller_start(struct config_holder *configs, struct txlog *tl, const char *node,
                            struct poller **out, struct hibus_error *err)
{
    struct poller *pl = hibus_xcalloc(1, sizeof *pl);
    pl->configs = configs;
    pl->tl = tl;
    pl->node = node;
    atomic_init(&pl->stopping, false);
    /* the first look at once: a slot missed while hibus was down is pulled now */
    pl->ticker = clock_ticker_start(poller_tick, pl, 1);
    if (pl->ticker == NULL) {
        free(pl);
        return hibus_error_set(err, HIBUS_E_NOMEM, "could not start the poller thread");
    }
    *out = pl;
    return HIBUS_OK;
}

void poller_stop(struct poller *pl)
{
    if (pl == NULL)
        return;
    atomic_store(&pl->stopping, true);
    clock_ticker_stop(pl->ticker);
    for (size_t i = 0; i < pl->reg.n; i++)
        free(pl->reg.keys[i]);
    free(pl->reg.keys);
    free(pl);
}
