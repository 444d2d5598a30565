/*
 * writers.h - a mapped canonical report out, in DHIS2's formats.
 *
 *   dhis2-datavalueset  DHIS2 dataValueSets JSON (application/json)
 *   adx                 ADX XML (application/adx+xml), UIDs, with the explicit
 *                       categoryOptionCombo attribute; the dhis2 mediator sends
 *                       idScheme=UID with it
 *
 * Only values with a data element UID that are not skipped are written.
 * Thread-safe.
 */
#ifndef HIBUS_WRITERS_H
#define HIBUS_WRITERS_H

#include <stdbool.h>
#include <stddef.h>

#include "hibus/error.h"
#include "hibus/report.h"

bool writer_known(const char *name);
extern const char *const WRITER_NAMES[];

/* *body is NUL-terminated, caller frees; *content_type is static. */
enum hibus_err writer_write(const char *name, const struct report *r, char **body, size_t *len,
                            const char **content_type, struct hibus_error *err);

#endif
