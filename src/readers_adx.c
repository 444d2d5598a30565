/*
 * readers_adx.c - the adx reader: ADX XML (IHE QRPH ADX, namespace
 * urn:ihe:qrph:adx:2015) in the source's codes, read as DHIS2 reads it (see
 * hibus/readers.h and docs/formats.md); and libxml2's set-up for the whole process.
 *
 * Entry points: reader_read_adx (readers_internal.h; given the body by
 * reader_parse_opts), reader_global_init and reader_global_cleanup (hibus/readers.h).
 *
 * Sources cited here: dhis2-core 2.36.0 .. 2.41.0 dhis-2/dhis-services/
 * dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/adx/DefaultAdxDataService.java
 * (parseADXDataValueToDxf / parseAdxDataValueToDxf, parseAdxGroupToDxf and the export
 * loop).
 *
 * Invariants: a DOCTYPE stops the parser before any declaration in it is read, so
 * neither external entities (XXE) nor entity expansion bombs can happen, and nothing is
 * fetched (XML_PARSE_NONET). libxml2's errors go to a handler of the parse, never to
 * stderr. Positions are XPath-like with 1-based indexes ("group[1]/dataValue[3]@value").
 */
#include "hibus/readers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "hibus/cpubudget.h"
#include "hibus/period.h"

#include "readers_internal.h"

#define ADX_NS "urn:ihe:qrph:adx:2015"

/* Bounds on the work one document may cost, checked before libxml2 sees it: libxml2
 * compares each attribute of an element with every one before it (200,000 attributes
 * on one element took minutes of CPU), and builds a node per element and attribute.
 * ADX needs a handful of attributes per element and four levels. */
#define ADX_MAX_ATTRIBUTES 64 /* per element; also the category attributes' bound */
#define ADX_MAX_DEPTH 32
#define ADX_MAX_ELEMENTS 1000000

/* ------------------------------------------------------------------------------------
 * adx
 * ------------------------------------------------------------------------------------ */

struct xml_state {
    struct reader_ctx *rd;
    bool dtd; /* a DOCTYPE or entity declaration was met */
    int dtd_line;
    int n_errors;                         /* libxml2 errors turned into problems */
    bool over_cpu;                        /* limits.request_cpu ran out while libxml2 was parsing */
    startElementNsSAX2Func start_element; /* libxml2's own, which builds the tree */
};

/* Every element passes here on its way into the tree, so a parse that uses up the
 * CPU budget is stopped where it is. */
static void xml_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                              const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                              int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct xml_state *st = ctxt->_private;
    st->start_element(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                      nb_defaulted, attributes);
    if (cpu_budget_over()) {
        st->over_cpu = true;
        xmlStopParser(ctxt);
    }
}

/* libxml2 errors of one parse, routed through the context (never to stderr). */
static void xml_error(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = data;
    struct xml_state *st = ctxt->_private;
    if (st == NULL || st->dtd || e == NULL || e->level == XML_ERR_WARNING)
        return;
    if (++st->n_errors > 10)
        return;
    char msg[512];
    hibus_strlcpy(msg, e->message ? e->message : "unknown error", sizeof msg);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "line %d", e->line);
    reader_problem(st->rd, where, "invalid XML at line %d: %s", e->line, msg);
}

/* Any DOCTYPE stops the parser before its declarations are read: hibus needs no DTD,
 * and refusing them outright closes XXE, entity bombs and external DTD loading. */
static void xml_refuse_dtd(xmlParserCtxtPtr ctxt)
{
    struct xml_state *st = ctxt->_private;
    if (!st->dtd) {
        st->dtd = true;
        st->dtd_line = ctxt->input != NULL ? ctxt->input->line : 0;
    }
    xmlStopParser(ctxt);
}

static void xml_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                                const xmlChar *sys_id)
{
    (void)name;
    (void)ext_id;
    (void)sys_id;
    xml_refuse_dtd(ctx);
}

static void xml_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                            const xmlChar *system_id, xmlChar *content)
{
    (void)name;
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    xml_refuse_dtd(ctx);
}

