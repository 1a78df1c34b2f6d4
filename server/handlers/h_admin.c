/*  h_admin - users: add, list, set (department, role, enabled), rotate-key.
    Admin only (OPF_ADMIN in ops.def); the work is users_apply(), shared with
    crm-admin on a stopped data dir. */
#include <stdlib.h>

#include "dispatch.h"
#include "users.h"

static void
s_reply_users(req_ctx_t *ctx, Crm__User **users, size_t n)
{
    crm__user_reply__init(&ctx->body.user);
    ctx->body.user.users = users;
    ctx->body.user.n_users = n;
    ctx->body.user.server_key = (char *)ctx->env->server_key;
    ctx->reply.body_case = CRM__REPLY__BODY_USER;
    ctx->reply.user = &ctx->body.user;
}

static crm_err_t
s_user_op(req_ctx_t *ctx, users_op_t op)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_USER)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no user");
    Crm__User *result = NULL;
    crm_err_t rc = users_apply(ctx->env->store, ctx->env->group, ctx->session.user, op,
                               ctx->req->user, &result, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    ctx->staged = true;
    Crm__User **one = dispatch_own(ctx, malloc(sizeof *one));
    one[0] = dispatch_own_msg(ctx, result);
    s_reply_users(ctx, one, 1);
    return CRM_OK;
}

crm_err_t
h_user_add(req_ctx_t *ctx)
{
    return s_user_op(ctx, USERS_ADD);
}

crm_err_t
h_user_set(req_ctx_t *ctx)
{
    return s_user_op(ctx, USERS_SET);
}

crm_err_t
h_user_rotate(req_ctx_t *ctx)
{
    return s_user_op(ctx, USERS_ROTATE);
}

crm_err_t
h_user_list(req_ctx_t *ctx)
{
    Crm__User **users = NULL;
    size_t n = 0;
    crm_err_t rc = users_list(ctx->env->store, &users, &n);
    dispatch_own(ctx, users);
    for (size_t i = 0; i < n; i++)
        dispatch_own_msg(ctx, users[i]);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read the users");
    s_reply_users(ctx, users, n);
    return CRM_OK;
}
