/*
 * config_keys.c - the keys of hibus.yaml, one row each: name, type, where it is
 * stored in struct config, range, default, whether a reload applies it, an example
 * and a one-line meaning.
 *
 * Everything about a key comes from its row: the loader (which keys each mapping
 * allows, which are required, how a value is read and checked), the defaults,
 * the reload decision (config_needs_restart) and the key reference in
 * docs/configuration.md (config_keys_markdown; test_config fails when the two
 * differ, scripts/config-doc rewrites the docs). hibus check and hibus serve both
 * load through config_load, so they refuse exactly the same values.
 *
 * Checks across keys (backoff.max >= backoff.initial, keep_transactions >=
 * keep_bodies) run after the rows, with the positions of the keys involved; the
 * channel files reuse them for a channel's retry: and retention keys, with the
 * ranges of the matching delivery.* and retention.* rows.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "hibus/log.h"
#include "hibus/readers.h"
#include "hibus/txlog.h"

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const admin_metrics_modes[] = {"login", "public", NULL};
static const char *const off_on[] = {"off", "on", NULL};
/* Always redacted; redact_headers: adds to these. */
static const char *const default_redact[] = {"authorization", "proxy-authorization", "cookie",
                                             "set-cookie"};

#define AT(field) offsetof(struct config, field)
#define KiB 1024LL
#define MiB (1024LL * 1024)

/* log.level's index is its enum log_level; log.format's its enum log_format. */
_Static_assert(LOG_LEVEL_ERROR == 0 && LOG_LEVEL_DEBUG == 3, "log.level indexes log_levels");
_Static_assert(LOG_FORMAT_TEXT == 0 && LOG_FORMAT_JSON == 1, "log.format indexes log_formats");

