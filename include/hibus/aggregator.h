/*
 * aggregator.h - the thread of the aggregate stage (hibus/aggregate.h): every
 * aggregate.every it sends, for each channel with aggregate:, the periods that have
 * closed and changed since they were last sent (txlog_aggregate_emit). Several hibus
 * processes on one database may all run it: each period is claimed by one.
 */
#ifndef HIBUS_AGGREGATOR_H
#define HIBUS_AGGREGATOR_H

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

struct aggregator;

/* node ("host:pid") is recorded on the transactions it makes. */
enum hibus_err aggregator_start(struct config_holder *configs, struct txlog *tl, const char *node,
                                struct aggregator **out, struct hibus_error *err);
void aggregator_stop(struct aggregator *a); /* NULL-safe */

#endif
