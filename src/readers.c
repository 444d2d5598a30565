/*
 * readers.c - payload formats in (see hibus/readers.h and docs/formats.md): each
 * reader turns one body into a canonical report, or lists every problem it found.
 *
 *   lmis-report           hibus's own R&R-style JSON (docs/lmis-report.schema.json)
 *   openlmis-requisition  an OpenLMIS v3 requisition (FORMATS.md section 5)
 *   dhis2-json            a DHIS2 dataValueSet in the source's codes
 *   adx                   ADX XML, urn:ihe:qrph:adx:2015
 *   dhis2-csv             DHIS2's CSV data value set, in the source's codes
 *
 * Entry points: reader_parse_opts() (reader_parse() is it with the default options).
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

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "hibus/buf.h"
#include "hibus/csv.h"
#include "hibus/period.h"

const char *const READER_NAMES[] = {
    "lmis-report", "openlmis-requisition", "dhis2-json", "adx", "dhis2-csv", NULL};

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
    const struct reader_options *opts; /* never NULL */
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
 * Numbers too large for jansson
 *
 * jansson keeps integers in a long long and refuses the whole document when one does not
 * fit (json_error_numeric_overflow, "too big integer"), and likewise a real beyond DBL_MAX.
 * DHIS2 maps the body with Jackson onto its DataValueSet, whose data values keep "value" in
 * a String, and Jackson takes a number token's text as it is (dhis2-core 2.41.0
 * dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/datavalueset/
 * JsonDataValueSetReader.java and .../dxf2/datavalue/DataValue.java: private String value).
 * So for dhis2-json such a number becomes a JSON string of its exact text and the body is
 * parsed again; positions of any other error are mapped back to the original body.
 * ------------------------------------------------------------------------------------ */

/* One quote inserted into the rewritten body: where, and on which line (1-based). */
struct big_insert {
    size_t off;
    int line;
};

struct big_body {
    struct buf text;
    struct big_insert *ins;
    size_t n_ins;
};

/* Whether the number token s[0..n) overflows what jansson can hold. */
static bool big_number(const char *s, size_t n, bool *nomem)
{
    char *t = strndup(s, n);
    if (t == NULL) {
        *nomem = true;
        return false;
    }
    bool real = strpbrk(t, ".eE") != NULL, over;
    char *end;
    errno = 0;
    if (real) {
        double d = strtod(t, &end);
        over = errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL);
    } else {
        (void)strtoll(t, &end, 10);
        over = errno == ERANGE;
    }
    free(t);
    return over;
}

/* Copies s with every overflowing number token quoted. Strings (with their escapes) are
 * copied untouched, so digits inside them are never taken for numbers. false when out of
 * memory. */
static bool big_rewrite(const char *s, size_t len, struct big_body *out)
{
    bool nomem = false;
    size_t cap_ins = 8;
    memset(out, 0, sizeof *out);
    out->ins = malloc(cap_ins * sizeof *out->ins);
    if (out->ins == NULL || !buf_reserve(&out->text, len))
        goto fail;
    int line = 1;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        size_t n = 1;
        bool quote = false;
        if (c == '"') {
            /* A string: up to the next unescaped quote (or the end; jansson reports it). */
            while (i + n < len && s[i + n] != '"')
                n += s[i + n] == '\\' && i + n + 1 < len ? 2 : 1;
            if (i + n < len)
                n++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            while (i + n < len && strchr("0123456789+-.eE", s[i + n]) != NULL && s[i + n] != '\0')
                n++;
            quote = big_number(s + i, n, &nomem);
            if (nomem)
                goto fail;
        }
        if (quote && out->n_ins + 2 > cap_ins) {
            cap_ins *= 2;
            struct big_insert *b = realloc(out->ins, cap_ins * sizeof *b);
            if (b == NULL)
                goto fail;
            out->ins = b;
        }
        if (quote) {
            out->ins[out->n_ins++] = (struct big_insert){out->text.len, line};
            if (!buf_append(&out->text, "\"", 1))
                goto fail;
        }
        for (size_t k = 0; k < n; k++)
            if (s[i + k] == '\n')
                line++;
        if (!buf_append(&out->text, s + i, n))
            goto fail;
        if (quote) {
            out->ins[out->n_ins++] = (struct big_insert){out->text.len, line};
            if (!buf_append(&out->text, "\"", 1))
                goto fail;
        }
        i += n;
    }
    return true;
