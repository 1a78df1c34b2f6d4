/*  =========================================================================
    bench-ping - the least a direct call to crmd can be

    Loads an enrollment file (the three keys, nothing else), opens a ZeroMQ
    context and a CURVE DEALER, connects, sends one PING request, waits at
    most 5 s for the reply and exits: 0 if a reply came. Links libzmq alone,
    so its start-up is libzmq's and the handshake's, not any of OneView's.
    tools/bench/compare times it beside `crm customer show`: the floor of a
    one-shot call made without `crm agent`.

      bench-ping ENDPOINT ENROLL

    Built by tools/bench/compare (needs libzmq), not by CMake.
    =========================================================================
*/
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-ping ENDPOINT ENROLL\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 2;
    }
    char line[256], srv[41] = "", pub[41] = "", sec[41] = "";
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "server_public = %40s", srv);
        sscanf(line, "public = %40s", pub);
        sscanf(line, "secret = %40s", sec);
    }
    fclose(f);
    if (strlen(srv) != 40 || strlen(pub) != 40 || strlen(sec) != 40) {
        fprintf(stderr, "bench-ping: %s: no server_public, public and secret keys\n", argv[2]);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_connect(s, argv[1]);
    /* Request { id: 7, op: OP_PING (1) }, packed by hand */
    const unsigned char ping[] = {0x08, 0x07, 0x10, 0x01};
    zmq_send(s, ping, sizeof ping, 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int ok = zmq_poll(&it, 1, 5000) == 1;
    char reply[512];
    ok = ok && zmq_recv(s, reply, sizeof reply, 0) > 0;
    zmq_close(s);
    zmq_ctx_term(ctx);
    return ok ? 0 : 1;
}
