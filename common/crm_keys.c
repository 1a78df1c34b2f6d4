/*  crm_keys - Curve keypairs, key files and enrollment files */
#include "crm_keys.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

void
crm_keys_generate(crm_keypair_t *kp)
{
    /* CurveZMQ keys are crypto_box (X25519) keys. */
    CRM_ASSERT(crypto_box_keypair(kp->pub, kp->sec) == 0);
}

void
crm_keys_to_z85(const uint8_t key[CRM_KEY_BYTES], char out[CRM_Z85_LEN + 1])
{
    CRM_ASSERT(zmq_z85_encode(out, key, CRM_KEY_BYTES) != NULL);
}

void
crm_keys_to_z85_safe(const uint8_t *key, char out[CRM_Z85_LEN + 1])
{
    if (key)
        crm_keys_to_z85(key, out);
    else
        out[0] = '\0';
}

bool
crm_keys_from_z85(const char *z85, uint8_t key[CRM_KEY_BYTES])
{
    if (!z85 || strlen(z85) != CRM_Z85_LEN)
        return false;
    return zmq_z85_decode(key, z85) != NULL;
}

static crm_err_t
s_get_key(const crm_kv_t *kv, const char *path, const char *name, uint8_t key[CRM_KEY_BYTES],
          char *errbuf)
{
    if (!crm_keys_from_z85(crm_kv_get(kv, name), key)) {
        snprintf(errbuf, CRM_ERRBUF, "'%s': missing or malformed '%s' key (40 Z85 characters)",
                 path, name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

/* The public half must be derived from the secret half. */
static crm_err_t
s_check_pair(const crm_keypair_t *kp, const char *path, char *errbuf)
{
    uint8_t derived[CRM_KEY_BYTES];
    if (crypto_scalarmult_base(derived, kp->sec) != 0 ||
        sodium_memcmp(derived, kp->pub, CRM_KEY_BYTES) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "'%s': public key does not match the secret key", path);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

crm_err_t
crm_keys_save(const char *path, const crm_keypair_t *kp, char *errbuf)
{
    char pub[CRM_Z85_LEN + 1], sec[CRM_Z85_LEN + 1];
    crm_keys_to_z85(kp->pub, pub);
    crm_keys_to_z85(kp->sec, sec);
    const char *pairs[] = {"public", pub, "secret", sec, NULL};
    crm_err_t rc = crm_kv_save(path, "# OneView Curve keypair: keep private (mode 0600)\n", pairs,
                               true, true, errbuf);
    sodium_memzero(sec, sizeof sec);
    return rc;
}

crm_err_t
crm_keys_load(const char *path, crm_keypair_t *kp, char *errbuf)
{
    crm_kv_t *kv = NULL;
    crm_err_t rc = crm_kv_load(path, true, &kv, errbuf);
    if (rc == CRM_OK && (rc = s_get_key(kv, path, "public", kp->pub, errbuf)) == CRM_OK &&
        (rc = s_get_key(kv, path, "secret", kp->sec, errbuf)) == CRM_OK)
        rc = s_check_pair(kp, path, errbuf);
    crm_kv_destroy(&kv);
    if (rc != CRM_OK)
        sodium_memzero(kp, sizeof *kp);
    return rc;
}

crm_err_t
crm_keys_save_master(const char *path, const uint8_t key[CRM_KEY_BYTES], char *errbuf)
{
    char z[CRM_Z85_LEN + 1];
    crm_keys_to_z85(key, z);
    const char *pairs[] = {"master", z, NULL};
    crm_err_t rc = crm_kv_save(
        path, "# OneView master key for encryption at rest: keep private (mode 0600)\n", pairs,
        true, true, errbuf);
    sodium_memzero(z, sizeof z);
    return rc;
}

crm_err_t
crm_keys_load_master(const char *path, uint8_t key[CRM_KEY_BYTES], char *errbuf)
{
    crm_kv_t *kv = NULL;
    crm_err_t rc = crm_kv_load(path, true, &kv, errbuf);
    if (rc == CRM_OK)
        rc = s_get_key(kv, path, "master", key, errbuf);
    crm_kv_destroy(&kv);
    return rc;
}

crm_err_t
crm_enroll_save(const char *path, const crm_enroll_t *e, bool exclusive, char *errbuf)
{
    char spub[CRM_Z85_LEN + 1], pub[CRM_Z85_LEN + 1], sec[CRM_Z85_LEN + 1];
    crm_keys_to_z85(e->server_pub, spub);
    crm_keys_to_z85(e->keys.pub, pub);
    crm_keys_to_z85(e->keys.sec, sec);
    const char *pairs[] = {"endpoint", e->endpoint, "server_public", spub, "user", e->user,
                           "public",   pub,         "secret",        sec,  NULL};
    crm_err_t rc = crm_kv_save(path,
                               "# OneView enrollment: install with 'crm enroll FILE'.\n"
                               "# It holds a secret key: keep it private (mode 0600).\n",
                               pairs, true, exclusive, errbuf);
    sodium_memzero(sec, sizeof sec);
    return rc;
}

crm_err_t
crm_enroll_load(const char *path, crm_enroll_t *e, char *errbuf)
{
    crm_kv_t *kv = NULL;
    memset(e, 0, sizeof *e);
    crm_err_t rc = crm_kv_load(path, true, &kv, errbuf);
    if (rc != CRM_OK)
        goto cleanup;
    const char *endpoint = crm_kv_get(kv, "endpoint");
    const char *user = crm_kv_get(kv, "user");
    if (!endpoint || !*endpoint || strlen(endpoint) >= sizeof e->endpoint) {
        snprintf(errbuf, CRM_ERRBUF, "'%s': missing or too long 'endpoint'", path);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    if (!user || !*user || strlen(user) >= sizeof e->user) {
        snprintf(errbuf, CRM_ERRBUF, "'%s': missing or too long 'user'", path);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    strcpy(e->endpoint, endpoint);
    strcpy(e->user, user);
    if ((rc = s_get_key(kv, path, "server_public", e->server_pub, errbuf)) != CRM_OK ||
        (rc = s_get_key(kv, path, "public", e->keys.pub, errbuf)) != CRM_OK ||
        (rc = s_get_key(kv, path, "secret", e->keys.sec, errbuf)) != CRM_OK)
        goto cleanup;
    rc = s_check_pair(&e->keys, path, errbuf);
cleanup:
    crm_kv_destroy(&kv);
    if (rc != CRM_OK)
        sodium_memzero(e, sizeof *e);
    return rc;
}

/* ==== Epoch proofs ==== */

void
crm_epoch_key(const uint8_t server_secret[CRM_KEY_BYTES], uint8_t key[32])
{
    static const char what[] = "OneView replication epoch proof key";
    crypto_generichash(key, 32, (const uint8_t *)what, sizeof what - 1, server_secret,
                       CRM_KEY_BYTES);
}

void
crm_epoch_proof(const uint8_t key[32], uint64_t epoch, uint64_t start,
                uint8_t out[CRM_EPOCH_PROOF_BYTES])
{
    uint8_t msg[16];
    for (int i = 0; i < 8; i++) {
        msg[i] = (uint8_t)(epoch >> (56 - 8 * i));
        msg[8 + i] = (uint8_t)(start >> (56 - 8 * i));
    }
    crypto_generichash(out, CRM_EPOCH_PROOF_BYTES, msg, sizeof msg, key, 32);
}

bool
crm_epoch_proof_ok(const uint8_t key[32], uint64_t epoch, uint64_t start, const uint8_t *proof,
                   size_t len)
{
    uint8_t want[CRM_EPOCH_PROOF_BYTES];
    crm_epoch_proof(key, epoch, start, want);
    return len == CRM_EPOCH_PROOF_BYTES && proof && crypto_verify_32(want, proof) == 0;
}
