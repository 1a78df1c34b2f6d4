/*  =========================================================================
    cmd_service - after-sales and follow-up: `crm ticket`, `crm feedback`,
    `crm task`, and `crm today` (the first screen of the morning)

    Thin wrappers over the generic record commands (entity.c): a status move
    is an update of the status field, a reply is an activity with the
    ticket's id (the server sets the ticket's first response in the same
    change), and lists use the server's views (open, overdue, breached,
    unassigned, stale).
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"
#include "entity.h"

#define NEAR_HOURS 4  /* `crm today`: tickets due within this many hours */
#define STALE_DAYS 14 /* `crm today`: own customers without contact this long */

/* One list request with FILTERS (field, value pairs, NULL-terminated); the
   page is printed under TITLE (NULL: no title). Returns an exit code; a
   kind the caller may not read is left out quietly when QUIET_DENY. */
static int
s_list(cli_ctx_t *ctx, conn_t *conn, const crm_entity_t *e, const char *const *filters,
       unsigned limit, const char *title, bool quiet_deny)
{
    Crm__Filter f[8], *fp[8];
    size_t n = 0;
    for (; filters[2 * n] && n < 8; n++) {
        crm__filter__init(&f[n]);
        f[n].field = (char *)filters[2 * n];
        f[n].value = (char *)filters[2 * n + 1];
        fp[n] = &f[n];
    }
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    er.filters = fp;
    er.n_filters = n;
    er.limit = limit;
    conn_set_quiet(conn, quiet_deny);
    int rc = entity_call(conn, CRM__OP__OP_ENTITY_LIST, e, &er, &reply);
    conn_set_quiet(conn, false);
    if (rc != EXIT_OK && quiet_deny &&
        conn_last_status(conn) == CRM__ERROR_CODE__PERMISSION_DENIED) {
        conn_reply_free(&reply);
        return EXIT_OK;
    }
    if (rc == EXIT_OK) {
        if (title && !ctx->json)
            printf("%s\n", title);
        if (title && !ctx->json && entity_count(reply) == 0)
            printf("  none\n");
        else
            entity_print_page(ctx, e, reply);
    } else if (quiet_deny) {
        fprintf(stderr, "crm: %s (%s)\n", conn_last_message(conn),
                crm_err_name(conn_last_status(conn)));
    }
    conn_reply_free(&reply);
    return rc;
}

/* ==== Tickets ==== */

/* `crm ticket pend|resolve|close|reopen|assign ID ...`: read, change, write
   back with the version read. */
