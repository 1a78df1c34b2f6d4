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
    it, and so does a server whose history is not the one the client saw
    (restored from a backup, or a replica promoted, after changes the client
    printed): each resume names the history its number belongs to. On
    Ctrl-C it prints that number and history, so that a later `crm watch
    --since N --history H` goes on from there.
    =========================================================================
*/
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "conn.h"
#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"

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
    "usage: crm watch [--since SEQ [--history ID]] [--kind KIND]... [--customer ID]\n"
    "                 [--owner USER] [--department] [--json]\n"
    "\n"
    "Prints every change you may see as it is committed, one line per record: time,\n"
    "sequence number, user, the record with its customer's name, and each changed field\n"
    "old → new (a new record: its fields), masked as your reads are. Lines are cut to\n"
    "the terminal's width (or $COLUMNS) with …; --wide, or a pipe without $COLUMNS,\n"
    "keeps them whole.\n"
    "--since SEQ first replays the changes after SEQ from the server's log (--since 0:\n"
    "all it keeps). --department (managers) shows only changes made by your department.\n"
    "Once started, a watch stays:\n"
    "if the server goes away (a restart, the network) it says so and tries again - after\n"
    "0.5 s, then 1, 2, 4... at most 30 s apart - and goes on after the last change it\n"
    "printed, with nothing missed and nothing twice. Ctrl-C stops and prints the last\n"
    "sequence number and the server's history id, to resume from with --since SEQ\n"
    "--history ID: a server restored from an older backup (or a promoted replica) whose\n"
    "history went another way after SEQ then refuses, saying from where to watch again,\n"
    "instead of sending its own changes under numbers you already saw.\n";

#define VALUE_MAX 32 /* display columns of one value on a line that must fit */

