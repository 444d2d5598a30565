/*
 * test_auth.c - basic authentication, the verification cache, allow lists and
 * password hashing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hibus/auth.h"

/* A config with two clients, built by hand so these tests depend on auth alone. */
struct fixture {
    struct config cfg;
    struct config_client clients[2];
    char *lmis_roles[1];
    char hash_good[256];
    char hash_other[256];
};

static char basic_buf[512];

/* "Basic " + base64(user:pass), enough for short test credentials. */
static const char *basic(const char *user, const char *pass)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char raw[256];
    int n = snprintf(raw, sizeof raw, "%s:%s", user, pass);
    char *o = basic_buf + snprintf(basic_buf, sizeof basic_buf, "Basic ");
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return basic_buf;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(auth_hash_password("s3cret", f->hash_good, sizeof f->hash_good, NULL),
                     HIBUS_OK);
    assert_int_equal(auth_hash_password("other", f->hash_other, sizeof f->hash_other, NULL),
                     HIBUS_OK);
    f->lmis_roles[0] = "lmis";
    f->clients[0] = (struct config_client){.id = "lmis-national",
                                           .password_hash = f->hash_good,
                                           .roles = f->lmis_roles,
                                           .n_roles = 1,
                                           .enabled = true};
    f->clients[1] =
        (struct config_client){.id = "old-system", .password_hash = f->hash_good, .enabled = false};
    f->cfg.clients = f->clients;
    f->cfg.n_clients = 2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void test_hash_is_yescrypt_and_verifies(void **state)
{
    struct fixture *f = *state;
    assert_memory_equal(f->hash_good, "$y$", 3);
    assert_true(auth_verify_password("s3cret", f->hash_good));
    assert_false(auth_verify_password("s3creT", f->hash_good));
    assert_false(auth_verify_password("", f->hash_good));
    /* Two hashes of one password differ (random salt). */
    char again[256];
    assert_int_equal(auth_hash_password("s3cret", again, sizeof again, NULL), HIBUS_OK);
    assert_string_not_equal(again, f->hash_good);
    assert_true(auth_verify_password("s3cret", again));
}

static void test_sha512_crypt_verifies(void **state)
{
    (void)state;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof salt));
    struct crypt_data cd = {0};
    char *h = crypt_r("pa55", salt, &cd);
    assert_non_null(h);
    char hash[256];
    snprintf(hash, sizeof hash, "%s", h);
    assert_true(auth_verify_password("pa55", hash));
    assert_false(auth_verify_password("pa56", hash));
}

static void test_hash_too_small_buffer(void **state)
{
    (void)state;
    char small[10];
    struct hibus_error err = {0};
    assert_int_equal(auth_hash_password("x", small, sizeof small, &err), HIBUS_E_INVALID);
    assert_string_equal(err.msg, "password hash longer than 9 bytes");
}

static void test_basic_results(void **state)
{
    struct fixture *f = *state;
    const struct config_client *cl = NULL;
    assert_int_equal(auth_basic(&f->cfg, NULL, NULL, &cl), AUTH_MISSING);
    assert_int_equal(auth_basic(&f->cfg, NULL, "Bearer abc", &cl), AUTH_MISSING);
    assert_int_equal(auth_basic(&f->cfg, NULL, "Basic !!!notbase64", &cl), AUTH_MALFORMED);
    assert_int_equal(auth_basic(&f->cfg, NULL, "Basic bm9jb2xvbg==", &cl),
                     AUTH_MALFORMED); /* "nocolon" */
    assert_int_equal(auth_basic(&f->cfg, NULL, "Basic ", &cl), AUTH_MALFORMED);
    assert_int_equal(auth_basic(&f->cfg, NULL, basic("nobody", "s3cret"), &cl), AUTH_INVALID);
    assert_int_equal(auth_basic(&f->cfg, NULL, basic("lmis-national", "wrong"), &cl), AUTH_INVALID);
    assert_int_equal(auth_basic(&f->cfg, NULL, basic("old-system", "s3cret"), &cl), AUTH_INVALID);
    assert_null(cl);
    assert_int_equal(auth_basic(&f->cfg, NULL, basic("lmis-national", "s3cret"), &cl), AUTH_OK);
    assert_non_null(cl);
    assert_string_equal(cl->id, "lmis-national");
    /* The scheme name is case-insensitive (RFC 9110 11.1). */
    char lower[512];
    snprintf(lower, sizeof lower, "basic %s", basic("lmis-national", "s3cret") + 6);
    assert_int_equal(auth_basic(&f->cfg, NULL, lower, &cl), AUTH_OK);
    /* A password may contain colons: only the first one separates. */
    assert_int_equal(auth_basic(&f->cfg, NULL, basic("lmis-national", "s3cret:"), &cl),
                     AUTH_INVALID);
}

