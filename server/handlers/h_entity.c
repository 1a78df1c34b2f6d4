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
#include "conflict.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "crm_utf8.h"
#include "bin.h"
#include "derive.h"
#include "dispatch.h"
#include "mutation.h"
#include "records.h"
#include "users.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000
#define LIST_SCAN_BUDGET 2000 /* records one list page may read to check them (a few ms) */
#define IMPORT_MAX CRM_PROTO_IMPORT_MAX
#define RANGE_MAX 100000 /* ids one indexed range may select */
#define PARTS_MAX 5000   /* records one change may carry (a delete with its activities, a merge) */

/* ==== Shared steps ==== */

static crm_err_t
s_request(req_ctx_t *ctx, const Crm__EntityRequest **r, const crm_entity_t **e)
{
    *r = NULL; /* OUT parameters are always written */
    *e = NULL;
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

/* The context the kind hooks work in, for this request. */
static derive_ctx_t
s_dc(req_ctx_t *ctx)
{
    derive_ctx_t dc = {.store = ctx->env->store,
                       .g = ctx->env->group,
                       .rules = ctx->env->rules,
                       .actor = ctx->session.user,
                       .now = crm_time_now_ms(),
                       .fault_no_derive = ctx->env->fault_no_derive};
    return dc;
}

/* Fields a client never writes. */
static bool
s_server_set(unsigned flags)
{
    return (flags &
            (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT | CRM_F_DERIVED | CRM_F_STAMPED)) !=
           0;
}

/* authz_refer()'s view of the users: USER's department and role. */
static crm_err_t
s_user_dept(void *arg, const char *name, int *department, int *role)
{
    Crm__User *u = NULL;
    crm_err_t rc = users_get_by_name(arg, name, &u);
    if (rc == CRM_OK) {
        *department = (int)u->department;
        *role = (int)u->role;
    }
    users_free(&u);
    return rc;
}

/* authz_links()'s view of the records: the one of kind E with ID, staged writes
   included. */
static crm_err_t
s_get_named(void *arg, const crm_entity_t *e, const char *id, ProtobufCMessage **out)
{
    req_ctx_t *ctx = arg;
    uint64_t num = crm_entity_parse_id(e, id);
    return num ? records_group_get(ctx->env->group, e, num, out) : CRM_ERR_NOT_FOUND;
}

/* Checks that need the store: the parent exists, named users exist. With PARENT, the
   parent read goes there (the caller frees it; NULL if REC names none). */
static crm_err_t
s_check_refs(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *rec,
             ProtobufCMessage **parent_out)
{
    if (parent_out)
        *parent_out = NULL;
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
            if (parent_out && rc == CRM_OK) {
                crm_proto_free(parent_out);
                *parent_out = parent;
                parent = NULL;
            }
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

/* Make REC a valid new record of kind E: server-set fields, defaults,
   normalization, the kind's own checks, then the policy. PERMISSION_DENIED
   leaves the text in ctx->errbuf for the caller to audit. */
static crm_err_t
s_prepare_create(req_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *rec)
{
    crm_err_t rc;
    const Crm__User *caller = ctx->session.user;
    derive_ctx_t dc = s_dc(ctx);
    /* who may not create the kind at all hears that first */
    if ((rc = authz_kind(caller, e, AUTHZ_CREATE, ctx->errbuf)) != CRM_OK)
        return rc;
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->field);
        if (s_server_set(r->flags) && crm_record_is_set(rec, fd))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "field '%s' is set by the server; leave it out", r->field);
        if (r->def && !crm_record_is_set(rec, fd)) {
            if (!strcmp(r->def, "me"))
                crm_record_set_str(rec, r->field, caller->name);
            else if (!strcmp(r->def, "now"))
                crm_record_set_i64(rec, r->field, dc.now);
            else if ((rc = crm_record_set_text(rec, fd, r->def, false, ctx->errbuf)) != CRM_OK)
                return rc;
        }
        if (r->flags & CRM_F_CALLER)
            crm_record_set_str(rec, r->field, caller->name);
        if (r->flags & CRM_F_CALLER_DEPT)
            crm_record_set_enum(rec, r->field, caller->department);
    }
    /* a sales user's new customer or deal is theirs unless they name another owner */
    for (const crm_rule_t *r = e->rules; r->field; r++)
        if ((r->flags & CRM_F_SALES_OWNER) && caller->department == CRM__DEPARTMENT__SALES &&
            !*crm_record_get_str(rec, r->field))
            crm_record_set_str(rec, r->field, caller->name);
    /* the policy's stamps (consent given: when) and named users' departments */
    authz_stamp(caller, e, NULL, rec, dc.now);
    if ((rc = crm_record_normalize(e, rec, ctx->errbuf)) != CRM_OK ||
        (rc = crm_record_check_past(e, NULL, rec, dc.now, ctx->errbuf)) != CRM_OK ||
        (rc = authz_links(caller, e, NULL, rec, s_get_named, ctx, ctx->errbuf)) != CRM_OK ||
        (rc = derive_prepare(&dc, e, NULL, rec, NULL, 0, ctx->errbuf)) != CRM_OK ||
        (rc = authz_refer(caller, e, NULL, rec, s_user_dept, ctx->env->store, ctx->errbuf)) !=
            CRM_OK)
        return rc;
    return authz_record(caller, e, AUTHZ_CREATE, NULL, rec, NULL, 0, ctx->errbuf);
}

static bool s_consented(const ProtobufCMessage *rec, const void *arg);

/* Same folded name and the same folded company (the CRM_F_DUPE_NAME check). */
typedef struct {
    const char *name_field;
    char *name, *company;
} s_same_name_t;

/* Folded TEXT without white space: "李 娜" and "李娜", "Li Na" and "li na" are one name. */
static char *
s_name_key(const char *text)
{
    char *f = crm_utf8_fold(text), *out = f;
    for (char *p = f; *p; p++)
        if (*p != ' ' && *p != '\t')
            *out++ = *p;
    *out = '\0';
    return f;
}

static bool
s_same_name(const ProtobufCMessage *rec, const void *arg)
{
    const s_same_name_t *s = arg;
    char *n = s_name_key(crm_record_get_str(rec, s->name_field));
    char *c = s_name_key(crm_record_get_str(rec, "company"));
    bool same = !strcmp(n, s->name) && !strcmp(c, s->company);
    free(n);
    free(c);
    return same;
}

#define SIMILAR_MAX 200     /* records at one company a create compares names with */
#define SIMILAR_BUDGET (IMPORT_MAX * SIMILAR_MAX) /* ... at all the companies of one import
                                                     request: every line is checked (at 25
                                                     companies of 200 or more, about 12 ms) */

/* A name as the similar-name check compares it (s_similar_keys). */
typedef struct {
    char *key;    /* folded, without spaces (s_name_key) */
    char *words;  /* its words sorted, without spaces (s_words_key) */
    size_t chars; /* characters in KEY */
    bool digits;  /* KEY holds a digit */
} s_namekeys_t;

/* Committed customers at one company: their ids and names, keyed. */
typedef struct {
    char *ckey; /* the company, s_name_key */
    size_t n;
    uint64_t num[SIMILAR_MAX];
    s_namekeys_t k[SIMILAR_MAX];
} s_company_t;

/* ==== The lines before in one import request ====

   The duplicate checks read committed data through plain iterators: through
   the writer's group they cost a search of the group's whole batch at every
   step (three quarters of an import's time in a profile). What the group
   holds that committed data does not is what this turn staged: the lines
   before in the same import request - kept here by the keys a duplicate
   shares - and, rarely, a create of another client in the same few
   milliseconds, which is not reported (a likely duplicate is a warning, not
   a constraint). */
typedef struct {
    char *key;        /* "phones=13900001111", "=pair=<name>\x1f<company>", "=company=<company>" */
    uint64_t num;
    char *name;       /* "=company=" entries: the record's name */
} s_seen_entry_t;

struct entity_seen {
    s_seen_entry_t *slots; /* open addressing, linear probing */
    size_t n, cap;
    /* the similar-name check's committed customers at each company the
       request's lines named: read and keyed once per request, not per line;
       at most SIMILAR_BUDGET of them per request */
    s_company_t **companies;
    size_t ncompanies, read;
};

static uint64_t
s_seen_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static void
s_seen_add(struct entity_seen *s, char *key, uint64_t num, const char *name)
{
    if (2 * (s->n + 1) > s->cap) { /* grow: at most half full */
        struct entity_seen g = *s; /* the company cache moves with it */
        g.cap = s->cap ? 2 * s->cap : 256;
        g.slots = calloc(g.cap, sizeof *g.slots);
        CRM_ASSERT_ALLOC(g.slots);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].key) {
                size_t j = s_seen_hash(s->slots[i].key) & (g.cap - 1);
                while (g.slots[j].key)
                    j = (j + 1) & (g.cap - 1);
                g.slots[j] = s->slots[i];
            }
        free(s->slots);
        *s = g;
    }
    size_t j = s_seen_hash(key) & (s->cap - 1);
    while (s->slots[j].key)
        j = (j + 1) & (s->cap - 1);
    s->slots[j].key = key;
    s->slots[j].num = num;
    s->slots[j].name = name ? strdup(name) : NULL;
    s->n++;
}

/* Calls FN for every entry under KEY. */
static void
s_seen_each(const struct entity_seen *s, const char *key,
            void (*fn)(const s_seen_entry_t *entry, void *arg), void *arg)
{
    if (!s || !s->cap)
        return;
    for (size_t j = s_seen_hash(key) & (s->cap - 1); s->slots[j].key; j = (j + 1) & (s->cap - 1))
        if (!strcmp(s->slots[j].key, key))
            fn(&s->slots[j], arg);
}

static void s_company_free(s_company_t **c_p);

static void
s_seen_free(struct entity_seen *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->slots[i].key);
        free(s->slots[i].name);
    }
    free(s->slots);
    for (size_t i = 0; i < s->ncompanies; i++)
        s_company_free(&s->companies[i]);
    free(s->companies);
    memset(s, 0, sizeof *s);
}

/* A + B (+ 0x1f + C): a key of the set (malloc'd). */
static char *
s_seen_key(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) + 1 : 0) + 1;
    char *k = malloc(n);
    CRM_ASSERT_ALLOC(k);
    snprintf(k, n, "%s%s%s%s", a, b, c ? "\x1f" : "", c ? c : "");
    return k;
}

/* Remember REC (record NUM of kind E, created by this request) by its duplicate keys. */
static void
s_seen_record(struct entity_seen *s, const crm_entity_t *e, uint64_t num,
              const ProtobufCMessage *rec)
{
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->field);
        if (r->flags & CRM_F_DUPE_KEY) {
            size_t nv = fd->label == PROTOBUF_C_LABEL_REPEATED ? crm_record_count(rec, fd) : 1;
            for (size_t i = 0; i < nv; i++) {
                const char *v = fd->label == PROTOBUF_C_LABEL_REPEATED
                                    ? crm_record_str_at(rec, fd, i)
                                    : crm_record_get_str(rec, r->field);
                if (*v)
                    s_seen_add(s, s_seen_key(r->field, "=", v), num, NULL);
            }
        } else if (r->flags & CRM_F_DUPE_NAME) {
            const char *name = crm_record_get_str(rec, r->field);
            const char *company = crm_record_get_str(rec, "company");
            if (!*name || !*company)
                continue;
            char *nk = s_name_key(name), *ck = s_name_key(company);
            s_seen_add(s, s_seen_key("=pair=", nk, ck), num, NULL);
            s_seen_add(s, s_seen_key("=company=", ck, NULL), num, name);
            free(nk);
            free(ck);
        }
    }
}

/* What a check finds among the lines before: ids (with WHY) appended to OUT. */
typedef struct {
    const crm_entity_t *e;
    const char *why;
    const s_namekeys_t *name; /* the similar-name check: the new record's name */
    char *out;
    size_t *used, outlen;
} s_seen_found_t;

static bool s_similar_name(const s_namekeys_t *a, const char *b);

static void
s_seen_found(const s_seen_entry_t *entry, void *arg)
{
    s_seen_found_t *f = arg;
    char id[24];
    crm_entity_format_id(f->e, entry->num, id);
    if (f->name && !s_similar_name(f->name, entry->name))
        return;
    if (strstr(f->out, id) || *f->used + 48 >= f->outlen)
        return;
    *f->used += (size_t)snprintf(f->out + *f->used, f->outlen - *f->used, "%s%s (%s)",
                                 *f->used ? ", " : "", id, f->why);
}

/* The folded words of TEXT in sorted order, without spaces: "Na Li" and "li na" agree. */
static char *
s_words_key(const char *text)
{
    char *f = crm_utf8_fold(text), *words[16], *save = NULL;
    size_t n = 0, len = strlen(f);
    for (char *tok = strtok_r(f, " \t", &save); tok && n < 16; tok = strtok_r(NULL, " \t", &save))
        words[n++] = tok;
    for (size_t i = 1; i < n; i++) /* insertion sort: a name has few words */
        for (size_t j = i; j > 0 && strcmp(words[j - 1], words[j]) > 0; j--) {
            char *t = words[j];
            words[j] = words[j - 1];
            words[j - 1] = t;
        }
    char *out = calloc(len + 1, 1);
    CRM_ASSERT_ALLOC(out);
    for (size_t i = 0; i < n; i++)
        strcat(out, words[i]);
    free(f);
    return out;
}

static void
s_namekeys(const char *name, s_namekeys_t *k)
{
    k->key = s_name_key(name);
    k->words = s_words_key(name);
    k->chars = crm_utf8_length(k->key, strlen(k->key));
    k->digits = strpbrk(k->key, "0123456789") != NULL;
}