const struct config_key config_keys[] = {
    {"listen.address", CONFIG_KEY_STRING, AT(listen_address), .def_str = "127.0.0.1",
     .example = "0.0.0.0", .doc = "address to accept HTTP requests on"},
    {"listen.port", CONFIG_KEY_INT, AT(listen_port), 1, 65535, .def = 5001,
     .example = "${HIBUS_PORT}", .doc = "TCP port"},
    {"listen.tls.cert", CONFIG_KEY_PATH, AT(tls_cert), .reload = true,
     .example = "/etc/hibus/tls/fullchain.pem",
     .doc = "PEM file: the server certificate, then its chain; with `listen.tls.key`, hibus "
            "speaks only HTTPS (TLS 1.2 and 1.3). A reload takes a new certificate; turning "
            "TLS on or off takes a restart"},
    {"listen.tls.client_ca", CONFIG_KEY_PATH, AT(tls_client_ca),
     .example = "/etc/hibus/tls/clients-ca.pem",
     .doc = "PEM file of the CAs that sign client certificates: hibus then asks clients for "
            "one, and a client of clients.yaml with `certificate: { subject }` is identified "
            "by a certificate these CAs signed (`certificate: { sha256 }` works without it)"},
    {"listen.tls.key", CONFIG_KEY_PATH, AT(tls_key), .reload = true,
     .example = "/etc/hibus/tls/privkey.pem",
     .doc = "PEM file: the certificate's private key, unencrypted (readable by hibus only)"},
    {"database.url", CONFIG_KEY_STRING, AT(database_url), .required = true,
     .example = "postgres://hibus@localhost/hibus",
     .doc = "libpq connection URI or `key=value` string for the transaction log"},
    {"database.pool", CONFIG_KEY_INT, AT(database_pool), 1, TXLOG_POOL_MAX, .def = 8,
     .example = "16", .doc = "connections per hibus process"},
    {"database.connect_timeout", CONFIG_KEY_DURATION, AT(database_connect_timeout_ms),
     .range = &config_dur_connect, .def = 5000, .example = "3s",
     .doc = "how long to wait for a connection"},
    {"limits.max_body", CONFIG_KEY_SIZE, AT(max_body), .def = 10 * MiB, .reload = true,
     .example = "512KiB",
     .doc = "larger request bodies are refused with 413; each request reads it from the "
            "configuration it started with"},
    {"limits.max_values", CONFIG_KEY_UINT, AT(max_values), 1, 10000000,
     .def = READER_DEFAULT_MAX_VALUES, .reload = true, .example = "20000",
     .doc = "data values one payload of a channel with a transform may hold; more is refused "
            "with 422 (each value costs about 2.5 KiB on the way through the pipeline)"},
    {"limits.transform_memory", CONFIG_KEY_SIZE, AT(transform_memory), .def = 32 * MiB,
     .reload = true, .example = "128MiB",
     .doc = "request bodies (by size) that transforms may hold at once: a parsed body and its "
            "report cost up to ~28 times its size, so this bounds their memory together; "
            "a request past it waits for earlier ones"},
    {"limits.request_cpu", CONFIG_KEY_DURATION, AT(request_cpu_ms), .range = &config_dur_short,
     .def = 5000, .reload = true, .example = "2s",
     .doc = "CPU time a channel's transform may take for one request (reader, mapping and "
            "quality rules; then again each route's writer); a payload that needs more is "
            "refused with 422 and a problem saying so. Every step is linear in the payload: "
            "the worst 10 MiB body takes under a second, so this is a net, not a budget to "
            "tune"},
    {"limits.max_connections", CONFIG_KEY_UINT, AT(max_connections), 1, 1000000, .def = 1024,
     .example = "10000",
     .doc = "client connections held open; past it, the one that has waited longest for its "
            "next request (idle, or still sending) is closed to make room, so a new client "
            "always gets in; 64 more are accepted while that happens"},
    {"limits.idle_connections", CONFIG_KEY_UINT, AT(idle_connections), 0, 1000000, .def = 256,
     .reload = true, .example = "1000",
     .doc = "kept-alive connections idle for more than a second that hibus holds; past "
            "this many, the longest idle are closed (each holds limits.connection_memory once "
            "it has had an answer); clients simply reconnect"},
    {"limits.connection_memory", CONFIG_KEY_SIZE, AT(connection_memory), 8 * KiB, 1 * MiB,
     .def = 16 * KiB, .example = "32KiB",
     .doc = "memory each client connection has for its request head and its reads and writes; "
            "a connection kept alive after an answer holds all of it (libmicrohttpd clears it "
            "after each one). A request head may take half of it and a request target a "
            "quarter (431 and 414 past that): raise it for clients that send large headers"},
    {"limits.connections_per_address", CONFIG_KEY_UINT, AT(per_address), 0, 1000000, .def = 256,
     .example = "32",
     .doc = "client connections from one address at a time; more are refused. `0`: no limit"},
    {"limits.request_deadline", CONFIG_KEY_DURATION, AT(request_deadline_ms),
     .range = &config_dur_short, .def = 60000, .reload = true, .example = "30s",
     .doc = "time from a connection's start (or its previous answer) to the last byte of "
            "its next request; a client still sending (or idle) then is cut off, however "
            "it trickles its bytes"},
    {"limits.workers", CONFIG_KEY_UINT, AT(workers), 1, 10000, .def = 128, .example = "256",
     .doc = "threads that answer requests once they are in (a sync request holds one while "
            "its target answers); connections wait in a queue when all are busy"},
    {"limits.login_failures", CONFIG_KEY_UINT, AT(login_failures), 0, 1000000, .def = 10,
     .reload = true, .example = "5",
     .doc = "failed logins from one client address, with no quiet minute between them, "
            "before that address is refused with 429 for 1 s, doubling with each further "
            "failure up to 5 min; `0`: no limit"},
    {"limits.connection_timeout", CONFIG_KEY_DURATION, AT(connection_timeout_ms),
     .range = &config_dur_short, .def = 60000, .example = "2m",
     .doc = "idle keep-alive connections are closed after this"},
    {"log.level", CONFIG_KEY_ENUM, AT(log_level), .choices = log_levels, .def = LOG_LEVEL_INFO,
     .reload = true, .example = "debug", .doc = "least severe level written"},
    {"log.format", CONFIG_KEY_ENUM, AT(log_format), .choices = log_formats, .def = LOG_FORMAT_TEXT,
     .reload = true, .example = "json", .doc = "one plain line or one JSON object per event"},
    {"redact_headers", CONFIG_KEY_HEADERS, AT(redact_headers), .def_str = "[]", .reload = true,
     .example = "[X-Api-Key, X-Token]",
     .doc = "more request headers whose values are stored and logged as `[redacted]` "
            "(always: authorization, proxy-authorization, cookie, set-cookie)"},
    {"clients", CONFIG_KEY_PATH, AT(clients_file), .def_str = "clients.yaml", .reload = true,
     .example = "/etc/hibus/clients.yaml", .doc = "the clients file"},
    {"channels", CONFIG_KEY_PATH, AT(channels_dir), .def_str = "channels", .reload = true,
     .example = "channels.d", .doc = "the directory of channel files"},
    {"mappings", CONFIG_KEY_PATH, AT(mappings_dir), .def_str = "mappings", .reload = true,
     .example = "../mappings",
     .doc = "the directory of mapping files (`NAME.yaml`); only read for the mappings "
            "channels name, so it need not exist when none does"},
    {"admin.address", CONFIG_KEY_STRING, AT(admin_address), .def_str = "127.0.0.1",
     .example = "10.0.0.5",
     .doc = "address of the admin listener (GET /metrics, the admin API: docs/admin-api.md); "
            "keep it on a private network"},
    {"admin.port", CONFIG_KEY_INT, AT(admin_port), 0, 65535, .def = 0, .example = "5002",
     .doc = "TCP port of the admin listener; 0: none"},
    {"admin.users", CONFIG_KEY_PATH, AT(admin_users_file), .def_str = "admin-users.yaml",
     .reload = true, .example = "/etc/hibus/admin-users.yaml",
     .doc = "the admin users file (`users:`, each with `id`, `role`: read, operator or admin, "
            "and `password_hash`), read when `admin.port` is set"},
    {"admin.metrics", CONFIG_KEY_ENUM, AT(admin_metrics), .choices = admin_metrics_modes,
     .def = CONFIG_ADMIN_METRICS_LOGIN, .reload = true, .example = "public",
     .doc = "`login`: GET /metrics asks for an admin user like the rest; `public`: it "
            "answers without (for a Prometheus on the same private network)"},
    {"delivery.workers", CONFIG_KEY_INT, AT(delivery_workers), 0, 256, .def = 4, .example = "8",
     .doc = "delivery threads in this process. `0`: this process only takes requests and "
            "other hibus processes (on the same database) deliver"},
    {"delivery.lease", CONFIG_KEY_DURATION, AT(delivery_lease_ms), .range = &config_dur_long,
     .def = 5 * 60000, .reload = true, .example = "15m",
     .doc = "how long a worker's claim on a transaction lasts unless renewed (the process "
            "renews its workers' claims every third of it); once it lapses (the process "
            "died, or could not reach the database) any process may claim the transaction "
            "again. Must be at least the sum of the route timeouts of every async channel"},
    {"delivery.poll", CONFIG_KEY_DURATION, AT(delivery_poll_ms), .range = &config_dur_short,
     .def = 5000, .reload = true, .example = "1s",
     .doc = "workers are woken when work is queued (at once in their own process, by an "
            "announcement from another); they also look this often, in case one was missed"},
    {"delivery.batch", CONFIG_KEY_INT, AT(delivery_batch), 1, 100, .def = 10, .reload = true,
     .example = "20",
     .doc = "at most this many transactions a worker claims per query, then delivers one "
            "after another; its claims double while they come back full (a backlog) and "
            "start again at one when the queue runs short, so a few queued reports go out "
            "side by side. The workers' leases are renewed every third of delivery.lease "
            "while their process lives; the order within a facility and period holds "
            "either way"},
    {"delivery.drain", CONFIG_KEY_DURATION, AT(drain_ms), .range = &config_dur_long, .def = 30000,
     .reload = true, .example = "2m",
     .doc = "on SIGTERM, how long deliveries under way may finish before the process exits; "
            "what is left is claimed again once its lease lapses"},
    {"delivery.max_attempts", CONFIG_KEY_INT, AT(retry.max_attempts), 1, 1000, .def = 10,
     .reload = true, .example = "20", .doc = "delivery rounds before a transaction is failed"},
    {"delivery.max_age", CONFIG_KEY_DURATION, AT(retry.max_age_ms), .range = &config_dur_long,
     .def = 24 * 3600000LL, .reload = true, .example = "7d",
     .doc = "no new round once the request is older than this"},
    {"delivery.backoff.initial", CONFIG_KEY_DURATION, AT(retry.backoff_initial_ms),
     .range = &config_dur_short, .def = 2000, .reload = true, .example = "10s",
     .doc = "the longest wait before the second round"},
    {"delivery.backoff.max", CONFIG_KEY_DURATION, AT(retry.backoff_max_ms),
     .range = &config_dur_short, .def = 15 * 60000, .reload = true, .example = "1h",
     .doc = "the longest wait between any two rounds; at least `backoff.initial`"},
    {"retention.keep_bodies", CONFIG_KEY_DURATION_LL, AT(keep_bodies_ms), .range = &config_dur_keep,
     .def = 0, .reload = true, .example = "90d",
     .doc = "request and response bodies are removed this long after the request was "
            "received; the transaction and its attempts stay. `0`: forever"},
    {"retention.keep_transactions", CONFIG_KEY_DURATION_LL, AT(keep_transactions_ms),
     .range = &config_dur_keep, .def = 0, .reload = true, .example = "400d",
     .doc = "whole transactions, with their attempts, are removed this long after the "
            "request was received; at least `keep_bodies`. `0`: forever"},
    {"retention.prune_every", CONFIG_KEY_DURATION, AT(prune_every_ms), .range = &config_dur_prune,
     .def = 3600000, .reload = true, .example = "1d",
     .doc = "how often old rows are looked for (a reload applies it after the next look)"},
    {"aggregate.every", CONFIG_KEY_DURATION, AT(aggregate_every_ms), .range = &config_dur_alert,
     .def = 30000, .reload = true, .example = "1m",
     .doc = "how often channels with `aggregate:` look for periods that have closed, or that "
            "late events changed, and send them (docs/aggregate.md)"},
    {"alerts.webhook", CONFIG_KEY_STRING, AT(alerts_webhook), .reload = true,
     .example = "https://chat.example.org/hooks/moh-ops",
     .doc = "http:// or https:// URL that alerts are POSTed to as JSON (docs/alerts.md); "
            "absent: no alerts"},
    {"alerts.every", CONFIG_KEY_DURATION, AT(alerts_every_ms), .range = &config_dur_alert,
     .def = 60000, .reload = true, .example = "30s", .doc = "how often the rules are checked"},
    {"alerts.window", CONFIG_KEY_DURATION, AT(alerts_window_ms), .range = &config_dur_alert,
     .def = 15 * 60000, .reload = true, .example = "1h",
     .doc = "the recent past a failure rate and conflicts are counted over"},
    {"alerts.failure_percent", CONFIG_KEY_UINT, AT(alerts_failure_percent), 0, 100, .def = 20,
     .reload = true, .example = "10",
     .doc = "alert when more than this share of a channel's transactions that ended in the "
            "window failed or were rejected; 0: never"},
    {"alerts.min_finished", CONFIG_KEY_UINT, AT(alerts_min_finished), 1, 1000000, .def = 5,
     .reload = true, .example = "20",
     .doc = "fewer ended transactions in the window than this never make a failure-rate alert"},
    {"alerts.conflicts", CONFIG_KEY_ENUM, AT(alerts_conflicts), .choices = off_on, .def = 1,
     .reload = true, .example = "off",
     .doc = "alert when DHIS2 answered a channel's delivery with import conflicts in the "
            "window"},
    {"alerts.queue_age", CONFIG_KEY_DURATION, AT(alerts_queue_age_ms),
     .range = &config_dur_alert_off, .def = 30 * 60000, .reload = true, .example = "2h",
     .doc = "alert when a channel's oldest queued transaction is older than this; 0: never"},
    {"alerts.repeat", CONFIG_KEY_DURATION, AT(alerts_repeat_ms), .range = &config_dur_alert,
     .def = 3600000, .reload = true, .example = "4h",
     .doc = "an alert still firing is posted again at most this often (per channel and kind)"},
};
const size_t config_n_keys = sizeof config_keys / sizeof config_keys[0];

