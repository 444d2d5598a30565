/*
 * test_writers.c - the dhis2-datavalueset and adx writers: a hand-built mapped
 * report against golden files in tests/data/writers/ (rewrite with
 * HIBUS_UPDATE_GOLDEN=1, see golden.h, and review), skipped and unmapped values
 * left out, overrides, escaping, the ADX data set rule, and an ADX round trip
 * through the adx reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "golden.h"
#include "hibus/readers.h"
#include "hibus/writers.h"

#define DATA HIBUS_TEST_DATA "/writers/"

static void set(char **field, const char *s)
{
    assert_true(report_set(field, s));
}

static struct report_value *add(struct report *r, const char *item, const char *measure,
                                const char *value, const char *comment, const char *de,
                                const char *coc)
{
    struct report_value *v = report_add(r, item, measure, value, comment, NULL);
    assert_non_null(v);
    set(&v->de_uid, de);
    set(&v->coc_uid, coc);
    return v;
}

/* A report as mapping_apply() would leave it: codes and UIDs side by side. */
static struct report *mapped_report(void)
{
    struct report *r = report_new("lmis-report");
    assert_non_null(r);
    set(&r->org_unit, "FAC-0042");
    set(&r->ou_uid, "DiszpKrYNg8");
    set(&r->data_set, "LMIS_MONTHLY");
    set(&r->data_set_uid, "Lpw6GcnTrmS");
    set(&r->period, "202401");
    set(&r->period_start, "2024-01-01");
    set(&r->period_end, "2024-01-31");
    set(&r->complete_date, "2024-02-05");

    add(r, "AMOX250", "stock_on_hand", "120", "hibus", "s46m5MS0hxu", "Prlt0C1RF0s");
    add(r, "ORS1L", "consumed", "4", NULL, "UOlfIjgN8X6", NULL);
    /* skipped under the skip policy: must not appear */
    struct report_value *v = add(r, "ACT", "consumed", "9", NULL, "Xk0Sm0c6fVw", NULL);
    v->skipped = true;
    /* unmapped (no data element): must not appear */
    add(r, "UNKNOWN", "consumed", "7", NULL, NULL, NULL);
    /* another org unit, same period */
    v = add(r, "AMOX250", "consumed", "35", NULL, "fbfJHSPpUQD", "Prlt0C1RF0s");
    set(&v->org_unit, "FAC-0043");
    set(&v->ou_uid, "Rp268JB6Ne4");
    /* another period */
    v = add(r, "AMOX250", "received", "50", NULL, "pikOziyCXbM", NULL);
    set(&v->period, "202402");
    /* the report's own org unit given explicitly: not an override */
    v = add(r, "ORS1L", "received", "0", "shipment \"late\" & <partial>", "cYeuwXTCPkU", NULL);
    set(&v->ou_uid, "DiszpKrYNg8");
    /* an attribute option combo of its own */
    v = add(r, "ORS1L", "requested", "400", NULL, "hfdmMSPBgLG", NULL);
    set(&v->aoc_uid, "HllvX50cXC0");
    /* back to the first group */
    add(r, "ORS1L", "stock_on_hand", "2.5", NULL, "Jtf34kNZhzP", "Prlt0C1RF0s");
    return r;
}

static void write_ok(const char *writer, const struct report *r, char **body,
                     const char *content_type)
{
    size_t len = 0;
    const char *ct = NULL;
    struct hibus_error err = {0};
    enum hibus_err rc = writer_write(writer, r, body, &len, &ct, &err);
    if (rc != HIBUS_OK)
        fail_msg("%s: %s: %s", writer, hibus_errname(rc), err.msg);
    assert_non_null(*body);
    assert_int_equal(strlen(*body), len);
    assert_string_equal(ct, content_type);
}

