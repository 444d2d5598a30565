/*
 * mapping_pull.c - hibus mapping pull (see hibus/mapping_pull.h): the metadata a
 * mapping names, asked from DHIS2; the edits that bring the mapping in step; the
 * new text of its CSV and YAML files.
 *
 * Invariants: the plan never changes a row it cannot decide (a code DHIS2 does not
 * know whose target still exists is the source's own code, kept); a row is removed
 * only when DHIS2 knows neither its code nor its target. The files are rewritten
 * from their current text, so rows, comments and order the pull does not touch stay
 * as they were.
 */
#include "hibus/mapping_pull.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/csv.h"
#include "hibus/dhis2.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static char *xdup(const char *s)
{
    return s ? hibus_xstrdup(s) : NULL;
}

static bool same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The property DHIS2 knows the mapping's targets of kind k by. */
static const char *prop_of(const struct mapping *m, enum mapping_kind k)
{
    return strcmp(mapping_id_scheme(m, k), "CODE") == 0 ? "code" : "id";
}

/* ------------------------------------------------------------------ fetch */

/* Fields as the metadata API takes them (DHIS2 Web API guide, "Metadata field
 * filter": nested selections in brackets). attributeValues is the shape of
 * dhis2/dhis2-core dhis-2/dhis-api/src/main/java/org/hisp/dhis/attribute/
 * AttributeValue.java: [{"attribute": {"id"}, "value"}]. */
#define OU_FIELDS "id,code,name,attributeValues[value,attribute[id]]"
#define DE_FIELDS "id,code,name,categoryCombo[id]"
#define COC_FIELDS "id,code,name,categoryCombo[id],categoryOptions[id,code,name]"

void mapping_pull_meta_free(struct pull_meta *meta)
{
    json_decref(meta->org_units);
    json_decref(meta->ou_existing);
    json_decref(meta->data_elements);
    json_decref(meta->data_set_des);
    json_decref(meta->cocs);
    memset(meta, 0, sizeof *meta);
}

/* values[] of the strings in set (an object) that are not keys of have. */
static const char **missing_from(const json_t *set, const json_t *have, size_t *n)
{
    const char **v = hibus_xcalloc(json_object_size(set) + 1, sizeof *v);
    const char *k;
    json_t *x;
    *n = 0;
    json_object_foreach((json_t *)set, k, x)
    {
        if (json_object_get(have, k) == NULL)
            v[(*n)++] = k;
    }
    return v;
}

/* Adds the prop of every object of list to the object set. */
static void index_by(json_t *set, const json_t *list, const char *prop)
{
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o)
    {
        const char *t = jstr(o, prop);
        if (t != NULL)
            json_object_set_new(set, t, json_true());
    }
}

enum hibus_err mapping_pull_fetch(const struct config_route *route, const struct mapping *m,
                                  size_t page_size, struct pull_meta *meta, struct hibus_error *err)
{
    memset(meta, 0, sizeof *meta);
    meta->org_units = json_array();
    meta->ou_existing = json_object();
    meta->data_elements = json_array();
    meta->cocs = json_array();
    enum hibus_err rc = HIBUS_OK;
    char esc[512], query[1024];
    const char *ds_id = NULL;
    json_t *ds_doc = json_array();

    /* the data set: its id (the mapping may name it by code) and data elements */
    if (m->data_set_uid != NULL) {
        const char *ds = m->data_set_uid;
        rc = dhis2_get_in(route, "dataSets", prop_of(m, MAPPING_DATA_SET), &ds, 1,
                          "id,code,name,dataSetElements[dataElement[id]]", ds_doc, err);
        const json_t *set = json_array_get(ds_doc, 0);
        if (rc == HIBUS_OK && set == NULL) {
            rc = hibus_error_set(err, HIBUS_E_TARGET,
                                 "DHIS2 has no data set %s, the data_set of mapping \"%s\"", ds,
                                 m->name);
            hibus_error_hint(err,
                             "Correct data_set: in \"%s\"; the pull takes the org units "
                             "and data elements of that data set.",
                             m->file);
        }
        if (rc == HIBUS_OK) {
            ds_id = jstr(set, "id");
            meta->data_set_des = json_object();
            size_t i;
            const json_t *dse;
            json_array_foreach(json_object_get(set, "dataSetElements"), i, dse)
            {
                const char *id = jstr(json_object_get(dse, "dataElement"), "id");
                if (id != NULL)
                    json_object_set_new(meta->data_set_des, id, json_true());
            }
        }
    }

    /* org units: the data set's, else every one, page after page */
    if (rc == HIBUS_OK) {
        if (ds_id != NULL) {
            dhis2_url_escape(esc, sizeof esc, ds_id);
            snprintf(query, sizeof query, "fields=%s&filter=dataSets.id:eq:%s", OU_FIELDS, esc);
        } else {
            snprintf(query, sizeof query, "fields=%s", OU_FIELDS);
        }
        rc = dhis2_get_all(route, "organisationUnits", query, page_size, meta->org_units, err);
    }
    /* the mapped org units that are not candidates: do they exist at all? */
    if (rc == HIBUS_OK) {
        const char *prop = prop_of(m, MAPPING_ORG_UNIT);
        index_by(meta->ou_existing, meta->org_units, prop);
        json_t *want = json_object();
        for (size_t i = 0; i < m->n_org_units; i++)
            json_object_set_new(want, m->org_units[i].uid, json_true());
        size_t n = 0;
        const char **v = missing_from(want, meta->ou_existing, &n);
        json_t *found = json_array();
        rc = dhis2_get_in(route, "organisationUnits", prop, v, n, "id,code", found, err);
        index_by(meta->ou_existing, found, prop);
        json_decref(found);
        free(v);
        json_decref(want);
    }

    /* data elements: the data set's, those named by the items' codes, and the
     * current targets */
    if (rc == HIBUS_OK) {
        json_t *ids = json_object(), *codes = json_object(), *have = json_object();
        const char *k;
        json_t *x;
        if (meta->data_set_des)
            json_object_update(ids, meta->data_set_des);
        bool by_code = strcmp(prop_of(m, MAPPING_DATA_ELEMENT), "code") == 0;
        for (size_t i = 0; i < m->n_items; i++) {
            json_object_set_new(codes, m->items[i].item, json_true());
            json_object_set_new(by_code ? codes : ids, m->items[i].de_uid, json_true());
        }
        size_t n = 0;
        const char **v = missing_from(ids, have, &n);
        rc = dhis2_get_in(route, "dataElements", "id", v, n, DE_FIELDS, meta->data_elements, err);
        free(v);
        index_by(have, meta->data_elements, "code");
        if (rc == HIBUS_OK) {
            v = missing_from(codes, have, &n);
            rc = dhis2_get_in(route, "dataElements", "code", v, n, DE_FIELDS, meta->data_elements,
                              err);
            free(v);
        }
        /* the same data element may have come twice (by id and by code) */
        json_t *seen = json_object(), *uniq = json_array();
        size_t i;
        json_array_foreach(meta->data_elements, i, x)
        {
            const char *id = jstr(x, "id");
            if (id != NULL && json_object_get(seen, id) == NULL) {
                json_object_set_new(seen, id, json_true());
                json_array_append(uniq, x);
            }
        }
        json_decref(meta->data_elements);
        meta->data_elements = uniq;
        /* option combos: those of the data elements' category combos, and the
         * current targets (to tell a removed one from one of another combo) */
        json_t *combos = json_object();
        json_array_foreach(meta->data_elements, i, x)
        {
            const char *c = jstr(json_object_get(x, "categoryCombo"), "id");
            if (c != NULL)
                json_object_set_new(combos, c, json_true());
        }
        json_object_clear(seen);
        if (rc == HIBUS_OK && json_object_size(combos) > 0) {
            struct buf q = {0};
            char part[512];
            snprintf(part, sizeof part, "fields=%s&filter=categoryCombo.id:in:[", COC_FIELDS);
            buf_append(&q, part, strlen(part));
            size_t j = 0;
            json_object_foreach(combos, k, x)
            {
                dhis2_url_escape(esc, sizeof esc, k);
                if (j++ > 0)
                    buf_append(&q, ",", 1);
                buf_append(&q, esc, strlen(esc));
            }
            buf_append(&q, "]", 1);
            char *qs = buf_take(&q, NULL);
            rc = dhis2_get_all(route, "categoryOptionCombos", qs, page_size, meta->cocs, err);
            free(qs);
        }
        const char *cprop = prop_of(m, MAPPING_COC);
        index_by(seen, meta->cocs, cprop);
        json_t *want = json_object();
        for (size_t r = 0; r < m->n_items; r++)
            if (m->items[r].coc_uid != NULL)
                json_object_set_new(want, m->items[r].coc_uid, json_true());
        if (rc == HIBUS_OK) {
            v = missing_from(want, seen, &n);
            rc = dhis2_get_in(route, "categoryOptionCombos", cprop, v, n, COC_FIELDS, meta->cocs,
                              err);
            free(v);
        }
        json_decref(want);
        json_decref(combos);
        json_decref(seen);
        json_decref(ids);
        json_decref(codes);
        json_decref(have);
    }
    json_decref(ds_doc);
    if (rc != HIBUS_OK)
        mapping_pull_meta_free(meta);
    return rc;
}

