/*
 * txlog_poll.c - the state of polling channels in the transaction log (migration
 * 012; see hibus/txlog.h and src/poller.c).
 *
 * Entry points: txlog_poll_register, txlog_poll_claim, txlog_poll_finish,
 * txlog_poll_seen, txlog_poll_remember, txlog_poll_states.
 *
 * Invariant: a slot is taken by exactly one process. txlog_poll_claim reads the
 * channel's row FOR UPDATE SKIP LOCKED and moves next_due past the database's
 * now() before it commits: a second process either skips the locked row or, once
 * the first committed, finds it not due. Every op is safe to run twice (the retry
 * rule of src/txlog.c): a claim repeated after a lost connection finds the slot
 * taken (by itself) and claims nothing, so the slot is pulled at the next one.
 */
#define LOG_SUBSYS "txlog"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "txlog_internal.h"

struct poll_ctx {
    const char *channel, *owner, *cursor, *item_id, *error;
    const struct txlog_poll_schedule *sch;
    int64_t tx_id;
    long lease_ms;
    int items;
    /* results */
    struct txlog_poll_slot slot;
    bool seen;
    json_t *states;
};

static enum hibus_err fail(struct hibus_error *err, PGconn *conn, PGresult *res, const char *what,
                           bool in_tx)
{
    enum hibus_err rc = txlog_db_fail(err, conn, res, what);
    PQclear(res);
    if (in_tx)
        txlog_rollback(conn);
    return rc;
}

/* The next slot after the database's now(), as text for to_timestamp(): see
 * struct txlog_poll_schedule. wall_now is a row's floor(extract(epoch FROM now()
 * AT TIME ZONE tz)). */
static void next_slot_text(const struct txlog_poll_schedule *sch, const char *wall_now,
                           char out[32])
{
    snprintf(out, 32, "%lld", (long long)sch->next(sch->arg, strtoll(wall_now, NULL, 10)));
}

/* A wall-clock time (as next_slot_text gives it) in the zone $N as an instant. */
#define WALL_TO_INSTANT(n, tz)                                                                     \
    "((to_timestamp(" n "::float8) AT TIME ZONE 'UTC') AT TIME ZONE " tz ")"

