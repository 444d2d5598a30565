/*
 * poller.h - polling channels: the thread that pulls, on each poll channel's
 * schedule, the items of its source and stores each as an async transaction of
 * the channel (delivered by the delivery workers like a posted one).
 *
 * Owns: the poller thread of `hibus serve`. Its state (next slot, claim, cursor,
 * last error, ids of items seen) is in the transaction log (migration 012,
 * txlog_poll_*), so that several processes on one database pull each slot once
 * and a restart loses nothing. See docs/polling.md.
 *
 * Threads: poller_start / poller_stop from the main thread. The poller takes the
 * configuration snapshot current at each look (once a second), so a reload
 * applies at the next look.
 */
#ifndef HIBUS_POLLER_H
#define HIBUS_POLLER_H

#include <stdint.h>

#include "hibus/channel.h"
#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

/* The slot of p's schedule that follows `now`: seconds since 1970 on the wall
 * clock of p->timezone (read as if it were UTC; see struct txlog_poll_schedule). */
int64_t poller_next_slot(const struct config_poll *p, int64_t now);

struct poller;

/* Starts the poller thread. configs, tl and node are borrowed until poller_stop. */
enum hibus_err poller_start(struct config_holder *configs, struct txlog *tl, const char *node,
                            struct poller **out, struct hibus_error *err);
/* Stops the thread: a pull under way stops before its next request or item (its
 * cursor stays, so it is pulled again at the next slot), then the thread is joined
 * and p freed. NULL-safe. */
void poller_stop(struct poller *p);

#endif
