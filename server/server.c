/*  =========================================================================
    server - owns the sockets and the request loop

    Threads: the server thread runs server_run(): it owns the ROUTER and the
    store's writer group, and serves every request itself (on two cores a
    proxy to worker threads measured 13-25% slower, PERFORMANCE.md). The ZAP
    thread (zap.c) admits connections. libzmq's I/O thread does CURVE.
    Slow work runs on helper threads and reports back by message, never
    blocking this loop: backups (backup.c) and long reads such as reports
    (worker.c: the handler defers, the worker answers from a snapshot, the
    loop sends the reply when the worker rings).

    One loop turn: wait for input (at most 100 ms), drain up to DRAIN_MAX
    requests, dispatch each. Reads are answered at once; writes are staged in
    the group and answered after it commits - at the end of the turn, or
    earlier once the oldest staged write has waited COMMIT_WAIT_US. Then the
    memory guard looks at the heap.

    Memory guard: libzmq bounds frames (ZMQ_MAXMSGSIZE) but not the number
    of frames in a message, and hands a multipart message to us only once it
    is complete, so one peer streaming endless small frames grows the heap
    without bound (RELIABILITY.md trap 4), and libzmq 4.3.4 cannot drop one
    ROUTER peer (trap 6). When the heap passes max_memory the guard closes
    the ROUTER - freeing every half-received message - and binds a fresh one
    on the same endpoint. Clients reconnect by themselves; a request in
    flight at that moment times out in its client and may be retried.
    =========================================================================
*/
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#include "crm_keys.h"
#include "crm_log.h"
#include "crm_mem.h"
#include "crm_proto.h"
#include "crm_time.h"
#include "audit.h"
#include "backup.h"
#include "erase.h"
#include "derive.h"
#include "dispatch.h"
#include "feed.h"
#include "bin.h"
#include "idem.h"
#include "quota.h"
#include "records.h"
#include "replica.h"
#include "store.h"
#include "worker.h"
#include "zap.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* accepted by the stable 4.3.4 build, declared as draft */
#endif

#define DRAIN_MAX 256              /* requests served per loop turn */
#define COMMIT_WAIT_US 300         /* longest a staged write waits for more to join its group */
#define GUARD_INTERVAL_US 50000    /* how often the memory guard looks */
#define GUARD_EXACT_EVERY 20       /* ... and every how many looks it counts the heap exactly */
#define TRIM_EVERY_MS 5000         /* how often the trimmer looks for freed memory to give back */
#define GUARD_COOLDOWN_US 200000   /* after a reset, let the reaper free the old pipes */
#define RECOVER_INTERVAL_US 500000 /* while writes fail, how often to try to take them again */
#define SHUTDOWN_LINGER_MS 2000    /* on stop, time for replies already queued to go out */

/* A request held until something is committed (dispatch_hold: a replica's
   pull that found nothing new), then run again. */
typedef struct {
    zmq_msg_t rid;       /* routing id of the requester */
    uint8_t *body;       /* the request (owned) */
    size_t len;
    char *user;          /* its ZAP identity (owned) */
    uint64_t wal_seq;    /* the store's WAL sequence number when it was held */
    int64_t deadline_us; /* answered by then at the latest (with nothing new) */
    bool holds;          /* kept in the queue: a write kept for a large change (every
                            write that comes waits behind it) */
} s_held_t;

#define HELD_MAX 64       /* requests held at once; beyond, pulls are answered at once */
/* Requests kept (s_enqueue): writes while a large change waits or runs
   (dispatch_large), in arrival order, and a connection's requests that must not
   pass what it sent before; beyond either bound one is refused with
   RESOURCE_EXHAUSTED */
#define QUEUE_MAX 10000
#define QUEUE_BYTES (64u << 20)
#define QUEUE_PER_USER (QUEUE_MAX / 4) /* ... and of one user (a client may pipeline) */

/* How many kept requests each key (a user, a connection) has: a few keys while a
   large change runs, searched in order. */
typedef struct {
    uint8_t *key;
    size_t klen;
    size_t n;
} s_qcount_t;

typedef struct {
    s_qcount_t *v;
    size_t n, cap;
} s_qcounts_t;

typedef struct {
    s_held_t *v; /* [head, n) wait */
    size_t head, n, cap;
    size_t bytes;       /* of their bodies */
    size_t writes;      /* of them writes kept for a large change (s_held_t.holds): a
                           write that comes waits behind them */
    s_qcounts_t users;  /* who they are from (ZAP identity, "" for none) */
    s_qcounts_t conns;  /* which connection (routing id): its later requests wait too */
    bool ready;         /* some may run now (the poll does not wait) */
} s_queue_t;
#define HOLD_US 500000    /* longest a pull is held */
/* --sync-replicas: longest a write's reply waits for the replicas; below the client's
   default timeout (5 s), so that the client gets this answer, not a timeout */
#define SYNC_WAIT_US 3000000

/* A reply that waits for the group commit of its write. */
typedef struct {
    zmq_msg_t rid;  /* routing id of the requester */
    uint8_t *reply; /* packed reply (owned) */
    size_t len;
    uint64_t id;    /* request id, for an error reply if the commit fails */
    uint8_t *defer; /* a deferred request (owned): to the worker once committed */
    size_t defer_len;
    char *defer_user;
    bool ok;        /* the reply is not an error (the commit's outcome aside) */
    bool watch;     /* the answer to a WATCH (feed_replied) */
    bool wrote;     /* a write: under --sync-replicas it waits for the replicas too */
    bool counted;   /* ... counted in the server's `unanswered` until it is answered */
    bool away;      /* deferred: counted in the server's `away` until the worker answers */
} s_pending_t;

/* Replies waiting for one commit. */
typedef struct {
    s_pending_t *v;
    size_t n, cap;
} s_plist_t;

struct server {
    server_config_t cfg;
    void *ctx;                   /* ZeroMQ context */
    void *router;                /* CURVE ROUTER serving requests */
    void *monitor;               /* PAIR: the ROUTER's connections accepted and gone */
    unsigned monitors;           /* monitors made (each needs its own endpoint) */
    quota_t *limits;            /* rate and connection limits */
    zap_t *zap;                  /* ZAP handler thread */
    store_t *store;              /* the database */
    store_group_t *group;        /* the writer's group commit */
    feed_t *feed;                /* change feed subscribers */
    backup_job_t *backup;        /* hot backups on a helper thread (backup.c) */
    worker_t *worker;            /* long reads on a helper thread (worker.c), while running */
    worker_t *writer;            /* large changes on a helper thread, with a group of their own */
    store_group_t *xgroup;       /* ... that group */
    s_held_t large;              /* the large change waiting for the group to empty, or running */
    bool large_on;               /* there is one: writes wait in the queue meanwhile */
    bool large_sent;             /* ... and the writer has it: this thread commits nothing */
    bool large_scrub;            /* ... it is a slice of an erasure's scrub, not a request */
    int64_t large_since_us;      /* ... since when it waits or runs */
    uint64_t large_before;       /* ... the store's last change when the writer took it */
    uint8_t large_conn[256];     /* ... the routing id it came from (its later requests wait) */
    size_t large_conn_len;       /* ... (0: none, a scrub's slice) */
    s_queue_t queue;             /* the writes waiting for it, then for their turn */
    s_qcounts_t unanswered;      /* writes not answered yet, by connection: a read sent
                                    after one waits for its answer (s_serve_one) */
    s_qcounts_t away;            /* requests deferred to the worker, by connection: what
                                    it sends after one waits for its answer */
    int64_t trim_next_us;        /* next change-log retention pass */
    int64_t snap_next_us;        /* next look for an abandoned replica snapshot */
    int64_t idem_next_us;        /* next pass over expired idempotency keys */
    crm_keypair_t keys;          /* long-term server keypair */
    char key_z85[CRM_Z85_LEN + 1];
    uint8_t epoch_key[32];       /* crm_epoch_key() of keys.sec: replicas' epoch proofs */
    char endpoint[256];          /* bound endpoint, real port */
    crm_ratelimit_t log_rl;      /* bad-request log lines */
    crm_ratelimit_t slow_rl;     /* slow-request log lines */
    int64_t guard_next_us;       /* next memory check */
    unsigned long guard_looks;   /* memory checks made (every GUARD_EXACT_EVERY-th is exact) */
    crm_mem_trimmer_t *trimmer;  /* gives freed memory back to the OS (crm_mem.h) */
    int64_t recover_next_us;     /* next attempt to take writes again after a failure */
    unsigned long resets;        /* times the memory guard dropped all connections */
    s_plist_t pending;           /* replies held until what is staged commits */
    s_plist_t flight;            /* replies held until the commit in flight lands */
    s_held_t held[HELD_MAX];     /* pulls waiting for the next commit */
    size_t n_held;
    struct s_synced *syncq;      /* --sync-replicas: committed, waiting for the replicas */
    size_t n_syncq, cap_syncq;
    value_rules_t rules;         /* customer value and deal rules */
    erase_t *erase;              /* erasures' history scrubs, a slice per loop turn */
    int64_t sweep_next_us;       /* when the next daily value sweep starts */
    bool sweeping;               /* a sweep is under way, a slice per loop turn */
    char sweep_kind;             /* its cursor: the kind ('c', then 't') ... */
    uint64_t sweep_after;        /* ... and the last record number swept */
    int64_t sweep_as_of;         /* its time (ms) */
    uint64_t sweep_until[2];     /* the last customer and ticket made before it began */
    repl_t *repl;                /* replicas pulling our log (replica.h) */
    repl_follower_t *follower;   /* a replica: the thread following the primary */
    repl_snap_t *snap;           /* snapshots for new replicas */
    sweep_result_t sweep_total;  /* what it did so far */
};

