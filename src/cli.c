/*
 * cli.c - the hibus commands that run the daemon or read the configuration: serve,
 * check, migrate, passwd, map and keys, and what every command shares (options,
 * loading the configuration, a database connection). The commands that read and
 * change the transaction log (tx, tail, rerun, prune) are in cli_txlog.c.
 *
 * serve reads top to bottom as the daemon's life: configuration, logging,
 * signals, libraries, database and migrations, listener, wait for a signal,
 * drain, stop. Signals are blocked in every thread and taken synchronously by
 * the main thread with sigwait, so no work ever runs in signal context.
 */
#define LOG_SUBSYS "main"
#include "hibus/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hibus/admin.h"
#include "hibus/aggregator.h"
#include "hibus/alerts.h"
#include "hibus/auth.h"
#include "hibus/buf.h"
#include "hibus/config.h"
#include "hibus/metrics.h"
#include "hibus/cpubudget.h"
#include "hibus/delivery.h"
#include "hibus/dhis2.h"
#include "hibus/listener.h"
#include "hibus/log.h"
#include "hibus/mediator.h"
#include "hibus/poller.h"
#include "hibus/retention.h"
#include "hibus/txlog.h"
#include "hibus/worker.h"

#include "cli_internal.h"

/* ------------------------------------------------------------ shared bits */

static const char *default_config(void)
{
    const char *e = getenv("HIBUS_CONFIG");
    return e && e[0] ? e : "/etc/hibus/hibus.yaml";
}

/* Parses the options every command shares; returns the index of the first
 * operand, -1 after printing help (exit 0), -2 on a usage error. */
int cli_parse_opts(int argc, char **argv, struct common_opts *o, const char *usage_text)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"channel", required_argument, NULL, 'C'},
                                             {"status", required_argument, NULL, 'S'},
                                             {"no-migrate", no_argument, NULL, 'M'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"remote", no_argument, NULL, 'R'},
                                             {"route", required_argument, NULL, 'r'},
                                             {"since", required_argument, NULL, 's'},
                                             {"rate", required_argument, NULL, 'T'},
                                             {"cancel", no_argument, NULL, 'X'},
                                             {"client", required_argument, NULL, 'L'},
                                             {"until", required_argument, NULL, 'U'},
                                             {"facility", required_argument, NULL, 'F'},
                                             {"period", required_argument, NULL, 'P'},
                                             {"request-id", required_argument, NULL, 'I'},
                                             {"conflicts", no_argument, NULL, 'K'},
                                             {"limit", required_argument, NULL, 'N'},
                                             {"before", required_argument, NULL, 'B'},
                                             {"commodity", required_argument, NULL, 'O'},
                                             {"write", no_argument, NULL, 'W'},
                                             {"page-size", required_argument, NULL, 'Z'},
                                             {NULL, 0, NULL, 0}};
    o->config = default_config();
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'j': o->json = true; break;
        case 'C': o->channel = optarg; break;
        case 'S': {
            /* A status that does not exist would match nothing, for ever in tail. */
            const char *bad;
            size_t bad_len;
            if (!txlog_status_list_valid(optarg, &bad, &bad_len)) {
                fprintf(stderr, "hibus: --status: \"%.*s\" is not a transaction status; one of",
                        (int)(bad_len > 64 ? 64 : bad_len), bad);
                for (const char *const *k = txlog_statuses; *k; k++)
                    fprintf(stderr, "%s %s", k == txlog_statuses ? "" : ",", *k);
                fprintf(stderr, " (several: --status failed,rejected)\n");
                return -2;
            }
            o->status = optarg;
            break;
        }
        case 'L': o->client = optarg; break;
        case 'U': o->until = optarg; break;
        case 'F': o->facility = optarg; break;
        case 'P': o->period = optarg; break;
        case 'O': o->commodity = optarg; break;
        case 'I': o->request_id = optarg; break;
        case 'K': o->conflicts = true; break;
        case 'N':
        case 'B': {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            long long max = ch == 'N' ? TXLOG_QUERY_MAX : INT64_MAX;
            if (end == optarg || *end != '\0' || errno != 0 || v < 1 || v > max) {
                fprintf(stderr, "hibus: %s expects %s, not \"%s\"\n",
                        ch == 'N' ? "--limit" : "--before",
                        ch == 'N' ? "a number of transactions from 1 to 1000"
                                  : "a transaction id (the one the last page ended with)",
                        optarg);
                return -2;
            }
            if (ch == 'N')
                o->limit = (int)v;
            else
                o->before = v;
            break;
        }
        case 'M': o->no_migrate = true; break;
        case 'R': o->remote = true; break;
        case 'r': o->route = optarg; break;
        case 's': o->since = optarg; break;
        case 'T': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(o->rate > 0) || isinf(o->rate)) {
                fprintf(stderr,
                        "hibus: --rate expects a positive number of transactions a "
                        "second, not \"%s\"\n",
                        optarg);
                return -2;
            }
            break;
        }
        case 'X': o->cancel = true; break;
        case 'W': o->write = true; break;
        case 'Z': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || errno != 0 || v < 1 || v > 10000) {
                fprintf(stderr,
                        "hibus: --page-size expects a number of objects a page from 1 to 10000, "
                        "not \"%s\"\n",
                        optarg);
                return -2;
            }
            o->page_size = (int)v;
            break;
        }
        case 'h': fputs(usage_text, stdout); return -1;
        default: fputs(usage_text, stderr); return -2;
        }
    }
    return optind;
}

