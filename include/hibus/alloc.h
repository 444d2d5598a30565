/*
 * alloc.h - hibus's allocation policy.
 *
 * An allocation whose size hibus chooses (a struct, a copy of a configured name, a
 * header list, a target's answer already capped by limits) cannot usefully fail:
 * no caller can do better than give up, and branches for it are code no test runs.
 * These wrappers abort the process with a message instead, like Redis's zmalloc;
 * systemd restarts it, and nothing is lost because every request is in the
 * transaction log before it is answered.
 *
 * Sizes that come from input (a request body, a payload being read, mapped and
 * written, a body read back from the log) keep failing gracefully: buf_reserve and
 * buf_append return false, and the caller refuses that request. So does the
 * configuration loader, because a reload must never end a serving daemon.
 *
 * hibus_alloc_init() also makes jansson allocate through hibus_xmalloc, so a
 * json_object() or json_pack() never returns NULL for lack of memory (only for a
 * bad format, which is a programming error that tests find).
 */
#ifndef HIBUS_ALLOC_H
#define HIBUS_ALLOC_H

#include <stddef.h>

void *hibus_xmalloc(size_t n);
void *hibus_xcalloc(size_t n, size_t size);
/* realloc of n elements of size each; the product is checked for overflow. */
void *hibus_xreallocarray(void *p, size_t n, size_t size);
char *hibus_xstrdup(const char *s);
char *hibus_xstrndup(const char *s, size_t n);

/* Installs hibus_xmalloc as jansson's allocator; once, before threads start. */
void hibus_alloc_init(void);

#endif
