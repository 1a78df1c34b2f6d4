/*  =========================================================================
    entity - the client side of the generic record path (see entity.h)
    =========================================================================
*/
#include "entity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "crm_proto.h"
#include "crm_record.h"
#include "crm_utf8.h"
#include "suggest.h"

/* MS as this user's local time with its zone: 2026-11-15T23:59:59.999+08:00. */
static void
s_local_time(int64_t ms, char *out, size_t n)
{
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000); /* floor: before 1970 too */
    time_t t = (time_t)sec;
    struct tm tm;
    localtime_r(&t, &tm);
    int off = (int)(tm.tm_gmtoff / 60), aoff = abs(off) % (24 * 60);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%.20s.%03d%c%02d:%02d", base, (int)(ms - sec * 1000),
             off < 0 ? '-' : '+', aoff / 60, aoff % 60);
}

/* A time range as typed, FROM..TO (either end open; local times unless an end
   says its zone), with both ends as explicit instants in OUT: the server
   knows no one's time zone. A date alone as TO is the whole day: in Shanghai
   2026-11-15..2026-11-15 is 2026-11-15T00:00:00.000+08:00..2026-11-15T23:59:59.999+08:00. */
bool
entity_local_time(const char *text, bool last, char *out, size_t n)
{
    int64_t ms;
    if (!crm_record_parse_time(text, &ms))
        return false;
    size_t len = strlen(text);
    if (last && len == 16 && text[4] == '-') /* a minute without a zone: its last ms */
        ms += 59999;
    else if (last && len == 19 && text[4] == '-') /* a second */
        ms += 999;
    if (last && len == 10 && text[4] == '-') { /* a day: its last ms */
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        localtime_r(&t, &tm);
        tm.tm_mday++;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        tm.tm_isdst = -1;
        ms = (int64_t)mktime(&tm) * 1000 - 1;
    }
    s_local_time(ms, out, n);
    return true;
}

