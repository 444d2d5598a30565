/*
 * dhis2.c - DHIS2 import URLs and import summaries (see hibus/dhis2.h).
 *
 * Rule for the client of an import (FORMATS.md 1.4): treat 200 and 409 alike as
 * "parse the summary"; the summary's status and conflicts decide (see
 * dhis2_outcome), never the ignored count: dhis2-core's DefaultDataValueSetService
 * (dhis2/dhis2-core, dhis-2/dhis-services/dhis-service-dxf2/.../datavalueset/,
 * 2.36 to 2.41) sets SUCCESS whenever the summary has no conflict, and counts as
 * ignored both zeros of data elements whose zeroIsSignificant is false
 * (ValidationUtils.dataValueIsZeroAndInsignificant, ImportSummary.skipValue) and,
 * from 2.38, values re-sent unchanged (dataValueUpdateShouldBeIgnored). The
 * envelope's own status ("OK"/"WARNING"/"ERROR") is not used: the inner
 * ImportSummary is the one both shapes share.
 */
#include "hibus/dhis2.h"

#include "hibus/alloc.h"
#include "hibus/mediator.h"
#include "hibus/period.h"
#include "hibus/txlog.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long count_of(const json_t *counts, const char *key)
{
    const json_t *v = json_object_get(counts, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

static bool is_import_summary(const json_t *o)
{
    const char *rt = json_string_value(json_object_get(o, "responseType"));
    return json_is_object(o) && ((rt != NULL && strcmp(rt, "ImportSummary") == 0) ||
                                 json_is_object(json_object_get(o, "importCount")));
}

/* ---------------------------------------------------------- XML summaries */

/* Jackson's XML of an ImportSummary (dhis2-core importsummary/ImportSummary.java,
 * ImportCount.java, ImportConflict.java): <importSummary> (or <webMessage> with the
 * summary in <response>) in the DXF 2.0 namespace; status, description and
 * dataSetComplete are elements, importCount and each <conflicts><conflict> carry
 * their fields as attributes, rejectedIndexes wraps <rejectedIndex> elements. DHIS2
 * 2.36 answers ADX imports so whatever the client accepts, and 2.37.0-2.37.2 can
 * answer them only so. Elements are matched by local name. */

static bool xml_is(const xmlNode *n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name);
}

static const xmlNode *xml_child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c != NULL; c = c->next)
        if (xml_is(c, name))
            return c;
    return NULL;
}

static void xml_text_to(const xmlNode *n, char *out, size_t cap)
{
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    xmlFree(t);
}

static long xml_count(const xmlNode *n, const char *attr)
{
    xmlChar *v = n ? xmlGetProp(n, BAD_CAST attr) : NULL;
    long x = v ? strtol((const char *)v, NULL, 10) : 0;
    xmlFree(v);
    return x;
}

