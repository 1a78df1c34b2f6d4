/*  =========================================================================
    backup - hot, incremental, checksummed backups and their restore

    Owns:      the backup procedure (checkpoint, count, BackupEngine copy,
               sidecar metadata and keys), the backup dir's lock and file
               modes, restore into a new data dir, and the server's backup
               job thread with its schedule.
    Exposes:   backup_meta_t (what a backup holds), backup_run / list /
               purge / restore for crm-admin, backup_job_t for crmd.
    Must not:  include rocksdb/c.h (store.c does the RocksDB calls) or zmq.h;
               block the server thread: backup_job_* calls from the server
               thread only take a mutex that is never held across I/O.

    Backup dir layout: RocksDB's own (meta/, private/, shared_checksum/) plus
      oneview/lock            flock()ed by whoever writes or reads backups
      oneview/last-error      the last failed attempt (removed on success)
      oneview/<id>/meta       key=value: seq, time, format, counts (0600)
      oneview/<id>/server.key, master.key, admin.enroll, value-rules.conf
    Every file is 0600 and every directory 0700.
    =========================================================================
*/
#ifndef BACKUP_H
#define BACKUP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_kv.h"
#include "store.h"

#define BACKUP_MAX_KINDS 16

/* One backup: what the BackupEngine knows plus our sidecar metadata. */
typedef struct {
    uint32_t id;      /* BackupEngine id */
    int64_t time_ms;  /* when its checkpoint was taken, ms since the epoch */
    uint64_t seq;     /* the change log's last sequence number it holds */
    uint32_t format;  /* the data dir format (store.h STORE_FORMAT) */
    uint64_t size;    /* bytes of its files, shared ones included */
    uint32_t files;   /* number of files */
    uint64_t users;   /* user records */
    size_t n_kinds;   /* record counts by kind */
    struct {
        char name[24];
        uint64_t count;
    } kinds[BACKUP_MAX_KINDS];
    bool has_meta;    /* false: no sidecar (seq, counts unknown) */
    bool has_keys;    /* the server keys were saved with it */
    unsigned sides;   /* the data dir's side files saved with it, a bit each (backup.c's
                         s_side_files); ~0u when not known (no sidecar, or one older than the field) */
    uint64_t history; /* backup_restore: the history id the restored store begins */
} backup_meta_t;

typedef enum {
    BACKUP_IDLE = 0,
    BACKUP_CHECKPOINT, /* hard-link checkpoint of the live store */
    BACKUP_COUNTING,   /* reserved: records are counted alongside the copy */
    BACKUP_COPYING,    /* BackupEngine copying new files */
    BACKUP_FINISHING,  /* sidecar, keys, retention, file modes */
    BACKUP_RESTORING,  /* BackupEngine restoring, checksums checked */
} backup_phase_t;

/* Lower-case name of PHASE, e.g. "copying". */
const char *backup_phase_name(backup_phase_t phase);

/* Progress of a long step: DONE of TOTAL bytes (TOTAL is an upper bound
   while copying an incremental backup). */
typedef struct {
    backup_phase_t phase;
    uint64_t done, total;
} backup_progress_t;

/* Called about 5 times a second from a helper thread while work runs. */
typedef void (*backup_tick_fn)(const backup_progress_t *p, void *arg);

/* Back STORE (open on DATA_DIR, possibly serving) up into BACKUP_DIR, then
   keep the newest KEEP backups (0: all). Safe while writes go on: the backup
   holds every write committed before the call. *out describes it. */
crm_err_t backup_run(store_t *store, const char *data_dir, const char *backup_dir, uint32_t keep,
                     backup_tick_fn tick, void *arg, backup_meta_t *out, char *errbuf);
/* The backups in BACKUP_DIR, oldest first; caller free()s *out. LAST_ERROR
   (CRM_ERRBUF) gets the last failed attempt's message, or "". */
crm_err_t backup_list(const char *backup_dir, backup_meta_t **out, size_t *n, char *last_error,
                      char *errbuf);
/* Keep only the newest KEEP backups; *removed gets how many went. */
crm_err_t backup_purge(const char *backup_dir, uint32_t keep, size_t *removed, char *errbuf);
/* RocksDB's size check of backup ID's files (checksums: restore it). */
crm_err_t backup_check_sizes(const char *backup_dir, uint32_t id, char *errbuf);
/* Recompute the CRC-32C of every file of backup ID and compare it with the
   engine's record (meta/ID); the first damaged file is named in errbuf. */
crm_err_t backup_check_checksums(const char *backup_dir, uint32_t id, size_t *files,
                                 char *errbuf);
/* Restore backup ID (0: the newest) into DATA_DIR, which must be empty or
   absent: the database (every file's checksum checked), the server keys and
   rules. Refuses a non-empty DATA_DIR and changes nothing then; on any other
   failure removes what it made. *out describes the backup restored. */
crm_err_t backup_restore(const char *backup_dir, uint32_t id, const char *data_dir,
                         backup_tick_fn tick, void *arg, backup_meta_t *out, char *errbuf);
/* Remove DIR and everything under it (not following symlinks). */
void backup_remove_tree(const char *dir);

/* ==== The server's backup job: one helper thread, one backup at a time ==== */

typedef struct backup_job backup_job_t;

/* What the job is doing and how the last backup went (a copy). */
typedef struct {
    bool running;            /* a backup is under way */
    uint64_t job;            /* the newest job started (1, 2, ...) */
    uint64_t finished;       /* the newest job finished */
    backup_progress_t progress;
    char dir[1024];          /* where the running (or last) job writes */
    int64_t started_ms;      /* when it started */
    bool last_ok;            /* the last finished job succeeded */
    backup_meta_t last;      /* the last successful backup */
    char last_error[CRM_ERRBUF]; /* the last failure ("" if none since start) */
    int64_t last_error_ms;
    int64_t next_ms;         /* the next scheduled backup (0: none scheduled) */
} backup_status_t;

/* A job runner for STORE (borrowed; must outlive the job) on DATA_DIR. With
   SCHED_DIR and EVERY_MS > 0 it backs up there by itself every EVERY_MS,
   keeping the newest KEEP (0: all). */
backup_job_t *backup_job_new(store_t *store, const char *data_dir, const char *sched_dir,
                             int64_t every_ms, uint32_t keep);
/* Start a backup into DIR (NULL: the scheduled dir) on the helper thread;
   returns at once. *job gets its number. UNAVAILABLE if one is running. */
crm_err_t backup_job_start(backup_job_t *self, const char *dir, uint32_t keep, uint64_t *job,
                           char *errbuf);
/* From the server loop: start a scheduled backup when one is due. Cheap. */
void backup_job_tick(backup_job_t *self);
/* Copy the status into *out. Never waits on I/O. */
void backup_job_status(backup_job_t *self, backup_status_t *out);
/* Wait for a running backup to finish, then free; NULL-safe. */
void backup_job_destroy(backup_job_t **self_p);

#endif
