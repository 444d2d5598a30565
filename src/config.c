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
 * Mapping files (mappings/NAME.yaml) are read by config_mapping.c when a channel's
 * transform names them, once per config, right after that channel file (one YAML
 * document is open at a time); what both files share is in config_internal.h.
 *
 * Why this file is still over 3,000 lines: hibus.yaml, clients.yaml and the channel
 * files each read their keys with inline checks through some thirty shared helpers.
 * They are to become one table of keys (type, range, default, reload or restart,
 * doc), after which each file's loader is a short table and this file splits along
 * its section banners without exporting every helper.
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
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config_internal.h"
#include "hibus/buf.h"
#include "hibus/csv.h"
#include "hibus/log.h"
#include "hibus/mapping.h"
#include "hibus/period.h"
#include "hibus/quality.h"
#include "hibus/readers.h"
#include "hibus/report.h"
#include "hibus/router.h"
#include "hibus/txlog.h"
#include "hibus/writers.h"

/* Limits on input: a config file larger than this is refused, and so is a scalar
 * longer than this once ${NAME} references are expanded. */

static const char *const default_redact[] = {"authorization", "proxy-authorization", "cookie",
                                             "set-cookie"};

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

static void free_strv(char **v, size_t n)
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

static bool expect_list(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_SEQUENCE_NODE || config_is_null(n))
        return true;
    config_err_at(ld, n, "expected a list for %s, got %s", what, config_kind_name(n));
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
            config_err_at(ld, f[k].key, "%s has both %s and %s (use exactly one of %s)", where,
                          config_scalar_raw(one->key), keys[k].name, choices);
    return one;
}

/* ------------------------------------------------------------------------------------
 * Scalars: ${NAME} expansion and typed values
 * ------------------------------------------------------------------------------------ */

