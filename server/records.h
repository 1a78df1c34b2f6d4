/*  =========================================================================
    records - generic persistence for every record kind

    Owns:      record and index key layouts, id allocation, index maintenance
               and the query engine (AND of index terms, text search,
               children of a parent) for all kinds in the entity table.
    Must not:  know any particular kind, or sockets and sessions.

    Key layout (why): every kind has its own key space named by its id prefix
    byte, and every key ends in the 8-byte big-endian record number, so a
    prefix scan returns ids in ascending order - the stable sort that paging
    needs - and several index terms can be intersected by leapfrogging their
    iterators (seek each to the largest id seen until all agree).
      records:  <prefix> <be64 num>                          -> packed record
      indexes:  <prefix> <tag> <value> 0x00 <be64 num>       -> ""
      children: <prefix> <tag> <parent id> 0x00 <be64 ~time> <be64 num>
                (newest first: the parent's timeline)
      meta:     "next_id/" <kind>                            -> be64
    Values never contain 0x00 (text is validated), so the 0x00 ends a value
    exactly and "张" cannot match the postings of "张伟".
    =========================================================================
*/
#ifndef RECORDS_H
#define RECORDS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "store.h"
#include "seal.h"

#define RECORDS_MAX_TERMS 16

/* One lookup term: the key prefix of an index value (owned bytes). */
typedef struct {
    char *key;
    size_t len;
} records_term_t;

/* Read record NUM of kind E from committed data; caller frees with crm_proto_free(). */
crm_err_t records_get(store_t *store, const crm_entity_t *e, uint64_t num, ProtobufCMessage **out);
/* Records NUMS[0..N) of kind E from committed data: OUT[i] and RCS[i] as records_get()
   gives them (NOT_FOUND: OUT[i] NULL). From 4 ids on (RECORDS_MANY_MIN) they are read in one
   batch (one snapshot); fewer are read one by one, each as of its own read unless the
   store reads in a view. Returns CRM_OK, or the first failure other than NOT_FOUND. */
crm_err_t records_get_many(store_t *store, const crm_entity_t *e, const uint64_t *nums, size_t n,
                           ProtobufCMessage **out, crm_err_t *rcs);
/* Same, through the writer's group (sees staged writes). */
crm_err_t records_group_get(store_group_t *g, const crm_entity_t *e, uint64_t num,
                            ProtobufCMessage **out);
/* The next record number of kind E, staged in the group. */
crm_err_t records_next_num(store_group_t *g, const crm_entity_t *e, uint64_t *num);
/* The highest record number of kind E handed out so far (0: none), nothing staged. */
crm_err_t records_last_num(store_group_t *g, const crm_entity_t *e, uint64_t *num);
/* Stage REC as record NUM, replacing OLD (NULL on create): record and index entries. */
void records_stage_put(store_group_t *g, const crm_entity_t *e, uint64_t num,
                       const ProtobufCMessage *old, const ProtobufCMessage *rec);
/* Stage the removal of record NUM (currently OLD) and its index entries. */
void records_stage_delete(store_group_t *g, const crm_entity_t *e, uint64_t num,
                          const ProtobufCMessage *old);

/* Each key records_stage_put would write for REC as a new record NUM (its
   index entries, then the record's own key) to FN, in no particular order;
   returns how many. */
size_t records_keys_each(const crm_entity_t *e, uint64_t num, const ProtobufCMessage *rec,
                         void (*fn)(store_cf_t cf, const char *key, size_t len, void *arg),
                         void *arg);

/* Build the term for FIELD = VALUE (folded like the index). INVALID_ARGUMENT
   if FIELD has no index; errbuf says which fields do. */
crm_err_t records_term(const crm_entity_t *e, const char *field, const char *value,
                       records_term_t *out, char *errbuf);
/* Terms for a text search: the grams of TEXT in the kind's text index. *n is
   0 (and CRM_OK) for a text of single Latin letters or digits, which have no
   posting list: the caller checks records one by one. INVALID_ARGUMENT for a
   text of white space only, or a kind without a text index. */
crm_err_t records_text_terms(const crm_entity_t *e, const char *text, records_term_t *terms,
                             size_t *n, char *errbuf);
/* True if TEXT, folded, is one gram of the text index: a character that has
   a posting list, or two neighbouring ones in a word. Its posting list alone
   answers a search for it; any other text is checked against each candidate. */
bool records_text_is_gram(const char *text);
void records_term_release(records_term_t *t);
/* The terms REC would be found under in E's index TAG (as if it were stored:
   a deleted record's phones, for its live duplicates), at most MAX. Returns
   how many; release each. */
size_t records_postings(const crm_entity_t *e, const ProtobufCMessage *rec, char tag,
                        records_term_t *terms, size_t max);
/* The records whose CRM_IDX_PAIR index TAG of kind E has FIRST (folded as the
   index folds it) as its first part, whatever the second - the customers at
   a company - committed data, at most MAX: FN gets each number, and returns
   false to stop. */
