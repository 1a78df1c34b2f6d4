/*  =========================================================================
    query - `crm KIND list` and `crm KIND search` (see entity.h)

    Owns:      turning a list's or a search's flags into requests and one
               page of output: filter values with OR ("--stage lead,prospect"),
               filters on a search, --count and --sort.
    Must not:  print records itself (entity_print_records does).

    The server ANDs the filters of one request and pages in id order. A
    value "A,B" becomes one request per combination of values, and their
    pages are merged in id order without duplicates (a customer tagged both
    A and B is listed once); the next cursor is the last id shown, so
    `--after` pages the union exactly as it pages one request. A search takes
    no filters on the server: its pages are checked here against the filters
    (the same rule: any value of a list, A or B), and paging continues until
    a page is full. --sort must see every match: it pages through all of
    them (at most QUERY_SORT_MAX) and orders them by the field's value.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"
#include "entity.h"

#define QUERY_DEFAULT_LIMIT 50 /* the server's page when none is asked for */
#define QUERY_PAGE 1000        /* the largest page the server gives */
#define QUERY_MAX_COMBOS 32    /* requests one OR list may become */
#define QUERY_SORT_MAX 10000   /* matches --sort orders */

/* The records gathered so far, in id order. */
typedef struct {
    ProtobufCMessage **v;
    size_t n, cap;
} s_recs_t;

static uint64_t
s_num(const crm_entity_t *e, const ProtobufCMessage *rec)
{
    return crm_entity_parse_id(e, crm_record_get_str(rec, "id"));
}

static void
s_recs_add(s_recs_t *r, ProtobufCMessage *rec)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        CRM_ASSERT_ALLOC(r->v);
    }
    r->v[r->n++] = rec;
}

static void
s_recs_free(s_recs_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        crm_proto_free(&r->v[i]);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static const crm_entity_t *s_sort_e; /* qsort has no argument: the kind being sorted */

static int
s_by_id(const void *a, const void *b)
{
    uint64_t x = s_num(s_sort_e, *(ProtobufCMessage *const *)a);
    uint64_t y = s_num(s_sort_e, *(ProtobufCMessage *const *)b);
    return x < y ? -1 : x > y;
}

/* Sort by id and drop the records listed twice. */
static void
s_recs_unique(const crm_entity_t *e, s_recs_t *r)
{
    size_t out = 0;
    s_sort_e = e;
    if (r->n > 1)
        qsort(r->v, r->n, sizeof *r->v, s_by_id);
    for (size_t i = 0; i < r->n; i++) {
        if (out && s_num(e, r->v[out - 1]) == s_num(e, r->v[i]))
            crm_proto_free(&r->v[i]);
        else
            r->v[out++] = r->v[i];
    }
    r->n = out;
}

/* ==== Filters ==== */

/* The filters of A with the value lists split: VALS[i] holds filter i's values. */
typedef struct {
    size_t nf;
    const char *field[ENTITY_MAX_ARGS];
    char *vals[ENTITY_MAX_ARGS][QUERY_MAX_COMBOS];
    size_t nvals[ENTITY_MAX_ARGS];
} s_split_t;

/* Split each filter value at ','. Ranges (FROM..TO) and views are one value. */
static bool
s_split(const crm_entity_t *e, const entity_args_t *a, s_split_t *sp, size_t *combos)
{
    memset(sp, 0, sizeof *sp);
    *combos = 1;
    for (size_t i = 0; i < a->nfilters; i++) {
        const char *v = a->filters[i].value;
        bool one = strstr(v, "..") || !strcmp(a->filters[i].field, "view");
        sp->field[i] = a->filters[i].field;
        for (const char *p = v; sp->nvals[i] < QUERY_MAX_COMBOS;) {
            size_t len = one ? strlen(p) : strcspn(p, ",");
            if (len || one)
                sp->vals[i][sp->nvals[i]++] = strndup(p, len);
            if (!p[len])
                break;
            p += len + 1;
        }
        if (sp->nvals[i] == 0)
            sp->vals[i][sp->nvals[i]++] = strdup("");
        *combos *= sp->nvals[i];
        if (*combos > QUERY_MAX_COMBOS) {
            fprintf(stderr, "crm %s: at most %d combinations of filter values\n", e->name,
                    QUERY_MAX_COMBOS);
            return false;
        }
    }
    sp->nf = a->nfilters;
    return true;
}

static void
s_split_free(s_split_t *sp)
{
    for (size_t i = 0; i < sp->nf; i++)
        for (size_t j = 0; j < sp->nvals[i]; j++)
            free(sp->vals[i][j]);
}

/* True if REC's FIELD holds VALUE (any value of a list; case aside; "me" is ME). */
static bool
s_holds(const crm_entity_t *e, const ProtobufCMessage *rec, const char *field, const char *value,
        const char *me)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    if (!fd)
        return false;
    if (!strcmp(value, "me") && (crm_entity_flags_of(e, fd) & (CRM_F_OWNER | CRM_F_USER)))
        value = me;
    char phone[24];
    if ((crm_entity_flags_of(e, fd) & CRM_F_PHONE) && crm_record_phone(value, phone))
        value = phone;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type == PROTOBUF_C_TYPE_STRING) {
        for (size_t i = 0; i < crm_record_count(rec, fd); i++)
            if (!strcasecmp(crm_record_str_at(rec, fd, i), value))
                return true;
        return false;
    }
    char *v = crm_record_format(rec, fd, false, false);
    bool same = !strcasecmp(v, value);
    free(v);
    return same;
}

