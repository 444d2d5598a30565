/*
 * test_readers.c - the five readers against golden files, plus the edges that are
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
#include <time.h>

#include <cmocka.h>

#include "golden.h"
#include "hibus/buf.h"
#include "hibus/cpubudget.h"
#include "hibus/buf.h"
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
    {"lmis-report", "lmis-report.by-reason.json"},
    {"lmis-report", "lmis-report.by-reason-bad.json"},
    {"openlmis-requisition", "openlmis-requisition.valid.json"},
    {"openlmis-requisition", "openlmis-requisition.facility-id.json"},
    {"openlmis-requisition", "openlmis-requisition.bad.json"},
    {"openlmis-requisition", "openlmis-requisition.demo.json"},
    {"openlmis-requisition", "openlmis-requisition.bad-reasons.json"},
    {"dhis2-json", "dhis2-json.valid.json"},
    {"dhis2-json", "dhis2-json.no-set-defaults.json"},
    {"dhis2-json", "dhis2-json.bad.json"},
    {"dhis2-json", "dhis2-json.aoc.json"},
    {"dhis2-json", "dhis2-json.set-wins.json"},
    {"dhis2-json", "dhis2-json.big-numbers.json"},
    {"adx", "adx.valid.xml"},
    {"adx", "adx.xxe.xml"},
    {"adx", "adx.entity-bomb.xml"},
    {"adx", "adx.wrong-namespace.xml"},
    {"adx", "adx.bad-period.xml"},
    {"adx", "adx.malformed.xml"},
    {"adx", "adx.aoc.xml"},
    {"adx", "adx.bad-aoc.xml"},
    {"dhis2-csv", "dhis2-csv.valid.csv"},
    {"dhis2-csv", "dhis2-csv.no-header.csv"},
    {"dhis2-csv", "dhis2-csv.dhis2-test-file.csv"},
    {"dhis2-csv", "dhis2-csv.bad.csv"},
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
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"-10", "-10"},
        {"7", "7"},
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
    assert_int_equal(n, 5);
    assert_true(reader_known("dhis2-csv"));
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

/* ------------------------------------------------------------------------------------
 * openlmis-requisition: losses from the reasons
 * ------------------------------------------------------------------------------------ */

/* A requisition with one line item whose stockAdjustments are adj (JSON array text) and
 * whose totalLossesAndAdjustments is total (NULL: absent), and the demo reason list of
 * openlmis-requisition src/main/resources/db/demo-data/requisition.stock_adjustment_reasons
 * .csv (requisition 6167e65c...) plus a BALANCE_ADJUSTMENT reason. Returns the losses and
 * adjustments values ("" when there is none); fails on any problem. */
#define R_TRANSFER_IN "e3fc3cf3-da18-44b0-a220-77c985202e06"
#define R_TRANSFER_OUT "c1fc3cf3-da18-44b0-a220-77c985202e06"
#define R_FACILITY_RETURN "279d55bd-42e3-438c-a63d-9c021b185dae"
#define R_DAMAGE "5b09202e-b8a7-4f77-9e0e-8156f8efc613"
#define R_EXPIRED "3e7940db-49a5-492f-a4eb-75acb981dd2b"
#define R_STOLEN "09e1d05d-f736-4834-9346-c27196a99eae"
#define R_LOST "b7e99f5b-af04-433d-9c30-d4f90c60c47b"
#define R_COLD_CHAIN "6f8d0431-6ec5-4280-9019-c6024b168b23"
#define R_CONSUMED "b5c27da7-bdda-4790-925a-9484c5dfb594"
#define R_BB_INSUFFICIENCY "f8bb41e2-ab43-4781-ae7a-7bf3b5116b82"
#define R_BALANCE "0b6ab3bc-0000-4000-8000-000000000001"

