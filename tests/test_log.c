/*
 * test_log.c - the server log's lines: in the JSON format every line is one valid
 * JSON object whatever the message holds (quotes, controls, bytes that are not
 * UTF-8); in the text format no message can start a line of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SUBSYS "test"
#include "hibus/log.h"

/* Runs LOG_INFO(req, "%s", msg) with stderr sent to a file; returns what was written. */
static char *logged(enum log_format fmt, const char *req, const char *msg)
{
    char path[] = "/tmp/hibus-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    log_setup(LOG_LEVEL_INFO, fmt);
    LOG_INFO(req, "%s", msg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    static char out[8192];
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static void test_json_lines_stay_json(void **state)
{
    (void)state;
    const char *msg =
        "caf\xc3\xa9 \"q\" back\\slash \x1b[31m tab\there\nnext \xff\xfe end \xe2\x82";
    char *line = logged(LOG_FORMAT_JSON, "req-1", msg);
    assert_non_null(strchr(line, '\n'));
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1); /* one line */
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", e.text, line);
    assert_string_equal(json_string_value(json_object_get(o, "req")), "req-1");
    /* the text as it was, but each byte that is not UTF-8 as \xNN */
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "caf\xc3\xa9 \"q\" back\\slash \x1b[31m tab\there\nnext \\xFF\\xFE end "
                        "\\xE2\\x82");
    json_decref(o);
}

static void test_text_lines_stay_one_line(void **state)
{
    (void)state;
    char *line = logged(LOG_FORMAT_TEXT, NULL, "a\r\n2026-01-01 ERROR forged \xff");
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
    assert_non_null(strstr(line, "a\\x0D\\x0A2026-01-01 ERROR forged \\xFF"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_stay_json),
        cmocka_unit_test(test_text_lines_stay_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