/* Append FMT to the growing line *BUF (*LEN bytes used). */
static void
s_add(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    char *grown = realloc(*buf, *len + (size_t)n + 1);
    CRM_ASSERT_ALLOC(grown);
    *buf = grown;
    va_start(ap, fmt);
    vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

/* FD of REC as shown on a line: escaped, "-" when empty, at most VALUE_MAX
   columns when the line must fit a width. Fresh. */
static char *
s_value(const crm_entity_t *e, const ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd,
        bool fit)
{
    if (!rec)
        return strdup("-");
    bool is_time = (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0;
    char *raw = crm_record_format(rec, fd, is_time, true);
    if (is_time && fd->label != PROTOBUF_C_LABEL_REPEATED && crm_record_get_i64(rec, fd->name)) {
        char when[40];
        out_time(crm_record_get_i64(rec, fd->name), OUT_TIME_TABLE, when);
        free(raw);
        raw = strdup(when);
    }
    char *v = out_escape(*raw ? raw : "-"); /* one change, one line */
    free(raw);
    return fit ? out_cut(v, VALUE_MAX) : v;
}

/* One part of an event as a line: "update customer c1 张伟  city 北京 → 上海,
   stage lead → prospect" - the record, whose it is (a customer's name; a
   child's customer's name when the server sends it), then for an update each
   changed field old → new, for a creation field=value. Fresh. */
static char *
s_part_line(const Crm__EventPart *p, bool fit)
{
    const crm_entity_t *e = crm_entity_by_name(p->kind);
    ProtobufCMessage *rec = NULL, *before = NULL;
    char errbuf[CRM_ERRBUF], op[16];
    char *line = NULL;
    size_t len = 0;
    if (e && p->record.len)
        crm_proto_unpack_shown(e->desc, p->record.data, p->record.len, &rec, errbuf);
    if (e && p->before.len)
        crm_proto_unpack_shown(e->desc, p->before.data, p->before.len, &before, errbuf);
    crm_record_enum_name(&crm__change_op__descriptor, p->op, op, sizeof op);
    s_add(&line, &len, "%s %s %s", op, p->kind, p->id);
    const char *name = rec && crm_record_field(e->desc, "name") ? crm_record_get_str(rec, "name") : "";
    const char *pf = e ? crm_entity_field_with(e, CRM_F_PARENT) : NULL;
    if (*p->customer_name) { /* a child: whose it is */
        char *n = out_escape(p->customer_name);
        s_add(&line, &len, " of %s", n);
        free(n);
    } else if (pf && rec && *crm_record_get_str(rec, pf)) {
        s_add(&line, &len, " of %s", crm_record_get_str(rec, pf));
    } else if (*name) {
        char *n = out_escape(name);
        s_add(&line, &len, " %s", n);
        free(n);
    }
    for (size_t i = 0, shown = 0; rec && i < p->n_fields && p->op != CRM__CHANGE_OP__DELETE;
         i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, p->fields[i]);
        if (!fd || (crm_entity_flags_of(e, fd) & CRM_F_SYSTEM) ||
            (pf && !strcmp(fd->name, pf) && p->op == CRM__CHANGE_OP__CREATE))
            continue; /* (a new child's customer is said above) */
        char *now = s_value(e, rec, fd, fit);
        if (p->op == CRM__CHANGE_OP__UPDATE) {
            char *was = s_value(e, before, fd, fit);
            s_add(&line, &len, "%s%s %s → %s", shown++ ? ", " : "  ", fd->name, was, now);
            free(was);
        } else {
            s_add(&line, &len, "%s%s=%s", shown++ ? " " : "  ", fd->name, now);
        }
        free(now);
    }
    crm_proto_free(&rec);
    crm_proto_free(&before);
    return line ? line : strdup("");
}

/* One part of an event as a JSON object: op, kind, id, fields, the record,
   the changed fields' previous values and the child's customer's name. */
static void
s_print_part_json(const Crm__EventPart *p)
{
    const crm_entity_t *e = crm_entity_by_name(p->kind);
    ProtobufCMessage *rec = NULL, *before = NULL;
    char errbuf[CRM_ERRBUF], op[16];
    if (e && p->record.len)
        crm_proto_unpack_shown(e->desc, p->record.data, p->record.len, &rec, errbuf);
    if (e && p->before.len)
        crm_proto_unpack_shown(e->desc, p->before.data, p->before.len, &before, errbuf);
    crm_record_enum_name(&crm__change_op__descriptor, p->op, op, sizeof op);
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
    if (before) {
        printf(",\"before\":");
        out_json_inline(stdout, before);
    }
    if (*p->customer_name) {
        printf(",\"customer_name\":");
        out_json_str(stdout, p->customer_name);
    }
    printf("}");
    crm_proto_free(&rec);
    crm_proto_free(&before);
}

/* One event: every record of one committed change, under one sequence
   number - the first on the header line (today's changes by time only,
   older ones with the date), the others indented below it;
   each line cut to the terminal's width (by display width) when there is
   one ($COLUMNS or a terminal), else whole. */
static void
s_print_event(cli_ctx_t *ctx, const Crm__Event *ev)
{
    char when[40];
    if (ctx->json) {
        out_time(ev->time, OUT_TIME_RFC3339, when);
        printf("{\"seq\":%llu,\"time\":\"%s\",\"actor\":", (unsigned long long)ev->seq, when);
        out_json_str(stdout, ev->actor);
        printf(",\"commit_us\":%lld,\"parts\":[", (long long)ev->commit_us);
        for (size_t i = 0; i < ev->n_parts; i++) {
            printf("%s", i ? "," : "");
            s_print_part_json(ev->parts[i]);
        }
        printf("]}\n");
    } else {
        size_t width = ctx->wide ? 0 : out_term_width(stdout);
        out_time(ev->time, OUT_TIME_LINE, when); /* the user's time zone */
        char today[40];
        out_time(crm_time_now_ms(), OUT_TIME_LINE, today);
        const char *sp = strchr(when, ' ');
        if (sp && !strncmp(when, today, (size_t)(sp - when) + 1))
            memmove(when, sp + 1, strlen(sp)); /* today's: the time says enough */
        char *actor = out_escape(ev->actor), head[200];
        int indent = snprintf(head, sizeof head, "%s  #%llu  %s  ", when,
                              (unsigned long long)ev->seq, actor);
        free(actor);
        for (size_t i = 0; i < ev->n_parts || i == 0; i++) {
            char *part = i < ev->n_parts ? s_part_line(ev->parts[i], width > 0) : strdup("");
            char *line = NULL;
            size_t len = 0;
            if (i == 0)
                s_add(&line, &len, "%s%s", head, part);
            else
                s_add(&line, &len, "%*s%s", indent, "", part);
            free(part);
            if (width)
                line = out_cut(line, width);
            printf("%s\n", line);
            free(line);
        }
    }
    fflush(stdout);
}

int
cmd_watch(int argc, char **argv, cli_ctx_t *ctx)
{
    Crm__WatchRequest w = CRM__WATCH_REQUEST__INIT;
    char *kinds[8];
    ctx->agent = false; /* a feed is its connection's: always direct (agent.h) */
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
        if (!strcmp(opt, "--since") || !strcmp(opt, "--history")) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(val, &end, 10);
            if (*val < '0' || *val > '9' || *end || errno == ERANGE) {
                fprintf(stderr, "crm watch: %s takes a number from 0 to %llu\n", opt,
                        (unsigned long long)UINT64_MAX);
                return EXIT_USAGE;
            }
            if (opt[2] == 'h') {
                w.history = n; /* where it began is not known: checked as from the start */
            } else {
                w.since = n;
                w.since_set = true; /* --since 0: from the first change the server keeps */
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
    w.batch = true; /* events due together come in one reply */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t last = w.since;
    bool started = false, lost = false, no_resume = false;
    int rc = EXIT_OK, backoff_ms = BACKOFF_FIRST_MS;
    conn_t *conn = NULL;
    while (!s_stop && rc == EXIT_OK) {
        Crm__Request req = CRM__REQUEST__INIT;
        req.op = CRM__OP__OP_WATCH;
        req.body_case = CRM__REQUEST__BODY_WATCH;
        req.watch = &w;
        w.since = last;
        w.since_set = w.since_set || started; /* a resume after #0 replays from the start */
        if ((rc = conn_open(ctx, &conn)) != EXIT_OK)
            break;
        /* the first answer must be ours: it says where delivery starts */
        Crm__Reply *reply = NULL;
        if ((rc = conn_call(conn, &req, &reply)) != EXIT_OK) {
            /* the server's history is not the one LAST is from (it was restored, or
               a replica promoted), or its log no longer reaches back to LAST: its
               message says where to go on from */
            no_resume = started && conn_last_status(conn) == CRM__ERROR_CODE__OUT_OF_RANGE;
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
        if (reply->body_case == CRM__REPLY__BODY_PROGRESS) {
            /* the history LAST belongs to from now on: a resume is checked against it */
            w.history = reply->progress->history;
            w.history_first = reply->progress->history_first;
            if (!started) {
                last = reply->progress->seq;
                fprintf(stderr, "watching from sequence %llu (newest %llu); Ctrl-C to stop\n",
                        (unsigned long long)last, (unsigned long long)reply->progress->last);
            }
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
                /* events missed, or another history: LAST is no place to resume from */
                no_resume = reply->status == CRM__ERROR_CODE__OUT_OF_RANGE;
                rc = reply->status == CRM__ERROR_CODE__UNAUTHENTICATED ? EXIT_UNREACHABLE
                                                                       : EXIT_REFUSED;
                conn_reply_free(&reply);
                break;
            }
            Crm__Event **evs; /* one event, or (batched) the events that were due */
            size_t nev = crm_proto_reply_events(reply, &evs);
            for (size_t i = 0; i < nev; i++)
                if (evs[i]->seq > last) {
                    s_print_event(ctx, evs[i]);
                    last = evs[i]->seq;
                }
            if (reply->body_case == CRM__REPLY__BODY_PROGRESS) {
                if (reply->progress->seq > last)
                    last = reply->progress->seq;
                /* the server went on with another history (a promotion, a re-sync)
                   before this: what follows, and a resume, are of that one */
                if (reply->progress->history) {
                    w.history = reply->progress->history;
                    w.history_first = reply->progress->history_first;
                }
            }
            conn_reply_free(&reply);
        }
        conn_destroy(&conn);
    }
    conn_destroy(&conn);
    if (started && !no_resume && w.history)
        fprintf(stderr,
                "stopped after sequence %llu; resume with: crm watch --since %llu --history %llu\n",
                (unsigned long long)last, (unsigned long long)last,
                (unsigned long long)w.history);
    else if (started && !no_resume)
        fprintf(stderr, "stopped after sequence %llu; resume with: crm watch --since %llu\n",
                (unsigned long long)last, (unsigned long long)last);
    return rc;
}
