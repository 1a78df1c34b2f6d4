/*  test_utf8 - UTF-8 validation and display width */
#include "test_common.h"

#include "crm_utf8.h"

#include <utf8proc.h>

static void
test_utf8_valid_text(void **state)
{
    (void)state;
    const char *s = "张伟 北京科技有限公司 café\tok\n";
    assert_true(crm_utf8_valid(s, strlen(s), NULL));
    assert_int_equal(crm_utf8_length("张伟", strlen("张伟")), 2);
}

/* Invisible characters go; zero-width joiners (emoji, scripts) and visible text stay. */
static void
test_utf8_strip_invisible(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\u674e\u200b\u5a1c", "\u674e\u5a1c"},             /* 李<ZWSP>娜 */
        {"\ufeffAcme\u2060 Ltd\u00ad", "Acme Ltd"},           /* BOM, word joiner, soft hyphen */
        {"\u200eabc\u200f\u061c", "abc"},                     /* direction marks */
        {"\U0001F468\u200d\U0001F469", "\U0001F468\u200d\U0001F469"}, /* ZWJ in emoji stays */
        {"\u0643\u200c\u0644", "\u0643\u200c\u0644"},    /* ZWNJ in Arabic stays */
        {"\u2764\ufe0f", "\u2764\ufe0f"},                  /* emoji presentation stays */
        {"a\u200db", "ab"},                     /* joiners after Latin or Chinese: nothing */
        {"\u674e\u200c\u5a1c\ufe00", "\u674e\u5a1c"},    /* 李<ZWNJ>娜<VS1> */
        {"\u200dx", "x"},                                     /* ... nor at the start */
        {"\u674e\U000E0041\u5a1c", "\u674e\u5a1c"},       /* tag characters */
        {"\u4e19\uffa0\u1160\U0001BCA0\u4e01", "\u4e19\u4e01"}, /* fillers, format */
        {"\u4e19\ufff9\U00013430\u4e01", "\u4e19\u4e01"}, /* annotation, hieroglyph joiner */
        {"\u0600\u0661", "\u0600\u0661"},                  /* an Arabic number sign shows */
        {"\u2014\u2026 \u00e9", "\u2014\u2026 \u00e9"},     /* dash, ellipsis, é: visible */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        size_t removed = crm_utf8_strip_invisible(buf);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(removed, strlen(cases[i].in) - strlen(cases[i].out));
    }
    assert_true(crm_utf8_is_invisible(0x200b));
    assert_true(crm_utf8_is_invisible(0xe0041));
    assert_false(crm_utf8_is_invisible(0x200d)); /* judged by what it follows */
    assert_false(crm_utf8_is_invisible('a'));
    assert_false(crm_utf8_is_invisible(0x3000)); /* the ideographic space shows */
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

/* Text that cannot lie: C0, DEL, C1 (U+009B), bidi overrides and isolates, line
   separators are refused; multi-line text may hold newline and tab only. */
static void
test_utf8_text_controls(void **state)
{
    (void)state;
    static const char *const never[] = {
        "a\x1b[2Jb", "a\rb", "a\x7f", "a\xc2\x9b" "31mb", "a\xc2\x85", "x\xe2\x80\xae" "evil",
        "x\xe2\x81\xa6y", "x\xe2\x81\xa9", "x\xe2\x80\xaay", "x\xe2\x80\xa8y",
    };
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        size_t bad = 99;
        int cp = 0;
        assert_false(crm_utf8_text_ok(never[i], strlen(never[i]), CRM_TEXT_LINE, &bad, &cp));
        assert_false(crm_utf8_text_ok(never[i], strlen(never[i]), CRM_TEXT_MULTILINE, NULL, NULL));
        assert_true(bad >= 1);
        assert_true(crm_utf8_is_control(cp));
    }
    int cp = 0;
    size_t bad = 0;
    assert_false(crm_utf8_text_ok("a\xc2\x9b" "b", 4, CRM_TEXT_LINE, &bad, &cp));
    assert_int_equal(cp, 0x9b);
    assert_int_equal(bad, 1);
    assert_false(crm_utf8_text_ok("line\nline", 9, CRM_TEXT_LINE, NULL, NULL));
    assert_false(crm_utf8_text_ok("tab\there", 8, CRM_TEXT_LINE, NULL, NULL));
    assert_true(crm_utf8_text_ok("line\nline\tx", 11, CRM_TEXT_MULTILINE, NULL, NULL));
    assert_false(crm_utf8_text_ok("a\0b", 3, CRM_TEXT_MULTILINE, &bad, &cp)); /* by length */
    assert_int_equal(bad, 1);
    /* what stays allowed: CJK, accents, Arabic with its marks, emoji, LRM */
    const char *fine = "张伟 café مرحبا 😀 \xe2\x80\x8e";
    assert_true(crm_utf8_text_ok(fine, strlen(fine), CRM_TEXT_LINE, NULL, NULL));
}

static void
test_utf8_has_visible(void **state)
{
    (void)state;
    static const char *const blank[] = {
        "", "   ", "\xe2\x80\x8b", "\xe2\x80\x8b\xe2\x80\x8c\xe2\x80\x8d", "\xc2\xa0",
        "\xe3\x80\x80", "\xe3\x85\xa4", "\xef\xbb\xbf", "\xe2\xa0\x80", "\xcc\x81",
    };
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++)
        assert_false(crm_utf8_has_visible(blank[i], strlen(blank[i])));
    assert_true(crm_utf8_has_visible("\xe2\x80\x8b张", strlen("\xe2\x80\x8b张")));
    assert_true(crm_utf8_has_visible(" a ", 3));
    assert_true(crm_utf8_has_visible("-", 1));
}

