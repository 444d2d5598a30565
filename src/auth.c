/*
 * auth.c - HTTP basic authentication of clients and channel allow lists.
 *
 * Entry points: auth_basic, auth_allowed, auth_hash_password, auth_verify_password.
 *
 * Verification cache: a yescrypt check costs ~20 ms of CPU on purpose, which a
 * daemon taking thousands of requests a second cannot pay per request. After a
 * successful check we keep HMAC-SHA256(key, client id, stored hash, password)
 * under a random per-process key. The same credentials then cost one HMAC; the
 * password itself is never kept, and a changed hash in a reloaded config no
 * longer matches. Failures are not cached, so guessing keeps its full cost.
 */
#include "hibus/auth.h"

#include <crypt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hibus/alloc.h"

#define AUTH_CACHE_SLOTS 1024
#define AUTH_MAC_LEN 32
/* A yescrypt hash with hibus passwd's parameters, of no password anyone knows. */
#define AUTH_DUMMY_HASH "$y$j9T$O1xpZ2dHCB9F8u1.PAzAr/$ec4L5xZSYZFjWDm3jVLo/g9fuO0fwTM1Sw5XtUtInlC"

/* Credentials whose slow check is running: the same ones arriving meanwhile wait for
 * its result rather than start their own (a client that opens 100 connections at once
 * after a restart sends the same password 100 times, and each check would queue
 * behind the others for AUTH_CHECKS_AT_ONCE: seconds for the last one). */
#define AUTH_PENDING_MAX 16

struct auth_cache {
    pthread_mutex_t mu;
    pthread_cond_t checked; /* a pending check ended */
    unsigned char key[32];
    unsigned char macs[AUTH_CACHE_SLOTS][AUTH_MAC_LEN];
    bool used[AUTH_CACHE_SLOTS];
    size_t n_used;
    unsigned char pending[AUTH_PENDING_MAX][AUTH_MAC_LEN];
    bool pending_used[AUTH_PENDING_MAX];
};

struct auth_cache *auth_cache_new(void)
{
    struct auth_cache *c = hibus_xcalloc(1, sizeof *c);
    if (gnutls_rnd(GNUTLS_RND_KEY, c->key, sizeof c->key) != 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->checked, NULL);
    return c;
}

void auth_cache_free(struct auth_cache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->checked);
    gnutls_memset(c, 0, sizeof *c);
    free(c);
}

static bool cache_mac(const struct auth_cache *c, const struct config_client *cl,
                      const char *password, unsigned char mac[AUTH_MAC_LEN])
{
    gnutls_hmac_hd_t h;
    if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, c->key, sizeof c->key) != 0)
        return false;
    /* Lengths are fed with the NUL terminators, so no two inputs concatenate alike. */
    gnutls_hmac(h, cl->id, strlen(cl->id) + 1);
    gnutls_hmac(h, cl->password_hash, strlen(cl->password_hash) + 1);
    gnutls_hmac(h, password, strlen(password) + 1);
    gnutls_hmac_deinit(h, mac);
    return true;
}

static size_t cache_slot(const unsigned char mac[AUTH_MAC_LEN])
{
    uint32_t v;
    memcpy(&v, mac, sizeof v);
    return v % AUTH_CACHE_SLOTS;
}

/* Open addressing over a fixed table; when it fills up it is simply emptied,
 * which costs one slow verification per active client. Locked. */
static bool cache_has(const struct auth_cache *c, const unsigned char mac[AUTH_MAC_LEN])
{
    for (size_t i = 0, s = cache_slot(mac); i < AUTH_CACHE_SLOTS && c->used[s];
         i++, s = (s + 1) % AUTH_CACHE_SLOTS)
        if (memcmp(c->macs[s], mac, AUTH_MAC_LEN) == 0)
            return true;
    return false;
}

static int pending_find(const struct auth_cache *c, const unsigned char mac[AUTH_MAC_LEN])
{
    for (int i = 0; i < AUTH_PENDING_MAX; i++)
        if (c->pending_used[i] && memcmp(c->pending[i], mac, AUTH_MAC_LEN) == 0)
            return i;
    return -1;
}

