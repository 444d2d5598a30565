/*
 * listener.h - the HTTP front door (libmicrohttpd).
 *
 * Owns the MHD daemon and the life of one request: body limit, request id,
 * /health and /ready, authentication, routing, storing the transaction, sync
 * delivery through the mediators, and the JSON error bodies.
 *
 * Threads: MHD runs one thread per connection (see docs/architecture.md for
 * why); every handler may block on the database pool or on a target, bounded
 * by their timeouts. listener_* functions are called from the main thread only.
 */
#ifndef HIBUS_LISTENER_H
#define HIBUS_LISTENER_H

#include <stdbool.h>

#include "hibus/auth.h"
#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

struct listener_deps {
    const struct config *cfg;      /* the configuration at start: listen address, limits;
                                    * read by listener_start only (a reload frees it) */
    struct config_holder *configs; /* the current snapshot, for each request */
    struct txlog *tl;              /* borrowed */
    struct auth_cache *auth;       /* borrowed; may be NULL */
    const char *node;              /* "host:pid", recorded on each transaction */
};

struct listener;

enum hibus_err listener_start(const struct listener_deps *deps, struct listener **out,
                              struct hibus_error *err);
/* The port actually bound (useful with port 0). */
int listener_port(const struct listener *l);
/* Stops accepting new connections; requests in flight go on. Requests that
 * still arrive on open keep-alive connections are served with Connection: close. */
void listener_quiesce(struct listener *l);
/* Waits until no request is in flight, or timeout_ms passed; true when idle. */
bool listener_drain(struct listener *l, long timeout_ms);
/* Stops the daemon (closes remaining connections) and frees l; NULL-safe. */
void listener_stop(struct listener *l);

#endif
