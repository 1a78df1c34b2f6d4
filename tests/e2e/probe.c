/*  =========================================================================
    crm-probe - a misbehaving client for the end-to-end tests

    Speaks to crmd the ways a real client never does: plaintext, garbage,
    extra frames, oversized frames, an endless multipart message, forged
    enrollments. Every loop is bounded in count and time. Prints what it saw
    and exits 0 when the server behaved as the mode expects, 1 otherwise.
    =========================================================================
*/
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "crm.pb-c.h"
#include "crm_keys.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"

static void *s_ctx;
static uint64_t s_last_id; /* the id of the last reply s_reply() read */

static void *
s_connect(const char *endpoint, const char *enroll_path)
{
    void *s = zmq_socket(s_ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (enroll_path) {
        crm_enroll_t e;
        char errbuf[CRM_ERRBUF];
        if (crm_enroll_load(enroll_path, &e, errbuf) != CRM_OK) {
            fprintf(stderr, "probe: %s\n", errbuf);
            exit(2);
        }
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, e.server_pub, 32);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, e.keys.pub, 32);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, e.keys.sec, 32);
    }
    zmq_connect(s, endpoint);
    return s;
}

static uint8_t *
s_ping(size_t *len)
{
    Crm__Request req = CRM__REQUEST__INIT;
    req.id = 7;
    req.op = CRM__OP__OP_PING;
    return crm_proto_pack(&req.base, len);
}

/* Wait for one reply; returns its status, or -1 if none came within MS. */
static int
s_reply(void *s, int ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return -1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, s, 0);
    Crm__Reply *r = NULL;
    char errbuf[CRM_ERRBUF];
    int status = -2;
    if (crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                         (ProtobufCMessage **)&r, errbuf) == CRM_OK) {
        status = r->status;
        s_last_id = r->id;
        printf("reply id=%llu status=%s message=%s\n", (unsigned long long)r->id,
               crm_err_name(r->status), r->message);
        crm_proto_free((ProtobufCMessage **)&r);
    }
    zmq_msg_close(&m);
    return status;
}

static int
s_expect_none(void *s, int ms)
{
    int st = s_reply(s, ms);
    printf(st == -1 ? "no reply\n" : "unexpected reply\n");
    return st == -1 ? 0 : 1;
}

/* plaintext: no CURVE at all */
static int
s_plaintext(char **argv)
{
    void *s = s_connect(argv[0], NULL);
    size_t len;
    uint8_t *buf = s_ping(&len);
    zmq_send(s, buf, len, 0);
    free(buf);
    int rc = s_expect_none(s, 2000);
    zmq_close(s);
    return rc;
}

/* garbage: bytes that are no protobuf message -> INVALID_ARGUMENT */
static int
s_garbage(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x13, 0x37};
    zmq_send(s, junk, sizeof junk, 0);
    int st1 = s_reply(s, 5000);
    zmq_send(s, "", 0, 0); /* an empty frame */
    int st2 = s_reply(s, 5000);
    zmq_close(s);
    return st1 == CRM__ERROR_CODE__INVALID_ARGUMENT && st2 == CRM__ERROR_CODE__INVALID_ARGUMENT
               ? 0
               : 1;
}

/* multiframe: a valid request followed by two extra frames -> INVALID_ARGUMENT */
static int
s_multiframe(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    size_t len;
    uint8_t *buf = s_ping(&len);
    zmq_send(s, buf, len, ZMQ_SNDMORE);
    zmq_send(s, "x", 1, ZMQ_SNDMORE);
    zmq_send(s, "y", 1, 0);
    free(buf);
    int st = s_reply(s, 5000);
    zmq_close(s);
    return st == CRM__ERROR_CODE__INVALID_ARGUMENT ? 0 : 1;
}

/* oversize BYTES: one frame larger than the server's cap -> dropped, no reply */
static int
s_oversize(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    size_t n = strtoull(argv[2], NULL, 10);
    uint8_t *big = calloc(1, n);
    zmq_send(s, big, n, 0);
    free(big);
    int rc = s_expect_none(s, 2000);
    zmq_close(s);
    return rc;
}

/* toolarge BYTES: a request over --max-msg but within libzmq's limit ->
   RESOURCE_EXHAUSTED carrying the request's id, and the connection stays */
static int
s_toolarge(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    size_t n = strtoull(argv[2], NULL, 10);
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__PingRequest ping = CRM__PING_REQUEST__INIT;
    char *note = malloc(n + 1);
    memset(note, 'x', n);
    note[n] = '\0';
    req.id = 4242;
    req.op = CRM__OP__OP_PING;
    req.body_case = CRM__REQUEST__BODY_PING;
    req.ping = &ping;
    ping.note = note;
    size_t len;
    uint8_t *buf = crm_proto_pack(&req.base, &len);
    zmq_send(s, buf, len, 0);
    free(buf);
    free(note);
    int st = s_reply(s, 5000);
    uint64_t id = s_last_id;
    /* the same connection still serves */
    buf = s_ping(&len);
    zmq_send(s, buf, len, 0);
    free(buf);
    int st2 = s_reply(s, 5000);
    zmq_close(s);
    return st == CRM__ERROR_CODE__RESOURCE_EXHAUSTED && id == 4242 && st2 == 0 ? 0 : 1;
}

/* badid: a frame whose id can be read but whose rest is garbage ->
   INVALID_ARGUMENT carrying that id */
static int
s_badid(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const uint8_t frame[] = {0x08, 0xb9, 0x60, 0x10, 0x01, 0x52, 0x7f, 0xff, 0xff};
    zmq_send(s, frame, sizeof frame, 0);
    int st = s_reply(s, 5000);
    zmq_close(s);
    return st == CRM__ERROR_CODE__INVALID_ARGUMENT && s_last_id == 12345 ? 0 : 1;
}

/* badop: a request naming an operation no server knows (999) -> INVALID_ARGUMENT naming it;
   one whose op is 2^63 (read by protobuf as its low 32 bits, 0) -> INVALID_ARGUMENT saying
   it names none, not "unknown operation 0"; both with their ids, and the connection serves
   a ping after them */
static int
s_badop(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    /* id 31, op 999 (0xe7 0x07) */
    const uint8_t unknown[] = {0x08, 0x1f, 0x10, 0xe7, 0x07};
    zmq_send(s, unknown, sizeof unknown, 0);
    int st1 = s_reply(s, 5000);
    uint64_t id1 = s_last_id;
    /* id 32, op 2^63: nine 0x80 bytes then 0x01 */
    const uint8_t huge[] = {0x08, 0x20, 0x10, 0x80, 0x80, 0x80, 0x80, 0x80,
                            0x80, 0x80, 0x80, 0x80, 0x01};
    zmq_send(s, huge, sizeof huge, 0);
    int st2 = s_reply(s, 5000);
    uint64_t id2 = s_last_id;
    size_t len;
    uint8_t *buf = s_ping(&len);
    zmq_send(s, buf, len, 0);
    free(buf);
    int st3 = s_reply(s, 5000);
    zmq_close(s);
    return st1 == CRM__ERROR_CODE__INVALID_ARGUMENT && id1 == 31 &&
                   st2 == CRM__ERROR_CODE__INVALID_ARGUMENT && id2 == 32 &&
                   st3 == CRM__ERROR_CODE__OK
               ? 0
               : 1;
}

/* nul: create a customer whose name holds a NUL byte (argv cannot carry one)
   -> INVALID_ARGUMENT naming the field, nothing created */
static int
s_nul(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "name", "Alice#Mallory");
    size_t rlen, len;
    uint8_t *rec = crm_proto_pack(c, &rlen);
    crm_proto_free(&c);
    uint8_t *hash = memchr(rec, '#', rlen);
    *hash = 0; /* "Alice\0Mallory": protobuf-c would store "Alice" */
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    req.id = 77;
    req.op = CRM__OP__OP_ENTITY_CREATE;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = &er;
    er.kind = (char *)"customer";
    er.record.data = rec;
    er.record.len = rlen;
    uint8_t *buf = crm_proto_pack(&req.base, &len);
    zmq_send(s, buf, len, 0);
    free(buf);
    free(rec);
    int st = s_reply(s, 5000);
    zmq_close(s);
    return st == CRM__ERROR_CODE__INVALID_ARGUMENT && s_last_id == 77 ? 0 : 1;
}

/* pingunder KEYS ROUNDS: bounded work per request. One connection sends a
   customer whose custom map has KEYS keys (far over the limit of 100), the
   other pings right behind it; prints the slowest ping of ROUNDS in ms. The
   map used to be checked pair by pair before its size: every client waited. */
