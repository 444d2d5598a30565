/*
 * channel.h - what a channel is, as loaded from channels/NAME.yaml: its match rules,
 * who may use it, its transform, its routes and its retry policy. The types are
 * shared by the configuration (config.h, which loads them) and the router
 * (router.h, which matches requests against them), so that neither depends on the
 * other's header. A loaded channel is never modified.
 */
#ifndef HIBUS_CHANNEL_H
#define HIBUS_CHANNEL_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "hibus/aggregate.h"
#include "hibus/cron.h"
#include "hibus/mapping.h"
#include "hibus/quality.h"
#include "hibus/readers.h"

enum config_path_kind { CONFIG_PATH_EXACT = 0, CONFIG_PATH_PREFIX = 1, CONFIG_PATH_REGEX = 2 };
/* sync: the client waits for the primary route's outcome. async: the client
 * gets 202 once the request is stored; delivery workers deliver it, with
 * retries. */
enum config_mode { CONFIG_MODE_SYNC = 0, CONFIG_MODE_ASYNC = 1 };

/* Retry policy: delivery: in hibus.yaml gives the defaults, a channel's retry:
 * overrides each key it names. */
struct config_retry {
    int max_attempts;        /* delivery rounds before a transaction is failed; default 0:
                                no limit, max_age decides */
    long max_age_ms;         /* no retry once the request is older than this; default 24h */
    long backoff_initial_ms; /* default 2s */
    long backoff_max_ms;     /* default 5m; delay = random(0, min(max, initial * 2^(n-1))) */
};
enum config_mediator {
    CONFIG_MEDIATOR_HTTP = 0, /* forward to any HTTP target */
    CONFIG_MEDIATOR_DHIS2 = 1 /* POST <url>/api/dataValueSets, parse the import summary */
};
/* What an http route sends: the request as received (default) or the output of
 * the channel's transform (body: transformed). dhis2 routes always send the
 * transformed report. */
enum config_route_body { CONFIG_BODY_ORIGINAL = 0, CONFIG_BODY_TRANSFORMED = 1 };
enum config_auth_kind {
    CONFIG_AUTH_NONE = 0,
    CONFIG_AUTH_BASIC = 1,  /* auth: { basic: { username: U, password: P } } */
    CONFIG_AUTH_BEARER = 2, /* auth: { bearer: TOKEN } -> Authorization: Bearer TOKEN */
    CONFIG_AUTH_HEADER = 3, /* auth: { header: { name: N, value: V } } */
    CONFIG_AUTH_TOKEN = 4   /* auth: { token: T } -> Authorization: ApiToken T (DHIS2 PAT) */
};

/* Where a thing was defined, for messages about it. */
struct config_pos {
    const char *file; /* points into struct config's file list */
    int line;
    int col;
};

struct config_route {
    char *name;
    enum config_mediator mediator;
    char *url;       /* absolute http:// or https:// URL; the request's query is appended */
    bool primary;    /* exactly one route per channel is primary */
    long timeout_ms; /* default 30000 */
    enum config_auth_kind auth_kind;
    char *auth_user;   /* BASIC */
    char *auth_secret; /* BASIC password, BEARER token, HEADER value */
    char *auth_header; /* HEADER name */
    char *tls_ca_file; /* tls.ca_file: CAs the target's certificate is checked against
                          (absolute); NULL: the system's */
    bool tls_verify;   /* tls.verify, default true: false sends without checking */
    enum config_route_body body;
    char *writer; /* dhis2 routes, or http with body: transformed: "dhis2-datavalueset" or
                     "adx"; default: the channel's transform.writer */
    /* dhis2 routes (key dhis2: { dry_run, import_strategy, id_scheme }): */
    bool dry_run;          /* dryRun=true: DHIS2 validates and stores nothing */
    char *import_strategy; /* CREATE_AND_UPDATE (default), CREATE, UPDATE or DELETE */
    char *id_scheme;       /* idScheme sent with JSON (default: none, DHIS2 uses UID) */
    /* The id scheme of each kind of object the route sends (data_element_id_scheme,
     * ...): what the channel's mapping's targets are ("UID" or "CODE"; the route's
     * own keys must agree with it). Static strings; NULL before config_load ends. */
    const char *id_schemes[MAPPING_KINDS];
    struct config_pos id_scheme_pos[MAPPING_KINDS]; /* where the route set one; line 0: not */
    /* when: [2xx, 409, failed, ...]: run only after the primary route, and only
     * when its outcome matches one entry: a status code, a class "2xx".."5xx", or
     * "failed" (no answer). Empty: always run. Never set on the primary. */
    char **when;
    size_t n_when;
    struct config_pos pos;
};

