/*  =========================================================================
    worker - long reads off the server thread (see worker.h)
    =========================================================================
*/
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crm_log.h"
#include "crm_mem.h"
#include "crm_time.h"

typedef struct s_job {
    struct s_job *next;
    zmq_msg_t rid;
    char *user_id;     /* NULL if the request had none */
    uint8_t *body;     /* the request, as received */
    size_t len;
    uint8_t *reply;    /* once done: the packed reply */
    size_t reply_len;
    dispatch_out_t out; /* ... and what dispatch_process() said of it */
    worker_fn fn;       /* the writer's housekeeping instead of a request (no reply) */
    void *fn_arg;
    feed_event_t *event; /* the writer's change, decoded ahead for the feed */
} s_job_t;

struct worker {
    dispatch_env_t env;     /* the server's, without feed, backup; a group only if a writer */
    crm_ratelimit_t log_rl; /* the helper's own bad-request log limit */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;        /* broadcast after each job */
    bool running;               /* a job is in hand (under lock) */
    atomic_size_t watchers;     /* the feed's subscribers, as the server thread last saw */
    s_job_t *todo, **todo_tail; /* FIFO */
    s_job_t *done;              /* finished, newest first */
    size_t queued;              /* waiting or running */
    bool stop;
    void *ring_send; /* PAIR: the helper rings after each reply ... */
    void *ring_recv; /* ... and the server thread polls this end */
    char endpoint[64];
};

static void
s_job_free(s_job_t *j)
{
    zmq_msg_close(&j->rid);
    free(j->user_id);
    free(j->body);
    free(j->reply);
    feed_event_free(&j->event);
    free(j);
}

/* The writer's job: a large change, alone, into the writer's own group, then
   committed on this thread (the server thread staged nothing meanwhile and
   committed all it had before handing it over). A failed commit turns the
   reply into its error. */
static void
s_write(worker_t *self, s_job_t *j)
{
    char errbuf[CRM_ERRBUF] = "";
    if (j->fn) { /* housekeeping: what it staged is committed, or logged as lost */
        j->fn(j->fn_arg, self->env.group);
        if (store_group_commit(self->env.group, errbuf) != CRM_OK)
            crm_log(CRM_LOG_DEBUG, "writer: commit failed: %s", errbuf);
        return;
    }
    uint64_t before = store_last_seq(self->env.store);
    j->reply = dispatch_process(&self->env, j->user_id, 1, j->body, j->len, &j->reply_len,
                                &j->out);
    if (self->env.fault_slow_large) { /* for tests: a window in which to send more */
        crm_log(CRM_LOG_INFO, "fault slow-large: the large change is staged; its commit in "
                              "1.5 s");
        usleep(1500000);
    }
    crm_err_t rc = store_group_commit(self->env.group, errbuf);
    if (rc != CRM_OK) {
        free(j->reply);
        j->reply = dispatch_error_reply(j->out.id, rc, errbuf, 0, &j->reply_len);
        j->out.ok = false;
        j->out.wrote = false;
        return;
    }
    /* the feed would decode this change on the server thread (6-11 ms for 4,900
       records): decoded here, it is only taken into its cache there */
    uint64_t after = store_last_seq(self->env.store);
    if (after > before && atomic_load(&self->watchers) > 0)
        j->event = feed_decode(self->env.store, after);
}

void
worker_watchers(worker_t *self, size_t n)
{
    atomic_store(&self->watchers, n);
}

static void *
s_main(void *arg)
{
    worker_t *self = arg;
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (!self->stop && !self->todo)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stop)
            break;
        s_job_t *j = self->todo;
        self->running = true;
        self->todo = j->next;
        if (!self->todo)
            self->todo_tail = &self->todo;
        pthread_mutex_unlock(&self->lock);

        int64_t t0 = crm_time_mono_us();
        if (self->env.group)
            s_write(self, j);
        else {
            store_view_begin(self->env.store);
            j->reply = dispatch_process(&self->env, j->user_id, 1, j->body, j->len,
                                        &j->reply_len, &j->out);
            store_view_end(self->env.store);
        }
        int64_t took = crm_time_mono_us() - t0;
        if (took > 1000000)
            crm_log(CRM_LOG_INFO, "%s: request %llu took %.1f s",
                    self->env.group ? "writer" : "worker", (unsigned long long)j->out.id,
                    (double)took / 1e6);

        pthread_mutex_lock(&self->lock);
        j->next = self->done;
        self->done = j;
        self->running = false;
        pthread_cond_broadcast(&self->idle);
        pthread_mutex_unlock(&self->lock);
        zmq_send(self->ring_send, "", 0, ZMQ_DONTWAIT); /* a full pipe already rings */
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

