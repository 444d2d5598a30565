/*
 * csv.h - one RFC 4180 tokenizer for every CSV hibus reads: the mapping files
 * (org_units_csv, items_csv) and DHIS2 CSV data value sets (the dhis2-csv reader).
 *
 * Fields are separated by ",", records by CRLF, LF or a lone CR; a field in double
 * quotes may hold commas, line breaks and "" for a quote. With trim, blanks (space,
 * tab) around a field are dropped, as DHIS2's CSV parser (com.csvreader.CsvReader)
 * does; without it fields are taken as written. The caller skips a byte order mark
 * and words every message itself: the tokenizer says what went wrong and where.
 *
 * Not thread-safe: one struct csv belongs to one thread. Pure otherwise.
 */
#ifndef HIBUS_CSV_H
#define HIBUS_CSV_H

#include <stdbool.h>
#include <stddef.h>

struct csv_field {
    char *s;       /* NUL-terminated copy (a field holding a NUL is cut there) */
    size_t len;    /* bytes in s */
    int line, col; /* where the field starts, 1-based (col in bytes) */
};

enum csv_error {
    CSV_E_NONE,
    CSV_E_UNTERMINATED,   /* a quoted field runs to the end (err_line/col: its start) */
    CSV_E_AFTER_QUOTE,    /* text after a closing quote (err_line/col: that text) */
    CSV_E_QUOTE_IN_FIELD, /* a quote inside an unquoted field (err_line/col: the quote) */
    CSV_E_TOO_LONG,       /* a field over max_field bytes (err_line/col: its start) */
    CSV_E_NOMEM
};

struct csv {
    const char *p, *end, *line_start;
    int line; /* of p */
    bool trim;
    size_t max_field; /* 0: no limit */
    /* the current record */
    struct csv_field *f;
    size_t n, cap;
    int rec_line; /* where it starts */
    /* the last error */
    enum csv_error err;
    int err_line, err_col;
    size_t err_len; /* CSV_E_TOO_LONG: the field's length */
};

void csv_init(struct csv *c, const char *s, size_t len, bool trim, size_t max_field);
/* Reads the next record into c->f[0..n). Returns 1 for a record, 0 at the end,
 * -1 for a malformed record (c->err says why; the rest of its line was skipped, so
 * reading may go on), -2 when nothing more can be read (c->err: unterminated quote,
 * or out of memory). */
int csv_next(struct csv *c);
/* Is every field of the current record empty? */
bool csv_blank(const struct csv *c);
void csv_free(struct csv *c);

#endif
