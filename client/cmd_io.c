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
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"
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
    "usage: crm export --csv|--excel|--jsonl|--xlsx FILE [--kind KIND] [--out FILE] [--raw]\n"
    "                  [--FIELD VALUE[,VALUE]]... [--view NAME] [--unowned] [--limit N]\n"
    "                  [--after ID]\n"
    "\n"
    "Writes every record (default: customers) matching the filters - as 'list' takes them:\n"
    "filters ANDed, A,B for A or B, --limit N records after --after ID - in id order, to FILE\n"
    "or standard output:\n"
    "  --csv        CSV with a header row of field names (what 'crm import' reads back)\n"
    "  --excel      the same CSV as Excel wants it: UTF-8 with a BOM (so Chinese Excel does\n"
    "               not read it as GBK) and CRLF line ends\n"
    "  --xlsx FILE  a real workbook (one sheet, a bold frozen header row, numbers as numbers)\n"
    "  --jsonl      JSON Lines, one object per record as --json prints them\n"
    "A CSV cell a spreadsheet would run as a formula (it starts with = + - @, a tab or a\n"
    "carriage return) is written with a leading single quote, as is one that starts with a\n"
    "quote; 'crm import' removes it again. --raw writes every cell exactly as stored. An\n"
    "xlsx cell is always text or a number, never a formula.\n";

typedef enum { FMT_NONE, FMT_CSV, FMT_EXCEL, FMT_JSONL, FMT_XLSX } s_fmt_t;

/* ==== libxlsxwriter, loaded for --xlsx only ==== */

/* crm does not link libxlsxwriter: it is opened here when an .xlsx is to be
   written. Linked, it made every crm command - `crm customer show` too - map
   and relocate it with minizip, libcrypto and zlib at start-up, 4 of crm's 27
   libraries and about a third of the dynamic loader's time (docs/PERFORMANCE.md,
   "One-shot CLI"). The functions are looked up by name once; their types come
   from xlsxwriter.h, so a changed prototype still fails to compile here.
   CRM_XLSXWRITER_SONAME is the library CMake found (CMakeLists.txt). */
#define LXW_FUNCS(X)                                                                               \
    X(workbook_new_opt)                                                                            \
    X(workbook_add_worksheet)                                                                      \
    X(workbook_add_format)                                                                         \
    X(workbook_close)                                                                              \
    X(format_set_bold)                                                                             \
    X(worksheet_write_string)                                                                      \
    X(worksheet_write_number)                                                                      \
    X(worksheet_freeze_panes)                                                                      \
    X(worksheet_set_column)                                                                        \
    X(lxw_strerror)

static struct {
#define X(f) __typeof__(f) *f;
    LXW_FUNCS(X)
#undef X
} s_lxw;

/* Open libxlsxwriter and find its functions, once; false after saying why. */
static bool
s_lxw_load(void)
{
    static bool loaded;
    if (loaded)
        return true;
    void *lib = dlopen(CRM_XLSXWRITER_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "crm export: --xlsx needs %s, which cannot be loaded: %s (--csv or "
                        "--excel work without it)\n", CRM_XLSXWRITER_SONAME, dlerror());
        return false;
    }
    void *sym;
#define X(f)                                                                                       \
    if (!(sym = dlsym(lib, #f))) {                                                                 \
        fprintf(stderr, "crm export: %s has no '%s'\n", CRM_XLSXWRITER_SONAME, #f);                \
        dlclose(lib);                                                                              \
        return false;                                                                              \
    }                                                                                              \
    memcpy(&s_lxw.f, &sym, sizeof sym); /* ISO C has no cast from void * to a function */
    LXW_FUNCS(X)
#undef X
    loaded = true; /* the library stays open until exit */
    return true;
}

/* Where an export's records go, one format at a time. */
typedef struct {
    s_fmt_t fmt;
    const crm_entity_t *e;
    FILE *out;              /* CSV, Excel CSV, JSON Lines */
    bool raw;               /* --raw: no formula guard */
    lxw_workbook *wb;       /* --xlsx */
    lxw_worksheet *ws;
    lxw_format *bold;
    lxw_row_t row;
    size_t width[128];      /* xlsx column widths, in characters */
    long count;             /* records written */
    bool full;              /* the sheet has no room left */
} s_writer_t;

static bool
s_numeric(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED || (crm_entity_flags_of(e, fd) & CRM_F_TIME))
        return false;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_DOUBLE: case PROTOBUF_C_TYPE_FLOAT:
        return true;
    default:
        return false;
    }
}

