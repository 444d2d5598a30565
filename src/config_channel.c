/*
 * config_channel.c - channel files (channels/NAME.yaml) for the configuration loader
 * (see config_internal.h): match rules, allow lists, mode and retry, transform,
 * quality rules, unmapped policy, retention, and the checks that need a whole
 * channel (a dhis2 route needs a mapping; the routes fit in delivery.lease; the id
 * schemes of its dhis2 routes agree with the mapping's: config_settle_id_schemes,
 * run once every channel is loaded). Its routes: are read by config_route.c.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "hibus/quality.h"
#include "hibus/readers.h"
#include "hibus/writers.h"

/* ------------------------------------------------------------------------------------
 * Channel files
 * ------------------------------------------------------------------------------------ */

enum {
    K_CH_NAME,
    K_CH_DESCRIPTION,
    K_CH_ENABLED,
    K_CH_PRIORITY,
    K_CH_MATCH,
    K_CH_ALLOW,
    K_CH_MODE,
    K_CH_RETRY,
    K_CH_KEEP_BODIES,
    K_CH_KEEP_TRANSACTIONS,
    K_CH_TRANSFORM,
    K_CH_AGGREGATE,
    K_CH_UNMAPPED,
    K_CH_ROUTES,
    K_CH_POLL
};
static const struct key_spec channel_keys[] = {
    [K_CH_NAME] = {"name", true},
    [K_CH_DESCRIPTION] = {"description", false},
    [K_CH_ENABLED] = {"enabled", false},
    [K_CH_PRIORITY] = {"priority", false},
    [K_CH_MATCH] = {"match", false}, /* required unless poll: (checked below) */
    [K_CH_ALLOW] = {"allow", false},
    [K_CH_MODE] = {"mode", false},
    [K_CH_RETRY] = {"retry", false},
    [K_CH_KEEP_BODIES] = {"keep_bodies", false},
    [K_CH_KEEP_TRANSACTIONS] = {"keep_transactions", false},
    [K_CH_TRANSFORM] = {"transform", false},
    [K_CH_AGGREGATE] = {"aggregate", false},
    [K_CH_UNMAPPED] = {"unmapped", false},
    [K_CH_ROUTES] = {"routes", true},
    [K_CH_POLL] = {"poll", false},
};

enum { K_MA_PATH, K_MA_PATH_PREFIX, K_MA_PATH_REGEX, K_MA_METHODS, K_MA_CONTENT_TYPES, K_MA_JSON };
static const struct key_spec match_keys[] = {
    [K_MA_PATH] = {"path", false},
    [K_MA_PATH_PREFIX] = {"path_prefix", false},
    [K_MA_PATH_REGEX] = {"path_regex", false},
    [K_MA_METHODS] = {"methods", false},
    [K_MA_CONTENT_TYPES] = {"content_types", false},
    [K_MA_JSON] = {"json", false},
};

enum { K_AL_ROLES, K_AL_CLIENTS };
static const struct key_spec allow_keys[] = {
    [K_AL_ROLES] = {"roles", false},
    [K_AL_CLIENTS] = {"clients", false},
};

enum { K_T_READER, K_T_MAPPING, K_T_QUALITY, K_T_WRITER, K_T_LOSSES };
static const struct key_spec transform_keys[] = {
    [K_T_READER] = {"reader", true},    [K_T_MAPPING] = {"mapping", false},
    [K_T_QUALITY] = {"quality", false}, [K_T_WRITER] = {"writer", false},
    [K_T_LOSSES] = {"losses", false},
};

enum { K_Q_RULE, K_Q_ACTION, K_Q_TOLERANCE, K_Q_MAX, K_Q_MEASURES };
static const struct key_spec rule_keys[] = {
    [K_Q_RULE] = {"rule", true},
    [K_Q_ACTION] = {"action", false},
    [K_Q_TOLERANCE] = {"tolerance", false},
    [K_Q_MAX] = {"max", false},
    [K_Q_MEASURES] = {"measures", false},
};

const char *const config_id_schemes[] = {"UID", "CODE", NULL};
static const char *const rule_actions[] = {"reject", "warn", NULL};
static const char *const unmapped_policies[] = {"reject", "skip", NULL};

static void load_path(struct loader *ld, const yaml_node_t *n, enum config_path_kind kind,
                      struct config_channel *ch)
{
    static const char *const names[] = {
        [CONFIG_PATH_EXACT] = "match.path",
        [CONFIG_PATH_PREFIX] = "match.path_prefix",
        [CONFIG_PATH_REGEX] = "match.path_regex",
    };
    if (!config_get_string(ld, n, names[kind], true, &ch->path))
        return;
    ch->path_kind = kind;
    if (kind != CONFIG_PATH_REGEX) {
        if (ch->path[0] != '/')
            config_err_at(ld, n, "%s must start with \"/\", got \"%s\"", names[kind], ch->path);
        return;
    }
    /* compiled here only to report errors: the kept copy is compiled once the channel
     * array is final (see compile_channels) */
    regex_t re;
    int rc = regcomp(&re, ch->path, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &re, msg, sizeof msg);
        config_err_at(ld, n, "invalid regular expression \"%s\" in match.path_regex: %s", ch->path,
                      msg);
        return;
    }
    regfree(&re);
}

/* The router compares at most this much (router.c's buffers): a longer path segment
 * or value could never match, so it is refused here. */
