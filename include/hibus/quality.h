/*
 * quality.h - data-quality rules on the canonical report.
 *
 * Rules (names as written in a channel's transform.quality list):
 *   non_negative       every numeric value >= 0, except the measure "adjustments"
 *                      (signed by definition)
 *   required_measures  each item has every measure in `measures` (default: all
 *                      eight R&R measures except "requested")
 *   balance            opening_balance + received - consumed - losses + adjustments
 *                      = stock_on_hand, within `tolerance` (absolute, default 0);
 *                      checked for items that have opening_balance, received,
 *                      consumed and stock_on_hand (absent losses and
 *                      adjustments count as 0)
 *   stockout_days      0 <= stockout_days <= the number of days in the period
 *   value_ceiling      every value (or those of `measures`) <= `max`
 *   numeric            every value of a canonical measure is a number
 * Each rule has an action: reject (default) or warn.
 * Pure functions over their arguments; thread-safe.
 */
#ifndef HIBUS_QUALITY_H
#define HIBUS_QUALITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/report.h"

enum quality_kind {
    QUALITY_NON_NEGATIVE,
    QUALITY_REQUIRED_MEASURES,
    QUALITY_BALANCE,
    QUALITY_STOCKOUT_DAYS,
    QUALITY_VALUE_CEILING,
    QUALITY_NUMERIC
};
enum quality_action { QUALITY_REJECT = 0, QUALITY_WARN = 1 };

struct quality_rule {
    enum quality_kind kind;
    enum quality_action action;
    double tolerance; /* balance */
    double max;       /* value_ceiling */
    char **measures;  /* required_measures, value_ceiling; n_measures 0 = the default */
    size_t n_measures;
};

bool quality_kind_parse(const char *name, enum quality_kind *out);
const char *quality_kind_name(enum quality_kind k);

/* Checks r (skipped values are ignored). Each violation is a JSON object
 * {"stage":"quality", "rule", "message", "facility", "item", "measure" (when one
 * measure is at fault), "period", "values": {measure: number, ...}} appended to
 * violations for reject rules and to warnings for warn rules. Returns the number
 * of reject violations. */
size_t quality_check(const struct quality_rule *rules, size_t n, const struct report *r,
                     json_t *violations, json_t *warnings);

#endif