static enum hibus_err parse_xml_summary(const char *body, size_t len, struct dhis2_summary *out,
                                        struct hibus_error *err)
{
    /* A summary has no DTD: refusing one before parsing closes entity expansion. */
    if (memmem(body, len, "<!DOCTYPE", 9) != NULL || memmem(body, len, "<!ENTITY", 8) != NULL)
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "the answer is XML with a DTD, not an "
                               "import summary");
    if (len > INT32_MAX)
        return hibus_error_set(err, HIBUS_E_INVALID, "the answer is too large");
    xmlDocPtr doc = xmlReadMemory(body, (int)len, "answer.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    const xmlNode *sum = xml_is(root, "importSummary") ? root
                         : xml_is(root, "webMessage")  ? xml_child(root, "response")
                                                       : NULL;
    if (sum == NULL || xml_child(sum, "importCount") == NULL) {
        char msg[256] = "";
        xml_text_to(xml_child(root, "message"), msg, sizeof msg);
        xmlFreeDoc(doc);
        return hibus_error_set(err, HIBUS_E_INVALID, "the answer is not an import summary%s%s%s",
                               msg[0] ? " (DHIS2 said: \"" : "", msg, msg[0] ? "\")" : "");
    }
    out->wrapped = sum != root;
    xml_text_to(xml_child(sum, "status"), out->status, sizeof out->status);
    xml_text_to(xml_child(sum, "description"), out->description, sizeof out->description);
    xml_text_to(xml_child(sum, "dataSetComplete"), out->data_set_complete,
                sizeof out->data_set_complete);
    const xmlNode *count = xml_child(sum, "importCount");
    out->imported = xml_count(count, "imported");
    out->updated = xml_count(count, "updated");
    out->ignored = xml_count(count, "ignored");
    out->deleted = xml_count(count, "deleted");
    out->conflicts = json_array();
    const xmlNode *conflicts = xml_child(sum, "conflicts");
    for (const xmlNode *c = conflicts ? conflicts->children : NULL; c != NULL; c = c->next) {
        if (!xml_is(c, "conflict"))
            continue;
        json_t *o = json_object();
        static const char *const attrs[] = {"object", "value", "errorCode", "property"};
        for (size_t i = 0; o != NULL && i < 4; i++) {
            xmlChar *v = xmlGetProp(c, BAD_CAST attrs[i]);
            if (v != NULL)
                json_object_set_new(o, attrs[i], json_string((const char *)v));
            xmlFree(v);
        }
        json_array_append_new(out->conflicts, o);
    }
    const xmlNode *rej = xml_child(sum, "rejectedIndexes");
    if (rej != NULL) {
        out->rejected = json_array();
        for (const xmlNode *c = rej->children; c != NULL; c = c->next) {
            char n[32];
            if (!xml_is(c, "rejectedIndex"))
                continue;
            xml_text_to(c, n, sizeof n);
            json_array_append_new(out->rejected, json_integer(strtol(n, NULL, 10)));
        }
    }
    xmlFreeDoc(doc);
    if (out->conflicts == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    return HIBUS_OK;
}

enum hibus_err dhis2_parse_summary(const char *body, size_t len, struct dhis2_summary *out,
                                   struct hibus_error *err)
{
    memset(out, 0, sizeof *out);
    size_t at = 0;
    while (body != NULL && at < len && strchr(" \t\r\n", body[at]) != NULL)
        at++;
    if (body != NULL && len - at >= 3 && memcmp(body + at, "\xEF\xBB\xBF", 3) == 0)
        at += 3;
    if (body != NULL && at < len && body[at] == '<') {
        enum hibus_err rc = parse_xml_summary(body, len, out, err);
        if (rc != HIBUS_OK)
            dhis2_summary_free(out);
        return rc;
    }
    json_error_t je;
    json_t *doc = json_loadb(body ? body : "", len, 0, &je);
    if (doc == NULL)
        return hibus_error_set(err, HIBUS_E_INVALID,
                               "the answer is not JSON: %s (line %d, column %d)", je.text, je.line,
                               je.column);
    const json_t *sum = doc;
    if (!is_import_summary(doc)) {
        const json_t *inner = json_object_get(doc, "response");
        if (!is_import_summary(inner)) {
            const char *msg = json_string_value(json_object_get(doc, "message"));
            hibus_error_set(err, HIBUS_E_INVALID, "the answer is not an import summary%s%s%s",
                            msg ? " (DHIS2 said: \"" : "", msg ? msg : "", msg ? "\")" : "");
            json_decref(doc);
            return HIBUS_E_INVALID;
        }
        sum = inner;
        out->wrapped = true;
    }
    const char *st = json_string_value(json_object_get(sum, "status"));
    snprintf(out->status, sizeof out->status, "%s", st ? st : "");
    const json_t *counts = json_object_get(sum, "importCount");
    out->imported = count_of(counts, "imported");
    out->updated = count_of(counts, "updated");
    out->ignored = count_of(counts, "ignored");
    out->deleted = count_of(counts, "deleted");
    const json_t *conf = json_object_get(sum, "conflicts");
    out->conflicts = json_is_array(conf) ? json_deep_copy(conf) : json_array();
    const json_t *rej = json_object_get(sum, "rejectedIndexes");
    out->rejected = json_is_array(rej) ? json_deep_copy(rej) : NULL;
    const json_t *dsc = json_object_get(sum, "dataSetComplete");
    if (json_is_string(dsc))
        snprintf(out->data_set_complete, sizeof out->data_set_complete, "%s",
                 json_string_value(dsc));
    else if (json_is_boolean(dsc))
        snprintf(out->data_set_complete, sizeof out->data_set_complete, "%s",
                 json_is_true(dsc) ? "true" : "false");
    const char *d = json_string_value(json_object_get(sum, "description"));
    snprintf(out->description, sizeof out->description, "%s", d ? d : "");
    json_decref(doc);
    if (out->conflicts == NULL)
        return hibus_error_set(err, HIBUS_E_NOMEM, "out of memory");
    return HIBUS_OK;
}

void dhis2_summary_free(struct dhis2_summary *s)
{
    if (s == NULL)
        return;
    json_decref(s->conflicts);
    json_decref(s->rejected);
    s->conflicts = NULL;
    s->rejected = NULL;
}

long dhis2_rejected_count(const struct dhis2_summary *s)
{
    if (s->rejected != NULL)
        return (long)json_array_size(s->rejected);
    /* The union of the conflicts' indexes; a conflict without indexes (DHIS2
     * before 2.37, or a legacy-shaped one) leaves the count unknown. */
    json_t *seen = json_object();
    if (seen == NULL)
        return -1;
    long n = json_array_size(s->conflicts) > 0 ? 0 : -1;
    size_t i, k;
    const json_t *c, *ix;
    json_array_foreach(s->conflicts, i, c)
    {
        const json_t *idx = json_object_get(c, "indexes");
        if (!json_is_array(idx)) {
            n = -1;
            break;
        }
        json_array_foreach(idx, k, ix)
        {
            char key[32];
            snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(ix));
            if (json_object_get(seen, key) == NULL) {
                json_object_set_new(seen, key, json_true());
                n++;
            }
        }
    }
    json_decref(seen);
    return n;
}