/* A committed write's reply waiting until --sync-replicas replicas hold WAL_SEQ. */
struct s_synced {
    s_pending_t p;
    uint64_t wal_seq;
    int64_t deadline_us;
};

#define SWEEP_SLICE 50 /* customers per loop turn: well under a millisecond of work */
/* While a large change waits for the group to empty, a commit of fewer bytes staged
   than this is written on the server thread (see s_commit), and any commit once it
   has waited this long */
#define LARGE_WAIT_SYNC_BYTES (64u << 10)
#define LARGE_WAIT_US 10000
/* A change-log entry stored in more bytes than this (a change of a hundred records or
   more) is scrubbed by the writer thread: one entry is rewritten whole, about 12 us a KiB */
#define SCRUB_LARGE_BYTES (128u << 10)

void
server_config_defaults(server_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sweep_every_ms = 24LL * 3600 * 1000;
    cfg->bin_keep_ms = BIN_DAYS_DEFAULT * 86400000LL;
    cfg->listen = SERVER_DEFAULT_ENDPOINT;
    cfg->max_msg = 1u << 20;
    cfg->slow_us = SERVER_SLOW_MS * 1000;
    cfg->large_records = SERVER_LARGE_RECORDS;
    cfg->max_memory = 512u << 20;
    cfg->handshake_ms = 3000;
    cfg->retain_events = 10000000;
    cfg->max_conn_per_user = 256;
    cfg->max_conn = 4096;
    cfg->io_threads = 1;
    cfg->wal_keep_s = STORE_WAL_KEEP_S_DEFAULT;
    cfg->lag_warn_ms = REPL_LAG_WARN_MS;
}

static crm_err_t
s_check_zmq(char *errbuf)
{
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    if (major * 10000 + minor * 100 + patch < 40303) {
        snprintf(errbuf, CRM_ERRBUF,
                 "libzmq %d.%d.%d is too old: 4.3.3 or newer is required (security fixes)", major,
                 minor, patch);
        return CRM_ERR_UNAVAILABLE;
    }
    if (!zmq_has("curve")) {
        snprintf(errbuf, CRM_ERRBUF, "this libzmq was built without CURVE security; install one "
                                     "with libsodium support");
        return CRM_ERR_UNAVAILABLE;
    }
    return CRM_OK;
}

/* Create the ROUTER with every security option, then bind ENDPOINT. */
static crm_err_t
s_router_open(server_t *self, const char *endpoint, char *errbuf)
{
    int one = 1, zero = 0;
    /* libzmq drops the connection of a peer whose frame is over ZMQ_MAXMSGSIZE,
       without a word. Up to twice --max-msg, frames are let in so that dispatch
       can answer RESOURCE_EXHAUSTED with the request's id and log it; only
       frames beyond that are dropped by libzmq. */
    int64_t maxmsg = (int64_t)self->cfg.max_msg * 2;
    void *s = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!s) {
        snprintf(errbuf, CRM_ERRBUF, "cannot create the request socket: %s",
                 zmq_strerror(zmq_errno()));
        return CRM_ERR_INTERNAL;
    }
    int rc = 0;
    rc |= zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    rc |= zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, self->keys.sec, CRM_KEY_BYTES);
    rc |= zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    rc |= zmq_setsockopt(s, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
    rc |= zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    rc |= zmq_setsockopt(s, ZMQ_HANDSHAKE_IVL, &self->cfg.handshake_ms, sizeof(int));
    rc |= zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &zero, sizeof zero);
    /* a full or vanished peer is reported (EAGAIN / EHOSTUNREACH), not silently
       dropped: the feed keeps its cursor and retries */
    rc |= zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (rc != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot secure the request socket: %s",
                 zmq_strerror(zmq_errno()));
        zmq_close(s);
        return CRM_ERR_INTERNAL;
    }
    /* a just-closed listener is released by libzmq's reaper: retry briefly, in small
       steps (the memory guard's reset waited 20 ms here on the server thread) */
    for (int tries = 0; zmq_bind(s, endpoint) != 0; tries++) {
        if (zmq_errno() != EADDRINUSE || tries == 1000) {
            snprintf(errbuf, CRM_ERRBUF,
                     "cannot listen on '%s': %s (is another crmd running? use --listen)",
                     endpoint, zmq_strerror(zmq_errno()));
            zmq_close(s);
            return CRM_ERR_UNAVAILABLE;
        }
        usleep(1000);
    }
    size_t len = sizeof self->endpoint;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, self->endpoint, &len);
    self->router = s;
    /* connections accepted and gone, for the connection limits (quota.h) */
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://crmd-monitor-%u", self->monitors++);
    if (zmq_socket_monitor(s, mon, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0) {
        self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(self->monitor, mon) != 0) {
            zmq_close(self->monitor);
            self->monitor = NULL;
        }
    }
    if (!self->monitor)
        crm_log(CRM_LOG_WARN, "no socket monitor: connections are not counted for the limits");
    return CRM_OK;
}

