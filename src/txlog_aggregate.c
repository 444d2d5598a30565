/*
 * txlog_aggregate.c - the aggregate stage's tables (migration 011): storing stock
 * events once, sending each closed period's figures as a transaction of their own,
 * and reading a period back for `hibus aggregate show`. The derivation itself is
 * pure and lives in src/aggregate.c.
 *
 * Storing: one statement inserts a payload's events (ON CONFLICT DO NOTHING on the
 * channel and source id: a duplicate is not stored again) and returns those that were
 * new; their (facility, period) rows of aggregate_periods become dirty, and so does
 * every later period of the facility that was sent already, since its opening
 * balance moved. All in one database transaction, so an event is never stored
 * without its period being marked.
 *
 * Sending (txlog_aggregate_emit, every few seconds from the aggregate thread): the
 * dirty periods whose end plus close_after has passed are claimed FOR UPDATE SKIP
 * LOCKED (two processes never send one period twice), derived from every event of
 * the facility up to the period's end, and, unless the figures are the ones sent
 * last time, inserted as a queued transaction on the channel whose path
 * "aggregate:FACILITY/PERIOD" tells delivery to read it as an lmis-report; the
 * delivery workers then map, check and deliver it like any other. The row and the
 * transaction are written in one commit.
 */
#include "hibus/txlog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hibus/aggregate.h"
#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/log.h"
#include "txlog_internal.h"

#define EMIT_BATCH 20

static enum hibus_err fail(struct hibus_error *err, PGconn *conn, PGresult *res, const char *what)
{
    enum hibus_err rc = txlog_db_fail(err, conn, res, what);
    PQclear(res);
    txlog_rollback(conn);
    return rc;
}

/* ------------------------------------------------------------------ storing */

/* At most this many period rows per facility at a time (a date decades off would
 * otherwise make hundreds). */
#define GAP_MAX 240

/* Appends one row to a[0..3]: facility, period id, first day, last day. */
static void append_period(struct txlog_arr a[4], const char *facility, const struct period *p)
{
    char sd[11], ed[11];
    period_date_format(p->start, sd);
    period_date_format(p->end, ed);
    txlog_arr_str(&a[0], facility);
    txlog_arr_str(&a[1], p->id);
    txlog_arr_str(&a[2], sd);
    txlog_arr_str(&a[3], ed);
}

/* Appends to a[0..3] (facility, period id, first day, last day) the periods of type
 * from the one holding day `from` on, while they end on or before day `limit`; at
 * most GAP_MAX. */
static void append_periods(struct txlog_arr a[4], const char *facility, enum period_type type,
                           long from, long limit)
{
    struct period p;
    if (!period_containing(type, period_date_of_day(from), &p))
        return;
    for (int k = 0; k < GAP_MAX && period_day_number(p.end) <= limit; k++) {
        append_period(a, facility, &p);
        if (!period_containing(type, period_date_of_day(period_day_number(p.end) + 1), &p))
            return;
    }
}

/* Closes the four arrays append_periods fills; false when memory ran out. */
static bool close_periods(struct txlog_arr a[4])
{
    bool built = true;
    for (int k = 0; k < 4; k++)
        built = txlog_arr_close(&a[k]) && built;
    return built;
}

/* Periods a facility has no event in, between its first and its last period with
 * one, get a row too: a month without any movement (the shelf empty all month, or
 * untouched) is a month of figures as well, opening where the previous closed.
 * After the last period with an event nothing is made up here (a facility that
 * stopped reporting is not reported as static for ever) unless the channel says
 * quiet_periods: send (op_quiet). */
