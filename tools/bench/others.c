/*  =========================================================================
    bench-others - the other sides of tools/bench/compare

    Drivers for what OneView is compared with, where pgbench and redis-cli
    have no equivalent:

      bench-others redis-pubsub PORT SUBS PUBS SECONDS
          SUBS subscribers on one Redis channel, PUBS closed-loop publishers
      bench-others pg-notify CONNINFO SUBS PUBS SECONDS
          SUBS LISTENing connections; PUBS closed-loop writers, each
          transaction an INSERT of an activity plus pg_notify (one round trip)
      bench-others curve-echo CLIENTS THREADS SECONDS
          a bare ZeroMQ CURVE ROUTER echo (its own process) and CLIENTS
          DEALERs, 200-byte messages: the ceiling of any encrypted server
      bench-others curve-pubsub SUBS RATE SECONDS
          a bare CURVE XPUB (its own process) paced at RATE messages/s to
          SUBS SUB sockets: the latency floor of an encrypted feed
      bench-others sealed-pubsub SUBS RATE SECONDS BATCH
          the same without CURVE: each message holds BATCH 200-byte events
          sealed once (libsodium secretbox) and shared by every SUB, which
          opens it: the ceiling of a feed sealed once per visibility class
          (docs/PERFORMANCE.md); deliveries count events

    Prints one line: RESULT key=value ... (ops_s, deliveries_s, p50_ms,
    p99_ms, and server_cpu_us per operation where the server is ours).
    Every loop stops by itself after SECONDS (plus at most a second).
    Built by tools/bench/compare (needs libpq, libzmq and libsodium), not by
    CMake.
    =========================================================================
*/
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ==== time and latency histogram (1 us buckets up to 1 s) ==== */

static int64_t
s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* realtime: compared across processes */
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define HMAX 1000000
typedef struct {
    uint32_t *b;
    uint64_t n;
    pthread_mutex_t mu;
} s_hist_t;

static void
s_hist_init(s_hist_t *h)
{
    h->b = calloc(HMAX + 1, sizeof *h->b);
    h->n = 0;
    pthread_mutex_init(&h->mu, NULL);
    if (!h->b)
        exit(1);
}

static void
s_hist_add(s_hist_t *h, int64_t us)
{
    h->b[us < 0 ? 0 : us > HMAX ? HMAX : us]++;
    h->n++;
}

static double
s_hist_pct_ms(const s_hist_t *h, double p)
{
    uint64_t want = (uint64_t)(p * (double)h->n), seen = 0;
    for (int i = 0; i <= HMAX; i++)
        if ((seen += h->b[i]) > want)
            return i / 1000.0;
    return HMAX / 1000.0;
}

static int64_t
s_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (int64_t)(ut + st) * 1000000 / sysconf(_SC_CLK_TCK);
}

static void
s_die(const char *what)
{
    fprintf(stderr, "bench-others: %s\n", what);
    exit(1);
}

/* ==== Redis pub/sub over raw RESP ==== */

static int
s_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        s_die("cannot connect to redis");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

#define TSLEN 16 /* payload: the publish time, 16 decimal digits of us */

