/*
 * config_poll.c - the poll: section of a channel file, for the configuration loader
 * (see config_internal.h): the schedule (a cron expression, or every: an interval),
 * the source (url, method, body, auth, tls, timeout), the cursor, the id of an item
 * and the paging of the answers. What each key means is in docs/polling.md; the
 * poller (src/poller.c) is what runs it.
 */
#include "config_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    K_P_SCHEDULE,
    K_P_EVERY,
    K_P_TIMEZONE,
    K_P_URL,
    K_P_METHOD,
    K_P_BODY,
    K_P_AUTH,
    K_P_TLS,
    K_P_TIMEOUT,
    K_P_CURSOR,
    K_P_ITEM_ID,
    K_P_PAGING,
    K_P_LOOKUPS
};
static const struct key_spec poll_keys[] = {
    [K_P_SCHEDULE] = {"schedule", false}, [K_P_EVERY] = {"every", false},
    [K_P_TIMEZONE] = {"timezone", false}, [K_P_URL] = {"url", true},
    [K_P_METHOD] = {"method", false},     [K_P_BODY] = {"body", false},
    [K_P_AUTH] = {"auth", false},         [K_P_TLS] = {"tls", false},
    [K_P_TIMEOUT] = {"timeout", false},   [K_P_CURSOR] = {"cursor", false},
    [K_P_ITEM_ID] = {"item_id", false},   [K_P_PAGING] = {"paging", false},
    [K_P_LOOKUPS] = {"lookups", false},
};
/* a key added to the enum and not to the table would leave a NULL name in it */
_Static_assert(sizeof poll_keys / sizeof poll_keys[0] == K_P_LOOKUPS + 1, "poll_keys");

enum { K_L_ID, K_L_URL, K_L_INTO };
static const struct key_spec lookup_keys[] = {
    [K_L_ID] = {"id", true},
    [K_L_URL] = {"url", true},
    [K_L_INTO] = {"into", true},
};
#define POLL_MAX_LOOKUPS 8

enum { K_C_PARAM, K_C_FROM, K_C_OVERLAP, K_C_FROM_ITEMS, K_C_TOKEN };
static const struct key_spec cursor_keys[] = {
    [K_C_PARAM] = {"param", true},
    [K_C_FROM] = {"from", false}, /* required unless token (checked below) */
    [K_C_OVERLAP] = {"overlap", false},
    [K_C_FROM_ITEMS] = {"from_items", false},
    [K_C_TOKEN] = {"token", false},
};

enum {
    K_G_ITEMS,
    K_G_PAGE_PARAM,
    K_G_NEXT_TOKEN,
    K_G_NEXT_URL,
    K_G_SIZE_PARAM,
    K_G_SIZE,
    K_G_FIRST_PAGE,
    K_G_LAST,
    K_G_TOTAL_PAGES,
    K_G_TOKEN_PARAM,
    K_G_MAX_PAGES
};
static const struct key_spec paging_keys[] = {
    [K_G_ITEMS] = {"items", false},
    [K_G_PAGE_PARAM] = {"page_param", false},
    [K_G_NEXT_TOKEN] = {"next_token", false},
    [K_G_NEXT_URL] = {"next_url", false},
    [K_G_SIZE_PARAM] = {"size_param", false},
    [K_G_SIZE] = {"size", false},
    [K_G_FIRST_PAGE] = {"first_page", false},
    [K_G_LAST] = {"last", false},
    [K_G_TOTAL_PAGES] = {"total_pages", false},
    [K_G_TOKEN_PARAM] = {"token_param", false},
    [K_G_MAX_PAGES] = {"max_pages", false},
};

static const char *const poll_methods[] = {"GET", "POST", NULL};

/* poll.every: at least a second (the poller looks once a second), at most a day. */
static const struct config_duration_range every_range = {1000, CONFIG_DAY_MS, "1s .. 24h",
                                                         "2s, 30s, 5m or 1h"};

