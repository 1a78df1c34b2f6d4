/*  agent - `crm agent`: one CurveZMQ session kept open for many crm calls (see agent.h) */
#define _GNU_SOURCE /* SO_PEERCRED's struct ucred */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "conn.h"
#include "crm_log.h"
#include "crm_proto.h"
#include "crm_time.h"

#define AGENT_IDLE_S 600         /* stop after this long without a call, unless --idle */
#define AGENT_RECONNECT_MAX_MS 2000 /* the longest wait between two connection attempts */
#define AGENT_MAX_CLIENTS 64     /* crm processes served at once; more wait to be accepted */
#define AGENT_CLIENT_PENDING 1024 /* one client's requests in flight; beyond, it is not read */
#define AGENT_CLIENT_IDLE_US (30 * INT64_C(1000000)) /* a caller silent this long is let go */
/* Requests above the server's default --max-msg go directly, on their caller's own
   connection: beyond twice its limit the server drops the connection that sent one,
   which here would be every caller's. */
#define AGENT_DIRECT_ABOVE (1u << 20)
#define AGENT_PENDING_TTL_US (7200 * INT64_C(1000000)) /* past any caller's --timeout (3600 s) */
#define AGENT_MAX_OUT (256u << 20) /* replies queued for one client that does not read */

/* ==== frames ==== */

static void
s_buf_reserve(agent_buf_t *b, size_t more)
{
    if (b->off && b->len + more > b->cap) { /* room at the front first */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    b->data = realloc(b->data, cap);
    CRM_ASSERT_ALLOC(b->data);
    b->cap = cap;
}

void
agent_frame_put(agent_buf_t *b, char type, const void *head, size_t hlen, const void *body,
                size_t blen)
{
    size_t n = 1 + hlen + blen;
    s_buf_reserve(b, 4 + n);
    uint8_t *p = b->data + b->len;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    p[4] = (uint8_t)type;
    if (hlen)
        memcpy(p + 5, head, hlen);
    if (blen)
        memcpy(p + 5 + hlen, body, blen);
    b->len += 4 + n;
}

int
agent_frame_next(const agent_buf_t *b, char *type, const uint8_t **payload, size_t *plen,
                 size_t *used)
{
    if (b->len - b->off < 4)
        return 0;
    const uint8_t *p = b->data + b->off;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (n < 1 || n > AGENT_MAX_FRAME)
        return -1;
    if (b->len - b->off < 4 + n)
        return 0;
    *type = (char)p[4];
    *payload = p + 5;
    *plen = n - 1;
    *used = 4 + n;
    return 1;
}

void
agent_buf_drop(agent_buf_t *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

size_t
agent_buf_used(const agent_buf_t *b)
{
    return b->len - b->off;
}

ssize_t
agent_buf_read(agent_buf_t *b, int fd)
{
    s_buf_reserve(b, 64 * 1024);
    ssize_t got = read(fd, b->data + b->len, b->cap - b->len);
    if (got > 0)
        b->len += (size_t)got;
    return got;
}

void
agent_buf_free(agent_buf_t *b)
{
    free(b->data);
    *b = (agent_buf_t){0};
}

static bool
s_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t c = p[(*i)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

bool
agent_swap_id(const uint8_t *msg, size_t len, uint64_t id, uint64_t *old, uint8_t head[11],
              size_t *hlen, size_t *rest)
{
    size_t i = 1;
    if (len < 2 || msg[0] != (1 << 3 | 0) || !s_varint(msg, len, &i, old))
        return false;
    *rest = i;
    size_t n = 0;
    head[n++] = 1 << 3 | 0;
    do {
        uint8_t c = id & 0x7f;
        id >>= 7;
        head[n++] = (uint8_t)(id ? c | 0x80 : c);
    } while (id);
    *hlen = n;
    return true;
}

/* ==== where the socket is ==== */

/* DIR exists (or, with CREATE, is made), is a directory of ours, and only we can enter it. */
static bool
s_safe_dir(const char *dir, bool create, char *errbuf, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        if (errno != ENOENT || !create || (mkdir(dir, 0700) != 0 && errno != EEXIST) ||
            lstat(dir, &st) != 0) {
            snprintf(errbuf, errlen, "cannot make %s: %s", dir, strerror(errno));
            return false;
        }
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
        snprintf(errbuf, errlen,
                 "%s is not a directory of yours closed to others (mode 0700): no agent "
                 "socket is kept there",
                 dir);
        return false;
    }
    return true;
}

bool
agent_path(const crm_enroll_t *e, const char *endpoint, bool create, char *out, size_t n,
           char *errbuf, size_t errlen)
{
    char dir[sizeof((struct sockaddr_un *)0)->sun_path];
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int w = xdg && *xdg ? snprintf(dir, sizeof dir, "%s/crm", xdg)
                        : snprintf(dir, sizeof dir, "/tmp/crm-%u", (unsigned)getuid());
    if (w < 0 || (size_t)w >= sizeof dir - 48) {
        snprintf(errbuf, errlen, "the agent's directory name is too long for a socket");
        return false;
    }
    if (!s_safe_dir(dir, create, errbuf, errlen))
        return false;
    uint8_t h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, e->server_pub, sizeof e->server_pub);
    crypto_generichash_update(&st, e->keys.pub, sizeof e->keys.pub);
    crypto_generichash_update(&st, (const uint8_t *)endpoint, strlen(endpoint));
    crypto_generichash_final(&st, h, sizeof h);
    char hex[sizeof h * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    w = snprintf(out, n, "%s/agent-%s.sock", dir, hex);
    return w > 0 && (size_t)w < n;
}

static void
s_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof sa->sun_path, "%s", path);
}

