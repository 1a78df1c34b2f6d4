/*  =========================================================================
    crm-faultload - load and verification for the fault tests (tests/e2e/
    test_fault_*.sh), in the spirit of Jepsen: every operation is recorded as
    acknowledged (OK reply), failed (an error reply) or unknown (no reply),
    and only acknowledged ones are checked afterwards.

    Modes (every loop is bounded in count and time):
      mixed ENDPOINT ENROLL ACKFILE TAG SECONDS
          one connection: creates, versioned updates of its own customers,
          activities; appends each acknowledged operation to ACKFILE:
            c ID NAME | u ID VERSION NAME | a ID CUSTOMER_ID
          and "? NAME" for a create that got no reply within 2 s (unknown
          outcome), where it stops.
      verify ENDPOINT ENROLL ACKFILE
          every acknowledged create and activity exists; every customer is at
          least at its last acknowledged version, and at exactly that version
          holds the acknowledged name. Exit 1 on any loss.
      hammer ENDPOINT ENROLL OUTFILE WRITERS SECONDS [READ_ID]
          WRITERS connections create customers, one connection reads one
          customer (READ_ID, or one created first; "search:TEXT" searches
          for TEXT instead, "email:ADDR" creates a customer with that e-mail
          address: its duplicate check reads the address's index), all as
          fast as they get replies (a refused writer waits 20 ms), or the
          writers together at most FAULTLOAD_WRITE_RATE creates a second
          (environment; each writer takes its turn, no catching up), for
          SECONDS or until the file FAULTLOAD_STOP (environment) exists; one
          line per reply, written as it comes:
            <ms since the epoch, sent> <w|r> <STATUS|TIMEOUT> <latency ms> <message>
      restate ENDPOINT ENROLL SERVER_PID CTLFILE FAULT
          on one connection: create a customer; write FAULT to the faultfs
          control file; stop the server (SIGSTOP), send update A and an
          update B that restates A's change at A's version, resume it
          (SIGCONT); clear the fault. Prints "A=<status> B=<status>".
    =========================================================================
*/
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
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

static void *s_ctx;

static void *
s_connect(const char *endpoint, const char *enroll_path)
{
    void *s = zmq_socket(s_ctx, ZMQ_DEALER);
    int zero = 0;
    crm_enroll_t e;
    char errbuf[CRM_ERRBUF];
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (crm_enroll_load(enroll_path, &e, errbuf) != CRM_OK) {
        fprintf(stderr, "faultload: %s\n", errbuf);
        exit(2);
    }
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, e.server_pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, e.keys.pub, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, e.keys.sec, 32);
    sodium_memzero(&e, sizeof e);
    zmq_connect(s, endpoint);
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

/* The next reply within MS, or NULL. */
static Crm__Reply *
s_recv(void *s, int ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, s, 0);
    Crm__Reply *r = NULL;
    char errbuf[CRM_ERRBUF];
    crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                     (ProtobufCMessage **)&r, errbuf);
    zmq_msg_close(&m);
    return r;
}

static Crm__Reply *
s_call(void *s, Crm__Request *req, int ms)
{
    s_send(s, req);
    return s_recv(s, ms);
}

/* The one record of an OK entity reply, decoded (caller frees), or NULL. */
static ProtobufCMessage *
s_record(const Crm__Reply *r, const crm_entity_t *e)
{
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *rec = NULL;
    if (!r || r->status != CRM__ERROR_CODE__OK || !r->entity || r->entity->n_records != 1)
        return NULL;
    if (crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len, &rec,
                         errbuf) != CRM_OK)
        return NULL;
    return rec;
}

typedef struct {
    Crm__Request req;
    Crm__EntityRequest er;
    char *fields[1];
} s_req_t;

/* Build an entity request of OP on KIND (REC packed into it, if given). */
static void
s_entity_req(s_req_t *q, Crm__Op op, const char *kind, const char *id, ProtobufCMessage *rec)
{
    crm__request__init(&q->req);
    crm__entity_request__init(&q->er);
    q->req.op = op;
    q->req.body_case = CRM__REQUEST__BODY_ENTITY;
    q->req.entity = &q->er;
    q->er.kind = (char *)kind;
    q->er.id = (char *)(id ? id : "");
    if (rec)
        q->er.record.data = crm_proto_pack(rec, &q->er.record.len);
}