static void
s_namekeys_free(s_namekeys_t *k)
{
    free(k->key);
    free(k->words);
    k->key = k->words = NULL;
}

/* Very similar, not equal, names: the same words in another order, one
   character apart when both have at least 3 (王小明 / 王晓明), two when both
   have at least 8 (zhang wei / zhang wie). Two-character names differ too
   often by one character to be called alike (李娜 / 李那 are two people), and
   so do names with digits ("客户 1" / "客户 2", "Store 12" / "Store 13"): those
   are alike only reordered. */
static bool
s_similar_keys(const s_namekeys_t *a, const s_namekeys_t *b)
{
    if (!strcmp(a->key, b->key))
        return false; /* the same name: the same-name check's */
    if (!strcmp(a->words, b->words))
        return true;
    if (a->digits || b->digits)
        return false;
    size_t shorter = a->chars < b->chars ? a->chars : b->chars;
    size_t longer = a->chars < b->chars ? b->chars : a->chars;
    size_t max = shorter >= 8 ? 2 : shorter >= 3 ? 1 : 0;
    return max && longer - shorter <= max && crm_utf8_distance(a->key, b->key, max) <= max;
}

static bool
s_similar_name(const s_namekeys_t *a, const char *b)
{
    s_namekeys_t kb;
    s_namekeys(b, &kb);
    bool similar = s_similar_keys(a, &kb);
    s_namekeys_free(&kb);
    return similar;
}

static void
s_company_free(s_company_t **c_p)
{
    s_company_t *c = *c_p;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        s_namekeys_free(&c->k[i]);
    free(c->ckey);
    free(c);
    *c_p = NULL;
}

typedef struct {
    uint64_t ids[SIMILAR_MAX];
    size_t n;
} s_ids_t;

static bool
s_ids_add(uint64_t num, void *arg)
{
    s_ids_t *s = arg;
    if (s->n < SIMILAR_MAX)
        s->ids[s->n++] = num;
    return s->n < SIMILAR_MAX;
}

/* The committed customers at company CKEY (the first SIMILAR_MAX of the
   company-and-name pair index), keyed: an import request's from its cache,
   read once (within its SIMILAR_BUDGET; past it, NULL), a lone create's made
   for it (*OWNED, freed by the caller). */
static crm_err_t
s_company(req_ctx_t *ctx, const crm_entity_t *e, const char *company, const char *ckey,
          const char *name_field, s_company_t **out, s_company_t **owned)
{
    struct entity_seen *seen = ctx->seen;
    *out = *owned = NULL;
    for (size_t i = 0; seen && i < seen->ncompanies; i++)
        if (!strcmp(seen->companies[i]->ckey, ckey)) {
            *out = seen->companies[i];
            return CRM_OK;
        }
    size_t room = seen ? (seen->read < SIMILAR_BUDGET ? SIMILAR_BUDGET - seen->read : 0)
                       : SIMILAR_MAX;
    if (room == 0)
        return CRM_OK;
    const crm_index_t *pair = NULL; /* the company-and-name pair index: one range */
    for (const crm_index_t *x = e->indexes; x->field; x++)
        if (x->kind == CRM_IDX_PAIR && !strcmp(x->field, "company"))
            pair = x;
    s_ids_t found = {{0}, 0};
    crm_err_t rc = pair ? records_pair_each(ctx->env->store, e, pair->tag, company,
                                            room < SIMILAR_MAX ? room : SIMILAR_MAX, s_ids_add,
                                            &found)
                        : CRM_OK;
    if (rc != CRM_OK)
        return rc;
    s_company_t *c = calloc(1, sizeof *c);
    CRM_ASSERT_ALLOC(c);
    c->ckey = strdup(ckey);
    CRM_ASSERT_ALLOC(c->ckey);
    for (size_t k = 0; k < found.n; k++) {
        ProtobufCMessage *other = NULL;
        if (records_get(ctx->env->store, e, found.ids[k], &other) != CRM_OK)
            continue;
        char *okey = s_name_key(crm_record_get_str(other, "company"));
        if (!strcmp(okey, ckey)) {
            c->num[c->n] = found.ids[k];
            s_namekeys(crm_record_get_str(other, name_field), &c->k[c->n++]);
        }
        free(okey);
        crm_proto_free(&other);
    }
    if (seen) {
        seen->read += found.n ? found.n : 1;
        s_company_t **grown = realloc(seen->companies, (seen->ncompanies + 1) * sizeof *grown);
        CRM_ASSERT_ALLOC(grown);
        seen->companies = grown;
        seen->companies[seen->ncompanies++] = c;
    } else {
        *owned = c;
    }
    *out = c;
    return CRM_OK;
}

/* Customers at REC's company (the first SIMILAR_MAX committed, and the lines
   before in this import) whose name is very similar to REC's; their ids go
   to OUT after what is there. */
static crm_err_t
s_find_similar(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *rec,
               const char *name_field, char *out, size_t *used, size_t outlen)
{
    const char *name = crm_record_get_str(rec, name_field);
    const char *company = crm_record_get_str(rec, "company");
    if (!*name || !*company)
        return CRM_OK;
    char *ckey = s_name_key(company);
    s_company_t *c = NULL, *owned = NULL;
    crm_err_t rc = s_company(ctx, e, company, ckey, name_field, &c, &owned);
    if (rc != CRM_OK) {
        free(ckey);
        return dispatch_error(ctx, rc, "cannot look for duplicates");
    }
    s_namekeys_t nk;
    s_namekeys(name, &nk);
    if (ctx->seen) { /* the lines before in this import */
        char *k = s_seen_key("=company=", ckey, NULL);
        s_seen_found_t f = {e, "similar name, same company", &nk, out, used, outlen};
        s_seen_each(ctx->seen, k, s_seen_found, &f);
        free(k);
    }
    for (size_t k = 0; c && k < c->n && *used + 64 < outlen; k++) {
        if (!s_similar_keys(&nk, &c->k[k]))
            continue;
        char id[24];
        crm_entity_format_id(e, c->num[k], id);
        if (!strstr(out, id))
            *used += (size_t)snprintf(out + *used, outlen - *used,
                                      "%s%s (similar name, same company)", *used ? ", " : "", id);
    }
    s_namekeys_free(&nk);
    s_company_free(&owned);
    free(ckey);
    return CRM_OK;
}

/* Records that REC likely duplicates: an equal value of a CRM_F_DUPE_KEY
   field (a phone, an e-mail), or the same name at the same company. Their
   ids and why go to OUT ("" if none). */
static crm_err_t
s_find_dupes(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *rec, char *out,
             size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        if (!(r->flags & (CRM_F_DUPE_KEY | CRM_F_DUPE_NAME)))
            continue;
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->field);
        size_t nv = fd->label == PROTOBUF_C_LABEL_REPEATED ? crm_record_count(rec, fd) : 1;
        for (size_t i = 0; i < nv && i < 8; i++) {
            const char *v = fd->label == PROTOBUF_C_LABEL_REPEATED
                                ? crm_record_str_at(rec, fd, i)
                                : crm_record_get_str(rec, r->field);
            records_term_t terms[RECORDS_MAX_TERMS];
            size_t nterms = 0;
            s_same_name_t same = {r->field, NULL, NULL};
            crm_err_t rc;
            if (!*v)
                continue;
            bool masked = authz_masks(ctx->session.user, e, r->field);
            if (r->flags & CRM_F_DUPE_KEY) {
                rc = records_term(e, r->field, v, &terms[0], ctx->errbuf);
                nterms = rc == CRM_OK;
            } else {
                if (!*crm_record_get_str(rec, "company"))
                    continue; /* a bare name is too common to call a duplicate */
                /* the name-and-company pair index: one posting list, not the
                   intersection of the name's characters */
                const crm_index_t *pair = NULL;
                for (const crm_index_t *x = e->indexes; x->field; x++)
                    if (x->kind == CRM_IDX_PAIR && !strcmp(x->field, r->field))
                        pair = x;
                rc = CRM_OK;
                nterms = pair ? records_postings(e, rec, pair->tag, terms, 1) : 0;
                if (!pair) /* a kind without the pair index: the name's characters */
                    rc = records_text_terms(e, v, terms, &nterms, ctx->errbuf);
                same.name = s_name_key(v);
                same.company = s_name_key(crm_record_get_str(rec, "company"));
            }
            uint64_t ids[5];
            size_t n = 0;
            bool more = false;
            if (rc == CRM_OK && nterms)
                /* a value the caller sees masked only matches where it is not masked,
                   as in search: the check must not reveal a hidden number */
                rc = records_query(ctx->env->store, e, terms, nterms, 0, 5, ids, &n, &more,
                                   same.name ? s_same_name : masked ? s_consented : NULL,
                                   same.name ? (const void *)&same : (const void *)e);
            if (rc == CRM_OK && ctx->seen) { /* the lines before in this import */
                char *k = same.name ? s_seen_key("=pair=", same.name, same.company)
                                    : s_seen_key(r->field, "=", v);
                char why[64];
                snprintf(why, sizeof why, "same %s", same.name ? "name and company" : r->field);
                s_seen_found_t f = {e, why, NULL, out, &used, outlen};
                s_seen_each(ctx->seen, k, s_seen_found, &f);
                free(k);
            }
            for (size_t t = 0; t < nterms; t++)
                records_term_release(&terms[t]);
            free(same.name);
            free(same.company);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot look for duplicates");
            for (size_t k = 0; k < n && used + 48 < outlen; k++) {
                char id[24];
                crm_entity_format_id(e, ids[k], id);
                if (strstr(out, id))
                    continue;
                used += (size_t)snprintf(out + used, outlen - used, "%s%s (same %s)",
                                         used ? ", " : "", id,
                                         (r->flags & CRM_F_DUPE_NAME) ? "name and company"
                                                                      : r->field);
            }
        }
        crm_err_t src;
        if ((r->flags & CRM_F_DUPE_NAME) &&
            (src = s_find_similar(ctx, e, rec, r->field, out, &used, outlen)) != CRM_OK)
            return src;
    }
    return CRM_OK;
}

/* Stage REC (prepared) as a new record of kind E in M, with what it derives
   (its customer's value); its id goes to ID. */
static crm_err_t
s_stage_create(req_ctx_t *ctx, mutation_t *m, const crm_entity_t *e, ProtobufCMessage *rec,
               char id[24])
{
    crm_err_t rc;
    uint64_t num;
    derive_ctx_t dc = s_dc(ctx);
    ProtobufCMessage *parent = NULL;
    if ((rc = s_check_refs(ctx, e, rec, &parent)) != CRM_OK) {
        crm_proto_free(&parent); /* read before a later check failed */
        return rc;
    }
    if ((rc = records_next_num(ctx->env->group, e, &num)) != CRM_OK) {
        crm_proto_free(&parent);
        return dispatch_error(ctx, rc, "cannot allocate an id");
    }
    crm_entity_format_id(e, num, id);
    crm_record_set_str(rec, "id", id);
    crm_record_set_u64(rec, "version", 1);
    crm_record_set_i64(rec, "created_at", dc.now);
    crm_record_set_i64(rec, "updated_at", dc.now);
    crm_record_set_str(rec, "created_by", ctx->session.user->name);
    crm_record_set_str(rec, "updated_by", ctx->session.user->name);
    mutation_put(m, e, num, NULL, rec, NULL, 0, NULL);
    if (parent) { /* read just now, and not staged since: derive_after need not read it */
        dc.read_kind = crm_entity_by_name(e->parent);
        dc.read_num = crm_entity_parse_id(dc.read_kind, crm_record_get_str(parent, "id"));
        dc.read_rec = parent;
    }
    rc = derive_after(&dc, m, e, NULL, rec, ctx->errbuf);
    crm_proto_free(&parent);
    return rc;
}

/* End M and hold the reply until its commit. */
static void
s_end(req_ctx_t *ctx, mutation_t **m)
{
    mutation_end(m);
    ctx->staged = true;
}

/* Create REC (taken over: freed here) as a new record of kind E, as one
   mutation; with ECHO the stored record goes into the reply. A likely
   duplicate is refused (ALREADY_EXISTS naming it) unless ALLOW_DUP. */
static crm_err_t
s_create(req_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *rec, char id[24], bool echo,
         bool allow_dup)
{
    mutation_t *m = NULL;
    char dupes[160];
    crm_err_t rc = s_prepare_create(ctx, e, rec);
    if (rc == CRM_OK && !allow_dup && (rc = s_find_dupes(ctx, e, rec, dupes, sizeof dupes)) ==
                                          CRM_OK && *dupes)
        rc = dispatch_error(ctx, CRM_ERR_ALREADY_EXISTS,
                            "likely a duplicate of %s %s; to create it anyway: --allow-duplicate",
                            e->name, dupes);
    if (rc == CRM_OK) {
        m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
        rc = s_stage_create(ctx, m, e, rec, id);
    }
    if (rc != CRM_OK) {
        mutation_abort(&m);
        if (rc == CRM_ERR_PERMISSION_DENIED)
            dispatch_deny(ctx, e->name, "", "create");
    } else {
        s_end(ctx, &m);
        if (ctx->seen) /* for the duplicate checks of the next lines of an import */
            s_seen_record(ctx->seen, e, crm_entity_parse_id(e, id), rec);
        if (echo)
            s_reply_record(ctx, e, rec);
    }
    crm_proto_free(&rec);
    return rc;
}

