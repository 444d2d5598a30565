/*
 * txlog_alerts.c - the database side of alerts (see hibus/txlog.h,
 * txlog_alerts_check): each channel's recent outcomes, and the alert state of
 * migration 010, read and written in one transaction under an advisory lock so
 * that of several hibus processes on one database, one looks at a time and one
 * notice goes out.
 */
#define LOG_SUBSYS "alerts"

#include "hibus/txlog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "hibus/log.h"
#include "txlog_internal.h"

/* pg_try_advisory_xact_lock's key: "hibus" and 2 (migrations take "hibus") */
#define ALERTS_LOCK_KEY 0x6869627573000002LL

enum kind { K_FAILURE_RATE, K_CONFLICTS, K_QUEUE_AGE, K_COUNT };
static const char *const kind_names[K_COUNT] = {"failure_rate", "conflicts", "queue_age"};

struct alerts_ctx {
    const struct txlog_alert_rules *rules;
    const char *channels;
    txlog_alert_send send;
    void *arg;
    int sent;
    bool skipped;
};

/* A row of alert_state. */
struct state {
    char channel[128], kind[16];
    bool firing;
    char since[40]; /* "" when not firing */
    double ago;     /* seconds since its last notice; -1 never */
};

static const struct state *state_of(const struct state *v, size_t n, const char *channel,
                                    const char *kind)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].channel, channel) == 0 && strcmp(v[i].kind, kind) == 0)
            return &v[i];
    return NULL;
}

/* One channel's figures over the window. */
struct figures {
    long long finished, failed, conflicts;
    double oldest_queued_s;
};

static enum hibus_err fail(struct hibus_error *err, PGconn *conn, PGresult *res, const char *what)
{
    enum hibus_err rc = txlog_db_fail(err, conn, res, what);
    PQclear(res);
    txlog_rollback(conn);
    return rc;
}

static json_t *notice(const struct txlog_alert_rules *r, const char *channel, enum kind k,
                      bool firing, double value, const char *since)
{
    char summary[320];
    double window_min = (double)r->window_ms / 60000.0;
    switch (k) {
    case K_FAILURE_RATE:
        snprintf(summary, sizeof summary,
                 "channel %s: %.0f%% of the transactions that ended in the last %.0f min failed "
                 "(alert above %u%%)",
                 channel, value * 100.0, window_min, r->failure_percent);
        break;
    case K_CONFLICTS:
        snprintf(summary, sizeof summary,
                 "channel %s: DHIS2 answered %.0f deliveries with import conflicts in the last "
                 "%.0f min",
                 channel, value, window_min);
        break;
    default:
        snprintf(summary, sizeof summary,
                 "channel %s: its oldest queued transaction waits for %.0f min (alert after "
                 "%.0f min)",
                 channel, value / 60.0, (double)r->queue_age_ms / 60000.0);
    }
    if (!firing)
        snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; now resolved");
    double threshold = k == K_FAILURE_RATE ? r->failure_percent / 100.0
                       : k == K_CONFLICTS  ? 0
                                           : (double)r->queue_age_ms / 1000.0;
    return json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:I, s:s?, s:s}", "source", "hibus", "status",
                     firing ? "firing" : "resolved", "alert", kind_names[k], "channel", channel,
                     "value", value, "threshold", threshold, "window_seconds",
                     (json_int_t)(r->window_ms / 1000), "since", since, "summary", summary);
}

/* Whether kind k fires for f, and its value. */
static bool fires(const struct txlog_alert_rules *r, enum kind k, const struct figures *f,
                  double *value)
{
    switch (k) {
    case K_FAILURE_RATE:
        *value = f->finished ? (double)f->failed / (double)f->finished : 0;
        return r->failure_percent > 0 && f->finished >= (long long)r->min_finished &&
               *value * 100.0 > (double)r->failure_percent;
    case K_CONFLICTS: *value = (double)f->conflicts; return r->conflicts && f->conflicts > 0;
    default:
        *value = f->oldest_queued_s;
        return r->queue_age_ms > 0 && f->oldest_queued_s * 1000.0 > (double)r->queue_age_ms;
    }
}