static void
s_req_release(s_req_t *q)
{
    free(q->er.record.data);
    q->er.record.data = NULL;
}

/* An update of customer ID's name to NAME based on VERSION. */
static void
s_rename_req(s_req_t *q, const char *id, uint64_t version, const char *name, uint64_t rid)
{
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *patch = crm_proto_new(e->desc);
    crm_record_set_str(patch, "name", name);
    s_entity_req(q, CRM__OP__OP_ENTITY_UPDATE, "customer", id, patch);
    crm_proto_free(&patch);
    q->fields[0] = (char *)"name";
    q->er.fields = q->fields;
    q->er.n_fields = 1;
    q->er.expect_version = version;
    q->req.id = rid;
}

/* Create customer NAME; on success copy its id to ID and return true. */
static bool
s_create_customer(void *s, const char *name, char id[64], uint64_t rid, int ms, int *status)
{
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "name", name);
    s_req_t q;
    s_entity_req(&q, CRM__OP__OP_ENTITY_CREATE, "customer", NULL, c);
    q.req.id = rid;
    crm_proto_free(&c);
    Crm__Reply *r = s_call(s, &q.req, ms);
    s_req_release(&q);
    *status = r ? (int)r->status : -1;
    ProtobufCMessage *made = s_record(r, e);
    bool ok = made != NULL;
    if (ok)
        snprintf(id, 64, "%s", crm_record_get_str(made, "id"));
    crm_proto_free(&made);
    crm_proto_free((ProtobufCMessage **)&r);
    return ok;
}

/* ==== mixed ==== */

typedef struct {
    char id[64];
    uint64_t version;
} s_mine_t;

static int
s_mixed(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    FILE *out = fopen(argv[2], "a");
    const char *tag = argv[3];
    int64_t end = crm_time_mono_us() + atoi(argv[4]) * 1000000LL;
    const crm_entity_t *cust = crm_entity_by_name("customer");
    const crm_entity_t *act = crm_entity_by_name("activity");
    s_mine_t mine[64];
    size_t n_mine = 0;
    long acked = 0, failed = 0;
    bool alive = out != NULL;
    for (uint64_t n = 1; alive && crm_time_mono_us() < end; n++) {
        int pick = n_mine == 0 ? 0 : (int)randombytes_uniform(10);
        char name[96];
        Crm__Reply *r = NULL;
        if (pick < 4 || n_mine == 0) { /* create */
            char id[64];
            int st;
            snprintf(name, sizeof name, "%s-%llu", tag, (unsigned long long)n);
            if (s_create_customer(s, name, id, n, 2000, &st)) {
                fprintf(out, "c %s %s\n", id, name);
                if (n_mine < 64) {
                    snprintf(mine[n_mine].id, sizeof mine[n_mine].id, "%s", id);
                    mine[n_mine++].version = 1;
                }
                acked++;
            } else if (st == -1) {
                fprintf(out, "? %s\n", name); /* unknown outcome */
                alive = false;
            } else {
                failed++;
            }
            fflush(out);
            continue;
        }
        s_mine_t *m = &mine[randombytes_uniform((uint32_t)n_mine)];
        s_req_t q;
        /* an activity may change its customer's derived fields, and so its
           version: such a customer gets no more versioned updates here, so
           that every refusal would be a fault, not an expected CONFLICT */
        if (pick < 8 && m->version == 0)
            pick = 8;
        if (pick < 8) { /* versioned update */
            snprintf(name, sizeof name, "%s-%llu-v%llu", tag, (unsigned long long)n,
                     (unsigned long long)m->version + 1);
            s_rename_req(&q, m->id, m->version, name, n);
            r = s_call(s, &q.req, 2000);
            ProtobufCMessage *rec = s_record(r, cust);
            if (rec) {
                m->version = crm_record_get_u64(rec, "version");
                fprintf(out, "u %s %llu %s\n", m->id, (unsigned long long)m->version, name);
                acked++;
            } else if (r && r->status == CRM__ERROR_CODE__CONFLICT) {
                m->version = r->current_version; /* an unknown earlier outcome landed */
                failed++;
            } else if (r) {
                failed++;
            }
            crm_proto_free(&rec);
        } else { /* activity */
            ProtobufCMessage *a = crm_proto_new(act->desc);
            crm_record_set_str(a, "customer_id", m->id);
            snprintf(name, sizeof name, "%s call %llu", tag, (unsigned long long)n);
            crm_record_set_str(a, "summary", name);
            s_entity_req(&q, CRM__OP__OP_ENTITY_CREATE, "activity", NULL, a);
            q.req.id = n;
            crm_proto_free(&a);
            r = s_call(s, &q.req, 2000);
            ProtobufCMessage *rec = s_record(r, act);
            if (rec) {
                fprintf(out, "a %s %s\n", crm_record_get_str(rec, "id"), m->id);
                m->version = 0; /* see above */
                acked++;
            } else if (r) {
                failed++;
            }
            crm_proto_free(&rec);
        }
        fflush(out);
        s_req_release(&q);
        if (!r)
            alive = false; /* unknown outcome: the server died */
        crm_proto_free((ProtobufCMessage **)&r);
    }
    printf("acknowledged %ld, refused %ld\n", acked, failed);
    if (out)
        fclose(out);
    zmq_close(s);
    return 0;
}

