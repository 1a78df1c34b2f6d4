/*  =========================================================================
    records - generic persistence for every record kind (see records.h)
    =========================================================================
*/
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"
#include "seal.h"

#define KEY_MAX 600 /* prefix + tag + value (max_len bounded) + 0 + 16 */

/* ==== Keys ==== */

typedef struct {
    char **keys;
    size_t *lens;
    size_t n, cap;
} s_keys_t;

static void
s_keys_add(s_keys_t *k, const char *key, size_t len)
{
    for (size_t i = 0; i < k->n; i++) /* grams repeat: keep each key once */
        if (k->lens[i] == len && !memcmp(k->keys[i], key, len))
            return;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 32;
        k->keys = realloc(k->keys, k->cap * sizeof *k->keys);
        k->lens = realloc(k->lens, k->cap * sizeof *k->lens);
        CRM_ASSERT(k->keys && k->lens);
    }
    k->keys[k->n] = malloc(len);
    CRM_ASSERT_ALLOC(k->keys[k->n]);
    memcpy(k->keys[k->n], key, len);
    k->lens[k->n++] = len;
}

static void
s_keys_release(s_keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k->lens);
    memset(k, 0, sizeof *k);
}

static size_t
s_record_key(const crm_entity_t *e, uint64_t num, char out[9])
{
    out[0] = e->prefix;
    store_put_be64((uint8_t *)out + 1, num);
    return 9;
}

/* The index of E whose keys carry TAG, if its values are personal data and
   the store is sealed: such values are stored as blind terms (seal.h), never
   as text. NULL if TAG's values are stored as they are. */
static const crm_index_t *
s_blind_index(const crm_entity_t *e, char tag)
{
    if (!seal_ready())
        return NULL;
    for (const crm_index_t *i = e->indexes; i->field; i++)
        if (i->kind != CRM_IDX_PARENT &&
            (i->tag == tag || (i->kind == CRM_IDX_PHONE && i->tag + 1 == tag)))
            return crm_entity_flags_of(e, crm_entity_index_field(e, i)) & CRM_F_PERSONAL ? i : NULL;
    return NULL;
}

/* <prefix> <tag> <value> 0x00, the start of every key of one index value.
   A personal value is its blind term; a pair's (first 0x1f second) is the
   blind term of each part, so that the names at one company stay one range
   (an empty second part: the range's start, up to the 0x1f). */
static size_t
s_term_prefix(const crm_entity_t *e, char tag, const char *value, size_t vlen, char *out)
{
    if (vlen > KEY_MAX - 20)
        vlen = KEY_MAX - 20;
    out[0] = e->prefix;
    out[1] = tag;
    const crm_index_t *blind = s_blind_index(e, tag);
    /* a term's domain: this index of this kind, and the part of a pair */
    uint32_t domain = (uint32_t)(uint8_t)e->prefix << 16 | (uint32_t)(uint8_t)tag << 8;
    size_t n = 2;
    if (!blind) {
        memcpy(out + 2, value, vlen);
        n += vlen;
    } else if (blind->kind == CRM_IDX_PAIR) {
        const char *sep = memchr(value, 0x1f, vlen);
        size_t first = sep ? (size_t)(sep - value) : vlen;
        seal_blind(domain | 1, value, first, (uint8_t *)out + n);
        n += SEAL_BLIND_BYTES;
        out[n++] = 0x1f;
        if (sep && first + 1 < vlen) {
            seal_blind(domain | 2, sep + 1, vlen - first - 1, (uint8_t *)out + n);
            n += SEAL_BLIND_BYTES;
        }
    } else {
        seal_blind(domain, value, vlen, (uint8_t *)out + n);
        n += SEAL_BLIND_BYTES;
    }
    out[n] = '\0';
    return n + 1;
}

static void
s_add_posting(s_keys_t *keys, const crm_entity_t *e, char tag, const char *value, size_t vlen,
              uint64_t num)
{
    char key[KEY_MAX];
    size_t n = s_term_prefix(e, tag, value, vlen, key);
    store_put_be64((uint8_t *)key + n, num);
    s_keys_add(keys, key, n + 8);
}

/* What separates the words that grams are taken from (an ideographic space too,
   though folding makes it a space) */
static bool
s_gram_space(utf8proc_int32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x3000;
}

/* The folded words of TEXT split on white space; calls fn for every gram
   (each code point, and each pair of neighbouring code points in a word). */
static void
s_grams(const char *text, void (*fn)(const char *gram, size_t len, void *arg), void *arg)
{
    char *folded = crm_utf8_fold(text);
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)folded;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(folded), i = 0;
    utf8proc_ssize_t prev = -1; /* offset of the previous code point in this word */
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, len - i, &cp);
        if (n <= 0)
            break;
        if (s_gram_space(cp)) {
            prev = -1;
        } else {
            fn((const char *)s + i, (size_t)n, arg);
            if (prev >= 0)
                fn((const char *)s + prev, (size_t)(i + n - prev), arg);
            prev = i;
        }
        i += n;
    }
    free(folded);
}

typedef struct {
    s_keys_t *keys;
    const crm_entity_t *e;
    char tag;
    uint64_t num;
} s_gram_ctx_t;

/* A single ASCII character (a Latin letter, a digit) has no posting list of its
   own (format 8): it would be in most records' names and companies, and it was
   two fifths of the keys a customer wrote (PERFORMANCE.md, "Single Latin letters
   and digits not indexed"). A search for such characters alone checks records
   one by one (h_entity_search). A single character of any other script (a
   Chinese surname) keeps its list. */
static bool
s_gram_unlisted(const char *gram, size_t len)
{
    return len == 1 && (unsigned char)gram[0] < 0x80;
}

static void
s_gram_posting(const char *gram, size_t len, void *arg)
{
    s_gram_ctx_t *c = arg;
    if (!s_gram_unlisted(gram, len))
        s_add_posting(c->keys, c->e, c->tag, gram, len, c->num);
}

/* The text values of FD in REC for an exact index: strings folded, enums by
   name, booleans as "true" or "false" (both are looked up: consent=false too). */