static int
s_pingunder(char **argv)
{
    void *big = s_connect(argv[0], argv[1]), *pinger = s_connect(argv[0], argv[1]);
    int keys = atoi(argv[2]), rounds = atoi(argv[3]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    const ProtobufCFieldDescriptor *custom = crm_record_field(e->desc, "custom");
    const ProtobufCMessageDescriptor *sub = custom->descriptor;
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "name", "big map");
    ProtobufCMessage **entries = crm_proto_alloc((size_t)keys * sizeof *entries);
    for (int i = 0; i < keys; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        entries[i] = crm_proto_new(sub);
        *(char **)((char *)entries[i] + sub->fields[0].offset) = crm_proto_strdup(k);
        *(char **)((char *)entries[i] + sub->fields[1].offset) = crm_proto_strdup("v");
    }
    *(ProtobufCMessage ***)((char *)c + custom->offset) = entries;
    *(size_t *)((char *)c + custom->quantifier_offset) = (size_t)keys;
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    req.id = 5;
    req.op = CRM__OP__OP_ENTITY_CREATE;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = &er;
    er.kind = (char *)"customer";
    er.record.data = crm_proto_pack(c, &er.record.len);
    crm_proto_free(&c);
    size_t len, plen;
    uint8_t *frame = crm_proto_pack(&req.base, &len), *ping = s_ping(&plen);
    free(er.record.data);
    double worst = 0;
    int refused = 0;
    /* warm both connections up (handshakes) before measuring */
    zmq_send(pinger, ping, plen, 0);
    s_reply(pinger, 10000);
    zmq_send(big, ping, plen, 0);
    s_reply(big, 10000);
    for (int r = 0; r < rounds; r++) {
        zmq_send(big, frame, len, 0);
        int64_t t0 = crm_time_mono_us();
        zmq_send(pinger, ping, plen, 0);
        int st = s_reply(pinger, 10000);
        double ms = (double)(crm_time_mono_us() - t0) / 1000.0;
        if (st != 0)
            ms = 1e9;
        if (ms > worst)
            worst = ms;
        refused += s_reply(big, 10000) == CRM__ERROR_CODE__INVALID_ARGUMENT;
    }
    printf("pingunder: %d keys x %d rounds (%zu bytes each): %d refused, slowest ping %.1f ms\n",
           keys, rounds, len, refused, worst);
    free(frame);
    free(ping);
    zmq_close(big);
    zmq_close(pinger);
    return refused == rounds ? 0 : 1;
}

/* pings SECONDS STOPFILE: one connection pings, one ping at a time 2 ms
   apart, until SECONDS pass or STOPFILE exists; prints "ready" once
   connected (the caller waits for it before starting what the pings are
   to wait behind), then how many and the slowest in ms (what any client
   waited while others' requests ran). */
static int
s_pings(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    int64_t until = crm_time_mono_us() + (int64_t)(atof(argv[2]) * 1e6);
    size_t plen;
    uint8_t *ping = s_ping(&plen);
    zmq_send(s, ping, plen, 0); /* the handshake, not measured */
    int st = s_reply(s, 10000);
    if (st == 0) {
        printf("ready\n");
        fflush(stdout);
    }
    double worst = 0;
    int n = 0;
    while (st == 0 && crm_time_mono_us() < until && access(argv[3], F_OK) != 0) {
        int64_t t0 = crm_time_mono_us();
        zmq_send(s, ping, plen, 0);
        st = s_reply(s, 10000);
        double ms = (double)(crm_time_mono_us() - t0) / 1000.0;
        worst = ms > worst ? ms : worst;
        n++;
        usleep(2000);
    }
    printf("pings: %d, slowest %.1f ms\n", n, worst);
    free(ping);
    zmq_close(s);
    return st == 0 ? 0 : 1;
}

/* ==== A fake server that sends hostile text ====

   What a compromised server, a buggy one, or data stored before today's
   rules could send the client: terminal escapes, C1 controls, bidi
   overrides, line breaks in one-line fields, long multi-value cells, CJK.
   It holds DATADIR's server key, so an enrolled crm talks to it as to crmd. */

static ProtobufCMessage *
s_hostile_customer(void)
{
    const crm_entity_t *e = crm_entity_by_name("customer");
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "id", "c1");
    crm_record_set_u64(c, "version", 1);
    crm_record_set_str(c, "name", "Evil\x1b[2J\x1b[HBoss\nc2  forged  row");
    crm_record_set_str(c, "company", "\xc2\x9b" "31mACME\xe2\x80\xae" "gnp.exe");
    /* 41 bytes in a 42-byte buffer: the cell truncation wrote past it */
    static const char *const phones[] = {"100000001", "2000000002", "3000000003", "400000004"};
    for (size_t i = 0; i < 4; i++)
        crm_record_set_text(c, crm_record_field(e->desc, "phones"), phones[i], false, errbuf);
    crm_record_set_str(c, "city", "北京北京北京北京北京北京北京北京北京北京北京北京北京北京");
    crm_record_set_str(c, "address", "\x07" "bell\x7f\xe2\x81\xa6" "isolate\xff");
    crm_record_set_text(c, crm_record_field(e->desc, "custom"), "k=\x1b]0;title\x07", false,
                        errbuf);
    return c;
}

static ProtobufCMessage *
s_hostile_activity(void)
{
    const crm_entity_t *e = crm_entity_by_name("activity");
    ProtobufCMessage *a = crm_proto_new(e->desc);
    crm_record_set_str(a, "id", "a1");
    crm_record_set_u64(a, "version", 1);
    crm_record_set_str(a, "customer_id", "c1");
    crm_record_set_str(a, "summary", "call\x1b[1A\x1b[2Kforged\r2026-01-01  fake");
    crm_record_set_str(a, "body", "line1\nline2\x1b[31m\tend");
    crm_record_set_str(a, "author", "mallory\x1b[8m");
    return a;
}

static void
s_fake_send(void *router, zmq_msg_t *rid, Crm__Reply *reply)
{
    size_t len;
    uint8_t *buf = crm_proto_pack(&reply->base, &len);
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, rid);
    zmq_msg_send(&copy, router, ZMQ_SNDMORE);
    zmq_send(router, buf, len, 0);
    free(buf);
}

static void
s_fake_answer(void *router, zmq_msg_t *rid, const Crm__Request *req)
{
    Crm__Reply reply = CRM__REPLY__INIT;
    Crm__EntityReply er = CRM__ENTITY_REPLY__INIT;
    Crm__AuditReply ar = CRM__AUDIT_REPLY__INIT;
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT, *entries[1] = {&entry};
    Crm__FieldChange change = CRM__FIELD_CHANGE__INIT, *changes[1] = {&change};
    Crm__PingReply ping = CRM__PING_REPLY__INIT;
    Crm__WhoamiReply who = CRM__WHOAMI_REPLY__INIT;
    Crm__Progress progress = CRM__PROGRESS__INIT;
    Crm__Event ev = CRM__EVENT__INIT;
    Crm__EventPart part = CRM__EVENT_PART__INIT, *parts[1] = {&part};
    ProtobufCBinaryData rec = {0, NULL};
    ProtobufCMessage *m = NULL;
    char *fields[2] = {(char *)"name", (char *)"company"};
    reply.id = req->id;
    switch (req->op) {
    case CRM__OP__OP_PING:
        reply.body_case = CRM__REPLY__BODY_PING;
        reply.ping = &ping;
        ping.note = req->body_case == CRM__REQUEST__BODY_PING ? req->ping->note : (char *)"";
        ping.version = (char *)"6.6.6\x1b[31m";
        break;
    case CRM__OP__OP_WHOAMI:
        reply.body_case = CRM__REPLY__BODY_WHOAMI;
        reply.whoami = &who;
        who.user = (char *)"admin\x1b[2K\rroot";
        who.server_version = (char *)"\xc2\x9b" "2J";
        who.server_key = (char *)"";
        break;
    case CRM__OP__OP_ENTITY_GET:
    case CRM__OP__OP_ENTITY_LIST:
    case CRM__OP__OP_ENTITY_SEARCH:
        m = req->entity && !strcmp(req->entity->kind, "activity") ? s_hostile_activity()
                                                                   : s_hostile_customer();
        rec.data = crm_proto_pack(m, &rec.len);
        reply.body_case = CRM__REPLY__BODY_ENTITY;
        reply.entity = &er;
        er.kind = req->entity ? req->entity->kind : (char *)"customer";
        er.records = &rec;
        er.n_records = 1;
        er.next_after = (char *)"";
        break;
    case CRM__OP__OP_AUDIT_LIST:
    case CRM__OP__OP_HISTORY:
        reply.body_case = CRM__REPLY__BODY_AUDIT;
        reply.audit = &ar;
        ar.entries = entries;
        ar.n_entries = 1;
        entry.time = crm_time_now_ms();
        entry.user = (char *)"mallory\x1b[2K";
        entry.kind = (char *)"customer";
        entry.id = (char *)"c1";
        entry.action = (char *)"update";
        entry.reason = (char *)"why\nforged entry\xc2\x9b" "1m";
        entry.changes = changes;
        entry.n_changes = 1;
        change.field = (char *)"name";
        change.old_value = (char *)"a\x1b[2J";
        change.new_value = (char *)"b\n2026-01-01 00:00:00  admin  forged";
        break;
    case CRM__OP__OP_WATCH:
        reply.body_case = CRM__REPLY__BODY_PROGRESS;
        reply.progress = &progress;
        progress.seq = 4;
        progress.last = 4;
        s_fake_send(router, rid, &reply);
        /* then one change, as the feed sends it: reply id 0 */
        m = s_hostile_customer();
        crm__reply__init(&reply);
        reply.body_case = CRM__REPLY__BODY_EVENT;
        reply.event = &ev;
        ev.seq = 5;
        ev.time = crm_time_now_ms();
        ev.actor = (char *)"mallory\x1b[2K";
        part.kind = (char *)"customer";
        part.id = (char *)"c1\x1b[1A";
        part.op = CRM__CHANGE_OP__UPDATE;
        part.fields = fields;
        part.n_fields = 2;
        part.record.data = crm_proto_pack(m, &part.record.len);
        ev.parts = parts;
        ev.n_parts = 1;
        s_fake_send(router, rid, &reply);
        free(part.record.data);
        crm_proto_free(&m);
        return;
    default:
        reply.status = CRM__ERROR_CODE__INVALID_ARGUMENT;
        reply.message = (char *)"no customer 'c1\x1b[2J'\nforged: line \xc2\x9b" "31m";
        break;
    }
    s_fake_send(router, rid, &reply);
    free(rec.data);
    crm_proto_free(&m);
}

