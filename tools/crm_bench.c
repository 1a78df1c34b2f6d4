/*  =========================================================================
    crm-bench - load generator and latency meter for crmd

    Preloads N customers through the import op, then runs C concurrent
    clients for a fixed time with a mix of get-by-id, search-by-phone,
    search-by-name, versioned update (read + update with the version read)
    and add-activity, and prints ops/s and p50/p99/p99.9 latency per
    operation, plus the server's CPU time per operation when given its pid.

    Lean on purpose (PERFORMANCE.md, "Measuring fairly"): a few threads, many
    DEALER sockets each, one request outstanding per socket (closed loop).
    Every loop is bounded by the duration and stops by itself.
    =========================================================================
*/
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "crm.pb-c.h"
#include "crm_entity.h"
#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"

/* ==== Operations and their latencies ==== */

enum { OP_GET, OP_PHONE, OP_NAME, OP_UPDATE, OP_ACTIVITY, OP_ORDER, OP_TICKET, OP__COUNT };
static const char *const s_op_names[OP__COUNT] = {"get-by-id",    "search-phone", "search-name",
                                                  "update",       "add-activity", "add-order",
                                                  "ticket-open"};

/* Latency histogram: 1 us buckets to 10 ms, then 100 us buckets to 1 s. */
#define H_FINE 10000
#define H_COARSE 9900
typedef struct {
    uint64_t fine[H_FINE];
    uint64_t coarse[H_COARSE + 1];
    uint64_t count, errors, conflicts;
} s_hist_t;

static void
s_hist_add(s_hist_t *h, int64_t us)
{
    if (us < H_FINE)
        h->fine[us < 0 ? 0 : us]++;
    else {
        int64_t b = (us - H_FINE) / 100;
        h->coarse[b > H_COARSE ? H_COARSE : b]++;
    }
    h->count++;
}

static double
s_hist_pct(const s_hist_t *h, double p)
{
    uint64_t want = (uint64_t)(p * (double)h->count), seen = 0;
    for (int i = 0; i < H_FINE; i++)
        if ((seen += h->fine[i]) > want)
            return i;
    for (int i = 0; i <= H_COARSE; i++)
        if ((seen += h->coarse[i]) > want)
            return H_FINE + 100.0 * i;
    return 1e6;
}

/* ==== Names and phones of the preloaded customers (deterministic by number) ==== */

static const char *const s_surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"};
static const char *const s_chars[] = {
    "伟", "芳", "娜", "英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "兰", "霞", "平", "刚", "桂", "建", "华", "志", "晓", "东", "海", "燕",
    "雪", "梅", "文", "玉", "春", "红", "林", "斌", "鹏", "辉", "俊", "峰", "琳", "婷", "欣",
    "宇", "浩", "凯", "博", "阳", "晨", "雨", "思", "佳", "嘉", "子", "睿", "轩", "涵", "怡",
    "昊", "然", "泽", "航", "梓", "诗", "可", "心", "雅", "琪", "瑞", "萱", "欢", "乐", "宁",
    "安", "成", "德", "福", "贵", "荣", "国", "家", "庆", "祥", "胜", "利", "顺", "达", "兴",
    "旺", "昌", "隆", "泰", "康", "永"};
#define NCHARS (sizeof s_chars / sizeof s_chars[0])

static void
s_name(uint64_t i, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", s_surnames[i % 10], s_chars[(i / 10) % NCHARS],
             s_chars[(i / 10 / NCHARS) % NCHARS]);
}

static void
s_phone(uint64_t i, char *out, size_t n)
{
    snprintf(out, n, "139%08" PRIu64, i);
}

/* ==== Settings ==== */

typedef struct {
    const char *endpoint;
    crm_enroll_t enroll;
    uint64_t preload;    /* customers to import first */
    uint64_t ids;        /* ids to draw from (preload or existing count) */
    int clients, threads;
    double duration;
    int mix[OP__COUNT];  /* weights */
    int pid;             /* crmd's pid, for CPU per op */
    int feed;            /* change-feed subscribers to run alongside */
    const char *feed_endpoint; /* ... on this server (a replica; default: --server) */
    crm_enroll_t *feed_enroll; /* ... as these users in turn (default: --config's) */
    int n_feed_enroll;
    bool feed_unbatched; /* subscribers take one event per reply (watches of older clients) */
    bool quick;          /* smoke test: short, every operation, each must be counted */
} s_cfg_t;

