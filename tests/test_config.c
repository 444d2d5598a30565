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
#include "tmpdir.h"
#include "hibus/log.h"
#include "hibus/mapping.h"
#include "hibus/quality.h"

#define DATA HIBUS_TEST_DATA "/config/"

/* ------------------------------------------------------------------------------------
 * A temporary configuration tree per test
 * ------------------------------------------------------------------------------------ */

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

/* Every test starts in an empty directory holding a valid tree. */
static int setup(void **state)
{
    (void)state;
    if (tmpdir_enter("config") != 0 || mkdir("channels", 0700) != 0 || mkdir("mappings", 0700) != 0)
        return -1;
    put("hibus.yaml", main_ok);
    put("clients.yaml", clients_ok);
    put("channels/stock.yaml", channel_ok);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_leave();
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
        if (strcmp(got_, expected) != 0) /* cmocka cuts long strings */                            \
            fprintf(stderr, "expected:\n%sgot:\n%s", (const char *)(expected), got_);              \
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
    assert_int_equal(cfg->connection_memory, 16 * 1024);
    assert_int_equal(cfg->connection_timeout_ms, 60000);
    assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg->log_format, LOG_FORMAT_TEXT);
    assert_int_equal(cfg->delivery_workers, 4);
    assert_int_equal(cfg->delivery_lease_ms, 30 * 1000);
    assert_int_equal(cfg->delivery_poll_ms, 5000);
    assert_int_equal(cfg->delivery_batch, 10);
    assert_int_equal(cfg->drain_ms, 30000);
    assert_int_equal(cfg->retry.max_attempts, 0);
    assert_int_equal(cfg->retry.max_age_ms, 24L * 3600 * 1000);
    assert_int_equal(cfg->retry.backoff_initial_ms, 2000);
    assert_int_equal(cfg->retry.backoff_max_ms, 5 * 60 * 1000);
    assert_int_equal(cfg->keep_bodies_ms, 0);
    assert_int_equal(cfg->keep_transactions_ms, 0);
    assert_int_equal(cfg->prune_every_ms, 3600 * 1000);
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
    assert_memory_equal(&ch->retry, &cfg->retry, sizeof ch->retry);
    assert_int_equal(ch->keep_bodies_ms, 0);
    assert_int_equal(ch->keep_transactions_ms, 0);
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

static const char *const sample_env[][2] = {
    {"HIBUS_PORT", "5099"},
    {"HIBUS_DATABASE_URL", "postgres://hibus@db/hibus"},
    {"HIBUS_ARCHIVE_URL", "http://archive.example:8000"},
    {"HIBUS_DHIS2_URL", "https://dhis.example.org"},
    {"HIBUS_DHIS2_USER", "hibus"},
    {"HIBUS_DHIS2_PASSWORD", "Hibus-sim-2026"},
};

static void test_sample_conf(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sample_env / sizeof sample_env[0]; i++)
        setenv(sample_env[i][0], sample_env[i][1], 1);
    struct config *cfg = load_ok_at(HIBUS_TEST_DATA "/../../conf/hibus.yaml");
    assert_int_equal(cfg->listen_port, 5099);
    assert_string_equal(cfg->database_url, "postgres://hibus@db/hibus");
    assert_int_equal(cfg->database_connect_timeout_ms, 3000);
    assert_true(config_header_redacted(cfg, "x-api-key"));
    assert_int_equal(cfg->n_redact_headers, 5);
    /* delivery: and retention: */
    assert_int_equal(cfg->delivery_workers, 4);
    assert_int_equal(cfg->delivery_lease_ms, 30 * 1000);
    assert_int_equal(cfg->delivery_poll_ms, 5000);
    assert_int_equal(cfg->delivery_batch, 10);
    assert_int_equal(cfg->drain_ms, 30000);
    assert_int_equal(cfg->retry.max_attempts, 0);
    assert_int_equal(cfg->retry.max_age_ms, 24L * 3600 * 1000);
    assert_int_equal(cfg->retry.backoff_initial_ms, 2000);
    assert_int_equal(cfg->retry.backoff_max_ms, 5 * 60 * 1000);
    assert_int_equal(cfg->keep_bodies_ms, 90LL * 86400000);
    assert_int_equal(cfg->keep_transactions_ms, 400LL * 86400000);
    assert_int_equal(cfg->prune_every_ms, 3600 * 1000);
    assert_int_equal(cfg->n_roles, 2);
    assert_int_equal(cfg->n_clients, 2);
    const struct config_client *c = config_find_client(cfg, "ops-console");
    assert_non_null(c);
    assert_string_equal(c->name, "Operations staff");
    assert_string_equal(c->password_hash, "$y$j9T$BijMUxn9VtJ/WMulMQ11r0$SHT4MCJGkacuRJ9ICQDHjvhmgO"
                                          "Bbz/LZR5CQQ7m6BkA");
    assert_string_equal(cfg->mappings_dir, HIBUS_TEST_DATA "/../../conf/../mappings");
    assert_int_equal(cfg->n_channels, 4);
    assert_int_equal(cfg->n_mappings, 1); /* four channels name it: read once */
    const struct config_channel *ev = config_find_channel(cfg, "stock-events");
    assert_non_null(ev);
    assert_true(ev->aggregate.on);
    assert_int_equal(ev->aggregate.period_type, PERIOD_MONTHLY);
    assert_int_equal(ev->aggregate.close_after_ms, 5LL * 86400000);
    assert_string_equal(ev->aggregate.timezone, "Africa/Dar_es_Salaam");

    const struct config_channel *ch = config_find_channel(cfg, "lmis-stock");
    assert_non_null(ch);
    assert_int_equal(ch->priority, 10);
    assert_int_equal(ch->mode, CONFIG_MODE_ASYNC);
    assert_int_equal(ch->retry.max_attempts, 0); /* retried for max_age, no count */
    assert_int_equal(cfg->warnings.n, 0);
    assert_int_equal(ch->retry.max_age_ms, cfg->retry.max_age_ms);
    assert_int_equal(ch->retry.backoff_initial_ms, cfg->retry.backoff_initial_ms);
    assert_int_equal(ch->retry.backoff_max_ms, cfg->retry.backoff_max_ms);
    assert_int_equal(ch->keep_bodies_ms, 0);
    assert_int_equal(ch->keep_transactions_ms, 0);
    assert_int_equal(ch->n_methods, 1);
    assert_string_equal(ch->methods[0], "POST");
    assert_string_equal(ch->content_types[0], "application/json");
    assert_string_equal(ch->allow_roles[0], "lmis");
    assert_true(ch->has_transform);
    assert_string_equal(ch->transform.reader, "lmis-report");
    assert_string_equal(ch->transform.writer, "dhis2-datavalueset");
    assert_int_equal(ch->transform.n_quality, 4);
    assert_int_equal(ch->transform.quality[0].kind, QUALITY_NON_NEGATIVE);
    assert_int_equal(ch->transform.quality[1].kind, QUALITY_REQUIRED_MEASURES);
    assert_int_equal(ch->transform.quality[2].kind, QUALITY_BALANCE);
    assert_int_equal(ch->transform.quality[3].kind, QUALITY_STOCKOUT_DAYS);
    assert_int_equal(ch->transform.quality[2].action, QUALITY_REJECT);
    assert_int_equal(ch->unmapped, MAPPING_REJECT);
    const struct mapping *m = config_find_mapping(cfg, "national");
    assert_non_null(m);
    assert_ptr_equal(ch->transform.mapping, m);
    assert_int_equal(ch->n_routes, 2);
    const struct config_route *r = config_primary_route(ch);
    assert_string_equal(r->name, "dhis2");
    assert_int_equal(r->mediator, CONFIG_MEDIATOR_DHIS2);
    assert_string_equal(r->url, "https://dhis.example.org");
    assert_int_equal(r->body, CONFIG_BODY_TRANSFORMED);
    assert_string_equal(r->writer, "dhis2-datavalueset");
    assert_string_equal(r->import_strategy, "CREATE_AND_UPDATE");
    assert_null(r->id_scheme);
    assert_false(r->dry_run);
    assert_int_equal(r->auth_kind, CONFIG_AUTH_BASIC);
    assert_string_equal(r->auth_user, "hibus");
    assert_string_equal(r->auth_secret, "Hibus-sim-2026");
    assert_int_equal(r->timeout_ms, 30000);
    r = &ch->routes[1];
    assert_string_equal(r->name, "archive");
    assert_int_equal(r->mediator, CONFIG_MEDIATOR_HTTP);
    assert_string_equal(r->url, "http://archive.example:8000/stock-reports");
    assert_int_equal(r->body, CONFIG_BODY_ORIGINAL);
    assert_null(r->writer);
    assert_null(r->import_strategy);
    assert_int_equal(r->n_when, 1);
    assert_string_equal(r->when[0], "2xx");
    assert_int_equal(r->timeout_ms, 10000);

    ch = config_find_channel(cfg, "openlmis-requisition");
    assert_non_null(ch);
    assert_int_equal(ch->mode, CONFIG_MODE_SYNC);
    assert_memory_equal(&ch->retry, &cfg->retry, sizeof ch->retry);
    assert_string_equal(ch->transform.reader, "openlmis-requisition");
    assert_ptr_equal(ch->transform.mapping, m);
    assert_string_equal(config_primary_route(ch)->writer, "adx");

    ch = config_find_channel(cfg, "dhis2-passthrough");
    assert_non_null(ch);
    assert_string_equal(ch->transform.reader, "dhis2-json");
    assert_int_equal(ch->unmapped, MAPPING_SKIP);
    assert_ptr_equal(ch->transform.mapping, m);
    assert_string_equal(config_primary_route(ch)->writer, "dhis2-datavalueset");

    /* mappings/national.yaml and national-facilities.csv */
    assert_string_equal(m->name, "national");
    assert_string_equal(m->data_set_uid, "uRfFkKfeb3Q");
    assert_true(m->has_period_type);
    assert_int_equal(m->period_type, PERIOD_MONTHLY);
    assert_null(m->aoc_uid);
    assert_int_equal(m->n_org_units, 3);
    assert_string_equal(mapping_org_unit(m, "FAC-0042"), "cLq0tI1jksz");
    assert_string_equal(mapping_org_unit(m, "FAC-0043"), "p88r7fYkDc9");
    assert_string_equal(mapping_org_unit(m, "FAC-0100"), "kVncLVPFjTT");
    assert_int_equal(m->n_items, 4 * 9); /* 4 items x (8 measures + no measure) */
    const struct mapping_item *it = mapping_item(m, "ZINC20", "stock_on_hand");
    assert_non_null(it);
    assert_string_equal(it->de_uid, "GHgQT4Rrg3i");
    assert_string_equal(it->coc_uid, "PcAgkuk85UK");
    it = mapping_item(m, "ACT-AL20", "requested");
    assert_string_equal(it->de_uid, "rTAGiDO5psX");
    assert_string_equal(it->coc_uid, "IXRCtTyibWF");
    it = mapping_item(m, "AMOX250", NULL);
    assert_string_equal(it->de_uid, "PRIVrEScHcE");
    assert_null(it->coc_uid);
    config_free(cfg);
    for (size_t i = 0; i < sizeof sample_env / sizeof sample_env[0]; i++)
        unsetenv(sample_env[i][0]);
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

/* No channel file yet (a new installation): the configuration loads, with no
 * channels. Sorting nothing used to hand qsort a null pointer (UBSan stopped serve). */
static void test_no_channels(void **state)
{
    (void)state;
    assert_int_equal(unlink("channels/stock.yaml"), 0);
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->n_channels, 0);
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

/* ${file:PATH}: a secret read from a file (relative to hibus.yaml's directory), its
 * final line end dropped; what is wrong with the file is said, its contents never. */