static size_t
s_values(const ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd, char **out, size_t max)
{
    size_t n = 0;
    if (fd->type == PROTOBUF_C_TYPE_STRING && fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t count = crm_record_count(rec, fd);
        for (size_t i = 0; i < count && n < max; i++)
            out[n++] = crm_utf8_fold(crm_record_str_at(rec, fd, i));
    } else if (fd->type == PROTOBUF_C_TYPE_STRING) {
        out[n++] = crm_utf8_fold(*(const char *const *)((const char *)rec + fd->offset));
    } else if (fd->type == PROTOBUF_C_TYPE_ENUM) {
        char name[64];
        crm_record_enum_name(fd->descriptor, *(const int *)((const char *)rec + fd->offset),
                             name, sizeof name);
        out[n++] = strdup(name);
    } else if (fd->type == PROTOBUF_C_TYPE_BOOL) {
        out[n++] = strdup(*(const protobuf_c_boolean *)((const char *)rec + fd->offset)
                              ? "true"
                              : "false");
    }
    return n;
}

/* FIRST (folded already) and SECOND folded, each without white space, joined
   by 0x1f into OUT: "李 娜" at "华东 贸易" is 李娜\x1f华东贸易. 0 if either is empty. */
static size_t
s_pair_value(const char *first, const char *second, char *out, size_t cap)
{
    char *b = crm_utf8_fold(second);
    size_t n = 0, lim = cap - 1;
    for (const char *p = first; *p && n < lim / 2; p++)
        if (*p != ' ' && *p != '\t')
            out[n++] = *p;
    size_t mid = n;
    out[n++] = 0x1f;
    for (const char *p = b; *p && n < lim; p++)
        if (*p != ' ' && *p != '\t')
            out[n++] = *p;
    free(b);
    return mid && n > mid + 1 ? n : 0;
}

/* The index entries of REC, a record of E numbered NUM, into KEYS; but none of an index
   whose bit is set in SKIP (the bit of e->indexes[i] is 1 << i). */
static void
s_index_keys(const crm_entity_t *e, uint64_t num, const ProtobufCMessage *rec, uint64_t skip,
             s_keys_t *keys)
{
    unsigned at = 0;
    for (const crm_index_t *idx = e->indexes; idx->field; idx++, at++) {
        if (at < 64 && (skip & (UINT64_C(1) << at)))
            continue;
        const ProtobufCFieldDescriptor *fd = crm_entity_index_field(e, idx);
        CRM_ASSERT(fd != NULL);
        char *vals[32];
        size_t nv = idx->kind == CRM_IDX_PARENT ? 0 : s_values(rec, fd, vals, 32);
        for (size_t i = 0; i < nv; i++) {
            size_t vl = strlen(vals[i]);
            if (vl == 0) {
                free(vals[i]);
                continue;
            }
            if (idx->kind == CRM_IDX_EXACT) {
                s_add_posting(keys, e, idx->tag, vals[i], vl, num);
            } else if (idx->kind == CRM_IDX_PHONE) {
                s_add_posting(keys, e, idx->tag, vals[i], vl, num);
                if (vl >= 4)
                    s_add_posting(keys, e, (char)(idx->tag + 1), vals[i] + vl - 4, 4, num);
            } else if (idx->kind == CRM_IDX_TEXT) {
                s_gram_ctx_t c = {keys, e, idx->tag, num};
                s_grams(vals[i], s_gram_posting, &c);
            } else if (idx->kind == CRM_IDX_PAIR) {
                char pair[KEY_MAX - 24];
                size_t pl = s_pair_value(vals[i], crm_record_get_str(rec, idx->sort_field), pair,
                                         sizeof pair);
                if (pl)
                    s_add_posting(keys, e, idx->tag, pair, pl, num);
            }
            free(vals[i]);
        }
        if (idx->kind == CRM_IDX_PARENT) {
            const char *parent = crm_record_get_str(rec, idx->field);
            char key[KEY_MAX];
            size_t n = s_term_prefix(e, idx->tag, parent, strlen(parent), key);
            store_put_be64((uint8_t *)key + n, ~(uint64_t)crm_record_get_i64(rec, idx->sort_field));
            store_put_be64((uint8_t *)key + n + 8, num);
            s_keys_add(keys, key, n + 16);
        }
    }
}

/* ==== Records ==== */

static crm_err_t
s_decode(const crm_entity_t *e, const store_val_t *val, ProtobufCMessage **out)
{
    char errbuf[CRM_ERRBUF];
    if (crm_proto_unpack(e->desc, (const uint8_t *)val->data, val->len, out, errbuf) != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "records: a stored %s is corrupt: %s", e->name, errbuf);
        return CRM_ERR_INTERNAL;
    }
    return CRM_OK;
}

crm_err_t
records_each(store_t *store, const crm_entity_t *e,
             bool (*fn)(uint64_t num, ProtobufCMessage *rec, void *arg), void *arg,
             uint64_t *read)
{
    char prefix[1] = {e->prefix};
    crm_err_t rc = CRM_OK;
    *read = 0;
    store_iter_t *it = store_iter_new(store, STORE_CF_RECORDS);
    for (store_iter_seek(it, prefix, 1); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != 9 || k[0] != e->prefix)
            break;
        const char *v = store_iter_value(it, &vlen);
        if (!v) {
            rc = CRM_ERR_STORAGE; /* does not open: logged and counted */
            break;
        }
        store_val_t val = {(char *)v, vlen};
        ProtobufCMessage *rec = NULL;
        (*read)++;
        if ((rc = s_decode(e, &val, &rec)) != CRM_OK)
            break;
        bool go_on = fn(store_get_be64((const uint8_t *)k + 1), rec, arg);
        crm_proto_free(&rec);
        if (!go_on)
            break;
    }
    store_iter_destroy(&it);
    return rc;
}

crm_err_t
records_get(store_t *store, const crm_entity_t *e, uint64_t num, ProtobufCMessage **out)
{
    char key[9];
    store_val_t val = {0};
    *out = NULL;
    crm_err_t rc = store_get(store, STORE_CF_RECORDS, key, s_record_key(e, num, key), &val);
    if (rc == CRM_OK)
        rc = s_decode(e, &val, out);
    store_val_release(&val);
    return rc;
}

/* Fewer records than this are read one by one: RocksDB's MultiGet of one key cost 1.13x
   a Get's server CPU per phone search (PERFORMANCE.md, "Search hits read in one batch") */