/* ------------------------------------------------------------------- plan */

static void note(struct pull_plan *p, const char *fmt, ...) HIBUS_PRINTF(2, 3);

static void note(struct pull_plan *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_array_append_new(p->notes, json_string(line));
}

static struct pull_edit *edit(struct pull_plan *p, enum pull_kind kind, enum pull_change change,
                              const char *code, const char *measure, const char *old_uid,
                              const char *new_uid, const char *name, const char *file)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->v = hibus_xreallocarray(p->v, p->cap, sizeof *p->v);
    }
    struct pull_edit *e = &p->v[p->n++];
    *e = (struct pull_edit){kind,          change, xdup(code), xdup(measure), xdup(old_uid),
                            xdup(new_uid), NULL,   xdup(name), file,          false};
    return e;
}

void mapping_pull_plan_free(struct pull_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].code);
        free(p->v[i].measure);
        free(p->v[i].old_uid);
        free(p->v[i].new_uid);
        free(p->v[i].de);
        free(p->v[i].name);
    }
    free(p->v);
    json_decref(p->notes);
    memset(p, 0, sizeof *p);
}

/* A name or code as a comparable word: lower case, every run of other characters
 * than letters and digits one "_", none at the ends ("Stock on hand",
 * "STOCK_ON_HAND" and "stock-on-hand" are all "stock_on_hand"). */
static void norm(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    bool gap = false;
    for (; s != NULL && *s && n + 2 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c >= 0x80) {
            if (gap && n > 0)
                out[n++] = '_';
            out[n++] = (char)tolower(c);
            gap = false;
        } else {
            gap = true;
        }
    }
    out[n] = '\0';
}

static bool norm_eq(const char *a, const char *b)
{
    char x[512], y[512];
    if (a == NULL || b == NULL)
        return false;
    norm(a, x, sizeof x);
    norm(b, y, sizeof y);
    return x[0] != '\0' && strcmp(x, y) == 0;
}

/* Does the measure name the option combo: its code or name, or (for a combo of
 * several categories) its options' codes or names joined with ",", in any order? */
static bool measure_matches(const char *measure, const json_t *coc)
{
    if (norm_eq(measure, jstr(coc, "code")) || norm_eq(measure, jstr(coc, "name")))
        return true;
    const json_t *opts = json_object_get(coc, "categoryOptions");
    size_t n = json_array_size(opts);
    if (n == 0 || n > 16)
        return false;
    bool used[16] = {false};
    size_t parts = 0;
    const char *p = measure;
    while (p != NULL) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char part[256];
        snprintf(part, sizeof part, "%.*s", (int)(len < 255 ? len : 255), p);
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            const json_t *o = json_array_get(opts, i);
            if (!used[i] && (norm_eq(part, jstr(o, "code")) || norm_eq(part, jstr(o, "name"))))
                used[i] = found = true;
        }
        if (!found)
            return false;
        parts++;
        p = comma ? comma + 1 : NULL;
    }
    return parts == n;
}

