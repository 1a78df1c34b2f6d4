/*  =========================================================================
    h_entity - create, get, update, delete, list, search and import, written
    once for every record kind in the entity table (common/crm_entity.c)

    Writes stage one mutation each in the writer's group (store_group_begin
    ... store_group_end) and set ctx->staged, so the server replies only
    after the group commit. A failing write aborts its own mutation.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "authz.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "crm_utf8.h"
#include "dispatch.h"
#include "records.h"
#include "users.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define IMPORT_MAX 1000

/* ==== Shared steps ==== */

static crm_err_t
s_request(req_ctx_t *ctx, const Crm__EntityRequest **r, const crm_entity_t **e)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_ENTITY)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no record body");
    *r = ctx->req->entity;
    const char *kind = (*r)->kind;
    *e = *kind ? crm_entity_by_name(kind)
               : ((*r)->id[0] ? crm_entity_by_prefix((*r)->id[0]) : NULL);
    if (!*e) {
        char kinds[128] = "";
        size_t used = 0;
        for (const crm_entity_t *k = crm_entity_all(); k->name; k++)
            used += (size_t)snprintf(kinds + used, sizeof kinds - used, "%s%s", used ? ", " : "",
                                     k->name);
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "unknown record kind '%.40s' (kinds: %s)", kind, kinds);
    }
    return CRM_OK;
}

static crm_err_t
s_parse_id(req_ctx_t *ctx, const crm_entity_t *e, const char *id, uint64_t *num)
{
    *num = crm_entity_parse_id(e, id);
    if (*num == 0)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "'%.40s' is not a %s id (they look like %c123)", id, e->name,
                              e->prefix);
    return CRM_OK;
}

/* The request, its kind and the number of the record it names. */
static crm_err_t
s_request_id(req_ctx_t *ctx, const Crm__EntityRequest **r, const crm_entity_t **e,
             uint64_t *num)
{
    crm_err_t rc = s_request(ctx, r, e);
    return rc == CRM_OK ? s_parse_id(ctx, *e, (*r)->id, num) : rc;
}

/* Attach REC to the reply's record list, masked as the caller must see it
   (REC may be changed in place). */
static void
s_reply_record(req_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *rec)
{
    Crm__EntityReply *er = &ctx->body.entity;
    if (ctx->reply.body_case != CRM__REPLY__BODY_ENTITY) {
        crm__entity_reply__init(er);
        er->kind = (char *)e->name;
        ctx->reply.body_case = CRM__REPLY__BODY_ENTITY;
        ctx->reply.entity = er;
    }
    if (!rec)
        return;
    authz_redact(ctx->session.user, e, rec);
    ProtobufCBinaryData *grown = realloc(er->records, (er->n_records + 1) * sizeof *grown);
    CRM_ASSERT_ALLOC(grown);
    if (er->records == NULL)
        dispatch_own(ctx, grown);
    else
        for (size_t i = 0; i < ctx->n_owned; i++) /* the array moved: follow it */
            if (ctx->owned[i] == er->records)
                ctx->owned[i] = grown;
    er->records = grown;
    size_t len;
    uint8_t *packed = dispatch_own(ctx, crm_proto_pack(rec, &len));
    er->records[er->n_records].data = packed;
    er->records[er->n_records].len = len;
    er->n_records++;
}

/* Finish the mutation: its change-log entry (which gives it its sequence
   number) and its audit entry, old -> new for the changed fields. CUR is the
   record before (NULL on create), NEXT after (NULL on delete). */
