/*  erase - a customer's personal data out of records, change log and audit (see erase.h) */
#include "erase.h"

#include <stdio.h>
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
    int64_t gap_us; /* between slices at least (a test's slow scrub) */
    int64_t next_us; /* ... so the next one not before this */
    bool check;     /* a job may be waiting */
};

erase_t *
erase_new(unsigned slice, int64_t gap_us)
{
    erase_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->slice = slice ? slice : SLICE_MAX;
    self->gap_us = gap_us;
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

/* Writes collected while an iterator through the group is open (writing
   to the batch under an open iterator is not safe), staged after it. */
typedef struct {
    store_cf_t cf;
    uint8_t *key, *val; /* malloc'd */
    size_t klen, vlen;
} s_put_t;

typedef struct {
    s_put_t *v;
    size_t n, cap;
} s_puts_t;

static void
s_puts_add(s_puts_t *puts, store_cf_t cf, const void *key, size_t klen, uint8_t *val,
           size_t vlen)
{
    if (puts->n == puts->cap) {
        puts->cap = puts->cap ? 2 * puts->cap : 8;
        puts->v = realloc(puts->v, puts->cap * sizeof *puts->v);
        CRM_ASSERT_ALLOC(puts->v);
    }
    s_put_t *p = &puts->v[puts->n++];
    p->cf = cf;
    p->key = malloc(klen);
    CRM_ASSERT_ALLOC(p->key);
    memcpy(p->key, key, klen);
    p->klen = klen;
    p->val = val;
    p->vlen = vlen;
}

static void
s_puts_stage(s_puts_t *puts, store_group_t *g)
{
    for (size_t i = 0; i < puts->n; i++) {
        store_group_put(g, puts->v[i].cf, puts->v[i].key, puts->v[i].klen, puts->v[i].val,
                        puts->v[i].vlen);
        free(puts->v[i].key);
        free(puts->v[i].val);
    }
    free(puts->v);
    memset(puts, 0, sizeof *puts);
}

static int
s_cmp_id(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is the record ID of kind E (REC and BEFORE unpacked, may be NULL) the customer's? */
static bool
s_ours(const Crm__EraseJob *job, const crm_entity_t *e, const char *id,
       const ProtobufCMessage *rec, const ProtobufCMessage *before)
{
    if (!e->parent)
        return !strcmp(e->name, "customer") && !strcmp(id, job->customer_id);
    if (strcmp(e->parent, "customer"))
        return false;
    const char *pf = crm_entity_field_with(e, CRM_F_PARENT);
    if ((rec && !strcmp(crm_record_get_str(rec, pf), job->customer_id)) ||
        (before && !strcmp(crm_record_get_str(before, pf), job->customer_id)))
        return true;
    return job->n_ids && bsearch(&id, job->ids, job->n_ids, sizeof *job->ids, s_cmp_id);
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

/* Scrub the audit entries of record NUM of kind E under the 'r' key PREFIX
   (the record's, or the record's at one time), those of change SEQ only, or
   with SEQ 0 those of every change before END, after key AFTER (or from the start), at most MAX of them.
   An entry is kept by record and time ('r') and by time ('t'): both are
   rewritten. Returns how many were looked at; *LAST gets the last key. */
static size_t
s_scrub_audit_range(store_group_t *g, const crm_entity_t *e, const uint8_t *prefix, size_t plen,
                    uint64_t seq, uint64_t end, const ProtobufCBinaryData *after, size_t max,
                    uint8_t last[26], s_puts_t *puts)
{
    store_iter_t *it = store_group_iter_new(g, STORE_CF_AUDIT);
    size_t n = 0;
    if (after && after->len == 26) {
        store_iter_seek(it, after->data, after->len);
        if (store_iter_valid(it)) {
            size_t klen;
            const char *k = store_iter_key(it, &klen);
            if (klen == 26 && !memcmp(k, after->data, 26))
                store_iter_next(it);
        }
    } else {
        store_iter_seek(it, prefix, plen);
    }
    for (; store_iter_valid(it) && n < max; store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != 26 || memcmp(k, prefix, plen))
            break;
        n++;
        memcpy(last, k, 26);
        const char *v = store_iter_value(it, &vlen);
        if (!v)
            continue; /* does not open (logged): nothing in it can be read, or scrubbed */
        Crm__AuditEntry *entry = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__audit_entry__descriptor, (const uint8_t *)v, vlen,
                             (ProtobufCMessage **)&entry, errbuf) != CRM_OK) {
            crm_log(CRM_LOG_ERROR, "erase: an audit entry of %s %llu cannot be read, so not "
                                   "scrubbed: %s",
                    e->name, (unsigned long long)store_get_be64(prefix + 2), errbuf);
            continue;
        }
        /* an entry of a change made after the erasure holds new data: it stays */
        if ((seq ? entry->seq == seq : entry->seq < end) && s_scrub_audit(entry, e)) {
            size_t len;
            uint8_t *packed = crm_proto_pack(&entry->base, &len), tkey[17];
            uint8_t *copy = malloc(len);
            CRM_ASSERT_ALLOC(copy);
            memcpy(copy, packed, len);
            tkey[0] = 't';
            memcpy(tkey + 1, k + 10, 16);
            s_puts_add(puts, STORE_CF_AUDIT, k, klen, packed, len);
            s_puts_add(puts, STORE_CF_AUDIT, tkey, sizeof tkey, copy, len);
        }
        crm_proto_free((ProtobufCMessage **)&entry);
    }
    store_iter_destroy(&it);
    return n;
}

