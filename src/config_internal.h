/*
 * config_internal.h - what the files of the configuration loader share: the loader
 * state, its diagnostics, the YAML node and scalar helpers, and the entry point of
 * the mapping loader. Not an API: only src/config*.c include it.
 *
 *   src/config.c          the loader, clients.yaml, the snapshot
 *   src/config_keys.c     the table of hibus.yaml keys: loading, defaults, reload, docs
 *   src/config_values.c   typed scalars: ${NAME} expansion, numbers, durations, sizes, names
 *   src/config_channel.c  channel files (channels/NAME.yaml)
 *   src/config_route.c    the routes: of a channel file
 *   src/config_mapping.c  mapping files (mappings/NAME.yaml) and their CSV tables
 */
#ifndef HIBUS_CONFIG_INTERNAL_H
#define HIBUS_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "hibus/config.h"
#include "hibus/mapping.h"

/* Hard limits: a configuration file, and one value once ${NAME} references are
 * expanded. */
#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_VALUE 8192
#define UID_EXPECTED "11 characters: a letter, then letters or digits"

struct pending_mapping {
    struct mapping *m;      /* owned by cfg->mappings */
    struct config_pos from; /* the first mapping: value that named it */
};

struct loader {
    struct config *cfg;
    struct hibus_diags *diags;
    size_t diags_start;   /* diags->n when loading began: more means the config is invalid */
    bool oom;             /* an allocation failed: the result is HIBUS_E_NOMEM */
    bool read_failed;     /* the last parse_file could not read its file */
    bool main_unreadable; /* ... and that file was hibus.yaml: HIBUS_E_IO */
    bool clients_loaded;  /* clients.yaml was read: references to roles/clients can be checked */
    const char *file;     /* file being read, a string owned by cfg->files */
    yaml_document_t *doc;
    /* Mappings named by the channel file being read and not loaded yet: they are
     * read after it (one document at a time), each at most once per config. */
    struct pending_mapping *pending;
    size_t n_pending, cap_pending;
    /* Environment variables found unset: each is reported once, where first met. */
    char unset[16][64];
    size_t n_unset;
    /* The file "environment" beside hibus.yaml (the service's, as systemd's
     * EnvironmentFile reads it): "NAME=value" each, for the ${NAME} the process's
     * own environment does not set. NULL when there is none (config_read_env_file). */
    char **env_file;
    size_t n_env_file;
    char *env_file_path;
};

/* Reads dir/environment into ld->env_file, when it exists and hibus may read it. */
void config_read_env_file(struct loader *ld, const char *dir);
void config_free_env_file(struct loader *ld);

/* A key allowed in a mapping node, and what config_map_keys found for it. */
struct key_spec {
    const char *name;
    bool required;
};

struct found {
    yaml_node_t *key;
    yaml_node_t *val;
};

/* Diagnostics, as file:line:col: message. */
void config_verr_pos(struct loader *ld, const char *file, int line, int col, const char *fmt,
                     va_list ap);
void config_err_pos(struct loader *ld, const char *file, int line, int col, const char *fmt, ...)
    HIBUS_PRINTF(5, 6);
void config_warn_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);
void config_err_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);
/* Sorts the diagnostics from start on by file (in reading order), then position. */
void config_sort_diags_by_file(struct loader *ld, size_t start);

/* Memory: failures set ld->oom. */
char *config_xstrdup(struct loader *ld, const char *s);
bool config_grow(struct loader *ld, void **v, size_t *cap, size_t n, size_t size);

/* Nodes and scalars. */
struct config_pos config_pos_of(const struct loader *ld, const yaml_node_t *n);
yaml_node_t *config_node(const struct loader *ld, yaml_node_item_t i);
const char *config_kind_name(const yaml_node_t *n);
const char *config_scalar_raw(const yaml_node_t *n);
bool config_is_null(const yaml_node_t *n);
bool config_has_ctl(const char *s);
bool config_expect_mapping(struct loader *ld, const yaml_node_t *n, const char *what);
bool config_map_keys(struct loader *ld, const yaml_node_t *map, const char *where,
                     const struct key_spec *keys, size_t nkeys, struct found *found);
#define MAP_KEYS(ld, map, where, table, found)                                                     \
    config_map_keys(ld, map, where, table, sizeof(table) / sizeof(table[0]), found)

/* Typed values (${NAME} expanded); false after reporting a problem. */
bool config_get_string(struct loader *ld, const yaml_node_t *n, const char *what, bool nonempty,
                       char **out);
