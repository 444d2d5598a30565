/*
 * quality.c - data-quality rules on the canonical report (see hibus/quality.h).
 *
 * Entry points: quality_kind_parse, quality_kind_name, quality_check.
 *
 * quality_check() ignores skipped values. It groups the others by (facility
 * code, period, item), where facility and period are the value's override or
 * else the report's; groups are visited in the order of their first value, and
 * per-value rules visit values in report order, so violations read in the order
 * of the payload. Arithmetic uses only values that parsed as numbers; text in a
 * canonical measure is the "numeric" rule's business, and the other rules pass
 * over it.
 *
 * Decisions:
 *  - balance applies to an item that has opening_balance, received, consumed
 *    and stock_on_hand, all numeric; losses and adjustments count as 0 when
 *    absent (many LMIS forms leave them empty when nothing happened). If any
 *    involved measure is present but not a number the rule does not apply.
 *    "values" lists only the measures present. |difference| <= tolerance passes;
 *    the expected stock and the difference are rounded to millionths first, so
 *    binary rounding of decimal quantities (0.1 + 0.2 is not 0.3 in a double)
 *    is not reported; no stock quantity has more than six decimals.
 *  - stockout_days needs a whole number between 0 and the number of days of the
 *    value's period: period_parse() of the period id, or, without one, the
 *    report's period_start..period_end. When neither gives a period, only the
 *    lower bound and the whole-number check apply.
 *  - required_measures: a measure counts as present when a value carries it,
 *    numeric or not. One violation per item lists every missing measure.
 *  - value_ceiling without measures applies to the canonical measures.
 *  - Losses and adjustments by reason (measures "losses:REASON" and
 *    "adjustments:REASON") take part in no arithmetic: balance, required_measures
 *    and stockout_days use the canonical totals only, and the breakdown need not
 *    add up to its total (a source may explain only part of it). non_negative
 *    checks them like any value, except that an adjustment by reason, like the
 *    adjustments total, may be negative.
 *  - Messages are built in bounded buffers; one that would not fit is cut and
 *    ends in "..." (a message, unlike an input, may be shortened).
 */
#include "hibus/quality.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/period.h"

/* ------------------------------------------------------------------ */
/* Rule names                                                          */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum quality_kind kind;
} kinds[] = {{"non_negative", QUALITY_NON_NEGATIVE},
             {"required_measures", QUALITY_REQUIRED_MEASURES},
             {"balance", QUALITY_BALANCE},
             {"stockout_days", QUALITY_STOCKOUT_DAYS},
             {"value_ceiling", QUALITY_VALUE_CEILING},
             {"numeric", QUALITY_NUMERIC},
             {NULL, 0}};

