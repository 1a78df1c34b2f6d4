/*  =========================================================================
    adm_backup - `crm-admin backup create|status|list|verify|purge` and
                 `crm-admin restore`

    create goes through the running crmd (it holds the store's lock; the
    work runs on the server's backup thread and this command polls its
    status 4 times a second), or, with --data DIR on a stopped data
    dir, opens the store and runs the same backup_run() here. list, verify,
    purge and restore work on the backup dir itself (locked against a
    backup being written into it).

    Every command ends with one closing line saying what it did (one JSON
    object with --json); a progress bar is drawn on stderr only on a
    terminal and never with --json.
    =========================================================================
*/
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adm.h"
#include "backup.h"
#include "cmd.h"
#include "conn.h"
#include "crm_time.h"
#include "store.h"

static const char s_usage[] =
    "usage: crm-admin backup create --to DIR [--keep N] [--data DATADIR | --config ENROLL]\n"
    "                               [--server ENDPOINT]\n"
    "       crm-admin backup status [--data DATADIR | --config ENROLL] [--server ENDPOINT]\n"
    "       crm-admin backup list --dir DIR\n"
    "       crm-admin backup verify --dir DIR [--id N | --all] [--scratch DIR]\n"
    "       crm-admin backup purge --dir DIR --keep N\n"
    "       crm-admin restore --from DIR [--id N] --data NEWDIR\n"
    "\n"
    "create   a hot, incremental backup through the running crmd (as DATADIR/admin.enroll\n"
    "         with --data, else your crm enrollment; you must be an admin). DIR is a path on\n"
    "         the server's machine. With --data on a stopped data dir it works directly.\n"
    "status   the server's backup job: running, last backup, last failure, next scheduled\n"
    "list     id, time, sequence number, size and record counts of every backup\n"
    "verify   size check, then a restore into a scratch dir (every file's checksum), then\n"
    "         'crm-admin check' and RocksDB's 'ldb checkconsistency' (if installed) on it;\n"
    "         default: the newest backup\n"
    "purge    delete all but the newest N backups\n"
    "restore  into a new or empty NEWDIR (refuses anything else): database, server keys and\n"
    "         rules; default: the newest backup. Then: crmd --data NEWDIR\n"
    "\n"
    "Common: --json (one JSON object as the closing line). Backups hold the server keys and\n"
    "master key: protect a backup dir exactly like the data dir (README: Backups).\n";

typedef struct {
    const char *cmd;
    const char *dir, *data, *config, *server, *scratch;
    uint32_t id, keep;
    bool keep_set, all, json, bar;
} s_args_t;

/* ==== Output ==== */

static void
s_bar(const backup_progress_t *p, void *arg)
{
    const s_args_t *a = arg;
    if (!a->bar)
        return;
    int pct = p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 0;
    if (pct > 100)
        pct = 100;
    int n = pct / 4;
    if (p->total <= 1) /* a step without a byte count */
        fprintf(stderr, "\r[%25s]       %-10s %28s", "", backup_phase_name(p->phase), "");
    else
        fprintf(stderr, "\r[%.*s%*s] %3d%%  %-10s %8.1f of %.1f MB ", n,
                "=========================", 25 - n, "", pct, backup_phase_name(p->phase),
                (double)p->done / 1e6, (double)p->total / 1e6);
    fflush(stderr);
}

static void
s_bar_clear(const s_args_t *a)
{
    if (a->bar)
        fprintf(stderr, "\r%*s\r", 72, "");
}

/* The closing line of a failure: stderr text (and a JSON object on stdout). */
static int
s_fail(const s_args_t *a, int code, const char *msg)
{
    s_bar_clear(a);
    fprintf(stderr, "crm-admin %s: %s\n", a->cmd, msg);
    if (a->json) {
        printf("{\"ok\":false,\"command\":");
        out_json_str(stdout, a->cmd);
        printf(",\"error\":");
        out_json_str(stdout, msg);
        printf("}\n");
    }
    return code;
}

