/*
 * config.c - load and validate hibus.yaml, clients.yaml and channels/NAME.yaml into one
 * immutable struct config (see hibus/config.h and docs/configuration.md).
 *
 * Entry points: config_load, config_free, the config_find_* lookups and the
 * snapshot holder that a reload swaps.
 *
 * How it works: each file is read with libyaml's document API, so every node keeps
 * its start mark and every problem can be reported as "file:line:col: message".
 * Each mapping is checked against one table of allowed keys (config_map_keys); the
 * caller then reads the values it found, in the order it needs. Nothing stops at
 * the first problem: every error in every file is appended to the caller's diags,
 * and config_load fails at the end if any was added.
 *
 * This file holds the loader, clients.yaml and the snapshot. The keys of hibus.yaml
 * are rows of one table in config_keys.c; channel files are read by
 * config_channel.c; mapping files (mappings/NAME.yaml) by config_mapping.c when a
 * channel's transform names them, once per config, right after that channel file
 * (one YAML document is open at a time); typed values (${NAME} expansion,
 * durations, sizes, names) by config_values.c. What they share is in
 * config_internal.h.
 *
 * Invariants: a struct config is only handed out when it is complete and valid;
 * regular expressions are compiled only once the channel array has reached its
 * final place (a regex_t is not guaranteed to survive being moved); every
 * struct config_pos.file points into cfg->files; a transform's mapping points to
 * a struct mapping owned by cfg->mappings (never moved, so sorting channels is safe).
 */
#include "hibus/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config_internal.h"
#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/mapping.h"
#include "hibus/router.h"

/* Limits on input: a config file larger than this is refused, and so is a scalar
 * longer than this once ${NAME} references are expanded. */

/* ------------------------------------------------------------------------------------
 * Loader state and diagnostics
 * ------------------------------------------------------------------------------------ */

void config_err_pos(struct loader *ld, const char *file, int line, int col, const char *fmt, ...)
    HIBUS_PRINTF(5, 6);
void config_err_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);

void config_verr_pos(struct loader *ld, const char *file, int line, int col, const char *fmt,
                     va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap); /* a cut diagnostic is still useful */
    hibus_diags_add(ld->diags, file, line, col, "%s", buf);
}

void config_err_pos(struct loader *ld, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    config_verr_pos(ld, file, line, col, fmt, ap);
    va_end(ap);
}

/* Reports at a node of the current document; libyaml marks are 0-based. */
void config_err_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    config_verr_pos(ld, ld->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt,
                    ap);
    va_end(ap);
}

/* A warning at a node of the current document: kept with the configuration. */
void config_warn_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hibus_diags_add(&ld->cfg->warnings, ld->file, (int)n->start_mark.line + 1,
                    (int)n->start_mark.column + 1, "%s", buf);
}

static bool has_errors(const struct loader *ld)
{
    return ld->diags->n > ld->diags_start;
}

struct config_pos config_pos_of(const struct loader *ld, const yaml_node_t *n)
{
    struct config_pos p = {ld->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return p;
}

char *config_xstrdup(struct loader *ld, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        ld->oom = true;
    return d;
}

/* Makes room for one more element in *v (n used, *cap allocated). The arrays of
 * struct config keep no capacity; callers pass cap = n, which reallocates on every
 * append: fine for lists as short as a configuration's. */
bool config_grow(struct loader *ld, void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *nv = reallocarray(*v, ncap, size);
    if (nv == NULL) {
        ld->oom = true;
        return false;
    }
    *v = nv;
    *cap = ncap;
    return true;
}

char *config_dir_of(struct loader *ld, const char *path);

void config_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ------------------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------------------ */

yaml_node_t *config_node(const struct loader *ld, yaml_node_item_t i)
{
    return yaml_document_get_node(ld->doc, i);
}

const char *config_kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_NO_NODE: break;
    }
    return "nothing";
}

const char *config_scalar_raw(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* "key:" with nothing after it, or ~ / null: accepted as an empty mapping or list. */
bool config_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = config_scalar_raw(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

bool config_expect_mapping(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_MAPPING_NODE || config_is_null(n))
        return true;
    config_err_at(ld, n, "expected a mapping for %s, got %s", what, config_kind_name(n));
    return false;
}

bool config_expect_list(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_SEQUENCE_NODE || config_is_null(n))
        return true;
    config_err_at(ld, n, "expected a list for %s, got %s", what, config_kind_name(n));
    return false;
}

