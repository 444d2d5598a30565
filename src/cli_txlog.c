/*
 * cli_txlog.c - the hibus commands for the transaction log: tx (one transaction
 * and its attempts), tail (follow transactions live), ls (list and search),
 * rerun (put finished ones
 * back in the delivery queue), prune (the retention rules, once) and token
 * (clients' bearer tokens: new, list, revoke).
 */
#include "hibus/cli.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/config.h"
#include "hibus/mapping.h"
#include "hibus/retention.h"
#include "hibus/tokens.h"
#include "hibus/txlog.h"

#include "cli_internal.h"

/* --------------------------------------------------------------------- tx */

static const char tx_usage[] =
    "usage: hibus tx [-c FILE] [--json] ID\n"
    "Shows transaction ID: the request, its status, the answer and every delivery\n"
    "attempt. --json prints it as one JSON object.\n";

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Prints a body, indented, cut at 4000 bytes. */
static void print_body(FILE *out, const char *title, const json_t *tx, const char *key)
{
    char k64[64];
    snprintf(k64, sizeof k64, "%s_base64", key);
    const char *text = json_string_value(json_object_get(tx, key));
    const char *b64 = json_string_value(json_object_get(tx, k64));
    if (text == NULL && b64 == NULL)
        return;
    /* A text body may hold a NUL (valid UTF-8): measure it by its JSON length. */
    size_t len = text ? json_string_length(json_object_get(tx, key)) : strlen(b64);
    fprintf(out, "%s (%s, %zu characters)\n", title, text ? "text" : "binary, base64", len);
    const char *s = text ? text : b64;
    size_t shown = len > 4000 ? 4000 : len;
    fputs("  ", out);
    for (size_t i = 0; i < shown; i++) {
        fputc(s[i], out);
        if (s[i] == '\n' && i + 1 < shown)
            fputs("  ", out);
    }
    if (shown < len)
        fprintf(out, "\n  ... (%zu more; hibus tx --json shows all)", len - shown);
    fputc('\n', out);
}

/* An attempt's details: a DHIS2 import summary or an OpenHIM mediator's verdict. */
static void print_details(FILE *out, const json_t *d)
{
    if (!json_is_object(d))
        return;
    if (json_object_get(d, "imported") != NULL) {
        fprintf(out,
                "     DHIS2 %s: imported %" JSON_INTEGER_FORMAT ", updated %" JSON_INTEGER_FORMAT
                ", ignored %" JSON_INTEGER_FORMAT ", deleted %" JSON_INTEGER_FORMAT "\n",
                jstr(d, "status"), json_integer_value(json_object_get(d, "imported")),
                json_integer_value(json_object_get(d, "updated")),
                json_integer_value(json_object_get(d, "ignored")),
                json_integer_value(json_object_get(d, "deleted")));
        if (jstr(d, "description")[0])
            fprintf(out, "     DHIS2 said: %s\n", jstr(d, "description"));
        if (jstr(d, "data_set_complete")[0])
            fprintf(out, "     data set registered complete: %s\n", jstr(d, "data_set_complete"));
        const json_t *quiet = json_object_get(d, "ignored_without_conflict");
        if (json_integer_value(quiet) > 0)
            fprintf(out,
                    "     %" JSON_INTEGER_FORMAT " ignored without a conflict: zeros of data "
                    "elements whose zeroIsSignificant is false, or values unchanged since the "
                    "last import (DHIS2 2.38+); not an error\n",
                    json_integer_value(quiet));
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(d, "conflicts"), i, c) fprintf(
            out, "     conflict %s %s: %s\n", jstr(c, "errorCode")[0] ? jstr(c, "errorCode") : "-",
            jstr(c, "object"), jstr(c, "value"));
        const json_t *rej = json_object_get(d, "rejected_indexes");
        if (json_array_size(rej) > 0) {
            fprintf(out, "     rejected values (0-based positions in what hibus sent):");
            json_array_foreach(rej, i, c)
            {
                if (i == 20) {
                    fprintf(out, " ... (%zu in all)", json_array_size(rej));
                    break;
                }
                fprintf(out, " %" JSON_INTEGER_FORMAT, json_integer_value(c));
            }
            fputc('\n', out);
        }
    } else if (json_object_get(d, "openhim_status") != NULL) {
        fprintf(out, "     OpenHIM mediator %s: %s, %zu orchestration%s\n", jstr(d, "mediator_urn"),
                jstr(d, "openhim_status"), json_array_size(json_object_get(d, "orchestrations")),
                json_array_size(json_object_get(d, "orchestrations")) == 1 ? "" : "s");
    }
}