static void test_cache_never_accepts_wrong_password(void **state)
{
    struct fixture *f = *state;
    struct auth_cache *c = auth_cache_new();
    assert_non_null(c);
    const struct config_client *cl = NULL;
    assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "s3cret"), &cl), AUTH_OK);
    assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "s3cret"), &cl), AUTH_OK);
    assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "s3cre"), &cl), AUTH_INVALID);
    /* A reloaded config with a new hash: the cached success no longer counts. */
    f->clients[0].password_hash = f->hash_other;
    assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "s3cret"), &cl), AUTH_INVALID);
    assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "other"), &cl), AUTH_OK);
    f->clients[0].password_hash = f->hash_good;
    /* A disabled client stays refused even with a cached success for its hash. */
    assert_int_equal(auth_basic(&f->cfg, c, basic("old-system", "s3cret"), &cl), AUTH_INVALID);
    auth_cache_free(c);
    auth_cache_free(NULL);
}

static void test_cache_survives_many_clients(void **state)
{
    struct fixture *f = *state;
    struct auth_cache *c = auth_cache_new();
    const struct config_client *cl = NULL;
    /* More distinct successes than the table holds: it empties and refills, and
     * answers stay right throughout. */
    char pw[32];
    for (int i = 0; i < 5; i++) {
        snprintf(pw, sizeof pw, "pw-%d", i);
        assert_int_equal(auth_hash_password(pw, f->hash_other, sizeof f->hash_other, NULL),
                         HIBUS_OK);
        f->clients[0].password_hash = f->hash_other;
        assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", pw), &cl), AUTH_OK);
        assert_int_equal(auth_basic(&f->cfg, c, basic("lmis-national", "s3cret"), &cl),
                         AUTH_INVALID);
    }
    f->clients[0].password_hash = f->hash_good;
    auth_cache_free(c);
}

struct herd {
    struct fixture *f;
    struct auth_cache *c;
    const char *password;
    pthread_barrier_t *start;
    enum auth_result got;
};

static void *herd_member(void *arg)
{
    struct herd *h = arg;
    char authz[512];
    pthread_barrier_wait(h->start);
    /* basic() writes a shared buffer: each thread has its own copy. */
    snprintf(authz, sizeof authz, "%s", h->password);
    const struct config_client *cl = NULL;
    h->got = auth_basic(&h->f->cfg, h->c, authz, &cl);
    return NULL;
}

/* 16 requests with the same credentials at once, the cache empty (a client that
 * reconnects everything after a restart): one slow check, the others wait for its
 * result. Wrong passwords are never shared: each costs its own check. */
static void test_same_credentials_at_once(void **state)
{
    struct fixture *f = *state;
    enum { N = 16 };
    for (int round = 0; round < 2; round++) {
        bool good = round == 0;
        char authz[512];
        snprintf(authz, sizeof authz, "%s", basic("lmis-national", good ? "s3cret" : "wrong"));
        struct auth_cache *c = auth_cache_new();
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, N);
        struct herd h[N];
        pthread_t t[N];
        unsigned long before = auth_slow_checks();
        for (int i = 0; i < N; i++) {
            h[i] = (struct herd){f, c, authz, &start, AUTH_MISSING};
            assert_int_equal(pthread_create(&t[i], NULL, herd_member, &h[i]), 0);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(h[i].got, good ? AUTH_OK : AUTH_INVALID);
        }
        assert_int_equal(auth_slow_checks() - before, good ? 1 : N);
        pthread_barrier_destroy(&start);
        auth_cache_free(c);
    }
}

static void test_allowed(void **state)
{
    struct fixture *f = *state;
    char *roles[] = {"ops", "lmis"};
    char *clients[] = {"old-system"};
    struct config_channel ch = {.name = "c", .allow_roles = roles, .n_allow_roles = 2};
    assert_true(auth_allowed(&ch, &f->clients[0]));
    assert_false(auth_allowed(&ch, &f->clients[1]));
    assert_false(auth_allowed(&ch, NULL));
    ch.n_allow_roles = 1; /* only ops */
    assert_false(auth_allowed(&ch, &f->clients[0]));
    ch.allow_clients = clients;
    ch.n_allow_clients = 1;
    assert_true(auth_allowed(&ch, &f->clients[1]));
    assert_false(auth_allowed(&ch, &f->clients[0]));
}