static enum hibus_err fill_gaps(PGconn *conn, const struct txlog_agg_store *rq,
                                const char *facilities, struct hibus_error *err)
{
    const char *v[2] = {rq->channel, facilities};
    PGresult *res = PQexecParams(conn,
                                 "SELECT facility, min(period_start)::text, max(period_end)::text"
                                 " FROM aggregate_periods WHERE channel = $1"
                                 "  AND facility = ANY ($2::text[]) GROUP BY facility",
                                 2, NULL, v, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "look for periods without events");
    struct txlog_arr a[4];
    for (int k = 0; k < 4; k++)
        txlog_arr_open(&a[k]);
    for (int r = 0; r < PQntuples(res); r++) {
        struct period_date first, last;
        if (period_date_parse(PQgetvalue(res, r, 1), &first) &&
            period_date_parse(PQgetvalue(res, r, 2), &last))
            append_periods(a, PQgetvalue(res, r, 0), rq->period_type, period_day_number(first),
                           period_day_number(last));
    }
    PQclear(res);
    if (!close_periods(a)) {
        for (int k = 0; k < 4; k++)
            buf_free(&a[k].b);
        txlog_rollback(conn);
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory adding periods");
    }
    const char *pv[5] = {rq->channel, a[0].b.s, a[1].b.s, a[2].b.s, a[3].b.s};
    res = PQexecParams(conn,
                       "INSERT INTO aggregate_periods (channel, facility, period, period_start,"
                       " period_end)"
                       " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[], $5::date[])"
                       " ON CONFLICT (channel, facility, period) DO NOTHING",
                       5, NULL, pv, NULL, NULL, 0);
    for (int k = 0; k < 4; k++)
        buf_free(&a[k].b);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(err, conn, res, "add the periods without events");
    PQclear(res);
    return HIBUS_OK;
}

/* Stores of one channel that touch the same facility take turns; without this two
 * batches marking the same periods (and inserting the same gaps) in different orders
 * deadlocked, and PostgreSQL broke the tie after deadlock_timeout (1 s) by failing
 * one of them (bench/aggregate saw it in every run). Each store first takes the
 * channel's lock shared, then one lock per facility in ascending order of key, so
 * no two stores wait for each other in a circle. A batch of many facilities takes
 * the channel's lock alone, exclusively (a lock per facility would fill PostgreSQL's
 * shared lock table). Emission claims its rows FOR UPDATE SKIP LOCKED: it never
 * waits for a store. */
#define STORE_LOCK_CHANNEL "722011" /* advisory lock classes (the two-key form) */
#define STORE_LOCK_FACILITY "722012"
#define STORE_LOCK_MANY 32

static bool lock_facilities(PGconn *conn, const char *channel, const char *facilities,
                            size_t distinct, struct hibus_error *err)
{
    const char *v[2] = {channel, facilities};
    PGresult *res;
    if (distinct > STORE_LOCK_MANY) {
        res =
            PQexecParams(conn, "SELECT pg_advisory_xact_lock(" STORE_LOCK_CHANNEL ", hashtext($1))",
                         1, NULL, v, NULL, NULL, 0);
    } else {
        res = PQexecParams(
            conn, "SELECT pg_advisory_xact_lock_shared(" STORE_LOCK_CHANNEL ", hashtext($1))", 1,
            NULL, v, NULL, NULL, 0);
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
            PQclear(res);
            res = PQexecParams(conn,
                               "SELECT count(pg_advisory_xact_lock(" STORE_LOCK_FACILITY ", k))"
                               " FROM (SELECT DISTINCT hashtext($1 || '|' || f) AS k"
                               "  FROM unnest($2::text[]) AS f ORDER BY k) AS d",
                               2, NULL, v, NULL, NULL, 0);
        }
    }
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail(err, conn, res, "take the stock events' facility locks");
        return false;
    }
    PQclear(res);
    return true;
}

/* How many facilities the batch names (up to STORE_LOCK_MANY + 1: past that the
 * number does not matter). */
static size_t distinct_facilities(const struct agg_batch *ev)
{
    json_t *seen = json_object();
    for (size_t i = 0; i < ev->n && json_object_size(seen) <= STORE_LOCK_MANY; i++)
        json_object_set_new(seen, ev->v[i].facility, json_true());
    size_t n = json_object_size(seen);
    json_decref(seen);
    return n;
}

struct store_ctx {
    const struct txlog_agg_store *rq;
    struct txlog_agg_stored *out;
};