static crm_err_t
s_unpack(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCBinaryData *b,
         ProtobufCMessage **out)
{
    crm_err_t rc = crm_proto_unpack_wire(e->desc, b->data, b->len, out, ctx->errbuf);
    if (rc == CRM_ERR_INVALID_ARGUMENT && b->len == 0)
        return dispatch_error(ctx, rc, "the request carries no %s record", e->name);
    return rc;
}

/* NOT_FOUND for record ID of kind E, saying where it went if it was merged. */
static crm_err_t
s_not_found(req_ctx_t *ctx, const crm_entity_t *e, const char *id)
{
    char key[64];
    int klen = snprintf(key, sizeof key, "merged/%.40s", id);
    store_val_t v = {0};
    if (store_get(ctx->env->store, STORE_CF_META, key, (size_t)klen, &v) == CRM_OK) {
        crm_err_t rc = dispatch_error(ctx, CRM_ERR_NOT_FOUND, "%s '%.40s' was merged into '%.*s'",
                                      e->name, id, (int)(v.len < 24 ? v.len : 24), v.data);
        store_val_release(&v);
        return rc;
    }
    return dispatch_error(ctx, CRM_ERR_NOT_FOUND, "no %s '%.40s'", e->name, id);
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
        rc = s_create(ctx, e, rec, id, true, r->allow_duplicate);
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
        return s_not_found(ctx, e, r->id);
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

/* Load record NUM (ID) through the group and check, in this order, that the
   caller may do ACTION on it (with FIELDS for an update) and that the change
   is based on its current version EXPECT (0: refused unless ANY_VERSION). A
   denial is returned as PERMISSION_DENIED with ctx->errbuf set; the caller
   aborts and audits it. */
static crm_err_t
s_load_checked(req_ctx_t *ctx, const crm_entity_t *e, const char *id, uint64_t num,
               uint64_t expect, bool any_version, char *const *fields, size_t nfields,
               authz_action_t action, ProtobufCMessage **out)
{
    crm_err_t rc = records_group_get(ctx->env->group, e, num, out);
    if (rc == CRM_ERR_NOT_FOUND)
        return s_not_found(ctx, e, id);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read %s '%.40s'", e->name, id);
    if ((rc = authz_record(ctx->session.user, e, action, *out, NULL, fields, nfields,
                           ctx->errbuf)) != CRM_OK) {
        crm_proto_free(out);
        return rc;
    }
    if (expect == 0 && !any_version) {
        crm_proto_free(out);
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "expect_version is required: send the version your change is "
                              "based on (crm reads it for you)");
    }
    uint64_t cur = crm_record_get_u64(*out, "version");
    if (expect && cur != expect) {
        ctx->current_version = cur;
        crm_proto_free(out);
        return dispatch_error(ctx, CRM_ERR_CONFLICT,
                              "%s '%.40s' changed meanwhile: it is at version %llu, your change "
                              "was based on version %llu; reload it and try again",
                              e->name, id, (unsigned long long)cur, (unsigned long long)expect);
    }
    return CRM_OK;
}

/* The requested FIELDS the policy judges on an update of OLD (as stored), into OUT: those
   the caller sees masked on it, always - a hidden value sent unchanged must not be told
   from a changed one - and, given the fields the update changes (CHANGED), those among
   them. A field the caller may not change but sends with its stored value, as a
   spreadsheet's name column does in a support user's import, is no change of it. */
static bool
s_named(char *const *list, size_t n, const char *field)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], field))
            return true;
    return false;
}

/* OUT has room for NFIELDS. When the update changes a field it did not request (the
   server's reaction to a requested one: a tier given, even unchanged, pins the tier),
   every requested field is judged, as if all changed. */
static size_t
s_judged(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *old,
         char *const *fields, size_t nfields, char *const *changed, size_t nchanged, char **out)
{
    size_t n = 0;
    bool hidden = authz_hides(ctx->session.user, e, old), reacted = false;
    for (size_t k = 0; k < nchanged && !reacted; k++)
        reacted = !s_named(fields, nfields, changed[k]);
    for (size_t i = 0; i < nfields; i++)
        if (reacted || (hidden && authz_masks(ctx->session.user, e, fields[i])) ||
            s_named(changed, nchanged, fields[i]))
            out[n++] = fields[i];
    return n;
}

/* The early part of an update's policy check, on CUR as loaded (whose scope
   s_load_checked judged): the requested FIELDS the caller sees masked on it, before
   anything - a CONFLICT, a comparison of values - can tell about them. The others
   are judged by value when the change is staged (s_judged). */
static crm_err_t
s_check_masked(req_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *cur,
               char *const *fields, size_t nfields)
{
    char **judged = malloc((nfields ? nfields : 1) * sizeof *judged);
    CRM_ASSERT_ALLOC(judged);
    size_t n = s_judged(ctx, e, cur, fields, nfields, NULL, 0, judged);
    crm_err_t rc = authz_record(ctx->session.user, e, AUTHZ_UPDATE, cur, NULL, judged, n,
                                ctx->errbuf);
    free(judged);
    return rc;
}

/* Turn CUR (record NUM, loaded and checked; OLD a copy of it as stored) into
   the changed record - PATCH's FIELDS swapped in, normalized, the kind's
   checks, the policy on the result - and stage it in M if anything differs.
   *CHANGED is false when nothing did. */
static crm_err_t
s_stage_update(req_ctx_t *ctx, mutation_t *m, const crm_entity_t *e, uint64_t num,
               const ProtobufCMessage *old, ProtobufCMessage *cur, ProtobufCMessage *patch,
               char *const *fields, size_t nfields, bool *changed_out)
{
    crm_err_t rc;
    derive_ctx_t dc = s_dc(ctx);
    *changed_out = false;
    for (size_t i = 0; patch && i < nfields; i++)
        crm_record_swap(cur, patch, crm_record_field(e->desc, fields[i]));
    /* the policy's stamps: consent given (when), withdrawn (when, by whom) */
    authz_stamp(ctx->session.user, e, old, cur, dc.now);
    if ((rc = crm_record_normalize(e, cur, ctx->errbuf)) != CRM_OK ||
        (rc = crm_record_check_past(e, old, cur, dc.now, ctx->errbuf)) != CRM_OK ||
        (rc = authz_links(ctx->session.user, e, old, cur, s_get_named, ctx, ctx->errbuf)) !=
            CRM_OK ||
        (rc = derive_prepare(&dc, e, old, cur, fields, nfields, ctx->errbuf)) != CRM_OK ||
        (rc = authz_refer(ctx->session.user, e, old, cur, s_user_dept, ctx->env->store,
                          ctx->errbuf)) != CRM_OK)
        return rc;
    /* compared by value, every field: a changed quantity inside an order line
       is a change, and so are the fields the kind derives; the policy judges the
       requested fields this changes (s_judged) */
    char *changed[64];
    size_t nchanged = crm_record_diff(e, old, cur, changed, 64);
    char **judged = malloc((nfields ? nfields : 1) * sizeof *judged);
    CRM_ASSERT_ALLOC(judged);
    size_t njudged = s_judged(ctx, e, old, fields, nfields, changed, nchanged, judged);
    rc = authz_record(ctx->session.user, e, AUTHZ_UPDATE, old, cur, judged, njudged,
                      ctx->errbuf);
    free(judged);
    if (rc != CRM_OK || (rc = s_check_refs(ctx, e, cur, NULL)) != CRM_OK)
        return rc;
    if (nchanged == 0)
        return CRM_OK;
    if (!mutation_has(m, e, num))
        crm_record_set_u64(cur, "version", crm_record_get_u64(old, "version") + 1);
    crm_record_set_i64(cur, "updated_at", dc.now);
    crm_record_set_str(cur, "updated_by", ctx->session.user->name);
    mutation_put(m, e, num, old, cur, changed, nchanged, NULL);
    *changed_out = true;
    return derive_after(&dc, m, e, old, cur, ctx->errbuf);
}

/* CRM_OK if an update of FIELDS of CUR (record NUM, ID) based on version
   BASE changes no field someone else changed since; else CONFLICT naming
   who changed what, and when. */
static crm_err_t
s_check_base(req_ctx_t *ctx, const crm_entity_t *e, const char *id, uint64_t num, uint64_t base,
             const ProtobufCMessage *cur, char *const *fields, size_t nfields)
{
    uint64_t now = crm_record_get_u64(cur, "version");
    char msg[CRM_ERRBUF];
    crm_err_t rc = conflict_check(ctx->env->group, e, id, num, base, now, fields, nfields, msg);
    if (rc == CRM_OK)
        return CRM_OK;
    ctx->current_version = now;
    return dispatch_error(ctx, rc, "%s", msg);
}

crm_err_t
h_entity_update(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    ProtobufCMessage *cur = NULL, *old = NULL, *patch = NULL;
    mutation_t *m = NULL;
    uint64_t num;
    bool changed = false;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK)
        return rc;
    if (r->n_fields == 0)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "nothing to change: name a field");
    if (r->n_fields > e->desc->n_fields) /* each field once: no more than the kind has */
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "%zu fields named, and %s records have %u: name each once",
                              r->n_fields, e->name, e->desc->n_fields);
    for (size_t i = 0; i < r->n_fields; i++) {
        for (size_t k = 0; k < i; k++)
            if (!strcmp(r->fields[k], r->fields[i]))
                return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                      "field '%.40s' is named twice", r->fields[i]);
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->fields[i]);
        if (!fd)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "unknown field '%.40s' on '%s'",
                                  r->fields[i], e->name);
        if (s_server_set(crm_entity_flags_of(e, fd)) || (crm_entity_flags_of(e, fd) & CRM_F_PARENT))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "field '%s' cannot be changed%s", fd->name,
                                  (crm_entity_flags_of(e, fd) & CRM_F_DERIVED)
                                      ? ": the server derives it"
                                      : "");
    }
    if (r->expect_version == 0) /* checked before the patch is unpacked: nothing to free */
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "expect_version is required: send the version your change is "
                              "based on (crm reads it for you)");
    if ((rc = s_unpack(ctx, e, &r->record, &patch)) != CRM_OK)
        return rc;
    m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
    /* based on an older version: merged by field unless a field of this
       update changed since (conflict.h) - after the permission check, so no
       CONFLICT tells the unauthorized anything */
    if ((rc = s_load_checked(ctx, e, r->id, num, 0, true, NULL, 0, AUTHZ_UPDATE, &cur)) !=
            CRM_OK ||
        (rc = s_check_masked(ctx, e, cur, r->fields, r->n_fields)) != CRM_OK ||
        (rc = s_check_base(ctx, e, r->id, num, r->expect_version, cur, r->fields,
                           r->n_fields)) != CRM_OK ||
        (rc = records_group_get(ctx->env->group, e, num, &old)) != CRM_OK ||
        (rc = s_stage_update(ctx, m, e, num, old, cur, patch, r->fields, r->n_fields,
                             &changed)) != CRM_OK)
        goto cleanup;
    if (changed)
        s_end(ctx, &m);
    else
        mutation_abort(&m); /* nothing differs: no new version, no event */
    /* the fields whose values changed, compared before any masking: what the caller sees
       of the record may change too (consent given or withdrawn) where no value did */
    char *diff[64];
    size_t ndiff = changed ? crm_record_diff(e, old, cur, diff, 64) : 0;
    /* what was hidden before the change stays hidden in its answer */
    if (authz_hides(ctx->session.user, e, old))
        authz_mask_pii(ctx->session.user, e, cur);
    s_reply_record(ctx, e, cur);
    if (ndiff) {
        char **names = dispatch_own(ctx, malloc(ndiff * sizeof *names));
        memcpy(names, diff, ndiff * sizeof *names); /* (the descriptor's field names) */
        ctx->body.entity.changed = names;
        ctx->body.entity.n_changed = ndiff;
    }
cleanup:
    mutation_abort(&m);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        dispatch_deny(ctx, e->name, r->id, "update");
    crm_proto_free(&cur);
    crm_proto_free(&old);
    crm_proto_free(&patch);
    return rc;
}

/* Append "kind id, kind id" for the N records IDS of kind K (", more (kind)" if MORE) to
   LIST (CAP bytes, USED in use) for a refusal that names them; returns the new length. */
static size_t
s_list_ids(char *list, size_t cap, size_t used, const crm_entity_t *k, const uint64_t *ids,
           size_t n, bool more)
{
    for (size_t i = 0; i < n && used + 32 < cap; i++) {
        char id[24];
        crm_entity_format_id(k, ids[i], id);
        used += (size_t)snprintf(list + used, cap - used, "%s%s %s", used ? ", " : "", k->name,
                                 id);
    }
    if (more && used + 8 + strlen(k->name) < cap)
        used += (size_t)snprintf(list + used, cap - used, ", more (%s)", k->name);
    return used;
}

/* Refuse to delete PARENT_ID while it has records of a CRM_RESTRICT child
   kind (a customer's orders, deals); FAILED_PRECONDITION names them. */
static crm_err_t
s_restrict_children(req_ctx_t *ctx, const crm_entity_t *parent, const char *parent_id)
{
    char list[CRM_ERRBUF / 2] = "";
    size_t used = 0;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, parent->name) || k->on_parent_delete != CRM_RESTRICT)
            continue;
        uint64_t ids[5];
        size_t n;
        bool more;
        crm_err_t rc = records_children(ctx->env->store, ctx->env->group, k, parent_id, 0, 5, ids,
                                        &n, &more);
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot read the %s records of '%s'", k->name,
                                  parent_id);
        used = s_list_ids(list, sizeof list, used, k, ids, n, more);
    }
    if (used)
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "%s '%s' still has %s: delete or move them first", parent->name,
                              parent_id, list);
    return CRM_OK;
}

