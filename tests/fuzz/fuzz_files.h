/*
 * fuzz_files.h - what the fuzz targets that need a configuration tree share: a
 * directory with channels/ and mappings/, and writing a file into it. Aborts on any
 * failure: a target that cannot set itself up must not report findings.
 */
#ifndef HIBUS_FUZZ_FILES_H
#define HIBUS_FUZZ_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A new tree under base (named for this process) into dir[len]. */
static inline void fuzz_tree(const char *base, const char *what, char *dir, size_t len)
{
    char sub[600];
    snprintf(dir, len, "%s/hibus-fuzz-%s-%d", base, what, (int)getpid());
    snprintf(sub, sizeof sub, "%s/channels", dir);
    if ((mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0) ||
        (mkdir(sub, 0700) != 0 && access(sub, W_OK) != 0))
        abort();
    snprintf(sub, sizeof sub, "%s/mappings", dir);
    if (mkdir(sub, 0700) != 0 && access(sub, W_OK) != 0)
        abort();
}

static inline void fuzz_put(const char *dir, const char *name, const void *data, size_t len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len))
        abort();
    fclose(f);
}

#endif
