/*  =========================================================================
    cmd_entity - `crm customer|activity ...`, `crm note add`, `crm tag add|rm`

    One set of subcommands (add, show, edit, list, search, delete) serves every
    record kind through the entity table; the kind-specific commands (activity
    log, note add, tag add/rm) are thin wrappers over them.
    =========================================================================
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "entity.h"
#include "suggest.h"

#define TIMELINE_MAX 20
#define TAG_RETRIES 10


static bool
s_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return true;
    return false;
}

/* What subcommand SUB of kind E takes, for --help: the fields it sets, with
   their values, or the fields it filters on, and its options. */
static void
s_print_fields(const crm_entity_t *e, const char *sub)
{
    bool write = !strcmp(sub, "add") || !strcmp(sub, "edit") || !strcmp(sub, "log") ||
                 !strcmp(sub, "open");
    bool filter = !strcmp(sub, "list") || !strcmp(sub, "search");
    if (filter) {
        char flags[ENTITY_MAX_FLAGS][40];
        size_t n = entity_flags(e, sub, flags);
        printf("\nfilters (--FIELD VALUE; A,B is A or B; several filters are ANDed; "
               "--owner me):\n ");
        for (size_t i = 0; i < n; i++)
            printf(" %s", flags[i]);
        printf("\n");
        return;
    }
    if (!write)
        return;
    printf("\nfields of a %s (--FIELD VALUE; a list takes the flag again%s; maps key=value):\n",
           e->name, !strcmp(sub, "edit") ? ", --add-FIELD V / --rm-FIELD V change one value, "
                                           "--no-FIELD empties a field" : "");
    for (unsigned i = 0; i < e->desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        unsigned flags = crm_entity_flags_of(e, fd);
        if (flags & (CRM_F_SYSTEM | CRM_F_CALLER | CRM_F_CALLER_DEPT | CRM_F_DERIVED |
                     CRM_F_STAMPED))
            continue;
        char kebab[40];
        size_t k = 0;
        for (; fd->name[k] && k < sizeof kebab - 1; k++)
            kebab[k] = fd->name[k] == '_' ? '-' : fd->name[k];
        kebab[k] = '\0';
        if (fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type == PROTOBUF_C_TYPE_STRING &&
            k > 1 && kebab[k - 1] == 's')
            kebab[k - 1] = '\0'; /* --phone: one value per flag */
        printf("  --%-18s", kebab);
        if (fd->type == PROTOBUF_C_TYPE_ENUM) {
            const ProtobufCEnumDescriptor *ed = fd->descriptor;
            for (unsigned j = 0, m = 0; j < ed->n_values; j++) {
                char name[64];
                if (ed->values[j].value == 0)
                    continue;
                crm_record_enum_name(ed, ed->values[j].value, name, sizeof name);
                printf("%s%s", m++ ? "|" : "", name);
            }
        } else if (flags & CRM_F_TIME) {
            printf("YYYY-MM-DD[THH:MM:SSZ]");
        } else if (flags & CRM_F_DATE) {
            printf("YYYY-MM-DD");
        } else if (crm_record_is_map(fd)) {
            printf("KEY=VALUE");
        } else if (fd->type == PROTOBUF_C_TYPE_BOOL) {
            printf("yes|no");
        }
        if (flags & CRM_F_REQUIRED)
            printf("  (required)");
        printf("\n");
    }
    if (!strcmp(sub, "edit")) {
        char all[ENTITY_MAX_FLAGS][40];
        size_t n = entity_flags(e, sub, all);
        printf("one value of a list:");
        for (size_t i = 0; i < n; i++)
            if (!strncmp(all[i], "--add-", 6) || !strncmp(all[i], "--rm-", 5))
                printf(" %s V", all[i]);
        printf("\n");
    }
}

static int
s_connect(cli_ctx_t *ctx, conn_t **conn)
{
    return conn_open(ctx, conn);
}

void
entity_print_records(cli_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *const *recs,
                     size_t n, const char *next)
{
    if (ctx->json)
        for (size_t i = 0; i < n; i++)
            entity_print_json(e, recs[i]);
    else if (n)
        entity_print_table(stdout, ctx, e, recs, n);
    else
        printf("no %s records\n", e->name);
    if (next && *next && !ctx->json)
        printf("(more: --after %s)\n", next);
    else if (next && *next) /* the last line of a page that has a next one: its cursor */
        printf("{\"next_after\":\"%s\"}\n", next);
}

/* Print the records of a reply as a table or JSON lines, with the paging hint. */
void
entity_print_page(cli_ctx_t *ctx, const crm_entity_t *e, const Crm__Reply *reply)
{
    size_t n = entity_count(reply);
    ProtobufCMessage **recs = calloc(n + 1, sizeof *recs);
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        if ((recs[got] = entity_record(e, reply, i)))
            got++;
    entity_print_records(ctx, e, recs, got, reply->entity->next_after);
    for (size_t i = 0; i < got; i++)
        crm_proto_free(&recs[i]);
    free(recs);
}

/* ==== add ==== */

/* Create REC and say so (or print it with --json). */
int
entity_create(cli_ctx_t *ctx, conn_t *conn, const crm_entity_t *e, ProtobufCMessage *rec)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    size_t len;
    uint8_t *packed = crm_proto_pack(rec, &len);
    er.record.data = packed;
    er.record.len = len;
    er.allow_duplicate = ctx->allow_duplicate;
    int rc = entity_call(conn, CRM__OP__OP_ENTITY_CREATE, e, &er, &reply);
    free(packed);
    if (rc == EXIT_OK && entity_count(reply) == 1) {
        ProtobufCMessage *made = entity_record(e, reply, 0);
        if (made && ctx->json)
            entity_print_json(e, made);
        else if (made)
            printf("created %s %s\n", e->name, crm_record_get_str(made, "id"));
        crm_proto_free(&made);
    }
    conn_reply_free(&reply);
    return rc;
}

