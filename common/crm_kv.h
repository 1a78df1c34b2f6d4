/*  =========================================================================
    crm_kv - "key = value" text files: key files, enrollments, client config

    Owns:      parsing and atomic writing of small key/value files, and the
               permission rule for secret files (0600, owned by us, as OpenSSH).
    Must not:  log values (they may be secret keys).
    =========================================================================
*/
#ifndef CRM_KV_H
#define CRM_KV_H
#include <stdbool.h>
#include <stddef.h>

#include "crm_err.h"
#include "crm_log.h"

#define CRM_ERRBUF 320 /* size of the human error buffers passed around */

typedef struct crm_kv crm_kv_t;

/* Read PATH. With SECRET, refuse a file that others may read or that another
   user owns. Caller owns *out (NULL on failure). */
crm_err_t crm_kv_load(const char *path, bool secret, crm_kv_t **out, char *errbuf);
/* Value of KEY, borrowed from self, or NULL. */
const char *crm_kv_get(const crm_kv_t *self, const char *key);
/* Wipe and free; NULL-safe; sets *self_p = NULL. */
void crm_kv_destroy(crm_kv_t **self_p);
/* Write HEADER (comment lines, may be NULL) and the NULL-terminated key,value
   list to PATH atomically (temp file + rename), mode 0600 when SECRET else
   0644. With EXCLUSIVE, refuse to replace an existing file. */
crm_err_t crm_kv_save(const char *path, const char *header, const char *const *pairs,
                      bool secret, bool exclusive, char *errbuf);

#endif
