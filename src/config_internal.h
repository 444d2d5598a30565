/*
 * config_internal.h - what the files of the configuration loader share: the loader
 * state, its diagnostics, the YAML node and scalar helpers, and the entry point of
 * the mapping loader. Not an API: only src/config*.c include it.
 *
 *   src/config.c          hibus.yaml, clients.yaml, channel files, the snapshot
 *   src/config_mapping.c  mapping files (mappings/NAME.yaml) and their CSV tables
 */
#ifndef HIBUS_CONFIG_INTERNAL_H
#define HIBUS_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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
};

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

/* Loads the mappings the channel file just read named for the first time. */
void config_load_pending_mappings(struct loader *ld);

#endif