#define JSON_MATCH_MAX_SEGMENT 255
#define JSON_MATCH_MAX_VALUE 1023

/* "report.kind": non-empty names separated by single dots. */
static bool is_json_path(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n == 0)
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

static bool json_path_segments_fit(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n > JSON_MATCH_MAX_SEGMENT)
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

/* match.json: { dotted.path: expected text, ... }. Keys are taken as written (keys
 * are never ${NAME}-expanded); values are scalars, compared as text. */
static void load_json_match(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!config_expect_mapping(ld, n, "match.json") || n->type != YAML_MAPPING_NODE)
        return;
    yaml_node_pair_t *first = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
    if (top == first)
        return;
    ch->json_match = calloc((size_t)(top - first), sizeof *ch->json_match);
    if (ch->json_match == NULL) {
        ld->oom = true;
        return;
    }
    for (yaml_node_pair_t *p = first; p < top && !ld->oom; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        yaml_node_t *v = config_node(ld, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            config_err_at(ld, k, "expected a scalar key in match.json, got %s",
                          config_kind_name(k));
            continue;
        }
        const char *path = config_scalar_raw(k);
        if (strlen(path) != k->data.scalar.length || !is_json_path(path)) {
            config_err_at(
                ld, k,
                "invalid path \"%s\" in match.json (expected names separated by \".\", like "
                "report.kind)",
                path);
            continue;
        }
        if (!json_path_segments_fit(path)) {
            config_err_at(ld, k, "a name in match.json path \"%s\" is too long (at most %d bytes)",
                          path, JSON_MATCH_MAX_SEGMENT);
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = first; q < p && !dup; q++) {
            yaml_node_t *qk = config_node(ld, q->key);
            if (qk->type == YAML_SCALAR_NODE && strcmp(config_scalar_raw(qk), path) == 0) {
                config_err_at(
                    ld, k, "duplicate key \"%s\" in match.json (first defined at %s:%d:%d)", path,
                    ld->file, (int)qk->start_mark.line + 1, (int)qk->start_mark.column + 1);
                dup = true;
            }
        }
        if (dup)
            continue;
        char what[JSON_MATCH_MAX_SEGMENT + 64];
        snprintf(what, sizeof what, "match.json \"%s\"", path);
        if (v->type != YAML_SCALAR_NODE || config_is_null(v)) {
            config_err_at(ld, v, "expected a string, number or boolean for %s, got %s", what,
                          v->type == YAML_SCALAR_NODE ? "null" : config_kind_name(v));
            continue;
        }
        char *equals = config_scalar_dup(ld, v, what);
        if (equals == NULL)
            continue;
        if (strlen(equals) > JSON_MATCH_MAX_VALUE) {
            config_err_at(ld, v, "value of %s is too long (at most %d bytes)", what,
                          JSON_MATCH_MAX_VALUE);
            free(equals);
            continue;
        }
        struct config_json_match *jm = &ch->json_match[ch->n_json_match];
        jm->path = config_xstrdup(ld, path);
        jm->equals = equals;
        ch->n_json_match++; /* counted even without memory: config_free frees both */
    }
}

static void load_match(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    struct found f[sizeof match_keys / sizeof match_keys[0]];
    if (!MAP_KEYS(ld, n, "match", match_keys, f))
        return;

    static const enum config_path_kind kinds[] = {CONFIG_PATH_EXACT, CONFIG_PATH_PREFIX,
                                                  CONFIG_PATH_REGEX};
    static const char choices[] = "path, path_prefix or path_regex";
    const struct found *one =
        config_exactly_one(ld, f, K_MA_PATH, K_MA_PATH_REGEX, match_keys, "match", choices);
    if (one == NULL)
        config_err_at(ld, n, "match needs exactly one of %s", choices);
    else
        load_path(ld, one->val, kinds[one - f], ch);
    static const struct list_spec methods = {
        "match.methods", config_check_method, NULL, NULL, NULL, false};
    static const struct list_spec types = {"match.content_types",
                                           config_check_content_type,
                                           "expected type/subtype, like application/json",
                                           NULL,
                                           NULL,
                                           false};
    if (f[K_MA_METHODS].val)
        config_get_string_list(ld, f[K_MA_METHODS].val, &methods, &ch->methods, &ch->n_methods);
    if (f[K_MA_CONTENT_TYPES].val)
        config_get_string_list(ld, f[K_MA_CONTENT_TYPES].val, &types, &ch->content_types,
                               &ch->n_content_types);
    if (f[K_MA_JSON].val)
        load_json_match(ld, f[K_MA_JSON].val, ch);
}

