/*  =========================================================================
    h_report - aggregates for the caller's scope (`crm pipeline`) and the
    value sweep (`crm-admin sweep`)

    Reports read committed data only and judge every record they count with
    the same authz_record() as reads, so a report never counts a record its
    reader could not read. The sweep applies the time-based value rules
    (at-risk, churned) to one slice of customers per call, each changed
    customer as its own mutation through the normal write path (event,
    audit), so no call holds the server thread for long.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "bin.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "derive.h"
#include "dispatch.h"
#include "mutation.h"
#include "records.h"

#define AGGREGATE_MIN 3 /* fewer records than this in a row of an aggregate: no figures */
#define PIPELINE_MAX 50000 /* deals one pipeline report may read on the server thread */
#define PAGE 1000
#define SWEEP_DEFAULT 200
#define SWEEP_MAX 5000

/* `crm pipeline`: per deal stage, the count, the sum and the weighted sum of
   the amounts of the deals the caller may read. */
static crm_err_t
s_pipeline(req_ctx_t *ctx, const Crm__ReportRequest *r)
{
    const crm_entity_t *de = crm_entity_by_name("deal");
    const Crm__User *u = ctx->session.user;
    records_term_t terms[2];
    size_t nterms = 0;
    crm_err_t rc = authz_kind(u, de, AUTHZ_READ, ctx->errbuf);
    /* marketing reads no deal, but may see the pipeline in aggregate (SPEC §4): every
       deal counts, and a stage of fewer than AGGREGATE_MIN deals shows no figures, so
       no single deal's amount can be read off the report */
    bool aggregate = rc != CRM_OK && u->department == CRM__DEPARTMENT__MARKETING;
    if (rc != CRM_OK && !aggregate)
        return dispatch_deny(ctx, de->name, "", "report pipeline");
    rc = CRM_OK;
    for (size_t i = 0; i < r->n_filters && rc == CRM_OK; i++) {
        const char *v = r->filters[i]->value;
        if (strcmp(r->filters[i]->field, "owner") || nterms == 1)
            rc = dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                "the pipeline report filters on one 'owner' only");
        else
            rc = records_term(de, "owner", !strcmp(v, "me") ? u->name : v, &terms[nterms++],
                              ctx->errbuf);
    }
    if (rc == CRM_OK && !ctx->env->worker) { /* the deals are read on the worker thread */
        for (size_t i = 0; i < nterms; i++)
            records_term_release(&terms[i]);
        return dispatch_defer(ctx);
    }
    const ProtobufCEnumDescriptor *ed = &crm__deal_stage__descriptor;
    size_t nrows = ed->n_values - 1; /* every stage but NONE */
    Crm__ReportRow *rows = dispatch_own(ctx, calloc(nrows, sizeof *rows));
    Crm__ReportRow **ptrs = dispatch_own(ctx, calloc(nrows, sizeof *ptrs));
    char *names = dispatch_own(ctx, calloc(nrows, 32));
    for (size_t i = 0; i < nrows; i++) {
        crm__report_row__init(&rows[i]);
        crm_record_enum_name(ed, (int)(i + 1), names + 32 * i, 32);
        rows[i].key = names + 32 * i;
        ptrs[i] = &rows[i];
    }
    uint64_t ids[PAGE], after = 0;
    size_t n = 0, seen = 0;
    bool more = rc == CRM_OK;
    while (more && rc == CRM_OK) {
        rc = records_query(ctx->env->store, de, terms, nterms, after, PAGE, ids, &n, &more, NULL,
                           NULL);
        if (rc != CRM_OK) {
            dispatch_error(ctx, rc, "cannot read the deals");
            break;
        }
        if ((seen += n) > PIPELINE_MAX) {
            rc = dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                                "the pipeline report reads at most %d deals; narrow it with "
                                "--owner",
                                PIPELINE_MAX);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessage *m = NULL;
            char errbuf[CRM_ERRBUF];
            if (records_get(ctx->env->store, de, ids[i], &m) != CRM_OK)
                continue;
            const Crm__Deal *d = (const Crm__Deal *)m;
            if (d->stage >= 1 && (size_t)d->stage <= nrows &&
                (aggregate || authz_record(u, de, AUTHZ_READ, m, NULL, NULL, 0, errbuf) == CRM_OK)) {
                Crm__ReportRow *row = &rows[d->stage - 1];
                int64_t amount = d->amount ? d->amount->minor : 0;
                row->count++;
                if (rc == CRM_OK && (__builtin_add_overflow(row->sum, amount, &row->sum) ||
                    __builtin_add_overflow(row->weighted,
                                           amount / 100 * (int64_t)d->probability +
                                               amount % 100 * (int64_t)d->probability / 100,
                                           &row->weighted)))
                    rc = dispatch_error(ctx, CRM_ERR_OUT_OF_RANGE,
                                        "the deals' amount at stage '%s' is beyond what 64 bits "
                                        "hold (about 92 quadrillion in minor units): narrow it "
                                        "with --owner",
                                        row->key);
            }
            crm_proto_free(&m);
        }
        if (n)
            after = ids[n - 1];
    }
    for (size_t i = 0; i < nterms; i++)
        records_term_release(&terms[i]);
    if (rc != CRM_OK)
        return rc;
    for (size_t i = 0; aggregate && i < nrows; i++)
        if (rows[i].count > 0 && rows[i].count < AGGREGATE_MIN) {
            rows[i].count = 0;
            rows[i].sum = rows[i].weighted = 0;
            snprintf(names + 32 * i + strlen(names + 32 * i), 32 - strlen(names + 32 * i),
                     " (<%d)", AGGREGATE_MIN);
        }
    Crm__ReportReply *rep = &ctx->body.report;
    crm__report_reply__init(rep);
    rep->name = (char *)"pipeline";
    rep->currency = (char *)ctx->env->rules->currency;
    rep->rows = ptrs;
    rep->n_rows = nrows;
    ctx->reply.body_case = CRM__REPLY__BODY_REPORT;
    ctx->reply.report = rep;
    return CRM_OK;
}

