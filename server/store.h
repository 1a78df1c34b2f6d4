/*  =========================================================================
    store - RocksDB persistence: column families, reads, group commit

    Owns:      the rocksdb_t handle, column families, write options and the
               global change-log sequence number.
    Exposes:   opaque store_t / store_group_t; results only as crm_err_t.
    Must not:  include zmq.h or session/authz headers; log secrets; let
               RocksDB types or error strings escape this file.
    Invariant: every mutation goes through a store_group_t; store_group_end()
               gives it the next sequence number and puts its change-log entry
               into the same batch, and store_group_commit() writes the whole
               group as one atomic RocksDB write (group commit).
    =========================================================================
*/
#ifndef STORE_H
#define STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_kv.h"

/* Column families, one per concern. Order is the on-disk creation order. */
#define STORE_CF_LIST(X)                                                                           \
    X(RECORDS, "records")                                                                          \
    X(INDEXES, "indexes")                                                                          \
    X(CHANGELOG, "changelog")                                                                      \
    X(USERS, "users")                                                                              \
    X(AUDIT, "audit")                                                                              \
    X(META, "meta")

typedef enum {
#define X(name, str) STORE_CF_##name,
    STORE_CF_LIST(X)
#undef X
        STORE_CF__COUNT
} store_cf_t;

typedef struct store store_t;
typedef struct store_group store_group_t;

/* A value read from the store; release with store_val_release(). */
typedef struct {
    char *data;
    size_t len;
} store_val_t;

enum {
    STORE_CREATE = 1,     /* create the database; fail if it exists */
    STORE_SYNC = 2,       /* fsync every group commit (survives power loss) */
    STORE_ANY_FORMAT = 4, /* open a data dir of another format (crm-admin upgrade only) */
    STORE_REPLICA = 8,    /* a read replica: only store_wal_apply() writes (see replica.h) */
    STORE_RESTORING = 16, /* open a data dir a restore is filling (backup_restore only) */
};

/* A file in a data dir that a restore is filling, removed once the restored store has
   begun its own history: a data dir holding it is refused (a restore stopped half way,
   by a crash or kill -9, would otherwise serve the backed-up server's history). */
#define STORE_RESTORE_MARK "RESTORE-UNFINISHED"

/* How long the primary keeps write-ahead log files that hold nothing unflushed,
   for replicas catching up (RocksDB WAL_ttl_seconds). */
/* 0: no archive. Every obsolete WAL file kept is disk: a day of writes at a busy
   primary is many gigabytes, and on a small disk the archive alone filled it
   (test_fault_diskfull). A primary with replicas sets --wal-keep. */
#define STORE_WAL_KEEP_S_DEFAULT 0u

/* The on-disk format this code reads and writes. 1: one record per change
   (no format key); 2: a change carries every record it touched (parts),
   orders, deals and derived customer value; 3: booleans indexed (customer
   consent, task done); 4: the names at a company indexed (similar names); 5: a
   ticket's order indexed (the records that link to one, crm_entity_links); 6:
   values sealed and personal fields indexed by blind terms, when the data dir
   has a master key (seal.h); 7: each index's blind terms its own (a domain per
   index and part of a pair: equal values in two indexes have unrelated terms); 8:
   single Latin letters and digits not in the text index (records.c,
   s_gram_unlisted). */
#define STORE_FORMAT 8

/* Open the database in DIR/db. Caller owns *out. */
crm_err_t store_open(const char *dir, unsigned flags, store_t **out, char *errbuf);
/* The same, keeping obsolete WAL files WAL_KEEP_S seconds for replicas (0: none). */
crm_err_t store_open_wal(const char *dir, unsigned flags, uint64_t wal_keep_s, store_t **out,
                         char *errbuf);
/* Are values sealed (encryption at rest, seal.h)? A store is sealed when it
   was made in a data dir with a master key file (DIR/master.key), or sealed
   by crm-admin upgrade; every value then is, but the meta counters (numbers). */
bool store_sealed(const store_t *self);
/* Seal every value of a store made before format 6 with DIR/master.key
   (crm-admin upgrade; stopped data dir). *COUNT: values sealed now. Can run
   again after an interruption. CRM_ERR_NOT_FOUND: DIR has no master key. */