static void
test_utf8_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *keep, *want;
    } cases[] = {
        {"a\x1b[31mred", NULL, "a\\x1b[31mred"},
        {"csi\xc2\x9b" "2J", NULL, "csi\\u009b2J"},
        {"\xe2\x80\xae" "gnp.exe", NULL, "\\u202egnp.exe"},
        {"two\nlines\tand\r", NULL, "two\\nlines\\tand\\r"},
        {"two\nlines\tkept", "\n\t", "two\nlines\tkept"},
        {"bad\xff", NULL, "bad\\xff"},
        {"张伟 café", NULL, "张伟 café"},
        {"\x7f", NULL, "\\x7f"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = crm_utf8_escape(cases[i].in, strlen(cases[i].in), cases[i].keep);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
    char *nul = crm_utf8_escape("a\0b", 3, NULL);
    assert_string_equal(nul, "a\\x00b");
    free(nul);
}

static void
test_utf8_distance(void **state)
{
    (void)state;
    assert_int_equal(crm_utf8_distance("李娜娜", "李娜娜", 2), 0);
    assert_int_equal(crm_utf8_distance("王小明", "王晓明", 2), 1);   /* one character */
    assert_int_equal(crm_utf8_distance("王小明", "王明", 2), 1);     /* one left out */
    assert_int_equal(crm_utf8_distance("zhang wei", "zhang wie", 2), 2);
    assert_int_equal(crm_utf8_distance("abcdef", "uvwxyz", 2), 3);  /* past MAX: MAX + 1 */
    assert_int_equal(crm_utf8_distance("a", "abcdef", 1), 2);       /* lengths alone say so */
    assert_int_equal(crm_utf8_distance("", "", 0), 0);
}

/* The fold's ASCII path gives what utf8proc gives (NFKC case folding) for every
   ASCII character, and text with any other character still goes through utf8proc. */
static void
test_utf8_fold(void **state)
{
    (void)state;
    const int flags = UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                      UTF8PROC_CASEFOLD;
    char all[128];
    for (int c = 1; c < 128; c++)
        all[c - 1] = (char)c;
    all[127] = '\0';
    const char *texts[] = {all, "Customer 12345", "ZHANG Wei & Co. <x@Y.com>", "",
                           "Café ÉCOLE", "张伟 ＡＢＣ", "Straße", "ﬁle Ⅻ"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        utf8proc_uint8_t *want = NULL;
        assert_true(utf8proc_map((const utf8proc_uint8_t *)texts[i], 0, &want, flags) >= 0);
        char *got = crm_utf8_fold(texts[i]);
        assert_string_equal(got, (const char *)want);
        free(got);
        free(want);
    }
    char *f = crm_utf8_fold("ＡＢＣ Straße");
    assert_string_equal(f, "abc strasse"); /* full-width letters and ß: utf8proc's work */
    free(f);
}

static int
s_key_cmp(crm_collator_t *c, const char *a, const char *b)
{
    size_t la, lb;
    char *ka = crm_collate_key(c, a, &la), *kb = crm_collate_key(c, b, &lb);
    int r = memcmp(ka, kb, la < lb ? la : lb);
    if (!r)
        r = la < lb ? -1 : la > lb;
    free(ka);
    free(kb);
    return r;
}

/* Sort keys: ASCII text by its bytes without case, then the common Chinese
   characters in pinyin order (by their bytes in UTF-8, Unicode's radical order,
   阿 and 陈 would come last), then the rest; accents, case and full-width forms
   do not count. */
static void
test_utf8_collate(void **state)
{
    (void)state;
    crm_collator_t *c = crm_collator_new();
    assert_non_null(c);
    const char *order[] = {"", "10", "9", "apple", "Banana", "zoe", "阿里", "北京", "陈静",
                           "广州", "李娜", "上海", "深圳", "王芳", "张伟", "赵磊"};
    for (size_t i = 1; i < sizeof order / sizeof *order; i++) {
        print_message("# %s < %s\n", order[i - 1], order[i]);
        assert_true(s_key_cmp(c, order[i - 1], order[i]) < 0);
    }
    /* the rarer characters and other scripts after the common ones */
    const char *after[] = {"亍", "䶮", "αβ", "Ωmega"};
    for (size_t i = 0; i < sizeof after / sizeof *after; i++)
        assert_true(s_key_cmp(c, "赵磊", after[i]) < 0);
    assert_int_equal(s_key_cmp(c, "Émile", "emile"), 0);
    assert_int_equal(s_key_cmp(c, "Ａpple", "APPLE"), 0);
    assert_true(s_key_cmp(c, "zhang", "张") < 0);
    crm_collator_free(&c);
    assert_null(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid_text),
        cmocka_unit_test(test_utf8_rejects_bad_bytes),
        cmocka_unit_test(test_utf8_strip_invisible),
        cmocka_unit_test(test_utf8_width),
        cmocka_unit_test(test_utf8_text_controls),
        cmocka_unit_test(test_utf8_has_visible),
        cmocka_unit_test(test_utf8_escape),
        cmocka_unit_test(test_utf8_distance),
        cmocka_unit_test(test_utf8_fold),
        cmocka_unit_test(test_utf8_collate),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
