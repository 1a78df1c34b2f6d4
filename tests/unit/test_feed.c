/*  test_feed - the live feed's delivery to a subscriber whose pipe is full

    A real store with customers made through dispatch_process(), the feed
    pumped into a ROUTER on inproc as the server loop does, and a DEALER
    subscriber whose queue holds only a message or two (SNDHWM and RCVHWM of
    1), read a little between pumps: sends meet EAGAIN mid-turn, batched
    (several events to a reply) and not, and every change must still arrive
    exactly once and in order. The e2e tests cannot reach that path reliably:
    the kernel's socket buffers take thousands of events first. Also with the
    feed's cache of recent changes at its smallest, so that the oldest
    changes are replayed through its one scratch entry, which the next one
    replaces while earlier events still wait for their reply. The value
    sweep's bound is tested on the same store of customers.
*/
#include "test_common.h"
#include <zmq.h>

#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "derive.h"
#include "dispatch.h"
#include "feed.h"
#include "records.h"
#include "session.h"
#include "store.h"
#include "users.h"

#define CUSTOMERS 1300 /* changes to deliver */
#define TURN_BUDGET 512 /* feed.c's BUDGET: events per subscriber and pump, pipe not full */
#define SMALL_RING 1024 /* feed.c's RING_MIN, the cache at its smallest: 277 changes older */

static struct {
    char *dir;
    store_t *store;
    store_group_t *group;
    dispatch_env_t env;
    crm_ratelimit_t rl;
    value_rules_t rules;
    char admin[CRM_Z85_LEN + 1];
} s_fx;

/* Customer "Feed I", made through dispatch_process() and committed: one change. */
static void
s_add_customer(int i)
{
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *c = crm_proto_new(crm_entity_by_name("customer")->desc);
    char name[32];
    snprintf(name, sizeof name, "Feed %d", i);
    crm_record_set_str(c, "name", name);
    Crm__Request r = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    r.id = 1 + (uint64_t)i;
    r.op = CRM__OP__OP_ENTITY_CREATE;
    r.body_case = CRM__REQUEST__BODY_ENTITY;
    r.entity = &er;
    er.kind = (char *)"customer";
    er.allow_duplicate = true;
    er.record.data = crm_proto_pack(c, &er.record.len);
    size_t len, reply_len;
    uint8_t *frame = crm_proto_pack(&r.base, &len);
    dispatch_out_t out;
    free(dispatch_process(&s_fx.env, s_fx.admin, 1, frame, len, &reply_len, &out));
    assert_true(out.ok);
    assert_int_equal(store_group_commit(s_fx.group, errbuf), CRM_OK);
    free(frame);
    free(er.record.data);
    crm_proto_free(&c);
}

static int
s_setup(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    crm_log_threshold = CRM_LOG_ERROR;
    s_fx.dir = test_tmpdir();
    assert_int_equal(store_open(s_fx.dir, STORE_CREATE, &s_fx.store, errbuf), CRM_OK);
    s_fx.group = store_group_new(s_fx.store);
    Crm__User actor = CRM__USER__INIT;
    Crm__UserRequest req = CRM__USER_REQUEST__INIT;
    crm_keypair_t kp;
    actor.name = (char *)"test";
    actor.role = CRM__ROLE__ADMIN;
    crm_keys_generate(&kp);
    req.name = (char *)"admin";
    req.department = CRM__DEPARTMENT__DEPARTMENT_NONE;
    req.role = CRM__ROLE__ADMIN;
    req.public_key.data = kp.pub;
    req.public_key.len = CRM_KEY_BYTES;
    assert_int_equal(users_apply(s_fx.store, s_fx.group, &actor, USERS_ADD, &req, NULL, errbuf),
                     CRM_OK);
    crm_keys_to_z85(kp.pub, s_fx.admin);
    assert_int_equal(store_group_commit(s_fx.group, errbuf), CRM_OK);
    value_rules_defaults(&s_fx.rules);
    dispatch_env_t env = {.store = s_fx.store,
                          .group = s_fx.group,
                          .server_key = "test-server-key",
                          .log_rl = &s_fx.rl,
                          .rules = &s_fx.rules,
                          .max_msg = 1u << 20};
    s_fx.env = env;
    /* the changes to deliver: one customer each */
    for (int i = 0; i < CUSTOMERS; i++)
        s_add_customer(i);
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    store_group_destroy(&s_fx.group);
    store_destroy(&s_fx.store);
    test_rmrf(s_fx.dir);
    free(s_fx.dir);
    return 0;
}

