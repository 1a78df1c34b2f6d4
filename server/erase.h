/*  =========================================================================
    erase - `crm customer erase`: a customer's personal data out of its
    records, indexes, change log and audit trail

    Owns:      the erasure request (h_erase, admins: OPF_ADMIN in ops.def) and
               the scrub of the customer's history that follows it.
    Must not:  decide which fields are personal: that is the entity table's
               CRM_F_PERSONAL column (crm_record_erase()).

    An erasure is two steps. The request is one mutation: the customer and
    every record of it (activities, deals, orders, tickets, feedback, tasks)
    get their personal fields blanked - a required text becomes "(erased)" -
    so the index entries of the old values go in the same batch, and the
    change it makes is an event that carries only the fact of the erasure
    (no "before" values; audit action "erase"). A customer in the recycle bin
    leaves the bin instead; one purged earlier has only its history left.
    With it, a job is written to the meta CF ("erase/" <be64 number>): the
    change-log entries before the erasure still to look at.

    The scrub then runs on the server thread, a bounded slice per loop turn
    (at most 2,000 entries or about 2 ms), as the value sweep does - but an
    entry of a change of a hundred records or more, rewritten whole, is done
    by a slice on the writer thread (erase_tick's LARGE_BYTES) - : every
    change-log part that is the customer's (the customer, a record naming it
    as its customer, or one of its records at the erasure) is rewritten with
    its personal fields blanked in the record and in its "before" values,
    and so is the audit entry of that part (found by record, change time and
    sequence number). The job moves on in the same batch, so the scrub goes
    on after a restart where it stopped; a replica receives the rewrites as
    it receives every write (the WAL), and both feeds drop what they had
    decoded (STORE_META_LOG_REWRITES).

    Not reached by the scrub: backups made before (they go with the
    backups' retention), values already in RocksDB's table files until
    compaction rewrites them, audit entries of searches (their search text),
    and customers merged into this one (each has its own id: erase it too).
    =========================================================================
*/
#ifndef ERASE_H
#define ERASE_H
#include <stdbool.h>

#include "dispatch.h"
#include "store.h"

typedef struct erase erase_t;

/* SLICE: entries looked at per loop turn at most (0: the default); GAP_US: time
   between two slices at least (0: none; a test's slow scrub). */
erase_t *erase_new(unsigned slice, int64_t gap_us);
void erase_destroy(erase_t **self_p);
/* A job was written (or may be waiting since the last start): look again. */
void erase_wake(erase_t *self);
/* True while a scrub has work left: the server loop turns sooner. */
bool erase_busy(const erase_t *self);
/* One bounded slice of the oldest job's scrub, staged in G (committed with
   the turn). Jobs start once the erasure they follow is committed. With
   LARGE_BYTES, the slice stops before a change-log entry stored in more bytes
   than that (a change of thousands of records: one entry is rewritten whole)
   and returns true: the next slice, run where it may take long (the writer
   thread, LARGE_BYTES 0), begins with it. */
bool erase_tick(erase_t *self, store_t *store, store_group_t *g, size_t large_bytes);

#endif