static void
s_end(req_ctx_t *ctx, const crm_entity_t *e, uint64_t num, Crm__ChangeOp op,
      const ProtobufCMessage *cur, const ProtobufCMessage *next, char **fields, size_t nfields,
      char **also_deleted, size_t n_also)
{
    const Crm__User *u = ctx->session.user;
    const char *id = crm_record_get_str(next ? next : cur, "id");
    int64_t now = crm_time_now_ms();
    Crm__Change change = CRM__CHANGE__INIT;
    change.time = now;
    change.actor = u->name;
    change.kind = (char *)e->name;
    change.id = (char *)id;
    change.op = op;
    change.fields = fields;
    change.n_fields = nfields;
    change.actor_department = u->department;
    change.also_deleted = also_deleted;
    change.n_also_deleted = n_also;
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    const char *owner = crm_entity_field_with(e, CRM_F_OWNER);
    if (cur && consent)
        change.hidden_before = !*(const protobuf_c_boolean *)((const char *)cur +
                                                              crm_record_field(e->desc, consent)
                                                                  ->offset);
    if (cur && owner)
        change.owner_before = (char *)crm_record_get_str(cur, owner);
    size_t len, rlen;
    uint8_t *record = crm_proto_pack(next ? next : cur, &rlen);
    change.record.data = record;
    change.record.len = rlen;
    uint8_t *event = crm_proto_pack(&change.base, &len);
    uint64_t seq = store_group_end(ctx->env->group, event, len);
    free(event);
    free(record);

    static const char *const actions[] = {"", "create", "update", "delete"};
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
    entry.time = now;
    entry.user = u->name;
    entry.department = u->department;
    entry.role = u->role;
    entry.kind = (char *)e->name;
    entry.id = (char *)id;
    entry.action = (char *)actions[op];
    entry.seq = seq;
    if (op != CRM__CHANGE_OP__DELETE)
        audit_changes(&entry, e, cur, next, cur ? fields : NULL, cur ? nfields : 0);
    audit_stage(ctx->env->group, ctx->env->store, &entry, e, num);
    audit_changes_free(&entry);
    ctx->staged = true;
}

/* Checks that need the store: the parent exists, named users exist. */
static crm_err_t
s_check_refs(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *rec)
{
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        if (!(r->flags & (CRM_F_PARENT | CRM_F_USER)))
            continue;
        const char *v = crm_record_get_str(rec, r->field);
        if (!*v)
            continue;
        if (r->flags & CRM_F_USER) {
            Crm__User *u = NULL;
            crm_err_t rc = users_get_by_name(ctx->env->store, v, &u);
            users_free(&u);
            if (rc == CRM_ERR_NOT_FOUND)
                return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                      "field '%s': there is no user '%.64s'", r->field, v);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot look up user '%.64s'", v);
        } else {
            const crm_entity_t *pe = crm_entity_by_name(e->parent);
            uint64_t pnum = crm_entity_parse_id(pe, v);
            ProtobufCMessage *parent = NULL;
            crm_err_t rc = pnum ? records_group_get(ctx->env->group, pe, pnum, &parent)
                                : CRM_ERR_NOT_FOUND;
            crm_proto_free(&parent);
            if (rc == CRM_ERR_NOT_FOUND)
                return dispatch_error(ctx, CRM_ERR_NOT_FOUND, "field '%s': no %s '%.40s'",
                                      r->field, pe->name, v);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot read %s '%.40s'", pe->name, v);
        }
    }
    return CRM_OK;
}

/* Create REC (taken over: freed here) as a new record of kind E; with ECHO
   the stored record goes into the reply. */
