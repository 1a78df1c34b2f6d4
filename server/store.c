/*  =========================================================================
    store - RocksDB persistence: column families, reads, group commit

    The only file that includes rocksdb/c.h (see store.h for the contract).

    Why a WriteBatchWithIndex for the group: the writer thread drains every
    queued write request, runs each handler against one shared batch, then
    commits the batch once and replies to all (group commit: one fsync for
    many writes, PERFORMANCE.md measured 26k fsynced writes/s this way against
    4k without). A handler later in the same group must see what an earlier
    one staged - two versioned updates of one record in one group would
    otherwise both read the old version and one would be lost - so reads go
    through the batch's index first. Each mutation is bracketed by a save point
    so a handler that fails half-way leaves nothing behind.

    Why sequence numbers are assigned while staging: a group commits whole or
    not at all, so numbers handed out in staging order are gap-free once
    written; on a failed commit the counter is wound back.

    Storage failures (RELIABILITY.md trap 11). A failed write puts RocksDB
    into a read-only state; reads keep working. We remember the failure
    (write_error), refuse every later commit at once with the same clear
    error - RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE otherwise - and
    log it once per episode. That state is under health_lock: a replica's
    follower thread fails its applies into it (store_wal_apply) while the
    server thread commits, recovers and reports it. The RocksDB 7.8 C API
    has no Resume(), so store_recover(), called by the server thread about
    once a second while writes fail, writes and fsyncs a probe file next to
    the database and, once that works, closes and reopens the database
    (under a lock the ZAP thread's reads take too). Two traps in Debian's
    RocksDB build, which keeps its assertions: (1) a WritableFileWriter that
    has seen an error asserts on the next append or sync, so its own info
    LOG on a full disk aborts the process on the next log line - we keep
    that LOG at header level (written at open only, bounded in size) and log
    failures ourselves; (2) the same
    holds for the WAL writer, so after a failed write we never call
    FlushWAL(sync) on it, not even on close.

    Iterators: an iterator that stops because of an error (a damaged table
    file) looks like the end of the data. store_iter_valid() checks
    rocksdb_iter_get_error() whenever it turns false, logs the error (it
    names the file) and counts it; dispatch_process() turns a request during
    which that count grew into an error reply, so no caller can answer from
    a scan that was cut short.
    =========================================================================
*/
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crm_keys.h"
#include "crm_log.h"
#include "crm_time.h"
#include "seal.h"

static const char *const s_cf_names[STORE_CF__COUNT] = {
#define X(name, str) str,
    STORE_CF_LIST(X)
#undef X
};

_Static_assert(STORE_TERM_PREFIX == 2 + SEAL_BLIND_BYTES, "a blind term's key prefix");

static const char s_meta_last_seq[] = "last_seq";
static const char s_meta_log_first[] = "log_first";
static const char s_meta_unique[] = "unique"; /* store_next_unique() hands out only above it */
static const char s_meta_epoch[] = "epoch";   /* history id: 1, then +1 per promotion */
static const char s_meta_epoch_start[] = "epoch_start"; /* WAL sequence number it began at */
static const char s_meta_epoch_first[] = "epoch_first"; /* first change-log number in it */
static const char s_meta_fenced_by[] = "fenced_by"; /* a newer epoch seen: writes refused */
/* every history the store went on with, in order: id, WAL start, first change (24 bytes
   each, big-endian); history 1, begun with the store, is the root of every chain */
static const char s_meta_histories[] = "histories";
#define MAX_HISTORIES 256
static const char s_meta_upgrade_from[] = "upgrade_from"; /* an unfinished upgrade's start */
static const char s_meta_upgrade_to[] = "upgrade_to"; /* ... and the format it was going to */

#define PROBE_BYTES (256u << 10) /* written and fsynced to see that writes work again */
#define STORE_MEMTABLES_BYTES (64u << 20) /* all memtables together (db_write_buffer_size) */

static const char s_meta_format[] = "format";
/* Present in a sealed store (encryption at rest): a value sealed by the data
   dir's master key, opened at every open to tell a wrong key from damage. */
static const char s_meta_sealed[] = "sealed";
static const char s_sealed_check[] = "oneview sealed store";

/* Meta keys whose values stay as they are in a sealed store: counters and
   markers store.c reads before or without the key - numbers, no customer data. */
static bool
s_meta_plain(const void *key, size_t klen)
{
    static const char *const plain[] = {"last_seq",  "log_first",   "unique",
                                        "epoch",     "epoch_start", "epoch_first",
                                        "fenced_by", "format",      "sealed",
                                        "upgrade_from", "upgrade_to", "histories",
                                        STORE_META_LOG_REWRITES};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        if (strlen(plain[i]) == klen && !memcmp(plain[i], key, klen))
            return true;
    return false;
}

struct store {
    rocksdb_t *db;                /* NULL only if a reopen failed (store_recover retries) */
    pthread_rwlock_t reopen_lock; /* held for reading by other threads' reads, for
                                     writing while the database is reopened */
    unsigned flags;               /* STORE_* it was opened with */
    char dir[PATH_MAX];           /* the data dir */
    /* Write health, guarded by health_lock: the server thread commits and
       recovers, a replica's follower thread applies (store_wal_apply), so
       either may enter a failure episode while the other reads it. */
    pthread_mutex_t health_lock;
    crm_err_t write_rc;           /* CRM_OK, or why writes are refused until recovery */
    char write_error[CRM_ERRBUF]; /* ... in words */
    uint64_t write_fail_since_us; /* when the current failure episode began */
    uint64_t writes_refused;      /* commits refused in this episode */
    bool reopen_failed;           /* a reopen failed in this episode (logged once) */
    pthread_mutex_t read_error_lock;
    char read_error[CRM_ERRBUF];  /* the last one, in words */
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_options_t *idx_opts; /* the indexes column family's: opts with a prefix filter */
    rocksdb_options_t *key_opts; /* records, users, meta: opts with a whole-key memtable filter */
    rocksdb_column_family_handle_t *cf[STORE_CF__COUNT + 1]; /* [0] is "default" */
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    _Atomic uint64_t last_seq; /* last committed sequence number */
    _Atomic uint64_t unique;   /* counter behind store_next_unique() */
    _Atomic uint64_t log_first; /* oldest retained change-log entry */
    _Atomic uint64_t epoch;       /* history id (meta "epoch", 1 if absent) */
    _Atomic uint64_t epoch_start; /* WAL sequence number of the promotion that began it */
    _Atomic uint64_t epoch_first; /* its first change-log number (meta "epoch_first", 1) */
    pthread_mutex_t hist_lock;    /* guards HIST: loaded by a replica's follower too */
    uint64_t hist[MAX_HISTORIES][3]; /* meta "histories": id, start, first; sorted by id */
    size_t nhist;
    bool hist_cut;                /* the oldest were dropped (more than MAX_HISTORIES) */
    _Atomic uint64_t fenced_by;   /* a newer epoch this former primary learned of (0: none) */
    char path[PATH_MAX];       /* DIR/db */
    uint32_t format;           /* on-disk format version (STORE_FORMAT once upgraded) */
    bool sealed;               /* values are sealed (seal.h): the dir has a master key */
    store_wal_cursor_t *cursors; /* replicas' WAL iterators, dropped when the db closes */
    /* store_keep_views(): a snapshot after each applied batch, the last few
       seconds of them, so a digest can be taken as of a primary's sequence
       number the replica has already passed (store_view_at) */
    pthread_mutex_t views_lock;
    struct s_kept_view {
        uint64_t seq;
        const rocksdb_snapshot_t *snap; /* NULL once taken by store_view_at() */
        int64_t at_us;
    } *views;
    size_t views_cap, views_head, views_n;
    int64_t views_keep_us;
};

static bool s_sealed(const store_t *self, store_cf_t cf, const void *key, size_t klen);

/* A commit's entries as a WriteBatch representation (header and records),
   not yet sorted: s_job_batch() sorts them and makes the batch, on whichever
   thread writes it. */
typedef struct {
    char *buf;
    size_t len;
} s_job_t;
static rocksdb_writebatch_t *s_job_batch(s_job_t *job);

/* The group's batch holds, in order: entries already committed (kept until
   the batch empties, so that reads need only this one batch over the
   database), entries handed to the committer thread and not yet landed
   (store_group_commit_start), and entries staged since. Reads through the
   batch see all three: what is in flight is what the database will hold. */
struct store_group {
    store_t *store;
    rocksdb_writebatch_wi_t *batch;
    uint64_t next_seq; /* sequence number the next ended mutation gets */
    size_t ended;      /* mutations ended since the last commit started */
    uint64_t touches;  /* staged writes, and reads that may have seen staged state */
    unsigned staged_cfs; /* column families written by what is staged (bits) */
    unsigned flight_cfs; /* ... and by the commit in flight */
    int save_points;   /* save points in the batch (mutations begun, marks) */
    crm_err_t fail_rc; /* set by store_group_fail(): the next commit fails with it */
    char fail_text[CRM_ERRBUF];
    size_t header;     /* bytes of an empty batch's representation */
    size_t sent_bytes; /* the representation's bytes committed or in flight */
    int sent_count;    /* ... and their entries */
    int landed_count;  /* entries known committed (<= sent_count) */
    bool in_flight;    /* a commit is on the committer thread */
    size_t flight_ended;       /* its mutations (for the failure log) */
    uint64_t flight_last_seq;  /* the last sequence number once it lands */
    /* the committer thread, started by the first store_group_commit_start() */
    bool thread_started;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    s_job_t job;               /* to write; job.buf NULL when idle (under lock) */
    char *job_err;             /* RocksDB's error of the last job (under lock) */
    bool job_done;             /* the last job was written or failed (under lock) */
    atomic_bool landed;        /* the same, read without the lock */
    bool stop;                 /* the thread ends (under lock) */
    int efd;                   /* an eventfd, readable once a job is done */
};

/* A thread between store_view_begin() and store_view_end() reads through
   these (a snapshot) instead of the store's own read options. */
static _Thread_local rocksdb_readoptions_t *t_view_ropts;
/* Scans that stopped on a read error, on this thread: a request compares it
   before and after, so another thread's error (the worker's, a backup's)
   never fails it. */
static _Thread_local uint64_t t_read_errors;
static _Thread_local const rocksdb_snapshot_t *t_view_snap;
static _Thread_local uint64_t t_view_seq;

/* RocksDB counts, per thread, every key comparison, block read and skipped
   key into its perf context unless the thread says otherwise (perf level
   kEnableCount, its default); nothing here reads those counts, and each one
   is a C++ thread_local reached through __tls_get_addr from the shared
   library: about 5 % of crmd's samples during an import (PERFORMANCE.md,
   "RocksDB's per-thread counters"). The entry points that reach RocksDB
   (reads, iterators, views, reads through a group, commits and the committer
   thread, the change log's trim, a replica's WAL read and apply, key counts)
   turn them off for their thread, once (staging into a group's batch counts
   nothing); RocksDB's own flush and compaction threads keep theirs. */
static _Thread_local bool t_perf_off;

static inline void
s_perf_off(void)
{
    if (!t_perf_off) {
        rocksdb_set_perf_level(rocksdb_disable);
        t_perf_off = true;
    }
}

static rocksdb_readoptions_t *
s_ropts(const store_t *self)
{
    return t_view_ropts ? t_view_ropts : self->ropts;
}

void
store_put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint64_t
store_get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

const char *
store_cf_name(store_cf_t cf)
{
    return s_cf_names[cf];
}

static rocksdb_column_family_handle_t *
s_cf(store_t *self, store_cf_t cf)
{
    return self->cf[cf + 1];
}

/* Turn a RocksDB error string into a message for the user; frees it. WHAT
   and ERR are cut to lengths that always fit CRM_ERRBUF, so a long data-dir
   path shortens the message instead of cutting off its advice. */
static crm_err_t
s_db_error(char *err, const char *what, char *errbuf)
{
    crm_err_t rc = CRM_ERR_STORAGE;
    if (strstr(err, "lock") || strstr(err, "LOCK")) {
        snprintf(errbuf, CRM_ERRBUF,
                 "%.100s: the data dir is in use by another process (lock held); stop the "
                 "other crmd or crm-admin first (%.100s)",
                 what, err);
        rc = CRM_ERR_UNAVAILABLE;
    } else if (strstr(err, "No space left") || strstr(err, "NoSpace")) {
        snprintf(errbuf, CRM_ERRBUF, "%s: disk full (%s)", what, err);
        rc = CRM_ERR_RESOURCE_EXHAUSTED;
    } else if (strstr(err, "Corruption")) {
        snprintf(errbuf, CRM_ERRBUF, "%s: the database is damaged (%s)", what, err);
    } else {
        snprintf(errbuf, CRM_ERRBUF, "%.150s: %.160s", what, err);
    }
    rocksdb_free(err);
    return rc;
}

/* Write and fsync PROBE_BYTES in DIR/.crmd-write-probe, then remove it:
   fails the way the next database write would on a full or failing disk. */
