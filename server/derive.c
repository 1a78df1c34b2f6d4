/*  derive - per-kind hooks and customer value (see derive.h) */
#include "derive.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crm_proto.h"
#include "crm_record.h"
#include "dispatch.h"
#include "records.h"
#include "users.h"

#define DAY_MS (24LL * 3600 * 1000)
#define PAGE 256

/* ==== Rules ==== */

static const struct {
    const char *name;
    int64_t def;
    const char *what;
} s_rules[VR__COUNT] = {
#define RULE(name, def, what) {#name, def, what},
#include "value_rules.def"
#undef RULE
};

void
value_rules_defaults(value_rules_t *r)
{
    for (int i = 0; i < VR__COUNT; i++)
        r->v[i] = s_rules[i].def;
    snprintf(r->currency, sizeof r->currency, "%s", CRM_DEFAULT_CURRENCY);
}

crm_err_t
value_rules_load(value_rules_t *r, const char *path, bool must_exist, char *errbuf)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && !must_exist)
            return CRM_OK;
        snprintf(errbuf, CRM_ERRBUF, "cannot read value rules '%s': %s", path, strerror(errno));
        return CRM_ERR_INVALID_ARGUMENT;
    }
    char line[256];
    int lineno = 0;
    crm_err_t rc = CRM_OK;
    while (rc == CRM_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char name[64], value[64];
        if (sscanf(line, " %63[a-z_] = %63s", name, value) != 2) {
            if (line[strspn(line, " \t\r\n")])
                goto bad;
            continue;
        }
        if (!strcmp(name, "currency")) {
            if (strlen(value) != 3 || crm_money_minor_digits(value) < 0)
                goto bad;
            memcpy(r->currency, value, 4);
            continue;
        }
        int i = 0;
        while (i < VR__COUNT && strcmp(s_rules[i].name, name))
            i++;
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (i == VR__COUNT || *end || errno || v < 0)
            goto bad;
        r->v[i] = v;
        continue;
    bad:
        snprintf(errbuf, CRM_ERRBUF,
                 "%s:%d: expected 'name = number' with a known rule name (see crm-admin rules)",
                 path, lineno);
        rc = CRM_ERR_INVALID_ARGUMENT;
    }
    fclose(f);
    if (rc == CRM_OK && (r->v[VR_churned_days] <= r->v[VR_at_risk_days] ||
                         r->v[VR_tier_high_spend] < r->v[VR_tier_mid_spend])) {
        snprintf(errbuf, CRM_ERRBUF,
                 "%s: churned_days must exceed at_risk_days and tier_high_spend be at least "
                 "tier_mid_spend",
                 path);
        rc = CRM_ERR_INVALID_ARGUMENT;
    }
    return rc;
}

char *
value_rules_describe(const value_rules_t *r)
{
    size_t cap = 4096, used = 0;
    char *out = malloc(cap);
    CRM_ASSERT_ALLOC(out);
    used += (size_t)snprintf(out, cap, "currency = %s  # the store's currency\n", r->currency);
    for (int i = 0; i < VR__COUNT && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s = %lld  # %s\n", s_rules[i].name,
                                 (long long)r->v[i], s_rules[i].what);
    return out;
}

/* ==== Helpers ==== */

static void
s_set_money(Crm__Money **slot, int64_t minor, const char *currency)
{
    if (!*slot) {
        *slot = crm_proto_alloc(sizeof **slot);
        crm__money__init(*slot);
    }
    if ((*slot)->currency != protobuf_c_empty_string)
        crm_proto_release((*slot)->currency);
    (*slot)->currency = crm_proto_strdup(currency);
    (*slot)->minor = minor;
}

static void
s_clear_money(Crm__Money **slot)
{
    crm_proto_free((ProtobufCMessage **)slot);
}

static bool
s_field_named(char *const *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(fields[i], name))
            return true;
    return false;
}