crm_err_t
server_new(const server_config_t *cfg, server_t **out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char path[PATH_MAX];
    server_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    *out = NULL;
    self->cfg = *cfg;

    if ((rc = s_check_zmq(errbuf)) != CRM_OK)
        goto cleanup;
    unsigned sflags = (cfg->sync ? STORE_SYNC : 0) | (cfg->replica_of ? STORE_REPLICA : 0);
    repl_resync_cleanup(cfg->data_dir); /* what a crash left of a replica's re-sync */
    if ((rc = store_open_wal(cfg->data_dir, sflags, cfg->wal_keep_s, &self->store, errbuf)) !=
        CRM_OK)
        goto cleanup;
    self->trimmer = crm_mem_trimmer_start(TRIM_EVERY_MS);
    snprintf(path, sizeof path, "%s/server.key", cfg->data_dir);
    if ((rc = crm_keys_load(path, &self->keys, errbuf)) != CRM_OK)
        goto cleanup;
    crm_keys_to_z85(self->keys.pub, self->key_z85);
    crm_epoch_key(self->keys.sec, self->epoch_key);
    uint64_t indexed = 0;
    /* a replica writes nothing of its own: the primary's upgrade reaches it by the log */
    if (!cfg->replica_of && (rc = audit_index_upgrade(self->store, &indexed, errbuf)) != CRM_OK)
        goto cleanup;
    if (indexed)
        crm_log(CRM_LOG_INFO, "audit: indexed %llu entries of an older data dir by user and "
                              "department (once)", (unsigned long long)indexed);
    value_rules_defaults(&self->rules);
    if (cfg->rules_path)
        rc = value_rules_load(&self->rules, cfg->rules_path, true, errbuf);
    else {
        snprintf(path, sizeof path, "%s/value-rules.conf", cfg->data_dir);
        rc = value_rules_load(&self->rules, path, false, errbuf);
    }
    if (rc != CRM_OK)
        goto cleanup;
    /* the first sweep soon after a start */
    self->sweep_next_us = crm_time_mono_us() + (cfg->sweep_every_ms && cfg->sweep_every_ms < 10000
                                                    ? cfg->sweep_every_ms * 1000
                                                    : 10 * 1000000LL);
    self->group = store_group_new(self->store);
    self->xgroup = store_group_new(self->store);
    feed_config_t fcfg = {.retain_events = cfg->retain_events, .retain_ms = cfg->retain_ms};
    self->feed = feed_new(self->store, &fcfg);
    self->erase = erase_new(cfg->fault_slow_erase ? 1 : 0, cfg->fault_slow_erase ? 40000 : 0);
    self->backup = backup_job_new(self->store, cfg->data_dir, cfg->backup_dir,
                                  cfg->backup_every_ms, cfg->backup_keep);
    self->ctx = zmq_ctx_new();
    CRM_ASSERT_ALLOC(self->ctx);
    zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, cfg->io_threads);
    quota_config_t lcfg = {cfg->max_rate, cfg->max_conn_per_user, cfg->max_conn};
    self->limits = quota_new(&lcfg);
    if (cfg->fault_no_zap)
        crm_log(CRM_LOG_WARN, "fault injection: the ZAP handler is NOT started; every client "
                              "must be refused");
    else if ((rc = zap_start(self->ctx, self->store, &self->zap, errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = s_router_open(self, cfg->listen, errbuf)) != CRM_OK)
        goto cleanup;
    self->repl = repl_new(self->store);
    self->snap = repl_snap_new(self->store, cfg->data_dir);
    if (cfg->replica_of) {
        /* a digest as of the primary's number, which the replica has passed by the time
           it is asked (REPL_DIGEST): views of the last seconds, bounded in number */
        store_keep_views(self->store, REPL_VIEW_KEEP_MS, REPL_VIEW_MAX);
        snprintf(path, sizeof path, "%s/replica.enroll", cfg->data_dir);
        if ((rc = repl_follower_start(self->ctx, self->store, cfg->data_dir, cfg->replica_of,
                                      cfg->replica_enroll ? cfg->replica_enroll : path,
                                      !cfg->no_resync, cfg->lag_warn_ms, &self->follower,
                                      errbuf)) != CRM_OK)
            goto cleanup;
    }
    *out = self;
    self = NULL;
cleanup:
    server_destroy(&self);
    return rc;
}

const char *
server_endpoint(const server_t *self)
{
    return self->endpoint;
}

/* Send REPLY (freed here) to the peer RID (closed here). A peer that vanished
   or is over its high-water mark loses its reply. Returns true if it went out. */
static bool
s_send_reply(server_t *self, zmq_msg_t *rid, uint8_t *reply, size_t len)
{
    bool sent = false;
    if (self->router && zmq_msg_send(rid, self->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        sent = zmq_send(self->router, reply, len, ZMQ_DONTWAIT) >= 0;
    else
        zmq_msg_close(rid);
    free(reply);
    return sent;
}

/* Send the answer to request ID of the peer RID, OK or an error, as
   s_send_reply. The answer to a WATCH is told to the feed: its events
   follow it, and a WATCH answered with an error, or whose answer could not
   go out, is dropped. */
static void
s_send_answer(server_t *self, zmq_msg_t *rid, uint8_t *reply, size_t len, uint64_t id, bool ok,
              bool watch)
{
    if (!watch) {
        s_send_reply(self, rid, reply, len);
        return;
    }
    uint8_t who[256]; /* the send takes the routing id */
    size_t n = zmq_msg_size(rid) < sizeof who ? zmq_msg_size(rid) : sizeof who;
    memcpy(who, zmq_msg_data(rid), n);
    bool sent = s_send_reply(self, rid, reply, len);
    feed_replied(self->feed, who, n, id, ok && sent);
}

static size_t *s_qcount(s_qcounts_t *c, const void *key, size_t klen, bool add);
static void s_qcount_done(s_qcounts_t *c, const void *key, size_t klen);
static bool s_queued(const server_t *self);

/* One more (ADD) or one fewer under RID in C; one fewer makes the kept requests
   worth a look. */
static void
s_count_conn(server_t *self, s_qcounts_t *c, zmq_msg_t *rid, bool add)
{
    if (add) {
        (*s_qcount(c, zmq_msg_data(rid), zmq_msg_size(rid), true))++;
        return;
    }
    s_qcount_done(c, zmq_msg_data(rid), zmq_msg_size(rid));
    self->queue.ready |= s_queued(self);
}

/* Give a deferred request to the worker, or refuse it when the worker has
   too much in hand. */
static void
s_defer(server_t *self, zmq_msg_t *rid, uint64_t id, const char *user_id, const uint8_t *body,
        size_t len, bool counted)
{
    if (!counted) /* (counted already when its reply waited for a commit first) */
        s_count_conn(self, &self->away, rid, true);
    if (self->worker && worker_submit(self->worker, rid, user_id, body, len)) {
        crm_log(CRM_LOG_DEBUG, "worker: request %llu handed over (%zu waiting or running)",
                (unsigned long long)id, worker_load(self->worker));
        return; /* (RID moved) */
    }
    s_count_conn(self, &self->away, rid, false);
    char text[CRM_ERRBUF];
    size_t reply_len;
    snprintf(text, sizeof text, "the server is busy with %d long requests (reports); try again "
                                "shortly", WORKER_QUEUE_MAX + 1);
    uint8_t *reply = dispatch_error_reply(id, CRM_ERR_RESOURCE_EXHAUSTED, text, 0, &reply_len);
    s_send_reply(self, rid, reply, reply_len);
}

static void
s_worker_reply(void *arg, zmq_msg_t *rid, uint8_t *reply, size_t len, const dispatch_out_t *out,
               feed_event_t **event)
{
    (void)out;
    (void)event;
    server_t *self = arg;
    s_count_conn(self, &self->away, rid, false); /* (s_defer counted it) */
    s_send_reply(self, rid, reply, len);
}

/* At shutdown, a request the worker had not begun: its client is told. */
static void
s_worker_refuse(void *arg, zmq_msg_t *rid, const uint8_t *body, size_t len)
{
    server_t *self = arg;
    uint64_t id = 0;
    crm_proto_peek_id(body, len, &id);
    s_count_conn(self, &self->away, rid, false);
    size_t reply_len;
    uint8_t *reply = dispatch_error_reply(
        id, CRM_ERR_UNAVAILABLE,
        "the server is stopping: this request waited for the helper thread (behind other "
        "reports) and was not run; send it again",
        0, &reply_len);
    s_send_reply(self, rid, reply, reply_len);
}

/* Hold a reply until what is staged commits (RID moves into it). */
static s_pending_t *
s_pend_on(s_plist_t *list, zmq_msg_t *rid, uint8_t *reply, size_t len, const dispatch_out_t *out)
{
    if (list->n == list->cap) {
        list->cap = list->cap ? list->cap * 2 : DRAIN_MAX;
        list->v = realloc(list->v, list->cap * sizeof *list->v);
        CRM_ASSERT_ALLOC(list->v);
    }
    s_pending_t *p = &list->v[list->n++];
    zmq_msg_init(&p->rid);
    zmq_msg_move(&p->rid, rid);
    zmq_msg_close(rid);
    p->reply = reply;
    p->len = len;
    p->id = out->id;
    p->ok = out->ok;
    p->watch = out->watch;
    p->wrote = out->wrote;
    p->counted = false;
    p->away = false;
    p->defer = NULL;
    p->defer_user = NULL;
    return p;
}

/* Hold a reply until what this thread staged commits; a write's connection is
   counted until then (what it sends next may read what it wrote). */
static s_pending_t *
s_pend(server_t *self, zmq_msg_t *rid, uint8_t *reply, size_t len, const dispatch_out_t *out)
{
    if (out->wrote)
        s_count_conn(self, &self->unanswered, rid, true);
    if (out->deferred) /* to the worker once committed: what comes after waits for it */
        s_count_conn(self, &self->away, rid, true);
    s_pending_t *p = s_pend_on(&self->pending, rid, reply, len, out);
    p->counted = out->wrote;
    p->away = out->deferred;
    return p;
}

/* Keep a request in H: RID moves in, BODY and USER_ID are copied. */
static void
s_keep(s_held_t *h, zmq_msg_t *rid, const uint8_t *body, size_t len, const char *user_id)
{
    zmq_msg_init(&h->rid);
    zmq_msg_move(&h->rid, rid);
    zmq_msg_close(rid);
    h->len = len;
    h->body = malloc(len ? len : 1);
    CRM_ASSERT_ALLOC(h->body);
    memcpy(h->body, body, len);
    h->user = user_id ? strdup(user_id) : NULL;
}

static bool
s_queued(const server_t *self)
{
    return self->queue.n > self->queue.head;
}

/* Answer a kept request RID with error RC (TEXT), freeing what H kept. */
static void
s_refuse_kept(server_t *self, s_held_t *h, uint64_t id, crm_err_t rc, const char *text)
{
    size_t len;
    uint8_t *reply = dispatch_error_reply(id, rc, text, 0, &len);
    s_send_reply(self, &h->rid, reply, len);
    free(h->body);
    free(h->user);
    h->body = NULL;
    h->user = NULL;
}

/* The count kept under KEY in C (made with ADD; NULL if not there). */
static size_t *
s_qcount(s_qcounts_t *c, const void *key, size_t klen, bool add)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].klen == klen && !memcmp(c->v[i].key, key, klen))
            return &c->v[i].n;
    if (!add)
        return NULL;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        CRM_ASSERT_ALLOC(c->v);
    }
    s_qcount_t *e = &c->v[c->n++];
    e->key = malloc(klen ? klen : 1);
    CRM_ASSERT_ALLOC(e->key);
    memcpy(e->key, key, klen);
    e->klen = klen;
    e->n = 0;
    return &e->n;
}

