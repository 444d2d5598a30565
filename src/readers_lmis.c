/*
 * readers_lmis.c - the two LMIS readers (see hibus/readers.h and docs/formats.md):
 *
 *   lmis-report           hibus's own R&R-style JSON (docs/lmis-report.schema.json)
 *   openlmis-requisition  an OpenLMIS v3 requisition (FORMATS.md section 5), v1 and v2,
 *                         with its requisitionLineItems and stock adjustments
 *
 * Entry points (readers_internal.h): reader_read_lmis_report, reader_read_requisition,
 * each given the parsed JSON object by reader_parse_opts (src/readers.c). Also
 * READER_DEFAULT_LOSS_CATEGORIES (hibus/readers.h).
 *
 * Sources cited here, all from OpenLMIS (github.com/OpenLMIS):
 * - openlmis-requisition: src/main/java/org/openlmis/requisition/dto/BaseRequisitionDto.java,
 *   dto/ReasonDto.java, dto/stockmanagement/StockAdjustmentDto.java, dto/ReasonType.java,
 *   dto/ReasonCategory.java, domain/requisition/StockAdjustmentsValidator.java and
 *   domain/requisition/LineItemFieldsCalculator.java; the schemas
 *   src/main/resources/schemas/requisitionDto.json, requisitionV2.json and
 *   stockAdjustmentReason.json; src/main/resources/application.properties and
 *   src/main/resources/db/demo-data/requisition.stock_adjustment_reasons.csv.
 * - openlmis-stockmanagement: src/main/resources/db/demo-data/
 *   stockmanagement.stock_card_line_item_reasons.csv and the migrations in
 *   src/main/resources/db/migration/ (20170830105704952, 20170830183723001,
 *   20190325160137376).
 *
 * Every problem is reported through the problem list of src/readers.c; positions are
 * dotted JSON paths with 0-based indexes ("requisitionLineItems[2].stockOnHand").
 */
#include "hibus/readers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hibus/period.h"

#include "readers_internal.h"

/* Checked against OpenLMIS's own reasons: openlmis-requisition
 * src/main/resources/db/demo-data/requisition.stock_adjustment_reasons.csv, and in
 * openlmis-stockmanagement src/main/resources/db/demo-data/
 * stockmanagement.stock_card_line_item_reasons.csv plus the migrations in
 * src/main/resources/db/migration/ that add Consumed, Receipts, Beginning Balance
 * Excess/Insufficiency (20170830105704952, 20170830183723001) and Unpack Kit
 * (20190325160137376). ADJUSTMENT + DEBIT: Damage, Expired, Stolen, Lost, Passed open-vial
 * time limit, Cold chain failure (losses), and the hidden system reasons Consumed and
 * Beginning Balance Insufficiency, which the hidden rule (is_loss) keeps out. Transfer Out is
 * TRANSFER and Unpack Kit AGGREGATION: neither is a loss. */
const char *const READER_DEFAULT_LOSS_CATEGORIES[] = {"ADJUSTMENT", NULL};

/* ------------------------------------------------------------------------------------
 * lmis-report
 * ------------------------------------------------------------------------------------ */

static void lmis_period(struct reader_ctx *rd, struct report *r, const json_t *j)
{
    if (j == NULL || json_is_null(j)) {
        reader_problem(rd, "period", "period is required");
        return;
    }
    if (json_is_string(j)) {
        /* "YYYY-MM": one calendar month. */
        const char *s = json_string_value(j);
        char id[8];
        struct period p;
        if (strlen(s) != 7 || s[4] != '-') {
            reader_problem(rd, "period",
                           "period \"%.40s\" is not a month: expected \"YYYY-MM\" or an object "
                           "{\"start\", \"end\"}",
                           s);
            return;
        }
        snprintf(id, sizeof id, "%.4s%.2s", s, s + 5);
        if (!period_parse(id, &p) || p.type != PERIOD_MONTHLY) {
            reader_problem(rd, "period",
                           "period \"%s\" is not a valid month (expected \"YYYY-MM\")", s);
            return;
        }
        reader_set_period(rd, r, p.start, p.end);
        return;
    }
    if (!json_is_object(j)) {
        reader_problem(rd, "period",
                       "period must be \"YYYY-MM\" or an object {\"start\", \"end\"}, not %s",
                       reader_type_name(j));
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "start") != 0 && strcmp(key, "end") != 0) {
            char where[READER_WHERE_MAX];
            reader_where_fmt(where, "period.%s", key);
            reader_problem(rd, where, "unknown key \"%.64s\" in period (expected start and end)",
                           key);
        }
    }
    reader_read_date_range(rd, r, j, "start", "end", "period");
}

