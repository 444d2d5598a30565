/*
 * test_mapping_pull.c - the rules of hibus mapping pull without a DHIS2: the plan
 * built from hand-written metadata (what is added, changed, removed, kept, and the
 * notes), the printed diff, and the rewriting of CSV tables and YAML files (rows
 * and comments kept, edits where the rows are, what cannot be written said).
 * Mappings are built by hand, as config_load leaves them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hibus/mapping_pull.h"

static const char YAML[] = "m.yaml", OU_CSV[] = "ou.csv", ITEMS_CSV[] = "items.csv";

static char *dup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *c = strdup(s);
    assert_non_null(c);
    return c;
}

static struct mapping *new_mapping(void)
{
    struct mapping *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->name = dup("m");
    m->file = dup(YAML);
    m->org_units_csv = dup(OU_CSV);
    m->items_csv = dup(ITEMS_CSV);
    m->org_units = calloc(16, sizeof *m->org_units);
    m->items = calloc(32, sizeof *m->items);
    assert_non_null(m->org_units);
    assert_non_null(m->items);
    for (int k = 0; k < MAPPING_KINDS; k++)
        m->id_schemes[k] = "UID";
    return m;
}

static void add_ou(struct mapping *m, const char *code, const char *uid, const char *from)
{
    m->org_units[m->n_org_units++] =
        (struct mapping_code){.code = dup(code), .uid = dup(uid), .from = from};
}

static void add_item(struct mapping *m, const char *item, const char *measure, const char *de,
                     const char *coc, const char *from)
{
    m->items[m->n_items++] = (struct mapping_item){.item = dup(item),
                                                   .measure = dup(measure),
                                                   .de_uid = dup(de),
                                                   .coc_uid = dup(coc),
                                                   .from = from};
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s: %s", e.text, text);
    return j;
}

/* The edit of kind for code (and measure), or NULL. */
static const struct pull_edit *find(const struct pull_plan *p, enum pull_kind k, const char *code,
                                    const char *measure)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].kind == k && strcmp(p->v[i].code, code) == 0 &&
            (measure == NULL ? p->v[i].measure == NULL
                             : p->v[i].measure && strcmp(p->v[i].measure, measure) == 0))
            return &p->v[i];
    return NULL;
}

static bool has_note(const struct pull_plan *p, const char *part)
{
    size_t i;
    const json_t *n;
    json_array_foreach(p->notes, i, n) if (strstr(json_string_value(n), part)) return true;
    return false;
}

static void add_edit(struct pull_plan *p, enum pull_kind k, enum pull_change c, const char *code,
                     const char *measure, const char *old_uid, const char *new_uid, const char *de,
                     const char *file)
{
    p->v = realloc(p->v, (p->n + 1) * sizeof *p->v);
    assert_non_null(p->v);
    p->v[p->n++] = (struct pull_edit){.kind = k,
                                      .change = c,
                                      .code = dup(code),
                                      .measure = dup(measure),
                                      .old_uid = dup(old_uid),
                                      .new_uid = dup(new_uid),
                                      .de = dup(de),
                                      .name = dup("Name"),
                                      .file = file};
}

static struct pull_plan empty_plan(void)
{
    struct pull_plan p = {0};
    p.notes = json_array();
    return p;
}

/* ------------------------------------------------------------------ plan */

