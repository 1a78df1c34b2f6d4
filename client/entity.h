/*  =========================================================================
    entity - the client side of the generic record path

    Owns:      building EntityRequests, decoding the records in replies,
               turning command-line flags into fields or filters, and printing
               records as tables, field lists and JSON - for every kind at once.
    =========================================================================
*/
#ifndef ENTITY_H
#define ENTITY_H
#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"
#include "conn.h"
#include "crm_entity.h"

#define ENTITY_MAX_ARGS 64
#define ENTITY_MAX_FLAGS 160 /* flags one subcommand takes */

/* What a record subcommand's arguments said. */
typedef struct {
    const char *pos[8];               /* positional arguments */
    int npos;
    unsigned limit;                   /* --limit N (0 = server default) */
    const char *after;                /* --after ID */
    uint64_t expect_version;          /* --expect-version V */
    const char *touched[ENTITY_MAX_ARGS]; /* fields set by --FIELD flags */
    size_t ntouched;
    bool count;                       /* --count: the number of matches only */
    const char *sort;                 /* --sort FIELD (or -FIELD, descending) */
    Crm__Filter filters[ENTITY_MAX_ARGS]; /* --FIELD VALUE as filters (list); A,B is A or B */
    Crm__Filter *filter_ptrs[ENTITY_MAX_ARGS];
    size_t nfilters;
    char when[ENTITY_MAX_ARGS][80]; /* time ranges as sent: local ends with their zone */
} entity_args_t;

/* TEXT, a time as the user types it (local unless it says its zone), as an
   explicit instant with this user's zone into OUT (2026-11-15T00:00:00.000+08:00);
   with LAST a date, minute or second without a zone is its last millisecond.
   False if TEXT is no time. */
bool entity_local_time(const char *text, bool last, char *out, size_t n);

/* Parse a record subcommand's argv (argv[0] is the subcommand). "--FIELD
   VALUE" sets FIELD on REC (a repeated field's first flag replaces what REC
   held, later ones append; maps take key=value; "--no-FIELD" clears it), or,
   when REC is NULL, becomes an equality filter. Field names may use '-' for
   '_' and the singular of a list ("--phone" for phones). With REC,
   "--add-FIELD V" appends V to a list and "--rm-FIELD V" removes it (compared
   as stored; a value the list lacks is a usage error). Returns EXIT_OK, or
   EXIT_USAGE after printing why. */
int entity_parse_args(const crm_entity_t *e, ProtobufCMessage *rec, int argc, char **argv,
                      entity_args_t *a);

/* The flags subcommand SUB of kind E takes, spelled as typed ("--phone",
   "--add-tag", "--expect-version"), into OUT; their number. For --help, "did
   you mean" and the completion script: one list, made from the descriptor. */
size_t entity_flags(const crm_entity_t *e, const char *sub, char out[][40]);

/* Send one entity request OP for kind E; on EXIT_OK the caller frees *reply. */
int entity_call(conn_t *conn, Crm__Op op, const crm_entity_t *e, Crm__EntityRequest *er,
                Crm__Reply **reply);
/* REQ as the entity request OP for kind E with body ER (REQ borrows ER and
   E's name), for conn_call_all(). */
void entity_request_init(Crm__Request *req, Crm__Op op, const crm_entity_t *e,
                         Crm__EntityRequest *er);
/* Number of records in an entity reply, and record I decoded (caller frees
   with crm_proto_free(); NULL if it cannot be read). */
size_t entity_count(const Crm__Reply *reply);
ProtobufCMessage *entity_record(const crm_entity_t *e, const Crm__Reply *reply, size_t i);
/* The id of the record of kind E that TEXT names: an id in any case ("C12"),
   or - for kinds with them - a phone number, an e-mail or the exact name
   (case and spaces aside) that names exactly one record. Otherwise EXIT_REFUSED
   after saying so on stderr, with a table of the candidates when several. */
int entity_resolve(conn_t *conn, const crm_entity_t *e, const char *text, char id[24]);
/* Remove VALUE (compared as stored: a phone normalized, case aside) from the
   list FD of REC; false if REC did not hold it. */
