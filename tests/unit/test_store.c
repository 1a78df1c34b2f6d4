/*  test_store - open/close, column families, group commit and sequence numbers, users */
#define _GNU_SOURCE /* memmem */
#include "test_common.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "authz.h"
#include "crm_entity.h"
#include "records.h"
#include "users.h"

static char *
s_new_store(store_t **st)
{
    char *dir = test_tmpdir(), errbuf[CRM_ERRBUF];
    assert_int_equal(store_open(dir, STORE_CREATE, st, errbuf), CRM_OK);
    return dir;
}

static void
test_store_open_errors(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    store_t *st = NULL, *st2 = NULL;
    assert_int_equal(store_open("/nonexistent/crm", 0, &st, errbuf), CRM_ERR_NOT_FOUND);
    assert_non_null(strstr(errbuf, "crm-admin init"));
    char *dir = test_tmpdir();
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_ERR_NOT_FOUND); /* not initialized */
    assert_non_null(strstr(errbuf, "not initialized"));
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_OK);
    /* a second opener is refused while the first holds the lock */
    assert_int_equal(store_open(dir, 0, &st2, errbuf), CRM_ERR_UNAVAILABLE);
    assert_non_null(strstr(errbuf, "in use"));
    assert_null(st2);
    store_destroy(&st);
    assert_null(st);
    store_destroy(&st); /* idempotent */
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_ERR_ALREADY_EXISTS);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

static void
test_store_group_commit_sequences(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    assert_int_equal(store_last_seq(st), 0);
    for (int i = 0; i < 3; i++) {
        char key[16], ev[16];
        snprintf(key, sizeof key, "r%d", i);
        snprintf(ev, sizeof ev, "e%d", i);
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), "v", 1);
        assert_int_equal(store_group_end(g, ev, strlen(ev)), (uint64_t)i + 1);
    }
    /* an aborted mutation leaves nothing and takes no number */
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "gone", 4, "v", 1);
    store_group_abort(g);
    assert_int_equal(store_group_count(g), 3);
    /* nothing visible before commit, but readable through the group */
    store_val_t v = {0};
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "r1", 2, &v), CRM_ERR_NOT_FOUND);
    assert_int_equal(store_group_get(g, STORE_CF_RECORDS, "r1", 2, &v), CRM_OK);
    store_val_release(&v);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_group_count(g), 0);
    assert_int_equal(store_last_seq(st), 3);
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "r2", 2, &v), CRM_OK);
    store_val_release(&v);
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "gone", 4, &v), CRM_ERR_NOT_FOUND);
    for (uint64_t s = 1; s <= 3; s++) {
        char want[16];
        snprintf(want, sizeof want, "e%d", (int)s - 1);
        assert_int_equal(store_changelog_get(st, s, &v), CRM_OK);
        assert_int_equal(v.len, strlen(want));
        assert_memory_equal(v.data, want, v.len);
        store_val_release(&v);
    }
    assert_int_equal(store_changelog_get(st, 4, &v), CRM_ERR_NOT_FOUND);
    store_group_destroy(&g);
    store_destroy(&st);
    /* the sequence survives a reopen and continues without a gap */
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 3);
    g = store_group_new(st);
    store_group_begin(g);
    assert_int_equal(store_group_end(g, "e3", 2), 4);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 4);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* The value of KEY in RECORDS ("" if absent): through the group G if given,
   else as committed in ST. */
static const char *
s_val(store_t *st, store_group_t *g, const char *key)
{
    static char buf[64];
    store_val_t v = {0};
    buf[0] = '\0';
    crm_err_t rc = g ? store_group_get(g, STORE_CF_RECORDS, key, strlen(key), &v)
                     : store_get(st, STORE_CF_RECORDS, key, strlen(key), &v);
    if (rc == CRM_OK) {
        snprintf(buf, sizeof buf, "%.*s", (int)v.len, v.data);
        store_val_release(&v);
    }
    return buf;
}

static void
s_mutation(store_group_t *g, const char *key, const char *val, const char *ev, uint64_t seq)
{
    store_group_begin(g);
    if (val)
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), val, strlen(val));
    else
        store_group_delete(g, STORE_CF_RECORDS, key, strlen(key));
    assert_int_equal(store_group_end(g, ev, strlen(ev)), seq);
}

/* Pipelined commits: what is in flight reads as committed through the group,
   what is staged on top of it (overwrites, deletes) wins, each commit lands
   in order with its own sequence numbers, and a refused commit gives its
   numbers back. */
static void
test_store_pipelined_commit(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = test_tmpdir(), errbuf[CRM_ERRBUF];
    /* without fsync a commit is written on the caller's thread, at once */
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_OK);
    store_group_t *g = store_group_new(st);
    bool started = true;
    s_mutation(g, "r9", "z", "e1", 1);
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_false(started);
    assert_false(store_group_in_flight(g));
    assert_int_equal(store_last_seq(st), 1);
    assert_string_equal(s_val(st, NULL, "r9"), "z");
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
    /* fsynced: the committer thread writes it */
    dir = test_tmpdir();
    assert_int_equal(store_open(dir, STORE_CREATE | STORE_SYNC, &st, errbuf), CRM_OK);
    g = store_group_new(st);
    assert_false(store_group_in_flight(g));

    s_mutation(g, "r0", "a", "e1", 1);
    s_mutation(g, "r2", "x", "e2", 2);
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_true(started);
    assert_true(store_group_in_flight(g));
    assert_true(store_group_dirty(g)); /* in flight: reads through it wait for it */
    assert_string_equal(s_val(NULL, g, "r0"), "a");

    /* a mutation rolled back while a commit is in flight (RocksDB rebuilds the
       batch's index from everything in it): the flight's entries stay readable */
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "r7", 2, "q", 1);
    store_group_abort(g);
    assert_string_equal(s_val(NULL, g, "r7"), "");
    assert_string_equal(s_val(NULL, g, "r2"), "x");

    /* staged on top of the flight: an overwrite, a new key, a delete */
    s_mutation(g, "r0", "b", "e3", 3);
    s_mutation(g, "r1", "c", "e4", 4);
    s_mutation(g, "r2", NULL, "e5", 5);
    assert_string_equal(s_val(NULL, g, "r0"), "b");
    assert_string_equal(s_val(NULL, g, "r2"), "");
    store_iter_t *it = store_group_iter_new(g, STORE_CF_RECORDS);
    char seen[64] = "";
    for (store_iter_seek(it, "r", 1); store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const char *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%.*s=%.*s ", (int)kl, k,
                 (int)vl, v);
    }
    store_iter_destroy(&it);
    assert_string_equal(seen, "r0=b r1=c ");

    /* a second start waits for the flight: the caller lands it first */
    assert_int_equal(store_group_commit_land(g, errbuf), CRM_OK);
    assert_false(store_group_in_flight(g));
    assert_int_equal(store_last_seq(st), 2);
    assert_string_equal(s_val(st, NULL, "r0"), "a");
    assert_string_equal(s_val(st, NULL, "r2"), "x");
    assert_string_equal(s_val(NULL, g, "r0"), "b"); /* the staged part still wins */
    assert_true(store_group_dirty(g));

    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_true(started);
    assert_int_equal(store_group_commit_land(g, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 5);
    assert_false(store_group_dirty(g)); /* landed, nothing staged: empty again */
    assert_string_equal(s_val(st, NULL, "r0"), "b");
    assert_string_equal(s_val(st, NULL, "r1"), "c");
    assert_string_equal(s_val(st, NULL, "r2"), "");
    for (uint64_t seq = 1; seq <= 5; seq++) {
        char want[8];
        snprintf(want, sizeof want, "e%d", (int)seq);
        store_val_t v = {0};
        assert_int_equal(store_changelog_get(st, seq, &v), CRM_OK);
        assert_memory_equal(v.data, want, v.len);
        store_val_release(&v);
    }

    /* nothing staged: nothing to start */
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_false(started);

    /* refused at the start: nothing written, the numbers given back */
    s_mutation(g, "r3", "d", "e6", 6);
    store_group_fail(g, CRM_ERR_STORAGE, "a read was cut short");
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_ERR_STORAGE);
    assert_false(started);
    assert_string_equal(errbuf, "a read was cut short");
    assert_string_equal(s_val(NULL, g, "r3"), "");
    s_mutation(g, "r3", "e", "e6", 6);

    /* the synchronous commit lands a flight first, then writes the rest */
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_true(started);
    s_mutation(g, "r4", "f", "e7", 7);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_false(store_group_in_flight(g));
    assert_int_equal(store_last_seq(st), 7);
    assert_string_equal(s_val(st, NULL, "r3"), "e");
    assert_string_equal(s_val(st, NULL, "r4"), "f");

    /* a flight's completion is signalled on the eventfd */
    s_mutation(g, "r5", "g", "e8", 8);
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    struct pollfd pfd = {.fd = store_group_commit_fd(g), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    assert_true(store_group_landed(g));
    assert_int_equal(store_group_commit_land(g, errbuf), CRM_OK);
    assert_int_equal(poll(&pfd, 1, 0), 0); /* read: not readable again */

    /* under steady load the batch keeps what landed (something is always
       staged on top); past 128 KiB of it the next commit is written at once */
    static char big[40001];
    memset(big, 'b', sizeof big - 1);
    uint64_t seq = store_last_seq(st) + 1;
    bool went_inline = false;
    for (int i = 0; i < 8 && !went_inline; i++) {
        char key[16];
        snprintf(key, sizeof key, "big%d", i);
        s_mutation(g, key, big, "eb", seq++);
        assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
        if (!started) {
            went_inline = i >= 3; /* not before 3 x 40 kB were kept */
            break;
        }
        s_mutation(g, "tail", "t", "et", seq++);
        assert_int_equal(store_group_commit_land(g, errbuf), CRM_OK);
        assert_true(store_group_dirty(g)); /* "tail" is staged: the batch kept the rest */
    }
    assert_true(went_inline);
    assert_false(store_group_in_flight(g));
    assert_false(store_group_dirty(g));
    assert_int_equal(store_last_seq(st), seq - 1);
    assert_int_equal(strlen(s_val(st, NULL, "tail")), 1);
    store_val_t bv = {0};
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "big3", 4, &bv), CRM_OK);
    assert_int_equal(bv.len, sizeof big - 1);
    store_val_release(&bv);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* A request's own staging taken back (a read error under it): what others
   staged before it stays and commits, its mutations' sequence numbers go
   back, even with a commit in flight underneath. */
