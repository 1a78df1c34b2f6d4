/*  =========================================================================
    dispatch - every check that applies to all requests, once, in order

    dispatch_process() is our processCommand (Redis): for each request, in
    this fixed order,
      1. frame count: exactly one body frame;
      2. unpack with a memory budget and validate (UTF-8, enums, lengths,
         unknown fields) - crm_proto_unpack_wire();
      3. look the op up in the table;
      4. resolve the caller from the ZAP identity, re-checking that the user
         still exists, holds this key and is enabled;
      5. authorization: OPF_ADMIN needs the admin role (the per-department
         policy table plugs in here) - after the limits (quota.c: request
         rate per user, connections per user and in total);
         OPF_REPLICA ops need the replica role, which may call nothing else;
      6. refuse OPF_WRITE on a replica (naming the primary); on a replica
         the audit entries of reads and denials go to its log, not its store
         (a replica's store holds only what the primary shipped);
      7. run the handler;
      8. a request during which a scan stopped on a read error fails, and
         its mutations are taken back (store_group_undo; what others staged
         before it in the group stays); one of too many mutations to take
         back one by one fails the group;
      9. decide whether the reply depends on the group commit: it does if
         the request staged anything (a mutation, an audit entry of a read
         or a denial) or read through the group while something was staged
         (store_group_touches() grew) - such a reply is held until the
         commit returns and becomes an error if it fails;
     10. pack the reply - errors through dispatch_error() only.
    =========================================================================
*/
#include "dispatch.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"
#include "idem.h"
#include "quota.h"
#include "replica.h"

static const struct op s_ops[] = {
#define OP(name, fn, flags) {CRM__OP__OP_##name, #name, fn, flags},
#include "ops.def"
#undef OP
};

const struct op *
dispatch_lookup(int code)
{
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++)
        if (s_ops[i].code == code)
            return &s_ops[i];
    return NULL;
}

crm_err_t
dispatch_error(req_ctx_t *ctx, crm_err_t rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errbuf, sizeof ctx->errbuf, fmt, ap);
    va_end(ap);
    return rc;
}

crm_err_t
dispatch_deny(req_ctx_t *ctx, const char *kind, const char *id, const char *action)
{
    const Crm__User *u = ctx->session.user;
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
    entry.time = crm_time_now_ms();
    entry.user = u->name;
    entry.department = u->department;
    entry.role = u->role;
    entry.kind = (char *)(kind ? kind : "");
    entry.id = (char *)(id ? id : "");
    entry.action = (char *)action;
    entry.denied = true;
    entry.reason = ctx->errbuf;
    if (!ctx->env->group) /* the worker: the server thread audited the request */
        return CRM_ERR_PERMISSION_DENIED;
    if (store_readonly(ctx->env->store)) { /* a replica writes nothing of its own */
        crm_log(CRM_LOG_INFO, "audit (replica, not stored): '%s' denied %s %s %s: %s", u->name,
                action, kind ? kind : "", id ? id : "", ctx->errbuf);
        return CRM_ERR_PERMISSION_DENIED;
    }
    const crm_entity_t *e = kind ? crm_entity_by_name(kind) : NULL;
    audit_stage(ctx->env->group, ctx->env->store, &entry, e,
                e && id ? crm_entity_parse_id(e, id) : 0);
    return CRM_ERR_PERMISSION_DENIED;
}

/* OP's name as an audit entry or a log line says it: ENTITY_GET -> "entity get". */
static void
s_action(const struct op *op, char *out, size_t size)
{
    size_t i = 0;
    for (; op->name[i] && i + 1 < size; i++)
        out[i] = op->name[i] == '_' ? ' ' : (char)(op->name[i] | 0x20);
    out[i] = '\0';
}

/* Admins have full access, so what they read is on the record too (SPEC §4:
   every admin action is audited). Writes are audited where they are staged. */