static int
s_ticket_change(cli_ctx_t *ctx, const crm_entity_t *e, const char *id, const char *field,
                const char *value, const char *field2, const char *value2)
{
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    Crm__Reply *reply = NULL;
    char errbuf[CRM_ERRBUF];
    const char *touched[2] = {field, field2};
    int rc = conn_open(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, id, &rec)) != EXIT_OK)
        goto cleanup;
    if (crm_record_set_text(rec, crm_record_field(e->desc, field), value, false, errbuf) !=
            CRM_OK ||
        (field2 && crm_record_set_text(rec, crm_record_field(e->desc, field2), value2, false,
                                       errbuf) != CRM_OK)) {
        fprintf(stderr, "crm %s: %s\n", e->name, errbuf);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    rc = entity_update(conn, e, crm_record_get_str(rec, "id"), rec, touched, field2 ? 2 : 1,
                       crm_record_get_u64(rec, "version"), &reply);
    if (rc == EXIT_OK)
        entity_report_update(ctx, e, reply, NULL);
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* The ID and the optional --resolution / --reason after it. */
static int
s_id_and(const char *cmd, int argc, char **argv, const char *opt, const char **id,
         const char **value)
{
    *id = NULL;
    *value = NULL;
    for (int i = 1; i < argc; i++) {
        if (opt && !strcmp(argv[i], opt) && i + 1 < argc)
            *value = argv[++i];
        else if (argv[i][0] != '-' && !*id)
            *id = argv[i];
        else {
            fprintf(stderr, "crm ticket %s: unexpected '%s'\n", cmd, argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!*id) {
        fprintf(stderr, "crm ticket %s: expected a ticket ID\n", cmd);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int
s_ticket_status(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv, const char *status)
{
    const char *id, *resolution;
    int rc = s_id_and(argv[0], argc, argv, "--resolution", &id, &resolution);
    if (rc != EXIT_OK)
        return rc;
    return s_ticket_change(ctx, e, id, "status", status, resolution ? "resolution" : NULL,
                           resolution);
}

static int
s_ticket_pend(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_status(ctx, e, argc, argv, "pending");
}

static int
s_ticket_resolve(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_status(ctx, e, argc, argv, "resolved");
}

static int
s_ticket_close(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_status(ctx, e, argc, argv, "closed");
}

static int
s_ticket_reopen(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_status(ctx, e, argc, argv, "open");
}

static int
s_ticket_assign(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: crm ticket assign ID USER|me|-\n");
        return EXIT_USAGE;
    }
    const char *who = !strcmp(argv[2], "-") ? "" : argv[2];
    if (!strcmp(who, "me")) { /* the server knows who "me" is; ask it */
        conn_t *conn = NULL;
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__Reply *reply = NULL;
        static char name[80];
        req.op = CRM__OP__OP_WHOAMI;
        int rc = conn_open(ctx, &conn);
        if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK &&
            reply->body_case == CRM__REPLY__BODY_WHOAMI)
            snprintf(name, sizeof name, "%s", reply->whoami->user);
        conn_reply_free(&reply);
        conn_destroy(&conn);
        if (rc != EXIT_OK)
            return rc;
        who = name;
    }
    return s_ticket_change(ctx, e, argv[1], "assignee", who, NULL, NULL);
}

/* `crm ticket reply|note ID TEXT...`: an activity on the ticket's
   conversation; a reply by support is the ticket's first response. */
static int
s_ticket_activity(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv, bool reply)
{
    if (argc < 3) {
        fprintf(stderr, "usage: crm ticket %s ID TEXT...\n", argv[0]);
        return EXIT_USAGE;
    }
    const crm_entity_t *ae = crm_entity_by_name("activity");
    conn_t *conn = NULL;
    ProtobufCMessage *t = NULL, *a = crm_proto_new(ae->desc);
    char text[4096] = "", errbuf[CRM_ERRBUF];
    size_t used = 0;
    for (int i = 2; i < argc && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", i > 2 ? " " : "",
                                 argv[i]);
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = entity_get(conn, e, argv[1], &t)) == EXIT_OK) {
        crm_record_set_str(a, "customer_id", crm_record_get_str(t, "customer_id"));
        crm_record_set_str(a, "ticket_id", argv[1]);
        char summary[200];
        size_t cut = strlen(text) < sizeof summary - 4 ? strlen(text) : sizeof summary - 4;
        while (cut < strlen(text) && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--; /* whole characters only */
        snprintf(summary, sizeof summary, "%.*s%s", (int)cut, text, cut < strlen(text) ? "…" : "");
        crm_record_set_str(a, "summary", summary);
        if (cut < strlen(text)) /* the whole text in the body */
            crm_record_set_str(a, "body", text);
        crm_record_set_text(a, crm_record_field(ae->desc, "type"), reply ? "email" : "note", false,
                            errbuf);
        if (reply)
            crm_record_set_text(a, crm_record_field(ae->desc, "direction"), "outbound", false,
                                errbuf);
        rc = entity_create(ctx, conn, ae, a);
    }
    crm_proto_free(&t);
    crm_proto_free(&a);
    conn_destroy(&conn);
    return rc;
}

static int
s_ticket_reply(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_activity(ctx, e, argc, argv, true);
}

static int
s_ticket_note(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_ticket_activity(ctx, e, argc, argv, false);
}

/* `crm ticket show ID`: the ticket and its conversation, newest first. */
static int
s_ticket_show(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: crm ticket show ID\n");
        return EXIT_USAGE;
    }
    const crm_entity_t *ae = crm_entity_by_name("activity");
    conn_t *conn = NULL;
    ProtobufCMessage *t = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, argv[1], &t)) != EXIT_OK)
        goto cleanup;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Filter f = CRM__FILTER__INIT, *fp = &f;
    f.field = (char *)"ticket_id";
    f.value = argv[1];
    er.filters = &fp;
    er.n_filters = 1;
    er.limit = 1000;
    if ((rc = entity_call(conn, CRM__OP__OP_ENTITY_LIST, ae, &er, &reply)) != EXIT_OK)
        goto cleanup;
    size_t n = entity_count(reply);
    if (ctx->json) {
        printf("{\"record\":");
        out_json_inline(stdout, t);
        printf(",\"conversation\":[");
    } else {
        entity_print_fields(e, t);
        printf("\nconversation (newest first):\n");
        if (!n)
            printf("  nothing yet\n");
    }
    for (size_t i = n; i-- > 0;) { /* listed in id order: newest first is the reverse */
        ProtobufCMessage *a = entity_record(ae, reply, i);
        if (!a)
            continue;
        if (ctx->json) {
            printf("%s", i + 1 < n ? "," : "");
            out_json_inline(stdout, a);
        } else {
            const ProtobufCFieldDescriptor *at = crm_record_field(ae->desc, "occurred_at");
            const ProtobufCFieldDescriptor *ty = crm_record_field(ae->desc, "type");
            char *when = crm_record_format(a, at, true, true);
            char *type = crm_record_format(a, ty, false, true);
            printf("  %s  %-6s %-10s %s\n", when, type, crm_record_get_str(a, "author"),
                   crm_record_get_str(a, "summary"));
            free(when);
            free(type);
        }
        crm_proto_free(&a);
    }
    if (ctx->json)
        printf("]}\n");
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&t);
    conn_destroy(&conn);
    return rc;
}

