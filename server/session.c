/*  session - resolve a request's authenticated identity */
#include "session.h"

#include <stdio.h>

#include "crm_keys.h"
#include "users.h"

crm_err_t
session_resolve(session_t *self, store_t *store, const char *user_id, char *errbuf)
{
    uint8_t pub[CRM_KEY_BYTES];
    self->user = NULL;
    if (!crm_keys_from_z85(user_id, pub)) {
        snprintf(errbuf, CRM_ERRBUF, "the connection carries no authenticated identity");
        return CRM_ERR_UNAUTHENTICATED;
    }
    crm_err_t rc = users_get_by_key(store, pub, &self->user);
    if (rc == CRM_ERR_NOT_FOUND) {
        snprintf(errbuf, CRM_ERRBUF,
                 "your key is no longer valid (rotated or removed); ask an admin for a new "
                 "enrollment");
        return CRM_ERR_UNAUTHENTICATED;
    }
    if (rc != CRM_OK) {
        snprintf(errbuf, CRM_ERRBUF, "cannot look up your user");
        return rc;
    }
    if (!self->user->enabled) {
        snprintf(errbuf, CRM_ERRBUF, "user '%s' is disabled; ask an admin to enable it",
                 self->user->name);
        users_free(&self->user);
        return CRM_ERR_UNAUTHENTICATED;
    }
    return CRM_OK;
}

void
session_release(session_t *self)
{
    users_free(&self->user);
}
