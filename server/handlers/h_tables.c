/*  =========================================================================
    h_tables - `crm report summary|pipeline|sales|tickets|satisfaction|
    value|activity`: one engine, a table of reports

    Each report is a row of s_tables: the kind it reads, the date field that
    --since/--until select on, what the rows are by default (--by), its
    columns, and two small functions - ADD one record to its row, FINISH a
    row into its column values. The engine does the rest the same way for
    all: the deferral to the worker thread (the scan runs there, on one
    snapshot, never on the server thread), the caller's scope (every record
    judged by authz_record() as reads are), the aggregate for marketing of
    kinds it cannot read record by record (SPEC §4: a row of fewer than
    AGGREGATE_MIN records shows no figures), the grouping (--by month, a
    field of the record, or of its customer: region, industry, owner), the
    row limit and the reply.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authz.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"
#include "crm_time.h"
#include "derive.h"
#include "dispatch.h"
#include "records.h"

#define AGGREGATE_MIN 3       /* as in h_report.c: fewer records in a row: no figures */
#define ROWS_MAX 200          /* distinct keys; the rest are counted under "(other)" */
#define READ_MAX 20000000ULL  /* records one report may read (a bound, not a target) */
#define COLS_MAX 16
#define PAGE 1000

typedef struct {
    char key[64];
    int sort;           /* enum order (or 0: by key) */
    char *ckey;         /* the key's collation key (crm_collate_key), or NULL: by its bytes */
    size_t cklen;
    uint64_t n;         /* records counted in the row */
    int64_t acc[COLS_MAX];
    bool overflow;      /* a sum in acc went past INT64 (s_acc): the report is refused */
    int64_t *samples[2]; /* durations, for percentiles */
    size_t nsamples[2], capsamples[2];
    uint64_t *custs;     /* customer numbers, for distinct and repeat counts */
    size_t ncusts, capcusts;
    int64_t values[COLS_MAX];
    protobuf_c_boolean empty[COLS_MAX];
} s_row_t;

typedef struct {
    const char *name, *unit;
} s_col_t;

struct s_table;
typedef struct {
    const struct s_table *t;
    const crm_entity_t *e;
    int64_t now;
    size_t ncols;
    s_col_t cols[COLS_MAX];
    const ProtobufCEnumDescriptor *split; /* a column per value of this enum */
} s_run_t;

typedef struct s_table {
    const char *name, *kind, *date_field, *default_by, *split_field;
    bool aggregate_ok; /* marketing may see it in aggregate */
    s_col_t cols[COLS_MAX];
    void (*add)(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec);
    void (*finish)(const s_run_t *run, s_row_t *row);
} s_table_t;

/* ==== helpers for the rows ==== */

static void
s_sample(s_row_t *row, int which, int64_t v)
{
    if (row->nsamples[which] == row->capsamples[which]) {
        row->capsamples[which] = row->capsamples[which] ? row->capsamples[which] * 2 : 64;
        row->samples[which] =
            realloc(row->samples[which], row->capsamples[which] * sizeof *row->samples[which]);
        CRM_ASSERT_ALLOC(row->samples[which]);
    }
    row->samples[which][row->nsamples[which]++] = v;
}

static void
s_customer(s_row_t *row, const char *id)
{
    uint64_t num = crm_entity_parse_id(crm_entity_by_name("customer"), id);
    if (!num)
        return;
    if (row->ncusts == row->capcusts) {
        row->capcusts = row->capcusts ? row->capcusts * 2 : 64;
        row->custs = realloc(row->custs, row->capcusts * sizeof *row->custs);
        CRM_ASSERT_ALLOC(row->custs);
    }
    row->custs[row->ncusts++] = num;
}

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The P-th percentile (nearest rank) of samples WHICH into column COL. */
static void
s_percentile(s_row_t *row, int which, int p, size_t col)
{
    size_t n = row->nsamples[which];
    if (!n) {
        row->empty[col] = true;
        return;
    }
    qsort(row->samples[which], n, sizeof *row->samples[which], s_cmp_i64);
    size_t rank = (size_t)((p * n + 99) / 100);
    row->values[col] = row->samples[which][rank ? rank - 1 : 0];
}