static void
test_store_group_undo(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = test_tmpdir(), errbuf[CRM_ERRBUF];
    assert_int_equal(store_open(dir, STORE_CREATE | STORE_SYNC, &st, errbuf), CRM_OK);
    store_group_t *g = store_group_new(st);
    bool started = false;
    s_mutation(g, "r0", "a", "e1", 1);
    assert_int_equal(store_group_commit_start(g, &started, errbuf), CRM_OK);
    assert_true(started);
    s_mutation(g, "r1", "b", "e2", 2); /* another request's, on top of the flight */

    store_group_mark_t mark;
    store_group_mark(g, &mark);
    s_mutation(g, "r2", "c", "e3", 3);
    store_group_begin(g); /* a mutation rolled back inside the request */
    store_group_put(g, STORE_CF_RECORDS, "r3", 2, "x", 1);
    store_group_abort(g);
    s_mutation(g, "r1", NULL, "e4", 4); /* deletes the other request's record */
    assert_true(store_group_undo(g, &mark));
    assert_string_equal(s_val(NULL, g, "r2"), "");
    assert_string_equal(s_val(NULL, g, "r3"), "");
    assert_string_equal(s_val(NULL, g, "r1"), "b"); /* the other's stays */
    assert_string_equal(s_val(NULL, g, "r0"), "a"); /* in flight */

    store_group_mark(g, &mark); /* a request that staged nothing */
    (void)s_val(NULL, g, "r1");
    assert_true(store_group_undo(g, &mark));
    store_group_mark(g, &mark); /* one whose only mutation was rolled back */
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "r3", 2, "y", 1);
    store_group_abort(g);
    assert_true(store_group_undo(g, &mark));
    store_group_mark(g, &mark); /* an entry outside a mutation, before one, stays */
    store_group_put(g, STORE_CF_AUDIT, "side", 4, "", 0);
    s_mutation(g, "r6", "f", "e3", 3);
    store_group_put(g, STORE_CF_AUDIT, "after", 5, "", 0);
    assert_true(store_group_undo(g, &mark));
    assert_string_equal(s_val(NULL, g, "r6"), ""); /* the mutation went */
    store_val_t side = {0};
    assert_int_equal(store_group_get(g, STORE_CF_AUDIT, "side", 4, &side), CRM_OK);
    store_val_release(&side);
    assert_int_equal(store_group_get(g, STORE_CF_AUDIT, "after", 5, &side), CRM_ERR_NOT_FOUND);

    /* a request of more mutations than is worth rolling back one by one */
    store_group_mark(g, &mark);
    for (int i = 0; i <= STORE_UNDO_MAX; i++)
        s_mutation(g, "r7", "g", "ex", 3 + (uint64_t)i);
    assert_false(store_group_undo(g, &mark));
    assert_string_equal(s_val(NULL, g, "r7"), "g"); /* nothing taken back */
    store_group_fail(g, CRM_ERR_STORAGE, "a read was cut short");
    assert_int_equal(store_group_commit(g, errbuf), CRM_ERR_STORAGE);
    assert_int_equal(store_last_seq(st), 1); /* the flight landed; the rest was refused */
    assert_string_equal(s_val(st, NULL, "r1"), "");
    s_mutation(g, "r1", "b", "e2", 2); /* staged again: the numbers went back */

    s_mutation(g, "r5", "e", "e3", 3); /* the number taken back is used again */
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 3);
    assert_string_equal(s_val(st, NULL, "r0"), "a");
    assert_string_equal(s_val(st, NULL, "r1"), "b");
    assert_string_equal(s_val(st, NULL, "r5"), "e");
    assert_string_equal(s_val(st, NULL, "r2"), "");
    assert_string_equal(s_val(st, NULL, "r3"), "");
    for (uint64_t seq = 1; seq <= 3; seq++) {
        static const char *want[] = {"", "e1", "e2", "e3"};
        store_val_t v = {0};
        assert_int_equal(store_changelog_get(st, seq, &v), CRM_OK);
        assert_memory_equal(v.data, want[seq], v.len);
        store_val_release(&v);
    }
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* Flip bytes in the first data block of every table file of DIR/db that
   holds NEEDLE; returns how many. */
static int
s_damage_tables(const char *dir, const char *needle)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/db", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".sst"))
            continue;
        snprintf(path, sizeof path, "%s/db/%s", dir, de->d_name);
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        static char buf[1 << 20];
        size_t got = fread(buf, 1, sizeof buf, f);
        if (memmem(buf, got, needle, strlen(needle)) && got > 80) {
            for (int off = 40; off < 80; off++)
                buf[off] ^= 0x5A;
            fseek(f, 0, SEEK_SET);
            fwrite(buf, 1, got, f);
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

typedef struct {
    store_t *st;
    uint64_t seen; /* read errors this thread counted during its scan */
} s_scan_t;

static void *
s_scan_thread(void *arg)
{
    s_scan_t *a = arg;
    uint64_t before = store_read_errors(a->st, NULL);
    store_iter_t *it = store_iter_new(a->st, STORE_CF_RECORDS);
    for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it))
        ;
    store_iter_destroy(&it);
    a->seen = store_read_errors(a->st, NULL) - before;
    return NULL;
}

/* A scan stopped by a damaged table file counts on its own thread only: a
   request served meanwhile on another thread (the server thread, while the
   worker's report hits the damage) is not failed by it. */
static void
test_store_read_errors_per_thread(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = test_tmpdir(), errbuf[CRM_ERRBUF];
    assert_int_equal(store_open(dir, STORE_CREATE, &st, errbuf), CRM_OK);
    store_group_t *g = store_group_new(st);
    for (int i = 0; i < 300; i++) {
        char key[32];
        snprintf(key, sizeof key, "damaged-%04d", i);
        s_mutation(g, key, "some record value", "e", (uint64_t)i + 1);
    }
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
    store_destroy(&st);
    /* a reopen replays the write-ahead log into table files */
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    store_destroy(&st);
    assert_true(s_damage_tables(dir, "damaged-0000") >= 1);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);

    uint64_t mine = store_read_errors(st, NULL);
    s_scan_t a = {st, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_scan_thread, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.seen, 1); /* the scan stopped on the damage, and said so */
    assert_non_null(strstr((store_read_errors(st, errbuf), errbuf), "Corruption"));
    assert_int_equal(store_read_errors(st, NULL), mine); /* not this thread's */
    s_scan_thread(&a); /* the same scan here counts here */
    assert_int_equal(a.seen, 1);
    assert_int_equal(store_read_errors(st, NULL), mine + 1);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* The store's entry points that turn RocksDB's per-thread counters off, each
   tried first on a thread of its own (test_store_perf_counters_off). */
typedef enum {
    PERF_GET,
    PERF_ITER,
    PERF_GROUP_ITER,
    PERF_GROUP_GET,
    PERF_COMMIT,
    PERF_COMMIT_START,
    PERF_COUNT_KEYS,
    PERF__N
} s_perf_op_t;

typedef struct {
    store_t *st;
    store_group_t *g;     /* staged by the main thread for the group's reads and commits */
    s_perf_op_t op;
    bool count_again;     /* the op once, then RocksDB's counting back on, then again */
    crm_err_t rc;         /* the op's result, checked on the main thread */
    uint64_t comparisons; /* RocksDB's count of key comparisons during the op */
} s_perf_t;