int config_get_enum(struct loader *ld, const yaml_node_t *n, const char *what,
                    const char *const *names);
/* A mapping's target of kind k: a UID under the UID scheme, else any identifier. */
bool config_get_target(struct loader *ld, const yaml_node_t *n, const char *what,
                       const struct mapping *m, enum mapping_kind k, char **out);
/* "a, b, c" of a NULL-terminated list, into buf. */
const char *config_join_names(char *buf, size_t size, const char *const *names);
/* The id schemes a mapping or route may name: {"UID", "CODE", NULL}. */
extern const char *const config_id_schemes[];

/* Files. */
typedef void (*file_loader)(struct loader *ld, yaml_node_t *root, void *arg);
const char *config_add_file(struct loader *ld, char *path);
char *config_dir_of(struct loader *ld, const char *path);
char *config_path_join(struct loader *ld, const char *dir, const char *name);
bool config_load_file(struct loader *ld, char *path, const struct config_pos *from, file_loader fn,
                      void *arg);

/* The retry keys of delivery: and of a channel's retry: (max_attempts, max_age,
 * backoff). */
enum { K_RY_MAX_ATTEMPTS, K_RY_MAX_AGE, K_RY_BACKOFF };
extern const struct key_spec config_retry_keys[3];

/* A list of strings. check (may be NULL) normalises an item in place and returns NULL,
 * or returns the noun for the message ("HTTP method") when the item is invalid.
 * exists (may be NULL) checks that a reference (a role, a client id) is defined. */
typedef const char *(*item_check)(char *s);

struct list_spec {
    const char *what; /* "match.methods" */
    item_check check;
    const char *hint; /* appended to an invalid item's message in parentheses, or NULL */
    bool (*exists)(const struct config *cfg, const char *s);
    const char *ref_kind; /* "role": "unknown role \"x\"" */
    bool unique;          /* a repeated item is an error */
};

/* Lists, typed values, checks of list items, parsing, and the pieces of hibus.yaml
 * and clients.yaml that channel files use too (all defined in config.c). */
void config_free_strv(char **v, size_t n);
bool config_expect_list(struct loader *ld, const yaml_node_t *n, const char *what);
size_t config_list_len(const yaml_node_t *n);
yaml_node_t *config_list_item(const struct loader *ld, const yaml_node_t *n, size_t i);
const struct found *config_exactly_one(struct loader *ld, const struct found *f, size_t first,
                                       size_t last, const struct key_spec *keys, const char *where,
                                       const char *choices);
bool config_is_name_char(char c);
char *config_scalar_dup(struct loader *ld, const yaml_node_t *n, const char *what);
bool config_get_int(struct loader *ld, const yaml_node_t *n, const char *what, int min, int max,
                    int *out);
bool config_get_bool(struct loader *ld, const yaml_node_t *n, const char *what, bool *out);
/* The range a duration key accepts, with the words used in its messages. Most
 * keys take 1ms up to one day; the delivery keys that bound a whole transaction's
 * life take up to 30 days, and retention (where 0 means forever) up to 10 years. */
struct config_duration_range {
    long min, max;       /* milliseconds */
    const char *text;    /* "1ms .. 24h" */
    const char *example; /* "500ms, 30s, 2m or 1h" */
};

#define CONFIG_DAY_MS (24L * 3600 * 1000)

extern const struct config_duration_range config_dur_short, config_dur_long, config_dur_lease,
    config_dur_connect,
    config_dur_keep, config_dur_prune, config_dur_alert, config_dur_alert_off;
bool config_get_duration_in(struct loader *ld, const yaml_node_t *n, const char *what,
                            const struct config_duration_range *range, long *out);
bool config_get_long(struct loader *ld, const yaml_node_t *n, const char *what, long min, long max,
                     long *out);
bool config_get_size(struct loader *ld, const yaml_node_t *n, const char *what, size_t *out);
const char *config_check_header_name(char *s);
bool config_get_duration(struct loader *ld, const yaml_node_t *n, const char *what, long *out);
const char *config_fmt_duration(char *buf, size_t size, long long ms);
/* A size for messages and docs, in the largest binary unit that divides it:
 * "10MiB", "512KiB", "1000" (bytes). */
const char *config_fmt_size(char *buf, size_t size, unsigned long long bytes);
bool config_get_number(struct loader *ld, const yaml_node_t *n, const char *what, double min,
                       double *out);
