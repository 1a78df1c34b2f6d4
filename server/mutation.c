/*  mutation - one change of many records, as one event (see mutation.h) */
#include "mutation.h"

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "records.h"

typedef struct {
    const crm_entity_t *e;
    uint64_t num;
    Crm__ChangeOp op;
    ProtobufCMessage *before; /* owned copy; NULL on create */
    ProtobufCMessage *after;  /* owned copy; NULL on delete */
    char **fields;            /* owned names (strdup), the union over every put */
    size_t nfields;
    char *reason;             /* owned, may be NULL */
} s_part_t;

struct mutation {
    store_group_t *g;
    store_t *store;
    const Crm__User *actor;
    s_part_t *parts;
    size_t n, cap;
    bool erasure; /* mutation_erasure() */
};

/* A packed record of kind E holding only FIELDS of REC (NULL if none is
   set). REC is borrowed: its fields are lent to the copy and given back. */
static uint8_t *
s_pack_fields(const crm_entity_t *e, ProtobufCMessage *rec, char *const *fields, size_t nfields,
              size_t *len)
{
    ProtobufCMessage *only = crm_proto_new(e->desc);
    bool any = false;
    uint8_t *out = NULL;
    *len = 0;
    for (size_t i = 0; i < nfields; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fields[i]);
        if (fd && crm_record_is_set(rec, fd)) {
            crm_record_swap(only, rec, fd);
            any = true;
        }
    }
    if (any)
        out = crm_proto_pack(only, len);
    for (size_t i = 0; i < nfields; i++) { /* give them back */
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fields[i]);
        if (fd && crm_record_is_set(only, fd))
            crm_record_swap(only, rec, fd);
    }
    crm_proto_free(&only);
    return out;
}

mutation_t *
mutation_begin(store_group_t *g, store_t *store, const Crm__User *actor)
{
    mutation_t *m = calloc(1, sizeof *m);
    CRM_ASSERT_ALLOC(m);
    m->g = g;
    m->store = store;
    m->actor = actor;
    store_group_begin(g);
    return m;
}

static void
s_part_release(s_part_t *p)
{
    crm_proto_free(&p->before);
    crm_proto_free(&p->after);
    for (size_t i = 0; i < p->nfields; i++)
        free(p->fields[i]);
    free(p->fields);
    free(p->reason);
}

static void
s_free(mutation_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        s_part_release(&m->parts[i]);
    free(m->parts);
    free(m);
}

/* The part of record NUM of kind E, created if new. */
static s_part_t *
s_part(mutation_t *m, const crm_entity_t *e, uint64_t num, bool *fresh)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->parts[i].e == e && m->parts[i].num == num) {
            *fresh = false;
            return &m->parts[i];
        }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4;
        m->parts = realloc(m->parts, m->cap * sizeof *m->parts);
        CRM_ASSERT_ALLOC(m->parts);
    }
    s_part_t *p = &m->parts[m->n++];
    memset(p, 0, sizeof *p);
    p->e = e;
    p->num = num;
    *fresh = true;
    return p;
}

static void
s_add_field(s_part_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfields; i++)
        if (!strcmp(p->fields[i], name))
            return;
    p->fields = realloc(p->fields, (p->nfields + 1) * sizeof *p->fields);
    CRM_ASSERT_ALLOC(p->fields);
    p->fields[p->nfields] = strdup(name);
    CRM_ASSERT_ALLOC(p->fields[p->nfields]);
    p->nfields++;
}

static void
s_set_reason(s_part_t *p, const char *reason)
{
    if (reason && !p->reason) {
        p->reason = strdup(reason);
        CRM_ASSERT_ALLOC(p->reason);
    }
}

void
mutation_put(mutation_t *m, const crm_entity_t *e, uint64_t num, const ProtobufCMessage *old,
             const ProtobufCMessage *rec, char *const *fields, size_t nfields, const char *reason)
{
    records_stage_put(m->g, e, num, old, rec);
    bool fresh;
    s_part_t *p = s_part(m, e, num, &fresh);
    if (fresh) {
        p->op = old ? CRM__CHANGE_OP__UPDATE : CRM__CHANGE_OP__CREATE;
        p->before = crm_proto_dup(old);
    }
    crm_proto_free(&p->after);
    p->after = crm_proto_dup(rec);
    if (!fields) { /* a creation: every set field */
        for (unsigned i = 0; i < e->desc->n_fields; i++)
            if (crm_record_is_set(rec, &e->desc->fields[i]))
                s_add_field(p, e->desc->fields[i].name);
    }
    for (size_t i = 0; i < nfields; i++)
        s_add_field(p, fields[i]);
    s_set_reason(p, reason);
}