/* where[0..plen) is "lines[i]": makes it "lines[i].key" (key is one of ours, short),
 * without a printf per value. */
static void line_key(char where[READER_WHERE_MAX], size_t plen, const char *key)
{
    size_t k = strlen(key);
    if (plen + 1 + k < READER_WHERE_MAX) {
        where[plen] = '.';
        memcpy(where + plen + 1, key, k + 1);
    }
}

/* "losses_by_reason": {"Expired": 3, ...} and "adjustments_by_reason" (signed): the
 * breakdown of a line's losses and adjustments. Each entry becomes a value of the
 * line's commodity with the measure "losses:REASON" or "adjustments:REASON", which a
 * mapping maps like any (item, measure) pair (usually to the data element's category
 * option combo of that reason). Whether the entries add up to the total is not the
 * reader's business: a source may break down only part of it (docs/formats.md). */
static const char *const by_reason_keys[2] = {"losses_by_reason", "adjustments_by_reason"};

/* The measure prefix ("losses", "adjustments") of a breakdown key, or NULL. */
static const char *by_reason_kind(const char *key)
{
    if (strcmp(key, by_reason_keys[0]) == 0)
        return REPORT_MEASURES[REPORT_LOSSES];
    if (strcmp(key, by_reason_keys[1]) == 0)
        return REPORT_MEASURES[REPORT_ADJUSTMENTS];
    return NULL;
}

/* Reads line i's breakdown under key; commodity NULL: the line has no valid one, so the
 * entries are only checked. */
static void lmis_by_reason(struct reader_ctx *rd, struct report *r, const json_t *line, size_t i,
                           const char *key, const char *commodity, const char *comment)
{
    const json_t *o = json_object_get(line, key);
    if (o == NULL || json_is_null(o))
        return;
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "lines[%zu].%s", i, key);
    if (!json_is_object(o)) {
        reader_problem(rd, where, "%s must be an object {\"REASON\": number, ...}, not %s", key,
                       reader_type_name(o));
        return;
    }
    const char *kind = by_reason_kind(key);
    const char *reason;
    const json_t *v;
    json_object_foreach((json_t *)o, reason, v)
    {
        /* the reason is the client's text: the position may be cut */
        reader_where_fmt(where, "lines[%zu].%s.%s", i, key, reason);
        size_t n = strlen(reason);
        if (n == 0) {
            reader_problem(rd, where, "%s has an empty reason: name each reason", key);
            continue;
        }
        if (n > READER_CODE_MAX) {
            reader_problem(rd, where, "a reason in %s is too long (%zu bytes, at most %d)", key, n,
                           READER_CODE_MAX);
            continue;
        }
        if (json_is_null(v))
            continue; /* not reported, as a measure's null is */
        if (!json_is_number(v)) {
            reader_problem(rd, where, "%s \"%.64s\" must be a number, not %s", key, reason,
                           reader_type_name(v));
            continue;
        }
        if (commodity == NULL)
            continue;
        char num[READER_NUMBER_MAX], measure[READER_CODE_MAX + 16];
        reader_format_number(v, num);
        snprintf(measure, sizeof measure, "%s:%s", kind, reason);
        reader_add_value(rd, r, commodity, measure, num, comment, where);
    }
}

