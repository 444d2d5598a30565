/*
 * period.h - DHIS2 period identifiers (ISO calendar), their dates, and ADX's
 * ISO 8601 "start/duration" form. See ../shared/FORMATS.md section 3.
 * Pure functions; thread-safe.
 */
#ifndef HIBUS_PERIOD_H
#define HIBUS_PERIOD_H

#include <stdbool.h>
#include <stddef.h>

enum period_type {
    PERIOD_DAILY,
    PERIOD_WEEKLY,          /* ISO weeks, Monday start: 2024W1 */
    PERIOD_BIWEEKLY,        /* 2024BiW1 */
    PERIOD_MONTHLY,         /* 202401 */
    PERIOD_BIMONTHLY,       /* 202401B */
    PERIOD_QUARTERLY,       /* 2024Q1 */
    PERIOD_SIXMONTHLY,      /* 2024S1 */
    PERIOD_YEARLY,          /* 2024 */
    PERIOD_FINANCIAL_APRIL, /* 2024April */
    PERIOD_FINANCIAL_JULY,  /* 2024July */
    PERIOD_FINANCIAL_OCT    /* 2024Oct */
};

struct period_date {
    int year, month, day;
};

struct period {
    enum period_type type;
    char id[16];              /* DHIS2 id */
    struct period_date start; /* first day, inclusive */
    struct period_date end;   /* last day, inclusive */
};

/* "Monthly", "Quarterly", "Weekly", ... (DHIS2's periodType names) <-> enum. */
bool period_type_parse(const char *name, enum period_type *out);
const char *period_type_name(enum period_type t);

/* Parses a DHIS2 period id. */
bool period_parse(const char *id, struct period *out);
/* The period of type t that contains date d. */
bool period_containing(enum period_type t, struct period_date d, struct period *out);
/* "2024-01-01/P1M" etc. <-> struct period. */
bool period_to_adx(const struct period *p, char *out, size_t outlen);
bool period_from_adx(const char *s, struct period *out);

/* "2024-01-31" -> date (validated, including leap years). */
bool period_date_parse(const char *s, struct period_date *out);
/* Writes "YYYY-MM-DD". */
void period_date_format(struct period_date d, char out[11]);
/* Days in the period, end - start + 1. */
int period_days(const struct period *p);

#endif
