/*  audit - the audit trail and field history (see audit.h) */
#include "audit.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"
#include "crm_record.h"
#include "users.h"

#define AUDIT_NAME_KEY (1 + USERS_NAME_MAX + 1) /* 'u' <name> 0x00 */
#define INDEX_MARK "audit_index"               /* meta: the u/d indexes are complete */
#define BACKFILL_BATCH 5000

/* The by-user and by-department keys of the entry whose time key is TKEY
   (17 bytes: 't' <ms> <unique>); returns the user key's length. */
static size_t
s_index_keys(const uint8_t tkey[17], const char *user, int dept,
             uint8_t ukey[AUDIT_NAME_KEY + 16], uint8_t dkey[18])
{
    size_t n = strnlen(user, USERS_NAME_MAX);
    ukey[0] = 'u';
    memcpy(ukey + 1, user, n);
    ukey[1 + n] = 0;
    memcpy(ukey + 2 + n, tkey + 1, 16);
    dkey[0] = 'd';
    dkey[1] = (uint8_t)dept;
    memcpy(dkey + 2, tkey + 1, 16);
    return 2 + n + 16;
}

void
audit_stage(store_group_t *g, store_t *store, const Crm__AuditEntry *entry, const crm_entity_t *e,
            uint64_t num)
{
    uint8_t tkey[17], rkey[26];
    size_t len;
    uint8_t *packed = crm_proto_pack(&entry->base, &len);
    uint64_t unique = store_next_unique(store);
    tkey[0] = 't';
    store_put_be64(tkey + 1, (uint64_t)entry->time);
    store_put_be64(tkey + 9, unique);
    store_group_put(g, STORE_CF_AUDIT, tkey, sizeof tkey, packed, len);
    uint8_t ukey[AUDIT_NAME_KEY + 16], dkey[18];
    size_t ulen = s_index_keys(tkey, entry->user, (int)entry->department, ukey, dkey);
    /* the by-user and by-department keys point at the time key: a few bytes
       each, not another copy of the entry */
    store_group_put(g, STORE_CF_AUDIT, ukey, ulen, tkey, sizeof tkey);
    store_group_put(g, STORE_CF_AUDIT, dkey, sizeof dkey, tkey, sizeof tkey);
    if (e && num) {
        rkey[0] = 'r';
        rkey[1] = (uint8_t)e->prefix;
        store_put_be64(rkey + 2, num);
        store_put_be64(rkey + 10, (uint64_t)entry->time);
        store_put_be64(rkey + 18, unique);
        store_group_put(g, STORE_CF_AUDIT, rkey, sizeof rkey, packed, len);
    }
    free(packed);
}

void
audit_stage_act(store_group_t *g, store_t *store, const char *user, int department, int role,
                const crm_entity_t *e, uint64_t num, const char *action, const char *reason)
{
    char id[24];
    crm_entity_format_id(e, num, id);
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
    entry.time = crm_time_now_ms();
    entry.user = (char *)user;
    entry.department = (Crm__Department)department;
    entry.role = (Crm__Role)role;
    entry.kind = (char *)e->name;
    entry.id = id;
    entry.action = (char *)action;
    entry.reason = (char *)reason;
    audit_stage(g, store, &entry, e, num);
}

static void
s_add_change(Crm__AuditEntry *entry, const char *field, char *old_value, char *new_value)
{
    Crm__FieldChange *c = malloc(sizeof *c);
    CRM_ASSERT_ALLOC(c);
    crm__field_change__init(c);
    c->field = (char *)field;
    c->old_value = old_value;
    c->new_value = new_value;
    entry->changes = realloc(entry->changes, (entry->n_changes + 1) * sizeof *entry->changes);
    CRM_ASSERT_ALLOC(entry->changes);
    entry->changes[entry->n_changes++] = c;
}

