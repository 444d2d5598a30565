/*
 * writers.c - a mapped canonical report out, in DHIS2's import formats (see
 * hibus/writers.h and docs/formats.md).
 *
 *   dhis2-datavalueset  compact JSON, keys in a fixed order, every value a string
 *   adx                 ADX XML written with libxml2's xmlTextWriter (which escapes),
 *                       one <group> per distinct (org unit, period, attribute option
 *                       combo) in order of first appearance
 *
 * Only values that have a data element UID and are not skipped are written. DHIS2
 * files every value of a data value set under the set's period, org unit and
 * attribute option combo when the set has them, whatever the value says
 * (DefaultDataValueSetService.createDataValueContext, dhis2/dhis2-core 2.36-2.41), so
 * the JSON writer puts each of these on the set only when every value shares it,
 * and otherwise on every value (and then sends no completeDate, which DHIS2
 * registers for the set's period and org unit only). ADX groups carry them. A value with neither
 * its own nor a report-level org unit or period makes the whole write fail (HIBUS_E_INVALID): DHIS2
 * would reject it anyway.
 *
 * ADX's mandatory `exported` timestamp is the report's `exported` when the caller set
 * one (the golden-file tests do), else the current UTC time.
 *
 * Thread-safe: no shared state.
 */
#include "hibus/writers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/xmlwriter.h>

#include "hibus/buf.h"
#include "hibus/cpubudget.h"
#include "hibus/period.h"

const char *const WRITER_NAMES[] = {"dhis2-datavalueset", "adx", NULL};

#define ADX_NS "urn:ihe:qrph:adx:2015"

bool writer_known(const char *name)
{
    for (size_t i = 0; name != NULL && WRITER_NAMES[i] != NULL; i++)
        if (strcmp(name, WRITER_NAMES[i]) == 0)
            return true;
    return false;
}

static bool written(const struct report_value *v)
{
    return !v->skipped && v->de_uid != NULL;
}

/* A value's own org unit / period when it overrides the report's, else NULL. */
static const char *own_ou(const struct report *r, const struct report_value *v)
{
    if (v->ou_uid != NULL && (r->ou_uid == NULL || strcmp(v->ou_uid, r->ou_uid) != 0))
        return v->ou_uid;
    return NULL;
}

static const char *own_period(const struct report *r, const struct report_value *v)
{
    if (v->period != NULL && (r->period == NULL || strcmp(v->period, r->period) != 0))
        return v->period;
    return NULL;
}

static const char *own_aoc(const struct report *r, const struct report_value *v)
{
    if (v->aoc_uid != NULL && (r->aoc_uid == NULL || strcmp(v->aoc_uid, r->aoc_uid) != 0))
        return v->aoc_uid;
    return NULL;
}

/* Every written value must end up with an org unit and a period. */
static enum hibus_err check_complete(const struct report *r, struct hibus_error *err)
{
    for (size_t i = 0; i < r->n_values; i++) {
        const struct report_value *v = &r->values[i];
        if (!written(v))
            continue;
        if (v->ou_uid == NULL && r->ou_uid == NULL) {
            hibus_error_set(err, HIBUS_E_INVALID, "value %s/%s has no org unit UID", v->item,
                            v->measure ? v->measure : "-");
            hibus_error_hint(err, "Map the facility \"%s\" to an org unit.",
                             r->org_unit ? r->org_unit : "");
            return HIBUS_E_INVALID;
        }
        if (v->period == NULL && r->period == NULL) {
            hibus_error_set(err, HIBUS_E_INVALID, "value %s/%s has no period", v->item,
                            v->measure ? v->measure : "-");
            hibus_error_hint(err, "Set the report's DHIS2 period (the mapping derives it from "
                                  "the period's dates).");
            return HIBUS_E_INVALID;
        }
    }
    return HIBUS_OK;
}

/* ------------------------------------------------------------------------------------
 * dhis2-datavalueset
 * ------------------------------------------------------------------------------------ */

/* Appends ,"key":"s" (the comma unless first), unless s is NULL. false when out of
 * memory or s is not UTF-8. */
static bool put(struct buf *b, bool *first, const char *key, const char *s)
{
    if (s == NULL)
        return true;
    bool ok = buf_append(b, *first ? "\"" : ",\"", *first ? 1 : 2) &&
              buf_append(b, key, strlen(key)) && buf_append(b, "\":", 2) && buf_json_string(b, s);
    *first = false;
    return ok;
}

