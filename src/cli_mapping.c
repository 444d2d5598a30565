/*
 * cli_mapping.c - hibus mapping pull: a channel's mapping refreshed from the
 * metadata of the DHIS2 its dhis2 route delivers to. Prints the diff; with
 * --write rewrites the files the mapping reads (each atomically: a temporary file
 * in the same directory, then rename), then loads the configuration again and, if
 * it no longer loads, puts the old files back. The rules are mapping_pull.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hibus/cli.h"
#include "hibus/config.h"
#include "hibus/mapping_pull.h"
#include "hibus/mediator.h"

#include "cli_internal.h"

static const char mapping_usage[] =
    "usage: hibus mapping pull --channel NAME [-c FILE] [--route NAME] [--write]\n"
    "                          [--page-size N]\n"
    "Refreshes the code tables of the mapping that channel NAME's transform uses\n"
    "from the metadata of the DHIS2 its dhis2 route (the primary one, or --route)\n"
    "delivers to: org units by code (or by the attribute named in the mapping's\n"
    "pull: { org_unit_attribute: UID }), restricted to the mapping's data set when\n"
    "it has one; data elements by the items' codes; category option combos by the\n"
    "measures, matched with their codes, names or category options. Prints what\n"
    "it would add (+), change (~) and remove (-) in each table, and writes nothing\n"
    "unless --write: then the mapping's files (its YAML file, org_units_csv,\n"
    "items_csv) are rewritten in place, rows the pull cannot decide kept, and the\n"
    "configuration is checked again (the old files come back if it fails).\n"
    "--page-size: objects asked a page (default 500). Exit status: 0 done, 1 the\n"
    "configuration does not load (before or after), 2 usage, an unknown channel, no\n"
    "dhis2 route or mapping, or DHIS2 cannot be asked.\n";

#define PULL_PAGE_SIZE 500
#define PULL_MAX_FILE (64 * 1024 * 1024)

/* The dhis2 route to ask: the one named, else the primary one when it is a dhis2
 * route, else the first dhis2 route. NULL after saying why. */
static const struct config_route *pick_route(const struct config_channel *ch, const char *name)
{
    const struct config_route *pick = NULL;
    for (size_t i = 0; i < ch->n_routes; i++) {
        const struct config_route *rt = &ch->routes[i];
        if (name != NULL ? strcmp(rt->name, name) == 0
                         : rt->mediator == CONFIG_MEDIATOR_DHIS2 &&
                               (pick == NULL || rt == config_primary_route(ch)))
            pick = rt;
    }
    if (name != NULL && pick == NULL)
        fprintf(stderr, "hibus mapping pull: channel \"%s\" has no route \"%s\"\n", ch->name, name);
    else if (pick != NULL && pick->mediator != CONFIG_MEDIATOR_DHIS2)
        fprintf(stderr,
                "hibus mapping pull: route \"%s\" of channel \"%s\" is not a dhis2 route: the "
                "pull asks DHIS2's metadata API\n",
                pick->name, ch->name);
    else if (pick == NULL)
        fprintf(stderr,
                "hibus mapping pull: channel \"%s\" has no dhis2 route: there is no DHIS2 to "
                "pull from (add a route with mediator: dhis2)\n",
                ch->name);
    return pick && pick->mediator == CONFIG_MEDIATOR_DHIS2 ? pick : NULL;
}

