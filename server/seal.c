/*  =========================================================================
    seal - encryption at rest: sealed values and blind index terms

    A sealed value is nonce (24 random bytes) || XChaCha20-Poly1305 ciphertext
    and tag, with the column family's number and the value's key as associated
    data: a value copied under another key does not open. Two subkeys come
    from the master key (crypto_kdf): one seals values, one keys the BLAKE2b
    of blind index terms, so equality lookups work without the plaintext.
    =========================================================================
*/
#include "seal.h"

#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "crm_log.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool s_ready;
/* The master key and its two subkeys, kept together so that one sodium_mlock() keeps
   them out of swap and out of core dumps (crmd also turns core dumps off). */
static struct {
    uint8_t master[32];
    uint8_t value[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    uint8_t blind[crypto_generichash_KEYBYTES];
} s_keys;

#define SEAL_CONTEXT "oneview_" /* crypto_kdf context: 8 bytes */
enum { SUBKEY_VALUES = 1, SUBKEY_BLIND = 2 };

crm_err_t
seal_use_key(const uint8_t master[32], char *errbuf)
{
    crm_err_t rc = CRM_OK;
    pthread_mutex_lock(&s_lock);
    if (atomic_load(&s_ready)) {
        if (sodium_memcmp(master, s_keys.master, sizeof s_keys.master) != 0) {
            snprintf(errbuf, CRM_ERRBUF,
                     "this process already uses another master key: one process serves one "
                     "data dir and its copies");
            rc = CRM_ERR_FAILED_PRECONDITION;
        }
    } else {
        if (sodium_init() < 0)
            CRM_ASSERT(!"libsodium cannot start");
        if (sodium_mlock(&s_keys, sizeof s_keys) != 0) /* best effort: RLIMIT_MEMLOCK */
            crm_log(CRM_LOG_WARN, "the master key cannot be locked in memory (%s): the "
                                  "system may write it to swap",
                    strerror(errno));
        memcpy(s_keys.master, master, sizeof s_keys.master);
        crypto_kdf_derive_from_key(s_keys.value, sizeof s_keys.value, SUBKEY_VALUES, SEAL_CONTEXT,
                                   s_keys.master);
        crypto_kdf_derive_from_key(s_keys.blind, sizeof s_keys.blind, SUBKEY_BLIND, SEAL_CONTEXT,
                                   s_keys.master);
        atomic_store(&s_ready, true);
    }
    pthread_mutex_unlock(&s_lock);
    return rc;
}

bool
seal_ready(void)
{
    return atomic_load(&s_ready);
}

/* associated data: the column family's number, then the key */
static size_t
s_ad(unsigned cf, const void *key, size_t klen, uint8_t *buf, size_t cap, const uint8_t **out)
{
    if (1 + klen <= cap) {
        buf[0] = (uint8_t)cf;
        memcpy(buf + 1, key, klen);
        *out = buf;
        return 1 + klen;
    }
    /* a long key: its hash with the family (keys are at most a few hundred bytes) */
    crypto_generichash_state st;
    uint8_t c = (uint8_t)cf;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, &c, 1);
    crypto_generichash_update(&st, key, klen);
    crypto_generichash_final(&st, buf, 32);
    *out = buf;
    return 32;
}

/* A fresh nonce: 16 random bytes drawn once per thread, then a counter. As
   unique as 24 random bytes each time (XChaCha20 needs only uniqueness), without
   a getrandom() system call per sealed value (measured: 3-5 % of crmd's CPU). */
static void
s_nonce(uint8_t out[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
    static _Thread_local uint8_t t_prefix[16];
    static _Thread_local uint64_t t_count;
    static _Thread_local bool t_seeded;
    if (!t_seeded) {
        randombytes_buf(t_prefix, sizeof t_prefix);
        t_seeded = true;
    }
    memcpy(out, t_prefix, sizeof t_prefix);
    uint64_t n = t_count++;
    for (int i = 0; i < 8; i++)
        out[16 + i] = (uint8_t)(n >> (8 * i));
}

size_t
seal_value(unsigned cf, const void *key, size_t klen, const void *val, size_t vlen, uint8_t *out)
{
    CRM_ASSERT(atomic_load(&s_ready));
    uint8_t adbuf[512];
    const uint8_t *ad;
    size_t adlen = s_ad(cf, key, klen, adbuf, sizeof adbuf, &ad);
    s_nonce(out);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, val, vlen, ad, adlen, NULL,
        out, s_keys.value);
    return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)clen;
}

