/*  test_mem - the memory trimmer gives back what another thread freed */
#include "test_common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crm_mem.h"

#define BLOCKS 1500000 /* 1.5M blocks of 100 bytes: about 170 MB in one thread's arena */

static long
s_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Fill this thread's arena, keep one block at its top (so the arena cannot
   shrink by itself), free the rest: the memory stays resident until trimmed. */
static void *
s_churn(void *arg)
{
    void **blocks = malloc(BLOCKS * sizeof *blocks);
    for (size_t i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(100);
        memset(blocks[i], 1, 100);
    }
    void *pin = malloc(100);
    for (size_t i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    free(blocks);
    *(void **)arg = pin;
    return NULL;
}

static void
test_trimmer_gives_back(void **state)
{
    (void)state;
    crm_mem_trimmer_t *t = crm_mem_trimmer_start(50);
    if (!t) { /* a sanitizer's allocator: nothing to do, by design */
        crm_mem_trimmer_stop(&t);
        assert_null(t);
        return;
    }
    crm_mem_trimmer_stop(&t); /* stops and joins before its first pass */
    assert_null(t);
    void *pin = NULL;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_churn, &pin), 0);
    pthread_join(th, NULL);
    long before = s_rss_kb();
    t = crm_mem_trimmer_start(50);
    assert_non_null(t);
    long after = before;
    for (int i = 0; i < 40 && before - after < 100000; i++) { /* up to 2 s */
        usleep(50000);
        after = s_rss_kb();
    }
    crm_mem_trimmer_stop(&t);
    assert_null(t);
    free(pin);
    print_message("RSS %ld kB -> %ld kB\n", before, after);
    assert_true(before - after >= 100000); /* at least 100 MB of the 170 given back */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trimmer_gives_back),
    };
    return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
