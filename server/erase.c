/*  erase - a customer's personal data out of records, change log and audit (see erase.h) */
#include "erase.h"

#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "bin.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "mutation.h"
#include "records.h"

#define JOB_PREFIX "erase/"
#define JOB_KEY (sizeof JOB_PREFIX - 1 + 8)
#define SLICE_MAX 2000   /* change-log entries looked at per loop turn */
#define SLICE_US 2000    /* ... or for about this long */
#define RECORDS_MAX 5000 /* records one erasure carries (as a delete: PARTS_MAX) */
#define REASON "erased at the customer's request"

struct erase {
    unsigned slice; /* entries per slice at most */
    bool check;     /* a job may be waiting */
};

erase_t *
erase_new(unsigned slice)
{
    erase_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->slice = slice ? slice : SLICE_MAX;
    self->check = true; /* a job an earlier run left */
    return self;
}

void
erase_destroy(erase_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

void
erase_wake(erase_t *self)
{
    if (self)
        self->check = true;
}

bool
erase_busy(const erase_t *self)
{
    return self && self->check;
}

static void
s_job_key(uint64_t num, uint8_t key[JOB_KEY])
{
    memcpy(key, JOB_PREFIX, sizeof JOB_PREFIX - 1);
    store_put_be64(key + sizeof JOB_PREFIX - 1, num);
}

/* ==== The scrub ==== */

/* Is part P (kind E; REC and BEFORE unpacked, may be NULL) the customer's? */
static bool
s_ours(const Crm__EraseJob *job, const crm_entity_t *e, const Crm__ChangePart *p,
       const ProtobufCMessage *rec, const ProtobufCMessage *before)
{
    if (!e->parent)
        return !strcmp(e->name, "customer") && !strcmp(p->id, job->customer_id);
    if (strcmp(e->parent, "customer"))
        return false;
    const char *pf = crm_entity_field_with(e, CRM_F_PARENT);
    if ((rec && !strcmp(crm_record_get_str(rec, pf), job->customer_id)) ||
        (before && !strcmp(crm_record_get_str(before, pf), job->customer_id)))
        return true;
    for (size_t i = 0; i < job->n_ids; i++)
        if (!strcmp(p->id, job->ids[i]))
            return true;
    return false;
}

/* The personal values among ENTRY's changes (fields of kind E) as erased. */
static bool
s_scrub_audit(Crm__AuditEntry *entry, const crm_entity_t *e)
{
    bool changed = false;
    for (size_t i = 0; i < entry->n_changes; i++) {
        Crm__FieldChange *c = entry->changes[i];
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, c->field);
        if (!fd || !(crm_entity_flags_of(e, fd) & CRM_F_PERSONAL))
            continue;
        char **vals[2] = {&c->old_value, &c->new_value};
        for (int j = 0; j < 2; j++)
            if (**vals[j] && strcmp(*vals[j], CRM_ERASED)) {
                crm_proto_release(*vals[j]);
                *vals[j] = crm_proto_strdup(CRM_ERASED);
                changed = true;
            }
    }
    return changed;
}

/* Rewrite the audit entry of part NUM (kind E) of change SEQ made at TIME:
   it is kept by record and time ('r'), and by time ('t'). */
static void
s_scrub_audit_of(store_t *store, store_group_t *g, const crm_entity_t *e, uint64_t num,
                 int64_t time, uint64_t seq)
{
    uint8_t prefix[18];
    prefix[0] = 'r';
    prefix[1] = (uint8_t)e->prefix;
    store_put_be64(prefix + 2, num);
    store_put_be64(prefix + 10, (uint64_t)time);
    store_iter_t *it = store_iter_new(store, STORE_CF_AUDIT);
    for (store_iter_seek(it, prefix, sizeof prefix); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != 26 || memcmp(k, prefix, sizeof prefix))
            break;
        const char *v = store_iter_value(it, &vlen);
        Crm__AuditEntry *entry = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__audit_entry__descriptor, (const uint8_t *)v, vlen,
                             (ProtobufCMessage **)&entry, errbuf) != CRM_OK)
            continue; /* crm-admin check names a damaged entry */
        if (entry->seq == seq && s_scrub_audit(entry, e)) {
            size_t len;
            uint8_t *packed = crm_proto_pack(&entry->base, &len), tkey[17];
            tkey[0] = 't';
            memcpy(tkey + 1, k + 10, 16);
            store_group_put(g, STORE_CF_AUDIT, k, klen, packed, len);
            store_group_put(g, STORE_CF_AUDIT, tkey, sizeof tkey, packed, len);
            free(packed);
        }
        crm_proto_free((ProtobufCMessage **)&entry);
    }
    store_iter_destroy(&it);
}