static void test_file_secrets(void **state)
{
    (void)state;
    put("secret.txt", "s3cr3t-pass\r\n");
    put("empty.txt", "");
    put("two-lines.txt", "a\nb\n");
    assert_int_equal(mkdir("secret-dir", 0700), 0);
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://h/x\",\n"
                               "  auth: { basic: { username: u, password: \"${file:secret.txt}\" } "
                               "} }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_string_equal(cfg->channels[0].routes[0].auth_secret, "s3cr3t-pass");
    assert_int_equal(cfg->warnings.n, 0); /* not written in the file: no warning */
    config_free(cfg);

    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes:\n"
                               "  - { name: a, url: \"http://h/a\", auth: { bearer: "
                               "\"${file:missing.txt}\" } }\n"
                               "  - { name: b, url: \"http://h/b\", auth: { bearer: "
                               "\"${file:empty.txt}\" } }\n"
                               "  - { name: c, url: \"http://h/c\", auth: { bearer: "
                               "\"${file:two-lines.txt}\" } }\n"
                               "  - { name: d, url: \"http://h/d\", auth: { bearer: "
                               "\"${file:secret-dir}\" } }\n"
                               "  - { name: e, url: \"http://h/e\", auth: { bearer: \"${file:}\" } "
                               "}\n");
    /* hibus.yaml was named relative to here, so are the files */
    const char *want = "channels/stock.yaml:5:51: cannot use the secret file missing.txt for "
                       "routes[0].auth.bearer: No such file or directory\n"
                       "channels/stock.yaml:6:51: cannot use the secret file empty.txt for "
                       "routes[1].auth.bearer: it is empty\n"
                       "channels/stock.yaml:7:51: cannot use the secret file two-lines.txt for "
                       "routes[2].auth.bearer: it has more than one line\n"
                       "channels/stock.yaml:8:51: cannot use the secret file secret-dir for "
                       "routes[3].auth.bearer: not a regular file\n"
                       "channels/stock.yaml:9:51: invalid file reference in routes[4].auth.bearer "
                       "(expected ${file:PATH})\n";
    char *got = load_fail_at("hibus.yaml", HIBUS_E_CONFIG);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "expected:\n%sgot:\n%s", want, got);
    assert_string_equal(got, want);
    assert_null(strstr(got, "s3cr3t"));
    free(got);
}

/* A secret written in a channel file is allowed, with a warning that says where and
 * how to keep it out; a reference (environment or file) is not warned about. */
static void test_plain_secret_warning(void **state)
{
    (void)state;
    setenv("HIBUS_T_TOKEN", "t", 1);
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes:\n"
                               "  - { name: a, url: \"http://h/a\", primary: true,\n"
                               "      auth: { basic: { username: u, password: hunter2 } } }\n"
                               "  - { name: b, url: \"http://h/b\", auth: { bearer: "
                               "\"${HIBUS_T_TOKEN}\" } }\n"
                               "  - { name: c, url: \"http://h/c\",\n"
                               "      auth: { header: { name: X-Key, value: k3y } } }\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->warnings.n, 2);
    assert_string_equal(cfg->warnings.v[0].file, "channels/stock.yaml");
    assert_int_equal(cfg->warnings.v[0].line, 6);
    assert_non_null(
        strstr(cfg->warnings.v[0].msg, "routes[0].auth.basic.password is written in plain text"));
    assert_non_null(strstr(cfg->warnings.v[0].msg, "${file:"));
    assert_int_equal(cfg->warnings.v[1].line, 9);
    assert_non_null(strstr(cfg->warnings.v[1].msg, "routes[2].auth.header.value"));
    config_free(cfg);
    unsetenv("HIBUS_T_TOKEN");
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
    /* each variable once, where it is first used */
    EXPECT_ERRORS("hibus.yaml:2:8: environment variable \"HIBUS_T_UNSET\" is not set (set it, or "
                  "write ${HIBUS_T_UNSET:-DEFAULT} for a default)\n"
                  "hibus.yaml:3:9: environment variable \"HIBUS_T_ALSO_UNSET\" is not set (set "
                  "it, or write ${HIBUS_T_ALSO_UNSET:-DEFAULT} for a default)\n");
}

/* ${NAME:-default} and ${NAME:?message}, as in POSIX sh: unset or empty takes the
 * default, or is an error with the message. */