static int
s_redis_pubsub(int port, int nsub, int npub, double secs)
{
    static const char sub_cmd[] = "SUBSCRIBE feed\r\n";
    char proto[128];
    /* what each delivery looks like on a subscriber's socket */
    int msglen = snprintf(proto, sizeof proto, "*3\r\n$7\r\nmessage\r\n$4\r\nfeed\r\n$%d\r\n%0*d\r\n",
                          TSLEN, TSLEN, 0);
    int confirm = (int)strlen("*3\r\n$9\r\nsubscribe\r\n$4\r\nfeed\r\n:1\r\n");
    struct pollfd *sp = calloc((size_t)nsub, sizeof *sp);
    char(*carry)[128] = calloc((size_t)nsub, sizeof *carry);
    int *have = calloc((size_t)nsub, sizeof *have);
    for (int i = 0; i < nsub; i++) {
        sp[i] = (struct pollfd){s_tcp(port), POLLIN, 0};
        if (write(sp[i].fd, sub_cmd, sizeof sub_cmd - 1) < 0)
            s_die("write");
        /* the confirmation's count differs per subscriber (:1 for each, one channel) */
        char tmp[128];
        int got = 0;
        while (got < confirm) {
            ssize_t r = read(sp[i].fd, tmp + got, (size_t)(confirm - got));
            if (r <= 0)
                s_die("subscribe");
            got += (int)r;
        }
    }
    struct pollfd *pp = calloc((size_t)npub, sizeof *pp);
    for (int i = 0; i < npub; i++)
        pp[i] = (struct pollfd){s_tcp(port), POLLIN, 0};
    s_hist_t h;
    s_hist_init(&h);
    uint64_t published = 0, delivered = 0;
    int64_t t0 = s_now_us(), end = t0 + (int64_t)(secs * 1e6), drain_end = end + 500000;
    char pubmsg[128];
    int publen = 0;
#define PUBLISH(fd)                                                                              \
    do {                                                                                         \
        publen = snprintf(pubmsg, sizeof pubmsg, "*3\r\n$7\r\nPUBLISH\r\n$4\r\nfeed\r\n$%d\r\n%0*" PRId64 "\r\n", \
                          TSLEN, TSLEN, s_now_us());                                             \
        if (write(fd, pubmsg, (size_t)publen) != publen)                                         \
            s_die("publish");                                                                    \
    } while (0)
    for (int i = 0; i < npub; i++)
        PUBLISH(pp[i].fd);
    char buf[65536 + 128];
    int pubs_open = npub;
    while (s_now_us() < drain_end) {
        /* publishers: a reply ":N\r\n" finishes one publish; start the next */
        if (pubs_open && poll(pp, (nfds_t)npub, 0) > 0)
            for (int i = 0; i < npub; i++) {
                if (!(pp[i].revents & POLLIN))
                    continue;
                ssize_t r = read(pp[i].fd, buf, 256);
                if (r <= 0)
                    s_die("publisher read");
                for (ssize_t k = 0; k < r; k++)
                    if (buf[k] == '\n') {
                        published++;
                        if (s_now_us() < end)
                            PUBLISH(pp[i].fd);
                        else {
                            pp[i].events = 0;
                            pubs_open--;
                        }
                    }
            }
        if (poll(sp, (nfds_t)nsub, 1) <= 0)
            continue;
        int64_t now = s_now_us();
        for (int i = 0; i < nsub; i++) {
            if (!(sp[i].revents & POLLIN))
                continue;
            memcpy(buf, carry[i], (size_t)have[i]);
            ssize_t r = read(sp[i].fd, buf + have[i], 65536);
            if (r <= 0)
                s_die("subscriber read");
            int len = have[i] + (int)r, off = 0;
            for (; off + msglen <= len; off += msglen) {
                char ts[TSLEN + 1];
                memcpy(ts, buf + off + msglen - 2 - TSLEN, TSLEN);
                ts[TSLEN] = '\0';
                s_hist_add(&h, now - strtoll(ts, NULL, 10));
                delivered++;
            }
            have[i] = len - off;
            memcpy(carry[i], buf + off, (size_t)have[i]);
        }
    }
    printf("RESULT ops_s=%.0f deliveries_s=%.0f expected=%" PRIu64 " delivered=%" PRIu64
           " p50_ms=%.3f p99_ms=%.3f\n",
           (double)published / secs, (double)delivered / secs, published * (uint64_t)nsub,
           delivered, s_hist_pct_ms(&h, 0.5), s_hist_pct_ms(&h, 0.99));
    for (int i = 0; i < nsub; i++)
        close(sp[i].fd);
    for (int i = 0; i < npub; i++)
        close(pp[i].fd);
    return 0;
}

/* ==== PostgreSQL LISTEN/NOTIFY ==== */

typedef struct {
    const char *conninfo;
    int64_t end;
    uint64_t done;
    s_hist_t lat; /* commit round trip */
} s_pgpub_t;