static bool
s_local_range(const char *val, char *out, size_t n)
{
    const char *dots = strstr(val, "..");
    char from[40], ends[2][40] = {"", ""};
    if ((size_t)(dots - val) >= sizeof from || strlen(dots + 2) >= sizeof from)
        return false;
    snprintf(from, sizeof from, "%.*s", (int)(dots - val), val);
    const char *in[2] = {from, dots + 2};
    for (int i = 0; i < 2; i++)
        if (*in[i] && !entity_local_time(in[i], i == 1, ends[i], sizeof ends[i]))
            return false;
    return (size_t)snprintf(out, n, "%s..%s", ends[0], ends[1]) < n;
}

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
        if (rec && (!strncmp(name, "add-", 4) || !strncmp(name, "rm-", 3))) {
            /* --add-phone V / --rm-phone V: one value of a list, the rest kept */
            bool add = name[0] == 'a';
            const ProtobufCFieldDescriptor *lf = s_flag_field(e, name + (add ? 4 : 3));
            if (lf && lf->label == PROTOBUF_C_LABEL_REPEATED &&
                lf->type == PROTOBUF_C_TYPE_STRING) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "crm %s %s: '--%s' needs a value\n", e->name, argv[0], name);
                    return EXIT_USAGE;
                }
                const char *val = argv[++i];
                if (add && crm_record_set_text(rec, lf, val, false, errbuf) != CRM_OK) {
                    fprintf(stderr, "crm %s %s: %s\n", e->name, argv[0], errbuf);
                    return EXIT_USAGE;
                }
                if (!add && !entity_list_remove(e, rec, lf, val)) {
                    char *have = crm_record_format(rec, lf, false, true);
                    char *shown = out_escape(have);
                    fprintf(stderr, "crm %s %s: %s has no %s '%s' (%s: %s)\n", e->name, argv[0],
                            *crm_record_get_str(rec, "id") ? crm_record_get_str(rec, "id")
                                                           : "the record",
                            name + 3, val, lf->name, *shown ? shown : "none");
                    free(shown);
                    free(have);
                    return EXIT_USAGE;
                }
                if (!s_touched(a, lf->name) && a->ntouched < ENTITY_MAX_ARGS)
                    a->touched[a->ntouched++] = lf->name;
                continue;
            }
        }
        if (!rec && (!strcmp(name, "count") || !strcmp(name, "unowned"))) {
            if (name[0] == 'c') {
                a->count = true;
            } else if (a->nfilters < ENTITY_MAX_ARGS) { /* the server's view of the pool */
                Crm__Filter *f = &a->filters[a->nfilters];
                crm__filter__init(f);
                f->field = (char *)"view";
                f->value = (char *)"unowned";
                a->filter_ptrs[a->nfilters++] = f;
            }
            continue;
        }
        if (!rec && !strcmp(name, "sort")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "crm %s %s: '--sort' needs a field (-FIELD: descending)\n",
                        e->name, argv[0]);
                return EXIT_USAGE;
            }
            a->sort = argv[++i];
            const char *sf = a->sort + (a->sort[0] == '-');
            if (!s_flag_field(e, sf)) {
                fprintf(stderr, "crm %s %s: --sort: no field '%s' on %s\n", e->name, argv[0], sf,
                        e->name);
                return EXIT_USAGE;
            }
            continue;
        }
        bool clear = !strncmp(name, "no-", 3) && rec;
        const ProtobufCFieldDescriptor *fd = s_flag_field(e, clear ? name + 3 : name);
        bool is_opt = !strcmp(name, "limit") || !strcmp(name, "after") ||
                      !strcmp(name, "expect-version") || (!rec && !strcmp(name, "view"));
        if (!is_opt && !fd) {
            char flags[ENTITY_MAX_FLAGS][40];
            const char *cands[ENTITY_MAX_FLAGS];
            size_t n = entity_flags(e, rec ? "edit" : "list", flags);
            for (size_t k = 0; k < n; k++)
                cands[k] = flags[k] + 2;
            const char *near = suggest_nearest(name, cands, n);
            if (near)
                fprintf(stderr, "crm %s %s: unknown option or field '--%s'; did you mean '--%s'?\n",
                        e->name, argv[0], name, near);
            else
                fprintf(stderr,
                        "crm %s %s: unknown option or field '--%s' (see 'crm %s %s --help')\n",
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
            if (fd && (crm_entity_flags_of(e, fd) & CRM_F_TIME) && strstr(val, "..")) {
                if (!s_local_range(val, a->when[a->nfilters], sizeof a->when[0])) {
                    fprintf(stderr,
                            "crm %s %s: --%s '%s' is not a range of times (FROM..TO, either "
                            "end open, in your time zone unless it says its own: "
                            "2026-11-01..2026-11-30, '2026-11-30 09:00'..)\n",
                            e->name, argv[0], name, val);
                    return EXIT_USAGE;
                }
                f->value = a->when[a->nfilters];
            }
            a->filter_ptrs[a->nfilters++] = f;
        } else {
            bool first = !s_touched(a, fd->name);
            if (first && fd->label == PROTOBUF_C_LABEL_REPEATED && !crm_record_is_map(fd))
                crm_record_clear(rec, fd);
            bool is_time = (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0;
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

/* VALUE as compared in a list: a phone normalized, anything else trimmed and
   case-folded (e-mails and tags are stored lower-cased). Fresh string. */
static char *
s_list_key(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd, const char *value)
{
    char phone[24];
    if ((crm_entity_flags_of(e, fd) & CRM_F_PHONE) && crm_record_phone(value, phone))
        return strdup(phone);
    value += strspn(value, " \t");
    char *k = crm_utf8_fold(value);
    for (size_t l = strlen(k); l && (k[l - 1] == ' ' || k[l - 1] == '\t'); l--)
        k[l - 1] = '\0';
    return k;
}

bool
entity_list_remove(const crm_entity_t *e, ProtobufCMessage *rec,
                   const ProtobufCFieldDescriptor *fd, const char *value)
{
    char errbuf[CRM_ERRBUF];
    char *want = s_list_key(e, fd, value);
    bool found = false;
    ProtobufCMessage *keep = crm_proto_new(rec->descriptor);
    for (size_t i = 0; i < crm_record_count(rec, fd); i++) {
        char *have = s_list_key(e, fd, crm_record_str_at(rec, fd, i));
        if (!strcmp(have, want))
            found = true;
        else
            crm_record_set_text(keep, fd, crm_record_str_at(rec, fd, i), false, errbuf);
        free(have);
    }
    if (found)
        crm_record_swap(rec, keep, fd);
    crm_proto_free(&keep);
    free(want);
    return found;
}

size_t
entity_flags(const crm_entity_t *e, const char *sub, char out[][40])
{
    size_t n = 0;
    bool write = !strcmp(sub, "add") || !strcmp(sub, "edit") || !strcmp(sub, "log") ||
                 !strcmp(sub, "open");
    bool filter = !strcmp(sub, "list") || !strcmp(sub, "search");
#define ADD_FLAG(...)                                                                              \
    do {                                                                                           \
        if (n < ENTITY_MAX_FLAGS)                                                                  \
            snprintf(out[n++], 40, __VA_ARGS__);                                                   \
    } while (0)
    for (unsigned i = 0; i < e->desc->n_fields && (write || filter); i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        unsigned flags = crm_entity_flags_of(e, fd);
        char kebab[32];
        size_t k = 0;
        for (; fd->name[k] && k < sizeof kebab - 1; k++)
            kebab[k] = fd->name[k] == '_' ? '-' : fd->name[k];
        kebab[k] = '\0';
        bool list = fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type == PROTOBUF_C_TYPE_STRING;
        if (list && k > 1 && kebab[k - 1] == 's')
            kebab[k - 1] = '\0'; /* --phone for phones: one value per flag */
        if (filter && crm_entity_index(e, fd->name) && !(flags & CRM_F_PARENT))
            ADD_FLAG("--%s", kebab);
        if (!write || (flags & (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT | CRM_F_DERIVED |
                                 CRM_F_STAMPED)))
            continue;
        ADD_FLAG("--%s", kebab);
        if (list && !strcmp(sub, "edit")) {
            ADD_FLAG("--add-%s", kebab);
            ADD_FLAG("--rm-%s", kebab);
        }
        if (!strcmp(sub, "edit"))
            ADD_FLAG("--no-%s", kebab);
    }
    if (!strcmp(sub, "edit") || !strcmp(sub, "delete"))
        ADD_FLAG("--expect-version");
    if (!strcmp(sub, "delete"))
        ADD_FLAG("--yes");
    if (!strcmp(sub, "add"))
        ADD_FLAG("--allow-duplicate");
    if (filter) {
        ADD_FLAG("--limit");
        ADD_FLAG("--after");
        ADD_FLAG("--count");
        if (!strcmp(sub, "list")) {
            ADD_FLAG("--view");
            ADD_FLAG("--sort");
            if (crm_record_field(e->desc, "owner") && !strcmp(e->name, "customer"))
                ADD_FLAG("--unowned");
        }
    }
#undef ADD_FLAG
    return n;
}

/* ==== Requests ==== */

int
entity_call(conn_t *conn, Crm__Op op, const crm_entity_t *e, Crm__EntityRequest *er,
            Crm__Reply **reply)
{
    Crm__Request req;
    entity_request_init(&req, op, e, er);
    return conn_call(conn, &req, reply);
}

void
entity_request_init(Crm__Request *req, Crm__Op op, const crm_entity_t *e, Crm__EntityRequest *er)
{
    *req = (Crm__Request)CRM__REQUEST__INIT;
    req->op = op;
    req->body_case = CRM__REQUEST__BODY_ENTITY;
    req->entity = er;
    er->kind = (char *)e->name;
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

/* TEXT, folded, without white space or invisible characters: "Li  Na" and "li na"
   are one name, and so are 李娜 and a pasted 李<U+200B>娜 (stored names have none). */
static char *
s_name_key(const char *text)
{
    char *f = crm_utf8_fold(text), *w = f;
    crm_utf8_strip_invisible(f);
    for (const char *p = f; *p; p++)
        if (*p != ' ' && *p != '\t')
            *w++ = *p;
    *w = '\0';
    return f;
}

/* True if REC is what TEXT names: its phone, its e-mail or its exact name. */
static bool
s_names(const crm_entity_t *e, const ProtobufCMessage *rec, const char *text)
{
    char phone[24];
    const ProtobufCFieldDescriptor *phones = crm_record_field(e->desc, "phones");
    const ProtobufCFieldDescriptor *emails = crm_record_field(e->desc, "emails");
    if (phones && crm_record_phone(text, phone))
        for (size_t i = 0; i < crm_record_count(rec, phones); i++)
            if (!strcmp(crm_record_str_at(rec, phones, i), phone))
                return true;
    if (emails && strchr(text, '@'))
        for (size_t i = 0; i < crm_record_count(rec, emails); i++)
            if (!strcasecmp(crm_record_str_at(rec, emails, i), text))
                return true;
    if (!crm_record_field(e->desc, "name"))
        return false;
    char *a = s_name_key(crm_record_get_str(rec, "name")), *b = s_name_key(text);
    bool same = *a && !strcmp(a, b);
    free(a);
    free(b);
    return same;
}

#define RESOLVE_PAGES 64 /* search requests a name lookup makes at most */

int
entity_resolve(conn_t *conn, const crm_entity_t *e, const char *text, char id[24])
{
    char low[24];
    size_t len = strlen(text);
    id[0] = '\0';
    if (len < sizeof low) { /* an id, in any case: C12 is c12 */
        for (size_t i = 0; i <= len; i++)
            low[i] = (char)((text[i] >= 'A' && text[i] <= 'Z') ? text[i] + 32 : text[i]);
        if (crm_entity_parse_id(e, low)) {
            memcpy(id, low, len + 1);
            return EXIT_OK;
        }
    }
    if (!crm_record_field(e->desc, "name") && !crm_record_field(e->desc, "phones")) {
        snprintf(id, 24, "%s", text); /* the server says there is no such record */
        return EXIT_OK;
    }
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    char cursor[32] = "";
    er.text = (char *)text;
    er.limit = 100;
    ProtobufCMessage *hits[20];
    size_t n = 0, total = 0;
    int rc = EXIT_OK, page = 0;
    /* Every record the search finds is looked at, page after page from the
       server's cursor, so that a name two records hold is never taken for one
       of them: a name of single Latin letters ("J") is searched record by
       record, 2,000 records a request. Two exact matches settle it; a search
       not done after RESOLVE_PAGES requests resolves nothing */
    for (; page < RESOLVE_PAGES && total < 2; page++) {
        er.after = cursor;
        conn_set_quiet(conn, true);
        rc = entity_call(conn, CRM__OP__OP_ENTITY_SEARCH, e, &er, &reply);
        conn_set_quiet(conn, false);
        if (rc == EXIT_UNREACHABLE)
            return rc;
        if (rc != EXIT_OK)
            break;
        for (size_t i = 0; i < entity_count(reply); i++) {
            ProtobufCMessage *rec = entity_record(e, reply, i);
            if (rec && s_names(e, rec, text)) {
                if (total++ < 20)
                    hits[n++] = rec;
                else
                    crm_proto_free(&rec);
            } else {
                crm_proto_free(&rec);
            }
        }
        const char *next = reply->body_case == CRM__REPLY__BODY_ENTITY && reply->entity->next_after
                               ? reply->entity->next_after
                               : "";
        snprintf(cursor, sizeof cursor, "%s", next);
        conn_reply_free(&reply);
        if (!*cursor)
            break;
    }
    /* a refusal other than "this text cannot be searched" (a rate limit, a store
       refusing reads) is the answer, not "no such record" */
    char *shown = out_escape(text);
    if (rc != EXIT_OK && conn_last_status(conn) != CRM__ERROR_CODE__INVALID_ARGUMENT) {
        char *why = out_escape(conn_last_message(conn));
        fprintf(stderr, "crm: cannot look up %s '%s' by name: %s (%s)\n", e->name, shown, why,
                crm_err_name(conn_last_status(conn)));
        free(why);
    } else if (total < 2 && *cursor && page == RESOLVE_PAGES) {
        fprintf(stderr, "crm: too many %s records hold '%s' to look it up by name; give an id\n",
                e->name, shown);
        rc = EXIT_REFUSED;
    } else if (total == 1) {
        snprintf(id, 24, "%s", crm_record_get_str(hits[0], "id"));
        rc = EXIT_OK;
    } else if (total == 0) { /* what this kind is found by: the entity table says */
        bool phones = crm_entity_field_with(e, CRM_F_PHONE) != NULL;
        bool emails = crm_entity_field_with(e, CRM_F_EMAIL) != NULL;
        bool searched = false;
        for (const crm_index_t *ix = e->indexes; ix->field; ix++)
            searched = searched || ix->kind == CRM_IDX_TEXT;
        fprintf(stderr, "crm: no %s '%s' (give an id%s%s or the exact name", e->name, shown,
                phones ? ", a phone number" : "", emails ? ", an e-mail" : "");
        if (searched)
            fprintf(stderr, "; 'crm %s search' finds parts of names", e->name);
        fputs(")\n", stderr);
        rc = EXIT_REFUSED;
    } else {
        fprintf(stderr, "crm: '%s' names %s%zu %s records; give one of their ids:\n", shown,
                *cursor ? "at least " : "", total, e->name);
        entity_print_table(stderr, NULL, e, hits, n);
        rc = EXIT_REFUSED;
    }
    free(shown);
    for (size_t i = 0; i < n; i++)
        crm_proto_free(&hits[i]);
    return rc;
}

int
entity_get(conn_t *conn, const crm_entity_t *e, const char *id, ProtobufCMessage **out)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    char resolved[24];
    *out = NULL;
    int rc0 = entity_resolve(conn, e, id, resolved);
    if (rc0 != EXIT_OK)
        return rc0;
    er.id = resolved;
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
s_cell(const crm_entity_t *e, const ProtobufCMessage *rec, const char *field, bool wide)
{
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, field);
    if (!fd)
        return strdup("");
    bool is_time = (crm_entity_flags(e, field) & CRM_F_TIME) != 0;
    char *raw = crm_record_format(rec, fd, is_time, true);
    if (is_time && fd->label != PROTOBUF_C_LABEL_REPEATED && crm_record_get_i64(rec, fd->name)) {
        char when[40]; /* tables show minutes, in the user's time zone: 2026-11-23 15:04 */
        out_time(crm_record_get_i64(rec, fd->name), OUT_TIME_TABLE, when);
        free(raw);
        raw = strdup(when);
    }
    char *v = out_escape(raw); /* one line per row, nothing that drives the terminal */
    free(raw);
    return wide ? v : out_cut(v, CELL_MAX);
}

void
entity_print_table(FILE *out, const cli_ctx_t *ctx, const crm_entity_t *e,
                   ProtobufCMessage *const *recs, size_t n)
{
    char cols[512];
    const char *names[32];
    size_t ncols = 0, width[32], min[32];
    bool wide = ctx && ctx->wide;
    snprintf(cols, sizeof cols, "%s", ctx && ctx->columns ? ctx->columns : e->columns);
    for (char *save = NULL, *c = strtok_r(cols, ",", &save); c && ncols < 32;
         c = strtok_r(NULL, ",", &save)) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, c);
        if (!fd) { /* the singular of a list */
            char plural[64];
            snprintf(plural, sizeof plural, "%ss", c);
            fd = crm_record_field(e->desc, plural);
        }
        if (!fd) {
            fprintf(stderr, "crm: --columns: no field '%s' on %s (skipped)\n", c, e->name);
            continue;
        }
        names[ncols++] = fd->name;
    }
    if (ncols == 0)
        return;
    char **cells = calloc(n * ncols + 1, sizeof *cells);
    CRM_ASSERT_ALLOC(cells);
    for (size_t j = 0; j < ncols; j++) {
        width[j] = crm_utf8_width(names[j]);
        min[j] = width[j] < 6 ? width[j] : 6; /* "2026-…" still says something */
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ncols; j++) {
            cells[i * ncols + j] = s_cell(e, recs[i], names[j], wide);
            size_t w = crm_utf8_width(cells[i * ncols + j]);
            if (w > width[j])
                width[j] = w;
        }
    /* fit the terminal: shorten the widest column a column at a time; ids
       (the first column) are never cut */
    size_t term = wide ? 0 : out_term_width(out), total = 2 * (ncols - 1);
    for (size_t j = 0; j < ncols; j++)
        total += width[j];
    while (term && total > term) {
        size_t widest = 0;
        for (size_t j = 1; j < ncols; j++)
            if (width[j] > min[j] && (!widest || width[j] > width[widest]))
                widest = j;
        if (!widest)
            break; /* nothing left to shorten: the lines wrap */
        width[widest]--;
        total--;
    }
    for (size_t i = 0; term && i < n; i++)
        for (size_t j = 1; j < ncols; j++)
            if (crm_utf8_width(cells[i * ncols + j]) > width[j])
                cells[i * ncols + j] = out_cut(cells[i * ncols + j], width[j]);
    for (size_t j = 0; j < ncols; j++) {
        char upper[64];
        size_t k = 0;
        for (; names[j][k] && k < 63; k++)
            upper[k] = (char)(names[j][k] == '_' ? ' ' : names[j][k] - 32 * (names[j][k] >= 'a'));
        upper[k] = '\0';
        char *head = out_cut(strdup(upper), width[j]);
        fprintf(out, "%s%s", j ? "  " : "", head);
        if (j + 1 < ncols)
            fprintf(out, "%*s", (int)(width[j] - crm_utf8_width(head)), "");
        free(head);
    }
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < ncols; j++) {
            const char *c = cells[i * ncols + j];
            fprintf(out, "%s%s", j ? "  " : "", c);
            if (j + 1 < ncols)
                fprintf(out, "%*s", (int)(width[j] - crm_utf8_width(c)), "");
            free(cells[i * ncols + j]);
        }
        fputc('\n', out);
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
        bool is_time = (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0;
        char *v = crm_record_format(rec, fd, is_time, true);
        if (is_time && fd->label != PROTOBUF_C_LABEL_REPEATED && crm_record_get_i64(rec, fd->name)) {
            char when[40]; /* the user's time zone, with its offset */
            out_time(crm_record_get_i64(rec, fd->name), OUT_TIME_RFC3339, when);
            free(v);
            v = strdup(when);
        }
        char *shown = out_escape(v); /* one line per field */
        printf("%-*s  %s\n", (int)width, fd->name, shown);
        free(shown);
        free(v);
    }
}