static crm_err_t
s_write_probe(const char *dir, char *errbuf)
{
    char path[PATH_MAX + 32];
    static const char zeros[4096];
    snprintf(path, sizeof path, "%s/.crmd-write-probe.%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    for (size_t done = 0; !e && done < PROBE_BYTES; done += sizeof zeros)
        if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros)
            e = errno ? errno : ENOSPC;
    if (!e && fdatasync(fd) != 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    unlink(path);
    if (!e)
        return CRM_OK;
    snprintf(errbuf, CRM_ERRBUF, "%s in data dir '%s': %s",
             e == ENOSPC || e == EDQUOT ? "disk full" : "cannot write", dir, strerror(e));
    return e == ENOSPC || e == EDQUOT ? CRM_ERR_RESOURCE_EXHAUSTED : CRM_ERR_UNAVAILABLE;
}

/* Per column family, a count of the commits that wrote to it in this process
   (any store), and of databases opened, closed or replaced (those count for
   every family): bumped after the write is visible, so a value read after
   the count was N is current while the count is still N (store_cf_changes). */
static _Atomic uint64_t s_cf_changes[STORE_CF__COUNT];
#define S_CF_ALL ((1u << STORE_CF__COUNT) - 1)

static void
s_cf_changed(unsigned cfs)
{
    for (int i = 0; i < STORE_CF__COUNT; i++)
        if (cfs & (1u << i))
            atomic_fetch_add(&s_cf_changes[i], 1);
}

uint64_t
store_cf_changes(store_cf_t cf)
{
    return atomic_load(&s_cf_changes[cf]);
}

static _Atomic uint64_t s_rewrite_hints;

void
store_log_rewrite_hint(void)
{
    atomic_fetch_add(&s_rewrite_hints, 1);
}

uint64_t
store_log_rewrite_hints(void)
{
    return atomic_load(&s_rewrite_hints);
}

uint64_t
store_log_rewrites(store_t *self)
{
    store_val_t v = {0};
    uint64_t n = 0;
    if (store_get(self, STORE_CF_META, STORE_META_LOG_REWRITES,
                  sizeof STORE_META_LOG_REWRITES - 1, &v) == CRM_OK && v.len == 8)
        n = store_get_be64((const uint8_t *)v.data);
    store_val_release(&v);
    return n;
}

/* The indexes' prefix extractor: a key's first STORE_TERM_PREFIX bytes, or the whole of a
   shorter key (the keys of plain indexes can be). RocksDB's fixed-prefix extractor takes no
   shorter key, and Debian's build asserts on one that an iterator meets; its capped one,
   which this is, is not in the C API. Keys with one prefix are contiguous, as RocksDB
   requires: a shorter key's prefix is itself alone. */
static void
s_term_state_free(void *state)
{
    (void)state; /* none: RocksDB's wrapper calls this unconditionally */
}

static char *
s_term_prefix(void *state, const char *key, size_t length, size_t *dst_length)
{
    (void)state;
    *dst_length = length < STORE_TERM_PREFIX ? length : STORE_TERM_PREFIX;
    return (char *)key;
}

static unsigned char
s_term_in_domain(void *state, const char *key, size_t length)
{
    (void)state, (void)key, (void)length;
    return 1;
}

static unsigned char
s_term_in_range(void *state, const char *key, size_t length)
{
    (void)state, (void)key, (void)length;
    return 0;
}

static const char *
s_term_prefix_name(void *state)
{
    (void)state;
    return "oneview.TermPrefix.18";
}

/* Whether family CF is read key by key on the hot paths (a record, a user, a meta
   value), so that its memtables keep a filter of whole keys (store_open). The change
   log and the audit are written in order and scanned: a filter would cost each write a
   hash and each memtable its bits for nothing. */
static bool
s_read_by_key(int cf)
{
    return cf == STORE_CF_RECORDS || cf == STORE_CF_USERS || cf == STORE_CF_META;
}

/* Open the RocksDB database at self->path with the options made by store_open. */
static crm_err_t
s_db_open(store_t *self, char *errbuf)
{
    char *err = NULL;
    const char *names[STORE_CF__COUNT + 1];
    const rocksdb_options_t *cf_opts[STORE_CF__COUNT + 1];
    names[0] = "default";
    cf_opts[0] = self->opts;
    for (int i = 0; i < STORE_CF__COUNT; i++) {
        names[i + 1] = s_cf_names[i];
        cf_opts[i + 1] = i == STORE_CF_INDEXES   ? self->idx_opts
                         : s_read_by_key(i) ? self->key_opts
                                            : self->opts;
    }
    self->db = rocksdb_open_column_families(self->opts, self->path, STORE_CF__COUNT + 1, names,
                                            cf_opts, self->cf, &err);
    if (err) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "cannot open data dir '%s'", self->dir);
        self->db = NULL;
        memset(self->cf, 0, sizeof self->cf);
        return s_db_error(err, what, errbuf);
    }
    s_cf_changed(S_CF_ALL);
    return CRM_OK;
}

/* Close the database. After a failed write the WAL writer is in an error
   state that Debian's RocksDB asserts on if synced again: skip the final
   FlushWAL then (what it would sync was never acknowledged). */
static void s_cursors_drop(store_t *self);

/* The write health (CRM_OK or why writes are refused), its words in ERRBUF
   (may be NULL); if COUNT, one more refused write is counted. */
static crm_err_t
s_health_count(store_t *self, char *errbuf, bool count)
{
    pthread_mutex_lock(&self->health_lock);
    crm_err_t rc = self->write_rc;
    if (rc != CRM_OK && errbuf)
        snprintf(errbuf, CRM_ERRBUF, "%s", self->write_error);
    if (rc != CRM_OK && count)
        self->writes_refused++;
    pthread_mutex_unlock(&self->health_lock);
    return rc;
}

static crm_err_t
s_health(store_t *self, char *errbuf)
{
    return s_health_count(self, errbuf, false);
}

/* Release the kept views older than KEEP_US before NOW (all with KEEP_US < 0),
   and the oldest beyond the ring's capacity less one. Under reopen_lock. */
static void
s_views_trim(store_t *self, int64_t now, int64_t keep_us)
{
    pthread_mutex_lock(&self->views_lock);
    while (self->views_n &&
           (keep_us < 0 || self->views_n >= self->views_cap ||
            self->views[self->views_head].at_us < now - keep_us)) {
        struct s_kept_view *v = &self->views[self->views_head];
        if (v->snap && self->db)
            rocksdb_release_snapshot(self->db, v->snap);
        v->snap = NULL;
        self->views_head = (self->views_head + 1) % self->views_cap;
        self->views_n--;
    }
    pthread_mutex_unlock(&self->views_lock);
}

static void
s_db_close(store_t *self)
{
    if (!self->db)
        return;
    s_views_trim(self, 0, -1);
    s_cursors_drop(self);
    if (s_health(self, NULL) == CRM_OK) {
        char *err = NULL;
        rocksdb_flush_wal(self->db, 1, &err);
        if (err) {
            crm_log(CRM_LOG_WARN, "store: flushing the WAL on close failed: %s", err);
            rocksdb_free(err);
        }
    }
    for (int i = 0; i <= STORE_CF__COUNT; i++)
        if (self->cf[i])
            rocksdb_column_family_handle_destroy(self->cf[i]);
    memset(self->cf, 0, sizeof self->cf);
    rocksdb_close(self->db);
    self->db = NULL;
    s_cf_changed(S_CF_ALL);
}

/* Read a big-endian u64 from meta KEY into *out (left alone if absent). */
static crm_err_t
s_meta_u64(store_t *self, const char *key, _Atomic uint64_t *out)
{
    store_val_t v = {0};
    crm_err_t rc = store_get(self, STORE_CF_META, key, strlen(key), &v);
    if (rc == CRM_OK && v.len == 8)
        atomic_store(out, store_get_be64((const uint8_t *)v.data));
    store_val_release(&v);
    return rc == CRM_ERR_NOT_FOUND ? CRM_OK : rc;
}

/* Insert (ID, START, FIRST) into HIST (sorted by id), unless ID is there; the oldest go
   when it is full. Under hist_lock. */
static void
s_hist_put(store_t *self, uint64_t id, uint64_t start, uint64_t first)
{
    size_t at = 0;
    while (at < self->nhist && self->hist[at][0] < id)
        at++;
    if (at < self->nhist && self->hist[at][0] == id)
        return;
    if (self->nhist == MAX_HISTORIES) {
        if (at == 0)
            return;
        memmove(self->hist[0], self->hist[1], (MAX_HISTORIES - 1) * sizeof self->hist[0]);
        self->nhist--;
        self->hist_cut = true;
        at--;
    }
    memmove(self->hist[at + 1], self->hist[at], (self->nhist - at) * sizeof self->hist[0]);
    self->hist[at][0] = id;
    self->hist[at][1] = start;
    self->hist[at][2] = first;
    self->nhist++;
}

/* The chain from meta "histories", with the root and the current history in it (a store
   from before the chain was kept knows only those). */
static void
s_hist_load(store_t *self)
{
    store_val_t v = {0};
    pthread_mutex_lock(&self->hist_lock);
    self->nhist = 0;
    self->hist_cut = false;
    if (store_get(self, STORE_CF_META, s_meta_histories, sizeof s_meta_histories - 1, &v) ==
            CRM_OK &&
        v.len % 24 == 0)
        for (size_t i = 0; i < v.len / 24; i++) {
            const uint8_t *e = (const uint8_t *)v.data + i * 24;
            s_hist_put(self, store_get_be64(e), store_get_be64(e + 8), store_get_be64(e + 16));
        }
    store_val_release(&v);
    s_hist_put(self, 1, 0, 1);
    s_hist_put(self, atomic_load(&self->epoch), atomic_load(&self->epoch_start),
               atomic_load(&self->epoch_first));
    pthread_mutex_unlock(&self->hist_lock);
}

/* A database dir without CURRENT but with RocksDB's other files was made by
   RocksDB and lost its CURRENT: that is damage, not an empty data dir. */
static bool
s_lost_current(const char *db_path)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof p, "%s/IDENTITY", db_path);
    if (stat(p, &st) == 0)
        return true;
    snprintf(p, sizeof p, "%s/LOCK", db_path);
    return stat(p, &st) == 0;
}


/* The data dir's format: written at creation, checked at every open. A
   store without the key was made by format-1 code (one record per change). */
static crm_err_t
s_check_format(store_t *self, const char *dir, unsigned flags, char *errbuf)
{
    store_val_t v = {0};
    if (flags & STORE_CREATE) {
        self->format = STORE_FORMAT;
        return store_set_format(self, STORE_FORMAT, errbuf);
    }
    crm_err_t rc = store_get(self, STORE_CF_META, s_meta_format, sizeof s_meta_format - 1, &v);
    if (rc == CRM_OK && v.len == 4) {
        const uint8_t *u = (const uint8_t *)v.data;
        self->format = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
    } else if (rc == CRM_OK) {
        self->format = UINT32_MAX; /* not ours to read */
    }
    if (rc == CRM_ERR_NOT_FOUND)
        self->format = 1;
    store_val_release(&v);
    if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND) {
        snprintf(errbuf, CRM_ERRBUF, "cannot read the format of data dir '%s'", dir);
        return rc;
    }
    if (self->format == STORE_FORMAT || (flags & STORE_ANY_FORMAT))
        return CRM_OK;
    if (self->format == STORE_FORMAT_UPGRADING)
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' is being upgraded, or its upgrade stopped before the end: with "
                 "every crmd using it stopped, run 'crm-admin upgrade --data %s' (again) to "
                 "finish it",
                 dir, dir);
    else if (self->format < STORE_FORMAT)
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' has format %u and this OneView uses format %d: stop every crmd "
                 "using it, copy it (cp -a: this version's backup cannot read it), then run "
                 "'crm-admin upgrade --data %s'",
                 dir, self->format, STORE_FORMAT, dir);
    else
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' has format %u, made by a newer OneView (this one reads format "
                 "%d): run that version, or restore a backup made with this one",
                 dir, self->format, STORE_FORMAT);
    return CRM_ERR_FAILED_PRECONDITION;
}

uint32_t
store_format(const store_t *self)
{
    return self->format;
}

crm_err_t
store_set_format(store_t *self, uint32_t format, char *errbuf)
{
    uint8_t be[4] = {(uint8_t)(format >> 24), (uint8_t)(format >> 16), (uint8_t)(format >> 8),
                     (uint8_t)format};
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(self->db, wo, s_cf(self, STORE_CF_META), s_meta_format,
                   sizeof s_meta_format - 1, (const char *)be, sizeof be, &err);
    rocksdb_writeoptions_destroy(wo);
    s_cf_changed(1u << STORE_CF_META);
    if (err)
        return s_db_error(err, "cannot record the data dir's format", errbuf);
    self->format = format;
    return CRM_OK;
}

/* Write the sealed marker: a known text, sealed, fsynced. */
static crm_err_t
s_mark_sealed(store_t *self, char *errbuf)
{
    uint8_t sealed[sizeof s_sealed_check + SEAL_OVERHEAD];
    size_t n = seal_value(STORE_CF_META, s_meta_sealed, sizeof s_meta_sealed - 1, s_sealed_check,
                          sizeof s_sealed_check - 1, sealed);
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_put_cf(self->db, wo, s_cf(self, STORE_CF_META), s_meta_sealed,
                   sizeof s_meta_sealed - 1, (const char *)sealed, n, &err);
    rocksdb_writeoptions_destroy(wo);
    s_cf_changed(1u << STORE_CF_META);
    if (err)
        return s_db_error(err, "cannot mark the store as encrypted", errbuf);
    return CRM_OK;
}

/* Encryption at rest. A new store is sealed when its data dir has a master
   key file (crm-admin init makes one first); an existing one when it holds
   the sealed marker. Its key: DIR/master.key, or - for a copy of the data
   dir opened by the process that serves it (a checkpoint, a replica's
   fetched copy) - the key the process already uses. */
static crm_err_t
s_seal_setup(store_t *self, const char *dir, unsigned flags, char *errbuf)
{
    char path[PATH_MAX + 16];
    uint8_t master[CRM_KEY_BYTES];
    char why[CRM_ERRBUF] = "";
    snprintf(path, sizeof path, "%s/master.key", dir);
    bool have_file = access(path, F_OK) == 0;
    store_val_t mark = {0};
    crm_err_t rc = CRM_OK;
    if (!(flags & STORE_CREATE)) {
        rc = store_get(self, STORE_CF_META, s_meta_sealed, sizeof s_meta_sealed - 1, &mark);
        if (rc == CRM_ERR_NOT_FOUND)
            return CRM_OK; /* not sealed: made before format 6, or upgraded when it had no
                              master key; crm-admin upgrade seals it (store_open_wal) */
        if (rc != CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "cannot read data dir '%s'", dir);
            return rc;
        }
    } else if (!have_file) {
        return CRM_OK; /* a bare store (unit tests): values as they are */
    }
    if (have_file) {
        if ((rc = crm_keys_load_master(path, master, why)) == CRM_OK)
            rc = seal_use_key(master, why);
        sodium_memzero(master, sizeof master);
        if (rc != CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "data dir '%.100s': master key: %.180s", dir, why);
            goto done;
        }
    } else if (!seal_ready()) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' is encrypted and its master key file %s/master.key is missing: "
                 "copy the master.key of the data dir it came from there (mode 0600)",
                 dir, dir);
        rc = CRM_ERR_FAILED_PRECONDITION;
        goto done;
    }
    self->sealed = true;
    if (flags & STORE_CREATE) {
        rc = s_mark_sealed(self, errbuf);
        goto done;
    }
    size_t plen;
    if (!seal_open_value(STORE_CF_META, s_meta_sealed, sizeof s_meta_sealed - 1,
                         (uint8_t *)mark.data, mark.len, &plen) ||
        plen != sizeof s_sealed_check - 1 || memcmp(mark.data, s_sealed_check, plen)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' was encrypted with another master key than %s%s: use the "
                 "master.key it was made with",
                 dir, have_file ? dir : "this process's", have_file ? "/master.key" : "");
        rc = CRM_ERR_FAILED_PRECONDITION;
    }
done:
    store_val_release(&mark);
    return rc;
}

bool
store_sealed(const store_t *self)
{
    return self->sealed;
}

/* Seal what a store made before format 6 holds in clear (crm-admin upgrade).
   Every value that would be sealed is read raw and written back sealed, in
   fsynced batches; one that already opens (an earlier, interrupted run) is
   left. The marker goes last, so until then the store opens as unsealed and
   this can run again. Index entries are the caller's (records_reindex), and
   so is rewriting the table files that still hold values in clear
   (store_compact_all, after the index entries). */
