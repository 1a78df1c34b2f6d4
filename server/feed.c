/*  =========================================================================
    feed - the live change feed (see feed.h)
    =========================================================================
*/
#include "feed.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "authz.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "records.h"
#include "session.h"

#define RING 8192              /* recent change-log entries kept decoded (feed_config_t) */
#define BUDGET 512             /* events per subscriber per pump */
#define PUMP_US 2000           /* a pump's time (cfg.pump_us 0), looked at before every
                                  event but a subscriber's first (one replayed change can
                                  carry an import's 25 records: hundreds of us) */
/* the fewest kept: a turn's pending events point into the ring (s_pump_one)
   and span at most BUDGET sequence numbers, which must not share a slot */
#define RING_MIN (2 * BUDGET)
_Static_assert(BUDGET <= RING_MIN && RING_MIN <= RING, "the ring holds a turn's events");
#define HEARTBEAT_US 1000000   /* progress at least this often */
#define STRETCH_US 100000      /* ... and this soon after a filtered-out stretch */
#define RECHECK_US 1000000     /* re-check the subscriber's user this often */
#define MAX_KINDS 8
#define MAX_SUBS 10000         /* subscribers in all */
#define MAX_SUBS_PER_USER 100  /* ... and per user */

#define VARIANTS 4        /* packed visibility variants cached per change */
/* A subscriber that asked for batches (WatchRequest.batch) gets the events due
   to it in one reply of at most this many events and bytes (one larger
   event goes alone): the per-message costs - a send, CURVE's box, the I/O
   thread's wake-up - are then paid once for the lot. Nothing is held back to
   fill a batch; only what is due at this turn goes together. */
#define BATCH_EVENTS 64
#define BATCH_BYTES (128u << 10)
/* An event this large that goes alone in its reply is framed once, and every
   subscriber's message refers to that copy (zmq_msg_init_data) instead of
   copying it: a 4,900-record change is 4.6 MB, copied once per watcher before */
#define SHARE_BYTES (64u << 10)
/* a change of this many records decoded here is logged (debug): the writer
   thread decodes its large changes, and tests see that it did */
#define LARGE_PARTS 256

/* A framed reply shared by the messages that carry it; the last to let go of
   it (a pipe of ZeroMQ's I/O thread, or the cache) frees it. The count is kept
   under a lock rather than in an atomic: ZeroMQ hands a message to its I/O
   thread through its own uninstrumented atomics, and the lock is what lets
   ThreadSanitizer see the buffer written before that thread frees it. */
typedef struct {
    size_t refs;
    size_t len;
    uint8_t data[];
} s_framed_t;

static pthread_mutex_t s_framed_lock = PTHREAD_MUTEX_INITIALIZER;

static void
s_framed_hold(s_framed_t *f)
{
    pthread_mutex_lock(&s_framed_lock);
    f->refs++;
    pthread_mutex_unlock(&s_framed_lock);
}

/* (zmq_free_fn; also the cache's own release) */
static void
s_framed_release(void *data, void *hint)
{
    (void)data;
    s_framed_t *f = hint;
    pthread_mutex_lock(&s_framed_lock);
    bool last = --f->refs == 0;
    pthread_mutex_unlock(&s_framed_lock);
    if (last)
        free(f);
}

/* One record of a change, decoded once. */
typedef struct {
    const crm_entity_t *e;        /* NULL for non-record kinds (users) */
    ProtobufCMessage *record;     /* decoded part record, or NULL */
    const crm_entity_t *pe;       /* a child's parent kind (the customer), or NULL */
    ProtobufCMessage *parent;     /* ... that record now, for its name; NULL if gone */
    bool parent_owned;            /* PARENT is ours to free (else another part's) */
    bool hidden_now;              /* the record as it is now withholds consent, or is gone */
    uint64_t hidden_now_at;       /* store_cf_changes(RECORDS) when that was read; 0 never */
} s_part_t;

/* A packed Event for one visibility signature: per part, '0' not
   visible, 'c' clear, 'm' masked ('C', 'M': the same, with the name of the
   child's customer, which the viewer may read). Subscribers who may see the same parts
   the same way share one packed copy. */
typedef struct {
    char *sig;
    uint8_t *packed;
    size_t len;
    s_framed_t *framed[2]; /* [batch] as a reply alone, when SHARE_BYTES or more */
    bool in_frame;         /* PACKED is then the tail of a framed copy, not its own */
} s_variant_t;

/* One committed change, decoded once and packed once per visibility. */
typedef struct {
    uint64_t seq;                 /* 0: empty slot */
    Crm__Change *change;
    s_part_t *parts;              /* change->n_parts of them */
    int64_t commit_us;
    s_variant_t variants[VARIANTS];
    size_t nvariants;
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
    bool batch; /* it takes several events in one reply (Reply.events) */
    bool gated; /* its WATCH is not answered yet: nothing goes before the answer */
    uint64_t watch_id; /* that WATCH's request id */
    bool forked; /* it was sent changes of a history this store no longer holds */
    bool tell_history; /* the store began another history after its cursor: a Progress
                          naming it goes before the new history's changes (so that a
                          resume names the history of what it saw) */
    bool dead;
} s_sub_t;

