/*
 * delivery.c - a stored request through its channel's pipeline and routes
 * (see hibus/delivery.h).
 *
 * Status of a transaction, following OpenHIM so integrators recognise it:
 *   the primary route failed (no answer, 5xx, an import that stored nothing) -> failed
 *   the primary answered non-2xx (http routes)                              -> completed
 *   otherwise successful, unless a secondary route that ran did not succeed,
 *   the primary's import had conflicts, or unmapped values were skipped     ->
 * completed_with_errors
 */
#define LOG_SUBSYS "delivery"
#include "hibus/delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "hibus/aggregate.h"
#include "hibus/alloc.h"
#include "hibus/clock.h"
#include "hibus/cpubudget.h"
#include "hibus/dhis2.h"
#include "hibus/log.h"
#include "hibus/mapping.h"
#include "hibus/metrics.h"
#include "hibus/quality.h"
#include "hibus/readers.h"
#include "hibus/writers.h"

#define EXCERPT_MAX 1024

/* ------------------------------------------------------------- prepare */

static pthread_mutex_t budget_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t budget_cv = PTHREAD_COND_INITIALIZER;
static size_t budget_used, budget_cap = 32u * 1024 * 1024;

void delivery_set_transform_memory(size_t bytes)
{
    pthread_mutex_lock(&budget_mu);
    budget_cap = bytes;
    pthread_cond_broadcast(&budget_cv);
    pthread_mutex_unlock(&budget_mu);
}

void delivery_budget_take(size_t bytes)
{
    pthread_mutex_lock(&budget_mu);
    while (budget_used > 0 && budget_used + bytes > budget_cap)
        pthread_cond_wait(&budget_cv, &budget_mu);
    budget_used += bytes;
    pthread_mutex_unlock(&budget_mu);
}

void delivery_budget_give(size_t bytes)
{
    pthread_mutex_lock(&budget_mu);
    budget_used -= bytes < budget_used ? bytes : budget_used;
    pthread_cond_broadcast(&budget_cv);
    pthread_mutex_unlock(&budget_mu);
}

/* Whether the stage that just ended used up limits.request_cpu; says so once. */
static bool out_of_cpu(struct delivery_prepared *p, const char *stage, const char *what)
{
    if (!cpu_budget_check())
        return false;
    char msg[256];
    cpu_budget_message(msg, sizeof msg, what);
    report_problem(p->problems, stage, "%s", msg);
    return true;
}

/* Under unmapped: reject, an event whose facility or commodity the mapping does not
 * know is refused now, not when its period is sent weeks later; one problem per
 * code. Under skip they are stored, and skipped when the period is sent. */
static void check_event_codes(const struct config_channel *ch, struct delivery_prepared *p)
{
    const struct mapping *m = ch->transform.mapping;
    if (m == NULL || ch->unmapped != MAPPING_REJECT)
        return;
    json_t *said = json_object();
    for (size_t i = 0; i < p->events.n; i++) {
        const struct agg_event *e = &p->events.v[i];
        if (mapping_org_unit(m, e->facility) == NULL &&
            json_object_get(said, e->facility) == NULL) {
            json_object_set_new(said, e->facility, json_true());
            json_t *pr = report_problem(
                p->problems, "mapping",
                "facility \"%s\" is not in mapping \"%s\" (org_units); add it there, or set "
                "unmapped: skip",
                e->facility, m->name);
            json_object_set_new(pr, "code", json_string(e->facility));
            json_object_set_new(pr, "kind", json_string("org_unit"));
            json_object_set_new(pr, "where", json_string(e->where ? e->where : ""));
        }
        bool known = false;
        for (size_t k = 0; REPORT_MEASURES[k] != NULL && !known; k++)
            known = mapping_item(m, e->commodity, REPORT_MEASURES[k]) != NULL;
        char key[300];
        snprintf(key, sizeof key, "item:%s", e->commodity);
        if (!known && json_object_get(said, key) == NULL) {
            json_object_set_new(said, key, json_true());
            json_t *pr = report_problem(
                p->problems, "mapping",
                "commodity \"%s\" has no stock measure in mapping \"%s\" (items); add it "
                "there, or set unmapped: skip",
                e->commodity, m->name);
            json_object_set_new(pr, "code", json_string(e->commodity));
            json_object_set_new(pr, "kind", json_string("item"));
            json_object_set_new(pr, "where", json_string(e->where ? e->where : ""));
        }
        /* With aggregate.by_reason a loss or adjustment that names its reason becomes
         * a value of measure "losses:REASON" or "adjustments:REASON": a reason the
         * mapping has no row for is refused now too. A count's reason goes nowhere. */
        if (!known || !ch->aggregate.by_reason || e->reason == NULL || e->reason[0] == '\0' ||
            (e->kind != AGG_LOSS && e->kind != AGG_ADJUSTMENT))
            continue;
        const char *total =
            REPORT_MEASURES[e->kind == AGG_LOSS ? REPORT_LOSSES : REPORT_ADJUSTMENTS];
        size_t mlen = strlen(total) + strlen(e->reason) + 2;
        char *measure = hibus_xmalloc(mlen);
        snprintf(measure, mlen, "%s:%s", total, e->reason);
        size_t klen = strlen(e->commodity) + mlen + 8;
        char *mkey = hibus_xmalloc(klen);
        snprintf(mkey, klen, "item:%s|%s", e->commodity, measure);
        if (mapping_item(m, e->commodity, measure) == NULL && json_object_get(said, mkey) == NULL) {
            json_object_set_new(said, mkey, json_true());
            json_t *pr = report_problem(
                p->problems, "mapping",
                "commodity \"%s\" has no measure \"%s\" in mapping \"%s\" (items), and "
                "aggregate.by_reason sends its %s by reason; map it to the reason's category "
                "option combo, or set unmapped: skip",
                e->commodity, measure, m->name, total);
            json_object_set_new(pr, "code", json_string(e->commodity));
            json_object_set_new(pr, "kind", json_string("item"));
            json_object_set_new(pr, "measure", json_string(measure));
            json_object_set_new(pr, "where", json_string(e->where ? e->where : ""));
        }
        free(mkey);
        free(measure);
    }
    json_decref(said);
}