size_t config_list_len(const yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return 0;
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *config_list_item(const struct loader *ld, const yaml_node_t *n, size_t i)
{
    return config_node(ld, n->data.sequence.items.start[i]);
}

/* ------------------------------------------------------------------------------------
 * Mappings, checked against a table of allowed keys
 * ------------------------------------------------------------------------------------ */

/* Checks that every key of map is scalar, allowed by keys[] and not repeated, and
 * that every required key is present; found[i] receives the key and value nodes
 * for keys[i] (both NULL when absent). "where" names the mapping in messages
 * ("listen", "routes[0].auth"); NULL means the top level of the file. Returns
 * false if map is not a mapping (then nothing was found). */
bool config_map_keys(struct loader *ld, const yaml_node_t *map, const char *where,
                     const struct key_spec *keys, size_t nkeys, struct found *found)
{
    char in[128];
    if (where)
        snprintf(in, sizeof in, "in %s", where);
    else
        snprintf(in, sizeof in, "at top level");

    memset(found, 0, nkeys * sizeof *found);
    if (!config_expect_mapping(ld, map, where ? where : "the top level"))
        return false;
    if (map->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = config_node(ld, p->key);
            yaml_node_t *v = config_node(ld, p->value);
            if (k->type != YAML_SCALAR_NODE) {
                config_err_at(ld, k, "expected a scalar key %s, got %s", in, config_kind_name(k));
                continue;
            }
            size_t i = 0;
            while (i < nkeys && strcmp(keys[i].name, config_scalar_raw(k)) != 0)
                i++;
            if (i == nkeys) {
                char allowed[512];
                size_t len = 0;
                allowed[0] = '\0';
                for (size_t j = 0; j < nkeys && len < sizeof allowed; j++) {
                    int w = snprintf(allowed + len, sizeof allowed - len, "%s%s", j ? ", " : "",
                                     keys[j].name);
                    len += w > 0 ? (size_t)w : 0;
                }
                config_err_at(ld, k, "unknown key \"%s\" %s (expected one of: %s)",
                              config_scalar_raw(k), in, allowed);
            } else if (found[i].key) {
                config_err_at(ld, k, "duplicate key \"%s\" %s (first defined at %s:%d:%d)",
                              config_scalar_raw(k), in, ld->file,
                              (int)found[i].key->start_mark.line + 1,
                              (int)found[i].key->start_mark.column + 1);
            } else {
                found[i].key = k;
                found[i].val = v;
            }
        }
    }
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].required && found[i].key == NULL)
            config_err_at(ld, map, "missing required key \"%s\" %s", keys[i].name, in);
    return true;
}

/* For keys that exclude each other (found[first..last]): returns the one that comes
 * first in the file, reporting each of the others as a conflict; NULL if none. */
const struct found *config_exactly_one(struct loader *ld, const struct found *f, size_t first,
                                       size_t last, const struct key_spec *keys, const char *where,
                                       const char *choices)
{
    const struct found *one = NULL;
    for (size_t k = first; k <= last; k++)
        if (f[k].key && (one == NULL || f[k].key->start_mark.index < one->key->start_mark.index))
            one = &f[k];
    for (size_t k = first; k <= last; k++)
        if (f[k].key && &f[k] != one)
            config_err_at(ld, f[k].key, "%s has both %s and %s (use exactly one of %s)", where,
                          config_scalar_raw(one->key), keys[k].name, choices);
    return one;
}

/* ------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------ */

/* dir + "/" + name, or name itself when it is absolute or dir is ".". */
char *config_path_join(struct loader *ld, const char *dir, const char *name)
{
    if (name[0] == '/' || strcmp(dir, ".") == 0)
        return config_xstrdup(ld, name);
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        ld->oom = true;
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Adds a path to cfg->files (taking ownership) and returns the stored string. */
const char *config_add_file(struct loader *ld, char *path)
{
    struct config *cfg = ld->cfg;
    size_t cap = cfg->n_files;
    if (path == NULL ||
        !config_grow(ld, (void **)&cfg->files, &cap, cfg->n_files, sizeof *cfg->files)) {
        free(path);
        return NULL;
    }
    cfg->files[cfg->n_files++] = path;
    return path;
}

/* Reads and parses one file into doc. A problem opening it is reported at "from"
 * (the node that named the file) when given, else at the file itself. Returns
 * the root node, or NULL when there is nothing to walk (the problem was reported). */
const char *config_not_regular(const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        return NULL;
    if (S_ISDIR(st->st_mode))
        return "it is a directory, not a file";
    if (S_ISFIFO(st->st_mode))
        return "it is a FIFO (named pipe), not a regular file";
    return "it is a device or socket, not a regular file";
}

FILE *config_open_regular(const char *file, size_t max, size_t *size, const char **why)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    *why = NULL;
    if (fd < 0 || fstat(fd, &st) != 0)
        *why = strerror(errno);
    else if ((*why = config_not_regular(&st)) == NULL && (unsigned long long)st.st_size > max)
        *why = strerror(EFBIG);
    FILE *f = NULL;
    if (*why == NULL) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
            (f = fdopen(fd, "rb")) == NULL)
            *why = strerror(errno);
    }
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    *size = (size_t)st.st_size;
    return f;
}

