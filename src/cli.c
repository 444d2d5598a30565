/*
 * cli.c - the hibus commands: serve, check, migrate, passwd, tx, tail.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hibus/auth.h"
#include "hibus/buf.h"
#include "hibus/config.h"
#include "hibus/delivery.h"
#include "hibus/dhis2.h"
#include "hibus/readers.h"
#include "hibus/listener.h"
#include "hibus/log.h"
#include "hibus/mediator.h"
#include "hibus/txlog.h"
#include "hibus/retention.h"
#include "hibus/worker.h"

/* ------------------------------------------------------------ shared bits */

struct common_opts {
    const char *config;
    bool json;
    bool remote;
    const char *channel;
    const char *status;
    const char *route;
    const char *since;
    double rate;
    bool cancel;
    bool no_migrate;
};

static const char *default_config(void)
{
    const char *e = getenv("HIBUS_CONFIG");
    return e && e[0] ? e : "/etc/hibus/hibus.yaml";
}

/* Parses the options every command shares; returns the index of the first
 * operand, -1 after printing help (exit 0), -2 on a usage error. */
static int parse_opts(int argc, char **argv, struct common_opts *o, const char *usage_text)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},  {"json", no_argument, NULL, 'j'},
        {"channel", required_argument, NULL, 'C'}, {"status", required_argument, NULL, 'S'},
        {"no-migrate", no_argument, NULL, 'M'},    {"help", no_argument, NULL, 'h'},
        {"remote", no_argument, NULL, 'R'},        {"route", required_argument, NULL, 'r'},
        {"since", required_argument, NULL, 's'},   {"rate", required_argument, NULL, 'T'},
        {"cancel", no_argument, NULL, 'X'},        {NULL, 0, NULL, 0}};
    o->config = default_config();
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'j': o->json = true; break;
        case 'C': o->channel = optarg; break;
        case 'S': o->status = optarg; break;
        case 'M': o->no_migrate = true; break;
        case 'R': o->remote = true; break;
        case 'r': o->route = optarg; break;
        case 's': o->since = optarg; break;
        case 'T': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (*end != '\0' || o->rate <= 0) {
                fprintf(stderr,
                        "hibus: --rate expects a positive number of transactions a "
                        "second, not \"%s\"\n",
                        optarg);
                return -2;
            }
            break;
        }
        case 'X': o->cancel = true; break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: fputs(usage_text, stderr); return -2;
        }
    }
    return optind;
}

static struct config *load_config(const char *path)
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
static enum hibus_err open_db(const struct config *cfg, struct txlog **tl, struct hibus_error *err)
{
    return txlog_open(cfg->database_url, 1, cfg->database_connect_timeout_ms, tl, err);
}

/* The start every command shares: its options, then the configuration. Returns
 * NULL when the command ends here, with *rc its exit code (0 after --help, 2 for
 * a usage error, 1 for a configuration that does not load). */
static struct config *command_setup(int argc, char **argv, struct common_opts *o, const char *usage,
                                    int *first_operand, int *rc);

static void print_error(const char *what, const struct hibus_error *err)
{
    fprintf(stderr, "hibus: %s: ", what);
    hibus_error_print(err, stderr);
}

static struct config *command_setup(int argc, char **argv, struct common_opts *o, const char *usage,
                                    int *first_operand, int *rc)
{
    int i = parse_opts(argc, argv, o, usage);
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
    struct config *cfg = load_config(o->config);
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
        return cur;
    }
    hibus_diags_free(&d);
    char names[256];
    const char *why = config_needs_restart(cur, next, names, sizeof names);
    if (why != NULL)
        LOG_WARN(NULL, "reload: %s changed; that takes effect at the next restart, the rest now",
                 why);
    log_setup((enum log_level)next->log_level, (enum log_format)next->log_format);
    size_t channels = next->n_channels, clients = next->n_clients;
    config_holder_swap(configs, next);
    config_holder_release(configs, cur);
    LOG_INFO(NULL, "configuration reloaded from \"%s\": %zu channels, %zu clients", path, channels,
             clients);
    return config_holder_acquire(configs);
}

