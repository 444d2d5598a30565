/*
 * test_config.c - config_load: every kind of error, reported as the exact
 * "file:line:col: message" a user sees, plus defaults, ${NAME} expansion, sorting,
 * the parsers for durations and sizes, and the sample configuration in conf/.
 *
 * Most tests write a small tree (hibus.yaml, clients.yaml, channels/) into a fresh
 * temporary directory and load it from there by a relative path, so file names in
 * the expected messages are short and exact. Larger trees live in
 * tests/data/config/.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hibus/config.h"
#include "hibus/log.h"

#define DATA HIBUS_TEST_DATA "/config/"

/* ------------------------------------------------------------------------------------
 * A temporary configuration tree per test
 * ------------------------------------------------------------------------------------ */

static char tmpdir[64];
static char oldcwd[PATH_MAX];

static const char main_ok[] = "database:\n"
                              "  url: postgres://localhost/hibus\n";

static const char clients_ok[] = "roles: [lmis, ops]\n"
                                 "clients:\n"
                                 "  - id: lmis-national\n"
                                 "    roles: [lmis]\n"
                                 "    password_hash: "
                                 "\"$y$j9T$O1xpZ2dHCB9F8u1.PAzAr/"
                                 "$ec4L5xZSYZFjWDm3jVLo/g9fuO0fwTM1Sw5XtUtInlC\"\n";

static const char channel_ok[] = "name: stock\n"
                                 "match: { path: /stock }\n"
                                 "allow: { roles: [lmis] }\n"
                                 "routes:\n"
                                 "  - { name: archive, url: \"http://archive.example/stock\" }\n";

