/*
 * metrics.h - what this process counts for GET /metrics (Prometheus text format
 * 0.0.4): requests, transactions, delivery attempts, DHIS2 import counts, reloads,
 * and at each scrape the database's view (queue depth and age, pool use).
 *
 * Threads: every function may be called from any thread. The counters are
 * process-wide (one registry), as each hibus process is one Prometheus target.
 * Names and units follow Prometheus's conventions: *_total for counters,
 * *_seconds and *_bytes in base units, histograms with _bucket/_sum/_count.
 */
#ifndef HIBUS_METRICS_H
#define HIBUS_METRICS_H

#include <stdbool.h>

#include "hibus/buf.h"
#include "hibus/txlog.h"

/* A request answered by the listener: its channel ("" when none matched, e.g. a
 * 404 or 401), the HTTP status and how long it took from its first byte. */
void metrics_request(const char *channel, unsigned code, double seconds);
/* A transaction that ended (successful, completed, completed_with_errors,
 * failed, rejected) or was queued (async acceptance, a retry later). */
void metrics_transaction(const char *channel, const char *status);
/* One delivery attempt of a route, with its outcome (successful, completed,
 * completed_with_errors, failed) and duration. */
void metrics_attempt(const char *channel, const char *route, const char *outcome, double seconds);
/* What DHIS2's import summary counted for one delivery. */
void metrics_dhis2_import(const char *channel, long long imported, long long updated,
                          long long ignored, long long deleted, long long conflicts);
/* A configuration reload (SIGHUP): applied or refused. */
void metrics_reload(bool ok);
/* The last reload: false when none was asked yet; else *ok and *at (seconds since
 * the Unix epoch). */
bool metrics_last_reload(bool *ok, double *at);

/* Appends the whole exposition: this process's counters, then what the log says
 * now (tl may be NULL: those are left out and hibus_database_up is 0). */
void metrics_render(struct buf *out, struct txlog *tl);

/* Forgets every series (tests). */
void metrics_reset(void);

#endif