static void *
s_pgpub(void *arg)
{
    s_pgpub_t *p = arg;
    PGconn *c = PQconnectdb(p->conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        s_die(PQerrorMessage(c));
    char sql[256];
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (s_now_us() < p->end) {
        int64_t t = s_now_us();
        long cust = 1 + (long)(rand_r(&seed) % 1000);
        snprintf(sql, sizeof sql,
                 "BEGIN; INSERT INTO activities (customer_id, type, summary) VALUES (%ld, 'call', "
                 "'bench call'); SELECT pg_notify('feed', '%" PRId64 "'); COMMIT",
                 cust, t);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            s_die(PQresultErrorMessage(r));
        PQclear(r);
        s_hist_add(&p->lat, s_now_us() - t);
        p->done++;
    }
    PQfinish(c);
    return NULL;
}

static int
s_pg_notify(const char *conninfo, int nsub, int npub, double secs)
{
    PGconn **subs = calloc((size_t)nsub, sizeof *subs);
    struct pollfd *sp = calloc((size_t)nsub, sizeof *sp);
    for (int i = 0; i < nsub; i++) {
        subs[i] = PQconnectdb(conninfo);
        if (PQstatus(subs[i]) != CONNECTION_OK)
            s_die(PQerrorMessage(subs[i]));
        PGresult *r = PQexec(subs[i], "LISTEN feed");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            s_die(PQresultErrorMessage(r));
        PQclear(r);
        sp[i] = (struct pollfd){PQsocket(subs[i]), POLLIN, 0};
    }
    s_hist_t h;
    s_hist_init(&h);
    int64_t t0 = s_now_us(), end = t0 + (int64_t)(secs * 1e6), drain_end = end + 500000;
    s_pgpub_t *pubs = calloc((size_t)npub, sizeof *pubs);
    pthread_t *th = calloc((size_t)npub, sizeof *th);
    for (int i = 0; i < npub; i++) {
        pubs[i].conninfo = conninfo;
        pubs[i].end = end;
        s_hist_init(&pubs[i].lat);
        pthread_create(&th[i], NULL, s_pgpub, &pubs[i]);
    }
    uint64_t delivered = 0;
    while (s_now_us() < drain_end) {
        if (poll(sp, (nfds_t)nsub, 10) <= 0)
            continue;
        int64_t now = s_now_us();
        for (int i = 0; i < nsub; i++) {
            if (!(sp[i].revents & POLLIN))
                continue;
            PQconsumeInput(subs[i]);
            PGnotify *n;
            while ((n = PQnotifies(subs[i]))) {
                s_hist_add(&h, now - strtoll(n->extra, NULL, 10));
                delivered++;
                PQfreemem(n);
            }
        }
    }
    uint64_t published = 0;
    s_hist_t wl;
    s_hist_init(&wl);
    for (int i = 0; i < npub; i++) {
        pthread_join(th[i], NULL);
        published += pubs[i].done;
        for (int b = 0; b <= HMAX; b++)
            wl.b[b] += pubs[i].lat.b[b];
        wl.n += pubs[i].lat.n;
    }
    printf("RESULT ops_s=%.0f deliveries_s=%.0f expected=%" PRIu64 " delivered=%" PRIu64
           " p50_ms=%.3f p99_ms=%.3f write_p99_ms=%.3f\n",
           (double)published / secs, (double)delivered / secs, published * (uint64_t)nsub,
           delivered, s_hist_pct_ms(&h, 0.5), s_hist_pct_ms(&h, 0.99), s_hist_pct_ms(&wl, 0.99));
    for (int i = 0; i < nsub; i++)
        PQfinish(subs[i]);
    return 0;
}

/* ==== bare CURVE: the server runs in a child process so its CPU can be read ==== */

static char s_srv_pub[41], s_srv_sec[41];

static void *
s_curve_socket(void *ctx, int type, int server)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (server) {
        int one = 1;
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, s_srv_sec, 40);
    } else {
        char pub[41], sec[41];
        zmq_curve_keypair(pub, sec);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, s_srv_pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    return s;
}

/* Fork the server; it writes its endpoint to the pipe and runs FN until SIGTERM
   or its own deadline. Returns the child's pid and fills EP. */
static volatile sig_atomic_t s_stop;
static void
s_on_term(int sig)
{
    (void)sig;
    s_stop = 1;
}

