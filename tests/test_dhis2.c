/*
 * test_dhis2.c - import summaries in both shapes, the outcome rule, import URLs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hibus/dhis2.h"

/* DHIS2 2.40, one value rejected (FORMATS.md 1.4), answered with HTTP 409. */
static const char wrapped_warning[] =
    "{\"httpStatus\":\"Conflict\",\"httpStatusCode\":409,\"status\":\"WARNING\","
    "\"message\":\"One more conflicts encountered, please check import summary.\","
    "\"response\":{\"responseType\":\"ImportSummary\",\"status\":\"WARNING\","
    "\"importOptions\":{\"idSchemes\":{},\"dryRun\":false,\"async\":false,"
    "\"importStrategy\":\"CREATE_AND_UPDATE\"},\"description\":\"Import process completed "
    "successfully\",\"importCount\":{\"imported\":1,\"updated\":0,\"ignored\":1,\"deleted\":0},"
    "\"conflicts\":[{\"object\":\"xxxxxxxxxxx\",\"objects\":{\"dataElement\":\"xxxxxxxxxxx\"},"
    "\"value\":\"Data element not found or not accessible: `xxxxxxxxxxx`\",\"errorCode\":\"E7610\","
    "\"property\":\"dataElement\",\"indexes\":[1]}],\"rejectedIndexes\":[1],"
    "\"dataSetComplete\":\"false\"}}";

/* Before 2.38: the bare summary, HTTP 200. */
static const char bare_success[] =
    "{\"responseType\":\"ImportSummary\",\"status\":\"SUCCESS\",\"description\":\"Import process "
    "completed successfully\",\"importCount\":{\"imported\":20,\"updated\":4,\"ignored\":0,"
    "\"deleted\":0},\"dataSetComplete\":\"false\"}";

static const char wrapped_error[] =
    "{\"httpStatus\":\"Conflict\",\"httpStatusCode\":409,\"status\":\"ERROR\",\"message\":\"x\","
    "\"response\":{\"responseType\":\"ImportSummary\",\"status\":\"ERROR\",\"importCount\":"
    "{\"imported\":0,\"updated\":0,\"ignored\":3,\"deleted\":0},\"conflicts\":[{\"object\":\"a\","
    "\"value\":\"v\",\"errorCode\":\"E7612\"}]}}";

static void test_wrapped_warning(void **state)
{
    (void)state;
    struct dhis2_summary s;
    assert_int_equal(dhis2_parse_summary(wrapped_warning, strlen(wrapped_warning), &s, NULL),
                     HIBUS_OK);
    assert_true(s.wrapped);
    assert_string_equal(s.status, "WARNING");
    assert_int_equal(s.imported, 1);
    assert_int_equal(s.ignored, 1);
    assert_int_equal(json_array_size(s.conflicts), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(s.conflicts, 0), "errorCode")), "E7610");
    assert_string_equal(dhis2_outcome(409, &s), "completed_with_errors");
    json_t *j = dhis2_summary_json(&s);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "\"format\":\"webmessage\""));
    assert_non_null(strstr(text, "\"ignored\":1"));
    free(text);
    json_decref(j);
    dhis2_summary_free(&s);
}

static void test_bare_success(void **state)
{
    (void)state;
    struct dhis2_summary s;
    assert_int_equal(dhis2_parse_summary(bare_success, strlen(bare_success), &s, NULL), HIBUS_OK);
    assert_false(s.wrapped);
    assert_string_equal(s.status, "SUCCESS");
    assert_int_equal(s.imported, 20);
    assert_int_equal(s.updated, 4);
    assert_int_equal(json_array_size(s.conflicts), 0);
    assert_string_equal(dhis2_outcome(200, &s), "successful");
    /* The same summary behind a 500 is no success. */
    assert_string_equal(dhis2_outcome(500, &s), "failed");
    dhis2_summary_free(&s);
}

static void test_error_summary_fails(void **state)
{
    (void)state;
    struct dhis2_summary s;
    assert_int_equal(dhis2_parse_summary(wrapped_error, strlen(wrapped_error), &s, NULL), HIBUS_OK);
    assert_string_equal(dhis2_outcome(409, &s), "failed");
    dhis2_summary_free(&s);
    assert_string_equal(dhis2_outcome(0, NULL), "failed");
    assert_string_equal(dhis2_outcome(200, NULL), "failed");
}

static void test_not_a_summary(void **state)
{
    (void)state;
    struct dhis2_summary s;
    struct hibus_error err = {0};
    const char *unauth =
        "{\"httpStatus\":\"Unauthorized\",\"httpStatusCode\":401,\"status\":\"ERROR\","
        "\"message\":\"Account is locked\"}";
    assert_int_equal(dhis2_parse_summary(unauth, strlen(unauth), &s, &err), HIBUS_E_INVALID);
    assert_string_equal(err.msg,
                        "the answer is not an import summary (DHIS2 said: \"Account is locked\")");
    assert_int_equal(dhis2_parse_summary("<html>", 6, &s, &err), HIBUS_E_INVALID);
    assert_non_null(strstr(err.msg, "the answer is not JSON"));
    assert_int_equal(dhis2_parse_summary(NULL, 0, &s, &err), HIBUS_E_INVALID);
}

static void test_import_url(void **state)
{
    (void)state;
    struct config_route r = {.url = "http://dhis.example.org/",
                             .import_strategy = "CREATE_AND_UPDATE"};
    char *u = dhis2_import_url(&r, "dhis2-datavalueset");
    assert_string_equal(u, "http://dhis.example.org/api/dataValueSets");
    free(u);
    u = dhis2_import_url(&r, "adx");
    assert_string_equal(u, "http://dhis.example.org/api/dataValueSets?idScheme=UID");
    free(u);
    r.dry_run = true;
    r.import_strategy = "UPDATE";
    r.id_scheme = "CODE";
    r.url = "https://h/dhis";
    u = dhis2_import_url(&r, "dhis2-datavalueset");
    assert_string_equal(
        u, "https://h/dhis/api/dataValueSets?dryRun=true&importStrategy=UPDATE&idScheme=CODE");
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrapped_warning),     cmocka_unit_test(test_bare_success),
        cmocka_unit_test(test_error_summary_fails), cmocka_unit_test(test_not_a_summary),
        cmocka_unit_test(test_import_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