/* The uid of the process at the other end of the Unix socket FD, or -1. */
static long
s_peer_uid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return -1;
    return (long)cred.uid;
}

int
agent_connect(const crm_enroll_t *e, const char *endpoint)
{
    char path[sizeof((struct sockaddr_un *)0)->sun_path], errbuf[256];
    if (!agent_path(e, endpoint, false, path, sizeof path, errbuf, sizeof errbuf))
        return -1;
    struct sockaddr_un sa;
    s_addr(&sa, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || s_peer_uid(fd) != (long)getuid()) {
        close(fd); /* no agent (ENOENT), or one that died (ECONNREFUSED) */
        return -1;
    }
    return fd;
}

void
agent_spawn(const crm_enroll_t *e, const char *config, const char *endpoint)
{
    char path[sizeof((struct sockaddr_un *)0)->sun_path], lock[sizeof path + 8], errbuf[256];
    if (!agent_path(e, endpoint, true, path, sizeof path, errbuf, sizeof errbuf))
        return;
    snprintf(lock, sizeof lock, "%s.lock", path);
    int lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0)
        return;
    bool free_now = flock(lockfd, LOCK_EX | LOCK_NB) == 0; /* else one runs or is starting */
    close(lockfd);                                          /* (and the lock goes with it) */
    if (!free_now)
        return;
    fflush(NULL);
    pid_t child = fork();
    if (child < 0)
        return;
    if (child == 0) { /* a grandchild runs the start, so that nobody waits for it */
        if (fork() != 0)
            _exit(0);
        setsid();
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        close_range(3, ~0U, 0);
        char *argv[] = {(char *)"crm",   (char *)"--config", (char *)config, (char *)"--server",
                        (char *)endpoint, (char *)"agent",   (char *)"start", NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* ==== the agent ==== */

typedef struct {
    int fd; /* -1: a free slot */
    uint32_t gen;
    int npending;    /* its requests not answered yet */
    int64_t last_us; /* when it last sent or was sent something */
    agent_buf_t in, out;
} client_t;

typedef struct {
    uint64_t aid; /* the id the agent gave the request */
    uint64_t cid; /* the caller's */
    int slot;
    uint32_t gen;
    int64_t at_us; /* when it was passed on */
} pending_t;

typedef struct {
    void *ctx, *sock, *monitor;
    int lfd;
    client_t clients[AGENT_MAX_CLIENTS];
    uint32_t gen;
    pending_t *pending;
    size_t npending, cap;
    uint64_t next_id;
    /* for `crm agent status` */
    char endpoint[256], user[64];
    bool up;
    uint64_t handshakes, calls;
    uint64_t broken; /* handshakes that broke off since the last that succeeded */
    int64_t started_us, last_us, swept_us;
    int idle_s;
    bool stop;
} agent_t;

static volatile sig_atomic_t s_signalled;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_signalled = 1;
}

/* Forget pending entry I (answered, expired or its caller gone). */
static void
s_pending_drop(agent_t *a, size_t i)
{
    client_t *c = &a->clients[a->pending[i].slot];
    if (c->fd >= 0 && c->gen == a->pending[i].gen)
        c->npending--;
    a->pending[i] = a->pending[--a->npending];
}

/* Once a second: requests no caller can still be waiting for, and callers that have sent
   nothing for 30 s (or --idle, if shorter) with nothing pending or half sent, so that
   neither keeps the agent up or holds a slot; a caller let go that sends again finds the
   connection closed and goes on directly. */
static void
s_sweep(agent_t *a, int64_t now)
{
    if (now - a->swept_us < 1000000)
        return;
    a->swept_us = now;
    for (size_t i = 0; i < a->npending;)
        if (now - a->pending[i].at_us > AGENT_PENDING_TTL_US)
            s_pending_drop(a, i);
        else
            i++;
    for (int slot = 0; slot < AGENT_MAX_CLIENTS; slot++) {
        client_t *c = &a->clients[slot];
        int64_t idle_us = (int64_t)a->idle_s * 1000000;
        if (idle_us > AGENT_CLIENT_IDLE_US)
            idle_us = AGENT_CLIENT_IDLE_US;
        if (c->fd >= 0 && !c->npending && !agent_buf_used(&c->out) && now - c->last_us > idle_us) {
            close(c->fd);
            c->fd = -1;
            agent_buf_free(&c->in);
            agent_buf_free(&c->out);
        }
    }
}

static void
s_client_close(agent_t *a, int slot)
{
    client_t *c = &a->clients[slot];
    close(c->fd);
    c->fd = -1;
    agent_buf_free(&c->in);
    agent_buf_free(&c->out);
    for (size_t i = 0; i < a->npending;) /* its unanswered requests: their replies are dropped */
        if (a->pending[i].slot == slot && a->pending[i].gen == c->gen)
            a->pending[i] = a->pending[--a->npending];
        else
            i++;
}

static void
s_accept(agent_t *a)
{
    int slot = 0;
    while (slot < AGENT_MAX_CLIENTS && a->clients[slot].fd >= 0)
        slot++;
    int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    if (slot == AGENT_MAX_CLIENTS) { /* full: closed at once, the caller goes on directly */
        close(fd);
        return;
    }
    if (s_peer_uid(fd) != (long)getuid()) {
        crm_log_write(CRM_LOG_WARN, "refused a connection from uid %ld", s_peer_uid(fd));
        close(fd);
        return;
    }
    a->last_us = crm_time_mono_us();
    a->clients[slot] = (client_t){.fd = fd, .gen = ++a->gen, .last_us = a->last_us};
}

static void
s_status_text(const agent_t *a, char *out, size_t n)
{
    int64_t now = crm_time_mono_us();
    int nclients = 0;
    for (int i = 0; i < AGENT_MAX_CLIENTS; i++)
        nclients += a->clients[i].fd >= 0;
    snprintf(out, n,
             "pid        %ld\n"
             "server     %s\n"
             "user       %s\n"
             "connection %s (%llu handshakes)\n"
             "broken off %llu handshakes since the last that succeeded\n"
             "calls      %llu\n"
             "clients    %d\n"
             "running    %lld s\n"
             "idle stop  after %d s without a call\n",
             (long)getpid(), a->endpoint, a->user, a->up ? "up" : "down",
             (unsigned long long)a->handshakes, (unsigned long long)a->broken,
             (unsigned long long)a->calls, nclients,
             (long long)((now - a->started_us) / 1000000), a->idle_s);
}

/* One frame from client SLOT. False: close the client, which then goes on directly (a
   request closed on was not passed on). */
static bool
s_frame(agent_t *a, int slot, char type, const uint8_t *p, size_t len)
{
    client_t *c = &a->clients[slot];
    if (type == 'S' || type == 'Q') {
        char text[1024];
        s_status_text(a, text, sizeof text);
        agent_frame_put(&c->out, type, NULL, 0, text, strlen(text));
        if (type == 'Q') {
            crm_log_write(CRM_LOG_INFO, "stopped by crm agent stop");
            a->stop = true;
        }
        return true;
    }
    /* a feed is its connection's, and a request too big for the server's default limit
       would cost every caller the connection: both go directly */
    uint64_t op = 0;
    if (type != 'R' || len > AGENT_DIRECT_ABOVE ||
        (crm_proto_peek_varint(p, len, 2, &op) && op == CRM__OP__OP_WATCH))
        return false;
    uint8_t head[11];
    size_t hlen, rest;
    int64_t now = crm_time_mono_us();
    pending_t pd = {.aid = ++a->next_id, .slot = slot, .gen = c->gen, .at_us = now};
    if (!agent_swap_id(p, len, pd.aid, &pd.cid, head, &hlen, &rest))
        return false;
    /* the agent's id first and last: a request that carried a second id of its own (the
       last one read is the one the server answers with) could not have its reply routed
       to another caller */
    zmq_msg_t m;
    zmq_msg_init_size(&m, hlen + len - rest + hlen);
    uint8_t *out = zmq_msg_data(&m);
    memcpy(out, head, hlen);
    memcpy(out + hlen, p + rest, len - rest);
    memcpy(out + hlen + len - rest, head, hlen);
    /* ZMQ_IMMEDIATE: refused unless the connection is up, so that nothing waits here for a
       server that is away, to be done after its caller gave up (as a direct call's queue
       goes with its process) */
    if (zmq_msg_send(&m, a->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return false;
    }
    if (a->npending == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->pending = realloc(a->pending, a->cap * sizeof *a->pending);
        CRM_ASSERT_ALLOC(a->pending);
    }
    a->pending[a->npending++] = pd;
    c->npending++;
    a->calls++;
    a->last_us = c->last_us = now;
    return true;
}

static void
s_client_read(agent_t *a, int slot)
{
    client_t *c = &a->clients[slot];
    ssize_t got = agent_buf_read(&c->in, c->fd);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        s_client_close(a, slot);
        return;
    }
    char type;
    const uint8_t *p;
    size_t len, used;
    int more;
    while ((more = agent_frame_next(&c->in, &type, &p, &len, &used)) == 1) {
        if (!s_frame(a, slot, type, p, len)) {
            s_client_close(a, slot);
            return;
        }
        agent_buf_drop(&c->in, used);
    }
    if (more < 0)
        s_client_close(a, slot);
}

static void
s_client_write(agent_t *a, int slot)
{
    client_t *c = &a->clients[slot];
    while (agent_buf_used(&c->out)) {
        ssize_t put = send(c->fd, c->out.data + c->out.off, agent_buf_used(&c->out), MSG_NOSIGNAL);
        if (put < 0) {
            if (errno != EAGAIN && errno != EINTR)
                s_client_close(a, slot);
            return;
        }
        agent_buf_drop(&c->out, (size_t)put);
    }
}

/* A reply from the server: back to the caller under its own id. */
static void
s_reply(agent_t *a, const uint8_t *p, size_t len)
{
    uint8_t head[11];
    size_t hlen, rest;
    uint64_t aid;
    if (!agent_swap_id(p, len, 0, &aid, head, &hlen, &rest))
        return; /* an event (id 0): no request of ours asked for one */
    size_t i = 0;
    while (i < a->npending && a->pending[i].aid != aid)
        i++;
    if (i == a->npending)
        return; /* its caller has gone */
    pending_t pd = a->pending[i];
    s_pending_drop(a, i);
    client_t *c = &a->clients[pd.slot];
    if (c->fd < 0 || c->gen != pd.gen)
        return;
    c->last_us = crm_time_mono_us();
    agent_swap_id(p, len, pd.cid, &aid, head, &hlen, &rest);
    agent_frame_put(&c->out, 'R', head, hlen, p + rest, len - rest);
    s_client_write(a, pd.slot);
    if (c->fd >= 0 && agent_buf_used(&c->out) > AGENT_MAX_OUT)
        s_client_close(a, pd.slot);
}

/* The DEALER's handshake events. A refusal (the server's ZAP handler said no: the
   key is unknown or disabled) stops the agent, so that the next crm call connects
   directly and says why. A handshake that broke off without an answer (the server
   stopping or starting, a server that cannot decide, a wrong server key) or that
   went wrong in the protocol is retried like a lost connection, as a direct call
   retries it until its timeout: the calls go directly meanwhile (ZMQ_IMMEDIATE), and
   `crm agent status` counts the broken ones. */
static void
s_monitor(agent_t *a)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, a->monitor, ZMQ_DONTWAIT) >= 0) {
        uint16_t ev;
        uint32_t value;
        if (zmq_msg_size(&m) != 6 || !zmq_msg_more(&m))
            continue;
        memcpy(&ev, zmq_msg_data(&m), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, 4);
        zmq_msg_recv(&m, a->monitor, ZMQ_DONTWAIT); /* the endpoint frame */
        if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            a->up = true;
            a->handshakes++;
            a->broken = 0;
        } else if (ev == ZMQ_EVENT_DISCONNECTED) {
            a->up = false;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            crm_log_write(CRM_LOG_WARN, "the server at %s refused the handshake (%u); stopping",
                          a->endpoint, value);
            a->stop = true;
        } else if (ev & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
            /* logged when a run of them starts and then at 10, 100, 1000...: a server
               away for a day does not fill the log */
            a->broken++;
            uint64_t n = a->broken;
            while (n >= 10 && n % 10 == 0)
                n /= 10;
            if (n == 1)
                crm_log_write(CRM_LOG_INFO,
                              "the handshake with %s %s (%llu since the last that succeeded); "
                              "retrying",
                              a->endpoint,
                              ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                  ? "failed on a protocol error"
                                  : "broke off: the server closed it unanswered",
                              (unsigned long long)a->broken);
        }
    }
    zmq_msg_close(&m);
}