static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static bool is_adx(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns != NULL &&
           xmlStrEqual(n->ns->href, BAD_CAST ADX_NS) && xmlStrEqual(n->name, BAD_CAST name);
}

/* An attribute without namespace, as a new string (xmlFree) or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
    return (char *)xmlGetNoNsProp(n, BAD_CAST name);
}

/* Reads a required attribute: a problem when missing, empty or too long. */
static char *required_attr(struct reader_ctx *rd, const xmlNode *n, const char *name,
                           const char *elem)
{
    char where[READER_WHERE_MAX];
    char *v = attr(n, name);
    reader_where_fmt(where, "%s@%s", elem, name);
    if (v == NULL || *v == '\0') {
        reader_problem(rd, where, "attribute %s is required", name);
    } else if (strlen(v) > (strcmp(name, "value") == 0 ? READER_TEXT_MAX : READER_CODE_MAX)) {
        reader_problem(rd, where, "attribute %s is too long (%zu bytes)", name, strlen(v));
    } else {
        return v;
    }
    xmlFree(v);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ADX disaggregation of an element: the explicit categoryOptionCombo attribute, else
 * every other un-namespaced attribute not in skip[] as "CATEGORY=OPTION" pairs sorted by
 * name and joined with ",", else NULL. Caller frees. */
static char *disaggregation(struct reader_ctx *rd, const xmlNode *n, const char *const *skip,
                            const char *explicit_name)
{
    char *explicit = attr(n, explicit_name);
    if (explicit != NULL) {
        char *c = strdup(explicit);
        xmlFree(explicit);
        if (c == NULL)
            rd->nomem = true;
        return c;
    }
    char *pairs[ADX_MAX_ATTRIBUTES];
    size_t np = 0, total = 0;
    for (const xmlAttr *a = n->properties; a != NULL; a = a->next) {
        if (a->ns != NULL)
            continue;
        bool skipped = false;
        for (size_t k = 0; skip[k] != NULL; k++)
            if (xmlStrEqual(a->name, BAD_CAST skip[k]))
                skipped = true;
        if (skipped)
            continue;
        if (np == sizeof pairs / sizeof pairs[0]) {
            reader_problem(rd, NULL, "too many category attributes on one element (at most %d)",
                           ADX_MAX_ATTRIBUTES);
            break;
        }
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        size_t len = strlen((const char *)a->name) + 1 + (v ? strlen((const char *)v) : 0) + 1;
        pairs[np] = malloc(len);
        if (pairs[np] == NULL) {
            xmlFree(v);
            rd->nomem = true;
            break;
        }
        snprintf(pairs[np], len, "%s=%s", (const char *)a->name, v ? (const char *)v : "");
        xmlFree(v);
        total += len;
        np++;
    }
    char *out = NULL;
    if (np > 0 && !rd->nomem) {
        qsort(pairs, np, sizeof pairs[0], cmp_str);
        out = malloc(total);
        if (out == NULL) {
            rd->nomem = true;
        } else {
            out[0] = '\0';
            size_t off = 0;
            for (size_t k = 0; k < np; k++)
                off += (size_t)snprintf(out + off, total - off, "%s%s", k ? "," : "", pairs[k]);
        }
    }
    for (size_t k = 0; k < np; k++)
        free(pairs[k]);
    return out;
}

static const char *const group_attrs[] = {
    "orgUnit", "period", "dataSet", "completeDate", "attributeOptionCombo", NULL};
static const char *const value_attrs[] = {"dataElement", "value", "categoryOptionCombo", NULL};

/* One dataValue. ou, pe (canonical) and aoc are its group's (aoc may be NULL).
 *
 * <annotation>: DHIS2 reads it only for a data element whose value type is not numeric,
 * and then it replaces the value attribute; for a numeric one it is ignored. The value
 * attribute is required either way: "value attribute is required on 'dataValue'" is checked
 * before the annotation, and DHIS2's own export writes value="0" beside the annotation of a
 * text data element (dhis2-core 2.36.0 .. 2.41.0 dhis-2/dhis-services/dhis-service-dxf2/src/
 * main/java/org/hisp/dhis/dxf2/adx/DefaultAdxDataService.java, parseADXDataValueToDxf /
 * parseAdxDataValueToDxf and the export loop). Only the mapping knows the value type, so the
 * annotation is kept apart (report_value.annotation), never as a comment. */
static void adx_value(struct reader_ctx *rd, struct report *r, const xmlNode *dv, const char *gw,
                      size_t vi, const char *ou, const char *pe, const char *aoc)
{
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "%s/dataValue[%zu]", gw, vi);
    const xmlNode *an = NULL;
    for (const xmlNode *c = dv->children; c != NULL && an == NULL; c = c->next)
        if (is_adx(c, "annotation"))
            an = c;
    char *annotation = an != NULL ? (char *)xmlNodeGetContent(an) : NULL;
    char *de = required_attr(rd, dv, "dataElement", where);
    char *value = NULL;
    char *raw = attr(dv, "value");
    if (raw == NULL && annotation != NULL) {
        char w[READER_WHERE_MAX];
        reader_where_fmt(w, "%s@value", where);
        reader_problem(rd, w,
                       "attribute value is required, also beside an annotation (DHIS2 refuses a "
                       "dataValue without it; its own ADX export writes value=\"0\" there)");
    } else {
        value = required_attr(rd, dv, "value", where);
    }
    xmlFree(raw);
    char *measure = disaggregation(rd, dv, value_attrs, "categoryOptionCombo");
    for (const xmlNode *c = dv->children; c != NULL; c = c->next) {
        if (c != an && c->type == XML_ELEMENT_NODE) {
            char w[READER_WHERE_MAX];
            reader_where_fmt(w, "%s/%s", where, (const char *)c->name);
            reader_problem(rd, w, "unexpected element %.64s in a dataValue", (const char *)c->name);
        }
    }
    if (annotation != NULL && strlen(annotation) > READER_TEXT_MAX) {
        reader_problem(rd, where, "the annotation is too long (%zu bytes)", strlen(annotation));
    } else if (de != NULL && value != NULL) {
        struct report_value *v = reader_add_value(rd, r, de, measure, value, NULL, where);
        if (v != NULL) {
            reader_set_overrides(rd, r, v, pe, ou, aoc);
            reader_set_field(rd, &v->annotation, annotation);
        }
    }
    xmlFree(de);
    xmlFree(value);
    xmlFree(annotation);
    free(measure);
}