static bool is_default_coc(const json_t *coc)
{
    return same(jstr(coc, "name"), "default");
}

static const char *combo_of(const json_t *o)
{
    return jstr(json_object_get(o, "categoryCombo"), "id");
}

/* The value of attribute attr on org unit ou, or NULL. */
static const char *attribute_value(const json_t *ou, const char *attr)
{
    size_t i;
    const json_t *av;
    json_array_foreach(json_object_get(ou, "attributeValues"), i, av)
    {
        if (same(jstr(json_object_get(av, "attribute"), "id"), attr))
            return jstr(av, "value");
    }
    return NULL;
}

static void plan_org_units(const struct mapping *m, const struct pull_meta *meta,
                           struct pull_plan *p)
{
    const char *prop = prop_of(m, MAPPING_ORG_UNIT), *attr = m->pull_org_unit_attribute;
    const char *by = attr ? "attribute value" : "code";
    json_t *by_key = json_object(), *codes = json_object(), *targets = json_object();
    size_t i, keyless = 0;
    json_t *ou;
    json_array_foreach(meta->org_units, i, ou)
    {
        const char *key = attr ? attribute_value(ou, attr) : jstr(ou, "code");
        json_t *had = key ? json_object_get(by_key, key) : NULL;
        if (key == NULL || key[0] == '\0') {
            keyless++;
        } else if (had != NULL && !json_is_null(had)) {
            note(p,
                 "org units %s and %s both have the %s \"%s\" in DHIS2: neither is mapped from "
                 "it; give each its own %s in DHIS2",
                 jstr(had, "id"), jstr(ou, "id"), by, key, by);
            json_object_set_new(by_key, key, json_null());
        } else if (had == NULL) {
            json_object_set(by_key, key, ou);
        }
    }
    for (size_t r = 0; r < m->n_org_units; r++) {
        const struct mapping_code *row = &m->org_units[r];
        json_object_set_new(codes, row->code, json_true());
        json_object_set_new(targets, row->uid, json_true());
        json_t *o = json_object_get(by_key, row->code);
        const char *t = o ? jstr(o, prop) : NULL;
        if (o != NULL && t != NULL && strcmp(t, row->uid) == 0)
            p->unchanged[PULL_ORG_UNIT]++;
        else if (t != NULL)
            edit(p, PULL_ORG_UNIT, PULL_CHANGE, row->code, NULL, row->uid, t, jstr(o, "name"),
                 row->from);
        else if (o != NULL || json_object_get(meta->ou_existing, row->uid) != NULL)
            p->kept[PULL_ORG_UNIT]++; /* ambiguous, or the source's own code */
        else
            edit(p, PULL_ORG_UNIT, PULL_REMOVE, row->code, NULL, row->uid, NULL, NULL, row->from);
    }
    const char *to = m->org_units_csv ? m->org_units_csv : m->file;
    json_array_foreach(meta->org_units, i, ou)
    {
        const char *key = attr ? attribute_value(ou, attr) : jstr(ou, "code");
        const char *t = jstr(ou, prop);
        /* a facility already mapped under a code of the source's own is not mapped twice */
        if (key == NULL || key[0] == '\0' || t == NULL || json_object_get(codes, key) != NULL ||
            json_object_get(targets, t) != NULL || json_object_get(by_key, key) != ou)
            continue;
        json_object_set_new(targets, t, json_true());
        edit(p, PULL_ORG_UNIT, PULL_ADD, key, NULL, NULL, t, jstr(ou, "name"), to);
    }
    if (keyless > 0)
        note(p, "%zu org unit%s in DHIS2 ha%s no %s%s%s: not mapped", keyless,
             keyless == 1 ? "" : "s", keyless == 1 ? "s" : "ve", by, attr ? " for attribute " : "",
             attr ? attr : "");
    json_decref(by_key);
    json_decref(codes);
    json_decref(targets);
}

/* The measure a new row of option combo coc gets: one the mapping already uses
 * for it, else its code (else name) as a word ("STOCK_ON_HAND": stock_on_hand). */
static void measure_for(const struct mapping *m, const json_t *coc, char *out, size_t cap)
{
    for (size_t i = 0; i < m->n_items; i++)
        if (m->items[i].measure != NULL && measure_matches(m->items[i].measure, coc)) {
            snprintf(out, cap, "%s", m->items[i].measure);
            return;
        }
    const char *c = jstr(coc, "code");
    norm(c && c[0] ? c : jstr(coc, "name"), out, cap);
}

/* New rows for the option combos of data element de that no row of item covers. */
static void plan_new_measures(const struct mapping *m, const struct pull_meta *meta,
                              struct pull_plan *p, const char *item, const json_t *de,
                              const char *de_target, const json_t *covered, const char *to,
                              bool yaml_item)
{
    const char *cprop = prop_of(m, MAPPING_COC), *combo = combo_of(de);
    size_t i;
    const json_t *coc;
    json_array_foreach(meta->cocs, i, coc)
    {
        const char *t = jstr(coc, cprop);
        if (combo == NULL || !same(combo_of(coc), combo) || is_default_coc(coc) || t == NULL ||
            json_object_get(covered, t) != NULL)
            continue;
        char measure[256];
        measure_for(m, coc, measure, sizeof measure);
        if (measure[0] == '\0') { /* neither code nor name has a letter or digit */
            note(p,
                 "item \"%s\": category option combo %s has no code or name to make a measure "
                 "of: not added",
                 item, t);
            continue;
        }
        if (yaml_item) {
            note(p,
                 "item \"%s\": category option combo %s (%s) has no measure; add \"%s: %s\" to "
                 "its measures in \"%s\"",
                 item, t, jstr(coc, "name") ? jstr(coc, "name") : "", measure, t, to);
            continue;
        }
        bool taken = false;
        for (size_t r = 0; r < m->n_items && !taken; r++)
            taken = strcmp(m->items[r].item, item) == 0 && same(m->items[r].measure, measure);
        if (taken) {
            note(p,
                 "item \"%s\": category option combo %s would be measure \"%s\", which maps to "
                 "another combo: not added",
                 item, t, measure);
            continue;
        }
        struct pull_edit *e =
            edit(p, PULL_COC, PULL_ADD, item, measure, NULL, t, jstr(coc, "name"), to);
        e->de = xdup(de_target);
    }
}

