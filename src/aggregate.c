/*
 * aggregate.c - the pure part of the aggregate stage (see hibus/aggregate.h): event
 * kinds, batches, reasons, and the derivation of one period's stock figures from
 * the events of one facility and commodity.
 *
 * The derivation walks the events in the order they happened (day, then arrival)
 * keeping a running balance:
 *   receipt      balance += q   received += q
 *   issue        balance -= q   consumed += q
 *   loss         balance -= q   losses += q
 *   adjustment   balance += q   adjustments += q   (q signed)
 *   count        balance  = q   adjustments += q - balance before it
 * The balance is 0 before a commodity's first event, unless that event is a count:
 * then the stock was what it counted (a facility's history should start with one).
 * Events before the period only move the balance: the balance before the first day
 * is the opening balance, the previous period's closing one, so consecutive periods
 * always chain. A count that disagrees with the running balance is the one place a
 * difference appears from nothing; it is booked as an adjustment so that the
 * report's own balance (opening + received - consumed - losses + adjustments = stock
 * on hand, quality rule `balance`) holds, and `hibus aggregate show` names the count
 * that made it. A day is a stock-out day when the balance at its end is 0 or less.
 *
 * Losses and adjustments are also summed per reason, for the events of the period
 * that name one (aggregate.by_reason sends them). An event without a reason, and the
 * difference a count finds, have no reason to go to: they are in the totals only.
 * Giving them one ("unexplained") would invent a reason DHIS2 has no category option
 * for, and a count's difference is exactly what no one explained.
 */
#include "hibus/aggregate.h"

#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "hibus/report.h"

const char *const AGG_KIND_NAMES[AGG_KINDS] = {"receipt", "issue", "loss", "adjustment", "count"};

bool agg_kind_parse(const char *s, enum agg_kind *out)
{
    for (int k = 0; s != NULL && k < AGG_KINDS; k++) {
        if (strcmp(s, AGG_KIND_NAMES[k]) == 0) {
            *out = (enum agg_kind)k;
            return true;
        }
    }
    return false;
}

void agg_batch_add(struct agg_batch *b, const char *source_id, const char *facility,
                   const char *commodity, const char *date, enum agg_kind kind, long long quantity,
                   const char *reason, const char *where)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->v = hibus_xreallocarray(b->v, b->cap, sizeof *b->v);
    }
    struct agg_event *e = &b->v[b->n++];
    e->source_id = hibus_xstrdup(source_id);
    e->facility = hibus_xstrdup(facility);
    e->commodity = hibus_xstrdup(commodity);
    e->date = hibus_xstrdup(date);
    e->kind = kind;
    e->quantity = quantity;
    e->reason = reason ? hibus_xstrdup(reason) : NULL;
    e->where = where ? hibus_xstrdup(where) : NULL;
}

void agg_batch_free(struct agg_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        struct agg_event *e = &b->v[i];
        free(e->source_id);
        free(e->facility);
        free(e->commodity);
        free(e->date);
        free(e->reason);
        free(e->where);
    }
    free(b->v);
    memset(b, 0, sizeof *b);
}

const struct agg_reason *agg_reason_find(const struct config_aggregate *a, const char *id)
{
    for (size_t i = 0; a != NULL && id != NULL && i < a->n_reasons; i++)
        if (strcmp(a->reasons[i].id, id) == 0)
            return &a->reasons[i];
    return NULL;
}

void config_aggregate_free(struct config_aggregate *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n_reasons; i++) {
        free(a->reasons[i].id);
        free(a->reasons[i].name);
    }
    free(a->reasons);
    free(a->timezone);
    memset(a, 0, sizeof *a);
}

void agg_figures_free(struct agg_figures *f)
{
    if (f == NULL)
        return;
    free(f->effects);
    free(f->losses_by_reason);
    free(f->adjustments_by_reason);
    memset(f, 0, sizeof *f);
}

/* Adds amount to reason's entry of v (sorted by reason; room for one more is there:
 * v has as many slots as there are rows). A period has few reasons: a linear walk. */
static void add_by_reason(struct agg_reason_sum *v, size_t *n, const char *reason, long long amount)
{
    size_t i = 0;
    int c = 1;
    while (i < *n && (c = strcmp(v[i].reason, reason)) < 0)
        i++;
    if (i < *n && c == 0) {
        v[i].amount += amount;
        return;
    }
    memmove(&v[i + 1], &v[i], (*n - i) * sizeof *v);
    v[i] = (struct agg_reason_sum){reason, amount};
    (*n)++;
}

/* What one event does: the measure it goes to and the amount, given the balance
 * before it; returns the balance after it. */