struct feed {
    store_t *store;               /* borrowed */
    feed_config_t cfg;
    s_event_t *ring;              /* the newest RING (cfg.ring_events) changes */
    uint64_t ring_n;
    s_event_t scratch;            /* an older change being replayed: never evicts the ring */
    s_sub_t **subs;
    size_t nsubs, cap;
    uint64_t committed;           /* last sequence number known committed */
    size_t gated;                 /* subscribers whose WATCH is not answered yet */
    uint64_t hints_seen;          /* store_log_rewrite_hints() looked at */
    bool rewrite_due;             /* a rewrite was hinted and has not been seen yet */
    uint64_t meta_seen;           /* store_cf_changes(META) when rewrites was read */
    uint64_t rewrites;            /* store_log_rewrites(): entries rewritten in place */
    uint64_t history;             /* store_epoch() the cache and cursors are of */
    size_t next;                  /* the subscriber the next pump begins with */
    bool cut;                     /* the last pump ran out of time */
};

feed_t *
feed_new(store_t *store, const feed_config_t *cfg)
{
    feed_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    self->cfg = *cfg;
    self->ring_n = cfg->ring_events ? cfg->ring_events : RING;
    if (self->ring_n < RING_MIN)
        self->ring_n = RING_MIN;
    self->ring = calloc(self->ring_n, sizeof *self->ring);
    CRM_ASSERT_ALLOC(self->ring);
    self->committed = store_last_seq(store);
    self->hints_seen = store_log_rewrite_hints();
    self->meta_seen = store_cf_changes(STORE_CF_META);
    self->rewrites = store_log_rewrites(store);
    self->history = store_epoch(store, NULL);
    return self;
}

static void
s_event_clear(s_event_t *ev)
{
    for (size_t i = 0; ev->parts && i < ev->change->n_parts; i++) {
        if (ev->parts[i].parent_owned)
            crm_proto_free(&ev->parts[i].parent);
        crm_proto_free(&ev->parts[i].record);
    }
    free(ev->parts);
    crm_proto_free((ProtobufCMessage **)&ev->change);
    for (size_t i = 0; i < ev->nvariants; i++) {
        free(ev->variants[i].sig);
        if (!ev->variants[i].in_frame)
            free(ev->variants[i].packed);
        for (int b = 0; b < 2; b++)
            if (ev->variants[i].framed[b])
                s_framed_release(NULL, ev->variants[i].framed[b]);
    }
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
    self->gated = 0;
}

void
feed_destroy(feed_t **self_p)
{
    feed_t *self = *self_p;
    if (!self)
        return;
    feed_reset(self);
    free(self->subs);
    for (size_t i = 0; i < self->ring_n; i++)
        s_event_clear(&self->ring[i]);
    s_event_clear(&self->scratch);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

size_t
feed_subscribers(const feed_t *self)
{
    return self->nsubs;
}

/* Part I of EV is a child (an activity, an order...): find its parent as it
   is now - in the same change, or shared with an earlier part, or read from
   the store (one read per parent per change, when the change is decoded) -
   so that watchers see whose record it is. A parent gone since: none. */
static void
s_find_parent(store_t *store, s_event_t *ev, size_t i)
{
    s_part_t *part = &ev->parts[i];
    const char *pf = part->e && part->record ? crm_entity_field_with(part->e, CRM_F_PARENT) : NULL;
    const crm_entity_t *pe = pf && part->e->parent ? crm_entity_by_name(part->e->parent) : NULL;
    const char *pid = pe ? crm_record_get_str(part->record, pf) : "";
    if (!pe || !*pid)
        return;
    part->pe = pe;
    for (size_t j = 0; j < ev->change->n_parts; j++) {
        const s_part_t *o = &ev->parts[j];
        if (o->e == pe && o->record && !strcmp(ev->change->parts[j]->id, pid)) {
            part->parent = o->record; /* the parent changed in this very change */
            return;
        }
        if (j < i && o->pe == pe && o->parent && !strcmp(crm_record_get_str(o->parent, "id"), pid)) {
            part->parent = o->parent;
            return;
        }
    }
    uint64_t num = crm_entity_parse_id(pe, pid);
    if (num && records_get(store, pe, num, &part->parent) == CRM_OK)
        part->parent_owned = true;
}

/* Decode the change SEQ from the log into EV (empty): false if the log no
   longer has it or it does not open. Reads the store only: any thread. */
static bool
s_decode(store_t *store, uint64_t seq, s_event_t *ev)
{
    store_val_t val = {0};
    char errbuf[CRM_ERRBUF];
    if (store_changelog_get(store, seq, &val) != CRM_OK)
        return false;
    crm_err_t rc = crm_proto_unpack(&crm__change__descriptor, (const uint8_t *)val.data, val.len,
                                    (ProtobufCMessage **)&ev->change, errbuf);
    store_val_release(&val);
    if (rc != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "feed: change %llu is corrupt: %s", (unsigned long long)seq,
                errbuf);
        return false;
    }
    ev->parts = calloc(ev->change->n_parts + 1, sizeof *ev->parts);
    CRM_ASSERT_ALLOC(ev->parts);
    for (size_t i = 0; i < ev->change->n_parts; i++) {
        const Crm__ChangePart *p = ev->change->parts[i];
        s_part_t *part = &ev->parts[i];
        part->e = crm_entity_by_name(p->kind);
        if (part->e && p->record.len &&
            crm_proto_unpack(part->e->desc, p->record.data, p->record.len, &part->record,
                             errbuf) != CRM_OK) {
            crm_log(CRM_LOG_ERROR, "feed: change %llu holds a corrupt %s: %s",
                    (unsigned long long)seq, p->kind, errbuf);
            part->e = NULL;
        }
    }
    for (size_t i = 0; i < ev->change->n_parts; i++)
        s_find_parent(store, ev, i);
    ev->seq = seq;
    /* until feed_committed sees it committed, or for good when it was committed before
       (a catch-up, or no one watching then): the change's own time, not 0 */
    ev->commit_us = ev->change->time * 1000;
    return true;
}

