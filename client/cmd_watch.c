/*  =========================================================================
    cmd_watch - `crm watch`: the live change feed, one line per change

    Resumable: the client keeps the last sequence number it has seen (from
    events and from progress markers). If the server falls silent for
    SILENCE_MS (it sends a progress marker every second) the client
    reconnects and asks again from that number; anything at or below it is
    dropped, so each change is printed exactly once, in order. Once it has
    started, it reconnects for as long as it runs: a server that is down or
    restarting is tried again after 0.5 s, then 1, 2, 4... at most
    BACKOFF_MAX_MS apart, with a status line on stderr for each try and one
    when it is back. Only a refusal (the user disabled, the key rotated) ends
    it. On Ctrl-C it prints that number so a later `crm watch --since N`
    goes on from there.
    =========================================================================
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "conn.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"

#define SILENCE_MS 3500
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 30000

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const char s_usage[] =
    "usage: crm watch [--since SEQ] [--kind KIND]... [--customer ID] [--owner USER]\n"
    "                 [--department] [--json]\n"
    "\n"
    "Prints every change you may see as it is committed: time, sequence number, user,\n"
    "record and the changed fields with their new values (masked as your reads are).\n"
    "--since SEQ first replays the changes after SEQ from the server's log. --department\n"
    "(managers) shows only changes made by your department. Once started, a watch stays:\n"
    "if the server goes away (a restart, the network) it says so and tries again - after\n"
    "0.5 s, then 1, 2, 4... at most 30 s apart - and goes on after the last change it\n"
    "printed, with nothing missed and nothing twice. Ctrl-C stops and prints the last\n"
    "sequence number, to resume from with --since.\n";

/* One part of an event: "op kind id  field=value ..." (or its JSON object). */
static void
s_print_part(cli_ctx_t *ctx, const Crm__EventPart *p)
{
    const crm_entity_t *e = crm_entity_by_name(p->kind);
    ProtobufCMessage *rec = NULL;
    char errbuf[CRM_ERRBUF], op[16];
    if (e && p->record.len)
        crm_proto_unpack_shown(e->desc, p->record.data, p->record.len, &rec, errbuf);
    crm_record_enum_name(&crm__change_op__descriptor, p->op, op, sizeof op);
    if (ctx->json) {
        printf("{\"op\":\"%s\",\"kind\":", op);
        out_json_str(stdout, p->kind);
        printf(",\"id\":");
        out_json_str(stdout, p->id);
        printf(",\"fields\":[");
        for (size_t i = 0; i < p->n_fields; i++) {
            printf("%s", i ? "," : "");
            out_json_str(stdout, p->fields[i]);
        }
        printf("]");
        if (rec) {
            printf(",\"record\":");
            out_json_inline(stdout, rec);
        }
        printf("}");
    } else {
        printf("%s %s %s", op, p->kind, p->id);
        for (size_t i = 0, shown = 0; rec && i < p->n_fields && p->op != CRM__CHANGE_OP__DELETE;
             i++) {
            const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, p->fields[i]);
            if (!fd || (crm_entity_flags(e, fd->name) & CRM_F_SYSTEM))
                continue;
            bool is_time = (crm_entity_flags(e, fd->name) & CRM_F_TIME) != 0;
            char *raw = crm_record_format(rec, fd, is_time, true);
            char *v = out_escape(raw); /* one event, one line */
            printf("%s%s=%s", shown++ ? " " : "  ", fd->name, v);
            free(v);
            free(raw);
        }
    }
    crm_proto_free(&rec);
}

/* One event: every record of one committed change, under one sequence
   number - the first on the header line, the others indented below it. */
static void
s_print_event(cli_ctx_t *ctx, const Crm__Event *ev)
{
    char when[40];
    if (ctx->json) {
        printf("{\"seq\":%llu,\"time\":%lld,\"actor\":", (unsigned long long)ev->seq,
               (long long)ev->time);
        out_json_str(stdout, ev->actor);
        printf(",\"commit_us\":%lld,\"parts\":[", (long long)ev->commit_us);
        for (size_t i = 0; i < ev->n_parts; i++) {
            printf("%s", i ? "," : "");
            s_print_part(ctx, ev->parts[i]);
        }
        printf("]}\n");
    } else {
        out_time(ev->time, OUT_TIME_LINE, when); /* the user's time zone */
        int indent = printf("%s  #%llu  %s  ", when, (unsigned long long)ev->seq, ev->actor);
        for (size_t i = 0; i < ev->n_parts; i++) {
            if (i)
                printf("%*s", indent, "");
            s_print_part(ctx, ev->parts[i]);
            printf("\n");
        }
        if (ev->n_parts == 0)
            printf("\n");
    }
    fflush(stdout);
}

