/*
 * test_buf.c - the growable buffer: appends across growth, NUL termination, take,
 * an empty take, and a reservation too large to make; JSON string literals written
 * exactly as jansson writes them, and text that is not UTF-8 refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "hibus/alloc.h"
#include "hibus/buf.h"
#include "hibus/text.h"

static void test_buf(void **state)
{
    (void)state;
    struct buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_true(buf_append(&b, "abc", 3));
    assert_int_equal(b.len, 3000);
    assert_int_equal(strlen(b.s), 3000);
    assert_true(b.cap > b.len);
    assert_false(buf_reserve(&b, SIZE_MAX - 10)); /* too large: b unchanged */
    assert_int_equal(b.len, 3000);
    size_t len = 0;
    char *s = buf_take(&b, &len);
    assert_int_equal(len, 3000);
    assert_memory_equal(s, "abcabc", 6);
    assert_null(b.s);
    free(s);
    s = buf_take(&b, &len); /* nothing appended: "" */
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    assert_true(buf_append(&b, "", 0));
    assert_string_equal(b.s, "");
    buf_free(&b);
    buf_free(&b);
}

static void label(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vfmt_label(out, size, fmt, ap);
    va_end(ap);
}

/* A label that fits is whole; one that does not ends in "..." within its size. */
static void test_label(void **state)
{
    (void)state;
    char out[12];
    label(out, sizeof out, "row %d", 7);
    assert_string_equal(out, "row 7");
    label(out, sizeof out, "facility %s", "KE-0001-XYZ");
    assert_string_equal(out, "facility...");
    assert_int_equal(strlen(out), sizeof out - 1);
    label(out, sizeof out, "%s", "exactly 11c");
    assert_string_equal(out, "exactly 11c");
}

static void test_alloc(void **state)
{
    (void)state;
    char *d = hibus_xstrndup("facility", 4);
    assert_string_equal(d, "faci");
    free(d);
    d = hibus_xstrdup("");
    assert_string_equal(d, "");
    free(d);
    int *z = hibus_xcalloc(4, sizeof *z);
    assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
    z = hibus_xreallocarray(z, 8, sizeof *z);
    z[7] = 7;
    assert_int_equal(z[7], 7);
    free(z);
}

/* A size that cannot be allocated ends the process with a message, not NULL. */
static void test_alloc_overflow_aborts(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        void *p = hibus_xreallocarray(NULL, SIZE_MAX / 2, 4);
        _exit(p == NULL ? 3 : 4); /* not reached */
    }
    close(fds[1]);
    char msg[128] = "";
    ssize_t n = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    msg[n > 0 ? n : 0] = '\0';
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(msg, "hibus: out of memory"));
}

/* Every byte below 0x80, quotes, backslashes and multi-byte UTF-8, each compared
 * with jansson's own dump of the same string. */
static void test_json_string(void **state)
{
    (void)state;
    char all[128];
    for (int i = 1; i < 128; i++)
        all[i - 1] = (char)i;
    all[127] = '\0';
    const char *cases[] = {"",          "plain",
                           "a\"b\\c/d", "\n\r\t\b\f\x01\x1f\x7f",
                           all,         "Kinshasa \xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x92\x8a end"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct buf b = {0};
        assert_true(buf_append(&b, "[", 1));
        assert_true(buf_json_string(&b, cases[i]));
        json_t *j = json_string(cases[i]);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_non_null(want);
        assert_int_equal(b.len, strlen(want) + 1);
        assert_string_equal(b.s + 1, want);
        free(want);
        json_decref(j);
        buf_free(&b);
    }
    /* Not UTF-8 (a lone continuation byte, an overlong '/', a surrogate): refused, and
     * the buffer is left as it was. */
    const char *bad[] = {"ok\x80", "\xc0\xaf", "\xed\xa0\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct buf b = {0};
        assert_true(buf_append(&b, "{\"k\":", 5));
        assert_false(buf_json_string(&b, bad[i]));
        assert_int_equal(b.len, 5);
        assert_string_equal(b.s, "{\"k\":");
        buf_free(&b);
    }
}

/* text_utf8_invalid_at: one bad sequence at every offset and alignment of a long
 * ASCII run (the scan takes ASCII eight bytes at a time), valid multi-byte
 * characters around it, and the forms UTF-8 forbids. */
static void test_utf8_invalid_at(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        bool valid;
    } seqs[] = {
        {"\xC3\xA9", 2, true},
        {"\xE2\x82\xAC", 3, true},
        {"\xF0\x9F\x98\x80", 4, true},
        {"\xC0\xAF", 2, false},
        {"\xE0\x80\xAF", 3, false},
        {"\xED\xA0\x80", 3, false},
        {"\xF4\x90\x80\x80", 4, false},
        {"\x80", 1, false},
        {"\xFF", 1, false},
        {"\xC3", 1, false},
    };
    char buf[64];
    for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++)
        for (size_t at = 0; at + seqs[k].len <= 40; at++) {
            memset(buf, 'a', 40);
            memcpy(buf + at, seqs[k].bytes, seqs[k].len);
            size_t got = text_utf8_invalid_at(buf, 40);
            size_t want = seqs[k].valid ? 40 : at;
            if (got != want)
                fail_msg("sequence %zu at %zu: got %zu, want %zu", k, at, got, want);
        }
    assert_int_equal(text_utf8_invalid_at("", 0), 0);
    assert_int_equal(text_utf8_invalid_at("abcdefgh\xC3", 9), 8); /* cut at the end */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_buf),
                                       cmocka_unit_test(test_label),
                                       cmocka_unit_test(test_alloc),
                                       cmocka_unit_test(test_json_string),
                                       cmocka_unit_test(test_utf8_invalid_at),
                                       cmocka_unit_test(test_alloc_overflow_aborts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