static crm_err_t
s_currency_ok(const derive_ctx_t *dc, const char *field, const Crm__Money *m, char *errbuf)
{
    if (m && strcmp(m->currency, dc->rules->currency)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "field '%s': this server keeps deals and orders in %s, not %s (amounts of one "
                 "customer are added up)",
                 field, dc->rules->currency, m->currency);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

/* ==== Customer value ==== */

static int
s_tier(const value_rules_t *r, uint32_t orders, int64_t spend)
{
    if (orders == 0)
        return CRM__TIER__TIER_NONE;
    if (spend >= r->v[VR_tier_high_spend] || orders >= r->v[VR_tier_high_orders])
        return CRM__TIER__HIGH;
    if (spend >= r->v[VR_tier_mid_spend] || orders >= r->v[VR_tier_mid_orders])
        return CRM__TIER__MID;
    return CRM__TIER__LOW;
}

/* The stage that C's orders and contacts give as of NOW (C's own stage if
   it has no orders). */
static int
s_stage(const value_rules_t *r, const Crm__Customer *c, int64_t now)
{
    if (c->order_count == 0) /* the stage people gave it */
        return c->stage;
    int64_t last = c->last_order_at > c->last_contact_at ? c->last_order_at : c->last_contact_at;
    int64_t days = now > last ? (now - last) / DAY_MS : 0;
    if (days >= r->v[VR_churned_days])
        return CRM__STAGE__CHURNED;
    if (days >= r->v[VR_at_risk_days])
        return CRM__STAGE__AT_RISK;
    return CRM__STAGE__ACTIVE;
}

static void s_value_set(const derive_ctx_t *dc, Crm__Customer *c, uint32_t count, int64_t spend,
                        int64_t first, int64_t last, int64_t contact);

crm_err_t
derive_customer(const derive_ctx_t *dc, Crm__Customer *c, char *errbuf)
{
    const crm_entity_t *oe = crm_entity_by_name("order"), *ae = crm_entity_by_name("activity");
    uint64_t ids[PAGE], after = 0;
    size_t n;
    bool more = true;
    uint32_t count = 0;
    int64_t spend = 0, first = 0, last = 0;
    crm_err_t rc = CRM_OK;
    while (more && rc == CRM_OK) {
        rc = records_children(dc->store, dc->g, oe, c->id, after, PAGE, ids, &n, &more);
        for (size_t i = 0; rc == CRM_OK && i < n; i++) {
            ProtobufCMessage *m = NULL;
            rc = dc->g ? records_group_get(dc->g, oe, ids[i], &m)
                       : records_get(dc->store, oe, ids[i], &m);
            if (rc == CRM_ERR_NOT_FOUND) { /* deleted in this very group */
                rc = CRM_OK;
                continue;
            }
            if (rc != CRM_OK)
                break;
            const Crm__Order *o = (const Crm__Order *)m;
            int64_t net = (o->total ? o->total->minor : 0) - (o->refunded ? o->refunded->minor : 0);
            if (__builtin_add_overflow(spend, net, &spend)) {
                snprintf(errbuf, CRM_ERRBUF, "customer '%s': total spend overflows", c->id);
                rc = CRM_ERR_INVALID_ARGUMENT;
            }
            count++;
            if (!first || o->ordered_at < first)
                first = o->ordered_at;
            if (o->ordered_at > last)
                last = o->ordered_at;
            crm_proto_free(&m);
        }
        if (n)
            after = ids[n - 1];
    }
    if (rc != CRM_OK) {
        if (!*errbuf)
            snprintf(errbuf, CRM_ERRBUF, "cannot read the orders of customer '%s'", c->id);
        return rc;
    }
    /* the newest activity: the first of the timeline */
    int64_t contact = 0;
    rc = records_children(dc->store, dc->g, ae, c->id, 0, 1, ids, &n, &more);
    if (rc == CRM_OK && n) {
        ProtobufCMessage *m = NULL;
        rc = dc->g ? records_group_get(dc->g, ae, ids[0], &m)
                   : records_get(dc->store, ae, ids[0], &m);
        if (rc == CRM_OK)
            contact = ((const Crm__Activity *)m)->occurred_at;
        crm_proto_free(&m);
        if (rc == CRM_ERR_NOT_FOUND)
            rc = CRM_OK;
    }
    if (rc != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "cannot read the activities of customer '%s'", c->id);
        return rc;
    }
    s_value_set(dc, c, count, spend, first, last, contact);
    return CRM_OK;
}

/* Set C's derived value from its order count, net spend, first and last
   order and last contact; tier and stage by the rules. */
static void
s_value_set(const derive_ctx_t *dc, Crm__Customer *c, uint32_t count, int64_t spend,
            int64_t first, int64_t last, int64_t contact)
{
    const char *cur = dc->rules->currency;
    c->order_count = count;
    if (count) {
        s_set_money(&c->total_spend, spend, cur);
        s_set_money(&c->avg_order_value, spend / count, cur);
    } else {
        s_clear_money(&c->total_spend);
        s_clear_money(&c->avg_order_value);
    }
    c->first_order_at = first;
    c->last_order_at = last;
    c->order_interval_days =
        count > 1 ? (uint32_t)((last - first) / DAY_MS / (int64_t)(count - 1)) : 0;
    c->last_contact_at = contact;
    if (!c->tier_override)
        c->tier = s_tier(dc->rules, count, spend);
    c->stage = s_stage(dc->rules, c, dc->now);
}