static const char REASONS[] =
    "[{\"id\":\"" R_TRANSFER_IN "\",\"name\":\"Transfer In\",\"reasonType\":\"CREDIT\","
    "\"reasonCategory\":\"TRANSFER\"},"
    "{\"id\":\"" R_TRANSFER_OUT "\",\"name\":\"Transfer Out\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"TRANSFER\"},"
    "{\"id\":\"" R_FACILITY_RETURN "\",\"name\":\"Facility return\",\"reasonType\":\"CREDIT\","
    "\"reasonCategory\":\"ADJUSTMENT\"},"
    "{\"id\":\"" R_DAMAGE "\",\"name\":\"Damage\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\"},"
    "{\"id\":\"" R_EXPIRED "\",\"name\":\"Expired\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\"},"
    "{\"id\":\"" R_STOLEN "\",\"name\":\"Stolen\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\"},"
    "{\"id\":\"" R_LOST "\",\"name\":\"Lost\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\",\"isFreeTextAllowed\":true},"
    "{\"id\":\"" R_COLD_CHAIN "\",\"name\":\"Cold chain failure\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\"},"
    "{\"id\":\"" R_CONSUMED "\",\"name\":\"Consumed\",\"reasonType\":\"DEBIT\","
    "\"reasonCategory\":\"ADJUSTMENT\",\"hidden\":true},"
    "{\"id\":\"" R_BB_INSUFFICIENCY "\",\"name\":\"Beginning Balance Insufficiency\","
    "\"reasonType\":\"DEBIT\",\"reasonCategory\":\"ADJUSTMENT\",\"hidden\":true},"
    "{\"id\":\"" R_BALANCE "\",\"name\":\"Recount\",\"reasonType\":\"BALANCE_ADJUSTMENT\","
    "\"reasonCategory\":\"PHYSICAL_INVENTORY\"}]";

static void losses_of(const struct reader_options *opts, const char *adj, const char *total,
                      char losses[32], char adjustments[32])
{
    char body[4096];
    int n = snprintf(body, sizeof body,
                     "{\"facility\":{\"code\":\"HC01\"},\"processingPeriod\":{\"startDate\":"
                     "\"2017-04-01\",\"endDate\":\"2017-04-30\"},\"requisitionLineItems\":[{"
                     "\"orderable\":{\"productCode\":\"C100\"},\"stockOnHand\":1,%s%s%s"
                     "\"stockAdjustments\":%s}],\"stockAdjustmentReasons\":%s}",
                     total ? "\"totalLossesAndAdjustments\":" : "", total ? total : "",
                     total ? "," : "", adj, REASONS);
    assert_true(n > 0 && (size_t)n < sizeof body);
    json_t *problems = json_array();
    struct report *r = NULL;
    if (reader_parse_opts("openlmis-requisition", body, (size_t)n, opts, &r, problems) !=
        HIBUS_OK) {
        char *p = json_dumps(problems, 0);
        fail_msg("%s: %s", adj, p);
    }
    losses[0] = adjustments[0] = '\0';
    for (size_t i = 0; i < r->n_values; i++) {
        if (strcmp(r->values[i].measure, "losses") == 0)
            snprintf(losses, 32, "%s", r->values[i].value);
        if (strcmp(r->values[i].measure, "adjustments") == 0)
            snprintf(adjustments, 32, "%s", r->values[i].value);
    }
    report_free(r);
    json_decref(problems);
}

#define ADJ(id, q) "{\"reasonId\":\"" id "\",\"quantity\":" #q "}"

static void expect_losses(const struct reader_options *opts, const char *adj, const char *total,
                          const char *losses, const char *adjustments)
{
    char l[32], a[32];
    losses_of(opts, adj, total, l, a);
    if (strcmp(l, losses) != 0 || strcmp(a, adjustments) != 0)
        fail_msg("%s: expected losses \"%s\" adjustments \"%s\", got \"%s\" and \"%s\"", adj,
                 losses, adjustments, l, a);
}

/* Before the fix, reasons were read only from an embedded "reason" object, so a real
 * requisition (reasonId + the top-level stockAdjustmentReasons) gave no losses and
 * adjustments = totalLossesAndAdjustments: -5 here instead of losses 20, adjustments 15. */