/* Does any written value have its own org unit / period / AOC? (DHIS2 files every
 * value under the set's when the set has one, so then the set must have none.) */
static void mixed(const struct report *r, bool *ou, bool *pe, bool *aoc)
{
    *ou = *pe = *aoc = false;
    for (size_t i = 0; i < r->n_values; i++) {
        const struct report_value *v = &r->values[i];
        if (!written(v))
            continue;
        *ou |= own_ou(r, v) != NULL;
        *pe |= own_period(r, v) != NULL;
        *aoc |= own_aoc(r, v) != NULL;
    }
}

/* Written straight into a buffer, as jansson's compact output would write the same
 * object (keys in this order): building a jansson tree first and dumping it was
 * more than half of this writer's time. */
static enum hibus_err write_datavalueset(const struct report *r, char **body, size_t *len,
                                         struct hibus_error *err)
{
    bool ou_each, pe_each, aoc_each;
    mixed(r, &ou_each, &pe_each, &aoc_each);
    struct buf b = {0};
    bool first = true;
    /* DHIS2 registers a completion for the set's period and org unit only. */
    bool ok = buf_reserve(&b, 128 + r->n_values * 96) && buf_append(&b, "{", 1) &&
              put(&b, &first, "dataSet", r->data_set_uid) &&
              put(&b, &first, "completeDate", pe_each || ou_each ? NULL : r->complete_date) &&
              put(&b, &first, "period", pe_each ? NULL : r->period) &&
              put(&b, &first, "orgUnit", ou_each ? NULL : r->ou_uid) &&
              put(&b, &first, "attributeOptionCombo", aoc_each ? NULL : r->aoc_uid) &&
              buf_append(&b, first ? "\"dataValues\":[" : ",\"dataValues\":[", first ? 14 : 15);
    bool first_value = true;
    for (size_t i = 0; ok && i < r->n_values && !cpu_budget_over(); i++) {
        const struct report_value *v = &r->values[i];
        if (!written(v))
            continue;
        const char *vpe = v->period ? v->period : r->period;
        const char *vou = v->ou_uid ? v->ou_uid : r->ou_uid;
        const char *vaoc = v->aoc_uid ? v->aoc_uid : r->aoc_uid;
        bool f = true;
        ok = buf_append(&b, first_value ? "{" : ",{", first_value ? 1 : 2) &&
             put(&b, &f, "dataElement", v->de_uid) &&
             put(&b, &f, "categoryOptionCombo", v->coc_uid) &&
             put(&b, &f, "period", pe_each ? vpe : NULL) &&
             put(&b, &f, "orgUnit", ou_each ? vou : NULL) &&
             put(&b, &f, "attributeOptionCombo", aoc_each ? vaoc : NULL) &&
             put(&b, &f, "value", v->value) && put(&b, &f, "comment", v->comment) &&
             buf_append(&b, "}", 1);
        first_value = false;
    }
    ok = ok && buf_append(&b, "]}", 2);
    char *s = ok ? buf_take(&b, len) : NULL;
    buf_free(&b);
    if (s == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM,
                               "out of memory (or text that is not UTF-8) writing a dataValueSet");
    *body = s;
    return HIBUS_OK;
}

/* ------------------------------------------------------------------------------------
 * adx
 * ------------------------------------------------------------------------------------ */

/* The group a value belongs to. */
struct group_key {
    const char *ou, *period, *aoc;
};

static struct group_key key_of(const struct report *r, const struct report_value *v)
{
    struct group_key k = {v->ou_uid ? v->ou_uid : r->ou_uid, v->period ? v->period : r->period,
                          v->aoc_uid ? v->aoc_uid : r->aoc_uid};
    return k;
}