static void
s_perf_op(s_perf_t *a)
{
    char errbuf[CRM_ERRBUF];
    store_val_t v = {0};
    store_iter_t *it = NULL;
    bool started;
    uint64_t counts[256];
    a->rc = CRM_OK;
    switch (a->op) {
    case PERF_GET:
        for (int i = 0; i < 200 && a->rc == CRM_OK; i += 10) {
            char key[32];
            snprintf(key, sizeof key, "perf-%04d", i);
            a->rc = store_get(a->st, STORE_CF_RECORDS, key, strlen(key), &v);
            store_val_release(&v);
        }
        break;
    case PERF_ITER:
    case PERF_GROUP_ITER:
        it = a->op == PERF_ITER ? store_iter_new(a->st, STORE_CF_RECORDS)
                                : store_group_iter_new(a->g, STORE_CF_RECORDS);
        for (store_iter_seek(it, "perf-", 5); store_iter_valid(it); store_iter_next(it))
            ;
        store_iter_destroy(&it);
        break;
    case PERF_GROUP_GET:
        for (int i = 0; i < 200 && a->rc == CRM_OK; i += 10) {
            char key[32];
            snprintf(key, sizeof key, "perf-%04d", i); /* committed: read past the batch */
            a->rc = store_group_get(a->g, STORE_CF_RECORDS, key, strlen(key), &v);
            store_val_release(&v);
        }
        break;
    case PERF_COMMIT:
        a->rc = store_group_commit(a->g, errbuf);
        break;
    case PERF_COMMIT_START: /* the default mode writes on the caller's thread */
        a->rc = store_group_commit_start(a->g, &started, errbuf);
        break;
    case PERF_COUNT_KEYS:
        store_count_keys(a->st, STORE_CF_RECORDS, counts);
        break;
    case PERF__N:
        break;
    }
}

/* On a thread of its own (RocksDB counting, as it does by default), the op
   counted by RocksDB's perf context of this thread. With COUNT_AGAIN another
   entry point is called first (which turns counting off and marks the thread
   done) and counting is then turned back on: the op's own work is counted. */
static void *
s_perf_thread(void *arg)
{
    s_perf_t *a = arg;
    rocksdb_set_perf_level(rocksdb_enable_count);
    if (a->count_again) {
        s_perf_t first = *a;
        first.op = a->op == PERF_COUNT_KEYS ? PERF_ITER : PERF_COUNT_KEYS;
        s_perf_op(&first);
        rocksdb_set_perf_level(rocksdb_enable_count);
    }
    rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
    rocksdb_perfcontext_reset(pc);
    s_perf_op(a);
    a->comparisons = rocksdb_perfcontext_metric(pc, rocksdb_user_key_comparison_count);
    rocksdb_perfcontext_destroy(pc);
    return NULL;
}

/* 200 puts staged in G, not committed. */
static void
s_perf_stage(store_group_t *g, const char *prefix)
{
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s-%04d", prefix, (i * 7919) % 200);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), "v", 1);
    }
}

/* Each entry point of the store turns RocksDB's per-thread counters off for
   the thread that calls it (they cost ~5 % of an import's time and nothing
   reads them; staging into a group's batch counts none): its work counts no key comparison when it is the thread's
   first call; the same work on a thread whose counting was turned back on
   counts some, so the zero is not for want of counting. */
static void
test_store_perf_counters_off(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    char *dir = s_new_store(&st);
    store_group_t *g = store_group_new(st);
    s_perf_stage(g, "perf");
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    static const char *const names[PERF__N] = {
        "get", "iter", "group iter", "group get", "commit", "commit start", "count keys"};
    for (int op = 0; op < PERF__N; op++) {
        for (int again = 0; again < 2; again++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "perf-%d-%d", op, again);
            if (op == PERF_COMMIT || op == PERF_COMMIT_START)
                s_perf_stage(g, prefix); /* what the thread commits */
            if (op == PERF_GROUP_GET || op == PERF_GROUP_ITER)
                s_perf_stage(g, "perf-staged"); /* what it reads through the group */
            s_perf_t a = {st, g, (s_perf_op_t)op, again, CRM_OK, 0};
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, s_perf_thread, &a), 0);
            assert_int_equal(pthread_join(th, NULL), 0);
            assert_int_equal(a.rc, CRM_OK);
            printf("# %s, counting %s: %llu key comparisons\n", names[op],
                   again ? "on again" : "as RocksDB starts a thread",
                   (unsigned long long)a.comparisons);
            if (again)
                assert_true(a.comparisons > 0);
            else
                assert_int_equal(a.comparisons, 0);
            assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
        }
    }
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* On a thread of its own: the memtables' bloom filters counted by RocksDB's perf
   context over 50 reads of records that are not there, while the memtable holds 200
   that are; the same for 50 point reads of index keys. */
typedef struct {
    store_t *st;
    uint64_t rec_miss, rec_hit, idx_miss;
} s_filter_t;

static void *
s_filter_thread(void *arg)
{
    s_filter_t *a = arg;
    store_val_t v = {0};
    (void)store_get(a->st, STORE_CF_RECORDS, "x", 1, &v); /* the store turns counting off */
    store_val_release(&v);
    rocksdb_set_perf_level(rocksdb_enable_count);
    rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
    for (int cf = 0; cf < 2; cf++) {
        rocksdb_perfcontext_reset(pc);
        for (int i = 0; i < 50; i++) {
            char key[32];
            snprintf(key, sizeof key, "absent-%04d", i);
            assert_int_equal(store_get(a->st, cf ? STORE_CF_INDEXES : STORE_CF_RECORDS, key,
                                       strlen(key), &v),
                             CRM_ERR_NOT_FOUND);
            store_val_release(&v);
        }
        uint64_t miss = rocksdb_perfcontext_metric(pc, rocksdb_bloom_memtable_miss_count);
        if (cf) {
            a->idx_miss = miss;
        } else {
            a->rec_miss = miss;
            a->rec_hit = rocksdb_perfcontext_metric(pc, rocksdb_bloom_memtable_hit_count);
        }
    }
    rocksdb_perfcontext_destroy(pc);
    rocksdb_set_perf_level(rocksdb_disable);
    return NULL;
}

/* A read by key of a record that is not in the memtable is answered by the memtable's
   whole-key bloom filter, not by a search of its skip list (PERFORMANCE.md, "Point
   reads: a whole-key filter on the memtables"); the indexes keep their prefix filter
   only (a term's postings), so their point reads count no whole-key miss. */
