/*  =========================================================================
    worker - long reads off the server thread (reports)

    Owns:      one helper thread, a bounded queue of requests handed over by
               the server thread, and the finished replies waiting to go out.
    How:       a handler that would read much (a report over every order)
               answers dispatch_defer() on the server thread, after its
               authorization and audit there; the server hands the request
               here once the turn's commit is done. The helper runs the same
               dispatch_process() with env->worker set, inside a consistent
               store view (store_view_begin), and the server thread sends the
               reply when the helper rings (the socket worker_socket() is in
               its poll set). So a report holds no other client up.
               The writer (a second instance, with a group of its own) does
               large changes the same way (dispatch_large): a customer's
               delete with thousands of activities held every client up
               for 100-200 ms on the server thread.
    Must not:  stage writes as a reader (env->group is NULL there), or touch
               the ROUTER.
    =========================================================================
*/
#ifndef WORKER_H
#define WORKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "crm_err.h"
#include "dispatch.h"
#include "feed.h"

#define WORKER_QUEUE_MAX 16 /* requests waiting beyond the one running */

typedef struct worker worker_t;

/* Start the helper thread on a copy of ENV (its feed, backup and erase are
   not used). ZCTX makes the wake-up pair. GROUP NULL: a reader (reports),
   each request on a snapshot. Else the writer: each request runs with GROUP,
   as the only writer while it runs (the server thread hands one over only
   when its own group has nothing staged or in flight, and runs no write
   until its reply is collected), and is committed on the helper thread
   before its reply is ready. */
crm_err_t worker_new(void *zctx, const dispatch_env_t *env, store_group_t *group,
                     worker_t **out, char *errbuf);
/* Stop the helper (waits for the request in hand) and free what waits. */
void worker_destroy(worker_t **self_p);

/* Queue a request: RID is moved in, USER_ID and BODY copied. False when the
   queue is full (the caller answers RESOURCE_EXHAUSTED). */
bool worker_submit(worker_t *self, zmq_msg_t *rid, const char *user_id, const uint8_t *body,
                   size_t len);

/* The server thread's end of the wake-up pair, to poll for ZMQ_POLLIN. */
void *worker_socket(worker_t *self);

/* The writer's housekeeping: stages into G, which the writer then commits. */
typedef void (*worker_fn)(void *arg, store_group_t *g);
/* Queue FN(ARG, the writer's group) on the writer; false if it is not one or is full. */
bool worker_submit_fn(worker_t *self, worker_fn fn, void *arg);

/* Takes a finished reply: owns REPLY from then on and closes RID; OUT is
   what dispatch_process() said of the request (for the writer: after its
   commit, ok false if that failed). RID NULL: a worker_submit_fn() job done.
   *EVENT: the writer's change decoded ahead for the feed (feed_adopt takes
   it; left, it is freed), or NULL. */
typedef void (*worker_send_fn)(void *arg, zmq_msg_t *rid, uint8_t *reply, size_t len,
                               const dispatch_out_t *out, feed_event_t **event);
/* The writer decodes the change it committed ahead for the feed while N > 0
   (the server thread's count of watchers, set each turn). */
void worker_watchers(worker_t *self, size_t n);

/* Hand every finished reply to SEND, on the server thread. */
void worker_collect(worker_t *self, worker_send_fn send, void *arg);
/* Wait until nothing is queued or running, then worker_collect(). */
void worker_finish(worker_t *self, worker_send_fn send, void *arg);

/* At shutdown: each request still waiting (not begun) goes to REFUSE (RID and
   BODY lent for the call), oldest first; then the one in hand is waited for
   and every finished reply handed to SEND, as worker_collect(). */
typedef void (*worker_refuse_fn)(void *arg, zmq_msg_t *rid, const uint8_t *body, size_t len);
void worker_wind_down(worker_t *self, worker_send_fn send, worker_refuse_fn refuse, void *arg);

/* Requests waiting or running, for status. */
size_t worker_load(worker_t *self);

#endif
