/*  =========================================================================
    replica - read replicas (see replica.h and docs/ARCHITECTURE.md)

    How a replica follows. The follower thread owns a CURVE DEALER to the
    primary, authenticated as a user with the replica role. It asks
    REPL_PULL {from_seq = our WAL sequence number + 1}; the primary answers
    from its write-ahead log with up to REPL_PULL_MAX_BYTES of write batches,
    each under the RocksDB sequence number it was committed at, and its own
    latest number. Each batch is written here as one atomic RocksDB write
    (store_wal_apply), which refuses a batch that does not start exactly at
    our latest + 1 - so nothing is applied twice, out of order or across a
    gap. Nothing else writes to a replica's store (STORE_REPLICA makes the
    group commit refuse), so "where am I" is the store's own sequence number
    and survives any restart. After applying, the follower rings the server
    thread, whose feed then delivers the change-log entries just applied,
    under the primary's numbers.

    Reconnecting: an answer that does not come within PULL_TIMEOUT_MS closes
    the DEALER (its queued request with it) and opens a new one; a pull is
    idempotent, so a restart of either side costs one timeout at most.

    Too far behind: if the primary no longer keeps the WAL from our number
    on (WAL_ttl_seconds passed), it says so. The follower then re-syncs by
    itself (unless crmd runs with --no-resync: then it stops pulling and
    says what to do, a new `crm-admin replica init`). Re-sync: it fetches a
    new snapshot with the same code as `crm-admin replica init`
    (repl_fetch.c) into DATA_DIR/.replica-resync while this server keeps
    serving what it has, checks the copy (every listed file complete and
    fsynced; the server key is ours; it opens as a store; it is ahead of
    us), then asks the server thread to switch (store_swap_db: the one
    thread that may close and reopen the database, between two turns, once
    no worker holds a read view; the old database is kept as
    DATA_DIR/db.pre-resync until the new one is open, and removed by the
    follower afterwards). Then it follows from the copy's sequence number.
    =========================================================================
*/
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "backup.h"
#include "repl_fetch.h"

#include "crm_keys.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"

#define RING 4096               /* commit times kept for lag in ms */
#define MAX_REPLICAS 32         /* replicas the primary reports on */
#define SEEN_WINDOW_US 60000000 /* ... if seen within a minute */
#define PULL_TIMEOUT_MS 3000    /* no answer: reconnect */
#define RESYNC_RETRY_MS 10000   /* a failed re-sync is tried again after this long */
#define RESYNC_DIR ".replica-resync" /* DATA_DIR/...: where a re-sync fetches to */

/* ==== The primary's side ==== */

typedef struct {
    char name[64];
    uint8_t rid[256];           /* the connection it last pulled on (ROUTER routing id) */
    size_t rid_len;
    uint64_t applied;           /* WAL sequence number it holds */
    int64_t seen_us;            /* its last pull */
    store_wal_cursor_t *cursor; /* where its last pull stopped in our WAL */
} s_replica_t;

struct repl {
    store_t *store;
    struct {
        uint64_t seq; /* WAL sequence number reached ... */
        int64_t us;   /* ... at this time (monotonic) */
    } ring[RING];
    size_t head, n; /* ring[head] is the next slot; n entries are filled */
    uint64_t last;  /* last sequence number put in the ring */
    s_replica_t replicas[MAX_REPLICAS];
};

repl_t *
repl_new(store_t *store)
{
    repl_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    self->last = store_wal_seq(store);
    return self;
}

void
repl_destroy(repl_t **self_p)
{
    repl_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < MAX_REPLICAS; i++)
        store_wal_cursor_destroy(&self->replicas[i].cursor);
    free(self);
    *self_p = NULL;
}

void
repl_committed(repl_t *self, int64_t now_us)
{
    uint64_t seq = store_wal_seq(self->store);
    if (seq == self->last)
        return;
    self->last = seq;
    self->ring[self->head].seq = seq;
    self->ring[self->head].us = now_us;
    self->head = (self->head + 1) % RING;
    if (self->n < RING)
        self->n++;
}

/* NAME's slot; the least recently seen one is taken over for a new name. */
static s_replica_t *
s_slot(repl_t *self, const char *name)
{
    s_replica_t *slot = NULL, *oldest = &self->replicas[0];
    for (size_t i = 0; i < MAX_REPLICAS && !slot; i++) {
        s_replica_t *r = &self->replicas[i];
        if (!strcmp(r->name, name))
            slot = r;
        else if (r->seen_us < oldest->seen_us)
            oldest = r;
    }
    if (!slot) {
        slot = oldest;
        snprintf(slot->name, sizeof slot->name, "%s", name);
        store_wal_cursor_destroy(&slot->cursor);
    }
    return slot;
}

