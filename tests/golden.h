/*
 * golden.h - golden-file comparison for the unit tests (header-only, static).
 *
 * golden_check(path, got) compares got with the file's text byte for byte; on a
 * mismatch it prints a line diff (expected with "-", got with "+") and fails.
 *
 * To rewrite golden files after an intended change, run the test with
 *     HIBUS_UPDATE_GOLDEN=1 ./build/tests/test_readers
 * then REVIEW the diff (git diff tests/data/) before committing: a golden file is a
 * claim that its content is correct, not a snapshot of whatever the code does.
 */
#ifndef HIBUS_TESTS_GOLDEN_H
#define HIBUS_TESTS_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whole file into a new NUL-terminated buffer (caller frees), or NULL. */
static char *golden_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        if (len != NULL)
            *len = n;
    }
    return buf;
}

/* Prints lines that differ, position by position (enough for pretty JSON and XML). */
static void golden_diff(const char *exp, const char *got)
{
    int line = 1;
    while (*exp != '\0' || *got != '\0') {
        size_t le = strcspn(exp, "\n"), lg = strcspn(got, "\n");
        if (le != lg || memcmp(exp, got, le) != 0) {
            if (*exp != '\0')
                fprintf(stderr, "  %4d - %.*s\n", line, (int)le, exp);
            if (*got != '\0')
                fprintf(stderr, "  %4d + %.*s\n", line, (int)lg, got);
        }
        exp += le + (exp[le] == '\n');
        got += lg + (got[lg] == '\n');
        line++;
    }
}

/* 0 when equal (or rewritten under HIBUS_UPDATE_GOLDEN=1), -1 with a diff otherwise. */
static int golden_compare(const char *path, const char *got)
{
    const char *update = getenv("HIBUS_UPDATE_GOLDEN");
    if (update != NULL && strcmp(update, "1") == 0) {
        FILE *f = fopen(path, "wb");
        if (f == NULL || fputs(got, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "could not write golden file \"%s\"\n", path);
            return -1;
        }
        fprintf(stderr, "rewrote golden file \"%s\": review it\n", path);
        return 0;
    }
    char *exp = golden_read(path, NULL);
    if (exp == NULL) {
        fprintf(stderr, "golden file \"%s\" is missing; got:\n%s\n", path, got);
        return -1;
    }
    int rc = strcmp(exp, got) == 0 ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "mismatch with golden file \"%s\" (- expected, + got):\n", path);
        golden_diff(exp, got);
    }
    free(exp);
    return rc;
}

#endif
