/*  =========================================================================
    cmd_io - `crm export --csv|--jsonl|--excel|--xlsx`

    Walks the record's descriptor, so every kind exports the same way (and
    cmd_import.c reads it back). CSV: a header row of field names; lists
    joined by ';', maps as key=value;key=value, enums by name, times as
    ISO-8601. JSON Lines: one object per line, as `--json` prints them.

    CSV injection: a spreadsheet runs a cell that starts with '=', '+', '-',
    '@', a tab or a carriage return as a formula. Export writes such cells
    with a leading single quote (OWASP's advice; spreadsheets show the text
    and hide the quote), and also cells that already start with a quote, so
    that import can remove exactly one leading quote from every cell and get
    every value back (a phone such as +4915... included). --raw turns both
    off.
    =========================================================================
*/
#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "entity.h"

#define EXPORT_PAGE 1000

/* ==== Export ==== */

/* True if a spreadsheet would run S as a formula - or S starts with the
   quote that marks one, so that import can always remove exactly one. */
static bool
s_formula_like(const char *s)
{
    return *s && strchr("=+-@\t\r'", *s);
}

void
cmd_csv_cell(FILE *out, const char *s, bool raw, char sep)
{
    const char *guard = !raw && s_formula_like(s) ? "'" : ""; /* OWASP: text, not a formula */
    if (!strpbrk(s, "\"\r\n") && !strchr(s, sep)) {
        fprintf(out, "%s%s", guard, s);
        return;
    }
    fputc('"', out);
    fputs(guard, out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static const char s_export_usage[] =
    "usage: crm export --csv|--jsonl [--kind KIND] [--out FILE] [--raw] [--FIELD VALUE]...\n"
    "\n"
    "Writes every record (default: customers) matching the filters, in id order, as CSV\n"
    "with a header row or as JSON Lines, to FILE or standard output. A CSV cell a\n"
    "spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage\n"
    "return) is written with a leading single quote, as is one that starts with a quote;\n"
    "'crm import' removes it again. --raw writes every cell exactly as stored.\n";

static int s_export(int argc, char **argv, cli_ctx_t *ctx, long *exported, bool quiet);

int
cmd_export(int argc, char **argv, cli_ctx_t *ctx)
{
    long count;
    return s_export(argc, argv, ctx, &count, false);
}

int
cmd_export_counted(int argc, char **argv, cli_ctx_t *ctx, char *count_out, size_t n)
{
    long count = 0;
    int rc = s_export(argc, argv, ctx, &count, true);
    snprintf(count_out, n, "%ld", count);
    return rc;
}

/* The export itself; *EXPORTED gets the number of records written. */
static int
s_export(int argc, char **argv, cli_ctx_t *ctx, long *exported, bool quiet)
{
    const char *kind = "customer", *outpath = NULL;
    int fmt = 0; /* 1 csv, 2 jsonl */
    bool raw = false;
    char *rest[ENTITY_MAX_ARGS + 1];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_export_usage, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--csv")) {
            fmt = 1;
        } else if (!strcmp(argv[i], "--jsonl")) {
            fmt = 2;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc) {
            kind = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            outpath = argv[++i];
        } else if (nrest < ENTITY_MAX_ARGS) {
            rest[nrest++] = argv[i];
        }
    }
    const crm_entity_t *e = crm_entity_by_name(kind);
    if (!e || !fmt) {
        fprintf(stderr, "crm export: %s\n\n%s", e ? "choose --csv or --jsonl" : "unknown --kind",
                s_export_usage);
        return EXIT_USAGE;
    }
    entity_args_t a;
    int rc = entity_parse_args(e, NULL, nrest, rest, &a);
    if (rc != EXIT_OK)
        return rc;
    FILE *out = outpath ? fopen(outpath, "w") : out_data_stdout();
    if (!out) {
        fprintf(stderr, "crm export: cannot write '%s': %s\n", outpath, strerror(errno));
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    long count = 0;
    if ((rc = conn_open(ctx, &conn)) != EXIT_OK)
        goto cleanup;
    if (fmt == 1)
        for (unsigned i = 0; i < e->desc->n_fields; i++)
            fprintf(out, "%s%s", i ? "," : "", e->desc->fields[i].name);
    if (fmt == 1)
        fputc('\n', out);
    char after[32] = "";
    for (;;) {
        Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
        Crm__Reply *reply = NULL;
        er.filters = a.filter_ptrs;
        er.n_filters = a.nfilters;
        er.limit = EXPORT_PAGE;
        er.after = after;
        if ((rc = entity_call(conn, CRM__OP__OP_ENTITY_LIST, e, &er, &reply)) != EXIT_OK)
            break;
        for (size_t i = 0; i < entity_count(reply); i++) {
            ProtobufCMessage *rec = entity_record(e, reply, i);
            if (!rec)
                continue;
            count++;
            if (fmt == 2) {
                out_json(out, rec);
            } else {
                for (unsigned j = 0; j < e->desc->n_fields; j++) {
                    const ProtobufCFieldDescriptor *fd = &e->desc->fields[j];
                    bool is_time = (crm_entity_flags(e, fd->name) & CRM_F_TIME) != 0;
                    char *v = crm_record_format(rec, fd, is_time, false);
                    if (j)
                        fputc(',', out);
                    cmd_csv_cell(out, v, raw, ',');
                    free(v);
                }
                fputc('\n', out);
            }
            crm_proto_free(&rec);
        }
        snprintf(after, sizeof after, "%s", reply->entity->next_after);
        conn_reply_free(&reply);
        if (!*after)
            break;
    }
    *exported = count;
    if (rc == EXIT_OK && outpath && !quiet)
        printf("exported %ld %s record%s to %s\n", count, e->name, count == 1 ? "" : "s",
               outpath);
cleanup:
    conn_destroy(&conn);
    if (!outpath)
        fflush(out);
    else if (fclose(out) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "crm export: writing '%s' failed: %s\n", outpath, strerror(errno));
        rc = EXIT_USAGE;
    }
    return rc;
}
