/*
 * test_readers.c - the four readers against golden files, plus the edges that are
 * easier to state inline (numbers as text, encodings, limits).
 *
 * Golden cases live in tests/data/readers/: <reader>.<case>.<ext> is the input and
 * <reader>.<case>.expected.json the expected result: a JSON object is the report
 * (report_to_json) of a payload that must parse, a JSON array is the exact problem
 * list of one that must be refused. Rewrite them with HIBUS_UPDATE_GOLDEN=1 (see
 * golden.h) and review the diff.
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

#define DATA HIBUS_TEST_DATA "/readers/"

static const struct golden_case {
    const char *reader;
    const char *input; /* file under DATA; the expected file replaces the extension */
} cases[] = {
    {"lmis-report", "lmis-report.valid.json"},
    {"lmis-report", "lmis-report.range.json"},
    {"lmis-report", "lmis-report.truncated.json"},
    {"lmis-report", "lmis-report.wrong-types.json"},
    {"lmis-report", "lmis-report.unknown-measure.json"},
    {"lmis-report", "lmis-report.missing-facility.json"},
    {"lmis-report", "lmis-report.empty-lines.json"},
    {"lmis-report", "lmis-report.not-utf8.json"},
    {"lmis-report", "lmis-report.not-object.json"},
    {"openlmis-requisition", "openlmis-requisition.valid.json"},
    {"openlmis-requisition", "openlmis-requisition.facility-id.json"},
    {"openlmis-requisition", "openlmis-requisition.bad.json"},
    {"dhis2-json", "dhis2-json.valid.json"},
    {"dhis2-json", "dhis2-json.no-set-defaults.json"},
    {"dhis2-json", "dhis2-json.bad.json"},
    {"adx", "adx.valid.xml"},
    {"adx", "adx.xxe.xml"},
    {"adx", "adx.entity-bomb.xml"},
    {"adx", "adx.wrong-namespace.xml"},
    {"adx", "adx.bad-period.xml"},
    {"adx", "adx.malformed.xml"},
    /* The example in docs/ must stay readable. */
    {"lmis-report", "../../../docs/examples/stock-report.json"},
};

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert_non_null(s);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    assert_non_null(t);
    t[n] = '\n';
    t[n + 1] = '\0';
    return t;
}

static void expected_path(const char *input, char *out, size_t outlen)
{
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    int n;
    if (strncmp(input, "../", 3) == 0) /* files outside tests/data get theirs here */
        n = snprintf(out, outlen, DATA "docs-example.%.*s.expected.json", (int)(dot - base), base);
    else
        n = snprintf(out, outlen, DATA "%.*s.expected.json", (int)(dot - input), input);
    assert_true(n > 0 && (size_t)n < outlen);
}

/* Runs one golden case; returns 0 when it matches. */
static int run_case(const struct golden_case *c)
{
    char in[512], exp_path[512];
    snprintf(in, sizeof in, DATA "%s", c->input);
    expected_path(c->input, exp_path, sizeof exp_path);
    size_t len;
    char *body = golden_read(in, &len);
    if (body == NULL) {
        fprintf(stderr, "cannot read \"%s\"\n", in);
        return -1;
    }

    /* What kind of result the golden file expects (an update keeps the kind the
     * reader gives, so a new case can start from an empty file). */
    json_t *problems = json_array();
    struct report *r = NULL;
    enum hibus_err rc = reader_parse(c->reader, body, len, &r, problems);
    int result = 0;
    char *got;
    if (rc == HIBUS_OK) {
        assert_int_equal(json_array_size(problems), 0);
        json_t *j = report_to_json(r);
        got = dump(j);
        json_decref(j);
    } else {
        if (rc != HIBUS_E_INVALID) {
            fprintf(stderr, "%s: expected HIBUS_E_INVALID, got %s\n", c->input, hibus_errname(rc));
            result = -1;
        }
        assert_null(r);
        got = dump(problems);
    }
    if (golden_compare(exp_path, got) != 0) {
        fprintf(stderr, "  (case %s, reader %s)\n", c->input, c->reader);
        result = -1;
    }
    /* Nothing from outside the payload may leak into a result (XXE). */
    if (strstr(got, "root:") != NULL) {
        fprintf(stderr, "%s: the result contains /etc/passwd content\n", c->input);
        result = -1;
    }
    free(got);
    report_free(r);
    json_decref(problems);
    free(body);
    return result;
}

static void test_golden(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (run_case(&cases[i]) != 0)
            failed++;
    if (failed > 0)
        fail_msg("%d of %zu golden cases failed (see above)", failed,
                 sizeof cases / sizeof cases[0]);
}

/* ------------------------------------------------------------------------------------
 * Inline cases
 * ------------------------------------------------------------------------------------ */