static int
s_add(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* --allow-duplicate is an option, not a field */
        if (!strcmp(argv[i], "--allow-duplicate")) {
            ctx->allow_duplicate = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
            argc--;
            i--;
        }
    ProtobufCMessage *rec = crm_proto_new(e->desc);
    entity_args_t a;
    conn_t *conn = NULL;
    int rc = entity_parse_args(e, rec, argc, argv, &a);
    const char *pfield = crm_entity_field_with(e, CRM_F_PARENT);
    if (rc == EXIT_OK && a.npos && !(a.npos == 1 && pfield)) {
        fprintf(stderr, "crm %s add: unexpected argument '%s' (fields go as --FIELD VALUE)\n",
                e->name, a.pos[0]);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK && (rc = s_connect(ctx, &conn)) == EXIT_OK) {
        char pid[24];
        if (a.npos == 1) { /* `crm deal add c12 ...` (or a phone, an e-mail, a name): the parent */
            if ((rc = entity_resolve(conn, crm_entity_by_name(e->parent), a.pos[0], pid)) ==
                EXIT_OK)
                crm_record_set_str(rec, pfield, pid);
        }
        if (rc == EXIT_OK)
            rc = entity_create(ctx, conn, e, rec);
    }
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* ==== show ==== */

#define SHOW_KINDS_MAX 16 /* child kinds one record's page lists */

/* `crm KIND show ID`: the record, then its timeline - the child records
   (activities), newest first - and the other child kinds (deals, orders...)
   the caller may read. The record and every list are asked for at once, one
   round trip for all (conn_call_all); only a phone, e-mail or name costs one
   more, to find the id first. */
static int
s_show(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    char id[24];
    const crm_entity_t *kinds[SHOW_KINDS_MAX + 1];
    Crm__Request reqs[SHOW_KINDS_MAX + 1], *req_ptrs[SHOW_KINDS_MAX + 1];
    Crm__EntityRequest ers[SHOW_KINDS_MAX + 1];
    Crm__Filter filters[SHOW_KINDS_MAX + 1], *filter_ptrs[SHOW_KINDS_MAX + 1];
    Crm__Reply *replies[SHOW_KINDS_MAX + 1] = {NULL};
    size_t n = 0;
    int rc = entity_parse_args(e, NULL, argc, argv, &a);
    if (rc == EXIT_OK && a.npos != 1) {
        fprintf(stderr, "crm %s show: expected one ID\n", e->name);
        rc = EXIT_USAGE;
    }
    if (rc != EXIT_OK || (rc = s_connect(ctx, &conn)) != EXIT_OK ||
        (rc = entity_resolve(conn, e, a.pos[0], id)) != EXIT_OK)
        goto cleanup;
    /* request 0: the record; then one list per child kind, in table order */
    kinds[n] = e;
    ers[n] = (Crm__EntityRequest)CRM__ENTITY_REQUEST__INIT;
    ers[n].id = id;
    entity_request_init(&reqs[n], CRM__OP__OP_ENTITY_GET, e, &ers[n]);
    n++;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++) {
        if (!k->parent || strcmp(k->parent, e->name))
            continue;
        CRM_ASSERT(n <= SHOW_KINDS_MAX);
        kinds[n] = k;
        filters[n] = (Crm__Filter)CRM__FILTER__INIT;
        filters[n].field = (char *)crm_entity_field_with(k, CRM_F_PARENT);
        filters[n].value = id;
        filter_ptrs[n] = &filters[n];
        ers[n] = (Crm__EntityRequest)CRM__ENTITY_REQUEST__INIT;
        ers[n].filters = &filter_ptrs[n];
        ers[n].n_filters = 1;
        ers[n].limit = TIMELINE_MAX;
        entity_request_init(&reqs[n], CRM__OP__OP_ENTITY_LIST, k, &ers[n]);
        n++;
    }
    for (size_t i = 0; i < n; i++)
        req_ptrs[i] = &reqs[i];
    if ((rc = conn_call_all(conn, req_ptrs, n, replies)) != EXIT_OK ||
        (rc = conn_status(conn, replies[0])) != EXIT_OK)
        goto cleanup;
    if (entity_count(replies[0]) != 1 || !(rec = entity_record(e, replies[0], 0))) {
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    if (ctx->json) {
        printf("{\"record\":");
        out_json_inline(stdout, rec);
    } else {
        entity_print_fields(e, rec);
    }
    for (size_t i = 1; i < n; i++) {
        const crm_entity_t *k = kinds[i];
        bool timeline = i == 1; /* the first child kind is the timeline */
        conn_set_quiet(conn, true);
        rc = conn_status(conn, replies[i]);
        conn_set_quiet(conn, false);
        if (rc != EXIT_OK && conn_last_status(conn) == CRM__ERROR_CODE__PERMISSION_DENIED) {
            rc = EXIT_OK; /* not for this user's department: leave it out */
            continue;
        }
        if (rc != EXIT_OK) {
            fprintf(stderr, "crm: %s (%s)\n", conn_last_message(conn),
                    crm_err_name(conn_last_status(conn)));
            goto cleanup;
        }
        size_t count = entity_count(replies[i]);
        if (ctx->json) {
            printf(",\"%s%s\":[", timeline ? "timeline" : k->name, timeline ? "" : "s");
            for (size_t j = 0; j < count; j++) {
                ProtobufCMessage *c = entity_record(k, replies[i], j);
                if (c) {
                    printf("%s", j ? "," : "");
                    out_json_inline(stdout, c);
                }
                crm_proto_free(&c);
            }
            printf("]");
        } else if (timeline || count) {
            printf("\n%s%s (newest first):\n", timeline ? "timeline" : k->name,
                   timeline ? "" : "s");
            if (count == 0)
                printf("  no %s records yet\n", k->name);
            else
                entity_print_page(ctx, k, replies[i]);
        }
    }
    if (ctx->json)
        printf("}\n");
cleanup:
    for (size_t i = 0; i < n; i++)
        conn_reply_free(&replies[i]);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* ==== edit ==== */

/* Send REC's TOUCHED fields as an update based on version EXPECT. */
int
entity_update(conn_t *conn, const crm_entity_t *e, const char *id, ProtobufCMessage *rec,
         const char *const *touched, size_t ntouched, uint64_t expect, Crm__Reply **reply)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    size_t len;
    uint8_t *packed = crm_proto_pack(rec, &len);
    er.id = (char *)id;
    er.expect_version = expect;
    er.record.data = packed;
    er.record.len = len;
    er.fields = (char **)touched;
    er.n_fields = ntouched;
    int rc = entity_call(conn, CRM__OP__OP_ENTITY_UPDATE, e, &er, reply);
    free(packed);
    return rc;
}

void
entity_report_update(cli_ctx_t *ctx, const crm_entity_t *e, const Crm__Reply *reply,
                     const ProtobufCMessage *before)
{
    ProtobufCMessage *now = entity_count(reply) ? entity_record(e, reply, 0) : NULL;
    if (now && ctx->json) {
        entity_print_json(e, now);
    } else if (now && before &&
               crm_record_get_u64(now, "version") == crm_record_get_u64(before, "version")) {
        printf("%s %s is unchanged (version %llu)\n", e->name, crm_record_get_str(now, "id"),
               (unsigned long long)crm_record_get_u64(now, "version"));
    } else if (now) {
        printf("%s %s is at version %llu\n", e->name, crm_record_get_str(now, "id"),
               (unsigned long long)crm_record_get_u64(now, "version"));
        /* the server's list of what changed (older servers send none: all that differs) */
        const Crm__EntityReply *er = reply->entity;
        if (before)
            entity_print_changes(stdout, e, before, now, er->n_changed ? er->changed : NULL,
                                 er->n_changed);
    }
    crm_proto_free(&now);
}

/* A copy of REC that shares nothing with it. */
static ProtobufCMessage *
s_copy(const ProtobufCMessage *rec)
{
    size_t len;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *out = NULL;
    uint8_t *packed = crm_proto_pack(rec, &len);
    crm_proto_unpack_shown(rec->descriptor, packed, len, &out, errbuf);
    free(packed);
    return out;
}

/* Tests only: CRM_TEST_EDIT_PAUSE_MS holds an edit between its read and its
   write, so that a test can change the record meanwhile (tests/e2e/test_field_merge.sh). */
static void
s_test_pause(void)
{
    const char *ms = getenv("CRM_TEST_EDIT_PAUSE_MS");
    long n = ms ? strtol(ms, NULL, 10) : 0;
    if (n > 0 && n <= 60000)
        nanosleep(&(struct timespec){n / 1000, (n % 1000) * 1000000L}, NULL);
}

static int
s_edit(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL, *before = NULL;
    Crm__Reply *reply = NULL;
    const char *id = NULL;
    /* the ID is the first argument; parse flags onto the current record */
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-') {
            id = argv[i];
            break;
        } else if (strcmp(argv[i], "--") && i + 1 < argc && strncmp(argv[i], "--no-", 5)) {
            i++;
        }
    if (!id) {
        fprintf(stderr, "crm %s edit: expected an ID\n", e->name);
        return EXIT_USAGE;
    }
    int rc = s_connect(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, id, &rec)) != EXIT_OK)
        goto cleanup;
    before = s_copy(rec); /* what it was, to say what changed */
    if ((rc = entity_parse_args(e, rec, argc, argv, &a)) != EXIT_OK)
        goto cleanup;
    if (a.ntouched == 0) {
        fprintf(stderr, "crm %s edit: nothing to change (give --FIELD VALUE)\n", e->name);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    /* the version read is the base: the server merges this change with any
       made since to other fields, and refuses it (CONFLICT, naming who changed
       what, when) if one of these fields changed since */
    uint64_t expect = a.expect_version ? a.expect_version : crm_record_get_u64(rec, "version");
    s_test_pause();
    rc = entity_update(conn, e, crm_record_get_str(rec, "id"), rec, a.touched, a.ntouched, expect,
                       &reply);
    if (rc == EXIT_OK) {
        entity_report_update(ctx, e, reply, before);
        ProtobufCMessage *now = entity_count(reply) ? entity_record(e, reply, 0) : NULL;
        uint64_t v = now ? crm_record_get_u64(now, "version") : 0;
        /* the lines above then include changes others made meanwhile */
        if (!ctx->json && v > expect + 1 && v != crm_record_get_u64(before, "version"))
            printf("  (merged: others changed other fields since version %llu)\n",
                   (unsigned long long)expect);
        crm_proto_free(&now);
    }
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    crm_proto_free(&before);
    conn_destroy(&conn);
    return rc;
}

