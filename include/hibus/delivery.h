/*
 * delivery.h - what happens to a stored request: the channel's pipeline and its
 * routes.
 *
 *   delivery_prepare   reader -> mapping -> quality (channels with a transform);
 *                      a payload that fails is rejected with every problem listed
 *   delivery_run       every route, primary first; a route with `when` runs only
 *                      when the primary's outcome matches; each route sends either
 *                      the request as received or a writer's output; dhis2 routes
 *                      parse DHIS2's import summary; http routes that answer as
 *                      OpenHIM mediators (application/json+openhim) are unwrapped
 *   delivery_record    the attempts and the outcome, into the transaction log
 *
 * The sync listener calls these now; asynchronous delivery workers will call the
 * same functions. Thread-safe: everything is per call.
 */
#ifndef HIBUS_DELIVERY_H
#define HIBUS_DELIVERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/mediator.h"
#include "hibus/report.h"
#include "hibus/txlog.h"

struct delivery_prepared {
    struct report *report; /* NULL for a channel without transform */
    json_t *problems;      /* why it is rejected (empty when deliverable) */
    json_t *skipped;       /* unmapped values left out under unmapped: skip */
    json_t *warnings;      /* quality rules with action warn */
};

/* Always fills p (free with delivery_prepared_free). HIBUS_OK: deliverable;
 * HIBUS_E_INVALID: rejected, p->problems says why. */
enum hibus_err delivery_prepare(const struct config_channel *ch, const void *body, size_t len,
                                struct delivery_prepared *p);
void delivery_prepared_free(struct delivery_prepared *p);

/* What route rt sends: the writer's output (dhis2 routes, and http routes with
 * body: transformed): *body is set (caller frees), with its content type. For
 * routes that send the request as received, *body is NULL. */
enum hibus_err delivery_route_body(const struct config_channel *ch, const struct config_route *rt,
                                   const struct delivery_prepared *p, char **body, size_t *len,
                                   const char **content_type, const char **writer,
                                   struct hibus_error *err);

struct delivery_input {
    const char *request_id;
    const char *method;
    const char *query;
    const struct mediator_header *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
    size_t max_response;
};

struct delivery_route_result {
    const struct config_route *route;
    bool ran;              /* false when its `when` condition did not hold */
    const char *method;    /* the method sent (static or the request's) */
    const char *outcome;   /* successful, completed, completed_with_errors or failed */
    enum hibus_err rc;     /* of the mediator: HIBUS_E_TIMEOUT, HIBUS_E_TARGET, ... */
    struct mediator_response resp; /* as the target answered */
    bool unwrapped;        /* an OpenHIM mediator answer: `answer` is its inner response */
    struct mediator_response answer;
    json_t *details;       /* import summary or OpenHIM facts; may be NULL */
    char *error;           /* why the route failed beyond the transport (may be NULL) */
};

struct delivery_result {
    const char *status; /* the transaction's status */
    struct delivery_route_result *routes; /* in the order tried: the primary first */
    size_t n_routes;
};

/* Runs every route. Always fills out (free with delivery_result_free). */
void delivery_run(const struct config_channel *ch, const struct delivery_prepared *p,
                  const struct delivery_input *in, struct delivery_result *out);
void delivery_result_free(struct delivery_result *r);

/* What the client of route rr sees: the unwrapped answer or the raw one. */
const struct mediator_response *delivery_answer(const struct delivery_route_result *rr);

/* Records the attempts of r (NULL for a rejected request) and the outcome.
 * status overrides r->status when r is NULL (e.g. TXLOG_REJECTED). The answer
 * given to the client is response_status / response_body. */
enum hibus_err delivery_record(struct txlog *tl, int64_t tx_id, const struct delivery_prepared *p,
                               const struct delivery_result *r, const char *status,
                               int response_status, const char *response_headers_json,
                               const char *response_body, size_t response_body_len,
                               struct hibus_error *err);

/* {"problems": [...], "skipped": [...], "warnings": [...]} of p, or NULL when
 * all three are empty. Caller decrefs. */
json_t *delivery_problems_json(const struct delivery_prepared *p);

#endif