bool
seal_open_value(unsigned cf, const void *key, size_t klen, uint8_t *data, size_t len, size_t *plen)
{
    *plen = 0;
    if (!atomic_load(&s_ready) || len < SEAL_OVERHEAD)
        return false;
    uint8_t adbuf[512], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    const uint8_t *ad;
    size_t adlen = s_ad(cf, key, klen, adbuf, sizeof adbuf, &ad);
    memcpy(nonce, data, sizeof nonce);
    size_t clen = len - sizeof nonce;
    memmove(data, data + sizeof nonce, clen); /* decrypted in place (libsodium allows m == c) */
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(data, &mlen, NULL, data, clen, ad, adlen,
                                                   nonce, s_keys.value) != 0)
        return false; /* DATA is spent: libsodium clears what it would have decrypted */
    *plen = (size_t)mlen;
    return true;
}

/* The terms of short values - the one- and two-character grams of the name
   and company indexes, a phone's last four digits, a stage's name - repeat
   from record to record: keyed BLAKE2b for each was 15 % of an import's CPU
   (docs/PERFORMANCE.md, "Blind terms of short values, cached"). So each
   thread keeps the terms of the values of up to BLIND_SHORT bytes it hashed
   last, one per slot (direct-mapped). A slot holds no value, only its
   SipHash under this thread's random key, so the grams (an erased
   customer's too) do not stay in memory as text; one who can read the
   process's memory could still recover them from the hashes and that key by
   trying every short value - as they could read the master key itself. Two
   values with one SipHash (odds 2^-64 a lookup) would share a term. Longer values (a whole phone
   number, an e-mail) are never kept. One key per process (seal.h), so a
   kept term never goes stale. */
#define BLIND_SLOTS 2048
#define BLIND_SHORT 8

typedef struct {
    uint64_t tag; /* SipHash of the value; a slot with len 0 is empty */
    uint8_t len;
    uint8_t term[SEAL_BLIND_BYTES];
} s_blind_slot_t;

static _Thread_local s_blind_slot_t t_blind[BLIND_SLOTS];
static _Thread_local uint8_t t_blind_key[crypto_shorthash_KEYBYTES];
static _Thread_local bool t_blind_keyed;

void
seal_blind(uint32_t domain, const void *value, size_t len, uint8_t out[SEAL_BLIND_BYTES])
{
    CRM_ASSERT(atomic_load(&s_ready));
    /* the domain first: equal values of two indexes (a name that is also a
       company's) have unrelated terms (RELIABILITY.md trap 14) */
    uint8_t in[4 + BLIND_SHORT];
    in[0] = (uint8_t)(domain >> 24);
    in[1] = (uint8_t)(domain >> 16);
    in[2] = (uint8_t)(domain >> 8);
    in[3] = (uint8_t)domain;
    s_blind_slot_t *slot = NULL;
    uint64_t tag = 0;
    if (len > 0 && len <= BLIND_SHORT) {
        if (!t_blind_keyed) {
            randombytes_buf(t_blind_key, sizeof t_blind_key);
            t_blind_keyed = true;
        }
        uint8_t h[crypto_shorthash_BYTES];
        memcpy(in + 4, value, len);
        crypto_shorthash(h, in, 4 + len, t_blind_key);
        memcpy(&tag, h, sizeof tag);
        slot = &t_blind[(tag >> 32 ^ tag) & (BLIND_SLOTS - 1)];
        if (slot->len == len && slot->tag == tag) {
            memcpy(out, slot->term, SEAL_BLIND_BYTES);
            return;
        }
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, s_keys.blind, sizeof s_keys.blind, SEAL_BLIND_BYTES);
    crypto_generichash_update(&st, in, 4);
    crypto_generichash_update(&st, value, len);
    crypto_generichash_final(&st, out, SEAL_BLIND_BYTES);
    if (slot) {
        slot->len = (uint8_t)len;
        slot->tag = tag;
        memcpy(slot->term, out, SEAL_BLIND_BYTES);
    }
}