/* The option combos of list that the measure names within combo. */
static size_t find_cocs(const json_t *list, const char *combo, const char *measure,
                        const json_t **first)
{
    size_t n = 0, i;
    const json_t *coc;
    *first = NULL;
    json_array_foreach(list, i, coc)
    {
        if (same(combo_of(coc), combo) && !is_default_coc(coc) && measure_matches(measure, coc)) {
            if (n++ == 0)
                *first = coc;
        }
    }
    return n;
}

static const json_t *find_by(const json_t *list, const char *prop, const char *value)
{
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o)
    {
        if (same(jstr(o, prop), value))
            return o;
    }
    return NULL;
}

static void plan_items(const struct mapping *m, const struct pull_meta *meta, struct pull_plan *p)
{
    const char *dprop = prop_of(m, MAPPING_DATA_ELEMENT), *cprop = prop_of(m, MAPPING_COC);
    json_t *items = json_object(), *de_targets = json_object();
    for (size_t a = 0, b; a < m->n_items; a = b) {
        const char *item = m->items[a].item, *cur = m->items[a].de_uid;
        bool one_de = true;
        for (b = a; b < m->n_items && strcmp(m->items[b].item, item) == 0; b++)
            one_de = one_de && strcmp(m->items[b].de_uid, cur) == 0;
        json_object_set_new(items, item, json_true());
        for (size_t r = a; r < b; r++)
            json_object_set_new(de_targets, m->items[r].de_uid, json_true());
        const json_t *de = one_de ? find_by(meta->data_elements, "code", item) : NULL;
        const char *t = de ? jstr(de, dprop) : NULL;
        if (!one_de)
            note(p,
                 "item \"%s\" maps to several data elements: its data element is not "
                 "refreshed by code",
                 item);
        if (t != NULL && strcmp(t, cur) != 0) {
            edit(p, PULL_DATA_ELEMENT, PULL_CHANGE, item, NULL, cur, t, jstr(de, "name"),
                 m->items[a].from);
        } else if (t != NULL) {
            p->unchanged[PULL_DATA_ELEMENT]++;
        } else {
            de = find_by(meta->data_elements, dprop, cur);
            if (de == NULL && one_de) {
                edit(p, PULL_DATA_ELEMENT, PULL_REMOVE, item, NULL, cur, NULL, NULL,
                     m->items[a].from);
                continue;
            }
            p->kept[PULL_DATA_ELEMENT]++;
            t = cur;
        }
        if (de == NULL)
            continue;
        /* each measure's option combo, within the data element's category combo */
        json_t *covered = json_object();
        for (size_t r = a; r < b; r++) {
            const struct mapping_item *row = &m->items[r];
            if (row->measure == NULL)
                continue;
            const json_t *coc = NULL;
            size_t n = find_cocs(meta->cocs, combo_of(de), row->measure, &coc);
            const char *ct = n == 1 ? jstr(coc, cprop) : NULL;
            if (n > 1)
                note(p,
                     "item \"%s\", measure \"%s\" names %zu category option combos of the "
                     "data element's category combo: kept as it is",
                     item, row->measure, n);
            if (ct != NULL && same(ct, row->coc_uid)) {
                p->unchanged[PULL_COC]++;
            } else if (ct != NULL) {
                struct pull_edit *e = edit(p, PULL_COC, PULL_CHANGE, item, row->measure,
                                           row->coc_uid, ct, jstr(coc, "name"), row->from);
                e->de = xdup(t);
            } else if (n > 1 || row->coc_uid == NULL ||
                       find_by(meta->cocs, cprop, row->coc_uid) != NULL) {
                p->kept[PULL_COC]++;
            } else {
                edit(p, PULL_COC, PULL_REMOVE, item, row->measure, row->coc_uid, NULL, NULL,
                     row->from);
            }
            const char *final = ct ? ct : row->coc_uid;
            if (final != NULL)
                json_object_set_new(covered, final, json_true());
        }
        bool yaml_item = m->file != NULL && same(m->items[a].from, m->file);
        plan_new_measures(m, meta, p, item, de, t, covered, m->items[a].from, yaml_item);
        json_decref(covered);
    }
    /* the data set's data elements that no item maps yet */
    const char *to = m->items_csv ? m->items_csv : m->file;
    size_t i, nocode = 0;
    const json_t *de;
    json_array_foreach(meta->data_elements, i, de)
    {
        const char *id = jstr(de, "id"), *code = jstr(de, "code"), *t = jstr(de, dprop);
        if (meta->data_set_des == NULL || id == NULL ||
            json_object_get(meta->data_set_des, id) == NULL || t == NULL ||
            json_object_get(de_targets, t) != NULL)
            continue;
        if (code == NULL || code[0] == '\0' || json_object_get(items, code) != NULL) {
            nocode += code == NULL || code[0] == '\0';
            continue;
        }
        edit(p, PULL_DATA_ELEMENT, PULL_ADD, code, NULL, NULL, t, jstr(de, "name"), to);
        json_t *none = json_object();
        plan_new_measures(m, meta, p, code, de, t, none, to, false);
        json_decref(none);
    }
    if (nocode > 0)
        note(p, "%zu data element%s of the data set ha%s no code in DHIS2: not mapped", nocode,
             nocode == 1 ? "" : "s", nocode == 1 ? "s" : "ve");
    json_decref(items);
    json_decref(de_targets);
}

void mapping_pull_plan(const struct mapping *m, const struct pull_meta *meta,
                       struct pull_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->notes = json_array();
    plan_org_units(m, meta, plan);
    plan_items(m, meta, plan);
}

/* ------------------------------------------------------------------ print */