static void put(const char *rel, const char *text)
{
    FILE *f = fopen(rel, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Every test starts in an empty directory holding a valid tree. */
static int setup(void **state)
{
    (void)state;
    if (getcwd(oldcwd, sizeof oldcwd) == NULL)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hibus-test-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL || chdir(tmpdir) != 0 || mkdir("channels", 0700) != 0)
        return -1;
    put("hibus.yaml", main_ok);
    put("clients.yaml", clients_ok);
    put("channels/stock.yaml", channel_ok);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (chdir(oldcwd) != 0)
        return -1;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Loads path, expects failure with code want, returns the diagnostics as printed. */
static char *load_fail_at(const char *path, enum hibus_err want)
{
    struct hibus_diags d = {0};
    struct config *cfg = NULL;
    enum hibus_err rc = config_load(path, &cfg, &d);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    hibus_diags_print(&d, f);
    fclose(f);
    hibus_diags_free(&d);
    if (rc != want)
        fprintf(stderr, "unexpected result %s, diagnostics:\n%s", hibus_errname(rc), text);
    assert_int_equal(rc, want);
    assert_null(cfg);
    return text;
}

static struct config *load_ok_at(const char *path)
{
    struct hibus_diags d = {0};
    struct config *cfg = NULL;
    enum hibus_err rc = config_load(path, &cfg, &d);
    if (rc != HIBUS_OK || d.n != 0)
        hibus_diags_print(&d, stderr);
    assert_int_equal(rc, HIBUS_OK);
    assert_int_equal(d.n, 0);
    assert_non_null(cfg);
    hibus_diags_free(&d);
    return cfg;
}

#define EXPECT_ERRORS(expected)                                                                    \
    do {                                                                                           \
        char *got_ = load_fail_at("hibus.yaml", HIBUS_E_CONFIG);                                   \
        assert_string_equal(got_, expected);                                                       \
        free(got_);                                                                                \
    } while (0)

/* ------------------------------------------------------------------------------------
 * Success paths
 * ------------------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    struct config *cfg = load_ok_at(DATA "minimal/hibus.yaml");
    assert_string_equal(cfg->dir, DATA "minimal");
    assert_string_equal(cfg->listen_address, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 5001);
    assert_string_equal(cfg->database_url, "postgres://hibus@localhost/hibus");
    assert_int_equal(cfg->database_pool, 8);
    assert_int_equal(cfg->database_connect_timeout_ms, 5000);
    assert_int_equal(cfg->max_body, 10 * 1024 * 1024);
    assert_int_equal(cfg->max_connections, 1024);
    assert_int_equal(cfg->connection_timeout_ms, 60000);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
    assert_int_equal(cfg->n_redact_headers, 4);
    assert_true(config_header_redacted(cfg, "Authorization"));
    assert_true(config_header_redacted(cfg, "PROXY-AUTHORIZATION"));
    assert_true(config_header_redacted(cfg, "cookie"));
    assert_true(config_header_redacted(cfg, "Set-Cookie"));
    assert_false(config_header_redacted(cfg, "X-Api-Key"));

    assert_int_equal(cfg->n_files, 3);
    assert_int_equal(cfg->n_clients, 1);
    const struct config_client *c = config_find_client(cfg, "lmis-national");
    assert_non_null(c);
    assert_true(c->enabled);
    assert_null(c->name);
    assert_null(config_find_client(cfg, "nobody"));

    assert_int_equal(cfg->n_channels, 1);
    const struct config_channel *ch = config_find_channel(cfg, "stock");
    assert_non_null(ch);
    assert_true(ch->enabled);
    assert_int_equal(ch->priority, 100);
    assert_int_equal(ch->mode, CONFIG_MODE_SYNC);
    assert_int_equal(ch->path_kind, CONFIG_PATH_EXACT);
    assert_string_equal(ch->path, "/stock");
    assert_int_equal(ch->n_methods, 0);
    assert_int_equal(ch->n_content_types, 0);
    assert_string_equal(ch->pos.file, DATA "minimal/channels/stock.yaml");
    assert_int_equal(ch->pos.line, 1);
    assert_int_equal(ch->pos.col, 7);
    assert_int_equal(ch->n_routes, 1);
    const struct config_route *r = config_primary_route(ch);
    assert_ptr_equal(r, &ch->routes[0]); /* the only route is the primary */
    assert_int_equal(r->timeout_ms, 30000);
    assert_int_equal(r->mediator, CONFIG_MEDIATOR_HTTP);
    assert_int_equal(r->auth_kind, CONFIG_AUTH_NONE);
    config_free(cfg);
}

static void test_sample_conf(void **state)
{
    (void)state;
    setenv("HIBUS_PORT", "5099", 1);
    setenv("HIBUS_DATABASE_URL", "postgres://hibus@db/hibus", 1);
    setenv("HIBUS_ARCHIVE_URL", "http://archive.example:8000", 1);
    struct config *cfg = load_ok_at(HIBUS_TEST_DATA "/../../conf/hibus.yaml");
    assert_int_equal(cfg->listen_port, 5099);
    assert_string_equal(cfg->database_url, "postgres://hibus@db/hibus");
    assert_int_equal(cfg->database_connect_timeout_ms, 3000);
    assert_true(config_header_redacted(cfg, "x-api-key"));
    assert_int_equal(cfg->n_redact_headers, 5);
    assert_int_equal(cfg->n_roles, 2);
    assert_int_equal(cfg->n_clients, 2);
    const struct config_client *c = config_find_client(cfg, "ops-console");
    assert_non_null(c);
    assert_string_equal(c->name, "Operations staff");
    assert_string_equal(c->password_hash, "$y$j9T$BijMUxn9VtJ/WMulMQ11r0$SHT4MCJGkacuRJ9ICQDHjvhmgO"
                                          "Bbz/LZR5CQQ7m6BkA");
    const struct config_channel *ch = config_find_channel(cfg, "lmis-stock");
    assert_non_null(ch);
    assert_int_equal(ch->priority, 10);
    assert_int_equal(ch->n_methods, 1);
    assert_string_equal(ch->methods[0], "POST");
    assert_string_equal(ch->content_types[0], "application/json");
    assert_string_equal(ch->allow_roles[0], "lmis");
    const struct config_route *r = config_primary_route(ch);
    assert_string_equal(r->url, "http://archive.example:8000/stock-reports");
    assert_int_equal(r->timeout_ms, 10000);
    config_free(cfg);
    unsetenv("HIBUS_PORT");
    unsetenv("HIBUS_DATABASE_URL");
    unsetenv("HIBUS_ARCHIVE_URL");
}

static void test_all_keys(void **state)
{
    (void)state;
    put("hibus.yaml", "listen: { address: 0.0.0.0, port: 8443 }\n"
                      "database: { url: postgres://db/hibus, pool: 256, connect_timeout: 500ms }\n"
                      "limits: { max_body: 512KiB, max_connections: 10, connection_timeout: 2m }\n"
                      "log: { level: debug, format: json }\n"
                      "redact_headers: [X-Api-Key, Authorization, x-token]\n"
                      "clients: people.yaml\n"
                      "channels: ch\n");
    assert_int_equal(rename("clients.yaml", "people.yaml"), 0);
    assert_int_equal(rename("channels", "ch"), 0);
    put("ch/full.yml", "name: full\n"
                       "description: every key\n"
                       "enabled: false\n"
                       "priority: 7\n"
                       "match:\n"
                       "  path_prefix: /lmis/\n"
                       "  methods: [post, Put]\n"
                       "  content_types: [\"Application/JSON; charset=utf-8\", text/csv]\n"
                       "allow: { roles: [lmis, ops], clients: [lmis-national] }\n"
                       "mode: sync\n"
                       "routes:\n"
                       "  - name: a\n"
                       "    mediator: http\n"
                       "    url: https://a.example/x\n"
                       "    timeout: 1h\n"
                       "    auth: { basic: { username: u, password: p } }\n"
                       "  - name: b\n"
                       "    url: http://b.example\n"
                       "    primary: true\n"
                       "    auth: { bearer: tok }\n"
                       "  - name: c\n"
                       "    url: http://c.example\n"
                       "    primary: false\n"
                       "    auth: { header: { name: X-Key, value: v } }\n");
    put("ch/ignored.txt", "not: [yaml");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_string_equal(cfg->dir, ".");
    assert_string_equal(cfg->listen_address, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 8443);
    assert_int_equal(cfg->database_pool, 256);
    assert_int_equal(cfg->database_connect_timeout_ms, 500);
    assert_int_equal(cfg->max_body, 512 * 1024);
    assert_int_equal(cfg->max_connections, 10);
    assert_int_equal(cfg->connection_timeout_ms, 120000);
    assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg->log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg->n_redact_headers, 6); /* 4 defaults + x-api-key + x-token */
    assert_string_equal(cfg->redact_headers[4], "x-api-key");
    assert_true(config_header_redacted(cfg, "X-TOKEN"));
    assert_int_equal(cfg->n_files, 4); /* ch/ holds full.yml and stock.yaml */
    assert_string_equal(cfg->files[0], "hibus.yaml");
    assert_string_equal(cfg->files[1], "people.yaml");
    assert_string_equal(cfg->files[2], "ch/full.yml");
    assert_string_equal(cfg->files[3], "ch/stock.yaml");

    assert_int_equal(cfg->n_channels, 2);
    const struct config_channel *ch = &cfg->channels[0]; /* priority 7 before 100 */
    assert_string_equal(ch->name, "full");
    assert_string_equal(ch->description, "every key");
    assert_false(ch->enabled);
    assert_int_equal(ch->path_kind, CONFIG_PATH_PREFIX);
    assert_string_equal(ch->path, "/lmis/");
    assert_int_equal(ch->n_methods, 2);
    assert_string_equal(ch->methods[0], "POST");
    assert_string_equal(ch->methods[1], "PUT");
    assert_int_equal(ch->n_content_types, 2);
    assert_string_equal(ch->content_types[0], "application/json");
    assert_string_equal(ch->content_types[1], "text/csv");
    assert_int_equal(ch->n_allow_roles, 2);
    assert_string_equal(ch->allow_clients[0], "lmis-national");
    assert_int_equal(ch->n_routes, 3);
    assert_int_equal(ch->routes[0].auth_kind, CONFIG_AUTH_BASIC);
    assert_string_equal(ch->routes[0].auth_user, "u");
    assert_string_equal(ch->routes[0].auth_secret, "p");
    assert_int_equal(ch->routes[0].timeout_ms, 3600000);
    assert_false(ch->routes[0].primary);
    assert_int_equal(ch->routes[1].auth_kind, CONFIG_AUTH_BEARER);
    assert_string_equal(ch->routes[1].auth_secret, "tok");
    assert_int_equal(ch->routes[2].auth_kind, CONFIG_AUTH_HEADER);
    assert_string_equal(ch->routes[2].auth_header, "X-Key");
    assert_string_equal(ch->routes[2].auth_secret, "v");
    assert_string_equal(config_primary_route(ch)->name, "b");
    assert_string_equal(ch->routes[1].pos.file, "ch/full.yml");
    assert_int_equal(ch->routes[1].pos.line, 17);
    assert_int_equal(ch->routes[1].pos.col, 11);
    config_free(cfg);
}

