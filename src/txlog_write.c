/*
 * txlog_write.c - what the transaction log writes (see hibus/txlog.h): a
 * request as it arrives, the attempts and outcome of a delivery, and the
 * delivery queue that asynchronous channels, takeovers and reruns go through.
 *
 * Entry points: txlog_insert; txlog_complete and txlog_finish (attempts and
 * outcome in one commit); the queue: txlog_claim/txlog_claimed_free (leases),
 * txlog_route_states, txlog_next_due, txlog_release, txlog_renew, txlog_rerun,
 * txlog_rerun_cancel. Their SQL, when prepared, is the table in src/txlog.c.
 *
 * Invariants: a queued row has next_attempt_at set; a row taken for delivery
 * (txlog_claim, or txlog_insert with lease_ms) carries lease_owner and
 * lease_until until its outcome is recorded, and txlog_finish with an owner
 * records it only while that owner still holds the lease. Every call runs under
 * txlog_with_conn, so each op here writes its ctx only on success and may run
 * twice (the retry rule, and where a retry can write twice: src/txlog.c).
 */
#include "hibus/txlog.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/buf.h"
#include "hibus/text.h"
#include "txlog_internal.h"

/* ------------------------------------------------------------------------- */
/* Insert and complete                                                       */
/* ------------------------------------------------------------------------- */

struct insert_ctx {
    const struct txlog_request *rq;
    int64_t id;
    char received_at[TXLOG_TS_MAX];
};

/* The insert's parameters for rq; lease is its buffer (32 bytes). */
static void insert_params(const struct txlog_request *rq, char *lease, const char *vals[14],
                          int lens[14], int fmts[14])
{
    snprintf(lease, 32, "%ld", rq->lease_ms);
    const char *const v[14] = {
        rq->request_id,
        rq->channel,
        rq->client,
        rq->method,
        rq->path,
        rq->query && rq->query[0] ? rq->query : NULL,
        rq->headers_json ? rq->headers_json : "{}",
        rq->body, /* NULL body -> SQL NULL */
        rq->status,
        rq->node,
        rq->mode,
        rq->order_key,
        rq->lease_ms > 0 ? lease : NULL,
        rq->problems_json,
    };
    memcpy(vals, v, sizeof v);
    memset(lens, 0, 14 * sizeof *lens);
    memset(fmts, 0, 14 * sizeof *fmts);
    lens[7] = (int)rq->body_len;
    fmts[7] = 1;
}

static enum hibus_err op_insert(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    struct insert_ctx *ctx = vctx;
    char lease[32];
    const char *vals[14];
    int lens[14], fmts[14];
    insert_params(ctx->rq, lease, vals, lens, fmts);
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_INSERT, vals, lens, fmts);
    /* No partition for this month yet (hibus was not running when it began):
     * make it and the next ones, then insert again. */
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23514") == 0) {
        PQclear(res);
        PGresult *mk = PQexec(conn, "SELECT hibus_ensure_partitions(clock_timestamp(), 3)");
        PQclear(mk);
        res = txlog_exec_stmt(conn, prepared, TXLOG_ST_INSERT, vals, lens, fmts);
    }
    enum hibus_err rc = HIBUS_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = txlog_db_fail(err, conn, res, "store the transaction");
    } else {
        ctx->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        hibus_strlcpy(ctx->received_at, PQgetvalue(res, 0, 1), sizeof ctx->received_at);
    }
    PQclear(res);
    return rc;
}

/* ---- Group commit ----
 *
 * Writes that arrive while another of their kind is on its way to the database
 * wait, and go together in the next round trip: one pipeline of their statements
 * and one Sync, which PostgreSQL runs as one implicit transaction, so one commit and
 * one WAL flush for all of them. The first caller with nothing in flight leads: it
 * takes what is pending (oldest first), runs it and hands each waiter its result;
 * once its own is done, a waiter whose write is not leads the next batch. A lone
 * write goes at once. Nobody is answered before the commit that holds its write. A
 * batch the server refuses as a whole (anything but a lost connection, which
 * txlog_with_conn retries) is run again one write at a time, so each caller gets its
 * own result. Inserts (txlog_insert) and outcomes (txlog_finish) are two groups. */

#define GROUP_MAX 32                       /* writes in one commit */
#define GROUP_BODY_BYTES (4 * 1024 * 1024) /* bodies in one commit (a larger one goes alone) */

struct txlog_pending {
    void *ctx; /* the single write's context (struct insert_ctx, struct complete_ctx) */
    size_t bytes;
    enum hibus_err rc;
    struct hibus_error err;
    bool done; /* rc and err are set; woken while not done: asked to lead */
    /* Its own wake-up, posted once: done, or asked to lead. A semaphore rather than
     * a condition variable, so that a woken waiter does not then queue for the
     * group's mutex behind the leader and thirty others (perf showed a tenth of
     * pass-through's CPU in that second sleep). */
    sem_t wake;
    struct txlog_pending *next;
};

