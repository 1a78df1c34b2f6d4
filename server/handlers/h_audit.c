/*  =========================================================================
    h_audit - `crm audit` (the trail) and `crm customer history` (one record)

    The trail is for managers (entries by their department's users) and
    admins; it shows personal fields as changed, never their values. History
    is for whoever may read the record, with values masked as the record's
    reads are.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "authz.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "bin.h"
#include "dispatch.h"
#include "records.h"

#define AUDIT_DEFAULT 100
#define AUDIT_MAX 1000
/* Entries one request may examine (each is decoded: a few us): with the
   by-user and by-department indexes a query only meets entries it may not
   return when it combines them (a record and a user, a manager asking about
   another department's user), and then stops here rather than hold the
   server thread (issue 14). */
#define AUDIT_SCAN_BUDGET 1000

typedef struct {
    req_ctx_t *ctx;
    const Crm__AuditRequest *q;
    const ProtobufCMessage *current; /* history: the record now (for consent) */
    const crm_entity_t *e;           /* history: its kind */
    Crm__AuditEntry **out;
    size_t n, limit;
} s_scan_t;

static void
s_set_value(char **slot, const char *text)
{
    if (*slot && *slot != protobuf_c_empty_string) /* proto3 leaves "" as the shared default */
        crm_proto_release(*slot);
    *slot = crm_proto_strdup(text);
}

/* Keep only the changes for FIELD (all if empty); returns how many remain. */
static size_t
s_keep_field(Crm__AuditEntry *entry, const char *field)
{
    size_t kept = 0;
    for (size_t i = 0; i < entry->n_changes; i++) {
        if (!*field || !strcmp(entry->changes[i]->field, field))
            entry->changes[kept++] = entry->changes[i];
        else
            crm_proto_free((ProtobufCMessage **)&entry->changes[i]);
    }
    entry->n_changes = kept;
    return kept;
}

/* Mask every ';'-separated value of FIELD as authz does for reads. */
static void
s_mask(char **slot, const char *field)
{
    if (!**slot)
        return;
    char out[512] = "", part[128];
    size_t used = 0;
    char *copy = strdup(*slot), *save = NULL;
    for (char *v = strtok_r(copy, ";", &save); v && used + 1 < sizeof out;
         v = strtok_r(NULL, ";", &save)) {
        authz_mask_value(field, v, part, sizeof part);
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", used ? ";" : "", part);
    }
    free(copy);
    s_set_value(slot, out);
}

static audit_verdict_t
s_trail(Crm__AuditEntry *entry, void *arg)
{
    s_scan_t *s = arg;
    const Crm__AuditRequest *q = s->q;
    if (s->n == s->limit || (q->since && entry->time < q->since))
        return AUDIT_STOP;
    if ((*q->user && strcmp(entry->user, q->user)) ||
        !authz_audit(s->ctx->session.user, entry->department))
        return AUDIT_SKIP;
    const crm_entity_t *e = crm_entity_by_name(entry->kind);
    for (size_t i = 0; e && i < entry->n_changes; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, entry->changes[i]->field);
        if (fd && (crm_entity_flags_of(e, fd) & CRM_F_PII)) {
            if (*entry->changes[i]->old_value)
                s_set_value(&entry->changes[i]->old_value, "(personal data)");
            if (*entry->changes[i]->new_value)
                s_set_value(&entry->changes[i]->new_value, "(personal data)");
        }
    }
    s->out[s->n++] = dispatch_own_msg(s->ctx, entry);
    return AUDIT_TAKE;
}

static audit_verdict_t
s_history(Crm__AuditEntry *entry, void *arg)
{
    s_scan_t *s = arg;
    if (s->n == s->limit)
        return AUDIT_STOP;
    /* every change of a field; and, in the whole history, the deletions too
       (a record restored from the recycle bin shows when it was gone) */
    if (entry->denied ||
        (s_keep_field(entry, s->q->field) == 0 && (*s->q->field || strcmp(entry->action, "delete"))))
        return AUDIT_SKIP;
    /* masked whatever the consent is now: an old number stays private even if the
       customer consents later */
    bool masked_record = authz_masks_pii(s->ctx->session.user, s->e);
    for (size_t i = 0; masked_record && i < entry->n_changes; i++) {
        Crm__FieldChange *c = entry->changes[i];
        if (authz_masks(s->ctx->session.user, s->e, c->field)) {
            s_mask(&c->old_value, c->field);
            s_mask(&c->new_value, c->field);
        }
    }
    s->out[s->n++] = dispatch_own_msg(s->ctx, entry);
    return AUDIT_TAKE;
}

static crm_err_t
s_limit(req_ctx_t *ctx, const Crm__AuditRequest *q, size_t *limit)
{
    *limit = q->limit ? q->limit : AUDIT_DEFAULT;
    if (*limit > AUDIT_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "limit %u is over the maximum %d",
                              q->limit, AUDIT_MAX);
    return CRM_OK;
}

static void
s_reply(req_ctx_t *ctx, s_scan_t *s)
{
    crm__audit_reply__init(&ctx->body.audit);
    ctx->body.audit.entries = s->out;
    ctx->body.audit.n_entries = s->n;
    ctx->reply.body_case = CRM__REPLY__BODY_AUDIT;
    ctx->reply.audit = &ctx->body.audit;
}

