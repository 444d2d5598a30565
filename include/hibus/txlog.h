/*
 * txlog.h - the transaction log in PostgreSQL.
 *
 * Owns: the schema (numbered migrations under src/migrations, compiled in), a
 * pool of connections, and every statement that writes or reads transactions
 * and attempts. Changes are announced after they commit, not in the commit
 * (txlog_announce_start).
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

#include "hibus/aggregate.h"
#include "hibus/error.h"
#include "hibus/period.h"

/* Transaction statuses (OpenHIM's, plus rejected). */
#define TXLOG_QUEUED "queued"
#define TXLOG_PROCESSING "processing"
#define TXLOG_SUCCESSFUL "successful"
#define TXLOG_COMPLETED "completed"
#define TXLOG_COMPLETED_WITH_ERRORS "completed_with_errors"
#define TXLOG_FAILED "failed"
#define TXLOG_REJECTED "rejected"

/* Every status, NULL-terminated, in the order a transaction goes through them. */
extern const char *const txlog_statuses[];
/* True when s is one of them. */
bool txlog_status_known(const char *s);
/* Checks a comma-separated list of statuses ("failed,rejected"); on a wrong one
 * returns false with *bad pointing at it in csv and *bad_len its length. An
 * empty list or an empty item is wrong too. */
bool txlog_status_list_valid(const char *csv, const char **bad, size_t *bad_len);
/* True when s is one of the statuses in a list txlog_status_list_valid accepted. */
bool txlog_status_in_list(const char *csv, const char *s);

struct txlog;

/* The ranges txlog_open accepts, which hibus check applies to database.pool and
 * database.connect_timeout (so check refuses exactly what serve refuses). */
#define TXLOG_POOL_MAX 256
#define TXLOG_CONNECT_TIMEOUT_MAX_MS (3600L * 1000)

/* Creates the pool; connects nothing yet. url is a libpq conninfo or URI. */
enum hibus_err txlog_open(const char *url, int pool_size, long connect_timeout_ms,
                          struct txlog **out, struct hibus_error *err);
void txlog_close(struct txlog *tl);

/* Applies every migration not yet in schema_migrations, each in its own
 * transaction, serialised across processes by an advisory lock. *applied (may be
 * NULL) gets how many ran. Idempotent. */
enum hibus_err txlog_migrate(struct txlog *tl, int *applied, struct hibus_error *err);

/* Announcing changes. A request's commit sends no NOTIFY: PostgreSQL lets no two
 * commits that notified share a WAL flush. Instead, once txlog_announce_start has
 * run, whatever is inserted or changes status through tl is announced after it
 * commits, from a connection of its own, at most one NOTIFY every
 * TXLOG_ANNOUNCE_MS: hibus_queue when a transaction became queued (the delivery
 * workers of every process), hibus_tx for any change (hibus tail); no payload.
 * In the process itself, a transaction that became queued calls the function
 * given to txlog_on_queued at once (NULL: none; it returns once no call of the
 * previous one runs). Statements run by short-lived commands (rerun) notify in
 * their own transaction instead. */
#define TXLOG_ANNOUNCE_MS 20
enum hibus_err txlog_announce_start(struct txlog *tl, struct hibus_error *err);
void txlog_announce_stop(struct txlog *tl); /* sends what is pending; txlog_close does it */
void txlog_on_queued(struct txlog *tl, void (*fn)(void *), void *arg);

/* SELECT 1 on a pooled connection. */
enum hibus_err txlog_ping(struct txlog *tl, struct hibus_error *err);

/* The pool now, and its waits since txlog_open (for GET /metrics). */
struct txlog_pool_stats {
    int size, busy, waiting;
    unsigned long long waits;         /* calls that found no free connection */
    unsigned long long wait_timeouts; /* of those, given up (HIBUS_E_DB) */
    double wait_seconds;              /* time spent waiting, all calls */
};
void txlog_pool_stats(struct txlog *tl, struct txlog_pool_stats *out);

