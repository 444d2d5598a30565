/*
 * tmpdir.h - for unit tests that read files: a private directory under /tmp to run
 * in, files written into it, and its removal. Include after <cmocka.h>.
 */
#ifndef HIBUS_TEST_TMPDIR_H
#define HIBUS_TEST_TMPDIR_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];
static char tmpdir_oldcwd[PATH_MAX];

/* Writes text to rel (relative to the current directory). */
static inline void put(const char *rel, const char *text)
{
    FILE *f = fopen(rel, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static inline int tmpdir_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Makes /tmp/hibus-test-NAME-XXXXXX and moves into it; 0 or -1. */
static inline int tmpdir_enter(const char *name)
{
    if (getcwd(tmpdir_oldcwd, sizeof tmpdir_oldcwd) == NULL)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hibus-test-%s-XXXXXX", name);
    return mkdtemp(tmpdir) != NULL && chdir(tmpdir) == 0 ? 0 : -1;
}

/* Back to where the test started, and the directory removed with all it holds. */
static inline int tmpdir_leave(void)
{
    if (chdir(tmpdir_oldcwd) != 0)
        return -1;
    return nftw(tmpdir, tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
