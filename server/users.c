/*  users - user records in the "users" column family */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crm.pb-c.h"
#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "crm_time.h"

static size_t
s_name_key(const char *name, char key[2 + USERS_NAME_MAX + 1])
{
    size_t n = strlen(name);
    if (n > USERS_NAME_MAX)
        n = USERS_NAME_MAX;
    key[0] = 'u';
    key[1] = '/';
    memcpy(key + 2, name, n);
    return 2 + n;
}

static void
s_pub_key(const uint8_t pub[32], uint8_t key[34])
{
    key[0] = 'k';
    key[1] = '/';
    memcpy(key + 2, pub, 32);
}

static crm_err_t
s_decode(const store_val_t *val, Crm__User **out)
{
    char errbuf[CRM_ERRBUF];
    crm_err_t rc = crm_proto_unpack(&crm__user__descriptor, (const uint8_t *)val->data, val->len,
                                    (ProtobufCMessage **)out, errbuf);
    if (rc != CRM_OK) {
        crm_log(CRM_LOG_ERROR, "users: stored user record is corrupt: %s", errbuf);
        return CRM_ERR_INTERNAL;
    }
    return CRM_OK;
}

/* The user NAME as the writer's group sees it (staged changes included). */
static crm_err_t
s_group_get_by_name(store_group_t *g, const char *name, Crm__User **out)
{
    char key[2 + USERS_NAME_MAX + 1];
    store_val_t val = {0};
    *out = NULL;
    crm_err_t rc = store_group_get(g, STORE_CF_USERS, key, s_name_key(name, key), &val);
    if (rc == CRM_OK)
        rc = s_decode(&val, out);
    store_val_release(&val);
    return rc;
}

/* User records as last read from the store, per thread (the server thread
   reads the caller's on every request, the ZAP thread on every handshake):
   spares the store's read, not the decode. An entry holds while no write to
   the users column family has landed since it was read (store_cf_changes,
   taken before the read), so a disabled, removed or rotated user is seen
   at once, as without it. A thread reading through a view (a worker's
   snapshot) neither uses nor fills it: what it reads may be older than the
   count says. */
#define USERS_CACHED 32
#define USERS_CACHED_BYTES 384
static _Thread_local struct {
    const store_t *store; /* NULL: empty */
    uint64_t changes;     /* store_cf_changes(STORE_CF_USERS) before the read */
    char name[USERS_NAME_MAX + 1];
    size_t len;
    uint8_t packed[USERS_CACHED_BYTES];
} s_cached[USERS_CACHED];

static unsigned
s_cache_slot(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % USERS_CACHED;
}

crm_err_t
users_get_by_name(store_t *store, const char *name, Crm__User **out)
{
    char key[2 + USERS_NAME_MAX + 1];
    store_val_t val = {0};
    *out = NULL;
    uint64_t changes = store_cf_changes(STORE_CF_USERS);
    size_t nlen = strlen(name);
    unsigned slot = s_cache_slot(name);
    bool cached = !store_in_view();
    if (cached && s_cached[slot].store == store && s_cached[slot].changes == changes &&
        nlen <= USERS_NAME_MAX && !memcmp(s_cached[slot].name, name, nlen + 1)) {
        val.data = (char *)s_cached[slot].packed;
        val.len = s_cached[slot].len;
        return s_decode(&val, out); /* val is not the store's: nothing to release */
    }
    crm_err_t rc = store_get(store, STORE_CF_USERS, key, s_name_key(name, key), &val);
    if (rc == CRM_OK)
        rc = s_decode(&val, out);
    if (cached && rc == CRM_OK && nlen <= USERS_NAME_MAX && val.len <= USERS_CACHED_BYTES) {
        s_cached[slot].store = store;
        s_cached[slot].changes = changes;
        memcpy(s_cached[slot].name, name, nlen + 1);
        memcpy(s_cached[slot].packed, val.data, val.len);
        s_cached[slot].len = val.len;
    }
    store_val_release(&val);
    return rc;
}

/* Public key -> user name, per thread (the server thread and the ZAP handler
   resolve a key on every request): spares the first of the two gets below.
   Only a hint: the user record is still read fresh every time and must hold
   the key, else the full lookup runs, so a rotated, removed or disabled user
   is refused exactly as without it. */
#define USERS_KEY_HINTS 64
static _Thread_local struct {
    uint8_t pub[32];
    char name[USERS_NAME_MAX + 1];
} s_key_hint[USERS_KEY_HINTS];

