/*  =========================================================================
    cmd_import - `crm import FILE|-`: spreadsheets and JSON Lines in

    Owns:      mapping a file's columns to a kind's fields, building one
               record per line, batching them to the server, reporting every
               error of a line, the rejects file, and stopping on Ctrl-C.
    Must not:  decode bytes itself (sheet.c turns a file into UTF-8 lines) or
               know a kind's fields (the entity table has them and their labels).

    Columns. A header matches a field loosely: case, spaces, '-', '_' and '*'
    aside, by the field's name, the singular of a list ("phone"), or one of
    its labels in the entity table (姓名, 手机, 邮箱...). `--map 'COL=FIELD'`
    names the rest (FIELD may be custom.KEY, a key of the custom map, or empty
    to skip COL); `--ignore-column COL` skips one. Any other column is an
    error before anything is sent: a column silently dropped is data lost.

    Batches. Good records go in batches of at most IMPORT_BATCH records and at
    most the server's request limit in bytes (asked with WHOAMI), so no batch
    is ever refused for its size; a record over the limit is a bad line. Each
    record is created on its own, so one bad line never holds back the others.
    The server-set fields (id, version, times, authors) are ignored, so an
    export imports into a fresh server unchanged.

    Errors. Every cell of a line is checked, and every error of the line is
    reported together ("line 4: field 'phones': ...; field 'stage': ...").
    `--rejects FILE` writes each bad line, as it was, with an import_error
    column: fix the cells, import the file again (import_error is ignored).
    With `--upsert-by phones|emails` a line whose phone or e-mail names one
    existing customer updates it, so the fixed file creates nothing twice.

    CSV injection: import removes one leading single quote from every cell,
    the guard `crm export` adds (see cmd_io.c); --raw keeps cells as they are.
    =========================================================================
*/
#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
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
#include "sheet.h"
#include "suggest.h"

#define IMPORT_BATCH CRM_PROTO_IMPORT_MAX
#define IMPORT_ENVELOPE 256           /* bytes of a request besides its records */
#define IMPORT_DEFAULT_MAX (1u << 20) /* a server that does not say its limit */
#define IMPORT_MAX_COLS 128
#define IMPORT_MAX_OPTS 32
#define IMPORT_ERROR_COLUMN "import_error" /* the rejects file's column, ignored on import */
#define EXIT_INTERRUPTED 130               /* 128 + SIGINT, as shells report it */

/* Set by SIGINT: the import stops after the batch in flight. */
static volatile sig_atomic_t s_interrupted;

static void
s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* One column of the file. */
typedef struct {
    char *name;                          /* the header as written */
    const ProtobufCFieldDescriptor *fd;  /* the field it fills; NULL: skipped */
    char *custom_key;                    /* --map 'COL=custom.KEY': a key of the map fd */
} s_col_t;

/* The cells of one line as read, for --rejects. */
typedef struct {
    char **v;
    size_t n;
} s_cells_t;

typedef struct {
    cli_ctx_t *ctx;
    conn_t *conn;
    const crm_entity_t *e;
    const char *path;                         /* as given: "-" is standard input */
    /* options */
    bool raw;                                 /* --raw: keep a leading single quote */
    bool dry_run;                             /* --dry-run: check, write nothing */
    const char *upsert_by;                    /* --upsert-by: a field name */
    const char *rejects_path;                 /* --rejects FILE */
    long from_line;                           /* --from-line N: skip rows starting before N */
    const char *maps[IMPORT_MAX_OPTS];        /* --map 'COL=FIELD' */
    bool map_used[IMPORT_MAX_OPTS];
    size_t nmaps;
    const char *ignores[IMPORT_MAX_OPTS];     /* --ignore-column COL */
    size_t nignores;
    char sep;                                 /* --separator, or guessed from the header */
    /* the batch */
    ProtobufCBinaryData batch[IMPORT_BATCH];  /* packed records waiting to be sent */
    long lines[IMPORT_BATCH];                 /* their line numbers */
    s_cells_t pending[IMPORT_BATCH];          /* their cells, for --rejects */
    size_t n;
    size_t bytes;                             /* the batch's size on the wire, about */
    size_t max_bytes;                         /* the server's request limit */
    /* results */
    long ok, bad, created, updated, unchanged, total_lines;
    int rc;                                   /* EXIT_UNREACHABLE etc. stops the import */
    FILE *rejects;                            /* opened at the first reject */
    bool progress;                            /* draw a progress bar on stderr */
    off_t size, done;                         /* file size and bytes read, for the bar */
    /* CSV state */
    sheet_reader_t *rd;
    s_col_t cols[IMPORT_MAX_COLS];
    size_t ncols;
    bool header_done;
    s_cells_t row;                            /* the cells of the line being read */
    size_t rowcap;
    bool row_bad_bytes;                       /* a line of the row was not in the encoding */
    bool row_mixed;                           /* ... it was UTF-8 in a file read as GB18030 */
    bool row_nul;                             /* a cell of the row holds a NUL byte */
    long line;                                /* physical lines read */
    long next_line;                           /* where the next row starts */
} s_import_t;