static const char *const kind_titles[PULL_KINDS] = {"org units", "data elements",
                                                    "category option combos"};

void mapping_pull_print(const struct pull_plan *p, FILE *out)
{
    for (int k = 0; k < PULL_KINDS; k++) {
        size_t counts[3] = {0};
        for (size_t i = 0; i < p->n; i++)
            if (p->v[i].kind == (enum pull_kind)k)
                counts[p->v[i].change]++;
        if (counts[0] + counts[1] + counts[2] > 0)
            fprintf(out, "%s:\n", kind_titles[k]);
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < p->n; i++) {
                const struct pull_edit *e = &p->v[i];
                if (e->kind != (enum pull_kind)k || e->change != (enum pull_change)c)
                    continue;
                char src[600];
                snprintf(src, sizeof src, "%s%s%s", e->code, e->measure ? " " : "",
                         e->measure ? e->measure : "");
                fprintf(out, "  %c %s: ", "+~-"[c], src);
                if (c == PULL_ADD)
                    fprintf(out, "%s", e->new_uid);
                else if (c == PULL_CHANGE)
                    fprintf(out, "%s -> %s", e->old_uid, e->new_uid);
                else
                    fprintf(out, "%s", e->old_uid);
                if (c == PULL_REMOVE)
                    fprintf(out, " (DHIS2 knows neither the code nor the UID)");
                else if (e->name != NULL)
                    fprintf(out, " (%s)", e->name);
                fprintf(out, " in %s%s\n", e->file ? e->file : "?",
                        e->skipped ? " [not written: see the notes]" : "");
            }
        fprintf(out, "%s: %zu added, %zu changed, %zu removed, %zu unchanged, %zu kept\n",
                kind_titles[k], counts[0], counts[1], counts[2], p->unchanged[k], p->kept[k]);
    }
    size_t i;
    const json_t *n;
    json_array_foreach(p->notes, i, n) fprintf(out, "note: %s\n", json_string_value(n));
}

/* -------------------------------------------------------------------- CSV */

static void csv_field_out(struct buf *b, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        buf_append(b, s, strlen(s));
        return;
    }
    buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            buf_append(b, "\"", 1);
        buf_append(b, s, 1);
    }
    buf_append(b, "\"", 1);
}

static void csv_row_out(struct buf *b, const char *const *f, size_t n, const char *eol)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_append(b, ",", 1);
        csv_field_out(b, f[i] ? f[i] : "");
    }
    buf_append(b, eol, strlen(eol));
}

static bool applies(const struct pull_edit *e, const char *file, bool items)
{
    return !e->skipped && same(e->file, file) &&
           (items ? e->kind != PULL_ORG_UNIT : e->kind == PULL_ORG_UNIT);
}

enum hibus_err mapping_pull_rewrite_csv(const char *text, size_t len, bool items, const char *file,
                                        const struct pull_plan *p, char **out, size_t *out_len,
                                        struct hibus_error *err)
{
    static const char *const headers[2][4] = {
        {"code", "uid"}, {"item", "measure", "data_element", "category_option_combo"}};
    const size_t nf = items ? 4 : 2;
    const char *eol = memmem(text, len, "\r\n", 2) != NULL ? "\r\n" : "\n";
    size_t bom = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    struct buf b = {0};
    buf_append(&b, text, bom);
    csv_row_out(&b, headers[items], nf, eol);
    struct csv c;
    csv_init(&c, text + bom, len - bom, false, 0);
    int rc;
    bool header = true;
    while ((rc = csv_next(&c)) != 0) {
        if (rc < 0 || (!csv_blank(&c) && c.n != nf)) {
            int line = rc < 0 ? c.err_line : c.rec_line;
            csv_free(&c);
            buf_free(&b);
            return hibus_error_set(err, HIBUS_E_INVALID,
                                   "\"%s\" line %d is not a row of the table any more: the file "
                                   "changed after it was read",
                                   file, line);
        }
        if (header || csv_blank(&c)) {
            header = false;
            continue;
        }
        const char *f[4] = {NULL};
        for (size_t i = 0; i < nf; i++)
            f[i] = c.f[i].s;
        bool drop = false;
        for (size_t i = 0; i < p->n && !drop; i++) {
            const struct pull_edit *e = &p->v[i];
            if (!applies(e, file, items) || e->change == PULL_ADD || strcmp(e->code, f[0]) != 0)
                continue;
            if (e->kind == PULL_COC && strcmp(e->measure, f[1]) != 0)
                continue;
            size_t col = e->kind == PULL_ORG_UNIT ? 1 : e->kind == PULL_DATA_ELEMENT ? 2 : 3;
            if (e->change == PULL_REMOVE)
                drop = true;
            else if (same(f[col][0] ? f[col] : NULL, e->old_uid))
                f[col] = e->new_uid;
        }
        if (!drop)
            csv_row_out(&b, f, nf, eol);
    }
    csv_free(&c);
    /* rows to add: an item's row without measure first, then its measures */
    for (size_t i = 0; i < p->n; i++) {
        const struct pull_edit *e = &p->v[i];
        if (!applies(e, file, items) || e->change != PULL_ADD || e->kind == PULL_COC)
            continue;
        const char *f[4] = {e->code, e->new_uid};
        if (items) {
            f[1] = "";
            f[2] = e->new_uid;
            f[3] = "";
        }
        csv_row_out(&b, f, nf, eol);
        for (size_t j = 0; items && j < p->n; j++) {
            const struct pull_edit *x = &p->v[j];
            if (applies(x, file, true) && x->change == PULL_ADD && x->kind == PULL_COC &&
                strcmp(x->code, e->code) == 0) {
                const char *g[4] = {x->code, x->measure, x->de, x->new_uid};
                csv_row_out(&b, g, nf, eol);
            }
        }
    }
    /* measures added to items the mapping has */
    for (size_t i = 0; items && i < p->n; i++) {
        const struct pull_edit *x = &p->v[i];
        bool new_item = false;
        for (size_t j = 0; j < p->n && !new_item; j++)
            new_item = p->v[j].kind == PULL_DATA_ELEMENT && p->v[j].change == PULL_ADD &&
                       strcmp(p->v[j].code, x->code) == 0 && applies(&p->v[j], file, true);
        if (applies(x, file, true) && x->change == PULL_ADD && x->kind == PULL_COC && !new_item) {
            const char *g[4] = {x->code, x->measure, x->de, x->new_uid};
            csv_row_out(&b, g, nf, eol);
        }
    }
    *out = buf_take(&b, out_len);
    return HIBUS_OK;
}