/* `crm feedback summary`: CSAT (count and sum of scores) and NPS (promoters
   9-10, passives 7-8, detractors 0-6) over the feedback the caller may read,
   with since/until on when it was recorded. */
static crm_err_t
s_satisfaction(req_ctx_t *ctx, const Crm__ReportRequest *r)
{
    const crm_entity_t *fe = crm_entity_by_name("feedback");
    const Crm__User *u = ctx->session.user;
    int64_t since = 0, until = INT64_MAX;
    if (authz_kind(u, fe, AUTHZ_READ, ctx->errbuf) != CRM_OK)
        return dispatch_deny(ctx, fe->name, "", "report satisfaction");
    for (size_t i = 0; i < r->n_filters; i++) {
        Crm__Feedback tmp = CRM__FEEDBACK__INIT;
        const char *f = r->filters[i]->field;
        bool is_since = !strcmp(f, "since");
        if ((!is_since && strcmp(f, "until")) ||
            crm_record_set_text(&tmp.base, crm_record_field(fe->desc, "created_at"),
                                r->filters[i]->value, true, ctx->errbuf) != CRM_OK)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT,
                                  "the satisfaction report takes since and until dates");
        if (is_since)
            since = tmp.created_at;
        else /* a date means the whole day */
            until = tmp.created_at + (strlen(r->filters[i]->value) == 10 ? 86400000 - 1 : 0);
    }
    if (!ctx->env->worker) /* the feedback is read on the worker thread */
        return dispatch_defer(ctx);
    static const char *const keys[] = {"csat", "nps-promoters", "nps-passives", "nps-detractors"};
    Crm__ReportRow *rows = dispatch_own(ctx, calloc(4, sizeof *rows));
    Crm__ReportRow **ptrs = dispatch_own(ctx, calloc(4, sizeof *ptrs));
    for (size_t i = 0; i < 4; i++) {
        crm__report_row__init(&rows[i]);
        rows[i].key = (char *)keys[i];
        ptrs[i] = &rows[i];
    }
    uint64_t ids[PAGE], after = 0;
    size_t n = 0, seen = 0;
    bool more = true;
    crm_err_t rc = CRM_OK;
    while (more && rc == CRM_OK) {
        if ((rc = records_query(ctx->env->store, fe, NULL, 0, after, PAGE, ids, &n, &more, NULL,
                                NULL)) != CRM_OK)
            return dispatch_error(ctx, rc, "cannot read the feedback");
        if ((seen += n) > PIPELINE_MAX)
            return dispatch_error(ctx, CRM_ERR_RESOURCE_EXHAUSTED,
                                  "the satisfaction report reads at most %d records",
                                  PIPELINE_MAX);
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessage *m = NULL;
            char errbuf[CRM_ERRBUF];
            if (records_get(ctx->env->store, fe, ids[i], &m) != CRM_OK)
                continue;
            const Crm__Feedback *f = (const Crm__Feedback *)m;
            if (f->created_at >= since && f->created_at <= until &&
                authz_record(u, fe, AUTHZ_READ, m, NULL, NULL, 0, errbuf) == CRM_OK) {
                if (f->score_kind == CRM__SCORE_KIND__CSAT) {
                    rows[0].count++;
                    rows[0].sum += f->score;
                } else if (f->score_kind == CRM__SCORE_KIND__NPS) {
                    Crm__ReportRow *row = f->score >= 9 ? &rows[1] : f->score >= 7 ? &rows[2]
                                                                                     : &rows[3];
                    row->count++;
                    row->sum += f->score;
                }
            }
            crm_proto_free(&m);
        }
        if (n)
            after = ids[n - 1];
    }
    Crm__ReportReply *rep = &ctx->body.report;
    crm__report_reply__init(rep);
    rep->name = (char *)"satisfaction";
    rep->rows = ptrs;
    rep->n_rows = 4;
    ctx->reply.body_case = CRM__REPLY__BODY_REPORT;
    ctx->reply.report = rep;
    return CRM_OK;
}