static void test_env_default_and_required(void **state)
{
    (void)state;
    unsetenv("HIBUS_T_UNSET");
    setenv("HIBUS_T_EMPTY", "", 1);
    setenv("HIBUS_T_HOST", "db.example", 1);
    put("hibus.yaml",
        "listen: { port: \"${HIBUS_T_UNSET:-5001}\", address: \"${HIBUS_T_EMPTY:-::1}\" }\n"
        "database:\n"
        "  url: \"postgres://${HIBUS_T_HOST:?the database host}/h${HIBUS_T_UNSET:-}\"\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->listen_port, 5001);
    assert_string_equal(cfg->listen_address, "::1");
    assert_string_equal(cfg->database_url, "postgres://db.example/h");
    config_free(cfg);
    put("hibus.yaml", "database:\n"
                      "  url: \"${HIBUS_T_UNSET:?set it to the PostgreSQL URL}\"\n"
                      "listen: { address: \"${HIBUS_T_EMPTY:?an address}\" }\n");
    EXPECT_ERRORS("hibus.yaml:2:8: environment variable \"HIBUS_T_UNSET\" is not set: set it to "
                  "the PostgreSQL URL\n"
                  "hibus.yaml:3:20: environment variable \"HIBUS_T_EMPTY\" is empty: an "
                  "address\n");
    unsetenv("HIBUS_T_EMPTY");
    unsetenv("HIBUS_T_HOST");
}

static void test_env_bad_reference(void **state)
{
    (void)state;
    put("hibus.yaml", "database:\n"
                      "  url: \"${1X}\"\n"
                      "listen: { address: \"${HOST\" }\n");
    EXPECT_ERRORS(
        "hibus.yaml:2:8: invalid environment variable reference in \"${1X}\" "
        "(expected ${NAME}, ${NAME:-default} or ${NAME:?message}, or $$ for a literal $)\n"
        "hibus.yaml:3:20: invalid environment variable reference in \"${HOST\" "
        "(expected ${NAME}, ${NAME:-default} or ${NAME:?message}, or $$ for a literal $)\n");
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
                  "port, tls)\n"
                  "hibus.yaml:4:1: unknown key \"loggin\" at top level (expected one of: listen, "
                  "database, limits, log, redact_headers, clients, channels, mappings, admin, "
                  "delivery, retention, aggregate, alerts)\n");
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
                  "clients.yaml:3:5: missing required key \"password_hash\" in clients[0] (or "
                  "certificate: a client is identified by a password, a certificate or both)\n"
                  "channels/stock.yaml:1:1: missing required key \"name\" at top level\n"
                  "channels/stock.yaml:1:1: missing required key \"routes\" at top level\n"
                  "channels/stock.yaml:1:1: missing required key \"match\" at top level (or "
                  "poll: for a channel that pulls its requests from a source)\n"
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
                      "limits: { max_body: 0, max_connections: -1, connection_memory: 4KiB }\n");
    put("channels/stock.yaml", "name: stock\n"
                               "priority: 99999999999999999999\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\", timeout: 25h }]\n");
    EXPECT_ERRORS(
        "hibus.yaml:1:17: \"70000\" is outside the valid range for listen.port (1 .. 65535)\n"
        "hibus.yaml:2:27: \"0\" is outside the valid range for database.pool (1 .. 256)\n"
        "hibus.yaml:2:47: \"0s\" is outside the valid range for database.connect_timeout (1ms .. "
        "1h)\n"
        "hibus.yaml:3:21: \"0\" is outside the valid range for limits.max_body (at least 1 byte)\n"
        "hibus.yaml:3:41: \"-1\" is outside the valid range for limits.max_connections (1 .. "
        "1000000)\n"
        "hibus.yaml:3:64: \"4KiB\" is outside the valid range for limits.connection_memory "
        "(8KiB .. 1MiB)\n"
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

#define HASH "$y$j9T$O1xpZ2dHCB9F8u1.PAzAr/$ec4L5xZSYZFjWDm3jVLo/g9fuO0fwTM1Sw5XtUtInlC"

static void test_admin_needs_users(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "admin: { port: 8080 }\n");
    EXPECT_ERRORS("hibus.yaml:2:16: could not read file \"admin-users.yaml\": No such file or "
                  "directory\n");
    put("hibus.yaml", "database: { url: x }\n"
                      "listen: { port: 8080 }\n"
                      "admin: { port: 8080, users: admin-users.yaml, metrics: open }\n");
    put("admin-users.yaml", "users:\n"
                            "  - { id: ana, role: admin, password_hash: \"" HASH "\" }\n"
                            "  - { id: ana, role: reader, password_hash: \"" HASH "\" }\n"
                            "  - { id: bo, role: read, password_hash: plain, roles: [x] }\n");
    EXPECT_ERRORS(
        "hibus.yaml:3:16: admin.port is listen.port (8080): give the admin listener a port of "
        "its own\n"
        "hibus.yaml:3:56: invalid value \"open\" for admin.metrics (expected one of: login, "
        "public)\n"
        "admin-users.yaml:3:11: duplicate admin user id \"ana\" (first defined at "
        "admin-users.yaml:2:11)\n"
        "admin-users.yaml:3:22: unknown admin role \"reader\" (expected one of: read, operator, "
        "admin)\n"
        "admin-users.yaml:4:42: password_hash of admin user \"bo\" is not a supported crypt(3) "
        "hash (expected one starting with $y$, $6$, $5$, $2b$ or $gy$); make one with \"hibus "
        "passwd\"\n"
        "admin-users.yaml:4:49: unknown key \"roles\" in users[2] (expected one of: id, name, "
        "role, password_hash, enabled)\n");
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
        "basic, bearer, header or token)\n"
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
             "address, port, tls)\n" DATA
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
 * Transform, DHIS2 routes, match.json and mapping files
 * ------------------------------------------------------------------------------------ */

static const char mapping_small[] = "org_units: { FAC-1: kVncLVPFjTT }\n"
                                    "items: { AMOX250: PRIVrEScHcE }\n";

/* A channel file: the common head, then what the test needs. */
#define CHANNEL_HEAD                                                                               \
    "name: stock\n"                                                                                \
    "match: { path: /stock }\n"                                                                    \
    "allow: { roles: [lmis] }\n"

static void test_transform_all_keys(void **state)
{
    (void)state;
    /* targets in DHIS2 codes (id_schemes), so that route "json" may say CODE */
    put("mappings/m.yaml", "id_schemes: { data_element: CODE, org_unit: CODE, "
                           "category_option_combo: CODE, data_set: CODE }\n"
                           "org_units: { FAC-1: FAC_0001 }\n"
                           "items: { AMOX250: AMOX_250 }\n");
    put("channels/stock.yaml", CHANNEL_HEAD /* lines 1-3 */
        "transform:\n"
        "  reader: dhis2-json\n"
        "  mapping: m\n"
        "  quality:\n"
        "    - non_negative\n"
        "    - { rule: balance, action: warn, tolerance: 0.5 }\n"
        "    - { rule: value_ceiling, max: 100000, measures: [consumed, received] }\n"
        "    - { rule: required_measures, measures: [stock_on_hand] }\n"
        "    - { rule: numeric, action: reject }\n"
        "  writer: adx\n"
        "unmapped: skip\n"
        "routes:\n"
        "  - name: dhis2\n"
        "    mediator: dhis2\n"
        "    url: http://127.0.0.1:8080/dhis\n"
        "    primary: true\n"
        "    auth: { token: d2pat_abc }\n"
        "    dhis2: { dry_run: true, import_strategy: UPDATE }\n"
        "  - name: json\n"
        "    mediator: dhis2\n"
        "    url: https://dhis.example.org\n"
        "    writer: dhis2-datavalueset\n"
        "    dhis2: { id_scheme: CODE }\n"
        "    when: [5xx, failed, 409, 2XX]\n"
        "  - name: copy\n"
        "    url: http://copy.example\n"
        "    body: transformed\n"
        "  - name: raw\n"
        "    url: http://raw.example\n"
        "    body: original\n"
        "    auth: { token: t }\n");
    put("channels/other.yaml",
        "name: other\n"
        "match: { path: /other }\n"
        "allow: { roles: [lmis] }\n"
        "transform: { reader: lmis-report, mapping: m }\n"
        "routes: [{ name: d, mediator: dhis2, url: \"http://d.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_string_equal(cfg->mappings_dir, "mappings");
    assert_int_equal(cfg->n_mappings, 1);
    const struct mapping *m = config_find_mapping(cfg, "m");
    assert_non_null(m);
    assert_null(config_find_mapping(cfg, "national"));
    assert_string_equal(m->file, "mappings/m.yaml");
    /* hibus.yaml, clients.yaml, other.yaml, the mapping it named first, stock.yaml */
    assert_int_equal(cfg->n_files, 5);
    assert_string_equal(cfg->files[3], "mappings/m.yaml");

    const struct config_channel *ch = config_find_channel(cfg, "stock");
    const struct config_transform *t = &ch->transform;
    assert_true(ch->has_transform);
    assert_string_equal(t->reader, "dhis2-json");
    assert_string_equal(t->writer, "adx");
    assert_ptr_equal(t->mapping, m);
    assert_ptr_equal(config_find_channel(cfg, "other")->transform.mapping, m);
    assert_int_equal(ch->unmapped, MAPPING_SKIP);
    assert_int_equal(t->n_quality, 5);
    assert_int_equal(t->quality[0].kind, QUALITY_NON_NEGATIVE);
    assert_int_equal(t->quality[0].action, QUALITY_REJECT);
    assert_int_equal(t->quality[0].n_measures, 0);
    assert_int_equal(t->quality[1].kind, QUALITY_BALANCE);
    assert_int_equal(t->quality[1].action, QUALITY_WARN);
    assert_true(t->quality[1].tolerance == 0.5);
    assert_int_equal(t->quality[2].kind, QUALITY_VALUE_CEILING);
    assert_true(t->quality[2].max == 100000.0);
    assert_int_equal(t->quality[2].n_measures, 2);
    assert_string_equal(t->quality[2].measures[0], "consumed");
    assert_string_equal(t->quality[2].measures[1], "received");
    assert_int_equal(t->quality[3].kind, QUALITY_REQUIRED_MEASURES);
    assert_string_equal(t->quality[3].measures[0], "stock_on_hand");
    assert_int_equal(t->quality[4].kind, QUALITY_NUMERIC);

    assert_int_equal(ch->n_routes, 4);
    const struct config_route *r = &ch->routes[0];
    assert_int_equal(r->mediator, CONFIG_MEDIATOR_DHIS2);
    assert_string_equal(r->url, "http://127.0.0.1:8080/dhis");
    assert_int_equal(r->body, CONFIG_BODY_TRANSFORMED);
    assert_string_equal(r->writer, "adx"); /* the transform's */
    assert_true(r->dry_run);
    assert_string_equal(r->import_strategy, "UPDATE");
    assert_null(r->id_scheme);
    assert_int_equal(r->auth_kind, CONFIG_AUTH_TOKEN);
    assert_string_equal(r->auth_secret, "d2pat_abc");
    assert_int_equal(r->n_when, 0);
    r = &ch->routes[1];
    assert_string_equal(r->writer, "dhis2-datavalueset");
    assert_false(r->dry_run);
    assert_string_equal(r->import_strategy, "CREATE_AND_UPDATE");
    assert_string_equal(r->id_scheme, "CODE");
    for (int k = 0; k < MAPPING_KINDS; k++)
        assert_string_equal(r->id_schemes[k], "CODE");
    assert_string_equal(m->org_units[0].uid, "FAC_0001");
    assert_string_equal(m->items[0].de_uid, "AMOX_250");
    assert_int_equal(r->n_when, 4);
    assert_string_equal(r->when[0], "5xx");
    assert_string_equal(r->when[1], "failed");
    assert_string_equal(r->when[2], "409");
    assert_string_equal(r->when[3], "2xx");
    r = &ch->routes[2];
    assert_int_equal(r->mediator, CONFIG_MEDIATOR_HTTP);
    assert_int_equal(r->body, CONFIG_BODY_TRANSFORMED);
    assert_string_equal(r->writer, "adx");
    assert_null(r->import_strategy);
    r = &ch->routes[3];
    assert_int_equal(r->body, CONFIG_BODY_ORIGINAL);
    assert_null(r->writer);
    assert_int_equal(r->auth_kind, CONFIG_AUTH_TOKEN);

    ch = config_find_channel(cfg, "other");
    assert_string_equal(ch->transform.writer, "dhis2-datavalueset"); /* the default */
    assert_int_equal(ch->transform.n_quality, 0);
    assert_int_equal(ch->unmapped, MAPPING_REJECT);
    assert_string_equal(ch->routes[0].writer, "dhis2-datavalueset");
    config_free(cfg);
}

/* A transform without mapping is fine when no route needs UIDs. */
static void test_transform_without_mapping(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "mappings: tables\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: adx }\n"
                                            "routes:\n"
                                            "  - name: a\n"
                                            "    url: http://a.example\n"
                                            "    body: transformed\n"
                                            "    writer: dhis2-datavalueset\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_string_equal(cfg->mappings_dir, "tables");
    assert_int_equal(cfg->n_mappings, 0);
    const struct config_channel *ch = &cfg->channels[0];
    assert_null(ch->transform.mapping);
    assert_string_equal(ch->routes[0].writer, "dhis2-datavalueset");
    config_free(cfg);
}

static void test_json_match(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match:\n"
                               "  path: /stock\n"
                               "  json:\n"
                               "    program: essential-medicines\n"
                               "    report.kind: \"monthly\"\n"
                               "    report.version: 2\n"
                               "    report.final: true\n"
                               "    \"a b.c-d\": \"\"\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    const struct config_channel *ch = &cfg->channels[0];
    assert_int_equal(ch->n_json_match, 5);
    assert_string_equal(ch->json_match[0].path, "program");
    assert_string_equal(ch->json_match[0].equals, "essential-medicines");
    assert_string_equal(ch->json_match[1].path, "report.kind");
    assert_string_equal(ch->json_match[1].equals, "monthly");
    assert_string_equal(ch->json_match[2].equals, "2");
    assert_string_equal(ch->json_match[3].equals, "true");
    assert_string_equal(ch->json_match[4].path, "a b.c-d");
    assert_string_equal(ch->json_match[4].equals, "");
    config_free(cfg);
}

/* Flattening: default measures, an item's own measures (replacing them), the UID
 * shorthand, and CSV rows with quoting, CRLF, a BOM and blank lines. */
static void test_mapping_file(void **state)
{
    (void)state;
    put("mappings/m.yaml", "data_set: uRfFkKfeb3Q\n"
                           "period_type: Quarterly\n"
                           "attribute_option_combo: pafMuhXXF9W\n"
                           "org_units:\n"
                           "  FAC-0100: kVncLVPFjTT\n"
                           "org_units_csv: lists/facilities.csv\n"
                           "measures:\n"
                           "  consumed: LelQdVJoKer\n"
                           "  STOCK_ON_HAND: PcAgkuk85UK\n"
                           "items:\n"
                           "  AMOX250: { data_element: PRIVrEScHcE }\n"
                           "  ZINC20: { data_element: GHgQT4Rrg3i, measures: { stock_on_hand: "
                           "PcAgkuk85UK, \"losses:Expired\": CocExpired1 } }\n"
                           "  ORS1L: YpYGky8q06j\n"
                           "  NONE: { data_element: rTAGiDO5psX, measures: {} }\n"
                           "items_csv: items.csv\n");
    assert_int_equal(mkdir("mappings/lists", 0700), 0);
    put("mappings/lists/facilities.csv", "\xEF\xBB\xBF"
                                         "code,uid\r\n"
                                         "FAC-0042,cLq0tI1jksz\r\n"
                                         "\r\n"
                                         "\"FAC,43\",\"p88r7fYkDc9\"\r\n"
                                         "\"FAC \"\"44\"\"\",Z2bdC37H4KV");
    put("mappings/items.csv", "item,measure,data_element,category_option_combo\n"
                              "ACT-AL20,,rTAGiDO5psX,\n"
                              "ACT-AL20,consumed,rTAGiDO5psX,LelQdVJoKer\n"
                              "ACT-AL20,losses:Damaged,DeAmoxLoss1,CocDamaged1\n"
                              "ACT-AL20,\"multi\nline\",rTAGiDO5psX,\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    const struct mapping *m = config_find_mapping(cfg, "m");
    assert_non_null(m);
    assert_string_equal(m->name, "m");
    assert_string_equal(m->data_set_uid, "uRfFkKfeb3Q");
    assert_true(m->has_period_type);
    assert_int_equal(m->period_type, PERIOD_QUARTERLY);
    assert_string_equal(m->aoc_uid, "pafMuhXXF9W");
    assert_int_equal(m->n_org_units, 4);
    assert_string_equal(mapping_org_unit(m, "FAC-0042"), "cLq0tI1jksz");
    assert_string_equal(mapping_org_unit(m, "FAC,43"), "p88r7fYkDc9");
    assert_string_equal(mapping_org_unit(m, "FAC \"44\""), "Z2bdC37H4KV");
    assert_string_equal(mapping_org_unit(m, "FAC-0100"), "kVncLVPFjTT");
    /* AMOX250: 1 + 2 defaults; ZINC20: 1 + 2 own; ORS1L: 1 + 2; NONE: 1; CSV: 4 */
    assert_int_equal(m->n_items, 3 + 3 + 3 + 1 + 4);
    const struct mapping_item *it = mapping_item(m, "AMOX250", "STOCK_ON_HAND");
    assert_string_equal(it->de_uid, "PRIVrEScHcE");
    assert_string_equal(it->coc_uid, "PcAgkuk85UK");
    assert_null(mapping_item(m, "ZINC20", "consumed")); /* own measures replace the defaults */
    it = mapping_item(m, "ZINC20", "stock_on_hand");
    assert_string_equal(it->de_uid, "GHgQT4Rrg3i");
    assert_string_equal(it->coc_uid, "PcAgkuk85UK");
    it = mapping_item(m, "ORS1L", "consumed");
    assert_string_equal(it->de_uid, "YpYGky8q06j");
    assert_string_equal(it->coc_uid, "LelQdVJoKer");
    it = mapping_item(m, "NONE", NULL);
    assert_string_equal(it->de_uid, "rTAGiDO5psX");
    assert_null(mapping_item(m, "NONE", "consumed"));
    it = mapping_item(m, "ACT-AL20", NULL);
    assert_null(it->coc_uid);
    it = mapping_item(m, "ACT-AL20", "consumed");
    assert_string_equal(it->coc_uid, "LelQdVJoKer");
    /* a loss by reason (lmis-report losses_by_reason) is a measure like any other */
    it = mapping_item(m, "ZINC20", "losses:Expired");
    assert_string_equal(it->coc_uid, "CocExpired1");
    it = mapping_item(m, "ACT-AL20", "losses:Damaged");
    assert_string_equal(it->de_uid, "DeAmoxLoss1");
    assert_string_equal(it->coc_uid, "CocDamaged1");
    it = mapping_item(m, "ACT-AL20", "multi\nline");
    assert_non_null(it);
    assert_null(it->coc_uid);
    assert_int_equal(cfg->n_files, 6);
    assert_string_equal(cfg->files[3], "mappings/m.yaml");
    assert_string_equal(cfg->files[4], "mappings/lists/facilities.csv");
    assert_string_equal(cfg->files[5], "mappings/items.csv");
    config_free(cfg);
}

static void test_transform_errors(void **state)
{
    (void)state;
    put("mappings/m.yaml", mapping_small);
    put("channels/stock.yaml", CHANNEL_HEAD "transform:\n"
                                            "  reader: lmis\n"
                                            "  mapping: ../m\n"
                                            "  writer: csv\n"
                                            "  colour: blue\n"
                                            "unmapped: skip\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two }\n"
                             "allow: { roles: [lmis] }\n"
                             "transform: { mapping: nowhere }\n"
                             "unmapped: drop\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/three.yaml", "name: three\n"
                               "match: { path: /three }\n"
                               "allow: { roles: [lmis] }\n"
                               "transform: { reader: adx, mapping: nowhere }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/four.yaml", "name: four\n"
                              "match: { path: /four }\n"
                              "allow: { roles: [lmis] }\n"
                              "transform: { reader: adx }\n"
                              "unmapped: skip\n"
                              "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/five.yaml",
        "name: five\n"
        "match: { path: /five }\n"
        "allow: { roles: [lmis] }\n"
        "transform:\n"
        "  reader: adx\n"
        "  losses: { reasons: [Damage, Damage], categories: [LOSS, transfer] }\n"
        "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/six.yaml", "name: six\n"
                             "match: { path: /six }\n"
                             "allow: { roles: [lmis] }\n"
                             "transform: { reader: openlmis-requisition, losses: {} }\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/five.yaml:6:3: transform.losses applies only to the openlmis-requisition "
        "reader (this channel's reader is adx)\n"
        "channels/five.yaml:6:31: duplicate reason \"Damage\" in transform.losses.reasons\n"
        "channels/five.yaml:6:53: invalid reason category \"LOSS\" in "
        "transform.losses.categories (expected TRANSFER, ADJUSTMENT, PHYSICAL_INVENTORY or "
        "AGGREGATION)\n"
        "channels/four.yaml:5:1: unmapped applies only to a channel whose transform has a "
        "mapping\n"
        "channels/six.yaml:4:52: transform.losses needs reasons, categories or both\n"
        "channels/stock.yaml:5:11: unknown reader \"lmis\" (expected one of: lmis-report, "
        "openlmis-requisition, dhis2-json, adx, dhis2-csv; or, with aggregate:, one of: "
        "stock-event, openlmis-stock-event)\n"
        "channels/stock.yaml:6:12: invalid mapping name \"../m\" (expected the name of a file in "
        "the mappings directory, without .yaml: letters, digits, \"-\", \"_\" or \".\")\n"
        "channels/stock.yaml:7:11: unknown writer \"csv\" (expected one of: dhis2-datavalueset, "
        "adx)\n"
        "channels/stock.yaml:8:3: unknown key \"colour\" in transform (expected one of: reader, "
        "mapping, quality, writer, losses)\n"
        "channels/three.yaml:4:36: mapping \"nowhere\" not found: could not read file "
        "\"mappings/nowhere.yaml\": No such file or directory\n"
        "channels/two.yaml:4:12: missing required key \"reader\" in transform\n"
        "channels/two.yaml:4:23: mapping \"nowhere\" not found: could not read file "
        "\"mappings/nowhere.yaml\": No such file or directory\n"
        "channels/two.yaml:5:11: invalid value \"drop\" for unmapped (expected one of: reject, "
        "skip)\n");
}

/* aggregate: a channel of stock events, its reasons and time zone. */
static void test_aggregate_ok(void **state)
{
    (void)state;
    put("mappings/m.yaml", "period_type: Quarterly\n"
                           "org_units: { FAC-1: kVncLVPFjTT }\n"
                           "items: { AMOX250: PRIVrEScHcE }\n");
    put("channels/stock.yaml",
        CHANNEL_HEAD "transform: { reader: openlmis-stock-event, mapping: m }\n"
                     "aggregate:\n"
                     "  close_after: 3d\n"
                     "  timezone: Africa/Nairobi\n"
                     "  reasons:\n"
                     "    r-1: { name: Damage, type: debit, counts_as: loss }\n"
                     "    r-2: { name: Transfer In, type: credit }\n"
                     "  by_reason: true\n"
                     "  quiet_periods: send\n"
                     "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two }\n"
                             "allow: { roles: [lmis] }\n"
                             "transform: { reader: stock-event }\n"
                             "aggregate:\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    const struct config_channel *ch = config_find_channel(cfg, "stock");
    assert_true(ch->aggregate.on);
    assert_int_equal(ch->aggregate.period_type, PERIOD_QUARTERLY); /* the mapping's */
    assert_int_equal(ch->aggregate.close_after_ms, 3 * 24 * 3600 * 1000LL);
    assert_string_equal(ch->aggregate.timezone, "Africa/Nairobi");
    assert_int_equal(ch->aggregate.n_reasons, 2);
    const struct agg_reason *r = agg_reason_find(&ch->aggregate, "r-2");
    assert_non_null(r);
    assert_true(r->credit);
    assert_int_equal(r->counts_as, AGG_ADJUSTMENT);
    assert_int_equal(agg_reason_find(&ch->aggregate, "r-1")->counts_as, AGG_LOSS);
    assert_true(ch->aggregate.by_reason);
    assert_true(ch->aggregate.quiet_send);
    ch = config_find_channel(cfg, "two");
    assert_true(ch->aggregate.on);
    assert_false(ch->aggregate.by_reason);  /* the default: the totals only */
    assert_false(ch->aggregate.quiet_send); /* the default: wait for the next event */
    assert_int_equal(ch->aggregate.period_type, PERIOD_MONTHLY);
    assert_int_equal(ch->aggregate.close_after_ms, 24 * 3600 * 1000LL);
    assert_string_equal(ch->aggregate.timezone, "UTC");
    assert_false(config_find_channel(cfg, "nothing") != NULL);
    config_free(cfg);
}

static void test_aggregate_errors(void **state)
{
    (void)state;
    char long_name[AGG_REASON_MAX + 2], stock[4096];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    snprintf(stock, sizeof stock,
             CHANNEL_HEAD "transform: { reader: stock-event }\n"
                          "aggregate:\n"
                          "  period_type: Fortnightly\n"
                          "  close_after: soon\n"
                          "  timezone: Mars/Olympus_Mons\n"
                          "  colour: red\n"
                          "  reasons:\n"
                          "    r-1: { name: Damage, type: debit, counts_as: received }\n"
                          "    r-2: { name: Found, type: sideways }\n"
                          "    r-3: { type: credit }\n"
                          "    r-4: { name: %s, type: debit }\n"
                          "  by_reason: yes please\n"
                          "  quiet_periods: always\n"
                          "routes: [{ name: r, url: \"http://t.example\" }]\n",
             long_name);
    put("channels/stock.yaml", stock);
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two }\n"
                             "allow: { roles: [lmis] }\n"
                             "transform: { reader: stock-event }\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/three.yaml", "name: three\n"
                               "match: { path: /three }\n"
                               "allow: { roles: [lmis] }\n"
                               "transform: { reader: lmis-report }\n"
                               "aggregate: { timezone: ../../etc/passwd }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/four.yaml", "name: four\n"
                              "match: { path: /four }\n"
                              "allow: { roles: [lmis] }\n"
                              "aggregate: {}\n"
                              "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/four.yaml:4:1: aggregate needs a transform with a stock event reader "
        "(stock-event or openlmis-stock-event)\n"
        "channels/stock.yaml:6:16: unknown period type \"Fortnightly\" (DHIS2's names: Daily, "
        "Weekly, Monthly, Quarterly, Yearly, ...)\n"
        "channels/stock.yaml:7:16: expected a duration (like 30s, 5m, 24h or 7d) for "
        "aggregate.close_after, got \"soon\"\n"
        "channels/stock.yaml:8:13: unknown time zone \"Mars/Olympus_Mons\" (an IANA name such as "
        "Africa/Nairobi, as listed under /usr/share/zoneinfo)\n"
        "channels/stock.yaml:9:3: unknown key \"colour\" in aggregate (expected one of: "
        "period_type, close_after, timezone, reasons, by_reason, quiet_periods)\n"
        "channels/stock.yaml:11:50: reason \"r-1\" is a debit but counts_as received (received "
        "adds stock: credit; consumed and loss take it away: debit)\n"
        "channels/stock.yaml:12:31: invalid value \"sideways\" for type (expected one of: "
        "credit, debit)\n"
        "channels/stock.yaml:13:10: missing required key \"name\" in aggregate.reasons.r-3\n"
        "channels/stock.yaml:14:18: the name of reason \"r-4\" is too long (256 bytes, at most "
        "255)\n"
        "channels/stock.yaml:15:14: expected a boolean (true or false) for aggregate.by_reason, "
        "got \"yes please\"\n"
        "channels/stock.yaml:16:18: invalid value \"always\" for aggregate.quiet_periods "
        "(expected one of: wait, send)\n"
        "channels/three.yaml:5:1: aggregate needs a stock event reader (stock-event or "
        "openlmis-stock-event), not lmis-report\n"
        "channels/three.yaml:5:24: unknown time zone \"../../etc/passwd\" (an IANA name such as "
        "Africa/Nairobi, as listed under /usr/share/zoneinfo)\n"
        "channels/two.yaml:4:1: reader stock-event reads stock events, which only a channel with "
        "aggregate: can take (add aggregate: to derive periodic reports from them)\n");
}

static void test_quality_errors(void **state)
{
    (void)state;
    put("channels/stock.yaml",
        CHANNEL_HEAD "transform:\n"
                     "  reader: lmis-report\n"
                     "  quality:\n"
                     "    - non_negativ\n"
                     "    - value_ceiling\n"
                     "    - { rule: value_ceiling, measures: [consumed] }\n"
                     "    - { rule: non_negative, tolerance: 1, max: 2, measures: [consumed] }\n"
                     "    - { rule: balance, tolerance: -1, action: ignore }\n"
                     "    - { rule: balance, tolerance: 1e3 }\n"
                     "    - { rule: value_ceiling, max: lots, measures: [on_hand, consumed, "
                     "consumed] }\n"
                     "    - { rule: required_measures, measures: [] }\n"
                     "    - { action: warn }\n"
                     "    - [balance]\n"
                     "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:7:7: unknown quality rule \"non_negativ\" (expected one of: "
        "non_negative, required_measures, balance, stockout_days, value_ceiling, numeric)\n"
        "channels/stock.yaml:8:7: rule value_ceiling needs a ceiling (write it as { rule: "
        "value_ceiling, max: 100000 })\n"
        "channels/stock.yaml:9:7: missing required key \"max\" in transform.quality[2] (rule "
        "value_ceiling needs a ceiling)\n"
        "channels/stock.yaml:10:29: tolerance applies only to the balance rule, not to "
        "non_negative\n"
        "channels/stock.yaml:10:43: max applies only to the value_ceiling rule, not to "
        "non_negative\n"
        "channels/stock.yaml:10:51: measures applies only to the required_measures and "
        "value_ceiling rules, not to non_negative\n"
        "channels/stock.yaml:11:35: \"-1\" is outside the valid range for "
        "transform.quality[4].tolerance (at least 0)\n"
        "channels/stock.yaml:11:47: invalid value \"ignore\" for transform.quality[4].action "
        "(expected one of: reject, warn)\n"
        "channels/stock.yaml:12:35: expected a number (like 10 or 0.5) for "
        "transform.quality[5].tolerance, got \"1e3\"\n"
        "channels/stock.yaml:13:35: expected a number (like 10 or 0.5) for "
        "transform.quality[6].max, got \"lots\"\n"
        "channels/stock.yaml:13:52: invalid measure \"on_hand\" in transform.quality[6].measures "
        "(expected one of: opening_balance, received, consumed, losses, adjustments, "
        "stock_on_hand, stockout_days, requested)\n"
        "channels/stock.yaml:13:71: duplicate measure \"consumed\" in "
        "transform.quality[6].measures\n"
        "channels/stock.yaml:14:44: transform.quality[7].measures must not be empty (leave it "
        "out for the rule's default measures)\n"
        "channels/stock.yaml:15:7: missing required key \"rule\" in transform.quality[8]\n"
        "channels/stock.yaml:16:7: expected a mapping for transform.quality[9], got a list\n");
}

/* A password in a route URL would be stored with every attempt and printed by
 * hibus tx: the URL is refused, and the message shows it masked. */
static void test_route_url_userinfo(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "routes:\n"
                               "  - { name: a, url: \"https://arch:s3cret@t.example/in?x=1\" }\n"
                               "  - { name: b, url: \"http://only-user@t.example\" }\n"
                               "  - { name: c, url: \"http://t.example/a@b\" }\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:5:21: the url \"https://***@t.example/in?x=1\" of routes[0].url "
        "holds a user name or password; put them in the route's auth: (basic: { username: ..., "
        "password: ... }, or token, bearer or header), where they are sent but never stored or "
        "printed\n"
        "channels/stock.yaml:6:21: the url \"http://***@t.example\" of routes[1].url holds a user "
        "name or password; put them in the route's auth: (basic: { username: ..., password: ... "
        "}, or token, bearer or header), where they are sent but never stored or printed\n");
}

/* Loads a configuration whose channel uses mapping m with org_units_csv ou.csv
 * (which the caller writes, or not), expecting it to fail; returns the messages. */
static char *load_with_ou_csv(void)
{
    put("mappings/m.yaml", "data_set: { code: STOCK, uid: lyLU2wR22tC }\n"
                           "org_units_csv: ou.csv\n"
                           "data_elements: []\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    return load_fail_at("hibus.yaml", HIBUS_E_CONFIG);
}

/* A FIFO named as a channel file or a mapping's CSV is reported, not opened for a
 * blocking read (which waited for a writer forever, in check, serve and reload). */
static void test_fifo_is_refused(void **state)
{
    (void)state;
    assert_int_equal(mkfifo("channels/pipe.yaml", 0600), 0);
    assert_int_equal(mkfifo("mappings/ou.csv", 0600), 0);
    char *got = load_with_ou_csv();
    assert_non_null(strstr(got, "channels/pipe.yaml: could not read file: it is a FIFO (named "
                                "pipe), not a regular file"));
    assert_non_null(strstr(got, "could not read file \"mappings/ou.csv\": it is a FIFO"));
    free(got);
}

/* Codes in a mapping table are matched against UTF-8 payloads: a table saved in
 * another encoding is refused at the first such byte, with its position. */
static void test_csv_not_utf8(void **state)
{
    (void)state;
    put("mappings/ou.csv", "code,uid\nKE-0001,ImspTQPwCqd\nKE-\xe9l,O6uvpzGd5pu\n");
    char *got = load_with_ou_csv();
    assert_non_null(strstr(got, "mappings/ou.csv:3:4: the file is not UTF-8 (byte 0xE9): save it "
                                "as UTF-8"));
    free(got);
}

static void test_url_masked(void **state)
{
    (void)state;
    char out[128];
    size_t at = 0, len = 0;
    assert_true(config_url_userinfo("http://u:p@h.example:8080/x", &at, &len));
    assert_int_equal(at, 7);
    assert_int_equal(len, 3);
    assert_string_equal(config_url_masked("http://u:p@h.example:8080/x", out, sizeof out),
                        "http://***@h.example:8080/x");
    /* the host follows the last @ of the authority; an @ in the path is no userinfo */
    assert_string_equal(config_url_masked("https://a@b:c@h/p@q", out, sizeof out),
                        "https://***@h/p@q");
    assert_false(config_url_userinfo("http://h.example/p@q?r=s@t", &at, &len));
    assert_string_equal(config_url_masked("http://h.example/p@q", out, sizeof out),
                        "http://h.example/p@q");
    assert_string_equal(config_url_masked("not a url", out, sizeof out), "not a url");
}

static void test_dhis2_route_errors(void **state)
{
    (void)state;
    put("mappings/m.yaml", mapping_small);
    put("channels/a.yaml",
        "name: a\n"
        "match: { path: /a }\n"
        "allow: { roles: [lmis] }\n"
        "routes:\n"
        "  - { name: d, mediator: dhis2, url: \"http://d.example\", primary: true }\n"
        "  - { name: h, url: \"http://h.example\", body: transformed }\n"
        "  - { name: w, url: \"http://h.example\", writer: adx }\n"
        "  - { name: o, url: \"http://h.example\", dhis2: { dry_run: true } }\n");
    put("channels/b.yaml",
        "name: b\n"
        "match: { path: /b }\n"
        "allow: { roles: [lmis] }\n"
        "transform: { reader: lmis-report }\n"
        "routes:\n"
        "  - name: d\n"
        "    mediator: dhis2\n"
        "    url: http://d.example/api/dataValueSets\n"
        "    body: original\n"
        "    writer: json\n"
        "    when: [2xx]\n"
        "    dhis2: { dry_run: maybe, import_strategy: MERGE, id_scheme: name }\n");
    put("channels/c.yaml", "name: c\n"
                           "match: { path: /c }\n"
                           "allow: { roles: [lmis] }\n"
                           "transform: { reader: lmis-report, mapping: m }\n"
                           "routes:\n"
                           "  - name: d\n"
                           "    mediator: dhis2\n"
                           "    url: \"https://d.example/dhis?x=1\"\n"
                           "    writer: adx\n"
                           "    dhis2: { id_scheme: CODE, colour: red }\n"
                           "    primary: true\n"
                           "    when: [failed]\n"
                           "  - name: h\n"
                           "    url: http://h.example\n"
                           "    when: [200, 600, 2x, 6xx, 20, failed, FAILED, ok]\n"
                           "    auth: { token: \"\" }\n");
    EXPECT_ERRORS(
        "channels/a.yaml:5:26: route \"d\" delivers to DHIS2, which needs the channel to have a "
        "transform (add transform: { reader: ..., mapping: ... })\n"
        "channels/a.yaml:6:47: body: transformed needs the channel to have a transform (add "
        "transform: { reader: ..., mapping: ... })\n"
        "channels/a.yaml:7:41: writer applies only to dhis2 routes and to http routes with body: "
        "transformed\n"
        "channels/a.yaml:8:41: routes[3].dhis2 applies only to routes with mediator: dhis2\n"
        "channels/b.yaml:4:1: transform has no mapping, but route \"d\" delivers to DHIS2, which "
        "needs UIDs (add mapping: NAME to the transform)\n"
        "channels/b.yaml:8:10: invalid url \"http://d.example/api/dataValueSets\" for "
        "routes[0].url (expected the DHIS2 base URL, like https://dhis.example.org, without "
        "query: hibus appends /api/dataValueSets)\n"
        "channels/b.yaml:9:5: body applies only to http routes (a dhis2 route always sends the "
        "transformed report)\n"
        "channels/b.yaml:10:13: unknown writer \"json\" (expected one of: dhis2-datavalueset, "
        "adx)\n"
        "channels/b.yaml:11:5: when is not allowed on the primary route \"d\" (it chooses routes "
        "by the primary route's outcome)\n"
        "channels/b.yaml:12:23: expected a boolean (true or false) for routes[0].dhis2.dry_run, "
        "got \"maybe\"\n"
        "channels/b.yaml:12:47: invalid value \"MERGE\" for routes[0].dhis2.import_strategy "
        "(expected one of: CREATE_AND_UPDATE, CREATE, UPDATE, DELETE)\n"
        "channels/b.yaml:12:65: invalid value \"name\" for routes[0].dhis2.id_scheme (expected "
        "one of: UID, CODE)\n"
        "channels/c.yaml:8:10: invalid url \"https://d.example/dhis?x=1\" for routes[0].url "
        "(expected the DHIS2 base URL, like https://dhis.example.org, without query: hibus "
        "appends /api/dataValueSets)\n"
        "channels/c.yaml:10:25: routes[0].dhis2.id_scheme applies only to the "
        "dhis2-datavalueset writer (ADX is always sent with idScheme=UID)\n"
        "channels/c.yaml:10:31: unknown key \"colour\" in routes[0].dhis2 (expected one of: "
        "dry_run, import_strategy, id_scheme, data_element_id_scheme, org_unit_id_scheme, "
        "category_option_combo_id_scheme, data_set_id_scheme)\n"
        "channels/c.yaml:12:5: when is not allowed on the primary route \"d\" (it chooses routes "
        "by the primary route's outcome)\n"
        "channels/c.yaml:15:17: invalid outcome \"600\" in routes[1].when (expected an HTTP "
        "status like 409, a class like 2xx, or failed)\n"
        "channels/c.yaml:15:22: invalid outcome \"2x\" in routes[1].when (expected an HTTP status "
        "like 409, a class like 2xx, or failed)\n"
        "channels/c.yaml:15:26: invalid outcome \"6xx\" in routes[1].when (expected an HTTP "
        "status like 409, a class like 2xx, or failed)\n"
        "channels/c.yaml:15:31: invalid outcome \"20\" in routes[1].when (expected an HTTP status "
        "like 409, a class like 2xx, or failed)\n"
        "channels/c.yaml:15:43: duplicate outcome \"failed\" in routes[1].when\n"
        "channels/c.yaml:15:51: invalid outcome \"ok\" in routes[1].when (expected an HTTP status "
        "like 409, a class like 2xx, or failed)\n"
        "channels/c.yaml:16:20: routes[1].auth.token must not be empty\n");
}

static void test_json_match_errors(void **state)
{
    (void)state;
    put("channels/stock.yaml", "name: stock\n"
                               "match:\n"
                               "  path: /stock\n"
                               "  json:\n"
                               "    a..b: x\n"
                               "    .a: x\n"
                               "    \"a.\": x\n"
                               "    \"\": x\n"
                               "    kind: [monthly]\n"
                               "    nothing: ~\n"
                               "    program: a\n"
                               "    program: b\n"
                               "    [x]: y\n"
                               "allow: { roles: [lmis] }\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two, json: [program] }\n"
                             "allow: { roles: [lmis] }\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("channels/stock.yaml:5:5: invalid path \"a..b\" in match.json (expected names "
                  "separated by \".\", like report.kind)\n"
                  "channels/stock.yaml:6:5: invalid path \".a\" in match.json (expected names "
                  "separated by \".\", like report.kind)\n"
                  "channels/stock.yaml:7:5: invalid path \"a.\" in match.json (expected names "
                  "separated by \".\", like report.kind)\n"
                  "channels/stock.yaml:8:5: invalid path \"\" in match.json (expected names "
                  "separated by \".\", like report.kind)\n"
                  "channels/stock.yaml:9:11: expected a string, number or boolean for match.json "
                  "\"kind\", got a list\n"
                  "channels/stock.yaml:10:14: expected a string, number or boolean for "
                  "match.json \"nothing\", got null\n"
                  "channels/stock.yaml:12:5: duplicate key \"program\" in match.json (first "
                  "defined at channels/stock.yaml:11:5)\n"
                  "channels/stock.yaml:13:5: expected a scalar key in match.json, got a list\n"
                  "channels/two.yaml:2:28: expected a mapping for match.json, got a list\n");
}

/* A route's id schemes must agree with its mapping's targets. */
static void test_id_scheme_agreement(void **state)
{
    (void)state;
    put("mappings/m.yaml", "id_schemes: { org_unit: CODE, data_set: code }\n"
                           "data_set: LMIS_MONTHLY\n"
                           "org_units: { FAC-1: OU_FAC_1 }\n"
                           "items: { AMOX250: AMOX_250 }\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes:\n"
                                            "  - name: d\n"
                                            "    mediator: dhis2\n"
                                            "    url: http://d.example\n"
                                            "    dhis2: { org_unit_id_scheme: UID, "
                                            "data_element_id_scheme: CODE }\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:9:34: route \"d\" sends org_unit identifiers as UID, but mapping "
        "\"m\" maps them to CODEs (set id_schemes: { org_unit: UID } in mappings/m.yaml)\n"
        "channels/stock.yaml:9:63: route \"d\" sends data_element identifiers as CODE, but "
        "mapping \"m\" maps them to UIDs (set id_schemes: { data_element: CODE } in "
        "mappings/m.yaml)\n"
        "mappings/m.yaml:1:41: invalid value \"code\" for id_schemes.data_set (expected one of: "
        "UID, CODE)\n"
        "mappings/m.yaml:2:11: \"LMIS_MONTHLY\" is not a DHIS2 UID (11 characters: a letter, "
        "then letters or digits)\n"
        "mappings/m.yaml:4:19: \"AMOX_250\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n");
}

/* Mapping file problems: each at its place in the mapping file. */
static void test_mapping_errors(void **state)
{
    (void)state;
    put("mappings/m.yaml", "data_set: uRfFkKfeb3\n"
                           "period_type: monthly\n"
                           "attribute_option_combo: 1afMuhXXF9W\n"
                           "org_units:\n"
                           "  FAC-1: kVncLVPFjTT\n"
                           "  FAC-2: { uid: x }\n"
                           "  FAC-1: p88r7fYkDc9\n"
                           "  \"\": Z2bdC37H4KV\n"
                           "measures:\n"
                           "  consumed: XIGEYSslBo\n"
                           "  received: qgguc6STNsc\n"
                           "  received: LelQdVJoKer\n"
                           "items:\n"
                           "  AMOX250: PRIVrEScHcE\n"
                           "  ORS1L: { measures: {} }\n"
                           "  ZINC20: { data_element: GHgQT4Rrg3i, measures: { a: bad-uid-0000 }, "
                           "x: 1 }\n"
                           "  AMOX250: { data_element: PRIVrEScHcE, measures: { received: "
                           "qgguc6STNsc } }\n"
                           "  ACT: rTAGiDO5ps_\n"
                           "  NOTE: { data_element: rTAGiDO5psX, value_type: STRING }\n"
                           "colour: blue\n"
                           "data_sets: { LMIS: uRfFkKfeb3Q, LMIS: uRfFkKfeb3Q, X: nope }\n"
                           "attribute_option_combos: { \"FUNDING=DONOR\": 2afMuhXXF9W }\n"
                           "periods: { 516ac930: 2026-13, ok: 2026-08 }\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "mappings/m.yaml:1:11: \"uRfFkKfeb3\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/m.yaml:2:14: unknown period type \"monthly\" (expected one of: Daily, Weekly, "
        "BiWeekly, Monthly, BiMonthly, Quarterly, SixMonthly, Yearly, FinancialApril, "
        "FinancialJuly, FinancialOct, WeeklyWednesday, WeeklyThursday, WeeklyFriday, "
        "WeeklySaturday, WeeklySunday, SixMonthlyApril, SixMonthlyNov, QuarterlyNov, "
        "FinancialNov, FinancialSep, FinancialFeb, FinancialAug)\n"
        "mappings/m.yaml:3:25: \"1afMuhXXF9W\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/m.yaml:6:10: expected a scalar for org_units.FAC-2, got a mapping\n"
        "mappings/m.yaml:7:3: duplicate org unit code \"FAC-1\" (first defined at "
        "mappings/m.yaml:5:3)\n"
        "mappings/m.yaml:8:3: empty code in org_units\n"
        "mappings/m.yaml:10:13: \"XIGEYSslBo\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/m.yaml:12:3: duplicate measure \"received\" in measures (first defined at "
        "mappings/m.yaml:11:3)\n"
        "mappings/m.yaml:15:10: missing required key \"data_element\" in items.ORS1L\n"
        "mappings/m.yaml:16:55: \"bad-uid-0000\" is not a DHIS2 UID (11 characters: a letter, "
        "then letters or digits)\n"
        "mappings/m.yaml:16:71: unknown key \"x\" in items.ZINC20 (expected one of: "
        "data_element, measures, value_type)\n"
        "mappings/m.yaml:17:3: duplicate mapping for item \"AMOX250\" (first defined at "
        "mappings/m.yaml:14:3)\n"
        "mappings/m.yaml:17:53: duplicate mapping for item \"AMOX250\", measure \"received\" "
        "(first defined at mappings/m.yaml:14:3)\n"
        "mappings/m.yaml:18:8: \"rTAGiDO5ps_\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/m.yaml:19:50: unknown value type \"STRING\" (expected a DHIS2 valueType such "
        "as NUMBER, INTEGER_ZERO_OR_POSITIVE, TEXT or LONG_TEXT)\n"
        "mappings/m.yaml:20:1: unknown key \"colour\" at top level (expected one of: data_set, "
        "period_type, attribute_option_combo, org_units, org_units_csv, measures, items, "
        "items_csv, data_sets, attribute_option_combos, id_schemes, periods, pull)\n"
        "mappings/m.yaml:21:33: duplicate code \"LMIS\" in data_sets (first defined at "
        "mappings/m.yaml:21:14)\n"
        "mappings/m.yaml:21:55: \"nope\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/m.yaml:22:45: \"2afMuhXXF9W\" is not a DHIS2 UID (11 characters: a letter, "
        "then letters or digits)\n"
        "mappings/m.yaml:23:22: \"2026-13\" is not a DHIS2 period id (such as 202608, 2026Q3 or "
        "2026W35)\n");
}

static void test_mapping_csv_errors(void **state)
{
    (void)state;
    put("mappings/m.yaml", "org_units:\n"
                           "  FAC-1: kVncLVPFjTT\n"
                           "org_units_csv: ou.csv\n"
                           "items:\n"
                           "  AMOX250: { data_element: PRIVrEScHcE, measures: { consumed: "
                           "LelQdVJoKer } }\n"
                           "items_csv: items.csv\n");
    put("mappings/ou.csv", "code,uid\n"
                           "FAC-2,cLq0tI1jksz\n"
                           "FAC-3,cLq0tI1jksz,extra\n"
                           "FAC-4\n"
                           ",p88r7fYkDc9\n"
                           "FAC-5,p88r7fYkDc\n"
                           "FAC-1,Z2bdC37H4KV\n"
                           "\"FAC-6\"x,Z2bdC37H4KV\n"
                           "FAC\"7,Z2bdC37H4KV\n"
                           "FAC-2,\n"
                           "FAC-2,p88r7fYkDc9\n");
    put("mappings/items.csv", "item,measure,data_element,category_option_combo\n"
                              "AMOX250,consumed,PRIVrEScHcE,LelQdVJoKer\n"
                              "AMOX250,,PRIVrEScHcE,\n"
                              ",x,PRIVrEScHcE,\n"
                              "ORS1L,x,,\n"
                              "ORS1L,y,YpYGky8q06j,default\n"
                              "ORS1L,\"unterminated,YpYGky8q06j,\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "mappings/ou.csv:3:19: expected 2 fields (code,uid), got 3\n"
        "mappings/ou.csv:4:1: expected 2 fields (code,uid), got 1\n"
        "mappings/ou.csv:5:1: code must not be empty\n"
        "mappings/ou.csv:6:7: \"p88r7fYkDc\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/ou.csv:7:1: duplicate org unit code \"FAC-1\" (first defined at "
        "mappings/m.yaml:2:3)\n"
        "mappings/ou.csv:8:8: unexpected character after a closing quote (inside a quoted field, "
        "a quote is written \"\")\n"
        "mappings/ou.csv:9:4: quote inside a field that does not start with one (quote the whole "
        "field and double the quote: \"a\"\"b\")\n"
        "mappings/ou.csv:10:7: uid must not be empty\n"
        "mappings/ou.csv:11:1: duplicate org unit code \"FAC-2\" (first defined at "
        "mappings/ou.csv:2:1)\n"
        "mappings/items.csv:2:1: duplicate mapping for item \"AMOX250\", measure \"consumed\" "
        "(first defined at mappings/m.yaml:5:53)\n"
        "mappings/items.csv:3:1: duplicate mapping for item \"AMOX250\" (first defined at "
        "mappings/m.yaml:5:3)\n"
        "mappings/items.csv:4:1: item must not be empty\n"
        "mappings/items.csv:5:9: data_element must not be empty\n"
        "mappings/items.csv:6:21: \"default\" is not a DHIS2 UID (11 characters: a letter, then "
        "letters or digits)\n"
        "mappings/items.csv:7:7: unterminated quoted field (a field that starts with \" ends "
        "with \")\n");
}

static void test_mapping_csv_header(void **state)
{
    (void)state;
    put("mappings/m.yaml", "org_units_csv: ou.csv\n"
                           "items_csv: items.csv\n");
    put("mappings/ou.csv", "Code;UID\n"
                           "FAC-1;kVncLVPFjTT\n");
    put("mappings/items.csv", "");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("mappings/ou.csv:1:1: expected the header \"code,uid\", got \"Code;UID\"\n"
                  "mappings/items.csv:1:1: expected the header "
                  "\"item,measure,data_element,category_option_combo\", got an empty file\n");

    put("mappings/m.yaml", "org_units_csv: nowhere.csv\n");
    EXPECT_ERRORS("mappings/m.yaml:1:16: could not read file \"mappings/nowhere.csv\": No such "
                  "file or directory\n");
}

/* A mapping that is not a readable YAML mapping is reported in its own file; a
 * directory where the file should be is reported at the channel. */
static void test_mapping_unreadable(void **state)
{
    (void)state;
    put("mappings/m.yaml", "org_units: { FAC-1: kVncLVPFjTT\n");
    put("mappings/list.yaml", "- a\n");
    assert_int_equal(mkdir("mappings/dir.yaml", 0700), 0);
    put("channels/a.yaml", "name: a\n"
                           "match: { path: /a }\n"
                           "allow: { roles: [lmis] }\n"
                           "transform: { reader: lmis-report, mapping: m }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/b.yaml", "name: b\n"
                           "match: { path: /b }\n"
                           "allow: { roles: [lmis] }\n"
                           "transform: { reader: lmis-report, mapping: list }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: dir }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS("mappings/m.yaml:2:1: invalid YAML: did not find expected ',' or '}' (while "
                  "parsing a flow mapping at 1:12)\n"
                  "mappings/list.yaml:1:1: expected a mapping for the top level, got a list\n"
                  "channels/stock.yaml:4:44: mapping \"dir\" not found: could not read file "
                  "\"mappings/dir.yaml\": it is a directory, not a file\n");
}

/* A channel using mapping m whose org_units_csv is ou.csv with the text csv;
 * loading must fail; returns the diagnostics (caller frees). */
static char *load_with_facility_csv(const char *csv)
{
    put("mappings/ou.csv", csv);
    put("mappings/m.yaml", "org_units_csv: ou.csv\n");
    put("channels/stock.yaml", CHANNEL_HEAD "transform: { reader: lmis-report, mapping: m }\n"
                                            "routes: [{ name: r, url: \"http://t.example\" }]\n");
    return load_fail_at("hibus.yaml", HIBUS_E_CONFIG);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The same facility list twice: a bounded number of messages. */
static void test_mapping_many_duplicates(void **state)
{
    (void)state;
    char *csv = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&csv, &len);
    assert_non_null(f);
    fputs("code,uid\n", f);
    for (int copy = 0; copy < 2; copy++)
        for (int i = 0; i < 100; i++)
            fprintf(f, "FAC-%d,kVncLVPFjTT\n", i);
    fclose(f);
    char *got = load_with_facility_csv(csv);
    free(csv);
    assert_int_equal(count_lines(got), 21);
    assert_non_null(strstr(got, "mappings/ou.csv:102:1: duplicate org unit code \"FAC-0\" (first "
                                "defined at mappings/ou.csv:2:1)\n"));
    assert_non_null(strstr(got, "mappings/ou.csv:122:1: too many duplicate org unit codes (20); "
                                "the others are not listed\n"));
    free(got);
}

/* A file with one mistake per line is reported up to a limit, not line by line. */
static void test_mapping_csv_too_many_errors(void **state)
{
    (void)state;
    char *csv = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&csv, &len);
    assert_non_null(f);
    fputs("code,uid\n", f);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "FAC-%d;x\n", i);
    fclose(f);
    char *got = load_with_facility_csv(csv);
    free(csv);
    assert_int_equal(count_lines(got), 21);
    assert_non_null(strstr(got, "mappings/ou.csv:2:1: expected 2 fields (code,uid), got 1\n"));
    assert_non_null(strstr(got, "mappings/ou.csv:22:1: too many errors in this file (20); the "
                                "rest of it was not checked\n"));
    free(got);
}

/* ------------------------------------------------------------------------------------
 * Asynchronous delivery, retries and retention
 * ------------------------------------------------------------------------------------ */

static const char channel_async[] = "name: stock\n"
                                    "match: { path: /stock }\n"
                                    "allow: { roles: [lmis] }\n"
                                    "mode: async\n"
                                    "routes:\n"
                                    "  - { name: a, url: \"http://a.example\", timeout: 1m,\n"
                                    "      primary: true }\n"
                                    "  - { name: b, url: \"http://b.example\", when: [2xx] }\n";

static void test_delivery_all_keys(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery:\n"
                      "  workers: 0\n"
                      "  lease: 1h\n"
                      "  poll: 250ms\n"
                      "  batch: 100\n"
                      "  drain: 2m\n"
                      "  max_attempts: 1000\n"
                      "  max_age: 30d\n"
                      "  backoff: { initial: 500ms, max: 24h }\n"
                      "retention:\n"
                      "  keep_bodies: 90d\n"
                      "  keep_transactions: 2w\n" /* shorter than keep_bodies: see below */
                      "  prune_every: 1s\n");
    EXPECT_ERRORS("hibus.yaml:13:22: retention.keep_transactions (14d) is shorter than "
                  "retention.keep_bodies (90d) (a transaction is removed with its bodies: keep "
                  "transactions at least as long)\n");
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery:\n"
                      "  workers: 0\n"
                      "  lease: 1h\n"
                      "  poll: 250ms\n"
                      "  batch: 100\n"
                      "  drain: 2m\n"
                      "  max_attempts: 1000\n"
                      "  max_age: 30d\n"
                      "  backoff: { initial: 500ms, max: 24h }\n"
                      "retention:\n"
                      "  keep_bodies: 90d\n"
                      "  keep_transactions: 400d\n"
                      "  prune_every: 1s\n");
    put("channels/stock.yaml", channel_async);
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->delivery_workers, 0);
    assert_int_equal(cfg->delivery_lease_ms, 3600 * 1000);
    assert_int_equal(cfg->delivery_poll_ms, 250);
    assert_int_equal(cfg->delivery_batch, 100);
    assert_int_equal(cfg->drain_ms, 120000);
    assert_int_equal(cfg->retry.max_attempts, 1000);
    assert_int_equal(cfg->retry.max_age_ms, 30L * 86400000);
    assert_int_equal(cfg->retry.backoff_initial_ms, 500);
    assert_int_equal(cfg->retry.backoff_max_ms, 86400000);
    assert_int_equal(cfg->keep_bodies_ms, 90LL * 86400000);
    assert_int_equal(cfg->keep_transactions_ms, 400LL * 86400000);
    assert_int_equal(cfg->prune_every_ms, 1000);
    const struct config_channel *ch = config_find_channel(cfg, "stock");
    assert_int_equal(ch->mode, CONFIG_MODE_ASYNC);
    assert_memory_equal(&ch->retry, &cfg->retry, sizeof ch->retry);
    assert_int_equal(ch->n_routes, 2);
    assert_true(ch->routes[0].primary);
    config_free(cfg);
}