/* Distinct customers, and how many of them appear at least twice. */
static void
s_distinct(s_row_t *row, uint64_t *distinct, uint64_t *repeat)
{
    *distinct = *repeat = 0;
    if (row->ncusts)
        qsort(row->custs, row->ncusts, sizeof *row->custs, s_cmp_u64);
    for (size_t i = 0; i < row->ncusts;) {
        size_t j = i;
        while (j < row->ncusts && row->custs[j] == row->custs[i])
            j++;
        (*distinct)++;
        *repeat += j - i >= 2;
        i = j;
    }
}

/* A / B in hundredths (a percent or a score), or empty when B is 0. */
static void
s_ratio(s_row_t *row, size_t col, int64_t a, int64_t b, int64_t scale)
{
    if (!b)
        row->empty[col] = true;
    else
        row->values[col] = (a * scale * 100 + b / 2) / b;
}

/* A / B rounded (an average in A's unit), or empty when B is 0. */
static void
s_avg(s_row_t *row, size_t col, int64_t a, int64_t b)
{
    if (!b)
        row->empty[col] = true;
    else
        row->values[col] = (a >= 0 ? a + b / 2 : a - b / 2) / b;
}

static int64_t
s_money(const Crm__Money *m)
{
    return m ? m->minor : 0;
}

/* Add V to ROW's column COL; a sum past what 64 bits hold marks the row (one order
   may be up to 10^17 minor units, so 93 of them already are) */
static void
s_acc(s_row_t *row, size_t col, int64_t v)
{
    if (__builtin_add_overflow(row->acc[col], v, &row->acc[col]))
        row->overflow = true;
}

/* ==== the reports ==== */

/* summary: new customers, by stage unless --by, a column per source */
static void
s_summary_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    const Crm__Customer *c = (const Crm__Customer *)rec;
    row->acc[0]++; /* column i > 0 is the enum's value i */
    if (c->source > 0 && (size_t)c->source < run->split->n_values)
        row->acc[c->source]++;
}

static void
s_copy_finish(const s_run_t *run, s_row_t *row)
{
    for (size_t i = 0; i < run->ncols; i++)
        row->values[i] = row->acc[i];
}

/* activity: activities per user (author), a column per type */
static void
s_activity_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    const Crm__Activity *a = (const Crm__Activity *)rec;
    row->acc[0]++;
    if (a->type > 0 && (size_t)a->type < run->split->n_values)
        row->acc[a->type]++;
}

/* sales: orders, revenue (less refunds), AOV, buyers, orders per buyer,
   buyers who ordered again within the period */
static void
s_sales_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    (void)run;
    const Crm__Order *o = (const Crm__Order *)rec;
    row->acc[0]++;
    s_acc(row, 1, s_money(o->total) - s_money(o->refunded));
    s_customer(row, o->customer_id);
}

static void
s_sales_finish(const s_run_t *run, s_row_t *row)
{
    (void)run;
    uint64_t buyers, repeat;
    s_distinct(row, &buyers, &repeat);
    row->values[0] = row->acc[0];
    row->values[1] = row->acc[1];
    s_avg(row, 2, row->acc[1], row->acc[0]);
    row->values[3] = (int64_t)buyers;
    s_ratio(row, 4, row->acc[0], (int64_t)buyers, 1);
    s_ratio(row, 5, (int64_t)repeat, (int64_t)buyers, 100);
}

/* pipeline: deals, amount, weighted amount, won, lost, win rate */
static void
s_pipeline_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    (void)run;
    const Crm__Deal *d = (const Crm__Deal *)rec;
    int64_t amount = s_money(d->amount);
    row->acc[0]++;
    s_acc(row, 1, amount);
    s_acc(row, 2, amount / 100 * (int64_t)d->probability +
                      amount % 100 * (int64_t)d->probability / 100);
    row->acc[3] += d->stage == CRM__DEAL_STAGE__WON;
    row->acc[4] += d->stage == CRM__DEAL_STAGE__LOST;
}

static void
s_pipeline_finish(const s_run_t *run, s_row_t *row)
{
    (void)run;
    for (size_t i = 0; i < 5; i++)
        row->values[i] = row->acc[i];
    s_ratio(row, 5, row->acc[3], row->acc[3] + row->acc[4], 100);
}

