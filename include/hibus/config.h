/*
 * config.h - the configuration snapshot: hibus.yaml, clients.yaml, channels/NAME.yaml.
 *
 * config_load() reads every file, expands ${NAME} from the environment, validates
 * everything and returns one immutable struct config, or collects every problem
 * found (not only the first) as "file:line:col: message" diagnostics.
 *
 * A loaded config is never modified; readers on any thread may share it freely.
 * The channel types are in channel.h, shared with the router.
 * Reload (SIGHUP) builds a new snapshot and swaps a pointer (see main.c).
 *
 * Files, relative to the directory of hibus.yaml unless absolute:
 *   hibus.yaml        listen, database, limits, log, redact_headers, clients, channels
 *   clients.yaml      roles: [..], clients: [{id, name, roles, password_hash, enabled}]
 *   channels/NAME.yaml one channel per file (see docs/configuration.md)
 */
#ifndef HIBUS_CONFIG_H
#define HIBUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "hibus/channel.h"
#include "hibus/error.h"

struct config_client {
    char *id;
    char *name;
    char *password_hash; /* crypt(3) format: $y$ (yescrypt) or $6$ (sha512-crypt) */
    char **roles;
    size_t n_roles;
    bool enabled; /* default true */
    struct config_pos pos;
};

struct config {
    char *path;   /* hibus.yaml as given */
    char *dir;    /* its directory */
    char **files; /* every file read, for struct config_pos */
    size_t n_files;

    char *listen_address; /* listen.address, default 127.0.0.1 */
    int listen_port;      /* listen.port, default 5001 */

    char *database_url;               /* database.url, required */
    int database_pool;                /* database.pool, default 8 */
    long database_connect_timeout_ms; /* database.connect_timeout, default 5s */

    size_t max_body;            /* limits.max_body, default 10MiB */
    unsigned max_connections;   /* limits.max_connections, default 1024 */
    long connection_timeout_ms; /* limits.connection_timeout (idle), default 60s */

    int log_level;  /* enum log_level; log.level, default info */
    int log_format; /* enum log_format; log.format text|json, default text */

    /* Header names (lower case) whose values are replaced by "[redacted]" before they
     * are stored or logged. Always includes authorization, proxy-authorization,
     * cookie and set-cookie; redact_headers: in hibus.yaml adds more. */
    char **redact_headers;
    size_t n_redact_headers;

    char **roles; /* declared in clients.yaml */
    size_t n_roles;
    struct config_client *clients;
    size_t n_clients;
    struct config_channel *channels; /* sorted by priority, then name */
    size_t n_channels;

    char *mappings_dir; /* mappings: in hibus.yaml, default "mappings" */

    /* delivery: { workers, lease, poll, max_attempts, max_age, backoff: {initial, max} } */
    int delivery_workers;      /* threads per process; default 4; 0 = this process only
                                  takes requests, others deliver */
    long delivery_lease_ms;    /* how long a claim lasts before another process may take the
                                  transaction over; default 5m, at least the longest route
                                  timeout times the number of routes */
    long delivery_poll_ms;     /* fallback poll when no NOTIFY comes; default 5s */
    int delivery_batch;        /* transactions claimed per query; default 1 */
    long drain_ms;             /* SIGTERM: how long in-flight work may finish; default 30s */
    struct config_retry retry; /* the defaults of every channel */
    /* retention: { keep_bodies, keep_transactions, prune_every } */
    long long keep_bodies_ms;       /* 0 = keep forever */
    long long keep_transactions_ms; /* 0 = keep forever */
    long prune_every_ms;            /* default 1h */
    struct mapping **mappings;      /* every mapping a channel names, loaded once */
    size_t n_mappings;
};

/* Loads and validates. On success returns HIBUS_OK and *out (caller frees with
 * config_free). On failure returns HIBUS_E_CONFIG (or HIBUS_E_IO / HIBUS_E_NOMEM),
 * leaves *out untouched, and appends every problem to diags. */
enum hibus_err config_load(const char *path, struct config **out, struct hibus_diags *diags);
void config_free(struct config *cfg);

const struct config_client *config_find_client(const struct config *cfg, const char *id);
const struct config_channel *config_find_channel(const struct config *cfg, const char *name);
const struct mapping *config_find_mapping(const struct config *cfg, const char *name);
/* The channel's primary route (never NULL in a loaded config). */
const struct config_route *config_primary_route(const struct config_channel *ch);
bool config_header_redacted(const struct config *cfg, const char *name);

/* The current snapshot, swapped on reload (SIGHUP). A request or a delivery
 * round acquires the snapshot it starts with and releases it when done; a
 * replaced snapshot is freed when its last user releases it. Thread-safe. */
struct config_holder;
struct config_holder *config_holder_new(struct config *initial); /* takes ownership */
const struct config *config_holder_acquire(struct config_holder *h);
void config_holder_release(struct config_holder *h, const struct config *cfg);
/* Makes next (owned from now on) the current snapshot. */
void config_holder_swap(struct config_holder *h, struct config *next);
/* Frees the holder and every snapshot; only when nothing holds one any more. */
void config_holder_free(struct config_holder *h);

/* Settings a reload cannot change in a running process (listen address and
 * port, database, pool, limits, workers): a sentence naming the first that
 * differs, or NULL. */
const char *config_needs_restart(const struct config *old, const struct config *next);

/* Helpers shared with tests: "30s", "500ms", "2m", "1h", "90d", "2w" -> milliseconds; "10MiB",
 * "512KiB", "1MB", "2048" -> bytes. Return false on a malformed value. */
bool config_parse_duration_ms(const char *s, long *out);
bool config_parse_size(const char *s, size_t *out);

#endif