static void
test_store_memtable_filter(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    char *dir = s_new_store(&st);
    store_group_t *g = store_group_new(st);
    s_perf_stage(g, "present");
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_filter_t a = {st, 0, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_filter_thread, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    printf("# records: %llu filtered out of 50, %llu passed; indexes: %llu filtered\n",
           (unsigned long long)a.rec_miss, (unsigned long long)a.rec_hit,
           (unsigned long long)a.idx_miss);
    assert_true(a.rec_miss >= 45); /* a false positive now and then */
    assert_int_equal(a.rec_miss + a.rec_hit, 50);
    assert_int_equal(a.idx_miss, 0);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* The whole-key filter is kept by the memtables of the families read by key alone, sized
   for them: the change log and the audit (written in order, scanned) keep none, and no
   family's filter takes more than a small share of the 64 MiB the memtables share. The
   first setting (0.02 of 64 MiB in every family) held 1.3 MiB in each memtable, 8 MiB in
   all, from the first write on. */
static void
test_store_memtable_budget(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    char *dir = s_new_store(&st);
    store_group_t *g = store_group_new(st);
    store_group_begin(g);
    const store_cf_t cfs[] = {STORE_CF_RECORDS, STORE_CF_INDEXES, STORE_CF_USERS,
                              STORE_CF_AUDIT, STORE_CF_META};
    for (size_t i = 0; i < sizeof cfs / sizeof cfs[0]; i++)
        store_group_put(g, cfs[i], "k", 1, "v", 1);
    store_group_end(g, "e", 1); /* and the change log's entry */
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    uint64_t rec = store_memtables_bytes(st, STORE_CF_RECORDS);
    uint64_t users = store_memtables_bytes(st, STORE_CF_USERS);
    uint64_t meta = store_memtables_bytes(st, STORE_CF_META);
    uint64_t log = store_memtables_bytes(st, STORE_CF_CHANGELOG);
    uint64_t audit = store_memtables_bytes(st, STORE_CF_AUDIT);
    printf("# memtables after one write each: records %llu, users %llu, meta %llu, change log "
           "%llu, audit %llu bytes\n",
           (unsigned long long)rec, (unsigned long long)users, (unsigned long long)meta,
           (unsigned long long)log, (unsigned long long)audit);
    assert_true(log > 0 && log < 64 * 1024);
    assert_true(audit > 0 && audit < 64 * 1024);
    const uint64_t keyed[] = {rec, users, meta}; /* a filter each, of 335 KiB */
    for (size_t i = 0; i < 3; i++)
        assert_true(keyed[i] > 300 * 1024 && keyed[i] < 512 * 1024);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* store_get_many() gives for each key what store_get() gives, in the order asked, from
   table files and the memtable alike: values, and NOT_FOUND for a key not there. */
static void
test_store_get_many(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    store_t *st = NULL;
    char *dir = s_new_store(&st);
    store_group_t *g = store_group_new(st);
    s_perf_stage(g, "old"); /* old-0000..0199, into a table file */
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_compact_all(st, errbuf), CRM_OK);
    store_group_begin(g); /* and some in the memtable, with values of their own */
    for (int i = 0; i < 10; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "new-%04d", i);
        snprintf(val, sizeof val, "value of %d", i);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), val, strlen(val));
    }
    store_group_end(g, "e", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    const char *const want[] = {"new-0009", "old-0000", "nope-1", "new-0003", "old-0199",
                                "old-0200", "new-0000", "old-0057"};
    enum { N = sizeof want / sizeof want[0] };
    size_t lens[N];
    for (size_t i = 0; i < N; i++)
        lens[i] = strlen(want[i]);
    store_val_t vals[N];
    crm_err_t rcs[N];
    assert_int_equal(store_get_many(st, STORE_CF_RECORDS, want, lens, N, vals, rcs), CRM_OK);
    for (size_t i = 0; i < N; i++) {
        store_val_t one = {0};
        crm_err_t rc = store_get(st, STORE_CF_RECORDS, want[i], lens[i], &one);
        assert_int_equal(rcs[i], rc);
        assert_int_equal(rc, strncmp(want[i], "nope", 4) && strcmp(want[i], "old-0200")
                                 ? CRM_OK
                                 : CRM_ERR_NOT_FOUND);
        if (rc == CRM_OK) {
            assert_int_equal(vals[i].len, one.len);
            assert_memory_equal(vals[i].data, one.data, one.len);
        } else {
            assert_null(vals[i].data);
        }
        store_val_release(&one);
        store_val_release(&vals[i]);
    }
    assert_int_equal(store_get_many(st, STORE_CF_RECORDS, want, lens, 0, vals, rcs), CRM_OK);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* The admin 'root', who makes the users of these tests. */
static Crm__User
s_root(void)
{
    Crm__User actor = CRM__USER__INIT;
    actor.name = (char *)"root";
    actor.role = CRM__ROLE__ADMIN;
    return actor;
}

/* A request for user alice, sales staff, with key PUB. */
static Crm__UserRequest
s_alice(uint8_t pub[32])
{
    Crm__UserRequest u = CRM__USER_REQUEST__INIT;
    u.name = (char *)"alice";
    u.department = CRM__DEPARTMENT__SALES;
    u.role = CRM__ROLE__STAFF;
    u.public_key.data = pub;
    u.public_key.len = 32;
    return u;
}

/* User alice added by root and committed. */
static void
s_add_alice(store_t *st, store_group_t *g, uint8_t pub[32])
{
    char errbuf[CRM_ERRBUF];
    Crm__User actor = s_root();
    Crm__UserRequest u = s_alice(pub);
    assert_int_equal(users_apply(st, g, &actor, USERS_ADD, &u, NULL, errbuf), CRM_OK);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
}

static void
test_store_users(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    uint8_t pub[32], other[32];
    randombytes_buf(pub, sizeof pub);
    randombytes_buf(other, sizeof other);
    s_add_alice(st, g, pub);
    Crm__User actor = s_root();
    Crm__UserRequest u = s_alice(pub);
    /* same name again */
    u.public_key.data = other;
    assert_int_equal(users_apply(st, g, &actor, USERS_ADD, &u, NULL, errbuf),
                     CRM_ERR_ALREADY_EXISTS);
    /* same key, other name */
    u.name = (char *)"bob";
    u.public_key.data = pub;
    assert_int_equal(users_apply(st, g, &actor, USERS_ADD, &u, NULL, errbuf),
                     CRM_ERR_ALREADY_EXISTS);
    u.name = (char *)"Bad Name";
    assert_int_equal(users_apply(st, g, &actor, USERS_ADD, &u, NULL, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    u.name = (char *)"carol"; /* staff without a department */
    u.public_key.data = other;
    u.department = CRM__DEPARTMENT__DEPARTMENT_NONE;
    assert_int_equal(users_apply(st, g, &actor, USERS_ADD, &u, NULL, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 1);

    /* rotate alice's key: the old key no longer finds her */
    Crm__User *rotated = NULL;
    u.name = (char *)"alice";
    u.public_key.data = other;
    assert_int_equal(users_apply(st, g, &actor, USERS_ROTATE, &u, &rotated, errbuf), CRM_OK);
    assert_int_equal(rotated->version, 2);
    users_free(&rotated);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    Crm__User *gone = NULL;
    assert_int_equal(users_get_by_key(st, pub, &gone), CRM_ERR_NOT_FOUND);
    assert_int_equal(users_get_by_key(st, other, &gone), CRM_OK);
    users_free(&gone);
    /* and back, so the checks below see the first key */
    u.public_key.data = pub;
    assert_int_equal(users_apply(st, g, &actor, USERS_ROTATE, &u, NULL, errbuf), CRM_OK);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);

    Crm__User *got = NULL;
    assert_int_equal(users_get_by_key(st, pub, &got), CRM_OK);
    assert_string_equal(got->name, "alice");
    assert_int_equal(got->department, CRM__DEPARTMENT__SALES);
    assert_true(got->enabled);
    assert_int_equal(got->version, 3);
    users_free(&got);
    assert_int_equal(users_get_by_key(st, other, &got), CRM_ERR_NOT_FOUND);
    assert_int_equal(users_get_by_name(st, "alice", &got), CRM_OK);
    users_free(&got);
    assert_int_equal(users_get_by_name(st, "nobody", &got), CRM_ERR_NOT_FOUND);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

static void
s_count(const char *what, void *arg)
{
    (void)what;
    (*(int *)arg)++;
}

typedef struct {
    store_t *st;
    size_t records, found;
} s_keys_seen_t;

static void
s_key_present(store_cf_t cf, const char *key, size_t len, void *arg)
{
    s_keys_seen_t *ks = arg;
    store_val_t v = {0};
    ks->records += cf == STORE_CF_RECORDS;
    if (store_get(ks->st, cf, key, len, &v) == CRM_OK)
        ks->found++;
    store_val_release(&v);
}

/* the index keys of one record, kept to delete one of them */
typedef struct {
    char key[64];
    size_t len;
} s_one_key_t;

static void
s_take_phone_key(store_cf_t cf, const char *key, size_t len, void *arg)
{
    s_one_key_t *k = arg;
    if (cf == STORE_CF_INDEXES && !k->len && len <= sizeof k->key && len > 2 && key[2] == '1') {
        memcpy(k->key, key, len); /* the phone's entry: its value starts with '1' */
        k->len = len;
    }
}

static void
s_last(const char *what, void *arg)
{
    snprintf(arg, 128, "%s", what);
}

/* The check looks index entries up many records at a time: an entry missing in a
   later batch is found and named by its own record, and nothing else is reported */
static void
test_store_records_check_batches(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF];
    const crm_entity_t *e = crm_entity_by_name("customer");
    store_group_t *g = store_group_new(st);
    store_group_begin(g);
    s_one_key_t victim = {0};
    for (uint64_t n = 1; n <= 300; n++) {
        char id[16], name[32], phone[16];
        snprintf(id, sizeof id, "c%llu", (unsigned long long)n);
        snprintf(name, sizeof name, "客户%llu", (unsigned long long)n);
        snprintf(phone, sizeof phone, "138%08llu", (unsigned long long)n);
        ProtobufCMessage *c = crm_proto_new(e->desc);
        crm_record_set_str(c, "id", id);
        crm_record_set_str(c, "name", name);
        crm_record_set_text(c, crm_record_field(e->desc, "phones"), phone, false, errbuf);
        records_stage_put(g, e, n, NULL, c);
        if (n == 200)
            records_keys_each(e, n, c, s_take_phone_key, &victim);
        crm_proto_free(&c);
    }
    store_group_end(g, "x", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_true(victim.len > 0);
    uint64_t records, entries;
    int reported = 0;
    assert_int_equal(records_check(st, e, &records, &entries, s_count, &reported), 0);
    assert_int_equal(records, 300);
    assert_int_equal(reported, 0);
    store_group_begin(g);
    store_group_delete(g, STORE_CF_INDEXES, victim.key, victim.len);
    store_group_end(g, "y", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    char last[128] = "";
    assert_int_equal(records_check(st, e, &records, &entries, s_last, last), 1);
    print_message("%s\n", last);
    assert_non_null(strstr(last, "customer c200: index entry"));
    assert_non_null(strstr(last, "missing"));
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

static void
test_store_records_check(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF];
    const crm_entity_t *e = crm_entity_by_name("customer");
    store_group_t *g = store_group_new(st);
    ProtobufCMessage *c = crm_proto_new(e->desc);
    crm_record_set_str(c, "id", "c1");
    crm_record_set_str(c, "name", "张伟");
    crm_record_set_text(c, crm_record_field(e->desc, "phones"), "13800138000", false, errbuf);
    store_group_begin(g);
    records_stage_put(g, e, 1, NULL, c);
    store_group_end(g, "x", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    uint64_t records, entries;
    int reported = 0;
    assert_int_equal(records_check(st, e, &records, &entries, s_count, &reported), 0);
    assert_int_equal(records, 1);
    assert_true(entries >= 5); /* phone, last 4, text grams, stage... */
    /* records_keys_each names exactly the keys records_stage_put wrote: all of them
       there, as many as the check counted, the record's own key once */
    s_keys_seen_t ks = {st, 0, 0};
    assert_int_equal(records_keys_each(e, 1, c, s_key_present, &ks), entries + 1);
    assert_int_equal(ks.records, 1);
    assert_int_equal(ks.found, entries + 1);
    /* format 8: a single Latin letter or digit has no posting list (a search for
       it checks records one by one: no terms, and no error); a Chinese character
       and a pair of letters do; white space alone is refused */
    records_term_t terms[RECORDS_MAX_TERMS];
    size_t nt = 9;
    assert_int_equal(records_text_terms(e, "Q", terms, &nt, errbuf), CRM_OK);
    assert_int_equal(nt, 0);
    assert_int_equal(records_text_terms(e, "q 7", terms, &nt, errbuf), CRM_OK);
    assert_int_equal(nt, 0);
    assert_int_equal(records_text_terms(e, "伟 q", terms, &nt, errbuf), CRM_OK);
    assert_int_equal(nt, 1);
    records_term_release(&terms[0]);
    assert_int_equal(records_text_terms(e, "qu", terms, &nt, errbuf), CRM_OK);
    assert_int_equal(nt, 1);
    records_term_release(&terms[0]);
    assert_int_equal(records_text_terms(e, " \t", terms, &nt, errbuf), CRM_ERR_INVALID_ARGUMENT);
    /* one gram (its posting list alone answers it) or not (checked whole) */
    assert_true(records_text_is_gram("QU"));
    assert_true(records_text_is_gram("伟"));
    assert_true(records_text_is_gram("伟业"));
    assert_true(records_text_is_gram("é"));
    assert_false(records_text_is_gram("q"));          /* no posting list */
    assert_false(records_text_is_gram("七七七"));     /* one term, three characters */
    assert_false(records_text_is_gram("七\u3000q")); /* folds to "七 q" */
    assert_false(records_text_is_gram("a b"));
    ProtobufCMessage *latin = crm_proto_new(e->desc);
    crm_record_set_str(latin, "name", "Qi Wei");
    crm_record_set_str(latin, "company", "伟业");
    const crm_index_t *text = crm_entity_index(e, "name");
    assert_non_null(text);
    size_t np = records_postings(e, latin, text->tag, terms, RECORDS_MAX_TERMS);
    /* qi, we, ei; 伟, 业, 伟业: no q, i, w, e */
    assert_int_equal(np, 6);
    for (size_t i = 0; i < np; i++)
        records_term_release(&terms[i]);
    crm_proto_free(&latin);
    /* a format-7 text index: postings of single ASCII characters ('q', '7') beside
       the others. records_drop_unlisted removes those two by range and nothing
       else; the check then finds nothing stray, with as many entries as before */
    uint64_t before = entries, removed = 0;
    store_group_begin(g);
    for (const char *ch = "q7"; *ch; ch++) {
        char one[4 + 8] = {'c', text->tag, *ch, 0};
        store_put_be64((uint8_t *)one + 4, 1);
        store_group_put(g, STORE_CF_INDEXES, one, sizeof one, "", 0);
    }
    store_group_end(g, "z", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(records_check(st, e, &records, &entries, NULL, NULL), 2);
    assert_int_equal(records_drop_unlisted(st, e, &removed, errbuf), CRM_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(records_check(st, e, &records, &entries, NULL, NULL), 0);
    assert_int_equal(entries, before);
    /* a stray entry for record 2 ("cs" z 0 <2>), and record 1's last-4 entry
       ("cq" 8000 0 <1>) gone */
    char key[32] = {'c', 'q', '8', '0', '0', '0', 0};
    store_put_be64((uint8_t *)key + 7, 1);
    uint8_t stray2[12] = {'c', 's', 'z', 0};
    store_put_be64(stray2 + 4, 2);
    store_group_begin(g);
    store_group_put(g, STORE_CF_INDEXES, stray2, sizeof stray2, "", 0);
    store_group_delete(g, STORE_CF_INDEXES, key, 15);
    store_group_end(g, "y", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    reported = 0;
    assert_int_equal(records_check(st, e, &records, &entries, s_count, &reported), 2);
    assert_int_equal(reported, 2);
    crm_proto_free(&c);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* Issue 16: which replies wait for the commit is decided from the group's
   touch counter; the unique counter survives a restart; a lost CURRENT is
   damage; failed commits give their numbers back; a poisoned group fails. */
static void
test_store_durability(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    store_val_t v = {0};

    /* touches: a read through an empty group does not count, a put does,
       and a read through a group with something staged does */
    uint64_t t0 = store_group_touches(g);
    assert_int_equal(store_group_get(g, STORE_CF_RECORDS, "a", 1, &v), CRM_ERR_NOT_FOUND);
    store_iter_t *it = store_group_iter_new(g, STORE_CF_RECORDS);
    store_iter_destroy(&it);
    assert_int_equal(store_group_touches(g), t0);
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "a", 1, "1", 1);
    store_group_end(g, "e", 1);
    uint64_t t1 = store_group_touches(g);
    assert_true(t1 > t0);
    assert_int_equal(store_group_get(g, STORE_CF_RECORDS, "b", 1, &v), CRM_ERR_NOT_FOUND);
    assert_true(store_group_touches(g) > t1);
    t1 = store_group_touches(g);
    it = store_group_iter_new(g, STORE_CF_RECORDS);
    store_iter_destroy(&it);
    assert_true(store_group_touches(g) > t1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(st), 1);
    t1 = store_group_touches(g);
    assert_int_equal(store_group_get(g, STORE_CF_RECORDS, "a", 1, &v), CRM_OK); /* committed */
    store_val_release(&v);
    assert_int_equal(store_group_touches(g), t1);

    /* a poisoned group writes nothing and gives its number back */
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "c", 1, "3", 1);
    assert_int_equal(store_group_end(g, "e", 1), 2);
    store_group_fail(g, CRM_ERR_STORAGE, "cannot read the store: test");
    assert_int_equal(store_group_commit(g, errbuf), CRM_ERR_STORAGE);
    assert_non_null(strstr(errbuf, "test"));
    assert_int_equal(store_get(st, STORE_CF_RECORDS, "c", 1, &v), CRM_ERR_NOT_FOUND);
    assert_int_equal(store_last_seq(st), 1);
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "c", 1, "3", 1);
    assert_int_equal(store_group_end(g, "e", 1), 2); /* the same number again: no gap */
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_write_health(st, errbuf), CRM_OK);
    assert_int_equal(store_recover(st, errbuf), CRM_OK); /* nothing to recover */

    /* the unique counter continues above what was committed, across a restart */
    uint64_t u = 0;
    for (int i = 0; i < 5; i++)
        u = store_next_unique(st);
    store_group_put(g, STORE_CF_AUDIT, "x", 1, "", 0);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
    store_destroy(&st);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_OK);
    assert_true(store_next_unique(st) > u);
    assert_int_equal(store_last_seq(st), 2);
    store_destroy(&st);

    /* a database without CURRENT is damaged, not uninitialized */
    char path[4200];
    snprintf(path, sizeof path, "%s/db/CURRENT", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(store_open(dir, 0, &st, errbuf), CRM_ERR_STORAGE);
    assert_non_null(strstr(errbuf, "damaged"));
    assert_null(strstr(errbuf, "not initialized"));
    test_rmrf(dir);
    free(dir);
}

/* Batches shipped from a primary's WAL to a replica made from its checkpoint. */
typedef struct {
    uint64_t seq[16];
    char *data[16];
    size_t len[16], n;
} s_batches_t;

static bool
s_collect(void *arg, uint64_t seq, const void *data, size_t len)
{
    s_batches_t *b = arg;
    assert_true(b->n < 16);
    b->seq[b->n] = seq;
    b->data[b->n] = malloc(len);
    memcpy(b->data[b->n], data, len);
    b->len[b->n++] = len;
    return true;
}

/* A replica of PRI as it is now (its checkpoint, opened as a replica) in a new
   directory, returned in *DIR. */
static store_t *
s_replica_of(store_t *pri, char **dir)
{
    char errbuf[CRM_ERRBUF], path[4200];
    store_t *rep = NULL;
    *dir = test_tmpdir();
    snprintf(path, sizeof path, "%s/db", *dir);
    assert_int_equal(store_checkpoint(pri, path, errbuf), CRM_OK);
    assert_int_equal(store_open(*dir, STORE_REPLICA, &rep, errbuf), CRM_OK);
    return rep;
}

/* Close and remove a primary and its replica, and free the shipped batches. */
static void
s_pair_close(store_t **pri, char *pdir, store_t **rep, char *rdir, s_batches_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->data[i]);
    store_destroy(rep);
    store_destroy(pri);
    test_rmrf(pdir);
    test_rmrf(rdir);
    free(pdir);
    free(rdir);
}

/* Every batch PRI's WAL holds after what REP has, into *B (all of them, none too old). */
static void
s_shipped(store_t *pri, store_t *rep, s_batches_t *b)
{
    char errbuf[CRM_ERRBUF];
    bool too_old = false;
    uint64_t oldest = 0;
    assert_int_equal(store_wal_read(pri, NULL, store_wal_seq(rep) + 1, 1 << 20, s_collect, b,
                                    &too_old, &oldest, errbuf),
                     CRM_OK);
    assert_false(too_old);
}

/* A promoted replica numbers its first change after what it was shipped,
   even when the promotion's own audit entry (staged outside a mutation) is
   already in the group: its group was made when the replica started, and
   the follower advanced the store's count since. */
static void
test_store_promote_numbers(void **state)
{
    (void)state;
    store_t *pri = NULL, *rep = NULL;
    char *pdir = s_new_store(&pri), *rdir = NULL, errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(pri);
    s_mutation(g, "a", "1", "e1", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    rep = s_replica_of(pri, &rdir);
    store_group_t *rg = store_group_new(rep);
    s_mutation(g, "b", "2", "e2", 2);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_mutation(g, "c", "3", "e3", 3);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_batches_t b = {0};
    uint64_t epoch = 0;
    s_shipped(pri, rep, &b);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(store_wal_apply(rep, b.seq[i], b.data[i], b.len[i], errbuf), CRM_OK);
    assert_int_equal(store_last_seq(rep), 3);
    assert_int_equal(store_promote(rep, &epoch, errbuf), CRM_OK);
    store_group_put(rg, STORE_CF_AUDIT, "promote", 7, "", 0);
    s_mutation(rg, "d", "4", "e4", 4); /* 2 before: it overwrote the shipped "e2" */
    assert_int_equal(store_group_commit(rg, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(rep), 4);
    store_val_t v = {0};
    assert_int_equal(store_changelog_get(rep, 2, &v), CRM_OK);
    assert_memory_equal(v.data, "e2", v.len);
    store_val_release(&v);
    store_group_destroy(&rg);
    store_group_destroy(&g);
    s_pair_close(&pri, pdir, &rep, rdir, &b);
}

/* A commit writes its records sorted by column family and key (memtable
   inserts then start from their neighbour), and the result is the staged
   one: several writes of one key in one commit keep their order (put,
   delete, put again; a delete last), a rolled-back mutation leaves nothing,
   and a replica applying the shipped batch ends the same. */
static void
test_store_group_sorted_batch(void **state)
{
    (void)state;
    store_t *pri = NULL, *rep = NULL;
    char *pdir = s_new_store(&pri), *rdir = NULL, errbuf[CRM_ERRBUF];
    rep = s_replica_of(pri, &rdir);
    store_group_t *g = store_group_new(pri);
    enum { N = 64 };
    char key[N][16];
    for (int i = 0; i < N; i++) { /* staged in a scattered order: 0, 37, 10, 47, ... */
        int k = (i * 37) % N;
        snprintf(key[k], sizeof key[k], "key%02d", k);
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, key[k], strlen(key[k]), "first", 5);
        store_group_put(g, STORE_CF_USERS, key[k], strlen(key[k]), "u", 1);
        if (k % 4 == 1) /* deleted, then written again */
            store_group_delete(g, STORE_CF_RECORDS, key[k], strlen(key[k]));
        if (k % 4 == 1 || k % 4 == 2)
            store_group_put(g, STORE_CF_RECORDS, key[k], strlen(key[k]), "again", 5);
        if (k % 4 == 3) /* written, then deleted */
            store_group_delete(g, STORE_CF_RECORDS, key[k], strlen(key[k]));
        store_group_end(g, "e", 1);
        if (k % 8 == 5) { /* a mutation given up: nothing of it stays */
            store_group_begin(g);
            store_group_put(g, STORE_CF_RECORDS, key[k], strlen(key[k]), "undone", 6);
            store_group_put(g, STORE_CF_RECORDS, "zz-undone", 9, "x", 1);
            store_group_abort(g);
        }
    }
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_batches_t b = {0};
    s_shipped(pri, rep, &b);
    assert_int_equal(b.n, 1);
    /* sorted: each key's first record comes after the one before it (the records
       column family's records come before the users one's, so the first match of
       "keyNN" is in records) */
    const char *prev = NULL;
    for (int k = 0; k < N; k++) {
        const char *at = memmem(b.data[0], b.len[0], key[k], strlen(key[k]));
        assert_non_null(at);
        if (prev)
            assert_true(at > prev);
        prev = at;
    }
    assert_int_equal(store_wal_apply(rep, b.seq[0], b.data[0], b.len[0], errbuf), CRM_OK);
    store_t *sides[2] = {pri, rep};
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < N; k++) {
            const char *want = k % 4 == 0 ? "first" : k % 4 == 3 ? "" : "again";
            assert_string_equal(s_val(sides[s], NULL, key[k]), want);
            store_val_t v = {0};
            assert_int_equal(store_get(sides[s], STORE_CF_USERS, key[k], strlen(key[k]), &v),
                             CRM_OK);
            store_val_release(&v);
        }
        assert_string_equal(s_val(sides[s], NULL, "zz-undone"), "");
        assert_int_equal(store_last_seq(sides[s]), N);
    }
    store_group_destroy(&g);
    s_pair_close(&pri, pdir, &rep, rdir, &b);
}

/* An index key: TAG, a 16-byte term of FILL (a blind term's shape), then the posting
   NUM; or, with FILL 0, the short key of a plain index ("won"). Returns its length. */
static size_t
s_index_key(char *key, char tag, char fill, uint64_t num)
{
    size_t n = 0;
    key[n++] = 'c';
    key[n++] = tag;
    if (fill) {
        memset(key + n, fill, 16);
        n += 16;
    } else {
        memcpy(key + n, "won", 3);
        n += 3;
    }
    key[n++] = '\0';
    store_put_be64((uint8_t *)key + n, num);
    return n + 8;
}

/* The postings (numbers) a term iterator finds from the term of FILL on, through G if
   given, into OUT; returns how many. */
static size_t
s_term_postings(store_t *st, store_group_t *g, char fill, uint64_t *out)
{
    char key[64];
    size_t n = 0, klen = s_index_key(key, 'p', fill, 0);
    store_iter_t *it = store_term_iter_new(st, g);
    for (store_iter_seek(it, key, klen); store_iter_valid(it) && n < 16; store_iter_next(it)) {
        size_t len;
        const char *k = store_iter_key(it, &len);
        assert_int_equal(len, klen);
        out[n++] = store_get_be64((const uint8_t *)k + len - 8);
    }
    store_iter_destroy(&it);
    return n;
}

/* The indexes keep a prefix filter of blind terms (STORE_TERM_PREFIX bytes). A term
   iterator finds exactly its term's postings, in table files, the memtable and the
   group's batch, and nothing for a term that is not there; every other iterator still
   reads in total order, across terms and short keys, even from a term with no posting
   (it would skip the table files whose filter lacks that term without total order). */
static void
test_store_term_prefix(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), errbuf[CRM_ERRBUF], key[64];
    store_group_t *g = store_group_new(st);
    const struct {
        char tag, fill;
        uint64_t num;
    } keys[] = {{'p', 'A', 1}, {'p', 'A', 2}, {'p', 'B', 3}, {'s', 0, 5}, {'s', 0, 6}};
    store_group_begin(g);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t klen = s_index_key(key, keys[i].tag, keys[i].fill, keys[i].num);
        store_group_put(g, STORE_CF_INDEXES, key, klen, "", 0);
    }
    store_group_end(g, "e", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    assert_int_equal(store_compact_all(st, errbuf), CRM_OK); /* into a table file */
    store_group_begin(g); /* and one more of A's in the memtable */
    size_t klen = s_index_key(key, 'p', 'A', 4);
    store_group_put(g, STORE_CF_INDEXES, key, klen, "", 0);
    store_group_end(g, "e", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    uint64_t got[16];
    assert_int_equal(s_term_postings(st, NULL, 'A', got), 3); /* not B's after them */
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 2);
    assert_int_equal(got[2], 4);
    assert_int_equal(s_term_postings(st, NULL, 'B', got), 1);
    assert_int_equal(got[0], 3);
    assert_int_equal(s_term_postings(st, NULL, '0', got), 0); /* no such term */
    /* through the group: what it has staged too, of this term only (B's staged
       posting, right after A's in key order, is not A's) */
    store_group_begin(g);
    klen = s_index_key(key, 'p', 'A', 9);
    store_group_put(g, STORE_CF_INDEXES, key, klen, "", 0);
    klen = s_index_key(key, 'p', 'B', 10);
    store_group_put(g, STORE_CF_INDEXES, key, klen, "", 0);
    store_group_end(g, "e", 1);
    assert_int_equal(s_term_postings(st, g, 'A', got), 4);
    assert_int_equal(got[3], 9);
    assert_int_equal(s_term_postings(st, g, 'B', got), 2);
    assert_int_equal(got[0], 3);
    assert_int_equal(got[1], 10);
    assert_int_equal(s_term_postings(st, NULL, 'A', got), 3);
    assert_int_equal(s_term_postings(st, NULL, 'B', got), 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    /* total order: from a term with no posting on to the next key, and on through every
       term and the short keys of a plain index */
    store_iter_t *it = store_iter_new(st, STORE_CF_INDEXES);
    klen = s_index_key(key, 'p', '0', 0);
    store_iter_seek(it, key, klen);
    assert_true(store_iter_valid(it));
    size_t n = 0, len;
    const char *k = store_iter_key(it, &len);
    assert_int_equal(k[2], 'A');
    for (; store_iter_valid(it); store_iter_next(it))
        n++;
    assert_int_equal(n, 8); /* A 1, 2, 4, 9; B 3, 10; won 5, 6 */
    store_iter_destroy(&it);
    store_group_destroy(&g);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

static void
test_store_wal_replication(void **state)
{
    (void)state;
    store_t *pri = NULL, *rep = NULL;
    char *pdir = s_new_store(&pri), *rdir = NULL, errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(pri);
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "a", 1, "1", 1);
    store_group_end(g, "e1", 2);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    rep = s_replica_of(pri, &rdir);
    assert_int_equal(store_wal_seq(rep), store_wal_seq(pri));
    for (int i = 0; i < 3; i++) { /* three commits of several keys each */
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), "v", 1);
        store_group_put(g, STORE_CF_USERS, key, strlen(key), "u", 1);
        store_group_end(g, "e", 1);
        assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    }
    s_batches_t b = {0};
    s_shipped(pri, rep, &b); /* none too old */
    bool too_old = false;
    uint64_t oldest = 0;
    assert_int_equal(b.n, 3);
    assert_int_equal(b.seq[0], store_wal_seq(rep) + 1);
    /* out of order or twice: refused, nothing written */
    assert_int_equal(store_wal_apply(rep, b.seq[1], b.data[1], b.len[1], errbuf),
                     CRM_ERR_FAILED_PRECONDITION);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(store_wal_apply(rep, b.seq[i], b.data[i], b.len[i], errbuf), CRM_OK);
    assert_int_equal(store_wal_apply(rep, b.seq[2], b.data[2], b.len[2], errbuf),
                     CRM_ERR_FAILED_PRECONDITION);
    /* same numbers: RocksDB's and the change log's */
    assert_int_equal(store_wal_seq(rep), store_wal_seq(pri));
    assert_int_equal(store_last_seq(rep), 4);
    store_val_t v = {0};
    assert_int_equal(store_get(rep, STORE_CF_USERS, "k2", 2, &v), CRM_OK);
    store_val_release(&v);
    /* a position inside a batch means another history */
    s_batches_t none = {0};
    assert_int_equal(store_wal_read(pri, NULL, b.seq[1] + 1, 1 << 20, s_collect, &none, &too_old,
                                    &oldest, errbuf),
                     CRM_ERR_FAILED_PRECONDITION);
    assert_int_equal(none.n, 0);
    /* past the end: nothing */
    assert_int_equal(store_wal_read(pri, NULL, store_wal_seq(pri) + 1, 1 << 20, s_collect, &none,
                                    &too_old, &oldest, errbuf),
                     CRM_OK);
    assert_int_equal(none.n, 0);
    /* a cursor reads on where it stopped, tailing the live file */
    store_wal_cursor_t *cur = store_wal_cursor_new(pri);
    uint64_t from = store_wal_seq(pri) + 1;
    for (int i = 0; i < 3; i++) {
        s_batches_t t = {0};
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, "t", 1, "v", 1);
        store_group_end(g, "e", 1);
        assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
        assert_int_equal(store_wal_read(pri, cur, from, 1 << 20, s_collect, &t, &too_old,
                                        &oldest, errbuf),
                         CRM_OK);
        assert_int_equal(t.n, 1);
        assert_int_equal(t.seq[0], from);
        assert_int_equal(store_wal_apply(rep, t.seq[0], t.data[0], t.len[0], errbuf), CRM_OK);
        from = store_wal_seq(pri) + 1;
        free(t.data[0]);
    }
    /* ... and where a read stopped for its size, one batch at a time */
    for (int i = 0; i < 3; i++) {
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, "s", 1, "v", 1);
        store_group_end(g, "e", 1);
        assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    }
    for (int i = 0; i < 3; i++) {
        s_batches_t t = {0};
        assert_int_equal(store_wal_read(pri, cur, from, 1, s_collect, &t, &too_old, &oldest,
                                        errbuf),
                         CRM_OK);
        assert_int_equal(t.n, 1);
        assert_int_equal(t.seq[0], from);
        assert_int_equal(store_wal_apply(rep, t.seq[0], t.data[0], t.len[0], errbuf), CRM_OK);
        from = store_wal_seq(rep) + 1;
        free(t.data[0]);
    }
    assert_int_equal(store_wal_seq(rep), store_wal_seq(pri));
    store_wal_cursor_destroy(&cur);
    /* a replica commits nothing of its own */
    store_group_t *rg = store_group_new(rep);
    store_group_begin(rg);
    store_group_put(rg, STORE_CF_AUDIT, "x", 1, "y", 1);
    assert_int_equal(store_group_commit(rg, errbuf), CRM_ERR_READONLY);
    assert_int_equal(store_wal_seq(rep), store_wal_seq(pri));
    store_group_destroy(&rg);
    store_group_destroy(&g);
    s_pair_close(&pri, pdir, &rep, rdir, &b);
}