crm_err_t
store_seal_all(store_t *self, const char *dir, uint64_t *count, char *errbuf)
{
    enum { BATCH_BYTES = 4 << 20 };
    char path[PATH_MAX + 16], why[CRM_ERRBUF] = "";
    uint8_t master[CRM_KEY_BYTES];
    *count = 0;
    if (self->sealed)
        return CRM_OK;
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (access(path, F_OK) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "data dir has no master key file %.200s", path);
        return CRM_ERR_NOT_FOUND;
    }
    crm_err_t rc = crm_keys_load_master(path, master, why);
    if (rc == CRM_OK)
        rc = seal_use_key(master, why);
    sodium_memzero(master, sizeof master);
    if (rc != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "data dir '%.100s': master key: %.180s", dir, why);
        return rc;
    }
    self->sealed = true; /* for s_sealed(); the marker says so on disk only at the end */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_total_order_seek(ro, 1);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    size_t cap = 0, batched = 0;
    uint8_t *buf = NULL;
    char *err = NULL;
    for (int cf = 0; cf < STORE_CF__COUNT && !err; cf++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(self->db, ro, s_cf(self, cf));
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && !err;
             rocksdb_iter_next(it)) {
            size_t klen, vlen, plen;
            const char *k = rocksdb_iter_key(it, &klen), *v = rocksdb_iter_value(it, &vlen);
            if (!s_sealed(self, (store_cf_t)cf, k, klen))
                continue;
            if (vlen + SEAL_OVERHEAD > cap) {
                cap = 2 * (vlen + SEAL_OVERHEAD);
                free(buf);
                buf = malloc(cap);
                CRM_ASSERT_ALLOC(buf);
            }
            memcpy(buf, v, vlen);
            if (seal_open_value((unsigned)cf, k, klen, buf, vlen, &plen))
                continue; /* sealed by an earlier run */
            size_t n = seal_value((unsigned)cf, k, klen, v, vlen, buf);
            rocksdb_writebatch_put_cf(wb, s_cf(self, cf), k, klen, (const char *)buf, n);
            (*count)++;
            if ((batched += klen + n) >= BATCH_BYTES) {
                rocksdb_write(self->db, wo, wb, &err);
                rocksdb_writebatch_clear(wb);
                batched = 0;
            }
        }
        if (!err)
            rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
    }
    if (!err && batched)
        rocksdb_write(self->db, wo, wb, &err);
    free(buf);
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    s_cf_changed((1u << STORE_CF__COUNT) - 1);
    if (err) {
        self->sealed = false;
        return s_db_error(err, "cannot encrypt the store", errbuf);
    }
    if ((rc = s_mark_sealed(self, errbuf)) != CRM_OK)
        self->sealed = false;
    return rc;
}

/* Rewrite every table file of every column family (memtables flushed first),
   so nothing deleted or overwritten stays on disk in an older file. */
crm_err_t
store_compact_all(store_t *self, char *errbuf)
{
    char *err = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int cf = 0; cf < STORE_CF__COUNT && !err; cf++)
        rocksdb_flush_cf(self->db, fo, s_cf(self, cf), &err);
    rocksdb_flushoptions_destroy(fo);
    if (err)
        return s_db_error(err, "cannot flush the store", errbuf);
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2); /* kForce */
    rocksdb_compactoptions_set_exclusive_manual_compaction(co, 1);
    for (int cf = 0; cf < STORE_CF__COUNT; cf++)
        rocksdb_compact_range_cf_opt(self->db, s_cf(self, cf), co, NULL, 0, NULL, 0);
    rocksdb_compactoptions_destroy(co);
    /* the C API's manual compaction returns no status: a failed one shows as
       a background error (and a database that no longer takes writes) */
    uint64_t bg = 0;
    if (rocksdb_property_int(self->db, "rocksdb.background-errors", &bg) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot tell whether rewriting the table files worked");
        return CRM_ERR_STORAGE;
    }
    if (bg > 0) {
        snprintf(errbuf, CRM_ERRBUF, "rewriting the table files failed (%" PRIu64
                 " background errors): see the data dir's db/LOG", bg);
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

crm_err_t
store_open(const char *dir, unsigned flags, store_t **out, char *errbuf)
{
    return store_open_wal(dir, flags, STORE_WAL_KEEP_S_DEFAULT, out, errbuf);
}

crm_err_t
store_open_wal(const char *dir, unsigned flags, uint64_t wal_keep_s, store_t **out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    struct stat st;
    store_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    pthread_rwlock_init(&self->reopen_lock, NULL);
    pthread_mutex_init(&self->health_lock, NULL);
    pthread_mutex_init(&self->read_error_lock, NULL);
    pthread_mutex_init(&self->views_lock, NULL);
    pthread_mutex_init(&self->hist_lock, NULL);
    *out = NULL;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' does not exist; create one with 'crm-admin init --data %s'", dir,
                 dir);
        rc = CRM_ERR_NOT_FOUND;
        goto cleanup;
    }
    if (snprintf(self->path, sizeof self->path, "%s/db", dir) >= (int)sizeof self->path) {
        snprintf(errbuf, CRM_ERRBUF, "data dir path '%s' is too long", dir);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    self->flags = flags;
    char mark[PATH_MAX + 32];
    snprintf(mark, sizeof mark, "%s/" STORE_RESTORE_MARK, dir);
    if (!(flags & STORE_RESTORING) && stat(mark, &st) == 0) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' holds a restore that did not finish (crm-admin restore was "
                 "stopped before the restored server began a history of its own): remove the "
                 "data dir and run the restore again",
                 dir);
        rc = CRM_ERR_FAILED_PRECONDITION;
        goto cleanup;
    }
    char current[PATH_MAX + 16];
    snprintf(current, sizeof current, "%s/CURRENT", self->path);
    bool exists = stat(current, &st) == 0;
    if ((flags & STORE_CREATE) && exists) {
        snprintf(errbuf, CRM_ERRBUF, "data dir '%s' already holds a database", dir);
        rc = CRM_ERR_ALREADY_EXISTS;
        goto cleanup;
    }
    if (!(flags & STORE_CREATE) && !exists && s_lost_current(self->path)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' is damaged: its database has no CURRENT file (db/CURRENT names "
                 "the live MANIFEST); restore it from a backup",
                 dir);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    if (!(flags & STORE_CREATE) && !exists) {
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' is not initialized; run 'crm-admin init --data %s' first", dir,
                 dir);
        rc = CRM_ERR_NOT_FOUND;
        goto cleanup;
    }
    /* a full disk would fail the open half-way (and RocksDB's LOG with it) */
    if ((rc = s_write_probe(dir, errbuf)) != CRM_OK) {
        size_t n = strlen(errbuf);
        snprintf(errbuf + n, CRM_ERRBUF - n, "; free space, then start again");
        goto cleanup;
    }

    self->opts = rocksdb_options_create();
    rocksdb_options_increase_parallelism(self->opts, 2);
    rocksdb_options_set_create_if_missing(self->opts, (flags & STORE_CREATE) != 0);
    rocksdb_options_set_create_missing_column_families(self->opts, (flags & STORE_CREATE) != 0);
    rocksdb_options_set_error_if_exists(self->opts, (flags & STORE_CREATE) != 0);
    rocksdb_options_set_max_open_files(self->opts, 512);
    /* RocksDB's own LOG: header lines at open only, bounded (see the banner) */
    rocksdb_options_set_info_log_level(self->opts, 5 /* HEADER_LEVEL */);
    rocksdb_options_set_max_log_file_size(self->opts, 1u << 20);
    rocksdb_options_set_keep_log_file_num(self->opts, 4);
    /* replicas read the WAL (store_wal_read): obsolete files go to db/archive
       and stay that long. TTL only, no size limit: RocksDB then checks every
       TTL/2 (with a size limit, only every 10 minutes) */
    rocksdb_options_set_WAL_ttl_seconds(self->opts, wal_keep_s);
    /* memory: memtables of all column families together at most this (RocksDB's default
       is 64 MiB per family and per memtable, unbounded in sum: a 100k-customer import
       raised crmd's RSS to 190 MB), plus the block cache */
    rocksdb_options_set_db_write_buffer_size(self->opts, STORE_MEMTABLES_BYTES);
    self->cache = rocksdb_cache_create_lru(64u << 20);
    self->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(self->table_opts, self->cache);
    rocksdb_block_based_options_set_filter_policy(self->table_opts,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(self->opts, self->table_opts);
    /* The indexes' table files and memtables also keep a bloom filter of each key's first
       STORE_TERM_PREFIX bytes: a blind term's posting list. A lookup of a term that is not
       there (a duplicate check of a new customer's phone, e-mail, name) then skips every
       file and memtable without it (store_term_iter_new). Every other iterator reads in
       total order (total_order_seek below), as without the filter. */
    self->idx_opts = rocksdb_options_create_copy(self->opts);
    rocksdb_options_set_prefix_extractor(
        self->idx_opts, rocksdb_slicetransform_create(NULL, s_term_state_free, s_term_prefix, s_term_in_domain,
                                                      s_term_in_range, s_term_prefix_name));
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(self->idx_opts, 0.02);
    /* The families read by key (s_read_by_key): a read looks in the memtables first, and
       most keys read are not there (written before the last flush). A bloom filter of
       whole keys lets such a read skip the memtable's skip list, which was 8 % of crmd's
       samples under crm-bench's mixed load at 100k (PERFORMANCE.md, "Point reads: a
       whole-key filter on the memtables"). Its size is a share of a family's
       write_buffer_size (64 MiB), allocated whole with each memtable: 0.005 is 2.7M bits
       (335 KiB of the memtables' shared budget), 10 a key for a full memtable of 250-byte
       entries (about 270,000 keys; 0.02, the first setting, took 1.3 MiB in each family's
       memtable, 8 MiB in all). Iterators do not use it. */
    self->key_opts = rocksdb_options_create_copy(self->opts);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(self->key_opts, 0.005);
    rocksdb_options_set_memtable_whole_key_filtering(self->key_opts, 1);

    if ((rc = s_db_open(self, errbuf)) != CRM_OK)
        goto cleanup;
    self->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(self->ropts, 1);
    self->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(self->wopts, (flags & STORE_SYNC) != 0);

    if ((rc = s_seal_setup(self, dir, flags, errbuf)) != CRM_OK)
        goto cleanup;
    atomic_store(&self->log_first, 1);
    atomic_store(&self->epoch, 1);
    atomic_store(&self->epoch_first, 1);
    if ((rc = s_meta_u64(self, s_meta_last_seq, &self->last_seq)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_log_first, &self->log_first)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_unique, &self->unique)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_epoch, &self->epoch)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_epoch_start, &self->epoch_start)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_epoch_first, &self->epoch_first)) != CRM_OK ||
        (rc = s_meta_u64(self, s_meta_fenced_by, &self->fenced_by)) != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "cannot read the sequence number in '%s'", dir);
        goto cleanup;
    }
    s_hist_load(self);
    if ((rc = s_check_format(self, dir, flags, errbuf)) != CRM_OK)
        goto cleanup;
    char keyfile[PATH_MAX + 16];
    snprintf(keyfile, sizeof keyfile, "%s/master.key", dir);
    if (!self->sealed && !(flags & (STORE_ANY_FORMAT | STORE_REPLICA | STORE_CREATE)) &&
        access(keyfile, F_OK) == 0)
        crm_log(CRM_LOG_WARN,
                "data dir '%s' has a master key but holds its values in clear: stop the server "
                "and run 'crm-admin upgrade --data %s' to encrypt them",
                dir, dir);
    *out = self;
    self = NULL;
cleanup:
    store_destroy(&self);
    return rc;
}

void
store_destroy(store_t **self_p)
{
    store_t *self = *self_p;
    if (!self)
        return;
    s_db_close(self);
    if (self->ropts)
        rocksdb_readoptions_destroy(self->ropts);
    if (self->wopts)
        rocksdb_writeoptions_destroy(self->wopts);
    if (self->opts)
        rocksdb_options_destroy(self->opts);
    if (self->idx_opts)
        rocksdb_options_destroy(self->idx_opts);
    if (self->key_opts)
        rocksdb_options_destroy(self->key_opts);
    if (self->table_opts)
        rocksdb_block_based_options_destroy(self->table_opts);
    if (self->cache)
        rocksdb_cache_destroy(self->cache);
    pthread_rwlock_destroy(&self->reopen_lock);
    pthread_mutex_destroy(&self->read_error_lock);
    pthread_mutex_destroy(&self->health_lock);
    pthread_mutex_destroy(&self->views_lock);
    pthread_mutex_destroy(&self->hist_lock);
    free(self->views);
    free(self);
    *self_p = NULL;
}

/* ==== Storage failures ==== */

crm_err_t
store_write_health(store_t *self, char *errbuf)
{
    return s_health(self, errbuf);
}

/* A commit failed with RocksDB error ERR (freed here): enter (or stay in) the
   failed state; log once per episode. Returns the code for the writers. */
static crm_err_t
s_write_failed(store_t *self, char *err, size_t mutations, char *errbuf)
{
    char text[CRM_ERRBUF];
    crm_err_t rc = s_db_error(err, "cannot write to the store", text);
    if (rc == CRM_ERR_STORAGE)
        rc = CRM_ERR_UNAVAILABLE;
    pthread_mutex_lock(&self->health_lock);
    bool first = self->write_rc == CRM_OK;
    if (first) {
        self->write_rc = rc;
        self->write_fail_since_us = (uint64_t)crm_time_mono_us();
        self->writes_refused = 0;
        snprintf(self->write_error, sizeof self->write_error,
                 "%.230s; writes refused until the disk takes them again (reads work)",
                 text);
    }
    self->writes_refused++;
    snprintf(errbuf, CRM_ERRBUF, "%s", self->write_error);
    rc = self->write_rc;
    pthread_mutex_unlock(&self->health_lock);
    if (first)
        crm_log(CRM_LOG_ERROR,
                "store: commit of %zu mutations failed, refusing writes until the disk takes "
                "writes again: %s",
                mutations, text);
    return rc;
}

crm_err_t
store_recover(store_t *self, char *errbuf)
{
    if (s_health(self, NULL) == CRM_OK && self->db)
        return CRM_OK;
    crm_err_t rc = s_write_probe(self->dir, errbuf);
    if (rc != CRM_OK)
        return rc;
    pthread_rwlock_wrlock(&self->reopen_lock);
    s_db_close(self);
    rc = s_db_open(self, errbuf);
    pthread_rwlock_unlock(&self->reopen_lock);
    pthread_mutex_lock(&self->health_lock);
    if (rc != CRM_OK) {
        bool first = !self->reopen_failed;
        self->reopen_failed = true;
        if (self->write_rc == CRM_OK) { /* keep refusing writes, with this reason */
            self->write_rc = rc;
            snprintf(self->write_error, sizeof self->write_error, "%s", errbuf);
        }
        pthread_mutex_unlock(&self->health_lock);
        if (first)
            crm_log(CRM_LOG_ERROR, "store: reopening after a write failure failed (retrying): %s",
                    errbuf);
        return rc;
    }
    self->reopen_failed = false;
    double secs = self->write_rc == CRM_OK
                      ? 0.0
                      : (double)((uint64_t)crm_time_mono_us() - self->write_fail_since_us) / 1e6;
    unsigned long long refused = (unsigned long long)self->writes_refused;
    self->write_rc = CRM_OK;
    self->write_error[0] = '\0';
    pthread_mutex_unlock(&self->health_lock);
    crm_log(CRM_LOG_INFO, "store: writes work again after %.1f s (%llu commits refused meanwhile)",
            secs, refused);
    return CRM_OK;
}

uint64_t
store_read_errors(store_t *self, char *errbuf)
{
    if (errbuf) {
        pthread_mutex_lock(&self->read_error_lock);
        snprintf(errbuf, CRM_ERRBUF, "%s", self->read_error);
        pthread_mutex_unlock(&self->read_error_lock);
    }
    return t_read_errors;
}

