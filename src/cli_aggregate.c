/*
 * cli_aggregate.c - `hibus aggregate show`: one period of one facility of a channel
 * with aggregate:, every stock event up to the period's end, what each did to the
 * figures, the figures, and the transaction that sent them; so an administrator can
 * explain each number DHIS2 received (docs/aggregate.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "hibus/cli.h"
#include "hibus/period.h"

static const char aggregate_usage[] =
    "usage: hibus aggregate show [-c FILE] [--channel NAME] --facility CODE --period PERIOD\n"
    "                            [--commodity CODE] [--json]\n"
    "\n"
    "Shows how the figures of one period were derived from stock events: every event of\n"
    "the facility up to the period's end (of one commodity, or all), the figure each went\n"
    "to and the balance after it, the figures (losses and adjustments also by reason),\n"
    "and the transaction that sent them.\n"
    "--channel may be left out when one channel has aggregate:. PERIOD is a DHIS2 period\n"
    "(202610, 2026Q4, ...) or any day in it (2026-10-15), in the channel's period type.\n";

/* The one channel with aggregate: that name names (or the only one). */
static const struct config_channel *find_channel(const struct config *cfg, const char *name)
{
    const struct config_channel *found = NULL;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const struct config_channel *ch = &cfg->channels[i];
        if (name != NULL && strcmp(ch->name, name) == 0) {
            if (!ch->aggregate.on)
                fprintf(stderr, "hibus aggregate: channel \"%s\" has no aggregate: section\n",
                        name);
            return ch->aggregate.on ? ch : NULL;
        }
        if (name == NULL && ch->aggregate.on) {
            found = ch;
            n++;
        }
    }
    if (name != NULL)
        fprintf(stderr, "hibus aggregate: no channel \"%s\" in the configuration\n", name);
    else if (n == 0)
        fprintf(stderr, "hibus aggregate: no channel has an aggregate: section\n");
    else if (n > 1)
        fprintf(stderr, "hibus aggregate: %zu channels have aggregate:; say which with --channel\n",
                n);
    return n == 1 ? found : NULL;
}