/* A search's record against the filters: every filter, any of its values.
   Ranges and views are the server's (list) only. */
static bool
s_search_match(const crm_entity_t *e, const ProtobufCMessage *rec, const s_split_t *sp,
               const char *me)
{
    for (size_t i = 0; i < sp->nf; i++) {
        bool any = false;
        for (size_t j = 0; j < sp->nvals[i] && !any; j++)
            any = s_holds(e, rec, sp->field[i], sp->vals[i][j], me);
        if (!any)
            return false;
    }
    return true;
}

/* The caller's user name (for "me" in a search's filters). */
static void
s_whoami(conn_t *conn, char *out, size_t n)
{
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__Reply *reply = NULL;
    req.op = CRM__OP__OP_WHOAMI;
    snprintf(out, n, "%s", "");
    if (conn_call(conn, &req, &reply) == EXIT_OK && reply->body_case == CRM__REPLY__BODY_WHOAMI)
        snprintf(out, n, "%s", reply->whoami->user);
    conn_reply_free(&reply);
}

/* ==== Requests ==== */

/* One request: the filters of combination K (or none with NOFILTERS). */
static int
s_call(conn_t *conn, const crm_entity_t *e, Crm__Op op, const char *text, const s_split_t *sp,
       size_t k, bool count, const char *after, unsigned limit, Crm__Reply **reply)
{
    Crm__Filter f[ENTITY_MAX_ARGS], *fp[ENTITY_MAX_ARGS];
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    size_t nf = 0;
    for (size_t i = 0; sp && i < sp->nf; i++) {
        crm__filter__init(&f[nf]);
        f[nf].field = (char *)sp->field[i];
        f[nf].value = sp->vals[i][k % sp->nvals[i]];
        k /= sp->nvals[i];
        fp[nf] = &f[nf];
        nf++;
    }
    er.filters = fp;
    er.n_filters = nf;
    er.count = count;
    er.limit = limit;
    er.after = (char *)(after ? after : "");
    er.text = (char *)(text ? text : "");
    return entity_call(conn, op, e, &er, reply);
}

/* Every match of combination K after AFTER, up to MAX (0: all), added to OUT;
   *MORE if there were more. */
