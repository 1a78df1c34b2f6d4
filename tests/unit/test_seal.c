/*  test_seal - encryption at rest: sealed values and blind index terms (seal.h) */
#define _GNU_SOURCE /* memmem */
#include "test_common.h"

#include <pthread.h>
#include <sodium.h>
#include <sys/resource.h>

#include "crm_keys.h"
#include "seal.h"
#include "store.h"

static uint8_t s_master[32];

/* VmLck of this process, in kB: memory locked against swapping */
static long
s_locked_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmLck:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void
test_seal_key_once(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    uint8_t other[32];
    assert_false(seal_ready());
    long before = s_locked_kb();
    randombytes_buf(s_master, sizeof s_master);
    assert_int_equal(seal_use_key(s_master, errbuf), CRM_OK);
    assert_true(seal_ready());
    /* the keys' page, out of swap - where it can be seen: ASan and TSan make mlock() a
       no-op that succeeds, and without root the limit may allow nothing */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    struct rlimit rl;
    if (getuid() == 0 || (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur >= 8192))
        assert_true(s_locked_kb() > before);
#else
    (void)before;
#endif
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
    seal_blind(0x637000, "13912345678", 11, a);
    seal_blind(0x637000, "13912345678", 11, b);
    seal_blind(0x637000, "13912345679", 11, c);
    assert_memory_equal(a, b, sizeof a);     /* equal values, equal terms: lookups work */
    assert_memory_not_equal(a, c, sizeof a); /* one digit apart, unrelated terms */
    /* keyed: not a plain hash of the value */
    uint8_t plain[SEAL_BLIND_BYTES];
    crypto_generichash(plain, sizeof plain, (const uint8_t *)"13912345678", 11, NULL, 0);
    assert_memory_not_equal(a, plain, sizeof a);
    /* one value in two indexes, or in the two parts of a pair, has unrelated terms
       (RELIABILITY.md trap 14): long values and short (kept) ones, first use and again */
    const char *values[] = {"13912345678", "同名公司", "ab"};
    for (size_t v = 0; v < sizeof values / sizeof *values; v++)
        for (int again = 0; again < 2; again++) {
            size_t len = strlen(values[v]);
            seal_blind(0x637000, values[v], len, a); /* customer, phone */
            seal_blind(0x636d01, values[v], len, b); /* a pair's first part */
            seal_blind(0x636d02, values[v], len, c); /* ... its second */
            assert_memory_not_equal(a, b, sizeof a);
            assert_memory_not_equal(b, c, sizeof b);
            assert_memory_not_equal(a, c, sizeof a);
            uint8_t d[SEAL_BLIND_BYTES];
            seal_blind(0x636d01, values[v], len, d);
            assert_memory_equal(b, d, sizeof b);
        }
}

/* The terms of short values are kept per thread (seal.c): whatever the
   order and the slots shared, each value gets its own term. 6,000 two-byte
   values (three times the slots) on two fresh threads in opposite orders: the
   same terms on both, each term distinct (another value's kept term handed
   out would repeat one), and the same again from this thread's kept ones. */
#define BLIND_VALUES 6000
typedef struct {
    bool reverse;
    uint8_t (*terms)[SEAL_BLIND_BYTES];
} s_blind_run_t;

static void *
s_blind_all(void *arg)
{
    s_blind_run_t *run = arg;
    for (int k = 0; k < BLIND_VALUES; k++) {
        int i = run->reverse ? BLIND_VALUES - 1 - k : k;
        uint8_t v[2] = {(uint8_t)(i >> 8), (uint8_t)i};
        seal_blind(0x636e00, v, sizeof v, run->terms[i]);
    }
    return NULL;
}

static int
s_cmp_term(const void *a, const void *b)
{
    return memcmp(a, b, SEAL_BLIND_BYTES);
}

