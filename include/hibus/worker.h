/*
 * worker.h - delivery workers: the threads that deliver queued transactions.
 *
 * Each worker claims due transactions (FOR UPDATE SKIP LOCKED, with a lease),
 * delivers them through the channel's pipeline (delivery.h), and records the
 * round: a final status, or back in the queue with a full-jitter backoff when a
 * route failed in a way that may succeed later. Workers sleep until NOTIFY
 * hibus_queue says work arrived, the next retry is due, or the poll interval
 * passes. Any number of processes may run workers on one database.
 *
 * Threads: workers_* are called from the main thread only.
 */
#ifndef HIBUS_WORKER_H
#define HIBUS_WORKER_H

#include <stdbool.h>

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

struct worker_deps {
    const struct config *cfg;      /* the configuration at start (workers, database) */
    struct config_holder *configs; /* the current snapshot, for each round */
    struct txlog *tl;              /* borrowed */
    const char *node;              /* "host:pid": the lease owner */
};

struct workers;

/* Starts cfg->delivery_workers threads and the thread that listens for NOTIFY
 * hibus_queue (none when 0). */
enum hibus_err workers_start(const struct worker_deps *deps, struct workers **out,
                             struct hibus_error *err);
/* Stops claiming; deliveries in flight go on. */
void workers_quiesce(struct workers *w);
/* Waits until no delivery is in flight or timeout_ms passed; true when idle. */
bool workers_drain(struct workers *w, long timeout_ms);
/* Puts back in the queue whatever this process still holds, stops the threads
 * and frees w. Returns false when a thread was still delivering past the drain:
 * it is left to the end of the process (its transaction was released), and the
 * caller must then keep the txlog open until exit. NULL-safe. */
bool workers_stop(struct workers *w);

#endif
