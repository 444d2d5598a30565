/*
 * test_router.c - router_match (exact, prefix and regex paths, 404/405/415 misses,
 * disabled channels, priority order) and router_check_ties (one test per kind of
 * overlap, and the cases that must not be reported).
 *
 * Channels are built by hand here, not loaded, so each test shows exactly the
 * rules it exercises; config_load's own call to router_check_ties is covered in
 * test_config.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hibus/config.h"
#include "hibus/router.h"

#define MAX_CHANNELS 8

static struct config_channel chs[MAX_CHANNELS];
static struct config cfg;

/* Adds a channel to the test config: methods and content types are NULL-terminated
 * lists (NULL itself meaning "any"). Channels are kept in the order added, which
 * stands for the loaded (priority, name) order. */
static struct config_channel *add(const char *name, int priority, enum config_path_kind kind,
                                  const char *path, char **methods, char **types)
{
    assert_true(cfg.n_channels < MAX_CHANNELS);
    struct config_channel *ch = &chs[cfg.n_channels++];
    memset(ch, 0, sizeof *ch);
    ch->name = (char *)name;
    ch->enabled = true;
    ch->priority = priority;
    ch->path_kind = kind;
    ch->path = (char *)path;
    for (ch->methods = methods; methods && methods[ch->n_methods];)
        ch->n_methods++;
    for (ch->content_types = types; types && types[ch->n_content_types];)
        ch->n_content_types++;
    ch->pos.file = "channels/test.yaml";
    ch->pos.line = (int)cfg.n_channels;
    ch->pos.col = 7;
    if (kind == CONFIG_PATH_REGEX)
        assert_int_equal(regcomp(&ch->path_re, path, REG_EXTENDED | REG_NOSUB), 0);
    return ch;
}

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof cfg);
    cfg.channels = chs;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < cfg.n_channels; i++)
        if (chs[i].path_kind == CONFIG_PATH_REGEX)
            regfree(&chs[i].path_re);
    return 0;
}

static char *POST[] = {"POST", NULL};
static char *GET_PUT[] = {"GET", "PUT", NULL};
static char *JSON[] = {"application/json", NULL};
static char *JSON_XML[] = {"application/json", "application/xml", NULL};
static char *CSV[] = {"text/csv", NULL};

/* Which channel serves the request, as a name; "404", "405" or "415" on a miss. */
static const char *route(const char *method, const char *path, const char *ct)
{
    const struct config_channel *out = NULL;
    enum router_result r =
        router_match(cfg.channels, cfg.n_channels, method, path, ct, NULL, 0, &out);
    switch (r) {
    case ROUTER_MATCH: assert_non_null(out); return out->name;
    case ROUTER_NO_PATH: assert_null(out); return "404";
    case ROUTER_BAD_METHOD: assert_null(out); return "405";
    case ROUTER_BAD_CONTENT_TYPE: assert_null(out); return "415";
    case ROUTER_NO_BODY_MATCH: assert_null(out); return "404-body";
    }
    fail();
    return NULL;
}

/* Like route(), with a body for match.json conditions. */
static const char *route_body(const char *path, const char *body)
{
    const struct config_channel *out = NULL;
    enum router_result r = router_match(cfg.channels, cfg.n_channels, "POST", path,
                                        "application/json", body, strlen(body), &out);
    if (r == ROUTER_MATCH)
        return out->name;
    return r == ROUTER_NO_BODY_MATCH ? "404-body" : "other";
}

/* ------------------------------------------------------------------------------------
 * router_match
 * ------------------------------------------------------------------------------------ */

static void test_exact(void **state)
{
    (void)state;
    add("stock", 100, CONFIG_PATH_EXACT, "/lmis/stock", NULL, NULL);
    assert_string_equal(route("POST", "/lmis/stock", NULL), "stock");
    assert_string_equal(route("GET", "/lmis/stock", "text/plain"), "stock");
    assert_string_equal(route("POST", "/lmis/stock/", NULL), "404");
    assert_string_equal(route("POST", "/lmis/stoc", NULL), "404");
    assert_string_equal(route("POST", "/LMIS/stock", NULL), "404");
    assert_string_equal(route("POST", "/", NULL), "404");
}

