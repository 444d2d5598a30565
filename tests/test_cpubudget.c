/*
 * test_cpubudget.c - limits.request_cpu's clock (src/cpubudget.c): a budget runs out
 * on the thread's own CPU time, stays run out, belongs to its thread alone, and a
 * limit of 0 means none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "hibus/cpubudget.h"

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Burns CPU until the budget says it is over, or 2 s of CPU have gone. */
static bool burn_until_over(void)
{
    volatile uint64_t x = 1;
    double start = thread_cpu_s();
    while (thread_cpu_s() - start < 2.0) {
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005u + 1;
        if (cpu_budget_over())
            return true;
    }
    return false;
}

static void test_runs_out(void **state)
{
    (void)state;
    cpu_budget_set_limit(1);
    cpu_budget_begin();
    double start = thread_cpu_s();
    assert_true(burn_until_over());
    /* not long after the limit: the clock is read every CPU_BUDGET_STRIDE calls */
    assert_true(thread_cpu_s() - start < 0.5);
    assert_true(cpu_budget_over()); /* stays over */
    assert_true(cpu_budget_check());
    cpu_budget_end();
    assert_false(cpu_budget_over()); /* closed: no budget */
    assert_false(cpu_budget_check());

    /* a new budget starts afresh */
    cpu_budget_set_limit(60000);
    cpu_budget_begin();
    for (int i = 0; i < 10 * CPU_BUDGET_STRIDE; i++)
        assert_false(cpu_budget_over());
    assert_false(cpu_budget_check());
    cpu_budget_end();
    cpu_budget_set_limit(5000);
}

static void test_zero_is_no_limit(void **state)
{
    (void)state;
    cpu_budget_set_limit(0);
    cpu_budget_begin();
    volatile uint64_t x = 1;
    double start = thread_cpu_s();
    while (thread_cpu_s() - start < 0.02)
        x = x * 3 + 1;
    for (int i = 0; i < 4 * CPU_BUDGET_STRIDE; i++)
        assert_false(cpu_budget_over());
    assert_false(cpu_budget_check());
    cpu_budget_end();
    cpu_budget_set_limit(5000);
}

/* check() reads the clock at once: a stage that overran between samples is caught at
 * its end. */
static void test_check_reads_now(void **state)
{
    (void)state;
    cpu_budget_set_limit(1);
    cpu_budget_begin();
    volatile uint64_t x = 1;
    double start = thread_cpu_s();
    while (thread_cpu_s() - start < 0.01)
        x = x * 3 + 1;
    assert_true(cpu_budget_check());
    cpu_budget_end();
    cpu_budget_set_limit(5000);
}

static void *other_thread(void *arg)
{
    bool *over = arg;
    volatile uint64_t x = 1;
    double start = thread_cpu_s();
    while (thread_cpu_s() - start < 0.01)
        x = x * 3 + 1;
    *over = cpu_budget_check() || cpu_budget_over();
    return NULL;
}

static void test_per_thread(void **state)
{
    (void)state;
    cpu_budget_set_limit(1);
    cpu_budget_begin();
    assert_true(burn_until_over());
    bool over = true;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread, &over), 0);
    pthread_join(th, NULL);
    assert_false(over); /* that thread opened no budget */
    cpu_budget_end();
    cpu_budget_set_limit(5000);
}

static void test_message(void **state)
{
    (void)state;
    char buf[256];
    cpu_budget_set_limit(5000);
    cpu_budget_message(buf, sizeof buf, "reading the payload");
    assert_string_equal(buf, "reading the payload took more than limits.request_cpu (5s) of CPU "
                             "time: send the payload in smaller parts");
    cpu_budget_set_limit(250);
    cpu_budget_message(buf, sizeof buf, "x");
    assert_non_null(strstr(buf, "(250ms)"));
    cpu_budget_set_limit(5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_out),        cmocka_unit_test(test_zero_is_no_limit),
        cmocka_unit_test(test_check_reads_now), cmocka_unit_test(test_per_thread),
        cmocka_unit_test(test_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
