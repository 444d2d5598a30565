/*
 * check_json.h - JSON comparison for the cmocka unit tests (header-only, static).
 * Include after cmocka.h.
 */
#ifndef HIBUS_TESTS_CHECK_JSON_H
#define HIBUS_TESTS_CHECK_JSON_H

#include <jansson.h>
#include <stdlib.h>

/* Fails with both texts (keys sorted) when actual is not equal to the JSON in
 * expected. */
static void assert_json(const json_t *actual, const char *expected)
{
    json_error_t e;
    json_t *want = json_loads(expected, 0, &e);
    if (want == NULL)
        fail_msg("bad expected JSON: %s: %s", e.text, expected);
    if (!json_equal(actual, want)) {
        char *got = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS);
        char *exp = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("expected: %s\n     got: %s\n", exp, got);
        free(got);
        free(exp);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

#endif
