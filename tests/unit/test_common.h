/*  test_common - what every cmocka unit test file includes */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary directory; caller frees the string. */
static inline char *
test_tmpdir(void)
{
    char *t = strdup("/tmp/crm-unit-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

static inline void
test_rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#endif