static pid_t
s_fork_server(void (*fn)(int wfd, int nsub, int rate, double secs), int nsub, int rate,
              double secs, char *ep, size_t eplen)
{
    int fds[2];
    if (pipe(fds) < 0)
        s_die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        s_die("fork");
    if (pid == 0) {
        close(fds[0]);
        signal(SIGTERM, s_on_term);
        fn(fds[1], nsub, rate, secs);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], ep, eplen - 1);
    if (n <= 0)
        s_die("server did not start");
    ep[n] = '\0';
    close(fds[0]);
    return pid;
}

static void
s_echo_server(int wfd, int nsub, int rate, double secs)
{
    (void)nsub;
    (void)rate;
    void *ctx = zmq_ctx_new();
    void *s = s_curve_socket(ctx, ZMQ_ROUTER, 1);
    char ep[256];
    size_t eplen = sizeof ep;
    zmq_bind(s, "tcp://127.0.0.1:*");
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &eplen);
    if (write(wfd, ep, strlen(ep)) < 0)
        _exit(1);
    close(wfd);
    int64_t end = s_now_us() + (int64_t)((secs + 5) * 1e6);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    while (!s_stop && s_now_us() < end) {
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        for (int k = 0; k < 64; k++) { /* drain what is there */
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, s, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                break;
            }
            zmq_msg_init(&body);
            zmq_msg_recv(&body, s, 0);
            zmq_msg_send(&id, s, ZMQ_SNDMORE);
            zmq_msg_send(&body, s, 0);
        }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}

typedef struct {
    void *ctx;
    const char *ep;
    int n;
    int64_t start, end;
    uint64_t done;
    s_hist_t lat;
} s_echo_t;

static void *
s_echo_client(void *arg)
{
    s_echo_t *e = arg;
    void **socks = calloc((size_t)e->n, sizeof *socks);
    int64_t *sent = calloc((size_t)e->n, sizeof *sent);
    zmq_pollitem_t *it = calloc((size_t)e->n, sizeof *it);
    char msg[200];
    memset(msg, 'x', sizeof msg);
    for (int i = 0; i < e->n; i++) {
        socks[i] = s_curve_socket(e->ctx, ZMQ_DEALER, 0);
        zmq_connect(socks[i], e->ep);
        it[i] = (zmq_pollitem_t){socks[i], 0, ZMQ_POLLIN, 0};
    }
    while (s_now_us() < e->start)
        usleep(1000);
    for (int i = 0; i < e->n; i++) {
        sent[i] = s_now_us();
        zmq_send(socks[i], msg, sizeof msg, 0);
    }
    while (s_now_us() < e->end) {
        if (zmq_poll(it, e->n, 100) <= 0)
            continue;
        int64_t now = s_now_us();
        for (int i = 0; i < e->n; i++) {
            if (!(it[i].revents & ZMQ_POLLIN))
                continue;
            char rb[256];
            if (zmq_recv(socks[i], rb, sizeof rb, 0) < 0)
                continue;
            s_hist_add(&e->lat, now - sent[i]);
            e->done++;
            sent[i] = s_now_us();
            zmq_send(socks[i], msg, sizeof msg, 0);
        }
    }
    for (int i = 0; i < e->n; i++)
        zmq_close(socks[i]);
    free(socks);
    free(sent);
    free(it);
    return NULL;
}

static int
s_curve_echo(int clients, int threads, double secs)
{
    char ep[256];
    pid_t pid = s_fork_server(s_echo_server, 0, 0, secs, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    s_echo_t *e = calloc((size_t)threads, sizeof *e);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    int64_t start = s_now_us() + 300000; /* handshakes first */
    for (int i = 0; i < threads; i++) {
        e[i] = (s_echo_t){ctx, ep, clients / threads + (i < clients % threads), start,
                          start + (int64_t)(secs * 1e6), 0, {0}};
        s_hist_init(&e[i].lat);
        pthread_create(&th[i], NULL, s_echo_client, &e[i]);
    }
    while (s_now_us() < start)
        usleep(1000);
    int64_t cpu0 = s_cpu_us(pid);
    uint64_t done = 0;
    s_hist_t all;
    s_hist_init(&all);
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        done += e[i].done;
        for (int b = 0; b <= HMAX; b++)
            all.b[b] += e[i].lat.b[b];
        all.n += e[i].lat.n;
    }
    int64_t cpu1 = s_cpu_us(pid);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    zmq_ctx_term(ctx);
    printf("RESULT ops_s=%.0f p50_ms=%.3f p99_ms=%.3f server_cpu_us=%.1f\n",
           (double)done / secs, s_hist_pct_ms(&all, 0.5), s_hist_pct_ms(&all, 0.99),
           done ? (double)(cpu1 - cpu0) / (double)done : 0.0);
    return 0;
}