int cli_serve(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *loaded = command_setup(argc, argv, &o, serve_usage, NULL, &rc);
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
    struct workers *wk = NULL;
    struct retention *ret = NULL;
    bool curl_ok = false, keep_txlog = false;
    char node[300];
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(node, sizeof node, "%s:%ld", host, (long)getpid());

    if (mediator_global_init(&err) != HIBUS_OK) {
        print_error("could not start", &err);
        goto out;
    }
    curl_ok = true;
    reader_global_init();
    if (txlog_open(cfg->database_url, cfg->database_pool, cfg->database_connect_timeout_ms, &tl,
                   &err) != HIBUS_OK) {
        print_error("could not open the transaction log", &err);
        goto out;
    }
    if (!o.no_migrate && txlog_migrate(tl, NULL, &err) != HIBUS_OK) {
        print_error("could not apply database migrations", &err);
        goto out;
    }
    ac = auth_cache_new();
    struct listener_deps deps = {
        .cfg = cfg, .configs = configs, .tl = tl, .auth = ac, .node = node};
    if (listener_start(&deps, &l, &err) != HIBUS_OK) {
        print_error("could not start the listener", &err);
        goto out;
    }
    struct worker_deps wdeps = {.cfg = cfg, .configs = configs, .tl = tl, .node = node};
    if (workers_start(&wdeps, &wk, &err) != HIBUS_OK) {
        print_error("could not start the delivery workers", &err);
        goto out;
    }
    if (retention_start(configs, tl, &ret, &err) != HIBUS_OK) {
        print_error("could not start retention", &err);
        goto out;
    }
    LOG_INFO(NULL,
             "hibus %s listening on %s:%d (%zu channels, %zu clients, %d delivery workers, "
             "node %s)",
             HIBUS_VERSION, cfg->listen_address, listener_port(l), cfg->n_channels, cfg->n_clients,
             cfg->delivery_workers, node);

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
    listener_quiesce(l);
    workers_quiesce(wk);
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
    retention_stop(ret);
    keep_txlog = !workers_stop(wk);
    listener_stop(l);
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
    "for every UID the route's mapping uses, and lists each UID DHIS2 does not know.\n";

/* check --remote: every distinct (DHIS2 URL, mapping) pair once. Returns the
 * number of problems found. */
static int check_remote(const struct config *cfg)
{
    struct hibus_error err = {0};
    if (mediator_global_init(&err) != HIBUS_OK) {
        print_error("check --remote", &err);
        return 1;
    }
    int problems = 0;
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        for (size_t r = 0; r < ch->n_routes; r++) {
            const struct config_route *rt = &ch->routes[r];
            if (rt->mediator != CONFIG_MEDIATOR_DHIS2)
                continue;
            const struct mapping *m = ch->has_transform ? ch->transform.mapping : NULL;
            bool seen = false; /* the same URL and mapping through an earlier route? */
            for (size_t j = 0; j <= i && !seen; j++)
                for (size_t k = 0; k < cfg->channels[j].n_routes && !seen; k++) {
                    const struct config_route *o = &cfg->channels[j].routes[k];
                    if (o == rt)
                        break;
                    seen = o->mediator == CONFIG_MEDIATOR_DHIS2 && strcmp(o->url, rt->url) == 0 &&
                           cfg->channels[j].has_transform &&
                           cfg->channels[j].transform.mapping == m;
                }
            if (seen)
                continue;
            char version[64];
            json_t *missing = json_array();
            if (dhis2_check_remote(rt, m, version, sizeof version, missing, &err) != HIBUS_OK) {
                fprintf(stderr, "%s: channel \"%s\", route \"%s\": ", rt->pos.file, ch->name,
                        rt->name);
                hibus_error_print(&err, stderr);
                problems++;
            } else {
                printf("DHIS2 %s at %s (channel \"%s\", route \"%s\"): ", version, rt->url,
                       ch->name, rt->name);
                if (json_array_size(missing) == 0)
                    printf("every mapped UID exists\n");
                else
                    printf("%zu mapped UID%s missing\n", json_array_size(missing),
                           json_array_size(missing) == 1 ? "" : "s");
                size_t k;
                json_t *v;
                json_array_foreach(missing, k, v) fprintf(stderr, "  %s\n", json_string_value(v));
                problems += (int)json_array_size(missing);
            }
            json_decref(missing);
        }
    }
    mediator_global_cleanup();
    return problems;
}

