/*
 * config_mapping.c - mapping files (mappings/NAME.yaml) and their CSV tables, for
 * the configuration loader (see config_internal.h): the code tables, the measures,
 * the items with their value types, the translation tables (data_sets,
 * attribute_option_combos, periods), id_schemes, and every duplicate reported at its
 * second place naming the first. What a mapping does to a report is mapping.c's.
 */
#include "config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hibus/csv.h"
#include "hibus/period.h"
#include "hibus/text.h"

/* ------------------------------------------------------------------------------------
 * Mapping files (mappings/NAME.yaml) and their CSV tables
 * ------------------------------------------------------------------------------------ */

/* A CSV file may be larger than a YAML file: national facility lists are long. */
#define CONFIG_MAX_CSV (64 * 1024 * 1024)
/* After this many problems in one CSV file the rest is not checked: a file with
 * the wrong separator would otherwise give one message per line. */
#define CSV_MAX_ERRORS 20

enum {
    K_MP_DATA_SET,
    K_MP_PERIOD_TYPE,
    K_MP_AOC,
    K_MP_ORG_UNITS,
    K_MP_ORG_UNITS_CSV,
    K_MP_MEASURES,
    K_MP_ITEMS,
    K_MP_ITEMS_CSV,
    K_MP_DATA_SETS,
    K_MP_AOCS,
    K_MP_ID_SCHEMES,
    K_MP_PERIODS,
    K_MP_PULL
};
static const struct key_spec mapping_keys[] = {
    [K_MP_DATA_SET] = {"data_set", false},
    [K_MP_PERIOD_TYPE] = {"period_type", false},
    [K_MP_AOC] = {"attribute_option_combo", false},
    [K_MP_ORG_UNITS] = {"org_units", false},
    [K_MP_ORG_UNITS_CSV] = {"org_units_csv", false},
    [K_MP_MEASURES] = {"measures", false},
    [K_MP_ITEMS] = {"items", false},
    [K_MP_ITEMS_CSV] = {"items_csv", false},
    [K_MP_DATA_SETS] = {"data_sets", false},
    [K_MP_AOCS] = {"attribute_option_combos", false},
    [K_MP_ID_SCHEMES] = {"id_schemes", false},
    [K_MP_PERIODS] = {"periods", false},
    [K_MP_PULL] = {"pull", false},
};

/* pull: what hibus mapping pull needs to know that the tables do not say. */
enum { K_PL_OU_ATTRIBUTE };
static const struct key_spec pull_keys[] = {
    [K_PL_OU_ATTRIBUTE] = {"org_unit_attribute", false},
};

static const struct key_spec id_scheme_keys[MAPPING_KINDS] = {
    [MAPPING_DATA_ELEMENT] = {"data_element", false},
    [MAPPING_ORG_UNIT] = {"org_unit", false},
    [MAPPING_COC] = {"category_option_combo", false},
    [MAPPING_DATA_SET] = {"data_set", false},
};

enum { K_IT_DATA_ELEMENT, K_IT_MEASURES, K_IT_VALUE_TYPE };
static const struct key_spec item_keys[] = {
    [K_IT_DATA_ELEMENT] = {"data_element", true},
    [K_IT_MEASURES] = {"measures", false},
    [K_IT_VALUE_TYPE] = {"value_type", false},
};

enum { CSV_ORG_UNITS = 0, CSV_ITEMS = 1 };
static const char *const csv_headers[2][5] = {
    [CSV_ORG_UNITS] = {"code", "uid", NULL},
    [CSV_ITEMS] = {"item", "measure", "data_element", "category_option_combo", NULL},
};

/* One mapping being read: the struct mapping's arrays keep no capacity, and each
 * row's position (for messages about duplicates) lives only here. */
struct mapping_load {
    struct mapping *m;
    size_t cap_ou, cap_ou_pos, cap_items, cap_item_pos;
    struct config_pos *ou_pos;   /* parallel to m->org_units */
    struct config_pos *item_pos; /* parallel to m->items */
    char *csv[2];                /* org_units_csv, items_csv: paths to read, or NULL */
    struct config_pos csv_pos[2];
    const char *files[3]; /* the YAML file and the two CSV files, in cfg->files */
};

/* measures: { measure: COC UID } of the mapping or of one item. */
struct measure_uid {
    const char *measure; /* the YAML key's text: lives as long as the document */
    char *coc;
    struct config_pos pos;
};