struct config *cli_load_config(const char *path)
{
    struct config *cfg = NULL;
    struct hibus_diags d = {0};
    if (config_load(path, &cfg, &d) != HIBUS_OK) {
        hibus_diags_print(&d, stderr);
        fprintf(stderr, "hibus: %zu problem%s in the configuration \"%s\"\n", d.n,
                d.n == 1 ? "" : "s", path);
        hibus_diags_free(&d);
        return NULL;
    }
    hibus_diags_free(&d);
    return cfg;
}

/* One database connection for a command that is not the daemon. */
enum hibus_err cli_open_db(const struct config *cfg, struct txlog **tl, struct hibus_error *err)
{
    return txlog_open(cfg->database_url, 1, cfg->database_connect_timeout_ms, tl, err);
}

void cli_put_safe(FILE *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
            fprintf(out, "\\x%02X", c);
        } else if (c == 0xC2 && i + 1 < len && (unsigned char)text[i + 1] >= 0x80 &&
                   (unsigned char)text[i + 1] <= 0x9F) {
            fprintf(out, "\\u00%02X", (unsigned char)text[++i]);
        } else {
            putc(c, out);
        }
    }
}

void cli_print_error(const char *what, const struct hibus_error *err)
{
    fprintf(stderr, "hibus: %s: ", what);
    hibus_error_print(err, stderr);
}

struct config *cli_command_setup(int argc, char **argv, struct common_opts *o, const char *usage,
                                 int *first_operand, int *rc)
{
    int i = cli_parse_opts(argc, argv, o, usage);
    if (i < 0) {
        *rc = i == -1 ? 0 : 2;
        return NULL;
    }
    if (first_operand != NULL)
        *first_operand = i;
    else if (i != argc) {
        fputs(usage, stderr);
        *rc = 2;
        return NULL;
    }
    struct config *cfg = cli_load_config(o->config);
    *rc = 1;
    return cfg;
}

/* ------------------------------------------------------------------ serve */

static const char serve_usage[] =
    "usage: hibus serve [-c FILE] [--no-migrate]\n"
    "Runs the daemon with the configuration FILE: the HTTP listener and\n"
    "delivery.workers delivery workers. Applies pending database migrations first\n"
    "unless --no-migrate. SIGTERM or SIGINT: stop accepting and claiming, finish\n"
    "the requests and deliveries in flight (up to delivery.drain), put back in\n"
    "the queue what is left, exit 0. SIGHUP: reload the configuration (a\n"
    "configuration with any problem is refused and the running one stays).\n";

/* The configuration's warnings (a secret in plain text) and every route that sends
 * without checking its target's certificate, at each start and reload: an opt-out
 * nobody should forget. */
