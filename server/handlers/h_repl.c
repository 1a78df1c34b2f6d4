/*  h_repl - REPL_PULL (replica role only), REPL_STATUS, REPL_PROMOTE and
    REPL_DIGEST (admins; the digest reads a snapshot on the worker thread).
    A pull answers from the write-ahead log with at most REPL_PULL_MAX_BYTES
    of batches and stops after PULL_BUDGET_US, so it holds the server thread a
    few milliseconds at most (replica.h, docs/ARCHITECTURE.md). */
#include <stdlib.h>
#include <string.h>

#include "crm_keys.h"
#include "crm_time.h"
#include "dispatch.h"
#include "replica.h"

#define PULL_BUDGET_US 3000 /* stop collecting batches after this long */
#define DIGEST_WAIT_MS 10000 /* longest a digest waits for this server to reach its number */
#define DIGEST_WAIT_NEWER_MS 1000 /* ... one past what the primary had at our last pull */

typedef struct {
    req_ctx_t *ctx;
    Crm__ReplBatch **v;
    size_t n, cap;
    int64_t until_us;
} s_pull_t;

/* store_wal_fn: copy one batch into the reply. */
static bool
s_take(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_pull_t *p = arg;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        CRM_ASSERT_ALLOC(p->v);
    }
    Crm__ReplBatch *b = dispatch_own(p->ctx, malloc(sizeof *b));
    CRM_ASSERT_ALLOC(b);
    crm__repl_batch__init(b);
    b->seq = seq;
    b->data.len = len;
    b->data.data = dispatch_own(p->ctx, malloc(len ? len : 1));
    CRM_ASSERT_ALLOC(b->data.data);
    memcpy(b->data.data, data, len);
    p->v[p->n++] = b;
    return crm_time_mono_us() < p->until_us;
}

/* A replica serves no log and no snapshot: replicas follow the primary (no
   chains), and a replica pointed at itself must not look healthy. */
static crm_err_t
s_refuse_if_replica(req_ctx_t *ctx)
{
    if (!ctx->env->follower || !store_readonly(ctx->env->store))
        return CRM_OK;
    return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                          "this server is itself a replica (of %s): follow the primary",
                          repl_follower_endpoint(ctx->env->follower));
}