/* sealed-pubsub: events per message and the class key (set before the fork) */
static int s_batch;
static unsigned char s_class_key[crypto_secretbox_KEYBYTES];
#define EVENT_BYTES 200

static void *
s_pub_socket(void *ctx, int type, int server)
{
    if (s_batch > 0) { /* sealed once per class: no CURVE on the socket */
        void *s = zmq_socket(ctx, type);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        return s;
    }
    return s_curve_socket(ctx, type, server);
}

static void
s_pub_server(int wfd, int nsub, int rate, double secs)
{
    void *ctx = zmq_ctx_new();
    void *s = s_pub_socket(ctx, ZMQ_XPUB, 1);
    int hwm = 100000;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    char ep[256];
    size_t eplen = sizeof ep;
    zmq_bind(s, "tcp://127.0.0.1:*");
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &eplen);
    if (write(wfd, ep, strlen(ep)) < 0)
        _exit(1);
    close(wfd);
    /* wait for every subscriber's subscription (XPUB passes each one up) */
    int subs = 0;
    int64_t give_up = s_now_us() + 10000000;
    while (subs < nsub && !s_stop && s_now_us() < give_up) {
        char b[64];
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0 && zmq_recv(s, b, sizeof b, 0) > 0 && b[0] == 1)
            subs++;
    }
    usleep(200000);
    int64_t start = s_now_us(), end = start + (int64_t)(secs * 1e6);
    int64_t gap = 1000000 / (rate > 0 ? rate : 1);
    int nev = s_batch > 0 ? s_batch : 1;
    size_t plain = (size_t)nev * EVENT_BYTES;
    unsigned char *msg = malloc(plain), *box = malloc(crypto_secretbox_NONCEBYTES +
                                                     crypto_secretbox_MACBYTES + plain);
    if (!msg || !box)
        _exit(1);
    memset(msg, 'x', plain);
    for (int64_t k = 0; !s_stop && s_now_us() < end; k++) {
        int64_t due = start + k * gap, now;
        while ((now = s_now_us()) < due)
            usleep((useconds_t)(due - now > 50 ? due - now - 20 : 1));
        char stamp[24];
        snprintf(stamp, sizeof stamp, "%016" PRId64, s_now_us());
        for (int e = 0; e < nev; e++)
            memcpy(msg + (size_t)e * EVENT_BYTES, stamp, 16);
        if (s_batch > 0) { /* one seal, shared by every subscriber's pipe */
            randombytes_buf(box, crypto_secretbox_NONCEBYTES);
            crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, msg, plain, box,
                                  s_class_key);
            zmq_send(s, box, crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plain, 0);
        } else {
            zmq_send(s, msg, plain, 0);
        }
    }
    while (!s_stop) /* until the parent has read our CPU time */
        usleep(10000);
    free(msg);
    free(box);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* One message's events: their latencies into H; returns how many, 0 if it is not
   one of ours (short, or a seal that does not open) */
static int
s_pub_events(const unsigned char *b, size_t n, int64_t now, s_hist_t *h)
{
    unsigned char plain[64 * EVENT_BYTES + 1];
    const unsigned char *ev = b;
    size_t len = n;
    if (s_batch > 0) {
        size_t over = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
        if (n < over + EVENT_BYTES || n - over > sizeof plain - 1 ||
            crypto_secretbox_open_easy(plain, b + crypto_secretbox_NONCEBYTES,
                                       n - crypto_secretbox_NONCEBYTES, b, s_class_key) != 0)
            return 0;
        ev = plain;
        len = n - over;
    } else if (n < 16) {
        return 0;
    }
    int count = 0;
    for (size_t off = 0; off + 16 <= len; off += EVENT_BYTES, count++) {
        char stamp[17];
        memcpy(stamp, ev + off, 16);
        stamp[16] = '\0';
        s_hist_add(h, now - strtoll(stamp, NULL, 10));
    }
    return count;
}