/* Empty mappings, zeros and the edges of each range. */
static void test_delivery_edges(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery: { workers: 256, lease: 1h, drain: 1ms, max_attempts: 1,\n"
                      "            backoff: { initial: 24h, max: 24h } }\n"
                      "retention: { keep_bodies: 0, keep_transactions: 3650d, "
                      "prune_every: 3650d }\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->delivery_workers, 256);
    assert_int_equal(cfg->delivery_lease_ms, 3600000);
    assert_int_equal(cfg->drain_ms, 1);
    assert_int_equal(cfg->retry.max_attempts, 1);
    assert_int_equal(cfg->retry.max_age_ms, 86400000); /* the default */
    assert_int_equal(cfg->retry.backoff_initial_ms, 86400000);
    assert_int_equal(cfg->retry.backoff_max_ms, 86400000);
    assert_int_equal(cfg->keep_bodies_ms, 0);
    assert_int_equal(cfg->keep_transactions_ms, 3650LL * 86400000);
    assert_int_equal(cfg->prune_every_ms, 3650L * 86400000);
    config_free(cfg);

    /* keep_bodies: 0 is forever, which a shorter keep_transactions bounds anyway */
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery:\n"
                      "retention: { keep_bodies: 0, keep_transactions: 1h }\n");
    cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->delivery_workers, 4);
    assert_int_equal(cfg->keep_transactions_ms, 3600000);
    config_free(cfg);
}

