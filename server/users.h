/*  =========================================================================
    users - the people who may connect, stored in the "users" column family

    Owns:      the users key layout: "u/<name>" -> packed User,
               "k/<32-byte public key>" -> name.
    Must not:  know about sockets or sessions.
    =========================================================================
*/
#ifndef USERS_H
#define USERS_H
#include <stdint.h>

#include "crm.pb-c.h"
#include "entities.pb-c.h"
#include "store.h"

#define USERS_NAME_MAX 64

/* Look a user up by name / by Curve public key. Caller frees with users_free(). */
crm_err_t users_get_by_name(store_t *store, const char *name, Crm__User **out);
crm_err_t users_get_by_key(store_t *store, const uint8_t pub[32], Crm__User **out);
/* Free a user from users_get_*; NULL-safe; sets *user_p = NULL. */
void users_free(Crm__User **user_p);
/* Check a user name: 1-64 characters of [a-z0-9._-], starting with a letter. */
crm_err_t users_check_name(const char *name, char *errbuf);
/* The admin operations on users, one implementation for the server's
   handlers and for crm-admin on a stopped data dir. */
typedef enum { USERS_ADD, USERS_SET, USERS_ROTATE } users_op_t;

/* Apply OP as described by REQ (crm.proto UserRequest) on behalf of ACTOR, as
   one mutation in G with its change-log and audit entries. On success
   *result (if not NULL) gets the user as it will be stored (caller frees with
   users_free()). */
crm_err_t users_apply(store_t *store, store_group_t *g, const Crm__User *actor, users_op_t op,
                      const Crm__UserRequest *req, Crm__User **result, char *errbuf);
/* Every user, by name. Caller frees each with users_free() and the array with free(). */
crm_err_t users_list(store_t *store, Crm__User ***out, size_t *n);

#endif