static void log_config_warnings(const struct config *cfg)
{
    const struct hibus_diags *w = &cfg->warnings;
    for (size_t i = 0; i < w->n; i++)
        LOG_WARN(NULL, "%s:%d:%d: %s", w->v[i].file, w->v[i].line, w->v[i].col, w->v[i].msg);
    for (size_t i = 0; i < cfg->n_channels; i++)
        for (size_t j = 0; j < cfg->channels[i].n_routes; j++) {
            const struct config_route *r = &cfg->channels[i].routes[j];
            if (!r->tls_verify)
                LOG_WARN(NULL,
                         "route \"%s\" of channel \"%s\" does not check the TLS certificate "
                         "of %s (tls.verify: false): anyone on the way can read and change "
                         "what it sends",
                         r->name, cfg->channels[i].name, r->url);
        }
}

/* SIGHUP: a complete new snapshot, checked like hibus check, or nothing: a
 * configuration with any problem is reported and the running one stays.
 * Returns the snapshot the main thread holds from now on. */
static const struct config *reload(struct config_holder *configs, const struct config *cur,
                                   const char *path)
{
    struct config *next = NULL;
    struct hibus_diags d = {0};
    if (config_load(path, &next, &d) != HIBUS_OK) {
        for (size_t i = 0; i < d.n; i++)
            LOG_ERROR(NULL, "reload: %s:%d:%d: %s", d.v[i].file, d.v[i].line, d.v[i].col,
                      d.v[i].msg);
        LOG_ERROR(NULL,
                  "reload refused (%zu problem%s): still running with the previous "
                  "configuration",
                  d.n, d.n == 1 ? "" : "s");
        hibus_diags_free(&d);
        metrics_reload(false);
        return cur;
    }
    hibus_diags_free(&d);
    char names[256];
    const char *why = config_needs_restart(cur, next, names, sizeof names);
    if (why != NULL)
        LOG_WARN(NULL, "reload: %s changed; that takes effect at the next restart, the rest now",
                 why);
    log_setup((enum log_level)next->log_level, (enum log_format)next->log_format);
    delivery_set_transform_memory(next->transform_memory);
    cpu_budget_set_limit(next->request_cpu_ms);
    size_t channels = next->n_channels, clients = next->n_clients;
    config_holder_swap(configs, next);
    config_holder_release(configs, cur);
    LOG_INFO(NULL, "configuration reloaded from \"%s\": %zu channels, %zu clients", path, channels,
             clients);
    metrics_reload(true);
    const struct config *now = config_holder_acquire(configs);
    log_config_warnings(now);
    return now;
}