static void test_requisition_losses(void **state)
{
    (void)state;
    /* Demo line item 8c8026b8...: Transfer In 15, Damage 20, total -5. */
    expect_losses(NULL, "[" ADJ(R_TRANSFER_IN, 15) "," ADJ(R_DAMAGE, 20) "]", "-5", "20", "15");
    /* Demo line item ac49b686...: Transfer In 10, Transfer Out 10, Lost 2: Transfer Out is
     * TRANSFER, not a loss by default. */
    expect_losses(NULL,
                  "[" ADJ(R_TRANSFER_IN, 10) "," ADJ(R_TRANSFER_OUT, 10) "," ADJ(R_LOST, 2) "]",
                  "-2", "2", "0");
    /* Every ADJUSTMENT + DEBIT demo reason is a loss; Facility return (CREDIT) is not. */
    static const char four[] = "[" ADJ(R_EXPIRED, 1) "," ADJ(R_STOLEN, 2) "," ADJ(
        R_COLD_CHAIN, 4) "," ADJ(R_FACILITY_RETURN, 8) "]";
    expect_losses(NULL, four, NULL, "7", "8");
    /* Hidden system reasons (Consumed, Beginning Balance Insufficiency) are not losses by
     * category, only by name; BALANCE_ADJUSTMENT counts negative, as in OpenLMIS's
     * LineItemFieldsCalculator, and is never a loss. */
    expect_losses(NULL,
                  "[" ADJ(R_CONSUMED, 3) "," ADJ(R_BB_INSUFFICIENCY, 4) "," ADJ(R_BALANCE, 5) "]",
                  "-12", "0", "-12");
    static const char *const consumed[] = {"consumed", NULL};
    struct reader_options by_name = {.loss_reasons = consumed};
    expect_losses(&by_name, "[" ADJ(R_CONSUMED, 3) "," ADJ(R_DAMAGE, 4) "]", "-7", "3", "-4");
    /* Categories replace the default; case does not matter. */
    static const char *const transfer[] = {"transfer", NULL};
    struct reader_options by_cat = {.loss_categories = transfer};
    expect_losses(&by_cat,
                  "[" ADJ(R_TRANSFER_IN, 10) "," ADJ(R_TRANSFER_OUT, 6) "," ADJ(R_LOST, 2) "]", "2",
                  "6", "8");
    static const char *const none[] = {NULL};
    struct reader_options no_losses = {.loss_categories = none};
    expect_losses(&no_losses, "[" ADJ(R_DAMAGE, 4) "]", "-4", "0", "-4");
    /* No stockAdjustments (or an empty list): the total is the adjustments, no losses. */
    expect_losses(NULL, "[]", "-3", "", "-3");
}

/* A reasonId that the list lacks, and a requisition without the list. */
static void test_requisition_reason_problems(void **state)
{
    (void)state;
    static const char no_list[] =
        "{\"facility\":{\"code\":\"HC01\"},\"processingPeriod\":{\"startDate\":\"2017-04-01\","
        "\"endDate\":\"2017-04-30\"},\"requisitionLineItems\":["
        "{\"orderable\":{\"productCode\":\"C100\"},\"totalLossesAndAdjustments\":-20,"
        "\"stockAdjustments\":[" ADJ(
            R_DAMAGE,
            20) "]},"
                "{\"orderable\":{\"productCode\":\"C400\"},\"totalLossesAndAdjustments\":-30,"
                "\"stockAdjustments\":[" ADJ(R_STOLEN, 30) "]}]}";
    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(
        reader_parse("openlmis-requisition", no_list, sizeof no_list - 1, &r, problems),
        HIBUS_E_INVALID);
    /* One problem for the whole requisition, not one per adjustment. */
    assert_int_equal(json_array_size(problems), 1);
    const json_t *p = json_array_get(problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "where")), "stockAdjustmentReasons");
    assert_non_null(strstr(json_string_value(json_object_get(p, "message")),
                           "requisitionLineItems[0].stockAdjustments[0]"));
    json_decref(problems);

    /* Every entry with an embedded reason: no list needed. */
    static const char embedded[] =
        "{\"facility\":{\"code\":\"HC01\"},\"processingPeriod\":{\"startDate\":\"2017-04-01\","
        "\"endDate\":\"2017-04-30\"},\"requisitionLineItems\":["
        "{\"orderable\":{\"productCode\":\"C100\"},\"stockAdjustments\":[{\"reasonId\":\"x\","
        "\"quantity\":5,\"reason\":{\"name\":\"Damage\",\"reasonType\":\"DEBIT\","
        "\"reasonCategory\":\"ADJUSTMENT\"}}]}]}";
    problems = json_array();
    assert_int_equal(
        reader_parse("openlmis-requisition", embedded, sizeof embedded - 1, &r, problems),
        HIBUS_OK);
    assert_int_equal(r->n_values, 2);
    assert_string_equal(r->values[0].measure, "losses");
    assert_string_equal(r->values[0].value, "5");
    assert_string_equal(r->values[1].value, "0");
    report_free(r);
    json_decref(problems);
}

/* ------------------------------------------------------------------------------------
 * dhis2-json and adx
 * ------------------------------------------------------------------------------------ */