static void
test_seal_blind_kept(void **state)
{
    (void)state;
    static uint8_t fwd[BLIND_VALUES][SEAL_BLIND_BYTES], rev[BLIND_VALUES][SEAL_BLIND_BYTES],
        again[BLIND_VALUES][SEAL_BLIND_BYTES];
    s_blind_run_t runs[2] = {{false, fwd}, {true, rev}};
    for (int r = 0; r < 2; r++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, s_blind_all, &runs[r]), 0);
        pthread_join(t, NULL);
    }
    assert_memory_equal(fwd, rev, sizeof fwd);
    s_blind_run_t here = {false, again};
    s_blind_all(&here);
    s_blind_all(&here); /* now from what this thread kept */
    assert_memory_equal(fwd, again, sizeof fwd);
    qsort(again, BLIND_VALUES, SEAL_BLIND_BYTES, s_cmp_term);
    for (int i = 1; i < BLIND_VALUES; i++)
        assert_memory_not_equal(again[i - 1], again[i], SEAL_BLIND_BYTES);
    /* a value of the kept length and one longer (never kept) still differ by one byte */
    uint8_t a[SEAL_BLIND_BYTES], b[SEAL_BLIND_BYTES];
    seal_blind(0x637100, "12345678", 8, a);
    seal_blind(0x637100, "123456789", 9, b);
    assert_memory_not_equal(a, b, sizeof a);
    seal_blind(0x637100, "12345678", 8, b);
    assert_memory_equal(a, b, sizeof a);
}

static void
s_put(store_t *st, store_cf_t cf, const char *key, const char *val)
{
    char errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    if (val)
        store_group_put(g, cf, key, strlen(key), val, strlen(val));
    else
        store_group_delete(g, cf, key, strlen(key));
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
}

static void
s_expect(store_t *st, store_cf_t cf, const char *key, const char *val)
{
    store_val_t v = {0};
    assert_int_equal(store_get(st, cf, key, strlen(key), &v), CRM_OK);
    assert_int_equal(v.len, strlen(val));
    assert_memory_equal(v.data, val, v.len);
    store_val_release(&v);
}

/* crm-admin upgrade's sealing of a store made in clear: every value, once;
   an interrupted run (values sealed, no marker yet) goes on where it stopped */
static void
test_seal_store_upgrade(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    uint64_t n = 0, first = 0;
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_OK); /* no master.key */
    assert_false(store_sealed(st));
    s_put(st, STORE_CF_RECORDS, "k1", "plain one 13912345678");
    s_put(st, STORE_CF_AUDIT, "a1", "plain audit");
    assert_int_equal(store_seal_all(st, dir, &n, errbuf), CRM_ERR_NOT_FOUND); /* no key file */
    assert_false(store_sealed(st));
    store_destroy(&st);

    snprintf(path, sizeof path, "%s/master.key", dir);
    assert_int_equal(crm_keys_save_master(path, s_master, errbuf), CRM_OK);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_false(store_sealed(st)); /* no marker: made in clear */
    assert_int_equal(store_seal_all(st, dir, &first, errbuf), CRM_OK);
    assert_true(first >= 2);
    assert_true(store_sealed(st));
    s_expect(st, STORE_CF_RECORDS, "k1", "plain one 13912345678");
    s_expect(st, STORE_CF_AUDIT, "a1", "plain audit");
    assert_int_equal(store_seal_all(st, dir, &n, errbuf), CRM_OK);
    assert_int_equal(n, 0); /* sealed already */
    /* an interruption before the marker: take it away again */
    s_put(st, STORE_CF_META, "sealed", NULL);
    store_destroy(&st);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_false(store_sealed(st));
    store_val_t raw = {0}; /* read as a store in clear reads it: sealed bytes */
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "k1", 2, &raw), CRM_OK);
    assert_int_equal(raw.len, strlen("plain one 13912345678") + SEAL_OVERHEAD);
    assert_null(memmem(raw.data, raw.len, "1391234", 7));
    store_val_release(&raw);
    s_put(st, STORE_CF_RECORDS, "k3", "written in clear after");
    assert_int_equal(store_seal_all(st, dir, &n, errbuf), CRM_OK);
    assert_int_equal(n, 1); /* only the one still in clear */
    s_expect(st, STORE_CF_RECORDS, "k1", "plain one 13912345678");
    s_expect(st, STORE_CF_RECORDS, "k3", "written in clear after");
    store_destroy(&st);
    /* and it opens sealed from now on */
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_true(store_sealed(st));
    s_expect(st, STORE_CF_AUDIT, "a1", "plain audit");
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* A sealed value that does not open (damage, another key) is a storage
   error: store_get says so, and a scan gets no value (NULL), counted, never
   an empty record */
