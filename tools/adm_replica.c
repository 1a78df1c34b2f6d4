/*  =========================================================================
    adm_replica - `crm-admin status`, `crm-admin digest`

    status: a running crmd's role, sequence numbers and, on a primary, the
            replicas pulling from it with their lag; on a replica, the
            primary it follows and how far behind it is (REPL_STATUS, admin).
    digest: a content digest of a stopped data dir - every key and value of
            every column family, BLAKE2b - with the sequence numbers it is
            as of. A primary and a replica at the same sequence number give
            the same digest.
    =========================================================================
*/
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
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
    "\n"
    "A BLAKE2b digest of every key and value in a stopped data dir, with the sequence\n"
    "numbers it is as of. A replica and its primary at the same sequence number print\n"
    "the same digest.\n";

int
adm_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},  {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    static char admin_path[PATH_MAX];
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
            fputs(s_status_usage, stdout);
            return EXIT_OK;
        default:
            fputs(s_status_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(s_status_usage, stderr);
        return EXIT_USAGE;
    }
    if (!ctx.config && data) {
        snprintf(admin_path, sizeof admin_path, "%s/admin.enroll", data);
        ctx.config = admin_path;
    }
    conn_t *conn = NULL;
    int rc = conn_open(&ctx, &conn);
    if (rc != EXIT_OK)
        return rc;
    Crm__Request r = CRM__REQUEST__INIT;
    r.op = CRM__OP__OP_REPL_STATUS;
    Crm__Reply *reply = NULL;
    rc = conn_call(conn, &r, &reply);
    if (rc == EXIT_OK && reply->body_case != CRM__REPLY__BODY_REPL_STATUS) {
        fprintf(stderr, "crm-admin status: the server sent an unexpected reply\n");
        rc = EXIT_REFUSED;
    }
    if (rc == EXIT_OK) {
        const Crm__ReplStatusReply *s = reply->repl_status;
        if (ctx.json) {
            printf("{\"role\":\"%s\",\"epoch\":%" PRIu64 ",\"last_seq\":%" PRIu64
                   ",\"wal_seq\":%" PRIu64,
                   s->role, s->epoch, s->last_seq, s->wal_seq);
            if (*s->primary) {
                printf(",\"primary\":");
                out_json_str(stdout, s->primary);
                printf(",\"connected\":%s,\"primary_seq\":%" PRIu64 ",\"lag_entries\":%" PRIu64
                       ",\"lag_ms\":%" PRIu64 ",\"state\":",
                       s->connected ? "true" : "false", s->primary_seq, s->lag_entries,
                       s->lag_ms);
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
            printf("role         %s\nepoch        %" PRIu64 "\nlast_seq     %" PRIu64
                   "   (change log)\nwal_seq      %" PRIu64 "   (RocksDB WAL)\n",
                   s->role, s->epoch, s->last_seq, s->wal_seq);
            if (*s->primary)
                printf("primary      %s\nconnected    %s\nprimary_seq  %" PRIu64
                       "\nlag          %" PRIu64 " entries, %" PRIu64 " ms\nstate        %s\n",
                       s->primary, s->connected ? "yes" : "no", s->primary_seq, s->lag_entries,
                       s->lag_ms, s->state);
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
adm_digest(int argc, char **argv)
{
    const char *data = NULL;
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'd') {
            data = optarg;
        } else if (c == 'h') {
            fputs(s_digest_usage, stdout);
            return EXIT_OK;
        } else {
            fputs(s_digest_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!data || optind != argc) {
        fputs(s_digest_usage, stderr);
        return EXIT_USAGE;
    }
    char errbuf[CRM_ERRBUF];
    store_t *store = NULL;
    if (store_open(data, STORE_REPLICA, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin digest: %s\n", errbuf);
        return EXIT_REFUSED;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    uint64_t keys = 0;
    for (int cf = 0; cf < STORE_CF__COUNT; cf++) {
        const char *name = store_cf_name((store_cf_t)cf);
        crypto_generichash_update(&h, (const unsigned char *)name, strlen(name) + 1);
        store_iter_t *it = store_iter_new(store, (store_cf_t)cf);
        for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
            size_t klen, vlen;
            const char *k = store_iter_key(it, &klen);
            const char *v = store_iter_value(it, &vlen);
            uint8_t lens[16];
            store_put_be64(lens, klen);
            store_put_be64(lens + 8, vlen);
            crypto_generichash_update(&h, lens, sizeof lens);
            crypto_generichash_update(&h, (const unsigned char *)k, klen);
            crypto_generichash_update(&h, (const unsigned char *)v, vlen);
            keys++;
        }
        store_iter_destroy(&it);
    }
    uint8_t out[32];
    crypto_generichash_final(&h, out, sizeof out);
    uint64_t read_errors = store_read_errors(store, errbuf);
    printf("digest ");
    for (size_t i = 0; i < sizeof out; i++)
        printf("%02x", out[i]);
    printf("\nlast_seq %" PRIu64 "\nwal_seq %" PRIu64 "\nkeys %" PRIu64 "\n",
           store_last_seq(store), store_wal_seq(store), keys);
    store_destroy(&store);
    if (read_errors) {
        fprintf(stderr, "crm-admin digest: %s\n", errbuf);
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}