static void *s_socket_to(void *ctx, const s_cfg_t *cfg, const char *endpoint);
static void *s_socket_as(void *ctx, const crm_enroll_t *enroll, const char *endpoint);

static void *
s_socket(void *ctx, const s_cfg_t *cfg)
{
    return s_socket_to(ctx, cfg, cfg->endpoint);
}

static void *
s_socket_to(void *ctx, const s_cfg_t *cfg, const char *endpoint)
{
    return s_socket_as(ctx, &cfg->enroll, endpoint);
}

static void *
s_socket_as(void *ctx, const crm_enroll_t *enroll, const char *endpoint)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, enroll->server_pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, enroll->keys.pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, enroll->keys.sec, 32);
    /* a DEALER with no peer blocks in send: bound it, so every loop stops by itself */
    int sndtimeo = 2000;
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "crm-bench: cannot connect to '%s': %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        exit(2);
    }
    return s;
}

static void
s_send(void *s, Crm__Request *req)
{
    size_t len;
    uint8_t *buf = crm_proto_pack(&req->base, &len);
    zmq_send(s, buf, len, 0);
    free(buf);
}

static Crm__Reply *
s_recv(void *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Crm__Reply *r = NULL;
    char errbuf[CRM_ERRBUF];
    crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                     (ProtobufCMessage **)&r, errbuf);
    zmq_msg_close(&m);
    return r;
}

/* ==== Preload ==== */

typedef struct {
    const s_cfg_t *cfg;
    void *ctx;
    uint64_t from, to; /* customer numbers [from, to) */
    uint64_t failed;
} s_preload_t;

static void *
s_preload_thread(void *arg)
{
    s_preload_t *p = arg;
    const crm_entity_t *e = crm_entity_by_name("customer");
    void *s = s_socket(p->ctx, p->cfg);
    enum { BATCH = CRM_PROTO_IMPORT_MAX };
    ProtobufCBinaryData recs[BATCH];
    for (uint64_t i = p->from; i < p->to;) {
        size_t n = 0;
        for (; n < BATCH && i < p->to; n++, i++) {
            ProtobufCMessage *c = crm_proto_new(e->desc);
            char name[32], phone[24], errbuf[CRM_ERRBUF];
            s_name(i, name, sizeof name);
            s_phone(i, phone, sizeof phone);
            crm_record_set_str(c, "name", name);
            crm_record_set_text(c, crm_record_field(e->desc, "phones"), phone, false, errbuf);
            static const char *const provinces[] = {"上海", "北京", "浙江", "江苏", "广东", "四川"};
            crm_record_set_str(c, "city", i % 2 ? "北京" : "上海");
            crm_record_set_str(c, "province", provinces[i % 6]);
            if (i % 5 == 0) { /* one in five gave marketing consent */
                crm_record_set_text(c, crm_record_field(e->desc, "consent"), "yes", false, errbuf);
                crm_record_set_str(c, "consent_channel", "web");
            }
            crm_record_set_text(c, crm_record_field(e->desc, "stage"), i % 3 ? "lead" : "active",
                                false, errbuf);
            recs[n].data = crm_proto_pack(c, &recs[n].len);
            crm_proto_free(&c);
        }
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
        req.op = CRM__OP__OP_ENTITY_IMPORT;
        req.body_case = CRM__REQUEST__BODY_ENTITY;
        req.entity = &er;
        er.kind = (char *)"customer";
        er.records = recs;
        er.n_records = n;
        s_send(s, &req);
        Crm__Reply *r = s_recv(s);
        if (!r || r->status != CRM__ERROR_CODE__OK) {
            fprintf(stderr, "crm-bench: preload batch failed: %s\n",
                    r ? r->message : "no reply");
            p->failed += n;
        } else
            for (size_t j = 0; j < r->entity->n_results; j++)
                if (r->entity->results[j]->status != CRM__ERROR_CODE__OK) {
                    if (p->failed++ == 0)
                        fprintf(stderr, "crm-bench: preload: %s\n", r->entity->results[j]->message);
                }
        crm_proto_free((ProtobufCMessage **)&r);
        for (size_t j = 0; j < n; j++)
            free(recs[j].data);
    }
    zmq_close(s);
    return NULL;
}