static void test_sorted_by_priority_then_name(void **state)
{
    (void)state;
    struct config *cfg = load_ok_at(DATA "sorted/hibus.yaml");
    assert_int_equal(cfg->n_channels, 4);
    assert_string_equal(cfg->channels[0].name, "z"); /* 10 */
    assert_string_equal(cfg->channels[1].name, "c"); /* 50 */
    assert_string_equal(cfg->channels[2].name, "a"); /* 100 */
    assert_string_equal(cfg->channels[3].name, "b"); /* 100 */
    /* files are read in name order: a.yaml, b.yaml, c.yaml, z.yaml (README.txt is not one) */
    assert_int_equal(cfg->n_files, 6);
    assert_string_equal(cfg->files[2], DATA "sorted/channels/a.yaml");
    assert_string_equal(cfg->files[5], DATA "sorted/channels/z.yaml");
    config_free(cfg);
}

static void test_regex_channel(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path_regex: \"^/stock/[0-9]+$\" }\n"
                               "allow: { clients: [lmis-national] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    const struct config_channel *ch = &cfg->channels[0];
    assert_int_equal(ch->path_kind, CONFIG_PATH_REGEX);
    assert_int_equal(regexec(&ch->path_re, "/stock/42", 0, NULL, 0), 0);
    assert_int_equal(regexec(&ch->path_re, "/stock/x", 0, NULL, 0), REG_NOMATCH);
    config_free(cfg);
}