/* One fewer under KEY in C: a key at 0 is forgotten. */
static void
s_qcount_done(s_qcounts_t *c, const void *key, size_t klen)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].klen != klen || memcmp(c->v[i].key, key, klen))
            continue;
        if (c->v[i].n > 1) {
            c->v[i].n--;
            return;
        }
        free(c->v[i].key);
        c->v[i] = c->v[--c->n];
        return;
    }
}

static size_t *
s_quser(s_queue_t *q, const char *user, bool add)
{
    user = user ? user : "";
    return s_qcount(&q->users, user, strlen(user), add);
}

static size_t *
s_qconn(s_queue_t *q, zmq_msg_t *rid, bool add)
{
    return s_qcount(&q->conns, zmq_msg_data(rid), zmq_msg_size(rid), add);
}

static void
s_qcounts_clear(s_qcounts_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].key);
    c->n = 0;
}

/* The queue is empty: forget its counts. */
static void
s_queue_emptied(s_queue_t *q)
{
    q->head = q->n = 0;
    q->bytes = 0;
    q->writes = 0;
    q->ready = false;
    s_qcounts_clear(&q->users);
    s_qcounts_clear(&q->conns);
}

/* A write that came while a large change waits or runs, or any request from a
   connection with one kept (its replies keep its order): kept, in order, until
   it is done (or refused when too many wait, or too many of its user's). */
static void
s_enqueue(server_t *self, zmq_msg_t *rid, const uint8_t *body, size_t len, const char *user_id,
          uint64_t id, bool holds)
{
    s_queue_t *q = &self->queue;
    size_t *mine = s_quser(q, user_id, true);
    if (q->n - q->head >= QUEUE_MAX || q->bytes + len > QUEUE_BYTES ||
        *mine >= QUEUE_PER_USER) {
        char text[CRM_ERRBUF];
        size_t rlen;
        const char *why = self->large_on ? "finishing a large change"
                                         : "committing writes sent before them";
        if (*mine >= QUEUE_PER_USER)
            snprintf(text, sizeof text, "the server is busy %s, with %zu requests of yours "
                                        "waiting for it: try again shortly",
                     why, *mine);
        else
            snprintf(text, sizeof text, "the server is busy %s, with %zu requests waiting for "
                                        "it: try again shortly",
                     why, q->n - q->head);
        uint8_t *reply = dispatch_error_reply(id, CRM_ERR_RESOURCE_EXHAUSTED, text, 0, &rlen);
        s_send_reply(self, rid, reply, rlen);
        return;
    }
    if (q->head && q->n == q->cap) { /* room at the front: move down */
        memmove(q->v, q->v + q->head, (q->n - q->head) * sizeof *q->v);
        q->n -= q->head;
        q->head = 0;
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : DRAIN_MAX;
        q->v = realloc(q->v, q->cap * sizeof *q->v);
        CRM_ASSERT_ALLOC(q->v);
    }
    (*s_qconn(q, rid, true))++;
    q->v[q->n].holds = holds;
    q->writes += holds;
    s_keep(&q->v[q->n++], rid, body, len, user_id);
    q->bytes += len;
    (*mine)++;
    crm_log(CRM_LOG_DEBUG, "request %llu: kept until %s (%zu waiting)", (unsigned long long)id,
            self->large_on ? "the large change is done"
                           : "what its connection sent before is answered",
            q->n - q->head);
}

/* Answer every kept write with RC (TEXT): they are not done. */
static void
s_refuse_queue(server_t *self, crm_err_t rc, const char *text)
{
    s_queue_t *q = &self->queue;
    for (size_t i = q->head; i < q->n; i++) {
        uint64_t id = 0;
        crm_proto_peek_id(q->v[i].body, q->v[i].len, &id);
        s_refuse_kept(self, &q->v[i], id, rc, text);
    }
    s_queue_emptied(q);
}

/* What to do with a request dispatch_process() has served (OUT, REPLY): RID
   moves on, BODY and USER_ID are copied where the request is kept. */
static void
s_route(server_t *self, zmq_msg_t *rid, const uint8_t *body, size_t len, const char *user_id,
        uint8_t *reply, size_t reply_len, const dispatch_out_t *out)
{
    if (out->held) {
        s_held_t *h = &self->held[self->n_held++];
        s_keep(h, rid, body, len, user_id);
        h->wal_seq = store_wal_seq(self->store);
        h->deadline_us = crm_time_mono_us() + HOLD_US;
        return;
    }
    if (out->queued) {
        /* a write kept for a large change keeps every later write behind it; one kept
           only to keep its connection's order holds no one else */
        s_enqueue(self, rid, body, len, user_id, out->id,
                  out->wrote && (self->large_on || self->queue.writes));
        return;
    }
    if (out->large) { /* to the writer once this thread's group is empty (s_large_start) */
        CRM_ASSERT(!self->large_on);
        self->large_conn_len = zmq_msg_size(rid) <= sizeof self->large_conn ? zmq_msg_size(rid) : 0;
        memcpy(self->large_conn, zmq_msg_data(rid), self->large_conn_len);
        s_keep(&self->large, rid, body, len, user_id);
        self->large_on = true;
        self->large_sent = false;
        self->large_since_us = crm_time_mono_us();
        return;
    }
    if (out->deferred && !out->after_commit) {
        s_defer(self, rid, out->id, user_id, body, len, false);
        return;
    }
    if (out->after_commit) {
        s_pending_t *p = s_pend(self, rid, reply, reply_len, out);
        if (out->deferred) { /* its audit entry commits first, then the worker answers */
            p->defer_len = len;
            p->defer = malloc(len ? len : 1);
            CRM_ASSERT_ALLOC(p->defer);
            memcpy(p->defer, body, len);
            p->defer_user = user_id ? strdup(user_id) : NULL;
        }
        return;
    }
    s_send_answer(self, rid, reply, reply_len, out->id, out->ok, out->watch);
}

/* Serve the kept requests that may run now, oldest first, until another large
   change begins: none while one runs; nor, of a connection, any from the first
   that would pass an unanswered write of it (s_conn_waits) - the others go on.
   Every check runs now, as for a request just received. */
