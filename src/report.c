/*
 * report.c - the canonical report (see hibus/report.h): construction, problems
 * and the JSON view used by `hibus map` and the tests.
 */
#include "hibus/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The names live in one array, so that a pointer to one of them is recognised by
 * its address: values whose measure is canonical share these pointers (report_add),
 * and comparing two of them needs no strcmp. */
static const char measure_text[8][16] = {"opening_balance", "received",    "consumed",
                                         "losses",          "adjustments", "stock_on_hand",
                                         "stockout_days",   "requested"};

const char *const REPORT_MEASURES[] = {measure_text[0], measure_text[1], measure_text[2],
                                       measure_text[3], measure_text[4], measure_text[5],
                                       measure_text[6], measure_text[7], NULL};

_Static_assert(sizeof measure_text / sizeof measure_text[0] == REPORT_REQUESTED + 1,
               "one name per enum report_measure");

static bool is_canonical(const char *p)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)measure_text;
    return a >= base && a < base + sizeof measure_text && (a - base) % sizeof measure_text[0] == 0;
}

bool report_is_measure(const char *name)
{
    return report_measure_canonical(name) != name || is_canonical(name);
}

const char *report_measure_canonical(const char *name)
{
    if (name == NULL || is_canonical(name))
        return name;
    for (size_t i = 0; i < sizeof measure_text / sizeof measure_text[0]; i++)
        if (name[0] == measure_text[i][0] && strcmp(name, measure_text[i]) == 0)
            return measure_text[i];
    return name;
}

bool report_measure_eq(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || (is_canonical(a) && is_canonical(b)))
        return false;
    return strcmp(a, b) == 0;
}

struct report *report_new(const char *reader)
{
    struct report *r = calloc(1, sizeof *r);
    if (r != NULL && reader != NULL && !report_set(&r->reader, reader)) {
        free(r);
        return NULL;
    }
    return r;
}

static void value_free(struct report_value *v)
{
    free(v->strings);
    if (v->value_own)
        free(v->value);
    free(v->org_unit);
    free(v->period);
    free(v->attribute_option_combo);
    free(v->annotation);
    if (!v->item_uids_mapping) {
        free(v->de_uid);
        free(v->coc_uid);
    }
    free(v->aoc_uid);
    free(v->ou_uid);
}

void report_free(struct report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_values; i++)
        value_free(&r->values[i]);
    free(r->values);
    free(r->reader);
    free(r->source_id);
    free(r->data_set);
    free(r->period);
    free(r->period_start);
    free(r->period_end);
    free(r->source_period);
    free(r->org_unit);
    free(r->complete_date);
    free(r->attribute_option_combo);
    free(r->exported);
    free(r->ou_uid);
    free(r->data_set_uid);
    free(r->aoc_uid);
    free(r);
}

bool report_set(char **field, const char *s)
{
    char *c = NULL;
    if (s != NULL && (c = strdup(s)) == NULL)
        return false;
    free(*field);
    *field = c;
    return true;
}

/* A number as DHIS2 reads one: optional sign, digits, optional fraction and
 * exponent, nothing else (no spaces, no hex, no "nan"). */
static bool parse_number(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t' || *s == '\n')
        return false;
    /* Most values are short integers: up to 15 digits are exact in a double, the
     * same value strtod() gives, without its cost. */
    const char *q = s + (*s == '-');
    size_t nd = 0;
    int64_t n = 0;
    while (nd <= 15 && q[nd] >= '0' && q[nd] <= '9') {
        n = n * 10 + (q[nd] - '0');
        nd++;
    }
    if (nd > 0 && nd <= 15 && q[nd] == '\0') {
        *out = *s == '-' ? -(double)n : (double)n;
        return true;
    }
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
              *p == 'E'))
            return false;
    char *end;
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d))
        return false;
    *out = d;
    return true;
}