int cli_serve(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *loaded = cli_command_setup(argc, argv, &o, serve_usage, NULL, &rc);
    if (loaded == NULL)
        return rc;
    log_setup((enum log_level)loaded->log_level, (enum log_format)loaded->log_format);
    /* Requests and delivery rounds each take the snapshot current when they
     * start; SIGHUP swaps in a new one. The main thread holds one too (cfg). */
    struct config_holder *configs = config_holder_new(loaded);
    if (configs == NULL) {
        config_free(loaded);
        fprintf(stderr, "hibus: out of memory\n");
        return 1;
    }
    const struct config *cfg = config_holder_acquire(configs);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread made after this */
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    struct auth_cache *ac = NULL;
    struct listener *l = NULL;
    struct admin *adm = NULL;
    struct alerts *alr = NULL;
    struct aggregator *agg = NULL;
    struct workers *wk = NULL;
    struct retention *ret = NULL;
    struct poller *pol = NULL;
    bool curl_ok = false, keep_txlog = false;
    char node[300];
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(node, sizeof node, "%s:%ld", host, (long)getpid());

    if (mediator_global_init(&err) != HIBUS_OK) {
        cli_print_error("could not start", &err);
        goto out;
    }
    curl_ok = true;
    reader_global_init();
    if (txlog_open(cfg->database_url, cfg->database_pool, cfg->database_connect_timeout_ms, &tl,
                   &err) != HIBUS_OK) {
        cli_print_error("could not open the transaction log", &err);
        goto out;
    }
    if (!o.no_migrate && txlog_migrate(tl, NULL, &err) != HIBUS_OK) {
        cli_print_error("could not apply database migrations", &err);
        goto out;
    }
    if (txlog_announce_start(tl, &err) != HIBUS_OK) {
        cli_print_error("could not start", &err);
        goto out;
    }
    ac = auth_cache_new();
    struct listener_deps deps = {
        .cfg = cfg, .configs = configs, .tl = tl, .auth = ac, .node = node};
    delivery_set_transform_memory(cfg->transform_memory);
    cpu_budget_set_limit(cfg->request_cpu_ms);
    if (listener_start(&deps, &l, &err) != HIBUS_OK) {
        cli_print_error("could not start the listener", &err);
        goto out;
    }
    struct admin_deps adeps = {.cfg = cfg, .configs = configs, .tl = tl, .node = node};
    if (admin_start(&adeps, &adm, &err) != HIBUS_OK) {
        cli_print_error("could not start the admin listener", &err);
        goto out;
    }
    struct worker_deps wdeps = {.cfg = cfg, .configs = configs, .tl = tl, .node = node};
    if (workers_start(&wdeps, &wk, &err) != HIBUS_OK) {
        cli_print_error("could not start the delivery workers", &err);
        goto out;
    }
    if (retention_start(configs, tl, &ret, &err) != HIBUS_OK) {
        cli_print_error("could not start retention", &err);
        goto out;
    }
    if (alerts_start(configs, tl, node, &alr, &err) != HIBUS_OK) {
        cli_print_error("could not start alerts", &err);
        goto out;
    }
    if (aggregator_start(configs, tl, node, &agg, &err) != HIBUS_OK) {
        cli_print_error("could not start the aggregate stage", &err);
        goto out;
    }
    if (poller_start(configs, tl, node, &pol, &err) != HIBUS_OK) {
        cli_print_error("could not start the poller", &err);
        goto out;
    }
    LOG_INFO(NULL,
             "hibus %s listening on %s:%d (%zu channels, %zu clients, %d delivery workers, "
             "node %s)",
             HIBUS_VERSION, cfg->listen_address, listener_port(l), cfg->n_channels, cfg->n_clients,
             cfg->delivery_workers, node);
    log_config_warnings(cfg);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            cfg = reload(configs, cfg, o.config);
            continue;
        }
        LOG_INFO(NULL,
                 "%s: no longer accepting connections or claiming work; finishing what is "
                 "in flight",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    /* Drain: the listener's sync requests first (they hold leases too), then
     * the workers' deliveries, all within delivery.drain. */
    poller_stop(pol); /* a pull under way stops; its cursor stays for the next slot */
    pol = NULL;
    listener_quiesce(l);
    workers_quiesce(wk);
    admin_stop(adm); /* ops calls are not drained: they are only reads and re-queues */
    adm = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!listener_drain(l, cfg->drain_ms))
        LOG_WARN(NULL, "requests still in flight after %ld s; closing their connections",
                 cfg->drain_ms / 1000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (!workers_drain(wk, spent < cfg->drain_ms ? cfg->drain_ms - spent : 0))
        LOG_WARN(NULL, "deliveries still in flight after %ld s; releasing them to the queue",
                 cfg->drain_ms / 1000);
    rc = 0;
out:
    poller_stop(pol);
    aggregator_stop(agg);
    alerts_stop(alr);
    retention_stop(ret);
    keep_txlog = !workers_stop(wk);
    admin_stop(adm);
    listener_stop(l);
    delivery_handoff_clear(); /* nobody puts or takes any more */
    if (keep_txlog) {
        /* A delivery thread is still inside a target call: end the process now,
         * without freeing what it uses. Its transaction is back in the queue. */
        LOG_INFO(NULL, "stopped (one delivery abandoned mid-call; it will be delivered again)");
        fflush(stdout);
        _exit(rc);
    }
    auth_cache_free(ac);
    txlog_close(tl);
    if (curl_ok) {
        mediator_global_cleanup();
        reader_global_cleanup();
    }
    if (rc == 0)
        LOG_INFO(NULL, "stopped");
    config_holder_release(configs, cfg);
    config_holder_free(configs);
    return rc;
}

/* ------------------------------------------------------------------ check */