/* The server's ROUTER and a subscriber's DEALER on inproc, the pipe between them holding
   HWM messages (0: libzmq's default); the subscriber's routing id into RID (256 bytes),
   its length returned. */
static int
s_pair(void *zctx, int hwm, void **router, void **sub, uint8_t *rid)
{
    int one = 1, zero = 0;
    *router = zmq_socket(zctx, ZMQ_ROUTER);
    *sub = zmq_socket(zctx, ZMQ_DEALER);
    zmq_setsockopt(*router, ZMQ_LINGER, &zero, sizeof zero); /* what is queued at the end goes */
    zmq_setsockopt(*sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(*router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (hwm) {
        zmq_setsockopt(*router, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(*sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    }
    assert_int_equal(zmq_bind(*router, "inproc://test-feed"), 0);
    assert_int_equal(zmq_connect(*sub, "inproc://test-feed"), 0);
    assert_int_equal(zmq_send(*sub, "hi", 2, 0), 2);
    char hi[4];
    int rid_len = zmq_recv(*router, rid, 256, 0);
    assert_true(rid_len > 0 && rid_len <= 256);
    assert_int_equal(zmq_recv(*router, hi, sizeof hi, 0), 2);
    return rid_len;
}

/* The next reply waiting on SUB (DONTWAIT), its events in *EVS / *N, or NULL
   if none waits; caller frees it. */
static Crm__Reply *
s_recv_reply(void *sub, Crm__Event ***evs, size_t *n)
{
    char errbuf[CRM_ERRBUF];
    zmq_msg_t m;
    zmq_msg_init(&m);
    Crm__Reply *r = NULL;
    if (zmq_msg_recv(&m, sub, ZMQ_DONTWAIT) >= 0) {
        assert_int_equal(crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m),
                                          zmq_msg_size(&m), (ProtobufCMessage **)&r, errbuf),
                         CRM_OK);
        *n = crm_proto_reply_events(r, evs);
    }
    zmq_msg_close(&m);
    return r;
}

/* One admin subscriber of a new feed (configured by FC), through a pipe of
   HWM messages (s_pair), watching as W says from *CURSOR on; its WATCH is
   answered. */
typedef struct {
    feed_t *feed;
    void *zctx, *router, *sub;
    uint8_t rid[256];
    size_t rid_len;
    session_t session;
} s_watcher_t;

static void
s_watcher_open(s_watcher_t *x, const feed_config_t *fc, int hwm, Crm__WatchRequest *w,
               uint64_t *cursor)
{
    char errbuf[CRM_ERRBUF];
    x->feed = feed_new(s_fx.store, fc);
    feed_committed(x->feed, crm_time_now_us(), UINT64_MAX);
    x->zctx = zmq_ctx_new();
    x->rid_len = (size_t)s_pair(x->zctx, hwm, &x->router, &x->sub, x->rid);
    x->session = (session_t){NULL};
    assert_int_equal(session_resolve(&x->session, s_fx.store, s_fx.admin, errbuf), CRM_OK);
    assert_int_equal(feed_watch(x->feed, x->rid, x->rid_len, 5, s_fx.admin, x->session.user, w,
                                cursor, errbuf),
                     CRM_OK);
    feed_replied(x->feed, x->rid, x->rid_len, 5, true);
}

static void
s_watcher_close(s_watcher_t *x)
{
    session_release(&x->session);
    zmq_close(x->sub);
    zmq_close(x->router);
    zmq_ctx_term(x->zctx);
    feed_pump(x->feed, NULL, crm_time_mono_us()); /* its connection is gone */
    feed_destroy(&x->feed);
}

/* Watch from sequence 0 (BATCH: several events to a reply) through a pipe
   of a message or two, the feed keeping RING changes decoded (0: its
   default); read at most two replies between pumps. */
static void
s_deliver_through_full_pipe(bool batch, uint64_t ring)
{
    feed_config_t fc = {.ring_events = ring};
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
    w.since_set = true;
    w.batch = batch;
    uint64_t cursor = 99;
    s_watcher_t x;
    s_watcher_open(&x, &fc, 1, &w, &cursor);
    assert_int_equal(cursor, 0);
    feed_t *feed = x.feed;
    void *router = x.router, *sub = x.sub;
    uint64_t newest = store_last_seq(s_fx.store), last = 0, events = 0, replies = 0, most = 0;
    int pumps = 0;
    int64_t end = crm_time_mono_us() + 30 * INT64_C(1000000);
    while (last < newest && crm_time_mono_us() < end) {
        int events_now;
        size_t elen = sizeof events_now;
        /* as the server's zmq_poll does: the ROUTER takes in that the pipe drained */
        zmq_getsockopt(router, ZMQ_EVENTS, &events_now, &elen);
        feed_pump(feed, router, crm_time_mono_us());
        pumps++;
        for (int k = 0; k < 2; k++) {
            Crm__Event **evs;
            size_t n;
            Crm__Reply *r = s_recv_reply(sub, &evs, &n);
            if (!r)
                break;
            assert_true(batch || (n <= 1 && (n == 0 || r->body_case == CRM__REPLY__BODY_EVENT)));
            replies += n > 0;
            most = n > most ? n : most;
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(evs[i]->seq, last + 1); /* no hole, no repeat, in order */
                last = evs[i]->seq;
                events++;
            }
            crm_proto_free((ProtobufCMessage **)&r);
        }
    }
    printf("# batch %d, ring %llu: %llu events in %llu replies (up to %llu), %d pumps\n", batch,
           (unsigned long long)ring, (unsigned long long)events, (unsigned long long)replies,
           (unsigned long long)most, pumps);
    assert_int_equal(last, newest);
    assert_true(events >= CUSTOMERS);
    if (ring) /* many of them older than the ring holds: through the scratch entry */
        assert_true(newest >= ring + 200);
    /* the pipe was full: with room for all, the turns' budgets would need
       EVENTS / TURN_BUDGET pumps, so twice as many mean sends met EAGAIN and
       were taken up again */
    assert_true(pumps > 2 * (int)((events + TURN_BUDGET - 1) / TURN_BUDGET));
    if (batch)
        assert_true(most > 1 && most <= 64 && replies < events);
    else
        assert_true(most == 1 && replies == events);
    s_watcher_close(&x);
}

static void
test_feed_full_pipe_unbatched(void **state)
{
    (void)state;
    s_deliver_through_full_pipe(false, 0);
}

static void
test_feed_full_pipe_batched(void **state)
{
    (void)state;
    s_deliver_through_full_pipe(true, 0);
}

/* the oldest changes come through the scratch entry */
static void
test_feed_full_pipe_replayed_unbatched(void **state)
{
    (void)state;
    s_deliver_through_full_pipe(false, SMALL_RING);
}

static void
test_feed_full_pipe_replayed_batched(void **state)
{
    (void)state;
    s_deliver_through_full_pipe(true, SMALL_RING);
}

/* A resumed watch: naming HISTORY (begun at HISTORY_FIRST), from SINCE; answered WANT,
   a refusal saying "after #AFTER ". */
typedef struct {
    uint64_t history, history_first, since;
    crm_err_t want;
    uint64_t after;
} s_watch_case_t;

/* Each of the N cases as a watch of its own connection (routing ids {0, TAG, i}). */
static void
s_check_watches(feed_t *feed, const Crm__User *user, uint8_t tag, const s_watch_case_t *c,
                size_t n)
{
    char errbuf[CRM_ERRBUF];
    uint64_t cursor = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t rid[] = {0, tag, (uint8_t)i};
        Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
        w.since = c[i].since;
        w.since_set = true;
        w.history = c[i].history;
        w.history_first = c[i].history_first;
        errbuf[0] = 0;
        assert_int_equal(
            feed_watch(feed, rid, sizeof rid, 5, s_fx.admin, user, &w, &cursor, errbuf),
            c[i].want);
        if (c[i].want != CRM_OK) {
            char want[48];
            snprintf(want, sizeof want, "after #%llu ", (unsigned long long)c[i].after);
            assert_non_null(strstr(errbuf, want));
        }
    }
}