/* One group. Groups are independent in DHIS2 (each is turned into its own data values,
 * DefaultAdxDataService.parseAdxGroupToDxf), so org unit, period and attribute option combo
 * may change from group to group: the first group's are the report's, and the values of a
 * later group carry theirs where they differ. The data set may not change (a report has
 * one); neither may a group lack the attribute option combo the first group has, since a
 * value cannot say "the default combo" when the report names another. */
static void adx_group(struct reader_ctx *rd, struct report *r, const xmlNode *g, size_t gi,
                      bool first)
{
    char gw[READER_WHERE_MAX], where[READER_WHERE_MAX];
    reader_where_fmt(gw, "group[%zu]", gi);
    char *ou = required_attr(rd, g, "orgUnit", gw);
    char *adx_pe = required_attr(rd, g, "period", gw);
    char *ds = required_attr(rd, g, "dataSet", gw);
    char *cd = attr(g, "completeDate");
    char *aoc = disaggregation(rd, g, group_attrs, "attributeOptionCombo");
    struct period p;
    bool have_period = false;
    if (adx_pe != NULL) {
        reader_where_fmt(where, "%s@period", gw);
        if (period_from_adx(adx_pe, &p))
            have_period = true;
        else
            reader_problem(rd, where,
                           "invalid ADX period \"%.40s\": expected start/duration such as "
                           "2024-01-01/P1M, starting on the first day of such a period",
                           adx_pe);
    }

    if (first) {
        reader_set_field(rd, &r->org_unit, ou);
        reader_set_field(rd, &r->data_set, ds);
        reader_set_field(rd, &r->complete_date, cd);
        reader_set_field(rd, &r->attribute_option_combo, aoc);
        if (have_period)
            reader_set_report_period(rd, r, &p);
    } else {
        if (ds != NULL && (r->data_set == NULL || strcmp(ds, r->data_set) != 0)) {
            reader_where_fmt(where, "%s@dataSet", gw);
            reader_problem(
                rd, where,
                "data set \"%.64s\" differs from the first group's \"%.64s\": a report has "
                "one data set",
                ds, r->data_set ? r->data_set : "");
        }
        if (aoc == NULL && r->attribute_option_combo != NULL) {
            reader_problem(
                rd, gw,
                "the group has no attribute option combo but the first group has \"%.64s\": "
                "give every group one, or put the groups without one first",
                r->attribute_option_combo);
        }
    }

    size_t vi = 0;
    for (const xmlNode *c = g->children; c != NULL && !reader_out_of_cpu(rd); c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (is_adx(c, "dataValue")) {
            vi++;
            if (ou != NULL && have_period)
                adx_value(rd, r, c, gw, vi, ou, p.id, aoc);
            else {
                /* Still check the values, against placeholders that never match. */
                adx_value(rd, r, c, gw, vi, "", "", aoc);
            }
        } else {
            reader_where_fmt(where, "%s/%s", gw, (const char *)c->name);
            reader_problem(rd, where, "unexpected element %.64s in a group (expected dataValue)",
                           (const char *)c->name);
        }
    }
    xmlFree(ou);
    xmlFree(adx_pe);
    xmlFree(ds);
    xmlFree(cd);
    free(aoc);
}