static int
s_fakeserver(char **argv)
{
    char path[4096], errbuf[CRM_ERRBUF], endpoint[256];
    crm_keypair_t keys;
    snprintf(path, sizeof path, "%s/server.key", argv[0]);
    if (crm_keys_load(path, &keys, errbuf) != CRM_OK) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return 2;
    }
    int one = 1, zero = 0;
    void *r = zmq_socket(s_ctx, ZMQ_ROUTER);
    zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, keys.sec, 32);
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(r, "tcp://127.0.0.1:*") != 0)
        return 2;
    size_t elen = sizeof endpoint;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, endpoint, &elen);
    printf("READY %s\n", endpoint);
    fflush(stdout);
    int64_t end = crm_time_mono_us() + (int64_t)atoi(argv[1]) * 1000000;
    while (crm_time_mono_us() < end) {
        zmq_pollitem_t it = {r, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, r, 0) >= 0 && zmq_msg_recv(&body, r, 0) >= 0) {
            Crm__Request *req = NULL;
            if (crm_proto_unpack(&crm__request__descriptor, zmq_msg_data(&body),
                                 zmq_msg_size(&body), (ProtobufCMessage **)&req,
                                 errbuf) == CRM_OK)
                s_fake_answer(r, &rid, req);
            crm_proto_free((ProtobufCMessage **)&req);
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    zmq_close(r);
    return 0;
}

/* ==== A raw CurveZMQ client (ZMTP 3.0 + RFC 26), for what libzmq won't send ====

   libzmq queues the frames of an unfinished multipart message inside the
   sender and never puts them on the wire, so an endless multipart message
   can only come from a peer that speaks the protocol itself - as an attacker
   would. This one does the greeting and handshake with libsodium, then
   streams MESSAGE commands with the MORE flag set. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    uint8_t cn_pub[32], cn_sec[32]; /* our transient keys */
    uint8_t sn_pub[32];             /* the server's transient key */
    uint8_t shared[32];             /* beforenm(C', S') */
    uint64_t nonce;                 /* our short nonce counter */
} s_raw_t;

static int
s_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
s_read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Send one ZMTP frame; COMMAND sets the command flag. */
static int
s_frame_send(int fd, const uint8_t *body, size_t n, bool command)
{
    uint8_t hdr[9];
    size_t h;
    if (n <= 255) {
        hdr[0] = command ? 0x04 : 0x00;
        hdr[1] = (uint8_t)n;
        h = 2;
    } else {
        hdr[0] = (command ? 0x04 : 0x00) | 0x02;
        for (int i = 0; i < 8; i++)
            hdr[1 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        h = 9;
    }
    return s_write_all(fd, hdr, h) == 0 && s_write_all(fd, body, n) == 0 ? 0 : -1;
}

/* Read one ZMTP frame into buf (at most cap bytes); returns its size or -1. */
static long
s_frame_recv(int fd, uint8_t *buf, size_t cap)
{
    uint8_t flags, len8[8];
    uint64_t n = 0;
    if (s_read_all(fd, &flags, 1) != 0)
        return -1;
    if (flags & 0x02) {
        if (s_read_all(fd, len8, 8) != 0)
            return -1;
        for (int i = 0; i < 8; i++)
            n = n << 8 | len8[i];
    } else {
        if (s_read_all(fd, len8, 1) != 0)
            return -1;
        n = len8[0];
    }
    if (n > cap || s_read_all(fd, buf, n) != 0)
        return -1;
    return (long)n;
}

static void
s_nonce(uint8_t out[24], const char prefix[16], uint64_t counter)
{
    memcpy(out, prefix, 16);
    for (int i = 0; i < 8; i++)
        out[16 + i] = (uint8_t)(counter >> (56 - 8 * i));
}

/* Connect and complete the CURVE handshake as the enrolled user. */
static int
s_raw_open(s_raw_t *r, const char *endpoint, const char *enroll_path)
{
    crm_enroll_t e;
    char errbuf[CRM_ERRBUF], host[64];
    int port;
    if (crm_enroll_load(enroll_path, &e, errbuf) != CRM_OK ||
        sscanf(endpoint, "tcp://%63[^:]:%d", host, &port) != 2)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(r->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    /* greeting: signature, version 3.0, mechanism, as-server, filler */
    uint8_t greet[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0};
    memcpy(greet + 12, "CURVE", 5);
    uint8_t peer[64];
    if (s_write_all(r->fd, greet, 64) != 0 || s_read_all(r->fd, peer, 64) != 0)
        return -1;
    crypto_box_keypair(r->cn_pub, r->cn_sec);
    r->nonce = 1;

    /* HELLO */
    uint8_t hello[200] = {0}, nonce[24], zeros[96] = {0}, box[96 + 32];
    memcpy(hello, "\x05HELLO", 6);
    hello[6] = 1;
    memcpy(hello + 80, r->cn_pub, 32);
    s_nonce(nonce, "CurveZMQHELLO---", r->nonce);
    memcpy(hello + 112, nonce + 16, 8);
    if (crypto_box_easy(box, zeros, 64, nonce, e.server_pub, r->cn_sec) != 0)
        return -1;
    memcpy(hello + 120, box, 80);
    r->nonce++;
    if (s_frame_send(r->fd, hello, sizeof hello, true) != 0)
        return -1;

    /* WELCOME: long nonce, Box[S' + cookie](S -> C') */
    uint8_t welcome[256], plain[256];
    long n = s_frame_recv(r->fd, welcome, sizeof welcome);
    if (n != 168 || memcmp(welcome, "\x07WELCOME", 8))
        return -1;
    memcpy(nonce, "WELCOME-", 8);
    memcpy(nonce + 8, welcome + 8, 16);
    if (crypto_box_open_easy(plain, welcome + 24, 144, nonce, e.server_pub, r->cn_sec) != 0)
        return -1;
    memcpy(r->sn_pub, plain, 32);
    uint8_t cookie[96];
    memcpy(cookie, plain + 32, 96);
    if (crypto_box_beforenm(r->shared, r->sn_pub, r->cn_sec) != 0)
        return -1;

    /* INITIATE: cookie, short nonce, Box[C + vouch + metadata](C' -> S') */
    uint8_t vouch_plain[64], vouch[16 + 80];
    memcpy(vouch_plain, r->cn_pub, 32);
    memcpy(vouch_plain + 32, e.server_pub, 32);
    memcpy(nonce, "VOUCH---", 8);
    randombytes_buf(nonce + 8, 16);
    memcpy(vouch, nonce + 8, 16);
    if (crypto_box_easy(vouch + 16, vouch_plain, 64, nonce, r->sn_pub, e.keys.sec) != 0)
        return -1;
    static const uint8_t meta[] = "\x0bSocket-Type\x00\x00\x00\x06" "DEALER";
    size_t mlen = sizeof meta - 1;
    uint8_t ini_plain[32 + 96 + 64], initiate[9 + 96 + 8 + sizeof ini_plain + 16];
    memcpy(ini_plain, e.keys.pub, 32);
    memcpy(ini_plain + 32, vouch, 96);
    memcpy(ini_plain + 128, meta, mlen);
    size_t plen = 128 + mlen;
    memcpy(initiate, "\x08INITIATE", 9);
    memcpy(initiate + 9, cookie, 96);
    s_nonce(nonce, "CurveZMQINITIATE", r->nonce);
    memcpy(initiate + 105, nonce + 16, 8);
    crypto_box_easy_afternm(initiate + 113, ini_plain, plen, nonce, r->shared);
    r->nonce++;
    if (s_frame_send(r->fd, initiate, 113 + plen + 16, true) != 0)
        return -1;
    /* READY, or ERROR if the key is refused */
    uint8_t ready[256];
    n = s_frame_recv(r->fd, ready, sizeof ready);
    sodium_memzero(&e, sizeof e);
    return n > 6 && !memcmp(ready, "\x05READY", 6) ? 0 : -1;
}

/* Send one encrypted frame with the MORE flag. */
static int
s_raw_send_more(s_raw_t *r, const uint8_t *payload, size_t n)
{
    uint8_t plain[1 + 64], out[16 + 1 + 64 + 16], nonce[24];
    plain[0] = 0x01; /* MORE */
    memcpy(plain + 1, payload, n);
    memcpy(out, "\x07MESSAGE", 8);
    s_nonce(nonce, "CurveZMQMESSAGEC", r->nonce++);
    memcpy(out + 8, nonce + 16, 8);
    crypto_box_easy_afternm(out + 16, plain, 1 + n, nonce, r->shared);
    return s_frame_send(r->fd, out, 16 + 1 + n + 16, false);
}

/* flood SECONDS: small frames with MORE set, never ending the message.
   Bounded: stops after SECONDS or 100 million frames, or when the server
   hangs up. */
static int
s_flood(char **argv)
{
    s_raw_t r;
    if (s_raw_open(&r, argv[0], argv[1]) != 0) {
        printf("handshake failed\n");
        return 1;
    }
    double secs = atof(argv[2]);
    int64_t end = crm_time_mono_us() + (int64_t)(secs * 1e6);
    uint8_t frame[8] = {0};
    unsigned long sent = 0;
    bool hung_up = false;
    while (sent < 100000000UL && crm_time_mono_us() < end) {
        if (s_raw_send_more(&r, frame, sizeof frame) != 0) {
            hung_up = true;
            break;
        }
        sent++;
    }
    printf("sent %lu frames%s\n", sent, hung_up ? "; the server hung up" : "");
    close(r.fd);
    return 0;
}

/* ==== increment: concurrent read-modify-write with retry on CONFLICT ==== */

#include <pthread.h>

#include "crm_entity.h"
#include "crm_record.h"

typedef struct {
    const char *endpoint, *enroll, *id, *key;
    int n;           /* increments to make */
    long conflicts;  /* CONFLICT replies seen */
    int failures;    /* increments that could not be made */
} s_inc_t;

/* One request/reply on S; returns the reply (caller frees) or NULL on timeout. */
static Crm__Reply *
s_call(void *s, Crm__Request *req)
{
    size_t len;
    uint8_t *buf = crm_proto_pack(&req->base, &len);
    zmq_send(s, buf, len, 0);
    free(buf);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 10000) <= 0)
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

static void *
s_inc_thread(void *arg)
{
    s_inc_t *t = arg;
    const crm_entity_t *e = crm_entity_by_name("customer");
    const ProtobufCFieldDescriptor *custom = crm_record_field(e->desc, "custom");
    void *s = s_connect(t->endpoint, t->enroll);
    int64_t deadline = crm_time_mono_us() + 120 * 1000000LL; /* bounded in time */
    for (int i = 0; i < t->n; i++) {
        bool done = false;
        for (int attempt = 0; !done && attempt < 10000 && crm_time_mono_us() < deadline;
             attempt++) {
            Crm__Request req = CRM__REQUEST__INIT;
            Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
            req.op = CRM__OP__OP_ENTITY_GET;
            req.body_case = CRM__REQUEST__BODY_ENTITY;
            req.entity = &er;
            er.kind = (char *)"customer";
            er.id = (char *)t->id;
            Crm__Reply *r = s_call(s, &req);
            if (!r || r->status != CRM__ERROR_CODE__OK || r->entity->n_records != 1) {
                crm_proto_free((ProtobufCMessage **)&r);
                break;
            }
            char errbuf[CRM_ERRBUF];
            ProtobufCMessage *rec = NULL;
            crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len,
                             &rec, errbuf);
            crm_proto_free((ProtobufCMessage **)&r);
            /* current value of custom[key] */
            long cur = 0;
            char *all = crm_record_format(rec, custom, false, false), *save = NULL;
            for (char *kv = strtok_r(all, ";", &save); kv; kv = strtok_r(NULL, ";", &save))
                if (!strncmp(kv, t->key, strlen(t->key)) && kv[strlen(t->key)] == '=')
                    cur = atol(kv + strlen(t->key) + 1);
            free(all);
            char kv[128];
            snprintf(kv, sizeof kv, "%s=%ld", t->key, cur + 1);
            crm_record_set_text(rec, custom, kv, false, errbuf);
            size_t len;
            uint8_t *packed = crm_proto_pack(rec, &len);
            char *fields[] = {(char *)"custom"};
            req.op = CRM__OP__OP_ENTITY_UPDATE;
            er.expect_version = crm_record_get_u64(rec, "version");
            er.record.data = packed;
            er.record.len = len;
            er.fields = fields;
            er.n_fields = 1;
            r = s_call(s, &req);
            free(packed);
            crm_proto_free(&rec);
            if (r && r->status == CRM__ERROR_CODE__OK)
                done = true;
            else if (r && r->status == CRM__ERROR_CODE__CONFLICT)
                t->conflicts++;
            else
                attempt = 10000; /* anything else: give up on this increment */
            crm_proto_free((ProtobufCMessage **)&r);
        }
        if (!done)
            t->failures++;
    }
    zmq_close(s);
    return NULL;
}

