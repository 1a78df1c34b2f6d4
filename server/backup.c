/*  =========================================================================
    backup - hot, incremental, checksummed backups and their restore

    Why a checkpoint first: RocksDB's BackupEngine flushes and copies a live
    database while writes go on, so nothing outside it can tell which change-
    log sequence number a backup holds (the 7.8 C API has no app metadata and
    no hook between "files chosen" and "files copied"). So a backup starts
    with a hard-link checkpoint of the live store (a flush plus links: well
    under a second, writes continue), opens that checkpoint as a store of its
    own, reads its last sequence number and record counts - exact, because
    nothing writes to it - and hands the checkpoint to the BackupEngine. The
    table files are links to the live ones, with the same names and session
    ids, so the engine shares them between backups: backups stay incremental.
    Every write acknowledged before a backup begins was committed before the
    checkpoint, so the backup holds it.

    Why a helper thread: the checkpoint, the copy and the count take seconds
    on a large store; the server thread (server.c) must keep serving. The job
    runs backup_run() on its own thread and publishes its progress in a
    status struct under a mutex that is held only to copy a few hundred
    bytes, never across I/O, so a status request waits microseconds.
    =========================================================================
*/
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crm_entity.h"
#include "crm_keys.h"
#include "crm_log.h"
#include "crm_time.h"

#define BACKUP_NICE 10 /* the job thread's nice value */

/* Files of a data dir that a backup carries besides the database. */
static const char *const s_side_files[] = {"server.key", "master.key", "admin.enroll",
                                           "value-rules.conf"};
#define SIDE_FILES (sizeof s_side_files / sizeof s_side_files[0])
#define SIDES_UNKNOWN (~0u) /* a sidecar older than its "sides" line */

/* Format a message into ERRBUF (CRM_ERRBUF bytes), truncated if it must be. */
static void s_fmt(char *errbuf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_fmt(char *errbuf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, CRM_ERRBUF, fmt, ap);
    va_end(ap);
}

/* Copy SRC into DST of CAP bytes, truncated. */
static void
s_copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

const char *
backup_phase_name(backup_phase_t phase)
{
    static const char *const names[] = {"idle", "checkpoint", "counting", "copying",
                                        "finishing", "restoring"};
    return (unsigned)phase < sizeof names / sizeof names[0] ? names[phase] : "?";
}

/* ==== Files: walk, size, modes, removal ==== */

/* Walk DIR depth-first (no symlinks followed); FN on every entry, directories after their
   contents. */
static void
s_walk(const char *dir, void (*fn)(const char *path, const struct stat *st, void *arg), void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            s_walk(path, fn, arg);
        fn(path, &st, arg);
    }
    closedir(d);
}

static void
s_add_size(const char *path, const struct stat *st, void *arg)
{
    (void)path;
    if (S_ISREG(st->st_mode))
        *(uint64_t *)arg += (uint64_t)st->st_size;
}

/* Bytes of the regular files under DIR. */
static uint64_t
s_tree_bytes(const char *dir)
{
    uint64_t n = 0;
    s_walk(dir, s_add_size, &n);
    return n;
}

static void
s_tighten_one(const char *path, const struct stat *st, void *arg)
{
    (void)arg;
    if (S_ISDIR(st->st_mode) && (st->st_mode & 077))
        chmod(path, 0700);
    else if (S_ISREG(st->st_mode) && (st->st_mode & 077))
        chmod(path, 0600);
}

/* Every file under DIR 0600, every directory 0700, DIR itself too. */
static void
s_tighten(const char *dir)
{
    chmod(dir, 0700);
    s_walk(dir, s_tighten_one, NULL);
}

static void
s_remove_one(const char *path, const struct stat *st, void *arg)
{
    (void)arg;
    if (S_ISDIR(st->st_mode))
        rmdir(path);
    else
        unlink(path);
}

void
backup_remove_tree(const char *dir)
{
    s_walk(dir, s_remove_one, NULL);
    rmdir(dir);
}