static void test_prefix(void **state)
{
    (void)state;
    const struct config_channel *lmis = add("lmis", 100, CONFIG_PATH_PREFIX, "/lmis", NULL, NULL);
    const struct config_channel *slash = add("hr", 100, CONFIG_PATH_PREFIX, "/hr/", NULL, NULL);
    const struct config_channel *root = add("root", 100, CONFIG_PATH_PREFIX, "/", NULL, NULL);
    assert_true(router_path_matches(lmis, "/lmis"));
    assert_true(router_path_matches(lmis, "/lmis/"));
    assert_true(router_path_matches(lmis, "/lmis/stock/1"));
    assert_false(router_path_matches(lmis, "/lmisx"));
    assert_false(router_path_matches(lmis, "/lmi"));
    assert_true(router_path_matches(slash, "/hr/"));
    assert_true(router_path_matches(slash, "/hr/staff"));
    assert_false(router_path_matches(slash, "/hr"));
    assert_false(router_path_matches(slash, "/hrx/"));
    assert_true(router_path_matches(root, "/"));
    assert_true(router_path_matches(root, "/anything/at/all"));

    assert_string_equal(route("POST", "/lmis/stock", NULL), "lmis");
    assert_string_equal(route("POST", "/lmisx", NULL), "root");
    assert_string_equal(route("POST", "/hr", NULL), "root");
    assert_string_equal(route("POST", "/hr/x", NULL), "hr");
}

static void test_regex(void **state)
{
    (void)state;
    add("facility", 100, CONFIG_PATH_REGEX, "^/facilities/[A-Z]{2}[0-9]+$", NULL, NULL);
    add("unanchored", 100, CONFIG_PATH_REGEX, "report", NULL, NULL);
    assert_string_equal(route("GET", "/facilities/KE123", NULL), "facility");
    assert_string_equal(route("GET", "/facilities/ke123", NULL), "404");
    assert_string_equal(route("GET", "/facilities/KE123/x", NULL), "404");
    assert_string_equal(route("GET", "/a/monthly-report/b", NULL), "unanchored");
}

static void test_method_miss_is_405(void **state)
{
    (void)state;
    add("stock", 100, CONFIG_PATH_EXACT, "/stock", POST, NULL);
    assert_string_equal(route("POST", "/stock", NULL), "stock");
    assert_string_equal(route("GET", "/stock", NULL), "405");
    assert_string_equal(route("post", "/stock", NULL), "405"); /* methods are case-sensitive */
    assert_string_equal(route("GET", "/other", NULL), "404");
}

static void test_content_type_miss_is_415(void **state)
{
    (void)state;
    add("stock", 100, CONFIG_PATH_EXACT, "/stock", POST, JSON_XML);
    assert_string_equal(route("POST", "/stock", "application/json"), "stock");
    assert_string_equal(route("POST", "/stock", "application/xml"), "stock");
    assert_string_equal(route("POST", "/stock", "Application/JSON; charset=utf-8"), "stock");
    assert_string_equal(route("POST", "/stock", " application/json ;charset=utf-8"), "stock");
    assert_string_equal(route("POST", "/stock", "application/jsonx"), "415");
    assert_string_equal(route("POST", "/stock", "application/js"), "415");
    assert_string_equal(route("POST", "/stock", "text/csv"), "415");
    assert_string_equal(route("POST", "/stock", ""), "415");
    assert_string_equal(route("POST", "/stock", NULL), "415"); /* no header, but types listed */
    assert_string_equal(route("GET", "/stock", "text/csv"), "405"); /* method is checked first */
}

