/*
 * auth.h - who is calling, and may they use this channel.
 *
 * Clients authenticate with HTTP basic auth against crypt(3) hashes in
 * clients.yaml. Verifying a yescrypt hash costs milliseconds by design, so a
 * successful verification is remembered (an HMAC-SHA256 of the presented
 * password under a per-process random key, never the password) and later
 * requests with the same credentials cost one HMAC.
 * Thread-safe.
 */
#ifndef HIBUS_AUTH_H
#define HIBUS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "hibus/config.h"

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING = 1, /* no Authorization header, or not Basic */
    AUTH_MALFORMED = 2,
    AUTH_INVALID = 3 /* unknown client, disabled client or wrong password */
};

struct auth_cache;
struct auth_cache *auth_cache_new(void);
void auth_cache_free(struct auth_cache *c);

/* authorization: the raw header value or NULL. cache may be NULL. */
enum auth_result auth_basic(const struct config *cfg, struct auth_cache *cache,
                            const char *authorization, const struct config_client **client);
/* The same against another list of principals (the admin listener's users). */
enum auth_result auth_basic_in(const struct config_client *list, size_t n, struct auth_cache *cache,
                               const char *authorization, const struct config_client **client);

/* The enabled client a TLS client certificate identifies: by the certificate's
 * SHA-256 (clients' certificate.sha256), or, when verified (it chains to
 * listen.tls.client_ca and is valid now), by its subject (certificate.subject).
 * NULL when none does. */
const struct config_client *auth_certificate(const struct config *cfg,
                                             const unsigned char sha256[32], const char *subject,
                                             bool verified);

/* May this client use this channel? True when the client's id is in allow.clients
 * or one of its roles is in allow.roles. */
bool auth_allowed(const struct config_channel *ch, const struct config_client *client);

/* Failed logins per client address. After limit failures from one address, with no
 * quiet minute between them, that address is refused for a while (1 s, doubling with
 * each further failure, at most 5 min) before any password is checked: guessing
 * costs hibus nothing more, and no address can keep the CPU busy with hash checks.
 * A success clears the address. A bounded table (the least recently failing addresses make
 * room); thread-safe. */
struct sockaddr;
struct auth_guard;
struct auth_guard *auth_guard_new(void);
void auth_guard_free(struct auth_guard *g);
/* Milliseconds until addr may try again; 0 when it may now. */
long auth_guard_wait_ms(struct auth_guard *g, const struct sockaddr *addr, long now_ms);
void auth_guard_failed(struct auth_guard *g, const struct sockaddr *addr, unsigned limit,
                       long now_ms);
void auth_guard_succeeded(struct auth_guard *g, const struct sockaddr *addr);

/* A new crypt(3) hash of password: yescrypt ($y$) when available, else sha512-crypt. */
enum hibus_err auth_hash_password(const char *password, char *out, size_t outlen,
                                  struct hibus_error *err);
/* Constant-time verification of password against a crypt(3) hash. At most
 * AUTH_CHECKS_AT_ONCE verifications run at a time in the process, the others wait:
 * guessers cannot take every core from the requests that are already served. */
#define AUTH_CHECKS_AT_ONCE 1
bool auth_verify_password(const char *password, const char *hash);
/* Slow verifications (crypt(3)) this process has run. */
unsigned long auth_slow_checks(void);

#endif
