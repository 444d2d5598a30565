/*
 * readers_events.c - the stock event readers of the aggregate stage (hibus/aggregate.h):
 *
 *   stock-event           hibus's generic event JSON: {"events": [{id, facility,
 *                         commodity, date, kind, quantity, reason}]} (docs/aggregate.md)
 *   openlmis-stock-event  an OpenLMIS v3 stock event, as POSTed to the stock management
 *                         service's /api/stockEvents
 *
 * OpenLMIS shapes, from openlmis-stockmanagement:
 *   src/main/java/org/openlmis/stockmanagement/dto/StockEventDto.java and
 *   src/main/resources/schemas/stockEventDto.json: facilityId, programId and lineItems
 *   are required; documentNumber, signature, ... optional.
 *   dto/StockEventLineItemDto.java and schemas/stockEventLineItemDto.json: orderableId
 *   and quantity required ("Not allowed to be negative"); occurredDate is a LocalDate
 *   written "yyyy-MM-dd" (@JsonFormat); sourceId "can not be present along with"
 *   destinationId; reasonId; stockAdjustments [{reasonId, quantity}] (the reasons for
 *   a physical inventory's difference, StockEventAdjustmentDto).
 *   domain/card/StockCardLineItem.java: a line item is a physical inventory when it has
 *   no source, no destination and no reason (isPhysicalInventory), and it adds to the
 *   stock when it has a source or a CREDIT reason (isPositive).
 *   schemas/reason.json: reasonType CREDIT | DEBIT | BALANCE_ADJUSTMENT. An event names
 *   its reason by id only, so the channel's aggregate.reasons says what each id is.
 *
 * Each event gets a source id that is the same each time the same event is sent, so
 * a payload sent twice is stored once: the event's own id (stock-event), else for
 * OpenLMIS the event's id or documentNumber with the line's index, else the line's
 * whole content with its facility and program (hashed when stored).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hibus/aggregate.h"
#include "hibus/alloc.h"
#include "hibus/period.h"

#include "readers_internal.h"

const char *const AGG_READER_NAMES[] = {"stock-event", "openlmis-stock-event", NULL};

bool agg_reader_known(const char *name)
{
    for (size_t i = 0; name != NULL && AGG_READER_NAMES[i] != NULL; i++)
        if (strcmp(name, AGG_READER_NAMES[i]) == 0)
            return true;
    return false;
}

struct ev_ctx {
    struct reader_ctx *rd;
    const struct config_aggregate *a;
    struct agg_batch *out;
    size_t max_events;
    json_t *seen; /* source id -> where, for duplicates within the payload */
};

static bool two_digits(const char *s, int max)
{
    return s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' &&
           (s[0] - '0') * 10 + (s[1] - '0') <= max;
}

/* "YYYY-MM-DD", or an RFC 3339 date-time with "Z" or an offset: a time without one
 * would leave the day to guess. */
