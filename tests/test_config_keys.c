/*
 * test_config_keys.c - the key table of hibus.yaml (src/config_keys.c) against
 * what it drives: each row's example is read into its own field and no other, a
 * reload names exactly the restart keys that changed, and docs/configuration.md
 * holds the tables the rows generate.
 */
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
#include "hibus/error.h"

static const char db_url[] = "postgres://localhost/hibus";
static const char clients_yaml[] = "roles: [lmis]\nclients: []\n";
static const char channel_yaml[] = "name: stock\n"
                                   "match: { path: /stock }\n"
                                   "allow: { roles: [lmis] }\n"
                                   "routes:\n"
                                   "  - { name: archive, url: \"http://archive.example/stock\" }\n";

static int setup(void **state)
{
    (void)state;
    if (tmpdir_enter("keys") != 0 || mkdir("channels", 0700) != 0 ||
        mkdir("alt-channels", 0700) != 0 || mkdir("alt-mappings", 0700) != 0)
        return -1;
    put("clients.yaml", clients_yaml);
    put("alt-clients.yaml", clients_yaml);
    put("channels/stock.yaml", channel_yaml);
    put("alt-channels/stock.yaml", channel_yaml);
    put("admin-users.yaml", "users: []\n");
    put("alt-admin-users.yaml", "users: []\n");
    return setenv("HIBUS_PORT", "5002", 1);
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_leave();
}

static struct config *load(const char *yaml)
{
    put("hibus.yaml", yaml);
    struct hibus_diags d = {0};
    struct config *cfg = NULL;
    enum hibus_err rc = config_load("hibus.yaml", &cfg, &d);
    if (rc != HIBUS_OK) {
        fprintf(stderr, "hibus.yaml:\n%s", yaml);
        hibus_diags_print(&d, stderr);
    }
    hibus_diags_free(&d);
    assert_int_equal(rc, HIBUS_OK);
    return cfg;
}

/* hibus.yaml holding database.url and key k set to v, nested as its dotted name says. */
static void yaml_with(char *out, size_t size, const char *name, const char *v)
{
    size_t len = 0;
    if (strcmp(name, "database.url") == 0) {
        snprintf(out, size, "database:\n  url: \"%s\"\n", v);
        return;
    }
    len += (size_t)snprintf(out, size, "database:\n  url: \"%s\"\n", db_url);
    const char *seg = name;
    int depth = 0;
    if (strncmp(name, "database.", 9) == 0) { /* inside the database: already written */
        seg = name + 9;
        depth = 1;
    }
    for (;;) {
        const char *dot = strchr(seg, '.');
        if (dot == NULL) {
            len += (size_t)snprintf(out + len, size - len, "%*s%s: %s\n", 2 * depth, "", seg, v);
            return;
        }
        len += (size_t)snprintf(out + len, size - len, "%*s%.*s:\n", 2 * depth, "",
                                (int)(dot - seg), seg);
        seg = dot + 1;
        depth++;
    }
}

/* Each row's example lands in its own field and in no other, and a reload names
 * it when, and only when, the row says it waits for a restart. */
static void test_each_key(void **state)
{
    (void)state;
    char yaml[1024], names[256], value[64];
    snprintf(yaml, sizeof yaml, "database:\n  url: \"%s\"\n", db_url);
    struct config *base = load(yaml);
    size_t tried = 0, pairs = 0;
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->type == CONFIG_KEY_UNSUPPORTED)
            continue;
        if (strncmp(k->name, "listen.tls.", 11) == 0) {
            pairs++; /* only with each other and real files: tests/integration/test_tls.py */
            continue;
        }
        const char *v = k->example;
        if (k->type == CONFIG_KEY_PATH) { /* a file or directory the setup made */
            snprintf(value, sizeof value, "alt-%s", k->def_str);
            v = value;
        }
        yaml_with(yaml, sizeof yaml, k->name, v);
        struct config *next = load(yaml);
        for (size_t j = 0; j < config_n_keys; j++) {
            bool differs = config_key_differs(base, next, &config_keys[j]);
            if (differs != (i == j))
                fail_msg("setting %s to %s %s %s", k->name, v,
                         differs ? "changed" : "did not change", config_keys[j].name);
        }
        const char *why = config_needs_restart(base, next, names, sizeof names);
        if (k->reload)
            assert_null(why);
        else
            assert_string_equal(why, k->name);
        config_free(next);
        tried++;
    }
    assert_int_equal(pairs, 3);
    assert_int_equal(tried, config_n_keys - pairs);
    config_free(base);
}

