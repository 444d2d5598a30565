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
 * The readers, file by file (what they share is declared in readers_internal.h):
 *   src/readers.c        this file: what every reader shares (the problem list, UTF-8
 *                        checks, numbers as text, numbers too large for jansson, JSON
 *                        helpers, the report fields the DHIS2 and ADX readers set) and the
 *                        entry points
 *   src/readers_lmis.c   lmis-report and openlmis-requisition
 *   src/readers_dhis2.c  dhis2-json and dhis2-csv
 *   src/readers_adx.c    adx, and libxml2's set-up (reader_global_init)
 *
 * Sources cited here: dhis2-core 2.41.0 JsonDataValueSetReader.java and DataValue.java
 * (why dhis2-json keeps numbers beyond 64 bits as their text; full paths below).
 *
 * Entry points: reader_parse_opts() (reader_parse() is it with the default options),
 * reader_known() and READER_NAMES.
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
 *   read, so neither external entities (XXE) nor entity expansion bombs can happen
 *   (src/readers_adx.c).
 * - Numbers become text once, here: integers without ".0", reals with up to 15
 *   significant digits and no exponent for ordinary magnitudes.
 *
 * Thread-safe: all state is per call; libxml2 is initialised in reader_global_init()
 * and its error output is routed per parser context (src/readers_adx.c).
 */
#include "hibus/readers.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/buf.h"
#include "hibus/cpubudget.h"
#include "hibus/period.h"
#include "hibus/text.h"

#include "readers_internal.h"

const char *const READER_NAMES[] = {
    "lmis-report", "openlmis-requisition", "dhis2-json", "adx", "dhis2-csv", NULL};

#define MAX_PROBLEMS 100

/* ------------------------------------------------------------------------------------
 * One parse: the problem list and helpers shared by all readers (the parse itself,
 * struct reader_ctx, is in readers_internal.h)
 * ------------------------------------------------------------------------------------ */

void reader_problem(struct reader_ctx *rd, const char *where, const char *fmt, ...)
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
void reader_where_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vfmt_label(buf, READER_WHERE_MAX, fmt, ap);
    va_end(ap);
}

bool reader_out_of_cpu(struct reader_ctx *rd)
{
    if (!rd->over_cpu && cpu_budget_over()) {
        char msg[256];
        cpu_budget_message(msg, sizeof msg, "reading the payload");
        reader_problem(rd, NULL, "%s", msg);
        rd->over_cpu = true;
    }
    return rd->over_cpu;
}

struct report_value *reader_add_value(struct reader_ctx *rd, struct report *r, const char *item,
                                      const char *measure, const char *value, const char *comment,
                                      const char *where)
{
    if (reader_out_of_cpu(rd))
        return NULL;
    size_t max = rd->opts->max_values ? rd->opts->max_values : READER_DEFAULT_MAX_VALUES;
    if (r->n_values >= max) {
        if (!rd->too_many)
            reader_problem(rd, where,
                           "more than %zu data values in one payload (limits.max_values): send "
                           "them in several",
                           max);
        rd->too_many = true;
        return NULL;
    }
    struct report_value *v = report_add(r, item, measure, value, comment, where);
    if (v == NULL)
        rd->nomem = true;
    return v;
}

void reader_set_field(struct reader_ctx *rd, char **field, const char *s)
{
    if (!report_set(field, s))
        rd->nomem = true;
}

/* Line and column (1-based, in characters) of byte offset off. */
void reader_line_col(const unsigned char *s, size_t off, int *line, int *col)
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

/* Checks the encoding of a body. Returns false (with a problem) when it is empty,
 * UTF-16/32 or not UTF-8; on success *skip is the length of a UTF-8 BOM (0 or 3). */
