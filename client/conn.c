/*  conn - the client's CurveZMQ connection to crmd (see conn.h) */
#include "conn.h"

#include <sodium.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "agent.h"
#include "crm_keys.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"

/* A message to the user on stderr, under the program's name (crm, crm-admin). */
static void s_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
s_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", crm_log_prog());
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

struct conn {
    int afd;            /* the agent's socket (agent.h), or -1: then the DEALER */
    agent_buf_t ain;    /* what has come from the agent */
    crm_enroll_t enroll; /* kept to connect directly when the agent goes away */
    void *ctx;          /* ZeroMQ context (none while the agent carries the calls) */
    void *sock;         /* DEALER, CURVE client */
    void *monitor;      /* PAIR receiving the DEALER's handshake events */
    char endpoint[256]; /* where we connect */
    unsigned events;    /* ZMQ_EVENT_* seen so far */
    int timeout_ms;
    int reach_ms;       /* ... and to reach the server (the handshake): --timeout, or 5 s */
    bool json;
    bool quiet;             /* do not print refusals */
    int last_status;        /* ErrorCode of the last reply */
    char last_message[320]; /* its message */
};

void
conn_set_quiet(conn_t *self, bool quiet)
{
    self->quiet = quiet;
}

int
conn_last_status(const conn_t *self)
{
    return self->last_status;
}

const char *
conn_last_message(const conn_t *self)
{
    return self->last_message;
}

void
cli_config_dir(char *out, size_t n)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg)
        snprintf(out, n, "%s/crm", xdg);
    else
        snprintf(out, n, "%s/.config/crm", getenv("HOME") ? getenv("HOME") : ".");
}

void
cli_profile_current(const cli_ctx_t *ctx, char *out, size_t n)
{
    char dir[PATH_MAX - 64], path[PATH_MAX];
    snprintf(out, n, "%s", ctx->profile ? ctx->profile : "");
    if (ctx->profile)
        return;
    cli_config_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/current", dir); /* written by `crm profile use` */
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(out, (int)n, f))
            out[strcspn(out, "\r\n")] = '\0';
        fclose(f);
    }
    if (!strcmp(out, "default"))
        out[0] = '\0';
}

const char *
cli_config_path(const cli_ctx_t *ctx)
{
    static char path[PATH_MAX];
    char dir[PATH_MAX - 128], profile[64];
    if (ctx->config)
        return ctx->config;
    const char *env = getenv("CRM_CONFIG");
    if (env && *env)
        return env;
    cli_config_dir(dir, sizeof dir);
    cli_profile_current(ctx, profile, sizeof profile);
    if (*profile)
        snprintf(path, sizeof path, "%s/profiles/%s.conf", dir, profile);
    else
        snprintf(path, sizeof path, "%s/client.conf", dir);
    return path;
}

/* The DEALER to the server, with its handshake monitor. EXIT_USAGE (said)
   for an endpoint ZeroMQ cannot parse. */
static int
s_open_direct(conn_t *self)
{
    self->ctx = zmq_ctx_new();
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    int zero = 0;
    int64_t maxmsg = 64 << 20;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, self->enroll.server_pub, CRM_KEY_BYTES);
    zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, self->enroll.keys.pub, CRM_KEY_BYTES);
    zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, self->enroll.keys.sec, CRM_KEY_BYTES);
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://conn-monitor-%p", (void *)self);
    zmq_socket_monitor(self->sock, mon,
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_CONNECTED |
                           ZMQ_EVENT_DISCONNECTED);
    self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
    zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(self->monitor, mon);
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        s_err("bad server endpoint '%s': %s\n", self->endpoint, zmq_strerror(zmq_errno()));
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int
conn_open(const cli_ctx_t *ctx, conn_t **out)
{
    char errbuf[CRM_ERRBUF];
    const char *path = cli_config_path(ctx);
    *out = NULL;
    conn_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->afd = -1;
    crm_err_t why = crm_enroll_load(path, &self->enroll, errbuf);
    if (why != CRM_OK) {
        s_err("%s\n", errbuf);
        if (why == CRM_ERR_NOT_FOUND)
            s_err("enroll first with 'crm enroll FILE' (the file an admin gave "
                  "you), or point --config at it\n");
        else if (why == CRM_ERR_INVALID_ARGUMENT)
            s_err("this enrollment cannot be used: enroll again with the file an admin gave you "
                  "('crm enroll FILE'), or ask for a new one\n");
        conn_destroy(&self);
        return EXIT_USAGE;
    }
    self->timeout_ms = self->reach_ms = ctx->timeout_ms;
    self->json = ctx->json;
    snprintf(self->endpoint, sizeof self->endpoint, "%s",
             ctx->server ? ctx->server : self->enroll.endpoint);
    if (ctx->agent)
        self->afd = agent_connect(&self->enroll, self->endpoint);
    if (ctx->agent && ctx->agent_auto && self->afd < 0) /* for the calls after this one */
        agent_spawn(&self->enroll, path, self->endpoint);
    if (self->afd < 0 && s_open_direct(self) != EXIT_OK) {
        conn_destroy(&self);
        return EXIT_USAGE;
    }
    *out = self;
    return EXIT_OK;
}

