/*  test_proto - unpacking untrusted bytes: round trip, malformed input, validation */
#include "test_common.h"

#include "crm_proto.h"

static uint8_t *
s_pack_ping(const char *note, Crm__Op op, size_t *len)
{
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__PingRequest ping = CRM__PING_REQUEST__INIT;
    req.id = 42;
    req.op = op;
    req.body_case = CRM__REQUEST__BODY_PING;
    req.ping = &ping;
    ping.note = (char *)note;
    return crm_proto_pack(&req.base, len);
}

static void
test_proto_round_trip(void **state)
{
    (void)state;
    size_t len;
    char errbuf[CRM_ERRBUF];
    uint8_t *buf = s_pack_ping("你好", CRM__OP__OP_PING, &len);
    Crm__Request *req = NULL;
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, buf, len,
                                      (ProtobufCMessage **)&req, errbuf),
                     CRM_OK);
    assert_int_equal(req->id, 42);
    assert_int_equal(req->op, CRM__OP__OP_PING);
    assert_int_equal(req->body_case, CRM__REQUEST__BODY_PING);
    assert_string_equal(req->ping->note, "你好");
    crm_proto_free((ProtobufCMessage **)&req);
    assert_null(req);
    free(buf);
}

static void
test_proto_rejects_malformed(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, garbage, sizeof garbage, &m,
                                      errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_non_null(strstr(errbuf, "malformed"));
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, garbage, 0, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "empty"));
    /* a length prefix promising more bytes than there are */
    const uint8_t truncated[] = {0x52, 0x7f, 0x0a};
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, truncated, sizeof truncated, &m,
                                      errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
}

static void
test_proto_rejects_bad_utf8(void **state)
{
    (void)state;
    size_t len;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    uint8_t *buf = s_pack_ping("ab\xff", CRM__OP__OP_PING, &len);
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, buf, len, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_non_null(strstr(errbuf, "'ping.note'"));
    assert_non_null(strstr(errbuf, "UTF-8"));
    free(buf);
}

/* protobuf-c would copy "ab\0cd" as "ab": a NUL inside a string is refused
   by its wire length, with the field named, not silently truncated. */
static void
test_proto_rejects_embedded_nul(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    /* Request{id=42, op=PING, ping{note="ab\0cd"}} */
    const uint8_t frame[] = {0x08, 42, 0x10, 1, 0x52, 7, 0x0a, 5, 'a', 'b', 0, 'c', 'd'};
    assert_int_equal(
        crm_proto_unpack_wire(&crm__request__descriptor, frame, sizeof frame, &m, errbuf),
        CRM_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_non_null(strstr(errbuf, "'ping.note'"));
    assert_non_null(strstr(errbuf, "NUL"));
    /* the same without the NUL decodes */
    const uint8_t clean[] = {0x08, 42, 0x10, 1, 0x52, 6, 0x0a, 4, 'a', 'b', 'c', 'd'};
    assert_int_equal(
        crm_proto_unpack_wire(&crm__request__descriptor, clean, sizeof clean, &m, errbuf), CRM_OK);
    crm_proto_free(&m);
    /* a C1 control (U+009B, an 8-bit CSI) or a bidi override is refused too */
    size_t len;
    uint8_t *buf = s_pack_ping("x\xc2\x9b" "2Jy", CRM__OP__OP_PING, &len);
    assert_int_equal(crm_proto_unpack_wire(&crm__request__descriptor, buf, len, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "U+009B"));
    /* ... but what older versions stored stays readable from the store */
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, buf, len, &m, errbuf), CRM_OK);
    crm_proto_free(&m);
    free(buf);
    buf = s_pack_ping("x\xe2\x80\xaey", CRM__OP__OP_PING, &len);
    assert_int_equal(crm_proto_unpack_wire(&crm__request__descriptor, buf, len, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "U+202E"));
    free(buf);
}

/* Bounded work: a repeated field over CRM_PROTO_MAX_REPEATED values is refused
   by one pass over the bytes, before anything is decoded. */