/* A resumed watch names the history its number is from (WatchRequest.history,
   history_first): refused at and past the later of the two histories'
   beginnings when they differ, taken before it; unchecked without a history.
   It begins a new history in the shared store (the tests after it too). */
static void
test_feed_watch_histories(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    feed_config_t fc = {0};
    feed_t *feed = feed_new(s_fx.store, &fc);
    session_t session = {NULL};
    assert_int_equal(session_resolve(&session, s_fx.store, s_fx.admin, errbuf), CRM_OK);
    uint8_t rid[] = {0, 1, 2, 3, 4};
    uint64_t last = store_last_seq(s_fx.store), cursor = 0;
    assert_int_equal(store_epoch(s_fx.store, NULL), 1);
    const s_watch_case_t cases[] = {
        {0, 0, 20, CRM_OK, 0},                   /* not checked */
        {1, 1, 20, CRM_OK, 0},                   /* the same history */
        {7, 0, 5, CRM_ERR_OUT_OF_RANGE, 0},      /* another, its start not known */
        {7, 10, 9, CRM_OK, 0},                   /* another that began after #9: one before */
        {7, 10, 10, CRM_ERR_OUT_OF_RANGE, 9},
    };
    s_check_watches(feed, session.user, 1, cases, sizeof cases / sizeof cases[0]);
    /* this store begins a history of its own after LAST (as a restore does) */
    uint64_t h = 0;
    assert_int_equal(store_new_history(s_fx.store, &h, errbuf), CRM_OK);
    assert_int_equal(store_epoch_first(s_fx.store), last + 1);
    feed_committed(feed, crm_time_now_us(), UINT64_MAX);
    for (int before = 1; before >= 0; before--) { /* one of the old history: up to LAST */
        Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
        w.since = last + 1 - (uint64_t)before;
        w.since_set = true;
        w.history = 1;
        w.history_first = 1;
        rid[4] = (uint8_t)(10 + before);
        char want[48];
        snprintf(want, sizeof want, "after #%llu ", (unsigned long long)last);
        assert_int_equal(feed_watch(feed, rid, sizeof rid, 5, s_fx.admin, session.user, &w,
                                    &cursor, errbuf),
                         before ? CRM_OK : CRM_ERR_OUT_OF_RANGE);
        if (!before)
            assert_non_null(strstr(errbuf, want));
    }
    session_release(&session);
    feed_destroy(&feed);
}

