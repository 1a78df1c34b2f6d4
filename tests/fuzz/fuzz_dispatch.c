/*  =========================================================================
    fuzz_dispatch - libFuzzer on decode -> authenticate -> authorize -> handler

    Each input is one request frame as a client would send it, its first byte
    choosing who sends it (an admin, a marketing staff member or a sales staff
    member). The frame goes through dispatch_process() against a real store in
    a temporary directory, the writer's group is committed and the feed is
    pumped, as the server loop does. The feed delivers for real: a ROUTER on
    inproc stands for the server's socket, and a DEALER connected to it is a
    WATCH subscriber (a marketing user, so redaction runs too) whose events
    are received and decoded and their fields formatted as crm watch does.
    Built with ASan+UBSan; any crash, leak or undefined behaviour fails the
    run.

    With CRM_FUZZ_SEEDS=DIR set, initialization also writes one valid request
    of every operation into DIR, for a seed corpus.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "crm.pb-c.h"
#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "crm_utf8.h"
#include "derive.h"
#include "dispatch.h"
#include "feed.h"
#include "store.h"
#include "users.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NUSERS 3

static struct {
    store_t *store;
    store_group_t *group;
    feed_t *feed;
    dispatch_env_t env;
    crm_ratelimit_t rl;
    char ids[NUSERS][CRM_Z85_LEN + 1]; /* ZAP identities */
    int seeds;                         /* seed files written */
    void *zctx, *router, *watcher;     /* the feed's socket and one subscriber */
    uint8_t rid[256];                  /* the watcher's routing id, as the ROUTER knows it */
    size_t rid_len;
    unsigned long delivered;           /* events and progress markers the watcher decoded */
} s_fx;

static void
s_add_user(const char *name, Crm__Department dept, Crm__Role role, int i)
{
    Crm__User actor = CRM__USER__INIT;
    Crm__UserRequest req = CRM__USER_REQUEST__INIT;
    crm_keypair_t kp;
    char errbuf[CRM_ERRBUF];
    actor.name = (char *)"fuzz";
    actor.role = CRM__ROLE__ADMIN;
    crm_keys_generate(&kp);
    req.name = (char *)name;
    req.department = dept;
    req.role = role;
    req.public_key.data = kp.pub;
    req.public_key.len = CRM_KEY_BYTES;
    if (users_apply(s_fx.store, s_fx.group, &actor, USERS_ADD, &req, NULL, errbuf) != CRM_OK) {
        fprintf(stderr, "fuzz: %s\n", errbuf);
        abort();
    }
    crm_keys_to_z85(kp.pub, s_fx.ids[i]);
}

/* Read EV's parts as crm watch does: each record, each changed field
   formatted and escaped for the terminal. */
static void
s_read_event(const Crm__Event *ev)
{
    char errbuf[CRM_ERRBUF];
    for (size_t i = 0; i < ev->n_parts; i++) {
        const Crm__EventPart *p = ev->parts[i];
        const crm_entity_t *e = crm_entity_by_name(p->kind);
        ProtobufCMessage *rec = NULL;
        if (!e || !p->record.len ||
            crm_proto_unpack_shown(e->desc, p->record.data, p->record.len, &rec, errbuf) != CRM_OK)
            continue;
        for (size_t f = 0; f < p->n_fields; f++) {
            const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, p->fields[f]);
            if (!fd)
                continue;
            char *v = crm_record_format(rec, fd, false, true);
            free(crm_utf8_escape(v, strlen(v), NULL));
            free(v);
        }
        crm_proto_free(&rec);
    }
}

/* The watcher reads what the feed sent, as crm watch does: the reply, each
   part's record, each changed field formatted and escaped for the terminal. */
static void
s_drain(void)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s_fx.watcher, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        char errbuf[CRM_ERRBUF];
        Crm__Reply *r = NULL;
        if (crm_proto_unpack_shown(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                                   (ProtobufCMessage **)&r, errbuf) == CRM_OK) {
            s_fx.delivered++;
            Crm__Event **evs; /* one event, or a batched watch's events */
            size_t n = crm_proto_reply_events(r, &evs);
            for (size_t k = 0; k < n; k++)
                s_read_event(evs[k]);
        }
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
    }
}

/* Serve one frame from user WHO, then commit and pump as the server loop
   does, and let the watcher read what the feed delivered. */
static void
s_serve(int who, const uint8_t *frame, size_t len)
{
    char errbuf[CRM_ERRBUF];
    size_t reply_len;
    dispatch_out_t out;
    s_fx.env.rid = s_fx.rid;
    s_fx.env.rid_len = s_fx.rid_len;
    s_fx.env.user_id = s_fx.ids[who];
    free(dispatch_process(&s_fx.env, s_fx.ids[who], 1, frame, len, &reply_len, &out));
    if (store_group_dirty(s_fx.group))
        store_group_commit(s_fx.group, errbuf);
    /* the reply goes out (server.c) */
    if (out.watch)
        feed_replied(s_fx.feed, s_fx.rid, s_fx.rid_len, out.id, out.ok);
    if (out.deferred) { /* what the worker thread does with it (worker.c), here inline */
        dispatch_env_t wenv = s_fx.env;
        wenv.group = NULL;
        wenv.feed = NULL;
        wenv.worker = true;
        store_view_begin(s_fx.env.store);
        free(dispatch_process(&wenv, s_fx.ids[who], 1, frame, len, &reply_len, &out));
        store_view_end(s_fx.env.store);
    }
    feed_committed(s_fx.feed, crm_time_now_us(), UINT64_MAX);
    feed_pump(s_fx.feed, s_fx.router, crm_time_mono_us());
    s_drain();
}