static void test_free_null(void **state)
{
    (void)state;
    config_free(NULL);
}

/* ------------------------------------------------------------------------------------
 * ${NAME}
 * ------------------------------------------------------------------------------------ */

static void test_env_expansion(void **state)
{
    (void)state;
    setenv("HIBUS_T_HOST", "db.example", 1);
    setenv("HIBUS_T_PORT", "6543", 1);
    put("hibus.yaml", "listen: { port: \"${HIBUS_T_PORT}\" }\n"
                      "database:\n"
                      "  url: \"postgres://${HIBUS_T_HOST}:${HIBUS_T_PORT}/h?x=$$1&y=$z\"\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->listen_port, 6543);
    assert_string_equal(cfg->database_url, "postgres://db.example:6543/h?x=$1&y=$z");
    config_free(cfg);
    unsetenv("HIBUS_T_HOST");
    unsetenv("HIBUS_T_PORT");
}

static void test_env_unset(void **state)
{
    (void)state;
    unsetenv("HIBUS_T_UNSET");
    unsetenv("HIBUS_T_ALSO_UNSET");
    put("hibus.yaml", "database:\n"
                      "  url: \"${HIBUS_T_UNSET}\"\n"
                      "  pool: ${HIBUS_T_ALSO_UNSET}\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://${HIBUS_T_UNSET}/x\" }]\n");
    EXPECT_ERRORS("hibus.yaml:2:8: environment variable \"HIBUS_T_UNSET\" is not set\n"
                  "hibus.yaml:3:9: environment variable \"HIBUS_T_ALSO_UNSET\" is not set\n"
                  "channels/stock.yaml:4:26: environment variable \"HIBUS_T_UNSET\" is not set\n");
}

static void test_env_bad_reference(void **state)
{
    (void)state;
    put("hibus.yaml", "database:\n"
                      "  url: \"${1X}\"\n"
                      "listen: { address: \"${HOST\" }\n");
    EXPECT_ERRORS("hibus.yaml:2:8: invalid environment variable reference in \"${1X}\" "
                  "(expected ${NAME}, or $$ for a literal $)\n"
                  "hibus.yaml:3:20: invalid environment variable reference in \"${HOST\" "
                  "(expected ${NAME}, or $$ for a literal $)\n");
}

/* ------------------------------------------------------------------------------------
 * One test per kind of error
 * ------------------------------------------------------------------------------------ */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    put("clients.yaml", "roles: [lmis\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match:\n"
                               "  path: /stock\n"
                               " methods: [GET]\n");
    EXPECT_ERRORS(
        "clients.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
        "sequence at 1:8)\n"
        "channels/stock.yaml:4:2: invalid YAML: did not find expected key (while parsing a block "
        "mapping at 1:1)\n");
    /* without a readable hibus.yaml nothing else can be found */
    put("hibus.yaml", "database: { url: x\n");
    EXPECT_ERRORS("hibus.yaml:2:1: invalid YAML: did not find expected ',' or '}' (while parsing "
                  "a flow mapping at 1:11)\n");
}