static void test_plan_org_units(void **state)
{
    (void)state;
    struct mapping *m = new_mapping();
    add_ou(m, "FAC-1", "Uid0000001a", OU_CSV); /* DHIS2 agrees */
    add_ou(m, "FAC-2", "OldUid00002", YAML);   /* DHIS2: another UID */
    add_ou(m, "FAC-9", "Gone0000009", OU_CSV); /* neither code nor UID in DHIS2 */
    add_ou(m, "LOCAL", "Uid0000003c", OU_CSV); /* the source's own code */
    add_ou(m, "DUP", "Uid0000005e", OU_CSV);   /* DHIS2 has two DUP */
    struct pull_meta meta = {0};
    meta.org_units = load("[{\"id\":\"Uid0000001a\",\"code\":\"FAC-1\",\"name\":\"One\"},"
                          "{\"id\":\"NewUid00002\",\"code\":\"FAC-2\",\"name\":\"Two\"},"
                          "{\"id\":\"Uid0000003c\",\"code\":\"FAC-3\",\"name\":\"Three\"},"
                          "{\"id\":\"Uid0000004d\",\"code\":\"FAC-4\",\"name\":\"Four\"},"
                          "{\"id\":\"Uid0000005e\",\"code\":\"DUP\"},"
                          "{\"id\":\"Uid0000006f\",\"code\":\"DUP\"},"
                          "{\"id\":\"Uid0000007g\",\"name\":\"No code\"}]");
    meta.ou_existing = load("{\"Uid0000001a\":true,\"NewUid00002\":true,\"Uid0000003c\":true,"
                            "\"Uid0000005e\":true}");
    meta.data_elements = json_array();
    meta.cocs = json_array();
    struct pull_plan p;
    mapping_pull_plan(m, &meta, &p);

    const struct pull_edit *e = find(&p, PULL_ORG_UNIT, "FAC-2", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_CHANGE);
    assert_string_equal(e->old_uid, "OldUid00002");
    assert_string_equal(e->new_uid, "NewUid00002");
    assert_string_equal(e->name, "Two");
    assert_string_equal(e->file, YAML);
    e = find(&p, PULL_ORG_UNIT, "FAC-9", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_REMOVE);
    assert_string_equal(e->file, OU_CSV);
    e = find(&p, PULL_ORG_UNIT, "FAC-4", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_ADD);
    assert_string_equal(e->file, OU_CSV); /* additions go to the CSV file */
    /* FAC-3 is mapped as LOCAL already: not twice */
    assert_null(find(&p, PULL_ORG_UNIT, "FAC-3", NULL));
    assert_null(find(&p, PULL_ORG_UNIT, "LOCAL", NULL));
    assert_null(find(&p, PULL_ORG_UNIT, "DUP", NULL));
    assert_int_equal(p.n, 3);
    assert_int_equal(p.unchanged[PULL_ORG_UNIT], 1);
    assert_int_equal(p.kept[PULL_ORG_UNIT], 2);
    assert_true(has_note(&p, "both have the code \"DUP\""));
    assert_true(has_note(&p, "1 org unit in DHIS2 has no code: not mapped"));

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    mapping_pull_print(&p, f);
    fclose(f);
    assert_non_null(strstr(out, "org units:\n  + FAC-4: Uid0000004d (Four) in ou.csv\n"
                                "  ~ FAC-2: OldUid00002 -> NewUid00002 (Two) in m.yaml\n"
                                "  - FAC-9: Gone0000009 (DHIS2 knows neither the code nor the "
                                "UID) in ou.csv\n"
                                "org units: 1 added, 1 changed, 1 removed, 1 unchanged, 2 kept\n"));
    assert_non_null(strstr(out, "data elements: 0 added"));
    free(out);
    mapping_pull_plan_free(&p);
    mapping_pull_meta_free(&meta);
    mapping_free(m);
}

static void test_plan_by_attribute_and_without_csv(void **state)
{
    (void)state;
    struct mapping *m = new_mapping();
    free(m->org_units_csv);
    m->org_units_csv = NULL;
    m->pull_org_unit_attribute = dup("AttrLmisCd1");
    struct pull_meta meta = {0};
    meta.org_units = load("[{\"id\":\"Uid0000001a\",\"code\":\"FAC-1\",\"attributeValues\":["
                          "{\"attribute\":{\"id\":\"Other000001\"},\"value\":\"X\"},"
                          "{\"attribute\":{\"id\":\"AttrLmisCd1\"},\"value\":\"L-1\"}]},"
                          "{\"id\":\"Uid0000002b\",\"code\":\"FAC-2\",\"attributeValues\":[]}]");
    meta.ou_existing = json_object();
    meta.data_elements = json_array();
    meta.cocs = json_array();
    struct pull_plan p;
    mapping_pull_plan(m, &meta, &p);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.v[0].code, "L-1");
    assert_string_equal(p.v[0].new_uid, "Uid0000001a");
    assert_string_equal(p.v[0].file, YAML); /* no CSV: into the YAML file */
    assert_true(has_note(&p, "1 org unit in DHIS2 has no attribute value for attribute "
                             "AttrLmisCd1"));
    mapping_pull_plan_free(&p);
    mapping_pull_meta_free(&meta);
    mapping_free(m);
}