yaml_node_t *config_parse_file(struct loader *ld, const char *file, const struct config_pos *from,
                               yaml_document_t *doc)
{
    ld->file = file;
    ld->doc = NULL;
    ld->read_failed = false;
    size_t size = 0;
    const char *why = NULL;
    FILE *f = config_open_regular(file, CONFIG_MAX_FILE, &size, &why);
    if (f == NULL) {
        ld->read_failed = true;
        if (from)
            config_err_pos(ld, from->file, from->line, from->col, "could not read file \"%s\": %s",
                           file, why);
        else
            config_err_pos(ld, file, 0, 0, "could not read file: %s", why);
        return NULL;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        ld->oom = true;
        return NULL;
    }
    yaml_parser_set_input_file(&parser, f);
    yaml_node_t *root = NULL;
    if (!yaml_parser_load(&parser, doc)) {
        if (parser.error == YAML_MEMORY_ERROR)
            ld->oom = true;
        else if (parser.context)
            config_err_pos(ld, file, (int)parser.problem_mark.line + 1,
                           (int)parser.problem_mark.column + 1, "invalid YAML: %s (%s at %d:%d)",
                           parser.problem ? parser.problem : "syntax error", parser.context,
                           (int)parser.context_mark.line + 1, (int)parser.context_mark.column + 1);
        else
            config_err_pos(ld, file, (int)parser.problem_mark.line + 1,
                           (int)parser.problem_mark.column + 1, "invalid YAML: %s",
                           parser.problem ? parser.problem : "syntax error");
    } else {
        root = yaml_document_get_root_node(doc);
        if (root == NULL) {
            config_err_pos(ld, file, 1, 1, "empty document (expected a mapping)");
            yaml_document_delete(doc);
        } else {
            yaml_document_t next;
            if (!yaml_parser_load(&parser, &next)) {
                config_err_pos(ld, file, (int)parser.problem_mark.line + 1,
                               (int)parser.problem_mark.column + 1, "invalid YAML: %s",
                               parser.problem ? parser.problem : "syntax error");
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&next);
                if (r2) {
                    /* the file's content is split: checking half of it only adds noise */
                    config_err_pos(ld, file, (int)r2->start_mark.line + 1,
                                   (int)r2->start_mark.column + 1,
                                   "only one YAML document is allowed per file");
                    root = NULL;
                }
                yaml_document_delete(&next);
            }
            if (root)
                ld->doc = doc;
            else
                yaml_document_delete(doc);
        }
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return root;
}

/* ------------------------------------------------------------------------------------
 * clients.yaml
 * ------------------------------------------------------------------------------------ */

enum { K_C_ROLES, K_C_CLIENTS };
static const struct key_spec clients_file_keys[] = {
    [K_C_ROLES] = {"roles", false},
    [K_C_CLIENTS] = {"clients", false},
};

enum { K_CL_ID, K_CL_NAME, K_CL_ROLES, K_CL_PASSWORD_HASH, K_CL_ENABLED, K_CL_RATE, K_CL_CERT };
static const struct key_spec client_keys[] = {
    [K_CL_ID] = {"id", true},
    [K_CL_NAME] = {"name", false},
    [K_CL_ROLES] = {"roles", false},
    [K_CL_PASSWORD_HASH] = {"password_hash", false}, /* required without certificate */
    [K_CL_ENABLED] = {"enabled", false},
    [K_CL_RATE] = {"rate_limit", false},
    [K_CL_CERT] = {"certificate", false},
};

bool config_role_declared(const struct config *cfg, const char *role)
{
    for (size_t i = 0; i < cfg->n_roles; i++)
        if (strcmp(cfg->roles[i], role) == 0)
            return true;
    return false;
}

/* Looks like crypt(3) output of a scheme hibus passwd makes or libxcrypt checks:
 * a known prefix, then only the crypt alphabet, with the salt ended by a '$'. */
static bool is_crypt_hash(const char *h)
{
    static const char *const prefixes[] = {"$y$", "$6$", "$5$", "$2b$", "$gy$"};
    size_t plen = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(h, prefixes[i], strlen(prefixes[i])) == 0)
            plen = strlen(prefixes[i]);
    if (plen == 0 || strlen(h) < plen + 20 || strchr(h + plen, '$') == NULL)
        return false;
    for (const char *p = h + plen; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("./$=", *p) == NULL) /* = in rounds=N */
            return false;
    return true;
}

bool config_client_exists(const struct config *cfg, const char *id)
{
    return config_find_client(cfg, id) != NULL;
}

enum { K_RL_REQUESTS, K_RL_PER };
static const struct key_spec rate_keys[] = {
    [K_RL_REQUESTS] = {"requests", true},
    [K_RL_PER] = {"per", true},
};

/* rate_limit: { requests: 600, per: 1m }: past it the client gets 429 with
 * Retry-After; the bucket holds as many requests as the limit (its burst). */
static void load_rate_limit(struct loader *ld, yaml_node_t *n, const char *where,
                            struct config_client *c)
{
    char what[96];
    snprintf(what, sizeof what, "%s.rate_limit", where);
    struct found f[sizeof rate_keys / sizeof rate_keys[0]];
    if (!MAP_KEYS(ld, n, what, rate_keys, f))
        return;
    long requests = 0, per = 0;
    snprintf(what, sizeof what, "%s.rate_limit.requests", where);
    bool ok = f[K_RL_REQUESTS].val &&
              config_get_long(ld, f[K_RL_REQUESTS].val, what, 1, 1000000, &requests);
    snprintf(what, sizeof what, "%s.rate_limit.per", where);
    ok = f[K_RL_PER].val &&
         config_get_duration_in(ld, f[K_RL_PER].val, what, &config_dur_short, &per) && ok;
    if (ok) {
        c->rate_requests = (unsigned)requests;
        c->rate_per_ms = per;
    }
}
enum { K_CC_SHA256, K_CC_SUBJECT };
static const struct key_spec cert_keys[] = {
    [K_CC_SHA256] = {"sha256", false},
    [K_CC_SUBJECT] = {"subject", false},
};