static bool add_org_unit(struct loader *ld, struct mapping_load *ml, const char *code,
                         const char *uid, struct config_pos pos)
{
    struct mapping *m = ml->m;
    if (!config_grow(ld, (void **)&m->org_units, &ml->cap_ou, m->n_org_units,
                     sizeof *m->org_units) ||
        !config_grow(ld, (void **)&ml->ou_pos, &ml->cap_ou_pos, m->n_org_units, sizeof *ml->ou_pos))
        return false;
    struct mapping_code ou = {config_xstrdup(ld, code), config_xstrdup(ld, uid), pos.file};
    if (ou.code == NULL || ou.uid == NULL) {
        free(ou.code);
        free(ou.uid);
        return false;
    }
    ml->ou_pos[m->n_org_units] = pos;
    m->org_units[m->n_org_units++] = ou;
    return true;
}

/* measure and coc may be NULL (no measure / the default category option combo). */
static bool add_item(struct loader *ld, struct mapping_load *ml, const char *item,
                     const char *measure, const char *de, const char *coc, const char *value_type,
                     struct config_pos pos)
{
    struct mapping *m = ml->m;
    if (!config_grow(ld, (void **)&m->items, &ml->cap_items, m->n_items, sizeof *m->items) ||
        !config_grow(ld, (void **)&ml->item_pos, &ml->cap_item_pos, m->n_items,
                     sizeof *ml->item_pos))
        return false;
    struct mapping_item it = {config_xstrdup(ld, item),
                              measure ? config_xstrdup(ld, measure) : NULL,
                              config_xstrdup(ld, de),
                              coc ? config_xstrdup(ld, coc) : NULL,
                              value_type ? config_xstrdup(ld, value_type) : NULL,
                              pos.file};
    if (it.item == NULL || it.de_uid == NULL || (measure && it.measure == NULL) ||
        (coc && it.coc_uid == NULL) || (value_type && it.value_type == NULL)) {
        free(it.item);
        free(it.measure);
        free(it.de_uid);
        free(it.coc_uid);
        free(it.value_type);
        return false;
    }
    ml->item_pos[m->n_items] = pos;
    m->items[m->n_items++] = it;
    return true;
}

/* A key of org_units, measures or items: a non-empty scalar, taken as written (keys
 * are never ${NAME}-expanded). NULL after reporting a problem. */
static const char *code_of(struct loader *ld, const yaml_node_t *k, const char *what)
{
    if (k->type != YAML_SCALAR_NODE) {
        config_err_at(ld, k, "expected a scalar key in %s, got %s", what, config_kind_name(k));
        return NULL;
    }
    const char *s = config_scalar_raw(k);
    if (config_is_null(k) || s[0] == '\0') {
        config_err_at(ld, k, "empty code in %s", what);
        return NULL;
    }
    if (strlen(s) != k->data.scalar.length || strlen(s) > CONFIG_MAX_VALUE || config_has_ctl(s)) {
        config_err_at(ld, k, "invalid code in %s (control characters, or longer than %d bytes)",
                      what, CONFIG_MAX_VALUE);
        return NULL;
    }
    return s;
}

static void free_measure_table(struct measure_uid *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].coc);
    free(t);
}

/* Reads { KEY: target, ... } of kind into *out (where: "measures", "items.X.measures",
 * "data_sets", ...); noun names a key in the message about one written twice. */
typedef bool (*target_reader)(struct loader *ld, const yaml_node_t *n, const char *what,
                              const struct mapping *m, enum mapping_kind k, char **out);

/* A DHIS2 period id (any spelling DHIS2 takes) into *out, canonical. */
static bool get_period_id(struct loader *ld, const yaml_node_t *n, const char *what,
                          const struct mapping *m, enum mapping_kind k, char **out)
{
    (void)m;
    (void)k;
    char *s = NULL;
    struct period p;
    if (!config_get_string(ld, n, what, true, &s))
        return false;
    if (!period_parse(s, &p)) {
        config_err_at(ld, n, "\"%s\" is not a DHIS2 period id (such as 202608, 2026Q3 or 2026W35)",
                      s);
        free(s);
        return false;
    }
    free(s);
    free(*out);
    *out = config_xstrdup(ld, p.id);
    return *out != NULL;
}

static void load_target_table_with(struct loader *ld, yaml_node_t *n, const char *where,
                                   const char *noun, const struct mapping *m,
                                   enum mapping_kind kind, target_reader get,
                                   struct measure_uid **out, size_t *count);

