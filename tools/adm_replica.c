/*  =========================================================================
    adm_replica - `crm-admin status`, `crm-admin digest`

    status: a running crmd's role, sequence numbers and, on a primary, the
            replicas pulling from it with their lag; on a replica, the
            primary it follows and how far behind it is (REPL_STATUS, admin).
    replica init: a new replica's data dir, fetched through the primary as
            a RocksDB checkpoint in chunks over CurveZMQ by a replica identity
            (REPL_SNAPSHOT, repl_snap.c), with the identity's enrollment
            kept as DIR/replica.enroll for `crmd --replica-of`.
    digest: a content digest - every key and value of every column family,
            BLAKE2b (store_digest) - with the sequence numbers it is as of:
            of a stopped data dir, or of a running server (REPL_DIGEST) as of
            a given WAL sequence number. A primary and a replica at the same
            sequence number give the same digest.
    =========================================================================
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adm.h"
#include "cmd.h"
#include "conn.h"
#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_time.h"
#include "backup.h"
#include "repl_fetch.h"
#include "store.h"

static const char s_status_usage[] =
    "usage: crm-admin status [--data DIR | --config ENROLL] [--server ENDPOINT] [--json]\n"
    "\n"
    "The running server's role (primary or replica), epoch and sequence numbers (the\n"
    "change log's and RocksDB's WAL's). A primary lists the replicas that pulled in the\n"
    "last minute: the WAL sequence number each holds, its lag in entries and in ms (the\n"
    "age of the oldest commit it does not have yet). A replica shows the primary it\n"
    "follows, whether it is connected, and its own lag. As DIR/admin.enroll with --data.\n";

static const char s_digest_usage[] =
    "usage: crm-admin digest --data DIR\n"
    "       crm-admin digest [--data DIR | --config ENROLL] --server ENDPOINT [--at WAL_SEQ]\n"
    "\n"
    "A BLAKE2b digest of every key and value of the store, with the sequence numbers it\n"
    "is as of. With --data alone, of a stopped data dir, read here. With --server, of\n"
    "the running server, read from one snapshot on its helper thread (as DIR/admin.enroll\n"
    "with --data). --at: as of that WAL sequence number - give a replica the wal_seq of\n"
    "its primary's digest; it answers from the view it kept when it applied that batch\n"
    "(it keeps the last 5 s of them), or waits up to 10 s to reach it. A replica and its\n"
    "primary at the same sequence number print the same digest.\n";

/* Connect as CTX says (as DATA/admin.enroll without --config), send R and
   take a reply with body WANT. The caller frees *reply; *conn_p stays open
   until the caller destroys it. */
static int
s_admin_call(cli_ctx_t *ctx, const char *data, Crm__Request *r, Crm__Reply__BodyCase want,
             conn_t **conn_p, Crm__Reply **reply)
{
    static char admin_path[PATH_MAX];
    *reply = NULL;
    if (!ctx->config && data) {
        snprintf(admin_path, sizeof admin_path, "%s/admin.enroll", data);
        ctx->config = admin_path;
    }
    int rc = conn_open(ctx, conn_p);
    if (rc != EXIT_OK)
        return rc;
    rc = conn_call(*conn_p, r, reply);
    if (rc == EXIT_OK && (*reply)->body_case != want) {
        fprintf(stderr, "crm-admin: the server sent an unexpected reply\n");
        rc = EXIT_REFUSED;
    }
    return rc;
}

/* `crm-admin status` and `crm-admin promote`: OP answered with a ReplStatusReply. */
/* A replica's lag figures tell how far behind it is only while the primary answers it:
   a pull is held at most half a second, so a replica that has not heard from it in 2 s
   (stopped, cut off, refused) does not know its lag. */
#define REPL_STALE_MS 2000
static bool
s_lag_known(const Crm__ReplStatusReply *s)
{
    return s->connected && s->heard && s->heard_ms_ago <= REPL_STALE_MS;
}