static const char check_usage[] =
    "usage: hibus check [-c FILE] [--remote]\n"
    "Validates the configuration FILE, its clients file, every channel file and\n"
    "every mapping, offline. Prints every problem as file:line:col: message and\n"
    "exits 1, or prints \"configuration OK\" and exits 0.\n"
    "--remote also asks each DHIS2 that a dhis2 route names for its version and\n"
    "for every UID the route's mapping uses, and lists each UID DHIS2 does not know;\n"
    "and asks the transaction log for the codes payloads sent in the last 30 days\n"
    "that no mapping maps.\n";

/* check --remote's other half: the codes payloads sent that no mapping maps, as
 * the log recorded them. A log that cannot be read is said, not counted: check
 * runs where the database may not be reachable. */
#define CHECK_UNMAPPED_DAYS 30
static int check_unmapped(const struct config *cfg)
{
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *codes = NULL;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK ||
        txlog_unmapped(tl, CHECK_UNMAPPED_DAYS, &codes, &err) != HIBUS_OK) {
        fprintf(stderr,
                "hibus check: the transaction log was not read (%s): codes that payloads "
                "sent and no mapping maps are not listed\n",
                err.msg);
        txlog_close(tl);
        return 0;
    }
    txlog_close(tl);
    size_t n = json_array_size(codes);
    if (n == 0)
        printf("every code payloads sent in the last %d days was mapped\n", CHECK_UNMAPPED_DAYS);
    else
        printf("%zu code%s that payloads sent in the last %d days and no mapping maps:\n", n,
               n == 1 ? "" : "s", CHECK_UNMAPPED_DAYS);
    size_t i;
    json_t *c;
    json_array_foreach(codes, i, c)
    {
        char line[512];
        snprintf(line, sizeof line,
                 "  channel %s: %s \"%s\" in %lld transaction%s, the last %lld (%s)",
                 json_string_value(json_object_get(c, "channel")),
                 json_string_value(json_object_get(c, "kind")),
                 json_string_value(json_object_get(c, "code")),
                 (long long)json_integer_value(json_object_get(c, "transactions")),
                 json_integer_value(json_object_get(c, "transactions")) == 1 ? "" : "s",
                 (long long)json_integer_value(json_object_get(c, "last_transaction")),
                 json_string_value(json_object_get(c, "last_seen")));
        cli_put_safe(stderr, line, strlen(line));
        putc('\n', stderr);
    }
    json_decref(codes);
    return (int)n;
}

/* check --remote: every distinct (DHIS2 URL, mapping) pair once (dhis2_drift),
 * printed. Returns the number of problems found. */
static int check_remote(const struct config *cfg)
{
    struct hibus_error err = {0};
    if (mediator_global_init(&err) != HIBUS_OK) {
        cli_print_error("check --remote", &err);
        return 1;
    }
    struct txlog *tl = NULL; /* for the paths of the last check; may stay NULL */
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK) {
        txlog_close(tl);
        tl = NULL;
    }
    json_t *drift = dhis2_drift(cfg, tl);
    txlog_close(tl);
    int problems = 0, moves = 0;
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(drift, "dhis2"), i, c)
    {
        const char *channel = json_string_value(json_object_get(c, "channel"));
        const char *route = json_string_value(json_object_get(c, "route"));
        const char *error = json_string_value(json_object_get(c, "error"));
        if (error != NULL) {
            fprintf(stderr, "%s: channel \"%s\", route \"%s\": %s\n",
                    json_string_value(json_object_get(c, "file")), channel, route, error);
            problems++;
            continue;
        }
        const json_t *missing = json_object_get(c, "problems");
        printf("DHIS2 %s at %s (channel \"%s\", route \"%s\"): ",
               json_string_value(json_object_get(c, "version")),
               json_string_value(json_object_get(c, "url")), channel, route);
        if (json_array_size(missing) == 0)
            printf("every mapped UID exists\n");
        else
            printf("%zu mapped UID%s missing\n", json_array_size(missing),
                   json_array_size(missing) == 1 ? "" : "s");
        size_t k;
        const json_t *v;
        json_array_foreach(missing, k, v) fprintf(stderr, "  %s\n", json_string_value(v));
        problems += (int)json_array_size(missing);
        json_array_foreach(json_object_get(c, "moved"), k, v)
        {
            const char *line = json_string_value(json_object_get(v, "message"));
            fputs("  ", stderr);
            cli_put_safe(stderr, line, strlen(line));
            putc('\n', stderr);
            moves++;
        }
    }
    if (moves > 0)
        printf("%d mapped org unit%s moved in DHIS2 since the last check\n", moves,
               moves == 1 ? "" : "s");
    const char *why = json_string_value(json_object_get(drift, "moves_not_compared"));
    if (why != NULL)
        fprintf(stderr,
                "hibus check: the transaction log was not reached (%s): org units moved in "
                "DHIS2 since the last check are not listed\n",
                why);
    json_decref(drift);
    mediator_global_cleanup();
    return problems + moves + check_unmapped(cfg);
}

