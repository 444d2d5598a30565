/*
 * pipeline.c - the CPU one payload costs in a channel's transform, in a tight loop:
 * reader, mapping, quality rules (delivery_prepare), then every route's writer
 * (delivery_route_body), then freeing it all; no database, no sockets.
 *
 *   hibus-bench-pipeline CONFIG CHANNEL PAYLOAD [SECONDS]     (default 3 s)
 *
 * Runs the payload once to check it is deliverable, warms up for a tenth of the
 * time, then repeats it for SECONDS of this thread's CPU time and prints the mean
 * per payload and per value, and the fastest of ten equal slices (the machine is
 * shared: the fastest slice is the least disturbed). bench/run's `pipeline` case
 * runs it on a 100-value report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hibus/config.h"
#include "hibus/cpubudget.h"
#include "hibus/delivery.h"
#include "hibus/readers.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

/* One payload through the whole transform; the number of values, or 0 if rejected. */
static size_t run_once(const struct config_channel *ch, const char *body, size_t len, size_t *out)
{
    struct delivery_prepared p = {0};
    size_t n = 0;
    if (delivery_prepare(ch, body, len, &p) == HIBUS_OK && p.report != NULL) {
        n = p.report->n_values;
        for (size_t r = 0; r < ch->n_routes; r++) {
            char *ob = NULL;
            size_t olen = 0;
            const char *ctype = NULL, *writer = NULL;
            struct hibus_error err = {0};
            if (delivery_route_body(ch, &ch->routes[r], &p, &ob, &olen, &ctype, &writer, &err) !=
                HIBUS_OK) {
                n = 0;
                break;
            }
            *out += olen;
            free(ob);
        }
    }
    delivery_prepared_free(&p);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fputs("usage: hibus-bench-pipeline CONFIG CHANNEL PAYLOAD [SECONDS]\n", stderr);
        return 2;
    }
    double secs = argc == 5 ? atof(argv[4]) : 3.0;
    struct config *cfg = NULL;
    struct hibus_diags d = {0};
    if (config_load(argv[1], &cfg, &d) != HIBUS_OK) {
        hibus_diags_print(&d, stderr);
        return 1;
    }
    hibus_diags_free(&d);
    const struct config_channel *ch = config_find_channel(cfg, argv[2]);
    if (ch == NULL || !ch->has_transform) {
        fprintf(stderr, "hibus-bench-pipeline: no channel \"%s\" with a transform\n", argv[2]);
        return 1;
    }
    size_t len = 0;
    char *body = slurp(argv[3], &len);
    if (body == NULL) {
        perror(argv[3]);
        return 1;
    }
    reader_global_init();
    cpu_budget_set_limit(cfg->request_cpu_ms);
    delivery_set_transform_memory(cfg->transform_memory);

    size_t out = 0, values = run_once(ch, body, len, &out);
    if (values == 0) {
        fprintf(stderr, "hibus-bench-pipeline: the payload is rejected (try hibus map)\n");
        return 1;
    }
    for (double end = cpu_now() + secs / 10; cpu_now() < end;)
        run_once(ch, body, len, &out);

    double best = 1e9, total = 0;
    unsigned long runs = 0;
    for (int s = 0; s < 10; s++) {
        unsigned long k = 0;
        double t0 = cpu_now(), t1;
        do {
            for (int j = 0; j < 16; j++)
                run_once(ch, body, len, &out);
            k += 16;
        } while ((t1 = cpu_now()) - t0 < secs / 10);
        double per = (t1 - t0) / (double)k;
        if (per < best)
            best = per;
        total += t1 - t0;
        runs += k;
    }
    double mean = total / (double)runs;
    printf("%s: %zu values, %zu bytes in; %lu runs: mean %.1f us (%.3f us a value), fastest "
           "slice %.1f us\n",
           ch->name, values, len, runs, mean * 1e6, mean * 1e6 / (double)values, best * 1e6);
    free(body);
    config_free(cfg);
    return 0;
}