#define COMBO "{\"categoryCombo\":{\"id\":\"CcStock0001\"}"
static const char COCS[] =
    "[" COMBO
    ",\"id\":\"SohUid00001\",\"code\":\"STOCK_ON_HAND\",\"name\":\"Stock on hand\"}," COMBO
    ",\"id\":\"RecUid00001\",\"code\":\"RECEIVED\",\"name\":\"Received\"}," COMBO
    ",\"id\":\"LosUid00001\",\"name\":\"Losses\"},"
    "{\"categoryCombo\":{\"id\":\"CcSexAge001\"},\"id\":\"FemUnder5aa\",\"name\":\"Female, <5\","
    "\"categoryOptions\":[{\"code\":\"F\",\"name\":\"Female\"},{\"code\":\"U5\",\"name\":\"<5\"}]},"
    "{\"categoryCombo\":{\"id\":\"CcSexAge001\"},\"id\":\"MalUnder5aa\",\"name\":\"Male, <5\","
    "\"categoryOptions\":[{\"code\":\"M\",\"name\":\"Male\"},{\"code\":\"U5\",\"name\":\"<5\"}]},"
    "{\"categoryCombo\":{\"id\":\"CcDup000001\"},\"id\":\"DupA0000001\",\"name\":\"Same\"},"
    "{\"categoryCombo\":{\"id\":\"CcDup000001\"},\"id\":\"DupB0000001\",\"code\":\"SAME\"},"
    "{\"id\":\"Default0001\",\"name\":\"default\"}," COMBO
    ",\"id\":\"Symbols0001\",\"name\":\"--\"},"
    "{\"categoryCombo\":{\"id\":\"CcOther0001\"},\"id\":\"Elsewhere01\",\"name\":\"Elsewhere\"}]";