static void lmis_line(struct reader_ctx *rd, struct report *r, const json_t *line, size_t i,
                      json_t *seen)
{
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "lines[%zu]", i);
    size_t plen = strlen(where); /* "lines[i]", then ".key" after it (keys here are ours) */
    if (!json_is_object(line)) {
        reader_problem(rd, where, "a line must be an object, not %s", reader_type_name(line));
        return;
    }

    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)line, key, v)
    {
        if (strcmp(key, "commodity") != 0 && strcmp(key, "comment") != 0 &&
            !report_is_measure(key) && by_reason_kind(key) == NULL) {
            reader_where_fmt(where, "lines[%zu].%s", i, key); /* a client's key: may be cut */
            reader_problem(rd, where,
                           "unknown key \"%.64s\" in a line; a line has commodity, comment, the "
                           "measures opening_balance, received, consumed, losses, adjustments, "
                           "stock_on_hand, stockout_days, requested, and losses_by_reason and "
                           "adjustments_by_reason",
                           key);
        }
    }

    const char *commodity, *comment;
    line_key(where, plen, "commodity");
    bool have_item =
        reader_get_string(rd, line, "commodity", where, true, READER_CODE_MAX, &commodity);
    if (have_item)
        reader_check_duplicate(rd, seen, commodity, "commodity", where);
    line_key(where, plen, "comment");
    reader_get_string(rd, line, "comment", where, false, READER_TEXT_MAX, &comment);

    /* Values in the canonical order, whatever the order of keys in the payload. */
    for (size_t m = 0; REPORT_MEASURES[m] != NULL; m++) {
        const char *measure = REPORT_MEASURES[m];
        const json_t *j = json_object_get(line, measure);
        if (j == NULL || json_is_null(j))
            continue;
        line_key(where, plen, measure);
        if (!json_is_number(j)) {
            reader_problem(rd, where, "%s must be a number, not %s", measure, reader_type_name(j));
            continue;
        }
        char num[READER_NUMBER_MAX];
        reader_format_number(j, num);
        if (have_item)
            reader_add_value(rd, r, commodity, measure, num, comment, where);
    }
    /* Then the breakdowns by reason, after the totals they break down. */
    for (size_t k = 0; k < 2; k++)
        lmis_by_reason(rd, r, line, i, by_reason_keys[k], have_item ? commodity : NULL, comment);
}

void reader_read_lmis_report(struct reader_ctx *rd, struct report *r, const json_t *root)
{
    const char *s;
    if (reader_get_string(rd, root, "report_id", "report_id", false, READER_CODE_MAX, &s))
        reader_set_field(rd, &r->source_id, s);
    if (reader_get_string(rd, root, "facility", "facility", true, READER_CODE_MAX, &s))
        reader_set_field(rd, &r->org_unit, s);
    if (reader_get_string(rd, root, "data_set", "data_set", false, READER_CODE_MAX, &s))
        reader_set_field(rd, &r->data_set, s);
    reader_get_string(rd, root, "program", "program", false, READER_CODE_MAX, &s);
    reader_get_string(rd, root, "submitted_at", "submitted_at", false, READER_CODE_MAX, &s);
    lmis_period(rd, r, json_object_get(root, "period"));

    const json_t *lines = json_object_get(root, "lines");
    if (lines == NULL || json_is_null(lines)) {
        reader_problem(rd, "lines", "lines is required");
        return;
    }
    if (!json_is_array(lines)) {
        reader_problem(rd, "lines", "lines must be an array, not %s", reader_type_name(lines));
        return;
    }
    if (json_array_size(lines) == 0) {
        reader_problem(rd, "lines", "lines is empty: a report needs at least one line");
        return;
    }
    json_t *seen = json_object();
    if (seen == NULL) {
        rd->nomem = true;
        return;
    }
    for (size_t i = 0; i < json_array_size(lines) && !reader_out_of_cpu(rd); i++)
        lmis_line(rd, r, json_array_get(lines, i), i, seen);
    json_decref(seen);
}