typedef struct {
    store_t *st;
    bool enabled; /* alice's, as this thread read her */
    int version;
} s_user_read_t;

static void
s_read_alice(s_user_read_t *a)
{
    Crm__User *u = NULL;
    assert_int_equal(users_get_by_name(a->st, "alice", &u), CRM_OK);
    a->enabled = u->enabled;
    a->version = (int)u->version;
    users_free(&u);
}

/* A reader thread that keeps its cache between reads: it reads when told to
   (go), and says when it has (done). */
typedef struct {
    s_user_read_t r;
    int reads_wanted;
    int go[2], done[2]; /* pipes */
} s_reader_t;

static void *
s_reader(void *arg)
{
    s_reader_t *a = arg;
    char c;
    for (int i = 0; i < a->reads_wanted; i++) {
        assert_int_equal(read(a->go[0], &c, 1), 1);
        s_read_alice(&a->r);
        assert_int_equal(write(a->done[1], "x", 1), 1);
    }
    return NULL;
}

static void
s_reader_read(s_reader_t *a)
{
    char c;
    assert_int_equal(write(a->go[1], "x", 1), 1);
    assert_int_equal(read(a->done[0], &c, 1), 1);
}

static void
s_set_alice(store_t *st, store_group_t *g, bool enabled)
{
    char errbuf[CRM_ERRBUF];
    Crm__User actor = s_root();
    Crm__UserRequest r = CRM__USER_REQUEST__INIT;
    r.name = (char *)"alice";
    r.set_enabled = true;
    r.enabled = enabled;
    assert_int_equal(users_apply(st, g, &actor, USERS_SET, &r, NULL, errbuf), CRM_OK);
}