static int64_t
s_net(const ProtobufCMessage *m)
{
    const Crm__Order *o = (const Crm__Order *)m;
    return (o->total ? o->total->minor : 0) - (o->refunded ? o->refunded->minor : 0);
}

/* The common writes - an order placed or refunded, an activity logged - move
   customer C's value by what they add, from the value it has (kept right by
   every write; `crm-admin check` recomputes it in full): no re-read of every
   order. True if that applied (*rc says how it went); false for the others -
   a delete, a record moved to another customer, an order's date changed, an
   activity edited - which re-read everything (derive_customer). */
static bool
s_value_delta(const derive_ctx_t *dc, Crm__Customer *c, const crm_entity_t *e,
              const ProtobufCMessage *old, const ProtobufCMessage *rec, crm_err_t *rc,
              char *errbuf)
{
    *rc = CRM_OK;
    if (!rec || strcmp(crm_record_get_str(rec, "customer_id"), c->id))
        return false;
    if (old && strcmp(crm_record_get_str(old, "customer_id"), c->id))
        return false;
    int64_t spend = c->total_spend ? c->total_spend->minor : 0;
    uint32_t count = c->order_count;
    int64_t first = c->first_order_at, last = c->last_order_at, contact = c->last_contact_at;
    if (!strcmp(e->name, "order")) {
        const Crm__Order *o = (const Crm__Order *)rec;
        if (old && ((const Crm__Order *)old)->ordered_at != o->ordered_at)
            return false;
        if (__builtin_add_overflow(spend, s_net(rec) - (old ? s_net(old) : 0), &spend)) {
            snprintf(errbuf, CRM_ERRBUF, "customer '%s': total spend overflows", c->id);
            *rc = CRM_ERR_INVALID_ARGUMENT;
            return true;
        }
        if (!old) {
            count++;
            first = count == 1 || o->ordered_at < first ? o->ordered_at : first;
            last = count == 1 || o->ordered_at > last ? o->ordered_at : last;
        }
    } else if (!strcmp(e->name, "activity") && !old) {
        int64_t at = ((const Crm__Activity *)rec)->occurred_at;
        contact = at > contact ? at : contact;
    } else {
        return false;
    }
    s_value_set(dc, c, count, spend, first, last, contact);
    return true;
}

bool
derive_checked_field(const char *field)
{
    static const char *const checked[] = {"order_count",    "total_spend",     "avg_order_value",
                                          "first_order_at", "last_order_at",   "order_interval_days",
                                          "last_contact_at", "tier"};
    for (size_t i = 0; i < sizeof checked / sizeof checked[0]; i++)
        if (!strcmp(checked[i], field))
            return true;
    return false;
}

/* ==== Kind hooks ==== */

static crm_err_t
s_customer_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
                   char *const *fields, size_t nfields, char *errbuf)
{
    Crm__Customer *c = (Crm__Customer *)rec;
    const Crm__Customer *was = (const Crm__Customer *)old;
    /* a tier given by hand overrides the derived one until it is cleared */
    if (!old || s_field_named(fields, nfields, "tier"))
        c->tier_override = c->tier != CRM__TIER__TIER_NONE;
    if (!c->tier_override)
        c->tier = s_tier(dc->rules, c->order_count, c->total_spend ? c->total_spend->minor : 0);
    if (was && was->order_count > 0 && s_field_named(fields, nfields, "stage") &&
        c->stage != was->stage) {
        snprintf(errbuf, CRM_ERRBUF,
                 "the stage of a customer with orders follows its orders and contacts (active, "
                 "at-risk, churned); '%s' has %u",
                 c->id, was->order_count);
        return CRM_ERR_FAILED_PRECONDITION;
    }
    return CRM_OK; /* the owner's department: the policy's REFER rows (authz_refer) */
}