/* ------------------------------------------------------------------------------------
 * openlmis-requisition
 * ------------------------------------------------------------------------------------ */

/* Direct columns: OpenLMIS v3 requisitionLineItem key -> canonical measure. losses and
 * adjustments are derived (see requisition_adjustments). */
static const struct {
    const char *key;
    const char *measure;
} requisition_columns[] = {
    {"beginningBalance", "opening_balance"}, {"totalReceivedQuantity", "received"},
    {"totalConsumedQuantity", "consumed"},   {"stockOnHand", "stock_on_hand"},
    {"totalStockoutDays", "stockout_days"},  {"requestedQuantity", "requested"},
};

#define N_COLUMNS (sizeof requisition_columns / sizeof requisition_columns[0])

/* Stock adjustment reasons.
 *
 * A requisition (v1 RequisitionDto and v2, openlmis-requisition
 * src/main/java/org/openlmis/requisition/dto/BaseRequisitionDto.java, schemas
 * src/main/resources/schemas/requisitionDto.json and requisitionV2.json) carries the reasons
 * once, at the top level: stockAdjustmentReasons[] = ReasonDto {id, name, description,
 * reasonType, reasonCategory, isFreeTextAllowed, hidden} (dto/ReasonDto.java,
 * schemas/stockAdjustmentReason.json). Each line item's stockAdjustments[] is
 * StockAdjustmentDto {id, reasonId, quantity} (dto/stockmanagement/StockAdjustmentDto.java),
 * quantity never negative (domain/requisition/StockAdjustmentsValidator.java).
 * reasonType: CREDIT, DEBIT, BALANCE_ADJUSTMENT (dto/ReasonType.java); reasonCategory:
 * TRANSFER, ADJUSTMENT, PHYSICAL_INVENTORY, AGGREGATION (dto/ReasonCategory.java). OpenLMIS
 * computes totalLossesAndAdjustments as + quantity for a CREDIT reason and - quantity for any
 * other (domain/requisition/LineItemFieldsCalculator.java,
 * calculateTotalLossesAndAdjustments); hibus signs them the same way. */

struct reason {
    const char *name, *type, *category; /* borrowed; name and category may be NULL */
    bool hidden;
    bool valid; /* false: its problems were reported */
};

struct reasons {
    const json_t *list;   /* stockAdjustmentReasons, NULL when absent */
    bool list_invalid;    /* present but not an array (reported) */
    struct reason *items; /* one per list entry */
    json_t *by_id;        /* id -> index in items (first of equal ids) */
    bool missing_reported;
};

/* Reads a reason object, adding a problem for each bad member (where = its position). */
static bool read_reason(struct reader_ctx *rd, const json_t *o, const char *where,
                        struct reason *out)
{
    char w[READER_WHERE_MAX];
    bool ok = true;
    memset(out, 0, sizeof *out);
    if (!json_is_object(o)) {
        reader_problem(rd, where, "a stock adjustment reason must be an object, not %s",
                       reader_type_name(o));
        return false;
    }
    reader_where_fmt(w, "%s.name", where);
    ok = reader_get_string(rd, o, "name", w, false, READER_CODE_MAX, &out->name) && ok;
    reader_where_fmt(w, "%s.reasonCategory", where);
    ok =
        reader_get_string(rd, o, "reasonCategory", w, false, READER_CODE_MAX, &out->category) && ok;
    reader_where_fmt(w, "%s.reasonType", where);
    if (!reader_get_string(rd, o, "reasonType", w, true, READER_CODE_MAX, &out->type)) {
        ok = false;
    } else if (strcmp(out->type, "CREDIT") != 0 && strcmp(out->type, "DEBIT") != 0 &&
               strcmp(out->type, "BALANCE_ADJUSTMENT") != 0) {
        reader_problem(rd, w, "reasonType \"%.40s\" is not CREDIT, DEBIT or BALANCE_ADJUSTMENT",
                       out->type);
        ok = false;
    }
    const json_t *h = json_object_get(o, "hidden");
    reader_where_fmt(w, "%s.hidden", where);
    if (h != NULL && !json_is_null(h) && !json_is_boolean(h)) {
        reader_problem(rd, w, "hidden must be a boolean, not %s", reader_type_name(h));
        ok = false;
    }
    out->hidden = json_is_true(h);
    out->valid = ok;
    return ok;
}

