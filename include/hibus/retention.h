/*
 * retention.h - how long the transaction log keeps things: the rules of a
 * configuration (retention: in hibus.yaml, keep_bodies / keep_transactions per
 * channel), one prune, and the thread that prunes every retention.prune_every in
 * `hibus serve` (in every process; the database lets one at a time do the work).
 *
 * Threads: retention_start/stop from the main thread; the rest anywhere.
 */
#ifndef HIBUS_RETENTION_H
#define HIBUS_RETENTION_H

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

/* The retention rules of cfg: one per channel with its effective limits, and
 * one (channel NULL) with the global ones for channels that are gone. Caller
 * frees the array (the strings are borrowed from cfg). NULL when out of memory. */
struct txlog_retention *retention_rules(const struct config *cfg, size_t *n);

/* One prune, logged; used by the retention thread and by hibus prune. */
enum hibus_err retention_prune_once(const struct config *cfg, struct txlog *tl,
                                    struct txlog_prune_result *out, struct hibus_error *err);

struct retention;

/* Starts the retention thread: every prune_every of the current snapshot, on a fixed
 * schedule. configs and tl are borrowed until retention_stop. */
enum hibus_err retention_start(struct config_holder *configs, struct txlog *tl,
                               struct retention **out, struct hibus_error *err);
/* Stops the thread (waiting for a prune under way) and frees r. NULL-safe. */
void retention_stop(struct retention *r);

#endif
