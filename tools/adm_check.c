/*  =========================================================================
    adm_check - `crm-admin check --data DIR`: is a stopped data dir consistent?

    Checks that every record's index entries exist and every index entry
    belongs to its record, that the change log holds every sequence number
    from the oldest retained one to the newest, without a gap, that every
    customer's derived value is what its records give, and that every link
    (a ticket's order) names an existing record of the same customer. Exit 0
    when all is well, 1 with the problems listed otherwise.
    =========================================================================
*/
#define _GNU_SOURCE /* memmem */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adm.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "crm_utf8.h"
#include "derive.h"
#include "records.h"
#include "seal.h"
#include "store.h"

#define PAGE 1000
#define GREP_TERMS 64 /* blind terms of one text: one per index of personal data (records.c) */

static void s_report(const char *what, void *arg);

/* Every customer's derived fields against its orders and activities. */
static size_t
s_check_derived(store_t *store, const char *dir, size_t *shown)
{
    value_rules_t rules;
    char errbuf[CRM_ERRBUF] = "", path[PATH_MAX];
    value_rules_defaults(&rules);
    snprintf(path, sizeof path, "%s/value-rules.conf", dir);
    if (value_rules_load(&rules, path, false, errbuf) != CRM_OK) {
        s_report(errbuf, shown);
        return 1;
    }
    Crm__User actor = CRM__USER__INIT;
    actor.name = (char *)"crm-admin";
    derive_ctx_t dc = {.store = store, .rules = &rules, .actor = &actor, .now = crm_time_now_ms()};
    const crm_entity_t *ce = crm_entity_by_name("customer");
    uint64_t ids[PAGE], after = 0, checked = 0;
    size_t n, problems = 0;
    bool more = true;
    while (more) {
        if (records_query(store, ce, NULL, 0, after, PAGE, ids, &n, &more, NULL, NULL) != CRM_OK) {
            s_report("customers: cannot list them", shown);
            return problems + 1;
        }
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessage *cur = NULL, *want = NULL;
            if (records_get(store, ce, ids[i], &cur) != CRM_OK ||
                records_get(store, ce, ids[i], &want) != CRM_OK ||
                derive_customer(&dc, (Crm__Customer *)want, errbuf) != CRM_OK) {
                s_report("customers: cannot read one or its orders", shown);
                problems++;
            } else {
                char *diff[64];
                size_t nd = crm_record_diff(ce, cur, want, diff, 64);
                for (size_t j = 0; j < nd; j++) {
                    if (!derive_checked_field(diff[j]))
                        continue;
                    const ProtobufCFieldDescriptor *fd = crm_record_field(ce->desc, diff[j]);
                    char *have = crm_record_format(cur, fd, false, false);
                    char *should = crm_record_format(want, fd, false, false);
                    char what[CRM_ERRBUF];
                    snprintf(what, sizeof what, "customer %s: %s is '%.60s', its orders and "
                             "activities give '%.60s'",
                             crm_record_get_str(cur, "id"), diff[j], have, should);
                    s_report(what, shown);
                    free(have);
                    free(should);
                    problems++;
                }
                const Crm__Customer *c = (const Crm__Customer *)cur;
                bool derived_stage = c->stage == CRM__STAGE__ACTIVE ||
                                     c->stage == CRM__STAGE__AT_RISK ||
                                     c->stage == CRM__STAGE__CHURNED;
                if (c->order_count > 0 && !derived_stage) {
                    char what[128];
                    snprintf(what, sizeof what, "customer %s has orders but is not active, "
                             "at-risk or churned", c->id);
                    s_report(what, shown);
                    problems++;
                }
                checked++;
            }
            crm_proto_free(&cur);
            crm_proto_free(&want);
        }
        if (n)
            after = ids[n - 1];
    }
    printf("derived values: %" PRIu64 " customers checked against their orders and activities\n",
           checked);
    return problems;
}

