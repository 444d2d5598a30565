/*
 * main.c - the hibus command line: picks a command and runs it.
 * The commands themselves live in cli.c.
 */
#include <stdio.h>
#include <string.h>

#include "hibus/alloc.h"
#include "hibus/cli.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cli_serve, "run the daemon: listen, route, deliver, log"},
    {"check", cli_check, "validate the configuration offline"},
    {"migrate", cli_migrate, "apply database migrations"},
    {"passwd", cli_passwd, "print a password hash for clients.yaml (password on stdin)"},
    {"tx", cli_tx, "show one transaction and its delivery attempts"},
    {"tail", cli_tail, "follow transactions live as they change"},
    {"ls", cli_ls, "list and search transactions, newest first"},
    {"aggregate", cli_aggregate, "explain the figures derived from stock events (show)"},
    {"map", cli_map, "show offline what a channel would send for a payload (stdin)"},
    {"mapping", cli_mapping, "pull: refresh a mapping's code tables from DHIS2's metadata"},
    {"rerun", cli_rerun, "put finished transactions back in the delivery queue"},
    {"prune", cli_prune, "apply the retention rules once, now"},
    {"token", cli_token, "new, list or revoke a client's bearer tokens"},
    {"polls", cli_polls, "polling channels: schedule, cursor, last error; run now; reset cursor"},
    {"keys", cli_keys, "print the keys of hibus.yaml: type, default, reload or restart"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hibus COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'hibus COMMAND --help' describes each. The configuration file is -c FILE,\n"
               "else $HIBUS_CONFIG, else /etc/hibus/hibus.yaml.\n");
}

int main(int argc, char **argv)
{
    hibus_alloc_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("hibus %s\n", HIBUS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hibus: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