/* NULL sorts first. */
static int cmp_opt(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

/* A written value and its group, sorted by group then by position, so that each
 * group's values are together and in order: O(n log n) where comparing every value
 * with every group's first was quadratic (100,000 values in 100,000 groups took
 * 18 s of CPU). */
struct member {
    struct group_key k;
    size_t i;
};

static int cmp_member(const void *x, const void *y)
{
    const struct member *a = x, *b = y;
    int c = cmp_opt(a->k.ou, b->k.ou);
    if (c == 0)
        c = cmp_opt(a->k.period, b->k.period);
    if (c == 0)
        c = cmp_opt(a->k.aoc, b->k.aoc);
    return c != 0 ? c : (a->i > b->i) - (a->i < b->i);
}

/* A run of members with one key; first is its first value's position. */
struct run {
    size_t start, n, first;
};

static int cmp_run(const void *x, const void *y)
{
    const struct run *a = x, *b = y;
    return (a->first > b->first) - (a->first < b->first);
}

/* The groups of r's written values in order of first appearance, as runs over
 * *members. Returns the number of runs, or (size_t)-1 when out of memory. */
static size_t adx_groups(const struct report *r, struct member **members, struct run **runs)
{
    size_t n = 0, nr = 0;
    *members = malloc((r->n_values ? r->n_values : 1) * sizeof **members);
    *runs = malloc((r->n_values ? r->n_values : 1) * sizeof **runs);
    if (*members == NULL || *runs == NULL)
        return (size_t)-1;
    for (size_t i = 0; i < r->n_values; i++)
        if (written(&r->values[i]))
            (*members)[n++] = (struct member){key_of(r, &r->values[i]), i};
    qsort(*members, n, sizeof **members, cmp_member);
    for (size_t i = 0; i < n; i++) {
        const struct member *m = &(*members)[i];
        if (nr > 0) {
            const struct member *prev = &(*members)[i - 1];
            if (cmp_opt(m->k.ou, prev->k.ou) == 0 && cmp_opt(m->k.period, prev->k.period) == 0 &&
                cmp_opt(m->k.aoc, prev->k.aoc) == 0) {
                (*runs)[nr - 1].n++;
                continue;
            }
        }
        (*runs)[nr++] = (struct run){i, 1, m->i};
    }
    qsort(*runs, nr, sizeof **runs, cmp_run);
    return nr;
}

/* ADX's exported timestamp: the report's when the caller set one, else now (UTC). */
static void exported_at(const struct report *r, char out[32])
{
    if (r->exported != NULL && *r->exported != '\0' && strlen(r->exported) < 32) {
        snprintf(out, 32, "%s", r->exported);
        return;
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#define W(call)                                                                                    \
    do {                                                                                           \
        if ((call) < 0)                                                                            \
            goto fail;                                                                             \
    } while (0)

static enum hibus_err write_adx(const struct report *r, char **body, size_t *len,
                                struct hibus_error *err)
{
    if (r->data_set_uid == NULL) {
        hibus_error_set(err, HIBUS_E_INVALID,
                        "the adx writer needs a data set: set data_set in the mapping");
        hibus_error_detail(err, "ADX requires a dataSet attribute on every group.");
        return HIBUS_E_INVALID;
    }
    /* ADX periods for every group, checked before anything is written. */
    for (size_t i = 0; i < r->n_values; i++) {
        const struct report_value *v = &r->values[i];
        struct period p;
        const char *pe = key_of(r, v).period;
        char adx[32];
        if (written(v) && !period_parse(pe, &p)) {
            hibus_error_set(err, HIBUS_E_INVALID, "period \"%s\" is not a DHIS2 period id", pe);
            return HIBUS_E_INVALID;
        }
        if (written(v) && !period_to_adx(&p, adx, sizeof adx)) {
            /* DHIS2's AdxPeriod reads every P3M as a calendar quarter, so a
             * QuarterlyNov period cannot be said in ADX. */
            hibus_error_set(err, HIBUS_E_INVALID, "period \"%s\" (%s) cannot be written in ADX", pe,
                            period_type_name(p.type));
            hibus_error_hint(err, "DHIS2 reads an ADX duration of P3M as a calendar quarter; "
                                  "send this channel with the dhis2-datavalueset writer.");
            return HIBUS_E_INVALID;
        }
    }

    struct member *members = NULL;
    struct run *runs = NULL;
    size_t n_runs = adx_groups(r, &members, &runs);
    xmlBufferPtr buf = xmlBufferCreate();
    xmlTextWriterPtr w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL;
    if (n_runs == (size_t)-1 || w == NULL)
        goto fail;
    char exported[32];
    exported_at(r, exported);

    W(xmlTextWriterSetIndent(w, 1));
    W(xmlTextWriterSetIndentString(w, BAD_CAST "  "));
    W(xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL));
    /* xmlns written as a plain attribute so that it comes first, as in every ADX
     * example; StartElementNS would put it after exported. */
    W(xmlTextWriterStartElement(w, BAD_CAST "adx"));
    W(xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", BAD_CAST ADX_NS));
    W(xmlTextWriterWriteAttribute(w, BAD_CAST "exported", BAD_CAST exported));

    /* Groups in the order their first value appears; values keep their order. */
    for (size_t g = 0; g < n_runs && !cpu_budget_over(); g++) {
        const struct run *run = &runs[g];
        struct group_key k = members[run->start].k;
        struct period p;
        char adx_period[32];
        if (!period_parse(k.period, &p) || !period_to_adx(&p, adx_period, sizeof adx_period))
            goto fail; /* checked above */
        W(xmlTextWriterStartElement(w, BAD_CAST "group"));
        W(xmlTextWriterWriteAttribute(w, BAD_CAST "orgUnit", BAD_CAST k.ou));
        W(xmlTextWriterWriteAttribute(w, BAD_CAST "period", BAD_CAST adx_period));
        W(xmlTextWriterWriteAttribute(w, BAD_CAST "dataSet", BAD_CAST r->data_set_uid));
        if (r->complete_date != NULL)
            W(xmlTextWriterWriteAttribute(w, BAD_CAST "completeDate", BAD_CAST r->complete_date));
        if (k.aoc != NULL)
            W(xmlTextWriterWriteAttribute(w, BAD_CAST "attributeOptionCombo", BAD_CAST k.aoc));
        for (size_t j = run->start; j < run->start + run->n; j++) {
            const struct report_value *v = &r->values[members[j].i];
            W(xmlTextWriterStartElement(w, BAD_CAST "dataValue"));
            W(xmlTextWriterWriteAttribute(w, BAD_CAST "dataElement", BAD_CAST v->de_uid));
            if (v->coc_uid != NULL)
                W(xmlTextWriterWriteAttribute(w, BAD_CAST "categoryOptionCombo",
                                              BAD_CAST v->coc_uid));
            if (v->is_text) {
                /* A non-numeric data element, as DHIS2's own ADX export writes it
                 * (DefaultAdxDataService): value="0" and the text in <annotation>. */
                W(xmlTextWriterWriteAttribute(w, BAD_CAST "value", BAD_CAST "0"));
                W(xmlTextWriterWriteElement(w, BAD_CAST "annotation", BAD_CAST v->value));
            } else {
                W(xmlTextWriterWriteAttribute(w, BAD_CAST "value", BAD_CAST v->value));
            }
            W(xmlTextWriterEndElement(w));
        }
        W(xmlTextWriterEndElement(w));
    }
    W(xmlTextWriterEndElement(w));
    W(xmlTextWriterEndDocument(w));
    xmlFreeTextWriter(w); /* flushes into buf */
    w = NULL;

    size_t n = (size_t)xmlBufferLength(buf);
    char *s = malloc(n + 1);
    if (s == NULL)
        goto fail;
    memcpy(s, xmlBufferContent(buf), n);
    s[n] = '\0';
    xmlBufferFree(buf);
    free(members);
    free(runs);
    *body = s;
    *len = n;
    return HIBUS_OK;

fail:
    if (w != NULL)
        xmlFreeTextWriter(w);
    if (buf != NULL)
        xmlBufferFree(buf);
    free(members);
    free(runs);
    return hibus_error_set(err, HIBUS_E_NOMEM, "could not write the ADX document");
}

/* ------------------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------------------ */

enum hibus_err writer_write(const char *name, const struct report *r, char **body, size_t *len,
                            const char **content_type, struct hibus_error *err)
{
    enum hibus_err rc;
    if (!writer_known(name)) {
        hibus_error_set(err, HIBUS_E_UNSUPPORTED, "unknown writer \"%s\"", name ? name : "(null)");
        hibus_error_hint(err, "Use one of: dhis2-datavalueset, adx.");
        return HIBUS_E_UNSUPPORTED;
    }
    if ((rc = check_complete(r, err)) != HIBUS_OK)
        return rc;
    char *b = NULL;
    size_t n = 0;
    if (strcmp(name, "adx") == 0) {
        rc = write_adx(r, &b, &n, err);
        if (rc == HIBUS_OK)
            *content_type = "application/adx+xml";
    } else {
        rc = write_datavalueset(r, &b, &n, err);
        if (rc == HIBUS_OK)
            *content_type = "application/json";
    }
    if (rc == HIBUS_OK) {
        *body = b;
        *len = n;
    }
    return rc;
}