static void test_unknown_key(void **state)
{
    (void)state;
    put("hibus.yaml", "listen:\n"
                      "  prot: 5001\n"
                      "database: { url: x }\n"
                      "loggin: {}\n");
    EXPECT_ERRORS("hibus.yaml:2:3: unknown key \"prot\" in listen (expected one of: address, "
                  "port)\n"
                  "hibus.yaml:4:1: unknown key \"loggin\" at top level (expected one of: listen, "
                  "database, limits, log, redact_headers, clients, channels, admin, delivery)\n");
}

static void test_wrong_types(void **state)
{
    (void)state;
    put("hibus.yaml", "listen: [127.0.0.1]\n"
                      "database:\n"
                      "  url: { a: b }\n"
                      "  pool: eight\n"
                      "  connect_timeout: soon\n"
                      "limits: { max_body: lots }\n"
                      "redact_headers: X-Api-Key\n");
    put("channels/stock.yaml", "name: stock\n"
                               "enabled: yes\n"
                               "match: /stock\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("hibus.yaml:1:9: expected a mapping for listen, got a list\n"
                  "hibus.yaml:3:8: expected a scalar for database.url, got a mapping\n"
                  "hibus.yaml:4:9: expected an integer for database.pool, got \"eight\"\n"
                  "hibus.yaml:5:20: expected a duration (like 500ms, 30s, 2m or 1h) for "
                  "database.connect_timeout, got \"soon\"\n"
                  "hibus.yaml:6:21: expected a size (like 512KiB, 10MiB or 1GB) for "
                  "limits.max_body, got \"lots\"\n"
                  "hibus.yaml:7:17: expected a list for redact_headers, got a scalar\n"
                  "channels/stock.yaml:2:10: expected a boolean (true or false) for enabled, got "
                  "\"yes\"\n"
                  "channels/stock.yaml:3:8: expected a mapping for match, got a scalar\n");
}

static void test_missing_required(void **state)
{
    (void)state;
    put("hibus.yaml", "listen: { port: 5001 }\n");
    put("clients.yaml", "roles: [lmis]\n"
                        "clients:\n"
                        "  - name: no id\n"
                        "    roles: [lmis]\n");
    put("channels/stock.yaml", "description: nothing else\n");
    EXPECT_ERRORS("hibus.yaml:1:1: missing required key \"database\" at top level\n"
                  "clients.yaml:3:5: missing required key \"id\" in clients[0]\n"
                  "clients.yaml:3:5: missing required key \"password_hash\" in clients[0]\n"
                  "channels/stock.yaml:1:1: missing required key \"name\" at top level\n"
                  "channels/stock.yaml:1:1: missing required key \"match\" at top level\n"
                  "channels/stock.yaml:1:1: missing required key \"routes\" at top level\n"
                  "channels/stock.yaml:1:1: channel allows no client (add role names under "
                  "allow.roles, or client ids under allow.clients)\n");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    put("hibus.yaml", "database:\n"
                      "  url: a\n"
                      "  url: b\n");
    EXPECT_ERRORS("hibus.yaml:3:3: duplicate key \"url\" in database (first defined at "
                  "hibus.yaml:2:3)\n");
}

static void test_duplicate_channel_name(void **state)
{
    (void)state;
    put("channels/zz.yaml", "# the same name as stock.yaml\n"
                            "name: stock\n"
                            "match: { path: /other }\n"
                            "allow: { roles: [lmis] }\n"
                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("channels/zz.yaml:2:7: duplicate channel name \"stock\" (first defined at "
                  "channels/stock.yaml:1:7)\n");
}

static void test_bad_regex(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path_regex: \"/stock/(\" }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("channels/stock.yaml:2:22: invalid regular expression \"/stock/(\" in "
                  "match.path_regex: Unmatched ( or \\(\n");
}

static void test_unknown_role(void **state)
{
    (void)state;
    put("clients.yaml", "roles: [lmis]\n"
                        "clients:\n"
                        "  - id: a\n"
                        "    roles: [lmis, admins]\n"
                        "    password_hash: \"$6$salt$0123456789abcdefghijklmnopqrstuv\"\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis, ops] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("clients.yaml:4:19: unknown role \"admins\"\n"
                  "channels/stock.yaml:3:24: unknown role \"ops\"\n");
}

static void test_unknown_client(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow:\n"
                               "  clients:\n"
                               "    - lmis-national\n"
                               "    - lmis-regional\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("channels/stock.yaml:6:7: unknown client \"lmis-regional\"\n");
}