#define DUPES_SCAN 20000 /* index entries one dupes call reads (a few ms) */
#define DUPES_BIN_SLICE 50 /* deleted customers one dupes call compares with the live ones */
#define DUPES_BIN_ROWS 8   /* groups one deleted customer may add */

/* what two customers share, from its index, and how likely that makes them one */
static const struct {
    const char *field;
    char tag;
    unsigned score;
} s_dupe_keys[] = {{"phones", 'p', 100}, {"emails", 'e', 90}, {"name and company", 'm', 70}};
enum { NKEYS = sizeof s_dupe_keys / sizeof s_dupe_keys[0] };

typedef struct {
    req_ctx_t *ctx;
    const crm_entity_t *ce;
    unsigned min_score;
    Crm__ReportRow **rows;
    size_t n;
    uint64_t last;
    crm_err_t rc;
} s_bin_dupes_t;

static Crm__ReportRow *
s_dupe_row(req_ctx_t *ctx, const char *ids, const char *field, size_t members, unsigned score)
{
    Crm__ReportRow *row = dispatch_own(ctx, malloc(sizeof *row));
    CRM_ASSERT_ALLOC(row);
    crm__report_row__init(row);
    char *text = dispatch_own(ctx, malloc(240));
    CRM_ASSERT_ALLOC(text);
    snprintf(text, 240, "%s same %s", ids, field);
    row->key = text;
    row->count = members;
    row->weighted = score; /* the group's score */
    return row;
}

/* A deleted (restorable) customer: the live customers that share a phone,
   an e-mail or name and company with it, found through those indexes. */
