/*
 * readers.c - payload formats in (see hibus/readers.h and docs/formats.md): each
 * reader turns one body into a canonical report, or lists every problem it found.
 *
 *   lmis-report           hibus's own R&R-style JSON (docs/lmis-report.schema.json)
 *   openlmis-requisition  an OpenLMIS v3 requisition (FORMATS.md section 5)
 *   dhis2-json            a DHIS2 dataValueSet in the source's codes
 *   adx                   ADX XML, urn:ihe:qrph:adx:2015
 *
 * Invariants:
 * - A reader never stops at the first problem: it walks the whole payload and adds
 *   one {"stage":"reader","message":...,"where":...} per problem (at most
 *   MAX_PROBLEMS, then a note that more were left out). Any problem means
 *   HIBUS_E_INVALID and no report.
 * - "where" is a path into the payload: JSON positions are dotted with 0-based
 *   indexes ("lines[2].consumed", as in a JSON pointer and DHIS2's rejectedIndexes);
 *   XML positions are XPath-like with 1-based indexes ("group[1]/dataValue[3]@value").
 *   Problems about the bytes themselves use "line L, column C".
 * - Bodies must be UTF-8 (a UTF-8 byte order mark is allowed). XML may not have a
 *   DOCTYPE: the parser is stopped when it meets one, before any declaration in it is
 *   read, so neither external entities (XXE) nor entity expansion bombs can happen.
 * - Numbers become text once, here: integers without ".0", reals with up to 15
 *   significant digits and no exponent for ordinary magnitudes.
 *
 * Thread-safe: all state is per call; libxml2 is initialised in reader_global_init()
 * and its error output is routed per parser context.
 */
#include "hibus/readers.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "hibus/period.h"

const char *const READER_NAMES[] = {"lmis-report", "openlmis-requisition", "dhis2-json", "adx",
                                    NULL};

#define MAX_PROBLEMS 100
#define WHERE_MAX 256
#define CODE_MAX 255   /* facility, commodity, data element, data set, ids */
#define TEXT_MAX 50000 /* values and comments (DHIS2 stores up to 50000 characters) */
#define NUMBER_MAX 64

#define ADX_NS "urn:ihe:qrph:adx:2015"

/* ------------------------------------------------------------------------------------
 * One parse: the problem list and helpers shared by all readers
 * ------------------------------------------------------------------------------------ */

struct rd {
    json_t *problems;
    size_t n; /* problems added by this parse */
    bool nomem;
};

static void problem(struct rd *rd, const char *where, const char *fmt, ...) HIBUS_PRINTF(3, 4);

static void problem(struct rd *rd, const char *where, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    rd->n++;
    if (rd->n > MAX_PROBLEMS + 1)
        return;
    if (rd->n == MAX_PROBLEMS + 1) {
        json_t *p =
            report_problem(rd->problems, "reader",
                           "more problems were found; only the first %d are listed", MAX_PROBLEMS);
        if (p == NULL)
            rd->nomem = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *p = report_problem(rd->problems, "reader", "%s", msg);
    if (p == NULL || (where != NULL && json_object_set_new(p, "where", json_string(where)) != 0))
        rd->nomem = true;
}

/* Formats a position. Positions quote user-supplied keys, so they may be long: a cut
 * one ends in "..." (it is a label in a message, never data). */
static void where_fmt(char *buf, const char *fmt, ...) HIBUS_PRINTF(2, 3);

static void where_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, WHERE_MAX, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
    else if (n >= WHERE_MAX)
        memcpy(buf + WHERE_MAX - 4, "...", 4);
}

static void add_value(struct rd *rd, struct report *r, const char *item, const char *measure,
                      const char *value, const char *comment, const char *where)
{
    if (report_add(r, item, measure, value, comment, where) == NULL)
        rd->nomem = true;
}

static void set_field(struct rd *rd, char **field, const char *s)
{
    if (!report_set(field, s))
        rd->nomem = true;
}