static enum hibus_err op_alerts(PGconn *conn, unsigned *prepared, void *vctx,
                                struct hibus_error *err)
{
    (void)prepared;
    struct alerts_ctx *ctx = vctx;
    const struct txlog_alert_rules *r = ctx->rules;
    ctx->sent = 0;
    ctx->skipped = false;
    if (!txlog_exec_cmd(conn, "BEGIN", "begin the alerts' look", err))
        return HIBUS_E_DB;
    char key[32];
    snprintf(key, sizeof key, "%lld", ALERTS_LOCK_KEY);
    const char *const lv[1] = {key};
    PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_xact_lock($1::int8)", 1, NULL, lv,
                                 NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "take the alerts' lock");
    bool locked = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!locked) { /* another process is looking now */
        ctx->skipped = true;
        txlog_rollback(conn);
        return HIBUS_OK;
    }
    /* The alerts' state as it is: few rows (channels times kinds). */
    res =
        PQexec(conn, "SELECT channel, kind, firing, coalesce(" TS_UTC(
                         "since") ", ''),"
                                  " coalesce(extract(epoch FROM clock_timestamp() - last_sent), -1)"
                                  " FROM alert_state");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(err, conn, res, "read the alerts' state");
    size_t n_states = (size_t)PQntuples(res);
    struct state *states = hibus_xcalloc(n_states + 1, sizeof *states);
    for (size_t i = 0; i < n_states; i++) {
        hibus_strlcpy(states[i].channel, PQgetvalue(res, (int)i, 0), sizeof states[i].channel);
        hibus_strlcpy(states[i].kind, PQgetvalue(res, (int)i, 1), sizeof states[i].kind);
        states[i].firing = strcmp(PQgetvalue(res, (int)i, 2), "t") == 0;
        hibus_strlcpy(states[i].since, PQgetvalue(res, (int)i, 3), sizeof states[i].since);
        states[i].ago = strtod(PQgetvalue(res, (int)i, 4), NULL);
    }
    PQclear(res);
    /* Each configured channel's last window (by the received_at index; conflicts
     * tested per failed or partly failed row, as the search does), its oldest
     * queued transaction (the unfinished index), and its alert state. */
    char window[32];
    snprintf(window, sizeof window, "%ld", r->window_ms);
    const char *const v[2] = {ctx->channels, window};
    res = PQexecParams(
        conn,
        "WITH c AS (SELECT unnest(string_to_array($1, E'\\n')) AS channel),"
        " w AS (SELECT channel,"
        "  count(*) FILTER (WHERE status NOT IN ('queued', 'processing')) AS finished,"
        "  count(*) FILTER (WHERE status IN ('failed', 'rejected')) AS failed,"
        "  count(*) FILTER (WHERE status IN ('completed_with_errors', 'failed') AND EXISTS ("
        "   SELECT 1 FROM attempts a WHERE a.transaction_id = t.id"
        "    AND a.tx_received_at = t.received_at"
        "    AND jsonb_typeof(a.details -> 'conflicts') = 'array'"
        "    AND jsonb_array_length(a.details -> 'conflicts') > 0 OFFSET 0)) AS conflicts"
        "  FROM transactions t"
        "  WHERE received_at >= clock_timestamp() - make_interval(secs => $2::float8 / 1000)"
        "  GROUP BY channel),"
        " q AS (SELECT channel, extract(epoch FROM clock_timestamp() - min(received_at)) AS age"
        "  FROM transactions WHERE status = 'queued' GROUP BY channel)"
        " SELECT c.channel, coalesce(w.finished, 0), coalesce(w.failed, 0),"
        "  coalesce(w.conflicts, 0), coalesce(q.age, 0)"
        " FROM c LEFT JOIN w USING (channel) LEFT JOIN q USING (channel) ORDER BY c.channel",
        2, NULL, v, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        free(states);
        return fail(err, conn, res, "read the channels' recent outcomes");
    }
    enum hibus_err rc = HIBUS_OK;
    bool stop = false;
    for (int row = 0; row < PQntuples(res) && !stop; row++) {
        const char *channel = PQgetvalue(res, row, 0);
        struct figures f = {
            strtoll(PQgetvalue(res, row, 1), NULL, 10), strtoll(PQgetvalue(res, row, 2), NULL, 10),
            strtoll(PQgetvalue(res, row, 3), NULL, 10), strtod(PQgetvalue(res, row, 4), NULL)};
        for (int k = 0; k < K_COUNT && !stop; k++) {
            const struct state *st = state_of(states, n_states, channel, kind_names[k]);
            bool was = st != NULL && st->firing;
            const char *since = st != NULL ? st->since : NULL;
            double ago = st != NULL ? st->ago : -1;
            double value = 0;
            bool now = fires(r, (enum kind)k, &f, &value);
            bool send = (now && (!was || (ago >= 0 && ago * 1000.0 >= (double)r->repeat_ms))) ||
                        (!now && was);
            if (!send)
                continue;
            json_t *n = notice(r, channel, (enum kind)k, now, value,
                               was && since && since[0] ? since : NULL);
            bool delivered = n != NULL && ctx->send(ctx->arg, n);
            json_decref(n);
            if (!delivered) {
                stop = true; /* what was sent is kept; the rest is tried next time */
                break;
            }
            char val[64];
            snprintf(val, sizeof val, "%.17g", value);
            const char *const u[4] = {channel, kind_names[k], now ? "t" : "f", val};
            PGresult *up = PQexecParams(
                conn,
                "INSERT INTO alert_state (channel, kind, firing, since, last_sent, value)"
                " VALUES ($1, $2, $3::bool, CASE WHEN $3::bool THEN clock_timestamp() END,"
                "  clock_timestamp(), $4::float8)"
                " ON CONFLICT (channel, kind) DO UPDATE SET firing = EXCLUDED.firing,"
                "  since = CASE WHEN EXCLUDED.firing THEN"
                "   coalesce(CASE WHEN alert_state.firing THEN alert_state.since END,"
                "    EXCLUDED.since) END,"
                "  last_sent = EXCLUDED.last_sent, value = EXCLUDED.value",
                4, NULL, u, NULL, NULL, 0);
            if (up == NULL || PQresultStatus(up) != PGRES_COMMAND_OK) {
                PQclear(res);
                free(states);
                return fail(err, conn, up, "record an alert");
            }
            PQclear(up);
            ctx->sent++;
        }
    }
    PQclear(res);
    free(states);
    if (!txlog_exec_cmd(conn, "COMMIT", "end the alerts' look", err))
        rc = HIBUS_E_DB;
    return rc;
}

enum hibus_err txlog_alerts_check(struct txlog *tl, const struct txlog_alert_rules *rules,
                                  const char *channels, txlog_alert_send send, void *arg, int *sent,
                                  bool *skipped, struct hibus_error *err)
{
    struct alerts_ctx ctx = {.rules = rules, .channels = channels, .send = send, .arg = arg};
    enum hibus_err rc = txlog_with_conn(tl, op_alerts, &ctx, err);
    *sent = ctx.sent;
    *skipped = ctx.skipped;
    return rc;
}
