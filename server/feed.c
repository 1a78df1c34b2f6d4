/*  =========================================================================
    feed - the live change feed (see feed.h)
    =========================================================================
*/
#include "feed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "authz.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "session.h"

#define RING 8192              /* recent change-log entries kept decoded */
#define BUDGET 512             /* events per subscriber per pump */
#define HEARTBEAT_US 1000000   /* progress at least this often */
#define STRETCH_US 100000      /* ... and this soon after a filtered-out stretch */
#define RECHECK_US 1000000     /* re-check the subscriber's user this often */
#define MAX_KINDS 8
#define MAX_SUBS 10000         /* subscribers in all */
#define MAX_SUBS_PER_USER 100  /* ... and per user */

/* One committed change, decoded once and packed once per variant. */
typedef struct {
    uint64_t seq;                 /* 0: empty slot */
    Crm__Change *change;
    const crm_entity_t *e;        /* NULL for non-record kinds (users) */
    ProtobufCMessage *record;     /* decoded change->record, or NULL */
    int64_t commit_us;
    uint8_t *packed[2];           /* Reply{event} clear / masked, built on demand */
    size_t len[2];
} s_event_t;

typedef struct {
    uint8_t rid[256];
    size_t rid_len;
    char user_id[48];             /* Z85 key, to re-check the user */
    Crm__User *user;              /* owned, refreshed every RECHECK_US */
    uint64_t cursor;              /* last sequence number considered */
    char kinds[MAX_KINDS][16];
    size_t nkinds;
    char customer[24], owner[65];
    bool department;
    int64_t last_sent_us, last_check_us;
    bool dead;
} s_sub_t;

struct feed {
    store_t *store;               /* borrowed */
    feed_config_t cfg;
    s_event_t ring[RING];         /* the newest RING changes */
    s_event_t scratch;            /* an older change being replayed: never evicts the ring */
    s_sub_t **subs;
    size_t nsubs, cap;
    uint64_t committed;           /* last sequence number known committed */
};

feed_t *
feed_new(store_t *store, const feed_config_t *cfg)
{
    feed_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    self->cfg = *cfg;
    self->committed = store_last_seq(store);
    return self;
}

static void
s_event_clear(s_event_t *ev)
{
    crm_proto_free((ProtobufCMessage **)&ev->change);
    crm_proto_free(&ev->record);
    free(ev->packed[0]);
    free(ev->packed[1]);
    memset(ev, 0, sizeof *ev);
}

static void
s_sub_free(s_sub_t **sub_p)
{
    s_sub_t *sub = *sub_p;
    if (!sub)
        return;
    crm_proto_free((ProtobufCMessage **)&sub->user);
    free(sub);
    *sub_p = NULL;
}

void
feed_reset(feed_t *self)
{
    for (size_t i = 0; i < self->nsubs; i++)
        s_sub_free(&self->subs[i]);
    self->nsubs = 0;
}

void
feed_destroy(feed_t **self_p)
{
    feed_t *self = *self_p;
    if (!self)
        return;
    feed_reset(self);
    free(self->subs);
    for (size_t i = 0; i < RING; i++)
        s_event_clear(&self->ring[i]);
    s_event_clear(&self->scratch);
    free(self);
    *self_p = NULL;
}

size_t
feed_subscribers(const feed_t *self)
{
    return self->nsubs;
}

/* The change SEQ, from the cache or the log; NULL if the log no longer has it. */
static s_event_t *
s_event(feed_t *self, uint64_t seq)
{
    /* replaying far behind must not push the live window out of the cache */
    uint64_t newest = store_last_seq(self->store);
    s_event_t *ev = newest >= RING && seq <= newest - RING ? &self->scratch
                                                           : &self->ring[seq % RING];
    if (ev->seq == seq)
        return ev;
    s_event_clear(ev);
    store_val_t val = {0};
    char errbuf[CRM_ERRBUF];
    if (store_changelog_get(self->store, seq, &val) != CRM_OK)
        return NULL;
    crm_err_t rc = crm_proto_unpack(&crm__change__descriptor, (const uint8_t *)val.data, val.len,
                                    (ProtobufCMessage **)&ev->change, errbuf);
    store_val_release(&val);
    if (rc != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "feed: change %llu is corrupt: %s", (unsigned long long)seq,
                errbuf);
        return NULL;
    }
    ev->e = crm_entity_by_name(ev->change->kind);
    if (ev->e && ev->change->record.len &&
        crm_proto_unpack(ev->e->desc, ev->change->record.data, ev->change->record.len,
                         &ev->record, errbuf) != CRM_OK)
        ev->e = NULL;
    ev->seq = seq;
    return ev;
}