/* Refuse to delete ID of kind E while records link to it (a ticket naming an order,
   replies naming a ticket: crm_entity_links); FAILED_PRECONDITION names them. Found
   through each link field's index, staged writes included. */
static crm_err_t
s_restrict_links(req_ctx_t *ctx, const crm_entity_t *e, const char *id)
{
    char list[CRM_ERRBUF / 2] = "";
    size_t used = 0;
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++) {
        if (strcmp(l->target, e->name))
            continue;
        const crm_entity_t *k = crm_entity_by_name(l->kind);
        records_term_t term;
        uint64_t ids[5];
        size_t n = 0;
        bool more = false;
        crm_err_t rc = records_term(k, l->field, id, &term, ctx->errbuf);
        if (rc == CRM_OK) {
            rc = records_query_group(ctx->env->store, ctx->env->group, k, &term, 1, 0, 5, ids,
                                     &n, &more, NULL, NULL);
            records_term_release(&term);
        }
        if (rc != CRM_OK)
            return dispatch_error(ctx, CRM_ERR_INTERNAL, "cannot read the %s records naming '%s'",
                                  k->name, id);
        used = s_list_ids(list, sizeof list, used, k, ids, n, more);
    }
    if (used)
        return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                              "%s '%s' is named by %s: delete them or change what they name first",
                              e->name, id, list);
    return CRM_OK;
}

/* What a deletion puts in the recycle bin: the record's children, packed. */
typedef struct {
    Crm__BinnedPart **parts;
    size_t n;
} s_binning_t;

static void
s_binning_add(s_binning_t *b, const crm_entity_t *k, const ProtobufCMessage *rec)
{
    Crm__BinnedPart *p = malloc(sizeof *p);
    CRM_ASSERT_ALLOC(p);
    crm__binned_part__init(p);
    p->kind = (char *)k->name;
    p->record.data = crm_proto_pack(rec, &p->record.len);
    Crm__BinnedPart **grown = realloc(b->parts, (b->n + 1) * sizeof *grown);
    CRM_ASSERT_ALLOC(grown);
    b->parts = grown;
    b->parts[b->n++] = p;
}

static void
s_binning_free(s_binning_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->parts[i]->record.data);
        free(b->parts[i]);
    }
    free(b->parts);
    b->parts = NULL;
    b->n = 0;
}

/* The records a change of kind PARENT's records IDS carries: PLUS, and their
   committed children (only CRM_CASCADE kinds with CASCADE), counted up to
   PARTS_MAX + 1 from the index alone, before anything is read or staged: a
   change that would be refused is refused at once (staging 5,000 records
   first, then refusing, held the server thread for 100-200 ms), and a large
   one is handed to the writer thread (dispatch_large). The limit is checked
   again as the parts are staged. */
static size_t
s_family_count(req_ctx_t *ctx, const crm_entity_t *parent, char *const *ids, size_t nids,
               bool cascade, size_t plus)
{
    size_t total = plus;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, parent->name) ||
            (cascade && k->on_parent_delete != CRM_CASCADE))
            continue;
        for (size_t i = 0; i < nids && total <= PARTS_MAX; i++)
            total += records_count_children(ctx->env->store, k, ids[i], PARTS_MAX - total);
    }
    return total;
}

/* Stage the deletion of every CRM_CASCADE child of PARENT_ID (a customer's
   activities) in M, staged ones included: each is a part of the change.
   With BIN, each is also kept for the recycle bin. */
static crm_err_t
s_delete_children(req_ctx_t *ctx, mutation_t *m, const crm_entity_t *parent,
                  const char *parent_id, s_binning_t *bin)
{
    store_group_t *g = ctx->env->group;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, parent->name) || k->on_parent_delete != CRM_CASCADE)
            continue;
        uint64_t ids[256], after = 0;
        size_t n;
        bool more = true;
        while (more) { /* page on from the last one: read from the start again, a page
                          would step over the ones just deleted, 4,900 of them 20 times */
            crm_err_t rc =
                records_children(ctx->env->store, g, k, parent_id, after, 256, ids, &n, &more);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot read the %s records of '%s'", k->name,
                                      parent_id);
            if (n == 0)
                break;
            if (mutation_parts(m) + n > PARTS_MAX)
                return dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                                      "'%s' has more than %d records to delete with it: delete "
                                      "some of its %s records first",
                                      parent_id, PARTS_MAX, k->name);
            size_t done = 0;
            for (size_t i = 0; i < n; i++) {
                ProtobufCMessage *child = NULL;
                if (records_group_get(g, k, ids[i], &child) == CRM_OK) {
                    if (bin)
                        s_binning_add(bin, k, child);
                    mutation_delete(m, k, ids[i], child, "deleted with its customer");
                    done++;
                }
                crm_proto_free(&child);
            }
            if (!done) /* an index entry without its record: check reports it */
                return dispatch_error(ctx, CRM_ERR_INTERNAL,
                                      "the %s index of '%s' is inconsistent: run crm-admin check",
                                      k->name, parent_id);
            after = ids[n - 1];
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
    uint64_t num;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK)
        return rc;
    char *self_id[1] = {r->id};
    size_t family = 0;
    derive_ctx_t dc = s_dc(ctx);
    /* a record without a parent goes to the recycle bin, with its children */
    bool to_bin = !e->parent && ctx->env->bin_keep_ms > 0;
    s_binning_t parts = {NULL, 0};
    mutation_t *m = NULL;
    if ((rc = s_load_checked(ctx, e, r->id, num, r->expect_version, false, NULL, 0,
                             AUTHZ_DELETE, &cur)) == CRM_OK &&
        (rc = s_restrict_children(ctx, e, r->id)) == CRM_OK &&
        (rc = s_restrict_links(ctx, e, r->id)) == CRM_OK &&
        (family = s_family_count(ctx, e, self_id, 1, true, 1)) > PARTS_MAX)
        rc = dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                            "'%s' has more than %d records to delete with it: delete some of "
                            "its records first",
                            r->id, PARTS_MAX);
    if (rc == CRM_OK && dispatch_large(ctx, family)) { /* checked here, done on the writer */
        crm_proto_free(&cur);
        return CRM_OK;
    }
    if (rc == CRM_OK) {
        m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
        mutation_delete(m, e, num, cur, NULL); /* the record itself is the event's first part */
        if ((rc = s_delete_children(ctx, m, e, r->id, to_bin ? &parts : NULL)) == CRM_OK)
            rc = derive_after(&dc, m, e, cur, NULL, ctx->errbuf);
    }
    if (rc == CRM_OK) {
        s_reply_record(ctx, e, NULL);
        if (to_bin) { /* staged inside the mutation: one batch with the deletion */
            Crm__Binned *b = dispatch_own(ctx, malloc(sizeof *b));
            CRM_ASSERT_ALLOC(b);
            crm__binned__init(b);
            b->kind = (char *)e->name;
            b->record.data = crm_proto_pack(cur, &b->record.len);
            b->deleted_at = dc.now;
            b->deleted_by = ctx->session.user->name;
            b->n_parts = (uint32_t)parts.n;
            bin_stage_put(ctx->env->group, e, num, b, parts.parts, parts.n);
            free(b->record.data); /* the reply says where it went, not what it was */
            b->record.data = NULL;
            b->record.len = 0;
            ctx->body.entity.binned = dispatch_own(ctx, malloc(sizeof *ctx->body.entity.binned));
            CRM_ASSERT_ALLOC(ctx->body.entity.binned);
            ctx->body.entity.binned[0] = b;
            ctx->body.entity.n_binned = 1;
        }
        s_end(ctx, &m);
    } else {
        mutation_abort(&m);
        if (rc == CRM_ERR_PERMISSION_DENIED)
            dispatch_deny(ctx, e->name, r->id, "delete");
    }
    s_binning_free(&parts);
    crm_proto_free(&cur);
    return rc;
}

/* `crm customer convert`: the lead becomes a prospect, its deal is created
   and the conversion is logged as an activity - one mutation, one event. */
crm_err_t
h_convert(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_CONVERT)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no conversion");
    const Crm__ConvertRequest *r = ctx->req->convert;
    const crm_entity_t *ce = crm_entity_by_name("customer"), *de = crm_entity_by_name("deal"),
                       *ae = crm_entity_by_name("activity");
    ProtobufCMessage *cur = NULL, *old = NULL, *deal = NULL, *act = NULL;
    mutation_t *m = NULL;
    char *stage_field[] = {(char *)"stage"};
    char deal_id[24], act_id[24];
    const char *denied_kind = ce->name;
    uint64_t num = crm_entity_parse_id(ce, r->customer_id);
    bool changed;
    crm_err_t rc;
    if (!num)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a customer id",
                              r->customer_id);
    if ((rc = s_unpack(ctx, de, &r->deal, &deal)) != CRM_OK)
        return rc;
    m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
    if ((rc = s_load_checked(ctx, ce, r->customer_id, num, r->expect_version, true, stage_field,
                             1, AUTHZ_UPDATE, &cur)) != CRM_OK ||
        (rc = records_group_get(ctx->env->group, ce, num, &old)) != CRM_OK)
        goto cleanup;
    if (((Crm__Customer *)cur)->stage != CRM__STAGE__LEAD) {
        char stage[32];
        crm_record_enum_name(&crm__stage__descriptor, ((Crm__Customer *)cur)->stage, stage,
                             sizeof stage);
        rc = dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                            "customer '%s' is a %s, not a lead: only leads are converted",
                            r->customer_id, stage);
        goto cleanup;
    }
    ((Crm__Customer *)cur)->stage = CRM__STAGE__PROSPECT;
    if ((rc = s_stage_update(ctx, m, ce, num, old, cur, NULL, stage_field, 1, &changed)) !=
        CRM_OK)
        goto cleanup;
    denied_kind = de->name;
    crm_record_set_str(deal, "customer_id", r->customer_id);
    if ((rc = s_prepare_create(ctx, de, deal)) != CRM_OK ||
        (rc = s_stage_create(ctx, m, de, deal, deal_id)) != CRM_OK)
        goto cleanup;
    denied_kind = ae->name;
    act = crm_proto_new(ae->desc);
    Crm__Activity *a = (Crm__Activity *)act;
    crm_record_set_str(act, "customer_id", r->customer_id);
    a->type = CRM__ACTIVITY_TYPE__NOTE;
    char summary[600];
    if (*r->summary)
        snprintf(summary, sizeof summary, "%s", r->summary);
    else
        snprintf(summary, sizeof summary, "converted from lead to prospect, deal %s", deal_id);
    crm_record_set_str(act, "summary", summary);
    if ((rc = s_prepare_create(ctx, ae, act)) != CRM_OK ||
        (rc = s_stage_create(ctx, m, ae, act, act_id)) != CRM_OK)
        goto cleanup;
    s_end(ctx, &m);
    /* the reply: the three records as the caller may see them */
    ProtobufCMessage *now = NULL;
    Crm__ConvertReply *cr = dispatch_own(ctx, calloc(1, sizeof *cr));
    crm__convert_reply__init(cr);
    ProtobufCMessage *recs[3] = {NULL, deal, act};
    const crm_entity_t *kinds[3] = {ce, de, ae};
    if (records_group_get(ctx->env->group, ce, num, &now) == CRM_OK)
        recs[0] = now;
    ProtobufCBinaryData *outs[3] = {&cr->customer, &cr->deal, &cr->activity};
    for (int i = 0; i < 3; i++)
        if (recs[i]) {
            authz_redact(ctx->session.user, kinds[i], recs[i]);
            outs[i]->data = dispatch_own(ctx, crm_proto_pack(recs[i], &outs[i]->len));
        }
    crm_proto_free(&now);
    ctx->reply.body_case = CRM__REPLY__BODY_CONVERT;
    ctx->reply.convert = cr;
cleanup:
    if (m) {
        mutation_abort(&m);
        if (rc == CRM_ERR_PERMISSION_DENIED)
            dispatch_deny(ctx, denied_kind, "", "convert");
    }
    crm_proto_free(&cur);
    crm_proto_free(&old);
    crm_proto_free(&deal);
    crm_proto_free(&act);
    return rc;
}

/* Fill the reply with the records IDS (committed data). */
/* A page of records: IDS, then (with MORE) the cursor - LAST if the page was
   cut by the scan budget, else the last id. */
