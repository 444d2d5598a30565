/*
 * alloc.c - allocations that abort on failure (see hibus/alloc.h for the policy).
 */
#include "hibus/alloc.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Says what failed and aborts, without allocating: the heap is exhausted. */
static _Noreturn void out_of_memory(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof msg, "hibus: out of memory (allocating %zu bytes)\n", n);
    if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0)
        abort();
    abort();
}

void *hibus_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *hibus_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(n * size);
    return p;
}

void *hibus_xreallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        out_of_memory(SIZE_MAX);
    size_t total = n * size;
    void *q = realloc(p, total ? total : 1);
    if (q == NULL)
        out_of_memory(total);
    return q;
}

char *hibus_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = hibus_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *hibus_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = hibus_xmalloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void hibus_alloc_init(void)
{
    json_set_alloc_funcs(hibus_xmalloc, free);
}