struct report_value *report_add(struct report *r, const char *item, const char *measure,
                                const char *value, const char *comment, const char *where)
{
    if (r->n_values == r->cap_values) {
        size_t cap = r->cap_values ? r->cap_values * 2 : 16;
        struct report_value *v = realloc(r->values, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        r->values = v;
        r->cap_values = cap;
    }
    /* One allocation for the five strings a reader gives: most of a report's
     * values are added in a tight loop, and five mallocs (and frees) each were a
     * good part of a transform's time. */
    /* A canonical measure is not copied: it stays one of measure_text's pointers. */
    bool canonical = is_canonical(measure);
    const char *src[5] = {item ? item : "", canonical ? NULL : measure, value ? value : "", comment,
                          where};
    size_t lens[5], total = 0;
    for (int i = 0; i < 5; i++) {
        lens[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
        total += lens[i];
    }
    char *block = malloc(total);
    if (block == NULL)
        return NULL;
    char *dst[5], *at = block;
    for (int i = 0; i < 5; i++) {
        dst[i] = src[i] != NULL ? memcpy(at, src[i], lens[i]) : NULL;
        at += lens[i];
    }
    struct report_value *v = &r->values[r->n_values];
    memset(v, 0, sizeof *v);
    v->strings = block;
    v->item = dst[0];
    v->measure = canonical ? (char *)measure : dst[1];
    v->value = dst[2];
    v->comment = dst[3];
    v->where = dst[4];
    v->is_number = parse_number(v->value, &v->number);
    r->n_values++;
    return v;
}

bool report_value_set(struct report_value *v, const char *s)
{
    char *c = strdup(s);
    if (c == NULL)
        return false;
    if (v->value_own)
        free(v->value);
    v->value = c;
    v->value_own = true;
    v->is_number = parse_number(c, &v->number);
    return true;
}

void report_value_item_uids(struct report_value *v, const char *de_uid, const char *coc_uid)
{
    if (!v->item_uids_mapping) {
        free(v->de_uid);
        free(v->coc_uid);
    }
    /* Two copies per value were a tenth of a transform's allocations. */
    v->de_uid = (char *)de_uid;
    v->coc_uid = (char *)coc_uid;
    v->item_uids_mapping = true;
}

json_t *report_problem(json_t *problems, const char *stage, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *p = json_pack("{s:s, s:s}", "stage", stage, "message", msg);
    if (p == NULL || json_array_append_new(problems, p) != 0)
        return NULL;
    return p;
}

static void set_opt(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

json_t *report_to_json(const struct report *r)
{
    json_t *o = json_object();
    set_opt(o, "reader", r->reader);
    set_opt(o, "source_id", r->source_id);
    set_opt(o, "data_set", r->data_set);
    set_opt(o, "data_set_uid", r->data_set_uid);
    set_opt(o, "period", r->period);
    set_opt(o, "period_start", r->period_start);
    set_opt(o, "period_end", r->period_end);
    set_opt(o, "source_period", r->source_period);
    set_opt(o, "org_unit", r->org_unit);
    set_opt(o, "org_unit_uid", r->ou_uid);
    set_opt(o, "complete_date", r->complete_date);
    set_opt(o, "attribute_option_combo", r->attribute_option_combo);
    set_opt(o, "attribute_option_combo_uid", r->aoc_uid);
    json_t *vals = json_array();
    for (size_t i = 0; i < r->n_values; i++) {
        const struct report_value *v = &r->values[i];
        json_t *j = json_object();
        set_opt(j, "item", v->item);
        set_opt(j, "measure", v->measure);
        set_opt(j, "value", v->value);
        set_opt(j, "comment", v->comment);
        set_opt(j, "org_unit", v->org_unit);
        set_opt(j, "period", v->period);
        set_opt(j, "where", v->where);
        set_opt(j, "data_element", v->de_uid);
        set_opt(j, "category_option_combo", v->coc_uid);
        set_opt(j, "attribute_option_combo", v->attribute_option_combo);
        set_opt(j, "attribute_option_combo_uid", v->aoc_uid);
        set_opt(j, "annotation", v->annotation);
        set_opt(j, "org_unit_uid", v->ou_uid);
        if (v->is_text)
            json_object_set_new(j, "text", json_true());
        if (v->skipped)
            json_object_set_new(j, "skipped", json_true());
        json_array_append_new(vals, j);
    }
    json_object_set_new(o, "values", vals);
    return o;
}