/* `crm ticket list [--overdue|--breached|--mine|--unassigned|--open] [--FIELD VALUE]...` */
static int
s_ticket_list(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const char *filters[2 * 9 + 1] = {NULL};
    size_t n = 0;
    unsigned limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (n == 8) {
            fprintf(stderr, "crm ticket list: at most 8 filters\n");
            return EXIT_USAGE;
        }
        if (!strcmp(a, "--overdue"))
            filters[2 * n] = "view", filters[2 * n + 1] = "overdue", n++;
        else if (!strcmp(a, "--breached"))
            filters[2 * n] = "view", filters[2 * n + 1] = "breached", n++;
        else if (!strcmp(a, "--unassigned"))
            filters[2 * n] = "view", filters[2 * n + 1] = "unassigned", n++;
        else if (!strcmp(a, "--open"))
            filters[2 * n] = "view", filters[2 * n + 1] = "open", n++;
        else if (!strcmp(a, "--mine"))
            filters[2 * n] = "assignee", filters[2 * n + 1] = "me", n++;
        else if (!strcmp(a, "--limit") && i + 1 < argc) {
            unsigned long long v;
            if (!cli_number_opt("ticket list", a, argv[++i], 1, 1000, &v))
                return EXIT_USAGE;
            limit = (unsigned)v;
        } else if (!strncmp(a, "--", 2) && i + 1 < argc && crm_record_field(e->desc, a + 2))
            filters[2 * n] = a + 2, filters[2 * n + 1] = argv[++i], n++;
        else {
            fprintf(stderr, "crm ticket list: unknown option '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    filters[2 * n] = NULL;
    conn_t *conn = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK)
        rc = s_list(ctx, conn, e, filters, limit, NULL, false);
    conn_destroy(&conn);
    return rc;
}

int
cmd_ticket(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"show", s_ticket_show, "show ID                  the ticket and its conversation"},
        {"list", s_ticket_list, "list [--overdue|--breached|--mine|--unassigned|--open] "
                                "[--FIELD VALUE]..."},
        {"assign", s_ticket_assign, "assign ID USER|me|-"},
        {"reply", s_ticket_reply, "reply ID TEXT...        to the customer (the first reply "
                                  "by support is the first response)"},
        {"note", s_ticket_note, "note ID TEXT...         an internal note on the ticket"},
        {"pend", s_ticket_pend, "pend ID                  waiting for the customer"},
        {"resolve", s_ticket_resolve, "resolve ID --resolution TEXT"},
        {"close", s_ticket_close, "close ID"},
        {"reopen", s_ticket_reopen, "reopen ID"},
    };
    /* "open" is the generic add, with the customer first */
    if (argc > 1 && !strcmp(argv[1], "open")) {
        argv[1] = (char *)"add";
        return entity_kind_command("ticket", argc, argv, ctx, NULL, extra + 1,
                                   sizeof extra / sizeof extra[0] - 1);
    }
    return entity_kind_command("ticket", argc, argv, ctx,
                               "\nopen a ticket: crm ticket open CUSTOMER --subject TEXT [--kind "
                               "question|complaint|repair|return|exchange]\n  [--priority "
                               "low|normal|high|urgent] [--order-id ID] [--body TEXT] "
                               "[--assignee USER]   (= ticket add)\n",
                               extra, sizeof extra / sizeof extra[0]);
}

