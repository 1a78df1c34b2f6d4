/*  =========================================================================
    seal - encryption at rest: sealed values and blind index terms

    Owns:      the process's data keys, derived from a data dir's master key
               file (DIR/master.key, 32 random bytes made by crm-admin init).
    Exposes:   XChaCha20-Poly1305 sealing of one stored value, bound to its
               column family and key; keyed BLAKE2b blind terms for indexes.
    Must not:  log or print keys; keep keys in freed memory.
    Invariant: one master key per process: every sealed store a process opens
               (its data dir, a checkpoint or fetched copy of it) was sealed
               with the same key, so the blind terms of records.c, made
               without a store at hand, match every store's index.
    =========================================================================
*/
#ifndef SEAL_H
#define SEAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_kv.h"

/* Bytes a sealed value has beyond its plaintext: nonce and tag. */
#define SEAL_OVERHEAD 40u
/* Bytes of a blind index term. */
#define SEAL_BLIND_BYTES 16u

/* Make this process use MASTER (the contents of a master key file). A second
   call with another key fails with CRM_ERR_FAILED_PRECONDITION. */
crm_err_t seal_use_key(const uint8_t master[32], char *errbuf);
/* Has a key been set (seal_use_key)? */
bool seal_ready(void);
/* Seal VAL (VLEN bytes) for key KEY of column family CF into OUT, which has
   room for VLEN + SEAL_OVERHEAD bytes. Returns the sealed length. */
size_t seal_value(unsigned cf, const void *key, size_t klen, const void *val, size_t vlen,
                  uint8_t *out);
/* Open a sealed value in place: DATA (LEN bytes) becomes its plaintext,
   *PLEN bytes at DATA. False if it was not sealed by this key for this key;
   DATA's bytes are then no longer the sealed value (a caller that still needs
   them opens a copy). */
bool seal_open_value(unsigned cf, const void *key, size_t klen, uint8_t *data, size_t len,
                     size_t *plen);
/* The blind term of an index value: a keyed hash of DOMAIN (which index, and
   which part of a pair: records.c) and the value, equal for equal values in one
   domain and unrelated across domains. Only after seal_use_key(). Each thread
   keeps the terms of the short values (up to 8 bytes: grams, a phone's last four
   digits) it hashed last, under a keyed SipHash of domain and value, not the
   value (seal.c). */
void seal_blind(uint32_t domain, const void *value, size_t len, uint8_t out[SEAL_BLIND_BYTES]);

#endif