/* tickets: opened, resolved, breached, first response and resolution p50/p90 */
static void
s_tickets_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    (void)run;
    const Crm__Ticket *t = (const Crm__Ticket *)rec;
    row->acc[0]++;
    row->acc[1] += t->resolved_at > 0;
    row->acc[2] += t->response_breached || t->resolution_breached;
    if (t->first_response_at > 0 && t->first_response_at >= t->opened_at)
        s_sample(row, 0, t->first_response_at - t->opened_at);
    if (t->resolved_at > 0 && t->resolved_at >= t->opened_at)
        s_sample(row, 1, t->resolved_at - t->opened_at);
}

static void
s_tickets_finish(const s_run_t *run, s_row_t *row)
{
    (void)run;
    for (size_t i = 0; i < 3; i++)
        row->values[i] = row->acc[i];
    s_percentile(row, 0, 50, 3);
    s_percentile(row, 0, 90, 4);
    s_percentile(row, 1, 50, 5);
    s_percentile(row, 1, 90, 6);
}

/* satisfaction: responses, CSAT average, NPS (promoters - detractors) */
static void
s_satisfaction_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    (void)run;
    const Crm__Feedback *f = (const Crm__Feedback *)rec;
    row->acc[0]++;
    if (f->score_kind == CRM__SCORE_KIND__CSAT) {
        row->acc[1]++;
        row->acc[2] += f->score;
    } else if (f->score_kind == CRM__SCORE_KIND__NPS) {
        row->acc[3]++;
        row->acc[4] += (f->score >= 9) - (f->score <= 6);
    }
}

static void
s_satisfaction_finish(const s_run_t *run, s_row_t *row)
{
    (void)run;
    row->values[0] = row->acc[0];
    row->values[1] = row->acc[1];
    s_ratio(row, 2, row->acc[2], row->acc[1], 1);
    row->values[3] = row->acc[3];
    s_ratio(row, 4, row->acc[4], row->acc[3], 100);
}

/* value: customers by tier (the RFM rules' verdict): buyers, spend, spend
   per buyer, orders per buyer, time since the last order (average) */
static void
s_value_add(const s_run_t *run, s_row_t *row, const ProtobufCMessage *rec)
{
    const Crm__Customer *c = (const Crm__Customer *)rec;
    row->acc[0]++;
    if (c->order_count > 0) {
        row->acc[1]++;
        s_acc(row, 2, s_money(c->total_spend));
        s_acc(row, 3, (int64_t)c->order_count);
        if (c->last_order_at > 0 && c->last_order_at <= run->now)
            s_acc(row, 4, run->now - c->last_order_at);
    }
}

static void
s_value_finish(const s_run_t *run, s_row_t *row)
{
    (void)run;
    row->values[0] = row->acc[0];
    row->values[1] = row->acc[1];
    row->values[2] = row->acc[2];
    s_avg(row, 3, row->acc[2], row->acc[1]);
    s_ratio(row, 4, row->acc[3], row->acc[1], 1);
    s_avg(row, 5, row->acc[4], row->acc[1]);
}

static const s_table_t s_tables[] = {
    {"summary", "customer", "created_at", "stage", "source", false,
     {{"new", "count"}},
     s_summary_add, s_copy_finish},
    {"pipeline", "deal", "created_at", "stage", NULL, true,
     {{"deals", "count"}, {"amount", "money"}, {"weighted", "money"}, {"won", "count"},
      {"lost", "count"}, {"win rate", "percent"}},
     s_pipeline_add, s_pipeline_finish},
    {"sales", "order", "ordered_at", "month", NULL, true,
     {{"orders", "count"}, {"revenue", "money"}, {"aov", "money"}, {"buyers", "count"},
      {"orders/buyer", "score"}, {"repeat", "percent"}},
     s_sales_add, s_sales_finish},
    {"tickets", "ticket", "opened_at", "month", NULL, false,
     {{"opened", "count"}, {"resolved", "count"}, {"breached", "count"},
      {"response p50", "ms"}, {"response p90", "ms"}, {"resolution p50", "ms"},
      {"resolution p90", "ms"}},
     s_tickets_add, s_tickets_finish},
    {"satisfaction", "feedback", "created_at", "month", NULL, false,
     {{"responses", "count"}, {"csat n", "count"}, {"csat", "score"}, {"nps n", "count"},
      {"nps", "percent"}},
     s_satisfaction_add, s_satisfaction_finish},
    {"value", "customer", "created_at", "tier", NULL, false,
     {{"customers", "count"}, {"buyers", "count"}, {"spend", "money"}, {"spend/buyer", "money"},
      {"orders/buyer", "score"}, {"since last order", "ms"}},
     s_value_add, s_value_finish},
    {"activity", "activity", "occurred_at", "author", "type", false,
     {{"total", "count"}},
     s_activity_add, s_copy_finish},
};