/* Line and column (1-based, in characters) of byte offset off. */
static void line_col(const unsigned char *s, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if ((s[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

/* Offset of the first byte that is not part of well-formed UTF-8 (no overlong forms,
 * no surrogates, nothing above U+10FFFF), or len if all of it is. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += n + 1;
    }
    return len;
}

/* Checks the encoding of a body. Returns false (with a problem) when it is empty,
 * UTF-16/32 or not UTF-8; on success *skip is the length of a UTF-8 BOM (0 or 3). */
static bool check_utf8(struct rd *rd, const unsigned char *s, size_t len, const char *what,
                       size_t *skip)
{
    *skip = 0;
    if (len == 0) {
        problem(rd, "body", "the body is empty: expected %s", what);
        return false;
    }
    if (len >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF))) {
        problem(rd, "body", "the body is UTF-16 or UTF-32 encoded: send %s in UTF-8", what);
        return false;
    }
    if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        *skip = 3;
    size_t bad = utf8_invalid_at(s, len);
    if (bad < len) {
        int line, col;
        char where[WHERE_MAX];
        line_col(s, bad, &line, &col);
        where_fmt(where, "line %d, column %d", line, col);
        problem(rd, where,
                "the body is not valid UTF-8 (byte 0x%02X at line %d, column %d): send %s in "
                "UTF-8",
                s[bad], line, col, what);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------
 * Numbers as text
 * ------------------------------------------------------------------------------------ */

/* Strips trailing zeros of a fraction, and the point itself if nothing is left. */
static void strip_zeros(char *buf)
{
    if (strchr(buf, '.') == NULL)
        return;
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '.')
        buf[--n] = '\0';
}

/* A finite double as text: "12", "0.5", "0.00001", "1000000000000000"; exponent form
 * only outside 1e-9 .. 1e21. */
static void format_double(double d, char buf[NUMBER_MAX])
{
    if (d == 0) {
        snprintf(buf, NUMBER_MAX, "0");
        return;
    }
    snprintf(buf, NUMBER_MAX, "%.15g", d);
    double mag = fabs(d);
    if (strchr(buf, 'e') != NULL && mag >= 1e-9 && mag < 1e21) {
        int exp10 = (int)floor(log10(mag));
        int prec = 15 - 1 - exp10;
        if (prec < 0)
            prec = 0;
        snprintf(buf, NUMBER_MAX, "%.*f", prec, d);
        strip_zeros(buf);
    }
}

static void format_number(const json_t *j, char buf[NUMBER_MAX])
{
    if (json_is_integer(j))
        snprintf(buf, NUMBER_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else
        format_double(json_real_value(j), buf);
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------------------
 * JSON helpers
 * ------------------------------------------------------------------------------------ */

static json_t *load_json(struct rd *rd, const void *body, size_t len, const char *what)
{
    size_t skip;
    if (!check_utf8(rd, body, len, what, &skip))
        return NULL;
    json_error_t e;
    json_t *root = json_loadb((const char *)body + skip, len - skip, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL) {
        char where[WHERE_MAX];
        where_fmt(where, "line %d, column %d", e.line, e.column);
        problem(rd, where, "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        problem(rd, "body", "the body must be %s, not %s", what, type_name(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A string member. Returns true and sets *out (borrowed; NULL when absent or null)
 * when it is absent, null or a valid string; otherwise adds a problem. */
static bool get_string(struct rd *rd, const json_t *obj, const char *key, const char *where,
                       bool required, size_t max, const char **out)
{
    const json_t *j = json_object_get(obj, key);
    *out = NULL;
    if (j == NULL || json_is_null(j)) {
        if (required) {
            problem(rd, where, "%s is required", key);
            return false;
        }
        return true;
    }
    if (!json_is_string(j)) {
        problem(rd, where, "%s must be a string, not %s", key, type_name(j));
        return false;
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (strlen(s) != n) {
        problem(rd, where, "%s contains a NUL character", key);
        return false;
    }
    if (required && n == 0) {
        problem(rd, where, "%s must not be empty", key);
        return false;
    }
    if (n > max) {
        problem(rd, where, "%s is too long (%zu bytes, at most %zu)", key, n, max);
        return false;
    }
    *out = s;
    return true;
}

/* Sets period_start/end from two dates, and period when they span one whole
 * calendar month (the mapping derives other period types from the dates). */
static void set_period(struct rd *rd, struct report *r, struct period_date start,
                       struct period_date end)
{
    char s[11], e[11];
    struct period m;
    period_date_format(start, s);
    period_date_format(end, e);
    set_field(rd, &r->period_start, s);
    set_field(rd, &r->period_end, e);
    if (period_containing(PERIOD_MONTHLY, start, &m) && m.start.day == start.day &&
        m.end.year == end.year && m.end.month == end.month && m.end.day == end.day)
        set_field(rd, &r->period, m.id);
}

/* Reads {start_key, end_key} date strings of obj into a period. */
static void read_date_range(struct rd *rd, struct report *r, const json_t *obj,
                            const char *start_key, const char *end_key, const char *prefix)
{
    char where[WHERE_MAX];
    const char *keys[2] = {start_key, end_key};
    struct period_date d[2];
    bool ok = true;
    for (int i = 0; i < 2; i++) {
        const char *s;
        where_fmt(where, "%s.%s", prefix, keys[i]);
        if (!get_string(rd, obj, keys[i], where, true, CODE_MAX, &s)) {
            ok = false;
        } else if (!period_date_parse(s, &d[i])) {
            problem(rd, where, "%s \"%.40s\" is not a valid date (expected YYYY-MM-DD)", keys[i],
                    s);
            ok = false;
        }
    }
    if (!ok)
        return;
    char s0[11], s1[11];
    period_date_format(d[0], s0);
    period_date_format(d[1], s1);
    if (strcmp(s0, s1) > 0) {
        where_fmt(where, "%s.%s", prefix, end_key);
        problem(rd, where, "the period ends (%s) before it starts (%s)", s1, s0);
        return;
    }
    set_period(rd, r, d[0], d[1]);
}

/* Remembers item codes already seen in a list; a repeat is a problem. */
static void check_duplicate(struct rd *rd, json_t *seen, const char *code, const char *what,
                            const char *where)
{
    const json_t *first = json_object_get(seen, code);
    if (first != NULL) {
        problem(rd, where, "%s \"%.100s\" appears more than once (first at %s)", what, code,
                json_string_value(first));
        return;
    }
    if (json_object_set_new(seen, code, json_string(where)) != 0)
        rd->nomem = true;
}

/* ------------------------------------------------------------------------------------
 * lmis-report
 * ------------------------------------------------------------------------------------ */

static void lmis_period(struct rd *rd, struct report *r, const json_t *j)
{
    if (j == NULL || json_is_null(j)) {
        problem(rd, "period", "period is required");
        return;
    }
    if (json_is_string(j)) {
        /* "YYYY-MM": one calendar month. */
        const char *s = json_string_value(j);
        char id[8];
        struct period p;
        if (strlen(s) != 7 || s[4] != '-') {
            problem(rd, "period",
                    "period \"%.40s\" is not a month: expected \"YYYY-MM\" or an object "
                    "{\"start\", \"end\"}",
                    s);
            return;
        }
        snprintf(id, sizeof id, "%.4s%.2s", s, s + 5);
        if (!period_parse(id, &p) || p.type != PERIOD_MONTHLY) {
            problem(rd, "period", "period \"%s\" is not a valid month (expected \"YYYY-MM\")", s);
            return;
        }
        set_period(rd, r, p.start, p.end);
        return;
    }
    if (!json_is_object(j)) {
        problem(rd, "period",
                "period must be \"YYYY-MM\" or an object {\"start\", \"end\"}, not %s",
                type_name(j));
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "start") != 0 && strcmp(key, "end") != 0) {
            char where[WHERE_MAX];
            where_fmt(where, "period.%s", key);
            problem(rd, where, "unknown key \"%.64s\" in period (expected start and end)", key);
        }
    }
    read_date_range(rd, r, j, "start", "end", "period");
}

static void lmis_line(struct rd *rd, struct report *r, const json_t *line, size_t i, json_t *seen)
{
    char where[WHERE_MAX];
    where_fmt(where, "lines[%zu]", i);
    if (!json_is_object(line)) {
        problem(rd, where, "a line must be an object, not %s", type_name(line));
        return;
    }

    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)line, key, v)
    {
        if (strcmp(key, "commodity") != 0 && strcmp(key, "comment") != 0 &&
            !report_is_measure(key)) {
            where_fmt(where, "lines[%zu].%s", i, key);
            problem(rd, where,
                    "unknown key \"%.64s\" in a line; a line has commodity, comment and the "
                    "measures opening_balance, received, consumed, losses, adjustments, "
                    "stock_on_hand, stockout_days, requested",
                    key);
        }
    }

    const char *commodity, *comment;
    where_fmt(where, "lines[%zu].commodity", i);
    bool have_item = get_string(rd, line, "commodity", where, true, CODE_MAX, &commodity);
    if (have_item)
        check_duplicate(rd, seen, commodity, "commodity", where);
    where_fmt(where, "lines[%zu].comment", i);
    get_string(rd, line, "comment", where, false, TEXT_MAX, &comment);

    /* Values in the canonical order, whatever the order of keys in the payload. */
    for (size_t m = 0; REPORT_MEASURES[m] != NULL; m++) {
        const char *measure = REPORT_MEASURES[m];
        const json_t *j = json_object_get(line, measure);
        if (j == NULL || json_is_null(j))
            continue;
        where_fmt(where, "lines[%zu].%s", i, measure);
        if (!json_is_number(j)) {
            problem(rd, where, "%s must be a number, not %s", measure, type_name(j));
            continue;
        }
        char num[NUMBER_MAX];
        format_number(j, num);
        if (have_item)
            add_value(rd, r, commodity, measure, num, comment, where);
    }
}

static void read_lmis_report(struct rd *rd, struct report *r, const json_t *root)
{
    const char *s;
    if (get_string(rd, root, "report_id", "report_id", false, CODE_MAX, &s))
        set_field(rd, &r->source_id, s);
    if (get_string(rd, root, "facility", "facility", true, CODE_MAX, &s))
        set_field(rd, &r->org_unit, s);
    if (get_string(rd, root, "data_set", "data_set", false, CODE_MAX, &s))
        set_field(rd, &r->data_set, s);
    get_string(rd, root, "program", "program", false, CODE_MAX, &s);
    get_string(rd, root, "submitted_at", "submitted_at", false, CODE_MAX, &s);
    lmis_period(rd, r, json_object_get(root, "period"));

    const json_t *lines = json_object_get(root, "lines");
    if (lines == NULL || json_is_null(lines)) {
        problem(rd, "lines", "lines is required");
        return;
    }
    if (!json_is_array(lines)) {
        problem(rd, "lines", "lines must be an array, not %s", type_name(lines));
        return;
    }
    if (json_array_size(lines) == 0) {
        problem(rd, "lines", "lines is empty: a report needs at least one line");
        return;
    }
    json_t *seen = json_object();
    if (seen == NULL) {
        rd->nomem = true;
        return;
    }
    for (size_t i = 0; i < json_array_size(lines); i++)
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

/* losses and adjustments of one line item. When every stockAdjustments entry carries
 * reason.reasonType, losses = the sum of DEBIT quantities and adjustments =
 * totalLossesAndAdjustments + losses (total computed from the entries when absent);
 * otherwise there is no losses value and adjustments = totalLossesAndAdjustments. */
static void requisition_adjustments(struct rd *rd, const json_t *li, size_t i, char *losses,
                                    char *adjustments)
{
    char where[WHERE_MAX];
    losses[0] = adjustments[0] = '\0';

    const json_t *total = json_object_get(li, "totalLossesAndAdjustments");
    if (total != NULL && !json_is_null(total) && !json_is_number(total)) {
        where_fmt(where, "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        problem(rd, where, "totalLossesAndAdjustments must be a number, not %s", type_name(total));
        return;
    }
    bool have_total = total != NULL && json_is_number(total);

    const json_t *adj = json_object_get(li, "stockAdjustments");
    size_t typed = 0, n = 0;
    double debit = 0, credit = 0;
    bool ok = true;
    if (adj != NULL && !json_is_null(adj)) {
        where_fmt(where, "requisitionLineItems[%zu].stockAdjustments", i);
        if (!json_is_array(adj)) {
            problem(rd, where, "stockAdjustments must be an array, not %s", type_name(adj));
            return;
        }
        n = json_array_size(adj);
        for (size_t k = 0; k < n; k++) {
            const json_t *a = json_array_get(adj, k);
            where_fmt(where, "requisitionLineItems[%zu].stockAdjustments[%zu]", i, k);
            if (!json_is_object(a)) {
                problem(rd, where, "a stock adjustment must be an object, not %s", type_name(a));
                ok = false;
                continue;
            }
            const json_t *q = json_object_get(a, "quantity");
            if (!json_is_number(q)) {
                where_fmt(where, "requisitionLineItems[%zu].stockAdjustments[%zu].quantity", i, k);
                problem(rd, where, "quantity must be a number, not %s",
                        q ? type_name(q) : "missing");
                ok = false;
                continue;
            }
            const json_t *reason = json_object_get(a, "reason");
            const json_t *rt =
                json_is_object(reason) ? json_object_get(reason, "reasonType") : NULL;
            if (rt == NULL)
                continue;
            typed++;
            const char *t = json_string_value(rt);
            if (t != NULL && strcmp(t, "DEBIT") == 0) {
                debit += json_number_value(q);
            } else if (t != NULL && strcmp(t, "CREDIT") == 0) {
                credit += json_number_value(q);
            } else {
                where_fmt(where,
                          "requisitionLineItems[%zu].stockAdjustments[%zu].reason.reasonType", i,
                          k);
                problem(rd, where, "reasonType must be \"DEBIT\" or \"CREDIT\"");
                ok = false;
            }
        }
    }
    if (!ok)
        return;
    if (typed > 0 && typed < n) {
        where_fmt(where, "requisitionLineItems[%zu].stockAdjustments", i);
        problem(rd, where,
                "%zu of %zu stock adjustments have a reason.reasonType: either all or none "
                "must have one, to tell losses from other adjustments",
                typed, n);
        return;
    }
    if (typed > 0) {
        double net = have_total ? json_number_value(total) : credit - debit;
        format_double(debit, losses);
        format_double(net + debit, adjustments);
    } else if (have_total) {
        format_number(total, adjustments);
    }
}

static void requisition_line(struct rd *rd, struct report *r, const json_t *li, size_t i,
                             json_t *seen, size_t *n_reported)
{
    char where[WHERE_MAX];
    where_fmt(where, "requisitionLineItems[%zu]", i);
    if (!json_is_object(li)) {
        problem(rd, where, "a line item must be an object, not %s", type_name(li));
        return;
    }
    if (json_is_true(json_object_get(li, "skipped")))
        return;
    (*n_reported)++;

    /* The item: orderable.productCode, else orderable.id. */
    const char *item = NULL;
    const json_t *orderable = json_object_get(li, "orderable");
    where_fmt(where, "requisitionLineItems[%zu].orderable", i);
    if (!json_is_object(orderable)) {
        problem(rd, where, "orderable is required (an object with productCode or id)");
    } else {
        const char *code, *id;
        char w2[WHERE_MAX];
        where_fmt(w2, "requisitionLineItems[%zu].orderable.productCode", i);
        bool ok = get_string(rd, orderable, "productCode", w2, false, CODE_MAX, &code);
        where_fmt(w2, "requisitionLineItems[%zu].orderable.id", i);
        ok = get_string(rd, orderable, "id", w2, false, CODE_MAX, &id) && ok;
        item = code != NULL && *code != '\0' ? code : id;
        if (ok && (item == NULL || *item == '\0'))
            problem(rd, where, "orderable has neither productCode nor id");
        if (item != NULL && *item == '\0')
            item = NULL;
        if (item != NULL)
            check_duplicate(rd, seen, item, "orderable", where);
    }

    const char *remarks;
    where_fmt(where, "requisitionLineItems[%zu].remarks", i);
    get_string(rd, li, "remarks", where, false, TEXT_MAX, &remarks);

    /* Collect by canonical measure, then add in the canonical order. */
    char vals[8][NUMBER_MAX];
    char wheres[8][WHERE_MAX];
    memset(vals, 0, sizeof vals);
    for (size_t c = 0; c < N_COLUMNS; c++) {
        const json_t *j = json_object_get(li, requisition_columns[c].key);
        if (j == NULL || json_is_null(j))
            continue;
        where_fmt(where, "requisitionLineItems[%zu].%s", i, requisition_columns[c].key);
        if (!json_is_number(j)) {
            problem(rd, where, "%s must be a number, not %s", requisition_columns[c].key,
                    type_name(j));
            continue;
        }
        for (size_t m = 0; m < 8; m++)
            if (strcmp(REPORT_MEASURES[m], requisition_columns[c].measure) == 0) {
                format_number(j, vals[m]);
                memcpy(wheres[m], where, WHERE_MAX);
            }
    }
    char losses[NUMBER_MAX], adjustments[NUMBER_MAX];
    requisition_adjustments(rd, li, i, losses, adjustments);
    for (size_t m = 0; m < 8; m++) {
        if (strcmp(REPORT_MEASURES[m], "losses") == 0 && losses[0] != '\0') {
            memcpy(vals[m], losses, NUMBER_MAX);
            where_fmt(wheres[m], "requisitionLineItems[%zu].stockAdjustments", i);
        } else if (strcmp(REPORT_MEASURES[m], "adjustments") == 0 && adjustments[0] != '\0') {
            memcpy(vals[m], adjustments, NUMBER_MAX);
            where_fmt(wheres[m], "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        }
    }
    if (item == NULL)
        return;
    for (size_t m = 0; m < 8; m++)
        if (vals[m][0] != '\0')
            add_value(rd, r, item, REPORT_MEASURES[m], vals[m], remarks, wheres[m]);
}

static void read_requisition(struct rd *rd, struct report *r, const json_t *root)
{
    const char *s;
    if (get_string(rd, root, "id", "id", false, CODE_MAX, &s))
        set_field(rd, &r->source_id, s);

    /* Facility: facility.code, else facility.id, else facilityId. */
    const json_t *fac = json_object_get(root, "facility");
    const char *code = NULL, *id = NULL, *fid = NULL;
    if (fac != NULL && !json_is_null(fac)) {
        if (!json_is_object(fac)) {
            problem(rd, "facility", "facility must be an object, not %s", type_name(fac));
        } else {
            get_string(rd, fac, "code", "facility.code", false, CODE_MAX, &code);
            get_string(rd, fac, "id", "facility.id", false, CODE_MAX, &id);
        }
    }
    get_string(rd, root, "facilityId", "facilityId", false, CODE_MAX, &fid);
    const char *facility = code && *code ? code : id && *id ? id : fid && *fid ? fid : NULL;
    if (facility == NULL)
        problem(rd, "facility", "no facility: expected facility.code, facility.id or facilityId");
    else
        set_field(rd, &r->org_unit, facility);

    const json_t *pp = json_object_get(root, "processingPeriod");
    if (!json_is_object(pp))
        problem(rd, "processingPeriod",
                "processingPeriod is required (an object with startDate and endDate)");
    else
        read_date_range(rd, r, pp, "startDate", "endDate", "processingPeriod");

    const json_t *items = json_object_get(root, "requisitionLineItems");
    if (!json_is_array(items)) {
        problem(rd, "requisitionLineItems", "requisitionLineItems is required (an array)");
        return;
    }
    if (json_array_size(items) == 0) {
        problem(rd, "requisitionLineItems", "requisitionLineItems is empty");
        return;
    }
    json_t *seen = json_object();
    if (seen == NULL) {
        rd->nomem = true;
        return;
    }
    size_t reported = 0;
    for (size_t i = 0; i < json_array_size(items); i++)
        requisition_line(rd, r, json_array_get(items, i), i, seen, &reported);
    json_decref(seen);
    if (reported == 0)
        problem(rd, "requisitionLineItems", "every line item is skipped: nothing to report");
}

/* ------------------------------------------------------------------------------------
 * dhis2-json
 * ------------------------------------------------------------------------------------ */

static bool valid_period_id(struct rd *rd, const char *id, const char *where)
{
    struct period p;
    if (period_parse(id, &p))
        return true;
    problem(rd, where, "\"%.40s\" is not a DHIS2 period id (such as 202401, 2024Q1, 2024W1)", id);
    return false;
}

static void dhis2_value(struct rd *rd, struct report *r, const json_t *dv, size_t i,
                        const char *set_period, const char *set_ou, const char *set_aoc)
{
    char where[WHERE_MAX], w[WHERE_MAX];
    where_fmt(where, "dataValues[%zu]", i);
    if (!json_is_object(dv)) {
        problem(rd, where, "a data value must be an object, not %s", type_name(dv));
        return;
    }
    const char *de, *coc, *pe, *ou, *aoc, *comment;
    bool ok = true;
    where_fmt(w, "dataValues[%zu].dataElement", i);
    ok = get_string(rd, dv, "dataElement", w, true, CODE_MAX, &de) && ok;
    where_fmt(w, "dataValues[%zu].categoryOptionCombo", i);
    ok = get_string(rd, dv, "categoryOptionCombo", w, false, CODE_MAX, &coc) && ok;
    where_fmt(w, "dataValues[%zu].comment", i);
    ok = get_string(rd, dv, "comment", w, false, TEXT_MAX, &comment) && ok;

    where_fmt(w, "dataValues[%zu].period", i);
    if (!get_string(rd, dv, "period", w, false, CODE_MAX, &pe))
        ok = false;
    else if (pe != NULL && !valid_period_id(rd, pe, w))
        ok = false;
    else if (pe == NULL && set_period == NULL) {
        problem(rd, w, "no period: set one on the data value set or on each data value");
        ok = false;
    }
    where_fmt(w, "dataValues[%zu].orgUnit", i);
    if (!get_string(rd, dv, "orgUnit", w, false, CODE_MAX, &ou))
        ok = false;
    else if (ou == NULL && set_ou == NULL) {
        problem(rd, w, "no orgUnit: set one on the data value set or on each data value");
        ok = false;
    }
    /* The report carries one attribute option combo; a value that names another one
     * cannot be represented and is refused rather than silently moved. */
    where_fmt(w, "dataValues[%zu].attributeOptionCombo", i);
    if (!get_string(rd, dv, "attributeOptionCombo", w, false, CODE_MAX, &aoc))
        ok = false;
    else if (aoc != NULL && (set_aoc == NULL || strcmp(aoc, set_aoc) != 0)) {
        problem(rd, w,
                "attributeOptionCombo \"%.64s\" differs from the data value set's: a report has "
                "one attribute option combo",
                aoc);
        ok = false;
    }

    const json_t *v = json_object_get(dv, "value");
    char num[NUMBER_MAX];
    const char *value = NULL;
    where_fmt(w, "dataValues[%zu].value", i);
    if (v == NULL || json_is_null(v)) {
        problem(rd, w, "value is required");
        ok = false;
    } else if (json_is_number(v)) {
        format_number(v, num);
        value = num;
    } else if (json_is_boolean(v)) {
        value = json_is_true(v) ? "true" : "false";
    } else if (!get_string(rd, dv, "value", w, false, TEXT_MAX, &value)) {
        ok = false;
    }
    if (!ok)
        return;

    struct report_value *rv = report_add(r, de, coc, value, comment, where);
    if (rv == NULL) {
        rd->nomem = true;
        return;
    }
    /* Overrides only where they differ from the report's own period and org unit. */
    if (pe != NULL && (r->period == NULL || strcmp(pe, r->period) != 0))
        set_field(rd, &rv->period, pe);
    if (ou != NULL && (r->org_unit == NULL || strcmp(ou, r->org_unit) != 0))
        set_field(rd, &rv->org_unit, ou);
}

static void read_dhis2_json(struct rd *rd, struct report *r, const json_t *root)
{
    const char *ds, *pe, *ou, *aoc, *cd;
    if (get_string(rd, root, "dataSet", "dataSet", false, CODE_MAX, &ds))
        set_field(rd, &r->data_set, ds);
    if (get_string(rd, root, "completeDate", "completeDate", false, CODE_MAX, &cd))
        set_field(rd, &r->complete_date, cd);
    if (get_string(rd, root, "attributeOptionCombo", "attributeOptionCombo", false, CODE_MAX, &aoc))
        set_field(rd, &r->attribute_option_combo, aoc);
    /* A set-level period or orgUnit that is present but wrong is one problem, not one
     * more per data value: the values are then checked against "" (never matching). */
    if (!get_string(rd, root, "period", "period", false, CODE_MAX, &pe))
        pe = "";
    else if (pe != NULL && !valid_period_id(rd, pe, "period"))
        pe = "";
    if (!get_string(rd, root, "orgUnit", "orgUnit", false, CODE_MAX, &ou))
        ou = "";

    const json_t *dvs = json_object_get(root, "dataValues");
    if (dvs == NULL || json_is_null(dvs)) {
        problem(rd, "dataValues", "dataValues is required");
        return;
    }
    if (!json_is_array(dvs)) {
        problem(rd, "dataValues", "dataValues must be an array, not %s", type_name(dvs));
        return;
    }
    if (json_array_size(dvs) == 0) {
        problem(rd, "dataValues", "dataValues is empty");
        return;
    }

    /* The report's period and org unit: the set's, else the first data value's. */
    const char *rpe = pe && *pe ? pe : NULL, *rou = ou && *ou ? ou : NULL;
    for (size_t i = 0; i < json_array_size(dvs) && (rpe == NULL || rou == NULL); i++) {
        const json_t *dv = json_array_get(dvs, i);
        const char *s = json_string_value(json_object_get(dv, "period"));
        struct period p;
        if (rpe == NULL && s != NULL && period_parse(s, &p))
            rpe = s;
        s = json_string_value(json_object_get(dv, "orgUnit"));
        if (rou == NULL && s != NULL && *s != '\0' && strlen(s) <= CODE_MAX)
            rou = s;
    }
    if (rpe != NULL) {
        struct period p;
        char d[11];
        period_parse(rpe, &p);
        set_field(rd, &r->period, p.id);
        period_date_format(p.start, d);
        set_field(rd, &r->period_start, d);
        period_date_format(p.end, d);
        set_field(rd, &r->period_end, d);
    }
    set_field(rd, &r->org_unit, rou);

    for (size_t i = 0; i < json_array_size(dvs); i++)
        dhis2_value(rd, r, json_array_get(dvs, i), i, pe, ou, aoc);
}

/* ------------------------------------------------------------------------------------
 * adx
 * ------------------------------------------------------------------------------------ */

struct xml_state {
    struct rd *rd;
    bool dtd; /* a DOCTYPE or entity declaration was met */
    int dtd_line;
    int n_errors; /* libxml2 errors turned into problems */
};

/* libxml2 errors of one parse, routed through the context (never to stderr). */
static void xml_error(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = data;
    struct xml_state *st = ctxt->_private;
    if (st == NULL || st->dtd || e == NULL || e->level == XML_ERR_WARNING)
        return;
    if (++st->n_errors > 10)
        return;
    char msg[512];
    hibus_strlcpy(msg, e->message ? e->message : "unknown error", sizeof msg);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    char where[WHERE_MAX];
    where_fmt(where, "line %d", e->line);
    problem(st->rd, where, "invalid XML at line %d: %s", e->line, msg);
}

/* Any DOCTYPE stops the parser before its declarations are read: hibus needs no DTD,
 * and refusing them outright closes XXE, entity bombs and external DTD loading. */
static void xml_refuse_dtd(xmlParserCtxtPtr ctxt)
{
    struct xml_state *st = ctxt->_private;
    if (!st->dtd) {
        st->dtd = true;
        st->dtd_line = ctxt->input != NULL ? ctxt->input->line : 0;
    }
    xmlStopParser(ctxt);
}

static void xml_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                                const xmlChar *sys_id)
{
    (void)name;
    (void)ext_id;
    (void)sys_id;
    xml_refuse_dtd(ctx);
}

static void xml_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                            const xmlChar *system_id, xmlChar *content)
{
    (void)name;
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    xml_refuse_dtd(ctx);
}

static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static bool is_adx(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && n->ns != NULL &&
           xmlStrEqual(n->ns->href, BAD_CAST ADX_NS) && xmlStrEqual(n->name, BAD_CAST name);
}

/* An attribute without namespace, as a new string (xmlFree) or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
    return (char *)xmlGetNoNsProp(n, BAD_CAST name);
}

/* Reads a required attribute: a problem when missing, empty or too long. */
static char *required_attr(struct rd *rd, const xmlNode *n, const char *name, const char *elem)
{
    char where[WHERE_MAX];
    char *v = attr(n, name);
    where_fmt(where, "%s@%s", elem, name);
    if (v == NULL || *v == '\0') {
        problem(rd, where, "attribute %s is required", name);
    } else if (strlen(v) > (strcmp(name, "value") == 0 ? TEXT_MAX : CODE_MAX)) {
        problem(rd, where, "attribute %s is too long (%zu bytes)", name, strlen(v));
    } else {
        return v;
    }
    xmlFree(v);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ADX disaggregation of an element: the explicit categoryOptionCombo attribute, else
 * every other un-namespaced attribute not in skip[] as "CATEGORY=OPTION" pairs sorted by
 * name and joined with ",", else NULL. Caller frees. */
static char *disaggregation(struct rd *rd, const xmlNode *n, const char *const *skip,
                            const char *explicit_name)
{
    char *explicit = attr(n, explicit_name);
    if (explicit != NULL) {
        char *c = strdup(explicit);
        xmlFree(explicit);
        if (c == NULL)
            rd->nomem = true;
        return c;
    }
    char *pairs[64];
    size_t np = 0, total = 0;
    for (const xmlAttr *a = n->properties; a != NULL; a = a->next) {
        if (a->ns != NULL)
            continue;
        bool skipped = false;
        for (size_t k = 0; skip[k] != NULL; k++)
            if (xmlStrEqual(a->name, BAD_CAST skip[k]))
                skipped = true;
        if (skipped)
            continue;
        if (np == sizeof pairs / sizeof pairs[0]) {
            problem(rd, NULL, "too many category attributes on one element (at most 64)");
            break;
        }
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        size_t len = strlen((const char *)a->name) + 1 + (v ? strlen((const char *)v) : 0) + 1;
        pairs[np] = malloc(len);
        if (pairs[np] == NULL) {
            xmlFree(v);
            rd->nomem = true;
            break;
        }
        snprintf(pairs[np], len, "%s=%s", (const char *)a->name, v ? (const char *)v : "");
        xmlFree(v);
        total += len;
        np++;
    }
    char *out = NULL;
    if (np > 0 && !rd->nomem) {
        qsort(pairs, np, sizeof pairs[0], cmp_str);
        out = malloc(total);
        if (out == NULL) {
            rd->nomem = true;
        } else {
            out[0] = '\0';
            size_t off = 0;
            for (size_t k = 0; k < np; k++)
                off += (size_t)snprintf(out + off, total - off, "%s%s", k ? "," : "", pairs[k]);
        }
    }
    for (size_t k = 0; k < np; k++)
        free(pairs[k]);
    return out;
}

static const char *const group_attrs[] = {
    "orgUnit", "period", "dataSet", "completeDate", "attributeOptionCombo", NULL};
static const char *const value_attrs[] = {"dataElement", "value", "categoryOptionCombo", NULL};

/* Compares an optional string with the report's; a different one is a problem. */
static void same_as_first(struct rd *rd, const char *first, const char *got, const char *what,
                          const char *where)
{
    if ((first == NULL) != (got == NULL) || (first != NULL && strcmp(first, got) != 0))
        problem(rd, where,
                "%s \"%.64s\" differs from the first group's \"%.64s\": a report has one %s", what,
                got ? got : "", first ? first : "", what);
}

static void adx_value(struct rd *rd, struct report *r, const xmlNode *dv, const char *gw, size_t vi,
                      const char *ou, const char *pe)
{
    char where[WHERE_MAX];
    where_fmt(where, "%s/dataValue[%zu]", gw, vi);
    char *de = required_attr(rd, dv, "dataElement", where);
    char *value = required_attr(rd, dv, "value", where);
    char *measure = disaggregation(rd, dv, value_attrs, "categoryOptionCombo");
    char *comment = NULL;
    for (const xmlNode *c = dv->children; c != NULL; c = c->next) {
        if (is_adx(c, "annotation") && comment == NULL) {
            comment = (char *)xmlNodeGetContent(c);
        } else if (c->type == XML_ELEMENT_NODE) {
            char w[WHERE_MAX];
            where_fmt(w, "%s/%s", where, (const char *)c->name);
            problem(rd, w, "unexpected element %.64s in a dataValue", (const char *)c->name);
        }
    }
    if (comment != NULL && strlen(comment) > TEXT_MAX) {
        problem(rd, where, "the annotation is too long (%zu bytes)", strlen(comment));
    } else if (de != NULL && value != NULL) {
        struct report_value *v = report_add(r, de, measure, value, comment, where);
        if (v == NULL)
            rd->nomem = true;
        else if (r->org_unit != NULL && strcmp(ou, r->org_unit) != 0)
            set_field(rd, &v->org_unit, ou);
        if (v != NULL && r->period != NULL && strcmp(pe, r->period) != 0)
            set_field(rd, &v->period, pe);
    }
    xmlFree(de);
    xmlFree(value);
    xmlFree(comment);
    free(measure);
}

static void adx_group(struct rd *rd, struct report *r, const xmlNode *g, size_t gi, bool first)
{
    char gw[WHERE_MAX], where[WHERE_MAX];
    where_fmt(gw, "group[%zu]", gi);
    char *ou = required_attr(rd, g, "orgUnit", gw);
    char *adx_pe = required_attr(rd, g, "period", gw);
    char *ds = required_attr(rd, g, "dataSet", gw);
    char *cd = attr(g, "completeDate");
    char *aoc = disaggregation(rd, g, group_attrs, "attributeOptionCombo");
    struct period p;
    bool have_period = false;
    if (adx_pe != NULL) {
        where_fmt(where, "%s@period", gw);
        if (period_from_adx(adx_pe, &p))
            have_period = true;
        else
            problem(rd, where,
                    "invalid ADX period \"%.40s\": expected start/duration such as "
                    "2024-01-01/P1M, starting on the first day of such a period",
                    adx_pe);
    }

    if (first) {
        set_field(rd, &r->org_unit, ou);
        set_field(rd, &r->data_set, ds);
        set_field(rd, &r->complete_date, cd);
        set_field(rd, &r->attribute_option_combo, aoc);
        if (have_period) {
            char d[11];
            set_field(rd, &r->period, p.id);
            period_date_format(p.start, d);
            set_field(rd, &r->period_start, d);
            period_date_format(p.end, d);
            set_field(rd, &r->period_end, d);
        }
    } else {
        if (ds != NULL) {
            where_fmt(where, "%s@dataSet", gw);
            same_as_first(rd, r->data_set, ds, "data set", where);
        }
        where_fmt(where, "%s@attributeOptionCombo", gw);
        same_as_first(rd, r->attribute_option_combo, aoc, "attribute option combo", where);
    }

    size_t vi = 0;
    for (const xmlNode *c = g->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (is_adx(c, "dataValue")) {
            vi++;
            if (ou != NULL && have_period)
                adx_value(rd, r, c, gw, vi, ou, p.id);
            else {
                /* Still check the values, against placeholders that never match. */
                adx_value(rd, r, c, gw, vi, "", "");
            }
        } else {
            where_fmt(where, "%s/%s", gw, (const char *)c->name);
            problem(rd, where, "unexpected element %.64s in a group (expected dataValue)",
                    (const char *)c->name);
        }
    }
    xmlFree(ou);
    xmlFree(adx_pe);
    xmlFree(ds);
    xmlFree(cd);
    free(aoc);
}

static void read_adx(struct rd *rd, struct report *r, const void *body, size_t len)
{
    size_t skip;
    if (!check_utf8(rd, body, len, "ADX XML", &skip))
        return;
    if (len > INT32_MAX) {
        problem(rd, "body", "the body is too large for the XML parser");
        return;
    }

    /* Errors go to this context's handler; the generic channel (thread-local in
     * libxml2) is silenced on this thread so nothing reaches stderr. */
    xmlSetGenericErrorFunc(NULL, xml_silent);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        rd->nomem = true;
        return;
    }
    struct xml_state st = {.rd = rd};
    ctxt->_private = &st;
    ctxt->sax->serror = xml_error;
    ctxt->sax->internalSubset = xml_internal_subset;
    ctxt->sax->entityDecl = xml_entity_decl;
    ctxt->vctxt.error = xml_silent;
    ctxt->vctxt.warning = xml_silent;

    /* NONET: never fetch anything; no NOENT (no entity substitution), no DTDLOAD.
     * The encoding is forced to UTF-8: the bytes were checked above. */
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, body, (int)len, "body.xml", "UTF-8",
                                      XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOWARNING);
    if (st.dtd || (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL))) {
        char where[WHERE_MAX];
        where_fmt(where, "line %d", st.dtd_line ? st.dtd_line : 1);
        problem(rd, where, "DTDs and entities are not accepted: remove the <!DOCTYPE ...>");
        goto done;
    }
    if (doc == NULL) {
        if (st.n_errors == 0)
            problem(rd, "body", "the body is not well-formed XML");
        goto done;
    }
    if (st.n_errors > 0)
        goto done;

    const xmlNode *root = xmlDocGetRootElement(doc);
    if (root == NULL || !is_adx(root, "adx")) {
        char found[WHERE_MAX];
        where_fmt(found, "%s%s%s%s", root && root->ns ? "{" : "",
                  root && root->ns ? (const char *)root->ns->href : "", root && root->ns ? "}" : "",
                  root ? (const char *)root->name : "nothing");
        problem(rd, "adx", "the root element must be adx in namespace " ADX_NS " (found %s)",
                found);
        goto done;
    }

    size_t gi = 0;
    for (const xmlNode *g = root->children; g != NULL; g = g->next) {
        if (g->type != XML_ELEMENT_NODE)
            continue;
        if (is_adx(g, "group")) {
            gi++;
            adx_group(rd, r, g, gi, gi == 1);
        } else {
            char where[WHERE_MAX];
            where_fmt(where, "%s", (const char *)g->name);
            problem(rd, where, "unexpected element %.64s in adx (expected group)",
                    (const char *)g->name);
        }
    }
    if (gi == 0)
        problem(rd, "adx", "the document has no group");
    else if (r->n_values == 0 && rd->n == 0)
        problem(rd, "adx", "the document has no dataValue");

done:
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
}

/* ------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------ */

void reader_global_init(void)
{
    xmlInitParser();
    xmlSetGenericErrorFunc(NULL, xml_silent);
}

void reader_global_cleanup(void)
{
    xmlCleanupParser();
}

bool reader_known(const char *name)
{
    for (size_t i = 0; name != NULL && READER_NAMES[i] != NULL; i++)
        if (strcmp(name, READER_NAMES[i]) == 0)
            return true;
    return false;
}

enum hibus_err reader_parse(const char *name, const void *body, size_t len, struct report **out,
                            json_t *problems)
{
    json_t *own = NULL;
    if (problems == NULL && (problems = own = json_array()) == NULL)
        return HIBUS_E_NOMEM;
    struct rd rd = {.problems = problems};
    if (!reader_known(name)) {
        report_problem(problems, "reader", "unknown reader \"%s\"", name ? name : "(null)");
        json_decref(own);
        return HIBUS_E_UNSUPPORTED;
    }
    struct report *r = report_new(name);
    if (r == NULL) {
        json_decref(own);
        return HIBUS_E_NOMEM;
    }
    if (body == NULL)
        len = 0;

    if (strcmp(name, "adx") == 0) {
        read_adx(&rd, r, body, len);
    } else {
        static const struct {
            const char *name, *what;
            void (*read)(struct rd *, struct report *, const json_t *);
        } json_readers[] = {
            {"lmis-report", "an lmis-report JSON object", read_lmis_report},
            {"openlmis-requisition", "an OpenLMIS requisition JSON object", read_requisition},
            {"dhis2-json", "a DHIS2 dataValueSet JSON object", read_dhis2_json},
        };
        for (size_t i = 0; i < sizeof json_readers / sizeof json_readers[0]; i++) {
            if (strcmp(name, json_readers[i].name) != 0)
                continue;
            json_t *root = load_json(&rd, body, len, json_readers[i].what);
            if (root != NULL)
                json_readers[i].read(&rd, r, root);
            json_decref(root);
        }
    }

    json_decref(own);
    if (rd.nomem) {
        report_free(r);
        return HIBUS_E_NOMEM;
    }
    if (rd.n > 0) {
        report_free(r);
        return HIBUS_E_INVALID;
    }
    *out = r;
    return HIBUS_OK;
}
