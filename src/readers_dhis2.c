/*
 * readers_dhis2.c - the two readers of DHIS2's own data value set formats, written in
 * the source's codes (see hibus/readers.h and docs/formats.md):
 *
 *   dhis2-json  a DHIS2 dataValueSet as JSON
 *   dhis2-csv   DHIS2's CSV data value set (application/csv)
 *
 * Entry points (readers_internal.h): reader_read_dhis2_json (given the parsed JSON
 * object by reader_parse_opts; numbers beyond jansson's range were kept as their text
 * there, see "Numbers too large for jansson" in src/readers.c) and reader_read_dhis2_csv
 * (given the body; the tokenizer is hibus/csv.h).
 *
 * Sources cited here, all from dhis2/dhis2-core:
 * - 2.36-2.41 DefaultDataValueSetService.createDataValueContext (the set's period, org
 *   unit and attribute option combo win over a value's);
 * - 2.41.0 dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/
 *   datavalue/DataValue.java (attributeOptionCombo per data value);
 * - 2.41.0 .../dxf2/datavalueset/CsvDataValueSetReader.java, CsvDataValueSetWriter
 *   .HEADER_ROW, 2.36.0 .../dxf2/datavalue/StreamingCsvDataValue.java,
 *   .../dxf2/common/ImportOptions.java (firstRowIsHeader), CsvUtils.getReader
 *   (com.csvreader.CsvReader) and dhis-2/dhis-test-integration/src/test/resources/dxf2/
 *   datavalueset/dataValueSetB.csv; RFC 4180.
 *
 * Positions: "dataValues[2].period" (JSON, 0-based), "row 3, column value" (CSV, 1-based
 * rows counting the header).
 */
#include "hibus/readers.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "hibus/csv.h"
#include "hibus/period.h"

#include "readers_internal.h"

/* Both readers: parses a period id in any spelling DHIS2 accepts (period_parse gives the
 * canonical id in p->id, which is what a report keeps: "2024W01" is stored as "2024W1"). */
static bool valid_period_id(struct reader_ctx *rd, const char *id, const char *where,
                            struct period *p)
{
    if (period_parse(id, p))
        return true;
    reader_problem(rd, where, "\"%.40s\" is not a DHIS2 period id (such as 202401, 2024Q1, 2024W1)",
                   id);
    return false;
}

/* ------------------------------------------------------------------------------------
 * dhis2-json
 * ------------------------------------------------------------------------------------ */

/* DHIS2 files every value of a set under the set's period, org unit and attribute
 * option combo when the set has them, whatever the value says
 * (DefaultDataValueSetService.createDataValueContext, dhis2/dhis2-core 2.36-2.41: "outer"
 * period/orgUnit/attrOptionCombo first). A value naming another one would land
 * where its sender did not mean it to: that is a problem, not something to pass on. */
static bool same_as_set(struct reader_ctx *rd, const char *what, const char *set, const char *own,
                        const char *where)
{
    if (set == NULL || *set == '\0' || own == NULL || strcmp(set, own) == 0)
        return true;
    reader_problem(
        rd, where,
        "%s \"%.64s\" differs from the data value set's \"%.64s\": DHIS2 files every value "
        "of a set under the set's %s, so this value would land under \"%.64s\"; remove "
        "the set's %s or this value's",
        what, own, set, what, set, what);
    return false;
}