/* Copy SRC to DST (0600, replaced); a missing SRC is CRM_ERR_NOT_FOUND. */
static crm_err_t
s_copy_file(const char *src, const char *dst, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char tmp[PATH_MAX + 8], buf[8192];
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;
    if (in < 0) {
        if (errno == ENOENT)
            return CRM_ERR_NOT_FOUND;
        s_fmt(errbuf, "cannot read '%s': %s", src, strerror(errno));
        return CRM_ERR_STORAGE;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        s_fmt(errbuf, "cannot write '%s': %s", tmp, strerror(errno));
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    if (n < 0 || fsync(out) != 0 || close(out) != 0) {
        out = -1;
        s_fmt(errbuf, "cannot copy '%s' to '%s': %s", src, tmp, strerror(errno));
        unlink(tmp);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    out = -1;
    if (rename(tmp, dst) != 0) {
        s_fmt(errbuf, "cannot rename '%s': %s", tmp, strerror(errno));
        unlink(tmp);
        rc = CRM_ERR_STORAGE;
    }
cleanup:
    if (out >= 0)
        close(out);
    close(in);
    sodium_memzero(buf, sizeof buf); /* may have held keys */
    return rc;
}

/* mkdir DIR 0700 if missing, and make sure it is 0700. */
static crm_err_t
s_mkdir(const char *dir, char *errbuf)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        s_fmt(errbuf, "cannot create directory '%s': %s%s", dir, strerror(errno),
                 errno == ENOENT ? " (create its parent first)" : "");
        return CRM_ERR_STORAGE;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s_fmt(errbuf, "'%s' is not a directory", dir);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0) {
        s_fmt(errbuf, "cannot make '%s' private (0700): %s", dir, strerror(errno));
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

/* ==== The backup dir's lock ==== */

/* Lock BACKUP_DIR for us (made if missing with CREATE). Returns the fd, or
   -1 with errbuf. Waits up to 2 s for another holder. */
static int
s_lock(const char *backup_dir, bool create, char *errbuf)
{
    char path[PATH_MAX];
    struct stat st;
    if (!create && (stat(backup_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        s_fmt(errbuf, "backup dir '%s' does not exist", backup_dir);
        return -1;
    }
    /* a list, purge or verify of a dir that holds no backup writes nothing into it (a
       data dir, or / given by mistake, got the engine's dirs) */
    snprintf(path, sizeof path, "%s/meta", backup_dir);
    if (!create && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
        s_fmt(errbuf, "'%s' holds no backup (no backup engine 'meta' dir): give the dir "
                      "backups were made into",
              backup_dir);
        return -1;
    }
    if (create && s_mkdir(backup_dir, errbuf) != CRM_OK)
        return -1;
    snprintf(path, sizeof path, "%s/oneview", backup_dir);
    if (s_mkdir(path, errbuf) != CRM_OK)
        return -1;
    snprintf(path, sizeof path, "%s/oneview/lock", backup_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        s_fmt(errbuf, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
        if (errno != EWOULDBLOCK || i == 40) {
            snprintf(errbuf, CRM_ERRBUF,
                     "backup dir '%s' is in use by another backup or restore (crmd's or "
                     "crm-admin's); try again when it is done ('crm-admin backup status')",
                     backup_dir);
            close(fd);
            return -1;
        }
        usleep(50000);
    }
    return fd;
}

static void
s_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* ==== Sidecar metadata ==== */

static crm_err_t
s_meta_write(const char *backup_dir, const backup_meta_t *m, char *errbuf)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/oneview/%u/meta", backup_dir, m->id);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        s_fmt(errbuf, "cannot write '%s': %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CRM_ERR_STORAGE;
    }
    fprintf(f, "# OneView backup metadata\nid=%u\ntime_ms=%" PRId64 "\nseq=%" PRIu64
               "\nformat=%u\nusers=%" PRIu64 "\n",
            m->id, m->time_ms, m->seq, m->format, m->users);
    for (size_t i = 0; i < m->n_kinds; i++)
        fprintf(f, "count.%s=%" PRIu64 "\n", m->kinds[i].name, m->kinds[i].count);
    fprintf(f, "sides=");
    for (size_t i = 0, n = 0; i < SIDE_FILES; i++)
        if (m->sides & (1u << i))
            fprintf(f, "%s%s", n++ ? "," : "", s_side_files[i]);
    fprintf(f, "\n");
    bool ok = fflush(f) == 0 && fsync(fd) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        s_fmt(errbuf, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

/* Fill the sidecar fields of M (M->id set) from BACKUP_DIR/oneview/ID/meta. */
static void
s_meta_read(const char *backup_dir, backup_meta_t *m)
{
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof path, "%s/oneview/%u/server.key", backup_dir, m->id);
    m->has_keys = access(path, R_OK) == 0;
    m->sides = SIDES_UNKNOWN;
    snprintf(path, sizeof path, "%s/oneview/%u/meta", backup_dir, m->id);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    m->has_meta = true;
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        if (!eq || line[0] == '#')
            continue;
        if (nl)
            *nl = '\0';
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (!strcmp(k, "time_ms"))
            m->time_ms = strtoll(v, NULL, 10);
        else if (!strcmp(k, "seq"))
            m->seq = strtoull(v, NULL, 10);
        else if (!strcmp(k, "format"))
            m->format = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "users"))
            m->users = strtoull(v, NULL, 10);
        else if (!strcmp(k, "sides")) {
            m->sides = 0;
            for (size_t i = 0; i < SIDE_FILES; i++) {
                size_t len = strlen(s_side_files[i]);
                for (const char *at = v; (at = strstr(at, s_side_files[i])); at += len)
                    if ((at == v || at[-1] == ',') && (at[len] == ',' || at[len] == '\0'))
                        m->sides |= 1u << i;
            }
        } else if (!strncmp(k, "count.", 6) && m->n_kinds < BACKUP_MAX_KINDS) {
            s_copy_str(m->kinds[m->n_kinds].name, sizeof m->kinds[0].name, k + 6);
            m->kinds[m->n_kinds++].count = strtoull(v, NULL, 10);
        }
    }
    fclose(f);
}

static void
s_last_error_set(const char *backup_dir, const char *msg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/oneview/last-error", backup_dir);
    if (!msg) {
        unlink(path);
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* the backup dir itself is the problem; the log has it */
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    dprintf(fd, "%s: %s\n", when, msg);
    close(fd);
}

/* ==== Progress sampler: a thread measuring a directory's growth ==== */

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started;
    const char *dir;     /* measured */
    uint64_t base;       /* its bytes at the start */
    backup_progress_t p; /* phase and total set by the caller */
    backup_tick_fn tick;
    void *arg;
} s_sampler_t;

static void *
s_sampler_main(void *arg)
{
    s_sampler_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &until);
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        uint64_t now = s_tree_bytes(s->dir);
        pthread_mutex_lock(&s->mu);
        s->p.done = now > s->base ? now - s->base : 0;
        if (s->p.done > s->p.total)
            s->p.done = s->p.total;
        s->tick(&s->p, s->arg);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void
s_sampler_start(s_sampler_t *s, const char *dir, backup_phase_t phase, uint64_t total,
                backup_tick_fn tick, void *arg)
{
    memset(s, 0, sizeof *s);
    if (!tick)
        return;
    s->dir = dir;
    s->base = s_tree_bytes(dir);
    s->p.phase = phase;
    s->p.total = total;
    s->tick = tick;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    tick(&s->p, arg);
    s->started = pthread_create(&s->thread, NULL, s_sampler_main, s) == 0;
}

/* Stop; with OK, report the step complete. */
static void
s_sampler_stop(s_sampler_t *s, bool ok)
{
    if (!s->tick)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    if (ok) {
        s->p.done = s->p.total;
        s->tick(&s->p, s->arg);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void
s_tick(backup_tick_fn tick, void *arg, backup_phase_t phase, uint64_t done, uint64_t total)
{
    backup_progress_t p = {phase, done, total};
    if (tick)
        tick(&p, arg);
}

/* ==== Backup ==== */

/* Counting the checkpoint's records by kind, on a thread of its own alongside the copy
   (both only read the checkpoint, which nothing writes). */
typedef struct {
    store_t *ck;       /* the opened checkpoint (borrowed) */
    backup_meta_t *m;  /* gets kinds[] and users */
    crm_err_t rc;
} s_count_t;

static void *
s_count_main(void *arg)
{
    s_count_t *c = arg;
    backup_meta_t *m = c->m;
    uint64_t counts[256];
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKUP_NICE);
    if ((c->rc = store_count_keys(c->ck, STORE_CF_RECORDS, counts)) != CRM_OK)
        return NULL;
    for (const crm_entity_t *e = crm_entity_all(); e->name && m->n_kinds < BACKUP_MAX_KINDS;
         e++) {
        s_copy_str(m->kinds[m->n_kinds].name, sizeof m->kinds[0].name, e->name);
        m->kinds[m->n_kinds++].count = counts[(uint8_t)e->prefix];
    }
    if ((c->rc = store_count_keys(c->ck, STORE_CF_USERS, counts)) != CRM_OK)
        return NULL;
    m->users = counts['u']; /* users.c: "u/<name>" records, "k..." key lookups */
    return NULL;
}

/* Drop sidecar dirs of backups the engine no longer has. */
static size_t
s_prune_sidecars(const char *backup_dir)
{
    store_backup_info_t *infos = NULL;
    size_t n = 0, removed = 0;
    char errbuf[CRM_ERRBUF], path[PATH_MAX];
    if (store_backup_list(backup_dir, &infos, &n, errbuf) != CRM_OK)
        return 0;
    snprintf(path, sizeof path, "%s/oneview", backup_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end = NULL;
        unsigned long id = strtoul(e->d_name, &end, 10);
        if (!*e->d_name || *end || e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        bool live = false;
        for (size_t i = 0; i < n; i++)
            live = live || infos[i].id == id;
        if (!live) {
            snprintf(path, sizeof path, "%s/oneview/%s", backup_dir, e->d_name);
            backup_remove_tree(path);
            removed++;
        }
    }
    if (d)
        closedir(d);
    free(infos);
    return removed;
}

/* A backup dir is one server's: BACKUP_DIR/oneview/server names the server key whose
   backups it holds (written by the first backup). One server's backups beside
   another's were listed as one series, purged by the other's --keep and restored in its
   place. */
static crm_err_t
s_claim_dir(const char *backup_dir, const char *data_dir, char *errbuf)
{
    char path[PATH_MAX], mine[CRM_Z85_LEN + 1], theirs[CRM_Z85_LEN + 2] = "", why[CRM_ERRBUF];
    crm_keypair_t kp;
    snprintf(path, sizeof path, "%s/server.key", data_dir);
    crm_err_t rc = crm_keys_load(path, &kp, why);
    crm_keys_to_z85(kp.pub, mine);
    sodium_memzero(&kp, sizeof kp);
    if (rc != CRM_OK) {
        s_fmt(errbuf, "%s", why);
        return rc;
    }
    snprintf(path, sizeof path, "%s/oneview/server", backup_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(theirs, sizeof theirs, f))
            theirs[0] = '\0';
        fclose(f);
        theirs[strcspn(theirs, "\n")] = '\0';
        if (strcmp(theirs, mine)) {
            s_fmt(errbuf, "backup dir '%s' holds the backups of another server (key %.8s...; "
                          "this one's is %.8s...): give each server a backup dir of its own",
                  backup_dir, theirs, mine);
            return CRM_ERR_FAILED_PRECONDITION;
        }
        return CRM_OK;
    }
    f = fopen(path, "w");
    bool ok = f && fprintf(f, "%s\n", mine) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        s_fmt(errbuf, "cannot write '%s': %s", path, strerror(errno));
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

crm_err_t
backup_run(store_t *store, const char *data_dir, const char *backup_dir, uint32_t keep,
           backup_tick_fn tick, void *arg, backup_meta_t *out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char ck_dir[PATH_MAX], ck_db[PATH_MAX + 8], path[PATH_MAX], src[PATH_MAX];
    store_t *ck = NULL;
    store_backup_info_t info;
    int lock = -1;
    memset(out, 0, sizeof *out);
    ck_dir[0] = '\0';

    /* not into the data dir: a backup there dies with its disk */
    char real_data[PATH_MAX], real_backup[PATH_MAX], parent[PATH_MAX];
    bool known = realpath(backup_dir, real_backup) != NULL;
    if (!known) { /* one to be made: where its parent is */
        snprintf(parent, sizeof parent, "%s", backup_dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent)
            *slash = '\0';
        else
            snprintf(parent, sizeof parent, "%s", slash ? "/" : ".");
        known = realpath(parent, real_backup) != NULL;
    }
    if (known && realpath(data_dir, real_data)) {
        size_t dl = strlen(real_data);
        if (!strncmp(real_backup, real_data, dl) &&
            (real_backup[dl] == '\0' || real_backup[dl] == '/')) {
            s_fmt(errbuf, "backup dir '%s' is inside the data dir '%s': a backup there is "
                          "lost with it; give a dir on another disk",
                  backup_dir, data_dir);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    if ((lock = s_lock(backup_dir, true, errbuf)) < 0) {
        rc = CRM_ERR_UNAVAILABLE;
        goto cleanup;
    }
    if ((rc = s_claim_dir(backup_dir, data_dir, errbuf)) != CRM_OK)
        goto cleanup;
    /* 1. checkpoint: hard links next to the live store (same filesystem) */
    int64_t t0 = crm_time_mono_us(), t_ck = 0, t_count = 0, t_copy = 0;
    s_tick(tick, arg, BACKUP_CHECKPOINT, 0, 1);
    snprintf(ck_dir, sizeof ck_dir, "%s/.backup-checkpoint", data_dir);
    backup_remove_tree(ck_dir); /* a leftover of a crash */
    if ((rc = s_mkdir(ck_dir, errbuf)) != CRM_OK)
        goto cleanup;
    snprintf(ck_db, sizeof ck_db, "%s/db", ck_dir);
    out->time_ms = crm_time_now_ms();
    if ((rc = store_checkpoint(store, ck_db, errbuf)) != CRM_OK)
        goto cleanup;
    /* 2. what it holds, exactly: nothing writes to it */
    t_ck = crm_time_mono_us();
    if ((rc = store_open(ck_dir, 0, &ck, errbuf)) != CRM_OK)
        goto cleanup;
    out->seq = store_last_seq(ck);
    out->format = store_format(ck);
    /* 3. the copy (BackupEngine, incremental, synced), and the count alongside */
    s_count_t counter = {ck, out, CRM_OK};
    pthread_t count_th;
    bool counting = pthread_create(&count_th, NULL, s_count_main, &counter) == 0;
    if (!counting)
        s_count_main(&counter);
    s_sampler_t sampler;
    s_sampler_start(&sampler, backup_dir, BACKUP_COPYING, s_tree_bytes(ck_db), tick, arg);
    rc = store_backup_create(ck, backup_dir, &info, errbuf);
    s_sampler_stop(&sampler, rc == CRM_OK);
    t_count = crm_time_mono_us(); /* the copy's end */
    if (counting)
        pthread_join(count_th, NULL);
    if (rc != CRM_OK)
        goto cleanup;
    if (counter.rc != CRM_OK) {
        s_fmt(errbuf, "cannot count the records of the checkpoint in '%s'", ck_dir);
        rc = counter.rc;
        goto cleanup;
    }
    t_copy = crm_time_mono_us();
    out->id = info.id;
    out->size = info.size;
    out->files = info.files;
    /* 4. sidecar: metadata and the keys the data needs */
    s_tick(tick, arg, BACKUP_FINISHING, 0, 1);
    snprintf(path, sizeof path, "%s/oneview/%u", backup_dir, info.id);
    backup_remove_tree(path); /* a stale sidecar of a purged backup with this id */
    if ((rc = s_mkdir(path, errbuf)) != CRM_OK)
        goto cleanup;
    out->sides = 0;
    for (size_t i = 0; i < SIDE_FILES; i++) {
        snprintf(src, sizeof src, "%s/%s", data_dir, s_side_files[i]);
        snprintf(path, sizeof path, "%s/oneview/%u/%s", backup_dir, info.id, s_side_files[i]);
        crm_err_t crc = s_copy_file(src, path, errbuf);
        if (crc == CRM_ERR_NOT_FOUND && i < 2) {
            s_fmt(errbuf, "'%s' is missing: a backup without it cannot serve "
                     "existing users; restore it into the data dir and back up again", src);
            rc = crc;
            goto cleanup;
        }
        if (crc != CRM_OK && crc != CRM_ERR_NOT_FOUND) {
            rc = crc;
            goto cleanup;
        }
        if (crc == CRM_OK)
            out->sides |= 1u << i;
    }
    out->has_keys = true;
    out->has_meta = true;
    if ((rc = s_meta_write(backup_dir, out, errbuf)) != CRM_OK)
        goto cleanup;
    /* 5. retention, then modes */
    if (keep > 0) {
        if ((rc = store_backup_purge(backup_dir, keep, errbuf)) != CRM_OK)
            goto cleanup;
        s_prune_sidecars(backup_dir);
    }
    s_tighten(backup_dir);
    s_last_error_set(backup_dir, NULL);
    crm_log(CRM_LOG_INFO, "backup %u: checkpoint %" PRId64 " ms, copy %" PRId64 " ms, count "
            "(alongside) done %" PRId64 " ms later, sidecar and retention %" PRId64 " ms",
            info.id, (t_ck - t0) / 1000, (t_count - t_ck) / 1000, (t_copy - t_count) / 1000,
            (crm_time_mono_us() - t_copy) / 1000);
cleanup:
    store_destroy(&ck);
    if (ck_dir[0])
        backup_remove_tree(ck_dir);
    if (rc != CRM_OK && lock >= 0)
        s_last_error_set(backup_dir, errbuf);
    s_unlock(lock);
    return rc;
}

/* ==== List, purge, check ==== */

crm_err_t
backup_list(const char *backup_dir, backup_meta_t **out, size_t *n, char *last_error,
            char *errbuf)
{
    store_backup_info_t *infos = NULL;
    char path[PATH_MAX];
    *out = NULL;
    *n = 0;
    last_error[0] = '\0';
    int lock = s_lock(backup_dir, false, errbuf);
    if (lock < 0)
        return CRM_ERR_UNAVAILABLE;
    crm_err_t rc = store_backup_list(backup_dir, &infos, n, errbuf);
    if (rc == CRM_OK) {
        *out = calloc(*n + 1, sizeof **out);
        CRM_ASSERT_ALLOC(*out);
        for (size_t i = 0; i < *n; i++) {
            backup_meta_t *m = &(*out)[i];
            m->id = infos[i].id;
            m->time_ms = infos[i].time * 1000;
            m->size = infos[i].size;
            m->files = infos[i].files;
            s_meta_read(backup_dir, m);
        }
        snprintf(path, sizeof path, "%s/oneview/last-error", backup_dir);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(last_error, CRM_ERRBUF, f))
                last_error[0] = '\0';
            last_error[strcspn(last_error, "\n")] = '\0';
            fclose(f);
        }
    }
    free(infos);
    s_unlock(lock);
    return rc;
}

crm_err_t
backup_purge(const char *backup_dir, uint32_t keep, size_t *removed, char *errbuf)
{
    store_backup_info_t *infos = NULL;
    size_t before = 0, after = 0;
    *removed = 0;
    int lock = s_lock(backup_dir, false, errbuf);
    if (lock < 0)
        return CRM_ERR_UNAVAILABLE;
    crm_err_t rc = store_backup_list(backup_dir, &infos, &before, errbuf);
    free(infos);
    infos = NULL;
    if (rc == CRM_OK)
        rc = store_backup_purge(backup_dir, keep, errbuf);
    if (rc == CRM_OK)
        rc = store_backup_list(backup_dir, &infos, &after, errbuf);
    free(infos);
    if (rc == CRM_OK) {
        s_prune_sidecars(backup_dir);
        *removed = before - after;
    }
    s_unlock(lock);
    return rc;
}

crm_err_t
backup_check_sizes(const char *backup_dir, uint32_t id, char *errbuf)
{
    int lock = s_lock(backup_dir, false, errbuf);
    if (lock < 0)
        return CRM_ERR_UNAVAILABLE;
    crm_err_t rc = store_backup_verify_sizes(backup_dir, id, errbuf);
    s_unlock(lock);
    return rc;
}

/* ==== Checksums: every file of a backup against the engine's own record ==== */

/* CRC-32C (Castagnoli), the checksum RocksDB records for each backup file. */
static uint32_t
s_crc32c(uint32_t crc, const uint8_t *p, size_t n, const uint32_t table[256])
{
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void
s_crc32c_table(uint32_t table[256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
}

/* CRC-32C of the file PATH into *crc; false if it cannot be read. */
static bool
s_file_crc(const char *path, const uint32_t table[256], uint32_t *crc, uint64_t *bytes)
{
    uint8_t buf[1 << 16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n;
    uint32_t c = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        c = s_crc32c(c, buf, (size_t)n, table);
        *bytes += (uint64_t)n;
    }
    close(fd);
    *crc = c;
    return n == 0;
}

static crm_err_t
s_check_checksums(const char *backup_dir, uint32_t id, size_t *files, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char path[PATH_MAX], line[PATH_MAX + 64], file[2 * PATH_MAX + 64];
    uint32_t table[256];
    uint64_t bytes = 0;
    *files = 0;
    s_crc32c_table(table);
    snprintf(path, sizeof path, "%s/meta/%u", backup_dir, id);
    FILE *f = fopen(path, "r");
    if (!f) {
        s_fmt(errbuf, "backup %u has no file list '%s': %s", id, path, strerror(errno));
        return CRM_ERR_NOT_FOUND;
    }
    while (fgets(line, sizeof line, f)) {
        unsigned long want;
        char *sp = strstr(line, " crc32 ");
        if (!sp)
            continue; /* timestamp, sequence, count, app metadata */
        *sp = '\0';
        want = strtoul(sp + 7, NULL, 10);
        snprintf(file, sizeof file, "%s/%s", backup_dir, line);
        uint32_t got = 0;
        if (!s_file_crc(file, table, &got, &bytes)) {
            s_fmt(errbuf, "backup %u: cannot read '%s': %s", id, file, strerror(errno));
            rc = CRM_ERR_STORAGE;
            break;
        }
        if (got != (uint32_t)want) {
            s_fmt(errbuf, "backup %u: file '%s' is damaged (checksum %08X, recorded %08lX)", id,
                  file, got, want);
            rc = CRM_ERR_STORAGE;
            break;
        }
        (*files)++;
    }
    fclose(f);
    return rc;
}

crm_err_t
backup_check_checksums(const char *backup_dir, uint32_t id, size_t *files, char *errbuf)
{
    *files = 0;
    int lock = s_lock(backup_dir, false, errbuf);
    if (lock < 0)
        return CRM_ERR_UNAVAILABLE;
    crm_err_t rc = s_check_checksums(backup_dir, id, files, errbuf);
    s_unlock(lock);
    return rc;
}

/* ==== Restore ==== */


/* fsync directory PATH: the entries made or removed in it are on disk. */
static int
s_sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The restore's mark MARK in DIR, on disk before anything else is put there. */
static crm_err_t
s_write_mark(const char *mark, const char *dir, char *errbuf)
{
    static const char text[] =
        "crm-admin restore is filling this data dir; if it stopped, remove the dir and restore "
        "again\n";
    int fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1) &&
              fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || s_sync_path(dir) != 0) {
        s_fmt(errbuf, "cannot write '%s': %s", mark, strerror(errno));
        return CRM_ERR_STORAGE;
    }
    return CRM_OK;
}

/* 1: DIR absent, 0: empty directory, -1: holds something (or unusable; errbuf says). */
static int
s_dir_state(const char *dir, char *errbuf)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 1;
        s_fmt(errbuf, "cannot use '%s': %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int state = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            state = -1;
    closedir(d);
    char mark[PATH_MAX + 32];
    struct stat st;
    snprintf(mark, sizeof mark, "%s/" STORE_RESTORE_MARK, dir);
    if (state < 0 && stat(mark, &st) == 0)
        snprintf(errbuf, CRM_ERRBUF,
                 "'%s' holds a restore that did not finish: remove it and run the restore again "
                 "(nothing was changed)",
                 dir);
    else if (state < 0)
        snprintf(errbuf, CRM_ERRBUF,
                 "'%s' is not empty: restore only into a new or empty directory (nothing was "
                 "changed; to replace a data dir, stop crmd, move the old one aside, restore "
                 "into its path)",
                 dir);
    return state;
}

crm_err_t
backup_restore(const char *backup_dir, uint32_t id, const char *data_dir, backup_tick_fn tick,
               void *arg, backup_meta_t *out, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    store_backup_info_t *infos = NULL;
    size_t n = 0;
    char db[PATH_MAX], src[PATH_MAX], dst[PATH_MAX], mark[PATH_MAX + 32];
    store_t *st = NULL;
    bool made = false, touched = false;
    memset(out, 0, sizeof *out);
    int state = s_dir_state(data_dir, errbuf);
    if (state < 0)
        return CRM_ERR_FAILED_PRECONDITION;
    int lock = s_lock(backup_dir, false, errbuf);
    if (lock < 0)
        return CRM_ERR_UNAVAILABLE;
    if ((rc = store_backup_list(backup_dir, &infos, &n, errbuf)) != CRM_OK)
        goto cleanup;
    size_t i = 0;
    if (n && !id)
        id = infos[n - 1].id;
    for (; i < n && infos[i].id != id; i++)
        ;
    if (i == n) {
        if (n)
            s_fmt(errbuf, "backup dir '%s' has no backup %u (it has %u to %u; "
                     "'crm-admin backup list --dir %s')", backup_dir, id, infos[0].id,
                     infos[n - 1].id, backup_dir);
        else
            s_fmt(errbuf, "backup dir '%s' holds no backup", backup_dir);
        rc = CRM_ERR_NOT_FOUND;
        goto cleanup;
    }
    out->id = id;
    out->time_ms = infos[i].time * 1000;
    out->size = infos[i].size;
    out->files = infos[i].files;
    s_meta_read(backup_dir, out);
    if (!out->has_keys) {
        s_fmt(errbuf, "backup %u in '%s' carries no server keys (oneview/%u/"
                 "server.key): it was not made by crm-admin or crmd, or was damaged",
                 id, backup_dir, id);
        rc = CRM_ERR_FAILED_PRECONDITION;
        goto cleanup;
    }
    if (state == 1) {
        if ((rc = s_mkdir(data_dir, errbuf)) != CRM_OK)
            goto cleanup;
        made = true;
    }
    touched = true;
    chmod(data_dir, 0700);
    snprintf(mark, sizeof mark, "%s/" STORE_RESTORE_MARK, data_dir);
    if ((rc = s_write_mark(mark, data_dir, errbuf)) != CRM_OK)
        goto cleanup;
    snprintf(db, sizeof db, "%s/db", data_dir);
    s_sampler_t sampler;
    s_sampler_start(&sampler, data_dir, BACKUP_RESTORING, out->size, tick, arg);
    rc = store_backup_restore(backup_dir, id, db, errbuf);
    s_sampler_stop(&sampler, rc == CRM_OK);
    if (rc != CRM_OK) {
        /* RocksDB's message does not name the file: find it */
        size_t nfiles;
        char which[CRM_ERRBUF];
        if (s_check_checksums(backup_dir, id, &nfiles, which) != CRM_OK)
            s_fmt(errbuf, "%s; restore another backup ('crm-admin backup list --dir %s')",
                  which, backup_dir);
        goto cleanup;
    }
    for (size_t k = 0; k < SIDE_FILES; k++) {
        snprintf(src, sizeof src, "%s/oneview/%u/%s", backup_dir, id, s_side_files[k]);
        snprintf(dst, sizeof dst, "%s/%s", data_dir, s_side_files[k]);
        crm_err_t crc = s_copy_file(src, dst, errbuf);
        /* the keys always; the others when the backup says it saved them (one without a
           "sides" line: when they are there) */
        bool needed = k < 2 || (out->sides != SIDES_UNKNOWN && (out->sides & (1u << k)));
        if (crc != CRM_OK && (crc != CRM_ERR_NOT_FOUND || needed)) {
            if (crc == CRM_ERR_NOT_FOUND)
                s_fmt(errbuf, "backup %u lacks '%s', which was saved with it: the backup is "
                              "damaged; restore another ('crm-admin backup list --dir %s')",
                      id, src, backup_dir);
            rc = crc;
            goto cleanup;
        }
    }
    { /* the server key pair brought back is whole: a damaged secret passed, and crmd
         then refused the restored dir */
        crm_keypair_t kp;
        char why[CRM_ERRBUF];
        snprintf(src, sizeof src, "%s/oneview/%u/server.key", backup_dir, id);
        crm_err_t krc = crm_keys_load(src, &kp, why);
        sodium_memzero(&kp, sizeof kp);
        if (krc != CRM_OK) {
            s_fmt(errbuf, "backup %u: its server key is damaged (%s); restore another backup",
                  id, why);
            rc = CRM_ERR_STORAGE;
            goto cleanup;
        }
    }
    /* the restored store opens and holds what the sidecar says; a backup of an
       older format restores as it was (the caller says to upgrade it) */
    if ((rc = store_open(data_dir, STORE_ANY_FORMAT | STORE_RESTORING, &st, errbuf)) != CRM_OK)
        goto cleanup;
    if (out->has_meta && store_last_seq(st) != out->seq) {
        s_fmt(errbuf, "backup %u restored to sequence %" PRIu64 " but its "
                 "metadata says %" PRIu64 ": the backup is inconsistent; try an older one",
                 id, store_last_seq(st), out->seq);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    out->seq = store_last_seq(st);
    out->format = store_format(st);
    if (out->format > STORE_FORMAT) {
        s_fmt(errbuf, "backup %u has format %u, newer than this OneView's %d: restore it with "
                      "the OneView that made it",
              id, out->format, STORE_FORMAT);
        rc = CRM_ERR_FAILED_PRECONDITION;
        goto cleanup;
    }
    /* its history goes on differently from the server backed up: a replica
       or watcher that saw changes past this point must not take this one's
       for them (RELIABILITY.md trap 15) */
    if ((rc = store_new_history(st, &out->history, errbuf)) != CRM_OK)
        goto cleanup;
    store_destroy(&st);
    s_tighten(data_dir);
    /* done: the data dir serves from now on (the removal not synced: after a power
       cut the mark may be back, and the dir refused - safe, a restore again) */
    if (unlink(mark) != 0) {
        s_fmt(errbuf, "cannot remove '%s' after the restore: %s", mark, strerror(errno));
        rc = CRM_ERR_STORAGE;
    } else {
        s_sync_path(data_dir);
    }
cleanup:
    store_destroy(&st);
    if (rc != CRM_OK && touched) {
        /* it was empty or absent: take back everything we put there, the mark last (a
           crash meanwhile leaves a dir that is refused, never one that serves) */
        for (size_t k = 0; k < sizeof s_side_files / sizeof s_side_files[0]; k++) {
            snprintf(dst, sizeof dst, "%s/%s", data_dir, s_side_files[k]);
            unlink(dst);
        }
        backup_remove_tree(db);
        unlink(mark);
        if (made)
            backup_remove_tree(data_dir);
    }
    free(infos);
    s_unlock(lock);
    return rc;
}

/* ==== The server's job thread ==== */

struct backup_job {
    store_t *store;          /* borrowed, outlives the job */
    char data_dir[PATH_MAX];
    char sched_dir[1024];    /* "" if not scheduled */
    int64_t every_ms;
    uint32_t sched_keep;
    int64_t next_mono_us;    /* the next scheduled start */
    pthread_t thread;
    bool joinable;           /* a thread was started and not yet joined */
    uint32_t keep;           /* the running job's retention */
    pthread_mutex_t mu;      /* guards status only; never held across I/O */
    backup_status_t status;
};

backup_job_t *
backup_job_new(store_t *store, const char *data_dir, const char *sched_dir, int64_t every_ms,
               uint32_t keep)
{
    backup_job_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->store = store;
    snprintf(self->data_dir, sizeof self->data_dir, "%s", data_dir);
    if (sched_dir && every_ms > 0) {
        snprintf(self->sched_dir, sizeof self->sched_dir, "%s", sched_dir);
        self->every_ms = every_ms;
        self->sched_keep = keep;
        self->next_mono_us = crm_time_mono_us() + every_ms * 1000;
        self->status.next_ms = crm_time_now_ms() + every_ms;
    }
    pthread_mutex_init(&self->mu, NULL);
    return self;
}

static void
s_job_tick(const backup_progress_t *p, void *arg)
{
    backup_job_t *self = arg;
    pthread_mutex_lock(&self->mu);
    self->status.progress = *p;
    pthread_mutex_unlock(&self->mu);
}

static void *
s_job_main(void *arg)
{
    backup_job_t *self = arg;
    char errbuf[CRM_ERRBUF] = "", dir[sizeof self->status.dir];
    backup_meta_t meta;
    /* below the server thread: the copy's worker threads, created from this one,
       inherit it (Linux nice values are per thread) */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKUP_NICE);
    pthread_mutex_lock(&self->mu);
    snprintf(dir, sizeof dir, "%s", self->status.dir);
    uint32_t keep = self->keep;
    pthread_mutex_unlock(&self->mu);
    int64_t t0 = crm_time_mono_us();
    crm_err_t rc = backup_run(self->store, self->data_dir, dir, keep, s_job_tick, self, &meta,
                              errbuf);
    int64_t ms = (crm_time_mono_us() - t0) / 1000;
    if (rc == CRM_OK)
        crm_log(CRM_LOG_INFO, "backup %u written to '%s' in %" PRId64 " ms: sequence %" PRIu64
                ", %" PRIu64 " bytes",
                meta.id, dir, ms, meta.seq, meta.size);
    else /* (a dir refused as given is the admin's to fix, not a fault of the server) */
        crm_log(rc == CRM_ERR_INVALID_ARGUMENT ? CRM_LOG_WARN : CRM_LOG_ERROR,
                "backup into '%s' failed: %s", dir, errbuf);
    pthread_mutex_lock(&self->mu);
    self->status.running = false;
    self->status.finished = self->status.job;
    self->status.last_ok = rc == CRM_OK;
    self->status.progress.phase = BACKUP_IDLE;
    if (rc == CRM_OK) {
        self->status.last = meta;
    } else {
        s_copy_str(self->status.last_error, sizeof self->status.last_error, errbuf);
        self->status.last_error_ms = crm_time_now_ms();
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* Join a finished thread (never blocks: only called when not running). */
static void
s_job_reap(backup_job_t *self)
{
    if (self->joinable) {
        pthread_join(self->thread, NULL);
        self->joinable = false;
    }
}

crm_err_t
backup_job_start(backup_job_t *self, const char *dir, uint32_t keep, uint64_t *job, char *errbuf)
{
    *job = 0;
    if (!dir || !*dir) {
        if (!self->sched_dir[0]) {
            s_fmt(errbuf, "no backup dir given and this crmd has none "
                     "(--backup-dir): say where, e.g. 'crm-admin backup create --to DIR'");
            return CRM_ERR_INVALID_ARGUMENT;
        }
        dir = self->sched_dir;
        keep = keep ? keep : self->sched_keep;
    }
    if (strlen(dir) >= sizeof self->status.dir) {
        s_fmt(errbuf, "backup dir path is too long");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&self->mu);
    bool running = self->status.running;
    pthread_mutex_unlock(&self->mu);
    if (running) {
        s_fmt(errbuf, "a backup into '%s' is already running; wait for it "
                 "('crm-admin backup status')", self->status.dir);
        return CRM_ERR_UNAVAILABLE;
    }
    s_job_reap(self);
    pthread_mutex_lock(&self->mu);
    self->status.running = true;
    *job = ++self->status.job;
    snprintf(self->status.dir, sizeof self->status.dir, "%s", dir);
    self->status.started_ms = crm_time_now_ms();
    memset(&self->status.progress, 0, sizeof self->status.progress);
    self->status.progress.phase = BACKUP_CHECKPOINT;
    self->keep = keep;
    pthread_mutex_unlock(&self->mu);
    if (pthread_create(&self->thread, NULL, s_job_main, self) != 0) {
        pthread_mutex_lock(&self->mu);
        self->status.running = false;
        self->status.finished = *job;
        pthread_mutex_unlock(&self->mu);
        s_fmt(errbuf, "cannot start the backup thread: %s", strerror(errno));
        return CRM_ERR_INTERNAL;
    }
    self->joinable = true;
    return CRM_OK;
}

void
backup_job_tick(backup_job_t *self)
{
    if (!self || !self->every_ms)
        return;
    int64_t now = crm_time_mono_us();
    if (now < self->next_mono_us)
        return;
    pthread_mutex_lock(&self->mu);
    bool running = self->status.running;
    pthread_mutex_unlock(&self->mu);
    if (running)
        return; /* due, but a backup is running: start as soon as it has finished */
    char errbuf[CRM_ERRBUF];
    uint64_t job;
    self->next_mono_us = now + self->every_ms * 1000;
    pthread_mutex_lock(&self->mu);
    self->status.next_ms = crm_time_now_ms() + self->every_ms;
    pthread_mutex_unlock(&self->mu);
    if (backup_job_start(self, NULL, 0, &job, errbuf) != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "scheduled backup not started: %s", errbuf);
        pthread_mutex_lock(&self->mu);
        s_fmt(self->status.last_error, "scheduled backup not started: %s", errbuf);
        self->status.last_error_ms = crm_time_now_ms();
        pthread_mutex_unlock(&self->mu);
    }
}

void
backup_job_status(backup_job_t *self, backup_status_t *out)
{
    pthread_mutex_lock(&self->mu);
    *out = self->status;
    pthread_mutex_unlock(&self->mu);
}

void
backup_job_destroy(backup_job_t **self_p)
{
    backup_job_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    bool running = self->status.running;
    pthread_mutex_unlock(&self->mu);
    if (running)
        crm_log(CRM_LOG_INFO, "waiting for the backup in progress to finish");
    s_job_reap(self);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