static void load_allow(struct loader *ld, yaml_node_t *n, yaml_node_t *root,
                       struct config_channel *ch)
{
    struct found f[2];
    if (n && !MAP_KEYS(ld, n, "allow", allow_keys, f))
        return;
    if (n == NULL)
        memset(f, 0, sizeof f);
    /* without clients.yaml every reference would look unknown: its own error is enough */
    struct list_spec roles = {"allow.roles",
                              config_check_name,
                              "must not be empty",
                              ld->clients_loaded ? config_role_declared : NULL,
                              "role",
                              false};
    struct list_spec clients = {"allow.clients",
                                config_check_name,
                                "must not be empty",
                                ld->clients_loaded ? config_client_exists : NULL,
                                "client",
                                false};
    if (f[K_AL_ROLES].val)
        config_get_string_list(ld, f[K_AL_ROLES].val, &roles, &ch->allow_roles, &ch->n_allow_roles);
    if (f[K_AL_CLIENTS].val)
        config_get_string_list(ld, f[K_AL_CLIENTS].val, &clients, &ch->allow_clients,
                               &ch->n_allow_clients);
    /* only when the lists themselves were fine: otherwise that error says enough */
    bool lists_ok =
        (f[K_AL_ROLES].val == NULL || config_list_len(f[K_AL_ROLES].val) == ch->n_allow_roles) &&
        (f[K_AL_CLIENTS].val == NULL ||
         config_list_len(f[K_AL_CLIENTS].val) == ch->n_allow_clients);
    if (lists_ok && ch->n_allow_roles == 0 && ch->n_allow_clients == 0)
        config_err_at(
            ld, n ? n : root,
            "channel allows no client (add role names under allow.roles, or client ids under "
            "allow.clients)");
}

/* Mapping names become file names: no directories, no hidden files. */
static bool is_mapping_name(const char *s)
{
    if (s[0] == '\0' || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!config_is_name_char(*s) && *s != '-' && *s != '.')
            return false;
    return true;
}

/* The mapping called name: the one already named by another channel, or a new
 * one (read once the current channel file is done). NULL after reporting that
 * its file is missing. */
static struct mapping *use_mapping(struct loader *ld, const yaml_node_t *n, const char *name)
{
    struct config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_mappings; i++)
        if (strcmp(cfg->mappings[i]->name, name) == 0)
            return cfg->mappings[i];
    if (cfg->mappings_dir == NULL) /* out of memory earlier */
        return NULL;
    size_t len = strlen(name) + sizeof ".yaml";
    char *file_name = malloc(len);
    if (file_name == NULL) {
        ld->oom = true;
        return NULL;
    }
    snprintf(file_name, len, "%s.yaml", name);
    char *path = config_path_join(ld, cfg->mappings_dir, file_name);
    free(file_name);
    if (path == NULL)
        return NULL;
    /* checked here, so that the message sits with the channel file's own ones */
    struct stat st;
    const char *why = stat(path, &st) != 0 ? strerror(errno) : config_not_regular(&st);
    if (why != NULL) {
        config_err_at(ld, n, "mapping \"%s\" not found: could not read file \"%s\": %s", name, path,
                      why);
        free(path);
        return NULL;
    }
    struct mapping *m = calloc(1, sizeof *m);
    size_t cap = cfg->n_mappings;
    if (m == NULL || (m->name = config_xstrdup(ld, name)) == NULL ||
        !config_grow(ld, (void **)&cfg->mappings, &cap, cfg->n_mappings, sizeof *cfg->mappings)) {
        ld->oom = true;
        free(path);
        if (m)
            free(m->name);
        free(m);
        return NULL;
    }
    m->file = path;
    cfg->mappings[cfg->n_mappings++] = m;
    if (!config_grow(ld, (void **)&ld->pending, &ld->cap_pending, ld->n_pending,
                     sizeof *ld->pending))
        return NULL;
    ld->pending[ld->n_pending++] = (struct pending_mapping){m, config_pos_of(ld, n)};
    return m;
}

static bool get_rule_kind(struct loader *ld, const yaml_node_t *n, const char *what,
                          enum quality_kind *out)
{
    char *s = config_scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    bool ok = quality_kind_parse(s, out);
    if (!ok) {
        const char *names[QUALITY_NUMERIC + 2];
        for (int k = QUALITY_NON_NEGATIVE; k <= QUALITY_NUMERIC; k++)
            names[k] = quality_kind_name((enum quality_kind)k);
        names[QUALITY_NUMERIC + 1] = NULL;
        char list[256];
        config_err_at(ld, n, "unknown quality rule \"%s\" (expected one of: %s)", s,
                      config_join_names(list, sizeof list, names));
    }
    free(s);
    return ok;
}

/* One entry of transform.quality: a rule name, or { rule, action, tolerance, max,
 * measures }. q is zeroed and counted by the caller, so that config_free frees
 * whatever was set even when the entry is invalid. */