/* Queued and processing transactions per channel, and the age of the oldest
 * queued one, as JSON: [{channel, queued, processing, oldest_queued_seconds}]
 * (caller json_decref's). One query on the unfinished-transactions index. */
enum hibus_err txlog_queue_depth(struct txlog *tl, json_t **out, struct hibus_error *err);

/* The last hour of each channel named (names: one per line), and its last
 * success within 30 days, as JSON: {channel: {finished, failed,
 * completed_with_errors, last_success}}, failed counting failed and rejected,
 * last_success an ISO 8601 time or null. */
enum hibus_err txlog_channel_stats(struct txlog *tl, const char *names, json_t **out,
                                   struct hibus_error *err);

struct txlog_request {
    const char *request_id;
    const char *channel;
    const char *client; /* may be NULL */
    const char *method;
    const char *path;
    const char *query;        /* may be NULL or "" */
    const char *headers_json; /* a JSON object, already redacted */
    const void *body;
    size_t body_len;
    const char *status;    /* initial status, e.g. TXLOG_PROCESSING, TXLOG_QUEUED */
    const char *node;      /* which hibus process took it (host:pid) */
    const char *mode;      /* "sync" (default when NULL) or "async" */
    const char *order_key; /* delivered in arrival order with others of the same key; may be NULL */
    long lease_ms;         /* > 0: node holds the transaction this long (a sync delivery) */
    const char *problems_json; /* for a request rejected before delivery; may be NULL */
};

/* A row's received_at as text, as txlog_insert and txlog_claim give it: the
 * transaction's partition, which txlog_finish then writes to without looking
 * into every monthly one. */
#define TXLOG_TS_MAX 48

/* Inserts and commits one transaction; *id gets its id, received_at (NULL, or
 * TXLOG_TS_MAX bytes) its received_at. Returns only after the commit: a HIBUS_OK
 * here is the promise that the request is stored. Inserts of several threads that
 * arrive while one is on its way share the next commit (group commit; see
 * src/txlog_write.c). */
enum hibus_err txlog_insert(struct txlog *tl, const struct txlog_request *rq, int64_t *id,
                            char *received_at, struct hibus_error *err);

struct txlog_attempt {
    const char *route;
    int attempt; /* 1 for the first try of this route */
    const char *method;
    const char *url;
    int status_code;         /* 0 when there was no answer */
    double started_epoch_ms; /* wall-clock start, ms since 1970; 0 = unknown */
    double duration_ms;
    const char *error;            /* NULL when the target answered */
    const void *response_excerpt; /* first bytes of the answer (may be NULL) */
    size_t response_excerpt_len;
    const char *response_headers_json; /* may be NULL */
    const char *details_json;          /* mediator facts (import summary, ...); may be NULL */
    const char *outcome;               /* successful, completed, completed_with_errors, failed */
    bool retryable;                    /* a failure that may succeed later */
};

struct txlog_outcome {
    const char *status;                /* final status */
    int response_status;               /* what the client was answered; 0 if none */
    const char *response_headers_json; /* may be NULL */
    const void *response_body;
    size_t response_body_len;
    const char *error;         /* may be NULL */
    const char *problems_json; /* {"problems":[..], "skipped":[..], "warnings":[..]}; may be NULL */
    const char *received_at;   /* the row's, from txlog_insert or txlog_claim (required) */
    const char *order_key; /* sets the row's (known only now for a sync report); NULL: keeps it */
};

/* Records the attempts and the outcome of transaction id in one statement (one
 * round trip, one commit that does not wait for its WAL flush: the request itself
 * was committed durably by txlog_insert). */
enum hibus_err txlog_complete(struct txlog *tl, int64_t id, const struct txlog_attempt *attempts,
                              size_t n_attempts, const struct txlog_outcome *out,
                              struct hibus_error *err);