static crm_err_t
s_create(req_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *rec, char id[24], bool echo)
{
    crm_err_t rc = CRM_OK;
    store_group_t *g = ctx->env->group;
    bool begun = false;
    const Crm__User *caller = ctx->session.user;
    int64_t now = crm_time_now_ms();

    for (const crm_rule_t *r = e->rules; r->field; r++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->field);
        if ((r->flags & (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT)) &&
            crm_record_is_set(rec, fd)) {
            rc = dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                "field '%s' is set by the server; leave it out", r->field);
            goto cleanup;
        }
        if (r->def && !crm_record_is_set(rec, fd)) {
            if (!strcmp(r->def, "now"))
                crm_record_set_i64(rec, r->field, now);
            else if ((rc = crm_record_set_text(rec, fd, r->def, false, ctx->errbuf)) != CRM_OK)
                goto cleanup;
        }
        if (r->flags & CRM_F_CALLER)
            crm_record_set_str(rec, r->field, caller->name);
        if (r->flags & CRM_F_CALLER_DEPT)
            crm_record_set_enum(rec, r->field, caller->department);
    }
    /* a sales user's new customer is theirs unless they name another owner */
    for (const crm_rule_t *r = e->rules; r->field; r++)
        if ((r->flags & CRM_F_OWNER) && (r->flags & CRM_F_USER) &&
            caller->department == CRM__DEPARTMENT__SALES &&
            !*crm_record_get_str(rec, r->field))
            crm_record_set_str(rec, r->field, caller->name);
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    const char *consent_at = crm_entity_field_with(e, CRM_F_CONSENT_AT);
    if (consent && consent_at &&
        crm_record_is_set(rec, crm_record_field(e->desc, consent)) &&
        !crm_record_get_i64(rec, consent_at))
        crm_record_set_i64(rec, consent_at, now);
    if ((rc = crm_record_normalize(e, rec, ctx->errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = authz_record(caller, e, AUTHZ_CREATE, NULL, rec, NULL, 0, ctx->errbuf)) !=
        CRM_OK) {
        dispatch_deny(ctx, e->name, "", "create");
        goto cleanup;
    }
    store_group_begin(g);
    begun = true;
    if ((rc = s_check_refs(ctx, e, rec)) != CRM_OK)
        goto cleanup;
    uint64_t num;
    if ((rc = records_next_num(g, e, &num)) != CRM_OK) {
        dispatch_error(ctx, rc, "cannot allocate an id");
        goto cleanup;
    }
    crm_entity_format_id(e, num, id);
    crm_record_set_str(rec, "id", id);
    crm_record_set_u64(rec, "version", 1);
    crm_record_set_i64(rec, "created_at", now);
    crm_record_set_i64(rec, "updated_at", now);
    crm_record_set_str(rec, "created_by", caller->name);
    crm_record_set_str(rec, "updated_by", caller->name);
    records_stage_put(g, e, num, NULL, rec);
    char *fields[64];
    size_t nf = 0;
    for (unsigned i = 0; i < e->desc->n_fields && nf < 64; i++)
        if (crm_record_is_set(rec, &e->desc->fields[i]))
            fields[nf++] = (char *)e->desc->fields[i].name;
    s_end(ctx, e, num, CRM__CHANGE_OP__CREATE, NULL, rec, fields, nf, NULL, 0);
    begun = false;
    if (echo)
        s_reply_record(ctx, e, rec);
cleanup:
    if (begun)
        store_group_abort(g);
    crm_proto_free(&rec);
    return rc;
}

static crm_err_t
s_unpack(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCBinaryData *b,
         ProtobufCMessage **out)
{
    crm_err_t rc = crm_proto_unpack(e->desc, b->data, b->len, out, ctx->errbuf);
    if (rc == CRM_ERR_INVALID_ARGUMENT && b->len == 0)
        return dispatch_error(ctx, rc, "the request carries no %s record", e->name);
    return rc;
}

/* ==== Handlers ==== */

crm_err_t
h_entity_create(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    ProtobufCMessage *rec = NULL;
    char id[24];
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc == CRM_OK && (rc = s_unpack(ctx, e, &r->record, &rec)) == CRM_OK)
        rc = s_create(ctx, e, rec, id, true);
    return rc;
}

crm_err_t
h_entity_get(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    ProtobufCMessage *rec = NULL;
    uint64_t num;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK)
        return rc;
    rc = records_get(ctx->env->store, e, num, &rec);
    if (rc == CRM_ERR_NOT_FOUND)
        return dispatch_error(ctx, rc, "no %s '%.40s'", e->name, r->id);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read %s '%.40s'", e->name, r->id);
    rc = authz_record(ctx->session.user, e, AUTHZ_READ, rec, NULL, NULL, 0, ctx->errbuf);
    if (rc == CRM_OK)
        s_reply_record(ctx, e, rec);
    else
        dispatch_deny(ctx, e->name, r->id, "read");
    crm_proto_free(&rec);
    return rc;
}

