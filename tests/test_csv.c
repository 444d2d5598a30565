/*
 * test_csv.c - the shared RFC 4180 tokenizer: fields and positions, quoting, line
 * breaks of every kind, trimming, and each error with where it is reported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hibus/csv.h"

static void test_records(void **state)
{
    (void)state;
    const char *s = "a,\"b, \"\"c\"\"\r\nd\",e\r\n\n x ,y\rlast";
    struct csv c;
    csv_init(&c, s, strlen(s), false, 0);
    assert_int_equal(csv_next(&c), 1);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.f[0].s, "a");
    assert_string_equal(c.f[1].s, "b, \"c\"\r\nd");
    assert_int_equal(c.f[1].len, 9);
    assert_int_equal(c.f[2].line, 2);
    assert_int_equal(c.f[2].col, 4);
    assert_int_equal(csv_next(&c), 1); /* the empty line */
    assert_int_equal(c.n, 1);
    assert_true(csv_blank(&c));
    assert_int_equal(csv_next(&c), 1);
    assert_int_equal(c.rec_line, 4);
    assert_string_equal(c.f[0].s, " x "); /* as written */
    assert_int_equal(csv_next(&c), 1);    /* after a lone CR */
    assert_int_equal(c.rec_line, 5);
    assert_string_equal(c.f[0].s, "last");
    assert_int_equal(csv_next(&c), 0);
    csv_free(&c);

    /* trimmed, as DHIS2's CsvReader does, also around a quoted field */
    const char *t = "  a\t, \"b c\" ,\n";
    csv_init(&c, t, strlen(t), true, 0);
    assert_int_equal(csv_next(&c), 1);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.f[0].s, "a");
    assert_string_equal(c.f[1].s, "b c");
    assert_string_equal(c.f[2].s, "");
    csv_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    const char *s = "ok,1\nx\"y,2\n\"q\"z,3\nlong,123456\nfine,4\n\"open,5\n";
    struct csv c;
    csv_init(&c, s, strlen(s), false, 5);
    assert_int_equal(csv_next(&c), 1);
    assert_int_equal(csv_next(&c), -1);
    assert_int_equal(c.err, CSV_E_QUOTE_IN_FIELD);
    assert_int_equal(c.err_line, 2);
    assert_int_equal(c.err_col, 2);
    assert_int_equal(csv_next(&c), -1);
    assert_int_equal(c.err, CSV_E_AFTER_QUOTE);
    assert_int_equal(c.err_line, 3);
    assert_int_equal(c.err_col, 4);
    assert_int_equal(csv_next(&c), -1);
    assert_int_equal(c.err, CSV_E_TOO_LONG);
    assert_int_equal(c.err_len, 6);
    assert_int_equal(c.err_col, 6);
    assert_int_equal(csv_next(&c), 1); /* reading goes on after a bad line */
    assert_string_equal(c.f[0].s, "fine");
    assert_int_equal(csv_next(&c), -2);
    assert_int_equal(c.err, CSV_E_UNTERMINATED);
    assert_int_equal(c.err_line, 6);
    assert_int_equal(c.err_col, 1);
    csv_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