/* Every link of the entity table has a LINK row in the policy: naming a record
   through it always takes a right to the named kind (authz_links) */
static void
test_store_links_have_policy(void **state)
{
    (void)state;
    size_t n = 0;
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++, n++)
        assert_true(authz_link_action(l->kind, l->field) >= 0);
    assert_true(n >= 3);
    assert_int_equal(authz_link_action("customer", "name"), -1);
}

/* User records are kept per thread as last read (users_get_by_name): a change
   that lands is seen at once by every thread - one that read her before too -
   on this store and on a replica that applies it; a read through a snapshot
   neither uses nor fills the copy; a copy is never another store's. */
static void
test_store_users_cached(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *dir = s_new_store(&st), *rdir = NULL, errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    uint8_t pub[32];
    randombytes_buf(pub, sizeof pub);
    s_add_alice(st, g, pub);
    store_t *rep = s_replica_of(st, &rdir);

    s_user_read_t here = {st, false, 0}, on_rep = {rep, false, 0};
    s_reader_t there = {{st, false, 0}, 3, {-1, -1}, {-1, -1}};
    assert_int_equal(pipe(there.go), 0);
    assert_int_equal(pipe(there.done), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_reader, &there), 0);
    for (int round = 0; round < 2; round++) { /* the second round reads what was kept */
        s_read_alice(&here);
        s_read_alice(&on_rep);
        assert_true(here.enabled && on_rep.enabled);
        assert_int_equal(here.version, 1);
    }
    s_reader_read(&there); /* the other thread has her too */
    assert_true(there.r.enabled);

    /* disabled by an admin: seen by every thread once it has landed */
    s_set_alice(st, g, false);
    s_read_alice(&here); /* staged only: the store still has her enabled */
    assert_true(here.enabled);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_read_alice(&here);
    assert_false(here.enabled);
    assert_int_equal(here.version, 2);
    s_reader_read(&there);
    assert_false(there.r.enabled);

    /* through a snapshot taken before a change: the old record, and not kept */
    store_view_begin(st);
    s_set_alice(st, g, true);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_read_alice(&here);
    assert_false(here.enabled); /* as of the snapshot */
    store_view_end(st);
    s_read_alice(&here);
    assert_true(here.enabled); /* as of now: the snapshot's read was not kept */
    assert_int_equal(here.version, 3);
    s_reader_read(&there);
    assert_true(there.r.enabled);
    assert_int_equal(pthread_join(th, NULL), 0);

    /* the replica: what it read is kept until the primary's batches are applied */
    s_read_alice(&on_rep);
    assert_true(on_rep.enabled && on_rep.version == 1);
    s_batches_t b = {0};
    bool too_old = false;
    uint64_t oldest = 0;
    assert_int_equal(store_wal_read(st, NULL, store_wal_seq(rep) + 1, 1 << 20, s_collect, &b,
                                    &too_old, &oldest, errbuf),
                     CRM_OK);
    assert_int_equal(b.n, 2);
    assert_int_equal(store_wal_apply(rep, b.seq[0], b.data[0], b.len[0], errbuf), CRM_OK);
    s_read_alice(&on_rep);
    assert_false(on_rep.enabled); /* the disable */
    assert_int_equal(store_wal_apply(rep, b.seq[1], b.data[1], b.len[1], errbuf), CRM_OK);
    s_read_alice(&on_rep);
    assert_true(on_rep.enabled && on_rep.version == 3);
    /* a store opened where another was: nothing of the old one's is kept */
    store_group_destroy(&g);
    s_pair_close(&st, dir, &rep, rdir, &b);
    for (int i = 0; i < 2; i++) {
        close(there.go[i]);
        close(there.done[i]);
    }
    dir = s_new_store(&st);
    Crm__User *none = NULL;
    assert_int_equal(users_get_by_name(st, "alice", &none), CRM_ERR_NOT_FOUND);
    store_destroy(&st);
    test_rmrf(dir);
    free(dir);
}

