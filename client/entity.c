/*  =========================================================================
    entity - the client side of the generic record path (see entity.h)
    =========================================================================
*/
#include "entity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"

#define CELL_MAX 40 /* display columns per table cell */

/* ==== Arguments ==== */

/* The field a flag names: exact, '-' for '_', or the plural of a list. */
static const ProtobufCFieldDescriptor *
s_flag_field(const crm_entity_t *e, const char *name)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, name);
    if (!fd) {
        char plural[64];
        snprintf(plural, sizeof plural, "%ss", name);
        fd = crm_record_field(e->desc, plural);
        if (fd && fd->label != PROTOBUF_C_LABEL_REPEATED)
            fd = NULL;
    }
    return fd;
}

static bool
s_touched(const entity_args_t *a, const char *field)
{
    for (size_t i = 0; i < a->ntouched; i++)
        if (!strcmp(a->touched[i], field))
            return true;
    return false;
}

int
entity_parse_args(const crm_entity_t *e, ProtobufCMessage *rec, int argc, char **argv,
                  entity_args_t *a)
{
    char errbuf[CRM_ERRBUF];
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || !strcmp(arg, "--")) {
            if (!strcmp(arg, "--") && i + 1 < argc)
                arg = argv[++i];
            if (a->npos == 8) {
                fprintf(stderr, "crm %s %s: too many arguments\n", e->name, argv[0]);
                return EXIT_USAGE;
            }
            a->pos[a->npos++] = arg;
            continue;
        }
        const char *name = arg + 2;
        bool clear = !strncmp(name, "no-", 3) && rec;
        const ProtobufCFieldDescriptor *fd = s_flag_field(e, clear ? name + 3 : name);
        bool is_opt = !strcmp(name, "limit") || !strcmp(name, "after") ||
                      !strcmp(name, "expect-version") || (!rec && !strcmp(name, "view"));
        if (!is_opt && !fd) {
            fprintf(stderr, "crm %s %s: unknown option or field '--%s' (see 'crm %s %s --help')\n",
                    e->name, argv[0], name, e->name, argv[0]);
            return EXIT_USAGE;
        }
        if (clear) {
            crm_record_clear(rec, fd);
            if (!s_touched(a, fd->name) && a->ntouched < ENTITY_MAX_ARGS)
                a->touched[a->ntouched++] = fd->name;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "crm %s %s: '--%s' needs a value\n", e->name, argv[0], name);
            return EXIT_USAGE;
        }
        const char *val = argv[++i];
        if (!strcmp(name, "limit")) {
            char *end;
            unsigned long v = strtoul(val, &end, 10);
            if (!*val || *end || v == 0 || v > 1000) {
                fprintf(stderr, "crm %s %s: --limit takes 1 to 1000, not '%s'\n", e->name, argv[0],
                        val);
                return EXIT_USAGE;
            }
            a->limit = (unsigned)v;
        } else if (!strcmp(name, "after")) {
            a->after = val;
        } else if (!strcmp(name, "expect-version")) {
            char *end;
            unsigned long long v = strtoull(val, &end, 10);
            if (!*val || *end || v == 0) {
                fprintf(stderr, "crm %s %s: --expect-version takes a version number\n", e->name,
                        argv[0]);
                return EXIT_USAGE;
            }
            a->expect_version = v;
        } else if (!rec) {
            if (a->nfilters == ENTITY_MAX_ARGS)
                return EXIT_USAGE;
            Crm__Filter *f = &a->filters[a->nfilters];
            crm__filter__init(f);
            f->field = fd ? (char *)fd->name : (char *)"view"; /* --view NAME[:N] */
            f->value = (char *)val;
            a->filter_ptrs[a->nfilters++] = f;
        } else {
            bool first = !s_touched(a, fd->name);
            if (first && fd->label == PROTOBUF_C_LABEL_REPEATED && !crm_record_is_map(fd))
                crm_record_clear(rec, fd);
            bool is_time = (crm_entity_flags(e, fd->name) & CRM_F_TIME) != 0;
            if (crm_record_set_text(rec, fd, val, is_time, errbuf) != CRM_OK) {
                fprintf(stderr, "crm %s %s: %s\n", e->name, argv[0], errbuf);
                return EXIT_USAGE;
            }
            if (first && a->ntouched < ENTITY_MAX_ARGS)
                a->touched[a->ntouched++] = fd->name;
        }
    }
    return EXIT_OK;
}

/* ==== Requests ==== */

int
entity_call(conn_t *conn, Crm__Op op, const crm_entity_t *e, Crm__EntityRequest *er,
            Crm__Reply **reply)
{
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = op;
    req.body_case = CRM__REQUEST__BODY_ENTITY;
    req.entity = er;
    er->kind = (char *)e->name;
    return conn_call(conn, &req, reply);
}

size_t
entity_count(const Crm__Reply *reply)
{
    return reply->body_case == CRM__REPLY__BODY_ENTITY ? reply->entity->n_records : 0;
}

