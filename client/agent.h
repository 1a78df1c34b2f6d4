/*  =========================================================================
    agent - `crm agent`: one CurveZMQ session kept open for many crm calls

    A one-shot crm call spends most of its time on ZeroMQ's set-up and the
    CURVE handshake, not on its request (docs/PERFORMANCE.md, "One-shot
    CLI"). `crm agent start` leaves a process that holds one connection to
    crmd for the enrollment in use and carries the calls of the same user's
    crm processes over a Unix socket, as ssh's ControlMaster does. It stops
    by itself after --idle seconds without a call, at `crm agent stop`, and
    when the server refuses its handshake; a crm call that finds no agent, or
    loses it mid-call, connects directly as before.

    Where: $XDG_RUNTIME_DIR/crm, else /tmp/crm-UID - a directory that must
    belong to this user and be closed to everyone else (0700), or no agent is
    used. One socket per enrollment and server, named by a hash of the
    server's key, the user's key and the endpoint: another enrollment, a
    rotated key or another --server never reach this agent. Whoever can
    connect to it acts as the user, as whoever can read the enrollment file
    can; the agent also refuses a peer of another uid (SO_PEERCRED).

    Frames on the socket: a 4-byte big-endian length, then a type byte and
    the payload (the length counts both). 'R': a packed Request (to the
    agent) or Reply (from it); 'S': status, answered with text; 'Q': stop,
    answered with the same text. The agent gives each request an id of its
    own on its connection and puts the caller's back on the reply; of a
    request it reads nothing else but the op. Some requests never go through
    it: a feed (crm watch: it is its connection's), one of more than 1 MiB
    (the server's default --max-msg; beyond twice that the server drops the
    connection, here every caller's), and one that comes while the agent's
    connection is down (ZMQ_IMMEDIATE: queued, it would be done when the
    server is back, after its caller gave up). The agent closes that caller's
    socket, and the caller goes on directly.

    Owns:      the socket's place and name, the agent process, the frames.
    Must not:  judge or log what a request or reply holds.
    =========================================================================
*/
#ifndef AGENT_H
#define AGENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "crm_keys.h"

/* A reply of 64 MiB (the client's limit), its type and room for the caller's id, which
   may take up to 10 bytes more than the agent's own. */
#define AGENT_MAX_FRAME ((64u << 20) + 16)

/* A growing byte buffer: what has been read from, or is to be written to, a
   socket. Its bytes are data[off, len): dropping from the front only moves off. */
typedef struct {
    uint8_t *data;
    size_t off, len, cap;
} agent_buf_t;

/* Append a frame of TYPE carrying HEAD[HLEN] then BODY[BLEN] to B. */
void agent_frame_put(agent_buf_t *b, char type, const void *head, size_t hlen, const void *body,
                     size_t blen);
/* The first whole frame in B: its type, payload and the bytes it takes in B
   (for agent_buf_drop). 1 if there is one, 0 if more must be read, -1 if
   its length is out of bounds (the peer is not a crm agent or client). */
int agent_frame_next(const agent_buf_t *b, char *type, const uint8_t **payload, size_t *plen,
                     size_t *used);
/* Drop the first N bytes of B. agent_buf_used(B): how many it holds. */
void agent_buf_drop(agent_buf_t *b, size_t n);
size_t agent_buf_used(const agent_buf_t *b);
/* Read what FD has into B: bytes read, 0 at end of stream, -1 on an error
   (EAGAIN included: poll first). */
ssize_t agent_buf_read(agent_buf_t *b, int fd);
void agent_buf_free(agent_buf_t *b);

/* Replace the id (field 1, varint, which protobuf-c packs first) of the
   packed Request or Reply MSG[LEN]: *OLD gets the id it had, HEAD[11] the
   new field's bytes (*HLEN of them) and *REST the offset where the rest of
   MSG starts. False if MSG does not begin with an id. */
bool agent_swap_id(const uint8_t *msg, size_t len, uint64_t id, uint64_t *old, uint8_t head[11],
                   size_t *hlen, size_t *rest);

/* The agent's socket for enrollment E talking to ENDPOINT into OUT[N]. With
   CREATE the directory is made if missing. False, the reason in ERRBUF,
   when there is no safe place for it (see banner). */
bool agent_path(const crm_enroll_t *e, const char *endpoint, bool create, char *out, size_t n,
                char *errbuf, size_t errlen);
/* A connected, non-blocking socket to the running agent for E and ENDPOINT,
   or -1 if there is none (or no safe place for one). */
int agent_connect(const crm_enroll_t *e, const char *endpoint);

/* No agent answers for E and ENDPOINT: start one in the background for the
   enrollment at CONFIG (`crm agent start`, detached: nothing of the caller's
   is held open, so a script capturing the caller's output is not kept
   waiting), unless there is no safe place for it or one is starting. The
   caller goes on directly. */
void agent_spawn(const crm_enroll_t *e, const char *config, const char *endpoint);

/* `crm agent start|stop|status`. */
int cmd_agent(int argc, char **argv, cli_ctx_t *ctx);

#endif
