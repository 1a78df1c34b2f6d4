/*  =========================================================================
    conflict - is an update based on an older version a real conflict?

    Owns:      the field-by-field comparison of an update's fields with what
               changed in the record since the version the update was based
               on, read from the record's audit entries (its field history).
    Must not:  decide who may do what (authz.c), stage anything, or know a
               kind's rules: it works for every kind through the entity table.

    Why by field (issue 12, item 4): two people who read version 5 of a
    customer and change different fields - one the phones, the other the
    stage - both mean their change; refusing the second one with "changed
    meanwhile" makes them redo work for nothing. Only a field that someone
    else changed after the base version is a conflict: taking the second
    value would silently drop the first (a lost update). Every mutation's
    audit entry names the fields it changed and the version it made
    (AuditEntry.version), so the changes since the base are the record's
    entries newer than it, newest first - usually one or two, at most
    CONFLICT_BUDGET examined, so a request never holds the server thread.
    What cannot be told (entries written before the version was recorded,
    a record with too long a trail since the base) is a conflict, as every
    stale update was before: never a lost update.
    =========================================================================
*/
#ifndef CONFLICT_H
#define CONFLICT_H
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "crm_err.h"
#include "store.h"

#define CONFLICT_BUDGET 1000 /* audit entries one check may examine */

/* An update of FIELDS of record NUM (ID) of kind E, based on version BASE,
   while the record is at version CUR (read through group G). CRM_OK if no
   field of the update changed after BASE (the update may be applied to the
   current record: a merge); else CRM_ERR_CONFLICT with ERRBUF saying who
   changed which field, and when. */
crm_err_t conflict_check(store_group_t *g, const crm_entity_t *e, const char *id, uint64_t num,
                         uint64_t base, uint64_t cur, char *const *fields, size_t nfields,
                         char *errbuf);

#endif