static void test_datavalueset_golden(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    char *body = NULL;
    write_ok("dhis2-datavalueset", r, &body, "application/json");
    assert_int_equal(golden_compare(DATA "mapped.datavalueset.json", body), 0);

    /* Skipped and unmapped values are absent; every value is a string. */
    json_error_t e;
    json_t *j = json_loads(body, 0, &e);
    assert_non_null(j);
    json_t *dvs = json_object_get(j, "dataValues");
    assert_int_equal(json_array_size(dvs), 7);
    for (size_t i = 0; i < json_array_size(dvs); i++)
        assert_true(json_is_string(json_object_get(json_array_get(dvs, i), "value")));
    assert_null(strstr(body, "Xk0Sm0c6fVw"));
    json_decref(j);
    free(body);
    report_free(r);
}

static void test_adx_golden(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    char *body = NULL;
    set(&r->exported, "2024-02-05T08:00:00Z");
    write_ok("adx", r, &body, "application/adx+xml");
    assert_int_equal(golden_compare(DATA "mapped.adx.xml", body), 0);
    assert_null(strstr(body, "Xk0Sm0c6fVw"));
    free(body);
    report_free(r);
}

/* Without the report's exported, exported is the current UTC time. */
static void test_adx_exported_now(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    char *body = NULL;
    write_ok("adx", r, &body, "application/adx+xml");
    const char *e = strstr(body, "exported=\"");
    assert_non_null(e);
    e += strlen("exported=\"");
    /* YYYY-MM-DDTHH:MM:SSZ */
    assert_int_equal(strcspn(e, "\""), 20);
    assert_true(e[4] == '-' && e[10] == 'T' && e[19] == 'Z');
    free(body);
    report_free(r);
}

/* What the adx writer writes, the adx reader reads back: same groups, same values,
 * escaping intact. */