/* Reads the top-level stockAdjustmentReasons into rs. */
static void requisition_reasons(struct reader_ctx *rd, const json_t *root, struct reasons *rs)
{
    memset(rs, 0, sizeof *rs);
    const json_t *list = json_object_get(root, "stockAdjustmentReasons");
    if (list == NULL || json_is_null(list))
        return;
    if (!json_is_array(list)) {
        reader_problem(rd, "stockAdjustmentReasons",
                       "stockAdjustmentReasons must be an array, not %s", reader_type_name(list));
        rs->list_invalid = true;
        return;
    }
    rs->list = list;
    size_t n = json_array_size(list);
    rs->by_id = json_object();
    rs->items = calloc(n ? n : 1, sizeof *rs->items);
    if (rs->by_id == NULL || rs->items == NULL) {
        rd->nomem = true;
        return;
    }
    for (size_t j = 0; j < n; j++) {
        char where[READER_WHERE_MAX], w[READER_WHERE_MAX];
        const json_t *o = json_array_get(list, j);
        const char *id;
        reader_where_fmt(where, "stockAdjustmentReasons[%zu]", j);
        read_reason(rd, o, where, &rs->items[j]);
        reader_where_fmt(w, "%s.id", where);
        if (json_is_object(o) && reader_get_string(rd, o, "id", w, true, READER_CODE_MAX, &id) &&
            json_object_get(rs->by_id, id) == NULL &&
            json_object_set_new(rs->by_id, id, json_integer((json_int_t)j)) != 0)
            rd->nomem = true;
    }
}

static void reasons_free(struct reasons *rs)
{
    json_decref(rs->by_id);
    free(rs->items);
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t k = 0; list != NULL && s != NULL && list[k] != NULL; k++)
        if (strcasecmp(list[k], s) == 0)
            return true;
    return false;
}

/* Whether a DEBIT reason is a loss under the channel's options. A hidden reason is one of
 * OpenLMIS's system reasons (the requisition service's reasons.consumed, .receipts,
 * .beginningBalanceExcess/Insufficiency in src/main/resources/application.properties, marked
 * hidden in demo-data/requisition.stock_adjustment_reasons.csv): Consumed and Beginning
 * Balance Insufficiency are ADJUSTMENT + DEBIT but are no loss, so a hidden reason counts
 * only when it is named. */
static bool is_loss(const struct reader_options *o, const struct reason *rs)
{
    const char *const *cats = o->loss_categories;
    if (o->loss_reasons == NULL && cats == NULL)
        cats = READER_DEFAULT_LOSS_CATEGORIES;
    if (in_list(o->loss_reasons, rs->name))
        return true;
    return !rs->hidden && in_list(cats, rs->category);
}

/* losses and adjustments of one line item (empty strings: no value). With stockAdjustments,
 * each entry's reason is resolved (reasonId in stockAdjustmentReasons, else an embedded
 * "reason" object, the shape hibus read before); losses = the sum of loss quantities and
 * adjustments = the signed sum of all the others, both from the entries (*derived = true),
 * and totalLossesAndAdjustments, when present, must equal CREDIT - the rest. Without
 * stockAdjustments: adjustments = totalLossesAndAdjustments and no losses. */