const struct config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < config_n_keys; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

static void *field_of(struct config *cfg, const struct config_key *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield_of(const struct config *cfg, const struct config_key *k)
{
    return (const char *)cfg + k->offset;
}

/* ------------------------------------------------------------------------------------
 * Defaults
 * ------------------------------------------------------------------------------------ */

static void add_redact(struct loader *ld, char *name)
{
    struct config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_redact_headers; i++) {
        if (strcmp(cfg->redact_headers[i], name) == 0) {
            free(name);
            return;
        }
    }
    size_t cap = cfg->n_redact_headers;
    if (!config_grow(ld, (void **)&cfg->redact_headers, &cap, cfg->n_redact_headers,
                     sizeof *cfg->redact_headers)) {
        free(name);
        return;
    }
    cfg->redact_headers[cfg->n_redact_headers++] = name;
}

void config_set_defaults(struct loader *ld, struct config *cfg)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        void *f = field_of(cfg, k);
        switch (k->type) {
        case CONFIG_KEY_STRING:
        case CONFIG_KEY_PATH:
            if (k->def_str)
                *(char **)f = config_xstrdup(ld, k->def_str);
            break;
        case CONFIG_KEY_INT:
        case CONFIG_KEY_ENUM: *(int *)f = (int)k->def; break;
        case CONFIG_KEY_UINT: *(unsigned *)f = (unsigned)k->def; break;
        case CONFIG_KEY_DURATION: *(long *)f = (long)k->def; break;
        case CONFIG_KEY_DURATION_LL: *(long long *)f = k->def; break;
        case CONFIG_KEY_SIZE: *(size_t *)f = (size_t)k->def; break;
        case CONFIG_KEY_HEADERS:
            for (size_t j = 0; j < sizeof default_redact / sizeof default_redact[0]; j++) {
                char *s = config_xstrdup(ld, default_redact[j]);
                if (s)
                    add_redact(ld, s);
            }
            break;
        case CONFIG_KEY_UNSUPPORTED: break;
        }
    }
}