static void load_rule(struct loader *ld, yaml_node_t *n, size_t idx, struct quality_rule *q)
{
    char where[48], what[80];
    snprintf(where, sizeof where, "transform.quality[%zu]", idx);
    q->action = QUALITY_REJECT;
    if (n->type == YAML_SCALAR_NODE && !config_is_null(n)) {
        if (get_rule_kind(ld, n, where, &q->kind) && q->kind == QUALITY_VALUE_CEILING)
            config_err_at(
                ld, n,
                "rule value_ceiling needs a ceiling (write it as { rule: value_ceiling, max: "
                "100000 })");
        return;
    }
    struct found f[sizeof rule_keys / sizeof rule_keys[0]];
    if (!MAP_KEYS(ld, n, where, rule_keys, f))
        return;
    snprintf(what, sizeof what, "%s.rule", where);
    bool known = f[K_Q_RULE].val && get_rule_kind(ld, f[K_Q_RULE].val, what, &q->kind);
    const char *rule = known ? quality_kind_name(q->kind) : NULL;
    if (f[K_Q_ACTION].val) {
        snprintf(what, sizeof what, "%s.action", where);
        int a = config_get_enum(ld, f[K_Q_ACTION].val, what, rule_actions);
        if (a >= 0)
            q->action = a == 1 ? QUALITY_WARN : QUALITY_REJECT;
    }
    if (f[K_Q_TOLERANCE].key) {
        snprintf(what, sizeof what, "%s.tolerance", where);
        if (known && q->kind != QUALITY_BALANCE)
            config_err_at(ld, f[K_Q_TOLERANCE].key,
                          "tolerance applies only to the balance rule, not to %s", rule);
        else
            config_get_number(ld, f[K_Q_TOLERANCE].val, what, 0, &q->tolerance);
    }
    if (known && q->kind == QUALITY_VALUE_CEILING && f[K_Q_MAX].key == NULL)
        config_err_at(ld, n,
                      "missing required key \"max\" in %s (rule value_ceiling needs a ceiling)",
                      where);
    if (f[K_Q_MAX].key) {
        snprintf(what, sizeof what, "%s.max", where);
        if (known && q->kind != QUALITY_VALUE_CEILING)
            config_err_at(ld, f[K_Q_MAX].key,
                          "max applies only to the value_ceiling rule, not to %s", rule);
        else
            config_get_number(ld, f[K_Q_MAX].val, what, 0, &q->max);
    }
    if (f[K_Q_MEASURES].key) {
        snprintf(what, sizeof what, "%s.measures", where);
        if (known && q->kind != QUALITY_REQUIRED_MEASURES && q->kind != QUALITY_VALUE_CEILING) {
            config_err_at(
                ld, f[K_Q_MEASURES].key,
                "measures applies only to the required_measures and value_ceiling rules, not "
                "to %s",
                rule);
        } else if (!config_expect_list(ld, f[K_Q_MEASURES].val, what)) {
            /* reported */
        } else if (config_list_len(f[K_Q_MEASURES].val) == 0) {
            config_err_at(ld, f[K_Q_MEASURES].val,
                          "%s must not be empty (leave it out for the rule's default measures)",
                          what);
        } else {
            char hint[256] = "expected one of: ";
            size_t used = strlen(hint);
            config_join_names(hint + used, sizeof hint - used, REPORT_MEASURES);
            struct list_spec spec = {what, config_check_measure, hint, NULL, "measure", true};
            config_get_string_list(ld, f[K_Q_MEASURES].val, &spec, &q->measures, &q->n_measures);
        }
    }
}

static void load_quality(struct loader *ld, yaml_node_t *n, struct config_transform *t)
{
    if (!config_expect_list(ld, n, "transform.quality"))
        return;
    size_t len = config_list_len(n);
    if (len == 0)
        return;
    t->quality = calloc(len, sizeof *t->quality);
    if (t->quality == NULL) {
        ld->oom = true;
        return;
    }
    for (size_t i = 0; i < len && !ld->oom; i++)
        load_rule(ld, config_list_item(ld, n, i), i, &t->quality[t->n_quality++]);
}

enum { K_L_REASONS, K_L_CATEGORIES };
static const struct key_spec losses_keys[] = {
    [K_L_REASONS] = {"reasons", false},
    [K_L_CATEGORIES] = {"categories", false},
};

/* OpenLMIS's ReasonCategory values (openlmis-requisition,
 * src/main/java/org/openlmis/requisition/dto/ReasonCategory.java). */
static const char *check_reason_category(char *s)
{
    static const char *const cats[] = {"TRANSFER", "ADJUSTMENT", "PHYSICAL_INVENTORY",
                                       "AGGREGATION", NULL};
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    for (size_t i = 0; cats[i] != NULL; i++)
        if (strcmp(cats[i], s) == 0)
            return NULL;
    return "reason category";
}

static const char *check_nonempty(char *s)
{
    return s[0] != '\0' ? NULL : "reason name";
}

/* Appends the NULL that struct reader_options expects. */
static char **null_terminate(struct loader *ld, char **v, size_t n)
{
    char **t = realloc(v, (n + 1) * sizeof *t);
    if (t == NULL) {
        ld->oom = true;
        config_free_strv(v, n);
        return NULL;
    }
    t[n] = NULL;
    return t;
}

/* transform.losses: { reasons: [NAME...], categories: [CATEGORY...] }. */
static void load_losses(struct loader *ld, yaml_node_t *n, struct config_transform *t)
{
    struct found f[sizeof losses_keys / sizeof losses_keys[0]];
    if (!MAP_KEYS(ld, n, "transform.losses", losses_keys, f))
        return;
    if (f[K_L_REASONS].val == NULL && f[K_L_CATEGORIES].val == NULL) {
        config_err_at(ld, n, "transform.losses needs reasons, categories or both");
        return;
    }
    size_t nr = 0, nc = 0;
    struct list_spec rs = {"transform.losses.reasons", check_nonempty, NULL, NULL, "reason", true};
    struct list_spec cs = {"transform.losses.categories",
                           check_reason_category,
                           "expected TRANSFER, ADJUSTMENT, PHYSICAL_INVENTORY or AGGREGATION",
                           NULL,
                           "category",
                           true};
    if (f[K_L_REASONS].val)
        config_get_string_list(ld, f[K_L_REASONS].val, &rs, &t->loss_reasons, &nr);
    if (f[K_L_CATEGORIES].val)
        config_get_string_list(ld, f[K_L_CATEGORIES].val, &cs, &t->loss_categories, &nc);
    t->loss_reasons = null_terminate(ld, t->loss_reasons, nr);
    t->loss_categories = null_terminate(ld, t->loss_categories, nc);
    t->reader_opts.loss_reasons = (const char *const *)t->loss_reasons;
    t->reader_opts.loss_categories = (const char *const *)t->loss_categories;
}

