/*  audit - the audit trail and field history (see audit.h) */
#include "audit.h"

#include <stdlib.h>
#include <string.h>

#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"

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
        unsigned flags = crm_entity_flags(e, fd->name);
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

crm_err_t
audit_scan(store_t *store, const crm_entity_t *e, uint64_t num,
           audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg)
{
    uint8_t prefix[10];
    size_t plen;
    if (e) {
        prefix[0] = 'r';
        prefix[1] = (uint8_t)e->prefix;
        store_put_be64(prefix + 2, num);
        plen = 10;
    } else {
        prefix[0] = 't';
        plen = 1;
    }
    /* newest first: seek past the prefix's end and walk backwards */
    uint8_t end[11];
    memcpy(end, prefix, plen);
    memset(end + plen, 0xff, 1);
    store_iter_t *it = store_iter_new(store, STORE_CF_AUDIT);
    crm_err_t rc = CRM_OK;
    for (store_iter_seek_before(it, end, plen + 1); store_iter_valid(it); store_iter_prev(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < plen || memcmp(k, prefix, plen))
            break;
        const char *v = store_iter_value(it, &vlen);
        Crm__AuditEntry *entry = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__audit_entry__descriptor, (const uint8_t *)v, vlen,
                             (ProtobufCMessage **)&entry, errbuf) != CRM_OK) {
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
