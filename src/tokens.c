/*
 * tokens.c - clients' bearer tokens: their form, and checking one a request presents
 * (see hibus/tokens.h).
 *
 * Entry points: token_generate, token_is_bearer, token_cache_new, token_cache_free,
 * token_check.
 *
 * The cache maps a token id to what the log holds for it (client, hash, revoked),
 * or to "no such id", for TOKEN_CACHE_MS; it holds at most TOKEN_CACHE_SLOTS ids and
 * is emptied when full. Guessing is bounded before it gets here: failures count
 * towards limits.login_failures like wrong passwords.
 */
#include "hibus/tokens.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "hibus/alloc.h"

#define TOKEN_PREFIX "hbt_"
#define TOKEN_SECRET_LEN 43
#define TOKEN_CACHE_SLOTS 512

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void secret_hash(const char *secret, unsigned char out[32])
{
    gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), out);
}

bool token_generate(struct token_new *out)
{
    unsigned char idb[TOKEN_ID_LEN / 2], sec[32];
    if (gnutls_rnd(GNUTLS_RND_NONCE, idb, sizeof idb) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, sec, sizeof sec) != 0)
        return false;
    for (size_t i = 0; i < sizeof idb; i++)
        snprintf(out->id + 2 * i, 3, "%02x", idb[i]);
    /* base64url without padding: 32 bytes -> 43 characters */
    char secret[TOKEN_SECRET_LEN + 1];
    size_t o = 0;
    for (size_t i = 0; i < sizeof sec; i += 3) {
        unsigned v = (unsigned)sec[i] << 16;
        if (i + 1 < sizeof sec)
            v |= (unsigned)sec[i + 1] << 8;
        if (i + 2 < sizeof sec)
            v |= sec[i + 2];
        int chars = i + 2 < sizeof sec ? 4 : i + 1 < sizeof sec ? 3 : 2;
        for (int k = 0; k < chars; k++)
            secret[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    secret[o] = '\0';
    snprintf(out->token, sizeof out->token, TOKEN_PREFIX "%s_%s", out->id, secret);
    secret_hash(secret, out->hash);
    gnutls_memset(sec, 0, sizeof sec);
    gnutls_memset(secret, 0, sizeof secret);
    return true;
}

/* The token after "Bearer ", or NULL. */
static const char *bearer_value(const char *authorization)
{
    if (authorization == NULL)
        return NULL;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *v = authorization + 7;
    while (*v == ' ')
        v++;
    return v;
}

bool token_is_bearer(const char *authorization)
{
    return bearer_value(authorization) != NULL;
}

/* Splits hbt_<id>_<secret>; false when it is not of that form. */
static bool token_split(const char *t, char id[TOKEN_ID_LEN + 1], const char **secret)
{
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    if (n != 4 + TOKEN_ID_LEN + 1 + TOKEN_SECRET_LEN || strncmp(t, TOKEN_PREFIX, 4) != 0 ||
        t[4 + TOKEN_ID_LEN] != '_')
        return false;
    for (size_t i = 0; i < TOKEN_ID_LEN; i++) {
        char c = t[4 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        id[i] = c;
    }
    id[TOKEN_ID_LEN] = '\0';
    *secret = t + 4 + TOKEN_ID_LEN + 1;
    for (size_t i = 0; i < TOKEN_SECRET_LEN; i++)
        if (strchr(b64url, (*secret)[i]) == NULL || (*secret)[i] == '\0')
            return false;
    return true;
}

struct token_entry {
    char id[TOKEN_ID_LEN + 1];
    bool used;
    bool exists;
    bool revoked;
    char *client;
    unsigned char hash[32];
    long fetched_ms;
};

struct token_cache {
    pthread_mutex_t mu;
    struct token_entry e[TOKEN_CACHE_SLOTS];
    size_t n_used;
};

struct token_cache *token_cache_new(void)
{
    struct token_cache *tc = hibus_xcalloc(1, sizeof *tc);
    pthread_mutex_init(&tc->mu, NULL);
    return tc;
}

static void cache_clear(struct token_cache *tc)
{
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++) {
        free(tc->e[i].client);
        memset(&tc->e[i], 0, sizeof tc->e[i]);
    }
    tc->n_used = 0;
}

void token_cache_free(struct token_cache *tc)
{
    if (tc == NULL)
        return;
    cache_clear(tc);
    pthread_mutex_destroy(&tc->mu);
    free(tc);
}

static size_t cache_slot(const char *id)
{
    return strtoul(id + TOKEN_ID_LEN - 8, NULL, 16) % TOKEN_CACHE_SLOTS;
}

/* The entry for id (locked), or the slot to fill; *hit when it is fresh. */
static struct token_entry *cache_find(struct token_cache *tc, const char *id, long now_ms,
                                      bool *hit)
{
    size_t s = cache_slot(id);
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++, s = (s + 1) % TOKEN_CACHE_SLOTS) {
        struct token_entry *e = &tc->e[s];
        if (!e->used || strcmp(e->id, id) == 0) {
            *hit = e->used && now_ms - e->fetched_ms < TOKEN_CACHE_MS;
            return e;
        }
    }
    cache_clear(tc); /* full: start again */
    *hit = false;
    return &tc->e[cache_slot(id)];
}

