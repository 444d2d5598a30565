/*
 * txlog_read.c - what the transaction log reads (see hibus/txlog.h): one
 * transaction with its attempts as JSON (hibus tx, GET of a transaction), and
 * the LISTEN side: a dedicated connection that waits for NOTIFY hibus_queue (the
 * delivery workers' waker) or hibus_tx (hibus tail, which then reads what changed
 * by id: the follower).
 *
 * Entry points: txlog_get_json; txlog_listen, txlog_listen_on,
 * txlog_listener_next, txlog_listener_close; txlog_follow, txlog_follow_next,
 * txlog_follow_close.
 *
 * txlog_get_json borrows a pooled connection (txlog_with_conn) and reads the
 * row and its attempts in one snapshot. A struct txlog_listener owns its own
 * connection outside the pool, for one thread: a LISTEN holds its session for
 * as long as it listens, which a pooled connection must not do.
 */
#define LOG_SUBSYS "txlog"

#include "hibus/txlog.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/clock.h"
#include "hibus/log.h"
#include "hibus/text.h"
#include "txlog_internal.h"

/* ------------------------------------------------------------------------- */
/* Reading a transaction as JSON                                             */
/* ------------------------------------------------------------------------- */

/* Base64 by GnuTLS; the result is malloc'd (caller frees), NULL when out of memory. */
static char *base64_encode(const unsigned char *s, size_t n)
{
    if (n > UINT_MAX)
        return NULL;
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)s, (unsigned)n}, out = {NULL, 0};
    if (gnutls_base64_encode2(&in, &out) != 0)
        return NULL;
    char *copy = strndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    return copy;
}

/* Builds a JSON object field by field; the first failure sticks in ok. */
struct jbuild {
    json_t *obj;
    bool ok;
};

static void jset(struct jbuild *b, const char *key, json_t *val)
{
    if (val == NULL || json_object_set_new(b->obj, key, val) != 0)
        b->ok = false;
}

static void jset_text(struct jbuild *b, const char *key, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        jset(b, key, json_null());
    else
        jset(b, key, json_stringn(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col)));
}

static void jset_int(struct jbuild *b, const char *key, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        jset(b, key, json_null());
    else
        jset(b, key, json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10)));
}

static void jset_real(struct jbuild *b, const char *key, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        jset(b, key, json_null());
    else
        jset(b, key, json_real(strtod(PQgetvalue(res, row, col), NULL)));
}

/* A jsonb column (sent as text) becomes the JSON value itself. */
static void jset_json(struct jbuild *b, const char *key, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        jset(b, key, json_null());
        return;
    }
    json_error_t jerr;
    json_t *v = json_loadb(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col),
                           JSON_DECODE_ANY, &jerr);
    if (v == NULL) /* jsonb is always valid JSON; this is running out of memory */
        b->ok = false;
    else
        jset(b, key, v);
}

/* A bytea column: key as a string when valid UTF-8, else key_base64. Also sets
 * len_key to the byte count when len_key is not NULL. */
static void jset_body(struct jbuild *b, const char *key, const char *len_key, const PGresult *res,
                      int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        jset(b, key, json_null());
        if (len_key)
            jset(b, len_key, json_null());
        return;
    }
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
    if (raw == NULL) {
        b->ok = false;
        return;
    }
    if (text_utf8_valid(raw, n)) {
        jset(b, key, json_stringn((const char *)raw, n));
    } else {
        char k64[64];
        snprintf(k64, sizeof k64, "%s_base64", key);
        char *enc = base64_encode(raw, n);
        jset(b, k64, enc ? json_string(enc) : NULL);
        free(enc);
    }
    if (len_key)
        jset(b, len_key, json_integer((json_int_t)n));
    PQfreemem(raw);
}