crm_err_t
worker_new(void *zctx, const dispatch_env_t *env, store_group_t *group, worker_t **out,
           char *errbuf)
{
    static int s_count;
    worker_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->env = *env;
    self->env.group = group;
    self->env.feed = NULL;
    self->env.backup = NULL;
    self->env.limits = NULL; /* counted when the server thread took the request */
    self->env.erase = NULL;  /* the server thread wakes the scrub (erase_wake) */
    self->env.src_fd = -1;
    self->env.worker = !group;
    self->env.slow_us = 0;   /* it holds no one up: the slow log is the server thread's */
    self->env.slow_rl = NULL;
    self->env.large_records = 0; /* done here, whatever its size */
    self->env.hold_writes = false;
    self->env.hold_all = false;
    self->env.hold_reads = false;
    self->env.can_hold = false;
    self->env.log_rl = &self->log_rl;
    self->todo_tail = &self->todo;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->idle, NULL);
    snprintf(self->endpoint, sizeof self->endpoint, "inproc://crm-worker-%d-%p", s_count++,
             (void *)self);
    self->ring_recv = zmq_socket(zctx, ZMQ_PAIR);
    self->ring_send = zmq_socket(zctx, ZMQ_PAIR);
    if (!self->ring_recv || !self->ring_send || zmq_bind(self->ring_recv, self->endpoint) != 0 ||
        zmq_connect(self->ring_send, self->endpoint) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot make the worker's wake-up pair: %s",
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    int zero = 0;
    zmq_setsockopt(self->ring_recv, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->ring_send, ZMQ_LINGER, &zero, sizeof zero);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot start the worker thread");
        goto fail;
    }
    *out = self;
    return CRM_OK;
fail:
    if (self->ring_recv)
        zmq_close(self->ring_recv);
    if (self->ring_send)
        zmq_close(self->ring_send);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->idle);
    pthread_mutex_destroy(&self->lock);
    free(self);
    return CRM_ERR_INTERNAL;
}

void
worker_destroy(worker_t **self_p)
{
    worker_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    for (s_job_t *j = self->todo, *next; j; j = next) {
        next = j->next;
        s_job_free(j);
    }
    for (s_job_t *j = self->done, *next; j; j = next) {
        next = j->next;
        s_job_free(j);
    }
    zmq_close(self->ring_send);
    zmq_close(self->ring_recv);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->idle);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Queue a request (RID moved in, USER_ID and BODY copied) or, with FN, the
   writer's housekeeping; false when the queue is full or FN is not for this
   worker (a reader). */
static bool
s_submit(worker_t *self, zmq_msg_t *rid, const char *user_id, const uint8_t *body, size_t len,
         worker_fn fn, void *arg)
{
    pthread_mutex_lock(&self->lock);
    bool room = (!fn || self->env.group) && self->queued <= WORKER_QUEUE_MAX;
    if (room) {
        s_job_t *j = calloc(1, sizeof *j);
        CRM_ASSERT_ALLOC(j);
        zmq_msg_init(&j->rid);
        if (fn) {
            j->fn = fn;
            j->fn_arg = arg;
        } else {
            zmq_msg_move(&j->rid, rid);
            j->user_id = user_id ? strdup(user_id) : NULL;
            j->body = malloc(len ? len : 1);
            CRM_ASSERT_ALLOC(j->body);
            memcpy(j->body, body, len);
            j->len = len;
        }
        *self->todo_tail = j;
        self->todo_tail = &j->next;
        self->queued++;
        pthread_cond_signal(&self->wake);
    }
    pthread_mutex_unlock(&self->lock);
    return room;
}

bool
worker_submit(worker_t *self, zmq_msg_t *rid, const char *user_id, const uint8_t *body,
              size_t len)
{
    return s_submit(self, rid, user_id, body, len, NULL, NULL);
}

bool
worker_submit_fn(worker_t *self, worker_fn fn, void *arg)
{
    return s_submit(self, NULL, NULL, NULL, 0, fn, arg);
}

void *
worker_socket(worker_t *self)
{
    return self->ring_recv;
}

void
worker_finish(worker_t *self, worker_send_fn send, void *arg)
{
    pthread_mutex_lock(&self->lock);
    while (self->running || self->todo)
        pthread_cond_wait(&self->idle, &self->lock);
    pthread_mutex_unlock(&self->lock);
    worker_collect(self, send, arg);
}

void
worker_wind_down(worker_t *self, worker_send_fn send, worker_refuse_fn refuse, void *arg)
{
    pthread_mutex_lock(&self->lock);
    s_job_t *waiting = self->todo;
    self->todo = NULL;
    self->todo_tail = &self->todo;
    for (s_job_t *j = waiting; j; j = j->next)
        self->queued--;
    while (self->running)
        pthread_cond_wait(&self->idle, &self->lock);
    pthread_mutex_unlock(&self->lock);
    worker_collect(self, send, arg);
    while (waiting) {
        s_job_t *next = waiting->next;
        if (!waiting->fn)
            refuse(arg, &waiting->rid, waiting->body, waiting->len);
        s_job_free(waiting);
        waiting = next;
    }
}

void
worker_collect(worker_t *self, worker_send_fn send, void *arg)
{
    char buf[1];
    while (zmq_recv(self->ring_recv, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
        ; /* the rings only wake us: what is done is in the list */
    pthread_mutex_lock(&self->lock);
    s_job_t *done = self->done;
    self->done = NULL;
    for (s_job_t *j = done; j; j = j->next)
        self->queued--;
    pthread_mutex_unlock(&self->lock);
    /* oldest first */
    s_job_t *fifo = NULL;
    while (done) {
        s_job_t *next = done->next;
        done->next = fifo;
        fifo = done;
        done = next;
    }
    while (fifo) {
        s_job_t *next = fifo->next;
        send(arg, fifo->fn ? NULL : &fifo->rid, fifo->reply, fifo->reply_len, &fifo->out,
             &fifo->event);
        fifo->reply = NULL; /* SEND owns it */
        s_job_free(fifo);
        fifo = next;
    }
}

size_t
worker_load(worker_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->queued;
    pthread_mutex_unlock(&self->lock);
    return n;
}
