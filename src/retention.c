/*
 * retention.c - the retention rules, one prune, and the pruning thread (see
 * hibus/retention.h). What a prune does to the tables is txlog_prune's.
 */
#define LOG_SUBSYS "retention"
#include "hibus/retention.h"

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
             out->partitions_made || out->poll_items_deleted)
        LOG_INFO(NULL,
                 "retention: %d monthly partition%s made, %d dropped, %ld transaction%s "
                 "removed, %ld bod%s emptied, %ld pulled item id%s removed",
                 out->partitions_made, out->partitions_made == 1 ? "" : "s",
                 out->partitions_dropped, out->transactions_deleted,
                 out->transactions_deleted == 1 ? "" : "s", out->bodies_pruned,
                 out->bodies_pruned == 1 ? "y" : "ies", out->poll_items_deleted,
                 out->poll_items_deleted == 1 ? "" : "s");
    return rc;
}

struct retention {
    struct config_holder *configs;
    struct txlog *tl;
    struct clock_ticker *ticker;
};

/* (A month's partition that does not exist yet is made by the first insert that
 * needs it, so nothing waits for the first prune.) */
static long retention_tick(void *arg)
{
    struct retention *r = arg;
    struct txlog_prune_result res;
    struct hibus_error err = {0};
    const struct config *cfg = config_holder_acquire(r->configs);
    retention_prune_once(cfg, r->tl, &res, &err);
    long next = cfg->prune_every_ms;
    config_holder_release(r->configs, cfg);
    return next;
}

enum hibus_err retention_start(struct config_holder *configs, struct txlog *tl,
                               struct retention **out, struct hibus_error *err)
{
    struct retention *r = hibus_xcalloc(1, sizeof *r);
    r->configs = configs;
    r->tl = tl;
    const struct config *cfg = config_holder_acquire(configs);
    long first = cfg->prune_every_ms;
    config_holder_release(configs, cfg);
    r->ticker = clock_ticker_start(retention_tick, r, first);
    if (r->ticker == NULL) {
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
    clock_ticker_stop(r->ticker);
    free(r);
}