crm_err_t
h_audit_list(req_ctx_t *ctx)
{
    const Crm__User *u = ctx->session.user;
    if (ctx->req->body_case != CRM__REQUEST__BODY_AUDIT)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no query");
    const Crm__AuditRequest *q = ctx->req->audit;
    if (u->role != CRM__ROLE__MANAGER && u->role != CRM__ROLE__ADMIN) {
        dispatch_error(ctx, CRM_ERR_PERMISSION_DENIED,
                       "permission denied: the audit trail is for managers and admins");
        return dispatch_deny(ctx, NULL, "", "audit");
    }
    s_scan_t s = {ctx, q, NULL, NULL, NULL, 0, 0};
    crm_err_t rc = s_limit(ctx, q, &s.limit);
    if (rc != CRM_OK)
        return rc;
    s.out = dispatch_own(ctx, calloc(s.limit + 1, sizeof *s.out));
    const crm_entity_t *e = NULL;
    uint64_t num = 0;
    if (*q->id) {
        e = crm_entity_by_prefix(q->id[0]);
        if (!e || !(num = crm_entity_parse_id(e, q->id)))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a record id",
                                  q->id);
    }
    /* the narrowest index that serves the query: the record's, the user's, the
       manager's department's, else the whole trail (admins: every entry matches) */
    audit_query_t aq = {e, num, q->user, -1, AUDIT_SCAN_BUDGET};
    if (u->role != CRM__ROLE__ADMIN)
        aq.department = (int)u->department;
    bool cut = false;
    rc = audit_query(ctx->env->store, &aq, s_trail, &s, &cut);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read the audit trail");
    s_reply(ctx, &s);
    ctx->body.audit.cut = cut;
    return CRM_OK;
}

#define MERGED_MAX 64 /* records merged into one whose history is shown with it */

static int
s_newest_first(const void *a, const void *b)
{
    const Crm__AuditEntry *x = *(const Crm__AuditEntry *const *)a;
    const Crm__AuditEntry *y = *(const Crm__AuditEntry *const *)b;
    return x->time < y->time ? 1 : x->time > y->time ? -1 : 0;
}

crm_err_t
h_history(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_AUDIT)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no query");
    const Crm__AuditRequest *q = ctx->req->audit;
    const crm_entity_t *e = *q->kind ? crm_entity_by_name(q->kind)
                                     : (*q->id ? crm_entity_by_prefix(q->id[0]) : NULL);
    uint64_t num = e ? crm_entity_parse_id(e, q->id) : 0;
    if (!num)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a record id", q->id);
    if (*q->field && !crm_record_field(e->desc, q->field))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "unknown field '%.40s' on '%s'",
                              q->field, e->name);
    ProtobufCMessage *cur = NULL;
    crm_err_t rc = records_get(ctx->env->store, e, num, &cur);
    Crm__Binned *binned = NULL; /* a deleted record's history is kept: read it as it was */
    if (rc == CRM_ERR_NOT_FOUND && bin_get_committed(ctx->env->store, e, num, &binned) == CRM_OK) {
        dispatch_own_msg(ctx, binned);
        rc = crm_proto_unpack_wire(e->desc, binned->record.data, binned->record.len, &cur,
                                   ctx->errbuf);
    }
    if (rc == CRM_ERR_NOT_FOUND)
        return dispatch_error(ctx, rc, "no %s '%.40s'", e->name, q->id);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read %s '%.40s'", e->name, q->id);
    dispatch_own_msg(ctx, cur);
    if ((rc = authz_record(ctx->session.user, e, AUTHZ_READ, cur, NULL, NULL, 0, ctx->errbuf)) !=
        CRM_OK)
        return dispatch_deny(ctx, e->name, q->id, "history");
    /* one field's history may skip many entries of a long-lived record: on the worker */
    if (*q->field && !ctx->env->worker)
        return dispatch_defer(ctx);
    s_scan_t s = {ctx, q, cur, e, NULL, 0, 0};
    size_t limit;
    if ((rc = s_limit(ctx, q, &limit)) != CRM_OK)
        return rc;
    /* the records merged into this one keep their history here */
    uint64_t sources[1 + MERGED_MAX] = {num};
    size_t nsources = 1;
    char prefix[64];
    int plen = snprintf(prefix, sizeof prefix, "merged_from/%s/", q->id);
    store_iter_t *it = store_iter_new(ctx->env->store, STORE_CF_META);
    for (store_iter_seek(it, prefix, (size_t)plen); store_iter_valid(it) && nsources <= MERGED_MAX;
         store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen <= (size_t)plen || memcmp(k, prefix, (size_t)plen) || klen - plen >= 24)
            break;
        char other[24];
        memcpy(other, k + plen, klen - plen);
        other[klen - plen] = '\0';
        if ((sources[nsources] = crm_entity_parse_id(e, other)))
            nsources++;
    }
    store_iter_destroy(&it);
    s.limit = limit * nsources;
    s.out = dispatch_own(ctx, calloc(s.limit + 1, sizeof *s.out));
    for (size_t i = 0; i < nsources; i++) {
        size_t before = s.n;
        s.limit = before + limit; /* each source gives at most LIMIT, newest first */
        if ((rc = audit_scan(ctx->env->store, e, sources[i], s_history, &s)) != CRM_OK)
            return dispatch_error(ctx, rc, "cannot read the history");
    }
    if (nsources > 1) { /* newest first across all of them */
        qsort(s.out, s.n, sizeof *s.out, s_newest_first);
        if (s.n > limit)
            s.n = limit;
    }
    s_reply(ctx, &s);
    return CRM_OK;
}
