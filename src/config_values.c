/*
 * config_values.c - typed scalars for the configuration loader: ${NAME},
 * ${NAME:-default} and ${file:PATH} expansion, integers, booleans, decimals, durations ("30s",
 * "7d") and sizes ("10MB") with their ranges, enumerations, UIDs, target names, string lists, and
 * the checks for names, methods, content types and header names.
 *
 * Every getter reports a bad value at the node's file:line:col, naming the key,
 * what it expected and an example, and returns false; the caller keeps reading so
 * that one load reports every problem.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hibus/buf.h"
#include "hibus/txlog.h"
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

bool config_is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Was NAME reported unset already? Remembers it when not (up to a limit, past which
 * every use is reported). */
/* ---- The environment file beside hibus.yaml ---- */

void config_read_env_file(struct loader *ld, const char *dir)
{
    char *path = config_path_join(ld, dir, "environment");
    FILE *f = path ? fopen(path, "re") : NULL;
    if (f == NULL) { /* none, or not ours to read: the process's environment alone */
        free(path);
        return;
    }
    ld->env_file_path = path;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        size_t k = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
        if (*p == '#' || k == 0 || p[k] != '=' || (p[0] >= '0' && p[0] <= '9'))
            continue; /* a comment, a blank line, or not NAME=value */
        char *v = p + k + 1;
        size_t vlen = strlen(v);
        if (vlen >= 2 && (v[0] == '"' || v[0] == '\'') && v[vlen - 1] == v[0]) {
            v[vlen - 1] = '\0';
            v++;
        }
        size_t cap = ld->n_env_file;
        if (!config_grow(ld, (void **)&ld->env_file, &cap, ld->n_env_file, sizeof *ld->env_file))
            break;
        p[k] = '\0';
        size_t need = k + strlen(v) + 2;
        char *kv = malloc(need);
        if (kv == NULL) {
            ld->oom = true;
            break;
        }
        snprintf(kv, need, "%s=%s", p, v);
        ld->env_file[ld->n_env_file++] = kv;
    }
    fclose(f);
}

void config_free_env_file(struct loader *ld)
{
    for (size_t i = 0; i < ld->n_env_file; i++)
        free(ld->env_file[i]);
    free(ld->env_file);
    free(ld->env_file_path);
    ld->env_file = NULL;
    ld->n_env_file = 0;
    ld->env_file_path = NULL;
}

/* NAME's value in the environment file (the last line that sets it), or NULL. */
static const char *env_file_value(const struct loader *ld, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = ld->n_env_file; i-- > 0;)
        if (strncmp(ld->env_file[i], name, n) == 0 && ld->env_file[i][n] == '=')
            return ld->env_file[i] + n + 1;
    return NULL;
}

static bool unset_said(struct loader *ld, const char *name)
{
    for (size_t i = 0; i < ld->n_unset; i++)
        if (strcmp(ld->unset[i], name) == 0)
            return true;
    if (ld->n_unset < sizeof ld->unset / sizeof ld->unset[0] && strlen(name) < sizeof ld->unset[0])
        snprintf(ld->unset[ld->n_unset++], sizeof ld->unset[0], "%s", name);
    return false;
}

#define CONFIG_MAX_SECRET_FILE (64 * 1024)

/* ${file:PATH}: the contents of a file, without its final line end: a secret kept
 * out of the configuration (PATH relative to hibus.yaml's directory). Like
 * expand_ref; the contents never appear in a message. */