crm_err_t store_seal_all(store_t *self, const char *dir, uint64_t *count, char *errbuf);
/* Flush and rewrite every table file (a stopped data dir; slow on a big one). */
crm_err_t store_compact_all(store_t *self, char *errbuf);
/* The data dir's format version. */
uint32_t store_format(const store_t *self);
/* Record FORMAT as the data dir's format (synced, outside any group). */
crm_err_t store_set_format(store_t *self, uint32_t format, char *errbuf);
/* The format of a data dir an upgrade is rewriting: every crmd refuses it (one that
   predates it as a newer format), so that a data dir whose upgrade stopped half way -
   values partly sealed, index terms partly rewritten - is never served as the format it
   came from; crm-admin upgrade run again goes on. */
#define STORE_FORMAT_UPGRADING 1000u
/* An upgrade begins: FROM, the format whose steps it takes, and STORE_FORMAT kept; marked
   STORE_FORMAT_UPGRADING (both synced) until store_set_format(STORE_FORMAT). */
crm_err_t store_upgrade_begin(store_t *self, uint32_t from, char *errbuf);
/* The format an unfinished upgrade began from (0: not recorded), and in *TO the one it
   was going to (the OneView that began it). */
uint32_t store_upgrade_from(store_t *self, uint32_t *to);
/* Flush and close; NULL-safe; sets *self_p = NULL. */
void store_destroy(store_t **self_p);
/* Column family name, e.g. "changelog". */
const char *store_cf_name(store_cf_t cf);
/* Read KEY from CF. CRM_ERR_NOT_FOUND if absent; on success caller releases *out. */
crm_err_t store_get(store_t *self, store_cf_t cf, const void *key, size_t klen, store_val_t *out);
/* The committed value's size as stored (sealed: a little more than its own), without
   copying or opening it: NOT_FOUND if there is none. */
crm_err_t store_value_size(store_t *self, store_cf_t cf, const void *key, size_t klen,
                           size_t *size);
/* The committed values of the N keys KEYS/LENS of CF, read in one batch (RocksDB's
   MultiGet, one snapshot) and opened: OUT[i] and RCS[i] as store_get() gives them for
   key i (release each OUT[i]). Returns CRM_OK, or the first failure (not NOT_FOUND). */
crm_err_t store_get_many(store_t *self, store_cf_t cf, const char *const *keys,
                         const size_t *lens, size_t n, store_val_t *out, crm_err_t *rcs);
/* The bytes CF's memtables hold now, the active one and those waiting to be flushed
   (RocksDB's rocksdb.cur-size-all-mem-tables; 0 if the store is closed). */
uint64_t store_memtables_bytes(store_t *self, store_cf_t cf);
/* Whether each of the N keys KEYS/LENS of CF is there (FOUND[i]), read in one batch
   (RocksDB's MultiGet: a table file's filter, index and blocks are looked at once for
   the keys that fall in it); values are not opened. CRM_ERR_STORAGE if a read failed
   (that key is not found; the failure is counted as store_read_errors() counts it). */
crm_err_t store_have_many(store_t *self, store_cf_t cf, const char *const *keys,
                          const size_t *lens, size_t n, bool *found);
/* Free a value; NULL-safe. */
void store_val_release(store_val_t *val);
/* A number never handed out before by this open store (for unique keys). */
uint64_t store_next_unique(store_t *self);
/* A count that grows after each commit that wrote to CF, in any store of this
   process, and whenever a database opens, closes or is replaced: a value read
   from CF after the count was N is still current while the count is N. */
uint64_t store_cf_changes(store_cf_t cf);
/* Meta key: how many times change-log entries were rewritten in place (an
   erasure's scrub, erase.c): a reader that keeps decoded entries (the feed)
   drops them when it moves on. */
#define STORE_META_LOG_REWRITES "log_rewrites"
uint64_t store_log_rewrites(store_t *self);
/* A rewrite may be on its way (staged by the scrub, or a replica applied a
   batch of the primary's): the feed looks at store_log_rewrites() after the
   following commits until it has moved. A count, any thread. */
