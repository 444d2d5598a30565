/*
 * config_route.c - the routes: of a channel file, for the configuration loader (see
 * config_internal.h): name, mediator, URL, timeout, primary, body and writer, when
 * (a condition on earlier routes), auth (basic, bearer, token or a header, checked
 * so a credential cannot add headers) and the dhis2 options (dry run, import
 * strategy, id schemes per kind).
 */
#include "config_internal.h"
#include "hibus/tls.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hibus/mapping.h"
#include "hibus/writers.h"

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
    K_R_WHEN,
    K_R_TLS
};
static const struct key_spec route_keys[] = {
    [K_R_NAME] = {"name", true},        [K_R_MEDIATOR] = {"mediator", false},
    [K_R_URL] = {"url", true},          [K_R_PRIMARY] = {"primary", false},
    [K_R_TIMEOUT] = {"timeout", false}, [K_R_AUTH] = {"auth", false},
    [K_R_BODY] = {"body", false},       [K_R_WRITER] = {"writer", false},
    [K_R_DHIS2] = {"dhis2", false},     [K_R_WHEN] = {"when", false},
    [K_R_TLS] = {"tls", false},
};

enum { K_TL_CA_FILE, K_TL_VERIFY };
static const struct key_spec tls_keys[] = {
    [K_TL_CA_FILE] = {"ca_file", false},
    [K_TL_VERIFY] = {"verify", false},
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

bool config_has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* A secret written in the channel file itself ends up in backups, version control
 * and support tickets with it: hibus check says so, and points to the two ways to
 * keep it out. */
static void warn_plain_secret(struct loader *ld, const yaml_node_t *n, const char *what)
{
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length > 0 &&
        strstr(config_scalar_raw(n), "${") == NULL)
        config_warn_at(ld, n,
                       "%s is written in plain text in this file: read it from a file "
                       "(\"${file:/etc/hibus/secrets/NAME}\", readable by hibus only) or from "
                       "the environment (\"${NAME}\")",
                       what);
}

/* Credentials end up in request headers: a CR or LF would let them add headers. */
static void check_header_value(struct loader *ld, const yaml_node_t *n, const char *what,
                               const char *s)
{
    if (s && config_has_ctl(s))
        config_err_at(ld, n, "%s must not contain control characters", what);
}

bool config_url_userinfo(const char *url, size_t *at, size_t *len)
{
    const char *s = strstr(url, "://");
    if (s == NULL)
        return false;
    s += 3;
    size_t authority = strcspn(s, "/?#");
    const char *last_at = NULL;
    for (size_t i = 0; i < authority; i++)
        if (s[i] == '@')
            last_at = s + i; /* the host follows the last one */
    if (last_at == NULL)
        return false;
    *at = (size_t)(s - url);
    *len = (size_t)(last_at - s);
    return true;
}

void config_mask_attempt_urls(json_t *tx)
{
    size_t k;
    json_t *att;
    json_array_foreach(json_object_get(tx, "attempts"), k, att)
    {
        const char *u = json_string_value(json_object_get(att, "url"));
        char url[1024];
        if (u != NULL)
            json_object_set_new(att, "url", json_string(config_url_masked(u, url, sizeof url)));
    }
}

const char *config_url_masked(const char *url, char *out, size_t size)
{
    size_t at = 0, len = 0;
    if (!config_url_userinfo(url, &at, &len))
        snprintf(out, size, "%s", url);
    else
        snprintf(out, size, "%.*s***%s", (int)at, url, url + at + len);
    return out;
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

void config_load_auth(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r)
{
    char what[96];
    struct found f[sizeof auth_keys / sizeof auth_keys[0]];
    if (!MAP_KEYS(ld, n, where, auth_keys, f))
        return;
    static const char choices[] = "basic, bearer, header or token";
    const struct found *one =
        config_exactly_one(ld, f, K_AU_BASIC, K_AU_TOKEN, auth_keys, where, choices);
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
                config_get_string(ld, g[K_BA_PASSWORD].val, what, false, &r->auth_secret)) {
                check_header_value(ld, g[K_BA_PASSWORD].val, what, r->auth_secret);
                warn_plain_secret(ld, g[K_BA_PASSWORD].val, what);
            }
        }
    } else if (one == &f[K_AU_BEARER] || one == &f[K_AU_TOKEN]) {
        bool bearer = one == &f[K_AU_BEARER];
        r->auth_kind = bearer ? CONFIG_AUTH_BEARER : CONFIG_AUTH_TOKEN;
        snprintf(what, sizeof what, "%s.%s", where, bearer ? "bearer" : "token");
        if (config_get_string(ld, one->val, what, true, &r->auth_secret)) {
            check_header_value(ld, one->val, what, r->auth_secret);
            warn_plain_secret(ld, one->val, what);
        }
    } else {
        r->auth_kind = CONFIG_AUTH_HEADER;
        snprintf(what, sizeof what, "%s.header", where);
        if (MAP_KEYS(ld, f[K_AU_HEADER].val, what, header_keys, g)) {
            snprintf(what, sizeof what, "%s.header.name", where);
            if (g[K_HD_NAME].val &&
                config_get_string(ld, g[K_HD_NAME].val, what, true, &r->auth_header) &&
                !config_is_token(r->auth_header, strlen(r->auth_header)))
                config_err_at(ld, g[K_HD_NAME].val, "invalid header name \"%s\" in %s",
                              r->auth_header, what);
            snprintf(what, sizeof what, "%s.header.value", where);
            if (g[K_HD_VALUE].val &&
                config_get_string(ld, g[K_HD_VALUE].val, what, false, &r->auth_secret)) {
                check_header_value(ld, g[K_HD_VALUE].val, what, r->auth_secret);
                warn_plain_secret(ld, g[K_HD_VALUE].val, what);
            }
        }
    }
}