ProtobufCMessage *
entity_record(const crm_entity_t *e, const Crm__Reply *reply, size_t i)
{
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = NULL;
    const ProtobufCBinaryData *b = &reply->entity->records[i];
    if (crm_proto_unpack_shown(e->desc, b->data, b->len, &m, errbuf) != CRM_OK)
        fprintf(stderr, "crm: cannot read a %s record from the server: %s\n", e->name, errbuf);
    return m;
}

int
entity_get(conn_t *conn, const crm_entity_t *e, const char *id, ProtobufCMessage **out)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    *out = NULL;
    er.id = (char *)id;
    int rc = entity_call(conn, CRM__OP__OP_ENTITY_GET, e, &er, &reply);
    if (rc == EXIT_OK) {
        *out = entity_count(reply) == 1 ? entity_record(e, reply, 0) : NULL;
        if (!*out)
            rc = EXIT_REFUSED;
    }
    conn_reply_free(&reply);
    return rc;
}

/* ==== Printing ==== */

static char *
s_cell(const crm_entity_t *e, const ProtobufCMessage *rec, const char *field)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    if (!fd)
        return strdup("");
    bool is_time = (crm_entity_flags(e, field) & CRM_F_TIME) != 0;
    char *raw = crm_record_format(rec, fd, is_time, true);
    if (is_time && strlen(raw) >= 16) { /* tables show minutes: 2026-11-23 15:04 */
        raw[10] = ' ';
        raw[16] = '\0';
    }
    char *v = out_escape(raw); /* one line per row, nothing that drives the terminal */
    free(raw);
    if (crm_utf8_width(v) <= CELL_MAX)
        return v;
    /* too wide: keep whole characters up to CELL_MAX - 1 columns, then "…" */
    size_t w = 0, i = 0, len = strlen(v);
    while (i < len) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)v[i + n] & 0xC0) == 0x80)
            n++;
        char ch[8] = {0};
        memcpy(ch, v + i, n < 8 ? n : 7);
        size_t cw = crm_utf8_width(ch);
        if (w + cw > CELL_MAX - 1)
            break;
        w += cw;
        i += n;
    }
    char *cut = malloc(i + sizeof "…");
    CRM_ASSERT_ALLOC(cut);
    memcpy(cut, v, i);
    memcpy(cut + i, "…", sizeof "…");
    free(v);
    return cut;
}

void
entity_print_table(const crm_entity_t *e, ProtobufCMessage *const *recs, size_t n)
{
    char cols[256];
    const char *names[16];
    size_t ncols = 0, width[16];
    snprintf(cols, sizeof cols, "%s", e->columns);
    for (char *save = NULL, *c = strtok_r(cols, ",", &save); c && ncols < 16;
         c = strtok_r(NULL, ",", &save))
        names[ncols++] = c;
    char **cells = calloc(n * ncols + 1, sizeof *cells);
    for (size_t j = 0; j < ncols; j++)
        width[j] = crm_utf8_width(names[j]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ncols; j++) {
            cells[i * ncols + j] = s_cell(e, recs[i], names[j]);
            size_t w = crm_utf8_width(cells[i * ncols + j]);
            if (w > width[j])
                width[j] = w;
        }
    for (size_t j = 0; j < ncols; j++) {
        char upper[64];
        size_t k = 0;
        for (; names[j][k] && k < 63; k++)
            upper[k] = (char)(names[j][k] == '_' ? ' ' : names[j][k] - 32 * (names[j][k] >= 'a'));
        upper[k] = '\0';
        printf("%s%-*s", j ? "  " : "", j + 1 < ncols ? (int)width[j] : 0, upper);
    }
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < ncols; j++) {
            const char *c = cells[i * ncols + j];
            printf("%s%s", j ? "  " : "", c);
            if (j + 1 < ncols)
                printf("%*s", (int)(width[j] - crm_utf8_width(c)), "");
            free(cells[i * ncols + j]);
        }
        printf("\n");
    }
    free(cells);
}

void
entity_print_fields(const crm_entity_t *e, const ProtobufCMessage *rec)
{
    const ProtobufCMessageDescriptor *d = e->desc;
    size_t width = 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (strlen(d->fields[i].name) > width)
            width = strlen(d->fields[i].name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!crm_record_is_set(rec, fd) && strcmp(fd->name, "id"))
            continue;
        bool is_time = (crm_entity_flags(e, fd->name) & CRM_F_TIME) != 0;
        char *v = crm_record_format(rec, fd, is_time, true);
        char *shown = out_escape(v); /* one line per field */
        printf("%-*s  %s\n", (int)width, fd->name, shown);
        free(shown);
        free(v);
    }
}

void
entity_print_json(const crm_entity_t *e, const ProtobufCMessage *rec)
{
    (void)e;
    out_json(stdout, rec);
}
