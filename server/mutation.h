/*  =========================================================================
    mutation - one change of many records, as one event

    Owns:      the building of a change-log entry with one part per record a
               mutation created, changed or deleted, and of one audit entry
               per record, staged in the writer's group with the records.
    Must not:  decide who may do what (authz.c), or know a kind's rules.

    Why one mutation carries many records: an order lands and its customer's
    spend and tier change with it; a lead conversion changes a customer and
    creates a deal and an activity. Each is one event for everyone who
    watches - one sequence number, every record in it - and is written in
    one atomic batch with the records, their index entries and audit
    entries. A record staged twice in one mutation (the customer a conversion
    moves to prospect and whose last contact the conversion's activity then
    sets) stays one part: its first "before", its last "after", the union of
    the changed fields.

    Life cycle: mutation_begin() sets a save point in the group;
    mutation_put()/mutation_delete() stage records and index entries at once
    (later reads through the group see them); mutation_end() stages the
    change-log entry, which takes the next sequence number, and the audit
    entries; mutation_abort() rolls everything back to the save point.
    =========================================================================
*/
#ifndef MUTATION_H
#define MUTATION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "entities.pb-c.h"
#include "store.h"

typedef struct mutation mutation_t;

/* Start a mutation by ACTOR (borrowed for the mutation's life) in group G. */
mutation_t *mutation_begin(store_group_t *g, store_t *store, const Crm__User *actor);
/* Stage REC as record NUM of kind E, replacing OLD (NULL on create): the
   record, its index entries and a part of the change. FIELDS are the fields
   that changed (NULL on create: every set field). REASON (may be NULL) goes
   into the audit entry, e.g. "derived from order o5". */
void mutation_put(mutation_t *m, const crm_entity_t *e, uint64_t num, const ProtobufCMessage *old,
                  const ProtobufCMessage *rec, char *const *fields, size_t nfields,
                  const char *reason);
/* Stage the deletion of record NUM of kind E (currently OLD). */
void mutation_delete(mutation_t *m, const crm_entity_t *e, uint64_t num,
                     const ProtobufCMessage *old, const char *reason);
/* True if record NUM of kind E is already part of M. */
bool mutation_has(const mutation_t *m, const crm_entity_t *e, uint64_t num);
/* Make M an erasure (`crm customer erase`): its parts carry no "before" values,
   its audit entries say "erase" and show the changed fields' old values as
   erased - the event keeps only the fact of the erasure. */
void mutation_erasure(mutation_t *m);
/* Number of records staged so far. */
size_t mutation_parts(const mutation_t *m);
/* Finish: stage the change-log entry (one sequence number for every part)
   and one audit entry per part; frees *m_p. With no parts the mutation is
   rolled back and 0 returned. Returns the sequence number. */
uint64_t mutation_end(mutation_t **m_p);
/* Undo everything staged since mutation_begin(); frees *m_p; NULL-safe. */
void mutation_abort(mutation_t **m_p);

#endif