/* D, a packed record of kind E, unpacked into *REC (NULL if it cannot be). */
static void
s_unpack(const crm_entity_t *e, const ProtobufCBinaryData *d, ProtobufCMessage **rec)
{
    char errbuf[CRM_ERRBUF];
    *rec = NULL;
    if (d->len && crm_proto_unpack(e->desc, d->data, d->len, rec, errbuf) != CRM_OK)
        *rec = NULL;
}

/* REC (of kind E) packed with its personal fields erased (malloc'd), or NULL if nothing
   in it is personal. REC is changed. */
static uint8_t *
s_erased_packed(const crm_entity_t *e, ProtobufCMessage *rec, size_t *len)
{
    return rec && crm_record_erase(e, rec, NULL, 0) ? crm_proto_pack(rec, len) : NULL;
}

/* *D (a packed record of kind E, in a message unpacked by protobuf-c) replaced by
   NEW (malloc'd) if not NULL: the old bytes are kept in *WAS to be given back. */
static void
s_lend(ProtobufCBinaryData *d, uint8_t *new_data, size_t len, ProtobufCBinaryData *was)
{
    *was = *d;
    if (new_data) {
        d->data = new_data;
        d->len = len;
    }
}

/* Give back what s_lend() replaced, freeing the lent bytes. */
static void
s_unlend(ProtobufCBinaryData *d, const ProtobufCBinaryData *was)
{
    if (d->data != was->data)
        free(d->data);
    *d = *was;
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
    size_t n = 0;
    ProtobufCBinaryData **slots = NULL;
    const crm_entity_t **kinds = NULL;
    if (r->body_case == CRM__REPLY__BODY_ENTITY) {
        n = r->entity->n_records;
        slots = calloc(n + 1, sizeof *slots);
        kinds = calloc(n + 1, sizeof *kinds);
        CRM_ASSERT(slots && kinds);
        for (size_t i = 0; i < n; i++) {
            slots[i] = &r->entity->records[i];
            kinds[i] = crm_entity_by_name(r->entity->kind);
        }
    } else if (r->body_case == CRM__REPLY__BODY_CONVERT) {
        n = 3;
        slots = calloc(n, sizeof *slots);
        kinds = calloc(n, sizeof *kinds);
        CRM_ASSERT(slots && kinds);
        slots[0] = &r->convert->customer;
        slots[1] = &r->convert->deal;
        slots[2] = &r->convert->activity;
        kinds[0] = crm_entity_by_name("customer");
        kinds[1] = crm_entity_by_name("deal");
        kinds[2] = crm_entity_by_name("activity");
    }
    ProtobufCBinaryData *was = calloc(n + 1, sizeof *was);
    CRM_ASSERT_ALLOC(was);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *rec = NULL;
        size_t len = 0;
        uint8_t *scrubbed = NULL;
        if (kinds[i])
            s_unpack(kinds[i], slots[i], &rec);
        if (rec && s_ours(job, kinds[i], crm_record_get_str(rec, "id"), rec, NULL))
            scrubbed = s_erased_packed(kinds[i], rec, &len);
        s_lend(slots[i], scrubbed, len, &was[i]);
        any |= scrubbed != NULL;
        crm_proto_free(&rec);
    }
    uint8_t *out = NULL;
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
        s_unlend(slots[i], &was[i]);
    free(was);
    free(slots);
    free(kinds);
    crm_proto_free((ProtobufCMessage **)&r);
    return out;
}

