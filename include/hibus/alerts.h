/*
 * alerts.h - a channel's trouble told to a webhook: a failure rate over the recent
 * window, DHIS2 import conflicts, or an oldest queued transaction past its age
 * (alerts.* in hibus.yaml, docs/alerts.md). A notice when it starts, again at most
 * every alerts.repeat while it lasts, and one when it is over. The rules are
 * checked every alerts.every by one thread; of several hibus processes on one
 * database one looks at a time, and the state they share is in the database.
 */
#ifndef HIBUS_ALERTS_H
#define HIBUS_ALERTS_H

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

struct alerts;

/* Starts the thread (it does nothing while alerts.webhook is unset: a reload may
 * set it). node ("host:pid") goes into each notice. */
enum hibus_err alerts_start(struct config_holder *configs, struct txlog *tl, const char *node,
                            struct alerts **out, struct hibus_error *err);
void alerts_stop(struct alerts *a); /* NULL-safe */

#endif