/* A channel's retry: replaces only the keys it names. */
static void test_retry_inheritance(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery:\n"
                      "  max_attempts: 5\n"
                      "  max_age: 2d\n"
                      "  backoff: { initial: 10s, max: 1h }\n"
                      "retention: { keep_bodies: 30d, keep_transactions: 90d }\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "mode: async\n"
                               "retry: { max_attempts: 12 }\n"
                               "keep_bodies: 7d\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/other.yaml", "name: other\n"
                               "match: { path: /other }\n"
                               "allow: { roles: [lmis] }\n"
                               "retry:\n"
                               "  max_age: 1w\n"
                               "  backoff: { max: 2h }\n"
                               "keep_bodies: 1d\n"
                               "keep_transactions: 1d\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/third.yaml", "name: third\n"
                               "match: { path: /third }\n"
                               "allow: { roles: [lmis] }\n"
                               "mode: sync\n"
                               "retry: { backoff: { initial: 1s } }\n"
                               "keep_transactions: 0\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    /* counts that end the retries long before max_age are warned about, with the
     * count that would not */
    assert_int_equal(cfg->warnings.n, 2);
    assert_string_equal(cfg->warnings.v[0].file, "hibus.yaml");
    assert_int_equal(cfg->warnings.v[0].line, 3);
    assert_non_null(strstr(cfg->warnings.v[0].msg,
                           "delivery.max_attempts 5 ends the retries after about 75s (backoff "
                           "up to 1h), long before max_age (2d)"));
    assert_non_null(strstr(cfg->warnings.v[0].msg, "raise it to at least 105"));
    assert_string_equal(cfg->warnings.v[1].file, "channels/stock.yaml");
    assert_non_null(strstr(cfg->warnings.v[1].msg, "retry.max_attempts 12 ends the retries"));
    const struct config_channel *ch = config_find_channel(cfg, "stock");
    assert_int_equal(ch->mode, CONFIG_MODE_ASYNC);
    assert_int_equal(ch->retry.max_attempts, 12);
    assert_int_equal(ch->retry.max_age_ms, 2L * 86400000);
    assert_int_equal(ch->retry.backoff_initial_ms, 10000);
    assert_int_equal(ch->retry.backoff_max_ms, 3600000);
    assert_int_equal(ch->keep_bodies_ms, 7LL * 86400000);
    assert_int_equal(ch->keep_transactions_ms, 0); /* the global 90d */

    ch = config_find_channel(cfg, "other");
    assert_int_equal(ch->mode, CONFIG_MODE_SYNC);
    assert_int_equal(ch->retry.max_attempts, 5);
    assert_int_equal(ch->retry.max_age_ms, 7L * 86400000);
    assert_int_equal(ch->retry.backoff_initial_ms, 10000);
    assert_int_equal(ch->retry.backoff_max_ms, 2 * 3600000);
    assert_int_equal(ch->keep_bodies_ms, 86400000);
    assert_int_equal(ch->keep_transactions_ms, 86400000);

    ch = config_find_channel(cfg, "third");
    assert_int_equal(ch->retry.max_attempts, 5);
    assert_int_equal(ch->retry.max_age_ms, 2L * 86400000);
    assert_int_equal(ch->retry.backoff_initial_ms, 1000);
    assert_int_equal(ch->retry.backoff_max_ms, 3600000);
    assert_int_equal(ch->keep_bodies_ms, 0);
    assert_int_equal(ch->keep_transactions_ms, 0);

    /* the global policy is untouched by the channels */
    assert_int_equal(cfg->retry.max_attempts, 5);
    assert_int_equal(cfg->retry.max_age_ms, 2L * 86400000);
    assert_int_equal(cfg->retry.backoff_initial_ms, 10000);
    assert_int_equal(cfg->retry.backoff_max_ms, 3600000);
    config_free(cfg);
}