/* Runs v[0..n) and sets each one's rc and err. */
typedef void (*group_run_fn)(struct txlog *tl, struct txlog_pending **v, size_t n);

static void wait_wake(struct txlog_pending *me)
{
    while (sem_wait(&me->wake) != 0 && errno == EINTR)
        ;
}

static enum hibus_err group_write(struct txlog *tl, enum txlog_group_kind kind,
                                  struct txlog_pending *me, group_run_fn run)
{
    struct txlog_group *g = txlog_group(tl, kind);
    sem_init(&me->wake, 0, 0);
    pthread_mutex_lock(&g->mu);
    if (g->tail != NULL)
        g->tail->next = me;
    else
        g->head = me;
    g->tail = me;
    if (g->leading) {
        pthread_mutex_unlock(&g->mu);
        wait_wake(me);
        if (me->done) {
            sem_destroy(&me->wake);
            return me->rc;
        }
        pthread_mutex_lock(&g->mu); /* asked to lead: g->leading was kept for me */
    }
    g->leading = true;
    for (;;) {
        /* Lead: take up to GROUP_MAX pending (bodies within GROUP_BODY_BYTES). */
        struct txlog_pending *v[GROUP_MAX];
        size_t n = 0, bytes = 0;
        while (g->head != NULL && n < GROUP_MAX &&
               (n == 0 || bytes + g->head->bytes <= GROUP_BODY_BYTES)) {
            struct txlog_pending *p = g->head;
            g->head = p->next;
            if (g->head == NULL)
                g->tail = NULL;
            p->next = NULL;
            bytes += p->bytes;
            v[n++] = p;
        }
        pthread_mutex_unlock(&g->mu);
        run(tl, v, n);
        pthread_mutex_lock(&g->mu);
        for (size_t i = 0; i < n; i++)
            v[i]->done = true;
        /* Mine may still be pending (more than one batch was waiting): then lead
         * again; else the oldest waiter leads what arrived meanwhile. */
        struct txlog_pending *next = NULL;
        if (me->done) {
            next = g->head; /* g->leading stays true for it */
            if (next == NULL)
                g->leading = false;
        }
        pthread_mutex_unlock(&g->mu);
        /* A waiter may return (and its struct go) as soon as it is posted. */
        for (size_t i = 0; i < n; i++)
            if (v[i] != me)
                sem_post(&v[i]->wake);
        if (me->done) {
            if (next != NULL)
                sem_post(&next->wake);
            break;
        }
        pthread_mutex_lock(&g->mu);
    }
    sem_destroy(&me->wake);
    return me->rc;
}

/* Sends one statement of a batch (its parameters built for item i); false when
 * it could not be sent. */
typedef bool (*batch_send_fn)(PGconn *conn, struct txlog_pending *p);
/* Takes the result of item i (PGRES_TUPLES_OK, one row) and sets its rc (and err);
 * false if the row is not one it can read. */
typedef bool (*batch_take_fn)(struct txlog_pending *p, const PGresult *res);

struct batch_ctx {
    struct txlog_pending **v;
    size_t n;
    enum txlog_stmt st;
    batch_send_fn send;
    batch_take_fn take;
    const char *what; /* "store the transactions" */
    bool refused;     /* the server refused a statement (not a lost connection) */
};

static enum hibus_err op_batch(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    struct batch_ctx *b = vctx;
    if (!txlog_prepare(conn, prepared, b->st, err))
        return HIBUS_E_DB;
    if (!PQenterPipelineMode(conn))
        return txlog_db_fail(err, conn, NULL, "start a pipeline");
    bool sent = true;
    for (size_t i = 0; i < b->n && sent; i++)
        sent = b->send(conn, b->v[i]);
    sent = sent && PQpipelineSync(conn) == 1;
    if (!sent) {
        /* Half a pipeline went out: the session cannot be trusted any more.
         * Breaking it makes the pool drop it (and txlog_with_conn retry). */
        enum hibus_err rc = txlog_db_fail(err, conn, NULL, b->what);
        shutdown(PQsocket(conn), SHUT_RDWR);
        PQconsumeInput(conn);
        return rc;
    }
    enum hibus_err rc = HIBUS_OK;
    /* Every result up to the Sync, whatever happened, so that the connection
     * leaves pipeline mode clean. */
    size_t got = 0;
    for (;;) {
        PGresult *res = PQgetResult(conn);
        if (res == NULL) {
            if (txlog_conn_lost(conn))
                break;
            continue; /* the end of one query's results */
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && got < b->n && b->take(b->v[got], res)) {
            got++;
        } else if (rc == HIBUS_OK && st != PGRES_PIPELINE_ABORTED) {
            rc = txlog_db_fail(err, conn, res, b->what);
            b->refused = !txlog_conn_lost(conn); /* the server said no */
        }
        PQclear(res);
    }
    if (!PQexitPipelineMode(conn) && rc == HIBUS_OK)
        rc = txlog_db_fail(err, conn, NULL, "end a pipeline");
    if (rc == HIBUS_OK && got != b->n)
        rc = txlog_db_fail(err, conn, NULL, b->what);
    return rc;
}