/* ==== the engine ==== */

/* The report for NAME; NULL if there is none. */
static const s_table_t *
s_table(const char *name)
{
    for (size_t i = 0; i < sizeof s_tables / sizeof s_tables[0]; i++)
        if (!strcmp(s_tables[i].name, name))
            return &s_tables[i];
    return NULL;
}

bool
report_table_is(const Crm__ReportRequest *r)
{
    if (!s_table(r->name))
        return false;
    /* `crm pipeline` and `crm feedback summary` keep their own shape */
    if (!strcmp(r->name, "pipeline") || !strcmp(r->name, "satisfaction")) {
        for (size_t i = 0; i < r->n_filters; i++)
            if (!strcmp(r->filters[i]->field, "table"))
                return true;
        return false;
    }
    return true;
}

/* What to group by. */
typedef struct {
    bool month;
    int64_t offset_ms;                  /* months in the caller's zone: its offset from UTC */
    const ProtobufCFieldDescriptor *fd; /* on the record ... */
    bool on_customer;                   /* ... or on its customer */
    const char *name;
} s_by_t;

static crm_err_t
s_by_parse(req_ctx_t *ctx, const crm_entity_t *e, const char *by, s_by_t *out)
{
    memset(out, 0, sizeof *out);
    out->name = by;
    if (!strcmp(by, "month"))
        return (out->month = true, CRM_OK);
    const char *field = !strcmp(by, "region") ? "province" : by;
    const crm_entity_t *ce = crm_entity_by_name("customer");
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    if (!fd && !strcmp(by, "owner"))
        fd = crm_record_field(e->desc, "assignee"); /* a ticket's or task's owner */
    if (!fd && !strcmp(by, "owner"))
        fd = crm_record_field(e->desc, "author");
    if (!fd && e != ce && crm_record_field(e->desc, "customer_id")) {
        fd = crm_record_field(ce->desc, field);
        out->on_customer = fd != NULL;
    }
    bool groupable = fd && fd->label != PROTOBUF_C_LABEL_REPEATED &&
                     (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_ENUM ||
                      fd->type == PROTOBUF_C_TYPE_BOOL);
    /* grouping by a field the caller may see masked would show it */
    if (groupable && authz_masks(ctx->session.user, out->on_customer ? ce : e, fd->name))
        groupable = false;
    if (!groupable || !strcmp(fd->name, "id") || !strcmp(fd->name, "customer_id"))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                              "a %s report cannot be grouped by '%.40s': use month, owner, "
                              "region, industry, or a field such as stage",
                              e->name, by);
    out->fd = fd;
    return CRM_OK;
}

/* The row key of REC (its customer CUST, when grouped by a customer field). */
static void
s_key(const s_by_t *by, const s_table_t *t, const ProtobufCMessage *rec,
      const ProtobufCMessage *cust, char out[64], int *sort)
{
    *sort = 0;
    if (by->month) {
        char when[32];
        crm_record_format_time(crm_record_get_i64(rec, t->date_field) + by->offset_ms, when);
        snprintf(out, 64, "%.7s", when);
        return;
    }
    const ProtobufCMessage *m = by->on_customer ? cust : rec;
    if (!m) {
        snprintf(out, 64, "(none)");
        *sort = 1 << 30;
        return;
    }
    const char *p = (const char *)m + by->fd->offset;
    if (by->fd->type == PROTOBUF_C_TYPE_ENUM) {
        int v = *(const int *)p;
        crm_record_enum_name(by->fd->descriptor, v, out, 64);
        *sort = v ? v : 1 << 30;
    } else if (by->fd->type == PROTOBUF_C_TYPE_BOOL) {
        snprintf(out, 64, "%s", *(const protobuf_c_boolean *)p ? "yes" : "no");
    } else {
        snprintf(out, 64, "%.63s", *(const char *const *)p);
    }
    if (!*out) {
        snprintf(out, 64, "(none)");
        *sort = 1 << 30;
    }
}