static void load_target_table(struct loader *ld, yaml_node_t *n, const char *where,
                              const char *noun, const struct mapping *m, enum mapping_kind kind,
                              struct measure_uid **out, size_t *count)
{
    load_target_table_with(ld, n, where, noun, m, kind, config_get_target, out, count);
}

static void load_target_table_with(struct loader *ld, yaml_node_t *n, const char *where,
                                   const char *noun, const struct mapping *m,
                                   enum mapping_kind kind, target_reader get,
                                   struct measure_uid **out, size_t *count)
{
    if (!config_expect_mapping(ld, n, where) || n->type != YAML_MAPPING_NODE)
        return;
    size_t cap = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        const char *key = code_of(ld, k, where);
        if (key == NULL)
            continue;
        size_t j = 0;
        while (j < *count && strcmp((*out)[j].measure, key) != 0)
            j++;
        if (j < *count) {
            config_err_at(ld, k, "duplicate %s \"%s\" in %s (first defined at %s:%d:%d)", noun, key,
                          where, (*out)[j].pos.file, (*out)[j].pos.line, (*out)[j].pos.col);
            continue;
        }
        char what[CONFIG_MAX_VALUE + 64];
        snprintf(what, sizeof what, "%s.%s", where, key);
        char *target = NULL;
        if (!get(ld, config_node(ld, p->value), what, m, kind, &target))
            continue;
        if (!config_grow(ld, (void **)out, &cap, *count, sizeof **out)) {
            free(target);
            return;
        }
        (*out)[(*count)++] = (struct measure_uid){key, target, config_pos_of(ld, k)};
    }
}

/* Reads { measure: COC UID, ... } (where: "measures" or "items.X.measures"). */
static void load_measure_table(struct loader *ld, yaml_node_t *n, const char *where,
                               const struct mapping *m, struct measure_uid **out, size_t *count)
{
    load_target_table(ld, n, where, "measure", m, MAPPING_COC, out, count);
}

static void load_org_units(struct loader *ld, yaml_node_t *n, struct mapping_load *ml)
{
    if (!config_expect_mapping(ld, n, "org_units") || n->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        const char *code = code_of(ld, k, "org_units");
        if (code == NULL)
            continue;
        char what[CONFIG_MAX_VALUE + 16];
        snprintf(what, sizeof what, "org_units.%s", code);
        char *uid = NULL;
        if (config_get_target(ld, config_node(ld, p->value), what, ml->m, MAPPING_ORG_UNIT, &uid))
            add_org_unit(ld, ml, code, uid, config_pos_of(ld, k));
        free(uid);
    }
}

/* data_sets: or attribute_option_combos: { CODE: UID }, what a source names
 * itself translated to DHIS2 identifiers. A code written twice is an error. */
static void load_code_table(struct loader *ld, yaml_node_t *n, const char *where,
                            const struct mapping *m, enum mapping_kind kind, target_reader get,
                            struct mapping_code **out, size_t *count)
{
    struct measure_uid *t = NULL;
    size_t nt = 0;
    load_target_table_with(ld, n, where, "code", m, kind, get, &t, &nt);
    *out = nt > 0 ? calloc(nt, sizeof **out) : NULL;
    if (nt > 0 && *out == NULL)
        ld->oom = true;
    for (size_t i = 0; *out != NULL && i < nt; i++) {
        char *c = config_xstrdup(ld, t[i].measure);
        if (c == NULL)
            break;
        (*out)[(*count)++] = (struct mapping_code){c, t[i].coc, NULL};
        t[i].coc = NULL;
    }
    free_measure_table(t, nt);
}

/* items: { CODE: UID } or { CODE: { data_element: UID, measures: {...} } }. Each item
 * gives a row without measure, then one per measure: its own measures if it has
 * the key (even empty), else the mapping's. Rows are placed at the item's key, or
 * at the measure's key for its own measures. */