/* ==== Load ==== */

typedef struct {
    void *sock;
    int op;           /* the operation in flight */
    int step;         /* update: 0 = reading, 1 = writing */
    int64_t started;  /* when the operation began, us */
    uint64_t target;  /* customer number */
} s_client_t;

typedef struct {
    const s_cfg_t *cfg;
    void *ctx;
    int nclients;
    s_hist_t hist[OP__COUNT];
    uint32_t seed;
} s_worker_t;

static uint32_t
s_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void
s_entity_req(Crm__Request *req, Crm__EntityRequest *er, Crm__Op op)
{
    crm__request__init(req);
    crm__entity_request__init(er);
    req->op = op;
    req->body_case = CRM__REQUEST__BODY_ENTITY;
    req->entity = er;
}

/* Start operation OP (or the next step of an update) on client C. */
static void
s_start(s_worker_t *w, s_client_t *c, const ProtobufCMessage *current)
{
    Crm__Request req;
    Crm__EntityRequest er;
    char id[24], text[32];
    const crm_entity_t *cust = crm_entity_by_name("customer");
    uint64_t n = c->target;
    snprintf(id, sizeof id, "c%" PRIu64, n);
    switch (c->op) {
    case OP_GET:
        s_entity_req(&req, &er, CRM__OP__OP_ENTITY_GET);
        er.kind = (char *)"customer";
        er.id = id;
        break;
    case OP_PHONE:
    case OP_NAME:
        s_entity_req(&req, &er, CRM__OP__OP_ENTITY_SEARCH);
        er.kind = (char *)"customer";
        if (c->op == OP_PHONE)
            s_phone(n - 1, text, sizeof text);
        else { /* the given name's two characters: about N/10,000 customers share them */
            char name[32];
            s_name(n - 1, name, sizeof name);
            snprintf(text, sizeof text, "%s", name + strlen(s_surnames[0]));
        }
        er.text = text;
        er.limit = 10;
        break;
    case OP_UPDATE:
        if (c->step == 0) {
            s_entity_req(&req, &er, CRM__OP__OP_ENTITY_GET);
            er.kind = (char *)"customer";
            er.id = id;
            break;
        } else {
            ProtobufCMessage *patch = crm_proto_new(cust->desc);
            char errbuf[CRM_ERRBUF], kv[48];
            snprintf(kv, sizeof kv, "bench=%u", s_rand(&w->seed));
            crm_record_set_text(patch, crm_record_field(cust->desc, "custom"), kv, false, errbuf);
            static char *fields[] = {(char *)"custom"};
            s_entity_req(&req, &er, CRM__OP__OP_ENTITY_UPDATE);
            er.kind = (char *)"customer";
            er.id = id;
            er.expect_version = current ? crm_record_get_u64(current, "version") : 1;
            er.record.data = crm_proto_pack(patch, &er.record.len);
            er.fields = fields;
            er.n_fields = 1;
            crm_proto_free(&patch);
            s_send(c->sock, &req);
            free(er.record.data);
            return;
        }
    case OP_ACTIVITY: {
        const crm_entity_t *act = crm_entity_by_name("activity");
        ProtobufCMessage *a = crm_proto_new(act->desc);
        char errbuf[CRM_ERRBUF];
        crm_record_set_str(a, "customer_id", id);
        crm_record_set_str(a, "summary", "bench call");
        crm_record_set_text(a, crm_record_field(act->desc, "type"), "call", false, errbuf);
        s_entity_req(&req, &er, CRM__OP__OP_ENTITY_CREATE);
        er.kind = (char *)"activity";
        er.record.data = crm_proto_pack(a, &er.record.len);
        crm_proto_free(&a);
        s_send(c->sock, &req);
        free(er.record.data);
        return;
    }
    case OP_ORDER: { /* an order of two lines: the customer's value changes with it */
        const crm_entity_t *oe = crm_entity_by_name("order");
        ProtobufCMessage *o = crm_proto_new(oe->desc);
        const ProtobufCFieldDescriptor *lines = crm_record_field(oe->desc, "lines");
        char errbuf[CRM_ERRBUF];
        crm_record_set_str(o, "customer_id", id);
        crm_record_set_text(o, lines, "sku=B1,name=bench item,quantity=2,unit_price=19.90", false,
                            errbuf);
        crm_record_set_text(o, lines, "sku=B2,quantity=1,unit_price=250", false, errbuf);
        s_entity_req(&req, &er, CRM__OP__OP_ENTITY_CREATE);
        er.kind = (char *)"order";
        er.record.data = crm_proto_pack(o, &er.record.len);
        crm_proto_free(&o);
        s_send(c->sock, &req);
        free(er.record.data);
        return;
    }
    case OP_TICKET: { /* a support case: its due times come from the SLA table */
        const crm_entity_t *te = crm_entity_by_name("ticket");
        ProtobufCMessage *t = crm_proto_new(te->desc);
        char errbuf[CRM_ERRBUF];
        crm_record_set_str(t, "customer_id", id);
        crm_record_set_str(t, "subject", "bench case");
        crm_record_set_text(t, crm_record_field(te->desc, "priority"), "high", false, errbuf);
        s_entity_req(&req, &er, CRM__OP__OP_ENTITY_CREATE);
        er.kind = (char *)"ticket";
        er.record.data = crm_proto_pack(t, &er.record.len);
        crm_proto_free(&t);
        s_send(c->sock, &req);
        free(er.record.data);
        return;
    }
    }
    s_send(c->sock, &req);
}