/* ==== Feedback ==== */

static int
s_feedback_summary(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    (void)e;
    Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
    Crm__Filter f[2], *fp[2];
    char when[2][48];
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--since") || !strcmp(argv[i], "--until")) && i + 1 < argc &&
            rr.n_filters < 2) {
            bool until = argv[i][2] == 'u';
            crm__filter__init(&f[rr.n_filters]);
            f[rr.n_filters].field = argv[i] + 2;
            /* the user's local days: sent as instants with the zone */
            if (!entity_local_time(argv[i + 1], until, when[until], sizeof when[0])) {
                fprintf(stderr, "crm feedback summary: %s '%s': give a date (2026-11-01) or a "
                                "time\n",
                        argv[i], argv[i + 1]);
                return EXIT_USAGE;
            }
            i++;
            f[rr.n_filters].value = when[until];
            fp[rr.n_filters] = &f[rr.n_filters];
            rr.n_filters++;
        } else {
            fprintf(stderr, "usage: crm feedback summary [--since DATE] [--until DATE]\n");
            return EXIT_USAGE;
        }
    }
    rr.filters = fp;
    rr.name = (char *)"satisfaction";
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_REPORT;
    req.body_case = CRM__REQUEST__BODY_REPORT;
    req.report = &rr;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK &&
        reply->body_case == CRM__REPLY__BODY_REPORT && reply->report->n_rows == 4) {
        Crm__ReportRow *const *r = reply->report->rows;
        uint64_t nps = r[1]->count + r[2]->count + r[3]->count;
        double csat = r[0]->count ? (double)r[0]->sum / (double)r[0]->count : 0;
        double score = nps ? 100.0 * ((double)r[1]->count - (double)r[3]->count) / (double)nps : 0;
        if (ctx->json)
            printf("{\"csat_count\":%llu,\"csat_average\":%.2f,\"nps_count\":%llu,\"nps\":%.1f,"
                   "\"promoters\":%llu,\"passives\":%llu,\"detractors\":%llu}\n",
                   (unsigned long long)r[0]->count, csat, (unsigned long long)nps, score,
                   (unsigned long long)r[1]->count, (unsigned long long)r[2]->count,
                   (unsigned long long)r[3]->count);
        else
            printf("CSAT  %.2f of 5 from %llu answers\nNPS   %+.1f from %llu answers (%llu "
                   "promoters, %llu passives, %llu detractors)\n",
                   csat, (unsigned long long)r[0]->count, score, (unsigned long long)nps,
                   (unsigned long long)r[1]->count, (unsigned long long)r[2]->count,
                   (unsigned long long)r[3]->count);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

int
cmd_feedback(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"summary", s_feedback_summary, "summary [--since DATE] [--until DATE]   CSAT and NPS"},
    };
    return entity_kind_command("feedback", argc, argv, ctx,
                               "\nadd takes the CUSTOMER id first: crm feedback add c12 "
                               "--score-kind csat --score 5 --channel wechat\n",
                               extra, sizeof extra / sizeof extra[0]);
}

/* ==== Tasks ==== */

/* [START, END) of today in the local time zone, as ISO-8601 UTC text. */
static void
s_day(int offset_days, int span_days, char from[32], char to[32])
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_mday += offset_days;
    time_t start = mktime(&tm);
    crm_record_format_time((int64_t)start * 1000, from);
    crm_record_format_time(((int64_t)start + 86400LL * span_days) * 1000 - 1000, to);
}

