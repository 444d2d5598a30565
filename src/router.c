/*
 * router.c - which channel serves a request (see hibus/router.h).
 *
 * Entry points: router_match (per request, any thread), router_path_matches, and
 * router_check_ties (called once by config_load).
 *
 * Channels arrive sorted by (priority, name); the first enabled channel whose path,
 * method and content type all match wins. When none does, the answer is the most
 * specific miss, so the listener can say 404, 405 or 415 as HTTP expects.
 *
 * A path prefix matches on segment boundaries: "/lmis" matches "/lmis" and
 * "/lmis/x" but not "/lmisx"; a prefix ending in '/' matches everything below it.
 */
#include "hibus/router.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool prefix_matches(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return false;
    return path[n] == '\0' || path[n] == '/' || (n > 0 && prefix[n - 1] == '/');
}

bool router_path_matches(const struct config_channel *ch, const char *path)
{
    if (ch->path == NULL) /* a poll channel: nothing is posted to it */
        return false;
    switch (ch->path_kind) {
    case CONFIG_PATH_EXACT: return strcmp(ch->path, path) == 0;
    case CONFIG_PATH_PREFIX: return prefix_matches(ch->path, path);
    case CONFIG_PATH_REGEX: return regexec(&ch->path_re, path, 0, NULL, 0) == 0;
    }
    return false;
}

static bool method_matches(const struct config_channel *ch, const char *method)
{
    if (ch->n_methods == 0)
        return true;
    for (size_t i = 0; i < ch->n_methods; i++)
        if (strcmp(ch->methods[i], method) == 0)
            return true;
    return false;
}

/* The media type of a Content-Type header: parameters dropped, spaces trimmed. */
static bool content_type_matches(const struct config_channel *ch, const char *content_type)
{
    if (ch->n_content_types == 0)
        return true;
    if (content_type == NULL)
        return false;
    size_t b = 0, e = strcspn(content_type, ";");
    while (b < e && (content_type[b] == ' ' || content_type[b] == '\t'))
        b++;
    while (e > b && (content_type[e - 1] == ' ' || content_type[e - 1] == '\t'))
        e--;
    size_t len = e - b;
    for (size_t i = 0; i < ch->n_content_types; i++) {
        const char *t = ch->content_types[i];
        if (strlen(t) == len && strncasecmp(t, content_type + b, len) == 0)
            return true;
    }
    return false;
}

bool router_json_text(const json_t *doc, const char *dotted, char *out, size_t outlen)
{
    char key[256];
    const json_t *cur = doc;
    for (const char *p = dotted; cur != NULL;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof key || !json_is_object(cur))
            return false;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_object_get(cur, key);
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    int w;
    if (json_is_string(cur))
        w = snprintf(out, outlen, "%s", json_string_value(cur));
    else if (json_is_integer(cur))
        w = snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
    else if (json_is_real(cur))
        w = snprintf(out, outlen, "%.17g", json_real_value(cur));
    else if (json_is_boolean(cur))
        w = snprintf(out, outlen, "%s", json_is_true(cur) ? "true" : "false");
    else
        return false;
    return w >= 0 && (size_t)w < outlen;
}

/* The body is parsed once per request, and only if some channel asks. */
struct lazy_json {
    const char *body;
    size_t len;
    bool parsed;
    json_t *doc;
};

static bool json_conditions_hold(const struct config_channel *ch, struct lazy_json *lj)
{
    if (ch->n_json_match == 0)
        return true;
    if (!lj->parsed) {
        lj->parsed = true;
        if (lj->body != NULL)
            lj->doc = json_loadb(lj->body, lj->len, 0, NULL);
    }
    if (!json_is_object(lj->doc))
        return false;
    char text[1024];
    for (size_t i = 0; i < ch->n_json_match; i++)
        if (!router_json_text(lj->doc, ch->json_match[i].path, text, sizeof text) ||
            strcmp(text, ch->json_match[i].equals) != 0)
            return false;
    return true;
}