static enum hibus_err op_store(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    struct store_ctx *ctx = vctx;
    const struct txlog_agg_store *rq = ctx->rq;
    const struct agg_batch *ev = rq->events;
    ctx->out->stored = 0;
    ctx->out->duplicates = 0;
    json_decref(ctx->out->periods);
    ctx->out->periods = json_array();

    struct txlog_arr a[7];
    for (int k = 0; k < 7; k++)
        txlog_arr_open(&a[k]);
    for (size_t i = 0; i < ev->n; i++) {
        const struct agg_event *e = &ev->v[i];
        txlog_arr_str(&a[0], e->source_id);
        txlog_arr_str(&a[1], e->facility);
        txlog_arr_str(&a[2], e->commodity);
        txlog_arr_str(&a[3], e->date);
        txlog_arr_str(&a[4], AGG_KIND_NAMES[e->kind]);
        txlog_arr_int(&a[5], e->quantity);
        txlog_arr_str(&a[6], e->reason);
    }
    bool built = true;
    for (int k = 0; k < 7; k++)
        built = txlog_arr_close(&a[k]) && built;
    char tx[32];
    snprintf(tx, sizeof tx, "%lld", (long long)rq->tx_id);
    const char *v[10] = {rq->channel, a[0].b.s, a[1].b.s, a[2].b.s,     a[3].b.s,
                         a[4].b.s,    a[5].b.s, a[6].b.s, rq->timezone, tx};
    enum hibus_err rc = HIBUS_OK;
    PGresult *res = NULL;
    if (!built) {
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory storing stock events");
        goto out;
    }
    if (!txlog_exec_cmd(conn, "BEGIN", "begin storing stock events", err)) {
        rc = HIBUS_E_DB;
        goto out;
    }
    if (!lock_facilities(conn, rq->channel, a[1].b.s, distinct_facilities(ev), err)) {
        rc = HIBUS_E_DB;
        goto out;
    }
    /* A date alone is the facility's day; a time is turned into one in the
     * channel's time zone. A content key is hashed (it holds a whole line). */
    res = PQexecParams(
        conn,
        "INSERT INTO stock_events (channel, source_id, facility, commodity, occurred_on,"
        " occurred_at, kind, quantity, reason, tx_id)"
        " SELECT $1, CASE WHEN left(sid, 8) = 'content:'"
        "   THEN 'sha256:' || encode(sha256(convert_to(sid, 'UTF8')), 'hex') ELSE sid END,"
        "  facility, commodity,"
        "  CASE WHEN length(d) = 10 THEN d::date ELSE (d::timestamptz AT TIME ZONE $9)::date END,"
        "  CASE WHEN length(d) = 10 THEN NULL ELSE d::timestamptz END,"
        "  kind, q, reason, $10::int8"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],"
        "  $8::text[]) AS e(sid, facility, commodity, d, kind, q, reason)"
        " ON CONFLICT (channel, source_id) DO NOTHING"
        " RETURNING facility, occurred_on::text",
        10, NULL, v, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail(err, conn, res, "store the stock events");
        res = NULL;
        goto out;
    }
    int n = PQntuples(res);
    ctx->out->stored = n;
    ctx->out->duplicates = (long)ev->n - n;
    /* the distinct (facility, period) of the new events */
    json_t *seen = json_object();
    for (int k = 0; k < 4; k++) {
        buf_free(&a[k].b); /* the events' arrays, done with */
        txlog_arr_open(&a[k]);
    }
    for (int r = 0; r < n; r++) {
        const char *facility = PQgetvalue(res, r, 0);
        struct period_date d;
        struct period p;
        if (!period_date_parse(PQgetvalue(res, r, 1), &d) ||
            !period_containing(rq->period_type, d, &p))
            continue;
        size_t klen = strlen(facility) + sizeof p.id + 2;
        char *key = hibus_xmalloc(klen);
        snprintf(key, klen, "%s|%s", facility, p.id);
        if (json_object_get(seen, key) == NULL) {
            json_object_set_new(seen, key, json_true());
            append_period(a, facility, &p);
        }
        free(key);
    }
    json_decref(seen);
    PQclear(res);
    res = NULL;
    for (int k = 0; k < 4; k++)
        built = txlog_arr_close(&a[k]) && built;
    if (!built) {
        txlog_rollback(conn);
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory marking periods");
        goto out;
    }
    const char *pv[5] = {rq->channel, a[0].b.s, a[1].b.s, a[2].b.s, a[3].b.s};
    /* The periods of the new events, and every later one of the same facility
     * that was sent already (its opening balance moved). */
    res = PQexecParams(
        conn,
        "WITH x AS (SELECT * FROM unnest($2::text[], $3::text[], $4::date[], $5::date[])"
        "  AS x(facility, period, s, e)),"
        " up AS (INSERT INTO aggregate_periods AS a (channel, facility, period, period_start,"
        "   period_end)"
        "  SELECT $1, facility, period, s, e FROM x"
        "  ON CONFLICT (channel, facility, period) DO UPDATE SET dirty = true,"
        "   last_event_at = clock_timestamp(),"
        "   late_events = a.late_events + (a.emitted_tx IS NOT NULL)::int"
        "  RETURNING facility, period, emitted_tx IS NOT NULL AS late),"
        " later AS (UPDATE aggregate_periods a SET dirty = true"
        "  FROM (SELECT facility, min(s) AS s FROM x GROUP BY facility) f"
        "  WHERE a.channel = $1 AND a.facility = f.facility AND a.period_start > f.s"
        "   AND a.emitted_tx IS NOT NULL AND NOT a.dirty"
        "  RETURNING a.facility, a.period)"
        " SELECT facility, period, late, false FROM up"
        " UNION ALL SELECT facility, period, true, true FROM later ORDER BY 1, 2",
        5, NULL, pv, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail(err, conn, res, "mark the stock events' periods");
        res = NULL;
        goto out;
    }
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(ctx->out->periods,
                              json_pack("{s:s, s:s, s:b, s:b}", "facility", PQgetvalue(res, r, 0),
                                        "period", PQgetvalue(res, r, 1), "correction",
                                        PQgetvalue(res, r, 2)[0] == 't', "balance_moved",
                                        PQgetvalue(res, r, 3)[0] == 't'));
    PQclear(res);
    res = NULL;
    if (n > 0 && fill_gaps(conn, rq, a[0].b.s, err) != HIBUS_OK) {
        rc = HIBUS_E_DB;
        goto out;
    }
    if (!txlog_exec_cmd(conn, "COMMIT", "commit the stock events", err))
        rc = HIBUS_E_DB;