static int
s_task_list(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const char *filters[2 * 6 + 1] = {NULL};
    static char range[80];
    char from[32], to[32];
    size_t n = 0;
    unsigned limit = 0;
    bool all = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (n == 5) {
            fprintf(stderr, "crm task list: too many filters\n");
            return EXIT_USAGE;
        }
        if (!strcmp(a, "--mine")) {
            filters[2 * n] = "assignee", filters[2 * n + 1] = "me", n++;
        } else if (!strcmp(a, "--all")) {
            all = true;
        } else if (!strcmp(a, "--due") && i + 1 < argc) {
            const char *when = argv[++i];
            if (!strcmp(when, "today")) {
                s_day(0, 1, from, to);
                snprintf(range, sizeof range, "%s..%s", from, to);
            } else if (!strcmp(when, "overdue")) {
                s_day(0, 1, from, to);
                snprintf(range, sizeof range, "..%s", from);
            } else if (!strcmp(when, "week")) {
                s_day(0, 7, from, to);
                snprintf(range, sizeof range, "..%s", to);
            } else {
                fprintf(stderr, "crm task list: --due takes today, overdue or week\n");
                return EXIT_USAGE;
            }
            filters[2 * n] = "due", filters[2 * n + 1] = range, n++;
        } else if (!strcmp(a, "--limit") && i + 1 < argc) {
            unsigned long long v;
            if (!cli_number_opt("task list", a, argv[++i], 1, 1000, &v))
                return EXIT_USAGE;
            limit = (unsigned)v;
        } else {
            fprintf(stderr, "usage: crm task list [--mine] [--due today|overdue|week] [--all] "
                            "[--limit N]\n");
            return EXIT_USAGE;
        }
    }
    if (!all) /* open tasks unless --all */
        filters[2 * n] = "view", filters[2 * n + 1] = "open", n++;
    filters[2 * n] = NULL;
    conn_t *conn = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK)
        rc = s_list(ctx, conn, e, filters, limit, NULL, false);
    conn_destroy(&conn);
    return rc;
}

static int
s_task_set_done(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv, const char *done)
{
    if (argc != 2) {
        fprintf(stderr, "usage: crm task %s ID\n", argv[0]);
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    Crm__Reply *reply = NULL;
    char errbuf[CRM_ERRBUF];
    const char *touched[1] = {"done"};
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = entity_get(conn, e, argv[1], &rec)) == EXIT_OK) {
        crm_record_set_text(rec, crm_record_field(e->desc, "done"), done, false, errbuf);
        rc = entity_update(conn, e, crm_record_get_str(rec, "id"), rec, touched, 1,
                           crm_record_get_u64(rec, "version"), &reply);
        if (rc == EXIT_OK)
            entity_report_update(ctx, e, reply, NULL);
    }
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

static int
s_task_done(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_task_set_done(ctx, e, argc, argv, "yes");
}

static int
s_task_reopen(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    return s_task_set_done(ctx, e, argc, argv, "no");
}

int
cmd_task(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"list", s_task_list, "list [--mine] [--due today|overdue|week] [--all] [--limit N]"},
        {"done", s_task_done, "done ID"},
        {"reopen", s_task_reopen, "reopen ID"},
    };
    return entity_kind_command("task", argc, argv, ctx,
                               "\nadd: crm task add [CUSTOMER] --title TEXT --due "
                               "'2026-12-01T09:00:00Z' [--assignee USER]\n",
                               extra, sizeof extra / sizeof extra[0]);
}

/* ==== `crm today` ==== */