void store_log_rewrite_hint(void);
uint64_t store_log_rewrite_hints(void);
/* Sequence number of the last committed mutation (0 if none). */
uint64_t store_last_seq(const store_t *self);
/* The oldest sequence number still in the change log (1 if never trimmed). */
uint64_t store_changelog_first(const store_t *self);
/* Drop change-log entries below KEEP_FROM (retention). Not part of a group. */
crm_err_t store_changelog_trim(store_t *self, uint64_t keep_from, char *errbuf);
/* Read the change-log entry SEQ. */
crm_err_t store_changelog_get(store_t *self, uint64_t seq, store_val_t *out);

/* ==== Iterators over committed data ==== */

typedef struct store_iter store_iter_t;

/* A new iterator over CF (a consistent view as of now). */
/* A consistent view for long reads off the server thread (reports): until
   store_view_end(), every store_get() and store_iter_new() of the calling
   thread reads one snapshot, without filling the block cache, and the store
   is not reopened. Returns the last committed sequence number at the start
   (the snapshot holds at least that much). Not with group reads. */
uint64_t store_view_begin(store_t *self);
void store_view_end(store_t *self);
/* Does this thread read through a view (a snapshot) now? */
bool store_in_view(void);
/* The sequence number store_view_begin() returned on this thread. */
uint64_t store_view_seq(void);
/* A BLAKE2b digest of every key and value of every column family, as this
   thread reads them (its view, if it has one): the same content gives the
   same digest. *KEYS counts them; *LAST_SEQ is the change-log number they hold. */
crm_err_t store_digest(store_t *self, uint8_t out[32], uint64_t *keys, uint64_t *last_seq,
                       char *errbuf);
/* Keep a view after each store_wal_apply() (a replica): those of the last
   KEEP_MS, at most MAX, for store_view_at(). Once, before the follower starts. */
void store_keep_views(store_t *self, int keep_ms, size_t max);
/* Within a view: read from here on as of WAL sequence number AT exactly (0:
   the latest, whatever it is): a kept view, or the store itself when it is at
   AT; a store that keeps views (a replica) waits up to WAIT_MS to reach AT.
   Sets *WAL_SEQ. FAILED_PRECONDITION when AT is past and not kept (or ahead,
   without kept views), UNAVAILABLE when it was not reached in time. */
crm_err_t store_view_at(store_t *self, uint64_t at, int wait_ms, uint64_t *wal_seq,
                        char *errbuf);

store_iter_t *store_iter_new(store_t *self, store_cf_t cf);
/* The same, seeing what the writer's group has staged too. */
store_iter_t *store_group_iter_new(store_group_t *g, store_cf_t cf);
/* The length of a blind term's key prefix in the indexes (the kind's prefix, the
   index's tag, the term's SEAL_BLIND_BYTES), which their prefix filter is kept of. */
#define STORE_TERM_PREFIX 18
/* An iterator over the indexes for the postings of one blind term: it sees only keys
   that begin with the first STORE_TERM_PREFIX bytes of the key it is positioned at
   (which must be that long), and skips the table files and memtables whose prefix filter
   says none is there. Through the group G (as store_group_iter_new) unless NULL; within
   a view, as of it. */
store_iter_t *store_term_iter_new(store_t *self, store_group_t *g);
/* Position at the first key >= KEY. */
void store_iter_seek(store_iter_t *it, const void *key, size_t klen);
/* True if positioned on a key. False at the end - or on a read error, which
   is logged and counted (store_read_errors()); dispatch fails the request. */
bool store_iter_valid(const store_iter_t *it);
/* The current key and value, borrowed until the iterator moves. The value is
   NULL (and *VLEN 0) if it does not open with the master key: a storage
   error, logged and counted (store_read_errors()), never an empty value. */
const char *store_iter_key(const store_iter_t *it, size_t *klen);
const char *store_iter_value(const store_iter_t *it, size_t *vlen);
void store_iter_next(store_iter_t *it);
/* Position at the last key < KEY, and step backwards. */
void store_iter_seek_before(store_iter_t *it, const void *key, size_t klen);
void store_iter_prev(store_iter_t *it);
/* NULL-safe; sets *it_p = NULL. */
void store_iter_destroy(store_iter_t **it_p);