static bool event_date_valid(const char *s, bool *has_time)
{
    char day[11];
    struct period_date d;
    *has_time = false;
    if (strlen(s) < 10)
        return false;
    memcpy(day, s, 10);
    day[10] = '\0';
    if (!period_date_parse(day, &d))
        return false;
    const char *p = s + 10;
    if (*p == '\0')
        return true;
    *has_time = true;
    if (*p != 'T' && *p != 't')
        return false;
    p++;
    if (!two_digits(p, 23) || p[2] != ':' || !two_digits(p + 3, 59))
        return false;
    p += 5;
    if (*p == ':') {
        if (!two_digits(p + 1, 60))
            return false;
        p += 3;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                return false;
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && two_digits(p + 1, 23) && p[3] == ':' &&
           two_digits(p + 4, 59) && p[6] == '\0';
}

/* A whole number, within limits; a problem otherwise. */
static bool get_quantity(struct reader_ctx *rd, const json_t *obj, const char *key,
                         const char *where, bool signed_ok, long long *out)
{
    const json_t *j = json_object_get(obj, key);
    if (j == NULL || json_is_null(j)) {
        reader_problem(rd, where, "%s is required", key);
        return false;
    }
    long long q;
    if (json_is_integer(j)) {
        q = (long long)json_integer_value(j);
    } else if (json_is_real(j)) {
        /* 5.0 is 5 (some encoders write every number so); 1.5 is no quantity, and
         * neither is 1e30 */
        double d = json_real_value(j);
        if (d != floor(d)) {
            reader_problem(rd, where, "%s must be a whole number, not a fraction (%g)", key, d);
            return false;
        }
        if (d < -1e12 || d > 1e12) {
            reader_problem(rd, where, "%s %g is out of range (at most 10^12 either way)", key, d);
            return false;
        }
        q = (long long)d;
    } else {
        reader_problem(rd, where, "%s must be a whole number, not %s", key, reader_type_name(j));
        return false;
    }
    if (q < -1000000000000LL || q > 1000000000000LL) {
        reader_problem(rd, where, "%s %lld is out of range (at most 10^12 either way)", key, q);
        return false;
    }
    if (q < 0 && !signed_ok) {
        reader_problem(rd, where,
                       "%s must not be negative (%lld); only an adjustment carries a sign", key, q);
        return false;
    }
    *out = q;
    return true;
}

static bool room_for_one(struct ev_ctx *c)
{
    if (c->out->n < c->max_events)
        return true;
    if (!c->rd->too_many) {
        c->rd->too_many = true;
        reader_problem(c->rd, NULL,
                       "the payload holds more than %zu events (limits.max_values); send them in "
                       "smaller batches",
                       c->max_events);
    }
    return false;
}

static void add_event(struct ev_ctx *c, const char *source_id, const char *facility,
                      const char *commodity, const char *date, enum agg_kind kind, long long q,
                      const char *reason, const char *where)
{
    if (!room_for_one(c))
        return;
    const json_t *first = json_object_get(c->seen, source_id);
    if (first != NULL) {
        reader_problem(c->rd, where, "event id \"%.64s\" appears twice (first at %s)", source_id,
                       json_string_value(first));
        return;
    }
    json_object_set_new(c->seen, source_id, json_string(where));
    agg_batch_add(c->out, source_id, facility, commodity, date, kind, q, reason, where);
}

/* ---- stock-event ---- */

static const char *const event_keys[] = {"id",   "facility", "commodity", "date",
                                         "kind", "quantity", "reason",    NULL};

static void read_generic_event(struct ev_ctx *c, const json_t *e, size_t i)
{
    struct reader_ctx *rd = c->rd;
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "events[%zu]", i);
    if (!json_is_object(e)) {
        reader_problem(rd, where, "an event must be an object, not %s", reader_type_name(e));
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)e, key, v)
    {
        bool known = false;
        for (size_t k = 0; event_keys[k] != NULL && !known; k++)
            known = strcmp(key, event_keys[k]) == 0;
        if (!known) {
            char at[READER_WHERE_MAX];
            reader_where_fmt(at, "events[%zu].%s", i, key);
            reader_problem(rd, at,
                           "unknown key \"%.64s\" in an event; an event has id, facility, "
                           "commodity, date, kind, quantity and reason",
                           key);
        }
    }
    const char *id, *facility, *commodity, *date, *kind_s, *reason;
    bool ok = reader_get_string(rd, e, "id", where, true, READER_CODE_MAX, &id);
    ok &= reader_get_string(rd, e, "facility", where, true, READER_CODE_MAX, &facility);
    ok &= reader_get_string(rd, e, "commodity", where, true, READER_CODE_MAX, &commodity);
    ok &= reader_get_string(rd, e, "date", where, true, 64, &date);
    ok &= reader_get_string(rd, e, "kind", where, true, 32, &kind_s);
    ok &= reader_get_string(rd, e, "reason", where, false, READER_CODE_MAX, &reason);
    enum agg_kind kind = AGG_RECEIPT;
    if (kind_s != NULL && !agg_kind_parse(kind_s, &kind)) {
        reader_problem(rd, where,
                       "kind \"%.32s\" is not one of receipt, issue, loss, adjustment, count",
                       kind_s);
        ok = false;
    }
    bool has_time;
    if (date != NULL && !event_date_valid(date, &has_time)) {
        reader_problem(rd, where,
                       "date \"%.64s\" is neither YYYY-MM-DD nor a date-time with its offset "
                       "(2026-10-31T22:30:00Z, 2026-11-01T01:30:00+03:00)",
                       date);
        ok = false;
    }
    long long q = 0;
    ok &= get_quantity(rd, e, "quantity", where, kind == AGG_ADJUSTMENT, &q);
    if (ok)
        add_event(c, id, facility, commodity, date, kind, q, reason, where);
}