/* What load_transform saw, for the checks that need the routes as well. */
struct transform_seen {
    yaml_node_t *key;     /* transform: */
    yaml_node_t *mapping; /* transform.mapping: value, or NULL */
};

static void load_transform(struct loader *ld, yaml_node_t *key, yaml_node_t *n,
                           struct config_channel *ch, struct transform_seen *seen)
{
    struct found f[sizeof transform_keys / sizeof transform_keys[0]];
    if (!MAP_KEYS(ld, n, "transform", transform_keys, f))
        return;
    struct config_transform *t = &ch->transform;
    char list[256];
    ch->has_transform = true;
    t->reader_opts.max_values = ld->cfg->max_values; /* hibus.yaml is read before channels */
    seen->key = key;
    seen->mapping = f[K_T_MAPPING].val;
    if (f[K_T_READER].val &&
        config_get_string(ld, f[K_T_READER].val, "transform.reader", true, &t->reader) &&
        !reader_known(t->reader) && !agg_reader_known(t->reader)) {
        char events[128];
        config_err_at(ld, f[K_T_READER].val,
                      "unknown reader \"%s\" (expected one of: %s; or, with aggregate:, one of: "
                      "%s)",
                      t->reader, config_join_names(list, sizeof list, READER_NAMES),
                      config_join_names(events, sizeof events, AGG_READER_NAMES));
    }
    char *name = NULL;
    if (f[K_T_MAPPING].val &&
        config_get_string(ld, f[K_T_MAPPING].val, "transform.mapping", true, &name)) {
        if (!is_mapping_name(name))
            config_err_at(
                ld, f[K_T_MAPPING].val,
                "invalid mapping name \"%s\" (expected the name of a file in the mappings "
                "directory, without .yaml: letters, digits, \"-\", \"_\" or \".\")",
                name);
        else
            t->mapping = use_mapping(ld, f[K_T_MAPPING].val, name);
        free(name);
    }
    if (f[K_T_QUALITY].val)
        load_quality(ld, f[K_T_QUALITY].val, t);
    if (f[K_T_LOSSES].val) {
        load_losses(ld, f[K_T_LOSSES].val, t);
        if (t->reader != NULL && strcmp(t->reader, "openlmis-requisition") != 0)
            config_err_at(ld, f[K_T_LOSSES].key,
                          "transform.losses applies only to the openlmis-requisition reader (this "
                          "channel's reader is %s)",
                          t->reader);
    }
    if (f[K_T_WRITER].val) {
        if (config_get_string(ld, f[K_T_WRITER].val, "transform.writer", true, &t->writer) &&
            !writer_known(t->writer))
            config_err_at(ld, f[K_T_WRITER].val, "unknown writer \"%s\" (expected one of: %s)",
                          t->writer, config_join_names(list, sizeof list, WRITER_NAMES));
    } else {
        t->writer = config_xstrdup(ld, "dhis2-datavalueset");
    }
}

enum {
    K_AG_PERIOD_TYPE,
    K_AG_CLOSE_AFTER,
    K_AG_TIMEZONE,
    K_AG_REASONS,
    K_AG_BY_REASON,
    K_AG_QUIET_PERIODS
};
static const struct key_spec aggregate_keys[] = {
    [K_AG_PERIOD_TYPE] = {"period_type", false}, [K_AG_CLOSE_AFTER] = {"close_after", false},
    [K_AG_TIMEZONE] = {"timezone", false},       [K_AG_REASONS] = {"reasons", false},
    [K_AG_BY_REASON] = {"by_reason", false},     [K_AG_QUIET_PERIODS] = {"quiet_periods", false},
};
enum { K_RE_NAME, K_RE_TYPE, K_RE_COUNTS_AS };
static const struct key_spec reason_keys[] = {
    [K_RE_NAME] = {"name", true},
    [K_RE_TYPE] = {"type", true},
    [K_RE_COUNTS_AS] = {"counts_as", false},
};

/* aggregate.reasons: { ID: { name, type: credit|debit, counts_as } }. counts_as
 * defaults to adjustment; received goes with credit, consumed and loss with debit. */
