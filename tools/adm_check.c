/*  =========================================================================
    adm_check - `crm-admin check --data DIR`: is a stopped data dir consistent?

    Checks that every record's index entries exist and every index entry
    belongs to its record, and that the change log holds every sequence
    number from the oldest retained one to the newest, without a gap. Exit 0
    when all is well, 1 with the problems listed otherwise.
    =========================================================================
*/
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "adm.h"
#include "crm_entity.h"
#include "records.h"
#include "store.h"

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
    printf("change log: %" PRIu64 " to %" PRIu64 ", %" PRIu64 " missing\n", first, last, gaps);
    printf("%s: %zu problem%s\n", problems ? "NOT CONSISTENT" : "consistent", problems,
           problems == 1 ? "" : "s");
    store_destroy(&store);
    return problems ? 1 : 0;
}