/* D, a packed record of kind E, with its personal fields erased: a new
   buffer (malloc) in *OUT, or NULL if nothing in it is personal. */
static uint8_t *
s_scrub_packed(const crm_entity_t *e, const ProtobufCBinaryData *d, size_t *len,
               ProtobufCMessage **unpacked)
{
    *unpacked = NULL;
    if (!d->len)
        return NULL;
    char errbuf[CRM_ERRBUF];
    if (crm_proto_unpack(e->desc, d->data, d->len, unpacked, errbuf) != CRM_OK)
        return NULL;
    ProtobufCMessage *copy = NULL;
    if (crm_proto_unpack(e->desc, d->data, d->len, &copy, errbuf) != CRM_OK)
        return NULL;
    uint8_t *out = crm_record_erase(e, copy, NULL, 0) ? crm_proto_pack(copy, len) : NULL;
    crm_proto_free(&copy);
    return out;
}

/* *D, a packed record of kind E in a kept reply: erased in place if it is
   the customer's (the new bytes are malloc'd, kept in *MADE). */
static bool
s_scrub_reply_record(const Crm__EraseJob *job, const crm_entity_t *e, ProtobufCBinaryData *d,
                     uint8_t ***made, size_t *nmade)
{
    if (!e || !d->len)
        return false;
    size_t len = 0;
    ProtobufCMessage *rec = NULL;
    uint8_t *out = s_scrub_packed(e, d, &len, &rec);
    Crm__ChangePart p = CRM__CHANGE_PART__INIT;
    p.id = rec ? (char *)crm_record_get_str(rec, "id") : (char *)"";
    bool ours = out && s_ours(job, e, &p, rec, NULL);
    crm_proto_free(&rec);
    if (!ours) {
        free(out);
        return false;
    }
    *made = realloc(*made, (*nmade + 1) * sizeof **made);
    CRM_ASSERT_ALLOC(*made);
    (*made)[(*nmade)++] = out;
    d->data = out; /* the reply is freed with the unpacked bytes swapped back: see below */
    d->len = len;
    return true;
}

/* A reply kept for idempotent retries (be64 time, 32-byte hash, packed Reply)
   with the customer's records erased: a new value (malloc'd), or NULL. */
static uint8_t *
s_scrub_kept(const Crm__EraseJob *job, const uint8_t *v, size_t vlen, size_t *out_len)
{
    if (vlen < 40)
        return NULL;
    Crm__Reply *r = NULL;
    char errbuf[CRM_ERRBUF];
    if (crm_proto_unpack(&crm__reply__descriptor, v + 40, vlen - 40, (ProtobufCMessage **)&r,
                         errbuf) != CRM_OK)
        return NULL;
    ProtobufCBinaryData *slots[64], saved[64];
    const crm_entity_t *kinds[64];
    size_t n = 0;
    if (r->body_case == CRM__REPLY__BODY_ENTITY) {
        const crm_entity_t *e = crm_entity_by_name(r->entity->kind);
        for (size_t i = 0; i < r->entity->n_records && n < 64; i++, n++) {
            slots[n] = &r->entity->records[i];
            kinds[n] = e;
        }
    } else if (r->body_case == CRM__REPLY__BODY_CONVERT) {
        const char *names[3] = {"customer", "deal", "activity"};
        ProtobufCBinaryData *b[3] = {&r->convert->customer, &r->convert->deal,
                                     &r->convert->activity};
        for (int i = 0; i < 3; i++, n++) {
            slots[n] = b[i];
            kinds[n] = crm_entity_by_name(names[i]);
        }
    }
    uint8_t **made = NULL, *out = NULL;
    size_t nmade = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        saved[i] = *slots[i];
        any |= s_scrub_reply_record(job, kinds[i], slots[i], &made, &nmade);
    }
    if (any) {
        size_t len;
        uint8_t *packed = crm_proto_pack(&r->base, &len);
        out = malloc(40 + len);
        CRM_ASSERT_ALLOC(out);
        memcpy(out, v, 40);
        memcpy(out + 40, packed, len);
        free(packed);
        *out_len = 40 + len;
    }
    for (size_t i = 0; i < n; i++)
        *slots[i] = saved[i];
    for (size_t i = 0; i < nmade; i++)
        free(made[i]);
    free(made);
    crm_proto_free((ProtobufCMessage **)&r);
    return out;
}