store_wal_cursor_t *
repl_seen(repl_t *self, const char *name, const void *rid, size_t rid_len, uint64_t from_seq,
          int64_t now_us)
{
    s_replica_t *slot = s_slot(self, name);
    bool other = rid_len != slot->rid_len || (rid_len && memcmp(rid, slot->rid, rid_len) != 0);
    if (other && slot->seen_us && now_us - slot->seen_us < REPL_TWIN_WINDOW_US)
        return NULL; /* another connection pulls under this name right now */
    if (other && rid_len <= sizeof slot->rid) {
        if (rid_len)
            memcpy(slot->rid, rid, rid_len);
        slot->rid_len = rid_len;
    }
    slot->applied = from_seq ? from_seq - 1 : 0;
    slot->seen_us = now_us;
    if (!slot->cursor)
        slot->cursor = store_wal_cursor_new(self->store);
    return slot->cursor;
}

uint64_t
repl_acked(const repl_t *self, uint32_t k, int64_t now_us)
{
    uint64_t best[MAX_REPLICAS];
    size_t n = 0;
    if (!k)
        return UINT64_MAX;
    for (size_t i = 0; i < MAX_REPLICAS; i++) {
        const s_replica_t *r = &self->replicas[i];
        if (r->name[0] && now_us - r->seen_us <= 10000000)
            best[n++] = r->applied;
    }
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++) /* the k largest, by selection */
        for (size_t j = i + 1; j < n; j++)
            if (best[j] > best[i]) {
                uint64_t t = best[i];
                best[i] = best[j];
                best[j] = t;
            }
    return best[k - 1];
}

uint64_t
repl_lag_ms(const repl_t *self, uint64_t applied, int64_t now_us)
{
    if (applied >= self->last || !self->n)
        return 0;
    int64_t since = 0;
    for (size_t k = 0; k < self->n; k++) { /* newest first, back to the first past APPLIED */
        size_t i = (self->head + RING - 1 - k) % RING;
        if (self->ring[i].seq <= applied)
            break;
        since = self->ring[i].us;
    }
    return since && now_us > since ? (uint64_t)(now_us - since) / 1000 : 0;
}

void
repl_list(repl_t *self, int64_t now_us, Crm__ReplStatusReply *out,
          void *(*own)(void *arg, void *p), void *arg)
{
    size_t n = 0;
    Crm__ReplicaInfo **list = own(arg, calloc(MAX_REPLICAS, sizeof *list));
    CRM_ASSERT_ALLOC(list);
    uint64_t latest = store_wal_seq(self->store);
    for (size_t i = 0; i < MAX_REPLICAS; i++) {
        s_replica_t *r = &self->replicas[i];
        if (!r->name[0] || now_us - r->seen_us > SEEN_WINDOW_US)
            continue;
        Crm__ReplicaInfo *ri = own(arg, malloc(sizeof *ri));
        CRM_ASSERT_ALLOC(ri);
        crm__replica_info__init(ri);
        ri->name = r->name;
        ri->applied_seq = r->applied;
        ri->lag_entries = latest > r->applied ? latest - r->applied : 0;
        ri->lag_ms = repl_lag_ms(self, r->applied, now_us);
        ri->seen_ms_ago = (uint64_t)(now_us - r->seen_us) / 1000;
        list[n++] = ri;
    }
    out->replicas = list;
    out->n_replicas = n;
}

/* ==== The replica's follower thread ==== */

struct repl_follower {
    store_t *store;
    void *ctx;
    void *bell;      /* PAIR bound here: the server thread polls it */
    void *bell_ring; /* PAIR connected to it: the follower rings */
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    int wake; /* eventfd, readable once stop is set: every wait of the follower watches it */
    crm_enroll_t enroll; /* the replica identity (secret key: zeroed on stop) */
    uint8_t epoch_key[32]; /* crm_epoch_key() of the server key it shares with the primary
                              (zeroed on stop): its pulls prove their epoch with it */
    char endpoint[256];
    char data_dir[PATH_MAX];
    bool resync;                   /* re-sync by itself when too far behind (no --no-resync) */
    int64_t lag_warn_ms;           /* log when further behind than this */
    uint64_t next_id;              /* request ids (follower thread only) */
    _Atomic int swap;              /* S_SWAP_*: a re-sync's switch, handed to the server thread */
    pthread_mutex_t lock;          /* guards status and swap_error */
    repl_follower_status_t status; /* what repl_follower_status() copies */
    char swap_error[CRM_ERRBUF];   /* why the switch failed */
};

