/*  =========================================================================
    crm-import-floor - what a bulk import path could cost at best

    The lower bound of an import that skips the write path's memtables: N
    customers shaped like the lines `crm import` reads ("Customer I", a
    mobile number, an e-mail, "Company I/5") are built and normalized, their
    keys derived by the server's own code (records_keys_each: every index
    entry, with blind terms when sealed, and the record), the records packed
    and sealed, the keys sorted and written to table files with RocksDB's
    SstFileWriter, ingested into a fresh database and compacted. Each phase
    is timed on its own, on one thread (RocksDB's compaction uses its own).

    Not counted, and each a cost the real import has: reading and sending the
    CSV, the duplicate check's reads, the audit entries and the change-log
    entry, and the compactions that ingested files overlapping older data
    would take later. So a bulk path is at least this slow; see
    docs/PERFORMANCE.md, "An import floor".

      crm-import-floor [--customers N] [--chunk C] [--dir SCRATCH] [--clear]

    C customers (default 100,000) a chunk: keys derived, sorted and written
    to table files a chunk at a time; all of them ingested at the end, then
    the indexes compacted (the merge of the chunks' sorted runs).

    SCRATCH (default /tmp) gets a directory of its own, removed at the end.
    =========================================================================
*/
#include <errno.h>
#include <inttypes.h>
#include <rocksdb/c.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "records.h"
#include "seal.h"

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
s_die(const char *what, const char *err)
{
    fprintf(stderr, "crm-import-floor: %s%s%s\n", what, err ? ": " : "", err ? err : "");
    exit(1);
}

/* One column family's keys (and values) in one arena: each entry is its key's
   length (2 bytes), the key, its value's length (4 bytes) and the value. */
typedef struct {
    uint8_t *arena;
    size_t used, cap;
    size_t *at; /* entry offsets */
    size_t n, ncap;
} s_kv_t;

static void
s_kv_add(s_kv_t *kv, const void *key, size_t klen, const void *val, size_t vlen)
{
    size_t need = 2 + klen + 4 + vlen;
    if (kv->used + need > kv->cap) {
        kv->cap = (kv->cap ? kv->cap * 2 : (64u << 20)) + need;
        kv->arena = realloc(kv->arena, kv->cap);
    }
    if (kv->n == kv->ncap) {
        kv->ncap = kv->ncap ? kv->ncap * 2 : (1u << 20);
        kv->at = realloc(kv->at, kv->ncap * sizeof *kv->at);
    }
    if (!kv->arena || !kv->at)
        s_die("out of memory", NULL);
    uint8_t *p = kv->arena + kv->used;
    kv->at[kv->n++] = kv->used;
    uint16_t kl = (uint16_t)klen;
    uint32_t vl = (uint32_t)vlen;
    memcpy(p, &kl, 2);
    memcpy(p + 2, key, klen);
    memcpy(p + 2 + klen, &vl, 4);
    if (vlen)
        memcpy(p + 6 + klen, val, vlen);
    kv->used += need;
}

static const uint8_t *s_sort_arena;

static int
s_key_cmp(const void *a, const void *b)
{
    const uint8_t *x = s_sort_arena + *(const size_t *)a, *y = s_sort_arena + *(const size_t *)b;
    uint16_t xl, yl;
    memcpy(&xl, x, 2);
    memcpy(&yl, y, 2);
    int c = memcmp(x + 2, y + 2, xl < yl ? xl : yl);
    return c ? c : (xl > yl) - (xl < yl);
}

static void
s_key_at(const s_kv_t *kv, size_t i, const char **k, size_t *kl, const char **v, size_t *vl)
{
    const uint8_t *p = kv->arena + kv->at[i];
    uint16_t klen;
    uint32_t vlen;
    memcpy(&klen, p, 2);
    memcpy(&vlen, p + 2 + klen, 4);
    *k = (const char *)p + 2;
    *kl = klen;
    *v = (const char *)p + 6 + klen;
    *vl = vlen;
}

typedef struct {
    s_kv_t *idx;
    char rec_key[16];
    size_t rec_klen;
} s_collect_t;

static void
s_collect(store_cf_t cf, const char *key, size_t len, void *arg)
{
    s_collect_t *c = arg;
    if (cf == STORE_CF_INDEXES) {
        s_kv_add(c->idx, key, len, "", 0);
    } else {
        if (len > sizeof c->rec_key)
            s_die("a record key too long", NULL);
        memcpy(c->rec_key, key, len);
        c->rec_klen = len;
    }
}