#define RECORDS_MANY_MIN 4

crm_err_t
records_get_many(store_t *store, const crm_entity_t *e, const uint64_t *nums, size_t n,
                 ProtobufCMessage **out, crm_err_t *rcs)
{
    if (n < RECORDS_MANY_MIN) { /* a batch costs more than a read or two */
        crm_err_t rc = CRM_OK;
        for (size_t i = 0; i < n; i++)
            if ((rcs[i] = records_get(store, e, nums[i], &out[i])) != CRM_OK &&
                rcs[i] != CRM_ERR_NOT_FOUND && rc == CRM_OK)
                rc = rcs[i];
        return rc;
    }
    char *keys = malloc(n * 9);
    const char **kp = malloc(n * sizeof *kp);
    size_t *lens = malloc(n * sizeof *lens);
    store_val_t *vals = malloc(n * sizeof *vals);
    CRM_ASSERT(keys && kp && lens && vals);
    for (size_t i = 0; i < n; i++) {
        kp[i] = keys + i * 9;
        lens[i] = s_record_key(e, nums[i], keys + i * 9);
    }
    crm_err_t rc = store_get_many(store, STORE_CF_RECORDS, kp, lens, n, vals, rcs);
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (rcs[i] == CRM_OK && (rcs[i] = s_decode(e, &vals[i], &out[i])) != CRM_OK &&
            rc == CRM_OK)
            rc = rcs[i];
        store_val_release(&vals[i]);
    }
    free(keys);
    free(kp);
    free(lens);
    free(vals);
    return rc;
}

crm_err_t
records_group_get(store_group_t *g, const crm_entity_t *e, uint64_t num, ProtobufCMessage **out)
{
    char key[9];
    store_val_t val = {0};
    *out = NULL;
    crm_err_t rc = store_group_get(g, STORE_CF_RECORDS, key, s_record_key(e, num, key), &val);
    if (rc == CRM_OK)
        rc = s_decode(e, &val, out);
    store_val_release(&val);
    return rc;
}

/* The number the next record of kind E gets, read through the group; its
   meta key into KEY (64 bytes), the key's length into *KLEN. */
static crm_err_t
s_next_num(store_group_t *g, const crm_entity_t *e, char *key, int *klen, uint64_t *next)
{
    *klen = snprintf(key, 64, "next_id/%s", e->name);
    store_val_t val = {0};
    crm_err_t rc = store_group_get(g, STORE_CF_META, key, (size_t)*klen, &val);
    *next = 1;
    if (rc == CRM_OK && val.len == 8)
        *next = store_get_be64((const uint8_t *)val.data);
    store_val_release(&val);
    return rc == CRM_ERR_NOT_FOUND ? CRM_OK : rc;
}

crm_err_t
records_next_num(store_group_t *g, const crm_entity_t *e, uint64_t *num)
{
    char key[64];
    int klen;
    uint64_t next;
    crm_err_t rc = s_next_num(g, e, key, &klen, &next);
    if (rc != CRM_OK)
        return rc;
    uint8_t be[8];
    store_put_be64(be, next + 1);
    store_group_put(g, STORE_CF_META, key, (size_t)klen, be, sizeof be);
    *num = next;
    return CRM_OK;
}

crm_err_t
records_last_num(store_group_t *g, const crm_entity_t *e, uint64_t *num)
{
    char key[64];
    int klen;
    uint64_t next;
    crm_err_t rc = s_next_num(g, e, key, &klen, &next);
    *num = rc == CRM_OK ? next - 1 : 0;
    return rc;
}

static bool
s_keys_has(const s_keys_t *k, const char *key, size_t len)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->lens[i] == len && !memcmp(k->keys[i], key, len))
            return true;
    return false;
}

void
records_stage_put(store_group_t *g, const crm_entity_t *e, uint64_t num,
                  const ProtobufCMessage *old, const ProtobufCMessage *rec)
{
    /* touch only the index entries that differ: most edits change no indexed field, and
       an index whose fields are as they were is not derived at all (its entries - grams,
       blind terms - were 9 % of an update's CPU) */
    s_keys_t before = {0}, after = {0};
    uint64_t same = 0;
    unsigned at = 0;
    for (const crm_index_t *idx = e->indexes; old && idx->field && at < 64; idx++, at++) {
        const ProtobufCFieldDescriptor *f = crm_entity_index_field(e, idx);
        const ProtobufCFieldDescriptor *sf = crm_entity_index_sort_field(e, idx);
        if (f && crm_record_field_equal(f, old, rec) && (!sf || crm_record_field_equal(sf, old, rec)))
            same |= UINT64_C(1) << at;
    }
    if (old)
        s_index_keys(e, num, old, same, &before);
    s_index_keys(e, num, rec, same, &after);
    for (size_t i = 0; i < before.n; i++)
        if (!s_keys_has(&after, before.keys[i], before.lens[i]))
            store_group_delete(g, STORE_CF_INDEXES, before.keys[i], before.lens[i]);
    for (size_t i = 0; i < after.n; i++)
        if (!s_keys_has(&before, after.keys[i], after.lens[i]))
            store_group_put(g, STORE_CF_INDEXES, after.keys[i], after.lens[i], "", 0);
    s_keys_release(&before);
    s_keys_release(&after);
    char key[9];
    size_t len;
    uint8_t *packed = crm_proto_pack(rec, &len);
    store_group_put(g, STORE_CF_RECORDS, key, s_record_key(e, num, key), packed, len);
    free(packed);
}

void
records_stage_delete(store_group_t *g, const crm_entity_t *e, uint64_t num,
                     const ProtobufCMessage *old)
{
    s_keys_t keys = {0};
    s_index_keys(e, num, old, 0, &keys);
    for (size_t i = 0; i < keys.n; i++)
        store_group_delete(g, STORE_CF_INDEXES, keys.keys[i], keys.lens[i]);
    s_keys_release(&keys);
    char key[9];
    store_group_delete(g, STORE_CF_RECORDS, key, s_record_key(e, num, key));
}

/* What records_stage_put writes for a new record, key by key: a bulk writer's
   or a benchmark's view of it (tools/bench/import_floor.c). */