/* ==== list, search ==== */

static int
s_list(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    int rc = entity_parse_args(e, NULL, argc, argv, &a);
    if (rc == EXIT_OK && a.npos) {
        fprintf(stderr, "crm %s list: unexpected argument '%s' (filters go as --FIELD VALUE)\n",
                e->name, a.pos[0]);
        return EXIT_USAGE;
    }
    return rc == EXIT_OK ? entity_query(ctx, e, CRM__OP__OP_ENTITY_LIST, NULL, &a) : rc;
}

static int
s_search(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    int rc = entity_parse_args(e, NULL, argc, argv, &a);
    if (rc == EXIT_OK && a.npos != 1) {
        fprintf(stderr, "crm %s search: expected one TEXT (a name, company, phone or e-mail)\n",
                e->name);
        return EXIT_USAGE;
    }
    return rc == EXIT_OK ? entity_query(ctx, e, CRM__OP__OP_ENTITY_SEARCH, a.pos[0], &a) : rc;
}

/* ==== delete ==== */

/* On a terminal, ask before deleting REC (with its children): true to go on. */
static bool
s_confirm_delete(const crm_entity_t *e, const ProtobufCMessage *rec)
{
    const char *id = crm_record_get_str(rec, "id");
    const char *label = crm_record_field(e->desc, "name")     ? crm_record_get_str(rec, "name")
                        : crm_record_field(e->desc, "title")  ? crm_record_get_str(rec, "title")
                        : crm_record_field(e->desc, "subject") ? crm_record_get_str(rec, "subject")
                                                               : "";
    char *shown = out_escape(label);
    bool children = false;
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++)
        children = children || (k->parent && !strcmp(k->parent, e->name) &&
                                 k->on_parent_delete == CRM_CASCADE);
    fprintf(stderr, "delete %s %s%s%s%s%s? [y/N] ", e->name, id, *shown ? " (" : "", shown,
            *shown ? ")" : "", children ? " with its activities, feedback and tasks" : "");
    fflush(stderr);
    free(shown);
    char answer[16] = "";
    if (!fgets(answer, sizeof answer, stdin))
        return false;
    return answer[0] == 'y' || answer[0] == 'Y';
}

static int
s_delete(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    Crm__Reply *reply = NULL;
    bool yes = false;
    for (int i = 1; i < argc; i++) /* --yes is an option, not a field */
        if (!strcmp(argv[i], "--yes") || !strcmp(argv[i], "-y")) {
            yes = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
            argc--;
            i--;
        }
    int rc = entity_parse_args(e, NULL, argc, argv, &a);
    if (rc == EXIT_OK && a.npos != 1) {
        fprintf(stderr, "crm %s delete: expected one ID\n", e->name);
        rc = EXIT_USAGE;
    }
    char id[24];
    if (rc != EXIT_OK || (rc = s_connect(ctx, &conn)) != EXIT_OK ||
        (rc = entity_resolve(conn, e, a.pos[0], id)) != EXIT_OK)
        goto cleanup;
    /* on a terminal a person is asked first (--yes for scripts; scripts have no terminal) */
    bool ask = !yes && !ctx->json && isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
    uint64_t expect = a.expect_version;
    if (!expect || ask) {
        if ((rc = entity_get(conn, e, id, &rec)) != EXIT_OK)
            goto cleanup;
        if (!expect)
            expect = crm_record_get_u64(rec, "version");
    }
    if (ask && !s_confirm_delete(e, rec)) {
        fprintf(stderr, "not deleted\n");
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    er.id = id;
    er.expect_version = expect;
    if ((rc = entity_call(conn, CRM__OP__OP_ENTITY_DELETE, e, &er, &reply)) != EXIT_OK)
        goto cleanup;
    /* a customer goes to the recycle bin (with the records deleted with it) */
    const Crm__Binned *b = reply->body_case == CRM__REPLY__BODY_ENTITY &&
                                   reply->entity->n_binned
                               ? reply->entity->binned[0]
                               : NULL;
    if (ctx->json) {
        printf("{\"deleted\":\"%s\",\"binned\":%s,\"with\":%u}\n", id, b ? "true" : "false",
               b ? b->n_parts : 0);
    } else if (b) {
        printf("deleted %s %s", e->name, id);
        if (b->n_parts)
            printf(" with %u record%s of it", b->n_parts, b->n_parts == 1 ? "" : "s");
        printf("; it is in the recycle bin: 'crm %s restore %s' brings it back\n", e->name, id);
    } else {
        printf("deleted %s %s\n", e->name, id);
    }
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* ==== history ==== */

static int
s_history(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "crm %s history: expected ID [FIELD]\n", e->name);
        return EXIT_USAGE;
    }
    char id[24];
    conn_t *conn = NULL;
    int rc = s_connect(ctx, &conn);
    if (rc == EXIT_OK)
        rc = entity_resolve(conn, e, argv[1], id);
    conn_destroy(&conn);
    return rc == EXIT_OK ? cmd_history(ctx, e->name, id, argc == 3 ? argv[2] : NULL) : rc;
}

/* ==== Kind commands ==== */

static const struct entity_sub s_subs[] = {
    {"add", s_add, "add [--FIELD VALUE]...            create a record"},
    {"show", s_show, "show ID|PHONE|EMAIL|NAME         the record and its timeline"},
    {"edit", s_edit, "edit ID|PHONE|EMAIL|NAME [--FIELD VALUE]... [--add-FIELD V] [--rm-FIELD V] "
                     "[--no-FIELD] [--expect-version V]   prints each change, old → new"},
    {"list", s_list, "list [--FIELD VALUE[,VALUE]]... [--owner me] [--unowned] [--view NAME] "
                     "[--count] [--sort [-]FIELD] [--limit N] [--after ID]   filters are ANDed, "
                     "A,B is A or B"},
    {"search", s_search, "search TEXT [--FIELD VALUE[,VALUE]]... [--count] [--limit N] "
                         "[--after ID]   name/company part, phone, e-mail"},
    {"delete", s_delete, "delete ID|PHONE|EMAIL|NAME [--yes] [--expect-version V]   asks first "
                         "on a terminal"},
    {"history", s_history, "history ID|PHONE|EMAIL|NAME [FIELD]   every value a field has had, by whom, when"},
};