static int
s_curve_pubsub(int nsub, int rate, double secs)
{
    char ep[256];
    pid_t pid = s_fork_server(s_pub_server, nsub, rate, secs, ep, sizeof ep);
    void *ctx = zmq_ctx_new();
    void **socks = calloc((size_t)nsub, sizeof *socks);
    zmq_pollitem_t *it = calloc((size_t)nsub, sizeof *it);
    for (int i = 0; i < nsub; i++) {
        socks[i] = s_pub_socket(ctx, ZMQ_SUB, 0);
        int hwm = 100000;
        zmq_setsockopt(socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(socks[i], ZMQ_SUBSCRIBE, "", 0);
        zmq_connect(socks[i], ep);
        it[i] = (zmq_pollitem_t){socks[i], 0, ZMQ_POLLIN, 0};
    }
    s_hist_t h;
    s_hist_init(&h);
    uint64_t delivered = 0;
    int64_t cpu0 = s_cpu_us(pid), t_first = 0, t_last = 0;
    int64_t end = s_now_us() + (int64_t)((secs + 11.5) * 1e6), idle_since = 0;
    while (s_now_us() < end) {
        if (zmq_poll(it, nsub, 50) <= 0) {
            /* done when deliveries have started and then stopped for 0.5 s */
            if (t_first && !idle_since)
                idle_since = s_now_us();
            if (idle_since && s_now_us() - idle_since > 500000)
                break;
            continue;
        }
        idle_since = 0;
        int64_t now = s_now_us();
        if (!t_first)
            t_first = now;
        t_last = now;
        for (int i = 0; i < nsub; i++) {
            if (!(it[i].revents & ZMQ_POLLIN))
                continue;
            unsigned char b[64 * EVENT_BYTES + 64];
            int n;
            while ((n = zmq_recv(socks[i], b, sizeof b, ZMQ_DONTWAIT)) >= 0)
                delivered += (uint64_t)s_pub_events(b, n > (int)sizeof b ? sizeof b : (size_t)n,
                                                    now, &h);
        }
    }
    int64_t cpu1 = s_cpu_us(pid);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < nsub; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(ctx);
    /* unpaced, the subscribers drain a backlog after the publisher stops: the rate is
       over the time deliveries took, not the time the publisher sent */
    double span = (double)(t_last - t_first) / 1e6;
    printf("RESULT deliveries_s=%.0f delivered=%" PRIu64 " p50_ms=%.3f p99_ms=%.3f "
           "server_cpu_us=%.2f\n",
           (double)delivered / (span > secs ? span : secs), delivered, s_hist_pct_ms(&h, 0.5), s_hist_pct_ms(&h, 0.99),
           delivered ? (double)(cpu1 - cpu0) / (double)delivered : 0.0);
    return 0;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc == 6 && !strcmp(argv[1], "redis-pubsub"))
        return s_redis_pubsub(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    if (argc == 6 && !strcmp(argv[1], "pg-notify"))
        return s_pg_notify(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    zmq_curve_keypair(s_srv_pub, s_srv_sec);
    if (argc == 5 && !strcmp(argv[1], "curve-echo"))
        return s_curve_echo(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "curve-pubsub"))
        return s_curve_pubsub(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "sealed-pubsub") && atoi(argv[5]) >= 1 &&
        atoi(argv[5]) <= 64) {
        if (sodium_init() < 0)
            s_die("sodium_init");
        s_batch = atoi(argv[5]);
        crypto_secretbox_keygen(s_class_key);
        return s_curve_pubsub(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    }
    fprintf(stderr, "usage: bench-others redis-pubsub PORT SUBS PUBS SECONDS\n"
                    "       bench-others pg-notify CONNINFO SUBS PUBS SECONDS\n"
                    "       bench-others curve-echo CLIENTS THREADS SECONDS\n"
                    "       bench-others curve-pubsub SUBS RATE SECONDS\n"
                    "       bench-others sealed-pubsub SUBS RATE SECONDS BATCH (1-64)\n");
    return 2;
}