/* Scrub the replies kept for idempotent retries after JOB->idem_after, at most
   MAX; true when none is left. */
static bool
s_scrub_kept_slice(store_group_t *g, Crm__EraseJob *job, size_t max, int64_t t0)
{
    static const char prefix[] = "idem/";
    s_puts_t puts = {0};
    store_iter_t *it = store_group_iter_new(g, STORE_CF_META);
    bool done = true;
    size_t n = 0;
    if (job->idem_after.len) {
        store_iter_seek(it, job->idem_after.data, job->idem_after.len);
        size_t klen;
        const char *k = store_iter_valid(it) ? store_iter_key(it, &klen) : NULL;
        if (k && klen == job->idem_after.len && !memcmp(k, job->idem_after.data, klen))
            store_iter_next(it); /* done in the last slice */
    } else {
        store_iter_seek(it, prefix, sizeof prefix - 1);
    }
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < sizeof prefix - 1 || memcmp(k, prefix, sizeof prefix - 1))
            break;
        if (n++ >= max || crm_time_mono_us() - t0 >= SLICE_US) {
            done = false;
            break;
        }
        const char *v = store_iter_value(it, &vlen); /* NULL, 0: does not open, stepped over */
        size_t len = 0;
        uint8_t *scrubbed = vlen >= 8 && (int64_t)store_get_be64((const uint8_t *)v) <= job->at
                                ? s_scrub_kept(job, (const uint8_t *)v, vlen, &len)
                                : NULL; /* kept after the erasure: new data */
        if (scrubbed)
            s_puts_add(&puts, STORE_CF_META, k, klen, scrubbed, len);
        crm_proto_release(job->idem_after.data); /* the job was unpacked: its allocator */
        job->idem_after.data = crm_proto_alloc(klen);
        memcpy(job->idem_after.data, k, klen);
        job->idem_after.len = klen;
    }
    store_iter_destroy(&it);
    s_puts_stage(&puts, g);
    return done;
}

/* Scrub every audit entry of the customer and of its records at the
   erasure (JOB->ids), whatever change made it (the change log may have been
   trimmed by retention; the audit trail is kept): after JOB->audit_i and
   JOB->audit_after, at most MAX entries; true when all are done. */
static bool
s_scrub_audit_slice(store_group_t *g, Crm__EraseJob *job, size_t max, int64_t t0)
{
    const crm_entity_t *ce = crm_entity_by_name("customer");
    s_puts_t puts = {0};
    size_t n = 0;
    while (job->audit_i <= job->n_ids) {
        const char *id = job->audit_i ? job->ids[job->audit_i - 1] : job->customer_id;
        const crm_entity_t *e = job->audit_i ? crm_entity_by_prefix(id[0]) : ce;
        uint64_t num = e ? crm_entity_parse_id(e, id) : 0;
        if (!num) {
            job->audit_i++;
            continue;
        }
        uint8_t prefix[10], last[26];
        prefix[0] = 'r';
        prefix[1] = (uint8_t)e->prefix;
        store_put_be64(prefix + 2, num);
        size_t budget = max - n;
        size_t seen = s_scrub_audit_range(g, e, prefix, sizeof prefix, 0, job->end,
                                          &job->audit_after, budget, last, &puts);
        n += seen;
        if (seen == budget) { /* more of this record may follow */
            crm_proto_release(job->audit_after.data);
            job->audit_after.data = crm_proto_alloc(sizeof last);
            memcpy(job->audit_after.data, last, sizeof last);
            job->audit_after.len = sizeof last;
        } else {
            crm_proto_release(job->audit_after.data);
            job->audit_after.data = NULL;
            job->audit_after.len = 0;
            job->audit_i++;
        }
        if (n >= max || crm_time_mono_us() - t0 >= SLICE_US)
            break;
    }
    s_puts_stage(&puts, g);
    return job->audit_i > job->n_ids;
}