static crm_err_t
s_reply_ids(req_ctx_t *ctx, const crm_entity_t *e, const uint64_t *ids, size_t n, bool more,
            uint64_t last)
{
    s_reply_record(ctx, e, NULL);
    /* read in one batch: a page of search hits is up to LIST_MAX point reads */
    ProtobufCMessage **recs = calloc(n ? n : 1, sizeof *recs);
    crm_err_t *rcs = calloc(n ? n : 1, sizeof *rcs);
    CRM_ASSERT(recs && rcs);
    crm_err_t rc = records_get_many(ctx->env->store, e, ids, n, recs, rcs);
    for (size_t i = 0; i < n && rc == CRM_OK; i++) {
        if (rcs[i] != CRM_OK) /* NOT_FOUND: deleted since the index was read */
            continue;
        char errbuf[CRM_ERRBUF];
        if (authz_record(ctx->session.user, e, AUTHZ_READ, recs[i], NULL, NULL, 0, errbuf) ==
            CRM_OK)
            s_reply_record(ctx, e, recs[i]);
    }
    for (size_t i = 0; i < n; i++)
        crm_proto_free(&recs[i]);
    free(recs);
    free(rcs);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read a %s record", e->name);
    if (more && (n || last)) {
        char *next = dispatch_own(ctx, malloc(24));
        crm_entity_format_id(e, last > (n ? ids[n - 1] : 0) ? last : ids[n - 1], next);
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

/* ==== Views: named conditions that are not one field's value ==== */

static bool
s_ticket_open(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    (void)now;
    (void)arg;
    const Crm__Ticket *t = (const Crm__Ticket *)m;
    return t->status == CRM__TICKET_STATUS__TICKET_STATUS_OPEN ||
           t->status == CRM__TICKET_STATUS__TICKET_STATUS_PENDING;
}

static bool
s_ticket_overdue(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    const Crm__Ticket *t = (const Crm__Ticket *)m;
    /* ARG: hours ahead ("due within N hours" counts too) */
    int64_t horizon = now + arg * 3600 * 1000;
    return s_ticket_open(m, now, 0) &&
           ((!t->first_response_at && t->response_due && t->response_due <= horizon) ||
            (t->resolution_due && t->resolution_due <= horizon));
}

static bool
s_ticket_breached(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    (void)now;
    (void)arg;
    const Crm__Ticket *t = (const Crm__Ticket *)m;
    return t->response_breached || t->resolution_breached;
}

static bool
s_ticket_unassigned(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    return s_ticket_open(m, now, arg) && !*((const Crm__Ticket *)m)->assignee;
}

static bool
s_task_open(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    (void)now;
    (void)arg;
    return !((const Crm__Task *)m)->done;
}

static bool
s_customer_stale(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    const Crm__Customer *c = (const Crm__Customer *)m;
    /* never contacted is stale at any N (N days before 1970 included) */
    return c->last_contact_at == 0 || c->last_contact_at < now - arg * 24 * 3600 * 1000;
}

static bool
s_customer_consented(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    (void)now;
    (void)arg;
    return ((const Crm__Customer *)m)->consent;
}

static bool
s_customer_unowned(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    (void)now;
    (void)arg;
    return !*((const Crm__Customer *)m)->owner;
}

static bool
s_customer_no_order(const ProtobufCMessage *m, int64_t now, int64_t arg)
{
    const Crm__Customer *c = (const Crm__Customer *)m;
    return c->order_count > 0 && c->last_order_at < now - arg * 24 * 3600 * 1000;
}

/* Named views. A view that is one indexed value (FIELD=VALUE) is looked up in
   that index; the others are checked on each candidate by FN. */
static const struct {
    const char *kind, *name;
    bool (*fn)(const ProtobufCMessage *rec, int64_t now, int64_t arg);
    const char *help;
    const char *field, *value; /* the index term that is the view, or NULL */
} s_views[] = {
    {"ticket", "open", s_ticket_open, "open or pending", NULL, NULL},
    {"ticket", "overdue", s_ticket_overdue, "open and past a due time (overdue:H: or within H hours)",
     NULL, NULL},
    {"ticket", "breached", s_ticket_breached, "a service level was missed", NULL, NULL},
    {"ticket", "unassigned", s_ticket_unassigned, "open and assigned to nobody", NULL, NULL},
    {"task", "open", s_task_open, "not done", "done", "false"},
    {"customer", "stale", s_customer_stale, "no contact for N days (stale:N)", NULL, NULL},
    {"customer", "no-order", s_customer_no_order, "buyers without an order for N days", NULL,
     NULL},
    {"customer", "consented", s_customer_consented, "gave marketing consent", "consent", "true"},
    {"customer", "unowned", s_customer_unowned, "no owner: the pool sales may claim from", NULL,
     NULL},
};

/* The N of a view NAME:N, if VALUE has one: a whole number 0..36500 (days,
   or hours for overdue). False if what follows ':' is anything else. */
static bool
s_view_arg(const char *value, long long *arg)
{
    const char *colon = strchr(value, ':');
    *arg = 0;
    if (!colon)
        return true;
    const char *d = colon + 1;
    if (!*d || strlen(d) > 5 || strspn(d, "0123456789") != strlen(d))
        return false;
    *arg = atoll(d);
    return *arg <= 36500;
}

/* A list's checks on each candidate: ranges ("FROM..TO", either end may be
   empty) compared on the field's text, which sorts for dates and times, and
   consent where a filter is on a field the caller sees masked. */
typedef struct {
    const crm_entity_t *e;
    bool consent;
    uint64_t *set;  /* ids within the indexed ranges, ascending (when has_set) */
    int64_t now;
    size_t nviews;
    bool (*view[4])(const ProtobufCMessage *, int64_t, int64_t);
    int64_t view_arg[4];
    size_t nset;
    bool has_set;
    size_t n;
    const ProtobufCFieldDescriptor *fd[RECORDS_MAX_TERMS];
    char from[RECORDS_MAX_TERMS][40], to[RECORDS_MAX_TERMS][40];
    bool numeric[RECORDS_MAX_TERMS]; /* a number or money: LO..HI, not text */
    int64_t lo[RECORDS_MAX_TERMS], hi[RECORDS_MAX_TERMS];
} s_checks_t;

/* The value of the number or money field FD of REC (money: minor units). */
static int64_t
s_number(const ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd)
{
    const char *p = (const char *)rec + fd->offset;
    if (crm_record_is_money(fd)) {
        const Crm__Money *m = *(const Crm__Money *const *)p;
        return m ? m->minor : 0;
    }
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
        return *(const int32_t *)p;
    case PROTOBUF_C_TYPE_UINT32:
        return *(const uint32_t *)p;
    default:
        return *(const int64_t *)p;
    }
}

static bool
s_is_number(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED || (crm_entity_flags_of(e, fd) & CRM_F_TIME))
        return false;
    return crm_record_is_money(fd) || fd->type == PROTOBUF_C_TYPE_INT32 ||
           fd->type == PROTOBUF_C_TYPE_UINT32 || fd->type == PROTOBUF_C_TYPE_INT64 ||
           fd->type == PROTOBUF_C_TYPE_UINT64 || fd->type == PROTOBUF_C_TYPE_SINT32;
}

/* One end of a time range as ms: "" is open (*set false); a date alone is its
   day's first millisecond, or with LAST its last - a UTC day here: crm sends
   its user's local times with their zone (query.c). */
static bool
s_time_end(const char *text, bool last, int64_t *v, bool *set)
{
    *set = *text != '\0';
    if (!*set)
        return true;
    size_t len = strlen(text);
    bool zoned = len > 10 && (text[len - 1] == 'Z' || text[len - 1] == 'z' ||
                              strpbrk(text + 10, "+-") != NULL);
    char utc[48];
    if (len >= 10 && text[4] == '-' && !zoned) { /* no zone: UTC, not this process's TZ */
        if (len > 30)
            return false;
        snprintf(utc, sizeof utc, "%s%sZ", text, len == 10 ? "T00:00" : "");
        text = utc;
    }
    if (!crm_record_parse_time(text, v))
        return false;
    if (last && len == 10)
        *v += 86400000 - 1;
    return true;
}

/* One end of a date range (YYYY-MM-DD fields, compared as text): "", or a
   year, a month or a day that exists: 2026, 2026-02, 2026-02-28. */
static bool
s_date_end_ok(const char *t)
{
    size_t len = strlen(t);
    if (!len)
        return true;
    if (len != 4 && len != 7 && len != 10)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((i == 4 || i == 7) ? t[i] != '-' : (t[i] < '0' || t[i] > '9'))
            return false;
    int y = atoi(t), m = len > 4 ? atoi(t + 5) : 1, d = len > 7 ? atoi(t + 8) : 1;
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] && (m != 2 || d <= 28 || leap);
}

/* FROM..TO of a date or time field FD, checked; for a time field its ends
   as ms (open ends INT64_MIN, INT64_MAX). */
static bool
s_when_range(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd, const char *from,
             const char *to, int64_t *lo, int64_t *hi)
{
    if (crm_entity_flags_of(e, fd) & CRM_F_DATE)
        return s_date_end_ok(from) && s_date_end_ok(to);
    bool set;
    if (!s_time_end(from, false, lo, &set))
        return false;
    if (!set)
        *lo = INT64_MIN;
    if (!s_time_end(to, true, hi, &set))
        return false;
    if (!set)
        *hi = INT64_MAX;
    return true;
}

/* One end of a number range: "" is open (*set false). */
static bool
s_range_end(const ProtobufCFieldDescriptor *fd, const char *text, int64_t *v, bool *set)
{
    *set = *text != '\0';
    if (!*set)
        return true;
    if (crm_record_is_money(fd)) {
        char code[4];
        return crm_money_parse(text, v, code);
    }
    char *end = NULL;
    long long x = strtoll(text, &end, 10);
    *v = x;
    return !*end;
}

static bool
s_check(const ProtobufCMessage *rec, const void *arg)
{
    const s_checks_t *c = arg;
    if (c->consent && !s_consented(rec, c->e))
        return false;
    for (size_t i = 0; i < c->nviews; i++)
        if (!c->view[i](rec, c->now, c->view_arg[i]))
            return false;
    if (c->has_set) {
        uint64_t num = crm_entity_parse_id(c->e, crm_record_get_str(rec, "id"));
        size_t lo = 0, hi = c->nset;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (c->set[mid] < num)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == c->nset || c->set[lo] != num)
            return false;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->numeric[i]) {
            int64_t v = s_number(rec, c->fd[i]);
            if (v < c->lo[i] || v > c->hi[i])
                return false;
            if (v == 0 && (crm_entity_flags_of(c->e, c->fd[i]) & CRM_F_TIME))
                return false; /* an unset time (no due date, not closed) is in no range */
            continue;
        }
        bool is_time = (crm_entity_flags_of(c->e, c->fd[i]) & CRM_F_TIME) != 0;
        char *v = crm_record_format(rec, c->fd[i], is_time, false);
        bool ok = *v && (!*c->from[i] || strcmp(v, c->from[i]) >= 0) &&
                  (!*c->to[i] || strncmp(v, c->to[i], strlen(c->to[i])) <= 0);
        free(v);
        if (!ok)
            return false;
    }
    return true;
}