/* ------------------------------------------------------------------- YAML */

struct yedit {
    size_t start, end;
    char *text;
    bool last; /* a new table at the end: after the other insertions there */
};

struct ytext {
    const char *s;
    size_t len;
    size_t *lines; /* byte offset of each line's start */
    size_t n_lines;
    yaml_document_t doc;
    struct yedit *ed;
    size_t n_ed, cap_ed;
};

/* The byte offset of a libyaml mark (line from 0, column in characters). */
static size_t yoff(const struct ytext *y, yaml_mark_t mk)
{
    if (mk.line >= y->n_lines)
        return y->len;
    size_t off = y->lines[mk.line];
    for (size_t c = 0; c < mk.column && off < y->len && y->s[off] != '\n'; c++) {
        off++;
        while (off < y->len && ((unsigned char)y->s[off] & 0xC0) == 0x80)
            off++;
    }
    return off;
}

/* Just past the end of the line that holds off (its newline included). */
static size_t line_end(const struct ytext *y, size_t off)
{
    const char *nl = memchr(y->s + off, '\n', y->len - off);
    return nl ? (size_t)(nl - y->s) + 1 : y->len;
}

static void yedit_add(struct ytext *y, size_t start, size_t end, char *text)
{
    if (y->n_ed == y->cap_ed) {
        y->cap_ed = y->cap_ed ? 2 * y->cap_ed : 16;
        y->ed = hibus_xreallocarray(y->ed, y->cap_ed, sizeof *y->ed);
    }
    y->ed[y->n_ed++] = (struct yedit){start, end, text, false};
}

static yaml_node_t *ynode(struct ytext *y, int i)
{
    return yaml_document_get_node(&y->doc, i);
}

/* The pair of mapping node map whose key is the scalar key, or NULL. */
static yaml_node_pair_t *ypair(struct ytext *y, const yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = ynode(y, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
            memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
            return p;
    }
    return NULL;
}

static yaml_node_t *yget(struct ytext *y, const yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p = ypair(y, map, key);
    return p ? ynode(y, p->value) : NULL;
}

static bool is_block_map(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_MAPPING_NODE &&
           n->data.mapping.style == YAML_BLOCK_MAPPING_STYLE &&
           n->data.mapping.pairs.top > n->data.mapping.pairs.start;
}

/* s as a YAML scalar: plain when it is a simple word, else double-quoted. */
static void yscalar(struct buf *b, const char *s)
{
    bool plain = isalnum((unsigned char)s[0]) != 0;
    for (const char *p = s; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("_.-/", *p) != NULL;
    if (plain) {
        buf_append(b, s, strlen(s));
        return;
    }
    buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_append(b, "\\", 1);
        buf_append(b, s, 1);
    }
    buf_append(b, "\"", 1);
}

static char *yscalar_dup(const char *s)
{
    struct buf b = {0};
    yscalar(&b, s);
    return buf_take(&b, NULL);
}

static void ycomment(struct buf *b, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return;
    buf_append(b, "  # ", 4);
    for (const char *p = name; *p; p++)
        buf_append(b, (unsigned char)*p < 0x20 ? " " : p, 1);
}

/* Replace the scalar node n by text s. */
static void yreplace(struct ytext *y, const yaml_node_t *n, const char *s)
{
    yedit_add(y, yoff(y, n->start_mark), yoff(y, n->end_mark), yscalar_dup(s));
}

/* Where the pair ends: after the line of its value's end (or at the line where a
 * block value's end mark already is). */
static size_t pair_end(struct ytext *y, const yaml_node_pair_t *p)
{
    const yaml_node_t *v = ynode(y, p->value);
    size_t e = yoff(y, v->end_mark);
    if (e > 0 && e <= y->len && y->s[e - 1] == '\n' && v->type != YAML_SCALAR_NODE)
        return e;
    return line_end(y, e);
}

/* Deletes the lines of a pair of a block mapping. */
static void ydelete(struct ytext *y, const yaml_node_pair_t *p)
{
    const yaml_node_t *k = ynode(y, p->key);
    yaml_mark_t start = k->start_mark;
    start.column = 0;
    yedit_add(y, yoff(y, start), pair_end(y, p), hibus_xstrdup(""));
}

/* Adds lines (each ending in \n) after the last pair of the root's key table, or
 * as a new table at the end. false (and nothing done) when the table is there but
 * not a block mapping with entries. */
static bool yappend(struct ytext *y, const yaml_node_t *root, const char *table, const char *lines)
{
    yaml_node_t *t = yget(y, root, table);
    struct buf b = {0};
    size_t at = y->len;
    if (t != NULL && !is_block_map(t))
        return false;
    if (t == NULL) {
        buf_append(&b, table, strlen(table));
        buf_append(&b, ":\n", 2);
        for (const char *l = lines; *l;) {
            const char *nl = strchr(l, '\n');
            buf_append(&b, "  ", 2);
            buf_append(&b, l, (size_t)(nl - l) + 1);
            l = nl + 1;
        }
    } else {
        yaml_node_pair_t *last = t->data.mapping.pairs.top - 1;
        size_t indent = ynode(y, t->data.mapping.pairs.start->key)->start_mark.column;
        at = pair_end(y, last);
        for (const char *l = lines; *l;) {
            const char *nl = strchr(l, '\n');
            for (size_t i = 0; i < indent; i++)
                buf_append(&b, " ", 1);
            buf_append(&b, l, (size_t)(nl - l) + 1);
            l = nl + 1;
        }
    }
    yedit_add(y, at, at, buf_take(&b, NULL));
    y->ed[y->n_ed - 1].last = t == NULL;
    return true;
}

