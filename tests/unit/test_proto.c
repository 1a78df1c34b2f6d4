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
        cmocka_unit_test(test_proto_budget_refuses_amplification),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
