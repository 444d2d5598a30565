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

/* DHIS2 2.40 re-sent an unchanged report with two zeros: SUCCESS, ignored 5, no
 * conflict, HTTP 200 (DefaultDataValueSetService sets SUCCESS unless there are
 * conflicts). Before the fix this ended completed_with_errors, or failed when
 * nothing was imported. */
static void test_ignored_without_conflict_is_success(void **state)
{
    (void)state;
    const char *resend =
        "{\"httpStatus\":\"OK\",\"httpStatusCode\":200,\"status\":\"OK\",\"message\":"
        "\"Import was successful.\",\"response\":{\"responseType\":\"ImportSummary\","
        "\"status\":\"SUCCESS\",\"description\":\"Import process completed successfully\","
        "\"importCount\":{\"imported\":0,\"updated\":0,\"ignored\":5,\"deleted\":0},"
        "\"conflicts\":[],\"rejectedIndexes\":[],\"dataSetComplete\":\"false\"}}";
    struct dhis2_summary s;
    assert_int_equal(dhis2_parse_summary(resend, strlen(resend), &s, NULL), HIBUS_OK);
    assert_string_equal(dhis2_outcome(200, &s), "successful");
    assert_int_equal(dhis2_rejected_count(&s), 0);
    json_t *j = dhis2_summary_json(&s);
    assert_int_equal(json_integer_value(json_object_get(j, "ignored_without_conflict")), 5);
    assert_string_equal(json_string_value(json_object_get(j, "description")),
                        "Import process completed successfully");
    assert_int_equal(json_array_size(json_object_get(j, "rejected_indexes")), 0);
    json_decref(j);
    dhis2_summary_free(&s);
}

/* The outcome rule over summaries of several versions: {summary, HTTP status,
 * outcome, rejected count, ignored without a conflict (-1: not said)}. */
