/*  h_feed - WATCH: subscribe this connection to the change feed (feed.c) */
#include "dispatch.h"
#include "feed.h"

crm_err_t
h_watch(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_WATCH)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no watch");
    uint64_t cursor = 0;
    crm_err_t rc = feed_watch(ctx->env->feed, ctx->env->rid, ctx->env->rid_len, ctx->req->id,
                              ctx->env->user_id, ctx->session.user, ctx->req->watch, &cursor,
                              ctx->errbuf);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        return dispatch_deny(ctx, NULL, "", "watch");
    if (rc != CRM_OK)
        return rc;
    crm__progress__init(&ctx->body.progress);
    ctx->body.progress.seq = cursor;
    ctx->body.progress.last = store_last_seq(ctx->env->store);
    ctx->body.progress.history = store_epoch(ctx->env->store, NULL);
    ctx->body.progress.history_first = store_epoch_first(ctx->env->store);
    ctx->reply.body_case = CRM__REPLY__BODY_PROGRESS;
    ctx->reply.progress = &ctx->body.progress;
    return CRM_OK;
}
