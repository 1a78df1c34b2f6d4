/*  =========================================================================
    dispatch - one request in, one reply out: every common check, then the op

    Owns:      the op table (ops.def), the fixed order of checks that apply to
               every request, and the one function that builds error replies.
    Must not:  touch sockets; handlers must not build error replies.
    =========================================================================
*/
#ifndef DISPATCH_H
#define DISPATCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm.pb-c.h"
#include "crm_entity.h"
#include "crm_log.h"
#include "session.h"
#include "store.h"

/* What the server lends to every request. */
typedef struct {
    store_t *store;         /* borrowed */
    store_group_t *group;   /* the writer's current group commit */
    const char *server_key; /* the server's public key, Z85 */
    const uint8_t *epoch_key; /* crm_epoch_key() of the server's secret key (32 bytes) */
    crm_ratelimit_t *log_rl; /* limits bad-request log lines */
    struct feed *feed;       /* the change feed, for WATCH */
    const struct value_rules *rules; /* customer value and deal rules (derive.h) */
    bool fault_no_derive;    /* test-only fault: derived values are not kept up to date */
    bool fault_slow_report;  /* test-only fault: a report takes 1.5 s more (on the worker) */
    bool fault_slow_large;   /* test-only fault: a large change waits 1.5 s before its commit
                                (on the writer) */
    const void *rid;         /* the requester's routing id (this request only) */
    size_t rid_len;
    const char *user_id;     /* the requester's ZAP identity (this request only) */
    size_t max_msg;          /* larger requests get RESOURCE_EXHAUSTED (0: no limit) */
    struct backup_job *backup; /* the backup job runner (backup.h) */
    bool worker;             /* served on the worker thread (worker.h): group is NULL,
                                reads see one snapshot; a handler computes here what it
                                deferred on the server thread */
    struct quota *limits;   /* rate and connection limits (quota.h; NULL: none) */
    int64_t bin_keep_ms;     /* deleted records stay in the recycle bin this long (bin.h;
                                0: they are dropped at once) */
    int src_fd;              /* the requester's connection (this request only; -1: unknown) */
    struct repl *repl;       /* replicas pulling from this server (replica.h) */
    struct repl_follower *follower; /* a replica: the thread following the primary */
    struct repl_snap *snap;  /* snapshots for new replicas (replica.h) */
    struct erase *erase;     /* erasures' history scrubs (erase.h; NULL: none here) */
    bool can_hold;           /* this request may be held until the next commit (server
                                thread, room in its list): dispatch_hold() */
    int64_t slow_us;         /* a request that holds the server thread this long is
                                logged (--slow-log; 0: none are) */
    crm_ratelimit_t *slow_rl; /* limits those log lines */
    size_t large_records;    /* a change of more records than this is handed to the writer
                                thread (dispatch_large; 0: none is, as on the writer itself) */
    bool hold_writes;        /* a large change is waiting or running: writes are not run
                                now but kept, in order, until it is done (out->queued) */
    bool hold_all;           /* this connection has requests kept so, or one on the
                                worker: this one, read or write, is kept after them
                                (out->queued) */
    bool hold_reads;         /* ... or a write whose answer is not sent yet: a read (whose
                                answer would go at once, without it) is kept after it */
} dispatch_env_t;

/* One request being served. Reply bodies live here so handlers need not
   allocate: a handler fills ctx->reply and points its body at ctx->body. */
typedef struct {
    const dispatch_env_t *env;
    const Crm__Request *req; /* the decoded request (borrowed) */
    session_t session;       /* the caller, resolved before the handler runs */
    Crm__Reply reply;        /* filled by the handler on success */
    union {
        Crm__PingReply ping;
        Crm__WhoamiReply whoami;
        Crm__EntityReply entity;
        Crm__UserReply user;
        Crm__AuditReply audit;
        Crm__Progress progress;
        Crm__ReportReply report;
        Crm__SweepReply sweep;
        Crm__BackupReply backup;
        Crm__ReplPullReply repl_pull;
        Crm__ReplStatusReply repl_status;
        Crm__ReplDigestReply repl_digest;
        Crm__ReplSnapshotReply repl_snapshot;
    } body;
    char errbuf[CRM_ERRBUF];  /* human text of a failure */
    uint64_t current_version; /* with CONFLICT: the record's version now */
    bool staged;              /* a mutation was staged: reply only after the commit
                                 (dispatch_process also sees this by itself) */
    bool deferred;            /* dispatch_defer(): the worker thread answers */
    bool held;                /* dispatch_hold(): asked again after the next commit */
    bool large;               /* dispatch_large(): the writer thread does it */
    bool queued;              /* a write while env->hold_writes: not run (yet) */
    uint8_t *replay;          /* an idempotent retry: the first reply (packed, owned) */
    size_t replay_len;
    void **owned;             /* malloc'd blocks the reply points into, freed after packing */
    size_t n_owned, cap_owned;
    ProtobufCMessage **owned_msgs; /* messages the reply points into, freed after packing */
    size_t n_owned_msgs, cap_owned_msgs;
    struct entity_seen *seen; /* import: what the request's earlier lines created (h_entity.c) */
} req_ctx_t;