static void
s_begin(s_worker_t *w, s_client_t *c)
{
    int total = 0, pick;
    for (int i = 0; i < OP__COUNT; i++)
        total += w->cfg->mix[i];
    pick = (int)(s_rand(&w->seed) % (uint32_t)total);
    for (c->op = 0; c->op < OP__COUNT - 1 && pick >= w->cfg->mix[c->op]; c->op++)
        pick -= w->cfg->mix[c->op];
    c->step = 0;
    c->target = 1 + s_rand(&w->seed) % w->cfg->ids;
    c->started = crm_time_mono_us();
    s_start(w, c, NULL);
}

static void *
s_worker(void *arg)
{
    s_worker_t *w = arg;
    s_client_t *cl = calloc((size_t)w->nclients, sizeof *cl);
    zmq_pollitem_t *items = calloc((size_t)w->nclients, sizeof *items);
    const crm_entity_t *cust = crm_entity_by_name("customer");
    for (int i = 0; i < w->nclients; i++) {
        cl[i].sock = s_socket(w->ctx, w->cfg);
        items[i] = (zmq_pollitem_t){cl[i].sock, 0, ZMQ_POLLIN, 0};
    }
    usleep(200000); /* let the handshakes finish before the clock starts */
    int64_t end = crm_time_mono_us() + (int64_t)(w->cfg->duration * 1e6);
    for (int i = 0; i < w->nclients; i++)
        s_begin(w, &cl[i]);
    while (crm_time_mono_us() < end) {
        if (zmq_poll(items, w->nclients, 100) <= 0)
            continue;
        for (int i = 0; i < w->nclients; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            s_client_t *c = &cl[i];
            Crm__Reply *r = s_recv(c->sock);
            s_hist_t *h = &w->hist[c->op];
            if (c->op == OP_UPDATE && c->step == 0 && r && r->status == CRM__ERROR_CODE__OK &&
                r->entity->n_records == 1) {
                char errbuf[CRM_ERRBUF];
                ProtobufCMessage *cur = NULL;
                crm_proto_unpack(cust->desc, r->entity->records[0].data,
                                 r->entity->records[0].len, &cur, errbuf);
                c->step = 1;
                s_start(w, c, cur);
                crm_proto_free(&cur);
                crm_proto_free((ProtobufCMessage **)&r);
                continue;
            }
            if (!r || r->status != CRM__ERROR_CODE__OK) {
                if (r && r->status == CRM__ERROR_CODE__CONFLICT)
                    h->conflicts++;
                else
                    h->errors++;
            } else {
                s_hist_add(h, crm_time_mono_us() - c->started);
            }
            crm_proto_free((ProtobufCMessage **)&r);
            if (crm_time_mono_us() < end)
                s_begin(w, c);
        }
    }
    for (int i = 0; i < w->nclients; i++)
        zmq_close(cl[i].sock);
    free(cl);
    free(items);
    return NULL;
}