/* ==== Group commit: many mutations, one atomic write ==== */

/* A new, empty group. Only one thread (the writer) may use a group. */
store_group_t *store_group_new(store_t *store);
/* Discard anything uncommitted and free; NULL-safe. */
void store_group_destroy(store_group_t **self_p);
/* Start one mutation inside the group (a save point). */
void store_group_begin(store_group_t *self);
/* Stage a put/delete for the current mutation. */
void store_group_put(store_group_t *self, store_cf_t cf, const void *key, size_t klen,
                     const void *val, size_t vlen);
void store_group_delete(store_group_t *self, store_cf_t cf, const void *key, size_t klen);
/* Read through the group: staged writes first, then the database. */
crm_err_t store_group_get(store_group_t *self, store_cf_t cf, const void *key, size_t klen,
                          store_val_t *out);
/* Finish the current mutation: assign the next sequence number and stage the
   change-log entry EVENT under it. Returns the sequence number. */
uint64_t store_group_end(store_group_t *self, const void *event, size_t elen);
/* Undo everything staged since store_group_begin(). */
void store_group_abort(store_group_t *self);
/* Mutations ended and not yet committed. */
size_t store_group_count(const store_group_t *self);
/* True if anything is uncommitted: staged (mutations, or side entries such
   as audit records of denials staged outside a mutation) or in flight. */
bool store_group_dirty(store_group_t *self);
/* Make the next commit fail with RC and TEXT, writing nothing (for a group
   holding a mutation that was based on a read cut short by an error, when
   store_group_undo could not take it back alone). */
void store_group_fail(store_group_t *self, crm_err_t rc, const char *text);
/* A counter that grows whenever the group is touched in a way that makes an
   answer depend on its commit: a put or delete staged (a mutation, or an
   audit entry of a read or a denial), or a read through the group
   (store_group_get, store_group_iter_new) while anything is staged. The
   dispatcher compares it before and after a request: if it grew, the reply
   waits for the commit and becomes an error if the commit fails. */
uint64_t store_group_touches(const store_group_t *self);
/* What the group holds at a point (before a request is served). */
typedef struct {
    uint64_t next_seq;
    size_t ended;
    int save_points;
} store_group_mark_t;
/* Note what the group holds now (no save point of its own: a request that
   stages nothing must leave nothing behind in the batch). */
void store_group_mark(store_group_t *self, store_group_mark_t *mark);
/* Take back the mutations begun since MARK, with their sequence numbers, and
   whatever was staged after the first of them, leaving what others staged
   before MARK. Entries staged since MARK outside any mutation and before the
   first one stay: they record the request (the audit entry of an admin's
   read, of a denial), not data it read. Nothing may commit or land between
   the two calls (the server thread makes both within one request). Returns
   false, taking nothing back, if the request began more than STORE_UNDO_MAX
   mutations (each rollback rebuilds the batch's index): the group must then
   be failed instead (store_group_fail). */
#define STORE_UNDO_MAX 16
bool store_group_undo(store_group_t *self, const store_group_mark_t *mark);
/* Write everything staged atomically (fsynced in STORE_SYNC mode), on this
   thread, after landing a commit in flight. On failure nothing is written
   and their sequence numbers are given back. The group is empty afterwards
   either way. */
crm_err_t store_group_commit(store_group_t *self, char *errbuf);
/* Pipelined group commit (the server's group): the commit is written by the
   group's committer thread while the caller stages the next one, which
   reads what is in flight as if it were committed. Only when nothing is in
   flight: starts the commit of everything staged and sets *STARTED; or, not
   started, returns the commit's outcome at once (nothing was staged; a
   refusal; or a commit written on this thread: always without STORE_SYNC,
   and when the group has not emptied for long). A failure in flight fails
   what was staged after it too: it is given up with it. */
crm_err_t store_group_commit_start(store_group_t *self, bool *started, char *errbuf);
/* A commit is in flight. */
bool store_group_in_flight(const store_group_t *self);
/* Nothing staged and nothing in flight: then the batch is emptied (what it
   kept of past commits too), so that reads through it see only the store and
   another group may write meanwhile (a large change on the writer thread). */