static enum hibus_err prepare(const struct config_channel *ch, const void *body, size_t len,
                              bool derived, struct delivery_prepared *p)
{
    const struct config_transform *t = &ch->transform;
    if (ch->aggregate.on && !derived) {
        p->is_events = true;
        if (agg_parse(t->reader, body, len, &ch->aggregate, t->reader_opts.max_values, &p->events,
                      p->problems) != HIBUS_OK) {
            if (json_array_size(p->problems) == 0)
                report_problem(p->problems, "reader", "the payload could not be read as %s",
                               t->reader);
            return HIBUS_E_INVALID;
        }
        check_event_codes(ch, p);
        return json_array_size(p->problems) ? HIBUS_E_INVALID : HIBUS_OK;
    }
    /* derived figures are an lmis-report, whatever the channel's events are */
    const char *reader = derived ? "lmis-report" : t->reader;
    if (reader_parse_opts(reader, body, len, &t->reader_opts, &p->report, p->problems) !=
        HIBUS_OK) {
        if (json_array_size(p->problems) == 0)
            report_problem(p->problems, "reader", "the payload could not be read as %s", reader);
        return HIBUS_E_INVALID;
    }
    if (out_of_cpu(p, "reader", "reading the payload"))
        return HIBUS_E_INVALID;
    /* Mapping and quality both run, so one answer lists every problem of the
     * report; the quality rules read the source's codes, which mapping keeps. */
    bool mapped = t->mapping == NULL || mapping_apply(t->mapping, p->report, ch->unmapped,
                                                      p->problems, p->skipped) == HIBUS_OK;
    if (out_of_cpu(p, "mapping", "mapping the payload's codes"))
        return HIBUS_E_INVALID;
    if (!mapped && json_array_size(p->problems) == 0)
        report_problem(p->problems, "mapping", "the report could not be mapped");
    quality_check(t->quality, t->n_quality, p->report, p->problems, p->warnings);
    if (out_of_cpu(p, "quality", "checking the payload's data quality"))
        return HIBUS_E_INVALID;
    return json_array_size(p->problems) ? HIBUS_E_INVALID : HIBUS_OK;
}

bool delivery_is_derived(const char *path)
{
    return path != NULL &&
           strncmp(path, DELIVERY_AGGREGATE_PATH, sizeof DELIVERY_AGGREGATE_PATH - 1) == 0;
}

static enum hibus_err prepare_as(const struct config_channel *ch, const void *body, size_t len,
                                 bool derived, struct delivery_prepared *p)
{
    memset(p, 0, sizeof *p);
    p->problems = json_array();
    p->skipped = json_array();
    p->warnings = json_array();
    if (!ch->has_transform)
        return HIBUS_OK;
    /* Held until delivery_prepared_free: the report lives as long as the delivery. */
    delivery_budget_take(len);
    p->budget = len;
    cpu_budget_begin();
    enum hibus_err rc = prepare(ch, body, len, derived, p);
    cpu_budget_end();
    return rc;
}

enum hibus_err delivery_prepare(const struct config_channel *ch, const void *body, size_t len,
                                struct delivery_prepared *p)
{
    return prepare_as(ch, body, len, false, p);
}

enum hibus_err delivery_prepare_derived(const struct config_channel *ch, const void *body,
                                        size_t len, struct delivery_prepared *p)
{
    return prepare_as(ch, body, len, true, p);
}

void delivery_prepared_free(struct delivery_prepared *p)
{
    if (p == NULL)
        return;
    report_free(p->report);
    agg_batch_free(&p->events);
    json_decref(p->problems);
    json_decref(p->skipped);
    json_decref(p->warnings);
    if (p->budget > 0)
        delivery_budget_give(p->budget);
    memset(p, 0, sizeof *p);
}

json_t *delivery_problems_json(const struct delivery_prepared *p)
{
    if (json_array_size(p->problems) == 0 && json_array_size(p->skipped) == 0 &&
        json_array_size(p->warnings) == 0)
        return NULL;
    return json_pack("{s:O, s:O, s:O}", "problems", p->problems, "skipped", p->skipped, "warnings",
                     p->warnings);
}