enum { S_SWAP_IDLE, S_SWAP_READY, S_SWAP_DONE, S_SWAP_FAILED };

static void
s_set_state(repl_follower_t *self, bool connected, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_set_state(repl_follower_t *self, bool connected, const char *fmt, ...)
{
    char text[CRM_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&self->lock);
    bool changed = strcmp(text, self->status.state) != 0;
    snprintf(self->status.state, sizeof self->status.state, "%s", text);
    self->status.connected = connected;
    pthread_mutex_unlock(&self->lock);
    if (changed)
        crm_log(connected || !strncmp(text, "connecting", 10) ? CRM_LOG_INFO : CRM_LOG_WARN,
                "replica: %s", text);
}

/* A new CURVE DEALER to the primary, or NULL. */
static void *
s_connect(repl_follower_t *self)
{
    int zero = 0;
    void *s = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, self->enroll.server_pub, CRM_KEY_BYTES);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, self->enroll.keys.pub, CRM_KEY_BYTES);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, self->enroll.keys.sec, CRM_KEY_BYTES);
    if (zmq_connect(s, self->endpoint) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Sleep MS milliseconds, waking at once on stop. */
static void
s_nap(repl_follower_t *self, int ms)
{
    zmq_pollitem_t it = {NULL, self->wake, ZMQ_POLLIN, 0};
    if (!atomic_load(&self->stop))
        zmq_poll(&it, 1, ms);
}

/* Stop the follower thread's waits: the flag, then the wake fd (set once, never read). */
static void
s_stop(repl_follower_t *self)
{
    atomic_store(&self->stop, true);
    uint64_t one = 1;
    if (self->wake >= 0 && write(self->wake, &one, sizeof one) < 0)
        crm_log(CRM_LOG_WARN, "replica: cannot wake the follower thread: %s", strerror(errno));
}

/* Wait up to PULL_TIMEOUT_MS for a reply on S, waking at once on stop (a promotion
   waited up to 100 ms here, on the server thread). Returns the unpacked reply or NULL. */
static Crm__Reply *
s_await(repl_follower_t *self, void *s, uint64_t id)
{
    int64_t deadline = crm_time_mono_us() + PULL_TIMEOUT_MS * 1000LL;
    int64_t left;
    while (!atomic_load(&self->stop) && (left = deadline - crm_time_mono_us()) > 0) {
        zmq_pollitem_t it[2] = {{s, 0, ZMQ_POLLIN, 0}, {NULL, self->wake, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, (long)((left + 999) / 1000)) <= 0 || !(it[0].revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        Crm__Reply *reply = NULL;
        char errbuf[CRM_ERRBUF];
        crm_err_t rc = crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m),
                                        zmq_msg_size(&m), (ProtobufCMessage **)&reply, errbuf);
        zmq_msg_close(&m);
        if (rc != CRM_OK) {
            crm_log(CRM_LOG_WARN, "replica: unreadable reply from the primary: %s", errbuf);
            continue;
        }
        if (reply->id == id)
            return reply;
        crm_proto_free((ProtobufCMessage **)&reply); /* an answer to an older request */
    }
    return NULL;
}

/* Apply the batches of one pull; returns how many were applied, -1 if one was refused. */
static int
s_apply(repl_follower_t *self, const Crm__ReplPullReply *pr)
{
    int applied = 0;
    for (size_t i = 0; i < pr->n_batches; i++) {
        char errbuf[CRM_ERRBUF];
        const Crm__ReplBatch *b = pr->batches[i];
        crm_err_t rc = store_wal_apply(self->store, b->seq, b->data.data, b->data.len, errbuf);
        if (rc != CRM_OK) {
            s_set_state(self, true, "stopped: cannot apply the primary's batch at %llu: %s",
                        (unsigned long long)b->seq, errbuf);
            return -1;
        }
        applied++;
    }
    return applied;
}

/* ---- Re-sync: a new snapshot when the primary's log no longer reaches back to us ---- */

typedef struct {
    repl_follower_t *self;
    void *s;
    int last_pct;
} s_fetch_t;

/* repl_fetch's transport: one REPL_SNAPSHOT request on our DEALER. */
static crm_err_t
s_snap_call(void *arg, Crm__ReplSnapshotRequest *rq, Crm__Reply **reply, char *errbuf)
{
    s_fetch_t *f = arg;
    repl_follower_t *self = f->self;
    *reply = NULL;
    Crm__Request req = CRM__REQUEST__INIT;
    uint64_t id = ++self->next_id;
    req.id = id;
    req.op = CRM__OP__OP_REPL_SNAPSHOT;
    req.body_case = CRM__REQUEST__BODY_REPL_SNAPSHOT;
    req.repl_snapshot = rq;
    size_t len;
    uint8_t *packed = crm_proto_pack(&req.base, &len);
    int sent = zmq_send(f->s, packed, len, ZMQ_DONTWAIT);
    free(packed);
    Crm__Reply *r = sent >= 0 ? s_await(self, f->s, id) : NULL;
    if (!r) {
        snprintf(errbuf, CRM_ERRBUF, "no answer from the primary");
        return CRM_ERR_UNAVAILABLE;
    }
    if (r->status != CRM__ERROR_CODE__OK || r->body_case != CRM__REPLY__BODY_REPL_SNAPSHOT) {
        snprintf(errbuf, CRM_ERRBUF, "the primary refused the snapshot: %.200s",
                 r->status != CRM__ERROR_CODE__OK ? r->message : "an answer without it");
        crm_proto_free((ProtobufCMessage **)&r);
        return CRM_ERR_FAILED_PRECONDITION;
    }
    *reply = r;
    return CRM_OK;
}

static void
s_reply_free(Crm__Reply **reply)
{
    crm_proto_free((ProtobufCMessage **)reply);
}

static void
s_fetch_progress(void *arg, uint64_t done, uint64_t total)
{
    s_fetch_t *f = arg;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct / 25 > f->last_pct / 25)
        crm_log(CRM_LOG_INFO, "replica: re-sync: %d%% of %.1f MB fetched", pct,
                (double)total / 1e6);
    f->last_pct = pct;
}