static json_t *parse_fail(const char *reader, const char *body)
{
    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(reader_parse(reader, body, strlen(body), &r, problems), HIBUS_E_INVALID);
    assert_null(r);
    return problems;
}

static struct report *parse_ok(const char *reader, const char *body)
{
    json_t *problems = json_array();
    struct report *r = NULL;
    if (reader_parse(reader, body, strlen(body), &r, problems) != HIBUS_OK) {
        char *p = json_dumps(problems, 0);
        fail_msg("%s: %s", body, p);
    }
    json_decref(problems);
    return r;
}

/* Before the fix jansson's "too big integer" refused the whole payload. */
static void test_big_numbers(void **state)
{
    (void)state;
    struct report *r =
        parse_ok("dhis2-json", "{\"period\":\"202401\",\"orgUnit\":\"O\",\"dataValues\":["
                               "{\"dataElement\":\"A\",\"value\":99999999999999999999},"
                               "{\"dataElement\":\"B\",\"value\":-99999999999999999999}]}");
    assert_string_equal(r->values[0].value, "99999999999999999999");
    assert_string_equal(r->values[1].value, "-99999999999999999999");
    assert_true(r->values[0].is_number);
    report_free(r);

    /* Another error after a rewritten number keeps the position it has in the body: the
     * same as with a number of the same length that needs no rewriting. */
    static const char *const pairs[][2] = {
        {"{\"dataValues\":[{\"value\":99999999999999999999,}]}",
         "{\"dataValues\":[{\"value\":1.000000000000000000,}]}"},
        {"{\"dataValues\":[{\"value\":-99999999999999999999},\n {\"v\":99999999999999999999 x}]}",
         "{\"dataValues\":[{\"value\":-1.000000000000000000},\n {\"v\":1.000000000000000000 x}]}"},
        {"{\"a\":\"99999999999999999999\", \"b\":99999999999999999999, \"c\":tru}",
         "{\"a\":\"99999999999999999999\", \"b\":1.000000000000000000, \"c\":tru}"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        json_t *got = parse_fail("dhis2-json", pairs[i][0]);
        json_t *want = parse_fail("dhis2-json", pairs[i][1]);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, 0), *w = json_dumps(want, 0);
            fail_msg("case %zu: got %s, want %s", i, g, w);
        }
        json_decref(got);
        json_decref(want);
    }

    /* Only dhis2-json does this: the other JSON readers keep refusing. */
    json_t *p = parse_fail("lmis-report", "{\"facility\":\"F\",\"period\":\"2024-01\",\"lines\":["
                                          "{\"commodity\":\"X\",\"consumed\":"
                                          "99999999999999999999}]}");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(p, 0), "message")),
                           "too big integer"));
    json_decref(p);
}

/* Before the fix a per-value attributeOptionCombo unlike the set's was refused. */
static void test_per_value_aoc(void **state)
{
    (void)state;
    /* A set-level combo is DHIS2's for every value (DefaultDataValueSetService):
     * a value naming another one is refused, one naming the same is fine. */
    json_t *problems = json_array();
    struct report *r = NULL;
    const char *mixed =
        "{\"period\":\"202401\",\"orgUnit\":\"O\","
        "\"attributeOptionCombo\":\"GOV\",\"dataValues\":["
        "{\"dataElement\":\"A\",\"value\":\"1\"},"
        "{\"dataElement\":\"A\",\"value\":\"2\",\"attributeOptionCombo\":\"GOV\"},"
        "{\"dataElement\":\"A\",\"value\":\"3\",\"attributeOptionCombo\":\"NGO\"}]}";
    assert_int_equal(reader_parse("dhis2-json", mixed, strlen(mixed), &r, problems),
                     HIBUS_E_INVALID);
    assert_int_equal(json_array_size(problems), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(problems, 0), "where")),
                        "dataValues[2].attributeOptionCombo");
    json_decref(problems);

    /* No set-level combo: each value keeps its own. */
    r = parse_ok("dhis2-json", "{\"period\":\"202401\",\"orgUnit\":\"O\",\"dataValues\":["
                               "{\"dataElement\":\"A\",\"value\":\"1\"},"
                               "{\"dataElement\":\"A\",\"value\":\"2\","
                               "\"attributeOptionCombo\":\"GOV\"},"
                               "{\"dataElement\":\"A\",\"value\":\"3\","
                               "\"attributeOptionCombo\":\"NGO\"}]}");
    assert_null(r->attribute_option_combo);
    assert_null(r->values[0].attribute_option_combo);
    assert_string_equal(r->values[1].attribute_option_combo, "GOV");
    assert_string_equal(r->values[2].attribute_option_combo, "NGO");
    report_free(r);

    /* ADX: a later group's combo goes on its values (exploded or legacy form). */
    r = parse_ok("adx", "<adx xmlns=\"urn:ihe:qrph:adx:2015\">"
                        "<group dataSet=\"D\" orgUnit=\"O\" period=\"2024-01-01/P1M\" "
                        "attributeOptionCombo=\"GOV\"><dataValue dataElement=\"E\" value=\"1\"/>"
                        "</group><group dataSet=\"D\" orgUnit=\"O\" period=\"2024-01-01/P1M\" "
                        "FUNDER=\"NGO\"><dataValue dataElement=\"E\" value=\"2\"/></group></adx>");
    assert_string_equal(r->attribute_option_combo, "GOV");
    assert_null(r->values[0].attribute_option_combo);
    assert_string_equal(r->values[1].attribute_option_combo, "FUNDER=NGO");
    report_free(r);
}