static void load_reasons(struct loader *ld, yaml_node_t *n, struct config_aggregate *a)
{
    if (!config_expect_mapping(ld, n, "aggregate.reasons") || n->type != YAML_MAPPING_NODE)
        return;
    static const char *const types[] = {"credit", "debit", NULL};
    static const char *const counts[] = {"received", "consumed", "loss", "adjustment", NULL};
    static const enum agg_kind kinds[] = {AGG_RECEIPT, AGG_ISSUE, AGG_LOSS, AGG_ADJUSTMENT};
    size_t cap = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        char *id = NULL;
        if (!config_get_string(ld, k, "aggregate.reasons key", true, &id))
            continue;
        if (agg_reason_find(a, id) != NULL) {
            config_err_at(ld, k, "reason \"%s\" appears twice in aggregate.reasons", id);
            free(id);
            continue;
        }
        char where[300];
        snprintf(where, sizeof where, "aggregate.reasons.%.200s", id);
        struct found f[sizeof reason_keys / sizeof reason_keys[0]];
        yaml_node_t *v = config_node(ld, p->value);
        char *name = NULL;
        int type = -1, as = 3;
        if (!MAP_KEYS(ld, v, where, reason_keys, f) || f[K_RE_NAME].val == NULL ||
            f[K_RE_TYPE].val == NULL ||
            !config_get_string(ld, f[K_RE_NAME].val, "name", true, &name) ||
            (type = config_get_enum(ld, f[K_RE_TYPE].val, "type", types)) < 0 ||
            (f[K_RE_COUNTS_AS].val &&
             (as = config_get_enum(ld, f[K_RE_COUNTS_AS].val, "counts_as", counts)) < 0)) {
            free(id);
            free(name);
            continue;
        }
        /* The name is the event's reason, which a report carries as a code (a measure
         * "losses:NAME" with aggregate.by_reason): the readers take at most 255 bytes. */
        if (strlen(name) > AGG_REASON_MAX) {
            config_err_at(ld, f[K_RE_NAME].val,
                          "the name of reason \"%s\" is too long (%zu bytes, at most %d)", id,
                          strlen(name), AGG_REASON_MAX);
            free(id);
            free(name);
            continue;
        }
        bool credit = type == 0;
        if ((kinds[as] == AGG_RECEIPT && !credit) ||
            ((kinds[as] == AGG_ISSUE || kinds[as] == AGG_LOSS) && credit)) {
            config_err_at(ld, f[K_RE_COUNTS_AS].val,
                          "reason \"%s\" is a %s but counts_as %s (received adds stock: credit; "
                          "consumed and loss take it away: debit)",
                          id, types[type], counts[as]);
            free(id);
            free(name);
            continue;
        }
        if (!config_grow(ld, (void **)&a->reasons, &cap, a->n_reasons, sizeof *a->reasons)) {
            free(id);
            free(name);
            return;
        }
        a->reasons[a->n_reasons++] =
            (struct agg_reason){.id = id, .name = name, .credit = credit, .counts_as = kinds[as]};
    }
}

/* aggregate: { period_type, close_after, timezone, reasons, by_reason }. by_reason is
 * off by default: its values are measures ("losses:Expired") a mapping written for the
 * totals does not have, which unmapped: reject would refuse. */
static void load_aggregate(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    struct found f[sizeof aggregate_keys / sizeof aggregate_keys[0]];
    struct config_aggregate *a = &ch->aggregate;
    a->on = true;
    a->period_type = PERIOD_MONTHLY;
    a->close_after_ms = CONFIG_DAY_MS;
    if (config_is_null(n)) /* aggregate: with nothing under it: the defaults */
        goto tz;
    if (!MAP_KEYS(ld, n, "aggregate", aggregate_keys, f))
        goto tz;
    char *s = NULL;
    if (f[K_AG_PERIOD_TYPE].val &&
        config_get_string(ld, f[K_AG_PERIOD_TYPE].val, "aggregate.period_type", true, &s)) {
        if (period_type_parse(s, &a->period_type))
            a->period_type_set = true;
        else
            config_err_at(ld, f[K_AG_PERIOD_TYPE].val,
                          "unknown period type \"%s\" (DHIS2's names: Daily, Weekly, Monthly, "
                          "Quarterly, Yearly, ...)",
                          s);
        free(s);
        s = NULL;
    }
    long ms;
    if (f[K_AG_CLOSE_AFTER].val &&
        config_get_duration_in(ld, f[K_AG_CLOSE_AFTER].val, "aggregate.close_after",
                               &config_dur_long, &ms))
        a->close_after_ms = ms;
    if (f[K_AG_TIMEZONE].val &&
        config_get_string(ld, f[K_AG_TIMEZONE].val, "aggregate.timezone", true, &s)) {
        const char *dir;
        if (!config_timezone_known(s, &dir)) {
            config_err_at(ld, f[K_AG_TIMEZONE].val,
                          "unknown time zone \"%s\" (an IANA name such as Africa/Nairobi, as "
                          "listed under /usr/share/zoneinfo)",
                          s);
            free(s);
            s = NULL;
        }
        a->timezone = s;
    }
    if (f[K_AG_REASONS].val)
        load_reasons(ld, f[K_AG_REASONS].val, a);
    if (f[K_AG_BY_REASON].val)
        config_get_bool(ld, f[K_AG_BY_REASON].val, "aggregate.by_reason", &a->by_reason);
    if (f[K_AG_QUIET_PERIODS].val) {
        static const char *const quiet[] = {"wait", "send", NULL};
        a->quiet_send =
            config_get_enum(ld, f[K_AG_QUIET_PERIODS].val, "aggregate.quiet_periods", quiet) == 1;
    }
tz:
    if (a->timezone == NULL)
        a->timezone = config_xstrdup(ld, "UTC");
}