static void requisition_adjustments(struct reader_ctx *rd, const json_t *li, size_t i,
                                    struct reasons *rs, char *losses, char *adjustments,
                                    bool *derived)
{
    char where[READER_WHERE_MAX], w[READER_WHERE_MAX];
    losses[0] = adjustments[0] = '\0';
    *derived = false;

    const json_t *total = json_object_get(li, "totalLossesAndAdjustments");
    if (total != NULL && !json_is_null(total) && !json_is_number(total)) {
        reader_where_fmt(where, "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        reader_problem(rd, where, "totalLossesAndAdjustments must be a number, not %s",
                       reader_type_name(total));
        return;
    }
    bool have_total = total != NULL && json_is_number(total);

    const json_t *adj = json_object_get(li, "stockAdjustments");
    if (adj != NULL && !json_is_null(adj) && !json_is_array(adj)) {
        reader_where_fmt(where, "requisitionLineItems[%zu].stockAdjustments", i);
        reader_problem(rd, where, "stockAdjustments must be an array, not %s",
                       reader_type_name(adj));
        return;
    }
    size_t n = json_array_size(adj); /* 0 when absent or null */
    if (n == 0) {
        if (have_total)
            reader_format_number(total, adjustments);
        return;
    }

    double loss = 0, other = 0, net = 0;
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        const json_t *a = json_array_get(adj, k);
        reader_where_fmt(where, "requisitionLineItems[%zu].stockAdjustments[%zu]", i, k);
        if (!json_is_object(a)) {
            reader_problem(rd, where, "a stock adjustment must be an object, not %s",
                           reader_type_name(a));
            ok = false;
            continue;
        }
        const json_t *q = json_object_get(a, "quantity");
        reader_where_fmt(w, "%s.quantity", where);
        if (!json_is_number(q)) {
            reader_problem(rd, w, "quantity must be a number, not %s",
                           q ? reader_type_name(q) : "missing");
            ok = false;
        } else if (json_number_value(q) < 0) {
            reader_problem(
                rd, w,
                "quantity must not be negative (%g): OpenLMIS quantities are unsigned, the "
                "sign comes from the reason's reasonType",
                json_number_value(q));
            ok = false;
        }

        /* The reason: by reasonId in the list, else embedded. */
        const char *rid;
        struct reason embedded, *reason = NULL;
        reader_where_fmt(w, "%s.reasonId", where);
        if (!reader_get_string(rd, a, "reasonId", w, false, READER_CODE_MAX, &rid)) {
            ok = false;
            continue;
        }
        const json_t *idx = rid != NULL ? json_object_get(rs->by_id, rid) : NULL;
        const json_t *er = json_object_get(a, "reason");
        if (idx != NULL) {
            reason = &rs->items[json_integer_value(idx)];
        } else if (er != NULL && !json_is_null(er)) {
            char we[READER_WHERE_MAX];
            reader_where_fmt(we, "%s.reason", where);
            read_reason(rd, er, we, &embedded);
            reason = &embedded;
        } else if (rid == NULL) {
            reader_problem(rd, where,
                           "line item %zu, stock adjustment %zu: reasonId is required (the reason "
                           "tells a loss from other adjustments)",
                           i, k);
        } else if (rs->list != NULL) {
            reader_problem(rd, w,
                           "line item %zu, stock adjustment %zu: reasonId \"%.64s\" is not in the "
                           "requisition's stockAdjustmentReasons",
                           i, k, rid);
        } else if (!rs->list_invalid && !rs->missing_reported) {
            rs->missing_reported = true;
            reader_problem(rd, "stockAdjustmentReasons",
                           "the requisition has stock adjustments (first at %s) but no "
                           "stockAdjustmentReasons to resolve their reasonId: send the requisition "
                           "as the requisition service returns it (GET /api/requisitions/{id})",
                           where);
        }
        if (reason == NULL || !reason->valid) {
            ok = false;
            continue;
        }
        if (!ok)
            continue;
        double v = json_number_value(q);
        if (strcmp(reason->type, "CREDIT") == 0) {
            net += v;
            other += v;
        } else {
            net -= v;
            if (strcmp(reason->type, "DEBIT") == 0 && is_loss(rd->opts, reason))
                loss += v;
            else
                other -= v;
        }
    }
    if (!ok)
        return;
    if (have_total && fabs(json_number_value(total) - net) > 1e-9) {
        char t[READER_NUMBER_MAX], c[READER_NUMBER_MAX];
        reader_format_number(total, t);
        reader_format_double(net, c);
        reader_where_fmt(where, "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        reader_problem(
            rd, where,
            "line item %zu: totalLossesAndAdjustments is %s but its stockAdjustments add up "
            "to %s (CREDIT quantities minus the others)",
            i, t, c);
        return;
    }
    reader_format_double(loss, losses);
    reader_format_double(other, adjustments);
    *derived = true;
}

