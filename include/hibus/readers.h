/*
 * readers.h - payload formats in, each turned into a canonical report.
 *
 *   lmis-report           hibus's R&R-style JSON (docs/formats.md, docs/lmis-report.schema.json)
 *   openlmis-requisition  an OpenLMIS v3 requisition with its requisitionLineItems
 *   dhis2-json            a DHIS2 dataValueSet written in the source's codes
 *   adx                   ADX XML (urn:ihe:qrph:adx:2015), codes; DTDs and entities refused
 *   dhis2-csv             DHIS2's CSV data value set (application/csv), codes
 *
 * Thread-safe (libxml2 is initialised once by reader_global_init).
 */
#ifndef HIBUS_READERS_H
#define HIBUS_READERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"
#include "hibus/report.h"

void reader_global_init(void);
void reader_global_cleanup(void);
bool reader_known(const char *name);
/* NULL-terminated list of reader names. */
extern const char *const READER_NAMES[];

/* Per-channel reader settings (transform.losses in a channel file).
 * openlmis-requisition: a stock adjustment whose reason (resolved by reasonId in the
 * requisition's stockAdjustmentReasons) is DEBIT counts as a loss when its name is in
 * loss_reasons or its reasonCategory is in loss_categories; every other adjusted
 * quantity goes to adjustments (signed). Both lists NULL: the defaults
 * (READER_DEFAULT_LOSS_CATEGORIES). Names and categories compare case-insensitively.
 * A reason the requisition marks "hidden": true (OpenLMIS's own system reasons:
 * Consumed, Beginning Balance Insufficiency...) is a loss only by name, never by
 * category (docs/formats.md says why). */
struct reader_options {
    const char *const *loss_reasons;    /* NULL-terminated, or NULL */
    const char *const *loss_categories; /* NULL-terminated, or NULL */
    size_t max_values;                  /* limits.max_values: more data values in one payload are a
                                           problem (each costs memory all along the pipeline); 0: the
                                           default, READER_DEFAULT_MAX_VALUES */
};
#define READER_DEFAULT_MAX_VALUES 100000
extern const char *const READER_DEFAULT_LOSS_CATEGORIES[];

/* Parses body. On success *out is a new report (caller report_free's). On a
 * malformed payload returns HIBUS_E_INVALID and appends every problem found
 * ({"stage":"reader", "where": ..., "message": ...}) to problems. */
enum hibus_err reader_parse(const char *name, const void *body, size_t len, struct report **out,
                            json_t *problems);
/* The same with per-channel settings; opts may be NULL (the defaults). */
enum hibus_err reader_parse_opts(const char *name, const void *body, size_t len,
                                 const struct reader_options *opts, struct report **out,
                                 json_t *problems);

#endif