/* "AB:CD:..." or "abcd..." (64 hex digits, colons optional) into 32 bytes. */
static bool parse_sha256(const char *s, unsigned char out[32])
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ':')
            continue;
        int v = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                         : -1;
        if (v < 0 || n >= 64)
            return false;
        if (n % 2 == 0)
            out[n / 2] = (unsigned char)(v << 4);
        else
            out[n / 2] |= (unsigned char)v;
        n++;
    }
    return n == 64;
}

/* certificate: { sha256: FINGERPRINT } or { subject: DN }, exactly one. */
static void load_client_cert(struct loader *ld, yaml_node_t *n, const char *where,
                             struct config_client *c)
{
    char what[96];
    snprintf(what, sizeof what, "%s.certificate", where);
    struct found f[sizeof cert_keys / sizeof cert_keys[0]];
    if (!MAP_KEYS(ld, n, what, cert_keys, f))
        return;
    if ((f[K_CC_SHA256].val == NULL) == (f[K_CC_SUBJECT].val == NULL)) {
        config_err_at(ld, n, "%s needs exactly one of sha256 or subject", what);
        return;
    }
    char *v = NULL;
    if (f[K_CC_SHA256].val) {
        snprintf(what, sizeof what, "%s.certificate.sha256", where);
        if (config_get_string(ld, f[K_CC_SHA256].val, what, true, &v)) {
            if (parse_sha256(v, c->cert_sha256))
                c->has_cert_sha256 = true;
            else
                config_err_at(ld, f[K_CC_SHA256].val,
                              "%s must be the certificate's SHA-256 fingerprint, 64 hex digits "
                              "with or without colons (certtool -i --infile CERT | grep sha256, "
                              "or openssl x509 -noout -fingerprint -sha256 -in CERT)",
                              what);
            free(v);
        }
    } else {
        snprintf(what, sizeof what, "%s.certificate.subject", where);
        if (config_get_string(ld, f[K_CC_SUBJECT].val, what, true, &c->cert_subject)) {
            c->cert_subject_pos = config_pos_of(ld, f[K_CC_SUBJECT].val);
        }
    }
}

/* id: of entry c, the last of list[0..n): required, unique in the list. */
static void load_principal_id(struct loader *ld, const yaml_node_t *val, const char *where,
                              const char *kind, struct config_client *list, size_t n)
{
    struct config_client *c = &list[n - 1];
    char what[96];
    snprintf(what, sizeof what, "%s.id", where);
    if (!config_get_string(ld, val, what, true, &c->id))
        return;
    c->pos = config_pos_of(ld, val);
    for (size_t i = 0; i + 1 < n; i++) {
        const struct config_client *o = &list[i];
        if (o->id && strcmp(o->id, c->id) == 0) {
            config_err_at(ld, val, "duplicate %s id \"%s\" (first defined at %s:%d:%d)", kind,
                          c->id, o->pos.file, o->pos.line, o->pos.col);
            return;
        }
    }
}

static void load_password_hash(struct loader *ld, const yaml_node_t *val, const char *where,
                               const char *kind, struct config_client *c)
{
    char what[96];
    snprintf(what, sizeof what, "%s.password_hash", where);
    if (config_get_string(ld, val, what, true, &c->password_hash) &&
        !is_crypt_hash(c->password_hash))
        config_err_at(ld, val,
                      "password_hash of %s \"%s\" is not a supported crypt(3) hash (expected "
                      "one starting with $y$, $6$, $5$, $2b$ or $gy$); make one with \"hibus "
                      "passwd\"",
                      kind, c->id ? c->id : "");
}

/* A new, enabled entry at the end of *list for node n; NULL when out of memory. */
static struct config_client *principal_add(struct loader *ld, const yaml_node_t *n,
                                           struct config_client **list, size_t *len)
{
    size_t cap = *len;
    if (!config_grow(ld, (void **)list, &cap, *len, sizeof **list))
        return NULL;
    struct config_client *c = &(*list)[(*len)++];
    memset(c, 0, sizeof *c);
    c->enabled = true;
    c->pos = config_pos_of(ld, n);
    return c;
}

static void load_client(struct loader *ld, yaml_node_t *n, size_t idx)
{
    struct config *cfg = ld->cfg;
    char where[64], what[96];
    snprintf(where, sizeof where, "clients[%zu]", idx);
    struct found f[sizeof client_keys / sizeof client_keys[0]];
    if (!MAP_KEYS(ld, n, where, client_keys, f))
        return;
    struct config_client *c = principal_add(ld, n, &cfg->clients, &cfg->n_clients);
    if (c == NULL)
        return;

    if (f[K_CL_ID].val)
        load_principal_id(ld, f[K_CL_ID].val, where, "client", cfg->clients, cfg->n_clients);
    if (f[K_CL_NAME].val) {
        snprintf(what, sizeof what, "%s.name", where);
        config_get_string(ld, f[K_CL_NAME].val, what, false, &c->name);
    }
    if (f[K_CL_ROLES].val) {
        snprintf(what, sizeof what, "%s.roles", where);
        struct list_spec spec = {
            what, config_check_name, "must not be empty", config_role_declared, "role", false};
        config_get_string_list(ld, f[K_CL_ROLES].val, &spec, &c->roles, &c->n_roles);
    }
    if (f[K_CL_PASSWORD_HASH].val)
        load_password_hash(ld, f[K_CL_PASSWORD_HASH].val, where, "client", c);
    if (f[K_CL_ENABLED].val) {
        snprintf(what, sizeof what, "%s.enabled", where);
        config_get_bool(ld, f[K_CL_ENABLED].val, what, &c->enabled);
    }
    if (f[K_CL_RATE].val)
        load_rate_limit(ld, f[K_CL_RATE].val, where, c);
    if (f[K_CL_CERT].val)
        load_client_cert(ld, f[K_CL_CERT].val, where, c);
    if (f[K_CL_PASSWORD_HASH].val == NULL && f[K_CL_CERT].val == NULL)
        config_err_at(ld, n,
                      "missing required key \"password_hash\" in %s (or certificate: a client "
                      "is identified by a password, a certificate or both)",
                      where);
}