/* The feed's ROUTER on inproc and a DEALER peer; the ROUTER learns the
   peer's (libzmq-made) routing id from its first message. */
static void
s_sockets(void)
{
    int one = 1;
    s_fx.zctx = zmq_ctx_new();
    s_fx.router = zmq_socket(s_fx.zctx, ZMQ_ROUTER);
    s_fx.watcher = zmq_socket(s_fx.zctx, ZMQ_DEALER);
    zmq_setsockopt(s_fx.router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (zmq_bind(s_fx.router, "inproc://fuzz-feed") != 0 ||
        zmq_connect(s_fx.watcher, "inproc://fuzz-feed") != 0 ||
        zmq_send(s_fx.watcher, "hello", 5, 0) != 5) {
        fprintf(stderr, "fuzz: cannot make the feed's sockets\n");
        abort();
    }
    int n = zmq_recv(s_fx.router, s_fx.rid, sizeof s_fx.rid, 0);
    char hello[8];
    if (n <= 0 || n > (int)sizeof s_fx.rid || zmq_recv(s_fx.router, hello, sizeof hello, 0) != 5) {
        fprintf(stderr, "fuzz: the watcher did not connect\n");
        abort();
    }
    s_fx.rid_len = (size_t)n;
}

/* Serve REQ as WHO; with CRM_FUZZ_SEEDS also keep it as a seed. */
static void
s_seed(int who, Crm__Request *req)
{
    size_t len;
    uint8_t *frame = crm_proto_pack(&req->base, &len);
    const char *dir = getenv("CRM_FUZZ_SEEDS");
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%03d", dir, s_fx.seeds++);
        FILE *f = fopen(path, "wb");
        if (f) {
            fputc(who, f);
            fwrite(frame, 1, len, f);
            fclose(f);
        }
    }
    s_serve(who, frame, len);
    free(frame);
}