static void
s_cells_free(s_cells_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

static void
s_progress(s_import_t *im, bool final)
{
    if (!im->progress)
        return;
    int pct = im->size ? (int)(100.0 * (double)im->done / (double)im->size) : 100;
    if (pct > 100)
        pct = 100;
    int bar = pct / 4;
    FILE *tty = out_raw_stderr(); /* the bar's own \r are not to be escaped */
    fprintf(tty, "\r[%.*s%*s] %3d%%  %ld imported, %ld with errors", bar,
            "=========================", 25 - bar, "", pct, im->ok, im->bad);
    if (final)
        fprintf(tty, "\n");
    fflush(tty);
}

/* ==== Rejects ==== */

/* Line LINE was not imported because of MSG: say so, and write its CELLS
   (NULL for JSON Lines) to the rejects file. */
static void
s_reject(s_import_t *im, long line, const s_cells_t *cells, const char *msg)
{
    im->bad++;
    if (im->progress)
        fprintf(out_raw_stderr(), "\r%*s\r", 70, "");
    if (im->ctx->json) {
        printf("{\"line\":%ld,\"error\":", line);
        out_json_str(stdout, msg);
        printf("}\n");
    } else {
        fprintf(stderr, "line %ld: %s\n", line, msg);
    }
    if (!im->rejects_path || !cells)
        return;
    if (!im->rejects) {
        im->rejects = fopen(im->rejects_path, "w");
        if (!im->rejects) {
            fprintf(stderr, "crm import: cannot write '%s': %s\n", im->rejects_path,
                    strerror(errno));
            im->rejects_path = NULL;
            return;
        }
        fputs("\xEF\xBB\xBF", im->rejects); /* UTF-8 with a BOM: Excel opens it as such */
        for (size_t j = 0; j < im->ncols; j++) {
            cmd_csv_cell(im->rejects, im->cols[j].name, true, ',');
            fputc(',', im->rejects);
        }
        fputs(IMPORT_ERROR_COLUMN "\r\n", im->rejects);
    }
    for (size_t j = 0; j < im->ncols; j++) {
        cmd_csv_cell(im->rejects, j < cells->n ? cells->v[j] : "", true, ',');
        fputc(',', im->rejects);
    }
    char where[CRM_ERRBUF * 3];
    snprintf(where, sizeof where, "line %ld: %s", line, msg);
    cmd_csv_cell(im->rejects, where, false, ',');
    fputs("\r\n", im->rejects);
}

/* ==== Batches ==== */

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
    er.dry_run = im->dry_run;
    er.upsert_by = (char *)(im->upsert_by ? im->upsert_by : "");
    /* Ctrl-C waits for the answer: the batch is either sent and counted or not sent */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int rc = entity_call(im->conn, CRM__OP__OP_ENTITY_IMPORT, im->e, &er, &reply);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc != EXIT_OK) {
        im->rc = rc;
    } else {
        for (size_t i = 0; i < reply->entity->n_results; i++) {
            const Crm__ImportResult *r = reply->entity->results[i];
            size_t k = r->index < im->n ? r->index : 0;
            if (r->status == CRM__ERROR_CODE__OK) {
                im->ok++;
                if (!strcmp(r->action, "updated"))
                    im->updated++;
                else if (!strcmp(r->action, "unchanged"))
                    im->unchanged++;
                else
                    im->created++;
            } else {
                s_reject(im, r->index < im->n ? im->lines[k] : -1,
                         r->index < im->n ? &im->pending[k] : NULL, r->message);
            }
        }
    }
    conn_reply_free(&reply);
    for (size_t i = 0; i < im->n; i++) {
        free(im->batch[i].data);
        s_cells_free(&im->pending[i]);
    }
    im->n = 0;
    im->bytes = IMPORT_ENVELOPE;
    s_progress(im, false);
}

/* Queue REC (freed here) from LINE with its CELLS (taken over), or reject
   the line for ERROR. */
static void
s_queue(s_import_t *im, ProtobufCMessage *rec, long line, const char *error, s_cells_t *cells)
{
    if (error && *error) {
        s_reject(im, line, cells, error);
    } else if (rec) {
        size_t len;
        uint8_t *data = crm_proto_pack(rec, &len);
        size_t cost = len + 16; /* its tag and length prefix, generously */
        if (IMPORT_ENVELOPE + cost > im->max_bytes) {
            char msg[CRM_ERRBUF];
            snprintf(msg, sizeof msg,
                     "the record is %zu bytes, over the server's request limit of %zu bytes "
                     "(crmd --max-msg): shorten its fields",
                     len, im->max_bytes);
            s_reject(im, line, cells, msg);
            free(data);
        } else {
            if (im->bytes + cost > im->max_bytes)
                s_flush(im); /* the batch is full by bytes */
            im->batch[im->n].data = data;
            im->batch[im->n].len = len;
            im->bytes += cost;
            im->lines[im->n] = line;
            if (cells) {
                im->pending[im->n] = *cells;
                cells->v = NULL;
                cells->n = 0;
            }
            if (++im->n == IMPORT_BATCH)
                s_flush(im);
        }
    }
    if (cells)
        s_cells_free(cells);
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
    return (crm_entity_flags_of(e, fd) &
            (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT | CRM_F_DERIVED |
             CRM_F_STAMPED)) != 0;
}