crm_err_t records_pair_each(store_t *store, const crm_entity_t *e, char tag, const char *first,
                            size_t max, bool (*fn)(uint64_t num, void *arg), void *arg);

/* Committed records of kind E whose parent is PARENT_ID, counted up to MAX + 1
   (keys only: an early, cheap refusal of a change that would carry too many). */
size_t records_count_children(store_t *store, const crm_entity_t *e, const char *parent_id,
                              size_t max);
/* Ids matching every term (all records if N is 0), ascending, after AFTER.
   Fills up to LIMIT numbers into ids; *more is true if more may follow.
   With MATCH, a candidate must also satisfy match(record, arg). */
crm_err_t records_query(store_t *store, const crm_entity_t *e, const records_term_t *terms,
                        size_t n, uint64_t after, size_t limit, uint64_t *ids, size_t *count,
                        bool *more, bool (*match)(const ProtobufCMessage *, const void *),
                        const void *arg);
/* Ids of kind E whose FIELD - a string field with an exact index, such as a
   YYYY-MM-DD date - lies within FROM..TO in text order (either end may be
   ""), sorted ascending; at most CAP of them (RESOURCE_EXHAUSTED beyond).
   NOT_FOUND if FIELD has no such index. On success caller free()s *ids. */
crm_err_t records_range(store_t *store, const crm_entity_t *e, const char *field, const char *from,
                        const char *to, size_t cap, uint64_t **ids, size_t *n, char *errbuf);
/* The same, through the writer's group G: what earlier mutations of this
   group commit staged counts too (e.g. duplicates within one import batch). */
crm_err_t records_query_group(store_t *store, store_group_t *g, const crm_entity_t *e,
                              const records_term_t *terms, size_t n, uint64_t after,
                              size_t limit, uint64_t *ids, size_t *count, bool *more,
                              bool (*match)(const ProtobufCMessage *, const void *),
                              const void *arg);
/* As records_query_group, reading at most BUDGET candidates to check with
   MATCH: when the budget runs out first, *more is true and *last gets the
   number up to which every candidate was decided - the cursor to go on from
   (0 when the page ended otherwise: go on after the last id returned). */
crm_err_t records_query_budget(store_t *store, store_group_t *g, const crm_entity_t *e,
                               const records_term_t *terms, size_t n, uint64_t after,
                               size_t limit, uint64_t budget, uint64_t *ids, size_t *count,
                               bool *more, uint64_t *last,
                               bool (*match)(const ProtobufCMessage *, const void *),
                               const void *arg);
/* Children of PARENT_ID through E's CRM_IDX_PARENT index, newest first, after
   the child AFTER (0 = from the start). With G, staged writes count too. */
crm_err_t records_children(store_t *store, store_group_t *g, const crm_entity_t *e,
                           const char *parent_id, uint64_t after, size_t limit, uint64_t *ids,
                           size_t *count, bool *more);
/* True if the folded name or company (the text-indexed fields) of REC contains
   the folded TEXT. */
bool records_text_match(const ProtobufCMessage *rec, const void *text);

/* Every record of kind E in number order, one iterator (for scans off the
   server thread, in a store view): FN gets each (it may not keep REC) and
   returns false to stop. *READ gets how many were read. */
crm_err_t records_each(store_t *store, const crm_entity_t *e,
                       bool (*fn)(uint64_t num, ProtobufCMessage *rec, void *arg), void *arg,
                       uint64_t *read);

/* Consistency of kind E: every record's index entries exist, and every index
   entry belongs to a record that would write it. Returns the number of
   problems found; *records and *entries get the counts checked. Each problem
   is described to REPORT (may be NULL). */
size_t records_check(store_t *store, const crm_entity_t *e, uint64_t *records, uint64_t *entries,
                     void (*report)(const char *what, void *arg), void *arg);
/* Make kind E's index entries what its records write: the missing ones are
   written, the stray ones removed (an index a format added or dropped), in
   batches. *FIXED gets how many entries were written or removed. For a
   stopped store (crm-admin upgrade). */
crm_err_t records_reindex(store_t *store, const crm_entity_t *e, uint64_t *fixed, char *errbuf);
/* Remove kind E's postings of the grams its text index no longer lists (format 8:
   single ASCII characters), a range per gram, in batches: what records_reindex
   would find stray, without reading a record per entry. *REMOVED gets how many.
   For a stopped store whose blind terms are format 7's or in clear. */
crm_err_t records_drop_unlisted(store_t *store, const crm_entity_t *e, uint64_t *removed,
                                char *errbuf);
/* The blind terms VALUE would have in every index of personal data (each
   kind's, each part of a pair), at most CAP of them into OUT; how many. For
   looking for a value in the raw keys (crm-admin grep). Sealed stores only. */
size_t records_blind_terms(const char *value, size_t len, uint8_t (*out)[SEAL_BLIND_BYTES],
                           size_t cap);

#endif
