/*  =========================================================================
    audit - the audit trail and field history, in the "audit" column family

    Owns:      the audit key layout and the queries over it.
    Must not:  decide who may read what (authz.c does) or touch sockets.

    Keys (why): the trail is read two ways - by time ("what happened since
    Monday", "what did bob do") and by record ("every value this field has
    had") - so each entry is written under both, in the same batch as the
    change it records:
      t <be64 ms> <be64 unique>                      -> AuditEntry
      r <kind prefix> <be64 record num> <be64 ms> <be64 unique> -> AuditEntry
      u <user name> 0x00 <be64 ms> <be64 unique>    -> its t key (17 bytes)
      d <department> <be64 ms> <be64 unique>         -> its t key
    The by-user and by-department copies make "what did bob do" and a
    manager's view of the trail proportional to what they return, not to the
    whole trail (issue 14: one request must not hold the server thread).
    Data dirs written before them are indexed once at start
    (audit_index_upgrade, marked by meta "audit_index").
    Nothing is ever trimmed: history is kept as long as the records.
    =========================================================================
*/
#ifndef AUDIT_H
#define AUDIT_H
#include <stdbool.h>
#include <stdint.h>

#include "crm_entity.h"
#include "entities.pb-c.h"
#include "store.h"

/* Stage the entry of USER (DEPARTMENT, ROLE) doing ACTION to record NUM of kind E now,
   for REASON (may be NULL): an act that is no mutation (a purge, an erasure that changed
   no record). */
void audit_stage_act(store_group_t *g, store_t *store, const char *user, int department,
                     int role, const crm_entity_t *e, uint64_t num, const char *action,
                     const char *reason);
/* Stage ENTRY in the group; NUM is the record's number (0 if none, e.g. users). */
void audit_stage(store_group_t *g, store_t *store, const Crm__AuditEntry *entry,
                 const crm_entity_t *e, uint64_t num);
/* Fill ENTRY->changes with old -> new text of FIELDS (CUR NULL: a creation,
   every set field of NEXT; NEXT NULL: a deletion). The values are malloc'd:
   release with audit_changes_free(). */
void audit_changes(Crm__AuditEntry *entry, const crm_entity_t *e, const ProtobufCMessage *cur,
                   const ProtobufCMessage *next, char *const *fields, size_t nfields);
void audit_changes_free(Crm__AuditEntry *entry);

/* Calls FN for entries newest first - those of record NUM of kind E when E is
   given, else the whole trail. FN answers AUDIT_TAKE (it keeps the entry and
   frees it later with crm_proto_free), AUDIT_SKIP or AUDIT_STOP. */
typedef enum { AUDIT_SKIP, AUDIT_TAKE, AUDIT_STOP } audit_verdict_t;
crm_err_t audit_scan(store_t *store, const crm_entity_t *e, uint64_t num,
                     audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg);

/* One query of the trail: record NUM of kind E if E is given, else the
   entries of USER if given, else of DEPARTMENT if >= 0, else all of it;
   at most BUDGET entries examined (0: no bound) - *CUT says the scan
   stopped on the budget, not at the end. */
typedef struct {
    const crm_entity_t *e;
    uint64_t num;
    const char *user;
    int department;
    size_t budget;
} audit_query_t;
crm_err_t audit_query(store_t *store, const audit_query_t *q,
                      audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg,
                      bool *cut);

/* The entries of record NUM of kind E, newest first, read through group G
   (what it has staged included), at most BUDGET examined (0: no bound). */
crm_err_t audit_record_scan(store_group_t *g, const crm_entity_t *e, uint64_t num, size_t budget,
                            audit_verdict_t (*fn)(Crm__AuditEntry *entry, void *arg), void *arg,
                            bool *cut);

/* Index entries written before the by-user and by-department keys existed
   (once per data dir; a no-op afterwards). *INDEXED: how many it indexed. */
crm_err_t audit_index_upgrade(store_t *store, uint64_t *indexed, char *errbuf);

#endif
