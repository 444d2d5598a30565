/*
 * ratelimit.c - token buckets per key (see hibus/ratelimit.h).
 *
 * Entry points: ratelimit_new, ratelimit_free, ratelimit_take.
 *
 * Keys are client ids that authenticated, so their number is bounded by clients.yaml
 * (ids dropped by a reload leave a small entry behind until the process ends).
 */
#include "hibus/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"

#define RL_BUCKETS 256

struct rl_entry {
    struct rl_entry *next;
    char *key;
    unsigned requests;
    long per_ms;
    double tokens;
    long last_ms;
};

struct ratelimit {
    pthread_mutex_t mu;
    struct rl_entry *b[RL_BUCKETS];
};

struct ratelimit *ratelimit_new(void)
{
    struct ratelimit *r = hibus_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void ratelimit_free(struct ratelimit *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < RL_BUCKETS; i++)
        for (struct rl_entry *e = r->b[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e->key);
            free(e);
        }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static size_t slot_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % RL_BUCKETS;
}

long ratelimit_take(struct ratelimit *r, const char *key, unsigned requests, long per_ms,
                    long now_ms)
{
    if (requests == 0 || per_ms <= 0)
        return 0;
    pthread_mutex_lock(&r->mu);
    size_t s = slot_of(key);
    struct rl_entry *e = r->b[s];
    while (e != NULL && strcmp(e->key, key) != 0)
        e = e->next;
    if (e == NULL) {
        e = hibus_xcalloc(1, sizeof *e);
        e->key = hibus_xstrdup(key);
        e->next = r->b[s];
        r->b[s] = e;
    }
    if (e->requests != requests || e->per_ms != per_ms) { /* new, or a reload changed it */
        e->requests = requests;
        e->per_ms = per_ms;
        e->tokens = requests;
        e->last_ms = now_ms;
    }
    double rate = (double)requests / (double)per_ms; /* tokens a millisecond */
    if (now_ms > e->last_ms) {
        e->tokens += (double)(now_ms - e->last_ms) * rate;
        if (e->tokens > requests)
            e->tokens = requests;
        e->last_ms = now_ms;
    }
    long wait = 0;
    if (e->tokens >= 1.0)
        e->tokens -= 1.0;
    else
        wait = (long)((1.0 - e->tokens) / rate) + 1;
    pthread_mutex_unlock(&r->mu);
    return wait;
}
