/*  test_utf8 - UTF-8 validation and display width */
#include "test_common.h"

#include "crm_utf8.h"

static void
test_utf8_valid_text(void **state)
{
    (void)state;
    const char *s = "张伟 北京科技有限公司 café\tok\n";
    assert_true(crm_utf8_valid(s, strlen(s), NULL));
    assert_int_equal(crm_utf8_length("张伟", strlen("张伟")), 2);
}

static void
test_utf8_rejects_bad_bytes(void **state)
{
    (void)state;
    size_t bad = 99;
    assert_false(crm_utf8_valid("ab\xff", 3, &bad));
    assert_int_equal(bad, 2);
    assert_false(crm_utf8_valid("\xe5\xbc", 2, &bad)); /* truncated 张 */
    assert_int_equal(bad, 0);
    assert_false(crm_utf8_valid("a\0b", 3, &bad)); /* embedded NUL */
    assert_int_equal(bad, 1);
    assert_false(crm_utf8_valid("a\x1b[31m", 6, &bad)); /* terminal escape */
    assert_false(crm_utf8_valid("\xc0\xaf", 2, &bad));  /* overlong '/' */
    assert_false(crm_utf8_valid("\xed\xa0\x80", 3, &bad)); /* surrogate */
}

static void
test_utf8_width(void **state)
{
    (void)state;
    assert_int_equal(crm_utf8_width("abc"), 3);
    assert_int_equal(crm_utf8_width("张伟"), 4);
    assert_int_equal(crm_utf8_width("a张"), 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid_text),
        cmocka_unit_test(test_utf8_rejects_bad_bytes),
        cmocka_unit_test(test_utf8_width),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
