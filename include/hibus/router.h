/*
 * router.h - which channel serves a request.
 *
 * Channels are tried in priority order (lower first, then name); the first whose
 * path, method and content type all match wins. Disabled channels never match.
 * Thread-safe: reads only the immutable config.
 */
#ifndef HIBUS_ROUTER_H
#define HIBUS_ROUTER_H

#include "hibus/config.h"

enum router_result {
    ROUTER_MATCH = 0,
    ROUTER_NO_PATH = 1,         /* no enabled channel serves this path: 404 */
    ROUTER_BAD_METHOD = 2,      /* a channel serves the path, not this method: 405 */
    ROUTER_BAD_CONTENT_TYPE = 3 /* path and method match, content type does not: 415 */
};

/* content_type may be NULL (no header) or carry parameters ("; charset=utf-8"),
 * which are ignored; comparison is case-insensitive. On ROUTER_MATCH *out is set. */
enum router_result router_match(const struct config *cfg, const char *method, const char *path,
                                const char *content_type, const struct config_channel **out);

/* True when the path alone matches the channel's path rule. */
bool router_path_matches(const struct config_channel *ch, const char *path);

/* Reports, as diagnostics at the later channel's position, every pair of enabled
 * channels with the same priority whose rules could both match one request
 * (the first match would then depend on file order). Regex rules that cannot be
 * proven disjoint count as overlapping. Called by config_load. */
void router_check_ties(const struct config_channel *chs, size_t n, struct hibus_diags *diags);

#endif