int cli_check(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = cli_command_setup(argc, argv, &o, check_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    size_t enabled = 0;
    for (size_t k = 0; k < cfg->n_channels; k++)
        enabled += cfg->channels[k].enabled;
    printf("configuration OK: %zu channel%s (%zu enabled), %zu client%s, %zu mapping%s\n",
           cfg->n_channels, cfg->n_channels == 1 ? "" : "s", enabled, cfg->n_clients,
           cfg->n_clients == 1 ? "" : "s", cfg->n_mappings, cfg->n_mappings == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->warnings.n; i++) {
        const struct hibus_diag *w = &cfg->warnings.v[i];
        fprintf(stderr, "%s:%d:%d: warning: %s\n", w->file, w->line, w->col, w->msg);
    }
    rc = 0;
    if (o.remote && check_remote(cfg) > 0)
        rc = 1;
    config_free(cfg);
    return rc;
}

/* ---------------------------------------------------------------- migrate */

static const char migrate_usage[] = "usage: hibus migrate [-c FILE]\n"
                                    "Applies the database migrations that are not applied yet.\n";

int cli_migrate(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = cli_command_setup(argc, argv, &o, migrate_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    int applied = 0;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK || txlog_migrate(tl, &applied, &err) != HIBUS_OK) {
        cli_print_error("migration failed", &err);
    } else {
        if (applied == 0)
            printf("database schema is up to date\n");
        else
            printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
        rc = 0;
    }
    txlog_close(tl);
    config_free(cfg);
    return rc;
}

/* ----------------------------------------------------------------- passwd */

static const char passwd_usage[] =
    "usage: hibus passwd < password\n"
    "Reads a password (one line) from standard input and prints its crypt(3)\n"
    "hash (yescrypt) for password_hash: in clients.yaml.\n";

int cli_passwd(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = cli_parse_opts(argc, argv, &o, passwd_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    bool tty = isatty(STDIN_FILENO);
    struct termios old;
    if (tty) {
        fprintf(stderr, "password: ");
        tcgetattr(STDIN_FILENO, &old);
        struct termios noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &noecho);
    }
    char buf[1024];
    bool got = fgets(buf, sizeof buf, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fprintf(stderr, "\n");
    }
    if (!got) {
        fprintf(stderr, "hibus passwd: no password on standard input\n");
        return 1;
    }
    size_t n = strlen(buf);
    if (n == sizeof buf - 1 && buf[n - 1] != '\n') {
        fprintf(stderr, "hibus passwd: password longer than %zu bytes\n", sizeof buf - 2);
        return 1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "hibus passwd: the password is empty\n");
        return 1;
    }
    char hash[256];
    struct hibus_error err = {0};
    enum hibus_err rc = auth_hash_password(buf, hash, sizeof hash, &err);
    explicit_bzero(buf, sizeof buf);
    if (rc != HIBUS_OK) {
        cli_print_error("passwd", &err);
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}

/* -------------------------------------------------------------------- map */

static const char map_usage[] =
    "usage: hibus map [-c FILE] --channel NAME [--route ROUTE] [--json] < payload\n"
    "Runs the channel's transform (reader, mapping, quality rules, writer) on the\n"
    "payload read from standard input, offline: no database, no target. Prints\n"
    "what each route would send, or every problem and exits 1. --json prints one\n"
    "JSON object: the mapped report, problems, skipped values, warnings and bodies.\n";

/* Reads all of f, up to max bytes; NULL when it is longer or out of memory. */
static char *read_all(FILE *f, size_t max, size_t *len)
{
    struct buf b = {0};
    for (;;) {
        if (!buf_reserve(&b, 65536)) {
            buf_free(&b);
            return NULL;
        }
        size_t r = fread(b.s + b.len, 1, b.cap - b.len - 1, f);
        if (r == 0)
            break;
        b.len += r;
        b.s[b.len] = '\0';
        if (b.len > max) {
            buf_free(&b);
            return NULL;
        }
    }
    return buf_take(&b, len);
}

static void print_problem_lines(const char *title, const json_t *list)
{
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *where = json_string_value(json_object_get(p, "where"));
        fprintf(stderr, "%s: %s: %s%s%s%s\n", title, json_string_value(json_object_get(p, "stage")),
                json_string_value(json_object_get(p, "message")), where ? " (at " : "",
                where ? where : "", where ? ")" : "");
    }
}