static void
s_write_sst(const s_kv_t *kv, const char *path, rocksdb_options_t *opts)
{
    char *err = NULL;
    rocksdb_envoptions_t *env = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *w = rocksdb_sstfilewriter_create(env, opts);
    rocksdb_sstfilewriter_open(w, path, &err);
    if (err)
        s_die("SstFileWriter open", err);
    for (size_t i = 0; i < kv->n; i++) {
        const char *k, *v;
        size_t kl, vl;
        s_key_at(kv, i, &k, &kl, &v, &vl);
        rocksdb_sstfilewriter_put(w, k, kl, v, vl, &err);
        if (err)
            s_die("SstFileWriter put", err);
    }
    rocksdb_sstfilewriter_finish(w, &err);
    if (err)
        s_die("SstFileWriter finish", err);
    rocksdb_sstfilewriter_destroy(w);
    rocksdb_envoptions_destroy(env);
}

int
main(int argc, char **argv)
{
    long n = 1000000, chunk = 100000;
    const char *scratch = "/tmp";
    bool clear = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--customers") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            scratch = argv[++i];
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = atol(argv[++i]);
        else if (!strcmp(argv[i], "--clear"))
            clear = true;
        else {
            fprintf(stderr, "usage: crm-import-floor [--customers N] [--chunk C] [--dir SCRATCH] "
                            "[--clear]\n");
            return 2;
        }
    }
    if (n < 1 || n > 50000000 || chunk < 1 || sodium_init() < 0)
        s_die("bad --customers or --chunk, or no libsodium", NULL);
    char errbuf[CRM_ERRBUF];
    if (!clear) {
        uint8_t master[32];
        randombytes_buf(master, sizeof master);
        if (seal_use_key(master, errbuf) != CRM_OK)
            s_die("seal_use_key", errbuf);
    }
    const crm_entity_t *e = crm_entity_by_name("customer");
    const ProtobufCMessageDescriptor *d = e->desc;
    const ProtobufCFieldDescriptor *f_name = crm_record_field(d, "name"),
                                   *f_phone = crm_record_field(d, "phones"),
                                   *f_email = crm_record_field(d, "emails"),
                                   *f_company = crm_record_field(d, "company");
    if (!f_name || !f_phone || !f_email || !f_company)
        s_die("the customer kind lacks a field this tool fills", NULL);

    char dir[512];
    snprintf(dir, sizeof dir, "%s/import-floor-XXXXXX", scratch);
    if (!mkdtemp(dir))
        s_die("mkdtemp", strerror(errno));
    /* the store's table options that matter for writing: bloom filters of 10 bits a key,
       RocksDB's default compression */
    rocksdb_options_t *opts = rocksdb_options_create();
    rocksdb_options_increase_parallelism(opts, 2);
    rocksdb_block_based_table_options_t *topts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(topts, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(opts, topts);

    /* chunk by chunk: keys derived, sorted and written as one table file per column family
       (a bulk path holds a chunk, not the whole CSV, in memory) */
    s_kv_t idx = {0}, recs = {0};
    size_t nfiles = 0, keys_total = 0;
    long nchunks = (n + chunk - 1) / chunk;
    char **files_rec = calloc((size_t)nchunks, sizeof *files_rec),
         **files_idx = calloc((size_t)nchunks, sizeof *files_idx);
    double t_build = 0, t_keys = 0, t_seal = 0, t_sort = 0, t_write = 0, t0, t1;
    uint8_t *sealed = malloc(1u << 16);
    if (!sealed || !files_rec || !files_idx)
        s_die("out of memory", NULL);
    for (long from = 1; from <= n; from += chunk) {
        long to = from + chunk - 1 < n ? from + chunk - 1 : n;
        idx.used = idx.n = recs.used = recs.n = 0;
        for (long i = from; i <= to; i++) {
            t0 = s_now();
            ProtobufCMessage *m = crm_proto_new(d);
            char text[96];
            snprintf(text, sizeof text, "Customer %ld", i);
            crm_record_set_text(m, f_name, text, false, errbuf);
            snprintf(text, sizeof text, "139%08ld", i % 100000000);
            crm_record_set_text(m, f_phone, text, false, errbuf);
            snprintf(text, sizeof text, "u%ld@example.com", i);
            crm_record_set_text(m, f_email, text, false, errbuf);
            snprintf(text, sizeof text, "Company %ld", i / 5);
            crm_record_set_text(m, f_company, text, false, errbuf);
            char id[24];
            crm_entity_format_id(e, (uint64_t)i, id);
            crm_record_set_str(m, "id", id);
            crm_record_set_u64(m, "version", 1);
            crm_record_set_i64(m, "created_at", 1764547200000 + i);
            crm_record_set_i64(m, "updated_at", 1764547200000 + i);
            crm_record_set_str(m, "created_by", "importer");
            crm_record_set_str(m, "updated_by", "importer");
            if (crm_record_normalize(e, m, errbuf) != CRM_OK)
                s_die("a generated customer is invalid", errbuf);
            t1 = s_now();
            t_build += t1 - t0;
            s_collect_t c = {.idx = &idx};
            records_keys_each(e, (uint64_t)i, m, s_collect, &c);
            t0 = s_now();
            t_keys += t0 - t1;
            size_t plen;
            uint8_t *packed = crm_proto_pack(m, &plen);
            if (plen + SEAL_OVERHEAD > (1u << 16))
                s_die("a record too large", NULL);
            if (clear) {
                s_kv_add(&recs, c.rec_key, c.rec_klen, packed, plen);
            } else {
                size_t sl = seal_value(STORE_CF_RECORDS, c.rec_key, c.rec_klen, packed, plen, sealed);
                s_kv_add(&recs, c.rec_key, c.rec_klen, sealed, sl);
            }
            free(packed);
            crm_proto_free(&m);
            t_seal += s_now() - t0;
        }
        t0 = s_now();
        s_sort_arena = idx.arena;
        qsort(idx.at, idx.n, sizeof *idx.at, s_key_cmp); /* records are in number order */
        t1 = s_now();
        t_sort += t1 - t0;
        char path[600];
        snprintf(path, sizeof path, "%s/records-%zu.sst", dir, nfiles);
        files_rec[nfiles] = strdup(path);
        s_write_sst(&recs, path, opts);
        snprintf(path, sizeof path, "%s/indexes-%zu.sst", dir, nfiles);
        files_idx[nfiles] = strdup(path);
        s_write_sst(&idx, path, opts);
        t_write += s_now() - t1;
        keys_total += idx.n + recs.n;
        nfiles++;
    }
    free(sealed);

    char dbdir[600];
    snprintf(dbdir, sizeof dbdir, "%s/db", dir);
    rocksdb_options_set_create_if_missing(opts, 1);
    rocksdb_options_set_create_missing_column_families(opts, 1);
    const char *names[3] = {"default", "records", "indexes"};
    const rocksdb_options_t *cfo[3] = {opts, opts, opts};
    rocksdb_column_family_handle_t *cfh[3];
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_column_families(opts, dbdir, 3, names, cfo, cfh, &err);
    if (err)
        s_die("open", err);
    /* the chunks' index files overlap (every chunk has every gram's terms): RocksDB puts
       them in level 0, and the compaction after is the merge of the sorted chunks */
    rocksdb_ingestexternalfileoptions_t *io = rocksdb_ingestexternalfileoptions_create();
    rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
    t0 = s_now();
    rocksdb_ingest_external_file_cf(db, cfh[1], (const char *const *)files_rec, nfiles, io, &err);
    if (!err)
        rocksdb_ingest_external_file_cf(db, cfh[2], (const char *const *)files_idx, nfiles, io,
                                        &err);
    if (err)
        s_die("ingest", err);
    t1 = s_now();
    double t_ingest = t1 - t0;
    rocksdb_compact_range_cf(db, cfh[2], NULL, 0, NULL, 0);
    double t_compact = s_now() - t1;

    /* read back: every record and index entry is there */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    size_t seen = 0;
    for (int c = 1; c < 3; c++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, cfh[c]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
            seen++;
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    for (int c = 0; c < 3; c++)
        rocksdb_column_family_handle_destroy(cfh[c]);
    rocksdb_close(db);
    rocksdb_destroy_db(opts, dbdir, &err);
    free(err);
    for (size_t i = 0; i < nfiles; i++) {
        unlink(files_rec[i]); /* moved in, normally */
        unlink(files_idx[i]);
        free(files_rec[i]);
        free(files_idx[i]);
    }
    free(files_rec);
    free(files_idx);
    rmdir(dir);
    rocksdb_ingestexternalfileoptions_destroy(io);
    rocksdb_options_destroy(opts);
    rocksdb_block_based_options_destroy(topts);
    if (seen != keys_total) {
        fprintf(stderr, "crm-import-floor: read back %zu keys, wrote %zu\n", seen, keys_total);
        return 1;
    }
    double total = t_build + t_keys + t_seal + t_sort + t_write + t_ingest + t_compact;
    printf("customers %ld, %s, keys %zu (%.1f a customer), chunks of %ld, one thread\n", n,
           clear ? "in clear" : "sealed, blind index terms", keys_total,
           (double)keys_total / (double)n, chunk);
    printf("build+normalize %.2f s | keys %.2f s | pack+seal %.2f s | sort %.2f s | "
           "table files %.2f s | ingest %.2f s | compaction %.2f s\n",
           t_build, t_keys, t_seal, t_sort, t_write, t_ingest, t_compact);
    printf("RESULT total_s=%.2f us_per_customer=%.1f\n", total, total * 1e6 / (double)n);
    free(idx.arena);
    free(idx.at);
    free(recs.arena);
    free(recs.at);
    return 0;
}
