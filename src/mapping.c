/*
 * mapping.c - code tables (see hibus/mapping.h): sorting and lookups, and
 * mapping_apply(), which fills a canonical report's DHIS2 UIDs in place and
 * converts its period to the mapping's period type.
 *
 * Entry points: mapping_sort, mapping_org_unit, mapping_item, mapping_free,
 * mapping_apply. Loading mappings/NAME.yaml is config.c's job.
 *
 * Invariants: after mapping_sort() the org units are ordered by code and the
 * items by (item, measure), a NULL measure before any string, with no
 * duplicates, so lookups are bsearch() over read-only arrays and safe on any
 * thread.
 *
 * mapping_apply() decisions worth knowing:
 *  - Problems are listed once per distinct code (an item is an (item, measure)
 *    pair), with the "where" of the first value that had it; skipped values are
 *    listed once each, since each is a value that will not be delivered.
 *  - A value that is skipped for its org unit is not also checked for its item:
 *    one reason per skipped value.
 *  - The report's own org unit and period are needed only when some value does
 *    not override them; when they are needed and cannot be mapped, that is a
 *    problem under either policy (skip cannot drop a whole facility).
 *  - Every DHIS2 period id is validated with period_parse(), also when the
 *    mapping has no period type (then it is sent as it is).
 *  - Converting to the mapping's period type replaces report->period (and
 *    value->period for overrides) with the target id; period_start and
 *    period_end keep the source's dates.
 */
#include "hibus/mapping.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/buf.h"
#include "hibus/cpubudget.h"

/* ------------------------------------------------------------------ */
/* Sorting and lookups                                                 */
/* ------------------------------------------------------------------ */