/* Appends to b; out of memory marks the load. */
static bool sb_put(struct loader *ld, struct buf *b, const char *s, size_t n)
{
    if (buf_append(b, s, n))
        return true;
    ld->oom = true;
    return false;
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Was NAME reported unset already? Remembers it when not (up to a limit, past which
 * every use is reported). */
static bool unset_said(struct loader *ld, const char *name)
{
    for (size_t i = 0; i < ld->n_unset; i++)
        if (strcmp(ld->unset[i], name) == 0)
            return true;
    if (ld->n_unset < sizeof ld->unset / sizeof ld->unset[0] && strlen(name) < sizeof ld->unset[0])
        snprintf(ld->unset[ld->n_unset++], sizeof ld->unset[0], "%s", name);
    return false;
}

/* One reference ${NAME}, ${NAME:-default} or ${NAME:?message} (as in POSIX sh: unset
 * or empty takes the default, or is an error with the message), from s[i] = '$' to
 * the closing brace; its value is appended to b. Returns the index after the brace,
 * or 0 after reporting a problem. */
static size_t expand_ref(struct loader *ld, const yaml_node_t *n, const char *what, const char *s,
                         size_t len, size_t i, struct buf *b)
{
    size_t j = i + 2;
    if (j < len && is_name_start(s[j]))
        while (j < len && is_name_char(s[j]))
            j++;
    size_t name_end = j, word = 0;
    char op = 0;
    if (j > i + 2 && j + 1 < len && s[j] == ':' && (s[j + 1] == '-' || s[j + 1] == '?')) {
        op = s[j + 1];
        word = j + 2;
        j = word;
        while (j < len && s[j] != '}')
            j++;
    }
    if (name_end == i + 2 || j == len || s[j] != '}') {
        config_err_at(ld, n,
                      "invalid environment variable reference in \"%s\" (expected ${NAME}, "
                      "${NAME:-default} or ${NAME:?message}, or $$ for a literal $)",
                      s);
        return 0;
    }
    char name[256];
    if (name_end - (i + 2) >= sizeof name) {
        config_err_at(ld, n, "environment variable name in %s is too long", what);
        return 0;
    }
    memcpy(name, s + i + 2, name_end - (i + 2));
    name[name_end - (i + 2)] = '\0';
    const char *val = getenv(name);
    if (val != NULL && (val[0] != '\0' || op == 0)) {
        sb_put(ld, b, val, strlen(val));
        return j + 1;
    }
    if (op == '-') {
        sb_put(ld, b, s + word, j - word);
        return j + 1;
    }
    /* Said once: the first report already makes the configuration invalid. */
    if (!unset_said(ld, name)) {
        if (op == '?')
            config_err_at(ld, n, "environment variable \"%s\" is %s: %.*s", name,
                          val == NULL ? "not set" : "empty", (int)(j - word), s + word);
        else
            config_err_at(ld, n,
                          "environment variable \"%s\" is not set (set it, or write "
                          "${%s:-DEFAULT} for a default)",
                          name, name);
    }
    return 0;
}

/* The value of a scalar with each ${...} reference expanded (expand_ref) and $$ made
 * $; a $ followed by anything else stays (crypt hashes are full of them). Returns a
 * string the caller frees, or NULL after reporting a problem. */
static char *scalar_dup(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        config_err_at(ld, n, "expected a scalar for %s, got %s", what, config_kind_name(n));
        return NULL;
    }
    const char *s = config_scalar_raw(n);
    size_t len = n->data.scalar.length;
    if (strlen(s) != len) {
        config_err_at(ld, n, "value of %s contains a NUL character", what);
        return NULL;
    }
    struct buf b = {0};
    bool ok = sb_put(ld, &b, "", 0);
    for (size_t i = 0; i < len && !ld->oom;) {
        if (s[i] != '$' || i + 1 == len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            sb_put(ld, &b, s + i, 1);
            i++;
        } else if (s[i + 1] == '$') {
            sb_put(ld, &b, "$", 1);
            i += 2;
        } else if ((i = expand_ref(ld, n, what, s, len, i, &b)) == 0) {
            ok = false;
            break;
        }
    }
    if (ok && !ld->oom && b.len > CONFIG_MAX_VALUE) {
        config_err_at(ld, n, "value of %s is too long (%zu bytes, at most %d)", what, b.len,
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
bool config_get_string(struct loader *ld, const yaml_node_t *n, const char *what, bool nonempty,
                       char **out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    if (nonempty && s[0] == '\0') {
        config_err_at(ld, n, "%s must not be empty", what);
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
        config_err_at(ld, n, "expected an integer for %s, got \"%s\"", what, s);
    else if (v < min || v > max) {
        config_err_at(ld, n, "\"%s\" is outside the valid range for %s (%ld .. %ld)", s, what, min,
                      max);
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
        config_err_at(ld, n, "expected a boolean (true or false) for %s, got \"%s\"", what, s);
        ok = false;
    }
    free(s);
    return ok;
}

/* The range a duration key accepts, with the words used in its messages. Most
 * keys take 1ms up to one day; the delivery keys that bound a whole transaction's
 * life take up to 30 days, and retention (where 0 means forever) up to 10 years. */
struct duration_range {
    long min, max;       /* milliseconds */
    const char *text;    /* "1ms .. 24h" */
    const char *example; /* "500ms, 30s, 2m or 1h" */
};

#define DAY_MS (24L * 3600 * 1000)

static const struct duration_range dur_short = {1, DAY_MS, "1ms .. 24h", "500ms, 30s, 2m or 1h"};
static const struct duration_range dur_long = {1, 30 * DAY_MS, "1ms .. 30d", "30s, 5m, 24h or 7d"};
static const struct duration_range dur_connect = {1, TXLOG_CONNECT_TIMEOUT_MAX_MS, "1ms .. 1h",
                                                  "500ms, 30s, 2m or 1h"};
static const struct duration_range dur_keep = {0, 3650 * DAY_MS, "0 .. 3650d",
                                               "12h, 90d or 2w; 0 for forever"};
static const struct duration_range dur_prune = {1000, 3650 * DAY_MS, "1s .. 3650d",
                                                "30m, 1h or 1d"};

static bool get_duration_in(struct loader *ld, const yaml_node_t *n, const char *what,
                            const struct duration_range *range, long *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    long v = 0;
    bool ok = config_parse_duration_ms(s, &v);
    if (!ok)
        config_err_at(ld, n, "expected a duration (like %s) for %s, got \"%s\"", range->example,
                      what, s);
    else if (v < range->min || v > range->max) {
        config_err_at(ld, n, "\"%s\" is outside the valid range for %s (%s)", s, what, range->text);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

static bool get_duration(struct loader *ld, const yaml_node_t *n, const char *what, long *out)
{
    return get_duration_in(ld, n, what, &dur_short, out);
}

/* A duration for messages, in the largest unit that divides it: "15m", "40s", "90d",
 * "1500ms", "0". */
static const char *fmt_duration(char *buf, size_t size, long long ms)
{
    static const struct {
        const char *unit;
        long long factor;
    } units[] = {{"d", DAY_MS}, {"h", 3600L * 1000}, {"m", 60L * 1000}, {"s", 1000}};
    for (size_t i = 0; ms != 0 && i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].factor == 0) {
            snprintf(buf, size, "%lld%s", ms / units[i].factor, units[i].unit);
            return buf;
        }
    }
    if (ms == 0)
        snprintf(buf, size, "0");
    else
        snprintf(buf, size, "%lldms", ms);
    return buf;
}

static bool get_size(struct loader *ld, const yaml_node_t *n, const char *what, size_t *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    size_t v = 0;
    bool ok = config_parse_size(s, &v);
    if (!ok)
        config_err_at(ld, n, "expected a size (like 512KiB, 10MiB or 1GB) for %s, got \"%s\"", what,
                      s);
    else if (v < 1) {
        config_err_at(ld, n, "\"%s\" is outside the valid range for %s (at least 1 byte)", s, what);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

/* An enumerated value: one of names[] (NULL-terminated); returns its index or -1. */
int config_get_enum(struct loader *ld, const yaml_node_t *n, const char *what,
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
        config_err_at(ld, n, "invalid value \"%s\" for %s (expected one of: %s)", s, what, allowed);
    free(s);
    return found;
}

/* "a, b, c" from a NULL-terminated list of names, cut (never overflowing) at size. */
const char *config_join_names(char *buf, size_t size, const char *const *names)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] && len < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

/* A decimal number: an optional '-', digits, optionally '.' and more digits. No
 * exponent, '+', hex, inf or nan: what a person writes for a tolerance or a ceiling. */
static bool parse_decimal(const char *s, double *out)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0)
        return false;
    p += digits;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        if (frac == 0)
            return false;
        p += 1 + frac;
    }
    if (*p != '\0' || digits > 15) /* more would not be exact in a double anyway */
        return false;
    *out = strtod(s, NULL);
    return true;
}

static bool get_number(struct loader *ld, const yaml_node_t *n, const char *what, double min,
                       double *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    double v = 0;
    bool ok = parse_decimal(s, &v);
    if (!ok)
        config_err_at(ld, n, "expected a number (like 10 or 0.5) for %s, got \"%s\"", what, s);
    else if (v < min) {
        config_err_at(ld, n, "\"%s\" is outside the valid range for %s (at least %g)", s, what,
                      min);
        ok = false;
    } else {
        *out = v;
    }
    free(s);
    return ok;
}

/* A UID-valued scalar into *out (replacing it). */
static bool get_uid(struct loader *ld, const yaml_node_t *n, const char *what, char **out)
{
    char *s = NULL;
    if (!config_get_string(ld, n, what, true, &s))
        return false;
    if (!mapping_is_uid(s)) {
        config_err_at(ld, n, "\"%s\" is not a DHIS2 UID (" UID_EXPECTED ")", s);
        free(s);
        return false;
    }
    free(*out);
    *out = s;
    return true;
}

/* A mapping's target of kind k into *out: a UID when the mapping's id scheme
 * for k is UID, else any non-empty identifier (a DHIS2 code). */
bool config_get_target(struct loader *ld, const yaml_node_t *n, const char *what,
                       const struct mapping *m, enum mapping_kind k, char **out)
{
    if (strcmp(mapping_id_scheme(m, k), "UID") == 0)
        return get_uid(ld, n, what, out);
    char *s = NULL;
    if (!config_get_string(ld, n, what, true, &s))
        return false;
    free(*out);
    *out = s;
    return true;
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
            config_err_at(ld, it, "invalid %s \"%s\" in %s%s%s%s", noun, config_scalar_raw(it),
                          spec->what, spec->hint ? " (" : "", spec->hint ? spec->hint : "",
                          spec->hint ? ")" : "");
            free(s);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; spec->unique && j < *count && !dup; j++)
            dup = strcmp((*v)[j], s) == 0;
        if (dup) {
            config_err_at(ld, it, "duplicate %s \"%s\" in %s",
                          spec->ref_kind ? spec->ref_kind : "item", s, spec->what);
            free(s);
            continue;
        }
        if (spec->exists && !spec->exists(ld->cfg, s))
            config_err_at(ld, it, "unknown %s \"%s\"", spec->ref_kind, s);
        if (!config_grow(ld, (void **)v, &cap, *count, sizeof **v)) {
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

static const char *check_measure(char *s)
{
    return report_is_measure(s) ? NULL : "measure";
}

/* A route's when: entry: "409", "2xx" (written in any case), or "failed". */
static const char *check_when(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(s, "failed") == 0)
        return NULL;
    if (strlen(s) != 3 || s[0] < '1' || s[0] > '5')
        return "outcome";
    if (strcmp(s + 1, "xx") == 0)
        return NULL;
    if (s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9')
        return NULL;
    return "outcome";
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
            config_err_pos(ld, from->file, from->line, from->col, "could not read file \"%s\": %s",
                           file, strerror(e));
        else
            config_err_pos(ld, file, 0, 0, "could not read file: %s", strerror(e));
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
 * hibus.yaml
 * ------------------------------------------------------------------------------------ */

struct main_refs {
    char *clients; /* clients: value, or NULL for the default */
    char *channels;
    char *mappings;
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
    K_MAPPINGS,
    K_ADMIN,
    K_DELIVERY,
    K_RETENTION
};
static const struct key_spec main_keys[] = {
    [K_LISTEN] = {"listen", false},         [K_DATABASE] = {"database", true},
    [K_LIMITS] = {"limits", false},         [K_LOG] = {"log", false},
    [K_REDACT] = {"redact_headers", false}, [K_CLIENTS] = {"clients", false},
    [K_CHANNELS] = {"channels", false},     [K_MAPPINGS] = {"mappings", false},
    [K_ADMIN] = {"admin", false},           [K_DELIVERY] = {"delivery", false},
    [K_RETENTION] = {"retention", false},
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

enum {
    K_DV_WORKERS,
    K_DV_LEASE,
    K_DV_POLL,
    K_DV_BATCH,
    K_DV_DRAIN,
    K_DV_MAX_ATTEMPTS,
    K_DV_MAX_AGE,
    K_DV_BACKOFF
};
static const struct key_spec delivery_keys[] = {
    [K_DV_WORKERS] = {"workers", false}, [K_DV_LEASE] = {"lease", false},
    [K_DV_POLL] = {"poll", false},       [K_DV_BATCH] = {"batch", false},
    [K_DV_DRAIN] = {"drain", false},     [K_DV_MAX_ATTEMPTS] = {"max_attempts", false},
    [K_DV_MAX_AGE] = {"max_age", false}, [K_DV_BACKOFF] = {"backoff", false},
};

/* A channel's retry: holds the delivery: keys that make the retry policy. */
enum { K_RY_MAX_ATTEMPTS, K_RY_MAX_AGE, K_RY_BACKOFF };
static const struct key_spec retry_keys[] = {
    [K_RY_MAX_ATTEMPTS] = {"max_attempts", false},
    [K_RY_MAX_AGE] = {"max_age", false},
    [K_RY_BACKOFF] = {"backoff", false},
};

enum { K_BO_INITIAL, K_BO_MAX };
static const struct key_spec backoff_keys[] = {
    [K_BO_INITIAL] = {"initial", false},
    [K_BO_MAX] = {"max", false},
};

enum { K_RT_KEEP_BODIES, K_RT_KEEP_TRANSACTIONS, K_RT_PRUNE_EVERY };
static const struct key_spec retention_keys[] = {
    [K_RT_KEEP_BODIES] = {"keep_bodies", false},
    [K_RT_KEEP_TRANSACTIONS] = {"keep_transactions", false},
    [K_RT_PRUNE_EVERY] = {"prune_every", false},
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
    if (!config_grow(ld, (void **)&cfg->redact_headers, &cap, cfg->n_redact_headers,
                     sizeof *cfg->redact_headers)) {
        free(name);
        return;
    }
    cfg->redact_headers[cfg->n_redact_headers++] = name;
}

/* max_attempts, max_age and backoff: { initial, max } of delivery: or of a channel's
 * retry:, over what *r already holds (the defaults, or the global policy): each key
 * given replaces one value. prefix names the mapping in messages. */
static void load_retry_policy(struct loader *ld, const char *prefix,
                              const yaml_node_t *max_attempts, const yaml_node_t *max_age,
                              const yaml_node_t *backoff, struct config_retry *r)
{
    char what[64], a[32], b[32];
    if (max_attempts) {
        snprintf(what, sizeof what, "%s.max_attempts", prefix);
        get_int(ld, max_attempts, what, 1, 1000, &r->max_attempts);
    }
    if (max_age) {
        snprintf(what, sizeof what, "%s.max_age", prefix);
        get_duration_in(ld, max_age, what, &dur_long, &r->max_age_ms);
    }
    struct found g[sizeof backoff_keys / sizeof backoff_keys[0]];
    snprintf(what, sizeof what, "%s.backoff", prefix);
    if (backoff == NULL || !MAP_KEYS(ld, backoff, what, backoff_keys, g))
        return;
    bool ok = true;
    if (g[K_BO_INITIAL].val) {
        snprintf(what, sizeof what, "%s.backoff.initial", prefix);
        ok = get_duration(ld, g[K_BO_INITIAL].val, what, &r->backoff_initial_ms);
    }
    if (g[K_BO_MAX].val) {
        snprintf(what, sizeof what, "%s.backoff.max", prefix);
        ok = get_duration(ld, g[K_BO_MAX].val, what, &r->backoff_max_ms) && ok;
    }
    if (!ok || r->backoff_max_ms >= r->backoff_initial_ms)
        return;
    fmt_duration(a, sizeof a, r->backoff_max_ms);
    fmt_duration(b, sizeof b, r->backoff_initial_ms);
    if (g[K_BO_MAX].val)
        config_err_at(ld, g[K_BO_MAX].val,
                      "%s.backoff.max (%s) is shorter than backoff.initial (%s)", prefix, a, b);
    else if (g[K_BO_INITIAL].val)
        config_err_at(
            ld, g[K_BO_INITIAL].val,
            "%s.backoff.initial (%s) is longer than backoff.max (%s) (set %s.backoff.max to at "
            "least %s)",
            prefix, b, a, prefix, b);
}

/* keep_bodies and keep_transactions of retention: or of a channel (prefix "retention."
 * or ""): 0 or absent is "forever" (for a channel: the global value). Both given and
 * not 0: a transaction cannot be removed before its bodies. */
static void load_keep(struct loader *ld, const char *prefix, const yaml_node_t *bodies,
                      const yaml_node_t *transactions, long long *bodies_ms,
                      long long *transactions_ms)
{
    char what[64], a[32], b[32];
    long v = 0;
    snprintf(what, sizeof what, "%skeep_bodies", prefix);
    if (bodies && get_duration_in(ld, bodies, what, &dur_keep, &v))
        *bodies_ms = v;
    snprintf(what, sizeof what, "%skeep_transactions", prefix);
    if (transactions && get_duration_in(ld, transactions, what, &dur_keep, &v))
        *transactions_ms = v;
    if (bodies && transactions && *bodies_ms > 0 && *transactions_ms > 0 &&
        *transactions_ms < *bodies_ms)
        config_err_at(
            ld, transactions,
            "%skeep_transactions (%s) is shorter than %skeep_bodies (%s) (a transaction is "
            "removed with its bodies: keep transactions at least as long)",
            prefix, fmt_duration(a, sizeof a, *transactions_ms), prefix,
            fmt_duration(b, sizeof b, *bodies_ms));
}

static void load_delivery(struct loader *ld, const yaml_node_t *n)
{
    struct config *cfg = ld->cfg;
    struct found f[sizeof delivery_keys / sizeof delivery_keys[0]];
    if (!MAP_KEYS(ld, n, "delivery", delivery_keys, f))
        return;
    if (f[K_DV_WORKERS].val)
        get_int(ld, f[K_DV_WORKERS].val, "delivery.workers", 0, 256, &cfg->delivery_workers);
    if (f[K_DV_LEASE].val)
        get_duration_in(ld, f[K_DV_LEASE].val, "delivery.lease", &dur_long,
                        &cfg->delivery_lease_ms);
    if (f[K_DV_POLL].val)
        get_duration(ld, f[K_DV_POLL].val, "delivery.poll", &cfg->delivery_poll_ms);
    if (f[K_DV_BATCH].val)
        get_int(ld, f[K_DV_BATCH].val, "delivery.batch", 1, 100, &cfg->delivery_batch);
    if (f[K_DV_DRAIN].val)
        get_duration_in(ld, f[K_DV_DRAIN].val, "delivery.drain", &dur_long, &cfg->drain_ms);
    load_retry_policy(ld, "delivery", f[K_DV_MAX_ATTEMPTS].val, f[K_DV_MAX_AGE].val,
                      f[K_DV_BACKOFF].val, &cfg->retry);
}

static void load_retention(struct loader *ld, const yaml_node_t *n)
{
    struct config *cfg = ld->cfg;
    struct found f[sizeof retention_keys / sizeof retention_keys[0]];
    if (!MAP_KEYS(ld, n, "retention", retention_keys, f))
        return;
    load_keep(ld, "retention.", f[K_RT_KEEP_BODIES].val, f[K_RT_KEEP_TRANSACTIONS].val,
              &cfg->keep_bodies_ms, &cfg->keep_transactions_ms);
    if (f[K_RT_PRUNE_EVERY].val)
        get_duration_in(ld, f[K_RT_PRUNE_EVERY].val, "retention.prune_every", &dur_prune,
                        &cfg->prune_every_ms);
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
            config_get_string(ld, g[K_L_ADDRESS].val, "listen.address", true, &cfg->listen_address);
        if (g[K_L_PORT].val)
            get_int(ld, g[K_L_PORT].val, "listen.port", 1, 65535, &cfg->listen_port);
    }
    if (f[K_DATABASE].val && MAP_KEYS(ld, f[K_DATABASE].val, "database", database_keys, g)) {
        if (g[K_D_URL].val)
            config_get_string(ld, g[K_D_URL].val, "database.url", true, &cfg->database_url);
        if (g[K_D_POOL].val)
            get_int(ld, g[K_D_POOL].val, "database.pool", 1, TXLOG_POOL_MAX, &cfg->database_pool);
        if (g[K_D_CONNECT_TIMEOUT].val)
            get_duration_in(ld, g[K_D_CONNECT_TIMEOUT].val, "database.connect_timeout",
                            &dur_connect, &cfg->database_connect_timeout_ms);
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
        if (g[K_G_LEVEL].val &&
            (v = config_get_enum(ld, g[K_G_LEVEL].val, "log.level", log_levels)) >= 0)
            cfg->log_level = log_level_parse(log_levels[v]);
        if (g[K_G_FORMAT].val &&
            (v = config_get_enum(ld, g[K_G_FORMAT].val, "log.format", log_formats)) >= 0)
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
    if (f[K_CLIENTS].val &&
        config_get_string(ld, f[K_CLIENTS].val, "clients", true, &refs->clients))
        refs->clients_pos = config_pos_of(ld, f[K_CLIENTS].val);
    if (f[K_CHANNELS].val &&
        config_get_string(ld, f[K_CHANNELS].val, "channels", true, &refs->channels))
        refs->channels_pos = config_pos_of(ld, f[K_CHANNELS].val);
    if (f[K_MAPPINGS].val)
        config_get_string(ld, f[K_MAPPINGS].val, "mappings", true, &refs->mappings);
    if (f[K_ADMIN].key)
        config_err_at(ld, f[K_ADMIN].key, "admin is not supported yet");
    if (f[K_DELIVERY].val)
        load_delivery(ld, f[K_DELIVERY].val);
    if (f[K_RETENTION].val)
        load_retention(ld, f[K_RETENTION].val);
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
    if (!config_grow(ld, (void **)&cfg->clients, &cap, cfg->n_clients, sizeof *cfg->clients))
        return;
    struct config_client *c = &cfg->clients[cfg->n_clients++];
    memset(c, 0, sizeof *c);
    c->enabled = true;
    c->pos = config_pos_of(ld, n);

    if (f[K_CL_ID].val) {
        snprintf(what, sizeof what, "%s.id", where);
        if (config_get_string(ld, f[K_CL_ID].val, what, true, &c->id)) {
            c->pos = config_pos_of(ld, f[K_CL_ID].val);
            for (size_t i = 0; i + 1 < cfg->n_clients; i++) {
                const struct config_client *o = &cfg->clients[i];
                if (o->id && strcmp(o->id, c->id) == 0) {
                    config_err_at(ld, f[K_CL_ID].val,
                                  "duplicate client id \"%s\" (first defined at %s:%d:%d)", c->id,
                                  o->pos.file, o->pos.line, o->pos.col);
                    break;
                }
            }
        }
    }
    if (f[K_CL_NAME].val) {
        snprintf(what, sizeof what, "%s.name", where);
        config_get_string(ld, f[K_CL_NAME].val, what, false, &c->name);
    }
    if (f[K_CL_ROLES].val) {
        snprintf(what, sizeof what, "%s.roles", where);
        struct list_spec spec = {what,          check_name, "must not be empty",
                                 role_declared, "role",     false};
        get_string_list(ld, f[K_CL_ROLES].val, &spec, &c->roles, &c->n_roles);
    }
    if (f[K_CL_PASSWORD_HASH].val) {
        snprintf(what, sizeof what, "%s.password_hash", where);
        if (config_get_string(ld, f[K_CL_PASSWORD_HASH].val, what, true, &c->password_hash) &&
            !is_crypt_hash(c->password_hash))
            config_err_at(
                ld, f[K_CL_PASSWORD_HASH].val,
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
    K_CH_RETRY,
    K_CH_KEEP_BODIES,
    K_CH_KEEP_TRANSACTIONS,
    K_CH_TRANSFORM,
    K_CH_UNMAPPED,
    K_CH_ROUTES
};
static const struct key_spec channel_keys[] = {
    [K_CH_NAME] = {"name", true},
    [K_CH_DESCRIPTION] = {"description", false},
    [K_CH_ENABLED] = {"enabled", false},
    [K_CH_PRIORITY] = {"priority", false},
    [K_CH_MATCH] = {"match", true},
    [K_CH_ALLOW] = {"allow", false},
    [K_CH_MODE] = {"mode", false},
    [K_CH_RETRY] = {"retry", false},
    [K_CH_KEEP_BODIES] = {"keep_bodies", false},
    [K_CH_KEEP_TRANSACTIONS] = {"keep_transactions", false},
    [K_CH_TRANSFORM] = {"transform", false},
    [K_CH_UNMAPPED] = {"unmapped", false},
    [K_CH_ROUTES] = {"routes", true},
};

enum { K_MA_PATH, K_MA_PATH_PREFIX, K_MA_PATH_REGEX, K_MA_METHODS, K_MA_CONTENT_TYPES, K_MA_JSON };
static const struct key_spec match_keys[] = {
    [K_MA_PATH] = {"path", false},
    [K_MA_PATH_PREFIX] = {"path_prefix", false},
    [K_MA_PATH_REGEX] = {"path_regex", false},
    [K_MA_METHODS] = {"methods", false},
    [K_MA_CONTENT_TYPES] = {"content_types", false},
    [K_MA_JSON] = {"json", false},
};

enum { K_AL_ROLES, K_AL_CLIENTS };
static const struct key_spec allow_keys[] = {
    [K_AL_ROLES] = {"roles", false},
    [K_AL_CLIENTS] = {"clients", false},
};

enum { K_T_READER, K_T_MAPPING, K_T_QUALITY, K_T_WRITER, K_T_LOSSES };
static const struct key_spec transform_keys[] = {
    [K_T_READER] = {"reader", true},    [K_T_MAPPING] = {"mapping", false},
    [K_T_QUALITY] = {"quality", false}, [K_T_WRITER] = {"writer", false},
    [K_T_LOSSES] = {"losses", false},
};

enum { K_Q_RULE, K_Q_ACTION, K_Q_TOLERANCE, K_Q_MAX, K_Q_MEASURES };
static const struct key_spec rule_keys[] = {
    [K_Q_RULE] = {"rule", true},
    [K_Q_ACTION] = {"action", false},
    [K_Q_TOLERANCE] = {"tolerance", false},
    [K_Q_MAX] = {"max", false},
    [K_Q_MEASURES] = {"measures", false},
};

enum {
    K_R_NAME,
    K_R_MEDIATOR,
    K_R_URL,
    K_R_PRIMARY,
    K_R_TIMEOUT,
    K_R_AUTH,
    K_R_BODY,
    K_R_WRITER,
    K_R_DHIS2,
    K_R_WHEN
};
static const struct key_spec route_keys[] = {
    [K_R_NAME] = {"name", true},        [K_R_MEDIATOR] = {"mediator", false},
    [K_R_URL] = {"url", true},          [K_R_PRIMARY] = {"primary", false},
    [K_R_TIMEOUT] = {"timeout", false}, [K_R_AUTH] = {"auth", false},
    [K_R_BODY] = {"body", false},       [K_R_WRITER] = {"writer", false},
    [K_R_DHIS2] = {"dhis2", false},     [K_R_WHEN] = {"when", false},
};

enum { K_AU_BASIC, K_AU_BEARER, K_AU_HEADER, K_AU_TOKEN };
static const struct key_spec auth_keys[] = {
    [K_AU_BASIC] = {"basic", false},
    [K_AU_BEARER] = {"bearer", false},
    [K_AU_HEADER] = {"header", false},
    [K_AU_TOKEN] = {"token", false},
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

enum {
    K_DH_DRY_RUN,
    K_DH_IMPORT_STRATEGY,
    K_DH_ID_SCHEME,
    K_DH_KIND_SCHEMES /* then one per enum mapping_kind */
};
static const struct key_spec dhis2_keys[] = {
    [K_DH_DRY_RUN] = {"dry_run", false},
    [K_DH_IMPORT_STRATEGY] = {"import_strategy", false},
    [K_DH_ID_SCHEME] = {"id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_DATA_ELEMENT] = {"data_element_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_ORG_UNIT] = {"org_unit_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_COC] = {"category_option_combo_id_scheme", false},
    [K_DH_KIND_SCHEMES + MAPPING_DATA_SET] = {"data_set_id_scheme", false},
};

static const char *const mediators[] = {"http", "dhis2", NULL};
static const char *const route_bodies[] = {"original", "transformed", NULL};
static const char *const import_strategies[] = {"CREATE_AND_UPDATE", "CREATE", "UPDATE", "DELETE",
                                                NULL};
const char *const config_id_schemes[] = {"UID", "CODE", NULL};
static const char *const rule_actions[] = {"reject", "warn", NULL};
static const char *const unmapped_policies[] = {"reject", "skip", NULL};

static void load_path(struct loader *ld, const yaml_node_t *n, enum config_path_kind kind,
                      struct config_channel *ch)
{
    static const char *const names[] = {
        [CONFIG_PATH_EXACT] = "match.path",
        [CONFIG_PATH_PREFIX] = "match.path_prefix",
        [CONFIG_PATH_REGEX] = "match.path_regex",
    };
    if (!config_get_string(ld, n, names[kind], true, &ch->path))
        return;
    ch->path_kind = kind;
    if (kind != CONFIG_PATH_REGEX) {
        if (ch->path[0] != '/')
            config_err_at(ld, n, "%s must start with \"/\", got \"%s\"", names[kind], ch->path);
        return;
    }
    /* compiled here only to report errors: the kept copy is compiled once the channel
     * array is final (see compile_channels) */
    regex_t re;
    int rc = regcomp(&re, ch->path, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &re, msg, sizeof msg);
        config_err_at(ld, n, "invalid regular expression \"%s\" in match.path_regex: %s", ch->path,
                      msg);
        return;
    }
    regfree(&re);
}

/* The router compares at most this much (router.c's buffers): a longer path segment
 * or value could never match, so it is refused here. */
#define JSON_MATCH_MAX_SEGMENT 255
#define JSON_MATCH_MAX_VALUE 1023

/* "report.kind": non-empty names separated by single dots. */
static bool is_json_path(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n == 0)
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

static bool json_path_segments_fit(const char *p)
{
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n > JSON_MATCH_MAX_SEGMENT)
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

/* match.json: { dotted.path: expected text, ... }. Keys are taken as written (keys
 * are never ${NAME}-expanded); values are scalars, compared as text. */
static void load_json_match(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!config_expect_mapping(ld, n, "match.json") || n->type != YAML_MAPPING_NODE)
        return;
    yaml_node_pair_t *first = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
    if (top == first)
        return;
    ch->json_match = calloc((size_t)(top - first), sizeof *ch->json_match);
    if (ch->json_match == NULL) {
        ld->oom = true;
        return;
    }
    for (yaml_node_pair_t *p = first; p < top && !ld->oom; p++) {
        yaml_node_t *k = config_node(ld, p->key);
        yaml_node_t *v = config_node(ld, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            config_err_at(ld, k, "expected a scalar key in match.json, got %s",
                          config_kind_name(k));
            continue;
        }
        const char *path = config_scalar_raw(k);
        if (strlen(path) != k->data.scalar.length || !is_json_path(path)) {
            config_err_at(
                ld, k,
                "invalid path \"%s\" in match.json (expected names separated by \".\", like "
                "report.kind)",
                path);
            continue;
        }
        if (!json_path_segments_fit(path)) {
            config_err_at(ld, k, "a name in match.json path \"%s\" is too long (at most %d bytes)",
                          path, JSON_MATCH_MAX_SEGMENT);
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = first; q < p && !dup; q++) {
            yaml_node_t *qk = config_node(ld, q->key);
            if (qk->type == YAML_SCALAR_NODE && strcmp(config_scalar_raw(qk), path) == 0) {
                config_err_at(
                    ld, k, "duplicate key \"%s\" in match.json (first defined at %s:%d:%d)", path,
                    ld->file, (int)qk->start_mark.line + 1, (int)qk->start_mark.column + 1);
                dup = true;
            }
        }
        if (dup)
            continue;
        char what[JSON_MATCH_MAX_SEGMENT + 64];
        snprintf(what, sizeof what, "match.json \"%s\"", path);
        if (v->type != YAML_SCALAR_NODE || config_is_null(v)) {
            config_err_at(ld, v, "expected a string, number or boolean for %s, got %s", what,
                          v->type == YAML_SCALAR_NODE ? "null" : config_kind_name(v));
            continue;
        }
        char *equals = scalar_dup(ld, v, what);
        if (equals == NULL)
            continue;
        if (strlen(equals) > JSON_MATCH_MAX_VALUE) {
            config_err_at(ld, v, "value of %s is too long (at most %d bytes)", what,
                          JSON_MATCH_MAX_VALUE);
            free(equals);
            continue;
        }
        struct config_json_match *jm = &ch->json_match[ch->n_json_match];
        jm->path = config_xstrdup(ld, path);
        jm->equals = equals;
        ch->n_json_match++; /* counted even without memory: config_free frees both */
    }
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
        config_err_at(ld, n, "match needs exactly one of %s", choices);
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
    if (f[K_MA_JSON].val)
        load_json_match(ld, f[K_MA_JSON].val, ch);
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
        config_err_at(
            ld, n ? n : root,
            "channel allows no client (add role names under allow.roles, or client ids under "
            "allow.clients)");
}

/* Mapping names become file names: no directories, no hidden files. */
static bool is_mapping_name(const char *s)
{
    if (s[0] == '\0' || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!is_name_char(*s) && *s != '-' && *s != '.')
            return false;
    return true;
}

/* The mapping called name: the one already named by another channel, or a new
 * one (read once the current channel file is done). NULL after reporting that
 * its file is missing. */
static struct mapping *use_mapping(struct loader *ld, const yaml_node_t *n, const char *name)
{
    struct config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->n_mappings; i++)
        if (strcmp(cfg->mappings[i]->name, name) == 0)
            return cfg->mappings[i];
    if (cfg->mappings_dir == NULL) /* out of memory earlier */
        return NULL;
    size_t len = strlen(name) + sizeof ".yaml";
    char *file_name = malloc(len);
    if (file_name == NULL) {
        ld->oom = true;
        return NULL;
    }
    snprintf(file_name, len, "%s.yaml", name);
    char *path = config_path_join(ld, cfg->mappings_dir, file_name);
    free(file_name);
    if (path == NULL)
        return NULL;
    /* checked here, so that the message sits with the channel file's own ones */
    struct stat st;
    int e = stat(path, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? EISDIR : 0;
    if (e != 0) {
        config_err_at(ld, n, "mapping \"%s\" not found: could not read file \"%s\": %s", name, path,
                      strerror(e));
        free(path);
        return NULL;
    }
    struct mapping *m = calloc(1, sizeof *m);
    size_t cap = cfg->n_mappings;
    if (m == NULL || (m->name = config_xstrdup(ld, name)) == NULL ||
        !config_grow(ld, (void **)&cfg->mappings, &cap, cfg->n_mappings, sizeof *cfg->mappings)) {
        ld->oom = true;
        free(path);
        if (m)
            free(m->name);
        free(m);
        return NULL;
    }
    m->file = path;
    cfg->mappings[cfg->n_mappings++] = m;
    if (!config_grow(ld, (void **)&ld->pending, &ld->cap_pending, ld->n_pending,
                     sizeof *ld->pending))
        return NULL;
    ld->pending[ld->n_pending++] = (struct pending_mapping){m, config_pos_of(ld, n)};
    return m;
}

static bool get_rule_kind(struct loader *ld, const yaml_node_t *n, const char *what,
                          enum quality_kind *out)
{
    char *s = scalar_dup(ld, n, what);
    if (s == NULL)
        return false;
    bool ok = quality_kind_parse(s, out);
    if (!ok) {
        const char *names[QUALITY_NUMERIC + 2];
        for (int k = QUALITY_NON_NEGATIVE; k <= QUALITY_NUMERIC; k++)
            names[k] = quality_kind_name((enum quality_kind)k);
        names[QUALITY_NUMERIC + 1] = NULL;
        char list[256];
        config_err_at(ld, n, "unknown quality rule \"%s\" (expected one of: %s)", s,
                      config_join_names(list, sizeof list, names));
    }
    free(s);
    return ok;
}

/* One entry of transform.quality: a rule name, or { rule, action, tolerance, max,
 * measures }. q is zeroed and counted by the caller, so that config_free frees
 * whatever was set even when the entry is invalid. */
static void load_rule(struct loader *ld, yaml_node_t *n, size_t idx, struct quality_rule *q)
{
    char where[48], what[80];
    snprintf(where, sizeof where, "transform.quality[%zu]", idx);
    q->action = QUALITY_REJECT;
    if (n->type == YAML_SCALAR_NODE && !config_is_null(n)) {
        if (get_rule_kind(ld, n, where, &q->kind) && q->kind == QUALITY_VALUE_CEILING)
            config_err_at(
                ld, n,
                "rule value_ceiling needs a ceiling (write it as { rule: value_ceiling, max: "
                "100000 })");
        return;
    }
    struct found f[sizeof rule_keys / sizeof rule_keys[0]];
    if (!MAP_KEYS(ld, n, where, rule_keys, f))
        return;
    snprintf(what, sizeof what, "%s.rule", where);
    bool known = f[K_Q_RULE].val && get_rule_kind(ld, f[K_Q_RULE].val, what, &q->kind);
    const char *rule = known ? quality_kind_name(q->kind) : NULL;
    if (f[K_Q_ACTION].val) {
        snprintf(what, sizeof what, "%s.action", where);
        int a = config_get_enum(ld, f[K_Q_ACTION].val, what, rule_actions);
        if (a >= 0)
            q->action = a == 1 ? QUALITY_WARN : QUALITY_REJECT;
    }
    if (f[K_Q_TOLERANCE].key) {
        snprintf(what, sizeof what, "%s.tolerance", where);
        if (known && q->kind != QUALITY_BALANCE)
            config_err_at(ld, f[K_Q_TOLERANCE].key,
                          "tolerance applies only to the balance rule, not to %s", rule);
        else
            get_number(ld, f[K_Q_TOLERANCE].val, what, 0, &q->tolerance);
    }
    if (known && q->kind == QUALITY_VALUE_CEILING && f[K_Q_MAX].key == NULL)
        config_err_at(ld, n,
                      "missing required key \"max\" in %s (rule value_ceiling needs a ceiling)",
                      where);
    if (f[K_Q_MAX].key) {
        snprintf(what, sizeof what, "%s.max", where);
        if (known && q->kind != QUALITY_VALUE_CEILING)
            config_err_at(ld, f[K_Q_MAX].key,
                          "max applies only to the value_ceiling rule, not to %s", rule);
        else
            get_number(ld, f[K_Q_MAX].val, what, 0, &q->max);
    }
    if (f[K_Q_MEASURES].key) {
        snprintf(what, sizeof what, "%s.measures", where);
        if (known && q->kind != QUALITY_REQUIRED_MEASURES && q->kind != QUALITY_VALUE_CEILING) {
            config_err_at(
                ld, f[K_Q_MEASURES].key,
                "measures applies only to the required_measures and value_ceiling rules, not "
                "to %s",
                rule);
        } else if (!expect_list(ld, f[K_Q_MEASURES].val, what)) {
            /* reported */
        } else if (list_len(f[K_Q_MEASURES].val) == 0) {
            config_err_at(ld, f[K_Q_MEASURES].val,
                          "%s must not be empty (leave it out for the rule's default measures)",
                          what);
        } else {
            char hint[256] = "expected one of: ";
            size_t used = strlen(hint);
            config_join_names(hint + used, sizeof hint - used, REPORT_MEASURES);
            struct list_spec spec = {what, check_measure, hint, NULL, "measure", true};
            get_string_list(ld, f[K_Q_MEASURES].val, &spec, &q->measures, &q->n_measures);
        }
    }
}

static void load_quality(struct loader *ld, yaml_node_t *n, struct config_transform *t)
{
    if (!expect_list(ld, n, "transform.quality"))
        return;
    size_t len = list_len(n);
    if (len == 0)
        return;
    t->quality = calloc(len, sizeof *t->quality);
    if (t->quality == NULL) {
        ld->oom = true;
        return;
    }
    for (size_t i = 0; i < len && !ld->oom; i++)
        load_rule(ld, list_item(ld, n, i), i, &t->quality[t->n_quality++]);
}

enum { K_L_REASONS, K_L_CATEGORIES };
static const struct key_spec losses_keys[] = {
    [K_L_REASONS] = {"reasons", false},
    [K_L_CATEGORIES] = {"categories", false},
};

/* OpenLMIS's ReasonCategory values (openlmis-requisition,
 * src/main/java/org/openlmis/requisition/dto/ReasonCategory.java). */
static const char *check_reason_category(char *s)
{
    static const char *const cats[] = {"TRANSFER", "ADJUSTMENT", "PHYSICAL_INVENTORY",
                                       "AGGREGATION", NULL};
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    for (size_t i = 0; cats[i] != NULL; i++)
        if (strcmp(cats[i], s) == 0)
            return NULL;
    return "reason category";
}

static const char *check_nonempty(char *s)
{
    return s[0] != '\0' ? NULL : "reason name";
}

/* Appends the NULL that struct reader_options expects. */
static char **null_terminate(struct loader *ld, char **v, size_t n)
{
    char **t = realloc(v, (n + 1) * sizeof *t);
    if (t == NULL) {
        ld->oom = true;
        free_strv(v, n);
        return NULL;
    }
    t[n] = NULL;
    return t;
}

/* transform.losses: { reasons: [NAME...], categories: [CATEGORY...] }. */
static void load_losses(struct loader *ld, yaml_node_t *n, struct config_transform *t)
{
    struct found f[sizeof losses_keys / sizeof losses_keys[0]];
    if (!MAP_KEYS(ld, n, "transform.losses", losses_keys, f))
        return;
    if (f[K_L_REASONS].val == NULL && f[K_L_CATEGORIES].val == NULL) {
        config_err_at(ld, n, "transform.losses needs reasons, categories or both");
        return;
    }
    size_t nr = 0, nc = 0;
    struct list_spec rs = {"transform.losses.reasons", check_nonempty, NULL, NULL, "reason", true};
    struct list_spec cs = {"transform.losses.categories",
                           check_reason_category,
                           "expected TRANSFER, ADJUSTMENT, PHYSICAL_INVENTORY or AGGREGATION",
                           NULL,
                           "category",
                           true};
    if (f[K_L_REASONS].val)
        get_string_list(ld, f[K_L_REASONS].val, &rs, &t->loss_reasons, &nr);
    if (f[K_L_CATEGORIES].val)
        get_string_list(ld, f[K_L_CATEGORIES].val, &cs, &t->loss_categories, &nc);
    t->loss_reasons = null_terminate(ld, t->loss_reasons, nr);
    t->loss_categories = null_terminate(ld, t->loss_categories, nc);
    t->reader_opts.loss_reasons = (const char *const *)t->loss_reasons;
    t->reader_opts.loss_categories = (const char *const *)t->loss_categories;
}

/* What load_transform saw, for the checks that need the routes as well. */
struct transform_seen {
    yaml_node_t *key;     /* transform: */
    yaml_node_t *mapping; /* transform.mapping: value, or NULL */
};

static void load_transform(struct loader *ld, yaml_node_t *key, yaml_node_t *n,
                           struct config_channel *ch, struct transform_seen *seen)
{
    struct found f[sizeof transform_keys / sizeof transform_keys[0]];
    if (!MAP_KEYS(ld, n, "transform", transform_keys, f))
        return;
    struct config_transform *t = &ch->transform;
    char list[256];
    ch->has_transform = true;
    seen->key = key;
    seen->mapping = f[K_T_MAPPING].val;
    if (f[K_T_READER].val &&
        config_get_string(ld, f[K_T_READER].val, "transform.reader", true, &t->reader) &&
        !reader_known(t->reader))
        config_err_at(ld, f[K_T_READER].val, "unknown reader \"%s\" (expected one of: %s)",
                      t->reader, config_join_names(list, sizeof list, READER_NAMES));
    char *name = NULL;
    if (f[K_T_MAPPING].val &&
        config_get_string(ld, f[K_T_MAPPING].val, "transform.mapping", true, &name)) {
        if (!is_mapping_name(name))
            config_err_at(
                ld, f[K_T_MAPPING].val,
                "invalid mapping name \"%s\" (expected the name of a file in the mappings "
                "directory, without .yaml: letters, digits, \"-\", \"_\" or \".\")",
                name);
        else
            t->mapping = use_mapping(ld, f[K_T_MAPPING].val, name);
        free(name);
    }
    if (f[K_T_QUALITY].val)
        load_quality(ld, f[K_T_QUALITY].val, t);
    if (f[K_T_LOSSES].val) {
        load_losses(ld, f[K_T_LOSSES].val, t);
        if (t->reader != NULL && strcmp(t->reader, "openlmis-requisition") != 0)
            config_err_at(ld, f[K_T_LOSSES].key,
                          "transform.losses applies only to the openlmis-requisition reader (this "
                          "channel's reader is %s)",
                          t->reader);
    }
    if (f[K_T_WRITER].val) {
        if (config_get_string(ld, f[K_T_WRITER].val, "transform.writer", true, &t->writer) &&
            !writer_known(t->writer))
            config_err_at(ld, f[K_T_WRITER].val, "unknown writer \"%s\" (expected one of: %s)",
                          t->writer, config_join_names(list, sizeof list, WRITER_NAMES));
    } else {
        t->writer = config_xstrdup(ld, "dhis2-datavalueset");
    }
}

bool config_has_ctl(const char *s)
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
    if (s && config_has_ctl(s))
        config_err_at(ld, n, "%s must not contain control characters", what);
}

static bool is_http_url(const char *u)
{
    size_t skip = 0;
    if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        skip = 8;
    return skip && u[skip] != '\0' && u[skip] != '/' && strchr(u, ' ') == NULL &&
           !config_has_ctl(u);
}

static void load_auth(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r)
{
    char what[96];
    struct found f[sizeof auth_keys / sizeof auth_keys[0]];
    if (!MAP_KEYS(ld, n, where, auth_keys, f))
        return;
    static const char choices[] = "basic, bearer, header or token";
    const struct found *one = exactly_one(ld, f, K_AU_BASIC, K_AU_TOKEN, auth_keys, where, choices);
    if (one == NULL) {
        config_err_at(ld, n, "%s needs exactly one of %s", where, choices);
        return;
    }
    struct found g[2];
    if (one == &f[K_AU_BASIC]) {
        r->auth_kind = CONFIG_AUTH_BASIC;
        snprintf(what, sizeof what, "%s.basic", where);
        if (MAP_KEYS(ld, f[K_AU_BASIC].val, what, basic_keys, g)) {
            snprintf(what, sizeof what, "%s.basic.username", where);
            if (g[K_BA_USERNAME].val &&
                config_get_string(ld, g[K_BA_USERNAME].val, what, true, &r->auth_user)) {
                if (strchr(r->auth_user, ':')) /* RFC 7617: user-id cannot contain ':' */
                    config_err_at(ld, g[K_BA_USERNAME].val, "%s must not contain \":\"", what);
                check_header_value(ld, g[K_BA_USERNAME].val, what, r->auth_user);
            }
            snprintf(what, sizeof what, "%s.basic.password", where);
            if (g[K_BA_PASSWORD].val &&
                config_get_string(ld, g[K_BA_PASSWORD].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_BA_PASSWORD].val, what, r->auth_secret);
        }
    } else if (one == &f[K_AU_BEARER] || one == &f[K_AU_TOKEN]) {
        bool bearer = one == &f[K_AU_BEARER];
        r->auth_kind = bearer ? CONFIG_AUTH_BEARER : CONFIG_AUTH_TOKEN;
        snprintf(what, sizeof what, "%s.%s", where, bearer ? "bearer" : "token");
        if (config_get_string(ld, one->val, what, true, &r->auth_secret))
            check_header_value(ld, one->val, what, r->auth_secret);
    } else {
        r->auth_kind = CONFIG_AUTH_HEADER;
        snprintf(what, sizeof what, "%s.header", where);
        if (MAP_KEYS(ld, f[K_AU_HEADER].val, what, header_keys, g)) {
            snprintf(what, sizeof what, "%s.header.name", where);
            if (g[K_HD_NAME].val &&
                config_get_string(ld, g[K_HD_NAME].val, what, true, &r->auth_header) &&
                !is_token(r->auth_header, strlen(r->auth_header)))
                config_err_at(ld, g[K_HD_NAME].val, "invalid header name \"%s\" in %s",
                              r->auth_header, what);
            snprintf(what, sizeof what, "%s.header.value", where);
            if (g[K_HD_VALUE].val &&
                config_get_string(ld, g[K_HD_VALUE].val, what, false, &r->auth_secret))
                check_header_value(ld, g[K_HD_VALUE].val, what, r->auth_secret);
        }
    }
}

/* A dhis2 route's url is DHIS2's base URL (with its context path, if any);
 * the mediator appends /api/dataValueSets and its own query. */
static bool is_dhis2_base_url(const char *u)
{
    const char *path = strchr(strstr(u, "://") + 3, '/');
    if (strpbrk(u, "?#") != NULL)
        return false;
    if (path == NULL)
        return true;
    size_t n = strlen(path);
    return strstr(path, "/api/") == NULL && !(n >= 4 && strcmp(path + n - 4, "/api") == 0);
}

static void load_dhis2_options(struct loader *ld, yaml_node_t *n, const char *where,
                               struct config_route *r, yaml_node_t **id_scheme)
{
    char what[128];
    struct found f[sizeof dhis2_keys / sizeof dhis2_keys[0]];
    if (!MAP_KEYS(ld, n, where, dhis2_keys, f))
        return;
    int v;
    snprintf(what, sizeof what, "%s.dry_run", where);
    if (f[K_DH_DRY_RUN].val)
        get_bool(ld, f[K_DH_DRY_RUN].val, what, &r->dry_run);
    snprintf(what, sizeof what, "%s.import_strategy", where);
    if (f[K_DH_IMPORT_STRATEGY].val &&
        (v = config_get_enum(ld, f[K_DH_IMPORT_STRATEGY].val, what, import_strategies)) >= 0)
        r->import_strategy = config_xstrdup(ld, import_strategies[v]);
    snprintf(what, sizeof what, "%s.id_scheme", where);
    if (f[K_DH_ID_SCHEME].val &&
        (v = config_get_enum(ld, f[K_DH_ID_SCHEME].val, what, config_id_schemes)) >= 0) {
        r->id_scheme = config_xstrdup(ld, config_id_schemes[v]);
        *id_scheme = f[K_DH_ID_SCHEME].val;
    }
    for (int k = 0; k < MAPPING_KINDS; k++) {
        yaml_node_t *val = f[K_DH_KIND_SCHEMES + k].val;
        snprintf(what, sizeof what, "%s.%s", where, dhis2_keys[K_DH_KIND_SCHEMES + k].name);
        if (val && (v = config_get_enum(ld, val, what, config_id_schemes)) >= 0) {
            r->id_schemes[k] = config_id_schemes[v];
            r->id_scheme_pos[k] = config_pos_of(ld, val);
        }
    }
}

/* Returns the node of primary: true, or NULL; *when_key is set to the route's
 * when: key, or NULL. */
static yaml_node_t *load_route(struct loader *ld, yaml_node_t *n, size_t idx,
                               struct config_channel *ch, yaml_node_t **when_key)
{
    char where[32], what[64], list[128];
    snprintf(where, sizeof where, "routes[%zu]", idx);
    *when_key = NULL;
    struct found f[sizeof route_keys / sizeof route_keys[0]];
    if (!MAP_KEYS(ld, n, where, route_keys, f))
        return NULL;
    struct config_route *r = &ch->routes[ch->n_routes++];
    memset(r, 0, sizeof *r);
    r->mediator = CONFIG_MEDIATOR_HTTP;
    r->timeout_ms = 30000;
    r->auth_kind = CONFIG_AUTH_NONE;
    r->pos = config_pos_of(ld, n);

    snprintf(what, sizeof what, "%s.name", where);
    if (f[K_R_NAME].val && config_get_string(ld, f[K_R_NAME].val, what, true, &r->name)) {
        r->pos = config_pos_of(ld, f[K_R_NAME].val);
        for (size_t i = 0; i + 1 < ch->n_routes; i++) {
            const struct config_route *o = &ch->routes[i];
            if (o->name && strcmp(o->name, r->name) == 0) {
                config_err_at(ld, f[K_R_NAME].val,
                              "duplicate route name \"%s\" (first defined at %s:%d:%d)", r->name,
                              o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    const char *rname = r->name ? r->name : "";
    snprintf(what, sizeof what, "%s.mediator", where);
    int m;
    if (f[K_R_MEDIATOR].val && (m = config_get_enum(ld, f[K_R_MEDIATOR].val, what, mediators)) >= 0)
        r->mediator = m == 1 ? CONFIG_MEDIATOR_DHIS2 : CONFIG_MEDIATOR_HTTP;
    bool dhis2 = r->mediator == CONFIG_MEDIATOR_DHIS2;
    if (dhis2 && !ch->has_transform)
        config_err_at(ld, f[K_R_MEDIATOR].val,
                      "route \"%s\" delivers to DHIS2, which needs the channel to have a transform "
                      "(add transform: { reader: ..., mapping: ... })",
                      rname);
    snprintf(what, sizeof what, "%s.url", where);
    if (f[K_R_URL].val && config_get_string(ld, f[K_R_URL].val, what, true, &r->url)) {
        if (!is_http_url(r->url))
            config_err_at(
                ld, f[K_R_URL].val,
                "invalid url \"%s\" for %s (expected an absolute http:// or https:// URL)", r->url,
                what);
        else if (dhis2 && !is_dhis2_base_url(r->url))
            config_err_at(
                ld, f[K_R_URL].val,
                "invalid url \"%s\" for %s (expected the DHIS2 base URL, like "
                "https://dhis.example.org, without query: hibus appends /api/dataValueSets)",
                r->url, what);
    }
    snprintf(what, sizeof what, "%s.primary", where);
    if (f[K_R_PRIMARY].val)
        get_bool(ld, f[K_R_PRIMARY].val, what, &r->primary);
    snprintf(what, sizeof what, "%s.timeout", where);
    if (f[K_R_TIMEOUT].val)
        get_duration(ld, f[K_R_TIMEOUT].val, what, &r->timeout_ms);
    snprintf(what, sizeof what, "%s.auth", where);
    if (f[K_R_AUTH].val)
        load_auth(ld, f[K_R_AUTH].val, what, r);

    snprintf(what, sizeof what, "%s.body", where);
    int b;
    if (f[K_R_BODY].val && (b = config_get_enum(ld, f[K_R_BODY].val, what, route_bodies)) >= 0) {
        if (dhis2)
            config_err_at(
                ld, f[K_R_BODY].key,
                "body applies only to http routes (a dhis2 route always sends the transformed "
                "report)");
        else if (b == 1 && !ch->has_transform)
            config_err_at(
                ld, f[K_R_BODY].val,
                "body: transformed needs the channel to have a transform (add transform: { "
                "reader: ..., mapping: ... })");
        else
            r->body = b == 1 ? CONFIG_BODY_TRANSFORMED : CONFIG_BODY_ORIGINAL;
    }
    if (dhis2)
        r->body = CONFIG_BODY_TRANSFORMED;
    bool transformed = r->body == CONFIG_BODY_TRANSFORMED;

    snprintf(what, sizeof what, "%s.writer", where);
    if (f[K_R_WRITER].val) {
        if (!transformed && !dhis2)
            config_err_at(ld, f[K_R_WRITER].key,
                          "writer applies only to dhis2 routes and to http routes with body: "
                          "transformed");
        else if (config_get_string(ld, f[K_R_WRITER].val, what, true, &r->writer) &&
                 !writer_known(r->writer))
            config_err_at(ld, f[K_R_WRITER].val, "unknown writer \"%s\" (expected one of: %s)",
                          r->writer, config_join_names(list, sizeof list, WRITER_NAMES));
    } else if (transformed && ch->transform.writer) {
        r->writer = config_xstrdup(ld, ch->transform.writer);
    }

    snprintf(what, sizeof what, "%s.dhis2", where);
    yaml_node_t *id_scheme = NULL;
    if (f[K_R_DHIS2].key && !dhis2)
        config_err_at(ld, f[K_R_DHIS2].key, "%s applies only to routes with mediator: dhis2", what);
    else if (f[K_R_DHIS2].val)
        load_dhis2_options(ld, f[K_R_DHIS2].val, what, r, &id_scheme);
    if (dhis2 && r->import_strategy == NULL)
        r->import_strategy = config_xstrdup(ld, "CREATE_AND_UPDATE");
    if (id_scheme && r->writer && strcmp(r->writer, "adx") == 0)
        config_err_at(
            ld, id_scheme,
            "%s.id_scheme applies only to the dhis2-datavalueset writer (ADX is always sent "
            "with idScheme=UID)",
            what);

    if (f[K_R_WHEN].val) {
        snprintf(what, sizeof what, "%s.when", where);
        struct list_spec spec = {
            what, check_when, "expected an HTTP status like 409, a class like 2xx, or failed",
            NULL, "outcome",  true};
        get_string_list(ld, f[K_R_WHEN].val, &spec, &r->when, &r->n_when);
        *when_key = f[K_R_WHEN].key;
    }
    return r->primary ? f[K_R_PRIMARY].val : NULL;
}

static void load_routes(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!expect_list(ld, n, "routes"))
        return;
    size_t len = list_len(n);
    if (len == 0) {
        config_err_at(ld, n, "routes must not be empty (a channel needs at least one route)");
        return;
    }
    ch->routes = calloc(len, sizeof *ch->routes);
    if (ch->routes == NULL) {
        ld->oom = true;
        return;
    }
    size_t start = ld->diags->n;
    const struct config_route *primary = NULL;
    yaml_node_t *when_key = NULL;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *p = load_route(ld, list_item(ld, n, i), i, ch, &when_key);
        if (p == NULL)
            continue;
        const struct config_route *r = &ch->routes[ch->n_routes - 1];
        if (primary)
            config_err_at(
                ld, p,
                "route \"%s\" and route \"%s\" are both primary (exactly one route can be "
                "primary)",
                r->name ? r->name : "", primary->name ? primary->name : "");
        else
            primary = r;
        if (when_key)
            config_err_at(
                ld, when_key,
                "when is not allowed on the primary route \"%s\" (it chooses routes by the "
                "primary route's outcome)",
                r->name ? r->name : "");
    }
    if (primary == NULL && ch->n_routes == 1 && len == 1) {
        ch->routes[0].primary = true;
        if (when_key) /* the only route is the primary one */
            config_err_at(
                ld, when_key,
                "when is not allowed on the primary route \"%s\" (it chooses routes by the "
                "primary route's outcome)",
                ch->routes[0].name ? ch->routes[0].name : "");
    } else if (primary == NULL && ld->diags->n == start) {
        config_err_at(ld, n, "no primary route (mark exactly one route with primary: true)");
    }
}

/* A worker holds an async transaction for delivery.lease while it runs the routes
 * one after the other; if they could take longer, another process could claim the
 * transaction and deliver it a second time. */
static void check_lease(struct loader *ld, const yaml_node_t *at, const struct config_channel *ch)
{
    long long sum = 0;
    for (size_t i = 0; i < ch->n_routes; i++)
        sum += ch->routes[i].timeout_ms;
    if (sum <= ld->cfg->delivery_lease_ms)
        return;
    char a[32], b[32];
    fmt_duration(a, sizeof a, sum);
    config_err_at(
        ld, at,
        "the routes of async channel \"%s\" may take %s together (the sum of their "
        "timeouts), longer than delivery.lease (%s); raise delivery.lease in hibus.yaml to at "
        "least %s, or lower the timeouts",
        ch->name ? ch->name : "", a, fmt_duration(b, sizeof b, ld->cfg->delivery_lease_ms), a);
}

static void load_channel(struct loader *ld, yaml_node_t *root, void *arg)
{
    (void)arg;
    struct config *cfg = ld->cfg;
    struct found f[sizeof channel_keys / sizeof channel_keys[0]];
    if (!MAP_KEYS(ld, root, NULL, channel_keys, f))
        return;

    size_t cap = cfg->n_channels;
    if (!config_grow(ld, (void **)&cfg->channels, &cap, cfg->n_channels, sizeof *cfg->channels))
        return;
    struct config_channel *ch = &cfg->channels[cfg->n_channels++];
    memset(ch, 0, sizeof *ch);
    ch->enabled = true;
    ch->priority = 100;
    ch->mode = CONFIG_MODE_SYNC;
    ch->path_kind = CONFIG_PATH_EXACT;
    ch->pos = config_pos_of(ld, root);

    if (f[K_CH_NAME].val && config_get_string(ld, f[K_CH_NAME].val, "name", true, &ch->name)) {
        ch->pos = config_pos_of(ld, f[K_CH_NAME].val);
        for (size_t i = 0; i + 1 < cfg->n_channels; i++) {
            const struct config_channel *o = &cfg->channels[i];
            if (o->name && strcmp(o->name, ch->name) == 0) {
                config_err_at(ld, f[K_CH_NAME].val,
                              "duplicate channel name \"%s\" (first defined at %s:%d:%d)", ch->name,
                              o->pos.file, o->pos.line, o->pos.col);
                break;
            }
        }
    }
    if (f[K_CH_DESCRIPTION].val)
        config_get_string(ld, f[K_CH_DESCRIPTION].val, "description", false, &ch->description);
    if (f[K_CH_ENABLED].val)
        get_bool(ld, f[K_CH_ENABLED].val, "enabled", &ch->enabled);
    if (f[K_CH_PRIORITY].val)
        get_int(ld, f[K_CH_PRIORITY].val, "priority", 0, 1000000, &ch->priority);
    if (f[K_CH_MATCH].val)
        load_match(ld, f[K_CH_MATCH].val, ch);
    load_allow(ld, f[K_CH_ALLOW].val, root, ch);
    if (f[K_CH_MODE].val) {
        static const char *const modes[] = {"sync", "async", NULL};
        int m = config_get_enum(ld, f[K_CH_MODE].val, "mode", modes);
        if (m >= 0)
            ch->mode = m == 1 ? CONFIG_MODE_ASYNC : CONFIG_MODE_SYNC;
    }
    ch->retry = cfg->retry;
    if (f[K_CH_RETRY].val) {
        struct found g[sizeof retry_keys / sizeof retry_keys[0]];
        if (MAP_KEYS(ld, f[K_CH_RETRY].val, "retry", retry_keys, g))
            load_retry_policy(ld, "retry", g[K_RY_MAX_ATTEMPTS].val, g[K_RY_MAX_AGE].val,
                              g[K_RY_BACKOFF].val, &ch->retry);
    }
    load_keep(ld, "", f[K_CH_KEEP_BODIES].val, f[K_CH_KEEP_TRANSACTIONS].val, &ch->keep_bodies_ms,
              &ch->keep_transactions_ms);
    struct transform_seen seen = {0};
    if (f[K_CH_TRANSFORM].val)
        load_transform(ld, f[K_CH_TRANSFORM].key, f[K_CH_TRANSFORM].val, ch, &seen);
    if (f[K_CH_UNMAPPED].val) {
        int u = config_get_enum(ld, f[K_CH_UNMAPPED].val, "unmapped", unmapped_policies);
        if (u >= 0)
            ch->unmapped = u == 1 ? MAPPING_SKIP : MAPPING_REJECT;
        if (seen.mapping == NULL)
            config_err_at(ld, f[K_CH_UNMAPPED].key,
                          "unmapped applies only to a channel whose transform has a mapping");
    }
    size_t before_routes = ld->diags->n;
    if (f[K_CH_ROUTES].val)
        load_routes(ld, f[K_CH_ROUTES].val, ch);
    if (ch->mode == CONFIG_MODE_ASYNC && f[K_CH_ROUTES].val && ld->diags->n == before_routes)
        check_lease(ld, f[K_CH_ROUTES].key, ch);
    /* DHIS2 takes UIDs: a report in source codes must go through a mapping */
    for (size_t i = 0; ch->has_transform && seen.mapping == NULL && i < ch->n_routes; i++) {
        if (ch->routes[i].mediator == CONFIG_MEDIATOR_DHIS2) {
            config_err_at(
                ld, seen.key,
                "transform has no mapping, but route \"%s\" delivers to DHIS2, which needs "
                "UIDs (add mapping: NAME to the transform)",
                ch->routes[i].name ? ch->routes[i].name : "");
            break;
        }
    }
}

/* Every dhis2 route sends each kind of object in the id scheme of its channel's
 * mapping (id_schemes:); a route that names another one for a kind (its
 * *_id_scheme, else its id_scheme) would make DHIS2 look the mapping's targets up
 * wrongly, and is an error: one per kind the route names, one for its id_scheme. */
static void settle_id_schemes(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    for (size_t c = 0; c < cfg->n_channels; c++) {
        struct config_channel *ch = &cfg->channels[c];
        const struct mapping *m = ch->has_transform ? ch->transform.mapping : NULL;
        for (size_t i = 0; i < ch->n_routes; i++) {
            struct config_route *r = &ch->routes[i];
            if (r->mediator != CONFIG_MEDIATOR_DHIS2)
                continue;
            const char *rname = r->name ? r->name : "";
            char kinds[256] = "";
            for (int k = 0; k < MAPPING_KINDS; k++) {
                const char *want = mapping_id_scheme(m, (enum mapping_kind)k);
                const char *said = r->id_schemes[k];
                if (m != NULL && said != NULL && strcmp(said, want) != 0)
                    config_err_pos(
                        ld, r->id_scheme_pos[k].file, r->id_scheme_pos[k].line,
                        r->id_scheme_pos[k].col,
                        "route \"%s\" sends %s identifiers as %s, but mapping \"%s\" maps "
                        "them to %ss (set id_schemes: { %s: %s } in %s)",
                        rname, MAPPING_KIND_NAMES[k], said, m->name, want, MAPPING_KIND_NAMES[k],
                        said, m->file ? m->file : "the mapping");
                else if (m != NULL && said == NULL && r->id_scheme != NULL &&
                         strcmp(r->id_scheme, want) != 0 &&
                         !(r->writer != NULL && strcmp(r->writer, "adx") == 0))
                    snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s: %s",
                             kinds[0] ? ", " : "", MAPPING_KIND_NAMES[k], r->id_scheme);
                r->id_schemes[k] = want;
            }
            if (kinds[0] != '\0')
                config_err_pos(
                    ld, r->pos.file, r->pos.line, r->pos.col,
                    "route \"%s\" has id_scheme: %s, but mapping \"%s\" maps to UIDs; set "
                    "id_schemes: { %s } in %s, or drop the route's id_scheme",
                    rname, r->id_scheme, m->name, kinds, m->file ? m->file : "the mapping");
        }
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

bool config_load_file(struct loader *ld, char *path, const struct config_pos *from, file_loader fn,
                      void *arg)
{
    const char *file = config_add_file(ld, path);
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
        config_load_file(ld, config_path_join(ld, dir, names[i]), NULL, load_channel, NULL);
        config_load_pending_mappings(ld); /* named by this channel for the first time */
    }
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
    free(r->writer);
    free(r->import_strategy);
    free(r->id_scheme);
    free_strv(r->when, r->n_when);
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
        free_strv(t->quality[i].measures, t->quality[i].n_measures);
    free(t->quality);
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
    for (size_t i = 0; i < ch->n_json_match; i++) {
        free(ch->json_match[i].path);
        free(ch->json_match[i].equals);
    }
    free(ch->json_match);
    free_strv(ch->allow_roles, ch->n_allow_roles);
    free_strv(ch->allow_clients, ch->n_allow_clients);
    transform_free(&ch->transform); /* the mapping belongs to cfg->mappings */
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
    free(cfg->mappings_dir);
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

static void set_defaults(struct loader *ld, struct config *cfg)
{
    cfg->listen_address = config_xstrdup(ld, "127.0.0.1");
    cfg->listen_port = 5001;
    cfg->database_pool = 8;
    cfg->database_connect_timeout_ms = 5000;
    cfg->max_body = (size_t)10 * 1024 * 1024;
    cfg->max_connections = 1024;
    cfg->connection_timeout_ms = 60000;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->delivery_workers = 4;
    cfg->delivery_lease_ms = 5L * 60 * 1000;
    cfg->delivery_poll_ms = 5000;
    cfg->delivery_batch = 1;
    cfg->drain_ms = 30000;
    cfg->retry = (struct config_retry){.max_attempts = 10,
                                       .max_age_ms = DAY_MS,
                                       .backoff_initial_ms = 2000,
                                       .backoff_max_ms = 15L * 60 * 1000};
    cfg->keep_bodies_ms = 0; /* forever */
    cfg->keep_transactions_ms = 0;
    cfg->prune_every_ms = 3600L * 1000;
    for (size_t i = 0; i < sizeof default_redact / sizeof default_redact[0]; i++) {
        char *s = config_xstrdup(ld, default_redact[i]);
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
    struct main_refs refs = {0};
    size_t n_compiled = 0;
    set_defaults(&ld, cfg);
    cfg->path = config_xstrdup(&ld, path);
    cfg->dir = config_dir_of(&ld, path);
    if (ld.oom)
        goto done;

    if (!config_load_file(&ld, config_xstrdup(&ld, path), NULL, load_main, &refs)) {
        ld.main_unreadable = ld.read_failed;
        goto done; /* without hibus.yaml, where the other files are is unknown */
    }

    cfg->mappings_dir = config_path_join(&ld, cfg->dir, refs.mappings ? refs.mappings : "mappings");
    char *clients = config_path_join(&ld, cfg->dir, refs.clients ? refs.clients : "clients.yaml");
    ld.clients_loaded =
        config_load_file(&ld, clients, refs.clients ? &refs.clients_pos : NULL, load_clients, NULL);
    char *channels = config_path_join(&ld, cfg->dir, refs.channels ? refs.channels : "channels");
    if (channels)
        load_channel_dir(&ld, channels, refs.channels ? &refs.channels_pos : NULL);
    free(channels);
    if (!ld.oom) {
        size_t before = ld.diags->n;
        settle_id_schemes(&ld);
        if (ld.diags->n > before) /* among the others, in file and position order */
            config_sort_diags_by_file(&ld, 0);
    }

    if (ld.oom || has_errors(&ld))
        goto done;
    qsort(cfg->channels, cfg->n_channels, sizeof *cfg->channels, cmp_channel);
    if (!compile_channels(&ld, &n_compiled))
        goto done;
    router_check_ties(cfg->channels, cfg->n_channels, diags);

done:
    free(refs.clients);
    free(refs.channels);
    free(refs.mappings);
    free(ld.pending);
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
        {"", 1000},
        {"ms", 1},
        {"s", 1000},
        {"m", 60 * 1000},
        {"h", 3600 * 1000},
        {"d", 24ULL * 3600 * 1000},
        {"w", 7ULL * 24 * 3600 * 1000},
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

static bool str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

const char *config_needs_restart(const struct config *old, const struct config *next)
{
    if (str_differs(old->listen_address, next->listen_address) ||
        old->listen_port != next->listen_port)
        return "listen: changed";
    if (str_differs(old->database_url, next->database_url) ||
        old->database_pool != next->database_pool ||
        old->database_connect_timeout_ms != next->database_connect_timeout_ms)
        return "database: changed";
    /* limits.max_body is read from each request's snapshot: it applies on reload. */
    if (old->max_connections != next->max_connections ||
        old->connection_timeout_ms != next->connection_timeout_ms)
        return "limits.max_connections or limits.connection_timeout changed";
    if (old->delivery_workers != next->delivery_workers)
        return "delivery.workers changed";
    return NULL;
}