/* poll.cursor.overlap: 0 (none) up to a day. */
static const struct config_duration_range overlap_range = {0, CONFIG_DAY_MS, "0 .. 24h",
                                                           "30s, 5m or 1h"};

/* "content", "pager.pageCount": non-empty names separated by single dots. */
static bool is_dotted_path(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n == 0)
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

static void get_path(struct loader *ld, const yaml_node_t *n, const char *what, char **out)
{
    if (n == NULL || !config_get_string(ld, n, what, true, out))
        return;
    if (!is_dotted_path(*out)) {
        config_err_at(ld, n,
                      "invalid path \"%s\" for %s (expected names separated by \".\", like "
                      "pager.pageCount)",
                      *out, what);
        free(*out);
        *out = NULL;
    }
}

/* A query parameter's name: sent as written, so it must need no escaping. */
static void get_param(struct loader *ld, const yaml_node_t *n, const char *what, char **out)
{
    if (n == NULL || !config_get_string(ld, n, what, true, out))
        return;
    for (const char *c = *out; *c; c++) {
        if (!config_is_name_char(*c) && *c != '[' && *c != ']') {
            config_err_at(ld, n,
                          "invalid query parameter name \"%s\" for %s (letters, digits, \"-\", "
                          "\"_\", \".\" and brackets)",
                          *out, what);
            free(*out);
            *out = NULL;
            return;
        }
    }
}

static void load_cursor(struct loader *ld, yaml_node_t *n, struct config_poll *p)
{
    struct found f[sizeof cursor_keys / sizeof cursor_keys[0]];
    if (!MAP_KEYS(ld, n, "poll.cursor", cursor_keys, f))
        return;
    get_param(ld, f[K_C_PARAM].val, "poll.cursor.param", &p->cursor_param);
    if (f[K_C_FROM].val)
        config_get_string(ld, f[K_C_FROM].val, "poll.cursor.from", true, &p->cursor_from);
    else if (f[K_C_TOKEN].val == NULL)
        config_err_at(ld, n,
                      "poll.cursor needs from: the cursor sent before the first successful "
                      "pull (with token: it may be left out, and the first pull sends none)");
    if (f[K_C_OVERLAP].val)
        config_get_duration_in(ld, f[K_C_OVERLAP].val, "poll.cursor.overlap", &overlap_range,
                               &p->cursor_overlap_ms);
    get_path(ld, f[K_C_FROM_ITEMS].val, "poll.cursor.from_items", &p->cursor_items);
    get_path(ld, f[K_C_TOKEN].val, "poll.cursor.token", &p->cursor_token);
    if (f[K_C_FROM_ITEMS].val && f[K_C_TOKEN].val)
        config_err_at(ld, f[K_C_TOKEN].key,
                      "poll.cursor.token and poll.cursor.from_items exclude each other: the "
                      "next cursor is either the source's token or the items' largest value");
    if (f[K_C_OVERLAP].val && (f[K_C_FROM_ITEMS].val || f[K_C_TOKEN].val))
        config_err_at(ld, f[K_C_OVERLAP].key,
                      "poll.cursor.overlap applies only to the cursor hibus takes from its own "
                      "clock; with %s the source's own values are the cursor",
                      f[K_C_TOKEN].val ? "token" : "from_items");
}

/* Keys of paging: that belong to one style only. */
static void only_with(struct loader *ld, const struct found *f, size_t k, bool ok,
                      const char *style)
{
    if (f[k].key != NULL && !ok)
        config_err_at(ld, f[k].key, "poll.paging.%s applies only with %s", paging_keys[k].name,
                      style);
}

