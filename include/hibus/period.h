/*
 * period.h - DHIS2 period identifiers (ISO calendar), their dates, and ADX's
 * ISO 8601 "start/duration" form. See ../shared/FORMATS.md section 3.
 * Pure functions; thread-safe.
 *
 * Every period type of dhis2-core is here, with the rules of its class in
 * dhis2/dhis2-core dhis-2/dhis-api/src/main/java/org/hisp/dhis/period/ (the
 * class is named next to each value below; src/period.c says which rule came
 * from where). Types marked "2.38.4+" etc. exist only from that DHIS2 release
 * on; hibus accepts all of them whatever the server's version.
 *
 * Ids: period_parse also takes the other spellings DHIS2's own parser accepts
 * (2024W01, 2024WedW01, 2024BiW01, 2024-01, 2024-01-15) and always writes the
 * canonical id (2024W1, 202401, 20240115) into struct period.id.
 */
#ifndef HIBUS_PERIOD_H
#define HIBUS_PERIOD_H

#include <stdbool.h>
#include <stddef.h>

/* Values are never renumbered: new types go at the end. */
enum period_type {
    PERIOD_DAILY,           /* DailyPeriodType: 20240115 */
    PERIOD_WEEKLY,          /* WeeklyPeriodType, ISO weeks, Monday start: 2024W1 */
    PERIOD_BIWEEKLY,        /* BiWeeklyPeriodType: 2024BiW1 */
    PERIOD_MONTHLY,         /* MonthlyPeriodType: 202401 */
    PERIOD_BIMONTHLY,       /* BiMonthlyPeriodType: 202401B */
    PERIOD_QUARTERLY,       /* QuarterlyPeriodType: 2024Q1 */
    PERIOD_SIXMONTHLY,      /* SixMonthlyPeriodType: 2024S1 */
    PERIOD_YEARLY,          /* YearlyPeriodType: 2024 */
    PERIOD_FINANCIAL_APRIL, /* FinancialAprilPeriodType: 2024April = 2024-04-01..2025-03-31 */
    PERIOD_FINANCIAL_JULY,  /* FinancialJulyPeriodType: 2024July */
    PERIOD_FINANCIAL_OCT,   /* FinancialOctoberPeriodType: 2024Oct */
    /* Weeks starting on another weekday; week 1 is the week holding January 4th
     * and its year prefixes the id, as for ISO weeks (2022WedW1 starts 2021-12-29). */
    PERIOD_WEEKLY_WEDNESDAY, /* WeeklyWednesdayPeriodType: 2017WedW18 */
    PERIOD_WEEKLY_THURSDAY,  /* WeeklyThursdayPeriodType: 2017ThuW18 */
    PERIOD_WEEKLY_FRIDAY,    /* WeeklyFridayPeriodType (dhis2-core master only): 2026FriW1 */
    PERIOD_WEEKLY_SATURDAY,  /* WeeklySaturdayPeriodType: 2017SatW18 */
    PERIOD_WEEKLY_SUNDAY,    /* WeeklySundayPeriodType: 2017SunW18 */
    /* April- and November-based halves and quarters. The November types name the
     * year they END in: 2025NovS1 = 2024-11-01..2025-04-30. */
    PERIOD_SIXMONTHLY_APRIL, /* SixMonthlyAprilPeriodType: 2024AprilS1 = Apr..Sep 2024,
                                2024AprilS2 = 2024-10-01..2025-03-31 */
    PERIOD_SIXMONTHLY_NOV,   /* SixMonthlyNovemberPeriodType: 2025NovS1, 2025NovS2 = May..Oct */
    PERIOD_QUARTERLY_NOV,    /* QuarterlyNovemberPeriodType (2.38.4+, 2.39.3+, 2.40.1+):
                                2025NovQ1 = 2024-11-01..2025-01-31 */
    PERIOD_FINANCIAL_NOV,    /* FinancialNovemberPeriodType: 2025Nov = 2024-11-01..2025-10-31 */
    PERIOD_FINANCIAL_SEP,    /* FinancialSeptemberPeriodType (2.42+): 2024Sep = Sep..Aug */
    PERIOD_FINANCIAL_FEB,    /* FinancialFebruaryPeriodType (master only): 2024Feb = Feb..Jan */
    PERIOD_FINANCIAL_AUG     /* FinancialAugustPeriodType (master only): 2024Aug = Aug..Jul */
};

/* How many types there are: every value in [0, PERIOD_TYPE_COUNT) is a type. */
#define PERIOD_TYPE_COUNT ((int)PERIOD_FINANCIAL_AUG + 1)

struct period_date {
    int year, month, day;
};

struct period {
    enum period_type type;
    char id[16];              /* canonical DHIS2 id */
    struct period_date start; /* first day, inclusive */
    struct period_date end;   /* last day, inclusive */
};

/* "Monthly", "WeeklyWednesday", "SixMonthlyNov", ... (DHIS2's periodType names,
 * exactly as dhis2-core's PeriodTypeEnum spells them) <-> enum. */
bool period_type_parse(const char *name, enum period_type *out);
const char *period_type_name(enum period_type t);

/* Parses a DHIS2 period id in any spelling DHIS2 accepts; out->id is canonical. */
bool period_parse(const char *id, struct period *out);
/* The period of type t that contains date d. */
bool period_containing(enum period_type t, struct period_date d, struct period *out);
/* "2024-01-01/P1M" etc. <-> struct period. The start must be the first day of the
 * period. Fails for QuarterlyNov: DHIS2's ADX reads every P3M as a calendar
 * quarter, so it has no way to express it (see period.c). */
bool period_to_adx(const struct period *p, char *out, size_t outlen);
bool period_from_adx(const char *s, struct period *out);

/* "2024-01-31" -> date (validated, including leap years). */
bool period_date_parse(const char *s, struct period_date *out);
/* Writes "YYYY-MM-DD". */
void period_date_format(struct period_date d, char out[11]);
/* Days since 1970-01-01 of a valid date, and back. */
long period_day_number(struct period_date d);
struct period_date period_date_of_day(long day);
/* Days in the period, end - start + 1. */
int period_days(const struct period *p);

#endif
