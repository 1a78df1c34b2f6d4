/*  =========================================================================
    conn - the client's one CurveZMQ connection to crmd

    Owns:      the DEALER socket, its monitor, request ids and the timeout.
    Must not:  print anything but the connection failure it diagnoses.
    =========================================================================
*/
#ifndef CONN_H
#define CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd.h"
#include "crm.pb-c.h"

typedef struct conn conn_t;

/* Load the enrollment and connect. Returns an exit code (EXIT_OK or the
   failure, already reported on stderr). */
int conn_open(const cli_ctx_t *ctx, conn_t **out);
/* Send REQ (its id is assigned here) and wait for the matching reply.
   Returns EXIT_OK with *reply set (caller frees with conn_reply_free()),
   EXIT_REFUSED if the server answered with an error (printed), or
   EXIT_UNREACHABLE on timeout / authentication failure (diagnosed). */
int conn_call(conn_t *self, Crm__Request *req, Crm__Reply **reply);
void conn_reply_free(Crm__Reply **reply);
/* Several reads at once: send the N requests REQS (ids assigned here, no
   writes) together and wait for all their replies - one round trip instead of
   N. Returns EXIT_OK with every REPLIES[i] set, refusals included and not
   printed (conn_status() says one the way conn_call() would; the caller frees
   each with conn_reply_free()); or EXIT_UNREACHABLE / EXIT_REFUSED as
   conn_call(), with no REPLIES[i] set. */
int conn_call_all(conn_t *self, Crm__Request *const *reqs, size_t n, Crm__Reply **replies);
/* REPLY's status noted as the last one (conn_last_status()); EXIT_OK, or
   EXIT_REFUSED after printing the refusal as conn_call() does (unless quiet). */
int conn_status(conn_t *self, const Crm__Reply *reply);
/* Streaming (crm watch): send REQ (id assigned here) without waiting, and
   receive whatever comes next within MS milliseconds (EXIT_OK with *reply,
   or EXIT_UNREACHABLE on silence; nothing is printed). */
int conn_send(conn_t *self, Crm__Request *req);
int conn_recv(conn_t *self, int ms, Crm__Reply **reply);
/* With QUIET, refusals are not printed (the caller handles them). */
void conn_set_quiet(conn_t *self, bool quiet);
/* How long a call waits for its answer from now on (ms). */
void conn_set_timeout(conn_t *self, int ms);
/* Status, message and current version of the last refusal. */
int conn_last_status(const conn_t *self);
const char *conn_last_message(const conn_t *self);
/* True if the server refused this client's key in the handshake (not worth retrying). */
bool conn_auth_failed(const conn_t *self);
/* The endpoint in use. */
const char *conn_endpoint(const conn_t *self);
/* NULL-safe; sets *self_p = NULL. */
void conn_destroy(conn_t **self_p);

#endif