static void
test_proto_counts_before_decoding(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    for (int n = CRM_PROTO_MAX_REPEATED; n <= CRM_PROTO_MAX_REPEATED + 1; n++) {
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
        char **kinds = calloc((size_t)n, sizeof *kinds);
        for (int i = 0; i < n; i++)
            kinds[i] = (char *)"customer";
        req.op = CRM__OP__OP_WATCH;
        req.body_case = CRM__REQUEST__BODY_WATCH;
        req.watch = &w;
        w.kinds = kinds;
        w.n_kinds = (size_t)n;
        size_t len;
        uint8_t *buf = crm_proto_pack(&req.base, &len);
        crm_err_t rc = crm_proto_unpack_wire(&crm__request__descriptor, buf, len, &m, errbuf);
        if (n == CRM_PROTO_MAX_REPEATED) {
            assert_int_equal(rc, CRM_OK);
            crm_proto_free(&m);
        } else {
            assert_int_equal(rc, CRM_ERR_INVALID_ARGUMENT);
            assert_non_null(strstr(errbuf, "'watch.kinds' has more than"));
        }
        free(buf);
        free(kinds);
    }
}

/* The id of a request that does not decode is still found, so that the
   refusal can be matched to it. */
static void
test_proto_peek_id(void **state)
{
    (void)state;
    uint64_t id = 99;
    const uint8_t broken[] = {0x10, 1, 0x08, 0xb9, 0x60, 0x52, 0x7f, 0x0a};
    assert_true(crm_proto_peek_id(broken, sizeof broken, &id));
    assert_int_equal(id, 12345);
    const uint8_t noid[] = {0x10, 1, 0xff, 0xff};
    assert_false(crm_proto_peek_id(noid, sizeof noid, &id));
    assert_int_equal(id, 0);
    assert_false(crm_proto_peek_id(NULL, 0, &id));
    /* any varint field: a request's op (field 2) after its id and a string */
    uint64_t op = 0;
    const uint8_t req[] = {0x08, 0x07, 0x1a, 0x02, 'k', '1', 0x10, 40};
    assert_true(crm_proto_peek_varint(req, sizeof req, 2, &op));
    assert_int_equal(op, 40);
    assert_false(crm_proto_peek_varint(req, sizeof req, 4, &op));
}

/* A feed reply is built from events packed once (server/feed.c), each behind
   its field's tag and length (crm_proto_event_frame): byte for byte what
   protobuf-c packs for Reply{event} (the one-event reply older clients read)
   and for Reply{events: [e]}; frames one after another read as one Reply
   whose events come in order. */