/* A v2 requisition names its processing period by reference only
 * (openlmis-requisition requisitionV2.json: referenceObjectDto): the id is kept for
 * the mapping's periods: table. */
static void test_requisition_v2_period_reference(void **state)
{
    (void)state;
    struct report *r = parse_ok(
        "openlmis-requisition",
        "{\"id\":\"6167e65c-6f56-4aeb-bff5-fdfe84e01a21\",\"facility\":{\"id\":"
        "\"e6799d64-d10d-4011-b8c2-0e4d4a3f65ce\",\"href\":\"https://o/api/facilities/e6\"},"
        "\"processingPeriod\":{\"id\":\"516ac930-0d28-49f5-a178-64764e22b236\",\"href\":"
        "\"https://o/api/processingPeriods/51\"},\"requisitionLineItems\":[{\"orderable\":"
        "{\"id\":\"d602d0c6-4052-456c-8ccd-61b4ad77bece\",\"versionNumber\":1},"
        "\"beginningBalance\":5,\"stockOnHand\":5}]}");
    assert_null(r->period);
    assert_null(r->period_start);
    assert_string_equal(r->source_period, "516ac930-0d28-49f5-a178-64764e22b236");
    assert_string_equal(r->org_unit, "e6799d64-d10d-4011-b8c2-0e4d4a3f65ce");
    report_free(r);
}

static void append(struct buf *b, const char *s)
{
    assert_true(buf_append(b, s, strlen(s)));
}

/* libxml2 checks each attribute of an element against all the ones before it, so
 * 200,000 attributes on one element (2.3 MB) took over ten minutes: the work is bounded
 * before the parse (attributes per element, depth, elements), each with its line. */
static void test_adx_bounds(void **state)
{
    (void)state;
    struct buf b = {0};
    append(&b, "<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" orgUnit=\"O\" "
               "period=\"2024-01-01/P1M\">\n<dataValue dataElement=\"E\" value=\"1\"");
    for (int i = 0; i < 200000; i++) {
        char a[32];
        snprintf(a, sizeof a, " a%d=\"\"", i);
        append(&b, a);
    }
    append(&b, "/></group></adx>");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(reader_parse("adx", b.s, b.len, &r, problems), HIBUS_E_INVALID);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char *got = json_dumps(problems, 0);
    if (json_array_size(problems) != 1 || strstr(got, "more than 64 attributes") == NULL ||
        strstr(got, "\"line 2") == NULL)
        fail_msg("%s", got);
    /* Generous for a sanitizer build on a busy machine; unbounded it ran for minutes. */
    if (secs > 5.0)
        fail_msg("refusing 200,000 attributes took %.1f s", secs);
    free(got);
    json_decref(problems);
    buf_free(&b);

    /* nesting deeper than ADX ever needs */
    b = (struct buf){0};
    append(&b, "<adx xmlns=\"urn:ihe:qrph:adx:2015\">");
    for (int i = 0; i < 100; i++)
        append(&b, "<x>");
    json_t *p = json_array();
    r = NULL;
    assert_int_equal(reader_parse("adx", b.s, b.len, &r, p), HIBUS_E_INVALID);
    got = json_dumps(p, 0);
    if (strstr(got, "nested deeper than 32") == NULL)
        fail_msg("%s", got);
    free(got);
    json_decref(p);
    buf_free(&b);

    /* quoted '>' and '=' and comments, CDATA and processing instructions do not count */
    r = parse_ok("adx",
                 "<?xml version=\"1.0\"?><!-- a=b <x> --><adx xmlns=\"urn:ihe:qrph:adx:2015\">"
                 "<group dataSet=\"D\" orgUnit=\"O\" period=\"2024-01-01/P1M\">"
                 "<dataValue dataElement=\"E\" value=\"1\"><annotation><![CDATA[<<a=1>>]]>"
                 "</annotation></dataValue><?pi x=y?></group></adx>");
    report_free(r);
}

