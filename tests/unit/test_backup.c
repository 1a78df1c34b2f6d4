/*  test_backup - backup_run / list / purge / restore / checksums and the job thread */
#include "test_common.h"

#include <dirent.h>
#include <sodium.h>
#include <sys/stat.h>

#include "backup.h"
#include "crm_keys.h"
#include "crm_time.h"
#include "store.h"

/* A data dir with a store holding N mutations and stand-in key files. */
static char *
s_data(store_t **st, int n)
{
    char *dir = test_tmpdir(), errbuf[CRM_ERRBUF], path[512];
    assert_int_equal(store_open(dir, STORE_CREATE, st, errbuf), CRM_OK);
    store_group_t *g = store_group_new(*st);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "c%08d", i);
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, key, strlen(key), "v", 1);
        store_group_end(g, "e", 1);
    }
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
    /* a real server key pair (a backup names its server by it, and restore checks it) and
       a stand-in master key (the store is not sealed) */
    crm_keypair_t kp;
    crm_keys_generate(&kp);
    snprintf(path, sizeof path, "%s/server.key", dir);
    assert_int_equal(crm_keys_save(path, &kp, errbuf), CRM_OK);
    snprintf(path, sizeof path, "%s/master.key", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("master\n", f);
    fclose(f);
    return dir;
}

static void
s_more(store_t *st, int n)
{
    char errbuf[CRM_ERRBUF];
    store_group_t *g = store_group_new(st);
    for (int i = 0; i < n; i++) {
        store_group_begin(g);
        store_group_put(g, STORE_CF_RECORDS, "a1", 2, "v", 1);
        store_group_end(g, "e", 1);
    }
    assert_int_equal(store_group_commit(g, errbuf), CRM_OK);
    store_group_destroy(&g);
}

