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
 *   delivery_round     one round of a stored request, whoever runs it: the sync
 *                      listener, a delivery worker (async, a lease taken over after a
 *                      crash, a rerun); it runs the three above's first two and says
 *                      what the transaction becomes, so every mode behaves alike
 *   delivery_handoff   what the listener prepared for an async request (to answer
 *                      422 at once), kept for a worker of the same process, so the
 *                      first round does not run the transform again
 *
 * Thread-safe: everything is per call, except the hand-off, which has its own lock.
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
    size_t budget;         /* body bytes it holds of limits.transform_memory */
    bool is_events;        /* a channel with aggregate: took stock events (report NULL) */
    struct agg_batch events;
};

/* limits.transform_memory: the bytes of request bodies that transforms may hold at
 * once (a parsed body, and the report made from it, cost many times its size). A
 * delivery_prepare that would pass it waits until earlier ones are freed; a body
 * larger than the whole budget is let through when nothing else holds any. Set at
 * start and at each reload; thread-safe. */
void delivery_set_transform_memory(size_t bytes);
/* The waiting and the giving back that delivery_prepare and delivery_prepared_free
 * do (public for tests). */
void delivery_budget_take(size_t bytes);
void delivery_budget_give(size_t bytes);

/* Always fills p (free with delivery_prepared_free). HIBUS_OK: deliverable;
 * HIBUS_E_INVALID: rejected, p->problems says why. On a channel with aggregate:
 * the body is stock events, read into p->events (checked against the mapping
 * under unmapped: reject); delivering them stores them. */
enum hibus_err delivery_prepare(const struct config_channel *ch, const void *body, size_t len,
                                struct delivery_prepared *p);
/* A period's figures that the aggregate stage derived (a transaction whose path is
 * DELIVERY_AGGREGATE_PATH...): read as an lmis-report, then mapping and quality as
 * usual. */
#define DELIVERY_AGGREGATE_PATH "aggregate:"
bool delivery_is_derived(const char *path);
enum hibus_err delivery_prepare_derived(const struct config_channel *ch, const void *body,
                                        size_t len, struct delivery_prepared *p);
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
    bool may_retry;   /* a retryable failure will get another round (async, budget left):
                         routes with when: conditions then wait for the primary's last word */
    struct txlog *tl; /* where stock events are stored (aggregate:); may be NULL otherwise */
    int64_t tx_id;    /* the transaction being delivered */
};

struct delivery_route_result {
    const struct config_route *route;
    bool ran;            /* false when its `when` condition did not hold, or it was done
                            in an earlier round (carried) */
    bool carried;        /* done in an earlier round: outcome and status come from there */
    long status;         /* the HTTP status it ended with (this round or carried); 0 none */
    bool retryable;      /* failed in a way that may succeed later */
    const char *method;  /* the method sent (static or the request's) */
    const char *outcome; /* successful, completed, completed_with_errors or failed */
    enum hibus_err rc;   /* of the mediator: HIBUS_E_TIMEOUT, HIBUS_E_TARGET, ... */
    struct mediator_response resp; /* as the target answered */
    bool unwrapped;                /* an OpenHIM mediator answer: `answer` is its inner response */
    struct mediator_response answer;
    json_t *details; /* import summary or OpenHIM facts; may be NULL */
    char *error;     /* why the route failed beyond the transport (may be NULL) */
};

struct delivery_result {
    const char *status;                   /* the transaction's status */
    bool retry;                           /* some route failed in a way that may succeed later */
    struct delivery_route_result *routes; /* in the order tried: the primary first */
    size_t n_routes;
};

/* Runs the routes. prev (may be NULL) holds each route's latest state from
 * earlier rounds: a route that is done (anything but a retryable failure) is not
 * run again and its earlier outcome counts. Always fills out (free with
 * delivery_result_free). out->retry tells whether a route failed in a way that
 * may succeed later. */
void delivery_run(const struct config_channel *ch, const struct delivery_prepared *p,
                  const struct delivery_input *in, const struct txlog_route_state *prev,
                  size_t n_prev, struct delivery_result *out);
void delivery_result_free(struct delivery_result *r);

/* An answer of type application/json+openhim in rr->resp, unwrapped: rr->answer,
 * rr->details and rr->outcome, or rr->error when it is not a mediator response. Used
 * by delivery_round; public for tests/fuzz. */
void delivery_openhim_unwrap(struct delivery_route_result *rr);

/* The headers of an answer as a JSON object text (caller frees); NULL when
 * there was no answer. */
char *delivery_headers_json(const struct mediator_response *r);

/* What the client of route rr sees: the unwrapped answer or the raw one. */
const struct mediator_response *delivery_answer(const struct delivery_route_result *rr);

/* Records the attempts of r (NULL for a rejected request) and the outcome.
 * status overrides r->status (e.g. TXLOG_REJECTED, or TXLOG_QUEUED for a retry
 * due in retry_in_ms). owner (may be NULL) must still hold the transaction's
 * lease. The answer given to the client is response_status / response_body. */