static void
test_proto_reply_events(void **state)
{
    (void)state;
    uint8_t *all = NULL;
    size_t total = 0;
    char note[300];
    memset(note, 'x', sizeof note - 1); /* an event over 127 bytes: a 2-byte length */
    note[sizeof note - 1] = '\0';
    for (int i = 0; i < 3; i++) {
        Crm__Event ev = CRM__EVENT__INIT;
        Crm__Event *evp = &ev;
        ev.seq = 41 + (uint64_t)i;
        ev.actor = i == 1 ? note : (char *)"sa";
        size_t elen, one_len, many_len;
        uint8_t *packed = crm_proto_pack(&ev.base, &elen);
        Crm__Reply one = CRM__REPLY__INIT, many = CRM__REPLY__INIT;
        one.body_case = CRM__REPLY__BODY_EVENT;
        one.event = &ev;
        many.n_events = 1;
        many.events = &evp;
        uint8_t *want_one = crm_proto_pack(&one.base, &one_len);
        uint8_t *want_many = crm_proto_pack(&many.base, &many_len);
        uint8_t frame[512];
        assert_int_equal(crm_proto_event_frame(NULL, false, packed, elen), one_len);
        assert_int_equal(crm_proto_event_frame(frame, false, packed, elen), one_len);
        assert_memory_equal(frame, want_one, one_len);
        assert_int_equal(crm_proto_event_frame(NULL, true, packed, elen), many_len);
        all = realloc(all, total + many_len);
        assert_non_null(all);
        assert_int_equal(crm_proto_event_frame(all + total, true, packed, elen), many_len);
        assert_memory_equal(all + total, want_many, many_len);
        total += many_len;
        free(packed);
        free(want_one);
        free(want_many);
    }
    char errbuf[CRM_ERRBUF];
    Crm__Reply *r = NULL;
    assert_int_equal(crm_proto_unpack(&crm__reply__descriptor, all, total, (ProtobufCMessage **)&r,
                                      errbuf),
                     CRM_OK);
    Crm__Event **evs = NULL;
    assert_int_equal(crm_proto_reply_events(r, &evs), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evs[i]->seq, 41 + (uint64_t)i);
    assert_string_equal(evs[1]->actor, note);
    crm_proto_free((ProtobufCMessage **)&r);
    /* one event as an unbatched watch gets it */
    Crm__Event ev = CRM__EVENT__INIT;
    Crm__Reply single = CRM__REPLY__INIT;
    ev.seq = 7;
    single.body_case = CRM__REPLY__BODY_EVENT;
    single.event = &ev;
    assert_int_equal(crm_proto_reply_events(&single, &evs), 1);
    assert_int_equal(evs[0]->seq, 7);
    /* a progress marker carries none */
    Crm__Reply progress = CRM__REPLY__INIT;
    progress.body_case = CRM__REPLY__BODY_PROGRESS;
    assert_int_equal(crm_proto_reply_events(&progress, &evs), 0);
    /* a length of 2^28 takes a 5-byte varint (nothing is read with a NULL OUT) */
    assert_int_equal(crm_proto_event_frame(NULL, true, NULL, (size_t)1 << 28), 2 + 5 + ((size_t)1 << 28));
    assert_int_equal(crm_proto_event_frame(NULL, false, NULL, 127), 1 + 1 + 127);
    free(all);
}

static void
test_proto_rejects_unknown_enum_and_field(void **state)
{
    (void)state;
    size_t len;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    uint8_t *buf = s_pack_ping("x", (Crm__Op)99, &len);
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, buf, len, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "'op'"));
    free(buf);
    /* field 99 (varint) is not in Request */
    const uint8_t unknown[] = {0x08, 0x01, 0x98, 0x06, 0x05};
    assert_int_equal(crm_proto_unpack(&crm__request__descriptor, unknown, sizeof unknown, &m,
                                      errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "unknown field number 99"));
}

static void
test_proto_budget_refuses_amplification(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    /* EntityReply.results (field 4) holding N empty ImportResults: 2 bytes
       each on the wire, a struct, its block header and an array slot each
       when decoded - over 30x: 1 MB of them passes no budget of 16 MiB */
    enum { N = 500000 };
    uint8_t *buf = malloc(2 * N);
    for (int i = 0; i < N; i++) {
        buf[2 * i] = 0x22;
        buf[2 * i + 1] = 0x00;
    }
    assert_int_equal(crm_proto_unpack(&crm__entity_reply__descriptor, buf, 2 * N, &m, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_null(m);
    /* the same shape at a legitimate size decodes */
    assert_int_equal(crm_proto_unpack(&crm__entity_reply__descriptor, buf, 2 * 1000, &m, errbuf),
                     CRM_OK);
    assert_int_equal(((Crm__EntityReply *)m)->n_results, 1000);
    crm_proto_free(&m);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_round_trip),
        cmocka_unit_test(test_proto_rejects_malformed),
        cmocka_unit_test(test_proto_rejects_bad_utf8),
        cmocka_unit_test(test_proto_rejects_unknown_enum_and_field),
        cmocka_unit_test(test_proto_rejects_embedded_nul),
        cmocka_unit_test(test_proto_peek_id),
        cmocka_unit_test(test_proto_reply_events),
        cmocka_unit_test(test_proto_counts_before_decoding),
        cmocka_unit_test(test_proto_budget_refuses_amplification),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
