/*
 * log.c - the server log (see hibus/log.h).
 *
 * Lines are formatted into a fixed buffer and cut with "..." rather than
 * allocating, so logging works even when memory is short.
 */
#include "hibus/log.h"

#include "hibus/text.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static atomic_int log_level_cur = LOG_LEVEL_INFO;
static atomic_int log_format_cur = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store(&log_level_cur, (int)level);
    atomic_store(&log_format_cur, (int)format);
}

int log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&log_level_cur);
}

int log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The largest length <= n that does not end inside a UTF-8 sequence of s. */
static size_t utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Appends s to buf as the inside of a JSON string: quotes, backslashes and control
 * characters escaped as JSON has them, a byte that is not UTF-8 as the text \\xNN
 * (JSON has no escape for a byte, and the line must stay valid JSON); a sequence
 * that does not fit whole is left out with the rest. */
static size_t json_escape(char *buf, size_t at, size_t cap, const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t ok = text_utf8_invalid_at(s + i, n - i); /* a valid run, then a bad byte */
        for (size_t end = i + ok; i < end;) {
            unsigned char c = (unsigned char)s[i];
            size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (at + len + 7 >= cap)
                return at;
            if (c == '"' || c == '\\') {
                buf[at++] = '\\';
                buf[at++] = (char)c;
            } else if (c == '\n') {
                buf[at++] = '\\';
                buf[at++] = 'n';
            } else if (c < 0x20 || c == 0x7f) {
                at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", c);
            } else {
                memcpy(buf + at, s + i, len);
                at += len;
            }
            i += len;
        }
        if (i < n) {
            if (at + 7 >= cap)
                return at;
            at += (size_t)snprintf(buf + at, cap - at, "\\\\x%02X", (unsigned char)s[i]);
            i++;
        }
    }
    return at;
}

/* The value of the last "key=" in a message that starts a word: its length (up
 * to the next space, without a trailing ':' or ','), or 0 when there is none or it
 * holds anything but the characters of a name. The last, because hibus writes
 * these after whatever a request brought (a path with " channel=x" in it cannot
 * stand for the real one, which follows it); names only, so that quoted text is
 * never taken for one. */
static size_t msg_field(const char *msg, const char *key, const char **val)
{
    size_t klen = strlen(key), found = 0;
    for (const char *p = strstr(msg, key); p != NULL; p = strstr(p + 1, key)) {
        if (p != msg && p[-1] != ' ')
            continue;
        const char *v = p + klen;
        size_t n = strcspn(v, " ");
        while (n > 0 && (v[n - 1] == ':' || v[n - 1] == ','))
            n--;
        if (n == 0 || n > 128 ||
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@") < n)
            continue;
        *val = v;
        found = n;
    }
    return found;
}

/* JSON: "tx", "channel", "client" and "status" as fields of their own, from the
 * message's tx=, channel=, client=, status= (what the text line shows inline),
 * so that a log collector can select on them. */
static size_t json_fields(char *line, size_t at, size_t cap, const char *msg)
{
    static const char *const keys[] = {"tx=", "channel=", "client=", "status="};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v;
        size_t n = msg_field(msg, keys[i], &v);
        if (n == 0 || at + 6 * n + 48 >= cap) /* escaped, a byte takes at most 6 */
            continue;
        size_t klen = strlen(keys[i]) - 1;
        bool number = i == 0 && strspn(v, "0123456789") >= n;
        at += (size_t)snprintf(line + at, cap - at, "\"%.*s\":%s", (int)klen, keys[i],
                               number ? "" : "\"");
        char val[132];
        memcpy(val, v, n);
        val[n] = '\0';
        at = number ? at + (size_t)snprintf(line + at, cap - at, "%s", val)
                    : json_escape(line, at, cap, val);
        at += (size_t)snprintf(line + at, cap - at, "%s,", number ? "" : "\"");
    }
    return at;
}

void log_write(enum log_level level, const char *req, const char *subsys, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m >= (int)sizeof msg)
        memcpy(msg + utf8_cut(msg, sizeof msg - 4), "...", 4);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[LOG_LINE_MAX + 256];
    size_t at;
    const char *lv = level_names[level];
    if (atomic_load(&log_format_cur) == LOG_FORMAT_JSON) {
        at = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",", when, lv);
        if (req) {
            at += (size_t)snprintf(line + at, sizeof line - at, "\"req\":\"");
            at = json_escape(line, at, sizeof line, req);
            at += (size_t)snprintf(line + at, sizeof line - at, "\",");
        }
        at = json_fields(line, at, sizeof line / 4, msg);
        at += (size_t)snprintf(line + at, sizeof line - at, "\"subsys\":\"%s\",\"msg\":\"", subsys);
        at = json_escape(line, at, sizeof line - 3, msg);
        line[at++] = '"';
        line[at++] = '}';
    } else {
        at = (size_t)snprintf(line, sizeof line, "%s %s %s%s%s%s: ", when, lv, req ? "req=" : "",
                              req ? req : "", req ? " " : "", subsys);
        at = text_escape(line, at, sizeof line - 1, msg);
    }
    line[at++] = '\n';
    /* One write per line, so lines from different threads never interleave. */
    ssize_t r = write(STDERR_FILENO, line, at);
    (void)r;
}