static void test_plan_items(void **state)
{
    (void)state;
    struct mapping *m = new_mapping();
    /* A (CSV): measures changed, unchanged, gone; Losses not mapped yet */
    add_item(m, "A", NULL, "AUid0000001", NULL, ITEMS_CSV);
    add_item(m, "A", "gone", "AUid0000001", "GoneCoc0001", ITEMS_CSV);
    add_item(m, "A", "received", "AUid0000001", "RecUid00001", ITEMS_CSV);
    add_item(m, "A", "stock_on_hand", "AUid0000001", "SohOld00001", ITEMS_CSV);
    add_item(m, "A", "x", "AUid0000001", "Elsewhere01", ITEMS_CSV); /* another combo's: kept */
    /* B (YAML): its data element has another UID in DHIS2 */
    add_item(m, "B", NULL, "OldDeUid001", NULL, YAML);
    add_item(m, "B", "received", "OldDeUid001", "RecUid00001", YAML);
    /* C: gone from DHIS2 */
    add_item(m, "C", NULL, "CUid0000001", NULL, ITEMS_CSV);
    add_item(m, "C", "received", "CUid0000001", "RecUid00001", ITEMS_CSV);
    /* D: DHIS2 has no data element with code D, but has its target */
    add_item(m, "D", NULL, "DUid0000001", NULL, ITEMS_CSV);
    /* S: disaggregated by sex and age; "Male,<5" in any order */
    add_item(m, "S", "<5,male", "SUid0000001", "Old00000001", ITEMS_CSV);
    /* T: a measure two combos match */
    add_item(m, "T", "same", "TUid0000001", "DupA0000001", ITEMS_CSV);
    /* W: rows on two data elements */
    add_item(m, "W", NULL, "WUid0000001", NULL, ITEMS_CSV);
    add_item(m, "W", "m", "WUid0000002", NULL, ITEMS_CSV);
    struct pull_meta meta = {0};
    meta.org_units = json_array();
    meta.ou_existing = json_object();
    meta.data_elements =
        load("[{\"id\":\"AUid0000001\",\"code\":\"A\",\"categoryCombo\":{\"id\":\"CcStock0001\"}},"
             "{\"id\":\"NewDeUid001\",\"code\":\"B\",\"name\":\"Bee\","
             "\"categoryCombo\":{\"id\":\"CcStock0001\"}},"
             "{\"id\":\"DUid0000001\",\"code\":\"D-IN-DHIS2\"},"
             "{\"id\":\"EUid0000001\",\"code\":\"E\",\"name\":\"Eee\","
             "\"categoryCombo\":{\"id\":\"CcStock0001\"}},"
             "{\"id\":\"FUid0000001\",\"name\":\"No code\"},"
             "{\"id\":\"SUid0000001\",\"code\":\"S\",\"categoryCombo\":{\"id\":\"CcSexAge001\"}},"
             "{\"id\":\"TUid0000001\",\"code\":\"T\",\"categoryCombo\":{\"id\":\"CcDup000001\"}}]");
    meta.data_set_des = load("{\"EUid0000001\":true,\"FUid0000001\":true,\"AUid0000001\":true}");
    meta.cocs = load(COCS);
    struct pull_plan p;
    mapping_pull_plan(m, &meta, &p);

    const struct pull_edit *e = find(&p, PULL_COC, "A", "stock_on_hand");
    assert_non_null(e);
    assert_int_equal(e->change, PULL_CHANGE);
    assert_string_equal(e->new_uid, "SohUid00001");
    e = find(&p, PULL_COC, "A", "gone");
    assert_non_null(e);
    assert_int_equal(e->change, PULL_REMOVE);
    assert_null(find(&p, PULL_COC, "A", "received"));
    assert_null(find(&p, PULL_COC, "A", "x"));
    e = find(&p, PULL_COC, "A", "losses"); /* a new measure, named after the combo */
    assert_non_null(e);
    assert_int_equal(e->change, PULL_ADD);
    assert_string_equal(e->de, "AUid0000001");
    assert_string_equal(e->file, ITEMS_CSV);
    e = find(&p, PULL_DATA_ELEMENT, "B", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_CHANGE);
    assert_string_equal(e->new_uid, "NewDeUid001");
    /* B is in YAML: the combos it lacks are said, not added */
    assert_null(find(&p, PULL_COC, "B", "stock_on_hand"));
    assert_true(has_note(&p, "item \"B\": category option combo SohUid00001 (Stock on hand) has "
                             "no measure; add \"stock_on_hand: SohUid00001\""));
    e = find(&p, PULL_DATA_ELEMENT, "C", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_REMOVE);
    assert_null(find(&p, PULL_COC, "C", "received"));
    assert_null(find(&p, PULL_DATA_ELEMENT, "D", NULL));
    e = find(&p, PULL_COC, "S", "<5,male");
    assert_non_null(e);
    assert_string_equal(e->new_uid, "MalUnder5aa");
    e = find(&p, PULL_COC, "S", "female_u5"); /* Female, <5: code-less, named after it */
    assert_null(e);
    assert_non_null(find(&p, PULL_COC, "S", "female_5"));
    assert_true(has_note(&p, "item \"T\", measure \"same\" names 2 category option combos"));
    assert_true(has_note(&p, "item \"W\" maps to several data elements"));
    /* E: in the data set, not mapped: an item with its measures, measures named as the
     * mapping already names them */
    e = find(&p, PULL_DATA_ELEMENT, "E", NULL);
    assert_non_null(e);
    assert_int_equal(e->change, PULL_ADD);
    assert_string_equal(e->file, ITEMS_CSV);
    e = find(&p, PULL_COC, "E", "stock_on_hand");
    assert_non_null(e);
    assert_string_equal(e->new_uid, "SohUid00001");
    assert_non_null(find(&p, PULL_COC, "E", "received"));
    assert_non_null(find(&p, PULL_COC, "E", "losses"));
    assert_true(has_note(&p, "1 data element of the data set has no code in DHIS2"));
    assert_true(has_note(&p, "item \"A\": category option combo Symbols0001 has no code or name "
                             "to make a measure of: not added"));
    assert_int_equal(p.unchanged[PULL_COC], 2);

    /* the CSV rows these edits give */
    const char csv[] = "item,measure,data_element,category_option_combo\n"
                       "A,,AUid0000001,\n"
                       "A,gone,AUid0000001,GoneCoc0001\n"
                       "A,stock_on_hand,AUid0000001,SohOld00001\n"
                       "C,,CUid0000001,\n"
                       "C,received,CUid0000001,RecUid00001\n"
                       "\n"
                       "\"S\",\"<5,male\",SUid0000001,Old00000001\n";
    char *out = NULL;
    size_t len = 0;
    struct hibus_error err = {0};
    assert_int_equal(
        mapping_pull_rewrite_csv(csv, strlen(csv), true, ITEMS_CSV, &p, &out, &len, &err),
        HIBUS_OK);
    assert_string_equal(out, "item,measure,data_element,category_option_combo\n"
                             "A,,AUid0000001,\n"
                             "A,stock_on_hand,AUid0000001,SohUid00001\n"
                             "S,\"<5,male\",SUid0000001,MalUnder5aa\n"
                             "E,,EUid0000001,\n"
                             "E,stock_on_hand,EUid0000001,SohUid00001\n"
                             "E,received,EUid0000001,RecUid00001\n"
                             "E,losses,EUid0000001,LosUid00001\n"
                             "A,losses,AUid0000001,LosUid00001\n"
                             "S,female_5,SUid0000001,FemUnder5aa\n");
    free(out);
    mapping_pull_plan_free(&p);
    mapping_pull_meta_free(&meta);
    mapping_free(m);
}