static void
s_serve_queued(server_t *self, dispatch_env_t *env)
{
    s_queue_t *q = &self->queue;
    if (!q->ready || self->large_on)
        return;
    q->ready = false;
    /* every reason to keep one lasts the pass (no answer is sent in it, so the
       counts below only grow), so a connection's requests keep their order */
    size_t kept = 0, i = q->head;
    for (size_t served = 0; i < q->n && !self->large_on; i++) {
        if (served == DRAIN_MAX) {
            q->ready = true; /* the rest next turn */
            break;
        }
        s_held_t h = q->v[i]; /* the routing id moves with the struct */
        const void *key = zmq_msg_data(&h.rid);
        size_t klen = zmq_msg_size(&h.rid);
        if (s_qcount(&self->unanswered, key, klen, false) ||
            s_qcount(&self->away, key, klen, false)) {
            q->v[kept++] = h;
            continue;
        }
        served++;
        q->bytes -= h.len;
        q->writes -= h.holds;
        s_qcount_done(&q->users, h.user ? h.user : "", h.user ? strlen(h.user) : 0);
        s_qcount_done(&q->conns, key, klen);
        dispatch_out_t out;
        size_t len = 0;
        env->rid = key;
        env->rid_len = klen;
        env->user_id = h.user;
        env->src_fd = -1;
        env->can_hold = false;
        env->hold_writes = false;
        env->hold_all = false;
        env->hold_reads = false; /* (its connection's writes were answered) */
        env->limits = NULL; /* counted when it came */
        uint8_t *reply = dispatch_process(env, h.user, 1, h.body, h.len, &len, &out);
        env->limits = self->limits;
        env->rid = NULL;
        env->user_id = NULL;
        s_route(self, &h.rid, h.body, h.len, h.user, reply, len, &out);
        free(h.body);
        free(h.user);
    }
    /* (none is kept while it runs: the flags above keep dispatch from it) */
    memmove(q->v + kept, q->v + i, (q->n - i) * sizeof *q->v);
    q->n = kept + (q->n - i);
    q->head = 0;
    if (q->n == 0)
        s_queue_emptied(q);
}

/* Whether the connection RID has a large change or a kept request under way. */
static bool
s_conn_waits(server_t *self, zmq_msg_t *rid)
{
    size_t *kept = s_qconn(&self->queue, rid, false);
    if (kept && *kept)
        return true;
    return self->large_on && self->large_conn_len == zmq_msg_size(rid) &&
           !memcmp(self->large_conn, zmq_msg_data(rid), self->large_conn_len);
}

/* Receive and serve one request if one is queued. Returns false when none is. */
static bool
s_serve_one(server_t *self, dispatch_env_t *env)
{
    zmq_msg_t rid, body, extra;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, self->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&rid);
        return false;
    }
    size_t nframes = 0;
    zmq_msg_init(&body);
    if (zmq_msg_more(&rid) && zmq_msg_recv(&body, self->router, 0) >= 0) {
        nframes = 1;
        /* extra frames are counted and dropped; dispatch refuses the request */
        while (zmq_msg_more(nframes == 1 ? &body : &extra)) {
            if (nframes > 1)
                zmq_msg_close(&extra);
            zmq_msg_init(&extra);
            if (zmq_msg_recv(&extra, self->router, 0) < 0)
                break;
            nframes++;
        }
        if (nframes > 1)
            zmq_msg_close(&extra);
    }
    const char *user_id = nframes ? zmq_msg_gets(&body, "User-Id") : NULL;
    size_t reply_len = 0;
    dispatch_out_t out;
    env->rid = zmq_msg_data(&rid);
    env->rid_len = zmq_msg_size(&rid);
    env->src_fd = nframes ? zmq_msg_get(&body, ZMQ_SRCFD) : -1;
    env->user_id = user_id;
    env->can_hold = self->n_held < HELD_MAX;
    /* behind a large change, and behind the writes that waited for it */
    env->hold_writes = self->large_on || self->queue.writes;
    env->hold_all = ((self->large_on || s_queued(self)) && s_conn_waits(self, &rid)) ||
                    (self->away.n &&
                     s_qcount(&self->away, zmq_msg_data(&rid), zmq_msg_size(&rid), false));
    /* a read must not pass a write sent before it on its connection (reads see
       what is committed; the write's answer waits for its commit) */
    env->hold_reads = env->hold_all || (self->unanswered.n &&
                                        s_qcount(&self->unanswered, zmq_msg_data(&rid),
                                                 zmq_msg_size(&rid), false));
    uint8_t *reply = dispatch_process(env, user_id, nframes, zmq_msg_data(&body),
                                      zmq_msg_size(&body), &reply_len, &out);
    env->rid = NULL;
    env->user_id = NULL;
    env->can_hold = false;
    env->hold_writes = env->hold_all = env->hold_reads = false; /* (this request's) */
    s_route(self, &rid, zmq_msg_data(&body), zmq_msg_size(&body), user_id, reply, reply_len,
            &out);
    zmq_msg_close(&body);
    return true;
}

/* Work of the loop's own (a commit, housekeeping) that held the server thread
   since T0 for --slow-log or longer: logged as a slow request is (dispatch.c),
   "slow WHAT held the server thread X ms", sharing its 10 lines a second. */