crm_err_t
h_repl_pull(req_ctx_t *ctx)
{
    crm_err_t rc = s_refuse_if_replica(ctx);
    if (rc != CRM_OK)
        return rc;
    const Crm__ReplPullRequest *req = ctx->req->repl_pull;
    if (ctx->req->body_case != CRM__REQUEST__BODY_REPL_PULL || !req || !req->from_seq)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "a pull needs the sequence number to start from");
    size_t max = req->max_bytes && req->max_bytes < REPL_PULL_MAX_BYTES ? req->max_bytes
                                                                          : REPL_PULL_MAX_BYTES;
    int64_t now = crm_time_mono_us();
    uint64_t start = 0, epoch = store_epoch(ctx->env->store, &start);
    /* epochs OneView makes: ours + 1 at a promotion, the time in ms at a restore. One
       far past both is no promotion's, and fences nothing (one forged pull fenced the
       primary for good) */
    if (req->epoch > epoch + 1000 && req->epoch > (uint64_t)crm_time_now_ms() + 86400000u) {
        crm_log(CRM_LOG_WARN, "replica '%s' claims epoch %llu, which no promotion or restore "
                              "makes (ours is %llu): refused, not fenced",
                ctx->session.user->name, (unsigned long long)req->epoch,
                (unsigned long long)epoch);
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "epoch %llu is not one a promotion or a restore makes",
                              (unsigned long long)req->epoch);
    }
    /* a newer epoch ends this server's history only when its claim is made with the
       server key the replicas share with it: a replica's enrollment alone (a user key,
       more widely handed out) could fence the primary with any plausible number */
    if (req->epoch > epoch &&
        !crm_epoch_proof_ok(ctx->env->epoch_key, req->epoch, req->epoch_start,
                            req->epoch_proof.data, req->epoch_proof.len)) {
        crm_log(CRM_LOG_WARN, "replica '%s' claims epoch %llu (ours is %llu) without proof "
                              "made with this server's key: refused, not fenced",
                ctx->session.user->name, (unsigned long long)req->epoch,
                (unsigned long long)epoch);
        return dispatch_error(ctx, CRM_ERR_PERMISSION_DENIED,
                              "epoch %llu is claimed without proof made with the server key: "
                              "only a server holding this server's key pair (a replica made "
                              "from it) can end its history",
                              (unsigned long long)req->epoch);
    }
    if (req->epoch > epoch) { /* a replica was promoted, or a restore: our history ends */
        char errbuf[CRM_ERRBUF];
        if (!store_fenced_by(ctx->env->store))
            crm_log(CRM_LOG_WARN,
                    "replica '%s' is at epoch %llu, newer than ours (%llu): a replica was "
                    "promoted (or a backup of this server restored and followed elsewhere), so "
                    "this server takes no writes any more",
                    ctx->session.user->name, (unsigned long long)req->epoch,
                    (unsigned long long)epoch);
        if (store_fence(ctx->env->store, req->epoch, errbuf) != CRM_OK)
            crm_log(CRM_LOG_WARN, "the fence is not recorded (writes are refused anyway): %s",
                    errbuf);
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "this server's epoch %llu is older than the replica's %llu: it was "
                              "the primary before a promotion (or a restore elsewhere) and its "
                              "log is not to be followed",
                              (unsigned long long)epoch, (unsigned long long)req->epoch);
    }
    s_pull_t p = {ctx, NULL, 0, 0, now + PULL_BUDGET_US};
    Crm__ReplPullReply *r = &ctx->body.repl_pull;
    crm__repl_pull_reply__init(r);
    /* a replica of an older history that holds entries at or past where we went on
       with the next history after its (a restore from a backup, or a promotion, here
       or before our history's beginning): our entries there are not its next ones.
       One of a history we never went on with shares at most what came before its own
       beginning too. No batches: where the two part, for it to re-sync */
    uint64_t part = UINT64_MAX, part_first;
    if (req->epoch && req->epoch < epoch &&
        !store_history_parted(ctx->env->store, req->epoch, &part, &part_first)) {
        uint64_t theirs = req->epoch_start ? req->epoch_start : 1;
        if (theirs < part)
            part = theirs;
    }
    bool other_history = req->from_seq > part;
    /* a replica past our end holds entries we lack: our data dir went back to a copy
       that kept our history's id, so where the two parted is not known. Answered at once
       (it says it diverged), and it holds nothing of ours that --sync-replicas can count:
       counted as holding up to our end, a held pull re-served after each commit had it
       confirm every write it never took */
    uint64_t end = store_wal_seq(ctx->env->store);
    bool ahead = !other_history && req->from_seq > end + 1;
    /* what it holds of our log, for --sync-replicas: not past where the histories part */
    uint64_t holds_to = other_history ? part : ahead ? 0 : req->from_seq;
    bool too_old = false;
    uint64_t oldest = 0;
    store_wal_cursor_t *cur = NULL;
    if (ctx->env->repl &&
        !(cur = repl_seen(ctx->env->repl, ctx->session.user->name, ctx->env->rid,
                          ctx->env->rid_len, holds_to, now)))
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "another replica follows under the identity '%s' right now: give "
                              "each replica its own ('crm-admin user add NAME --role replica')",
                              ctx->session.user->name);
    if (!other_history)
        rc = store_wal_read(ctx->env->store, cur, req->from_seq, max, s_take, &p, &too_old,
                            &oldest, ctx->errbuf);
    if (p.v)
        dispatch_own(ctx, p.v);
    if (rc != CRM_OK)
        return rc;
    /* long poll: answered after the next commit */
    if (!p.n && !too_old && !other_history && !ahead && ctx->env->can_hold)
        return dispatch_hold(ctx);
    r->batches = p.v;
    r->n_batches = p.n;
    r->latest_seq = store_wal_seq(ctx->env->store);
    r->too_old = too_old;
    r->oldest_seq = oldest;
    r->epoch = epoch;
    /* for a replica of an older history: where its and ours part, which it checks
       against what it holds (our own beginning when we are its history's next) */
    r->epoch_start = part != UINT64_MAX ? part : start;
    r->sealing = store_sealed(ctx->env->store) ? CRM__REPL_PULL_REPLY__SEALING__SEALING_SEALED
                                               : CRM__REPL_PULL_REPLY__SEALING__SEALING_CLEAR;
    if (ctx->env->repl)
        r->behind_ms = repl_lag_ms(ctx->env->repl, req->from_seq - 1, crm_time_mono_us());
    ctx->reply.body_case = CRM__REPLY__BODY_REPL_PULL;
    ctx->reply.repl_pull = r;
    return CRM_OK;
}

static void *
s_own(void *arg, void *p)
{
    return dispatch_own(arg, p);
}