/* Two restart keys changed at once are both named. */
static void test_restart_names_all(void **state)
{
    (void)state;
    char yaml[512], names[256];
    snprintf(yaml, sizeof yaml, "database:\n  url: \"%s\"\n", db_url);
    struct config *base = load(yaml);
    snprintf(yaml, sizeof yaml,
             "listen: { port: 5003 }\ndatabase:\n  url: \"%s\"\n  pool: 3\n"
             "delivery: { workers: 2, poll: 1s }\n",
             db_url);
    struct config *next = load(yaml);
    assert_string_equal(config_needs_restart(base, next, names, sizeof names),
                        "listen.port, database.pool, delivery.workers");
    config_free(next);
    config_free(base);
}

/* A refused value is reported once: no check across keys is built on the default
 * that stays in its place. */
static void test_refused_value_reported_once(void **state)
{
    (void)state;
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "database:\n  url: \"%s\"\n"
             "delivery: { backoff: { initial: 1h, max: banana } }\n"
             "retention: { keep_bodies: 90d, keep_transactions: soon }\n",
             db_url);
    put("hibus.yaml", yaml);
    struct hibus_diags d = {0};
    struct config *cfg = NULL;
    assert_int_equal(config_load("hibus.yaml", &cfg, &d), HIBUS_E_CONFIG);
    if (d.n != 2)
        hibus_diags_print(&d, stderr);
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.v[0].msg, "delivery.backoff.max"));
    assert_non_null(strstr(d.v[1].msg, "retention.keep_transactions"));
    hibus_diags_free(&d);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            text = realloc(text, cap);
            assert_non_null(text);
        }
        size_t n = fread(text + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

/* Every generated region of docs/configuration.md holds what the rows generate
 * now, and every documented key is in one of them. */
static void test_docs_match_table(void **state)
{
    (void)state;
    char *docs = read_file(HIBUS_TEST_DATA "/../../docs/configuration.md");
    static const char begin[] = "<!-- BEGIN hibus keys ", end[] = "<!-- END hibus keys -->";
    size_t rows = 0, regions = 0;
    for (char *p = strstr(docs, begin); p; p = strstr(p, begin)) {
        char section[32] = "";
        p += sizeof begin - 1;
        size_t n = strcspn(p, ":");
        assert_true(n < sizeof section);
        memcpy(section, p, n);
        section[n] = '\0';
        char *body = strchr(p, '\n');
        assert_non_null(body);
        body++;
        char *stop = strstr(body, end);
        assert_non_null(stop);
        *stop = '\0';

        char *want = NULL;
        size_t want_len = 0;
        FILE *m = open_memstream(&want, &want_len);
        assert_non_null(m);
        rows += config_keys_markdown(m, strcmp(section, "top") == 0 ? "" : section);
        fclose(m);
        if (strcmp(body, want) != 0)
            fail_msg("docs/configuration.md: the %s table differs from src/config_keys.c; run "
                     "scripts/config-doc\nwant:\n%s\ngot:\n%s",
                     section, want, body);
        free(want);
        regions++;
        p = stop + 1;
    }
    free(docs);
    assert_int_equal(regions, 10);
    assert_int_equal(rows, config_n_keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_names_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_value_reported_once, setup, teardown),
        cmocka_unit_test(test_docs_match_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