static void s_slow(server_t *self, int64_t t0, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
s_slow(server_t *self, int64_t t0, const char *fmt, ...)
{
    int64_t took = crm_time_mono_us() - t0;
    int suppressed = 0;
    if (self->cfg.slow_us <= 0 || took < self->cfg.slow_us ||
        !crm_log_allow(&self->slow_rl, 10, &suppressed))
        return;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    crm_log(CRM_LOG_WARN, "slow %s held the server thread %.1f ms (--slow-log %.0f ms)%s", what,
            (double)took / 1e3, (double)self->cfg.slow_us / 1e3,
            suppressed ? " (more not logged)" : "");
}

/* Commit the turn's writes, then answer their requests (errors if the commit failed). */
/* The server's own value sweep (time-based rules: at-risk, churned): once
   per --sweep-every, a slice of customers per loop turn, as user "system",
   through the same mutations and group commit as every other write. */
static void
s_sweep(server_t *self, const dispatch_env_t *env)
{
    int64_t now = crm_time_mono_us();
    if (!self->cfg.sweep_every_ms || (!self->sweeping && now < self->sweep_next_us))
        return;
    static const Crm__User system = {PROTOBUF_C_MESSAGE_INIT(&crm__user__descriptor),
                                     (char *)"system", CRM__DEPARTMENT__DEPARTMENT_NONE,
                                     CRM__ROLE__ADMIN, {0, NULL}, true, 0, 0, 0, (char *)"",
                                     (char *)""};
    if (!self->sweeping) {
        self->sweeping = true;
        self->sweep_kind = 'c';
        self->sweep_after = 0;
        self->sweep_as_of = crm_time_now_ms();
        memset(&self->sweep_total, 0, sizeof self->sweep_total);
        /* records made from now on are derived as they are made: not walked, or a sweep
           that begins during an import would chase it to its end (10 % of the server
           thread's time during a 200,000-line import) */
        if (records_last_num(self->group, crm_entity_by_name("customer"),
                             &self->sweep_until[0]) != CRM_OK ||
            records_last_num(self->group, crm_entity_by_name("ticket"),
                             &self->sweep_until[1]) != CRM_OK)
            self->sweep_until[0] = self->sweep_until[1] = UINT64_MAX; /* every record */
    }
    if (self->cfg.fault_slow_sweep)
        usleep(20000);
    sweep_result_t r;
    char errbuf[CRM_ERRBUF] = "";
    uint64_t until = self->sweep_until[self->sweep_kind == 'c' ? 0 : 1];
    crm_err_t rc = sweep_slice(env, &system, self->sweep_as_of, self->sweep_kind,
                               self->sweep_after, until, SWEEP_SLICE, false, &r, errbuf);
    self->sweep_total.checked += r.checked;
    self->sweep_total.changed += r.changed;
    self->sweep_kind = r.next_kind;
    self->sweep_after = r.next_after;
    if (rc != CRM_OK || !r.next_kind) {
        if (rc != CRM_OK)
            crm_log(CRM_LOG_ERROR, "value sweep stopped: %s", errbuf);
        else
            crm_log(CRM_LOG_INFO, "sweep: %u customers and tickets checked, %u changed",
                    self->sweep_total.checked, self->sweep_total.changed);
        self->sweeping = false;
        self->sweep_next_us = now + self->cfg.sweep_every_ms * 1000;
    }
}

/* Answer one request whose reply waited for the commit: RC is the commit's
   outcome (an error replaces the reply), a deferred one goes to the worker. */
static void
s_finish_pending(server_t *self, s_pending_t *p, crm_err_t rc, const char *errbuf)
{
    if (p->counted) /* what its connection sent next may run now */
        s_count_conn(self, &self->unanswered, &p->rid, false);
    p->counted = false;
    if (p->away && (rc != CRM_OK || !p->defer))
        s_count_conn(self, &self->away, &p->rid, false);
    if (rc != CRM_OK) {
        free(p->reply);
        p->reply = dispatch_error_reply(p->id, rc, errbuf, 0, &p->len);
    } else if (p->defer) {
        s_defer(self, &p->rid, p->id, p->defer_user, p->defer, p->defer_len, p->away);
    }
    p->away = false;
    if (!p->defer || rc != CRM_OK)
        s_send_answer(self, &p->rid, p->reply, p->len, p->id, p->ok && rc == CRM_OK, p->watch);
    free(p->defer);
    free(p->defer_user);
    p->defer = NULL;
    p->defer_user = NULL;
}

/* Answer the replies of LIST with the outcome RC of their commit (emptying
   it); under --sync-replicas a committed write's reply waits for the
   replicas instead. */
static void
s_answer(server_t *self, s_plist_t *list, crm_err_t rc, const char *errbuf)
{
    uint64_t wal = list->n && rc == CRM_OK && self->cfg.sync_replicas
                       ? store_wal_seq(self->store)
                       : 0;
    for (size_t i = 0; i < list->n; i++) {
        if (!wal || !list->v[i].wrote) {
            s_finish_pending(self, &list->v[i], rc, errbuf);
            continue;
        }
        /* --sync-replicas: answered once enough replicas hold this commit */
        if (self->n_syncq == self->cap_syncq) {
            self->cap_syncq = self->cap_syncq ? self->cap_syncq * 2 : 256;
            self->syncq = realloc(self->syncq, self->cap_syncq * sizeof *self->syncq);
            CRM_ASSERT_ALLOC(self->syncq);
        }
        struct s_synced *q = &self->syncq[self->n_syncq++];
        q->p = list->v[i]; /* the routing id moves with the struct */
        q->wal_seq = wal;
        q->deadline_us = crm_time_mono_us() + SYNC_WAIT_US;
    }
    list->n = 0;
}

static void s_land(server_t *self, bool wait);

/* Commit what is staged, unless a commit is in flight (then it starts when
   that one lands: meanwhile more writes join it). The group's committer
   thread writes it while this thread serves on; the replies wait for it to
   land (s_land). Replies waiting with nothing staged (reads that saw what
   was in flight, now committed) are answered now. */
static void
s_commit(server_t *self)
{
    char errbuf[CRM_ERRBUF] = "";
    /* while the writer's group is the only writer (what this thread staged
       meanwhile - audit entries of reads - commits after it) */
    if (self->large_sent)
        return;
    bool force = self->large_on && crm_time_mono_us() - self->large_since_us > LARGE_WAIT_US;
    if (store_group_in_flight(self->group)) {
        if (force) /* lands it, answers it, and comes back here */
            s_land(self, true);
        return;
    }
    if (self->large_on &&
        (force || store_group_staged_bytes(self->group) < LARGE_WAIT_SYNC_BYTES)) {
        /* a large change waits for this group to empty: a little staged (the audit
           entries of reads since the last commit) is written now, on this thread, and
           landed, so that such entries, staged every turn while the commit before is
           in flight, cannot keep it from ever emptying; more goes as it always does,
           until the wait passes LARGE_WAIT_US (many admins' reads each turn) */
        int64_t t0 = crm_time_mono_us();
        crm_err_t rc = store_group_commit(self->group, errbuf);
        s_slow(self, t0, "commit: writing the group of %zu requests before a large change",
               self->pending.n);
        s_answer(self, &self->pending, rc, errbuf);
        return;
    }
    bool started = false;
    int64_t t0 = crm_time_mono_us();
    crm_err_t rc = store_group_commit_start(self->group, &started, errbuf);
    s_slow(self, t0, "commit: %s the group of %zu requests", started ? "handing over" : "writing",
           self->pending.n);
    if (started) {
        CRM_ASSERT(self->flight.n == 0); /* answered when the last commit landed */
        s_plist_t t = self->flight;

        self->flight = self->pending;
        self->pending = t;
        return;
    }
    /* a failure is logged by the store, once per episode, not once per commit */
    if (rc != CRM_OK)
        crm_log(CRM_LOG_DEBUG, "group commit failed: %s", errbuf);
    s_answer(self, &self->pending, rc, errbuf);
}

/* The commit in flight was written (or failed): answer its replies, and
   start the next with what was staged meanwhile. When it failed, what was
   staged after it was based on it and is given up too: those replies get
   its error. WAIT: wait for it, if it is still being written. */
static void
s_land(server_t *self, bool wait)
{
    if (!store_group_in_flight(self->group) || (!wait && !store_group_landed(self->group)))
        return;
    char errbuf[CRM_ERRBUF] = "";
    crm_err_t rc = store_group_commit_land(self->group, errbuf);
    if (rc != CRM_OK)
        crm_log(CRM_LOG_DEBUG, "group commit failed: %s", errbuf);
    s_answer(self, &self->flight, rc, errbuf);
    if (rc != CRM_OK)
        s_answer(self, &self->pending, rc, errbuf);
    s_commit(self);
}

/* On the writer: a slice of an erasure's scrub that begins with a large
   change-log entry (erase_tick stopped before it on the server thread). The
   server thread leaves the scrub alone until the writer is done. */
static void
s_scrub_slice(void *arg, store_group_t *g)
{
    server_t *self = arg;
    erase_tick(self->erase, self->store, g, 0);
}

/* Hand the large change over once this thread's group is empty: nothing
   staged, nothing in flight (the writes before it committed, their replies
   gone out), so that the writer's group, read by the change, sees them in the
   store and is the only writer until it is done. */
static void
s_large_start(server_t *self)
{
    if (!self->large_on || self->large_sent || !store_group_idle(self->group))
        return;
    s_held_t *h = &self->large;
    self->large_before = store_last_seq(self->store); /* (the feed takes in up to here) */
    if (self->large_scrub) {
        self->large_sent = worker_submit_fn(self->writer, s_scrub_slice, self);
        CRM_ASSERT(self->large_sent); /* the writer takes one at a time */
        crm_log(CRM_LOG_DEBUG, "large change: a slice of an erasure's scrub handed to the "
                               "writer thread");
        return;
    }
    uint64_t id = 0;
    crm_proto_peek_id(h->body, h->len, &id);
    if (!worker_submit(self->writer, &h->rid, h->user, h->body, h->len)) {
        /* (the writer takes one at a time: not reached) */
        s_refuse_kept(self, h, id, CRM_ERR_RESOURCE_EXHAUSTED, "the server is busy: try again");
        self->large_on = false;
        self->large_conn_len = 0;
        return;
    }
    free(h->body);
    free(h->user);
    h->body = NULL;
    h->user = NULL;
    self->large_sent = true;
    crm_log(CRM_LOG_DEBUG, "large change: request %llu handed to the writer thread",
            (unsigned long long)id);
}

/* The writer is done with the large change (committed, or failed: then OUT
   says so and REPLY is the error): its reply goes out now, as a committed
   write's (under --sync-replicas once the replicas hold it) - not with this
   thread's next commit, whose failure is not its own - and the writes that
   waited are served next. */
static void
s_writer_reply(void *arg, zmq_msg_t *rid, uint8_t *reply, size_t len, const dispatch_out_t *out,
               feed_event_t **event)
{
    server_t *self = arg;
    feed_adopt(self->feed, event); /* before this turn's feed_committed() */
    if (rid) { /* (none: a slice of a scrub) */
        s_plist_t one = {0};
        if (out->wrote) /* (under --sync-replicas its answer may wait: so does the rest) */
            s_count_conn(self, &self->unanswered, rid, true);
        s_pend_on(&one, rid, reply, len, out)->counted = out->wrote;
        s_answer(self, &one, CRM_OK, NULL);
        free(one.v);
        if (self->cfg.fault_fail_after_large)
            store_group_fail(self->group, CRM_ERR_UNAVAILABLE,
                             "fault fail-after-large: the commit after a large change fails");
    }
    self->large_on = false;
    self->large_sent = false;
    self->large_scrub = false;
    self->large_conn_len = 0;
    self->queue.ready |= s_queued(self); /* the writes that waited for it */
    erase_wake(self->erase); /* an erasure's scrub may have a job now */
}

/* --sync-replicas K: answer the replies whose commit K replicas hold now, and
   those that waited too long with an error saying what that means. */
static void
s_release_synced(server_t *self, int64_t now)
{
    if (!self->n_syncq)
        return;
    uint64_t held = repl_acked(self->repl, self->cfg.sync_replicas, now);
    size_t kept = 0;
    for (size_t i = 0; i < self->n_syncq; i++) {
        struct s_synced *q = &self->syncq[i];
        if (q->wal_seq <= held) {
            s_finish_pending(self, &q->p, CRM_OK, NULL);
        } else if (now >= q->deadline_us) {
            char text[CRM_ERRBUF];
            snprintf(text, sizeof text,
                     "committed on this server, but fewer than %u replicas confirmed it within "
                     "%d s (--sync-replicas): it is lost if this server is lost before a "
                     "replica pulls it; 'crm-admin status' shows the replicas",
                     self->cfg.sync_replicas, SYNC_WAIT_US / 1000000);
            s_finish_pending(self, &q->p, CRM_ERR_UNAVAILABLE, text);
        } else {
            self->syncq[kept++] = *q;
        }
    }
    self->n_syncq = kept;
}

/* Run the held requests again whose wait is over: something was committed
   since they were held, or their time is up (then they answer what they have). */
static void
s_serve_held(server_t *self, dispatch_env_t *env, int64_t now)
{
    if (!self->n_held)
        return;
    uint64_t wal = store_wal_seq(self->store);
    size_t kept = 0;
    for (size_t i = 0; i < self->n_held; i++) {
        s_held_t *h = &self->held[i];
        if (wal == h->wal_seq && now < h->deadline_us) {
            self->held[kept++] = *h;
            continue;
        }
        dispatch_out_t out;
        size_t len = 0;
        env->rid = zmq_msg_data(&h->rid);
        env->rid_len = zmq_msg_size(&h->rid);
        env->user_id = h->user;
        env->src_fd = -1;
        env->can_hold = false; /* answered now, with whatever there is */
        uint8_t *reply = dispatch_process(env, h->user, 1, h->body, h->len, &len, &out);
        env->rid = NULL;
        env->user_id = NULL;
        if (out.after_commit) /* it saw what is not committed yet (a commit in flight) */
            s_pend(self, &h->rid, reply, len, &out);
        else
            s_send_answer(self, &h->rid, reply, len, out.id, out.ok, out.watch);
        free(h->body);
        free(h->user);
    }
    self->n_held = kept;
}

/* Drop every held request (their connections are gone, or we stop). */
static void
s_drop_held(server_t *self)
{
    for (size_t i = 0; i < self->n_held; i++) {
        zmq_msg_close(&self->held[i].rid);
        free(self->held[i].body);
        free(self->held[i].user);
    }
    self->n_held = 0;
}

/* Drop the writes kept for after a large change, and a large change not yet
   handed over: their connections are about to go. One in the writer's hand
   goes on; its reply finds no one. */
static void
s_drop_queue(server_t *self)
{
    s_queue_t *q = &self->queue;
    for (size_t i = q->head; i < q->n; i++) {
        zmq_msg_close(&q->v[i].rid);
        free(q->v[i].body);
        free(q->v[i].user);
    }
    s_queue_emptied(q);
    if (self->large_on && !self->large_sent) {
        if (!self->large_scrub) {
            zmq_msg_close(&self->large.rid);
            free(self->large.body);
            free(self->large.user);
            self->large.body = NULL;
            self->large.user = NULL;
        }
        self->large_on = false;
        self->large_scrub = false;
        self->large_conn_len = 0;
    }
}

/* Apply the monitor's connection events to the limits. */
static void
s_read_monitor(server_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (self->monitor && zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) >= 0) {
        bool more = zmq_msg_more(&m);
        if (zmq_msg_size(&m) == 6) { /* uint16 event, uint32 value (the fd) */
            uint16_t ev;
            uint32_t fd;
            memcpy(&ev, zmq_msg_data(&m), 2);
            memcpy(&fd, (const char *)zmq_msg_data(&m) + 2, 4);
            if (ev == ZMQ_EVENT_ACCEPTED)
                quota_opened(self->limits, (int)fd);
            else if (ev == ZMQ_EVENT_DISCONNECTED)
                quota_closed(self->limits, (int)fd);
        }
        while (more && zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) >= 0) /* the address */
            more = zmq_msg_more(&m);
    }
    zmq_msg_close(&m);
}