const char *dhis2_outcome(long http_status, const struct dhis2_summary *s)
{
    if (s == NULL || !((http_status >= 200 && http_status < 300) || http_status == 409))
        return "failed";
    if (strcmp(s->status, "ERROR") == 0)
        return "failed";
    bool conflicts = json_array_size(s->conflicts) > 0;
    if (strcmp(s->status, "SUCCESS") == 0)
        return conflicts ? "completed_with_errors" : "successful";
    if (strcmp(s->status, "WARNING") == 0)
        return "completed_with_errors";
    return "failed"; /* a status DHIS2 never sends: not a delivery hibus can vouch for */
}

json_t *dhis2_summary_json(const struct dhis2_summary *s)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:O, s:s}", "status", s->status, "imported",
                          (json_int_t)s->imported, "updated", (json_int_t)s->updated, "ignored",
                          (json_int_t)s->ignored, "deleted", (json_int_t)s->deleted, "conflicts",
                          s->conflicts ? s->conflicts : json_array(), "format",
                          s->wrapped ? "webmessage" : "bare");
    if (j == NULL)
        return NULL;
    if (s->description[0] != '\0')
        json_object_set_new(j, "description", json_string(s->description));
    if (s->rejected != NULL)
        json_object_set(j, "rejected_indexes", s->rejected);
    if (s->data_set_complete[0] != '\0' && strcmp(s->data_set_complete, "false") != 0)
        json_object_set_new(j, "data_set_complete", json_string(s->data_set_complete));
    long rejected = dhis2_rejected_count(s);
    if (rejected >= 0 || json_array_size(s->conflicts) == 0) {
        long quiet = s->ignored - (rejected > 0 ? rejected : 0);
        json_object_set_new(j, "ignored_without_conflict", json_integer(quiet > 0 ? quiet : 0));
    }
    return j;
}

char *dhis2_import_url(const struct config_route *route, const char *writer)
{
    const char *base = route->url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    const char *id_scheme = route->id_scheme;
    if (id_scheme == NULL && writer != NULL && strcmp(writer, "adx") == 0)
        id_scheme = "UID";
    size_t cap = bl + 512 + (id_scheme ? strlen(id_scheme) : 0) +
                 (route->import_strategy ? strlen(route->import_strategy) : 0);
    char *u = hibus_xmalloc(cap);
    int n = snprintf(u, cap, "%.*s/api/dataValueSets", (int)bl, base);
    char sep = '?';
    if (route->dry_run) {
        n += snprintf(u + n, cap - (size_t)n, "%cdryRun=true", sep);
        sep = '&';
    }
    if (route->import_strategy != NULL &&
        strcmp(route->import_strategy, "CREATE_AND_UPDATE") != 0) {
        n += snprintf(u + n, cap - (size_t)n, "%cimportStrategy=%s", sep, route->import_strategy);
        sep = '&';
    }
    if (id_scheme != NULL) {
        n += snprintf(u + n, cap - (size_t)n, "%cidScheme=%s", sep, id_scheme);
        sep = '&';
    }
    /* A kind whose scheme differs from idScheme's (UID when there is none) gets its
     * own parameter, which DHIS2 prefers to idScheme (ImportOptions.getIdSchemes). */
    const char *by_default = id_scheme != NULL ? id_scheme : "UID";
    for (int k = 0; k < MAPPING_KINDS; k++) {
        const char *ks = route->id_schemes[k];
        if (ks != NULL && strcmp(ks, by_default) != 0) {
            n += snprintf(u + n, cap - (size_t)n, "%c%s=%s", sep, MAPPING_KIND_PARAMS[k], ks);
            sep = '&';
        }
    }
    return u;
}

/* --------------------------------------------------------- remote check */

