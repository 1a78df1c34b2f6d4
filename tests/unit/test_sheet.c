/*  test_sheet - client/sheet.c (files as spreadsheets save them) and client/suggest.c
    ("did you mean"): the client's pure functions (issue 12) */
#include "test_common.h"

#include "sheet.h"
#include "suggest.h"

/* A reader over the bytes DATA[0..LEN); the FILE is closed by the caller. */
static FILE *
s_mem(const char *data, size_t len)
{
    FILE *f = fmemopen((void *)data, len, "r");
    assert_non_null(f);
    return f;
}

static void
test_sheet_separator(void **state)
{
    (void)state;
    assert_int_equal(sheet_guess_separator("a,b,c\r\n"), ',');
    assert_int_equal(sheet_guess_separator("a;b;c\r\n"), ';');
    assert_int_equal(sheet_guess_separator("a\tb\tc\n"), '\t');
    assert_int_equal(sheet_guess_separator("name\n"), ',');
    assert_int_equal(sheet_guess_separator(""), ',');
    /* quoted separators do not count */
    assert_int_equal(sheet_guess_separator("\"a,b,c\";d;e\n"), ';');
    assert_int_equal(sheet_guess_separator("\"x;y;z;w\",b,c\n"), ',');
    /* a tie goes to ',' */
    assert_int_equal(sheet_guess_separator("a,b;c\n"), ',');
    /* only the first line counts */
    assert_int_equal(sheet_guess_separator("a;b\nc,d,e,f\n"), ';');
}

static void
test_sheet_to_utf8(void **state)
{
    (void)state;
    bool bad = false;
    /* 北京 in GBK */
    char *s = sheet_to_utf8("GB18030", "\xb1\xb1\xbe\xa9,x", 6, &bad);
    assert_non_null(s);
    assert_string_equal(s, "北京,x");
    assert_false(bad);
    free(s);
    /* a byte that starts no GBK character: U+FFFD, and said */
    s = sheet_to_utf8("GBK", "a\xff" "b", 3, &bad);
    assert_string_equal(s, "a\xef\xbf\xbd" "b");
    assert_true(bad);
    free(s);
    /* a character cut at the end */
    bad = false;
    s = sheet_to_utf8("GB18030", "ok\xb1", 3, &bad);
    assert_string_equal(s, "ok\xef\xbf\xbd");
    assert_true(bad);
    free(s);
    assert_null(sheet_to_utf8("no-such-encoding", "x", 1, &bad));
}

static void
test_sheet_reader_detects(void **state)
{
    (void)state;
    /* a BOM, a UTF-8 line, then GBK: switched at the first line that is not UTF-8 */
    static const char data[] = "\xef\xbb\xbfname,city\r\n张,北京\r\n\xd5\xc5,\xb1\xb1\xbe\xa9\r\nlast";
    FILE *f = s_mem(data, sizeof data - 1);
    char errbuf[256];
    sheet_reader_t *r = sheet_reader_new(f, NULL, errbuf);
    const char *line;
    bool bad;
    assert_non_null(r);
    assert_int_equal(sheet_reader_line(r, &line, &bad), 11);
    assert_string_equal(line, "name,city\r\n"); /* no BOM */
    assert_string_equal(sheet_reader_encoding(r), "UTF-8");
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "张,北京\r\n");
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "张,北京\r\n");
    assert_false(bad);
    assert_string_equal(sheet_reader_encoding(r), "GB18030");
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "last");
    assert_int_equal(sheet_reader_offset(r), (off_t)(sizeof data - 1));
    assert_int_equal(sheet_reader_line(r, &line, &bad), -1);
    sheet_reader_destroy(&r);
    assert_null(r);
    sheet_reader_destroy(&r); /* idempotent */
    fclose(f);
}

/* After the switch to GB18030: a line of Chinese in UTF-8 (files joined) is flagged, not
   decoded garbled; a GBK line that happens to be valid UTF-8 (压萍: d1 b9 c6 bc, "ѹƼ" as
   UTF-8) is GBK all the same. */