out:
    PQclear(res);
    for (int k = 0; k < 7; k++)
        buf_free(&a[k].b);
    return rc;
}

enum hibus_err txlog_aggregate_store(struct txlog *tl, const struct txlog_agg_store *rq,
                                     struct txlog_agg_stored *out, struct hibus_error *err)
{
    memset(out, 0, sizeof *out);
    struct store_ctx ctx = {rq, out};
    enum hibus_err rc = txlog_with_conn(tl, op_store, &ctx, err);
    if (rc != HIBUS_OK) {
        json_decref(out->periods);
        out->periods = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------ deriving */

/* The figures of period p for every commodity of facility, from the events res
 * holds (commodity, day, kind, quantity, reason, id, tx_id, source_id, date, stored
 * by commodity, day, id). lines[i].commodity points into res. */
static size_t derive_lines(PGresult *res, const struct period *p, struct agg_line **lines_out,
                           struct agg_row **rows_out)
{
    int n = PQntuples(res);
    struct agg_row *rows = hibus_xcalloc((size_t)n + 1, sizeof *rows);
    struct agg_line *lines = hibus_xcalloc((size_t)n + 1, sizeof *lines);
    size_t nl = 0;
    long start = period_day_number(p->start), end = period_day_number(p->end);
    for (int r = 0; r < n; r++) {
        rows[r].day = strtol(PQgetvalue(res, r, 1), NULL, 10);
        if (!agg_kind_parse(PQgetvalue(res, r, 2), &rows[r].kind))
            rows[r].kind = AGG_ADJUSTMENT;
        rows[r].quantity = strtoll(PQgetvalue(res, r, 3), NULL, 10);
        rows[r].reason = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4);
        rows[r].seq = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    }
    for (int r = 0; r < n;) {
        int e = r;
        while (e < n && strcmp(PQgetvalue(res, e, 0), PQgetvalue(res, r, 0)) == 0)
            e++;
        lines[nl].commodity = PQgetvalue(res, r, 0);
        agg_derive(rows + r, (size_t)(e - r), start, end, &lines[nl].figures);
        /* effects index rows from r */
        for (size_t k = 0; k < lines[nl].figures.n_effects; k++)
            lines[nl].figures.effects[k].row += (size_t)r;
        nl++;
        r = e;
    }
    *lines_out = lines;
    *rows_out = rows;
    return nl;
}

static void free_lines(struct agg_line *lines, size_t n, struct agg_row *rows)
{
    for (size_t i = 0; i < n; i++)
        agg_figures_free(&lines[i].figures);
    free(lines);
    free(rows);
}

static PGresult *read_events(PGconn *conn, const char *channel, const char *facility,
                             const char *commodity, const char *end)
{
    const char *v[4] = {channel, facility, end, commodity};
    return PQexecParams(
        conn,
        "SELECT commodity, occurred_on - DATE '1970-01-01', kind, quantity, reason, id, tx_id,"
        " source_id, occurred_on::text, coalesce(" TS_UTC(
            "occurred_at") ", '')"
                           " FROM stock_events WHERE channel = $1 AND facility = $2 AND "
                           "occurred_on <= $3::date"
                           "  AND ($4::text IS NULL OR commodity = $4)"
                           " ORDER BY commodity, occurred_on, id",
        4, NULL, v, NULL, NULL, 0);
}

/* ------------------------------------------------------------------ sending */

struct emit_ctx {
    const struct txlog_agg_emit *rq;
    int emitted, unchanged;
    bool more;
};

/* "12, 15, 20" of the distinct transactions that brought the events in the period
 * (at most 20 named), and how many events that is. */
static void lineage(PGresult *ev, long start, long end, struct buf *txs, int *n_events)
{
    int listed = 0;
    *n_events = 0;
    json_t *seen = json_object();
    for (int r = 0; r < PQntuples(ev); r++) {
        long day = strtol(PQgetvalue(ev, r, 1), NULL, 10);
        if (day < start || day > end)
            continue;
        (*n_events)++;
        const char *tx = PQgetvalue(ev, r, 6);
        if (json_object_get(seen, tx) != NULL)
            continue;
        json_object_set_new(seen, tx, json_true());
        if (listed++ < 20) {
            if (txs->len)
                buf_append(txs, ", ", 2);
            buf_append(txs, tx, strlen(tx));
        } else if (listed == 21) {
            buf_append(txs, ", ...", 5);
        }
    }
    json_decref(seen);
}

static enum hibus_err emit_one(PGconn *conn, struct emit_ctx *ctx, PGresult *due, int row,
                               struct hibus_error *err)
{
    const struct txlog_agg_emit *rq = ctx->rq;
    const char *facility = PQgetvalue(due, row, 0);
    const char *period_id = PQgetvalue(due, row, 1);
    const char *end = PQgetvalue(due, row, 3);
    const char *prev_tx = PQgetvalue(due, row, 4);
    const char *last_body = PQgetvalue(due, row, 5);
    int emissions = atoi(PQgetvalue(due, row, 6));
    int late = atoi(PQgetvalue(due, row, 7));
    struct period p;
    if (!period_parse(period_id, &p)) {
        LOG_ERROR(NULL, "channel %s: aggregate period \"%s\" of %s is not a DHIS2 period; left",
                  rq->channel, period_id, facility);
        return HIBUS_OK;
    }
    PGresult *ev = read_events(conn, rq->channel, facility, NULL, end);
    if (ev == NULL || PQresultStatus(ev) != PGRES_TUPLES_OK)
        return fail(err, conn, ev, "read a period's stock events");
    struct agg_line *lines;
    struct agg_row *rows;
    size_t nl = derive_lines(ev, &p, &lines, &rows);
    char report_id[600];
    snprintf(report_id, sizeof report_id, "aggregate:%s/%s/%d", facility, p.id, emissions + 1);
    char *body = agg_report_json(report_id, facility, &p, lines, nl, rq->by_reason);
    /* the same figures as last time, but for the report id's count. The body holds
     * the figures by reason too (aggregate.by_reason), so a late event that moves
     * only them (an adjustment with a reason before a count, which absorbs it into
     * the same total) still sends the period again. */
    char *body_cmp = NULL;
    if (last_body[0] != '\0') {
        char prev_id[600];
        snprintf(prev_id, sizeof prev_id, "aggregate:%s/%s/%d", facility, p.id, emissions);
        body_cmp = agg_report_json(prev_id, facility, &p, lines, nl, rq->by_reason);
    }
    bool same = body_cmp != NULL && strcmp(body_cmp, last_body) == 0;
    free(body_cmp);
    struct buf txs = {0};
    int n_events;
    lineage(ev, period_day_number(p.start), period_day_number(p.end), &txs, &n_events);
    free_lines(lines, nl, rows);
    PQclear(ev);
    if (body == NULL) {
        buf_free(&txs);
        txlog_rollback(conn);
        return hibus_error_set(err, HIBUS_E_NOMEM, "no memory for an aggregate report");
    }