static void load_clients(struct loader *ld, yaml_node_t *root, void *arg)
{
    (void)arg;
    struct config *cfg = ld->cfg;
    struct found f[2];
    if (!MAP_KEYS(ld, root, NULL, clients_file_keys, f))
        return;
    /* roles first, wherever they are in the file: clients refer to them */
    if (f[K_C_ROLES].val) {
        static const struct list_spec spec = {
            "roles", config_check_name, "must not be empty", NULL, "role", true};
        config_get_string_list(ld, f[K_C_ROLES].val, &spec, &cfg->roles, &cfg->n_roles);
    }
    if (f[K_C_CLIENTS].val && config_expect_list(ld, f[K_C_CLIENTS].val, "clients")) {
        for (size_t i = 0; i < config_list_len(f[K_C_CLIENTS].val); i++)
            load_client(ld, config_list_item(ld, f[K_C_CLIENTS].val, i), i);
    }
}

/* ------------------------------------------------------------------------------------
 * admin.users: the people who may use the admin listener
 * ------------------------------------------------------------------------------------ */

const char *const config_admin_roles[] = {"read", "operator", "admin", NULL};

enum config_admin_role config_admin_role_of(const struct config_client *user)
{
    for (int i = 0; user->n_roles > 0 && config_admin_roles[i]; i++)
        if (strcmp(user->roles[0], config_admin_roles[i]) == 0)
            return (enum config_admin_role)i;
    return CONFIG_ADMIN_READ;
}

enum { K_AU_ID, K_AU_NAME, K_AU_ROLE, K_AU_PASSWORD_HASH, K_AU_ENABLED };
static const struct key_spec admin_user_keys[] = {
    [K_AU_ID] = {"id", true},
    [K_AU_NAME] = {"name", false},
    [K_AU_ROLE] = {"role", true},
    [K_AU_PASSWORD_HASH] = {"password_hash", true},
    [K_AU_ENABLED] = {"enabled", false},
};
static const struct key_spec admin_users_file_keys[] = {{"users", true}};

static void load_admin_user(struct loader *ld, yaml_node_t *n, size_t idx)
{
    struct config *cfg = ld->cfg;
    char where[64], what[96];
    snprintf(where, sizeof where, "users[%zu]", idx);
    struct found f[sizeof admin_user_keys / sizeof admin_user_keys[0]];
    if (!MAP_KEYS(ld, n, where, admin_user_keys, f))
        return;
    struct config_client *u = principal_add(ld, n, &cfg->admin_users, &cfg->n_admin_users);
    if (u == NULL)
        return;
    if (f[K_AU_ID].val)
        load_principal_id(ld, f[K_AU_ID].val, where, "admin user", cfg->admin_users,
                          cfg->n_admin_users);
    if (f[K_AU_NAME].val) {
        snprintf(what, sizeof what, "%s.name", where);
        config_get_string(ld, f[K_AU_NAME].val, what, false, &u->name);
    }
    if (f[K_AU_ROLE].val) {
        snprintf(what, sizeof what, "%s.role", where);
        char *role = NULL;
        if (config_get_string(ld, f[K_AU_ROLE].val, what, true, &role)) {
            bool known = false;
            for (int i = 0; config_admin_roles[i]; i++)
                known = known || strcmp(role, config_admin_roles[i]) == 0;
            if (!known) {
                config_err_at(ld, f[K_AU_ROLE].val,
                              "unknown admin role \"%s\" (expected one of: read, operator, "
                              "admin)",
                              role);
                free(role);
            } else {
                size_t rcap = 0;
                if (config_grow(ld, (void **)&u->roles, &rcap, 0, sizeof *u->roles)) {
                    u->roles[0] = role;
                    u->n_roles = 1;
                } else {
                    free(role);
                }
            }
        }
    }
    if (f[K_AU_PASSWORD_HASH].val)
        load_password_hash(ld, f[K_AU_PASSWORD_HASH].val, where, "admin user", u);
    if (f[K_AU_ENABLED].val) {
        snprintf(what, sizeof what, "%s.enabled", where);
        config_get_bool(ld, f[K_AU_ENABLED].val, what, &u->enabled);
    }
}

static void load_admin_users(struct loader *ld, yaml_node_t *root, void *arg)
{
    (void)arg;
    struct found f[1];
    if (!MAP_KEYS(ld, root, NULL, admin_users_file_keys, f))
        return;
    if (f[0].val && config_expect_list(ld, f[0].val, "users"))
        for (size_t i = 0; i < config_list_len(f[0].val); i++)
            load_admin_user(ld, config_list_item(ld, f[0].val, i), i);
}