enum hibus_err dhis2_get(const struct config_route *route, const char *path, json_t **doc,
                         struct hibus_error *err)
{
    const char *base = route->url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    size_t cap = bl + strlen(path) + 1;
    char *url = hibus_xmalloc(cap);
    snprintf(url, cap, "%.*s%s", (int)bl, base, path);
    struct mediator_request rq = {.method = "GET",
                                  .url = url,
                                  .own_body = true,
                                  .accept = "application/json",
                                  .max_response = 64u << 20};
    struct mediator_response resp;
    enum hibus_err rc = mediator_forward(route, &rq, &resp);
    if (rc != HIBUS_OK) {
        hibus_error_set(err, HIBUS_E_TARGET, "could not reach DHIS2 at %s: %s", url, resp.error);
    } else if (resp.status != 200) {
        rc = hibus_error_set(err, HIBUS_E_TARGET, "DHIS2 answered %ld to GET %s", resp.status, url);
        if (resp.status == 401 || resp.status == 403)
            hibus_error_hint(err, "Check the credentials in the auth: of route \"%s\".",
                             route->name);
    } else if ((*doc = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL)) == NULL) {
        rc = hibus_error_set(err, HIBUS_E_TARGET,
                             "DHIS2 answered GET %s with something that is "
                             "not JSON",
                             url);
    }
    mediator_response_free(&resp);
    free(url);
    return rc;
}

struct uid_ref {
    const char *uid;
    const char *code; /* what maps to it, for the message */
};

int dhis2_url_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return (int)n;
}

/* The property DHIS2 knows a mapping's targets of kind k by: "id" or "code". */
static const char *prop_of(const struct mapping *m, enum mapping_kind k)
{
    return strcmp(mapping_id_scheme(m, k), "CODE") == 0 ? "code" : "id";
}

/* Can the identifier go into a filter=PROP:in:[a,b] list? (DHIS2 splits it at
 * commas, after decoding, and ends it at the bracket.) */
static bool listable(const char *s)
{
    return strpbrk(s, ",[]") == NULL;
}

/* DHIS2's paging: page (from 1) and pageSize ask for a page, and a paged answer
 * carries pager {page, pageCount, total, pageSize} next to the list (dhis2/dhis2-core,
 * dhis-2/dhis-api/src/main/java/org/hisp/dhis/common/Pager.java: the JSON properties
 * page, pageCount, total, pageSize, nextPage). A page past the last is empty. */
#define DHIS2_PAGES_MAX 100000

enum hibus_err dhis2_get_all(const struct config_route *route, const char *resource,
                             const char *query, size_t page_size, json_t *out,
                             struct hibus_error *err)
{
    for (long page = 1, pages = 1; page <= pages; page++) {
        size_t cap = strlen(resource) + (query ? strlen(query) : 0) + 96;
        char *path = hibus_xmalloc(cap);
        snprintf(path, cap, "/api/%s?page=%ld&pageSize=%zu%s%s", resource, page, page_size,
                 query && query[0] ? "&" : "", query ? query : "");
        json_t *doc = NULL;
        enum hibus_err rc = dhis2_get(route, path, &doc, err);
        free(path);
        if (rc != HIBUS_OK)
            return rc;
        const json_t *list = json_object_get(doc, resource);
        if (!json_is_array(list)) {
            json_decref(doc);
            hibus_error_set(err, HIBUS_E_TARGET,
                            "the answer to GET /api/%s of route \"%s\" has no \"%s\" list",
                            resource, route->name, resource);
            hibus_error_hint(err,
                             "Is %s a DHIS2? The route's url is the DHIS2's base address, "
                             "without /api.",
                             route->url);
            return HIBUS_E_TARGET;
        }
        json_array_extend(out, (json_t *)list);
        const json_t *pc = json_object_get(json_object_get(doc, "pager"), "pageCount");
        if (page == 1 && json_is_integer(pc))
            pages = json_integer_value(pc) < DHIS2_PAGES_MAX ? (long)json_integer_value(pc)
                                                             : DHIS2_PAGES_MAX;
        json_decref(doc);
    }
    return HIBUS_OK;
}