/* match.json: { "program": "essential-medicines", "report.kind": "monthly" }:
 * the body must be a JSON object whose value at each dotted path is a string
 * (or number or boolean written the same way) equal to the given text. */
struct config_json_match {
    char *path;
    char *equals;
};

/* transform: { reader, mapping, quality: [...], writer } */
struct config_transform {
    char *reader;                  /* a reader_known() name */
    const struct mapping *mapping; /* borrowed from config.mappings; NULL = none */
    struct quality_rule *quality;  /* in the order written */
    size_t n_quality;
    char *writer; /* default writer of the channel's routes */
    /* losses: { reasons: [...], categories: [...] } (openlmis-requisition): which
     * stock adjustment reasons count as losses. Both NULL-terminated, or NULL
     * (the reader's default); reader_opts points into them. */
    char **loss_reasons;
    char **loss_categories;
    struct reader_options reader_opts;
};

/* poll.paging: how the answers of one pull follow each other (docs/polling.md).
 * The styles cover the sources hibus meets:
 *  - OpenLMIS v3 answers searches with a Spring Data page: {content: [...], number,
 *    size, totalPages, totalElements, numberOfElements, first, last, sort}, page
 *    numbers from 0, asked for with ?page=N&size=M (OpenLMIS/openlmis-requisition
 *    src/main/java/org/openlmis/requisition/utils/PageDto.java and Pagination.java,
 *    DEFAULT_PAGE_NUMBER = 0): items: content, page_param: page, size_param: size,
 *    last: last.
 *  - DHIS2's API lists carry a pager: {page, pageCount, total, pageSize, nextPage},
 *    pages from 1 (dhis2/dhis2-core dhis-2/dhis-api/src/main/java/org/hisp/dhis/
 *    common/Pager.java): page_param: page, first_page: 1, total_pages:
 *    pager.pageCount; or next_url: pager.nextPage.
 *  - APIs that hand out a continuation token: next_token + token_param. */
enum config_paging {
    CONFIG_PAGING_NONE = 0,    /* one request */
    CONFIG_PAGING_PAGE = 1,    /* page_param=N (from first_page), until last / total_pages /
                                  a short or empty page */
    CONFIG_PAGING_TOKEN = 2,   /* token_param=<the answer's next_token>, until there is none */
    CONFIG_PAGING_NEXT_URL = 3 /* GET the answer's next_url, until there is none */
};

/* poll.lookups[]: before an item is stored, GET url with {id} replaced by the
 * item's value at id, and put the answer (a JSON object) at into: the facility or
 * processing period an OpenLMIS v2 requisition only references by id. */
struct config_poll_lookup {
    char *id;   /* dotted path of the reference in an item */
    char *url;  /* absolute http(s) URL with one "{id}" */
    char *into; /* dotted path the answer is put at (replacing what is there) */
};

/* poll: a channel that pulls its requests from a source on a schedule instead of
 * being posted to (src/poller.c). Each item of an answer becomes one async
 * transaction of the channel. */