static bool
s_bin_dupes(uint64_t num, Crm__Binned *b, void *arg)
{
    s_bin_dupes_t *d = arg;
    ProtobufCMessage *rec = NULL;
    char errbuf[CRM_ERRBUF];
    d->last = num;
    if (crm_proto_unpack_wire(d->ce->desc, b->record.data, b->record.len, &rec, errbuf) != CRM_OK)
        return false;
    size_t added = 0;
    for (size_t k = 0; k < NKEYS && added < DUPES_BIN_ROWS && d->rc == CRM_OK; k++) {
        if (s_dupe_keys[k].score < d->min_score)
            continue;
        records_term_t terms[8];
        size_t nt = records_postings(d->ce, rec, s_dupe_keys[k].tag, terms, 8);
        for (size_t t = 0; t < nt; t++) {
            uint64_t ids[5];
            size_t n = 0;
            bool more = false;
            if (added < DUPES_BIN_ROWS && d->rc == CRM_OK)
                d->rc = records_query(d->ctx->env->store, d->ce, &terms[t], 1, 0, 5, ids, &n,
                                      &more, NULL, NULL);
            records_term_release(&terms[t]);
            if (!n || d->rc != CRM_OK)
                continue;
            char list[200];
            size_t used = 0;
            crm_entity_format_id(d->ce, num, list);
            used = strlen(list);
            used += (size_t)snprintf(list + used, sizeof list - used, " (deleted)");
            for (size_t i = 0; i < n && used + 26 < sizeof list; i++) {
                char id[24];
                crm_entity_format_id(d->ce, ids[i], id);
                used += (size_t)snprintf(list + used, sizeof list - used, ",%s", id);
            }
            d->rows[d->n++] = s_dupe_row(d->ctx, list, s_dupe_keys[k].field, n + 1,
                                         s_dupe_keys[k].score);
            added++;
        }
    }
    crm_proto_free(&rec);
    return false;
}

/* `crm customer dupes`: groups of customers that share a phone number or an
   e-mail address, read from those indexes a slice at a time (the "after"
   filter is the cursor), never from a scan of all pairs. For those who may
   merge (the right to delete customers). */
