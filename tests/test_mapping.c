/*
 * test_mapping.c - mapping_sort (order, duplicates), the lookups (including a
 * NULL measure), and mapping_apply: org units, items, data set and AOC, the
 * reject and skip policies with their exact problem objects, the "nothing left"
 * case, and period conversion to the mapping's period type.
 *
 * Mappings are built by hand (strdup'd strings, as config_load leaves them) so
 * each test shows the table it runs against; they are freed with mapping_free,
 * so LeakSanitizer checks that too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check_json.h"

#include "hibus/mapping.h"

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */
/* ------------------------------------------------------------------ */

static char *dup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *c = strdup(s);
    assert_non_null(c);
    return c;
}

static struct mapping *new_mapping(const char *name)
{
    struct mapping *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->name = dup(name);
    m->org_units = calloc(16, sizeof *m->org_units);
    m->items = calloc(16, sizeof *m->items);
    assert_non_null(m->org_units);
    assert_non_null(m->items);
    return m;
}

static void add_ou(struct mapping *m, const char *code, const char *uid)
{
    assert_true(m->n_org_units < 16);
    m->org_units[m->n_org_units++] = (struct mapping_code){.code = dup(code), .uid = dup(uid)};
}

static void add_item(struct mapping *m, const char *item, const char *measure, const char *de,
                     const char *coc)
{
    assert_true(m->n_items < 16);
    m->items[m->n_items++] = (struct mapping_item){
        .item = dup(item), .measure = dup(measure), .de_uid = dup(de), .coc_uid = dup(coc)};
}

/* Adds a code -> UID row to one of the optional tables (data_sets, aocs). */
static void add_code(struct mapping_code **t, size_t *n, const char *code, const char *uid)
{
    *t = realloc(*t, (*n + 1) * sizeof **t);
    assert_non_null(*t);
    (*t)[(*n)++] = (struct mapping_code){.code = dup(code), .uid = dup(uid)};
}

/* The "national" mapping most tests use: two facilities, AMOX250 with three
 * measures, ORS without a measure (default COC), monthly, a data set. Rows are
 * added out of order on purpose. */
static struct mapping *national(void)
{
    struct mapping *m = new_mapping("national");
    m->data_set_uid = dup("Lpw6GcnTrmS");
    m->has_period_type = true;
    m->period_type = PERIOD_MONTHLY;
    add_ou(m, "FAC-0043", "ImspTQPwCqd");
    add_ou(m, "FAC-0042", "DiszpKrYNg8");
    add_item(m, "AMOX250", "stock_on_hand", "s46m5MS0hxu", "psbwp3CQEhs");
    add_item(m, "ORS", NULL, "UOlfIjgN8X6", NULL);
    add_item(m, "AMOX250", "consumed", "s46m5MS0hxu", "Prlt0C1RF0s");
    add_item(m, "AMOX250", "opening_balance", "s46m5MS0hxu", "hEFKSsPV5et");
    const char *dup_code = NULL;
    assert_true(mapping_sort(m, &dup_code));
    assert_null(dup_code);
    return m;
}

static struct report *new_report(const char *org_unit, const char *period)
{
    struct report *r = report_new("lmis-report");
    assert_non_null(r);
    assert_true(report_set(&r->org_unit, org_unit));
    assert_true(report_set(&r->period, period));
    return r;
}

static struct report_value *add(struct report *r, const char *item, const char *measure,
                                const char *value, const char *where)
{
    struct report_value *v = report_add(r, item, measure, value, NULL, where);
    assert_non_null(v);
    return v;
}

/* A call to mapping_apply with fresh problem and skipped arrays. */
struct run {
    json_t *problems;
    json_t *skipped;
    enum hibus_err rc;
};

static struct run apply(const struct mapping *m, struct report *r, enum mapping_policy policy)
{
    struct run run = {json_array(), json_array(), HIBUS_OK};
    assert_non_null(run.problems);
    assert_non_null(run.skipped);
    run.rc = mapping_apply(m, r, policy, run.problems, run.skipped);
    return run;
}

static void run_free(struct run *run)
{
    json_decref(run->problems);
    json_decref(run->skipped);
}

/* ------------------------------------------------------------------ */
/* mapping_sort and lookups                                            */
/* ------------------------------------------------------------------ */

static void test_sort_orders_tables(void **state)
{
    (void)state;
    struct mapping *m = national();
    assert_string_equal(m->org_units[0].code, "FAC-0042");
    assert_string_equal(m->org_units[1].code, "FAC-0043");
    assert_string_equal(m->items[0].measure, "consumed");
    assert_string_equal(m->items[1].measure, "opening_balance");
    assert_string_equal(m->items[2].measure, "stock_on_hand");
    assert_string_equal(m->items[3].item, "ORS");
    mapping_free(m);
}

