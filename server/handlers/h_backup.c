/*  h_backup - BACKUP_CREATE and BACKUP_STATUS: the running server's hot backup.
    Admin only (ops.def). CREATE hands the work to the backup job's helper
    thread (backup.c) and answers at once; the client polls STATUS. Neither
    waits on I/O: the job's status is copied under a mutex never held across it. */
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "dispatch.h"

/* Fill the reply's BackupReply from the job's status (strings owned by ctx). */
static void
s_reply_status(req_ctx_t *ctx, const backup_status_t *st)
{
    Crm__BackupReply *r = &ctx->body.backup;
    crm__backup_reply__init(r);
    r->job = st->job;
    r->finished = st->finished;
    r->running = st->running;
    r->phase = (char *)backup_phase_name(st->progress.phase);
    r->done = st->progress.done;
    r->total = st->progress.total;
    r->dir = dispatch_own(ctx, strdup(st->dir));
    r->started = st->started_ms;
    r->last_ok = st->last_ok;
    r->last_error = dispatch_own(ctx, strdup(st->last_error));
    r->last_error_time = st->last_error_ms;
    r->next_scheduled = st->next_ms;
    if (st->last.id) {
        Crm__BackupInfo *b = dispatch_own(ctx, malloc(sizeof *b));
        crm__backup_info__init(b);
        b->id = st->last.id;
        b->time = st->last.time_ms;
        b->seq = st->last.seq;
        b->size = st->last.size;
        b->files = st->last.files;
        b->format = st->last.format;
        b->users = st->last.users;
        b->n_counts = st->last.n_kinds;
        b->counts = dispatch_own(ctx, calloc(st->last.n_kinds + 1, sizeof *b->counts));
        for (size_t i = 0; i < st->last.n_kinds; i++) {
            Crm__BackupKindCount *k = dispatch_own(ctx, malloc(sizeof *k));
            crm__backup_kind_count__init(k);
            k->kind = dispatch_own(ctx, strdup(st->last.kinds[i].name));
            k->count = st->last.kinds[i].count;
            b->counts[i] = k;
        }
        r->last = b;
    }
    ctx->reply.body_case = CRM__REPLY__BODY_BACKUP;
    ctx->reply.backup = r;
}

crm_err_t
h_backup_create(req_ctx_t *ctx)
{
    backup_status_t st;
    uint64_t job;
    if (!ctx->env->backup)
        return dispatch_error(ctx, CRM_ERR_UNIMPLEMENTED, "this server does not make backups");
    const Crm__BackupRequest *req =
        ctx->req->body_case == CRM__REQUEST__BODY_BACKUP ? ctx->req->backup : NULL;
    crm_err_t rc = backup_job_start(ctx->env->backup, req ? req->to : NULL, req ? req->keep : 0,
                                    &job, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    backup_job_status(ctx->env->backup, &st);
    st.job = job;
    s_reply_status(ctx, &st);
    return CRM_OK;
}

crm_err_t
h_backup_status(req_ctx_t *ctx)
{
    backup_status_t st;
    if (!ctx->env->backup)
        return dispatch_error(ctx, CRM_ERR_UNIMPLEMENTED, "this server does not make backups");
    backup_job_status(ctx->env->backup, &st);
    s_reply_status(ctx, &st);
    return CRM_OK;
}
