/*  =========================================================================
    idem - idempotency keys: a retried write returns its first result

    A client may give a write request a key of its choosing (Request.
    idempotency_key). The first time a user's key is seen with a write that
    succeeds, the reply is kept under the key, staged in the writer's group
    after the write's own mutation, so both are in the same atomic commit:
    the mapping exists exactly when the write does. A request that comes
    again with the key (the client timed out and sent it again, or
    reconnected) is answered with the kept reply and runs nothing; with the
    same key and a different request it is refused. Keys are per user and
    expire after IDEM_TTL_MS.

    Owns:      the "idem/" and "idemx/" keys of the meta column family:
                 idem/<user> 0x00 <key>          -> be64 ms, 32-byte request hash, packed Reply
                 idemx/<be64 ms> <user> 0x00 <key> -> ""   (for expiry, oldest first)
    Must not:  decide what a request does (dispatch.c asks it before and after).
    =========================================================================
*/
#ifndef IDEM_H
#define IDEM_H
#include <stddef.h>
#include <stdint.h>

#include "crm.pb-c.h"
#include "store.h"

#define IDEM_TTL_MS (24LL * 3600 * 1000) /* a key is remembered this long */
#define IDEM_KEY_MAX 64                   /* bytes */

/* The request's hash, over everything but its id (so a resend with another
   id is the same request). */
void idem_hash(const Crm__Request *req, uint8_t hash[32]);

/* Look USER's KEY up through the group (staged writes included), as of NOW.
   CRM_OK: *reply is the kept reply (malloc'd, caller frees), its length in
   *len. CRM_ERR_NOT_FOUND: unknown or expired. CRM_ERR_INVALID_ARGUMENT: the
   key was used for a different request (HASH differs). */
crm_err_t idem_find(store_group_t *g, const char *user, const char *key, const uint8_t hash[32],
                    int64_t now, uint8_t **reply, size_t *len);

/* Stage USER's KEY -> REPLY (packed) in the group, as of NOW. */
void idem_record(store_group_t *g, const char *user, const char *key, const uint8_t hash[32],
                 int64_t now, const uint8_t *reply, size_t len);

/* Stage the deletion of at most MAX keys that expired by NOW. Returns how many. */
size_t idem_expire(store_t *store, store_group_t *g, int64_t now, size_t max);

#endif