static void load_paging(struct loader *ld, yaml_node_t *n, struct config_poll *p)
{
    struct found f[sizeof paging_keys / sizeof paging_keys[0]];
    if (!MAP_KEYS(ld, n, "poll.paging", paging_keys, f))
        return;
    get_path(ld, f[K_G_ITEMS].val, "poll.paging.items", &p->items);
    const struct found *style =
        config_exactly_one(ld, f, K_G_PAGE_PARAM, K_G_NEXT_URL, paging_keys, "poll.paging",
                           "page_param, next_token or next_url");
    if (style == &f[K_G_PAGE_PARAM]) {
        p->paging = CONFIG_PAGING_PAGE;
        get_param(ld, style->val, "poll.paging.page_param", &p->page_param);
    } else if (style == &f[K_G_NEXT_TOKEN]) {
        p->paging = CONFIG_PAGING_TOKEN;
        get_path(ld, style->val, "poll.paging.next_token", &p->next_token);
        if (f[K_G_TOKEN_PARAM].val == NULL)
            config_err_at(ld, style->key,
                          "poll.paging.next_token needs token_param: the query parameter that "
                          "sends the token back");
    } else if (style == &f[K_G_NEXT_URL]) {
        p->paging = CONFIG_PAGING_NEXT_URL;
        get_path(ld, style->val, "poll.paging.next_url", &p->next_url);
    }
    bool page = p->paging == CONFIG_PAGING_PAGE;
    only_with(ld, f, K_G_SIZE_PARAM, page, "page_param");
    only_with(ld, f, K_G_SIZE, page, "page_param");
    only_with(ld, f, K_G_FIRST_PAGE, page, "page_param");
    only_with(ld, f, K_G_LAST, page, "page_param");
    only_with(ld, f, K_G_TOTAL_PAGES, page, "page_param");
    only_with(ld, f, K_G_TOKEN_PARAM, p->paging == CONFIG_PAGING_TOKEN, "next_token");
    only_with(ld, f, K_G_MAX_PAGES, p->paging != CONFIG_PAGING_NONE,
              "page_param, next_token or next_url");
    if (page) {
        get_param(ld, f[K_G_SIZE_PARAM].val, "poll.paging.size_param", &p->size_param);
        if (f[K_G_SIZE].val)
            config_get_int(ld, f[K_G_SIZE].val, "poll.paging.size", 1, 100000, &p->size);
        if (f[K_G_SIZE_PARAM].val && f[K_G_SIZE].val == NULL)
            config_err_at(ld, f[K_G_SIZE_PARAM].key,
                          "poll.paging.size_param needs size: the page size to ask for");
        if (f[K_G_FIRST_PAGE].val)
            config_get_int(ld, f[K_G_FIRST_PAGE].val, "poll.paging.first_page", 0, 1,
                           &p->first_page);
        get_path(ld, f[K_G_LAST].val, "poll.paging.last", &p->last);
        get_path(ld, f[K_G_TOTAL_PAGES].val, "poll.paging.total_pages", &p->total_pages);
    }
    if (p->paging == CONFIG_PAGING_TOKEN)
        get_param(ld, f[K_G_TOKEN_PARAM].val, "poll.paging.token_param", &p->token_param);
    if (f[K_G_MAX_PAGES].val)
        config_get_int(ld, f[K_G_MAX_PAGES].val, "poll.paging.max_pages", 1, 1000000,
                       &p->max_pages);
}

/* The time zone database the zone name is checked against ($TZDIR, as glibc
 * reads it, else the system's). PostgreSQL, which applies the zone, may have a
 * database of its own; a name it does not know fails the look for due slots,
 * which is logged. */
static const char *zoneinfo_dir(void)
{
    const char *d = getenv("TZDIR");
    return d && d[0] ? d : "/usr/share/zoneinfo";
}