/* Like txlog_complete, for a delivery worker: owner (when not NULL) must still
 * hold the lease, else HIBUS_E_NOT_FOUND (another process took it over and this
 * outcome is not recorded). With out->status TXLOG_QUEUED the transaction is
 * due again in retry_in_ms. */
enum hibus_err txlog_finish(struct txlog *tl, int64_t id, const char *owner,
                            const struct txlog_attempt *attempts, size_t n_attempts,
                            const struct txlog_outcome *out, long retry_in_ms,
                            struct hibus_error *err);

/* A transaction claimed for delivery, with what delivery needs of the request. */
struct txlog_claimed {
    int64_t id;
    char *channel, *client, *method, *path, *query, *headers_json, *request_id;
    char *body; /* NUL-terminated copy; NULL when the request had none */
    size_t body_len;
    int rounds;    /* delivery rounds started, this one included */
    double age_ms; /* since it was received */
    char received_at[TXLOG_TS_MAX];
};

/* Claims up to max due transactions (queued and due, or processing under a
 * lapsed lease) for owner, for lease_ms, skipping rows other processes hold,
 * and keeping arrival order within an order key. Caller frees with
 * txlog_claimed_free. */
enum hibus_err txlog_claim(struct txlog *tl, const char *owner, long lease_ms, int max,
                           struct txlog_claimed **out, size_t *n, struct hibus_error *err);
void txlog_claimed_free(struct txlog_claimed *v, size_t n);

/* The latest try of each route of a transaction. */
struct txlog_route_state {
    char route[128];
    char outcome[32]; /* "" for a libcurl resend row */
    bool retryable;
    int status_code;
};
enum hibus_err txlog_route_states(struct txlog *tl, int64_t id, struct txlog_route_state **out,
                                  size_t *n, struct hibus_error *err);

/* Milliseconds until the next queued transaction is due: <= 0 now, -1 none. */
enum hibus_err txlog_next_due(struct txlog *tl, double *ms, struct hibus_error *err);

/* Puts the claims of owner, and of "owner/anything" (its worker threads), back
 * in the queue, due now (SIGTERM after the drain). */
/* The target of channel is back (a delivery to it just succeeded): its retries
 * waiting out their backoff become due now, rather than each at its own time;
 * *hurried (may be NULL) counts them. */
enum hibus_err txlog_hurry(struct txlog *tl, const char *channel, long *hurried,
                           struct hibus_error *err);
enum hibus_err txlog_release(struct txlog *tl, const char *owner, long *released,
                             struct hibus_error *err);

/* Makes sure owner holds transaction id (received at received_at, its partition
 * key) for at least half of lease_ms more:
 * extends the lease by lease_ms from now when less than that is left (else writes
 * nothing); *held is false when owner no longer holds it (the lease lapsed and
 * another took it over). */
enum hibus_err txlog_renew(struct txlog *tl, int64_t id, const char *received_at, const char *owner,
                           long lease_ms, bool *held, struct hibus_error *err);

/* A sync request's transaction, leased to this process ("node") while the
 * listener delivers it: txlog_hold registers it for the keeper's renewals,
 * txlog_unhold ends them once its outcome is written (or could not be: then the
 * lease lapses and a delivery worker takes the request over). txlog_held appends
 * the registered ids to (*ids)[0..n), reallocating it, and returns the new count. */
void txlog_hold(struct txlog *tl, int64_t id);
void txlog_unhold(struct txlog *tl, int64_t id);
size_t txlog_held(struct txlog *tl, int64_t **ids, size_t n);

/* Extends by lease_ms from now the leases of node's delivery workers ("node/wN")
 * and of its sync requests ("node") on the transactions ids[0..n): the heartbeat
 * that keeps a batch's waiting transactions (and a slow delivery) claimed while
 * this process holds them. *renewed counts them. */
enum hibus_err txlog_renew_workers(struct txlog *tl, const char *node, const int64_t *ids, size_t n,
                                   long lease_ms, long *renewed, struct hibus_error *err);