/* ==== verify ==== */

typedef struct {
    char id[64];
    uint64_t version;
    char name[128];
} s_want_t;

static int
s_verify(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    FILE *in = fopen(argv[2], "r");
    if (!in) {
        zmq_close(s);
        return 2;
    }
    size_t cap = 1024, n = 0;
    s_want_t *want = malloc(cap * sizeof *want);
    char line[512], kind[4], id[64], a2[128], a3[128];
    long activities = 0, lost = 0, checked = 0;
    const crm_entity_t *cust = crm_entity_by_name("customer");
    const crm_entity_t *act = crm_entity_by_name("activity");
    while (fgets(line, sizeof line, in)) {
        int f = sscanf(line, "%3s %63s %127s %127s", kind, id, a2, a3);
        if (f < 3 || !strcmp(kind, "?"))
            continue;
        if (!strcmp(kind, "a")) { /* activities: check at once */
            s_req_t q;
            s_entity_req(&q, CRM__OP__OP_ENTITY_GET, "activity", id, NULL);
            Crm__Reply *r = s_call(s, &q.req, 5000);
            ProtobufCMessage *rec = s_record(r, act);
            if (!rec || strcmp(crm_record_get_str(rec, "customer_id"), a2)) {
                printf("lost: activity %s of %s (%s)\n", id, a2,
                       r ? crm_err_name(r->status) : "no reply");
                lost++;
            }
            activities++;
            crm_proto_free(&rec);
            crm_proto_free((ProtobufCMessage **)&r);
            continue;
        }
        size_t i = 0;
        while (i < n && strcmp(want[i].id, id))
            i++;
        if (i == n) {
            if (n == cap)
                want = realloc(want, (cap *= 2) * sizeof *want);
            n++;
            snprintf(want[i].id, sizeof want[i].id, "%s", id);
            want[i].version = 0;
        }
        uint64_t v = !strcmp(kind, "c") ? 1 : strtoull(a2, NULL, 10);
        if (v >= want[i].version) {
            want[i].version = v;
            snprintf(want[i].name, sizeof want[i].name, "%s", !strcmp(kind, "c") ? a2 : a3);
        }
    }
    fclose(in);
    for (size_t i = 0; i < n; i++) {
        s_req_t q;
        s_entity_req(&q, CRM__OP__OP_ENTITY_GET, "customer", want[i].id, NULL);
        Crm__Reply *r = s_call(s, &q.req, 5000);
        ProtobufCMessage *rec = s_record(r, cust);
        uint64_t have = rec ? crm_record_get_u64(rec, "version") : 0;
        if (!rec || have < want[i].version ||
            (have == want[i].version && strcmp(crm_record_get_str(rec, "name"), want[i].name))) {
            printf("lost: customer %s at version %llu '%s' (have %s version %llu '%s')\n",
                   want[i].id, (unsigned long long)want[i].version, want[i].name,
                   r ? crm_err_name(r->status) : "no reply", (unsigned long long)have,
                   rec ? crm_record_get_str(rec, "name") : "");
            lost++;
        }
        checked++;
        crm_proto_free(&rec);
        crm_proto_free((ProtobufCMessage **)&r);
    }
    free(want);
    printf("checked %ld customers and %ld activities: %ld lost\n", checked, activities, lost);
    zmq_close(s);
    return lost ? 1 : 0;
}