static bool route_transformed(const struct config_route *rt)
{
    return rt->mediator == CONFIG_MEDIATOR_DHIS2 || rt->body == CONFIG_BODY_TRANSFORMED;
}

enum hibus_err delivery_route_body(const struct config_channel *ch, const struct config_route *rt,
                                   const struct delivery_prepared *p, char **body, size_t *len,
                                   const char **content_type, const char **writer,
                                   struct hibus_error *err)
{
    *body = NULL;
    *len = 0;
    *content_type = NULL;
    *writer = NULL;
    if (!route_transformed(rt))
        return HIBUS_OK;
    if (p->report == NULL)
        return hibus_error_set(err, HIBUS_E_CONFIG, "route \"%s\" needs the channel's transform",
                               rt->name);
    *writer = rt->writer             ? rt->writer
              : ch->transform.writer ? ch->transform.writer
                                     : "dhis2-datavalueset";
    cpu_budget_begin();
    enum hibus_err rc = writer_write(*writer, p->report, body, len, content_type, err);
    if (rc == HIBUS_OK && cpu_budget_check()) {
        free(*body);
        *body = NULL;
        *len = 0;
        char what[64], msg[256];
        snprintf(what, sizeof what, "the %s writer", *writer);
        cpu_budget_message(msg, sizeof msg, what);
        rc = hibus_error_set(err, HIBUS_E_INVALID, "route \"%s\": %s", rt->name, msg);
    }
    cpu_budget_end();
    return rc;
}

/* ---------------------------------------------------------------- routes */

static bool is_2xx(long s)
{
    return s >= 200 && s < 300;
}

/* Does a `when` entry hold for the primary's answer? */
static bool when_holds(const struct config_route *rt, const struct delivery_route_result *primary)
{
    if (rt->n_when == 0)
        return true;
    long st = primary->status;
    for (size_t i = 0; i < rt->n_when; i++) {
        const char *w = rt->when[i];
        if (strcmp(w, "failed") == 0) {
            if (strcmp(primary->outcome, "failed") == 0)
                return true;
        } else if (strlen(w) == 3 && w[1] == 'x' && w[2] == 'x') {
            if (st != 0 && st / 100 == w[0] - '0')
                return true;
        } else if (st != 0 && atol(w) == st) {
            return true;
        }
    }
    return false;
}

