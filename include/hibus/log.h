/*
 * log.h - the server log: one line per event on stderr, plain text or JSON.
 *
 * A line is: UTC time, level, req=<request id> (when there is one), subsystem,
 * message. Each .c that logs defines LOG_SUBSYS before including this header.
 * Thread-safe: each line is formatted into a bounded stack buffer and written
 * with a single write(2); the level is checked before any formatting.
 *
 * Levels, and where they go (all to stderr, which systemd/journald collects):
 *   ERROR  something failed that an operator must look at (database lost, target down)
 *   WARN   something unusual that hibus handled (a retry, a refused request)
 *   INFO   the life of the daemon (start, stop, config loaded) and one line per request
 *   DEBUG  details for developers; payload bodies only ever appear here
 */
#ifndef HIBUS_LOG_H
#define HIBUS_LOG_H

#include "hibus/error.h"

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN = 1, LOG_LEVEL_INFO = 2, LOG_LEVEL_DEBUG = 3 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

void log_setup(enum log_level level, enum log_format format);
int log_enabled(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *s);

void log_write(enum log_level level, const char *req, const char *subsys, const char *fmt, ...)
    HIBUS_PRINTF(4, 5);

#ifndef LOG_SUBSYS
#define LOG_SUBSYS "hibus"
#endif

#define LOG_AT(lvl, req, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, req, LOG_SUBSYS, __VA_ARGS__);                                          \
    } while (0)
#define LOG_ERROR(req, ...) LOG_AT(LOG_LEVEL_ERROR, req, __VA_ARGS__)
#define LOG_WARN(req, ...) LOG_AT(LOG_LEVEL_WARN, req, __VA_ARGS__)
#define LOG_INFO(req, ...) LOG_AT(LOG_LEVEL_INFO, req, __VA_ARGS__)
#define LOG_DEBUG(req, ...) LOG_AT(LOG_LEVEL_DEBUG, req, __VA_ARGS__)

#endif