static crm_err_t
s_dupes(req_ctx_t *ctx, const Crm__ReportRequest *r)
{
    const crm_entity_t *ce = crm_entity_by_name("customer");
    if (authz_kind(ctx->session.user, ce, AUTHZ_DELETE, ctx->errbuf) != CRM_OK) {
        size_t n = strlen(ctx->errbuf);
        snprintf(ctx->errbuf + n, sizeof ctx->errbuf - n,
                 " (finding duplicates, like merging them, takes the right to delete customers)");
        return dispatch_deny(ctx, ce->name, "", "report dupes");
    }
    /* the cursor: index tag byte and the value after which to go on, hex-encoded */
    char after[1000] = "";
    size_t slice = DUPES_SCAN;
    unsigned min_score = 0;
    for (size_t i = 0; i < r->n_filters; i++) {
        if (!strcmp(r->filters[i]->field, "after"))
            snprintf(after, sizeof after, "%s", r->filters[i]->value);
        else if (!strcmp(r->filters[i]->field, "slice")) /* smaller slices, e.g. for tests */
            slice = (size_t)strtoul(r->filters[i]->value, NULL, 10);
        else if (!strcmp(r->filters[i]->field, "min_score"))
            min_score = (unsigned)strtoul(r->filters[i]->value, NULL, 10);
    }
    if (slice < 1 || slice > DUPES_SCAN)
        slice = DUPES_SCAN;
    size_t k = 0;
    char start[520];
    size_t slen = 0;
    uint64_t bin_after = 0;
    if (after[0] == 'b') { /* in the deleted customers, after this number */
        char *end = NULL;
        bin_after = strtoull(after + 1, &end, 10);
        if (end == after + 1 || *end)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "bad dupes cursor");
        k = NKEYS;
    } else if (*after) {
        for (k = 0; k < NKEYS && s_dupe_keys[k].tag != after[0]; k++)
            ;
        size_t hl = strlen(after + 1);
        if (k == NKEYS || hl % 2 || hl / 2 + 3 > sizeof start)
            return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "bad dupes cursor");
        start[0] = ce->prefix;
        start[1] = after[0];
        for (size_t i = 0; i < hl / 2; i++) {
            unsigned v;
            if (sscanf(after + 1 + 2 * i, "%2x", &v) != 1)
                return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "bad dupes cursor");
            start[2 + i] = (char)v;
        }
        start[2 + hl / 2] = 1; /* past every id of that value: 0x00 ends a value */
        slen = 3 + hl / 2;
    }
    size_t cap = 64, nrows = 0, read = 0;
    Crm__ReportRow **ptrs =
        dispatch_own(ctx, calloc(cap + DUPES_BIN_SLICE * DUPES_BIN_ROWS, sizeof *ptrs));
    char *next = NULL;
    for (; k < NKEYS && !next; k++, slen = 0) {
        if (s_dupe_keys[k].score < min_score)
            continue;
        if (!slen) {
            start[0] = ce->prefix;
            start[1] = s_dupe_keys[k].tag;
            slen = 2;
        }
        store_iter_t *it = store_iter_new(ctx->env->store, STORE_CF_INDEXES);
        char value[520] = "", ids[160] = "";
        size_t vlen = 0, members = 0, used = 0;
        for (store_iter_seek(it, start, slen);; store_iter_next(it)) {
            size_t klen = 0;
            const char *key = store_iter_valid(it) ? store_iter_key(it, &klen) : NULL;
            bool same = key && klen > 11 && key[0] == ce->prefix && key[1] == s_dupe_keys[k].tag;
            size_t kv = same ? klen - 11 : 0;
            if (!same || kv != vlen || memcmp(key + 2, value, vlen)) {
                if (members > 1 && nrows < cap) /* the group that just ended */
                    ptrs[nrows++] =
                        s_dupe_row(ctx, ids, s_dupe_keys[k].field, members, s_dupe_keys[k].score);
                if (!same)
                    break;
                if (read >= slice || nrows == cap) { /* enough for one call: go on later */
                    next = dispatch_own(ctx, malloc(2 + 2 * vlen + 1));
                    next[0] = s_dupe_keys[k].tag;
                    for (size_t i = 0; i < vlen; i++)
                        snprintf(next + 1 + 2 * i, 3, "%02x", (unsigned char)value[i]);
                    next[1 + 2 * vlen] = '\0';
                    break;
                }
                vlen = kv < sizeof value ? kv : sizeof value - 1;
                memcpy(value, key + 2, vlen);
                members = 0;
                used = 0;
                ids[0] = '\0';
            }
            char id[24];
            crm_entity_format_id(ce, store_get_be64((const uint8_t *)key + klen - 8), id);
            if (used + 26 < sizeof ids)
                used += (size_t)snprintf(ids + used, sizeof ids - used, "%s%s", used ? "," : "",
                                         id);
            members++;
            read++;
        }
        store_iter_destroy(&it);
    }
    if (!next) { /* then the deleted customers that can still be restored */
        s_bin_dupes_t d = {ctx, ce, min_score, ptrs + nrows, 0, 0, CRM_OK};
        bool more = false;
        crm_err_t rc = bin_each(ctx->env->store, ce, bin_after, DUPES_BIN_SLICE, s_bin_dupes, &d,
                                &more);
        if (rc == CRM_OK)
            rc = d.rc;
        if (rc != CRM_OK)
            return dispatch_error(ctx, rc, "cannot compare the recycle bin");
        nrows += d.n;
        if (more) {
            next = dispatch_own(ctx, malloc(24));
            snprintf(next, 24, "b%llu", (unsigned long long)d.last);
        }
    }
    Crm__ReportReply *rep = &ctx->body.report;
    crm__report_reply__init(rep);
    rep->name = (char *)"dupes";
    rep->rows = ptrs;
    rep->n_rows = nrows;
    rep->next = next ? next : (char *)"";
    ctx->reply.body_case = CRM__REPLY__BODY_REPORT;
    ctx->reply.report = rep;
    return CRM_OK;
}