/* hibus rerun: re-queues finished transactions (any status but queued and
 * processing) that match every given filter (NULL: any), spreading them rate_per_s
 * a second. Their history stays; their retry budget starts again. A transaction
 * superseded by a later one of the same order key (delivered or on its way) is
 * not re-queued: it would overwrite newer figures; *superseded counts those. */
struct txlog_rerun_filter {
    const char *ids_csv; /* "12,15,20" */
    const char *channel;
    const char *status; /* one or several, comma-separated (txlog_status_list_valid) */
    const char *since;  /* a timestamp PostgreSQL understands */
    double rate_per_s;  /* <= 0: all at once */
};
enum hibus_err txlog_rerun(struct txlog *tl, const struct txlog_rerun_filter *f, long *queued,
                           long *superseded, struct hibus_error *err);
/* Drops reruns still queued (of channel, or all): they end failed again. */
enum hibus_err txlog_rerun_cancel(struct txlog *tl, const char *channel, long *cancelled,
                                  struct hibus_error *err);

/* Retention. Each rule covers one channel, or (channel NULL) every channel no
 * other rule names; 0 keeps forever. txlog_prune makes the monthly partitions
 * around now, DROPs whole months older than the longest keep_transactions (when
 * none keeps forever), then DELETEs, in batches, transactions past their
 * channel's keep_transactions and empties bodies past keep_bodies. Queued and
 * processing transactions are never touched. One process prunes at a time
 * (advisory lock); the others return with skipped set. */
struct txlog_retention {
    const char *channel;
    long long keep_bodies_ms;
    long long keep_transactions_ms;
};
struct txlog_prune_result {
    bool skipped;
    int partitions_made;
    int partitions_dropped;
    long transactions_deleted;
    long bodies_pruned;
    long poll_items_deleted; /* ids of pulled items older than their channel's transactions */
};
enum hibus_err txlog_prune(struct txlog *tl, const struct txlog_retention *rules, size_t n,
                           struct txlog_prune_result *out, struct hibus_error *err);

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

/* Alerts (src/alerts.c). Under an advisory lock, so that of several processes on
 * one database one looks at a time: each channel named (one per line) is checked
 * against the rules over the recent window, and against the state kept in the
 * database (migration 010). A kind that starts firing, fires still after
 * repeat_ms since its last notice, or stops, is handed to send as a JSON notice:
 * {source, status: firing|resolved, alert: failure_rate|conflicts|queue_age,
 * channel, value, threshold, window_seconds, since, summary}; its state is
 * recorded once send returns true. A false stops the look (the rest is tried the
 * next time). *skipped when another process held the lock. */
struct txlog_alert_rules {
    long window_ms;
    unsigned failure_percent; /* 0: off */
    unsigned min_finished;
    bool conflicts;
    long queue_age_ms; /* 0: off */
    long repeat_ms;
};
typedef bool (*txlog_alert_send)(void *arg, const json_t *notice);
enum hibus_err txlog_alerts_check(struct txlog *tl, const struct txlog_alert_rules *rules,
                                  const char *channels, txlog_alert_send send, void *arg, int *sent,
                                  bool *skipped, struct hibus_error *err);

/* Each channel's transactions per hour over the last `hours` (this one included),
 * for the console's charts: {channel: [{hour, received, failed}]}, hours as ISO
 * 8601 UTC, only hours with any; failed counts failed and rejected. */
enum hibus_err txlog_channel_hours(struct txlog *tl, int hours, json_t **out,
                                   struct hibus_error *err);

/* Mapping coverage (the admin API): the codes of the last `days` days' payloads
 * that a channel's mapping did not map (the "mapping" problems and skipped values
 * recorded with each transaction), as JSON: [{channel, kind (org_unit, item,
 * attribute_option_combo, ...), code, transactions, last_transaction,
 * last_seen}], the most frequent first, at most 500. */