static void
s_write_header(s_writer_t *w)
{
    const ProtobufCMessageDescriptor *d = w->e->desc;
    if (w->fmt == FMT_XLSX) {
        for (unsigned i = 0; i < d->n_fields; i++) {
            s_lxw.worksheet_write_string(w->ws, 0, (lxw_col_t)i, d->fields[i].name, w->bold);
            w->width[i < 128 ? i : 127] = strlen(d->fields[i].name) + 2;
        }
        s_lxw.worksheet_freeze_panes(w->ws, 1, 0);
        w->row = 1;
        return;
    }
    if (w->fmt == FMT_JSONL)
        return;
    if (w->fmt == FMT_EXCEL)
        fputs("\xEF\xBB\xBF", w->out); /* Excel reads a CSV without it as the local code page */
    for (unsigned i = 0; i < d->n_fields; i++)
        fprintf(w->out, "%s%s", i ? "," : "", d->fields[i].name);
    fputs(w->fmt == FMT_EXCEL ? "\r\n" : "\n", w->out);
}

static void
s_write_record(s_writer_t *w, const ProtobufCMessage *rec)
{
    const ProtobufCMessageDescriptor *d = w->e->desc;
    if (w->fmt == FMT_JSONL) {
        out_json(w->out, rec);
        w->count++;
        return;
    }
    if (w->fmt == FMT_XLSX && w->row >= LXW_ROW_MAX) {
        w->full = true;
        return;
    }
    for (unsigned j = 0; j < d->n_fields; j++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[j];
        bool is_time = (crm_entity_flags_of(w->e, fd) & CRM_F_TIME) != 0;
        char *v = crm_record_format(rec, fd, is_time, false);
        if (w->fmt == FMT_XLSX) {
            char *end = NULL;
            double num = *v ? strtod(v, &end) : 0;
            if (*v && s_numeric(w->e, fd) && end && !*end)
                s_lxw.worksheet_write_number(w->ws, w->row, (lxw_col_t)j, num, NULL);
            else if (*v) /* a string cell: shown as text, never run as a formula */
                s_lxw.worksheet_write_string(w->ws, w->row, (lxw_col_t)j, v, NULL);
            size_t cw = crm_utf8_width(v) + 2;
            if (j < 128 && cw > w->width[j])
                w->width[j] = cw > 60 ? 60 : cw;
        } else {
            if (j)
                fputc(',', w->out);
            cmd_csv_cell(w->out, v, w->raw, ',');
        }
        free(v);
    }
    if (w->fmt == FMT_XLSX)
        w->row++;
    else
        fputs(w->fmt == FMT_EXCEL ? "\r\n" : "\n", w->out);
    w->count++;
}

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
    s_writer_t w;
    char *rest[ENTITY_MAX_ARGS + 1];
    int nrest = 0;
    memset(&w, 0, sizeof w);
    *exported = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_export_usage, stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--csv")) {
            w.fmt = FMT_CSV;
        } else if (!strcmp(argv[i], "--excel")) {
            w.fmt = FMT_EXCEL;
        } else if (!strcmp(argv[i], "--jsonl")) {
            w.fmt = FMT_JSONL;
        } else if (!strcmp(argv[i], "--xlsx") && i + 1 < argc) {
            w.fmt = FMT_XLSX;
            outpath = argv[++i];
        } else if (!strcmp(argv[i], "--raw")) {
            w.raw = true;
        } else if (!strcmp(argv[i], "--kind") && i + 1 < argc) {
            kind = argv[++i];
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            outpath = argv[++i];
        } else if (nrest < ENTITY_MAX_ARGS) {
            rest[nrest++] = argv[i];
        }
    }
    const crm_entity_t *e = crm_entity_by_name(kind);
    if (!e) {
        char kinds[256] = "";
        size_t used = 0;
        for (const crm_entity_t *k = crm_entity_all(); k->name && used < sizeof kinds; k++)
            used += (size_t)snprintf(kinds + used, sizeof kinds - used, "%s%s", used ? ", " : "",
                                     k->name);
        fprintf(stderr, "crm export: unknown --kind '%s' (kinds: %s)\n", kind, kinds);
        return EXIT_USAGE;
    }
    if (!w.fmt) {
        fprintf(stderr, "crm export: choose --csv, --excel, --jsonl or --xlsx FILE\n\n%s",
                s_export_usage);
        return EXIT_USAGE;
    }
    entity_args_t a;
    int rc = entity_parse_args(e, NULL, nrest, rest, &a);
    if (rc != EXIT_OK)
        return rc;
    if (a.npos || a.count || a.sort) {
        fprintf(stderr, "crm export: %s\n", a.npos ? "unexpected argument (filters go as --FIELD VALUE)"
                                                   : "--count and --sort are for 'list'");
        return EXIT_USAGE;
    }
    w.e = e;
    if (w.fmt == FMT_XLSX && !s_lxw_load())
        return EXIT_USAGE;
    if (w.fmt == FMT_XLSX) {
        lxw_workbook_options opt = {.constant_memory = LXW_TRUE, .tmpdir = NULL};
        w.wb = s_lxw.workbook_new_opt(outpath, &opt);
        w.ws = w.wb ? s_lxw.workbook_add_worksheet(w.wb, e->name) : NULL;
        if (!w.ws) {
            fprintf(stderr, "crm export: cannot write '%s'\n", outpath);
            s_lxw.workbook_close(w.wb);
            return EXIT_USAGE;
        }
        w.bold = s_lxw.workbook_add_format(w.wb);
        s_lxw.format_set_bold(w.bold);
    } else {
        w.out = outpath ? fopen(outpath, "w") : out_data_stdout();
        if (!w.out) {
            fprintf(stderr, "crm export: cannot write '%s': %s\n", outpath, strerror(errno));
            return EXIT_USAGE;
        }
    }
    conn_t *conn = NULL;
    if ((rc = conn_open(ctx, &conn)) != EXIT_OK)
        goto cleanup;
    s_write_header(&w);
    bool or_values = false;
    for (size_t i = 0; i < a.nfilters; i++)
        or_values = or_values || (strchr(a.filters[i].value, ',') && !strstr(a.filters[i].value, ".."));
    if (or_values) { /* A,B: the union of the requests, merged in id order (query.c) */
        ProtobufCMessage **recs = NULL;
        size_t n = 0;
        if ((rc = entity_query_gather(conn, e, &a, &recs, &n)) == EXIT_OK)
            for (size_t i = 0; i < n; i++)
                s_write_record(&w, recs[i]);
        for (size_t i = 0; i < n; i++)
            crm_proto_free(&recs[i]);
        free(recs);
        goto done;
    }
    char after[32];
    snprintf(after, sizeof after, "%s", a.after ? a.after : "");
    for (;;) {
        Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
        Crm__Reply *reply = NULL;
        long left = a.limit ? (long)a.limit - w.count : EXPORT_PAGE;
        if (left <= 0)
            break;
        er.filters = a.filter_ptrs;
        er.n_filters = a.nfilters;
        er.limit = left < EXPORT_PAGE ? (uint32_t)left : EXPORT_PAGE;
        er.after = after;
        if ((rc = entity_call(conn, CRM__OP__OP_ENTITY_LIST, e, &er, &reply)) != EXIT_OK)
            break;
        for (size_t i = 0; i < entity_count(reply); i++) {
            ProtobufCMessage *rec = entity_record(e, reply, i);
            if (rec)
                s_write_record(&w, rec);
            crm_proto_free(&rec);
        }
        snprintf(after, sizeof after, "%s", reply->entity->next_after);
        conn_reply_free(&reply);
        if (!*after || w.full)
            break;
    }
