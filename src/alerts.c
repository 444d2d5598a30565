/*
 * alerts.c - the alerts thread (see hibus/alerts.h): every alerts.every it asks
 * txlog_alerts_check to look at each channel, and posts each notice it is handed
 * to alerts.webhook as JSON with libcurl (through the http mediator, so a webhook
 * gets the same timeouts, TLS checks and proxy handling as any route). A notice
 * the webhook does not take with a 2xx stops the look; it is posted again at the
 * next one.
 */
#define LOG_SUBSYS "alerts"
#include "hibus/alerts.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/clock.h"
#include "hibus/log.h"
#include "hibus/mediator.h"

#define WEBHOOK_TIMEOUT_MS 10000
#define IDLE_CHECK_MS 60000 /* without a webhook: look again for one after a reload */

struct alerts {
    struct config_holder *configs;
    struct txlog *tl;
    char *node;
    struct clock_ticker *ticker;
};

struct post_ctx {
    const struct alerts *a;
    const char *url;
};

/* Posts one notice; true when the webhook answered 2xx. */
static bool post_notice(void *arg, const json_t *notice)
{
    const struct post_ctx *p = arg;
    json_t *doc = json_deep_copy(notice);
    json_object_set_new(doc, "node", json_string(p->a->node));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body == NULL)
        return false;
    struct config_route route = {.name = "alerts",
                                 .mediator = CONFIG_MEDIATOR_HTTP,
                                 .url = (char *)(uintptr_t)p->url,
                                 .timeout_ms = WEBHOOK_TIMEOUT_MS,
                                 .tls_verify = true};
    struct mediator_request rq = {.request_id = "hibus-alerts",
                                  .method = "POST",
                                  .url = p->url,
                                  .own_body = true,
                                  .content_type = "application/json",
                                  .body = body,
                                  .body_len = strlen(body),
                                  .max_response = 64 * 1024};
    struct mediator_response resp = {0};
    mediator_forward(&route, &rq, &resp);
    bool ok = resp.status >= 200 && resp.status < 300;
    const char *what = json_string_value(json_object_get(notice, "summary"));
    char why[300];
    if (resp.status)
        snprintf(why, sizeof why, "it answered HTTP %ld", resp.status);
    else
        snprintf(why, sizeof why, "no answer: %s", resp.error);
    if (ok)
        LOG_WARN(NULL, "alert %s posted: %s", json_string_value(json_object_get(notice, "status")),
                 what);
    else
        LOG_ERROR(NULL,
                  "alerts.webhook did not take an alert (%s); it is posted again at the "
                  "next look: %s",
                  why, what);
    mediator_response_free(&resp);
    free(body);
    return ok;
}

static long alerts_tick(void *arg)
{
    struct alerts *a = arg;
    const struct config *cfg = config_holder_acquire(a->configs);
    long next = cfg->alerts_webhook ? cfg->alerts_every_ms : IDLE_CHECK_MS;
    if (cfg->alerts_webhook != NULL && cfg->n_channels > 0) {
        struct buf names = {0};
        for (size_t i = 0; i < cfg->n_channels; i++) {
            if (i)
                buf_append(&names, "\n", 1);
            buf_append(&names, cfg->channels[i].name, strlen(cfg->channels[i].name));
        }
        struct txlog_alert_rules rules = {.window_ms = cfg->alerts_window_ms,
                                          .failure_percent = cfg->alerts_failure_percent,
                                          .min_finished = cfg->alerts_min_finished,
                                          .conflicts = cfg->alerts_conflicts != 0,
                                          .queue_age_ms = cfg->alerts_queue_age_ms,
                                          .repeat_ms = cfg->alerts_repeat_ms};
        struct post_ctx p = {a, cfg->alerts_webhook};
        int sent = 0;
        bool skipped = false;
        struct hibus_error err = {0};
        if (txlog_alerts_check(a->tl, &rules, names.s ? names.s : "", post_notice, &p, &sent,
                               &skipped, &err) != HIBUS_OK)
            LOG_ERROR(NULL, "could not look at the channels for alerts: %s%s%s", err.msg,
                      err.detail[0] ? ": " : "", err.detail);
        else if (skipped)
            LOG_DEBUG(NULL, "another hibus is looking at the alerts now");
        buf_free(&names);
    }
    config_holder_release(a->configs, cfg);
    return next;
}

enum hibus_err alerts_start(struct config_holder *configs, struct txlog *tl, const char *node,
                            struct alerts **out, struct hibus_error *err)
{
    struct alerts *a = hibus_xcalloc(1, sizeof *a);
    a->configs = configs;
    a->tl = tl;
    a->node = hibus_xstrdup(node);
    const struct config *cfg = config_holder_acquire(configs);
    long first = cfg->alerts_webhook ? cfg->alerts_every_ms : IDLE_CHECK_MS;
    config_holder_release(configs, cfg);
    a->ticker = clock_ticker_start(alerts_tick, a, first);
    if (a->ticker == NULL) {
        free(a->node);
        free(a);
        return hibus_error_set(err, HIBUS_E_NOMEM, "could not start the alerts thread");
    }
    *out = a;
    return HIBUS_OK;
}

void alerts_stop(struct alerts *a)
{
    if (a == NULL)
        return;
    clock_ticker_stop(a->ticker);
    free(a->node);
    free(a);
}