/* Index of a diagnostic's file in cfg->files (the order files were read in). */
static size_t file_rank(const struct loader *ld, const char *file)
{
    for (size_t i = 0; i < ld->cfg->n_files; i++)
        if (strcmp(ld->cfg->files[i], file) == 0)
            return i;
    return ld->cfg->n_files;
}

/* Like sort_diags, for messages about several files: by file, then position. */
void config_sort_diags_by_file(struct loader *ld, size_t start)
{
    struct hibus_diags *d = ld->diags;
    for (size_t i = start + 1; i < d->n; i++) {
        struct hibus_diag x = d->v[i];
        size_t rx = file_rank(ld, x.file), j = i;
        while (j > start) {
            const struct hibus_diag *y = &d->v[j - 1];
            size_t ry = file_rank(ld, y->file);
            if (ry < rx ||
                (ry == rx && (y->line < x.line || (y->line == x.line && y->col <= x.col))))
                break;
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_channel_file(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static void load_channel_dir(struct loader *ld, const char *dir, const struct config_pos *from)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        if (from)
            config_err_pos(ld, from->file, from->line, from->col,
                           "could not open channel directory \"%s\": %s", dir, strerror(e));
        else
            config_err_pos(ld, ld->cfg->files[0], 0, 0,
                           "could not open channel directory \"%s\": %s", dir, strerror(e));
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_channel_file(de->d_name))
            continue;
        char *s = config_xstrdup(ld, de->d_name);
        if (s == NULL || !config_grow(ld, (void **)&names, &cap, n, sizeof *names)) {
            free(s);
            break;
        }
        names[n++] = s;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !ld->oom; i++) {
        config_load_file(ld, config_path_join(ld, dir, names[i]), NULL, config_load_channel, NULL);
        config_load_pending_mappings(ld); /* named by this channel for the first time */
    }
    config_free_strv(names, n);
}

/* ------------------------------------------------------------------------------------
 * Building and freeing the snapshot
 * ------------------------------------------------------------------------------------ */

void config_route_free(struct config_route *r)
{
    free(r->name);
    free(r->url);
    free(r->auth_user);
    free(r->auth_secret);
    free(r->auth_header);
    free(r->tls_ca_file);
    free(r->writer);
    free(r->import_strategy);
    free(r->id_scheme);
    config_free_strv(r->when, r->n_when);
}

static void transform_free(struct config_transform *t)
{
    free(t->reader);
    free(t->writer);
    for (size_t i = 0; t->loss_reasons != NULL && t->loss_reasons[i] != NULL; i++)
        free(t->loss_reasons[i]);
    for (size_t i = 0; t->loss_categories != NULL && t->loss_categories[i] != NULL; i++)
        free(t->loss_categories[i]);
    free(t->loss_reasons);
    free(t->loss_categories);
    for (size_t i = 0; i < t->n_quality; i++)
        config_free_strv(t->quality[i].measures, t->quality[i].n_measures);
    free(t->quality);
}

static void channel_free(struct config_channel *ch, bool compiled)
{
    free(ch->name);
    free(ch->description);
    free(ch->path);
    if (compiled && ch->path_kind == CONFIG_PATH_REGEX)
        regfree(&ch->path_re);
    config_free_strv(ch->methods, ch->n_methods);
    config_free_strv(ch->content_types, ch->n_content_types);
    for (size_t i = 0; i < ch->n_json_match; i++) {
        free(ch->json_match[i].path);
        free(ch->json_match[i].equals);
    }
    free(ch->json_match);
    config_free_strv(ch->allow_roles, ch->n_allow_roles);
    config_free_strv(ch->allow_clients, ch->n_allow_clients);
    transform_free(&ch->transform); /* the mapping belongs to cfg->mappings */
    config_aggregate_free(&ch->aggregate);
    for (size_t i = 0; i < ch->n_routes; i++)
        config_route_free(&ch->routes[i]);
    free(ch->routes);
    config_poll_free(ch->poll);
}

/* Frees cfg; the first n_compiled channels have a compiled regex (if any). */
static void free_principals(struct config_client *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].name);
        free(v[i].password_hash);
        free(v[i].cert_subject);
        config_free_strv(v[i].roles, v[i].n_roles);
    }
    free(v);
}

static void config_destroy(struct config *cfg, size_t n_compiled)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->dir);
    config_free_strv(cfg->files, cfg->n_files);
    hibus_diags_free(&cfg->warnings);
    free(cfg->listen_address);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_client_ca);
    tls_creds_unref(cfg->tls);
    free(cfg->database_url);
    config_free_strv(cfg->redact_headers, cfg->n_redact_headers);
    config_free_strv(cfg->roles, cfg->n_roles);
    free_principals(cfg->clients, cfg->n_clients);
    free_principals(cfg->admin_users, cfg->n_admin_users);
    free(cfg->admin_address);
    free(cfg->alerts_webhook);
    free(cfg->admin_users_file);
    for (size_t i = 0; i < cfg->n_channels; i++)
        channel_free(&cfg->channels[i], i < n_compiled);
    free(cfg->channels);
    free(cfg->mappings_dir);
    free(cfg->clients_file);
    free(cfg->channels_dir);
    for (size_t i = 0; i < cfg->n_mappings; i++)
        mapping_free(cfg->mappings[i]);
    free(cfg->mappings);
    free(cfg);
}