static void dhis2_value(struct reader_ctx *rd, struct report *r, const json_t *dv, size_t i,
                        const char *set_period, const char *set_ou, const char *set_aoc)
{
    char where[READER_WHERE_MAX], w[READER_WHERE_MAX];
    reader_where_fmt(where, "dataValues[%zu]", i);
    if (!json_is_object(dv)) {
        reader_problem(rd, where, "a data value must be an object, not %s", reader_type_name(dv));
        return;
    }
    const char *de, *coc, *pe, *ou, *aoc, *comment;
    struct period p = {.id = ""};
    bool ok = true;
    reader_where_fmt(w, "dataValues[%zu].dataElement", i);
    ok = reader_get_string(rd, dv, "dataElement", w, true, READER_CODE_MAX, &de) && ok;
    reader_where_fmt(w, "dataValues[%zu].categoryOptionCombo", i);
    ok = reader_get_string(rd, dv, "categoryOptionCombo", w, false, READER_CODE_MAX, &coc) && ok;
    reader_where_fmt(w, "dataValues[%zu].comment", i);
    ok = reader_get_string(rd, dv, "comment", w, false, READER_TEXT_MAX, &comment) && ok;

    reader_where_fmt(w, "dataValues[%zu].period", i);
    if (!reader_get_string(rd, dv, "period", w, false, READER_CODE_MAX, &pe))
        ok = false;
    else if (pe != NULL && !valid_period_id(rd, pe, w, &p))
        ok = false;
    else if (pe == NULL && set_period == NULL) {
        reader_problem(rd, w, "no period: set one on the data value set or on each data value");
        ok = false;
    }
    reader_where_fmt(w, "dataValues[%zu].orgUnit", i);
    if (!reader_get_string(rd, dv, "orgUnit", w, false, READER_CODE_MAX, &ou))
        ok = false;
    else if (ou == NULL && set_ou == NULL) {
        reader_problem(rd, w, "no orgUnit: set one on the data value set or on each data value");
        ok = false;
    }
    /* DHIS2 takes an attributeOptionCombo per data value (dhis2-core 2.41.0
     * dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/datavalue/
     * DataValue.java); the value keeps it when it is not the set's. */
    reader_where_fmt(w, "dataValues[%zu].attributeOptionCombo", i);
    if (!reader_get_string(rd, dv, "attributeOptionCombo", w, false, READER_CODE_MAX, &aoc))
        ok = false;
    else
        ok = same_as_set(rd, "attributeOptionCombo", set_aoc, aoc, w) && ok;
    reader_where_fmt(w, "dataValues[%zu].period", i);
    if (pe != NULL && p.id[0] != '\0')
        ok = same_as_set(rd, "period", set_period, p.id, w) && ok;
    reader_where_fmt(w, "dataValues[%zu].orgUnit", i);
    ok = same_as_set(rd, "orgUnit", set_ou, ou, w) && ok;

    const json_t *v = json_object_get(dv, "value");
    char num[READER_NUMBER_MAX];
    const char *value = NULL;
    reader_where_fmt(w, "dataValues[%zu].value", i);
    if (v == NULL || json_is_null(v)) {
        reader_problem(rd, w, "value is required");
        ok = false;
    } else if (json_is_number(v)) {
        reader_format_number(v, num);
        value = num;
    } else if (json_is_boolean(v)) {
        value = json_is_true(v) ? "true" : "false";
    } else if (!reader_get_string(rd, dv, "value", w, false, READER_TEXT_MAX, &value)) {
        ok = false;
    }
    if (!ok)
        return;

    struct report_value *rv = reader_add_value(rd, r, de, coc, value, comment, where);
    if (rv == NULL)
        return;
    reader_set_overrides(rd, r, rv, pe != NULL ? p.id : NULL, ou, aoc);
}

void reader_read_dhis2_json(struct reader_ctx *rd, struct report *r, const json_t *root)
{
    const char *ds, *pe, *ou, *aoc, *cd;
    if (reader_get_string(rd, root, "dataSet", "dataSet", false, READER_CODE_MAX, &ds))
        reader_set_field(rd, &r->data_set, ds);
    if (reader_get_string(rd, root, "completeDate", "completeDate", false, READER_CODE_MAX, &cd))
        reader_set_field(rd, &r->complete_date, cd);
    if (reader_get_string(rd, root, "attributeOptionCombo", "attributeOptionCombo", false,
                          READER_CODE_MAX, &aoc))
        reader_set_field(rd, &r->attribute_option_combo, aoc);
    /* A set-level period or orgUnit that is present but wrong is one problem, not one
     * more per data value: the values are then checked against "" (never matching). */
    struct period sp;
    if (!reader_get_string(rd, root, "period", "period", false, READER_CODE_MAX, &pe))
        pe = "";
    else if (pe != NULL && !valid_period_id(rd, pe, "period", &sp))
        pe = "";
    if (!reader_get_string(rd, root, "orgUnit", "orgUnit", false, READER_CODE_MAX, &ou))
        ou = "";

    const json_t *dvs = json_object_get(root, "dataValues");
    if (dvs == NULL || json_is_null(dvs)) {
        reader_problem(rd, "dataValues", "dataValues is required");
        return;
    }
    if (!json_is_array(dvs)) {
        reader_problem(rd, "dataValues", "dataValues must be an array, not %s",
                       reader_type_name(dvs));
        return;
    }
    if (json_array_size(dvs) == 0) {
        reader_problem(rd, "dataValues", "dataValues is empty");
        return;
    }

    /* The report's period and org unit: the set's, else the first data value's. */
    const char *rpe = pe && *pe ? pe : NULL, *rou = ou && *ou ? ou : NULL;
    for (size_t i = 0; i < json_array_size(dvs) && (rpe == NULL || rou == NULL); i++) {
        const json_t *dv = json_array_get(dvs, i);
        const char *s = json_string_value(json_object_get(dv, "period"));
        struct period p;
        if (rpe == NULL && s != NULL && period_parse(s, &p))
            rpe = s;
        s = json_string_value(json_object_get(dv, "orgUnit"));
        if (rou == NULL && s != NULL && *s != '\0' && strlen(s) <= READER_CODE_MAX)
            rou = s;
    }
    if (rpe != NULL) {
        struct period p;
        period_parse(rpe, &p);
        reader_set_report_period(rd, r, &p);
    }
    reader_set_field(rd, &r->org_unit, rou);

    for (size_t i = 0; i < json_array_size(dvs) && !reader_out_of_cpu(rd); i++)
        dhis2_value(rd, r, json_array_get(dvs, i), i, pe != NULL && *pe ? sp.id : pe, ou, aoc);
}

