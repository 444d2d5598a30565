/*
 * csv.c - the RFC 4180 tokenizer shared by the mapping loader and the dhis2-csv
 * reader (see hibus/csv.h).
 *
 * A record is read field by field. A quoted field is measured first (its end and
 * the length once "" are folded), then copied; an unquoted one ends at the next
 * comma or line break. Positions count lines from 1 and columns in bytes from 1.
 */
#include "hibus/csv.h"

#include <stdlib.h>
#include <string.h>

void csv_init(struct csv *c, const char *s, size_t len, bool trim, size_t max_field)
{
    memset(c, 0, sizeof *c);
    c->p = c->line_start = s;
    c->end = s + len;
    c->line = 1;
    c->trim = trim;
    c->max_field = max_field;
}

static void clear(struct csv *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->f[i].s);
    c->n = 0;
}

void csv_free(struct csv *c)
{
    clear(c);
    free(c->f);
    c->f = NULL;
    c->cap = 0;
}

bool csv_blank(const struct csv *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->f[i].len > 0)
            return false;
    return true;
}

static int col_of(const struct csv *c)
{
    return (int)(c->p - c->line_start) + 1;
}

static bool at_break(const struct csv *c)
{
    return c->p < c->end && (*c->p == '\r' || *c->p == '\n');
}

/* Past one line break (CRLF, LF or CR), counting the line. */
static void take_break(struct csv *c)
{
    if (c->p < c->end && *c->p == '\r')
        c->p++;
    if (c->p < c->end && *c->p == '\n')
        c->p++;
    c->line++;
    c->line_start = c->p;
}

/* After a malformed field: on to the next line. */
static void skip_line(struct csv *c)
{
    while (c->p < c->end && !at_break(c))
        c->p++;
    take_break(c);
}

static void skip_blanks(struct csv *c)
{
    while (c->trim && c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int fail(struct csv *c, enum csv_error e, int line, int col, int rc)
{
    c->err = e;
    c->err_line = line;
    c->err_col = col;
    return rc;
}

/* A quoted field at c->p (the opening quote) into *out. */
static int quoted(struct csv *c, struct csv_field *fld)
{
    const char *q = c->p + 1;
    size_t n = 0;
    while (q < c->end && !(*q == '"' && (q + 1 >= c->end || q[1] != '"'))) {
        q += *q == '"' ? 2 : 1;
        n++;
    }
    if (q >= c->end)
        return fail(c, CSV_E_UNTERMINATED, fld->line, fld->col, -2);
    char *s = malloc(n + 1);
    if (s == NULL)
        return fail(c, CSV_E_NOMEM, fld->line, fld->col, -2);
    n = 0;
    for (const char *k = c->p + 1; k < q; k++) {
        s[n++] = *k;
        if (*k == '"')
            k++; /* the second quote of "" */
        else if (*k == '\n' || (*k == '\r' && (k + 1 >= q || k[1] != '\n'))) {
            c->line++;
            c->line_start = k + 1;
        }
    }
    s[n] = '\0';
    fld->s = s;
    fld->len = n;
    c->p = q + 1;
    skip_blanks(c);
    if (c->p < c->end && *c->p != ',' && !at_break(c)) {
        int line = c->line, col = col_of(c);
        skip_line(c);
        return fail(c, CSV_E_AFTER_QUOTE, line, col, -1);
    }
    return 1;
}

static int unquoted(struct csv *c, struct csv_field *fld)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && !at_break(c)) {
        if (*c->p == '"') {
            int col = col_of(c), line = c->line;
            skip_line(c);
            return fail(c, CSV_E_QUOTE_IN_FIELD, line, col, -1);
        }
        c->p++;
    }
    const char *stop = c->p;
    while (c->trim && stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    fld->len = (size_t)(stop - start);
    fld->s = malloc(fld->len + 1);
    if (fld->s == NULL)
        return fail(c, CSV_E_NOMEM, fld->line, fld->col, -2);
    memcpy(fld->s, start, fld->len);
    fld->s[fld->len] = '\0';
    return 1;
}

int csv_next(struct csv *c)
{
    clear(c);
    c->err = CSV_E_NONE;
    if (c->p >= c->end)
        return 0;
    c->rec_line = c->line;
    for (;;) {
        skip_blanks(c);
        struct csv_field fld = {NULL, 0, c->line, col_of(c)};
        int rc = c->p < c->end && *c->p == '"' ? quoted(c, &fld) : unquoted(c, &fld);
        if (rc != 1) {
            free(fld.s);
            return rc;
        }
        if (c->max_field > 0 && fld.len > c->max_field) {
            free(fld.s);
            skip_line(c);
            c->err_len = fld.len;
            return fail(c, CSV_E_TOO_LONG, fld.line, fld.col, -1);
        }
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            struct csv_field *f = realloc(c->f, cap * sizeof *f);
            if (f == NULL) {
                free(fld.s);
                return fail(c, CSV_E_NOMEM, fld.line, fld.col, -2);
            }
            c->f = f;
            c->cap = cap;
        }
        c->f[c->n++] = fld;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end)
            take_break(c);
        return 1;
    }
}