/* Is the value of KEY in CF sealed in this store? Not an index entry's (its
   value is empty: what it holds is its key, a blind term for personal data,
   records.c), nor a meta counter's. */
static bool
s_sealed(const store_t *self, store_cf_t cf, const void *key, size_t klen)
{
    return self->sealed && cf != STORE_CF_INDEXES &&
           !(cf == STORE_CF_META && s_meta_plain(key, klen));
}

/* A read found a value that does not open: damage, or another key's data. */
static void
s_open_failed(store_t *self, store_cf_t cf)
{
    pthread_mutex_lock(&self->read_error_lock);
    snprintf(self->read_error, sizeof self->read_error,
             "cannot read the store: a value in '%s' does not open with this data dir's master "
             "key (damaged, or written with another key)",
             s_cf_names[cf]);
    pthread_mutex_unlock(&self->read_error_lock);
    t_read_errors++;
    crm_log(CRM_LOG_ERROR, "store: a value in '%s' does not open with the master key",
            s_cf_names[cf]);
}

/* Open the sealed value OUT read for KEY in place; CRM_ERR_STORAGE if it does not open. */
static crm_err_t
s_open_val(store_t *self, store_cf_t cf, const void *key, size_t klen, store_val_t *out)
{
    if (!out->data)
        return CRM_ERR_NOT_FOUND;
    if (!s_sealed(self, cf, key, klen))
        return CRM_OK;
    size_t plen;
    if (seal_open_value((unsigned)cf, key, klen, (uint8_t *)out->data, out->len, &plen)) {
        out->len = plen;
        return CRM_OK;
    }
    s_open_failed(self, cf);
    store_val_release(out);
    return CRM_ERR_STORAGE;
}

crm_err_t
store_value_size(store_t *self, store_cf_t cf, const void *key, size_t klen, size_t *size)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *ps = NULL;
    s_perf_off();
    *size = 0;
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (self->db) /* pinned: its size without a copy of it */
        ps = rocksdb_get_pinned_cf(self->db, s_ropts(self), s_cf(self, cf), key, klen, &err);
    bool closed = self->db == NULL;
    if (ps)
        rocksdb_pinnableslice_value(ps, size);
    rocksdb_pinnableslice_destroy(ps);
    pthread_rwlock_unlock(&self->reopen_lock);
    if (closed)
        return CRM_ERR_UNAVAILABLE;
    if (err) {
        rocksdb_free(err);
        return CRM_ERR_STORAGE;
    }
    return ps ? CRM_OK : CRM_ERR_NOT_FOUND;
}

crm_err_t
store_get(store_t *self, store_cf_t cf, const void *key, size_t klen, store_val_t *out)
{
    char *err = NULL;
    s_perf_off();
    out->data = NULL;
    out->len = 0;
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (self->db)
        out->data =
            rocksdb_get_cf(self->db, s_ropts(self), s_cf(self, cf), key, klen, &out->len, &err);
    bool closed = self->db == NULL;
    pthread_rwlock_unlock(&self->reopen_lock);
    if (closed)
        return CRM_ERR_UNAVAILABLE;
    if (err) {
        crm_log(CRM_LOG_ERROR, "store: get from '%s' failed: %s", s_cf_names[cf], err);
        rocksdb_free(err);
        out->data = NULL;
        out->len = 0;
        return CRM_ERR_STORAGE;
    }
    return s_open_val(self, cf, key, klen, out);
}

crm_err_t
store_get_many(store_t *self, store_cf_t cf, const char *const *keys, const size_t *lens,
               size_t n, store_val_t *out, crm_err_t *rcs)
{
    if (n == 0)
        return CRM_OK;
    rocksdb_pinnableslice_t **vals = calloc(n, sizeof *vals);
    char **errs = calloc(n, sizeof *errs);
    CRM_ASSERT(vals && errs);
    s_perf_off();
    for (size_t i = 0; i < n; i++) {
        out[i].data = NULL;
        out[i].len = 0;
        rcs[i] = CRM_ERR_NOT_FOUND;
    }
    pthread_rwlock_rdlock(&self->reopen_lock);
    bool closed = self->db == NULL;
    if (!closed) /* the keys come sorted (ids in order): false, RocksDB sorts them anyway */
        rocksdb_batched_multi_get_cf(self->db, s_ropts(self), s_cf(self, cf), n, keys, lens,
                                     vals, errs, false);
    /* copies taken (to open in place) and pins dropped before a reopen may close the
       database under them */
    for (size_t i = 0; i < n && !closed; i++) {
        if (!vals[i])
            continue;
        size_t len;
        const char *v = rocksdb_pinnableslice_value(vals[i], &len);
        out[i].data = malloc(len ? len : 1);
        CRM_ASSERT_ALLOC(out[i].data);
        memcpy(out[i].data, v, len);
        out[i].len = len;
        rocksdb_pinnableslice_destroy(vals[i]);
        vals[i] = NULL;
    }
    pthread_rwlock_unlock(&self->reopen_lock);
    crm_err_t rc = closed ? CRM_ERR_UNAVAILABLE : CRM_OK;
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (closed) {
            rcs[i] = CRM_ERR_UNAVAILABLE;
        } else if (errs[i]) { /* as store_get() says it, once for the batch */
            if (failed++ == 0)
                crm_log(CRM_LOG_ERROR, "store: get from '%s' failed: %s", s_cf_names[cf],
                        errs[i]);
            rocksdb_free(errs[i]);
            rcs[i] = rc = CRM_ERR_STORAGE;
        } else if (out[i].data) {
            rcs[i] = s_open_val(self, cf, keys[i], lens[i], &out[i]);
            if (rcs[i] != CRM_OK && rc == CRM_OK)
                rc = rcs[i];
        }
    }
    if (failed > 1)
        crm_log(CRM_LOG_ERROR, "store: %zu of %zu gets from '%s' in one batch failed", failed,
                n, s_cf_names[cf]);
    free(vals);
    free(errs);
    return rc;
}

uint64_t
store_memtables_bytes(store_t *self, store_cf_t cf)
{
    uint64_t v = 0;
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (self->db &&
        rocksdb_property_int_cf(self->db, s_cf(self, cf), "rocksdb.cur-size-all-mem-tables",
                                &v) != 0)
        v = 0;
    pthread_rwlock_unlock(&self->reopen_lock);
    return v;
}

crm_err_t
store_have_many(store_t *self, store_cf_t cf, const char *const *keys, const size_t *lens,
                size_t n, bool *found)
{
    if (n == 0)
        return CRM_OK;
    rocksdb_pinnableslice_t **vals = calloc(n, sizeof *vals);
    char **errs = calloc(n, sizeof *errs);
    CRM_ASSERT(vals && errs);
    s_perf_off();
    pthread_rwlock_rdlock(&self->reopen_lock);
    bool closed = self->db == NULL;
    if (!closed)
        rocksdb_batched_multi_get_cf(self->db, s_ropts(self), s_cf(self, cf), n, keys, lens,
                                     vals, errs, false);
    for (size_t i = 0; i < n; i++) { /* pins dropped before a reopen may close the database */
        found[i] = !closed && vals[i] != NULL && errs[i] == NULL;
        if (vals[i])
            rocksdb_pinnableslice_destroy(vals[i]);
    }
    pthread_rwlock_unlock(&self->reopen_lock);
    crm_err_t rc = closed ? CRM_ERR_UNAVAILABLE : CRM_OK;
    for (size_t i = 0; i < n; i++) {
        if (errs[i]) {
            if (rc == CRM_OK) {
                crm_log(CRM_LOG_ERROR, "store: get from '%s' failed: %s", s_cf_names[cf],
                        errs[i]);
                pthread_mutex_lock(&self->read_error_lock);
                snprintf(self->read_error, sizeof self->read_error,
                         "cannot read the store: %s", errs[i]);
                pthread_mutex_unlock(&self->read_error_lock);
            }
            rocksdb_free(errs[i]);
            t_read_errors++;
            rc = CRM_ERR_STORAGE;
        }
    }
    free(vals);
    free(errs);
    return rc;
}

void
store_val_release(store_val_t *val)
{
    if (val && val->data)
        rocksdb_free(val->data);
    if (val) {
        val->data = NULL;
        val->len = 0;
    }
}

uint64_t
store_next_unique(store_t *self)
{
    return atomic_fetch_add(&self->unique, 1) + 1;
}

uint64_t
store_last_seq(const store_t *self)
{
    return atomic_load(&self->last_seq);
}

uint64_t
store_changelog_first(const store_t *self)
{
    return atomic_load(&self->log_first);
}

crm_err_t
store_changelog_trim(store_t *self, uint64_t keep_from, char *errbuf)
{
    s_perf_off();
    if (keep_from <= store_changelog_first(self))
        return CRM_OK;
    uint8_t from[8], to[8], first[8];
    store_put_be64(from, 0);
    store_put_be64(to, keep_from);
    store_put_be64(first, keep_from);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range_cf(b, s_cf(self, STORE_CF_CHANGELOG), (const char *)from, 8,
                                       (const char *)to, 8);
    rocksdb_writebatch_put_cf(b, s_cf(self, STORE_CF_META), s_meta_log_first,
                              sizeof s_meta_log_first - 1, (const char *)first, 8);
    char *err = NULL;
    if (store_readonly(self)) { /* a replica's trims arrive through the log */
        rocksdb_writebatch_destroy(b);
        snprintf(errbuf, CRM_ERRBUF, "a replica does not trim its change log itself");
        return CRM_ERR_READONLY;
    }
    if (s_health(self, NULL) != CRM_OK || !self->db) {
        rocksdb_writebatch_destroy(b);
        snprintf(errbuf, CRM_ERRBUF, "cannot trim the change log while writes fail");
        return CRM_ERR_UNAVAILABLE;
    }
    rocksdb_write(self->db, self->wopts, b, &err);
    rocksdb_writebatch_destroy(b);
    s_cf_changed(1u << STORE_CF_CHANGELOG);
    if (err)
        return s_write_failed(self, err, 0, errbuf);
    atomic_store(&self->log_first, keep_from);
    return CRM_OK;
}

crm_err_t
store_changelog_get(store_t *self, uint64_t seq, store_val_t *out)
{
    uint8_t key[8];
    store_put_be64(key, seq);
    return store_get(self, STORE_CF_CHANGELOG, key, sizeof key, out);
}

/* ==== Iterators ==== */

struct store_iter {
    rocksdb_iterator_t *it; /* NULL if the database is closed (a reopen failed) */
    store_t *store;
    store_cf_t cf;
    bool reported;          /* its error was counted already */
    uint8_t *vbuf;          /* the current value, opened (a sealed store) */
    size_t vcap;
    rocksdb_readoptions_t *ro; /* its own (store_term_iter_new), or NULL */
    /* a term iterator's term: the first STORE_TERM_PREFIX bytes of the key it was
       sought to. RocksDB bounds the tables' and memtables' side by the prefix, but not
       the group's staged keys, so the bound is kept here for those */
    char term[STORE_TERM_PREFIX];
    bool term_set;
};

/* An iterator stopped: if by an error, log it and count it once (the count
   makes dispatch_process() fail the request). */
static void
s_iter_check(store_iter_t *it)
{
    char *err = NULL;
    if (it->reported)
        return;
    if (it->it)
        rocksdb_iter_get_error(it->it, &err);
    else
        err = strdup("the store is closed after a failed reopen");
    if (!err)
        return;
    it->reported = true;
    store_t *st = it->store;
    pthread_mutex_lock(&st->read_error_lock);
    snprintf(st->read_error, sizeof st->read_error, "cannot read the store: %s", err);
    pthread_mutex_unlock(&st->read_error_lock);
    t_read_errors++;
    crm_log(CRM_LOG_ERROR, "store: a scan stopped on an error: %s", err);
    if (it->it)
        rocksdb_free(err);
    else
        free(err);
}

store_iter_t *
store_iter_new(store_t *self, store_cf_t cf)
{
    s_perf_off();
    store_iter_t *it = calloc(1, sizeof *it);
    CRM_ASSERT_ALLOC(it);
    it->store = self;
    it->cf = cf;
    if (self->db)
        it->it = rocksdb_create_iterator_cf(self->db, s_ropts(self), s_cf(self, cf));
    return it;
}

uint64_t
store_view_begin(store_t *self)
{
    s_perf_off();
    CRM_ASSERT(!t_view_ropts);
    pthread_rwlock_rdlock(&self->reopen_lock);
    /* the sequence number first: what the snapshot holds is at least this */
    uint64_t seq = atomic_load(&self->last_seq);
    t_view_seq = seq;
    if (!self->db)
        return seq; /* reads answer UNAVAILABLE, as without a view */
    t_view_snap = rocksdb_create_snapshot(self->db);
    t_view_ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(t_view_ropts, t_view_snap);
    rocksdb_readoptions_set_fill_cache(t_view_ropts, 0); /* a scan must not evict the hot set */
    rocksdb_readoptions_set_total_order_seek(t_view_ropts, 1);
    return seq;
}

bool
store_in_view(void)
{
    return t_view_ropts != NULL;
}

uint64_t
store_view_seq(void)
{
    return t_view_seq;
}

crm_err_t
store_digest(store_t *self, uint8_t out[32], uint64_t *keys, uint64_t *last_seq, char *errbuf)
{
    uint64_t errors = store_read_errors(self, NULL);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    *keys = 0;
    for (int cf = 0; cf < STORE_CF__COUNT; cf++) {
        const char *name = s_cf_names[cf];
        crypto_generichash_update(&h, (const unsigned char *)name, strlen(name) + 1);
        store_iter_t *it = store_iter_new(self, (store_cf_t)cf);
        for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
            size_t klen, vlen;
            const char *k = store_iter_key(it, &klen);
            const char *v = store_iter_value(it, &vlen);
            uint8_t lens[16];
            store_put_be64(lens, klen);
            store_put_be64(lens + 8, vlen);
            crypto_generichash_update(&h, lens, sizeof lens);
            crypto_generichash_update(&h, (const unsigned char *)k, klen);
            crypto_generichash_update(&h, (const unsigned char *)v, vlen);
            (*keys)++;
        }
        store_iter_destroy(&it);
    }
    crypto_generichash_final(&h, out, 32);
    _Atomic uint64_t seq = 0;
    crm_err_t rc = s_meta_u64(self, s_meta_last_seq, &seq);
    *last_seq = atomic_load(&seq);
    if (rc == CRM_OK && store_read_errors(self, errbuf) != errors)
        rc = CRM_ERR_STORAGE;
    else if (rc != CRM_OK)
        snprintf(errbuf, CRM_ERRBUF, "cannot read the change-log sequence number");
    return rc;
}

void
store_keep_views(store_t *self, int keep_ms, size_t max)
{
    CRM_ASSERT(!self->views && max >= 2);
    self->views = calloc(max, sizeof *self->views);
    CRM_ASSERT_ALLOC(self->views);
    self->views_cap = max;
    self->views_keep_us = (int64_t)keep_ms * 1000;
}

/* Switch the thread's view to SNAP (taken over). */
static void
s_view_switch(store_t *self, const rocksdb_snapshot_t *snap)
{
    rocksdb_release_snapshot(self->db, t_view_snap);
    t_view_snap = snap;
    rocksdb_readoptions_set_snapshot(t_view_ropts, t_view_snap);
}