static json_t *attempts_json(const PGresult *res)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (int r = 0; r < PQntuples(res); r++) {
        struct jbuild b = {json_object(), true};
        if (b.obj == NULL) {
            json_decref(arr);
            return NULL;
        }
        jset_text(&b, "route", res, r, 0);
        jset_int(&b, "attempt", res, r, 1);
        jset_text(&b, "method", res, r, 2);
        jset_text(&b, "url", res, r, 3);
        jset_int(&b, "status_code", res, r, 4);
        jset_text(&b, "started_at", res, r, 5);
        jset_real(&b, "duration_ms", res, r, 6);
        jset_text(&b, "error", res, r, 7);
        jset_body(&b, "response_excerpt", NULL, res, r, 8);
        jset_json(&b, "response_headers", res, r, 9);
        jset_json(&b, "details", res, r, 10);
        if (!b.ok)
            json_decref(b.obj);
        /* json_array_append_new takes the reference even when it fails */
        if (!b.ok || json_array_append_new(arr, b.obj) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

struct get_ctx {
    int64_t id;
    json_t *json;
};

static enum hibus_err op_get(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    struct get_ctx *ctx = vctx;
    char txid[32];
    snprintf(txid, sizeof txid, "%" PRId64, ctx->id);
    const char *const vals[1] = {txid};
    PGresult *tx = NULL, *at = NULL;
    enum hibus_err rc = HIBUS_OK;

    /* One snapshot for the row and its attempts, which txlog_complete writes
     * in one commit. */
    if (!txlog_exec_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin a read",
                        err))
        return HIBUS_E_DB;
    tx = txlog_exec_stmt(conn, prepared, TXLOG_ST_GET, vals, NULL, NULL);
    if (tx == NULL || PQresultStatus(tx) != PGRES_TUPLES_OK) {
        rc = txlog_db_fail(err, conn, tx, "read the transaction");
        goto out;
    }
    if (PQntuples(tx) == 0) {
        rc = hibus_error_set(err, HIBUS_E_NOT_FOUND, "transaction %" PRId64 " does not exist",
                             ctx->id);
        goto out;
    }
    at = txlog_exec_stmt(conn, prepared, TXLOG_ST_GET_ATTEMPTS, vals, NULL, NULL);
    if (at == NULL || PQresultStatus(at) != PGRES_TUPLES_OK) {
        rc = txlog_db_fail(err, conn, at, "read the transaction's attempts");
        goto out;
    }
    if (!txlog_exec_cmd(conn, "COMMIT", "end a read", err)) {
        rc = HIBUS_E_DB;
        goto out;
    }

    struct jbuild b = {json_object(), true};
    if (b.obj == NULL) {
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
        goto out;
    }
    jset_int(&b, "id", tx, 0, 0);
    jset_text(&b, "request_id", tx, 0, 1);
    jset_text(&b, "channel", tx, 0, 2);
    jset_text(&b, "client", tx, 0, 3);
    jset_text(&b, "method", tx, 0, 4);
    jset_text(&b, "path", tx, 0, 5);
    jset_text(&b, "query", tx, 0, 6);
    jset_text(&b, "status", tx, 0, 7);
    jset_text(&b, "node", tx, 0, 8);
    jset_text(&b, "received_at", tx, 0, 9);
    jset_text(&b, "updated_at", tx, 0, 10);
    jset_text(&b, "finished_at", tx, 0, 11);
    jset_real(&b, "duration_ms", tx, 0, 12);
    jset_json(&b, "request_headers", tx, 0, 13);
    jset_body(&b, "request_body", "request_body_len", tx, 0, 14);
    jset_int(&b, "response_status", tx, 0, 15);
    jset_json(&b, "response_headers", tx, 0, 16);
    jset_body(&b, "response_body", NULL, tx, 0, 17);
    jset_text(&b, "error", tx, 0, 18);
    jset_json(&b, "problems", tx, 0, 19);
    jset_text(&b, "mode", tx, 0, 20);
    jset_int(&b, "rounds", tx, 0, 21);
    jset_text(&b, "next_attempt_at", tx, 0, 22);
    jset_text(&b, "bodies_pruned_at", tx, 0, 23);
    jset(&b, "attempts", attempts_json(at));
    if (!b.ok) {
        json_decref(b.obj);
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
        goto out;
    }
    ctx->json = b.obj;

out:
    if (rc != HIBUS_OK)
        txlog_rollback(conn);
    PQclear(tx);
    PQclear(at);
    return rc;
}

enum hibus_err txlog_get_json(struct txlog *tl, int64_t id, json_t **out, struct hibus_error *err)
{
    struct get_ctx ctx = {.id = id};
    enum hibus_err rc = txlog_with_conn(tl, op_get, &ctx, err);
    if (rc == HIBUS_OK)
        *out = ctx.json;
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Search                                                                    */
/* ------------------------------------------------------------------------- */

/* The query is built with only the filters given, their values written into it
 * as literals (quoted by libpq), so that the planner sees each as a plain
 * condition on a known value: channel and status (the partial problem index of
 * migration 008, which only a status in sight can be proved to match), the
 * facility and the request id (009), else received_at, which every monthly
 * partition indexes and which the order follows, so a page reads about as many
 * rows as it shows. Parameters would get a generic plan here (plan_cache_mode,
 * txlog_db_connect): one that assumes a LIMIT of a tenth of the table and
 * sorted 10 M rows for a page of 50. */
struct search_ctx {
    const struct txlog_query *q;
    json_t *json;
};

/* Appends " AND <cond>", each ? in cond replaced by v quoted; false when out of
 * memory or v is not valid in the connection's encoding. */
static bool search_cond(struct buf *sql, PGconn *conn, const char *cond, const char *v)
{
    char *lit = PQescapeLiteral(conn, v, strlen(v));
    if (lit == NULL)
        return false;
    bool ok = buf_append(sql, " AND ", 5);
    for (const char *p = cond; *p && ok; p++)
        ok = *p == '?' ? buf_append(sql, lit, strlen(lit)) : buf_append(sql, p, 1);
    PQfreemem(lit);
    return ok;
}

static enum hibus_err search_fail(struct hibus_error *err, PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* class 22: a value the filters gave that PostgreSQL could not read, such as
     * --since yesterdy; the caller's mistake, not the database's */
    if (state != NULL && strncmp(state, "22", 2) == 0) {
        hibus_error_set(err, HIBUS_E_INVALID, "%s",
                        PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        hibus_error_hint(err, "Give times as PostgreSQL reads a timestamp, e.g. 2026-11-01, "
                              "\"2026-11-27 08:00+00\", today or yesterday.");
        return HIBUS_E_INVALID;
    }
    return txlog_db_fail(err, conn, res, "search the transactions");
}

static json_t *search_row(const PGresult *res, int r)
{
    struct jbuild b = {json_object(), true};
    if (b.obj == NULL)
        return NULL;
    jset_int(&b, "id", res, r, 0);
    jset_text(&b, "request_id", res, r, 1);
    jset_text(&b, "channel", res, r, 2);
    jset_text(&b, "client", res, r, 3);
    jset_text(&b, "mode", res, r, 4);
    jset_text(&b, "status", res, r, 5);
    jset_text(&b, "received_at", res, r, 6);
    jset_text(&b, "finished_at", res, r, 7);
    jset_real(&b, "duration_ms", res, r, 8);
    jset_int(&b, "response_status", res, r, 9);
    jset_text(&b, "facility", res, r, 10);
    jset_text(&b, "period", res, r, 11);
    jset_text(&b, "error", res, r, 12);
    jset_int(&b, "attempts", res, r, 13);
    jset_int(&b, "conflicts", res, r, 14);
    if (!b.ok) {
        json_decref(b.obj);
        return NULL;
    }
    return b.obj;
}

static enum hibus_err op_search(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    (void)prepared;
    struct search_ctx *ctx = vctx;
    const struct txlog_query *q = ctx->q;
    char before_at[64] = "", before_id[32];
    PGresult *res = NULL;
    enum hibus_err rc = HIBUS_OK;

    if (q->before > 0) {
        /* The cursor's received_at, as this session prints it (microseconds, so it
         * reads back exactly); by id alone every partition's primary key is asked. */
        snprintf(before_id, sizeof before_id, "%" PRId64, q->before);
        const char *const v[1] = {before_id};
        res = PQexecParams(conn, "SELECT received_at::text FROM transactions WHERE id = $1::int8",
                           1, NULL, v, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = txlog_db_fail(err, conn, res, "find the page's start");
            PQclear(res);
            return rc;
        }
        if (PQntuples(res) == 0) {
            PQclear(res);
            hibus_error_set(err, HIBUS_E_NOT_FOUND,
                            "transaction %" PRId64 " (the page to continue after) does not exist",
                            q->before);
            hibus_error_hint(err, "Give the id that the previous page named as the next.");
            return HIBUS_E_NOT_FOUND;
        }
        hibus_strlcpy(before_at, PQgetvalue(res, 0, 0), sizeof before_at);
        PQclear(res);
    }

    struct buf sql = {0};
    /* clang-format off */
    static const char head[] =
        "SELECT t.id, t.request_id, t.channel, t.client, t.mode, t.status, "
        TS_UTC("t.received_at") ", " TS_UTC("t.finished_at") ","
        " round(extract(epoch FROM coalesce(t.finished_at, clock_timestamp()) - t.received_at)"
        " * 1000, 3)::float8, t.response_status,"
        " nullif(split_part(t.order_key, '|', 2), ''), nullif(split_part(t.order_key, '|', 3), ''),"
        " t.error, a.n, a.conflicts"
        /* the page first, then per row its attempts (their partition by the key) */
        " FROM (SELECT id, request_id, channel, client, mode, status, received_at, finished_at,"
        " order_key, response_status, error FROM transactions WHERE true";
    static const char conflicts[] =
        /* A DHIS2 import with conflicts ends completed_with_errors or failed.
         * OFFSET 0 keeps the EXISTS a test of each candidate, newest first: as a
         * join, PostgreSQL gathered every attempt with conflicts first (its guess
         * of their number was 86 for 50,000) and took 0.36 s on 10 M rows, 5 ms
         * this way. */
        " AND status IN ('completed_with_errors', 'failed', 'rejected') AND EXISTS ("
        "SELECT 1 FROM attempts a WHERE a.transaction_id = transactions.id"
        " AND a.tx_received_at = transactions.received_at"
        " AND jsonb_typeof(a.details -> 'conflicts') = 'array'"
        " AND jsonb_array_length(a.details -> 'conflicts') > 0 OFFSET 0)";
    static const char tail[] =
        ") t LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(CASE WHEN"
        " jsonb_typeof(x.details -> 'conflicts') = 'array'"
        " THEN jsonb_array_length(x.details -> 'conflicts') END), 0) AS conflicts"
        " FROM attempts x WHERE x.transaction_id = t.id AND x.tx_received_at = t.received_at) a"
        " ON true ORDER BY t.received_at DESC, t.id DESC";
    /* clang-format on */
    bool ok = buf_append(&sql, head, sizeof head - 1);
    if (q->channel)
        ok = ok && search_cond(&sql, conn, "channel = ?", q->channel);
    if (q->client)
        ok = ok && search_cond(&sql, conn, "client = ?", q->client);
    if (q->statuses)
        ok = ok && search_cond(&sql, conn, "status = ANY (string_to_array(?, ','))", q->statuses);
    if (q->conflicts)
        ok = ok && buf_append(&sql, conflicts, sizeof conflicts - 1);
    if (q->since)
        ok = ok && search_cond(&sql, conn, "received_at >= ?::timestamptz", q->since);
    if (q->until)
        ok = ok && search_cond(&sql, conn, "received_at < ?::timestamptz", q->until);
    if (q->facilities)
        ok = ok && search_cond(&sql, conn,
                               "order_key IS NOT NULL AND split_part(order_key, '|', 2) = ANY "
                               "(string_to_array(?, E'\\n'))",
                               q->facilities);
    if (q->period)
        ok = ok &&
             search_cond(&sql, conn, "order_key IS NOT NULL AND split_part(order_key, '|', 3) = ?",
                         q->period);
    if (q->request_id)
        ok = ok && search_cond(&sql, conn, "request_id = ?", q->request_id);
    if (before_at[0]) {
        /* both forms: the first bounds the index scan, the second breaks ties */
        char cond[64];
        snprintf(cond, sizeof cond, "(received_at, id) < (?::timestamptz, %" PRId64 ")", q->before);
        ok = ok && search_cond(&sql, conn, "received_at <= ?::timestamptz", before_at) &&
             search_cond(&sql, conn, cond, before_at);
    }
    int lim = q->limit > 0 ? q->limit : 50;
    char limit[64];
    /* one more: is there a next page? */
    snprintf(limit, sizeof limit, " ORDER BY received_at DESC, id DESC LIMIT %d", lim + 1);
    ok = ok && buf_append(&sql, limit, strlen(limit)) && buf_append(&sql, tail, sizeof tail - 1);
    char *text = buf_take(&sql, NULL);
    if (!ok || text == NULL) {
        free(text);
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory building the search");
    }
    res = PQexecParams(conn, text, 0, NULL, NULL, NULL, NULL, 0);
    free(text);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = search_fail(err, conn, res);
        PQclear(res);
        return rc;
    }
    int rows = PQntuples(res);
    bool more = rows > lim;
    if (more)
        rows = lim;
    json_t *list = json_array();
    ok = list != NULL;
    for (int r = 0; r < rows && ok; r++)
        ok = json_array_append_new(list, search_row(res, r)) == 0;
    json_t *next = more ? json_integer((json_int_t)strtoll(PQgetvalue(res, rows - 1, 0), NULL, 10))
                        : json_null();
    PQclear(res);
    json_t *o = ok ? json_pack("{s:o, s:o}", "transactions", list, "next_before", next) : NULL;
    if (o == NULL) {
        if (!ok) {
            json_decref(list);
            json_decref(next);
        }
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    }
    ctx->json = o;
    return HIBUS_OK;
}

enum hibus_err txlog_search(struct txlog *tl, const struct txlog_query *q, json_t **out,
                            struct hibus_error *err)
{
    const char *bad;
    size_t bad_len;
    if (q->statuses && !txlog_status_list_valid(q->statuses, &bad, &bad_len)) {
        hibus_error_set(err, HIBUS_E_INVALID, "\"%.*s\" is not a transaction status",
                        (int)(bad_len > 64 ? 64 : bad_len), bad);
        hibus_error_hint(err, "A status is one of queued, processing, successful, completed, "
                              "completed_with_errors, failed, rejected; several are separated "
                              "by commas.");
        return HIBUS_E_INVALID;
    }
    if (q->limit < 0 || q->limit > TXLOG_QUERY_MAX) {
        hibus_error_set(err, HIBUS_E_INVALID, "a page holds 1 to %d transactions, not %d",
                        TXLOG_QUERY_MAX, q->limit);
        return HIBUS_E_INVALID;
    }
    const char *const texts[] = {q->channel, q->client,     q->since,     q->until,
                                 q->period,  q->facilities, q->request_id};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (texts[i] != NULL && !text_utf8_valid((const unsigned char *)texts[i], strlen(texts[i])))
            return hibus_error_set(err, HIBUS_E_INVALID, "a search filter is not valid UTF-8");
    struct search_ctx ctx = {.q = q};
    enum hibus_err rc = txlog_with_conn(tl, op_search, &ctx, err);
    if (rc == HIBUS_OK)
        *out = ctx.json;
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Summaries for GET /metrics and the admin API                             */
/* ------------------------------------------------------------------------- */

/* One statement, its rows turned into JSON by a row function: queue depth,
 * channels' health and hours, unmapped codes. */
typedef bool (*row_fn)(json_t *acc, const PGresult *res, int row);

struct query_ctx {
    const char *sql, *what;
    int n;
    const char *const *vals;
    bool object; /* the result is an object (else an array) */
    row_fn row;
    json_t *out;
};

static enum hibus_err op_query_json(PGconn *conn, unsigned *prepared, void *vctx,
                                    struct hibus_error *err)
{
    (void)prepared;
    struct query_ctx *q = vctx;
    PGresult *res = PQexecParams(conn, q->sql, q->n, NULL, q->vals, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum hibus_err rc = txlog_db_fail(err, conn, res, q->what);
        PQclear(res);
        return rc;
    }
    json_t *acc = q->object ? json_object() : json_array();
    for (int r = 0; acc != NULL && r < PQntuples(res); r++)
        if (!q->row(acc, res, r)) {
            json_decref(acc);
            acc = NULL;
        }
    PQclear(res);
    if (acc == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    q->out = acc;
    return HIBUS_OK;
}

static enum hibus_err query_json(struct txlog *tl, struct query_ctx *q, json_t **out,
                                 struct hibus_error *err)
{
    enum hibus_err rc = txlog_with_conn(tl, op_query_json, q, err);
    if (rc == HIBUS_OK)
        *out = q->out;
    return rc;
}

static json_int_t int_at(const PGresult *res, int row, int col)
{
    return (json_int_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool append(json_t *list, json_t *v)
{
    return v != NULL && json_array_append_new(list, v) == 0;
}

static bool queue_row(json_t *acc, const PGresult *res, int r)
{
    return append(acc, json_pack("{s:s, s:I, s:I, s:f}", "channel", PQgetvalue(res, r, 0), "queued",
                                 int_at(res, r, 1), "processing", int_at(res, r, 2),
                                 "oldest_queued_seconds", strtod(PQgetvalue(res, r, 3), NULL)));
}

enum hibus_err txlog_queue_depth(struct txlog *tl, json_t **out, struct hibus_error *err)
{
    /* both statuses are in the partial index transactions_unfinished */
    struct query_ctx q = {.sql = "SELECT channel, count(*) FILTER (WHERE status = 'queued'),"
                                 " count(*) FILTER (WHERE status = 'processing'),"
                                 " coalesce(extract(epoch FROM clock_timestamp()"
                                 "  - min(received_at) FILTER (WHERE status = 'queued')), 0)"
                                 " FROM transactions WHERE status IN ('queued', 'processing')"
                                 " GROUP BY channel ORDER BY channel",
                          .what = "count the queue",
                          .row = queue_row};
    return query_json(tl, &q, out, err);
}

static bool stats_row(json_t *acc, const PGresult *res, int r)
{
    json_t *v =
        json_pack("{s:I, s:I, s:I, s:o}", "finished", int_at(res, r, 1), "failed",
                  int_at(res, r, 2), "completed_with_errors", int_at(res, r, 3), "last_success",
                  PQgetisnull(res, r, 4) ? json_null() : json_string(PQgetvalue(res, r, 4)));
    return v != NULL && json_object_set_new(acc, PQgetvalue(res, r, 0), v) == 0;
}

enum hibus_err txlog_channel_stats(struct txlog *tl, const char *names, json_t **out,
                                   struct hibus_error *err)
{
    /* The hour by the received_at index; the last success of each channel the
     * newest first, as far back as 30 days (a channel failing for longer would
     * otherwise read its whole history). */
    const char *const v[1] = {names};
    /* clang-format off */
    struct query_ctx q = {
        .sql = "WITH h AS (SELECT channel,"
               "  count(*) FILTER (WHERE status NOT IN ('queued', 'processing')) AS finished,"
               "  count(*) FILTER (WHERE status IN ('failed', 'rejected')) AS failed,"
               "  count(*) FILTER (WHERE status = 'completed_with_errors') AS partly"
               " FROM transactions WHERE received_at >= now() - interval '1 hour'"
               " GROUP BY channel),"
               " c AS (SELECT unnest(string_to_array($1, E'\\n')) AS channel)"
               " SELECT c.channel, coalesce(h.finished, 0), coalesce(h.failed, 0),"
               "  coalesce(h.partly, 0), (SELECT " TS_UTC("t.finished_at") " FROM transactions t"
               "   WHERE t.channel = c.channel AND t.received_at >= now() - interval '30 days'"
               "   AND t.status IN ('successful', 'completed', 'completed_with_errors')"
               "   ORDER BY t.received_at DESC LIMIT 1)"
               " FROM c LEFT JOIN h USING (channel) ORDER BY c.channel",
        .what = "read the channels' outcomes", .n = 1, .vals = v, .object = true,
        .row = stats_row};
    /* clang-format on */
    return query_json(tl, &q, out, err);
}

static bool hours_row(json_t *acc, const PGresult *res, int r)
{
    json_t *list = json_object_get(acc, PQgetvalue(res, r, 0));
    if (list == NULL && json_object_set_new(acc, PQgetvalue(res, r, 0), list = json_array()) != 0)
        return false;
    return append(list, json_pack("{s:s, s:I, s:I}", "hour", PQgetvalue(res, r, 1), "received",
                                  int_at(res, r, 2), "failed", int_at(res, r, 3)));
}

enum hibus_err txlog_channel_hours(struct txlog *tl, int hours, json_t **out,
                                   struct hibus_error *err)
{
    char h[16];
    snprintf(h, sizeof h, "%d", hours);
    const char *const v[1] = {h};
    /* clang-format off */
    struct query_ctx q = {
        .sql = "SELECT channel, " TS_UTC("date_trunc('hour', received_at)") ", count(*),"
               " count(*) FILTER (WHERE status IN ('failed', 'rejected'))"
               " FROM transactions WHERE received_at >= date_trunc('hour', clock_timestamp())"
               "  - make_interval(hours => $1::int - 1)"
               " GROUP BY 1, date_trunc('hour', received_at) ORDER BY 1, 2",
        .what = "count the channels' hours", .n = 1, .vals = v, .object = true,
        .row = hours_row};
    /* clang-format on */
    return query_json(tl, &q, out, err);
}

static bool unmapped_row(json_t *acc, const PGresult *res, int r)
{
    return append(acc, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "channel", PQgetvalue(res, r, 0),
                                 "kind", PQgetvalue(res, r, 1), "code", PQgetvalue(res, r, 2),
                                 "transactions", int_at(res, r, 3), "last_transaction",
                                 int_at(res, r, 4), "last_seen", PQgetvalue(res, r, 5)));
}

enum hibus_err txlog_unmapped(struct txlog *tl, int days, json_t **out, struct hibus_error *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", days);
    const char *const v[1] = {d};
    /* By the received_at index over the days asked, rows with problems only. */
    /* clang-format off */
    struct query_ctx q = {
        .sql = "SELECT t.channel, p ->> 'kind', p ->> 'code', count(DISTINCT t.id), max(t.id),"
               " " TS_UTC("max(t.received_at)") " FROM transactions t,"
               " jsonb_array_elements(coalesce(t.problems -> 'problems', '[]')"
               "  || coalesce(t.problems -> 'skipped', '[]')) p"
               " WHERE t.received_at >= clock_timestamp() - make_interval(days => $1::int)"
               "  AND t.problems IS NOT NULL AND p ->> 'stage' = 'mapping'"
               "  AND p ->> 'code' IS NOT NULL"
               " GROUP BY 1, 2, 3 ORDER BY 4 DESC, 6 DESC LIMIT 500",
        .what = "read the unmapped codes", .n = 1, .vals = v, .row = unmapped_row};
    /* clang-format on */
    return query_json(tl, &q, out, err);
}

static bool moved_row(json_t *acc, const PGresult *res, int r)
{
    return append(acc, json_pack("{s:s, s:s, s:s, s:s, s:s}", "uid", PQgetvalue(res, r, 0), "code",
                                 PQgetvalue(res, r, 1), "old_path", PQgetvalue(res, r, 2), "path",
                                 PQgetvalue(res, r, 3), "seen_at", PQgetvalue(res, r, 4)));
}

enum hibus_err txlog_org_unit_moves(struct txlog *tl, const char *dhis2, const json_t *paths,
                                    json_t **out, struct hibus_error *err)
{
    char *doc = json_dumps(paths, JSON_COMPACT);
    if (doc == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    const char *const v[2] = {dhis2, doc};
    /* Every CTE sees the table as it was before the statement: "old" holds the
     * paths of the last check, while "up" records this one's. */
    /* clang-format off */
    struct query_ctx q = {
        .sql = "WITH x AS (SELECT key AS uid, value ->> 'path' AS path, value ->> 'code' AS code"
               "  FROM jsonb_each($2::jsonb)),"
               " old AS (SELECT p.uid, p.path, p.seen_at FROM org_unit_paths p JOIN x USING (uid)"
               "  WHERE p.dhis2 = $1 AND p.path <> x.path),"
               " up AS (INSERT INTO org_unit_paths (dhis2, uid, path)"
               "  SELECT $1, uid, path FROM x"
               "  ON CONFLICT (dhis2, uid) DO UPDATE SET path = EXCLUDED.path,"
               "   seen_at = clock_timestamp())"
               " SELECT old.uid, x.code, old.path, x.path, " TS_UTC("old.seen_at")
               " FROM old JOIN x USING (uid) ORDER BY 1",
        .what = "compare the org units' places with the last check's", .n = 2, .vals = v,
        .row = moved_row};
    /* clang-format on */
    enum hibus_err rc = query_json(tl, &q, out, err);
    free(doc);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* LISTEN hibus_tx                                                           */
/* ------------------------------------------------------------------------- */

/* libpq queues notifications itself (PQnotifies hands out one per call), so
 * several arriving in one packet are returned one by one without a queue here. */
struct txlog_listener {
    PGconn *conn;
    unsigned prepared;
};

enum hibus_err txlog_listen(const char *url, long connect_timeout_ms, struct txlog_listener **out,
                            struct hibus_error *err)
{
    return txlog_listen_on(url, connect_timeout_ms, "hibus_tx", out, err);
}

enum hibus_err txlog_listen_on(const char *url, long connect_timeout_ms, const char *channel,
                               struct txlog_listener **out, struct hibus_error *err)
{
    if (url == NULL || url[0] == '\0')
        return hibus_error_set(err, HIBUS_E_INVALID, "database URL is empty");
    struct txlog_listener *l = hibus_xcalloc(1, sizeof *l);
    l->conn = txlog_db_connect(url, connect_timeout_ms, err);
    if (l->conn == NULL) {
        free(l);
        return err ? err->code : HIBUS_E_DB;
    }
    char sql[96];
    if (strcmp(channel, "hibus_tx") != 0 && strcmp(channel, "hibus_queue") != 0) {
        PQfinish(l->conn);
        free(l);
        return hibus_error_set(err, HIBUS_E_INVALID, "unknown notification channel \"%s\"",
                               channel);
    }
    snprintf(sql, sizeof sql, "LISTEN %s", channel);
    if (!txlog_exec_cmd(l->conn, sql, "listen for transaction changes", err)) {
        PQfinish(l->conn);
        free(l);
        return HIBUS_E_DB;
    }
    *out = l;
    return HIBUS_OK;
}

static enum hibus_err listener_lost(struct txlog_listener *l, struct hibus_error *err)
{
    hibus_error_set(err, HIBUS_E_DB, "lost the connection to the database");
    txlog_detail_pq(err, PQerrorMessage(l->conn));
    hibus_error_hint(err, "Listen again once the database is back.");
    return HIBUS_E_DB;
}

enum hibus_err txlog_listener_next(struct txlog_listener *l, int timeout_ms, int64_t *id,
                                   struct hibus_error *err)
{
    int64_t deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        PGnotify *n;
        if ((n = PQnotifies(l->conn)) != NULL) {
            /* An id (a rerun names each), or nothing (announced changes). */
            char *end;
            errno = 0;
            long long v = strtoll(n->extra, &end, 10);
            bool ok = errno == 0 && end != n->extra && *end == '\0' && v > 0;
            *id = ok ? (int64_t)v : 0;
            PQfreemem(n);
            return HIBUS_OK;
        }
        if (PQstatus(l->conn) == CONNECTION_BAD)
            return listener_lost(l, err);

        int wait = -1; /* a negative timeout_ms waits for ever */
        if (timeout_ms >= 0) {
            int64_t left = deadline - clock_ms();
            if (left <= 0)
                return hibus_error_set(err, HIBUS_E_TIMEOUT, "no transaction changed within %d ms",
                                       timeout_ms);
            wait = left > INT_MAX ? INT_MAX : (int)left;
        }
        int sock = PQsocket(l->conn);
        if (sock < 0)
            return listener_lost(l, err);
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            hibus_error_set(err, HIBUS_E_IO, "could not wait for the database");
            hibus_error_detail(err, "poll: %s.", strerror(errno));
            return HIBUS_E_IO;
        }
        if (pr == 0)
            continue; /* the deadline check above reports the timeout */
        if (!PQconsumeInput(l->conn))
            return listener_lost(l, err);
    }
}

/* ------------------------------------------------------------------------- */
/* Following the log (hibus tail)                                            */
/* ------------------------------------------------------------------------- */

#define SUMMARY_COLS                                                                               \
    "id, " TS_UTC("updated_at") ", channel, coalesce(client, ''), status,"                         \
                                " coalesce(response_status, 0),"                                   \
                                " round(extract(epoch FROM coalesce(finished_at, "                 \
                                "clock_timestamp()) - received_at)"                                \
                                " * 1000, 3)::float8"

/* Row i of a SUMMARY_COLS result; false when a field is too long to show. */
static bool summary_of(const PGresult *res, int i, struct txlog_summary *out)
{
    struct txlog_summary s = {0};
    s.id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    static const struct {
        int col;
        size_t off, size;
    } fields[] = {
        {1, offsetof(struct txlog_summary, time), sizeof s.time},
        {2, offsetof(struct txlog_summary, channel), sizeof s.channel},
        {3, offsetof(struct txlog_summary, client), sizeof s.client},
        {4, offsetof(struct txlog_summary, status), sizeof s.status},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        const char *v = PQgetvalue(res, i, fields[k].col);
        if (hibus_strlcpy((char *)&s + fields[k].off, v, fields[k].size) >= fields[k].size)
            return false;
    }
    s.response_status = atoi(PQgetvalue(res, i, 5));
    s.duration_ms = strtod(PQgetvalue(res, i, 6), NULL);
    *out = s;
    return true;
}

/* The unfinished transactions a follower watches, newest last. */
struct watched {
    int64_t id;
    char status[32];
};

struct txlog_follower {
    struct txlog_listener *l;
    int64_t last_id;   /* the newest transaction seen */
    struct watched *w; /* at most TXLOG_FOLLOW_WATCH */
    size_t n_w;
    int64_t *named; /* ids a notification named (reruns) */
    size_t n_named, cap_named;
    bool more;         /* the last read was cut at its limit: read again at once */
    int64_t last_read; /* clock_ms() of the last read */
};

#define FOLLOW_NEW_MAX 1000
#define FOLLOW_MIN_MS 250

static void watch(struct txlog_follower *f, int64_t id, const char *status)
{
    bool open = strcmp(status, TXLOG_QUEUED) == 0 || strcmp(status, TXLOG_PROCESSING) == 0;
    for (size_t i = 0; i < f->n_w; i++) {
        if (f->w[i].id != id)
            continue;
        if (open) {
            hibus_strlcpy(f->w[i].status, status, sizeof f->w[i].status);
        } else {
            memmove(&f->w[i], &f->w[i + 1], (f->n_w - i - 1) * sizeof *f->w);
            f->n_w--;
        }
        return;
    }
    if (!open)
        return;
    if (f->n_w == TXLOG_FOLLOW_WATCH) { /* the oldest is given up */
        memmove(&f->w[0], &f->w[1], (f->n_w - 1) * sizeof *f->w);
        f->n_w--;
    }
    f->w[f->n_w].id = id;
    hibus_strlcpy(f->w[f->n_w].status, status, sizeof f->w[f->n_w].status);
    f->n_w++;
}

static const char *watched_status(const struct txlog_follower *f, int64_t id)
{
    for (size_t i = 0; i < f->n_w; i++)
        if (f->w[i].id == id)
            return f->w[i].status;
    return NULL;
}

static enum hibus_err follow_fail(struct txlog_follower *f, const PGresult *res, const char *what,
                                  struct hibus_error *err)
{
    enum hibus_err rc = txlog_db_fail(err, f->l->conn, res, what);
    if (txlog_conn_lost(f->l->conn))
        rc = listener_lost(f->l, err);
    return rc;
}

enum hibus_err txlog_follow(const char *url, long connect_timeout_ms, struct txlog_follower **out,
                            struct hibus_error *err)
{
    struct txlog_follower *f = hibus_xcalloc(1, sizeof *f);
    f->w = hibus_xcalloc(TXLOG_FOLLOW_WATCH, sizeof *f->w);
    enum hibus_err rc = txlog_listen(url, connect_timeout_ms, &f->l, err);
    if (rc != HIBUS_OK) {
        txlog_follow_close(f);
        return rc;
    }
    /* From now on: the newest id, and what is unfinished now (newest first). */
    PGresult *res = PQexec(f->l->conn, "SELECT coalesce(max(id), 0) FROM transactions");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = follow_fail(f, res, "read the newest transaction", err);
        PQclear(res);
        txlog_follow_close(f);
        return rc;
    }
    f->last_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT id, status FROM transactions WHERE status IN ('queued', 'processing')"
             " AND id <= %" PRId64 " ORDER BY id DESC LIMIT %d",
             f->last_id, TXLOG_FOLLOW_WATCH);
    res = PQexec(f->l->conn, sql);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = follow_fail(f, res, "read the unfinished transactions", err);
        PQclear(res);
        txlog_follow_close(f);
        return rc;
    }
    for (int i = PQntuples(res) - 1; i >= 0; i--)
        watch(f, strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1));
    PQclear(res);
    *out = f;
    return HIBUS_OK;
}

static void add_out(struct txlog_summary **out, size_t *n, size_t *cap,
                    const struct txlog_summary *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *out = hibus_xreallocarray(*out, *cap, sizeof **out);
    }
    (*out)[(*n)++] = *s;
}