/* Scrub the replies kept for idempotent retries after JOB->idem_after, a
   bounded slice; true when none is left. */
static bool
s_scrub_kept_slice(erase_t *self, store_group_t *g, Crm__EraseJob *job, int64_t t0)
{
    static const char prefix[] = "idem/";
    uint8_t from[sizeof prefix - 1 + 256];
    size_t flen = sizeof prefix - 1;
    memcpy(from, prefix, flen);
    if (job->idem_after.len && job->idem_after.len <= 256) {
        memcpy(from, job->idem_after.data, job->idem_after.len);
        flen = job->idem_after.len;
    }
    store_iter_t *it = store_group_iter_new(g, STORE_CF_META);
    bool done = true;
    size_t n = 0;
    for (store_iter_seek(it, from, flen); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < sizeof prefix - 1 || memcmp(k, prefix, sizeof prefix - 1))
            break;
        if (klen == flen && !memcmp(k, from, flen))
            continue; /* done in the last slice */
        if (klen > 256)
            continue; /* longer than any key idem.c writes */
        if (n++ >= self->slice || crm_time_mono_us() - t0 >= SLICE_US) {
            done = false;
            break;
        }
        const char *v = store_iter_value(it, &vlen);
        size_t len = 0;
        uint8_t *scrubbed = s_scrub_kept(job, (const uint8_t *)v, vlen, &len);
        if (scrubbed) {
            store_group_put(g, STORE_CF_META, k, klen, scrubbed, len);
            free(scrubbed);
        }
        crm_proto_release(job->idem_after.data); /* the job was unpacked: its allocator */
        job->idem_after.data = crm_proto_alloc(klen);
        CRM_ASSERT_ALLOC(job->idem_after.data);
        memcpy(job->idem_after.data, k, klen);
        job->idem_after.len = klen;
    }
    store_iter_destroy(&it);
    return done;
}

/* Scrub change SEQ of JOB's customer; true if it was rewritten. */
static bool
s_scrub_change(store_t *store, store_group_t *g, const Crm__EraseJob *job, uint64_t seq)
{
    store_val_t val = {0};
    if (store_changelog_get(store, seq, &val) != CRM_OK)
        return false; /* trimmed by retention meanwhile */
    Crm__Change *ch = NULL;
    char errbuf[CRM_ERRBUF];
    crm_err_t rc = crm_proto_unpack(&crm__change__descriptor, (const uint8_t *)val.data, val.len,
                                    (ProtobufCMessage **)&ch, errbuf);
    store_val_release(&val);
    if (rc != CRM_OK)
        return false;
    bool rewritten = false;
    /* the new bytes are lent to the change for packing, then the old ones given back */
    ProtobufCBinaryData *was = calloc(2 * ch->n_parts + 1, sizeof *was);
    uint8_t **made = calloc(2 * ch->n_parts + 1, sizeof *made);
    CRM_ASSERT(was && made);
    for (size_t i = 0; i < ch->n_parts; i++) {
        Crm__ChangePart *p = ch->parts[i];
        const crm_entity_t *e = crm_entity_by_name(p->kind);
        if (!e)
            continue; /* a user's change */
        ProtobufCMessage *rec = NULL, *before = NULL;
        size_t rlen = 0, blen = 0;
        uint8_t *r2 = s_scrub_packed(e, &p->record, &rlen, &rec);
        uint8_t *b2 = s_scrub_packed(e, &p->before, &blen, &before);
        if (s_ours(job, e, p, rec, before)) {
            was[2 * i] = p->record;
            was[2 * i + 1] = p->before;
            if (r2) {
                p->record.data = made[2 * i] = r2;
                p->record.len = rlen;
                r2 = NULL;
            }
            if (b2) {
                p->before.data = made[2 * i + 1] = b2;
                p->before.len = blen;
                b2 = NULL;
            }
            if (made[2 * i] || made[2 * i + 1])
                rewritten = true;
            uint64_t num = crm_entity_parse_id(e, p->id);
            if (num)
                s_scrub_audit_of(store, g, e, num, ch->time, seq);
        }
        free(r2);
        free(b2);
        crm_proto_free(&rec);
        crm_proto_free(&before);
    }
    if (rewritten) {
        size_t len;
        uint8_t *packed = crm_proto_pack(&ch->base, &len), key[8];
        store_put_be64(key, seq);
        store_group_put(g, STORE_CF_CHANGELOG, key, sizeof key, packed, len);
        free(packed);
    }
    for (size_t i = 0; i < 2 * ch->n_parts; i++)
        if (made[i]) {
            ProtobufCBinaryData *d = i % 2 ? &ch->parts[i / 2]->before : &ch->parts[i / 2]->record;
            *d = was[i];
            free(made[i]);
        }
    free(was);
    free(made);
    crm_proto_free((ProtobufCMessage **)&ch);
    return rewritten;
}