static void
test_seal_damaged_value(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    snprintf(path, sizeof path, "%s/master.key", dir);
    assert_int_equal(crm_keys_save_master(path, s_master, errbuf), CRM_OK);
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_OK);
    assert_true(store_sealed(st));
    s_put(st, STORE_CF_RECORDS, "k1", "first value");
    s_put(st, STORE_CF_RECORDS, "k2", "second value");
    s_put(st, STORE_CF_RECORDS, "k3", "third value");
    store_val_t mark = {0}; /* the marker holds its own sealed bytes: read as they are */
    assert_int_equal(store_get(st, STORE_CF_META, "sealed", 6, &mark), CRM_OK);
    char *marker = malloc(mark.len);
    size_t mlen = mark.len;
    memcpy(marker, mark.data, mlen);
    store_val_release(&mark);
    /* open it as a store in clear (no marker) to damage k2's sealed bytes */
    s_put(st, STORE_CF_META, "sealed", NULL);
    store_destroy(&st);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_false(store_sealed(st));
    store_val_t raw = {0};
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "k2", 2, &raw), CRM_OK);
    char *bad = malloc(raw.len);
    size_t blen = raw.len;
    memcpy(bad, raw.data, blen);
    store_val_release(&raw);
    bad[blen - 1] ^= 0x01;
    store_group_t *g = store_group_new(st);
    store_group_put(g, STORE_CF_RECORDS, "k2", 2, bad, blen);
    store_group_put(g, STORE_CF_META, "sealed", 6, marker, mlen);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
    store_destroy(&st);
    free(bad);
    free(marker);

    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_true(store_sealed(st));
    s_expect(st, STORE_CF_RECORDS, "k1", "first value");
    uint64_t before = store_read_errors(st, errbuf);
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "k2", 2, &raw), CRM_ERR_STORAGE);
    assert_null(raw.data);
    assert_int_equal(store_read_errors(st, errbuf), before + 1);
    store_iter_t *it = store_iter_new(st, STORE_CF_RECORDS);
    size_t klen, vlen, seen = 0;
    for (store_iter_seek(it, "k", 1); store_iter_valid(it); store_iter_next(it)) {
        const char *k = store_iter_key(it, &klen);
        const char *v = store_iter_value(it, &vlen);
        seen++;
        if (klen == 2 && !memcmp(k, "k2", 2)) { /* no value, not an empty one */
            assert_null(v);
            assert_int_equal(vlen, 0);
        } else {
            assert_non_null(v);
            assert_true(vlen == strlen("first value") || vlen == strlen("third value"));
        }
    }
    assert_int_equal(seen, 3); /* a background pass may step over it */
    assert_int_equal(store_read_errors(st, errbuf), before + 2);
    assert_true(strstr(errbuf, "does not open") != NULL);
    store_iter_destroy(&it);
    s_expect(st, STORE_CF_RECORDS, "k3", "third value");
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* A replica's re-sync swaps in a copy of the primary's database: one sealed
   otherwise than the store it replaces (in clear for a sealed one, sealed
   for one in clear, another key) is refused and the old database serves on */