static void print_problems(FILE *out, const char *title, const json_t *list)
{
    if (json_array_size(list) == 0)
        return;
    fprintf(out, "%s (%zu)\n", title, json_array_size(list));
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *where = jstr(p, "where");
        fprintf(out, "  %s: %s%s%s%s\n", jstr(p, "stage"), jstr(p, "message"),
                where[0] ? " (at " : "", where, where[0] ? ")" : "");
    }
}

static void print_tx(FILE *out, const json_t *tx)
{
    const json_t *dur = json_object_get(tx, "duration_ms");
    fprintf(out, "transaction %" JSON_INTEGER_FORMAT "  %s\n",
            json_integer_value(json_object_get(tx, "id")), jstr(tx, "status"));
    fprintf(out, "  channel     %s\n", jstr(tx, "channel"));
    fprintf(out, "  client      %s\n", jstr(tx, "client"));
    const char *q = jstr(tx, "query");
    fprintf(out, "  request     %s %s%s%s\n", jstr(tx, "method"), jstr(tx, "path"), q[0] ? "?" : "",
            q);
    fprintf(out, "  request id  %s\n", jstr(tx, "request_id"));
    fprintf(out, "  mode        %s, %" JSON_INTEGER_FORMAT " delivery round%s%s%s\n",
            jstr(tx, "mode"), json_integer_value(json_object_get(tx, "rounds")),
            json_integer_value(json_object_get(tx, "rounds")) == 1 ? "" : "s",
            jstr(tx, "next_attempt_at")[0] ? ", next at " : "", jstr(tx, "next_attempt_at"));
    if (jstr(tx, "bodies_pruned_at")[0])
        fprintf(out, "  bodies      removed by retention at %s\n", jstr(tx, "bodies_pruned_at"));
    fprintf(out, "  node        %s\n", jstr(tx, "node"));
    fprintf(out, "  received    %s\n", jstr(tx, "received_at"));
    if (json_is_number(dur))
        fprintf(out, "  finished    %s (%.1f ms)\n", jstr(tx, "finished_at"),
                json_number_value(dur));
    else
        fprintf(out, "  finished    -\n");
    const json_t *rs = json_object_get(tx, "response_status");
    if (json_is_integer(rs))
        fprintf(out, "  answered    %" JSON_INTEGER_FORMAT "\n", json_integer_value(rs));
    if (jstr(tx, "error")[0])
        fprintf(out, "  error       %s\n", jstr(tx, "error"));
    fprintf(out, "request headers\n");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(tx, "request_headers"), name, v)
        fprintf(out, "  %s: %s\n", name, json_string_value(v) ? json_string_value(v) : "");
    print_body(out, "request body", tx, "request_body");
    const json_t *atts = json_object_get(tx, "attempts");
    fprintf(out, "attempts (%zu)\n", json_array_size(atts));
    size_t idx;
    const json_t *a;
    json_array_foreach(atts, idx, a)
    {
        const json_t *sc = json_object_get(a, "status_code");
        char code[16];
        if (json_is_integer(sc))
            snprintf(code, sizeof code, "%" JSON_INTEGER_FORMAT, json_integer_value(sc));
        else
            snprintf(code, sizeof code, "no answer");
        char url[1024];
        fprintf(out, "  #%" JSON_INTEGER_FORMAT " route %s  %s %s  -> %s in %.1f ms  (%s)\n",
                json_integer_value(json_object_get(a, "attempt")), jstr(a, "route"),
                jstr(a, "method"), config_url_masked(jstr(a, "url"), url, sizeof url), code,
                json_number_value(json_object_get(a, "duration_ms")), jstr(a, "started_at"));
        if (jstr(a, "error")[0])
            fprintf(out, "     error: %s\n", jstr(a, "error"));
        print_details(out, json_object_get(a, "details"));
    }
    const json_t *pr = json_object_get(tx, "problems");
    print_problems(out, "problems (why it was rejected)", json_object_get(pr, "problems"));
    print_problems(out, "skipped (unmapped, not delivered)", json_object_get(pr, "skipped"));
    print_problems(out, "warnings", json_object_get(pr, "warnings"));
    print_body(out, "response body", tx, "response_body");
}