crm_err_t
users_get_by_key(store_t *store, const uint8_t pub[32], Crm__User **out)
{
    uint8_t key[34];
    store_val_t val = {0};
    char name[USERS_NAME_MAX + 1];
    *out = NULL;
    unsigned slot = ((unsigned)pub[0] | (unsigned)pub[1] << 8) % USERS_KEY_HINTS;
    if (s_key_hint[slot].name[0] && !memcmp(s_key_hint[slot].pub, pub, 32)) {
        if (users_get_by_name(store, s_key_hint[slot].name, out) == CRM_OK) {
            if ((*out)->public_key.len == 32 && !memcmp((*out)->public_key.data, pub, 32))
                return CRM_OK;
            users_free(out);
        }
        s_key_hint[slot].name[0] = '\0'; /* stale: look it up */
    }
    s_pub_key(pub, key);
    crm_err_t rc = store_get(store, STORE_CF_USERS, key, sizeof key, &val);
    if (rc != CRM_OK)
        return rc;
    if (val.len == 0 || val.len > USERS_NAME_MAX) {
        store_val_release(&val);
        return CRM_ERR_INTERNAL;
    }
    memcpy(name, val.data, val.len);
    name[val.len] = '\0';
    store_val_release(&val);
    rc = users_get_by_name(store, name, out);
    /* the key index must point at a user who still holds that key */
    if (rc == CRM_OK && ((*out)->public_key.len != 32 || memcmp((*out)->public_key.data, pub, 32))) {
        users_free(out);
        rc = CRM_ERR_NOT_FOUND;
    }
    if (rc == CRM_OK) {
        memcpy(s_key_hint[slot].pub, pub, 32);
        memcpy(s_key_hint[slot].name, name, strlen(name) + 1);
    }
    return rc;
}

void
users_free(Crm__User **user_p)
{
    crm_proto_free((ProtobufCMessage **)user_p);
}

