/*
 * clock.c - monotonic time, deadlines and condition variables on it (see hibus/clock.h).
 */
#include "hibus/clock.h"

#include <stdbool.h>
#include <stdlib.h>

long clock_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct timespec clock_deadline(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0)
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

struct clock_ticker {
    long (*tick)(void *arg);
    void *arg;
    long next_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on stop */
    bool stopping;       /* guarded by mu */
};

static void *ticker_main(void *p)
{
    struct clock_ticker *t = p;
    struct timespec next = clock_deadline(t->next_ms);
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (pthread_cond_timedwait(&t->cond, &t->mu, &next) == 0 || t->stopping)
            continue; /* a spurious wake-up, or stop */
        pthread_mutex_unlock(&t->mu);
        next = clock_deadline(t->tick(t->arg));
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct clock_ticker *clock_ticker_start(long (*tick)(void *arg), void *arg, long first_ms)
{
    struct clock_ticker *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->tick = tick;
    t->arg = arg;
    t->next_ms = first_ms;
    clock_cond_init(&t->cond);
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void clock_ticker_stop(struct clock_ticker *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