/* Runs a batch; when it fails as a whole, each gets that answer (the database is
 * away: txlog_with_conn already tried again), or, when the server refused it, each
 * runs on its own with single. */
static void run_batch(struct txlog *tl, struct batch_ctx *b, txlog_op single)
{
    struct hibus_error err = {0};
    enum hibus_err rc = b->n > 1 ? txlog_with_conn(tl, op_batch, b, &err) : HIBUS_E_INVALID;
    if (rc == HIBUS_OK)
        return; /* each one's rc was set as its result came (b->take) */
    if (b->n > 1 && !b->refused) {
        for (size_t i = 0; i < b->n; i++) {
            b->v[i]->rc = rc;
            b->v[i]->err = err;
        }
        return;
    }
    for (size_t i = 0; i < b->n; i++)
        b->v[i]->rc = txlog_with_conn(tl, single, b->v[i]->ctx, &b->v[i]->err);
}

/* ---- Inserts ---- */

static bool insert_send(PGconn *conn, struct txlog_pending *p)
{
    const struct insert_ctx *ctx = p->ctx;
    char lease[32];
    const char *vals[14];
    int lens[14], fmts[14];
    insert_params(ctx->rq, lease, vals, lens, fmts);
    return PQsendQueryPrepared(conn, txlog_stmt_name(TXLOG_ST_INSERT), 14, vals, lens, fmts, 0) ==
           1;
}

static bool insert_take(struct txlog_pending *p, const PGresult *res)
{
    struct insert_ctx *ctx = p->ctx;
    ctx->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    hibus_strlcpy(ctx->received_at, PQgetvalue(res, 0, 1), TXLOG_TS_MAX);
    p->rc = HIBUS_OK;
    return true;
}

/* One missing partition is made by a single insert (op_insert), and one bad row
 * fails only its own request. */
static void run_inserts(struct txlog *tl, struct txlog_pending **v, size_t n)
{
    struct batch_ctx b = {.v = v,
                          .n = n,
                          .st = TXLOG_ST_INSERT,
                          .send = insert_send,
                          .take = insert_take,
                          .what = "store the transactions"};
    run_batch(tl, &b, op_insert);
}

enum hibus_err txlog_insert(struct txlog *tl, const struct txlog_request *rq, int64_t *id,
                            char *received_at, struct hibus_error *err)
{
    if (rq == NULL || rq->request_id == NULL || rq->channel == NULL || rq->method == NULL ||
        rq->path == NULL || rq->status == NULL)
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "transaction lacks request_id, channel, method, path or status");
    if (rq->body == NULL && rq->body_len > 0)
        return hibus_error_set(err, HIBUS_E_INVALID, "transaction body is NULL but has a length");
    if (rq->body_len > INT_MAX)
        return hibus_error_set(err, HIBUS_E_TOO_LARGE,
                               "request body of %zu bytes is too large to store", rq->body_len);
    struct insert_ctx ctx = {.rq = rq};
    struct txlog_pending me = {.ctx = &ctx, .bytes = rq->body_len};
    enum hibus_err rc = group_write(tl, TXLOG_GROUP_INSERTS, &me, run_inserts);
    if (rc != HIBUS_OK && err != NULL)
        *err = me.err;
    if (rc == HIBUS_OK) {
        *id = ctx.id;
        if (received_at != NULL)
            hibus_strlcpy(received_at, ctx.received_at, TXLOG_TS_MAX);
        txlog_changed(tl, strcmp(rq->status, TXLOG_QUEUED) == 0);
    }
    return rc;
}

struct complete_ctx {
    int64_t id;
    const struct txlog_attempt *attempts;
    size_t n_attempts;
    const struct txlog_outcome *out;
    const char *owner; /* the lease holder that must still hold it; NULL: no check */
    long retry_in_ms;  /* with status queued: due again after this */
};

/* ---- Arrays of attempts, as PostgreSQL's array literals ---- */