crm_err_t
entity_filter_check(const crm_entity_t *e, const char *field, const char *value, char *errbuf)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    if (!strcmp(field, "view")) {
        size_t len = strcspn(value, ":");
        long long arg;
        for (size_t k = 0; k < sizeof s_views / sizeof s_views[0]; k++)
            if (!strcmp(s_views[k].kind, e->name) && !strncmp(s_views[k].name, value, len) &&
                !s_views[k].name[len]) {
                if (s_view_arg(value, &arg))
                    return CRM_OK;
                snprintf(errbuf, CRM_ERRBUF,
                         "view '%.40s': after ':' give a whole number, 0 to 36500 (days; hours "
                         "for overdue)",
                         value);
                return CRM_ERR_INVALID_ARGUMENT;
            }
        snprintf(errbuf, CRM_ERRBUF, "unknown view '%.40s' of %s records", value, e->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (strstr(value, "..")) {
        const char *dots = strstr(value, "..");
        char from[40];
        int64_t v;
        bool set;
        snprintf(from, sizeof from, "%.*s", (int)((size_t)(dots - value) < 39 ? dots - value : 39),
                 value);
        if (fd && s_is_number(e, fd) &&
            (!s_range_end(fd, from, &v, &set) || !s_range_end(fd, dots + 2, &v, &set))) {
            snprintf(errbuf, CRM_ERRBUF, "'%.40s': '%.60s' is not a range of %s", field, value,
                     crm_record_is_money(fd) ? "amounts" : "numbers");
            return CRM_ERR_INVALID_ARGUMENT;
        }
        int64_t lo, hi;
        if (fd && (crm_entity_flags_of(e, fd) & (CRM_F_DATE | CRM_F_TIME)) &&
            !s_when_range(e, fd, from, dots + 2, &lo, &hi)) {
            snprintf(errbuf, CRM_ERRBUF, "'%.40s': '%.60s' is not a range of %s", field, value,
                     (crm_entity_flags_of(e, fd) & CRM_F_DATE) ? "dates" : "times");
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (fd && (s_is_number(e, fd) ||
                   (crm_entity_flags_of(e, fd) & (CRM_F_DATE | CRM_F_TIME))))
            return CRM_OK;
        snprintf(errbuf, CRM_ERRBUF, "'%.40s' takes no range", field);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    records_term_t t;
    crm_err_t rc = records_term(e, field, value, &t, errbuf);
    records_term_release(&t);
    return rc;
}

/* FIELD=FROM..TO into C; INVALID_ARGUMENT names what is wrong. */
static crm_err_t
s_range(req_ctx_t *ctx, const crm_entity_t *e, const char *field, const char *value,
        s_checks_t *c)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    unsigned flags = fd ? crm_entity_flags_of(e, fd) : 0;
    const char *dots = strstr(value, "..");
    /* a range on a field the caller sees masked must not reveal it */
    if (fd && authz_masks(ctx->session.user, e, fd->name))
        c->consent = true;
    if (fd && s_is_number(e, fd)) { /* 1000.. , 1..5 : numbers and money */
        char from[40];
        size_t flen = (size_t)(dots - value);
        bool has_lo, has_hi;
        snprintf(from, sizeof from, "%.*s", (int)(flen < 39 ? flen : 39), value);
        if (c->n == RECORDS_MAX_TERMS ||
            !s_range_end(fd, from, &c->lo[c->n], &has_lo) ||
            !s_range_end(fd, dots + 2, &c->hi[c->n], &has_hi))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "'%.40s': '%.60s' is not a range of %s", field, value,
                                  crm_record_is_money(fd) ? "amounts" : "numbers");
        if (!has_lo)
            c->lo[c->n] = INT64_MIN;
        if (!has_hi)
            c->hi[c->n] = INT64_MAX;
        c->fd[c->n] = fd;
        c->numeric[c->n++] = true;
        return CRM_OK;
    }
    if (!fd || !(flags & (CRM_F_DATE | CRM_F_TIME)))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "'%.40s' takes no range: FROM..TO works on numbers, amounts, "
                              "dates and times",
                              field);
    size_t flen = (size_t)(dots - value);
    if (flen >= sizeof c->from[0] || strlen(dots + 2) >= sizeof c->to[0])
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "range '%.60s' is too long", value);
    if (c->n == RECORDS_MAX_TERMS)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "too many ranges");
    char when_from[40];
    snprintf(when_from, sizeof when_from, "%.*s", (int)flen, value);
    if (!s_when_range(e, fd, when_from, dots + 2, &c->lo[c->n], &c->hi[c->n]))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "'%.40s': '%.60s' is not a range of %s (FROM..TO, either end "
                              "open: 2026-11-01..2026-11-30%s)",
                              field, value, (flags & CRM_F_DATE) ? "dates" : "times",
                              (flags & CRM_F_DATE) ? "" : ", or with a time and zone");
    if (flags & CRM_F_TIME) { /* compared as instants, whatever zone each end names */
        c->fd[c->n] = fd;
        c->numeric[c->n++] = true;
        return CRM_OK;
    }
    /* an indexed field: the range is read from its index, not checked record by record */
    char from[40];
    memcpy(from, value, flen);
    from[flen] = '\0';
    uint64_t *set = NULL;
    size_t nset = 0;
    crm_err_t rc = records_range(ctx->env->store, e, fd->name, from, dots + 2, RANGE_MAX, &set,
                                 &nset, ctx->errbuf);
    if (rc == CRM_OK) {
        if (!c->has_set) {
            c->set = set;
            c->nset = nset;
            c->has_set = true;
        } else { /* two ranges: their intersection */
            size_t k = 0;
            for (size_t i = 0, j = 0; i < c->nset && j < nset;)
                if (c->set[i] < set[j])
                    i++;
                else if (c->set[i] > set[j])
                    j++;
                else
                    c->set[k++] = c->set[i++], j++;
            c->nset = k;
            free(set);
        }
        return CRM_OK;
    }
    if (rc != CRM_ERR_NOT_FOUND)
        return rc;
    c->fd[c->n] = fd;
    memcpy(c->from[c->n], value, flen);
    c->from[c->n][flen] = '\0';
    snprintf(c->to[c->n], sizeof c->to[0], "%s", dots + 2);
    c->n++;
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
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK || (rc = s_may_read(ctx, e)) != CRM_OK ||
        (rc = s_paging(ctx, e, r, &limit, &after)) != CRM_OK)
        return rc;
    if (r->n_filters > RECORDS_MAX_TERMS)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "at most %d filters",
                              RECORDS_MAX_TERMS);
    /* a count reads every match (200,000 consented customers: ~0.2 s at 1M), and
       ranges read their index: on the worker thread, on a snapshot (a bad filter
       is refused from there) */
    if (r->count && !ctx->env->worker)
        return dispatch_defer(ctx);
    /* the parent field (an activity's customer) lists a timeline, newest first */
    if (r->n_filters == 1 && (crm_entity_flags(e, r->filters[0]->field) & CRM_F_PARENT)) {
        rc = records_children(ctx->env->store, NULL, e, r->filters[0]->value, after, limit, ids,
                              &n,
                              &more);
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot list: bad cursor or storage failure");
        return s_reply_ids(ctx, e, ids, n, more, 0);
    }
    s_checks_t checks;
    memset(&checks, 0, sizeof checks);
    checks.e = e;
    checks.now = crm_time_now_ms();
    for (size_t i = 0; i < r->n_filters; i++) {
        const char *field = r->filters[i]->field, *value = r->filters[i]->value;
        if (!strcmp(field, "view")) {
            size_t k = 0, nv = sizeof s_views / sizeof s_views[0];
            const char *colon = strchr(value, ':');
            size_t len = colon ? (size_t)(colon - value) : strlen(value);
            while (k < nv && (strcmp(s_views[k].kind, e->name) ||
                              strncmp(s_views[k].name, value, len) || s_views[k].name[len]))
                k++;
            if (k == nv || checks.nviews == 4) {
                char names[200] = "";
                size_t used = 0;
                for (size_t j = 0; j < nv; j++)
                    if (!strcmp(s_views[j].kind, e->name))
                        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s (%s)",
                                                 used ? ", " : "", s_views[j].name,
                                                 s_views[j].help);
                rc = dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                    "unknown view '%.40s' of %s records (views: %s)", value,
                                    e->name, used ? names : "none");
                goto cleanup;
            }
            if (s_views[k].field) { /* one indexed value */
                if ((rc = records_term(e, s_views[k].field, s_views[k].value, &terms[nterms],
                                       ctx->errbuf)) != CRM_OK)
                    goto cleanup;
                nterms++;
                continue;
            }
            long long arg;
            if (!s_view_arg(value, &arg)) {
                rc = dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                    "view '%.40s': after ':' give a whole number, 0 to 36500 "
                                    "(days; hours for overdue)",
                                    value);
                goto cleanup;
            }
            checks.view[checks.nviews] = s_views[k].fn;
            checks.view_arg[checks.nviews++] = arg;
            continue;
        }
        if (strstr(value, "..")) {
            if ((rc = s_range(ctx, e, field, value, &checks)) != CRM_OK)
                goto cleanup;
            continue;
        }
        /* "me": the caller, for the fields that name an owner */
        if (!strcmp(value, "me") && crm_record_field(e->desc, field) &&
            (crm_entity_flags(e, crm_record_field(e->desc, field)->name) &
             (CRM_F_OWNER | CRM_F_USER)))
            value = ctx->session.user->name;
        if ((rc = records_term(e, field, value, &terms[nterms], ctx->errbuf)) != CRM_OK)
            goto cleanup;
        nterms++;
        checks.consent = checks.consent || authz_masks(ctx->session.user, e, field);
    }
    if (r->count) { /* every match, counted from the indexes (and checks where needed) */
        uint64_t total = 0;
        if (checks.has_set && nterms == 0) {
            for (size_t i = 0; i < checks.nset; i++) {
                ProtobufCMessage *rec = NULL;
                if (records_get(ctx->env->store, e, checks.set[i], &rec) == CRM_OK &&
                    s_check(rec, &checks))
                    total++;
                crm_proto_free(&rec);
            }
        } else {
            uint64_t from = 0;
            do {
                rc = records_query(ctx->env->store, e, terms, nterms, from, LIST_MAX, ids, &n,
                                   &more,
                                   checks.consent || checks.n || checks.has_set || checks.nviews
                                       ? s_check
                                       : NULL,
                                   &checks);
                total += n;
                if (n)
                    from = ids[n - 1];
            } while (rc == CRM_OK && more);
        }
        if (rc == CRM_OK) {
            s_reply_record(ctx, e, NULL);
            ctx->body.entity.count = total;
        } else {
            dispatch_error(ctx, rc, "cannot count %s records", e->name);
        }
        goto cleanup;
    }
    uint64_t last = 0; /* a page cut by the scan budget goes on after this */
    if (checks.has_set && nterms == 0) { /* page through the range's ids */
        size_t examined = 0;
        for (size_t i = 0; i < checks.nset && !more; i++) {
            if (checks.set[i] <= after)
                continue;
            if (examined++ == LIST_SCAN_BUDGET) {
                more = true;
                last = checks.set[i] - 1;
                break;
            }
            ProtobufCMessage *rec = NULL;
            if (records_get(ctx->env->store, e, checks.set[i], &rec) == CRM_OK &&
                s_check(rec, &checks)) {
                if (n == limit)
                    more = true;
                else
                    ids[n++] = checks.set[i];
            }
            crm_proto_free(&rec);
        }
    } else { /* records checked one by one: at most LIST_SCAN_BUDGET per page */
        rc = records_query_budget(ctx->env->store, NULL, e, terms, nterms, after, limit,
                                  LIST_SCAN_BUDGET, ids, &n, &more, &last,
                                  checks.consent || checks.n || checks.has_set || checks.nviews
                                      ? s_check
                                      : NULL,
                                  &checks);
    }
    if (rc == CRM_OK)
        rc = s_reply_ids(ctx, e, ids, n, more, last);
    else
        dispatch_error(ctx, rc, "cannot list %s records", e->name);
cleanup:
    for (size_t i = 0; i < nterms; i++)
        records_term_release(&terms[i]);
    free(checks.set);
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
    /* without the invisible characters stored values do not hold either: a name pasted
       with a zero-width space finds the name */
    char *text = strdup(r->text), *clean = text;
    CRM_ASSERT_ALLOC(text);
    crm_utf8_strip_invisible(text);
    while (*text == ' ')
        text++;
    if (!*text) {
        free(clean);
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "search text is empty");
    }
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
        /* folded first, and white space trimmed at both ends: an ideographic or
           no-break space folds to a space, and a space the input method left at
           the end is no part of the name */
        folded = crm_utf8_fold(text);
        size_t len = strlen(folded), from = 0;
        while (len > 0 && strchr(" \t\n\r", folded[len - 1]))
            folded[--len] = '\0';
        while (from < len && strchr(" \t\n\r", folded[from]))
            from++;
        memmove(folded, folded + from, len - from + 1);
        rc = records_text_terms(e, folded, terms, &nterms, ctx->errbuf);
        /* a query that is one gram (a character, or a pair within a word) is
           answered by its posting list alone; any other is checked per
           candidate for the whole text, and one of single ASCII characters
           (no posting list: nterms 0) record by record, at most
           LIST_SCAN_BUDGET a request */
        if (rc == CRM_OK && records_text_is_gram(folded)) {
            free(folded);
            folded = NULL;
        }
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
    uint64_t last = 0;
    rc = records_query_budget(ctx->env->store, NULL, e, terms, nterms, after, limit,
                              LIST_SCAN_BUDGET, ids, &n, &more, &last, match, arg);
    if (rc == CRM_OK)
        rc = s_reply_ids(ctx, e, ids, n, more, last);
    else
        dispatch_error(ctx, rc, "cannot search %s records", e->name);
cleanup:
    for (size_t i = 0; i < nterms; i++)
        records_term_release(&terms[i]);
    free(folded);
    free(clean);
    return rc;
}

/* The records (at most 5) holding one of REC's values of the duplicate-key
   FIELD, seen as a search by the caller would see them (a masked phone finds
   nothing), through the group: a line staged before in this import counts. */
static crm_err_t
s_upsert_match(req_ctx_t *ctx, const crm_entity_t *e, const ProtobufCMessage *rec,
               const ProtobufCFieldDescriptor *fd, uint64_t ids[5], size_t *n)
{
    bool masked = authz_masks(ctx->session.user, e, fd->name);
    *n = 0;
    for (size_t i = 0; i < crm_record_count(rec, fd) && i < 8; i++) {
        records_term_t term;
        uint64_t got[5];
        size_t ng = 0;
        bool more = false;
        crm_err_t rc = records_term(e, fd->name, crm_record_str_at(rec, fd, i), &term,
                                    ctx->errbuf);
        if (rc != CRM_OK)
            return rc;
        rc = records_query_group(ctx->env->store, ctx->env->group, e, &term, 1, 0, 5, got, &ng,
                                 &more, masked ? s_consented : NULL, e);
        records_term_release(&term);
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot look up field '%s'", fd->name);
        for (size_t k = 0; k < ng; k++) {
            bool seen = false;
            for (size_t j = 0; j < *n; j++)
                seen = seen || ids[j] == got[k];
            if (!seen && *n < 5)
                ids[(*n)++] = got[k];
        }
    }
    return CRM_OK;
}

/* Update record NUM of kind E from the import line REC (freed by the caller):
   every field the line gives replaces the stored one, except that lists and
   maps are united, so re-importing a fixed file changes nothing twice. */
static crm_err_t
s_upsert_update(req_ctx_t *ctx, const crm_entity_t *e, bool dry_run, uint64_t num,
                ProtobufCMessage *rec, char id[24], const char **action)
{
    char *fields[64];
    size_t nfields = 0;
    ProtobufCMessage *cur = NULL, *old = NULL;
    mutation_t *m = NULL;
    bool changed = false;
    crm_err_t rc = CRM_OK;
    crm_entity_format_id(e, num, id);
    for (unsigned i = 0; i < e->desc->n_fields && nfields < 64; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        if (s_server_set(crm_entity_flags_of(e, fd)) || (crm_entity_flags_of(e, fd) & CRM_F_PARENT) ||
            !crm_record_is_set(rec, fd))
            continue;
        fields[nfields++] = (char *)fd->name;
    }
    m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
    if ((rc = s_load_checked(ctx, e, id, num, 0, true, NULL, 0, AUTHZ_UPDATE, &cur)) != CRM_OK ||
        (rc = s_check_masked(ctx, e, cur, fields, nfields)) != CRM_OK ||
        (rc = records_group_get(ctx->env->group, e, num, &old)) != CRM_OK)
        goto cleanup;
    for (size_t i = 0; i < nfields; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fields[i]);
        if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type == PROTOBUF_C_TYPE_MESSAGE)
            continue; /* maps (repeated entries) are united by set_text below */
        ProtobufCMessage *both = crm_proto_new(e->desc);
        for (size_t k = 0; k < crm_record_count(cur, fd); k++)
            crm_record_set_text(both, fd, crm_record_str_at(cur, fd, k), false, ctx->errbuf);
        for (size_t k = 0; k < crm_record_count(rec, fd); k++)
            crm_record_set_text(both, fd, crm_record_str_at(rec, fd, k), false, ctx->errbuf);
        crm_record_swap(rec, both, fd);
        crm_proto_free(&both);
    }
    for (size_t i = 0; i < nfields; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, fields[i]);
        if (!crm_record_is_map(fd))
            continue;
        char *have = crm_record_format(cur, fd, false, false), *save = NULL;
        char *add = crm_record_format(rec, fd, false, false);
        crm_record_clear(rec, fd);
        for (char *kv = strtok_r(have, ";", &save); kv; kv = strtok_r(NULL, ";", &save))
            crm_record_set_text(rec, fd, kv, false, ctx->errbuf);
        for (char *kv = strtok_r(add, ";", &save); kv; kv = strtok_r(NULL, ";", &save))
            crm_record_set_text(rec, fd, kv, false, ctx->errbuf);
        free(have);
        free(add);
    }
    ctx->errbuf[0] = '\0';
    if ((rc = s_stage_update(ctx, m, e, num, old, cur, rec, fields, nfields, &changed)) != CRM_OK)
        goto cleanup;
    *action = changed ? "updated" : "unchanged";
    if (changed && !dry_run)
        s_end(ctx, &m);