/* increment ENDPOINT ENROLL ID KEY CLIENTS N: CLIENTS threads each add 1 to
   custom[KEY] of customer ID N times, retrying on CONFLICT. */
static int
s_increment(char **argv)
{
    int clients = atoi(argv[4]), n = atoi(argv[5]);
    if (clients < 1 || clients > 64 || n < 1 || n > 10000)
        return 2;
    s_inc_t t[64];
    pthread_t th[64];
    for (int i = 0; i < clients; i++) {
        t[i] = (s_inc_t){argv[0], argv[1], argv[2], argv[3], n, 0, 0};
        pthread_create(&th[i], NULL, s_inc_thread, &t[i]);
    }
    long conflicts = 0;
    int failures = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        conflicts += t[i].conflicts;
        failures += t[i].failures;
    }
    printf("increments %d, conflicts retried %ld, failed %d\n", clients * n, conflicts, failures);
    return failures ? 1 : 0;
}

/* session ENDPOINT ENROLL GO_FILE: one connection, two whoami requests: the
   second after GO_FILE appears (at most 20 s later). Prints both statuses. */
static int
s_session(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_WHOAMI;
    Crm__Reply *r = s_call(s, &req);
    printf("first %s\n", r ? crm_err_name(r->status) : "none");
    fflush(stdout);
    crm_proto_free((ProtobufCMessage **)&r);
    int64_t end = crm_time_mono_us() + 20 * 1000000LL;
    while (access(argv[2], F_OK) != 0 && crm_time_mono_us() < end)
        usleep(20000);
    r = s_call(s, &req);
    printf("second %s %s\n", r ? crm_err_name(r->status) : "none", r ? r->message : "");
    crm_proto_free((ProtobufCMessage **)&r);
    zmq_close(s);
    return 0;
}

/* A packed request (request id ID) creating a customer named NAME. */
static uint8_t *
s_create_packed(const char *name, uint64_t id, size_t *len)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    ProtobufCMessage *c = crm_proto_new(crm_entity_by_name("customer")->desc);
    crm_record_set_str(c, "name", name);
    er.kind = (char *)"customer";
    er.record.data = crm_proto_pack(c, &er.record.len);
    crm_proto_free(&c);
    Crm__Request create = CRM__REQUEST__INIT;
    create.id = id;
    create.op = CRM__OP__OP_ENTITY_CREATE;
    create.body_case = CRM__REQUEST__BODY_ENTITY;
    create.entity = &er;
    uint8_t *buf = crm_proto_pack(&create.base, len);
    free(er.record.data);
    return buf;
}

/* Count the change events (of records of KIND, or of any when NULL) that reach S within MS. */
static int
s_count_events(void *s, const char *kind, int ms)
{
    int events = 0;
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int64_t end = crm_time_mono_us() + (int64_t)ms * 1000;
    while (crm_time_mono_us() < end) {
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        Crm__Reply *r = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             (ProtobufCMessage **)&r, errbuf) == CRM_OK &&
            r->body_case == CRM__REPLY__BODY_EVENT &&
            (!kind || (r->event->n_parts && !strcmp(r->event->parts[0]->kind, kind))))
            events++;
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
    }
    return events;
}

/* REQ: a WATCH request with id ID and the defaults of W (from now, everything
   the user may see), which the caller may change before sending. */
static void
s_watch_request(Crm__Request *req, Crm__WatchRequest *w, uint64_t id)
{
    crm__request__init(req);
    crm__watch_request__init(w);
    req->id = id;
    req->op = CRM__OP__OP_WATCH;
    req->body_case = CRM__REQUEST__BODY_WATCH;
    req->watch = w;
}

