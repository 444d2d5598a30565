/*
 * txlog_tokens.c - clients' bearer tokens in the transaction log (see hibus/tokens.h
 * and migration 005).
 *
 * Entry points: txlog_token_add, txlog_token_find, txlog_token_list,
 * txlog_token_revoke. Each is one statement, safe to run twice (the retry rule of
 * src/txlog.c): an insert that ran twice fails the second time on the primary key,
 * reported as an error although the token was stored, which the printed token makes
 * plain.
 */
#define LOG_SUBSYS "txlog"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "txlog_internal.h"

struct token_ctx {
    const char *id;
    const char *client;
    const unsigned char *hash_in;
    /* results */
    char *client_out;
    unsigned char hash[32];
    bool revoked;
    json_t *list;
    bool found;
};

static enum hibus_err op_add(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct token_ctx *ctx = vctx;
    const char *values[3] = {ctx->id, ctx->client, (const char *)ctx->hash_in};
    const int lengths[3] = {0, 0, 32}, formats[3] = {0, 0, 1};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO client_tokens (id, client, secret_hash) "
                                 "VALUES ($1, $2, $3)",
                                 3, NULL, values, lengths, formats, 0);
    enum hibus_err rc = PQresultStatus(res) == PGRES_COMMAND_OK
                            ? HIBUS_OK
                            : txlog_db_fail(err, conn, res, "store the token");
    PQclear(res);
    return rc;
}

enum hibus_err txlog_token_add(struct txlog *tl, const char *id, const char *client,
                               const unsigned char hash[32], struct hibus_error *err)
{
    struct token_ctx ctx = {.id = id, .client = client, .hash_in = hash};
    return txlog_with_conn(tl, op_add, &ctx, err);
}

static enum hibus_err op_find(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct token_ctx *ctx = vctx;
    const char *values[1] = {ctx->id};
    /* the hash comes back as binary: result format 1 */
    PGresult *res = PQexecParams(conn,
                                 "SELECT client, secret_hash, revoked_at IS NOT NULL "
                                 "FROM client_tokens WHERE id = $1",
                                 1, NULL, values, NULL, NULL, 1);
    enum hibus_err rc = HIBUS_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = txlog_db_fail(err, conn, res, "read the token");
    } else if (PQntuples(res) == 0) {
        ctx->found = false;
    } else if (PQgetlength(res, 0, 1) != 32 || PQgetlength(res, 0, 2) != 1) {
        rc = txlog_db_fail(err, conn, res, "read the token (unexpected columns)");
    } else {
        free(ctx->client_out);
        ctx->client_out = hibus_xstrndup(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
        memcpy(ctx->hash, PQgetvalue(res, 0, 1), 32);
        ctx->revoked = PQgetvalue(res, 0, 2)[0] != 0;
        ctx->found = true;
    }
    PQclear(res);
    return rc;
}

enum hibus_err txlog_token_find(struct txlog *tl, const char *id, char **client,
                                unsigned char hash[32], bool *revoked, struct hibus_error *err)
{
    struct token_ctx ctx = {.id = id};
    enum hibus_err rc = txlog_with_conn(tl, op_find, &ctx, err);
    if (rc == HIBUS_OK && !ctx.found) {
        hibus_error_set(err, HIBUS_E_NOT_FOUND, "no token %s", id);
        rc = HIBUS_E_NOT_FOUND;
    }
    if (rc != HIBUS_OK) {
        free(ctx.client_out);
        return rc;
    }
    *client = ctx.client_out;
    memcpy(hash, ctx.hash, 32);
    *revoked = ctx.revoked;
    return HIBUS_OK;
}

static enum hibus_err op_list(PGconn *conn, unsigned *prepared, void *vctx, struct hibus_error *err)
{
    (void)prepared;
    struct token_ctx *ctx = vctx;
    const char *values[1] = {ctx->client};
    PGresult *res = PQexecParams(
        conn,
        "SELECT id, client, to_char(created_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM client_tokens WHERE $1::text IS NULL OR client = $1 ORDER BY created_at, id",
        1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        enum hibus_err rc = txlog_db_fail(err, conn, res, "list the tokens");
        PQclear(res);
        return rc;
    }
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            a,
            json_pack("{s:s, s:s, s:s, s:o}", "id", PQgetvalue(res, i, 0), "client",
                      PQgetvalue(res, i, 1), "created_at", PQgetvalue(res, i, 2), "revoked_at",
                      PQgetisnull(res, i, 3) ? json_null() : json_string(PQgetvalue(res, i, 3))));
    PQclear(res);
    json_decref(ctx->list);
    ctx->list = a;
    return HIBUS_OK;
}

enum hibus_err txlog_token_list(struct txlog *tl, const char *client, json_t **out,
                                struct hibus_error *err)
{
    struct token_ctx ctx = {.client = client};
    enum hibus_err rc = txlog_with_conn(tl, op_list, &ctx, err);
    if (rc == HIBUS_OK)
        *out = ctx.list;
    else
        json_decref(ctx.list);
    return rc;
}

static enum hibus_err op_revoke(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    (void)prepared;
    struct token_ctx *ctx = vctx;
    const char *values[1] = {ctx->id};
    PGresult *res =
        PQexecParams(conn,
                     "UPDATE client_tokens SET revoked_at = coalesce(revoked_at, now()) "
                     "WHERE id = $1",
                     1, NULL, values, NULL, NULL, 0);
    enum hibus_err rc = HIBUS_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = txlog_db_fail(err, conn, res, "revoke the token");
    else
        ctx->found = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return rc;
}

enum hibus_err txlog_token_revoke(struct txlog *tl, const char *id, struct hibus_error *err)
{
    struct token_ctx ctx = {.id = id};
    enum hibus_err rc = txlog_with_conn(tl, op_revoke, &ctx, err);
    if (rc == HIBUS_OK && !ctx.found) {
        hibus_error_set(err, HIBUS_E_NOT_FOUND, "no token %s", id);
        rc = HIBUS_E_NOT_FOUND;
    }
    return rc;
}