int cli_check(int argc, char **argv)
{
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = command_setup(argc, argv, &o, check_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    size_t enabled = 0;
    for (size_t k = 0; k < cfg->n_channels; k++)
        enabled += cfg->channels[k].enabled;
    printf("configuration OK: %zu channel%s (%zu enabled), %zu client%s, %zu mapping%s\n",
           cfg->n_channels, cfg->n_channels == 1 ? "" : "s", enabled, cfg->n_clients,
           cfg->n_clients == 1 ? "" : "s", cfg->n_mappings, cfg->n_mappings == 1 ? "" : "s");
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
    struct config *cfg = command_setup(argc, argv, &o, migrate_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    int applied = 0;
    if (open_db(cfg, &tl, &err) != HIBUS_OK || txlog_migrate(tl, &applied, &err) != HIBUS_OK) {
        print_error("migration failed", &err);
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
    int i = parse_opts(argc, argv, &o, passwd_usage);
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
        print_error("passwd", &err);
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}

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
static void print_body(const char *title, const json_t *tx, const char *key)
{
    char k64[64];
    snprintf(k64, sizeof k64, "%s_base64", key);
    const char *text = json_string_value(json_object_get(tx, key));
    const char *b64 = json_string_value(json_object_get(tx, k64));
    if (text == NULL && b64 == NULL)
        return;
    /* A text body may hold a NUL (valid UTF-8): measure it by its JSON length. */
    size_t len = text ? json_string_length(json_object_get(tx, key)) : strlen(b64);
    printf("%s (%s, %zu characters)\n", title, text ? "text" : "binary, base64", len);
    const char *s = text ? text : b64;
    size_t shown = len > 4000 ? 4000 : len;
    fputs("  ", stdout);
    for (size_t i = 0; i < shown; i++) {
        putchar(s[i]);
        if (s[i] == '\n' && i + 1 < shown)
            fputs("  ", stdout);
    }
    if (shown < len)
        printf("\n  ... (%zu more; hibus tx --json shows all)", len - shown);
    putchar('\n');
}

/* An attempt's details: a DHIS2 import summary or an OpenHIM mediator's verdict. */
static void print_details(const json_t *d)
{
    if (!json_is_object(d))
        return;
    if (json_object_get(d, "imported") != NULL) {
        printf("     DHIS2 %s: imported %" JSON_INTEGER_FORMAT ", updated %" JSON_INTEGER_FORMAT
               ", ignored %" JSON_INTEGER_FORMAT ", deleted %" JSON_INTEGER_FORMAT "\n",
               jstr(d, "status"), json_integer_value(json_object_get(d, "imported")),
               json_integer_value(json_object_get(d, "updated")),
               json_integer_value(json_object_get(d, "ignored")),
               json_integer_value(json_object_get(d, "deleted")));
        if (jstr(d, "description")[0])
            printf("     DHIS2 said: %s\n", jstr(d, "description"));
        if (jstr(d, "data_set_complete")[0])
            printf("     data set registered complete: %s\n", jstr(d, "data_set_complete"));
        const json_t *quiet = json_object_get(d, "ignored_without_conflict");
        if (json_integer_value(quiet) > 0)
            printf("     %" JSON_INTEGER_FORMAT " ignored without a conflict: zeros of data "
                   "elements whose zeroIsSignificant is false, or values unchanged since the "
                   "last import (DHIS2 2.38+); not an error\n",
                   json_integer_value(quiet));
        size_t i;
        const json_t *c;
        json_array_foreach(json_object_get(d, "conflicts"), i, c) printf(
            "     conflict %s %s: %s\n", jstr(c, "errorCode")[0] ? jstr(c, "errorCode") : "-",
            jstr(c, "object"), jstr(c, "value"));
        const json_t *rej = json_object_get(d, "rejected_indexes");
        if (json_array_size(rej) > 0) {
            printf("     rejected values (0-based positions in what hibus sent):");
            json_array_foreach(rej, i, c)
            {
                if (i == 20) {
                    printf(" ... (%zu in all)", json_array_size(rej));
                    break;
                }
                printf(" %" JSON_INTEGER_FORMAT, json_integer_value(c));
            }
            putchar('\n');
        }
    } else if (json_object_get(d, "openhim_status") != NULL) {
        printf("     OpenHIM mediator %s: %s, %zu orchestration%s\n", jstr(d, "mediator_urn"),
               jstr(d, "openhim_status"), json_array_size(json_object_get(d, "orchestrations")),
               json_array_size(json_object_get(d, "orchestrations")) == 1 ? "" : "s");
    }
}

static void print_problems(const char *title, const json_t *list)
{
    if (json_array_size(list) == 0)
        return;
    printf("%s (%zu)\n", title, json_array_size(list));
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *where = jstr(p, "where");
        printf("  %s: %s%s%s%s\n", jstr(p, "stage"), jstr(p, "message"), where[0] ? " (at " : "",
               where, where[0] ? ")" : "");
    }
}

static void print_tx(const json_t *tx)
{
    const json_t *dur = json_object_get(tx, "duration_ms");
    printf("transaction %" JSON_INTEGER_FORMAT "  %s\n",
           json_integer_value(json_object_get(tx, "id")), jstr(tx, "status"));
    printf("  channel     %s\n", jstr(tx, "channel"));
    printf("  client      %s\n", jstr(tx, "client"));
    const char *q = jstr(tx, "query");
    printf("  request     %s %s%s%s\n", jstr(tx, "method"), jstr(tx, "path"), q[0] ? "?" : "", q);
    printf("  request id  %s\n", jstr(tx, "request_id"));
    printf("  mode        %s, %" JSON_INTEGER_FORMAT " delivery round%s%s%s\n", jstr(tx, "mode"),
           json_integer_value(json_object_get(tx, "rounds")),
           json_integer_value(json_object_get(tx, "rounds")) == 1 ? "" : "s",
           jstr(tx, "next_attempt_at")[0] ? ", next at " : "", jstr(tx, "next_attempt_at"));
    if (jstr(tx, "bodies_pruned_at")[0])
        printf("  bodies      removed by retention at %s\n", jstr(tx, "bodies_pruned_at"));
    printf("  node        %s\n", jstr(tx, "node"));
    printf("  received    %s\n", jstr(tx, "received_at"));
    if (json_is_number(dur))
        printf("  finished    %s (%.1f ms)\n", jstr(tx, "finished_at"), json_number_value(dur));
    else
        printf("  finished    -\n");
    const json_t *rs = json_object_get(tx, "response_status");
    if (json_is_integer(rs))
        printf("  answered    %" JSON_INTEGER_FORMAT "\n", json_integer_value(rs));
    if (jstr(tx, "error")[0])
        printf("  error       %s\n", jstr(tx, "error"));
    printf("request headers\n");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(tx, "request_headers"), name, v)
        printf("  %s: %s\n", name, json_string_value(v) ? json_string_value(v) : "");
    print_body("request body", tx, "request_body");
    const json_t *atts = json_object_get(tx, "attempts");
    printf("attempts (%zu)\n", json_array_size(atts));
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
        printf("  #%" JSON_INTEGER_FORMAT " route %s  %s %s  -> %s in %.1f ms  (%s)\n",
               json_integer_value(json_object_get(a, "attempt")), jstr(a, "route"),
               jstr(a, "method"), jstr(a, "url"), code,
               json_number_value(json_object_get(a, "duration_ms")), jstr(a, "started_at"));
        if (jstr(a, "error")[0])
            printf("     error: %s\n", jstr(a, "error"));
        print_details(json_object_get(a, "details"));
    }
    const json_t *pr = json_object_get(tx, "problems");
    print_problems("problems (why it was rejected)", json_object_get(pr, "problems"));
    print_problems("skipped (unmapped, not delivered)", json_object_get(pr, "skipped"));
    print_problems("warnings", json_object_get(pr, "warnings"));
    print_body("response body", tx, "response_body");
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

int cli_tx(int argc, char **argv)
{
    struct common_opts o = {0};
    int i = parse_opts(argc, argv, &o, tx_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    int64_t id;
    if (i != argc - 1 || !parse_id(argv[i], &id)) {
        fprintf(stderr, "hibus tx: expected one transaction id (a positive integer)\n%s", tx_usage);
        return 2;
    }
    struct config *cfg = load_config(o.config);
    if (cfg == NULL)
        return 1;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *tx = NULL;
    int rc = 1;
    if (open_db(cfg, &tl, &err) != HIBUS_OK || txlog_get_json(tl, id, &tx, &err) != HIBUS_OK) {
        if (err.code == HIBUS_E_NOT_FOUND)
            fprintf(stderr, "hibus tx: no transaction %lld\n", (long long)id);
        else
            print_error("could not read the transaction", &err);
    } else {
        if (o.json) {
            json_dumpf(tx, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
            putchar('\n');
        } else {
            print_tx(tx);
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
    "usage: hibus tail [-c FILE] [--channel NAME] [--status STATUS]\n"
    "Prints each transaction as it is received and as its status changes, live,\n"
    "one line each: time, id, channel, client, status, HTTP code, duration.\n"
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
    int i = parse_opts(argc, argv, &o, tail_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    if (i != argc) {
        fputs(tail_usage, stderr);
        return 2;
    }
    struct config *cfg = load_config(o.config);
    if (cfg == NULL)
        return 1;
    struct sigaction sa = {.sa_handler = on_tail_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct hibus_error err = {0};
    struct txlog_listener *lis = NULL;
    int rc = 0;
    bool said_lost = false;
    while (!tail_stop) {
        if (lis == NULL) {
            if (txlog_listen(cfg->database_url, cfg->database_connect_timeout_ms, &lis, &err) !=
                HIBUS_OK) {
                if (!said_lost)
                    print_error("cannot follow the transaction log (retrying every 2 s)", &err);
                said_lost = true;
                sleep(2);
                continue;
            }
            if (said_lost)
                fprintf(stderr, "hibus tail: connected again\n");
            said_lost = false;
        }
        int64_t id;
        enum hibus_err e = txlog_listener_next(lis, 500, &id, &err);
        if (e == HIBUS_E_TIMEOUT)
            continue;
        struct txlog_summary s;
        if (e == HIBUS_OK)
            e = txlog_listener_summary(lis, id, &s, &err);
        if (e == HIBUS_E_NOT_FOUND)
            continue;
        if (e != HIBUS_OK) {
            print_error("lost the database connection (retrying every 2 s)", &err);
            said_lost = true;
            txlog_listener_close(lis);
            lis = NULL;
            continue;
        }
        if ((o.channel && strcmp(o.channel, s.channel) != 0) ||
            (o.status && strcmp(o.status, s.status) != 0))
            continue;
        char code[8] = "-";
        if (s.response_status)
            snprintf(code, sizeof code, "%d", s.response_status);
        printf("%s %8lld %-24s %-20s %-22s %4s %9.1fms\n", s.time, (long long)s.id, s.channel,
               s.client[0] ? s.client : "-", s.status, code, s.duration_ms);
        fflush(stdout);
    }
    txlog_listener_close(lis);
    config_free(cfg);
    return rc;
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
    int i = parse_opts(argc, argv, &o, map_usage);
    if (i < 0)
        return i == -1 ? 0 : 2;
    if (o.channel == NULL || i != argc) {
        fputs(map_usage, stderr);
        return 2;
    }
    struct config *cfg = load_config(o.config);
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
    bool ok = delivery_prepare(ch, body, len, &p) == HIBUS_OK;
    doc = json_pack("{s:s, s:s, s:O, s:O, s:O}", "channel", ch->name, "status",
                    ok ? "deliverable" : "rejected", "problems", p.problems, "skipped", p.skipped,
                    "warnings", p.warnings);
    if (p.report != NULL)
        json_object_set_new(doc, "report", report_to_json(p.report));
    json_t *routes = json_array();
    json_object_set_new(doc, "routes", routes);
    for (size_t r = 0; ok && r < ch->n_routes; r++) {
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

/* ------------------------------------------------------------------ rerun */

static const char rerun_usage[] =
    "usage: hibus rerun [-c FILE] [--rate N] ID...\n"
    "       hibus rerun [-c FILE] [--rate N] [--channel NAME] [--status STATUS] [--since TIME]\n"
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
    int i = parse_opts(argc, argv, &o, rerun_usage);
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
    struct config *cfg = load_config(o.config);
    if (cfg == NULL) {
        free(ids);
        return 1;
    }
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    long n = 0, superseded = 0;
    int rc = 1;
    if (open_db(cfg, &tl, &err) != HIBUS_OK) {
        print_error("rerun", &err);
    } else if (o.cancel) {
        if (txlog_rerun_cancel(tl, o.channel, &n, &err) != HIBUS_OK)
            print_error("could not cancel reruns", &err);
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
            print_error("could not re-queue", &err);
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
    struct config *cfg = command_setup(argc, argv, &o, prune_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    struct txlog_prune_result r;
    rc = 1;
    if (open_db(cfg, &tl, &err) != HIBUS_OK ||
        retention_prune_once(cfg, tl, &r, &err) != HIBUS_OK) {
        print_error("prune", &err);
    } else if (r.skipped) {
        printf("another hibus process is pruning right now; nothing done\n");
        rc = 0;
    } else {
        printf("partitions made %d, dropped %d; transactions removed %ld; bodies emptied %ld\n",
               r.partitions_made, r.partitions_dropped, r.transactions_deleted, r.bodies_pruned);
        rc = 0;
    }
    txlog_close(tl);
    config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ keys */

static const char keys_usage[] =
    "usage: hibus keys [SECTION]\n"
    "Prints the keys of hibus.yaml from the table the loader uses: type and range,\n"
    "default, whether a reload applies the key or it waits for a restart, an example\n"
    "and its meaning, as Markdown tables. SECTION is listen, database, limits, log,\n"
    "delivery, retention, or top (the keys outside any section); without one, all.\n";

int cli_keys(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fputs(keys_usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    static const char *const sections[] = {"top", "listen",   "database", "limits",
                                           "log", "delivery", "retention"};
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