static char *read_file(const char *path, size_t *len, struct hibus_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        hibus_error_set(err, HIBUS_E_IO, "could not read file \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PULL_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, PULL_MAX_FILE + 1, f) : 0;
    bool bad = buf == NULL || ferror(f) || n > PULL_MAX_FILE;
    fclose(f);
    if (bad) {
        free(buf);
        hibus_error_set(err, HIBUS_E_IO, "could not read file \"%s\" (larger than %d MiB?)", path,
                        PULL_MAX_FILE >> 20);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Writes text to path through a temporary file in its directory and rename(2), so
 * that hibus (a reload) never reads half a file; keeps the file's mode. */
static bool write_atomic(const char *path, const char *text, size_t len)
{
    size_t cap = strlen(path) + 16;
    char *tmp = malloc(cap);
    if (tmp == NULL)
        return false;
    snprintf(tmp, cap, "%s.pullXXXXXX", path);
    int fd = mkstemp(tmp);
    struct stat st;
    bool ok = fd >= 0;
    if (ok && stat(path, &st) == 0)
        ok = fchmod(fd, st.st_mode & 07777) == 0;
    for (size_t at = 0; ok && at < len;) {
        ssize_t w = write(fd, text + at, len - at);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        at += w > 0 ? (size_t)w : 0;
    }
    ok = ok && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "hibus mapping pull: could not write \"%s\": %s\n", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    free(tmp);
    return ok;
}

struct pull_file {
    const char *path;
    bool yaml, items;
    char *old, *new;
    size_t old_len, new_len;
};

/* Does the plan write anything into file? */
static bool has_edits(const struct pull_plan *p, const char *file)
{
    for (size_t i = 0; i < p->n; i++)
        if (!p->v[i].skipped && p->v[i].file != NULL && strcmp(p->v[i].file, file) == 0)
            return true;
    return false;
}

int cli_mapping(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "pull") != 0) {
        bool help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        if (!help && argc >= 2)
            fprintf(stderr, "hibus mapping: unknown subcommand \"%s\" (the one there is: pull)\n",
                    argv[1]);
        fputs(mapping_usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    struct common_opts o = {0};
    int first = cli_parse_opts(argc - 1, argv + 1, &o, mapping_usage);
    if (first < 0)
        return first == -1 ? 0 : 2;
    if (o.channel == NULL || first != argc - 1) {
        fprintf(stderr, "hibus mapping pull: %s\n\n",
                o.channel == NULL ? "--channel NAME is required" : "unexpected operand");
        fputs(mapping_usage, stderr);
        return 2;
    }
    struct config *cfg = cli_load_config(o.config);
    if (cfg == NULL)
        return 1;
    int rc = 2;
    struct pull_meta meta = {0};
    struct pull_plan plan = {0};
    struct pull_file files[3] = {{0}};
    size_t n_files = 0;
    struct hibus_error err = {0};
    bool mediator = false;
    const struct config_channel *ch = config_find_channel(cfg, o.channel);
    const struct mapping *m = ch && ch->has_transform ? ch->transform.mapping : NULL;
    const struct config_route *rt = NULL;
    if (ch == NULL) {
        fprintf(stderr, "hibus mapping pull: no channel \"%s\" in %s\n", o.channel, o.config);
        goto out;
    }
    if (m == NULL) {
        fprintf(stderr,
                "hibus mapping pull: channel \"%s\" uses no mapping (transform: { mapping: "
                "NAME }): there is nothing to pull into\n",
                ch->name);
        goto out;
    }
    if ((rt = pick_route(ch, o.route)) == NULL)
        goto out;
    if (mediator_global_init(&err) != HIBUS_OK) {
        cli_print_error("mapping pull", &err);
        goto out;
    }
    mediator = true;
    if (mapping_pull_fetch(rt, m, o.page_size > 0 ? (size_t)o.page_size : PULL_PAGE_SIZE, &meta,
                           &err) != HIBUS_OK) {
        fprintf(stderr, "hibus mapping pull: channel \"%s\", route \"%s\": ", ch->name, rt->name);
        hibus_error_print(&err, stderr);
        goto out;
    }
    mapping_pull_plan(m, &meta, &plan);

    /* the new text of each file, before anything is printed: what cannot be written
     * is in the notes of the diff */
    const char *paths[3] = {m->file, m->org_units_csv, m->items_csv};
    for (int i = 0; i < 3; i++) {
        if (paths[i] == NULL || !has_edits(&plan, paths[i]))
            continue;
        struct pull_file *f = &files[n_files++];
        *f = (struct pull_file){.path = paths[i], .yaml = i == 0, .items = i == 2};
        enum hibus_err e = HIBUS_OK;
        if ((f->old = read_file(f->path, &f->old_len, &err)) == NULL)
            e = err.code;
        else if (f->yaml)
            e = mapping_pull_rewrite_yaml(f->old, f->old_len, f->path, &plan, &f->new, &f->new_len,
                                          &err);
        else
            e = mapping_pull_rewrite_csv(f->old, f->old_len, f->items, f->path, &plan, &f->new,
                                         &f->new_len, &err);
        if (e != HIBUS_OK) {
            cli_print_error("mapping pull", &err);
            rc = 1;
            goto out;
        }
    }
    printf("mapping \"%s\" (%s) against DHIS2 at %s (channel \"%s\", route \"%s\")\n", m->name,
           m->file, rt->url, ch->name, rt->name);
    /* names and codes come from DHIS2: written so that none can drive the terminal */
    char *diff = NULL;
    size_t diff_len = 0;
    FILE *mem = open_memstream(&diff, &diff_len);
    if (mem != NULL) {
        mapping_pull_print(&plan, mem);
        fclose(mem);
        cli_put_safe(stdout, diff, diff_len);
    }
    free(diff);
    size_t changed = 0;
    for (size_t i = 0; i < n_files; i++)
        changed += files[i].new_len != files[i].old_len ||
                   memcmp(files[i].new, files[i].old, files[i].old_len) != 0;
    rc = 0;
    if (changed == 0) {
        printf("%s\n", plan.n == 0 ? "nothing to write: the mapping is in step with DHIS2"
                                   : "nothing to write: the changes above must be made by hand "
                                     "(see the notes)");
        goto out;
    }
    if (!o.write) {
        printf("dry run: nothing written (hibus mapping pull --write applies it)\n");
        goto out;
    }
    size_t written = 0;
    rc = 1;
    for (; written < n_files; written++)
        if (!write_atomic(files[written].path, files[written].new, files[written].new_len))
            break;
    struct config *again = NULL;
    if (written == n_files && (again = cli_load_config(o.config)) != NULL) {
        for (size_t i = 0; i < n_files; i++)
            printf("wrote %s\n", files[i].path);
        printf("configuration OK after the pull; reload hibus (SIGHUP) to use it\n");
        config_free(again);
        rc = 0;
        goto out;
    }
    /* the pull must not leave a configuration that does not load */
    for (size_t i = 0; i < written; i++)
        write_atomic(files[i].path, files[i].old, files[i].old_len);
    fprintf(stderr, "hibus mapping pull: the mapping was put back as it was: %s\n",
            written == n_files ? "the configuration did not load with the new tables"
                               : "not every file could be written");
out:
    for (size_t i = 0; i < n_files; i++) {
        free(files[i].old);
        free(files[i].new);
    }
    mapping_pull_plan_free(&plan);
    mapping_pull_meta_free(&meta);
    if (mediator)
        mediator_global_cleanup();
    config_free(cfg);
    return rc;
}
