/*
 * dhis2.h - the DHIS2 side of the dhis2 mediator: the import URL, and the
 * import summary DHIS2 answers with, in both of its shapes:
 *   - before 2.38 (or a path pinned to /api/37/...): the bare ImportSummary,
 *     HTTP 200 even when values were ignored;
 *   - 2.38 and later: a WebMessage envelope {"httpStatus", "httpStatusCode",
 *     "status", "message", "response": ImportSummary}, HTTP 409 when the
 *     summary is WARNING or ERROR.
 * See ../shared/FORMATS.md section 1.4. Pure functions; thread-safe.
 */
#ifndef HIBUS_DHIS2_H
#define HIBUS_DHIS2_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/mapping.h"

struct dhis2_summary {
    char status[16]; /* the ImportSummary's status: SUCCESS, WARNING or ERROR */
    bool wrapped;    /* came in a 2.38+ WebMessage envelope */
    long imported, updated, ignored, deleted;
    json_t *conflicts; /* array of DHIS2's conflict objects, as sent; never NULL once parsed */
    json_t *rejected;  /* rejectedIndexes (DHIS2 2.39.2, 2.40.1, 2.41+) as sent, or NULL */
    char description[256];
    char data_set_complete[64]; /* dataSetComplete: "false", or the completion date DHIS2
                                   registered (completeDate with a data set) */
};

/* Parses an import summary of either shape. HIBUS_E_INVALID when body is not
 * one (then *out holds nothing to free). */
enum hibus_err dhis2_parse_summary(const char *body, size_t len, struct dhis2_summary *out,
                                   struct hibus_error *err);
void dhis2_summary_free(struct dhis2_summary *s);

/* The transaction status an import ends in, following DHIS2's own status and
 * conflicts, never the ignored count alone (dhis2-core DefaultDataValueSetService:
 * SUCCESS unless the summary has conflicts, then WARNING; ERROR when the whole
 * import failed). DHIS2 ignores values without a conflict in two ordinary cases:
 * zeros of data elements whose zeroIsSignificant is false, and (2.38+) values
 * re-sent unchanged; neither is an error.
 *   "successful"             2xx/409 with a summary: SUCCESS and no conflicts,
 *                            whatever the ignored count
 *   "completed_with_errors"  WARNING, or SUCCESS with conflicts (DHIS2's ADX import
 *                            can add a conflict after setting the status)
 *   "failed"                 no answer, 5xx, any other status, an ERROR summary (the
 *                            import was aborted), or an answer that is no summary
 * summary may be NULL (no parsable summary). */
const char *dhis2_outcome(long http_status, const struct dhis2_summary *summary);

/* The number of distinct rejected values: rejectedIndexes when DHIS2 sent it,
 * else the union of the conflicts' "indexes"; -1 when the summary says neither. */
long dhis2_rejected_count(const struct dhis2_summary *s);

/* {"status", "imported", "updated", "ignored", "deleted", "conflicts", "format"},
 * plus "description", "rejected_indexes" and "data_set_complete" (a date: DHIS2
 * registered the completion) when DHIS2 sent them, and
 * "ignored_without_conflict" (the ignored values no conflict explains, when that
 * can be told) for the attempt's details. Caller decrefs. */
json_t *dhis2_summary_json(const struct dhis2_summary *s);

/* <route url>/api/dataValueSets with the route's options as query parameters
 * (dryRun, importStrategy, idScheme; ADX gets idScheme=UID since hibus writes
 * UIDs and ADX would otherwise read codes). Caller frees. NULL when out of memory. */
char *dhis2_import_url(const struct config_route *route, const char *writer);

/* GET <route url><path> with the route's auth and TLS settings; the JSON answer
 * into *doc (caller decrefs). HIBUS_E_TARGET, with the URL and a hint for 401/403,
 * when DHIS2 cannot be reached, answers other than 200, or not with JSON. */
enum hibus_err dhis2_get(const struct config_route *route, const char *path, json_t **doc,
                         struct hibus_error *err);

/* Every object of /api/<resource>?<query>, page after page of page_size (DHIS2's
 * page, pageSize and pager.pageCount), appended to the array out. query holds
 * filter= and fields= parameters, already escaped. */
enum hibus_err dhis2_get_all(const struct config_route *route, const char *resource,
                             const char *query, size_t page_size, json_t *out,
                             struct hibus_error *err);

/* The objects of /api/<resource> whose prop ("id", "code") is one of values[0..n),
 * with fields, asked in batches of filter=PROP:in:[...] (an identifier that cannot
 * stand in such a list is asked alone with PROP:eq:), appended to out. Identifiers
 * DHIS2 does not know are simply absent. */
enum hibus_err dhis2_get_in(const struct config_route *route, const char *resource,
                            const char *prop, const char *const *values, size_t n,
                            const char *fields, json_t *out, struct hibus_error *err);

/* Percent-encodes s (all but RFC 3986 unreserved characters) onto out[cap];
 * returns the length written. */
int dhis2_url_escape(char *out, size_t cap, const char *s);

/* hibus check --remote: asks the DHIS2 behind route for /api/system/info and
 * for every UID mapping m names (org units, data elements, category option
 * combos, attribute option combo, data set), in batches with filter=id:in:[..].
 * Each UID that DHIS2 does not know is appended to missing as a sentence naming
 * the mapping, the kind, the UID and the code it maps. *version gets DHIS2's
 * version. HIBUS_E_TARGET when DHIS2 cannot be asked (unreachable, 401, ...). */
struct mapping;
enum hibus_err dhis2_check_remote(const struct config_route *route, const struct mapping *m,
                                  char *version, size_t version_len, json_t *missing,
                                  struct hibus_error *err);
/* The same, and where each mapped org unit sits in DHIS2's hierarchy: paths (when
 * not NULL) gets {UID: {"path": "/ROOT/.../UID", "code": the mapped code}} for every
 * mapped org unit DHIS2 has, so that a move can be told from the last check's. */
enum hibus_err dhis2_check_remote_paths(const struct config_route *route, const struct mapping *m,
                                        char *version, size_t version_len, json_t *missing,
                                        json_t *paths, struct hibus_error *err);

/* Drift between the configuration and the DHIS2s its dhis2 routes deliver to, for
 * check --remote and GET /api/drift: for every distinct (DHIS2 URL, mapping) pair,
 * {channel, route, url, mapping, file, version | error, problems: [sentences],
 * moved: [{uid, code, old_path, path, seen_at, message}]}, under "dhis2"; moves
 * come from the paths the log remembers (tl may be NULL: then, or when the log
 * cannot be read, "moves_not_compared" says why). Calls DHIS2; caller decrefs. */
struct config;
struct txlog;
json_t *dhis2_drift(const struct config *cfg, struct txlog *tl);

#endif
