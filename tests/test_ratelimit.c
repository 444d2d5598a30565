/*
 * test_ratelimit.c - token buckets per client: the burst, the pace, keys apart, and a
 * changed limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hibus/ratelimit.h"

static void test_burst_then_pace(void **state)
{
    (void)state;
    struct ratelimit *r = ratelimit_new();
    long t = 5000;
    for (int i = 0; i < 3; i++) /* 3 per second: all three at once */
        assert_int_equal(ratelimit_take(r, "a", 3, 1000, t), 0);
    long wait = ratelimit_take(r, "a", 3, 1000, t);
    assert_in_range(wait, 330, 335);                         /* one comes back every 333 ms */
    assert_int_equal(ratelimit_take(r, "b", 3, 1000, t), 0); /* another client */
    assert_true(ratelimit_take(r, "a", 3, 1000, t + 300) > 0);
    assert_int_equal(ratelimit_take(r, "a", 3, 1000, t + 334), 0);
    assert_true(ratelimit_take(r, "a", 3, 1000, t + 334) > 0);
    /* a long pause refills to the burst, never beyond */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(r, "a", 3, 1000, t + 60000), 0);
    assert_true(ratelimit_take(r, "a", 3, 1000, t + 60000) > 0);
    /* a reload that changes the limit starts the bucket full */
    for (int i = 0; i < 10; i++)
        assert_int_equal(ratelimit_take(r, "a", 10, 60000, t + 60000), 0);
    assert_in_range(ratelimit_take(r, "a", 10, 60000, t + 60000), 5999, 6001);
    /* no limit */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(r, "c", 0, 0, t), 0);
    ratelimit_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_pace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