struct config_poll {
    char *schedule;   /* cron expression as written, or NULL when every_ms is set */
    struct cron cron; /* parsed schedule */
    long every_ms;    /* poll.every: a fixed interval instead of a cron schedule */
    char *timezone;   /* poll.timezone: the IANA zone the schedule is read in; NULL: UTC */
    char *state_key;  /* "cron <expr>[ in <zone>]" or "every <n>ms": changes on reload */
    /* The source, sent through the http mediator: name "poll", url, timeout_ms, auth
     * and tls as in routes. */
    struct config_route source;
    char *method;           /* "GET" (default) or "POST" */
    char *body;             /* POST body, sent as application/json; NULL: none */
    char *cursor_param;     /* query parameter given the cursor; NULL: no cursor */
    char *cursor_from;      /* the cursor's value before the first successful pull */
    long cursor_overlap_ms; /* the next cursor is this much before the pull began */
    /* Where the next cursor comes from (at most one; neither: the time the pull
     * began, less the overlap): */
    char *cursor_items; /* cursor.from_items: dotted path in each item; the largest value */
    char *cursor_token; /* cursor.token: dotted path in an answer of the source's own next
                           cursor (a sync token); the last page's */
    char *item_id;      /* dotted path of each item's id (de-duplication); NULL: none */
    enum config_paging paging;
    char *items;       /* dotted path of the items array in an answer; NULL: the answer is one */
    char *page_param;  /* PAGE */
    char *size_param;  /* PAGE, optional: sent with size */
    int size;          /* PAGE: page size (0: not sent, and a short page does not end) */
    int first_page;    /* PAGE: number of the first page, default 0 */
    char *last;        /* PAGE: dotted path of a boolean, true on the last page */
    char *total_pages; /* PAGE: dotted path of the number of pages */
    char *next_token;  /* TOKEN: dotted path of the next page's token */
    char *token_param; /* TOKEN: query parameter that sends it */
    char *next_url;    /* NEXT_URL: dotted path of the next page's URL */
    int max_pages;     /* a pull stops with an error past this many pages; default 1000 */
    struct config_poll_lookup *lookups; /* in the order written; done one after the other */
    size_t n_lookups;
    struct config_pos pos;
};

struct config_channel {
    char *name; /* unique */
    char *description;
    bool enabled; /* default true; a disabled channel is never matched */
    int priority; /* lower matches first; default 100; ties that can overlap are errors */
    enum config_path_kind path_kind;
    char *path;      /* NULL for a poll channel; else match.path (exact), match.path_prefix or
                        match.path_regex */
    regex_t path_re; /* compiled (REG_EXTENDED|REG_NOSUB) when path_kind == REGEX */
    char **methods;  /* upper case; n_methods == 0 means any */
    size_t n_methods;
    char **content_types; /* lower case media types without parameters; 0 means any */
    size_t n_content_types;
    struct config_json_match *json_match; /* all must hold; n_json_match 0 = no condition */
    size_t n_json_match;
    char **allow_roles;
    size_t n_allow_roles;
    char **allow_clients;
    size_t n_allow_clients;
    enum config_mode mode;
    struct config_retry retry;      /* the global delivery: values with this channel's retry: */
    long long keep_bodies_ms;       /* keep_bodies: request/response bodies pruned after this;
                                       0 = the global retention.keep_bodies (0 there = forever) */
    long long keep_transactions_ms; /* keep_transactions: whole transactions removed after this;
                                    0 = the global retention.keep_transactions */
    bool has_transform;
    struct config_transform transform;
    /* aggregate: the payloads are stock events (transform.reader is an event reader):
     * they are stored, and each closed period's figures are sent through the
     * transform's mapping and quality rules and the routes (hibus/aggregate.h) */
    struct config_aggregate aggregate;
    enum mapping_policy unmapped; /* unmapped: reject (default) | skip */
    struct config_route *routes;
    size_t n_routes;
    struct config_poll *poll; /* NULL: posted to (match:); else pulled, and never matched */
    struct config_pos pos;
};

#endif