void
feed_committed(feed_t *self, int64_t now_us)
{
    uint64_t last = store_last_seq(self->store);
    if (last <= self->committed)
        return;
    if (self->nsubs) /* decode once now, with the commit time, for everyone */
        for (uint64_t seq = last > RING ? (last - RING + 1 > self->committed + 1
                                               ? last - RING + 1
                                               : self->committed + 1)
                                         : self->committed + 1;
             seq <= last; seq++) {
            s_event_t *ev = s_event(self, seq);
            if (ev)
                ev->commit_us = now_us;
        }
    self->committed = last;
}

/* ==== Subscribing ==== */

crm_err_t
feed_watch(feed_t *self, const void *rid, size_t rid_len, const char *user_id,
           const Crm__User *user, const Crm__WatchRequest *w, uint64_t *cursor, char *errbuf)
{
    uint64_t first = store_changelog_first(self->store), last = store_last_seq(self->store);
    /* libzmq's own routing ids start with a zero byte and are never reused;
       a peer that chose its own could take over a departed subscriber's id */
    if (rid_len == 0 || ((const uint8_t *)rid)[0] != 0) {
        snprintf(errbuf, CRM_ERRBUF, "watch needs a connection without a custom routing id");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (rid_len > sizeof((s_sub_t *)0)->rid || w->n_kinds > MAX_KINDS) {
        snprintf(errbuf, CRM_ERRBUF, "too many kinds (at most %d)", MAX_KINDS);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < w->n_kinds; i++)
        if ((!crm_entity_by_name(w->kinds[i]) && strcmp(w->kinds[i], "user")) ||
            strlen(w->kinds[i]) >= 16) {
            snprintf(errbuf, CRM_ERRBUF, "unknown record kind '%.40s'", w->kinds[i]);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    if (w->department && user->role != CRM__ROLE__MANAGER && user->role != CRM__ROLE__ADMIN) {
        snprintf(errbuf, CRM_ERRBUF,
                 "permission denied: only managers watch their whole department");
        return CRM_ERR_PERMISSION_DENIED;
    }
    if (w->since > last) {
        snprintf(errbuf, CRM_ERRBUF, "sequence %llu is in the future: the last is %llu",
                 (unsigned long long)w->since, (unsigned long long)last);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (w->since && w->since + 1 < first) {
        snprintf(errbuf, CRM_ERRBUF,
                 "log retained from %llu: changes after %llu are gone; re-read the records "
                 "and watch from now (or --since %llu)",
                 (unsigned long long)first, (unsigned long long)w->since,
                 (unsigned long long)(first - 1));
        return CRM_ERR_OUT_OF_RANGE;
    }
    /* one watch per connection: a new WATCH replaces the old one */
    size_t mine = 0;
    for (size_t i = 0; i < self->nsubs; i++) {
        s_sub_t *o = self->subs[i];
        if (o->rid_len == rid_len && !memcmp(o->rid, rid, rid_len))
            o->dead = true;
        else if (!strcmp(o->user->name, user->name) && !o->dead)
            mine++;
    }
    if (self->nsubs >= MAX_SUBS || mine >= MAX_SUBS_PER_USER) {
        snprintf(errbuf, CRM_ERRBUF,
                 "too many watchers (%zu for '%s', %zu in all; at most %d and %d): close some",
                 mine, user->name, self->nsubs, MAX_SUBS_PER_USER, MAX_SUBS);
        return CRM_ERR_RESOURCE_EXHAUSTED;
    }
    s_sub_t *sub = calloc(1, sizeof *sub);
    CRM_ASSERT_ALLOC(sub);
    memcpy(sub->rid, rid, rid_len);
    sub->rid_len = rid_len;
    snprintf(sub->user_id, sizeof sub->user_id, "%s", user_id ? user_id : "");
    size_t len;
    uint8_t *packed = crm_proto_pack(&user->base, &len);
    crm_proto_unpack(&crm__user__descriptor, packed, len, (ProtobufCMessage **)&sub->user,
                     errbuf);
    free(packed);
    sub->cursor = w->since ? w->since : last;
    for (size_t i = 0; i < w->n_kinds; i++)
        snprintf(sub->kinds[sub->nkinds++], 16, "%s", w->kinds[i]);
    snprintf(sub->customer, sizeof sub->customer, "%s", w->customer);
    snprintf(sub->owner, sizeof sub->owner, "%s", w->owner);
    sub->department = w->department;
    sub->last_sent_us = sub->last_check_us = crm_time_mono_us();
    if (self->nsubs == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->subs = realloc(self->subs, self->cap * sizeof *self->subs);
        CRM_ASSERT_ALLOC(self->subs);
    }
    self->subs[self->nsubs++] = sub;
    *cursor = sub->cursor;
    return CRM_OK;
}

/* ==== Delivery ==== */

/* May SUB see EV, and through which variant (0 clear, 1 masked)? */
static bool
s_visible(const s_sub_t *sub, const s_event_t *ev, int *variant)
{
    const Crm__Change *c = ev->change;
    bool kind_ok = sub->nkinds == 0;
    for (size_t i = 0; i < sub->nkinds; i++)
        kind_ok = kind_ok || !strcmp(sub->kinds[i], c->kind);
    if (!kind_ok || (sub->department && c->actor_department != sub->user->department))
        return false;
    *variant = 0;
    /* users, and changes without a record to judge: admins only */
    if (!ev->e || !ev->record)
        return sub->user->role == CRM__ROLE__ADMIN && !*sub->customer && !*sub->owner;
    char errbuf[CRM_ERRBUF];
    if (authz_record(sub->user, ev->e, AUTHZ_READ, ev->record, NULL, NULL, 0, errbuf) != CRM_OK)
        return false;
    if (*sub->customer) {
        const char *parent = crm_entity_field_with(ev->e, CRM_F_PARENT);
        bool hit = !strcmp(ev->e->name, "customer") ? !strcmp(c->id, sub->customer)
                                                    : parent && !strcmp(crm_record_get_str(
                                                                            ev->record, parent),
                                                                        sub->customer);
        if (!hit)
            return false;
    }
    if (*sub->owner) { /* owned before or after: a reassignment leaves the old owner's view */
        const char *of = crm_entity_field_with(ev->e, CRM_F_OWNER);
        if (!of || (strcmp(crm_record_get_str(ev->record, of), sub->owner) &&
                    strcmp(c->owner_before, sub->owner)))
            return false;
    }
    /* hidden before or after the change: masked (consent given in this very change
       does not reveal what it changed) */
    *variant = authz_hides(sub->user, ev->e, ev->record) ||
                       (c->hidden_before && authz_masks_pii(sub->user, ev->e))
                   ? 1
                   : 0;
    return true;
}

/* The packed Reply{event} of EV in VARIANT, built once. */
static const uint8_t *
s_packed(s_event_t *ev, int variant, const Crm__User *viewer, size_t *len)
{
    if (!ev->packed[variant]) {
        const Crm__Change *c = ev->change;
        Crm__Event event = CRM__EVENT__INIT;
        Crm__Reply reply = CRM__REPLY__INIT;
        event.seq = ev->seq;
        event.time = c->time;
        event.actor = c->actor;
        event.kind = c->kind;
        event.id = c->id;
        event.op = c->op;
        event.fields = c->fields;
        event.n_fields = c->n_fields;
        event.commit_us = ev->commit_us;
        event.record = c->record;
        uint8_t *masked = NULL;
        event.also_deleted = c->also_deleted;
        event.n_also_deleted = c->n_also_deleted;
        if (variant == 1) { /* mask a copy with the viewer's policy */
            ProtobufCMessage *copy = NULL;
            char errbuf[CRM_ERRBUF];
            if (crm_proto_unpack(ev->e->desc, c->record.data, c->record.len, &copy, errbuf) ==
                CRM_OK) {
                authz_mask_pii(viewer, ev->e, copy);
                masked = crm_proto_pack(copy, &event.record.len);
                event.record.data = masked;
            } else {
                event.record.len = 0;
            }
            crm_proto_free(&copy);
        }
        reply.body_case = CRM__REPLY__BODY_EVENT;
        reply.event = &event;
        ev->packed[variant] = crm_proto_pack(&reply.base, &ev->len[variant]);
        free(masked);
    }
    *len = ev->len[variant];
    return ev->packed[variant];
}

/* 0 sent; EAGAIN the peer is full; anything else the peer is gone. */
static int
s_send(void *router, const s_sub_t *sub, const void *data, size_t len)
{
    if (zmq_send(router, sub->rid, sub->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno();
    if (zmq_send(router, data, len, ZMQ_DONTWAIT) < 0)
        return zmq_errno();
    return 0;
}

static void
s_send_reply(void *router, s_sub_t *sub, Crm__Reply *reply)
{
    size_t len;
    uint8_t *buf = crm_proto_pack(&reply->base, &len);
    int rc = s_send(router, sub, buf, len);
    free(buf);
    if (rc != 0 && rc != EAGAIN)
        sub->dead = true;
}

static void
s_fail(void *router, s_sub_t *sub, crm_err_t code, const char *msg)
{
    Crm__Reply reply = CRM__REPLY__INIT;
    reply.status = (Crm__ErrorCode)code;
    reply.message = (char *)msg;
    s_send_reply(router, sub, &reply);
    sub->dead = true;
}

static void
s_recheck(feed_t *self, void *router, s_sub_t *sub, int64_t now)
{
    if (now - sub->last_check_us < RECHECK_US)
        return;
    sub->last_check_us = now;
    session_t session = {NULL};
    char errbuf[CRM_ERRBUF];
    if (session_resolve(&session, self->store, sub->user_id, errbuf) != CRM_OK) {
        s_fail(router, sub, CRM_ERR_UNAUTHENTICATED, errbuf);
        return;
    }
    crm_proto_free((ProtobufCMessage **)&sub->user); /* department or role may have changed */
    sub->user = session.user;
}

static void
s_pump_one(feed_t *self, void *router, s_sub_t *sub, int64_t now)
{
    if (sub->dead)
        return;
    s_recheck(self, router, sub, now);
    uint64_t start = sub->cursor;
    bool sent = false;
    for (int budget = BUDGET; !sub->dead && sub->cursor < self->committed && budget > 0;
         budget--) {
        uint64_t seq = sub->cursor + 1;
        s_event_t *ev = s_event(self, seq);
        if (!ev) {
            char msg[CRM_ERRBUF];
            snprintf(msg, sizeof msg,
                     "missed events: the log now starts at %llu; re-read the records and watch "
                     "again",
                     (unsigned long long)store_changelog_first(self->store));
            s_fail(router, sub, CRM_ERR_OUT_OF_RANGE, msg);
            return;
        }
        int variant;
        if (s_visible(sub, ev, &variant)) {
            size_t len;
            const uint8_t *data = s_packed(ev, variant, sub->user, &len);
            int rc = s_send(router, sub, data, len);
            if (rc == EAGAIN)
                return; /* full: try again next turn, from the same place */
            if (rc != 0) {
                sub->dead = true;
                return;
            }
            sent = true;
            sub->last_sent_us = now;
        }
        sub->cursor = seq;
    }
    bool stretch = !sent && sub->cursor != start && now - sub->last_sent_us >= STRETCH_US;
    if (!sub->dead && (stretch || now - sub->last_sent_us >= HEARTBEAT_US)) {
        Crm__Reply reply = CRM__REPLY__INIT;
        Crm__Progress progress = CRM__PROGRESS__INIT;
        progress.seq = sub->cursor;
        progress.last = self->committed;
        reply.body_case = CRM__REPLY__BODY_PROGRESS;
        reply.progress = &progress;
        s_send_reply(router, sub, &reply);
        sub->last_sent_us = now;
    }
}

void
feed_pump(feed_t *self, void *router, int64_t now_us)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nsubs; i++) {
        s_sub_t *sub = self->subs[i];
        if (router)
            s_pump_one(self, router, sub, now_us);
        if (sub->dead || !router)
            s_sub_free(&sub);
        else
            self->subs[kept++] = sub;
    }
    self->nsubs = kept;
}

bool
feed_behind(const feed_t *self)
{
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs[i]->cursor < self->committed)
            return true;
    return false;
}

void
feed_trim(feed_t *self)
{
    uint64_t first = store_changelog_first(self->store), last = store_last_seq(self->store);
    uint64_t keep = first;
    if (self->cfg.retain_events && last > self->cfg.retain_events &&
        last - self->cfg.retain_events + 1 > keep)
        keep = last - self->cfg.retain_events + 1;
    if (self->cfg.retain_ms) { /* binary search for the first entry young enough */
        int64_t cutoff = crm_time_now_ms() - self->cfg.retain_ms;
        uint64_t lo = keep, hi = last + 1;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            s_event_t *ev = s_event(self, mid);
            if (ev && ev->change->time < cutoff)
                lo = mid + 1;
            else
                hi = mid;
        }
        keep = lo > last ? last : lo; /* the newest entry always stays */
    }
    if (keep > first) {
        char errbuf[CRM_ERRBUF];
        if (store_changelog_trim(self->store, keep, errbuf) != CRM_OK)
            crm_log(CRM_LOG_ERROR, "feed: %s", errbuf);
        else
            crm_log(CRM_LOG_INFO, "feed: change log trimmed to start at %llu",
                    (unsigned long long)keep);
    }
}
