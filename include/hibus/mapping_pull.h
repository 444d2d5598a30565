/*
 * mapping_pull.h - hibus mapping pull: a mapping's code tables refreshed from
 * DHIS2's metadata. Three steps, so that the rules can be tested without a DHIS2:
 *   1. mapping_pull_fetch asks the DHIS2 of a dhis2 route for what the tables
 *      name (org units, data elements, category option combos);
 *   2. mapping_pull_plan compares the mapping with it and lists the edits
 *      (added, changed, removed rows), with notes for what it cannot decide;
 *   3. mapping_pull_rewrite_csv / _yaml give the new text of each file the
 *      mapping reads, the rows the pull did not decide kept as they are.
 * The rules are in docs/dhis2.md, "Keeping a mapping in step with DHIS2".
 * Single-threaded (a command, not the daemon).
 */
#ifndef HIBUS_MAPPING_PULL_H
#define HIBUS_MAPPING_PULL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/mapping.h"

enum pull_kind { PULL_ORG_UNIT, PULL_DATA_ELEMENT, PULL_COC, PULL_KINDS };
enum pull_change { PULL_ADD, PULL_CHANGE, PULL_REMOVE };

/* One row to add, one target to change, one row to remove. */
struct pull_edit {
    enum pull_kind kind;
    enum pull_change change;
    char *code;       /* org unit code, or item */
    char *measure;    /* PULL_COC: the measure */
    char *old_uid;    /* NULL for PULL_ADD */
    char *new_uid;    /* NULL for PULL_REMOVE */
    char *de;         /* PULL_COC added: the item's data element (for a CSV row) */
    char *name;       /* DHIS2's name of the new target, or NULL */
    const char *file; /* the file the row is in, or goes to (borrowed from the mapping) */
    bool skipped;     /* cannot be written where the row is (said in the plan's notes) */
};

struct pull_plan {
    struct pull_edit *v;
    size_t n, cap;
    size_t unchanged[PULL_KINDS]; /* rows DHIS2 confirms as they are */
    size_t kept[PULL_KINDS];      /* rows the pull cannot decide, kept as they are */
    json_t *notes;                /* array of sentences: what was not done, and why */
};

/* What DHIS2 said (mapping_pull_fetch fills it; the arrays hold objects as the
 * metadata API gives them). */
struct pull_meta {
    json_t *org_units;     /* candidates: the data set's org units, or all */
    json_t *ou_existing;   /* object: the targets (id or code) of mapped org units that
                              exist in DHIS2, candidates or not */
    json_t *data_elements; /* {id, code, name, categoryCombo{id}}: the data set's, and
                              those the items name by code or target */
    json_t *data_set_des;  /* object: ids of the data set's data elements; NULL
                              without a data set */
    json_t *cocs; /* {id, code, name, categoryCombo{id}, categoryOptions[{id,code,name}]} */
};

void mapping_pull_meta_free(struct pull_meta *meta);

/* Asks the DHIS2 behind route (a dhis2 route) for the metadata mapping m needs,
 * page_size objects a page. HIBUS_E_TARGET when DHIS2 cannot be asked or does
 * not know the mapping's data set. */
enum hibus_err mapping_pull_fetch(const struct config_route *route, const struct mapping *m,
                                  size_t page_size, struct pull_meta *meta,
                                  struct hibus_error *err);

/* The edits that bring m in step with meta. plan is zeroed first; free it with
 * mapping_pull_plan_free. */
void mapping_pull_plan(const struct mapping *m, const struct pull_meta *meta,
                       struct pull_plan *plan);
void mapping_pull_plan_free(struct pull_plan *plan);

/* The diff, one line per edit, table by table, then a summary and the notes. */
void mapping_pull_print(const struct pull_plan *plan, FILE *out);

/* The new text of a CSV table (items: the items_csv, else the org_units_csv) that
 * was read from file, whose current text is text[0..len): the plan's edits for that
 * file applied, every other row kept, rows to add at the end. *out is
 * NUL-terminated (caller frees). HIBUS_E_INVALID when text is not a table hibus
 * reads (the configuration changed under the pull). */
enum hibus_err mapping_pull_rewrite_csv(const char *text, size_t len, bool items, const char *file,
                                        const struct pull_plan *plan, char **out, size_t *out_len,
                                        struct hibus_error *err);

/* The same for the mapping's YAML file: targets replaced where they are written,
 * removed entries' lines deleted, added entries after the last one of their
 * table (or a new table at the end), comments and layout kept. What cannot be
 * written so (a table in flow style, a shared measure that items disagree on)
 * is left as it is and said in plan->notes. */
enum hibus_err mapping_pull_rewrite_yaml(const char *text, size_t len, const char *file,
                                         struct pull_plan *plan, char **out, size_t *out_len,
                                         struct hibus_error *err);

#endif
