/*
 * error.c - error codes, error values and diagnostic lists (see hibus/error.h).
 */
#include "hibus/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Made from HIBUS_ERRORS, so no code can lack a name, a sentence or a status. Switches
 * rather than arrays indexed by code: a retired code leaves a gap in the values, and a
 * value outside the list (a cast, memory gone wrong) must still get an answer. */
#define HIBUS_ERR_CASE_(name, value, http, sentence)                                               \
    case name: return sentence;
const char *hibus_strerror(enum hibus_err e)
{
    switch (e) {
        HIBUS_ERRORS(HIBUS_ERR_CASE_)
    }
    return "unknown error";
}
#undef HIBUS_ERR_CASE_

#define HIBUS_ERR_CASE_(name, value, http, sentence)                                               \
    case name: return #name;
const char *hibus_errname(enum hibus_err e)
{
    switch (e) {
        HIBUS_ERRORS(HIBUS_ERR_CASE_)
    }
    return "HIBUS_E_UNKNOWN";
}
#undef HIBUS_ERR_CASE_

#define HIBUS_ERR_CASE_(name, value, http, sentence)                                               \
    case name: return http;
unsigned hibus_http_status(enum hibus_err e)
{
    switch (e) {
        HIBUS_ERRORS(HIBUS_ERR_CASE_)
    }
    return 500;
}
#undef HIBUS_ERR_CASE_

enum hibus_err hibus_error_set(struct hibus_error *err, enum hibus_err code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->detail[0] = '\0';
    err->hint[0] = '\0';
    return code;
}

void hibus_error_detail(struct hibus_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void hibus_error_hint(struct hibus_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

void hibus_error_clear(struct hibus_error *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
}

void hibus_error_print(const struct hibus_error *err, FILE *f)
{
    fprintf(f, "%s\n", err->msg[0] ? err->msg : hibus_strerror(err->code));
    if (err->detail[0])
        fprintf(f, "DETAIL: %s\n", err->detail);
    if (err->hint[0])
        fprintf(f, "HINT: %s\n", err->hint);
}

void hibus_diags_add(struct hibus_diags *d, const char *file, int line, int col, const char *fmt,
                     ...)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct hibus_diag *v = realloc(d->v, cap * sizeof *v);
        if (v == NULL)
            abort(); /* cannot report that we cannot report */
        d->v = v;
        d->cap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    struct hibus_diag *x = &d->v[d->n++];
    x->file = strdup(file ? file : "");
    x->line = line;
    x->col = col;
    x->msg = strdup(buf);
    if (x->file == NULL || x->msg == NULL)
        abort();
}

void hibus_diags_print(const struct hibus_diags *d, FILE *f)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct hibus_diag *x = &d->v[i];
        if (x->line > 0)
            fprintf(f, "%s:%d:%d: %s\n", x->file, x->line, x->col, x->msg);
        else if (x->file[0])
            fprintf(f, "%s: %s\n", x->file, x->msg);
        else
            fprintf(f, "%s\n", x->msg);
    }
}

void hibus_diags_free(struct hibus_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].msg);
    }
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}

size_t hibus_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}
