/*
 * mapping.h - code tables: facility code -> org unit UID, (item, measure) ->
 * (data element UID, category option combo UID), plus the target data set,
 * period type and attribute option combo. A mapping is loaded by config_load
 * (mappings/NAME.yaml, with CSV for long lists) into the immutable snapshot and
 * shared by every channel that names it.
 *
 * mapping_apply() fills the UIDs of a report in place and converts its period
 * to the mapping's period type. Thread-safe for lookups (read-only data).
 */
#ifndef HIBUS_MAPPING_H
#define HIBUS_MAPPING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"
#include "hibus/period.h"
#include "hibus/report.h"

/* One row of a code table: a source code and the DHIS2 UID it stands for. */
struct mapping_code {
    char *code;
    char *uid;
    const char *from; /* the file the row was read from (the mapping's YAML file or its
                         org_units_csv), borrowed from the snapshot; NULL for tables that
                         only YAML holds */
};

/* One flattened row. measure NULL: values without a measure (the default
 * category option combo). coc_uid NULL: the default category option combo. */
struct mapping_item {
    char *item;
    char *measure;
    char *de_uid;
    char *coc_uid;
    char *value_type; /* the data element's DHIS2 valueType when the mapping declares it
                         (items.X.value_type), else NULL; decides what an ADX annotation is */
    const char *from; /* the file the row was read from (the YAML file or items_csv),
                         borrowed from the snapshot: hibus mapping pull edits it there */
};

/* The kinds of DHIS2 object a mapping names, each with its id scheme. */
enum mapping_kind {
    MAPPING_DATA_ELEMENT,
    MAPPING_ORG_UNIT,
    MAPPING_COC, /* category option combos, and attribute option combos (as in DHIS2) */
    MAPPING_DATA_SET,
    MAPPING_KINDS
};
/* "data_element", "org_unit", "category_option_combo", "data_set" */
extern const char *const MAPPING_KIND_NAMES[MAPPING_KINDS];
/* DHIS2's import parameters: "dataElementIdScheme", "orgUnitIdScheme", ... */
extern const char *const MAPPING_KIND_PARAMS[MAPPING_KINDS];

struct mapping {
    char *name; /* file name without .yaml */
    char *file;
    char *data_set_uid;   /* may be NULL */
    bool has_period_type; /* else the report's period is sent as it is */
    enum period_type period_type;
    char *aoc_uid;                  /* default attribute option combo; may be NULL */
    struct mapping_code *org_units; /* sorted by code (mapping_sort) */
    size_t n_org_units;
    /* Optional translation tables for what a source names itself (dhis2-json,
     * dhis2-csv, adx): data_sets: { CODE: UID } and attribute_option_combos:
     * { CODE: UID } (an ADX group's exploded categories as "CAT=OPT[,CAT=OPT]"). */
    struct mapping_code *data_sets; /* sorted by code */
    size_t n_data_sets;
    struct mapping_code *aocs; /* sorted by code */
    size_t n_aocs;
    /* periods: { SOURCE_PERIOD_ID: DHIS2 period id }, for sources that name a period
     * without its dates (OpenLMIS v2 processingPeriod ids); uid holds the canonical
     * DHIS2 id. Sorted by code. */
    struct mapping_code *periods;
    size_t n_periods;
    /* id_schemes: { data_element: CODE, ... }: what the mapping's targets of each
     * kind are in DHIS2 ("UID" or "CODE"); never NULL once loaded (default "UID").
     * The dhis2 mediator sends DHIS2 the matching *IdScheme parameters. */
    const char *id_schemes[MAPPING_KINDS];
    struct mapping_item *items; /* sorted by (item, measure) (mapping_sort) */
    size_t n_items;
    /* The CSV files the tables were read from (org_units_csv, items_csv), as paths
     * hibus can open; NULL when the mapping has none. */
    char *org_units_csv;
    char *items_csv;
    /* pull: { org_unit_attribute: UID }: hibus mapping pull finds org units by the
     * value of this DHIS2 attribute rather than by their code. NULL: by code. */
    char *pull_org_unit_attribute;
};

enum mapping_policy { MAPPING_REJECT = 0, MAPPING_SKIP = 1 };

/* Sorts the tables for lookups; returns false and names the first duplicate
 * (*dup_code, borrowed) when a code or (item, measure) appears twice. */
bool mapping_sort(struct mapping *m, const char **dup_code);
const char *mapping_org_unit(const struct mapping *m, const char *code);
/* data_sets / attribute_option_combos lookups; NULL when absent. */
const char *mapping_data_set(const struct mapping *m, const char *code);
const char *mapping_aoc(const struct mapping *m, const char *code);
const char *mapping_period(const struct mapping *m, const char *code);
/* Is a DHIS2 valueType name numeric (NUMBER, INTEGER*, PERCENTAGE, UNIT_INTERVAL)? */
bool mapping_value_type_numeric(const char *value_type);
/* Is it one of DHIS2's ValueType names? */
bool mapping_value_type_known(const char *value_type);
/* Is s shaped like a DHIS2 UID (11 characters, a letter then letters or digits)? */
bool mapping_is_uid(const char *s);
/* The id scheme of kind k in m ("UID" when m is NULL or says nothing). */
const char *mapping_id_scheme(const struct mapping *m, enum mapping_kind k);
/* Can s be sent as an identifier of kind k as it is (a UID under UID, any
 * non-empty text under CODE)? */
bool mapping_id_valid(const struct mapping *m, enum mapping_kind k, const char *s);
const struct mapping_item *mapping_item(const struct mapping *m, const char *item,
                                        const char *measure);
void mapping_free(struct mapping *m); /* frees the contents and m; NULL-safe */

/* Maps r in place: org unit(s), every value's data element and category option
 * combo, the data set and attribute option combo, and the period (converted to
 * the mapping's period type when it has one; a report period that does not fit
 * in one target period is a problem).
 * Data set: the source's, translated through data_sets when the mapping has that
 * table (an unknown code is a problem); without the table the mapping's data_set
 * wins (the source names its data set in its own codes); without either the
 * source's is sent as it is when it is a DHIS2 UID.
 * Attribute option combo (per value, else the report's): the source's wins,
 * translated through attribute_option_combos when the mapping has that table (an
 * unknown code is unmapped: reject or skip), else sent as it is when it is a
 * DHIS2 UID (otherwise a problem); a source that names none gets the mapping's
 * attribute_option_combo (none: DHIS2's default).
 * ADX annotations: an item whose value_type is not numeric sends the annotation
 * as its value (as DHIS2's ADX import does); a numeric one drops it, as DHIS2
 * does; an annotation on an item without value_type is a problem, since only
 * the data element's type can tell which DHIS2 would keep.
 * Unmapped codes: under MAPPING_REJECT each is a problem ({"stage":"mapping",
 * "code": ..., "kind": "org_unit"|"item", "where": ...}) and the result is
 * HIBUS_E_INVALID; under MAPPING_SKIP each unmapped value is marked skipped and
 * described in skipped (same shape), and the result is HIBUS_OK unless nothing
 * deliverable is left or the org unit or period itself cannot be mapped. */
enum hibus_err mapping_apply(const struct mapping *m, struct report *r, enum mapping_policy policy,
                             json_t *problems, json_t *skipped);

#endif
