/*  =========================================================================
    repl_fetch - a new snapshot of the primary, fetched into a directory

    The one fetch behind `crm-admin replica init` (tools/adm_replica.c) and
    a replica's automatic re-sync (replica.c): REPL_SNAPSHOT {id 0} starts a
    checkpoint on the primary's helper thread (repl_snap.c); we poll until it
    is ready, which gives the list of files, then read each file in chunks
    of 256 KiB into DIR, fsync it, and finally say done so the primary
    removes its checkpoint (also when we give up half-way). A copy that does
    not fit in DIR's filesystem is refused before it starts. Only names the
    primary may legitimately list are created: "db/<file>" or a plain name,
    never a path that leaves DIR.
    =========================================================================
*/
#include "repl_fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CHUNK (256u << 10)
#define READY_POLL_US 100000
#define ROOM_SPARE (16u << 20) /* free space wanted beyond the snapshot and a tenth of it */

/* A name the primary listed, safe to create under DIR: "db/<file>" or a plain name. */
static bool
s_safe_name(const char *name)
{
    const char *base = strncmp(name, "db/", 3) == 0 ? name + 3 : name;
    return *base && *base != '.' && !strchr(base, '/') && strlen(base) < 64;
}

static bool
s_stopping(const repl_fetch_io_t *io)
{
    return io->stop && io->stop(io->arg);
}

/* Is there room in DIR's filesystem for the files, and some to spare for the
   store that opens them? Checked before the first byte is fetched, so a copy
   that cannot fit fails at once instead of filling the disk the store (and,
   in a re-sync, the database still serving) lives on. */
static crm_err_t
s_room(const char *dir, Crm__ReplFile **files, size_t n, char *errbuf)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += files[i]->size;
    uint64_t need = total + total / 10 + ROOM_SPARE;
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return CRM_OK; /* cannot tell: the writes themselves will say */
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail >= need)
        return CRM_OK;
    snprintf(errbuf, CRM_ERRBUF,
             "the snapshot is %.1f MiB and needs %.1f MiB with room to run, but '%.100s' has "
             "%.1f MiB free: free some space, or use a data dir on a larger disk",
             (double)total / 1048576.0, (double)need / 1048576.0, dir,
             (double)avail / 1048576.0);
    return CRM_ERR_RESOURCE_EXHAUSTED;
}

/* Fetch every file of snapshot ID into DIR. */
static crm_err_t
s_fetch_files(const repl_fetch_io_t *io, uint64_t id, Crm__ReplFile **files, size_t n,
              const char *dir, char *errbuf)
{
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < n; i++)
        total += files[i]->size;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (!s_safe_name(files[i]->name)) {
            snprintf(errbuf, CRM_ERRBUF, "the primary listed a bad file name '%.64s'",
                     files[i]->name);
            return CRM_ERR_INTERNAL;
        }
        snprintf(path, sizeof path, "%s/%s", dir, files[i]->name);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(errbuf, CRM_ERRBUF, "cannot create '%.200s': %.80s", path, strerror(errno));
            return CRM_ERR_INVALID_ARGUMENT;
        }
        uint64_t off = 0;
        crm_err_t rc = CRM_OK;
        while (rc == CRM_OK && off < files[i]->size) {
            if (s_stopping(io)) {
                snprintf(errbuf, CRM_ERRBUF, "stopped");
                rc = CRM_ERR_UNAVAILABLE;
                break;
            }
            Crm__ReplSnapshotRequest rq = CRM__REPL_SNAPSHOT_REQUEST__INIT;
            rq.id = id;
            rq.file = files[i]->name;
            rq.offset = off;
            rq.max_bytes = CHUNK;
            Crm__Reply *reply = NULL;
            if ((rc = io->call(io->arg, &rq, &reply, errbuf)) != CRM_OK)
                break;
            const ProtobufCBinaryData *d = &reply->repl_snapshot->data;
            if (d->len == 0 || write(fd, d->data, d->len) != (ssize_t)d->len) {
                snprintf(errbuf, CRM_ERRBUF, "%s '%.200s'",
                         d->len ? "cannot write" : "the primary sent nothing more of", path);
                rc = CRM_ERR_STORAGE;
            }
            off += d->len;
            done += d->len;
            io->free_reply(&reply);
            if (io->progress)
                io->progress(io->arg, done, total);
        }
        if (rc == CRM_OK && fsync(fd) != 0) {
            snprintf(errbuf, CRM_ERRBUF, "cannot sync '%.200s': %.80s", path, strerror(errno));
            rc = CRM_ERR_STORAGE;
        }
        close(fd);
        if (rc != CRM_OK)
            return rc;
    }
    /* the new names themselves, in DIR/db and DIR */
    const char *dirs[] = {"db", "."};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, dirs[i]);
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    if (io->progress)
        io->progress(io->arg, total, total);
    return CRM_OK;
}

crm_err_t
repl_fetch(const repl_fetch_io_t *io, const char *dir, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    uint64_t id = 0;
    Crm__ReplSnapshotRequest rq = CRM__REPL_SNAPSHOT_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    char ignored[CRM_ERRBUF];
    errbuf[0] = '\0';
    if ((rc = io->call(io->arg, &rq, &reply, errbuf)) != CRM_OK)
        return rc;
    id = reply->repl_snapshot->id;
    io->free_reply(&reply);
    if (io->started)
        io->started(io->arg, id);
    for (;;) { /* until the checkpoint is ready: its file list */
        if (s_stopping(io)) {
            snprintf(errbuf, CRM_ERRBUF, "stopped");
            rc = CRM_ERR_UNAVAILABLE;
            goto cleanup;
        }
        rq.id = id;
        if ((rc = io->call(io->arg, &rq, &reply, errbuf)) != CRM_OK)
            goto cleanup;
        const Crm__ReplSnapshotReply *sr = reply->repl_snapshot;
        if (*sr->error) {
            snprintf(errbuf, CRM_ERRBUF, "the primary's checkpoint failed: %.200s", sr->error);
            io->free_reply(&reply);
            id = 0; /* the primary dropped it */
            rc = CRM_ERR_STORAGE;
            goto cleanup;
        }
        if (sr->ready)
            break;
        io->free_reply(&reply);
        usleep(READY_POLL_US);
    }
    rc = s_room(dir, reply->repl_snapshot->files, reply->repl_snapshot->n_files, errbuf);
    if (rc == CRM_OK)
        rc = s_fetch_files(io, id, reply->repl_snapshot->files, reply->repl_snapshot->n_files,
                           dir, errbuf);
    io->free_reply(&reply);
    if (rc != CRM_OK)
        goto cleanup;
    rq.done = true; /* the primary removes its checkpoint */
    if (io->call(io->arg, &rq, &reply, ignored) == CRM_OK)
        id = 0;
    io->free_reply(&reply);
cleanup:
    if (id) { /* tell the primary to drop what we did not finish */
        Crm__ReplSnapshotRequest done = CRM__REPL_SNAPSHOT_REQUEST__INIT;
        done.id = id;
        done.done = true;
        if (io->call(io->arg, &done, &reply, ignored) == CRM_OK)
            io->free_reply(&reply);
    }
    return rc;
}