crm_err_t
store_view_at(store_t *self, uint64_t at, int wait_ms, uint64_t *wal_seq, char *errbuf)
{
    CRM_ASSERT(t_view_ropts || !self->db);
    if (!self->db) {
        snprintf(errbuf, CRM_ERRBUF, "the store is being reopened; try again");
        return CRM_ERR_UNAVAILABLE;
    }
    int64_t deadline = crm_time_mono_us() + (int64_t)wait_ms * 1000;
    for (;;) {
        const rocksdb_snapshot_t *snap = NULL;
        pthread_mutex_lock(&self->views_lock);
        for (size_t i = 0; at && i < self->views_n && !snap; i++) {
            struct s_kept_view *v = &self->views[(self->views_head + i) % self->views_cap];
            if (v->seq == at && v->snap) {
                snap = v->snap;
                v->snap = NULL;
            }
        }
        uint64_t oldest = self->views_n ? self->views[self->views_head].seq : 0;
        pthread_mutex_unlock(&self->views_lock);
        if (snap) {
            s_view_switch(self, snap);
            *wal_seq = at;
            return CRM_OK;
        }
        /* a snapshot between two equal readings of the latest number is at it */
        uint64_t latest = rocksdb_get_latest_sequence_number(self->db);
        if (!at || at == latest) {
            snap = rocksdb_create_snapshot(self->db);
            if (rocksdb_get_latest_sequence_number(self->db) == latest) {
                s_view_switch(self, snap);
                *wal_seq = latest;
                return CRM_OK;
            }
            rocksdb_release_snapshot(self->db, snap);
            continue;
        }
        if (at < latest) {
            if (oldest && at >= oldest)
                snprintf(errbuf, CRM_ERRBUF,
                         "WAL sequence number %llu does not end a batch here (the primary's "
                         "digest names one that does)",
                         (unsigned long long)at);
            else
                snprintf(errbuf, CRM_ERRBUF,
                         "this server is past WAL sequence number %llu (it is at %llu)%s",
                         (unsigned long long)at, (unsigned long long)latest,
                         self->views_keep_us ? " and keeps views of the last few seconds only"
                                             : "; digest the server that is behind with --at");
            return CRM_ERR_FAILED_PRECONDITION;
        }
        if (!self->views_keep_us) { /* a primary: only its own writes would move it there */
            snprintf(errbuf, CRM_ERRBUF,
                     "this server is at WAL sequence number %llu, not yet at %llu",
                     (unsigned long long)latest, (unsigned long long)at);
            return CRM_ERR_FAILED_PRECONDITION;
        }
        if (crm_time_mono_us() >= deadline) {
            snprintf(errbuf, CRM_ERRBUF,
                     "this server did not reach WAL sequence number %llu within %.1f s (it is "
                     "at %llu): is that the primary's number?",
                     (unsigned long long)at, wait_ms / 1000.0, (unsigned long long)latest);
            return CRM_ERR_UNAVAILABLE;
        }
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
    }
}

void
store_view_end(store_t *self)
{
    if (t_view_ropts) {
        rocksdb_readoptions_destroy(t_view_ropts);
        rocksdb_release_snapshot(self->db, t_view_snap);
        t_view_ropts = NULL;
        t_view_snap = NULL;
    }
    pthread_rwlock_unlock(&self->reopen_lock);
}

store_iter_t *
store_group_iter_new(store_group_t *g, store_cf_t cf)
{
    s_perf_off();
    store_iter_t *it = calloc(1, sizeof *it);
    CRM_ASSERT_ALLOC(it);
    store_t *st = g->store;
    it->store = st;
    it->cf = cf;
    if (store_group_dirty(g))
        g->touches++; /* what it sees may be uncommitted */
    if (!st->db)
        return it;
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(st->db, st->ropts, s_cf(st, cf));
    /* takes BASE over */
    it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(g->batch, base, s_cf(st, cf));
    return it;
}

store_iter_t *
store_term_iter_new(store_t *self, store_group_t *g)
{
    s_perf_off();
    store_iter_t *it = calloc(1, sizeof *it);
    CRM_ASSERT_ALLOC(it);
    it->store = self;
    it->cf = STORE_CF_INDEXES;
    if (g && store_group_dirty(g))
        g->touches++; /* what it sees may be uncommitted */
    if (!self->db)
        return it;
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_prefix_same_as_start(it->ro, 1);
    if (!g && t_view_ropts) { /* within a view: as of its snapshot */
        rocksdb_readoptions_set_snapshot(it->ro, t_view_snap);
        rocksdb_readoptions_set_fill_cache(it->ro, 0);
    }
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(self->db, it->ro, s_cf(self, it->cf));
    it->it = g ? rocksdb_writebatch_wi_create_iterator_with_base_cf(g->batch, base,
                                                                    s_cf(self, it->cf))
               : base;
    return it;
}

/* A term iterator keeps the term of the key it is sought to (store_iter_valid). */
static void
s_iter_term(store_iter_t *it, const void *key, size_t klen)
{
    if (!it->ro)
        return;
    CRM_ASSERT(klen >= STORE_TERM_PREFIX);
    memcpy(it->term, key, STORE_TERM_PREFIX);
    it->term_set = true;
}

void
store_iter_seek(store_iter_t *it, const void *key, size_t klen)
{
    s_iter_term(it, key, klen);
    if (it->it)
        rocksdb_iter_seek(it->it, key, klen);
}

bool
store_iter_valid(const store_iter_t *it)
{
    if (it->it && rocksdb_iter_valid(it->it)) {
        if (!it->term_set)
            return true;
        size_t klen;
        const char *k = rocksdb_iter_key(it->it, &klen);
        return klen >= STORE_TERM_PREFIX && !memcmp(k, it->term, STORE_TERM_PREFIX);
    }
    s_iter_check((store_iter_t *)it); /* not a const object: made by store_iter_new */
    return false;
}

const char *
store_iter_key(const store_iter_t *it, size_t *klen)
{
    return rocksdb_iter_key(it->it, klen);
}

const char *
store_iter_value(const store_iter_t *it, size_t *vlen)
{
    const char *v = rocksdb_iter_value(it->it, vlen);
    size_t klen;
    const char *k = rocksdb_iter_key(it->it, &klen);
    if (!s_sealed(it->store, it->cf, k, klen))
        return v;
    store_iter_t *self = (store_iter_t *)it; /* a buffer of its own: made by store_iter_new */
    if (self->vcap < *vlen) {
        free(self->vbuf);
        self->vcap = *vlen < 256 ? 256 : *vlen;
        self->vbuf = malloc(self->vcap);
        CRM_ASSERT_ALLOC(self->vbuf);
    }
    memcpy(self->vbuf, v, *vlen);
    size_t plen;
    if (!seal_open_value((unsigned)it->cf, k, klen, self->vbuf, *vlen, &plen)) {
        /* a storage error, not an empty value: NULL, and counted, so that the
           request fails; a background pass may step over it */
        s_open_failed(it->store, it->cf);
        *vlen = 0;
        return NULL;
    }
    *vlen = plen;
    return (const char *)self->vbuf;
}

void
store_iter_next(store_iter_t *it)
{
    rocksdb_iter_next(it->it);
}

void
store_iter_seek_before(store_iter_t *it, const void *key, size_t klen)
{
    s_iter_term(it, key, klen);
    if (!it->it)
        return;
    rocksdb_iter_seek_for_prev(it->it, key, klen);
    /* seek_for_prev lands on a key <= KEY: step off an exact match */
    size_t n;
    const char *k = rocksdb_iter_valid(it->it) ? rocksdb_iter_key(it->it, &n) : NULL;
    if (k && n == klen && !memcmp(k, key, klen))
        rocksdb_iter_prev(it->it);
}

void
store_iter_prev(store_iter_t *it)
{
    rocksdb_iter_prev(it->it);
}

void
store_iter_destroy(store_iter_t **it_p)
{
    store_iter_t *it = *it_p;
    if (!it)
        return;
    if (it->it)
        rocksdb_iter_destroy(it->it);
    if (it->ro)
        rocksdb_readoptions_destroy(it->ro);
    if (it->vbuf)
        sodium_memzero(it->vbuf, it->vcap);
    free(it->vbuf);
    free(it);
    *it_p = NULL;
}

/* ==== Group commit ==== */

store_group_t *
store_group_new(store_t *store)
{
    store_group_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    /* overwrite_key off: each staged entry is only inserted into the index, not first
       looked up to replace the one before it (8.7 % of crmd's samples during an import);
       reads and iterators through the batch take a key's newest entry (RocksDB >= 6.20) */
    self->batch = rocksdb_writebatch_wi_create(0, 0);
    self->next_seq = store_last_seq(store) + 1;
    rocksdb_writebatch_wi_data(self->batch, &self->header);
    self->sent_bytes = self->header;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CRM_ASSERT(self->efd >= 0);
    return self;
}

/* Entries staged and not yet handed to a commit. */
static bool
s_staged(store_group_t *self)
{
    return rocksdb_writebatch_wi_count(self->batch) > self->sent_count;
}

/* Empty the batch: everything in it is committed, or given up. */
static void
s_group_clear(store_group_t *self)
{
    rocksdb_writebatch_wi_clear(self->batch);
    self->sent_bytes = self->header;
    self->sent_count = 0;
    self->landed_count = 0;
    self->ended = 0;
    self->save_points = 0;
    self->staged_cfs = 0;
    self->fail_rc = CRM_OK;
}

static void *
s_committer(void *arg)
{
    store_group_t *self = arg;
    store_t *st = self->store;
    s_perf_off();
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->job.buf && !self->stop)
            pthread_cond_wait(&self->cond, &self->lock);
        if (!self->job.buf)
            break;
        s_job_t taken = self->job;
        self->job.buf = NULL;
        pthread_mutex_unlock(&self->lock);
        rocksdb_writebatch_t *job = s_job_batch(&taken); /* sorted here, off the server thread */
        char *err = NULL;
        pthread_rwlock_rdlock(&st->reopen_lock);
        if (st->db)
            rocksdb_write(st->db, st->wopts, job, &err);
        else /* not reached: commits start only while the database is open */
            err = strdup("the database is closed");
        pthread_rwlock_unlock(&st->reopen_lock);
        rocksdb_writebatch_destroy(job);
        pthread_mutex_lock(&self->lock);
        self->job_err = err;
        self->job_done = true;
        atomic_store(&self->landed, true);
        pthread_cond_broadcast(&self->cond);
        uint64_t one = 1;
        ssize_t n = write(self->efd, &one, sizeof one);
        (void)n; /* the counter cannot overflow: read after every job */
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

void
store_group_destroy(store_group_t **self_p)
{
    store_group_t *self = *self_p;
    if (!self)
        return;
    if (self->thread_started) { /* a write in flight finishes first */
        pthread_mutex_lock(&self->lock);
        self->stop = true;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    free(self->job_err); /* from RocksDB: malloc'ed */
    close(self->efd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    rocksdb_writebatch_wi_destroy(self->batch);
    free(self);
    *self_p = NULL;
}

/* Numbers handed out that the store's count does not have yet: staged, or in a commit in
   flight. None: the next is the store's count + 1 (a commit in flight of unnumbered
   entries alone, such as a promotion's audit entry, does not keep a stale one). */
static bool
s_numbered(const store_group_t *self)
{
    return self->ended || (self->in_flight && self->flight_ended);
}

void
store_group_begin(store_group_t *self)
{
    /* nothing numbered and uncommitted: number from the store's own count,
       which a replica's follower advanced meanwhile (and a promotion then
       continues from). Entries staged outside a mutation (an audit entry of
       the promotion itself) take no number, so they do not stop this. */
    if (!s_numbered(self))
        self->next_seq = store_last_seq(self->store) + 1;
    rocksdb_writebatch_wi_set_save_point(self->batch);
    self->save_points++;
}

void
store_group_put(store_group_t *self, store_cf_t cf, const void *key, size_t klen, const void *val,
                size_t vlen)
{
    self->touches++;
    self->staged_cfs |= 1u << cf;
    if (!s_sealed(self->store, cf, key, klen)) {
        rocksdb_writebatch_wi_put_cf(self->batch, s_cf(self->store, cf), key, klen, val, vlen);
        return;
    }
    uint8_t small[1024], *buf = vlen + SEAL_OVERHEAD <= sizeof small ? small
                                                                     : malloc(vlen + SEAL_OVERHEAD);
    CRM_ASSERT_ALLOC(buf);
    size_t n = seal_value((unsigned)cf, key, klen, val, vlen, buf);
    rocksdb_writebatch_wi_put_cf(self->batch, s_cf(self->store, cf), key, klen, (const char *)buf,
                                 n);
    if (buf != small)
        free(buf);
}

void
store_group_delete(store_group_t *self, store_cf_t cf, const void *key, size_t klen)
{
    self->touches++;
    self->staged_cfs |= 1u << cf;
    rocksdb_writebatch_wi_delete_cf(self->batch, s_cf(self->store, cf), key, klen);
}

crm_err_t
store_group_get(store_group_t *self, store_cf_t cf, const void *key, size_t klen, store_val_t *out)
{
    char *err = NULL;
    store_t *st = self->store;
    s_perf_off();
    if (store_group_dirty(self))
        self->touches++; /* the answer may come from uncommitted state */
    out->data = NULL;
    out->len = 0;
    if (!st->db)
        return CRM_ERR_UNAVAILABLE;
    out->data = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        self->batch, st->db, st->ropts, s_cf(st, cf), key, klen, &out->len, &err);
    if (err) {
        crm_log(CRM_LOG_ERROR, "store: get from '%s' failed: %s", s_cf_names[cf], err);
        rocksdb_free(err);
        out->data = NULL;
        out->len = 0;
        return CRM_ERR_STORAGE;
    }
    return s_open_val(st, cf, key, klen, out);
}

uint64_t
store_group_end(store_group_t *self, const void *event, size_t elen)
{
    uint8_t key[8];
    uint64_t seq = self->next_seq++;
    store_put_be64(key, seq);
    store_group_put(self, STORE_CF_CHANGELOG, key, sizeof key, event, elen);
    self->ended++;
    return seq;
}

void
store_group_abort(store_group_t *self)
{
    char *err = NULL;
    rocksdb_writebatch_wi_rollback_to_save_point(self->batch, &err);
    /* Only fails without a save point: a broken begin/abort pairing. */
    CRM_ASSERT(err == NULL);
    self->save_points--;
}

void
store_group_mark(store_group_t *self, store_group_mark_t *mark)
{
    mark->next_seq = self->next_seq;
    mark->ended = self->ended;
    mark->save_points = self->save_points;
}

bool
store_group_undo(store_group_t *self, const store_group_mark_t *mark)
{
    if (self->save_points == mark->save_points)
        return true; /* no mutation since (or rolled back already) */
    /* each mutation begun since left its save point (an ended one keeps it):
       rolling back to each in turn ends at the first one's. Each rollback
       rebuilds the batch's index, so a request of many mutations (an import
       of a thousand rows) is not taken back that way: its group fails. */
    if (self->save_points - mark->save_points > STORE_UNDO_MAX)
        return false;
    while (self->save_points > mark->save_points) {
        char *err = NULL;
        rocksdb_writebatch_wi_rollback_to_save_point(self->batch, &err);
        CRM_ASSERT(err == NULL);
        self->save_points--;
    }
    self->ended = mark->ended;
    /* the numbers go back; none numbered: from the store's count (begin) */
    self->next_seq = s_numbered(self) ? mark->next_seq : store_last_seq(self->store) + 1;
    return true;
}

size_t
store_group_count(const store_group_t *self)
{
    return self->ended;
}

uint64_t
store_group_touches(const store_group_t *self)
{
    return self->touches;
}



bool
store_group_dirty(store_group_t *self)
{
    return rocksdb_writebatch_wi_count(self->batch) > self->landed_count;
}

/* Ready the staged entries for their commit: the meta entries that go with
   them, then the checks that refuse a commit at once. On a refusal the
   batch is emptied (nothing is in flight then: what it held before the
   staged entries is committed) and the sequence numbers are given back. */
static crm_err_t
s_commit_prepare(store_group_t *self, char *errbuf)
{
    store_t *st = self->store;
    crm_err_t rc = CRM_OK;
    CRM_ASSERT(!self->in_flight);
    if (self->ended) {
        uint8_t last[8];
        store_put_be64(last, self->next_seq - 1);
        store_group_put(self, STORE_CF_META, s_meta_last_seq, sizeof s_meta_last_seq - 1, last,
                        sizeof last);
    }
    /* every unique number handed out so far is below this, on disk with the
       entries that used it: a restart never hands one out again */
    uint8_t unique[8];
    store_put_be64(unique, atomic_load(&st->unique));
    store_group_put(self, STORE_CF_META, s_meta_unique, sizeof s_meta_unique - 1, unique,
                    sizeof unique);
    if (store_readonly(st)) { /* a replica writes only what it is shipped */
        rc = CRM_ERR_READONLY;
        snprintf(errbuf, CRM_ERRBUF, "this server is read-only (a replica, or fenced)");
        crm_log(CRM_LOG_ERROR, "store: a read-only store refused a commit (%zu mutations)",
                self->ended);
    } else if (self->fail_rc != CRM_OK) { /* a mutation in it was based on a cut-short read */
        rc = self->fail_rc;
        snprintf(errbuf, CRM_ERRBUF, "%s", self->fail_text);
    } else if (!st->db) {
        rc = CRM_ERR_UNAVAILABLE;
        snprintf(errbuf, CRM_ERRBUF, "the store is being reopened after a write failure");
    } else {
        /* refused at once, as RocksDB would; store_recover() lifts this */
        rc = s_health_count(st, errbuf, true);
    }
    if (rc != CRM_OK) {
        s_group_clear(self);
        self->next_seq = store_last_seq(st) + 1; /* give the numbers back */
    }
    return rc;
}

/* One record of a WriteBatch representation: where it is, and its column family and key. */
typedef struct {
    const uint8_t *key;
    uint32_t klen, cf;
    size_t off, len;
    size_t order; /* its place in the batch: same-key records keep their order */
} s_record_t;

static const uint8_t *
s_varint32(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    *v = 0;
    for (int shift = 0; shift <= 28 && p < end; shift += 7) {
        uint8_t b = *p++;
        *v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return p;
    }
    return NULL;
}

/* The records of REP[0..LEN) (no header), into RECS (N of them). Only the
   kinds a group stages are known - a put or a delete, in the default column
   family or another (db/dbformat.h: kTypeDeletion 0, kTypeValue 1,
   kTypeColumnFamilyDeletion 4, kTypeColumnFamilyValue 5); false on anything
   else, and the batch is then written as staged. */
static bool
s_batch_records(const uint8_t *rep, size_t len, s_record_t *recs, size_t n)
{
    const uint8_t *p = rep, *end = rep + len;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *start = p;
        if (p >= end)
            return false;
        uint8_t tag = *p++;
        uint32_t cf = 0, klen, vlen;
        if (tag > 5 || tag == 2 || tag == 3)
            return false;
        if ((tag == 4 || tag == 5) && !(p = s_varint32(p, end, &cf)))
            return false;
        if (!(p = s_varint32(p, end, &klen)) || (size_t)(end - p) < klen)
            return false;
        recs[i].key = p;
        recs[i].klen = klen;
        p += klen;
        if (tag == 1 || tag == 5) {
            if (!(p = s_varint32(p, end, &vlen)) || (size_t)(end - p) < vlen)
                return false;
            p += vlen;
        }
        recs[i].cf = cf;
        recs[i].off = (size_t)(start - rep);
        recs[i].len = (size_t)(p - start);
        recs[i].order = i;
    }
    return p == end;
}

