/*  =========================================================================
    bin - the recycle bin: deleted records that can be restored

    A record of a kind without a parent (a customer) is not dropped when it
    is deleted: it goes to the bin with the records deleted with it (its
    activities, feedback and tasks), in the same batch as the deletion, and
    stays there until a user restores it, an admin purges it, or it is
    older than the retention (crmd --bin-days, default 30). Field history
    and audit entries are never deleted, so a restored record has all of it.

    Owns:      the "bin/", "binp/" and "binx/" keys of the meta column family:
                 bin/<prefix><be64 num>                   -> packed Binned (small: a
                                                             listing reads only these)
                 binp/<prefix><be64 num><be32 i>          -> packed BinnedPart, i < n_parts
                 binx/<be64 deleted_at><prefix><be64 num> -> ""  (oldest first, for expiry)
    Must not:  decide who may restore or purge (authz.c, the op table), or
               write live records (the handlers do that through a mutation).
    =========================================================================
*/
#ifndef BIN_H
#define BIN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "entities.pb-c.h"
#include "store.h"

#define BIN_DAYS_DEFAULT 30

/* Stage B (record NUM of kind E; b->n_parts is N) and its PARTS into the bin. */
void bin_stage_put(store_group_t *g, const crm_entity_t *e, uint64_t num, const Crm__Binned *b,
                   Crm__BinnedPart *const *parts, size_t n);
/* Read record NUM of kind E from the bin through the group (staged writes
   count). NOT_FOUND if it is not there. Caller frees *out with crm_proto_free. */
crm_err_t bin_get(store_group_t *g, const crm_entity_t *e, uint64_t num, Crm__Binned **out);
/* The same from committed data (the calling thread's view, if any): for readers
   off the server thread. */
crm_err_t bin_get_committed(store_t *store, const crm_entity_t *e, uint64_t num,
                            Crm__Binned **out);
/* Part I of binned record NUM of kind E, through the group. */
crm_err_t bin_part(store_group_t *g, const crm_entity_t *e, uint64_t num, uint32_t i,
                   Crm__BinnedPart **out);
/* Stage the removal of binned record NUM of kind E (as B says: when it was
   deleted, how many parts) from the bin. */
void bin_stage_remove(store_group_t *g, const crm_entity_t *e, uint64_t num, const Crm__Binned *b);
/* The binned records of kind E after number AFTER, ascending, committed
   data: FN gets each (it may keep B by returning true; else it is freed),
   at most LIMIT. *MORE: more may follow. */
crm_err_t bin_each(store_t *store, const crm_entity_t *e, uint64_t after, size_t limit,
                   bool (*fn)(uint64_t num, Crm__Binned *b, void *arg), void *arg, bool *more);
/* Stage the purge of records deleted before CUTOFF (ms since the epoch),
   oldest first, while at most MAX keys are removed, each with an audit
   entry by ACTOR. Returns how many records. */
size_t bin_expire(store_t *store, store_group_t *g, int64_t cutoff, size_t max,
                  const char *actor);
/* Stage the audit entry of USER (DEPARTMENT, ROLE) purging record NUM of kind E. */
void bin_audit_purge(store_group_t *g, store_t *store, const crm_entity_t *e, uint64_t num,
                     const char *user, int department, int role, const char *reason);

#endif