/* ------------------------------------------------------------------------------------
 * Reading hibus.yaml
 * ------------------------------------------------------------------------------------ */

/* Reads one value into its field; false after reporting a problem. */
static bool set_key(struct loader *ld, const struct config_key *k, const yaml_node_t *key,
                    const yaml_node_t *val)
{
    void *f = field_of(ld->cfg, k);
    long v = 0;
    switch (k->type) {
    case CONFIG_KEY_STRING:
    case CONFIG_KEY_PATH: return config_get_string(ld, val, k->name, true, (char **)f);
    case CONFIG_KEY_INT:
        return config_get_int(ld, val, k->name, (int)k->min, (int)k->max, (int *)f);
    case CONFIG_KEY_UINT:
        if (!config_get_long(ld, val, k->name, (long)k->min, (long)k->max, &v))
            return false;
        *(unsigned *)f = (unsigned)v;
        return true;
    case CONFIG_KEY_DURATION: return config_get_duration_in(ld, val, k->name, k->range, (long *)f);
    case CONFIG_KEY_DURATION_LL:
        if (!config_get_duration_in(ld, val, k->name, k->range, &v))
            return false;
        *(long long *)f = v;
        return true;
    case CONFIG_KEY_SIZE:
        if (!config_get_size(ld, val, k->name, (size_t *)f))
            return false;
        if (k->max > 0 && (*(size_t *)f < (size_t)k->min || *(size_t *)f > (size_t)k->max)) {
            char lo[32], hi[32];
            config_err_at(ld, val, "\"%s\" is outside the valid range for %s (%s .. %s)",
                          (const char *)val->data.scalar.value, k->name,
                          config_fmt_size(lo, sizeof lo, (unsigned long long)k->min),
                          config_fmt_size(hi, sizeof hi, (unsigned long long)k->max));
            return false;
        }
        return true;
    case CONFIG_KEY_ENUM: {
        int i = config_get_enum(ld, val, k->name, k->choices);
        if (i < 0)
            return false;
        *(int *)f = i;
        return true;
    }
    case CONFIG_KEY_HEADERS: {
        char **names = NULL;
        size_t n = 0;
        const struct list_spec spec = {k->name, config_check_header_name, NULL, NULL, NULL, false};
        config_get_string_list(ld, val, &spec, &names, &n);
        for (size_t i = 0; i < n; i++)
            add_redact(ld, names[i]);
        free(names);
        return true;
    }
    case CONFIG_KEY_UNSUPPORTED: config_err_at(ld, key, "%s is %s", k->name, k->doc); return false;
    }
    return false;
}

