/*
 * config.c - load and validate hibus.yaml, clients.yaml and channels/NAME.yaml into one
 * immutable struct config (see hibus/config.h and docs/configuration.md).
 *
 * Entry points: config_load, config_free, the config_find_* lookups and the
 * duration/size parsers shared with tests.
 *
 * How it works: each file is read with libyaml's document API, so every node keeps
 * its start mark and every problem can be reported as "file:line:col: message".
 * Each mapping is checked against one table of allowed keys (map_keys); the caller
 * then reads the values it found, in the order it needs. Nothing stops at the
 * first problem: every error in every file is appended to the caller's diags, and
 * config_load fails at the end if any was added.
 *
 * Invariants: a struct config is only handed out when it is complete and valid;
 * regular expressions are compiled only once the channel array has reached its
 * final place (a regex_t is not guaranteed to survive being moved); every
 * struct config_pos.file points into cfg->files.
 */
#include "hibus/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "hibus/log.h"
#include "hibus/router.h"

/* Limits on input: a config file larger than this is refused, and so is a scalar
 * longer than this once ${NAME} references are expanded. */
#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_VALUE 8192

static const char *const default_redact[] = {"authorization", "proxy-authorization", "cookie",
                                             "set-cookie"};

/* ------------------------------------------------------------------------------------
 * Loader state and diagnostics
 * ------------------------------------------------------------------------------------ */

struct loader {
    struct config *cfg;
    struct hibus_diags *diags;
    size_t diags_start;   /* diags->n when loading began: more means the config is invalid */
    bool oom;             /* an allocation failed: the result is HIBUS_E_NOMEM */
    bool read_failed;     /* the last parse_file could not read its file */
    bool main_unreadable; /* ... and that file was hibus.yaml: HIBUS_E_IO */
    bool clients_loaded;  /* clients.yaml was read: references to roles/clients can be checked */
    const char *file;     /* file being read, a string owned by cfg->files */
    yaml_document_t *doc;
};

static void err_pos(struct loader *ld, const char *file, int line, int col, const char *fmt, ...)
    HIBUS_PRINTF(5, 6);
static void err_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
    HIBUS_PRINTF(3, 4);

static void verr_pos(struct loader *ld, const char *file, int line, int col, const char *fmt,
                     va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap); /* a cut diagnostic is still useful */
    hibus_diags_add(ld->diags, file, line, col, "%s", buf);
}

static void err_pos(struct loader *ld, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_pos(ld, file, line, col, fmt, ap);
    va_end(ap);
}

/* Reports at a node of the current document; libyaml marks are 0-based. */
static void err_at(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_pos(ld, ld->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt, ap);
    va_end(ap);
}

static bool has_errors(const struct loader *ld)
{
    return ld->diags->n > ld->diags_start;
}

static struct config_pos pos_of(const struct loader *ld, const yaml_node_t *n)
{
    struct config_pos p = {ld->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return p;
}

static char *xstrdup(struct loader *ld, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        ld->oom = true;
    return d;
}

/* Makes room for one more element in *v (n used, *cap allocated). The arrays of
 * struct config keep no capacity; callers pass cap = n, which reallocates on every
 * append: fine for lists as short as a configuration's. */
static bool grow(struct loader *ld, void **v, size_t *cap, size_t n, size_t size)
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

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ------------------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------------------ */

static yaml_node_t *node(const struct loader *ld, yaml_node_item_t i)
{
    return yaml_document_get_node(ld->doc, i);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_NO_NODE: break;
    }
    return "nothing";
}

static const char *scalar_raw(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* "key:" with nothing after it, or ~ / null: accepted as an empty mapping or list. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar_raw(n);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static bool expect_mapping(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_MAPPING_NODE || is_null(n))
        return true;
    err_at(ld, n, "expected a mapping for %s, got %s", what, kind_name(n));
    return false;
}

static bool expect_list(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_SEQUENCE_NODE || is_null(n))
        return true;
    err_at(ld, n, "expected a list for %s, got %s", what, kind_name(n));
    return false;
}

static size_t list_len(const yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return 0;
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *list_item(const struct loader *ld, const yaml_node_t *n, size_t i)
{
    return node(ld, n->data.sequence.items.start[i]);
}

/* ------------------------------------------------------------------------------------
 * Mappings, checked against a table of allowed keys
 * ------------------------------------------------------------------------------------ */

struct key_spec {
    const char *name;
    bool required;
};

struct found {
    yaml_node_t *key;
    yaml_node_t *val;
};

/* Checks that every key of map is scalar, allowed by keys[] and not repeated, and
 * that every required key is present; found[i] receives the key and value nodes
 * for keys[i] (both NULL when absent). "where" names the mapping in messages
 * ("listen", "routes[0].auth"); NULL means the top level of the file. Returns
 * false if map is not a mapping (then nothing was found). */
static bool map_keys(struct loader *ld, const yaml_node_t *map, const char *where,
                     const struct key_spec *keys, size_t nkeys, struct found *found)
{
    char in[128];
    if (where)
        snprintf(in, sizeof in, "in %s", where);
    else
        snprintf(in, sizeof in, "at top level");

    memset(found, 0, nkeys * sizeof *found);
    if (!expect_mapping(ld, map, where ? where : "the top level"))
        return false;
    if (map->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = node(ld, p->key);
            yaml_node_t *v = node(ld, p->value);
            if (k->type != YAML_SCALAR_NODE) {
                err_at(ld, k, "expected a scalar key %s, got %s", in, kind_name(k));
                continue;
            }
            size_t i = 0;
            while (i < nkeys && strcmp(keys[i].name, scalar_raw(k)) != 0)
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
                err_at(ld, k, "unknown key \"%s\" %s (expected one of: %s)", scalar_raw(k), in,
                       allowed);
            } else if (found[i].key) {
                err_at(ld, k, "duplicate key \"%s\" %s (first defined at %s:%d:%d)", scalar_raw(k),
                       in, ld->file, (int)found[i].key->start_mark.line + 1,
                       (int)found[i].key->start_mark.column + 1);
            } else {
                found[i].key = k;
                found[i].val = v;
            }
        }
    }
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].required && found[i].key == NULL)
            err_at(ld, map, "missing required key \"%s\" %s", keys[i].name, in);
    return true;
}

/* For keys that exclude each other (found[first..last]): returns the one that comes
 * first in the file, reporting each of the others as a conflict; NULL if none. */
static const struct found *exactly_one(struct loader *ld, const struct found *f, size_t first,
                                       size_t last, const struct key_spec *keys, const char *where,
                                       const char *choices)
{
    const struct found *one = NULL;
    for (size_t k = first; k <= last; k++)
        if (f[k].key && (one == NULL || f[k].key->start_mark.index < one->key->start_mark.index))
            one = &f[k];
    for (size_t k = first; k <= last; k++)
        if (f[k].key && &f[k] != one)
            err_at(ld, f[k].key, "%s has both %s and %s (use exactly one of %s)", where,
                   scalar_raw(one->key), keys[k].name, choices);
    return one;
}