static int
s_cmp_row(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (x->sort != y->sort)
        return x->sort < y->sort ? -1 : 1;
    if (!x->ckey || !y->ckey)
        return strcmp(x->key, y->key);
    int c = memcmp(x->ckey, y->ckey, x->cklen < y->cklen ? x->cklen : y->cklen);
    return c ? c : x->cklen < y->cklen ? -1 : x->cklen > y->cklen ? 1 : strcmp(x->key, y->key);
}

/* since/until on the report's date field; a date as "until" means its whole day */
static crm_err_t
s_period(req_ctx_t *ctx, const s_table_t *t, const crm_entity_t *e, const Crm__ReportRequest *r,
         int64_t *since, int64_t *until, const char **by, int64_t *offset_ms)
{
    *since = INT64_MIN;
    *until = INT64_MAX;
    *by = t->default_by;
    *offset_ms = 0;
    for (size_t i = 0; i < r->n_filters; i++) {
        const char *f = r->filters[i]->field, *v = r->filters[i]->value;
        if (!strcmp(f, "by")) {
            *by = v;
            continue;
        }
        if (!strcmp(f, "table"))
            continue;
        if (!strcmp(f, "utc_offset")) { /* minutes east of UTC: crm sends its user's */
            char *end = NULL;
            long m = strtol(v, &end, 10);
            if (!*v || *end || m < -14 * 60 || m > 14 * 60)
                return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                      "utc_offset '%.20s': minutes east of UTC, -840 to 840", v);
            *offset_ms = (int64_t)m * 60000;
            continue;
        }
        bool is_since = !strcmp(f, "since");
        if (!is_since && strcmp(f, "until"))
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "a report takes since, until, by and utc_offset, not '%.40s'",
                                  f);
        ProtobufCMessage *tmp = crm_proto_new(e->desc);
        crm_err_t rc = crm_record_set_text(tmp, crm_record_field(e->desc, t->date_field), v,
                                           true, ctx->errbuf);
        int64_t ms = crm_record_get_i64(tmp, t->date_field);
        crm_proto_free(&tmp);
        if (rc != CRM_OK)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "--%s '%.40s': give a date (2026-11-01) or a time", f, v);
        if (is_since)
            *since = ms;
        else
            *until = ms + (strlen(v) == 10 ? 86400000 - 1 : 0);
    }
    return CRM_OK;
}

/* One scan of a report: what each record is judged and grouped by. */
typedef struct {
    req_ctx_t *ctx;
    const s_table_t *t;
    const s_run_t *run;
    const s_by_t *by;
    const crm_entity_t *e, *ce;
    int64_t since, until;
    bool aggregate;
    s_row_t *rows; /* ROWS_MAX keys, then "(other)" */
    size_t nrows;
    ProtobufCMessage *cust; /* the customer of the last record, when grouping by its fields */
    uint64_t cust_num;
    uint64_t seen;
} s_scan_t;

static bool
s_visit(uint64_t num, ProtobufCMessage *m, void *arg)
{
    s_scan_t *sc = arg;
    char errbuf[CRM_ERRBUF];
    (void)num;
    if (++sc->seen > READ_MAX)
        return false;
    int64_t when = crm_record_get_i64(m, sc->t->date_field);
    if (when < sc->since || when > sc->until ||
        (!sc->aggregate && authz_record(sc->ctx->session.user, sc->e, AUTHZ_READ, m, NULL, NULL,
                                        0, errbuf) != CRM_OK))
        return true;
    if (sc->by->on_customer) { /* its customer, read again only when it changes */
        uint64_t cn = crm_entity_parse_id(sc->ce, crm_record_get_str(m, "customer_id"));
        if (cn != sc->cust_num) {
            crm_proto_free(&sc->cust);
            sc->cust_num = cn;
            if (records_get(sc->ctx->env->store, sc->ce, cn, &sc->cust) != CRM_OK)
                sc->cust = NULL;
        }
    }
    char key[64];
    int sort;
    s_key(sc->by, sc->t, m, sc->cust, key, &sort);
    s_row_t *rows = sc->rows;
    size_t k = 0;
    while (k < sc->nrows && strcmp(rows[k].key, key))
        k++;
    if (k == sc->nrows && sc->nrows < ROWS_MAX) {
        snprintf(rows[k].key, sizeof rows[k].key, "%s", key);
        rows[sc->nrows++].sort = sort;
    } else if (k == sc->nrows) { /* past ROWS_MAX keys: "(other)" */
        k = ROWS_MAX;
        snprintf(rows[k].key, sizeof rows[k].key, "(other)");
        rows[k].sort = 1 << 30;
    }
    rows[k].n++;
    sc->t->add(sc->run, &rows[k], m);
    return true;
}