/* ==== Columns ==== */

/* The field of E whose name is nearest to the column NAME, if near enough. */
static const char *
s_suggest(const crm_entity_t *e, const char *name)
{
    char key[256], keys[64][64];
    const char *cands[64];
    size_t n = 0;
    crm_entity_label_key(name, key, sizeof key);
    for (unsigned i = 0; i < e->desc->n_fields && n < 64; i++, n++) {
        crm_entity_label_key(e->desc->fields[i].name, keys[n], sizeof keys[n]);
        cands[n] = keys[n];
    }
    const char *near = suggest_nearest(key, cands, n);
    for (size_t i = 0; near && i < n; i++)
        if (cands[i] == near)
            return e->desc->fields[i].name;
    return NULL;
}

/* True if the loose keys of A and B are equal. */
static bool
s_same_key(const char *a, const char *b)
{
    char ka[256], kb[256];
    crm_entity_label_key(a, ka, sizeof ka);
    crm_entity_label_key(b, kb, sizeof kb);
    return !strcmp(ka, kb);
}

/* Map the header row (im->row) to fields; EXIT_USAGE after reporting
   every column that cannot be mapped. */
static int
s_header(s_import_t *im)
{
    char unknown[1024] = "";
    size_t used = 0, nunknown = 0;
    int rc = EXIT_OK;
    const ProtobufCFieldDescriptor *custom = NULL;
    for (unsigned i = 0; i < im->e->desc->n_fields; i++)
        if (crm_record_is_map(&im->e->desc->fields[i]))
            custom = &im->e->desc->fields[i];
    for (size_t j = 0; j < im->row.n && j < IMPORT_MAX_COLS; j++) {
        s_col_t *col = &im->cols[im->ncols++];
        char key[256];
        col->name = strdup(im->row.v[j]);
        crm_entity_label_key(col->name, key, sizeof key);
        if (!*key || !strcmp(key, "importerror"))
            continue; /* an unnamed column, or the rejects file's errors */
        bool mapped = false;
        for (size_t m = 0; m < im->nmaps && !mapped; m++) {
            const char *eq = strrchr(im->maps[m], '=');
            char colname[256];
            snprintf(colname, sizeof colname, "%.*s", (int)(eq - im->maps[m]), im->maps[m]);
            if (!s_same_key(colname, col->name))
                continue;
            mapped = im->map_used[m] = true;
            const char *target = eq + 1;
            if (!*target)
                break; /* --map 'COL=': skip it */
            if (!strncmp(target, "custom.", 7) && target[7] && custom) {
                col->fd = custom;
                col->custom_key = strdup(target + 7);
            } else {
                const char *f = crm_entity_field_by_label(im->e, target);
                col->fd = f ? crm_record_field(im->e->desc, f) : NULL;
                if (!col->fd) {
                    fprintf(stderr, "crm import: --map '%s': no field '%s' on %s\n", im->maps[m],
                            target, im->e->name);
                    rc = EXIT_USAGE;
                }
            }
        }
        if (mapped)
            continue;
        const char *f = crm_entity_field_by_label(im->e, col->name);
        if (f) {
            col->fd = crm_record_field(im->e->desc, f);
            continue;
        }
        bool ignored = false;
        for (size_t k = 0; k < im->nignores; k++)
            ignored = ignored || s_same_key(im->ignores[k], col->name);
        if (ignored)
            continue;
        const char *near = s_suggest(im->e, col->name);
        nunknown++;
        if (used < sizeof unknown - 1)
            used += (size_t)snprintf(unknown + used, sizeof unknown - used, "%s'%.60s'%s%s%s",
                                     used ? ", " : "", col->name, near ? " (did you mean '" : "",
                                     near ? near : "", near ? "'?)" : "");
    }
    /* one scalar field filled by two columns: which wins is a guess */
    for (size_t a = 0; a < im->ncols; a++)
        for (size_t b = a + 1; b < im->ncols; b++)
            if (im->cols[a].fd && im->cols[a].fd == im->cols[b].fd && !im->cols[a].custom_key &&
                im->cols[a].fd->label != PROTOBUF_C_LABEL_REPEATED) {
                fprintf(stderr,
                        "crm import: columns '%s' and '%s' both fill field '%s': skip one with "
                        "--ignore-column\n",
                        im->cols[a].name, im->cols[b].name, im->cols[a].fd->name);
                rc = EXIT_USAGE;
            }
    for (size_t m = 0; m < im->nmaps; m++)
        if (!im->map_used[m])
            fprintf(stderr, "crm import: warning: --map '%s': the file has no such column\n",
                    im->maps[m]);
    if (im->row_bad_bytes) { /* the names cannot be right: say why first */
        fprintf(stderr,
                "line 1: the header holds bytes that are not %s text: name the file's encoding "
                "with --encoding (gb18030, gbk, big5...)\n",
                sheet_reader_encoding(im->rd));
        rc = EXIT_USAGE;
    } else if (nunknown) {
        char msg[1400];
        snprintf(msg, sizeof msg,
                 "unknown column%s %s: map %s with --map 'COLUMN=FIELD' or skip %s with "
                 "--ignore-column 'COLUMN' (fields: crm %s add --help)",
                 nunknown == 1 ? "" : "s", unknown, nunknown == 1 ? "it" : "them",
                 nunknown == 1 ? "it" : "them", im->e->name);
        if (im->ctx->json) {
            printf("{\"line\":1,\"error\":");
            out_json_str(stdout, msg);
            printf("}\n");
        } else {
            fprintf(stderr, "line 1: %s\n", msg);
        }
        rc = EXIT_USAGE;
    }
    return rc;
}