int
entity_kind_command(const char *kind, int argc, char **argv, cli_ctx_t *ctx,
                    const char *extra_usage, const struct entity_sub *extra, size_t nextra)
{
    const crm_entity_t *e = crm_entity_by_name(kind);
    CRM_ASSERT(e != NULL);
    const char *sub = argc > 1 ? argv[1] : NULL;
    size_t nsubs = sizeof s_subs / sizeof s_subs[0];
    const struct entity_sub *found = NULL;
    for (size_t i = 0; sub && i < nextra && !found; i++)
        if (!strcmp(sub, extra[i].name))
            found = &extra[i];
    for (size_t i = 0; sub && i < nsubs && !found; i++)
        if (!strcmp(sub, s_subs[i].name))
            found = &s_subs[i];
    if (sub && !strcmp(sub, "--complete")) { /* for the completion script: the subcommands */
        for (size_t i = 0; i < nextra; i++)
            printf("%s\n", extra[i].name);
        for (size_t i = 0; i < nsubs; i++)
            printf("%s\n", s_subs[i].name);
        return EXIT_OK;
    }
    if (found) {
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--complete")) { /* ... and a subcommand's flags */
                char flags[ENTITY_MAX_FLAGS][40];
                size_t n = entity_flags(e, found->name, flags);
                for (size_t k = 0; k < n; k++)
                    printf("%s\n", flags[k]);
                return EXIT_OK;
            }
        if (s_wants_help(argc - 1, argv + 1)) {
            printf("usage: crm %s %s\n", kind, found->usage);
            s_print_fields(e, found->name);
            return EXIT_OK;
        }
        return found->fn(ctx, e, argc - 1, argv + 1);
    }
    bool help = sub && (!strcmp(sub, "-h") || !strcmp(sub, "--help"));
    FILE *out = help ? stdout : stderr;
    if (sub && !help) {
        const char *names[64];
        size_t n = 0;
        for (size_t i = 0; i < nextra && n < 64; i++)
            names[n++] = extra[i].name;
        for (size_t i = 0; i < nsubs && n < 64; i++)
            names[n++] = s_subs[i].name;
        const char *near = suggest_nearest(sub, names, n);
        if (near)
            fprintf(stderr, "crm %s: unknown subcommand '%s'; did you mean '%s'?\n", kind, sub,
                    near);
        else
            fprintf(stderr, "crm %s: unknown subcommand '%s'\n", kind, sub);
    } else if (!sub) {
        fprintf(stderr, "crm %s: a SUBCOMMAND is required\n", kind);
    }
    fprintf(out, "usage: crm %s SUBCOMMAND ...\n\n", kind);
    for (size_t i = 0; i < nextra; i++)
        fprintf(out, "  crm %s %s\n", kind, extra[i].usage);
    for (size_t i = 0; i < nsubs; i++)
        fprintf(out, "  crm %s %s\n", kind, s_subs[i].usage);
    if (extra_usage)
        fprintf(out, "%s", extra_usage);
    return help ? EXIT_OK : EXIT_USAGE;
}

/* ==== Sales pipeline ==== */

/* `crm customer convert ID --deal-title T [--amount X] [--expected-close D]
   [--owner U] [--summary TEXT]`: one change on the server. */