/* An event reader needs aggregate:, and aggregate: an event reader and a mapping. */
static void check_aggregate(struct loader *ld, const struct found *agg, const struct found *tr,
                            struct config_channel *ch)
{
    const char *reader = ch->has_transform ? ch->transform.reader : NULL;
    bool events = reader != NULL && agg_reader_known(reader);
    if (ch->aggregate.on && !ch->has_transform)
        config_err_at(ld, agg->key,
                      "aggregate needs a transform with a stock event reader (stock-event or "
                      "openlmis-stock-event)");
    else if (ch->aggregate.on && reader != NULL && !events)
        config_err_at(ld, agg->key,
                      "aggregate needs a stock event reader (stock-event or openlmis-stock-event), "
                      "not %s",
                      reader);
    else if (!ch->aggregate.on && events)
        config_err_at(ld, tr->key,
                      "reader %s reads stock events, which only a channel with aggregate: can "
                      "take (add aggregate: to derive periodic reports from them)",
                      reader);
}

/* Once the mappings are read: an aggregate: without period_type makes the
 * periods of its mapping's period_type. */
void config_settle_aggregates(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    for (size_t c = 0; c < cfg->n_channels; c++) {
        struct config_channel *ch = &cfg->channels[c];
        const struct mapping *m = ch->has_transform ? ch->transform.mapping : NULL;
        if (ch->aggregate.on && m != NULL && !ch->aggregate.period_type_set && m->has_period_type)
            ch->aggregate.period_type = m->period_type;
    }
}