static void
test_sheet_reader_mixed(void **state)
{
    (void)state;
    static const char data[] = "name\n\xd5\xc5\n\xd1\xb9\xc6\xbc\n张\n";
    FILE *f = s_mem(data, sizeof data - 1);
    char errbuf[256];
    sheet_reader_t *r = sheet_reader_new(f, NULL, errbuf);
    const char *line;
    bool bad;
    assert_non_null(r);
    assert_true(sheet_reader_line(r, &line, &bad) > 0); /* name */
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "张\n"); /* GBK, switched */
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "压萍\n");
    assert_false(bad);
    assert_false(sheet_reader_mixed(r));
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "张\n"); /* given as it is... */
    assert_true(bad);                   /* ... and flagged */
    assert_true(sheet_reader_mixed(r));
    sheet_reader_destroy(&r);
    fclose(f);
}

static void
test_sheet_reader_forced(void **state)
{
    (void)state;
    static const char gbk[] = "\xb1\xb1\xbe\xa9\n";
    static const char utf8[] = "\xe5\x8c\x97\n"; /* 北 */
    char errbuf[256];
    const char *line;
    bool bad;
    /* named GBK */
    FILE *f = s_mem(gbk, sizeof gbk - 1);
    sheet_reader_t *r = sheet_reader_new(f, "gbk", errbuf);
    assert_non_null(r);
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_string_equal(line, "北京\n");
    assert_string_equal(sheet_reader_encoding(r), "gbk");
    sheet_reader_destroy(&r);
    fclose(f);
    /* named UTF-8: GBK bytes are bad bytes, never a switch */
    f = s_mem(gbk, sizeof gbk - 1);
    r = sheet_reader_new(f, "utf-8", errbuf);
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_true(bad);
    assert_string_equal(sheet_reader_encoding(r), "UTF-8");
    sheet_reader_destroy(&r);
    fclose(f);
    /* detected UTF-8 stays UTF-8 */
    f = s_mem(utf8, sizeof utf8 - 1);
    r = sheet_reader_new(f, NULL, errbuf);
    assert_true(sheet_reader_line(r, &line, &bad) > 0);
    assert_false(bad);
    assert_string_equal(line, "北\n");
    sheet_reader_destroy(&r);
    fclose(f);
    /* an encoding iconv does not know */
    f = s_mem(utf8, sizeof utf8 - 1);
    assert_null(sheet_reader_new(f, "klingon-8", errbuf));
    assert_non_null(strstr(errbuf, "unknown encoding 'klingon-8'"));
    fclose(f);
}

static void
test_suggest(void **state)
{
    (void)state;
    static const char *const cmds[] = {"activity", "customer", "deal", "export", "import",
                                       "show", "list", "search", "stage", "stages"};
    const size_t n = sizeof cmds / sizeof cmds[0];
    assert_int_equal(suggest_distance("show", "show"), 0);
    assert_int_equal(suggest_distance("shwo", "show"), 1); /* a swap is one edit */
    assert_int_equal(suggest_distance("custmer", "customer"), 1);
    assert_int_equal(suggest_distance("", "abc"), 3);
    assert_int_equal(suggest_distance("kitten", "sitting"), 3);
    assert_string_equal(suggest_nearest("custmer", cmds, n), "customer");
    assert_string_equal(suggest_nearest("shwo", cmds, n), "show");
    assert_string_equal(suggest_nearest("stge", cmds, n), "stage");
    assert_string_equal(suggest_nearest("exprot", cmds, n), "export");
    assert_string_equal(suggest_nearest("cust", cmds, n), "customer"); /* an abbreviation */
    assert_null(suggest_nearest("xyz", cmds, n));          /* nothing near */
    assert_null(suggest_nearest("ab", cmds, n));           /* too short to guess */
    assert_null(suggest_nearest("show", cmds, n));         /* itself is no suggestion */
    assert_null(suggest_nearest("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                                cmds, n));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sheet_separator),
        cmocka_unit_test(test_sheet_to_utf8),
        cmocka_unit_test(test_sheet_reader_detects),
        cmocka_unit_test(test_sheet_reader_forced),
        cmocka_unit_test(test_sheet_reader_mixed),
        cmocka_unit_test(test_suggest),
    };
    return cmocka_run_group_tests_name("sheet", tests, NULL, NULL);
}