static int
s_convert(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const crm_entity_t *de = crm_entity_by_name("deal");
    ProtobufCMessage *deal = crm_proto_new(de->desc);
    const char *id = NULL, *summary = "";
    char errbuf[CRM_ERRBUF];
    int rc = EXIT_OK;
    for (int i = 1; i < argc && rc == EXIT_OK; i++) {
        const char *opt = argv[i];
        if (opt[0] != '-') {
            if (id) {
                fprintf(stderr, "crm customer convert: expected one customer ID\n");
                rc = EXIT_USAGE;
            }
            id = opt;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "crm customer convert: '%s' needs a value\n", opt);
            rc = EXIT_USAGE;
            break;
        }
        const char *val = argv[++i];
        const char *field = !strcmp(opt, "--deal-title")      ? "title"
                            : !strcmp(opt, "--amount")         ? "amount"
                            : !strcmp(opt, "--expected-close") ? "expected_close"
                            : !strcmp(opt, "--owner")          ? "owner"
                                                               : NULL;
        if (!strcmp(opt, "--summary")) {
            summary = val;
        } else if (!field) {
            fprintf(stderr, "crm customer convert: unknown option '%s'\n", opt);
            rc = EXIT_USAGE;
        } else if (crm_record_set_text(deal, crm_record_field(de->desc, field), val, false,
                                       errbuf) != CRM_OK) {
            fprintf(stderr, "crm customer convert: %s\n", errbuf);
            rc = EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK && !id) {
        fprintf(stderr, "crm customer convert: expected a customer ID\n");
        rc = EXIT_USAGE;
    }
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    char cid[24];
    if (rc == EXIT_OK && (rc = s_connect(ctx, &conn)) == EXIT_OK &&
        (rc = entity_resolve(conn, e, id, cid)) == EXIT_OK) {
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__ConvertRequest cr = CRM__CONVERT_REQUEST__INIT;
        id = cid;
        size_t len;
        uint8_t *packed = crm_proto_pack(deal, &len);
        cr.customer_id = (char *)id;
        cr.deal.data = packed;
        cr.deal.len = len;
        cr.summary = (char *)summary;
        req.op = CRM__OP__OP_CONVERT;
        req.body_case = CRM__REQUEST__BODY_CONVERT;
        req.convert = &cr;
        rc = conn_call(conn, &req, &reply);
        free(packed);
    }
    if (rc == EXIT_OK && reply->body_case == CRM__REPLY__BODY_CONVERT) {
        const crm_entity_t *kinds[3] = {e, de, crm_entity_by_name("activity")};
        const ProtobufCBinaryData *bins[3] = {&reply->convert->customer, &reply->convert->deal,
                                              &reply->convert->activity};
        ProtobufCMessage *recs[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3; i++)
            crm_proto_unpack(kinds[i]->desc, bins[i]->data, bins[i]->len, &recs[i], errbuf);
        if (ctx->json) {
            printf("{\"customer\":");
            out_json_inline(stdout, recs[0]);
            printf(",\"deal\":");
            out_json_inline(stdout, recs[1]);
            printf(",\"activity\":");
            out_json_inline(stdout, recs[2]);
            printf("}\n");
        } else if (recs[0] && recs[1] && recs[2]) {
            printf("converted %s to a prospect: deal %s, activity %s\n", id,
                   crm_record_get_str(recs[1], "id"), crm_record_get_str(recs[2], "id"));
        }
        for (int i = 0; i < 3; i++)
            crm_proto_free(&recs[i]);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    crm_proto_free(&deal);
    return rc;
}

/* `crm deal move ID STAGE [--lost-reason TEXT]` */
static int
s_deal_move(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const char *id = NULL, *stage = NULL, *reason = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lost-reason") && i + 1 < argc)
            reason = argv[++i];
        else if (argv[i][0] != '-' && !id)
            id = argv[i];
        else if (argv[i][0] != '-' && !stage)
            stage = argv[i];
        else {
            fprintf(stderr, "crm deal move: unexpected '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!id || !stage) {
        fprintf(stderr, "usage: crm deal move ID qualify|proposal|negotiation|won|lost "
                        "[--lost-reason TEXT]\n");
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    Crm__Reply *reply = NULL;
    char errbuf[CRM_ERRBUF];
    const char *touched[2] = {"stage", "lost_reason"};
    int rc = s_connect(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, id, &rec)) != EXIT_OK)
        goto cleanup;
    if (crm_record_set_text(rec, crm_record_field(e->desc, "stage"), stage, false, errbuf) !=
            CRM_OK ||
        (reason && crm_record_set_text(rec, crm_record_field(e->desc, "lost_reason"), reason,
                                       false, errbuf) != CRM_OK)) {
        fprintf(stderr, "crm deal move: %s\n", errbuf);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    rc = entity_update(conn, e, crm_record_get_str(rec, "id"), rec, touched, reason ? 2 : 1,
                       crm_record_get_u64(rec, "version"), &reply);
    if (rc == EXIT_OK)
        entity_report_update(ctx, e, reply, NULL);
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* `crm order refund ID --amount X [--reason TEXT]`: appends a refund; the
   server checks it against the total and sets the status. */
static int
s_order_refund(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    const char *id = NULL, *amount = NULL, *reason = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--amount") && i + 1 < argc)
            amount = argv[++i];
        else if (!strcmp(argv[i], "--reason") && i + 1 < argc)
            reason = argv[++i];
        else if (argv[i][0] != '-' && !id)
            id = argv[i];
        else {
            fprintf(stderr, "crm order refund: unexpected '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!id || !amount) {
        fprintf(stderr, "usage: crm order refund ID --amount AMOUNT [--reason TEXT]\n");
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    ProtobufCMessage *rec = NULL;
    Crm__Reply *reply = NULL;
    char errbuf[CRM_ERRBUF];
    const char *touched[1] = {"refunds"};
    const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, "refunds");
    int rc = s_connect(ctx, &conn);
    if (rc != EXIT_OK || (rc = entity_get(conn, e, id, &rec)) != EXIT_OK)
        goto cleanup;
    ProtobufCMessage *refund = crm_record_add_message(rec, fd);
    if (crm_record_set_text(refund, crm_record_field(refund->descriptor, "amount"), amount, false,
                            errbuf) != CRM_OK ||
        crm_record_set_text(refund, crm_record_field(refund->descriptor, "reason"), reason, false,
                            errbuf) != CRM_OK) {
        fprintf(stderr, "crm order refund: %s\n", errbuf);
        rc = EXIT_USAGE;
        goto cleanup;
    }
    id = crm_record_get_str(rec, "id");
    rc = entity_update(conn, e, id, rec, touched, 1, crm_record_get_u64(rec, "version"), &reply);
    if (rc == EXIT_OK) {
        ProtobufCMessage *now = entity_count(reply) ? entity_record(e, reply, 0) : NULL;
        if (now && ctx->json)
            entity_print_json(e, now);
        else if (now) {
            char *refunded = crm_record_format(now, crm_record_field(e->desc, "refunded"), false,
                                               true);
            char *status = crm_record_format(now, crm_record_field(e->desc, "status"), false,
                                             true);
            printf("order %s: refunded %s in all, %s (version %llu)\n", id, refunded, status,
                   (unsigned long long)crm_record_get_u64(now, "version"));
            free(refunded);
            free(status);
        }
        crm_proto_free(&now);
    }
cleanup:
    conn_reply_free(&reply);
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

int
cmd_deal(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"move", s_deal_move,
         "move ID qualify|proposal|negotiation|won|lost [--lost-reason TEXT]"},
    };
    return entity_kind_command("deal", argc, argv, ctx,
                          "\nadd takes the CUSTOMER id first: crm deal add c12 --title T "
                          "--amount 50000\nlist filters: --stage, --owner USER|me, --customer-id, "
                          "--expected-close FROM..TO\n",
                          extra, sizeof extra / sizeof extra[0]);
}

int
cmd_order(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"refund", s_order_refund, "refund ID --amount AMOUNT [--reason TEXT]"},
    };
    return entity_kind_command("order", argc, argv, ctx,
                          "\nadd takes the CUSTOMER id first and one --line per line:\n"
                          "  crm order add c12 --line 'sku=A1,name=Widget,quantity=2,"
                          "unit_price=99.50'\n",
                          extra, sizeof extra / sizeof extra[0]);
}

/* `crm pipeline [--owner USER|me]`: deals by stage for your scope. */
int
cmd_pipeline(int argc, char **argv, cli_ctx_t *ctx)
{
    Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
    Crm__Filter f = CRM__FILTER__INIT, *fp = &f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--owner") && i + 1 < argc) {
            f.field = (char *)"owner";
            f.value = argv[++i];
            rr.filters = &fp;
            rr.n_filters = 1;
        } else {
            bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: crm pipeline [--owner USER|me]\n\nDeals by stage - count, amount "
                    "and amount weighted by probability -\nfor the deals you may read.\n");
            return help ? EXIT_OK : EXIT_USAGE;
        }
    }
    rr.name = (char *)"pipeline";
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_REPORT;
    req.body_case = CRM__REQUEST__BODY_REPORT;
    req.report = &rr;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = s_connect(ctx, &conn);
    if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK &&
        reply->body_case == CRM__REPLY__BODY_REPORT) {
        const Crm__ReportReply *rep = reply->report;
        if (ctx->json) {
            out_json(stdout, &rep->base);
        } else {
            uint64_t count = 0;
            int64_t sum = 0, weighted = 0;
            bool big = false; /* the open stages' sum is past 64 bits (each row is not) */
            char a[64], w[64];
            printf("%-12s %6s %18s %18s\n", "STAGE", "DEALS", "AMOUNT", "WEIGHTED");
            for (size_t i = 0; i < rep->n_rows; i++) {
                const Crm__ReportRow *row = rep->rows[i];
                crm_money_format(row->sum, rep->currency, true, a, sizeof a);
                crm_money_format(row->weighted, rep->currency, true, w, sizeof w);
                printf("%-12s %6llu %18s %18s\n", row->key, (unsigned long long)row->count, a, w);
                if (strcmp(row->key, "won") && strcmp(row->key, "lost")) {
                    count += row->count;
                    big = big || __builtin_add_overflow(sum, row->sum, &sum) ||
                          __builtin_add_overflow(weighted, row->weighted, &weighted);
                }
            }
            crm_money_format(sum, rep->currency, true, a, sizeof a);
            crm_money_format(weighted, rep->currency, true, w, sizeof w);
            if (big) {
                snprintf(a, sizeof a, "(too large)");
                snprintf(w, sizeof w, "-");
            }
            printf("%-12s %6llu %18s %18s\n", "open", (unsigned long long)count, a, w);
        }
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* `crm customer merge KEEP OTHER... [--take FIELD=ID]...`: one change. */
static int
s_merge(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    Crm__MergeRequest mr = CRM__MERGE_REQUEST__INIT;
    char *others[64];
    Crm__Filter take[32], *takes[32];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--take") && i + 1 < argc && mr.n_take < 32 &&
            strchr(argv[i + 1], '=')) {
            char *eq = strchr(argv[++i], '=');
            *eq = '\0';
            crm__filter__init(&take[mr.n_take]);
            take[mr.n_take].field = argv[i];
            take[mr.n_take].value = eq + 1;
            takes[mr.n_take] = &take[mr.n_take];
            mr.n_take++;
        } else if (argv[i][0] != '-' && !*mr.keep) {
            mr.keep = argv[i];
        } else if (argv[i][0] != '-' && mr.n_others < 64) {
            others[mr.n_others++] = argv[i];
        } else if (argv[i][0] != '-') {
            fprintf(stderr, "crm customer merge: merge 1 to 50 customers into one at a time\n");
            return EXIT_USAGE;
        } else {
            fprintf(stderr, "usage: crm customer merge KEEP OTHER... [--take FIELD=ID]...\n");
            return EXIT_USAGE;
        }
    }
    if (!*mr.keep || !mr.n_others) {
        fprintf(stderr, "usage: crm customer merge KEEP OTHER... [--take FIELD=ID]...\n");
        return EXIT_USAGE;
    }
    mr.others = others;
    mr.take = takes;
    Crm__Request req = CRM__REQUEST__INIT;
    req.op = CRM__OP__OP_MERGE;
    req.body_case = CRM__REQUEST__BODY_MERGE;
    req.merge = &mr;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && (rc = conn_call(conn, &req, &reply)) == EXIT_OK) {
        ProtobufCMessage *kept = entity_count(reply) ? entity_record(e, reply, 0) : NULL;
        if (kept && ctx->json)
            entity_print_json(e, kept);
        else if (kept)
            printf("merged %zu customer%s into %s (version %llu)\n", mr.n_others,
                   mr.n_others == 1 ? "" : "s", mr.keep,
                   (unsigned long long)crm_record_get_u64(kept, "version"));
        crm_proto_free(&kept);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* `crm customer dupes [--min-score N]`: groups sharing a phone (score 100),
   an e-mail (90), or a name at a company (70), a slice per call. */
static int
s_dupes(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    (void)e;
    const char *slice = NULL, *min_score = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--slice") && i + 1 < argc) {
            slice = argv[++i];
        } else if (!strcmp(argv[i], "--min-score") && i + 1 < argc &&
                   strspn(argv[i + 1], "0123456789") == strlen(argv[i + 1]) && *argv[i + 1]) {
            min_score = argv[++i];
        } else {
            fprintf(stderr, "usage: crm customer dupes [--min-score N] [--slice N]\n"
                            "  groups of likely duplicates: same phone (score 100), same e-mail "
                            "(90),\n  same name at the same company (70); --min-score leaves out "
                            "the less likely\n");
            return EXIT_USAGE;
        }
    }
    conn_t *conn = NULL;
    char after[1000] = "";
    size_t groups = 0;
    int rc = conn_open(ctx, &conn);
    while (rc == EXIT_OK) {
        Crm__ReportRequest rr = CRM__REPORT_REQUEST__INIT;
        Crm__Filter f[3], *fp[3];
        Crm__Request req = CRM__REQUEST__INIT;
        Crm__Reply *reply = NULL;
        rr.name = (char *)"dupes";
        rr.filters = fp;
        if (*after) {
            crm__filter__init(&f[rr.n_filters]);
            f[rr.n_filters].field = (char *)"after";
            f[rr.n_filters].value = after;
            fp[rr.n_filters] = &f[rr.n_filters];
            rr.n_filters++;
        }
        if (slice) {
            crm__filter__init(&f[rr.n_filters]);
            f[rr.n_filters].field = (char *)"slice";
            f[rr.n_filters].value = (char *)slice;
            fp[rr.n_filters] = &f[rr.n_filters];
            rr.n_filters++;
        }
        if (min_score) {
            crm__filter__init(&f[rr.n_filters]);
            f[rr.n_filters].field = (char *)"min_score";
            f[rr.n_filters].value = (char *)min_score;
            fp[rr.n_filters] = &f[rr.n_filters];
            rr.n_filters++;
        }
        req.op = CRM__OP__OP_REPORT;
        req.body_case = CRM__REQUEST__BODY_REPORT;
        req.report = &rr;
        if ((rc = conn_call(conn, &req, &reply)) != EXIT_OK)
            break;
        bool done = true;
        if (reply->body_case == CRM__REPLY__BODY_REPORT) {
            for (size_t i = 0; i < reply->report->n_rows; i++) {
                if (ctx->json) {
                    printf("{\"group\":");
                    out_json_str(stdout, reply->report->rows[i]->key);
                    printf(",\"count\":%llu,\"score\":%lld}\n",
                           (unsigned long long)reply->report->rows[i]->count,
                           (long long)reply->report->rows[i]->weighted);
                } else {
                    printf("%s (score %lld)\n", reply->report->rows[i]->key,
                           (long long)reply->report->rows[i]->weighted);
                }
                groups++;
            }
            snprintf(after, sizeof after, "%s", reply->report->next);
            done = !*after;
        }
        conn_reply_free(&reply);
        if (done)
            break;
    }
    if (rc == EXIT_OK && !ctx->json)
        printf("%zu group%s of likely duplicates (merge with: crm customer merge KEEP OTHER...)\n",
               groups, groups == 1 ? "" : "s");
    conn_destroy(&conn);
    return rc;
}