/* A read from a number whose log file went with a flush (a replica snapshot
   is a checkpoint: it flushes), while the live file holds nothing yet: RocksDB
   gives an iterator that never started. Kept for the next read, Next() on it
   aborted the primary (assertion `current_log_reader_'). */
static void
test_store_wal_read_after_flush(void **state)
{
    (void)state;
    store_t *pri = NULL;
    char *pdir = s_new_store(&pri), *cdir = test_tmpdir(), errbuf[CRM_ERRBUF], path[4200];
    store_group_t *g = store_group_new(pri);
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "a", 1, "1", 1);
    store_group_end(g, "e1", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    uint64_t from = store_wal_seq(pri); /* the last batch: <= latest, but about to go */
    snprintf(path, sizeof path, "%s/db", cdir);
    assert_int_equal(store_checkpoint(pri, path, errbuf), CRM_OK);
    store_wal_cursor_t *cur = store_wal_cursor_new(pri);
    for (int i = 0; i < 3; i++) { /* the same read again, as a held pull does */
        s_batches_t t = {0};
        bool too_old = false;
        uint64_t oldest = 0;
        assert_int_equal(store_wal_read(pri, cur, from, 1 << 20, s_collect, &t, &too_old,
                                        &oldest, errbuf),
                         CRM_OK);
        assert_int_equal(t.n, 0);
    }
    /* the next commit: the number asked for is gone, and said so */
    store_group_begin(g);
    store_group_put(g, STORE_CF_RECORDS, "b", 1, "2", 1);
    store_group_end(g, "e2", 1);
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    s_batches_t t = {0};
    bool too_old = false;
    uint64_t oldest = 0;
    assert_int_equal(store_wal_read(pri, cur, from, 1 << 20, s_collect, &t, &too_old, &oldest,
                                    errbuf),
                     CRM_OK);
    assert_int_equal(t.n, 0);
    assert_true(too_old);
    assert_true(oldest > from);
    store_wal_cursor_destroy(&cur);
    store_group_destroy(&g);
    store_destroy(&pri);
    test_rmrf(pdir);
    test_rmrf(cdir);
    free(pdir);
    free(cdir);
}