/* Load record NUM through the group and check, in this order, that the
   caller may do ACTION on it (with FIELDS for an update) and that the change
   is based on its current version. A denial is returned as
   PERMISSION_DENIED with ctx->errbuf set; the caller aborts and audits it. */
static crm_err_t
s_load_checked(req_ctx_t *ctx, const crm_entity_t *e, const Crm__EntityRequest *r, uint64_t num,
               authz_action_t action, ProtobufCMessage **out)
{
    crm_err_t rc = records_group_get(ctx->env->group, e, num, out);
    if (rc == CRM_ERR_NOT_FOUND)
        return dispatch_error(ctx, rc, "no %s '%.40s'", e->name, r->id);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read %s '%.40s'", e->name, r->id);
    if ((rc = authz_record(ctx->session.user, e, action, *out, NULL, r->fields, r->n_fields,
                           ctx->errbuf)) != CRM_OK) {
        crm_proto_free(out);
        return rc;
    }
    if (r->expect_version == 0) {
        crm_proto_free(out);
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "expect_version is required: send the version your change is "
                              "based on (crm reads it for you)");
    }
    uint64_t cur = crm_record_get_u64(*out, "version");
    if (cur != r->expect_version) {
        ctx->current_version = cur;
        crm_proto_free(out);
        return dispatch_error(ctx, CRM_ERR_CONFLICT,
                              "%s '%.40s' changed meanwhile: it is at version %llu, your change "
                              "was based on version %llu; reload it and try again",
                              e->name, r->id, (unsigned long long)cur,
                              (unsigned long long)r->expect_version);
    }
    return CRM_OK;
}