done:
    *exported = w.count;
    if (w.full) {
        fprintf(stderr, "crm export: a sheet holds %d rows: the first %ld records were written; "
                        "narrow the filters or use --csv\n", LXW_ROW_MAX - 1, w.count);
        rc = rc == EXIT_OK ? EXIT_REFUSED : rc;
    }
    if (rc == EXIT_OK && outpath && !quiet)
        printf("exported %ld %s record%s to %s\n", w.count, e->name, w.count == 1 ? "" : "s",
               outpath);
cleanup:
    conn_destroy(&conn);
    if (w.fmt == FMT_XLSX) {
        for (unsigned j = 0; j < e->desc->n_fields && j < 128; j++)
            s_lxw.worksheet_set_column(w.ws, (lxw_col_t)j, (lxw_col_t)j, (double)w.width[j],
                                       NULL);
        lxw_error err = s_lxw.workbook_close(w.wb);
        if (err != LXW_NO_ERROR && rc == EXIT_OK) {
            fprintf(stderr, "crm export: writing '%s' failed: %s\n", outpath,
                    s_lxw.lxw_strerror(err));
            rc = EXIT_USAGE;
        }
    } else if (!outpath) {
        fflush(w.out);
    } else if (fclose(w.out) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "crm export: writing '%s' failed: %s\n", outpath, strerror(errno));
        rc = EXIT_USAGE;
    }
    return rc;
}