void
audit_changes(Crm__AuditEntry *entry, const crm_entity_t *e, const ProtobufCMessage *cur,
              const ProtobufCMessage *next, char *const *fields, size_t nfields)
{
    const ProtobufCMessageDescriptor *d = e->desc;
    size_t n = fields ? nfields : d->n_fields;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *fd =
            fields ? crm_record_field(d, fields[i]) : &d->fields[i];
        if (!fd)
            continue;
        unsigned flags = crm_entity_flags_of(e, fd);
        if (flags & CRM_F_SYSTEM)
            continue;
        bool is_time = (flags & CRM_F_TIME) != 0;
        const ProtobufCMessage *probe = next ? next : cur;
        if (!fields && !crm_record_is_set(probe, fd))
            continue;
        char *was = cur ? crm_record_format(cur, fd, is_time, false) : strdup("");
        char *now = next ? crm_record_format(next, fd, is_time, false) : strdup("");
        s_add_change(entry, fd->name, was, now);
    }
}

void
audit_changes_free(Crm__AuditEntry *entry)
{
    for (size_t i = 0; i < entry->n_changes; i++) {
        free(entry->changes[i]->old_value);
        free(entry->changes[i]->new_value);
        free(entry->changes[i]);
    }
    free(entry->changes);
    entry->changes = NULL;
    entry->n_changes = 0;
}

/* Entries under PREFIX, newest first, at most BUDGET examined (0: no bound). */
static crm_err_t
s_scan(store_t *store, store_group_t *g, const uint8_t *prefix, size_t plen, size_t budget,
       audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg, bool *cut)
{
    /* newest first: seek past the prefix's end and walk backwards */
    uint8_t end[AUDIT_NAME_KEY + 1];
    memcpy(end, prefix, plen);
    memset(end + plen, 0xff, 1);
    CRM_ASSERT(!g || prefix[0] == 'r'); /* through a group: one record's entries only */
    store_iter_t *it = g ? store_group_iter_new(g, STORE_CF_AUDIT)
                         : store_iter_new(store, STORE_CF_AUDIT);
    crm_err_t rc = CRM_OK;
    size_t seen = 0;
    *cut = false;
    for (store_iter_seek_before(it, end, plen + 1); store_iter_valid(it); store_iter_prev(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen))
            break;
        if (budget && seen++ == budget) {
            *cut = true;
            break;
        }
        const char *v = store_iter_value(it, &vlen);
        if (!v) {
            rc = CRM_ERR_STORAGE; /* does not open: logged and counted */
            break;
        }
        store_val_t pointed = {NULL, 0};
        if (prefix[0] == 'u' || prefix[0] == 'd') { /* an index key: the value is the time key */
            if (vlen != 17 || (rc = store_get(store, STORE_CF_AUDIT, v, vlen, &pointed)) != CRM_OK) {
                crm_log(CRM_LOG_ERROR, "audit: an index entry points at no entry");
                rc = CRM_ERR_INTERNAL;
                break;
            }
            v = pointed.data;
            vlen = pointed.len;
        }
        Crm__AuditEntry *entry = NULL;
        char errbuf[CRM_ERRBUF];
        crm_err_t urc = crm_proto_unpack(&crm__audit_entry__descriptor, (const uint8_t *)v,
                                         vlen, (ProtobufCMessage **)&entry, errbuf);
        store_val_release(&pointed);
        if (urc != CRM_OK) {
            crm_log(CRM_LOG_ERROR, "audit: a stored entry is corrupt: %s", errbuf);
            rc = CRM_ERR_INTERNAL;
            break;
        }
        audit_verdict_t verdict = fn(entry, arg);
        if (verdict != AUDIT_TAKE)
            crm_proto_free((ProtobufCMessage **)&entry);
        if (verdict == AUDIT_STOP)
            break;
    }
    store_iter_destroy(&it);
    return rc;
}

crm_err_t
audit_scan(store_t *store, const crm_entity_t *e, uint64_t num,
           audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg)
{
    audit_query_t q = {e, num, NULL, -1, 0};
    bool cut;
    return audit_query(store, &q, fn, arg, &cut);
}

