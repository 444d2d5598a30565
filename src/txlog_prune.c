/*
 * txlog_prune.c - retention in the transaction log (see hibus/txlog.h): the
 * monthly partitions of transactions and attempts, and what is removed once
 * it is older than its channel keeps it. src/retention.c decides when to prune
 * and with which rules; this file runs one prune.
 *
 * Entry point: txlog_prune. It makes the months around now, DROPs whole months
 * older than the longest keep_transactions (unless a rule keeps forever), then
 * DELETEs old transactions and empties old bodies per rule, in batches, so no
 * statement holds locks for long. Queued and processing transactions are never
 * touched. One process prunes at a time (an advisory lock); the others skip.
 */
#include "hibus/txlog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "txlog_internal.h"

/* ------------------------------------------------------------------------- */
/* Retention                                                                 */
/* ------------------------------------------------------------------------- */

#define PRUNE_LOCK "7220113105" /* advisory lock key: one pruner at a time */
#define PRUNE_BATCH "5000"

struct prune_ctx {
    const struct txlog_retention *rules;
    size_t n;
    struct txlog_prune_result *out;
};

/* A statement that returns one value: its text into out (cut to size). */
static enum hibus_err query_one(PGconn *conn, const char *sql, int nparams, const char *const *vals,
                                const char *what, char *out, size_t size, struct hibus_error *err)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, vals, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) != 1) {
        enum hibus_err rc = txlog_db_fail(err, conn, res, what);
        PQclear(res);
        return rc;
    }
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return HIBUS_OK;
}

/* Runs a counting statement until a batch comes back short. */
static bool prune_loop(PGconn *conn, const char *sql, const char *const *vals, int nparams,
                       long *total, const char *what, struct hibus_error *err)
{
    for (;;) {
        char v[32];
        if (query_one(conn, sql, nparams, vals, what, v, sizeof v, err) != HIBUS_OK)
            return false;
        long n = strtol(v, NULL, 10);
        *total += n;
        if (n < atol(PRUNE_BATCH))
            return true;
    }
}

static enum hibus_err op_prune(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    struct prune_ctx *ctx = vctx;
    struct txlog_prune_result *out = ctx->out;
    char v[32];
    enum hibus_err rc = query_one(conn, "SELECT pg_try_advisory_lock(" PRUNE_LOCK ")", 0, NULL,
                                  "take the prune lock", v, sizeof v, err);
    if (rc != HIBUS_OK)
        return rc;
    bool mine = v[0] == 't';
    if (!mine) {
        out->skipped = true; /* another process is pruning */
        return HIBUS_OK;
    }
    /* The months around now exist before anything is written to them. */
    rc =
        query_one(conn, "SELECT hibus_ensure_partitions(clock_timestamp() - interval '1 month', 4)",
                  0, NULL, "create monthly partitions", v, sizeof v, err);
    if (rc != HIBUS_OK)
        goto unlock;
    out->partitions_made = atoi(v);

    /* Whole months older than every channel's keep_transactions: DROP. */
    long long keep_max = 0;
    bool forever = false;
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->rules[i].keep_transactions_ms <= 0)
            forever = true;
        else if (ctx->rules[i].keep_transactions_ms > keep_max)
            keep_max = ctx->rules[i].keep_transactions_ms;
    }
    if (!forever && keep_max > 0) {
        char keep[32];
        snprintf(keep, sizeof keep, "%lld", keep_max);
        const char *const vals[1] = {keep};
        rc = query_one(conn,
                       "SELECT hibus_drop_partitions_before(clock_timestamp()"
                       " - make_interval(secs => $1::float8 / 1000))",
                       1, vals, "drop old monthly partitions", v, sizeof v, err);
        if (rc != HIBUS_OK)
            goto unlock;
        out->partitions_dropped = atoi(v);
    }

    /* Then what remains past each channel's limits, in batches. A rule with
     * channel NULL covers every channel no other rule names. */
    struct txlog_arr named;
    txlog_arr_open(&named);
    for (size_t i = 0; i < ctx->n; i++)
        if (ctx->rules[i].channel)
            txlog_arr_str(&named, ctx->rules[i].channel);
    if (!txlog_arr_close(&named)) {
        buf_free(&named.b);
        rc = hibus_error_set(err, HIBUS_E_NOMEM, "out of memory listing the channels to prune");
        goto unlock;
    }
    const char *names = named.b.s;