bool reader_check_utf8(struct reader_ctx *rd, const unsigned char *s, size_t len, const char *what,
                       size_t *skip)
{
    *skip = 0;
    if (len == 0) {
        reader_problem(rd, "body", "the body is empty: expected %s", what);
        return false;
    }
    if (len >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF))) {
        reader_problem(rd, "body", "the body is UTF-16 or UTF-32 encoded: send %s in UTF-8", what);
        return false;
    }
    if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        *skip = 3;
    size_t bad = text_utf8_invalid_at(s, len);
    if (bad < len) {
        int line, col;
        char where[READER_WHERE_MAX];
        reader_line_col(s, bad, &line, &col);
        reader_where_fmt(where, "line %d, column %d", line, col);
        reader_problem(
            rd, where,
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
void reader_format_double(double d, char buf[READER_NUMBER_MAX])
{
    if (d == 0) {
        snprintf(buf, READER_NUMBER_MAX, "0");
        return;
    }
    snprintf(buf, READER_NUMBER_MAX, "%.15g", d);
    double mag = fabs(d);
    if (strchr(buf, 'e') != NULL && mag >= 1e-9 && mag < 1e21) {
        int exp10 = (int)floor(log10(mag));
        int prec = 15 - 1 - exp10;
        if (prec < 0)
            prec = 0;
        snprintf(buf, READER_NUMBER_MAX, "%.*f", prec, d);
        strip_zeros(buf);
    }
}

void reader_format_number(const json_t *j, char buf[READER_NUMBER_MAX])
{
    if (json_is_integer(j)) {
        /* Decimal digits by hand: a printf per value was a twentieth of a transform. */
        json_int_t n = json_integer_value(j);
        unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
        char tmp[24];
        size_t k = 0;
        do {
            tmp[k++] = (char)('0' + u % 10);
            u /= 10;
        } while (u > 0);
        size_t o = 0;
        if (n < 0)
            buf[o++] = '-';
        while (k > 0)
            buf[o++] = tmp[--k];
        buf[o] = '\0';
    } else
        reader_format_double(json_real_value(j), buf);
}

const char *reader_type_name(const json_t *j)
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
json_t *reader_load_json(struct reader_ctx *rd, const void *body, size_t len, const char *what,
                         bool big_numbers)
{
    size_t skip;
    if (!reader_check_utf8(rd, body, len, what, &skip))
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
        char where[READER_WHERE_MAX];
        reader_where_fmt(where, "line %d, column %d", e.line, e.column);
        reader_problem(rd, where, "invalid JSON at line %d, column %d: %s", e.line, e.column,
                       e.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        reader_problem(rd, "body", "the body must be %s, not %s", what, reader_type_name(root));
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A string member. Returns true and sets *out (borrowed; NULL when absent or null)
 * when it is absent, null or a valid string; otherwise adds a problem. */
bool reader_get_string(struct reader_ctx *rd, const json_t *obj, const char *key, const char *where,
                       bool required, size_t max, const char **out)
{
    const json_t *j = json_object_get(obj, key);
    *out = NULL;
    if (j == NULL || json_is_null(j)) {
        if (required) {
            reader_problem(rd, where, "%s is required", key);
            return false;
        }
        return true;
    }
    if (!json_is_string(j)) {
        reader_problem(rd, where, "%s must be a string, not %s", key, reader_type_name(j));
        return false;
    }
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (strlen(s) != n) {
        reader_problem(rd, where, "%s contains a NUL character", key);
        return false;
    }
    if (required && n == 0) {
        reader_problem(rd, where, "%s must not be empty", key);
        return false;
    }
    if (n > max) {
        reader_problem(rd, where, "%s is too long (%zu bytes, at most %zu)", key, n, max);
        return false;
    }
    *out = s;
    return true;
}

/* Sets period_start/end from two dates, and period when they span one whole
 * calendar month (the mapping derives other period types from the dates). */
void reader_set_period(struct reader_ctx *rd, struct report *r, struct period_date start,
                       struct period_date end)
{
    char s[11], e[11];
    struct period m;
    period_date_format(start, s);
    period_date_format(end, e);
    reader_set_field(rd, &r->period_start, s);
    reader_set_field(rd, &r->period_end, e);
    if (period_containing(PERIOD_MONTHLY, start, &m) && m.start.day == start.day &&
        m.end.year == end.year && m.end.month == end.month && m.end.day == end.day)
        reader_set_field(rd, &r->period, m.id);
}

/* Reads {start_key, end_key} date strings of obj into a period. */
void reader_read_date_range(struct reader_ctx *rd, struct report *r, const json_t *obj,
                            const char *start_key, const char *end_key, const char *prefix)
{
    char where[READER_WHERE_MAX];
    const char *keys[2] = {start_key, end_key};
    struct period_date d[2];
    bool ok = true;
    for (int i = 0; i < 2; i++) {
        const char *s;
        reader_where_fmt(where, "%s.%s", prefix, keys[i]);
        if (!reader_get_string(rd, obj, keys[i], where, true, READER_CODE_MAX, &s)) {
            ok = false;
        } else if (!period_date_parse(s, &d[i])) {
            reader_problem(rd, where, "%s \"%.40s\" is not a valid date (expected YYYY-MM-DD)",
                           keys[i], s);
            ok = false;
        }
    }
    if (!ok)
        return;
    char s0[11], s1[11];
    period_date_format(d[0], s0);
    period_date_format(d[1], s1);
    if (strcmp(s0, s1) > 0) {
        reader_where_fmt(where, "%s.%s", prefix, end_key);
        reader_problem(rd, where, "the period ends (%s) before it starts (%s)", s1, s0);
        return;
    }
    reader_set_period(rd, r, d[0], d[1]);
}

/* Remembers item codes already seen in a list; a repeat is a problem. */
void reader_check_duplicate(struct reader_ctx *rd, json_t *seen, const char *code, const char *what,
                            const char *where)
{
    const json_t *first = json_object_get(seen, code);
    if (first != NULL) {
        reader_problem(rd, where, "%s \"%.100s\" appears more than once (first at %s)", what, code,
                       json_string_value(first));
        return;
    }
    if (json_object_set_new(seen, code, json_string(where)) != 0)
        rd->nomem = true;
}

/* ------------------------------------------------------------------------------------
 * Report fields of the DHIS2-shaped readers (dhis2-json, dhis2-csv, adx)
 * ------------------------------------------------------------------------------------ */

/* Sets the report's period (canonical id and dates). */
void reader_set_report_period(struct reader_ctx *rd, struct report *r, const struct period *p)
{
    char d[11];
    reader_set_field(rd, &r->period, p->id);
    period_date_format(p->start, d);
    reader_set_field(rd, &r->period_start, d);
    period_date_format(p->end, d);
    reader_set_field(rd, &r->period_end, d);
}

/* The per-value overrides of a value: each is kept only when it differs from the
 * report's own (NULL = the report's). pe is a canonical period id; any may be NULL. */
void reader_set_overrides(struct reader_ctx *rd, const struct report *r, struct report_value *v,
                          const char *pe, const char *ou, const char *aoc)
{
    if (pe != NULL && (r->period == NULL || strcmp(pe, r->period) != 0))
        reader_set_field(rd, &v->period, pe);
    if (ou != NULL && (r->org_unit == NULL || strcmp(ou, r->org_unit) != 0))
        reader_set_field(rd, &v->org_unit, ou);
    if (aoc != NULL &&
        (r->attribute_option_combo == NULL || strcmp(aoc, r->attribute_option_combo) != 0))
        reader_set_field(rd, &v->attribute_option_combo, aoc);
}

/* ------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------ */

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
    static const struct reader_options defaults = {NULL, NULL, READER_DEFAULT_MAX_VALUES};
    json_t *own = NULL;
    if (problems == NULL && (problems = own = json_array()) == NULL)
        return HIBUS_E_NOMEM;
    struct reader_ctx rd = {.problems = problems, .opts = opts != NULL ? opts : &defaults};
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
        reader_read_adx(&rd, r, body, len);
    } else if (strcmp(name, "dhis2-csv") == 0) {
        reader_read_dhis2_csv(&rd, r, body, len);
    } else {
        static const struct {
            const char *name, *what;
            void (*read)(struct reader_ctx *, struct report *, const json_t *);
            bool big_numbers; /* numbers beyond 64 bits kept as their text */
        } json_readers[] = {
            {"lmis-report", "an lmis-report JSON object", reader_read_lmis_report, false},
            {"openlmis-requisition", "an OpenLMIS requisition JSON object", reader_read_requisition,
             false},
            {"dhis2-json", "a DHIS2 dataValueSet JSON object", reader_read_dhis2_json, true},
        };
        for (size_t i = 0; i < sizeof json_readers / sizeof json_readers[0]; i++) {
            if (strcmp(name, json_readers[i].name) != 0)
                continue;
            json_t *root =
                reader_load_json(&rd, body, len, json_readers[i].what, json_readers[i].big_numbers);
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