void
entity_print_changes(FILE *out, const crm_entity_t *e, const ProtobufCMessage *before,
                     const ProtobufCMessage *after, char *const *only, size_t nonly)
{
    char *changed[64];
    size_t n = crm_record_diff(e, before, after, changed, 64), width = 0, kept = 0;
    for (size_t i = 0; i < n; i++) { /* as shown, and changed by the server's account */
        bool listed = !only;
        for (size_t k = 0; only && k < nonly && !listed; k++)
            listed = !strcmp(only[k], changed[i]);
        if (listed)
            changed[kept++] = changed[i];
    }
    n = kept;
    for (size_t i = 0; i < n; i++)
        if (strlen(changed[i]) > width)
            width = strlen(changed[i]);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, changed[i]);
        bool is_time = (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0;
        char *a = crm_record_format(before, fd, is_time, true);
        char *b = crm_record_format(after, fd, is_time, true);
        char *sa = out_escape(a), *sb = out_escape(b); /* one line per field */
        fprintf(out, "  %-*s  %s → %s\n", (int)width, fd->name, *sa ? sa : "-", *sb ? sb : "-");
        free(sa);
        free(sb);
        free(a);
        free(b);
    }
}

void
entity_print_json(const crm_entity_t *e, const ProtobufCMessage *rec)
{
    (void)e;
    out_json(stdout, rec);
}