#define MAP_KEYS(ld, map, where, table, found)                                                     \
    map_keys(ld, map, where, table, sizeof(table) / sizeof(table[0]), found)

/* ------------------------------------------------------------------------------------
 * Scalars: ${NAME} expansion and typed values
 * ------------------------------------------------------------------------------------ */

struct strbuf {
    char *s;
    size_t len, cap;
};

static bool sb_put(struct loader *ld, struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (ns == NULL) {
            ld->oom = true;
            return false;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* The value of a scalar with ${NAME} replaced by the environment variable NAME and
 * $$ by $; a $ followed by anything else stays (crypt hashes are full of them).
 * Returns a string the caller frees, or NULL after reporting a problem. */
static char *scalar_dup(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        err_at(ld, n, "expected a scalar for %s, got %s", what, kind_name(n));
        return NULL;
    }
    const char *s = scalar_raw(n);
    size_t len = n->data.scalar.length;
    if (strlen(s) != len) {
        err_at(ld, n, "value of %s contains a NUL character", what);
        return NULL;
    }
    struct strbuf b = {0};
    bool ok = sb_put(ld, &b, "", 0);
    for (size_t i = 0; i < len && !ld->oom;) {
        if (s[i] != '$' || i + 1 == len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            sb_put(ld, &b, s + i, 1);
            i++;
        } else if (s[i + 1] == '$') {
            sb_put(ld, &b, "$", 1);
            i += 2;
        } else {
            size_t j = i + 2;
            if (j < len && is_name_start(s[j]))
                while (j < len && is_name_char(s[j]))
                    j++;
            if (j == i + 2 || j == len || s[j] != '}') {
                err_at(ld, n,
                       "invalid environment variable reference in \"%s\" (expected ${NAME}, or $$ "
                       "for a literal $)",
                       s);
                ok = false;
                break;
            }
            char name[256];
            if (j - (i + 2) >= sizeof name) {
                err_at(ld, n, "environment variable name in %s is too long", what);
                ok = false;
                break;
            }
            memcpy(name, s + i + 2, j - (i + 2));
            name[j - (i + 2)] = '\0';
            const char *val = getenv(name);
            if (val == NULL) {
                err_at(ld, n, "environment variable \"%s\" is not set", name);
                ok = false;
            } else {
                sb_put(ld, &b, val, strlen(val));
            }
            i = j + 1;
        }
    }
    if (ok && !ld->oom && b.len > CONFIG_MAX_VALUE) {
        err_at(ld, n, "value of %s is too long (%zu bytes, at most %d)", what, b.len,
               CONFIG_MAX_VALUE);
        ok = false;
    }
    if (!ok || ld->oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Replaces *out with the node's string value. */
static bool get_string(struct loader *ld, const yaml_node_t *n, const char *what, bool nonempty,
                       char **out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    if (nonempty && s[0] == '\0') {
        err_at(ld, n, "%s must not be empty", what);
        free(s);
        return false;
    }
    free(*out);
    *out = s;
    return true;
}

/* Decimal only: an optional '-' and digits; no '+', spaces, hex or exponent. */
static bool parse_long(const char *s, long *out)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    if (*p == '\0')
        return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    return true;
}

static bool get_long(struct loader *ld, const yaml_node_t *n, const char *what, long min, long max,
                     long *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    long v = 0;
    bool ok = parse_long(s, &v);
    if (!ok)
        err_at(ld, n, "expected an integer for %s, got \"%s\"", what, s);
    else if (v < min || v > max) {
        err_at(ld, n, "\"%s\" is outside the valid range for %s (%ld .. %ld)", s, what, min, max);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

static bool get_int(struct loader *ld, const yaml_node_t *n, const char *what, int min, int max,
                    int *out)
{
    long v = 0;
    if (!get_long(ld, n, what, min, max, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool get_bool(struct loader *ld, const yaml_node_t *n, const char *what, bool *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    bool ok = true;
    if (strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0)
        *out = false;
    else {
        err_at(ld, n, "expected a boolean (true or false) for %s, got \"%s\"", what, s);
        ok = false;
    }
    free(s);
    return ok;
}

/* Durations are accepted from 1ms up to one day. */
#define DURATION_MAX_MS (24L * 3600 * 1000)

static bool get_duration(struct loader *ld, const yaml_node_t *n, const char *what, long *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    long v = 0;
    bool ok = config_parse_duration_ms(s, &v);
    if (!ok)
        err_at(ld, n, "expected a duration (like 500ms, 30s, 2m or 1h) for %s, got \"%s\"", what,
               s);
    else if (v < 1 || v > DURATION_MAX_MS) {
        err_at(ld, n, "\"%s\" is outside the valid range for %s (1ms .. 24h)", s, what);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

static bool get_size(struct loader *ld, const yaml_node_t *n, const char *what, size_t *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    size_t v = 0;
    bool ok = config_parse_size(s, &v);
    if (!ok)
        err_at(ld, n, "expected a size (like 512KiB, 10MiB or 1GB) for %s, got \"%s\"", what, s);
    else if (v < 1) {
        err_at(ld, n, "\"%s\" is outside the valid range for %s (at least 1 byte)", s, what);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

/* An enumerated value: one of names[] (NULL-terminated); returns its index or -1. */
static int get_enum(struct loader *ld, const yaml_node_t *n, const char *what,
                    const char *const *names)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return -1;
    int found = -1;
    char allowed[256];
    size_t len = 0;
    allowed[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0)
            found = i;
        if (len < sizeof allowed) {
            int w = snprintf(allowed + len, sizeof allowed - len, "%s%s", i ? ", " : "", names[i]);
            len += w > 0 ? (size_t)w : 0;
        }
    }
    if (found < 0)
        err_at(ld, n, "invalid value \"%s\" for %s (expected one of: %s)", s, what, allowed);
    free(s);
    return found;
}

/* A list of strings. check (may be NULL) normalises an item in place and returns NULL,
 * or returns the noun for the message ("HTTP method") when the item is invalid.
 * exists (may be NULL) checks that a reference (a role, a client id) is defined. */
typedef const char *(*item_check)(char *s);

struct list_spec {
    const char *what; /* "match.methods" */
    item_check check;
    const char *hint; /* appended to an invalid item's message in parentheses, or NULL */
    bool (*exists)(const struct config *cfg, const char *s);
    const char *ref_kind; /* "role": "unknown role \"x\"" */
    bool unique;          /* a repeated item is an error */
};

/* Appends the items of list n to *v. Invalid items are reported and left out;
 * unknown references are reported and kept (the config is invalid anyway). */
static void get_string_list(struct loader *ld, const yaml_node_t *n, const struct list_spec *spec,
                            char ***v, size_t *count)
{
    if (!expect_list(ld, n, spec->what))
        return;
    size_t len = list_len(n), cap = *count;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = list_item(ld, n, i);
        char *s = scalar_dup(ld, it, spec->what);
        if (s == NULL)
            continue;
        const char *noun = spec->check ? spec->check(s) : NULL;
        if (noun) {
            err_at(ld, it, "invalid %s \"%s\" in %s%s%s%s", noun, scalar_raw(it), spec->what,
                   spec->hint ? " (" : "", spec->hint ? spec->hint : "", spec->hint ? ")" : "");
            free(s);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; spec->unique && j < *count && !dup; j++)
            dup = strcmp((*v)[j], s) == 0;
        if (dup) {
            err_at(ld, it, "duplicate %s \"%s\" in %s", spec->ref_kind ? spec->ref_kind : "item", s,
                   spec->what);
            free(s);
            continue;
        }
        if (spec->exists && !spec->exists(ld->cfg, s))
            err_at(ld, it, "unknown %s \"%s\"", spec->ref_kind, s);
        if (!grow(ld, (void **)v, &cap, *count, sizeof **v)) {
            free(s);
            return;
        }
        (*v)[(*count)++] = s;
    }
}

/* ------------------------------------------------------------------------------------
 * Value checks for list items
 * ------------------------------------------------------------------------------------ */

/* RFC 9110 token characters. */
static bool is_tchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(s[i]))
            return false;
    return true;
}

static const char *check_method(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return is_token(s, strlen(s)) ? NULL : "HTTP method";
}

static const char *check_header_name(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return is_token(s, strlen(s)) ? NULL : "header name";
}

/* "Application/JSON; charset=utf-8" -> "application/json". */
static const char *check_content_type(char *s)
{
    char *semi = strchr(s, ';');
    if (semi)
        *semi = '\0';
    size_t b = 0, e = strlen(s);
    while (b < e && (s[b] == ' ' || s[b] == '\t'))
        b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    memmove(s, s + b, e - b);
    s[e - b] = '\0';
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *slash = strchr(s, '/');
    if (slash == NULL || strchr(s, '*') != NULL || !is_token(s, (size_t)(slash - s)) ||
        !is_token(slash + 1, strlen(slash + 1)))
        return "content type";
    return NULL;
}

static const char *check_name(char *s)
{
    return s[0] ? NULL : "name";
}

/* ------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------ */

/* dir + "/" + name, or name itself when it is absolute or dir is ".". */
static char *path_join(struct loader *ld, const char *dir, const char *name)
{
    if (name[0] == '/' || strcmp(dir, ".") == 0)
        return xstrdup(ld, name);
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
static const char *add_file(struct loader *ld, char *path)
{
    struct config *cfg = ld->cfg;
    size_t cap = cfg->n_files;
    if (path == NULL || !grow(ld, (void **)&cfg->files, &cap, cfg->n_files, sizeof *cfg->files)) {
        free(path);
        return NULL;
    }
    cfg->files[cfg->n_files++] = path;
    return path;
}

/* Reads and parses one file into doc. A problem opening it is reported at "from"
 * (the node that named the file) when given, else at the file itself. Returns
 * the root node, or NULL when there is nothing to walk (the problem was reported). */
static yaml_node_t *parse_file(struct loader *ld, const char *file, const struct config_pos *from,
                               yaml_document_t *doc)
{
    ld->file = file;
    ld->doc = NULL;
    ld->read_failed = false;
    FILE *f = fopen(file, "rb");
    struct stat st;
    int e = 0;
    if (f == NULL || fstat(fileno(f), &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EISDIR;
    if (e == 0 && st.st_size > CONFIG_MAX_FILE)
        e = EFBIG;
    if (e != 0) {
        ld->read_failed = true;
        if (f)
            fclose(f);
        if (from)
            err_pos(ld, from->file, from->line, from->col, "could not read file \"%s\": %s", file,
                    strerror(e));
        else
            err_pos(ld, file, 0, 0, "could not read file: %s", strerror(e));
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
            err_pos(ld, file, (int)parser.problem_mark.line + 1,
                    (int)parser.problem_mark.column + 1, "invalid YAML: %s (%s at %d:%d)",
                    parser.problem ? parser.problem : "syntax error", parser.context,
                    (int)parser.context_mark.line + 1, (int)parser.context_mark.column + 1);
        else
            err_pos(ld, file, (int)parser.problem_mark.line + 1,
                    (int)parser.problem_mark.column + 1, "invalid YAML: %s",
                    parser.problem ? parser.problem : "syntax error");
    } else {
        root = yaml_document_get_root_node(doc);
        if (root == NULL) {
            err_pos(ld, file, 1, 1, "empty document (expected a mapping)");
            yaml_document_delete(doc);
        } else {
            yaml_document_t next;
            if (!yaml_parser_load(&parser, &next)) {
                err_pos(ld, file, (int)parser.problem_mark.line + 1,
                        (int)parser.problem_mark.column + 1, "invalid YAML: %s",
                        parser.problem ? parser.problem : "syntax error");
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&next);
                if (r2) {
                    /* the file's content is split: checking half of it only adds noise */
                    err_pos(ld, file, (int)r2->start_mark.line + 1, (int)r2->start_mark.column + 1,
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
 * hibus.yaml
 * ------------------------------------------------------------------------------------ */

struct main_refs {
    char *clients; /* clients: value, or NULL for the default */
    char *channels;
    struct config_pos clients_pos, channels_pos; /* file == NULL when the default */
};

enum {
    K_LISTEN,
    K_DATABASE,
    K_LIMITS,
    K_LOG,
    K_REDACT,
    K_CLIENTS,
    K_CHANNELS,
    K_ADMIN,
    K_DELIVERY
};
static const struct key_spec main_keys[] = {
    [K_LISTEN] = {"listen", false},         [K_DATABASE] = {"database", true},
    [K_LIMITS] = {"limits", false},         [K_LOG] = {"log", false},
    [K_REDACT] = {"redact_headers", false}, [K_CLIENTS] = {"clients", false},
    [K_CHANNELS] = {"channels", false},     [K_ADMIN] = {"admin", false},
    [K_DELIVERY] = {"delivery", false},
};

enum { K_L_ADDRESS, K_L_PORT };
static const struct key_spec listen_keys[] = {
    [K_L_ADDRESS] = {"address", false},
    [K_L_PORT] = {"port", false},
};

enum { K_D_URL, K_D_POOL, K_D_CONNECT_TIMEOUT };
static const struct key_spec database_keys[] = {
    [K_D_URL] = {"url", true},
    [K_D_POOL] = {"pool", false},
    [K_D_CONNECT_TIMEOUT] = {"connect_timeout", false},
};

enum { K_M_MAX_BODY, K_M_MAX_CONNECTIONS, K_M_CONNECTION_TIMEOUT };
static const struct key_spec limits_keys[] = {
    [K_M_MAX_BODY] = {"max_body", false},
    [K_M_MAX_CONNECTIONS] = {"max_connections", false},
    [K_M_CONNECTION_TIMEOUT] = {"connection_timeout", false},
};

enum { K_G_LEVEL, K_G_FORMAT };
static const struct key_spec log_keys[] = {
    [K_G_LEVEL] = {"level", false},
    [K_G_FORMAT] = {"format", false},
};

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static void add_redact(struct loader *ld, char *name)
{
    struct config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_redact_headers; i++) {
        if (strcmp(cfg->redact_headers[i], name) == 0) {
            free(name);
            return;
        }
    }
    size_t cap = cfg->n_redact_headers;
    if (!grow(ld, (void **)&cfg->redact_headers, &cap, cfg->n_redact_headers,
              sizeof *cfg->redact_headers)) {
        free(name);
        return;
    }
    cfg->redact_headers[cfg->n_redact_headers++] = name;
}

static void load_main(struct loader *ld, yaml_node_t *root, void *arg)
{
    struct config *cfg = ld->cfg;
    struct main_refs *refs = arg;
    struct found f[sizeof main_keys / sizeof main_keys[0]];
    if (!MAP_KEYS(ld, root, NULL, main_keys, f))
        return;

    struct found g[3];
    if (f[K_LISTEN].val && MAP_KEYS(ld, f[K_LISTEN].val, "listen", listen_keys, g)) {
        if (g[K_L_ADDRESS].val)
            get_string(ld, g[K_L_ADDRESS].val, "listen.address", true, &cfg->listen_address);
        if (g[K_L_PORT].val)
            get_int(ld, g[K_L_PORT].val, "listen.port", 1, 65535, &cfg->listen_port);
    }
    if (f[K_DATABASE].val && MAP_KEYS(ld, f[K_DATABASE].val, "database", database_keys, g)) {
        if (g[K_D_URL].val)
            get_string(ld, g[K_D_URL].val, "database.url", true, &cfg->database_url);
        if (g[K_D_POOL].val)
            get_int(ld, g[K_D_POOL].val, "database.pool", 1, 256, &cfg->database_pool);
        if (g[K_D_CONNECT_TIMEOUT].val)
            get_duration(ld, g[K_D_CONNECT_TIMEOUT].val, "database.connect_timeout",
                         &cfg->database_connect_timeout_ms);
    }
    if (f[K_LIMITS].val && MAP_KEYS(ld, f[K_LIMITS].val, "limits", limits_keys, g)) {
        long v = 0;
        if (g[K_M_MAX_BODY].val)
            get_size(ld, g[K_M_MAX_BODY].val, "limits.max_body", &cfg->max_body);
        if (g[K_M_MAX_CONNECTIONS].val &&
            get_long(ld, g[K_M_MAX_CONNECTIONS].val, "limits.max_connections", 1, 1000000, &v))
            cfg->max_connections = (unsigned)v;
        if (g[K_M_CONNECTION_TIMEOUT].val)
            get_duration(ld, g[K_M_CONNECTION_TIMEOUT].val, "limits.connection_timeout",
                         &cfg->connection_timeout_ms);
    }
    if (f[K_LOG].val && MAP_KEYS(ld, f[K_LOG].val, "log", log_keys, g)) {
        int v;
        if (g[K_G_LEVEL].val && (v = get_enum(ld, g[K_G_LEVEL].val, "log.level", log_levels)) >= 0)
            cfg->log_level = log_level_parse(log_levels[v]);
        if (g[K_G_FORMAT].val &&
            (v = get_enum(ld, g[K_G_FORMAT].val, "log.format", log_formats)) >= 0)
            cfg->log_format = v == 1 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
    }
    if (f[K_REDACT].val) {
        char **v = NULL;
        size_t n = 0;
        static const struct list_spec spec = {
            "redact_headers", check_header_name, NULL, NULL, NULL, false};
        get_string_list(ld, f[K_REDACT].val, &spec, &v, &n);
        for (size_t i = 0; i < n; i++)
            add_redact(ld, v[i]);
        free(v);
    }
    if (f[K_CLIENTS].val && get_string(ld, f[K_CLIENTS].val, "clients", true, &refs->clients))
        refs->clients_pos = pos_of(ld, f[K_CLIENTS].val);
    if (f[K_CHANNELS].val && get_string(ld, f[K_CHANNELS].val, "channels", true, &refs->channels))
        refs->channels_pos = pos_of(ld, f[K_CHANNELS].val);
    if (f[K_ADMIN].key)
        err_at(ld, f[K_ADMIN].key, "admin is not supported yet");
    if (f[K_DELIVERY].key)
        err_at(ld, f[K_DELIVERY].key, "delivery is not supported yet");
}

/* ------------------------------------------------------------------------------------
 * clients.yaml
 * ------------------------------------------------------------------------------------ */

enum { K_C_ROLES, K_C_CLIENTS };
static const struct key_spec clients_file_keys[] = {
    [K_C_ROLES] = {"roles", false},
    [K_C_CLIENTS] = {"clients", false},
};

enum { K_CL_ID, K_CL_NAME, K_CL_ROLES, K_CL_PASSWORD_HASH, K_CL_ENABLED };
static const struct key_spec client_keys[] = {
    [K_CL_ID] = {"id", true},
    [K_CL_NAME] = {"name", false},
    [K_CL_ROLES] = {"roles", false},
    [K_CL_PASSWORD_HASH] = {"password_hash", true},
    [K_CL_ENABLED] = {"enabled", false},
};

static bool role_declared(const struct config *cfg, const char *role)
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

static bool client_exists(const struct config *cfg, const char *id)
{
    return config_find_client(cfg, id) != NULL;
}

static void load_client(struct loader *ld, yaml_node_t *n, size_t idx)
{
    struct config *cfg = ld->cfg;
    char where[64], what[96];
    snprintf(where, sizeof where, "clients[%zu]", idx);
    struct found f[sizeof client_keys / sizeof client_keys[0]];
    if (!MAP_KEYS(ld, n, where, client_keys, f))
        return;

    size_t cap = cfg->n_clients;
    if (!grow(ld, (void **)&cfg->clients, &cap, cfg->n_clients, sizeof *cfg->clients))
        return;
    struct config_client *c = &cfg->clients[cfg->n_clients++];
    memset(c, 0, sizeof *c);
    c->enabled = true;
    c->pos = pos_of(ld, n);

    if (f[K_CL_ID].val) {
        snprintf(what, sizeof what, "%s.id", where);
        if (get_string(ld, f[K_CL_ID].val, what, true, &c->id)) {
            c->pos = pos_of(ld, f[K_CL_ID].val);
            for (size_t i = 0; i + 1 < cfg->n_clients; i++) {
                const struct config_client *o = &cfg->clients[i];
                if (o->id && strcmp(o->id, c->id) == 0) {
                    err_at(ld, f[K_CL_ID].val,
                           "duplicate client id \"%s\" (first defined at %s:%d:%d)", c->id,
                           o->pos.file, o->pos.line, o->pos.col);
                    break;
                }
            }
        }
    }
    if (f[K_CL_NAME].val) {
        snprintf(what, sizeof what, "%s.name", where);
        get_string(ld, f[K_CL_NAME].val, what, false, &c->name);
    }
    if (f[K_CL_ROLES].val) {
        snprintf(what, sizeof what, "%s.roles", where);
        struct list_spec spec = {what,          check_name, "must not be empty",
                                 role_declared, "role",     false};
        get_string_list(ld, f[K_CL_ROLES].val, &spec, &c->roles, &c->n_roles);
    }
    if (f[K_CL_PASSWORD_HASH].val) {
        snprintf(what, sizeof what, "%s.password_hash", where);
        if (get_string(ld, f[K_CL_PASSWORD_HASH].val, what, true, &c->password_hash) &&
            !is_crypt_hash(c->password_hash))
            err_at(ld, f[K_CL_PASSWORD_HASH].val,
                   "password_hash of client \"%s\" is not a supported crypt(3) hash (expected one "
                   "starting with $y$, $6$, $5$, $2b$ or $gy$); make one with \"hibus passwd\"",
                   c->id ? c->id : "");
    }
    if (f[K_CL_ENABLED].val) {
        snprintf(what, sizeof what, "%s.enabled", where);
        get_bool(ld, f[K_CL_ENABLED].val, what, &c->enabled);
    }
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
        static const struct list_spec spec = {"roles", check_name, "must not be empty",
                                              NULL,    "role",     true};
        get_string_list(ld, f[K_C_ROLES].val, &spec, &cfg->roles, &cfg->n_roles);
    }
    if (f[K_C_CLIENTS].val && expect_list(ld, f[K_C_CLIENTS].val, "clients")) {
        for (size_t i = 0; i < list_len(f[K_C_CLIENTS].val); i++)
            load_client(ld, list_item(ld, f[K_C_CLIENTS].val, i), i);
    }
}

/* ------------------------------------------------------------------------------------
 * Channel files
 * ------------------------------------------------------------------------------------ */

enum {
    K_CH_NAME,
    K_CH_DESCRIPTION,
    K_CH_ENABLED,
    K_CH_PRIORITY,
    K_CH_MATCH,
    K_CH_ALLOW,
    K_CH_MODE,
    K_CH_TRANSFORM,
    K_CH_ROUTES
};
static const struct key_spec channel_keys[] = {
    [K_CH_NAME] = {"name", true},        [K_CH_DESCRIPTION] = {"description", false},
    [K_CH_ENABLED] = {"enabled", false}, [K_CH_PRIORITY] = {"priority", false},
    [K_CH_MATCH] = {"match", true},      [K_CH_ALLOW] = {"allow", false},
    [K_CH_MODE] = {"mode", false},       [K_CH_TRANSFORM] = {"transform", false},
    [K_CH_ROUTES] = {"routes", true},
};

enum { K_MA_PATH, K_MA_PATH_PREFIX, K_MA_PATH_REGEX, K_MA_METHODS, K_MA_CONTENT_TYPES };
static const struct key_spec match_keys[] = {
    [K_MA_PATH] = {"path", false},
    [K_MA_PATH_PREFIX] = {"path_prefix", false},
    [K_MA_PATH_REGEX] = {"path_regex", false},
    [K_MA_METHODS] = {"methods", false},
    [K_MA_CONTENT_TYPES] = {"content_types", false},
};

enum { K_AL_ROLES, K_AL_CLIENTS };
static const struct key_spec allow_keys[] = {
    [K_AL_ROLES] = {"roles", false},
    [K_AL_CLIENTS] = {"clients", false},
};

enum { K_R_NAME, K_R_MEDIATOR, K_R_URL, K_R_PRIMARY, K_R_TIMEOUT, K_R_AUTH };
static const struct key_spec route_keys[] = {
    [K_R_NAME] = {"name", true},        [K_R_MEDIATOR] = {"mediator", false},
    [K_R_URL] = {"url", true},          [K_R_PRIMARY] = {"primary", false},
    [K_R_TIMEOUT] = {"timeout", false}, [K_R_AUTH] = {"auth", false},
};

enum { K_AU_BASIC, K_AU_BEARER, K_AU_HEADER };
static const struct key_spec auth_keys[] = {
    [K_AU_BASIC] = {"basic", false},
    [K_AU_BEARER] = {"bearer", false},
    [K_AU_HEADER] = {"header", false},
};

enum { K_BA_USERNAME, K_BA_PASSWORD };
static const struct key_spec basic_keys[] = {
    [K_BA_USERNAME] = {"username", true},
    [K_BA_PASSWORD] = {"password", true},
};

enum { K_HD_NAME, K_HD_VALUE };
static const struct key_spec header_keys[] = {
    [K_HD_NAME] = {"name", true},
    [K_HD_VALUE] = {"value", true},
};

static void load_path(struct loader *ld, const yaml_node_t *n, enum config_path_kind kind,
                      struct config_channel *ch)
{
    static const char *const names[] = {
        [CONFIG_PATH_EXACT] = "match.path",
        [CONFIG_PATH_PREFIX] = "match.path_prefix",
        [CONFIG_PATH_REGEX] = "match.path_regex",
    };
    if (!get_string(ld, n, names[kind], true, &ch->path))
        return;
    ch->path_kind = kind;
    if (kind != CONFIG_PATH_REGEX) {
        if (ch->path[0] != '/')
            err_at(ld, n, "%s must start with \"/\", got \"%s\"", names[kind], ch->path);
        return;
    }
    /* compiled here only to report errors: the kept copy is compiled once the channel
     * array is final (see compile_channels) */
    regex_t re;
    int rc = regcomp(&re, ch->path, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &re, msg, sizeof msg);
        err_at(ld, n, "invalid regular expression \"%s\" in match.path_regex: %s", ch->path, msg);
        return;
    }
    regfree(&re);
}

static void load_match(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    struct found f[sizeof match_keys / sizeof match_keys[0]];
    if (!MAP_KEYS(ld, n, "match", match_keys, f))
        return;

    static const enum config_path_kind kinds[] = {CONFIG_PATH_EXACT, CONFIG_PATH_PREFIX,
                                                  CONFIG_PATH_REGEX};
    static const char choices[] = "path, path_prefix or path_regex";
    const struct found *one =
        exactly_one(ld, f, K_MA_PATH, K_MA_PATH_REGEX, match_keys, "match", choices);
    if (one == NULL)
        err_at(ld, n, "match needs exactly one of %s", choices);
    else
        load_path(ld, one->val, kinds[one - f], ch);
    static const struct list_spec methods = {
        "match.methods", check_method, NULL, NULL, NULL, false};
    static const struct list_spec types = {"match.content_types",
                                           check_content_type,
                                           "expected type/subtype, like application/json",
                                           NULL,
                                           NULL,
                                           false};
    if (f[K_MA_METHODS].val)
        get_string_list(ld, f[K_MA_METHODS].val, &methods, &ch->methods, &ch->n_methods);
    if (f[K_MA_CONTENT_TYPES].val)
        get_string_list(ld, f[K_MA_CONTENT_TYPES].val, &types, &ch->content_types,
                        &ch->n_content_types);
}

static void load_allow(struct loader *ld, yaml_node_t *n, yaml_node_t *root,
                       struct config_channel *ch)
{
    struct found f[2];
    if (n && !MAP_KEYS(ld, n, "allow", allow_keys, f))
        return;
    if (n == NULL)
        memset(f, 0, sizeof f);
    /* without clients.yaml every reference would look unknown: its own error is enough */
    struct list_spec roles = {
        "allow.roles", check_name, "must not be empty", ld->clients_loaded ? role_declared : NULL,
        "role",        false};
    struct list_spec clients = {
        "allow.clients", check_name, "must not be empty", ld->clients_loaded ? client_exists : NULL,
        "client",        false};
    if (f[K_AL_ROLES].val)
        get_string_list(ld, f[K_AL_ROLES].val, &roles, &ch->allow_roles, &ch->n_allow_roles);
    if (f[K_AL_CLIENTS].val)
        get_string_list(ld, f[K_AL_CLIENTS].val, &clients, &ch->allow_clients,
                        &ch->n_allow_clients);
    /* only when the lists themselves were fine: otherwise that error says enough */
    bool lists_ok =
        (f[K_AL_ROLES].val == NULL || list_len(f[K_AL_ROLES].val) == ch->n_allow_roles) &&
        (f[K_AL_CLIENTS].val == NULL || list_len(f[K_AL_CLIENTS].val) == ch->n_allow_clients);
    if (lists_ok && ch->n_allow_roles == 0 && ch->n_allow_clients == 0)
        err_at(ld, n ? n : root,
               "channel allows no client (add role names under allow.roles, or client ids under "
               "allow.clients)");
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Credentials end up in request headers: a CR or LF would let them add headers. */
static void check_header_value(struct loader *ld, const yaml_node_t *n, const char *what,
                               const char *s)
{
    if (s && has_ctl(s))
        err_at(ld, n, "%s must not contain control characters", what);
}

static bool is_http_url(const char *u)
{
    size_t skip = 0;
    if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    return skip && u[skip] != '\0' && u[skip] != '/' && strchr(u, ' ') == NULL && !has_ctl(u);
}

static void load_auth(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r)
{
    char what[96];
    struct found f[3];
    if (!MAP_KEYS(ld, n, where, auth_keys, f))
        return;
    static const char choices[] = "basic, bearer or header";
    const struct found *one =
        exactly_one(ld, f, K_AU_BASIC, K_AU_HEADER, auth_keys, where, choices);
    if (one == NULL) {
        err_at(ld, n, "%s needs exactly one of %s", where, choices);
        return;
    }
    struct found g[2];
    if (one == &f[K_AU_BASIC]) {
        r->auth_kind = CONFIG_AUTH_BASIC;
        snprintf(what, sizeof what, "%s.basic", where);
        if (MAP_KEYS(ld, f[K_AU_BASIC].val, what, basic_keys, g)) {
            snprintf(what, sizeof what, "%s.basic.username", where);
            if (g[K_BA_USERNAME].val &&
                get_string(ld, g[K_BA_USERNAME].val, what, true, &r->auth_user)) {
                if (strchr(r->auth_user, ':')) /* RFC 7617: user-id cannot contain ':' */
                    err_at(ld, g[K_BA_USERNAME].val, "%s must not contain \":\"", what);
                check_header_value(ld, g[K_BA_USERNAME].val, what, r->auth_user);
            }
            snprintf(what, sizeof what, "%s.basic.password", where);
            if (g[K_BA_PASSWORD].val &&
                get_string(ld, g[K_BA_PASSWORD].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_BA_PASSWORD].val, what, r->auth_secret);
        }
    } else if (one == &f[K_AU_BEARER]) {
        r->auth_kind = CONFIG_AUTH_BEARER;
        snprintf(what, sizeof what, "%s.bearer", where);
        if (get_string(ld, f[K_AU_BEARER].val, what, true, &r->auth_secret))
            check_header_value(ld, f[K_AU_BEARER].val, what, r->auth_secret);
    } else {
        r->auth_kind = CONFIG_AUTH_HEADER;
        snprintf(what, sizeof what, "%s.header", where);
        if (MAP_KEYS(ld, f[K_AU_HEADER].val, what, header_keys, g)) {
            snprintf(what, sizeof what, "%s.header.name", where);
            if (g[K_HD_NAME].val && get_string(ld, g[K_HD_NAME].val, what, true, &r->auth_header) &&
                !is_token(r->auth_header, strlen(r->auth_header)))
                err_at(ld, g[K_HD_NAME].val, "invalid header name \"%s\" in %s", r->auth_header,
                       what);
            snprintf(what, sizeof what, "%s.header.value", where);
            if (g[K_HD_VALUE].val &&
                get_string(ld, g[K_HD_VALUE].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_HD_VALUE].val, what, r->auth_secret);
        }
    }
}

static const char *const mediators[] = {"http", "dhis2", NULL};

/* Returns the node of primary: true, or NULL. */
static yaml_node_t *load_route(struct loader *ld, yaml_node_t *n, size_t idx,
                               struct config_channel *ch)
{
    char where[32], what[64];
    snprintf(where, sizeof where, "routes[%zu]", idx);
    struct found f[sizeof route_keys / sizeof route_keys[0]];
    if (!MAP_KEYS(ld, n, where, route_keys, f))
        return NULL;
    struct config_route *r = &ch->routes[ch->n_routes++];
    memset(r, 0, sizeof *r);
    r->mediator = CONFIG_MEDIATOR_HTTP;
    r->timeout_ms = 30000;
    r->auth_kind = CONFIG_AUTH_NONE;
    r->pos = pos_of(ld, n);

    snprintf(what, sizeof what, "%s.name", where);
    if (f[K_R_NAME].val && get_string(ld, f[K_R_NAME].val, what, true, &r->name)) {
        r->pos = pos_of(ld, f[K_R_NAME].val);
        for (size_t i = 0; i + 1 < ch->n_routes; i++) {
            const struct config_route *o = &ch->routes[i];
            if (o->name && strcmp(o->name, r->name) == 0) {
                err_at(ld, f[K_R_NAME].val,
                       "duplicate route name \"%s\" (first defined at %s:%d:%d)", r->name,
                       o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    snprintf(what, sizeof what, "%s.mediator", where);
    int m;
    if (f[K_R_MEDIATOR].val && (m = get_enum(ld, f[K_R_MEDIATOR].val, what, mediators)) > 0)
        err_at(ld, f[K_R_MEDIATOR].val, "mediator \"%s\" is not supported yet", mediators[m]);
    snprintf(what, sizeof what, "%s.url", where);
    if (f[K_R_URL].val && get_string(ld, f[K_R_URL].val, what, true, &r->url) &&
        !is_http_url(r->url))
        err_at(ld, f[K_R_URL].val,
               "invalid url \"%s\" for %s (expected an absolute http:// or https:// URL)", r->url,
               what);
    snprintf(what, sizeof what, "%s.primary", where);
    if (f[K_R_PRIMARY].val)
        get_bool(ld, f[K_R_PRIMARY].val, what, &r->primary);
    snprintf(what, sizeof what, "%s.timeout", where);
    if (f[K_R_TIMEOUT].val)
        get_duration(ld, f[K_R_TIMEOUT].val, what, &r->timeout_ms);
    snprintf(what, sizeof what, "%s.auth", where);
    if (f[K_R_AUTH].val)
        load_auth(ld, f[K_R_AUTH].val, what, r);
    return r->primary ? f[K_R_PRIMARY].val : NULL;
}

static void load_routes(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!expect_list(ld, n, "routes"))
        return;
    size_t len = list_len(n);
    if (len == 0) {
        err_at(ld, n, "routes must not be empty (a channel needs at least one route)");
        return;
    }
    ch->routes = calloc(len, sizeof *ch->routes);
    if (ch->routes == NULL) {
        ld->oom = true;
        return;
    }
    size_t start = ld->diags->n;
    const struct config_route *primary = NULL;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *p = load_route(ld, list_item(ld, n, i), i, ch);
        if (p == NULL)
            continue;
        const struct config_route *r = &ch->routes[ch->n_routes - 1];
        if (primary)
            err_at(ld, p,
                   "route \"%s\" and route \"%s\" are both primary (exactly one route can be "
                   "primary)",
                   r->name ? r->name : "", primary->name ? primary->name : "");
        else
            primary = r;
    }
    if (primary == NULL && ch->n_routes == 1 && len == 1)
        ch->routes[0].primary = true;
    else if (primary == NULL && ld->diags->n == start)
        err_at(ld, n, "no primary route (mark exactly one route with primary: true)");
}

static void load_channel(struct loader *ld, yaml_node_t *root, void *arg)
{
    (void)arg;
    struct config *cfg = ld->cfg;
    struct found f[sizeof channel_keys / sizeof channel_keys[0]];
    if (!MAP_KEYS(ld, root, NULL, channel_keys, f))
        return;

    size_t cap = cfg->n_channels;
    if (!grow(ld, (void **)&cfg->channels, &cap, cfg->n_channels, sizeof *cfg->channels))
        return;
    struct config_channel *ch = &cfg->channels[cfg->n_channels++];
    memset(ch, 0, sizeof *ch);
    ch->enabled = true;
    ch->priority = 100;
    ch->mode = CONFIG_MODE_SYNC;
    ch->path_kind = CONFIG_PATH_EXACT;
    ch->pos = pos_of(ld, root);

    if (f[K_CH_NAME].val && get_string(ld, f[K_CH_NAME].val, "name", true, &ch->name)) {
        ch->pos = pos_of(ld, f[K_CH_NAME].val);
        for (size_t i = 0; i + 1 < cfg->n_channels; i++) {
            const struct config_channel *o = &cfg->channels[i];
            if (o->name && strcmp(o->name, ch->name) == 0) {
                err_at(ld, f[K_CH_NAME].val,
                       "duplicate channel name \"%s\" (first defined at %s:%d:%d)", ch->name,
                       o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    if (f[K_CH_DESCRIPTION].val)
        get_string(ld, f[K_CH_DESCRIPTION].val, "description", false, &ch->description);
    if (f[K_CH_ENABLED].val)
        get_bool(ld, f[K_CH_ENABLED].val, "enabled", &ch->enabled);
    if (f[K_CH_PRIORITY].val)
        get_int(ld, f[K_CH_PRIORITY].val, "priority", 0, 1000000, &ch->priority);
    if (f[K_CH_MATCH].val)
        load_match(ld, f[K_CH_MATCH].val, ch);
    load_allow(ld, f[K_CH_ALLOW].val, root, ch);
    if (f[K_CH_MODE].val) {
        static const char *const modes[] = {"sync", "async", NULL};
        int m = get_enum(ld, f[K_CH_MODE].val, "mode", modes);
        if (m > 0)
            err_at(ld, f[K_CH_MODE].val, "mode \"%s\" is not supported yet", modes[m]);
    }
    if (f[K_CH_TRANSFORM].key)
        err_at(ld, f[K_CH_TRANSFORM].key, "transform is not supported yet");
    if (f[K_CH_ROUTES].val)
        load_routes(ld, f[K_CH_ROUTES].val, ch);
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

/* Keys are checked in the order the code needs them, not the order of the file;
 * reorder what one file produced by position, keeping the order of equal ones. */
static void sort_diags(struct hibus_diags *d, size_t start)
{
    for (size_t i = start + 1; i < d->n; i++) {
        struct hibus_diag x = d->v[i];
        size_t j = i;
        while (j > start && (d->v[j - 1].line > x.line ||
                             (d->v[j - 1].line == x.line && d->v[j - 1].col > x.col))) {
            d->v[j] = d->v[j - 1];
            j--;
        }
        d->v[j] = x;
    }
}

/* Reads one file (taking ownership of path) and hands its root to fn; the document
 * lives only during this call. Returns false when the file could not be parsed. */
typedef void (*file_loader)(struct loader *ld, yaml_node_t *root, void *arg);

static bool load_file(struct loader *ld, char *path, const struct config_pos *from, file_loader fn,
                      void *arg)
{
    const char *file = add_file(ld, path);
    if (file == NULL)
        return false;
    yaml_document_t doc;
    yaml_node_t *root = parse_file(ld, file, from, &doc);
    if (root == NULL)
        return false;
    size_t start = ld->diags->n;
    fn(ld, root, arg);
    sort_diags(ld->diags, start);
    yaml_document_delete(&doc);
    ld->doc = NULL;
    return true;
}

static void load_channel_dir(struct loader *ld, const char *dir, const struct config_pos *from)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        if (from)
            err_pos(ld, from->file, from->line, from->col,
                    "could not open channel directory \"%s\": %s", dir, strerror(e));
        else
            err_pos(ld, ld->cfg->files[0], 0, 0, "could not open channel directory \"%s\": %s", dir,
                    strerror(e));
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_channel_file(de->d_name))
            continue;
        char *s = xstrdup(ld, de->d_name);
        if (s == NULL || !grow(ld, (void **)&names, &cap, n, sizeof *names)) {
            free(s);
            break;
        }
        names[n++] = s;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !ld->oom; i++)
        load_file(ld, path_join(ld, dir, names[i]), NULL, load_channel, NULL);
    free_strv(names, n);
}

/* ------------------------------------------------------------------------------------
 * Building and freeing the snapshot
 * ------------------------------------------------------------------------------------ */

static void route_free(struct config_route *r)
{
    free(r->name);
    free(r->url);
    free(r->auth_user);
    free(r->auth_secret);
    free(r->auth_header);
}

static void channel_free(struct config_channel *ch, bool compiled)
{
    free(ch->name);
    free(ch->description);
    free(ch->path);
    if (compiled && ch->path_kind == CONFIG_PATH_REGEX)
        regfree(&ch->path_re);
    free_strv(ch->methods, ch->n_methods);
    free_strv(ch->content_types, ch->n_content_types);
    free_strv(ch->allow_roles, ch->n_allow_roles);
    free_strv(ch->allow_clients, ch->n_allow_clients);
    for (size_t i = 0; i < ch->n_routes; i++)
        route_free(&ch->routes[i]);
    free(ch->routes);
}

/* Frees cfg; the first n_compiled channels have a compiled regex (if any). */
static void config_destroy(struct config *cfg, size_t n_compiled)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->dir);
    free_strv(cfg->files, cfg->n_files);
    free(cfg->listen_address);
    free(cfg->database_url);
    free_strv(cfg->redact_headers, cfg->n_redact_headers);
    free_strv(cfg->roles, cfg->n_roles);
    for (size_t i = 0; i < cfg->n_clients; i++) {
        struct config_client *c = &cfg->clients[i];
        free(c->id);
        free(c->name);
        free(c->password_hash);
        free_strv(c->roles, c->n_roles);
    }
    free(cfg->clients);
    for (size_t i = 0; i < cfg->n_channels; i++)
        channel_free(&cfg->channels[i], i < n_compiled);
    free(cfg->channels);
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

static char *dir_of(struct loader *ld, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return xstrdup(ld, ".");
    if (slash == path)
        return xstrdup(ld, "/");
    char *d = strndup(path, (size_t)(slash - path));
    if (d == NULL)
        ld->oom = true;
    return d;
}

static void set_defaults(struct loader *ld, struct config *cfg)
{
    cfg->listen_address = xstrdup(ld, "127.0.0.1");
    cfg->listen_port = 5001;
    cfg->database_pool = 8;
    cfg->database_connect_timeout_ms = 5000;
    cfg->max_body = (size_t)10 * 1024 * 1024;
    cfg->max_connections = 1024;
    cfg->connection_timeout_ms = 60000;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    for (size_t i = 0; i < sizeof default_redact / sizeof default_redact[0]; i++) {
        char *s = xstrdup(ld, default_redact[i]);
        if (s)
            add_redact(ld, s);
    }
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
            err_pos(ld, ch->pos.file, ch->pos.line, ch->pos.col,
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
    struct main_refs refs = {0};
    size_t n_compiled = 0;
    set_defaults(&ld, cfg);
    cfg->path = xstrdup(&ld, path);
    cfg->dir = dir_of(&ld, path);
    if (ld.oom)
        goto done;

    if (!load_file(&ld, xstrdup(&ld, path), NULL, load_main, &refs)) {
        ld.main_unreadable = ld.read_failed;
        goto done; /* without hibus.yaml, where the other files are is unknown */
    }

    char *clients = path_join(&ld, cfg->dir, refs.clients ? refs.clients : "clients.yaml");
    ld.clients_loaded =
        load_file(&ld, clients, refs.clients ? &refs.clients_pos : NULL, load_clients, NULL);
    char *channels = path_join(&ld, cfg->dir, refs.channels ? refs.channels : "channels");
    if (channels)
        load_channel_dir(&ld, channels, refs.channels ? &refs.channels_pos : NULL);
    free(channels);

    if (ld.oom || has_errors(&ld))
        goto done;
    qsort(cfg->channels, cfg->n_channels, sizeof *cfg->channels, cmp_channel);
    if (!compile_channels(&ld, &n_compiled))
        goto done;
    router_check_ties(cfg->channels, cfg->n_channels, diags);

done:
    free(refs.clients);
    free(refs.channels);
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

/* ------------------------------------------------------------------------------------
 * Durations and sizes
 * ------------------------------------------------------------------------------------ */

/* Leading decimal digits of s as an unsigned value; *end is set past them. */
static bool parse_digits(const char *s, unsigned long long *v, const char **end)
{
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long x = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (x > (ULLONG_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    *end = s;
    return true;
}

struct unit {
    const char *name;
    unsigned long long factor;
};

static bool parse_with_units(const char *s, const struct unit *units, size_t nunits,
                             unsigned long long max, unsigned long long *out)
{
    unsigned long long v;
    const char *end;
    if (s == NULL || !parse_digits(s, &v, &end))
        return false;
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(end, units[i].name) == 0) {
            if (v > max / units[i].factor)
                return false;
            *out = v * units[i].factor;
            return true;
        }
    }
    return false;
}

bool config_parse_duration_ms(const char *s, long *out)
{
    static const struct unit units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
    };
    unsigned long long v;
    if (!parse_with_units(s, units, sizeof units / sizeof units[0], LONG_MAX, &v))
        return false;
    *out = (long)v;
    return true;
}

bool config_parse_size(const char *s, size_t *out)
{
    static const struct unit units[] = {
        {"", 1},
        {"B", 1},
        {"kB", 1000ULL},
        {"KB", 1000ULL},
        {"MB", 1000ULL * 1000},
        {"GB", 1000ULL * 1000 * 1000},
        {"KiB", 1024ULL},
        {"MiB", 1024ULL * 1024},
        {"GiB", 1024ULL * 1024 * 1024},
    };
    unsigned long long v;
    if (!parse_with_units(s, units, sizeof units / sizeof units[0], SIZE_MAX, &v))
        return false;
    *out = (size_t)v;
    return true;
}