static const char *header_value(const struct mediator_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static bool media_type_is(const char *ctype, const char *want)
{
    if (ctype == NULL)
        return false;
    size_t n = strlen(want);
    return strncasecmp(ctype, want, n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* An OpenHIM mediator's answer (FORMATS.md 6): the client gets response.status,
 * headers and body; the mediator's status, orchestrations and properties are
 * kept as the attempt's details. */
void delivery_openhim_unwrap(struct delivery_route_result *rr)
{
    json_t *doc = json_loadb(rr->resp.body ? rr->resp.body : "", rr->resp.body_len, 0, NULL);
    const json_t *inner = json_object_get(doc, "response");
    const json_t *st = json_object_get(inner, "status");
    json_int_t code = json_is_integer(st) ? json_integer_value(st) : 0;
    if (!json_is_object(inner) || code < 100 || code > 599) {
        /* An answer that claims to be a mediator's but is not one cannot be
         * passed on: its inner status would be what the client sees. */
        rr->error = hibus_xstrdup(
            !json_is_object(inner) ? "the target answered application/json+openhim but its body is "
                                     "not an OpenHIM mediator response (no response object)"
                                   : "the OpenHIM mediator response has no valid response.status "
                                     "(an HTTP status from 100 to 599)");
        rr->outcome = "failed";
        json_decref(doc);
        return;
    }
    struct mediator_response *a = &rr->answer;
    memset(a, 0, sizeof *a);
    a->status = (long)code;
    const json_t *b = json_object_get(inner, "body");
    /* body is a string in the protocol; a mediator that sends JSON there gets it
     * passed on as JSON text rather than dropped. */
    a->body = json_is_string(b)               ? hibus_xstrdup(json_string_value(b))
              : b != NULL && !json_is_null(b) ? json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY)
                                              : hibus_xstrdup("");
    a->body_len = a->body ? strlen(a->body) : 0;
    const char *k;
    json_t *v;
    json_t *hs = json_object_get(inner, "headers");
    a->headers = hibus_xcalloc(json_object_size(hs) + 1, sizeof *a->headers);
    json_object_foreach(hs, k, v)
    {
        /* Framing headers describe the mediator's own message, not this one. */
        if (!json_is_string(v) || mediator_header_is_hop_by_hop(k))
            continue;
        a->headers[a->n_headers].name = hibus_xstrdup(k);
        a->headers[a->n_headers].value = hibus_xstrdup(json_string_value(v));
        a->n_headers++;
    }
    rr->unwrapped = true;

    const char *ms = json_string_value(json_object_get(doc, "status"));
    rr->details = json_pack("{s:s?, s:s?, s:O?, s:O?}", "openhim_status", ms, "mediator_urn",
                            json_string_value(json_object_get(doc, "x-mediator-urn")),
                            "orchestrations", json_object_get(doc, "orchestrations"), "properties",
                            json_object_get(doc, "properties"));
    /* The mediator's own verdict, when it gives one, is the route's outcome. */
    if (ms == NULL)
        rr->outcome = is_2xx(a->status) ? "successful" : "completed";
    else if (strcasecmp(ms, "Successful") == 0)
        rr->outcome = "successful";
    else if (strcasecmp(ms, "Failed") == 0)
        rr->outcome = "failed";
    else if (strncasecmp(ms, "Completed with error", 20) == 0)
        rr->outcome = "completed_with_errors";
    else
        rr->outcome = "completed";
    json_decref(doc);
}

/* Can this route's failure succeed later? No answer, a timeout, 5xx, 429, and a
 * 409 that carries no import summary (DHIS2 answers 409 while a data set is
 * locked for an analytics run) may; a refused payload, a bad credential or an
 * import that stored nothing because of its data will fail the same way again. */
static bool failure_retryable(const struct delivery_route_result *rr)
{
    if (strcmp(rr->outcome, "failed") != 0 && strcmp(rr->outcome, "completed") != 0)
        return false;
    long st = rr->resp.status;
    if (st == 0)
        return rr->rc == HIBUS_E_TARGET || rr->rc == HIBUS_E_TIMEOUT;
    if (st >= 500 || st == 429)
        return true;
    if (st == 409 && rr->route->mediator == CONFIG_MEDIATOR_DHIS2 && rr->details == NULL)
        return true;
    return false;
}

static void route_send(const struct config_channel *ch, const struct config_route *rt,
                       const struct delivery_prepared *p, const struct delivery_input *in,
                       struct delivery_route_result *rr);

static void run_route(const struct config_channel *ch, const struct config_route *rt,
                      const struct delivery_prepared *p, const struct delivery_input *in,
                      struct delivery_route_result *rr)
{
    rr->route = rt;
    rr->ran = true;
    rr->method = rt->mediator == CONFIG_MEDIATOR_DHIS2 ? "POST" : in->method;
    route_send(ch, rt, p, in, rr);
    rr->status = rr->unwrapped ? rr->answer.status : rr->resp.status;
    rr->retryable = failure_retryable(rr);
}

static void route_send(const struct config_channel *ch, const struct config_route *rt,
                       const struct delivery_prepared *p, const struct delivery_input *in,
                       struct delivery_route_result *rr)
{
    struct mediator_request mr = {.request_id = in->request_id,
                                  .method = in->method,
                                  .query = in->query,
                                  .headers = in->headers,
                                  .n_headers = in->n_headers,
                                  .body = in->body,
                                  .body_len = in->body_len,
                                  .max_response = in->max_response};
    char *body = NULL, *url = NULL;
    size_t len = 0;
    const char *ctype = NULL, *writer = NULL;
    struct hibus_error err = {0};
    if (delivery_route_body(ch, rt, p, &body, &len, &ctype, &writer, &err) != HIBUS_OK) {
        rr->outcome = "failed";
        rr->rc = err.code;
        rr->error = hibus_xstrdup(err.msg);
        snprintf(rr->resp.error, sizeof rr->resp.error, "%s", err.msg);
        rr->resp.url = hibus_xstrdup(rt->url);
        return;
    }
    if (body != NULL) {
        mr.own_body = true;
        mr.body = body;
        mr.body_len = len;
        mr.content_type = ctype;
        if (rt->mediator == CONFIG_MEDIATOR_DHIS2) {
            mr.method = "POST";
            mr.query = NULL;
            /* DHIS2 2.36 answers an ADX import in XML whatever is asked, and
             * 2.37.0-2.37.2 can only (406 to JSON alone); later ones negotiate and
             * prefer JSON. dhis2_parse_summary reads both. */
            mr.accept = writer != NULL && strcmp(writer, "adx") == 0
                            ? "application/json, application/xml;q=0.5"
                            : "application/json";
            mr.url = url = dhis2_import_url(rt, writer);
        }
    }
    rr->method = mr.method;
    rr->rc = mediator_forward(rt, &mr, &rr->resp);
    free(body);
    free(url);

    if (rr->resp.status == 0) {
        rr->outcome = "failed";
        return;
    }
    if (rt->mediator == CONFIG_MEDIATOR_DHIS2) {
        struct dhis2_summary s;
        struct hibus_error e2 = {0};
        if (dhis2_parse_summary(rr->resp.body, rr->resp.body_len, &s, &e2) == HIBUS_OK) {
            rr->outcome = dhis2_outcome(rr->resp.status, &s);
            rr->details = dhis2_summary_json(&s);
            dhis2_summary_free(&s);
        } else {
            rr->outcome = "failed";
            char msg[600];
            snprintf(msg, sizeof msg, "DHIS2 answered %ld: %s", rr->resp.status, e2.msg);
            rr->error = hibus_xstrdup(msg);
        }
        return;
    }
    rr->outcome = is_2xx(rr->resp.status) ? "successful" : "completed";
    if (media_type_is(header_value(&rr->resp, "content-type"), "application/json+openhim"))
        delivery_openhim_unwrap(rr);
}

static const struct txlog_route_state *prev_state(const struct txlog_route_state *prev,
                                                  size_t n_prev, const char *route)
{
    for (size_t i = 0; prev != NULL && i < n_prev; i++)
        if (strcmp(prev[i].route, route) == 0 && prev[i].outcome[0])
            return &prev[i];
    return NULL;
}

/* Runs route rt, or carries its earlier outcome when an earlier round finished it. */
static void run_or_carry(const struct config_channel *ch, const struct config_route *rt,
                         const struct delivery_prepared *p, const struct delivery_input *in,
                         const struct txlog_route_state *prev, size_t n_prev,
                         struct delivery_route_result *rr)
{
    const struct txlog_route_state *ps = prev_state(prev, n_prev, rt->name);
    if (ps != NULL && !ps->retryable) {
        rr->route = rt;
        rr->carried = true;
        rr->status = ps->status_code;
        /* outcome strings are static: match the stored one to ours */
        static const char *const outcomes[] = {"successful", "completed", "completed_with_errors",
                                               "failed", NULL};
        rr->outcome = "failed";
        for (size_t i = 0; outcomes[i] != NULL; i++)
            if (strcmp(ps->outcome, outcomes[i]) == 0)
                rr->outcome = outcomes[i];
        return;
    }
    run_route(ch, rt, p, in, rr);
}

/* The aggregate stage's one step for a payload of stock events: store them. It
 * is recorded as an attempt of the route "aggregate", with what was stored. */
static const struct config_route aggregate_route = {.name = "aggregate",
                                                    .mediator = CONFIG_MEDIATOR_HTTP,
                                                    .url = "postgresql:stock_events",
                                                    .primary = true};

static void store_events(const struct config_channel *ch, const struct delivery_prepared *p,
                         const struct delivery_input *in, struct delivery_result *out)
{
    out->routes = hibus_xcalloc(1, sizeof *out->routes);
    out->n_routes = 1;
    struct delivery_route_result *rr = &out->routes[0];
    rr->route = &aggregate_route;
    rr->ran = true;
    rr->method = "INSERT";
    struct txlog_agg_store rq = {.channel = ch->name,
                                 .timezone = ch->aggregate.timezone,
                                 .period_type = ch->aggregate.period_type,
                                 .tx_id = in->tx_id,
                                 .events = &p->events};
    struct txlog_agg_stored st = {0};
    struct hibus_error err = {0};
    double t0 = (double)clock_ms();
    enum hibus_err rc = in->tl ? txlog_aggregate_store(in->tl, &rq, &st, &err)
                               : hibus_error_set(&err, HIBUS_E_DB, "no transaction log");
    rr->resp.duration_ms = (double)clock_ms() - t0;
    if (rc != HIBUS_OK) {
        rr->outcome = "failed";
        rr->retryable = true;
        rr->rc = HIBUS_E_DB;
        char msg[1200];
        snprintf(msg, sizeof msg, "could not store the stock events: %s%s%s", err.msg,
                 err.detail[0] ? ": " : "", err.detail);
        rr->error = hibus_xstrdup(msg);
        out->status = "failed";
        out->retry = true;
        return;
    }
    rr->outcome = "successful";
    rr->details = json_pack("{s:I, s:I, s:I, s:o}", "events", (json_int_t)p->events.n, "stored",
                            (json_int_t)st.stored, "duplicates", (json_int_t)st.duplicates,
                            "periods", st.periods);
    out->status = "successful";
}

void delivery_run(const struct config_channel *ch, const struct delivery_prepared *p,
                  const struct delivery_input *in, const struct txlog_route_state *prev,
                  size_t n_prev, struct delivery_result *out)
{
    memset(out, 0, sizeof *out);
    if (p != NULL && p->is_events) {
        store_events(ch, p, in, out);
        return;
    }
    size_t n = ch->n_routes, primary = 0;
    out->routes = hibus_xcalloc(n, sizeof *out->routes);
    out->n_routes = n;
    for (size_t i = 0; i < n; i++)
        if (ch->routes[i].primary)
            primary = i;
    run_or_carry(ch, &ch->routes[primary], p, in, prev, n_prev, &out->routes[0]);
    const struct delivery_route_result *pr = &out->routes[0];
    bool secondary_trouble = false;
    out->retry = pr->retryable;
    for (size_t i = 0, k = 1; i < n; i++) {
        if (i == primary)
            continue;
        struct delivery_route_result *rr = &out->routes[k++];
        /* While the primary may still succeed, routes waiting on it wait too. */
        if (!when_holds(&ch->routes[i], pr) ||
            (ch->routes[i].n_when > 0 && pr->retryable && in->may_retry)) {
            rr->route = &ch->routes[i];
            rr->outcome = "skipped";
            continue;
        }
        run_or_carry(ch, &ch->routes[i], p, in, prev, n_prev, rr);
        if (strcmp(rr->outcome, "successful") != 0)
            secondary_trouble = true;
        out->retry = out->retry || rr->retryable;
    }
    if (strcmp(pr->outcome, "failed") == 0 || strcmp(pr->outcome, "completed") == 0)
        out->status = pr->outcome;
    else if (strcmp(pr->outcome, "completed_with_errors") == 0 || secondary_trouble ||
             (p != NULL && json_array_size(p->skipped) > 0))
        out->status = "completed_with_errors";
    else
        out->status = "successful";
}

long delivery_backoff_ms(const struct config_retry *rt, int round)
{
    double cap = (double)rt->backoff_initial_ms;
    for (int i = 1; i < round && cap < (double)rt->backoff_max_ms; i++)
        cap *= 2;
    if (cap > (double)rt->backoff_max_ms)
        cap = (double)rt->backoff_max_ms;
    /* Full jitter: spread retries of many failed transactions over the whole
     * window instead of sending them back to a recovering DHIS2 together. */
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (unsigned)time(NULL) * 2654435761u;
    return (long)(cap * ((double)r / 4294967295.0));
}

json_t *delivery_account(int64_t tx_id, const char *request_id, const struct delivery_prepared *p,
                         const struct delivery_result *r)
{
    json_t *routes = json_array();
    for (size_t i = 0; r != NULL && i < r->n_routes; i++) {
        const struct delivery_route_result *rr = &r->routes[i];
        json_t *o = json_pack("{s:s, s:s}", "route", rr->route->name, "outcome", rr->outcome);
        if (rr->status)
            json_object_set_new(o, "status_code", json_integer(rr->status));
        if (rr->carried)
            json_object_set_new(o, "earlier_round", json_true());
        if (rr->details != NULL)
            json_object_set(o,
                            rr->route == &aggregate_route                  ? "aggregate"
                            : rr->route->mediator == CONFIG_MEDIATOR_DHIS2 ? "import"
                                                                           : "mediator",
                            rr->details);
        const char *e =
            rr->error ? rr->error : (rr->ran && !rr->resp.status ? rr->resp.error : NULL);
        if (e != NULL && e[0])
            json_object_set_new(o, "error", json_string(e));
        json_array_append_new(routes, o);
    }
    return json_pack("{s:I, s:s, s:s, s:o, s:O, s:O}", "transaction", (json_int_t)tx_id, "status",
                     r ? r->status : "rejected", "request_id", request_id, "routes", routes,
                     "skipped", p->skipped, "warnings", p->warnings);
}

void delivery_result_free(struct delivery_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_routes; i++) {
        struct delivery_route_result *rr = &r->routes[i];
        mediator_response_free(&rr->resp);
        if (rr->unwrapped)
            mediator_response_free(&rr->answer);
        json_decref(rr->details);
        free(rr->error);
    }
    free(r->routes);
    memset(r, 0, sizeof *r);
}

const struct mediator_response *delivery_answer(const struct delivery_route_result *rr)
{
    return rr->unwrapped ? &rr->answer : &rr->resp;
}

/* --------------------------------------------------------------- record */

char *delivery_headers_json(const struct mediator_response *r)
{
    if (r->status == 0)
        return NULL;
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < r->n_headers; i++)
        json_object_set_new(o, r->headers[i].name, json_string(r->headers[i].value));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* GET /metrics: a recorded round's attempts, DHIS2's counts and the status. */
static void count_outcome(const char *channel, const struct delivery_result *r, const char *status)
{
    for (size_t i = 0; r != NULL && i < r->n_routes; i++) {
        const struct delivery_route_result *rr = &r->routes[i];
        if (!rr->ran)
            continue;
        metrics_attempt(channel, rr->route->name, rr->outcome ? rr->outcome : TXLOG_FAILED,
                        rr->resp.duration_ms / 1000.0);
        const json_t *d = rr->details;
        if (json_is_integer(json_object_get(d, "imported")))
            metrics_dhis2_import(channel, json_integer_value(json_object_get(d, "imported")),
                                 json_integer_value(json_object_get(d, "updated")),
                                 json_integer_value(json_object_get(d, "ignored")),
                                 json_integer_value(json_object_get(d, "deleted")),
                                 (long long)json_array_size(json_object_get(d, "conflicts")));
    }
    metrics_transaction(channel, status);
}

enum hibus_err delivery_record(struct txlog *tl, int64_t tx_id, const struct delivery_prepared *p,
                               const struct delivery_result *r, const struct delivery_outcome *o,
                               struct hibus_error *err)
{
    size_t n = r ? r->n_routes : 0, cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += 1 + (size_t)(r->routes[i].resp.resent > 0 ? r->routes[i].resp.resent : 0);
    struct txlog_attempt *at = hibus_xcalloc(cap, sizeof *at);
    char **hj = hibus_xcalloc(cap, sizeof *hj);
    char **dj = hibus_xcalloc(cap, sizeof *dj);
    size_t na = 0;
    for (size_t i = 0; i < n; i++) {
        const struct delivery_route_result *rr = &r->routes[i];
        if (!rr->ran)
            continue;
        /* Sends that libcurl repeated on its own are attempts too: the target
         * may have received them. */
        for (int k = 0; k < rr->resp.resent && na + 1 < cap; k++, na++)
            at[na] = (struct txlog_attempt){
                .route = rr->route->name,
                .method = rr->method,
                .retryable = true,
                .url = rr->resp.url ? rr->resp.url : rr->route->url,
                .started_epoch_ms = rr->resp.started_epoch_ms,
                .error = "the kept-alive connection closed before any answer; the request was "
                         "sent again on a new connection"};
        hj[na] = delivery_headers_json(&rr->resp);
        dj[na] = rr->details ? json_dumps(rr->details, JSON_COMPACT) : NULL;
        const char *e = rr->resp.status ? rr->error : (rr->error ? rr->error : rr->resp.error);
        at[na] = (struct txlog_attempt){.route = rr->route->name,
                                        .method = rr->method,
                                        .outcome = rr->outcome,
                                        .retryable = rr->retryable,
                                        .url = rr->resp.url ? rr->resp.url : rr->route->url,
                                        .status_code = (int)rr->resp.status,
                                        .started_epoch_ms = rr->resp.started_epoch_ms,
                                        .duration_ms = rr->resp.duration_ms,
                                        .error = e && e[0] ? e : NULL,
                                        .response_excerpt = rr->resp.body,
                                        .response_excerpt_len = rr->resp.body_len < EXCERPT_MAX
                                                                    ? rr->resp.body_len
                                                                    : EXCERPT_MAX,
                                        .response_headers_json = hj[na],
                                        .details_json = dj[na]};
        na++;
    }
    json_t *pj = p ? delivery_problems_json(p) : NULL;
    char *pjs = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    const struct delivery_route_result *pr = r && r->n_routes ? &r->routes[0] : NULL;
    const char *status = o->status ? o->status : r ? r->status : TXLOG_FAILED;
    const char *error = o->error;
    if (error == NULL && pr != NULL &&
        (strcmp(status, "failed") == 0 || strcmp(status, "queued") == 0))
        error = pr->error ? pr->error : pr->resp.error;
    struct txlog_outcome out = {.status = status,
                                .response_status = o->response_status,
                                .response_headers_json = o->response_headers_json,
                                .response_body = o->response_body,
                                .response_body_len = o->response_body_len,
                                .error = error && error[0] ? error : NULL,
                                .problems_json = pjs,
                                .received_at = o->received_at,
                                .order_key = o->order_key};
    enum hibus_err rc = txlog_finish(tl, tx_id, o->owner, at, na, &out, o->retry_in_ms, err);
    for (size_t i = 0; i < na; i++) {
        free(hj[i]);
        free(dj[i]);
    }
    free(at), free(hj), free(dj), free(pjs);
    if (rc == HIBUS_OK)
        count_outcome(o->channel, r, status);
    return rc;
}

/* ---------------------------------------------------------------- a round */

char *delivery_order_key(const struct config_channel *ch, const struct delivery_prepared *p)
{
    const struct report *r = p->report;
    if (r == NULL || r->org_unit == NULL)
        return NULL;
    const char *pe = r->period ? r->period : r->period_start ? r->period_start : "";
    size_t len = strlen(ch->name) + strlen(r->org_unit) + strlen(pe) + 3;
    char *k = hibus_xmalloc(len);
    snprintf(k, len, "%s|%s|%s", ch->name, r->org_unit, pe);
    return k;
}

/* The stored request headers (a JSON object) as a list for the mediator; values
 * stored redacted, or as invalid UTF-8, are not sent. */
static struct mediator_header *headers_from_json(const char *text, size_t *n)
{
    *n = 0;
    json_t *o = json_loads(text ? text : "{}", 0, NULL);
    struct mediator_header *v = hibus_xcalloc(json_object_size(o) + 1, sizeof *v);
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val)
    {
        const char *s = json_string_value(val);
        if (s == NULL || strcmp(s, "[redacted]") == 0 || strcmp(s, "[invalid UTF-8]") == 0)
            continue;
        v[*n].name = hibus_xstrdup(k);
        v[*n].value = hibus_xstrdup(s);
        (*n)++;
    }
    json_decref(o);
    return v;
}