static void
s_audit_admin_read(req_ctx_t *ctx, const struct op *op)
{
    const Crm__Request *req = ctx->req;
    if (!(op->flags & OPF_READ) || req->op == CRM__OP__OP_PING || req->op == CRM__OP__OP_WHOAMI)
        return;
    const Crm__User *u = ctx->session.user;
    char action[32], detail[CRM_ERRBUF] = "";
    s_action(op, action, sizeof action);
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
    entry.time = crm_time_now_ms();
    entry.user = u->name;
    entry.department = u->department;
    entry.role = u->role;
    entry.action = action;
    entry.kind = (char *)"";
    entry.id = (char *)"";
    if (req->body_case == CRM__REQUEST__BODY_ENTITY) {
        const Crm__EntityRequest *er = req->entity;
        entry.kind = er->kind;
        entry.id = er->id;
        size_t used = 0;
        for (size_t f = 0; f < er->n_filters && used + 1 < sizeof detail; f++)
            used += (size_t)snprintf(detail + used, sizeof detail - used, "%s%s=%s",
                                     used ? " " : "", er->filters[f]->field,
                                     er->filters[f]->value);
        if (*er->text && used + 1 < sizeof detail)
            snprintf(detail + used, sizeof detail - used, "%ssearch '%s'", used ? " " : "",
                     er->text);
    } else if (req->body_case == CRM__REQUEST__BODY_AUDIT) {
        entry.kind = req->audit->kind;
        entry.id = req->audit->id;
    }
    entry.reason = detail;
    if (store_readonly(ctx->env->store)) { /* a replica writes nothing of its own */
        crm_log(CRM_LOG_INFO, "audit (replica, not stored): '%s' %s %s %s %s", u->name, action,
                entry.kind, entry.id, detail);
        return;
    }
    const crm_entity_t *e = *entry.kind ? crm_entity_by_name(entry.kind) : NULL;
    audit_stage(ctx->env->group, ctx->env->store, &entry, e,
                e ? crm_entity_parse_id(e, entry.id) : 0);
}

/* Why writes are refused here: a replica, or a former primary that learned of a promotion. */
static crm_err_t
s_refuse_write(req_ctx_t *ctx)
{
    uint64_t newer = store_fenced_by(ctx->env->store);
    if (newer)
        return dispatch_error(ctx, CRM_ERR_READONLY,
                              "this server was the primary until a replica was promoted (or a "
                              "backup of it restored elsewhere: epoch %llu; ours is %llu): it "
                              "takes no writes; send changes to the new primary",
                              (unsigned long long)newer,
                              (unsigned long long)store_epoch(ctx->env->store, NULL));
    return dispatch_error(ctx, CRM_ERR_READONLY,
                          "this server is a read-only replica of %s; send changes there",
                          ctx->env->follower ? repl_follower_endpoint(ctx->env->follower)
                                             : "the primary");
}

