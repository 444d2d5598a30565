/*
 * config.h - the configuration snapshot: hibus.yaml, clients.yaml, channels/NAME.yaml.
 *
 * config_load() reads every file, expands ${NAME} from the environment, validates
 * everything and returns one immutable struct config, or collects every problem
 * found (not only the first) as "file:line:col: message" diagnostics.
 *
 * A loaded config is never modified; readers on any thread may share it freely.
 * Reload (SIGHUP) builds a new snapshot and swaps a pointer (see main.c).
 *
 * Files, relative to the directory of hibus.yaml unless absolute:
 *   hibus.yaml        listen, database, limits, log, redact_headers, clients, channels
 *   clients.yaml      roles: [..], clients: [{id, name, roles, password_hash, enabled}]
 *   channels/NAME.yaml one channel per file (see docs/configuration.md)
 */
#ifndef HIBUS_CONFIG_H
#define HIBUS_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"
#include "hibus/readers.h"
#include "hibus/mapping.h"
#include "hibus/quality.h"

enum config_path_kind { CONFIG_PATH_EXACT = 0, CONFIG_PATH_PREFIX = 1, CONFIG_PATH_REGEX = 2 };
/* sync: the client waits for the primary route's outcome. async: the client
 * gets 202 once the request is stored; delivery workers deliver it, with
 * retries. */
enum config_mode { CONFIG_MODE_SYNC = 0, CONFIG_MODE_ASYNC = 1 };

/* Retry policy: delivery: in hibus.yaml gives the defaults, a channel's retry:
 * overrides each key it names. */
struct config_retry {
    int max_attempts;        /* delivery rounds before a transaction is failed; default 10 */
    long max_age_ms;         /* no retry once the request is older than this; default 24h */
    long backoff_initial_ms; /* default 2s */
    long backoff_max_ms;     /* default 15m; delay = random(0, min(max, initial * 2^(n-1))) */
};
enum config_mediator {
    CONFIG_MEDIATOR_HTTP = 0, /* forward to any HTTP target */
    CONFIG_MEDIATOR_DHIS2 = 1 /* POST <url>/api/dataValueSets, parse the import summary */
};
/* What an http route sends: the request as received (default) or the output of
 * the channel's transform (body: transformed). dhis2 routes always send the
 * transformed report. */
enum config_route_body { CONFIG_BODY_ORIGINAL = 0, CONFIG_BODY_TRANSFORMED = 1 };
enum config_auth_kind {
    CONFIG_AUTH_NONE = 0,
    CONFIG_AUTH_BASIC = 1,  /* auth: { basic: { username: U, password: P } } */
    CONFIG_AUTH_BEARER = 2, /* auth: { bearer: TOKEN } -> Authorization: Bearer TOKEN */
    CONFIG_AUTH_HEADER = 3, /* auth: { header: { name: N, value: V } } */
    CONFIG_AUTH_TOKEN = 4   /* auth: { token: T } -> Authorization: ApiToken T (DHIS2 PAT) */
};

/* Where a thing was defined, for messages about it. */
struct config_pos {
    const char *file; /* points into struct config's file list */
    int line;
    int col;
};

struct config_route {
    char *name;
    enum config_mediator mediator;
    char *url;       /* absolute http:// or https:// URL; the request's query is appended */
    bool primary;    /* exactly one route per channel is primary */
    long timeout_ms; /* default 30000 */
    enum config_auth_kind auth_kind;
    char *auth_user;   /* BASIC */
    char *auth_secret; /* BASIC password, BEARER token, HEADER value */
    char *auth_header; /* HEADER name */
    enum config_route_body body;
    char *writer; /* dhis2 routes, or http with body: transformed: "dhis2-datavalueset" or
                     "adx"; default: the channel's transform.writer */
    /* dhis2 routes (key dhis2: { dry_run, import_strategy, id_scheme }): */
    bool dry_run;          /* dryRun=true: DHIS2 validates and stores nothing */
    char *import_strategy; /* CREATE_AND_UPDATE (default), CREATE, UPDATE or DELETE */
    char *id_scheme;       /* idScheme sent with JSON (default: none, DHIS2 uses UID) */
    /* The id scheme of each kind of object the route sends (data_element_id_scheme,
     * ...): what the channel's mapping's targets are ("UID" or "CODE"; the route's
     * own keys must agree with it). Static strings; NULL before config_load ends. */
    const char *id_schemes[MAPPING_KINDS];
    struct config_pos id_scheme_pos[MAPPING_KINDS]; /* where the route set one; line 0: not */
    /* when: [2xx, 409, failed, ...]: run only after the primary route, and only
     * when its outcome matches one entry: a status code, a class "2xx".."5xx", or
     * "failed" (no answer). Empty: always run. Never set on the primary. */
    char **when;
    size_t n_when;
    struct config_pos pos;
};

/* match.json: { "program": "essential-medicines", "report.kind": "monthly" }:
 * the body must be a JSON object whose value at each dotted path is a string
 * (or number or boolean written the same way) equal to the given text. */
struct config_json_match {
    char *path;
    char *equals;
};

/* transform: { reader, mapping, quality: [...], writer } */
struct config_transform {
    char *reader;                  /* a reader_known() name */
    const struct mapping *mapping; /* borrowed from config.mappings; NULL = none */
    struct quality_rule *quality;  /* in the order written */
    size_t n_quality;
    char *writer; /* default writer of the channel's routes */
    /* losses: { reasons: [...], categories: [...] } (openlmis-requisition): which
     * stock adjustment reasons count as losses. Both NULL-terminated, or NULL
     * (the reader's default); reader_opts points into them. */
    char **loss_reasons;
    char **loss_categories;
    struct reader_options reader_opts;
};

struct config_channel {
    char *name; /* unique */
    char *description;
    bool enabled; /* default true; a disabled channel is never matched */
    int priority; /* lower matches first; default 100; ties that can overlap are errors */
    enum config_path_kind path_kind;
    char *path;      /* match.path (exact), match.path_prefix or match.path_regex */
    regex_t path_re; /* compiled (REG_EXTENDED|REG_NOSUB) when path_kind == REGEX */
    char **methods;  /* upper case; n_methods == 0 means any */
    size_t n_methods;
    char **content_types; /* lower case media types without parameters; 0 means any */
    size_t n_content_types;
    struct config_json_match *json_match; /* all must hold; n_json_match 0 = no condition */
    size_t n_json_match;
    char **allow_roles;
    size_t n_allow_roles;
    char **allow_clients;
    size_t n_allow_clients;
    enum config_mode mode;
    struct config_retry retry;      /* the global delivery: values with this channel's retry: */
    long long keep_bodies_ms;       /* keep_bodies: request/response bodies pruned after this;
                                       0 = the global retention.keep_bodies (0 there = forever) */
    long long keep_transactions_ms; /* keep_transactions: whole transactions removed after this;
                                    0 = the global retention.keep_transactions */
    bool has_transform;
    struct config_transform transform;
    enum mapping_policy unmapped; /* unmapped: reject (default) | skip */
    struct config_route *routes;
    size_t n_routes;
    struct config_pos pos;
};

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