static void test_delivery_errors(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery:\n"
                      "  workers: 257\n"
                      "  lease: 2h\n"
                      "  poll: 2d\n"
                      "  batch: 0\n"
                      "  drain: 0s\n"
                      "  max_attempts: 100001\n"
                      "  max_age: forever\n"
                      "  backoff: { initial: 2m, max: 1m, jitter: full }\n"
                      "  threads: 4\n"
                      "retention:\n"
                      "  keep_bodies: 3651d\n"
                      "  keep_transactions: 90\n"
                      "  prune_every: 500ms\n"
                      "  keep: 1d\n");
    EXPECT_ERRORS(
        "hibus.yaml:3:12: \"257\" is outside the valid range for delivery.workers (0 .. 256)\n"
        "hibus.yaml:4:10: \"2h\" is outside the valid range for delivery.lease (1s .. 1h)\n"
        "hibus.yaml:5:9: \"2d\" is outside the valid range for delivery.poll (1ms .. 24h)\n"
        "hibus.yaml:6:10: \"0\" is outside the valid range for delivery.batch (1 .. 100)\n"
        "hibus.yaml:7:10: \"0s\" is outside the valid range for delivery.drain (1ms .. 30d)\n"
        "hibus.yaml:8:17: \"100001\" is outside the valid range for delivery.max_attempts (0 .. "
        "100000)\n"
        "hibus.yaml:9:12: expected a duration (like 30s, 5m, 24h or 7d) for delivery.max_age, "
        "got \"forever\"\n"
        "hibus.yaml:10:32: delivery.backoff.max (1m) is shorter than backoff.initial (2m)\n"
        "hibus.yaml:10:36: unknown key \"jitter\" in delivery.backoff (expected one of: initial, "
        "max)\n"
        "hibus.yaml:11:3: unknown key \"threads\" in delivery (expected one of: workers, lease, "
        "poll, batch, drain, max_attempts, max_age, backoff)\n"
        "hibus.yaml:13:16: \"3651d\" is outside the valid range for retention.keep_bodies (0 .. "
        "3650d)\n"
        "hibus.yaml:15:16: \"500ms\" is outside the valid range for retention.prune_every (1s "
        ".. 3650d)\n"
        "hibus.yaml:16:3: unknown key \"keep\" in retention (expected one of: keep_bodies, "
        "keep_transactions, prune_every)\n");

    /* a plain number is seconds: 90 is 90s, valid, if surely not what was meant */
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery: [workers]\n"
                      "retention: { keep_bodies: 90, keep_transactions: soon }\n");
    EXPECT_ERRORS("hibus.yaml:2:11: expected a mapping for delivery, got a list\n"
                  "hibus.yaml:3:50: expected a duration (like 12h, 90d or 2w; 0 for forever) for "
                  "retention.keep_transactions, got \"soon\"\n");

    /* only initial given, longer than the default max */
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery: { backoff: { initial: 20m } }\n");
    EXPECT_ERRORS("hibus.yaml:2:33: delivery.backoff.initial (20m) is longer than backoff.max "
                  "(5m) (set delivery.backoff.max to at least 20m)\n");
}

