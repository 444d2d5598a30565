/*
 * readers.h - payload formats in, each turned into a canonical report.
 *
 *   lmis-report           hibus's R&R-style JSON (docs/formats.md, docs/lmis-report.schema.json)
 *   openlmis-requisition  an OpenLMIS v3 requisition with its requisitionLineItems
 *   dhis2-json            a DHIS2 dataValueSet written in the source's codes
 *   adx                   ADX XML (urn:ihe:qrph:adx:2015), codes; DTDs and entities refused
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

/* Parses body. On success *out is a new report (caller report_free's). On a
 * malformed payload returns HIBUS_E_INVALID and appends every problem found
 * ({"stage":"reader", "where": ..., "message": ...}) to problems. */
enum hibus_err reader_parse(const char *name, const void *body, size_t len, struct report **out,
                            json_t *problems);

#endif