/* watchtwice ENDPOINT ENROLL: WATCH twice on one connection, then create a
   customer and count how often its event arrives (must be once). */
static int
s_watchtwice(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    Crm__Request req;
    Crm__WatchRequest w;
    s_watch_request(&req, &w, 0);
    for (int i = 0; i < 2; i++) {
        req.id = 100 + (uint64_t)i;
        Crm__Reply *r = s_call(s, &req);
        crm_proto_free((ProtobufCMessage **)&r);
    }
    size_t len;
    uint8_t *buf = s_create_packed("watched twice", 200, &len);
    zmq_send(s, buf, len, 0);
    free(buf);
    int events = s_count_events(s, "customer", 1500);
    printf("events %d\n", events);
    zmq_close(s);
    return events == 1 ? 0 : 1;
}

/* replay ENDPOINT ENROLL SINCE BATCH: WATCH from SINCE, batched (BATCH 1:
   WatchRequest.batch) or not, and read until the progress markers say the
   newest change was reached (or 30 s pass). Checks the sequence numbers:
   each exactly once, rising (an admin may see every change: a hole is a loss;
   so is a reply that does not decode). Prints "events N replies M most K
   holes H repeats R ms T"; exits 0 when the newest change arrived with no
   hole or repeat. */
static int
s_replay(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    Crm__Request req;
    Crm__WatchRequest w;
    s_watch_request(&req, &w, 7);
    w.since = strtoull(argv[2], NULL, 10);
    w.since_set = true;
    w.batch = atoi(argv[3]) != 0;
    int64_t start = crm_time_mono_us(), end = start + 30 * 1000000LL;
    Crm__Reply *r = s_call(s, &req);
    if (!r || r->status != CRM__ERROR_CODE__OK || r->body_case != CRM__REPLY__BODY_PROGRESS) {
        printf("watch failed: %s\n", r ? r->message : "no answer");
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_close(s);
        return 1;
    }
    uint64_t last = w.since, newest = r->progress->last, events = 0, replies = 0, most = 0,
             holes = 0, repeats = 0;
    crm_proto_free((ProtobufCMessage **)&r);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    while (last < newest && crm_time_mono_us() < end) {
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             (ProtobufCMessage **)&r, errbuf) == CRM_OK) {
            Crm__Event **evs;
            size_t n = crm_proto_reply_events(r, &evs);
            if (n && !w.batch && r->body_case != CRM__REPLY__BODY_EVENT)
                holes++; /* events an unbatched watch cannot read: lost to it */
            replies += n > 0;
            most = n > most ? n : most;
            for (size_t i = 0; i < n; i++) {
                if (evs[i]->seq <= last)
                    repeats++;
                else if (evs[i]->seq != last + 1)
                    holes++;
                last = evs[i]->seq > last ? evs[i]->seq : last;
                events++;
            }
            if (r->body_case == CRM__REPLY__BODY_PROGRESS && r->progress->seq > last)
                last = r->progress->seq; /* filtered out: none here */
        } else {
            holes++; /* a reply that does not decode: its events are lost */
        }
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
    }
    printf("events %llu replies %llu most %llu holes %llu repeats %llu ms %lld\n",
           (unsigned long long)events, (unsigned long long)replies, (unsigned long long)most,
           (unsigned long long)holes, (unsigned long long)repeats,
           (long long)((crm_time_mono_us() - start) / 1000));
    zmq_close(s);
    return last >= newest && !holes && !repeats ? 0 : 1;
}

/* Write WHAT to the faultfs control file PATH (a new file: the shim sees a new mtime). */
static void
s_set_fault(const char *path, const char *what)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%s\n", what);
        fclose(f);
        rename(tmp, path);
    }
}

/* watchfail ENDPOINT ENROLL CTLFILE: an audited (admin's) WATCH sent while
   the store's writes fail (faultfs CTLFILE: EIO), so its audit entry is not
   committed and the answer is an error; then, with writes working again, a
   customer created on another connection. The failed watcher must get no
   event. Prints "watch STATUS events N"; exits 0 when the WATCH failed and
   no event came. */
static int
s_watchfail(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    Crm__Request ping = CRM__REQUEST__INIT;
    ping.id = 1;
    ping.op = CRM__OP__OP_PING;
    Crm__Reply *r = s_call(s, &ping); /* connected and authenticated first */
    crm_proto_free((ProtobufCMessage **)&r);
    s_set_fault(argv[2], "EIO");
    usleep(50000);
    Crm__Request req;
    Crm__WatchRequest w;
    s_watch_request(&req, &w, 300);
    r = s_call(s, &req);
    int status = r ? (int)r->status : -1;
    char what[400];
    snprintf(what, sizeof what, "%s %.300s", r ? crm_err_name(r->status) : "none",
             r ? r->message : "");
    crm_proto_free((ProtobufCMessage **)&r);
    s_set_fault(argv[2], "ok");
    /* another connection creates a customer, retrying until writes work again */
    void *w2 = s_connect(argv[0], argv[1]);
    bool created = false;
    for (int i = 0; i < 100 && !created; i++) {
        size_t len;
        uint8_t *buf = s_create_packed("after a failed watch", 400 + (uint64_t)i, &len);
        zmq_send(w2, buf, len, 0);
        free(buf);
        int st = s_reply(w2, 2000);
        if (st == -1)
            break; /* no answer: a late one must not be taken for the next */
        created = st == CRM__ERROR_CODE__OK;
        if (!created)
            usleep(100000);
    }
    zmq_close(w2);
    int events = s_count_events(s, NULL, 1500);
    printf("watch %s\ncreated %d events %d\n", what, created, events);
    zmq_close(s);
    return status > 0 && created && events == 0 ? 0 : 1;
}

/* ackwriter ENDPOINT ENROLL OUTFILE TAG PAUSE_US: create customers named TAG-N
   one at a time, PAUSE_US apart; after each acknowledged create append
   "ID NAME" to OUTFILE. Stops
   when a reply does not come within 1 s (the server died) or after 60 s. */
static int
s_ackwriter(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    FILE *out = fopen(argv[2], "a");
    const crm_entity_t *e = crm_entity_by_name("customer");
    int64_t end = crm_time_mono_us() + 60 * 1000000LL;
    int acked = 0;
    for (int n = 0; out && crm_time_mono_us() < end; n++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%d", argv[3], n);
        ProtobufCMessage *c = crm_proto_new(e->desc);
        crm_record_set_str(c, "name", name);
        Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
        er.kind = (char *)"customer";
        er.record.data = crm_proto_pack(c, &er.record.len);
        crm_proto_free(&c);
        Crm__Request req = CRM__REQUEST__INIT;
        req.id = (uint64_t)n + 1;
        req.op = CRM__OP__OP_ENTITY_CREATE;
        req.body_case = CRM__REQUEST__BODY_ENTITY;
        req.entity = &er;
        size_t len;
        uint8_t *buf = crm_proto_pack(&req.base, &len);
        zmq_send(s, buf, len, 0);
        free(buf);
        free(er.record.data);
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 1000) <= 0)
            break; /* unknown outcome: not acknowledged, not recorded */
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        Crm__Reply *r = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             (ProtobufCMessage **)&r, errbuf) == CRM_OK &&
            r->status == CRM__ERROR_CODE__OK && r->entity && r->entity->n_records == 1) {
            ProtobufCMessage *made = NULL;
            if (crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len,
                                 &made, errbuf) == CRM_OK) {
                fprintf(out, "%s %s\n", crm_record_get_str(made, "id"), name);
                fflush(out);
                acked++;
            }
            crm_proto_free(&made);
        }
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
        usleep((useconds_t)atoi(argv[4]));
    }
    printf("acknowledged %d\n", acked);
    if (out)
        fclose(out);
    zmq_close(s);
    return 0;
}

/* forge IN OUT [server]: copy an enrollment with a fresh, unknown user keypair
   (or, with "server", a wrong server key) */
static int
s_forge(char **argv)
{
    crm_enroll_t e;
    char errbuf[CRM_ERRBUF];
    if (crm_enroll_load(argv[0], &e, errbuf) != CRM_OK) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return 2;
    }
    if (argv[2] && !strcmp(argv[2], "server"))
        randombytes_buf(e.server_pub, sizeof e.server_pub);
    else
        crm_keys_generate(&e.keys);
    if (crm_enroll_save(argv[1], &e, false, errbuf) != CRM_OK) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return 2;
    }
    return 0;
}

/* ==== Bounded audit queries (issue 14, item 1) ==== */

#include "audit.h"
#include "store.h"

/* fillaudit DATADIR N: N audit entries in a stopped data dir, written as a
   data dir of an older OneView held them - by time only, no by-user or
   by-department copies (crmd indexes them once at start). Every 1000th is by
   'salesguy' (sales), the rest by 'busy' (support). */