enum hibus_err txlog_unmapped(struct txlog *tl, int days, json_t **out, struct hibus_error *err);

/* Drift (hibus check --remote): paths is {UID: {path, code}} of the org units a
 * mapping names, as the DHIS2 at base URL dhis2 has them now (OrganisationUnit
 * path). Records them, and returns those whose path differs from the last check's:
 * [{uid, code, old_path, path, seen_at (of the old one)}]. Caller decrefs. */
enum hibus_err txlog_org_unit_moves(struct txlog *tl, const char *dhis2, const json_t *paths,
                                    json_t **out, struct hibus_error *err);

/* Search (hibus ls, the admin API): transactions that match every filter given
 * (NULL, 0 or false: any), newest first (received_at, then id), one page.
 * Facility and period are those of the report the transaction carried (its
 * delivery order key), the facility as the source named it. */
struct txlog_query {
    const char *channel;
    const char *client;
    const char *statuses;   /* comma-separated, checked by txlog_status_list_valid */
    const char *since;      /* received at or after, a timestamp PostgreSQL reads */
    const char *until;      /* received before */
    const char *facilities; /* facility codes, one per line */
    const char *period;     /* the DHIS2 period, e.g. 202611 */
    const char *request_id; /* X-Request-ID, given or made */
    bool conflicts;         /* a DHIS2 import summary of some attempt lists conflicts */
    int64_t before;         /* the page after: older than this transaction (0: the first) */
    int limit;              /* 1..TXLOG_QUERY_MAX (0: 50) */
};
#define TXLOG_QUERY_MAX 1000
/* *out (caller json_decref's): { "transactions": [ { id, request_id, channel,
 * client, mode, status, received_at, finished_at, duration_ms, response_status,
 * facility, period, error, attempts, conflicts } ], "next_before": id of the
 * last when there are more, else null }. HIBUS_E_INVALID for a bad status list,
 * limit, or a timestamp PostgreSQL does not read (the message says which);
 * HIBUS_E_NOT_FOUND when before names no transaction. */
enum hibus_err txlog_search(struct txlog *tl, const struct txlog_query *q, json_t **out,
                            struct hibus_error *err);

/* A one-line view of a transaction, for hibus tail. */
struct txlog_summary {
    int64_t id;
    char time[40]; /* updated_at, ISO 8601 UTC with milliseconds */
    char channel[128];
    char client[128];
    char status[32];
    int response_status; /* 0 if none yet */
    double duration_ms;  /* received_at to finished_at (or to now while running) */
};

/* A dedicated connection that LISTENs on hibus_tx (something changed), or, with
 * txlog_listen_on, on "hibus_queue" (a transaction became queued). */
struct txlog_listener;
enum hibus_err txlog_listen(const char *url, long connect_timeout_ms, struct txlog_listener **out,
                            struct hibus_error *err);
enum hibus_err txlog_listen_on(const char *url, long connect_timeout_ms, const char *channel,
                               struct txlog_listener **out, struct hibus_error *err);
/* Waits up to timeout_ms for a notification; HIBUS_OK with *id set to the id it
 * names (0: none, an announcement), HIBUS_E_TIMEOUT when none came, HIBUS_E_DB
 * when the connection was lost (the caller may txlog_listen again). */
enum hibus_err txlog_listener_next(struct txlog_listener *l, int timeout_ms, int64_t *id,
                                   struct hibus_error *err);
void txlog_listener_close(struct txlog_listener *l);

/* Following the log (hibus tail): from its start, the transactions inserted (in
 * id order) and every later change of status of those it has seen unfinished, of
 * the TXLOG_FOLLOW_WATCH newest unfinished when it started, and of those a rerun
 * names. It reads by id when an announcement comes (hibus_tx) or timeout_ms
 * passes, so a change in between shows its latest status only. */
#define TXLOG_FOLLOW_WATCH 2000
struct txlog_follower;
enum hibus_err txlog_follow(const char *url, long connect_timeout_ms, struct txlog_follower **out,
                            struct hibus_error *err);
