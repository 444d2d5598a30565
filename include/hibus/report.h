/*
 * report.h - the canonical report: what every reader produces and every writer
 * consumes, whatever the format on the wire.
 *
 * A report has one org unit and one period (per-value overrides exist for
 * dhis2-json and adx inputs, which may mix several), and a list of values
 * {item, measure, value, comment}. The measures of a stock report are the R&R
 * columns (REPORT_MEASURES). Readers fill the source's codes; mapping_apply()
 * fills the DHIS2 UIDs beside them, so a message can always name both.
 *
 * Problems found by any stage (reader, mapping, quality) are JSON objects
 * appended to a jansson array, so that the 422 answer, the transaction log and
 * `hibus map` all show the same list. Each has at least "stage" and "message",
 * and, where they apply: "where" (position in the payload, e.g. "lines[2].consumed"),
 * "rule", "facility", "item", "measure", "values" (object), "code".
 *
 * Not thread-safe: one report belongs to one thread.
 */
#ifndef HIBUS_REPORT_H
#define HIBUS_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"

/* The canonical measures of a stock report, NULL-terminated. */
extern const char *const REPORT_MEASURES[];
/* Indexes into REPORT_MEASURES. */
enum report_measure {
    REPORT_OPENING_BALANCE,
    REPORT_RECEIVED,
    REPORT_CONSUMED,
    REPORT_LOSSES,
    REPORT_ADJUSTMENTS,
    REPORT_STOCK_ON_HAND,
    REPORT_STOCKOUT_DAYS,
    REPORT_REQUESTED,
};
bool report_is_measure(const char *name);
/* The REPORT_MEASURES pointer equal to name, or name itself when it is none. */
const char *report_measure_canonical(const char *name);
/* Whether two measures (either may be NULL) are the same; no strcmp when both are
 * REPORT_MEASURES pointers. */
bool report_measure_eq(const char *a, const char *b);

struct report_value {
    char *item;     /* commodity (or source data element) code; never NULL */
    char *measure;  /* canonical measure, or the source's disaggregation code; may be NULL */
    char *value;    /* as text, exactly as it will be sent */
    bool is_number; /* value parsed as a finite number */
    double number;
    char *comment;                /* may be NULL */
    char *org_unit;               /* per-value org unit code; NULL = the report's */
    char *period;                 /* per-value DHIS2 period id; NULL = the report's */
    char *attribute_option_combo; /* per-value source AOC code (dhis2-json, csv, an ADX
                                     group's); NULL = the report's */
    char *annotation;             /* ADX <annotation>: DHIS2 takes it as the value of a non-numeric
                                     data element and drops it for a numeric one; NULL if none */
    char *where;                  /* position in the payload, for messages; may be NULL */
    /* item, measure, value, comment and where live in one allocation (strings); a
     * value replaced later (report_value_set) is its own (value_own). Change them
     * only through report_value_set. */
    char *strings;
    bool value_own;

    /* Set by mapping_apply(): */
    char *de_uid;
    char *coc_uid;          /* NULL = the default category option combo */
    bool item_uids_mapping; /* de_uid and coc_uid point into the mapping (not freed
                               here): valid while the configuration that holds the
                               mapping is held, as it is for every delivery_prepare()
                               caller. Set them only through report_value_item_uids() */
    char *aoc_uid;          /* NULL = the report's */
    char *ou_uid;           /* NULL = the report's */
    bool skipped;           /* unmapped under the skip policy: not delivered */
    bool is_text;           /* value is a non-numeric data element's text (from an ADX annotation):
                               the adx writer sends it as DHIS2 does, value="0" and <annotation> */
};

struct report {
    char *reader;                 /* which reader produced it */
    char *source_id;              /* the source's own id of the report, if any */
    char *data_set;               /* data set code or UID from the payload; may be NULL */
    char *period;                 /* DHIS2 period id, e.g. "202610" */
    char *period_start;           /* ISO date of the period's first day */
    char *period_end;             /* ISO date of its last day */
    char *source_period;          /* the source's own id of a period it gives no dates for
                                     (an OpenLMIS v2 processingPeriod {id, href}); the
                                     mapping's periods: table translates it. May be NULL */
    char *org_unit;               /* facility code in the source's terms */
    char *complete_date;          /* may be NULL */
    char *attribute_option_combo; /* source's AOC code; may be NULL */
    char *exported;               /* the adx writer's exported timestamp; NULL: now (UTC) */

    struct report_value *values;
    size_t n_values;
    size_t cap_values;

    /* Set by mapping_apply(): */
    char *ou_uid;
    char *data_set_uid;
    char *aoc_uid;
};

struct report *report_new(const char *reader);
void report_free(struct report *r);

/* Appends a value (strings are copied; comment, where may be NULL). Sets
 * is_number/number from the text. Returns the new value or NULL (no memory). */
struct report_value *report_add(struct report *r, const char *item, const char *measure,
                                const char *value, const char *comment, const char *where);

/* Replaces v->value with a copy of s (not NULL), and its number with s's. false when
 * out of memory (v unchanged). */
bool report_value_set(struct report_value *v, const char *s);

/* Points v's de_uid and coc_uid at a mapping's strings (either may be NULL). */
void report_value_item_uids(struct report_value *v, const char *de_uid, const char *coc_uid);

/* Replaces *field with a copy of s (NULL allowed). false when out of memory. */
bool report_set(char **field, const char *s);

/* Appends {"stage": stage, "message": printf(...)} to problems and returns the
 * new object (borrowed), so the caller can add more keys. */
json_t *report_problem(json_t *problems, const char *stage, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);

/* The report as JSON (for `hibus map` and tests). Caller decrefs. */
json_t *report_to_json(const struct report *r);

#endif