static int
s_fillaudit(char **argv)
{
    store_t *store = NULL;
    char errbuf[CRM_ERRBUF];
    long n = atol(argv[1]);
    /* with ID, each entry is also one of that record's history (key 'r'),
       an update that changed no field */
    const crm_entity_t *re = argv[2] ? crm_entity_by_prefix(argv[2][0]) : NULL;
    uint64_t rnum = re ? crm_entity_parse_id(re, argv[2]) : 0;
    if (argv[2] && !rnum) {
        fprintf(stderr, "probe: '%s' is not a record id\n", argv[2]);
        return 2;
    }
    if (store_open(argv[0], 0, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return 2;
    }
    store_group_t *g = store_group_new(store);
    store_group_delete(g, STORE_CF_META, "audit_index", 11);
    int64_t t0 = crm_time_now_ms() - n; /* one a millisecond, up to now */
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        bool sales = i % 1000 == 999;
        Crm__AuditEntry e = CRM__AUDIT_ENTRY__INIT;
        e.time = t0 + i;
        e.user = (char *)(sales ? "salesguy" : "busy");
        e.department = sales ? CRM__DEPARTMENT__SALES : CRM__DEPARTMENT__SUPPORT;
        e.role = CRM__ROLE__STAFF;
        e.action = (char *)"update";
        e.kind = (char *)"customer";
        e.id = rnum ? argv[2] : (char *)"c1";
        if (rnum) { /* as crmd writes it today: every index */
            e.kind = (char *)re->name;
            audit_stage(g, store, &e, re, rnum);
        } else { /* as an older OneView wrote it: by time only */
            size_t len;
            uint8_t *packed = crm_proto_pack(&e.base, &len), key[17];
            key[0] = 't';
            store_put_be64(key + 1, (uint64_t)e.time);
            store_put_be64(key + 9, store_next_unique(store));
            store_group_put(g, STORE_CF_AUDIT, key, sizeof key, packed, len);
            free(packed);
        }
        if (i % 10000 == 9999 && store_group_commit(g, errbuf) != CRM_OK)
            rc = 1;
    }
    if (rc == 0 && store_group_commit(g, errbuf) != CRM_OK)
        rc = 1;
    if (rc)
        fprintf(stderr, "probe: %s\n", errbuf);
    store_group_destroy(&g);
    store_destroy(&store);
    printf("fillaudit: %ld entries\n", n);
    return rc;
}

/* ROUNDS times: Q sends REQ (an audit or history query) and PINGER pings
   right behind it; prints what the query found and the slowest of each. */
static int
s_under(void *q, void *pinger, Crm__Request *req, const char *what, int rounds)
{
    size_t len, plen;
    uint8_t *frame = crm_proto_pack(&req->base, &len), *ping = s_ping(&plen);
    zmq_send(pinger, ping, plen, 0); /* handshakes first */
    s_reply(pinger, 10000);
    zmq_send(q, ping, plen, 0);
    s_reply(q, 10000);
    double worst = 0, qworst = 0;
    size_t entries = 0;
    int cut = -1, bad = 0;
    for (int r = 0; r < rounds; r++) {
        zmq_send(q, frame, len, 0);
        int64_t t0 = crm_time_mono_us();
        zmq_send(pinger, ping, plen, 0);
        int st = s_reply(pinger, 10000);
        double ms = st != 0 ? 1e9 : (double)(crm_time_mono_us() - t0) / 1000.0;
        if (ms > worst)
            worst = ms;
        zmq_pollitem_t it = {q, 0, ZMQ_POLLIN, 0};
        zmq_msg_t m;
        zmq_msg_init(&m);
        Crm__Reply *rep = NULL;
        char errbuf[CRM_ERRBUF];
        int got = zmq_poll(&it, 1, 20000) > 0 && zmq_msg_recv(&m, q, 0) >= 0;
        double qms = (double)(crm_time_mono_us() - t0) / 1000.0;
        if (qms > qworst)
            qworst = qms;
        if (got &&
            crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             (ProtobufCMessage **)&rep, errbuf) == CRM_OK &&
            rep->status == 0 && rep->body_case == CRM__REPLY__BODY_AUDIT) {
            entries = rep->audit->n_entries;
            cut = rep->audit->cut;
        } else {
            bad++;
        }
        crm_proto_free((ProtobufCMessage **)&rep);
        zmq_msg_close(&m);
    }
    printf("%s: %zu entries, cut %d, %d failed; slowest query %.1f ms; slowest ping %.1f ms\n",
           what, entries, cut, bad, qworst, worst);
    free(frame);
    free(ping);
    zmq_close(q);
    zmq_close(pinger);
    return bad ? 1 : 0;
}

/* auditunder ENDPOINT ENROLL_AUDIT ENROLL_PING USER ROUNDS: the audit trail
   (of USER; "-" for no user filter) with a ping behind it. */
static int
s_auditunder(char **argv)
{
    void *q = s_connect(argv[0], argv[1]), *pinger = s_connect(argv[0], argv[2]);
    const char *user = strcmp(argv[3], "-") ? argv[3] : "";
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__AuditRequest ar = CRM__AUDIT_REQUEST__INIT;
    req.id = 9;
    req.op = CRM__OP__OP_AUDIT_LIST;
    req.body_case = CRM__REQUEST__BODY_AUDIT;
    req.audit = &ar;
    ar.user = (char *)user;
    ar.limit = 1000;
    char what[96];
    snprintf(what, sizeof what, "auditunder: user '%s'", user);
    return s_under(q, pinger, &req, what, atoi(argv[4]));
}

/* historyunder ENDPOINT ENROLL ID FIELD ROUNDS: one connection asks for the
   history of one FIELD of record ID, the other pings right behind it. A
   long-lived record's history may hold many entries that never touched the
   field: all are read to find the few that did (issue 14, item 1). */
static int
s_historyunder(char **argv)
{
    void *q = s_connect(argv[0], argv[1]), *pinger = s_connect(argv[0], argv[1]);
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__AuditRequest ar = CRM__AUDIT_REQUEST__INIT;
    req.id = 9;
    req.op = CRM__OP__OP_HISTORY;
    req.body_case = CRM__REQUEST__BODY_AUDIT;
    req.audit = &ar;
    ar.id = argv[2];
    ar.field = argv[3];
    ar.limit = 100;
    char what[96];
    snprintf(what, sizeof what, "historyunder: %.20s %.20s", argv[2], argv[3]);
    return s_under(q, pinger, &req, what, atoi(argv[4]));
}

/* padded ENDPOINT ENROLL ID VERSION FIELD VALUE: an update of customer ID at VERSION
   naming "phones" 65 times and then FIELD = VALUE (a request crm never sends): prints the
   status and message of the reply; exit 0 if it was refused. */
static int
s_padded(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *c = crm_proto_new(e->desc);
    char errbuf[CRM_ERRBUF];
    if (crm_record_set_text(c, crm_record_field(e->desc, argv[4]), argv[5], false, errbuf) !=
        CRM_OK) {
        printf("bad value: %s\n", errbuf);
        return 2;
    }
    char *fields[66];
    for (int i = 0; i < 65; i++)
        fields[i] = (char *)"phones";
    fields[65] = argv[4];
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    req.id = 7;
    req.op = CRM__OP__OP_ENTITY_UPDATE;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = &er;
    er.kind = (char *)"customer";
    er.id = argv[2];
    er.expect_version = strtoull(argv[3], NULL, 10);
    er.fields = fields;
    er.n_fields = 66;
    er.record.data = crm_proto_pack(c, &er.record.len);
    crm_proto_free(&c);
    Crm__Reply *r = s_call(s, &req);
    free(er.record.data);
    int rc = 1;
    if (!r)
        printf("no reply\n");
    else {
        printf("%s: %s\n", r->status ? crm_err_name(r->status) : "OK", r->message);
        rc = r->status ? 0 : 1;
    }
    crm_proto_free((ProtobufCMessage **)&r);
    zmq_close(s);
    return rc;
}

/* create ENDPOINT ENROLL KEY NAME: one customer create with idempotency key
   KEY ("-": none); prints "created ID" or the refusal. Run twice with one key,
   it must print the same id (issue 14, item 6). */
/* A request creating a customer NAME (REQ and ER filled; the caller frees
   er->record.data). */
static void
s_create_request(Crm__Request *req, Crm__EntityRequest *er, uint64_t id, const char *key,
                 const char *name)
{
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "name", name);
    crm__request__init(req);
    crm__entity_request__init(er);
    req->id = id;
    req->op = CRM__OP__OP_ENTITY_CREATE;
    req->idempotency_key = (char *)key;
    req->body_case = CRM__REQUEST__BODY_ENTITY;
    req->entity = er;
    er->kind = (char *)"customer";
    er->allow_duplicate = true;
    er->record.data = crm_proto_pack(c, &er->record.len);
    crm_proto_free(&c);
}