crm_err_t
h_repl_status(req_ctx_t *ctx)
{
    const dispatch_env_t *env = ctx->env;
    Crm__ReplStatusReply *r = &ctx->body.repl_status;
    crm__repl_status_reply__init(r);
    int64_t now = crm_time_mono_us();
    r->fenced_by = store_fenced_by(env->store);
    r->role = (char *)(r->fenced_by                 ? "fenced former primary"
                       : store_readonly(env->store) ? "replica"
                                                    : "primary");
    r->epoch = store_epoch(env->store, &r->epoch_start);
    r->last_seq = store_last_seq(env->store);
    r->wal_seq = store_wal_seq(env->store);
    if (env->follower && store_readonly(env->store)) {
        repl_follower_status_t st;
        repl_follower_status(env->follower, &st);
        r->primary = (char *)repl_follower_endpoint(env->follower);
        r->connected = st.connected;
        r->primary_seq = st.primary_seq;
        r->lag_entries = st.primary_seq > st.applied_seq ? st.primary_seq - st.applied_seq : 0;
        r->lag_ms = r->lag_entries && st.caught_up_us && now > st.caught_up_us
                        ? (uint64_t)(now - st.caught_up_us) / 1000
                        : 0;
        r->state = dispatch_own(ctx, strdup(st.state));
        r->heard = st.heard_us != 0;
        r->heard_ms_ago = r->heard && now > st.heard_us ? (uint64_t)(now - st.heard_us) / 1000 : 0;
    }
    if (env->repl)
        repl_list(env->repl, now, r, s_own, ctx);
    ctx->reply.body_case = CRM__REPLY__BODY_REPL_STATUS;
    ctx->reply.repl_status = r;
    return CRM_OK;
}

crm_err_t
h_repl_snapshot(req_ctx_t *ctx)
{
    crm_err_t refused = s_refuse_if_replica(ctx);
    if (refused != CRM_OK)
        return refused;
    const Crm__ReplSnapshotRequest *req = ctx->req->repl_snapshot;
    if (ctx->req->body_case != CRM__REQUEST__BODY_REPL_SNAPSHOT || !req)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "a snapshot request needs its body");
    if (!ctx->env->snap)
        return dispatch_error(ctx, CRM_ERR_UNAVAILABLE, "this server makes no snapshots");
    Crm__ReplSnapshotReply *r = &ctx->body.repl_snapshot;
    crm__repl_snapshot_reply__init(r);
    crm_err_t rc = repl_snap_serve(ctx->env->snap, req, r, s_own, ctx, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    ctx->reply.body_case = CRM__REPLY__BODY_REPL_SNAPSHOT;
    ctx->reply.repl_snapshot = r;
    return CRM_OK;
}

crm_err_t
h_repl_promote(req_ctx_t *ctx)
{
    store_t *store = ctx->env->store;
    if (store_fenced_by(store))
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "this server is a former primary fenced by epoch %llu: make it a "
                              "replica of the new primary instead ('crm-admin replica init')",
                              (unsigned long long)store_fenced_by(store));
    if (!store_readonly(store) || !ctx->env->follower)
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "this server is a primary already");
    const char *former = repl_follower_endpoint(ctx->env->follower);
    repl_follower_halt(ctx->env->follower); /* its last batch is applied whole, then it stops */
    uint64_t epoch = 0;
    crm_err_t rc = store_promote(store, &epoch, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    uint64_t start = 0;
    store_epoch(store, &start);
    crm_log(CRM_LOG_WARN,
            "promoted: this server is the primary now, epoch %llu from WAL sequence %llu (change "
            "log %llu); the former primary %s must take no writes: start it with --replica-of "
            "this server, or make it a replica again",
            (unsigned long long)epoch, (unsigned long long)start,
            (unsigned long long)store_last_seq(store), former);
    return h_repl_status(ctx);
}

crm_err_t
h_repl_digest(req_ctx_t *ctx)
{
    if (!ctx->env->worker) /* every key is read, on the worker thread */
        return dispatch_defer(ctx);
    const Crm__ReplDigestRequest *req =
        ctx->req->body_case == CRM__REQUEST__BODY_REPL_DIGEST ? ctx->req->repl_digest : NULL;
    Crm__ReplDigestReply *r = &ctx->body.repl_digest;
    crm__repl_digest_reply__init(r);
    uint64_t at = req ? req->at_wal_seq : 0;
    /* the worker waits only for a number the primary had at our last pull (it is on its
       way), or one pull's time for a newer one; not 10 s for a typo */
    int wait_ms = DIGEST_WAIT_MS;
    if (at && ctx->env->follower) {
        repl_follower_status_t st;
        repl_follower_status(ctx->env->follower, &st);
        if (at > st.primary_seq)
            wait_ms = DIGEST_WAIT_NEWER_MS;
    }
    crm_err_t rc = store_view_at(ctx->env->store, at, wait_ms, &r->wal_seq, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    uint8_t *out = dispatch_own(ctx, malloc(32));
    CRM_ASSERT_ALLOC(out);
    if ((rc = store_digest(ctx->env->store, out, &r->keys, &r->last_seq, ctx->errbuf)) != CRM_OK)
        return rc;
    r->digest.data = out;
    r->digest.len = 32;
    ctx->reply.body_case = CRM__REPLY__BODY_REPL_DIGEST;
    ctx->reply.repl_digest = r;
    return CRM_OK;
}