static crm_err_t
s_check_and_run(req_ctx_t *ctx, const char *user_id)
{
    const struct op *op = dispatch_lookup(ctx->req->op);
    if (!op && ctx->req->op == CRM__OP__OP_UNSPECIFIED) /* or a number whose low 32 bits are 0 */
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request names no operation");
    if (!op)
        return dispatch_error(ctx, CRM_ERR_UNIMPLEMENTED,
                              "unknown operation %d: this server (%s) does not offer it",
                              (int)ctx->req->op, CRM_VERSION);
    /* limits first: a user over them costs no store read; except that the log's
       ops are limited once the user is known, as a replica's pulls are not rated */
    crm_err_t rc = CRM_OK;
    bool log_op = (op->flags & OPF_REPLICA) != 0;
    if (ctx->env->limits && !log_op &&
        (rc = quota_admit(ctx->env->limits, ctx->env->src_fd, user_id, true, crm_time_mono_us(),
                          ctx->errbuf)) != CRM_OK)
        return rc;
    /* a large change is under way: a write waits for it, whole, in arrival order
       (it may read what the large change writes), and so does whatever comes after
       it on its connection (which may read what it writes); a read waits too for a
       write sent before it on its connection to be answered; counted by the limits
       as it came, every other check is made when it runs */
    if ((op->flags & OPF_WRITE) ? ctx->env->hold_writes || ctx->env->hold_all
                                : ctx->env->hold_reads) {
        ctx->queued = true;
        return CRM_OK;
    }
    rc = session_resolve(&ctx->session, ctx->env->store, user_id, ctx->errbuf);
    if (rc != CRM_OK)
        return rc;
    if (ctx->env->limits && log_op &&
        (rc = quota_admit(ctx->env->limits, ctx->env->src_fd, user_id,
                          ctx->session.user->role != CRM__ROLE__REPLICA, crm_time_mono_us(),
                          ctx->errbuf)) != CRM_OK)
        return rc;
    if ((op->flags & OPF_ADMIN) && ctx->session.user->role != CRM__ROLE__ADMIN) {
        char name[32]; /* USER_SET -> "user set" */
        s_action(op, name, sizeof name);
        dispatch_error(ctx, CRM_ERR_PERMISSION_DENIED,
                       "permission denied: '%s' is for admins only", name);
        return dispatch_deny(ctx, NULL, "", name);
    }
    if (((op->flags & OPF_REPLICA) != 0) != (ctx->session.user->role == CRM__ROLE__REPLICA)) {
        dispatch_error(ctx, CRM_ERR_PERMISSION_DENIED,
                       (op->flags & OPF_REPLICA)
                           ? "permission denied: only a replica identity may follow the log"
                           : "permission denied: a replica identity may only follow the log");
        return dispatch_deny(ctx, NULL, "", op->name);
    }
    if ((op->flags & OPF_WRITE) && store_readonly(ctx->env->store))
        return s_refuse_write(ctx);
    /* a write sent again under its idempotency key gets its first reply */
    const char *key = ctx->req->idempotency_key;
    bool keyed = (op->flags & OPF_WRITE) && key && *key;
    uint8_t hash[32];
    if (keyed) {
        if (strlen(key) > IDEM_KEY_MAX)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "idempotency key of %zu bytes is over the limit of %d",
                                  strlen(key), IDEM_KEY_MAX);
        idem_hash(ctx->req, hash);
        rc = idem_find(ctx->env->group, ctx->session.user->name, key, hash, crm_time_now_ms(),
                       &ctx->replay, &ctx->replay_len);
        if (rc == CRM_OK)
            return CRM_OK;
        if (rc == CRM_ERR_INVALID_ARGUMENT)
            return dispatch_error(ctx, rc,
                                  "idempotency key '%.64s' was already used for a different "
                                  "request: use a new key for a new request",
                                  key);
        if (rc != CRM_ERR_NOT_FOUND)
            return dispatch_error(ctx, rc, "cannot read idempotency key '%.64s'", key);
    }
    rc = op->fn(ctx);
    /* in the same group, so in the same commit as the write (a large one: on the writer) */
    if (rc == CRM_OK && keyed && !ctx->large) {
        Crm__Reply first = ctx->reply;
        first.id = 0;
        size_t len;
        uint8_t *packed = crm_proto_pack(&first.base, &len);
        idem_record(ctx->env->group, ctx->session.user->name, key, hash, crm_time_now_ms(),
                    packed, len);
        free(packed);
        ctx->staged = true;
    }
    if (rc == CRM_OK && ctx->session.user->role == CRM__ROLE__ADMIN && !ctx->env->worker)
        s_audit_admin_read(ctx, op);
    return rc;
}

crm_err_t
dispatch_defer(req_ctx_t *ctx)
{
    CRM_ASSERT(!ctx->env->worker);
    ctx->deferred = true;
    return CRM_OK;
}

bool
dispatch_large(req_ctx_t *ctx, size_t records)
{
    if (!ctx->env->large_records || records <= ctx->env->large_records)
        return false;
    CRM_ASSERT(!ctx->env->worker && ctx->env->group);
    ctx->large = true;
    return true;
}

crm_err_t
dispatch_hold(req_ctx_t *ctx)
{
    CRM_ASSERT(ctx->env->can_hold && !ctx->env->worker);
    ctx->held = true;
    return CRM_OK;
}

void *
dispatch_own(req_ctx_t *ctx, void *p)
{
    if (ctx->n_owned == ctx->cap_owned) {
        ctx->cap_owned = ctx->cap_owned ? ctx->cap_owned * 2 : 16;
        ctx->owned = realloc(ctx->owned, ctx->cap_owned * sizeof *ctx->owned);
        CRM_ASSERT_ALLOC(ctx->owned);
    }
    ctx->owned[ctx->n_owned++] = p;
    return p;
}

void *
dispatch_own_msg(req_ctx_t *ctx, void *m)
{
    if (ctx->n_owned_msgs == ctx->cap_owned_msgs) {
        ctx->cap_owned_msgs = ctx->cap_owned_msgs ? ctx->cap_owned_msgs * 2 : 16;
        ctx->owned_msgs =
            realloc(ctx->owned_msgs, ctx->cap_owned_msgs * sizeof *ctx->owned_msgs);
        CRM_ASSERT_ALLOC(ctx->owned_msgs);
    }
    ctx->owned_msgs[ctx->n_owned_msgs++] = m;
    return m;
}