static double ms_of(const struct fixture *f, const char *user, const char *pass)
{
    struct timespec a, b;
    const struct config_client *cl = NULL;
    clock_gettime(CLOCK_MONOTONIC, &a);
    enum auth_result r = auth_basic(&f->cfg, NULL, basic(user, pass), &cl);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(r, AUTH_INVALID);
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* An unknown or disabled client id costs as much as a wrong password for a known
 * one (a password check each), so timing does not tell ids apart. Before, the
 * unknown id was answered some 25 times faster. Medians of interleaved runs, and a
 * wide margin (a third), for a shared machine. */
static void test_unknown_client_costs_a_check(void **state)
{
    struct fixture *f = *state;
    enum { RUNS = 7 };
    double known[RUNS], unknown[RUNS], disabled[RUNS];
    for (int i = 0; i < RUNS; i++) {
        known[i] = ms_of(f, "lmis-national", "wrong");
        unknown[i] = ms_of(f, "no-such-client", "wrong");
        disabled[i] = ms_of(f, "old-system", "wrong");
    }
    qsort(known, RUNS, sizeof *known, cmp_double);
    qsort(unknown, RUNS, sizeof *unknown, cmp_double);
    qsort(disabled, RUNS, sizeof *disabled, cmp_double);
    double k = known[RUNS / 2], u = unknown[RUNS / 2], d = disabled[RUNS / 2];
    if (u < k / 3 || d < k / 3)
        fail_msg("median ms: known id %.2f, unknown id %.2f, disabled id %.2f", k, u, d);
}

static struct sockaddr_in v4(const char *a)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return in;
}

/* Failed logins per address: limit failures, then 1 s, 2 s, 4 s ... (at most 5 min);
 * a quiet minute or a success starts again; addresses do not share a count; an IPv4
 * address and its IPv4-mapped IPv6 form are one address. */
static void test_guard(void **state)
{
    (void)state;
    struct auth_guard *g = auth_guard_new();
    assert_non_null(g);
    struct sockaddr_in a = v4("192.0.2.7"), b = v4("192.0.2.8");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr), 1);
    const struct sockaddr *A = (const struct sockaddr *)&a, *B = (const struct sockaddr *)&b;
    long t = 1000000;
    auth_guard_failed(g, A, 3, t);
    auth_guard_failed(g, A, 3, t + 10);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 20), 0);
    auth_guard_failed(g, A, 3, t + 20);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 20), 1000);
    assert_int_equal(auth_guard_wait_ms(g, (const struct sockaddr *)&a6, t + 520), 500);
    assert_int_equal(auth_guard_wait_ms(g, B, t + 20), 0);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 1020), 0);
    auth_guard_failed(g, A, 3, t + 1100);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 1100), 2000);
    auth_guard_failed(g, A, 3, t + 3100);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 3100), 4000);
    for (int i = 0; i < 40; i++)
        auth_guard_failed(g, A, 3, t + 4000 + i);
    assert_int_equal(auth_guard_wait_ms(g, A, t + 4039), 300000);
    /* a quiet minute after the refusal ends forgets the count */
    long later = t + 4039 + 300000 + 60001;
    auth_guard_failed(g, A, 3, later);
    assert_int_equal(auth_guard_wait_ms(g, A, later), 0);
    /* a success forgets it too */
    auth_guard_failed(g, B, 2, t);
    auth_guard_succeeded(g, B);
    auth_guard_failed(g, B, 2, t + 1);
    assert_int_equal(auth_guard_wait_ms(g, B, t + 1), 0);
    /* limit 0: never refused; a missing address (a Unix socket) is never counted */
    struct sockaddr_in c = v4("192.0.2.9");
    for (int i = 0; i < 100; i++) {
        auth_guard_failed(g, (const struct sockaddr *)&c, 0, t + i);
        auth_guard_failed(g, NULL, 1, t + i);
    }
    assert_int_equal(auth_guard_wait_ms(g, (const struct sockaddr *)&c, t + 100), 0);
    assert_int_equal(auth_guard_wait_ms(g, NULL, t + 100), 0);
    /* many addresses: the table stays bounded and still refuses the one guessing now */
    for (unsigned i = 0; i < 100000; i++) {
        struct sockaddr_in x = {.sin_family = AF_INET};
        x.sin_addr.s_addr = htonl(0x0a000000u + i);
        auth_guard_failed(g, (const struct sockaddr *)&x, 3, t + 200000 + i);
    }
    struct sockaddr_in d = v4("198.51.100.1");
    for (int i = 0; i < 3; i++)
        auth_guard_failed(g, (const struct sockaddr *)&d, 3, t + 300000);
    assert_int_equal(auth_guard_wait_ms(g, (const struct sockaddr *)&d, t + 300000), 1000);
    auth_guard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_is_yescrypt_and_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha512_crypt_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_too_small_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_never_accepts_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_survives_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_credentials_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_client_costs_a_check, setup, teardown),
        cmocka_unit_test(test_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
