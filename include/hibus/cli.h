/*
 * cli.h - the hibus commands. Each takes the arguments after its name and
 * returns the process exit code (0 success, 1 failure, 2 usage error).
 * Called from main() only.
 */
#ifndef HIBUS_CLI_H
#define HIBUS_CLI_H

int cli_serve(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_passwd(int argc, char **argv);
int cli_tx(int argc, char **argv);
int cli_tail(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_aggregate(int argc, char **argv);
int cli_map(int argc, char **argv);
int cli_rerun(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_mapping(int argc, char **argv);
int cli_polls(int argc, char **argv);

#endif
