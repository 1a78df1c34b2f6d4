/*  =========================================================================
    cmd_io - `crm import FILE` and `crm export --csv|--jsonl`

    Both walk the record's descriptor, so every kind imports and exports the
    same way. CSV: a header row of field names; lists joined by ';', maps as
    key=value;key=value, enums by name, times as ISO-8601. JSON Lines: one
    object per line, as `--json` prints them.

    Import sends the good records in batches of at most IMPORT_BATCH records
    and at most the server's request limit in bytes (asked with WHOAMI), so
    no batch is ever refused for its size; a single record over the limit is
    reported as a bad line (each record is created on its own, so one bad
    record never holds back the others) and
    reports every bad line with its line number, field and reason. The
    server-set fields (id, version, times, authors) are ignored on import, so
    an export imports into a fresh server unchanged.

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

#define IMPORT_BATCH 500
#define IMPORT_ENVELOPE 256           /* bytes of a request besides its records */
#define IMPORT_DEFAULT_MAX (1u << 20) /* a server that does not say its limit */
#define EXPORT_PAGE 1000

/* ==== Import ==== */

typedef struct {
    cli_ctx_t *ctx;
    conn_t *conn;
    const crm_entity_t *e;
    ProtobufCBinaryData batch[IMPORT_BATCH]; /* packed records waiting to be sent */
    long lines[IMPORT_BATCH];                /* their line numbers */
    size_t n;
    size_t bytes;      /* the batch's size on the wire, about */
    size_t max_bytes;  /* the server's request limit */
    bool raw;          /* --raw: keep a leading single quote */
    long ok, bad, total_lines;
    int rc;            /* EXIT_UNREACHABLE etc. stops the import */
    bool progress;     /* draw a progress bar on stderr */
    off_t size, done;  /* file size and bytes read, for the bar */
    /* CSV state */
    const ProtobufCFieldDescriptor *cols[128];
    size_t ncols, col;
    bool header_done;
    ProtobufCMessage *row;
    char row_error[CRM_ERRBUF];
    long line, row_line;
} s_import_t;

static void
s_progress(s_import_t *im, bool final)
{
    if (!im->progress)
        return;
    int pct = im->size ? (int)(100.0 * (double)im->done / (double)im->size) : 100;
    int bar = pct / 4;
    FILE *tty = out_raw_stderr(); /* the bar's own \r are not to be escaped */
    fprintf(tty, "\r[%.*s%*s] %3d%%  %ld imported, %ld with errors", bar,
            "=========================", 25 - bar, "", pct, im->ok, im->bad);
    if (final)
        fprintf(tty, "\n");
    fflush(tty);
}

static void
s_flush(s_import_t *im)
{
    if (im->n == 0 || im->rc != EXIT_OK)
        return;
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    er.records = im->batch;
    er.n_records = im->n;
    er.allow_duplicate = im->ctx->allow_duplicate;
    int rc = entity_call(im->conn, CRM__OP__OP_ENTITY_IMPORT, im->e, &er, &reply);
    if (rc != EXIT_OK) {
        im->rc = rc;
    } else {
        for (size_t i = 0; i < reply->entity->n_results; i++) {
            const Crm__ImportResult *r = reply->entity->results[i];
            long line = r->index < im->n ? im->lines[r->index] : -1;
            if (r->status == CRM__ERROR_CODE__OK) {
                im->ok++;
            } else {
                im->bad++;
                if (im->progress)
                    fprintf(out_raw_stderr(), "\r%*s\r", 70, "");
                fprintf(stderr, "line %ld: %s\n", line, r->message);
            }
        }
    }
    conn_reply_free(&reply);
    for (size_t i = 0; i < im->n; i++)
        free(im->batch[i].data);
    im->n = 0;
    im->bytes = IMPORT_ENVELOPE;
    s_progress(im, false);
}