static size_t expand_file_ref(struct loader *ld, const yaml_node_t *n, const char *what,
                              const char *s, size_t len, size_t i, struct buf *b)
{
    size_t start = i + 7, j = start;
    while (j < len && s[j] != '}')
        j++;
    if (j == len || j == start) {
        config_err_at(ld, n, "invalid file reference in %s (expected ${file:PATH})", what);
        return 0;
    }
    char rel[1024];
    if (j - start >= sizeof rel) {
        config_err_at(ld, n, "the file name in %s is too long", what);
        return 0;
    }
    memcpy(rel, s + start, j - start);
    rel[j - start] = '\0';
    char *path = config_path_join(ld, ld->cfg->dir, rel);
    if (path == NULL)
        return 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    const char *why = NULL;
    if (fd < 0 || fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > CONFIG_MAX_SECRET_FILE)
        why = "larger than 64 KiB";
    char *data = NULL;
    size_t n_read = 0;
    if (why == NULL) {
        data = malloc((size_t)st.st_size + 1);
        if (data == NULL) {
            ld->oom = true;
            why = "out of memory";
        }
        while (data != NULL && n_read < (size_t)st.st_size) {
            ssize_t r = read(fd, data + n_read, (size_t)st.st_size - n_read);
            if (r <= 0) {
                why = r < 0 ? strerror(errno) : "it changed while being read";
                break;
            }
            n_read += (size_t)r;
        }
    }
    if (fd >= 0)
        close(fd);
    if (why == NULL && n_read > 0 && data[n_read - 1] == '\n')
        n_read -= n_read > 1 && data[n_read - 2] == '\r' ? 2 : 1;
    if (why == NULL && n_read == 0)
        why = "it is empty";
    if (why == NULL && memchr(data, '\0', n_read) != NULL)
        why = "it contains a NUL byte";
    if (why == NULL && memchr(data, '\n', n_read) != NULL)
        why = "it has more than one line";
    if (why != NULL)
        config_err_at(ld, n, "cannot use the secret file %s for %s: %s", path, what, why);
    else
        sb_put(ld, b, data, n_read);
    if (data != NULL) {
        explicit_bzero(data, (size_t)st.st_size + 1);
        free(data);
    }
    free(path);
    return why == NULL ? j + 1 : 0;
}

/* One reference ${NAME}, ${NAME:-default} or ${NAME:?message} (as in POSIX sh: unset
 * or empty takes the default, or is an error with the message), from s[i] = '$' to
 * the closing brace; its value is appended to b. Returns the index after the brace,
 * or 0 after reporting a problem. */
static size_t expand_ref(struct loader *ld, const yaml_node_t *n, const char *what, const char *s,
                         size_t len, size_t i, struct buf *b)
{
    if (len - i > 7 && memcmp(s + i + 2, "file:", 5) == 0)
        return expand_file_ref(ld, n, what, s, len, i, b);
    size_t j = i + 2;
    if (j < len && is_name_start(s[j]))
        while (j < len && config_is_name_char(s[j]))
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
    if (val == NULL)
        val = env_file_value(ld, name);
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
                          "environment variable \"%s\" is not set (set it, %s%s%sor write "
                          "${%s:-DEFAULT} for a default)",
                          name, ld->env_file_path ? "add it to " : "",
                          ld->env_file_path ? ld->env_file_path : "", ld->env_file_path ? ", " : "",
                          name);
    }
    return 0;
}

/* The value of a scalar with each ${...} reference expanded (expand_ref) and $$ made
 * $; a $ followed by anything else stays (crypt hashes are full of them). Returns a
 * string the caller frees, or NULL after reporting a problem. */
char *config_scalar_dup(struct loader *ld, const yaml_node_t *n, const char *what)
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
    char *s = config_scalar_dup(ld, n, what);
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