static long long int_of(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void put(const char *s)
{
    cli_put_safe(stdout, s, strlen(s));
}

/* "  losses by reason  Damaged 2  Expired 5  (no reason 1)": the breakdown of total,
 * and what of it no reason explains (events without one, a count's difference);
 * nothing when no event of the period named a reason. */
static void print_by_reason(const json_t *f, const char *what, const char *key)
{
    const json_t *o = json_object_get(f, key);
    if (json_object_size(o) == 0)
        return;
    printf("  %s by reason", what);
    long long sum = 0;
    const char *reason;
    const json_t *v;
    json_object_foreach((json_t *)o, reason, v)
    {
        printf("  ");
        put(reason);
        printf(" %lld", (long long)json_integer_value(v));
        sum += (long long)json_integer_value(v);
    }
    long long rest = int_of(f, what) - sum;
    if (rest != 0)
        printf("  (no reason %lld)", rest);
    printf("\n");
}

static void print_show(const json_t *doc)
{
    const char *s = json_string_value(json_object_get(doc, "channel"));
    printf("channel ");
    put(s);
    printf(", facility ");
    put(json_string_value(json_object_get(doc, "facility")));
    printf(", period %s (%s .. %s)\n", json_string_value(json_object_get(doc, "period")),
           json_string_value(json_object_get(doc, "start")),
           json_string_value(json_object_get(doc, "end")));
    const json_t *sent = json_object_get(doc, "sent");
    if (!json_is_object(sent)) {
        printf("sent: no (no event of this facility falls in the period)\n");
    } else if (json_object_get(sent, "transaction") == NULL) {
        printf("sent: not yet (it is sent once the period has closed)\n");
    } else {
        printf("sent: transaction %lld at %s (%s), %lld time%s", int_of(sent, "transaction"),
               json_string_value(json_object_get(sent, "at")),
               json_string_value(json_object_get(sent, "status"))
                   ? json_string_value(json_object_get(sent, "status"))
                   : "removed from the log",
               int_of(sent, "times"), int_of(sent, "times") == 1 ? "" : "s");
        if (int_of(sent, "late_events") > 0)
            printf(", %lld late event%s", int_of(sent, "late_events"),
                   int_of(sent, "late_events") == 1 ? "" : "s");
        printf("%s\n", json_is_true(json_object_get(sent, "pending"))
                           ? "; changed since, to be sent again"
                           : "");
    }
    const json_t *list = json_object_get(doc, "commodities");
    if (json_array_size(list) == 0)
        printf("\nno stock events up to the period's end\n");
    size_t i;
    const json_t *c;
    json_array_foreach(list, i, c)
    {
        printf("\n");
        put(json_string_value(json_object_get(c, "commodity")));
        const json_t *f = json_object_get(c, "figures");
        printf("\n  opening_balance %lld  received %lld  consumed %lld  losses %lld  adjustments "
               "%lld  stock_on_hand %lld  stockout_days %lld\n",
               int_of(f, "opening_balance"), int_of(f, "received"), int_of(f, "consumed"),
               int_of(f, "losses"), int_of(f, "adjustments"), int_of(f, "stock_on_hand"),
               int_of(f, "stockout_days"));
        print_by_reason(f, "losses", "losses_by_reason");
        print_by_reason(f, "adjustments", "adjustments_by_reason");
        printf("  %-10s  %-10s  %9s  %-16s  %-16s  %9s  %9s  %s\n", "DATE", "KIND", "QUANTITY",
               "REASON", "FIGURE", "AMOUNT", "BALANCE", "EVENT (TRANSACTION)");
        size_t k;
        const json_t *e;
        json_array_foreach(json_object_get(c, "events"), k, e)
        {
            const char *measure = json_string_value(json_object_get(e, "measure"));
            const char *reason = json_string_value(json_object_get(e, "reason"));
            printf("  %-10s  %-10s  %9lld  ", json_string_value(json_object_get(e, "date")),
                   json_string_value(json_object_get(e, "kind")), int_of(e, "quantity"));
            char rbuf[17];
            snprintf(rbuf, sizeof rbuf, "%-16.16s", reason ? reason : "");
            put(rbuf);
            if (measure != NULL)
                printf("  %-16s  %+9lld", measure, int_of(e, "amount"));
            else
                printf("  %-16s  %9s", "(earlier period)", "");
            printf("  %9lld  ", int_of(e, "balance"));
            put(json_string_value(json_object_get(e, "source_id")));
            printf(" (%lld)\n", int_of(e, "transaction"));
        }
    }
}

int cli_aggregate(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(aggregate_usage, stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "show") != 0) {
        fprintf(stderr, "hibus aggregate: expected the subcommand show\n%s", aggregate_usage);
        return 2;
    }
    struct common_opts o = {0};
    int rc = 0;
    struct config *cfg = cli_command_setup(argc - 1, argv + 1, &o, aggregate_usage, NULL, &rc);
    if (cfg == NULL)
        return rc;
    rc = 2;
    struct period p;
    struct period_date d;
    const struct config_channel *ch = find_channel(cfg, o.channel);
    if (ch == NULL)
        goto out;
    if (o.facility == NULL || o.period == NULL) {
        fprintf(stderr, "hibus aggregate show: --facility and --period are required\n%s",
                aggregate_usage);
        goto out;
    }
    if (period_date_parse(o.period, &d)) {
        period_containing(ch->aggregate.period_type, d, &p);
    } else if (!period_parse(o.period, &p) || p.type != ch->aggregate.period_type) {
        fprintf(stderr,
                "hibus aggregate show: --period \"%s\" is not a %s DHIS2 period of channel %s "
                "(e.g. 202610), nor a day (2026-10-15)\n",
                o.period, period_type_name(ch->aggregate.period_type), ch->name);
        goto out;
    }
    struct hibus_error err = {0};
    struct txlog *tl = NULL;
    json_t *doc = NULL;
    rc = 1;
    if (cli_open_db(cfg, &tl, &err) != HIBUS_OK) {
        cli_print_error("aggregate show", &err);
    } else if (txlog_aggregate_show(tl, ch->name, o.facility, o.commodity, &p, &doc, &err) !=
               HIBUS_OK) {
        cli_print_error("could not read the stock events", &err);
    } else {
        if (o.json) {
            json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
            putchar('\n');
        } else {
            print_show(doc);
        }
        rc = 0;
    }
    json_decref(doc);
    txlog_close(tl);
out:
    config_free(cfg);
    return rc;
}
