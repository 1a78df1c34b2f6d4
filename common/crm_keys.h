/*  =========================================================================
    crm_keys - Curve keypairs, key files and enrollment files (libsodium)

    Owns:      key generation, Z85 text form, the server key file, the master
               key file and the enrollment file a user receives.
    Must not:  log or print secret keys; leave secrets in freed memory.
    =========================================================================
*/
#ifndef CRM_KEYS_H
#define CRM_KEYS_H
#include <stdbool.h>
#include <stdint.h>

#include "crm_kv.h"

#define CRM_KEY_BYTES 32
#define CRM_Z85_LEN 40 /* characters, without the terminating NUL */

typedef struct {
    uint8_t pub[CRM_KEY_BYTES]; /* Curve25519 public key */
    uint8_t sec[CRM_KEY_BYTES]; /* Curve25519 secret key */
} crm_keypair_t;

/* What `crm-admin user add` hands to a user and `crm enroll` installs. */
typedef struct {
    char endpoint[256];                /* where the server listens */
    char user[64];                     /* user name, informative */
    uint8_t server_pub[CRM_KEY_BYTES]; /* the server's long-term public key */
    crm_keypair_t keys;                /* the user's own keypair */
} crm_enroll_t;

/* Fill KP with a fresh random Curve keypair. */
void crm_keys_generate(crm_keypair_t *kp);
/* Z85 text of a 32-byte key into out[41]. */
void crm_keys_to_z85(const uint8_t key[CRM_KEY_BYTES], char out[CRM_Z85_LEN + 1]);
/* Same, writing "" when KEY is NULL. */
void crm_keys_to_z85_safe(const uint8_t *key, char out[CRM_Z85_LEN + 1]);
/* Parse a 40-character Z85 key; false if malformed. */
bool crm_keys_from_z85(const char *z85, uint8_t key[CRM_KEY_BYTES]);

/* Key file: "public" and "secret" (0600). The public half must match the secret. */
crm_err_t crm_keys_save(const char *path, const crm_keypair_t *kp, char *errbuf);
crm_err_t crm_keys_load(const char *path, crm_keypair_t *kp, char *errbuf);

/* Master key file for encryption at rest: 32 random bytes (0600). */
crm_err_t crm_keys_save_master(const char *path, const uint8_t key[CRM_KEY_BYTES], char *errbuf);
crm_err_t crm_keys_load_master(const char *path, uint8_t key[CRM_KEY_BYTES], char *errbuf);

/* Enrollment file (0600). EXCLUSIVE refuses to replace an existing file. */
/* Replication's epochs: a replica shares the primary's server key pair, so both can make
   (and check) a proof that an epoch claim comes from a holder of that key, not only of a
   replica's enrollment. KEY is crm_epoch_key() of the server's secret key. */
#define CRM_EPOCH_PROOF_BYTES 32
void crm_epoch_key(const uint8_t server_secret[CRM_KEY_BYTES], uint8_t key[32]);
void crm_epoch_proof(const uint8_t key[32], uint64_t epoch, uint64_t start,
                     uint8_t out[CRM_EPOCH_PROOF_BYTES]);
bool crm_epoch_proof_ok(const uint8_t key[32], uint64_t epoch, uint64_t start,
                        const uint8_t *proof, size_t len);
crm_err_t crm_enroll_save(const char *path, const crm_enroll_t *e, bool exclusive, char *errbuf);
crm_err_t crm_enroll_load(const char *path, crm_enroll_t *e, char *errbuf);

#endif