/* ==== Feed subscribers ==== */

typedef struct {
    const s_cfg_t *cfg;
    void *ctx;
    atomic_int *stop;    
    s_hist_t hist;       /* commit -> delivery latency */
    uint64_t events, gaps, replies; /* replies: messages that carried events */
    _Atomic int ready;   /* subscribers whose WATCH was answered */
} s_feed_t;

static void *
s_feed_thread(void *arg)
{
    s_feed_t *f = arg;
    int n = f->cfg->feed;
    void **socks = calloc((size_t)n, sizeof *socks);
    zmq_pollitem_t *items = calloc((size_t)n, sizeof *items);
    uint64_t *last = calloc((size_t)n, sizeof *last);
    for (int i = 0; i < n; i++) {
        const crm_enroll_t *as = f->cfg->n_feed_enroll
                                     ? &f->cfg->feed_enroll[i % f->cfg->n_feed_enroll]
                                     : &f->cfg->enroll;
        socks[i] = s_socket_as(f->ctx, as,
                               f->cfg->feed_endpoint ? f->cfg->feed_endpoint : f->cfg->endpoint);
        items[i] = (zmq_pollitem_t){socks[i], 0, ZMQ_POLLIN, 0};
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
        req.id = (uint64_t)i + 1; /* feed messages come with id 0: the answer is told apart */
        req.op = CRM__OP__OP_WATCH;
        req.body_case = CRM__REQUEST__BODY_WATCH;
        req.watch = &w;
        w.batch = !f->cfg->feed_unbatched; /* several due events to a reply */
        s_send(socks[i], &req);
    }
    while (!atomic_load(f->stop)) {
        if (zmq_poll(items, n, 100) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            /* what this subscriber has, not one reply per poll: a client that
               wakes up for every message would measure itself, not the feed */
            for (int burst = 0; burst < 64; burst++) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, socks[i], ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                Crm__Reply *r = NULL;
                char errbuf[CRM_ERRBUF];
                crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                                 (ProtobufCMessage **)&r, errbuf);
                zmq_msg_close(&m);
                int64_t now = crm_time_now_us();
                if (r && r->body_case == CRM__REPLY__BODY_PROGRESS && r->id) {
                    last[i] = r->progress->seq; /* the watch answer: where delivery starts */
                    atomic_fetch_add(&f->ready, 1);
                } else if (r) { /* one event, or (batched) the events that were due */
                    Crm__Event **evs;
                    size_t nev = crm_proto_reply_events(r, &evs);
                    f->replies += nev > 0;
                    for (size_t k = 0; k < nev; k++) {
                        if (last[i] && evs[k]->seq != last[i] + 1)
                            f->gaps++; /* admin sees every change: any hole is a loss */
                        last[i] = evs[k]->seq;
                        f->events++;
                        /* on a replica commit_us is when it applied the change there: the
                           primary's commit is the change's own time (ms) */
                        s_hist_add(&f->hist, f->cfg->feed_endpoint ? now - evs[k]->time * 1000
                                                                   : now - evs[k]->commit_us);
                    }
                }
                crm_proto_free((ProtobufCMessage **)&r);
            }
        }
    }
    for (int i = 0; i < n; i++)
        zmq_close(socks[i]);
    free(socks);
    free(items);
    free(last);
    return NULL;
}

/* utime + stime of PID in microseconds, or -1. */
static int64_t
s_cpu_us(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (int64_t)(ut + st) * 1000000 / sysconf(_SC_CLK_TCK);
}