    const char *v[9];
    PGresult *res;
    if (same) {
        const char *uv[3] = {rq->channel, facility, period_id};
        res = PQexecParams(conn,
                           "UPDATE aggregate_periods SET dirty = false"
                           " WHERE channel = $1 AND facility = $2 AND period = $3",
                           3, NULL, uv, NULL, NULL, 0);
        ctx->unchanged++;
    } else {
        char path[600], key[700], why[1400];
        snprintf(path, sizeof path, "aggregate:%s/%s", facility, p.id);
        snprintf(key, sizeof key, "%s|%s|%s", rq->channel, facility, p.id);
        if (prev_tx[0] != '\0')
            snprintf(why, sizeof why,
                     "correction of transaction %s: %s %s now has %d events (from transactions "
                     "%s); %d came after it was sent, or an earlier period's did",
                     prev_tx, facility, p.id, n_events, txs.s ? txs.s : "none", late);
        else
            snprintf(why, sizeof why, "%s %s: %d events, from transactions %s", facility, p.id,
                     n_events, txs.s ? txs.s : "none (its balance comes from earlier periods)");
        json_t *h =
            json_pack("{s:s, s:s}", "content-type", "application/json", "x-hibus-aggregate", why);
        if (prev_tx[0] != '\0')
            json_object_set_new(h, "x-hibus-correction-of", json_string(prev_tx));
        char *hjs = json_dumps(h, JSON_COMPACT);
        json_decref(h);
        v[0] = rq->channel;
        v[1] = path;
        v[2] = hjs;
        v[3] = body;
        v[4] = rq->node;
        v[5] = key;
        v[6] = facility;
        v[7] = period_id;
        res = PQexecParams(
            conn,
            "WITH t AS (INSERT INTO transactions (request_id, channel, method, path,"
            "  request_headers, request_body, status, node, mode, order_key, next_attempt_at)"
            " VALUES (gen_random_uuid()::text, $1, 'POST', $2, $3::jsonb,"
            "  convert_to($4, 'UTF8'), 'queued', $5, 'async', $6, clock_timestamp())"
            " RETURNING id)"
            " UPDATE aggregate_periods SET dirty = false, emitted_tx = (SELECT id FROM t),"
            "  emitted_at = clock_timestamp(), emissions = emissions + 1, last_body = $9"
            " WHERE channel = $1 AND facility = $7 AND period = $8",
            9, NULL, (const char *const[]){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], body},
            NULL, NULL, 0);
        free(hjs);
        ctx->emitted++;
    }
    buf_free(&txs);
    free(body);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(err, conn, res, "send an aggregate period");
    PQclear(res);
    return HIBUS_OK;
}