void config_load_channel(struct loader *ld, yaml_node_t *root, void *arg)
{
    (void)arg;
    struct config *cfg = ld->cfg;
    struct found f[sizeof channel_keys / sizeof channel_keys[0]];
    if (!MAP_KEYS(ld, root, NULL, channel_keys, f))
        return;

    size_t cap = cfg->n_channels;
    if (!config_grow(ld, (void **)&cfg->channels, &cap, cfg->n_channels, sizeof *cfg->channels))
        return;
    struct config_channel *ch = &cfg->channels[cfg->n_channels++];
    memset(ch, 0, sizeof *ch);
    ch->enabled = true;
    ch->priority = 100;
    ch->mode = CONFIG_MODE_SYNC;
    ch->path_kind = CONFIG_PATH_EXACT;
    ch->pos = config_pos_of(ld, root);

    if (f[K_CH_NAME].val && config_get_string(ld, f[K_CH_NAME].val, "name", true, &ch->name)) {
        ch->pos = config_pos_of(ld, f[K_CH_NAME].val);
        for (size_t i = 0; i + 1 < cfg->n_channels; i++) {
            const struct config_channel *o = &cfg->channels[i];
            if (o->name && strcmp(o->name, ch->name) == 0) {
                config_err_at(ld, f[K_CH_NAME].val,
                              "duplicate channel name \"%s\" (first defined at %s:%d:%d)", ch->name,
                              o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    if (f[K_CH_DESCRIPTION].val)
        config_get_string(ld, f[K_CH_DESCRIPTION].val, "description", false, &ch->description);
    if (f[K_CH_ENABLED].val)
        config_get_bool(ld, f[K_CH_ENABLED].val, "enabled", &ch->enabled);
    if (f[K_CH_PRIORITY].val)
        config_get_int(ld, f[K_CH_PRIORITY].val, "priority", 0, 1000000, &ch->priority);
    if (f[K_CH_POLL].val) {
        /* A poll channel pulls its requests: nobody posts to it, so it has nothing
         * to match and no clients to allow, and it is always async (no client
         * waits for an answer). */
        static const size_t posted_only[] = {K_CH_MATCH, K_CH_ALLOW};
        for (size_t i = 0; i < sizeof posted_only / sizeof posted_only[0]; i++)
            if (f[posted_only[i]].key)
                config_err_at(ld, f[posted_only[i]].key,
                              "%s applies only to channels that are posted to; this channel "
                              "pulls its requests (poll:), remove %s",
                              channel_keys[posted_only[i]].name, channel_keys[posted_only[i]].name);
        ch->poll = config_load_poll(ld, f[K_CH_POLL].val);
        ch->mode = CONFIG_MODE_ASYNC;
        if (f[K_CH_MODE].val) {
            static const char *const modes[] = {"async", NULL};
            config_get_enum(ld, f[K_CH_MODE].val, "mode (a poll channel is always async)", modes);
        }
    } else {
        if (f[K_CH_MATCH].val)
            load_match(ld, f[K_CH_MATCH].val, ch);
        else
            config_err_at(ld, root,
                          "missing required key \"match\" at top level (or poll: for a channel "
                          "that pulls its requests from a source)");
        load_allow(ld, f[K_CH_ALLOW].val, root, ch);
    }
    if (f[K_CH_MODE].val && ch->poll == NULL) {
        static const char *const modes[] = {"sync", "async", NULL};
        int m = config_get_enum(ld, f[K_CH_MODE].val, "mode", modes);
        if (m >= 0)
            ch->mode = m == 1 ? CONFIG_MODE_ASYNC : CONFIG_MODE_SYNC;
    }
    ch->retry = cfg->retry;
    if (f[K_CH_RETRY].val) {
        struct found g[sizeof config_retry_keys / sizeof config_retry_keys[0]];
        if (MAP_KEYS(ld, f[K_CH_RETRY].val, "retry", config_retry_keys, g)) {
            config_load_retry_policy(ld, "retry", g[K_RY_MAX_ATTEMPTS].val, g[K_RY_MAX_AGE].val,
                                     g[K_RY_BACKOFF].val, &ch->retry);
            config_check_attempts(ld, "retry", g[K_RY_MAX_ATTEMPTS].val, &ch->retry);
        }
    }
    config_load_keep(ld, "", f[K_CH_KEEP_BODIES].val, f[K_CH_KEEP_TRANSACTIONS].val,
                     &ch->keep_bodies_ms, &ch->keep_transactions_ms);
    struct transform_seen seen = {0};
    if (f[K_CH_TRANSFORM].val)
        load_transform(ld, f[K_CH_TRANSFORM].key, f[K_CH_TRANSFORM].val, ch, &seen);
    if (f[K_CH_AGGREGATE].val)
        load_aggregate(ld, f[K_CH_AGGREGATE].val, ch);
    check_aggregate(ld, &f[K_CH_AGGREGATE], &f[K_CH_TRANSFORM], ch);
    if (f[K_CH_UNMAPPED].val) {
        int u = config_get_enum(ld, f[K_CH_UNMAPPED].val, "unmapped", unmapped_policies);
        if (u >= 0)
            ch->unmapped = u == 1 ? MAPPING_SKIP : MAPPING_REJECT;
        if (seen.mapping == NULL)
            config_err_at(ld, f[K_CH_UNMAPPED].key,
                          "unmapped applies only to a channel whose transform has a mapping");
    }
    if (f[K_CH_ROUTES].val)
        config_load_routes(ld, f[K_CH_ROUTES].val, ch);
    /* DHIS2 takes UIDs: a report in source codes must go through a mapping */
    for (size_t i = 0; ch->has_transform && seen.mapping == NULL && i < ch->n_routes; i++) {
        if (ch->routes[i].mediator == CONFIG_MEDIATOR_DHIS2) {
            config_err_at(
                ld, seen.key,
                "transform has no mapping, but route \"%s\" delivers to DHIS2, which needs "
                "UIDs (add mapping: NAME to the transform)",
                ch->routes[i].name ? ch->routes[i].name : "");
            break;
        }
    }
}

/* Every dhis2 route sends each kind of object in the id scheme of its channel's
 * mapping (id_schemes:); a route that names another one for a kind (its
 * *_id_scheme, else its id_scheme) would make DHIS2 look the mapping's targets up
 * wrongly, and is an error: one per kind the route names, one for its id_scheme. */
void config_settle_id_schemes(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    for (size_t c = 0; c < cfg->n_channels; c++) {
        struct config_channel *ch = &cfg->channels[c];
        const struct mapping *m = ch->has_transform ? ch->transform.mapping : NULL;
        for (size_t i = 0; i < ch->n_routes; i++) {
            struct config_route *r = &ch->routes[i];
            if (r->mediator != CONFIG_MEDIATOR_DHIS2)
                continue;
            const char *rname = r->name ? r->name : "";
            char kinds[256] = "";
            for (int k = 0; k < MAPPING_KINDS; k++) {
                const char *want = mapping_id_scheme(m, (enum mapping_kind)k);
                const char *said = r->id_schemes[k];
                if (m != NULL && said != NULL && strcmp(said, want) != 0)
                    config_err_pos(
                        ld, r->id_scheme_pos[k].file, r->id_scheme_pos[k].line,
                        r->id_scheme_pos[k].col,
                        "route \"%s\" sends %s identifiers as %s, but mapping \"%s\" maps "
                        "them to %ss (set id_schemes: { %s: %s } in %s)",
                        rname, MAPPING_KIND_NAMES[k], said, m->name, want, MAPPING_KIND_NAMES[k],
                        said, m->file ? m->file : "the mapping");
                else if (m != NULL && said == NULL && r->id_scheme != NULL &&
                         strcmp(r->id_scheme, want) != 0 &&
                         !(r->writer != NULL && strcmp(r->writer, "adx") == 0))
                    snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s: %s",
                             kinds[0] ? ", " : "", MAPPING_KIND_NAMES[k], r->id_scheme);
                r->id_schemes[k] = want;
            }
            if (kinds[0] != '\0')
                config_err_pos(
                    ld, r->pos.file, r->pos.line, r->pos.col,
                    "route \"%s\" has id_scheme: %s, but mapping \"%s\" maps to UIDs; set "
                    "id_schemes: { %s } in %s, or drop the route's id_scheme",
                    rname, r->id_scheme, m->name, kinds, m->file ? m->file : "the mapping");
        }
    }
}

/* Keys are checked in the order the code needs them, not the order of the file;
 * reorder what one file produced by position, keeping the order of equal ones. */
static void sort_diags(struct hibus_diags *d, size_t start)
{
    for (size_t i = start + 1; i < d->n; i++) {
        struct hibus_diag x = d->v[i];
        size_t j = i;
        while (j > start && (d->v[j - 1].line > x.line ||
                             (d->v[j - 1].line == x.line && d->v[j - 1].col > x.col))) {
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
}

/* Reads one file (taking ownership of path) and hands its root to fn; the document
 * lives only during this call. Returns false when the file could not be parsed. */

bool config_load_file(struct loader *ld, char *path, const struct config_pos *from, file_loader fn,
                      void *arg)
{
    const char *file = config_add_file(ld, path);
    if (file == NULL)
        return false;
    yaml_document_t doc;
    yaml_node_t *root = config_parse_file(ld, file, from, &doc);
    if (root == NULL)
        return false;
    size_t start = ld->diags->n;
    fn(ld, root, arg);
    sort_diags(ld->diags, start);
    yaml_document_delete(&doc);
    ld->doc = NULL;
    return true;
}