static int
s_create(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    Crm__Request req;
    Crm__EntityRequest er;
    /* a different id each run: a resend may have one */
    s_create_request(&req, &er, (uint64_t)crm_time_now_us(),
                     strcmp(argv[2], "-") ? argv[2] : "", argv[3]);
    Crm__Reply *r = s_call(s, &req);
    free(er.record.data);
    int rc = 1;
    if (!r) {
        printf("no reply\n");
    } else if (r->status != 0) {
        printf("refused %s: %s\n", crm_err_name(r->status), r->message);
    } else if (r->body_case == CRM__REPLY__BODY_ENTITY && r->entity->n_records == 1 &&
               r->id == req.id) {
        ProtobufCMessage *got = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len,
                             &got, errbuf) == CRM_OK) {
            printf("created %s\n", crm_record_get_str(got, "id"));
            rc = 0;
        }
        crm_proto_free(&got);
    }
    crm_proto_free((ProtobufCMessage **)&r);
    zmq_close(s);
    return rc;
}

/* pipeline ENDPOINT ENROLL ID FIELD VALUE: a change of customer ID and a read of it
   sent together on one connection, without waiting between them: the change sets
   FIELD to VALUE (FIELD "-": deletes ID). Prints the replies as they came; exit 0
   if the change was answered first and the read saw it (VALUE, or NOT_FOUND), 3 if
   the change met another (CONFLICT: try again). */
static int
s_pipeline(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    bool del = !strcmp(argv[3], "-");
    const ProtobufCFieldDescriptor *f = del ? NULL : crm_record_field(e->desc, argv[3]);
    char errbuf[CRM_ERRBUF];
    Crm__Request get = CRM__REQUEST__INIT, change = CRM__REQUEST__INIT;
    Crm__EntityRequest gr = CRM__ENTITY_REQUEST__INIT, cr = CRM__ENTITY_REQUEST__INIT;
    get.op = CRM__OP__OP_ENTITY_GET;
    get.body_case = CRM__REQUEST__BODY_ENTITY;
    get.entity = &gr;
    gr.kind = (char *)"customer";
    gr.id = argv[2];
    Crm__Reply *r = s_call(s, &get); /* (its version, and the handshake) */
    ProtobufCMessage *rec = NULL;
    if (!r || r->status || r->entity->n_records != 1 ||
        crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len, &rec,
                         errbuf) != CRM_OK ||
        (!del && (!f || crm_record_set_text(rec, f, argv[4], false, errbuf) != CRM_OK))) {
        printf("cannot read customer %s or set %s\n", argv[2], argv[3]);
        crm_proto_free((ProtobufCMessage **)&r);
        crm_proto_free(&rec);
        zmq_close(s);
        return 2;
    }
    crm_proto_free((ProtobufCMessage **)&r);
    char *fields[] = {argv[3]};
    change.id = 1;
    change.op = del ? CRM__OP__OP_ENTITY_DELETE : CRM__OP__OP_ENTITY_UPDATE;
    change.body_case = CRM__REQUEST__BODY_ENTITY;
    change.entity = &cr;
    cr.kind = (char *)"customer";
    cr.id = argv[2];
    cr.expect_version = crm_record_get_u64(rec, "version");
    if (!del) {
        cr.record.data = crm_proto_pack(rec, &cr.record.len);
        cr.fields = fields;
        cr.n_fields = 1;
    }
    crm_proto_free(&rec);
    get.id = 2;
    size_t len[2];
    uint8_t *buf[2] = {crm_proto_pack(&change.base, &len[0]), crm_proto_pack(&get.base, &len[1])};
    free(cr.record.data);
    for (int i = 0; i < 2; i++) {
        zmq_send(s, buf[i], len[i], 0);
        free(buf[i]);
    }
    int order[2] = {0, 0}, got = 0;
    bool seen = false, conflict = false;
    for (; got < 2; got++) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20000) <= 0)
            break;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        r = NULL;
        crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                         (ProtobufCMessage **)&r, errbuf);
        zmq_msg_close(&m);
        if (!r)
            break;
        order[got] = (int)r->id;
        conflict |= r->id == 1 && r->status == CRM__ERROR_CODE__CONFLICT;
        printf("reply to %s: %s", r->id == 1 ? (del ? "the delete" : "the update") : "the read",
               r->status ? crm_err_name(r->status) : "OK");
        if (r->id == 2 && !r->status && r->entity->n_records == 1 && !del &&
            crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len,
                             &rec, errbuf) == CRM_OK) {
            char *v = crm_record_format(rec, f, false, false);
            printf(", %s = %s", argv[3], v);
            seen = !strcmp(v, argv[4]);
            free(v);
            crm_proto_free(&rec);
        } else if (r->id == 2 && del) {
            seen = r->status == CRM__ERROR_CODE__NOT_FOUND;
        }
        printf("\n");
        crm_proto_free((ProtobufCMessage **)&r);
    }
    zmq_close(s);
    if (conflict)
        return 3;
    return got == 2 && order[0] == 1 && order[1] == 2 && seen ? 0 : 1;
}

/* pull ENDPOINT ENROLL EPOCH: one replication pull from sequence 1 claiming EPOCH (what a
   replica identity could send); prints the answer's status and message. */
static int
s_pull(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__ReplPullRequest pr = CRM__REPL_PULL_REQUEST__INIT;
    req.id = 1;
    req.op = CRM__OP__OP_REPL_PULL;
    req.body_case = CRM__REQUEST__BODY_REPL_PULL;
    req.repl_pull = &pr;
    pr.from_seq = 1;
    pr.epoch = strtoull(argv[2], NULL, 10);
    uint8_t proof[CRM_EPOCH_PROOF_BYTES], key[32];
    crm_keypair_t kp;
    char errbuf[CRM_ERRBUF];
    if (argv[3]) { /* prove the epoch with the server key pair in that file */
        if (crm_keys_load(argv[3], &kp, errbuf) != CRM_OK) {
            fprintf(stderr, "%s\n", errbuf);
            return 2;
        }
        crm_epoch_key(kp.sec, key);
        crm_epoch_proof(key, pr.epoch, 0, proof);
        pr.epoch_proof.data = proof;
        pr.epoch_proof.len = sizeof proof;
    }
    Crm__Reply *r = s_call(s, &req);
    if (!r)
        printf("no reply\n");
    else
        printf("%s %s\n", r->status ? crm_err_name(r->status) : "OK", r->message);
    crm_proto_free((ProtobufCMessage **)&r);
    zmq_close(s);
    return 0;
}

/* seq ENDPOINT ENROLL ID OPS: the requests OPS names sent together on one connection,
   without waiting between them, their ids 1, 2...: 'u' sets customer ID's industry to
   "seqN" (N its id; at most one 'u'), 'g' reads customer ID, 'r' runs the summary report
   (on the server's helper thread), 'p' pings. Prints one line per reply as it came: the
   request's id and letter, its status, and for 'g' the industry it read. */
static int
s_seq(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    const crm_entity_t *e = crm_entity_by_name("customer");
    const ProtobufCFieldDescriptor *f = crm_record_field(e->desc, "industry");
    const char *ops = argv[3];
    size_t n = strlen(ops);
    char errbuf[CRM_ERRBUF];
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
    req.op = CRM__OP__OP_ENTITY_GET;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = &er;
    er.kind = (char *)"customer";
    er.id = argv[2];
    Crm__Reply *r = s_call(s, &req); /* (its version, and the handshake) */
    ProtobufCMessage *rec = NULL;
    if (n == 0 || n > 16 || !r || r->status || r->entity->n_records != 1 ||
        crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len, &rec,
                         errbuf) != CRM_OK) {
        printf("cannot read customer %s (or OPS is not 1-16 letters)\n", argv[2]);
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_close(s);
        return 2;
    }
    crm_proto_free((ProtobufCMessage **)&r);
    uint64_t version = crm_record_get_u64(rec, "version");
    for (size_t i = 0; i < n; i++) {
        Crm__Request q = CRM__REQUEST__INIT;
        Crm__EntityRequest qe = CRM__ENTITY_REQUEST__INIT;
        char *fields[] = {(char *)"industry"}, value[32];
        q.id = i + 1;
        q.op = CRM__OP__OP_PING;
        if (ops[i] == 'u' || ops[i] == 'g') {
            q.op = ops[i] == 'u' ? CRM__OP__OP_ENTITY_UPDATE : CRM__OP__OP_ENTITY_GET;
            q.body_case = CRM__REQUEST__BODY_ENTITY;
            q.entity = &qe;
            qe.kind = (char *)"customer";
            qe.id = argv[2];
        }
        if (ops[i] == 'u') {
            snprintf(value, sizeof value, "seq%zu", i + 1);
            crm_record_set_text(rec, f, value, false, errbuf);
            qe.expect_version = version;
            qe.record.data = crm_proto_pack(rec, &qe.record.len);
            qe.fields = fields;
            qe.n_fields = 1;
        } else if (ops[i] == 'r') {
            q.op = CRM__OP__OP_REPORT;
            q.body_case = CRM__REQUEST__BODY_REPORT;
            q.report = &rr;
            rr.name = (char *)"summary";
        }
        size_t len;
        uint8_t *buf = crm_proto_pack(&q.base, &len);
        zmq_send(s, buf, len, 0);
        free(buf);
        free(qe.record.data);
    }
    crm_proto_free(&rec);
    for (size_t got = 0; got < n; got++) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20000) <= 0) {
            printf("no reply\n");
            break;
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        r = NULL;
        crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                         (ProtobufCMessage **)&r, errbuf);
        zmq_msg_close(&m);
        if (!r || r->id < 1 || r->id > n) {
            printf("a reply to no request of ours\n");
            crm_proto_free((ProtobufCMessage **)&r);
            break;
        }
        char op = ops[r->id - 1];
        printf("%llu%c %s", (unsigned long long)r->id, op,
               r->status ? crm_err_name(r->status) : "OK");
        if (op == 'g' && !r->status && r->body_case == CRM__REPLY__BODY_ENTITY &&
            r->entity->n_records == 1 &&
            crm_proto_unpack(e->desc, r->entity->records[0].data, r->entity->records[0].len,
                             &rec, errbuf) == CRM_OK) {
            char *v = crm_record_format(rec, f, false, false);
            printf(" industry=%s", v);
            free(v);
            crm_proto_free(&rec);
        }
        printf("\n");
        crm_proto_free((ProtobufCMessage **)&r);
    }
    zmq_close(s);
    return 0;
}

