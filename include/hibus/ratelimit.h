/*
 * ratelimit.h - request rates per key (a client id): a token bucket each, holding as
 * many requests as the limit and refilled evenly over its period, so a client may
 * send its whole allowance at once and then at the limit's pace. Thread-safe.
 */
#ifndef HIBUS_RATELIMIT_H
#define HIBUS_RATELIMIT_H

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *r);

/* Takes one request from key's bucket (requests per per_ms). Returns 0 when it is
 * allowed, else the milliseconds until one will be (nothing is taken). A changed limit
 * for a key starts its bucket full. */
long ratelimit_take(struct ratelimit *r, const char *key, unsigned requests, long per_ms,
                    long now_ms);

#endif
