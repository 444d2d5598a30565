/*
 * cpubudget.h - limits.request_cpu: the CPU time one request's transform may use.
 *
 * The bounds before parsing (body size, limits.max_values, ADX's attribute, element
 * and depth counts) keep every known step linear; this is the net under the steps
 * nobody has found to be worse yet. A thread opens a budget before a stage group
 * (reader, mapping and quality rules; or one route's writer) and closes it after;
 * the loops inside ask cpu_budget_over() as they go and stop when it says so, and
 * the caller turns that into one problem for the client (422).
 *
 * The clock is the thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy or
 * shared machine does not make a payload fail that would pass on an idle one.
 * State is per thread; the limit is process-wide, set at start and at each reload.
 */
#ifndef HIBUS_CPUBUDGET_H
#define HIBUS_CPUBUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* The limit for budgets opened from now on, in milliseconds; 0: none. */
void cpu_budget_set_limit(long ms);
long cpu_budget_limit(void);

/* Opens this thread's budget with the current limit (a budget already open is
 * replaced). */
void cpu_budget_begin(void);
void cpu_budget_end(void);

/* True once this thread has used more than its budget (and from then on, until
 * cpu_budget_end). Cheap: the clock is read on one call in CPU_BUDGET_STRIDE. False
 * when no budget is open. */
#define CPU_BUDGET_STRIDE 64
bool cpu_budget_over(void);
/* The same, reading the clock now: for the end of a stage. */
bool cpu_budget_check(void);

/* "took more than limits.request_cpu (5s) of CPU time: send the payload in smaller
 * parts", for the problem a client gets. */
void cpu_budget_message(char *buf, size_t size, const char *what);

#endif
