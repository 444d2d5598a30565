/*
 * aggregate.h - monthly (or any DHIS2 period type) stock figures derived from stock
 * events: the `aggregate:` stage of a channel.
 *
 * Many LMIS record transactions (receipts, issues, losses, adjustments, physical
 * counts) rather than monthly reports. A channel with `aggregate:` takes such events
 * (readers openlmis-stock-event and stock-event), stores each once in PostgreSQL
 * (src/txlog_aggregate.c), and once a period has closed derives, per facility and
 * commodity, the figures of a stock report from them and sends that report through
 * the channel's usual mapping, quality rules and routes, as a transaction of its own.
 * A late event for a period already sent sends the period again, as a correction.
 *
 * This header holds the pure part: the events of one payload (agg_batch), what a
 * channel says about its events (struct config_aggregate), and the derivation of one
 * period's figures (agg_derive), with which event made which figure. No I/O; thread-
 * safe. docs/aggregate.md explains the rules for administrators.
 */
#ifndef HIBUS_AGGREGATE_H
#define HIBUS_AGGREGATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hibus/error.h"
#include "hibus/period.h"

/* What an event does to the stock. Values are stored (stock_events.kind) by name. */
enum agg_kind {
    AGG_RECEIPT,    /* + quantity into "received" */
    AGG_ISSUE,      /* - quantity into "consumed" (issued or dispensed) */
    AGG_LOSS,       /* - quantity into "losses" */
    AGG_ADJUSTMENT, /* signed quantity into "adjustments" */
    AGG_COUNT,      /* a physical count: the stock on hand becomes quantity; the
                       difference from the running balance goes to "adjustments" */
    AGG_KINDS
};
/* "receipt", "issue", "loss", "adjustment", "count" */
extern const char *const AGG_KIND_NAMES[AGG_KINDS];
bool agg_kind_parse(const char *s, enum agg_kind *out);

/* One event as a payload gave it. */
struct agg_event {
    char *source_id; /* unique per channel: a second event with it is a duplicate */
    char *facility;  /* the source's facility code (mapped like a report's facility) */
    char *commodity; /* the source's commodity code (mapped like a report line's) */
    char *date;      /* "YYYY-MM-DD" (the facility's day), or an RFC 3339 timestamp with an
                        offset, turned into the facility's day in aggregate.timezone */
    enum agg_kind kind;
    long long quantity;
    char *reason; /* the reason's name, for losses and adjustments by reason; may be NULL */
    char *where;  /* its position in the payload, for messages */
};

struct agg_batch {
    struct agg_event *v;
    size_t n, cap;
};
void agg_batch_free(struct agg_batch *b);
/* Appends an event (strings copied; reason and where may be NULL). */
void agg_batch_add(struct agg_batch *b, const char *source_id, const char *facility,
                   const char *commodity, const char *date, enum agg_kind kind, long long quantity,
                   const char *reason, const char *where);

/* A stock event reason of the source (aggregate.reasons: in a channel file): an
 * OpenLMIS event names its reason by id only, so the channel says what each one is.
 * counts_as: the figure it goes to (OpenLMIS's stock-based requisitions take their
 * received and consumed figures from reasons tagged "received" and "consumed" in the
 * same way). */
/* The longest reason name, in bytes: a reader's code (READER_CODE_MAX). */
#define AGG_REASON_MAX 255

struct agg_reason {
    char *id;                /* the source's reason id (OpenLMIS: a UUID) */
    char *name;              /* as shown in `hibus aggregate show` and used for losses by reason */
    bool credit;             /* reasonType CREDIT (adds stock) or DEBIT */
    enum agg_kind counts_as; /* AGG_RECEIPT, AGG_ISSUE, AGG_LOSS or AGG_ADJUSTMENT */
};

