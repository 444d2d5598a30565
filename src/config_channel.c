/*
 * config_channel.c - channel files (channels/NAME.yaml) for the configuration loader
 * (see config_internal.h): match rules, allow lists, mode and retry, transform,
 * unmapped policy, routes with their auth and dhis2 options, and the checks that
 * need a whole channel (a dhis2 route needs a mapping; its id schemes agree with
 * the mapping's: config_settle_id_schemes, run once every channel is loaded).
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

#include "hibus/log.h"
#include "hibus/quality.h"
#include "hibus/readers.h"
#include "hibus/router.h"
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
    K_CH_UNMAPPED,
    K_CH_ROUTES
};
static const struct key_spec channel_keys[] = {
    [K_CH_NAME] = {"name", true},
    [K_CH_DESCRIPTION] = {"description", false},
    [K_CH_ENABLED] = {"enabled", false},
    [K_CH_PRIORITY] = {"priority", false},
    [K_CH_MATCH] = {"match", true},
    [K_CH_ALLOW] = {"allow", false},
    [K_CH_MODE] = {"mode", false},
    [K_CH_RETRY] = {"retry", false},
    [K_CH_KEEP_BODIES] = {"keep_bodies", false},
    [K_CH_KEEP_TRANSACTIONS] = {"keep_transactions", false},
    [K_CH_TRANSFORM] = {"transform", false},
    [K_CH_UNMAPPED] = {"unmapped", false},
    [K_CH_ROUTES] = {"routes", true},
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

enum {
    K_R_NAME,
    K_R_MEDIATOR,
    K_R_URL,
    K_R_PRIMARY,
    K_R_TIMEOUT,
    K_R_AUTH,
    K_R_BODY,
    K_R_WRITER,
    K_R_DHIS2,
    K_R_WHEN
};
static const struct key_spec route_keys[] = {
    [K_R_NAME] = {"name", true},        [K_R_MEDIATOR] = {"mediator", false},
    [K_R_URL] = {"url", true},          [K_R_PRIMARY] = {"primary", false},
    [K_R_TIMEOUT] = {"timeout", false}, [K_R_AUTH] = {"auth", false},
    [K_R_BODY] = {"body", false},       [K_R_WRITER] = {"writer", false},
    [K_R_DHIS2] = {"dhis2", false},     [K_R_WHEN] = {"when", false},
};

enum { K_AU_BASIC, K_AU_BEARER, K_AU_HEADER, K_AU_TOKEN };
static const struct key_spec auth_keys[] = {
    [K_AU_BASIC] = {"basic", false},
    [K_AU_BEARER] = {"bearer", false},
    [K_AU_HEADER] = {"header", false},
    [K_AU_TOKEN] = {"token", false},
};

enum { K_BA_USERNAME, K_BA_PASSWORD };
static const struct key_spec basic_keys[] = {
    [K_BA_USERNAME] = {"username", true},
    [K_BA_PASSWORD] = {"password", true},
};

enum { K_HD_NAME, K_HD_VALUE };
static const struct key_spec header_keys[] = {
    [K_HD_NAME] = {"name", true},
    [K_HD_VALUE] = {"value", true},
};

enum {
    K_DH_DRY_RUN,
    K_DH_IMPORT_STRATEGY,
    K_DH_ID_SCHEME,
    K_DH_KIND_SCHEMES /* then one per enum mapping_kind */
};
static const struct key_spec dhis2_keys[] = {
    [K_DH_DRY_RUN] = {"dry_run", false},
    [K_DH_IMPORT_STRATEGY] = {"import_strategy", false},
    [K_DH_ID_SCHEME] = {"id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_DATA_ELEMENT] = {"data_element_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_ORG_UNIT] = {"org_unit_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_COC] = {"category_option_combo_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_DATA_SET] = {"data_set_id_scheme", false},
};

