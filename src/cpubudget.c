/*
 * cpubudget.c - limits.request_cpu (see hibus/cpubudget.h).
 */
#include "hibus/cpubudget.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static atomic_long limit_ms = 5000;

static _Thread_local struct {
    bool open, spent;
    unsigned tick;
    int64_t until_ns;      /* thread CPU time at which the budget is spent */
    int64_t wall_until_ns; /* monotonic time before which it cannot be */
} tb;

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A thread cannot use more CPU time than the real time that passes, so until the
 * limit has passed on the monotonic clock (read in the vDSO) the budget cannot be
 * spent: the thread's CPU clock, a system call, is read only after that. */
static int64_t wall_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return INT64_MAX;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool spent_now(void)
{
    if (wall_ns() < tb.wall_until_ns)
        return false;
    return thread_cpu_ns() > tb.until_ns;
}

void cpu_budget_set_limit(long ms)
{
    atomic_store(&limit_ms, ms > 0 ? ms : 0);
}

long cpu_budget_limit(void)
{
    return atomic_load(&limit_ms);
}

void cpu_budget_begin(void)
{
    long ms = cpu_budget_limit();
    tb.open = ms > 0;
    tb.spent = false;
    tb.tick = 0;
    tb.until_ns = tb.open ? thread_cpu_ns() + (int64_t)ms * 1000000 : 0;
    tb.wall_until_ns = tb.open ? wall_ns() + (int64_t)ms * 1000000 : 0;
}

void cpu_budget_end(void)
{
    tb.open = tb.spent = false;
}

bool cpu_budget_over(void)
{
    if (!tb.open)
        return false;
    if (!tb.spent && ++tb.tick % CPU_BUDGET_STRIDE == 0)
        tb.spent = spent_now();
    return tb.spent;
}

bool cpu_budget_check(void)
{
    if (tb.open && !tb.spent)
        tb.spent = spent_now();
    return tb.open && tb.spent;
}

void cpu_budget_message(char *buf, size_t size, const char *what)
{
    long ms = cpu_budget_limit();
    char lim[32];
    if (ms % 1000 == 0)
        snprintf(lim, sizeof lim, "%lds", ms / 1000);
    else
        snprintf(lim, sizeof lim, "%ldms", ms);
    snprintf(buf, size,
             "%s took more than limits.request_cpu (%s) of CPU time: send the payload in "
             "smaller parts",
             what, lim);
}
