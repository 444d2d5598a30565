/*
 * retention.c - the retention rules, one prune, and the pruning thread (see
 * hibus/retention.h). What a prune does to the tables is txlog_prune's.
 */
#define LOG_SUBSYS "retention"
#include "hibus/retention.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "hibus/alloc.h"
#include "hibus/clock.h"
#include "hibus/log.h"

struct txlog_retention *retention_rules(const struct config *cfg, size_t *n)
{
    struct txlog_retention *r = hibus_xcalloc(cfg->n_channels + 1, sizeof *r);
    *n = 0;
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        r[*n] = (struct txlog_retention){
            .channel = ch->name,
            .keep_bodies_ms = ch->keep_bodies_ms ? ch->keep_bodies_ms : cfg->keep_bodies_ms,
            .keep_transactions_ms =
                ch->keep_transactions_ms ? ch->keep_transactions_ms : cfg->keep_transactions_ms};
        (*n)++;
    }
    r[(*n)++] = (struct txlog_retention){.keep_bodies_ms = cfg->keep_bodies_ms,
                                         .keep_transactions_ms = cfg->keep_transactions_ms};
    return r;
}

enum hibus_err retention_prune_once(const struct config *cfg, struct txlog *tl,
                                    struct txlog_prune_result *out, struct hibus_error *err)
{
    size_t n = 0;
    struct txlog_retention *rules = retention_rules(cfg, &n);
    enum hibus_err rc = txlog_prune(tl, rules, n, out, err);
    free(rules);
    if (rc != HIBUS_OK)
        LOG_ERROR(NULL, "retention: %s%s%s", err->msg, err->detail[0] ? ": " : "", err->detail);
    else if (out->partitions_dropped || out->transactions_deleted || out->bodies_pruned ||
             out->partitions_made)
        LOG_INFO(NULL,
                 "retention: %d monthly partition%s made, %d dropped, %ld transaction%s "
                 "removed, %ld bod%s emptied",
                 out->partitions_made, out->partitions_made == 1 ? "" : "s",
                 out->partitions_dropped, out->transactions_deleted,
                 out->transactions_deleted == 1 ? "" : "s", out->bodies_pruned,
                 out->bodies_pruned == 1 ? "y" : "ies");
    return rc;
}

struct retention {
    struct config_holder *configs;
    struct txlog *tl;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on stop; on the monotonic clock (clock.h) */
    bool stopping;       /* guarded by mu */
};

static void *retention_main(void *arg)
{
    struct retention *r = arg;
    /* (A month's partition that does not exist yet is made by the first insert that
     * needs it, so nothing waits for the first prune.) */
    const struct config *cfg = config_holder_acquire(r->configs);
    struct timespec next = clock_deadline(cfg->prune_every_ms);
    config_holder_release(r->configs, cfg);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        if (pthread_cond_timedwait(&r->cond, &r->mu, &next) == 0 || r->stopping)
            continue; /* a spurious wake-up, or stop */
        pthread_mutex_unlock(&r->mu);
        struct txlog_prune_result res;
        struct hibus_error err = {0};
        cfg = config_holder_acquire(r->configs);
        retention_prune_once(cfg, r->tl, &res, &err);
        next = clock_deadline(cfg->prune_every_ms);
        config_holder_release(r->configs, cfg);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

enum hibus_err retention_start(struct config_holder *configs, struct txlog *tl,
                               struct retention **out, struct hibus_error *err)
{
    struct retention *r = hibus_xcalloc(1, sizeof *r);
    r->configs = configs;
    r->tl = tl;
    clock_cond_init(&r->cond);
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return hibus_error_set(err, HIBUS_E_NOMEM, "could not start the retention thread");
    }
    *out = r;
    return HIBUS_OK;
}

void retention_stop(struct retention *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