enum {
    A_ROUTE,
    A_METHOD,
    A_URL,
    A_CODE,
    A_DUR,
    A_ERROR,
    A_HEADERS,
    A_EXCERPT,
    A_START,
    A_DETAILS,
    A_OUTCOME,
    A_RETRY,
    A_NUM,
    A_COUNT
};

static bool attempt_arrays(const struct txlog_attempt *at, size_t n, struct txlog_arr v[A_COUNT])
{
    for (int k = 0; k < A_COUNT; k++)
        txlog_arr_open(&v[k]);
    for (size_t i = 0; i < n; i++) {
        const struct txlog_attempt *a = &at[i];
        char code[16], dur[64], start[64], num[16];
        snprintf(code, sizeof code, "%d", a->status_code);
        snprintf(dur, sizeof dur, "%.3f", isfinite(a->duration_ms) ? a->duration_ms : 0.0);
        snprintf(start, sizeof start, "%.3f", a->started_epoch_ms);
        snprintf(num, sizeof num, "%d", a->attempt > 0 ? a->attempt : 0);
        txlog_arr_str(&v[A_ROUTE], a->route);
        txlog_arr_str(&v[A_METHOD], a->method);
        txlog_arr_str(&v[A_URL], a->url);
        txlog_arr_raw(&v[A_CODE], a->status_code ? code : NULL);
        txlog_arr_raw(&v[A_DUR], dur);
        txlog_arr_str(&v[A_ERROR], a->error);
        txlog_arr_str(&v[A_HEADERS], a->response_headers_json);
        txlog_arr_text(&v[A_EXCERPT], (const char *)a->response_excerpt, a->response_excerpt_len,
                       true);
        txlog_arr_raw(&v[A_START],
                      a->started_epoch_ms > 0 && isfinite(a->started_epoch_ms) ? start : NULL);
        txlog_arr_str(&v[A_DETAILS], a->details_json);
        txlog_arr_str(&v[A_OUTCOME], a->outcome);
        txlog_arr_raw(&v[A_RETRY], a->retryable ? "true" : "false");
        txlog_arr_raw(&v[A_NUM], num);
    }
    bool ok = true;
    for (int k = 0; k < A_COUNT; k++)
        ok = txlog_arr_close(&v[k]) && ok;
    return ok;
}

/* The outcome statement's parameters for ctx, in p (free with finish_params_free).
 * false when out of memory. */
struct finish_params {
    char txid[32], rstatus[16], retry[32];
    struct txlog_arr arrays[A_COUNT];
    const char *vals[24];
    int lens[24], fmts[24];
};

static void finish_params_free(struct finish_params *p)
{
    for (int k = 0; k < A_COUNT; k++)
        buf_free(&p->arrays[k].b);
}

static bool finish_params(const struct complete_ctx *ctx, struct finish_params *p)
{
    const struct txlog_outcome *o = ctx->out;
    memset(p, 0, sizeof *p);
    snprintf(p->txid, sizeof p->txid, "%" PRId64, ctx->id);
    if (!attempt_arrays(ctx->attempts, ctx->n_attempts, p->arrays)) {
        finish_params_free(p);
        return false;
    }
    snprintf(p->rstatus, sizeof p->rstatus, "%d", o->response_status);
    snprintf(p->retry, sizeof p->retry, "%ld", ctx->retry_in_ms > 0 ? ctx->retry_in_ms : 0);
    const char *const v[10] = {
        p->txid,
        o->received_at,
        o->status,
        o->response_status ? p->rstatus : NULL,
        o->response_headers_json,
        o->response_body,
        o->error,
        o->problems_json,
        ctx->owner,
        p->retry,
    };
    memcpy(p->vals, v, sizeof v);
    for (int k = 0; k < A_COUNT; k++)
        p->vals[10 + k] = p->arrays[k].b.s;
    p->vals[23] = o->order_key;
    p->lens[5] = (int)o->response_body_len;
    p->fmts[5] = 1;
    return true;
}

/* What the outcome statement's one row (rows updated) means for ctx. */
static enum hibus_err finish_result(const struct complete_ctx *ctx, const PGresult *res,
                                    struct hibus_error *err)
{
    if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
        return HIBUS_OK;
    if (ctx->owner != NULL)
        return hibus_error_set(err, HIBUS_E_NOT_FOUND,
                               "transaction %" PRId64 " is no longer held by %s: its lease "
                               "lapsed and another process took it over",
                               ctx->id, ctx->owner);
    return hibus_error_set(err, HIBUS_E_NOT_FOUND, "transaction %" PRId64 " does not exist",
                           ctx->id);
}