crm_err_t
h_entity_update(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    ProtobufCMessage *cur = NULL, *old = NULL, *patch = NULL;
    store_group_t *g = ctx->env->group;
    uint64_t num;
    bool begun = false;
    char *changed[64];
    size_t nchanged = 0;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK)
        return rc;
    if (r->n_fields == 0)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "nothing to change: name a field");
    for (size_t i = 0; i < r->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->fields[i]);
        if (!fd)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "unknown field '%.40s' on '%s'",
                                  r->fields[i], e->name);
        if (crm_entity_flags(e, fd->name) &
            (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT | CRM_F_PARENT))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "field '%s' cannot be changed",
                                  fd->name);
    }
    if ((rc = s_unpack(ctx, e, &r->record, &patch)) != CRM_OK)
        return rc;
    store_group_begin(g);
    begun = true;
    if ((rc = s_load_checked(ctx, e, r, num, AUTHZ_UPDATE, &cur)) != CRM_OK ||
        (rc = records_group_get(g, e, num, &old)) != CRM_OK)
        goto cleanup;
    for (size_t i = 0; i < r->n_fields; i++)
        crm_record_swap(cur, patch, crm_record_field(e->desc, r->fields[i]));
    /* consent changed and no time given: now */
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    const char *consent_at = crm_entity_field_with(e, CRM_F_CONSENT_AT);
    if (consent && consent_at) {
        char *a = crm_record_format(old, crm_record_field(e->desc, consent), false, false);
        char *b = crm_record_format(cur, crm_record_field(e->desc, consent), false, false);
        if (strcmp(a, b) && crm_record_get_i64(cur, consent_at) ==
                                crm_record_get_i64(old, consent_at))
            crm_record_set_i64(cur, consent_at, crm_time_now_ms());
        free(a);
        free(b);
    }
    if ((rc = crm_record_normalize(e, cur, ctx->errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = authz_record(ctx->session.user, e, AUTHZ_UPDATE, old, cur, r->fields, r->n_fields,
                           ctx->errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = s_check_refs(ctx, e, cur)) != CRM_OK)
        goto cleanup;
    /* only the named fields (and a consent time) can differ: the others were
       normalized when stored */
    for (unsigned i = 0; i < e->desc->n_fields && nchanged < 64; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        bool named = consent_at && !strcmp(fd->name, consent_at);
        for (size_t j = 0; !named && j < r->n_fields; j++)
            named = crm_record_field(e->desc, r->fields[j]) == fd;
        if (!named)
            continue;
        char *a = crm_record_format(old, fd, false, false);
        char *b = crm_record_format(cur, fd, false, false);
        if (strcmp(a, b))
            changed[nchanged++] = (char *)fd->name;
        free(a);
        free(b);
    }
    if (nchanged == 0) { /* nothing differs: no new version, no event */
        store_group_abort(g);
        begun = false;
    } else {
        crm_record_set_u64(cur, "version", crm_record_get_u64(old, "version") + 1);
        crm_record_set_i64(cur, "updated_at", crm_time_now_ms());
        crm_record_set_str(cur, "updated_by", ctx->session.user->name);
        records_stage_put(g, e, num, old, cur);
        s_end(ctx, e, num, CRM__CHANGE_OP__UPDATE, old, cur, changed, nchanged, NULL, 0);
        begun = false;
    }
    /* what was hidden before the change stays hidden in its answer */
    if (authz_hides(ctx->session.user, e, old))
        authz_mask_pii(ctx->session.user, e, cur);
    s_reply_record(ctx, e, cur);
cleanup:
    if (begun)
        store_group_abort(g);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        dispatch_deny(ctx, e->name, r->id, "update");
    crm_proto_free(&cur);
    crm_proto_free(&old);
    crm_proto_free(&patch);
    return rc;
}

/* Stage the deletion of every child record of PARENT_ID (a customer's
   activities) as part of the parent's mutation, staged ones included; their
   ids go to *ids (malloc'd, for the change event) and each gets an audit entry. */
static crm_err_t
s_delete_children(req_ctx_t *ctx, const crm_entity_t *parent, const char *parent_id,
                  char ***ids_out, size_t *n_out)
{
    store_group_t *g = ctx->env->group;
    *ids_out = NULL;
    *n_out = 0;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, parent->name))
            continue;
        uint64_t ids[256];
        size_t n;
        bool more = true;
        while (more) { /* what was deleted no longer shows: always read from the start */
            crm_err_t rc =
                records_children(ctx->env->store, g, k, parent_id, 0, 256, ids, &n, &more);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot read the %s records of '%s'", k->name,
                                      parent_id);
            if (n == 0)
                break;
            for (size_t i = 0; i < n; i++) {
                ProtobufCMessage *child = NULL;
                if (records_group_get(g, k, ids[i], &child) == CRM_OK) {
                    records_stage_delete(g, k, ids[i], child);
                    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
                    entry.time = crm_time_now_ms();
                    entry.user = ctx->session.user->name;
                    entry.department = ctx->session.user->department;
                    entry.role = ctx->session.user->role;
                    entry.kind = (char *)k->name;
                    entry.id = (char *)crm_record_get_str(child, "id");
                    entry.action = (char *)"delete";
                    entry.reason = (char *)"deleted with its customer";
                    audit_stage(g, ctx->env->store, &entry, k, ids[i]);
                    *ids_out = realloc(*ids_out, (*n_out + 1) * sizeof **ids_out);
                    CRM_ASSERT_ALLOC(*ids_out);
                    (*ids_out)[(*n_out)++] = strdup(crm_record_get_str(child, "id"));
                }
                crm_proto_free(&child);
            }
        }
    }
    return CRM_OK;
}

crm_err_t
h_entity_delete(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    ProtobufCMessage *cur = NULL;
    char **children = NULL;
    size_t nchildren = 0;
    uint64_t num;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK)
        return rc;
    store_group_begin(ctx->env->group);
    if ((rc = s_load_checked(ctx, e, r, num, AUTHZ_DELETE, &cur)) != CRM_OK ||
        (rc = s_delete_children(ctx, e, r->id, &children, &nchildren)) != CRM_OK) {
        store_group_abort(ctx->env->group);
        if (rc == CRM_ERR_PERMISSION_DENIED)
            dispatch_deny(ctx, e->name, r->id, "delete");
    } else {
        records_stage_delete(ctx->env->group, e, num, cur);
        s_end(ctx, e, num, CRM__CHANGE_OP__DELETE, cur, NULL, NULL, 0, children, nchildren);
        s_reply_record(ctx, e, NULL);
    }
    for (size_t i = 0; i < nchildren; i++)
        free(children[i]);
    free(children);
    crm_proto_free(&cur);
    return rc;
}