/* The changes since the last call, *n of them in *out (caller frees; *n may be
 * 0). HIBUS_E_DB when the connection was lost (close, and follow again). */
enum hibus_err txlog_follow_next(struct txlog_follower *f, int timeout_ms,
                                 struct txlog_summary **out, size_t *n, struct hibus_error *err);
void txlog_follow_close(struct txlog_follower *f);

/* ---- Polling channels (src/txlog_poll.c, migration 012; see hibus/poller.h) ---- */

/* A channel's schedule as the poll functions need it. Slots are computed on the
 * wall clock of timezone (an IANA name PostgreSQL knows; NULL: UTC): next gets
 * that wall-clock time as seconds since 1970 read as if it were UTC (what timegm
 * would give for it) and returns the next slot's the same way; the database turns
 * it into an instant, so daylight saving time is the database's to apply. */
struct txlog_poll_schedule {
    const char *key;      /* a poll's state_key: a change of schedule is a new key */
    const char *timezone; /* NULL: UTC */
    int64_t (*next)(void *arg, int64_t wall_now);
    void *arg;
};

/* Makes sure poll_state has a row for channel under schedule: a new channel, or
 * one whose schedule changed, gets its next_due from the database's now(); a row
 * with the same schedule is left as it is. */
enum hibus_err txlog_poll_register(struct txlog *tl, const char *channel,
                                   const struct txlog_poll_schedule *schedule,
                                   struct hibus_error *err);

/* A slot claimed by txlog_poll_claim. */
struct txlog_poll_slot {
    bool claimed;    /* false: not due, or another process has it */
    char *cursor;    /* the stored cursor (malloc'ed), or NULL: none yet */
    int64_t started; /* the database's now() at the claim, seconds since 1970 */
};

/* Claims the due slot of channel, if it is due (next_due <= now), under schedule
 * and not claimed by another live process (a claim of owner itself is taken to
 * be stale: one owner pulls one slot at a time): in one transaction, reads the
 * row FOR UPDATE SKIP LOCKED, moves next_due to the slot after the database's
 * now() (so a slot is never taken twice however the processes' clocks differ),
 * and sets the claim for owner for lease_ms. Caller frees slot->cursor. */
enum hibus_err txlog_poll_claim(struct txlog *tl, const char *channel,
                                const struct txlog_poll_schedule *schedule, const char *owner,
                                long lease_ms, struct txlog_poll_slot *slot,
                                struct hibus_error *err);

/* Extends owner's claim on channel's slot to lease_ms from now, while a pull runs;
 * *held is false when the claim had lapsed (another process may pull now). */
enum hibus_err txlog_poll_renew(struct txlog *tl, const char *channel, const char *owner,
                                long lease_ms, bool *held, struct hibus_error *err);

/* hibus polls run: channel's next slot is now (the poller of any process takes it
 * within a second). hibus polls reset: its stored cursor becomes cursor (NULL: none,
 * so the next pull sends poll.cursor.from). *found is false when no process has
 * registered the channel on this database. */
enum hibus_err txlog_poll_run_now(struct txlog *tl, const char *channel, bool *found,
                                  struct hibus_error *err);
enum hibus_err txlog_poll_set_cursor(struct txlog *tl, const char *channel, const char *cursor,
                                     bool *found, struct hibus_error *err);

/* Ends owner's claim on channel: on success (error NULL) stores cursor (NULL:
 * keeps the stored one), items and the time, and clears last_error; on failure
 * records error and keeps the cursor. */
enum hibus_err txlog_poll_finish(struct txlog *tl, const char *channel, const char *owner,
                                 const char *cursor, int items, const char *error,
                                 struct hibus_error *err);

/* Whether channel already made a transaction of the item with this id. */
enum hibus_err txlog_poll_seen(struct txlog *tl, const char *channel, const char *item_id,
                               bool *seen, struct hibus_error *err);