enum router_result router_match(const struct config_channel *chs, size_t n, const char *method,
                                const char *path, const char *content_type, const char *body,
                                size_t body_len, const struct config_channel **out)
{
    enum router_result best = ROUTER_NO_PATH;
    struct lazy_json lj = {.body = body, .len = body_len};
    for (size_t i = 0; i < n; i++) {
        const struct config_channel *ch = &chs[i];
        if (!ch->enabled || !router_path_matches(ch, path))
            continue;
        if (!method_matches(ch, method)) {
            if (best == ROUTER_NO_PATH)
                best = ROUTER_BAD_METHOD;
            continue;
        }
        if (!content_type_matches(ch, content_type)) {
            if (best != ROUTER_NO_BODY_MATCH)
                best = ROUTER_BAD_CONTENT_TYPE;
            continue;
        }
        if (!json_conditions_hold(ch, &lj)) {
            best = ROUTER_NO_BODY_MATCH;
            continue;
        }
        *out = ch;
        json_decref(lj.doc);
        return ROUTER_MATCH;
    }
    json_decref(lj.doc);
    return best;
}

/* Two channels whose match.json conditions require different values at the same
 * path can never match the same body. */
static bool json_disjoint(const struct config_channel *a, const struct config_channel *b)
{
    for (size_t i = 0; i < a->n_json_match; i++)
        for (size_t j = 0; j < b->n_json_match; j++)
            if (strcmp(a->json_match[i].path, b->json_match[j].path) == 0 &&
                strcmp(a->json_match[i].equals, b->json_match[j].equals) != 0)
                return true;
    return false;
}

/* Two lists of alternatives can both accept one value; an empty list accepts any. */
static bool lists_intersect(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na == 0 || nb == 0)
        return true;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (strcmp(a[i], b[j]) == 0)
                return true;
    return false;
}

/* Can some path match both rules? Exact and prefix rules are decided exactly (a
 * path matched by two prefixes is matched by the shorter one, so one prefix must
 * match the other); a regex against anything but an exact path is undecidable
 * here and counts as overlapping. */
static bool paths_may_overlap(const struct config_channel *a, const struct config_channel *b)
{
    if (a->path_kind > b->path_kind) {
        const struct config_channel *t = a;
        a = b;
        b = t;
    }
    /* now a->path_kind <= b->path_kind: EXACT < PREFIX < REGEX */
    if (a->path_kind == CONFIG_PATH_EXACT)
        return router_path_matches(b, a->path);
    if (a->path_kind == CONFIG_PATH_PREFIX && b->path_kind == CONFIG_PATH_PREFIX)
        return prefix_matches(a->path, b->path) || prefix_matches(b->path, a->path);
    return true;
}

void router_check_ties(const struct config_channel *chs, size_t n, struct hibus_diags *diags)
{
    for (size_t j = 1; j < n; j++) {
        const struct config_channel *b = &chs[j];
        if (!b->enabled)
            continue;
        for (size_t i = 0; i < j; i++) {
            const struct config_channel *a = &chs[i];
            if (!a->enabled || a->priority != b->priority || a->path == NULL || b->path == NULL)
                continue;
            if (!lists_intersect(a->methods, a->n_methods, b->methods, b->n_methods) ||
                !lists_intersect(a->content_types, a->n_content_types, b->content_types,
                                 b->n_content_types) ||
                !paths_may_overlap(a, b) || json_disjoint(a, b))
                continue;
            hibus_diags_add(diags, b->pos.file, b->pos.line, b->pos.col,
                            "channel \"%s\" and channel \"%s\" (%s:%d:%d) have the same priority "
                            "%d and can match the same request; give one of them a different "
                            "priority",
                            b->name, a->name, a->pos.file, a->pos.line, a->pos.col, b->priority);
        }
    }
}
