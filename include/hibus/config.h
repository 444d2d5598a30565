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
#include <stdio.h>

#include "hibus/channel.h"
#include "hibus/error.h"
#include "hibus/tls.h"

struct config_client {
    char *id;
    char *name;
    char *password_hash; /* crypt(3) format: $y$ (yescrypt) or $6$ (sha512-crypt); NULL
                            for a client that only presents a certificate */
    /* certificate: { sha256 } or { subject }: a TLS client certificate that identifies
     * this client (see auth_certificate) */
    bool has_cert_sha256;
    unsigned char cert_sha256[32];
    char *cert_subject; /* RFC 4514 DN as GnuTLS prints it, e.g. "CN=lmis,O=MoH" */
    struct config_pos cert_subject_pos;
    char **roles;
    size_t n_roles;
    bool enabled; /* default true */
    /* rate_limit: { requests, per }: at most rate_requests in any rate_per_ms, and a
     * burst of as many; 0: no limit */
    unsigned rate_requests;
    long rate_per_ms;
    struct config_pos pos;
};

struct config {
    char *path;               /* hibus.yaml as given */
    unsigned long generation; /* unique per loaded snapshot in this process, from 1 */
    char *dir;                /* its directory */
    char **files;             /* every file read, for struct config_pos */
    size_t n_files;
    struct hibus_diags warnings; /* what is allowed but unwise (a secret in plain text):
                                    printed by hibus check, logged by serve */

    char *listen_address;  /* listen.address, default 127.0.0.1 */
    int listen_port;       /* listen.port, default 5001 */
    char *tls_cert;        /* listen.tls.cert (absolute), NULL: plain HTTP */
    char *tls_key;         /* listen.tls.key (absolute) */
    char *tls_client_ca;   /* listen.tls.client_ca (absolute): CAs of client certificates */
    struct tls_creds *tls; /* loaded and checked from the two; NULL: plain HTTP */

    char *database_url;               /* database.url, required */
    int database_pool;                /* database.pool, default 8 */
    long database_connect_timeout_ms; /* database.connect_timeout, default 5s */

    size_t max_body;            /* limits.max_body, default 10MiB */
    unsigned max_connections;   /* limits.max_connections, default 1024 */
    unsigned login_failures;    /* limits.login_failures, default 10; 0: no limit */
    unsigned per_address;       /* limits.connections_per_address, default 256; 0: no limit */
    unsigned idle_connections;  /* limits.idle_connections, default 256 */
    size_t connection_memory;   /* limits.connection_memory, default 16 KiB */
    unsigned workers;           /* limits.workers, default 128 */
    unsigned max_values;        /* limits.max_values, default READER_DEFAULT_MAX_VALUES */
    size_t transform_memory;    /* limits.transform_memory, default 32 MiB */
    long request_deadline_ms;   /* limits.request_deadline, default 60s */
    long request_cpu_ms;        /* limits.request_cpu, default 5s */
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

    char *clients_file; /* clients: in hibus.yaml, joined to dir; default "clients.yaml" */

    /* admin: the admin listener (GET /metrics, the admin API). admin_port 0: none. */
    char *admin_address;               /* admin.address, default 127.0.0.1 */
    int admin_port;                    /* admin.port, default 0 (off) */
    char *admin_users_file;            /* admin.users, joined to dir; required with a port */
    int admin_metrics;                 /* enum config_admin_metrics; admin.metrics, default login */
    struct config_client *admin_users; /* roles[0] is the user's role (enum config_admin_role) */
    size_t n_admin_users;
    char *channels_dir; /* channels: in hibus.yaml, joined to dir; default "channels" */
    char *mappings_dir; /* mappings: in hibus.yaml, joined to dir; default "mappings" */

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
    /* alerts: a channel's trouble posted as JSON to a webhook (src/alerts.c) */
    char *alerts_webhook;            /* alerts.webhook; NULL: no alerts */
    long alerts_every_ms;            /* alerts.every, default 1m */
    long aggregate_every_ms;         /* aggregate.every, default 30s */
    long alerts_window_ms;           /* alerts.window, default 15m */
    unsigned alerts_failure_percent; /* alerts.failure_percent, default 20; 0: off */
    unsigned alerts_min_finished;    /* alerts.min_finished, default 5 */
    int alerts_conflicts;            /* alerts.conflicts: 0 off, 1 on (default) */
    long alerts_queue_age_ms;        /* alerts.queue_age, default 30m; 0: off */
    long alerts_repeat_ms;           /* alerts.repeat, default 1h */
    struct mapping **mappings;       /* every mapping a channel names, loaded once */
    size_t n_mappings;
};