crm_err_t
h_report(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_REPORT)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no report");
    const Crm__ReportRequest *r = ctx->req->report;
    if (report_table_is(r))
        return report_table(ctx, r);
    if (!strcmp(r->name, "pipeline"))
        return s_pipeline(ctx, r);
    if (!strcmp(r->name, "satisfaction"))
        return s_satisfaction(ctx, r);
    if (!strcmp(r->name, "dupes"))
        return s_dupes(ctx, r);
    return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "unknown report '%.40s' (reports: %s)",
                          r->name, "pipeline, satisfaction, dupes");
}

/* Apply the time rules to one record as of DC->now: a customer's value, a
   ticket's service levels. *CHANGED gets whether NEXT now differs. */
static crm_err_t
s_sweep_one(const derive_ctx_t *dc, const crm_entity_t *e, ProtobufCMessage *next,
            char *errbuf)
{
    if (!strcmp(e->name, "customer"))
        return derive_customer(dc, (Crm__Customer *)next, errbuf);
    derive_ticket_breaches((Crm__Ticket *)next, dc->now);
    return CRM_OK;
}

crm_err_t
sweep_slice(const dispatch_env_t *env, const Crm__User *actor, int64_t as_of, char kind,
            uint64_t after, uint64_t until, size_t limit, bool preview, sweep_result_t *out,
            char *errbuf)
{
    const crm_entity_t *e = crm_entity_by_prefix(kind);
    CRM_ASSERT(e && (!strcmp(e->name, "customer") || !strcmp(e->name, "ticket")));
    derive_ctx_t dc = {
        .store = env->store, .g = env->group, .rules = env->rules, .actor = actor, .now = as_of};
    char reason[64], when[32];
    crm_record_format_time(as_of, when);
    snprintf(reason, sizeof reason, "sweep as of %s", when);
    uint64_t *ids = malloc((limit ? limit : 1) * sizeof *ids);
    CRM_ASSERT_ALLOC(ids);
    size_t n = 0;
    bool more = false;
    memset(out, 0, sizeof *out);
    crm_err_t rc = records_query(env->store, e, NULL, 0, after, limit, ids, &n, &more, NULL, NULL);
    if (rc != CRM_OK)
        snprintf(errbuf, CRM_ERRBUF, "cannot list the %s records to sweep", e->name);
    for (size_t i = 0; rc == CRM_OK && i < n; i++)
        if (ids[i] > until) { /* the rest was made after the sweep began */
            n = i;
            more = false;
        }
    for (size_t i = 0; rc == CRM_OK && i < n; i++) {
        ProtobufCMessage *cur = NULL, *next = NULL;
        if (records_group_get(env->group, e, ids[i], &cur) != CRM_OK ||
            records_group_get(env->group, e, ids[i], &next) != CRM_OK) {
            crm_proto_free(&cur);
            continue; /* deleted meanwhile */
        }
        out->checked++;
        if (s_sweep_one(&dc, e, next, errbuf) != CRM_OK) { /* one bad record stops no sweep */
            crm_log(CRM_LOG_ERROR, "sweep: %s %s skipped: %s", e->name,
                    crm_record_get_str(cur, "id"), errbuf);
            crm_proto_free(&cur);
            crm_proto_free(&next);
            continue;
        }
        char *changed[64];
        size_t nchanged = rc == CRM_OK ? crm_record_diff(e, cur, next, changed, 64) : 0;
        if (nchanged && preview) { /* named, not written */
            if (out->nsamples < SWEEP_SAMPLES) {
                char *line = out->samples[out->nsamples++];
                size_t used = (size_t)snprintf(line, sizeof out->samples[0], "%s:",
                                               crm_record_get_str(cur, "id"));
                for (size_t k = 0; k < nchanged && used < sizeof out->samples[0]; k++)
                    used += (size_t)snprintf(line + used, sizeof out->samples[0] - used, "%s %s",
                                             k ? "," : "", changed[k]);
            }
            out->changed++;
        } else if (nchanged) { /* each record its own change: one event, one audit entry */
            mutation_t *m = mutation_begin(env->group, env->store, actor);
            crm_record_set_u64(next, "version", crm_record_get_u64(cur, "version") + 1);
            crm_record_set_i64(next, "updated_at", crm_time_now_ms());
            crm_record_set_str(next, "updated_by", actor->name);
            mutation_put(m, e, ids[i], cur, next, changed, nchanged, reason);
            mutation_end(&m);
            out->changed++;
        }
        crm_proto_free(&cur);
        crm_proto_free(&next);
    }
    /* customers, then tickets */
    out->next_kind = 0;
    out->next_after = 0;
    if (rc == CRM_OK && more && n) {
        out->next_kind = kind;
        out->next_after = ids[n - 1];
    } else if (rc == CRM_OK && !strcmp(e->name, "customer")) {
        out->next_kind = crm_entity_by_name("ticket")->prefix;
    }
    free(ids);
    return rc;
}