/* Queue REC (freed here) from LINE, or report ERROR for that line. */
static void
s_queue(s_import_t *im, ProtobufCMessage *rec, long line, const char *error)
{
    if (error && *error) {
        im->bad++;
        if (im->progress)
            fprintf(out_raw_stderr(), "\r%*s\r", 70, "");
        fprintf(stderr, "line %ld: %s\n", line, error);
    } else if (rec) {
        size_t len;
        uint8_t *data = crm_proto_pack(rec, &len);
        size_t cost = len + 16; /* its tag and length prefix, generously */
        if (IMPORT_ENVELOPE + cost > im->max_bytes) {
            im->bad++;
            if (im->progress)
                fprintf(out_raw_stderr(), "\r%*s\r", 70, "");
            fprintf(stderr,
                    "line %ld: the record is %zu bytes, over the server's request limit of %zu "
                    "bytes (crmd --max-msg): shorten its fields\n",
                    line, len, im->max_bytes);
            free(data);
        } else {
            if (im->bytes + cost > im->max_bytes)
                s_flush(im); /* the batch is full by bytes */
            im->batch[im->n].data = data;
            im->batch[im->n].len = len;
            im->bytes += cost;
            im->lines[im->n++] = line;
            if (im->n == IMPORT_BATCH)
                s_flush(im);
        }
    }
    crm_proto_free(&rec);
}

/* The largest request the server accepts (WHOAMI says; older servers do not). */
static size_t
s_server_max_msg(conn_t *conn)
{
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__Reply *reply = NULL;
    size_t max = IMPORT_DEFAULT_MAX;
    req.op = CRM__OP__OP_WHOAMI;
    if (conn_call(conn, &req, &reply) == EXIT_OK && reply->body_case == CRM__REPLY__BODY_WHOAMI &&
        reply->whoami->max_msg > IMPORT_ENVELOPE * 4)
        max = (size_t)reply->whoami->max_msg;
    conn_reply_free(&reply);
    return max;
}

/* Fields the server sets: ignored on import. */
static bool
s_server_set(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd)
{
    return (crm_entity_flags(e, fd->name) & (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT |
                                             CRM_F_DERIVED | CRM_F_STAMPED)) != 0;
}

/* Set FD of REC from one CSV cell: lists split on ';'. */
static bool
s_set_cell(s_import_t *im, const ProtobufCFieldDescriptor *fd, const char *cell, char *errbuf)
{
    bool is_time = (crm_entity_flags(im->e, fd->name) & CRM_F_TIME) != 0;
    if (fd->label != PROTOBUF_C_LABEL_REPEATED)
        return crm_record_set_text(im->row, fd, cell, is_time, errbuf) == CRM_OK;
    char *copy = strdup(cell), *save = NULL;
    bool ok = true;
    for (char *v = strtok_r(copy, ";", &save); v && ok; v = strtok_r(NULL, ";", &save))
        ok = crm_record_set_text(im->row, fd, v, is_time, errbuf) == CRM_OK;
    free(copy);
    return ok;
}

static void
s_csv_cell(void *data, size_t len, void *arg)
{
    s_import_t *im = arg;
    char *cell = data ? (char *)data : (char *)"";
    if (data && im->header_done && !im->raw && *cell == '\'') /* export's formula guard */
        memmove(cell, cell + 1, len--);
    if (data) { /* a quoted cell written on Windows: CRLF line breaks become LF */
        char *w = cell;
        for (size_t r = 0; r < len; r++)
            if (!(cell[r] == '\r' && r + 1 < len && cell[r + 1] == '\n'))
                *w++ = cell[r];
        *w = '\0';
    }
    if (!im->header_done) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(im->e->desc, cell);
        if (!fd && !*im->row_error)
            snprintf(im->row_error, sizeof im->row_error,
                     "unknown column '%.60s' (columns are %s field names)", cell, im->e->name);
        if (im->ncols < 128)
            im->cols[im->ncols++] = fd;
        return;
    }
    if (!im->row) {
        im->row = crm_proto_new(im->e->desc);
        im->row_line = im->line;
    }
    if (im->col >= im->ncols) {
        if (!*im->row_error)
            snprintf(im->row_error, sizeof im->row_error, "more cells than header columns");
    } else if (*cell && !*im->row_error) {
        const ProtobufCFieldDescriptor *fd = im->cols[im->col];
        if (fd && !s_server_set(im->e, fd))
            s_set_cell(im, fd, cell, im->row_error); /* a failure leaves row_error set */
    }
    im->col++;
}