static void requisition_line(struct reader_ctx *rd, struct report *r, const json_t *li, size_t i,
                             json_t *seen, size_t *n_reported, struct reasons *rs)
{
    char where[READER_WHERE_MAX];
    reader_where_fmt(where, "requisitionLineItems[%zu]", i);
    if (!json_is_object(li)) {
        reader_problem(rd, where, "a line item must be an object, not %s", reader_type_name(li));
        return;
    }
    if (json_is_true(json_object_get(li, "skipped")))
        return;
    (*n_reported)++;

    /* The item: orderable.productCode, else orderable.id. */
    const char *item = NULL;
    const json_t *orderable = json_object_get(li, "orderable");
    reader_where_fmt(where, "requisitionLineItems[%zu].orderable", i);
    if (!json_is_object(orderable)) {
        reader_problem(rd, where, "orderable is required (an object with productCode or id)");
    } else {
        const char *code, *id;
        char w2[READER_WHERE_MAX];
        reader_where_fmt(w2, "requisitionLineItems[%zu].orderable.productCode", i);
        bool ok =
            reader_get_string(rd, orderable, "productCode", w2, false, READER_CODE_MAX, &code);
        reader_where_fmt(w2, "requisitionLineItems[%zu].orderable.id", i);
        ok = reader_get_string(rd, orderable, "id", w2, false, READER_CODE_MAX, &id) && ok;
        item = code != NULL && *code != '\0' ? code : id;
        if (ok && (item == NULL || *item == '\0'))
            reader_problem(rd, where, "orderable has neither productCode nor id");
        if (item != NULL && *item == '\0')
            item = NULL;
        if (item != NULL)
            reader_check_duplicate(rd, seen, item, "orderable", where);
    }

    const char *remarks;
    reader_where_fmt(where, "requisitionLineItems[%zu].remarks", i);
    reader_get_string(rd, li, "remarks", where, false, READER_TEXT_MAX, &remarks);

    /* Collect by canonical measure, then add in the canonical order. */
    char vals[8][READER_NUMBER_MAX];
    char wheres[8][READER_WHERE_MAX];
    memset(vals, 0, sizeof vals);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        const json_t *j = json_object_get(li, requisition_columns[c].key);
        if (j == NULL || json_is_null(j))
            continue;
        reader_where_fmt(where, "requisitionLineItems[%zu].%s", i, requisition_columns[c].key);
        if (!json_is_number(j)) {
            reader_problem(rd, where, "%s must be a number, not %s", requisition_columns[c].key,
                           reader_type_name(j));
            continue;
        }
        for (size_t m = 0; m < 8; m++)
            if (strcmp(REPORT_MEASURES[m], requisition_columns[c].measure) == 0) {
                reader_format_number(j, vals[m]);
                memcpy(wheres[m], where, READER_WHERE_MAX);
            }
    }
    char losses[READER_NUMBER_MAX], adjustments[READER_NUMBER_MAX];
    bool derived;
    requisition_adjustments(rd, li, i, rs, losses, adjustments, &derived);
    for (size_t m = 0; m < 8; m++) {
        if (strcmp(REPORT_MEASURES[m], "losses") == 0 && losses[0] != '\0') {
            memcpy(vals[m], losses, READER_NUMBER_MAX);
            reader_where_fmt(wheres[m], "requisitionLineItems[%zu].stockAdjustments", i);
        } else if (strcmp(REPORT_MEASURES[m], "adjustments") == 0 && adjustments[0] != '\0') {
            memcpy(vals[m], adjustments, READER_NUMBER_MAX);
            reader_where_fmt(wheres[m], "requisitionLineItems[%zu].%s", i,
                             derived ? "stockAdjustments" : "totalLossesAndAdjustments");
        }
    }
    if (item == NULL)
        return;
    for (size_t m = 0; m < 8; m++)
        if (vals[m][0] != '\0')
            reader_add_value(rd, r, item, REPORT_MEASURES[m], vals[m], remarks, wheres[m]);
}