static int
s_record_cmp(const void *a, const void *b)
{
    const s_record_t *x = a, *y = b;
    if (x->cf != y->cf)
        return x->cf < y->cf ? -1 : 1;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    if (c == 0 && x->klen != y->klen)
        c = x->klen < y->klen ? -1 : 1;
    if (c == 0 && x->order != y->order)
        c = x->order < y->order ? -1 : 1;
    return c;
}

/* The staged entries as a batch of their own (a copy, to be sorted by
   s_job_batch on the thread that writes it): the group's representation
   from SENT_BYTES on, under a header counting them. RocksDB's WriteBatch
   representation (db/write_batch.cc) is a fixed64 sequence number, a
   fixed32 count, then the records; each record is self-delimiting.

   The records go in sorted by column family and key. A memtable insert
   (InlineSkipList::Insert) starts its search from where the previous one in
   the same column family ended, so a sorted batch costs O(log D) per key,
   D being the distance between neighbours, against O(log N) from the top
   of the list for keys in the order they were staged: the ~40 index entries
   of a customer scatter over the whole key space. Records of one key keep
   their order (the sort's last tie-break), so the result is the same. */
static s_job_t
s_staged_batch(store_group_t *self, size_t *size, int *count)
{
    size_t all;
    const char *rep = rocksdb_writebatch_wi_data(self->batch, &all);
    *size = all;
    *count = rocksdb_writebatch_wi_count(self->batch);
    CRM_ASSERT(self->header == 12 && all >= self->sent_bytes && *count > self->sent_count);
    size_t body = all - self->sent_bytes;
    s_job_t job = {malloc(self->header + body), self->header + body};
    CRM_ASSERT_ALLOC(job.buf);
    memset(job.buf, 0, self->header);
    uint32_t n = (uint32_t)(*count - self->sent_count);
    for (int i = 0; i < 4; i++) /* little-endian, as RocksDB's EncodeFixed32 */
        job.buf[8 + i] = (char)(n >> (8 * i));
    memcpy(job.buf + self->header, rep + self->sent_bytes, body);
    return job;
}

/* JOB's records sorted (above), as a batch to write; JOB's buffer is freed. */
static rocksdb_writebatch_t *
s_job_batch(s_job_t *job)
{
    const size_t header = 12;
    uint32_t n = 0;
    for (int i = 0; i < 4; i++)
        n |= (uint32_t)(uint8_t)job->buf[8 + i] << (8 * i);
    const uint8_t *from = (const uint8_t *)job->buf + header;
    size_t body = job->len - header;
    s_record_t *recs = n > 1 ? malloc(n * sizeof *recs) : NULL;
    char *sorted = recs ? malloc(job->len) : NULL;
    if (sorted && s_batch_records(from, body, recs, n)) {
        qsort(recs, n, sizeof *recs, s_record_cmp);
        memcpy(sorted, job->buf, header);
        char *to = sorted + header;
        for (uint32_t i = 0; i < n; i++) {
            memcpy(to, from + recs[i].off, recs[i].len);
            to += recs[i].len;
        }
    }
    free(recs);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create_from(sorted ? sorted : job->buf, job->len);
    free(sorted);
    free(job->buf);
    job->buf = NULL;
    return b;
}

/* Start the commit of the staged entries: prepared, as *JOB (to write), and
   counted as in flight. */
static crm_err_t
s_commit_send(store_group_t *self, s_job_t *job, char *errbuf)
{
    crm_err_t rc = s_commit_prepare(self, errbuf);
    if (rc != CRM_OK)
        return rc;
    size_t size;
    int count;
    *job = s_staged_batch(self, &size, &count);
    self->flight_ended = self->ended;
    self->flight_last_seq = self->next_seq - 1;
    self->flight_cfs = self->staged_cfs;
    self->staged_cfs = 0;
    self->ended = 0;
    self->sent_bytes = size;
    self->sent_count = count;
    self->in_flight = true;
    return CRM_OK;
}

/* The commit in flight has ended; ERR is RocksDB's error (freed here) or
   NULL. On success the store's last sequence number moves on, and the batch
   empties once nothing was staged after it. On failure the batch empties
   too: what was staged after it was based on it, and fails with it. */
static crm_err_t
s_commit_landed(store_group_t *self, char *err, char *errbuf)
{
    store_t *st = self->store;
    self->in_flight = false;
    s_cf_changed(self->flight_cfs); /* written or not: a reader looks again */
    self->flight_cfs = 0;
    if (err) {
        crm_err_t rc = s_write_failed(st, err, self->flight_ended, errbuf);
        s_group_clear(self);
        self->next_seq = store_last_seq(st) + 1; /* give the numbers back */
        return rc;
    }
    /* only a commit that numbered changes moves the count: one of unnumbered entries
       alone (an audit entry) must not set it back to a NEXT_SEQ taken before a replica's
       follower advanced it (the first commit after a promotion did: the new primary's
       first change then took the number, and the change-log entry, of the last one it
       had been shipped) */
    if (self->flight_ended)
        atomic_store(&st->last_seq, self->flight_last_seq);
    self->landed_count = self->sent_count;
    if (!s_staged(self))
        s_group_clear(self);
    return CRM_OK;
}

/* Past this many bytes of committed entries kept in the batch (a group that
   never empties under steady load), the next commit is written at once on
   the caller's thread, which empties it. This bounds the batch's index,
   which every staged entry is inserted into and which RocksDB rebuilds
   whole when a mutation is rolled back: at 1 MiB fsynced updates at 32
   clients were 16 % slower than without pipelining, at 128 KiB within the
   noise (PERFORMANCE.md, "Pipelined commits"). */
#define PIPE_KEEP_BYTES (128u << 10)
/* A commit this large goes to the committer thread even without fsync: a
   delete or merge carrying thousands of records writes megabytes, and their
   memtable inserts held the server thread for a third of the time such a
   request took (PERFORMANCE.md, "Large changes off the server thread"). */
#define PIPE_BIG_BYTES (256u << 10)

crm_err_t
store_group_commit_start(store_group_t *self, bool *started, char *errbuf)
{
    store_t *st = self->store;
    *started = false;
    CRM_ASSERT(!self->in_flight);
    s_perf_off();
    if (!s_staged(self)) {
        s_group_clear(self); /* everything in it is committed */
        return CRM_OK;
    }
    /* Without fsync a commit is only CPU work (the WAL append to the page
       cache, memtable inserts): on a machine whose cores are busy anyway,
       handing it over costs more than it frees (PERFORMANCE.md, "Pipelined
       commits"), so only an fsynced commit, or a large one, goes to the
       committer thread. */
    size_t rep = 0;
    rocksdb_writebatch_wi_data(self->batch, &rep);
    bool big = rep - self->sent_bytes >= PIPE_BIG_BYTES;
    bool inline_write = (!(st->flags & STORE_SYNC) && !big) ||
                        self->sent_bytes - self->header > PIPE_KEEP_BYTES;
    s_job_t job;
    crm_err_t rc = s_commit_send(self, &job, errbuf);
    if (rc != CRM_OK)
        return rc;
    if (!inline_write && !self->thread_started) {
        int prc = pthread_create(&self->thread, NULL, s_committer, self);
        if (prc != 0) {
            crm_log(CRM_LOG_WARN, "store: no committer thread (%s): this commit is written on "
                                  "the server thread",
                    strerror(prc));
            inline_write = true; /* and tried again next time */
        } else {
            self->thread_started = true;
        }
    }
    if (inline_write) {
        char *err = NULL;
        rocksdb_writebatch_t *b = s_job_batch(&job);
        rocksdb_write(st->db, st->wopts, b, &err);
        rocksdb_writebatch_destroy(b);
        return s_commit_landed(self, err, errbuf);
    }
    pthread_mutex_lock(&self->lock);
    self->job = job;
    self->job_done = false;
    atomic_store(&self->landed, false);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    *started = true;
    return CRM_OK;
}

bool
store_group_in_flight(const store_group_t *self)
{
    return self->in_flight;
}

size_t
store_group_staged_bytes(store_group_t *self)
{
    size_t rep = 0;
    rocksdb_writebatch_wi_data(self->batch, &rep);
    return rep - self->sent_bytes;
}

bool
store_group_idle(store_group_t *self)
{
    if (self->in_flight || s_staged(self))
        return false;
    s_group_clear(self);
    return true;
}

bool
store_group_landed(store_group_t *self)
{
    return self->in_flight && atomic_load(&self->landed);
}

int
store_group_commit_fd(const store_group_t *self)
{
    return self->efd;
}

crm_err_t
store_group_commit_land(store_group_t *self, char *errbuf)
{
    CRM_ASSERT(self->in_flight);
    pthread_mutex_lock(&self->lock);
    while (!self->job_done)
        pthread_cond_wait(&self->cond, &self->lock);
    char *err = self->job_err;
    self->job_err = NULL;
    uint64_t n;
    ssize_t r = read(self->efd, &n, sizeof n); /* nothing to read if already read: fine */
    (void)r;
    pthread_mutex_unlock(&self->lock);
    return s_commit_landed(self, err, errbuf);
}

crm_err_t
store_group_commit(store_group_t *self, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    s_perf_off();
    if (self->in_flight && (rc = store_group_commit_land(self, errbuf)) != CRM_OK)
        return rc; /* what was staged after it is gone with it */
    if (!s_staged(self)) {
        s_group_clear(self); /* everything in it is committed */
        return CRM_OK;
    }
    s_job_t job;
    if ((rc = s_commit_send(self, &job, errbuf)) != CRM_OK)
        return rc;
    char *err = NULL;
    rocksdb_writebatch_t *b = s_job_batch(&job);
    rocksdb_write(self->store->db, self->store->wopts, b, &err);
    rocksdb_writebatch_destroy(b);
    return s_commit_landed(self, err, errbuf);
}

void
store_group_fail(store_group_t *self, crm_err_t rc, const char *text)
{
    if (self->fail_rc != CRM_OK)
        return;
    self->fail_rc = rc;
    snprintf(self->fail_text, sizeof self->fail_text, "%s", text);
}

/* ==== Replication ====

   The primary's WAL already holds every write as the batch it was committed
   in, under RocksDB's sequence numbers; a replica that starts from a copy of
   the primary and writes the same batches in the same order, and nothing
   else, has the same sequence numbers (docs/ARCHITECTURE.md). */

uint64_t
store_wal_seq(store_t *self)
{
    pthread_rwlock_rdlock(&self->reopen_lock);
    uint64_t seq = self->db ? rocksdb_get_latest_sequence_number(self->db) : 0;
    pthread_rwlock_unlock(&self->reopen_lock);
    return seq;
}

/* A WAL iterator kept between one replica's pulls: RocksDB finds a sequence
   number by reading its WAL file from the start, which costs more the longer
   the file; a kept iterator reads on from where it stopped, and tails the
   live file. Server thread only; the store drops every cursor's iterator
   when it closes the database (store_recover, store_destroy). */