uint8_t *
dispatch_error_reply(uint64_t id, crm_err_t rc, const char *text, uint64_t current_version,
                     size_t *reply_len)
{
    Crm__Reply reply = CRM__REPLY__INIT;
    reply.id = id;
    reply.status = (Crm__ErrorCode)rc;
    reply.message = (char *)(text && *text ? text : crm_err_str(rc));
    reply.current_version = current_version;
    return crm_proto_pack(&reply.base, reply_len);
}

/* A byte of a word: an apostrophe between two of them ("server's",
   "O'Brien", "D'Ángelo") is not a quote. */
static bool
s_word_byte(char c)
{
    return isalnum((unsigned char)c) || (unsigned char)c >= 0x80;
}

/* An error message as the log gets it: what the user gave is quoted in it
   ("field 'emails': 'wang@' is not an e-mail address"), and may be personal
   data that the data dir holds only encrypted. A value may hold quotes of
   its own, so no closing quote can be trusted: from the first quote that
   opens a value to the last quote of the message, all becomes '...'. Only a
   field's name ("field 'emails'": lower-case letters, digits, '_', '.')
   stays. The client's reply keeps the whole message. */
void
dispatch_log_text(const char *in, char *out, size_t size)
{
    size_t n = 0;
    const char *start = in, *last = strrchr(in, '\'');
    while (*in && n + 6 < size) {
        bool opens = *in == '\'' && (in == start || !s_word_byte(in[-1]));
        if (!opens) {
            out[n++] = *in++;
            continue;
        }
        if (in - start >= 6 && !strncmp(in - 6, "field ", 6)) {
            size_t len = strspn(in + 1, "abcdefghijklmnopqrstuvwxyz0123456789_.");
            if (len && in[1 + len] == '\'' && !s_word_byte(in[2 + len]) &&
                len + 2 < size - n - 1) {
                memcpy(out + n, in, len + 2);
                n += len + 2;
                in += len + 2;
                continue;
            }
        }
        memcpy(out + n, "'...'", 5);
        n += 5;
        in = last > in ? last + 1 : in + strlen(in);
    }
    out[n] = '\0';
}

/* A request that held the server thread for --slow-log or longer: logged with
   what it was and whose (a slow log, as Redis keeps one), at most 10 lines a
   second. */
static void
s_slow(const dispatch_env_t *env, int64_t t0, const Crm__Request *req, const struct op *op,
       const req_ctx_t *ctx, uint64_t id)
{
    int64_t took = crm_time_mono_us() - t0;
    if (took < env->slow_us)
        return;
    int suppressed = 0;
    if (env->slow_rl && !crm_log_allow(env->slow_rl, 10, &suppressed))
        return;
    char action[48] = "?";
    if (op)
        s_action(op, action, sizeof action);
    const char *kind = req && req->body_case == CRM__REQUEST__BODY_ENTITY && req->entity->kind
                           ? req->entity->kind
                           : "";
    char shown[64];
    dispatch_log_text(kind, shown, sizeof shown);
    crm_log(CRM_LOG_WARN,
            "slow request %llu: %s%s%s by '%.40s' held the server thread %.1f ms (--slow-log "
            "%.0f ms)%s",
            (unsigned long long)id, action, *shown ? " " : "", shown,
            ctx->session.user ? ctx->session.user->name : "?", (double)took / 1e3,
            (double)env->slow_us / 1e3, suppressed ? " (more not logged)" : "");
}

