/*  =========================================================================
    repl_snap - a consistent copy of the primary for a new replica

    `crm-admin replica init` asks REPL_SNAPSHOT {id 0}: a helper thread takes
    a RocksDB checkpoint into DATA_DIR/.replica-snapshot/db (memtables
    flushed, table files hard-linked, a short WAL tail copied: seconds at
    most, and never on the server thread). The replica polls until it is
    ready, then reads each listed file in chunks of REPL_SNAP_CHUNK (one
    pread each, well under a millisecond) and finally says done, which
    removes the checkpoint. Besides the database the list holds the data
    dir's side files a replica needs to serve as this server: its keypair,
    the master key, the value rules (they are read at serve time from the
    data dir, not copied). Only files in the list can be read.

    The checkpoint's RocksDB sequence number is where the replica's
    following starts; nothing else needs recording.
    =========================================================================
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "crm_log.h"
#include "crm_time.h"
#include "replica.h"

#define MAX_FILES 4096
#define IDLE_US (600LL * 1000000) /* a snapshot nobody fetched for this long is removed */

/* Side files of a data dir a replica takes with the database (if present). */
static const char *const s_side_files[] = {"server.key", "master.key", "value-rules.conf"};

typedef struct {
    char name[64]; /* "db/000012.sst" or a side file's name */
    uint64_t size;
} s_file_t;

struct repl_snap {
    store_t *store;
    char data_dir[PATH_MAX];
    char dir[PATH_MAX + 32]; /* DATA_DIR/.replica-snapshot */
    pthread_mutex_t lock;    /* guards the fields below between the thread and the server thread */
    pthread_t thread;
    bool thread_live; /* started and not joined */
    uint64_t id;      /* current snapshot (0: none) */
    bool ready, failed;
    char error[CRM_ERRBUF];
    s_file_t *files;
    size_t n_files;
    int64_t used_us; /* last request about it */
};

repl_snap_t *
repl_snap_new(store_t *store, const char *data_dir)
{
    repl_snap_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    snprintf(self->data_dir, sizeof self->data_dir, "%s", data_dir);
    snprintf(self->dir, sizeof self->dir, "%s/.replica-snapshot", data_dir);
    pthread_mutex_init(&self->lock, NULL);
    backup_remove_tree(self->dir); /* left over by a crash */
    return self;
}

/* Join the thread if it ran; drop the snapshot. */
static void
s_drop(repl_snap_t *self)
{
    if (self->thread_live)
        pthread_join(self->thread, NULL);
    self->thread_live = false;
    backup_remove_tree(self->dir);
    free(self->files);
    self->files = NULL;
    self->n_files = 0;
    self->id = 0;
    self->ready = self->failed = false;
    self->error[0] = '\0';
}

void
repl_snap_destroy(repl_snap_t **self_p)
{
    repl_snap_t *self = *self_p;
    if (!self)
        return;
    s_drop(self);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static void
s_add(s_file_t *files, size_t *n, const char *name, uint64_t size)
{
    if (*n >= MAX_FILES)
        return;
    snprintf(files[*n].name, sizeof files[*n].name, "%s", name);
    files[*n].size = size;
    (*n)++;
}

/* The helper thread: checkpoint, then the list of files. */
static void *
s_take(void *arg)
{
    repl_snap_t *self = arg;
    char errbuf[CRM_ERRBUF] = "", path[PATH_MAX + 64];
    s_file_t *files = calloc(MAX_FILES, sizeof *files);
    CRM_ASSERT_ALLOC(files);
    size_t n = 0;
    int64_t t0 = crm_time_mono_us();
    crm_err_t rc = CRM_OK;
    if (mkdir(self->dir, 0700) != 0) {
        snprintf(errbuf, sizeof errbuf, "cannot create '%.200s': %.80s", self->dir, strerror(errno));
        rc = CRM_ERR_STORAGE;
    }
    snprintf(path, sizeof path, "%s/db", self->dir);
    if (rc == CRM_OK)
        rc = store_checkpoint(self->store, path, errbuf);
    DIR *d = rc == CRM_OK ? opendir(path) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        char name[64], full[PATH_MAX + 128];
        if (de->d_name[0] == '.' || strlen(de->d_name) > 40)
            continue;
        snprintf(name, sizeof name, "db/%.40s", de->d_name);
        snprintf(full, sizeof full, "%s/%s", self->dir, name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            s_add(files, &n, name, (uint64_t)st.st_size);
    }
    if (d)
        closedir(d);
    for (size_t i = 0; rc == CRM_OK && i < sizeof s_side_files / sizeof s_side_files[0]; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", self->data_dir, s_side_files[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            s_add(files, &n, s_side_files[i], (uint64_t)st.st_size);
    }
    pthread_mutex_lock(&self->lock);
    if (rc == CRM_OK) {
        self->files = files;
        self->n_files = n;
        self->ready = true;
        files = NULL;
    } else {
        self->failed = true;
        snprintf(self->error, sizeof self->error, "%s", errbuf);
    }
    pthread_mutex_unlock(&self->lock);
    free(files);
    if (rc == CRM_OK)
        crm_log(CRM_LOG_INFO, "replica snapshot %llu ready: %zu files in %.1f s",
                (unsigned long long)self->id, n, (double)(crm_time_mono_us() - t0) / 1e6);
    else
        crm_log(CRM_LOG_WARN, "replica snapshot %llu failed: %s", (unsigned long long)self->id,
                errbuf);
    return NULL;
}

/* Read LEN bytes of FILE from OFFSET into a fresh buffer. */
static crm_err_t
s_read(repl_snap_t *self, const s_file_t *f, uint64_t offset, size_t len, uint8_t **out,
       size_t *got, char *errbuf)
{
    char path[PATH_MAX + 128];
    *out = NULL;
    *got = 0;
    if (strncmp(f->name, "db/", 3) == 0)
        snprintf(path, sizeof path, "%s/%s", self->dir, f->name);
    else
        snprintf(path, sizeof path, "%s/%s", self->data_dir, f->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot open '%.64s' of the snapshot: %.100s", f->name,
                 strerror(errno));
        return CRM_ERR_STORAGE;
    }
    uint8_t *buf = malloc(len ? len : 1);
    CRM_ASSERT_ALLOC(buf);
    ssize_t r = pread(fd, buf, len, (off_t)offset);
    close(fd);
    if (r < 0) {
        free(buf);
        snprintf(errbuf, CRM_ERRBUF, "cannot read '%.64s' of the snapshot: %.100s", f->name,
                 strerror(errno));
        return CRM_ERR_STORAGE;
    }
    *out = buf;
    *got = (size_t)r;
    return CRM_OK;
}