static void
s_csv_row(int c, void *arg)
{
    s_import_t *im = arg;
    (void)c;
    if (!im->header_done) {
        im->header_done = true;
        if (*im->row_error) { /* a bad header spoils every row: stop here */
            fprintf(stderr, "line 1: %s\n", im->row_error);
            im->rc = EXIT_USAGE;
        }
        im->row_error[0] = '\0';
        return;
    }
    im->total_lines++;
    s_queue(im, im->row, im->row ? im->row_line : im->line, im->row_error);
    im->row = NULL;
    im->row_error[0] = '\0';
    im->col = 0;
}

static void
s_import_csv(s_import_t *im, FILE *f)
{
    struct csv_parser p;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    csv_init(&p, CSV_APPEND_NULL | CSV_EMPTY_IS_NULL);
    while (im->rc == EXIT_OK && (n = getline(&line, &cap, f)) > 0) {
        im->line++;
        im->done += n;
        if (csv_parse(&p, line, (size_t)n, s_csv_cell, s_csv_row, im) != (size_t)n) {
            fprintf(stderr, "line %ld: malformed CSV: %s\n", im->line,
                    csv_strerror(csv_error(&p)));
            im->bad++;
            break;
        }
    }
    csv_fini(&p, s_csv_cell, s_csv_row, im);
    csv_free(&p);
    crm_proto_free(&im->row);
    free(line);
}

/* Set FD of REC from one JSON value. E is NULL inside a sub-message (an
   order line), where a time is a part named "at" or "..._at". */
static bool
s_set_json(const crm_entity_t *e, ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd,
           json_t *v, char *errbuf)
{
    size_t nl = strlen(fd->name);
    bool is_time = e ? (crm_entity_flags(e, fd->name) & CRM_F_TIME) != 0
                     : fd->type == PROTOBUF_C_TYPE_INT64 &&
                           (!strcmp(fd->name, "at") || (nl > 3 && !strcmp(fd->name + nl - 3, "_at")));
    char num[32];
    if (json_is_null(v))
        return true;
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) {
            if (!s_set_json(e, rec, fd, item, errbuf))
                return false;
        }
        return true;
    }
    if (json_is_object(v) && fd->type == PROTOBUF_C_TYPE_MESSAGE && !crm_record_is_map(fd)) {
        /* a sub-message (an order line, an amount): its parts by name */
        const ProtobufCMessageDescriptor *sd = fd->descriptor;
        ProtobufCMessage *part = crm_record_add_message(rec, fd);
        const char *k;
        json_t *item;
        json_object_foreach(v, k, item) {
            const ProtobufCFieldDescriptor *sf = crm_record_field(sd, k);
            if (!sf) {
                snprintf(errbuf, CRM_ERRBUF, "field '%s': unknown part '%.40s'", fd->name, k);
                return false;
            }
            if (!s_set_json(NULL, part, sf, item, errbuf))
                return false;
        }
        return true;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *item;
        json_object_foreach(v, k, item) {
            char kv[2048];
            snprintf(kv, sizeof kv, "%s=%s", k, json_is_string(item) ? json_string_value(item) : "");
            if (crm_record_set_text(rec, fd, kv, false, errbuf) != CRM_OK)
                return false;
        }
        return true;
    }
    const char *text = num;
    if (json_is_string(v))
        text = json_string_value(v);
    else if (json_is_integer(v))
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_boolean(v))
        text = json_is_true(v) ? "true" : "false";
    else {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': unsupported JSON value", fd->name);
        return false;
    }
    return crm_record_set_text(rec, fd, text, is_time, errbuf) == CRM_OK;
}

static void
s_import_jsonl(s_import_t *im, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (im->rc == EXIT_OK && (n = getline(&line, &cap, f)) > 0) {
        im->line++;
        im->done += n;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        im->total_lines++;
        char errbuf[CRM_ERRBUF] = "";
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)n, 0, &jerr);
        ProtobufCMessage *rec = NULL;
        if (!obj || !json_is_object(obj)) {
            snprintf(errbuf, sizeof errbuf, "not a JSON object: %s", obj ? "" : jerr.text);
        } else {
            rec = crm_proto_new(im->e->desc);
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v) {
                const ProtobufCFieldDescriptor *fd = crm_record_field(im->e->desc, k);
                if (!fd) {
                    snprintf(errbuf, sizeof errbuf, "unknown field '%.60s' on '%s'", k,
                             im->e->name);
                    break;
                }
                if (!s_server_set(im->e, fd) && !s_set_json(im->e, rec, fd, v, errbuf))
                    break;
            }
        }
        json_decref(obj);
        s_queue(im, rec, im->line, errbuf);
    }
    free(line);
}

