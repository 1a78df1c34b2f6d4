/*  =========================================================================
    replica - read replicas: the primary's side (who pulls, how far behind)
    and the replica's follower thread

    Owns:      the primary's table of replicas seen and its commit-time ring;
               the follower thread, its DEALER to the primary and its status.
    Must not:  include rocksdb/c.h (store_wal_read / store_wal_apply do the
               RocksDB part); write to the store except by store_wal_apply().
    Invariant: a replica's store changes only by batches of the primary's WAL
               applied in sequence order, so its RocksDB sequence number, its
               change-log numbers and its content are the primary's as of the
               same point (docs/ARCHITECTURE.md, "Replication").
    =========================================================================
*/
#ifndef REPLICA_H
#define REPLICA_H
#include <stdbool.h>
#include <stdint.h>

#include "crm.pb-c.h"
#include "crm_kv.h"
#include "store.h"

/* Largest batch data one REPL_PULL answers with: a few ms of work on the
   server thread at most (reading and copying about this many WAL bytes). */
#define REPL_PULL_MAX_BYTES (256u << 10)
/* A replica that pulled nothing waits this long before it asks again */
#define REPL_IDLE_WAIT_MS 5 /* the primary holds a pull with nothing new up to 0.5 s */

/* A replica keeps a snapshot after each batch it applied for this long, at
   most this many, for a digest as of a primary's sequence number (REPL_DIGEST) */
#define REPL_VIEW_KEEP_MS 5000
#define REPL_VIEW_MAX 4096

/* ==== The primary's side ==== */

typedef struct repl repl_t;

/* A new table of replicas for the primary over STORE. */
repl_t *repl_new(store_t *store);
/* NULL-safe; sets *self_p = NULL. */
void repl_destroy(repl_t **self_p);
/* The server thread calls this after each commit turn: remembers when the
   store's WAL sequence number reached its present value (for lag in ms). */
void repl_committed(repl_t *self, int64_t now_us);
/* Replica NAME asked, on connection RID, for the WAL from FROM_SEQ: it holds
   everything before. Returns its WAL cursor (borrowed; kept while NAME is in
   the table), or NULL if another connection pulled under NAME in the last
   REPL_TWIN_WINDOW_US: two replicas on one identity would count as one for
   --sync-replicas and in the status, so the second is refused (a replica that
   restarted gets in once its old connection has been quiet that long). */
store_wal_cursor_t *repl_seen(repl_t *self, const char *name, const void *rid, size_t rid_len,
                              uint64_t from_seq, int64_t now_us);
/* A held pull comes at least every 0.5 s: quiet longer than this, a connection is gone */
#define REPL_TWIN_WINDOW_US 1500000
/* The WAL sequence number that at least K replicas seen in the last 10 s
   hold (0 if fewer than K are there). */
uint64_t repl_acked(const repl_t *self, uint32_t k, int64_t now_us);
/* How long ago (ms) the oldest commit past APPLIED was made: 0 when none is
   missing. Measured on the primary's clock alone, so a pull's answer can tell
   a replica how far behind it was when it asked. */
uint64_t repl_lag_ms(const repl_t *self, uint64_t applied, int64_t now_us);
/* Fill OUT's replicas (the ones seen in the last minute); OWN(arg, p) takes
   each allocated block so the caller frees it after packing. */
void repl_list(repl_t *self, int64_t now_us, Crm__ReplStatusReply *out,
               void *(*own)(void *arg, void *p), void *arg);

/* ==== Snapshots for new replicas (repl_snap.c) ==== */

/* Chunk size of a snapshot file read: well under a millisecond from the page cache. */
#define REPL_SNAP_CHUNK (256u << 10)

typedef struct repl_snap repl_snap_t;

/* One snapshot at a time, taken into DATA_DIR/.replica-snapshot. */
repl_snap_t *repl_snap_new(store_t *store, const char *data_dir);
/* Joins a running checkpoint and removes the snapshot; NULL-safe. */
void repl_snap_destroy(repl_snap_t **self_p);
/* Serve one REPL_SNAPSHOT request into OUT (OWN as in repl_list). */
crm_err_t repl_snap_serve(repl_snap_t *self, const Crm__ReplSnapshotRequest *req,
                          Crm__ReplSnapshotReply *out, void *(*own)(void *arg, void *p),
                          void *arg, char *errbuf);
/* The server thread, once a second: remove a snapshot nobody fetched for 10 minutes. */
void repl_snap_tick(repl_snap_t *self, int64_t now_us);

/* ==== The replica's follower thread ==== */

typedef struct repl_follower repl_follower_t;

/* What the follower reports (copied under its lock). */
typedef struct {
    bool connected;        /* the last pull was answered */
    uint64_t primary_seq;  /* the primary's latest WAL sequence number then */
    uint64_t applied_seq;  /* our WAL sequence number */
    int64_t caught_up_us;  /* when we last held all the primary had (mono) */
    int64_t heard_us;      /* when the primary last answered a pull (mono; 0: never) */
    char state[CRM_ERRBUF]; /* following, connecting, too far behind: ... */
} repl_follower_status_t;

/* Load the replica identity's enrollment ENROLL_PATH and start following
   ENDPOINT (the primary's; NULL or "" = the enrollment's endpoint) into
   STORE, opened with STORE_REPLICA. CTX is the server's ZeroMQ context; the
   follower rings an inproc socket (repl_follower_socket) after applying.
   With RESYNC, a replica the primary's log no longer reaches back to
   re-syncs by itself from a new snapshot fetched into DATA_DIR (see
   replica.c); without it, it says so and stops pulling. It logs a warning
   when further behind the primary than LAG_WARN_MS (at most every 10 s). */
crm_err_t repl_follower_start(void *ctx, store_t *store, const char *data_dir,
                              const char *endpoint, const char *enroll_path, bool resync,
                              int64_t lag_warn_ms, repl_follower_t **out, char *errbuf);
/* The default of crmd --lag-warn */
#define REPL_LAG_WARN_MS 5000
/* The server thread, every turn: a re-sync's switch to its new copy, when
   one is ready (store_swap_db; retried next turn if a worker holds the store). */
void repl_follower_tick(repl_follower_t *self);
/* Before the store opens: finish what a crash left of a re-sync in DATA_DIR
   (the old database back if the switch was cut between its renames; leftovers
   removed). */
void repl_resync_cleanup(const char *data_dir);
/* The socket that becomes readable when batches were applied (server thread). */
void *repl_follower_socket(repl_follower_t *self);
/* Take the rings off the socket (server thread). */
void repl_follower_drain(repl_follower_t *self);
/* The primary's endpoint being followed. */
const char *repl_follower_endpoint(const repl_follower_t *self);
/* A copy of the follower's status. */
void repl_follower_status(repl_follower_t *self, repl_follower_status_t *out);
/* Stop following for good (a promotion): the batch in hand is applied
   whole, then the thread ends. The object stays until repl_follower_stop. */
void repl_follower_halt(repl_follower_t *self);
/* Stop the thread and free; NULL-safe; sets *self_p = NULL. */
void repl_follower_stop(repl_follower_t **self_p);

#endif
