/*  cmd_session - `crm ping` and `crm whoami` */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "conn.h"
#include "crm_time.h"

/* Send a body-less request OP and hand the reply to the caller. */
static int
s_call(cli_ctx_t *ctx, Crm__Request *req, conn_t **conn, Crm__Reply **reply)
{
    int rc = conn_open(ctx, conn);
    if (rc == EXIT_OK)
        rc = conn_call(*conn, req, reply);
    return rc;
}

static int
s_no_args(int argc, char **argv, const char *usage)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts(usage);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "crm %s: unexpected argument '%s'\n%s\n", argv[0], argv[1], usage);
        return EXIT_USAGE;
    }
    return -1;
}

int
cmd_ping(int argc, char **argv, cli_ctx_t *ctx)
{
    int rc = s_no_args(argc, argv, "usage: crm ping\n\nChecks that the server answers; prints "
                                   "the round-trip time.");
    if (rc >= 0)
        return rc;
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__PingRequest ping = CRM__PING_REQUEST__INIT;
    req.op = CRM__OP__OP_PING;
    req.body_case = CRM__REQUEST__BODY_PING;
    req.ping = &ping;
    ping.note = (char *)"ping";
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int64_t t0 = crm_time_mono_us();
    rc = s_call(ctx, &req, &conn, &reply);
    if (rc == EXIT_OK) {
        double ms = (double)(crm_time_mono_us() - t0) / 1000.0;
        if (reply->body_case != CRM__REPLY__BODY_PING || strcmp(reply->ping->note, "ping")) {
            fprintf(stderr, "crm: the server's ping reply did not echo the request\n");
            rc = EXIT_REFUSED;
        } else if (ctx->json)
            printf("{\"ok\":true,\"endpoint\":\"%s\",\"version\":\"%s\",\"ms\":%.3f}\n",
                   conn_endpoint(conn), reply->ping->version, ms);
        else
            printf("pong from %s (OneView %s) in %.2f ms\n", conn_endpoint(conn),
                   reply->ping->version, ms);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

int
cmd_whoami(int argc, char **argv, cli_ctx_t *ctx)
{
    int rc = s_no_args(argc, argv,
                       "usage: crm whoami\n\nShows who the server thinks you are: user, "
                       "department, role, and the server.");
    if (rc >= 0)
        return rc;
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_WHOAMI;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    rc = s_call(ctx, &req, &conn, &reply);
    if (rc == EXIT_OK && reply->body_case != CRM__REPLY__BODY_WHOAMI) {
        fprintf(stderr, "crm: the server sent no whoami answer\n");
        rc = EXIT_REFUSED;
    } else if (rc == EXIT_OK && ctx->json) {
        out_json(stdout, &reply->whoami->base);
    } else if (rc == EXIT_OK) {
        out_fields(stdout, &reply->whoami->base);
        printf("endpoint        %s\n", conn_endpoint(conn));
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}