/* ==== hammer ==== */

typedef struct {
    const char *endpoint, *enroll, *read_id;
    FILE *out;
    pthread_mutex_t *lock;
    int64_t start, end;
    int64_t write_gap_us; /* a writer's least time between two creates (0: none) */
    const char *stop;     /* FAULTLOAD_STOP: a file whose existence ends the run early */
    int n;
} s_ham_t;

static void
s_ham_line(s_ham_t *h, char what, const Crm__Reply *r, int64_t t0)
{
    int64_t now = crm_time_mono_us();
    char msg[200];
    snprintf(msg, sizeof msg, "%s", r ? r->message : "");
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    pthread_mutex_lock(h->lock);
    int64_t wall_ms = crm_time_now_ms() - (now - t0) / 1000; /* when it was sent */
    fprintf(h->out, "%lld %c %s %lld %s\n", (long long)wall_ms, what,
            r ? crm_err_name(r->status) : "TIMEOUT", (long long)(now - t0) / 1000, msg);
    fflush(h->out); /* the test reads the lines as they come */
    pthread_mutex_unlock(h->lock);
}

static void *
s_ham_thread(void *arg)
{
    s_ham_t *h = arg;
    void *s = s_connect(h->endpoint, h->enroll);
    const crm_entity_t *e = crm_entity_by_name("customer");
    int64_t next = 0;
    for (uint64_t i = 1; crm_time_mono_us() < h->end && !(h->stop && access(h->stop, F_OK) == 0);
         i++) {
        s_req_t q;
        int64_t t0 = crm_time_mono_us();
        if (!h->read_id && h->write_gap_us > 0) {
            if (t0 < next)
                usleep((useconds_t)(next - t0));
            t0 = crm_time_mono_us();
            next = t0 + h->write_gap_us;
        }
        if (h->read_id && !strncmp(h->read_id, "email:", 6)) {
            ProtobufCMessage *c = crm_proto_new(e->desc);
            char errbuf[CRM_ERRBUF];
            crm_record_set_str(c, "name", "hammer email probe");
            crm_record_set_text(c, crm_record_field(e->desc, "emails"), h->read_id + 6, false, errbuf);
            s_entity_req(&q, CRM__OP__OP_ENTITY_CREATE, "customer", NULL, c);
            crm_proto_free(&c);
        } else if (h->read_id && !strncmp(h->read_id, "search:", 7)) {
            s_entity_req(&q, CRM__OP__OP_ENTITY_SEARCH, "customer", NULL, NULL);
            q.er.text = (char *)h->read_id + 7;
        } else if (h->read_id) {
            s_entity_req(&q, CRM__OP__OP_ENTITY_GET, "customer", h->read_id, NULL);
        } else {
            ProtobufCMessage *c = crm_proto_new(e->desc);
            char name[64];
            snprintf(name, sizeof name, "hammer-%d-%llu", h->n, (unsigned long long)i);
            crm_record_set_str(c, "name", name);
            s_entity_req(&q, CRM__OP__OP_ENTITY_CREATE, "customer", NULL, c);
            crm_proto_free(&c);
        }
        q.req.id = i;
        Crm__Reply *r = s_call(s, &q.req, 3000);
        s_req_release(&q);
        s_ham_line(h, h->read_id ? 'r' : 'w', r, t0);
        if (!r) { /* a late reply must not be taken for the next one's */
            zmq_close(s);
            s = s_connect(h->endpoint, h->enroll);
        } else if (r->status != CRM__ERROR_CODE__OK && !h->read_id) {
            usleep(20000); /* a refused writer retries, as a client would, not in a spin */
        }
        crm_proto_free((ProtobufCMessage **)&r);
    }
    zmq_close(s);
    return NULL;
}

