/*  =========================================================================
    authz - the policy table and its decisions (see authz.h, policy.def)
    =========================================================================
*/
#include "authz.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crm_proto.h"
#include "crm_record.h"

typedef enum { NONE, OWN, DEPT, ALL } s_scope_t;
enum { MASK = 1, LEADS = 2, REASSIGN = 4 };
#define ANY (-1)

typedef struct {
    const char *kind;             /* "*" for every kind */
    int department;               /* Crm__Department, or ANY */
    int role;                     /* Crm__Role */
    s_scope_t scope[AUTHZ__COUNT];
    const char *writable;         /* comma-separated fields, or "*" */
    unsigned flags;
} s_rule_t;

#define SALES CRM__DEPARTMENT__SALES
#define SUPPORT CRM__DEPARTMENT__SUPPORT
#define MARKETING CRM__DEPARTMENT__MARKETING
#define STAFF CRM__ROLE__STAFF
#define MANAGER CRM__ROLE__MANAGER
#define ADMIN CRM__ROLE__ADMIN
#define RECORD_DEPT (-1) /* REFER: the department of the record itself */

#define STAMP(kind, field, trigger, when, value)
#define REFER(kind, field, dept)
#define LINK(kind, field, action)
static const s_rule_t s_policy[] = {
#define POLICY(kind, dept, role, r, c, u, d, writable, flags)                                      \
    {#kind, dept, role, {r, c, u, d}, writable, flags},
#include "policy.def"
#undef POLICY
};
#undef STAMP
#undef REFER
#undef LINK

enum { OFF, ON };
enum { NOW, CALLER };
typedef struct {
    const char *kind, *field, *trigger;
    int when, value;
} s_stamp_t;

typedef struct {
    const char *kind, *field;
    int department;
} s_refer_t;

typedef struct {
    const char *kind, *field;
    authz_action_t action;
} s_link_t;

#define POLICY(kind, dept, role, r, c, u, d, writable, flags)
#define REFER(kind, field, dept)
#define LINK(kind, field, action)
static const s_stamp_t s_stamps[] = {
#define STAMP(kind, field, trigger, when, value) {#kind, #field, #trigger, when, value},
#include "policy.def"
#undef STAMP
};
#undef REFER
#define STAMP(kind, field, trigger, when, value)
static const s_refer_t s_refers[] = {
#define REFER(kind, field, dept) {#kind, #field, dept},
#include "policy.def"
#undef REFER
};
#undef LINK
#define REFER(kind, field, dept)
static const s_link_t s_links[] = {
#define LINK(kind, field, action) {#kind, #field, AUTHZ_##action},
#include "policy.def"
#undef LINK
};
#undef REFER
#undef STAMP
#undef POLICY

static const char *const s_actions[AUTHZ__COUNT] = {"read", "create", "update", "delete"};

const char *
authz_action_name(authz_action_t a)
{
    return s_actions[a];
}

void
authz_who(const Crm__User *u, char *out, size_t n)
{
    char dept[32], role[32];
    crm_record_enum_name(&crm__department__descriptor, u->department, dept, sizeof dept);
    crm_record_enum_name(&crm__role__descriptor, u->role, role, sizeof role);
    if (u->role == ADMIN || !*dept)
        snprintf(out, n, "%s", *role ? role : "a user without a role");
    else
        snprintf(out, n, "%s %s", dept, role);
}

static const s_rule_t *
s_rule_scan(int role, int department, const crm_entity_t *e)
{
    for (size_t i = 0; i < sizeof s_policy / sizeof s_policy[0]; i++) {
        const s_rule_t *r = &s_policy[i];
        if (r->role == role && (r->department == ANY || r->department == department) &&
            (r->kind[0] == '*' || !strcmp(r->kind, e->name)))
            return r;
    }
    return NULL;
}

/* The row for each kind (its place in the entity table), role and department,
   found once: a decision is then an index, not a scan of the policy comparing
   kind names (the feed decides three or four times per part and subscriber, and
   the scan's strcmp was 9 % of crmd's time delivering to 100 subscribers) */
#define MEMO_KINDS 32
#define MEMO_ENUM 8 /* roles and departments */
static const s_rule_t *s_memo[MEMO_KINDS][MEMO_ENUM][MEMO_ENUM];
static size_t s_memo_kinds;
static pthread_once_t s_memo_once = PTHREAD_ONCE_INIT;

static void
s_memo_build(void)
{
    const crm_entity_t *all = crm_entity_all();
    for (size_t k = 0; all[k].name && k < MEMO_KINDS; k++, s_memo_kinds = k)
        for (int role = 0; role < MEMO_ENUM; role++)
            for (int dept = 0; dept < MEMO_ENUM; dept++)
                s_memo[k][role][dept] = s_rule_scan(role, dept, &all[k]);
}

static const s_rule_t *
s_rule(const Crm__User *u, const crm_entity_t *e)
{
    pthread_once(&s_memo_once, s_memo_build);
    uintptr_t at = (uintptr_t)e, first = (uintptr_t)crm_entity_all();
    size_t k = (at - first) / sizeof *e;
    if (at >= first && k < s_memo_kinds && (at - first) % sizeof *e == 0 &&
        (unsigned)u->role < MEMO_ENUM && (unsigned)u->department < MEMO_ENUM)
        return s_memo[k][u->role][u->department];
    return s_rule_scan((int)u->role, (int)u->department, e); /* a kind or value of no row */
}

static crm_err_t s_deny(const Crm__User *u, char *errbuf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static crm_err_t
s_deny(const Crm__User *u, char *errbuf, const char *fmt, ...)
{
    char who[64];
    va_list ap;
    authz_who(u, who, sizeof who);
    int n = snprintf(errbuf, CRM_ERRBUF, "permission denied: %s may not ", who);
    va_start(ap, fmt);
    vsnprintf(errbuf + n, CRM_ERRBUF - (size_t)n, fmt, ap);
    va_end(ap);
    return CRM_ERR_PERMISSION_DENIED;
}

crm_err_t
authz_kind(const Crm__User *u, const crm_entity_t *e, authz_action_t a, char *errbuf)
{
    const s_rule_t *r = s_rule(u, e);
    if (!r || r->scope[a] == NONE)
        return s_deny(u, errbuf, "%s %s records", s_actions[a], e->name);
    return CRM_OK;
}

static bool
s_listed(const char *list, const char *field)
{
    if (!strcmp(list, "*"))
        return true;
    size_t n = strlen(field);
    for (const char *p = list; (p = strstr(p, field)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* Is REC within SCOPE for U? */
static bool
s_in_scope(const Crm__User *u, const crm_entity_t *e, s_scope_t scope, const ProtobufCMessage *rec)
{
    if (scope == ALL)
        return true;
    if (scope == NONE || !rec)
        return false;
    if (scope == OWN) {
        const char *f = crm_entity_field_with(e, CRM_F_OWNER);
        const char *owner = f ? crm_record_get_str(rec, f) : "";
        /* a customer nobody owns is everybody's; an activity always has an author */
        return !strcmp(owner, u->name) || (!*owner && !(crm_entity_flags(e, f) & CRM_F_CALLER));
    }
    const char *f = crm_entity_field_with(e, CRM_F_CALLER_DEPT);
    return f && crm_record_get_enum(rec, f) == (int)u->department;
}

static bool
s_stage_is_lead_or_prospect(int stage)
{
    return stage == CRM__STAGE__LEAD || stage == CRM__STAGE__PROSPECT;
}

crm_err_t
authz_record(const Crm__User *u, const crm_entity_t *e, authz_action_t a,
             const ProtobufCMessage *cur, const ProtobufCMessage *next, char *const *fields,
             size_t nfields, char *errbuf)
{
    const s_rule_t *r = s_rule(u, e);
    if (!r || r->scope[a] == NONE)
        return s_deny(u, errbuf, "%s %s records", s_actions[a], e->name);
    if (a != AUTHZ_CREATE && !s_in_scope(u, e, r->scope[a], cur))
        return r->scope[a] == OWN
                   ? s_deny(u, errbuf, "%s %s records they do not own", s_actions[a], e->name)
                   : s_deny(u, errbuf, "%s %s records of another department", s_actions[a],
                            e->name);
    if (a == AUTHZ_UPDATE)
        for (size_t i = 0; i < nfields; i++)
            if (!s_listed(r->writable, fields[i]))
                return s_deny(u, errbuf, "change field '%s' of %s records", fields[i], e->name);
    /* the owner: managers reassign; others may only take what nobody owns */
    const char *of = crm_entity_field_with(e, CRM_F_OWNER);
    if (next && of && !(crm_entity_flags(e, of) & CRM_F_CALLER) && !(r->flags & REASSIGN)) {
        const char *was = cur ? crm_record_get_str(cur, of) : "";
        const char *now = crm_record_get_str(next, of);
        if (strcmp(was, now) && !(!*was && !strcmp(now, u->name)))
            return s_deny(u, errbuf, "give %s records to another owner (%s)", e->name,
                          "only managers reassign");
    }
    /* marketing: leads in, and stage only between lead and prospect */
    if (next && (r->flags & LEADS) && crm_record_field(e->desc, "stage")) {
        int now = crm_record_get_enum(next, "stage");
        int was = cur ? crm_record_get_enum(cur, "stage") : CRM__STAGE__LEAD;
        if (a == AUTHZ_CREATE && now != CRM__STAGE__LEAD)
            return s_deny(u, errbuf, "create %s records at a stage other than '%s'", e->name,
                          "lead");
        if (a == AUTHZ_UPDATE && was != now &&
            !(s_stage_is_lead_or_prospect(was) && s_stage_is_lead_or_prospect(now)))
            return s_deny(u, errbuf, "move the stage of %s records beyond %s", e->name,
                          "lead and prospect");
    }
    return CRM_OK;
}

void
authz_mask_value(const char *field, const char *in, char *out, size_t n)
{
    size_t len = strlen(in);
    const char *at = strchr(in, '@');
    if (!strcmp(field, "phones") && len >= 11) /* 138****5678: 4 of 11 digits hidden */
        snprintf(out, n, "%.3s****%s", in, in + len - 4);
    else if (!strcmp(field, "phones") && len >= 6) /* short numbers: the last 2 only */
        snprintf(out, n, "****%s", in + len - 2);
    else if (!strcmp(field, "emails") && at) { /* z***@e***.com */
        const char *dot = strrchr(at, '.');
        snprintf(out, n, "%.1s***@%.1s***%s", in, at + 1, dot && dot > at + 1 ? dot : "");
    } else if (!strcmp(field, "birthday"))
        snprintf(out, n, "****-**-**");
    else
        snprintf(out, n, "***");
}

bool
authz_masks(const Crm__User *u, const crm_entity_t *e, const char *field)
{
    const s_rule_t *r = s_rule(u, e);
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    return r && (r->flags & MASK) && fd && (crm_entity_flags_of(e, fd) & CRM_F_PII);
}

bool
authz_hides(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *rec)
{
    const s_rule_t *r = s_rule(u, e);
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    return r && (r->flags & MASK) && consent &&
           !*(const protobuf_c_boolean *)((const char *)rec +
                                          crm_record_field(e->desc, consent)->offset);
}

bool
authz_masks_pii(const Crm__User *u, const crm_entity_t *e)
{
    const s_rule_t *r = s_rule(u, e);
    return r && (r->flags & MASK);
}

void
authz_mask_pii(const Crm__User *u, const crm_entity_t *e, ProtobufCMessage *rec)
{
    char errbuf[CRM_ERRBUF];
    if (!authz_masks_pii(u, e))
        return;
    for (const crm_rule_t *fr = e->rules; fr->field; fr++) {
        if (!(fr->flags & CRM_F_PII))
            continue;
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fr->field);
        if (!crm_record_is_set(rec, fd))
            continue;
        /* rebuild the field from masked copies of its values */
        ProtobufCMessage *tmp = crm_proto_new(e->desc);
        size_t n = fd->label == PROTOBUF_C_LABEL_REPEATED ? crm_record_count(rec, fd) : 1;
        for (size_t i = 0; i < n; i++) {
            const char *v = fd->label == PROTOBUF_C_LABEL_REPEATED
                                ? crm_record_str_at(rec, fd, i)
                                : crm_record_get_str(rec, fd->name);
            char m[128];
            authz_mask_value(fd->name, v, m, sizeof m);
            crm_record_set_text(tmp, fd, m, false, errbuf);
        }
        crm_record_swap(rec, tmp, fd);
        crm_proto_free(&tmp);
    }
}

bool
authz_redact(const Crm__User *u, const crm_entity_t *e, ProtobufCMessage *rec)
{
    if (!authz_hides(u, e, rec))
        return false;
    authz_mask_pii(u, e, rec);
    return true;
}

bool
authz_audit(const Crm__User *u, int dept)
{
    return u->role == ADMIN || (u->role == MANAGER && (int)u->department == dept);
}

static bool
s_flag(const ProtobufCMessage *rec, const crm_entity_t *e, const char *field)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    return rec && fd && *(const protobuf_c_boolean *)((const char *)rec + fd->offset);
}

void
authz_stamp(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
            ProtobufCMessage *next, int64_t now)
{
    for (size_t i = 0; i < sizeof s_stamps / sizeof s_stamps[0]; i++) {
        const s_stamp_t *st = &s_stamps[i];
        if (strcmp(st->kind, e->name))
            continue;
        bool was = s_flag(cur, e, st->trigger), is = s_flag(next, e, st->trigger);
        if (was == is || is != (st->when == ON))
            continue;
        if (st->value == NOW)
            crm_record_set_i64(next, st->field, now);
        else
            crm_record_set_str(next, st->field, u->name);
    }
}

crm_err_t
authz_refer(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
            const ProtobufCMessage *next, authz_user_fn lookup, void *arg, char *errbuf)
{
    for (size_t i = 0; i < sizeof s_refers / sizeof s_refers[0]; i++) {
        const s_refer_t *r = &s_refers[i];
        if (strcmp(r->kind, e->name))
            continue;
        const char *name = crm_record_get_str(next, r->field);
        if (!*name || (cur && !strcmp(name, crm_record_get_str(cur, r->field))))
            continue;
        int want = r->department;
        if (want == RECORD_DEPT) { /* an admin names anyone, whatever their department */
            const char *df = crm_entity_field_with(e, CRM_F_CALLER_DEPT);
            want = df ? crm_record_get_enum(next, df) : 0;
            if (!want || u->role == ADMIN)
                continue;
        }
        int dept = 0, role = 0;
        crm_err_t rc = lookup(arg, name, &dept, &role);
        if (rc == CRM_ERR_NOT_FOUND) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s': there is no user '%.64s'", r->field, name);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (rc != CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "cannot look up user '%.64s'", name);
            return rc;
        }
        if (role != ADMIN && dept != want) {
            char wname[32];
            crm_record_enum_name(&crm__department__descriptor, want, wname, sizeof wname);
            snprintf(errbuf, CRM_ERRBUF, "field '%s': '%.64s' is not a %s user", r->field, name,
                     wname);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    return CRM_OK;
}

int
authz_link_action(const char *kind, const char *field)
{
    for (size_t i = 0; i < sizeof s_links / sizeof s_links[0]; i++)
        if (!strcmp(s_links[i].kind, kind) && !strcmp(s_links[i].field, field))
            return (int)s_links[i].action;
    return -1;
}

crm_err_t
authz_links(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
            const ProtobufCMessage *next, authz_get_fn get, void *arg, char *errbuf)
{
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++) {
        if (strcmp(l->kind, e->name))
            continue;
        const char *id = crm_record_get_str(next, l->field);
        if (!*id || (cur && !strcmp(id, crm_record_get_str(cur, l->field))))
            continue;
        int action = authz_link_action(l->kind, l->field);
        const crm_entity_t *t = crm_entity_by_name(l->target);
        const s_rule_t *r = t ? s_rule(u, t) : NULL;
        if (action < 0) /* a link without a policy row: nobody may set it (the unit test) */
            return s_deny(u, errbuf, "set %s.%s (no policy row)", l->kind, l->field);
        if (!r || r->scope[action] == NONE)
            return s_deny(u, errbuf, "%s %s records (field '%s' names one)", s_actions[action],
                          l->target, l->field);
        if (r->scope[action] == ALL)
            continue;
        ProtobufCMessage *named = NULL;
        crm_err_t rc = get(arg, t, id, &named);
        bool in = rc != CRM_OK || s_in_scope(u, t, r->scope[action], named);
        crm_proto_free(&named);
        if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND) {
            snprintf(errbuf, CRM_ERRBUF, "cannot read %s '%.24s'", l->target, id);
            return rc;
        }
        if (!in)
            return s_deny(u, errbuf, "%s %s records %s (field '%s' names %.24s)",
                          s_actions[action], l->target,
                          r->scope[action] == OWN ? "they do not own" : "of another department",
                          l->field, id);
    }
    return CRM_OK;
}