static const char s_import_usage[] =
    "usage: crm import FILE [--kind KIND] [--format csv|jsonl] [--raw] [--allow-duplicate]\n"
    "\n"
    "Reads records (default: customers) from a CSV file with a header row of field names, or\n"
    "from JSON Lines, and creates them in batches of at most 500 records and at most the\n"
    "server's request size. One leading single quote is removed from every CSV cell: it is\n"
    "how 'crm export' keeps spreadsheets from running cells as formulas (--raw keeps cells\n"
    "exactly as they are). Bad lines are reported as\n"
    "'line N: field ...: reason' and skipped; the good lines are imported all the same.\n"
    "Fields the server sets (id, version, created_at...) are ignored, so an export can be\n"
    "imported into another server. Exit code 0 if every line was imported, 1 if some were not.\n";

int
cmd_import(int argc, char **argv, cli_ctx_t *ctx)
{
    const char *path = NULL, *kind = "customer", *format = NULL;
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_import_usage, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc) {
            kind = argv[++i];
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            format = argv[++i];
        } else if (!strcmp(argv[i], "--allow-duplicate")) {
            ctx->allow_duplicate = true;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            fprintf(stderr, "crm import: unexpected argument '%s'\n\n%s", argv[i], s_import_usage);
            return EXIT_USAGE;
        }
    }
    s_import_t *im = calloc(1, sizeof *im);
    im->e = crm_entity_by_name(kind);
    if (!path || !im->e) {
        fprintf(stderr, "crm import: %s\n\n%s", path ? "unknown --kind" : "FILE is required",
                s_import_usage);
        free(im);
        return EXIT_USAGE;
    }
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "crm import: cannot open '%s': %s\n", path, strerror(errno));
        free(im);
        return EXIT_USAGE;
    }
    if (!format) {
        const char *dot = strrchr(path, '.');
        int c = fgetc(f);
        ungetc(c, f);
        format = (dot && !strcmp(dot, ".csv")) ? "csv" : (c == '{' ? "jsonl" : "csv");
    }
    struct stat st;
    im->size = fstat(fileno(f), &st) == 0 ? st.st_size : 0;
    im->progress = isatty(STDERR_FILENO) && !ctx->json;
    im->ctx = ctx;
    im->raw = raw;
    im->bytes = IMPORT_ENVELOPE;
    int rc = conn_open(ctx, &im->conn);
    if (rc == EXIT_OK)
        im->max_bytes = s_server_max_msg(im->conn);
    if (rc == EXIT_OK) {
        if (!strcmp(format, "csv"))
            s_import_csv(im, f);
        else if (!strcmp(format, "jsonl") || !strcmp(format, "json"))
            s_import_jsonl(im, f);
        else
            im->rc = EXIT_USAGE;
        s_flush(im);
        s_progress(im, true);
        rc = im->rc;
        if (rc == EXIT_OK || rc == EXIT_USAGE) {
            if (ctx->json)
                printf("{\"imported\":%ld,\"failed\":%ld}\n", im->ok, im->bad);
            else
                printf("imported %ld %s record%s; %ld line%s had errors\n", im->ok, im->e->name,
                       im->ok == 1 ? "" : "s", im->bad, im->bad == 1 ? "" : "s");
        }
        if (rc == EXIT_OK && im->bad)
            rc = EXIT_REFUSED;
    }
    for (size_t i = 0; i < im->n; i++)
        free(im->batch[i].data);
    conn_destroy(&im->conn);
    if (f != stdin)
        fclose(f);
    free(im);
    return rc;
}

/* ==== Export ==== */

/* True if a spreadsheet would run S as a formula - or S starts with the
   quote that marks one, so that import can always remove exactly one. */
static bool
s_formula_like(const char *s)
{
    return *s && strchr("=+-@\t\r'", *s);
}

static void
s_csv_write(FILE *out, const char *s, bool raw)
{
    const char *guard = !raw && s_formula_like(s) ? "'" : ""; /* OWASP: text, not a formula */
    if (!strpbrk(s, ",\"\r\n")) {
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
                    s_csv_write(out, v, raw);
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
