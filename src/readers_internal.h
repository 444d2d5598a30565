/*
 * readers_internal.h - what the readers_*.c files share. Not an API: the contract is
 * include/hibus/readers.h, and nothing outside src/readers*.c includes this.
 *
 * The readers, file by file:
 *   src/readers.c        what every reader shares: the problem list, UTF-8 checks,
 *                        numbers as text, JSON helpers, the report fields the DHIS2 and
 *                        ADX readers set; the entry points (reader_parse_opts, which
 *                        parses a JSON body and hands it to a reader_read_* below)
 *   src/readers_lmis.c   lmis-report and openlmis-requisition
 *   src/readers_dhis2.c  dhis2-json and dhis2-csv
 *   src/readers_adx.c    adx, and libxml2's set-up (reader_global_init)
 *
 * The definitions carry the longer comments (why, and the sources they follow).
 */
#ifndef HIBUS_READERS_INTERNAL_H
#define HIBUS_READERS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"
#include "hibus/period.h"
#include "hibus/readers.h"
#include "hibus/report.h"

/* Sizes: a position ("where"), a code (facility, commodity, data element, data set, ids),
 * a value or comment (DHIS2 stores up to 50000 characters), a number as text. */
#define READER_WHERE_MAX 256
#define READER_CODE_MAX 255
#define READER_TEXT_MAX 50000
#define READER_NUMBER_MAX 64

/* One parse: its problem list and options. */
struct reader_ctx {
    json_t *problems;
    size_t n; /* problems added by this parse */
    bool nomem;
    bool too_many; /* the payload holds more than opts->max_values values (said once) */
    bool over_cpu; /* limits.request_cpu ran out (said once); the walk stops */
    const struct reader_options *opts; /* never NULL */
};

/* ---- The problem list (src/readers.c) ---- */

/* Adds one problem at where (NULL: no position); past the limit, one note that more
 * were left out. */
void reader_problem(struct reader_ctx *rd, const char *where, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);
/* Formats a position into buf (READER_WHERE_MAX bytes); a cut one ends in "...". */
void reader_where_fmt(char *buf, const char *fmt, ...) HIBUS_PRINTF(2, 3);
/* Whether limits.request_cpu has run out (hibus/cpubudget.h), saying so once as a
 * problem; loops over the payload stop when it has. */
bool reader_out_of_cpu(struct reader_ctx *rd);
/* report_add and report_set, noting out of memory in rd. A value past
 * opts->max_values, or after the CPU budget ran out, is not added: NULL, and one
 * problem says so. */
struct report_value *reader_add_value(struct reader_ctx *rd, struct report *r, const char *item,
                                      const char *measure, const char *value,
                                      const char *comment, const char *where);
void reader_set_field(struct reader_ctx *rd, char **field, const char *s);

/* ---- Bytes (src/readers.c) ---- */

/* Line and column (1-based, in characters) of byte offset off. */
void reader_line_col(const unsigned char *s, size_t off, int *line, int *col);
/* false (with a problem) when the body is empty, UTF-16/32 or not UTF-8; on success *skip
 * is the length of a UTF-8 BOM (0 or 3). what names the expected payload. */
bool reader_check_utf8(struct reader_ctx *rd, const unsigned char *s, size_t len, const char *what,
                       size_t *skip);

/* ---- Numbers as text (src/readers.c) ---- */

void reader_format_double(double d, char buf[READER_NUMBER_MAX]);
void reader_format_number(const json_t *j, char buf[READER_NUMBER_MAX]);
/* "an object", "a number", ... for messages. */
const char *reader_type_name(const json_t *j);

/* ---- JSON helpers (src/readers.c) ---- */

/* A string member: true and *out (borrowed; NULL when absent or null) when it is absent,
 * null or a valid string of at most max bytes; otherwise false with a problem. */
bool reader_get_string(struct reader_ctx *rd, const json_t *obj, const char *key, const char *where,
                       bool required, size_t max, const char **out);
/* period_start/end from two dates, and period when they span one calendar month. */
void reader_set_period(struct reader_ctx *rd, struct report *r, struct period_date start,
                       struct period_date end);
/* The period from the {start_key, end_key} date strings of obj (prefix: obj's position). */
void reader_read_date_range(struct reader_ctx *rd, struct report *r, const json_t *obj,
                            const char *start_key, const char *end_key, const char *prefix);
/* A problem when code is already in seen (code -> where first seen), else remembers it. */
void reader_check_duplicate(struct reader_ctx *rd, json_t *seen, const char *code, const char *what,
                            const char *where);

/* ---- Report fields of the DHIS2-shaped readers (src/readers.c) ---- */

/* The report's period: canonical id and dates. */
void reader_set_report_period(struct reader_ctx *rd, struct report *r, const struct period *p);
/* A value's period (canonical id), org unit and attribute option combo, each kept only
 * when it differs from the report's; any may be NULL. */
void reader_set_overrides(struct reader_ctx *rd, const struct report *r, struct report_value *v,
                          const char *pe, const char *ou, const char *aoc);

/* Parses a JSON object body (UTF-8 checked; a problem when it is not JSON or not an
 * object). big_numbers: numbers beyond jansson's range become strings of their text
 * instead of refusing the body. NULL after a problem. */
json_t *reader_load_json(struct reader_ctx *rd, const void *body, size_t len, const char *what,
                         bool big_numbers);

/* ---- The readers: each fills r and reports problems through rd ---- */

/* Given the body's JSON object (src/readers_lmis.c, src/readers_dhis2.c). */
void reader_read_lmis_report(struct reader_ctx *rd, struct report *r, const json_t *root);
void reader_read_requisition(struct reader_ctx *rd, struct report *r, const json_t *root);
void reader_read_dhis2_json(struct reader_ctx *rd, struct report *r, const json_t *root);
/* Given the body (src/readers_dhis2.c, src/readers_adx.c). */
void reader_read_dhis2_csv(struct reader_ctx *rd, struct report *r, const void *body, size_t len);
void reader_read_adx(struct reader_ctx *rd, struct report *r, const void *body, size_t len);

#endif