static crm_err_t
s_deal_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
               char *const *fields, size_t nfields, char *errbuf)
{
    (void)fields;
    (void)nfields;
    Crm__Deal *d = (Crm__Deal *)rec;
    const Crm__Deal *was = (const Crm__Deal *)old;
    crm_err_t rc = s_currency_ok(dc, "amount", d->amount, errbuf);
    if (rc != CRM_OK)
        return rc;
    if (d->stage == CRM__DEAL_STAGE__LOST && !*d->lost_reason) {
        snprintf(errbuf, CRM_ERRBUF, "a lost deal needs a reason: give --lost-reason TEXT");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (d->stage != CRM__DEAL_STAGE__LOST && *d->lost_reason &&
        (!was || was->stage == CRM__DEAL_STAGE__LOST)) {
        crm_proto_release(d->lost_reason); /* reopened: the reason no longer holds */
        d->lost_reason = (char *)protobuf_c_empty_string;
    }
    static const int probability[] = {0, VR_prob_qualify, VR_prob_proposal, VR_prob_negotiation,
                                      VR_prob_won, VR_prob_lost};
    d->probability = d->stage >= 1 && d->stage <= 5
                         ? (uint32_t)dc->rules->v[probability[d->stage]]
                         : 0;
    bool closed = d->stage == CRM__DEAL_STAGE__WON || d->stage == CRM__DEAL_STAGE__LOST;
    bool was_closed = was && (was->stage == CRM__DEAL_STAGE__WON ||
                              was->stage == CRM__DEAL_STAGE__LOST);
    if (closed && (!was_closed || was->stage != d->stage))
        d->closed_at = dc->now;
    else if (!closed)
        d->closed_at = 0;
    return CRM_OK; /* the owner's department: the policy's REFER rows (authz_refer) */
}

static crm_err_t
s_order_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
                char *const *fields, size_t nfields, char *errbuf)
{
    (void)fields;
    (void)nfields;
    Crm__Order *o = (Crm__Order *)rec;
    const Crm__Order *was = (const Crm__Order *)old;
    const char *cur = dc->rules->currency;
    int64_t total = 0;
    if (o->n_lines == 0) {
        snprintf(errbuf, CRM_ERRBUF,
                 "an order needs at least one line: --line 'sku=A1,name=Widget,quantity=2,"
                 "unit_price=99.50'");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < o->n_lines; i++) {
        Crm__OrderLine *l = o->lines[i];
        if (!*l->sku && !*l->name) {
            snprintf(errbuf, CRM_ERRBUF, "order line %zu needs a sku or a name", i + 1);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (l->quantity < 1 || l->quantity > 1000000) {
            snprintf(errbuf, CRM_ERRBUF, "order line %zu: quantity %lld is out of range (1 to "
                     "1000000)", i + 1, (long long)l->quantity);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (!l->unit_price) {
            snprintf(errbuf, CRM_ERRBUF, "order line %zu needs a unit_price", i + 1);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        crm_err_t rc = s_currency_ok(dc, "lines.unit_price", l->unit_price, errbuf);
        if (rc != CRM_OK)
            return rc;
        int64_t amount;
        if (__builtin_mul_overflow(l->quantity, l->unit_price->minor, &amount) ||
            __builtin_add_overflow(total, amount, &total) || total > INT64_C(100000000000000000)) {
            snprintf(errbuf, CRM_ERRBUF, "order line %zu: the amount is too large", i + 1);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        s_set_money(&l->amount, amount, cur);
    }
    s_set_money(&o->total, total, cur);
    /* refunds: only ever appended; each new one stamped with when and by whom */
    size_t kept = was ? was->n_refunds : 0;
    if (was && (o->n_refunds < kept)) {
        snprintf(errbuf, CRM_ERRBUF, "refunds cannot be removed from an order");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    int64_t refunded = 0;
    for (size_t i = 0; i < o->n_refunds; i++) {
        Crm__Refund *r = o->refunds[i];
        if (i < kept) { /* must be exactly what was stored */
            const Crm__Refund *w = was->refunds[i];
            if (!r->amount || !w->amount || r->amount->minor != w->amount->minor ||
                strcmp(r->reason, w->reason) || r->at != w->at || strcmp(r->by, w->by)) {
                snprintf(errbuf, CRM_ERRBUF, "refund %zu was already made and cannot change",
                         i + 1);
                return CRM_ERR_INVALID_ARGUMENT;
            }
        } else {
            if (!r->amount || r->amount->minor <= 0) {
                snprintf(errbuf, CRM_ERRBUF, "a refund needs an amount above zero");
                return CRM_ERR_INVALID_ARGUMENT;
            }
            crm_err_t rc = s_currency_ok(dc, "refunds.amount", r->amount, errbuf);
            if (rc != CRM_OK)
                return rc;
            /* an import's own stamps, checked below; the server's are now and the caller */
            bool given_at = !was && r->at, given_by = !was && *r->by;
            if (!r->at || was)
                r->at = dc->now;
            if (!*r->by || was) {
                if (r->by != protobuf_c_empty_string)
                    crm_proto_release(r->by);
                r->by = crm_proto_strdup(dc->actor->name);
            }
            /* an imported order's refunds keep when and by whom (an export imports back),
               but only as history can have them: after the order, not ahead of now, by a
               user of this server */
            const int64_t day = INT64_C(86400000); /* clocks and time zones */
            if (given_at && (r->at < o->ordered_at - day || r->at > dc->now + day)) {
                char when[32];
                crm_record_format_time(r->at, when);
                snprintf(errbuf, CRM_ERRBUF, "refund %zu: 'at' %s is %s", i + 1, when,
                         r->at < o->ordered_at - day ? "before the order" : "in the future");
                return CRM_ERR_INVALID_ARGUMENT;
            }
            /* whose refund it was: the importer's own, or any user's when an admin imports
               the history of another system */
            if (given_by && strcmp(r->by, dc->actor->name) &&
                dc->actor->role != CRM__ROLE__ADMIN) {
                snprintf(errbuf, CRM_ERRBUF, "refund %zu: 'by' may name only you ('%.40s'); an "
                         "admin imports others' refunds", i + 1, dc->actor->name);
                return CRM_ERR_PERMISSION_DENIED;
            }
            Crm__User *u = NULL;
            crm_err_t urc = given_by ? users_get_by_name(dc->store, r->by, &u) : CRM_OK;
            if (urc == CRM_OK && u && strcmp(u->name, r->by))
                urc = CRM_ERR_NOT_FOUND; /* a name the lookup cut short is no user's */
            users_free(&u);
            if (urc == CRM_ERR_NOT_FOUND) {
                snprintf(errbuf, CRM_ERRBUF, "refund %zu: 'by' names no user ('%.40s')", i + 1,
                         r->by);
                return CRM_ERR_INVALID_ARGUMENT;
            }
            if (urc != CRM_OK) {
                snprintf(errbuf, CRM_ERRBUF, "cannot read user '%.40s'", r->by);
                return urc;
            }
        }
        if (__builtin_add_overflow(refunded, r->amount->minor, &refunded) || refunded > total) {
            char t[64];
            crm_money_format(total, cur, true, t, sizeof t);
            snprintf(errbuf, CRM_ERRBUF, "refunds would exceed the order's total of %s", t);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    if (refunded)
        s_set_money(&o->refunded, refunded, cur);
    else
        s_clear_money(&o->refunded);
    o->status = refunded == 0       ? CRM__ORDER_STATUS__PAID
                : refunded == total ? CRM__ORDER_STATUS__REFUNDED
                                    : CRM__ORDER_STATUS__PARTIALLY_REFUNDED;
    return CRM_OK;
}

/* ==== After-sales ==== */

static const struct {
    int from, to;
    bool manager;
} s_flow[] = {
#define ANY false
#define MANAGER true
#define FLOW(from, to, who)                                                                        \
    {CRM__TICKET_STATUS__TICKET_STATUS_##from, CRM__TICKET_STATUS__TICKET_STATUS_##to, who},
#include "ticket_flow.def"
#undef FLOW
#undef ANY
#undef MANAGER
};

static bool
s_ticket_active(const Crm__Ticket *t)
{
    return t->status == CRM__TICKET_STATUS__TICKET_STATUS_OPEN ||
           t->status == CRM__TICKET_STATUS__TICKET_STATUS_PENDING;
}

/* The due times of T from its opening time and priority (SLA rules). */
static void
s_ticket_dues(const value_rules_t *r, Crm__Ticket *t)
{
    static const int resp[] = {VR_sla_response_min_normal, VR_sla_response_min_low,
                               VR_sla_response_min_normal, VR_sla_response_min_high,
                               VR_sla_response_min_urgent};
    static const int fix[] = {VR_sla_resolve_hours_normal, VR_sla_resolve_hours_low,
                              VR_sla_resolve_hours_normal, VR_sla_resolve_hours_high,
                              VR_sla_resolve_hours_urgent};
    int p = t->priority >= 0 && t->priority <= 4 ? t->priority : 0;
    t->response_due = t->opened_at + r->v[resp[p]] * 60 * 1000;
    t->resolution_due = t->opened_at + r->v[fix[p]] * 3600 * 1000;
}

bool
derive_ticket_breaches(Crm__Ticket *t, int64_t now)
{
    bool changed = false;
    if (!t->response_breached && t->response_due &&
        ((t->first_response_at && t->first_response_at > t->response_due) ||
         (!t->first_response_at && s_ticket_active(t) && now > t->response_due))) {
        t->response_breached = true;
        changed = true;
    }
    if (!t->resolution_breached && t->resolution_due &&
        ((t->resolved_at && t->resolved_at > t->resolution_due) ||
         (s_ticket_active(t) && now > t->resolution_due))) {
        t->resolution_breached = true;
        changed = true;
    }
    return changed;
}

/* Record ID of KIND must exist and belong to CUSTOMER. */
static crm_err_t
s_same_customer(const derive_ctx_t *dc, const char *field, const char *kind, const char *id,
                const char *customer, char *errbuf)
{
    const crm_entity_t *e = crm_entity_by_name(kind);
    uint64_t num = crm_entity_parse_id(e, id);
    ProtobufCMessage *m = NULL;
    crm_err_t rc = !num ? CRM_ERR_NOT_FOUND
                        : dc->g ? records_group_get(dc->g, e, num, &m)
                                : records_get(dc->store, e, num, &m);
    if (rc == CRM_OK && strcmp(crm_record_get_str(m, "customer_id"), customer)) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': %s '%.24s' belongs to another customer", field,
                 kind, id);
        rc = CRM_ERR_INVALID_ARGUMENT;
    } else if (rc == CRM_ERR_NOT_FOUND) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': no %s '%.24s'", field, kind, id);
        rc = CRM_ERR_NOT_FOUND;
    }
    crm_proto_free(&m);
    return rc;
}

static crm_err_t
s_ticket_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
                 char *const *fields, size_t nfields, char *errbuf)
{
    (void)fields;
    (void)nfields;
    Crm__Ticket *t = (Crm__Ticket *)rec;
    const Crm__Ticket *was = (const Crm__Ticket *)old;
    char from[32], to[32];
    if (!was) {
        if (t->status != CRM__TICKET_STATUS__TICKET_STATUS_OPEN) {
            snprintf(errbuf, CRM_ERRBUF, "a ticket opens as 'open'; its status then moves by "
                                         "the workflow");
            return CRM_ERR_INVALID_ARGUMENT;
        }
        t->opened_at = dc->now;
        s_ticket_dues(dc->rules, t);
    } else if (t->status != was->status) {
        size_t i = 0, n = sizeof s_flow / sizeof s_flow[0];
        while (i < n && !(s_flow[i].from == (int)was->status && s_flow[i].to == (int)t->status))
            i++;
        crm_record_enum_name(&crm__ticket_status__descriptor, was->status, from, sizeof from);
        crm_record_enum_name(&crm__ticket_status__descriptor, t->status, to, sizeof to);
        if (i == n) {
            char allowed[128] = "";
            size_t used = 0;
            for (size_t j = 0; j < n; j++)
                if (s_flow[j].from == (int)was->status) {
                    char name[32];
                    crm_record_enum_name(&crm__ticket_status__descriptor, s_flow[j].to, name,
                                         sizeof name);
                    used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s",
                                             used ? ", " : "", name);
                }
            snprintf(errbuf, CRM_ERRBUF,
                     "ticket '%s' is %s: it may move to %s, not to %s", t->id, from,
                     used ? allowed : "nothing", to);
            return CRM_ERR_FAILED_PRECONDITION;
        }
        if (s_flow[i].manager && dc->actor->role != CRM__ROLE__MANAGER &&
            dc->actor->role != CRM__ROLE__ADMIN) {
            snprintf(errbuf, CRM_ERRBUF,
                     "permission denied: only managers move a ticket from %s to %s", from, to);
            return CRM_ERR_PERMISSION_DENIED;
        }
        if (t->status == CRM__TICKET_STATUS__TICKET_STATUS_RESOLVED) {
            if (!*t->resolution) {
                snprintf(errbuf, CRM_ERRBUF, "resolving a ticket needs a resolution: give "
                                             "--resolution TEXT");
                return CRM_ERR_INVALID_ARGUMENT;
            }
            t->resolved_at = dc->now;
        } else if (t->status == CRM__TICKET_STATUS__TICKET_STATUS_CLOSED) {
            t->closed_at = dc->now;
        } else if (t->status == CRM__TICKET_STATUS__TICKET_STATUS_OPEN) { /* reopened */
            t->resolved_at = 0;
            t->closed_at = 0;
        }
    }
    if (was && t->priority != was->priority)
        s_ticket_dues(dc->rules, t);
    if ((t->kind == CRM__TICKET_KIND__RETURN || t->kind == CRM__TICKET_KIND__EXCHANGE) &&
        !*t->order_id) {
        snprintf(errbuf, CRM_ERRBUF, "a return or exchange names the order: give --order-id ID");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    /* the order it names: the table's links (derive_prepare) */
    /* the assignee is a support user: the policy's REFER rows (authz_refer) */
    derive_ticket_breaches(t, dc->now);
    return CRM_OK;
}

static crm_err_t
s_feedback_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
                   char *const *fields, size_t nfields, char *errbuf)
{
    (void)dc;
    (void)old;
    (void)fields;
    (void)nfields;
    Crm__Feedback *f = (Crm__Feedback *)rec;
    int lo = f->score_kind == CRM__SCORE_KIND__NPS ? 0 : 1;
    int hi = f->score_kind == CRM__SCORE_KIND__NPS ? 10 : 5;
    if (f->score < lo || f->score > hi) {
        snprintf(errbuf, CRM_ERRBUF, "field 'score': %s scores are %d to %d, not %d",
                 f->score_kind == CRM__SCORE_KIND__NPS ? "NPS" : "CSAT", lo, hi, f->score);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK; /* the ticket it names: the table's links (derive_prepare) */
}

static crm_err_t
s_task_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
               char *const *fields, size_t nfields, char *errbuf)
{
    (void)fields;
    (void)nfields;
    (void)errbuf;
    Crm__Task *t = (Crm__Task *)rec;
    const Crm__Task *was = (const Crm__Task *)old;
    if (t->done && (!was || !was->done))
        t->done_at = dc->now;
    else if (!t->done)
        t->done_at = 0;
    return CRM_OK;
}

/* A reply by support on a ticket is the ticket's first response: the ticket
   changes in the same mutation as the activity. */
static crm_err_t
s_ticket_after_activity(const derive_ctx_t *dc, mutation_t *m, const ProtobufCMessage *old,
                        const ProtobufCMessage *rec, char *errbuf)
{
    const Crm__Activity *a = (const Crm__Activity *)rec;
    if (old || !a || !*a->ticket_id || dc->actor->department != CRM__DEPARTMENT__SUPPORT)
        return CRM_OK;
    const crm_entity_t *te = crm_entity_by_name("ticket");
    uint64_t num = crm_entity_parse_id(te, a->ticket_id);
    ProtobufCMessage *cur = NULL, *next = NULL;
    crm_err_t rc = records_group_get(dc->g, te, num, &cur);
    if (rc == CRM_OK && ((Crm__Ticket *)cur)->first_response_at == 0 &&
        (rc = records_group_get(dc->g, te, num, &next)) == CRM_OK) {
        Crm__Ticket *t = (Crm__Ticket *)next;
        t->first_response_at = dc->now;
        derive_ticket_breaches(t, dc->now);
        char *changed[64];
        size_t n = crm_record_diff(te, cur, next, changed, 64);
        if (!mutation_has(m, te, num))
            t->version++;
        t->updated_at = dc->now;
        crm_record_set_str(next, "updated_by", dc->actor->name);
        char reason[64];
        snprintf(reason, sizeof reason, "first response: activity %s", a->id);
        mutation_put(m, te, num, cur, next, changed, n, reason);
    } else if (rc != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "cannot read ticket '%s'", a->ticket_id);
    }
    crm_proto_free(&cur);
    crm_proto_free(&next);
    return rc;
}

/* A segment's criteria must be filters a customer list can run. */
static crm_err_t
s_segment_prepare(const derive_ctx_t *dc, const ProtobufCMessage *old, ProtobufCMessage *rec,
                  char *const *fields, size_t nfields, char *errbuf)
{
    (void)dc;
    (void)old;
    (void)fields;
    (void)nfields;
    const Crm__Segment *s = (const Crm__Segment *)rec;
    const crm_entity_t *ce = crm_entity_by_name("customer");
    if (s->n_criteria > 16) {
        snprintf(errbuf, CRM_ERRBUF, "a segment has at most 16 criteria");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < s->n_criteria; i++) {
        char why[CRM_ERRBUF];
        if (entity_filter_check(ce, s->criteria[i]->field, s->criteria[i]->value, why) !=
            CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "criterion %zu: %.200s", i + 1, why);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    return CRM_OK;
}

typedef crm_err_t (*s_prepare_fn)(const derive_ctx_t *, const ProtobufCMessage *,
                                  ProtobufCMessage *, char *const *, size_t, char *);

/* The kind hooks: checks across fields and self-derived fields. */
static const struct {
    const char *kind;
    s_prepare_fn prepare;
    bool feeds_value; /* a change of this kind changes its customer's derived value */
} s_hooks[] = {
    {"customer", s_customer_prepare, false},
    {"activity", NULL, true},
    {"deal", s_deal_prepare, false},
    {"order", s_order_prepare, true},
    {"ticket", s_ticket_prepare, false},
    {"feedback", s_feedback_prepare, false},
    {"task", s_task_prepare, false},
    {"segment", s_segment_prepare, false},
};

crm_err_t
derive_prepare(const derive_ctx_t *dc, const crm_entity_t *e, const ProtobufCMessage *old,
               ProtobufCMessage *rec, char *const *fields, size_t nfields, char *errbuf)
{
    for (size_t i = 0; i < sizeof s_hooks / sizeof s_hooks[0]; i++)
        if (!strcmp(s_hooks[i].kind, e->name) && s_hooks[i].prepare) {
            crm_err_t rc = s_hooks[i].prepare(dc, old, rec, fields, nfields, errbuf);
            if (rc != CRM_OK)
                return rc;
            break;
        }
    /* every link the record sets or changes names a record of its own customer (one
       unchanged since it was written stays as it is, even if it dangles: check reports it) */
    const char *pfield = crm_entity_field_with(e, CRM_F_PARENT);
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++) {
        if (strcmp(l->kind, e->name) || !pfield)
            continue;
        const char *to = crm_record_get_str(rec, l->field);
        if (!*to || (old && !strcmp(crm_record_get_str(old, l->field), to)))
            continue;
        crm_err_t rc = s_same_customer(dc, l->field, l->target, to,
                                       crm_record_get_str(rec, pfield), errbuf);
        if (rc != CRM_OK)
            return rc;
    }
    return CRM_OK;
}

crm_err_t
derive_after(const derive_ctx_t *dc, mutation_t *m, const crm_entity_t *e,
             const ProtobufCMessage *old, const ProtobufCMessage *rec, char *errbuf)
{
    bool feeds = false;
    if (dc->fault_no_derive)
        return CRM_OK;
    for (size_t i = 0; i < sizeof s_hooks / sizeof s_hooks[0]; i++)
        if (!strcmp(s_hooks[i].kind, e->name))
            feeds = s_hooks[i].feeds_value;
    const char *pfield = crm_entity_field_with(e, CRM_F_PARENT);
    if (!strcmp(e->name, "activity")) {
        crm_err_t rc = s_ticket_after_activity(dc, m, old, rec, errbuf);
        if (rc != CRM_OK)
            return rc;
    }
    if (!feeds || !pfield)
        return CRM_OK;
    const crm_entity_t *ce = crm_entity_by_name(e->parent);
    const char *ids[2] = {rec ? crm_record_get_str(rec, pfield) : "",
                          old ? crm_record_get_str(old, pfield) : ""};
    for (int k = 0; k < 2; k++) {
        if (!*ids[k] || (k == 1 && !strcmp(ids[0], ids[1])))
            continue;
        uint64_t num = crm_entity_parse_id(ce, ids[k]);
        ProtobufCMessage *cur = NULL, *next = NULL;
        /* the customer as this request last read it, or from the group */
        bool read = num && dc->read_rec && dc->read_kind == ce && dc->read_num == num &&
                    !mutation_has(m, ce, num);
        crm_err_t rc = read  ? CRM_OK
                       : num ? records_group_get(dc->g, ce, num, &cur)
                             : CRM_ERR_NOT_FOUND;
        if (rc == CRM_ERR_NOT_FOUND) /* deleted in this mutation: nothing to derive */
            continue;
        if (rc != CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "cannot read customer '%s'", ids[k]);
            return rc;
        }
        const ProtobufCMessage *was = read ? dc->read_rec : cur;
#ifndef NDEBUG
        if (read) { /* the callers' contract (derive.h), checked in the test builds */
            ProtobufCMessage *fresh = NULL;
            CRM_ASSERT(records_group_get(dc->g, ce, num, &fresh) == CRM_OK);
            size_t fl, wl;
            uint8_t *fp = crm_proto_pack(fresh, &fl), *wp = crm_proto_pack(was, &wl);
            CRM_ASSERT(fl == wl && !memcmp(fp, wp, fl)); /* the hint is what the group holds */
            free(fp);
            free(wp);
            crm_proto_free(&fresh);
        }
#endif
        next = crm_proto_dup(was);
        if (!s_value_delta(dc, (Crm__Customer *)next, e, old, rec, &rc, errbuf))
            rc = derive_customer(dc, (Crm__Customer *)next, errbuf);
        char *changed[64];
        size_t n = rc == CRM_OK ? crm_record_diff(ce, was, next, changed, 64) : 0;
        if (n) {
            char reason[64];
            snprintf(reason, sizeof reason, "derived from %s %s", e->name,
                     crm_record_get_str(rec ? rec : old, "id"));
            /* one new version per mutation, however often it touches the record */
            if (!mutation_has(m, ce, num))
                crm_record_set_u64(next, "version", crm_record_get_u64(was, "version") + 1);
            crm_record_set_i64(next, "updated_at", dc->now);
            crm_record_set_str(next, "updated_by", dc->actor->name);
            mutation_put(m, ce, num, was, next, changed, n, reason);
        }
        crm_proto_free(&cur);
        crm_proto_free(&next);
        if (rc != CRM_OK)
            return rc;
    }
    return CRM_OK;
}