bool config_timezone_known(const char *z, const char **dir_out)
{
    bool shape = z[0] != '\0' && z[0] != '/' && strstr(z, "..") == NULL && strlen(z) < 64;
    for (const char *c = z; shape && *c; c++)
        shape = config_is_name_char(*c) || *c == '/' || *c == '+';
    const char *dir = zoneinfo_dir();
    *dir_out = shape ? dir : NULL;
    struct stat st;
    char path[PATH_MAX];
    bool known = true;
    if (shape && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(path, sizeof path, "%s/%s", dir, z);
        known = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    return shape && known;
}

/* poll.timezone: an IANA name ("Africa/Nairobi", "UTC"), which must be in the
 * time zone database when there is one to look in. */
static bool load_timezone(struct loader *ld, const yaml_node_t *n, struct config_poll *p)
{
    if (!config_get_string(ld, n, "poll.timezone", true, &p->timezone))
        return false;
    const char *dir;
    if (config_timezone_known(p->timezone, &dir))
        return true;
    config_err_at(ld, n,
                  "unknown time zone \"%s\" for poll.timezone (expected a name of the time zone "
                  "database, like Africa/Nairobi or UTC%s%s)",
                  p->timezone, dir ? ", as found in " : "", dir ? dir : "");
    return false;
}

/* poll.lookups: [{ id, url, into }, ...] */
static void load_lookups(struct loader *ld, yaml_node_t *n, struct config_poll *p)
{
    if (!config_expect_list(ld, n, "poll.lookups"))
        return;
    size_t len = config_list_len(n);
    if (len == 0 || len > POLL_MAX_LOOKUPS) {
        config_err_at(ld, n, "poll.lookups must have 1 to %d entries, not %zu", POLL_MAX_LOOKUPS,
                      len);
        return;
    }
    p->lookups = calloc(len, sizeof *p->lookups);
    if (p->lookups == NULL) {
        ld->oom = true;
        return;
    }
    for (size_t i = 0; i < len && !ld->oom; i++) {
        char where[64], what[96];
        snprintf(where, sizeof where, "poll.lookups[%zu]", i);
        struct found f[sizeof lookup_keys / sizeof lookup_keys[0]];
        yaml_node_t *item = config_list_item(ld, n, i);
        struct config_poll_lookup *l = &p->lookups[p->n_lookups++];
        if (!MAP_KEYS(ld, item, where, lookup_keys, f))
            continue;
        snprintf(what, sizeof what, "%s.id", where);
        get_path(ld, f[K_L_ID].val, what, &l->id);
        snprintf(what, sizeof what, "%s.into", where);
        get_path(ld, f[K_L_INTO].val, what, &l->into);
        snprintf(what, sizeof what, "%s.url", where);
        if (f[K_L_URL].val && config_get_http_url(ld, f[K_L_URL].val, what, &l->url)) {
            const char *at = strstr(l->url, "{id}");
            if (at == NULL || strstr(at + 4, "{id}") != NULL)
                config_err_at(ld, f[K_L_URL].val,
                              "%s must hold \"{id}\" once, where the item's reference goes "
                              "(like https://lmis.example/api/facilities/{id})",
                              what);
        }
    }
}

static void load_schedule(struct loader *ld, const struct found *f, yaml_node_t *n,
                          struct config_poll *p)
{
    const struct found *one =
        config_exactly_one(ld, f, K_P_SCHEDULE, K_P_EVERY, poll_keys, "poll", "schedule or every");
    char key[CRON_MAX_TEXT + 16];
    if (one == NULL) {
        config_err_at(ld, n,
                      "poll needs a schedule: (a cron expression such as \"*/5 * * * *\") or "
                      "every: (an interval such as 30s)");
    } else if (one == &f[K_P_SCHEDULE]) {
        char msg[512];
        if (!config_get_string(ld, one->val, "poll.schedule", true, &p->schedule))
            return;
        if (!cron_parse(p->schedule, &p->cron, msg, sizeof msg)) {
            config_err_at(ld, one->val, "invalid cron expression \"%s\" in poll.schedule: %s",
                          p->schedule, msg);
            return;
        }
        if (f[K_P_TIMEZONE].val && !load_timezone(ld, f[K_P_TIMEZONE].val, p))
            return;
        snprintf(key, sizeof key, "cron %s%s%s", p->schedule, p->timezone ? " in " : "",
                 p->timezone ? p->timezone : "");
        p->state_key = config_xstrdup(ld, key);
    } else if (f[K_P_TIMEZONE].key) {
        config_err_at(ld, f[K_P_TIMEZONE].key,
                      "poll.timezone applies only to a schedule: (every: counts from each pull)");
    } else if (config_get_duration_in(ld, one->val, "poll.every", &every_range, &p->every_ms)) {
        snprintf(key, sizeof key, "every %ldms", p->every_ms);
        p->state_key = config_xstrdup(ld, key);
    }
}

struct config_poll *config_load_poll(struct loader *ld, yaml_node_t *n)
{
    struct found f[sizeof poll_keys / sizeof poll_keys[0]];
    if (!MAP_KEYS(ld, n, "poll", poll_keys, f))
        return NULL;
    struct config_poll *p = calloc(1, sizeof *p);
    if (p == NULL) {
        ld->oom = true;
        return NULL;
    }
    p->pos = config_pos_of(ld, n);
    p->max_pages = 1000;
    p->source.timeout_ms = 30000;
    p->source.tls_verify = true;
    p->source.mediator = CONFIG_MEDIATOR_HTTP;
    p->source.name = config_xstrdup(ld, "poll");
    p->source.pos = p->pos;
    load_schedule(ld, f, n, p);
    if (f[K_P_URL].val)
        config_get_http_url(ld, f[K_P_URL].val, "poll.url", &p->source.url);
    int m = 0;
    if (f[K_P_METHOD].val)
        m = config_get_enum(ld, f[K_P_METHOD].val, "poll.method", poll_methods);
    p->method = config_xstrdup(ld, poll_methods[m < 0 ? 0 : m]);
    if (f[K_P_BODY].val) {
        if (m != 1)
            config_err_at(ld, f[K_P_BODY].key,
                          "poll.body applies only with method: POST (a GET sends no body)");
        else
            config_get_string(ld, f[K_P_BODY].val, "poll.body", false, &p->body);
    }
    if (f[K_P_TLS].val)
        config_load_tls(ld, f[K_P_TLS].val, "poll.tls", &p->source);
    if (f[K_P_AUTH].val)
        config_load_auth(ld, f[K_P_AUTH].val, "poll.auth", &p->source);
    if (f[K_P_TIMEOUT].val)
        config_get_duration(ld, f[K_P_TIMEOUT].val, "poll.timeout", &p->source.timeout_ms);
    if (f[K_P_CURSOR].val)
        load_cursor(ld, f[K_P_CURSOR].val, p);
    get_path(ld, f[K_P_ITEM_ID].val, "poll.item_id", &p->item_id);
    if (f[K_P_PAGING].val)
        load_paging(ld, f[K_P_PAGING].val, p);
    if (f[K_P_LOOKUPS].val)
        load_lookups(ld, f[K_P_LOOKUPS].val, p);
    return p;
}

void config_poll_free(struct config_poll *p)
{
    if (p == NULL)
        return;
    free(p->schedule);
    free(p->timezone);
    free(p->state_key);
    config_route_free(&p->source);
    free(p->method);
    free(p->body);
    free(p->cursor_param);
    free(p->cursor_from);
    free(p->cursor_items);
    free(p->cursor_token);
    free(p->item_id);
    free(p->items);
    free(p->page_param);
    free(p->size_param);
    free(p->last);
    free(p->total_pages);
    free(p->next_token);
    free(p->token_param);
    free(p->next_url);
    for (size_t i = 0; i < p->n_lookups; i++) {
        free(p->lookups[i].id);
        free(p->lookups[i].url);
        free(p->lookups[i].into);
    }
    free(p->lookups);
    free(p);
}