/* Whether mac is known good. If not, *pending is the slot this caller now holds for
 * its own check (give it back with cache_done), or -1 when none was free. While the
 * same credentials are being checked by another thread, waits for that check first:
 * a success lets every waiter in; after a failure each checks on its own (failures
 * are never shared, so guessing keeps its full cost). */
static bool cache_lookup(struct auth_cache *c, const unsigned char mac[AUTH_MAC_LEN], int *pending)
{
    bool found;
    pthread_mutex_lock(&c->mu);
    bool waited = false;
    while (!(found = cache_has(c, mac)) && !waited && pending_find(c, mac) >= 0) {
        pthread_cond_wait(&c->checked, &c->mu);
        waited = pending_find(c, mac) < 0; /* that check ended: look once more */
    }
    *pending = -1;
    for (int i = 0; !found && i < AUTH_PENDING_MAX; i++)
        if (!c->pending_used[i]) {
            memcpy(c->pending[i], mac, AUTH_MAC_LEN);
            c->pending_used[i] = true;
            *pending = i;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void cache_done(struct auth_cache *c, int pending)
{
    if (pending < 0)
        return;
    pthread_mutex_lock(&c->mu);
    c->pending_used[pending] = false;
    pthread_cond_broadcast(&c->checked);
    pthread_mutex_unlock(&c->mu);
}

static void cache_store(struct auth_cache *c, const unsigned char mac[AUTH_MAC_LEN])
{
    pthread_mutex_lock(&c->mu);
    if (c->n_used >= AUTH_CACHE_SLOTS / 2) {
        memset(c->used, 0, sizeof c->used);
        c->n_used = 0;
    }
    size_t s = cache_slot(mac);
    while (c->used[s] && memcmp(c->macs[s], mac, AUTH_MAC_LEN) != 0)
        s = (s + 1) % AUTH_CACHE_SLOTS;
    if (!c->used[s]) {
        memcpy(c->macs[s], mac, AUTH_MAC_LEN);
        c->used[s] = true;
        c->n_used++;
    }
    pthread_mutex_unlock(&c->mu);
}

static atomic_ulong slow_checks;

unsigned long auth_slow_checks(void)
{
    return atomic_load(&slow_checks);
}

static pthread_mutex_t checks_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t checks_cv = PTHREAD_COND_INITIALIZER;
static unsigned checks_running;

bool auth_verify_password(const char *password, const char *hash)
{
    struct crypt_data *cd = hibus_xcalloc(1, sizeof *cd);
    bool ok = false;
    pthread_mutex_lock(&checks_mu);
    while (checks_running >= AUTH_CHECKS_AT_ONCE)
        pthread_cond_wait(&checks_cv, &checks_mu);
    checks_running++;
    pthread_mutex_unlock(&checks_mu);
    atomic_fetch_add(&slow_checks, 1);
    const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
    pthread_mutex_lock(&checks_mu);
    checks_running--;
    pthread_cond_signal(&checks_cv);
    pthread_mutex_unlock(&checks_mu);
    if (out != NULL && out[0] != '*') {
        size_t a = strlen(out), b = strlen(hash);
        /* Constant time over the hash length: no early exit on the first difference. */
        unsigned char diff = (unsigned char)(a != b);
        for (size_t i = 0; i < a && i < b; i++)
            diff |= (unsigned char)(out[i] ^ hash[i]);
        ok = diff == 0;
    }
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok;
}

enum auth_result auth_basic(const struct config *cfg, struct auth_cache *cache,
                            const char *authorization, const struct config_client **client)
{
    return auth_basic_in(cfg->clients, cfg->n_clients, cache, authorization, client);
}

enum auth_result auth_basic_in(const struct config_client *list, size_t n, struct auth_cache *cache,
                               const char *authorization, const struct config_client **client)
{
    if (authorization == NULL)
        return AUTH_MISSING;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Basic ", 6) != 0)
        return AUTH_MISSING;
    const char *b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    size_t b64len = strlen(b64);
    while (b64len > 0 && b64[b64len - 1] == ' ')
        b64len--;
    if (b64len == 0 || b64len > 1024)
        return AUTH_MALFORMED;

    gnutls_datum_t in = {(unsigned char *)(uintptr_t)b64, (unsigned)b64len};
    gnutls_datum_t out = {NULL, 0};
    if (gnutls_base64_decode2(&in, &out) != 0)
        return AUTH_MALFORMED;
    char *cred = hibus_xcalloc(1, out.size + 1); /* bounded by the header size limit */
    memcpy(cred, out.data, out.size);
    gnutls_memset(out.data, 0, out.size);
    gnutls_free(out.data);

    enum auth_result r = AUTH_INVALID;
    char *colon = strchr(cred, ':');
    if (colon == NULL || memchr(cred, '\0', out.size) != NULL) {
        r = AUTH_MALFORMED;
        goto done;
    }
    *colon = '\0';
    const char *password = colon + 1;
    const struct config_client *cl = NULL;
    for (size_t i = 0; i < n && cl == NULL; i++)
        if (list[i].id && strcmp(list[i].id, cred) == 0)
            cl = &list[i];
    if (cl == NULL || !cl->enabled || cl->password_hash == NULL) {
        /* Cost the same as a wrong password for a known client, so the time of the
         * answer does not tell which client ids exist: check against the client's
         * own hash, or another client's (same parameters as the real ones), or a
         * fixed one; the result is ignored. */
        const char *h = cl != NULL && cl->password_hash  ? cl->password_hash
                        : n > 0 && list[0].password_hash ? list[0].password_hash
                                                         : AUTH_DUMMY_HASH;
        (void)auth_verify_password(password, h);
        goto done;
    }

    unsigned char mac[AUTH_MAC_LEN];
    bool have_mac = cache != NULL && cache_mac(cache, cl, password, mac);
    int pending = -1;
    if (have_mac && cache_lookup(cache, mac, &pending)) {
        r = AUTH_OK;
    } else if (auth_verify_password(password, cl->password_hash)) {
        r = AUTH_OK;
        if (have_mac)
            cache_store(cache, mac);
    }
    if (have_mac)
        cache_done(cache, pending);
    if (r == AUTH_OK)
        *client = cl;
done:
    explicit_bzero(cred, out.size);
    free(cred);
    return r;
}

/* ---------------------------------------------------------- failed logins */

#define GUARD_SLOTS 4096
#define GUARD_PROBE 16
#define GUARD_QUIET_MS 60000L
#define GUARD_MAX_WAIT_MS 300000L

struct guard_entry {
    unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    bool used;
    unsigned failures;  /* since the address was last quiet for GUARD_QUIET_MS */
    long last_ms;       /* the latest failure */
    long blocked_until; /* refused before this */
};

struct auth_guard {
    pthread_mutex_t mu;
    unsigned char key[16]; /* keys the slot hash, so no one can aim at one slot */
    struct guard_entry e[GUARD_SLOTS];
};

struct auth_guard *auth_guard_new(void)
{
    struct auth_guard *g = hibus_xcalloc(1, sizeof *g);
    if (gnutls_rnd(GNUTLS_RND_NONCE, g->key, sizeof g->key) != 0) {
        free(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

void auth_guard_free(struct auth_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* The address as 16 bytes; false for a family without one (a Unix socket). */
static bool guard_addr(const struct sockaddr *sa, unsigned char out[16])
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(out, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

static size_t guard_slot(const struct auth_guard *g, const unsigned char addr[16])
{
    unsigned char mac[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, g->key, sizeof g->key, addr, 16, mac) != 0)
        memcpy(mac, addr + 12, 4);
    uint32_t v;
    memcpy(&v, mac, sizeof v);
    return v % GUARD_SLOTS;
}

/* The entry of addr, or NULL; with make, a new one (replacing the entry in its probe
 * range that failed least recently when none is free). Called locked. */
static struct guard_entry *guard_find(struct auth_guard *g, const unsigned char addr[16], bool make)
{
    size_t s = guard_slot(g, addr);
    struct guard_entry *free_e = NULL, *oldest = NULL;
    for (size_t i = 0; i < GUARD_PROBE; i++) {
        struct guard_entry *e = &g->e[(s + i) % GUARD_SLOTS];
        if (e->used && memcmp(e->addr, addr, 16) == 0)
            return e;
        if (!e->used && free_e == NULL)
            free_e = e;
        if (e->used && (oldest == NULL || e->last_ms < oldest->last_ms))
            oldest = e;
    }
    if (!make)
        return NULL;
    struct guard_entry *e = free_e ? free_e : oldest;
    memset(e, 0, sizeof *e);
    memcpy(e->addr, addr, 16);
    e->used = true;
    return e;
}

long auth_guard_wait_ms(struct auth_guard *g, const struct sockaddr *addr, long now_ms)
{
    unsigned char a[16];
    if (g == NULL || !guard_addr(addr, a))
        return 0;
    pthread_mutex_lock(&g->mu);
    const struct guard_entry *e = guard_find(g, a, false);
    long wait = e != NULL && e->blocked_until > now_ms ? e->blocked_until - now_ms : 0;
    pthread_mutex_unlock(&g->mu);
    return wait;
}

void auth_guard_failed(struct auth_guard *g, const struct sockaddr *addr, unsigned limit,
                       long now_ms)
{
    unsigned char a[16];
    if (g == NULL || limit == 0 || !guard_addr(addr, a))
        return;
    pthread_mutex_lock(&g->mu);
    struct guard_entry *e = guard_find(g, a, true);
    /* Counting starts again after a quiet minute: one mistyped password is soon
     * forgotten, a guesser that keeps on waits longer each time. */
    long busy_until = e->blocked_until > e->last_ms ? e->blocked_until : e->last_ms;
    if (now_ms - busy_until > GUARD_QUIET_MS)
        e->failures = 0;
    e->failures++;
    e->last_ms = now_ms;
    if (e->failures >= limit) {
        unsigned over = e->failures - limit; /* 0 on the limit-th failure: 1 s */
        long wait = over >= 19 ? GUARD_MAX_WAIT_MS : 1000L << over;
        e->blocked_until = now_ms + (wait < GUARD_MAX_WAIT_MS ? wait : GUARD_MAX_WAIT_MS);
    }
    pthread_mutex_unlock(&g->mu);
}

void auth_guard_succeeded(struct auth_guard *g, const struct sockaddr *addr)
{
    unsigned char a[16];
    if (g == NULL || !guard_addr(addr, a))
        return;
    pthread_mutex_lock(&g->mu);
    struct guard_entry *e = guard_find(g, a, false);
    if (e != NULL)
        memset(e, 0, sizeof *e);
    pthread_mutex_unlock(&g->mu);
}

const struct config_client *auth_certificate(const struct config *cfg,
                                             const unsigned char sha256[32], const char *subject,
                                             bool verified)
{
    for (size_t i = 0; i < cfg->n_clients; i++) {
        const struct config_client *c = &cfg->clients[i];
        if (!c->enabled)
            continue;
        if (c->has_cert_sha256 && memcmp(c->cert_sha256, sha256, 32) == 0)
            return c;
        if (verified && c->cert_subject != NULL && subject[0] != '\0' &&
            strcmp(c->cert_subject, subject) == 0)
            return c;
    }
    return NULL;
}

static bool in_list(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

bool auth_allowed(const struct config_channel *ch, const struct config_client *client)
{
    if (client == NULL)
        return false;
    if (in_list(ch->allow_clients, ch->n_allow_clients, client->id))
        return true;
    for (size_t i = 0; i < client->n_roles; i++)
        if (in_list(ch->allow_roles, ch->n_allow_roles, client->roles[i]))
            return true;
    return false;
}

enum hibus_err auth_hash_password(const char *password, char *out, size_t outlen,
                                  struct hibus_error *err)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    /* yescrypt is libxcrypt's preferred method; sha512-crypt where it is missing. */
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt) == NULL &&
        crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof salt) == NULL)
        return hibus_error_set(err, HIBUS_E_INVALID, "could not make a salt for the password hash");
    struct crypt_data *cd = hibus_xcalloc(1, sizeof *cd);
    enum hibus_err rc = HIBUS_OK;
    const char *h = crypt_rn(password, salt, cd, (int)sizeof *cd);
    if (h == NULL || h[0] == '*')
        rc = hibus_error_set(err, HIBUS_E_INVALID, "could not hash the password");
    else if (hibus_strlcpy(out, h, outlen) >= outlen)
        rc = hibus_error_set(err, HIBUS_E_INVALID, "password hash longer than %zu bytes",
                             outlen - 1);
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return rc;
}