static void
s_memory_guard(server_t *self)
{
    int64_t now = crm_time_mono_us();
    if (now < self->guard_next_us)
        return;
    self->guard_next_us = now + GUARD_INTERVAL_US;
    /* glibc's exact count once a second, the resident set between (crm_mem.h) */
    bool exact = ++self->guard_looks % GUARD_EXACT_EVERY == 0;
    size_t used = crm_mem_over(self->cfg.max_memory, exact);
    if (!used)
        return;
    char errbuf[CRM_ERRBUF], endpoint[sizeof self->endpoint];
    self->resets++;
    crm_log(CRM_LOG_WARN,
            "memory guard: %zu MiB in use exceeds the %zu MiB cap (a peer sending endless "
            "frames?): dropping all connections and listening afresh (reset %lu)",
            used >> 20, self->cfg.max_memory >> 20, self->resets);
    strcpy(endpoint, self->endpoint);
    feed_reset(self->feed); /* their connections are about to go */
    s_drop_held(self);
    s_drop_queue(self);
    quota_reset(self->limits);
    zmq_close(self->monitor);
    self->monitor = NULL;
    zmq_close(self->router);
    self->router = NULL;
    if (s_router_open(self, endpoint, errbuf) != CRM_OK)
        crm_log(CRM_LOG_ERROR, "memory guard: %s", errbuf);
    crm_mem_trim();
    self->guard_next_us = now + GUARD_COOLDOWN_US;
}

