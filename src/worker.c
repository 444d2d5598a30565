/*
 * worker.c - delivery workers (see hibus/worker.h).
 *
 * One round of one transaction:
 *   claim          status processing, lease to this process, rounds + 1
 *   checks         channel still there and enabled, rounds within max_attempts:
 *                  otherwise failed at once (lowering max_attempts or disabling a
 *                  channel stops its retries at the next claim)
 *   prepare        reader, mapping, quality: a payload that no longer passes is
 *                  rejected (never retried)
 *   routes         those not done in earlier rounds (delivery_run with the routes'
 *                  latest states)
 *   record         final status, or queued again after a full-jitter backoff when a
 *                  route failed in a way that may succeed later and the policy
 *                  (max_attempts, max_age) allows; only while this process still
 *                  holds the lease
 *
 * Waking: a transaction this process queues wakes the workers at once
 * (txlog_on_queued); a thread LISTENs on hibus_queue for those queued by other
 * processes (announced after their commit, see txlog_announce_start); workers also
 * wake when the next retry is due and, as a fallback, every delivery.poll.
 */
#define LOG_SUBSYS "worker"
#include "hibus/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hibus/clock.h"
#include "hibus/delivery.h"
#include "hibus/alloc.h"
#include "hibus/log.h"

/* Milliseconds on a clock that also runs while the machine sleeps (a lease runs
 * on the database's clock meanwhile). */
static long boot_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One worker thread: its lease owner name is "host:pid/wN", so that two threads
 * of one process never mistake each other's claims for their own. */
struct worker_thread {
    struct workers *w;
    char owner[320];
    /* The claims it holds and has not finished with: the keeper renews these, and
     * only these (guarded by w->mu). */
    int64_t *held;
    size_t n_held;
};

struct workers {
    struct worker_deps deps;
    char *database_url; /* copied at start: a reload does not change it */
    long connect_timeout_ms;
    long poll_ms;
    pthread_t *threads;
    struct worker_thread *ctx;
    size_t n_threads;
    pthread_t waker;
    bool waker_started;
    pthread_t keeper;
    bool keeper_started;
    atomic_bool quiescing;
    atomic_bool stopping;
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* work may be due */
    pthread_cond_t wake_keeper; /* stopping */
    pthread_cond_t idle;        /* in_flight reached 0 */
    unsigned long generation;   /* bumped on every wake-up; guarded by mu */
    json_t *failing;            /* channel name -> true: a round of it ended in a retry since
                                   its last success in this process; guarded by mu */
    long in_flight;             /* guarded by mu */
    size_t exited;              /* worker threads that returned; guarded by mu */
};

static void wake_all(struct workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->generation++;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->mu);
}

static void on_queued(void *arg)
{
    wake_all(arg);
}

