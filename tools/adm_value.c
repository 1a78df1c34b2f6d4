/*  =========================================================================
    adm_value - `crm-admin upgrade`, `crm-admin sweep`, `crm-admin rules`

    upgrade  rewrites a stopped data dir of an older format in place: format
             1 change-log entries (one record each) become format-2 parts, and
             every customer gets the derived value fields; format 3 indexes
             booleans (customer consent, task done): every kind's index
             entries are made what its records write; format 6 seals every
             value with the data dir's master key (first, so an interrupted
             run goes on before it reads), personal index terms become blind
             terms, and every table file is rewritten. A format-6 data dir
             in clear (upgraded when it had no master.key) is sealed when
             it has one.
    sweep    asks the running server to apply the time-based value rules
             (at-risk, churned) as of a date, slice by slice, through the
             normal write path; tests drive it with --as-of.
    rules    prints the value rules in force for a data dir.
    =========================================================================
*/
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adm.h"
#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "derive.h"
#include "records.h"
#include "store.h"

#define BATCH 1000
#define SWEEP_NAMED 20 /* records a preview names */

/* ==== upgrade ==== */

/* Rewrite a format-1 change (one record, ids of deleted children) as parts. */
static bool
s_upgrade_change(Crm__Change *c)
{
    if (c->n_parts || !*c->kind)
        return false;
    size_t n = 1 + c->n_also_deleted;
    Crm__ChangePart *parts = calloc(n, sizeof *parts);
    Crm__ChangePart **ptrs = calloc(n, sizeof *ptrs);
    CRM_ASSERT(parts && ptrs);
    crm__change_part__init(&parts[0]);
    parts[0].kind = c->kind;
    parts[0].id = c->id;
    parts[0].op = c->op;
    parts[0].fields = c->fields;
    parts[0].n_fields = c->n_fields;
    parts[0].record = c->record;
    parts[0].hidden_before = c->hidden_before;
    parts[0].owner_before = c->owner_before;
    ptrs[0] = &parts[0];
    for (size_t i = 0; i < c->n_also_deleted; i++) {
        const crm_entity_t *k = crm_entity_by_prefix(c->also_deleted[i][0]);
        crm__change_part__init(&parts[i + 1]);
        parts[i + 1].kind = (char *)(k ? k->name : "");
        parts[i + 1].id = c->also_deleted[i];
        parts[i + 1].op = CRM__CHANGE_OP__DELETE;
        ptrs[i + 1] = &parts[i + 1];
    }
    c->parts = ptrs;
    c->n_parts = n;
    return true;
}

/* What sealing cannot reach: copies made before it, outside the live
   tables. Said, not removed: a replica may still need the archived WAL, and
   an operator decides about backups. */
static void
s_note_clear_copies(const char *dir)
{
    static const struct {
        const char *sub, *what;
    } spots[] = {
        {"db/archive", "the write-ahead log kept for replicas (crmd removes it after --wal-keep)"},
        {".backup-checkpoint", "the checkpoint of a backup that was cut short"},
        {".replica-snapshot", "a snapshot being sent to a replica"},
        {".replica-resync", "a replica's copy being fetched"},
        {"db.pre-resync", "a replica's database before its last re-sync"},
    };
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, spots[i].sub);
        DIR *d = opendir(path);
        if (!d)
            continue;
        bool files = false;
        for (struct dirent *e; !files && (e = readdir(d));)
            files = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        if (files)
            printf("note: %s (%s) still holds values from before in clear: remove it when no "
                   "longer needed\n",
                   path, spots[i].what);
    }
    printf("note: backups made before this upgrade hold its values in clear\n");
}

#define SEAL_PENDING_FORMAT 5 /* sealing a store in clear takes format 5's upgrade steps */
#define UNLISTED_FORMAT 8     /* single ASCII characters left the text index */

