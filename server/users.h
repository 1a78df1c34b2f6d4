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
/* Stage the creation of USER in GROUP as one mutation by ACTOR. The caller
   fills name, department, role, public_key and enabled; version and times are
   set here. CRM_ERR_ALREADY_EXISTS if the name or key is taken. */
crm_err_t users_stage_create(store_group_t *group, Crm__User *user, const char *actor,
                             char *errbuf);

#endif