bool entity_list_remove(const crm_entity_t *e, ProtobufCMessage *rec,
                        const ProtobufCFieldDescriptor *fd, const char *value);
/* Fetch record ID of kind E (anything entity_resolve takes). Returns an exit
   code; on EXIT_OK caller frees *out; use the record's "id" from then on. */
int entity_get(conn_t *conn, const crm_entity_t *e, const char *id, ProtobufCMessage **out);

/* A kind-specific subcommand of `crm KIND ...` (argv[0] is the subcommand). */
struct entity_sub {
    const char *name;
    int (*fn)(cli_ctx_t *ctx, const crm_entity_t *e, int argc, char **argv);
    const char *usage;
};
/* `crm KIND SUB ...`: EXTRA first, then the generic add, show, edit, list,
   search, delete, history; EXTRA_USAGE is printed under the usage. */
int entity_kind_command(const char *kind, int argc, char **argv, cli_ctx_t *ctx,
                        const char *extra_usage, const struct entity_sub *extra, size_t nextra);
/* Create REC and say so (or print it with --json). */
int entity_create(cli_ctx_t *ctx, conn_t *conn, const crm_entity_t *e, ProtobufCMessage *rec);
/* Update the TOUCHED fields of record ID to REC's values, based on EXPECT. */
int entity_update(conn_t *conn, const crm_entity_t *e, const char *id, ProtobufCMessage *rec,
                  const char *const *touched, size_t ntouched, uint64_t expect,
                  Crm__Reply **reply);
/* "KIND ID is at version V" and each changed field "old → new" against
   BEFORE (if not NULL); or the record with --json. */
void entity_report_update(cli_ctx_t *ctx, const crm_entity_t *e, const Crm__Reply *reply,
                          const ProtobufCMessage *before);
/* "  field  old → new" for every field that differs between BEFORE and AFTER as
   shown; with ONLY (N names, the server's list of what a change changed), for those
   of them only: a value shown masked before and in clear after did not change. */
void entity_print_changes(FILE *out, const crm_entity_t *e, const ProtobufCMessage *before,
                          const ProtobufCMessage *after, char *const *only, size_t n);
/* The records of a list reply as a table or JSON lines, with the paging hint. */
void entity_print_page(cli_ctx_t *ctx, const crm_entity_t *e, const Crm__Reply *reply);
/* RECS[0..N) as a table or JSON lines, then "(more: --after NEXT)" if NEXT is not empty. */
void entity_print_records(cli_ctx_t *ctx, const crm_entity_t *e, ProtobufCMessage *const *recs,
                          size_t n, const char *next);

/* ==== query.c: list and search ==== */

/* `crm KIND list|search`: OP with TEXT (search) and A's filters, paging,
   --count and --sort. A filter value "A,B" matches A or B (one query per
   combination, merged in id order); search applies the filters to what it
   finds; --sort orders every match (at most QUERY_SORT_MAX) by a field. */
int entity_query(cli_ctx_t *ctx, const crm_entity_t *e, Crm__Op op, const char *text,
                 entity_args_t *a);
/* Every record of kind E matching A's filters (OR values merged), after
   A->after, at most A->limit (0: all), in id order: *OUT (caller frees each
   with crm_proto_free() and the array with free()) and *N. */
int entity_query_gather(conn_t *conn, const crm_entity_t *e, entity_args_t *a,
                        ProtobufCMessage ***out, size_t *n);

/* Printing: a table with the kind's columns, "field  value" lines, or JSON. */
/* The table fits the terminal (or $COLUMNS): the widest columns are cut
   with "…", by display width (CJK counts double), ids never; a cell is at
   most 40 columns. CTX (may be NULL): --wide shows every value whole,
   --columns a,b,c picks the columns. */
void entity_print_table(FILE *out, const cli_ctx_t *ctx, const crm_entity_t *e,
                        ProtobufCMessage *const *recs, size_t n);
void entity_print_fields(const crm_entity_t *e, const ProtobufCMessage *rec);
void entity_print_json(const crm_entity_t *e, const ProtobufCMessage *rec);

#endif