crm_err_t
h_sweep(req_ctx_t *ctx)
{
    if (ctx->req->body_case != CRM__REQUEST__BODY_SWEEP)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "the request carries no sweep");
    const Crm__SweepRequest *r = ctx->req->sweep;
    const crm_entity_t *ce = crm_entity_by_name("customer");
    size_t limit = r->limit ? r->limit : SWEEP_DEFAULT;
    if (limit > SWEEP_MAX)
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "at most %d customers per sweep call",
                              SWEEP_MAX);
    /* the cursor: "" (start), "c123" (customers after c123), "t" or "t45" (tickets) */
    char kind = *r->after ? r->after[0] : ce->prefix;
    const crm_entity_t *ke = crm_entity_by_prefix(kind);
    uint64_t after = 0;
    if (!ke || (strcmp(ke->name, "customer") && strcmp(ke->name, "ticket")) ||
        (r->after[0] && r->after[1] && !(after = crm_entity_parse_id(ke, r->after))))
        return dispatch_error(ctx, CRM_ERR_INVALID_ARGUMENT, "'%.40s' is not a sweep cursor",
                              r->after);
    /* a given time is a preview: what the rules would change then, nothing written (a
       sweep "as of" next month wrote next month's at-risk stages and ticket breaches now) */
    bool preview = r->as_of != 0;
    sweep_result_t *res = dispatch_own(ctx, malloc(sizeof *res));
    CRM_ASSERT_ALLOC(res);
    crm_err_t rc = sweep_slice(ctx->env, ctx->session.user, preview ? r->as_of : crm_time_now_ms(),
                               kind, after, UINT64_MAX, limit, preview, res, ctx->errbuf);
    if (res->changed && !preview)
        ctx->staged = true;
    if (rc != CRM_OK)
        return rc;
    Crm__SweepReply *rep = &ctx->body.sweep;
    crm__sweep_reply__init(rep);
    rep->checked = res->checked;
    rep->changed = res->changed;
    rep->preview = preview;
    rep->n_would_change = res->nsamples;
    if (res->nsamples) {
        rep->would_change = dispatch_own(ctx, malloc(res->nsamples * sizeof *rep->would_change));
        CRM_ASSERT_ALLOC(rep->would_change);
        for (size_t i = 0; i < res->nsamples; i++)
            rep->would_change[i] = res->samples[i];
    }
    if (res->next_kind) {
        char *next_after = dispatch_own(ctx, malloc(24));
        if (res->next_after)
            crm_entity_format_id(crm_entity_by_prefix(res->next_kind), res->next_after,
                                 next_after);
        else
            snprintf(next_after, 24, "%c", res->next_kind);
        rep->next_after = next_after;
    }
    ctx->reply.body_case = CRM__REPLY__BODY_SWEEP;
    ctx->reply.sweep = rep;
    return CRM_OK;
}