/* Operation flags, checked by dispatch_process() before any handler runs:
   OPF_READ   reads only; served straight away.
   OPF_WRITE  mutates through env->group; refused on a replica.
   OPF_ADMIN  only for users with the admin role.
   OPF_REPLICA only for users with the replica role - and a replica-role user
              may call nothing else: its key can follow the log, not read
              records or act as a person. */
enum { OPF_READ = 1, OPF_WRITE = 2, OPF_ADMIN = 4, OPF_REPLICA = 8 };

typedef crm_err_t (*op_handler_t)(req_ctx_t *ctx);

struct op {
    int code;          /* Crm__Op value */
    const char *name;  /* lower-case name for logs */
    op_handler_t fn;   /* the handler */
    unsigned flags;    /* OPF_* */
};

/* Record a failure's human text for the reply and return RC (for handlers:
   `return dispatch_error(ctx, CRM_ERR_NOT_FOUND, "no customer '%s'", id);`). */
crm_err_t dispatch_error(req_ctx_t *ctx, crm_err_t rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Refuse with PERMISSION_DENIED: the text is already in ctx->errbuf (from
   authz). Stages the denial in the audit trail (KIND may be NULL, ID ""),
   outside any mutation: call it after aborting one. Returns the code. */
crm_err_t dispatch_deny(req_ctx_t *ctx, const char *kind, const char *id, const char *action);

/* Hand the request to the worker thread (worker.h), after the checks and
   the audit done here: a long read runs there on a consistent snapshot and
   the server thread goes on serving. The handler runs again there with
   ctx->env->worker set. Returns CRM_OK. */
crm_err_t dispatch_defer(req_ctx_t *ctx);

/* Nothing to answer yet (a replica's pull with nothing new): the server keeps
   the request and runs it again - through dispatch_process(), every check
   included - once something was committed or after a while (long poll).
   Only when env->can_hold. Returns CRM_OK. */
crm_err_t dispatch_hold(req_ctx_t *ctx);

/* A change of RECORDS records (a customer's delete, restore, merge or erasure
   with its activities: ~20 us of the server thread a record) is large when
   there are more than env->large_records: then it is handed, before anything
   is staged, to the writer thread (worker.h), which runs the same request
   again, every check included, with a group of its own while the server
   thread serves reads and keeps the writes that arrive, in order, until it is
   committed. Returns true when handed over: the handler returns CRM_OK at
   once, having staged nothing. */
bool dispatch_large(req_ctx_t *ctx, size_t records);

/* Keep P (malloc'd) until the reply is packed; returns P. */
void *dispatch_own(req_ctx_t *ctx, void *p);
/* Keep M (from crm_proto_unpack/new) until the reply is packed; returns M. */
void *dispatch_own_msg(req_ctx_t *ctx, void *m);

/* What dispatch_process() hands back besides the reply. */
typedef struct {
    uint64_t id;       /* the request id (0 if it could not be read) */
    bool after_commit; /* the reply depends on staged state: send it only once the
                          group commit succeeded, else an error */
    bool deferred;     /* no reply yet: hand the request to the worker (after the
                          commit, if after_commit) */
    bool held;         /* no reply yet: run the request again after the next commit */
    bool large;        /* no reply yet: a large change, for the writer thread once what
                          is staged has committed (dispatch_large) */
    bool queued;       /* not run: a write that waits for a large change (hold_writes) */
    bool ok;           /* the reply is not an error (before any commit's outcome) */
    bool watch;        /* it answers a WATCH: the feed is told (feed_replied) */
    bool wrote;        /* a write that succeeded (or its kept first reply): under
                          --sync-replicas its reply waits for the replicas too; a read's
                          or a refusal's audit entry only for the local commit */
} dispatch_out_t;

/* Serve one request: NFRAMES body frames arrived, the first being BODY[LEN];
   USER_ID is the ZAP-assigned identity (may be NULL). Returns the packed
   reply (caller free()s) and its length in *reply_len. Never fails. */
uint8_t *dispatch_process(const dispatch_env_t *env, const char *user_id, size_t nframes,
                          const uint8_t *body, size_t len, size_t *reply_len,
                          dispatch_out_t *out);
/* An error message TEXT as the server's log gets it, into OUT (SIZE bytes):
   every quoted value ('wang@') becomes '...' - it may be personal data - but
   a field's name stays and an apostrophe is left alone. */
void dispatch_log_text(const char *text, char *out, size_t size);
/* The one builder of error replies: packed Reply for request ID with status
   RC and human TEXT (default text if NULL); caller free()s. */
uint8_t *dispatch_error_reply(uint64_t id, crm_err_t rc, const char *text,
                              uint64_t current_version, size_t *reply_len);

/* One slice of the sweep of time-based rules: records of the kind with id
   prefix KIND ('c' customers: value, at-risk, churned; 't' tickets: service
   level breaches) after number AFTER and up to number UNTIL (UINT64_MAX:
   all; records made after a sweep began were derived when they were made:
   a sweep that walked them too would chase an import to its end), at most
   LIMIT, as of AS_OF by ACTOR;
   each record that changes is staged as its own mutation in env->group -
   unless PREVIEW: then nothing is staged, and what would change is counted
   and its first SWEEP_SAMPLES records named. Customers come first, then
   tickets. */
#define SWEEP_SAMPLES 20
typedef struct {
    uint32_t checked, changed; /* PREVIEW: changed counts what would change */
    char next_kind;            /* 0: the sweep is complete */
    uint64_t next_after;       /* the cursor within next_kind (0: from its start) */
    char samples[SWEEP_SAMPLES][96]; /* PREVIEW: "c12: stage, value_tier" */
    size_t nsamples;
} sweep_result_t;
crm_err_t sweep_slice(const dispatch_env_t *env, const Crm__User *actor, int64_t as_of, char kind,
                      uint64_t after, uint64_t until, size_t limit, bool preview,
                      sweep_result_t *out, char *errbuf);

/* Is FIELD = VALUE a filter that a list of kind E can use (an indexed value,
   a range, a view)? For records that keep filters, such as segments. */
crm_err_t entity_filter_check(const crm_entity_t *e, const char *field, const char *value,
                              char *errbuf);

/* The op for a wire code, or NULL. */
const struct op *dispatch_lookup(int code);

/* Handlers (handlers/h_*.c) */
crm_err_t h_ping(req_ctx_t *ctx);
crm_err_t h_whoami(req_ctx_t *ctx);
crm_err_t h_entity_create(req_ctx_t *ctx);
crm_err_t h_entity_get(req_ctx_t *ctx);
crm_err_t h_entity_update(req_ctx_t *ctx);
crm_err_t h_entity_delete(req_ctx_t *ctx);
crm_err_t h_entity_list(req_ctx_t *ctx);
crm_err_t h_entity_search(req_ctx_t *ctx);
crm_err_t h_entity_import(req_ctx_t *ctx);
crm_err_t h_convert(req_ctx_t *ctx);
crm_err_t h_merge(req_ctx_t *ctx);
crm_err_t h_bin_list(req_ctx_t *ctx);
crm_err_t h_bin_restore(req_ctx_t *ctx);
crm_err_t h_bin_purge(req_ctx_t *ctx);
crm_err_t h_erase(req_ctx_t *ctx); /* erase.c */
crm_err_t h_erase_status(req_ctx_t *ctx);
crm_err_t h_report(req_ctx_t *ctx);
/* The table reports (`crm report ...`, handlers/h_tables.c): is R one, and run it. */
bool report_table_is(const Crm__ReportRequest *r);
crm_err_t report_table(req_ctx_t *ctx, const Crm__ReportRequest *r);
crm_err_t h_sweep(req_ctx_t *ctx);
crm_err_t h_user_add(req_ctx_t *ctx);
crm_err_t h_user_list(req_ctx_t *ctx);
crm_err_t h_user_set(req_ctx_t *ctx);
crm_err_t h_user_rotate(req_ctx_t *ctx);
crm_err_t h_audit_list(req_ctx_t *ctx);
crm_err_t h_history(req_ctx_t *ctx);
crm_err_t h_watch(req_ctx_t *ctx);
crm_err_t h_backup_create(req_ctx_t *ctx);
crm_err_t h_backup_status(req_ctx_t *ctx);
crm_err_t h_repl_pull(req_ctx_t *ctx);
crm_err_t h_repl_status(req_ctx_t *ctx);
crm_err_t h_repl_snapshot(req_ctx_t *ctx);
crm_err_t h_repl_promote(req_ctx_t *ctx);
crm_err_t h_repl_digest(req_ctx_t *ctx);

#endif