/* The digest as of a WAL number: the primary's now, the replica's from the
   view it kept when it applied that batch, which it has passed since. */
static void
s_digest_at(store_t *st, uint64_t at, uint64_t *seq, uint8_t out[32], crm_err_t want)
{
    char errbuf[CRM_ERRBUF];
    uint64_t keys = 0, last = 0;
    store_view_begin(st);
    assert_int_equal(store_view_at(st, at, 0, seq, errbuf), want);
    if (want == CRM_OK)
        assert_int_equal(store_digest(st, out, &keys, &last, errbuf), CRM_OK);
    store_view_end(st);
}

static void
test_store_digest_views(void **state)
{
    (void)state;
    store_t *pri = NULL, *rep = NULL;
    char *pdir = s_new_store(&pri), *rdir = NULL, errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(pri);
    rep = s_replica_of(pri, &rdir);
    store_keep_views(rep, 60000, 4);
    uint64_t from = store_wal_seq(rep) + 1, seqs[5];
    uint8_t want[5][32], got[32];
    for (int i = 0; i < 5; i++) { /* five commits; the primary's digest after each */
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), "v", 1);
        store_group_put(g, STORE_CF_USERS, key, strlen(key), "u", 1);
        store_group_end(g, "e", 1);
        assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
        s_digest_at(pri, 0, &seqs[i], want[i], CRM_OK);
        assert_int_equal(seqs[i], store_wal_seq(pri));
        if (i)
            assert_memory_not_equal(want[i], want[i - 1], 32);
    }
    s_batches_t b = {0};
    bool too_old = false;
    uint64_t oldest = 0, seq = 0;
    assert_int_equal(store_wal_read(pri, NULL, from, 1 << 20, s_collect, &b, &too_old, &oldest,
                                    errbuf),
                     CRM_OK);
    assert_int_equal(b.n, 5);
    for (size_t i = 0; i < b.n; i++)
        assert_int_equal(store_wal_apply(rep, b.seq[i], b.data[i], b.len[i], errbuf), CRM_OK);
    /* the replica is at the last one now; the last four views are kept */
    for (int i = 1; i < 5; i++) {
        s_digest_at(rep, seqs[i], &seq, got, CRM_OK);
        assert_int_equal(seq, seqs[i]);
        assert_memory_equal(got, want[i], 32);
    }
    s_digest_at(rep, seqs[0], &seq, got, CRM_ERR_FAILED_PRECONDITION); /* evicted */
    s_digest_at(rep, seqs[2] - 1, &seq, got, CRM_ERR_FAILED_PRECONDITION); /* inside a batch */
    s_digest_at(rep, 0, &seq, got, CRM_OK); /* now */
    assert_memory_equal(got, want[4], 32);
    s_digest_at(pri, seqs[4] + 5, &seq, got, CRM_ERR_FAILED_PRECONDITION); /* a primary: not yet */
    store_group_destroy(&g);
    s_pair_close(&pri, pdir, &rep, rdir, &b);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_open_errors),
        cmocka_unit_test(test_store_group_commit_sequences),
        cmocka_unit_test(test_store_pipelined_commit),
        cmocka_unit_test(test_store_group_undo),
        cmocka_unit_test(test_store_read_errors_per_thread),
        cmocka_unit_test(test_store_users),
        cmocka_unit_test(test_store_users_cached),
        cmocka_unit_test(test_store_links_have_policy),
        cmocka_unit_test(test_store_records_check),
        cmocka_unit_test(test_store_records_check_batches),
        cmocka_unit_test(test_store_durability),
        cmocka_unit_test(test_store_wal_replication),
        cmocka_unit_test(test_store_group_sorted_batch),
        cmocka_unit_test(test_store_term_prefix),
        cmocka_unit_test(test_store_promote_numbers),
        cmocka_unit_test(test_store_wal_read_after_flush),
        cmocka_unit_test(test_store_digest_views),
        cmocka_unit_test(test_store_perf_counters_off),
        cmocka_unit_test(test_store_memtable_filter),
        cmocka_unit_test(test_store_get_many),
        cmocka_unit_test(test_store_memtable_budget),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