/* Fill the reply with the records IDS (committed data). */
static crm_err_t
s_reply_ids(req_ctx_t *ctx, const crm_entity_t *e, const uint64_t *ids, size_t n, bool more)
{
    s_reply_record(ctx, e, NULL);
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *rec = NULL;
        crm_err_t rc = records_get(ctx->env->store, e, ids[i], &rec);
        if (rc == CRM_ERR_NOT_FOUND)
            continue; /* deleted since the index was read */
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot read a %s record", e->name);
        char errbuf[CRM_ERRBUF];
        if (authz_record(ctx->session.user, e, AUTHZ_READ, rec, NULL, NULL, 0, errbuf) ==
            CRM_OK)
            s_reply_record(ctx, e, rec);
        crm_proto_free(&rec);
    }
    if (more && n) {
        char *next = dispatch_own(ctx, malloc(24));
        crm_entity_format_id(e, ids[n - 1], next);
        ctx->body.entity.next_after = next;
    }
    return CRM_OK;
}

/* Records whose PII the caller sees masked may not be found through it. */
static bool
s_consented(const ProtobufCMessage *rec, const void *arg)
{
    const crm_entity_t *e = arg;
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    return !consent || *(const protobuf_c_boolean *)((const char *)rec +
                                                     crm_record_field(e->desc, consent)->offset);
}

static crm_err_t
s_may_read(req_ctx_t *ctx, const crm_entity_t *e)
{
    crm_err_t rc = authz_kind(ctx->session.user, e, AUTHZ_READ, ctx->errbuf);
    return rc == CRM_OK ? rc : dispatch_deny(ctx, e->name, "", "read");
}

static crm_err_t
s_paging(req_ctx_t *ctx, const crm_entity_t *e, const Crm__EntityRequest *r, size_t *limit,
         uint64_t *after)
{
    *limit = r->limit ? r->limit : LIST_DEFAULT;
    if (*limit > LIST_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "limit %u is over the maximum %d",
                              r->limit, LIST_MAX);
    *after = 0;
    if (*r->after && (*after = crm_entity_parse_id(e, r->after)) == 0)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a %s id", r->after,
                              e->name);
    return CRM_OK;
}

crm_err_t
h_entity_list(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    records_term_t terms[RECORDS_MAX_TERMS];
    size_t nterms = 0, limit, n = 0;
    uint64_t after, ids[LIST_MAX];
    bool more = false;
    bool masked = false;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK || (rc = s_may_read(ctx, e)) != CRM_OK ||
        (rc = s_paging(ctx, e, r, &limit, &after)) != CRM_OK)
        return rc;
    if (r->n_filters > RECORDS_MAX_TERMS)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "at most %d filters",
                              RECORDS_MAX_TERMS);
    /* the parent field (an activity's customer) lists a timeline, newest first */
    if (r->n_filters == 1 && (crm_entity_flags(e, r->filters[0]->field) & CRM_F_PARENT)) {
        rc = records_children(ctx->env->store, NULL, e, r->filters[0]->value, after, limit, ids,
                              &n,
                              &more);
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot list: bad cursor or storage failure");
        return s_reply_ids(ctx, e, ids, n, more);
    }
    for (; nterms < r->n_filters; nterms++) {
        if ((rc = records_term(e, r->filters[nterms]->field, r->filters[nterms]->value,
                               &terms[nterms], ctx->errbuf)) != CRM_OK)
            goto cleanup;
        masked = masked || authz_masks(ctx->session.user, e, r->filters[nterms]->field);
    }
    rc = records_query(ctx->env->store, e, terms, nterms, after, limit, ids, &n, &more,
                       masked ? s_consented : NULL, e);
    if (rc == CRM_OK)
        rc = s_reply_ids(ctx, e, ids, n, more);
    else
        dispatch_error(ctx, rc, "cannot list %s records", e->name);