/* ------------------------------------------------------------------------------------
 * dhis2-csv
 *
 * DHIS2 reads a CSV data value set by column position, never by header name (dhis2-core
 * 2.41.0 dhis-2/dhis-services/dhis-service-dxf2/src/main/java/org/hisp/dhis/dxf2/
 * datavalueset/CsvDataValueSetReader.java; 2.36.0 .../dxf2/datavalue/StreamingCsvDataValue
 * .java), in the order of its own export header (CsvDataValueSetWriter.HEADER_ROW) below.
 * Whether the first row is a header is an import option, firstRowIsHeader, true by default
 * (.../dxf2/common/ImportOptions.java): DHIS2 drops the first row whatever it holds. hibus
 * has no such option and looks instead: the first row is a header when its first cell is
 * "dataelement" or its second "period" (case-insensitively; DHIS2's own test files spell
 * the first "dataelelement": dhis-2/dhis-test-integration/src/test/resources/dxf2/
 * datavalueset/dataValueSetB.csv). The parser (com.csvreader.CsvReader with its defaults,
 * CsvUtils.getReader) trims blanks around unquoted cells and skips empty records; hibus
 * does the same, and is otherwise RFC 4180: "," between cells, quoted cells with "" for a
 * quote and line breaks inside, CRLF or LF between rows.
 * ------------------------------------------------------------------------------------ */

enum {
    CSV_DE,
    CSV_PE,
    CSV_OU,
    CSV_COC,
    CSV_AOC,
    CSV_VALUE,
    CSV_STOREDBY,
    CSV_LASTUPDATED,
    CSV_COMMENT,
    CSV_FOLLOWUP,
    CSV_DELETED,
    CSV_COLUMNS
};

/* clang-format off */
static const char *const csv_names[CSV_COLUMNS] = {
    "dataelement", "period", "orgunit", "categoryoptioncombo", "attributeoptioncombo", "value",
    "storedby", "lastupdated", "comment", "followup", "deleted"};
/* clang-format on */

/* Rows of a DHIS2 CSV, read with the shared tokenizer (hibus/csv.h), trimmed. */
struct csv_rows {
    struct csv t;
    size_t row;                    /* 1-based, counting every row read */
    const char *cell[CSV_COLUMNS]; /* the first CSV_COLUMNS cells of the row (in t) */
    size_t ncells;                 /* all cells of the row, also those beyond */
    bool blank;                    /* every cell is empty */
};

static void csv_where(char *where, size_t row, size_t col)
{
    if (col < CSV_COLUMNS)
        reader_where_fmt(where, "row %zu, column %s", row, csv_names[col]);
    else
        reader_where_fmt(where, "row %zu, column %zu", row, col + 1);
}

/* Reads the next row into c->cell. 1: a row; 0: the end of the body; -1: a row with a
 * syntax problem (reported, skipped); -2: a problem that ends the body (reported). */
static int csv_row(struct reader_ctx *rd, struct csv_rows *c)
{
    int rc = csv_next(&c->t);
    if (rc == 0)
        return 0;
    c->row++;
    char where[READER_WHERE_MAX];
    csv_where(where, c->row, c->t.n); /* the cell being read when it went wrong */
    switch (rc < 0 ? c->t.err : CSV_E_NONE) {
    case CSV_E_NONE: break;
    case CSV_E_UNTERMINATED:
        reader_problem(
            rd, where,
            "a quoted cell opened on line %d is not closed (a quote inside a quoted cell "
            "is written \"\")",
            c->t.err_line);
        break;
    case CSV_E_AFTER_QUOTE:
        reader_problem(
            rd, where,
            "unexpected text after the closing quote of a cell (line %d): a quote inside a "
            "quoted cell is written \"\"",
            c->t.err_line);
        break;
    case CSV_E_QUOTE_IN_FIELD:
        reader_problem(
            rd, where,
            "a quote inside an unquoted cell (line %d): quote the whole cell and write the "
            "quote as \"\"",
            c->t.err_line);
        break;
    case CSV_E_TOO_LONG: /* no limit is set: cells are checked by column */
    case CSV_E_NOMEM: rd->nomem = true; break;
    }
    if (rc < 0)
        return rc;
    c->ncells = c->t.n;
    for (size_t k = 0; k < CSV_COLUMNS; k++)
        c->cell[k] = k < c->t.n ? c->t.f[k].s : NULL;
    c->blank = csv_blank(&c->t);
    return 1;
}