cleanup:
    mutation_abort(&m);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        dispatch_deny(ctx, e->name, id, "update");
    crm_proto_free(&cur);
    crm_proto_free(&old);
    return rc;
}

/* One import line REC (taken over: freed here): created, or with UPSERT_BY
   the one record it names updated; with DRY_RUN checked the same way and
   nothing staged. *ACTION says which. */
static crm_err_t
s_import_one(req_ctx_t *ctx, const crm_entity_t *e, const Crm__EntityRequest *r,
             const ProtobufCFieldDescriptor *upsert, ProtobufCMessage *rec, char id[24],
             const char **action)
{
    crm_err_t rc = CRM_OK;
    char dupes[160];
    *action = "created";
    if (upsert) {
        ProtobufCMessage *probe = crm_proto_dup(rec); /* normalized, to look its keys up */
        uint64_t ids[5];
        size_t n = 0;
        for (const crm_rule_t *ru = e->rules; ru->field; ru++) /* only the key matters here */
            if ((ru->flags & CRM_F_REQUIRED) && !crm_record_is_set(probe, crm_record_field(e->desc, ru->field)))
                crm_record_set_str(probe, ru->field, "-");
        if ((rc = crm_record_normalize(e, probe, ctx->errbuf)) == CRM_OK)
            rc = s_upsert_match(ctx, e, probe, upsert, ids, &n);
        crm_proto_free(&probe);
        if (rc == CRM_OK && n > 1) {
            char list[96] = "";
            size_t used = 0;
            for (size_t k = 0; k < n; k++) {
                char one[24];
                crm_entity_format_id(e, ids[k], one);
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "",
                                         one);
            }
            rc = dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                                "its %s match %zu%s %s records (%s): merge them first "
                                "(crm %s merge) or fix the line",
                                upsert->name, n, n == 5 ? " or more" : "", e->name, list,
                                e->name);
        } else if (rc == CRM_OK && n == 1) {
            rc = s_upsert_update(ctx, e, r->dry_run, ids[0], rec, id, action);
            crm_proto_free(&rec);
            return rc;
        }
        if (rc != CRM_OK) {
            crm_proto_free(&rec);
            return rc;
        }
    }
    if (!r->dry_run)
        return s_create(ctx, e, rec, id, false, r->allow_duplicate);
    /* a dry run: every check of s_create, nothing staged (not even an id) */
    id[0] = '\0';
    if ((rc = s_prepare_create(ctx, e, rec)) == CRM_OK && !r->allow_duplicate &&
        (rc = s_find_dupes(ctx, e, rec, dupes, sizeof dupes)) == CRM_OK && *dupes)
        rc = dispatch_error(ctx, CRM_ERR_ALREADY_EXISTS,
                            "likely a duplicate of %s %s; to create it anyway: --allow-duplicate",
                            e->name, dupes);
    if (rc == CRM_OK)
        rc = s_check_refs(ctx, e, rec, NULL);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        dispatch_deny(ctx, e->name, "", "create");
    crm_proto_free(&rec);
    return rc;
}

crm_err_t
h_entity_import(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    const ProtobufCFieldDescriptor *upsert = NULL;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK)
        return rc;
    if (r->n_records > IMPORT_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "%zu records in one import request, at most %d", r->n_records,
                              IMPORT_MAX);
    if (*r->upsert_by) {
        upsert = crm_record_field(e->desc, r->upsert_by);
        if (!upsert || !(crm_entity_flags_of(e, upsert) & CRM_F_DUPE_KEY) ||
            upsert->label != PROTOBUF_C_LABEL_REPEATED) {
            char keys[128] = "";
            size_t used = 0;
            for (const crm_rule_t *ru = e->rules; ru->field && used < sizeof keys; ru++)
                if (ru->flags & CRM_F_DUPE_KEY)
                    used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s",
                                             used ? ", " : "", ru->field);
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "cannot upsert %s records by '%.40s'%s%s", e->name,
                                  r->upsert_by, *keys ? ": give one of " : "", keys);
        }
    }
    s_reply_record(ctx, e, NULL);
    Crm__EntityReply *er = &ctx->body.entity;
    er->n_results = r->n_records;
    er->results = dispatch_own(ctx, calloc(r->n_records ? r->n_records : 1, sizeof *er->results));
    Crm__ImportResult *res = dispatch_own(ctx, calloc(r->n_records + 1, sizeof *res));
    char *idbuf = dispatch_own(ctx, calloc(r->n_records + 1, 24));
    struct entity_seen seen = {0};
    ctx->seen = &seen;
    for (size_t i = 0; i < r->n_records; i++) {
        ProtobufCMessage *rec = NULL;
        const char *action = "";
        crm__import_result__init(&res[i]);
        res[i].index = (uint32_t)i;
        ctx->errbuf[0] = '\0';
        crm_err_t one = s_unpack(ctx, e, &r->records[i], &rec);
        if (one == CRM_OK)
            one = s_import_one(ctx, e, r, upsert, rec, idbuf + 24 * i, &action);
        res[i].status = (Crm__ErrorCode)one;
        if (one == CRM_OK) {
            res[i].id = idbuf + 24 * i;
            res[i].action = (char *)action;
        } else {
            res[i].message = dispatch_own(ctx, strdup(ctx->errbuf[0] ? ctx->errbuf
                                                                     : crm_err_str(one)));
        }
        er->results[i] = &res[i];
    }
    ctx->seen = NULL;
    s_seen_free(&seen);
    return CRM_OK;
}

/* ==== Merge ==== */

#define MERGE_MAX 50 /* records merged into one in one change */

static void
s_merged_key(const char *id, char *key, size_t n, size_t *len)
{
    *len = (size_t)snprintf(key, n, "merged/%s", id);
}

/* Copy field FD of FROM into TO (a copy of the value, FROM stays). */
static void
s_copy_field(ProtobufCMessage *to, const ProtobufCMessage *from, const ProtobufCFieldDescriptor *fd)
{
    ProtobufCMessage *tmp = crm_proto_dup(from);
    crm_record_swap(to, tmp, fd);
    crm_proto_free(&tmp);
}

/* Combine OTHER into NEXT: lists and maps united, blanks filled. */
static void
s_combine(const crm_entity_t *e, ProtobufCMessage *next, const ProtobufCMessage *other)
{
    char errbuf[CRM_ERRBUF];
    for (unsigned i = 0; i < e->desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        /* consent is the kept customer's own: another record's consent does not
           unmask this one's data */
        if (crm_entity_flags_of(e, fd) & (CRM_F_SYSTEM | CRM_F_DERIVED | CRM_F_CONSENT |
                                             CRM_F_CONSENT_AT | CRM_F_CONSENT_BY | CRM_F_STAMPED))
            continue;
        /* a customer's tier is derived unless set by hand: only a hand-set one carries over
           (with its override); a derived one the moved orders give anew */
        if (e->desc == &crm__customer__descriptor && !strcmp(fd->name, "tier")) {
            Crm__Customer *to = (Crm__Customer *)next;
            const Crm__Customer *from = (const Crm__Customer *)other;
            if (from->tier_override && !to->tier_override) {
                to->tier = from->tier;
                to->tier_override = true;
            }
            continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type == PROTOBUF_C_TYPE_STRING) {
            for (size_t k = 0; k < crm_record_count(other, fd); k++)
                crm_record_set_text(next, fd, crm_record_str_at(other, fd, k), false, errbuf);
        } else if (crm_record_is_map(fd)) {
            char *all = crm_record_format(other, fd, false, false), *save = NULL;
            char *have = crm_record_format(next, fd, false, false);
            for (char *kv = strtok_r(all, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
                char key[80];
                snprintf(key, sizeof key, "%.*s=", (int)strcspn(kv, "="), kv);
                if (!strstr(have, key)) /* the kept record's value wins */
                    crm_record_set_text(next, fd, kv, false, errbuf);
            }
            free(all);
            free(have);
        } else if (!crm_record_is_set(next, fd) && crm_record_is_set(other, fd)) {
            s_copy_field(next, other, fd);
        }
    }
}

/* Move every child record of FROM_ID (activities, deals, orders, tickets,
   feedback, tasks) to TO_ID, each a part of M. */
static crm_err_t
s_repoint_children(req_ctx_t *ctx, mutation_t *m, const crm_entity_t *parent, const char *from_id,
                   const char *to_id, const char *reason)
{
    store_group_t *g = ctx->env->group;
    int64_t now = crm_time_now_ms();
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, parent->name))
            continue;
        const char *pfield = crm_entity_field_with(k, CRM_F_PARENT);
        uint64_t ids[256], after = 0;
        size_t n;
        bool more = true;
        while (more) { /* moved ones leave FROM's index: page on from the last one moved */
            crm_err_t rc =
                records_children(ctx->env->store, g, k, from_id, after, 256, ids, &n, &more);
            if (rc != CRM_OK)
                return dispatch_error(ctx, rc, "cannot read the %s records of '%s'", k->name,
                                      from_id);
            if (n == 0)
                break;
            if (mutation_parts(m) + n > PARTS_MAX)
                return dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                                      "more than %d records would move in one merge", PARTS_MAX);
            size_t before = mutation_parts(m);
            for (size_t i = 0; i < n; i++) {
                ProtobufCMessage *cur = NULL, *next = NULL;
                if (records_group_get(g, k, ids[i], &cur) == CRM_OK &&
                    (next = crm_proto_dup(cur)) != NULL) {
                    char *fields[1] = {(char *)pfield};
                    crm_record_set_str(next, pfield, to_id);
                    crm_record_set_u64(next, "version", crm_record_get_u64(cur, "version") + 1);
                    crm_record_set_i64(next, "updated_at", now);
                    crm_record_set_str(next, "updated_by", ctx->session.user->name);
                    mutation_put(m, k, ids[i], cur, next, fields, 1, reason);
                }
                crm_proto_free(&cur);
                crm_proto_free(&next);
            }
            if (mutation_parts(m) == before) /* an index entry without its record */
                return dispatch_error(ctx, CRM_ERR_INTERNAL,
                                      "the %s index of '%s' is inconsistent: run crm-admin check",
                                      k->name, from_id);
            after = ids[n - 1];
        }
    }
    return CRM_OK;
}