static int
s_gather(conn_t *conn, const crm_entity_t *e, Crm__Op op, const char *text, const s_split_t *sp,
         size_t k, const char *after, size_t max, const char *me, s_recs_t *out, bool *more)
{
    char cursor[32];
    size_t got = 0;
    int rc = EXIT_OK;
    bool search = op == CRM__OP__OP_ENTITY_SEARCH;
    snprintf(cursor, sizeof cursor, "%s", after ? after : "");
    *more = false;
    for (;;) {
        Crm__Reply *reply = NULL;
        unsigned page = QUERY_PAGE;
        if (max && !search && max - got + 1 < page)
            page = (unsigned)(max - got + 1); /* one more than needed: is there more? */
        if ((rc = s_call(conn, e, op, text, search ? NULL : sp, k, false, cursor, page,
                         &reply)) != EXIT_OK)
            return rc;
        for (size_t i = 0; i < entity_count(reply); i++) {
            ProtobufCMessage *rec = entity_record(e, reply, i);
            if (!rec)
                continue;
            if (search && !s_search_match(e, rec, sp, me)) {
                crm_proto_free(&rec);
                continue;
            }
            if (max && got == max) {
                *more = true;
                crm_proto_free(&rec);
                continue;
            }
            s_recs_add(out, rec);
            got++;
        }
        snprintf(cursor, sizeof cursor, "%s", reply->entity->next_after);
        conn_reply_free(&reply);
        if (!*cursor)
            break;
        if (max && got == max) {
            *more = true;
            break;
        }
    }
    return rc;
}

int
entity_query_gather(conn_t *conn, const crm_entity_t *e, entity_args_t *a,
                     ProtobufCMessage ***out, size_t *n)
{
    s_split_t sp;
    s_recs_t recs = {0};
    size_t combos;
    int rc = EXIT_OK;
    bool more = false;
    *out = NULL;
    *n = 0;
    if (!s_split(e, a, &sp, &combos)) {
        s_split_free(&sp);
        return EXIT_USAGE;
    }
    for (size_t k = 0; k < combos && rc == EXIT_OK; k++)
        rc = s_gather(conn, e, CRM__OP__OP_ENTITY_LIST, NULL, &sp, k, a->after, a->limit, "",
                      &recs, &more);
    s_split_free(&sp);
    if (rc != EXIT_OK) {
        s_recs_free(&recs);
        return rc;
    }
    s_recs_unique(e, &recs);
    while (a->limit && recs.n > a->limit)
        crm_proto_free(&recs.v[--recs.n]);
    *out = recs.v;
    *n = recs.n;
    return EXIT_OK;
}

/* ==== Sorting ==== */

/* A record with what it is sorted by, worked out once: numbers, money and times
   by value; text by its collation key (crm_collate_key: case and accents aside,
   Chinese in pinyin order) */
typedef struct {
    ProtobufCMessage *rec;
    uint64_t num;   /* its id, for ties */
    bool is_value;
    double value;
    char *key;
    size_t klen;
} s_sorted_t;

static int s_sort_dir;

static int
s_by_field(const void *pa, const void *pb)
{
    const s_sorted_t *a = pa, *b = pb;
    int c;
    if (a->is_value && b->is_value)
        c = a->value < b->value ? -1 : a->value > b->value;
    else {
        c = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);
        if (!c)
            c = a->klen < b->klen ? -1 : a->klen > b->klen;
    }
    if (c == 0) /* ties in id order */
        return a->num < b->num ? -1 : a->num > b->num;
    return c * s_sort_dir;
}

/* Order R's records by FD (DIR 1 ascending, -1 descending). */
static void
s_sort(const crm_entity_t *e, s_recs_t *r, const ProtobufCFieldDescriptor *fd, int dir)
{
    crm_collator_t *coll = crm_collator_new();
    s_sorted_t *v = calloc(r->n, sizeof *v);
    CRM_ASSERT_ALLOC(v);
    for (size_t i = 0; i < r->n; i++) {
        v[i].rec = r->v[i];
        v[i].num = s_num(e, r->v[i]);
        char *x = crm_record_format(r->v[i], fd, false, false), *end;
        /* times as milliseconds, numbers as numbers, money by its amount */
        v[i].value = strtod(x, &end);
        v[i].is_value = end != x && fd->type != PROTOBUF_C_TYPE_STRING;
        if (coll) {
            v[i].key = crm_collate_key(coll, x, &v[i].klen);
            free(x);
        } else { /* no GB18030 converter here: by its bytes */
            v[i].key = x;
            v[i].klen = strlen(x);
        }
    }
    s_sort_dir = dir;
    qsort(v, r->n, sizeof *v, s_by_field);
    for (size_t i = 0; i < r->n; i++) {
        r->v[i] = v[i].rec;
        free(v[i].key);
    }
    free(v);
    crm_collator_free(&coll);
}