crm_err_t
users_check_name(const char *name, char *errbuf)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n <= USERS_NAME_MAX && name[0] >= 'a' && name[0] <= 'z';
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    }
    if (!ok) {
        snprintf(errbuf, CRM_ERRBUF,
                 "invalid user name '%.80s': use 1-64 of a-z 0-9 . _ -, starting with a letter",
                 name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

/* ==== Admin operations ==== */

static const char *
s_enum_text(const ProtobufCEnumDescriptor *ed, int v, char *buf, size_t n)
{
    crm_record_enum_name(ed, v, buf, n);
    if (!*buf)
        snprintf(buf, n, "-");
    return buf;
}

/* Stage the audit entry of a user change. */
static void
s_audit(store_t *store, store_group_t *g, const Crm__User *actor, const char *action,
        const Crm__User *old, const Crm__User *now, uint64_t seq)
{
    Crm__AuditEntry entry = CRM__AUDIT_ENTRY__INIT;
    Crm__FieldChange ch[4], *chp[4];
    char bufs[8][64];
    size_t n = 0;
    entry.time = now->updated_at;
    entry.user = actor->name;
    entry.department = actor->department;
    entry.role = actor->role;
    entry.kind = (char *)"user";
    entry.id = now->name;
    entry.action = (char *)action;
    entry.seq = seq;
    const char *vals[4][2] = {
        {s_enum_text(&crm__department__descriptor, old ? old->department : 0, bufs[0], 64),
         s_enum_text(&crm__department__descriptor, now->department, bufs[1], 64)},
        {s_enum_text(&crm__role__descriptor, old ? old->role : 0, bufs[2], 64),
         s_enum_text(&crm__role__descriptor, now->role, bufs[3], 64)},
        {old && old->enabled ? "yes" : "no", now->enabled ? "yes" : "no"},
        {bufs[4], bufs[5]},
    };
    static const char *const names[4] = {"department", "role", "enabled", "public_key"};
    crm_keys_to_z85_safe(old ? old->public_key.data : NULL, bufs[4]);
    crm_keys_to_z85_safe(now->public_key.data, bufs[5]);
    for (size_t i = 0; i < 4; i++) {
        if (old && !strcmp(vals[i][0], vals[i][1]))
            continue;
        crm__field_change__init(&ch[n]);
        ch[n].field = (char *)names[i];
        ch[n].old_value = (char *)(old ? vals[i][0] : "");
        ch[n].new_value = (char *)vals[i][1];
        chp[n] = &ch[n];
        n++;
    }
    entry.changes = chp;
    entry.n_changes = n;
    audit_stage(g, store, &entry, NULL, 0);
}

/* Stage NOW (replacing OLD, NULL for a new user) as one mutation. */
static crm_err_t
s_stage(store_t *store, store_group_t *g, const Crm__User *actor, const char *action,
        const Crm__User *old, Crm__User *now, char *errbuf)
{
    char nkey[2 + USERS_NAME_MAX + 1];
    uint8_t kkey[34];
    store_val_t val = {0};
    size_t nlen = s_name_key(now->name, nkey);
    bool new_key = !old || memcmp(old->public_key.data, now->public_key.data, 32);
    s_pub_key(now->public_key.data, kkey);
    if (new_key) {
        crm_err_t rc = store_group_get(g, STORE_CF_USERS, kkey, sizeof kkey, &val);
        store_val_release(&val);
        if (rc == CRM_OK) {
            snprintf(errbuf, CRM_ERRBUF, "that public key already belongs to a user");
            return CRM_ERR_ALREADY_EXISTS;
        }
        if (rc != CRM_ERR_NOT_FOUND)
            return rc;
    }
    store_group_begin(g);
    int64_t now_ms = crm_time_now_ms();
    now->version = old ? old->version + 1 : 1;
    now->updated_at = now_ms;
    if (now->updated_by != protobuf_c_empty_string) /* copied from OLD: ours to free */
        crm_proto_release(now->updated_by);
    now->updated_by = actor->name; /* lent: users_apply() takes it back */
    if (!old) {
        now->created_at = now_ms;
        now->created_by = actor->name;
    }
    size_t plen, elen;
    uint8_t *packed = crm_proto_pack(&now->base, &plen);
    store_group_put(g, STORE_CF_USERS, nkey, nlen, packed, plen);
    free(packed);
    if (new_key) {
        if (old) {
            uint8_t okey[34];
            s_pub_key(old->public_key.data, okey);
            store_group_delete(g, STORE_CF_USERS, okey, sizeof okey);
        }
        store_group_put(g, STORE_CF_USERS, kkey, sizeof kkey, now->name, strlen(now->name));
    }
    Crm__Change change = CRM__CHANGE__INIT;
    Crm__ChangePart part = CRM__CHANGE_PART__INIT, *parts[1] = {&part};
    change.time = now_ms;
    change.actor = actor->name;
    change.actor_department = actor->department;
    part.kind = (char *)"user";
    part.id = now->name;
    part.op = old ? CRM__CHANGE_OP__UPDATE : CRM__CHANGE_OP__CREATE;
    change.parts = parts;
    change.n_parts = 1;
    uint8_t *event = crm_proto_pack(&change.base, &elen);
    uint64_t seq = store_group_end(g, event, elen);
    free(event);
    s_audit(store, g, actor, action, old, now, seq);
    return CRM_OK;
}

static crm_err_t
s_check_role(const Crm__User *u, char *errbuf)
{
    bool admin = u->role == CRM__ROLE__ADMIN || u->role == CRM__ROLE__REPLICA;
    if (u->role == CRM__ROLE__ROLE_NONE ||
        (!admin && u->department == CRM__DEPARTMENT__DEPARTMENT_NONE)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "user '%s' needs a role (staff, manager, admin, replica) and, unless admin or "
                 "replica, a department "
                 "(sales, support, marketing)",
                 u->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

crm_err_t
users_apply(store_t *store, store_group_t *g, const Crm__User *actor, users_op_t op,
            const Crm__UserRequest *req, Crm__User **result, char *errbuf)
{
    crm_err_t rc;
    Crm__User *old = NULL, *now = NULL;
    if (result)
        *result = NULL;
    if ((rc = users_check_name(req->name, errbuf)) != CRM_OK)
        return rc;
    if (op != USERS_SET && req->public_key.len != 32) {
        snprintf(errbuf, CRM_ERRBUF, "a public key of 32 bytes is required");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    /* through the group: two changes to one user in one commit must see each other */
    rc = s_group_get_by_name(g, req->name, &old);
    if (op == USERS_ADD && rc == CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "user '%s' already exists", req->name);
        rc = CRM_ERR_ALREADY_EXISTS;
        goto cleanup;
    }
    if (op != USERS_ADD && rc == CRM_ERR_NOT_FOUND) {
        snprintf(errbuf, CRM_ERRBUF, "no user '%.64s' (see 'crm-admin user list')", req->name);
        goto cleanup;
    }
    if (rc != CRM_OK && rc != CRM_ERR_NOT_FOUND)
        goto cleanup;
    /* the new state: a copy of the old one with the request applied */
    if (old) {
        size_t len;
        uint8_t *packed = crm_proto_pack(&old->base, &len);
        rc = crm_proto_unpack(&crm__user__descriptor, packed, len, (ProtobufCMessage **)&now,
                              errbuf);
        free(packed);
        if (rc != CRM_OK)
            goto cleanup;
    } else {
        now = (Crm__User *)crm_proto_new(&crm__user__descriptor);
        now->name = crm_proto_strdup(req->name);
        now->enabled = true;
    }
    if (op == USERS_ADD || req->set_department)
        now->department = req->department;
    if (op == USERS_ADD || req->set_role)
        now->role = req->role;
    if (op == USERS_SET && req->set_enabled)
        now->enabled = req->enabled;
    if (op != USERS_SET) {
        if (now->public_key.data != NULL && now->public_key.len)
            crm_proto_release(now->public_key.data);
        now->public_key.data = crm_proto_alloc(32);
        memcpy(now->public_key.data, req->public_key.data, 32);
        now->public_key.len = 32;
    }
    if ((rc = s_check_role(now, errbuf)) != CRM_OK)
        goto cleanup;
    /* an admin must not lock themselves out */
    if (old && !strcmp(old->name, actor->name) &&
        (!now->enabled || now->role != CRM__ROLE__ADMIN)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "refusing to disable or demote yourself ('%s'): ask another admin", actor->name);
        rc = CRM_ERR_INVALID_ARGUMENT;
        goto cleanup;
    }
    /* ... nor anyone leave the server without an enabled admin (offline, with --data, no
       one is "yourself": the last admin could be disabled there) */
    if (old && old->enabled && old->role == CRM__ROLE__ADMIN &&
        (!now->enabled || now->role != CRM__ROLE__ADMIN)) {
        Crm__User **all = NULL;
        size_t n = 0, others = 0;
        if (users_list(store, &all, &n) == CRM_OK)
            for (size_t i = 0; i < n; i++)
                others += all[i]->enabled && all[i]->role == CRM__ROLE__ADMIN &&
                          strcmp(all[i]->name, old->name);
        for (size_t i = 0; i < n; i++)
            users_free(&all[i]);
        free(all);
        if (!others) {
            snprintf(errbuf, CRM_ERRBUF,
                     "refusing to disable or demote '%s', the last enabled admin: add or "
                     "enable another admin first",
                     old->name);
            rc = CRM_ERR_INVALID_ARGUMENT;
            goto cleanup;
        }
    }
    static const char *const actions[] = {"user add", "user set", "user rotate-key"};
    /* updated_by / created_by point into ACTOR until packed: stage at once */
    rc = s_stage(store, g, actor, actions[op], old, now, errbuf);
    if (rc == CRM_OK && result) {
        size_t len;
        uint8_t *packed = crm_proto_pack(&now->base, &len);
        rc = crm_proto_unpack(&crm__user__descriptor, packed, len, (ProtobufCMessage **)result,
                              errbuf);
        free(packed);
    }
cleanup:
    if (now) { /* the actor's name was lent, not copied */
        if (now->updated_by == actor->name)
            now->updated_by = (char *)protobuf_c_empty_string;
        if (now->created_by == actor->name)
            now->created_by = (char *)protobuf_c_empty_string;
    }
    users_free(&old);
    users_free(&now);
    return rc;
}

crm_err_t
users_list(store_t *store, Crm__User ***out, size_t *n)
{
    store_iter_t *it = store_iter_new(store, STORE_CF_USERS);
    size_t cap = 0;
    crm_err_t rc = CRM_OK;
    *out = NULL;
    *n = 0;
    for (store_iter_seek(it, "u/", 2); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = store_iter_key(it, &klen);
        if (klen < 2 || memcmp(k, "u/", 2))
            break;
        const char *v = store_iter_value(it, &vlen);
        if (!v) {
            rc = CRM_ERR_STORAGE; /* does not open: logged and counted */
            break;
        }
        store_val_t val = {(char *)v, vlen};
        Crm__User *u = NULL;
        if ((rc = s_decode(&val, &u)) != CRM_OK)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = realloc(*out, cap * sizeof **out);
            CRM_ASSERT_ALLOC(*out);
        }
        (*out)[(*n)++] = u;
    }
    store_iter_destroy(&it);
    return rc;
}