/* ------------------------------------------------------------------- CSV */

static void test_csv_org_units(void **state)
{
    (void)state;
    struct pull_plan p = empty_plan();
    add_edit(&p, PULL_ORG_UNIT, PULL_CHANGE, "FAC,1", NULL, "OldUid00001", "NewUid00001", NULL,
             OU_CSV);
    add_edit(&p, PULL_ORG_UNIT, PULL_REMOVE, "FAC-2", NULL, "Uid00000002", NULL, NULL, OU_CSV);
    add_edit(&p, PULL_ORG_UNIT, PULL_ADD, "FAC \"3\"", NULL, NULL, "Uid00000003", NULL, OU_CSV);
    add_edit(&p, PULL_ORG_UNIT, PULL_ADD, "ELSEWHERE", NULL, NULL, "Uid00000004", NULL, YAML);
    /* a byte-order mark and CRLF are kept */
    const char csv[] =
        "\xEF\xBB\xBF"
        "code,uid\r\n\"FAC,1\",OldUid00001\r\nFAC-2,Uid00000002\r\nK,KeptUid0001\r\n";
    char *out = NULL;
    size_t len = 0;
    struct hibus_error err = {0};
    assert_int_equal(
        mapping_pull_rewrite_csv(csv, strlen(csv), false, OU_CSV, &p, &out, &len, &err), HIBUS_OK);
    assert_string_equal(out, "\xEF\xBB\xBF"
                             "code,uid\r\n\"FAC,1\",NewUid00001\r\nK,KeptUid0001\r\n"
                             "\"FAC \"\"3\"\"\",Uid00000003\r\n");
    assert_int_equal(len, strlen(out));
    free(out);

    /* a file that is no table any more */
    const char bad[] = "code,uid\nA,B,C\n";
    assert_int_equal(
        mapping_pull_rewrite_csv(bad, strlen(bad), false, OU_CSV, &p, &out, &len, &err),
        HIBUS_E_INVALID);
    assert_non_null(strstr(err.msg, "line 2 is not a row of the table any more"));
    const char unterminated[] = "code,uid\n\"A,B\n";
    assert_int_equal(mapping_pull_rewrite_csv(unterminated, strlen(unterminated), false, OU_CSV, &p,
                                              &out, &len, &err),
                     HIBUS_E_INVALID);
    /* an empty file gets its header */
    assert_int_equal(mapping_pull_rewrite_csv("", 0, false, OU_CSV, &p, &out, &len, &err),
                     HIBUS_OK);
    assert_string_equal(out, "code,uid\n\"FAC \"\"3\"\"\",Uid00000003\n");
    free(out);
    mapping_pull_plan_free(&p);
}