/* ==== Lines ==== */

static void
s_append(char *errs, size_t n, const char *msg)
{
    size_t used = strlen(errs);
    if (used + 3 < n)
        snprintf(errs + used, n - used, "%s%s", used ? "; " : "", msg);
}

/* Set FD of REC from one cell. A list takes several values: ';' between them,
   and the separators people type in a cell (，；、), and for phones and
   e-mails also ',' '/' and line breaks. An enum or yes/no cell may hold a
   label of its value instead (the entity table's). */
static bool
s_set_cell(const crm_entity_t *e, ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd,
           const char *cell, char *errbuf)
{
    unsigned flags = crm_entity_flags_of(e, fd);
    bool is_time = (flags & CRM_F_TIME) != 0;
    if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
        if (crm_record_set_text(rec, fd, cell, is_time, errbuf) == CRM_OK)
            return true;
        /* a value by its label in the entity table: 潜在客户 is the stage prospect */
        const char *value = crm_entity_value_by_label(e, fd->name, cell);
        return value && crm_record_set_text(rec, fd, value, false, errbuf) == CRM_OK;
    }
    char *copy = malloc(strlen(cell) + 1), *w = copy, *save = NULL;
    CRM_ASSERT_ALLOC(copy);
    bool list = fd->type == PROTOBUF_C_TYPE_STRING;
    for (const char *p = cell; *p;) {
        if (list && (!strncmp(p, "，", 3) || !strncmp(p, "；", 3) || !strncmp(p, "、", 3))) {
            *w++ = ';';
            p += 3;
        } else if (list && (flags & (CRM_F_PHONE | CRM_F_EMAIL)) && strchr(",/\n\r", *p)) {
            *w++ = ';';
            p++;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    bool ok = true;
    for (char *v = strtok_r(copy, ";", &save); v && ok; v = strtok_r(NULL, ";", &save)) {
        v += strspn(v, " \t");
        if (*v)
            ok = crm_record_set_text(rec, fd, v, is_time, errbuf) == CRM_OK;
    }
    free(copy);
    return ok;
}

/* Every error the record rules (crm_record_normalize, as the server runs
   them) find in REC, appended to ERRS[N]: the rules stop at the first, so
   check a copy, set the field each error names aside (a placeholder for a
   missing one) and check again. */
static void
s_rule_errors(s_import_t *im, const ProtobufCMessage *rec, char *errs, size_t n)
{
    size_t len;
    char errbuf[CRM_ERRBUF], seen[16][64];
    size_t nseen = 0;
    ProtobufCMessage *copy = NULL;
    uint8_t *packed = crm_proto_pack(rec, &len);
    crm_err_t rc = crm_proto_unpack(im->e->desc, packed, len, &copy, errbuf);
    free(packed);
    if (rc != CRM_OK)
        return;
    for (const crm_rule_t *r = im->e->rules; r->field && im->upsert_by; r++)
        if ((r->flags & CRM_F_REQUIRED) &&
            !crm_record_is_set(copy, crm_record_field(im->e->desc, r->field)))
            crm_record_set_str(copy, r->field, "-"); /* an update may leave it out */
    while (nseen < 16 && crm_record_normalize(im->e, copy, errbuf) != CRM_OK) {
        const char *q = strstr(errbuf, "field '");
        if (q)
            q += 7;
        snprintf(seen[nseen], sizeof seen[nseen], "%.*s", q ? (int)strcspn(q, "'") : 0,
                 q ? q : "");
        bool again = false;
        for (size_t k = 0; k < nseen; k++)
            again = again || !strcmp(seen[k], seen[nseen]);
        if (again)
            break; /* the field's error is said: its stand-in below is no better */
        if (!strstr(errs, errbuf))
            s_append(errs, n, errbuf);
        const ProtobufCFieldDescriptor *fd = q ? crm_record_field(im->e->desc, seen[nseen]) : NULL;
        if (!fd)
            break;
        nseen++;
        /* go on to the other fields' errors: a text field gets a stand-in (clearing a
           required one would add "is required" to the error just said), others are cleared */
        if (fd->type == PROTOBUF_C_TYPE_STRING && fd->label != PROTOBUF_C_LABEL_REPEATED)
            crm_record_set_str(copy, fd->name, "-");
        else if (crm_record_is_set(copy, fd))
            crm_record_clear(copy, fd);
        else
            break;
    }
    crm_proto_free(&copy);
}

/* The record of the row in im->row, and every error of it in ERRS[N]. */
static ProtobufCMessage *
s_build(s_import_t *im, char *errs, size_t n)
{
    ProtobufCMessage *rec = crm_proto_new(im->e->desc);
    char errbuf[CRM_ERRBUF];
    bool extra = false;
    errs[0] = '\0';
    if (im->row_mixed) {
        snprintf(errbuf, sizeof errbuf,
                 "the line is UTF-8, and the file was read as %s from an earlier line that "
                 "was not: save the file in one encoding (or name it with --encoding)",
                 sheet_reader_encoding(im->rd));
        s_append(errs, n, errbuf);
    } else if (im->row_bad_bytes) {
        snprintf(errbuf, sizeof errbuf,
                 "the line holds bytes that are not %s text (name the file's encoding with "
                 "--encoding)",
                 sheet_reader_encoding(im->rd));
        s_append(errs, n, errbuf);
    }
    if (im->row_nul)
        s_append(errs, n, "a cell holds a NUL byte (U+0000), which no field may hold");
    for (size_t j = 0; j < im->row.n; j++) {
        char *cell = im->row.v[j];
        if (!im->raw && *cell == '\'') /* export's formula guard */
            cell++;
        cell += strspn(cell, " \t");
        size_t len = strlen(cell);
        while (len && (cell[len - 1] == ' ' || cell[len - 1] == '\t'))
            len--;
        if (len == 0)
            continue;
        if (j >= im->ncols) {
            if (!extra)
                s_append(errs, n, "more cells than header columns");
            extra = true;
            continue;
        }
        const s_col_t *col = &im->cols[j];
        if (!col->fd || s_server_set(im->e, col->fd))
            continue;
        char *v = strndup(cell, len);
        CRM_ASSERT_ALLOC(v);
        bool ok;
        if (col->custom_key) {
            char *kv = malloc(strlen(col->custom_key) + len + 2);
            CRM_ASSERT_ALLOC(kv);
            sprintf(kv, "%s=%s", col->custom_key, v);
            ok = crm_record_set_text(rec, col->fd, kv, false, errbuf) == CRM_OK;
            free(kv);
        } else {
            ok = s_set_cell(im->e, rec, col->fd, v, errbuf);
        }
        free(v);
        if (!ok)
            s_append(errs, n, errbuf);
    }
    s_rule_errors(im, rec, errs, n);
    return rec;
}

static void
s_csv_cell(void *data, size_t len, void *arg)
{
    s_import_t *im = arg;
    if (im->row.n == im->rowcap) {
        im->rowcap = im->rowcap ? im->rowcap * 2 : 16;
        im->row.v = realloc(im->row.v, im->rowcap * sizeof *im->row.v);
        CRM_ASSERT_ALLOC(im->row.v);
    }
    const char *in = data ? data : "";
    /* byte order marks at a cell's start (files joined together, a BOM written twice)
       are invisible and would end up in names and in column headers: dropped */
    while (len >= 3 && !memcmp(in, "\xEF\xBB\xBF", 3)) {
        in += 3;
        len -= 3;
    }
    char *cell = malloc(len + 1), *w = cell;
    CRM_ASSERT_ALLOC(cell);
    if (len && memchr(in, '\0', len)) /* a C string would end there: the rest were lost */
        im->row_nul = true;
    /* a quoted cell written on Windows: CRLF line breaks become LF */
    for (size_t r = 0; r < len; r++)
        if (!(in[r] == '\r' && r + 1 < len && in[r + 1] == '\n'))
            *w++ = in[r];
    *w = '\0';
    if (!im->header_done) { /* headers: spaces around them are no part of the name */
        char *p = cell + strspn(cell, " \t");
        memmove(cell, p, strlen(p) + 1);
        for (size_t l = strlen(cell); l && (cell[l - 1] == ' ' || cell[l - 1] == '\t'); l--)
            cell[l - 1] = '\0';
    }
    im->row.v[im->row.n++] = cell;
}

static void
s_csv_row(int c, void *arg)
{
    s_import_t *im = arg;
    (void)c;
    long row_line = im->next_line;
    im->next_line = im->line + 1;
    if (!im->header_done) {
        im->header_done = true;
        if (s_header(im) != EXIT_OK)
            im->rc = EXIT_USAGE; /* a bad header spoils every row: stop here */
    } else if (row_line >= im->from_line) {
        bool empty = true; /* Excel's blank rows: ",,,," */
        for (size_t j = 0; j < im->row.n && empty; j++)
            empty = !im->row.v[j][strspn(im->row.v[j], " \t")];
        if (!empty) {
            char errs[CRM_ERRBUF * 3];
            im->total_lines++;
            ProtobufCMessage *rec = s_build(im, errs, sizeof errs);
            s_queue(im, rec, row_line, errs, &im->row);
        }
    }
    s_cells_free(&im->row);
    im->rowcap = 0;
    im->row_bad_bytes = false;
    im->row_mixed = false;
    im->row_nul = false;
}

static void
s_import_csv(s_import_t *im)
{
    struct csv_parser p;
    const char *line;
    bool bad;
    ssize_t n;
    csv_init(&p, CSV_APPEND_NULL);
    while (im->rc == EXIT_OK && !s_interrupted &&
           (n = sheet_reader_line(im->rd, &line, &bad)) >= 0) {
        im->line++;
        im->done = sheet_reader_offset(im->rd);
        if (im->line == 1 && !im->sep)
            im->sep = sheet_guess_separator(line);
        csv_set_delim(&p, (unsigned char)im->sep);
        im->row_bad_bytes = im->row_bad_bytes || bad;
        im->row_mixed = im->row_mixed || sheet_reader_mixed(im->rd);
        if (csv_parse(&p, line, (size_t)n, s_csv_cell, s_csv_row, im) != (size_t)n) {
            char msg[CRM_ERRBUF];
            snprintf(msg, sizeof msg, "malformed CSV: %s", csv_strerror(csv_error(&p)));
            s_reject(im, im->line, NULL, msg);
            break;
        }
    }
    /* libcsv (3.0) keeps a quoted cell's state public: quoted and pstate 2,
       its FIELD_BEGUN; a closed quote moves on to FIELD_MIGHT_HAVE_ENDED */
    if (!s_interrupted && im->rc == EXIT_OK && p.quoted && p.pstate == 2) {
        char msg[CRM_ERRBUF];
        snprintf(msg, sizeof msg,
                 "the file ends inside a quoted cell (a '\"' is missing); the line is not "
                 "imported");
        s_reject(im, im->next_line, NULL, msg);
    } else if (!s_interrupted && im->rc == EXIT_OK) {
        csv_fini(&p, s_csv_cell, s_csv_row, im); /* a last line without a line break */
    }
    csv_free(&p);
    s_cells_free(&im->row);
}

/* Set FD of REC from one JSON value. E is NULL inside a sub-message (an
   order line, a refund). */
static bool
s_set_json(const crm_entity_t *e, ProtobufCMessage *rec, const ProtobufCFieldDescriptor *fd,
           json_t *v, char *errbuf)
{
    bool is_time = e ? (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0
                     : crm_entity_is_time(rec->descriptor, fd);
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
s_import_jsonl(s_import_t *im)
{
    const char *line;
    bool bad;
    ssize_t n;
    while (im->rc == EXIT_OK && !s_interrupted &&
           (n = sheet_reader_line(im->rd, &line, &bad)) >= 0) {
        im->line++;
        im->next_line = im->line + 1;
        im->done = sheet_reader_offset(im->rd);
        if (strspn(line, " \t\r\n") == (size_t)n || im->line < im->from_line)
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
        s_queue(im, rec, im->line, errbuf, NULL);
    }
}

/* ==== The command ==== */

static const char s_import_usage[] =
    "usage: crm import FILE|- [--kind KIND] [--format csv|jsonl] [--encoding ENC]\n"
    "                  [--separator ,|;|tab] [--map 'COLUMN=FIELD']... [--ignore-column COLUMN]...\n"
    "                  [--dry-run] [--upsert-by phone|email] [--rejects FILE]\n"
    "                  [--from-line N] [--allow-duplicate] [--raw]\n"
    "\n"
    "Reads records (default: customers) from a CSV file with a header row - as Excel or WPS\n"
    "save it: UTF-8 with or without a BOM, or GBK/GB18030 (detected; --encoding names another),\n"
    "separated by ',' ';' or tabs (detected) - or from JSON Lines; '-' is standard input.\n"
    "Headers match fields loosely: case, spaces, '-' and '_' aside, by name, singular\n"
    "('phone') or label (姓名 手机 电话 邮箱 公司 省份 城市 行业 来源 阶段 标签 负责人 ...).\n"
    "  --map 'COL=FIELD'     column COL fills FIELD (custom.KEY: a custom field; empty: skip)\n"
    "  --ignore-column COL   skip column COL (any other unknown column is an error)\n"
    "  --dry-run             check every line as the server would; write nothing\n"
    "  --upsert-by phone|email  a line whose phone (e-mail) is one customer's updates that\n"
    "                        customer (lists united) instead of creating a duplicate\n"
    "  --rejects FILE        write the lines not imported, with an import_error column, to\n"
    "                        FILE: fix them and import FILE again\n"
    "  --from-line N         skip the lines before line N (to continue an interrupted import)\n"
    "Records go in batches of at most 25 and at most the server's request size. Every error\n"
    "of a bad line is reported ('line N: field ...: reason; ...') and the line skipped; the\n"
    "good lines are imported all the same. One leading single quote is removed from every CSV\n"
    "cell (how 'crm export' guards against formulas; --raw keeps cells as they are). Fields\n"
    "the server sets (id, version, created_at...) are ignored. Ctrl-C stops after the batch\n"
    "in flight and says how to continue. Exit code 0 if every line was imported, 1 if some\n"
    "were not, 2 for a usage error or a bad header, 130 if interrupted.\n";

/* "--NAME VALUE" or "--NAME=VALUE" at argv[*i]: the value (and *i advanced), or NULL. */
static const char *
s_opt(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) != 0)
        return NULL;
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (argv[*i][len] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* Usage error: WHY, then the usage (with --json, main.c reports the first line). */
static int
s_usage_error(cli_ctx_t *ctx, const char *why)
{
    (void)ctx;
    fprintf(stderr, "crm import: %s\n\n%s", why, s_import_usage);
    return EXIT_USAGE;
}

/* Does F (a regular file, at its start) begin as a zip archive does, as an .xlsx workbook
   does? Read back to where it was. */
static bool
s_is_workbook(FILE *f)
{
    char magic[4];
    long at = ftell(f);
    bool zip = at >= 0 && fread(magic, 1, sizeof magic, f) == sizeof magic &&
               !memcmp(magic, "PK\x03\x04", sizeof magic);
    if (at >= 0)
        fseek(f, at, SEEK_SET);
    return zip;
}

int
cmd_import(int argc, char **argv, cli_ctx_t *ctx)
{
    const char *path = NULL, *kind = "customer", *format = NULL, *encoding = NULL, *v;
    char why[512];
    s_import_t *im = calloc(1, sizeof *im);
    CRM_ASSERT_ALLOC(im);
    int rc = EXIT_OK;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(s_import_usage, stdout);
            free(im);
            return EXIT_OK;
        } else if ((v = s_opt(argc, argv, &i, "--kind"))) {
            kind = v;
        } else if ((v = s_opt(argc, argv, &i, "--format"))) {
            format = v;
        } else if ((v = s_opt(argc, argv, &i, "--encoding"))) {
            encoding = v;
        } else if ((v = s_opt(argc, argv, &i, "--separator"))) {
            im->sep = !strcmp(v, "tab") || !strcmp(v, "\\t") ? '\t' : v[0];
            if (strlen(v) != 1 && im->sep != '\t') {
                snprintf(why, sizeof why, "--separator takes one character or 'tab', not '%s'", v);
                rc = s_usage_error(ctx, why);
            }
        } else if ((v = s_opt(argc, argv, &i, "--map"))) {
            if (!strchr(v, '=') || im->nmaps == IMPORT_MAX_OPTS) {
                snprintf(why, sizeof why, "--map takes 'COLUMN=FIELD', not '%s'", v);
                rc = s_usage_error(ctx, why);
            } else {
                im->maps[im->nmaps++] = v;
            }
        } else if ((v = s_opt(argc, argv, &i, "--ignore-column"))) {
            if (im->nignores < IMPORT_MAX_OPTS)
                im->ignores[im->nignores++] = v;
        } else if ((v = s_opt(argc, argv, &i, "--upsert-by"))) {
            im->upsert_by = v;
        } else if ((v = s_opt(argc, argv, &i, "--rejects"))) {
            im->rejects_path = v;
        } else if ((v = s_opt(argc, argv, &i, "--from-line"))) {
            char *end;
            im->from_line = strtol(v, &end, 10);
            if (!*v || *end || im->from_line < 1) {
                snprintf(why, sizeof why, "--from-line takes a line number, not '%s'", v);
                rc = s_usage_error(ctx, why);
            }
        } else if (!strcmp(a, "--dry-run")) {
            im->dry_run = true;
        } else if (!strcmp(a, "--allow-duplicate")) {
            ctx->allow_duplicate = true;
        } else if (!strcmp(a, "--raw")) {
            im->raw = true;
        } else if ((a[0] != '-' || !strcmp(a, "-")) && !path) {
            path = a;
        } else {
            snprintf(why, sizeof why, "unexpected argument '%s'", a);
            rc = s_usage_error(ctx, why);
        }
    }
    FILE *f = NULL;
    im->e = crm_entity_by_name(kind);
    if (rc == EXIT_OK && !path)
        rc = s_usage_error(ctx, "FILE is required ('-' for standard input)");
    if (rc == EXIT_OK && !im->e) {
        char kinds[256] = "";
        size_t used = 0;
        for (const crm_entity_t *k = crm_entity_all(); k->name && used < sizeof kinds; k++)
            used += (size_t)snprintf(kinds + used, sizeof kinds - used, "%s%s", used ? ", " : "",
                                     k->name);
        snprintf(why, sizeof why, "unknown --kind '%s' (kinds: %s)", kind, kinds);
        rc = s_usage_error(ctx, why);
    }
    if (rc == EXIT_OK && im->upsert_by) {
        /* phone, e-mail, phones...: the field, loosely */
        const char *fld = crm_entity_field_by_label(im->e, im->upsert_by);
        if (!fld || !(crm_entity_flags(im->e, fld) & CRM_F_DUPE_KEY)) {
            snprintf(why, sizeof why, "--upsert-by takes phone or email, not '%s'", im->upsert_by);
            rc = s_usage_error(ctx, why);
        }
        im->upsert_by = fld;
    }
    if (rc == EXIT_OK && !(f = strcmp(path, "-") ? fopen(path, "r") : stdin)) {
        fprintf(stderr, "crm import: cannot open '%s': %s\n", path, strerror(errno));
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK && f != stdin && s_is_workbook(f)) {
        snprintf(why, sizeof why,
                 "'%s' is a workbook (.xlsx): crm import reads CSV and JSON Lines; in Excel "
                 "or WPS save it as CSV (UTF-8) first",
                 path);
        rc = s_usage_error(ctx, why);
    }
    if (rc == EXIT_OK && !(im->rd = sheet_reader_new(f, encoding, why))) {
        rc = s_usage_error(ctx, why);
    }
    if (rc == EXIT_OK && !format) {
        const char *dot = strrchr(path, '.');
        int c = fgetc(f);
        ungetc(c, f);
        bool csv_ext = dot && (!strcmp(dot, ".csv") || !strcmp(dot, ".txt"));
        bool jsonl_ext = dot && (!strcmp(dot, ".jsonl") || !strcmp(dot, ".json"));
        format = !csv_ext && (jsonl_ext || c == '{') ? "jsonl" : "csv";
    }
    if (rc == EXIT_OK && strcmp(format, "csv") && strcmp(format, "jsonl") &&
        strcmp(format, "json")) {
        snprintf(why, sizeof why, "--format takes csv or jsonl, not '%s'", format);
        rc = s_usage_error(ctx, why);
    }
    if (rc == EXIT_OK && im->rejects_path && strcmp(format, "csv"))
        rc = s_usage_error(ctx, "--rejects works with CSV files");
    struct stat st, rst;
    if (rc == EXIT_OK && im->rejects_path && fstat(fileno(f), &st) == 0 &&
        stat(im->rejects_path, &rst) == 0 && st.st_dev == rst.st_dev && st.st_ino == rst.st_ino)
        rc = s_usage_error(ctx, "--rejects names the file being imported: it would be "
                                "emptied before it is read; give the rejects another name");
    if (rc != EXIT_OK)
        goto cleanup;
    im->size = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
    im->progress = isatty(STDERR_FILENO) && !ctx->json;
    im->ctx = ctx;
    im->path = path;
    im->bytes = IMPORT_ENVELOPE;
    im->next_line = 1;
    if ((rc = conn_open(ctx, &im->conn)) != EXIT_OK)
        goto cleanup;
    im->max_bytes = s_server_max_msg(im->conn);
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint; /* no SA_RESTART: a read waiting on a pipe returns */
    sigemptyset(&sa.sa_mask);
    s_interrupted = 0;
    sigaction(SIGINT, &sa, &old_sa);
    if (!strcmp(format, "csv"))
        s_import_csv(im);
    else
        s_import_jsonl(im);
    s_flush(im);
    sigaction(SIGINT, &old_sa, NULL);
    s_progress(im, true);
    rc = im->rc;
    if (strcmp(sheet_reader_encoding(im->rd), "UTF-8") && !encoding && !ctx->json)
        fprintf(stderr, "crm import: read '%s' as %s (--encoding names another)\n", path,
                sheet_reader_encoding(im->rd));
    if (rc == EXIT_OK || rc == EXIT_USAGE) {
        const char *name = im->e->name;
        if (ctx->json) {
            printf("{\"imported\":%ld,\"failed\":%ld,\"created\":%ld,\"updated\":%ld,"
                   "\"unchanged\":%ld,\"dry_run\":%s,\"interrupted\":%s,\"next_line\":%ld,"
                   "\"encoding\":",
                   im->ok, im->bad, im->created, im->updated, im->unchanged,
                   im->dry_run ? "true" : "false", s_interrupted ? "true" : "false",
                   im->next_line);
            out_json_str(stdout, sheet_reader_encoding(im->rd));
            printf("}\n");
        } else if (im->dry_run) {
            printf("dry run: %ld %s record%s would be imported (%ld new, %ld updated, "
                   "%ld unchanged); %ld line%s had errors; nothing was written\n",
                   im->ok, name, im->ok == 1 ? "" : "s", im->created, im->updated,
                   im->unchanged, im->bad, im->bad == 1 ? "" : "s");
        } else if (im->upsert_by) {
            printf("imported %ld %s record%s: %ld created, %ld updated, %ld unchanged; "
                   "%ld line%s had errors\n",
                   im->ok, name, im->ok == 1 ? "" : "s", im->created, im->updated,
                   im->unchanged, im->bad, im->bad == 1 ? "" : "s");
        } else {
            printf("imported %ld %s record%s; %ld line%s had errors\n", im->ok, name,
                   im->ok == 1 ? "" : "s", im->bad, im->bad == 1 ? "" : "s");
        }
        if (im->rejects)
            fprintf(stderr, "crm import: the %ld line%s not imported are in '%s' (with an %s "
                            "column): fix them and import that file\n",
                    im->bad, im->bad == 1 ? "" : "s", im->rejects_path, IMPORT_ERROR_COLUMN);
    }
    if (rc == EXIT_OK && s_interrupted) {
        fprintf(stderr,
                "crm import: interrupted: lines up to %ld are done (%ld imported, %ld with "
                "errors); to continue: crm import --from-line %ld%s%s %s\n",
                im->next_line - 1, im->ok, im->bad, im->next_line,
                im->upsert_by ? " --upsert-by " : "", im->upsert_by ? im->upsert_by : "", path);
        rc = EXIT_INTERRUPTED;
    } else if (rc == EXIT_OK && im->bad) {
        rc = EXIT_REFUSED;
    }
cleanup:
    for (size_t i = 0; i < im->n; i++) {
        free(im->batch[i].data);
        s_cells_free(&im->pending[i]);
    }
    for (size_t j = 0; j < im->ncols; j++) {
        free(im->cols[j].name);
        free(im->cols[j].custom_key);
    }
    if (im->rejects && fclose(im->rejects) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "crm import: writing '%s' failed: %s\n", im->rejects_path,
                strerror(errno));
        rc = EXIT_USAGE;
    }
    sheet_reader_destroy(&im->rd);
    conn_destroy(&im->conn);
    if (f && f != stdin)
        fclose(f);
    free(im);
    return rc;
}
