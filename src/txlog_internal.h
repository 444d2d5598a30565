/*
 * txlog_internal.h - what the txlog_*.c files share. Not an API: the contract
 * is include/hibus/txlog.h, and nothing outside src/txlog*.c includes this.
 *
 * The transaction log, file by file:
 *   src/txlog.c        the pool, connections, prepared statements, libpq errors,
 *                      migrations, ping: what every other part needs
 *   src/txlog_write.c  insert, attempts and outcomes; the delivery queue (claim,
 *                      route states, next due, release, renew, rerun)
 *   src/txlog_read.c   reads: one transaction as JSON (hibus tx), LISTEN and
 *                      summaries (hibus tail, the queue waker)
 *   src/txlog_prune.c  retention: monthly partitions, old transactions and bodies
 *   src/txlog_notify.c announcing changes to other processes after they commit
 *
 * Every call on struct txlog runs as a txlog_op under txlog_with_conn, which
 * borrows a pooled connection and applies the retry rule described at the top
 * of src/txlog.c. The pool itself (struct txlog, its slots) stays private to
 * src/txlog.c, so no part can bypass that rule.
 */
#ifndef HIBUS_TXLOG_INTERNAL_H
#define HIBUS_TXLOG_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hibus/buf.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

/* The prepared statements; their SQL is the table in src/txlog.c. A
 * connection remembers which it has prepared in an unsigned bit mask, so there
 * are at most 32. */
enum txlog_stmt {
    TXLOG_ST_INSERT,
    TXLOG_ST_FINISH,
    TXLOG_ST_GET,
    TXLOG_ST_GET_ATTEMPTS,
    TXLOG_ST_CLAIM,
    TXLOG_ST_ROUTES,
    TXLOG_ST_NEXT_DUE,
    TXLOG_ST_RENEW,
    TXLOG_ST_COUNT
};

/* One call's work on a borrowed connection. It must write its results into
 * ctx only on success, and must be safe to run twice (see the retry rule). */
typedef enum hibus_err (*txlog_op)(PGconn *conn, unsigned *prepared, void *ctx,
                                   struct hibus_error *err);

/* Borrows a pooled connection, runs op, and runs it once more on a new
 * connection when the first run lost its connection. */
enum hibus_err txlog_with_conn(struct txlog *tl, txlog_op op, void *ctx, struct hibus_error *err);

/* A new connection (application_name hibus, the configured connect timeout);
 * NULL with err filled when the database cannot be reached. Caller PQfinish'es. */
PGconn *txlog_db_connect(const char *url, long connect_timeout_ms, struct hibus_error *err);

/* Runs prepared statement st, preparing it first if this connection has not
 * (prepared is the connection's bit mask). Never NULL except on out of memory. */
PGresult *txlog_exec_stmt(PGconn *conn, unsigned *prepared, enum txlog_stmt st,
                          const char *const *values, const int *lengths, const int *formats);

/* Prepares st on conn unless it is already (for pipelines, which cannot
 * prepare as they go); false with err filled on failure. */
bool txlog_prepare(PGconn *conn, unsigned *prepared, enum txlog_stmt st, struct hibus_error *err);
const char *txlog_stmt_name(enum txlog_stmt st);

/* Writes waiting to share one commit (src/txlog_write.c): one group for inserts,
 * one for outcomes, kept in struct txlog. */
struct txlog_pending;
struct txlog_group {
    pthread_mutex_t mu;
    struct txlog_pending *head, *tail; /* each waiter has its own condition variable */
    bool leading; /* a caller is running a batch */
};
enum txlog_group_kind { TXLOG_GROUP_INSERTS, TXLOG_GROUP_OUTCOMES, TXLOG_GROUP_COUNT };
struct txlog_group *txlog_group(struct txlog *tl, enum txlog_group_kind kind);

/* PQexec of a statement with no result rows; true on success, else fills err. */
bool txlog_exec_cmd(PGconn *conn, const char *sql, const char *what, struct hibus_error *err);

/* After a failure inside BEGIN: roll back if the connection still works. */
void txlog_rollback(PGconn *conn);

/* True when conn is NULL or libpq reports it CONNECTION_BAD. */
bool txlog_conn_lost(const PGconn *conn);

/* Fills err for a failed statement ("could not <what>: <server's message>", or
 * "could not reach the database"); always returns HIBUS_E_DB. */
enum hibus_err txlog_db_fail(struct hibus_error *err, PGconn *conn, const PGresult *res,
                             const char *what);

/* Copies a libpq message into err->detail on one line. */
void txlog_detail_pq(struct hibus_error *err, const char *text);

/* A timestamptz column as ISO 8601 UTC with milliseconds, in SQL text. */
#define TS_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* ---- Announcing changes (src/txlog_notify.c) ---- */

struct txlog_announcer;
struct txlog_announcer *txlog_announcer_new(const char *url, long connect_timeout_ms,
                                            struct hibus_error *err);
/* Something changed (queued: a transaction became queued); returns at once. */
void txlog_announcer_poke(struct txlog_announcer *a, bool queued);
/* Sends what is pending, then stops the thread. */
void txlog_announcer_free(struct txlog_announcer *a);

/* Called by the writers after a commit that inserted a transaction or changed a
 * status (src/txlog.c): announces it (when txlog_announce_start ran) and, when a
 * transaction became queued, calls the txlog_on_queued function. */
void txlog_changed(struct txlog *tl, bool queued);

/* Runs one statement (sql with nparams text parameters, NULL for SQL NULL) on a
 * pooled connection; *n (may be NULL) is the number of rows it changed or returned.
 * what names it in the error. */
enum hibus_err txlog_run_count(struct txlog *tl, const char *sql, const char *what, int nparams,
                               const char *const *vals, long *n, struct hibus_error *err);

/* A PostgreSQL array literal being written ("{...}", for $n::text[] and the like):
 * elements in order, then txlog_arr_close; the literal is then a.b.s (free it with
 * buf_free). ok turns false when memory runs out, and the rest is skipped. */
struct txlog_arr {
    struct buf b;
    bool ok;
};
void txlog_arr_open(struct txlog_arr *a);
/* s[0..len) quoted (NULL: SQL NULL); hex: the bytes in bytea's \x form. */
void txlog_arr_text(struct txlog_arr *a, const char *s, size_t len, bool hex);
void txlog_arr_str(struct txlog_arr *a, const char *s); /* NULL: SQL NULL */
/* A number or boolean as it is written (NULL: SQL NULL). */
void txlog_arr_raw(struct txlog_arr *a, const char *v);
void txlog_arr_int(struct txlog_arr *a, int64_t v);
bool txlog_arr_close(struct txlog_arr *a);

#endif