/* Scrub change SEQ of JOB's customer, and the audit entries of its parts;
   true if the change was rewritten. Read through the group: what an earlier
   slice (of this job or another) rewrote counts even before it lands. */
static bool
s_scrub_change(store_group_t *g, const Crm__EraseJob *job, uint64_t seq)
{
    uint8_t key[8];
    store_put_be64(key, seq);
    store_val_t val = {0};
    if (store_group_get(g, STORE_CF_CHANGELOG, key, sizeof key, &val) != CRM_OK)
        return false; /* trimmed by retention meanwhile */
    Crm__Change *ch = NULL;
    char errbuf[CRM_ERRBUF];
    crm_err_t rc = crm_proto_unpack(&crm__change__descriptor, (const uint8_t *)val.data, val.len,
                                    (ProtobufCMessage **)&ch, errbuf);
    store_val_release(&val);
    if (rc != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "erase: change %llu cannot be read, so not scrubbed: %s",
                (unsigned long long)seq, errbuf);
        return false;
    }
    bool rewritten = false;
    s_puts_t puts = {0};
    ProtobufCBinaryData *was = calloc(2 * ch->n_parts + 1, sizeof *was);
    CRM_ASSERT_ALLOC(was);
    for (size_t i = 0; i < ch->n_parts; i++) {
        Crm__ChangePart *p = ch->parts[i];
        const crm_entity_t *e = crm_entity_by_name(p->kind);
        ProtobufCMessage *rec = NULL, *before = NULL;
        if (e) { /* not a user's change */
            s_unpack(e, &p->record, &rec);
            s_unpack(e, &p->before, &before);
        }
        size_t rlen = 0, blen = 0;
        uint8_t *r2 = NULL, *b2 = NULL;
        if (e && s_ours(job, e, p->id, rec, before)) {
            r2 = s_erased_packed(e, rec, &rlen);
            b2 = s_erased_packed(e, before, &blen);
            rewritten |= r2 || b2;
            uint64_t num = crm_entity_parse_id(e, p->id);
            if (num) {
                uint8_t prefix[18], last[26];
                prefix[0] = 'r';
                prefix[1] = (uint8_t)e->prefix;
                store_put_be64(prefix + 2, num);
                store_put_be64(prefix + 10, (uint64_t)ch->time);
                s_scrub_audit_range(g, e, prefix, sizeof prefix, seq, 0, NULL, 64, last, &puts);
            }
        }
        s_lend(&p->record, r2, rlen, &was[2 * i]);
        s_lend(&p->before, b2, blen, &was[2 * i + 1]);
        crm_proto_free(&rec);
        crm_proto_free(&before);
    }
    if (rewritten) {
        size_t len;
        uint8_t *packed = crm_proto_pack(&ch->base, &len);
        s_puts_add(&puts, STORE_CF_CHANGELOG, key, sizeof key, packed, len);
    }
    for (size_t i = 0; i < ch->n_parts; i++) {
        s_unlend(&ch->parts[i]->record, &was[2 * i]);
        s_unlend(&ch->parts[i]->before, &was[2 * i + 1]);
    }
    free(was);
    crm_proto_free((ProtobufCMessage **)&ch);
    s_puts_stage(&puts, g);
    return rewritten;
}