/* Each data value costs memory all along the pipeline (a 10 MiB CSV of 400,000 rows
 * took 1 GB in hibus map): past limits.max_values the payload is refused with one
 * problem, whatever the reader. */
static void test_max_values(void **state)
{
    (void)state;
    const struct reader_options opts = {.max_values = 3};
    static const char *const bodies[][2] = {
        {"dhis2-csv", "A,202401,B,C,,1\nA,202401,B,C,,2\nA,202401,B,C,,3\nA,202401,B,C,,4\n"
                      "A,202401,B,C,,5\n"},
        {"dhis2-json", "{\"period\":\"202401\",\"orgUnit\":\"O\",\"dataValues\":["
                       "{\"dataElement\":\"A\",\"value\":\"1\"},{\"dataElement\":\"B\",\"value\":"
                       "\"2\"},{\"dataElement\":\"C\",\"value\":\"3\"},{\"dataElement\":\"D\","
                       "\"value\":\"4\"}]}"},
        {"adx", "<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" orgUnit=\"O\" "
                "period=\"2024-01-01/P1M\"><dataValue dataElement=\"A\" value=\"1\"/><dataValue "
                "dataElement=\"B\" value=\"2\"/><dataValue dataElement=\"C\" value=\"3\"/>"
                "<dataValue dataElement=\"D\" value=\"4\"/></group></adx>"},
        {"lmis-report", "{\"facility\":\"F\",\"period\":\"2024-01\",\"lines\":[{\"commodity\":"
                        "\"A\",\"stock_on_hand\":1,\"consumed\":2,\"received\":3,\"losses\":4}]}"},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        json_t *problems = json_array();
        struct report *r = NULL;
        enum hibus_err rc = reader_parse_opts(bodies[i][0], bodies[i][1], strlen(bodies[i][1]),
                                              &opts, &r, problems);
        char *got = json_dumps(problems, 0);
        if (rc != HIBUS_E_INVALID || json_array_size(problems) != 1 ||
            strstr(got, "more than 3 data values in one payload") == NULL)
            fail_msg("%s: rc %d, %s", bodies[i][0], (int)rc, got);
        free(got);
        json_decref(problems);
        report_free(r);
    }
    /* at the limit: fine */
    const struct reader_options four = {.max_values = 4};
    json_t *problems = json_array();
    struct report *r = NULL;
    assert_int_equal(
        reader_parse_opts("dhis2-json", bodies[1][1], strlen(bodies[1][1]), &four, &r, problems),
        HIBUS_OK);
    assert_int_equal(r->n_values, 4);
    report_free(r);
    json_decref(problems);
}

/* limits.request_cpu: a payload whose reading takes more than the budget is refused
 * with one problem that says so, whatever the reader; libxml2's parse is stopped at
 * the next element. Without a budget the same bodies are read. */
static void appendf(struct buf *b, const char *fmt, ...) HIBUS_PRINTF(2, 3);
static void appendf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof tmp);
    assert_true(buf_append(b, tmp, (size_t)n));
}