void
erase_tick(erase_t *self, store_t *store, store_group_t *g)
{
    if (!self || !self->check)
        return;
    if (store_write_health(store, NULL) != CRM_OK)
        return; /* the job as stored says where to go on, once writes work again */
    uint8_t key[JOB_KEY];
    Crm__EraseJob *job = NULL;
    /* through the group: a job staged this turn, and the progress of the last
       slice, count before they are committed */
    store_iter_t *it = store_group_iter_new(g, STORE_CF_META);
    store_iter_seek(it, JOB_PREFIX, sizeof JOB_PREFIX - 1);
    if (store_iter_valid(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        const char *v = store_iter_value(it, &vlen);
        char errbuf[CRM_ERRBUF];
        if (klen == JOB_KEY && !memcmp(k, JOB_PREFIX, sizeof JOB_PREFIX - 1)) {
            memcpy(key, k, JOB_KEY);
            if (crm_proto_unpack(&crm__erase_job__descriptor, (const uint8_t *)v, vlen,
                                 (ProtobufCMessage **)&job, errbuf) != CRM_OK) {
                crm_log(CRM_LOG_ERROR, "erase: a damaged job is dropped: %s", errbuf);
                store_group_delete(g, STORE_CF_META, key, sizeof key);
            }
        }
    }
    store_iter_destroy(&it);
    if (!job) {
        self->check = false;
        return;
    }
    uint64_t next = job->next, first = store_changelog_first(store);
    if (next < first)
        next = first;
    /* the changes before the erasure are read as committed: wait for them */
    if (job->end > store_last_seq(store) + 1) {
        crm_proto_free((ProtobufCMessage **)&job);
        return;
    }
    int64_t t0 = crm_time_mono_us();
    uint64_t rewritten = 0;
    if (!job->idem) {
        for (size_t n = 0; next < job->end && n < self->slice && crm_time_mono_us() - t0 < SLICE_US;
             n++, next++)
            rewritten += s_scrub_change(store, g, job, next);
        job->next = next;
        job->rewritten += rewritten;
        job->idem = next >= job->end;
    }
    if (job->idem && s_scrub_kept_slice(self, g, job, t0)) {
        store_group_delete(g, STORE_CF_META, key, sizeof key);
        crm_log(CRM_LOG_INFO, "erase: the history of customer %s is scrubbed (%llu change-log "
                              "entries rewritten)",
                job->customer_id, (unsigned long long)job->rewritten);
    } else {
        size_t len;
        uint8_t *packed = crm_proto_pack(&job->base, &len);
        store_group_put(g, STORE_CF_META, key, sizeof key, packed, len);
        free(packed);
    }
    if (rewritten) { /* the feeds drop what they decoded, once this lands */
        store_val_t v = {0};
        uint64_t count = 0;
        if (store_group_get(g, STORE_CF_META, STORE_META_LOG_REWRITES,
                            sizeof STORE_META_LOG_REWRITES - 1, &v) == CRM_OK &&
            v.len == 8)
            count = store_get_be64((const uint8_t *)v.data);
        store_val_release(&v);
        uint8_t be[8];
        store_put_be64(be, count + 1);
        store_group_put(g, STORE_CF_META, STORE_META_LOG_REWRITES,
                        sizeof STORE_META_LOG_REWRITES - 1, be, sizeof be);
        store_log_rewrite_hint();
    }
    crm_proto_free((ProtobufCMessage **)&job);
}

/* ==== The request ==== */

/* Erase the personal fields of record NUM of kind E (CUR) in M; true if any. */
static bool
s_erase_record(req_ctx_t *ctx, mutation_t *m, const crm_entity_t *e, uint64_t num,
               const ProtobufCMessage *cur, ProtobufCMessage **out)
{
    size_t len;
    char errbuf[CRM_ERRBUF];
    uint8_t *packed = crm_proto_pack(cur, &len);
    ProtobufCMessage *next = NULL;
    crm_err_t rc = crm_proto_unpack(e->desc, packed, len, &next, errbuf);
    free(packed);
    CRM_ASSERT(rc == CRM_OK); /* packed here */
    const char *names[64];
    size_t n = crm_record_erase(e, next, names, 64);
    if (n) {
        crm_record_set_u64(next, "version", crm_record_get_u64(cur, "version") + 1);
        crm_record_set_i64(next, "updated_at", crm_time_now_ms());
        crm_record_set_str(next, "updated_by", ctx->session.user->name);
        mutation_put(m, e, num, cur, next, (char *const *)names, n < 64 ? n : 64, REASON);
    }
    if (out)
        *out = next;
    else
        crm_proto_free(&next);
    return n > 0;
}

/* The audit entry of an erasure that changed no record (one in the bin, one
   purged before, one erased before). */
static void
s_audit(req_ctx_t *ctx, const crm_entity_t *e, uint64_t num, const char *reason)
{
    const Crm__User *u = ctx->session.user;
    audit_stage_act(ctx->env->group, ctx->env->store, u->name, (int)u->department, (int)u->role,
                    e, num, "erase", reason);
}

/* Erase live customer NUM (CUR) and its records in one mutation; their ids
   go to JOB. */
static crm_err_t
s_erase_live(req_ctx_t *ctx, const crm_entity_t *e, uint64_t num, const ProtobufCMessage *cur,
             Crm__EraseJob *job, uint64_t *records, uint64_t *seq)
{
    store_group_t *g = ctx->env->group;
    store_t *store = ctx->env->store;
    size_t total = 1;
    for (const crm_entity_t *k = crm_entity_all(); k->name && total <= RECORDS_MAX; k++)
        if (k->parent && !strcmp(k->parent, e->name))
            total += records_count_children(store, k, job->customer_id, RECORDS_MAX - total);
    if (total > RECORDS_MAX)
        return dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                              "'%s' has more than %d records: an erasure changes them all in "
                              "one write; delete some of them first",
                              job->customer_id, RECORDS_MAX);
    mutation_t *m = mutation_begin(g, store, ctx->session.user);
    mutation_erasure(m);
    ProtobufCMessage *after = NULL;
    *records = 0;
    if (s_erase_record(ctx, m, e, num, cur, &after))
        (*records)++;
    crm_err_t rc = CRM_OK;
    job->ids = dispatch_own(ctx, calloc(total, sizeof *job->ids));
    CRM_ASSERT_ALLOC(job->ids);
    for (const crm_entity_t *k = crm_entity_all(); k->name && rc == CRM_OK; k++) {
        if (!k->parent || strcmp(k->parent, e->name))
            continue;
        uint64_t ids[256], after_id = 0;
        size_t n;
        bool more = true;
        while (more && rc == CRM_OK) {
            if ((rc = records_children(store, g, k, job->customer_id, after_id, 256, ids, &n,
                                       &more)) != CRM_OK) {
                rc = dispatch_error(ctx, rc, "cannot read the %s records of '%s'", k->name,
                                    job->customer_id);
                break;
            }
            for (size_t i = 0; i < n && job->n_ids < total; i++) {
                ProtobufCMessage *child = NULL;
                if (records_group_get(g, k, ids[i], &child) != CRM_OK)
                    continue;
                char id[24];
                crm_entity_format_id(k, ids[i], id);
                job->ids[job->n_ids] = dispatch_own(ctx, strdup(id));
                CRM_ASSERT_ALLOC(job->ids[job->n_ids]);
                job->n_ids++;
                if (s_erase_record(ctx, m, k, ids[i], child, NULL))
                    (*records)++;
                crm_proto_free(&child);
            }
            if (n)
                after_id = ids[n - 1];
            more = more && n > 0;
        }
    }
    if (rc != CRM_OK) {
        mutation_abort(&m);
        crm_proto_free(&after);
        return rc;
    }
    *seq = mutation_end(&m);
    ctx->staged = true;
    ctx->body.entity.records = dispatch_own(ctx, malloc(sizeof *ctx->body.entity.records));
    CRM_ASSERT_ALLOC(ctx->body.entity.records);
    ProtobufCBinaryData *b = &ctx->body.entity.records[0];
    b->data = dispatch_own(ctx, crm_proto_pack(after, &b->len));
    ctx->body.entity.n_records = 1;
    crm_proto_free(&after);
    return CRM_OK;
}