/* Parses an lmis-report with one line {"commodity":"X","consumed":<number>} and
 * returns the value text. */
static void expect_number_text(const char *number, const char *text)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"facility\":\"F\",\"period\":\"2024-01\",\"lines\":[{\"commodity\":\"X\","
             "\"consumed\":%s}]}",
             number);
    json_t *problems = json_array();
    struct report *r = NULL;
    enum hibus_err rc = reader_parse("lmis-report", body, strlen(body), &r, problems);
    if (rc != HIBUS_OK) {
        char *p = json_dumps(problems, 0);
        fail_msg("%s: %s", number, p);
    }
    assert_int_equal(r->n_values, 1);
    if (strcmp(r->values[0].value, text) != 0)
        fail_msg("%s: expected \"%s\", got \"%s\"", number, text, r->values[0].value);
    assert_true(r->values[0].is_number);
    report_free(r);
    json_decref(problems);
}

static void test_numbers_as_text(void **state)
{
    (void)state;
    static const char *const t[][2] = {
        {"640", "640"},
        {"-5", "-5"},
        {"0", "0"},
        {"-0.0", "0"},
        {"300.0", "300"},
        {"2.50", "2.5"},
        {"0.1", "0.1"},
        {"1e3", "1000"},
        {"1e-5", "0.00001"},
        {"1.5e-7", "0.00000015"},
        {"1e15", "1000000000000000"},
        {"1e20", "100000000000000000000"},
        {"1.5e300", "1.5e+300"},
        {"123456789012345678", "123456789012345678"},
        {"0.30000000000000004", "0.3"},
        {"3.14159265358979323846", "3.14159265358979"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        expect_number_text(t[i][0], t[i][1]);
}

static enum hibus_err parse_str(const char *reader, const char *body, size_t len, json_t *problems,
                                struct report **r)
{
    return reader_parse(reader, body, len, r, problems);
}

static void test_encodings(void **state)
{
    (void)state;
    json_t *problems = json_array();
    struct report *r = (struct report *)0x1; /* untouched on failure */

    assert_int_equal(parse_str("lmis-report", "", 0, problems, &r), HIBUS_E_INVALID);
    assert_int_equal(parse_str("adx", "", 0, problems, &r), HIBUS_E_INVALID);
    assert_int_equal(parse_str("dhis2-json", NULL, 5, problems, &r), HIBUS_E_INVALID);
    static const char utf16[] = "\xff\xfe{\0}\0";
    assert_int_equal(parse_str("dhis2-json", utf16, sizeof utf16 - 1, problems, &r),
                     HIBUS_E_INVALID);
    static const char overlong[] = "{\"facility\":\"\xc0\xaf\"}";
    assert_int_equal(parse_str("lmis-report", overlong, sizeof overlong - 1, problems, &r),
                     HIBUS_E_INVALID);
    static const char latin1_xml[] =
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><adx xmlns=\"urn:ihe:qrph:adx:2015\">"
        "<group dataSet=\"D\" orgUnit=\"CAF\xc9\" period=\"2024-01-01/P1M\">"
        "<dataValue dataElement=\"E\" value=\"1\"/></group></adx>";
    assert_int_equal(parse_str("adx", latin1_xml, sizeof latin1_xml - 1, problems, &r),
                     HIBUS_E_INVALID);
    assert_ptr_equal(r, (struct report *)0x1);

    json_t *expect = json_pack(
        "[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s}]",
        "stage", "reader", "message", "the body is empty: expected an lmis-report JSON object",
        "where", "body", "stage", "reader", "message", "the body is empty: expected ADX XML",
        "where", "body", "stage", "reader", "message",
        "the body is empty: expected a DHIS2 dataValueSet JSON object", "where", "body", "stage",
        "reader", "message",
        "the body is UTF-16 or UTF-32 encoded: send a DHIS2 dataValueSet JSON object in UTF-8",
        "where", "body", "stage", "reader", "message",
        "the body is not valid UTF-8 (byte 0xC0 at line 1, column 14): send an lmis-report JSON "
        "object in UTF-8",
        "where", "line 1, column 14", "stage", "reader", "message",
        "the body is not valid UTF-8 (byte 0xC9 at line 1, column 110): send ADX XML in UTF-8",
        "where", "line 1, column 110");
    if (!json_equal(problems, expect)) {
        char *g = json_dumps(problems, JSON_INDENT(2));
        fail_msg("unexpected problems: %s", g);
    }
    json_decref(expect);

    /* A UTF-8 byte order mark is fine, for JSON and XML. */
    static const char bom_json[] = "\xef\xbb\xbf{\"facility\":\"F\",\"period\":\"2024-01\","
                                   "\"lines\":[{\"commodity\":\"\xc3\xa9\","
                                   "\"consumed\":1}]}";
    r = NULL;
    assert_int_equal(parse_str("lmis-report", bom_json, sizeof bom_json - 1, problems, &r),
                     HIBUS_OK);
    assert_string_equal(r->values[0].item, "\xc3\xa9");
    report_free(r);
    static const char bom_xml_ok[] =
        "\xef\xbb\xbf<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" orgUnit=\"O\" "
        "period=\"2024-01-01/P7D\"><dataValue dataElement=\"E\" value=\"1\"/></group></adx>";
    r = NULL;
    assert_int_equal(parse_str("adx", bom_xml_ok, sizeof bom_xml_ok - 1, problems, &r), HIBUS_OK);
    assert_string_equal(r->period, "2024W1");
    report_free(r);
    assert_int_equal(json_array_size(problems), 6);
    json_decref(problems);
}

static void test_names_and_unknown_reader(void **state)
{
    (void)state;
    size_t n = 0;
    while (READER_NAMES[n] != NULL) {
        assert_true(reader_known(READER_NAMES[n]));
        n++;
    }
    assert_int_equal(n, 4);
    assert_false(reader_known("csv"));
    assert_false(reader_known(NULL));

    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(reader_parse("csv", "{}", 2, &r, problems), HIBUS_E_UNSUPPORTED);
    assert_null(r);
    assert_int_equal(json_array_size(problems), 1);
    json_decref(problems);

    /* problems may be NULL: the verdict is the same. */
    assert_int_equal(reader_parse("lmis-report", "{}", 2, &r, NULL), HIBUS_E_INVALID);
    assert_null(r);
}

/* A payload with very many problems lists the first 100 and says there were more. */
static void test_problem_cap(void **state)
{
    (void)state;
    size_t cap = 64 + 300 * 40;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t off =
        (size_t)snprintf(body, cap, "{\"facility\":\"F\",\"period\":\"2024-01\",\"lines\":[");
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(body + off, cap - off, "%s{\"commodity\":\"C%d\",\"x\":1}",
                                i ? "," : "", i);
    off += (size_t)snprintf(body + off, cap - off, "]}");
    assert_true(off < cap);
    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(reader_parse("lmis-report", body, off, &r, problems), HIBUS_E_INVALID);
    assert_int_equal(json_array_size(problems), 101);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(problems, 100), "message")),
        "more problems were found; only the first 100 are listed");
    assert_string_equal(json_string_value(json_object_get(json_array_get(problems, 99), "where")),
                        "lines[99].x");
    json_decref(problems);
    free(body);
}

