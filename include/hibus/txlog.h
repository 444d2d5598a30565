/*
 * txlog.h - the transaction log in PostgreSQL.
 *
 * Owns: the schema (numbered migrations under src/migrations, compiled in), a
 * pool of connections, and every statement that writes or reads transactions
 * and attempts. A status change sends NOTIFY hibus_tx, '<id>' (a trigger does it,
 * so no code path can forget).
 *
 * Threads: struct txlog is thread-safe; each call borrows one pooled connection
 * for its duration. Connections are made lazily and remade after a failure, so a
 * database that goes away and comes back needs no restart of hibus. A call that
 * cannot reach the database fails fast (connect_timeout) with HIBUS_E_DB.
 * struct txlog_listener is for one thread.
 */
#ifndef HIBUS_TXLOG_H
#define HIBUS_TXLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hibus/error.h"

/* Transaction statuses (OpenHIM's, plus rejected). */
#define TXLOG_QUEUED "queued"
#define TXLOG_PROCESSING "processing"
#define TXLOG_SUCCESSFUL "successful"
#define TXLOG_COMPLETED "completed"
#define TXLOG_COMPLETED_WITH_ERRORS "completed_with_errors"
#define TXLOG_FAILED "failed"
#define TXLOG_REJECTED "rejected"

struct txlog;

/* Creates the pool; connects nothing yet. url is a libpq conninfo or URI. */
enum hibus_err txlog_open(const char *url, int pool_size, long connect_timeout_ms,
                          struct txlog **out, struct hibus_error *err);
void txlog_close(struct txlog *tl);

/* Applies every migration not yet in schema_migrations, each in its own
 * transaction, serialised across processes by an advisory lock. *applied (may be
 * NULL) gets how many ran. Idempotent. */
enum hibus_err txlog_migrate(struct txlog *tl, int *applied, struct hibus_error *err);

/* SELECT 1 on a pooled connection. */
enum hibus_err txlog_ping(struct txlog *tl, struct hibus_error *err);

struct txlog_request {
    const char *request_id;
    const char *channel;
    const char *client;      /* may be NULL */
    const char *method;
    const char *path;
    const char *query;       /* may be NULL or "" */
    const char *headers_json; /* a JSON object, already redacted */
    const void *body;
    size_t body_len;
    const char *status;      /* initial status, e.g. TXLOG_PROCESSING */
    const char *node;        /* which hibus process took it (host:pid) */
};

/* Inserts and commits one transaction; *id gets its id. Returns only after the
 * commit: a HIBUS_OK here is the promise that the request is stored. */
enum hibus_err txlog_insert(struct txlog *tl, const struct txlog_request *rq, int64_t *id,
                            struct hibus_error *err);

struct txlog_attempt {
    const char *route;
    int attempt;             /* 1 for the first try of this route */
    const char *method;
    const char *url;
    int status_code;         /* 0 when there was no answer */
    double started_epoch_ms; /* wall-clock start, ms since 1970; 0 = unknown */
    double duration_ms;
    const char *error;       /* NULL when the target answered */
    const void *response_excerpt; /* first bytes of the answer (may be NULL) */
    size_t response_excerpt_len;
    const char *response_headers_json; /* may be NULL */
    const char *details_json; /* mediator facts (import summary, ...); may be NULL */
};

struct txlog_outcome {
    const char *status;          /* final status */
    int response_status;         /* what the client was answered; 0 if none */
    const char *response_headers_json; /* may be NULL */
    const void *response_body;
    size_t response_body_len;
    const char *error;           /* may be NULL */
    const char *problems_json;   /* {"problems":[..], "skipped":[..], "warnings":[..]}; may be NULL */
};

/* Records the attempts and the outcome of transaction id in one database
 * transaction (one commit, one NOTIFY). */
enum hibus_err txlog_complete(struct txlog *tl, int64_t id, const struct txlog_attempt *attempts,
                              size_t n_attempts, const struct txlog_outcome *out,
                              struct hibus_error *err);

/* The transaction and its attempts as a JSON object (caller json_decref's):
 * { id, request_id, channel, client, method, path, query, status, node,
 *   received_at, updated_at, finished_at, duration_ms, request_headers (object),
 *   request_body | request_body_base64, request_body_len, response_status,
 *   response_headers, response_body | response_body_base64, error, problems,
 *   attempts: [ { route, attempt, method, url, status_code, started_at,
 *                 duration_ms, error, response_excerpt, response_headers,
 *                 details } ] }
 * Bodies are strings when they are valid UTF-8, else base64 under *_base64.
 * HIBUS_E_NOT_FOUND when there is no such transaction. */
enum hibus_err txlog_get_json(struct txlog *tl, int64_t id, json_t **out, struct hibus_error *err);

/* A one-line view of a transaction, for hibus tail. */
struct txlog_summary {
    int64_t id;
    char time[40];      /* updated_at, ISO 8601 UTC with milliseconds */
    char channel[128];
    char client[128];
    char status[32];
    int response_status; /* 0 if none yet */
    double duration_ms;  /* received_at to finished_at (or to now while running) */
};

/* A dedicated connection that LISTENs on hibus_tx. */
struct txlog_listener;
enum hibus_err txlog_listen(const char *url, long connect_timeout_ms, struct txlog_listener **out,
                            struct hibus_error *err);
/* Waits up to timeout_ms for a notification; HIBUS_OK with *id set, HIBUS_E_TIMEOUT
 * when none came, HIBUS_E_DB when the connection was lost (the caller may
 * txlog_listen again). */
enum hibus_err txlog_listener_next(struct txlog_listener *l, int timeout_ms, int64_t *id,
                                   struct hibus_error *err);
/* Reads the summary of one transaction on the listener's connection. */
enum hibus_err txlog_listener_summary(struct txlog_listener *l, int64_t id,
                                      struct txlog_summary *out, struct hibus_error *err);
void txlog_listener_close(struct txlog_listener *l);

#endif