static void test_warning_outcomes(void **state)
{
    (void)state;
    static const struct {
        const char *what, *summary;
        long http;
        const char *outcome;
        long rejected, quiet;
    } cases[] = {
        /* most of a re-sent report is unchanged: in DHIS2, so not failed */
        {"re-send with one conflict",
         "{\"status\":\"WARNING\",\"response\":{\"responseType\":\"ImportSummary\","
         "\"status\":\"WARNING\",\"importCount\":{\"imported\":0,\"updated\":0,"
         "\"ignored\":4,\"deleted\":0},\"conflicts\":[{\"object\":\"x\",\"value\":\"v\","
         "\"errorCode\":\"E7619\",\"indexes\":[3]}],\"rejectedIndexes\":[3]}}",
         409, "completed_with_errors", 1, 3},
        /* 2.39: no rejectedIndexes; the conflicts' indexes tell: both rejected. DHIS2
         * says WARNING, and hibus follows its status */
        {"every value rejected",
         "{\"status\":\"WARNING\",\"response\":{\"responseType\":\"ImportSummary\","
         "\"status\":\"WARNING\",\"importCount\":{\"imported\":0,\"updated\":0,"
         "\"ignored\":2,\"deleted\":0},\"conflicts\":[{\"object\":\"x\",\"value\":\"v\","
         "\"errorCode\":\"E7612\",\"indexes\":[0,1]}]}}",
         409, "completed_with_errors", 2, 0},
        /* legacy conflicts without indexes: nothing called failed that may be in DHIS2 */
        {"legacy conflict",
         "{\"responseType\":\"ImportSummary\",\"status\":\"WARNING\",\"importCount\":"
         "{\"imported\":0,\"updated\":0,\"ignored\":3,\"deleted\":0},\"conflicts\":"
         "[{\"object\":\"x\",\"value\":\"v\"}]}",
         200, "completed_with_errors", -1, -1},
        /* 2.37: bare summary, zeros skipped, no conflicts key at all */
        {"2.37 zeros",
         "{\"responseType\":\"ImportSummary\",\"status\":\"SUCCESS\",\"importCount\":"
         "{\"imported\":6,\"updated\":0,\"ignored\":2,\"deleted\":0}}",
         200, "successful", -1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dhis2_summary s;
        assert_int_equal(dhis2_parse_summary(cases[i].summary, strlen(cases[i].summary), &s, NULL),
                         HIBUS_OK);
        const char *got = dhis2_outcome(cases[i].http, &s);
        if (strcmp(got, cases[i].outcome) != 0)
            fail_msg("%s: %s, expected %s", cases[i].what, got, cases[i].outcome);
        assert_int_equal(dhis2_rejected_count(&s), cases[i].rejected);
        json_t *j = dhis2_summary_json(&s);
        const json_t *quiet = json_object_get(j, "ignored_without_conflict");
        assert_int_equal(quiet ? json_integer_value(quiet) : -1, cases[i].quiet);
        json_decref(j);
        dhis2_summary_free(&s);
    }
}

/* DHIS2 2.36 answers an ADX import in XML (Jackson XML of ImportSummary: counts and
 * conflict fields as attributes) whatever the client accepts. */
static void test_xml_summaries(void **state)
{
    (void)state;
    const char *bare =
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<importSummary xmlns=\"http://dhis2.org/schema/dxf/2.0\" responseType=\"ImportSummary\">"
        "<status>WARNING</status><description>Import process completed successfully</description>"
        "<importCount imported=\"2\" updated=\"1\" ignored=\"1\" deleted=\"0\"/>"
        "<conflicts><conflict object=\"XbJwlRD4F9z\" value=\"Value must be an integer\" "
        "errorCode=\"E7619\" property=\"value\"/></conflicts>"
        "<rejectedIndexes><rejectedIndex>3</rejectedIndex></rejectedIndexes>"
        "<dataSetComplete>2024-02-05</dataSetComplete></importSummary>";
    struct dhis2_summary s;
    assert_int_equal(dhis2_parse_summary(bare, strlen(bare), &s, NULL), HIBUS_OK);
    assert_false(s.wrapped);
    assert_string_equal(s.status, "WARNING");
    assert_int_equal(s.imported, 2);
    assert_int_equal(s.updated, 1);
    assert_int_equal(s.ignored, 1);
    assert_int_equal(json_array_size(s.conflicts), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(s.conflicts, 0), "errorCode")), "E7619");
    assert_int_equal(dhis2_rejected_count(&s), 1);
    assert_string_equal(s.data_set_complete, "2024-02-05");
    assert_string_equal(dhis2_outcome(200, &s), "completed_with_errors");
    dhis2_summary_free(&s);

    const char *wrapped =
        "<webMessage xmlns=\"http://dhis2.org/schema/dxf/2.0\"><httpStatus>OK</httpStatus>"
        "<httpStatusCode>200</httpStatusCode><status>OK</status><response "
        "responseType=\"ImportSummary\"><status>SUCCESS</status><importCount imported=\"0\" "
        "updated=\"0\" ignored=\"4\" deleted=\"0\"/><conflicts/></response></webMessage>";
    assert_int_equal(dhis2_parse_summary(wrapped, strlen(wrapped), &s, NULL), HIBUS_OK);
    assert_true(s.wrapped);
    assert_string_equal(dhis2_outcome(200, &s), "successful");
    dhis2_summary_free(&s);

    struct hibus_error err = {0};
    const char *msg = "<webMessage xmlns=\"http://dhis2.org/schema/dxf/2.0\"><status>ERROR</status>"
                      "<message>Not acceptable</message></webMessage>";
    assert_int_equal(dhis2_parse_summary(msg, strlen(msg), &s, &err), HIBUS_E_INVALID);
    assert_string_equal(err.msg,
                        "the answer is not an import summary (DHIS2 said: \"Not acceptable\")");
    const char *bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]>"
                       "<importSummary><importCount imported=\"1\"/></importSummary>";
    assert_int_equal(dhis2_parse_summary(bomb, strlen(bomb), &s, &err), HIBUS_E_INVALID);
    assert_int_equal(dhis2_parse_summary("<html>oops", 10, &s, &err), HIBUS_E_INVALID);
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
    assert_string_equal(err.msg, "the answer is not an import summary");
    assert_int_equal(dhis2_parse_summary("Bad Gateway", 11, &s, &err), HIBUS_E_INVALID);
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

    /* Per-kind schemes (from the mapping's id_schemes): only those that differ
     * from idScheme are sent, with DHIS2's parameter names. */
    struct config_route k = {.url = "http://d", .import_strategy = "CREATE_AND_UPDATE"};
    k.id_schemes[MAPPING_DATA_ELEMENT] = "UID";
    k.id_schemes[MAPPING_ORG_UNIT] = "CODE";
    k.id_schemes[MAPPING_COC] = "UID";
    k.id_schemes[MAPPING_DATA_SET] = "CODE";
    u = dhis2_import_url(&k, "dhis2-datavalueset");
    assert_string_equal(u, "http://d/api/dataValueSets?orgUnitIdScheme=CODE&dataSetIdScheme=CODE");
    free(u);
    u = dhis2_import_url(&k, "adx");
    assert_string_equal(
        u, "http://d/api/dataValueSets?idScheme=UID&orgUnitIdScheme=CODE&dataSetIdScheme=CODE");
    free(u);
    k.id_scheme = "CODE";
    k.id_schemes[MAPPING_DATA_ELEMENT] = k.id_schemes[MAPPING_COC] = "CODE";
    k.id_schemes[MAPPING_ORG_UNIT] = "UID";
    u = dhis2_import_url(&k, "dhis2-datavalueset");
    assert_string_equal(u, "http://d/api/dataValueSets?idScheme=CODE&orgUnitIdScheme=UID");
    free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrapped_warning),
        cmocka_unit_test(test_bare_success),
        cmocka_unit_test(test_error_summary_fails),
        cmocka_unit_test(test_not_a_summary),
        cmocka_unit_test(test_import_url),
        cmocka_unit_test(test_ignored_without_conflict_is_success),
        cmocka_unit_test(test_warning_outcomes),
        cmocka_unit_test(test_xml_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
