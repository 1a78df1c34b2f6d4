/*  =========================================================================
    quota - request rate per user, connections per user and in total (SPEC §5)

    Beyond a limit a request is answered RESOURCE_EXHAUSTED, naming the limit;
    nobody else is slowed down: every check is a hash lookup on the server
    thread, and nothing is closed or dropped (libzmq cannot drop one ROUTER
    peer, RELIABILITY.md trap 6).

    Connections are libzmq's TCP connections, known by their file descriptor:
    the socket monitor reports each one accepted and each one gone
    (quota_opened/quota_closed), and every request names its connection
    (ZMQ_SRCFD). A connection is counted for its user at its first request:
    one over the user's limit, or over the total, has its requests refused
    until another of them closes. A connection that never sends a request is
    not counted (see docs/LIMITS.md for what bounds those).

    The rate is a token bucket per user (its Curve key): RATE requests a
    second, bursts up to RATE.

    Owns:      the connection table and the per-user counters.
    Must not:  touch sockets or the store.
    =========================================================================
*/
#ifndef QUOTA_H
#define QUOTA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_kv.h"

typedef struct {
    uint32_t rate;          /* requests a second per user (0: no limit) */
    uint32_t conns_per_user; /* connections per user (0: no limit) */
    uint32_t conns;         /* connections in total (0: no limit) */
} quota_config_t;

typedef struct quota quota_t;

quota_t *quota_new(const quota_config_t *cfg);
void quota_destroy(quota_t **self_p);

/* The monitor saw connection FD accepted / closed. */
void quota_opened(quota_t *self, int fd);
void quota_closed(quota_t *self, int fd);
/* Forget every connection (the socket was closed and bound afresh). */
void quota_reset(quota_t *self);

/* May the request from connection FD (-1: unknown) by the user with ZAP
   identity USER_ID run, at monotonic time NOW_US? RATED: it counts against
   the user's rate (a replica's pulls do not: they pace themselves, and a
   primary under load must not starve its replicas). CRM_OK, or
   RESOURCE_EXHAUSTED with the limit named in ERRBUF. */
crm_err_t quota_admit(quota_t *self, int fd, const char *user_id, bool rated, int64_t now_us,
                      char *errbuf);

/* Connections counted now (for tests and logs). */
size_t quota_connections(const quota_t *self);

#endif