static enum hibus_err op_complete(PGconn *conn, unsigned *prepared, void *vctx,
                                  struct hibus_error *err)
{
    const struct complete_ctx *ctx = vctx;
    struct finish_params p;
    if (!finish_params(ctx, &p))
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory recording transaction %" PRId64,
                               ctx->id);
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_FINISH, p.vals, p.lens, p.fmts);
    finish_params_free(&p);
    enum hibus_err rc;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        rc = txlog_db_fail(err, conn, res, "record the transaction's outcome");
    else
        rc = finish_result(ctx, res, err);
    PQclear(res);
    return rc;
}

static bool finish_send(PGconn *conn, struct txlog_pending *pending)
{
    struct finish_params p;
    if (!finish_params(pending->ctx, &p))
        return false;
    bool sent = PQsendQueryPrepared(conn, txlog_stmt_name(TXLOG_ST_FINISH), 24, p.vals, p.lens,
                                    p.fmts, 0) == 1;
    finish_params_free(&p);
    return sent;
}

static bool finish_take(struct txlog_pending *pending, const PGresult *res)
{
    pending->rc = finish_result(pending->ctx, res, &pending->err);
    return true;
}

/* Outcomes share commits like inserts: a sync request's outcome is written before
 * its answer, so each one waiting for its own commit costs every sync request a
 * second flush of its own. One outcome whose lease lapsed (0 rows) is that
 * caller's HIBUS_E_NOT_FOUND, not a failure of the batch. */
static void run_outcomes(struct txlog *tl, struct txlog_pending **v, size_t n)
{
    struct batch_ctx b = {.v = v,
                          .n = n,
                          .st = TXLOG_ST_FINISH,
                          .send = finish_send,
                          .take = finish_take,
                          .what = "record the transactions' outcomes"};
    run_batch(tl, &b, op_complete);
}

enum hibus_err txlog_complete(struct txlog *tl, int64_t id, const struct txlog_attempt *attempts,
                              size_t n_attempts, const struct txlog_outcome *out,
                              struct hibus_error *err)
{
    return txlog_finish(tl, id, NULL, attempts, n_attempts, out, 0, err);
}

enum hibus_err txlog_finish(struct txlog *tl, int64_t id, const char *owner,
                            const struct txlog_attempt *attempts, size_t n_attempts,
                            const struct txlog_outcome *out, long retry_in_ms,
                            struct hibus_error *err)
{
    if (out == NULL || out->status == NULL || out->received_at == NULL ||
        (n_attempts > 0 && attempts == NULL))
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "transaction outcome lacks a status or the row's received_at");
    if ((out->response_body == NULL && out->response_body_len > 0) ||
        out->response_body_len > INT_MAX)
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "response body of transaction %" PRId64 " is invalid or too large",
                               id);
    for (size_t i = 0; i < n_attempts; i++) {
        const struct txlog_attempt *a = &attempts[i];
        if (a->route == NULL || a->method == NULL || a->url == NULL ||
            (a->response_excerpt == NULL && a->response_excerpt_len > 0) ||
            a->response_excerpt_len > INT_MAX)
            return hibus_error_set(err, HIBUS_E_INVALID,
                                   "delivery attempt %zu of transaction %" PRId64
                                   " lacks route, method or url, or has an invalid excerpt",
                                   i + 1, id);
    }
    struct complete_ctx ctx = {.id = id,
                               .attempts = attempts,
                               .n_attempts = n_attempts,
                               .out = out,
                               .owner = owner,
                               .retry_in_ms = retry_in_ms};
    struct txlog_pending me = {.ctx = &ctx, .bytes = out->response_body_len};
    enum hibus_err rc = group_write(tl, TXLOG_GROUP_OUTCOMES, &me, run_outcomes);
    if (rc != HIBUS_OK && err != NULL)
        *err = me.err;
    if (rc == HIBUS_OK)
        txlog_changed(tl, strcmp(out->status, TXLOG_QUEUED) == 0);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* The delivery queue                                                        */
/* ------------------------------------------------------------------------- */

struct claim_ctx {
    const char *owner;
    long lease_ms;
    int max;
    struct txlog_claimed *v;
    size_t n;
};