static enum hibus_err op_register(PGconn *conn, unsigned *prepared, void *vctx,
                                  struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    const char *tz = ctx->sch->timezone ? ctx->sch->timezone : "UTC";
    const char *const w[1] = {tz};
    PGresult *res = PQexecParams(conn, "SELECT floor(extract(epoch FROM now() AT TIME ZONE $1))", 1,
                                 NULL, w, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "read the time in the poll channel's time zone", false);
    char due[32];
    next_slot_text(ctx->sch, PQgetvalue(res, 0, 0), due);
    PQclear(res);
    const char *const v[4] = {ctx->channel, ctx->sch->key, due, tz};
    /* A row whose schedule is unchanged is not written: the claim of another
     * process, its next_due and its cursor stay as they are. */
    /* clang-format off */
    static const char sql[] =
        "INSERT INTO poll_state (channel, schedule, next_due)"
        " VALUES ($1, $2, " WALL_TO_INSTANT("$3", "$4") ")"
        " ON CONFLICT (channel) DO UPDATE SET schedule = EXCLUDED.schedule,"
        " next_due = EXCLUDED.next_due WHERE poll_state.schedule <> EXCLUDED.schedule";
    /* clang-format on */
    res = PQexecParams(conn, sql, 4, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(err, conn, res, "register the poll channel", false);
    PQclear(res);
    return HIBUS_OK;
}

enum hibus_err txlog_poll_register(struct txlog *tl, const char *channel,
                                   const struct txlog_poll_schedule *schedule,
                                   struct hibus_error *err)
{
    struct poll_ctx ctx = {.channel = channel, .sch = schedule};
    return txlog_with_conn(tl, op_register, &ctx, err);
}

static enum hibus_err op_claim(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    struct txlog_poll_slot slot = {0};
    const char *tz = ctx->sch->timezone ? ctx->sch->timezone : "UTC";
    if (!txlog_exec_cmd(conn, "BEGIN", "begin a poll claim", err))
        return HIBUS_E_DB;
    /* A claim of this very process is stale (its pulls run one at a time, and
     * none runs while it looks): its pull ended without recording so (the
     * database was away), and the slot need not wait for the claim to lapse. */
    const char *const v[4] = {ctx->channel, ctx->sch->key, ctx->owner, tz};
    PGresult *res = PQexecParams(conn,
                                 "SELECT floor(extract(epoch FROM now()))::int8, cursor, "
                                 "floor(extract(epoch FROM now() AT TIME ZONE $4)) "
                                 "FROM poll_state WHERE channel = $1 AND schedule = $2 "
                                 "AND next_due <= now() AND (claimed_until IS NULL "
                                 "OR claimed_until < now() OR claimed_by = $3) "
                                 "FOR UPDATE SKIP LOCKED",
                                 4, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "read the poll state", true);
    if (PQntuples(res) == 0) {
        PQclear(res);
        if (!txlog_exec_cmd(conn, "COMMIT", "end a poll claim", err))
            return HIBUS_E_DB;
        free(ctx->slot.cursor);
        ctx->slot = slot;
        return HIBUS_OK;
    }
    slot.started = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char *cursor = PQgetisnull(res, 0, 1) ? NULL : hibus_xstrdup(PQgetvalue(res, 0, 1));
    char next[32], lease[32];
    next_slot_text(ctx->sch, PQgetvalue(res, 0, 2), next);
    PQclear(res);
    snprintf(lease, sizeof lease, "%ld", ctx->lease_ms);
    const char *const u[5] = {ctx->channel, next, ctx->owner, lease, tz};
    /* clang-format off */
    static const char sql[] =
        "UPDATE poll_state SET next_due = " WALL_TO_INSTANT("$2", "$5") ","
        " claimed_by = $3, claimed_until = now() + $4::int8 * interval '1 ms',"
        " last_run = now(), runs = runs + 1 WHERE channel = $1";
    /* clang-format on */
    res = PQexecParams(conn, sql, 5, NULL, u, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        free(cursor);
        return fail(err, conn, res, "claim the poll slot", true);
    }
    PQclear(res);
    if (!txlog_exec_cmd(conn, "COMMIT", "commit a poll claim", err)) {
        free(cursor);
        return HIBUS_E_DB;
    }
    slot.claimed = true;
    slot.cursor = cursor;
    free(ctx->slot.cursor);
    ctx->slot = slot;
    return HIBUS_OK;
}

enum hibus_err txlog_poll_claim(struct txlog *tl, const char *channel,
                                const struct txlog_poll_schedule *schedule, const char *owner,
                                long lease_ms, struct txlog_poll_slot *slot,
                                struct hibus_error *err)
{
    struct poll_ctx ctx = {
        .channel = channel, .sch = schedule, .owner = owner, .lease_ms = lease_ms};
    enum hibus_err rc = txlog_with_conn(tl, op_claim, &ctx, err);
    if (rc != HIBUS_OK) {
        free(ctx.slot.cursor);
        return rc;
    }
    *slot = ctx.slot;
    return HIBUS_OK;
}

enum hibus_err txlog_poll_renew(struct txlog *tl, const char *channel, const char *owner,
                                long lease_ms, bool *held, struct hibus_error *err)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%ld", lease_ms);
    const char *const v[3] = {channel, owner, lease};
    long n = 0;
    enum hibus_err rc = txlog_run_count(tl,
                                        "UPDATE poll_state SET claimed_until = now() + $3::int8 *"
                                        " interval '1 ms' WHERE channel = $1 AND claimed_by = $2"
                                        " AND claimed_until >= now()",
                                        "renew the poll claim", 3, v, &n, err);
    *held = n == 1;
    return rc;
}

/* run: the next slot is now; reset: the cursor becomes cursor (NULL: none, the
 * channel's from). */
static enum hibus_err operate(struct txlog *tl, const char *channel, const char *op,
                              const char *cursor, bool *found, struct hibus_error *err)
{
    const char *const v[3] = {channel, op, cursor};
    long n = 0;
    enum hibus_err rc = txlog_run_count(
        tl,
        "UPDATE poll_state SET"
        " next_due = CASE WHEN $2 = 'run' THEN now() ELSE next_due END,"
        " cursor = CASE WHEN $2 = 'reset' THEN $3 ELSE cursor END WHERE channel = $1",
        "change the poll state", 3, v, &n, err);
    *found = n == 1;
    return rc;
}

enum hibus_err txlog_poll_run_now(struct txlog *tl, const char *channel, bool *found,
                                  struct hibus_error *err)
{
    return operate(tl, channel, "run", NULL, found, err);
}

enum hibus_err txlog_poll_set_cursor(struct txlog *tl, const char *channel, const char *cursor,
                                     bool *found, struct hibus_error *err)
{
    return operate(tl, channel, "reset", cursor, found, err);
}