/* A channel's aggregate: section. */
struct config_aggregate {
    bool on;
    enum period_type period_type; /* of the reports made; default: the mapping's, else Monthly */
    bool period_type_set;         /* given in the channel file */
    long long close_after_ms;     /* a period is sent this long after its last day ends */
    char *timezone;               /* the facilities' time zone (IANA name); default "UTC" */
    struct agg_reason *reasons;
    size_t n_reasons;
    bool by_reason; /* the reports also carry losses and adjustments by reason */
    /* quiet_periods: send: the periods after a facility's last event are sent as
     * they close (months without movement); wait (false, the default): once the
     * facility's next event comes */
    bool quiet_send;
};
const struct agg_reason *agg_reason_find(const struct config_aggregate *a, const char *id);
void config_aggregate_free(struct config_aggregate *a);

/* The event readers, by transform.reader name. */
extern const char *const AGG_READER_NAMES[]; /* NULL-terminated */
bool agg_reader_known(const char *name);
/* Parses body with event reader name. On success fills out (agg_batch_free it); on
 * a malformed payload returns HIBUS_E_INVALID with every problem appended to
 * problems ({"stage":"reader", "where", "message"}). max_events: more is a problem. */
enum hibus_err agg_parse(const char *name, const void *body, size_t len,
                         const struct config_aggregate *a, size_t max_events, struct agg_batch *out,
                         json_t *problems);

/* ---- Derivation ---- */

/* One stored event as the derivation reads it: day is a day number
 * (period_day_number), events come sorted by (day, seq). */
struct agg_row {
    long day;
    enum agg_kind kind;
    long long quantity;
    const char *reason; /* may be NULL */
    int64_t seq;        /* its stock_events id: arrival order within a day */
};

/* What one event did to the period's figures (for `hibus aggregate show`). */
struct agg_effect {
    size_t row;          /* index into the rows given */
    const char *measure; /* REPORT_MEASURES name it went to, or NULL (before the period) */
    long long amount;    /* what it added to that measure (a count: its difference) */
    long long balance;   /* the running balance after it */
};

/* The sum of one reason's losses or adjustments in the period. */
struct agg_reason_sum {
    const char *reason; /* borrowed from the rows */
    long long amount;   /* a loss: what was lost; an adjustment: signed */
};

struct agg_figures {
    long long opening_balance, received, consumed, losses, adjustments, stock_on_hand;
    int stockout_days;
    bool counted;               /* a physical count in the period set the stock on hand */
    struct agg_effect *effects; /* one per row up to the period's end */
    size_t n_effects;
    /* The losses and adjustments of the period's events that name a reason, one entry
     * per reason, sorted by reason (byte order). Events without a reason and the
     * differences counts find are in the totals only, so these add up to losses and
     * adjustments only when every loss and adjustment named its reason. */
    struct agg_reason_sum *losses_by_reason, *adjustments_by_reason;
    size_t n_losses_by_reason, n_adjustments_by_reason;
};
void agg_figures_free(struct agg_figures *f);

/* Derives the figures of the period [start, end] (day numbers) from rows, which
 * hold every event of one facility and commodity up to end, sorted by (day, seq).
 * The balance starts at 0 before the first event, or at its quantity when the
 * first event is a count; a count sets it. opening_balance
 * is the balance before start (the previous period's closing); stock on hand the
 * balance at the end; stockout_days the days of the period that ended at 0 or below.
 * The figures always satisfy opening + received - consumed - losses + adjustments
 * = stock on hand. The sums by reason borrow the rows' reason strings. */
void agg_derive(const struct agg_row *rows, size_t n, long start, long end,
                struct agg_figures *out);

/* One commodity's figures, as a stock report line. */
struct agg_line {
    const char *commodity;
    struct agg_figures figures;
};
/* The period's figures as an lmis-report (docs/formats.md), the body of the
 * transaction that sends them; NULL when out of memory. Caller frees. by_reason
 * (aggregate.by_reason): a line also carries losses_by_reason and
 * adjustments_by_reason, each when it has an entry. */
char *agg_report_json(const char *report_id, const char *facility, const struct period *p,
                      const struct agg_line *lines, size_t n, bool by_reason);

#endif