static char *value_dup(const PGresult *res, int row, int col)
{
    return strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static enum hibus_err op_claim(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    struct claim_ctx *ctx = vctx;
    char max[16], lease[32];
    snprintf(max, sizeof max, "%d", ctx->max);
    snprintf(lease, sizeof lease, "%ld", ctx->lease_ms);
    const char *const vals[3] = {ctx->owner, max, lease};
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_CLAIM, vals, NULL, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum hibus_err rc = txlog_db_fail(err, conn, res, "claim due transactions");
        PQclear(res);
        return rc;
    }
    int n = PQntuples(res);
    ctx->v = n ? calloc((size_t)n, sizeof *ctx->v) : NULL;
    if (n && ctx->v == NULL) {
        PQclear(res);
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    }
    bool ok = true;
    for (int i = 0; i < n; i++) {
        struct txlog_claimed *c = &ctx->v[i];
        c->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        c->channel = value_dup(res, i, 1);
        c->client = value_dup(res, i, 2);
        c->method = value_dup(res, i, 3);
        c->path = value_dup(res, i, 4);
        c->query = value_dup(res, i, 5);
        c->headers_json = value_dup(res, i, 6);
        c->request_id = value_dup(res, i, 8);
        c->rounds = atoi(PQgetvalue(res, i, 9));
        c->age_ms = strtod(PQgetvalue(res, i, 10), NULL);
        hibus_strlcpy(c->received_at, PQgetvalue(res, i, 11), sizeof c->received_at);
        if (!PQgetisnull(res, i, 7)) {
            size_t len = 0;
            unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 7), &len);
            c->body = b ? malloc(len + 1) : NULL;
            if (c->body != NULL) {
                memcpy(c->body, b, len);
                c->body[len] = '\0';
                c->body_len = len;
            }
            PQfreemem(b);
            ok = ok && c->body != NULL;
        }
        ok = ok && c->channel && c->client && c->method && c->path && c->query && c->headers_json &&
             c->request_id;
        ctx->n++;
    }
    PQclear(res);
    if (!ok) {
        /* The claims stand; their leases lapse and they are taken again. */
        txlog_claimed_free(ctx->v, ctx->n);
        ctx->v = NULL;
        ctx->n = 0;
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    }
    return HIBUS_OK;
}

enum hibus_err txlog_claim(struct txlog *tl, const char *owner, long lease_ms, int max,
                           struct txlog_claimed **out, size_t *n, struct hibus_error *err)
{
    struct claim_ctx ctx = {.owner = owner, .lease_ms = lease_ms, .max = max > 0 ? max : 1};
    *out = NULL;
    *n = 0;
    enum hibus_err rc = txlog_with_conn(tl, op_claim, &ctx, err);
    if (rc == HIBUS_OK) {
        *out = ctx.v;
        *n = ctx.n;
        if (ctx.n > 0)
            txlog_changed(tl, false);
    }
    return rc;
}

void txlog_claimed_free(struct txlog_claimed *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].channel);
        free(v[i].client);
        free(v[i].method);
        free(v[i].path);
        free(v[i].query);
        free(v[i].headers_json);
        free(v[i].request_id);
        free(v[i].body);
    }
    free(v);
}

struct routes_ctx {
    int64_t id;
    struct txlog_route_state *v;
    size_t n;
};

static enum hibus_err op_routes(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    struct routes_ctx *ctx = vctx;
    char txid[32];
    snprintf(txid, sizeof txid, "%" PRId64, ctx->id);
    const char *const vals[1] = {txid};
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_ROUTES, vals, NULL, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum hibus_err rc = txlog_db_fail(err, conn, res, "read the routes' earlier outcomes");
        PQclear(res);
        return rc;
    }
    int n = PQntuples(res);
    ctx->v = calloc((size_t)n + 1, sizeof *ctx->v);
    if (ctx->v == NULL) {
        PQclear(res);
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        struct txlog_route_state *r = &ctx->v[i];
        if (hibus_strlcpy(r->route, PQgetvalue(res, i, 0), sizeof r->route) >= sizeof r->route ||
            hibus_strlcpy(r->outcome, PQgetvalue(res, i, 1), sizeof r->outcome) >=
                sizeof r->outcome)
            continue; /* a name hibus could not have written; ignore it */
        r->retryable = PQgetvalue(res, i, 2)[0] == 't';
        r->status_code = atoi(PQgetvalue(res, i, 3));
        ctx->n++;
    }
    PQclear(res);
    return HIBUS_OK;
}

enum hibus_err txlog_route_states(struct txlog *tl, int64_t id, struct txlog_route_state **out,
                                  size_t *n, struct hibus_error *err)
{
    struct routes_ctx ctx = {.id = id};
    enum hibus_err rc = txlog_with_conn(tl, op_routes, &ctx, err);
    *out = rc == HIBUS_OK ? ctx.v : NULL;
    *n = rc == HIBUS_OK ? ctx.n : 0;
    return rc;
}

static enum hibus_err op_next_due(PGconn *conn, unsigned *prepared, void *vctx,
                                  struct hibus_error *err)
{
    double *ms = vctx;
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_NEXT_DUE, NULL, NULL, NULL);
    enum hibus_err rc = HIBUS_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        rc = txlog_db_fail(err, conn, res, "find the next due transaction");
    else
        *ms = PQgetisnull(res, 0, 0) ? -1 : strtod(PQgetvalue(res, 0, 0), NULL);
    PQclear(res);
    return rc;
}