bool
erase_tick(erase_t *self, store_t *store, store_group_t *g, size_t large_bytes)
{
    if (!self || !self->check || (self->gap_us && crm_time_mono_us() < self->next_us))
        return false;
    self->next_us = crm_time_mono_us() + self->gap_us;
    if (store_write_health(store, NULL) != CRM_OK)
        return false; /* the job as stored says where to go on, once writes work again */
    uint8_t key[JOB_KEY + 1];
    Crm__EraseJob *job = NULL, *ids = NULL;
    s_puts_t dropped = {0};
    /* through the group: a job staged this turn, and the progress of the last
       slice, count before they are committed */
    store_iter_t *it = store_group_iter_new(g, STORE_CF_META);
    for (store_iter_seek(it, JOB_PREFIX, sizeof JOB_PREFIX - 1); store_iter_valid(it) && !job;
         store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < sizeof JOB_PREFIX - 1 || memcmp(k, JOB_PREFIX, sizeof JOB_PREFIX - 1))
            break;
        const char *v = store_iter_value(it, &vlen);
        char errbuf[CRM_ERRBUF];
        if (klen != JOB_KEY) {
            continue; /* none of ours */
        } else if (!v) {
            continue; /* does not open (logged and counted): left for check, not dropped */
        } else if (crm_proto_unpack(&crm__erase_job__descriptor, (const uint8_t *)v, vlen,
                                    (ProtobufCMessage **)&job, errbuf) != CRM_OK) {
            crm_log(CRM_LOG_ERROR, "erase: job %llu cannot be read, so it is dropped: %s",
                    (unsigned long long)store_get_be64((const uint8_t *)k + JOB_KEY - 8), errbuf);
            s_puts_add(&dropped, STORE_CF_META, k, klen, NULL, 0); /* deleted below */
            job = NULL;
        } else {
            memcpy(key, k, JOB_KEY);
        }
    }
    store_iter_destroy(&it);
    for (size_t i = 0; i < dropped.n; i++) {
        store_group_delete(g, STORE_CF_META, dropped.v[i].key, dropped.v[i].klen);
        free(dropped.v[i].key);
    }
    free(dropped.v);
    if (!job) {
        self->check = false;
        return false;
    }
    /* its records' ids, sorted, kept once under their own key */
    key[JOB_KEY] = 'i';
    store_val_t iv = {0};
    char errbuf[CRM_ERRBUF];
    if (store_group_get(g, STORE_CF_META, key, sizeof key, &iv) == CRM_OK &&
        crm_proto_unpack(&crm__erase_job__descriptor, (const uint8_t *)iv.data, iv.len,
                         (ProtobufCMessage **)&ids, errbuf) == CRM_OK) {
        job->ids = ids->ids; /* borrowed until the job is packed */
        job->n_ids = ids->n_ids;
    }
    store_val_release(&iv);
    uint64_t next = job->next, first = store_changelog_first(store);
    if (next < first)
        next = first;
    /* the changes before the erasure are read as committed or staged: wait for
       the erasure itself to be committed, so that they all are numbered */
    if (job->end > store_last_seq(store) + 1) {
        job->ids = NULL;
        job->n_ids = 0;
        crm_proto_free((ProtobufCMessage **)&job);
        crm_proto_free((ProtobufCMessage **)&ids);
        return false;
    }
    int64_t t0 = crm_time_mono_us();
    uint64_t rewritten = 0;
    bool done = false, large = false;
    if (job->phase == 0) { /* the change log */
        for (size_t n = 0; next < job->end && n < self->slice && crm_time_mono_us() - t0 < SLICE_US;
             n++, next++) {
            /* one entry is rewritten whole: that of a change of thousands of records
               (megabytes) took 25-60 ms, for the caller's thread to do elsewhere */
            uint8_t ck[8];
            size_t size = 0;
            store_put_be64(ck, next);
            if (large_bytes &&
                store_value_size(store, STORE_CF_CHANGELOG, ck, sizeof ck, &size) == CRM_OK &&
                size > large_bytes) {
                large = true;
                break;
            }
            rewritten += s_scrub_change(g, job, next);
        }
        job->next = next;
        job->rewritten += rewritten;
        if (next >= job->end)
            job->phase = 1;
    } else if (job->phase == 1) { /* the audit trail of each of its records */
        if (s_scrub_audit_slice(g, job, self->slice, t0))
            job->phase = 2;
    } else { /* the replies kept for idempotent retries */
        done = s_scrub_kept_slice(g, job, self->slice, t0);
    }
    job->ids = NULL; /* given back: they stay under their own key */
    job->n_ids = 0;
    crm_proto_free((ProtobufCMessage **)&ids);
    if (done) {
        store_group_delete(g, STORE_CF_META, key, sizeof key); /* the ids */
        store_group_delete(g, STORE_CF_META, key, JOB_KEY);
        crm_log(CRM_LOG_INFO, "erase: the history of customer %s is scrubbed (%llu change-log "
                              "entries rewritten)",
                job->customer_id, (unsigned long long)job->rewritten);
    } else {
        size_t len;
        uint8_t *packed = crm_proto_pack(&job->base, &len);
        store_group_put(g, STORE_CF_META, key, JOB_KEY, packed, len);
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
    if (large)
        self->next_us = 0; /* the next slice, elsewhere, goes on at once (no --fault gap) */
    return large;
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
    if (dispatch_large(ctx, total))
        return CRM_OK; /* checked and done on the writer thread (h_erase returns) */
    mutation_t *m = mutation_begin(g, store, ctx->session.user);
    mutation_erasure(m);
    ProtobufCMessage *after = NULL;
    *records = 0;
    if (s_erase_record(ctx, m, e, num, cur, &after))
        (*records)++;
    crm_err_t rc = CRM_OK;
    char **ids_of = NULL; /* grown as needed: records staged this turn count too */
    size_t cap = 0;
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
            for (size_t i = 0; i < n; i++) {
                ProtobufCMessage *child = NULL;
                if (records_group_get(g, k, ids[i], &child) != CRM_OK)
                    continue;
                char id[24];
                crm_entity_format_id(k, ids[i], id);
                if (job->n_ids == cap) {
                    cap = cap ? 2 * cap : total + 16;
                    ids_of = realloc(ids_of, cap * sizeof *ids_of);
                    CRM_ASSERT_ALLOC(ids_of);
                }
                ids_of[job->n_ids] = dispatch_own(ctx, strdup(id));
                CRM_ASSERT_ALLOC(ids_of[job->n_ids]);
                job->n_ids++;
                if (s_erase_record(ctx, m, k, ids[i], child, NULL))
                    (*records)++;
                crm_proto_free(&child);
                if (mutation_parts(m) > RECORDS_MAX) { /* with what this turn staged */
                    rc = dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                                        "'%s' has more than %d records: an erasure changes them "
                                        "all in one write; delete some of them first",
                                        job->customer_id, RECORDS_MAX);
                    break;
                }
            }
            if (n)
                after_id = ids[n - 1];
            more = more && n > 0;
        }
    }
    job->ids = dispatch_own(ctx, ids_of);
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