static bool
s_fetch_stop(void *arg)
{
    return atomic_load(&((s_fetch_t *)arg)->self->stop);
}

/* Read a small file whole into BUF (at most CAP bytes); its length or -1. */
static ssize_t
s_slurp(const char *path, uint8_t *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n;
}

/* The fetched copy in DIR is fit to replace ours (at WAL sequence HAVE): ahead
   of it, or, when DIVERGED (ours is another history), any copy of the primary. */
static crm_err_t
s_verify(repl_follower_t *self, const char *dir, uint64_t have, bool diverged,
         uint64_t *copy_seq, char *errbuf)
{
    char a[PATH_MAX + 96], b[PATH_MAX + 96];
    uint8_t ka[4096], kb[4096];
    snprintf(a, sizeof a, "%s/server.key", self->data_dir);
    snprintf(b, sizeof b, "%s/server.key", dir);
    ssize_t na = s_slurp(a, ka, sizeof ka), nb = s_slurp(b, kb, sizeof kb);
    bool same = na > 0 && na == nb && !memcmp(ka, kb, (size_t)na);
    sodium_memzero(ka, sizeof ka);
    sodium_memzero(kb, sizeof kb);
    if (!same) {
        snprintf(errbuf, CRM_ERRBUF,
                 "the snapshot's server key is not this data dir's: is %.100s the primary this "
                 "replica was made from?",
                 self->endpoint);
        return CRM_ERR_FAILED_PRECONDITION;
    }
    store_t *copy = NULL;
    char why[CRM_ERRBUF];
    if (store_open(dir, STORE_REPLICA, &copy, why) != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "the fetched copy does not open: %.250s", why);
        return CRM_ERR_STORAGE;
    }
    *copy_seq = store_wal_seq(copy);
    bool sealed = store_sealed(copy);
    store_destroy(&copy);
    if (sealed != store_sealed(self->store)) { /* store_swap_db would refuse it */
        snprintf(errbuf, CRM_ERRBUF,
                 "the primary's copy is %s and this replica's data dir is %s (was the primary "
                 "upgraded?): make the replica again with 'crm-admin replica init'",
                 sealed ? "encrypted" : "in clear", sealed ? "in clear" : "encrypted");
        return CRM_ERR_FAILED_PRECONDITION;
    }
    if (!diverged && *copy_seq <= have) {
        snprintf(errbuf, CRM_ERRBUF,
                 "the fetched copy is at WAL sequence %llu, not ahead of this replica (%llu)",
                 (unsigned long long)*copy_seq, (unsigned long long)have);
        return CRM_ERR_FAILED_PRECONDITION;
    }
    return CRM_OK;
}

/* Fetch a new snapshot through S, check it, have the server thread switch to
   it. HAVE: our WAL sequence number; WHY: the reason, for the state line;
   DIVERGED: ours is another history than the primary's (s_verify). */