static enum hibus_err op_emit(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct emit_ctx *ctx = vctx;
    const struct txlog_agg_emit *rq = ctx->rq;
    ctx->more = false;
    if (!txlog_exec_cmd(conn, "BEGIN", "begin sending aggregate periods", err))
        return HIBUS_E_DB;
    char close_ms[32], limit[16];
    snprintf(close_ms, sizeof close_ms, "%lld", rq->close_after_ms);
    snprintf(limit, sizeof limit, "%d", EMIT_BATCH);
    const char *v[4] = {rq->channel, rq->timezone, close_ms, limit};
    /* A period closes when its last day is over in the facilities' time zone, plus
     * close_after; the oldest go first, so corrections chain in order. */
    PGresult *due = PQexecParams(
        conn,
        "SELECT facility, period, period_start::text, period_end::text,"
        " coalesce(emitted_tx::text, ''), coalesce(last_body, ''), emissions, late_events"
        " FROM aggregate_periods"
        " WHERE channel = $1 AND dirty"
        "  AND ((period_end + 1)::timestamp AT TIME ZONE $2)"
        "   + make_interval(secs => $3::float8 / 1000) <= clock_timestamp()"
        " ORDER BY period_end, facility LIMIT $4::int FOR UPDATE SKIP LOCKED",
        4, NULL, v, NULL, NULL, 0);
    if (due == NULL || PQresultStatus(due) != PGRES_TUPLES_OK)
        return fail(err, conn, due, "find the closed aggregate periods");
    int n = PQntuples(due);
    for (int r = 0; r < n; r++) {
        enum hibus_err rc = emit_one(conn, ctx, due, r, err);
        if (rc != HIBUS_OK) {
            PQclear(due);
            return rc;
        }
    }
    PQclear(due);
    if (!txlog_exec_cmd(conn, "COMMIT", "commit the aggregate periods sent", err))
        return HIBUS_E_DB;
    ctx->more = n == EMIT_BATCH;
    return HIBUS_OK;
}

/* aggregate.quiet_periods: send. Each facility's periods after its last one with a
 * row, up to the present, get a row (dirty) when they have closed, so that the usual
 * emission sends them as months without movement. At most GAP_MAX per facility at a
 * time. Under the channel's store lock, taken exclusively: a store adding rows for
 * the same facilities waits (see lock_facilities). */