crm_err_t
h_merge(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_MERGE)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no merge");
    const Crm__MergeRequest *r = ctx->req->merge;
    const crm_entity_t *ce = crm_entity_by_name("customer");
    ProtobufCMessage *keep = NULL, *next = NULL, *others[MERGE_MAX] = {NULL};
    uint64_t keep_num = crm_entity_parse_id(ce, r->keep), nums[MERGE_MAX];
    mutation_t *m = NULL;
    const char *denied = r->keep;
    char reason[CRM_ERRBUF];
    crm_err_t rc;
    if (!keep_num)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a customer id",
                              r->keep);
    if (r->n_others == 0 || r->n_others > MERGE_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "merge 1 to %d customers into '%s'", MERGE_MAX, r->keep);
    for (size_t i = 0; i < r->n_others; i++) {
        nums[i] = crm_entity_parse_id(ce, r->others[i]);
        if (!nums[i] || nums[i] == keep_num)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "'%.40s' cannot be merged into '%s'", r->others[i], r->keep);
        for (size_t j = 0; j < i; j++)
            if (nums[j] == nums[i])
                return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is named twice",
                                      r->others[i]);
    }
    for (size_t i = 0; i < r->n_take; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(ce->desc, r->take[i]->field);
        bool named = !strcmp(r->take[i]->value, r->keep);
        for (size_t j = 0; j < r->n_others; j++)
            named = named || !strcmp(r->take[i]->value, r->others[j]);
        if (!fd ||
            (crm_entity_flags_of(ce, fd) & (CRM_F_SYSTEM | CRM_F_DERIVED | CRM_F_CONSENT |
                                               CRM_F_CONSENT_AT | CRM_F_CONSENT_BY |
                                               CRM_F_STAMPED)) ||
            !named)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "--take '%.40s=%.40s': name a field (not consent) and one of "
                                  "the merged ids",
                                  r->take[i]->field, r->take[i]->value);
    }
    /* merging removes records: it takes the right to delete them all */
    if ((rc = s_load_checked(ctx, ce, r->keep, keep_num, r->expect_version, true, NULL, 0,
                             AUTHZ_DELETE, &keep)) != CRM_OK)
        goto cleanup;
    for (size_t i = 0; i < r->n_others; i++) {
        denied = r->others[i];
        if ((rc = s_load_checked(ctx, ce, r->others[i], nums[i], 0, true, NULL, 0, AUTHZ_DELETE,
                                 &others[i])) != CRM_OK)
            goto cleanup;
    }
    /* as s_repoint_children counts: the others deleted before the last one's children */
    size_t family = s_family_count(ctx, ce, r->others, r->n_others, false, r->n_others - 1);
    if (family > PARTS_MAX) {
        rc = dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                            "more than %d records would move in one merge", PARTS_MAX);
        goto cleanup;
    }
    snprintf(reason, sizeof reason, "merged into %s", r->keep);
    /* the fields: what --take says, else the kept value, else the first other's */
    if ((rc = records_group_get(ctx->env->group, ce, keep_num, &next)) != CRM_OK)
        goto cleanup;
    for (size_t i = 0; i < r->n_take; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(ce->desc, r->take[i]->field);
        for (size_t j = 0; j < r->n_others; j++)
            if (!strcmp(r->take[i]->value, r->others[j])) {
                crm_record_clear(next, fd);
                s_copy_field(next, others[j], fd);
            }
    }
    for (size_t j = 0; j < r->n_others; j++)
        s_combine(ce, next, others[j]);
    if ((rc = crm_record_normalize(ce, next, ctx->errbuf)) != CRM_OK)
        goto cleanup;
    /* what the merge changes on the kept record - a field taken on purpose, a blank filled,
       a list united - is a change the caller's policy decides, as any update's is: a
       support manager's merge may unite phones, not fill in the industry */
    {
        char *merged[64];
        size_t nm = crm_record_diff(ce, keep, next, merged, 64);
        denied = r->keep;
        if ((rc = authz_record(ctx->session.user, ce, AUTHZ_UPDATE, keep, next, merged, nm,
                               ctx->errbuf)) != CRM_OK)
            goto cleanup;
    }
    if (dispatch_large(ctx, family + 1)) /* checked here, done on the writer */
        goto cleanup;
    m = mutation_begin(ctx->env->group, ctx->env->store, ctx->session.user);
    /* their records move to the kept customer; the others are gone, their ids remembered */
    for (size_t j = 0; j < r->n_others; j++) {
        if ((rc = s_repoint_children(ctx, m, ce, r->others[j], r->keep, reason)) != CRM_OK)
            goto cleanup;
        mutation_delete(m, ce, nums[j], others[j], reason);
        char key[64];
        size_t klen;
        s_merged_key(r->others[j], key, sizeof key, &klen);
        store_group_put(ctx->env->group, STORE_CF_META, key, klen, r->keep, strlen(r->keep));
        snprintf(key, sizeof key, "merged_from/%s/%s", r->keep, r->others[j]);
        store_group_put(ctx->env->group, STORE_CF_META, key, strlen(key), "", 0);
    }
    /* and its value follows its orders and activities, now all of them */
    derive_ctx_t dc = s_dc(ctx);
    if ((rc = derive_customer(&dc, (Crm__Customer *)next, ctx->errbuf)) != CRM_OK)
        goto cleanup;
    char *changed[64];
    size_t nchanged = crm_record_diff(ce, keep, next, changed, 64);
    crm_record_set_u64(next, "version", crm_record_get_u64(keep, "version") + 1);
    crm_record_set_i64(next, "updated_at", dc.now);
    crm_record_set_str(next, "updated_by", ctx->session.user->name);
    size_t used = (size_t)snprintf(reason, sizeof reason, "merged ");
    for (size_t j = 0; j < r->n_others && used + 30 < sizeof reason; j++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", j ? ", " : "",
                                 r->others[j]);
    mutation_put(m, ce, keep_num, keep, next, changed, nchanged, reason);
    s_end(ctx, &m);
    s_reply_record(ctx, ce, next);
cleanup:
    mutation_abort(&m);
    if (rc == CRM_ERR_PERMISSION_DENIED)
        dispatch_deny(ctx, ce->name, denied, "merge");
    crm_proto_free(&keep);
    crm_proto_free(&next);
    for (size_t j = 0; j < MERGE_MAX; j++)
        crm_proto_free(&others[j]);
    return rc;
}

/* ==== The recycle bin ==== */

#define BIN_LIST_MAX 200    /* binned records one listing reads */
#define BIN_PURGE_KEYS 2000 /* keys one purge request removes (a few ms) */

static crm_err_t
s_bin_kind(req_ctx_t *ctx, const crm_entity_t *e)
{
    if (!e->parent)
        return CRM_OK;
    return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                          "a deleted %s is not kept in the recycle bin on its own: it is kept "
                          "with its %s (restore that)", e->name, e->parent);
}

typedef struct {
    req_ctx_t *ctx;
    const crm_entity_t *e;
    uint64_t last;
} s_bin_list_t;

static bool
s_bin_listed(uint64_t num, Crm__Binned *b, void *arg)
{
    s_bin_list_t *l = arg;
    req_ctx_t *ctx = l->ctx;
    l->last = num;
    ProtobufCMessage *rec = NULL;
    char errbuf[CRM_ERRBUF];
    if (crm_proto_unpack_wire(l->e->desc, b->record.data, b->record.len, &rec, errbuf) != CRM_OK)
        return false;
    /* what the caller may read of it, masked as every read is */
    if (authz_record(ctx->session.user, l->e, AUTHZ_READ, rec, NULL, NULL, 0, errbuf) != CRM_OK) {
        crm_proto_free(&rec);
        return false;
    }
    authz_redact(ctx->session.user, l->e, rec);
    Crm__Binned *shown = dispatch_own(ctx, malloc(sizeof *shown));
    CRM_ASSERT_ALLOC(shown);
    crm__binned__init(shown);
    shown->kind = (char *)l->e->name;
    shown->record.data = dispatch_own(ctx, crm_proto_pack(rec, &shown->record.len));
    shown->deleted_at = b->deleted_at;
    shown->deleted_by = dispatch_own(ctx, strdup(b->deleted_by));
    CRM_ASSERT_ALLOC(shown->deleted_by);
    shown->n_parts = b->n_parts;
    crm_proto_free(&rec);
    Crm__EntityReply *er = &ctx->body.entity;
    Crm__Binned **grown = realloc(er->binned, (er->n_binned + 1) * sizeof *grown);
    CRM_ASSERT_ALLOC(grown);
    er->binned = grown;
    er->binned[er->n_binned++] = shown;
    return false;
}

/* `crm customer bin`: the deleted records of a kind the caller may read. */
crm_err_t
h_bin_list(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    size_t limit = 0;
    uint64_t after = 0;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK || (rc = s_bin_kind(ctx, e)) != CRM_OK || (rc = s_may_read(ctx, e)) != CRM_OK ||
        (rc = s_paging(ctx, e, r, &limit, &after)) != CRM_OK)
        return rc;
    if (limit > BIN_LIST_MAX)
        limit = BIN_LIST_MAX;
    s_reply_record(ctx, e, NULL);
    s_bin_list_t l = {ctx, e, 0};
    bool more = false;
    rc = bin_each(ctx->env->store, e, after, limit, s_bin_listed, &l, &more);
    /* the array grew by realloc: own it once, at its final place */
    if (ctx->body.entity.binned)
        dispatch_own(ctx, ctx->body.entity.binned);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read the recycle bin");
    if (more) {
        char *next = dispatch_own(ctx, malloc(24));
        crm_entity_format_id(e, l.last, next);
        ctx->body.entity.next_after = next;
    }
    return CRM_OK;
}

/* `crm customer restore ID`: the record comes back with the records deleted
   with it, under its own id, as one change; its history never left. Those
   who may delete it may restore it. */
crm_err_t
h_bin_restore(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    uint64_t num;
    Crm__Binned *b = NULL;
    ProtobufCMessage *rec = NULL, *old = NULL;
    crm_err_t rc = s_request_id(ctx, &r, &e, &num);
    if (rc != CRM_OK || (rc = s_bin_kind(ctx, e)) != CRM_OK)
        return rc;
    store_group_t *g = ctx->env->group;
    if ((rc = bin_get(g, e, num, &b)) == CRM_ERR_NOT_FOUND) {
        if (records_group_get(g, e, num, &old) == CRM_OK) {
            crm_proto_free(&old);
            return dispatch_error(ctx, CRM_ERR_FAILED_PRECONDITION,
                                  "%s '%.40s' is not deleted", e->name, r->id);
        }
        return dispatch_error(ctx, CRM_ERR_NOT_FOUND,
                              "%s '%.40s' is not in the recycle bin (never deleted, or purged)",
                              e->name, r->id);
    }
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read the recycle bin");
    derive_ctx_t dc = s_dc(ctx);
    mutation_t *m = NULL;
    char dupes[160] = "";
    if ((rc = crm_proto_unpack_wire(e->desc, b->record.data, b->record.len, &rec,
                                    ctx->errbuf)) != CRM_OK) {
        rc = dispatch_error(ctx, CRM_ERR_INTERNAL, "the binned %s '%.40s' is corrupt", e->name,
                            r->id);
    } else if ((rc = authz_record(ctx->session.user, e, AUTHZ_DELETE, rec, NULL, NULL, 0,
                                  ctx->errbuf)) != CRM_OK) {
        size_t n = strlen(ctx->errbuf);
        snprintf(ctx->errbuf + n, sizeof ctx->errbuf - n,
                 " (restoring one takes the right to delete it)");
        dispatch_deny(ctx, e->name, r->id, "restore");
    } else if (!r->allow_duplicate &&
               (rc = s_find_dupes(ctx, e, rec, dupes, sizeof dupes)) == CRM_OK && *dupes) {
        rc = dispatch_error(ctx, CRM_ERR_ALREADY_EXISTS,
                            "restoring %s '%.40s' would make a likely duplicate of %s",
                            e->name, r->id, dupes);
    } else if (rc == CRM_OK && dispatch_large(ctx, 1 + (size_t)b->n_parts)) {
        /* checked here, done on the writer: nothing staged */
    } else if (rc == CRM_OK) {
        m = mutation_begin(g, ctx->env->store, ctx->session.user);
        crm_record_set_u64(rec, "version", crm_record_get_u64(rec, "version") + 1);
        crm_record_set_i64(rec, "updated_at", dc.now);
        crm_record_set_str(rec, "updated_by", ctx->session.user->name);
        mutation_put(m, e, num, NULL, rec, NULL, 0, "restored from the recycle bin");
        for (uint32_t i = 0; i < b->n_parts && rc == CRM_OK; i++) {
            Crm__BinnedPart *p = NULL;
            ProtobufCMessage *child = NULL;
            const crm_entity_t *k = NULL;
            uint64_t cnum = 0;
            if ((rc = bin_part(g, e, num, i, &p)) == CRM_OK &&
                (!(k = crm_entity_by_name(p->kind)) ||
                 crm_proto_unpack_wire(k->desc, p->record.data, p->record.len, &child,
                                       ctx->errbuf) != CRM_OK ||
                 !(cnum = crm_entity_parse_id(k, crm_record_get_str(child, "id")))))
                rc = CRM_ERR_INTERNAL;
            if (rc == CRM_OK)
                mutation_put(m, k, cnum, NULL, child, NULL, 0, "restored with its customer");
            else
                dispatch_error(ctx, rc, "part %u of the binned %s '%.40s' is corrupt", i,
                               e->name, r->id);
            crm_proto_free(&child);
            crm_proto_free((ProtobufCMessage **)&p);
        }
        if (rc == CRM_OK)
            bin_stage_remove(g, e, num, b);
    }
    if (rc == CRM_OK && ctx->large) {
        /* handed over */
    } else if (rc == CRM_OK) {
        s_end(ctx, &m);
        s_reply_record(ctx, e, rec);
        ctx->body.entity.count = b->n_parts; /* the records restored with it */
    } else {
        mutation_abort(&m);
    }
    crm_proto_free(&rec);
    crm_proto_free((ProtobufCMessage **)&b);
    return rc;
}

/* Admins: remove a record (ID) or every record past the retention (no ID)
   from the bin for good. Each purge is audited. */
crm_err_t
h_bin_purge(req_ctx_t *ctx)
{
    const Crm__EntityRequest *r;
    const crm_entity_t *e;
    crm_err_t rc = s_request(ctx, &r, &e);
    if (rc != CRM_OK || (rc = s_bin_kind(ctx, e)) != CRM_OK)
        return rc;
    const Crm__User *u = ctx->session.user;
    store_group_t *g = ctx->env->group;
    s_reply_record(ctx, e, NULL);
    if (!*r->id) { /* the expired ones, a bounded batch per request (crm asks again) */
        size_t n = bin_expire(ctx->env->store, g, crm_time_now_ms() - ctx->env->bin_keep_ms,
                              BIN_PURGE_KEYS, u->name);
        ctx->body.entity.count = n;
        ctx->staged = n > 0;
        return CRM_OK;
    }
    uint64_t num;
    Crm__Binned *b = NULL;
    if ((rc = s_parse_id(ctx, e, r->id, &num)) != CRM_OK)
        return rc;
    if ((rc = bin_get(g, e, num, &b)) == CRM_ERR_NOT_FOUND)
        return dispatch_error(ctx, rc, "%s '%.40s' is not in the recycle bin", e->name, r->id);
    if (rc != CRM_OK)
        return dispatch_error(ctx, rc, "cannot read the recycle bin");
    bin_stage_remove(g, e, num, b);
    bin_audit_purge(g, ctx->env->store, e, num, u->name, (int)u->department, (int)u->role,
                    "purged by an admin");
    crm_proto_free((ProtobufCMessage **)&b);
    ctx->body.entity.count = 1;
    ctx->staged = true;
    return CRM_OK;
}