/* Records that the item with this id became transaction tx_id (a second record
 * of the same id is ignored). */
enum hibus_err txlog_poll_remember(struct txlog *tl, const char *channel, const char *item_id,
                                   int64_t tx_id, struct hibus_error *err);

/* Every poll channel's state, for hibus poll and GET /metrics: a JSON array of
 * {channel, schedule, next_due, cursor, claimed_by, last_run, last_success,
 * last_items, last_error, last_error_at, runs, failures}, times ISO 8601 UTC or
 * null (caller json_decref's). */
enum hibus_err txlog_poll_states(struct txlog *tl, json_t **out, struct hibus_error *err);

/* ---- Client tokens (src/txlog_tokens.c; see hibus/tokens.h) ---- */

enum hibus_err txlog_token_add(struct txlog *tl, const char *id, const char *client,
                               const unsigned char hash[32], struct hibus_error *err);
/* What the log holds for a token id: HIBUS_E_NOT_FOUND when nothing. *client is
 * malloc'ed. */
enum hibus_err txlog_token_find(struct txlog *tl, const char *id, char **client,
                                unsigned char hash[32], bool *revoked, struct hibus_error *err);
/* Every token (of client, or all when NULL), oldest first: a JSON array of
 * {id, client, created_at, revoked_at}; never a secret or its hash. */
enum hibus_err txlog_token_list(struct txlog *tl, const char *client, json_t **out,
                                struct hibus_error *err);
/* Revokes a token; HIBUS_E_NOT_FOUND for an unknown id (revoking twice is fine). */
enum hibus_err txlog_token_revoke(struct txlog *tl, const char *id, struct hibus_error *err);

/* ---- The aggregate stage (src/txlog_aggregate.c, migration 011) ---- */

/* Stores a payload's stock events once each (a source id seen before is a
 * duplicate), in the facility's day (timezone applies to event times), and marks
 * their periods, and every later period of the facility already sent, to be sent
 * (again). out->periods: [{facility, period, correction, balance_moved}], caller
 * decrefs. */
struct txlog_agg_store {
    const char *channel;
    const char *timezone;
    enum period_type period_type;
    int64_t tx_id; /* the transaction that brought them */
    const struct agg_batch *events;
};
struct txlog_agg_stored {
    long stored, duplicates;
    json_t *periods;
};
enum hibus_err txlog_aggregate_store(struct txlog *tl, const struct txlog_agg_store *rq,
                                     struct txlog_agg_stored *out, struct hibus_error *err);

/* Sends every period of channel that has closed (its end in timezone, plus
 * close_after) and changed since last sent, as a queued transaction on the channel
 * (path "aggregate:FACILITY/PERIOD", an lmis-report body, order key
 * channel|facility|period). A period whose figures (with by_reason, the figures by
 * reason too) are those already sent is not sent again (*unchanged). Safe with several processes on
 * one database. */
struct txlog_agg_emit {
    const char *channel;
    const char *timezone;
    const char *node;
    long long close_after_ms;
    bool by_reason;  /* aggregate.by_reason: losses and adjustments by reason too */
    bool quiet_send; /* aggregate.quiet_periods: send: add the closed periods after each
                        facility's last one first (they are then sent like the others) */
    enum period_type period_type; /* of the channel's periods (for quiet_send) */
};
enum hibus_err txlog_aggregate_emit(struct txlog *tl, const struct txlog_agg_emit *rq, int *emitted,
                                    int *unchanged, struct hibus_error *err);

/* One period of one facility (and one commodity, or all when NULL): every event up
 * to its end with what it did to the figures, the figures, and what was sent.
 * Caller decrefs *out. */
enum hibus_err txlog_aggregate_show(struct txlog *tl, const char *channel, const char *facility,
                                    const char *commodity, const struct period *p, json_t **out,
                                    struct hibus_error *err);

#endif