/* Skips to just past the first occurrence of end (from p), counting lines; returns len
 * when it never comes. */
static size_t adx_skip_past(const char *s, size_t len, size_t p, const char *end, int *line)
{
    size_t n = strlen(end);
    for (; p < len; p++) {
        if (s[p] == '\n')
            (*line)++;
        if (p + n <= len && memcmp(s + p, end, n) == 0)
            return p + n;
    }
    return len;
}

/* A lexical pass over the markup (comments, CDATA, processing instructions and quoted
 * attribute values skipped) that enforces the bounds above; true when within them. A
 * DOCTYPE ends the pass: the parser refuses it. Well-formedness is libxml2's to judge. */
static bool adx_within_bounds(struct reader_ctx *rd, const char *s, size_t len)
{
    int line = 1, depth = 0;
    size_t elements = 0;
    char where[READER_WHERE_MAX];
    for (size_t p = 0; p < len; p++) {
        if (s[p] == '\n')
            line++;
        if (s[p] != '<' || p + 1 >= len)
            continue;
        char c = s[p + 1];
        if (c == '?') {
            p = adx_skip_past(s, len, p + 2, "?>", &line) - 1;
        } else if (c == '!') {
            if (len - p >= 4 && memcmp(s + p, "<!--", 4) == 0)
                p = adx_skip_past(s, len, p + 4, "-->", &line) - 1;
            else if (len - p >= 9 && memcmp(s + p, "<![CDATA[", 9) == 0)
                p = adx_skip_past(s, len, p + 9, "]]>", &line) - 1;
            else
                return true; /* a DOCTYPE: refused by the parse */
        } else if (c == '/') {
            depth--;
            p = adx_skip_past(s, len, p + 2, ">", &line) - 1;
        } else {
            int tag_line = line;
            if (++elements > ADX_MAX_ELEMENTS) {
                reader_where_fmt(where, "line %d", tag_line);
                reader_problem(rd, where,
                               "more than %d elements: send the data in smaller "
                               "documents",
                               ADX_MAX_ELEMENTS);
                return false;
            }
            if (++depth > ADX_MAX_DEPTH) {
                reader_where_fmt(where, "line %d", tag_line);
                reader_problem(rd, where, "elements nested deeper than %d levels (ADX needs 4)",
                               ADX_MAX_DEPTH);
                return false;
            }
            int attributes = 0;
            for (p += 1; p < len && s[p] != '>'; p++) {
                if (s[p] == '\n') {
                    line++;
                } else if (s[p] == '"' || s[p] == '\'') {
                    const char q[2] = {s[p], '\0'};
                    p = adx_skip_past(s, len, p + 1, q, &line) - 1;
                } else if (s[p] == '=' && ++attributes > ADX_MAX_ATTRIBUTES) {
                    reader_where_fmt(where, "line %d", tag_line);
                    reader_problem(rd, where, "an element with more than %d attributes",
                                   ADX_MAX_ATTRIBUTES);
                    return false;
                } else if (s[p] == '/' && p + 1 < len && s[p + 1] == '>') {
                    depth--;
                }
            }
        }
    }
    return true;
}