static enum hibus_err op_quiet(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    const struct txlog_agg_emit *rq = vctx;
    if (!txlog_exec_cmd(conn, "BEGIN", "begin adding quiet periods", err))
        return HIBUS_E_DB;
    const char *v1[1] = {rq->channel};
    PGresult *res =
        PQexecParams(conn, "SELECT pg_advisory_xact_lock(" STORE_LOCK_CHANNEL ", hashtext($1))", 1,
                     NULL, v1, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "take the channel's store lock");
    PQclear(res);
    res = PQexecParams(conn,
                       "SELECT facility, max(period_end)::text FROM aggregate_periods"
                       " WHERE channel = $1 GROUP BY facility",
                       1, NULL, v1, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "read each facility's last period");
    /* up to tomorrow in UTC: no zone is further ahead; the database decides which of
     * them have closed */
    long today = (long)(time(NULL) / 86400) + 1;
    struct txlog_arr a[4];
    for (int k = 0; k < 4; k++)
        txlog_arr_open(&a[k]);
    for (int r = 0; r < PQntuples(res); r++) {
        struct period_date last;
        if (period_date_parse(PQgetvalue(res, r, 1), &last))
            append_periods(a, PQgetvalue(res, r, 0), rq->period_type, period_day_number(last) + 1,
                           today);
    }
    PQclear(res);
    enum hibus_err rc = HIBUS_OK;
    if (!close_periods(a)) {
        txlog_rollback(conn);
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory adding quiet periods");
        goto out;
    }
    char close_ms[32];
    snprintf(close_ms, sizeof close_ms, "%lld", rq->close_after_ms);
    const char *v[7] = {rq->channel, a[0].b.s,     a[1].b.s, a[2].b.s,
                        a[3].b.s,    rq->timezone, close_ms};
    res = PQexecParams(
        conn,
        "INSERT INTO aggregate_periods (channel, facility, period, period_start,"
        " period_end)"
        " SELECT $1, f, pe, s, e"
        " FROM unnest($2::text[], $3::text[], $4::date[], $5::date[]) AS x(f, pe, s, e)"
        " WHERE ((e + 1)::timestamp AT TIME ZONE $6)"
        "   + make_interval(secs => $7::float8 / 1000) <= clock_timestamp()"
        " ON CONFLICT (channel, facility, period) DO NOTHING",
        7, NULL, v, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail(err, conn, res, "add the quiet periods");
        goto out;
    }
    PQclear(res);
    if (!txlog_exec_cmd(conn, "COMMIT", "commit the quiet periods", err))
        rc = HIBUS_E_DB;
out:
    for (int k = 0; k < 4; k++)
        buf_free(&a[k].b);
    return rc;
}

enum hibus_err txlog_aggregate_emit(struct txlog *tl, const struct txlog_agg_emit *rq, int *emitted,
                                    int *unchanged, struct hibus_error *err)
{
    *emitted = *unchanged = 0;
    if (rq->quiet_send) {
        enum hibus_err rc = txlog_with_conn(tl, op_quiet, (void *)rq, err);
        if (rc != HIBUS_OK)
            return rc;
    }
    for (;;) {
        struct emit_ctx ctx = {.rq = rq};
        enum hibus_err rc = txlog_with_conn(tl, op_emit, &ctx, err);
        if (rc != HIBUS_OK)
            return rc;
        *emitted += ctx.emitted;
        *unchanged += ctx.unchanged;
        if (ctx.emitted > 0)
            txlog_changed(tl, true);
        if (!ctx.more)
            return HIBUS_OK;
    }
}

/* ------------------------------------------------------------------ showing */

struct show_ctx {
    const char *channel, *facility, *commodity;
    const struct period *p;
    json_t *out;
};