static void test_adx_round_trip(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    /* A value that needs escaping (ADX wants numbers, but nothing may break). */
    add(r, "X", "consumed", "1<2 & \"3\" '4'", NULL, "Aq1Bq2Cq3Dq", NULL);
    /* The value with an attribute option combo of its own is a group of its own in
     * ADX, and comes back carrying that combo. */
    char *body = NULL;
    write_ok("adx", r, &body, "application/adx+xml");

    json_t *problems = json_array();
    struct report *back = NULL;
    enum hibus_err rc = reader_parse("adx", body, strlen(body), &back, problems);
    if (rc != HIBUS_OK) {
        char *p = json_dumps(problems, JSON_INDENT(2));
        fail_msg("the adx reader refused the writer's output: %s\n%s", p, body);
    }
    assert_string_equal(back->org_unit, "DiszpKrYNg8");
    assert_string_equal(back->period, "202401");
    assert_string_equal(back->data_set, "Lpw6GcnTrmS");
    assert_string_equal(back->complete_date, "2024-02-05");
    assert_int_equal(back->n_values, 8);
    /* Values come back group by group. */
    static const char *const expect[][5] = {
        /* item (= de), measure (= coc), value, org unit override, period override */
        {"s46m5MS0hxu", "Prlt0C1RF0s", "120", NULL, NULL},
        {"UOlfIjgN8X6", NULL, "4", NULL, NULL},
        {"cYeuwXTCPkU", NULL, "0", NULL, NULL},
        {"Jtf34kNZhzP", "Prlt0C1RF0s", "2.5", NULL, NULL},
        {"Aq1Bq2Cq3Dq", NULL, "1<2 & \"3\" '4'", NULL, NULL},
        {"fbfJHSPpUQD", "Prlt0C1RF0s", "35", "Rp268JB6Ne4", NULL},
        {"pikOziyCXbM", NULL, "50", NULL, "202402"},
        {"hfdmMSPBgLG", NULL, "400", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        const struct report_value *v = &back->values[i];
        assert_string_equal(v->item, expect[i][0]);
        if (expect[i][1] == NULL)
            assert_null(v->measure);
        else
            assert_string_equal(v->measure, expect[i][1]);
        assert_string_equal(v->value, expect[i][2]);
        if (expect[i][3] == NULL)
            assert_null(v->org_unit);
        else
            assert_string_equal(v->org_unit, expect[i][3]);
        if (expect[i][4] == NULL)
            assert_null(v->period);
        else
            assert_string_equal(v->period, expect[i][4]);
    }
    assert_null(back->attribute_option_combo);
    assert_string_equal(back->values[7].attribute_option_combo, "HllvX50cXC0");
    report_free(back);
    json_decref(problems);
    free(body);
    report_free(r);
}

static void test_adx_needs_data_set(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    free(r->data_set_uid);
    r->data_set_uid = NULL;
    char *body = (char *)0x1;
    size_t len = 77;
    const char *ct = "untouched";
    struct hibus_error err = {0};
    assert_int_equal(writer_write("adx", r, &body, &len, &ct, &err), HIBUS_E_INVALID);
    assert_int_equal(err.code, HIBUS_E_INVALID);
    assert_string_equal(err.msg, "the adx writer needs a data set: set data_set in the mapping");
    assert_ptr_equal(body, (char *)0x1);
    assert_int_equal(len, 77);
    assert_string_equal(ct, "untouched");

    /* The JSON writer simply leaves dataSet out. */
    char *json = NULL;
    write_ok("dhis2-datavalueset", r, &json, "application/json");
    assert_null(strstr(json, "\"dataSet\""));
    assert_non_null(strstr(json, "{\"dataValues\":["));
    free(json);
    report_free(r);
}

/* DHIS2 files every value under the set's period, org unit and attribute option
 * combo when the set has them (DefaultDataValueSetService): the set carries one only
 * when every value shares it; completeDate only with the set's period and org unit. */
static void test_set_level_only_when_shared(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    for (size_t i = 2; i < r->n_values; i++)
        r->values[i].skipped = true; /* the first two share everything */
    char *json = NULL;
    write_ok("dhis2-datavalueset", r, &json, "application/json");
    assert_string_equal(json, "{\"dataSet\":\"Lpw6GcnTrmS\",\"completeDate\":\"2024-02-05\","
                              "\"period\":\"202401\",\"orgUnit\":\"DiszpKrYNg8\",\"dataValues\":["
                              "{\"dataElement\":\"s46m5MS0hxu\",\"categoryOptionCombo\":"
                              "\"Prlt0C1RF0s\",\"value\":\"120\",\"comment\":\"hibus\"},"
                              "{\"dataElement\":\"UOlfIjgN8X6\",\"value\":\"4\"}]}");
    free(json);
    r->values[5].skipped = false; /* another period */
    write_ok("dhis2-datavalueset", r, &json, "application/json");
    assert_string_equal(json, "{\"dataSet\":\"Lpw6GcnTrmS\",\"orgUnit\":\"DiszpKrYNg8\","
                              "\"dataValues\":[{\"dataElement\":\"s46m5MS0hxu\","
                              "\"categoryOptionCombo\":\"Prlt0C1RF0s\",\"period\":\"202401\","
                              "\"value\":\"120\",\"comment\":\"hibus\"},{\"dataElement\":"
                              "\"UOlfIjgN8X6\",\"period\":\"202401\",\"value\":\"4\"},"
                              "{\"dataElement\":\"pikOziyCXbM\",\"period\":\"202402\","
                              "\"value\":\"50\"}]}");
    free(json);
    report_free(r);
}

static void test_errors(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    char *body = NULL;
    size_t len;
    const char *ct;
    struct hibus_error err = {0};
    assert_int_equal(writer_write("csv", r, &body, &len, &ct, &err), HIBUS_E_UNSUPPORTED);
    assert_string_equal(err.msg, "unknown writer \"csv\"");

    /* No org unit anywhere for a written value. */
    free(r->ou_uid);
    r->ou_uid = NULL;
    assert_int_equal(writer_write("dhis2-datavalueset", r, &body, &len, &ct, &err),
                     HIBUS_E_INVALID);
    assert_string_equal(err.msg, "value AMOX250/stock_on_hand has no org unit UID");
    assert_null(body);
    set(&r->ou_uid, "DiszpKrYNg8");

    /* An ADX period must be a DHIS2 id it can convert. */
    set(&r->period, "2024-13");
    assert_int_equal(writer_write("adx", r, &body, &len, &ct, &err), HIBUS_E_INVALID);
    assert_string_equal(err.msg, "period \"2024-13\" is not a DHIS2 period id");
    assert_null(body);
    report_free(r);

    assert_true(writer_known("adx"));
    assert_true(writer_known("dhis2-datavalueset"));
    assert_false(writer_known(NULL));
    assert_string_equal(WRITER_NAMES[0], "dhis2-datavalueset");
    assert_null(WRITER_NAMES[2]);
}

/* Nothing left to send: an empty dataValues array and an ADX without groups. */
/* A text data element's value (an ADX annotation the mapping made the value)
 * goes out as DHIS2's own ADX export writes it: value="0" and <annotation>; JSON
 * sends the text as the value. */
static void test_text_value(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    struct report_value *v =
        add(r, "REMARK", NULL, "fridge <broken> & fixed", NULL, "TextDe00001", NULL);
    v->is_text = true;
    v->is_number = false;
    char *body = NULL;
    write_ok("adx", r, &body, "application/adx+xml");
    assert_non_null(strstr(body, "<dataValue dataElement=\"TextDe00001\" value=\"0\">"));
    assert_non_null(strstr(body, "<annotation>fridge &lt;broken&gt; &amp; fixed</annotation>"));
    free(body);
    write_ok("dhis2-datavalueset", r, &body, "application/json");
    assert_non_null(strstr(body, "\"value\":\"fridge <broken> & fixed\""));
    free(body);
    report_free(r);
}

/* DHIS2's AdxPeriod reads any P3M as a calendar quarter: a QuarterlyNov period
 * cannot be written in ADX, and the writer says so instead of sending it. */
static void test_adx_refuses_quarterly_nov(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    set(&r->period, "2025NovQ1");
    char *body = NULL;
    size_t len;
    const char *ct;
    struct hibus_error err = {0};
    assert_int_equal(writer_write("adx", r, &body, &len, &ct, &err), HIBUS_E_INVALID);
    assert_string_equal(err.msg, "period \"2025NovQ1\" (QuarterlyNov) cannot be written in ADX");
    assert_null(body);
    write_ok("dhis2-datavalueset", r, &body, "application/json");
    assert_non_null(strstr(body, "\"period\":\"2025NovQ1\""));
    free(body);
    report_free(r);
}

static void test_all_skipped(void **state)
{
    (void)state;
    struct report *r = mapped_report();
    for (size_t i = 0; i < r->n_values; i++)
        r->values[i].skipped = true;
    char *body = NULL;
    write_ok("dhis2-datavalueset", r, &body, "application/json");
    assert_string_equal(body,
                        "{\"dataSet\":\"Lpw6GcnTrmS\",\"completeDate\":\"2024-02-05\","
                        "\"period\":\"202401\",\"orgUnit\":\"DiszpKrYNg8\",\"dataValues\":[]}");
    free(body);
    set(&r->exported, "2024-02-05T08:00:00Z");
    write_ok("adx", r, &body, "application/adx+xml");
    assert_string_equal(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<adx xmlns=\"urn:ihe:qrph:adx:2015\" "
                              "exported=\"2024-02-05T08:00:00Z\"/>\n");
    free(body);
    report_free(r);
}

static int setup(void **state)
{
    (void)state;
    reader_global_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    reader_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datavalueset_golden),
        cmocka_unit_test(test_adx_golden),
        cmocka_unit_test(test_adx_exported_now),
        cmocka_unit_test(test_adx_round_trip),
        cmocka_unit_test(test_adx_needs_data_set),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_all_skipped),
        cmocka_unit_test(test_text_value),
        cmocka_unit_test(test_set_level_only_when_shared),
        cmocka_unit_test(test_adx_refuses_quarterly_nov),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