bool store_group_idle(store_group_t *self);
/* Bytes staged and not yet handed to a commit. */
size_t store_group_staged_bytes(store_group_t *self);
/* A commit is in flight and has been written (or failed): land it. */
bool store_group_landed(store_group_t *self);
/* An eventfd that becomes readable when a commit in flight is written. */
int store_group_commit_fd(const store_group_t *self);
/* Wait for the commit in flight and take its outcome (store_group_commit's).
   On failure everything staged since is given up as well. */
crm_err_t store_group_commit_land(store_group_t *self, char *errbuf);

/* ==== Storage failures: survived, not fatal ==== */

/* CRM_OK while writes work. Otherwise the code every commit gets until
   store_recover() succeeds - RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE
   for other write errors - with its text in ERRBUF (may be NULL). */
crm_err_t store_write_health(store_t *self, char *errbuf);
/* While writes fail: if a probe file can be written and fsynced in the data
   dir, close and reopen the database so writes work again. Only the thread
   that owns the group may call it, between group commits. CRM_OK once
   writes work; else why not, in ERRBUF. */
crm_err_t store_recover(store_t *self, char *errbuf);
/* How many scans of this thread so far stopped on a read error (a damaged
   table file), and the text of the store's last (ERRBUF may be NULL). */
uint64_t store_read_errors(store_t *self, char *errbuf);

/* ==== Replication: the write-ahead log, batch by batch (replica.c) ==== */

/* RocksDB's newest sequence number (every key written counts one). */
uint64_t store_wal_seq(store_t *self);
/* One batch of the WAL: sequence number of its first entry and its bytes
   (borrowed for the call). Return false to stop. */
typedef bool (*store_wal_fn)(void *arg, uint64_t seq, const void *data, size_t len);
/* Where one reader of the WAL (a replica) stopped, kept between its reads. */
typedef struct store_wal_cursor store_wal_cursor_t;
store_wal_cursor_t *store_wal_cursor_new(store_t *self);
/* NULL-safe; sets *cur_p = NULL. Before the store is destroyed. */
void store_wal_cursor_destroy(store_wal_cursor_t **cur_p);
/* Hand FN the WAL's batches from the one starting at FROM on, until FN
   returns false, about MAX_BYTES were handed, or the log ends. If FROM is no
   longer in the retained log, *too_old is set (and *oldest to the first
   sequence number still there, 0 if unknown) and nothing is handed.
   CRM_ERR_FAILED_PRECONDITION if FROM falls inside a batch (the asker's
   history differs from ours). CUR (may be NULL) keeps the iterator for a
   next read that starts where this one stopped. */
crm_err_t store_wal_read(store_t *self, store_wal_cursor_t *cur, uint64_t from,
                         size_t max_bytes, store_wal_fn fn, void *arg, bool *too_old,
                         uint64_t *oldest, char *errbuf);
/* Apply one shipped batch atomically. It must start at store_wal_seq() + 1
   (else CRM_ERR_FAILED_PRECONDITION, nothing written). Afterwards the
   store's last_seq, change-log start and unique counter are re-read from
   meta, so the feed sees the primary's sequence numbers. */
crm_err_t store_wal_apply(store_t *self, uint64_t seq, const void *data, size_t len,
                          char *errbuf);

/* The history id (1 until a promotion or a restore) and, in *START (may be
   NULL), the WAL sequence number of the promotion or restore that began it
   (0 for epoch 1). */
uint64_t store_epoch(const store_t *self, uint64_t *start);
/* The first change-log sequence number of the current history (1 for epoch 1):
   a watcher that saw changes of another history at or after it has seen
   changes this store does not hold. */
uint64_t store_epoch_first(const store_t *self);
/* Where history ID parts from this store's line of histories: the WAL start (*START) and
   first change (*FIRST) of the first history after ID this store went on with (UINT64_MAX
   both: none, ID is its current one or newer than all). For an ID it never went on with:
   the beginning of its first history after the root (at most that much is shared; narrow
   it with what the asker knows of its own beginning). Returns whether ID is one of its. */
