/*  =========================================================================
    derive - what the server computes: per-kind checks across fields, the
    fields a record derives from itself, and a customer's value derived from
    its orders and activities

    Owns:      the value rules (value_rules.def), the kind hooks table, and
               the recomputation of a customer's derived fields.
    Must not:  decide who may do what (authz.c) or build replies.

    Why derived fields are written in the same mutation: a customer's spend,
    order count, tier and lifecycle stage must never disagree with its
    orders, not even for a moment, and a watcher must see the order and the
    customer's new value as one event. So after a record that feeds a
    customer's value (an order, an activity) is staged, derive_after()
    re-reads the customer's orders through the writer's group (staged ones
    included), recomputes, and stages the customer into the same mutation if
    anything changed. Rules that depend on time passing (at-risk, churned)
    are applied by the sweep, which writes through the same path.
    =========================================================================
*/
#ifndef DERIVE_H
#define DERIVE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "entities.pb-c.h"
#include "mutation.h"
#include "store.h"

typedef enum {
#define RULE(name, def, what) VR_##name,
#include "value_rules.def"
#undef RULE
    VR__COUNT
} value_rule_t;

typedef struct value_rules {
    int64_t v[VR__COUNT];
    char currency[4]; /* the store's currency: deals and orders are kept in it */
} value_rules_t;

/* The defaults of value_rules.def. */
void value_rules_defaults(value_rules_t *r);
/* Read "name = value" lines from PATH over R. A missing file is fine unless
   MUST_EXIST. INVALID_ARGUMENT names the line that is wrong. */
crm_err_t value_rules_load(value_rules_t *r, const char *path, bool must_exist, char *errbuf);
/* The rules as text, one "name = value  # what" line each (caller free()s). */
char *value_rules_describe(const value_rules_t *r);

/* What the hooks work with. */
typedef struct {
    store_t *store;
    store_group_t *g;            /* reads go through it when not NULL */
    const value_rules_t *rules;
    const Crm__User *actor;
    int64_t now;                 /* ms: "now" for time rules (the sweep sets it) */
    bool fault_no_derive;        /* test-only fault: derive_after() does nothing */
    /* a record the request read through g just before derive_after() and has not staged
       since (the parent its create checked): derive_after() starts from it instead of
       reading it again, unless the mutation already holds a change to it. Builds without
       NDEBUG (Debug and the sanitizer builds the tests run) read it again and assert that
       it is the same */
    const crm_entity_t *read_kind;
    uint64_t read_num;
    const ProtobufCMessage *read_rec;
} derive_ctx_t;

/* Checks across fields and fields the record derives from itself, before a
   create (OLD NULL) or an update; FIELDS are the fields the client changed.
   INVALID_ARGUMENT / FAILED_PRECONDITION with errbuf. */
crm_err_t derive_prepare(const derive_ctx_t *dc, const crm_entity_t *e, const ProtobufCMessage *old,
                         ProtobufCMessage *rec, char *const *fields, size_t nfields,
                         char *errbuf);
/* After a record of kind E was staged in M (OLD -> REC; REC NULL when it was
   deleted): stage the records derived from it (its customer's value). */
crm_err_t derive_after(const derive_ctx_t *dc, mutation_t *m, const crm_entity_t *e,
                       const ProtobufCMessage *old, const ProtobufCMessage *rec, char *errbuf);
/* Recompute every derived field of customer C from its orders and
   activities as of dc->now. */
crm_err_t derive_customer(const derive_ctx_t *dc, Crm__Customer *c, char *errbuf);
/* Mark the service-level targets T missed as of NOW; true if it changed. */
bool derive_ticket_breaches(Crm__Ticket *t, int64_t now);
/* Fields of a customer compared by `crm-admin check` (not time-dependent). */
bool derive_checked_field(const char *field);

#endif
