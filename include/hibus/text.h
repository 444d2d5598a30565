/*
 * text.h - checks on text that arrives as bytes: request paths and queries,
 * bodies, values read back from the transaction log.
 */
#ifndef HIBUS_TEXT_H
#define HIBUS_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Offset of the first byte of s[0..len) that is not part of well-formed UTF-8 (no
 * overlong forms, no surrogates, nothing above U+10FFFF), or len if all of it is. */
size_t text_utf8_invalid_at(const void *s, size_t len);
static inline bool text_utf8_valid(const void *s, size_t len)
{
    return text_utf8_invalid_at(s, len) == len;
}

/* Appends s (NUL-terminated) to buf[at..cap) for a line of text and returns the new
 * end: control characters (a CR or LF that would start a forged line, an ESC that
 * would drive a terminal) and bytes that are not UTF-8 become \xNN, a backslash
 * \\; what does not fit whole is left out with the rest. buf is not terminated. */
size_t text_escape(char *buf, size_t at, size_t cap, const char *s);

#endif
