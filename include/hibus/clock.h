/*
 * clock.h - time for waiting, on one clock: CLOCK_MONOTONIC, which no change of
 * the system time moves. Deadlines for pthread_cond_timedwait are on it, so every
 * condition variable that is waited on with a deadline is made with
 * clock_cond_init. Thread-safe.
 */
#ifndef HIBUS_CLOCK_H
#define HIBUS_CLOCK_H

#include <pthread.h>
#include <time.h>

/* Milliseconds on the monotonic clock (from an arbitrary start). */
long clock_ms(void);
/* The monotonic time ms milliseconds from now, as a deadline. */
struct timespec clock_deadline(long ms);
/* pthread_cond_init for a condition variable waited on with clock_deadline(). */
int clock_cond_init(pthread_cond_t *cond);

/* A thread that runs tick(arg) every so often: first after first_ms, then after
 * as many milliseconds as tick returns. clock_ticker_stop wakes it at once (a
 * tick under way finishes first), joins it and frees it; NULL-safe.
 * clock_ticker_start returns NULL when no thread could be made. */
struct clock_ticker;
struct clock_ticker *clock_ticker_start(long (*tick)(void *arg), void *arg, long first_ms);
void clock_ticker_stop(struct clock_ticker *t);

#endif