enum hibus_err dhis2_get_in(const struct config_route *route, const char *resource,
                            const char *prop, const char *const *values, size_t n,
                            const char *fields, json_t *out, struct hibus_error *err)
{
    enum { BATCH = 50 };
    size_t at = 0;
    while (at < n) {
        size_t k = 1, cap = strlen(resource) + strlen(fields) + strlen(prop) + 64;
        bool alone = !listable(values[at]);
        while (!alone && k < BATCH && at + k < n && listable(values[at + k]))
            k++;
        for (size_t i = 0; i < k; i++)
            cap += 3 * strlen(values[at + i]) + 1;
        char *path = hibus_xmalloc(cap);
        int w = snprintf(path, cap, "/api/%s?paging=false&fields=%s&filter=%s:%s", resource, fields,
                         prop, alone ? "eq:" : "in:[");
        for (size_t i = 0; i < k; i++) {
            if (i > 0)
                path[w++] = ',';
            w += dhis2_url_escape(path + w, cap - (size_t)w, values[at + i]);
        }
        if (!alone)
            snprintf(path + w, cap - (size_t)w, "]");
        json_t *doc = NULL;
        enum hibus_err rc = dhis2_get(route, path, &doc, err);
        free(path);
        if (rc != HIBUS_OK)
            return rc;
        const json_t *list = json_object_get(doc, resource);
        if (json_is_array(list))
            json_array_extend(out, (json_t *)list);
        json_decref(doc);
        at += k;
    }
    return HIBUS_OK;
}

/* Asks /api/<resource>?filter=PROP:in:[...] for refs, in batches (an identifier
 * that cannot stand in such a list is asked alone with PROP:eq:), and appends a
 * sentence per identifier absent from the answer; unknown gets each of them. */
static enum hibus_err check_uids(const struct config_route *route, const struct mapping *m,
                                 enum mapping_kind mk, const char *resource, const char *kind,
                                 const struct uid_ref *refs, size_t n, json_t *missing,
                                 json_t *unknown, json_t *paths, struct hibus_error *err)
{
    enum { BATCH = 50 };
    const char *prop = prop_of(m, mk);
    /* an org unit's closedDate too: one that DHIS2 closed is still found by its id
     * (dhis2/dhis2-core, dhis-2/dhis-api/src/main/java/org/hisp/dhis/
     * organisationunit/OrganisationUnit.java: the Date field closedDate) */
    const char *fields = mk == MAPPING_ORG_UNIT ? "id,code,closedDate,path" : "id,code";
    char today[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    size_t at = 0;
    while (at < n) {
        size_t k = 0;
        char path[BATCH * 64 + 256];
        int w;
        if (!listable(refs[at].uid)) {
            w = snprintf(path, sizeof path,
                         "/api/%s?paging=false&fields=%s&filter=%s:eq:", resource, fields, prop);
            dhis2_url_escape(path + w, sizeof path - (size_t)w, refs[at].uid);
            k = 1;
        } else {
            w = snprintf(path, sizeof path, "/api/%s?paging=false&fields=%s&filter=%s:in:[",
                         resource, fields, prop);
            while (k < BATCH && at + k < n && listable(refs[at + k].uid) &&
                   (size_t)w + 3 * strlen(refs[at + k].uid) + 8 < sizeof path) {
                if (k > 0)
                    path[w++] = ',';
                w += dhis2_url_escape(path + w, sizeof path - (size_t)w, refs[at + k].uid);
                k++;
            }
            snprintf(path + w, sizeof path - (size_t)w, "]");
        }
        json_t *doc = NULL;
        enum hibus_err rc = dhis2_get(route, path, &doc, err);
        if (rc != HIBUS_OK)
            return rc;
        const json_t *list = json_object_get(doc, resource);
        for (size_t i = 0; i < k; i++) {
            bool found = false;
            const char *closed = NULL;
            size_t j;
            const json_t *o;
            json_array_foreach(list, j, o)
            {
                const char *id = json_string_value(json_object_get(o, prop));
                if (id != NULL && strcmp(id, refs[at + i].uid) == 0) {
                    found = true;
                    closed = json_string_value(json_object_get(o, "closedDate"));
                    /* OrganisationUnit.java getPath(): "/" and the uids from the
                     * root down to the unit itself */
                    const char *ou_path = json_string_value(json_object_get(o, "path"));
                    if (paths != NULL && ou_path != NULL)
                        json_object_set_new(
                            paths, refs[at + i].uid,
                            json_pack("{s:s, s:s}", "path", ou_path, "code", refs[at + i].code));
                }
            }
            if (found && closed != NULL && strlen(closed) >= 10 &&
                strncmp(closed, today, 10) <= 0) {
                char line[768];
                snprintf(line, sizeof line,
                         "mapping \"%s\": org unit %s (mapped from \"%s\") was closed in DHIS2 "
                         "on %.10s: map the facility to the org unit that took its place, or "
                         "remove it",
                         m->name, refs[at + i].uid, refs[at + i].code, closed);
                json_array_append_new(missing, json_string(line));
            }
            if (found)
                continue;
            json_object_set_new(unknown, refs[at + i].uid, json_true());
            char line[768];
            snprintf(line, sizeof line,
                     "mapping \"%s\": %s %s%s (mapped from \"%s\") does not exist in DHIS2",
                     m->name, kind, strcmp(prop, "code") == 0 ? "with code " : "", refs[at + i].uid,
                     refs[at + i].code);
            json_array_append_new(missing, json_string(line));
        }
        json_decref(doc);
        at += k;
    }
    return HIBUS_OK;
}

/* Adds uid to refs unless it is there already. */
static void ref_add(struct uid_ref *refs, size_t *n, const char *uid, const char *code)
{
    if (uid == NULL)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(refs[i].uid, uid) == 0)
            return;
    refs[*n].uid = uid;
    refs[*n].code = code;
    (*n)++;
}