enum hibus_err txlog_next_due(struct txlog *tl, double *ms, struct hibus_error *err)
{
    return txlog_with_conn(tl, op_next_due, ms, err);
}

/* A statement that changes rows and reports how many; for the queue's rare
 * statements (release, rerun, cancel), not worth preparing. */
struct count_ctx {
    const char *sql;
    const char *what;
    int nparams;
    const char *const *vals;
    long n;
};

static enum hibus_err op_count(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    struct count_ctx *ctx = vctx;
    PGresult *res = PQexecParams(conn, ctx->sql, ctx->nparams, NULL, ctx->vals, NULL, NULL, 0);
    enum hibus_err rc = HIBUS_OK;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = txlog_db_fail(err, conn, res, ctx->what);
    else
        ctx->n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return rc;
}

enum hibus_err txlog_run_count(struct txlog *tl, const char *sql, const char *what, int nparams,
                               const char *const *vals, long *n, struct hibus_error *err)
{
    struct count_ctx ctx = {.sql = sql, .what = what, .nparams = nparams, .vals = vals};
    enum hibus_err rc = txlog_with_conn(tl, op_count, &ctx, err);
    if (rc == HIBUS_OK && n != NULL)
        *n = ctx.n;
    return rc;
}

enum hibus_err txlog_release(struct txlog *tl, const char *owner, long *released,
                             struct hibus_error *err)
{
    const char *const vals[1] = {owner};
    enum hibus_err rc = txlog_run_count(
        tl,
        "UPDATE transactions SET status = 'queued', lease_owner = NULL,"
        " lease_until = NULL, next_attempt_at = clock_timestamp(),"
        " rounds = greatest(rounds - 1, 0), updated_at = clock_timestamp()"
        " WHERE status = 'processing'"
        "   AND (lease_owner = $1 OR left(lease_owner, length($1) + 1) = $1 || '/')",
        "release this process's claims", 1, vals, released, err);
    if (rc == HIBUS_OK)
        txlog_changed(tl, true);
    return rc;
}

enum hibus_err txlog_hurry(struct txlog *tl, const char *channel, long *hurried,
                           struct hibus_error *err)
{
    const char *const vals[1] = {channel};
    /* Retries (rounds > 0) still waiting out their backoff become due now; the
     * workers' number and batches bound how many go at once, and order keys keep
     * each facility and period in order. */
    enum hibus_err rc =
        txlog_run_count(tl,
                        "UPDATE transactions SET next_attempt_at = clock_timestamp()"
                        " WHERE status = 'queued' AND channel = $1 AND rounds > 0"
                        "   AND next_attempt_at > clock_timestamp()",
                        "call a channel's retries forward", 1, vals, hurried, err);
    if (rc == HIBUS_OK && hurried != NULL && *hurried > 0)
        txlog_changed(tl, true);
    return rc;
}

struct renew_ctx {
    const char *const *vals;
    bool held;
};

static enum hibus_err op_renew(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    struct renew_ctx *ctx = vctx;
    PGresult *res = txlog_exec_stmt(conn, prepared, TXLOG_ST_RENEW, ctx->vals, NULL, NULL);
    enum hibus_err rc = HIBUS_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = txlog_db_fail(err, conn, res, "renew a lease");
    else
        ctx->held = PQntuples(res) == 1;
    PQclear(res);
    return rc;
}

enum hibus_err txlog_renew(struct txlog *tl, int64_t id, const char *received_at, const char *owner,
                           long lease_ms, bool *held, struct hibus_error *err)
{
    char txid[32], lease[32];
    snprintf(txid, sizeof txid, "%" PRId64, id);
    snprintf(lease, sizeof lease, "%ld", lease_ms);
    const char *const vals[4] = {txid, owner, lease, received_at};
    struct renew_ctx ctx = {.vals = vals};
    enum hibus_err rc = txlog_with_conn(tl, op_renew, &ctx, err);
    *held = rc == HIBUS_OK && ctx.held;
    return rc;
}

enum hibus_err txlog_renew_workers(struct txlog *tl, const char *node, const int64_t *ids, size_t n,
                                   long lease_ms, long *renewed, struct hibus_error *err)
{
    *renewed = 0;
    if (n == 0)
        return HIBUS_OK;
    struct txlog_arr list;
    txlog_arr_open(&list);
    for (size_t i = 0; i < n; i++)
        txlog_arr_int(&list, ids[i]);
    if (!txlog_arr_close(&list)) {
        buf_free(&list.b);
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory renewing leases");
    }
    char lease[32];
    snprintf(lease, sizeof lease, "%ld", lease_ms);
    const char *const vals[3] = {node, lease, list.b.s};
    enum hibus_err rc =
        txlog_run_count(tl,
                        "UPDATE transactions SET lease_until = clock_timestamp()"
                        " + make_interval(secs => $2::float8 / 1000)"
                        " WHERE id = ANY ($3::int8[]) AND status = 'processing'"
                        "   AND (lease_owner = $1 OR starts_with(lease_owner, $1 || '/w'))",
                        "renew the delivery workers' leases", 3, vals, renewed, err);
    buf_free(&list.b);
    return rc;
}