static void test_no_content_type_needs_empty_list(void **state)
{
    (void)state;
    add("typed", 10, CONFIG_PATH_EXACT, "/x", NULL, CSV);
    add("any", 20, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    assert_string_equal(route("POST", "/x", NULL), "any");
    assert_string_equal(route("POST", "/x", "text/csv"), "typed");
}

/* The answer on a miss is the most specific one, whatever the channel order. */
static void test_most_specific_miss(void **state)
{
    (void)state;
    add("json", 10, CONFIG_PATH_PREFIX, "/lmis", POST, JSON);
    add("get", 20, CONFIG_PATH_PREFIX, "/lmis", GET_PUT, NULL);
    assert_string_equal(route("POST", "/lmis/a", "text/csv"), "415");
    assert_string_equal(route("DELETE", "/lmis/a", "text/csv"), "405");
    assert_string_equal(route("PUT", "/lmis/a", "text/csv"), "get");
    assert_string_equal(route("PUT", "/hr", "text/csv"), "404");
}

static void test_disabled_channel_never_matches(void **state)
{
    (void)state;
    struct config_channel *off = add("off", 10, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    struct config_channel *only = add("only-post", 20, CONFIG_PATH_EXACT, "/y", POST, NULL);
    off->enabled = false;
    assert_string_equal(route("POST", "/x", NULL), "404");
    only->enabled = false;
    assert_string_equal(route("GET", "/y", NULL), "404"); /* not 405: nothing serves /y */
    off->enabled = true;
    assert_string_equal(route("POST", "/x", NULL), "off");
}

static void test_first_in_priority_order_wins(void **state)
{
    (void)state;
    add("specific", 10, CONFIG_PATH_EXACT, "/lmis/stock", NULL, NULL);
    add("general", 20, CONFIG_PATH_PREFIX, "/lmis", NULL, NULL);
    add("fallback", 30, CONFIG_PATH_REGEX, ".*", NULL, NULL);
    assert_string_equal(route("POST", "/lmis/stock", NULL), "specific");
    assert_string_equal(route("POST", "/lmis/other", NULL), "general");
    assert_string_equal(route("POST", "/hr", NULL), "fallback");
}

static void test_out_untouched_on_miss(void **state)
{
    (void)state;
    add("a", 10, CONFIG_PATH_EXACT, "/a", NULL, NULL);
    const struct config_channel *sentinel = &chs[MAX_CHANNELS - 1];
    const struct config_channel *out = sentinel;
    assert_int_equal(router_match(cfg.channels, cfg.n_channels, "GET", "/b", NULL, NULL, 0, &out),
                     ROUTER_NO_PATH);
    assert_ptr_equal(out, sentinel);
}

/* ------------------------------------------------------------------------------------
 * router_check_ties
 * ------------------------------------------------------------------------------------ */

/* The diagnostics for the channels added so far, one per line. */
static char *ties(void)
{
    struct hibus_diags d = {0};
    router_check_ties(cfg.channels, cfg.n_channels, &d);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    hibus_diags_print(&d, f);
    fclose(f);
    hibus_diags_free(&d);
    return text;
}

#define EXPECT_TIES(expected)                                                                      \
    do {                                                                                           \
        char *got_ = ties();                                                                       \
        assert_string_equal(got_, expected);                                                       \
        free(got_);                                                                                \
    } while (0)

static void test_tie_exact_exact(void **state)
{
    (void)state;
    add("a", 100, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    add("b", 100, CONFIG_PATH_EXACT, "/y", NULL, NULL);
    add("c", 100, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    EXPECT_TIES("channels/test.yaml:3:7: channel \"c\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 100 and can match the same request; give one of them a "
                "different priority\n");
}

static void test_tie_exact_prefix(void **state)
{
    (void)state;
    add("a", 5, CONFIG_PATH_PREFIX, "/lmis", NULL, NULL);
    add("b", 5, CONFIG_PATH_EXACT, "/lmis/stock", NULL, NULL);
    add("c", 5, CONFIG_PATH_EXACT, "/lmisx", NULL, NULL); /* not under /lmis */
    EXPECT_TIES("channels/test.yaml:2:7: channel \"b\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 5 and can match the same request; give one of them a "
                "different priority\n");
}

static void test_tie_prefix_prefix(void **state)
{
    (void)state;
    add("a", 1, CONFIG_PATH_PREFIX, "/lmis/", NULL, NULL);
    add("b", 1, CONFIG_PATH_PREFIX, "/lmis", NULL, NULL); /* "/lmis/x" matches both */
    add("c", 1, CONFIG_PATH_PREFIX, "/lmi", NULL, NULL);  /* disjoint: segment boundary */
    add("d", 1, CONFIG_PATH_PREFIX, "/hr", NULL, NULL);
    EXPECT_TIES("channels/test.yaml:2:7: channel \"b\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 1 and can match the same request; give one of them a "
                "different priority\n");
}

static void test_tie_regex_exact(void **state)
{
    (void)state;
    add("a", 100, CONFIG_PATH_EXACT, "/stock/42", NULL, NULL);
    add("b", 100, CONFIG_PATH_EXACT, "/stock/x", NULL, NULL);
    add("c", 100, CONFIG_PATH_REGEX, "^/stock/[0-9]+$", NULL, NULL);
    EXPECT_TIES("channels/test.yaml:3:7: channel \"c\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 100 and can match the same request; give one of them a "
                "different priority\n");
}

/* A regex against a prefix or another regex cannot be proven disjoint. */
static void test_tie_regex_unprovable(void **state)
{
    (void)state;
    add("a", 100, CONFIG_PATH_PREFIX, "/hr", NULL, NULL);
    add("b", 100, CONFIG_PATH_REGEX, "^/lmis/", NULL, NULL);
    add("c", 100, CONFIG_PATH_REGEX, "^/dhis2/", NULL, NULL);
    EXPECT_TIES("channels/test.yaml:2:7: channel \"b\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 100 and can match the same request; give one of them a "
                "different priority\n"
                "channels/test.yaml:3:7: channel \"c\" and channel \"a\" (channels/test.yaml:1:7) "
                "have the same priority 100 and can match the same request; give one of them a "
                "different priority\n"
                "channels/test.yaml:3:7: channel \"c\" and channel \"b\" (channels/test.yaml:2:7) "
                "have the same priority 100 and can match the same request; give one of them a "
                "different priority\n");
}

static void test_tie_methods_and_types(void **state)
{
    (void)state;
    add("post-json", 100, CONFIG_PATH_EXACT, "/x", POST, JSON);
    add("get", 100, CONFIG_PATH_EXACT, "/x", GET_PUT, JSON);   /* methods disjoint */
    add("post-csv", 100, CONFIG_PATH_EXACT, "/x", POST, CSV);  /* types disjoint */
    add("any", 100, CONFIG_PATH_EXACT, "/y", NULL, NULL);      /* path disjoint */
    add("post-any", 100, CONFIG_PATH_EXACT, "/x", POST, NULL); /* any type: overlaps */
    EXPECT_TIES("channels/test.yaml:5:7: channel \"post-any\" and channel \"post-json\" "
                "(channels/test.yaml:1:7) have the same priority 100 and can match the same "
                "request; give one of them a different priority\n"
                "channels/test.yaml:5:7: channel \"post-any\" and channel \"post-csv\" "
                "(channels/test.yaml:3:7) have the same priority 100 and can match the same "
                "request; give one of them a different priority\n");
}

static void test_no_tie_when_priorities_differ_or_disabled(void **state)
{
    (void)state;
    add("a", 10, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    add("b", 20, CONFIG_PATH_EXACT, "/x", NULL, NULL);
    struct config_channel *c = add("c", 20, CONFIG_PATH_PREFIX, "/", NULL, NULL);
    c->enabled = false;
    EXPECT_TIES("");
}

static void test_json_match(void **state)
{
    (void)state;
    static struct config_json_match em[] = {{"program", "essential-medicines"}};
    static struct config_json_match fp[] = {{"program", "family-planning"}, {"meta.v", "2"}};
    struct config_channel *a = add("em", 10, CONFIG_PATH_EXACT, "/r", POST, JSON);
    a->json_match = em;
    a->n_json_match = 1;
    struct config_channel *b = add("fp", 10, CONFIG_PATH_EXACT, "/r", POST, JSON);
    b->json_match = fp;
    b->n_json_match = 2;
    assert_string_equal(route_body("/r", "{\"program\":\"essential-medicines\"}"), "em");
    assert_string_equal(route_body("/r", "{\"program\":\"family-planning\",\"meta\":{\"v\":2}}"),
                        "fp");
    /* numbers compare as written; a missing nested field is no match */
    assert_string_equal(route_body("/r", "{\"program\":\"family-planning\",\"meta\":{}}"),
                        "404-body");
    assert_string_equal(route_body("/r", "not json"), "404-body");
    assert_string_equal(route_body("/r", "[1,2]"), "404-body");
    /* different required values at the same path: never a tie */
    struct hibus_diags d = {0};
    router_check_ties(chs, cfg.n_channels, &d);
    assert_int_equal(d.n, 0);
    hibus_diags_free(&d);
    char text[64];
    json_t *doc = json_loads("{\"a\":{\"b\":true,\"n\":1.5,\"o\":{}}}", 0, NULL);
    assert_true(router_json_text(doc, "a.b", text, sizeof text));
    assert_string_equal(text, "true");
    assert_true(router_json_text(doc, "a.n", text, sizeof text));
    assert_string_equal(text, "1.5");
    assert_false(router_json_text(doc, "a.o", text, sizeof text));
    assert_false(router_json_text(doc, "a..b", text, sizeof text));
    json_decref(doc);
}

/* A poll channel (path NULL) is never matched and never ties, whatever its priority. */
static void test_poll_channel_never_matches(void **state)
{
    (void)state;
    add("pulled", 1, CONFIG_PATH_EXACT, NULL, NULL, NULL);
    add("posted", 1, CONFIG_PATH_PREFIX, "/", NULL, NULL);
    add("pulled-too", 1, CONFIG_PATH_EXACT, NULL, NULL, NULL);
    assert_string_equal(route("POST", "/x", "application/json"), "posted");
    cfg.n_channels = 1;
    assert_string_equal(route("POST", "/", "application/json"), "404");
    cfg.n_channels = 3;
    EXPECT_TIES("");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_json_match),
        T(test_exact),
        T(test_prefix),
        T(test_regex),
        T(test_method_miss_is_405),
        T(test_content_type_miss_is_415),
        T(test_no_content_type_needs_empty_list),
        T(test_most_specific_miss),
        T(test_disabled_channel_never_matches),
        T(test_first_in_priority_order_wins),
        T(test_out_untouched_on_miss),
        T(test_tie_exact_exact),
        T(test_tie_exact_prefix),
        T(test_tie_prefix_prefix),
        T(test_tie_regex_exact),
        T(test_tie_regex_unprovable),
        T(test_tie_methods_and_types),
        T(test_no_tie_when_priorities_differ_or_disabled),
        T(test_poll_channel_never_matches),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