static void read_generic(struct ev_ctx *c, const json_t *root)
{
    const json_t *events = json_object_get(root, "events");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "events") != 0)
            reader_problem(c->rd, key, "unknown key \"%.64s\" (a stock-event payload has events)",
                           key);
    }
    if (!json_is_array(events)) {
        reader_problem(c->rd, "events", "events must be a list of events, not %s",
                       events ? reader_type_name(events) : "missing");
        return;
    }
    if (json_array_size(events) == 0)
        reader_problem(c->rd, "events", "events is empty");
    size_t i;
    json_array_foreach(events, i, v)
    {
        if (reader_out_of_cpu(c->rd))
            return;
        read_generic_event(c, v, i);
    }
}

/* ---- openlmis-stock-event ---- */

/* What reason id rid makes of quantity q: the kind and the signed quantity. */
static bool reason_effect(struct ev_ctx *c, const char *rid, long long q, const char *where,
                          enum agg_kind *kind, long long *signed_q, const char **name)
{
    const struct agg_reason *r = agg_reason_find(c->a, rid);
    if (r == NULL) {
        reader_problem(c->rd, where,
                       "reason \"%.64s\" is not in the channel's aggregate.reasons: add it as "
                       "%.64s: { name: NAME, type: credit|debit, counts_as: "
                       "received|consumed|loss|adjustment }",
                       rid, rid);
        return false;
    }
    *kind = r->counts_as;
    *signed_q = r->counts_as == AGG_ADJUSTMENT && !r->credit ? -q : q;
    *name = r->name;
    return true;
}

static void read_openlmis_line(struct ev_ctx *c, const json_t *line, size_t i, const char *facility,
                               const char *program, const char *event_key)
{
    struct reader_ctx *rd = c->rd;
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "lineItems[%zu]", i);
    if (!json_is_object(line)) {
        reader_problem(rd, where, "a line item must be an object, not %s", reader_type_name(line));
        return;
    }
    const char *orderable, *date, *reason_id, *source, *destination;
    bool ok = reader_get_string(rd, line, "orderableId", where, true, READER_CODE_MAX, &orderable);
    ok &= reader_get_string(rd, line, "occurredDate", where, true, 64, &date);
    ok &= reader_get_string(rd, line, "reasonId", where, false, READER_CODE_MAX, &reason_id);
    ok &= reader_get_string(rd, line, "sourceId", where, false, READER_CODE_MAX, &source);
    ok &= reader_get_string(rd, line, "destinationId", where, false, READER_CODE_MAX, &destination);
    struct period_date d;
    if (date != NULL && !period_date_parse(date, &d)) {
        reader_problem(rd, where, "occurredDate \"%.64s\" is not a date (yyyy-MM-dd)", date);
        ok = false;
    }
    if (source != NULL && destination != NULL) {
        reader_problem(rd, where, "sourceId and destinationId cannot both be present");
        ok = false;
    }
    long long q = 0;
    ok &= get_quantity(rd, line, "quantity", where, false, &q);
    const json_t *adjs = json_object_get(line, "stockAdjustments");
    if (adjs != NULL && !json_is_null(adjs) && !json_is_array(adjs)) {
        reader_problem(rd, where, "stockAdjustments must be a list, not %s",
                       reader_type_name(adjs));
        ok = false;
    }
    if (!ok)
        return;

    /* the same event sent again gets the same ids */
    char *base;
    if (event_key != NULL) {
        size_t n = strlen(event_key) + 32;
        base = hibus_xmalloc(n);
        snprintf(base, n, "%s:%zu", event_key, i);
    } else {
        char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
        size_t n = strlen(facility) + strlen(program) + (text ? strlen(text) : 0) + 32;
        base = hibus_xmalloc(n);
        snprintf(base, n, "content:%s|%s|%zu|%s", facility, program, i, text ? text : "");
        free(text);
    }
    enum agg_kind kind;
    long long sq = q;
    const char *reason = NULL;
    if (source != NULL || destination != NULL) {
        kind = source != NULL ? AGG_RECEIPT : AGG_ISSUE;
        const struct agg_reason *r = agg_reason_find(c->a, reason_id);
        reason = r ? r->name : NULL;
        add_event(c, base, facility, orderable, date, kind, q, reason, where);
    } else if (reason_id != NULL) {
        if (reason_effect(c, reason_id, q, where, &kind, &sq, &reason))
            add_event(c, base, facility, orderable, date, kind, sq, reason, where);
    } else {
        /* a physical inventory: its stockAdjustments explain the difference first */
        size_t k;
        const json_t *adj;
        json_array_foreach(adjs, k, adj)
        {
            char at[READER_WHERE_MAX];
            reader_where_fmt(at, "%s.stockAdjustments[%zu]", where, k);
            const char *rid;
            long long aq = 0;
            if (!json_is_object(adj)) {
                reader_problem(rd, at, "a stock adjustment must be an object, not %s",
                               reader_type_name(adj));
                continue;
            }
            if (!reader_get_string(rd, adj, "reasonId", at, true, READER_CODE_MAX, &rid) ||
                !get_quantity(rd, adj, "quantity", at, false, &aq) ||
                !reason_effect(c, rid, aq, at, &kind, &sq, &reason))
                continue;
            size_t n = strlen(base) + 32;
            char *aid = hibus_xmalloc(n);
            snprintf(aid, n, "%s:adj%zu", base, k);
            add_event(c, aid, facility, orderable, date, kind, sq, reason, at);
            free(aid);
        }
        add_event(c, base, facility, orderable, date, AGG_COUNT, q, NULL, where);
    }
    free(base);
}