enum hibus_err txlog_follow_next(struct txlog_follower *f, int timeout_ms,
                                 struct txlog_summary **out, size_t *n, struct hibus_error *err)
{
    *out = NULL;
    *n = 0;
    /* Wait for an announcement unless there is more to read, and read at most
     * every FOLLOW_MIN_MS: under load announcements come every TXLOG_ANNOUNCE_MS,
     * and each read probes every watched id. Notifications that arrive meanwhile
     * are taken (the ids reruns name). */
    int64_t id, start = clock_ms(), earliest = f->last_read + FOLLOW_MIN_MS;
    bool woke = false;
    enum hibus_err rc = HIBUS_E_TIMEOUT;
    while (!f->more) {
        int64_t now = clock_ms(), left = woke ? earliest - now : start + timeout_ms - now;
        if (left <= 0)
            break;
        rc = txlog_listener_next(f->l, left > INT_MAX ? INT_MAX : (int)left, &id, err);
        if (rc == HIBUS_E_TIMEOUT)
            break;
        if (rc != HIBUS_OK)
            return rc;
        woke = true;
        if (id > 0) {
            if (f->n_named == f->cap_named) {
                f->cap_named = f->cap_named ? f->cap_named * 2 : 16;
                f->named = hibus_xreallocarray(f->named, f->cap_named, sizeof *f->named);
            }
            f->named[f->n_named++] = id;
        }
    }
    f->last_read = clock_ms();
    size_t cap = 0;
    /* New transactions, oldest first. */
    char last[32], limit[16];
    snprintf(last, sizeof last, "%" PRId64, f->last_id);
    snprintf(limit, sizeof limit, "%d", FOLLOW_NEW_MAX);
    const char *const v1[2] = {last, limit};
    PGresult *res = PQexecParams(f->l->conn,
                                 "SELECT " SUMMARY_COLS " FROM transactions WHERE id > $1::int8"
                                 " ORDER BY id LIMIT $2::int4",
                                 2, NULL, v1, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = follow_fail(f, res, "read new transactions", err);
        PQclear(res);
        return rc;
    }
    f->more = PQntuples(res) == FOLLOW_NEW_MAX;
    for (int i = 0; i < PQntuples(res); i++) {
        struct txlog_summary s;
        if (!summary_of(res, i, &s))
            continue;
        f->last_id = s.id;
        add_out(out, n, &cap, &s);
        watch(f, s.id, s.status);
    }
    PQclear(res);