static void
s_entity(int who, Crm__Op op, const char *kind, const ProtobufCMessage *rec, const char *id,
         const char *field, const char *text)
{
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Filter f = CRM__FILTER__INIT, *fp = &f;
    char *fields[1] = {(char *)field};
    req.id = 7;
    req.op = op;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = &er;
    er.kind = (char *)kind;
    er.id = (char *)(id ? id : "");
    er.expect_version = 1;
    er.text = (char *)(text ? text : "");
    if (rec)
        er.record.data = crm_proto_pack(rec, &er.record.len);
    if (field && op == CRM__OP__OP_ENTITY_UPDATE) {
        er.fields = fields;
        er.n_fields = 1;
    } else if (field) {
        f.field = (char *)field;
        f.value = (char *)text;
        er.filters = &fp;
        er.n_filters = 1;
        er.text = (char *)"";
    }
    if (op == CRM__OP__OP_ENTITY_IMPORT && rec) {
        er.records = &er.record;
        er.n_records = 1;
    }
    s_seed(who, &req);
    free(er.record.data);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char tmpl[4096], errbuf[CRM_ERRBUF];
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/crm-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    const char *dir = mkdtemp(tmpl);
    crm_log_threshold = CRM_LOG_ERROR;
    if (!dir || store_open(dir, STORE_CREATE, &s_fx.store, errbuf) != CRM_OK) {
        fprintf(stderr, "fuzz: cannot make a store: %s\n", errbuf);
        abort();
    }
    s_fx.group = store_group_new(s_fx.store);
    s_sockets();
    s_add_user("admin", CRM__DEPARTMENT__DEPARTMENT_NONE, CRM__ROLE__ADMIN, 0);
    s_add_user("mk", CRM__DEPARTMENT__MARKETING, CRM__ROLE__STAFF, 1);
    s_add_user("sa", CRM__DEPARTMENT__SALES, CRM__ROLE__STAFF, 2);
    store_group_commit(s_fx.group, errbuf);
    feed_config_t fc = {.retain_events = 1000};
    s_fx.feed = feed_new(s_fx.store, &fc);
    static value_rules_t rules;
    value_rules_defaults(&rules);
    dispatch_env_t env = {.store = s_fx.store,
                          .group = s_fx.group,
                          .server_key = "fuzz-server-key",
                          .log_rl = &s_fx.rl,
                          .feed = s_fx.feed,
                          .rules = &rules,
                          .max_msg = 1u << 20};
    s_fx.env = env;

    /* a few records and one request of every operation, as seeds */
    const crm_entity_t *cust = crm_entity_by_name("customer");
    const crm_entity_t *act = crm_entity_by_name("activity");
    static const char *const fields[][2] = {
        {"name", "张伟"},       {"phones", "138 0013 8000"}, {"emails", "Z@Example.com"},
        {"tags", "vip"},        {"custom", "k=v"},           {"birthday", "1990-01-02"},
        {"stage", "prospect"},  {"address", "北京"},         {"consent_channel", "wechat"},
    };
    ProtobufCMessage *c = crm_proto_new(cust->desc);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        crm_record_set_text(c, crm_record_field(cust->desc, fields[i][0]), fields[i][1], false,
                            errbuf);
    for (int who = 0; who < NUSERS; who++)
        s_entity(who, CRM__OP__OP_ENTITY_CREATE, "customer", c, NULL, NULL, NULL);
    s_entity(0, CRM__OP__OP_ENTITY_IMPORT, "customer", c, NULL, NULL, NULL);
    ProtobufCMessage *a = crm_proto_new(act->desc);
    crm_record_set_str(a, "customer_id", "c1");
    crm_record_set_str(a, "summary", "call");
    s_entity(2, CRM__OP__OP_ENTITY_CREATE, "activity", a, NULL, NULL, NULL);
    s_entity(1, CRM__OP__OP_ENTITY_GET, "customer", NULL, "c1", NULL, NULL);
    s_entity(2, CRM__OP__OP_ENTITY_UPDATE, "customer", c, "c1", "tags", NULL);
    s_entity(1, CRM__OP__OP_ENTITY_LIST, "customer", NULL, NULL, "phones", "13800138000");
    s_entity(1, CRM__OP__OP_ENTITY_SEARCH, "customer", NULL, NULL, NULL, "张伟");
    s_entity(1, CRM__OP__OP_ENTITY_SEARCH, "customer", NULL, NULL, NULL, "8000");
    s_entity(0, CRM__OP__OP_ENTITY_LIST, "activity", NULL, NULL, "customer_id", "c1");
    s_entity(0, CRM__OP__OP_ENTITY_DELETE, "customer", NULL, "c3", NULL, NULL);
    crm_proto_free(&c);
    crm_proto_free(&a);

    Crm__Request req = CRM__REQUEST__INIT;
    Crm__AuditRequest q = CRM__AUDIT_REQUEST__INIT;
    req.op = CRM__OP__OP_HISTORY;
    req.body_case = CRM__REQUEST__BODY_AUDIT;
    req.audit = &q;
    q.id = (char *)"c1";
    s_seed(1, &req);
    req.op = CRM__OP__OP_AUDIT_LIST;
    q.id = (char *)"";
    s_seed(0, &req);
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
    req.op = CRM__OP__OP_WATCH;
    req.body_case = CRM__REQUEST__BODY_WATCH;
    req.watch = &w;
    w.since = 1;
    s_seed(1, &req);
    w.batch = true; /* several events to a reply */
    s_seed(1, &req);
    Crm__UserRequest u = CRM__USER_REQUEST__INIT;
    uint8_t key[CRM_KEY_BYTES] = {1};
    u.name = (char *)"newbie";
    u.department = CRM__DEPARTMENT__SUPPORT;
    u.role = CRM__ROLE__STAFF;
    u.public_key.data = key;
    u.public_key.len = sizeof key;
    req.op = CRM__OP__OP_USER_ADD;
    req.body_case = CRM__REQUEST__BODY_USER;
    req.user = &u;
    s_seed(0, &req);
    Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
    Crm__Filter by = CRM__FILTER__INIT, since = CRM__FILTER__INIT, *rf[] = {&by, &since};
    by.field = (char *)"by";
    by.value = (char *)"region";
    since.field = (char *)"since";
    since.value = (char *)"2026-01-01";
    rr.name = (char *)"sales";
    rr.filters = rf;
    rr.n_filters = 2;
    req.op = CRM__OP__OP_REPORT;
    req.body_case = CRM__REQUEST__BODY_REPORT;
    req.report = &rr;
    s_seed(0, &req); /* a table report: deferred, then run as the worker would */
    Crm__ReplDigestRequest dg = CRM__REPL_DIGEST_REQUEST__INIT;
    req.op = CRM__OP__OP_REPL_DIGEST;
    req.body_case = CRM__REQUEST__BODY_REPL_DIGEST;
    req.repl_digest = &dg;
    s_seed(0, &req); /* a digest of the whole store, on the worker */
    req.op = CRM__OP__OP_PING;
    req.body_case = CRM__REQUEST__BODY__NOT_SET;
    s_seed(2, &req);
    /* the watcher must have been sent events, or feed delivery goes unfuzzed */
    if (s_fx.delivered < 2) {
        fprintf(stderr, "fuzz: the feed delivered %lu messages to the watcher\n", s_fx.delivered);
        abort();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    s_serve(data[0] % NUSERS, data + 1, size - 1);
    return 0;
}
