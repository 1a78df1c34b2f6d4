/*  =========================================================================
    faultfs - an LD_PRELOAD shim that injects storage faults under one dir

    For the fault tests only; never linked into crmd. Loaded with
      LD_PRELOAD=libfaultfs.so FAULTFS_DIR=<data dir> FAULTFS_CTL=<file>
    it wraps the libc calls RocksDB writes through (open/openat with
    O_CREAT, write, pwrite, writev, pwritev, fallocate, ftruncate, fsync,
    fdatasync) for files whose path starts with FAULTFS_DIR. Everything else
    passes through untouched.

    The control file says what to do; it is re-read when its mtime changes,
    so a test steers a running server by rewriting it:
      (empty) or "ok"        no faults
      "ENOSPC [SUFFIX]"      every write-ish call fails with ENOSPC
      "EIO [SUFFIX]"         ... with EIO
      "KILL [SUFFIX]"        the first such call kills the process (SIGKILL): a crash
                             at a chosen point, as kill -9 there would be
    With SUFFIX only files whose name ends in it fail (".log": the WAL).

    FAULTFS_SYNCLOG=<file> (power-loss simulation): after every successful
    fsync/fdatasync of a file under the dir, one line "<path> <size>" is
    appended to that file, so that after a kill -9 the test can cut every
    file back to the length it last had when synced (tests/fault/powercut.py)
    - the bytes the page cache would have lost at a power cut. Directory
    syncs are logged as "<dir> dir", renames under the dir (RocksDB writes
    CURRENT and OPTIONS under a temporary name, then renames) as
    "R<TAB><old><TAB><new>", so the synced length follows the file.

    FAULTFS_CLOCK_MS=<ms since the epoch>: CLOCK_REALTIME reads as that
    instant, always (a clock stepped back across a restart, frozen so the
    same millisecond recurs).
    =========================================================================
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec s_ctl_mtime;
static int s_fail_errno;        /* 0: no fault; S_KILL: die */
#define S_KILL (-1)
static char s_fail_suffix[64];  /* "" = every file */