size_t
records_keys_each(const crm_entity_t *e, uint64_t num, const ProtobufCMessage *rec,
                  void (*fn)(store_cf_t cf, const char *key, size_t len, void *arg), void *arg)
{
    s_keys_t keys = {0};
    s_index_keys(e, num, rec, 0, &keys);
    for (size_t i = 0; i < keys.n; i++)
        fn(STORE_CF_INDEXES, keys.keys[i], keys.lens[i], arg);
    size_t n = keys.n;
    s_keys_release(&keys);
    char key[9];
    fn(STORE_CF_RECORDS, key, s_record_key(e, num, key), arg);
    return n + 1;
}

/* ==== Terms ==== */

void
records_term_release(records_term_t *t)
{
    free(t->key);
    t->key = NULL;
    t->len = 0;
}

crm_err_t
records_pair_each(store_t *store, const crm_entity_t *e, char tag, const char *first, size_t max,
                  bool (*fn)(uint64_t num, void *arg), void *arg)
{
    char *f = crm_utf8_fold(first), pair[KEY_MAX - 24], key[KEY_MAX];
    /* the key's first part as s_pair_value makes it: "x" stands for any second */
    size_t pl = s_pair_value(f, "x", pair, sizeof pair);
    free(f);
    if (!pl)
        return CRM_OK;
    size_t plen = s_term_prefix(e, tag, pair, pl - 1, key) - 1; /* up to and with the 0x1f */
    uint64_t errors = store_read_errors(store, NULL);
    store_iter_t *it = store_iter_new(store, STORE_CF_INDEXES);
    size_t n = 0;
    for (store_iter_seek(it, key, plen); store_iter_valid(it) && n < max; store_iter_next(it), n++) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen < plen + 9 || memcmp(k, key, plen))
            break;
        if (!fn(store_get_be64((const uint8_t *)k + klen - 8), arg))
            break;
    }
    store_iter_destroy(&it);
    return store_read_errors(store, NULL) != errors ? CRM_ERR_STORAGE : CRM_OK;
}

size_t
records_postings(const crm_entity_t *e, const ProtobufCMessage *rec, char tag,
                 records_term_t *terms, size_t max)
{
    s_keys_t keys = {0};
    s_index_keys(e, 0, rec, 0, &keys);
    size_t n = 0;
    for (size_t i = 0; i < keys.n && n < max; i++) {
        if (keys.lens[i] < 11 || keys.keys[i][1] != tag)
            continue;
        terms[n].len = keys.lens[i] - 8; /* without the record number */
        terms[n].key = malloc(terms[n].len);
        CRM_ASSERT_ALLOC(terms[n].key);
        memcpy(terms[n].key, keys.keys[i], terms[n].len);
        n++;
    }
    s_keys_release(&keys);
    return n;
}

static void
s_term_set(records_term_t *t, const crm_entity_t *e, char tag, const char *value, size_t vlen)
{
    char key[KEY_MAX];
    size_t n = s_term_prefix(e, tag, value, vlen, key);
    t->key = malloc(n);
    CRM_ASSERT_ALLOC(t->key);
    memcpy(t->key, key, n);
    t->len = n;
}

static void
s_filterable(const crm_entity_t *e, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (const crm_index_t *i = e->indexes; i->field && used + 1 < n; i++)
        if (i->kind != CRM_IDX_TEXT && i->kind != CRM_IDX_PAIR)
            used += (size_t)snprintf(out + used, n - used, "%s%s", used ? ", " : "", i->field);
}

