/*
 * aggregator.c - the aggregate thread (see hibus/aggregator.h). The first look comes
 * a second after start, so periods that closed while hibus was down are sent at once.
 */
#define LOG_SUBSYS "aggregate"
#include "hibus/aggregator.h"

#include <stdlib.h>

#include "hibus/alloc.h"
#include "hibus/clock.h"
#include "hibus/log.h"
#include "hibus/metrics.h"

struct aggregator {
    struct config_holder *configs;
    struct txlog *tl;
    char *node;
    struct clock_ticker *ticker;
};

static long aggregator_tick(void *arg)
{
    struct aggregator *a = arg;
    const struct config *cfg = config_holder_acquire(a->configs);
    long next = cfg->aggregate_every_ms;
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        if (!ch->aggregate.on || !ch->enabled)
            continue;
        struct txlog_agg_emit rq = {.channel = ch->name,
                                    .timezone = ch->aggregate.timezone,
                                    .node = a->node,
                                    .close_after_ms = ch->aggregate.close_after_ms,
                                    .by_reason = ch->aggregate.by_reason,
                                    .quiet_send = ch->aggregate.quiet_send,
                                    .period_type = ch->aggregate.period_type};
        int emitted = 0, unchanged = 0;
        struct hibus_error err = {0};
        if (txlog_aggregate_emit(a->tl, &rq, &emitted, &unchanged, &err) != HIBUS_OK)
            LOG_ERROR(NULL,
                      "channel %s: could not send its closed periods (tried again in %ld s): "
                      "%s%s%s",
                      ch->name, next / 1000, err.msg, err.detail[0] ? ": " : "", err.detail);
        for (int k = 0; k < emitted; k++)
            metrics_transaction(ch->name, "queued");
        if (emitted > 0 || unchanged > 0)
            LOG_INFO(NULL,
                     "channel %s: %d closed period%s queued for delivery, %d unchanged since "
                     "last sent",
                     ch->name, emitted, emitted == 1 ? "" : "s", unchanged);
    }
    config_holder_release(a->configs, cfg);
    return next;
}

enum hibus_err aggregator_start(struct config_holder *configs, struct txlog *tl, const char *node,
                                struct aggregator **out, struct hibus_error *err)
{
    struct aggregator *a = hibus_xcalloc(1, sizeof *a);
    a->configs = configs;
    a->tl = tl;
    a->node = hibus_xstrdup(node);
    a->ticker = clock_ticker_start(aggregator_tick, a, 1000);
    if (a->ticker == NULL) {
        free(a->node);
        free(a);
        return hibus_error_set(err, HIBUS_E_NOMEM, "could not start the aggregate thread");
    }
    *out = a;
    return HIBUS_OK;
}

void aggregator_stop(struct aggregator *a)
{
    if (a == NULL)
        return;
    clock_ticker_stop(a->ticker);
    free(a->node);
    free(a);
}