/* strcmp with NULL before any string (NULL measure = "no measure"). */
static int cmp_nullable(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int cmp_code(const void *a, const void *b)
{
    const struct mapping_code *x = a, *y = b;
    return cmp_nullable(x->code, y->code);
}

static int cmp_item(const void *a, const void *b)
{
    const struct mapping_item *x = a, *y = b;
    int c = cmp_nullable(x->item, y->item);
    return c != 0 ? c : cmp_nullable(x->measure, y->measure);
}

bool mapping_sort(struct mapping *m, const char **dup_code)
{
    /* qsort() with a NULL base is undefined even for 0 elements. */
    if (m->n_org_units > 1)
        qsort(m->org_units, m->n_org_units, sizeof *m->org_units, cmp_code);
    if (m->n_items > 1)
        qsort(m->items, m->n_items, sizeof *m->items, cmp_item);
    if (m->n_data_sets > 1)
        qsort(m->data_sets, m->n_data_sets, sizeof *m->data_sets, cmp_code);
    if (m->n_aocs > 1)
        qsort(m->aocs, m->n_aocs, sizeof *m->aocs, cmp_code);
    if (m->n_periods > 1)
        qsort(m->periods, m->n_periods, sizeof *m->periods, cmp_code);
    const struct mapping_code *tables[3] = {m->data_sets, m->aocs, m->periods};
    size_t sizes[3] = {m->n_data_sets, m->n_aocs, m->n_periods};
    for (int t = 0; t < 3; t++)
        for (size_t i = 1; i < sizes[t]; i++)
            if (cmp_code(&tables[t][i - 1], &tables[t][i]) == 0) {
                if (dup_code != NULL)
                    *dup_code = tables[t][i].code;
                return false;
            }

    for (size_t i = 1; i < m->n_org_units; i++)
        if (cmp_code(&m->org_units[i - 1], &m->org_units[i]) == 0) {
            if (dup_code != NULL)
                *dup_code = m->org_units[i].code;
            return false;
        }
    for (size_t i = 1; i < m->n_items; i++)
        if (cmp_item(&m->items[i - 1], &m->items[i]) == 0) {
            if (dup_code != NULL)
                *dup_code = m->items[i].item;
            return false;
        }
    return true;
}

static const char *code_lookup(const struct mapping_code *t, size_t n, const char *code)
{
    if (code == NULL || n == 0)
        return NULL;
    struct mapping_code key = {.code = (char *)code};
    const struct mapping_code *c = bsearch(&key, t, n, sizeof *t, cmp_code);
    return c != NULL ? c->uid : NULL;
}

const char *mapping_org_unit(const struct mapping *m, const char *code)
{
    return m != NULL ? code_lookup(m->org_units, m->n_org_units, code) : NULL;
}

const char *mapping_data_set(const struct mapping *m, const char *code)
{
    return m != NULL ? code_lookup(m->data_sets, m->n_data_sets, code) : NULL;
}

const char *mapping_aoc(const struct mapping *m, const char *code)
{
    return m != NULL ? code_lookup(m->aocs, m->n_aocs, code) : NULL;
}

const char *mapping_period(const struct mapping *m, const char *code)
{
    return m != NULL ? code_lookup(m->periods, m->n_periods, code) : NULL;
}

/* DHIS2's ValueType names; the numeric ones are ValueType.NUMERIC_TYPES
 * (dhis2/dhis2-core, dhis-2/dhis-api/src/main/java/org/hisp/dhis/common/ValueType.java). */
static const char *const numeric_types[] = {"NUMBER",
                                            "UNIT_INTERVAL",
                                            "PERCENTAGE",
                                            "INTEGER",
                                            "INTEGER_POSITIVE",
                                            "INTEGER_NEGATIVE",
                                            "INTEGER_ZERO_OR_POSITIVE",
                                            NULL};
static const char *const other_types[] = {"TEXT",
                                          "LONG_TEXT",
                                          "MULTI_TEXT",
                                          "LETTER",
                                          "PHONE_NUMBER",
                                          "EMAIL",
                                          "BOOLEAN",
                                          "TRUE_ONLY",
                                          "DATE",
                                          "DATETIME",
                                          "TIME",
                                          "TRACKER_ASSOCIATE",
                                          "USERNAME",
                                          "COORDINATE",
                                          "ORGANISATION_UNIT",
                                          "REFERENCE",
                                          "AGE",
                                          "URL",
                                          "FILE_RESOURCE",
                                          "IMAGE",
                                          "GEOJSON",
                                          NULL};

static bool in_names(const char *const *names, const char *s)
{
    for (size_t i = 0; s != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

bool mapping_value_type_numeric(const char *value_type)
{
    return in_names(numeric_types, value_type);
}

bool mapping_value_type_known(const char *value_type)
{
    return in_names(numeric_types, value_type) || in_names(other_types, value_type);
}

const char *const MAPPING_KIND_NAMES[MAPPING_KINDS] = {"data_element", "org_unit",
                                                       "category_option_combo", "data_set"};
const char *const MAPPING_KIND_PARAMS[MAPPING_KINDS] = {
    "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme", "dataSetIdScheme"};

const char *mapping_id_scheme(const struct mapping *m, enum mapping_kind k)
{
    return m != NULL && m->id_schemes[k] != NULL ? m->id_schemes[k] : "UID";
}

bool mapping_id_valid(const struct mapping *m, enum mapping_kind k, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    return strcmp(mapping_id_scheme(m, k), "UID") != 0 || mapping_is_uid(s);
}

/* CodeGenerator.isValidUid in dhis2-core: 11 characters, a letter first, ASCII only
 * whatever the locale (isalpha() would accept more). */
bool mapping_is_uid(const char *s)
{
    if (s == NULL || strlen(s) != 11)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < 11; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* The items of one code: m->items[*lo .. *hi), empty when none. */
static void item_range(const struct mapping *m, const char *item, size_t *lo, size_t *hi)
{
    size_t a = 0, b = m->n_items;
    while (a < b) { /* first entry >= item */
        size_t mid = a + (b - a) / 2;
        if (strcmp(m->items[mid].item, item) < 0)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    b = m->n_items;
    while (a < b) { /* first entry > item */
        size_t mid = a + (b - a) / 2;
        if (strcmp(m->items[mid].item, item) <= 0)
            a = mid + 1;
        else
            b = mid;
    }
    *hi = a;
}

/* The entry for measure among one code's items (sorted by measure, NULL first). */
static const struct mapping_item *item_measure(const struct mapping *m, size_t lo, size_t hi,
                                               const char *measure)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_nullable(m->items[mid].measure, measure);
        if (c == 0)
            return &m->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct mapping_item *mapping_item(const struct mapping *m, const char *item,
                                        const char *measure)
{
    if (m == NULL || item == NULL || m->n_items == 0)
        return NULL;
    size_t lo, hi;
    item_range(m, item, &lo, &hi);
    return item_measure(m, lo, hi, measure);
}

void mapping_free(struct mapping *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_org_units; i++) {
        free(m->org_units[i].code);
        free(m->org_units[i].uid);
    }
    for (size_t i = 0; i < m->n_data_sets; i++) {
        free(m->data_sets[i].code);
        free(m->data_sets[i].uid);
    }
    for (size_t i = 0; i < m->n_aocs; i++) {
        free(m->aocs[i].code);
        free(m->aocs[i].uid);
    }
    for (size_t i = 0; i < m->n_periods; i++) {
        free(m->periods[i].code);
        free(m->periods[i].uid);
    }
    free(m->periods);
    free(m->org_units_csv);
    free(m->items_csv);
    free(m->pull_org_unit_attribute);
    free(m->data_sets);
    free(m->aocs);
    for (size_t i = 0; i < m->n_items; i++) {
        free(m->items[i].item);
        free(m->items[i].measure);
        free(m->items[i].de_uid);
        free(m->items[i].coc_uid);
        free(m->items[i].value_type);
    }
    free(m->org_units);
    free(m->items);
    free(m->name);
    free(m->file);
    free(m->data_set_uid);
    free(m->aoc_uid);
    free(m);
}

/* ------------------------------------------------------------------ */
/* mapping_apply                                                       */
/* ------------------------------------------------------------------ */

/* snprintf for messages: a text that does not fit is cut and ends in "...",
 * never silently (codes come from payloads, and a message may be shortened
 * where an input may not). */
static void msgf(char *out, size_t outlen, const char *fmt, ...) HIBUS_PRINTF(3, 4);

static void msgf(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vfmt_label(out, outlen, fmt, ap);
    va_end(ap);
}

/* State of one mapping_apply() call. */
struct apply {
    const struct mapping *m;
    struct report *r;
    json_t *problems;
    json_t *skipped;
    size_t n_problems; /* added by this call */
    char file[512];    /* the mapping file, for "add it to ..." */
};

static void set_opt(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

/* Whether this call already reported a mapping problem of this kind and code
 * (and measure, for items): each distinct code is listed once. */
static bool already_reported(const struct apply *a, const char *kind, const char *code,
                             const char *measure)
{
    size_t n = json_array_size(a->problems);
    for (size_t i = n - a->n_problems; i < n; i++) {
        const json_t *p = json_array_get(a->problems, i);
        if (cmp_nullable(json_string_value(json_object_get(p, "kind")), kind) == 0 &&
            cmp_nullable(json_string_value(json_object_get(p, "code")), code) == 0 &&
            cmp_nullable(json_string_value(json_object_get(p, "measure")), measure) == 0)
            return true;
    }
    return false;
}

/* Appends a problem (stage "mapping"); kind and code may be NULL. Returns the
 * object (borrowed) or NULL when out of memory. */
static json_t *problem(struct apply *a, const char *kind, const char *code, const char *where,
                       const char *msg)
{
    json_t *p = report_problem(a->problems, "mapping", "%s", msg);
    if (p == NULL)
        return NULL;
    a->n_problems++;
    set_opt(p, "kind", kind);
    set_opt(p, "code", code);
    set_opt(p, "where", where);
    return p;
}

/* " with measure \"m\"" or " (no measure)", for item messages. */
static void measure_phrase(char *out, size_t outlen, const char *measure)
{
    if (measure != NULL)
        msgf(out, outlen, " with measure \"%s\"", measure);
    else
        msgf(out, outlen, " (no measure)");
}

/* Does the mapping have any row for item? (items are sorted by item first) */
static bool item_known(const struct mapping *m, const char *item)
{
    size_t lo = 0, hi = m->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->items[mid].item, item);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* An unmapped (item, measure) of value v: a problem (reject, listed once) or a
 * skipped entry (skip, one per value). */
static enum hibus_err unmapped_item(struct apply *a, struct report_value *v,
                                    enum mapping_policy policy)
{
    char meas[256], msg[1024];
    measure_phrase(meas, sizeof meas, v->measure);
    if (policy == MAPPING_SKIP) {
        v->skipped = true;
        msgf(msg, sizeof msg,
             "item \"%s\"%s has no data element in mapping \"%s\"; the value was skipped", v->item,
             meas, a->m->name);
        json_t *s = json_pack("{s:s, s:s, s:s, s:s}", "stage", "mapping", "kind", "item", "code",
                              v->item, "message", msg);
        if (s == NULL)
            return HIBUS_E_NOMEM;
        set_opt(s, "measure", v->measure);
        set_opt(s, "where", v->where);
        return json_array_append_new(a->skipped, s) == 0 ? HIBUS_OK : HIBUS_E_NOMEM;
    }
    /* An item the mapping does not know at all is one problem, not one per
     * measure; a known item with an unmapped measure is one per measure. */
    bool known = item_known(a->m, v->item);
    const char *measure = known ? v->measure : NULL;
    if (already_reported(a, "item", v->item, measure))
        return HIBUS_OK;
    if (known)
        msgf(msg, sizeof msg,
             "item \"%s\"%s has no data element in mapping \"%s\"; add it to %s or set "
             "unmapped: skip",
             v->item, meas, a->m->name, a->file);
    else
        msgf(msg, sizeof msg,
             "item \"%s\" is not in mapping \"%s\"; add it to %s or set unmapped: skip", v->item,
             a->m->name, a->file);
    json_t *p = problem(a, "item", v->item, NULL, msg);
    if (p == NULL)
        return HIBUS_E_NOMEM;
    /* "measure" before "where", as in the documented shape. */
    set_opt(p, "measure", measure);
    set_opt(p, "where", v->where);
    return HIBUS_OK;
}

/* A value's own org unit code that is not in the mapping. */
static enum hibus_err unmapped_value_org_unit(struct apply *a, struct report_value *v,
                                              enum mapping_policy policy)
{
    char msg[1024];
    if (policy == MAPPING_SKIP) {
        v->skipped = true;
        msgf(msg, sizeof msg,
             "facility \"%s\" has no org unit in mapping \"%s\"; the value was skipped",
             v->org_unit, a->m->name);
        json_t *s = json_pack("{s:s, s:s, s:s, s:s}", "stage", "mapping", "kind", "org_unit",
                              "code", v->org_unit, "message", msg);
        if (s == NULL)
            return HIBUS_E_NOMEM;
        set_opt(s, "where", v->where);
        return json_array_append_new(a->skipped, s) == 0 ? HIBUS_OK : HIBUS_E_NOMEM;
    }
    if (already_reported(a, "org_unit", v->org_unit, NULL))
        return HIBUS_OK;
    msgf(msg, sizeof msg,
         "facility \"%s\" has no org unit in mapping \"%s\"; add it to %s or set unmapped: "
         "skip",
         v->org_unit, a->m->name, a->file);
    return problem(a, "org_unit", v->org_unit, v->where, msg) ? HIBUS_OK : HIBUS_E_NOMEM;
}

static int date_cmp(struct period_date x, struct period_date y)
{
    if (x.year != y.year)
        return x.year < y.year ? -1 : 1;
    if (x.month != y.month)
        return x.month < y.month ? -1 : 1;
    return (x.day > y.day) - (x.day < y.day);
}

/*
 * Resolves one period to the id to send: id (a DHIS2 period id, may be NULL)
 * or else the dates start..end (ISO strings, may be NULL). what names it in
 * messages ("the report" or "value at lines[2]"). On success writes the id to
 * out and returns true; otherwise adds a problem (once per distinct code) and
 * returns false. *nomem is set when a problem could not be added.
 */
static bool resolve_period(struct apply *a, const char *id, const char *start_s, const char *end_s,
                           const char *where, char out[16], bool *nomem)
{
    const struct mapping *m = a->m;
    char msg[1024];
    struct period p;
    struct period_date start, end;
    char label[128]; /* how the source period is named in messages */

    if (id != NULL) {
        if (!period_parse(id, &p) || strlen(id) >= sizeof p.id) {
            if (already_reported(a, "period", id, NULL))
                return false;
            msgf(msg, sizeof msg,
                 "period \"%s\" is not a DHIS2 period id (expected e.g. \"202610\", "
                 "\"2026Q4\" or \"2026W40\"); fix it at the source",
                 id);
            *nomem |= problem(a, "period", id, where, msg) == NULL;
            return false;
        }
        if (!m->has_period_type || p.type == m->period_type) {
            hibus_strlcpy(out, p.id, 16); /* the canonical spelling (2024W01 -> 2024W1) */
            return true;
        }
        start = p.start;
        end = p.end;
        char s1[11], s2[11];
        period_date_format(start, s1);
        period_date_format(end, s2);
        msgf(label, sizeof label, "\"%s\" (%s to %s)", id, s1, s2);
    } else {
        if (!m->has_period_type) {
            if (already_reported(a, "period", NULL, NULL))
                return false;
            json_t *pr = problem(a, "period", NULL, where,
                                 "the report has no DHIS2 period; set period_type in the mapping");
            *nomem |= pr == NULL;
            return false;
        }
        if (start_s == NULL || end_s == NULL) {
            if (already_reported(a, "period", NULL, NULL))
                return false;
            msgf(msg, sizeof msg,
                 "the report has no period: it needs a period id, or both a start and an "
                 "end date (%s missing)",
                 start_s == NULL && end_s == NULL ? "both are"
                 : start_s == NULL                ? "the start date is"
                                                  : "the end date is");
            *nomem |= problem(a, "period", NULL, where, msg) == NULL;
            return false;
        }
        const char *bad = !period_date_parse(start_s, &start) ? start_s
                          : !period_date_parse(end_s, &end)   ? end_s
                                                              : NULL;
        if (bad != NULL) {
            if (already_reported(a, "period", bad, NULL))
                return false;
            msgf(msg, sizeof msg,
                 "invalid period date \"%s\" (expected YYYY-MM-DD); fix it at the source", bad);
            *nomem |= problem(a, "period", bad, where, msg) == NULL;
            return false;
        }
        if (date_cmp(start, end) > 0) {
            if (already_reported(a, "period", start_s, NULL))
                return false;
            msgf(msg, sizeof msg,
                 "the period starts on %s, after its end on %s; fix the dates at the source",
                 start_s, end_s);
            *nomem |= problem(a, "period", start_s, where, msg) == NULL;
            return false;
        }
        msgf(label, sizeof label, "%s to %s", start_s, end_s);
    }

    const char *tname = period_type_name(m->period_type);
    struct period q;
    /* The report must cover one target period exactly: figures for part of a
     * month sent as the month would silently overwrite the whole month's. */
    if (!period_containing(m->period_type, start, &q) || date_cmp(end, q.end) > 0) {
        const char *code = id != NULL ? id : start_s;
        if (already_reported(a, "period", code, NULL))
            return false;
        msgf(msg, sizeof msg,
             "period %s does not fit in one %s period; send one report per %s period or "
             "change period_type in %s",
             label, tname, tname, a->file);
        *nomem |= problem(a, "period", code, where, msg) == NULL;
        return false;
    }
    if (date_cmp(start, q.start) != 0 || date_cmp(end, q.end) != 0) {
        const char *code = id != NULL ? id : start_s;
        if (already_reported(a, "period", code, NULL))
            return false;
        char q1[11], q2[11];
        period_date_format(q.start, q1);
        period_date_format(q.end, q2);
        msgf(msg, sizeof msg,
             "period %s covers only part of %s period %s (%s to %s), and DHIS2 would take its "
             "figures as the whole period's; send one report for the whole %s period or "
             "change period_type in %s",
             label, tname, q.id, q1, q2, tname, a->file);
        *nomem |= problem(a, "period", code, where, msg) == NULL;
        return false;
    }
    hibus_strlcpy(out, q.id, 16);
    return true;
}

/* The data set to send (*out, borrowed; NULL = none). false only when out of
 * memory; an unknown or unusable source code is a problem. */
static bool resolve_data_set(struct apply *a, const char **out, bool *nomem)
{
    const struct mapping *m = a->m;
    const char *code = a->r->data_set;
    char msg[1024];
    *out = NULL;
    if (code != NULL && m->n_data_sets > 0) {
        *out = mapping_data_set(m, code);
        if (*out == NULL) {
            msgf(msg, sizeof msg,
                 "data set \"%s\" is not in data_sets of mapping \"%s\"; add it to %s", code,
                 m->name, a->file);
            *nomem |= problem(a, "data_set", code, NULL, msg) == NULL;
        }
    } else if (m->data_set_uid != NULL) {
        *out = m->data_set_uid;
    } else if (code != NULL) {
        if (mapping_id_valid(m, MAPPING_DATA_SET, code)) {
            *out = code;
        } else {
            msgf(msg, sizeof msg,
                 "data set \"%s\" is not a DHIS2 UID, and mapping \"%s\" has neither data_set "
                 "nor data_sets to translate it; add data_sets: { \"%s\": UID } to %s",
                 code, m->name, code, a->file);
            *nomem |= problem(a, "data_set", code, NULL, msg) == NULL;
        }
    }
    return !*nomem;
}

/* The attribute option combo UID for a source's code (*out, borrowed). v is the
 * value it belongs to (NULL: the report's, which skip cannot drop). */
static enum hibus_err resolve_aoc(struct apply *a, const char *code, const char *where,
                                  struct report_value *v, enum mapping_policy policy,
                                  const char **out)
{
    const struct mapping *m = a->m;
    char msg[1024];
    *out = m->n_aocs > 0                            ? mapping_aoc(m, code)
           : mapping_id_valid(m, MAPPING_COC, code) ? code
                                                    : NULL;
    if (*out != NULL)
        return HIBUS_OK;
    if (m->n_aocs > 0)
        msgf(msg, sizeof msg,
             "attribute option combo \"%s\" is not in attribute_option_combos of mapping "
             "\"%s\"; add it to %s",
             code, m->name, a->file);
    else
        msgf(msg, sizeof msg,
             "attribute option combo \"%s\" is not a DHIS2 UID, and mapping \"%s\" has no "
             "attribute_option_combos to translate it; add attribute_option_combos: { \"%s\": "
             "UID } to %s",
             code, m->name, code, a->file);
    if (v != NULL && policy == MAPPING_SKIP) {
        v->skipped = true;
        json_t *s = json_pack("{s:s, s:s, s:s, s:s}", "stage", "mapping", "kind",
                              "attribute_option_combo", "code", code, "message", msg);
        if (s == NULL)
            return HIBUS_E_NOMEM;
        set_opt(s, "where", where);
        return json_array_append_new(a->skipped, s) == 0 ? HIBUS_OK : HIBUS_E_NOMEM;
    }
    if (already_reported(a, "attribute_option_combo", code, NULL))
        return HIBUS_OK;
    return problem(a, "attribute_option_combo", code, where, msg) ? HIBUS_OK : HIBUS_E_NOMEM;
}

/* An ADX annotation on value v of item it: DHIS2's ADX import takes it as the
 * value of a non-numeric data element and drops it for a numeric one
 * (DefaultAdxDataService, dhis2/dhis2-core 2.36-2.41). Which one it is only the
 * data element's type can tell, so the mapping must say. false when the value is
 * not deliverable (a problem was added). */
static bool apply_annotation(struct apply *a, struct report_value *v, const struct mapping_item *it,
                             bool *nomem)
{
    char msg[1024];
    if (it->value_type == NULL) {
        if (already_reported(a, "value_type", v->item, NULL))
            return false;
        msgf(msg, sizeof msg,
             "item \"%s\" has an ADX annotation, and mapping \"%s\" does not say whether its "
             "data element is numeric (DHIS2 drops the annotation) or text (DHIS2 takes the "
             "annotation as the value); set value_type for it in %s",
             v->item, a->m->name, a->file);
        json_t *p = problem(a, "value_type", v->item, v->where, msg);
        *nomem |= p == NULL;
        return false;
    }
    if (mapping_value_type_numeric(it->value_type)) {
        free(v->annotation);
        v->annotation = NULL;
        return true;
    }
    if (!report_value_set(v, v->annotation)) {
        *nomem = true;
        return false;
    }
    v->is_text = true;
    v->is_number = false;
    return true;
}

enum hibus_err mapping_apply(const struct mapping *m, struct report *r, enum mapping_policy policy,
                             json_t *problems, json_t *skipped)
{
    json_t *own_problems = NULL, *own_skipped = NULL;
    if (problems == NULL)
        problems = own_problems = json_array();
    if (skipped == NULL)
        skipped = own_skipped = json_array();
    if (problems == NULL || skipped == NULL) {
        json_decref(own_problems);
        json_decref(own_skipped);
        return HIBUS_E_NOMEM;
    }

    struct apply a = {.m = m, .r = r, .problems = problems, .skipped = skipped};
    if (m->file != NULL)
        msgf(a.file, sizeof a.file, "%s", m->file);
    else
        msgf(a.file, sizeof a.file, "mappings/%s.yaml", m->name ? m->name : "NAME");

    enum hibus_err rc = HIBUS_OK;
    bool nomem = false;
    char msg[1024];

    /* The report's org unit and period matter only for values without their own. */
    bool need_ou = r->n_values == 0, need_period = r->n_values == 0;
    for (size_t i = 0; i < r->n_values; i++) {
        need_ou |= r->values[i].org_unit == NULL;
        need_period |= r->values[i].period == NULL;
    }

    /* Org unit of the report: never skippable. */
    const char *ou = mapping_org_unit(m, r->org_unit);
    if (!report_set(&r->ou_uid, ou))
        goto nomem;
    if (ou == NULL && need_ou) {
        if (r->org_unit == NULL) {
            nomem |= !problem(&a, "org_unit", NULL, NULL,
                              "the report has no facility code; fix the payload at the source");
        } else {
            msgf(msg, sizeof msg, "facility \"%s\" has no org unit in mapping \"%s\"; add it to %s",
                 r->org_unit, m->name, a.file);
            nomem |= !problem(&a, "org_unit", r->org_unit, NULL, msg);
        }
    }

    /* Data set and the report's attribute option combo (mapping.h says which wins). */
    const char *ds = NULL;
    if (!resolve_data_set(&a, &ds, &nomem) || !report_set(&r->data_set_uid, ds))
        goto nomem;
    const char *aoc = m->aoc_uid;
    if (r->attribute_option_combo != NULL) {
        aoc = NULL;
        if ((rc = resolve_aoc(&a, r->attribute_option_combo, NULL, NULL, policy, &aoc)) != HIBUS_OK)
            goto out;
    }
    if (!report_set(&r->aoc_uid, aoc))
        goto nomem;

    /* A period the source named without dates: the periods: table says which. */
    bool period_unknown = false;
    if (r->period == NULL && r->period_start == NULL && r->source_period != NULL) {
        const char *pe = mapping_period(m, r->source_period);
        struct period p;
        if (pe == NULL || !period_parse(pe, &p)) {
            period_unknown = true;
            if (need_period) {
                msgf(msg, sizeof msg,
                     "period \"%s\" has no DHIS2 period in mapping \"%s\"; add periods: { "
                     "\"%s\": DHIS2_PERIOD_ID } to %s",
                     r->source_period, m->name, r->source_period, a.file);
                nomem |= !problem(&a, "period", r->source_period, NULL, msg);
            }
        } else {
            char d1[11], d2[11];
            period_date_format(p.start, d1);
            period_date_format(p.end, d2);
            if (!report_set(&r->period, p.id) || !report_set(&r->period_start, d1) ||
                !report_set(&r->period_end, d2))
                goto nomem;
        }
    }

    /* Period of the report. */
    if (need_period && !period_unknown) {
        char id[16];
        if (resolve_period(&a, r->period, r->period_start, r->period_end, NULL, id, &nomem)) {
            if (r->period == NULL || strcmp(r->period, id) != 0)
                if (!report_set(&r->period, id))
                    goto nomem;
        }
    }

    /* Every value: org unit override, period override, item. */
    size_t deliverable = 0;
    /* A report's values come grouped by item (a line's measures one after another):
     * the item's range is looked up once per group, then only the measure. */
    const char *range_item = NULL;
    size_t range_lo = 0, range_hi = 0;
    for (size_t i = 0; i < r->n_values; i++) {
        if (cpu_budget_over()) {
            rc = HIBUS_E_INVALID; /* the caller says why (hibus/cpubudget.h) */
            goto out;
        }
        struct report_value *v = &r->values[i];
        v->skipped = false;
        report_value_item_uids(v, NULL, NULL);
        if (!report_set(&v->ou_uid, NULL) || !report_set(&v->aoc_uid, NULL))
            goto nomem;

        if (v->org_unit != NULL) {
            const char *vou = mapping_org_unit(m, v->org_unit);
            if (vou == NULL) {
                if ((rc = unmapped_value_org_unit(&a, v, policy)) != HIBUS_OK)
                    goto out;
                if (v->skipped)
                    continue;
            } else if (!report_set(&v->ou_uid, vou)) {
                goto nomem;
            }
        }

        if (v->period != NULL) {
            char id[16];
            if (resolve_period(&a, v->period, NULL, NULL, v->where, id, &nomem) &&
                strcmp(v->period, id) != 0 && !report_set(&v->period, id))
                goto nomem;
        }

        if (v->attribute_option_combo != NULL) {
            const char *vaoc = NULL;
            if ((rc = resolve_aoc(&a, v->attribute_option_combo, v->where, v, policy, &vaoc)) !=
                HIBUS_OK)
                goto out;
            if (v->skipped)
                continue;
            if (!report_set(&v->aoc_uid, vaoc))
                goto nomem;
        }

        const struct mapping_item *it = NULL;
        if (m->n_items > 0 && v->item != NULL) {
            if (range_item == NULL || strcmp(range_item, v->item) != 0) {
                item_range(m, v->item, &range_lo, &range_hi);
                range_item = v->item;
            }
            it = item_measure(m, range_lo, range_hi, v->measure);
        }
        if (it == NULL) {
            if ((rc = unmapped_item(&a, v, policy)) != HIBUS_OK)
                goto out;
            if (v->skipped)
                continue;
        } else {
            report_value_item_uids(v, it->de_uid, it->coc_uid);
            if (v->annotation != NULL && !apply_annotation(&a, v, it, &nomem))
                continue;
        }
        deliverable++;
    }

    if (policy == MAPPING_SKIP && r->n_values > 0 && deliverable == 0) {
        msgf(msg, sizeof msg,
             "nothing left to deliver: every value was unmapped; add the codes listed in "
             "\"skipped\" to %s",
             a.file);
        nomem |= !problem(&a, NULL, NULL, NULL, msg);
    }

    if (nomem)
        goto nomem;
    rc = a.n_problems > 0 ? HIBUS_E_INVALID : HIBUS_OK;
    goto out;

nomem:
    rc = HIBUS_E_NOMEM;
out:
    json_decref(own_problems);
    json_decref(own_skipped);
    return rc;
}