void
mutation_delete(mutation_t *m, const crm_entity_t *e, uint64_t num, const ProtobufCMessage *old,
                const char *reason)
{
    records_stage_delete(m->g, e, num, old);
    bool fresh;
    s_part_t *p = s_part(m, e, num, &fresh);
    if (fresh)
        p->before = crm_proto_dup(old);
    if (!p->before) { /* created and deleted in one mutation: nothing of it is left */
        s_part_release(p);
        *p = m->parts[--m->n];
        return;
    }
    p->op = CRM__CHANGE_OP__DELETE;
    crm_proto_free(&p->after);
    s_set_reason(p, reason);
}

bool
mutation_has(const mutation_t *m, const crm_entity_t *e, uint64_t num)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->parts[i].e == e && m->parts[i].num == num)
            return true;
    return false;
}

void
mutation_erasure(mutation_t *m)
{
    m->erasure = true;
}

size_t
mutation_parts(const mutation_t *m)
{
    return m->n;
}

void
mutation_abort(mutation_t **m_p)
{
    mutation_t *m = *m_p;
    if (!m)
        return;
    store_group_abort(m->g);
    s_free(m);
    *m_p = NULL;
}

uint64_t
mutation_end(mutation_t **m_p)
{
    mutation_t *m = *m_p;
    if (m->n == 0) {
        mutation_abort(m_p);
        return 0;
    }
    const Crm__User *u = m->actor;
    int64_t now = crm_time_now_ms();
    Crm__Change change = CRM__CHANGE__INIT;
    change.time = now;
    change.actor = u->name;
    change.actor_department = u->department;
    Crm__ChangePart *parts = calloc(m->n, sizeof *parts);
    Crm__ChangePart **pp = calloc(m->n, sizeof *pp);
    uint8_t **packed = calloc(m->n, sizeof *packed);
    uint8_t **before = calloc(m->n, sizeof *before);
    CRM_ASSERT(parts && pp && packed && before);
    for (size_t i = 0; i < m->n; i++) {
        s_part_t *p = &m->parts[i];
        const ProtobufCMessage *rec = p->after ? p->after : p->before;
        crm__change_part__init(&parts[i]);
        parts[i].kind = (char *)p->e->name;
        parts[i].id = (char *)crm_record_get_str(rec, "id");
        parts[i].op = p->op;
        parts[i].fields = p->op == CRM__CHANGE_OP__DELETE ? NULL : p->fields;
        parts[i].n_fields = p->op == CRM__CHANGE_OP__DELETE ? 0 : p->nfields;
        size_t len;
        packed[i] = crm_proto_pack(rec, &len);
        parts[i].record.data = packed[i];
        parts[i].record.len = len;
        if (p->op == CRM__CHANGE_OP__UPDATE && !m->erasure) /* the changed fields as they were */
            before[i] = s_pack_fields(p->e, p->before, p->fields, p->nfields,
                                      &parts[i].before.len);
        parts[i].before.data = before[i];
        const char *consent = crm_entity_field_with(p->e, CRM_F_CONSENT);
        const char *owner = crm_entity_field_with(p->e, CRM_F_OWNER);
        if (p->before && consent)
            parts[i].hidden_before =
                !*(const protobuf_c_boolean *)((const char *)p->before +
                                               crm_record_field(p->e->desc, consent)->offset);
        if (p->before && owner)
            parts[i].owner_before = (char *)crm_record_get_str(p->before, owner);
        pp[i] = &parts[i];
    }
    change.parts = pp;
    change.n_parts = m->n;
    size_t elen;
    uint8_t *event = crm_proto_pack(&change.base, &elen);
    uint64_t seq = store_group_end(m->g, event, elen);
    free(event);

    static const char *const actions[] = {"", "create", "update", "delete"};
    for (size_t i = 0; i < m->n; i++) {
        s_part_t *p = &m->parts[i];
        Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
        entry.time = now;
        entry.user = u->name;
        entry.department = u->department;
        entry.role = u->role;
        entry.kind = (char *)p->e->name;
        entry.id = parts[i].id;
        entry.action = (char *)(m->erasure ? "erase" : actions[p->op]);
        entry.seq = seq;
        /* the version this entry made (or deleted): what an update based on an
           older version is compared with, field by field (h_entity_update) */
        entry.version = crm_record_get_u64(p->after ? p->after : p->before, "version");
        entry.reason = p->reason;
        ProtobufCMessage *was = p->before;
        if (m->erasure && was) { /* the old values are what is erased */
            was = crm_proto_dup(p->before);
            crm_record_erase(p->e, was, NULL, 0);
        }
        if (p->op != CRM__CHANGE_OP__DELETE)
            audit_changes(&entry, p->e, was, p->after, p->before ? p->fields : NULL,
                          p->before ? p->nfields : 0);
        if (was != p->before)
            crm_proto_free(&was);
        audit_stage(m->g, m->store, &entry, p->e, p->num);
        audit_changes_free(&entry);
        free(packed[i]);
        free(before[i]);
    }
    free(packed);
    free(before);
    free(pp);
    free(parts);
    s_free(m);
    *m_p = NULL;
    return seq;
}