/* Every link names an existing record of its own record's customer (crm_entity_links).
   One naming a record that does not exist is a warning, not a problem: formats before 5
   let an order or a ticket be deleted while named, so such data (and its backups, which
   `backup verify` checks) is as it was made; the record holding the link is what to
   change. A link to another customer's record, or one that cannot be read, is a problem. */
typedef struct {
    store_t *store;
    const crm_entity_t *kind, *target;
    const crm_link_t *link;
    const char *pfield;
    size_t problems, dangling, shown_warnings, *shown;
} s_links_t;

static bool
s_link_one(uint64_t num, ProtobufCMessage *rec, void *arg)
{
    s_links_t *c = arg;
    const char *to = crm_record_get_str(rec, c->link->field);
    if (!*to)
        return true;
    uint64_t tnum = crm_entity_parse_id(c->target, to);
    ProtobufCMessage *t = NULL;
    crm_err_t rc = tnum ? records_get(c->store, c->target, tnum, &t) : CRM_ERR_NOT_FOUND;
    char id[24], what[256];
    crm_entity_format_id(c->kind, num, id);
    *what = '\0';
    if (rc == CRM_ERR_NOT_FOUND) { /* a warning: formats before 5 allowed it */
        snprintf(what, sizeof what, "%s %s: %s names %s '%.24s', which does not exist",
                 c->kind->name, id, c->link->field, c->target->name, to);
        if (c->shown_warnings++ < 50)
            printf("  warning: %s\n", what);
        c->dangling++;
    } else if (rc != CRM_OK) { /* problems: no version allowed these */
        snprintf(what, sizeof what, "%s %s: cannot read %s '%.24s'", c->kind->name, id,
                 c->target->name, to);
    } else if (strcmp(crm_record_get_str(t, c->pfield), crm_record_get_str(rec, c->pfield))) {
        snprintf(what, sizeof what, "%s %s: %s names %s '%.24s' of another customer",
                 c->kind->name, id, c->link->field, c->target->name, to);
    }
    if (*what && rc != CRM_ERR_NOT_FOUND) {
        s_report(what, c->shown);
        c->problems++;
    }
    crm_proto_free(&t);
    return true;
}

static size_t
s_check_links(store_t *store, size_t *shown, size_t *warnings)
{
    size_t problems = 0;
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++) {
        const crm_entity_t *k = crm_entity_by_name(l->kind);
        s_links_t c = {store, k, crm_entity_by_name(l->target), l,
                       crm_entity_field_with(k, CRM_F_PARENT), 0, 0, 0, shown};
        uint64_t read = 0;
        if (records_each(store, k, s_link_one, &c, &read) != CRM_OK) {
            s_report("links: cannot read the records", shown);
            problems++;
        }
        printf("links %s.%s -> %s: %" PRIu64 " records read, %zu dangling, %zu problem%s\n",
               l->kind, l->field, l->target, read, c.dangling, c.problems,
               c.problems == 1 ? "" : "s");
        problems += c.problems;
        *warnings += c.dangling;
    }
    return problems;
}

/* Times that should have happened (CRM_F_PAST: an order's, an activity's) but lie more
   than a day ahead of now or before 1970 - stored by a server whose clock ran fast, or
   before the server refused them. Warnings, like dangling links: the records are as they
   were made, and editing one is not refused for them. */
typedef struct {
    const crm_entity_t *kind;
    int64_t now;
    size_t found, shown;
} s_past_t;

static bool
s_past_one(uint64_t num, ProtobufCMessage *rec, void *arg)
{
    s_past_t *c = arg;
    char errbuf[CRM_ERRBUF];
    if (crm_record_check_past(c->kind, NULL, rec, c->now, errbuf) != CRM_OK) {
        char id[24];
        crm_entity_format_id(c->kind, num, id);
        if (c->shown++ < 50)
            printf("  warning: %s %s: %s\n", c->kind->name, id, errbuf);
        c->found++;
    }
    return true;
}