struct delivery_outcome {
    const char *status; /* NULL: r->status */
    const char *owner;
    long retry_in_ms;
    const char *error; /* NULL: the primary route's error when the status is failed */
    int response_status;
    const char *response_headers_json;
    const char *response_body;
    size_t response_body_len;
    const char *received_at; /* the row's, from txlog_insert or txlog_claim */
    const char *order_key;   /* set it on the row (a sync report's); NULL: keep the row's */
    const char *channel;     /* the channel's name, for GET /metrics */
};
enum hibus_err delivery_record(struct txlog *tl, int64_t tx_id, const struct delivery_prepared *p,
                               const struct delivery_result *r, const struct delivery_outcome *o,
                               struct hibus_error *err);

/* hibus's account of a delivery, as a channel with a transform answers it and
 * as GET /transactions/ID shows it: {"transaction", "status", "request_id",
 * "routes": [{route, outcome, status_code, import|mediator, error}], "skipped",
 * "warnings"}. Caller decrefs. */
json_t *delivery_account(int64_t tx_id, const char *request_id, const struct delivery_prepared *p,
                         const struct delivery_result *r);

/* A stored request, as a delivery round reads it. The client's headers are the
 * stored ones: a redacted value (and one stored as invalid UTF-8) is never sent, so a
 * target gets the same in every mode. */
struct delivery_request {
    int64_t tx_id;
    const char *channel; /* the channel's name, as stored */
    const char *path;    /* as stored: DELIVERY_AGGREGATE_PATH... for derived figures */
    struct txlog *tl;    /* the log (stock events are stored in it) */
    const char *request_id;
    const char *method;
    const char *query;
    const char *headers_json; /* as stored (a JSON object text); NULL: none */
    const void *body;
    size_t body_len;
    int round;     /* 1 for the first */
    double age_ms; /* since it was received */
};

struct delivery_round {
    struct delivery_prepared prep;
    struct delivery_result res; /* n_routes 0 when no route ran */
    const char *status;         /* what the transaction becomes: a final status, or
                                   TXLOG_QUEUED for another round in retry_in_ms */
    long retry_in_ms;
    char why[512]; /* why it ended without a delivery, or gave up; "" otherwise */
};

/* Runs one round of rq on channel ch (NULL: the channel is gone). Without retries
 * (sync) the round's status is final; with them (a delivery worker) a route that
 * may succeed later sends the transaction back to the queue while the channel's
 * retry policy allows. prev: the routes' states from earlier rounds (NULL for the
 * first). Always fills out (free with delivery_round_free). */
void delivery_round(const struct config *cfg, const struct config_channel *ch,
                    const struct delivery_request *rq, const struct txlog_route_state *prev,
                    size_t n_prev, bool retries, struct delivery_round *out);
void delivery_round_free(struct delivery_round *r);

/* The async hand-off. put takes *p's contents (p is left empty) for transaction
 * tx_id, prepared under snapshot cfg; a round of tx_id under the same snapshot
 * (same cfg->generation, so the same channel and mapping) takes them instead of
 * preparing again. A round under another snapshot (a reload came between), in
 * another process, or after the entry was pushed out, prepares as before: the
 * hand-off only saves work, it never decides anything. It holds at most
 * DELIVERY_HANDOFF_MAX entries and DELIVERY_HANDOFF_BYTES of payload; the oldest
 * go first. take returns whether *out was filled. clear frees every entry. */
#define DELIVERY_HANDOFF_MAX 256
#define DELIVERY_HANDOFF_BYTES (64u * 1024 * 1024)
void delivery_handoff_put(int64_t tx_id, const struct config *cfg, size_t payload_len,
                          struct delivery_prepared *p);
bool delivery_handoff_take(int64_t tx_id, const struct config *cfg, struct delivery_prepared *out);
void delivery_handoff_clear(void);

/* After a round whose failure may succeed later: TXLOG_QUEUED with the backoff in
 * *retry_in_ms while round < max_attempts and age_ms < max_age, else TXLOG_FAILED
 * with the reason in why. */
const char *delivery_verdict(const struct config_retry *rt, int round, double age_ms,
                             long *retry_in_ms, char *why, size_t why_len);

/* The key that keeps a channel's reports for one facility and period in order
 * (caller frees; NULL when the report names no facility). */
char *delivery_order_key(const struct config_channel *ch, const struct delivery_prepared *p);

/* Full-jitter backoff: a random delay in [0, min(max, initial * 2^(round-1))]. */
long delivery_backoff_ms(const struct config_retry *rt, int round);

/* {"problems": [...], "skipped": [...], "warnings": [...]} of p, or NULL when
 * all three are empty. Caller decrefs. */
json_t *delivery_problems_json(const struct delivery_prepared *p);

#endif