static void
test_backup_seq_list_restore(void **state)
{
    (void)state;
    store_t *st = NULL, *rs = NULL;
    char *data = s_data(&st, 3), *work = test_tmpdir(), errbuf[CRM_ERRBUF], last[CRM_ERRBUF];
    char bk[512], r1[512], path[600];
    snprintf(bk, sizeof bk, "%s/bk", work);
    snprintf(r1, sizeof r1, "%s/r1", work);
    backup_meta_t m, *ms = NULL;
    size_t n = 0;
    assert_int_equal(backup_run(st, data, bk, 0, NULL, NULL, &m, errbuf), CRM_OK);
    assert_int_equal(m.id, 1);
    assert_int_equal(m.seq, 3);
    assert_int_equal(m.kinds[0].count, 3); /* "customer": keys starting with 'c' */
    s_more(st, 2);
    assert_int_equal(backup_run(st, data, bk, 0, NULL, NULL, &m, errbuf), CRM_OK);
    assert_int_equal(m.id, 2);
    assert_int_equal(m.seq, 5);
    assert_int_equal(backup_list(bk, &ms, &n, last, errbuf), CRM_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ms[0].seq, 3);
    assert_true(ms[0].has_meta && ms[0].has_keys);
    assert_int_equal(ms[1].seq, 5);
    assert_string_equal(last, "");
    free(ms);
    /* every file and dir private */
    struct stat sb;
    snprintf(path, sizeof path, "%s/oneview/1/server.key", bk);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(bk, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* restore the older one by id: its sequence, its keys */
    assert_int_equal(backup_restore(bk, 1, r1, NULL, NULL, &m, errbuf), CRM_OK);
    assert_int_equal(m.seq, 3);
    assert_int_equal(store_open(r1, 0, &rs, errbuf), CRM_OK);
    assert_int_equal(store_last_seq(rs), 3);
    store_destroy(&rs);
    snprintf(path, sizeof path, "%s/server.key", r1);
    assert_int_equal(access(path, R_OK), 0);
    /* a non-empty target is refused, unchanged */
    assert_int_equal(backup_restore(bk, 2, r1, NULL, NULL, &m, errbuf),
                     CRM_ERR_FAILED_PRECONDITION);
    assert_non_null(strstr(errbuf, "not empty"));
    /* an unknown id */
    snprintf(path, sizeof path, "%s/r9", work);
    assert_int_equal(backup_restore(bk, 9, path, NULL, NULL, &m, errbuf), CRM_ERR_NOT_FOUND);
    assert_int_equal(access(path, F_OK), -1);
    /* purge keeps the newest, and its sidecar only */
    size_t removed = 0;
    assert_int_equal(backup_purge(bk, 1, &removed, errbuf), CRM_OK);
    assert_int_equal(removed, 1);
    snprintf(path, sizeof path, "%s/oneview/1", bk);
    assert_int_equal(access(path, F_OK), -1);
    store_destroy(&st);
    test_rmrf(data);
    test_rmrf(work);
    free(data);
    free(work);
}

/* A restore begins a history of its own (RELIABILITY.md trap 15): a new epoch,
   larger for a later restore of the same backup, beginning after what the
   backup holds, kept across a reopen; the server backed up keeps its own. */
static void
test_backup_restore_new_history(void **state)
{
    (void)state;
    store_t *st = NULL, *rs = NULL;
    char *data = s_data(&st, 3), *work = test_tmpdir(), errbuf[CRM_ERRBUF];
    char bk[512], r[2][512];
    snprintf(bk, sizeof bk, "%s/bk", work);
    backup_meta_t m;
    assert_int_equal(backup_run(st, data, bk, 0, NULL, NULL, &m, errbuf), CRM_OK);
    uint64_t wal_at_backup = store_wal_seq(st), start = 99;
    assert_int_equal(store_epoch(st, &start), 1);
    assert_int_equal(start, 0);
    assert_int_equal(store_epoch_first(st), 1);
    s_more(st, 2); /* the server goes on past the backup */
    uint64_t history[2];
    int64_t before_ms = crm_time_now_ms();
    for (int i = 0; i < 2; i++) {
        snprintf(r[i], sizeof r[i], "%s/r%d", work, i);
        assert_int_equal(backup_restore(bk, 1, r[i], NULL, NULL, &m, errbuf), CRM_OK);
        history[i] = m.history;
        assert_true(history[i] >= (uint64_t)before_ms);
        assert_int_equal(store_open(r[i], 0, &rs, errbuf), CRM_OK);
        assert_int_equal(store_epoch(rs, &start), history[i]);
        /* it began after the backup's last WAL entry and change (its own meta write
           is its first entry) */
        assert_true(start > wal_at_backup && start <= store_wal_seq(rs));
        assert_int_equal(store_epoch_first(rs), 4);
        assert_int_equal(store_last_seq(rs), 3);
        store_destroy(&rs);
    }
    assert_true(history[1] > history[0]); /* never the same for two restores */
    assert_int_equal(store_epoch(st, NULL), 1);
    /* a replica's history is its primary's: not begun on its own */
    assert_int_equal(store_open(r[0], STORE_REPLICA, &rs, errbuf), CRM_OK);
    uint64_t e = 7;
    assert_int_equal(store_new_history(rs, &e, errbuf), CRM_ERR_FAILED_PRECONDITION);
    assert_int_equal(e, 0);
    assert_int_equal(store_epoch(rs, NULL), history[0]);
    store_destroy(&rs);
    /* a fenced former primary's backup restores: a history of its own, still fenced */
    assert_int_equal(store_open(r[1], 0, &rs, errbuf), CRM_OK);
    assert_int_equal(store_fence(rs, 9, errbuf), CRM_OK);
    assert_int_equal(store_new_history(rs, &e, errbuf), CRM_OK);
    assert_true(e > history[1]);
    assert_true(store_readonly(rs));
    store_destroy(&rs);
    store_destroy(&st);
    test_rmrf(data);
    test_rmrf(work);
    free(data);
    free(work);
}

static void
test_backup_damage_detected(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *data = s_data(&st, 50), *work = test_tmpdir(), errbuf[CRM_ERRBUF];
    char bk[512], r[512], path[1400], victim[300] = "";
    snprintf(bk, sizeof bk, "%s/bk", work);
    snprintf(r, sizeof r, "%s/r", work);
    backup_meta_t m;
    size_t files = 0;
    assert_int_equal(backup_run(st, data, bk, 0, NULL, NULL, &m, errbuf), CRM_OK);
    assert_int_equal(backup_check_checksums(bk, 1, &files, errbuf), CRM_OK);
    assert_true(files > 0);
    snprintf(path, sizeof path, "%s/shared_checksum", bk);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".sst"))
            snprintf(victim, sizeof victim, "%.250s", e->d_name);
    closedir(d);
    assert_true(victim[0]);
    snprintf(path, sizeof path, "%s/shared_checksum/%s", bk, victim);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
    assert_int_equal(backup_check_checksums(bk, 1, &files, errbuf), CRM_ERR_STORAGE);
    assert_non_null(strstr(errbuf, victim));
    assert_int_equal(backup_restore(bk, 1, r, NULL, NULL, &m, errbuf), CRM_ERR_STORAGE);
    assert_non_null(strstr(errbuf, victim));
    assert_int_equal(access(r, F_OK), -1); /* nothing left behind */
    /* a data dir without its server key cannot be backed up usefully: refused */
    snprintf(path, sizeof path, "%s/server.key", data);
    unlink(path);
    assert_int_not_equal(backup_run(st, data, bk, 0, NULL, NULL, &m, errbuf), CRM_OK);
    assert_non_null(strstr(errbuf, "server.key"));
    store_destroy(&st);
    test_rmrf(data);
    test_rmrf(work);
    free(data);
    free(work);
}

static void
test_backup_job_thread(void **state)
{
    (void)state;
    store_t *st = NULL;
    char *data = s_data(&st, 10), *work = test_tmpdir(), errbuf[CRM_ERRBUF], bk[512];
    snprintf(bk, sizeof bk, "%s/bk", work);
    backup_job_t *job = backup_job_new(st, data, NULL, 0, 0);
    backup_status_t s;
    uint64_t id = 0;
    /* no dir and no schedule: refused */
    assert_int_equal(backup_job_start(job, NULL, 0, &id, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_int_equal(backup_job_start(job, bk, 0, &id, errbuf), CRM_OK);
    assert_int_equal(id, 1);
    for (int i = 0; i < 200; i++) {
        backup_job_status(job, &s);
        if (s.finished >= id)
            break;
        usleep(20000);
    }
    assert_int_equal(s.finished, 1);
    assert_true(s.last_ok);
    assert_int_equal(s.last.seq, 10);
    backup_job_destroy(&job);
    assert_null(job);
    /* scheduled: a due backup starts from the tick */
    job = backup_job_new(st, data, bk, 1000, 1);
    backup_job_status(job, &s);
    assert_true(s.next_ms > 0);
    backup_job_destroy(&job);
    store_destroy(&st);
    test_rmrf(data);
    test_rmrf(work);
    free(data);
    free(work);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_seq_list_restore),
        cmocka_unit_test(test_backup_restore_new_history),
        cmocka_unit_test(test_backup_damage_detected),
        cmocka_unit_test(test_backup_job_thread),
    };
    return cmocka_run_group_tests_name("backup", tests, NULL, NULL);
}