/* Problems are appended after those already in the list. */
static void test_appends(void **state)
{
    (void)state;
    json_t *problems = json_array();
    report_problem(problems, "earlier", "already there");
    struct report *r = NULL;
    assert_int_equal(reader_parse("dhis2-json", "{}", 2, &r, problems), HIBUS_E_INVALID);
    assert_int_equal(json_array_size(problems), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(problems, 1), "message")),
                        "dataValues is required");
    json_decref(problems);
}

/* Every way of bringing in a DTD is refused the same way, and nothing it names is
 * read (the parser stops at the DOCTYPE, before any declaration). */
static void test_dtd_variants(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "<!DOCTYPE adx SYSTEM \"file:///etc/passwd\"><adx xmlns=\"urn:ihe:qrph:adx:2015\"/>",
        "<!DOCTYPE adx PUBLIC \"-//X//Y\" \"http://127.0.0.1:9/x.dtd\">"
        "<adx xmlns=\"urn:ihe:qrph:adx:2015\"/>",
        "<!DOCTYPE adx [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>"
        "<adx xmlns=\"urn:ihe:qrph:adx:2015\"/>",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE adx>\n<adx xmlns=\"urn:ihe:qrph:adx:2015\"/>",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *problems = json_array();
        struct report *r = NULL;
        assert_int_equal(reader_parse("adx", docs[i], strlen(docs[i]), &r, problems),
                         HIBUS_E_INVALID);
        assert_null(r);
        char *got = json_dumps(problems, 0);
        if (json_array_size(problems) != 1 ||
            strstr(got, "DTDs and entities are not accepted") == NULL || strstr(got, "root:"))
            fail_msg("document %zu: %s", i, got);
        free(got);
        json_decref(problems);
    }
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
        cmocka_unit_test(test_golden),       cmocka_unit_test(test_numbers_as_text),
        cmocka_unit_test(test_encodings),    cmocka_unit_test(test_names_and_unknown_reader),
        cmocka_unit_test(test_problem_cap),  cmocka_unit_test(test_appends),
        cmocka_unit_test(test_dtd_variants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
