/*
 * error.h - hibus error codes, error values and diagnostic lists.
 *
 * Every fallible function returns an enum hibus_err and may fill a caller-owned
 * struct hibus_error (message, detail, hint). Configuration checks collect many
 * problems at once in a struct hibus_diags, each with file:line:col.
 * All functions here are thread-safe (they touch only their arguments).
 */
#ifndef HIBUS_ERROR_H
#define HIBUS_ERROR_H

#include <stddef.h>
#include <stdio.h>

#define HIBUS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/*
 * Every error code, once: X(constant, value, HTTP status, sentence).
 *   value        stable: never renumber; retire a code by deleting its row, leaving a gap
 *   HTTP status  what a client gets when its request fails with this code; the listener
 *                refines only HIBUS_E_INVALID from the router, to 405 (method) and 415
 *                (content type), which HTTP defines for exactly those cases
 *   sentence     the generic meaning, hibus_strerror()
 * The constant's own spelling is its stable name, hibus_errname(), sent in JSON error
 * bodies. The enum and the three functions below are all made from this list.
 */
#define HIBUS_ERRORS(X)                                                                            \
    X(HIBUS_OK, 0, 200, "no error")                                                                \
    X(HIBUS_E_NOMEM, 1, 500, "out of memory")                                                      \
    X(HIBUS_E_IO, 2, 500, "input/output error")                                                    \
    X(HIBUS_E_CONFIG, 3, 500, "invalid configuration")                                             \
    X(HIBUS_E_INVALID, 4, 422, "invalid input")                                                    \
    X(HIBUS_E_DB, 5, 503, "database unavailable or statement failed")                              \
    X(HIBUS_E_NOT_FOUND, 6, 404, "not found")                                                      \
    X(HIBUS_E_AUTH, 7, 401, "authentication required or failed")                                   \
    X(HIBUS_E_FORBIDDEN, 8, 403, "not allowed")                                                    \
    X(HIBUS_E_TARGET, 9, 502, "target did not answer")                                             \
    X(HIBUS_E_TIMEOUT, 10, 504, "timed out")                                                       \
    X(HIBUS_E_TOO_LARGE, 11, 413, "input too large")                                               \
    X(HIBUS_E_UNSUPPORTED, 12, 501, "not supported yet")                                           \
    X(HIBUS_E_BAD_REQUEST, 13, 400, "malformed request")                                           \
    X(HIBUS_E_TOO_MANY, 14, 429, "too many requests")

#define HIBUS_ERR_ENUM_(name, value, http, sentence) name = value,
enum hibus_err { HIBUS_ERRORS(HIBUS_ERR_ENUM_) };
#undef HIBUS_ERR_ENUM_

struct hibus_error {
    enum hibus_err code;
    char msg[256];    /* primary message: lower case, no trailing period */
    char detail[512]; /* facts, whole sentences; may be empty */
    char hint[256];   /* what to do, whole sentences; may be empty */
};

/* Generic sentence for a code; "unknown error" for a value not in the list. */
const char *hibus_strerror(enum hibus_err e);
/* Stable machine name for a code, e.g. "HIBUS_E_DB"; used in JSON bodies.
 * "HIBUS_E_UNKNOWN" for a value not in the list. */
const char *hibus_errname(enum hibus_err e);
/* The HTTP status a client gets for a code, e.g. 503 for HIBUS_E_DB; 500 for a value
 * not in the list. */
unsigned hibus_http_status(enum hibus_err e);

/* Each of these accepts err == NULL (then does nothing). hibus_error_set clears
 * detail and hint. They return the code they were given, or HIBUS_OK for detail/hint. */
enum hibus_err hibus_error_set(struct hibus_error *err, enum hibus_err code, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);
void hibus_error_detail(struct hibus_error *err, const char *fmt, ...) HIBUS_PRINTF(2, 3);
void hibus_error_hint(struct hibus_error *err, const char *fmt, ...) HIBUS_PRINTF(2, 3);
void hibus_error_clear(struct hibus_error *err);
/* "msg\nDETAIL: ...\nHINT: ...\n" to f. */
void hibus_error_print(const struct hibus_error *err, FILE *f);

/* One problem found in a file, reported as "file:line:col: message". line and col
 * are 1-based; 0 means unknown (then omitted). */
struct hibus_diag {
    char *file;
    int line;
    int col;
    char *msg;
};

struct hibus_diags {
    struct hibus_diag *v;
    size_t n;
    size_t cap;
};

void hibus_diags_add(struct hibus_diags *d, const char *file, int line, int col, const char *fmt,
                     ...) HIBUS_PRINTF(5, 6);
/* Each diagnostic on its own line, in the order added. */
void hibus_diags_print(const struct hibus_diags *d, FILE *f);
void hibus_diags_free(struct hibus_diags *d);

/* Bounded copy: returns strlen(src); a result >= size means dst was truncated. */
size_t hibus_strlcpy(char *dst, const char *src, size_t size);

#endif
