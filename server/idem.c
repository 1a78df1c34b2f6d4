/*  idem - idempotency keys (see idem.h) */
#include "idem.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crm_log.h"
#include "crm_proto.h"
#include "users.h"

#define IDEM_PREFIX "idem/"
#define IDEMX_PREFIX "idemx/"
#define KEY_MAX (6 + 8 + USERS_NAME_MAX + 1 + IDEM_KEY_MAX)

/* idem/<user> 0x00 <key>; returns its length */
static size_t
s_key(const char *user, const char *key, char out[KEY_MAX])
{
    size_t u = strnlen(user, USERS_NAME_MAX), k = strnlen(key, IDEM_KEY_MAX);
    memcpy(out, IDEM_PREFIX, 5);
    memcpy(out + 5, user, u);
    out[5 + u] = 0;
    memcpy(out + 6 + u, key, k);
    return 6 + u + k;
}

/* idemx/<be64 ms> <user> 0x00 <key> */
static size_t
s_xkey(int64_t ms, const char *user, const char *key, char out[KEY_MAX])
{
    char k[KEY_MAX];
    size_t n = s_key(user, key, k) - 5;
    memcpy(out, IDEMX_PREFIX, 6);
    store_put_be64((uint8_t *)out + 6, (uint64_t)ms);
    memcpy(out + 14, k + 5, n);
    return 14 + n;
}

void
idem_hash(const Crm__Request *req, uint8_t hash[32])
{
    Crm__Request copy = *req;
    copy.id = 0;
    size_t len;
    uint8_t *packed = crm_proto_pack(&copy.base, &len);
    crypto_generichash(hash, 32, packed, len, NULL, 0);
    free(packed);
}

crm_err_t
idem_find(store_group_t *g, const char *user, const char *key, const uint8_t hash[32],
          int64_t now, uint8_t **reply, size_t *len)
{
    char k[KEY_MAX];
    store_val_t v;
    *reply = NULL;
    *len = 0;
    crm_err_t rc = store_group_get(g, STORE_CF_META, k, s_key(user, key, k), &v);
    if (rc != CRM_OK)
        return rc;
    if (v.len < 40 || (int64_t)store_get_be64((const uint8_t *)v.data) + IDEM_TTL_MS < now) {
        rc = CRM_ERR_NOT_FOUND; /* expired, not yet swept */
    } else if (sodium_memcmp(v.data + 8, hash, 32) != 0) {
        rc = CRM_ERR_INVALID_ARGUMENT;
    } else {
        *len = v.len - 40;
        *reply = malloc(*len ? *len : 1);
        CRM_ASSERT_ALLOC(*reply);
        memcpy(*reply, v.data + 40, *len);
    }
    store_val_release(&v);
    return rc;
}

void
idem_record(store_group_t *g, const char *user, const char *key, const uint8_t hash[32],
            int64_t now, const uint8_t *reply, size_t len)
{
    char k[KEY_MAX], x[KEY_MAX];
    uint8_t *v = malloc(40 + len);
    CRM_ASSERT_ALLOC(v);
    store_put_be64(v, (uint64_t)now);
    memcpy(v + 8, hash, 32);
    memcpy(v + 40, reply, len);
    store_group_put(g, STORE_CF_META, k, s_key(user, key, k), v, 40 + len);
    store_group_put(g, STORE_CF_META, x, s_xkey(now, user, key, x), "", 0);
    free(v);
}

size_t
idem_expire(store_t *store, store_group_t *g, int64_t now, size_t max)
{
    size_t n = 0;
    store_iter_t *it = store_iter_new(store, STORE_CF_META);
    for (store_iter_seek(it, IDEMX_PREFIX, 6); store_iter_valid(it) && n < max;
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen < 15 || memcmp(k, IDEMX_PREFIX, 6))
            break;
        int64_t at = (int64_t)store_get_be64((const uint8_t *)k + 6);
        if (at + IDEM_TTL_MS >= now)
            break;
        /* the key itself only if it still belongs to this record (a reuse
           after expiry wrote a newer one) */
        char key[KEY_MAX];
        memcpy(key, IDEM_PREFIX, 5);
        memcpy(key + 5, k + 14, klen - 14);
        store_val_t v;
        if (store_get(store, STORE_CF_META, key, 5 + klen - 14, &v) == CRM_OK) {
            if (v.len >= 8 && (int64_t)store_get_be64((const uint8_t *)v.data) == at)
                store_group_delete(g, STORE_CF_META, key, 5 + klen - 14);
            store_val_release(&v);
        }
        store_group_delete(g, STORE_CF_META, k, klen);
        n++;
    }
    store_iter_destroy(&it);
    return n;
}
