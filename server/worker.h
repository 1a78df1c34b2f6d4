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
    Must not:  stage writes (env->group is NULL here) or touch the ROUTER.
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

#define WORKER_QUEUE_MAX 16 /* requests waiting beyond the one running */

typedef struct worker worker_t;

/* Start the helper thread on a copy of ENV (its group, feed and backup are
   not used). ZCTX makes the wake-up pair. */
crm_err_t worker_new(void *zctx, const dispatch_env_t *env, worker_t **out, char *errbuf);
/* Stop the helper (waits for the request in hand) and free what waits. */
void worker_destroy(worker_t **self_p);

/* Queue a request: RID is moved in, USER_ID and BODY copied. False when the
   queue is full (the caller answers RESOURCE_EXHAUSTED). */
bool worker_submit(worker_t *self, zmq_msg_t *rid, const char *user_id, const uint8_t *body,
                   size_t len);

/* The server thread's end of the wake-up pair, to poll for ZMQ_POLLIN. */
void *worker_socket(worker_t *self);

/* Hand every finished reply to SEND (which owns REPLY from then on and
   closes RID), on the server thread. */
void worker_collect(worker_t *self, void (*send)(void *arg, zmq_msg_t *rid, uint8_t *reply,
                                                 size_t len),
                    void *arg);

/* Requests waiting or running, for status. */
size_t worker_load(worker_t *self);

#endif