static int
s_hammer(char **argv)
{
    int writers = atoi(argv[3]);
    if (writers < 1 || writers > 32)
        return 2;
    FILE *out = fopen(argv[2], "w");
    if (!out)
        return 2;
    /* the customer the reader reads: READ_ID, or one created here */
    void *s = s_connect(argv[0], argv[1]);
    char id[64];
    int st;
    if (argv[5])
        snprintf(id, sizeof id, "%s", argv[5]);
    else if (!s_create_customer(s, "hammer-read", id, 1, 5000, &st)) {
        fprintf(stderr, "faultload: cannot create the customer to read (%d)\n", st);
        zmq_close(s);
        fclose(out);
        return 1;
    }
    zmq_close(s);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    s_ham_t h[33];
    pthread_t th[33];
    int64_t start = crm_time_mono_us(), end = start + atoi(argv[4]) * 1000000LL;
    const char *rate = getenv("FAULTLOAD_WRITE_RATE");
    int64_t gap = rate && atoi(rate) > 0 ? 1000000LL * writers / atoi(rate) : 0;
    const char *stop = getenv("FAULTLOAD_STOP");
    for (int i = 0; i <= writers; i++) {
        h[i] = (s_ham_t){argv[0], argv[1], i == writers ? id : NULL, out, &lock, start, end,
                         gap, stop && *stop ? stop : NULL, i};
        pthread_create(&th[i], NULL, s_ham_thread, &h[i]);
    }
    for (int i = 0; i <= writers; i++)
        pthread_join(th[i], NULL);
    fclose(out);
    return 0;
}

/* ==== restate ==== */

static void
s_ctl(const char *path, const char *what)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", what);
        fclose(f);
    }
}

static int
s_restate(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    pid_t pid = (pid_t)atoi(argv[2]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    char id[64];
    int st;
    if (!s_create_customer(s, "restate", id, 1, 5000, &st)) {
        fprintf(stderr, "faultload: create failed (%d)\n", st);
        zmq_close(s);
        return 2;
    }
    s_ctl(argv[3], argv[4]);
    usleep(100000); /* the ctl file's mtime must differ from any earlier one */
    kill(pid, SIGSTOP);
    s_req_t a, b;
    s_rename_req(&a, id, 1, "restated", 2); /* A: version 1 -> 2 */
    s_rename_req(&b, id, 2, "restated", 3); /* B: the same change, based on A's version */
    s_send(s, &a.req);
    s_send(s, &b.req);
    usleep(200000); /* both are on the wire before the server runs again */
    kill(pid, SIGCONT);
    Crm__Reply *r1 = s_recv(s, 5000), *r2 = s_recv(s, 5000);
    s_ctl(argv[3], "ok");
    Crm__Reply *ra = r1 && r1->id == 2 ? r1 : r2, *rb = r1 && r1->id == 3 ? r1 : r2;
    ProtobufCMessage *rec = s_record(rb, e);
    printf("A=%s B=%s B.version=%llu B.message=%s\n", ra ? crm_err_name(ra->status) : "NONE",
           rb ? crm_err_name(rb->status) : "NONE",
           (unsigned long long)(rec ? crm_record_get_u64(rec, "version") : 0),
           rb ? rb->message : "");
    crm_proto_free(&rec);
    crm_proto_free((ProtobufCMessage **)&r1);
    crm_proto_free((ProtobufCMessage **)&r2);
    s_req_release(&a);
    s_req_release(&b);
    zmq_close(s);
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *mode;
        int (*fn)(char **);
        int nargs;
        const char *usage;
    } modes[] = {
        {"mixed", s_mixed, 5, "ENDPOINT ENROLL ACKFILE TAG SECONDS"},
        {"verify", s_verify, 3, "ENDPOINT ENROLL ACKFILE"},
        {"hammer", s_hammer, 5, "ENDPOINT ENROLL OUTFILE WRITERS SECONDS [READ_ID]"},
        {"restate", s_restate, 5, "ENDPOINT ENROLL SERVER_PID CTLFILE FAULT"},
    };
    if (sodium_init() < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; argc >= 2 && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(argv[1], modes[i].mode) || argc < 2 + modes[i].nargs)
            continue;
        s_ctx = zmq_ctx_new();
        int rc = modes[i].fn(argv + 2);
        zmq_ctx_term(s_ctx);
        return rc;
    }
    fprintf(stderr, "usage: crm-faultload MODE ARGS\n");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        fprintf(stderr, "  %s %s\n", modes[i].mode, modes[i].usage);
    return 2;
}