/* ==== Limits (issue 14, item 5) ==== */

/* burst ENDPOINT ENROLL N: N pings sent at once on one connection; prints
   how many were answered OK and how many RESOURCE_EXHAUSTED. */
static int
s_burst(char **argv)
{
    void *s = s_connect(argv[0], argv[1]);
    int n = atoi(argv[2]), ok = 0, exhausted = 0, other = 0;
    size_t len, clen = 0;
    uint8_t *ping = s_ping(&len), *create = NULL;
    if (argv[3] && !strcmp(argv[3], "create")) { /* writes instead: one customer each */
        Crm__Request req;
        Crm__EntityRequest er;
        s_create_request(&req, &er, 7, "", "burst");
        create = crm_proto_pack(&req.base, &clen);
        free(er.record.data);
    }
    zmq_send(s, ping, len, 0); /* the handshake first */
    s_reply(s, 10000);
    for (int i = 0; i < n; i++)
        zmq_send(s, create ? create : ping, create ? clen : len, 0);
    for (int i = 0; i < n; i++) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10000) <= 0)
            break;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        Crm__Reply *r = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                             (ProtobufCMessage **)&r, errbuf) == CRM_OK) {
            if (r->status == 0)
                ok++;
            else if (r->status == CRM__ERROR_CODE__RESOURCE_EXHAUSTED && r->id == 7)
                exhausted++;
            else
                other++;
            if (r->status && exhausted + other == 1)
                fprintf(stderr, "first refusal: %s\n", r->message);
        }
        crm_proto_free((ProtobufCMessage **)&r);
        zmq_msg_close(&m);
    }
    printf("burst: %d sent, %d ok, %d exhausted, %d other\n", n, ok, exhausted, other);
    free(ping);
    free(create);
    zmq_close(s);
    return 0;
}

/* conns ENDPOINT N ENROLL...: N connections for each enrollment, opened and
   kept in that order, each sending one ping; prints each answer's status. */
static int
s_conns(char **argv)
{
    int n = atoi(argv[1]);
    void *socks[64];
    int k = 0;
    char line[64 * 24] = "";
    size_t used = 0;
    size_t len;
    uint8_t *ping = s_ping(&len);
    for (char **e = argv + 2; *e && k < 64; e++) {
        for (int i = 0; i < n && k < 64; i++, k++) {
            socks[k] = s_connect(argv[0], *e);
            zmq_send(socks[k], ping, len, 0);
            int st = s_reply(socks[k], 10000);
            used += (size_t)snprintf(line + used, sizeof line - used, " %s",
                                     st < 0 ? "NONE" : crm_err_name(st));
        }
    }
    printf("conns:%s\n", line);
    for (int i = 0; i < k; i++)
        zmq_close(socks[i]);
    free(ping);
    return 0;
}

/* handshakes ENDPOINT ENROLL SECONDS RATE: CURVE handshakes with unknown,
   fresh keys (the server's key from ENROLL), RATE a second for SECONDS; each
   connection lives while the next 64 are opened, long enough for the server
   to finish the handshake and refuse it. Prints how many were made. */
static int
s_handshakes(char **argv)
{
    crm_enroll_t e;
    char errbuf[CRM_ERRBUF];
    if (crm_enroll_load(argv[1], &e, errbuf) != CRM_OK) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return 2;
    }
    double secs = atof(argv[2]), rate = atof(argv[3]);
    enum { RING = 64 };
    void *ring[RING] = {NULL};
    long made = 0;
    int64_t start = crm_time_mono_us(), end = start + (int64_t)(secs * 1e6);
    while (crm_time_mono_us() < end && made < 10000000L) {
        int64_t due = start + (int64_t)((double)made * 1e6 / rate);
        int64_t now = crm_time_mono_us();
        if (due > now) {
            struct timespec ts = {0, (long)(due - now) * 1000};
            nanosleep(&ts, NULL);
        }
        int slot = (int)(made % RING);
        if (ring[slot])
            zmq_close(ring[slot]);
        uint8_t pub[32], sec[32];
        crypto_box_keypair(pub, sec);
        void *s = zmq_socket(s_ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, e.server_pub, 32);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 32);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 32);
        zmq_connect(s, argv[0]);
        ring[slot] = s;
        made++;
    }
    for (int i = 0; i < RING; i++)
        if (ring[i])
            zmq_close(ring[i]);
    printf("handshakes: %ld with unknown keys in %.1f s (%.0f/s)\n", made,
           (double)(crm_time_mono_us() - start) / 1e6,
           (double)made * 1e6 / (double)(crm_time_mono_us() - start));
    sodium_memzero(&e, sizeof e);
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
        {"plaintext", s_plaintext, 1, "ENDPOINT"},
        {"garbage", s_garbage, 2, "ENDPOINT ENROLL"},
        {"multiframe", s_multiframe, 2, "ENDPOINT ENROLL"},
        {"oversize", s_oversize, 3, "ENDPOINT ENROLL BYTES"},
        {"toolarge", s_toolarge, 3, "ENDPOINT ENROLL BYTES"},
        {"badid", s_badid, 2, "ENDPOINT ENROLL"},
        {"nul", s_nul, 2, "ENDPOINT ENROLL"},
        {"badop", s_badop, 2, "ENDPOINT ENROLL"},
        {"fakeserver", s_fakeserver, 2, "DATADIR SECONDS"},
        {"pingunder", s_pingunder, 4, "ENDPOINT ENROLL KEYS ROUNDS"},
        {"pings", s_pings, 4, "ENDPOINT ENROLL SECONDS STOPFILE"},
        {"create", s_create, 4, "ENDPOINT ENROLL KEY|- NAME"},
        {"padded", s_padded, 6, "ENDPOINT ENROLL ID VERSION FIELD VALUE"},
        {"burst", s_burst, 3, "ENDPOINT ENROLL N [create]"},
        {"pipeline", s_pipeline, 5, "ENDPOINT ENROLL ID FIELD|- VALUE"},
        {"seq", s_seq, 4, "ENDPOINT ENROLL ID OPS"},
        {"pull", s_pull, 3, "ENDPOINT ENROLL EPOCH [SERVER_KEY_FILE]"},
        {"conns", s_conns, 3, "ENDPOINT N ENROLL..."},
        {"handshakes", s_handshakes, 4, "ENDPOINT ENROLL SECONDS RATE"},
        {"fillaudit", s_fillaudit, 2, "DATADIR N [ID]"},
        {"auditunder", s_auditunder, 5, "ENDPOINT ENROLL_AUDIT ENROLL_PING USER|- ROUNDS"},
        {"historyunder", s_historyunder, 5, "ENDPOINT ENROLL ID FIELD ROUNDS"},
        {"flood", s_flood, 3, "ENDPOINT ENROLL SECONDS"},
        {"forge", s_forge, 2, "IN OUT [server]"},
        {"increment", s_increment, 6, "ENDPOINT ENROLL ID KEY CLIENTS N"},
        {"session", s_session, 3, "ENDPOINT ENROLL GO_FILE"},
        {"watchtwice", s_watchtwice, 2, "ENDPOINT ENROLL"},
        {"replay", s_replay, 4, "ENDPOINT ENROLL SINCE BATCH"},
        {"ackwriter", s_ackwriter, 5, "ENDPOINT ENROLL OUTFILE TAG PAUSE_US"},
        {"watchfail", s_watchfail, 3, "ENDPOINT ENROLL CTLFILE"},
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
    fprintf(stderr, "usage: crm-probe MODE ARGS\n");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        fprintf(stderr, "  %s %s\n", modes[i].mode, modes[i].usage);
    return 2;
}