/* ==== The command ==== */

int
entity_query(cli_ctx_t *ctx, const crm_entity_t *e, Crm__Op op, const char *text,
             entity_args_t *a)
{
    conn_t *conn = NULL;
    s_split_t sp;
    s_recs_t recs = {0};
    size_t combos;
    char me[80] = "", next[32] = "";
    bool search = op == CRM__OP__OP_ENTITY_SEARCH;
    if (!s_split(e, a, &sp, &combos)) {
        s_split_free(&sp);
        return EXIT_USAGE;
    }
    if (a->sort && a->after) {
        fprintf(stderr, "crm %s: --sort orders every match; page with --limit, not --after\n",
                e->name);
        s_split_free(&sp);
        return EXIT_USAGE;
    }
    int rc = conn_open(ctx, &conn);
    if (rc != EXIT_OK)
        goto cleanup;
    if (a->count && combos == 1 && !search) { /* the server counts from its indexes */
        Crm__Reply *reply = NULL;
        if ((rc = s_call(conn, e, op, text, &sp, 0, true, NULL, 0, &reply)) == EXIT_OK) {
            if (ctx->json)
                printf("{\"count\":%llu}\n", (unsigned long long)reply->entity->count);
            else
                printf("%llu\n", (unsigned long long)reply->entity->count);
        }
        conn_reply_free(&reply);
        goto cleanup;
    }
    if (search && sp.nf)
        s_whoami(conn, me, sizeof me);
    size_t limit = a->limit ? a->limit : QUERY_DEFAULT_LIMIT;
    size_t max = a->count ? 0 : a->sort ? QUERY_SORT_MAX : limit;
    bool more = false;
    for (size_t k = 0; k < (search ? 1 : combos) && rc == EXIT_OK; k++) {
        bool m = false;
        rc = s_gather(conn, e, op, text, &sp, k, a->after, max, me, &recs, &m);
        more = more || m;
    }
    if (rc != EXIT_OK)
        goto cleanup;
    s_recs_unique(e, &recs);
    if (a->count) {
        if (ctx->json)
            printf("{\"count\":%zu}\n", recs.n);
        else
            printf("%zu\n", recs.n);
        goto cleanup;
    }
    if (a->sort) {
        if (more) {
            fprintf(stderr, "crm %s: more than %d matches to sort: narrow the filters\n", e->name,
                    QUERY_SORT_MAX);
            rc = EXIT_USAGE;
            goto cleanup;
        }
        const char *by = a->sort + (a->sort[0] == '-');
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, by);
        if (!fd) { /* the singular of a list */
            char plural[64];
            snprintf(plural, sizeof plural, "%ss", by);
            fd = crm_record_field(e->desc, plural);
        }
        if (fd && recs.n > 1)
            s_sort(e, &recs, fd, a->sort[0] == '-' ? -1 : 1);
        if (recs.n > limit)
            fprintf(stderr, "(%zu matches; the first %zu shown: --limit N for more)\n", recs.n,
                    limit);
    } else if (recs.n > limit || more) {
        /* the union's next page starts after the last id shown */
        size_t last = recs.n > limit ? limit : recs.n;
        if (last)
            snprintf(next, sizeof next, "%s", crm_record_get_str(recs.v[last - 1], "id"));
    }
    entity_print_records(ctx, e, recs.v, recs.n > limit ? limit : recs.n, next);
cleanup:
    s_recs_free(&recs);
    s_split_free(&sp);
    conn_destroy(&conn);
    return rc;
}