static void test_request_cpu(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct buf b[5] = {0};
    const char *names[5] = {"dhis2-csv", "dhis2-json", "adx", "lmis-report",
                            "openlmis-requisition"};
    appendf(&b[1], "{\"period\":\"202401\",\"orgUnit\":\"O\",\"dataValues\":[");
    appendf(&b[2], "<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" orgUnit=\"O\" "
                   "period=\"2024-01-01/P1M\">");
    appendf(&b[3], "{\"facility\":\"F\",\"period\":\"2024-01\",\"lines\":[");
    for (int i = 0; i < N; i++) {
        appendf(&b[0], "A%d,202401,B,C,,%d\n", i, i);
        appendf(&b[1], "%s{\"dataElement\":\"A%d\",\"value\":\"%d\"}", i ? "," : "", i, i);
        appendf(&b[2], "<dataValue dataElement=\"A%d\" value=\"%d\"/>", i, i);
        if (i < N / 7)
            appendf(&b[3],
                    "%s{\"commodity\":\"C%d\",\"stock_on_hand\":1,\"consumed\":2,"
                    "\"received\":3,\"losses\":4,\"adjustments\":0,\"stockout_days\":0,"
                    "\"opening_balance\":1}",
                    i ? "," : "", i);
    }
    appendf(&b[1], "]}");
    appendf(&b[2], "</group></adx>");
    appendf(&b[3], "]}");
    /* An OpenLMIS requisition: the sample, its line item repeated. */
    size_t req_len = 0;
    char *req = golden_read(DATA "openlmis-requisition.valid.json", &req_len);
    assert_non_null(req);
    json_t *doc = json_loadb(req, req_len, 0, NULL);
    assert_non_null(doc);
    json_t *items = json_object_get(doc, "requisitionLineItems");
    json_t *one = json_array_get(items, 0);
    for (int i = 0; i < N / 8; i++) {
        json_t *c = json_deep_copy(one);
        char code[32];
        snprintf(code, sizeof code, "P%d", i);
        json_t *o = json_object_get(c, "orderable");
        json_object_set_new(o, "id", json_string(code));
        json_object_set_new(o, "productCode", json_string(code));
        json_array_append_new(items, c);
    }
    char *s = json_dumps(doc, JSON_COMPACT);
    assert_true(buf_append(&b[4], s, strlen(s)));
    free(s);
    free(req);
    json_decref(doc);

    for (size_t i = 0; i < 5; i++) {
        assert_non_null(b[i].s);
        json_t *problems = json_array();
        struct report *r = NULL;
        cpu_budget_set_limit(1);
        cpu_budget_begin();
        enum hibus_err rc = reader_parse(names[i], b[i].s, b[i].len, &r, problems);
        cpu_budget_end();
        char *got = json_dumps(problems, 0);
        if (rc != HIBUS_E_INVALID || json_array_size(problems) != 1 ||
            strstr(got, "reading the payload took more than limits.request_cpu (1ms)") == NULL)
            fail_msg("%s: rc %d, %s", names[i], (int)rc, got);
        free(got);
        json_decref(problems);
        report_free(r);

        /* no budget open: read in full */
        problems = json_array();
        rc = reader_parse(names[i], b[i].s, b[i].len, &r, problems);
        if (rc != HIBUS_OK) {
            got = json_dumps(problems, 0);
            fail_msg("%s without a budget: rc %d, %s", names[i], (int)rc, got);
        }
        assert_true(r->n_values >= N / 8);
        json_decref(problems);
        report_free(r);
        buf_free(&b[i]);
    }
    cpu_budget_set_limit(5000);
}

/* Before the fix the annotation became the value's comment. */
static void test_adx_annotation(void **state)
{
    (void)state;
    struct report *r =
        parse_ok("adx", "<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" orgUnit=\"O\" "
                        "period=\"2024-01-01/P1M\"><dataValue dataElement=\"REMARK\" value=\"0\">"
                        "<annotation>fridge &amp; generator</annotation></dataValue>"
                        "</group></adx>");
    assert_string_equal(r->values[0].value, "0");
    assert_null(r->values[0].comment);
    assert_string_equal(r->values[0].annotation, "fridge & generator");
    report_free(r);

    /* DHIS2 requires the value attribute even beside an annotation. */
    json_t *p = parse_fail("adx", "<adx xmlns=\"urn:ihe:qrph:adx:2015\"><group dataSet=\"D\" "
                                  "orgUnit=\"O\" period=\"2024-01-01/P1M\"><dataValue "
                                  "dataElement=\"REMARK\"><annotation>x</annotation></dataValue>"
                                  "</group></adx>");
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "where")),
                        "group[1]/dataValue[1]@value");
    json_decref(p);
}

/* Every reader stores the canonical period id, whatever spelling DHIS2 accepted. Needs
 * period_parse to take 2024W01, 2024-01 and 2024-01-15 (src/period.c). */
