/*
 * test_delivery.c - the retry verdict of a round whose failure may succeed later
 * (delivery_verdict), the full-jitter backoff it draws from (delivery_backoff_ms),
 * and the ordering key of a report (delivery_order_key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "hibus/cpubudget.h"
#include "hibus/delivery.h"
#include "hibus/writers.h"

static const struct config_retry policy = {
    .max_attempts = 3, .max_age_ms = 60000, .backoff_initial_ms = 1000, .backoff_max_ms = 4000};

static void test_verdict(void **state)
{
    (void)state;
    char why[256] = "";
    long in = -1;
    /* rounds 1 and 2 of 3, young: queued again, within the round's backoff cap */
    assert_string_equal(delivery_verdict(&policy, 1, 10, &in, why, sizeof why), "queued");
    assert_true(in >= 0 && in <= 1000);
    assert_string_equal(why, "");
    assert_string_equal(delivery_verdict(&policy, 2, 10, &in, why, sizeof why), "queued");
    assert_true(in >= 0 && in <= 2000);
    /* the last round: failed, and why */
    in = -1;
    assert_string_equal(delivery_verdict(&policy, 3, 10, &in, why, sizeof why), "failed");
    assert_string_equal(why, "gave up after 3 attempts (max_attempts)");
    assert_int_equal(in, -1);
    /* too old, whatever the round */
    assert_string_equal(delivery_verdict(&policy, 1, 60000, &in, why, sizeof why), "failed");
    assert_string_equal(why, "gave up: the request is older than max_age (60 s)");
}

static void test_backoff_caps(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        long b1 = delivery_backoff_ms(&policy, 1), b3 = delivery_backoff_ms(&policy, 3),
             b9 = delivery_backoff_ms(&policy, 9);
        assert_true(b1 >= 0 && b1 <= 1000);
        assert_true(b3 >= 0 && b3 <= 4000);
        assert_true(b9 >= 0 && b9 <= 4000); /* capped at backoff_max */
    }
}

static void test_order_key(void **state)
{
    (void)state;
    struct config_channel ch = {.name = "lmis-stock"};
    struct delivery_prepared p = {0};
    assert_null(delivery_order_key(&ch, &p)); /* no report: no key */
    p.report = report_new("lmis-report");
    assert_non_null(p.report);
    assert_null(delivery_order_key(&ch, &p)); /* no facility: no key */
    assert_true(report_set(&p.report->org_unit, "FAC-0042"));
    assert_true(report_set(&p.report->period, "202610"));
    char *k = delivery_order_key(&ch, &p);
    assert_string_equal(k, "lmis-stock|FAC-0042|202610");
    free(k);
    report_free(p.report);
}

/* A prepared payload whose problems array carries a marker, to tell entries apart. */
static struct delivery_prepared prepared(int marker)
{
    struct delivery_prepared p = {
        .problems = json_array(), .skipped = json_array(), .warnings = json_array()};
    json_array_append_new(p.problems, json_integer(marker));
    return p;
}

static int marker_of(const struct delivery_prepared *p)
{
    return (int)json_integer_value(json_array_get(p->problems, 0));
}

/* Taken once, by the same snapshot only; another snapshot drops it. */
static void test_handoff(void **state)
{
    (void)state;
    struct config gen1 = {.generation = 1}, gen2 = {.generation = 2};
    struct delivery_prepared p = prepared(5), out;
    delivery_handoff_put(5, &gen1, 100, &p);
    assert_null(p.problems); /* taken over */
    assert_true(delivery_handoff_take(5, &gen1, &out));
    assert_int_equal(marker_of(&out), 5);
    delivery_prepared_free(&out);
    assert_false(delivery_handoff_take(5, &gen1, &out));

    p = prepared(6);
    delivery_handoff_put(6, &gen1, 100, &p);
    assert_false(delivery_handoff_take(6, &gen2, &out)); /* a reload came between */
    assert_false(delivery_handoff_take(6, &gen1, &out)); /* and it was dropped */
    assert_false(delivery_handoff_take(7, &gen1, &out));
    delivery_handoff_clear();
}

/* The oldest go first, by count and by payload size; a payload over the size
 * limit is not kept at all. */
static void test_handoff_bounds(void **state)
{
    (void)state;
    struct config cfg = {.generation = 9};
    struct delivery_prepared p, out;
    for (int i = 1; i <= DELIVERY_HANDOFF_MAX + 1; i++) {
        p = prepared(i);
        delivery_handoff_put(i, &cfg, 10, &p);
    }
    assert_false(delivery_handoff_take(1, &cfg, &out));
    assert_true(delivery_handoff_take(2, &cfg, &out));
    assert_int_equal(marker_of(&out), 2);
    delivery_prepared_free(&out);
    assert_true(delivery_handoff_take(DELIVERY_HANDOFF_MAX + 1, &cfg, &out));
    delivery_prepared_free(&out);
    delivery_handoff_clear();

    p = prepared(1000);
    delivery_handoff_put(1000, &cfg, DELIVERY_HANDOFF_BYTES - 10, &p);
    p = prepared(1001);
    delivery_handoff_put(1001, &cfg, 20, &p); /* over the total: 1000 goes */
    assert_false(delivery_handoff_take(1000, &cfg, &out));
    assert_true(delivery_handoff_take(1001, &cfg, &out));
    delivery_prepared_free(&out);

    p = prepared(1002);
    delivery_handoff_put(1002, &cfg, DELIVERY_HANDOFF_BYTES + 1, &p);
    assert_null(p.problems);
    assert_false(delivery_handoff_take(1002, &cfg, &out));
    delivery_handoff_clear();
}