static int
s_upgrade(const char *dir)
{
    char errbuf[CRM_ERRBUF] = "";
    store_t *store = NULL;
    if (store_open(dir, STORE_ANY_FORMAT, &store, errbuf) != CRM_OK) {
        /* opening replays the WAL into table files, so a full disk can stop
           it here: the data dir is as it was */
        fprintf(stderr, "crm-admin upgrade: %s; nothing was changed: the upgrade can be run "
                        "again once that is put right\n", errbuf);
        return 1;
    }
    uint32_t from = store_format(store);
    /* a run that stopped before its end: on from where it began, if it was going to
       this version's format or an older one (whose steps this run takes too) */
    uint32_t to = 0;
    if (from == STORE_FORMAT_UPGRADING && (from = store_upgrade_from(store, &to)) &&
        to > STORE_FORMAT) {
        fprintf(stderr, "crm-admin upgrade: '%s' is being upgraded to format %u by a newer "
                        "OneView (this one writes format %d): finish it with that one\n",
                dir, to, STORE_FORMAT);
        store_destroy(&store);
        return 1;
    }
    if (!from) {
        fprintf(stderr, "crm-admin upgrade: '%s' is marked as being upgraded but does not say "
                        "from which format: restore it from the backup made before\n", dir);
        store_destroy(&store);
        return 1;
    }
    char keyfile[PATH_MAX + 16];
    snprintf(keyfile, sizeof keyfile, "%s/master.key", dir);
    /* a data dir upgraded while it had no master key holds its values in clear:
       given one now, the upgrade seals it (steps 1, 5 and 6), a current one too */
    bool sealing = !store_sealed(store) && access(keyfile, F_OK) == 0;
    bool seal_only = from == STORE_FORMAT && sealing;
    if (from == STORE_FORMAT && !seal_only) {
        printf("'%s' is already format %d: nothing to do%s\n", dir, STORE_FORMAT,
               store_sealed(store) ? "" : " (its values are in clear: it has no master.key)");
        store_destroy(&store);
        return 0;
    }
    if (from > STORE_FORMAT) {
        fprintf(stderr, "crm-admin upgrade: '%s' has format %u, newer than this OneView's %d\n",
                dir, from, STORE_FORMAT);
        store_destroy(&store);
        return 1;
    }
    int rc = 1;
    uint64_t rewritten = 0, customers = 0, entries = 0;
    /* an upgrade takes several steps (values sealed, index terms rewritten, each in
       many commits): until the last is done the data dir is marked as being upgraded,
       which every crmd refuses (one of the format it came from would read sealed values
       as records, or miss records whose old terms are gone), and a rerun goes on from
       the format it began at. Sealing a current one made in clear takes the steps of
       an upgrade from the last format before sealing */
    uint32_t shown = from; /* what the data dir was, for the report */
    if (sealing && from > SEAL_PENDING_FORMAT)
        from = SEAL_PENDING_FORMAT;
    if (store_upgrade_begin(store, from, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin upgrade: %s; nothing was changed: the upgrade can be run "
                        "again once that is put right\n", errbuf);
        store_destroy(&store);
        return 1;
    }
    store_group_t *g = store_group_new(store);
    /* 1. (format 6) encryption at rest: every value sealed with the data
       dir's master key. First, before anything is read: a run stopped
       half-way through the sealing leaves values sealed but no marker (the
       store opens as one in clear), and the next run must seal the rest
       before it reads a record; and before the indexes, so personal fields
       get blind terms */
    uint64_t sealed = 0;
    crm_err_t src = store_seal_all(store, dir, &sealed, errbuf);
    if (src == CRM_ERR_NOT_FOUND)
        printf("'%s' has no master.key: its values stay in clear\n", dir);
    else if (src != CRM_OK)
        goto storage;
    /* 2. (format 1) the change log: one record per entry -> parts */
    uint64_t last = from < 2 ? store_last_seq(store) : 0;
    for (uint64_t seq = store_changelog_first(store); from < 2 && seq <= last; seq++) {
        store_val_t v = {0};
        Crm__Change *c = NULL;
        if (store_changelog_get(store, seq, &v) != CRM_OK) {
            store_val_release(&v);
            continue; /* a gap is for `check` to report */
        }
        if (crm_proto_unpack(&crm__change__descriptor, (const uint8_t *)v.data, v.len,
                             (ProtobufCMessage **)&c, errbuf) != CRM_OK) {
            fprintf(stderr, "crm-admin upgrade: change %" PRIu64 " is corrupt: %s\n", seq, errbuf);
            store_val_release(&v);
            goto cleanup;
        }
        store_val_release(&v);
        Crm__ChangePart **old_parts = c->parts;
        size_t old_n = c->n_parts;
        if (s_upgrade_change(c)) {
            Crm__ChangePart *block = c->parts[0];
            Crm__Change legacy = *c; /* the legacy fields go; the parts stay */
            legacy.kind = (char *)"";
            legacy.id = (char *)"";
            legacy.op = 0;
            legacy.n_fields = 0;
            legacy.record.len = 0;
            legacy.hidden_before = 0;
            legacy.owner_before = (char *)"";
            legacy.n_also_deleted = 0;
            size_t len;
            uint8_t *packed = crm_proto_pack(&legacy.base, &len), key[8];
            store_put_be64(key, seq);
            store_group_put(g, STORE_CF_CHANGELOG, key, sizeof key, packed, len);
            free(packed);
            free(c->parts);
            free(block);
            c->parts = old_parts;
            c->n_parts = old_n;
            rewritten++;
        }
        crm_proto_free((ProtobufCMessage **)&c);
        if (rewritten % BATCH == BATCH - 1 && store_group_commit(g, errbuf) != CRM_OK)
            goto storage;
    }
    /* 3. every customer's derived value (format 1 had none); a tier set by
       hand stays, as an override; the stage is what people gave it */
    value_rules_t rules;
    char path[PATH_MAX];
    value_rules_defaults(&rules);
    snprintf(path, sizeof path, "%s/value-rules.conf", dir);
    if (value_rules_load(&rules, path, false, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin upgrade: %s\n", errbuf);
        goto cleanup;
    }
    Crm__User actor = CRM__USER__INIT;
    actor.name = (char *)"crm-admin";
    derive_ctx_t dc = {.store = store, .rules = &rules, .actor = &actor, .now = crm_time_now_ms()};
    const crm_entity_t *ce = crm_entity_by_name("customer");
    uint64_t ids[BATCH], after = 0;
    size_t n;
    bool more = from < 2;
    while (more) {
        if (records_query(store, ce, NULL, 0, after, BATCH, ids, &n, &more, NULL, NULL) != CRM_OK)
            goto storage;
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessage *cur = NULL, *next = NULL;
            if (records_get(store, ce, ids[i], &cur) != CRM_OK ||
                records_get(store, ce, ids[i], &next) != CRM_OK) {
                crm_proto_free(&cur);
                goto storage;
            }
            Crm__Customer *c = (Crm__Customer *)next;
            int stage = c->stage;
            c->tier_override = c->tier != CRM__TIER__TIER_NONE;
            if (derive_customer(&dc, c, errbuf) != CRM_OK) {
                fprintf(stderr, "crm-admin upgrade: %s\n", errbuf);
                crm_proto_free(&cur);
                crm_proto_free(&next);
                goto cleanup;
            }
            c->stage = stage;
            records_stage_put(g, ce, ids[i], cur, next);
            customers++;
            crm_proto_free(&cur);
            crm_proto_free(&next);
        }
        if (n)
            after = ids[n - 1];
        if (store_group_commit(g, errbuf) != CRM_OK)
            goto storage;
    }
    if (store_group_commit(g, errbuf) != CRM_OK)
        goto storage;
    /* 4. (format 8) the postings of single ASCII characters, by range: the
       walk below then finds nothing stray and reads no record per entry */
    for (const crm_entity_t *e = crm_entity_all(); from < UNLISTED_FORMAT && e->name; e++) {
        uint64_t removed = 0;
        if (records_drop_unlisted(store, e, &removed, errbuf) != CRM_OK)
            goto storage;
        entries += removed;
    }
    /* 5. indexes the table gained (booleans, names at a company, a ticket's
       order) or changed (blind terms), and those it dropped: every kind's */
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        uint64_t fixed = 0;
        if (records_reindex(store, e, &fixed, errbuf) != CRM_OK)
            goto storage;
        entries += fixed;
    }
    /* 6. no table file keeps a value or an index term in clear */
    if (store_sealed(store) && store_compact_all(store, errbuf) != CRM_OK)
        goto storage;
    if (store_set_format(store, STORE_FORMAT, errbuf) != CRM_OK)
        goto storage;
    if (seal_only)
        printf("sealed '%s' (format %d, made in clear): %" PRIu64 " values encrypted, %" PRIu64
               " index entries written or removed\n",
               dir, STORE_FORMAT, sealed, entries);
    else
        printf("upgraded '%s' from format %u to %d: %" PRIu64 " change-log entries rewritten, "
               "%" PRIu64 " customers given their derived value, %" PRIu64
               " values encrypted, %" PRIu64 " index entries written or removed\n",
               dir, shown, STORE_FORMAT, rewritten, customers, sealed, entries);
    /* only an upgrade that sealed values leaves copies in clear behind it (one that
       began before format 6, or on a store in clear given a key: FROM says so on a
       rerun too); one of a store sealed since it was made has none to speak of */
    if (store_sealed(store) && from <= SEAL_PENDING_FORMAT)
        s_note_clear_copies(dir);
    rc = 0;
    goto cleanup;