static void headers_free(struct mediator_header *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

void delivery_round(const struct config *cfg, const struct config_channel *ch,
                    const struct delivery_request *rq, const struct txlog_route_state *prev,
                    size_t n_prev, bool retries, struct delivery_round *out)
{
    memset(out, 0, sizeof *out);
    if (ch == NULL || !ch->enabled) {
        snprintf(out->why, sizeof out->why, "channel \"%s\" is %s: delivery stopped",
                 rq->channel ? rq->channel : "",
                 ch == NULL ? "no longer in the configuration" : "disabled");
        out->status = TXLOG_FAILED;
        return;
    }
    if (retries && ch->retry.max_attempts > 0 && rq->round > ch->retry.max_attempts) {
        snprintf(out->why, sizeof out->why, "max_attempts (%d) reached: delivery stopped",
                 ch->retry.max_attempts);
        out->status = TXLOG_FAILED;
        return;
    }
    bool handed = retries && delivery_handoff_take(rq->tx_id, cfg, &out->prep);
    if (handed)
        LOG_DEBUG(rq->request_id, "tx=%lld: using the payload the listener prepared",
                  (long long)rq->tx_id);
    if (!handed && prepare_as(ch, rq->body, rq->body_len, delivery_is_derived(rq->path),
                              &out->prep) != HIBUS_OK) {
        snprintf(out->why, sizeof out->why, "the payload no longer passes the channel's transform");
        out->status = TXLOG_REJECTED;
        return;
    }
    size_t n_headers = 0;
    struct mediator_header *headers = headers_from_json(rq->headers_json, &n_headers);
    struct delivery_input in = {
        .request_id = rq->request_id,
        .method = rq->method,
        .query = rq->query,
        .headers = headers,
        .n_headers = n_headers,
        .body = rq->body,
        .body_len = rq->body_len,
        .max_response = cfg->max_body,
        .may_retry = retries &&
                     (ch->retry.max_attempts == 0 || rq->round < ch->retry.max_attempts) &&
                     rq->age_ms < (double)ch->retry.max_age_ms,
        .tl = rq->tl,
        .tx_id = rq->tx_id};
    delivery_run(ch, &out->prep, &in, prev, n_prev, &out->res);
    headers_free(headers, n_headers);

    out->status = out->res.status;
    if (retries && out->res.retry)
        out->status = delivery_verdict(&ch->retry, rq->round, rq->age_ms, &out->retry_in_ms,
                                       out->why, sizeof out->why);
}

const char *delivery_verdict(const struct config_retry *rt, int round, double age_ms,
                             long *retry_in_ms, char *why, size_t why_len)
{
    /* Retry while the policy allows; otherwise the round's failure is final. */
    if (rt->max_attempts > 0 && round >= rt->max_attempts) {
        snprintf(why, why_len, "gave up after %d attempts (max_attempts)", round);
        return TXLOG_FAILED;
    }
    if (age_ms >= (double)rt->max_age_ms) {
        snprintf(why, why_len, "gave up: the request is older than max_age (%ld s)",
                 rt->max_age_ms / 1000);
        return TXLOG_FAILED;
    }
    *retry_in_ms = delivery_backoff_ms(rt, round);
    return TXLOG_QUEUED;
}

void delivery_round_free(struct delivery_round *r)
{
    if (r == NULL)
        return;
    delivery_result_free(&r->res);
    delivery_prepared_free(&r->prep);
}

/* ------------------------------------------------------------- hand-off */

struct handoff {
    int64_t tx_id; /* 0: free slot */
    unsigned long generation;
    size_t bytes;
    unsigned long seq; /* put order: the smallest is the oldest */
    struct delivery_prepared prep;
};

static pthread_mutex_t handoff_mu = PTHREAD_MUTEX_INITIALIZER;
static struct handoff handoffs[DELIVERY_HANDOFF_MAX];
static size_t handoff_bytes;
static unsigned long handoff_seq;

/* Empties slot h; with handoff_mu held. */
static void handoff_drop(struct handoff *h)
{
    delivery_prepared_free(&h->prep);
    handoff_bytes -= h->bytes;
    memset(h, 0, sizeof *h);
}

void delivery_handoff_put(int64_t tx_id, const struct config *cfg, size_t payload_len,
                          struct delivery_prepared *p)
{
    struct delivery_prepared mine = *p;
    memset(p, 0, sizeof *p);
    /* Kept reports are bounded by DELIVERY_HANDOFF_BYTES; the transform budget is
     * for work under way, so a report waiting for a worker gives its share back. */
    if (mine.budget > 0) {
        delivery_budget_give(mine.budget);
        mine.budget = 0;
    }
    if (tx_id <= 0 || payload_len > DELIVERY_HANDOFF_BYTES) {
        delivery_prepared_free(&mine);
        return;
    }
    pthread_mutex_lock(&handoff_mu);
    for (;;) {
        struct handoff *free_slot = NULL, *oldest = NULL;
        for (size_t i = 0; i < DELIVERY_HANDOFF_MAX; i++) {
            struct handoff *h = &handoffs[i];
            if (h->tx_id == 0)
                free_slot = free_slot ? free_slot : h;
            else if (oldest == NULL || h->seq < oldest->seq)
                oldest = h;
        }
        if (free_slot != NULL && handoff_bytes + payload_len <= DELIVERY_HANDOFF_BYTES) {
            *free_slot = (struct handoff){.tx_id = tx_id,
                                          .generation = cfg->generation,
                                          .bytes = payload_len,
                                          .seq = ++handoff_seq,
                                          .prep = mine};
            handoff_bytes += payload_len;
            break;
        }
        handoff_drop(oldest); /* not NULL: the hand-off is full by count or by size */
    }
    pthread_mutex_unlock(&handoff_mu);
}

bool delivery_handoff_take(int64_t tx_id, const struct config *cfg, struct delivery_prepared *out)
{
    bool found = false;
    pthread_mutex_lock(&handoff_mu);
    for (size_t i = 0; i < DELIVERY_HANDOFF_MAX && tx_id > 0; i++) {
        struct handoff *h = &handoffs[i];
        if (h->tx_id != tx_id)
            continue;
        if (h->generation == cfg->generation) {
            *out = h->prep;
            memset(&h->prep, 0, sizeof h->prep);
            found = true;
        }
        handoff_drop(h); /* taken, or prepared under a configuration no longer current */
        break;
    }
    pthread_mutex_unlock(&handoff_mu);
    return found;
}

void delivery_handoff_clear(void)
{
    pthread_mutex_lock(&handoff_mu);
    for (size_t i = 0; i < DELIVERY_HANDOFF_MAX; i++)
        if (handoffs[i].tx_id != 0)
            handoff_drop(&handoffs[i]);
    pthread_mutex_unlock(&handoff_mu);
}