/* Run report T for the caller: on the server thread this checks and defers;
   on the worker it reads and answers. */
static crm_err_t
s_run(req_ctx_t *ctx, const s_table_t *t, const Crm__ReportRequest *r)
{
    const Crm__User *u = ctx->session.user;
    const crm_entity_t *e = crm_entity_by_name(t->kind);
    const crm_entity_t *ce = crm_entity_by_name("customer");
    char action[48];
    snprintf(action, sizeof action, "report %s", t->name);
    crm_err_t rc = authz_kind(u, e, AUTHZ_READ, ctx->errbuf);
    bool aggregate = rc != CRM_OK && t->aggregate_ok &&
                     u->department == CRM__DEPARTMENT__MARKETING;
    if (rc != CRM_OK && !aggregate)
        return dispatch_deny(ctx, e->name, "", action);
    int64_t since, until, offset_ms;
    const char *byname;
    s_by_t by;
    if ((rc = s_period(ctx, t, e, r, &since, &until, &byname, &offset_ms)) != CRM_OK ||
        (rc = s_by_parse(ctx, e, byname, &by)) != CRM_OK)
        return rc;
    by.offset_ms = offset_ms;
    if (by.on_customer && authz_kind(u, ce, AUTHZ_READ, ctx->errbuf) != CRM_OK)
        return dispatch_deny(ctx, ce->name, "", action);
    if (!ctx->env->worker)
        return dispatch_defer(ctx); /* the scan runs on the worker, on a snapshot */

    int64_t t0 = crm_time_mono_us();
    if (ctx->env->fault_slow_report) { /* a long report, for tests: the snapshot is taken */
        crm_log(CRM_LOG_INFO, "fault slow-report: the report's snapshot is taken; 1.5 s more");
        nanosleep(&(struct timespec){1, 500000000}, NULL);
    }
    s_run_t run = {t, e, crm_time_now_ms(), 0, {{0}}, NULL};
    for (const s_col_t *c = t->cols; c->name; c++)
        run.cols[run.ncols++] = *c;
    char *colnames = NULL;
    if (t->split_field) { /* a column per value of an enum: "call", "email"... */
        const ProtobufCFieldDescriptor *sf = crm_record_field(e->desc, t->split_field);
        run.split = sf->descriptor;
        colnames = dispatch_own(ctx, calloc(run.split->n_values, 32));
        for (unsigned i = 1; i < run.split->n_values && run.ncols < COLS_MAX; i++) {
            crm_record_enum_name(run.split, run.split->values[i].value, colnames + 32 * i, 32);
            run.cols[run.ncols].name = colnames + 32 * i;
            run.cols[run.ncols++].unit = "count";
        }
    }
    s_scan_t sc = {ctx, t, &run, &by, e, ce, since, until, aggregate, NULL, 0, NULL, 0, 0};
    sc.rows = calloc(ROWS_MAX + 1, sizeof *sc.rows);
    CRM_ASSERT_ALLOC(sc.rows);
    uint64_t read = 0;
    rc = records_each(ctx->env->store, e, s_visit, &sc, &read);
    crm_proto_free(&sc.cust);
    if (rc != CRM_OK)
        dispatch_error(ctx, rc, "cannot read the %s records", e->name);
    else if (read > READ_MAX)
        rc = dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                            "a report reads at most %llu records; narrow it with --since",
                            (unsigned long long)READ_MAX);
    s_row_t *rows = sc.rows;
    size_t nrows = sc.nrows;
    if (rows[ROWS_MAX].n)
        nrows++; /* "(other)" sits right after the last key when there are ROWS_MAX */
    for (size_t i = 0; rc == CRM_OK && i < nrows; i++)
        if (rows[i].overflow)
            rc = dispatch_error(ctx, CRM_ERR_OUT_OF_RANGE,
                                "a sum in row '%s' of this report is beyond what 64 bits hold "
                                "(about 92 quadrillion in minor units): narrow it with --since, "
                                "--until or --by",
                                rows[i].key);
    if (rc == CRM_OK) {
        /* rows by text as crm --sort orders it: Chinese in pinyin order (a collator
           of this call's own: iconv's state is not shared between threads) */
        crm_collator_t *coll = crm_collator_new();
        for (size_t i = 0; coll && i < nrows; i++)
            rows[i].ckey = crm_collate_key(coll, rows[i].key, &rows[i].cklen);
        crm_collator_free(&coll);
        qsort(rows, nrows, sizeof *rows, s_cmp_row);
        Crm__ReportRow *out = dispatch_own(ctx, calloc(nrows ? nrows : 1, sizeof *out));
        Crm__ReportRow **ptrs = dispatch_own(ctx, calloc(nrows ? nrows : 1, sizeof *ptrs));
        Crm__ReportColumn *cols = dispatch_own(ctx, calloc(run.ncols, sizeof *cols));
        Crm__ReportColumn **cptrs = dispatch_own(ctx, calloc(run.ncols, sizeof *cptrs));
        char *keys = dispatch_own(ctx, calloc(nrows ? nrows : 1, 80));
        int64_t *vals = dispatch_own(ctx, calloc((nrows ? nrows : 1) * run.ncols, sizeof *vals));
        protobuf_c_boolean *empty =
            dispatch_own(ctx, calloc((nrows ? nrows : 1) * run.ncols, sizeof *empty));
        for (size_t c = 0; c < run.ncols; c++) {
            crm__report_column__init(&cols[c]);
            cols[c].name = (char *)run.cols[c].name;
            cols[c].unit = (char *)run.cols[c].unit;
            cptrs[c] = &cols[c];
        }
        for (size_t i = 0; i < nrows; i++) {
            s_row_t *row = &rows[i];
            t->finish(&run, row);
            crm__report_row__init(&out[i]);
            bool hide = aggregate && row->n < AGGREGATE_MIN;
            snprintf(keys + 80 * i, 80, "%s", row->key);
            out[i].key = keys + 80 * i;
            out[i].count = hide ? 0 : row->n;
            out[i].suppressed = hide;
            out[i].n_values = out[i].n_empty = run.ncols;
            out[i].values = vals + run.ncols * i;
            out[i].empty = empty + run.ncols * i;
            for (size_t c = 0; c < run.ncols; c++) {
                out[i].values[c] = hide ? 0 : row->values[c];
                out[i].empty[c] = hide || row->empty[c];
            }
            ptrs[i] = &out[i];
        }
        Crm__ReportReply *rep = &ctx->body.report;
        crm__report_reply__init(rep);
        rep->name = (char *)t->name;
        rep->currency = (char *)ctx->env->rules->currency;
        rep->rows = ptrs;
        rep->n_rows = nrows;
        rep->columns = cptrs;
        rep->n_columns = run.ncols;
        rep->by = (char *)by.name;
        rep->aggregate = aggregate;
        rep->records = read;
        rep->as_of = store_view_seq();
        rep->millis = (crm_time_mono_us() - t0) / 1000;
        ctx->reply.body_case = CRM__REPLY__BODY_REPORT;
        ctx->reply.report = rep;
    }
    for (size_t i = 0; i <= ROWS_MAX; i++) {
        free(rows[i].samples[0]);
        free(rows[i].samples[1]);
        free(rows[i].custs);
        free(rows[i].ckey);
    }
    free(rows);
    return rc;
}

crm_err_t
report_table(req_ctx_t *ctx, const Crm__ReportRequest *r)
{
    return s_run(ctx, s_table(r->name), r);
}
