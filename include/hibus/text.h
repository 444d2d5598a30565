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

#endif