static void load_items(struct loader *ld, yaml_node_t *n, struct mapping_load *ml,
                       const struct measure_uid *defaults, size_t n_defaults)
{
    if (!config_expect_mapping(ld, n, "items") || n->type != YAML_MAPPING_NODE)
        return;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        yaml_node_t *v = config_node(ld, p->value);
        const char *item = code_of(ld, k, "items");
        if (item == NULL)
            continue;
        char where[CONFIG_MAX_VALUE + 16], what[CONFIG_MAX_VALUE + 32];
        snprintf(where, sizeof where, "items.%s", item);
        yaml_node_t *de_node = v, *own = NULL, *vt_node = NULL;
        if (v->type != YAML_SCALAR_NODE || config_is_null(v)) {
            struct found g[sizeof item_keys / sizeof item_keys[0]];
            if (!MAP_KEYS(ld, v, where, item_keys, g))
                continue;
            de_node = g[K_IT_DATA_ELEMENT].val;
            own = g[K_IT_MEASURES].val;
            vt_node = g[K_IT_VALUE_TYPE].val;
            snprintf(what, sizeof what, "%s.data_element", where);
        } else {
            snprintf(what, sizeof what, "%s", where);
        }
        char *de = NULL, *vt = NULL;
        if (de_node == NULL ||
            !config_get_target(ld, de_node, what, ml->m, MAPPING_DATA_ELEMENT, &de))
            continue;
        if (vt_node != NULL) {
            snprintf(what, sizeof what, "%s.value_type", where);
            if (config_get_string(ld, vt_node, what, true, &vt) && !mapping_value_type_known(vt)) {
                config_err_at(
                    ld, vt_node,
                    "unknown value type \"%s\" (expected a DHIS2 valueType such as NUMBER, "
                    "INTEGER_ZERO_OR_POSITIVE, TEXT or LONG_TEXT)",
                    vt);
                free(vt);
                vt = NULL;
            }
        }
        struct config_pos at = config_pos_of(ld, k);
        add_item(ld, ml, item, NULL, de, NULL, vt, at);
        if (own) {
            struct measure_uid *t = NULL;
            size_t nt = 0;
            snprintf(what, sizeof what, "%s.measures", where);
            load_measure_table(ld, own, what, ml->m, &t, &nt);
            for (size_t i = 0; i < nt; i++)
                add_item(ld, ml, item, t[i].measure, de, t[i].coc, vt, t[i].pos);
            free_measure_table(t, nt);
        } else {
            for (size_t i = 0; i < n_defaults; i++)
                add_item(ld, ml, item, defaults[i].measure, de, defaults[i].coc, vt, at);
        }
        free(de);
        free(vt);
    }
}