#define PRUNE_WHO                                                                                  \
    "(($1::text IS NOT NULL AND channel = $1) OR"                                                  \
    " ($1::text IS NULL AND NOT (channel = ANY ($3::text[]))))"                                    \
    " AND received_at < clock_timestamp() - make_interval(secs => $2::float8 / 1000)"              \
    " AND status NOT IN ('queued', 'processing')"
    for (size_t i = 0; i < ctx->n && rc == HIBUS_OK; i++) {
        const struct txlog_retention *r = &ctx->rules[i];
        char keep[32];
        if (r->keep_transactions_ms > 0) {
            snprintf(keep, sizeof keep, "%lld", r->keep_transactions_ms);
            const char *const vals[3] = {r->channel, keep, names};
            if (!prune_loop(conn,
                            "WITH d AS (DELETE FROM transactions WHERE id IN (SELECT id FROM"
                            " transactions WHERE " PRUNE_WHO " LIMIT " PRUNE_BATCH ")"
                            " RETURNING id, received_at),"
                            " a AS (DELETE FROM attempts x USING d WHERE x.transaction_id = d.id"
                            " AND x.tx_received_at = d.received_at RETURNING 1)"
                            " SELECT count(*) FROM d",
                            vals, 3, &out->transactions_deleted, "remove old transactions", err))
                rc = HIBUS_E_DB;
        }
        if (rc == HIBUS_OK && r->keep_bodies_ms > 0) {
            snprintf(keep, sizeof keep, "%lld", r->keep_bodies_ms);
            const char *const vals[3] = {r->channel, keep, names};
            if (!prune_loop(conn,
                            "WITH u AS (UPDATE transactions SET request_body = NULL,"
                            " response_body = NULL, bodies_pruned_at = clock_timestamp()"
                            " WHERE id IN (SELECT id FROM transactions WHERE " PRUNE_WHO
                            " AND bodies_pruned_at IS NULL LIMIT " PRUNE_BATCH ")"
                            " RETURNING id, received_at),"
                            " a AS (UPDATE attempts x SET response_excerpt = NULL FROM u"
                            " WHERE x.transaction_id = u.id AND x.tx_received_at = u.received_at"
                            " RETURNING 1)"
                            " SELECT count(*) FROM u",
                            vals, 3, &out->bodies_pruned, "prune old bodies", err))
                rc = HIBUS_E_DB;
        }
        /* A polling channel's record of the items it pulled (poll_items): an id
         * the source has not returned for as long as the channel keeps its
         * transactions (seen_at moves when the source returns it again,
         * txlog_poll_seen) is not needed to recognise a duplicate any more. */
        if (rc == HIBUS_OK && r->keep_transactions_ms > 0) {
            snprintf(keep, sizeof keep, "%lld", r->keep_transactions_ms);
            const char *const vals[3] = {r->channel, keep, names};
            if (!prune_loop(conn,
                            "WITH d AS (DELETE FROM poll_items WHERE ctid IN (SELECT ctid FROM"
                            " poll_items WHERE (($1::text IS NOT NULL AND channel = $1) OR"
                            " ($1::text IS NULL AND NOT (channel = ANY ($3::text[]))))"
                            " AND seen_at < clock_timestamp()"
                            " - make_interval(secs => $2::float8 / 1000) LIMIT " PRUNE_BATCH ")"
                            " RETURNING 1)"
                            " SELECT count(*) FROM d",
                            vals, 3, &out->poll_items_deleted, "remove old pulled items' ids", err))
                rc = HIBUS_E_DB;
        }
    }
#undef PRUNE_WHO
    buf_free(&named.b);
unlock:
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" PRUNE_LOCK ")"));
    return rc;
}

enum hibus_err txlog_prune(struct txlog *tl, const struct txlog_retention *rules, size_t n,
                           struct txlog_prune_result *out, struct hibus_error *err)
{
    memset(out, 0, sizeof *out);
    struct prune_ctx ctx = {.rules = rules, .n = n, .out = out};
    return txlog_with_conn(tl, op_prune, &ctx, err);
}