static void test_sort_null_measure_first(void **state)
{
    (void)state;
    struct mapping *m = new_mapping("x");
    add_item(m, "X", "b", "de2", NULL);
    add_item(m, "X", NULL, "de0", NULL);
    add_item(m, "X", "a", "de1", NULL);
    assert_true(mapping_sort(m, NULL));
    assert_null(m->items[0].measure);
    assert_string_equal(m->items[1].measure, "a");
    assert_string_equal(m->items[2].measure, "b");
    assert_string_equal(mapping_item(m, "X", NULL)->de_uid, "de0");
    assert_string_equal(mapping_item(m, "X", "a")->de_uid, "de1");
    assert_string_equal(mapping_item(m, "X", "b")->de_uid, "de2");
    mapping_free(m);
}

static void test_sort_duplicate_org_unit(void **state)
{
    (void)state;
    struct mapping *m = new_mapping("x");
    add_ou(m, "FAC-2", "uidAAAAAAA2");
    add_ou(m, "FAC-1", "uidAAAAAAA1");
    add_ou(m, "FAC-2", "uidAAAAAAA3");
    const char *dup_code = NULL;
    assert_false(mapping_sort(m, &dup_code));
    assert_non_null(dup_code);
    assert_string_equal(dup_code, "FAC-2");
    mapping_free(m);
}

static void test_sort_duplicate_item(void **state)
{
    (void)state;
    struct mapping *m = new_mapping("x");
    add_item(m, "AMOX250", "consumed", "de1", NULL);
    add_item(m, "ORS", "consumed", "de2", NULL);
    add_item(m, "AMOX250", "consumed", "de3", "coc");
    const char *dup_code = NULL;
    assert_false(mapping_sort(m, &dup_code));
    assert_string_equal(dup_code, "AMOX250");
    mapping_free(m);
}

static void test_sort_duplicate_null_measure(void **state)
{
    (void)state;
    struct mapping *m = new_mapping("x");
    add_item(m, "ORS", NULL, "de1", NULL);
    add_item(m, "ORS", "consumed", "de2", NULL);
    add_item(m, "ORS", NULL, "de3", NULL);
    const char *dup_code = NULL;
    assert_false(mapping_sort(m, &dup_code));
    assert_string_equal(dup_code, "ORS");
    mapping_free(m);
}

static void test_sort_same_item_other_measure_is_no_duplicate(void **state)
{
    (void)state;
    struct mapping *m = new_mapping("x");
    add_item(m, "ORS", NULL, "de1", NULL);
    add_item(m, "ORS", "consumed", "de2", NULL);
    add_ou(m, "FAC-1", "u1");
    const char *dup_code = "untouched";
    assert_true(mapping_sort(m, &dup_code));
    assert_string_equal(dup_code, "untouched");
    mapping_free(m);
}

static void test_sort_empty(void **state)
{
    (void)state;
    struct mapping m = {.name = (char *)"empty"};
    assert_true(mapping_sort(&m, NULL));
    assert_null(mapping_org_unit(&m, "FAC-1"));
    assert_null(mapping_item(&m, "X", NULL));
    mapping_free(NULL); /* a no-op */
}

static void test_lookups(void **state)
{
    (void)state;
    struct mapping *m = national();
    assert_string_equal(mapping_org_unit(m, "FAC-0042"), "DiszpKrYNg8");
    assert_string_equal(mapping_org_unit(m, "FAC-0043"), "ImspTQPwCqd");
    assert_null(mapping_org_unit(m, "FAC-9"));
    assert_null(mapping_org_unit(m, NULL));
    assert_null(mapping_org_unit(m, "fac-0042")); /* codes are case-sensitive */

    const struct mapping_item *it = mapping_item(m, "AMOX250", "consumed");
    assert_non_null(it);
    assert_string_equal(it->de_uid, "s46m5MS0hxu");
    assert_string_equal(it->coc_uid, "Prlt0C1RF0s");
    it = mapping_item(m, "ORS", NULL);
    assert_non_null(it);
    assert_string_equal(it->de_uid, "UOlfIjgN8X6");
    assert_null(it->coc_uid);
    assert_null(mapping_item(m, "ORS", "consumed"));
    assert_null(mapping_item(m, "AMOX250", NULL));
    assert_null(mapping_item(m, "AMOX250", "losses"));
    assert_null(mapping_item(m, "ZINC", "consumed"));
    assert_null(mapping_item(m, NULL, "consumed"));
    mapping_free(m);
}

/* ------------------------------------------------------------------ */
/* mapping_apply: codes and policies                                   */
/* ------------------------------------------------------------------ */