static void add_sentence(json_t *missing, const char *fmt, ...) HIBUS_PRINTF(2, 3);

static void add_sentence(json_t *missing, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_array_append_new(missing, json_string(line));
}

/* The object of resource whose identifier (by the mapping's scheme for kind) is
 * ident, with fields: *obj (borrowed from *doc, which the caller decrefs; NULL when
 * DHIS2 has none). */
static enum hibus_err get_one(const struct config_route *route, const struct mapping *m,
                              enum mapping_kind kind, const char *resource, const char *ident,
                              const char *fields, json_t **doc, const json_t **obj,
                              struct hibus_error *err)
{
    char path[1024], esc[768];
    dhis2_url_escape(esc, sizeof esc, ident);
    snprintf(path, sizeof path, "/api/%s?paging=false&filter=%s:eq:%s&fields=%s", resource,
             prop_of(m, kind), esc, fields);
    enum hibus_err rc = dhis2_get(route, path, doc, err);
    if (rc == HIBUS_OK)
        *obj = json_array_get(json_object_get(*doc, resource), 0);
    return rc;
}

/* Is uid among the prop ("id" or "code") of list's objects, or of list[].key's? */
static bool list_has(const json_t *list, const char *key, const char *prop, const char *uid)
{
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o)
    {
        const json_t *x = key != NULL ? json_object_get(o, key) : o;
        const char *id = json_string_value(json_object_get(x, prop));
        if (id != NULL && strcmp(id, uid) == 0)
            return true;
    }
    return false;
}

/* The data set's period type against the mapping's, and that every mapped data
 * element is in the data set and every mapped org unit assigned to it: DHIS2 refuses
 * values of a data element outside the data set named in the payload (E7633), and
 * an unassigned org unit cannot complete the data set. A data set DHIS2 does not
 * know was reported by check_uids. */
static enum hibus_err check_data_set(const struct config_route *route, const struct mapping *m,
                                     const char *ds_uid, json_t *missing, const json_t *unknown,
                                     struct hibus_error *err)
{
    json_t *doc = NULL;
    const json_t *ds = NULL;
    enum hibus_err rc = get_one(route, m, MAPPING_DATA_SET, "dataSets", ds_uid,
                                "id,code,periodType,dataSetElements[dataElement[id,code]],"
                                "organisationUnits[id,code]",
                                &doc, &ds, err);
    if (rc != HIBUS_OK)
        return rc;
    if (ds == NULL) {
        json_decref(doc);
        return HIBUS_OK;
    }
    const char *pt = json_string_value(json_object_get(ds, "periodType"));
    if (m->has_period_type && pt != NULL && strcmp(pt, period_type_name(m->period_type)) != 0)
        add_sentence(missing,
                     "mapping \"%s\": period_type is %s, but data set %s in DHIS2 is %s; set "
                     "period_type: %s in the mapping",
                     m->name, period_type_name(m->period_type), ds_uid, pt, pt);
    const json_t *des = json_object_get(ds, "dataSetElements");
    const char *last = NULL;
    for (size_t i = 0; json_is_array(des) && i < m->n_items; i++) {
        const char *de = m->items[i].de_uid;
        if (last != NULL && strcmp(last, de) == 0)
            continue;
        last = de;
        if (!list_has(des, "dataElement", prop_of(m, MAPPING_DATA_ELEMENT), de) &&
            json_object_get(unknown, de) == NULL)
            add_sentence(missing,
                         "mapping \"%s\": data element %s (mapped from \"%s\") is not in data "
                         "set %s; DHIS2 rejects its values (E7633)",
                         m->name, de, m->items[i].item, ds_uid);
    }
    const json_t *ous = json_object_get(ds, "organisationUnits");
    size_t unassigned = 0;
    for (size_t i = 0; json_is_array(ous) && i < m->n_org_units; i++) {
        if (list_has(ous, NULL, prop_of(m, MAPPING_ORG_UNIT), m->org_units[i].uid) ||
            json_object_get(unknown, m->org_units[i].uid) != NULL)
            continue;
        if (++unassigned <= 20)
            add_sentence(missing,
                         "mapping \"%s\": org unit %s (mapped from \"%s\") is not assigned to "
                         "data set %s; assign it in DHIS2",
                         m->name, m->org_units[i].uid, m->org_units[i].code, ds_uid);
    }
    if (unassigned > 20)
        add_sentence(missing, "mapping \"%s\": %zu more org units are not assigned to data set %s",
                     m->name, unassigned - 20, ds_uid);
    json_decref(doc);
    return HIBUS_OK;
}

