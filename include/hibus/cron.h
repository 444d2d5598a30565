/*
 * cron.h - cron schedules: five fields (minute hour day-of-month month
 * day-of-week), as Vixie cron reads them, and the next time such a schedule
 * fires. Times are seconds since 1970 and fields are read in UTC.
 *
 * Accepted: "*", numbers, ranges "a-b", steps "a-b/n", "a/n" (from a to the
 * field's end) and "*" followed by "/n", lists "a,b-c", names for months (JAN..DEC) and
 * days (SUN..SAT, 7 is Sunday too), case-insensitive, and the shorthands
 * @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
 * Day-of-month and day-of-week: when both are restricted (neither starts with
 * "*"), a day matches when either does; otherwise both must (Vixie cron's rule,
 * so a step over "*" in one of them counts as unrestricted, as there).
 *
 * Pure functions; thread-safe.
 */
#ifndef HIBUS_CRON_H
#define HIBUS_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cron {
    uint64_t minutes; /* bit m: minute m (0..59) */
    uint32_t hours;   /* bit h: 0..23 */
    uint32_t mdays;   /* bit d: 1..31 */
    uint16_t months;  /* bit m: 1..12 */
    uint8_t wdays;    /* bit d: 0..6, Sunday 0 */
    bool mday_star;   /* the day-of-month field starts with "*" */
    bool wday_star;   /* the day-of-week field starts with "*" */
};

/* The longest expression accepted. */
#define CRON_MAX_TEXT 256

/* Parses expr into *out (written only on success). On failure returns false and
 * writes into msg (size bytes) what is wrong, naming the field and the value:
 * "minute: \"61\" is out of range (0-59)". An expression that can never fire
 * (such as February 30) is an error too. */
bool cron_parse(const char *expr, struct cron *out, char *msg, size_t size);

/* The first time strictly after `after`, on a whole minute, at which c fires;
 * -1 when there is none within the next 10 years (only for a schedule that
 * cron_parse would refuse). */
int64_t cron_next(const struct cron *c, int64_t after);

#endif
