/*  users - user records in the "users" column family */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crm_proto.h"
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

crm_err_t
users_get_by_name(store_t *store, const char *name, Crm__User **out)
{
    char key[2 + USERS_NAME_MAX + 1];
    store_val_t val = {0};
    *out = NULL;
    crm_err_t rc = store_get(store, STORE_CF_USERS, key, s_name_key(name, key), &val);
    if (rc == CRM_OK)
        rc = s_decode(&val, out);
    store_val_release(&val);
    return rc;
}

crm_err_t
users_get_by_key(store_t *store, const uint8_t pub[32], Crm__User **out)
{
    uint8_t key[34];
    store_val_t val = {0};
    char name[USERS_NAME_MAX + 1];
    *out = NULL;
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

crm_err_t
users_stage_create(store_group_t *group, Crm__User *user, const char *actor, char *errbuf)
{
    crm_err_t rc = CRM_OK;
    char nkey[2 + USERS_NAME_MAX + 1];
    uint8_t kkey[34];
    store_val_t val = {0};
    uint8_t *packed = NULL, *event = NULL;

    if ((rc = users_check_name(user->name, errbuf)) != CRM_OK)
        return rc;
    if (user->public_key.len != 32) {
        snprintf(errbuf, CRM_ERRBUF, "user '%s': public key must be 32 bytes", user->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    size_t nlen = s_name_key(user->name, nkey);
    s_pub_key(user->public_key.data, kkey);
    store_group_begin(group);
    rc = store_group_get(group, STORE_CF_USERS, nkey, nlen, &val);
    store_val_release(&val);
    if (rc == CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "user '%s' already exists", user->name);
        rc = CRM_ERR_ALREADY_EXISTS;
        goto cleanup;
    }
    rc = store_group_get(group, STORE_CF_USERS, kkey, sizeof kkey, &val);
    store_val_release(&val);
    if (rc == CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "that public key already belongs to another user");
        rc = CRM_ERR_ALREADY_EXISTS;
        goto cleanup;
    }
    if (rc != CRM_ERR_NOT_FOUND)
        goto cleanup;
    rc = CRM_OK;

    int64_t now = crm_time_now_ms();
    user->version = 1;
    user->created_at = user->updated_at = now;
    user->created_by = user->updated_by = (char *)actor;
    size_t plen = 0, elen = 0;
    packed = crm_proto_pack(&user->base, &plen);
    store_group_put(group, STORE_CF_USERS, nkey, nlen, packed, plen);
    store_group_put(group, STORE_CF_USERS, kkey, sizeof kkey, user->name, strlen(user->name));

    Crm__Change change = CRM__CHANGE__INIT;
    char *fields[] = {(char *)"name", (char *)"department", (char *)"role",
                      (char *)"public_key", (char *)"enabled"};
    change.time = now;
    change.actor = (char *)actor;
    change.kind = (char *)"user";
    change.id = user->name;
    change.op = CRM__CHANGE_OP__CREATE;
    change.n_fields = sizeof fields / sizeof fields[0];
    change.fields = fields;
    event = crm_proto_pack(&change.base, &elen);
    store_group_end(group, event, elen);
cleanup:
    if (rc != CRM_OK)
        store_group_abort(group);
    free(packed);
    free(event);
    return rc;
}