/* nodes[row] of a key whose value was refused (already reported): checks across keys
 * leave it out rather than report a second problem built on a default. */
static const yaml_node_t refused;

/* The most keys one mapping of hibus.yaml holds (the top level: 11). */
#define SECTION_MAX 16

/* Reads the mapping whose keys are the rows named prefix + "key" (prefix "" for the
 * top level, "delivery." for delivery:): the rows give which keys are allowed (a
 * section is a key, required when one of its rows is), and nodes[row] receives the
 * value node of each row found. */
static void load_section(struct loader *ld, const yaml_node_t *map, const char *prefix,
                         const yaml_node_t **nodes)
{
    struct key_spec keys[SECTION_MAX];
    char names[SECTION_MAX][32];
    size_t nk = 0, plen = strlen(prefix);
    for (size_t i = 0; i < config_n_keys; i++) {
        const char *rest = config_keys[i].name;
        if (strncmp(rest, prefix, plen) != 0)
            continue;
        rest += plen;
        size_t seg = strcspn(rest, ".");
        size_t j = 0;
        while (j < nk && (strlen(names[j]) != seg || strncmp(names[j], rest, seg) != 0))
            j++;
        if (j == nk) {
            if (nk == SECTION_MAX || seg >= sizeof names[0])
                abort(); /* the table outgrew this function: a programming error */
            memcpy(names[nk], rest, seg);
            names[nk][seg] = '\0';
            keys[nk] = (struct key_spec){names[nk], false};
            nk++;
        }
        keys[j].required = keys[j].required || config_keys[i].required;
    }

    char where[64];
    snprintf(where, sizeof where, "%.*s", plen ? (int)plen - 1 : 0, prefix);
    struct found f[SECTION_MAX];
    if (!config_map_keys(ld, map, plen ? where : NULL, keys, nk, f))
        return;
    for (size_t j = 0; j < nk; j++) {
        if (f[j].key == NULL)
            continue;
        char full[96];
        snprintf(full, sizeof full, "%s%s", prefix, names[j]);
        const struct config_key *k = config_key_find(full);
        if (k == NULL) {
            strcat(full, ".");
            load_section(ld, f[j].val, full, nodes);
        } else {
            nodes[k - config_keys] = set_key(ld, k, f[j].key, f[j].val) ? f[j].val : &refused;
        }
    }
}