static int
s_status_like(int argc, char **argv, Crm__Op op, const char *usage)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},  {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *data = NULL, *env = getenv("CRM_SERVER");
    cli_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.timeout_ms = 5000;
    ctx.server = env && *env ? env : NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'c':
            ctx.config = optarg;
            break;
        case 's':
            ctx.server = optarg;
            break;
        case 'j':
            ctx.json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return EXIT_OK;
        default:
            fputs(usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    Crm__Request r = CRM__REQUEST__INIT;
    r.op = op;
    Crm__Reply *reply = NULL;
    int rc = s_admin_call(&ctx, data, &r, CRM__REPLY__BODY_REPL_STATUS, &conn, &reply);
    if (rc == EXIT_OK) {
        const Crm__ReplStatusReply *s = reply->repl_status;
        if (ctx.json) {
            printf("{\"role\":\"%s\",\"epoch\":%" PRIu64 ",\"epoch_start\":%" PRIu64
                   ",\"fenced_by\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"wal_seq\":%" PRIu64,
                   s->role, s->epoch, s->epoch_start, s->fenced_by, s->last_seq, s->wal_seq);
            if (*s->primary) {
                printf(",\"primary\":");
                out_json_str(stdout, s->primary);
                printf(",\"connected\":%s,\"primary_seq\":%" PRIu64 ",\"lag_entries\":%" PRIu64
                       ",\"lag_ms\":%" PRIu64 ",\"lag_known\":%s,\"heard_ms_ago\":",
                       s->connected ? "true" : "false", s->primary_seq, s->lag_entries,
                       s->lag_ms, s_lag_known(s) ? "true" : "false");
                if (s->heard)
                    printf("%" PRIu64, s->heard_ms_ago);
                else
                    printf("null");
                printf(",\"state\":");
                out_json_str(stdout, s->state);
            }
            printf(",\"replicas\":[");
            for (size_t i = 0; i < s->n_replicas; i++) {
                const Crm__ReplicaInfo *ri = s->replicas[i];
                printf("%s{\"name\":", i ? "," : "");
                out_json_str(stdout, ri->name);
                printf(",\"applied_seq\":%" PRIu64 ",\"lag_entries\":%" PRIu64
                       ",\"lag_ms\":%" PRIu64 ",\"seen_ms_ago\":%" PRIu64 "}",
                       ri->applied_seq, ri->lag_entries, ri->lag_ms, ri->seen_ms_ago);
            }
            printf("]}\n");
        } else {
            if (op == CRM__OP__OP_REPL_PROMOTE)
                printf("promoted: this server is the primary now, epoch %" PRIu64
                       " from WAL sequence %" PRIu64 "\n",
                       s->epoch, s->epoch_start);
            printf("role         %s\nepoch        %" PRIu64 "%s\nlast_seq     %" PRIu64
                   "   (change log)\nwal_seq      %" PRIu64 "   (RocksDB WAL)\n",
                   s->role, s->epoch, s->fenced_by ? "   (a newer epoch exists: fenced)" : "",
                   s->last_seq, s->wal_seq);
            if (*s->primary && s_lag_known(s))
                printf("primary      %s\nconnected    %s\nprimary_seq  %" PRIu64
                       "\nlag          %" PRIu64 " entries, %" PRIu64 " ms\nstate        %s\n",
                       s->primary, s->connected ? "yes" : "no", s->primary_seq, s->lag_entries,
                       s->lag_ms, s->state);
            else if (*s->primary) { /* what it last heard is no lag to go by */
                char heard[64] = "never";
                if (s->heard)
                    snprintf(heard, sizeof heard, "%.1f s ago", (double)s->heard_ms_ago / 1e3);
                printf("primary      %s\nconnected    %s\nprimary_seq  %" PRIu64
                       "   (when last heard)\nlag          unknown: the primary last answered "
                       "%s\nstate        %s\n",
                       s->primary, s->connected ? "yes" : "no", s->primary_seq, heard, s->state);
            }
            printf("replicas     %zu\n", s->n_replicas);
            if (s->n_replicas)
                printf("  %-20s %14s %12s %10s %10s\n", "NAME", "APPLIED_SEQ", "LAG_ENTRIES",
                       "LAG_MS", "SEEN_MS");
            for (size_t i = 0; i < s->n_replicas; i++) {
                const Crm__ReplicaInfo *ri = s->replicas[i];
                printf("  %-20s %14" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
                       ri->name, ri->applied_seq, ri->lag_entries, ri->lag_ms,
                       ri->seen_ms_ago);
            }
        }
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

int
adm_status(int argc, char **argv)
{
    return s_status_like(argc, argv, CRM__OP__OP_REPL_STATUS, s_status_usage);
}

static const char s_promote_usage[] =
    "usage: crm-admin promote [--data DIR | --config ENROLL] [--server ENDPOINT] [--json]\n"
    "\n"
    "Turn the running replica at ENDPOINT into the primary: it stops following, starts a\n"
    "new epoch (history id) and takes writes. The former primary must take no writes any\n"
    "more: stop it, and start it again only as a replica of the new primary (crmd\n"
    "--replica-of, or a new 'crm-admin replica init'). A former primary that meets a\n"
    "replica of the newer epoch refuses writes by itself (fencing).\n";

int
adm_promote(int argc, char **argv)
{
    return s_status_like(argc, argv, CRM__OP__OP_REPL_PROMOTE, s_promote_usage);
}

int
adm_unfence(int argc, char **argv)
{
    static const char usage[] =
        "usage: crm-admin unfence --data DIR   (with the server stopped)\n"
        "\nA primary that met a replica of a newer epoch refuses writes from then on (it\n"
        "was fenced: a replica was promoted). Where no promoted replica serves - the\n"
        "fence came from a replica identity that lied, or the promotion was undone -\n"
        "this lets DIR take writes again. Two primaries of one history diverge: check\n"
        "'crm-admin status' of every replica first.\n";
    if (argc != 3 || strcmp(argv[1], "--data")) {
        bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    char errbuf[CRM_ERRBUF];
    store_t *store = NULL;
    if (store_open(argv[2], 0, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin unfence: %s\n", errbuf);
        return EXIT_REFUSED;
    }
    uint64_t by = store_fenced_by(store);
    int rc = EXIT_OK;
    if (!by)
        printf("'%s' is not fenced: nothing to do\n", argv[2]);
    else if (store_unfence(store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin unfence: %s\n", errbuf);
        rc = EXIT_REFUSED;
    } else
        printf("'%s' takes writes again (it was fenced by epoch %" PRIu64 "; its own is %" PRIu64
               ")\n",
               argv[2], by, store_epoch(store, NULL));
    store_destroy(&store);
    return rc;
}

/* Print a digest and what it is as of, in the one format of both ways. */
static void
s_print_digest(const uint8_t *d, size_t n, uint64_t last_seq, uint64_t wal_seq, uint64_t keys)
{
    printf("digest ");
    for (size_t i = 0; i < n; i++)
        printf("%02x", d[i]);
    printf("\nlast_seq %" PRIu64 "\nwal_seq %" PRIu64 "\nkeys %" PRIu64 "\n", last_seq, wal_seq,
           keys);
}

/* The digest of a stopped data dir, read here. */
static int
s_digest_offline(const char *data)
{
    char errbuf[CRM_ERRBUF];
    store_t *store = NULL;
    if (store_open(data, STORE_REPLICA, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin digest: %s\n", errbuf);
        return EXIT_REFUSED;
    }
    uint8_t out[32];
    uint64_t keys = 0, last_seq = 0;
    crm_err_t rc = store_digest(store, out, &keys, &last_seq, errbuf);
    if (rc == CRM_OK)
        s_print_digest(out, sizeof out, last_seq, store_wal_seq(store), keys);
    else
        fprintf(stderr, "crm-admin digest: %s\n", errbuf);
    store_destroy(&store);
    return rc == CRM_OK ? EXIT_OK : EXIT_REFUSED;
}

int
adm_digest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'}, {"at", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    const char *data = NULL;
    uint64_t at = 0;
    cli_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.timeout_ms = 600000; /* every key is read: minutes for a big store */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'c':
            ctx.config = optarg;
            break;
        case 's':
            ctx.server = optarg;
            break;
        case 'a':
            errno = 0;
            at = strtoull(optarg, &end, 10);
            if (errno || !end || *end || !at || *optarg == '-') {
                fprintf(stderr, "crm-admin digest: --at wants a WAL sequence number, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(s_digest_usage, stdout);
            return EXIT_OK;
        default:
            fputs(s_digest_usage, stderr);
            return EXIT_USAGE;
        }
    }
    bool online = ctx.server || ctx.config;
    if (optind != argc || (!online && !data) || (at && !online)) {
        fputs(s_digest_usage, stderr);
        return EXIT_USAGE;
    }
    if (!online)
        return s_digest_offline(data);
    conn_t *conn = NULL;
    Crm__Request r = CRM__REQUEST__INIT;
    Crm__ReplDigestRequest dr = CRM__REPL_DIGEST_REQUEST__INIT;
    r.op = CRM__OP__OP_REPL_DIGEST;
    r.body_case = CRM__REQUEST__BODY_REPL_DIGEST;
    r.repl_digest = &dr;
    dr.at_wal_seq = at;
    Crm__Reply *reply = NULL;
    int rc = s_admin_call(&ctx, data, &r, CRM__REPLY__BODY_REPL_DIGEST, &conn, &reply);
    if (rc == EXIT_OK) {
        const Crm__ReplDigestReply *d = reply->repl_digest;
        s_print_digest(d->digest.data, d->digest.len, d->last_seq, d->wal_seq, d->keys);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

static const char s_replica_usage[] =
    "usage: crm-admin replica init --from ENDPOINT --data DIR --enroll FILE\n"
    "\n"
    "Make DIR (new or empty) a copy of the primary at ENDPOINT: the primary takes a\n"
    "consistent checkpoint and sends it in chunks over CurveZMQ to FILE's identity,\n"
    "which must be a user with the replica role (on the primary: crm-admin user add\n"
    "NAME --role replica --out FILE). FILE is kept as DIR/replica.enroll. Then start\n"
    "the replica with: crmd --data DIR --replica-of ENDPOINT\n";

/* The fetch's transport (repl_fetch.h): REPL_SNAPSHOT through our connection. */
typedef struct {
    conn_t *conn;
    int exit_rc;  /* conn_call's exit code when it failed (it reported why) */
    bool bar;     /* a progress bar on a terminal, else a line per quarter */
    int last_pct;
} s_fetch_t;

static crm_err_t
s_snap_call(void *arg, Crm__ReplSnapshotRequest *rq, Crm__Reply **reply, char *errbuf)
{
    s_fetch_t *f = arg;
    Crm__Request r = CRM__REQUEST__INIT;
    r.op = CRM__OP__OP_REPL_SNAPSHOT;
    r.body_case = CRM__REQUEST__BODY_REPL_SNAPSHOT;
    r.repl_snapshot = rq;
    if (rq->done) /* the end, or dropping what we did not finish: nothing to report */
        conn_set_quiet(f->conn, true);
    int rc = conn_call(f->conn, &r, reply);
    if (rc != EXIT_OK) {
        f->exit_rc = rc;
        errbuf[0] = '\0'; /* conn_call said why */
        return CRM_ERR_UNAVAILABLE;
    }
    if ((*reply)->body_case != CRM__REPLY__BODY_REPL_SNAPSHOT) {
        conn_reply_free(reply);
        snprintf(errbuf, CRM_ERRBUF, "the server sent an unexpected reply");
        return CRM_ERR_INTERNAL;
    }
    return CRM_OK;
}

static void
s_started(void *arg, uint64_t id)
{
    (void)arg;
    fprintf(stderr, "snapshot %llu: the primary is taking a checkpoint...\n",
            (unsigned long long)id);
}

static void
s_progress(void *arg, uint64_t done, uint64_t total)
{
    s_fetch_t *f = arg;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (f->bar) {
        int n = pct / 4;
        fprintf(stderr, "\r[%.*s%*s] %3d%%  %8.1f of %.1f MB ", n, "=========================",
                25 - n, "", pct, (double)done / 1e6, (double)total / 1e6);
        fflush(stderr);
    } else if (pct / 25 > f->last_pct / 25 || (pct == 100 && f->last_pct != 100)) {
        fprintf(stderr, "snapshot: %3d%%  %.1f of %.1f MB\n", pct, (double)done / 1e6,
                (double)total / 1e6);
    }
    f->last_pct = pct;
}

/* Does directory PATH hold nothing? */
static bool
s_dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    const struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)))
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    return empty;
}

/* Remove everything in directory PATH, keeping PATH. */
static void
s_dir_clear(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    const struct dirent *de;
    char sub[PATH_MAX];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) < (int)sizeof sub)
            backup_remove_tree(sub);
    closedir(d);
}

static int
s_replica_init(const char *from, const char *data, const char *enroll_path)
{
    char errbuf[CRM_ERRBUF], path[PATH_MAX];
    crm_enroll_t e;
    int rc = EXIT_OK;
    conn_t *conn = NULL;
    bool made = false;
    if (crm_enroll_load(enroll_path, &e, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin replica: %s\n", errbuf);
        return EXIT_USAGE;
    }
    /* a new or empty directory, checked before a byte is fetched */
    struct stat st;
    if (stat(data, &st) == 0 && (!S_ISDIR(st.st_mode) || !s_dir_empty(data))) {
        fprintf(stderr, "crm-admin replica: '%s' %s; give a new or empty data dir\n", data,
                S_ISDIR(st.st_mode) ? "is not empty" : "is not a directory");
        return EXIT_USAGE;
    }
    bool made_dir = mkdir(data, 0700) == 0;
    if (!made_dir && errno != EEXIST) {
        fprintf(stderr, "crm-admin replica: cannot create '%s': %s\n", data, strerror(errno));
        return EXIT_USAGE;
    }
    made = true; /* from here on a failure leaves DATA as it found it */
    snprintf(path, sizeof path, "%s/db", data);
    if (mkdir(path, 0700) != 0) {
        fprintf(stderr, "crm-admin replica: cannot create '%s': %s\n", path, strerror(errno));
        rc = EXIT_USAGE;
        goto cleanup;
    }
    cli_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.config = enroll_path;
    ctx.server = from;
    ctx.timeout_ms = 10000;
    if ((rc = conn_open(&ctx, &conn)) != EXIT_OK)
        goto cleanup;
    int64_t t0 = crm_time_mono_us();
    s_fetch_t f = {conn, EXIT_OK, isatty(2) != 0, -1};
    repl_fetch_io_t io = {s_snap_call, conn_reply_free, s_started, s_progress, NULL, &f};
    crm_err_t frc = repl_fetch(&io, data, errbuf);
    if (f.bar && frc == CRM_OK)
        fprintf(stderr, "\n");
    if (frc != CRM_OK) {
        if (f.exit_rc != EXIT_OK && !*errbuf) {
            rc = f.exit_rc;
        } else {
            fprintf(stderr, "crm-admin replica: %s\n", errbuf);
            rc = frc == CRM_ERR_INVALID_ARGUMENT ? EXIT_USAGE : EXIT_REFUSED;
        }
        goto cleanup;
    }
    /* the identity and where the primary is, for crmd --replica-of */
    snprintf(e.endpoint, sizeof e.endpoint, "%s", from);
    snprintf(path, sizeof path, "%s/replica.enroll", data);
    if (crm_enroll_save(path, &e, true, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin replica: %s\n", errbuf);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    store_t *store = NULL;
    if (store_open(data, STORE_REPLICA, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin replica: the copy does not open: %s\n", errbuf);
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    printf("replica data dir '%s' ready in %.1f s at WAL sequence %llu (change log %llu)\n"
           "start it with: crmd --data %s --replica-of %s\n",
           data, (double)(crm_time_mono_us() - t0) / 1e6,
           (unsigned long long)store_wal_seq(store), (unsigned long long)store_last_seq(store),
           data, from);
    store_destroy(&store);
cleanup:
    conn_destroy(&conn);
    if (rc != EXIT_OK && made) { /* leave nothing half-made behind */
        if (made_dir)
            backup_remove_tree(data);
        else
            s_dir_clear(data);
    }
    sodium_memzero(&e, sizeof e);
    return rc;
}

int
adm_replica(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, 'f'},   {"data", required_argument, NULL, 'd'},
        {"enroll", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *from = NULL, *data = NULL, *enroll = NULL;
    if (argc < 2 || strcmp(argv[1], "init") != 0) {
        fputs(s_replica_usage, argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc >= 2 && !strcmp(argv[1], "--help") ? EXIT_OK : EXIT_USAGE;
    }
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            from = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'e':
            enroll = optarg;
            break;
        case 'h':
            fputs(s_replica_usage, stdout);
            return EXIT_OK;
        default:
            fputs(s_replica_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!from || !data || !enroll || optind != argc) {
        fputs(s_replica_usage, stderr);
        return EXIT_USAGE;
    }
    return s_replica_init(from, data, enroll);
}