static int cmp_yedit(const void *a, const void *b)
{
    const struct yedit *x = a, *z = b;
    /* by position; an insertion before a replacement at the same place */
    if (x->start != z->start)
        return x->start < z->start ? -1 : 1;
    if (x->last != z->last)
        return x->last ? 1 : -1;
    return (x->end > x->start) - (z->end > z->start);
}

static void skip_edit(struct pull_plan *p, struct pull_edit *e, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);

static void skip_edit(struct pull_plan *p, struct pull_edit *e, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->skipped = true;
    json_array_append_new(p->notes, json_string(line));
}

/* Does item's entry in items: use the shared measures: (no measures of its own)? */
static bool uses_shared(struct ytext *y, const yaml_node_t *v)
{
    return v != NULL && (v->type == YAML_SCALAR_NODE || yget(y, v, "measures") == NULL);
}

static void yaml_items(struct ytext *y, const yaml_node_t *root, const char *file,
                       struct pull_plan *p)
{
    yaml_node_t *items = yget(y, root, "items"), *shared = yget(y, root, "measures");
    /* the items on the shared measures, but those the pull removes */
    size_t n_shared_items = 0;
    if (items != NULL && items->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *q = items->data.mapping.pairs.start;
             q < items->data.mapping.pairs.top; q++) {
            const yaml_node_t *k = ynode(y, q->key);
            bool removed = false;
            for (size_t i = 0; i < p->n && !removed && k->type == YAML_SCALAR_NODE; i++)
                removed = p->v[i].kind == PULL_DATA_ELEMENT && p->v[i].change == PULL_REMOVE &&
                          same(p->v[i].file, file) &&
                          strcmp(p->v[i].code, (const char *)k->data.scalar.value) == 0;
            n_shared_items += !removed && uses_shared(y, ynode(y, q->value));
        }
    /* the shared measures as they will be: { measure: target } */
    json_t *shared_now = json_object();
    if (shared != NULL && shared->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *q = shared->data.mapping.pairs.start;
             q < shared->data.mapping.pairs.top; q++) {
            const yaml_node_t *k = ynode(y, q->key), *v = ynode(y, q->value);
            if (k->type == YAML_SCALAR_NODE && v->type == YAML_SCALAR_NODE)
                json_object_set_new(shared_now, (const char *)k->data.scalar.value,
                                    json_string((const char *)v->data.scalar.value));
        }
    for (size_t i = 0; i < p->n; i++) {
        struct pull_edit *e = &p->v[i];
        if (e->skipped || !same(e->file, file) || e->kind == PULL_ORG_UNIT || e->change == PULL_ADD)
            continue;
        yaml_node_pair_t *ip = ypair(y, items, e->code);
        yaml_node_t *v = ip ? ynode(y, ip->value) : NULL;
        if (v == NULL) {
            skip_edit(p, e, "item \"%s\" is not under items: in \"%s\" any more", e->code, file);
            continue;
        }
        if (e->kind == PULL_DATA_ELEMENT && e->change == PULL_REMOVE) {
            if (is_block_map(items))
                ydelete(y, ip);
            else
                skip_edit(p, e, "items: of \"%s\" is in flow style: remove item \"%s\" by hand",
                          file, e->code);
        } else if (e->kind == PULL_DATA_ELEMENT) {
            yaml_node_t *de = v->type == YAML_SCALAR_NODE ? v : yget(y, v, "data_element");
            if (de != NULL && de->type == YAML_SCALAR_NODE)
                yreplace(y, de, e->new_uid);
            else
                skip_edit(p, e, "item \"%s\" in \"%s\" has no data_element to change", e->code,
                          file);
        } else if (!uses_shared(y, v)) {
            yaml_node_t *own = yget(y, v, "measures");
            yaml_node_pair_t *mp = ypair(y, own, e->measure);
            if (mp == NULL)
                skip_edit(p, e, "item \"%s\": measure \"%s\" not found in \"%s\"", e->code,
                          e->measure, file);
            else if (e->change == PULL_CHANGE)
                yreplace(y, ynode(y, mp->value), e->new_uid);
            else if (is_block_map(own))
                ydelete(y, mp);
            else
                skip_edit(p, e,
                          "item \"%s\": its measures are in flow style: remove measure \"%s\" by "
                          "hand",
                          e->code, e->measure);
        }
    }
    /* shared measures: changed only when every item that uses them agrees */
    for (size_t i = 0; i < p->n; i++) {
        struct pull_edit *e = &p->v[i];
        if (e->skipped || !same(e->file, file) || e->kind != PULL_COC || e->change == PULL_ADD ||
            !uses_shared(y, yget(y, items, e->code)))
            continue;
        size_t agree = 0;
        bool first = true;
        for (size_t j = 0; j < p->n; j++) {
            const struct pull_edit *x = &p->v[j];
            if (x->kind == PULL_COC && same(x->file, file) && x->change == e->change &&
                same(x->measure, e->measure) && same(x->new_uid, e->new_uid) &&
                uses_shared(y, yget(y, items, x->code))) {
                agree++;
                first = first && j >= i;
            }
        }
        yaml_node_pair_t *mp = ypair(y, shared, e->measure);
        if (agree != n_shared_items || mp == NULL || e->change == PULL_REMOVE) {
            skip_edit(p, e,
                      "measure \"%s\" of item \"%s\" is in the shared measures: of \"%s\", and %s: "
                      "give the item measures of its own to change it alone",
                      e->measure, e->code, file,
                      e->change == PULL_REMOVE ? "a shared measure is not removed"
                                               : "not every item that uses them changes so");
            continue;
        }
        if (first) {
            yreplace(y, ynode(y, mp->value), e->new_uid);
            json_object_set_new(shared_now, e->measure, json_string(e->new_uid));
        }
    }
    /* new items */
    struct buf lines = {0};
    size_t added = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct pull_edit *e = &p->v[i];
        if (e->skipped || !same(e->file, file) || e->kind != PULL_DATA_ELEMENT ||
            e->change != PULL_ADD)
            continue;
        /* its measures: the shared ones exactly, or its own */
        size_t own = 0, match = 0;
        for (size_t j = 0; j < p->n; j++) {
            const struct pull_edit *x = &p->v[j];
            if (x->kind != PULL_COC || x->change != PULL_ADD || strcmp(x->code, e->code) != 0)
                continue;
            own++;
            match += same(json_string_value(json_object_get(shared_now, x->measure)), x->new_uid);
        }
        size_t n_shared = json_object_size(shared_now);
        yscalar(&lines, e->code);
        buf_append(&lines, ": ", 2);
        if (own == match && match == n_shared) {
            yscalar(&lines, e->new_uid);
        } else {
            buf_append(&lines, "{ data_element: ", 16);
            yscalar(&lines, e->new_uid);
            buf_append(&lines, ", measures: {", 13);
            size_t k = 0;
            for (size_t j = 0; j < p->n; j++) {
                const struct pull_edit *x = &p->v[j];
                if (x->kind != PULL_COC || x->change != PULL_ADD || strcmp(x->code, e->code) != 0)
                    continue;
                buf_append(&lines, k > 0 ? ", " : " ", k > 0 ? 2 : 1);
                k++;
                yscalar(&lines, x->measure);
                buf_append(&lines, ": ", 2);
                yscalar(&lines, x->new_uid);
            }
            buf_append(&lines, k ? " } }" : "} }", k ? 4 : 3);
        }
        ycomment(&lines, e->name);
        buf_append(&lines, "\n", 1);
        added++;
    }
    char *text = buf_take(&lines, NULL);
    if (added > 0 && !yappend(y, root, "items", text))
        for (size_t i = 0; i < p->n; i++) {
            struct pull_edit *e = &p->v[i];
            if (same(e->file, file) && e->kind != PULL_ORG_UNIT && e->change == PULL_ADD &&
                !e->skipped)
                skip_edit(p, e,
                          "items: of \"%s\" is not a block table with entries: add item \"%s\" "
                          "by hand, or name an items_csv: file",
                          file, e->code);
        }
    free(text);
    json_decref(shared_now);
}