crm_err_t
server_run(server_t *self, volatile sig_atomic_t *stop)
{
    dispatch_env_t env = {.store = self->store,
                          .group = self->group,
                          .server_key = self->key_z85,
                          .epoch_key = self->epoch_key,
                          .log_rl = &self->log_rl,
                          .slow_us = self->cfg.slow_us,
                          .slow_rl = &self->slow_rl,
                          .feed = self->feed,
                          .rules = &self->rules,
                          .fault_no_derive = self->cfg.fault_no_derive,
                          .fault_slow_report = self->cfg.fault_slow_report,
                          .fault_slow_large = self->cfg.fault_slow_large,
                          .max_msg = self->cfg.max_msg,
                          .backup = self->backup,
                          .limits = self->limits,
                          .repl = self->repl,
                          .follower = self->follower,
                          .snap = self->snap,
                          .bin_keep_ms = self->cfg.bin_keep_ms,
                          .erase = self->erase,
                          .src_fd = -1};
    char werr[CRM_ERRBUF];
    if (worker_new(self->ctx, &env, NULL, &self->worker, werr) != CRM_OK ||
        (self->cfg.large_records &&
         worker_new(self->ctx, &env, self->xgroup, &self->writer, werr) != CRM_OK)) {
        crm_log(CRM_LOG_ERROR, "%s", werr);
        worker_destroy(&self->worker);
        return CRM_ERR_INTERNAL;
    }
    env.large_records = self->writer ? self->cfg.large_records : 0;
    crm_err_t result = CRM_OK;
    while (!*stop && self->router) {
        /* only wake-ups: each source is looked at below, whatever woke the loop */
        zmq_pollitem_t items[5] = {
            {self->router, 0, ZMQ_POLLIN, 0},
            {worker_socket(self->worker), 0, ZMQ_POLLIN, 0},
            {NULL, store_group_commit_fd(self->group), ZMQ_POLLIN, 0}, /* a commit landed */
        };
        int nitems = 3;
        if (self->writer)
            items[nitems++] = (zmq_pollitem_t){worker_socket(self->writer), 0, ZMQ_POLLIN, 0};
        if (self->follower)
            items[nitems++] =
                (zmq_pollitem_t){repl_follower_socket(self->follower), 0, ZMQ_POLLIN, 0};
        /* a subscriber still catching up is served again soon, at once if the last pump
           ran out of its time; so are writes that waited for a large change */
        int rc = zmq_poll(items, nitems,
                          feed_cut(self->feed) || (self->queue.ready && !self->large_on) ? 0
                          : feed_behind(self->feed) || self->sweeping ||
                                  (!self->large_on && erase_busy(self->erase) &&
                                   !store_readonly(self->store))
                              ? 5
                          : self->n_syncq                           ? 10
                                                                    : 100);
        if (rc < 0 && zmq_errno() != EINTR) {
            crm_log(CRM_LOG_ERROR, "poll failed: %s", zmq_strerror(zmq_errno()));
            result = CRM_ERR_INTERNAL;
            break;
        }
        s_land(self, false);
        worker_collect(self->worker, s_worker_reply, self);
        if (self->writer) {
            worker_watchers(self->writer, feed_subscribers(self->feed));
            worker_collect(self->writer, s_writer_reply, self);
        }
        if (self->follower) { /* batches applied: the feed below delivers them */
            int64_t t0 = crm_time_mono_us();
            repl_follower_drain(self->follower);
            repl_follower_tick(self->follower); /* a re-sync's switch, if one is ready */
            s_slow(self, t0, "replica: switching to a re-synced copy");
        }
        /* drain; on SIGTERM the requests already received are still served.
           A write waits for the commit, so commit once the oldest waiting
           write has waited COMMIT_WAIT_US, not only at the end of the turn,
           and as soon as the commit in flight lands */
        int64_t first_write = 0;
        s_read_monitor(self);
        s_serve_queued(self, &env); /* (timed as they are served) */
        for (int i = 0; i < DRAIN_MAX && s_serve_one(self, &env); i++) {
            s_land(self, false);
            if (self->pending.n == 0)
                continue;
            int64_t now = crm_time_mono_us();
            if (!first_write)
                first_write = now;
            else if (now - first_write >= COMMIT_WAIT_US) {
                s_commit(self);
                first_write = 0;
            }
        }
        bool ro = store_readonly(self->store); /* a replica, or fenced */
        /* the loop's own work is timed as requests are (--slow-log) */
        int64_t t0 = crm_time_mono_us();
        /* a replica's sweep, scrubs and expiry arrive from the primary; none runs beside
           a large change (the writer's group is the only writer then) */
        if (!ro && !self->large_on) {
            s_sweep(self, &env);
            s_slow(self, t0, "housekeeping: a slice of the value sweep");
            t0 = crm_time_mono_us();
            if (erase_tick(self->erase, self->store, self->group,
                           self->writer ? SCRUB_LARGE_BYTES : 0)) {
                self->large_on = true; /* the next slice, on the writer */
                self->large_sent = false;
                self->large_scrub = true;
                self->large_since_us = crm_time_mono_us();
            }
            s_slow(self, t0, "housekeeping: a slice of an erasure's scrub");
        }
        if (!ro && !self->large_on && (t0 = crm_time_mono_us()) >= self->idem_next_us) {
            /* committed with the turn */
            idem_expire(self->store, self->group, crm_time_now_ms(), 500);
            /* what stayed in the recycle bin long enough (all of it with --bin-keep 0) */
            bin_expire(self->store, self->group, crm_time_now_ms() - self->cfg.bin_keep_ms, 500,
                       "system");
            self->idem_next_us = crm_time_mono_us() + 1000000;
            s_slow(self, t0, "housekeeping: expiring idempotency keys and the recycle bin");
        }
        s_commit(self);
        s_large_start(self);
        int64_t now = crm_time_mono_us();
        /* (never beside a large change: the writer's group reads and writes the store
           without the reopen lock, as this thread's does) */
        if (!store_group_in_flight(self->group) && !self->large_on &&
            store_write_health(self->store, NULL) != CRM_OK && now >= self->recover_next_us) {
            char errbuf[CRM_ERRBUF];
            store_recover(self->store, errbuf); /* logs when writes work again */
            self->recover_next_us = now + RECOVER_INTERVAL_US;
            s_slow(self, now, "housekeeping: trying writes again after a write failure");
        }
        repl_committed(self->repl, now);
        s_serve_held(self, &env, now); /* (requests: timed as they are served) */
        s_release_synced(self, now);
        t0 = crm_time_mono_us();
        /* the writer's change is taken in once the writer hands it over decoded
           (s_writer_reply): seen committed before that, it would be decoded here too */
        feed_committed(self->feed, crm_time_now_us(),
                       self->large_on && self->large_sent ? self->large_before : UINT64_MAX);
        feed_pump(self->feed, self->router, now);
        s_slow(self, t0, "feed: delivering the turn's changes");
        if (!ro && (t0 = crm_time_mono_us()) >= self->trim_next_us) {
            feed_trim(self->feed); /* a replica's trims are shipped */
            self->trim_next_us = now + 1000000;
            s_slow(self, t0, "housekeeping: trimming the change log");
        }
        t0 = crm_time_mono_us();
        if (t0 >= self->snap_next_us) {
            repl_snap_tick(self->snap, now);
            self->snap_next_us = now + 1000000;
        }
        backup_job_tick(self->backup);
        s_slow(self, t0, "housekeeping: replica snapshots and backups");
        t0 = crm_time_mono_us();
        s_memory_guard(self);
        s_slow(self, t0, "memory guard: its count, or dropping every connection over the cap");
    }
    /* a large change in the writer's hand is finished and answered; one not handed over
       yet, and the writes that waited for it, are not done: their clients are told */
    if (self->large_sent)
        worker_finish(self->writer, s_writer_reply, self);
    if (self->large_on && !self->large_scrub) {
        uint64_t id = 0;
        crm_proto_peek_id(self->large.body, self->large.len, &id);
        s_refuse_kept(self, &self->large, id, CRM_ERR_UNAVAILABLE,
                      "the server is stopping: this change was not made; send it again");
    }
    self->large_on = false; /* (a scrub goes on where it stopped after a restart) */
    self->large_scrub = false;
    /* the writes already staged are committed and answered (below, the requests kept
       - for a large change, or behind those writes - are told they were not run) */
    s_commit(self);
    while (store_group_in_flight(self->group))
        s_land(self, true);
    s_drop_held(self);
    for (size_t i = 0; i < self->n_syncq; i++) /* committed, not confirmed: say so */
        s_finish_pending(self, &self->syncq[i].p, CRM_ERR_UNAVAILABLE,
                         "committed on this server, which is stopping before enough replicas "
                         "confirmed it (--sync-replicas)");
    self->n_syncq = 0;
    /* a connection's request on the worker came before what it sent next (kept in the
       queue, refused below): the worker's waiting requests are refused and the one in
       its hand is answered first */
    if (self->worker)
        worker_wind_down(self->worker, s_worker_reply, s_worker_refuse, self);
    s_refuse_queue(self, CRM_ERR_UNAVAILABLE,
                   "the server is stopping: this request waited its turn (behind a large "
                   "change, or what its connection sent before) and was not run; send it "
                   "again");
    worker_t *w = self->worker;
    self->worker = NULL;
    worker_destroy(&w);
    worker_destroy(&self->writer);
    if (result != CRM_OK)
        return result;
    return self->router ? CRM_OK : CRM_ERR_UNAVAILABLE;
}

void
server_destroy(server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    crm_mem_trimmer_stop(&self->trimmer);
    if (self->router) {
        /* replies to committed writes may still be queued: let them go out
           (zmq_ctx_term below waits at most this long for them) */
        int linger = SHUTDOWN_LINGER_MS;
        zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self->router);
    }
    if (self->monitor)
        zmq_close(self->monitor);
    repl_follower_stop(&self->follower); /* before the context ends: it owns sockets */
    repl_destroy(&self->repl);
    repl_snap_destroy(&self->snap); /* waits for a checkpoint in progress: it uses the store */
    zap_stop(&self->zap);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    backup_job_destroy(&self->backup); /* waits for a running backup: it reads the store */
    feed_destroy(&self->feed);
    erase_destroy(&self->erase);
    quota_destroy(&self->limits);
    free(self->syncq);
    free(self->pending.v);
    free(self->flight.v);
    store_group_destroy(&self->group);
    store_group_destroy(&self->xgroup);
    s_queue_emptied(&self->queue);
    free(self->queue.users.v);
    free(self->queue.conns.v);
    s_qcounts_clear(&self->unanswered);
    free(self->unanswered.v);
    s_qcounts_clear(&self->away);
    free(self->away.v);
    free(self->queue.v);
    store_destroy(&self->store);
    sodium_memzero(&self->keys, sizeof self->keys);
    sodium_memzero(self->epoch_key, sizeof self->epoch_key);
    free(self);
    *self_p = NULL;
}
