/*
 * buf.h - a growable byte buffer, always NUL-terminated once it holds anything, for
 * the texts hibus builds or receives piece by piece (configuration values, target
 * answers, bodies read from a pipe, rewritten JSON). Not thread-safe: one buffer
 * belongs to one thread.
 */
#ifndef HIBUS_BUF_H
#define HIBUS_BUF_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *s;    /* NULL until something is reserved or appended */
    size_t len; /* bytes in s, not counting the NUL after them */
    size_t cap; /* bytes allocated */
};

/* Makes room for extra more bytes (and the NUL). false when out of memory (b unchanged). */
bool buf_reserve(struct buf *b, size_t extra);
/* Appends n bytes. false when out of memory (b unchanged). */
bool buf_append(struct buf *b, const void *data, size_t n);
/* The text (caller frees; "" when nothing was appended, NULL when out of memory),
 * its length in *len when len is not NULL; b is left empty. */
char *buf_take(struct buf *b, size_t *len);
void buf_free(struct buf *b);

/* Appends s (NUL-terminated) as a JSON string literal, quotes included, as jansson's
 * compact output writes it: '"', '\\' and control characters escaped, everything
 * else (UTF-8 included) as it is. false when out of memory or when s is not
 * well-formed UTF-8 (b is then left as it was). For writers that emit JSON straight
 * into a buffer rather than building a tree first. */
bool buf_json_string(struct buf *b, const char *s);

/* vsnprintf into out[size] for labels in messages: a result that does not fit ends
 * in "..." rather than being cut silently; an encoding error gives "". */
void buf_vfmt_label(char *out, size_t size, const char *fmt, va_list ap);

#endif