bool store_history_parted(store_t *self, uint64_t id, uint64_t *start, uint64_t *first);
/* True if commits are refused: a replica, or a fenced former primary. */
bool store_readonly(const store_t *self);
/* The newer epoch a fenced former primary learned of (0: not fenced). */
uint64_t store_fenced_by(const store_t *self);
/* A replica becomes a primary: epoch + 1 from the next WAL sequence number
   (written, synced) and commits allowed. Stop its follower first. */
crm_err_t store_promote(store_t *self, uint64_t *epoch, char *errbuf);
/* A restored store begins a history of its own (RELIABILITY.md trap 15): its
   epoch becomes the time in milliseconds since 1970 (or epoch + 1 if that is
   larger), from the next WAL and change-log numbers. Two restores of one
   backup never share a history id, and a later one's is larger, so a replica
   left at an earlier restore's history does not fence a later one. Not on a
   store opened as a replica's; *EPOCH gets the new id. */
crm_err_t store_new_history(store_t *self, uint64_t *epoch, char *errbuf);
/* A primary learned of NEWER_EPOCH (a promotion elsewhere): refuse commits
   from now on, and after a restart too (recorded in meta). */
crm_err_t store_fence(store_t *self, uint64_t newer_epoch, char *errbuf);
/* An admin lifts the fence (crm-admin unfence, a stopped data dir): commits are
   taken again. Only for a fence no promotion stands behind. */
crm_err_t store_unfence(store_t *self, char *errbuf);
/* A replica's re-sync (replica.c): switch this open store to the database
   in NEW_DB (a verified copy fetched from the primary, on the data dir's
   filesystem). Server thread only, like store_recover(): it takes the lock
   other threads' reads hold and gives up at once with CRM_ERR_CONFLICT
   if one holds it now (call again later). The current database is renamed
   to DIR/db.pre-resync, NEW_DB to DIR/db, and opened; if that open fails
   the renames are undone and the old database reopened. The caller removes
   DIR/db.pre-resync afterwards (see repl_resync_cleanup() for a crash
   between the renames). */
crm_err_t store_swap_db(store_t *self, const char *new_db, char *errbuf);
#define STORE_PRE_RESYNC_DIR "db.pre-resync"

/* Big-endian encoding for keys that must sort numerically. */
void store_put_be64(uint8_t out[8], uint64_t v);
uint64_t store_get_be64(const uint8_t in[8]);

/* ==== Backups (RocksDB Checkpoint and BackupEngine; policy in backup.c) ==== */

/* One backup as the BackupEngine lists it. */
typedef struct {
    uint32_t id;    /* backup id, growing */
    int64_t time;   /* seconds since the epoch */
    uint64_t size;  /* bytes of all its files (shared ones included) */
    uint32_t files; /* number of files */
} store_backup_info_t;

/* Hard-link checkpoint of the live store into DIR (must not exist; same
   filesystem), memtables flushed first. Safe while writes go on. */
crm_err_t store_checkpoint(store_t *self, const char *dir, char *errbuf);
/* Count the keys of CF by their first byte (records: by kind prefix). */
crm_err_t store_count_keys(store_t *self, store_cf_t cf, uint64_t counts[256]);
/* Write a new incremental backup of SELF into BACKUP_DIR (synced); *out gets it. */
crm_err_t store_backup_create(store_t *self, const char *backup_dir, store_backup_info_t *out,
                              char *errbuf);
/* The backups in BACKUP_DIR, ascending by id; caller free()s *out. */
crm_err_t store_backup_list(const char *backup_dir, store_backup_info_t **out, size_t *n,
                            char *errbuf);
/* Delete all but the newest KEEP backups (and files no longer shared). */
crm_err_t store_backup_purge(const char *backup_dir, uint32_t keep, char *errbuf);
/* RocksDB's own verify: every file present with the right size (not checksums). */
crm_err_t store_backup_verify_sizes(const char *backup_dir, uint32_t id, char *errbuf);
/* Restore backup ID into DB_DIR (a new DIR/db), checking every file's checksum. */
crm_err_t store_backup_restore(const char *backup_dir, uint32_t id, const char *db_dir,
                               char *errbuf);

#endif