storage:
    fprintf(stderr, "crm-admin upgrade: storage failure%s%s; the upgrade of the data dir "
                    "(from format %u) did not finish: crmd refuses it until the upgrade is "
                    "run again, and the upgrade can be run again\n",
            *errbuf ? ": " : "", errbuf, from);
cleanup:
    store_group_destroy(&g);
    bool reopen = rc == 0 && store_sealed(store);
    store_destroy(&store);
    /* RocksDB writes a new MANIFEST at each open, with the key ranges of the
       table files there are now: the old one named keys of the files the
       compaction removed, index terms in clear among them */
    if (reopen && store_open(dir, 0, &store, errbuf) == CRM_OK)
        store_destroy(&store);
    return rc;
}

int
adm_upgrade(int argc, char **argv)
{
    static const char usage[] =
        "usage: crm-admin upgrade --data DIR   (with the server stopped; back DIR up first)\n"
        "\nRewrites a data dir made by an older OneView to this version's format, and\n"
        "encrypts its values with DIR/master.key (a data dir upgraded while it had no\n"
        "master.key is encrypted by running this again once it has one).\n";
    if (argc == 3 && !strcmp(argv[1], "--data"))
        return s_upgrade(argv[2]);
    bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
}

/* ==== sweep ==== */

int
adm_sweep(int argc, char **argv)
{
    static const char usage[] =
        "usage: crm-admin sweep [--as-of DATE] [--data DIR | --config ENROLL] [--server EP]\n"
        "\nApplies the time-based rules (customers at risk or churned, tickets past their\n"
        "service levels) now, through the running server: each record that changes is one\n"
        "event in the feed and the audit trail. The server also sweeps by itself once a day.\n"
        "With --as-of DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ) it is a preview: what the\n"
        "rules would change then, naming the first records; nothing is written.\n";
    static const struct option longopts[] = {{"as-of", required_argument, NULL, 'a'},
                                             {"data", required_argument, NULL, 'd'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"server", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *as_of = NULL, *data = NULL, *config = NULL, *server = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            as_of = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 's':
            server = optarg;
            break;
        default:
            fputs(usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    int64_t when = 0;
    if (as_of) {
        Crm__Customer tmp = CRM__CUSTOMER__INIT;
        char errbuf[CRM_ERRBUF];
        if (crm_record_set_text(&tmp.base, crm_record_field(&crm__customer__descriptor,
                                                            "first_order_at"),
                                as_of, true, errbuf) != CRM_OK) {
            fprintf(stderr, "crm-admin sweep: --as-of takes YYYY-MM-DD[THH:MM:SSZ], not '%s'\n",
                    as_of);
            return 2;
        }
        when = tmp.first_order_at;
        if (when <= 0) { /* 0 asks for no preview: a real sweep would write */
            fprintf(stderr, "crm-admin sweep: --as-of takes a date after 1970, not '%s'\n",
                    as_of);
            return 2;
        }
    }
    static char admin_path[PATH_MAX];
    if (!config && data) {
        snprintf(admin_path, sizeof admin_path, "%s/admin.enroll", data);
        config = admin_path;
    }
    const char *env = getenv("CRM_SERVER");
    cli_ctx_t ctx = {.config = config,
                     .server = server ? server : (env && *env ? env : NULL),
                     .timeout_ms = 3000};
    conn_t *conn = NULL;
    int rc = conn_open(&ctx, &conn);
    if (rc == EXIT_OK) { /* a server that is not there is told in 3 s, not 30 */
        Crm__Request ping = CRM__REQUEST__INIT;
        Crm__Reply *pong = NULL;
        ping.op = CRM__OP__OP_PING;
        rc = conn_call(conn, &ping, &pong);
        conn_reply_free(&pong);
        conn_set_timeout(conn, 30000); /* a slice may wait behind a busy commit */
    }
    uint64_t checked = 0, changed = 0;
    char after[24] = "";
    char *named[SWEEP_NAMED];
    size_t nnamed = 0;
    while (rc == EXIT_OK) {
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__SweepRequest sw = CRM__SWEEP_REQUEST__INIT;
        Crm__Reply *reply = NULL;
        sw.as_of = when;
        sw.after = after;
        req.op = CRM__OP__OP_SWEEP;
        req.body_case = CRM__REQUEST__BODY_SWEEP;
        req.sweep = &sw;
        if ((rc = conn_call(conn, &req, &reply)) != EXIT_OK)
            break;
        bool done = true;
        if (reply->body_case == CRM__REPLY__BODY_SWEEP) {
            checked += reply->sweep->checked;
            changed += reply->sweep->changed;
            for (size_t i = 0; i < reply->sweep->n_would_change && nnamed < SWEEP_NAMED; i++)
                named[nnamed++] = out_escape(reply->sweep->would_change[i]);
            snprintf(after, sizeof after, "%s", reply->sweep->next_after);
            done = !*after;
        }
        conn_reply_free(&reply);
        if (done)
            break;
    }
    if (rc == EXIT_OK) {
        char t[32];
        crm_record_format_time(when ? when : crm_time_now_ms(), t);
        if (when) { /* a preview: the server wrote nothing */
            printf("preview as of %s, nothing written: %" PRIu64 " customers and tickets checked, "
                   "%" PRIu64 " would change%s\n",
                   t, checked, changed, nnamed ? ":" : "");
            for (size_t i = 0; i < nnamed; i++)
                printf("  %s\n", named[i]);
            if (changed > nnamed)
                printf("  ... and %" PRIu64 " more\n", changed - nnamed);
        } else {
            printf("swept %" PRIu64 " customers and tickets as of %s: %" PRIu64 " changed\n",
                   checked, t, changed);
        }
    }
    for (size_t i = 0; i < nnamed; i++)
        free(named[i]);
    conn_destroy(&conn);
    return rc;
}

/* ==== rules ==== */

int
adm_rules(int argc, char **argv)
{
    static const char usage[] = "usage: crm-admin rules [--data DIR | --rules FILE]\n"
                                "\nPrints the customer value and deal rules in force.\n";
    value_rules_t rules;
    char errbuf[CRM_ERRBUF], path[PATH_MAX];
    value_rules_defaults(&rules);
    crm_err_t rc = CRM_OK;
    if (argc == 3 && !strcmp(argv[1], "--data")) {
        snprintf(path, sizeof path, "%s/value-rules.conf", argv[2]);
        rc = value_rules_load(&rules, path, false, errbuf);
    } else if (argc == 3 && !strcmp(argv[1], "--rules")) {
        rc = value_rules_load(&rules, argv[2], true, errbuf);
    } else if (argc != 1) {
        bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (rc != CRM_OK) {
        fprintf(stderr, "crm-admin rules: %s\n", errbuf);
        return 1;
    }
    char *text = value_rules_describe(&rules);
    fputs(text, stdout);
    free(text);
    return 0;
}