static void test_period_spellings(void **state)
{
    (void)state;
    struct report *r =
        parse_ok("dhis2-json", "{\"period\":\"2024W01\",\"orgUnit\":\"O\",\"dataValues\":["
                               "{\"dataElement\":\"A\",\"value\":\"1\"},"
                               "{\"dataElement\":\"A\",\"value\":\"2\",\"period\":\"2024W1\"}]}");
    assert_string_equal(r->period, "2024W1");
    assert_null(r->values[1].period); /* the same period as the set's, spelt otherwise */
    report_free(r);
    r = parse_ok("dhis2-json", "{\"orgUnit\":\"O\",\"dataValues\":["
                               "{\"dataElement\":\"A\",\"value\":\"1\",\"period\":\"2024W01\"},"
                               "{\"dataElement\":\"A\",\"value\":\"3\",\"period\":\"2024W02\"}]}");
    assert_string_equal(r->period, "2024W1");
    assert_null(r->values[0].period);
    assert_string_equal(r->values[1].period, "2024W2");
    report_free(r);

    r = parse_ok("dhis2-json", "{\"orgUnit\":\"O\",\"dataValues\":["
                               "{\"dataElement\":\"A\",\"value\":\"1\",\"period\":\"2024-01\"},"
                               "{\"dataElement\":\"A\",\"value\":\"2\","
                               "\"period\":\"2024-01-15\"}]}");
    assert_string_equal(r->period, "202401");
    assert_string_equal(r->values[1].period, "20240115");
    report_free(r);

    r = parse_ok("dhis2-csv", "DE,2024-01,O,,,1\nDE,202401,O,,,2\nDE,2024W01,O,,,3\n");
    assert_string_equal(r->period, "202401");
    assert_null(r->values[1].period);
    assert_string_equal(r->values[2].period, "2024W1");
    report_free(r);
}

/* ------------------------------------------------------------------------------------
 * dhis2-csv
 * ------------------------------------------------------------------------------------ */

static void test_csv_edges(void **state)
{
    (void)state;
    /* No final line break; a lone CR ends a row too; blanks around unquoted cells go. */
    struct report *r = parse_ok("dhis2-csv", "DE , 202401 ,O,,, 1 \rDE,202401,O,C,,\"  2 \"");
    assert_int_equal(r->n_values, 2);
    assert_string_equal(r->values[0].item, "DE");
    assert_string_equal(r->values[0].value, "1");
    assert_string_equal(r->values[1].value, "  2 "); /* quoted: kept as written */
    assert_string_equal(r->values[1].measure, "C");
    assert_string_equal(r->values[1].where, "row 2");
    report_free(r);

    /* A header (any case), then nothing: no data. */
    json_t *p = parse_fail("dhis2-csv", "DataElement,Period,OrgUnit,COC,AOC,Value\r\n\r\n");
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "message")),
                        "the CSV has no data row");
    json_decref(p);
    p = parse_fail("dhis2-csv", "\xef\xbb\xbf");
    assert_int_equal(json_array_size(p), 1);
    json_decref(p);

    /* A NUL byte is refused where it is. */
    static const char nul[] = "DE,202401,O,,,1\nDE,202401,O,,,\0\n";
    json_t *problems = json_array();
    assert_int_equal(reader_parse("dhis2-csv", nul, sizeof nul - 1, &r, problems), HIBUS_E_INVALID);
    assert_string_equal(json_string_value(json_object_get(json_array_get(problems, 0), "where")),
                        "line 2, column 15");
    json_decref(problems);

    /* Row numbers are the rows a spreadsheet shows: a line break inside quotes does not
     * start a row, a blank line is a row. */
    p = parse_fail("dhis2-csv", "DE,202401,O,,,\"1\n2\"\n\nDE,202401,O,,,\n");
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "where")),
                        "row 3, column value");
    json_decref(p);
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
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_numbers_as_text),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_names_and_unknown_reader),
        cmocka_unit_test(test_problem_cap),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_dtd_variants),
        cmocka_unit_test(test_adx_bounds),
        cmocka_unit_test(test_max_values),
        cmocka_unit_test(test_request_cpu),
        cmocka_unit_test(test_requisition_losses),
        cmocka_unit_test(test_requisition_reason_problems),
        cmocka_unit_test(test_big_numbers),
        cmocka_unit_test(test_per_value_aoc),
        cmocka_unit_test(test_requisition_v2_period_reference),
        cmocka_unit_test(test_adx_annotation),
        cmocka_unit_test(test_csv_edges),
        cmocka_unit_test(test_period_spellings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