static const yaml_node_t *node_of(const yaml_node_t **nodes, const char *name)
{
    const struct config_key *k = config_key_find(name);
    return k ? nodes[k - config_keys] : NULL;
}

void config_load_main(struct loader *ld, yaml_node_t *root, void *arg)
{
    struct config_main_refs *refs = arg;
    const yaml_node_t *nodes[sizeof config_keys / sizeof config_keys[0]] = {0};
    load_section(ld, root, "", nodes);
    struct config *cfg = ld->cfg;
    const yaml_node_t *initial = node_of(nodes, "delivery.backoff.initial"),
                      *max = node_of(nodes, "delivery.backoff.max"),
                      *bodies = node_of(nodes, "retention.keep_bodies"),
                      *transactions = node_of(nodes, "retention.keep_transactions");
    if (initial != &refused && max != &refused)
        config_check_backoff(ld, "delivery", initial, max, &cfg->retry);
    if (bodies != &refused && transactions != &refused)
        config_check_keep(ld, "retention.", bodies, transactions, cfg->keep_bodies_ms,
                          cfg->keep_transactions_ms);
    const yaml_node_t *n;
    if ((n = node_of(nodes, "clients")) != NULL && n != &refused)
        refs->clients_pos = config_pos_of(ld, n);
    const yaml_node_t *hook = node_of(nodes, "alerts.webhook");
    if (hook != NULL && hook != &refused && cfg->alerts_webhook != NULL &&
        strncmp(cfg->alerts_webhook, "http://", 7) != 0 &&
        strncmp(cfg->alerts_webhook, "https://", 8) != 0)
        config_err_at(ld, hook, "alerts.webhook \"%s\" is not an http:// or https:// URL",
                      cfg->alerts_webhook);
    const yaml_node_t *admin_port = node_of(nodes, "admin.port");
    if ((n = node_of(nodes, "admin.users")) != NULL && n != &refused)
        refs->admin_users_pos = config_pos_of(ld, n);
    if (admin_port != NULL && admin_port != &refused)
        refs->admin_port_pos = config_pos_of(ld, admin_port);
    if (admin_port != NULL && admin_port != &refused && cfg->admin_port != 0 &&
        cfg->admin_port == cfg->listen_port)
        config_err_at(ld, admin_port,
                      "admin.port is listen.port (%d): give the admin listener "
                      "a port of its own",
                      cfg->listen_port);
    if ((n = node_of(nodes, "channels")) != NULL && n != &refused)
        refs->channels_pos = config_pos_of(ld, n);
    const yaml_node_t *cert = node_of(nodes, "listen.tls.cert"),
                      *key = node_of(nodes, "listen.tls.key");
    if (cert != NULL && cert != &refused)
        refs->tls_cert_pos = config_pos_of(ld, cert);
    if (key != NULL && key != &refused)
        refs->tls_key_pos = config_pos_of(ld, key);
    const yaml_node_t *ca = node_of(nodes, "listen.tls.client_ca");
    if (ca != NULL && ca != &refused)
        refs->tls_client_ca_pos = config_pos_of(ld, ca);
    if ((cert == NULL) != (key == NULL)) {
        const yaml_node_t *one = cert ? cert : key;
        config_err_at(ld, one, "listen.tls needs both cert and key (%s is missing)",
                      cert ? "key" : "cert");
    }
}

/* ------------------------------------------------------------------------------------
 * Checks across keys, shared with channel files
 * ------------------------------------------------------------------------------------ */

/* A channel's retry: holds the delivery: keys that make the retry policy. */
const struct key_spec config_retry_keys[3] = {
    [K_RY_MAX_ATTEMPTS] = {"max_attempts", false},
    [K_RY_MAX_AGE] = {"max_age", false},
    [K_RY_BACKOFF] = {"backoff", false},
};

void config_check_backoff(struct loader *ld, const char *prefix, const yaml_node_t *initial,
                          const yaml_node_t *max, const struct config_retry *r)
{
    char a[32], b[32];
    if (r->backoff_max_ms >= r->backoff_initial_ms)
        return;
    config_fmt_duration(a, sizeof a, r->backoff_max_ms);
    config_fmt_duration(b, sizeof b, r->backoff_initial_ms);
    if (max)
        config_err_at(ld, max, "%s.backoff.max (%s) is shorter than backoff.initial (%s)", prefix,
                      a, b);
    else if (initial)
        config_err_at(
            ld, initial,
            "%s.backoff.initial (%s) is longer than backoff.max (%s) (set %s.backoff.max to at "
            "least %s)",
            prefix, b, a, prefix, b);
}