/* The customer named by the request: its kind, number and canonical id. */
static crm_err_t
s_customer(req_ctx_t *ctx, const crm_entity_t **e, uint64_t *num, char id[24])
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_ENTITY)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request names no customer");
    const Crm__EntityRequest *r = ctx->req->entity;
    *e = crm_entity_by_name("customer");
    if (*r->kind && strcmp(r->kind, (*e)->name))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "only a customer is erased, with all its records: crm customer "
                              "erase ID");
    if (!(*num = crm_entity_parse_id(*e, r->id)))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "'%.40s' is not a customer id (like c42)", r->id);
    crm_entity_format_id(*e, *num, id);
    Crm__EntityReply *out = &ctx->body.entity;
    crm__entity_reply__init(out);
    out->kind = (char *)(*e)->name;
    ctx->reply.body_case = CRM__REPLY__BODY_ENTITY;
    ctx->reply.entity = out;
    return CRM_OK;
}

crm_err_t
h_erase_status(req_ctx_t *ctx)
{
    const crm_entity_t *e = NULL;
    uint64_t num = 0;
    char id[24];
    crm_err_t rc = s_customer(ctx, &e, &num, id);
    if (rc != CRM_OK)
        return rc;
    uint8_t key[JOB_KEY];
    s_job_key(num, key);
    store_val_t v = {0};
    rc = ctx->env->group ? store_group_get(ctx->env->group, STORE_CF_META, key, sizeof key, &v)
                         : store_get(ctx->env->store, STORE_CF_META, key, sizeof key, &v);
    Crm__EraseJob *job = NULL;
    char errbuf[CRM_ERRBUF];
    if (rc == CRM_OK && crm_proto_unpack(&crm__erase_job__descriptor, (const uint8_t *)v.data,
                                         v.len, (ProtobufCMessage **)&job, errbuf) == CRM_OK) {
        ctx->body.entity.count = 1;
        ctx->body.entity.scrub_left = job->end > job->next ? job->end - job->next : 0;
    }
    store_val_release(&v);
    crm_proto_free((ProtobufCMessage **)&job);
    if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND)
        return dispatch_error(ctx, rc, "cannot read the erasure's progress");
    return CRM_OK;
}