uint8_t *
dispatch_process(const dispatch_env_t *env, const char *user_id, size_t nframes,
                 const uint8_t *body, size_t len, size_t *reply_len, dispatch_out_t *out)
{
    req_ctx_t ctx;
    Crm__Request *req = NULL;
    crm_err_t rc;
    uint8_t *packed;
    /* the server thread's time on one request: every other client waits it out */
    int64_t t0 = !env->worker && env->slow_us > 0 ? crm_time_mono_us() : 0;
    memset(&ctx, 0, sizeof ctx);
    ctx.env = env;
    crm__reply__init(&ctx.reply);

    if (nframes != 1)
        rc = dispatch_error(&ctx, CRM_ERR_INVALID_ARGUMENT,
                            "expected one frame per request, got %zu", nframes);
    else if (env->max_msg && len > env->max_msg)
        rc = dispatch_error(&ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                            "request of %zu bytes is over this server's limit of %zu bytes "
                            "(--max-msg): send less at once",
                            len, env->max_msg);
    else
        rc = crm_proto_unpack_wire(&crm__request__descriptor, body, len,
                                   (ProtobufCMessage **)&req, ctx.errbuf);
    uint64_t touches = env->group ? store_group_touches(env->group) : 0;
    store_group_mark_t mark;
    if (env->group)
        store_group_mark(env->group, &mark);
    uint64_t read_errors = store_read_errors(env->store, NULL);
    if (rc == CRM_OK) {
        ctx.req = req;
        ctx.reply.id = req->id;
        rc = s_check_and_run(&ctx, user_id);
    }
    /* a scan cut short by a read error (a damaged table file) must not pass
       for a complete answer, nor a mutation based on one be committed: the
       request's mutations are taken back (what others staged before it
       stays, and commits; so does the audit entry of its attempt) */
    if (store_read_errors(env->store, NULL) != read_errors) {
        char text[CRM_ERRBUF];
        store_read_errors(env->store, text);
        if (env->group && !store_group_undo(env->group, &mark))
            store_group_fail(env->group, CRM_ERR_STORAGE, text);
        if (rc == CRM_OK || rc == CRM_ERR_NOT_FOUND)
            rc = dispatch_error(&ctx, CRM_ERR_STORAGE, "%s", text);
    }
    out->id = 0;
    if (req)
        out->id = req->id;
    else if (nframes >= 1)
        crm_proto_peek_id(body, len, &out->id); /* a refusal still names its request */
    /* decided here, for every op: a reply that staged anything, or read
       through the group while something was staged, depends on the commit;
       so does a kept first reply sent again (under --sync-replicas the first
       may still be waiting for the replicas: the resend waits with it) */
    out->after_commit = ctx.staged || ctx.replay ||
                        (env->group && store_group_touches(env->group) != touches);
    const struct op *op = req ? dispatch_lookup(req->op) : NULL;
    out->ok = rc == CRM_OK;
    out->watch = req && req->op == CRM__OP__OP_WATCH;
    out->wrote = rc == CRM_OK && op && (op->flags & OPF_WRITE);
    out->deferred = rc == CRM_OK && ctx.deferred;
    out->held = rc == CRM_OK && ctx.held && !out->after_commit;
    out->large = rc == CRM_OK && ctx.large;
    out->queued = rc == CRM_OK && ctx.queued;
    if (out->deferred || out->held || out->large || out->queued) {
        packed = NULL;
        *reply_len = 0;
    } else if (rc != CRM_OK) {
        int suppressed = 0;
        if ((rc == CRM_ERR_INVALID_ARGUMENT || (rc == CRM_ERR_RESOURCE_EXHAUSTED && !req)) &&
            crm_log_allow(env->log_rl, 10, &suppressed)) {
            char shown[CRM_ERRBUF];
            dispatch_log_text(ctx.errbuf, shown, sizeof shown);
            /* the user's name once the key is known to be theirs, else the key */
            const char *who = ctx.session.user ? ctx.session.user->name : user_id ? user_id : "?";
            crm_log(CRM_LOG_WARN, "bad request %llu from '%.40s': %s%s",
                    (unsigned long long)out->id, who, shown,
                    suppressed ? " (more not logged)" : "");
        }
        packed = dispatch_error_reply(out->id, rc, ctx.errbuf, ctx.current_version, reply_len);
    } else if (ctx.replay) { /* the kept first reply, under this request's id */
        Crm__Reply *first = NULL;
        char errbuf[CRM_ERRBUF];
        if (crm_proto_unpack(&crm__reply__descriptor, ctx.replay, ctx.replay_len,
                             (ProtobufCMessage **)&first, errbuf) == CRM_OK) {
            first->id = out->id;
            packed = crm_proto_pack(&first->base, reply_len);
            crm_proto_free((ProtobufCMessage **)&first);
        } else {
            packed = dispatch_error_reply(out->id, CRM_ERR_INTERNAL,
                                          "the kept reply of this idempotency key is damaged", 0,
                                          reply_len);
        }
    } else {
        packed = crm_proto_pack(&ctx.reply.base, reply_len);
    }
    if (t0)
        s_slow(env, t0, req, op, &ctx, out->id);
    free(ctx.replay);
    for (size_t i = 0; i < ctx.n_owned; i++)
        free(ctx.owned[i]);
    free(ctx.owned);
    for (size_t i = 0; i < ctx.n_owned_msgs; i++)
        crm_proto_free(&ctx.owned_msgs[i]);
    free(ctx.owned_msgs);
    session_release(&ctx.session);
    crm_proto_free((ProtobufCMessage **)&req);
    return packed;
}
