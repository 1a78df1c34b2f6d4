/*  =========================================================================
    zap - the ZAP (RFC 27) handler: which Curve keys may connect

    Owns:      a thread with a REP socket on inproc://zeromq.zap.01 that
               admits only CURVE clients whose public key belongs to an
               enabled user, and names them by that key (the User-Id).
    Must not:  touch the request socket or write to the store.

    Fail closed: every Curve socket of the server sets a non-empty ZAP domain
    with ZMQ_ZAP_ENFORCE_DOMAIN, so if this handler is not running libzmq
    refuses every client instead of admitting all (RELIABILITY.md trap 1).
    Start it before binding.
    =========================================================================
*/
#ifndef ZAP_H
#define ZAP_H

#include "store.h"

#define ZAP_DOMAIN "oneview"

typedef struct zap zap_t;

/* Bind the handler in CTX and start its thread. Caller owns *out. */
crm_err_t zap_start(void *ctx, store_t *store, zap_t **out, char *errbuf);
/* Stop the thread and close its socket; NULL-safe; sets *self_p = NULL. */
void zap_stop(zap_t **self_p);

#endif