void config_get_string_list(struct loader *ld, const yaml_node_t *n, const struct list_spec *spec,
                            char ***v, size_t *count);
bool config_is_token(const char *s, size_t n);
const char *config_check_method(char *s);
const char *config_check_content_type(char *s);
const char *config_check_name(char *s);
const char *config_check_measure(char *s);
const char *config_check_when(char *s);
/* file opened for reading when it is a regular file of at most max bytes (its size
 * in *size); else NULL with *why saying what it is or the error. A FIFO or device is
 * never read, so it cannot hang a load or a reload. */
/* What a file that is not a regular one is ("it is a FIFO ..."), or NULL. */
struct stat;
const char *config_not_regular(const struct stat *st);
FILE *config_open_regular(const char *file, size_t max, size_t *size, const char **why);
yaml_node_t *config_parse_file(struct loader *ld, const char *file, const struct config_pos *from,
                               yaml_document_t *doc);
/* hibus.yaml (config_keys.c): the defaults of every key, then the file itself.
 * The positions of clients: and channels: are kept for messages about the files
 * they name (file == NULL: not given). */
struct config_main_refs {
    struct config_pos clients_pos, channels_pos, tls_cert_pos, tls_key_pos, tls_client_ca_pos,
        admin_users_pos, admin_port_pos;
};
void config_set_defaults(struct loader *ld, struct config *cfg);
void config_load_main(struct loader *ld, yaml_node_t *root, void *arg);
/* max_attempts, max_age and backoff: { initial, max } of a channel's retry:, over
 * what *r already holds (the global policy). prefix names the mapping in messages. */
void config_load_retry_policy(struct loader *ld, const char *prefix,
                              const yaml_node_t *max_attempts, const yaml_node_t *max_age,
                              const yaml_node_t *backoff, struct config_retry *r);
/* keep_bodies and keep_transactions of a channel (prefix ""). */
void config_load_keep(struct loader *ld, const char *prefix, const yaml_node_t *bodies,
                      const yaml_node_t *transactions, long long *bodies_ms,
                      long long *transactions_ms);
/* backoff.max >= backoff.initial; keep_transactions >= keep_bodies (unless either is
 * 0, forever). The problem is reported at the key given (NULL: not given). */
/* A warning at `at` (max_attempts) when that count would likely end the retries
 * long before max_age. */
void config_check_attempts(struct loader *ld, const char *prefix, const yaml_node_t *at,
                           const struct config_retry *r);
void config_check_backoff(struct loader *ld, const char *prefix, const yaml_node_t *initial,
                          const yaml_node_t *max, const struct config_retry *r);
void config_check_keep(struct loader *ld, const char *prefix, const yaml_node_t *bodies,
                       const yaml_node_t *transactions, long long bodies_ms,
                       long long transactions_ms);
bool config_role_declared(const struct config *cfg, const char *role);
bool config_client_exists(const struct config *cfg, const char *id);

/* Channel files (config_channel.c): one file, and the id schemes of every dhis2
 * route against its mapping's, once all channels are loaded. */
void config_load_channel(struct loader *ld, yaml_node_t *root, void *arg);
/* A channel's routes: list (config_route.c). */
void config_load_routes(struct loader *ld, yaml_node_t *n, struct config_channel *ch);
void config_settle_id_schemes(struct loader *ld);
/* Is z an IANA time zone name of the time zone database ($TZDIR, else
 * /usr/share/zoneinfo; any well-formed name when there is none)? *dir: the
 * directory looked in, NULL for a malformed name (src/config_poll.c). */
bool config_timezone_known(const char *z, const char **dir);
/* The defaults of aggregate: that depend on a mapping (its period_type). */
void config_settle_aggregates(struct loader *ld);
/* A route's auth: and tls: (config_route.c), which a poll: source takes too; where
 * names the mapping in messages ("routes[0].auth", "poll.auth"). */
void config_load_auth(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r);
void config_load_tls(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r);
/* An absolute http:// or https:// URL without user name or password. */
bool config_get_http_url(struct loader *ld, const yaml_node_t *n, const char *what, char **out);
void config_route_free(struct config_route *r);
/* A channel's poll: (config_poll.c); NULL after reporting a problem. */
struct config_poll *config_load_poll(struct loader *ld, yaml_node_t *n);
void config_poll_free(struct config_poll *p);

/* Mapping files (config_mapping.c): the mappings the channel file just read named
 * for the first time. */
void config_load_pending_mappings(struct loader *ld);

#endif