/* A watcher that lives through the beginning of another history (a promotion, a
   replica's re-sync) at a point it had not passed is told its id and beginning before
   the first change of it (a Progress), so that a resume of what it saw names the
   history those changes are of: without it, a reconnect after a promotion was refused
   as if the watcher had seen another history's changes. */
static void
test_feed_history_begun_told(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    feed_config_t fc = {0};
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT; /* from now */
    uint64_t cursor = 0, last = store_last_seq(s_fx.store), old = store_epoch(s_fx.store, NULL);
    s_watcher_t x;
    s_watcher_open(&x, &fc, 0, &w, &cursor);
    assert_int_equal(cursor, last);
    feed_t *feed = x.feed;
    void *router = x.router, *sub = x.sub;
    feed_pump(feed, router, crm_time_mono_us());
    uint64_t h = 0;
    assert_int_equal(store_new_history(s_fx.store, &h, errbuf), CRM_OK);
    assert_true(h != old);
    s_add_customer(CUSTOMERS + 1);
    uint64_t newest = store_last_seq(s_fx.store);
    assert_true(newest > last);
    feed_committed(feed, crm_time_now_us(), UINT64_MAX);
    /* what it gets, in order: the history it is of first, then the new change */
    uint64_t told_at = 0, got = 0, n = 0, told_history = 0, told_first = 0;
    int64_t end = crm_time_mono_us() + 10 * INT64_C(1000000);
    while (got < newest && crm_time_mono_us() < end) {
        feed_pump(feed, router, crm_time_mono_us());
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        Crm__Reply *r = NULL;
        assert_int_equal(crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m),
                                          zmq_msg_size(&m), (ProtobufCMessage **)&r, errbuf),
                         CRM_OK);
        assert_int_equal(r->status, CRM__ERROR_CODE__OK);
        n++;
        if (r->body_case == CRM__REPLY__BODY_PROGRESS) {
            /* every Progress names a history: the old one until it was told the new */
            if (r->progress->history == old) {
                assert_int_equal(told_at, 0);
            } else {
                assert_int_equal(r->progress->history, h);
                assert_int_equal(r->progress->history_first, last + 1);
                told_at = told_at ? told_at : n;
                told_history = r->progress->history;
                told_first = r->progress->history_first;
            }
        }
        Crm__Event **evs;
        size_t k = crm_proto_reply_events(r, &evs);
        for (size_t i = 0; i < k; i++) {
            assert_true(evs[i]->seq > last && evs[i]->seq > got);
            assert_true(told_at > 0 && told_at < n); /* after it was told */
            got = evs[i]->seq;
        }
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
    }
    assert_int_equal(got, newest);
    assert_true(told_at > 0);
    /* and a resume of what it got, naming the history it was told (as crm watch does),
       is taken; with the one it watched before, it would be refused */
    w.since = got;
    w.since_set = true;
    w.history = old;
    w.history_first = 1;
    assert_int_equal(feed_watch(feed, x.rid, x.rid_len, 6, s_fx.admin, x.session.user, &w,
                                &cursor, errbuf),
                     CRM_ERR_OUT_OF_RANGE);
    w.history = told_history;
    w.history_first = told_first;
    assert_int_equal(feed_watch(feed, x.rid, x.rid_len, 6, s_fx.admin, x.session.user, &w,
                                &cursor, errbuf),
                     CRM_OK);
    s_watcher_close(&x);
}

