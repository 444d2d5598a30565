/*
 * text.c - checks on text that arrives as bytes (see hibus/text.h).
 */
#include "hibus/text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t text_utf8_invalid_at(const void *bytes, size_t len)
{
    const unsigned char *s = bytes;
    size_t i = 0;
    while (i < len) {
        /* ASCII eight bytes at a time: most payloads are all ASCII. */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += n + 1;
    }
    return len;
}

/* Appends s to buf for a text line: control characters (a CR or LF that would
 * start a forged line, an ESC that would drive the operator's terminal) and bytes
 * that are not UTF-8 are written as \\xNN, a backslash as \\\\; what does not fit
 * whole is left out with the rest. Messages quote what clients send. */
size_t text_escape(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t ok = text_utf8_invalid_at(s + i, n - i); /* a valid run, then a bad byte */
        for (size_t end = i + ok; i < end; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f || c == '\\') {
                if (at + 4 >= cap)
                    return at;
                if (c == '\\') {
                    buf[at++] = '\\';
                    buf[at++] = '\\';
                } else {
                    at += (size_t)snprintf(buf + at, cap - at, "\\x%02X", c);
                }
                continue;
            }
            size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (at + len >= cap)
                return at;
            memcpy(buf + at, s + i, len);
            at += len;
            i += len - 1;
        }
        if (i < n) {
            if (at + 4 >= cap)
                return at;
            at += (size_t)snprintf(buf + at, cap - at, "\\x%02X", (unsigned char)s[i]);
            i++;
        }
    }
    return at;
}