crm_err_t
h_erase(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_ENTITY)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request names no customer");
    const Crm__EntityRequest *r = ctx->req->entity;
    const crm_entity_t *e = crm_entity_by_name("customer");
    if (*r->kind && strcmp(r->kind, e->name))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "only a customer is erased, with all its records: crm customer "
                              "erase ID");
    uint64_t num = crm_entity_parse_id(e, r->id);
    if (!num)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "'%.40s' is not a customer id (like c42)", r->id);
    store_group_t *g = ctx->env->group;
    store_t *store = ctx->env->store;
    uint8_t key[JOB_KEY];
    s_job_key(num, key);
    Crm__EntityReply *out = &ctx->body.entity;
    crm__entity_reply__init(out);
    out->kind = (char *)e->name;
    ctx->reply.body_case = CRM__REPLY__BODY_ENTITY;
    ctx->reply.entity = out;
    if (r->status) { /* how far the scrub is */
        store_val_t v = {0};
        crm_err_t rc = store_group_get(g, STORE_CF_META, key, sizeof key, &v);
        Crm__EraseJob *job = NULL;
        char errbuf[CRM_ERRBUF];
        if (rc == CRM_OK && crm_proto_unpack(&crm__erase_job__descriptor, (const uint8_t *)v.data,
                                             v.len, (ProtobufCMessage **)&job, errbuf) == CRM_OK)
            out->scrub_left = job->end > job->next ? job->end - job->next : 1;
        store_val_release(&v);
        crm_proto_free((ProtobufCMessage **)&job);
        if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND)
            return dispatch_error(ctx, rc, "cannot read the erasure's progress");
        return CRM_OK;
    }
    Crm__EraseJob job = CRM__ERASE_JOB__INIT;
    char id[24];
    crm_entity_format_id(e, num, id);
    job.customer_id = id;
    uint64_t records = 0, seq = 0;
    ProtobufCMessage *cur = NULL;
    crm_err_t rc = records_group_get(g, e, num, &cur);
    if (rc == CRM_OK) {
        rc = s_erase_live(ctx, e, num, cur, &job, &records, &seq);
        crm_proto_free(&cur);
        if (rc != CRM_OK)
            return rc;
        if (!seq) /* erased before: the history is scrubbed again */
            s_audit(ctx, e, num, REASON " (its records held nothing more to erase)");
    } else if (rc == CRM_ERR_NOT_FOUND) {
        Crm__Binned *b = NULL;
        rc = bin_get(g, e, num, &b);
        if (rc == CRM_OK) { /* deleted: out of the bin for good */
            records = 1 + b->n_parts;
            bin_stage_remove(g, e, num, b);
            crm_proto_free((ProtobufCMessage **)&b);
            s_audit(ctx, e, num, REASON " (it was in the recycle bin: removed from it)");
        } else if (rc == CRM_ERR_NOT_FOUND) {
            store_val_t v = {0};
            uint64_t next_num = 1;
            rc = store_group_get(g, STORE_CF_META, "next_id/customer", 16, &v);
            if (rc == CRM_OK && v.len == 8)
                next_num = store_get_be64((const uint8_t *)v.data);
            store_val_release(&v);
            if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND)
                return dispatch_error(ctx, rc, "cannot read the customer numbers");
            if (num >= next_num)
                return dispatch_error(ctx, CRM_ERR_NOT_FOUND, "no customer '%s' ever existed",
                                      id);
            s_audit(ctx, e, num, REASON " (deleted and purged before: its history is scrubbed)");
            rc = CRM_OK;
        }
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot read the recycle bin");
        ctx->staged = true;
    } else {
        return dispatch_error(ctx, rc, "cannot read customer '%s'", id);
    }
    if (!seq) { /* every change before this request's */
        store_group_mark_t mark;
        store_group_mark(g, &mark);
        seq = mark.next_seq;
    }
    uint64_t first = store_changelog_first(store);
    job.next = first ? first : 1;
    job.end = seq; /* the erasure itself carries nothing to scrub */
    size_t len;
    uint8_t *packed = crm_proto_pack(&job.base, &len);
    store_group_put(g, STORE_CF_META, key, sizeof key, packed, len);
    free(packed);
    erase_wake(ctx->env->erase);
    out->count = records;
    out->scrub_left = job.end > job.next ? job.end - job.next : 0;
    return CRM_OK;
}