static void
s_read_events(conn_t *self)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_size(&m) == 6) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&m), 2);
            self->events |= ev;
        }
    }
    zmq_msg_close(&m);
}

static int
s_unreachable(conn_t *self)
{
    double secs = (self->events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? self->timeout_ms
                                                                 : self->reach_ms) /
                  1000.0;
    if (self->events & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        s_err(
                "authentication failed: the server at %s refused your key (unknown, "
                "disabled or rotated user); ask an admin for a new enrollment\n",
                self->endpoint);
    else if (self->events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        s_err("the server at %s did not answer within %.1f s; try again or raise "
                        "--timeout\n",
                self->endpoint, secs);
    else if (self->events &
             (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
        s_err(
                "the secure handshake with %s failed: the server refused the connection "
                "or your enrollment has the wrong server key\n",
                self->endpoint);
    else if (self->events & ZMQ_EVENT_DISCONNECTED) /* a server that stopped looks the same */
        s_err(
                "the connection to %s closed before the secure handshake finished: the "
                "server stopped or refused it, or your enrollment has the wrong server key\n",
                self->endpoint);
    else
        s_err("cannot reach the server at %s within %.1f s: is crmd running "
                        "there? (--server or CRM_SERVER to use another)\n",
                self->endpoint, secs);
    if (self->afd >= 0)
        s_err("(asked through your crm agent: 'crm agent status' shows its connection; "
              "--no-agent connects directly)\n");
    return EXIT_UNREACHABLE;
}

bool
conn_auth_failed(const conn_t *self)
{
    return (self->events & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0;
}

/* Does OP change anything? Those requests carry an idempotency key. */
static bool
s_is_write(Crm__Op op)
{
    static const Crm__Op reads[] = {
        CRM__OP__OP_PING,       CRM__OP__OP_WHOAMI,        CRM__OP__OP_ENTITY_GET,
        CRM__OP__OP_ENTITY_LIST, CRM__OP__OP_ENTITY_SEARCH, CRM__OP__OP_REPORT,
        CRM__OP__OP_AUDIT_LIST, CRM__OP__OP_HISTORY,       CRM__OP__OP_WATCH,
        CRM__OP__OP_BACKUP_CREATE, CRM__OP__OP_BACKUP_STATUS, CRM__OP__OP_ERASE_STATUS};
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        if (reads[i] == op)
            return false;
    return true;
}

/* Note REPLY's status as the last one; a refusal is printed (unless quiet)
   and gives EXIT_REFUSED. */
static int
s_status(conn_t *self, const Crm__Reply *r)
{
    self->last_status = r->status;
    snprintf(self->last_message, sizeof self->last_message, "%s",
             r->message && *r->message ? r->message : crm_err_str(r->status));
    if (r->status == CRM__ERROR_CODE__OK)
        return EXIT_OK;
    if (self->quiet)
        return EXIT_REFUSED;
    if (self->json) {
        printf("{\"error\":\"%s\",\"message\":", crm_err_name(r->status));
        out_json_str(stdout, r->message);
        printf("}\n");
    }
    char *msg = out_escape(r->message && *r->message ? r->message : crm_err_str(r->status));
    s_err("%s (%s)\n", msg, crm_err_name(r->status));
    free(msg);
    return EXIT_REFUSED;
}

/* ---- the transport: the agent's socket, else the DEALER ---- */

/* The agent went away with requests of REQS unanswered: go on directly if
   each can be sent again - a read that changes nothing, or (RESEND) a write
   with an idempotency key, which the server answers with its first result
   instead of doing it twice. Anything else (a backup's start) may or may not
   have been done: said, and EXIT_UNREACHABLE. */
static int s_leave_agent(conn_t *self);

static int
s_after_agent(conn_t *self, Crm__Request *const *reqs, Crm__Reply **replies, size_t n,
              bool resend)
{
    for (size_t i = 0; i < n; i++)
        if (!replies[i] && !resend &&
            (s_is_write(reqs[i]->op) || reqs[i]->op == CRM__OP__OP_BACKUP_CREATE)) {
            s_err("your crm agent stopped before the server's answer came: whether the "
                  "request was done is not known; look before trying again\n");
            return EXIT_UNREACHABLE;
        }
    return s_leave_agent(self) == EXIT_OK ? EXIT_OK : EXIT_USAGE;
}

/* The agent went away (it stopped, died or sent what no agent sends): from
   here on this connection is direct. */
static int
s_leave_agent(conn_t *self)
{
    close(self->afd);
    self->afd = -1;
    agent_buf_free(&self->ain);
    return s_open_direct(self);
}

/* BUF[LEN] to the server. 0 sent; -1 the agent is gone (s_leave_agent() and
   send again); -2 the DEALER would not take it. */
static int
s_send(conn_t *self, const uint8_t *buf, size_t len, int64_t deadline)
{
    if (self->afd < 0)
        return zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) < 0 ? -2 : 0;
    agent_buf_t frame = {0};
    agent_frame_put(&frame, 'R', NULL, 0, buf, len);
    size_t off = 0;
    while (off < frame.len) {
        ssize_t put = send(self->afd, frame.data + off, frame.len - off, MSG_NOSIGNAL);
        if (put > 0) {
            off += (size_t)put;
            continue;
        }
        int64_t left = (deadline - crm_time_mono_us()) / 1000;
        struct pollfd pfd = {self->afd, POLLOUT, 0};
        if ((put < 0 && errno != EAGAIN && errno != EINTR) || left <= 0 ||
            poll(&pfd, 1, (int)left) <= 0)
            break;
    }
    bool sent = off == frame.len;
    agent_buf_free(&frame);
    return sent ? 0 : -1;
}

/* The next reply, waiting at most MS. 1 with *R; 0 none yet; -1 the agent
   is gone; -2 the server refused the handshake; -3 a reply this client
   cannot read (said). */
static int
s_next(conn_t *self, int ms, Crm__Reply **r)
{
    char errbuf[CRM_ERRBUF];
    const uint8_t *data;
    size_t len;
    crm_err_t prc;
    *r = NULL;
    if (self->afd >= 0) {
        char type;
        size_t used;
        int got;
        while ((got = agent_frame_next(&self->ain, &type, &data, &len, &used)) == 0) {
            struct pollfd pfd = {self->afd, POLLIN, 0};
            int ready = poll(&pfd, 1, ms);
            if (ready == 0 || (ready < 0 && errno == EINTR))
                return 0;
            ssize_t n = agent_buf_read(&self->ain, self->afd);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            ms = 0; /* what is there now is all there is to wait for in this turn */
        }
        if (got < 0 || type != 'R')
            return -1;
        prc = crm_proto_unpack_shown(&crm__reply__descriptor, data, len, (ProtobufCMessage **)r,
                                     errbuf);
        agent_buf_drop(&self->ain, used);
    } else {
        zmq_pollitem_t items[] = {{self->sock, 0, ZMQ_POLLIN, 0},
                                  {self->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, ms) < 0)
            return 0;
        if (items[1].revents & ZMQ_POLLIN)
            s_read_events(self);
        if (self->events & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            return -2;
        if (!(items[0].revents & ZMQ_POLLIN))
            return 0;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, 0) < 0) {
            zmq_msg_close(&m);
            return 0;
        }
        prc = crm_proto_unpack_shown(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                                     (ProtobufCMessage **)r, errbuf);
        zmq_msg_close(&m);
    }
    if (prc != CRM_OK) {
        s_err("the server sent a reply this client cannot read: %s\n", errbuf);
        return -3;
    }
    return 1;
}

/* Send the N requests REQS (ids assigned here) at once, then wait until each
   has its reply in REPLIES[i], matched by id: N requests cost one round trip,
   not N. RESEND: send the unanswered ones once more, with the same ids and
   idempotency keys, if half the timeout passed without their replies (a lost
   message, a reconnect) - the server answers a resent write with its first
   result instead of doing it twice. Returns EXIT_OK with every REPLIES[i] set,
   refusals included (nothing printed); EXIT_REFUSED if a reply cannot be read;
   EXIT_UNREACHABLE on timeout or authentication failure (diagnosed). On
   failure no REPLIES[i] is set. */
static int
s_exchange(conn_t *self, Crm__Request *const *reqs, size_t n, Crm__Reply **replies, bool resend)
{
    int rc = EXIT_OK;
    size_t answered = 0;
    uint8_t **bufs = calloc(n, sizeof *bufs);
    size_t *lens = calloc(n, sizeof *lens);
    CRM_ASSERT_ALLOC(bufs);
    CRM_ASSERT_ALLOC(lens);
    for (size_t i = 0; i < n; i++) {
        replies[i] = NULL;
        reqs[i]->id = ((uint64_t)randombytes_random() << 32 | randombytes_random()) | 1;
        bufs[i] = crm_proto_pack(&reqs[i]->base, &lens[i]);
    }
    int64_t start = crm_time_mono_us();
    int64_t deadline = start + (int64_t)self->timeout_ms * 1000;
    /* a server that is not there is said to be so within --timeout, even when the answer
       may take longer once it is reached (a report's) */
    int64_t reach = start + (int64_t)(self->reach_ms < self->timeout_ms ? self->reach_ms
                                                                        : self->timeout_ms) *
                                1000;
    int64_t resend_at = resend ? start + (int64_t)self->timeout_ms * 500 : INT64_MAX;
    bool send_all = true; /* at first, and again (the unanswered) once the agent is gone */
    while (answered < n) {
        if (send_all) {
            send_all = false;
            for (size_t i = 0; i < n; i++) {
                int sent = replies[i] ? 0 : s_send(self, bufs[i], lens[i], deadline);
                if (sent == -2) {
                    rc = s_unreachable(self);
                    goto cleanup;
                }
                if (sent == -1) { /* the agent is gone: all again, directly, with the same
                                     ids and idempotency keys */
                    if ((rc = s_after_agent(self, reqs, replies, n, resend)) != EXIT_OK)
                        goto cleanup;
                    send_all = true;
                    break;
                }
            }
            continue;
        }
        int64_t now = crm_time_mono_us();
        if (now >= resend_at) {
            for (size_t i = 0; i < n; i++)
                if (!replies[i] && s_send(self, bufs[i], lens[i], deadline) == -1)
                    break; /* the next s_next() finds the agent gone */
            resend_at = INT64_MAX;
        }
        int64_t left = (deadline - now) / 1000;
        if (self->afd < 0 && now >= reach && !(self->events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED)) {
            s_read_events(self);
            if (!(self->events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED))
                left = 0;
        }
        if (left <= 0) {
            if (self->afd < 0)
                s_read_events(self);
            rc = s_unreachable(self);
            bool wrote = false;
            for (size_t i = 0; i < n; i++)
                wrote = wrote || (!replies[i] && s_is_write(reqs[i]->op));
            if (wrote && (self->events & ZMQ_EVENT_HANDSHAKE_SUCCEEDED))
                s_err("the change may have been made all the same (it reached the server): "
                      "look before sending it again, or a second one is made\n");
            goto cleanup;
        }
        Crm__Reply *r = NULL;
        int got = s_next(self, (int)(left > 100 ? 100 : left), &r);
        if (got == -1) {
            if ((rc = s_after_agent(self, reqs, replies, n, resend)) != EXIT_OK)
                goto cleanup;
            send_all = true;
            continue;
        }
        if (got == -2 || got == -3) {
            rc = got == -2 ? s_unreachable(self) : EXIT_REFUSED;
            goto cleanup;
        }
        if (got == 0)
            continue;
        size_t i = 0;
        while (i < n && (replies[i] || reqs[i]->id != r->id))
            i++;
        if (i == n) { /* a stale reply to an earlier request, or a resent one's twin */
            conn_reply_free(&r);
            continue;
        }
        replies[i] = r;
        answered++;
    }
cleanup:
    for (size_t i = 0; i < n; i++) {
        if (rc != EXIT_OK)
            conn_reply_free(&replies[i]);
        free(bufs[i]);
    }
    free(bufs);
    free(lens);
    return rc;
}

/* One call: s_exchange() of one request, its refusal printed. */
static int
s_call(conn_t *self, Crm__Request *req, Crm__Reply **reply, bool resend)
{
    int rc = s_exchange(self, &req, 1, reply, resend);
    if (rc == EXIT_OK && (rc = s_status(self, *reply)) != EXIT_OK)
        conn_reply_free(reply);
    return rc;
}

int
conn_call(conn_t *self, Crm__Request *req, Crm__Reply **reply)
{
    *reply = NULL;
    char *saved = req->idempotency_key;
    bool keyed = s_is_write(req->op) && (!saved || !*saved);
    char key[33];
    if (keyed) { /* a fresh key per call: a call after a CONFLICT is a new request */
        uint8_t raw[16];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(key, sizeof key, raw, sizeof raw);
        req->idempotency_key = key;
    }
    int rc = s_call(self, req, reply, keyed || (saved && *saved));
    req->idempotency_key = saved;
    return rc;
}

int
conn_call_all(conn_t *self, Crm__Request *const *reqs, size_t n, Crm__Reply **replies)
{
    for (size_t i = 0; i < n; i++) /* a write would need its idempotency key and resend */
        CRM_ASSERT(!s_is_write(reqs[i]->op));
    return s_exchange(self, reqs, n, replies, false);
}

int
conn_status(conn_t *self, const Crm__Reply *reply)
{
    return s_status(self, reply);
}

int
conn_send(conn_t *self, Crm__Request *req)
{
    CRM_ASSERT(self->afd < 0); /* a stream is one connection's: never through the agent */
    req->id = ((uint64_t)randombytes_random() << 32 | randombytes_random()) | 1;
    size_t len;
    uint8_t *buf = crm_proto_pack(&req->base, &len);
    int rc = zmq_send(self->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
    return rc < 0 ? EXIT_UNREACHABLE : EXIT_OK;
}

int
conn_recv(conn_t *self, int ms, Crm__Reply **reply)
{
    *reply = NULL;
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, ms) <= 0)
        return EXIT_UNREACHABLE;
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = EXIT_UNREACHABLE;
    char errbuf[CRM_ERRBUF];
    if (zmq_msg_recv(&m, self->sock, 0) >= 0 &&
        crm_proto_unpack_shown(&crm__reply__descriptor, zmq_msg_data(&m), zmq_msg_size(&m),
                               (ProtobufCMessage **)reply, errbuf) == CRM_OK)
        rc = EXIT_OK;
    zmq_msg_close(&m);
    return rc;
}

void
conn_reply_free(Crm__Reply **reply)
{
    crm_proto_free((ProtobufCMessage **)reply);
}

void
conn_set_timeout(conn_t *self, int ms)
{
    self->timeout_ms = ms;
}

const char *
conn_endpoint(const conn_t *self)
{
    return self->endpoint;
}

void
conn_destroy(conn_t **self_p)
{
    conn_t *self = *self_p;
    if (!self)
        return;
    if (self->afd >= 0)
        close(self->afd);
    agent_buf_free(&self->ain);
    if (self->sock) {
        zmq_socket_monitor(self->sock, NULL, 0);
        zmq_close(self->sock);
    }
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    sodium_memzero(&self->enroll, sizeof self->enroll);
    free(self);
    *self_p = NULL;
}
