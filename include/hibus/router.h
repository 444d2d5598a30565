/*
 * router.h - which channel serves a request.
 *
 * Channels are tried in priority order (lower first, then name); the first whose
 * path, method and content type all match wins. Disabled channels never match.
 * Thread-safe: reads only the immutable channels. Depends on channel.h, not on the
 * configuration that loads the channels (config_load calls router_check_ties).
 */
#ifndef HIBUS_ROUTER_H
#define HIBUS_ROUTER_H

#include <jansson.h>

#include "hibus/channel.h"
#include "hibus/error.h"

enum router_result {
    ROUTER_MATCH = 0,
    ROUTER_NO_PATH = 1,          /* no enabled channel serves this path: 404 */
    ROUTER_BAD_METHOD = 2,       /* a channel serves the path, not this method: 405 */
    ROUTER_BAD_CONTENT_TYPE = 3, /* path and method match, content type does not: 415 */
    ROUTER_NO_BODY_MATCH = 4     /* all that, but no channel's match.json holds: 404 */
};

/* content_type may be NULL (no header) or carry parameters ("; charset=utf-8"),
 * which are ignored; comparison is case-insensitive. body may be NULL; it is
 * parsed as JSON at most once, and only when a candidate channel has match.json
 * conditions (a body that is not JSON matches no such channel).
 * On ROUTER_MATCH *out is set. */
enum router_result router_match(const struct config_channel *chs, size_t n, const char *method,
                                const char *path, const char *content_type, const char *body,
                                size_t body_len, const struct config_channel **out);

/* The value at a dotted path of a JSON object as text (strings as they are,
 * integers, reals and booleans as written); false when absent or not a scalar. */
bool router_json_text(const json_t *doc, const char *dotted, char *out, size_t outlen);

/* True when the path alone matches the channel's path rule. */
bool router_path_matches(const struct config_channel *ch, const char *path);

/* Reports, as diagnostics at the later channel's position, every pair of enabled
 * channels with the same priority whose rules could both match one request
 * (the first match would then depend on file order). Regex rules that cannot be
 * proven disjoint count as overlapping. Called by config_load. */
void router_check_ties(const struct config_channel *chs, size_t n, struct hibus_diags *diags);

#endif