    /* Status changes of the watched ones and of those a rerun named. */
    size_t k = f->n_w + f->n_named;
    if (k > 0) {
        struct txlog_arr ids;
        txlog_arr_open(&ids);
        for (size_t i = 0; i < k; i++)
            txlog_arr_int(&ids, i < f->n_w ? f->w[i].id : f->named[i - f->n_w]);
        bool ok = txlog_arr_close(&ids);
        const char *const v2[1] = {ids.b.s};
        res = ok ? PQexecParams(f->l->conn,
                                "SELECT " SUMMARY_COLS " FROM transactions"
                                " WHERE id = ANY ($1::int8[]) ORDER BY id",
                                1, NULL, v2, NULL, NULL, 0)
                 : NULL;
        buf_free(&ids.b);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = follow_fail(f, res, "read changed transactions", err);
            PQclear(res);
            free(*out);
            *out = NULL;
            *n = 0;
            return rc;
        }
        for (int i = 0; i < PQntuples(res); i++) {
            struct txlog_summary s;
            if (!summary_of(res, i, &s))
                continue;
            const char *was = watched_status(f, s.id);
            bool named = false;
            for (size_t j = 0; j < f->n_named && !named; j++)
                named = f->named[j] == s.id;
            if (was != NULL && strcmp(was, s.status) == 0 && !named)
                continue;
            add_out(out, n, &cap, &s);
            watch(f, s.id, s.status);
        }
        PQclear(res);
        f->n_named = 0;
    }
    return HIBUS_OK;
}

void txlog_follow_close(struct txlog_follower *f)
{
    if (f == NULL)
        return;
    txlog_listener_close(f->l);
    free(f->w);
    free(f->named);
    free(f);
}

void txlog_listener_close(struct txlog_listener *l)
{
    if (l == NULL)
        return;
    PQfinish(l->conn);
    free(l);
}
