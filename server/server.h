/*  =========================================================================
    server - owns the sockets and the request loop

    Owns:      the ZeroMQ context, the CURVE ROUTER socket, the ZAP handler,
               the store handle and the memory guard.
    Must not:  know what an op does (dispatch.c does).
    =========================================================================
*/
#ifndef SERVER_H
#define SERVER_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_kv.h"

#define SERVER_DEFAULT_ENDPOINT "tcp://127.0.0.1:7600"
#define SERVER_SLOW_MS 10 /* --slow-log default */
/* --large-change default: a change of more records than this (a customer's delete with
   its activities, ~20 us a record on the server thread) runs on the writer thread */
#define SERVER_LARGE_RECORDS 100

typedef struct {
    const char *data_dir;   /* initialized by crm-admin init */
    const char *listen;     /* ZeroMQ endpoint to bind */
    bool sync;              /* fsync every group commit */
    size_t max_msg;         /* largest frame accepted, bytes */
    size_t max_memory;      /* heap bytes before all connections are dropped */
    int handshake_ms;       /* time a client has to finish the CURVE handshake */
    bool fault_no_zap;      /* fault injection for tests: do not start the ZAP handler */
    bool fault_no_derive;   /* fault injection for tests: do not keep derived values */
    bool fault_slow_report; /* ... : a report takes 1.5 s more, on its snapshot */
    bool fault_slow_erase;  /* ... : an erasure's scrub looks at one entry per 40 ms */
    bool fault_slow_sweep;  /* ... : a slice of the value sweep takes 20 ms more (--slow-log) */
    bool fault_slow_large;  /* ... : a large change waits 1.5 s on the writer before its commit */
    bool fault_fail_after_large; /* ... : the server thread's commit after one fails */
    uint64_t retain_events; /* change-log entries kept for the feed (0 = all) */
    int64_t retain_ms;      /* change-log age kept (0 = forever) */
    const char *rules_path; /* value rules file (default DATA_DIR/value-rules.conf, optional) */
    int64_t sweep_every_ms; /* the server's own value sweep (0 = never) */
    const char *backup_dir; /* scheduled backups go here (NULL = none) */
    int64_t backup_every_ms; /* ... this often (0 = never) */
    uint32_t backup_keep;   /* ... keeping the newest N (0 = all) */
    uint32_t max_rate;      /* requests a second per user (0 = no limit) */
    uint32_t max_conn_per_user; /* connections per user (0 = no limit) */
    uint32_t max_conn;      /* connections in total (0 = no limit) */
    int io_threads;         /* libzmq I/O threads: TCP and CURVE (handshakes, crypto) */
    const char *replica_of; /* a read replica following this primary endpoint (NULL: primary) */
    const char *replica_enroll; /* ... as this replica identity (default DATA_DIR/replica.enroll) */
    bool no_resync;         /* a replica too far behind refuses instead of re-syncing itself */
    int64_t lag_warn_ms;    /* a replica logs when further behind the primary than this */
    uint64_t wal_keep_s;    /* obsolete WAL files kept this long for replicas */
    uint32_t sync_replicas; /* answer a write once this many replicas hold it (0: at once) */
    int64_t bin_keep_ms;    /* deleted customers stay in the recycle bin this long (0: not kept) */
    int64_t slow_us;        /* a request holding the server thread this long is logged (0: none) */
    size_t large_records;   /* a change of more records runs on the writer thread (0: none) */
} server_config_t;

typedef struct server server_t;

/* Fill CFG with the defaults. */
void server_config_defaults(server_config_t *cfg);
/* Check libzmq, load keys, open the store, start ZAP, bind. Caller owns *out. */
crm_err_t server_new(const server_config_t *cfg, server_t **out, char *errbuf);
/* The endpoint actually bound (with the real port). */
const char *server_endpoint(const server_t *self);
/* Serve until *stop becomes non-zero; then finish the requests in hand. */
crm_err_t server_run(server_t *self, volatile sig_atomic_t *stop);
/* Close sockets and the store; NULL-safe; sets *self_p = NULL. */
void server_destroy(server_t **self_p);

#endif