bool config_get_long(struct loader *ld, const yaml_node_t *n, const char *what, long min, long max,
                     long *out)
{
    char *s = config_scalar_dup(ld, n, what);
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

bool config_get_int(struct loader *ld, const yaml_node_t *n, const char *what, int min, int max,
                    int *out)
{
    long v = 0;
    if (!config_get_long(ld, n, what, min, max, &v))
        return false;
    *out = (int)v;
    return true;
}

bool config_get_bool(struct loader *ld, const yaml_node_t *n, const char *what, bool *out)
{
    char *s = config_scalar_dup(ld, n, what);
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

const struct config_duration_range config_dur_short = {1, CONFIG_DAY_MS, "1ms .. 24h",
                                                       "500ms, 30s, 2m or 1h"};
const struct config_duration_range config_dur_long = {1, 30 * CONFIG_DAY_MS, "1ms .. 30d",
                                                      "30s, 5m, 24h or 7d"};
const struct config_duration_range config_dur_lease = {1000, 3600000, "1s .. 1h", "10s, 30s or 2m"};
const struct config_duration_range config_dur_connect = {1, TXLOG_CONNECT_TIMEOUT_MAX_MS,
                                                         "1ms .. 1h", "500ms, 30s, 2m or 1h"};
const struct config_duration_range config_dur_keep = {0, 3650 * CONFIG_DAY_MS, "0 .. 3650d",
                                                      "12h, 90d or 2w; 0 for forever"};
const struct config_duration_range config_dur_alert = {1000, 30 * CONFIG_DAY_MS, "1s .. 30d",
                                                       "30s, 15m or 1h"};
const struct config_duration_range config_dur_alert_off = {0, 30 * CONFIG_DAY_MS, "0 (off) .. 30d",
                                                           "0, 30m or 2h"};
const struct config_duration_range config_dur_prune = {1000, 3650 * CONFIG_DAY_MS, "1s .. 3650d",
                                                       "30m, 1h or 1d"};

bool config_get_duration_in(struct loader *ld, const yaml_node_t *n, const char *what,
                            const struct config_duration_range *range, long *out)
{
    char *s = config_scalar_dup(ld, n, what);
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

bool config_get_duration(struct loader *ld, const yaml_node_t *n, const char *what, long *out)
{
    return config_get_duration_in(ld, n, what, &config_dur_short, out);
}

/* A duration for messages, in the largest unit that divides it: "15m", "40s", "90d",
 * "1500ms", "0". */
const char *config_fmt_duration(char *buf, size_t size, long long ms)
{
    static const struct {
        const char *unit;
        long long factor;
    } units[] = {{"d", CONFIG_DAY_MS}, {"h", 3600L * 1000}, {"m", 60L * 1000}, {"s", 1000}};
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

const char *config_fmt_size(char *buf, size_t size, unsigned long long bytes)
{
    static const char *const units[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3 && bytes != 0; i++) {
        unsigned long long f = 1ULL << (10 * (3 - i));
        if (bytes % f == 0) {
            snprintf(buf, size, "%llu%s", bytes / f, units[i]);
            return buf;
        }
    }
    snprintf(buf, size, "%llu", bytes);
    return buf;
}

bool config_get_size(struct loader *ld, const yaml_node_t *n, const char *what, size_t *out)
{
    char *s = config_scalar_dup(ld, n, what);
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
    char *s = config_scalar_dup(ld, n, what);
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

bool config_get_number(struct loader *ld, const yaml_node_t *n, const char *what, double min,
                       double *out)
{
    char *s = config_scalar_dup(ld, n, what);
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

/* Appends the items of list n to *v. Invalid items are reported and left out;
 * unknown references are reported and kept (the config is invalid anyway). */
void config_get_string_list(struct loader *ld, const yaml_node_t *n, const struct list_spec *spec,
                            char ***v, size_t *count)
{
    if (!config_expect_list(ld, n, spec->what))
        return;
    size_t len = config_list_len(n), cap = *count;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = config_list_item(ld, n, i);
        char *s = config_scalar_dup(ld, it, spec->what);
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

bool config_is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(s[i]))
            return false;
    return true;
}

const char *config_check_method(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return config_is_token(s, strlen(s)) ? NULL : "HTTP method";
}

const char *config_check_header_name(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return config_is_token(s, strlen(s)) ? NULL : "header name";
}

/* "Application/JSON; charset=utf-8" -> "application/json". */
const char *config_check_content_type(char *s)
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
    if (slash == NULL || strchr(s, '*') != NULL || !config_is_token(s, (size_t)(slash - s)) ||
        !config_is_token(slash + 1, strlen(slash + 1)))
        return "content type";
    return NULL;
}

const char *config_check_name(char *s)
{
    return s[0] ? NULL : "name";
}

const char *config_check_measure(char *s)
{
    return report_is_measure(s) ? NULL : "measure";
}

/* A route's when: entry: "409", "2xx" (written in any case), or "failed". */
const char *config_check_when(char *s)
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
