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

#endif