static enum hibus_err op_finish(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    char items[16];
    snprintf(items, sizeof items, "%d", ctx->items);
    const char *const v[5] = {ctx->channel, ctx->owner, ctx->cursor, items, ctx->error};
    PGresult *res = PQexecParams(
        conn,
        "UPDATE poll_state SET claimed_by = NULL, claimed_until = NULL, "
        "cursor = CASE WHEN $5::text IS NULL THEN coalesce($3, cursor) ELSE cursor END, "
        "last_success = CASE WHEN $5::text IS NULL THEN now() ELSE last_success END, "
        "last_items = CASE WHEN $5::text IS NULL THEN $4::int ELSE last_items END, "
        "last_error = $5, "
        "last_error_at = CASE WHEN $5::text IS NULL THEN last_error_at ELSE now() END, "
        "failures = failures + CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END "
        "WHERE channel = $1 AND claimed_by = $2",
        5, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(err, conn, res, "record the pull", false);
    PQclear(res);
    return HIBUS_OK;
}

enum hibus_err txlog_poll_finish(struct txlog *tl, const char *channel, const char *owner,
                                 const char *cursor, int items, const char *error,
                                 struct hibus_error *err)
{
    struct poll_ctx ctx = {
        .channel = channel, .owner = owner, .cursor = cursor, .items = items, .error = error};
    return txlog_with_conn(tl, op_finish, &ctx, err);
}

static enum hibus_err op_seen(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    const char *const v[2] = {ctx->channel, ctx->item_id};
    /* An item the source still returns is seen again: its seen_at moves (at most
     * once a day, not a write per pull), so retention, which removes the ids not
     * seen for the channel's keep_transactions, never forgets one the source
     * still sends. */
    PGresult *res = PQexecParams(conn,
                                 "WITH f AS (SELECT 1 FROM poll_items WHERE channel = $1"
                                 "  AND item_id = $2),"
                                 " u AS (UPDATE poll_items SET seen_at = now()"
                                 "  WHERE channel = $1 AND item_id = $2"
                                 "   AND seen_at < now() - interval '1 day')"
                                 " SELECT 1 FROM f",
                                 2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "look the pulled item up", false);
    ctx->seen = PQntuples(res) > 0;
    PQclear(res);
    return HIBUS_OK;
}

enum hibus_err txlog_poll_seen(struct txlog *tl, const char *channel, const char *item_id,
                               bool *seen, struct hibus_error *err)
{
    struct poll_ctx ctx = {.channel = channel, .item_id = item_id};
    enum hibus_err rc = txlog_with_conn(tl, op_seen, &ctx, err);
    if (rc == HIBUS_OK)
        *seen = ctx.seen;
    return rc;
}

static enum hibus_err op_remember(PGconn *conn, unsigned *prepared, void *vctx,
                                  struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)ctx->tx_id);
    const char *const v[3] = {ctx->channel, ctx->item_id, id};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO poll_items (channel, item_id, transaction_id) "
                                 "VALUES ($1, $2, $3::int8) ON CONFLICT DO NOTHING",
                                 3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(err, conn, res, "record the pulled item", false);
    PQclear(res);
    return HIBUS_OK;
}

enum hibus_err txlog_poll_remember(struct txlog *tl, const char *channel, const char *item_id,
                                   int64_t tx_id, struct hibus_error *err)
{
    struct poll_ctx ctx = {.channel = channel, .item_id = item_id, .tx_id = tx_id};
    return txlog_with_conn(tl, op_remember, &ctx, err);
}

static enum hibus_err op_states(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    (void)prepared;
    struct poll_ctx *ctx = vctx;
    /* clang-format off */
    static const char sql[] =
        "SELECT channel, schedule, " TS_UTC("next_due") ", cursor, claimed_by,"
        " " TS_UTC("last_run") ", " TS_UTC("last_success") ", last_items, last_error,"
        " " TS_UTC("last_error_at") ", runs, failures FROM poll_state ORDER BY channel";
    /* clang-format on */
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "read the poll states", false);
    static const char *const names[] = {"channel",    "schedule",      "next_due",     "cursor",
                                        "claimed_by", "last_run",      "last_success", "last_items",
                                        "last_error", "last_error_at", "runs",         "failures"};
    json_t *arr = json_array();
    for (int r = 0; r < PQntuples(res); r++) {
        json_t *o = json_object();
        for (int c = 0; c < (int)(sizeof names / sizeof names[0]); c++) {
            json_t *v;
            if (PQgetisnull(res, r, c))
                v = json_null();
            else if (c == 7 || c >= 10)
                v = json_integer(strtoll(PQgetvalue(res, r, c), NULL, 10));
            else
                v = json_string(PQgetvalue(res, r, c));
            json_object_set_new(o, names[c], v);
        }
        json_array_append_new(arr, o);
    }
    PQclear(res);
    json_decref(ctx->states);
    ctx->states = arr;
    return HIBUS_OK;
}

enum hibus_err txlog_poll_states(struct txlog *tl, json_t **out, struct hibus_error *err)
{
    struct poll_ctx ctx = {0};
    enum hibus_err rc = txlog_with_conn(tl, op_states, &ctx, err);
    if (rc != HIBUS_OK) {
        json_decref(ctx.states);
        return rc;
    }
    *out = ctx.states;
    return HIBUS_OK;
}
