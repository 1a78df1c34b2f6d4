/*  test_agent - client/agent.c: the frames on the agent's socket, the id it swaps on
    each request and reply, and the place it keeps its socket (only a directory of
    this user's that nobody else can enter) */
#include "test_common.h"

#include <sodium.h>
#include <sys/stat.h>

#include "agent.h"
#include "crm_proto.h"

static void
test_agent_frames(void **state)
{
    (void)state;
    agent_buf_t b = {0};
    agent_frame_put(&b, 'R', "ab", 2, "cde", 3);
    agent_frame_put(&b, 'S', NULL, 0, NULL, 0);
    char type;
    const uint8_t *p;
    size_t len, used;
    assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), 1);
    assert_int_equal(type, 'R');
    assert_int_equal(len, 5);
    assert_memory_equal(p, "abcde", 5);
    assert_int_equal(used, 4 + 1 + 5);
    agent_buf_drop(&b, used);
    assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), 1);
    assert_int_equal(type, 'S');
    assert_int_equal(len, 0);
    agent_buf_drop(&b, used);
    assert_int_equal(b.len, 0);
    assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), 0);

    /* a frame arriving in pieces is whole only at its last byte */
    agent_buf_t whole = {0};
    agent_frame_put(&whole, 'R', NULL, 0, "xyz", 3);
    for (size_t i = 0; i < whole.len; i++) {
        b.len = 0;
        agent_frame_put(&b, 'R', NULL, 0, "xyz", 3);
        b.len = i;
        assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), 0);
    }
    agent_buf_free(&whole);

    /* lengths no agent or client writes: empty (no type) and beyond the largest reply */
    static const uint8_t empty[] = {0, 0, 0, 0, 'R'};
    static const uint8_t huge[] = {0x04, 0x00, 0x00, 0x11, 'R'}; /* 64 MiB + 17 */
    b.len = 0;
    agent_frame_put(&b, 'R', NULL, 0, NULL, 0);
    memcpy(b.data, empty, sizeof empty);
    assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), -1);
    memcpy(b.data, huge, sizeof huge);
    assert_int_equal(agent_frame_next(&b, &type, &p, &len, &used), -1);
    agent_buf_free(&b);
}

/* A packed request with ID and a body after it. */
static uint8_t *
s_request(uint64_t id, size_t *len)
{
    Crm__Request r = CRM__REQUEST__INIT;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    r.id = id;
    r.op = CRM__OP__OP_ENTITY_GET;
    r.idempotency_key = (char *)"k-123";
    r.body_case = CRM__REQUEST__BODY_ENTITY;
    r.entity = &er;
    er.id = (char *)"c42";
    return crm_proto_pack(&r.base, len);
}

static void
test_agent_swap_id(void **state)
{
    (void)state;
    static const uint64_t ids[][2] = {
        {1, 2}, {0x7f, 0x80}, {0xdeadbeefcafe0001ull, 3}, {5, UINT64_MAX}, {UINT64_MAX, 1}};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        size_t len;
        uint8_t *msg = s_request(ids[k][0], &len);
        uint8_t head[11];
        size_t hlen, rest;
        uint64_t old = 0;
        assert_true(agent_swap_id(msg, len, ids[k][1], &old, head, &hlen, &rest));
        assert_true(old == ids[k][0]);
        uint8_t *swapped = malloc(hlen + len - rest);
        memcpy(swapped, head, hlen);
        memcpy(swapped + hlen, msg + rest, len - rest);
        char errbuf[256];
        Crm__Request *r = NULL;
        assert_int_equal(crm_proto_unpack(&crm__request__descriptor, swapped, hlen + len - rest,
                                          (ProtobufCMessage **)&r, errbuf),
                         CRM_OK);
        assert_true(r->id == ids[k][1]);
        assert_int_equal(r->op, CRM__OP__OP_ENTITY_GET);
        assert_string_equal(r->idempotency_key, "k-123");
        assert_string_equal(r->entity->id, "c42");
        crm_proto_free((ProtobufCMessage **)&r);
        free(swapped);
        free(msg);
    }
    /* no id first (an event's reply has id 0, which is not packed): not swapped */
    size_t len;
    uint8_t *msg = s_request(0, &len);
    uint8_t head[11];
    size_t hlen, rest;
    uint64_t old;
    assert_false(agent_swap_id(msg, len, 9, &old, head, &hlen, &rest));
    free(msg);
    static const uint8_t cut[] = {0x08, 0xff, 0xff}; /* a varint that never ends */
    assert_false(agent_swap_id(cut, sizeof cut, 9, &old, head, &hlen, &rest));
}

static void
test_agent_path(void **state)
{
    (void)state;
    char *t = test_tmpdir();
    setenv("XDG_RUNTIME_DIR", t, 1);
    crm_enroll_t e = {0};
    randombytes_buf(e.server_pub, sizeof e.server_pub);
    randombytes_buf(e.keys.pub, sizeof e.keys.pub);
    char p1[108], p2[108], p3[108], err[512], dir[600];
    snprintf(dir, sizeof dir, "%s/crm", t);

    /* not there and not to be made: no path */
    assert_false(agent_path(&e, "tcp://127.0.0.1:5555", false, p1, sizeof p1, err, sizeof err));
    assert_true(agent_path(&e, "tcp://127.0.0.1:5555", true, p1, sizeof p1, err, sizeof err));
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_non_null(strstr(p1, "/crm/agent-"));
    /* the same enrollment and server: the same socket; another server or key: another */
    assert_true(agent_path(&e, "tcp://127.0.0.1:5555", false, p2, sizeof p2, err, sizeof err));
    assert_string_equal(p1, p2);
    assert_true(agent_path(&e, "tcp://127.0.0.1:5556", false, p3, sizeof p3, err, sizeof err));
    assert_string_not_equal(p1, p3);
    e.keys.pub[0] ^= 1;
    assert_true(agent_path(&e, "tcp://127.0.0.1:5555", false, p3, sizeof p3, err, sizeof err));
    assert_string_not_equal(p1, p3);

    /* a directory others can enter or write to is not used */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_false(agent_path(&e, "tcp://127.0.0.1:5555", true, p1, sizeof p1, err, sizeof err));
    assert_non_null(strstr(err, "closed to others"));
    assert_int_equal(chmod(dir, 0700), 0);
    /* nor another user's */
    if (getuid() == 0) {
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_false(agent_path(&e, "tcp://127.0.0.1:5555", true, p1, sizeof p1, err, sizeof err));
        assert_int_equal(chown(dir, 0, 0), 0);
    }
    /* nor a symbolic link to a directory, even a good one */
    char real[600];
    snprintf(real, sizeof real, "%s/real", t);
    assert_int_equal(rename(dir, real), 0);
    assert_int_equal(symlink(real, dir), 0);
    assert_false(agent_path(&e, "tcp://127.0.0.1:5555", true, p1, sizeof p1, err, sizeof err));
    unsetenv("XDG_RUNTIME_DIR");
    test_rmrf(t);
    free(t);
}

int
main(void)
{
    assert_true(sodium_init() >= 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_frames),
        cmocka_unit_test(test_agent_swap_id),
        cmocka_unit_test(test_agent_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