crm_err_t
h_erase(req_ctx_t *ctx)
{
    const crm_entity_t *e = NULL;
    uint64_t num = 0;
    char id[24];
    crm_err_t rc = s_customer(ctx, &e, &num, id);
    if (rc != CRM_OK)
        return rc;
    store_group_t *g = ctx->env->group;
    store_t *store = ctx->env->store;
    uint8_t key[JOB_KEY];
    s_job_key(num, key);
    Crm__EntityReply *out = &ctx->body.entity;
    Crm__EraseJob job = CRM__ERASE_JOB__INIT;
    job.customer_id = id;
    uint64_t records = 0, seq = 0;
    ProtobufCMessage *cur = NULL;
    rc = records_group_get(g, e, num, &cur);
    if (rc == CRM_OK) {
        rc = s_erase_live(ctx, e, num, cur, &job, &records, &seq);
        crm_proto_free(&cur);
        if (rc != CRM_OK || ctx->large)
            return rc;
        if (!seq) /* erased before: the history is scrubbed again */
            s_audit(ctx, e, num, REASON " (its records held nothing more to erase)");
    } else if (rc == CRM_ERR_NOT_FOUND) {
        Crm__Binned *b = NULL;
        rc = bin_get(g, e, num, &b);
        if (rc == CRM_OK) { /* deleted: out of the bin for good, its records' ids kept */
            records = 1 + b->n_parts;
            job.ids = dispatch_own(ctx, calloc(b->n_parts + 1, sizeof *job.ids));
            CRM_ASSERT_ALLOC(job.ids);
            for (uint32_t i = 0; i < b->n_parts; i++) {
                Crm__BinnedPart *part = NULL;
                const crm_entity_t *k;
                ProtobufCMessage *rec = NULL;
                char perr[CRM_ERRBUF];
                if (bin_part(g, e, num, i, &part) == CRM_OK &&
                    (k = crm_entity_by_name(part->kind)) &&
                    crm_proto_unpack(k->desc, part->record.data, part->record.len, &rec,
                                     perr) == CRM_OK) {
                    job.ids[job.n_ids] = dispatch_own(ctx, strdup(crm_record_get_str(rec, "id")));
                    CRM_ASSERT_ALLOC(job.ids[job.n_ids]);
                    job.n_ids++;
                }
                crm_proto_free(&rec);
                crm_proto_free((ProtobufCMessage **)&part);
            }
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
            /* merged into another: its own history is scrubbed here, and the answer
               names the customer that holds its data now */
            char mkey[64];
            int mlen = snprintf(mkey, sizeof mkey, "merged/%s", id);
            if (store_group_get(g, STORE_CF_META, mkey, (size_t)mlen, &v) == CRM_OK &&
                v.len < 24) {
                out->merged_into = dispatch_own(ctx, strndup(v.data, v.len));
                CRM_ASSERT_ALLOC(out->merged_into);
            }
            store_val_release(&v);
            s_audit(ctx, e, num, *out->merged_into
                                     ? REASON " (merged into another before: its history is "
                                              "scrubbed)"
                                     : REASON " (deleted and purged before: its history is "
                                              "scrubbed)");
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
    job.at = crm_time_now_ms();
    /* the ids once, sorted (s_ours searches them), under their own key */
    Crm__EraseJob only = CRM__ERASE_JOB__INIT;
    only.ids = job.ids;
    only.n_ids = job.n_ids;
    if (only.n_ids)
        qsort(only.ids, only.n_ids, sizeof *only.ids, s_cmp_id);
    job.ids = NULL;
    job.n_ids = 0;
    size_t len;
    uint8_t *packed = crm_proto_pack(&job.base, &len), ikey[JOB_KEY + 1];
    store_group_put(g, STORE_CF_META, key, sizeof key, packed, len);
    free(packed);
    memcpy(ikey, key, JOB_KEY);
    ikey[JOB_KEY] = 'i';
    if (only.n_ids) {
        packed = crm_proto_pack(&only.base, &len);
        store_group_put(g, STORE_CF_META, ikey, sizeof ikey, packed, len);
        free(packed);
    } /* else an earlier erasure's ids (of a binned customer, say) stay in use */
    erase_wake(ctx->env->erase);
    out->count = records;
    out->scrub_left = job.end > job.next ? job.end - job.next : 0;
    return CRM_OK;
}