/* Loads and validates. On success returns HIBUS_OK and *out (caller frees with
 * config_free). On failure returns HIBUS_E_CONFIG (or HIBUS_E_IO / HIBUS_E_NOMEM),
 * leaves *out untouched, and appends every problem to diags. */
enum hibus_err config_load(const char *path, struct config **out, struct hibus_diags *diags);
void config_free(struct config *cfg);

/* A facility to search the log for (hibus ls, the admin API), as the codes a
 * report's source may have named it, one per line: the value itself, and when it
 * is a DHIS2 org unit id, every code a channel's mapping sends to it. Caller
 * frees. */
char *config_facility_codes(const struct config *cfg, const char *facility);
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

/* The userinfo of an absolute URL ("user:pass" in http://user:pass@host/path): its
 * offset and length, or false when it has none. A route URL with one is refused;
 * these also keep one that reached the log some other way out of what hibus prints. */
bool config_url_userinfo(const char *url, size_t *at, size_t *len);
/* url with its userinfo replaced by "***", into out (cut to size). */
const char *config_url_masked(const char *url, char *out, size_t size);
/* The same for each attempt's url in a transaction as txlog_get_json gives it (a
 * URL stored with a password, by a version that allowed one). */
struct json_t;
void config_mask_attempt_urls(struct json_t *tx);

/* The keys of hibus.yaml, one row each (src/config_keys.c): the loader, the
 * defaults, the reload decision and the key reference in docs/configuration.md
 * all come from these rows. */
/* admin.metrics: whether GET /metrics asks for an admin user's password. */
enum config_admin_metrics { CONFIG_ADMIN_METRICS_LOGIN = 0, CONFIG_ADMIN_METRICS_PUBLIC = 1 };
/* An admin user's role; each may do what the ones before it may. */
enum config_admin_role { CONFIG_ADMIN_READ = 0, CONFIG_ADMIN_OPERATOR = 1, CONFIG_ADMIN_ADMIN = 2 };
extern const char *const config_admin_roles[]; /* "read", "operator", "admin", NULL */
/* The role of an admin user of cfg->admin_users. */
enum config_admin_role config_admin_role_of(const struct config_client *user);

enum config_key_type {
    CONFIG_KEY_STRING,      /* char *, not empty */
    CONFIG_KEY_PATH,        /* char *, relative to hibus.yaml's directory */
    CONFIG_KEY_INT,         /* int in [min, max] */
    CONFIG_KEY_UINT,        /* unsigned in [min, max] */
    CONFIG_KEY_DURATION,    /* long milliseconds in *range */
    CONFIG_KEY_DURATION_LL, /* long long milliseconds in *range */
    CONFIG_KEY_SIZE,        /* size_t bytes, at least 1 */
    CONFIG_KEY_ENUM,        /* int: the index in choices */
    CONFIG_KEY_HEADERS,     /* redact_headers: names added to the built-in ones */
    CONFIG_KEY_UNSUPPORTED  /* refused with its doc as the reason */
};
struct config_duration_range;
struct config_key {
    const char *name; /* dotted: "delivery.backoff.max" */
    enum config_key_type type;
    size_t offset; /* of the field in struct config */
    long long min, max;
    const struct config_duration_range *range;
    const char *const *choices; /* NULL-terminated */
    long long def;              /* the default of a number, duration, size or enum */
    const char *def_str;        /* the default of a string or path; NULL: none */
    bool required;
    bool reload; /* a reload applies it; otherwise it waits for a restart */
    const char *example;
    const char *doc;
};
extern const struct config_key config_keys[];
extern const size_t config_n_keys;
const struct config_key *config_key_find(const char *name);
/* Whether the value of key k differs between a and b. */
bool config_key_differs(const struct config *a, const struct config *b, const struct config_key *k);

/* The keys a reload cannot apply in a running process that differ between old and
 * next, as "listen.port, database.pool" in buf; NULL when none does. */
const char *config_needs_restart(const struct config *old, const struct config *next, char *buf,
                                 size_t size);

/* Writes the key reference of one section of hibus.yaml ("delivery": the
 * delivery.* keys; "": the top-level ones) as a Markdown table; returns the rows. */
size_t config_keys_markdown(FILE *out, const char *section);

/* Helpers shared with tests: "30s", "500ms", "2m", "1h", "90d", "2w" -> milliseconds; "10MiB",
 * "512KiB", "1MB", "2048" -> bytes. Return false on a malformed value. */
bool config_parse_duration_ms(const char *s, long *out);
bool config_parse_size(const char *s, size_t *out);

#endif
