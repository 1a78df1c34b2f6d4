/*  =========================================================================
    cmd_audit - `crm audit` (managers and admins) and `crm KIND history ID [FIELD]`
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "conn.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"

static const char s_usage[] =
    "usage: crm audit [--customer ID | --id ID] [--user NAME] [--since WHEN] [--limit N]\n"
    "\n"
    "The audit trail, newest first: every change (who, when, what, old -> new; personal\n"
    "fields show only that they changed) and every refused request. Managers see their\n"
    "department's users, admins everyone. WHEN is YYYY-MM-DD[THH:MM:SSZ].\n";

/* VALUE of FIELD of a KIND record as the server wrote it into a change (a time in UTC,
   "2026-11-29T01:00:00Z"), in the user's time zone when FIELD is a time of that kind:
   STYLE's form, into OUT. NULL when it is no time: print VALUE as it is. */
static const char *
s_local_value(const char *kind, const char *field, const char *value, out_time_t style,
              char out[40])
{
    const crm_entity_t *e = crm_entity_by_name(kind);
    const ProtobufCFieldDescriptor *fd = e ? crm_record_field(e->desc, field) : NULL;
    int64_t ms;
    if (!fd || !*value || !crm_entity_is_time(e->desc, fd) || !crm_record_parse_time(value, &ms))
        return NULL;
    out_time(ms, style, out);
    return out;
}

/* With --json: each change's time values in the user's offset, as every other time
   (RFC 3339), printed, then the reply's own strings put back for it to free. */
static void
s_print_json(Crm__AuditEntry *a)
{
    size_t n = a->n_changes;
    char(*local)[2][40] = calloc(n ? n : 1, sizeof *local);
    char **was = calloc(n ? 2 * n : 1, sizeof *was);
    if (!local || !was) {
        free(local);
        free(was);
        out_json(stdout, &a->base); /* as the server wrote them */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Crm__FieldChange *c = a->changes[i];
        was[2 * i] = c->old_value;
        was[2 * i + 1] = c->new_value;
        if (s_local_value(a->kind, c->field, c->old_value, OUT_TIME_RFC3339, local[i][0]))
            c->old_value = local[i][0];
        if (s_local_value(a->kind, c->field, c->new_value, OUT_TIME_RFC3339, local[i][1]))
            c->new_value = local[i][1];
    }
    out_json(stdout, &a->base);
    for (size_t i = 0; i < n; i++) {
        a->changes[i]->old_value = was[2 * i];
        a->changes[i]->new_value = was[2 * i + 1];
    }
    free(local);
    free(was);
}

static void
s_print_entry(const Crm__AuditEntry *a, bool with_record)
{
    char when[40];
    out_time(a->time, OUT_TIME_LINE, when); /* the user's time zone */
    printf("%s  %-12s %-8s", when, a->user, a->denied ? "DENIED" : a->action);
    if (with_record)
        printf(" %s %s", a->kind, a->id);
    char *reason = out_escape(a->reason); /* one entry, one line */
    if (a->denied)
        printf("  %s: %s", a->action, reason);
    else if (*a->reason)
        printf("  (%s)", reason);
    free(reason);
    for (size_t i = 0; i < a->n_changes; i++) {
        const Crm__FieldChange *c = a->changes[i];
        char lo[40], ln[40];
        const char *ov = s_local_value(a->kind, c->field, c->old_value, OUT_TIME_LINE, lo);
        const char *nv = s_local_value(a->kind, c->field, c->new_value, OUT_TIME_LINE, ln);
        char *old = out_escape(ov ? ov : c->old_value), *now = out_escape(nv ? nv : c->new_value);
        printf("%s%s: %s -> %s", i ? "; " : "  ", c->field, *old ? old : "''",
               *now ? now : "''");
        free(old);
        free(now);
    }
    printf("\n");
}

/* Send OP with Q; print the entries. */
static int
s_query(cli_ctx_t *ctx, Crm__Op op, Crm__AuditRequest *q, bool with_record)
{
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = op;
    req.body_case = CRM__REQUEST__BODY_AUDIT;
    req.audit = q;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK &&
        reply->body_case == CRM__REPLY__BODY_AUDIT) {
        const Crm__AuditReply *ar = reply->audit;
        for (size_t i = 0; i < ar->n_entries; i++)
            if (ctx->json)
                s_print_json(ar->entries[i]);
            else
                s_print_entry(ar->entries[i], with_record);
        if (!ctx->json && ar->n_entries == 0)
            printf("no entries%s\n", ar->cut ? " among the newest the server examined" : "");
        if (ar->cut)
            fprintf(stderr, "crm: the server stopped after examining its limit of entries for "
                            "one request; older entries may match: narrow it with --since or "
                            "--user\n");
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

int
cmd_audit(int argc, char **argv, cli_ctx_t *ctx)
{
    Crm__AuditRequest q = CRM__AUDIT_REQUEST__INIT;
    const ProtobufCFieldDescriptor *since = crm_record_field(&crm__audit_request__descriptor,
                                                             "since");
    char errbuf[CRM_ERRBUF];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            fputs(s_usage, stdout);
            return EXIT_OK;
        }
        if (!val) {
            fprintf(stderr, "crm audit: '%s' needs a value\n\n%s", opt, s_usage);
            return EXIT_USAGE;
        }
        i++;
        if (!strcmp(opt, "--customer") || !strcmp(opt, "--id"))
            q.id = (char *)val;
        else if (!strcmp(opt, "--user"))
            q.user = (char *)val;
        else if (!strcmp(opt, "--limit")) {
            unsigned long long n;
            if (!cli_number_opt("audit", opt, val, 1, UINT32_MAX, &n))
                return EXIT_USAGE;
            q.limit = (uint32_t)n;
        }
        else if (!strcmp(opt, "--since")) {
            if (crm_record_set_text(&q.base, since, val, true, errbuf) != CRM_OK) {
                fprintf(stderr, "crm audit: %s\n", errbuf);
                return EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "crm audit: unknown option '%s'\n\n%s", opt, s_usage);
            return EXIT_USAGE;
        }
    }
    return s_query(ctx, CRM__OP__OP_AUDIT_LIST, &q, true);
}

int
cmd_history(cli_ctx_t *ctx, const char *kind, const char *id, const char *field)
{
    Crm__AuditRequest q = CRM__AUDIT_REQUEST__INIT;
    q.kind = (char *)kind;
    q.id = (char *)id;
    q.field = (char *)(field ? field : "");
    q.limit = 1000;
    return s_query(ctx, CRM__OP__OP_HISTORY, &q, false);
}