/* ==== The recycle bin ==== */

/* `crm customer bin [--limit N] [--after ID]`: the deleted customers that can
   be restored, masked as every read is. */
static int
s_bin(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    for (int i = 1; i < argc; i++) {
        unsigned long long n;
        if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            char what[48];
            snprintf(what, sizeof what, "%s bin", e->name);
            if (!cli_number_opt(what, "--limit", argv[++i], 1, 1000, &n))
                return EXIT_USAGE;
            er.limit = (uint32_t)n;
        } else if (!strcmp(argv[i], "--after") && i + 1 < argc) {
            er.after = argv[++i];
        } else {
            fprintf(stderr, "usage: crm %s bin [--limit N] [--after ID]\n"
                            "  the deleted %ss that can still be restored, with when and by whom "
                            "they were deleted\n",
                    e->name, e->name);
            return EXIT_USAGE;
        }
    }
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK)
        rc = entity_call(conn, CRM__OP__OP_BIN_LIST, e, &er, &reply);
    if (rc == EXIT_OK && reply->body_case == CRM__REPLY__BODY_ENTITY) {
        const Crm__EntityReply *r = reply->entity;
        for (size_t i = 0; i < r->n_binned; i++) {
            const Crm__Binned *b = r->binned[i];
            ProtobufCMessage *rec = NULL;
            char errbuf[CRM_ERRBUF];
            if (crm_proto_unpack_wire(e->desc, b->record.data, b->record.len, &rec, errbuf) !=
                CRM_OK)
                continue;
            char when[40];
            if (ctx->json) {
                out_time(b->deleted_at, OUT_TIME_RFC3339, when);
                printf("{\"deleted_at\":\"%s\",\"deleted_by\":", when);
                out_json_str(stdout, b->deleted_by);
                printf(",\"with\":%u,\"record\":", b->n_parts);
                out_json_inline(stdout, rec);
                printf("}\n");
            } else {
                out_time(b->deleted_at, OUT_TIME_TABLE, when);
                const char *name = crm_record_field(e->desc, "name") ? crm_record_get_str(rec, "name")
                                                                     : "";
                const char *company =
                    crm_record_field(e->desc, "company") ? crm_record_get_str(rec, "company") : "";
                char *n = out_escape(name), *c = out_escape(company), *by = out_escape(b->deleted_by);
                printf("%s  %s%s%s%s  deleted %s by %s", crm_record_get_str(rec, "id"), n,
                       *c ? " (" : "", c, *c ? ")" : "", when, by);
                if (b->n_parts)
                    printf(", with %u record%s", b->n_parts, b->n_parts == 1 ? "" : "s");
                printf("\n");
                free(n);
                free(c);
                free(by);
            }
            crm_proto_free(&rec);
        }
        if (!ctx->json) {
            printf("%zu deleted %s%s", r->n_binned, e->name, r->n_binned == 1 ? "" : "s");
            if (*r->next_after)
                printf(" on this page (more: --after %s)", r->next_after);
            printf("; restore one with: crm %s restore ID\n", e->name);
        } else if (*r->next_after) { /* as every JSON listing: the next page's cursor */
            printf("{\"next_after\":\"%s\"}\n", r->next_after);
        }
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* `crm customer restore ID [--allow-duplicate]` */
static int
s_restore(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--allow-duplicate"))
            er.allow_duplicate = true;
        else if (argv[i][0] != '-' && !*er.id)
            er.id = argv[i];
        else
            bad = true;
    }
    if (bad || !*er.id) {
        fprintf(stderr, "usage: crm %s restore ID [--allow-duplicate]\n"
                        "  brings a deleted %s back from the recycle bin, with the records "
                        "deleted with it\n",
                e->name, e->name);
        return EXIT_USAGE;
    }
    char id[24];
    snprintf(id, sizeof id, "%s", er.id);
    for (char *p = id; *p; p++) /* ids are case-insensitive */
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    er.id = id;
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK)
        rc = entity_call(conn, CRM__OP__OP_BIN_RESTORE, e, &er, &reply);
    if (rc == EXIT_OK) {
        uint64_t with = reply->body_case == CRM__REPLY__BODY_ENTITY ? reply->entity->count : 0;
        if (ctx->json)
            printf("{\"restored\":\"%s\",\"with\":%llu}\n", id, (unsigned long long)with);
        else
            printf("restored %s %s with %llu record%s of it\n", e->name, id,
                   (unsigned long long)with, with == 1 ? "" : "s");
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* `crm customer purge ID|--expired` (admins) */
static int
s_purge(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    bool expired = argc == 2 && !strcmp(argv[1], "--expired");
    if (!expired && (argc != 2 || argv[1][0] == '-')) {
        fprintf(stderr, "usage: crm %s purge ID|--expired   (admins)\n"
                        "  removes a deleted %s from the recycle bin for good, or every one "
                        "older than the server's --bin-keep\n",
                e->name, e->name);
        return EXIT_USAGE;
    }
    if (!expired)
        er.id = argv[1];
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    uint64_t n = 0, got = 0;
    int rc = conn_open(ctx, &conn);
    do { /* --expired: the server purges a bounded batch per request */
        conn_reply_free(&reply);
        if (rc == EXIT_OK)
            rc = entity_call(conn, CRM__OP__OP_BIN_PURGE, e, &er, &reply);
        got = rc == EXIT_OK && reply->body_case == CRM__REPLY__BODY_ENTITY ? reply->entity->count
                                                                          : 0;
        n += got;
    } while (rc == EXIT_OK && expired && got > 0);
    if (rc == EXIT_OK) {
        if (ctx->json)
            printf("{\"purged\":%llu}\n", (unsigned long long)n);
        else
            printf("purged %llu deleted %s%s for good\n", (unsigned long long)n, e->name,
                   n == 1 ? "" : "s");
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

/* `crm customer erase ID|PHONE|EMAIL|NAME [--yes] [--no-wait] [--status]` (admins):
   the customer's personal data out of it, its records and their history. */
static int
s_erase(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    bool yes = false, wait = true, status = false, bad = false;
    const char *who = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--yes") || !strcmp(argv[i], "-y"))
            yes = true;
        else if (!strcmp(argv[i], "--no-wait"))
            wait = false;
        else if (!strcmp(argv[i], "--status"))
            status = true;
        else if (argv[i][0] != '-' && !who)
            who = argv[i];
        else
            bad = true;
    }
    if (bad || !who) {
        fprintf(stderr,
                "usage: crm %s erase ID|PHONE|EMAIL|NAME [--yes] [--no-wait] [--status]   "
                "(admins)\n"
                "  blanks the personal data of a customer and of all its records (name, "
                "phones, e-mails, address, notes...), in the records, their indexes, every "
                "earlier change and the audit trail; the records themselves stay (orders "
                "keep their amounts). A deleted customer leaves the recycle bin. It cannot be "
                "undone. The history is scrubbed by the server in the background: this waits "
                "for it unless --no-wait; --status says how far it is\n",
                e->name);
        return EXIT_USAGE;
    }
    conn_t *conn = NULL;
    Crm__Reply *reply = NULL;
    char id[24];
    int rc = conn_open(ctx, &conn);
    if (rc == EXIT_OK && crm_entity_parse_id(e, who)) { /* a deleted one is found by id only */
        snprintf(id, sizeof id, "%s", who);
        for (char *p = id; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    } else if (rc == EXIT_OK) {
        rc = entity_resolve(conn, e, who, id);
    }
    if (rc == EXIT_OK && !status && !yes && !ctx->json && isatty(STDIN_FILENO) &&
        isatty(STDERR_FILENO)) {
        fprintf(stderr, "erase the personal data of %s %s and of all its records, in their "
                        "history too? This cannot be undone. [y/N] ",
                e->name, id);
        fflush(stderr);
        char answer[16] = "";
        if (!fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y')) {
            fprintf(stderr, "not erased\n");
            rc = EXIT_REFUSED;
        }
    }
    Crm__EntityRequest er = CRM__ENTITY_REQUEST__INIT;
    er.id = id;
    uint64_t records = 0, left = 0, under_way = 0;
    char merged[24] = "";
    if (rc == EXIT_OK && !status &&
        (rc = entity_call(conn, CRM__OP__OP_ERASE, e, &er, &reply)) == EXIT_OK) {
        records = reply->entity->count;
        snprintf(merged, sizeof merged, "%s", reply->entity->merged_into);
    }
    /* the scrub runs a slice per server loop turn (about 2,000 entries): wait for
       it to end, unless --no-wait */
    for (int64_t waited = 0, step = 10; rc == EXIT_OK && (status || wait) && waited < 600000;
         waited += step, step = step < 200 ? 2 * step : 200) {
        conn_reply_free(&reply);
        if ((rc = entity_call(conn, CRM__OP__OP_ERASE_STATUS, e, &er, &reply)) != EXIT_OK)
            break;
        left = reply->entity->scrub_left;
        under_way = reply->entity->count;
        if (status || !under_way)
            break;
        nanosleep(&(struct timespec){0, step * 1000000L}, NULL);
    }
    if (rc == EXIT_OK && !status && !wait)
        under_way = 1; /* not asked */
    if (rc == EXIT_OK) {
        if (ctx->json && status)
            printf("{\"customer\":\"%s\",\"under_way\":%s,\"history_left\":%llu}\n", id,
                   under_way ? "true" : "false", (unsigned long long)left);
        else if (ctx->json)
            printf("{\"erased\":\"%s\",\"records\":%llu,\"scrubbed\":%s,"
                   "\"merged_into\":\"%s\"}\n",
                   id, (unsigned long long)records, under_way ? "false" : "true", merged);
        else if (status && !under_way)
            printf("no scrub of the history of %s %s is under way (none was asked for, or it "
                   "is finished)\n",
                   e->name, id);
        else if (status)
            printf("the history of %s %s is being scrubbed: %llu change-log entries to go, "
                   "then its audit trail and the replies kept for retries\n",
                   e->name, id, (unsigned long long)left);
        else
            printf("erased %s %s: %llu record%s blanked; its history %s%s%s\n", e->name, id,
                   (unsigned long long)records, records == 1 ? "" : "s",
                   under_way ? "is still being scrubbed: crm customer erase " : "is scrubbed",
                   under_way ? id : "", under_way ? " --status" : "");
        if (*merged && !status && !ctx->json)
            printf("%s %s had been merged into %s, which holds its data now: erase %s too\n",
                   e->name, id, merged, merged);
    }
    conn_reply_free(&reply);
    conn_destroy(&conn);
    return rc;
}

int
cmd_customer(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"dupes", s_dupes, "dupes                     groups sharing a phone or an e-mail "
                           "(managers)"},
        {"merge", s_merge,
         "merge KEEP OTHER... [--take FIELD=ID]...   one customer from several: fields combined, "
         "lists united, every record moved (managers)"},
        {"bin", s_bin, "bin [--limit N] [--after ID]   deleted customers that can be restored"},
        {"restore", s_restore,
         "restore ID [--allow-duplicate]   bring a deleted customer back with its activities"},
        {"purge", s_purge, "purge ID|--expired        remove from the recycle bin for good (admins)"},
        {"erase", s_erase,
         "erase ID [--yes] [--no-wait] [--status]   blank a customer's personal data in it, its "
         "records and their history, for good (admins)"},
        {"convert", s_convert,
         "convert ID --deal-title TITLE [--amount AMOUNT] [--expected-close DATE] "
         "[--owner USER] [--summary TEXT]   a lead becomes a prospect with a deal"},
    };
    return entity_kind_command("customer", argc, argv, ctx,
                          "\nFields: crm customer add --help. Tags: crm tag add|rm ID TAG...\n",
                          extra, sizeof extra / sizeof extra[0]);
}

/* `crm activity log CUSTOMER --type call --summary TEXT ...` */
static int
s_activity_log(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    ProtobufCMessage *rec = crm_proto_new(e->desc);
    entity_args_t a;
    conn_t *conn = NULL;
    int rc = entity_parse_args(e, rec, argc, argv, &a);
    if (rc == EXIT_OK && a.npos != 1) {
        fprintf(stderr, "crm activity log: expected one CUSTOMER id\n");
        rc = EXIT_USAGE;
    }
    char cid[24];
    if (rc == EXIT_OK && (rc = s_connect(ctx, &conn)) == EXIT_OK &&
        (rc = entity_resolve(conn, crm_entity_by_name("customer"), a.pos[0], cid)) == EXIT_OK) {
        crm_record_set_str(rec, "customer_id", cid);
        rc = entity_create(ctx, conn, e, rec);
    }
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* `crm activity list CUSTOMER` */
static int
s_activity_list(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv)
{
    entity_args_t a;
    char cid[24];
    int rc = entity_parse_args(e, NULL, argc, argv, &a);
    if (rc == EXIT_OK && a.npos == 1 && a.nfilters == 0) {
        conn_t *conn = NULL;
        if ((rc = s_connect(ctx, &conn)) == EXIT_OK)
            rc = entity_resolve(conn, crm_entity_by_name("customer"), a.pos[0], cid);
        conn_destroy(&conn);
        if (rc != EXIT_OK)
            return rc;
        Crm__Filter *f = &a.filters[0];
        crm__filter__init(f);
        f->field = (char *)"customer_id";
        f->value = cid;
        a.filter_ptrs[0] = f;
        a.nfilters = 1;
    } else if (rc == EXIT_OK && a.npos) {
        fprintf(stderr, "crm activity list: give one CUSTOMER id, or filters\n");
        return EXIT_USAGE;
    }
    return rc == EXIT_OK ? entity_query(ctx, e, CRM__OP__OP_ENTITY_LIST, NULL, &a) : rc;
}

int
cmd_activity(int argc, char **argv, cli_ctx_t *ctx)
{
    static const struct entity_sub extra[] = {
        {"log", s_activity_log,
         "log CUSTOMER --type call|email|meeting|visit|wechat|sms|note --summary TEXT "
         "[--body TEXT] [--direction inbound|outbound] [--occurred-at WHEN]"},
        {"list", s_activity_list, "list CUSTOMER [--limit N] [--after ID]   newest first"},
    };
    return entity_kind_command("activity", argc, argv, ctx, NULL, extra, sizeof extra / sizeof extra[0]);
}

int
cmd_note(int argc, char **argv, cli_ctx_t *ctx)
{
    if (argc < 4 || strcmp(argv[1], "add") || s_wants_help(argc, argv)) {
        bool help = s_wants_help(argc, argv);
        fprintf(help ? stdout : stderr,
                "usage: crm note add CUSTOMER TEXT...\n\nAdds a note to the customer's "
                "timeline (an activity of type note).\n");
        return help ? EXIT_OK : EXIT_USAGE;
    }
    const crm_entity_t *e = crm_entity_by_name("activity");
    ProtobufCMessage *rec = crm_proto_new(e->desc);
    char text[8192] = "";
    size_t used = 0;
    for (int i = 3; i < argc && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", i > 3 ? " " : "",
                                 argv[i]);
    crm_record_set_enum(rec, "type", CRM__ACTIVITY_TYPE__NOTE);
    crm_record_set_str(rec, "summary", text);
    conn_t *conn = NULL;
    char cid[24];
    int rc = s_connect(ctx, &conn);
    if (rc == EXIT_OK &&
        (rc = entity_resolve(conn, crm_entity_by_name("customer"), argv[2], cid)) == EXIT_OK) {
        crm_record_set_str(rec, "customer_id", cid);
        rc = entity_create(ctx, conn, e, rec);
    }
    crm_proto_free(&rec);
    conn_destroy(&conn);
    return rc;
}

/* `crm tag add|rm ID TAG...`: read, change the tag list, write back with the
   version read; on a conflict read again and retry. */
int
cmd_tag(int argc, char **argv, cli_ctx_t *ctx)
{
    bool add = argc > 1 && !strcmp(argv[1], "add"), rm = argc > 1 && !strcmp(argv[1], "rm");
    if (argc < 4 || (!add && !rm) || s_wants_help(argc, argv)) {
        bool help = s_wants_help(argc, argv);
        fprintf(help ? stdout : stderr, "usage: crm tag add|rm CUSTOMER TAG...\n");
        return help ? EXIT_OK : EXIT_USAGE;
    }
    const crm_entity_t *e = crm_entity_by_name("customer");
    const ProtobufCFieldDescriptor *tags = crm_record_field(e->desc, "tags");
    const char *touched[] = {"tags"};
    conn_t *conn = NULL;
    int rc = s_connect(ctx, &conn);
    for (int attempt = 0; rc == EXIT_OK && attempt < TAG_RETRIES; attempt++) {
        ProtobufCMessage *rec = NULL, *next = crm_proto_new(e->desc);
        Crm__Reply *reply = NULL;
        char errbuf[CRM_ERRBUF];
        if ((rc = entity_get(conn, e, argv[2], &rec)) != EXIT_OK) {
            crm_proto_free(&next);
            break;
        }
        for (size_t i = 0; i < crm_record_count(rec, tags); i++) {
            const char *t = crm_record_str_at(rec, tags, i);
            bool drop = false;
            for (int j = 3; rm && j < argc; j++)
                drop = drop || !strcasecmp(t, argv[j]);
            if (!drop)
                crm_record_set_text(next, tags, t, false, errbuf);
        }
        for (int j = 3; add && j < argc; j++)
            crm_record_set_text(next, tags, argv[j], false, errbuf);
        conn_set_quiet(conn, true);
        rc = entity_update(conn, e, crm_record_get_str(rec, "id"), next, touched, 1,
                           crm_record_get_u64(rec, "version"), &reply);
        conn_set_quiet(conn, false);
        if (rc == EXIT_OK)
            entity_report_update(ctx, e, reply, rec);
        else if (conn_last_status(conn) != CRM__ERROR_CODE__CONFLICT)
            fprintf(stderr, "crm: %s (%s)\n", conn_last_message(conn),
                    crm_err_name(conn_last_status(conn)));
        conn_reply_free(&reply);
        crm_proto_free(&rec);
        crm_proto_free(&next);
        if (rc == EXIT_OK || conn_last_status(conn) != CRM__ERROR_CODE__CONFLICT)
            break;
        rc = EXIT_OK; /* someone else changed it: read again */
        if (attempt + 1 == TAG_RETRIES) {
            fprintf(stderr, "crm: %s keeps changing; gave up after %d tries\n", argv[2],
                    TAG_RETRIES);
            rc = EXIT_REFUSED;
        }
    }
    conn_destroy(&conn);
    return rc;
}