static long long apply(const struct agg_row *r, long long balance, const char **measure,
                       long long *amount)
{
    switch (r->kind) {
    case AGG_RECEIPT:
        *measure = REPORT_MEASURES[REPORT_RECEIVED];
        *amount = r->quantity;
        return balance + r->quantity;
    case AGG_ISSUE:
        *measure = REPORT_MEASURES[REPORT_CONSUMED];
        *amount = r->quantity;
        return balance - r->quantity;
    case AGG_LOSS:
        *measure = REPORT_MEASURES[REPORT_LOSSES];
        *amount = r->quantity;
        return balance - r->quantity;
    case AGG_ADJUSTMENT:
        *measure = REPORT_MEASURES[REPORT_ADJUSTMENTS];
        *amount = r->quantity;
        return balance + r->quantity;
    default: /* AGG_COUNT */
        *measure = REPORT_MEASURES[REPORT_ADJUSTMENTS];
        *amount = r->quantity - balance;
        return r->quantity;
    }
}

void agg_derive(const struct agg_row *rows, size_t n, long start, long end, struct agg_figures *out)
{
    memset(out, 0, sizeof *out);
    out->effects = n ? hibus_xcalloc(n, sizeof *out->effects) : NULL;
    out->losses_by_reason = n ? hibus_xcalloc(n, sizeof *out->losses_by_reason) : NULL;
    out->adjustments_by_reason = n ? hibus_xcalloc(n, sizeof *out->adjustments_by_reason) : NULL;
    /* A history that starts with a count starts from that stock: the count is how
     * much there was, not a difference found from nothing. */
    long long balance = n > 0 && rows[0].kind == AGG_COUNT ? rows[0].quantity : 0;
    size_t i = 0;
    /* before the period: the balance only */
    for (; i < n && rows[i].day < start; i++) {
        const char *m;
        long long amount;
        balance = apply(&rows[i], balance, &m, &amount);
        out->effects[out->n_effects++] = (struct agg_effect){i, NULL, amount, balance};
    }
    out->opening_balance = balance;
    for (long day = start; day <= end; day++) {
        for (; i < n && rows[i].day == day; i++) {
            const char *m;
            long long amount;
            balance = apply(&rows[i], balance, &m, &amount);
            out->effects[out->n_effects++] = (struct agg_effect){i, m, amount, balance};
            const char *reason = rows[i].reason;
            bool named = reason != NULL && reason[0] != '\0';
            switch (rows[i].kind) {
            case AGG_RECEIPT: out->received += amount; break;
            case AGG_ISSUE: out->consumed += amount; break;
            case AGG_LOSS:
                out->losses += amount;
                if (named)
                    add_by_reason(out->losses_by_reason, &out->n_losses_by_reason, reason, amount);
                break;
            case AGG_ADJUSTMENT:
                out->adjustments += amount;
                if (named)
                    add_by_reason(out->adjustments_by_reason, &out->n_adjustments_by_reason, reason,
                                  amount);
                break;
            case AGG_COUNT: /* its difference is unexplained: the total only */
                out->counted = true;
                out->adjustments += amount;
                break;
            default: break;
            }
        }
        if (balance <= 0)
            out->stockout_days++;
    }
    out->stock_on_hand = balance;
}

/* {"REASON": amount, ...}, in the figures' order (by reason), so that the same
 * figures always give the same body: emitting compares bodies to tell a change. */
static json_t *reason_object(const struct agg_reason_sum *v, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < n; i++)
        json_object_set_new(o, v[i].reason, json_integer((json_int_t)v[i].amount));
    return o;
}

char *agg_report_json(const char *report_id, const char *facility, const struct period *p,
                      const struct agg_line *lines, size_t n, bool by_reason)
{
    char start[11], end[11];
    period_date_format(p->start, start);
    period_date_format(p->end, end);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct agg_figures *f = &lines[i].figures;
        json_t *line =
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "commodity", lines[i].commodity,
                      REPORT_MEASURES[REPORT_OPENING_BALANCE], (json_int_t)f->opening_balance,
                      REPORT_MEASURES[REPORT_RECEIVED], (json_int_t)f->received,
                      REPORT_MEASURES[REPORT_CONSUMED], (json_int_t)f->consumed,
                      REPORT_MEASURES[REPORT_LOSSES], (json_int_t)f->losses,
                      REPORT_MEASURES[REPORT_ADJUSTMENTS], (json_int_t)f->adjustments,
                      REPORT_MEASURES[REPORT_STOCK_ON_HAND], (json_int_t)f->stock_on_hand,
                      REPORT_MEASURES[REPORT_STOCKOUT_DAYS], f->stockout_days);
        if (line != NULL && by_reason && f->n_losses_by_reason > 0)
            json_object_set_new(line, "losses_by_reason",
                                reason_object(f->losses_by_reason, f->n_losses_by_reason));
        if (line != NULL && by_reason && f->n_adjustments_by_reason > 0)
            json_object_set_new(
                line, "adjustments_by_reason",
                reason_object(f->adjustments_by_reason, f->n_adjustments_by_reason));
        json_array_append_new(arr, line);
    }
    json_t *doc = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "report_id", report_id, "facility",
                            facility, "period", "start", start, "end", end, "lines", arr);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}