fail:
    buf_free(&out->text);
    free(out->ins);
    memset(out, 0, sizeof *out);
    return false;
}

/* An error in the rewritten body, moved back to the column it has in the original:
 * the quotes inserted before it on its line are taken off. */
static int big_column(const struct big_body *b, const json_error_t *e)
{
    int col = e->column;
    for (size_t k = 0; k < b->n_ins; k++)
        if (b->ins[k].line == e->line && b->ins[k].off < (size_t)e->position)
            col--;
    return col;
}

/* ------------------------------------------------------------------------------------
 * JSON helpers
 * ------------------------------------------------------------------------------------ */

/* Parses a JSON object body. big_numbers: numbers beyond jansson's range become strings
 * of their text (see above) instead of refusing the body. */
static json_t *load_json(struct rd *rd, const void *body, size_t len, const char *what,
                         bool big_numbers)
{
    size_t skip;
    if (!check_utf8(rd, body, len, what, &skip))
        return NULL;
    const char *text = (const char *)body + skip;
    len -= skip;
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL && big_numbers && json_error_code(&e) == json_error_numeric_overflow) {
        struct big_body b;
        if (!big_rewrite(text, len, &b)) {
            rd->nomem = true;
            return NULL;
        }
        root = json_loadb(b.text.s, b.text.len, JSON_REJECT_DUPLICATES, &e);
        if (root == NULL)
            e.column = big_column(&b, &e);
        buf_free(&b.text);
        free(b.ins);
    }
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
static bool read_reason(struct rd *rd, const json_t *o, const char *where, struct reason *out)
{
    char w[WHERE_MAX];
    bool ok = true;
    memset(out, 0, sizeof *out);
    if (!json_is_object(o)) {
        problem(rd, where, "a stock adjustment reason must be an object, not %s", type_name(o));
        return false;
    }
    where_fmt(w, "%s.name", where);
    ok = get_string(rd, o, "name", w, false, CODE_MAX, &out->name) && ok;
    where_fmt(w, "%s.reasonCategory", where);
    ok = get_string(rd, o, "reasonCategory", w, false, CODE_MAX, &out->category) && ok;
    where_fmt(w, "%s.reasonType", where);
    if (!get_string(rd, o, "reasonType", w, true, CODE_MAX, &out->type)) {
        ok = false;
    } else if (strcmp(out->type, "CREDIT") != 0 && strcmp(out->type, "DEBIT") != 0 &&
               strcmp(out->type, "BALANCE_ADJUSTMENT") != 0) {
        problem(rd, w, "reasonType \"%.40s\" is not CREDIT, DEBIT or BALANCE_ADJUSTMENT",
                out->type);
        ok = false;
    }
    const json_t *h = json_object_get(o, "hidden");
    where_fmt(w, "%s.hidden", where);
    if (h != NULL && !json_is_null(h) && !json_is_boolean(h)) {
        problem(rd, w, "hidden must be a boolean, not %s", type_name(h));
        ok = false;
    }
    out->hidden = json_is_true(h);
    out->valid = ok;
    return ok;
}