static void load_mapping_yaml(struct loader *ld, yaml_node_t *root, void *arg)
{
    struct mapping_load *ml = arg;
    struct mapping *m = ml->m;
    ml->files[0] = ld->file;
    struct found f[sizeof mapping_keys / sizeof mapping_keys[0]];
    if (!MAP_KEYS(ld, root, NULL, mapping_keys, f))
        return;
    for (int k = 0; k < MAPPING_KINDS; k++)
        m->id_schemes[k] = "UID";
    if (f[K_MP_ID_SCHEMES].val) {
        /* first: it decides how every target below is checked */
        struct found g[MAPPING_KINDS];
        if (MAP_KEYS(ld, f[K_MP_ID_SCHEMES].val, "id_schemes", id_scheme_keys, g))
            for (int k = 0; k < MAPPING_KINDS; k++) {
                char what[64];
                snprintf(what, sizeof what, "id_schemes.%s", MAPPING_KIND_NAMES[k]);
                int v;
                if (g[k].val && (v = config_get_enum(ld, g[k].val, what, config_id_schemes)) >= 0)
                    m->id_schemes[k] = config_id_schemes[v];
            }
    }
    if (f[K_MP_DATA_SET].val)
        config_get_target(ld, f[K_MP_DATA_SET].val, "data_set", m, MAPPING_DATA_SET,
                          &m->data_set_uid);
    char *s = NULL;
    if (f[K_MP_PERIOD_TYPE].val &&
        config_get_string(ld, f[K_MP_PERIOD_TYPE].val, "period_type", true, &s)) {
        if (period_type_parse(s, &m->period_type)) {
            m->has_period_type = true;
        } else {
            const char *names[PERIOD_TYPE_COUNT + 1];
            for (int t = 0; t < PERIOD_TYPE_COUNT; t++)
                names[t] = period_type_name((enum period_type)t);
            names[PERIOD_TYPE_COUNT] = NULL;
            char list[512];
            config_err_at(ld, f[K_MP_PERIOD_TYPE].val,
                          "unknown period type \"%s\" (expected one of: %s)", s,
                          config_join_names(list, sizeof list, names));
        }
        free(s);
        s = NULL;
    }
    if (f[K_MP_PULL].val) {
        struct found g[sizeof pull_keys / sizeof pull_keys[0]];
        yaml_node_t *a = NULL;
        if (MAP_KEYS(ld, f[K_MP_PULL].val, "pull", pull_keys, g) &&
            (a = g[K_PL_OU_ATTRIBUTE].val) != NULL &&
            config_get_string(ld, a, "pull.org_unit_attribute", true, &s)) {
            /* an attribute is named by its UID: a name could change under the pull */
            if (!mapping_is_uid(s))
                config_err_at(ld, a,
                              "pull.org_unit_attribute: \"%s\" is not a DHIS2 UID (the id of "
                              "the attribute that holds the facility code, as in "
                              "/api/attributes)",
                              s);
            else
                m->pull_org_unit_attribute = s;
            if (m->pull_org_unit_attribute != s)
                free(s);
            s = NULL;
        }
    }
    if (f[K_MP_AOC].val)
        config_get_target(ld, f[K_MP_AOC].val, "attribute_option_combo", m, MAPPING_COC,
                          &m->aoc_uid);
    if (f[K_MP_ORG_UNITS].val)
        load_org_units(ld, f[K_MP_ORG_UNITS].val, ml);
    if (f[K_MP_DATA_SETS].val)
        load_code_table(ld, f[K_MP_DATA_SETS].val, "data_sets", m, MAPPING_DATA_SET,
                        config_get_target, &m->data_sets, &m->n_data_sets);
    if (f[K_MP_AOCS].val)
        load_code_table(ld, f[K_MP_AOCS].val, "attribute_option_combos", m, MAPPING_COC,
                        config_get_target, &m->aocs, &m->n_aocs);
    if (f[K_MP_PERIODS].val)
        load_code_table(ld, f[K_MP_PERIODS].val, "periods", m, MAPPING_KINDS, get_period_id,
                        &m->periods, &m->n_periods);
    struct measure_uid *defaults = NULL;
    size_t n_defaults = 0;
    if (f[K_MP_MEASURES].val)
        load_measure_table(ld, f[K_MP_MEASURES].val, "measures", m, &defaults, &n_defaults);
    if (f[K_MP_ITEMS].val)
        load_items(ld, f[K_MP_ITEMS].val, ml, defaults, n_defaults);
    free_measure_table(defaults, n_defaults);

    /* the CSV files are read after this document, so that their messages are not
     * sorted in among the YAML file's */
    static const int csv_keys[2] = {
        [CSV_ORG_UNITS] = K_MP_ORG_UNITS_CSV, [CSV_ITEMS] = K_MP_ITEMS_CSV};
    char *dir = NULL;
    for (int i = 0; i < 2; i++) {
        yaml_node_t *v = f[csv_keys[i]].val;
        if (v == NULL || !config_get_string(ld, v, mapping_keys[csv_keys[i]].name, true, &s))
            continue;
        if (dir == NULL)
            dir = config_dir_of(ld, ld->file);
        ml->csv[i] = dir ? config_path_join(ld, dir, s) : NULL;
        char **keep = i == CSV_ORG_UNITS ? &m->org_units_csv : &m->items_csv;
        free(*keep);
        *keep = ml->csv[i] ? config_xstrdup(ld, ml->csv[i]) : NULL;
        ml->csv_pos[i] = config_pos_of(ld, v);
        free(s);
        s = NULL;
    }
    free(dir);
}

/* --- CSV files, read with the shared tokenizer (hibus/csv.h), fields as written --- */

struct csv_reader {
    struct loader *ld;
    const char *file; /* in cfg->files */
    size_t errors;
    bool stopped; /* too many errors: the rest is not read */
    struct csv t;
};

static void csv_err(struct csv_reader *r, int line, int col, const char *fmt, ...)
    HIBUS_PRINTF(4, 5);