/* Two histories begun one after the other (a restore, then a promotion of one of its
   replicas): a watcher of an older one is refused from where the store went on with the
   next history after its own, not only from the current history's beginning (past that
   point it saw changes of its own history that this store does not hold). It begins
   histories in the shared store. */
static void
test_feed_watch_across_two_histories(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    feed_config_t fc = {0};
    feed_t *feed = feed_new(s_fx.store, &fc);
    session_t session = {NULL};
    assert_int_equal(session_resolve(&session, s_fx.store, s_fx.admin, errbuf), CRM_OK);
    uint64_t ha = 0, hb = 0;
    /* the history the store is in (begun by the tests before): then A, then B */
    uint64_t h0 = store_epoch(s_fx.store, NULL), f0 = store_epoch_first(s_fx.store);
    assert_int_equal(store_new_history(s_fx.store, &ha, errbuf), CRM_OK);
    uint64_t fa = store_epoch_first(s_fx.store);
    s_add_customer(CUSTOMERS + 2);
    s_add_customer(CUSTOMERS + 3);
    assert_int_equal(store_new_history(s_fx.store, &hb, errbuf), CRM_OK);
    uint64_t fb = store_epoch_first(s_fx.store);
    s_add_customer(CUSTOMERS + 4);
    feed_committed(feed, crm_time_now_us(), UINT64_MAX);
    assert_true(f0 < fa && fa < fb && h0 < ha && ha < hb);
    const s_watch_case_t cases[] = {
        {h0, f0, fa - 1, CRM_OK, 0},                /* the first: shared up to A's start */
        {h0, f0, fa, CRM_ERR_OUT_OF_RANGE, fa - 1}, /* ... not past it, though B began later */
        {h0, f0, fb - 1, CRM_ERR_OUT_OF_RANGE, fa - 1},
        {ha, fa, fb - 1, CRM_OK, 0},              /* A: shared up to B's beginning */
        {ha, fa, fb, CRM_ERR_OUT_OF_RANGE, fb - 1},
        {hb, fb, fb, CRM_OK, 0},                  /* B, the current one */
    };
    s_check_watches(feed, session.user, 9, cases, sizeof cases / sizeof cases[0]);
    /* the store's own answer: A parts from this line where B began */
    uint64_t start, first;
    assert_true(store_history_parted(s_fx.store, ha, &start, &first));
    assert_int_equal(first, fb);
    session_release(&session);
    feed_destroy(&feed);
}

