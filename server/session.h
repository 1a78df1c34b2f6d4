/*  =========================================================================
    session - who is asking: resolve a request's authenticated identity

    Owns:      turning the ZAP-assigned User-Id (the Curve public key, Z85) of
               a request into an enabled user, on every request.
    Must not:  trust the ZeroMQ routing id (RELIABILITY.md trap 2).

    Why on every request: libzmq 4.3.4 cannot drop one peer of a ROUTER, so
    a user disabled, or whose key was rotated, while connected is refused on
    their next request instead. The User-Id is the public key rather than the
    name so that a rotated key stops working on open connections too.
    =========================================================================
*/
#ifndef SESSION_H
#define SESSION_H

#include "entities.pb-c.h"
#include "store.h"

typedef struct {
    Crm__User *user; /* owned; NULL until resolved */
} session_t;

/* Resolve USER_ID (Z85 public key from the request's metadata) into an
   enabled user. CRM_ERR_UNAUTHENTICATED with a message otherwise. */
crm_err_t session_resolve(session_t *self, store_t *store, const char *user_id, char *errbuf);
/* Drop what session_resolve() filled in. */
void session_release(session_t *self);

#endif