/* A cell as a value: NULL when empty or absent; a problem when too long. */
static const char *csv_cell(struct reader_ctx *rd, const struct csv_rows *c, size_t col,
                            bool required, size_t max, bool *ok)
{
    char where[READER_WHERE_MAX];
    const char *v = col < c->ncells ? c->cell[col] : NULL;
    csv_where(where, c->row, col);
    if (v == NULL || *v == '\0') {
        if (required) {
            reader_problem(rd, where, "%s is required", csv_names[col]);
            *ok = false;
        }
        return NULL;
    }
    if (strlen(v) > max) {
        reader_problem(rd, where, "%s is too long (%zu bytes, at most %zu)", csv_names[col],
                       strlen(v), max);
        *ok = false;
        return NULL;
    }
    return v;
}

static void csv_value(struct reader_ctx *rd, struct report *r, const struct csv_rows *c)
{
    char where[READER_WHERE_MAX];
    if (c->ncells <= CSV_VALUE) {
        reader_where_fmt(where, "row %zu", c->row);
        reader_problem(
            rd, where,
            "the row has %zu cells: DHIS2 reads CSV columns by position and needs at least "
            "6 (dataelement, period, orgunit, categoryoptioncombo, attributeoptioncombo, "
            "value)",
            c->ncells);
        return;
    }
    bool ok = true;
    struct period p = {.id = ""};
    const char *de = csv_cell(rd, c, CSV_DE, true, READER_CODE_MAX, &ok);
    const char *pe = csv_cell(rd, c, CSV_PE, true, READER_CODE_MAX, &ok);
    if (pe != NULL) {
        csv_where(where, c->row, CSV_PE);
        if (!valid_period_id(rd, pe, where, &p))
            ok = false;
        else if (r->period == NULL)
            reader_set_report_period(rd, r, &p);
    }
    const char *ou = csv_cell(rd, c, CSV_OU, true, READER_CODE_MAX, &ok);
    if (ou != NULL && r->org_unit == NULL)
        reader_set_field(rd, &r->org_unit, ou);
    const char *coc = csv_cell(rd, c, CSV_COC, false, READER_CODE_MAX, &ok);
    const char *aoc = csv_cell(rd, c, CSV_AOC, false, READER_CODE_MAX, &ok);
    const char *value = csv_cell(rd, c, CSV_VALUE, true, READER_TEXT_MAX, &ok);
    const char *comment = csv_cell(rd, c, CSV_COMMENT, false, READER_TEXT_MAX, &ok);
    if (!ok)
        return;
    reader_where_fmt(where, "row %zu", c->row);
    struct report_value *v = reader_add_value(rd, r, de, coc, value, comment, where);
    if (v != NULL)
        reader_set_overrides(rd, r, v, p.id, ou, aoc);
}

void reader_read_dhis2_csv(struct reader_ctx *rd, struct report *r, const void *body, size_t len)
{
    size_t skip;
    if (!reader_check_utf8(rd, body, len, "a DHIS2 CSV data value set", &skip))
        return;
    const char *nul = memchr(body, '\0', len);
    if (nul != NULL) {
        int line, col;
        char where[READER_WHERE_MAX];
        reader_line_col(body, (size_t)(nul - (const char *)body), &line, &col);
        reader_where_fmt(where, "line %d, column %d", line, col);
        reader_problem(rd, where, "the body contains a NUL byte (line %d, column %d)", line, col);
        return;
    }
    struct csv_rows c = {.row = 0};
    csv_init(&c.t, (const char *)body + skip, len - skip, true, 0);
    size_t rows = 0;
    bool first = true;
    int rc;
    while ((rc = csv_row(rd, &c)) != 0 && rc != -2 && !rd->nomem && !reader_out_of_cpu(rd)) {
        if (rc < 0) {
            first = false;
            continue;
        }
        if (c.blank)
            continue; /* a blank line, or a row of empty cells, as CsvReader skips them */
        bool header = first && ((c.cell[0] != NULL && strcasecmp(c.cell[0], "dataelement") == 0) ||
                                (c.cell[1] != NULL && strcasecmp(c.cell[1], "period") == 0));
        first = false;
        if (header)
            continue;
        rows++;
        csv_value(rd, r, &c);
    }
    csv_free(&c.t);
    if (rows == 0 && rd->n == 0)
        reader_problem(rd, "body", "the CSV has no data row");
}
