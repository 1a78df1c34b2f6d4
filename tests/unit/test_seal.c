/*  test_seal - encryption at rest: sealed values and blind index terms (seal.h) */
#define _GNU_SOURCE /* memmem */
#include "test_common.h"

#include <sodium.h>

#include "seal.h"

static uint8_t s_master[32];

static void
test_seal_key_once(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    uint8_t other[32];
    assert_false(seal_ready());
    randombytes_buf(s_master, sizeof s_master);
    assert_int_equal(seal_use_key(s_master, errbuf), CRM_OK);
    assert_true(seal_ready());
    assert_int_equal(seal_use_key(s_master, errbuf), CRM_OK); /* the same key again: fine */
    memcpy(other, s_master, sizeof other);
    other[31] ^= 1;
    assert_int_equal(seal_use_key(other, errbuf), CRM_ERR_FAILED_PRECONDITION);
    assert_true(strlen(errbuf) > 0);
}

static void
test_seal_round_trip(void **state)
{
    (void)state;
    const char *val = "13912345678 wang.secret@example.com";
    size_t vlen = strlen(val), plen = 0;
    uint8_t a[128], b[128];
    size_t alen = seal_value(0, "c/1", 3, val, vlen, a);
    size_t blen = seal_value(0, "c/1", 3, val, vlen, b);
    assert_int_equal(alen, vlen + SEAL_OVERHEAD);
    assert_int_equal(blen, alen);
    assert_memory_not_equal(a, b, alen);                       /* a fresh nonce each time */
    assert_null(memmem(a, alen, "1391234", 7));                /* no plaintext in it */
    assert_true(seal_open_value(0, "c/1", 3, a, alen, &plen));
    assert_int_equal(plen, vlen);
    assert_memory_equal(a, val, vlen);
    /* an empty value seals too: nonce and tag only */
    assert_int_equal(seal_value(3, "k", 1, "", 0, a), SEAL_OVERHEAD);
    assert_true(seal_open_value(3, "k", 1, a, SEAL_OVERHEAD, &plen));
    assert_int_equal(plen, 0);
}

static void
test_seal_tamper(void **state)
{
    (void)state;
    const char *val = "a private note";
    size_t vlen = strlen(val), plen;
    uint8_t good[64], t[64];
    size_t len = seal_value(2, "n/7", 3, val, vlen, good);
    /* every single changed byte - nonce, ciphertext, tag - is refused */
    for (size_t i = 0; i < len; i++) {
        memcpy(t, good, len);
        t[i] ^= 0x40;
        assert_false(seal_open_value(2, "n/7", 3, t, len, &plen));
    }
    /* bound to its column family and key: moved elsewhere, it does not open */
    memcpy(t, good, len);
    assert_false(seal_open_value(1, "n/7", 3, t, len, &plen));
    memcpy(t, good, len);
    assert_false(seal_open_value(2, "n/8", 3, t, len, &plen));
    /* truncated, or shorter than nonce and tag */
    memcpy(t, good, len);
    assert_false(seal_open_value(2, "n/7", 3, t, len - 1, &plen));
    assert_false(seal_open_value(2, "n/7", 3, t, SEAL_OVERHEAD - 1, &plen));
    /* and the untouched one still opens */
    memcpy(t, good, len);
    assert_true(seal_open_value(2, "n/7", 3, t, len, &plen));
}

static void
test_seal_long_key(void **state)
{
    (void)state;
    char key[2000];
    uint8_t buf[64];
    size_t plen;
    memset(key, 'k', sizeof key);
    size_t len = seal_value(4, key, sizeof key, "v", 1, buf);
    assert_true(seal_open_value(4, key, sizeof key, buf, len, &plen));
    len = seal_value(4, key, sizeof key, "v", 1, buf);
    key[sizeof key - 1] = 'x'; /* the last byte of a long key still counts */
    assert_false(seal_open_value(4, key, sizeof key, buf, len, &plen));
}

static void
test_seal_blind(void **state)
{
    (void)state;
    uint8_t a[SEAL_BLIND_BYTES], b[SEAL_BLIND_BYTES], c[SEAL_BLIND_BYTES];
    seal_blind("13912345678", 11, a);
    seal_blind("13912345678", 11, b);
    seal_blind("13912345679", 11, c);
    assert_memory_equal(a, b, sizeof a);     /* equal values, equal terms: lookups work */
    assert_memory_not_equal(a, c, sizeof a); /* one digit apart, unrelated terms */
    /* keyed: not a plain hash of the value */
    uint8_t plain[SEAL_BLIND_BYTES];
    crypto_generichash(plain, sizeof plain, (const uint8_t *)"13912345678", 11, NULL, 0);
    assert_memory_not_equal(a, plain, sizeof a);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_key_once), /* first: sets the process's key */
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_tamper),
        cmocka_unit_test(test_seal_long_key),
        cmocka_unit_test(test_seal_blind),
    };
    return cmocka_run_group_tests_name("seal", tests, NULL, NULL);
}