/* The change SEQ, from the cache or the log; NULL if the log no longer has it. */
static s_event_t *
s_event(feed_t *self, uint64_t seq)
{
    /* replaying far behind must not push the live window out of the cache */
    uint64_t newest = store_last_seq(self->store);
    uint64_t ring = self->ring_n;
    s_event_t *ev = newest >= ring && seq <= newest - ring ? &self->scratch
                                                           : &self->ring[seq % ring];
    if (ev->seq == seq)
        return ev;
    s_event_clear(ev);
    if (!s_decode(self->store, seq, ev)) {
        s_event_clear(ev);
        return NULL;
    }
    if (ev->change->n_parts >= LARGE_PARTS)
        crm_log(CRM_LOG_DEBUG, "feed: change %llu (%zu records) decoded by the server thread",
                (unsigned long long)seq, ev->change->n_parts);
    return ev;
}

static void s_check_rewrites(feed_t *self);

feed_event_t *
feed_decode(store_t *store, uint64_t seq)
{
    s_event_t *ev = calloc(1, sizeof *ev);
    CRM_ASSERT_ALLOC(ev);
    if (!s_decode(store, seq, ev)) {
        s_event_clear(ev);
        free(ev);
        return NULL;
    }
    return (feed_event_t *)ev;
}

void
feed_adopt(feed_t *self, feed_event_t **ev_p)
{
    s_event_t *ev = (s_event_t *)*ev_p;
    *ev_p = NULL;
    if (!ev)
        return;
    s_check_rewrites(self); /* a cache dropped since is dropped before, not after */
    uint64_t newest = store_last_seq(self->store);
    if (ev->seq && ev->seq <= newest && newest - ev->seq < self->ring_n) {
        s_event_t *slot = &self->ring[ev->seq % self->ring_n];
        s_event_clear(slot);
        *slot = *ev; /* moved: the slot owns what EV held */
        crm_log(CRM_LOG_DEBUG, "feed: change %llu (%zu records) decoded by the writer thread",
                (unsigned long long)slot->seq, slot->change->n_parts);
    } else {
        s_event_clear(ev);
    }
    free(ev);
}

void
feed_event_free(feed_event_t **ev_p)
{
    s_event_t *ev = (s_event_t *)*ev_p;
    *ev_p = NULL;
    if (ev) {
        s_event_clear(ev);
        free(ev);
    }
}

/* Change-log entries were rewritten in place (an erasure's scrub, on this
   server or, on a replica, shipped from the primary): what the cache decoded
   before is stale. Seen after the rewrite's commit, before the next pump. */
static void
s_check_rewrites(feed_t *self)
{
    uint64_t hints = store_log_rewrite_hints();
    if (hints != self->hints_seen) {
        self->hints_seen = hints;
        self->rewrite_due = true;
    }
    uint64_t at = store_cf_changes(STORE_CF_META);
    if (!self->rewrite_due || at == self->meta_seen)
        return;
    self->meta_seen = at;
    uint64_t n = store_log_rewrites(self->store);
    if (n == self->rewrites)
        return; /* not committed yet: looked at again after the next commit */
    self->rewrite_due = false;
    self->rewrites = n;
    for (size_t i = 0; i < self->ring_n; i++)
        s_event_clear(&self->ring[i]);
    s_event_clear(&self->scratch);
}