static const char *const mediators[] = {"http", "dhis2", NULL};
static const char *const route_bodies[] = {"original", "transformed", NULL};
static const char *const import_strategies[] = {"CREATE_AND_UPDATE", "CREATE", "UPDATE", "DELETE",
                                                NULL};
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
    int e = stat(path, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EISDIR : 0;
    if (e != 0) {
        config_err_at(ld, n, "mapping \"%s\" not found: could not read file \"%s\": %s", name, path,
                      strerror(e));
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
    seen->key = key;
    seen->mapping = f[K_T_MAPPING].val;
    if (f[K_T_READER].val &&
        config_get_string(ld, f[K_T_READER].val, "transform.reader", true, &t->reader) &&
        !reader_known(t->reader))
        config_err_at(ld, f[K_T_READER].val, "unknown reader \"%s\" (expected one of: %s)",
                      t->reader, config_join_names(list, sizeof list, READER_NAMES));
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

bool config_has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Credentials end up in request headers: a CR or LF would let them add headers. */
static void check_header_value(struct loader *ld, const yaml_node_t *n, const char *what,
                               const char *s)
{
    if (s && config_has_ctl(s))
        config_err_at(ld, n, "%s must not contain control characters", what);
}

static bool is_http_url(const char *u)
{
    size_t skip = 0;
    if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    return skip && u[skip] != '\0' && u[skip] != '/' && strchr(u, ' ') == NULL &&
           !config_has_ctl(u);
}

static void load_auth(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r)
{
    char what[96];
    struct found f[sizeof auth_keys / sizeof auth_keys[0]];
    if (!MAP_KEYS(ld, n, where, auth_keys, f))
        return;
    static const char choices[] = "basic, bearer, header or token";
    const struct found *one =
        config_exactly_one(ld, f, K_AU_BASIC, K_AU_TOKEN, auth_keys, where, choices);
    if (one == NULL) {
        config_err_at(ld, n, "%s needs exactly one of %s", where, choices);
        return;
    }
    struct found g[2];
    if (one == &f[K_AU_BASIC]) {
        r->auth_kind = CONFIG_AUTH_BASIC;
        snprintf(what, sizeof what, "%s.basic", where);
        if (MAP_KEYS(ld, f[K_AU_BASIC].val, what, basic_keys, g)) {
            snprintf(what, sizeof what, "%s.basic.username", where);
            if (g[K_BA_USERNAME].val &&
                config_get_string(ld, g[K_BA_USERNAME].val, what, true, &r->auth_user)) {
                if (strchr(r->auth_user, ':')) /* RFC 7617: user-id cannot contain ':' */
                    config_err_at(ld, g[K_BA_USERNAME].val, "%s must not contain \":\"", what);
                check_header_value(ld, g[K_BA_USERNAME].val, what, r->auth_user);
            }
            snprintf(what, sizeof what, "%s.basic.password", where);
            if (g[K_BA_PASSWORD].val &&
                config_get_string(ld, g[K_BA_PASSWORD].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_BA_PASSWORD].val, what, r->auth_secret);
        }
    } else if (one == &f[K_AU_BEARER] || one == &f[K_AU_TOKEN]) {
        bool bearer = one == &f[K_AU_BEARER];
        r->auth_kind = bearer ? CONFIG_AUTH_BEARER : CONFIG_AUTH_TOKEN;
        snprintf(what, sizeof what, "%s.%s", where, bearer ? "bearer" : "token");
        if (config_get_string(ld, one->val, what, true, &r->auth_secret))
            check_header_value(ld, one->val, what, r->auth_secret);
    } else {
        r->auth_kind = CONFIG_AUTH_HEADER;
        snprintf(what, sizeof what, "%s.header", where);
        if (MAP_KEYS(ld, f[K_AU_HEADER].val, what, header_keys, g)) {
            snprintf(what, sizeof what, "%s.header.name", where);
            if (g[K_HD_NAME].val &&
                config_get_string(ld, g[K_HD_NAME].val, what, true, &r->auth_header) &&
                !config_is_token(r->auth_header, strlen(r->auth_header)))
                config_err_at(ld, g[K_HD_NAME].val, "invalid header name \"%s\" in %s",
                              r->auth_header, what);
            snprintf(what, sizeof what, "%s.header.value", where);
            if (g[K_HD_VALUE].val &&
                config_get_string(ld, g[K_HD_VALUE].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_HD_VALUE].val, what, r->auth_secret);
        }
    }
}

/* A dhis2 route's url is DHIS2's base URL (with its context path, if any);
 * the mediator appends /api/dataValueSets and its own query. */
static bool is_dhis2_base_url(const char *u)
{
    const char *path = strchr(strstr(u, "://") + 3, '/');
    if (strpbrk(u, "?#") != NULL)
        return false;
    if (path == NULL)
        return true;
    size_t n = strlen(path);
    return strstr(path, "/api/") == NULL && !(n >= 4 && strcmp(path + n - 4, "/api") == 0);
}

static void load_dhis2_options(struct loader *ld, yaml_node_t *n, const char *where,
                               struct config_route *r, yaml_node_t **id_scheme)
{
    char what[128];
    struct found f[sizeof dhis2_keys / sizeof dhis2_keys[0]];
    if (!MAP_KEYS(ld, n, where, dhis2_keys, f))
        return;
    int v;
    snprintf(what, sizeof what, "%s.dry_run", where);
    if (f[K_DH_DRY_RUN].val)
        config_get_bool(ld, f[K_DH_DRY_RUN].val, what, &r->dry_run);
    snprintf(what, sizeof what, "%s.import_strategy", where);
    if (f[K_DH_IMPORT_STRATEGY].val &&
        (v = config_get_enum(ld, f[K_DH_IMPORT_STRATEGY].val, what, import_strategies)) >= 0)
        r->import_strategy = config_xstrdup(ld, import_strategies[v]);
    snprintf(what, sizeof what, "%s.id_scheme", where);
    if (f[K_DH_ID_SCHEME].val &&
        (v = config_get_enum(ld, f[K_DH_ID_SCHEME].val, what, config_id_schemes)) >= 0) {
        r->id_scheme = config_xstrdup(ld, config_id_schemes[v]);
        *id_scheme = f[K_DH_ID_SCHEME].val;
    }
    for (int k = 0; k < MAPPING_KINDS; k++) {
        yaml_node_t *val = f[K_DH_KIND_SCHEMES + k].val;
        snprintf(what, sizeof what, "%s.%s", where, dhis2_keys[K_DH_KIND_SCHEMES + k].name);
        if (val && (v = config_get_enum(ld, val, what, config_id_schemes)) >= 0) {
            r->id_schemes[k] = config_id_schemes[v];
            r->id_scheme_pos[k] = config_pos_of(ld, val);
        }
    }
}

/* Returns the node of primary: true, or NULL; *when_key is set to the route's
 * when: key, or NULL. */
static yaml_node_t *load_route(struct loader *ld, yaml_node_t *n, size_t idx,
                               struct config_channel *ch, yaml_node_t **when_key)
{
    char where[32], what[64], list[128];
    snprintf(where, sizeof where, "routes[%zu]", idx);
    *when_key = NULL;
    struct found f[sizeof route_keys / sizeof route_keys[0]];
    if (!MAP_KEYS(ld, n, where, route_keys, f))
        return NULL;
    struct config_route *r = &ch->routes[ch->n_routes++];
    memset(r, 0, sizeof *r);
    r->mediator = CONFIG_MEDIATOR_HTTP;
    r->timeout_ms = 30000;
    r->auth_kind = CONFIG_AUTH_NONE;
    r->pos = config_pos_of(ld, n);

    snprintf(what, sizeof what, "%s.name", where);
    if (f[K_R_NAME].val && config_get_string(ld, f[K_R_NAME].val, what, true, &r->name)) {
        r->pos = config_pos_of(ld, f[K_R_NAME].val);
        for (size_t i = 0; i + 1 < ch->n_routes; i++) {
            const struct config_route *o = &ch->routes[i];
            if (o->name && strcmp(o->name, r->name) == 0) {
                config_err_at(ld, f[K_R_NAME].val,
                              "duplicate route name \"%s\" (first defined at %s:%d:%d)", r->name,
                              o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    const char *rname = r->name ? r->name : "";
    snprintf(what, sizeof what, "%s.mediator", where);
    int m;
    if (f[K_R_MEDIATOR].val && (m = config_get_enum(ld, f[K_R_MEDIATOR].val, what, mediators)) >= 0)
        r->mediator = m == 1 ? CONFIG_MEDIATOR_DHIS2 : CONFIG_MEDIATOR_HTTP;
    bool dhis2 = r->mediator == CONFIG_MEDIATOR_DHIS2;
    if (dhis2 && !ch->has_transform)
        config_err_at(ld, f[K_R_MEDIATOR].val,
                      "route \"%s\" delivers to DHIS2, which needs the channel to have a transform "
                      "(add transform: { reader: ..., mapping: ... })",
                      rname);
    snprintf(what, sizeof what, "%s.url", where);
    if (f[K_R_URL].val && config_get_string(ld, f[K_R_URL].val, what, true, &r->url)) {
        if (!is_http_url(r->url))
            config_err_at(
                ld, f[K_R_URL].val,
                "invalid url \"%s\" for %s (expected an absolute http:// or https:// URL)", r->url,
                what);
        else if (dhis2 && !is_dhis2_base_url(r->url))
            config_err_at(
                ld, f[K_R_URL].val,
                "invalid url \"%s\" for %s (expected the DHIS2 base URL, like "
                "https://dhis.example.org, without query: hibus appends /api/dataValueSets)",
                r->url, what);
    }
    snprintf(what, sizeof what, "%s.primary", where);
    if (f[K_R_PRIMARY].val)
        config_get_bool(ld, f[K_R_PRIMARY].val, what, &r->primary);
    snprintf(what, sizeof what, "%s.timeout", where);
    if (f[K_R_TIMEOUT].val)
        config_get_duration(ld, f[K_R_TIMEOUT].val, what, &r->timeout_ms);
    snprintf(what, sizeof what, "%s.auth", where);
    if (f[K_R_AUTH].val)
        load_auth(ld, f[K_R_AUTH].val, what, r);

    snprintf(what, sizeof what, "%s.body", where);
    int b;
    if (f[K_R_BODY].val && (b = config_get_enum(ld, f[K_R_BODY].val, what, route_bodies)) >= 0) {
        if (dhis2)
            config_err_at(
                ld, f[K_R_BODY].key,
                "body applies only to http routes (a dhis2 route always sends the transformed "
                "report)");
        else if (b == 1 && !ch->has_transform)
            config_err_at(
                ld, f[K_R_BODY].val,
                "body: transformed needs the channel to have a transform (add transform: { "
                "reader: ..., mapping: ... })");
        else
            r->body = b == 1 ? CONFIG_BODY_TRANSFORMED : CONFIG_BODY_ORIGINAL;
    }
    if (dhis2)
        r->body = CONFIG_BODY_TRANSFORMED;
    bool transformed = r->body == CONFIG_BODY_TRANSFORMED;

    snprintf(what, sizeof what, "%s.writer", where);
    if (f[K_R_WRITER].val) {
        if (!transformed && !dhis2)
            config_err_at(ld, f[K_R_WRITER].key,
                          "writer applies only to dhis2 routes and to http routes with body: "
                          "transformed");
        else if (config_get_string(ld, f[K_R_WRITER].val, what, true, &r->writer) &&
                 !writer_known(r->writer))
            config_err_at(ld, f[K_R_WRITER].val, "unknown writer \"%s\" (expected one of: %s)",
                          r->writer, config_join_names(list, sizeof list, WRITER_NAMES));
    } else if (transformed && ch->transform.writer) {
        r->writer = config_xstrdup(ld, ch->transform.writer);
    }

    snprintf(what, sizeof what, "%s.dhis2", where);
    yaml_node_t *id_scheme = NULL;
    if (f[K_R_DHIS2].key && !dhis2)
        config_err_at(ld, f[K_R_DHIS2].key, "%s applies only to routes with mediator: dhis2", what);
    else if (f[K_R_DHIS2].val)
        load_dhis2_options(ld, f[K_R_DHIS2].val, what, r, &id_scheme);
    if (dhis2 && r->import_strategy == NULL)
        r->import_strategy = config_xstrdup(ld, "CREATE_AND_UPDATE");
    if (id_scheme && r->writer && strcmp(r->writer, "adx") == 0)
        config_err_at(
            ld, id_scheme,
            "%s.id_scheme applies only to the dhis2-datavalueset writer (ADX is always sent "
            "with idScheme=UID)",
            what);

    if (f[K_R_WHEN].val) {
        snprintf(what, sizeof what, "%s.when", where);
        struct list_spec spec = {what,
                                 config_check_when,
                                 "expected an HTTP status like 409, a class like 2xx, or failed",
                                 NULL,
                                 "outcome",
                                 true};
        config_get_string_list(ld, f[K_R_WHEN].val, &spec, &r->when, &r->n_when);
        *when_key = f[K_R_WHEN].key;
    }
    return r->primary ? f[K_R_PRIMARY].val : NULL;
}

static void load_routes(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!config_expect_list(ld, n, "routes"))
        return;
    size_t len = config_list_len(n);
    if (len == 0) {
        config_err_at(ld, n, "routes must not be empty (a channel needs at least one route)");
        return;
    }
    ch->routes = calloc(len, sizeof *ch->routes);
    if (ch->routes == NULL) {
        ld->oom = true;
        return;
    }
    size_t start = ld->diags->n;
    const struct config_route *primary = NULL;
    yaml_node_t *when_key = NULL;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *p = load_route(ld, config_list_item(ld, n, i), i, ch, &when_key);
        if (p == NULL)
            continue;
        const struct config_route *r = &ch->routes[ch->n_routes - 1];
        if (primary)
            config_err_at(
                ld, p,
                "route \"%s\" and route \"%s\" are both primary (exactly one route can be "
                "primary)",
                r->name ? r->name : "", primary->name ? primary->name : "");
        else
            primary = r;
        if (when_key)
            config_err_at(
                ld, when_key,
                "when is not allowed on the primary route \"%s\" (it chooses routes by the "
                "primary route's outcome)",
                r->name ? r->name : "");
    }
    if (primary == NULL && ch->n_routes == 1 && len == 1) {
        ch->routes[0].primary = true;
        if (when_key) /* the only route is the primary one */
            config_err_at(
                ld, when_key,
                "when is not allowed on the primary route \"%s\" (it chooses routes by the "
                "primary route's outcome)",
                ch->routes[0].name ? ch->routes[0].name : "");
    } else if (primary == NULL && ld->diags->n == start) {
        config_err_at(ld, n, "no primary route (mark exactly one route with primary: true)");
    }
}

/* A worker holds an async transaction for delivery.lease while it runs the routes
 * one after the other; if they could take longer, another process could claim the
 * transaction and deliver it a second time. */
static void check_lease(struct loader *ld, const yaml_node_t *at, const struct config_channel *ch)
{
    long long sum = 0;
    for (size_t i = 0; i < ch->n_routes; i++)
        sum += ch->routes[i].timeout_ms;
    if (sum <= ld->cfg->delivery_lease_ms)
        return;
    char a[32], b[32];
    config_fmt_duration(a, sizeof a, sum);
    config_err_at(
        ld, at,
        "the routes of async channel \"%s\" may take %s together (the sum of their "
        "timeouts), longer than delivery.lease (%s); raise delivery.lease in hibus.yaml to at "
        "least %s, or lower the timeouts",
        ch->name ? ch->name : "", a, config_fmt_duration(b, sizeof b, ld->cfg->delivery_lease_ms),
        a);
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
    if (f[K_CH_MATCH].val)
        load_match(ld, f[K_CH_MATCH].val, ch);
    load_allow(ld, f[K_CH_ALLOW].val, root, ch);
    if (f[K_CH_MODE].val) {
        static const char *const modes[] = {"sync", "async", NULL};
        int m = config_get_enum(ld, f[K_CH_MODE].val, "mode", modes);
        if (m >= 0)
            ch->mode = m == 1 ? CONFIG_MODE_ASYNC : CONFIG_MODE_SYNC;
    }
    ch->retry = cfg->retry;
    if (f[K_CH_RETRY].val) {
        struct found g[sizeof config_retry_keys / sizeof config_retry_keys[0]];
        if (MAP_KEYS(ld, f[K_CH_RETRY].val, "retry", config_retry_keys, g))
            config_load_retry_policy(ld, "retry", g[K_RY_MAX_ATTEMPTS].val, g[K_RY_MAX_AGE].val,
                                     g[K_RY_BACKOFF].val, &ch->retry);
    }
    config_load_keep(ld, "", f[K_CH_KEEP_BODIES].val, f[K_CH_KEEP_TRANSACTIONS].val,
                     &ch->keep_bodies_ms, &ch->keep_transactions_ms);
    struct transform_seen seen = {0};
    if (f[K_CH_TRANSFORM].val)
        load_transform(ld, f[K_CH_TRANSFORM].key, f[K_CH_TRANSFORM].val, ch, &seen);
    if (f[K_CH_UNMAPPED].val) {
        int u = config_get_enum(ld, f[K_CH_UNMAPPED].val, "unmapped", unmapped_policies);
        if (u >= 0)
            ch->unmapped = u == 1 ? MAPPING_SKIP : MAPPING_REJECT;
        if (seen.mapping == NULL)
            config_err_at(ld, f[K_CH_UNMAPPED].key,
                          "unmapped applies only to a channel whose transform has a mapping");
    }
    size_t before_routes = ld->diags->n;
    if (f[K_CH_ROUTES].val)
        load_routes(ld, f[K_CH_ROUTES].val, ch);
    if (ch->mode == CONFIG_MODE_ASYNC && f[K_CH_ROUTES].val && ld->diags->n == before_routes)
        check_lease(ld, f[K_CH_ROUTES].key, ch);
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