static void csv_err(struct csv_reader *r, int line, int col, const char *fmt, ...)
{
    if (r->stopped)
        return;
    if (r->errors++ == CSV_MAX_ERRORS) {
        config_err_pos(r->ld, r->file, line, col,
                       "too many errors in this file (%d); the rest of it was not checked",
                       CSV_MAX_ERRORS);
        r->stopped = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    config_verr_pos(r->ld, r->file, line, col, fmt, ap);
    va_end(ap);
}

/* Reads one record into r->t.f. Returns 1, 0 at the end of the file (or after too
 * many errors), -1 when the record was malformed (reported and skipped), -2 when
 * nothing more can be read. */
static int csv_record(struct csv_reader *r)
{
    if (r->stopped)
        return 0;
    int rc = csv_next(&r->t);
    int line = r->t.err_line, col = r->t.err_col;
    switch (rc < 0 ? r->t.err : CSV_E_NONE) {
    case CSV_E_NONE: break;
    case CSV_E_UNTERMINATED:
        csv_err(r, line, col,
                "unterminated quoted field (a field that starts with \" ends with \")");
        break;
    case CSV_E_AFTER_QUOTE:
        csv_err(r, line, col,
                "unexpected character after a closing quote (inside a quoted field, a quote "
                "is written \"\")");
        break;
    case CSV_E_QUOTE_IN_FIELD:
        csv_err(r, line, col,
                "quote inside a field that does not start with one (quote the whole field "
                "and double the quote: \"a\"\"b\")");
        break;
    case CSV_E_TOO_LONG:
        csv_err(r, line, col, "field is too long (%zu bytes, at most %d)", r->t.err_len,
                CONFIG_MAX_VALUE);
        break;
    case CSV_E_NOMEM: r->ld->oom = true; break;
    }
    return rc;
}

/* A line with nothing on it. */
static bool csv_empty_line(const struct csv_reader *r)
{
    return r->t.n == 1 && r->t.f[0].len == 0;
}

/* Reads a whole file (NUL-terminated) for the CSV reader; problems opening it are
 * reported at from. */
static char *read_csv_file(struct loader *ld, const char *file, const struct config_pos *from,
                           size_t *len)
{
    size_t size = 0;
    const char *why = NULL;
    FILE *fp = config_open_regular(file, CONFIG_MAX_CSV, &size, &why);
    char *buf = NULL;
    if (fp != NULL) {
        buf = malloc(size + 1);
        if (buf == NULL) {
            ld->oom = true;
        } else {
            *len = fread(buf, 1, size, fp);
            if (ferror(fp)) {
                why = strerror(EIO);
                free(buf);
                buf = NULL;
            } else {
                buf[*len] = '\0';
            }
        }
        fclose(fp);
    }
    if (why != NULL)
        config_err_pos(ld, from->file, from->line, from->col, "could not read file \"%s\": %s",
                       file, why);
    return buf;
}

static void csv_row(struct csv_reader *r, struct mapping_load *ml, int kind)
{
    struct loader *ld = r->ld;
    const struct csv_field *f = r->t.f;
    struct config_pos at = {r->file, f[0].line, f[0].col};
    if (kind == CSV_ORG_UNITS) {
        bool ok = true;
        if (f[0].s[0] == '\0') {
            csv_err(r, f[0].line, f[0].col, "code must not be empty");
            ok = false;
        }
        if (f[1].s[0] == '\0') {
            csv_err(r, f[1].line, f[1].col, "uid must not be empty");
            ok = false;
        } else if (!mapping_id_valid(ml->m, MAPPING_ORG_UNIT, f[1].s)) {
            csv_err(r, f[1].line, f[1].col, "\"%s\" is not a DHIS2 UID (" UID_EXPECTED ")", f[1].s);
            ok = false;
        }
        if (ok)
            add_org_unit(ld, ml, f[0].s, f[1].s, at);
        return;
    }
    bool ok = true;
    if (f[0].s[0] == '\0') {
        csv_err(r, f[0].line, f[0].col, "item must not be empty");
        ok = false;
    }
    if (f[2].s[0] == '\0') {
        csv_err(r, f[2].line, f[2].col, "data_element must not be empty");
        ok = false;
    } else if (!mapping_id_valid(ml->m, MAPPING_DATA_ELEMENT, f[2].s)) {
        csv_err(r, f[2].line, f[2].col, "\"%s\" is not a DHIS2 UID (" UID_EXPECTED ")", f[2].s);
        ok = false;
    }
    if (f[3].s[0] != '\0' && !mapping_id_valid(ml->m, MAPPING_COC, f[3].s)) {
        csv_err(r, f[3].line, f[3].col, "\"%s\" is not a DHIS2 UID (" UID_EXPECTED ")", f[3].s);
        ok = false;
    }
    if (ok)
        add_item(ld, ml, f[0].s, f[1].s[0] ? f[1].s : NULL, f[2].s, f[3].s[0] ? f[3].s : NULL, NULL,
                 at);
}

static void load_csv(struct loader *ld, struct mapping_load *ml, int kind)
{
    const char *file = config_add_file(ld, ml->csv[kind]);
    ml->csv[kind] = NULL;
    if (file == NULL)
        return;
    ml->files[1 + kind] = file;
    size_t len = 0;
    char *buf = read_csv_file(ld, file, &ml->csv_pos[kind], &len);
    if (buf == NULL)
        return;
    /* Codes are matched against payloads that must be UTF-8 and sent to DHIS2 as
     * JSON: a table that is not UTF-8 could never match, and is refused. */
    size_t bad = text_utf8_invalid_at(buf, len);
    if (bad < len) {
        int line = 1, col = 1;
        for (size_t i = 0; i < bad; i++, col++)
            if (buf[i] == '\n')
                line++, col = 0;
        config_err_pos(ld, file, line, col,
                       "the file is not UTF-8 (byte 0x%02X): save it as UTF-8 (in a spreadsheet, "
                       "\"CSV UTF-8\")",
                       (unsigned char)buf[bad]);
        free(buf);
        return;
    }
    const char *const *header = csv_headers[kind];
    size_t nh = 0;
    while (header[nh])
        nh++;
    char want[128];
    snprintf(want, sizeof want, "%s", nh > 0 ? header[0] : "");
    for (size_t i = 1; i < nh; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), ",%s", header[i]);

    struct csv_reader r = {.ld = ld, .file = file};
    size_t bom =
        len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* as spreadsheets write */
    csv_init(&r.t, buf + bom, len - bom, false, CONFIG_MAX_VALUE);
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        int line = 1;
        const char *ls = buf;
        for (const char *q = buf; q < nul; q++)
            if (*q == '\n') {
                line++;
                ls = q + 1;
            }
        config_err_pos(ld, file, line, (int)(nul - ls) + 1,
                       "file contains a NUL byte (expected a text file)");
        free(buf);
        return;
    }

    int rc = csv_record(&r);
    bool header_ok = rc == 1 && r.t.n == nh;
    for (size_t i = 0; header_ok && i < nh; i++)
        header_ok = strcmp(r.t.f[i].s, header[i]) == 0;
    if (rc == 0) {
        config_err_pos(ld, file, 1, 1, "expected the header \"%s\", got an empty file", want);
    } else if (rc == 1 && !header_ok) {
        char got[256] = "";
        for (size_t i = 0; i < r.t.n && strlen(got) + 1 < sizeof got; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "", r.t.f[i].s);
        config_err_pos(ld, file, r.t.rec_line, 1, "expected the header \"%s\", got \"%s\"", want,
                       got);
    }
    while (header_ok && !r.stopped && !ld->oom) {
        rc = csv_record(&r);
        if (rc == 0 || rc == -2)
            break;
        if (rc < 0 || csv_empty_line(&r))
            continue;
        if (r.t.n != nh) {
            csv_err(&r, r.t.rec_line, r.t.n > nh ? r.t.f[nh].col : 1,
                    "expected %zu fields (%s), got %zu", nh, want, r.t.n);
            continue;
        }
        csv_row(&r, ml, kind);
    }
    csv_free(&r.t);
    free(buf);
}