struct store_wal_cursor {
    store_t *store;
    rocksdb_wal_iterator_t *it; /* on the last batch handed out, or past the end */
    uint64_t next;              /* sequence number the next pull is to start at */
    store_wal_cursor_t *link;   /* the store's list */
};

store_wal_cursor_t *
store_wal_cursor_new(store_t *self)
{
    store_wal_cursor_t *c = calloc(1, sizeof *c);
    CRM_ASSERT_ALLOC(c);
    c->store = self;
    c->link = self->cursors;
    self->cursors = c;
    return c;
}

void
store_wal_cursor_destroy(store_wal_cursor_t **cur_p)
{
    store_wal_cursor_t *c = *cur_p;
    if (!c)
        return;
    for (store_wal_cursor_t **pp = &c->store->cursors; *pp; pp = &(*pp)->link)
        if (*pp == c) {
            *pp = c->link;
            break;
        }
    if (c->it)
        rocksdb_wal_iter_destroy(c->it);
    free(c);
    *cur_p = NULL;
}

/* Drop every cursor's iterator (the database is about to close). */
static void
s_cursors_drop(store_t *self)
{
    for (store_wal_cursor_t *c = self->cursors; c; c = c->link)
        if (c->it) {
            rocksdb_wal_iter_destroy(c->it);
            c->it = NULL;
        }
}

/* Hand IT's batches to FN from *FROM on (see store_wal_read); *FROM ends as
   the sequence number after the last batch handed out. Returns 1 if IT may
   be kept for the next read, 0 if not, -1 if a kept IT was not where it was
   expected (start afresh). */
static int
s_wal_scan(rocksdb_wal_iterator_t *it, bool fresh, uint64_t *from, size_t max_bytes,
           store_wal_fn fn, void *arg, bool *too_old, uint64_t *oldest, crm_err_t *rc,
           char *errbuf)
{
    size_t sent = 0;
    bool first = true;
    int keep = 1;
    char *err = NULL;
    while (rocksdb_wal_iter_valid(it)) {
        uint64_t seq = 0;
        rocksdb_writebatch_t *b = rocksdb_wal_iter_get_batch(it, &seq);
        size_t len = 0;
        const char *data = rocksdb_writebatch_data(b, &len);
        uint64_t count = (uint64_t)rocksdb_writebatch_count(b);
        bool go = true;
        if (first && !fresh && seq != *from) {
            go = false;
            keep = -1;
        } else if (first && seq > *from) { /* the entries between went with their files */
            *too_old = true;
            *oldest = seq;
            go = false;
            keep = 0;
        } else if (first && seq < *from && seq + count > *from) {
            snprintf(errbuf, CRM_ERRBUF,
                     "sequence number %llu falls inside a batch (%llu..%llu): the replica's "
                     "history differs from this server's",
                     (unsigned long long)*from, (unsigned long long)seq,
                     (unsigned long long)(seq + count - 1));
            *rc = CRM_ERR_FAILED_PRECONDITION;
            go = false;
            keep = 0;
        } else if (seq + count > *from) { /* older batches before FROM are skipped */
            go = fn(arg, seq, data, len);
            sent += len;
            *from = seq + count;
        }
        first = false;
        rocksdb_writebatch_destroy(b);
        if (!go || sent >= max_bytes)
            return keep; /* the iterator stays on the batch just handed out */
        rocksdb_wal_iter_next(it);
    }
    rocksdb_wal_iter_status(it, &err);
    if (err) { /* not a clean end of the log (TryAgain: the tail is in a newer file) */
        crm_log(CRM_LOG_DEBUG, "store: WAL iterator stopped: %s", err);
        rocksdb_free(err);
        return first && !fresh ? -1 : 0;
    }
    /* No batch at all: a kept IT is not where it was expected; a new one that
       found nothing though FROM <= the latest number (its file went with a
       flush and the live file is empty) never started, and RocksDB asserts on
       Next() of such an iterator: not kept either (the next read starts
       afresh, and says too old once the live file holds a batch) */
    if (first)
        return fresh ? 0 : -1;
    return keep;
}

crm_err_t
store_wal_read(store_t *self, store_wal_cursor_t *cur, uint64_t from, size_t max_bytes,
               store_wal_fn fn, void *arg, bool *too_old, uint64_t *oldest, char *errbuf)
{
    s_perf_off();
    crm_err_t rc = CRM_OK;
    char *err = NULL;
    rocksdb_wal_iterator_t *it = NULL;
    int keep = 0;
    *too_old = false;
    *oldest = 0;
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (cur) { /* taken over here; given back below if it may be kept */
        it = cur->it;
        cur->it = NULL;
        if (it && cur->next != from) {
            rocksdb_wal_iter_destroy(it);
            it = NULL;
        }
    }
    if (!self->db) {
        snprintf(errbuf, CRM_ERRBUF, "the store is being reopened; try again");
        rc = CRM_ERR_UNAVAILABLE;
        goto cleanup;
    }
    if (from > rocksdb_get_latest_sequence_number(self->db)) {
        keep = 1; /* nothing new: the cursor stays where it is */
        goto cleanup;
    }
    if (it) { /* on the batch the last read stopped at, or past the end of the log */
        rocksdb_wal_iter_next(it);
        uint64_t start = from;
        keep = s_wal_scan(it, false, &from, max_bytes, fn, arg, too_old, oldest, &rc, errbuf);
        if (keep >= 0)
            goto cleanup;
        from = start;
        rocksdb_wal_iter_destroy(it);
        it = NULL;
    }
    it = rocksdb_get_updates_since(self->db, from, NULL, &err);
    if (err) {
        /* RocksDB says NotFound when the files holding FROM are gone */
        crm_log(CRM_LOG_INFO, "store: WAL from %llu not available: %s", (unsigned long long)from,
                err);
        rocksdb_free(err);
        it = NULL;
        *too_old = true;
        goto cleanup;
    }
    keep = s_wal_scan(it, true, &from, max_bytes, fn, arg, too_old, oldest, &rc, errbuf);
cleanup:
    if (cur && keep > 0 && it) {
        cur->it = it;
        cur->next = from;
    } else if (it) {
        rocksdb_wal_iter_destroy(it);
    }
    pthread_rwlock_unlock(&self->reopen_lock);
    return rc;
}

crm_err_t
store_wal_apply(store_t *self, uint64_t seq, const void *data, size_t len, char *errbuf)
{
    s_perf_off();
    crm_err_t rc = CRM_OK;
    char *err = NULL;
    rocksdb_writebatch_t *b = NULL;
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (!self->db) {
        snprintf(errbuf, CRM_ERRBUF, "the store is being reopened");
        rc = CRM_ERR_UNAVAILABLE;
        goto cleanup;
    }
    if ((rc = s_health(self, errbuf)) != CRM_OK)
        goto cleanup;
    uint64_t have = rocksdb_get_latest_sequence_number(self->db);
    if (seq != have + 1) {
        snprintf(errbuf, CRM_ERRBUF,
                 "batch starts at sequence number %llu but this store holds up to %llu",
                 (unsigned long long)seq, (unsigned long long)have);
        rc = CRM_ERR_FAILED_PRECONDITION;
        goto cleanup;
    }
    if (len < 12) { /* 8-byte sequence number and 4-byte count: RocksDB asserts otherwise */
        snprintf(errbuf, CRM_ERRBUF, "a shipped batch of %zu bytes is malformed", len);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    b = rocksdb_writebatch_create_from(data, len);
    rocksdb_write(self->db, self->wopts, b, &err);
    s_cf_changed(S_CF_ALL); /* the primary's batch: any family */
    store_log_rewrite_hint(); /* ... it may rewrite change-log entries (an erasure) */
    if (err) {
        pthread_rwlock_unlock(&self->reopen_lock);
        rc = s_write_failed(self, err, 1, errbuf);
        rocksdb_writebatch_destroy(b);
        return rc;
    }
    if (rocksdb_get_latest_sequence_number(self->db) !=
        seq - 1 + (uint64_t)rocksdb_writebatch_count(b)) {
        snprintf(errbuf, CRM_ERRBUF, "applying a batch at %llu moved this store to %llu, not %llu",
                 (unsigned long long)seq,
                 (unsigned long long)rocksdb_get_latest_sequence_number(self->db),
                 (unsigned long long)(seq - 1 + (uint64_t)rocksdb_writebatch_count(b)));
        rc = CRM_ERR_INTERNAL;
    }
    if (rc == CRM_OK && self->views_keep_us) { /* only this thread writes: it is exact */
        int64_t now = crm_time_mono_us();
        s_views_trim(self, now, self->views_keep_us);
        pthread_mutex_lock(&self->views_lock);
        struct s_kept_view *v =
            &self->views[(self->views_head + self->views_n++) % self->views_cap];
        v->seq = rocksdb_get_latest_sequence_number(self->db);
        v->snap = rocksdb_create_snapshot(self->db);
        v->at_us = now;
        pthread_mutex_unlock(&self->views_lock);
    }
cleanup:
    if (b)
        rocksdb_writebatch_destroy(b);
    pthread_rwlock_unlock(&self->reopen_lock);
    if (rc == CRM_OK) { /* what the batch did to our own counters */
        /* where a history begins before its id, and its id before the count of
           changes that may hold its first: the feed, reading the count and then
           seeing a new id on the server thread, reads where it began
           (s_check_history) and tells its watchers before any change of it */
        s_hist_load(self); /* (with the id it holds, the new one's entry before it) */
        s_meta_u64(self, s_meta_epoch_first, &self->epoch_first);
        s_meta_u64(self, s_meta_epoch_start, &self->epoch_start);
        s_meta_u64(self, s_meta_epoch, &self->epoch);
        s_meta_u64(self, s_meta_last_seq, &self->last_seq);
        s_meta_u64(self, s_meta_log_first, &self->log_first);
        s_meta_u64(self, s_meta_unique, &self->unique);
    }
    return rc;
}

/* fsync directory DIR (renames in it) */
static void
s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Is the database just opened in place of another (store_swap_db) sealed as
   this store is, with the key this process uses? Its values are read by
   self->sealed: a copy in clear read as sealed, or a sealed one read as in
   clear or with another key, would be all storage errors or garbage. Raw
   reads: the caller holds the reopen lock. */
static crm_err_t
s_seal_matches(store_t *self, char *errbuf)
{
    char *err = NULL;
    size_t len = 0;
    char *mark = rocksdb_get_cf(self->db, self->ropts, s_cf(self, STORE_CF_META), s_meta_sealed,
                                sizeof s_meta_sealed - 1, &len, &err);
    if (err) {
        rocksdb_free(mark);
        return s_db_error(err, "cannot read the new copy", errbuf);
    }
    crm_err_t rc = CRM_OK;
    size_t plen = 0;
    if (!mark != !self->sealed) {
        snprintf(errbuf, CRM_ERRBUF,
                 "the new copy is %s and this data dir is %s: it cannot take its place "
                 "(make the replica again with 'crm-admin replica init')",
                 mark ? "encrypted" : "in clear", self->sealed ? "encrypted" : "in clear");
        rc = CRM_ERR_FAILED_PRECONDITION;
    } else if (mark && (!seal_open_value(STORE_CF_META, s_meta_sealed, sizeof s_meta_sealed - 1,
                                         (uint8_t *)mark, len, &plen) ||
                        plen != sizeof s_sealed_check - 1 ||
                        memcmp(mark, s_sealed_check, plen))) {
        snprintf(errbuf, CRM_ERRBUF,
                 "the new copy was encrypted with another master key than this data dir's: "
                 "it cannot take its place (make the replica again with 'crm-admin replica "
                 "init')");
        rc = CRM_ERR_FAILED_PRECONDITION;
    }
    rocksdb_free(mark);
    return rc;
}

/* store_swap_db() undone: the copy back to NEW_DB (if given), the old
   database from OLD back in place. False if that failed: then nothing is
   opened, rather than the copy. */
static bool
s_put_back(store_t *self, const char *new_db, const char *old)
{
    if ((new_db && rename(self->path, new_db) != 0) || rename(old, self->path) != 0) {
        crm_log(CRM_LOG_ERROR,
                "store: cannot put the database back in '%s' (%s): it is in '%s'; the store "
                "stays closed",
                self->path, strerror(errno), old);
        return false;
    }
    return true;
}

crm_err_t
store_swap_db(store_t *self, const char *new_db, char *errbuf)
{
    char old[PATH_MAX + 32];
    snprintf(old, sizeof old, "%s/%s", self->dir, STORE_PRE_RESYNC_DIR);
    if (pthread_rwlock_trywrlock(&self->reopen_lock) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "the store is in use; trying again");
        return CRM_ERR_CONFLICT;
    }
    crm_err_t rc = CRM_OK;
    bool back = true; /* the old database is in place (or the new one serves) */
    s_db_close(self);
    if (rename(self->path, old) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot move the database aside: %.100s", strerror(errno));
        rc = CRM_ERR_STORAGE;
    } else if (rename(new_db, self->path) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot move the new copy in place: %.100s",
                 strerror(errno));
        rc = CRM_ERR_STORAGE;
        back = s_put_back(self, NULL, old);
    } else if ((rc = s_db_open(self, errbuf)) != CRM_OK ||
               (rc = s_seal_matches(self, errbuf)) != CRM_OK) {
        s_db_close(self);
        back = s_put_back(self, new_db, old);
    }
    s_sync_dir(self->dir);
    if (!self->db && back) {
        char again[CRM_ERRBUF];
        if (s_db_open(self, again) != CRM_OK) /* store_recover() retries it */
            crm_log(CRM_LOG_ERROR, "store: reopening the old database failed: %s", again);
    }
    pthread_rwlock_unlock(&self->reopen_lock);
    if (rc == CRM_OK) { /* the new copy's counters */
        atomic_store(&self->epoch_first, 1); /* a copy from before epoch_first was kept */
        /* where a history begins before its id, and its id before the count of
           changes that may hold its first: the feed, reading the count and then
           seeing a new id on the server thread, reads where it began
           (s_check_history) and tells its watchers before any change of it */
        s_hist_load(self); /* (with the id it holds, the new one's entry before it) */
        s_meta_u64(self, s_meta_epoch_first, &self->epoch_first);
        s_meta_u64(self, s_meta_epoch_start, &self->epoch_start);
        s_meta_u64(self, s_meta_epoch, &self->epoch);
        s_meta_u64(self, s_meta_last_seq, &self->last_seq);
        s_meta_u64(self, s_meta_log_first, &self->log_first);
        s_meta_u64(self, s_meta_unique, &self->unique);
        s_meta_u64(self, s_meta_fenced_by, &self->fenced_by);
    }
    return rc;
}

uint64_t
store_epoch(const store_t *self, uint64_t *start)
{
    if (start)
        *start = atomic_load(&self->epoch_start);
    return atomic_load(&self->epoch);
}

uint64_t
store_fenced_by(const store_t *self)
{
    return atomic_load(&self->fenced_by);
}

bool
store_readonly(const store_t *self)
{
    return (self->flags & STORE_REPLICA) || atomic_load(&self->fenced_by);
}

