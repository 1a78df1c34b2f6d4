/*  bin - the recycle bin (see bin.h) */
#include "bin.h"

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"

#define KEY_LEN (4 + 1 + 8)          /* bin/  <prefix> <num> */
#define PKEY_LEN (5 + 1 + 8 + 4)     /* binp/ <prefix> <num> <i> */
#define XKEY_LEN (5 + 8 + 1 + 8)     /* binx/ <at> <prefix> <num> */

static void
s_key(const crm_entity_t *e, uint64_t num, uint8_t out[KEY_LEN])
{
    memcpy(out, "bin/", 4);
    out[4] = (uint8_t)e->prefix;
    store_put_be64(out + 5, num);
}

static void
s_pkey(const crm_entity_t *e, uint64_t num, uint32_t i, uint8_t out[PKEY_LEN])
{
    memcpy(out, "binp/", 5);
    out[5] = (uint8_t)e->prefix;
    store_put_be64(out + 6, num);
    out[14] = (uint8_t)(i >> 24);
    out[15] = (uint8_t)(i >> 16);
    out[16] = (uint8_t)(i >> 8);
    out[17] = (uint8_t)i;
}

static void
s_xkey(const crm_entity_t *e, uint64_t num, int64_t at, uint8_t out[XKEY_LEN])
{
    memcpy(out, "binx/", 5);
    store_put_be64(out + 5, (uint64_t)at);
    out[13] = (uint8_t)e->prefix;
    store_put_be64(out + 14, num);
}

static void
s_put(store_group_t *g, const void *key, size_t klen, const ProtobufCMessage *msg)
{
    size_t len;
    uint8_t *packed = crm_proto_pack(msg, &len);
    store_group_put(g, STORE_CF_META, key, klen, packed, len);
    free(packed);
}

void
bin_stage_put(store_group_t *g, const crm_entity_t *e, uint64_t num, const Crm__Binned *b,
              Crm__BinnedPart *const *parts, size_t n)
{
    uint8_t key[KEY_LEN], xkey[XKEY_LEN], pkey[PKEY_LEN];
    s_key(e, num, key);
    s_put(g, key, sizeof key, &b->base);
    for (size_t i = 0; i < n; i++) {
        s_pkey(e, num, (uint32_t)i, pkey);
        s_put(g, pkey, sizeof pkey, &parts[i]->base);
    }
    s_xkey(e, num, b->deleted_at, xkey);
    store_group_put(g, STORE_CF_META, xkey, sizeof xkey, "", 0);
}

static crm_err_t
s_get(store_group_t *g, store_t *store, const void *key, size_t klen,
      const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    store_val_t v = {0};
    crm_err_t rc = g ? store_group_get(g, STORE_CF_META, key, klen, &v)
                     : store_get(store, STORE_CF_META, key, klen, &v);
    if (rc != CRM_OK)
        return rc;
    char errbuf[CRM_ERRBUF];
    rc = crm_proto_unpack(d, (const uint8_t *)v.data, v.len, out, errbuf);
    store_val_release(&v);
    if (rc != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "bin: a stored entry is corrupt: %s", errbuf);
        return CRM_ERR_INTERNAL;
    }
    return CRM_OK;
}

crm_err_t
bin_get(store_group_t *g, const crm_entity_t *e, uint64_t num, Crm__Binned **out)
{
    uint8_t key[KEY_LEN];
    s_key(e, num, key);
    return s_get(g, NULL, key, sizeof key, &crm__binned__descriptor, (ProtobufCMessage **)out);
}

crm_err_t
bin_get_committed(store_t *store, const crm_entity_t *e, uint64_t num, Crm__Binned **out)
{
    uint8_t key[KEY_LEN];
    s_key(e, num, key);
    return s_get(NULL, store, key, sizeof key, &crm__binned__descriptor,
                 (ProtobufCMessage **)out);
}