void reader_read_requisition(struct reader_ctx *rd, struct report *r, const json_t *root)
{
    const char *s;
    if (reader_get_string(rd, root, "id", "id", false, READER_CODE_MAX, &s))
        reader_set_field(rd, &r->source_id, s);

    /* Facility: facility.code, else facility.id, else facilityId. */
    const json_t *fac = json_object_get(root, "facility");
    const char *code = NULL, *id = NULL, *fid = NULL;
    if (fac != NULL && !json_is_null(fac)) {
        if (!json_is_object(fac)) {
            reader_problem(rd, "facility", "facility must be an object, not %s",
                           reader_type_name(fac));
        } else {
            reader_get_string(rd, fac, "code", "facility.code", false, READER_CODE_MAX, &code);
            reader_get_string(rd, fac, "id", "facility.id", false, READER_CODE_MAX, &id);
        }
    }
    reader_get_string(rd, root, "facilityId", "facilityId", false, READER_CODE_MAX, &fid);
    const char *facility = code && *code ? code : id && *id ? id : fid && *fid ? fid : NULL;
    if (facility == NULL)
        reader_problem(rd, "facility",
                       "no facility: expected facility.code, facility.id or facilityId");
    else
        reader_set_field(rd, &r->org_unit, facility);

    /* v1 (RequisitionDto) expands the processing period with its dates; v2
     * (requisitionV2.json) gives a reference {id, href}, which the mapping's periods:
     * table translates to a DHIS2 period. */
    const json_t *pp = json_object_get(root, "processingPeriod");
    const char *pid = NULL;
    if (!json_is_object(pp))
        reader_problem(
            rd, "processingPeriod",
            "processingPeriod is required (an object with startDate and endDate, or an id "
            "the mapping's periods: translates)");
    else if (json_object_get(pp, "startDate") == NULL && json_object_get(pp, "endDate") == NULL &&
             reader_get_string(rd, pp, "id", "processingPeriod.id", false, READER_CODE_MAX, &pid) &&
             pid != NULL && *pid != '\0')
        reader_set_field(rd, &r->source_period, pid);
    else
        reader_read_date_range(rd, r, pp, "startDate", "endDate", "processingPeriod");

    const json_t *items = json_object_get(root, "requisitionLineItems");
    if (!json_is_array(items)) {
        reader_problem(rd, "requisitionLineItems", "requisitionLineItems is required (an array)");
        return;
    }
    if (json_array_size(items) == 0) {
        reader_problem(rd, "requisitionLineItems", "requisitionLineItems is empty");
        return;
    }
    json_t *seen = json_object();
    if (seen == NULL) {
        rd->nomem = true;
        return;
    }
    struct reasons rs;
    requisition_reasons(rd, root, &rs);
    size_t reported = 0;
    for (size_t i = 0; i < json_array_size(items) && !rd->nomem && !reader_out_of_cpu(rd); i++)
        requisition_line(rd, r, json_array_get(items, i), i, seen, &reported, &rs);
    reasons_free(&rs);
    json_decref(seen);
    if (reported == 0)
        reader_problem(rd, "requisitionLineItems", "every line item is skipped: nothing to report");
}