struct rerun_ctx {
    const char *const *vals;
    long queued;
    long superseded;
};

static enum hibus_err op_rerun(PGconn *conn, unsigned *prepared, void *vctx,
                               struct hibus_error *err)
{
    (void)prepared;
    struct rerun_ctx *ctx = vctx;
    /* A transaction whose facility and period were reported again later (and
     * that later report was delivered, or is on its way) is superseded: sending
     * the old figures again would overwrite the newer ones in DHIS2. */
    PGresult *res = PQexecParams(
        conn,
        "WITH cand AS ("
        " SELECT id, order_key FROM transactions"
        " WHERE status NOT IN ('queued', 'processing')"
        "   AND ($1::text IS NULL OR id = ANY (string_to_array($1, ',')::bigint[]))"
        "   AND ($2::text IS NULL OR channel = $2)"
        "   AND ($3::text IS NULL OR status = ANY (string_to_array($3, ',')))"
        "   AND ($4::text IS NULL OR received_at >= $4::timestamptz)),"
        " sup AS (SELECT c.id FROM cand c WHERE c.order_key IS NOT NULL AND EXISTS ("
        "   SELECT 1 FROM transactions l WHERE l.order_key = c.order_key AND l.id > c.id"
        "     AND l.status IN ('successful', 'completed', 'completed_with_errors',"
        "                      'queued', 'processing'))),"
        " r AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM cand"
        "   WHERE id NOT IN (SELECT id FROM sup)),"
        " u AS (UPDATE transactions t SET status = 'queued', rounds = 0,"
        "   rerun_at = clock_timestamp(),"
        "   next_attempt_at = clock_timestamp() + make_interval(secs => r.k / $5::float8),"
        "   lease_owner = NULL, lease_until = NULL, finished_at = NULL, error = NULL,"
        "   updated_at = clock_timestamp()"
        "   FROM r WHERE t.id = r.id RETURNING t.id)"
        /* Announced here, in the rerun's own commit (a command has no announcer;
         * see txlog_announce_start): each id to hibus tail, the queue once. */
        " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM sup),"
        "   (SELECT count(pg_notify('hibus_tx', u.id::text)) FROM u),"
        "   (SELECT count(pg_notify('hibus_queue', '')) FROM (SELECT 1 FROM u LIMIT 1) x)",
        5, NULL, ctx->vals, NULL, NULL, 0);
    enum hibus_err rc = HIBUS_OK;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        rc = txlog_db_fail(err, conn, res, "re-queue transactions");
    } else {
        ctx->queued = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        ctx->superseded = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return rc;
}

enum hibus_err txlog_rerun(struct txlog *tl, const struct txlog_rerun_filter *f, long *queued,
                           long *superseded, struct hibus_error *err)
{
    /* Reruns are spread out in time (rate per second) so that re-queueing
     * 100,000 transactions does not send them to DHIS2 at once; the schedule is
     * in the rows themselves, so it survives restarts. */
    char rate[32];
    snprintf(rate, sizeof rate, "%.6f", f->rate_per_s > 0 ? f->rate_per_s : 1e9);
    const char *const vals[5] = {f->ids_csv, f->channel, f->status, f->since, rate};
    struct rerun_ctx ctx = {.vals = vals};
    enum hibus_err rc = txlog_with_conn(tl, op_rerun, &ctx, err);
    if (rc == HIBUS_OK) {
        *queued = ctx.queued;
        *superseded = ctx.superseded;
    }
    return rc;
}

enum hibus_err txlog_rerun_cancel(struct txlog *tl, const char *channel, long *cancelled,
                                  struct hibus_error *err)
{
    const char *const vals[1] = {channel};
    return txlog_run_count(
        tl,
        "UPDATE transactions SET status = 'failed', next_attempt_at = NULL,"
        " finished_at = clock_timestamp(), updated_at = clock_timestamp(),"
        " error = 'rerun cancelled before it was delivered (hibus rerun --cancel)'"
        " WHERE status = 'queued' AND rerun_at IS NOT NULL"
        "   AND ($1::text IS NULL OR channel = $1)",
        "cancel queued reruns", 1, vals, cancelled, err);
}
