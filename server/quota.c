/*  quota - request rate and connection limits (see quota.h) */
#include "quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crm_keys.h"
#include "crm_log.h"

#define USERS_SLOTS 4096 /* open addressing; users are far fewer (keys ZAP admitted) */

typedef struct {
    char key[CRM_Z85_LEN + 1]; /* "" = free */
    uint32_t conns;            /* connections counted for this user */
    double tokens;             /* rate bucket */
    int64_t refilled_us;
} s_user_t;

typedef struct {
    bool open;     /* accepted, not yet closed */
    int user;      /* the s_user_t slot it is counted for, or -1 */
} s_conn_t;

struct quota {
    quota_config_t cfg;
    s_user_t *users;       /* USERS_SLOTS */
    s_conn_t *conns;       /* indexed by fd */
    size_t nconns;         /* entries in conns */
    size_t counted;        /* connections counted for a user */
};

quota_t *
quota_new(const quota_config_t *cfg)
{
    quota_t *self = calloc(1, sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->cfg = *cfg;
    self->users = calloc(USERS_SLOTS, sizeof *self->users);
    CRM_ASSERT_ALLOC(self->users);
    return self;
}

void
quota_destroy(quota_t **self_p)
{
    quota_t *self = *self_p;
    if (!self)
        return;
    free(self->users);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

static s_conn_t *
s_conn(quota_t *self, int fd)
{
    if (fd < 0 || fd > 1 << 20)
        return NULL;
    if ((size_t)fd >= self->nconns) {
        size_t n = (size_t)fd * 2 + 64;
        self->conns = realloc(self->conns, n * sizeof *self->conns);
        CRM_ASSERT_ALLOC(self->conns);
        for (size_t i = self->nconns; i < n; i++)
            self->conns[i] = (s_conn_t){false, -1};
        self->nconns = n;
    }
    return &self->conns[fd];
}

static int
s_user(quota_t *self, const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (uint32_t i = 0; i < USERS_SLOTS; i++) {
        uint32_t slot = (h + i) % USERS_SLOTS;
        s_user_t *u = &self->users[slot];
        if (!u->key[0]) {
            snprintf(u->key, sizeof u->key, "%s", key);
            u->tokens = self->cfg.rate;
            return (int)slot;
        }
        if (!strcmp(u->key, key))
            return (int)slot;
    }
    return -1; /* full: not limited (cannot happen with fewer users than slots) */
}

static void
s_uncount(quota_t *self, s_conn_t *c)
{
    if (c->user >= 0) {
        self->users[c->user].conns--;
        self->counted--;
    }
    c->user = -1;
}

void
quota_opened(quota_t *self, int fd)
{
    s_conn_t *c = s_conn(self, fd);
    if (!c)
        return;
    s_uncount(self, c); /* an fd reused before its close was seen */
    c->open = true;
}

void
quota_closed(quota_t *self, int fd)
{
    s_conn_t *c = s_conn(self, fd);
    if (!c)
        return;
    s_uncount(self, c);
    c->open = false;
}

void
quota_reset(quota_t *self)
{
    for (size_t i = 0; i < self->nconns; i++) {
        s_uncount(self, &self->conns[i]);
        self->conns[i].open = false;
    }
}

size_t
quota_connections(const quota_t *self)
{
    return self->counted;
}

crm_err_t
quota_admit(quota_t *self, int fd, const char *user_id, bool rated, int64_t now_us,
            char *errbuf)
{
    if (!user_id || !*user_id)
        return CRM_OK; /* unauthenticated: refused later, by the session check */
    int slot = s_user(self, user_id);
    if (slot < 0)
        return CRM_OK;
    s_user_t *u = &self->users[slot];
    s_conn_t *c = s_conn(self, fd);
    if (c && c->user < 0) { /* the connection's first request (or one refused so far) */
        if (self->cfg.conns_per_user && u->conns >= self->cfg.conns_per_user) {
            snprintf(errbuf, CRM_ERRBUF,
                     "too many connections: this user has %u open, the limit is %u "
                     "(crmd --max-conn-per-user); close one and try again",
                     u->conns, self->cfg.conns_per_user);
            return CRM_ERR_RESOURCE_EXHAUSTED;
        }
        if (self->cfg.conns && self->counted >= self->cfg.conns) {
            snprintf(errbuf, CRM_ERRBUF,
                     "too many connections: the server has %zu, the limit is %u "
                     "(crmd --max-conn); try again later",
                     self->counted, self->cfg.conns);
            return CRM_ERR_RESOURCE_EXHAUSTED;
        }
        c->user = slot;
        c->open = true;
        u->conns++;
        self->counted++;
    }
    if (self->cfg.rate && rated) {
        double elapsed = (double)(now_us - u->refilled_us) / 1e6;
        u->refilled_us = now_us;
        if (elapsed > 0) {
            u->tokens += elapsed * self->cfg.rate;
            if (u->tokens > self->cfg.rate)
                u->tokens = self->cfg.rate;
        }
        if (u->tokens < 1.0) {
            snprintf(errbuf, CRM_ERRBUF,
                     "too many requests: this user is over %u a second (crmd --max-rate); "
                     "slow down and try again",
                     self->cfg.rate);
            return CRM_ERR_RESOURCE_EXHAUSTED;
        }
        u->tokens -= 1.0;
    }
    return CRM_OK;
}