void config_check_keep(struct loader *ld, const char *prefix, const yaml_node_t *bodies,
                       const yaml_node_t *transactions, long long bodies_ms,
                       long long transactions_ms)
{
    char a[32], b[32];
    if (bodies && transactions && bodies_ms > 0 && transactions_ms > 0 &&
        transactions_ms < bodies_ms)
        config_err_at(
            ld, transactions,
            "%skeep_transactions (%s) is shorter than %skeep_bodies (%s) (a transaction is "
            "removed with its bodies: keep transactions at least as long)",
            prefix, config_fmt_duration(a, sizeof a, transactions_ms), prefix,
            config_fmt_duration(b, sizeof b, bodies_ms));
}

/* A channel's retry: the delivery.* rows give the ranges; each key given replaces
 * one value of *r (the global policy). A key whose value is refused leaves the
 * global one, and the cross check only runs when both durations were read. */
void config_load_retry_policy(struct loader *ld, const char *prefix,
                              const yaml_node_t *max_attempts, const yaml_node_t *max_age,
                              const yaml_node_t *backoff, struct config_retry *r)
{
    static const struct key_spec backoff_keys[] = {{"initial", false}, {"max", false}};
    const struct config_key *ka = config_key_find("delivery.max_attempts");
    const struct config_key *kg = config_key_find("delivery.max_age");
    const struct config_key *ki = config_key_find("delivery.backoff.initial");
    const struct config_key *km = config_key_find("delivery.backoff.max");
    char what[64];
    if (max_attempts) {
        snprintf(what, sizeof what, "%s.max_attempts", prefix);
        config_get_int(ld, max_attempts, what, (int)ka->min, (int)ka->max, &r->max_attempts);
    }
    if (max_age) {
        snprintf(what, sizeof what, "%s.max_age", prefix);
        config_get_duration_in(ld, max_age, what, kg->range, &r->max_age_ms);
    }
    struct found g[2];
    snprintf(what, sizeof what, "%s.backoff", prefix);
    if (backoff == NULL || !MAP_KEYS(ld, backoff, what, backoff_keys, g))
        return;
    bool ok = true;
    if (g[0].val) {
        snprintf(what, sizeof what, "%s.backoff.initial", prefix);
        ok = config_get_duration_in(ld, g[0].val, what, ki->range, &r->backoff_initial_ms);
    }
    if (g[1].val) {
        snprintf(what, sizeof what, "%s.backoff.max", prefix);
        ok = config_get_duration_in(ld, g[1].val, what, km->range, &r->backoff_max_ms) && ok;
    }
    if (ok)
        config_check_backoff(ld, prefix, g[0].val, g[1].val, r);
}

/* A channel's keep_bodies and keep_transactions (prefix ""): the retention.* rows
 * give the ranges; 0 or absent is the global value. */
void config_load_keep(struct loader *ld, const char *prefix, const yaml_node_t *bodies,
                      const yaml_node_t *transactions, long long *bodies_ms,
                      long long *transactions_ms)
{
    const struct config_key *kb = config_key_find("retention.keep_bodies");
    const struct config_key *kt = config_key_find("retention.keep_transactions");
    char what[64];
    long v = 0;
    bool ok = true;
    snprintf(what, sizeof what, "%skeep_bodies", prefix);
    if (bodies) {
        if (config_get_duration_in(ld, bodies, what, kb->range, &v))
            *bodies_ms = v;
        else
            ok = false;
    }
    snprintf(what, sizeof what, "%skeep_transactions", prefix);
    if (transactions) {
        if (config_get_duration_in(ld, transactions, what, kt->range, &v))
            *transactions_ms = v;
        else
            ok = false;
    }
    if (ok)
        config_check_keep(ld, prefix, bodies, transactions, *bodies_ms, *transactions_ms);
}

/* ------------------------------------------------------------------------------------
 * Reload
 * ------------------------------------------------------------------------------------ */