crm_err_t
repl_snap_serve(repl_snap_t *self, const Crm__ReplSnapshotRequest *req,
                Crm__ReplSnapshotReply *out, void *(*own)(void *arg, void *p), void *arg,
                char *errbuf)
{
    crm_err_t rc = CRM_OK;
    int64_t now = crm_time_mono_us();
    if (req->id == 0) { /* a new one replaces any other */
        s_drop(self);
        static uint64_t counter;
        self->id = (uint64_t)crm_time_now_ms() * 1000 + (++counter % 1000);
        self->used_us = now;
        if (pthread_create(&self->thread, NULL, s_take, self) != 0) {
            snprintf(errbuf, CRM_ERRBUF, "cannot start the snapshot thread");
            self->id = 0;
            return CRM_ERR_INTERNAL;
        }
        self->thread_live = true;
        out->id = self->id;
        return CRM_OK;
    }
    if (req->id != self->id) {
        snprintf(errbuf, CRM_ERRBUF,
                 "snapshot %llu is gone (another was started, or it sat unused for 10 "
                 "minutes): start again",
                 (unsigned long long)req->id);
        return CRM_ERR_NOT_FOUND;
    }
    self->used_us = now;
    out->id = self->id;
    pthread_mutex_lock(&self->lock);
    bool ready = self->ready, failed = self->failed;
    if (failed)
        out->error = own(arg, strdup(self->error));
    pthread_mutex_unlock(&self->lock);
    if (req->done || failed) {
        s_drop(self);
        return CRM_OK;
    }
    out->ready = ready;
    if (!ready)
        return CRM_OK;
    if (!*req->file) { /* the list */
        out->files = own(arg, calloc(self->n_files + 1, sizeof *out->files));
        CRM_ASSERT_ALLOC(out->files);
        for (size_t i = 0; i < self->n_files; i++) {
            Crm__ReplFile *f = own(arg, malloc(sizeof *f));
            CRM_ASSERT_ALLOC(f);
            crm__repl_file__init(f);
            f->name = self->files[i].name;
            f->size = self->files[i].size;
            out->files[i] = f;
        }
        out->n_files = self->n_files;
        return CRM_OK;
    }
    const s_file_t *f = NULL;
    for (size_t i = 0; i < self->n_files && !f; i++)
        if (!strcmp(self->files[i].name, req->file))
            f = &self->files[i];
    if (!f) {
        snprintf(errbuf, CRM_ERRBUF, "'%.64s' is not a file of the snapshot", req->file);
        return CRM_ERR_NOT_FOUND;
    }
    size_t len = req->max_bytes && req->max_bytes < REPL_SNAP_CHUNK ? req->max_bytes
                                                                     : REPL_SNAP_CHUNK;
    if (req->offset >= f->size)
        len = 0;
    else if (f->size - req->offset < len)
        len = (size_t)(f->size - req->offset);
    uint8_t *buf = NULL;
    size_t got = 0;
    if ((rc = s_read(self, f, req->offset, len, &buf, &got, errbuf)) != CRM_OK)
        return rc;
    out->data.data = own(arg, buf);
    out->data.len = got;
    return CRM_OK;
}

void
repl_snap_tick(repl_snap_t *self, int64_t now_us)
{
    if (self->id && now_us - self->used_us > IDLE_US) {
        crm_log(CRM_LOG_INFO, "replica snapshot %llu unused for 10 minutes: removed",
                (unsigned long long)self->id);
        s_drop(self);
    }
}