crm_err_t
records_term(const crm_entity_t *e, const char *field, const char *value, records_term_t *out,
             char *errbuf)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    const crm_index_t *idx = fd ? crm_entity_index(e, fd->name) : NULL;
    out->key = NULL;
    out->len = 0;
    char phone[24];
    if (!idx || idx->kind == CRM_IDX_TEXT || idx->kind == CRM_IDX_PARENT ||
        idx->kind == CRM_IDX_PAIR) {
        char list[256];
        s_filterable(e, list, sizeof list);
        snprintf(errbuf, CRM_ERRBUF, "cannot filter %s records on '%s' (filterable: %s)", e->name,
                 field, list);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (idx->kind == CRM_IDX_PHONE) {
        size_t vl = strlen(value);
        bool last4 = vl == 4 && strspn(value, "0123456789") == 4;
        if (!last4 && !crm_record_phone(value, phone)) {
            snprintf(errbuf, CRM_ERRBUF, "'%.40s' is not a phone number or its last 4 digits",
                     value);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (last4)
            s_term_set(out, e, (char)(idx->tag + 1), value, 4);
        else
            s_term_set(out, e, idx->tag, phone, strlen(phone));
        return CRM_OK;
    }
    if (fd->type == PROTOBUF_C_TYPE_BOOL) { /* yes/no, true/false, 1/0: as the field parses */
        ProtobufCMessage *tmp = crm_proto_new(e->desc);
        crm_err_t rc = crm_record_set_text(tmp, fd, value, false, errbuf);
        bool v = rc == CRM_OK && *(const protobuf_c_boolean *)((const char *)tmp + fd->offset);
        crm_proto_free(&tmp);
        if (rc != CRM_OK)
            return rc;
        s_term_set(out, e, idx->tag, v ? "true" : "false", v ? 4 : 5);
        return CRM_OK;
    }
    if (fd->type == PROTOBUF_C_TYPE_ENUM) {
        /* accept "At Risk", "at_risk", "at-risk" alike: parse, then print the canonical name */
        ProtobufCMessage *tmp = crm_proto_new(e->desc);
        crm_err_t rc = crm_record_set_text(tmp, fd, value, false, errbuf);
        char name[64] = "";
        if (rc == CRM_OK)
            crm_record_enum_name(fd->descriptor, crm_record_get_enum(tmp, fd->name), name,
                                 sizeof name);
        crm_proto_free(&tmp);
        if (rc != CRM_OK)
            return rc;
        s_term_set(out, e, idx->tag, name, strlen(name));
        return CRM_OK;
    }
    char *folded = crm_utf8_fold(value);
    s_term_set(out, e, idx->tag, folded, strlen(folded));
    free(folded);
    return CRM_OK;
}

typedef struct {
    records_term_t *terms;
    size_t n, max;
    const crm_entity_t *e;
    char tag;
    bool unigrams; /* single-character query: use the character itself */
} s_term_ctx_t;

static void
s_gram_term(const char *gram, size_t len, void *arg)
{
    s_term_ctx_t *c = arg;
    /* a word's single characters are also indexed: keep only pairs unless the
       query has no pair at all */
    size_t cps = 0;
    for (size_t i = 0; i < len; i++)
        cps += ((unsigned char)gram[i] & 0xC0) != 0x80;
    if ((cps == 1) != c->unigrams || c->n == c->max || s_gram_unlisted(gram, len))
        return;
    records_term_t t;
    s_term_set(&t, c->e, c->tag, gram, len);
    for (size_t i = 0; i < c->n; i++)
        if (c->terms[i].len == t.len && !memcmp(c->terms[i].key, t.key, t.len)) {
            records_term_release(&t);
            return;
        }
    c->terms[c->n++] = t;
}

static void
s_count_pairs(const char *gram, size_t len, void *arg)
{
    size_t cps = 0, *counts = arg; /* grams, pairs */
    for (size_t i = 0; i < len; i++)
        cps += ((unsigned char)gram[i] & 0xC0) != 0x80;
    counts[0]++;
    if (cps == 2)
        counts[1]++;
}

crm_err_t
records_text_terms(const crm_entity_t *e, const char *text, records_term_t *terms, size_t *n,
                   char *errbuf)
{
    const crm_index_t *idx = NULL;
    for (const crm_index_t *i = e->indexes; i->field; i++)
        if (i->kind == CRM_IDX_TEXT)
            idx = i;
    *n = 0;
    if (!idx) {
        snprintf(errbuf, CRM_ERRBUF, "%s records have no text search", e->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    size_t counts[2] = {0, 0}; /* grams, pairs */
    s_grams(text, s_count_pairs, counts);
    if (counts[0] == 0) {
        snprintf(errbuf, CRM_ERRBUF, "search text is empty");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    s_term_ctx_t c = {terms, 0, RECORDS_MAX_TERMS, e, idx->tag, counts[1] == 0};
    s_grams(text, s_gram_term, &c);
    *n = c.n; /* 0: single Latin letters or digits only, which have no posting list */
    return CRM_OK;
}

bool
records_text_is_gram(const char *text)
{
    char *folded = crm_utf8_fold(text);
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)folded;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(folded), i = 0;
    size_t cps = 0;
    bool space = false;
    while (i < len && !space) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(s + i, len - i, &cp);
        if (n <= 0)
            break;
        space = s_gram_space(cp);
        cps++;
        i += n;
    }
    bool gram = !space && i == len &&
                (cps == 2 || (cps == 1 && !s_gram_unlisted(folded, (size_t)len)));
    free(folded);
    return gram;
}

bool
records_text_match(const ProtobufCMessage *rec, const void *text)
{
    static const char *const fields[] = {"name", "company"};
    bool hit = false;
    for (size_t i = 0; !hit && i < 2; i++) {
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(rec->descriptor, fields[i]);
        if (!fd || fd->type != PROTOBUF_C_TYPE_STRING)
            continue;
        char *folded = crm_utf8_fold(crm_record_get_str(rec, fields[i]));
        hit = strstr(folded, text) != NULL;
        free(folded);
    }
    return hit;
}

/* ==== Queries ==== */

/* Position IT at the first posting of TERM with number >= TARGET; returns
   that number, or 0 when the term has no more postings. */
static uint64_t
s_seek(store_iter_t *it, const records_term_t *t, uint64_t target)
{
    /* An iterator only moves forward through its own term's postings, and
       where it stands is often at, or a few postings before, the target:
       stepping there is far cheaper than a seek (leapfrogging two lists whose
       postings interleave - a province and a stage - moves by a posting or
       two at a time, a million times at 1M customers). */
    for (int step = 0; step < 8 && store_iter_valid(it); step++) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen != t->len + 8 || memcmp(k, t->key, t->len))
            return 0; /* past the term's last posting */
        uint64_t at = store_get_be64((const uint8_t *)k + t->len);
        if (at >= target)
            return at;
        store_iter_next(it);
    }
    char key[KEY_MAX + 8];
    memcpy(key, t->key, t->len);
    store_put_be64((uint8_t *)key + t->len, target);
    store_iter_seek(it, key, t->len + 8);
    if (!store_iter_valid(it))
        return 0;
    size_t klen;
    const char *k = store_iter_key(it, &klen);
    if (klen != t->len + 8 || memcmp(k, t->key, t->len))
        return 0;
    return store_get_be64((const uint8_t *)k + t->len);
}

crm_err_t
records_query(store_t *store, const crm_entity_t *e, const records_term_t *terms, size_t n,
              uint64_t after, size_t limit, uint64_t *ids, size_t *count, bool *more,
              bool (*match)(const ProtobufCMessage *, const void *), const void *arg)
{
    return records_query_group(store, NULL, e, terms, n, after, limit, ids, count, more, match,
                               arg);
}

crm_err_t
records_query_group(store_t *store, store_group_t *g, const crm_entity_t *e,
                    const records_term_t *terms, size_t n, uint64_t after, size_t limit,
                    uint64_t *ids, size_t *count, bool *more,
                    bool (*match)(const ProtobufCMessage *, const void *), const void *arg)
{
    return records_query_budget(store, g, e, terms, n, after, limit, UINT64_MAX, ids, count,
                                more, NULL, match, arg);
}