static crm_err_t
s_resync(repl_follower_t *self, void *s, uint64_t have, const char *why, bool diverged)
{
    char dir[PATH_MAX + 32], path[PATH_MAX + 64], errbuf[CRM_ERRBUF];
    int64_t t0 = crm_time_mono_us();
    uint64_t copy_seq = 0;
    crm_err_t rc = CRM_OK;
    s_set_state(self, true, "re-syncing: %s; fetching a new snapshot (serving what it has "
                            "meanwhile)", why);
    snprintf(dir, sizeof dir, "%s/%s", self->data_dir, RESYNC_DIR);
    snprintf(path, sizeof path, "%s/db", dir);
    backup_remove_tree(dir); /* an earlier attempt's */
    if (mkdir(dir, 0700) != 0 || mkdir(path, 0700) != 0) {
        snprintf(errbuf, sizeof errbuf, "cannot create '%.200s': %.80s", path, strerror(errno));
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    s_fetch_t f = {self, s, -1};
    repl_fetch_io_t io = {s_snap_call, s_reply_free, NULL, s_fetch_progress, s_fetch_stop, &f};
    if ((rc = repl_fetch(&io, dir, errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = s_verify(self, dir, have, diverged, &copy_seq, errbuf)) != CRM_OK)
        goto cleanup;
    /* the switch: on the server thread, between two turns */
    s_set_state(self, true, "re-syncing: switching to the new copy at WAL sequence %llu",
                (unsigned long long)copy_seq);
    atomic_store(&self->swap, S_SWAP_READY);
    zmq_send(self->bell_ring, "", 0, ZMQ_DONTWAIT);
    int state;
    while ((state = atomic_load(&self->swap)) == S_SWAP_READY) {
        int ready = S_SWAP_READY;
        if (atomic_load(&self->stop) &&
            atomic_compare_exchange_strong(&self->swap, &ready, S_SWAP_IDLE)) {
            snprintf(errbuf, sizeof errbuf, "stopped before the switch");
            rc = CRM_ERR_UNAVAILABLE;
            goto cleanup;
        }
        usleep(10000);
    }
    atomic_store(&self->swap, S_SWAP_IDLE);
    if (state == S_SWAP_FAILED) {
        pthread_mutex_lock(&self->lock);
        snprintf(errbuf, sizeof errbuf, "%s", self->swap_error);
        pthread_mutex_unlock(&self->lock);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    snprintf(path, sizeof path, "%s/%s", self->data_dir, STORE_PRE_RESYNC_DIR);
    backup_remove_tree(path); /* the old database, now that the new one serves */
    crm_log(CRM_LOG_INFO,
            "replica: re-synced from a new snapshot of %s in %.1f s: now at WAL sequence %llu",
            self->endpoint, (double)(crm_time_mono_us() - t0) / 1e6,
            (unsigned long long)store_wal_seq(self->store));
    zmq_send(self->bell_ring, "", 0, ZMQ_DONTWAIT); /* the feed: the new copy's changes */
cleanup:
    backup_remove_tree(dir);
    if (rc != CRM_OK && !atomic_load(&self->stop))
        s_set_state(self, true,
                    "re-sync from %s failed: %s; trying again in %d s (serving what it has)",
                    self->endpoint, errbuf, RESYNC_RETRY_MS / 1000);
    return rc;
}

static void *
s_follow(void *arg)
{
    repl_follower_t *self = arg;
    void *s = NULL;
    int64_t warned_us = 0;
    s_set_state(self, false, "connecting to the primary at %s", self->endpoint);
    while (!atomic_load(&self->stop)) {
        if (!s && !(s = s_connect(self))) {
            s_set_state(self, false, "cannot connect to the primary at %s: %s", self->endpoint,
                        zmq_strerror(zmq_errno()));
            s_nap(self, 1000);
            continue;
        }
        uint64_t have = store_wal_seq(self->store), my_start = 0;
        uint64_t epoch = store_epoch(self->store, &my_start);
        Crm__ReplPullRequest pull = CRM__REPL_PULL_REQUEST__INIT;
        pull.from_seq = have + 1;
        pull.epoch = epoch;
        pull.epoch_start = my_start;
        uint8_t proof[CRM_EPOCH_PROOF_BYTES];
        crm_epoch_proof(self->epoch_key, epoch, my_start, proof);
        pull.epoch_proof.data = proof;
        pull.epoch_proof.len = sizeof proof;
        pull.max_bytes = REPL_PULL_MAX_BYTES;
        Crm__Request req = CRM__REQUEST__INIT;
        uint64_t id = ++self->next_id;
        req.id = id;
        req.op = CRM__OP__OP_REPL_PULL;
        req.body_case = CRM__REQUEST__BODY_REPL_PULL;
        req.repl_pull = &pull;
        size_t len;
        uint8_t *packed = crm_proto_pack(&req.base, &len);
        int sent = zmq_send(s, packed, len, ZMQ_DONTWAIT);
        free(packed);
        Crm__Reply *reply = sent >= 0 ? s_await(self, s, id) : NULL;
        if (!reply) {
            if (atomic_load(&self->stop))
                break;
            /* a fresh connection: the old one may be dead (restart of either side) */
            s_set_state(self, false, "no answer from the primary at %s; reconnecting",
                        self->endpoint);
            zmq_close(s);
            s = NULL;
            s_nap(self, 200);
            continue;
        }
        int applied = 0;
        char why[640] = ""; /* diverged (or too old): how */
        if (reply->status != CRM__ERROR_CODE__OK) {
            s_set_state(self, false, "the primary at %s refused to ship its log: %s",
                        self->endpoint, reply->message);
            applied = -1;
        } else if (reply->body_case != CRM__REPLY__BODY_REPL_PULL) {
            s_set_state(self, false, "the primary at %s answered a pull without its log",
                        self->endpoint);
            applied = -1;
        } else if (reply->repl_pull->epoch < epoch) {
            s_set_state(self, false,
                        "refusing the log of %s: its epoch %llu is older than ours (%llu); it "
                        "was the primary before a promotion: follow the new primary",
                        self->endpoint, (unsigned long long)reply->repl_pull->epoch,
                        (unsigned long long)epoch);
            applied = -1;
        } else if (reply->repl_pull->epoch > epoch && have >= reply->repl_pull->epoch_start) {
            /* RELIABILITY.md trap 15: its history went on differently from ours */
            snprintf(why, sizeof why,
                     "this replica holds WAL sequence %llu of history %llu, but the primary at "
                     "%s began history %llu after %llu (restored from a backup, or another "
                     "replica promoted)",
                     (unsigned long long)have, (unsigned long long)epoch, self->endpoint,
                     (unsigned long long)reply->repl_pull->epoch,
                     (unsigned long long)reply->repl_pull->epoch_start - 1);
            applied = -1;
        } else if (reply->repl_pull->sealing != CRM__REPL_PULL_REPLY__SEALING__SEALING_UNSAID &&
                   (reply->repl_pull->sealing == CRM__REPL_PULL_REPLY__SEALING__SEALING_SEALED) !=
                       store_sealed(self->store)) {
            /* its values would not read here (a primary upgraded after this replica was
               made): none applied, this replica keeps serving what it has */
            bool sealed = reply->repl_pull->sealing == CRM__REPL_PULL_REPLY__SEALING__SEALING_SEALED;
            s_set_state(self, false,
                        "refusing the log of %s: the primary's values are %s and this "
                        "replica's data dir is %s (was the primary upgraded?); make this "
                        "replica again with 'crm-admin replica init'",
                        self->endpoint, sealed ? "encrypted" : "in clear",
                        sealed ? "in clear" : "encrypted");
            applied = -1;
        } else if (reply->repl_pull->latest_seq < have) {
            /* the same, from a primary that did not begin a history of its own (a copy
               of a data dir put back, a restore by an older OneView): where the two
               parted is not known, so neither is which of our watchers saw changes it
               lacks - no re-sync by ourselves */
            s_set_state(self, false,
                        "diverged: this replica holds WAL sequence %llu but the primary at %s "
                        "only %llu (its data dir put back from a copy?); make this replica "
                        "again with 'crm-admin replica init'",
                        (unsigned long long)have, self->endpoint,
                        (unsigned long long)reply->repl_pull->latest_seq);
            applied = -1;
        } else if (reply->repl_pull->too_old && self->resync) {
            snprintf(why, sizeof why,
                     "the primary at %s no longer keeps its log from sequence number %llu "
                     "(oldest kept: %llu)",
                     self->endpoint, (unsigned long long)(have + 1),
                     (unsigned long long)reply->repl_pull->oldest_seq);
            crm_proto_free((ProtobufCMessage **)&reply);
            if (s_resync(self, s, have, why, false) != CRM_OK && !atomic_load(&self->stop))
                s_nap(self, RESYNC_RETRY_MS);
            continue;
        } else if (reply->repl_pull->too_old) {
            s_set_state(self, true,
                        "too far behind: the primary no longer keeps its log from sequence "
                        "number %llu (oldest kept: %llu); make this replica again with "
                        "'crm-admin replica init', or start crmd without --no-resync to let it "
                        "re-sync by itself (it keeps serving what it has)",
                        (unsigned long long)(have + 1),
                        (unsigned long long)reply->repl_pull->oldest_seq);
            applied = -1;
        } else {
            applied = s_apply(self, reply->repl_pull);
        }
        if (*why && self->resync) { /* diverged at a known point: a full copy of the primary */
            crm_proto_free((ProtobufCMessage **)&reply);
            if (s_resync(self, s, have, why, true) != CRM_OK && !atomic_load(&self->stop))
                s_nap(self, RESYNC_RETRY_MS);
            continue;
        }
        if (*why)
            s_set_state(self, false,
                        "diverged: %s; make this replica again with 'crm-admin replica init', or "
                        "start crmd without --no-resync to let it re-sync by itself",
                        why);
        if (applied > 0)
            zmq_send(self->bell_ring, "", 0, ZMQ_DONTWAIT);
        if (applied >= 0) {
            /* behind: since the primary committed the oldest entry we lacked when we
               asked (its own clock, in the answer), or since we last held everything */
            int64_t now = crm_time_mono_us();
            uint64_t mine = store_wal_seq(self->store);
            uint64_t theirs = reply->repl_pull->latest_seq;
            int64_t asked_ms = (int64_t)reply->repl_pull->behind_ms;
            pthread_mutex_lock(&self->lock);
            self->status.primary_seq = theirs;
            self->status.applied_seq = mine;
            self->status.heard_us = now;
            if (mine >= theirs || !self->status.caught_up_us)
                self->status.caught_up_us = now;
            int64_t behind_ms = (now - self->status.caught_up_us) / 1000;
            pthread_mutex_unlock(&self->lock);
            if (asked_ms > behind_ms)
                behind_ms = asked_ms;
            s_set_state(self, true, "following the primary at %s", self->endpoint);
            if (behind_ms > self->lag_warn_ms && now - warned_us > 10000000) {
                crm_log(CRM_LOG_WARN, "replica: %lld ms and %llu entries behind the primary",
                        (long long)behind_ms,
                        (unsigned long long)(theirs > have ? theirs - have : 0));
                warned_us = now;
            }
        }
        bool idle = applied <= 0 || reply->repl_pull->n_batches == 0;
        crm_proto_free((ProtobufCMessage **)&reply);
        if (applied < 0)
            s_nap(self, 2000); /* refused or stopped: ask again later, slowly */
        else if (idle)
            s_nap(self, REPL_IDLE_WAIT_MS);
    }
    if (s)
        zmq_close(s);
    zmq_close(self->bell_ring);
    self->bell_ring = NULL;
    return NULL;
}

crm_err_t
repl_follower_start(void *ctx, store_t *store, const char *data_dir, const char *endpoint,
                    const char *enroll_path, bool resync, int64_t lag_warn_ms,
                    repl_follower_t **out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    static _Atomic unsigned counter;
    char bell[64];
    repl_follower_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    *out = NULL;
    if ((self->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot set up the replica's wake-up: %s", strerror(errno));
        free(self);
        return CRM_ERR_INTERNAL;
    }
    self->store = store;
    self->ctx = ctx;
    self->resync = resync;
    self->lag_warn_ms = lag_warn_ms;
    snprintf(self->data_dir, sizeof self->data_dir, "%s", data_dir);
    pthread_mutex_init(&self->lock, NULL);
    if ((rc = crm_enroll_load(enroll_path, &self->enroll, errbuf)) != CRM_OK) {
        size_t n = strlen(errbuf);
        snprintf(errbuf + n, CRM_ERRBUF - n,
                 " (a replica needs the enrollment of a user with the replica role: "
                 "'crm-admin replica init' writes it as DIR/replica.enroll)");
        goto cleanup;
    }
    { /* the server key pair is the primary's (a replica is made from its snapshot) */
        char path[PATH_MAX + 16];
        crm_keypair_t kp;
        snprintf(path, sizeof path, "%s/server.key", data_dir);
        if ((rc = crm_keys_load(path, &kp, errbuf)) != CRM_OK)
            goto cleanup;
        crm_epoch_key(kp.sec, self->epoch_key);
        sodium_memzero(&kp, sizeof kp);
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s",
             endpoint && *endpoint ? endpoint : self->enroll.endpoint);
    snprintf(bell, sizeof bell, "inproc://crmd-replica-%u", atomic_fetch_add(&counter, 1));
    int zero = 0;
    self->bell = zmq_socket(ctx, ZMQ_PAIR);
    self->bell_ring = zmq_socket(ctx, ZMQ_PAIR);
    CRM_ASSERT_ALLOC(self->bell);
    CRM_ASSERT_ALLOC(self->bell_ring);
    zmq_setsockopt(self->bell, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->bell_ring, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(self->bell, bell) != 0 || zmq_connect(self->bell_ring, bell) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot set up the replica's bell: %s",
                 zmq_strerror(zmq_errno()));
        rc = CRM_ERR_INTERNAL;
        goto cleanup;
    }
    snprintf(self->status.state, sizeof self->status.state, "starting");
    if (pthread_create(&self->thread, NULL, s_follow, self) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot start the replica's follower thread");
        rc = CRM_ERR_INTERNAL;
        goto cleanup;
    }
    self->started = true;
    *out = self;
    self = NULL;
cleanup:
    repl_follower_stop(&self);
    return rc;
}

void *
repl_follower_socket(repl_follower_t *self)
{
    return self->bell;
}

void
repl_follower_drain(repl_follower_t *self)
{
    char b;
    while (zmq_recv(self->bell, &b, sizeof b, ZMQ_DONTWAIT) >= 0)
        ;
}

void
repl_follower_tick(repl_follower_t *self)
{
    if (atomic_load(&self->swap) != S_SWAP_READY)
        return;
    char dir[PATH_MAX + 64], errbuf[CRM_ERRBUF];
    snprintf(dir, sizeof dir, "%s/%s/db", self->data_dir, RESYNC_DIR);
    int64_t t0 = crm_time_mono_us();
    crm_err_t rc = store_swap_db(self->store, dir, errbuf);
    if (rc == CRM_ERR_CONFLICT)
        return; /* a worker's read view holds the store: next turn */
    if (rc == CRM_OK)
        crm_log(CRM_LOG_INFO, "replica: switched to the new copy in %.1f ms",
                (double)(crm_time_mono_us() - t0) / 1e3);
    pthread_mutex_lock(&self->lock);
    snprintf(self->swap_error, sizeof self->swap_error, "%s", rc == CRM_OK ? "" : errbuf);
    pthread_mutex_unlock(&self->lock);
    atomic_store(&self->swap, rc == CRM_OK ? S_SWAP_DONE : S_SWAP_FAILED);
}

void
repl_resync_cleanup(const char *data_dir)
{
    char old[PATH_MAX + 32], db[PATH_MAX + 8], dir[PATH_MAX + 32];
    struct stat st;
    snprintf(old, sizeof old, "%s/%s", data_dir, STORE_PRE_RESYNC_DIR);
    snprintf(db, sizeof db, "%s/db", data_dir);
    snprintf(dir, sizeof dir, "%s/%s", data_dir, RESYNC_DIR);
    if (stat(old, &st) == 0) {
        if (stat(db, &st) != 0) { /* between the two renames: the old one back */
            if (rename(old, db) == 0)
                crm_log(CRM_LOG_WARN, "replica: a re-sync was interrupted before its switch; "
                                      "the database from before it is back in place");
        } else { /* after them: the new copy (checked before the switch) is in place */
            backup_remove_tree(old);
        }
    }
    if (stat(dir, &st) == 0)
        backup_remove_tree(dir); /* a fetch cut short */
}

const char *
repl_follower_endpoint(const repl_follower_t *self)
{
    return self->endpoint;
}

void
repl_follower_status(repl_follower_t *self, repl_follower_status_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->status;
    pthread_mutex_unlock(&self->lock);
    out->applied_seq = store_wal_seq(self->store);
}

void
repl_follower_halt(repl_follower_t *self)
{
    s_stop(self);
    if (self->started)
        pthread_join(self->thread, NULL);
    self->started = false;
    pthread_mutex_lock(&self->lock);
    self->status.connected = false;
    snprintf(self->status.state, sizeof self->status.state, "promoted: no longer following %s",
             self->endpoint);
    pthread_mutex_unlock(&self->lock);
}

void
repl_follower_stop(repl_follower_t **self_p)
{
    repl_follower_t *self = *self_p;
    if (!self)
        return;
    s_stop(self);
    if (self->started)
        pthread_join(self->thread, NULL);
    close(self->wake);
    if (self->bell_ring)
        zmq_close(self->bell_ring);
    if (self->bell)
        zmq_close(self->bell);
    pthread_mutex_destroy(&self->lock);
    sodium_memzero(&self->enroll, sizeof self->enroll);
    sodium_memzero(self->epoch_key, sizeof self->epoch_key);
    free(self);
    *self_p = NULL;
}
