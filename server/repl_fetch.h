/*  repl_fetch - fetch a new snapshot of the primary (REPL_SNAPSHOT, repl_snap.c)
    into a directory: the one fetch behind `crm-admin replica init` and a
    replica's automatic re-sync (replica.c). The transport is the caller's:
    crm-admin calls through its client connection, crmd's follower through
    its own CURVE DEALER. */
#ifndef CRM_REPL_FETCH_H
#define CRM_REPL_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "crm_err.h"
#include "crm_kv.h"
#include "crm_proto.h"

typedef struct {
    /* Send RQ as a REPL_SNAPSHOT request. CRM_OK: *reply holds the answer, an
       OK status with a snapshot body (freed with free_reply); otherwise
       ERRBUF says why (may be left empty if the caller reported it). */
    crm_err_t (*call)(void *arg, Crm__ReplSnapshotRequest *rq, Crm__Reply **reply,
                      char *errbuf);
    void (*free_reply)(Crm__Reply **reply);
    void (*started)(void *arg, uint64_t id);                    /* may be NULL */
    void (*progress)(void *arg, uint64_t done, uint64_t total); /* may be NULL */
    bool (*stop)(void *arg); /* may be NULL; true: give up (the server is stopping) */
    void *arg;
} repl_fetch_io_t;

/* Ask the primary for a new checkpoint, wait until it is ready, and fetch
   every file it lists into DIR ("db/..." under DIR/db, which must exist and
   be empty; side files such as server.key into DIR), each one fsynced. The
   primary is told to drop its checkpoint at the end, also on failure. On
   failure the files written stay: the caller removes DIR/db. */
crm_err_t repl_fetch(const repl_fetch_io_t *io, const char *dir, char *errbuf);

#endif