cleanup:
    for (size_t i = 0; i < nterms; i++)
        records_term_release(&terms[i]);
    return rc;
}

crm_err_t
h_entity_search(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    records_term_t terms[RECORDS_MAX_TERMS];
    size_t nterms = 0, limit, n = 0;
    uint64_t after, ids[LIST_MAX];
    bool more = false;
    char *folded = NULL;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK || (rc = s_may_read(ctx, e)) != CRM_OK ||
        (rc = s_paging(ctx, e, r, &limit, &after)) != CRM_OK)
        return rc;
    const char *text = r->text;
    while (*text == ' ')
        text++;
    if (!*text)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "search text is empty");
    char phone[24];
    bool digits = strspn(text, "0123456789 +-()") == strlen(text) &&
                  strpbrk(text, "0123456789") != NULL;
    const char *field = NULL;
    for (const crm_index_t *i = e->indexes; i->field; i++) {
        if (strchr(text, '@') && (crm_entity_flags(e, i->field) & CRM_F_EMAIL))
            field = i->field;
        if (digits && i->kind == CRM_IDX_PHONE &&
            (strlen(text) == 4 || crm_record_phone(text, phone)))
            field = i->field;
    }
    if (field) {
        rc = records_term(e, field, text, &terms[0], ctx->errbuf);
        nterms = rc == CRM_OK;
    } else {
        rc = records_text_terms(e, text, terms, &nterms, ctx->errbuf);
        /* a query that is one gram (a character, or a pair within a word) is
           answered by its posting list alone; longer ones are checked per
           candidate for the whole text */
        if (rc == CRM_OK && (nterms > 1 || strpbrk(text, " \t")))
            folded = crm_utf8_fold(text);
    }
    if (rc != CRM_OK)
        goto cleanup;
    bool (*match)(const ProtobufCMessage *, const void *) = NULL;
    const void *arg = NULL;
    if (folded) {
        match = records_text_match;
        arg = folded;
    } else if (field && authz_masks(ctx->session.user, e, field)) {
        match = s_consented; /* a masked phone or e-mail must not be found */
        arg = e;
    }
    rc = records_query(ctx->env->store, e, terms, nterms, after, limit, ids, &n, &more, match,
                       arg);
    if (rc == CRM_OK)
        rc = s_reply_ids(ctx, e, ids, n, more);
    else
        dispatch_error(ctx, rc, "cannot search %s records", e->name);
cleanup:
    for (size_t i = 0; i < nterms; i++)
        records_term_release(&terms[i]);
    free(folded);
    return rc;
}

crm_err_t
h_entity_import(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK)
        return rc;
    if (r->n_records > IMPORT_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "%zu records in one import request, at most %d", r->n_records,
                              IMPORT_MAX);
    s_reply_record(ctx, e, NULL);
    Crm__EntityReply *er = &ctx->body.entity;
    er->n_results = r->n_records;
    er->results = dispatch_own(ctx, calloc(r->n_records ? r->n_records : 1, sizeof *er->results));
    Crm__ImportResult *res = dispatch_own(ctx, calloc(r->n_records + 1, sizeof *res));
    char *idbuf = dispatch_own(ctx, calloc(r->n_records + 1, 24));
    for (size_t i = 0; i < r->n_records; i++) {
        ProtobufCMessage *rec = NULL;
        crm__import_result__init(&res[i]);
        res[i].index = (uint32_t)i;
        ctx->errbuf[0] = '\0';
        crm_err_t one = s_unpack(ctx, e, &r->records[i], &rec);
        if (one == CRM_OK)
            one = s_create(ctx, e, rec, idbuf + 24 * i, false);
        res[i].status = (Crm__ErrorCode)one;
        if (one == CRM_OK)
            res[i].id = idbuf + 24 * i;
        else
            res[i].message = dispatch_own(ctx, strdup(ctx->errbuf[0] ? ctx->errbuf
                                                                     : crm_err_str(one)));
        er->results[i] = &res[i];
    }
    return CRM_OK;
}