void config_free(struct config *cfg)
{
    config_destroy(cfg, cfg ? cfg->n_channels : 0);
}

static int cmp_channel(const void *a, const void *b)
{
    const struct config_channel *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

char *config_dir_of(struct loader *ld, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return config_xstrdup(ld, ".");
    if (slash == path)
        return config_xstrdup(ld, "/");
    char *d = strndup(path, (size_t)(slash - path));
    if (d == NULL)
        ld->oom = true;
    return d;
}

/* Compiles the regex of every channel in its final place; they were all checked
 * while loading, so a failure here can only be a lack of memory. */
static bool compile_channels(struct loader *ld, size_t *n_compiled)
{
    struct config *cfg = ld->cfg;
    for (; *n_compiled < cfg->n_channels; (*n_compiled)++) {
        struct config_channel *ch = &cfg->channels[*n_compiled];
        if (ch->path_kind != CONFIG_PATH_REGEX)
            continue;
        int rc = regcomp(&ch->path_re, ch->path, REG_EXTENDED | REG_NOSUB);
        if (rc == REG_ESPACE) {
            ld->oom = true;
            return false;
        }
        if (rc != 0) {
            char msg[256];
            regerror(rc, &ch->path_re, msg, sizeof msg);
            config_err_pos(ld, ch->pos.file, ch->pos.line, ch->pos.col,
                           "could not compile match.path_regex \"%s\": %s", ch->path, msg);
            return false;
        }
    }
    return true;
}

enum hibus_err config_load(const char *path, struct config **out, struct hibus_diags *diags)
{
    struct config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return HIBUS_E_NOMEM;
    struct loader ld = {.cfg = cfg, .diags = diags, .diags_start = diags->n};
    struct config_main_refs refs = {0};
    size_t n_compiled = 0;
    static atomic_ulong generations;
    cfg->generation = atomic_fetch_add(&generations, 1) + 1;
    config_set_defaults(&ld, cfg);
    cfg->path = config_xstrdup(&ld, path);
    cfg->dir = config_dir_of(&ld, path);
    if (ld.oom)
        goto done;
    /* The service's environment file, read again at each reload: a secret added to
     * it applies without a restart, and the commands an operator runs from a shell
     * see what the service sees. */
    config_read_env_file(&ld, cfg->dir);

    if (!config_load_file(&ld, config_xstrdup(&ld, path), NULL, config_load_main, &refs)) {
        ld.main_unreadable = ld.read_failed;
        goto done; /* without hibus.yaml, where the other files are is unknown */
    }

    /* clients:, channels: and mappings: are relative to hibus.yaml's directory. */
    char **paths[] = {&cfg->clients_file,    &cfg->channels_dir, &cfg->mappings_dir,
                      &cfg->tls_cert,        &cfg->tls_key,      &cfg->tls_client_ca,
                      &cfg->admin_users_file};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *joined = *paths[i] ? config_path_join(&ld, cfg->dir, *paths[i]) : NULL;
        free(*paths[i]);
        *paths[i] = joined;
    }
    if (cfg->tls_cert && cfg->tls_key && !ld.oom) {
        char why[768];
        if (tls_creds_load(cfg->tls_cert, cfg->tls_key, &cfg->tls, why, sizeof why) != HIBUS_OK) {
            const struct config_pos *at = strstr(why, cfg->tls_key) != NULL && refs.tls_key_pos.file
                                              ? &refs.tls_key_pos
                                              : &refs.tls_cert_pos;
            config_err_pos(&ld, at->file, at->line, at->col, "listen.tls: %s", why);
        }
    }
    if (cfg->tls_client_ca != NULL) {
        char why[768];
        const struct config_pos *at = &refs.tls_client_ca_pos;
        if (cfg->tls_cert == NULL)
            config_err_pos(&ld, at->file, at->line, at->col,
                           "listen.tls.client_ca needs listen.tls.cert and key (client "
                           "certificates come with HTTPS)");
        else if (!tls_ca_file_check(cfg->tls_client_ca, why, sizeof why))
            config_err_pos(&ld, at->file, at->line, at->col, "listen.tls.client_ca: %s", why);
    }
    if (cfg->clients_file)
        ld.clients_loaded =
            config_load_file(&ld, config_xstrdup(&ld, cfg->clients_file),
                             refs.clients_pos.file ? &refs.clients_pos : NULL, load_clients, NULL);
    for (size_t i = 0; i < cfg->n_clients; i++) {
        const struct config_client *c = &cfg->clients[i];
        if (c->cert_subject != NULL && cfg->tls_client_ca == NULL)
            config_err_pos(&ld, c->cert_subject_pos.file, c->cert_subject_pos.line,
                           c->cert_subject_pos.col,
                           "client \"%s\" is identified by a certificate subject, which needs "
                           "listen.tls.client_ca in hibus.yaml (the CAs that vouch for it); or "
                           "give the certificate's sha256",
                           c->id ? c->id : "");
    }
    if (cfg->admin_port != 0 && cfg->admin_users_file)
        config_load_file(&ld, config_xstrdup(&ld, cfg->admin_users_file),
                         refs.admin_users_pos.file  ? &refs.admin_users_pos
                         : refs.admin_port_pos.file ? &refs.admin_port_pos
                                                    : NULL,
                         load_admin_users, NULL);
    if (cfg->channels_dir)
        load_channel_dir(&ld, cfg->channels_dir,
                         refs.channels_pos.file ? &refs.channels_pos : NULL);
    if (!ld.oom) {
        size_t before = ld.diags->n;
        config_settle_id_schemes(&ld);
        config_settle_aggregates(&ld);
        if (ld.diags->n > before) /* among the others, in file and position order */
            config_sort_diags_by_file(&ld, 0);
    }

    if (ld.oom || has_errors(&ld))
        goto done;
    if (cfg->n_channels > 1) /* qsort wants a pointer even for none */
        qsort(cfg->channels, cfg->n_channels, sizeof *cfg->channels, cmp_channel);
    if (!compile_channels(&ld, &n_compiled))
        goto done;
    router_check_ties(cfg->channels, cfg->n_channels, diags);

done:
    free(ld.pending);
    config_free_env_file(&ld);
    if (ld.oom || has_errors(&ld)) {
        enum hibus_err rc = ld.oom               ? HIBUS_E_NOMEM
                            : ld.main_unreadable ? HIBUS_E_IO
                                                 : HIBUS_E_CONFIG;
        config_destroy(cfg, n_compiled);
        return rc;
    }
    *out = cfg;
    return HIBUS_OK;
}

