/*  zap - the ZAP handler thread (see zap.h) */
#include "zap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "crm_keys.h"
#include "crm_log.h"
#include "users.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 16

struct zap {
    void *sock;          /* REP, bound at ZAP_ENDPOINT */
    store_t *store;      /* borrowed: read-only use, RocksDB reads are thread-safe */
    pthread_t thread;    /* runs s_run() */
    atomic_bool stop;    /* set by zap_stop() */
    crm_ratelimit_t rl;  /* for denial log lines */
};

static void
s_send(void *sock, const char *s, size_t len, int more)
{
    zmq_send(sock, s, len, more ? ZMQ_SNDMORE : 0);
}

/* Decide on one request. Returns true and the User-Id if the key may connect. */
static bool
s_decide(zap_t *self, zmq_msg_t *frames, int n, char user_id[CRM_Z85_LEN + 1], const char **why)
{
    /* version, request id, domain, address, routing id, mechanism, credentials... */
    if (n < 6 || zmq_msg_size(&frames[0]) != 3 || memcmp(zmq_msg_data(&frames[0]), "1.0", 3)) {
        *why = "malformed ZAP request";
        return false;
    }
    if (zmq_msg_size(&frames[2]) != strlen(ZAP_DOMAIN) ||
        memcmp(zmq_msg_data(&frames[2]), ZAP_DOMAIN, strlen(ZAP_DOMAIN))) {
        *why = "unknown ZAP domain";
        return false;
    }
    if (zmq_msg_size(&frames[5]) != 5 || memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) ||
        n != 7 || zmq_msg_size(&frames[6]) != CRM_KEY_BYTES) {
        *why = "not a CURVE client";
        return false;
    }
    const uint8_t *pub = zmq_msg_data(&frames[6]);
    Crm__User *user = NULL;
    crm_err_t rc = users_get_by_key(self->store, pub, &user);
    bool ok = rc == CRM_OK && user->enabled;
    *why = rc == CRM_OK ? (ok ? "ok" : "user disabled") : "unknown key";
    crm_keys_to_z85(pub, user_id);
    users_free(&user);
    return ok;
}

static void
s_handle(zap_t *self)
{
    zmq_msg_t frames[ZAP_FRAMES_MAX];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t scratch, *m = n < ZAP_FRAMES_MAX ? &frames[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->sock, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &scratch)
            zmq_msg_close(m);
        else
            n++;
    }
    char user_id[CRM_Z85_LEN + 1] = "";
    const char *why = "";
    bool ok = s_decide(self, frames, n, user_id, &why);
    if (!ok) {
        int suppressed = 0;
        char addr[64] = "?";
        if (n > 3)
            snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&frames[3]),
                     (const char *)zmq_msg_data(&frames[3]));
        if (crm_log_allow(&self->rl, 10, &suppressed))
            crm_log(CRM_LOG_WARN, "zap: refused a connection from %s: %s%s%s", addr, why,
                    user_id[0] ? ", key " : "", user_id);
        if (suppressed)
            crm_log(CRM_LOG_WARN, "zap: %d more refusals not logged", suppressed);
    }
    /* reply: version, request id, status code, status text, user id, metadata */
    s_send(self->sock, "1.0", 3, 1);
    if (n > 1)
        zmq_send(self->sock, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
    else
        s_send(self->sock, "", 0, 1);
    s_send(self->sock, ok ? "200" : "400", 3, 1);
    s_send(self->sock, ok ? "OK" : why, ok ? 2 : strlen(why), 1);
    s_send(self->sock, user_id, ok ? strlen(user_id) : 0, 1);
    s_send(self->sock, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

static void *
s_run(void *arg)
{
    zap_t *self = arg;
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&self->stop)) {
        int rc = zmq_poll(&item, 1, 100);
        if (rc > 0 && (item.revents & ZMQ_POLLIN))
            s_handle(self);
        else if (rc < 0 && zmq_errno() == ETERM)
            break;
    }
    return NULL;
}

crm_err_t
zap_start(void *ctx, store_t *store, zap_t **out, char *errbuf)
{
    zap_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    *out = NULL;
    self->store = store;
    self->sock = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (!self->sock || zmq_bind(self->sock, ZAP_ENDPOINT) != 0) {
        snprintf(errbuf, CRM_ERRBUF, "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        if (self->sock)
            zmq_close(self->sock);
        free(self);
        return CRM_ERR_INTERNAL;
    }
    CRM_ASSERT(pthread_create(&self->thread, NULL, s_run, self) == 0);
    *out = self;
    return CRM_OK;
}

void
zap_stop(zap_t **self_p)
{
    zap_t *self = *self_p;
    if (!self)
        return;
    atomic_store(&self->stop, true);
    pthread_join(self->thread, NULL);
    zmq_close(self->sock);
    free(self);
    *self_p = NULL;
}