/* ------------------------------------------------------------------ YAML */

static char *rewrite(const char *yaml, struct pull_plan *p)
{
    char *out = NULL;
    size_t len = 0;
    struct hibus_error err = {0};
    assert_int_equal(mapping_pull_rewrite_yaml(yaml, strlen(yaml), YAML, p, &out, &len, &err),
                     HIBUS_OK);
    assert_int_equal(len, strlen(out));
    return out;
}

static void test_yaml_block_tables(void **state)
{
    (void)state;
    struct pull_plan p = empty_plan();
    add_edit(&p, PULL_ORG_UNIT, PULL_CHANGE, "FAC-1", NULL, "OldUid00001", "NewUid00001", NULL,
             YAML);
    add_edit(&p, PULL_ORG_UNIT, PULL_REMOVE, "FAC-2", NULL, "Uid00000002", NULL, NULL, YAML);
    add_edit(&p, PULL_ORG_UNIT, PULL_ADD, "FAC 4", NULL, NULL, "Uid00000004", NULL, YAML);
    add_edit(&p, PULL_ORG_UNIT, PULL_CHANGE, "FAC-GONE", NULL, "Uid00000009", "Uid0000009x", NULL,
             YAML);
    add_edit(&p, PULL_ORG_UNIT, PULL_CHANGE, "FAC-1", NULL, "X", "Y", NULL, OU_CSV); /* not here */
    add_edit(&p, PULL_DATA_ELEMENT, PULL_CHANGE, "A", NULL, "OldDeUid001", "NewDeUid001", NULL,
             YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_CHANGE, "B", NULL, "OldDeUid002", "NewDeUid002", NULL,
             YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_REMOVE, "C", NULL, "CUid0000001", NULL, NULL, YAML);
    add_edit(&p, PULL_COC, PULL_CHANGE, "B", "soh", "SohOld00001", "SohNew00001", NULL, YAML);
    add_edit(&p, PULL_COC, PULL_REMOVE, "B", "gone", "GoneCoc0001", NULL, NULL, YAML);
    add_edit(&p, PULL_COC, PULL_CHANGE, "B", "nosuch", "X", "Y", NULL, YAML);
    /* every item on the shared measures agrees: received changes there */
    add_edit(&p, PULL_COC, PULL_CHANGE, "A", "received", "RecOld00001", "RecNew00001", NULL, YAML);
    add_edit(&p, PULL_COC, PULL_CHANGE, "D", "received", "RecOld00001", "RecNew00001", NULL, YAML);
    /* the shared measure "consumed": only A changes, D does not */
    add_edit(&p, PULL_COC, PULL_CHANGE, "A", "consumed", "ConOld00001", "ConNew00001", NULL, YAML);
    add_edit(&p, PULL_COC, PULL_REMOVE, "D", "consumed", "ConOld00001", NULL, NULL, YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_CHANGE, "NOSUCH", NULL, "X", "Y", NULL, YAML);
    /* new items: E on exactly the shared measures, F on its own */
    add_edit(&p, PULL_DATA_ELEMENT, PULL_ADD, "E", NULL, NULL, "EUid0000001", NULL, YAML);
    add_edit(&p, PULL_COC, PULL_ADD, "E", "received", NULL, "RecNew00001", "EUid0000001", YAML);
    add_edit(&p, PULL_COC, PULL_ADD, "E", "consumed", NULL, "ConOld00001", "EUid0000001", YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_ADD, "F", NULL, NULL, "FUid0000001", NULL, YAML);
    add_edit(&p, PULL_COC, PULL_ADD, "F", "soh", NULL, "SohNew00001", "FUid0000001", YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_ADD, "G", NULL, NULL, "GUid0000001", NULL, YAML);
    const char yaml[] = "# the mapping\n"
                        "org_units:\n"
                        "    FAC-1: OldUid00001   # one\n"
                        "    FAC-2: \"Uid00000002\"\n"
                        "    FAC-3: Uid00000003\n"
                        "measures: # shared\n"
                        "  received: RecOld00001\n"
                        "  consumed: ConOld00001\n"
                        "items:\n"
                        "  A: OldDeUid001 # aaa\n"
                        "  B:\n"
                        "    data_element: OldDeUid002\n"
                        "    measures:\n"
                        "      soh: SohOld00001\n"
                        "      gone: GoneCoc0001\n"
                        "  C: { data_element: CUid0000001 }\n"
                        "  D: DUid0000001\n"
                        "data_set: uRfFkKfeb3Q";
    char *out = rewrite(yaml, &p);
    assert_string_equal(out, "# the mapping\n"
                             "org_units:\n"
                             "    FAC-1: NewUid00001   # one\n"
                             "    FAC-3: Uid00000003\n"
                             "    \"FAC 4\": Uid00000004  # Name\n"
                             "measures: # shared\n"
                             "  received: RecNew00001\n"
                             "  consumed: ConOld00001\n"
                             "items:\n"
                             "  A: NewDeUid001 # aaa\n"
                             "  B:\n"
                             "    data_element: NewDeUid002\n"
                             "    measures:\n"
                             "      soh: SohNew00001\n"
                             "  D: DUid0000001\n"
                             "  E: EUid0000001  # Name\n"
                             "  F: { data_element: FUid0000001, measures: { soh: SohNew00001 } }"
                             "  # Name\n"
                             "  G: { data_element: GUid0000001, measures: {} }  # Name\n"
                             "data_set: uRfFkKfeb3Q");
    free(out);
    assert_true(has_note(&p, "org unit \"FAC-GONE\" is not under org_units:"));
    assert_true(has_note(&p, "item \"NOSUCH\" is not under items:"));
    assert_true(has_note(&p, "item \"B\": measure \"nosuch\" not found"));
    assert_true(has_note(&p, "measure \"consumed\" of item \"A\" is in the shared measures: of "
                             "\"m.yaml\", and not every item that uses them changes so"));
    assert_true(has_note(&p, "a shared measure is not removed"));
    assert_true(find(&p, PULL_COC, "A", "consumed")->skipped);
    assert_false(find(&p, PULL_COC, "A", "received")->skipped);

    char *printed = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&printed, &len);
    mapping_pull_print(&p, f);
    fclose(f);
    assert_non_null(strstr(printed, "  ~ A consumed: ConOld00001 -> ConNew00001 (Name) in m.yaml "
                                    "[not written: see the notes]\n"));
    free(printed);
    mapping_pull_plan_free(&p);
}