static void test_apply_all_mapped(void **state)
{
    (void)state;
    struct mapping *m = national();
    m->aoc_uid = dup("HllvX50cXC0");
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "opening_balance", "1200", "lines[0].opening_balance");
    add(r, "AMOX250", "consumed", "640", "lines[0].consumed");
    add(r, "ORS", NULL, "35", "lines[1]");
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_int_equal(json_array_size(run.problems), 0);
    assert_int_equal(json_array_size(run.skipped), 0);
    assert_string_equal(r->ou_uid, "DiszpKrYNg8");
    assert_string_equal(r->data_set_uid, "Lpw6GcnTrmS");
    assert_string_equal(r->aoc_uid, "HllvX50cXC0");
    assert_string_equal(r->period, "202610");
    assert_string_equal(r->values[0].de_uid, "s46m5MS0hxu");
    assert_string_equal(r->values[0].coc_uid, "hEFKSsPV5et");
    assert_string_equal(r->values[1].coc_uid, "Prlt0C1RF0s");
    assert_string_equal(r->values[2].de_uid, "UOlfIjgN8X6");
    assert_null(r->values[2].coc_uid); /* the default COC */
    for (size_t i = 0; i < r->n_values; i++) {
        assert_false(r->values[i].skipped);
        assert_null(r->values[i].ou_uid); /* the report's */
    }
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_no_data_set_no_aoc(void **state)
{
    (void)state;
    struct mapping *m = national();
    free(m->data_set_uid);
    m->data_set_uid = NULL;
    struct report *r = new_report("FAC-0043", "202610");
    assert_true(report_set(&r->aoc_uid, "stale"));
    add(r, "ORS", NULL, "35", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_null(r->data_set_uid);
    assert_null(r->aoc_uid);
    assert_string_equal(r->ou_uid, "ImspTQPwCqd");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* Unmapped items for the policy tests: AMOX250/losses twice, ZINC/consumed
 * once, ORS with a measure the mapping does not have. */
static struct report *report_with_unmapped(void)
{
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "opening_balance", "1200", "lines[0].opening_balance");
    add(r, "AMOX250", "losses", "10", "lines[0].losses");
    add(r, "ZINC", "consumed", "4", "lines[1].consumed");
    add(r, "ZINC", "received", "5", "lines[1].received");
    add(r, "AMOX250", "losses", "3", "lines[2].losses");
    add(r, "ORS", "consumed", "9", NULL);
    return r;
}

static void test_apply_reject_lists_each_code_once(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = report_with_unmapped();
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(
        run.problems,
        "[{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"AMOX250\","
        "\"measure\":\"losses\",\"where\":\"lines[0].losses\","
        "\"message\":\"item \\\"AMOX250\\\" with measure \\\"losses\\\" has no data element "
        "in mapping \\\"national\\\"; add it to mappings/national.yaml or set unmapped: "
        "skip\"},"
        /* an item the mapping does not know at all: one problem, no measure */
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"ZINC\","
        "\"where\":\"lines[1].consumed\","
        "\"message\":\"item \\\"ZINC\\\" is not in mapping \\\"national\\\"; add it to "
        "mappings/national.yaml or set unmapped: skip\"},"
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"ORS\","
        "\"measure\":\"consumed\","
        "\"message\":\"item \\\"ORS\\\" with measure \\\"consumed\\\" has no data element "
        "in mapping \\\"national\\\"; add it to mappings/national.yaml or set unmapped: "
        "skip\"}]");
    assert_int_equal(json_array_size(run.skipped), 0);
    for (size_t i = 0; i < r->n_values; i++)
        assert_false(r->values[i].skipped);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_reject_names_file(void **state)
{
    (void)state;
    struct mapping *m = national();
    m->file = dup("/etc/hibus/mappings/national.yaml");
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "ORS", "losses", "1", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_int_equal(json_array_size(run.problems), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(run.problems, 0), "message")),
        "item \"ORS\" with measure \"losses\" has no data element in mapping "
        "\"national\"; add it to /etc/hibus/mappings/national.yaml or set "
        "unmapped: skip");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* Losses by reason (lmis-report losses_by_reason): the measure "losses:REASON" is a
 * key like any other, here to a data element of its own; a reason without a row is an
 * unmapped measure of a known item, named with its measure. */
static void test_apply_by_reason_measures(void **state)
{
    (void)state;
    struct mapping *m = national();
    assert_true(m->n_items + 1 <= 16);
    add_item(m, "AMOX250", "losses:Expired", "DeAmoxLoss1", "CocExpired1");
    assert_true(mapping_sort(m, NULL));
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "consumed", "5", "lines[0].consumed");
    add(r, "AMOX250", "losses:Expired", "4", "lines[0].losses_by_reason.Expired");
    add(r, "AMOX250", "losses:Stolen", "1", "lines[0].losses_by_reason.Stolen");
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems,
                "[{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"AMOX250\","
                "\"measure\":\"losses:Stolen\",\"where\":\"lines[0].losses_by_reason.Stolen\","
                "\"message\":\"item \\\"AMOX250\\\" with measure \\\"losses:Stolen\\\" has no "
                "data element in mapping \\\"national\\\"; add it to mappings/national.yaml or "
                "set unmapped: skip\"}]");
    run_free(&run);
    report_free(r);

    r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", "losses:Expired", "4", NULL);
    add(r, "AMOX250", "losses:Stolen", "1", NULL);
    run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->values[0].de_uid, "DeAmoxLoss1");
    assert_string_equal(r->values[0].coc_uid, "CocExpired1");
    assert_false(r->values[0].skipped);
    assert_true(r->values[1].skipped);
    assert_int_equal(json_array_size(run.skipped), 1);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_reject_null_measure(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "AMOX250", NULL, "1", "row 3");
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems,
                "[{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"AMOX250\","
                "\"where\":\"row 3\",\"message\":\"item \\\"AMOX250\\\" (no measure) has no "
                "data element in mapping \\\"national\\\"; add it to mappings/national.yaml or "
                "set unmapped: skip\"}]");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_skip_marks_values(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = report_with_unmapped();
    struct run run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_int_equal(json_array_size(run.problems), 0);
    assert_false(r->values[0].skipped);
    assert_string_equal(r->values[0].de_uid, "s46m5MS0hxu");
    assert_true(r->values[1].skipped);
    assert_true(r->values[2].skipped);
    assert_true(r->values[3].skipped);
    assert_true(r->values[4].skipped);
    assert_true(r->values[5].skipped);
    assert_null(r->values[1].de_uid);
    /* One entry per skipped value, even for the same code. */
    assert_json(
        run.skipped,
        "[{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"AMOX250\","
        "\"measure\":\"losses\",\"where\":\"lines[0].losses\","
        "\"message\":\"item \\\"AMOX250\\\" with measure \\\"losses\\\" has no data element "
        "in mapping \\\"national\\\"; the value was skipped\"},"
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"ZINC\","
        "\"measure\":\"consumed\",\"where\":\"lines[1].consumed\","
        "\"message\":\"item \\\"ZINC\\\" with measure \\\"consumed\\\" has no data element "
        "in mapping \\\"national\\\"; the value was skipped\"},"
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"ZINC\","
        "\"measure\":\"received\",\"where\":\"lines[1].received\","
        "\"message\":\"item \\\"ZINC\\\" with measure \\\"received\\\" has no data element "
        "in mapping \\\"national\\\"; the value was skipped\"},"
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"AMOX250\","
        "\"measure\":\"losses\",\"where\":\"lines[2].losses\","
        "\"message\":\"item \\\"AMOX250\\\" with measure \\\"losses\\\" has no data element "
        "in mapping \\\"national\\\"; the value was skipped\"},"
        "{\"stage\":\"mapping\",\"kind\":\"item\",\"code\":\"ORS\","
        "\"measure\":\"consumed\","
        "\"message\":\"item \\\"ORS\\\" with measure \\\"consumed\\\" has no data element "
        "in mapping \\\"national\\\"; the value was skipped\"}]");
    assert_string_equal(r->ou_uid, "DiszpKrYNg8");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_skip_nothing_left(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "ZINC", "consumed", "4", "lines[0].consumed");
    add(r, "ZINC", "losses", "1", "lines[0].losses");
    struct run run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems,
                "[{\"stage\":\"mapping\",\"message\":\"nothing left to deliver: every value was "
                "unmapped; add the codes listed in \\\"skipped\\\" to mappings/national.yaml\"}]");
    assert_int_equal(json_array_size(run.skipped), 2);
    assert_true(r->values[0].skipped);
    assert_true(r->values[1].skipped);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static const char unmapped_facility[] =
    "[{\"stage\":\"mapping\",\"kind\":\"org_unit\",\"code\":\"FAC-9\","
    "\"message\":\"facility \\\"FAC-9\\\" has no org unit in mapping \\\"national\\\"; add it to "
    "mappings/national.yaml\"}]";

