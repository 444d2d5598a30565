/*
 * mediator.h - delivery of a request to a route's target.
 *
 * The http mediator forwards with libcurl. Connections to targets are reused
 * across requests and threads through one curl share handle (connection cache,
 * DNS, TLS sessions). Thread-safe after mediator_global_init().
 */
#ifndef HIBUS_MEDIATOR_H
#define HIBUS_MEDIATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "hibus/config.h"
#include "hibus/error.h"

struct mediator_header {
    char *name;
    char *value;
};

struct mediator_request {
    const char *request_id;
    const char *method;
    const char *url;   /* the full URL; NULL = the route's URL with query appended */
    const char *query; /* appended to the route's URL; may be NULL */
    const struct mediator_header *headers; /* the client's headers, filtered by the mediator */
    size_t n_headers;
    bool own_body;            /* the body is hibus's (a transform's output), not the client's:
                                 the client's headers are not forwarded */
    const char *content_type; /* with own_body */
    const char *accept;       /* may be NULL */
    const void *body;
    size_t body_len;
    size_t max_response; /* larger answers are refused as an error */
};

struct mediator_response {
    long status;                     /* 0 when the target did not answer */
    struct mediator_header *headers; /* hop-by-hop headers removed */
    size_t n_headers;
    char *body;
    size_t body_len;
    char *url;               /* the URL actually requested */
    double started_epoch_ms; /* wall clock when the request was sent */
    int resent;              /* times libcurl sent the request again because a kept-alive
                                connection closed before any answer (see mediator.c) */
    int sends;               /* requests libcurl started (CURLOPT_PREREQFUNCTION) */
    double duration_ms;
    char error[256]; /* why there was no answer; empty when status != 0 */
};

enum hibus_err mediator_global_init(struct hibus_error *err);
void mediator_global_cleanup(void);

/* Sends rq to route. Always fills resp (caller frees with mediator_response_free),
 * also on failure: HIBUS_E_TARGET or HIBUS_E_TIMEOUT with resp->error set. */
enum hibus_err mediator_forward(const struct config_route *route, const struct mediator_request *rq,
                                struct mediator_response *resp);
void mediator_response_free(struct mediator_response *resp);

/* Hop-by-hop headers (RFC 9110 7.6.1) and those curl sets itself. */
bool mediator_header_is_hop_by_hop(const char *name);

#endif