static size_t
s_check_past(store_t *store, size_t *shown, size_t *warnings)
{
    size_t problems = 0;
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        if (!crm_entity_field_with(e, CRM_F_PAST))
            continue;
        s_past_t c = {e, crm_time_now_ms(), 0, 0};
        uint64_t read = 0;
        if (records_each(store, e, s_past_one, &c, &read) != CRM_OK) {
            s_report("times: cannot read the records", shown);
            problems++;
        }
        printf("times of %s records: %" PRIu64 " read, %zu ahead of now or before 1970\n",
               e->name, read, c.found);
        *warnings += c.found;
    }
    return problems;
}

static const char s_usage[] = "usage: crm-admin check --data DIR   (with the server stopped)\n";

static void
s_report(const char *what, void *arg)
{
    size_t *shown = arg;
    if ((*shown)++ < 50)
        printf("  problem: %s\n", what);
}


int
adm_check(int argc, char **argv)
{
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else {
            fputs(s_usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (!dir || optind != argc) {
        fputs(s_usage, stderr);
        return 2;
    }
    char errbuf[CRM_ERRBUF];
    store_t *store = NULL;
    if (store_open(dir, 0, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin check: %s\n", errbuf);
        return 1;
    }
    size_t problems = 0, shown = 0;
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        uint64_t records, entries;
        problems += records_check(store, e, &records, &entries, s_report, &shown);
        printf("%s: %" PRIu64 " records, %" PRIu64 " index entries\n", e->name, records,
               entries);
    }
    uint64_t first = store_changelog_first(store), last = store_last_seq(store), gaps = 0;
    for (uint64_t seq = first; seq <= last; seq++) {
        store_val_t v = {0};
        if (store_changelog_get(store, seq, &v) != CRM_OK && gaps++ < 10) {
            char what[64];
            snprintf(what, sizeof what, "change log: entry %" PRIu64 " missing", seq);
            s_report(what, &shown);
        }
        store_val_release(&v);
    }
    store_val_t after = {0};
    if (store_changelog_get(store, last + 1, &after) == CRM_OK) {
        s_report("change log: an entry beyond the last sequence number", &shown);
        gaps++;
    }
    store_val_release(&after);
    problems += gaps;
    problems += s_check_derived(store, dir, &shown);
    size_t warnings = 0;
    problems += s_check_links(store, &shown, &warnings);
    problems += s_check_past(store, &shown, &warnings);
    /* a scan stopped by a damaged file looks like the end of what it read: what
       came after was never checked, so the check cannot call the data dir sound */
    char why[CRM_ERRBUF];
    uint64_t damaged = store_read_errors(store, why);
    if (damaged) {
        char what[CRM_ERRBUF + 96];
        snprintf(what, sizeof what,
                 "%" PRIu64 " read%s stopped on a damaged file, so what came after was not "
                 "checked: %s",
                 damaged, damaged == 1 ? "" : "s", why);
        printf("  problem: %s\n", what); /* however many were shown before */
        problems++;
    }
    printf("change log: %" PRIu64 " to %" PRIu64 ", %" PRIu64 " missing\n", first, last, gaps);
    printf("%s: %zu problem%s", problems ? "NOT CONSISTENT" : "consistent", problems,
           problems == 1 ? "" : "s");
    if (warnings)
        printf(", %zu warning%s (links that dangle, times ahead: change or delete the records "
               "holding them)",
               warnings, warnings == 1 ? "" : "s");
    putchar('\n');
    store_destroy(&store);
    return problems ? 1 : 0;
}

/* ==== crm-admin grep: which column families still hold a text ==== */

static const char s_grep_usage[] =
    "usage: crm-admin grep --data DIR TEXT...\n"
    "  Count, per column family, the keys and values of a stopped data dir that\n"
    "  hold TEXT (bytes, as given), read through the store, so an encrypted\n"
    "  store is searched as decrypted: to see that an erasure left nothing, or\n"
    "  where a value lives. In an encrypted store an index entry holds a personal\n"
    "  value as its blind term: TEXT is found there when it is the whole value\n"
    "  indexed, in any case (a phone's digits, an e-mail), not a part of a name.\n"
    "  One line per TEXT and column family that holds it.\n"
    "  Exit 0 when some TEXT was found, 1 when none was, 2 on an error.\n";

int
adm_grep(int argc, char **argv)
{
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    static const char *const cf_names[] = {
#define X(name, str) str,
        STORE_CF_LIST(X)
#undef X
    };
    const char *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else {
            fputs(s_grep_usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (!dir || optind >= argc) {
        fputs(s_grep_usage, stderr);
        return 2;
    }
    for (int i = optind; i < argc; i++)
        if (!argv[i][0]) {
            fprintf(stderr, "crm-admin grep: an empty TEXT matches everything\n");
            return 2;
        }
    char errbuf[CRM_ERRBUF];
    store_t *store = NULL;
    if (store_open(dir, 0, &store, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin grep: %s\n", errbuf);
        return 2;
    }
    size_t ntext = (size_t)(argc - optind);
    uint64_t *hits = calloc(ntext, sizeof *hits);
    /* per TEXT: its blind terms in every index of personal data, as given and as
       indexes fold it */
    uint8_t(*blind)[2 * GREP_TERMS][SEAL_BLIND_BYTES] = calloc(ntext, sizeof *blind);
    size_t *nblind = calloc(ntext, sizeof *nblind);
    bool sealed = store_sealed(store);
    for (size_t t = 0; sealed && blind && nblind && t < ntext; t++) {
        const char *text = argv[optind + (int)t];
        char *folded = crm_utf8_fold(text);
        nblind[t] = records_blind_terms(text, strlen(text), blind[t], GREP_TERMS);
        nblind[t] += records_blind_terms(folded, strlen(folded), blind[t] + nblind[t],
                                         GREP_TERMS);
        free(folded);
    }
    uint64_t errors_before = store_read_errors(store, NULL);
    bool found = false;
    for (int cf = 0; cf < STORE_CF__COUNT && hits && blind && nblind; cf++) {
        memset(hits, 0, ntext * sizeof *hits);
        store_iter_t *it = store_iter_new(store, (store_cf_t)cf);
        for (store_iter_seek(it, "", 0); store_iter_valid(it); store_iter_next(it)) {
            size_t klen, vlen;
            const char *k = store_iter_key(it, &klen), *v = store_iter_value(it, &vlen);
            for (size_t t = 0; t < ntext; t++) {
                const char *text = argv[optind + (int)t];
                size_t n = strlen(text);
                bool hit = (klen && memmem(k, klen, text, n)) ||
                           (vlen && v && memmem(v, vlen, text, n));
                for (size_t b = 0; !hit && sealed && klen && b < nblind[t]; b++)
                    hit = memmem(k, klen, blind[t][b], SEAL_BLIND_BYTES) != NULL;
                if (hit)
                    hits[t]++;
            }
        }
        store_iter_destroy(&it);
        for (size_t t = 0; t < ntext; t++)
            if (hits[t]) {
                printf("%s\t%s\t%" PRIu64 "\n", argv[optind + (int)t], cf_names[cf], hits[t]);
                found = true;
            }
    }
    bool failed = !hits || !blind || !nblind || store_read_errors(store, NULL) != errors_before;
    if (failed)
        fprintf(stderr, "crm-admin grep: %s\n",
                hits && blind && nblind ? "the store could not be read whole (see the log above)"
                                        : "out of memory");
    free(hits);
    free(blind);
    free(nblind);
    store_destroy(&store);
    return failed ? 2 : found ? 0 : 1;
}
