/*  test_keys - key files, master key and enrollment files */
#include "test_common.h"

#include <sodium.h>
#include <sys/stat.h>

#include "crm_keys.h"

static void
test_keys_z85_round_trip(void **state)
{
    (void)state;
    crm_keypair_t kp;
    char z[CRM_Z85_LEN + 1];
    uint8_t back[CRM_KEY_BYTES];
    crm_keys_generate(&kp);
    crm_keys_to_z85(kp.pub, z);
    assert_int_equal(strlen(z), CRM_Z85_LEN);
    assert_true(crm_keys_from_z85(z, back));
    assert_memory_equal(back, kp.pub, CRM_KEY_BYTES);
    assert_false(crm_keys_from_z85("short", back));
    assert_false(crm_keys_from_z85(NULL, back));
}

static void
test_keys_save_load(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    crm_keypair_t kp, back;
    struct stat st;
    crm_keys_generate(&kp);
    snprintf(path, sizeof path, "%s/k.key", dir);
    assert_int_equal(crm_keys_save(path, &kp, errbuf), CRM_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(crm_keys_load(path, &back, errbuf), CRM_OK);
    assert_memory_equal(&back, &kp, sizeof kp);
    /* never overwritten */
    assert_int_equal(crm_keys_save(path, &kp, errbuf), CRM_ERR_ALREADY_EXISTS);
    test_rmrf(dir);
    free(dir);
}

static void
test_keys_refuse_open_permissions(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    crm_keypair_t kp;
    crm_keys_generate(&kp);
    snprintf(path, sizeof path, "%s/k.key", dir);
    assert_int_equal(crm_keys_save(path, &kp, errbuf), CRM_OK);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(crm_keys_load(path, &kp, errbuf), CRM_ERR_PERMISSION_DENIED);
    assert_non_null(strstr(errbuf, "chmod 600"));
    test_rmrf(dir);
    free(dir);
}

static void
test_keys_refuse_mismatched_pair(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    crm_keypair_t a, b;
    crm_keys_generate(&a);
    crm_keys_generate(&b);
    memcpy(a.pub, b.pub, CRM_KEY_BYTES);
    snprintf(path, sizeof path, "%s/k.key", dir);
    assert_int_equal(crm_keys_save(path, &a, errbuf), CRM_OK);
    assert_int_equal(crm_keys_load(path, &b, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "does not match"));
    test_rmrf(dir);
    free(dir);
}

static void
test_keys_master(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    uint8_t key[CRM_KEY_BYTES], back[CRM_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    snprintf(path, sizeof path, "%s/master.key", dir);
    assert_int_equal(crm_keys_save_master(path, key, errbuf), CRM_OK);
    assert_int_equal(crm_keys_load_master(path, back, errbuf), CRM_OK);
    assert_memory_equal(key, back, sizeof key);
    test_rmrf(dir);
    free(dir);
}

static void
test_enroll_round_trip_and_errors(void **state)
{
    (void)state;
    char *dir = test_tmpdir(), path[512], errbuf[CRM_ERRBUF];
    crm_enroll_t e, back;
    memset(&e, 0, sizeof e);
    strcpy(e.endpoint, "tcp://127.0.0.1:7600");
    strcpy(e.user, "alice");
    crm_keys_generate(&e.keys);
    randombytes_buf(e.server_pub, sizeof e.server_pub);
    snprintf(path, sizeof path, "%s/a.enroll", dir);
    assert_int_equal(crm_enroll_save(path, &e, true, errbuf), CRM_OK);
    assert_int_equal(crm_enroll_load(path, &back, errbuf), CRM_OK);
    assert_memory_equal(&back, &e, sizeof e);
    assert_int_equal(crm_enroll_save(path, &e, true, errbuf), CRM_ERR_ALREADY_EXISTS);
    assert_int_equal(crm_enroll_save(path, &e, false, errbuf), CRM_OK); /* replace allowed */

    /* a file with a missing key and a garbage line */
    FILE *f = fopen(path, "w");
    fputs("endpoint = tcp://x:1\nuser = bob\nthis is not a pair\n", f);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(crm_enroll_load(path, &back, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "line 3"));
    f = fopen(path, "w");
    fputs("endpoint = tcp://x:1\nuser = bob\n", f);
    fclose(f);
    assert_int_equal(crm_enroll_load(path, &back, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "server_public"));
    /* a key given twice: which one counts would be a guess, so neither does */
    assert_int_equal(crm_enroll_save(path, &e, false, errbuf), CRM_OK);
    f = fopen(path, "a");
    fputs("secret = 0000000000000000000000000000000000000000\n", f);
    fclose(f);
    assert_int_equal(crm_enroll_load(path, &back, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "'secret' is given twice"));
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(crm_enroll_load(path, &back, errbuf), CRM_ERR_NOT_FOUND);
    test_rmrf(dir);
    free(dir);
}

static void
test_epoch_proof(void **state)
{
    (void)state;
    crm_keypair_t a, b;
    crm_keys_generate(&a);
    crm_keys_generate(&b);
    uint8_t ka[32], kb[32], proof[CRM_EPOCH_PROOF_BYTES];
    crm_epoch_key(a.sec, ka);
    crm_epoch_key(b.sec, kb);
    crm_epoch_proof(ka, 3, 1000, proof);
    assert_true(crm_epoch_proof_ok(ka, 3, 1000, proof, sizeof proof));
    assert_false(crm_epoch_proof_ok(kb, 3, 1000, proof, sizeof proof)); /* another server */
    assert_false(crm_epoch_proof_ok(ka, 4, 1000, proof, sizeof proof)); /* another epoch */
    assert_false(crm_epoch_proof_ok(ka, 3, 1001, proof, sizeof proof));
    assert_false(crm_epoch_proof_ok(ka, 3, 1000, proof, sizeof proof - 1));
    assert_false(crm_epoch_proof_ok(ka, 3, 1000, NULL, 0));
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_z85_round_trip),
        cmocka_unit_test(test_keys_save_load),
        cmocka_unit_test(test_keys_refuse_open_permissions),
        cmocka_unit_test(test_keys_refuse_mismatched_pair),
        cmocka_unit_test(test_keys_master),
        cmocka_unit_test(test_enroll_round_trip_and_errors),
        cmocka_unit_test(test_epoch_proof),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