crm_err_t
records_query_budget(store_t *store, store_group_t *g, const crm_entity_t *e,
                     const records_term_t *terms, size_t n, uint64_t after, size_t limit,
                     uint64_t budget, uint64_t *ids, size_t *count, bool *more, uint64_t *last,
                     bool (*match)(const ProtobufCMessage *, const void *), const void *arg)
{
    crm_err_t rc = CRM_OK;
    uint64_t examined = 0;
    if (last)
        *last = 0;
    store_iter_t *its[RECORDS_MAX_TERMS] = {NULL};
    records_term_t all = {NULL, 0};
    char prefix[1] = {e->prefix};
    *count = 0;
    *more = false;
    CRM_ASSERT(n <= RECORDS_MAX_TERMS);
    if (n == 0) { /* every record of the kind: the records CF is one big posting list */
        all.key = prefix;
        all.len = 1;
        terms = &all;
        n = 1;
        its[0] = g ? store_group_iter_new(g, STORE_CF_RECORDS)
                   : store_iter_new(store, STORE_CF_RECORDS);
    } else {
        for (size_t i = 0; i < n; i++) /* a blind term's postings: the prefix filter serves */
            its[i] = terms[i].len > STORE_TERM_PREFIX && s_blind_index(e, terms[i].key[1])
                         ? store_term_iter_new(store, g)
                     : g ? store_group_iter_new(g, STORE_CF_INDEXES)
                         : store_iter_new(store, STORE_CF_INDEXES);
    }
    uint64_t target = after + 1;
    while (target != 0) {
        /* leapfrog: raise target until every term has a posting at it */
        bool agreed = false;
        while (!agreed && target != 0) {
            agreed = true;
            for (size_t i = 0; i < n; i++) {
                uint64_t got = s_seek(its[i], &terms[i], target);
                if (got == 0) {
                    target = 0;
                    break;
                }
                if (got > target) {
                    target = got;
                    agreed = false;
                    break;
                }
            }
        }
        if (target == 0)
            break;
        if (match) {
            if (examined++ == budget) { /* every number below TARGET is decided */
                *more = true;
                if (last)
                    *last = target - 1;
                break;
            }
            ProtobufCMessage *rec = NULL;
            if (terms == &all) { /* the iterator stands on the record: no second read */
                size_t vlen;
                const char *v = store_iter_value(its[0], &vlen);
                store_val_t val = {(char *)v, vlen};
                rc = v ? s_decode(e, &val, &rec) : CRM_ERR_STORAGE; /* logged and counted */
            } else {
                rc = g ? records_group_get(g, e, target, &rec)
                       : records_get(store, e, target, &rec);
            }
            bool ok = rc == CRM_OK && match(rec, arg);
            crm_proto_free(&rec);
            if (rc == CRM_ERR_NOT_FOUND)
                rc = CRM_OK;
            if (rc != CRM_OK)
                break;
            if (!ok) {
                target++;
                continue;
            }
        }
        if (*count == limit) {
            *more = true;
            break;
        }
        ids[(*count)++] = target++;
    }
    for (size_t i = 0; i < n; i++)
        store_iter_destroy(&its[i]);
    return rc;
}

/* The parent index of kind E, and the prefix of PARENT_ID's entries in it into KEY
   (KEY_MAX + 16 bytes); returns the prefix's length. */
static size_t
s_parent_prefix(const crm_entity_t *e, const char *parent_id, char *key,
                const crm_index_t **idx_out)
{
    const crm_index_t *idx = NULL;
    for (const crm_index_t *i = e->indexes; i->field; i++)
        if (i->kind == CRM_IDX_PARENT)
            idx = i;
    CRM_ASSERT(idx != NULL);
    *idx_out = idx;
    return s_term_prefix(e, idx->tag, parent_id, strlen(parent_id), key);
}

crm_err_t
records_children(store_t *store, store_group_t *g, const crm_entity_t *e, const char *parent_id,
                 uint64_t after, size_t limit, uint64_t *ids, size_t *count, bool *more)
{
    const crm_index_t *idx;
    char key[KEY_MAX + 16];
    size_t plen = s_parent_prefix(e, parent_id, key, &idx);
    size_t klen = plen;
    *count = 0;
    *more = false;
    if (after) {
        ProtobufCMessage *last = NULL;
        crm_err_t rc = records_get(store, e, after, &last);
        if (rc != CRM_OK)
            return rc == CRM_ERR_NOT_FOUND ? CRM_ERR_INVALID_ARGUMENT : rc;
        store_put_be64((uint8_t *)key + plen,
                       ~(uint64_t)crm_record_get_i64(last, idx->sort_field));
        store_put_be64((uint8_t *)key + plen + 8, after + 1);
        klen = plen + 16;
        crm_proto_free(&last);
    }
    store_iter_t *it = g ? store_group_iter_new(g, STORE_CF_INDEXES)
                         : store_iter_new(store, STORE_CF_INDEXES);
    for (store_iter_seek(it, key, klen); store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const char *k = store_iter_key(it, &kl);
        if (kl != plen + 16 || memcmp(k, key, plen))
            break;
        if (*count == limit) {
            *more = true;
            break;
        }
        ids[(*count)++] = store_get_be64((const uint8_t *)k + plen + 8);
    }
    store_iter_destroy(&it);
    return CRM_OK;
}

size_t
records_count_children(store_t *store, const crm_entity_t *e, const char *parent_id, size_t max)
{
    const crm_index_t *idx;
    char key[KEY_MAX + 16];
    size_t plen = s_parent_prefix(e, parent_id, key, &idx), n = 0;
    store_iter_t *it = store_iter_new(store, STORE_CF_INDEXES);
    for (store_iter_seek(it, key, plen); store_iter_valid(it) && n <= max; store_iter_next(it)) {
        size_t kl;
        const char *k = store_iter_key(it, &kl);
        if (kl != plen + 16 || memcmp(k, key, plen))
            break;
        n++;
    }
    store_iter_destroy(&it);
    return n;
}

/* ==== Consistency check ==== */

/* Commit REPAIR when it has grown, so a repair of a large store runs in
   bounded batches; false (and *FAILED) on a storage failure. */
static bool
s_repair_flush(store_group_t *repair, uint64_t fixed, uint64_t *flushed, bool force,
               crm_err_t *failed, char *errbuf)
{
    if (!repair || *failed != CRM_OK || (!force && fixed - *flushed < 20000))
        return *failed == CRM_OK;
    *failed = store_group_commit(repair, errbuf);
    *flushed = fixed;
    return *failed == CRM_OK;
}

/* Kind E's index entries, counted as the walk below reads them; UINT64_MAX if a
   read error stopped the count (it then decides nothing). */
static uint64_t
s_count_entries(store_t *store, const crm_entity_t *e)
{
    char prefix[1] = {e->prefix};
    uint64_t n = 0, errors = store_read_errors(store, NULL);
    store_iter_t *it = store_iter_new(store, STORE_CF_INDEXES);
    for (store_iter_seek(it, prefix, 1); store_iter_valid(it); store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen < 11 || k[0] != e->prefix)
            break;
        n++;
    }
    store_iter_destroy(&it);
    return store_read_errors(store, NULL) == errors ? n : UINT64_MAX;
}

