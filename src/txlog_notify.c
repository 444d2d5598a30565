/*
 * txlog_notify.c - announcing the log's changes after they commit (see
 * txlog_announce_start in hibus/txlog.h).
 *
 * Why not a trigger: a transaction that sent NOTIFY holds PostgreSQL's cluster-wide
 * notify lock from its pre-commit until its commit record is flushed, so two such
 * commits never share a WAL flush. With a trigger on every insert and status change
 * each request waited for a flush of its own: hibus needed about one fdatasync a
 * request where pgbench's one-row insert needs under 0.2.
 *
 * So a thread of its own, on a connection of its own, sends at most one
 * transaction of NOTIFYs every TXLOG_ANNOUNCE_MS: hibus_queue when something was
 * queued since the last one, hibus_tx when anything changed. The payload is empty:
 * listeners read what changed (delivery workers claim; hibus tail reads by id).
 * Pokes never wait for the database; a lost connection is made again at the next
 * poke, and until then the workers' poll and tail's own poll keep things moving.
 */
#define LOG_SUBSYS "txlog"
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "hibus/clock.h"
#include "hibus/log.h"
#include "txlog_internal.h"

enum { ANN_TX = 1, ANN_QUEUE = 2 };

struct txlog_announcer {
    char *url;
    long connect_timeout_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending; /* ANN_* since the last NOTIFY; guarded by mu */
    bool stopping;    /* guarded by mu */
    PGconn *conn;     /* the thread's own */
    bool said_lost;
};

static bool announce(struct txlog_announcer *a, unsigned what)
{
    if (a->conn == NULL || PQstatus(a->conn) == CONNECTION_BAD) {
        PQfinish(a->conn);
        struct hibus_error err = {0};
        a->conn = txlog_db_connect(a->url, a->connect_timeout_ms, &err);
        if (a->conn == NULL) {
            if (!a->said_lost)
                LOG_WARN(NULL,
                         "cannot announce changes to other processes (%s); they poll "
                         "meanwhile",
                         err.msg);
            a->said_lost = true;
            return false;
        }
    }
    /* One transaction for both, so one commit. */
    const char *sql = what == (ANN_TX | ANN_QUEUE) ? "NOTIFY hibus_queue; NOTIFY hibus_tx"
                      : what == ANN_QUEUE          ? "NOTIFY hibus_queue"
                                                   : "NOTIFY hibus_tx";
    struct hibus_error err = {0};
    if (!txlog_exec_cmd(a->conn, sql, "announce changes", &err)) {
        if (!a->said_lost)
            LOG_WARN(NULL, "%s; other processes poll meanwhile", err.msg);
        a->said_lost = true;
        return false;
    }
    if (a->said_lost)
        LOG_INFO(NULL, "announcing changes to other processes again");
    a->said_lost = false;
    return true;
}

static void *announcer_main(void *arg)
{
    struct txlog_announcer *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->pending == 0 && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->pending == 0 && a->stopping)
            break;
        unsigned what = a->pending;
        a->pending = 0;
        pthread_mutex_unlock(&a->mu);
        bool sent = announce(a, what);
        pthread_mutex_lock(&a->mu);
        if (!sent)
            a->pending |= what; /* say it once the database is back */
        if (a->stopping)
            break;
        /* Pokes in the next TXLOG_ANNOUNCE_MS join the next NOTIFY (a failure
         * waits longer before trying again). */
        struct timespec until = clock_deadline(sent ? TXLOG_ANNOUNCE_MS : 1000);
        int rc = 0;
        while (!a->stopping && rc == 0)
            rc = pthread_cond_timedwait(&a->cv, &a->mu, &until);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct txlog_announcer *txlog_announcer_new(const char *url, long connect_timeout_ms,
                                            struct hibus_error *err)
{
    struct txlog_announcer *a = hibus_xcalloc(1, sizeof *a);
    a->url = hibus_xstrdup(url);
    a->connect_timeout_ms = connect_timeout_ms;
    pthread_mutex_init(&a->mu, NULL);
    clock_cond_init(&a->cv);
    if (pthread_create(&a->thread, NULL, announcer_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a->url);
        free(a);
        hibus_error_set(err, HIBUS_E_IO, "could not start the thread that announces changes");
        return NULL;
    }
    return a;
}

void txlog_announcer_poke(struct txlog_announcer *a, bool queued)
{
    pthread_mutex_lock(&a->mu);
    a->pending |= ANN_TX | (queued ? ANN_QUEUE : 0);
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void txlog_announcer_free(struct txlog_announcer *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    PQfinish(a->conn);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    explicit_bzero(a->url, strlen(a->url));
    free(a->url);
    free(a);
}