enum auth_result token_check(struct token_cache *tc, struct txlog *tl, const struct config *cfg,
                             const char *authorization, long now_ms,
                             const struct config_client **client, struct hibus_error *db_err)
{
    const char *t = bearer_value(authorization), *secret = NULL;
    char id[TOKEN_ID_LEN + 1];
    if (t == NULL || !token_split(t, id, &secret))
        return AUTH_MALFORMED;
    char sec[TOKEN_SECRET_LEN + 1];
    memcpy(sec, secret, TOKEN_SECRET_LEN);
    sec[TOKEN_SECRET_LEN] = '\0';
    unsigned char presented[32];
    secret_hash(sec, presented);
    gnutls_memset(sec, 0, sizeof sec);

    bool hit = false, exists = false, revoked = false;
    unsigned char stored[32];
    char owner[256] = "";
    pthread_mutex_lock(&tc->mu);
    struct token_entry *e = cache_find(tc, id, now_ms, &hit);
    if (hit) {
        exists = e->exists;
        revoked = e->revoked;
        memcpy(stored, e->hash, 32);
        snprintf(owner, sizeof owner, "%s", e->client ? e->client : "");
    }
    pthread_mutex_unlock(&tc->mu);
    if (!hit) {
        char *c = NULL;
        enum hibus_err rc = txlog_token_find(tl, id, &c, stored, &revoked, db_err);
        if (rc != HIBUS_OK && rc != HIBUS_E_NOT_FOUND)
            return AUTH_INVALID; /* db_err says why */
        if (db_err)
            hibus_error_clear(db_err);
        exists = rc == HIBUS_OK;
        snprintf(owner, sizeof owner, "%s", c ? c : "");
        pthread_mutex_lock(&tc->mu);
        e = cache_find(tc, id, now_ms, &hit);
        if (!e->used)
            tc->n_used++;
        free(e->client);
        *e = (struct token_entry){
            .used = true, .exists = exists, .revoked = revoked, .client = c, .fetched_ms = now_ms};
        memcpy(e->id, id, sizeof e->id);
        if (exists)
            memcpy(e->hash, stored, 32);
        pthread_mutex_unlock(&tc->mu);
    }
    if (!exists || revoked)
        return AUTH_INVALID;
    unsigned char diff = 0;
    for (size_t i = 0; i < 32; i++)
        diff |= (unsigned char)(presented[i] ^ stored[i]);
    if (diff != 0)
        return AUTH_INVALID;
    const struct config_client *cl = config_find_client(cfg, owner);
    if (cl == NULL || !cl->enabled)
        return AUTH_INVALID;
    *client = cl;
    return AUTH_OK;
}