static enum hibus_err op_show(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct show_ctx *ctx = vctx;
    char end[11], start[11];
    period_date_format(ctx->p->end, end);
    period_date_format(ctx->p->start, start);
    PGresult *ev = read_events(conn, ctx->channel, ctx->facility, ctx->commodity, end);
    if (ev == NULL || PQresultStatus(ev) != PGRES_TUPLES_OK)
        return fail(err, conn, ev, "read the stock events");
    const char *v[3] = {ctx->channel, ctx->facility, ctx->p->id};
    PGresult *pr = PQexecParams(
        conn,
        "SELECT coalesce(emitted_tx::text, ''), coalesce(" TS_UTC(
            "emitted_at") ", ''), emissions, dirty, late_events,"
                          " (SELECT status FROM transactions t WHERE t.id = emitted_tx)"
                          " FROM aggregate_periods WHERE channel = $1 AND facility = $2 AND period "
                          "= $3",
        3, NULL, v, NULL, NULL, 0);
    if (pr == NULL || PQresultStatus(pr) != PGRES_TUPLES_OK) {
        PQclear(ev);
        return fail(err, conn, pr, "read the period's state");
    }
    json_t *sent = json_null();
    if (PQntuples(pr) == 1) {
        sent = json_pack("{s:b, s:i, s:i}", "pending", PQgetvalue(pr, 0, 3)[0] == 't', "times",
                         atoi(PQgetvalue(pr, 0, 2)), "late_events", atoi(PQgetvalue(pr, 0, 4)));
        if (PQgetvalue(pr, 0, 0)[0] != '\0') {
            json_object_set_new(sent, "transaction",
                                json_integer(strtoll(PQgetvalue(pr, 0, 0), NULL, 10)));
            json_object_set_new(sent, "at", json_string(PQgetvalue(pr, 0, 1)));
            if (!PQgetisnull(pr, 0, 5))
                json_object_set_new(sent, "status", json_string(PQgetvalue(pr, 0, 5)));
        }
    }
    PQclear(pr);
    struct agg_line *lines;
    struct agg_row *rows;
    size_t nl = derive_lines(ev, ctx->p, &lines, &rows);
    json_t *commodities = json_array();
    for (size_t i = 0; i < nl; i++) {
        const struct agg_figures *f = &lines[i].figures;
        json_t *events = json_array();
        for (size_t k = 0; k < f->n_effects; k++) {
            const struct agg_effect *fx = &f->effects[k];
            int r = (int)fx->row;
            json_t *e =
                json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:s?, s:s?, s:I, s:I}", "id",
                          (json_int_t)strtoll(PQgetvalue(ev, r, 5), NULL, 10), "source_id",
                          PQgetvalue(ev, r, 7), "date", PQgetvalue(ev, r, 8), "kind",
                          PQgetvalue(ev, r, 2), "quantity", (json_int_t)rows[r].quantity,
                          "transaction", (json_int_t)strtoll(PQgetvalue(ev, r, 6), NULL, 10),
                          "reason", rows[r].reason, "measure", fx->measure, "amount",
                          (json_int_t)fx->amount, "balance", (json_int_t)fx->balance);
            if (PQgetvalue(ev, r, 9)[0] != '\0')
                json_object_set_new(e, "time", json_string(PQgetvalue(ev, r, 9)));
            json_array_append_new(events, e);
        }
        json_t *by_loss = json_object(), *by_adj = json_object();
        for (size_t k = 0; k < f->n_losses_by_reason; k++)
            json_object_set_new(by_loss, f->losses_by_reason[k].reason,
                                json_integer((json_int_t)f->losses_by_reason[k].amount));
        for (size_t k = 0; k < f->n_adjustments_by_reason; k++)
            json_object_set_new(by_adj, f->adjustments_by_reason[k].reason,
                                json_integer((json_int_t)f->adjustments_by_reason[k].amount));
        json_array_append_new(
            commodities,
            json_pack(
                "{s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:o, s:o}, s:o}", "commodity",
                lines[i].commodity, "figures", "opening_balance", (json_int_t)f->opening_balance,
                "received", (json_int_t)f->received, "consumed", (json_int_t)f->consumed, "losses",
                (json_int_t)f->losses, "adjustments", (json_int_t)f->adjustments, "stock_on_hand",
                (json_int_t)f->stock_on_hand, "stockout_days", f->stockout_days, "losses_by_reason",
                by_loss, "adjustments_by_reason", by_adj, "events", events));
    }
    free_lines(lines, nl, rows);
    PQclear(ev);
    ctx->out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "channel", ctx->channel, "facility",
                         ctx->facility, "period", ctx->p->id, "start", start, "end", end, "sent",
                         sent, "commodities", commodities);
    return HIBUS_OK;
}

enum hibus_err txlog_aggregate_show(struct txlog *tl, const char *channel, const char *facility,
                                    const char *commodity, const struct period *p, json_t **out,
                                    struct hibus_error *err)
{
    struct show_ctx ctx = {channel, facility, commodity, p, NULL};
    enum hibus_err rc = txlog_with_conn(tl, op_show, &ctx, err);
    *out = ctx.out;
    return rc;
}