/* Records whose index keys s_walk looks up in one batch (about 28 keys a customer): the
   keys of neighbouring records share table files and blocks, which RocksDB's MultiGet
   reads once for them, where a get per key looked each one up alone. */
#define WALK_BATCH 128

typedef struct {
    s_keys_t keys[WALK_BATCH];
    uint64_t nums[WALK_BATCH];
    size_t n;
} s_walk_batch_t;

/* The batch's keys looked up: each one there counts in PRESENT; one missing is written
   (REPAIR) or reported. Returns the problems reported; empties the batch. */
static size_t
s_walk_batch(store_t *store, const crm_entity_t *e, s_walk_batch_t *b, store_group_t *repair,
             uint64_t *fixed, uint64_t *present, void (*report)(const char *what, void *arg),
             void *arg)
{
    size_t total = 0, problems = 0, j = 0;
    for (size_t r = 0; r < b->n; r++)
        total += b->keys[r].n;
    const char **ks = malloc((total ? total : 1) * sizeof *ks);
    size_t *ls = malloc((total ? total : 1) * sizeof *ls);
    bool *found = malloc((total ? total : 1) * sizeof *found);
    CRM_ASSERT(ks && ls && found);
    for (size_t r = 0; r < b->n; r++)
        for (size_t i = 0; i < b->keys[r].n; i++, j++) {
            ks[j] = b->keys[r].keys[i];
            ls[j] = b->keys[r].lens[i];
        }
    /* a failed read leaves its key not found: reported as missing, as a get's was, and
       counted among the store's read errors */
    store_have_many(store, STORE_CF_INDEXES, ks, ls, total, found);
    j = 0;
    for (size_t r = 0; r < b->n; r++) {
        for (size_t i = 0; i < b->keys[r].n; i++, j++) {
            if (found[j]) {
                (*present)++;
            } else if (repair) { /* an index added by a newer format: write its entry */
                store_group_put(repair, STORE_CF_INDEXES, ks[j], ls[j], "", 0);
                (*fixed)++;
                (*present)++;
            } else {
                char msg[256];
                snprintf(msg, sizeof msg, "%s %c%llu: index entry '%c' missing", e->name,
                         e->prefix, (unsigned long long)b->nums[r], ks[j][1]);
                problems++;
                if (report)
                    report(msg, arg);
            }
        }
        s_keys_release(&b->keys[r]);
    }
    b->n = 0;
    free(ks);
    free(ls);
    free(found);
    return problems;
}

static size_t
s_walk(store_t *store, const crm_entity_t *e, store_group_t *repair, uint64_t *fixed,
       crm_err_t *failed, char *errbuf, uint64_t *records, uint64_t *entries,
       void (*report)(const char *what, void *arg), void *arg)
{
    size_t problems = 0;
    char msg[256], prefix[1] = {e->prefix};
    uint64_t flushed = 0, present = 0;
    s_walk_batch_t batch = {.n = 0};
    *records = *entries = 0;
    /* records -> index entries (PRESENT: the distinct keys the records write that
       are there, or were written now) */
    store_iter_t *it = store_iter_new(store, STORE_CF_RECORDS);
    for (store_iter_seek(it, prefix, 1); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen != 9 || k[0] != e->prefix)
            break;
        uint64_t num = store_get_be64((const uint8_t *)k + 1);
        const char *v = store_iter_value(it, &vlen);
        store_val_t val = {(char *)v, vlen};
        ProtobufCMessage *rec = NULL;
        (*records)++;
        if (!v || s_decode(e, &val, &rec) != CRM_OK) {
            snprintf(msg, sizeof msg, "%s %c%llu: record cannot be %s", e->name, e->prefix,
                     (unsigned long long)num, v ? "decoded" : "opened with the master key");
            problems++;
            if (report)
                report(msg, arg);
            continue;
        }
        batch.nums[batch.n] = num;
        s_index_keys(e, num, rec, 0, &batch.keys[batch.n++]);
        crm_proto_free(&rec);
        if (batch.n < WALK_BATCH)
            continue;
        problems += s_walk_batch(store, e, &batch, repair, fixed, &present, report, arg);
        if (!s_repair_flush(repair, repair ? *fixed : 0, &flushed, false, failed, errbuf))
            break;
    }
    store_iter_destroy(&it);
    problems += s_walk_batch(store, e, &batch, repair, fixed, &present, report, arg);
    if (!s_repair_flush(repair, repair ? *fixed : 0, &flushed, true, failed, errbuf))
        return problems;
    /* index entries -> records. Keys are unique and every one counted in PRESENT
       is there, so as many entries as PRESENT means none is stray, and the walk
       below is not needed: it reads the record of each entry and derives its keys
       (entries come by term, records at random: 15 minutes and more at 1M
       customers). Both callers hold a stopped data dir (crm-admin check and
       upgrade open it alone), so nothing changes between the two passes */
    if (s_count_entries(store, e) == present) {
        *entries = present;
        return problems;
    }
    it = store_iter_new(store, STORE_CF_INDEXES);
    uint64_t cached_num = 0;
    s_keys_t cached = {0};
    for (store_iter_seek(it, prefix, 1); store_iter_valid(it); store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen < 11 || k[0] != e->prefix)
            break;
        (*entries)++;
        uint64_t num = store_get_be64((const uint8_t *)k + klen - 8);
        if (num != cached_num) {
            ProtobufCMessage *rec = NULL;
            s_keys_release(&cached);
            cached_num = num;
            if (records_get(store, e, num, &rec) == CRM_OK)
                s_index_keys(e, num, rec, 0, &cached);
            crm_proto_free(&rec);
        }
        bool found = false;
        for (size_t i = 0; !found && i < cached.n; i++)
            found = cached.lens[i] == klen && !memcmp(cached.keys[i], k, klen);
        if (found)
            continue;
        if (repair) { /* an index a newer format dropped: remove its entry */
            store_group_delete(repair, STORE_CF_INDEXES, k, klen);
            (*fixed)++;
            (*entries)--;
            if (!s_repair_flush(repair, repair ? *fixed : 0, &flushed, false, failed, errbuf))
                break;
        } else {
            snprintf(msg, sizeof msg, "%s %c%llu: stray index entry '%c'", e->name, e->prefix,
                     (unsigned long long)num, k[1]);
            problems++;
            if (report)
                report(msg, arg);
        }
    }
    s_keys_release(&cached);
    store_iter_destroy(&it);
    s_repair_flush(repair, repair ? *fixed : 0, &flushed, true, failed, errbuf);
    return problems;
}