char *config_facility_codes(const struct config *cfg, const char *facility)
{
    struct buf b = {0};
    buf_append(&b, facility, strlen(facility));
    for (size_t i = 0; i < cfg->n_mappings; i++) {
        const struct mapping *m = cfg->mappings[i];
        for (size_t k = 0; k < m->n_org_units; k++)
            if (strcmp(m->org_units[k].uid, facility) == 0) {
                buf_append(&b, "\n", 1);
                buf_append(&b, m->org_units[k].code, strlen(m->org_units[k].code));
            }
    }
    char *out = buf_take(&b, NULL);
    return out ? out : hibus_xstrdup("");
}

const struct config_client *config_find_client(const struct config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->n_clients; i++)
        if (cfg->clients[i].id && strcmp(cfg->clients[i].id, id) == 0)
            return &cfg->clients[i];
    return NULL;
}

const struct config_channel *config_find_channel(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_channels; i++)
        if (cfg->channels[i].name && strcmp(cfg->channels[i].name, name) == 0)
            return &cfg->channels[i];
    return NULL;
}

const struct mapping *config_find_mapping(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_mappings; i++)
        if (strcmp(cfg->mappings[i]->name, name) == 0)
            return cfg->mappings[i];
    return NULL;
}

const struct config_route *config_primary_route(const struct config_channel *ch)
{
    for (size_t i = 0; i < ch->n_routes; i++)
        if (ch->routes[i].primary)
            return &ch->routes[i];
    return NULL;
}

bool config_header_redacted(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_redact_headers; i++)
        if (strcasecmp(cfg->redact_headers[i], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Snapshots and reload                                                     */
/* ------------------------------------------------------------------------ */

struct config_snapshot {
    struct config *cfg;
    long users;
};

struct config_holder {
    pthread_mutex_t mu;
    struct config_snapshot *snaps; /* snaps[n - 1] is the current one */
    size_t n;
};

struct config_holder *config_holder_new(struct config *initial)
{
    struct config_holder *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->snaps = calloc(1, sizeof *h->snaps);
    if (h->snaps == NULL) {
        free(h);
        return NULL;
    }
    h->snaps[0].cfg = initial;
    h->n = 1;
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

const struct config *config_holder_acquire(struct config_holder *h)
{
    pthread_mutex_lock(&h->mu);
    struct config_snapshot *cur = &h->snaps[h->n - 1];
    cur->users++;
    const struct config *cfg = cur->cfg;
    pthread_mutex_unlock(&h->mu);
    return cfg;
}

/* Frees the replaced snapshots nobody uses any more; with h->mu held. */
static void holder_collect(struct config_holder *h)
{
    size_t keep = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (i + 1 < h->n && h->snaps[i].users == 0)
            config_free(h->snaps[i].cfg);
        else
            h->snaps[keep++] = h->snaps[i];
    }
    h->n = keep;
}

void config_holder_release(struct config_holder *h, const struct config *cfg)
{
    if (cfg == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++)
        if (h->snaps[i].cfg == cfg) {
            h->snaps[i].users--;
            break;
        }
    holder_collect(h);
    pthread_mutex_unlock(&h->mu);
}

void config_holder_swap(struct config_holder *h, struct config *next)
{
    pthread_mutex_lock(&h->mu);
    struct config_snapshot *v = realloc(h->snaps, (h->n + 1) * sizeof *v);
    if (v == NULL) {
        /* Cannot grow: keep serving the old configuration, say so. */
        pthread_mutex_unlock(&h->mu);
        config_free(next);
        return;
    }
    h->snaps = v;
    h->snaps[h->n].cfg = next;
    h->snaps[h->n].users = 0;
    h->n++;
    holder_collect(h);
    pthread_mutex_unlock(&h->mu);
}

void config_holder_free(struct config_holder *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        config_free(h->snaps[i].cfg);
    free(h->snaps);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