/* Sleeps up to ms, or until woken (after the generation seen was taken). */
static void sleep_until_woken(struct workers *w, unsigned long seen, long ms)
{
    struct timespec dl = clock_deadline(ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (w->generation == seen && !atomic_load(&w->stopping) && rc == 0)
        rc = pthread_cond_timedwait(&w->wake, &w->mu, &dl);
    pthread_mutex_unlock(&w->mu);
}

/* --------------------------------------------------------------- a round */

/* Ends a transaction without delivering it (failed or rejected). */
static void end_without_delivery(struct workers *w, const char *owner,
                                 const struct txlog_claimed *c, const struct delivery_prepared *p,
                                 const char *status, const char *why)
{
    struct hibus_error err = {0};
    struct delivery_outcome o = {.status = status,
                                 .owner = owner,
                                 .error = why,
                                 .received_at = c->received_at,
                                 .channel = c->channel};
    LOG_WARN(c->request_id, "tx=%lld channel=%s: %s", (long long)c->id, c->channel, why);
    if (delivery_record(w->deps.tl, c->id, p, NULL, &o, &err) != HIBUS_OK)
        LOG_ERROR(c->request_id, "tx=%lld: could not record its end: %s", (long long)c->id,
                  err.msg);
}

/* After an outage the first delivery that goes through on a channel (a retry that
 * succeeded, or any success after this process saw the channel fail) calls the
 * channel's waiting retries forward: the target is back, and they need not each
 * wait out a backoff of up to backoff.max. */
static void note_outcome(struct workers *w, const struct txlog_claimed *c, const char *status)
{
    bool retry = strcmp(status, TXLOG_QUEUED) == 0;
    bool success = strcmp(status, "successful") == 0 || strcmp(status, "completed") == 0 ||
                   strcmp(status, "completed_with_errors") == 0;
    if (!retry && !success)
        return;
    pthread_mutex_lock(&w->mu);
    bool was_failing = json_object_get(w->failing, c->channel) != NULL;
    if (retry)
        json_object_set_new(w->failing, c->channel, json_true());
    else
        json_object_del(w->failing, c->channel);
    pthread_mutex_unlock(&w->mu);
    if (!success || (!was_failing && c->rounds <= 1))
        return;
    long hurried = 0;
    struct hibus_error err = {0};
    if (txlog_hurry(w->deps.tl, c->channel, &hurried, &err) != HIBUS_OK)
        LOG_ERROR(c->request_id, "channel %s: could not call its waiting retries forward: %s",
                  c->channel, err.msg);
    else if (hurried > 0)
        LOG_INFO(c->request_id, "channel %s delivers again: %ld waiting retr%s called forward",
                 c->channel, hurried, hurried == 1 ? "y" : "ies");
}

static void deliver_one(struct workers *w, const struct config *cfg, const char *owner,
                        const struct txlog_claimed *c)
{
    const struct config_channel *ch = config_find_channel(cfg, c->channel);
    struct hibus_error err = {0};
    struct txlog_route_state *prev = NULL;
    size_t n_prev = 0;
    if (c->rounds > 1 && txlog_route_states(w->deps.tl, c->id, &prev, &n_prev, &err) != HIBUS_OK) {
        /* Without the earlier outcomes every route would run again; better to
         * leave the claim to lapse and try later. */
        LOG_ERROR(c->request_id, "tx=%lld: could not read earlier rounds: %s", (long long)c->id,
                  err.msg);
        return;
    }
    struct delivery_request rq = {.tx_id = c->id,
                                  .channel = c->channel,
                                  .path = c->path,
                                  .tl = w->deps.tl,
                                  .request_id = c->request_id,
                                  .method = c->method,
                                  .query = c->query,
                                  .headers_json = c->headers_json,
                                  .body = c->body,
                                  .body_len = c->body_len,
                                  .round = c->rounds,
                                  .age_ms = c->age_ms};
    struct delivery_round round;
    delivery_round(cfg, ch, &rq, prev, n_prev, true, &round);
    free(prev);
    if (round.res.n_routes == 0) {
        end_without_delivery(w, owner, c, ch && round.prep.problems ? &round.prep : NULL,
                             round.status, round.why);
        delivery_round_free(&round);
        return;
    }

    struct delivery_outcome o = {.owner = owner,
                                 .channel = c->channel,
                                 .status = round.status,
                                 .retry_in_ms = round.retry_in_ms,
                                 .error = round.why[0] ? round.why : NULL,
                                 .received_at = c->received_at};
    json_t *account = delivery_account(c->id, c->request_id, &round.prep, &round.res);
    char *body = account ? json_dumps(account, JSON_COMPACT) : NULL;
    json_decref(account);
    o.response_status = (int)round.res.routes[0].status;
    o.response_body = body;
    o.response_body_len = body ? strlen(body) : 0;
    if (delivery_record(w->deps.tl, c->id, &round.prep, &round.res, &o, &err) != HIBUS_OK)
        LOG_ERROR(c->request_id, "tx=%lld: round %d ended %s but was not recorded: %s%s%s",
                  (long long)c->id, c->rounds, round.status, err.msg, err.detail[0] ? ": " : "",
                  err.detail);
    else if (strcmp(round.status, TXLOG_QUEUED) == 0)
        LOG_WARN(c->request_id, "tx=%lld channel=%s: round %d failed, retry in %.1f s",
                 (long long)c->id, c->channel, c->rounds, (double)round.retry_in_ms / 1000.0);
    else
        LOG_INFO(c->request_id, "tx=%lld channel=%s: delivered in round %d: %s", (long long)c->id,
                 c->channel, c->rounds, round.status);
    note_outcome(w, c, round.status);
    free(body);
    delivery_round_free(&round);
}

/* ------------------------------------------------------------- threads */

static void *worker_main(void *arg)
{
    struct worker_thread *self = arg;
    struct workers *w = self->w;
    long error_pause = 1000;
    /* Claims grow while they come back full (a backlog), up to delivery.batch, and
     * start again at one when the queue runs short: a few reports queued at once are
     * delivered by several workers side by side, not one after another by the first
     * worker to claim them all. */
    int want = 1;
    while (!atomic_load(&w->quiescing)) {
        /* Each round works with the configuration current when it starts. */
        const struct config *cfg = config_holder_acquire(w->deps.configs);
        pthread_mutex_lock(&w->mu);
        unsigned long seen = w->generation;
        pthread_mutex_unlock(&w->mu);

        struct txlog_claimed *v = NULL;
        size_t n = 0;
        struct hibus_error err = {0};
        if (want > cfg->delivery_batch)
            want = cfg->delivery_batch;
        long claimed_ms = boot_ms(); /* no later than the database set the leases */
        if (txlog_claim(w->deps.tl, self->owner, cfg->delivery_lease_ms, want, &v, &n, &err) !=
            HIBUS_OK) {
            LOG_ERROR(NULL, "could not claim work: %s%s%s", err.msg, err.detail[0] ? ": " : "",
                      err.detail);
            config_holder_release(w->deps.configs, cfg);
            sleep_until_woken(w, seen, error_pause);
            error_pause = error_pause < 30000 ? error_pause * 2 : 30000;
            continue;
        }
        error_pause = 1000;
        if (n > 0)
            LOG_DEBUG(NULL, "%s claimed %zu (asked for %d)", self->owner, n, want);
        want = n == (size_t)want ? want * 2 : 1;
        if (n == 0) {
            double due = -1;
            long wait = cfg->delivery_poll_ms;
            if (txlog_next_due(w->deps.tl, &due, &err) == HIBUS_OK && due >= 0 && due < wait)
                wait = (long)due + 1;
            config_holder_release(w->deps.configs, cfg);
            sleep_until_woken(w, seen, wait);
            continue;
        }
        pthread_mutex_lock(&w->mu);
        w->in_flight += (long)n;
        self->held = hibus_xreallocarray(self->held, n, sizeof *self->held);
        for (size_t i = 0; i < n; i++)
            self->held[i] = v[n - 1 - i].id; /* last first: the one in hand is at the end */
        self->n_held = n;
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < n; i++) {
            /* A batch is delivered one after another: a transaction whose claim
             * lapsed before its turn (another process took it over) is not sent a
             * second time, and one whose lease is half gone starts it again.
             * Until half the lease has passed since the claim was sent neither can
             * be (only a lapse lets another process take a claim): the database
             * is asked only after that, which saves a round trip per transaction. */
            bool held = true;
            if (i > 0 && boot_ms() - claimed_ms >= cfg->delivery_lease_ms / 2 &&
                (txlog_renew(w->deps.tl, v[i].id, v[i].received_at, self->owner,
                             cfg->delivery_lease_ms, &held, &err) != HIBUS_OK ||
                 !held)) {
                LOG_WARN(v[i].request_id,
                         "tx=%lld: claim lapsed before its turn in the batch; "
                         "left to the process that holds it now",
                         (long long)v[i].id);
                continue;
            }
            deliver_one(w, cfg, self->owner, &v[i]);
            pthread_mutex_lock(&w->mu);
            self->n_held = n - 1 - i; /* done with v[i], whatever became of it */
            pthread_mutex_unlock(&w->mu);
        }
        pthread_mutex_lock(&w->mu);
        self->n_held = 0;
        pthread_mutex_unlock(&w->mu);
        txlog_claimed_free(v, n);
        config_holder_release(w->deps.configs, cfg);
        pthread_mutex_lock(&w->mu);
        w->in_flight -= (long)n;
        if (w->in_flight == 0)
            pthread_cond_broadcast(&w->idle);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    w->exited++;
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Listens for NOTIFY hibus_queue and wakes the workers; reconnects after a loss
 * (meanwhile the workers' poll keeps things moving). */
static void *waker_main(void *arg)
{
    struct workers *w = arg;
    struct txlog_listener *l = NULL;
    bool said = false;
    while (!atomic_load(&w->stopping)) {
        struct hibus_error err = {0};
        if (l == NULL) {
            if (txlog_listen_on(w->database_url, w->connect_timeout_ms, "hibus_queue", &l, &err) !=
                HIBUS_OK) {
                if (!said)
                    LOG_WARN(NULL, "cannot listen for queued work (%s); polling every %ld ms",
                             err.msg, w->poll_ms);
                said = true;
                pthread_mutex_lock(&w->mu);
                unsigned long g = w->generation;
                pthread_mutex_unlock(&w->mu);
                sleep_until_woken(w, g, 2000);
                continue;
            }
            said = false;
            wake_all(w); /* anything queued while we were not listening */
        }
        int64_t id;
        enum hibus_err rc = txlog_listener_next(l, 500, &id, &err);
        if (rc == HIBUS_OK)
            wake_all(w);
        else if (rc != HIBUS_E_TIMEOUT) {
            txlog_listener_close(l);
            l = NULL;
        }
    }
    txlog_listener_close(l);
    return NULL;
}

/* Renews the workers' leases every third of delivery.lease: a batch is claimed at
 * once and delivered one after another, and a delivery may take long, yet none of
 * it lapses while this process lives. Its leases lapse only when it dies (or cannot
 * reach the database for a whole lease), and then another process takes over. */
static void *keeper_main(void *arg)
{
    struct workers *w = arg;
    bool said = false;
    while (!atomic_load(&w->stopping)) {
        const struct config *cfg = config_holder_acquire(w->deps.configs);
        long lease = cfg->delivery_lease_ms;
        config_holder_release(w->deps.configs, cfg);
        struct timespec dl = clock_deadline(lease / 3 > 0 ? lease / 3 : 1);
        pthread_mutex_lock(&w->mu);
        while (!atomic_load(&w->stopping) &&
               pthread_cond_timedwait(&w->wake_keeper, &w->mu, &dl) == 0)
            ;
        pthread_mutex_unlock(&w->mu);
        if (atomic_load(&w->stopping))
            break;
        /* What the workers hold now; a claim they are done with (its outcome
         * written, or not: the database may have been away) is left to lapse. */
        size_t n = 0;
        int64_t *ids = NULL;
        pthread_mutex_lock(&w->mu);
        for (size_t t = 0; t < w->n_threads; t++)
            n += w->ctx[t].n_held;
        if (n > 0) {
            ids = hibus_xcalloc(n, sizeof *ids);
            n = 0;
            for (size_t t = 0; t < w->n_threads; t++)
                for (size_t k = 0; k < w->ctx[t].n_held; k++)
                    ids[n++] = w->ctx[t].held[k];
        }
        pthread_mutex_unlock(&w->mu);
        n = txlog_held(w->deps.tl, &ids, n); /* and the listener's sync deliveries */
        long renewed = 0;
        struct hibus_error err = {0};
        enum hibus_err rc =
            txlog_renew_workers(w->deps.tl, w->deps.node, ids, n, lease, &renewed, &err);
        free(ids);
        if (rc != HIBUS_OK) {
            if (!said)
                LOG_ERROR(NULL,
                          "could not renew the delivery leases (they lapse in %ld ms unless "
                          "the database answers): %s",
                          lease, err.msg);
            said = true;
        } else {
            said = false;
        }
    }
    return NULL;
}

enum hibus_err workers_start(const struct worker_deps *deps, struct workers **out,
                             struct hibus_error *err)
{
    struct workers *w = hibus_xcalloc(1, sizeof *w);
    w->deps = *deps;
    w->database_url = hibus_xstrdup(deps->cfg->database_url);
    w->connect_timeout_ms = deps->cfg->database_connect_timeout_ms;
    w->poll_ms = deps->cfg->delivery_poll_ms;
    pthread_mutex_init(&w->mu, NULL);
    clock_cond_init(&w->wake);
    clock_cond_init(&w->wake_keeper);
    w->failing = json_object();
    clock_cond_init(&w->idle);
    size_t n = (size_t)deps->cfg->delivery_workers;
    w->threads = hibus_xcalloc(n ? n : 1, sizeof *w->threads);
    w->ctx = hibus_xcalloc(n ? n : 1, sizeof *w->ctx);
    *out = w;
    /* The keeper renews the listener's sync leases too: it runs even in a process
     * without delivery workers. */
    if (pthread_create(&w->keeper, NULL, keeper_main, w) == 0)
        w->keeper_started = true;
    if (n == 0)
        return HIBUS_OK;
    /* A transaction queued by this process wakes its workers at once; the waker
     * hears of those queued by other processes. */
    txlog_on_queued(deps->tl, on_queued, w);
    if (pthread_create(&w->waker, NULL, waker_main, w) == 0)
        w->waker_started = true;
    for (; w->n_threads < n; w->n_threads++) {
        struct worker_thread *t = &w->ctx[w->n_threads];
        t->w = w;
        snprintf(t->owner, sizeof t->owner, "%s/w%zu", deps->node, w->n_threads + 1);
        if (pthread_create(&w->threads[w->n_threads], NULL, worker_main, t) != 0)
            break;
    }
    if (w->n_threads == 0) { /* n > 0 here */
        workers_stop(w);
        *out = NULL;
        return hibus_error_set(err, HIBUS_E_IO, "could not start any of the %zu delivery workers",
                               n);
    }
    if (w->n_threads < n)
        LOG_ERROR(NULL, "started %zu of %zu delivery workers", w->n_threads, n);
    return HIBUS_OK;
}

void workers_quiesce(struct workers *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->quiescing, true);
    wake_all(w);
}

bool workers_drain(struct workers *w, long timeout_ms)
{
    if (w == NULL)
        return true;
    struct timespec dl = clock_deadline(timeout_ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while ((w->in_flight > 0 || w->exited < w->n_threads) && rc == 0)
        rc = pthread_cond_timedwait(&w->idle, &w->mu, &dl);
    bool idle = w->in_flight == 0 && w->exited == w->n_threads;
    pthread_mutex_unlock(&w->mu);
    return idle;
}

bool workers_stop(struct workers *w)
{
    if (w == NULL)
        return true;
    atomic_store(&w->quiescing, true);
    atomic_store(&w->stopping, true);
    txlog_on_queued(w->deps.tl, NULL, NULL);
    wake_all(w);
    pthread_mutex_lock(&w->mu);
    bool all_exited = w->exited == w->n_threads;
    pthread_cond_broadcast(&w->wake_keeper);
    pthread_mutex_unlock(&w->mu);
    if (w->keeper_started)
        pthread_join(w->keeper, NULL); /* before the claims are released below */
    if (w->n_threads > 0) {
        /* Whatever is still ours goes back to the queue for whoever runs next. */
        long released = 0;
        struct hibus_error err = {0};
        if (txlog_release(w->deps.tl, w->deps.node, &released, &err) != HIBUS_OK)
            LOG_ERROR(NULL, "could not release claims (their leases will lapse): %s", err.msg);
        else if (released > 0)
            LOG_WARN(NULL, "released %ld transaction%s still in delivery back to the queue",
                     released, released == 1 ? "" : "s");
    }
    if (w->waker_started)
        pthread_join(w->waker, NULL);
    if (!all_exited) {
        /* A delivery is still running past the drain deadline: its thread ends
         * with the process, and its transaction was released above. */
        for (size_t i = 0; i < w->n_threads; i++)
            pthread_detach(w->threads[i]);
        return false; /* w stays allocated for those threads */
    }
    for (size_t i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->wake_keeper);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    json_decref(w->failing);
    free(w->threads);
    for (size_t i = 0; i < w->n_threads; i++)
        free(w->ctx[i].held);
    free(w->ctx);
    free(w->database_url);
    free(w);
    return true;
}