static void test_yaml_flow_and_new_tables(void **state)
{
    (void)state;
    struct pull_plan p = empty_plan();
    add_edit(&p, PULL_ORG_UNIT, PULL_REMOVE, "FAC-2", NULL, "Uid00000002", NULL, NULL, YAML);
    add_edit(&p, PULL_ORG_UNIT, PULL_ADD, "FAC-4", NULL, NULL, "Uid00000004", NULL, YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_REMOVE, "C", NULL, "CUid0000001", NULL, NULL, YAML);
    add_edit(&p, PULL_COC, PULL_REMOVE, "B", "gone", "GoneCoc0001", NULL, NULL, YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_CHANGE, "D", NULL, "X", "Y", NULL, YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_ADD, "E", NULL, NULL, "EUid0000001", NULL, YAML);
    const char yaml[] = "org_units: { FAC-2: Uid00000002 }\n"
                        "items: { B: { data_element: BUid0000001, measures: { gone: GoneCoc0001 "
                        "} }, C: CUid0000001, D: { measures: {} } }\n";
    char *out = rewrite(yaml, &p);
    assert_string_equal(out, yaml); /* nothing can be written in flow style */
    free(out);
    assert_true(has_note(&p, "org_units: of \"m.yaml\" is in flow style: remove \"FAC-2\""));
    assert_true(has_note(&p, "org_units: of \"m.yaml\" is not a block table with entries: add "
                             "\"FAC-4\""));
    assert_true(has_note(&p, "items: of \"m.yaml\" is in flow style: remove item \"C\""));
    assert_true(has_note(&p, "its measures are in flow style: remove measure \"gone\""));
    assert_true(has_note(&p, "item \"D\" in \"m.yaml\" has no data_element"));
    assert_true(has_note(&p, "items: of \"m.yaml\" is not a block table with entries: add item "
                             "\"E\""));
    mapping_pull_plan_free(&p);

    /* no tables at all, and no newline at the end: new tables */
    p = empty_plan();
    add_edit(&p, PULL_ORG_UNIT, PULL_ADD, "FAC-4", NULL, NULL, "Uid00000004", NULL, YAML);
    add_edit(&p, PULL_DATA_ELEMENT, PULL_ADD, "E", NULL, NULL, "EUid0000001", NULL, YAML);
    out = rewrite("data_set: uRfFkKfeb3Q", &p);
    assert_string_equal(out, "data_set: uRfFkKfeb3Q\n"
                             "org_units:\n  FAC-4: Uid00000004  # Name\n"
                             "items:\n  E: EUid0000001  # Name\n");
    free(out);
    /* the last entry of a table at the very end, without a newline */
    out = rewrite("org_units:\n  FAC-1: Uid00000001", &p);
    assert_string_equal(out, "org_units:\n  FAC-1: Uid00000001\n  FAC-4: Uid00000004  # Name\n"
                             "items:\n  E: EUid0000001  # Name\n");
    free(out);

    /* CRLF, and a byte-order mark: the marks are past it */
    out =
        rewrite("\xEF\xBB\xBForg_units: { FAC-1: Uid00000001 }\r\nitems:\r\n  A: AUid0000001", &p);
    assert_string_equal(out, "\xEF\xBB\xBForg_units: { FAC-1: Uid00000001 }\r\nitems:\r\n"
                             "  A: AUid0000001\r\n  E: EUid0000001  # Name\r\n");
    free(out);
    mapping_pull_plan_free(&p);
    p = empty_plan();
    add_edit(&p, PULL_ORG_UNIT, PULL_CHANGE, "FAC-1", NULL, "Uid00000001", "NewUid00001", NULL,
             YAML);
    out = rewrite("\xEF\xBB\xBForg_units: { FAC-\xC3\x91: X, FAC-1: Uid00000001 }\n", &p);
    assert_string_equal(out, "\xEF\xBB\xBForg_units: { FAC-\xC3\x91: X, FAC-1: NewUid00001 }\n");
    free(out);

    char *res = NULL;
    size_t len = 0;
    struct hibus_error err = {0};
    assert_int_equal(mapping_pull_rewrite_yaml("- a\n- b\n", 8, YAML, &p, &res, &len, &err),
                     HIBUS_E_INVALID);
    assert_non_null(strstr(err.msg, "is not a mapping file any more"));
    assert_int_equal(mapping_pull_rewrite_yaml("a: [\n", 5, YAML, &p, &res, &len, &err),
                     HIBUS_E_INVALID);
    mapping_pull_plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_org_units),
        cmocka_unit_test(test_plan_by_attribute_and_without_csv),
        cmocka_unit_test(test_plan_items),
        cmocka_unit_test(test_csv_org_units),
        cmocka_unit_test(test_yaml_block_tables),
        cmocka_unit_test(test_yaml_flow_and_new_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