bool quality_kind_parse(const char *name, enum quality_kind *out)
{
    for (size_t i = 0; name != NULL && kinds[i].name != NULL; i++)
        if (strcmp(name, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return true;
        }
    return false;
}

/* A switch with no default: -Wswitch flags a kind added without a name. */
const char *quality_kind_name(enum quality_kind k)
{
    switch (k) {
    case QUALITY_NON_NEGATIVE: return "non_negative";
    case QUALITY_REQUIRED_MEASURES: return "required_measures";
    case QUALITY_BALANCE: return "balance";
    case QUALITY_STOCKOUT_DAYS: return "stockout_days";
    case QUALITY_VALUE_CEILING: return "value_ceiling";
    case QUALITY_NUMERIC: return "numeric";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ */
/* Bounded message buffer                                              */
/* ------------------------------------------------------------------ */

struct msgbuf {
    char s[1024];
    size_t len;
};

static void mb_printf(struct msgbuf *b, const char *fmt, ...) HIBUS_PRINTF(2, 3);

static void mb_printf(struct msgbuf *b, const char *fmt, ...)
{
    if (b->len >= sizeof b->s - 1)
        return; /* already full (and marked) */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->len, sizeof b->s - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof b->s - b->len) {
        b->len = sizeof b->s - 1;
        memcpy(b->s + b->len - 3, "...", 3);
    } else {
        b->len += (size_t)n;
    }
}

/* A quantity as people write it: 1200, -10, 2.5 (up to 15 significant digits). */
static void fmt_num(char out[32], double d)
{
    snprintf(out, 32, "%.15g", d);
}

/* An integral number as a JSON integer (1200, not 1200.0), anything else as a real. */
static json_t *json_num(double d)
{
    if (d == floor(d) && fabs(d) < 9007199254740992.0) /* 2^53: exact in a double */
        return json_integer((json_int_t)d);
    return json_real(d);
}

/* ------------------------------------------------------------------ */
/* Grouping                                                            */
/* ------------------------------------------------------------------ */

/* One non-skipped value with its grouping key (borrowed strings). */
struct keyed {
    const char *facility, *period, *item;
    size_t index; /* in r->values */
};

/* A run of entries of check.keyed with the same key. */
struct group {
    size_t first; /* position in keyed */
    size_t n;
    size_t order; /* index in r->values of the group's first value */
};

struct check {
    const struct report *r;
    json_t *violations;
    json_t *warnings;
    size_t rejected;
    bool nomem;
    struct keyed *keyed; /* sorted by (facility, period, item, index) */
    size_t n_keyed;
    struct group *groups; /* in the order of their first value in the report */
    size_t n_groups;
};

static const char *value_facility(const struct report *r, const struct report_value *v)
{
    return v->org_unit != NULL ? v->org_unit : r->org_unit;
}

static const char *value_period(const struct report *r, const struct report_value *v)
{
    return v->period != NULL ? v->period : r->period;
}

static int cmp_str(const char *a, const char *b)
{
    if (a == b) /* the report's own facility and period, mostly */
        return 0;
    if (a == NULL || b == NULL)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int cmp_key(const struct keyed *a, const struct keyed *b)
{
    int c = cmp_str(a->facility, b->facility);
    if (c == 0)
        c = cmp_str(a->period, b->period);
    if (c == 0)
        c = cmp_str(a->item, b->item);
    return c;
}

static int cmp_keyed(const void *x, const void *y)
{
    const struct keyed *a = x, *b = y;
    int c = cmp_key(a, b);
    return c != 0 ? c : (a->index > b->index) - (a->index < b->index);
}

static int cmp_group(const void *x, const void *y)
{
    const struct group *a = x, *b = y;
    return (a->order > b->order) - (a->order < b->order);
}

/* A run of consecutive values with one key, in report order. */
struct key_run {
    struct keyed first;
    size_t start, n; /* in report-ordered keyed */
};

static int cmp_run(const void *x, const void *y)
{
    const struct key_run *a = x, *b = y;
    return cmp_keyed(&a->first, &b->first);
}

/* Builds keyed and groups. false when out of memory. A report's values come in runs
 * of one key (the measures of a line follow each other), so the runs are sorted
 * rather than the values: the same order (key, then index), with a fraction of the
 * comparisons. */
static bool group_values(struct check *c)
{
    const struct report *r = c->r;
    if (r->n_values == 0)
        return true;
    struct keyed *in_order = malloc(r->n_values * sizeof *in_order);
    struct key_run *runs = malloc(r->n_values * sizeof *runs);
    c->keyed = malloc(r->n_values * sizeof *c->keyed);
    c->groups = malloc(r->n_values * sizeof *c->groups);
    bool ok = in_order != NULL && runs != NULL && c->keyed != NULL && c->groups != NULL;
    size_t n = 0, n_runs = 0;
    for (size_t i = 0; ok && i < r->n_values; i++) {
        const struct report_value *v = &r->values[i];
        if (v->skipped)
            continue;
        in_order[n] = (struct keyed){value_facility(r, v), value_period(r, v), v->item, i};
        if (n == 0 || cmp_key(&in_order[n - 1], &in_order[n]) != 0)
            runs[n_runs++] = (struct key_run){in_order[n], n, 0};
        runs[n_runs - 1].n++;
        n++;
    }
    if (ok && n_runs > 1)
        qsort(runs, n_runs, sizeof *runs, cmp_run);
    for (size_t k = 0; ok && k < n_runs; k++) {
        memcpy(c->keyed + c->n_keyed, in_order + runs[k].start, runs[k].n * sizeof *c->keyed);
        c->n_keyed += runs[k].n;
    }
    free(in_order);
    free(runs);
    if (!ok)
        return false;
    for (size_t k = 0; k < c->n_keyed; k++) {
        if (k == 0 || cmp_key(&c->keyed[k - 1], &c->keyed[k]) != 0)
            c->groups[c->n_groups++] = (struct group){k, 0, c->keyed[k].index};
        c->groups[c->n_groups - 1].n++;
    }
    /* Sorted by key, a group's first entry is its first value (index breaks ties). */
    if (c->n_groups > 1)
        qsort(c->groups, c->n_groups, sizeof *c->groups, cmp_group);
    return true;
}

/* The first value of group g with this measure, or NULL. */
static const struct report_value *group_find(const struct check *c, const struct group *g,
                                             const char *measure)
{
    for (size_t k = g->first; k < g->first + g->n; k++) {
        const struct report_value *v = &c->r->values[c->keyed[k].index];
        if (report_measure_eq(v->measure, measure))
            return v;
    }
    return NULL;
}

static const struct report_value *group_value(const struct check *c, const struct group *g)
{
    return &c->r->values[c->keyed[g->first].index];
}

/* ------------------------------------------------------------------ */
/* Violations                                                          */
/* ------------------------------------------------------------------ */

static void set_opt(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

/* " at \"FAC\" in 202610" for messages: where the value belongs. */
static void mb_place(struct msgbuf *b, const struct report *r, const struct report_value *v)
{
    const char *fac = value_facility(r, v), *per = value_period(r, v);
    if (fac != NULL)
        mb_printf(b, " at \"%s\"", fac);
    if (per != NULL)
        mb_printf(b, " in %s", per);
    else if (r->period_start != NULL && r->period_end != NULL)
        mb_printf(b, " in %s to %s", r->period_start, r->period_end);
}

/* Appends a violation for value v (any value of the group) and returns it
 * (borrowed) so the caller can add "values" and more; NULL when out of memory. */
static json_t *violation(struct check *c, const struct quality_rule *rule,
                         const struct report_value *v, const char *measure, const struct msgbuf *b)
{
    json_t *arr = rule->action == QUALITY_WARN ? c->warnings : c->violations;
    json_t *o = json_pack("{s:s, s:s, s:s}", "stage", "quality", "rule",
                          quality_kind_name(rule->kind), "message", b->s);
    if (o == NULL || json_array_append_new(arr, o) != 0) {
        c->nomem = true;
        return NULL;
    }
    if (rule->action == QUALITY_REJECT)
        c->rejected++;
    set_opt(o, "facility", value_facility(c->r, v));
    set_opt(o, "item", v->item);
    set_opt(o, "measure", measure);
    set_opt(o, "period", value_period(c->r, v));
    return o;
}

/* Adds "values": {measure: number} for the given values (NULL entries and
 * non-numbers left out). */
static void add_values(json_t *o, const struct report_value *const *vals, size_t n)
{
    json_t *vo = json_object();
    for (size_t i = 0; i < n; i++)
        if (vals[i] != NULL && vals[i]->is_number && vals[i]->measure != NULL)
            json_object_set_new(vo, vals[i]->measure, json_num(vals[i]->number));
    json_object_set_new(o, "values", vo);
}

/* "consumed 640 for \"AMOX250\"" (or "value 640 for ..." without a measure). */
static void mb_value(struct msgbuf *b, const struct report_value *v)
{
    char num[32];
    fmt_num(num, v->number);
    if (v->measure != NULL)
        mb_printf(b, "%s %s for \"%s\"", v->measure, num, v->item);
    else
        mb_printf(b, "value %s for \"%s\"", num, v->item);
}

/* ------------------------------------------------------------------ */
/* Rules                                                               */
/* ------------------------------------------------------------------ */

static bool in_list(const char *s, char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cmp_str(s, list[i]) == 0)
            return true;
    return false;
}

/* An adjustment by reason ("adjustments:Found in store", an lmis-report line's
 * adjustments_by_reason) is signed like the adjustments total it breaks down; a loss
 * by reason ("losses:Expired") is not. */
static bool is_adjustment_by_reason(const char *measure)
{
    static const char prefix[] = "adjustments:";
    return measure != NULL && strncmp(measure, prefix, sizeof prefix - 1) == 0;
}

static void rule_non_negative(struct check *c, const struct quality_rule *rule)
{
    for (size_t k = 0; k < c->r->n_values; k++) {
        const struct report_value *v = &c->r->values[k];
        if (v->skipped || !v->is_number || v->number >= 0 ||
            report_measure_eq(v->measure, REPORT_MEASURES[REPORT_ADJUSTMENTS]) ||
            is_adjustment_by_reason(v->measure))
            continue;
        struct msgbuf b = {.len = 0};
        mb_printf(&b, "negative ");
        mb_value(&b, v);
        mb_place(&b, c->r, v);
        mb_printf(&b, "; only adjustments may be negative, fix the value at the source");
        json_t *o = violation(c, rule, v, v->measure, &b);
        if (o != NULL) {
            add_values(o, &v, 1);
            set_opt(o, "where", v->where);
        }
    }
}

static void rule_numeric(struct check *c, const struct quality_rule *rule)
{
    for (size_t k = 0; k < c->r->n_values; k++) {
        const struct report_value *v = &c->r->values[k];
        if (v->skipped || v->is_number || !report_is_measure(v->measure))
            continue;
        struct msgbuf b = {.len = 0};
        mb_printf(&b, "%s \"%s\" for \"%s\"", v->measure, v->value, v->item);
        mb_place(&b, c->r, v);
        mb_printf(&b, " is not a number; send digits only, e.g. \"120\"");
        json_t *o = violation(c, rule, v, v->measure, &b);
        if (o != NULL) {
            add_values(o, NULL, 0);
            set_opt(o, "value", v->value);
            set_opt(o, "where", v->where);
        }
    }
}

static void rule_value_ceiling(struct check *c, const struct quality_rule *rule)
{
    char max[32];
    fmt_num(max, rule->max);
    for (size_t k = 0; k < c->r->n_values; k++) {
        const struct report_value *v = &c->r->values[k];
        if (v->skipped || !v->is_number || v->number <= rule->max)
            continue;
        if (rule->n_measures > 0 ? !in_list(v->measure, rule->measures, rule->n_measures)
                                 : !report_is_measure(v->measure))
            continue;
        struct msgbuf b = {.len = 0};
        mb_value(&b, v);
        mb_place(&b, c->r, v);
        mb_printf(&b, " is above the ceiling of %s; check the value at the source or raise max",
                  max);
        json_t *o = violation(c, rule, v, v->measure, &b);
        if (o != NULL) {
            add_values(o, &v, 1);
            json_object_set_new(o, "max", json_num(rule->max));
            set_opt(o, "where", v->where);
        }
    }
}

/* Days in the value's period, or 0 when unknown. */
static int period_days_of(const struct report *r, const struct report_value *v)
{
    struct period p;
    const char *id = value_period(r, v);
    if (id != NULL)
        return period_parse(id, &p) ? period_days(&p) : 0;
    if (r->period_start == NULL || r->period_end == NULL ||
        !period_date_parse(r->period_start, &p.start) || !period_date_parse(r->period_end, &p.end))
        return 0;
    p.type = PERIOD_DAILY; /* unused by period_days: end - start + 1 */
    p.id[0] = '\0';
    int d = period_days(&p);
    return d > 0 ? d : 0;
}

static void rule_stockout_days(struct check *c, const struct quality_rule *rule)
{
    const char *days_of = NULL; /* the period id whose days were last worked out */
    int days = 0;
    bool known = false;
    for (size_t k = 0; k < c->r->n_values; k++) {
        const struct report_value *v = &c->r->values[k];
        if (v->skipped || !v->is_number ||
            !report_measure_eq(v->measure, REPORT_MEASURES[REPORT_STOCKOUT_DAYS]))
            continue;
        if (!known || value_period(c->r, v) != days_of) {
            days_of = value_period(c->r, v);
            days = period_days_of(c->r, v);
            known = true;
        }
        double d = v->number;
        const char *why;
        char why_days[96];
        if (d != floor(d)) {
            why = " is not a whole number of days; send whole days";
        } else if (d < 0) {
            why = " is negative; send 0 or more days";
        } else if (days > 0 && d > days) {
            snprintf(why_days, sizeof why_days,
                     " is more than the %d days of the period; fix the value at the source", days);
            why = why_days;
        } else {
            continue; /* the message is built only for a violation */
        }
        char num[32];
        fmt_num(num, d);
        struct msgbuf b = {.len = 0};
        mb_printf(&b, "stockout_days %s for \"%s\"", num, v->item);
        mb_place(&b, c->r, v);
        mb_printf(&b, "%s", why);
        json_t *o = violation(c, rule, v, v->measure, &b);
        if (o != NULL) {
            add_values(o, &v, 1);
            if (days > 0)
                json_object_set_new(o, "period_days", json_integer(days));
            set_opt(o, "where", v->where);
        }
    }
}

static const char *const default_required[] = {"opening_balance", "received",    "consumed",
                                               "losses",          "adjustments", "stock_on_hand",
                                               "stockout_days"};

static void rule_required_measures(struct check *c, const struct quality_rule *rule)
{
    const char *const *names =
        rule->n_measures > 0 ? (const char *const *)rule->measures : default_required;
    size_t n_req = rule->n_measures > 0 ? rule->n_measures
                                        : sizeof default_required / sizeof *default_required;
    /* Canonical pointers, so that group_find() compares most of them by address. */
    const char *canon[16];
    const char *const *req = names;
    if (n_req <= sizeof canon / sizeof canon[0]) {
        for (size_t i = 0; i < n_req; i++)
            canon[i] = report_measure_canonical(names[i]);
        req = canon;
    }
    for (size_t g = 0; g < c->n_groups; g++) {
        const struct group *grp = &c->groups[g];
        const struct report_value *v0 = group_value(c, grp);
        size_t i = 0;
        while (i < n_req && group_find(c, grp, req[i]) != NULL)
            i++;
        if (i == n_req)
            continue; /* the message is built only for a violation */
        struct msgbuf b = {.len = 0};
        size_t missing = 0;
        mb_printf(&b, "item \"%s\"", v0->item);
        mb_place(&b, c->r, v0);
        for (; i < n_req; i++) {
            if (group_find(c, grp, req[i]) != NULL)
                continue;
            mb_printf(&b, "%s%s", missing == 0 ? " lacks " : ", ", req[i]);
            missing++;
        }
        mb_printf(&b, "; report every required measure, or list only those sent under the "
                      "rule's measures");
        json_t *o = violation(c, rule, v0, NULL, &b);
        if (o == NULL)
            continue;
        json_t *list = json_array(), *vo = json_object();
        for (size_t j = 0; j < n_req; j++) {
            const struct report_value *v = group_find(c, grp, req[j]);
            if (v == NULL)
                json_array_append_new(list, json_string(req[j]));
            else if (v->is_number)
                json_object_set_new(vo, req[j], json_num(v->number));
        }
        json_object_set_new(o, "values", vo);
        json_object_set_new(o, "missing", list);
    }
}

static void rule_balance(struct check *c, const struct quality_rule *rule)
{
    enum { OB, RC, CO, LO, AD, SOH, N };
    const char *names[N];
    for (int i = 0; i < N; i++) /* the enum above follows enum report_measure */
        names[i] = REPORT_MEASURES[REPORT_OPENING_BALANCE + i];
    for (size_t g = 0; g < c->n_groups; g++) {
        const struct group *grp = &c->groups[g];
        const struct report_value *v[N];
        double x[N];
        bool applies = true;
        for (int i = 0; i < N; i++) {
            v[i] = group_find(c, grp, names[i]);
            if (v[i] != NULL && !v[i]->is_number)
                applies = false; /* text: the numeric rule's business */
            else if (v[i] == NULL && i != LO && i != AD)
                applies = false; /* not a stock line this rule understands */
            x[i] = v[i] != NULL && v[i]->is_number ? v[i]->number : 0;
        }
        if (!applies)
            continue;
        /* Rounded to millionths, so that binary rounding of decimal quantities
         * neither fails the rule nor shows in the message, while the boundary
         * |difference| == tolerance stays exact. */
        double expected = round((x[OB] + x[RC] - x[CO] - x[LO] + x[AD]) * 1e6) / 1e6;
        double diff = round((x[SOH] - expected) * 1e6) / 1e6;
        if (fabs(diff) <= rule->tolerance)
            continue;

        const struct report_value *v0 = group_value(c, grp);
        char n[N][32], e[32], d[32], t[32];
        for (int i = 0; i < N; i++)
            fmt_num(n[i], x[i]);
        fmt_num(e, expected);
        fmt_num(d, diff);
        fmt_num(t, rule->tolerance);
        struct msgbuf b = {.len = 0};
        mb_printf(&b, "stock balance does not add up for \"%s\"", v0->item);
        mb_place(&b, c->r, v0);
        mb_printf(&b,
                  ": opening_balance %s + received %s - consumed %s - losses %s + adjustments %s "
                  "= %s, but stock_on_hand is %s (difference %s, tolerance %s)",
                  n[OB], n[RC], n[CO], n[LO], n[AD], e, n[SOH], d, t);
        json_t *o = violation(c, rule, v0, NULL, &b);
        if (o == NULL)
            continue;
        add_values(o, v, N);
        json_object_set_new(o, "expected", json_num(expected));
        json_object_set_new(o, "difference", json_num(diff));
    }
}

size_t quality_check(const struct quality_rule *rules, size_t n, const struct report *r,
                     json_t *violations, json_t *warnings)
{
    struct check c = {.r = r, .violations = violations, .warnings = warnings};
    if (!group_values(&c)) {
        c.nomem = true;
    } else {
        for (size_t i = 0; i < n; i++) {
            switch (rules[i].kind) {
            case QUALITY_NON_NEGATIVE: rule_non_negative(&c, &rules[i]); break;
            case QUALITY_REQUIRED_MEASURES: rule_required_measures(&c, &rules[i]); break;
            case QUALITY_BALANCE: rule_balance(&c, &rules[i]); break;
            case QUALITY_STOCKOUT_DAYS: rule_stockout_days(&c, &rules[i]); break;
            case QUALITY_VALUE_CEILING: rule_value_ceiling(&c, &rules[i]); break;
            case QUALITY_NUMERIC: rule_numeric(&c, &rules[i]); break;
            }
        }
    }
    if (c.nomem) {
        /* Fail closed: a report that could not be checked is not delivered. */
        report_problem(violations, "quality", "out of memory while checking data quality");
        c.rejected++;
    }
    free(c.keyed);
    free(c.groups);
    return c.rejected;
}
