/*
 * fuzz_config.c - libFuzzer target: the configuration loader (scripts/fuzz). The first
 * byte picks which file the rest becomes in an otherwise valid tree: hibus.yaml,
 * clients.yaml, a channel file, a mapping file, or a mapping's CSV table. Every
 * input must load or be refused with diagnostics; nothing may crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_files.h"
#include "hibus/config.h"

static char dir[256];

static const char main_ok[] = "database:\n  url: postgres://localhost/hibus\n";
static const char clients_ok[] =
    "roles: [lmis, ops]\nclients:\n  - id: lmis-national\n    roles: [lmis]\n"
    "    password_hash: "
    "\"$y$j9T$O1xpZ2dHCB9F8u1.PAzAr/$ec4L5xZSYZFjWDm3jVLo/g9fuO0fwTM1Sw5XtUtInlC\"\n";
static const char channel_ok[] = "name: stock\nmatch: { path: /stock }\nallow: { roles: [lmis] }\n"
                                 "transform: { reader: lmis-report, mapping: m }\n"
                                 "routes: [{ name: r, url: \"http://t.example\" }]\n";
static const char mapping_ok[] = "data_set: { code: STOCK, uid: lyLU2wR22tC }\n"
                                 "org_units_csv: ou.csv\n"
                                 "data_elements: []\n";
static const char csv_ok[] = "code,uid\nKE-0001,ImspTQPwCqd\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_tree(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", "config", dir, sizeof dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024)
        return 0;
    static const char *const files[] = {"hibus.yaml", "clients.yaml", "channels/stock.yaml",
                                        "mappings/m.yaml", "mappings/ou.csv"};
    const char *const ok[] = {main_ok, clients_ok, channel_ok, mapping_ok, csv_ok};
    size_t which = data[0] % 5;
    for (size_t i = 0; i < 5; i++) {
        if (i == which)
            fuzz_put(dir, files[i], data + 1, size - 1);
        else
            fuzz_put(dir, files[i], ok[i], strlen(ok[i]));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/hibus.yaml", dir);
    struct config *cfg = NULL;
    struct hibus_diags d = {0};
    if (config_load(path, &cfg, &d) == HIBUS_OK)
        config_free(cfg);
    hibus_diags_free(&d);
    return 0;
}