/* --- duplicates, across the YAML file and its CSV files --- */

struct dup_key {
    const char *a, *b; /* code, or item and measure (b may be NULL) */
    size_t seq;        /* order of definition: the first of equal keys is the original */
    struct config_pos pos;
};

static int cmp_dup_key(const void *x, const void *y)
{
    const struct dup_key *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    if (c == 0 && p->b != q->b)
        c = p->b == NULL ? -1 : q->b == NULL ? 1 : strcmp(p->b, q->b);
    if (c == 0)
        c = p->seq < q->seq ? -1 : p->seq > q->seq;
    return c;
}

struct dup_report {
    struct config_pos at, first;
    const char *a, *b;
    int rank; /* file order: the YAML file, then the CSV files */
};

static int cmp_dup_report(const void *x, const void *y)
{
    const struct dup_report *p = x, *q = y;
    if (p->rank != q->rank)
        return p->rank < q->rank ? -1 : 1;
    if (p->at.line != q->at.line)
        return p->at.line < q->at.line ? -1 : 1;
    return p->at.col < q->at.col ? -1 : p->at.col > q->at.col;
}

/* Reports every org unit code, or (item, measure), defined twice, at the later
 * definition and naming the first. Returns the number found. */
static size_t report_duplicates(struct loader *ld, const struct mapping_load *ml, bool items)
{
    const struct mapping *m = ml->m;
    size_t n = items ? m->n_items : m->n_org_units;
    if (n < 2)
        return 0;
    struct dup_key *keys = calloc(n, sizeof *keys);
    struct dup_report *reps = calloc(n, sizeof *reps);
    if (keys == NULL || reps == NULL) {
        ld->oom = true;
        free(keys);
        free(reps);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = items
                      ? (struct dup_key){m->items[i].item, m->items[i].measure, i, ml->item_pos[i]}
                      : (struct dup_key){m->org_units[i].code, NULL, i, ml->ou_pos[i]};
    qsort(keys, n, sizeof *keys, cmp_dup_key);
    size_t nr = 0;
    for (size_t i = 1, first = 0; i < n; i++) {
        struct dup_key *k = &keys[i], *f = &keys[first];
        if (strcmp(k->a, f->a) != 0 ||
            (k->b != f->b && (k->b == NULL || f->b == NULL || strcmp(k->b, f->b) != 0))) {
            first = i;
            continue;
        }
        int rank = 0;
        while (rank < 2 && ml->files[rank] != k->pos.file)
            rank++;
        reps[nr++] = (struct dup_report){k->pos, f->pos, k->a, k->b, rank};
    }
    qsort(reps, nr, sizeof *reps, cmp_dup_report);
    size_t said = 0;
    for (size_t i = 0; i < nr; i++) {
        const struct dup_report *d = &reps[i];
        /* an item written twice repeats all its rows at one place: say it once */
        if (i > 0 && reps[i - 1].at.file == d->at.file && reps[i - 1].at.line == d->at.line &&
            reps[i - 1].at.col == d->at.col)
            continue;
        if (said++ == CSV_MAX_ERRORS) { /* a file listed twice would give one per line */
            config_err_pos(ld, d->at.file, d->at.line, d->at.col,
                           "too many duplicate %s (%d); the others are not listed",
                           items ? "items" : "org unit codes", CSV_MAX_ERRORS);
            break;
        }
        if (!items)
            config_err_pos(ld, d->at.file, d->at.line, d->at.col,
                           "duplicate org unit code \"%s\" (first defined at %s:%d:%d)", d->a,
                           d->first.file, d->first.line, d->first.col);
        else if (d->b == NULL)
            config_err_pos(ld, d->at.file, d->at.line, d->at.col,
                           "duplicate mapping for item \"%s\" (first defined at %s:%d:%d)", d->a,
                           d->first.file, d->first.line, d->first.col);
        else
            config_err_pos(ld, d->at.file, d->at.line, d->at.col,
                           "duplicate mapping for item \"%s\", measure \"%s\" (first defined at "
                           "%s:%d:%d)",
                           d->a, d->b, d->first.file, d->first.line, d->first.col);
    }
    free(keys);
    free(reps);
    return nr;
}

/* Reads mappings/NAME.yaml and its CSV files into p->m. */
static void load_mapping(struct loader *ld, const struct pending_mapping *p)
{
    struct mapping_load ml = {.m = p->m};
    size_t start = ld->diags->n;
    if (config_load_file(ld, config_xstrdup(ld, p->m->file), &p->from, load_mapping_yaml, &ml)) {
        for (int i = 0; i < 2 && !ld->oom; i++)
            if (ml.csv[i])
                load_csv(ld, &ml, i);
        if (!ld->oom && report_duplicates(ld, &ml, false) + report_duplicates(ld, &ml, true) == 0 &&
            ld->diags->n == start) {
            const char *dup = NULL;
            if (!mapping_sort(p->m, &dup)) /* cannot happen after the checks above */
                config_err_pos(ld, ml.files[0], 0, 0, "duplicate code \"%s\"", dup ? dup : "");
        }
        config_sort_diags_by_file(ld, start);
    }
    free(ml.csv[0]);
    free(ml.csv[1]);
    free(ml.ou_pos);
    free(ml.item_pos);
}

void config_load_pending_mappings(struct loader *ld)
{
    for (size_t i = 0; i < ld->n_pending && !ld->oom; i++)
        load_mapping(ld, &ld->pending[i]);
    ld->n_pending = 0;
}