static void read_openlmis(struct ev_ctx *c, const json_t *root)
{
    struct reader_ctx *rd = c->rd;
    const char *facility, *program, *id, *doc;
    bool ok =
        reader_get_string(rd, root, "facilityId", "facilityId", true, READER_CODE_MAX, &facility);
    ok &= reader_get_string(rd, root, "programId", "programId", true, READER_CODE_MAX, &program);
    ok &= reader_get_string(rd, root, "id", "id", false, READER_CODE_MAX, &id);
    ok &= reader_get_string(rd, root, "documentNumber", "documentNumber", false, READER_CODE_MAX,
                            &doc);
    const json_t *lines = json_object_get(root, "lineItems");
    if (!json_is_array(lines)) {
        reader_problem(rd, "lineItems", "lineItems must be a list of line items, not %s",
                       lines ? reader_type_name(lines) : "missing");
        return;
    }
    if (json_array_size(lines) == 0)
        reader_problem(rd, "lineItems", "lineItems is empty");
    if (!ok)
        return;
    char key[2 * READER_CODE_MAX + 16];
    const char *event_key = NULL;
    if (id != NULL) {
        snprintf(key, sizeof key, "event:%s", id);
        event_key = key;
    } else if (doc != NULL) {
        snprintf(key, sizeof key, "document:%s|%s", facility, doc);
        event_key = key;
    }
    size_t i;
    const json_t *line;
    json_array_foreach(lines, i, line)
    {
        if (reader_out_of_cpu(rd))
            return;
        read_openlmis_line(c, line, i, facility, program, event_key);
    }
}

enum hibus_err agg_parse(const char *name, const void *body, size_t len,
                         const struct config_aggregate *a, size_t max_events, struct agg_batch *out,
                         json_t *problems)
{
    static const struct reader_options defaults = {NULL, NULL, READER_DEFAULT_MAX_VALUES};
    memset(out, 0, sizeof *out);
    struct reader_ctx rd = {.problems = problems, .opts = &defaults};
    if (!agg_reader_known(name)) {
        report_problem(problems, "reader", "unknown stock event reader \"%s\"",
                       name ? name : "(null)");
        return HIBUS_E_UNSUPPORTED;
    }
    struct ev_ctx c = {&rd, a, out, max_events ? max_events : READER_DEFAULT_MAX_VALUES,
                       json_object()};
    bool openlmis = strcmp(name, "openlmis-stock-event") == 0;
    json_t *root = reader_load_json(
        &rd, body, body ? len : 0,
        openlmis ? "an OpenLMIS stock event JSON object" : "a stock-event JSON object", false);
    if (root != NULL) {
        if (openlmis)
            read_openlmis(&c, root);
        else
            read_generic(&c, root);
    }
    json_decref(root);
    json_decref(c.seen);
    if (rd.nomem || rd.n > 0) {
        agg_batch_free(out);
        return rd.nomem ? HIBUS_E_NOMEM : HIBUS_E_INVALID;
    }
    return HIBUS_OK;
}