int cli_map(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = cli_parse_opts(argc, argv, &o, map_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    if (o.channel == NULL || i != argc) {
        fputs(map_usage, stderr);
        return 2;
    }
    struct config *cfg = cli_load_config(o.config);
    if (cfg == NULL)
        return 1;
    int rc = 1;
    size_t len = 0;
    char *body = NULL;
    json_t *doc = NULL;
    struct delivery_prepared p = {0};
    const struct config_channel *ch = config_find_channel(cfg, o.channel);
    if (ch == NULL) {
        fprintf(stderr, "hibus map: no channel \"%s\" in %s\n", o.channel, o.config);
        goto out;
    }
    if (!ch->has_transform) {
        fprintf(stderr,
                "hibus map: channel \"%s\" has no transform: it forwards payloads as they "
                "are\n",
                ch->name);
        goto out;
    }
    if ((body = read_all(stdin, cfg->max_body, &len)) == NULL) {
        fprintf(stderr,
                "hibus map: could not read the payload (over limits.max_body, %zu bytes?)\n",
                cfg->max_body);
        goto out;
    }
    reader_global_init();
    cpu_budget_set_limit(cfg->request_cpu_ms); /* as serve would */
    bool ok = delivery_prepare(ch, body, len, &p) == HIBUS_OK;
    doc = json_pack("{s:s, s:s, s:O, s:O, s:O}", "channel", ch->name, "status",
                    ok ? "deliverable" : "rejected", "problems", p.problems, "skipped", p.skipped,
                    "warnings", p.warnings);
    if (p.report != NULL)
        json_object_set_new(doc, "report", report_to_json(p.report));
    json_t *routes = json_array();
    json_object_set_new(doc, "routes", routes);
    if (p.is_events) { /* stored, not sent: the figures come when the period closes */
        json_t *events = json_array();
        for (size_t e = 0; e < p.events.n; e++) {
            const struct agg_event *ev = &p.events.v[e];
            json_array_append_new(
                events, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s?}", "source_id",
                                  ev->source_id, "facility", ev->facility, "commodity",
                                  ev->commodity, "date", ev->date, "kind", AGG_KIND_NAMES[ev->kind],
                                  "quantity", (json_int_t)ev->quantity, "reason", ev->reason));
        }
        json_object_set_new(doc, "events", events);
    }
    for (size_t r = 0; ok && !p.is_events && r < ch->n_routes; r++) {
        const struct config_route *rt = &ch->routes[r];
        if (o.route != NULL && strcmp(o.route, rt->name) != 0)
            continue;
        char *out = NULL;
        size_t olen = 0;
        const char *ctype = NULL, *writer = NULL;
        struct hibus_error err = {0};
        if (delivery_route_body(ch, rt, &p, &out, &olen, &ctype, &writer, &err) != HIBUS_OK) {
            fprintf(stderr, "hibus map: route \"%s\": %s\n", rt->name, err.msg);
            ok = false;
            break;
        }
        char *url = rt->mediator == CONFIG_MEDIATOR_DHIS2 ? dhis2_import_url(rt, writer) : NULL;
        json_t *jr = json_pack("{s:s, s:s}", "route", rt->name, "url", url ? url : rt->url);
        free(url);
        if (out == NULL) {
            json_object_set_new(jr, "body", json_string("(the payload as received)"));
        } else {
            json_object_set_new(jr, "writer", json_string(writer));
            json_object_set_new(jr, "content_type", json_string(ctype));
            json_t *parsed = json_loadb(out, olen, 0, NULL);
            json_object_set_new(jr, "body", parsed ? parsed : json_stringn(out, olen));
        }
        json_array_append_new(routes, jr);
        free(out);
    }
    if (o.json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
        putchar('\n');
    } else if (!ok) {
        print_problem_lines("rejected", p.problems);
        fprintf(stderr, "hibus map: the payload would be rejected (%zu problem%s)\n",
                json_array_size(p.problems), json_array_size(p.problems) == 1 ? "" : "s");
    } else if (p.is_events) {
        printf("# %zu stock event%s, stored when received; each closed %s period of a facility "
               "is then sent as a report (hibus aggregate show)\n",
               p.events.n, p.events.n == 1 ? "" : "s", period_type_name(ch->aggregate.period_type));
        printf("%-12s %-16s %-16s %-25s %-10s %10s  %s\n", "FACILITY", "COMMODITY", "EVENT", "DATE",
               "KIND", "QUANTITY", "REASON");
        for (size_t e = 0; e < p.events.n; e++) {
            const struct agg_event *ev = &p.events.v[e];
            char line[1024];
            int n = snprintf(line, sizeof line, "%-12s %-16s %-16.16s %-25s %-10s %10lld  %s\n",
                             ev->facility, ev->commodity, ev->source_id, ev->date,
                             AGG_KIND_NAMES[ev->kind], ev->quantity, ev->reason ? ev->reason : "");
            cli_put_safe(stdout, line,
                         n < 0                     ? 0
                         : (size_t)n < sizeof line ? (size_t)n
                                                   : sizeof line - 1);
        }
    } else {
        print_problem_lines("skipped", p.skipped);
        print_problem_lines("warning", p.warnings);
        size_t k;
        json_t *jr;
        json_array_foreach(routes, k, jr)
        {
            printf("# route %s -> %s%s%s\n", json_string_value(json_object_get(jr, "route")),
                   json_string_value(json_object_get(jr, "url")),
                   json_object_get(jr, "content_type") ? " as " : "",
                   json_object_get(jr, "content_type")
                       ? json_string_value(json_object_get(jr, "content_type"))
                       : "");
            const json_t *b = json_object_get(jr, "body");
            if (json_is_string(b))
                printf("%s\n", json_string_value(b));
            else {
                json_dumpf(b, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                putchar('\n');
            }
        }
    }
    rc = ok ? 0 : 1;
    reader_global_cleanup();
out:
    json_decref(doc);
    delivery_prepared_free(&p);
    free(body);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ keys */

static const char keys_usage[] =
    "usage: hibus keys [SECTION]\n"
    "Prints the keys of hibus.yaml from the table the loader uses: type and range,\n"
    "default, whether a reload applies the key or it waits for a restart, an example\n"
    "and its meaning, as Markdown tables. SECTION is listen, database, limits, log,\n"
    "delivery, retention, admin, alerts, or top (the keys outside any section);\n"
    "without one, all.\n";

int cli_keys(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fputs(keys_usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    static const char *const sections[] = {"top",    "listen",   "database",  "limits",
                                           "log",    "delivery", "retention", "admin",
                                           "alerts", "aggregate"};
    size_t rows = 0;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (argc == 2 && strcmp(argv[1], sections[i]) != 0)
            continue;
        if (argc == 1)
            printf("%s## %s\n\n", i ? "\n" : "", sections[i]);
        rows += config_keys_markdown(stdout, strcmp(sections[i], "top") == 0 ? "" : sections[i]);
    }
    if (rows == 0) {
        fprintf(stderr, "hibus keys: no section \"%s\"\n\n%s", argv[1], keys_usage);
        return 2;
    }
    return 0;
}