static void test_out_of_range(void **state)
{
    (void)state;
    put("hibus.yaml", "listen: { port: 70000 }\n"
                      "database: { url: x, pool: 0, connect_timeout: 0s }\n"
                      "limits: { max_body: 0, max_connections: -1 }\n");
    put("channels/stock.yaml", "name: stock\n"
                               "priority: 99999999999999999999\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\", timeout: 25h }]\n");
    EXPECT_ERRORS(
        "hibus.yaml:1:17: \"70000\" is outside the valid range for listen.port (1 .. 65535)\n"
        "hibus.yaml:2:27: \"0\" is outside the valid range for database.pool (1 .. 256)\n"
        "hibus.yaml:2:47: \"0s\" is outside the valid range for database.connect_timeout (1ms .. "
        "24h)\n"
        "hibus.yaml:3:21: \"0\" is outside the valid range for limits.max_body (at least 1 byte)\n"
        "hibus.yaml:3:41: \"-1\" is outside the valid range for limits.max_connections (1 .. "
        "1000000)\n"
        "channels/stock.yaml:2:11: expected an integer for priority, got "
        "\"99999999999999999999\"\n"
        "channels/stock.yaml:5:55: \"25h\" is outside the valid range for routes[0].timeout (1ms "
        ".. 24h)\n");
}

static void test_invalid_enum(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "log: { level: verbose, format: xml }\n");
    EXPECT_ERRORS("hibus.yaml:2:15: invalid value \"verbose\" for log.level (expected one of: "
                  "error, warn, info, debug)\n"
                  "hibus.yaml:2:32: invalid value \"xml\" for log.format (expected one of: text, "
                  "json)\n");
}

static void test_not_supported_yet(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "admin: { port: 8080 }\n"
                      "delivery: { workers: 4 }\n");
    put("channels/stock.yaml",
        "name: stock\n"
        "match: { path: /stock }\n"
        "allow: { roles: [lmis] }\n"
        "mode: async\n"
        "transform: { reader: lmis-report }\n"
        "routes: [{ name: r, mediator: dhis2, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("hibus.yaml:2:1: admin is not supported yet\n"
                  "hibus.yaml:3:1: delivery is not supported yet\n"
                  "channels/stock.yaml:4:7: mode \"async\" is not supported yet\n"
                  "channels/stock.yaml:5:1: transform is not supported yet\n"
                  "channels/stock.yaml:6:31: mediator \"dhis2\" is not supported yet\n");
}

static void test_password_hash(void **state)
{
    (void)state;
    put("clients.yaml", "roles: [lmis]\n"
                        "clients:\n"
                        "  - id: a\n"
                        "    password_hash: lmis-demo-secret\n"
                        "  - id: b\n"
                        "    password_hash: \"$1$abcdefgh$0123456789abcdefghijkl\"\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { clients: [a, b] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("clients.yaml:4:20: password_hash of client \"a\" is not a supported crypt(3) "
                  "hash (expected one starting with $y$, $6$, $5$, $2b$ or $gy$); make one with "
                  "\"hibus passwd\"\n"
                  "clients.yaml:6:20: password_hash of client \"b\" is not a supported crypt(3) "
                  "hash (expected one starting with $y$, $6$, $5$, $2b$ or $gy$); make one with "
                  "\"hibus passwd\"\n");
}

static void test_duplicate_client_and_role(void **state)
{
    (void)state;
    put("clients.yaml",
        "roles: [lmis, lmis]\n"
        "clients:\n"
        "  - { id: a, password_hash: \"$5$salt$0123456789abcdefghijklmnopqrstuv\" }\n"
        "  - { id: a, password_hash: \"$5$salt$0123456789abcdefghijklmnopqrstuv\" }\n");
    EXPECT_ERRORS("clients.yaml:1:15: duplicate role \"lmis\" in roles\n"
                  "clients.yaml:4:11: duplicate client id \"a\" (first defined at "
                  "clients.yaml:3:11)\n");
}

static void test_match_errors(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match:\n"
                               "  path: stock\n"
                               "  path_prefix: /stock\n"
                               "  methods: [POST, \"GE T\"]\n"
                               "  content_types: [json, \"*/*\"]\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { methods: [GET] }\n"
                             "allow: { roles: [lmis] }\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:3:9: match.path must start with \"/\", got \"stock\"\n"
        "channels/stock.yaml:4:3: match has both path and path_prefix (use exactly one of path, "
        "path_prefix or path_regex)\n"
        "channels/stock.yaml:5:19: invalid HTTP method \"GE T\" in match.methods\n"
        "channels/stock.yaml:6:19: invalid content type \"json\" in match.content_types (expected "
        "type/subtype, like application/json)\n"
        "channels/stock.yaml:6:25: invalid content type \"*/*\" in match.content_types (expected "
        "type/subtype, like application/json)\n"
        "channels/two.yaml:2:8: match needs exactly one of path, path_prefix or path_regex\n");
}

