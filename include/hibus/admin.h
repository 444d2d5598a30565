/*
 * admin.h - the admin listener: GET /metrics (Prometheus) and the admin API
 * (docs/admin-api.md) on their own address and port (admin.* in hibus.yaml),
 * for the admin users of admin.users with their roles: read, operator (may
 * re-run), admin (may also reload the configuration).
 *
 * Threads: libmicrohttpd runs a thread per connection (admin traffic is a few
 * people and a Prometheus); each request reads the configuration snapshot
 * current when it arrived. admin_* functions are called from the main thread.
 */
#ifndef HIBUS_ADMIN_H
#define HIBUS_ADMIN_H

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

struct admin_deps {
    const struct config *cfg;      /* at start: admin.address and admin.port */
    struct config_holder *configs; /* the current snapshot, for each request */
    struct txlog *tl;              /* borrowed */
    const char *node;              /* "host:pid" */
};

struct admin;

/* Starts the listener when cfg->admin_port is set; *out NULL (and HIBUS_OK)
 * when it is 0. */
enum hibus_err admin_start(const struct admin_deps *deps, struct admin **out,
                           struct hibus_error *err);
int admin_port(const struct admin *a);
void admin_stop(struct admin *a); /* NULL-safe */

#endif