void reader_read_adx(struct reader_ctx *rd, struct report *r, const void *body, size_t len)
{
    size_t skip;
    if (!reader_check_utf8(rd, body, len, "ADX XML", &skip))
        return;
    if (len > INT32_MAX) {
        reader_problem(rd, "body", "the body is too large for the XML parser");
        return;
    }

    if (!adx_within_bounds(rd, body, len))
        return;

    /* Errors go to this context's handler; the generic channel (thread-local in
     * libxml2) is silenced on this thread so nothing reaches stderr. */
    xmlSetGenericErrorFunc(NULL, xml_silent);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        rd->nomem = true;
        return;
    }
    struct xml_state st = {.rd = rd};
    ctxt->_private = &st;
    ctxt->sax->serror = xml_error;
    ctxt->sax->internalSubset = xml_internal_subset;
    ctxt->sax->entityDecl = xml_entity_decl;
    st.start_element = ctxt->sax->startElementNs;
    if (st.start_element != NULL)
        ctxt->sax->startElementNs = xml_start_element;
    ctxt->vctxt.error = xml_silent;
    ctxt->vctxt.warning = xml_silent;

    /* NONET: never fetch anything; no NOENT (no entity substitution), no DTDLOAD.
     * The encoding is forced to UTF-8: the bytes were checked above. */
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, body, (int)len, "body.xml", "UTF-8",
                                      XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOWARNING);
    if (st.dtd || (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL))) {
        char where[READER_WHERE_MAX];
        reader_where_fmt(where, "line %d", st.dtd_line ? st.dtd_line : 1);
        reader_problem(rd, where, "DTDs and entities are not accepted: remove the <!DOCTYPE ...>");
        goto done;
    }
    if (st.over_cpu) {
        reader_out_of_cpu(rd);
        goto done;
    }
    if (doc == NULL) {
        if (st.n_errors == 0)
            reader_problem(rd, "body", "the body is not well-formed XML");
        goto done;
    }
    if (st.n_errors > 0)
        goto done;

    const xmlNode *root = xmlDocGetRootElement(doc);
    if (root == NULL || !is_adx(root, "adx")) {
        char found[READER_WHERE_MAX];
        reader_where_fmt(found, "%s%s%s%s", root && root->ns ? "{" : "",
                         root && root->ns ? (const char *)root->ns->href : "",
                         root && root->ns ? "}" : "", root ? (const char *)root->name : "nothing");
        reader_problem(rd, "adx", "the root element must be adx in namespace " ADX_NS " (found %s)",
                       found);
        goto done;
    }

    size_t gi = 0;
    for (const xmlNode *g = root->children; g != NULL && !reader_out_of_cpu(rd); g = g->next) {
        if (g->type != XML_ELEMENT_NODE)
            continue;
        if (is_adx(g, "group")) {
            gi++;
            adx_group(rd, r, g, gi, gi == 1);
        } else {
            char where[READER_WHERE_MAX];
            reader_where_fmt(where, "%s", (const char *)g->name);
            reader_problem(rd, where, "unexpected element %.64s in adx (expected group)",
                           (const char *)g->name);
        }
    }
    if (gi == 0)
        reader_problem(rd, "adx", "the document has no group");
    else if (r->n_values == 0 && rd->n == 0)
        reader_problem(rd, "adx", "the document has no dataValue");

done:
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
}

/* ------------------------------------------------------------------------------------
 * libxml2, once per process
 * ------------------------------------------------------------------------------------ */

void reader_global_init(void)
{
    xmlInitParser();
    xmlSetGenericErrorFunc(NULL, xml_silent);
}

void reader_global_cleanup(void)
{
    xmlCleanupParser();
}
