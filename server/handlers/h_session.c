/*  h_session - ping and whoami: who am I talking to, is it alive */
#include "crm_time.h"
#include "dispatch.h"

crm_err_t
h_ping(req_ctx_t *ctx)
{
    crm__ping_reply__init(&ctx->body.ping);
    ctx->body.ping.server_time = crm_time_now_ms();
    ctx->body.ping.version = (char *)CRM_VERSION;
    if (ctx->req->body_case == CRM__REQUEST__BODY_PING)
        ctx->body.ping.note = ctx->req->ping->note;
    ctx->reply.body_case = CRM__REPLY__BODY_PING;
    ctx->reply.ping = &ctx->body.ping;
    return CRM_OK;
}

crm_err_t
h_whoami(req_ctx_t *ctx)
{
    const Crm__User *u = ctx->session.user;
    crm__whoami_reply__init(&ctx->body.whoami);
    ctx->body.whoami.user = u->name;
    ctx->body.whoami.department = u->department;
    ctx->body.whoami.role = u->role;
    ctx->body.whoami.server_version = (char *)CRM_VERSION;
    ctx->body.whoami.server_key = (char *)ctx->env->server_key;
    ctx->body.whoami.last_seq = store_last_seq(ctx->env->store);
    ctx->body.whoami.max_msg = ctx->env->max_msg;
    ctx->reply.body_case = CRM__REPLY__BODY_WHOAMI;
    ctx->reply.whoami = &ctx->body.whoami;
    return CRM_OK;
}