/* The store began another history (a replica re-synced to a primary restored
   from a backup, or took a promotion's epoch from the log): what the cache
   decoded may be of the old one, and so were the changes sent to subscribers
   past its first number; they are told (s_pump_one), the others go on. */
static bool
s_check_history(feed_t *self)
{
    uint64_t history = store_epoch(self->store, NULL);
    if (history == self->history)
        return false;
    self->history = history;
    for (size_t i = 0; i < self->ring_n; i++)
        s_event_clear(&self->ring[i]);
    s_event_clear(&self->scratch);
    uint64_t first = store_epoch_first(self->store), last = store_last_seq(self->store);
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs[i]->cursor >= first)
            self->subs[i]->forked = true;
        else
            self->subs[i]->tell_history = true;
    if (self->committed > last)
        self->committed = last;
    return true;
}

/* What a watcher is told that saw changes of another history after AT. */
static void
s_forked_msg(uint64_t at, char *msg)
{
    snprintf(msg, CRM_ERRBUF,
             "this server's history parts from the one you watched after #%llu (a restore "
             "from a backup, or a promotion): the changes you saw after #%llu are not in it; "
             "re-read the records and watch again (crm watch --since %llu)",
             (unsigned long long)at, (unsigned long long)at, (unsigned long long)at);
}

void
feed_committed(feed_t *self, int64_t now_us, uint64_t upto)
{
    s_check_rewrites(self);
    /* the count first: a replica's follower publishes a new history's id before the
       count that takes in its first change, so that change is never seen here
       before the history it begins (whose watchers are told first) */
    uint64_t last = store_last_seq(self->store);
    if (s_check_history(self)) /* (a re-sync's count may be below the one read) */
        last = store_last_seq(self->store);
    if (last > upto)
        last = upto;
    if (last <= self->committed)
        return;
    /* decode once now, with the commit time, for everyone: what the ring holds */
    uint64_t from = self->committed + 1;
    if (last >= self->ring_n && last - self->ring_n + 1 > from)
        from = last - self->ring_n + 1;
    if (self->nsubs)
        for (uint64_t seq = from; seq <= last; seq++) {
            s_event_t *ev = s_event(self, seq);
            if (ev)
                ev->commit_us = now_us;
        }
    self->committed = last;
}

/* ==== Subscribing ==== */