bool config_key_differs(const struct config *a, const struct config *b, const struct config_key *k)
{
    const void *x = cfield_of(a, k), *y = cfield_of(b, k);
    switch (k->type) {
    case CONFIG_KEY_STRING:
    case CONFIG_KEY_PATH: {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        return (s == NULL) != (t == NULL) || (s != NULL && strcmp(s, t) != 0);
    }
    case CONFIG_KEY_INT:
    case CONFIG_KEY_ENUM: return *(const int *)x != *(const int *)y;
    case CONFIG_KEY_UINT: return *(const unsigned *)x != *(const unsigned *)y;
    case CONFIG_KEY_DURATION: return *(const long *)x != *(const long *)y;
    case CONFIG_KEY_DURATION_LL: return *(const long long *)x != *(const long long *)y;
    case CONFIG_KEY_SIZE: return *(const size_t *)x != *(const size_t *)y;
    case CONFIG_KEY_HEADERS:
        if (a->n_redact_headers != b->n_redact_headers)
            return true;
        for (size_t i = 0; i < a->n_redact_headers; i++)
            if (strcmp(a->redact_headers[i], b->redact_headers[i]) != 0)
                return true;
        return false;
    case CONFIG_KEY_UNSUPPORTED: return false;
    }
    return false;
}

const char *config_needs_restart(const struct config *old, const struct config *next, char *buf,
                                 size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->reload || !config_key_differs(old, next, k))
            continue;
        int w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", k->name);
        if (w < 0 || (size_t)w >= size - len)
            break; /* as many names as fit */
        len += (size_t)w;
    }
    return len ? buf : NULL;
}

/* ------------------------------------------------------------------------------------
 * The key reference in docs/configuration.md
 * ------------------------------------------------------------------------------------ */

static void type_text(FILE *out, const struct config_key *k)
{
    switch (k->type) {
    case CONFIG_KEY_STRING:
        fprintf(out, "string, %snot empty", k->required ? "**required**, " : "");
        return;
    case CONFIG_KEY_PATH: fputs("path", out); return;
    case CONFIG_KEY_INT:
    case CONFIG_KEY_UINT: fprintf(out, "integer, %lld .. %lld", k->min, k->max); return;
    case CONFIG_KEY_DURATION:
    case CONFIG_KEY_DURATION_LL: fprintf(out, "duration, %s", k->range->text); return;
    case CONFIG_KEY_SIZE: {
        char lo[32], hi[32];
        if (k->max > 0)
            fprintf(out, "size, %s .. %s",
                    config_fmt_size(lo, sizeof lo, (unsigned long long)k->min),
                    config_fmt_size(hi, sizeof hi, (unsigned long long)k->max));
        else
            fputs("size, at least 1 byte", out);
        return;
    }
    case CONFIG_KEY_ENUM:
        for (size_t i = 0; k->choices[i]; i++)
            fprintf(out, "%s`%s`", i == 0 ? "" : k->choices[i + 1] ? ", " : " or ", k->choices[i]);
        return;
    case CONFIG_KEY_HEADERS: fputs("list of header names", out); return;
    case CONFIG_KEY_UNSUPPORTED: return;
    }
}

static void default_text(FILE *out, const struct config_key *k)
{
    char b[32];
    switch (k->type) {
    case CONFIG_KEY_STRING:
    case CONFIG_KEY_PATH:
    case CONFIG_KEY_HEADERS:
        if (k->def_str)
            fprintf(out, "`%s`", k->def_str);
        else
            fputs("—", out);
        return;
    case CONFIG_KEY_INT:
    case CONFIG_KEY_UINT: fprintf(out, "`%lld`", k->def); return;
    case CONFIG_KEY_DURATION:
    case CONFIG_KEY_DURATION_LL:
        fprintf(out, "`%s`", config_fmt_duration(b, sizeof b, k->def));
        return;
    case CONFIG_KEY_SIZE:
        fprintf(out, "`%s`", config_fmt_size(b, sizeof b, (unsigned long long)k->def));
        return;
    case CONFIG_KEY_ENUM: fprintf(out, "`%s`", k->choices[k->def]); return;
    case CONFIG_KEY_UNSUPPORTED: return;
    }
}

size_t config_keys_markdown(FILE *out, const char *section)
{
    size_t plen = strlen(section), n = 0;
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->type == CONFIG_KEY_UNSUPPORTED)
            continue;
        /* section "delivery" holds delivery.*; section "" the top-level keys */
        if (plen ? strncmp(k->name, section, plen) != 0 || k->name[plen] != '.'
                 : strchr(k->name, '.') != NULL)
            continue;
        if (n++ == 0)
            fputs("| key | type | default | on reload | example | meaning |\n"
                  "|---|---|---|---|---|---|\n",
                  out);
        fprintf(out, "| `%s` | ", k->name);
        type_text(out, k);
        fputs(" | ", out);
        default_text(out, k);
        fprintf(out, " | %s | `%s` | %s |\n", k->reload ? "applies" : "restart", k->example,
                k->doc);
    }
    return n;
}