/* Parses a positive transaction id; false on anything else. */
static bool parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        return false;
    *id = v;
    return true;
}

static void print_tx_safely(const json_t *tx)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL) {
        perror("hibus tx");
        return;
    }
    print_tx(mem, tx);
    fclose(mem);
    cli_put_safe(stdout, text, len);
    free(text);
}

int cli_tx(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = cli_parse_opts(argc, argv, &o, tx_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    int64_t id;
    if (i != argc - 1 || !parse_id(argv[i], &id)) {
        fprintf(stderr, "hibus tx: expected one transaction id (a positive integer)\n%s", tx_usage);
        return 2;
    }
    struct config *cfg = cli_load_config(o.config);
    if (cfg == NULL)
        return 1;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *tx = NULL;
    int rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK || txlog_get_json(tl, id, &tx, &err) != HIBUS_OK) {
        if (err.code == HIBUS_E_NOT_FOUND)
            fprintf(stderr, "hibus tx: no transaction %lld\n", (long long)id);
        else
            cli_print_error("could not read the transaction", &err);
    } else {
        if (o.json) {
            config_mask_attempt_urls(tx); /* as in the text view */
            json_dumpf(tx, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
            putchar('\n');
        } else {
            print_tx_safely(tx);
        }
        rc = 0;
    }
    json_decref(tx);
    txlog_close(tl);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------- tail */

static const char tail_usage[] =
    "usage: hibus tail [-c FILE] [--channel NAME] [--status STATUS[,STATUS...]]\n"
    "Prints each transaction as it is received and as its status changes, live,\n"
    "one line each: time, id, channel, client, status, HTTP code, duration.\n"
    "Changes are read when hibus announces them (or each second); a status that\n"
    "changed twice in between shows its latest.\n"
    "Stops on Ctrl-C.\n";

static volatile sig_atomic_t tail_stop;

static void on_tail_signal(int sig)
{
    (void)sig;
    tail_stop = 1;
}

int cli_tail(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = cli_parse_opts(argc, argv, &o, tail_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    if (i != argc) {
        fputs(tail_usage, stderr);
        return 2;
    }
    struct config *cfg = cli_load_config(o.config);
    if (cfg == NULL)
        return 1;
    struct sigaction sa = {.sa_handler = on_tail_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct hibus_error err = {0};
    struct txlog_follower *f = NULL;
    int rc = 0;
    bool said_lost = false;
    while (!tail_stop) {
        if (f == NULL) {
            if (txlog_follow(cfg->database_url, cfg->database_connect_timeout_ms, &f, &err) !=
                HIBUS_OK) {
                if (!said_lost)
                    cli_print_error("cannot follow the transaction log (retrying every 2 s)", &err);
                said_lost = true;
                sleep(2);
                continue;
            }
            if (said_lost)
                fprintf(stderr, "hibus tail: connected again\n");
            said_lost = false;
        }
        struct txlog_summary *v = NULL;
        size_t n = 0;
        if (txlog_follow_next(f, 1000, &v, &n, &err) != HIBUS_OK) {
            cli_print_error("lost the database connection (retrying every 2 s)", &err);
            said_lost = true;
            txlog_follow_close(f);
            f = NULL;
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            const struct txlog_summary *s = &v[k];
            if ((o.channel && strcmp(o.channel, s->channel) != 0) ||
                (o.status && !txlog_status_in_list(o.status, s->status)))
                continue;
            char code[8] = "-";
            if (s->response_status)
                snprintf(code, sizeof code, "%d", s->response_status);
            printf("%s %8lld %-24s %-20s %-22s %4s %9.1fms\n", s->time, (long long)s->id,
                   s->channel, s->client[0] ? s->client : "-", s->status, code, s->duration_ms);
        }
        fflush(stdout);
        free(v);
    }
    txlog_follow_close(f);
    config_free(cfg);
    return rc;
}

/* --------------------------------------------------------------------- ls */

static const char ls_usage[] =
    "usage: hibus ls [-c FILE] [--json] [--limit N] [--before ID] [FILTERS]\n"
    "Lists transactions, newest first, one line each: when received, id, channel,\n"
    "client, status, HTTP code answered, duration, and the facility and period\n"
    "of the report it carried. FILTERS, all of which must hold:\n"
    "  --channel NAME     --client NAME      --request-id ID\n"
    "  --status S[,S...]  one of queued, processing, successful, completed,\n"
    "                     completed_with_errors, failed, rejected\n"
    "  --since TIME       received at or after TIME\n"
    "  --until TIME       received before TIME\n"
    "  --facility CODE    the facility as the source names it, or a DHIS2 org unit\n"
    "                     id (the codes a channel's mapping sends to it)\n"
    "  --period PERIOD    the DHIS2 period, e.g. 202611\n"
    "  --conflicts        DHIS2 answered with import conflicts\n"
    "A page holds --limit transactions (default 50, at most 1000); when there are\n"
    "more, the last line says how to ask for the next (--before the last id).\n"
    "TIME is anything PostgreSQL reads as a timestamp, e.g. 2026-11-01, today or\n"
    "\"2026-11-27 08:00+00\". --json prints the page as one JSON object:\n"
    "{\"transactions\": [...], \"next_before\": ID or null}.\n";

static void print_ls_row(const json_t *t)
{
    const json_t *code = json_object_get(t, "response_status");
    char codes[16] = "-", dur[32] = "-";
    if (json_is_integer(code))
        snprintf(codes, sizeof codes, "%lld", (long long)json_integer_value(code));
    if (json_is_number(json_object_get(t, "duration_ms")))
        snprintf(dur, sizeof dur, "%.1fms", json_number_value(json_object_get(t, "duration_ms")));
    const char *client = jstr(t, "client"), *fac = jstr(t, "facility"), *pe = jstr(t, "period");
    /* names come from the log: printed through the terminal-safe filter */
    char line[1024];
    snprintf(line, sizeof line, "%-24s %9lld %-20s %-16s %-21s %4s %10s %-11s %s",
             jstr(t, "received_at"), (long long)json_integer_value(json_object_get(t, "id")),
             jstr(t, "channel"), client[0] ? client : "-", jstr(t, "status"), codes, dur,
             fac[0] ? fac : "-", pe[0] ? pe : "-");
    cli_put_safe(stdout, line, strlen(line));
    putchar('\n');
}

int cli_ls(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = cli_command_setup(argc, argv, &o, ls_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    char *facilities = o.facility ? config_facility_codes(cfg, o.facility) : NULL;
    struct txlog_query q = {.channel = o.channel,
                            .client = o.client,
                            .statuses = o.status,
                            .since = o.since,
                            .until = o.until,
                            .facilities = facilities,
                            .period = o.period,
                            .request_id = o.request_id,
                            .conflicts = o.conflicts,
                            .before = o.before,
                            .limit = o.limit};
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *page = NULL;
    rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK) {
        cli_print_error("ls", &err);
    } else if (txlog_search(tl, &q, &page, &err) != HIBUS_OK) {
        cli_print_error("could not list the transactions", &err);
        if (err.code == HIBUS_E_INVALID || err.code == HIBUS_E_NOT_FOUND)
            rc = 2;
    } else {
        const json_t *list = json_object_get(page, "transactions");
        const json_t *next = json_object_get(page, "next_before");
        /* what waits in the queue, per channel (only those with something queued) */
        json_t *queue = NULL, *waiting = json_array();
        struct hibus_error qerr = {0};
        if (txlog_queue_depth(tl, &queue, &qerr) == HIBUS_OK) {
            size_t k;
            json_t *row;
            json_array_foreach(queue, k, row)
            {
                const char *ch = json_string_value(json_object_get(row, "channel"));
                if (json_integer_value(json_object_get(row, "queued")) > 0 &&
                    (o.channel == NULL || strcmp(o.channel, ch) == 0))
                    json_array_append(waiting, row);
            }
        }
        json_decref(queue);
        if (o.json) {
            json_dumpf(page, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
            putchar('\n');
        } else if (json_array_size(list) == 0) {
            printf("no transactions match\n");
        } else {
            printf("%-24s %9s %-20s %-16s %-21s %4s %10s %-11s %s\n", "RECEIVED", "ID", "CHANNEL",
                   "CLIENT", "STATUS", "CODE", "DURATION", "FACILITY", "PERIOD");
            size_t k;
            const json_t *t;
            json_array_foreach(list, k, t) print_ls_row(t);
            if (json_is_integer(next))
                printf("more: add --before %lld for the next page\n",
                       (long long)json_integer_value(next));
        }
        if (!o.json) {
            size_t k;
            const json_t *row;
            json_array_foreach(waiting, k, row)
            {
                double age = json_real_value(json_object_get(row, "oldest_queued_seconds"));
                printf("queue of %s: %lld queued, the oldest for ",
                       json_string_value(json_object_get(row, "channel")),
                       (long long)json_integer_value(json_object_get(row, "queued")));
                if (age < 120)
                    printf("%.0f s\n", age);
                else if (age < 7200)
                    printf("%.0f min\n", age / 60);
                else
                    printf("%.1f h\n", age / 3600);
            }
        }
        json_decref(waiting);
        rc = 0;
    }
    json_decref(page);
    txlog_close(tl);
    free(facilities);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ rerun */

static const char rerun_usage[] =
    "usage: hibus rerun [-c FILE] [--rate N] ID...\n"
    "       hibus rerun [-c FILE] [--rate N] [--channel NAME] [--status STATUS[,STATUS...]]\n"
    "                   [--since TIME]\n"
    "       hibus rerun [-c FILE] --cancel [--channel NAME]\n"
    "Puts finished transactions back in the delivery queue: the given ids, or every\n"
    "one that matches all the filters (at least one is needed). Each keeps its\n"
    "history; its new tries are added as further attempts, with a fresh retry\n"
    "budget. --rate spreads them out, N a second (default 20), so that a large\n"
    "rerun does not flood DHIS2. --cancel drops reruns that are still queued.\n"
    "TIME is anything PostgreSQL reads as a timestamp, e.g. 2026-11-01 or\n"
    "\"2026-11-27 08:00+00\".\n";

int cli_rerun(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = cli_parse_opts(argc, argv, &o, rerun_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    if (o.rate == 0)
        o.rate = 20;
    /* ids as "1,2,3", each checked to be a positive integer */
    size_t cap = 1;
    for (int k = i; k < argc; k++)
        cap += strlen(argv[k]) + 1;
    char *ids = calloc(1, cap);
    if (ids == NULL)
        return 1;
    size_t at = 0;
    for (int k = i; k < argc; k++) {
        int64_t id;
        if (!parse_id(argv[k], &id)) {
            fprintf(stderr, "hibus rerun: \"%s\" is not a transaction id\n%s", argv[k],
                    rerun_usage);
            free(ids);
            return 2;
        }
        at += (size_t)snprintf(ids + at, cap - at, "%s%lld", at ? "," : "", (long long)id);
    }
    if (!o.cancel && ids[0] == '\0' && !o.channel && !o.status && !o.since) {
        fprintf(stderr,
                "hibus rerun: give transaction ids or at least one filter (--channel, "
                "--status, --since)\n%s",
                rerun_usage);
        free(ids);
        return 2;
    }
    struct config *cfg = cli_load_config(o.config);
    if (cfg == NULL) {
        free(ids);
        return 1;
    }
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    long n = 0, superseded = 0;
    int rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK) {
        cli_print_error("rerun", &err);
    } else if (o.cancel) {
        if (txlog_rerun_cancel(tl, o.channel, &n, &err) != HIBUS_OK)
            cli_print_error("could not cancel reruns", &err);
        else {
            printf("cancelled %ld queued rerun%s\n", n, n == 1 ? "" : "s");
            rc = 0;
        }
    } else {
        struct txlog_rerun_filter f = {.ids_csv = ids[0] ? ids : NULL,
                                       .channel = o.channel,
                                       .status = o.status,
                                       .since = o.since,
                                       .rate_per_s = o.rate};
        if (txlog_rerun(tl, &f, &n, &superseded, &err) != HIBUS_OK)
            cli_print_error("could not re-queue", &err);
        else {
            printf("re-queued %ld transaction%s", n, n == 1 ? "" : "s");
            if (n > 1)
                printf(", %g a second: the last is due in %.1f s", o.rate,
                       (double)(n - 1) / o.rate);
            printf("\n");
            if (superseded > 0)
                printf("left %ld transaction%s as %s: a later report of the same facility and "
                       "period was delivered after %s, and rerunning %s would overwrite it\n",
                       superseded, superseded == 1 ? "" : "s",
                       superseded == 1 ? "it is" : "they are", superseded == 1 ? "it" : "them",
                       superseded == 1 ? "it" : "them");
            rc = 0;
        }
    }
    txlog_close(tl);
    config_free(cfg);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------------ prune */

static const char prune_usage[] =
    "usage: hibus prune [-c FILE]\n"
    "Applies the retention rules once, now: makes the monthly partitions around\n"
    "today, drops months older than every channel's keep_transactions, removes\n"
    "transactions past their channel's keep_transactions and empties bodies past\n"
    "keep_bodies. hibus serve does the same every retention.prune_every.\n";

int cli_prune(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = cli_command_setup(argc, argv, &o, prune_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    struct txlog_prune_result r;
    rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK ||
        retention_prune_once(cfg, tl, &r, &err) != HIBUS_OK) {
        cli_print_error("prune", &err);
    } else if (r.skipped) {
        printf("another hibus process is pruning right now; nothing done\n");
        rc = 0;
    } else {
        printf("partitions made %d, dropped %d; transactions removed %ld; bodies emptied %ld; "
               "pulled item ids removed %ld\n",
               r.partitions_made, r.partitions_dropped, r.transactions_deleted, r.bodies_pruned,
               r.poll_items_deleted);
        rc = 0;
    }
    txlog_close(tl);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ polls */

static const char polls_usage[] =
    "usage: hibus polls [-c FILE] [--json]\n"
    "       hibus polls run [-c FILE] CHANNEL\n"
    "       hibus polls reset [-c FILE] CHANNEL [CURSOR]\n"
    "Shows each polling channel's state as the database holds it (docs/polling.md):\n"
    "its schedule, next slot, cursor, the process pulling it now, the last pull and\n"
    "how many items it stored, and the last error (cleared by a successful pull).\n"
    "--json prints them as one JSON array.\n"
    "run makes CHANNEL's next slot now: a running hibus pulls it within a second.\n"
    "reset sets its cursor to CURSOR, or without one clears it, so that the next pull\n"
    "sends poll.cursor.from (to pull again what a source sent since then); a pull under\n"
    "way still records its own cursor when it ends.\n";

/* hibus polls run / reset: one change to one channel's poll state. */
static int polls_change(const struct config *cfg, int argc, char **argv, int first)
{
    const char *what = argv[first];
    bool run = strcmp(what, "run") == 0;
    int want = run ? 2 : 3; /* operands after the subcommand, at most */
    if ((!run && strcmp(what, "reset") != 0) || argc - first < 2 || argc - first > want) {
        fputs(polls_usage, stderr);
        return 2;
    }
    const char *channel = argv[first + 1];
    const char *cursor = run || argc - first < 3 ? NULL : argv[first + 2];
    const struct config_channel *ch = NULL;
    for (size_t i = 0; i < cfg->n_channels && ch == NULL; i++)
        if (strcmp(cfg->channels[i].name, channel) == 0)
            ch = &cfg->channels[i];
    if (ch == NULL || ch->poll == NULL) {
        fprintf(stderr, "hibus polls %s: \"%s\" is not a polling channel of this configuration\n",
                what, channel);
        return 1;
    }
    if (!run && cursor != NULL && ch->poll->cursor_param == NULL) {
        fprintf(stderr, "hibus polls reset: channel \"%s\" has no poll.cursor\n", channel);
        return 1;
    }
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    bool found = false;
    int rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK ||
        (run ? txlog_poll_run_now(tl, channel, &found, &err)
             : txlog_poll_set_cursor(tl, channel, cursor, &found, &err)) != HIBUS_OK) {
        cli_print_error(run ? "polls run" : "polls reset", &err);
    } else if (!found) {
        fprintf(stderr,
                "hibus polls %s: channel \"%s\" has not been registered on this database yet "
                "(no hibus serve with it has started)\n",
                what, channel);
    } else {
        if (run)
            printf("%s: pulled at the next look of a running hibus\n", channel);
        else if (cursor != NULL)
            printf("%s: cursor set to %s\n", channel, cursor);
        else
            printf("%s: cursor cleared; the next pull sends %s\n", channel,
                   ch->poll->cursor_from ? ch->poll->cursor_from : "no cursor");
        rc = 0;
    }
    txlog_close(tl);
    return rc;
}

static const char *or_dash(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

int cli_polls(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0, first = 0;
    struct config *cfg = cli_command_setup(argc, argv, &o, polls_usage, &first, &rc);
    if (cfg == NULL)
        return rc;
    if (first < argc) {
        rc = polls_change(cfg, argc, argv, first);
        config_free(cfg);
        return rc;
    }
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *states = NULL;
    rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK ||
        txlog_poll_states(tl, &states, &err) != HIBUS_OK) {
        cli_print_error("polls", &err);
    } else if (o.json) {
        char *text = json_dumps(states, JSON_INDENT(2));
        printf("%s\n", text ? text : "[]");
        free(text);
        rc = 0;
    } else if (json_array_size(states) == 0) {
        printf("no polling channel has run on this database\n");
        rc = 0;
    } else {
        size_t i;
        json_t *st;
        json_array_foreach(states, i, st)
        {
            const char *name = or_dash(st, "channel");
            bool configured = false;
            for (size_t c = 0; c < cfg->n_channels && !configured; c++)
                configured =
                    cfg->channels[c].poll != NULL && strcmp(cfg->channels[c].name, name) == 0;
            printf("%s%s\n  schedule %s, next %s\n  cursor %s\n  last run %s, last success %s "
                   "(%lld items), runs %lld, failures %lld\n",
                   name, configured ? "" : " (not in this configuration)", or_dash(st, "schedule"),
                   or_dash(st, "next_due"), or_dash(st, "cursor"), or_dash(st, "last_run"),
                   or_dash(st, "last_success"),
                   (long long)json_integer_value(json_object_get(st, "last_items")),
                   (long long)json_integer_value(json_object_get(st, "runs")),
                   (long long)json_integer_value(json_object_get(st, "failures")));
            if (json_is_string(json_object_get(st, "claimed_by")))
                printf("  pulling now: %s\n", or_dash(st, "claimed_by"));
            if (json_is_string(json_object_get(st, "last_error")))
                printf("  last error (%s): %s\n", or_dash(st, "last_error_at"),
                       or_dash(st, "last_error"));
        }
        rc = 0;
    }
    json_decref(states);
    txlog_close(tl);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ token */

static const char token_usage[] =
    "usage: hibus token new [-c FILE] CLIENT\n"
    "       hibus token list [-c FILE] [--json] [CLIENT]\n"
    "       hibus token revoke [-c FILE] ID\n"
    "new prints a new bearer token for CLIENT (a client of clients.yaml) once: only\n"
    "its hash is stored, so it cannot be shown again. Requests then send\n"
    "\"Authorization: Bearer TOKEN\". list shows tokens by id, never a secret; revoke\n"
    "ends one (running hibus processes stop taking it within 5 s).\n";

static int token_new(struct txlog *tl, const struct config *cfg, const char *client)
{
    const struct config_client *c = config_find_client(cfg, client);
    if (c == NULL) {
        fprintf(stderr, "hibus token new: no client \"%s\" in %s\n", client, cfg->clients_file);
        return 1;
    }
    struct token_new t;
    struct hibus_error err = {0};
    if (!token_generate(&t)) {
        fprintf(stderr, "hibus token new: no random bytes available\n");
        return 1;
    }
    if (txlog_token_add(tl, t.id, client, t.hash, &err) != HIBUS_OK) {
        cli_print_error("could not store the token", &err);
        return 1;
    }
    printf("%s\n", t.token);
    fprintf(stderr,
            "token %s for client \"%s\"%s: copy it now, it is not shown again (only its hash "
            "is kept)\n",
            t.id, client,
            c->enabled ? ""
                       : " (the client is disabled: the token works once it "
                         "is enabled)");
    return 0;
}

static int token_list(struct txlog *tl, const char *client, bool as_json)
{
    json_t *list = NULL;
    struct hibus_error err = {0};
    if (txlog_token_list(tl, client, &list, &err) != HIBUS_OK) {
        cli_print_error("could not list the tokens", &err);
        return 1;
    }
    if (as_json) {
        json_dumpf(list, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        printf("%-16s  %-24s  %-20s  %s\n", "ID", "CLIENT", "CREATED", "REVOKED");
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t)
        {
            const char *revoked = json_string_value(json_object_get(t, "revoked_at"));
            printf("%-16s  %-24s  %-20s  %s\n", jstr(t, "id"), jstr(t, "client"),
                   jstr(t, "created_at"), revoked ? revoked : "-");
        }
    }
    json_decref(list);
    return 0;
}

int cli_token(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(token_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    bool is_new = strcmp(sub, "new") == 0, is_list = strcmp(sub, "list") == 0,
         is_revoke = strcmp(sub, "revoke") == 0;
    if (!is_new && !is_list && !is_revoke) {
        fprintf(stderr, "hibus token: unknown subcommand \"%s\" (new, list or revoke)\n%s", sub,
                token_usage);
        return 2;
    }
    struct common_opts o = {0};
    int first = 0, rc = 0;
    struct config *cfg = cli_command_setup(argc - 1, argv + 1, &o, token_usage, &first, &rc);
    if (cfg == NULL)
        return rc;
    int operands = argc - 1 - first;
    const char *arg = operands > 0 ? argv[1 + first] : NULL;
    if ((is_list && operands > 1) || (!is_list && operands != 1)) {
        fprintf(stderr, "hibus token %s: expected %s\n%s", sub,
                is_new      ? "one client id"
                : is_revoke ? "one token id"
                            : "at most one client id",
                token_usage);
        config_free(cfg);
        return 2;
    }
    struct txlog *tl = NULL;
    struct hibus_error err = {0};
    rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK || txlog_migrate(tl, NULL, &err) != HIBUS_OK) {
        cli_print_error("could not open the transaction log", &err);
    } else if (is_new) {
        rc = token_new(tl, cfg, arg);
    } else if (is_list) {
        rc = token_list(tl, arg, o.json);
    } else if (txlog_token_revoke(tl, arg, &err) != HIBUS_OK) {
        if (err.code == HIBUS_E_NOT_FOUND)
            fprintf(stderr, "hibus token revoke: no token %s (see hibus token list)\n", arg);
        else
            cli_print_error("could not revoke the token", &err);
    } else {
        printf("token %s revoked\n", arg);
        rc = 0;
    }
    txlog_close(tl);
    config_free(cfg);
    return rc;
}