static const char s_usage[] =
    "usage: crm-bench --config ENROLL --server ENDPOINT [options]\n"
    "\n"
    "  --preload N       import N customers first (numbered from the first free id)\n"
    "  --ids N           draw ids from c1..cN (default: the preload count)\n"
    "  --clients C       concurrent clients (default 32)\n"
    "  --threads T       client threads (default 2)\n"
    "  --duration S      seconds of load (default 10)\n"
    "  --mix G,P,N,U,A[,O[,T]]  weights of get, phone search, name search, update,\n"
    "                    add-activity, add-order and ticket-open (default 40,20,20,10,10,0,0)\n"
    "  --server-pid PID  report crmd's CPU time per operation\n"
    "  --feed S          also run S change-feed subscribers (as this user) and report\n"
    "                    commit -> delivery latency and delivered events/s\n"
    "  --feed-server EP  ... subscribed at EP (a replica): latency from the primary's\n"
    "                    commit (the change's time, ms) to delivery by the replica\n"
    "  --feed-config F1,F2,...  ... as these users in turn (the server takes at most 100\n"
    "                    watchers per user; they should see what --config's user sees)\n"
    "  --feed-unbatched  subscribers take one event per reply, as clients before\n"
    "                    batched watches did (default: the events due go together)\n"
    "  --quick           smoke test: 1 s, 8 clients, every operation (unless --duration,\n"
    "                    --clients or --mix say otherwise); fails unless each operation\n"
    "                    in the mix completed at least once without an error\n";

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"server", required_argument, NULL, 's'},
        {"preload", required_argument, NULL, 'p'},  {"ids", required_argument, NULL, 'i'},
        {"clients", required_argument, NULL, 'C'},  {"threads", required_argument, NULL, 'T'},
        {"duration", required_argument, NULL, 'd'}, {"mix", required_argument, NULL, 'm'},
        {"server-pid", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'},
        {"feed", required_argument, NULL, 'F'},     {"feed-server", required_argument, NULL, 'S'},     {"quick", no_argument, NULL, 'Q'},
        {"feed-config", required_argument, NULL, 'W'},
        {"feed-unbatched", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0}};
    s_cfg_t cfg = {.clients = 32, .threads = 2, .duration = 10, .mix = {40, 20, 20, 10, 10, 0, 0}};
    const char *config = NULL, *feed_config = NULL;
    int c;
    bool set_clients = false, set_duration = false, set_mix = false;
    if (sodium_init() < 0)
        return 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': cfg.endpoint = optarg; break;
        case 'p': cfg.preload = strtoull(optarg, NULL, 10); break;
        case 'i': cfg.ids = strtoull(optarg, NULL, 10); break;
        case 'C': cfg.clients = atoi(optarg); set_clients = true; break;
        case 'T': cfg.threads = atoi(optarg); break;
        case 'd': cfg.duration = atof(optarg); set_duration = true; break;
        case 'Q': cfg.quick = true; break;
        case 'P': cfg.pid = atoi(optarg); break;
        case 'F': cfg.feed = atoi(optarg); break;
        case 'S': cfg.feed_endpoint = optarg; break;
        case 'W': feed_config = optarg; break;
        case 'U': cfg.feed_unbatched = true; break;
        case 'm':
            set_mix = true;
            cfg.mix[OP_ORDER] = cfg.mix[OP_TICKET] = 0;
            if (sscanf(optarg, "%d,%d,%d,%d,%d,%d,%d", &cfg.mix[0], &cfg.mix[1], &cfg.mix[2],
                       &cfg.mix[3], &cfg.mix[4], &cfg.mix[5], &cfg.mix[6]) < 5) {
                fputs(s_usage, stderr);
                return 2;
            }
            break;
        case 'h': fputs(s_usage, stdout); return 0;
        default: fputs(s_usage, stderr); return 2;
        }
    }
    if (cfg.quick) {
        if (!set_clients)
            cfg.clients = 8;
        if (!set_duration)
            cfg.duration = 1;
        if (!set_mix)
            for (int i = 0; i < OP__COUNT; i++)
                cfg.mix[i] = 1;
    }
    char errbuf[CRM_ERRBUF];
    if (!config || !cfg.endpoint || crm_enroll_load(config, &cfg.enroll, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-bench: %s\n\n%s", config ? errbuf : "--config is required", s_usage);
        return 2;
    }
    for (const char *p = feed_config; p && *p;) { /* F1,F2,...: each an enrollment */
        size_t len = strcspn(p, ",");
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)len, p);
        cfg.feed_enroll = realloc(cfg.feed_enroll, (size_t)(cfg.n_feed_enroll + 1) *
                                                        sizeof *cfg.feed_enroll);
        if (!cfg.feed_enroll ||
            crm_enroll_load(path, &cfg.feed_enroll[cfg.n_feed_enroll], errbuf) != CRM_OK) {
            fprintf(stderr, "crm-bench: --feed-config: %s\n", errbuf);
            return 2;
        }
        cfg.n_feed_enroll++;
        p += len + (p[len] == ',');
    }
    int weights = 0;
    for (int i = 0; i < OP__COUNT; i++)
        weights += cfg.mix[i] < 0 ? -1000000 : cfg.mix[i];
    if (weights <= 0) {
        fprintf(stderr, "crm-bench: --mix needs weights >= 0, at least one of them > 0\n");
        return 2;
    }
    if (cfg.threads < 1 || cfg.clients < cfg.threads || cfg.duration <= 0 ||
        cfg.duration > 3600) {
        fprintf(stderr, "crm-bench: need 1 <= threads <= clients and 0 < duration <= 3600\n");
        return 2;
    }
    if (!cfg.ids)
        cfg.ids = cfg.preload;
    if (!cfg.ids) {
        fprintf(stderr, "crm-bench: give --preload N or --ids N\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    if (cfg.preload) {
        int64_t t0 = crm_time_mono_us();
        enum { P = 4 };
        s_preload_t pl[P];
        pthread_t th[P];
        for (int i = 0; i < P; i++) {
            pl[i] = (s_preload_t){&cfg, ctx, cfg.preload * (uint64_t)i / P,
                                  cfg.preload * (uint64_t)(i + 1) / P, 0};
            pthread_create(&th[i], NULL, s_preload_thread, &pl[i]);
        }
        uint64_t failed = 0;
        for (int i = 0; i < P; i++) {
            pthread_join(th[i], NULL);
            failed += pl[i].failed;
        }
        double secs = (double)(crm_time_mono_us() - t0) / 1e6;
        printf("preload: %" PRIu64 " customers in %.1f s (%.0f/s), %" PRIu64 " failed\n",
               cfg.preload, secs, (double)cfg.preload / secs, failed);
    }
    atomic_int feed_stop = 0;
    s_feed_t *feed = calloc(1, sizeof *feed);
    feed->cfg = &cfg;
    feed->ctx = ctx;
    feed->stop = &feed_stop;
    pthread_t feed_th;
    if (cfg.feed > 0) {
        pthread_create(&feed_th, NULL, s_feed_thread, feed);
        for (int i = 0; i < 100 && atomic_load(&feed->ready) < cfg.feed; i++)
            usleep(50000);
        printf("feed: %d of %d subscribers watching\n", atomic_load(&feed->ready), cfg.feed);
    }
    s_worker_t *w = calloc((size_t)cfg.threads, sizeof *w);
    pthread_t *th = calloc((size_t)cfg.threads, sizeof *th);
    int64_t cpu0 = cfg.pid ? s_cpu_us(cfg.pid) : -1;
    int64_t t0 = crm_time_mono_us();
    for (int i = 0; i < cfg.threads; i++) {
        w[i].cfg = &cfg;
        w[i].ctx = ctx;
        w[i].nclients = cfg.clients / cfg.threads + (i < cfg.clients % cfg.threads);
        w[i].seed = 12345u + (uint32_t)i * 7919u;
        pthread_create(&th[i], NULL, s_worker, &w[i]);
    }
    for (int i = 0; i < cfg.threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(crm_time_mono_us() - t0) / 1e6 - 0.2; /* less the handshake pause */
    int64_t cpu1 = cfg.pid ? s_cpu_us(cfg.pid) : -1;
    s_hist_t total;
    memset(&total, 0, sizeof total);
    printf("%d clients, %d threads, %.1f s, ids c1..c%" PRIu64 "\n", cfg.clients, cfg.threads,
           secs, cfg.ids);
    printf("%-14s %10s %10s %9s %9s %9s %8s %8s\n", "operation", "ops", "ops/s", "p50 ms",
           "p99 ms", "p99.9 ms", "errors", "conflict");
    for (int op = 0; op < OP__COUNT; op++) {
        s_hist_t h;
        memset(&h, 0, sizeof h);
        for (int i = 0; i < cfg.threads; i++) {
            for (int b = 0; b < H_FINE; b++)
                h.fine[b] += w[i].hist[op].fine[b];
            for (int b = 0; b <= H_COARSE; b++)
                h.coarse[b] += w[i].hist[op].coarse[b];
            h.count += w[i].hist[op].count;
            h.errors += w[i].hist[op].errors;
            h.conflicts += w[i].hist[op].conflicts;
        }
        for (int b = 0; b < H_FINE; b++)
            total.fine[b] += h.fine[b];
        for (int b = 0; b <= H_COARSE; b++)
            total.coarse[b] += h.coarse[b];
        total.count += h.count;
        total.errors += h.errors;
        total.conflicts += h.conflicts;
        if (!h.count && !h.errors)
            continue;
        printf("%-14s %10" PRIu64 " %10.0f %9.3f %9.3f %9.3f %8" PRIu64 " %8" PRIu64 "\n",
               s_op_names[op], h.count, (double)h.count / secs, s_hist_pct(&h, 0.5) / 1000,
               s_hist_pct(&h, 0.99) / 1000, s_hist_pct(&h, 0.999) / 1000, h.errors,
               h.conflicts);
    }
    int missing = 0;
    for (int op = 0; cfg.quick && op < OP__COUNT; op++) {
        uint64_t n = 0;
        for (int i = 0; i < cfg.threads; i++)
            n += w[i].hist[op].count;
        if (cfg.mix[op] > 0 && n == 0) {
            printf("quick: no %s completed\n", s_op_names[op]);
            missing++;
        }
    }
    printf("%-14s %10" PRIu64 " %10.0f %9.3f %9.3f %9.3f %8" PRIu64 " %8" PRIu64 "\n", "all",
           total.count, (double)total.count / secs, s_hist_pct(&total, 0.5) / 1000,
           s_hist_pct(&total, 0.99) / 1000, s_hist_pct(&total, 0.999) / 1000, total.errors,
           total.conflicts);
    if (cfg.feed > 0) {
        usleep(500000); /* let the last events arrive */
        atomic_store(&feed_stop, 1);
        pthread_join(feed_th, NULL);
        printf("feed: %d subscribers, %" PRIu64 " events delivered (%.0f/s), %" PRIu64
               " gaps; commit -> delivery p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms; %" PRIu64
               " replies (%.2f events each)\n",
               cfg.feed, feed->events, (double)feed->events / secs, feed->gaps,
               s_hist_pct(&feed->hist, 0.5) / 1000, s_hist_pct(&feed->hist, 0.99) / 1000,
               s_hist_pct(&feed->hist, 0.999) / 1000, feed->replies,
               feed->replies ? (double)feed->events / (double)feed->replies : 0.0);
    }
    int failed = total.errors || feed->gaps || missing;
    if (cfg.quick)
        printf("quick: %s\n", failed ? "FAILED" : "every operation counted, no errors");
    free(feed);
    if (cpu0 >= 0 && cpu1 >= 0 && total.count)
        printf("server CPU: %.1f s, %.1f us per operation\n", (double)(cpu1 - cpu0) / 1e6,
               (double)(cpu1 - cpu0) / (double)total.count);
    free(w);
    free(th);
    zmq_ctx_term(ctx);
    sodium_memzero(&cfg.enroll, sizeof cfg.enroll);
    if (cfg.n_feed_enroll)
        sodium_memzero(cfg.feed_enroll, (size_t)cfg.n_feed_enroll * sizeof *cfg.feed_enroll);
    free(cfg.feed_enroll);
    return failed ? 1 : 0;
}