/* Every item that declares value_type against the data element's valueType in DHIS2. */
static enum hibus_err check_value_types(const struct config_route *route, const struct mapping *m,
                                        json_t *missing, const json_t *unknown,
                                        struct hibus_error *err)
{
    const char *last = NULL;
    for (size_t i = 0; i < m->n_items; i++) {
        const struct mapping_item *it = &m->items[i];
        if (it->value_type == NULL || (last != NULL && strcmp(last, it->de_uid) == 0) ||
            json_object_get(unknown, it->de_uid) != NULL)
            continue;
        last = it->de_uid;
        json_t *doc = NULL;
        const json_t *de = NULL;
        enum hibus_err rc = get_one(route, m, MAPPING_DATA_ELEMENT, "dataElements", it->de_uid,
                                    "id,code,valueType", &doc, &de, err);
        if (rc != HIBUS_OK)
            return rc;
        const char *vt = json_string_value(json_object_get(de, "valueType"));
        if (vt != NULL && strcmp(vt, it->value_type) != 0)
            add_sentence(missing,
                         "mapping \"%s\": item \"%s\" says value_type %s, but data element %s "
                         "is %s in DHIS2",
                         m->name, it->item, it->value_type, it->de_uid, vt);
        json_decref(doc);
    }
    return HIBUS_OK;
}

enum hibus_err dhis2_check_remote(const struct config_route *route, const struct mapping *m,
                                  char *version, size_t version_len, json_t *missing,
                                  struct hibus_error *err)
{
    return dhis2_check_remote_paths(route, m, version, version_len, missing, NULL, err);
}

enum hibus_err dhis2_check_remote_paths(const struct config_route *route, const struct mapping *m,
                                        char *version, size_t version_len, json_t *missing,
                                        json_t *paths, struct hibus_error *err)
{
    json_t *info = NULL;
    enum hibus_err rc = dhis2_get(route, "/api/system/info", &info, err);
    if (rc != HIBUS_OK)
        return rc;
    const char *v = json_string_value(json_object_get(info, "version"));
    snprintf(version, version_len, "%s", v ? v : "unknown");
    json_decref(info);
    if (m == NULL)
        return HIBUS_OK;

    json_t *unknown = json_object(); /* UIDs DHIS2 does not have: said once */
    size_t cap = m->n_org_units + m->n_items + m->n_data_sets + m->n_aocs + 2;
    struct uid_ref *refs = hibus_xcalloc(cap, sizeof *refs);
    size_t n = 0;
    for (size_t i = 0; i < m->n_org_units; i++)
        ref_add(refs, &n, m->org_units[i].uid, m->org_units[i].code);
    rc = check_uids(route, m, MAPPING_ORG_UNIT, "organisationUnits", "org unit", refs, n, missing,
                    unknown, paths, err);
    n = 0;
    for (size_t i = 0; rc == HIBUS_OK && i < m->n_items; i++)
        ref_add(refs, &n, m->items[i].de_uid, m->items[i].item);
    if (rc == HIBUS_OK)
        rc = check_uids(route, m, MAPPING_DATA_ELEMENT, "dataElements", "data element", refs, n,
                        missing, unknown, NULL, err);
    n = 0;
    for (size_t i = 0; rc == HIBUS_OK && i < m->n_items; i++)
        ref_add(refs, &n, m->items[i].coc_uid,
                m->items[i].measure ? m->items[i].measure : m->items[i].item);
    ref_add(refs, &n, m->aoc_uid, "attribute_option_combo");
    for (size_t i = 0; i < m->n_aocs; i++)
        ref_add(refs, &n, m->aocs[i].uid, m->aocs[i].code);
    if (rc == HIBUS_OK)
        rc = check_uids(route, m, MAPPING_COC, "categoryOptionCombos", "category option combo",
                        refs, n, missing, unknown, NULL, err);
    n = 0;
    ref_add(refs, &n, m->data_set_uid, "data_set");
    for (size_t i = 0; i < m->n_data_sets; i++)
        ref_add(refs, &n, m->data_sets[i].uid, m->data_sets[i].code);
    if (rc == HIBUS_OK)
        rc = check_uids(route, m, MAPPING_DATA_SET, "dataSets", "data set", refs, n, missing,
                        unknown, NULL, err);
    free(refs);
    if (rc == HIBUS_OK)
        rc = check_value_types(route, m, missing, unknown, err);
    if (rc == HIBUS_OK && m->data_set_uid != NULL)
        rc = check_data_set(route, m, m->data_set_uid, missing, unknown, err);
    for (size_t i = 0; rc == HIBUS_OK && i < m->n_data_sets; i++)
        rc = check_data_set(route, m, m->data_sets[i].uid, missing, unknown, err);
    json_decref(unknown);
    return rc;
}