/* Events received by SUB since the last call (DONTWAIT, every message waiting). */
static uint64_t
s_drain_events(void *sub, uint64_t *last)
{
    uint64_t events = 0;
    Crm__Event **evs;
    size_t n;
    Crm__Reply *r;
    while ((r = s_recv_reply(sub, &evs, &n))) {
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(evs[i]->seq, *last + 1); /* no hole, no repeat, in order */
            *last = evs[i]->seq;
            events++;
        }
        crm_proto_free((ProtobufCMessage **)&r);
    }
    return events;
}

/* The server takes in a change the writer thread commits only once the writer
   hands it over decoded (feed_committed's UPTO): committed past UPTO, a change
   is neither delivered nor decoded (a large change decoded on the server thread
   too took it 6-11 ms); the next call without the cap delivers it, in order. */
static void
test_feed_committed_upto(void **state)
{
    (void)state;
    feed_config_t fc = {0};
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT; /* from now */
    uint64_t cursor = 0, last = store_last_seq(s_fx.store);
    s_watcher_t x;
    s_watcher_open(&x, &fc, 0, &w, &cursor);
    s_add_customer(CUSTOMERS + 5);
    uint64_t cap = store_last_seq(s_fx.store);
    s_add_customer(CUSTOMERS + 6);
    uint64_t newest = store_last_seq(s_fx.store);
    assert_true(last < cap && cap < newest);
    uint64_t got = last;
    for (int pass = 0; pass < 2; pass++) {
        feed_committed(x.feed, crm_time_now_us(), pass ? UINT64_MAX : cap);
        int64_t end = crm_time_mono_us() + 200000; /* long enough to see what would come */
        while (crm_time_mono_us() < end) {
            feed_pump(x.feed, x.router, crm_time_mono_us());
            s_drain_events(x.sub, &got);
            if (pass && got == newest)
                break;
            usleep(1000);
        }
        assert_int_equal(got, pass ? newest : cap);
    }
    s_watcher_close(&x);
}

/* A pump's time is bounded (feed_config_t.pump_us): three subscribers replaying
   from 0, a pump of 1 us reaches one of them, gives it its first event or few
   (not the 512 of a pump's budget) and stops (feed_cut()); the next pump begins
   with the next subscriber, so none is starved; pumped on, all three get every
   change once, in order. */
static void
test_feed_pump_cut(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    feed_config_t fc = {.pump_us = 1};
    feed_t *feed = feed_new(s_fx.store, &fc);
    feed_committed(feed, crm_time_now_us(), UINT64_MAX);
    void *zctx = zmq_ctx_new(), *router = zmq_socket(zctx, ZMQ_ROUTER), *subs[3];
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(router, "inproc://test-feed-cut"), 0);
    session_t session = {NULL};
    assert_int_equal(session_resolve(&session, s_fx.store, s_fx.admin, errbuf), CRM_OK);
    for (int i = 0; i < 3; i++) {
        subs[i] = zmq_socket(zctx, ZMQ_DEALER);
        zmq_setsockopt(subs[i], ZMQ_LINGER, &zero, sizeof zero);
        assert_int_equal(zmq_connect(subs[i], "inproc://test-feed-cut"), 0);
        assert_int_equal(zmq_send(subs[i], "hi", 2, 0), 2); /* its routing id, from the ROUTER */
        uint8_t rid[256];
        char hi[4];
        int rid_len = zmq_recv(router, rid, sizeof rid, 0);
        assert_true(rid_len > 0 && rid_len <= (int)sizeof rid);
        assert_int_equal(zmq_recv(router, hi, sizeof hi, 0), 2);
        Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
        w.since_set = true;
        uint64_t cursor = 99;
        assert_int_equal(feed_watch(feed, rid, (size_t)rid_len, 7, s_fx.admin, session.user, &w,
                                    &cursor, errbuf),
                         CRM_OK);
        feed_replied(feed, rid, (size_t)rid_len, 7, true);
    }
    uint64_t last[3] = {0, 0, 0}, newest = store_last_seq(s_fx.store);
    assert_true(newest > 100);
    /* one subscriber a pump, in turn, a few events each */
    for (int pump = 0; pump < 6; pump++) {
        feed_pump(feed, router, crm_time_mono_us());
        assert_true(feed_cut(feed));
        for (int i = 0; i < 3; i++) {
            uint64_t got = s_drain_events(subs[i], &last[i]);
            if (i == pump % 3)
                assert_true(got >= 1 && got <= 8);
            else
                assert_int_equal(got, 0);
        }
    }
    /* pumped on: everything, to each */
    int64_t end = crm_time_mono_us() + 30 * INT64_C(1000000);
    while ((last[0] < newest || last[1] < newest || last[2] < newest) &&
           crm_time_mono_us() < end) {
        feed_pump(feed, router, crm_time_mono_us());
        for (int i = 0; i < 3; i++)
            s_drain_events(subs[i], &last[i]);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(last[i], newest);
    feed_pump(feed, router, crm_time_mono_us());
    assert_false(feed_cut(feed)); /* nothing left: the server may wait again */
    session_release(&session);
    for (int i = 0; i < 3; i++)
        zmq_close(subs[i]);
    zmq_close(router);
    zmq_ctx_term(zctx);
    feed_pump(feed, NULL, crm_time_mono_us());
    feed_destroy(&feed);
}