crm_err_t
audit_query(store_t *store, const audit_query_t *q,
            audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg, bool *cut)
{
    uint8_t prefix[AUDIT_NAME_KEY];
    size_t plen;
    if (q->e) {
        prefix[0] = 'r';
        prefix[1] = (uint8_t)q->e->prefix;
        store_put_be64(prefix + 2, q->num);
        plen = 10;
    } else if (q->user && *q->user) {
        size_t n = strnlen(q->user, USERS_NAME_MAX);
        prefix[0] = 'u';
        memcpy(prefix + 1, q->user, n);
        prefix[1 + n] = 0;
        plen = 2 + n;
    } else if (q->department >= 0) {
        prefix[0] = 'd';
        prefix[1] = (uint8_t)q->department;
        plen = 2;
    } else {
        prefix[0] = 't';
        plen = 1;
    }
    return s_scan(store, NULL, prefix, plen, q->budget, fn, arg, cut);
}

crm_err_t
audit_record_scan(store_group_t *g, const crm_entity_t *e, uint64_t num, size_t budget,
                  audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg,
                  bool *cut)
{
    uint8_t prefix[10];
    prefix[0] = 'r';
    prefix[1] = (uint8_t)e->prefix;
    store_put_be64(prefix + 2, num);
    return s_scan(NULL, g, prefix, sizeof prefix, budget, fn, arg, cut);
}

crm_err_t
audit_index_upgrade(store_t *store, uint64_t *indexed, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    store_val_t mark;
    *indexed = 0;
    if (store_get(store, STORE_CF_META, INDEX_MARK, strlen(INDEX_MARK), &mark) == CRM_OK) {
        store_val_release(&mark);
        return CRM_OK;
    }
    /* entries written before the u/d indexes existed: index them, a batch at
       a time (puts of the same key and value, so an interrupted run can
       simply run again), then mark the store as indexed */
    store_group_t *g = store_group_new(store);
    store_iter_t *it = store_iter_new(store, STORE_CF_AUDIT);
    size_t staged = 0;
    for (store_iter_seek(it, "t", 1); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != 17 || k[0] != 't')
            break;
        const char *v = store_iter_value(it, &vlen);
        Crm__AuditEntry *entry = NULL;
        if (!v) {
            snprintf(errbuf, CRM_ERRBUF, "an audit entry does not open with the master key");
            rc = CRM_ERR_STORAGE;
            break;
        }
        if (crm_proto_unpack(&crm__audit_entry__descriptor, (const uint8_t *)v, vlen,
                             (ProtobufCMessage **)&entry, errbuf) != CRM_OK) {
            rc = CRM_ERR_INTERNAL;
            break;
        }
        uint8_t ukey[AUDIT_NAME_KEY + 16], dkey[18];
        size_t ulen = s_index_keys((const uint8_t *)k, entry->user, (int)entry->department,
                                   ukey, dkey);
        crm_proto_free((ProtobufCMessage **)&entry);
        store_group_put(g, STORE_CF_AUDIT, ukey, ulen, k, klen);
        store_group_put(g, STORE_CF_AUDIT, dkey, sizeof dkey, k, klen);
        (*indexed)++;
        if (++staged == BACKFILL_BATCH) {
            if ((rc = store_group_commit(g, errbuf)) != CRM_OK)
                break;
            staged = 0;
        }
    }
    store_iter_destroy(&it);
    if (rc == CRM_OK && store_read_errors(store, errbuf) != 0)
        rc = CRM_ERR_STORAGE;
    if (rc == CRM_OK) {
        store_group_put(g, STORE_CF_META, INDEX_MARK, strlen(INDEX_MARK), "1", 1);
        rc = store_group_commit(g, errbuf);
    }
    store_group_destroy(&g);
    return rc;
}