struct taker {
    size_t bytes;
    atomic_bool done;
};

static void *take_one(void *arg)
{
    struct taker *t = arg;
    delivery_budget_take(t->bytes);
    atomic_store(&t->done, true);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* limits.transform_memory: a body that would pass the budget waits until earlier ones
 * give theirs back; one larger than the whole budget passes when it is alone. */
static void test_transform_budget(void **state)
{
    (void)state;
    delivery_set_transform_memory(100);
    delivery_budget_take(80);
    struct taker t = {.bytes = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, take_one, &t), 0);
    sleep_ms(100);
    assert_false(atomic_load(&t.done)); /* 80 + 50 > 100: waits */
    delivery_budget_give(80);
    pthread_join(th, NULL);
    assert_true(atomic_load(&t.done));
    delivery_budget_give(50);
    /* alone, 500 passes a budget of 100 */
    struct taker big = {.bytes = 500};
    assert_int_equal(pthread_create(&th, NULL, take_one, &big), 0);
    pthread_join(th, NULL);
    assert_true(atomic_load(&big.done));
    delivery_budget_give(500);
    /* a raised budget lets a waiting one through without anything given back */
    delivery_budget_take(80);
    struct taker w = {.bytes = 50};
    assert_int_equal(pthread_create(&th, NULL, take_one, &w), 0);
    sleep_ms(50);
    assert_false(atomic_load(&w.done));
    delivery_set_transform_memory(200);
    pthread_join(th, NULL);
    delivery_budget_give(130);
    delivery_set_transform_memory(32u * 1024 * 1024);
}

/* limits.request_cpu covers each route's writer too: a body the writer cannot finish
 * within it is not sent; the route fails with the reason (and the clock is not the
 * one the transform used). */
static void test_writer_cpu(void **state)
{
    (void)state;
    struct report *r = report_new("dhis2-json");
    assert_non_null(r);
    assert_true(report_set(&r->ou_uid, "DiszpKrYNg8") && report_set(&r->period, "202401") &&
                report_set(&r->data_set_uid, "Lpw6GcnTrmS"));
    /* enough that no writer finishes within 1 ms, few enough that both finish well
     * within the default limit under the sanitizers and coverage on a busy machine
     * (50000 once took the adx writer past 5 s of CPU there) */
    for (int i = 0; i < 10000; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        struct report_value *rv = report_add(r, "A", NULL, v, NULL, NULL);
        assert_non_null(rv);
        /* every value in its own ADX group */
        assert_true(report_set(&rv->de_uid, "s46m5MS0hxu") && report_set(&rv->ou_uid, v));
    }
    struct config_channel ch = {.name = "c"};
    struct config_route rt = {.name = "archive",
                              .mediator = CONFIG_MEDIATOR_HTTP,
                              .body = CONFIG_BODY_TRANSFORMED,
                              .writer = "adx"};
    struct delivery_prepared p = {.report = r};
    const char *writers[] = {"adx", "dhis2-datavalueset"};
    for (size_t i = 0; i < 2; i++) {
        rt.writer = (char *)writers[i];
        char *body = NULL, msg[160];
        size_t len = 0;
        const char *ctype = NULL, *writer = NULL;
        struct hibus_error err = {0};
        cpu_budget_set_limit(1);
        assert_int_equal(delivery_route_body(&ch, &rt, &p, &body, &len, &ctype, &writer, &err),
                         HIBUS_E_INVALID);
        assert_null(body);
        snprintf(msg, sizeof msg,
                 "route \"archive\": the %s writer took more than "
                 "limits.request_cpu (1ms) of CPU time",
                 writers[i]);
        if (strstr(err.msg, msg) == NULL)
            fail_msg("%s", err.msg);
        /* with the default limit it is written */
        cpu_budget_set_limit(5000);
        assert_int_equal(delivery_route_body(&ch, &rt, &p, &body, &len, &ctype, &writer, &err),
                         HIBUS_OK);
        assert_non_null(body);
        assert_true(len > 10000);
        free(body);
    }
    report_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict),        cmocka_unit_test(test_backoff_caps),
        cmocka_unit_test(test_order_key),      cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_handoff_bounds), cmocka_unit_test(test_transform_budget),
        cmocka_unit_test(test_writer_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