int
cmd_today(int argc, char **argv, cli_ctx_t *ctx)
{
    int days = STALE_DAYS;
    for (int i = 1; i < argc; i++) {
        unsigned long long v;
        if (!strcmp(argv[i], "--stale-days") && i + 1 < argc) {
            if (!cli_number_opt("today", "--stale-days", argv[++i], 1, 36500, &v))
                return EXIT_USAGE;
            days = (int)v;
        } else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: crm today [--stale-days N]\n\nYour day: overdue and due-today "
                    "tasks, your open tickets near or past their\ndeadlines, and your "
                    "customers with no contact for N days (default %d).\n",
                    STALE_DAYS);
            return help ? EXIT_OK : EXIT_USAGE;
        }
    }
    char from[32], to[32], range[80], stale[32], near[32];
    s_day(0, 1, from, to);
    snprintf(range, sizeof range, "..%s", to);
    snprintf(stale, sizeof stale, "stale:%d", days);
    snprintf(near, sizeof near, "overdue:%d", NEAR_HOURS);
    const char *tasks[] = {"assignee", "me", "view", "open", "due", range, NULL};
    const char *tickets[] = {"assignee", "me", "view", near, NULL};
    const char *customers[] = {"owner", "me", "view", stale, NULL};
    char t1[64], t2[64];
    snprintf(t1, sizeof t1, "tickets assigned to you, due within %d hours or past due:",
             NEAR_HOURS);
    snprintf(t2, sizeof t2, "your customers with no contact for %d days:", days);
    conn_t *conn = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK)
        rc = s_list(ctx, conn, crm_entity_by_name("task"), tasks, 50,
                    "tasks overdue or due today:", true);
    if (rc == EXIT_OK) {
        if (!ctx->json)
            printf("\n");
        rc = s_list(ctx, conn, crm_entity_by_name("ticket"), tickets, 50, t1, true);
    }
    if (rc == EXIT_OK) {
        if (!ctx->json)
            printf("\n");
        rc = s_list(ctx, conn, crm_entity_by_name("customer"), customers, 50, t2, true);
    }
    conn_destroy(&conn);
    return rc;
}

/* ==== Segments ==== */

/* The criteria of segment SEG as list filters (borrowed from SEG). */
static size_t
s_criteria(const ProtobufCMessage *seg, Crm__Filter *f, Crm__Filter **fp, size_t max)
{
    const Crm__Segment *s = (const Crm__Segment *)seg;
    size_t n = 0;
    for (; n < s->n_criteria && n < max; n++) {
        crm__filter__init(&f[n]);
        f[n].field = s->criteria[n]->field;
        f[n].value = s->criteria[n]->value;
        fp[n] = &f[n];
    }
    return n;
}

/* Customers matching FILTERS, counted by the server. */
static int
s_count(conn_t *conn, Crm__Filter **fp, size_t n, uint64_t *count)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    er.filters = fp;
    er.n_filters = n;
    er.count = true;
    int rc = entity_call(conn, CRM__OP__OP_ENTITY_LIST, crm_entity_by_name("customer"), &er,
                         &reply);
    *count = rc == EXIT_OK && reply->body_case == CRM__REPLY__BODY_ENTITY ? reply->entity->count
                                                                          : 0;
    conn_reply_free(&reply);
    return rc;
}

/* `crm segment save NAME [--description TEXT] --FIELD VALUE... [--view V]` */
static int
s_segment_save(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const crm_entity_t *ce = crm_entity_by_name("customer");
    const char *name = NULL, *description = "";
    char *rest[ENTITY_MAX_ARGS + 1];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--description") && i + 1 < argc)
            description = argv[++i];
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else if (nrest < ENTITY_MAX_ARGS)
            rest[nrest++] = argv[i];
    }
    entity_args_t a;
    int rc = entity_parse_args(ce, NULL, nrest, rest, &a);
    if (rc != EXIT_OK)
        return rc;
    if (!name || a.nfilters == 0) {
        fprintf(stderr, "usage: crm segment save NAME --FIELD VALUE... [--view V] "
                        "[--description TEXT]\n");
        return EXIT_USAGE;
    }
    ProtobufCMessage *seg = crm_proto_new(e->desc);
    const ProtobufCFieldDescriptor *cf = crm_record_field(e->desc, "criteria");
    crm_record_set_str(seg, "name", name);
    crm_record_set_str(seg, "description", description);
    for (size_t i = 0; i < a.nfilters; i++) {
        ProtobufCMessage *c = crm_record_add_message(seg, cf);
        crm_record_set_str(c, "field", a.filters[i].field);
        crm_record_set_str(c, "value", a.filters[i].value);
    }
    conn_t *conn = NULL;
    if ((rc = conn_open(ctx, &conn)) == EXIT_OK)
        rc = entity_create(ctx, conn, e, seg);
    crm_proto_free(&seg);
    conn_destroy(&conn);
    return rc;
}