/* Reads the top-level stockAdjustmentReasons into rs. */
static void requisition_reasons(struct rd *rd, const json_t *root, struct reasons *rs)
{
    memset(rs, 0, sizeof *rs);
    const json_t *list = json_object_get(root, "stockAdjustmentReasons");
    if (list == NULL || json_is_null(list))
        return;
    if (!json_is_array(list)) {
        problem(rd, "stockAdjustmentReasons", "stockAdjustmentReasons must be an array, not %s",
                type_name(list));
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
        char where[WHERE_MAX], w[WHERE_MAX];
        const json_t *o = json_array_get(list, j);
        const char *id;
        where_fmt(where, "stockAdjustmentReasons[%zu]", j);
        read_reason(rd, o, where, &rs->items[j]);
        where_fmt(w, "%s.id", where);
        if (json_is_object(o) && get_string(rd, o, "id", w, true, CODE_MAX, &id) &&
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
static void requisition_adjustments(struct rd *rd, const json_t *li, size_t i, struct reasons *rs,
                                    char *losses, char *adjustments, bool *derived)
{
    char where[WHERE_MAX], w[WHERE_MAX];
    losses[0] = adjustments[0] = '\0';
    *derived = false;

    const json_t *total = json_object_get(li, "totalLossesAndAdjustments");
    if (total != NULL && !json_is_null(total) && !json_is_number(total)) {
        where_fmt(where, "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        problem(rd, where, "totalLossesAndAdjustments must be a number, not %s", type_name(total));
        return;
    }
    bool have_total = total != NULL && json_is_number(total);

    const json_t *adj = json_object_get(li, "stockAdjustments");
    if (adj != NULL && !json_is_null(adj) && !json_is_array(adj)) {
        where_fmt(where, "requisitionLineItems[%zu].stockAdjustments", i);
        problem(rd, where, "stockAdjustments must be an array, not %s", type_name(adj));
        return;
    }
    size_t n = json_array_size(adj); /* 0 when absent or null */
    if (n == 0) {
        if (have_total)
            format_number(total, adjustments);
        return;
    }

    double loss = 0, other = 0, net = 0;
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        const json_t *a = json_array_get(adj, k);
        where_fmt(where, "requisitionLineItems[%zu].stockAdjustments[%zu]", i, k);
        if (!json_is_object(a)) {
            problem(rd, where, "a stock adjustment must be an object, not %s", type_name(a));
            ok = false;
            continue;
        }
        const json_t *q = json_object_get(a, "quantity");
        where_fmt(w, "%s.quantity", where);
        if (!json_is_number(q)) {
            problem(rd, w, "quantity must be a number, not %s", q ? type_name(q) : "missing");
            ok = false;
        } else if (json_number_value(q) < 0) {
            problem(rd, w,
                    "quantity must not be negative (%g): OpenLMIS quantities are unsigned, the "
                    "sign comes from the reason's reasonType",
                    json_number_value(q));
            ok = false;
        }

        /* The reason: by reasonId in the list, else embedded. */
        const char *rid;
        struct reason embedded, *reason = NULL;
        where_fmt(w, "%s.reasonId", where);
        if (!get_string(rd, a, "reasonId", w, false, CODE_MAX, &rid)) {
            ok = false;
            continue;
        }
        const json_t *idx = rid != NULL ? json_object_get(rs->by_id, rid) : NULL;
        const json_t *er = json_object_get(a, "reason");
        if (idx != NULL) {
            reason = &rs->items[json_integer_value(idx)];
        } else if (er != NULL && !json_is_null(er)) {
            char we[WHERE_MAX];
            where_fmt(we, "%s.reason", where);
            read_reason(rd, er, we, &embedded);
            reason = &embedded;
        } else if (rid == NULL) {
            problem(rd, where,
                    "line item %zu, stock adjustment %zu: reasonId is required (the reason "
                    "tells a loss from other adjustments)",
                    i, k);
        } else if (rs->list != NULL) {
            problem(rd, w,
                    "line item %zu, stock adjustment %zu: reasonId \"%.64s\" is not in the "
                    "requisition's stockAdjustmentReasons",
                    i, k, rid);
        } else if (!rs->list_invalid && !rs->missing_reported) {
            rs->missing_reported = true;
            problem(rd, "stockAdjustmentReasons",
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
        char t[NUMBER_MAX], c[NUMBER_MAX];
        format_number(total, t);
        format_double(net, c);
        where_fmt(where, "requisitionLineItems[%zu].totalLossesAndAdjustments", i);
        problem(rd, where,
                "line item %zu: totalLossesAndAdjustments is %s but its stockAdjustments add up "
                "to %s (CREDIT quantities minus the others)",
                i, t, c);
        return;
    }
    format_double(loss, losses);
    format_double(other, adjustments);
    *derived = true;
}

static void requisition_line(struct rd *rd, struct report *r, const json_t *li, size_t i,
                             json_t *seen, size_t *n_reported, struct reasons *rs)
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
    bool derived;
    requisition_adjustments(rd, li, i, rs, losses, adjustments, &derived);
    for (size_t m = 0; m < 8; m++) {
        if (strcmp(REPORT_MEASURES[m], "losses") == 0 && losses[0] != '\0') {
            memcpy(vals[m], losses, NUMBER_MAX);
            where_fmt(wheres[m], "requisitionLineItems[%zu].stockAdjustments", i);
        } else if (strcmp(REPORT_MEASURES[m], "adjustments") == 0 && adjustments[0] != '\0') {
            memcpy(vals[m], adjustments, NUMBER_MAX);
            where_fmt(wheres[m], "requisitionLineItems[%zu].%s", i,
                      derived ? "stockAdjustments" : "totalLossesAndAdjustments");
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

    /* v1 (RequisitionDto) expands the processing period with its dates; v2
     * (requisitionV2.json) gives a reference {id, href}, which the mapping's periods:
     * table translates to a DHIS2 period. */
    const json_t *pp = json_object_get(root, "processingPeriod");
    const char *pid = NULL;
    if (!json_is_object(pp))
        problem(rd, "processingPeriod",
                "processingPeriod is required (an object with startDate and endDate, or an id "
                "the mapping's periods: translates)");
    else if (json_object_get(pp, "startDate") == NULL && json_object_get(pp, "endDate") == NULL &&
             get_string(rd, pp, "id", "processingPeriod.id", false, CODE_MAX, &pid) &&
             pid != NULL && *pid != '\0')
        set_field(rd, &r->source_period, pid);
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
    struct reasons rs;
    requisition_reasons(rd, root, &rs);
    size_t reported = 0;
    for (size_t i = 0; i < json_array_size(items) && !rd->nomem; i++)
        requisition_line(rd, r, json_array_get(items, i), i, seen, &reported, &rs);
    reasons_free(&rs);
    json_decref(seen);
    if (reported == 0)
        problem(rd, "requisitionLineItems", "every line item is skipped: nothing to report");
}

/* ------------------------------------------------------------------------------------
 * dhis2-json
 * ------------------------------------------------------------------------------------ */

/* Parses a period id in any spelling DHIS2 accepts (period_parse gives the canonical id
 * in p->id, which is what a report keeps: "2024W01" is stored as "2024W1"). */
static bool valid_period_id(struct rd *rd, const char *id, const char *where, struct period *p)
{
    if (period_parse(id, p))
        return true;
    problem(rd, where, "\"%.40s\" is not a DHIS2 period id (such as 202401, 2024Q1, 2024W1)", id);
    return false;
}

/* Sets the report's period (canonical id and dates). */
static void set_report_period(struct rd *rd, struct report *r, const struct period *p)
{
    char d[11];
    set_field(rd, &r->period, p->id);
    period_date_format(p->start, d);
    set_field(rd, &r->period_start, d);
    period_date_format(p->end, d);
    set_field(rd, &r->period_end, d);
}

/* The per-value overrides of a value: each is kept only when it differs from the
 * report's own (NULL = the report's). pe is a canonical period id; any may be NULL. */
static void set_overrides(struct rd *rd, const struct report *r, struct report_value *v,
                          const char *pe, const char *ou, const char *aoc)
{
    if (pe != NULL && (r->period == NULL || strcmp(pe, r->period) != 0))
        set_field(rd, &v->period, pe);
    if (ou != NULL && (r->org_unit == NULL || strcmp(ou, r->org_unit) != 0))
        set_field(rd, &v->org_unit, ou);
    if (aoc != NULL &&
        (r->attribute_option_combo == NULL || strcmp(aoc, r->attribute_option_combo) != 0))
        set_field(rd, &v->attribute_option_combo, aoc);
}

/* DHIS2 files every value of a set under the set's period, org unit and attribute
 * option combo when the set has them, whatever the value says
 * (DefaultDataValueSetService.createDataValueContext, dhis2/dhis2-core 2.36-2.41: "outer"
 * period/orgUnit/attrOptionCombo first). A value naming another one would land
 * where its sender did not mean it to: that is a problem, not something to pass on. */
static bool same_as_set(struct rd *rd, const char *what, const char *set, const char *own,
                        const char *where)
{
    if (set == NULL || *set == '\0' || own == NULL || strcmp(set, own) == 0)
        return true;
    problem(rd, where,
            "%s \"%.64s\" differs from the data value set's \"%.64s\": DHIS2 files every value "
            "of a set under the set's %s, so this value would land under \"%.64s\"; remove "
            "the set's %s or this value's",
            what, own, set, what, set, what);
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
    struct period p = {.id = ""};
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
    else if (pe != NULL && !valid_period_id(rd, pe, w, &p))
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
    /* DHIS2 takes an attributeOptionCombo per data value (dhis2-core 2.41.0
     * dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/datavalue/
     * DataValue.java); the value keeps it when it is not the set's. */
    where_fmt(w, "dataValues[%zu].attributeOptionCombo", i);
    if (!get_string(rd, dv, "attributeOptionCombo", w, false, CODE_MAX, &aoc))
        ok = false;
    else
        ok = same_as_set(rd, "attributeOptionCombo", set_aoc, aoc, w) && ok;
    where_fmt(w, "dataValues[%zu].period", i);
    if (pe != NULL && p.id[0] != '\0')
        ok = same_as_set(rd, "period", set_period, p.id, w) && ok;
    where_fmt(w, "dataValues[%zu].orgUnit", i);
    ok = same_as_set(rd, "orgUnit", set_ou, ou, w) && ok;

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
    set_overrides(rd, r, rv, pe != NULL ? p.id : NULL, ou, aoc);
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
    struct period sp;
    if (!get_string(rd, root, "period", "period", false, CODE_MAX, &pe))
        pe = "";
    else if (pe != NULL && !valid_period_id(rd, pe, "period", &sp))
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
        period_parse(rpe, &p);
        set_report_period(rd, r, &p);
    }
    set_field(rd, &r->org_unit, rou);

    for (size_t i = 0; i < json_array_size(dvs); i++)
        dhis2_value(rd, r, json_array_get(dvs, i), i, pe != NULL && *pe ? sp.id : pe, ou, aoc);
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

/* One dataValue. ou, pe (canonical) and aoc are its group's (aoc may be NULL).
 *
 * <annotation>: DHIS2 reads it only for a data element whose value type is not numeric,
 * and then it replaces the value attribute; for a numeric one it is ignored. The value
 * attribute is required either way: "value attribute is required on 'dataValue'" is checked
 * before the annotation, and DHIS2's own export writes value="0" beside the annotation of a
 * text data element (dhis2-core 2.36.0 .. 2.41.0 dhis-2/dhis-services/dhis-service-dxf2/src/
 * main/java/org/hisp/dhis/dxf2/adx/DefaultAdxDataService.java, parseADXDataValueToDxf /
 * parseAdxDataValueToDxf and the export loop). Only the mapping knows the value type, so the
 * annotation is kept apart (report_value.annotation), never as a comment. */
static void adx_value(struct rd *rd, struct report *r, const xmlNode *dv, const char *gw, size_t vi,
                      const char *ou, const char *pe, const char *aoc)
{
    char where[WHERE_MAX];
    where_fmt(where, "%s/dataValue[%zu]", gw, vi);
    const xmlNode *an = NULL;
    for (const xmlNode *c = dv->children; c != NULL && an == NULL; c = c->next)
        if (is_adx(c, "annotation"))
            an = c;
    char *annotation = an != NULL ? (char *)xmlNodeGetContent(an) : NULL;
    char *de = required_attr(rd, dv, "dataElement", where);
    char *value = NULL;
    char *raw = attr(dv, "value");
    if (raw == NULL && annotation != NULL) {
        char w[WHERE_MAX];
        where_fmt(w, "%s@value", where);
        problem(rd, w,
                "attribute value is required, also beside an annotation (DHIS2 refuses a "
                "dataValue without it; its own ADX export writes value=\"0\" there)");
    } else {
        value = required_attr(rd, dv, "value", where);
    }
    xmlFree(raw);
    char *measure = disaggregation(rd, dv, value_attrs, "categoryOptionCombo");
    for (const xmlNode *c = dv->children; c != NULL; c = c->next) {
        if (c != an && c->type == XML_ELEMENT_NODE) {
            char w[WHERE_MAX];
            where_fmt(w, "%s/%s", where, (const char *)c->name);
            problem(rd, w, "unexpected element %.64s in a dataValue", (const char *)c->name);
        }
    }
    if (annotation != NULL && strlen(annotation) > TEXT_MAX) {
        problem(rd, where, "the annotation is too long (%zu bytes)", strlen(annotation));
    } else if (de != NULL && value != NULL) {
        struct report_value *v = report_add(r, de, measure, value, NULL, where);
        if (v == NULL) {
            rd->nomem = true;
        } else {
            set_overrides(rd, r, v, pe, ou, aoc);
            set_field(rd, &v->annotation, annotation);
        }
    }
    xmlFree(de);
    xmlFree(value);
    xmlFree(annotation);
    free(measure);
}

/* One group. Groups are independent in DHIS2 (each is turned into its own data values,
 * DefaultAdxDataService.parseAdxGroupToDxf), so org unit, period and attribute option combo
 * may change from group to group: the first group's are the report's, and the values of a
 * later group carry theirs where they differ. The data set may not change (a report has
 * one); neither may a group lack the attribute option combo the first group has, since a
 * value cannot say "the default combo" when the report names another. */
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
        if (have_period)
            set_report_period(rd, r, &p);
    } else {
        if (ds != NULL && (r->data_set == NULL || strcmp(ds, r->data_set) != 0)) {
            where_fmt(where, "%s@dataSet", gw);
            problem(rd, where,
                    "data set \"%.64s\" differs from the first group's \"%.64s\": a report has "
                    "one data set",
                    ds, r->data_set ? r->data_set : "");
        }
        if (aoc == NULL && r->attribute_option_combo != NULL) {
            problem(rd, gw,
                    "the group has no attribute option combo but the first group has \"%.64s\": "
                    "give every group one, or put the groups without one first",
                    r->attribute_option_combo);
        }
    }

    size_t vi = 0;
    for (const xmlNode *c = g->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (is_adx(c, "dataValue")) {
            vi++;
            if (ou != NULL && have_period)
                adx_value(rd, r, c, gw, vi, ou, p.id, aoc);
            else {
                /* Still check the values, against placeholders that never match. */
                adx_value(rd, r, c, gw, vi, "", "", aoc);
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
 * dhis2-csv
 *
 * DHIS2 reads a CSV data value set by column position, never by header name (dhis2-core
 * 2.41.0 dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/
 * datavalueset/CsvDataValueSetReader.java; 2.36.0 .../dxf2/datavalue/StreamingCsvDataValue
 * .java), in the order of its own export header (CsvDataValueSetWriter.HEADER_ROW) below.
 * Whether the first row is a header is an import option, firstRowIsHeader, true by default
 * (.../dxf2/common/ImportOptions.java): DHIS2 drops the first row whatever it holds. hibus
 * has no such option and looks instead: the first row is a header when its first cell is
 * "dataelement" or its second "period" (case-insensitively; DHIS2's own test files spell
 * the first "dataelelement": dhis-2/dhis-test-integration/src/test/resources/dxf2/
 * datavalueset/dataValueSetB.csv). The parser (com.csvreader.CsvReader with its defaults,
 * CsvUtils.getReader) trims blanks around unquoted cells and skips empty records; hibus
 * does the same, and is otherwise RFC 4180: "," between cells, quoted cells with "" for a
 * quote and line breaks inside, CRLF or LF between rows.
 * ------------------------------------------------------------------------------------ */

enum {
    CSV_DE,
    CSV_PE,
    CSV_OU,
    CSV_COC,
    CSV_AOC,
    CSV_VALUE,
    CSV_STOREDBY,
    CSV_LASTUPDATED,
    CSV_COMMENT,
    CSV_FOLLOWUP,
    CSV_DELETED,
    CSV_COLUMNS
};

/* clang-format off */
static const char *const csv_names[CSV_COLUMNS] = {
    "dataelement", "period", "orgunit", "categoryoptioncombo", "attributeoptioncombo", "value",
    "storedby", "lastupdated", "comment", "followup", "deleted"};
/* clang-format on */

/* Rows of a DHIS2 CSV, read with the shared tokenizer (hibus/csv.h), trimmed. */
struct csv_rows {
    struct csv t;
    size_t row;                    /* 1-based, counting every row read */
    const char *cell[CSV_COLUMNS]; /* the first CSV_COLUMNS cells of the row (in t) */
    size_t ncells;                 /* all cells of the row, also those beyond */
    bool blank;                    /* every cell is empty */
};

static void csv_where(char *where, size_t row, size_t col)
{
    if (col < CSV_COLUMNS)
        where_fmt(where, "row %zu, column %s", row, csv_names[col]);
    else
        where_fmt(where, "row %zu, column %zu", row, col + 1);
}

/* Reads the next row into c->cell. 1: a row; 0: the end of the body; -1: a row with a
 * syntax problem (reported, skipped); -2: a problem that ends the body (reported). */
static int csv_row(struct rd *rd, struct csv_rows *c)
{
    int rc = csv_next(&c->t);
    if (rc == 0)
        return 0;
    c->row++;
    char where[WHERE_MAX];
    csv_where(where, c->row, c->t.n); /* the cell being read when it went wrong */
    switch (rc < 0 ? c->t.err : CSV_E_NONE) {
    case CSV_E_NONE: break;
    case CSV_E_UNTERMINATED:
        problem(rd, where,
                "a quoted cell opened on line %d is not closed (a quote inside a quoted cell "
                "is written \"\")",
                c->t.err_line);
        break;
    case CSV_E_AFTER_QUOTE:
        problem(rd, where,
                "unexpected text after the closing quote of a cell (line %d): a quote inside a "
                "quoted cell is written \"\"",
                c->t.err_line);
        break;
    case CSV_E_QUOTE_IN_FIELD:
        problem(rd, where,
                "a quote inside an unquoted cell (line %d): quote the whole cell and write the "
                "quote as \"\"",
                c->t.err_line);
        break;
    case CSV_E_TOO_LONG: /* no limit is set: cells are checked by column */
    case CSV_E_NOMEM: rd->nomem = true; break;
    }
    if (rc < 0)
        return rc;
    c->ncells = c->t.n;
    for (size_t k = 0; k < CSV_COLUMNS; k++)
        c->cell[k] = k < c->t.n ? c->t.f[k].s : NULL;
    c->blank = csv_blank(&c->t);
    return 1;
}

/* A cell as a value: NULL when empty or absent; a problem when too long. */
static const char *csv_cell(struct rd *rd, const struct csv_rows *c, size_t col, bool required,
                            size_t max, bool *ok)
{
    char where[WHERE_MAX];
    const char *v = col < c->ncells ? c->cell[col] : NULL;
    csv_where(where, c->row, col);
    if (v == NULL || *v == '\0') {
        if (required) {
            problem(rd, where, "%s is required", csv_names[col]);
            *ok = false;
        }
        return NULL;
    }
    if (strlen(v) > max) {
        problem(rd, where, "%s is too long (%zu bytes, at most %zu)", csv_names[col], strlen(v),
                max);
        *ok = false;
        return NULL;
    }
    return v;
}

static void csv_value(struct rd *rd, struct report *r, const struct csv_rows *c)
{
    char where[WHERE_MAX];
    if (c->ncells <= CSV_VALUE) {
        where_fmt(where, "row %zu", c->row);
        problem(rd, where,
                "the row has %zu cells: DHIS2 reads CSV columns by position and needs at least "
                "6 (dataelement, period, orgunit, categoryoptioncombo, attributeoptioncombo, "
                "value)",
                c->ncells);
        return;
    }
    bool ok = true;
    struct period p = {.id = ""};
    const char *de = csv_cell(rd, c, CSV_DE, true, CODE_MAX, &ok);
    const char *pe = csv_cell(rd, c, CSV_PE, true, CODE_MAX, &ok);
    if (pe != NULL) {
        csv_where(where, c->row, CSV_PE);
        if (!valid_period_id(rd, pe, where, &p))
            ok = false;
        else if (r->period == NULL)
            set_report_period(rd, r, &p);
    }
    const char *ou = csv_cell(rd, c, CSV_OU, true, CODE_MAX, &ok);
    if (ou != NULL && r->org_unit == NULL)
        set_field(rd, &r->org_unit, ou);
    const char *coc = csv_cell(rd, c, CSV_COC, false, CODE_MAX, &ok);
    const char *aoc = csv_cell(rd, c, CSV_AOC, false, CODE_MAX, &ok);
    const char *value = csv_cell(rd, c, CSV_VALUE, true, TEXT_MAX, &ok);
    const char *comment = csv_cell(rd, c, CSV_COMMENT, false, TEXT_MAX, &ok);
    if (!ok)
        return;
    where_fmt(where, "row %zu", c->row);
    struct report_value *v = report_add(r, de, coc, value, comment, where);
    if (v == NULL)
        rd->nomem = true;
    else
        set_overrides(rd, r, v, p.id, ou, aoc);
}

static void read_dhis2_csv(struct rd *rd, struct report *r, const void *body, size_t len)
{
    size_t skip;
    if (!check_utf8(rd, body, len, "a DHIS2 CSV data value set", &skip))
        return;
    const char *nul = memchr(body, '\0', len);
    if (nul != NULL) {
        int line, col;
        char where[WHERE_MAX];
        line_col(body, (size_t)(nul - (const char *)body), &line, &col);
        where_fmt(where, "line %d, column %d", line, col);
        problem(rd, where, "the body contains a NUL byte (line %d, column %d)", line, col);
        return;
    }
    struct csv_rows c = {.row = 0};
    csv_init(&c.t, (const char *)body + skip, len - skip, true, 0);
    size_t rows = 0;
    bool first = true;
    int rc;
    while ((rc = csv_row(rd, &c)) != 0 && rc != -2 && !rd->nomem) {
        if (rc < 0) {
            first = false;
            continue;
        }
        if (c.blank)
            continue; /* a blank line, or a row of empty cells, as CsvReader skips them */
        bool header = first && ((c.cell[0] != NULL && strcasecmp(c.cell[0], "dataelement") == 0) ||
                                (c.cell[1] != NULL && strcasecmp(c.cell[1], "period") == 0));
        first = false;
        if (header)
            continue;
        rows++;
        csv_value(rd, r, &c);
    }
    csv_free(&c.t);
    if (rows == 0 && rd->n == 0)
        problem(rd, "body", "the CSV has no data row");
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
    return reader_parse_opts(name, body, len, NULL, out, problems);
}

enum hibus_err reader_parse_opts(const char *name, const void *body, size_t len,
                                 const struct reader_options *opts, struct report **out,
                                 json_t *problems)
{
    static const struct reader_options defaults = {NULL, NULL};
    json_t *own = NULL;
    if (problems == NULL && (problems = own = json_array()) == NULL)
        return HIBUS_E_NOMEM;
    struct rd rd = {.problems = problems, .opts = opts != NULL ? opts : &defaults};
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
    } else if (strcmp(name, "dhis2-csv") == 0) {
        read_dhis2_csv(&rd, r, body, len);
    } else {
        static const struct {
            const char *name, *what;
            void (*read)(struct rd *, struct report *, const json_t *);
            bool big_numbers; /* numbers beyond 64 bits kept as their text */
        } json_readers[] = {
            {"lmis-report", "an lmis-report JSON object", read_lmis_report, false},
            {"openlmis-requisition", "an OpenLMIS requisition JSON object", read_requisition,
             false},
            {"dhis2-json", "a DHIS2 dataValueSet JSON object", read_dhis2_json, true},
        };
        for (size_t i = 0; i < sizeof json_readers / sizeof json_readers[0]; i++) {
            if (strcmp(name, json_readers[i].name) != 0)
                continue;
            json_t *root =
                load_json(&rd, body, len, json_readers[i].what, json_readers[i].big_numbers);
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