static void
test_seal_swap_mismatch(void **state)
{
    (void)state;
    char *clear = test_tmpdir(), *sealed = test_tmpdir(), *other = test_tmpdir();
    char path[512], db[512], errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    assert_int_equal(store_open(clear, STORE_CREATE, &st, errbuf), CRM_OK); /* no master.key */
    s_put(st, STORE_CF_RECORDS, "k1", "value in clear");
    store_destroy(&st);
    snprintf(path, sizeof path, "%s/master.key", sealed);
    assert_int_equal(crm_keys_save_master(path, s_master, errbuf), CRM_OK);
    assert_int_equal(store_open(sealed, STORE_CREATE, &st, errbuf), CRM_OK);
    s_put(st, STORE_CF_RECORDS, "k1", "sealed value");
    store_destroy(&st);

    /* a sealed copy for a store in clear */
    assert_int_equal(store_open(clear, 0, &st, errbuf), CRM_OK);
    snprintf(db, sizeof db, "%s/db", sealed);
    assert_int_equal(store_swap_db(st, db, errbuf), CRM_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(errbuf, "the new copy is encrypted and this data dir is in clear"));
    s_expect(st, STORE_CF_RECORDS, "k1", "value in clear");
    store_destroy(&st);
    /* the copy is where it was, whole */
    assert_int_equal(store_open(sealed, 0, &st, errbuf), CRM_OK);
    s_expect(st, STORE_CF_RECORDS, "k1", "sealed value");
    /* a copy in clear for a sealed store */
    snprintf(db, sizeof db, "%s/db", clear);
    assert_int_equal(store_swap_db(st, db, errbuf), CRM_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(errbuf, "the new copy is in clear and this data dir is encrypted"));
    s_expect(st, STORE_CF_RECORDS, "k1", "sealed value");
    /* a copy sealed with another key (a process holds one key: its marker is
       made to be another key's, bytes that do not open with this one) */
    store_t *o = NULL;
    snprintf(path, sizeof path, "%s/master.key", other);
    assert_int_equal(crm_keys_save_master(path, s_master, errbuf), CRM_OK);
    assert_int_equal(store_open(other, STORE_CREATE, &o, errbuf), CRM_OK);
    s_put(o, STORE_CF_META, "sealed", NULL);
    store_destroy(&o);
    assert_int_equal(store_open(other, 0, &o, errbuf), CRM_OK);
    assert_false(store_sealed(o));
    uint8_t mark[64];
    randombytes_buf(mark, sizeof mark);
    store_group_t *g = store_group_new(o);
    store_group_put(g, STORE_CF_META, "sealed", 6, mark, sizeof mark);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
    store_destroy(&o);
    snprintf(db, sizeof db, "%s/db", other);
    assert_int_equal(store_swap_db(st, db, errbuf), CRM_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(errbuf, "encrypted with another master key"));
    s_expect(st, STORE_CF_RECORDS, "k1", "sealed value");
    /* and a copy sealed as it is, with its key, takes its place */
    snprintf(db, sizeof db, "%s/db", sealed);
    char copy[600];
    snprintf(copy, sizeof copy, "%s/db.copy", other);
    store_destroy(&st);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", db, copy);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(store_open(sealed, 0, &st, errbuf), CRM_OK);
    s_put(st, STORE_CF_RECORDS, "k1", "changed after the copy");
    assert_int_equal(store_swap_db(st, copy, errbuf), CRM_OK);
    s_expect(st, STORE_CF_RECORDS, "k1", "sealed value");
    store_destroy(&st);
    test_rmrf(clear);
    test_rmrf(sealed);
    test_rmrf(other);
    free(clear);
    free(sealed);
    free(other);
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
        cmocka_unit_test(test_seal_blind_kept),
        cmocka_unit_test(test_seal_store_upgrade),
        cmocka_unit_test(test_seal_damaged_value),
        cmocka_unit_test(test_seal_swap_mismatch),
    };
    return cmocka_run_group_tests_name("seal", tests, NULL, NULL);
}
