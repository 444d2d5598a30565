/*
 * buf.c - the growable byte buffer (see hibus/buf.h): capacity doubles, from 64.
 */
#include "hibus/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "hibus/text.h"

bool buf_reserve(struct buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *s = realloc(b->s, cap);
    if (s == NULL)
        return false;
    if (b->s == NULL)
        s[0] = '\0';
    b->s = s;
    b->cap = cap;
    return true;
}

bool buf_append(struct buf *b, const void *data, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    if (n > 0)
        memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

char *buf_take(struct buf *b, size_t *len)
{
    if (b->s == NULL && !buf_reserve(b, 0))
        return NULL;
    char *s = b->s;
    if (len != NULL)
        *len = b->len;
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void buf_free(struct buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

bool buf_json_string(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (!text_utf8_valid(s, n) || !buf_reserve(b, n + 2))
        return false;
    size_t at = b->len;
    b->s[b->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0';) {
        const unsigned char *run = p; /* bytes that need no escape go in one copy */
        while (*p >= 0x20 && *p != '"' && *p != '\\')
            p++;
        if (p > run && !buf_append(b, run, (size_t)(p - run)))
            goto nomem;
        if (*p == '\0')
            break;
        char esc[8];
        switch (*p) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\b': memcpy(esc, "\\b", 3); break;
        case '\f': memcpy(esc, "\\f", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        default: snprintf(esc, sizeof esc, "\\u%04X", *p); break;
        }
        if (!buf_append(b, esc, strlen(esc)))
            goto nomem;
        p++;
    }
    if (buf_append(b, "\"", 1))
        return true;
nomem:
    b->len = at;
    b->s[at] = '\0';
    return false;
}

void buf_vfmt_label(char *out, size_t size, const char *fmt, va_list ap)
{
    if (size == 0)
        return;
    int n = vsnprintf(out, size, fmt, ap);
    if (n < 0)
        out[0] = '\0';
    else if ((size_t)n >= size && size > 3)
        memcpy(out + size - 4, "...", 4);
}