static void test_empty_allow(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("channels/stock.yaml:3:8: channel allows no client (add role names under "
                  "allow.roles, or client ids under allow.clients)\n");
}

static void test_route_errors(void **state)
{
    (void)state;
    put("channels/stock.yaml",
        "name: stock\n"
        "match: { path: /stock }\n"
        "allow: { roles: [lmis] }\n"
        "routes:\n"
        "  - { name: a, url: \"ftp://t.example\", primary: true }\n"
        "  - { name: a, url: \"http://t.example\", primary: true }\n"
        "  - { url: \"http://t.example\", auth: { bearer: t, basic: {} } }\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two }\n"
                             "allow: { roles: [lmis] }\n"
                             "routes:\n"
                             "  - { name: a, url: \"http://t.example\" }\n"
                             "  - { name: b, url: \"http://t.example\" }\n");
    put("channels/zero.yaml", "name: zero\n"
                              "match: { path: /zero }\n"
                              "allow: { roles: [lmis] }\n"
                              "routes: []\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:5:21: invalid url \"ftp://t.example\" for routes[0].url (expected an "
        "absolute http:// or https:// URL)\n"
        "channels/stock.yaml:6:13: duplicate route name \"a\" (first defined at "
        "channels/stock.yaml:5:13)\n"
        "channels/stock.yaml:6:50: route \"a\" and route \"a\" are both primary (exactly one route "
        "can be primary)\n"
        "channels/stock.yaml:7:5: missing required key \"name\" in routes[2]\n"
        "channels/stock.yaml:7:51: routes[2].auth has both bearer and basic (use exactly one of "
        "basic, bearer or header)\n"
        "channels/two.yaml:5:3: no primary route (mark exactly one route with primary: true)\n"
        "channels/zero.yaml:4:9: routes must not be empty (a channel needs at least one route)\n");
}

static void test_auth_values(void **state)
{
    (void)state;
    put("channels/stock.yaml",
        "name: stock\n"
        "match: { path: /stock }\n"
        "allow: { roles: [lmis] }\n"
        "routes:\n"
        "  - name: a\n"
        "    url: http://t.example\n"
        "    primary: true\n"
        "    auth: { basic: { username: \"a:b\", password: p } }\n"
        "  - name: b\n"
        "    url: http://t.example\n"
        "    auth: { header: { name: \"X Key\", value: \"v\\r\\nX-Evil: 1\" } }\n"
        "  - name: c\n"
        "    url: http://t.example\n"
        "    auth: { bearer: \"\" }\n");
    EXPECT_ERRORS("channels/stock.yaml:8:32: routes[0].auth.basic.username must not contain "
                  "\":\"\n"
                  "channels/stock.yaml:11:29: invalid header name \"X Key\" in "
                  "routes[1].auth.header.name\n"
                  "channels/stock.yaml:11:45: routes[1].auth.header.value must not contain control "
                  "characters\n"
                  "channels/stock.yaml:14:21: routes[2].auth.bearer must not be empty\n");
}

static void test_missing_files(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "clients: nobody.yaml\n"
                      "channels: /nonexistent/hibus-channels\n");
    EXPECT_ERRORS(
        "hibus.yaml:2:10: could not read file \"nobody.yaml\": No such file or "
        "directory\n"
        "hibus.yaml:3:11: could not open channel directory \"/nonexistent/hibus-channels\": "
        "No such file or directory\n");
    char *got = load_fail_at("missing.yaml", HIBUS_E_IO);
    assert_string_equal(got, "missing.yaml: could not read file: No such file or directory\n");
    free(got);
}

static void test_empty_and_multi_document(void **state)
{
    (void)state;
    put("clients.yaml", "# nothing\n");
    put("channels/stock.yaml", "name: a\n"
                               "---\n"
                               "name: b\n");
    EXPECT_ERRORS("clients.yaml:1:1: empty document (expected a mapping)\n"
                  "channels/stock.yaml:3:1: only one YAML document is allowed per file\n");
}