static void yaml_org_units(struct ytext *y, const yaml_node_t *root, const char *file,
                           struct pull_plan *p)
{
    yaml_node_t *ous = yget(y, root, "org_units");
    struct buf lines = {0};
    size_t added = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct pull_edit *e = &p->v[i];
        if (e->skipped || !same(e->file, file) || e->kind != PULL_ORG_UNIT)
            continue;
        if (e->change == PULL_ADD) {
            yscalar(&lines, e->code);
            buf_append(&lines, ": ", 2);
            yscalar(&lines, e->new_uid);
            ycomment(&lines, e->name);
            buf_append(&lines, "\n", 1);
            added++;
            continue;
        }
        yaml_node_pair_t *op = ypair(y, ous, e->code);
        if (op == NULL)
            skip_edit(p, e, "org unit \"%s\" is not under org_units: in \"%s\" any more", e->code,
                      file);
        else if (e->change == PULL_CHANGE)
            yreplace(y, ynode(y, op->value), e->new_uid);
        else if (is_block_map(ous))
            ydelete(y, op);
        else
            skip_edit(p, e, "org_units: of \"%s\" is in flow style: remove \"%s\" by hand", file,
                      e->code);
    }
    char *text = buf_take(&lines, NULL);
    if (added > 0 && !yappend(y, root, "org_units", text))
        for (size_t i = 0; i < p->n; i++) {
            struct pull_edit *e = &p->v[i];
            if (same(e->file, file) && e->kind == PULL_ORG_UNIT && e->change == PULL_ADD)
                skip_edit(p, e,
                          "org_units: of \"%s\" is not a block table with entries: add \"%s\" "
                          "by hand, or name an org_units_csv: file",
                          file, e->code);
        }
    free(text);
}

enum hibus_err mapping_pull_rewrite_yaml(const char *text, size_t len, const char *file,
                                         struct pull_plan *p, char **out, size_t *out_len,
                                         struct hibus_error *err)
{
    struct ytext y = {.s = text, .len = len};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&parser, &y.doc);
    yaml_parser_delete(&parser);
    yaml_node_t *root = ok ? yaml_document_get_root_node(&y.doc) : NULL;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        if (ok)
            yaml_document_delete(&y.doc);
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "\"%s\" is not a mapping file any more: it changed after it was "
                               "read",
                               file);
    }
    y.lines = hibus_xmalloc((len + 2) * sizeof *y.lines);
    /* libyaml reads a byte-order mark without counting it in its marks */
    y.lines[y.n_lines++] = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            y.lines[y.n_lines++] = i + 1;
    yaml_org_units(&y, root, file, p);
    yaml_items(&y, root, file, p);
    if (y.n_ed > 0)
        qsort(y.ed, y.n_ed, sizeof *y.ed, cmp_yedit);
    struct buf b = {0};
    size_t pos = 0;
    bool eol = len == 0 || text[len - 1] == '\n';
    /* added lines end as the file's lines do */
    const char *nl = memmem(text, len, "\r\n", 2) != NULL ? "\r\n" : "\n";
    for (size_t i = 0; i < y.n_ed; i++) {
        if (y.ed[i].start < pos)
            continue; /* edits never overlap; if they did, the first one wins */
        buf_append(&b, text + pos, y.ed[i].start - pos);
        if (y.ed[i].start == len && !eol) { /* lines added after a last line without one */
            buf_append(&b, nl, strlen(nl));
            eol = true;
        }
        for (const char *c = y.ed[i].text; *c; c++)
            buf_append(&b, *c == '\n' ? nl : c, *c == '\n' ? strlen(nl) : 1);
        pos = y.ed[i].end > y.ed[i].start ? y.ed[i].end : y.ed[i].start;
    }
    buf_append(&b, text + pos, len - pos);
    for (size_t i = 0; i < y.n_ed; i++)
        free(y.ed[i].text);
    free(y.ed);
    free(y.lines);
    yaml_document_delete(&y.doc);
    *out = buf_take(&b, out_len);
    return HIBUS_OK;
}
