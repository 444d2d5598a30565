/*
 * cli_internal.h - what the command files (cli.c, cli_txlog.c) share: the options
 * every command parses and the start they have in common. Not an API: only
 * src/cli*.c include it.
 */
#ifndef HIBUS_CLI_INTERNAL_H
#define HIBUS_CLI_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "hibus/config.h"
#include "hibus/error.h"
#include "hibus/txlog.h"

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
    /* hibus ls */
    const char *client;
    const char *until;
    const char *facility;
    const char *period;
    const char *request_id;
    bool conflicts;
    int limit;
    long long before;
    /* hibus aggregate show */
    const char *commodity;
    /* hibus mapping pull */
    bool write;
    int page_size;
};

/* Parses the options every command shares; returns the index of the first
 * operand, -1 after printing help (exit 0), -2 on a usage error. */
int cli_parse_opts(int argc, char **argv, struct common_opts *o, const char *usage_text);
/* The configuration at path, or NULL after printing every problem. */
struct config *cli_load_config(const char *path);
/* One database connection for a command that is not the daemon. */
enum hibus_err cli_open_db(const struct config *cfg, struct txlog **tl, struct hibus_error *err);
/* The start every command shares: its options, then the configuration. Returns
 * NULL when the command ends here, with *rc its exit code (0 after --help, 2 for
 * a usage error, 1 for a configuration that does not load). first_operand NULL:
 * the command takes no operands. */
struct config *cli_command_setup(int argc, char **argv, struct common_opts *o, const char *usage,
                                 int *first_operand, int *rc);
/* What clients and targets sent (paths, headers, bodies, codes), written with
 * control characters other than newline and tab, and the C1 controls
 * U+0080..U+009F, as \\xNN / \\u00NN, so that none can move the cursor, recolour
 * or retitle the operator's terminal. */
void cli_put_safe(FILE *out, const char *text, size_t len);

/* "hibus: what: " and the error, on stderr. */
void cli_print_error(const char *what, const struct hibus_error *err);

#endif