static void
s_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void
s_counts_text(const backup_meta_t *m, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n_kinds && used + 1 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s %" PRIu64, i ? ", " : "",
                                 m->kinds[i].name, m->kinds[i].count);
    if (used + 1 < cap)
        snprintf(out + used, cap - used, "%susers %" PRIu64, used ? ", " : "", m->users);
}

static void
s_json_meta(const backup_meta_t *m)
{
    char when[40]; /* RFC 3339 with the caller's offset, as every time in --json */
    out_time(m->time_ms, OUT_TIME_RFC3339, when);
    printf("{\"id\":%u,\"time\":\"%s\",\"seq\":%" PRIu64 ",\"size\":%" PRIu64
           ",\"files\":%u,\"format\":%u,\"users\":%" PRIu64 ",\"has_meta\":%s,\"counts\":{",
           m->id, when, m->seq, m->size, m->files, m->format, m->users,
           m->has_meta ? "true" : "false");
    for (size_t i = 0; i < m->n_kinds; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", m->kinds[i].name, m->kinds[i].count);
    printf("}}");
}

/* ==== create / status through the server ==== */

static void
s_meta_from_info(const Crm__BackupInfo *b, backup_meta_t *m)
{
    memset(m, 0, sizeof *m);
    m->id = b->id;
    m->time_ms = b->time;
    m->seq = b->seq;
    m->size = b->size;
    m->files = b->files;
    m->format = b->format;
    m->users = b->users;
    m->has_meta = true;
    for (size_t i = 0; i < b->n_counts && i < BACKUP_MAX_KINDS; i++) {
        snprintf(m->kinds[i].name, sizeof m->kinds[i].name, "%s", b->counts[i]->kind);
        m->kinds[i].count = b->counts[i]->count;
        m->n_kinds++;
    }
}

static int
s_connect(const s_args_t *a, conn_t **conn)
{
    static char admin_path[PATH_MAX];
    const char *env = getenv("CRM_SERVER");
    cli_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.json = a->json;
    ctx.config = a->config;
    ctx.server = a->server ? a->server : (env && *env ? env : NULL);
    ctx.timeout_ms = 5000;
    if (!ctx.config && a->data) {
        snprintf(admin_path, sizeof admin_path, "%s/admin.enroll", a->data);
        ctx.config = admin_path;
    }
    return conn_open(&ctx, conn);
}

static int
s_call(conn_t *conn, Crm__Op op, Crm__BackupRequest *br, Crm__Reply **reply)
{
    Crm__Request r = CRM__REQUEST__INIT;
    r.op = op;
    if (br) {
        r.body_case = CRM__REQUEST__BODY_BACKUP;
        r.backup = br;
    }
    int rc = conn_call(conn, &r, reply);
    if (rc == EXIT_OK && (*reply)->body_case != CRM__REPLY__BODY_BACKUP) {
        conn_reply_free(reply);
        fprintf(stderr, "crm-admin backup: the server sent an unexpected reply\n");
        return EXIT_REFUSED;
    }
    return rc;
}

static void
s_print_created(const s_args_t *a, const backup_meta_t *m, const char *dir, double secs)
{
    char counts[512];
    s_bar_clear(a);
    s_counts_text(m, counts, sizeof counts);
    if (a->json) {
        printf("{\"ok\":true,\"command\":\"backup create\",\"dir\":");
        out_json_str(stdout, dir);
        printf(",\"seconds\":%.3f,\"backup\":", secs);
        s_json_meta(m);
        printf("}\n");
    } else {
        printf("backup %u written to %s in %.1f s: sequence %" PRIu64 ", %s; %.1f MB in %u "
               "files (shared with earlier backups where unchanged)\n",
               m->id, dir, secs, m->seq, counts, (double)m->size / 1e6, m->files);
    }
}

/* DIR made absolute against our cwd (the server resolves paths in its own). */
static const char *
s_absolute(const char *dir, char *buf, size_t cap)
{
    char cwd[PATH_MAX];
    if (dir[0] == '/' || !getcwd(cwd, sizeof cwd))
        return dir;
    snprintf(buf, cap, "%s/%s", cwd, dir);
    return buf;
}

static int
s_create_remote(const s_args_t *a)
{
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    char abs[PATH_MAX + 8];
    int rc = s_connect(a, &conn);
    if (rc != EXIT_OK)
        return rc;
    Crm__BackupRequest br = CRM__BACKUP_REQUEST__INIT;
    br.to = (char *)(a->dir ? s_absolute(a->dir, abs, sizeof abs) : "");
    br.keep = a->keep;
    int64_t t0 = crm_time_mono_us();
    if ((rc = s_call(conn, CRM__OP__OP_BACKUP_CREATE, &br, &reply)) != EXIT_OK)
        goto cleanup;
    uint64_t job = reply->backup->job;
    for (;;) {
        conn_reply_free(&reply);
        usleep(250000); /* each poll is an audited admin read: not too often */
        if ((rc = s_call(conn, CRM__OP__OP_BACKUP_STATUS, NULL, &reply)) != EXIT_OK)
            goto cleanup;
        const Crm__BackupReply *st = reply->backup;
        if (st->finished >= job)
            break;
        backup_progress_t p = {BACKUP_IDLE, st->done, st->total};
        for (int ph = BACKUP_CHECKPOINT; ph <= BACKUP_FINISHING; ph++)
            if (!strcmp(st->phase, backup_phase_name((backup_phase_t)ph)))
                p.phase = (backup_phase_t)ph;
        s_bar(&p, (void *)a);
    }
    const Crm__BackupReply *st = reply->backup;
    double secs = (double)(crm_time_mono_us() - t0) / 1e6;
    if (st->finished == job && st->last_ok && st->last) {
        backup_meta_t m;
        s_meta_from_info(st->last, &m);
        s_print_created(a, &m, st->dir, secs);
    } else {
        char msg[CRM_ERRBUF + 64];
        snprintf(msg, sizeof msg, "%s (the server's log has the details)",
                 *st->last_error ? st->last_error : "the backup failed");
        rc = s_fail(a, EXIT_REFUSED, msg);
    }
cleanup:
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

static int
s_create(const s_args_t *a)
{
    char errbuf[CRM_ERRBUF];
    if (!a->dir)
        return s_fail(a, EXIT_USAGE, "--to DIR is required (where the backups go)");
    if (a->data) {
        store_t *store = NULL;
        crm_err_t rc = store_open(a->data, 0, &store, errbuf);
        if (rc == CRM_ERR_UNAVAILABLE)
            return s_create_remote(a); /* a running server holds it: go through it */
        if (rc != CRM_OK)
            return s_fail(a, EXIT_REFUSED, errbuf);
        backup_meta_t m;
        int64_t t0 = crm_time_mono_us();
        rc = backup_run(store, a->data, a->dir, a->keep, s_bar, (void *)a, &m, errbuf);
        store_destroy(&store);
        if (rc != CRM_OK)
            return s_fail(a, EXIT_REFUSED, errbuf);
        s_print_created(a, &m, a->dir, (double)(crm_time_mono_us() - t0) / 1e6);
        return EXIT_OK;
    }
    return s_create_remote(a);
}

static int
s_status(const s_args_t *a)
{
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = s_connect(a, &conn);
    if (rc != EXIT_OK)
        return rc;
    if ((rc = s_call(conn, CRM__OP__OP_BACKUP_STATUS, NULL, &reply)) == EXIT_OK) {
        const Crm__BackupReply *st = reply->backup;
        char when[32];
        if (a->json) {
            out_json(stdout, &st->base);
        } else {
            if (st->running)
                printf("running:        backup into %s, %s, %.1f of %.1f MB\n", st->dir,
                       st->phase, (double)st->done / 1e6, (double)st->total / 1e6);
            if (st->last) {
                s_time(st->last->time, when);
                printf("last backup:    %u at %s, sequence %" PRIu64 ", %.1f MB\n",
                       st->last->id, when, st->last->seq, (double)st->last->size / 1e6);
            }
            if (*st->last_error) {
                s_time(st->last_error_time, when);
                printf("last failure:   %s: %s\n", when, st->last_error);
            }
            if (st->next_scheduled) {
                s_time(st->next_scheduled, when);
                printf("next scheduled: %s\n", when);
            }
            printf("backup status: %s; %" PRIu64 " backup%s made since the server started%s\n",
                   st->running ? "a backup is running" : "idle", st->finished,
                   st->finished == 1 ? "" : "s",
                   *st->last_error ? "; the last attempt FAILED (see above)" : "");
        }
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* ==== list / purge ==== */

static int
s_list(const s_args_t *a)
{
    char errbuf[CRM_ERRBUF], last_error[CRM_ERRBUF];
    backup_meta_t *ms = NULL;
    size_t n = 0;
    if (!a->dir)
        return s_fail(a, EXIT_USAGE, "--dir DIR is required");
    if (backup_list(a->dir, &ms, &n, last_error, errbuf) != CRM_OK)
        return s_fail(a, EXIT_REFUSED, errbuf);
    uint64_t total = 0;
    if (a->json) {
        printf("{\"ok\":true,\"command\":\"backup list\",\"dir\":");
        out_json_str(stdout, a->dir);
        printf(",\"last_error\":");
        out_json_str(stdout, last_error);
        printf(",\"backups\":[");
        for (size_t i = 0; i < n; i++) {
            printf(i ? "," : "");
            s_json_meta(&ms[i]);
        }
        printf("]}\n");
    } else {
        printf("%-4s %-20s %10s %10s %6s  %s\n", "ID", "TIME (UTC)", "SEQUENCE", "SIZE MB",
               "FILES", "COUNTS");
        for (size_t i = 0; i < n; i++) {
            char when[32], counts[512], seq[24];
            s_time(ms[i].time_ms, when);
            s_counts_text(&ms[i], counts, sizeof counts);
            snprintf(seq, sizeof seq, "%" PRIu64, ms[i].seq);
            printf("%-4u %-20s %10s %10.1f %6u  %s\n", ms[i].id, when,
                   ms[i].has_meta ? seq : "?", (double)ms[i].size / 1e6, ms[i].files,
                   ms[i].has_meta ? counts : "(no OneView metadata)");
            total += ms[i].size;
        }
        if (*last_error)
            printf("LAST ATTEMPT FAILED: %s\n", last_error);
        printf("%zu backup%s in %s%s\n", n, n == 1 ? "" : "s", a->dir,
               *last_error ? "; the last backup attempt failed (above)" : "");
    }
    free(ms);
    return EXIT_OK;
}

static int
s_purge(const s_args_t *a)
{
    char errbuf[CRM_ERRBUF];
    size_t removed = 0;
    if (!a->dir || !a->keep_set || a->keep == 0)
        return s_fail(a, EXIT_USAGE, "--dir DIR and --keep N (N >= 1) are required");
    if (backup_purge(a->dir, a->keep, &removed, errbuf) != CRM_OK)
        return s_fail(a, EXIT_REFUSED, errbuf);
    if (a->json)
        printf("{\"ok\":true,\"command\":\"backup purge\",\"removed\":%zu,\"keep\":%u}\n",
               removed, a->keep);
    else
        printf("purged %zu backup%s from %s; at most the newest %u kept\n", removed,
               removed == 1 ? "" : "s", a->dir, a->keep);
    return EXIT_OK;
}

/* ==== verify ==== */

/* Run ARGV, its output into OUT (CAP); returns the exit status (-1: could not run). */
static int
s_run(char *const argv[], char *out, size_t cap)
{
    int fds[2];
    out[0] = '\0';
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    char buf[4096];
    while ((n = read(fds[0], buf, sizeof buf)) > 0) {
        size_t take = (size_t)n < cap - 1 - used ? (size_t)n : cap - 1 - used;
        memcpy(out + used, buf, take);
        used += take;
    }
    out[used] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* True if PROG is an executable in PATH. */
static bool
s_in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, path, prog);
        if (access(buf, X_OK) == 0)
            return true;
        path += len + (path[len] == ':');
    }
    return false;
}

/* Verify backup ID; on failure errbuf says what and what to do. LDB says how RocksDB's
   consistency check went ("ok", "skipped: ..."). */
static crm_err_t
s_verify_one(const s_args_t *a, uint32_t id, backup_meta_t *m, char *ldb, size_t ldb_cap,
             char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char scratch[PATH_MAX], data[PATH_MAX + 8], db[PATH_MAX + 16], self[PATH_MAX];
    char *out = malloc(65536);
    CRM_ASSERT_ALLOC(out);
    const char *tmp = a->scratch ? a->scratch : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(scratch, sizeof scratch, "%s/crm-verify-XXXXXX", tmp);
    if (!mkdtemp(scratch)) {
        snprintf(errbuf, CRM_ERRBUF, "cannot make a scratch dir in '%s': %s (use --scratch DIR)",
                 tmp, strerror(errno));
        free(out);
        return CRM_ERR_STORAGE;
    }
    snprintf(data, sizeof data, "%s/data", scratch);
    snprintf(db, sizeof db, "%s/db", data);
    /* 1. every file there with its size (RocksDB's verify), 2. restore: every checksum */
    size_t nfiles = 0;
    if ((rc = backup_check_sizes(a->dir, id, errbuf)) != CRM_OK ||
        (rc = backup_check_checksums(a->dir, id, &nfiles, errbuf)) != CRM_OK)
        goto cleanup;
    if ((rc = backup_restore(a->dir, id, data, s_bar, (void *)a, m, errbuf)) != CRM_OK)
        goto cleanup;
    s_bar_clear(a);
    /* crmd writes the sidecar's metadata with every backup: without it what the backup
       restores cannot be held against what was backed up (sequence, counts, side files) */
    if (!m->has_meta) {
        snprintf(errbuf, CRM_ERRBUF, "backup %u has no metadata ('%s/oneview/%u/meta'): it was "
                 "damaged or not finished, and what it restores cannot be checked", id, a->dir,
                 id);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    /* 3. our invariants: indexes, change log, derived values */
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = '\0';
    /* a backup made before an upgrade of the format is checked as it would be
       used: upgraded (in the scratch copy) first */
    if (m->format < STORE_FORMAT) {
        char *upgrade[] = {self, (char *)"upgrade", (char *)"--data", data, NULL};
        int ust = s_run(upgrade, out, 65536);
        if (ust != 0) {
            fputs(out, stderr);
            snprintf(errbuf, CRM_ERRBUF, "backup %u is of format %u and 'crm-admin upgrade' "
                     "fails on it (exit %d, its report above)", id, m->format, ust);
            rc = CRM_ERR_STORAGE;
            goto cleanup;
        }
    }
    char *check[] = {self, (char *)"check", (char *)"--data", data, NULL};
    int st = s_run(check, out, 65536);
    if (st != 0) {
        s_bar_clear(a);
        fputs(out, stderr);
        snprintf(errbuf, CRM_ERRBUF, "backup %u restores but 'crm-admin check' finds it "
                 "inconsistent (exit %d, its report above)", id, st);
        rc = CRM_ERR_STORAGE;
        goto cleanup;
    }
    /* 4. RocksDB's own consistency check, when rocksdb-tools is installed */
    if (!s_in_path("ldb")) {
        snprintf(ldb, ldb_cap, "ldb checkconsistency skipped (install rocksdb-tools)");
    } else {
        char dbarg[PATH_MAX + 32];
        snprintf(dbarg, sizeof dbarg, "--db=%s", db);
        char *argv[] = {(char *)"ldb", dbarg, (char *)"checkconsistency", NULL};
        st = s_run(argv, out, 65536);
        if (st != 0) {
            fputs(out, stderr);
            snprintf(errbuf, CRM_ERRBUF, "backup %u fails RocksDB's 'ldb checkconsistency' "
                     "(exit %d, its report above)", id, st);
            rc = CRM_ERR_STORAGE;
            goto cleanup;
        }
        snprintf(ldb, ldb_cap, "ldb checkconsistency ok");
    }
cleanup:
    backup_remove_tree(scratch);
    free(out);
    return rc;
}

static int
s_verify(const s_args_t *a)
{
    char errbuf[CRM_ERRBUF], last_error[CRM_ERRBUF], ldb[128] = "";
    backup_meta_t *ms = NULL, m;
    size_t n = 0, done = 0;
    int rc = EXIT_OK;
    if (!a->dir)
        return s_fail(a, EXIT_USAGE, "--dir DIR is required");
    if (backup_list(a->dir, &ms, &n, last_error, errbuf) != CRM_OK)
        return s_fail(a, EXIT_REFUSED, errbuf);
    if (n == 0) {
        free(ms);
        snprintf(errbuf, CRM_ERRBUF, "backup dir '%s' holds no backup", a->dir);
        return s_fail(a, EXIT_REFUSED, errbuf);
    }
    bool found = false;
    for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
        /* --all: every one; --id N: that one; default: the newest */
        if (!(a->all || (a->id ? ms[i].id == a->id : i == n - 1)))
            continue;
        found = true;
        if (s_verify_one(a, ms[i].id, &m, ldb, sizeof ldb, errbuf) != CRM_OK) {
            char msg[CRM_ERRBUF + 128];
            snprintf(msg, sizeof msg, "%s\nbackup %u is NOT usable: restore an older backup "
                     "('crm-admin backup list --dir %s') and make a new one now",
                     errbuf, ms[i].id, a->dir);
            rc = s_fail(a, EXIT_REFUSED, msg);
            break;
        }
        done++;
        if (!a->json)
            printf("backup %u verified: files and checksums intact, restores to sequence %" PRIu64
                   ", 'crm-admin check' consistent, %s\n",
                   m.id, m.seq, ldb);
    }
    if (!found) {
        snprintf(errbuf, CRM_ERRBUF, "backup dir '%s' has no backup %u", a->dir, a->id);
        rc = s_fail(a, EXIT_REFUSED, errbuf);
    }
    if (rc == EXIT_OK) {
        if (a->json)
            printf("{\"ok\":true,\"command\":\"backup verify\",\"verified\":%zu,\"ldb\":\"%s\"}\n",
                   done, ldb);
        else
            printf("verified %zu backup%s in %s: all usable\n", done, done == 1 ? "" : "s",
                   a->dir);
    }
    free(ms);
    return rc;
}

/* ==== restore ==== */

static int
s_restore(const s_args_t *a)
{
    char errbuf[CRM_ERRBUF], counts[512];
    backup_meta_t m;
    if (!a->dir || !a->data)
        return s_fail(a, EXIT_USAGE, "--from DIR and --data NEWDIR are required");
    int64_t t0 = crm_time_mono_us();
    if (backup_restore(a->dir, a->id, a->data, s_bar, (void *)a, &m, errbuf) != CRM_OK)
        return s_fail(a, EXIT_REFUSED, errbuf);
    double secs = (double)(crm_time_mono_us() - t0) / 1e6;
    s_bar_clear(a);
    s_counts_text(&m, counts, sizeof counts);
    if (a->json) {
        printf("{\"ok\":true,\"command\":\"restore\",\"data\":");
        out_json_str(stdout, a->data);
        printf(",\"seconds\":%.3f,\"history\":%" PRIu64 ",\"backup\":", secs, m.history);
        s_json_meta(&m);
        printf("}\n");
    } else {
        printf("restored backup %u into %s in %.1f s: sequence %" PRIu64 ", %s, server keys "
               "included; start it with: crmd --data %s\n",
               m.id, a->data, secs, m.seq, counts, a->data);
        printf("it begins history %" PRIu64 " after change #%" PRIu64 ": replicas and "
               "watchers that saw later changes of the server backed up are told so\n",
               m.history, m.seq);
        if (m.format < STORE_FORMAT)
            printf("the backup is of format %u: run crm-admin upgrade --data %s before starting "
                   "crmd\n",
                   m.format, a->data);
    }
    return EXIT_OK;
}

/* ==== argv ==== */

static int
s_parse(int argc, char **argv, s_args_t *a)
{
    enum { O_TO = 256, O_DIR, O_FROM, O_DATA, O_CONFIG, O_SERVER, O_ID, O_KEEP, O_ALL,
           O_SCRATCH, O_JSON };
    static const struct option longopts[] = {
        {"to", required_argument, NULL, O_TO},         {"dir", required_argument, NULL, O_DIR},
        {"from", required_argument, NULL, O_FROM},     {"data", required_argument, NULL, O_DATA},
        {"config", required_argument, NULL, O_CONFIG}, {"server", required_argument, NULL, O_SERVER},
        {"id", required_argument, NULL, O_ID},         {"keep", required_argument, NULL, O_KEEP},
        {"all", no_argument, NULL, O_ALL},             {"scratch", required_argument, NULL, O_SCRATCH},
        {"json", no_argument, NULL, O_JSON},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    char *end;
    unsigned long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_TO: case O_DIR: case O_FROM: a->dir = optarg; break;
        case O_DATA: a->data = optarg; break;
        case O_CONFIG: a->config = optarg; break;
        case O_SERVER: a->server = optarg; break;
        case O_SCRATCH: a->scratch = optarg; break;
        case O_ALL: a->all = true; break;
        case O_JSON: a->json = true; break;
        case O_ID:
        case O_KEEP:
            v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || v == 0 || v > UINT32_MAX) {
                fprintf(stderr, "crm-admin %s: %s needs a positive number, not '%s'\n", a->cmd,
                        c == O_ID ? "--id" : "--keep", optarg);
                return EXIT_USAGE;
            }
            if (c == O_ID)
                a->id = (uint32_t)v;
            else {
                a->keep = (uint32_t)v;
                a->keep_set = true;
            }
            break;
        case 'h': fputs(s_usage, stdout); return -1;
        default: fputs(s_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "crm-admin %s: unexpected argument '%s'\n", a->cmd, argv[optind]);
        return EXIT_USAGE;
    }
    a->bar = !a->json && isatty(STDERR_FILENO);
    return EXIT_OK;
}

int
adm_backup(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const s_args_t *);
    } cmds[] = {{"create", s_create}, {"list", s_list}, {"purge", s_purge},
                {"status", s_status}, {"verify", s_verify}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(s_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name))
            continue;
        char name[32];
        snprintf(name, sizeof name, "backup %s", cmds[i].name);
        s_args_t a = {.cmd = name};
        int rc = s_parse(argc - 1, argv + 1, &a);
        if (rc != EXIT_OK)
            return rc < 0 ? EXIT_OK : rc;
        return cmds[i].fn(&a);
    }
    fprintf(stderr, "crm-admin backup: unknown command '%s'\n\n%s", argv[1], s_usage);
    return EXIT_USAGE;
}

int
adm_restore(int argc, char **argv)
{
    s_args_t a = {.cmd = "restore"};
    int rc = s_parse(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    return s_restore(&a);
}
