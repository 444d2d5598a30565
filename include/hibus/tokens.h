/*
 * tokens.h - bearer tokens of clients: "hbt_" + a 16-hex-digit id + "_" + a 43-character
 * secret (32 random bytes, base64url). The transaction log keeps the id, the client and
 * the SHA-256 of the secret (txlog_token_*); hibus token new prints a token once.
 *
 * A request with "Authorization: Bearer hbt_..." is checked against a cache of what
 * the log holds for its id (a few seconds old at most, so a revocation takes effect
 * within TOKEN_CACHE_MS). Thread-safe.
 */
#ifndef HIBUS_TOKENS_H
#define HIBUS_TOKENS_H

#include <stdbool.h>

#include "hibus/auth.h"
#include "hibus/config.h"
#include "hibus/txlog.h"

#define TOKEN_ID_LEN 16
#define TOKEN_CACHE_MS 5000

struct token_new {
    char token[4 + TOKEN_ID_LEN + 1 + 43 + 1];
    char id[TOKEN_ID_LEN + 1];
    unsigned char hash[32]; /* SHA-256 of the secret */
};

/* A new random token; false when the system has no random bytes. */
bool token_generate(struct token_new *out);

/* Whether an Authorization value is a bearer token of hibus's form. */
bool token_is_bearer(const char *authorization);

struct token_cache;
struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *tc);

/* Checks "Bearer hbt_..." against the log: AUTH_OK with *client set, AUTH_MALFORMED
 * for a token not of hibus's form, AUTH_INVALID for an unknown id, a wrong secret, a
 * revoked token or a client not (or no longer) enabled in cfg. A database failure is
 * HIBUS_E_DB in *db_err (and AUTH_INVALID): the caller answers 503, not 401. */
enum auth_result token_check(struct token_cache *tc, struct txlog *tl, const struct config *cfg,
                             const char *authorization, long now_ms,
                             const struct config_client **client, struct hibus_error *db_err);

#endif