/* Write meta KEYS[i] = VALS[i] as one synced batch outside any group. */
static crm_err_t s_meta_write_chain(store_t *self, const char *const *keys,
                                    const uint64_t *vals, size_t n, uint64_t (*chain)[3],
                                    size_t n_chain, char *errbuf);

static crm_err_t
s_meta_write(store_t *self, const char *const *keys, const uint64_t *vals, size_t n,
             char *errbuf)
{
    return s_meta_write_chain(self, keys, vals, n, NULL, 0, errbuf);
}

/* The same, with the history chain CHAIN (N_CHAIN entries) in the same batch. */
static crm_err_t
s_meta_write_chain(store_t *self, const char *const *keys, const uint64_t *vals, size_t n,
                   uint64_t (*chain)[3], size_t n_chain, char *errbuf)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (chain) {
        uint8_t blob[MAX_HISTORIES * 24];
        for (size_t i = 0; i < n_chain; i++)
            for (int j = 0; j < 3; j++)
                store_put_be64(blob + i * 24 + j * 8, chain[i][j]);
        rocksdb_writebatch_put_cf(b, s_cf(self, STORE_CF_META), s_meta_histories,
                                  sizeof s_meta_histories - 1, (const char *)blob, n_chain * 24);
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t be[8];
        store_put_be64(be, vals[i]);
        rocksdb_writebatch_put_cf(b, s_cf(self, STORE_CF_META), keys[i], strlen(keys[i]),
                                  (const char *)be, sizeof be);
    }
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (self->db && s_health(self, NULL) == CRM_OK)
        rocksdb_write(self->db, wo, b, &err);
    else
        err = strdup("the store does not take writes now");
    s_cf_changed(1u << STORE_CF_META);
    pthread_rwlock_unlock(&self->reopen_lock);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_writebatch_destroy(b);
    if (err) {
        snprintf(errbuf, CRM_ERRBUF, "cannot write to the store: %.200s", err);
        free(err);
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

crm_err_t
store_upgrade_begin(store_t *self, uint32_t from, char *errbuf)
{
    const char *const keys[] = {s_meta_upgrade_from, s_meta_upgrade_to};
    const uint64_t vals[] = {from, STORE_FORMAT};
    crm_err_t rc = s_meta_write(self, keys, vals, 2, errbuf);
    return rc == CRM_OK ? store_set_format(self, STORE_FORMAT_UPGRADING, errbuf) : rc;
}

uint32_t
store_upgrade_from(store_t *self, uint32_t *to)
{
    _Atomic uint64_t from = 0, target = 0;
    s_meta_u64(self, s_meta_upgrade_from, &from);
    s_meta_u64(self, s_meta_upgrade_to, &target);
    *to = atomic_load(&target) < UINT32_MAX ? (uint32_t)atomic_load(&target) : UINT32_MAX;
    return atomic_load(&from) < *to ? (uint32_t)atomic_load(&from) : 0;
}

uint64_t
store_epoch_first(const store_t *self)
{
    return atomic_load(&self->epoch_first);
}

bool
store_history_parted(store_t *self, uint64_t id, uint64_t *start, uint64_t *first)
{
    bool known = false;
    *start = *first = UINT64_MAX;
    pthread_mutex_lock(&self->hist_lock);
    size_t i = 0;
    while (i < self->nhist && self->hist[i][0] < id)
        i++;
    known = i < self->nhist && self->hist[i][0] == id;
    if (known) {
        if (i + 1 < self->nhist) {
            *start = self->hist[i + 1][1];
            *first = self->hist[i + 1][2];
        }
    } else if (self->hist_cut && i == 0) {
        *start = *first = 1; /* older than what is kept: not known where */
    } else {
        /* another history this store never went on with: whatever it began from, it
           shares at most what came before the first of ours after the root */
        for (size_t k = 0; k < self->nhist; k++)
            if (self->hist[k][0] != 1) {
                *start = self->hist[k][1];
                *first = self->hist[k][2];
                break;
            }
    }
    pthread_mutex_unlock(&self->hist_lock);
    return known;
}

/* History NEXT begins after what the store holds now: from the next WAL
   sequence number and the next change-log number (written, synced). */
static crm_err_t
s_begin_epoch(store_t *self, uint64_t next, char *errbuf)
{
    uint64_t start = store_wal_seq(self) + 1, first = store_last_seq(self) + 1;
    const char *const keys[] = {s_meta_epoch, s_meta_epoch_start, s_meta_epoch_first};
    const uint64_t vals[] = {next, start, first};
    pthread_mutex_lock(&self->hist_lock);
    uint64_t chain[MAX_HISTORIES][3];
    size_t n = self->nhist;
    memcpy(chain, self->hist, n * sizeof chain[0]);
    s_hist_put(self, next, start, first); /* (in memory now; as written if it fails) */
    uint64_t(*now)[3] = self->hist;
    size_t n_now = self->nhist;
    crm_err_t rc = s_meta_write_chain(self, keys, vals, 3, now, n_now, errbuf);
    if (rc != CRM_OK) {
        memcpy(self->hist, chain, n * sizeof chain[0]);
        self->nhist = n;
    }
    pthread_mutex_unlock(&self->hist_lock);
    if (rc != CRM_OK)
        return rc;
    atomic_store(&self->epoch_first, first); /* before the id: see store_wal_apply */
    atomic_store(&self->epoch_start, start);
    atomic_store(&self->epoch, next);
    return CRM_OK;
}

crm_err_t
store_promote(store_t *self, uint64_t *epoch, char *errbuf)
{
    *epoch = 0;
    if (!(self->flags & STORE_REPLICA)) {
        snprintf(errbuf, CRM_ERRBUF, "this server is not a replica");
        return CRM_ERR_FAILED_PRECONDITION;
    }
    uint64_t next = atomic_load(&self->epoch) + 1;
    crm_err_t rc = s_begin_epoch(self, next, errbuf);
    if (rc != CRM_OK)
        return rc;
    self->flags &= ~(unsigned)STORE_REPLICA;
    *epoch = next;
    return CRM_OK;
}

crm_err_t
store_new_history(store_t *self, uint64_t *epoch, char *errbuf)
{
    *epoch = 0;
    if (self->flags & STORE_REPLICA) { /* (a fenced one's begins, and it stays fenced) */
        snprintf(errbuf, CRM_ERRBUF, "a replica's history is its primary's");
        return CRM_ERR_FAILED_PRECONDITION;
    }
    int64_t ms = crm_time_now_ms();
    uint64_t next = atomic_load(&self->epoch) + 1;
    if (ms > 0 && (uint64_t)ms > next)
        next = (uint64_t)ms;
    crm_err_t rc = s_begin_epoch(self, next, errbuf);
    if (rc == CRM_OK)
        *epoch = next;
    return rc;
}

crm_err_t
store_fence(store_t *self, uint64_t newer_epoch, char *errbuf)
{
    if (newer_epoch <= atomic_load(&self->fenced_by))
        return CRM_OK;
    atomic_store(&self->fenced_by, newer_epoch); /* refused from now on, written or not */
    const char *const keys[] = {s_meta_fenced_by};
    return s_meta_write(self, keys, &newer_epoch, 1, errbuf);
}

crm_err_t
store_unfence(store_t *self, char *errbuf)
{
    uint64_t none = 0;
    const char *const keys[] = {s_meta_fenced_by};
    crm_err_t rc = s_meta_write(self, keys, &none, 1, errbuf);
    if (rc == CRM_OK)
        atomic_store(&self->fenced_by, 0);
    return rc;
}

/* ==== Backups ====

   Thin wrappers over RocksDB's Checkpoint and BackupEngine; backup.c holds
   the policy (what to copy when, the metadata, locking, progress). */

crm_err_t
store_checkpoint(store_t *self, const char *dir, char *errbuf)
{
    char *err = NULL;
    /* the backup thread's one use of the live store: held against store_recover()
       reopening it (which then waits for the checkpoint, well under a second) */
    pthread_rwlock_rdlock(&self->reopen_lock);
    if (!self->db) {
        pthread_rwlock_unlock(&self->reopen_lock);
        snprintf(errbuf, CRM_ERRBUF, "the store is being reopened after a write failure; "
                                     "try the backup again in a moment");
        return CRM_ERR_UNAVAILABLE;
    }
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(self->db, &err);
    if (!err) {
        /* 0: always flush the memtables first, so the checkpoint is hard
           links to table files plus a short WAL tail */
        rocksdb_checkpoint_create(cp, dir, 0, &err);
    }
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    pthread_rwlock_unlock(&self->reopen_lock);
    if (err) {
        char what[168]; /* short: s_db_error() adds its own text */
        snprintf(what, sizeof what, "cannot take a checkpoint into '%.120s'", dir);
        return s_db_error(err, what, errbuf);
    }
    return CRM_OK;
}

crm_err_t
store_count_keys(store_t *self, store_cf_t cf, uint64_t counts[256])
{
    s_perf_off();
    memset(counts, 0, 256 * sizeof counts[0]);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_total_order_seek(ro, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(self->db, ro, s_cf(self, cf));
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen)
            counts[(uint8_t)k[0]]++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        crm_log(CRM_LOG_ERROR, "store: counting '%s' failed: %s", s_cf_names[cf], err);
        rocksdb_free(err);
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

/* Open the BackupEngine on DIR (made if missing); NULL with errbuf on failure. */
static rocksdb_backup_engine_t *
s_backup_open(const char *dir, rocksdb_env_t **env, char *errbuf)
{
    char *err = NULL;
    *env = rocksdb_create_default_env(); /* a wrapper; the engine borrows it until closed */
    rocksdb_backup_engine_options_t *bo = rocksdb_backup_engine_options_create(dir);
    rocksdb_backup_engine_options_set_sync(bo, 1);             /* crash-safe (trap 12) */
    rocksdb_backup_engine_options_set_share_table_files(bo, 1); /* incremental */
    rocksdb_backup_engine_options_set_max_background_operations(bo, 1); /* a core left for crmd */
    rocksdb_backup_engine_t *be = rocksdb_backup_engine_open_opts(bo, *env, &err);
    rocksdb_backup_engine_options_destroy(bo);
    if (err) {
        char what[168]; /* short: s_db_error() adds its own text */
        snprintf(what, sizeof what, "cannot open the backup dir '%.120s'", dir);
        s_db_error(err, what, errbuf);
        rocksdb_env_destroy(*env);
        *env = NULL;
        return NULL;
    }
    return be;
}

static void
s_backup_close(rocksdb_backup_engine_t *be, rocksdb_env_t *env)
{
    rocksdb_backup_engine_close(be);
    rocksdb_env_destroy(env);
}

/* The backups in BE, ascending by id; caller free()s *out. */
static void
s_backup_infos(rocksdb_backup_engine_t *be, store_backup_info_t **out, size_t *n)
{
    const rocksdb_backup_engine_info_t *bi = rocksdb_backup_engine_get_backup_info(be);
    int count = rocksdb_backup_engine_info_count(bi);
    *out = calloc((size_t)count + 1, sizeof **out);
    CRM_ASSERT_ALLOC(*out);
    for (int i = 0; i < count; i++) {
        store_backup_info_t *b = &(*out)[i];
        b->id = rocksdb_backup_engine_info_backup_id(bi, i);
        b->time = rocksdb_backup_engine_info_timestamp(bi, i);
        b->size = rocksdb_backup_engine_info_size(bi, i);
        b->files = rocksdb_backup_engine_info_number_files(bi, i);
    }
    rocksdb_backup_engine_info_destroy(bi);
    *n = (size_t)count;
    for (size_t i = 1; i < *n; i++) /* insertion sort: a handful of entries */
        for (size_t j = i; j > 0 && (*out)[j - 1].id > (*out)[j].id; j--) {
            store_backup_info_t t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
}

crm_err_t
store_backup_create(store_t *self, const char *backup_dir, store_backup_info_t *out,
                    char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char *err = NULL;
    store_backup_info_t *infos = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    rocksdb_env_t *env = NULL;
    rocksdb_backup_engine_t *be = s_backup_open(backup_dir, &env, errbuf);
    if (!be)
        return CRM_ERR_STORAGE;
    rocksdb_backup_engine_create_new_backup_flush(be, self->db, 1, &err);
    if (err) {
        char what[168]; /* short: s_db_error() adds its own text */
        snprintf(what, sizeof what, "cannot write a backup into '%.120s'", backup_dir);
        rc = s_db_error(err, what, errbuf);
        goto cleanup;
    }
    s_backup_infos(be, &infos, &n);
    if (n == 0) {
        snprintf(errbuf, CRM_ERRBUF, "the backup engine lists no backup in '%s' after writing one",
                 backup_dir);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    *out = infos[n - 1]; /* the newest: ids only grow */
cleanup:
    free(infos);
    s_backup_close(be, env);
    return rc;
}

crm_err_t
store_backup_list(const char *backup_dir, store_backup_info_t **out, size_t *n, char *errbuf)
{
    *out = NULL;
    *n = 0;
    rocksdb_env_t *env = NULL;
    rocksdb_backup_engine_t *be = s_backup_open(backup_dir, &env, errbuf);
    if (!be)
        return CRM_ERR_STORAGE;
    s_backup_infos(be, out, n);
    s_backup_close(be, env);
    return CRM_OK;
}

crm_err_t
store_backup_purge(const char *backup_dir, uint32_t keep, char *errbuf)
{
    char *err = NULL;
    rocksdb_env_t *env = NULL;
    rocksdb_backup_engine_t *be = s_backup_open(backup_dir, &env, errbuf);
    if (!be)
        return CRM_ERR_STORAGE;
    rocksdb_backup_engine_purge_old_backups(be, keep, &err);
    s_backup_close(be, env);
    if (err)
        return s_db_error(err, "cannot delete old backups", errbuf);
    return CRM_OK;
}

crm_err_t
store_backup_verify_sizes(const char *backup_dir, uint32_t id, char *errbuf)
{
    char *err = NULL;
    rocksdb_env_t *env = NULL;
    rocksdb_backup_engine_t *be = s_backup_open(backup_dir, &env, errbuf);
    if (!be)
        return CRM_ERR_STORAGE;
    rocksdb_backup_engine_verify_backup(be, id, &err);
    s_backup_close(be, env);
    if (err) {
        char what[64];
        snprintf(what, sizeof what, "backup %u is damaged", id);
        return s_db_error(err, what, errbuf);
    }
    return CRM_OK;
}

crm_err_t
store_backup_restore(const char *backup_dir, uint32_t id, const char *db_dir, char *errbuf)
{
    char *err = NULL;
    rocksdb_env_t *env = NULL;
    rocksdb_backup_engine_t *be = s_backup_open(backup_dir, &env, errbuf);
    if (!be)
        return CRM_ERR_STORAGE;
    rocksdb_restore_options_t *ro = rocksdb_restore_options_create();
    /* by explicit id: "restore latest" can fail after the latest was deleted (trap 12);
       the engine checks every file's checksum while copying */
    rocksdb_backup_engine_restore_db_from_backup(be, db_dir, db_dir, ro, id, &err);
    rocksdb_restore_options_destroy(ro);
    s_backup_close(be, env);
    if (err) {
        char what[64];
        snprintf(what, sizeof what, "cannot restore backup %u", id);
        return s_db_error(err, what, errbuf);
    }
    return CRM_OK;
}