static void test_channel_retry_errors(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery: { backoff: { initial: 10s, max: 1h } }\n");
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "mode: later\n"
                               "retry:\n"
                               "  max_attempts: -1\n"
                               "  max_age: 31d\n"
                               "  backoff: { max: 5s }\n"
                               "  attempts: 3\n"
                               "keep_bodies: 30d\n"
                               "keep_transactions: 7d\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/two.yaml", "name: two\n"
                             "match: { path: /two }\n"
                             "allow: { roles: [lmis] }\n"
                             "retry: { backoff: { initial: 2h } }\n"
                             "keep_bodies: -1d\n"
                             "keep_transactions: 3651d\n"
                             "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/three.yaml", "name: three\n"
                               "match: { path: /three }\n"
                               "allow: { roles: [lmis] }\n"
                               "retry: 5\n"
                               "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/stock.yaml:4:7: invalid value \"later\" for mode (expected one of: sync, "
        "async)\n"
        "channels/stock.yaml:6:17: \"-1\" is outside the valid range for retry.max_attempts (0 .. "
        "100000)\n"
        "channels/stock.yaml:7:12: \"31d\" is outside the valid range for retry.max_age (1ms .. "
        "30d)\n"
        "channels/stock.yaml:8:19: retry.backoff.max (5s) is shorter than backoff.initial (10s)\n"
        "channels/stock.yaml:9:3: unknown key \"attempts\" in retry (expected one of: "
        "max_attempts, max_age, backoff)\n"
        "channels/stock.yaml:11:20: keep_transactions (7d) is shorter than keep_bodies (30d) (a "
        "transaction is removed with its bodies: keep transactions at least as long)\n"
        "channels/three.yaml:4:8: expected a mapping for retry, got a scalar\n"
        "channels/two.yaml:4:30: retry.backoff.initial (2h) is longer than backoff.max (1h) (set "
        "retry.backoff.max to at least 2h)\n"
        "channels/two.yaml:5:14: expected a duration (like 12h, 90d or 2w; 0 for forever) for "
        "keep_bodies, got \"-1d\"\n"
        "channels/two.yaml:6:20: \"3651d\" is outside the valid range for keep_transactions (0 .. "
        "3650d)\n");
}

/* ------------------------------------------------------------------------------------
 * Polling channels (poll:)
 * ------------------------------------------------------------------------------------ */

static const struct config_channel *find_channel(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_channels; i++)
        if (strcmp(cfg->channels[i].name, name) == 0)
            return &cfg->channels[i];
    fail_msg("no channel \"%s\"", name);
    return NULL;
}

/* A time zone database of one zone, so that the tests need no tzdata: poll.timezone
 * names are looked up in $TZDIR. */
static void fake_zoneinfo(void)
{
    assert_int_equal(mkdir("zoneinfo", 0700), 0);
    assert_int_equal(mkdir("zoneinfo/Africa", 0700), 0);
    put("zoneinfo/Africa/Nairobi", "TZif");
    assert_int_equal(setenv("TZDIR", "zoneinfo", 1), 0);
}