static void
s_serve(agent_t *a)
{
    zmq_pollitem_t items[3 + AGENT_MAX_CLIENTS];
    int slots[3 + AGENT_MAX_CLIENTS];
    while (!a->stop && !s_signalled) {
        s_sweep(a, crm_time_mono_us());
        int n = 0, nclients = 0;
        items[n++] = (zmq_pollitem_t){a->sock, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){a->monitor, 0, ZMQ_POLLIN, 0};
        /* when every slot is taken, s_accept closes a newcomer at once (it goes directly) */
        items[n++] = (zmq_pollitem_t){NULL, a->lfd, ZMQ_POLLIN, 0};
        for (int i = 0; i < AGENT_MAX_CLIENTS; i++) {
            client_t *c = &a->clients[i];
            if (c->fd < 0)
                continue;
            nclients++;
            short ev = (short)((c->npending < AGENT_CLIENT_PENDING ? ZMQ_POLLIN : 0) |
                               (agent_buf_used(&c->out) ? ZMQ_POLLOUT : 0));
            slots[n] = i;
            items[n++] = (zmq_pollitem_t){NULL, c->fd, ev, 0};
        }
        int64_t now = crm_time_mono_us();
        int64_t idle_left = a->last_us + (int64_t)a->idle_s * 1000000 - now;
        if (nclients == 0 && idle_left <= 0) {
            crm_log_write(CRM_LOG_INFO, "%d s without a call; stopping", a->idle_s);
            break;
        }
        long wait_ms = nclients || idle_left > 1000000 ? 1000 : (long)(idle_left / 1000) + 1;
        if (zmq_poll(items, n, wait_ms) < 0)
            continue; /* EINTR: the loop looks at s_signalled */
        if (items[1].revents & ZMQ_POLLIN)
            s_monitor(a);
        if (items[0].revents & ZMQ_POLLIN) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) >= 0)
                s_reply(a, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
        for (int k = 3; k < n; k++) {
            int slot = slots[k];
            if (a->clients[slot].fd < 0 || a->clients[slot].fd != items[k].fd)
                continue;
            if (items[k].revents & ZMQ_POLLOUT)
                s_client_write(a, slot);
            if (a->clients[slot].fd >= 0 && (items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                s_client_read(a, slot);
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_accept(a);
    }
    for (int i = 0; i < AGENT_MAX_CLIENTS; i++) /* a stop's answer goes out before the end */
        if (a->clients[i].fd >= 0) {
            s_client_write(a, i);
            if (a->clients[i].fd >= 0)
                s_client_close(a, i);
        }
}

/* The agent process: serve on LFD (bound and listening) until idle, stopped
   or refused. Returns the exit status. */
static int
s_agent_run(const crm_enroll_t *e, const char *endpoint, int lfd, int idle_s)
{
    agent_t *a = calloc(1, sizeof *a);
    CRM_ASSERT_ALLOC(a);
    for (int i = 0; i < AGENT_MAX_CLIENTS; i++)
        a->clients[i].fd = -1;
    a->lfd = lfd;
    a->idle_s = idle_s;
    a->started_us = a->last_us = crm_time_mono_us();
    snprintf(a->endpoint, sizeof a->endpoint, "%s", endpoint);
    snprintf(a->user, sizeof a->user, "%s", e->user);
    a->ctx = zmq_ctx_new();
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    int zero = 0;
    int64_t maxmsg = 64 << 20;
    int one = 1;
    zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    /* a server away or refusing without an answer (another key) is retried more and more
       slowly, up to every 2 s, not every 100 ms until the idle stop */
    int ivl_max = AGENT_RECONNECT_MAX_MS;
    zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(a->sock, ZMQ_CURVE_SERVERKEY, e->server_pub, CRM_KEY_BYTES);
    zmq_setsockopt(a->sock, ZMQ_CURVE_PUBLICKEY, e->keys.pub, CRM_KEY_BYTES);
    zmq_setsockopt(a->sock, ZMQ_CURVE_SECRETKEY, e->keys.sec, CRM_KEY_BYTES);
    zmq_socket_monitor(a->sock, "inproc://agent-monitor",
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED);
    a->monitor = zmq_socket(a->ctx, ZMQ_PAIR);
    zmq_setsockopt(a->monitor, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(a->monitor, "inproc://agent-monitor");
    int rc = 0;
    if (zmq_connect(a->sock, endpoint) != 0) {
        crm_log_write(CRM_LOG_ERROR, "cannot connect to %s: %s", endpoint,
                      zmq_strerror(zmq_errno()));
        rc = 1;
    } else {
        crm_log_write(CRM_LOG_INFO, "serving %s for %s", endpoint, e->user);
        s_serve(a);
    }
    zmq_socket_monitor(a->sock, NULL, 0);
    zmq_close(a->monitor);
    zmq_close(a->sock);
    zmq_ctx_term(a->ctx);
    free(a->pending);
    free(a);
    return rc;
}

/* ==== crm agent start|stop|status ==== */

static const char s_agent_usage[] =
    "usage: crm agent start [--idle SECONDS]\n"
    "       crm agent stop\n"
    "       crm agent status\n"
    "\n"
    "Keeps one secure connection to the server open for the enrollment in use, so that the\n"
    "crm commands you run next skip the connection's set-up (most of a short command's\n"
    "time). It serves only you, through a socket in $XDG_RUNTIME_DIR/crm (else\n"
    "/tmp/crm-UID, mode 0700), and stops by itself after --idle seconds without a call\n"
    "(default 600), when the server refuses its key, or at 'crm agent stop'. crm uses a\n"
    "running agent by itself; --no-agent (or CRM_AGENT=off) connects directly. crm watch\n"
    "always connects directly.\n";

/* One control frame TYPE to the agent on FD and its answer (text into OUT[N]). */
static bool
s_control(int fd, char type, char *out, size_t n)
{
    agent_buf_t b = {0};
    agent_frame_put(&b, type, NULL, 0, NULL, 0);
    bool ok = send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len;
    b.len = 0;
    int64_t deadline = crm_time_mono_us() + 2000000;
    char got_type = 0;
    const uint8_t *p = NULL;
    size_t len = 0, used;
    while (ok) {
        int more = agent_frame_next(&b, &got_type, &p, &len, &used);
        if (more == 1)
            break;
        int64_t left = (deadline - crm_time_mono_us()) / 1000;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (more < 0 || left <= 0 || poll(&pfd, 1, (int)left) <= 0 || agent_buf_read(&b, fd) <= 0)
            ok = false;
    }
    ok = ok && got_type == type;
    if (ok)
        snprintf(out, n, "%.*s", (int)len, (const char *)p);
    agent_buf_free(&b);
    return ok;
}

/* Take the lock on LOCKFD, waiting at most MS for an agent that is stopping to let it go. */
static bool
s_lock_wait(int lockfd, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        if (flock(lockfd, LOCK_EX | LOCK_NB) == 0)
            return true;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The pid in a status text. */
static long
s_status_pid(const char *text)
{
    return strncmp(text, "pid", 3) ? -1 : strtol(text + 3, NULL, 10);
}

static int
s_start(const cli_ctx_t *ctx, const crm_enroll_t *e, const char *endpoint, int idle_s)
{
    char path[sizeof((struct sockaddr_un *)0)->sun_path], lock[sizeof path + 8], errbuf[512];
    char text[1024];
    if (!agent_path(e, endpoint, true, path, sizeof path, errbuf, sizeof errbuf)) {
        fprintf(stderr, "crm agent: %s\n", errbuf);
        return EXIT_USAGE;
    }
    snprintf(lock, sizeof lock, "%s.lock", path);
    int lfd = -1, lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0) {
        fprintf(stderr, "crm agent: cannot open %s: %s\n", lock, strerror(errno));
        return EXIT_USAGE;
    }
    if (flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        /* another holds the lock: an agent running, one starting (it answers once it has
           checked its key with the server) or one stopping (it lets the lock go) */
        long pid = -1;
        bool mine = false;
        for (int waited = 0; waited < 5000 && pid < 0 && !mine; waited += 50) {
            int fd = agent_connect(e, endpoint);
            pid = fd >= 0 && s_control(fd, 'S', text, sizeof text) ? s_status_pid(text) : -1;
            if (fd >= 0)
                close(fd);
            if (pid < 0)
                mine = s_lock_wait(lockfd, 50);
        }
        if (!mine) {
            close(lockfd);
            if (ctx->json)
                printf("{\"started\":false,\"pid\":%ld}\n", pid);
            else if (pid >= 0)
                printf("an agent is already running for %s at %s (pid %ld)\n", e->user,
                       endpoint, pid);
            else
                printf("an agent for %s at %s holds its lock but does not answer\n", e->user,
                       endpoint);
            return pid >= 0 ? EXIT_OK : EXIT_REFUSED;
        }
    }
    /* The server must take this key before an agent is left to carry calls. */
    cli_ctx_t direct = *ctx;
    direct.agent = false;
    conn_t *conn = NULL;
    Crm__Request req = CRM__REQUEST__INIT;
    Crm__PingRequest ping = CRM__PING_REQUEST__INIT;
    Crm__Reply *reply = NULL;
    req.op = CRM__OP__OP_PING;
    req.body_case = CRM__REQUEST__BODY_PING;
    req.ping = &ping;
    int rc = conn_open(&direct, &conn);
    if (rc == EXIT_OK)
        rc = conn_call(conn, &req, &reply);
    conn_reply_free(&reply);
    conn_destroy(&conn); /* its ZeroMQ threads are gone before the fork */
    if (rc != EXIT_OK) {
        close(lockfd);
        return rc;
    }
    struct sockaddr_un sa;
    s_addr(&sa, path);
    unlink(path); /* an agent that died left it: the lock says none runs now */
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(077);
    bool bound = lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                 chmod(path, 0600) == 0 && listen(lfd, 64) == 0;
    umask(old);
    if (!bound) {
        fprintf(stderr, "crm agent: cannot listen on %s: %s\n", path, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        close(lockfd);
        return EXIT_USAGE;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "crm agent: cannot start: %s\n", strerror(errno));
        unlink(path);
        close(lfd);
        close(lockfd);
        return EXIT_USAGE;
    }
    if (pid > 0) {
        close(lfd);
        close(lockfd); /* the agent holds the lock from here on */
        if (ctx->json) {
            printf("{\"started\":true,\"pid\":%ld,\"socket\":", (long)pid);
            out_json_str(stdout, path);
            printf(",\"idle\":%d}\n", idle_s);
        } else
            printf("agent started (pid %ld) for %s at %s; it stops after %d s without a call, "
                   "or at 'crm agent stop'\n",
                   (long)pid, e->user, endpoint, idle_s);
        return EXIT_OK;
    }
    /* the agent: its own session, nothing of the terminal or of the caller's other open
       files (a pipe a script waits on), no core dump that could hold the key, its log
       beside the socket */
    setsid();
    prctl(PR_SET_DUMPABLE, 0);
    int keep_lo = lfd < lockfd ? lfd : lockfd, keep_hi = lfd < lockfd ? lockfd : lfd;
    if (keep_lo > 3)
        close_range(3, (unsigned)keep_lo - 1, 0);
    if (keep_hi > keep_lo + 1)
        close_range((unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0);
    close_range((unsigned)keep_hi + 1, ~0U, 0);
    char logpath[sizeof path + 8];
    snprintf(logpath, sizeof logpath, "%.*s.log", (int)(strlen(path) - 5), path);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(logfd >= 0 ? logfd : devnull, 2);
        close(devnull);
    }
    if (logfd >= 0)
        close(logfd);
    if (chdir("/") != 0) { /* nothing to do about it: no path the agent uses is relative */
    }
    struct sigaction sa_sig = {.sa_handler = s_on_signal};
    sigaction(SIGTERM, &sa_sig, NULL);
    sigaction(SIGINT, &sa_sig, NULL);
    sigaction(SIGHUP, &sa_sig, NULL);
    signal(SIGPIPE, SIG_IGN);
    crm_log_init("crm-agent", CRM_LOG_INFO);
    rc = s_agent_run(e, endpoint, lfd, idle_s);
    /* the socket goes before the lock, so that a new agent never loses its own to us */
    unlink(path);
    close(lfd);
    close(lockfd);
    exit(rc);
}

int
cmd_agent(int argc, char **argv, cli_ctx_t *ctx)
{
    int idle_s = AGENT_IDLE_S;
    const char *sub = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_agent_usage, stdout);
            return EXIT_OK;
        }
        if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 1 || v > 7 * 24 * 3600) {
                fprintf(stderr, "crm agent: --idle needs seconds, 1 to 604800, not '%s'\n",
                        argv[i]);
                return EXIT_USAGE;
            }
            idle_s = (int)v;
        } else if (argv[i][0] != '-' && !sub) {
            sub = argv[i];
        } else {
            fprintf(stderr, "crm agent: unexpected argument '%s'\n", argv[i]);
            sub = NULL;
            break;
        }
    }
    if (!sub || (strcmp(sub, "start") && strcmp(sub, "stop") && strcmp(sub, "status"))) {
        fputs(s_agent_usage, stderr);
        return EXIT_USAGE;
    }
    char errbuf[CRM_ERRBUF];
    crm_enroll_t e;
    if (crm_enroll_load(cli_config_path(ctx), &e, errbuf) != CRM_OK) {
        fprintf(stderr, "crm agent: %s\n", errbuf);
        return EXIT_USAGE;
    }
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", ctx->server ? ctx->server : e.endpoint);
    int rc = EXIT_OK;
    if (!strcmp(sub, "start")) {
        rc = s_start(ctx, &e, endpoint, idle_s);
    } else {
        char text[1024];
        int fd = agent_connect(&e, endpoint);
        bool stop = !strcmp(sub, "stop");
        bool ok = fd >= 0 && s_control(fd, stop ? 'Q' : 'S', text, sizeof text);
        if (fd >= 0)
            close(fd);
        char path[sizeof((struct sockaddr_un *)0)->sun_path], lock[sizeof path + 8];
        if (ok && stop && agent_path(&e, endpoint, false, path, sizeof path, errbuf, sizeof errbuf)) {
            /* stopped means gone: a `crm agent start` right after finds the place free */
            snprintf(lock, sizeof lock, "%s.lock", path);
            int lockfd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            if (lockfd >= 0 && !s_lock_wait(lockfd, 5000))
                fprintf(stderr, "crm agent: the agent (pid %ld) was asked to stop and has "
                                "not yet\n",
                        s_status_pid(text));
            if (lockfd >= 0)
                close(lockfd);
        }
        if (ctx->json)
            printf("{\"running\":%s,\"pid\":%ld%s}\n", ok && !stop ? "true" : "false",
                   ok ? s_status_pid(text) : -1L, ok && stop ? ",\"stopped\":true" : "");
        else if (!ok && fd >= 0)
            printf("an agent for %s at %s is there but did not answer (it serves %d callers "
                   "at most)\n",
                   e.user, endpoint, AGENT_MAX_CLIENTS);
        else if (!ok)
            printf("no agent is running for %s at %s\n", e.user, endpoint);
        else
            fputs(stop ? "agent stopped\n" : text, stdout);
        rc = ok ? EXIT_OK : EXIT_REFUSED; /* scripts: 1 when there is none */
    }
    sodium_memzero(&e, sizeof e);
    return rc;
}