crm_err_t
bin_part(store_group_t *g, const crm_entity_t *e, uint64_t num, uint32_t i, Crm__BinnedPart **out)
{
    uint8_t key[PKEY_LEN];
    s_pkey(e, num, i, key);
    crm_err_t rc = s_get(g, NULL, key, sizeof key, &crm__binned_part__descriptor,
                         (ProtobufCMessage **)out);
    return rc == CRM_ERR_NOT_FOUND ? CRM_ERR_INTERNAL : rc; /* the header says it exists */
}

void
bin_stage_remove(store_group_t *g, const crm_entity_t *e, uint64_t num, const Crm__Binned *b)
{
    uint8_t key[KEY_LEN], xkey[XKEY_LEN], pkey[PKEY_LEN];
    s_key(e, num, key);
    s_xkey(e, num, b->deleted_at, xkey);
    store_group_delete(g, STORE_CF_META, key, sizeof key);
    store_group_delete(g, STORE_CF_META, xkey, sizeof xkey);
    for (uint32_t i = 0; i < b->n_parts; i++) {
        s_pkey(e, num, i, pkey);
        store_group_delete(g, STORE_CF_META, pkey, sizeof pkey);
    }
}

crm_err_t
bin_each(store_t *store, const crm_entity_t *e, uint64_t after, size_t limit,
         bool (*fn)(uint64_t num, Crm__Binned *b, void *arg), void *arg, bool *more)
{
    uint8_t start[KEY_LEN];
    s_key(e, after + 1, start);
    size_t n = 0;
    crm_err_t rc = CRM_OK;
    *more = false;
    store_iter_t *it = store_iter_new(store, STORE_CF_META);
    for (store_iter_seek(it, start, sizeof start); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != KEY_LEN || memcmp(k, start, 5))
            break;
        if (n == limit) {
            *more = true;
            break;
        }
        const char *v = store_iter_value(it, &vlen);
        if (!v) {
            rc = CRM_ERR_STORAGE; /* does not open: logged and counted */
            break;
        }
        Crm__Binned *b = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__binned__descriptor, (const uint8_t *)v, vlen,
                             (ProtobufCMessage **)&b, errbuf) != CRM_OK) {
            crm_log(CRM_LOG_ERROR, "bin: a stored entry is corrupt: %s", errbuf);
            rc = CRM_ERR_INTERNAL;
            break;
        }
        n++;
        if (!fn(store_get_be64((const uint8_t *)k + 5), b, arg))
            crm_proto_free((ProtobufCMessage **)&b);
    }
    store_iter_destroy(&it);
    return rc;
}

void
bin_audit_purge(store_group_t *g, store_t *store, const crm_entity_t *e, uint64_t num,
                const char *user, int department, int role, const char *reason)
{
    audit_stage_act(g, store, user, department, role, e, num, "purge", reason);
}

size_t
bin_expire(store_t *store, store_group_t *g, int64_t cutoff, size_t max, const char *actor)
{
    size_t n = 0, keys = 0;
    store_iter_t *it = store_iter_new(store, STORE_CF_META);
    for (store_iter_seek(it, "binx/", 5); store_iter_valid(it) && keys < max;
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen != XKEY_LEN || memcmp(k, "binx/", 5))
            break;
        int64_t at = (int64_t)store_get_be64((const uint8_t *)k + 5);
        if (at >= cutoff)
            break;
        const crm_entity_t *e = crm_entity_by_prefix(k[13]);
        uint64_t num = store_get_be64((const uint8_t *)k + 14);
        Crm__Binned *b = NULL;
        /* the entry only if it is still this deletion's (not restored
           meanwhile, nor restored and deleted again) */
        if (e && bin_get(g, e, num, &b) == CRM_OK && b->deleted_at == at) {
            bin_stage_remove(g, e, num, b);
            keys += 2 + b->n_parts;
            bin_audit_purge(g, store, e, num, actor, CRM__DEPARTMENT__DEPARTMENT_NONE,
                            CRM__ROLE__ADMIN, "older than the recycle bin's retention");
            n++;
        } else {
            store_group_delete(g, STORE_CF_META, k, klen);
            keys++;
        }
        crm_proto_free((ProtobufCMessage **)&b);
    }
    store_iter_destroy(&it);
    return n;
}