static void test_poll_channels(void **state)
{
    (void)state;
    fake_zoneinfo();
    put("channels/lmis.yaml",
        "name: lmis\n"
        "poll:\n"
        "  schedule: \"*/5 * * * *\"\n"
        "  url: \"https://lmis.example/api/requisitions/search?requisitionStatus=APPROVED\"\n"
        "  method: POST\n"
        "  body: '{\"program\": \"em\"}'\n"
        "  auth: { header: { name: X-Api-Key, value: \"${HOME}\" } }\n"
        "  tls: { verify: false }\n"
        "  timeout: 45s\n"
        "  cursor: { param: modifiedDateFrom, from: \"2026-01-01T00:00:00Z\", overlap: 5m }\n"
        "  item_id: requisition.id\n"
        "  paging: { items: content, page_param: page, size_param: size, size: 50, last: last,"
        " max_pages: 20 }\n"
        "mode: async\n"
        "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/dhis.yaml",
        "name: dhis\n"
        "poll:\n"
        "  every: 90s\n"
        "  url: http://dhis.example/api/organisationUnits\n"
        "  paging: { items: organisationUnits, page_param: page, first_page: 1,"
        " total_pages: pager.pageCount }\n"
        "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/token.yaml",
        "name: token\n"
        "poll:\n"
        "  schedule: \"@hourly\"\n"
        "  timezone: Africa/Nairobi\n"
        "  url: http://feed.example/x\n"
        "  paging: { items: items, next_token: next.token, token_param: t }\n"
        "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/link.yaml", "name: link\n"
                              "poll:\n"
                              "  schedule: \"0 6 * * MON-FRI\"\n"
                              "  url: http://feed.example/y\n"
                              "  paging: { next_url: links.next }\n"
                              "  lookups:\n"
                              "    - { id: facility.id, url: \"http://f.example/f/{id}?x=1\","
                              " into: facility }\n"
                              "routes: [{ name: r, url: \"http://t.example\" }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    const struct config_channel *ch = find_channel(cfg, "lmis");
    const struct config_poll *p = ch->poll;
    assert_non_null(p);
    assert_null(ch->path);
    assert_int_equal(ch->mode, CONFIG_MODE_ASYNC);
    assert_string_equal(p->schedule, "*/5 * * * *");
    assert_string_equal(p->state_key, "cron */5 * * * *");
    uint64_t every5 = 0;
    for (int m = 0; m < 60; m += 5)
        every5 |= (uint64_t)1 << m;
    assert_int_equal(p->cron.minutes, every5);
    assert_string_equal(p->source.url,
                        "https://lmis.example/api/requisitions/search?requisitionStatus=APPROVED");
    assert_string_equal(p->method, "POST");
    assert_string_equal(p->body, "{\"program\": \"em\"}");
    assert_int_equal(p->source.auth_kind, CONFIG_AUTH_HEADER);
    assert_string_equal(p->source.auth_header, "X-Api-Key");
    assert_false(p->source.tls_verify);
    assert_int_equal(p->source.timeout_ms, 45000);
    assert_string_equal(p->cursor_param, "modifiedDateFrom");
    assert_string_equal(p->cursor_from, "2026-01-01T00:00:00Z");
    assert_int_equal(p->cursor_overlap_ms, 300000);
    assert_string_equal(p->item_id, "requisition.id");
    assert_int_equal(p->paging, CONFIG_PAGING_PAGE);
    assert_string_equal(p->items, "content");
    assert_string_equal(p->page_param, "page");
    assert_string_equal(p->size_param, "size");
    assert_int_equal(p->size, 50);
    assert_int_equal(p->first_page, 0);
    assert_string_equal(p->last, "last");
    assert_null(p->total_pages);
    assert_int_equal(p->max_pages, 20);

    p = find_channel(cfg, "dhis")->poll;
    assert_null(p->schedule);
    assert_null(p->timezone);
    assert_int_equal(p->every_ms, 90000);
    assert_string_equal(p->state_key, "every 90000ms");
    assert_string_equal(p->method, "GET");
    assert_null(p->body);
    assert_null(p->cursor_param);
    assert_int_equal(p->first_page, 1);
    assert_string_equal(p->total_pages, "pager.pageCount");
    assert_int_equal(p->source.timeout_ms, 30000);
    assert_int_equal(p->max_pages, 1000);

    p = find_channel(cfg, "token")->poll;
    assert_int_equal(p->paging, CONFIG_PAGING_TOKEN);
    assert_string_equal(p->next_token, "next.token");
    assert_string_equal(p->token_param, "t");
    assert_string_equal(p->state_key, "cron @hourly in Africa/Nairobi");
    assert_string_equal(p->timezone, "Africa/Nairobi");

    p = find_channel(cfg, "link")->poll;
    assert_int_equal(p->paging, CONFIG_PAGING_NEXT_URL);
    assert_string_equal(p->next_url, "links.next");
    assert_int_equal(p->n_lookups, 1);
    assert_string_equal(p->lookups[0].id, "facility.id");
    assert_string_equal(p->lookups[0].url, "http://f.example/f/{id}?x=1");
    assert_string_equal(p->lookups[0].into, "facility");
    assert_null(p->items);
    assert_null(find_channel(cfg, "stock")->poll);
    config_free(cfg);
    unsetenv("TZDIR");
}

static void test_poll_errors(void **state)
{
    (void)state;
    fake_zoneinfo();
    put("channels/a.yaml", "name: a\n"
                           "match: { path: /a }\n"
                           "allow: { roles: [lmis] }\n"
                           "mode: sync\n"
                           "poll:\n"
                           "  schedule: \"61 * * * *\"\n"
                           "  every: 2s\n"
                           "  url: \"http://user:pw@lmis.example/x\"\n"
                           "  body: '{}'\n"
                           "  item_id: \"a..b\"\n"
                           "  cursor: { param: \"mod since\" }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/b.yaml", "name: b\n"
                           "poll:\n"
                           "  url: ftp://lmis.example/x\n"
                           "  method: PUT\n"
                           "  paging: { next_token: n, size: 5, last: done }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/c.yaml", "name: c\n"
                           "poll:\n"
                           "  every: 10ms\n"
                           "  url: http://lmis.example/x\n"
                           "  paging: { page_param: page, size_param: size, first_page: 2, "
                           "max_pages: 0, token_param: t }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/d.yaml", "name: d\n"
                           "poll: { url: http://lmis.example/x, schedule: \"0 0 30 2 *\" }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/e.yaml", "name: e\n"
                           "poll: { url: http://x.example/, schedule: \"@daily\", timezone: "
                           "Mars/Olympus }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/f.yaml", "name: f\n"
                           "poll: { url: http://x.example/, every: 5m, timezone: UTC }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/h.yaml",
        "name: h\n"
        "poll:\n"
        "  url: http://x.example/\n"
        "  every: 1m\n"
        "  lookups:\n"
        "    - { id: facility.id, url: \"http://x.example/f\", into: facility }\n"
        "    - { id: \"a..b\", url: \"http://x.example/{id}/{id}\" }\n"
        "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/i.yaml", "name: i\n"
                           "poll: { url: http://x.example/, every: 1m, lookups: [] }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/j.yaml", "name: j\n"
                           "poll:\n"
                           "  url: http://x.example/\n"
                           "  every: 1m\n"
                           "  cursor: { param: since, from: \"0\", from_items: m, token: t, "
                           "overlap: 5m }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/k.yaml", "name: k\n"
                           "poll: { url: http://x.example/, every: 1m, cursor: { param: s, "
                           "from_items: \".m\" } }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    put("channels/g.yaml", "name: g\n"
                           "poll: { url: http://x.example/, schedule: \"@daily\", timezone: "
                           "../etc/passwd }\n"
                           "routes: [{ name: r, url: \"http://t.example\" }]\n");
    EXPECT_ERRORS(
        "channels/a.yaml:2:1: match applies only to channels that are posted to; this channel "
        "pulls its requests (poll:), remove match\n"
        "channels/a.yaml:3:1: allow applies only to channels that are posted to; this channel "
        "pulls its requests (poll:), remove allow\n"
        "channels/a.yaml:4:7: invalid value \"sync\" for mode (a poll channel is always async) "
        "(expected one of: async)\n"
        "channels/a.yaml:6:13: invalid cron expression \"61 * * * *\" in poll.schedule: minute: "
        "\"61\" is out of range (0-59)\n"
        "channels/a.yaml:7:3: poll has both schedule and every (use exactly one of schedule or "
        "every)\n"
        "channels/a.yaml:8:8: the url \"http://***@lmis.example/x\" of poll.url holds a user name "
        "or password; put them in auth: (basic: { username: ..., password: ... }, or token, bearer "
        "or header), where they are sent but never stored or printed\n"
        "channels/a.yaml:9:3: poll.body applies only with method: POST (a GET sends no body)\n"
        "channels/a.yaml:10:12: invalid path \"a..b\" for poll.item_id (expected names separated "
        "by \".\", like pager.pageCount)\n"
        "channels/a.yaml:11:11: poll.cursor needs from: the cursor sent before the first "
        "successful pull (with token: it may be left out, and the first pull sends none)\n"
        "channels/a.yaml:11:20: invalid query parameter name \"mod since\" for poll.cursor.param "
        "(letters, digits, \"-\", \"_\", \".\" and brackets)\n"
        "channels/b.yaml:3:3: poll needs a schedule: (a cron expression such as \"*/5 * * * *\") "
        "or every: (an interval such as 30s)\n"
        "channels/b.yaml:3:8: invalid url \"ftp://lmis.example/x\" for poll.url (expected an "
        "absolute http:// or https:// URL)\n"
        "channels/b.yaml:4:11: invalid value \"PUT\" for poll.method (expected one of: GET, POST)\n"
        "channels/b.yaml:5:13: poll.paging.next_token needs token_param: the query parameter that "
        "sends the token back\n"
        "channels/b.yaml:5:28: poll.paging.size applies only with page_param\n"
        "channels/b.yaml:5:37: poll.paging.last applies only with page_param\n"
        "channels/c.yaml:3:10: \"10ms\" is outside the valid range for poll.every (1s .. 24h)\n"
        "channels/c.yaml:5:31: poll.paging.size_param needs size: the page size to ask for\n"
        "channels/c.yaml:5:61: \"2\" is outside the valid range for poll.paging.first_page (0 .. "
        "1)\n"
        "channels/c.yaml:5:75: \"0\" is outside the valid range for poll.paging.max_pages (1 .. "
        "1000000)\n"
        "channels/c.yaml:5:78: poll.paging.token_param applies only with next_token\n"
        "channels/d.yaml:2:47: invalid cron expression \"0 0 30 2 *\" in poll.schedule: the "
        "schedule never fires: no month given has the day-of-month given (like February 30)\n"
        "channels/e.yaml:2:63: unknown time zone \"Mars/Olympus\" for poll.timezone (expected a "
        "name of the time zone database, like Africa/Nairobi or UTC, as found in zoneinfo)\n"
        "channels/f.yaml:2:44: poll.timezone applies only to a schedule: (every: counts from each "
        "pull)\n"
        "channels/g.yaml:2:63: unknown time zone \"../etc/passwd\" for poll.timezone (expected a "
        "name of the time zone database, like Africa/Nairobi or UTC)\n"
        "channels/h.yaml:6:31: poll.lookups[0].url must hold \"{id}\" once, where the item's "
        "reference goes (like https://lmis.example/api/facilities/{id})\n"
        "channels/h.yaml:7:7: missing required key \"into\" in poll.lookups[1]\n"
        "channels/h.yaml:7:13: invalid path \"a..b\" for poll.lookups[1].id (expected names "
        "separated by \".\", like pager.pageCount)\n"
        "channels/h.yaml:7:26: poll.lookups[1].url must hold \"{id}\" once, where the item's "
        "reference goes (like https://lmis.example/api/facilities/{id})\n"
        "channels/i.yaml:2:53: poll.lookups must have 1 to 8 entries, not 0\n"
        "channels/j.yaml:5:53: poll.cursor.token and poll.cursor.from_items exclude each other: "
        "the next cursor is either the source's token or the items' largest value\n"
        "channels/j.yaml:5:63: poll.cursor.overlap applies only to the cursor hibus takes from "
        "its own clock; with token the source's own values are the cursor\n"
        "channels/k.yaml:2:52: poll.cursor needs from: the cursor sent before the first "
        "successful pull (with token: it may be left out, and the first pull sends none)\n"
        "channels/k.yaml:2:76: invalid path \".m\" for poll.cursor.from_items (expected names "
        "separated by \".\", like pager.pageCount)\n");
    unsetenv("TZDIR");
}

/* A lease shorter than an async channel's routes take is fine: the keeper renews
 * the claims while the routes run (a lease is what a crash costs, not a bound on
 * a delivery). */
static void test_lease_shorter_than_routes(void **state)
{
    (void)state;
    put("hibus.yaml", "database: { url: x }\n"
                      "delivery: { lease: 10s }\n");
    put("channels/stock.yaml", channel_async); /* 1m + the default 30s */
    put("channels/sync.yaml", "name: sync\n"
                              "match: { path: /sync }\n"
                              "allow: { roles: [lmis] }\n"
                              "routes: [{ name: r, url: \"http://t.example\", timeout: 2m }]\n");
    struct config *cfg = load_ok_at("hibus.yaml");
    assert_int_equal(cfg->delivery_lease_ms, 10000);
    assert_int_equal(config_find_channel(cfg, "stock")->mode, CONFIG_MODE_ASYNC);
    assert_int_equal(config_find_channel(cfg, "sync")->mode, CONFIG_MODE_SYNC);
    config_free(cfg);
    /* an async channel still has exactly one primary route */
    put("channels/stock.yaml", "name: stock\n"
                               "match: { path: /stock }\n"
                               "allow: { roles: [lmis] }\n"
                               "mode: async\n"
                               "routes:\n"
                               "  - { name: a, url: \"http://a.example\", primary: true }\n"
                               "  - { name: b, url: \"http://b.example\", primary: true }\n");
    EXPECT_ERRORS("channels/stock.yaml:7:50: route \"b\" and route \"a\" are both primary "
                  "(exactly one route can be primary)\n");
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
        {"500ms", 500},
        {"30s", 30000},
        {"2m", 120000},
        {"1h", 3600000},
        {"7", 7000},
        {"0", 0},
        {"0ms", 0},
        {"1d", 86400000},
        {"90d", 90L * 86400000},
        {"2w", 14L * 86400000},
        {"3650d", 3650L * 86400000},
        {"0w", 0},
        /* the largest: LONG_MAX ms is 15250284452w and some */
        {"15250284452w", 15250284452L * 7 * 86400000},
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
                                      "1D",
                                      "1W",
                                      "1y",
                                      "1dd",
                                      "1.5d",
                                      "15250284453w",
                                      "106751991168d",
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
        cmocka_unit_test_setup_teardown(test_no_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_secret_warning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regex_channel, setup, teardown),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test_setup_teardown(test_env_expansion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_default_and_required, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_admin_needs_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_client_and_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_url_userinfo, setup, teardown),
        cmocka_unit_test(test_url_masked),
        cmocka_unit_test_setup_teardown(test_csv_not_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_multi_document, setup, teardown),
        cmocka_unit_test(test_many_errors_many_files),
        cmocka_unit_test(test_tie_reported),
        cmocka_unit_test_setup_teardown(test_transform_all_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transform_without_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transform_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quality_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dhis2_route_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_match_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_scheme_agreement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_csv_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_csv_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_csv_too_many_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_many_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_all_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_inheritance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_retry_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_shorter_than_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_errors, setup, teardown),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