static int
s_segment_count(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: crm segment count ID\n");
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    ProtobufCMessage *seg = NULL;
    Crm__Filter f[20], *fp[20];
    uint64_t total = 0, consented = 0;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = entity_get(conn, e, argv[1], &seg)) == EXIT_OK) {
        size_t n = s_criteria(seg, f, fp, 18);
        if ((rc = s_count(conn, fp, n, &total)) == EXIT_OK) {
            crm__filter__init(&f[n]);
            f[n].field = (char *)"view";
            f[n].value = (char *)"consented";
            fp[n] = &f[n];
            rc = s_count(conn, fp, n + 1, &consented);
        }
    }
    if (rc == EXIT_OK && ctx->json)
        printf("{\"segment\":\"%s\",\"customers\":%llu,\"consented\":%llu}\n", argv[1],
               (unsigned long long)total, (unsigned long long)consented);
    else if (rc == EXIT_OK)
        printf("%llu customers, %llu of them consented to marketing\n",
               (unsigned long long)total, (unsigned long long)consented);
    crm_proto_free(&seg);
    conn_destroy(&conn);
    return rc;
}

/* `crm segment export ID --csv|--jsonl [--out FILE]`: the consented ones. */
static int
s_segment_export(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const char *id = NULL, *fmt = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv") || !strcmp(argv[i], "--jsonl"))
            fmt = argv[i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] != '-' && !id)
            id = argv[i];
        else
            id = NULL, i = argc;
    }
    if (!id || !fmt) {
        fprintf(stderr, "usage: crm segment export ID --csv|--jsonl [--out FILE]\n");
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    ProtobufCMessage *seg = NULL;
    Crm__Filter f[20], *fp[20];
    uint64_t total = 0;
    char *args[2 * 20 + 8];
    int nargs = 0;
    int rc = conn_open(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, id, &seg)) != EXIT_OK)
        goto cleanup;
    size_t n = s_criteria(seg, f, fp, 18);
    if ((rc = s_count(conn, fp, n, &total)) != EXIT_OK)
        goto cleanup;
    char flags[20][72];
    args[nargs++] = (char *)"export";
    args[nargs++] = (char *)fmt;
    if (out) {
        args[nargs++] = (char *)"--out";
        args[nargs++] = (char *)out;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(flags[i], sizeof flags[i], "--%s", f[i].field);
        args[nargs++] = flags[i];
        args[nargs++] = f[i].value;
    }
    args[nargs++] = (char *)"--view"; /* only those who said yes to marketing */
    args[nargs++] = (char *)"consented";
    args[nargs] = NULL;
    conn_destroy(&conn);
    bool json = ctx->json;
    ctx->json = false;
    char captured[256] = "";
    fflush(stdout);
    rc = cmd_export_counted(nargs, args, ctx, captured, sizeof captured);
    ctx->json = json;
    if (rc == EXIT_OK) {
        long exported = strtol(captured, NULL, 10);
        FILE *msg = out ? stdout : stderr; /* the records went to stdout */
        if (json)
            fprintf(msg, "{\"segment\":\"%s\",\"exported\":%ld,\"left_out\":%llu}\n", id, exported,
                   (unsigned long long)total - (unsigned long long)exported);
        else
            fprintf(msg, "exported %ld customers of segment %s; left out %llu without marketing "
                   "consent\n",
                   exported, id, (unsigned long long)total - (unsigned long long)exported);
    }
cleanup:
    crm_proto_free(&seg);
    conn_destroy(&conn);
    return rc;
}

int
cmd_segment(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"save", s_segment_save,
         "save NAME --FIELD VALUE... [--view V] [--description TEXT]   a saved audience"},
        {"count", s_segment_count, "count ID                 how many customers, how many "
                                   "consented"},
        {"export", s_segment_export, "export ID --csv|--jsonl [--out FILE]   the consented "
                                     "ones, masked as your reads"},
    };
    if (argc > 1 && !strcmp(argv[1], "rm"))
        argv[1] = (char *)"delete";
    return entity_kind_command("segment", argc, argv, ctx,
                               "\ncriteria: any customer filter (--stage prospect, --tier high, "
                               "--province 上海),\nranges (--total-spend 1000.., --order-count "
                               "2..), views (--view stale:30, --view no-order:90)\n",
                               extra, sizeof extra / sizeof extra[0]);
}