/* ---------------------------------------------------------------- drift */

/* "/A/B" of path "/A/B/UID": the parents, or "/" for a root. */
static void parents_of(const char *path, char *out, size_t cap)
{
    const char *last = strrchr(path, '/');
    if (last == NULL || last == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(last - path), path);
}

/* The moves of the org units in paths since the last check, as sentences in
 * check (an object of dhis2_drift's list). */
static void drift_moves(struct txlog *tl, const char *url, const struct mapping *m,
                        const json_t *paths, json_t *check, char *db_error, size_t db_error_len)
{
    json_t *moved = NULL;
    struct hibus_error err = {0};
    if (tl == NULL || txlog_org_unit_moves(tl, url, paths, &moved, &err) != HIBUS_OK) {
        if (db_error[0] == '\0')
            snprintf(db_error, db_error_len, "%s", tl == NULL ? "no connection" : err.msg);
        return;
    }
    json_t *list = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(moved, i, v)
    {
        char was[512], now[512], line[1400];
        parents_of(json_string_value(json_object_get(v, "old_path")), was, sizeof was);
        parents_of(json_string_value(json_object_get(v, "path")), now, sizeof now);
        snprintf(line, sizeof line,
                 "mapping \"%s\": org unit %s (mapped from \"%s\") was moved in DHIS2: it was "
                 "under %s at the check of %s, it is now under %s; its reports now count toward "
                 "its new parents: check that the facility is still mapped to the right org unit",
                 m->name, json_string_value(json_object_get(v, "uid")),
                 json_string_value(json_object_get(v, "code")), was,
                 json_string_value(json_object_get(v, "seen_at")), now);
        json_t *o = json_deep_copy(v);
        json_object_set_new(o, "message", json_string(line));
        json_array_append_new(list, o);
    }
    json_object_set_new(check, "moved", list);
    json_decref(moved);
}

json_t *dhis2_drift(const struct config *cfg, struct txlog *tl)
{
    json_t *checks = json_array();
    char db_error[512] = "";
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        for (size_t r = 0; r < ch->n_routes; r++) {
            const struct config_route *rt = &ch->routes[r];
            if (rt->mediator != CONFIG_MEDIATOR_DHIS2)
                continue;
            const struct mapping *m = ch->has_transform ? ch->transform.mapping : NULL;
            bool seen = false; /* the same URL and mapping through an earlier route? */
            for (size_t j = 0; j <= i && !seen; j++)
                for (size_t k = 0; k < cfg->channels[j].n_routes && !seen; k++) {
                    const struct config_route *o = &cfg->channels[j].routes[k];
                    if (o == rt)
                        break;
                    seen = o->mediator == CONFIG_MEDIATOR_DHIS2 && strcmp(o->url, rt->url) == 0 &&
                           cfg->channels[j].has_transform &&
                           cfg->channels[j].transform.mapping == m;
                }
            if (seen)
                continue;
            char version[64];
            struct hibus_error err = {0};
            json_t *missing = json_array(), *paths = json_object();
            json_t *check = json_pack("{s:s, s:s, s:s, s:s?, s:s}", "channel", ch->name, "route",
                                      rt->name, "url", rt->url, "mapping", m ? m->name : NULL,
                                      "file", rt->pos.file ? rt->pos.file : "");
            if (dhis2_check_remote_paths(rt, m, version, sizeof version, missing, paths, &err) !=
                HIBUS_OK) {
                char msg[1200];
                snprintf(msg, sizeof msg, "%s%s%s", err.msg, err.detail[0] ? ": " : "", err.detail);
                json_object_set_new(check, "error", json_string(msg));
            } else {
                json_object_set_new(check, "version", json_string(version));
                json_object_set(check, "problems", missing);
                if (m != NULL && json_object_size(paths) > 0)
                    drift_moves(tl, rt->url, m, paths, check, db_error, sizeof db_error);
            }
            json_decref(missing);
            json_decref(paths);
            json_array_append_new(checks, check);
        }
    }
    json_t *out = json_pack("{s:o}", "dhis2", checks);
    if (db_error[0] != '\0')
        json_object_set_new(out, "moves_not_compared", json_string(db_error));
    return out;
}