/* The value sweep (h_report.c) on the same store: a sweep walks the records
   made before it began (UNTIL), not those made since, whichever slice it is in. */
static void
test_sweep_until(void **state)
{
    (void)state;
    const Crm__User actor = {PROTOBUF_C_MESSAGE_INIT(&crm__user__descriptor),
                             (char *)"system", CRM__DEPARTMENT__DEPARTMENT_NONE,
                             CRM__ROLE__ADMIN, {0, NULL}, true, 0, 0, 0, (char *)"",
                             (char *)""};
    char errbuf[CRM_ERRBUF];
    uint64_t last = 0;
    assert_int_equal(records_last_num(s_fx.group, crm_entity_by_name("customer"), &last),
                     CRM_OK);
    assert_true(last >= CUSTOMERS);
    sweep_result_t r;
    int64_t now = crm_time_now_ms();
    /* unbounded: a full slice, more to come */
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', 0, UINT64_MAX, 1000, true, &r,
                                 errbuf), CRM_OK);
    assert_int_equal(r.checked, 1000);
    assert_int_equal(r.next_kind, 'c');
    assert_int_equal(r.next_after, 1000);
    /* bounded at 100: the slice that reaches it ends the customers, tickets next */
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', 50, 100, 30, true, &r, errbuf),
                     CRM_OK);
    assert_int_equal(r.checked, 30);
    assert_int_equal(r.next_kind, 'c');
    assert_int_equal(r.next_after, 80);
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', 80, 100, 30, true, &r, errbuf),
                     CRM_OK);
    assert_int_equal(r.checked, 20);
    assert_int_equal(r.next_kind, 't');
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', 0, 100, 1000, true, &r, errbuf),
                     CRM_OK);
    assert_int_equal(r.checked, 100);
    assert_int_equal(r.next_kind, 't');
    /* nothing made before it began */
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', 0, 0, 50, true, &r, errbuf),
                     CRM_OK);
    assert_int_equal(r.checked, 0);
    assert_int_equal(r.next_kind, 't');
    /* the last record made is in: the bound is inclusive */
    assert_int_equal(sweep_slice(&s_fx.env, &actor, now, 'c', last - 1, last, 50, true, &r,
                                 errbuf), CRM_OK);
    assert_int_equal(r.checked, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed_full_pipe_unbatched),
        cmocka_unit_test(test_feed_full_pipe_batched),
        cmocka_unit_test(test_feed_full_pipe_replayed_unbatched),
        cmocka_unit_test(test_feed_full_pipe_replayed_batched),
        cmocka_unit_test(test_feed_pump_cut), /* before the store begins new histories */
        cmocka_unit_test(test_feed_watch_histories),
        cmocka_unit_test(test_feed_history_begun_told),
        cmocka_unit_test(test_feed_committed_upto),
        cmocka_unit_test(test_feed_watch_across_two_histories),
        cmocka_unit_test(test_sweep_until),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