int
cmd_watch(int argc, char **argv, cli_ctx_t *ctx)
{
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
    char *kinds[8];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
            fputs(s_usage, stdout);
            return EXIT_OK;
        }
        if (!strcmp(opt, "--department")) {
            w.department = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "crm watch: unknown option or missing value '%s'\n\n%s", opt, s_usage);
            return EXIT_USAGE;
        }
        const char *val = argv[++i];
        if (!strcmp(opt, "--since")) {
            char *end;
            w.since = strtoull(val, &end, 10);
            if (!*val || *end) {
                fprintf(stderr, "crm watch: --since takes a sequence number\n");
                return EXIT_USAGE;
            }
        } else if (!strcmp(opt, "--kind") && w.n_kinds < 8) {
            kinds[w.n_kinds++] = (char *)val;
        } else if (!strcmp(opt, "--customer")) {
            w.customer = (char *)val;
        } else if (!strcmp(opt, "--owner")) {
            w.owner = (char *)val;
        } else {
            fprintf(stderr, "crm watch: unknown option '%s'\n\n%s", opt, s_usage);
            return EXIT_USAGE;
        }
    }
    w.kinds = kinds;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t last = w.since;
    bool started = false, lost = false;
    int rc = EXIT_OK, backoff_ms = BACKOFF_FIRST_MS;
    conn_t *conn = NULL;
    while (!s_stop && rc == EXIT_OK) {
        Crm__Request req = CRM__REQUEST__INIT;
        req.op = CRM__OP__OP_WATCH;
        req.body_case = CRM__REQUEST__BODY_WATCH;
        req.watch = &w;
        w.since = last;
        if ((rc = conn_open(ctx, &conn)) != EXIT_OK)
            break;
        /* the first answer must be ours: it says where delivery starts */
        Crm__Reply *reply = NULL;
        if ((rc = conn_call(conn, &req, &reply)) != EXIT_OK) {
            if (!started || rc != EXIT_UNREACHABLE || conn_auth_failed(conn))
                break; /* a first try fails fast; a refusal is final */
            /* the server is down or restarting: try again, less and less often */
            fprintf(stderr, "crm watch: no answer from %s; retrying in %.1f s (resumes after #%llu)\n",
                    conn_endpoint(conn), backoff_ms / 1000.0, (unsigned long long)last);
            conn_destroy(&conn);
            for (int slept = 0; slept < backoff_ms && !s_stop; slept += 100)
                nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
            backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
            lost = true;
            rc = EXIT_OK;
            continue;
        }
        if (lost)
            fprintf(stderr, "crm watch: reconnected to %s; resuming after #%llu\n",
                    conn_endpoint(conn), (unsigned long long)last);
        lost = false;
        backoff_ms = BACKOFF_FIRST_MS;
        if (!started && reply->body_case == CRM__REPLY__BODY_PROGRESS) {
            last = reply->progress->seq;
            fprintf(stderr, "watching from sequence %llu (newest %llu); Ctrl-C to stop\n",
                    (unsigned long long)last, (unsigned long long)reply->progress->last);
        }
        started = true;
        conn_reply_free(&reply);
        while (!s_stop) {
            int got = conn_recv(conn, 200, &reply);
            static int silent_ms = 0;
            if (got != EXIT_OK) {
                silent_ms += 200;
                if (silent_ms >= SILENCE_MS) {
                    silent_ms = 0;
                    fprintf(stderr, "crm watch: the server fell silent; reconnecting from %llu\n",
                            (unsigned long long)last);
                    lost = true;
                    break;
                }
                continue;
            }
            silent_ms = 0;
            if (reply->status != CRM__ERROR_CODE__OK) {
                fprintf(stderr, "crm: %s (%s)\n", reply->message, crm_err_name(reply->status));
                rc = reply->status == CRM__ERROR_CODE__UNAUTHENTICATED ? EXIT_UNREACHABLE
                                                                       : EXIT_REFUSED;
                conn_reply_free(&reply);
                break;
            }
            if (reply->body_case == CRM__REPLY__BODY_EVENT && reply->event->seq > last) {
                s_print_event(ctx, reply->event);
                last = reply->event->seq;
            } else if (reply->body_case == CRM__REPLY__BODY_PROGRESS &&
                       reply->progress->seq > last) {
                last = reply->progress->seq;
            }
            conn_reply_free(&reply);
        }
        conn_destroy(&conn);
    }
    conn_destroy(&conn);
    if (started)
        fprintf(stderr, "stopped after sequence %llu; resume with: crm watch --since %llu\n",
                (unsigned long long)last, (unsigned long long)last);
    return rc;
}