/* Several errors in several files: all of them, in file order. */
static void test_many_errors_many_files(void **state)
{
    (void)state;
    char *got = load_fail_at(DATA "multi-error/hibus.yaml", HIBUS_E_CONFIG);
    assert_string_equal(
        got,
        DATA "multi-error/hibus.yaml:2:3: unknown key \"prot\" in listen (expected one of: "
             "address, port)\n" DATA
             "multi-error/hibus.yaml:5:9: \"0\" is outside the valid range for database.pool (1 "
             ".. 256)\n" DATA "multi-error/clients.yaml:4:19: unknown role \"ops\"\n" DATA
             "multi-error/clients.yaml:5:20: password_hash of client \"lmis\" is not a supported "
             "crypt(3) hash (expected one starting with $y$, $6$, $5$, $2b$ or $gy$); make one "
             "with \"hibus passwd\"\n" DATA
             "multi-error/channels/a.yaml:2:22: invalid regular expression \"/stock/(\" in "
             "match.path_regex: Unmatched ( or \\(\n" DATA
             "multi-error/channels/b.yaml:1:7: duplicate channel name \"stock\" (first defined "
             "at " DATA "multi-error/channels/a.yaml:1:7)\n" DATA
             "multi-error/channels/b.yaml:3:20: unknown client \"nobody\"\n" DATA
             "multi-error/channels/b.yaml:5:27: invalid url \"ftp://archive.example/stock\" for "
             "routes[0].url (expected an absolute http:// or https:// URL)\n" DATA
             "multi-error/channels/b.yaml:5:67: expected a duration (like 500ms, 30s, 2m or 1h) "
             "for routes[0].timeout, got \"10 parsecs\"\n");
    free(got);
}

static void test_tie_reported(void **state)
{
    (void)state;
    char *got = load_fail_at(DATA "tie/hibus.yaml", HIBUS_E_CONFIG);
    assert_string_equal(got, DATA "tie/channels/b.yaml:1:7: channel \"b\" and channel \"a\" (" DATA
                                  "tie/channels/a.yaml:1:7) have the same priority 100 and can "
                                  "match the same request; give one of them a different "
                                  "priority\n");
    free(got);
}

/* ------------------------------------------------------------------------------------
 * Parsers
 * ------------------------------------------------------------------------------------ */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long ms;
    } ok[] = {
        {"500ms", 500}, {"30s", 30000}, {"2m", 120000}, {"1h", 3600000},
        {"7", 7000},    {"0", 0},       {"0ms", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long v = -1;
        assert_true(config_parse_duration_ms(ok[i].s, &v));
        assert_int_equal(v, ok[i].ms);
    }
    static const char *const bad[] = {"",
                                      "s",
                                      "-1s",
                                      "+1s",
                                      "1.5s",
                                      "1 s",
                                      " 1s",
                                      "1S",
                                      "1d",
                                      "1sec",
                                      "0x10",
                                      "99999999999999999999s",
                                      "9223372036854775807s",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        long v = -1;
        assert_false(config_parse_duration_ms(bad[i], &v));
        assert_int_equal(v, -1); /* untouched on failure */
    }
    long v = -1;
    assert_false(config_parse_duration_ms(NULL, &v));
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } ok[] = {
        {"2048", 2048},
        {"1B", 1},
        {"1kB", 1000},
        {"1KB", 1000},
        {"1MB", 1000000},
        {"1GB", 1000000000},
        {"512KiB", 512 * 1024},
        {"10MiB", 10 * 1024 * 1024},
        {"1GiB", 1024 * 1024 * 1024},
        {"0", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t v = 1;
        assert_true(config_parse_size(ok[i].s, &v));
        assert_int_equal(v, ok[i].n);
    }
    static const char *const bad[] = {"",
                                      "MiB",
                                      "-1",
                                      "1.5MiB",
                                      "10 MiB",
                                      "10mib",
                                      "10mb",
                                      "1TB",
                                      "0x10",
                                      "18446744073709551616",
                                      "17179869184GiB",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        size_t v = 1;
        assert_false(config_parse_size(bad[i], &v));
        assert_int_equal(v, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_conf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sorted_by_priority_then_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_channel, setup, teardown),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test_setup_teardown(test_env_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_unset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_bad_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_channel_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_regex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_supported_yet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_client_and_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_multi_document, setup, teardown),
        cmocka_unit_test(test_many_errors_many_files),
        cmocka_unit_test(test_tie_reported),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