static void test_apply_unmapped_facility_reject(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-9", "202610");
    add(r, "ORS", NULL, "35", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems, unmapped_facility);
    assert_null(r->ou_uid);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_unmapped_facility_skip(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-9", "202610");
    add(r, "ORS", NULL, "35", NULL);
    struct run run = apply(m, r, MAPPING_SKIP);
    /* skip cannot drop the whole report's facility */
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems, unmapped_facility);
    assert_int_equal(json_array_size(run.skipped), 0);
    assert_false(r->values[0].skipped);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_no_facility(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report(NULL, "202610");
    add(r, "ORS", NULL, "35", NULL);
    struct run run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems, "[{\"stage\":\"mapping\",\"kind\":\"org_unit\",\"message\":\"the "
                              "report has no facility code; fix the payload at the source\"}]");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_value_org_units(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202610");
    add(r, "ORS", NULL, "1", "v0");
    assert_true(report_set(&add(r, "ORS", NULL, "2", "v1")->org_unit, "FAC-0043"));
    assert_true(report_set(&add(r, "ORS", NULL, "3", "v2")->org_unit, "FAC-7"));
    assert_true(report_set(&add(r, "ORS", NULL, "4", "v3")->org_unit, "FAC-7"));

    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_json(run.problems,
                "[{\"stage\":\"mapping\",\"kind\":\"org_unit\",\"code\":\"FAC-7\","
                "\"where\":\"v2\",\"message\":\"facility \\\"FAC-7\\\" has no org unit in mapping "
                "\\\"national\\\"; add it to mappings/national.yaml or set unmapped: skip\"}]");
    assert_null(r->values[0].ou_uid);
    assert_string_equal(r->values[1].ou_uid, "ImspTQPwCqd");
    run_free(&run);

    run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_int_equal(json_array_size(run.problems), 0);
    assert_false(r->values[0].skipped);
    assert_false(r->values[1].skipped);
    assert_true(r->values[2].skipped);
    assert_true(r->values[3].skipped);
    assert_json(run.skipped,
                "[{\"stage\":\"mapping\",\"kind\":\"org_unit\",\"code\":\"FAC-7\",\"where\":\"v2\","
                "\"message\":\"facility \\\"FAC-7\\\" has no org unit in mapping \\\"national\\\"; "
                "the value was skipped\"},"
                "{\"stage\":\"mapping\",\"kind\":\"org_unit\",\"code\":\"FAC-7\",\"where\":\"v3\","
                "\"message\":\"facility \\\"FAC-7\\\" has no org unit in mapping \\\"national\\\"; "
                "the value was skipped\"}]");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* Every value names its own facility: the report needs none. */
static void test_apply_all_values_override_facility(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report(NULL, "202610");
    assert_true(report_set(&add(r, "ORS", NULL, "2", NULL)->org_unit, "FAC-0043"));
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_null(r->ou_uid);
    assert_string_equal(r->values[0].ou_uid, "ImspTQPwCqd");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_apply_long_code_message_is_cut(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202610");
    char item[3000];
    memset(item, 'X', sizeof item - 1);
    item[sizeof item - 1] = '\0';
    add(r, item, "consumed", "1", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    const json_t *p = json_array_get(run.problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "code")), item); /* whole */
    const char *msg = json_string_value(json_object_get(p, "message"));
    assert_int_equal(strlen(msg), 1023);
    assert_string_equal(msg + 1020, "...");
    assert_memory_equal(msg, "item \"XXX", 9);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* ------------------------------------------------------------------ */
/* mapping_apply: periods                                              */
/* ------------------------------------------------------------------ */

/* Applies national (with the given period type, or none) to a one-value report
 * and returns the result; *msg gets the first problem's message or NULL. */
static enum hibus_err apply_period(bool has_type, enum period_type t, const char *period,
                                   const char *start, const char *end, char *out, size_t outlen,
                                   char *msg, size_t msglen)
{
    struct mapping *m = national();
    m->has_period_type = has_type;
    m->period_type = t;
    struct report *r = new_report("FAC-0042", period);
    assert_true(report_set(&r->period_start, start));
    assert_true(report_set(&r->period_end, end));
    add(r, "ORS", NULL, "35", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    snprintf(out, outlen, "%s", r->period ? r->period : "(null)");
    const json_t *p = json_array_get(run.problems, 0);
    snprintf(msg, msglen, "%s", p ? json_string_value(json_object_get(p, "message")) : "(none)");
    if (p != NULL) {
        assert_string_equal(json_string_value(json_object_get(p, "kind")), "period");
        assert_int_equal(json_array_size(run.problems), 1);
    }
    enum hibus_err rc = run.rc;
    run_free(&run);
    report_free(r);
    mapping_free(m);
    return rc;
}

static void test_period_same_type_kept(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(
        apply_period(true, PERIOD_WEEKLY, "2026W40", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_OK);
    assert_string_equal(out, "2026W40");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, "202610", "2026-10-01", "2026-10-31", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_OK);
    assert_string_equal(out, "202610");
}

static void test_period_whole_month_dates(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-01", "2026-10-31", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_OK);
    assert_string_equal(out, "202610");
    assert_string_equal(msg, "(none)");
}

static void test_period_dates_spanning_two_months(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-09-28", "2026-10-04", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_string_equal(out, "(null)");
    assert_string_equal(msg, "period 2026-09-28 to 2026-10-04 does not fit in one Monthly period; "
                             "send one report per Monthly period or change period_type in "
                             "mappings/national.yaml");
}

static void test_period_week_spanning_two_months(void **state)
{
    (void)state;
    char out[32], msg[1024];
    /* 2026W40 is Monday 2026-09-28 to Sunday 2026-10-04. */
    assert_int_equal(
        apply_period(true, PERIOD_MONTHLY, "2026W40", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_E_INVALID);
    assert_string_equal(out, "2026W40");
    assert_string_equal(msg, "period \"2026W40\" (2026-09-28 to 2026-10-04) does not fit in one "
                             "Monthly period; send one report per Monthly period or change "
                             "period_type in mappings/national.yaml");
}

/* A week or a day inside a month is part of the month: sent as the month, its
 * figures would replace the whole month's in DHIS2, so it is refused. */
static void test_period_part_of_a_month_refused(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(
        apply_period(true, PERIOD_MONTHLY, "2026W41", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_E_INVALID);
    assert_string_equal(msg,
                        "period \"2026W41\" (2026-10-05 to 2026-10-11) covers only part of "
                        "Monthly period 202610 (2026-10-01 to 2026-10-31), and DHIS2 would "
                        "take its figures as the whole period's; send one report for the "
                        "whole Monthly period or change period_type in mappings/national.yaml");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, "20261015", NULL, NULL, out, sizeof out,
                                  msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_int_equal(apply_period(true, PERIOD_QUARTERLY, "202611", NULL, NULL, out, sizeof out,
                                  msg, sizeof msg),
                     HIBUS_E_INVALID);
    /* Dates that cover the month exactly are the month. */
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-01", "2026-10-31", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_OK);
    assert_string_equal(out, "202610");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-05", "2026-10-31", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_E_INVALID);
}

static void test_period_quarter_into_monthly(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(
        apply_period(true, PERIOD_MONTHLY, "2026Q4", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_E_INVALID);
    assert_string_equal(msg, "period \"2026Q4\" (2026-10-01 to 2026-12-31) does not fit in one "
                             "Monthly period; send one report per Monthly period or change "
                             "period_type in mappings/national.yaml");
}

static void test_period_invalid(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(
        apply_period(true, PERIOD_MONTHLY, "202613", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_E_INVALID);
    assert_string_equal(msg,
                        "period \"202613\" is not a DHIS2 period id (expected e.g. \"202610\", "
                        "\"2026Q4\" or \"2026W40\"); fix it at the source");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-01", "2026-10-32", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_string_equal(msg, "invalid period date \"2026-10-32\" (expected YYYY-MM-DD); fix it at "
                             "the source");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-31", "2026-10-01", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_string_equal(msg,
                        "the period starts on 2026-10-31, after its end on 2026-10-01; fix the "
                        "dates at the source");
}

static void test_period_missing_with_type(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(
        apply_period(true, PERIOD_MONTHLY, NULL, NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_E_INVALID);
    assert_string_equal(msg, "the report has no period: it needs a period id, or both a start and "
                             "an end date (both are missing)");
    assert_int_equal(apply_period(true, PERIOD_MONTHLY, NULL, "2026-10-01", NULL, out, sizeof out,
                                  msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_string_equal(msg, "the report has no period: it needs a period id, or both a start and "
                             "an end date (the end date is missing)");
}

static void test_period_no_type(void **state)
{
    (void)state;
    char out[32], msg[1024];
    assert_int_equal(apply_period(false, PERIOD_DAILY, NULL, "2026-10-01", "2026-10-31", out,
                                  sizeof out, msg, sizeof msg),
                     HIBUS_E_INVALID);
    assert_string_equal(msg, "the report has no DHIS2 period; set period_type in the mapping");
    /* Without a period type, a valid period of any type is sent as it is. */
    assert_int_equal(
        apply_period(false, PERIOD_DAILY, "2026W40", NULL, NULL, out, sizeof out, msg, sizeof msg),
        HIBUS_OK);
    assert_string_equal(out, "2026W40");
}

static void test_period_value_overrides(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", NULL);
    assert_true(report_set(&add(r, "ORS", NULL, "1", "v0")->period, "202610"));
    assert_true(report_set(&add(r, "ORS", NULL, "2", "v1")->period, "202611"));
    assert_true(report_set(&add(r, "ORS", NULL, "3", "v2")->period, "2026W40"));
    assert_true(report_set(&add(r, "ORS", NULL, "4", "v3")->period, "2026W40"));
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    /* The report has no period of its own, and needs none. */
    assert_null(r->period);
    assert_string_equal(r->values[0].period, "202610");
    assert_string_equal(r->values[1].period, "202611");
    assert_string_equal(r->values[2].period, "2026W40");
    assert_json(run.problems,
                "[{\"stage\":\"mapping\",\"kind\":\"period\",\"code\":\"2026W40\",\"where\":\"v2\","
                "\"message\":\"period \\\"2026W40\\\" (2026-09-28 to 2026-10-04) does not fit in "
                "one Monthly period; send one report per Monthly period or change period_type in "
                "mappings/national.yaml\"}]");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* ------------------------------------------------------------------ */
/* The source's data set and attribute option combo (issue 7, 2 and 3) */
/* ------------------------------------------------------------------ */

/* A dhis2-json source names a funding mechanism per value and for the set: it
 * reaches the writer instead of landing in the default combo. */
static void test_apply_source_aoc_uid_passes(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202401");
    assert_true(report_set(&r->attribute_option_combo, "FundGov0001"));
    add(r, "ORS", NULL, "1", "dataValues[0]");
    struct report_value *v = add(r, "ORS", NULL, "2", "dataValues[1]");
    assert_true(report_set(&v->attribute_option_combo, "FundDonor01"));
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->aoc_uid, "FundGov0001");
    assert_null(r->values[0].aoc_uid);
    assert_string_equal(r->values[1].aoc_uid, "FundDonor01");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* The mapping's attribute_option_combo is a default: the source's wins. */
static void test_apply_source_aoc_wins_over_default(void **state)
{
    (void)state;
    struct mapping *m = national();
    m->aoc_uid = dup("DefaultAoc1");
    struct report *r = new_report("FAC-0042", "202401");
    add(r, "ORS", NULL, "1", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_string_equal(r->aoc_uid, "DefaultAoc1");
    run_free(&run);
    assert_true(report_set(&r->attribute_option_combo, "FundGov0001"));
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->aoc_uid, "FundGov0001");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* attribute_option_combos translates codes (ADX exploded categories too); an
 * unknown code is unmapped: a problem under reject, a skipped value under skip. */
static void test_apply_aoc_table(void **state)
{
    (void)state;
    struct mapping *m = national();
    add_code(&m->aocs, &m->n_aocs, "FUNDING=DONOR", "FundDonor01");
    add_code(&m->aocs, &m->n_aocs, "GOV", "FundGov0001");
    assert_true(mapping_sort(m, NULL));
    struct report *r = new_report("FAC-0042", "202401");
    assert_true(report_set(&r->attribute_option_combo, "GOV"));
    add(r, "ORS", NULL, "1", "group[1]/dataValue[1]");
    struct report_value *v = add(r, "ORS", NULL, "2", "group[2]/dataValue[1]");
    assert_true(report_set(&v->attribute_option_combo, "FUNDING=DONOR"));
    v = add(r, "ORS", NULL, "3", "group[3]/dataValue[1]");
    assert_true(report_set(&v->attribute_option_combo, "FUNDING=NGO"));
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_int_equal(json_array_size(run.problems), 1);
    json_t *p = json_array_get(run.problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "kind")), "attribute_option_combo");
    assert_string_equal(json_string_value(json_object_get(p, "code")), "FUNDING=NGO");
    assert_string_equal(json_string_value(json_object_get(p, "where")), "group[3]/dataValue[1]");
    run_free(&run);

    run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->aoc_uid, "FundGov0001");
    assert_string_equal(r->values[1].aoc_uid, "FundDonor01");
    assert_true(r->values[2].skipped);
    assert_int_equal(json_array_size(run.skipped), 1);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* A code that is no UID, with no table to translate it, is never sent as it is. */
static void test_apply_aoc_code_without_table(void **state)
{
    (void)state;
    struct mapping *m = national();
    struct report *r = new_report("FAC-0042", "202401");
    assert_true(report_set(&r->attribute_option_combo, "DONOR"));
    add(r, "ORS", NULL, "1", NULL);
    struct run run = apply(m, r, MAPPING_SKIP);
    assert_int_equal(run.rc, HIBUS_E_INVALID); /* the report's own: skip cannot drop it */
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(run.problems, 0), "message")),
               "add attribute_option_combos: { \"DONOR\": UID }"));
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* Data set: the table translates; else the mapping's data_set; else the
 * source's own when it is a UID (the pass-through used to drop it). */
static void test_apply_data_set_rules(void **state)
{
    (void)state;
    struct mapping *m = national(); /* data_set Lpw6GcnTrmS */
    struct report *r = new_report("FAC-0042", "202401");
    assert_true(report_set(&r->data_set, "LMIS_MONTHLY"));
    assert_true(report_set(&r->complete_date, "2024-02-05"));
    add(r, "ORS", NULL, "1", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->data_set_uid, "Lpw6GcnTrmS");
    run_free(&run);

    free(m->data_set_uid);
    m->data_set_uid = NULL;
    assert_true(report_set(&r->data_set, "QX4ZTUbOt3a"));
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->data_set_uid, "QX4ZTUbOt3a");
    run_free(&run);

    assert_true(report_set(&r->data_set, "LMIS_MONTHLY"));
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_string_equal(json_string_value(json_object_get(json_array_get(run.problems, 0), "kind")),
                        "data_set");
    run_free(&run);

    add_code(&m->data_sets, &m->n_data_sets, "LMIS_MONTHLY", "Lpw6GcnTrmS");
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->data_set_uid, "Lpw6GcnTrmS");
    run_free(&run);
    assert_true(report_set(&r->data_set, "OTHER"));
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* ADX annotations: the value of a text data element, dropped for a numeric one
 * (DefaultAdxDataService), a problem when the mapping does not say which. */
static void test_apply_annotation(void **state)
{
    (void)state;
    struct mapping *m = national();
    add_item(m, "REMARK", NULL, "TextDe00001", NULL);
    m->items[m->n_items - 1].value_type = dup("LONG_TEXT");
    assert_true(mapping_sort(m, NULL));
    for (size_t i = 0; i < m->n_items; i++)
        if (strcmp(m->items[i].item, "ORS") == 0) {
            free(m->items[i].value_type);
            m->items[i].value_type = dup("INTEGER_ZERO_OR_POSITIVE");
        } else if (strcmp(m->items[i].item, "REMARK") != 0) {
            free(m->items[i].value_type);
            m->items[i].value_type = NULL;
        }
    struct report *r = new_report("FAC-0042", "202401");
    struct report_value *t = add(r, "REMARK", NULL, "0", "group[1]/dataValue[1]");
    assert_true(report_set(&t->annotation, "fridge broken"));
    struct report_value *n = add(r, "ORS", NULL, "7", "group[1]/dataValue[2]");
    assert_true(report_set(&n->annotation, "counted twice"));
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->values[0].value, "fridge broken");
    assert_true(r->values[0].is_text);
    assert_string_equal(r->values[1].value, "7");
    assert_null(r->values[1].annotation);
    assert_null(r->values[1].comment);
    run_free(&run);

    struct report_value *u = add(r, "AMOX250", "consumed", "3", "group[1]/dataValue[3]");
    assert_true(report_set(&u->annotation, "?"));
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    json_t *p = json_array_get(run.problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "kind")), "value_type");
    assert_string_equal(json_string_value(json_object_get(p, "code")), "AMOX250");
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

/* A period named without dates (an OpenLMIS v2 processingPeriod id) is translated
 * by periods:, then converted like any other; an unknown one is a problem. */
static void test_apply_source_period(void **state)
{
    (void)state;
    struct mapping *m = national();
    add_code(&m->periods, &m->n_periods, "516ac930", "202608");
    assert_true(mapping_sort(m, NULL));
    struct report *r = report_new("openlmis-requisition");
    assert_true(report_set(&r->org_unit, "FAC-0042"));
    assert_true(report_set(&r->source_period, "516ac930"));
    add(r, "ORS", NULL, "1", NULL);
    struct run run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_OK);
    assert_string_equal(r->period, "202608");
    assert_string_equal(r->period_start, "2026-08-01");
    assert_string_equal(r->period_end, "2026-08-31");
    run_free(&run);
    report_free(r);

    r = report_new("openlmis-requisition");
    assert_true(report_set(&r->org_unit, "FAC-0042"));
    assert_true(report_set(&r->source_period, "feedbeef"));
    add(r, "ORS", NULL, "1", NULL);
    run = apply(m, r, MAPPING_REJECT);
    assert_int_equal(run.rc, HIBUS_E_INVALID);
    assert_int_equal(json_array_size(run.problems), 1);
    json_t *p = json_array_get(run.problems, 0);
    assert_string_equal(json_string_value(json_object_get(p, "code")), "feedbeef");
    assert_non_null(strstr(json_string_value(json_object_get(p, "message")), "add periods:"));
    run_free(&run);
    report_free(r);
    mapping_free(m);
}

static void test_value_types(void **state)
{
    (void)state;
    assert_true(mapping_value_type_numeric("INTEGER_ZERO_OR_POSITIVE"));
    assert_true(mapping_value_type_numeric("PERCENTAGE"));
    assert_false(mapping_value_type_numeric("TEXT"));
    assert_false(mapping_value_type_numeric(NULL));
    assert_true(mapping_value_type_known("LONG_TEXT"));
    assert_false(mapping_value_type_known("STRING"));
    assert_true(mapping_is_uid("Lpw6GcnTrmS"));
    assert_false(mapping_is_uid("1pw6GcnTrmS"));
    assert_false(mapping_is_uid("Lpw6GcnTrm"));
    assert_false(mapping_is_uid("Lpw6GcnTrm_"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_orders_tables),
        cmocka_unit_test(test_sort_null_measure_first),
        cmocka_unit_test(test_sort_duplicate_org_unit),
        cmocka_unit_test(test_sort_duplicate_item),
        cmocka_unit_test(test_sort_duplicate_null_measure),
        cmocka_unit_test(test_sort_same_item_other_measure_is_no_duplicate),
        cmocka_unit_test(test_sort_empty),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_apply_all_mapped),
        cmocka_unit_test(test_apply_no_data_set_no_aoc),
        cmocka_unit_test(test_apply_reject_lists_each_code_once),
        cmocka_unit_test(test_apply_reject_names_file),
        cmocka_unit_test(test_apply_by_reason_measures),
        cmocka_unit_test(test_apply_reject_null_measure),
        cmocka_unit_test(test_apply_skip_marks_values),
        cmocka_unit_test(test_apply_skip_nothing_left),
        cmocka_unit_test(test_apply_unmapped_facility_reject),
        cmocka_unit_test(test_apply_unmapped_facility_skip),
        cmocka_unit_test(test_apply_no_facility),
        cmocka_unit_test(test_apply_value_org_units),
        cmocka_unit_test(test_apply_all_values_override_facility),
        cmocka_unit_test(test_apply_long_code_message_is_cut),
        cmocka_unit_test(test_period_same_type_kept),
        cmocka_unit_test(test_period_whole_month_dates),
        cmocka_unit_test(test_period_dates_spanning_two_months),
        cmocka_unit_test(test_period_week_spanning_two_months),
        cmocka_unit_test(test_period_part_of_a_month_refused),
        cmocka_unit_test(test_period_quarter_into_monthly),
        cmocka_unit_test(test_period_invalid),
        cmocka_unit_test(test_period_missing_with_type),
        cmocka_unit_test(test_period_no_type),
        cmocka_unit_test(test_period_value_overrides),
        cmocka_unit_test(test_apply_source_aoc_uid_passes),
        cmocka_unit_test(test_apply_source_aoc_wins_over_default),
        cmocka_unit_test(test_apply_aoc_table),
        cmocka_unit_test(test_apply_aoc_code_without_table),
        cmocka_unit_test(test_apply_data_set_rules),
        cmocka_unit_test(test_apply_annotation),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_apply_source_period),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