bool config_get_http_url(struct loader *ld, const yaml_node_t *n, const char *what, char **out)
{
    char *url = NULL;
    if (!config_get_string(ld, n, what, true, &url))
        return false;
    size_t at = 0, len = 0;
    char masked[512];
    if (config_url_userinfo(url, &at, &len))
        config_err_at(ld, n,
                      "the url \"%s\" of %s holds a user name or password; put them in auth: "
                      "(basic: { username: ..., password: ... }, or token, bearer or header), "
                      "where they are sent but never stored or printed",
                      config_url_masked(url, masked, sizeof masked), what);
    else if (!is_http_url(url))
        config_err_at(ld, n,
                      "invalid url \"%s\" for %s (expected an absolute http:// or https:// URL)",
                      url, what);
    else {
        *out = url;
        return true;
    }
    free(url);
    return false;
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
        config_get_bool(ld, f[K_DH_DRY_RUN].val, what, &r->dry_run);
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

/* tls: { ca_file, verify }: how the target's certificate is checked. Targets are
 * verified against the system's CAs unless ca_file names others; verify: false turns
 * the check off, which the log says at every start and reload. */
void config_load_tls(struct loader *ld, yaml_node_t *n, const char *where, struct config_route *r)
{
    struct found f[sizeof tls_keys / sizeof tls_keys[0]];
    if (!MAP_KEYS(ld, n, where, tls_keys, f))
        return;
    char what[96];
    if (r->url != NULL && strncasecmp(r->url, "https://", 8) != 0)
        config_err_at(ld, n, "%s applies to https:// URLs only (the url is \"%s\")", where, r->url);
    snprintf(what, sizeof what, "%s.verify", where);
    if (f[K_TL_VERIFY].val)
        config_get_bool(ld, f[K_TL_VERIFY].val, what, &r->tls_verify);
    snprintf(what, sizeof what, "%s.ca_file", where);
    char *path = NULL;
    if (f[K_TL_CA_FILE].val && config_get_string(ld, f[K_TL_CA_FILE].val, what, true, &path)) {
        r->tls_ca_file = config_path_join(ld, ld->cfg->dir, path);
        free(path);
        char why[512];
        if (r->tls_ca_file != NULL && !tls_ca_file_check(r->tls_ca_file, why, sizeof why))
            config_err_at(ld, f[K_TL_CA_FILE].val, "%s: %s", what, why);
        if (!r->tls_verify)
            config_err_at(ld, f[K_TL_CA_FILE].val,
                          "%s is given but verify is false: choose one (a CA to check "
                          "against, or no check at all)",
                          what);
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
        size_t at = 0, len = 0;
        char masked[512];
        if (config_url_userinfo(r->url, &at, &len))
            /* The URL is stored with every attempt and printed by hibus tx: a password
             * in it would end up in both. Its message shows the URL masked. */
            config_err_at(ld, f[K_R_URL].val,
                          "the url \"%s\" of %s holds a user name or password; put them in the "
                          "route's auth: (basic: { username: ..., password: ... }, or token, "
                          "bearer or header), where they are sent but never stored or printed",
                          config_url_masked(r->url, masked, sizeof masked), what);
        else if (!is_http_url(r->url))
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
    r->tls_verify = true;
    snprintf(what, sizeof what, "%s.tls", where);
    if (f[K_R_TLS].val)
        config_load_tls(ld, f[K_R_TLS].val, what, r);
    snprintf(what, sizeof what, "%s.primary", where);
    if (f[K_R_PRIMARY].val)
        config_get_bool(ld, f[K_R_PRIMARY].val, what, &r->primary);
    snprintf(what, sizeof what, "%s.timeout", where);
    if (f[K_R_TIMEOUT].val)
        config_get_duration(ld, f[K_R_TIMEOUT].val, what, &r->timeout_ms);
    snprintf(what, sizeof what, "%s.auth", where);
    if (f[K_R_AUTH].val)
        config_load_auth(ld, f[K_R_AUTH].val, what, r);

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
        struct list_spec spec = {what,
                                 config_check_when,
                                 "expected an HTTP status like 409, a class like 2xx, or failed",
                                 NULL,
                                 "outcome",
                                 true};
        config_get_string_list(ld, f[K_R_WHEN].val, &spec, &r->when, &r->n_when);
        *when_key = f[K_R_WHEN].key;
    }
    return r->primary ? f[K_R_PRIMARY].val : NULL;
}

void config_load_routes(struct loader *ld, yaml_node_t *n, struct config_channel *ch)
{
    if (!config_expect_list(ld, n, "routes"))
        return;
    size_t len = config_list_len(n);
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
        yaml_node_t *p = load_route(ld, config_list_item(ld, n, i), i, ch, &when_key);
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