crm_err_t
records_drop_unlisted(store_t *store, const crm_entity_t *e, uint64_t *removed, char *errbuf)
{
    crm_err_t failed = CRM_OK;
    uint64_t flushed = 0;
    store_group_t *g = store_group_new(store);
    *removed = 0;
    for (const crm_index_t *idx = e->indexes; idx->field && failed == CRM_OK; idx++) {
        bool seen = false; /* fields may share one text index (name, company) */
        for (const crm_index_t *before = e->indexes; before < idx; before++)
            seen = seen || (before->kind == CRM_IDX_TEXT && before->tag == idx->tag);
        if (idx->kind != CRM_IDX_TEXT || seen)
            continue;
        for (int ch = 1; ch < 0x100 && failed == CRM_OK; ch++) {
            char gram = (char)ch, key[KEY_MAX];
            if (!s_gram_unlisted(&gram, 1))
                continue;
            size_t plen = s_term_prefix(e, idx->tag, &gram, 1, key);
            store_iter_t *it = store_iter_new(store, STORE_CF_INDEXES);
            for (store_iter_seek(it, key, plen); store_iter_valid(it); store_iter_next(it)) {
                size_t klen;
                const char *k = store_iter_key(it, &klen);
                if (klen != plen + 8 || memcmp(k, key, plen))
                    break;
                store_group_delete(g, STORE_CF_INDEXES, k, klen);
                (*removed)++;
                if (!s_repair_flush(g, *removed, &flushed, false, &failed, errbuf))
                    break;
            }
            store_iter_destroy(&it);
        }
    }
    s_repair_flush(g, *removed, &flushed, true, &failed, errbuf);
    store_group_destroy(&g);
    return failed;
}

size_t
records_check(store_t *store, const crm_entity_t *e, uint64_t *records, uint64_t *entries,
              void (*report)(const char *what, void *arg), void *arg)
{
    crm_err_t failed = CRM_OK;
    return s_walk(store, e, NULL, NULL, &failed, NULL, records, entries, report, arg);
}

size_t
records_blind_terms(const char *value, size_t len, uint8_t (*out)[SEAL_BLIND_BYTES], size_t cap)
{
    size_t n = 0;
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++)
        for (const crm_index_t *i = e->indexes; i->field; i++) {
            if (i->kind == CRM_IDX_PARENT || !(crm_entity_flags(e, i->field) & CRM_F_PERSONAL))
                continue;
            int tags = i->kind == CRM_IDX_PHONE ? 2 : 1; /* the number, its last 4 digits */
            unsigned first = i->kind == CRM_IDX_PAIR ? 1 : 0, last = first ? 2 : 0;
            for (int t = 0; t < tags; t++) {
                uint32_t domain = (uint32_t)(uint8_t)e->prefix << 16 |
                                  (uint32_t)(uint8_t)(i->tag + t) << 8;
                for (unsigned part = first; part <= last; part++) {
                    CRM_ASSERT(n < cap); /* every domain, or a caller's text not looked for */
                    seal_blind(domain | part, value, len, out[n++]);
                }
            }
        }
    return n;
}

crm_err_t
records_reindex(store_t *store, const crm_entity_t *e, uint64_t *fixed, char *errbuf)
{
    crm_err_t failed = CRM_OK;
    uint64_t records, entries;
    store_group_t *g = store_group_new(store);
    *fixed = 0;
    s_walk(store, e, g, fixed, &failed, errbuf, &records, &entries, NULL, NULL);
    store_group_destroy(&g);
    return failed;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

crm_err_t
records_range(store_t *store, const crm_entity_t *e, const char *field, const char *from,
              const char *to, size_t cap, uint64_t **ids_out, size_t *n_out, char *errbuf)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    const crm_index_t *idx = fd ? crm_entity_index(e, fd->name) : NULL;
    *ids_out = NULL;
    *n_out = 0;
    if (!idx || idx->kind != CRM_IDX_EXACT || fd->type != PROTOBUF_C_TYPE_STRING ||
        s_blind_index(e, idx->tag))
        return CRM_ERR_NOT_FOUND; /* not a range index: the caller filters record by record */
    char start[KEY_MAX];
    size_t tlen = strlen(to), slen = s_term_prefix(e, idx->tag, from, strlen(from), start) - 1;
    uint64_t *ids = NULL;
    size_t n = 0, capn = 0;
    crm_err_t rc = CRM_OK;
    store_iter_t *it = store_iter_new(store, STORE_CF_INDEXES);
    for (store_iter_seek(it, start, slen); store_iter_valid(it); store_iter_next(it)) {
        size_t klen;
        const char *k = store_iter_key(it, &klen);
        if (klen < 2 + 1 + 8 || k[0] != e->prefix || k[1] != idx->tag)
            break;
        const char *value = k + 2;
        size_t vlen = klen - 2 - 1 - 8;
        if (tlen && strncmp(value, to, vlen < tlen ? vlen : tlen) > 0)
            break; /* past TO (a value that starts with TO is within it) */
        if (n == cap) {
            snprintf(errbuf, CRM_ERRBUF,
                     "the range holds more than %zu %s records: narrow it or add a filter", cap,
                     e->name);
            rc = CRM_ERR_RESOURCE_EXHAUSTED;
            break;
        }
        if (n == capn) {
            capn = capn ? capn * 2 : 256;
            ids = realloc(ids, capn * sizeof *ids);
            CRM_ASSERT_ALLOC(ids);
        }
        ids[n++] = store_get_be64((const uint8_t *)k + klen - 8);
    }
    store_iter_destroy(&it);
    if (rc != CRM_OK) {
        free(ids);
        return rc;
    }
    if (n > 1) /* qsort takes no NULL, even for nothing */
        qsort(ids, n, sizeof *ids, s_cmp_u64);
    *ids_out = ids;
    *n_out = n;
    return CRM_OK;
}