#define REAL(ret, name, ...)                                                                       \
    static ret (*real_##name)(__VA_ARGS__);                                                        \
    if (!real_##name)                                                                              \
        *(void **)&real_##name = dlsym(RTLD_NEXT, #name);

/* Re-read the control file if it changed. */
static void
s_reload(void)
{
    const char *ctl = getenv("FAULTFS_CTL");
    struct stat st;
    if (!ctl || stat(ctl, &st) != 0) {
        s_fail_errno = 0;
        return;
    }
    if (st.st_mtim.tv_sec == s_ctl_mtime.tv_sec && st.st_mtim.tv_nsec == s_ctl_mtime.tv_nsec)
        return;
    s_ctl_mtime = st.st_mtim;
    char buf[128] = "", name[32] = "", suffix[64] = "";
    FILE *f = fopen(ctl, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    sscanf(buf, "%31s %63s", name, suffix);
    s_fail_errno = !strcmp(name, "ENOSPC") ? ENOSPC
                   : !strcmp(name, "EIO")  ? EIO
                   : !strcmp(name, "KILL") ? S_KILL
                                           : 0;
    snprintf(s_fail_suffix, sizeof s_fail_suffix, "%s", suffix);
}

static bool
s_under(const char *path)
{
    const char *dir = getenv("FAULTFS_DIR");
    return dir && *dir && !strncmp(path, dir, strlen(dir));
}

/* The errno to fail a call on PATH with, or 0. */
static int
s_fault_path(const char *path)
{
    if (!s_under(path))
        return 0;
    pthread_mutex_lock(&s_lock);
    s_reload();
    int e = s_fail_errno;
    size_t n = strlen(path), m = strlen(s_fail_suffix);
    if (e && m && (n < m || strcmp(path + n - m, s_fail_suffix)))
        e = 0;
    pthread_mutex_unlock(&s_lock);
    if (e == S_KILL)
        raise(SIGKILL);
    return e;
}

static bool
s_fd_path(int fd, char *path, size_t size)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    if (n < 0)
        return false;
    path[n] = '\0';
    return true;
}

static int
s_fault_fd(int fd)
{
    char path[PATH_MAX];
    return s_fd_path(fd, path, sizeof path) ? s_fault_path(path) : 0;
}

/* After a successful sync of FD: log its synced length for the power-cut tool. */
static void
s_log_sync(int fd)
{
    const char *log = getenv("FAULTFS_SYNCLOG");
    char path[PATH_MAX];
    struct stat st;
    if (!log || !s_fd_path(fd, path, sizeof path) || !s_under(path) || fstat(fd, &st) != 0)
        return;
    char line[PATH_MAX + 32];
    int n = S_ISDIR(st.st_mode) ? snprintf(line, sizeof line, "%s dir\n", path)
                                : snprintf(line, sizeof line, "%s %lld\n", path,
                                           (long long)st.st_size);
    REAL(ssize_t, write, int, const void *, size_t)
    pthread_mutex_lock(&s_lock);
    int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (lfd >= 0) {
        real_write(lfd, line, (size_t)n); /* O_APPEND: one line, one write */
        close(lfd);
    }
    pthread_mutex_unlock(&s_lock);
}

#define FAIL_FD(fd)                                                                                \
    do {                                                                                           \
        int e_ = s_fault_fd(fd);                                                                   \
        if (e_) {                                                                                  \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

ssize_t
write(int fd, const void *buf, size_t n)
{
    REAL(ssize_t, write, int, const void *, size_t)
    FAIL_FD(fd);
    return real_write(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
    FAIL_FD(fd);
    return real_pwrite(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t)
    FAIL_FD(fd);
    return real_pwrite64(fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(ssize_t, writev, int, const struct iovec *, int)
    FAIL_FD(fd);
    return real_writev(fd, iov, cnt);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t)
    FAIL_FD(fd);
    return real_pwritev(fd, iov, cnt, off);
}

int
fallocate(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate, int, int, off_t, off_t)
    FAIL_FD(fd);
    return real_fallocate(fd, mode, off, len);
}

int
fallocate64(int fd, int mode, off_t off, off_t len)
{
    REAL(int, fallocate64, int, int, off_t, off_t)
    FAIL_FD(fd);
    return real_fallocate64(fd, mode, off, len);
}

int
ftruncate(int fd, off_t len)
{
    REAL(int, ftruncate, int, off_t)
    FAIL_FD(fd);
    return real_ftruncate(fd, len);
}

int
fsync(int fd)
{
    REAL(int, fsync, int)
    FAIL_FD(fd);
    int rc = real_fsync(fd);
    if (rc == 0)
        s_log_sync(fd);
    return rc;
}

int
fdatasync(int fd)
{
    REAL(int, fdatasync, int)
    FAIL_FD(fd);
    int rc = real_fdatasync(fd);
    if (rc == 0)
        s_log_sync(fd);
    return rc;
}

/* Creating a file under the dir fails too (a full disk has no room for it). */
static int
s_fault_create(int dirfd, const char *path, int flags)
{
    if (!(flags & O_CREAT))
        return 0;
    char full[2 * PATH_MAX + 2];
    if (path[0] == '/' || dirfd == AT_FDCWD) {
        if (path[0] == '/')
            snprintf(full, sizeof full, "%s", path);
        else if (!getcwd(full, sizeof full - 1 - strlen(path)))
            return 0;
        else
            snprintf(full + strlen(full), sizeof full - strlen(full), "/%s", path);
    } else {
        char d[PATH_MAX];
        if (!s_fd_path(dirfd, d, sizeof d))
            return 0;
        snprintf(full, sizeof full, "%s/%s", d, path);
    }
    struct stat st;
    if (stat(full, &st) == 0)
        return 0; /* already there: no new space needed for the name */
    return s_fault_path(full);
}

#define OPEN_BODY(realcall)                                                                        \
    mode_t mode = 0;                                                                               \
    if (flags & (O_CREAT | O_TMPFILE)) {                                                           \
        va_list ap;                                                                                \
        va_start(ap, flags);                                                                       \
        mode = (mode_t)va_arg(ap, int);                                                            \
        va_end(ap);                                                                                \
    }                                                                                              \
    int e_ = s_fault_create(dirfd, path, flags);                                                   \
    if (e_) {                                                                                      \
        errno = e_;                                                                                \
        return -1;                                                                                 \
    }                                                                                              \
    return realcall;

int
open(const char *path, int flags, ...)
{
    REAL(int, open, const char *, int, ...)
    int dirfd = AT_FDCWD;
    OPEN_BODY(real_open(path, flags, mode))
}

int
open64(const char *path, int flags, ...)
{
    REAL(int, open64, const char *, int, ...)
    int dirfd = AT_FDCWD;
    OPEN_BODY(real_open64(path, flags, mode))
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    REAL(int, openat, int, const char *, int, ...)
    OPEN_BODY(real_openat(dirfd, path, flags, mode))
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    REAL(int, openat64, int, const char *, int, ...)
    OPEN_BODY(real_openat64(dirfd, path, flags, mode))
}

int
clock_gettime(clockid_t clk, struct timespec *ts)
{
    REAL(int, clock_gettime, clockid_t, struct timespec *)
    const char *frozen = getenv("FAULTFS_CLOCK_MS");
    if (clk == CLOCK_REALTIME && frozen && *frozen) {
        long long ms = atoll(frozen);
        ts->tv_sec = (time_t)(ms / 1000);
        ts->tv_nsec = (long)(ms % 1000) * 1000000L;
        return 0;
    }
    return real_clock_gettime(clk, ts);
}

int
rename(const char *from, const char *to)
{
    REAL(int, rename, const char *, const char *)
    int rc = real_rename(from, to);
    const char *log = getenv("FAULTFS_SYNCLOG");
    if (rc == 0 && log && from[0] == '/' && to[0] == '/' && s_under(to)) {
        char line[2 * PATH_MAX + 8];
        int n = snprintf(line, sizeof line, "R\t%s\t%s\n", from, to);
        REAL(ssize_t, write, int, const void *, size_t)
        pthread_mutex_lock(&s_lock);
        int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (lfd >= 0 && n > 0 && (size_t)n < sizeof line) {
            real_write(lfd, line, (size_t)n);
        }
        if (lfd >= 0)
            close(lfd);
        pthread_mutex_unlock(&s_lock);
    }
    return rc;
}