crm_err_t
feed_watch(feed_t *self, const void *rid, size_t rid_len, uint64_t req_id, const char *user_id,
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
    s_check_history(self); /* a re-sync's switch in this turn: before any new cursor */
    /* a watch resumed across a restore or a promotion (RELIABILITY.md trap 15): the
       two histories are one up to where this store went on with the next history
       after the watcher's (a restore or promotion here, or several since); one this
       store never went on with (the watcher watched a server restored or promoted
       elsewhere) shares at most what came before its own beginning, too. The
       changes it saw from there on were another history's */
    uint64_t part_start, part = UINT64_MAX;
    if (w->history && w->history != store_epoch(self->store, NULL) &&
        !store_history_parted(self->store, w->history, &part_start, &part)) {
        uint64_t theirs = w->history_first ? w->history_first : 1;
        if (theirs < part)
            part = theirs;
    }
    if (part != UINT64_MAX && w->since >= part) { /* (UINT64_MAX: no parting) */
        s_forked_msg(part - 1, errbuf);
        return CRM_ERR_OUT_OF_RANGE;
    }
    if (w->since > last) {
        snprintf(errbuf, CRM_ERRBUF, "sequence %llu is in the future: the last is %llu",
                 (unsigned long long)w->since, (unsigned long long)last);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    bool replay = w->since || w->since_set; /* since 0 without since_set: from now */
    if (replay && w->since + 1 < first) {
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
    sub->cursor = replay ? w->since : last;
    for (size_t i = 0; i < w->n_kinds; i++)
        snprintf(sub->kinds[sub->nkinds++], 16, "%s", w->kinds[i]);
    snprintf(sub->customer, sizeof sub->customer, "%s", w->customer);
    snprintf(sub->owner, sizeof sub->owner, "%s", w->owner);
    sub->department = w->department;
    sub->batch = w->batch;
    sub->last_sent_us = sub->last_check_us = crm_time_mono_us();
    /* the answer may wait for a commit (an audited watch), which may land
       after this turn's delivery: events wait for the answer */
    sub->gated = true;
    sub->watch_id = req_id;
    self->gated++;
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

/* A record given to another owner leaves the view of a reader whose scope
   is what they own (OWN): they may see this change, the one that takes it
   away, as they could read the record up to it - judged on the record with
   its owner as it was before. Later changes are the new owner's. */
static bool
s_read_before_reassign(const s_sub_t *sub, const s_part_t *part, const Crm__ChangePart *p)
{
    const char *of = crm_entity_field_with(part->e, CRM_F_OWNER);
    if (!of || !*p->owner_before || !strcmp(p->owner_before, crm_record_get_str(part->record, of)))
        return false;
    /* the decoded record is shared by every subscriber and only read on this
       thread: lend it the old owner for the one check, then put it back */
    char **slot =
        (char **)((char *)part->record + crm_record_field(part->e->desc, of)->offset);
    char *now = *slot, errbuf[CRM_ERRBUF];
    *slot = p->owner_before;
    bool ok = authz_record(sub->user, part->e, AUTHZ_READ, part->record, NULL, NULL, 0, errbuf) ==
              CRM_OK;
    *slot = now;
    return ok;
}

/* Does part I of EV's record, as it is NOW, withhold the consent that
   unmasks it (or is it gone)? An old change replayed to a marketing user
   after consent was withdrawn (or the customer erased) must not show what
   it showed then: masked by what may be read now, as a read would be. Read
   once per part until the next commit that writes records. */
static bool
s_hidden_now(store_t *store, s_event_t *ev, size_t i)
{
    s_part_t *part = &ev->parts[i];
    uint64_t at = store_cf_changes(STORE_CF_RECORDS);
    if (part->hidden_now_at == at + 1)
        return part->hidden_now;
    const char *consent = crm_entity_field_with(part->e, CRM_F_CONSENT);
    uint64_t num = crm_entity_parse_id(part->e, ev->change->parts[i]->id);
    ProtobufCMessage *now = NULL;
    part->hidden_now = !consent || !num || records_get(store, part->e, num, &now) != CRM_OK ||
                       !*(const protobuf_c_boolean *)((const char *)now +
                                                      crm_record_field(part->e->desc, consent)
                                                          ->offset);
    crm_proto_free(&now);
    part->hidden_now_at = at + 1;
    return part->hidden_now;
}

/* How SUB may see part I of EV: '0' not at all, 'c' in clear, 'm' masked;
   'C' and 'M' when SUB may also read the child's customer (named). */
static char
s_part_view(store_t *store, const s_sub_t *sub, s_event_t *ev, size_t i)
{
    const Crm__ChangePart *p = ev->change->parts[i];
    const s_part_t *part = &ev->parts[i];
    bool kind_ok = sub->nkinds == 0;
    for (size_t k = 0; k < sub->nkinds; k++)
        kind_ok = kind_ok || !strcmp(sub->kinds[k], p->kind);
    if (!kind_ok)
        return '0';
    /* users, and parts without a record to judge: admins only */
    if (!part->e || !part->record)
        return sub->user->role == CRM__ROLE__ADMIN && !*sub->customer && !*sub->owner ? 'c'
                                                                                      : '0';
    char errbuf[CRM_ERRBUF];
    if (authz_record(sub->user, part->e, AUTHZ_READ, part->record, NULL, NULL, 0, errbuf) !=
            CRM_OK &&
        !s_read_before_reassign(sub, part, p))
        return '0';
    if (*sub->customer) {
        const char *parent = crm_entity_field_with(part->e, CRM_F_PARENT);
        bool hit = !strcmp(part->e->name, "customer")
                       ? !strcmp(p->id, sub->customer)
                       : parent && !strcmp(crm_record_get_str(part->record, parent), sub->customer);
        if (!hit)
            return '0';
    }
    if (*sub->owner) { /* owned before or after: a reassignment leaves the old owner's view */
        const char *of = crm_entity_field_with(part->e, CRM_F_OWNER);
        if (!of || (strcmp(crm_record_get_str(part->record, of), sub->owner) &&
                    strcmp(p->owner_before, sub->owner)))
            return '0';
    }
    /* hidden before or after the change: masked (consent given in this very change
       does not reveal what it changed) - the values before it as well as after */
    bool masked = authz_hides(sub->user, part->e, part->record) ||
                  (authz_masks_pii(sub->user, part->e) &&
                   (p->hidden_before || s_hidden_now(store, ev, i)));
    /* a child's customer is named only to those who may read that customer */
    bool named = part->parent &&
                 authz_record(sub->user, part->pe, AUTHZ_READ, part->parent, NULL, NULL, 0,
                              errbuf) == CRM_OK;
    return masked ? (named ? 'M' : 'm') : (named ? 'C' : 'c');
}

/* SUB's visibility signature of EV into SIG (n_parts + 1 bytes); false if
   nothing of EV is for SUB. */
static bool
s_visible(store_t *store, const s_sub_t *sub, s_event_t *ev, char *sig)
{
    const Crm__Change *c = ev->change;
    bool any = false;
    if (sub->department && c->actor_department != sub->user->department)
        return false;
    for (size_t i = 0; i < c->n_parts; i++) {
        sig[i] = s_part_view(store, sub, ev, i);
        any = any || sig[i] != '0';
    }
    sig[c->n_parts] = '\0';
    return any;
}

/* The packed record IN of kind E masked for VIEWER into *OUT (empty if IN
   is, or cannot be read: never the unmasked bytes). Returns what to free. */
static uint8_t *
s_masked(const crm_entity_t *e, const ProtobufCBinaryData *in, const Crm__User *viewer,
         ProtobufCBinaryData *out)
{
    ProtobufCMessage *copy = NULL;
    char errbuf[CRM_ERRBUF];
    uint8_t *packed = NULL;
    out->data = NULL;
    out->len = 0;
    if (!in->len)
        return NULL;
    if (crm_proto_unpack(e->desc, in->data, in->len, &copy, errbuf) == CRM_OK) {
        authz_mask_pii(viewer, e, copy);
        packed = crm_proto_pack(copy, &out->len);
        out->data = packed;
    }
    crm_proto_free(&copy);
    return packed;
}

/* Pack EV as an Event with the parts SIG shows, masked for VIEWER where SIG
   says 'm'. Caller free()s. A reply is this behind a field tag (s_send_events). */
static uint8_t *
s_pack(const s_event_t *ev, const char *sig, const Crm__User *viewer, size_t *len)
{
    const Crm__Change *c = ev->change;
    Crm__Event event = CRM__EVENT__INIT;
    Crm__EventPart *parts = calloc(c->n_parts + 1, sizeof *parts);
    Crm__EventPart **ptrs = calloc(c->n_parts + 1, sizeof *ptrs);
    uint8_t **masked = calloc(2 * (c->n_parts + 1), sizeof *masked);
    CRM_ASSERT(parts && ptrs && masked);
    event.seq = ev->seq;
    event.time = c->time;
    event.actor = c->actor;
    event.commit_us = ev->commit_us;
    for (size_t i = 0; i < c->n_parts; i++) {
        if (sig[i] == '0')
            continue;
        const Crm__ChangePart *p = c->parts[i];
        Crm__EventPart *ep = &parts[event.n_parts];
        crm__event_part__init(ep);
        ep->kind = p->kind;
        ep->id = p->id;
        ep->op = p->op;
        ep->fields = p->fields;
        ep->n_fields = p->n_fields;
        ep->record = p->record;
        ep->before = p->before;
        if (sig[i] == 'm' || sig[i] == 'M') { /* mask copies with the viewer's policy */
            const crm_entity_t *e = ev->parts[i].e;
            masked[2 * i] = s_masked(e, &p->record, viewer, &ep->record);
            masked[2 * i + 1] = s_masked(e, &p->before, viewer, &ep->before);
        }
        if ((sig[i] == 'C' || sig[i] == 'M') &&
            !(crm_entity_flags(ev->parts[i].pe, "name") & CRM_F_PII))
            ep->customer_name = (char *)crm_record_get_str(ev->parts[i].parent, "name");
        ptrs[event.n_parts++] = ep;
    }
    event.parts = ptrs;
    uint8_t *out = crm_proto_pack(&event.base, len);
    for (size_t i = 0; i < 2 * c->n_parts; i++)
        free(masked[i]);
    free(masked);
    free(ptrs);
    free(parts);
    return out;
}

/* The packed Event of EV for SIG: cached per signature (the cache is
   keyed by what the viewer may see, not by who asked first), *VARIANT then.
   *OWNED is set when the copy is not cached and the caller must free it. */
static const uint8_t *
s_packed(s_event_t *ev, const char *sig, const Crm__User *viewer, size_t *len, uint8_t **owned,
         s_variant_t **variant)
{
    *owned = NULL;
    *variant = NULL;
    for (size_t i = 0; i < ev->nvariants; i++)
        if (!strcmp(ev->variants[i].sig, sig)) {
            *len = ev->variants[i].len;
            *variant = &ev->variants[i];
            return ev->variants[i].packed;
        }
    uint8_t *packed = s_pack(ev, sig, viewer, len);
    if (ev->nvariants == VARIANTS) {
        *owned = packed;
        return packed;
    }
    s_variant_t *v = &ev->variants[ev->nvariants++];
    v->sig = strdup(sig);
    CRM_ASSERT_ALLOC(v->sig);
    v->packed = packed;
    v->len = *len;
    v->framed[0] = v->framed[1] = NULL;
    v->in_frame = false;
    *variant = v;
    return packed;
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

/* An event due to a subscriber, packed (s_packed), waiting for its reply. */
typedef struct {
    const uint8_t *data;
    size_t len;
    uint8_t *owned;       /* DATA is ours to free (not a cached variant) */
    s_variant_t *variant; /* ... or the cached variant it is (NULL if owned) */
} s_piece_t;

/* Send the N events of P to SUB in one reply, built in place: a Reply whose
   only field is the event (or, batched, the events) - each packed event
   behind its field tag and length, as protobuf encodes them. Returns as
   s_send; the pieces are released either way. */
static int
s_send_events(void *router, const s_sub_t *sub, s_piece_t *p, size_t n)
{
    size_t total = 0;
    CRM_ASSERT(n == 1 || sub->batch);
    for (size_t i = 0; i < n; i++)
        total += crm_proto_event_frame(NULL, sub->batch, p[i].data, p[i].len);
    zmq_msg_t msg;
    int rc;
    s_variant_t *v = n == 1 && !p[0].owned ? p[0].variant : NULL;
    if (v && p[0].len >= SHARE_BYTES) { /* one framed copy for every subscriber */
        s_framed_t **f = &v->framed[sub->batch];
        if (!*f) {
            *f = malloc(sizeof **f + total);
            CRM_ASSERT_ALLOC(*f);
            (*f)->len = crm_proto_event_frame((*f)->data, sub->batch, p[0].data, p[0].len);
            (*f)->refs = 0;
            s_framed_hold(*f); /* the cache's (written before any thread may see it) */
            crm_log(CRM_LOG_DEBUG, "feed: an event of %zu bytes framed once for its %s "
                                   "subscribers", (*f)->len, sub->batch ? "batched" : "unbatched");
            if (!v->in_frame) { /* one copy of it kept, not two */
                free(v->packed);
                v->packed = (*f)->data + ((*f)->len - v->len);
                v->in_frame = true;
            }
        }
        s_framed_hold(*f); /* the message's */
        rc = zmq_msg_init_data(&msg, (*f)->data, (*f)->len, s_framed_release, *f) == 0
                 ? 0
                 : zmq_errno();
        if (rc != 0)
            s_framed_release(NULL, *f);
    } else {
        rc = zmq_msg_init_size(&msg, total) == 0 ? 0 : zmq_errno();
        uint8_t *out = rc == 0 ? zmq_msg_data(&msg) : NULL;
        for (size_t i = 0; rc == 0 && i < n; i++)
            out += crm_proto_event_frame(out, sub->batch, p[i].data, p[i].len);
    }
    if (rc == 0) {
        if (zmq_send(router, sub->rid, sub->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&msg, router, ZMQ_DONTWAIT) < 0)
            rc = zmq_errno();
        zmq_msg_close(&msg); /* a no-op once sent */
    }
    for (size_t i = 0; i < n; i++)
        free(p[i].owned);
    return rc;
}

/* Send SUB's *NPEND pending events: sent, its cursor moves to UPTO (every
   change up to it considered); EAGAIN (full), it stays for the next turn;
   anything else, SUB is gone. Returns as s_send_events; nothing is pending
   after. */
static int
s_flush(void *router, s_sub_t *sub, s_piece_t *pend, size_t *npend, uint64_t upto, int64_t now)
{
    int rc = s_send_events(router, sub, pend, *npend);
    *npend = 0;
    if (rc == 0) {
        sub->cursor = upto;
        sub->last_sent_us = now;
    } else {
        sub->dead = rc != EAGAIN;
    }
    return rc;
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

/* A Progress to SUB: its cursor, the newest change, and the history they are of (a
   watcher resumes naming it). Returns as s_send; a peer gone is marked dead. */
static int
s_send_progress(feed_t *self, void *router, s_sub_t *sub, int64_t now)
{
    Crm__Reply reply = CRM__REPLY__INIT;
    Crm__Progress progress = CRM__PROGRESS__INIT;
    progress.seq = sub->cursor;
    progress.last = self->committed;
    progress.history = store_epoch(self->store, NULL);
    progress.history_first = store_epoch_first(self->store);
    reply.body_case = CRM__REPLY__BODY_PROGRESS;
    reply.progress = &progress;
    size_t len;
    uint8_t *buf = crm_proto_pack(&reply.base, &len);
    int rc = s_send(router, sub, buf, len);
    free(buf);
    sub->last_sent_us = now; /* a heartbeat that met a full pipe waits its next turn */
    if (rc != 0 && rc != EAGAIN)
        sub->dead = true;
    return rc;
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

void
feed_replied(feed_t *self, const void *rid, size_t rid_len, uint64_t req_id, bool ok)
{
    if (!self->gated)
        return;
    for (size_t i = 0; i < self->nsubs; i++) {
        s_sub_t *sub = self->subs[i];
        if (sub->gated && sub->watch_id == req_id && sub->rid_len == rid_len &&
            !memcmp(sub->rid, rid, rid_len)) {
            sub->gated = false;
            self->gated--;
            if (!ok)
                sub->dead = true;
        }
    }
}

static void
s_pump_one(feed_t *self, void *router, s_sub_t *sub, int64_t now, int64_t deadline)
{
    if (sub->dead || sub->gated)
        return;
    if (sub->forked) {
        char msg[CRM_ERRBUF];
        s_forked_msg(store_epoch_first(self->store) - 1, msg);
        s_fail(router, sub, CRM_ERR_OUT_OF_RANGE, msg);
        return;
    }
    s_recheck(self, router, sub, now);
    /* it lived through a promotion or a re-sync here: told before the first change of the
       history it goes on with (a full pipe: next turn, nothing else before it) */
    if (!sub->dead && sub->tell_history) {
        if (s_send_progress(self, router, sub, now) != 0)
            return;
        sub->tell_history = false;
    }
    uint64_t start = sub->cursor, upto = sub->cursor;
    bool sent = false;
    /* the visible events after the cursor, up to UPTO, wait here for their reply;
       the cursor moves past them only once it went out (a full pipe: next turn,
       from the same place). Ring entries stay put meanwhile (a turn spans at most BUDGET
       sequence numbers, and the ring holds at least RING_MIN: feed_new); the scratch
       entry of an older one does not. */
    s_piece_t pend[BATCH_EVENTS];
    size_t npend = 0, pend_bytes = 0, max = sub->batch ? BATCH_EVENTS : 1;
    for (int budget = BUDGET; !sub->dead && upto < self->committed && budget > 0; budget--) {
        if (budget < BUDGET && crm_time_mono_us() >= deadline) {
            self->cut = true; /* the rest next turn (what is pending goes out below) */
            break;
        }
        uint64_t seq = upto + 1;
        s_event_t *ev = s_event(self, seq);
        if (!ev) {
            /* what is pending goes first (if it can): the error then says where
               delivery really stopped */
            if (npend && s_flush(router, sub, pend, &npend, upto, now) == EAGAIN)
                return; /* full: the error goes next turn, with nothing before it */
            char msg[CRM_ERRBUF];
            snprintf(msg, sizeof msg,
                     "missed events: the log now starts at %llu; re-read the records and watch "
                     "again",
                     (unsigned long long)store_changelog_first(self->store));
            s_fail(router, sub, CRM_ERR_OUT_OF_RANGE, msg);
            return;
        }
        char small[64], *sig = ev->change->n_parts < sizeof small ? small
                                                                   : malloc(ev->change->n_parts + 1);
        CRM_ASSERT_ALLOC(sig);
        if (s_visible(self->store, sub, ev, sig)) {
            s_piece_t p;
            p.data = s_packed(ev, sig, sub->user, &p.len, &p.owned, &p.variant);
            if (ev == &self->scratch && !p.owned) {
                p.owned = malloc(p.len ? p.len : 1);
                CRM_ASSERT_ALLOC(p.owned);
                memcpy(p.owned, p.data, p.len);
                p.data = p.owned;
                p.variant = NULL;
            }
            if (npend && (npend == max || pend_bytes + p.len > BATCH_BYTES)) {
                pend_bytes = 0;
                if (s_flush(router, sub, pend, &npend, seq - 1, now) != 0) {
                    free(p.owned);
                    if (sig != small)
                        free(sig);
                    return;
                }
                sent = true;
            }
            pend[npend++] = p;
            pend_bytes += p.len;
        } else if (npend == 0) {
            sub->cursor = seq; /* nothing waits before it */
        }
        if (sig != small)
            free(sig);
        upto = seq;
    }
    if (npend) {
        if (s_flush(router, sub, pend, &npend, upto, now) != 0)
            return;
        sent = true;
    }
    bool stretch = !sent && sub->cursor != start && now - sub->last_sent_us >= STRETCH_US;
    if (!sub->dead && (stretch || now - sub->last_sent_us >= HEARTBEAT_US))
        (void)s_send_progress(self, router, sub, now);
}

void
feed_pump(feed_t *self, void *router, int64_t now_us)
{
    int64_t deadline = crm_time_mono_us() + (self->cfg.pump_us ? self->cfg.pump_us : PUMP_US);
    size_t n = self->nsubs, first = n ? self->next % n : 0, next = first;
    self->cut = false;
    /* from where the last pump stopped, so that one far behind cannot starve the rest */
    for (size_t k = 0; router && k < n; k++) {
        size_t i = (first + k) % n;
        if ((k && crm_time_mono_us() >= deadline) || self->cut) {
            next = i; /* those not reached go first next time; soon if one has events due */
            for (size_t r = k; r < n && !self->cut; r++) {
                const s_sub_t *sub = self->subs[(first + r) % n];
                self->cut = !sub->dead && !sub->gated && sub->cursor < self->committed;
            }
            break;
        }
        s_pump_one(self, router, self->subs[i], now_us, deadline);
        next = (i + 1) % n;
    }
    size_t kept = 0;
    self->next = 0;
    self->gated = 0;
    for (size_t i = 0; i < self->nsubs; i++) {
        s_sub_t *sub = self->subs[i];
        if (i == next)
            self->next = kept; /* where it is once the gone ones are dropped */
        if (sub->dead || !router) {
            s_sub_free(&sub);
        } else {
            self->gated += sub->gated;
            self->subs[kept++] = sub;
        }
    }
    self->nsubs = kept;
}

bool
feed_cut(const feed_t *self)
{
    return self->cut;
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
