/*  =========================================================================
    authz - the one place that decides who may do what (SPEC §4)

    Owns:      the policy table (policy.def) and every (department, role,
               kind, action, field, record) decision, including masking.
    Must not:  touch the store; callers pass the records to judge.

    Everything goes through here: the generic record handlers ask before
    reading, creating, changing or deleting, search and list results are
    redacted record by record, and a denial names the kind, the action and,
    for fields, the field.
    =========================================================================
*/
#ifndef AUTHZ_H
#define AUTHZ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm_entity.h"
#include "crm_kv.h"
#include "entities.pb-c.h"

typedef enum { AUTHZ_READ, AUTHZ_CREATE, AUTHZ_UPDATE, AUTHZ_DELETE, AUTHZ__COUNT } authz_action_t;

/* "read", "create", ... */
const char *authz_action_name(authz_action_t a);
/* "sales staff", "marketing manager", "admin" */
void authz_who(const Crm__User *u, char *out, size_t n);

/* May U do A on kind E at all (some record)? */
crm_err_t authz_kind(const Crm__User *u, const crm_entity_t *e, authz_action_t a, char *errbuf);
/* May U do A on a record: CUR is the record as stored (NULL on create), NEXT
   the record after the change (NULL on read and delete), FIELDS the fields a
   change touches. PERMISSION_DENIED with a message naming what is refused. */
crm_err_t authz_record(const Crm__User *u, const crm_entity_t *e, authz_action_t a,
                       const ProtobufCMessage *cur, const ProtobufCMessage *next,
                       char *const *fields, size_t nfields, char *errbuf);
/* Mask, in place, the fields of REC that U may not read in clear. Returns
   true if anything was masked. */
bool authz_redact(const Crm__User *u, const crm_entity_t *e, ProtobufCMessage *rec);
/* True if U's policy masks personal data of kind E unless there is consent. */
bool authz_masks_pii(const Crm__User *u, const crm_entity_t *e);
/* Mask the personal data of REC for U's policy, consent or not. */
void authz_mask_pii(const Crm__User *u, const crm_entity_t *e, ProtobufCMessage *rec);
/* True if U sees the PII of REC masked (no consent, and U's policy masks). */
bool authz_hides(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *rec);
/* True if U sees FIELD of kind E masked on records without consent (so a
   search or filter on it must not reveal those records). */
bool authz_masks(const Crm__User *u, const crm_entity_t *e, const char *field);
/* Mask one value as people are used to: 138****8000, z***@example.com. */
void authz_mask_value(const char *field, const char *in, char *out, size_t n);
/* The policy's STAMP rows: set the fields the server records when a field
   changes from CUR (NULL on create) to NEXT - consent given: when; consent
   withdrawn: when and by U - as of NOW (ms). Clients cannot send stamped
   fields (CRM_F_STAMPED: the record handlers refuse them), so NEXT holds the
   stored values of the ones no change triggers. */
void authz_stamp(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
                 ProtobufCMessage *next, int64_t now);
/* How authz_refer() learns a named user's department and role (it does not
   touch the store itself): CRM_OK, CRM_ERR_NOT_FOUND or a storage error. */
typedef crm_err_t (*authz_user_fn)(void *arg, const char *name, int *department, int *role);
/* The policy's REFER rows: a user NEXT names in such a field (set on create,
   or changed from CUR) belongs to the row's department or is an admin (a
   RECORD_DEPT row: the record's own department, unless U is an admin).
   INVALID_ARGUMENT naming the field otherwise. */
crm_err_t authz_refer(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
                      const ProtobufCMessage *next, authz_user_fn lookup, void *arg,
                      char *errbuf);
/* How authz_links() reads the record a link names (it does not touch the store
   itself): CRM_OK with *OUT (the caller frees it), CRM_ERR_NOT_FOUND, or a
   storage error. */
typedef crm_err_t (*authz_get_fn)(void *arg, const crm_entity_t *e, const char *id,
                                  ProtobufCMessage **out);
/* The policy's LINK rows: a record of E that names a record of another kind
   in such a field (set on create, or changed from CUR) takes U's right to the
   row's action on that kind - first on the kind, before the named record is
   looked up (so a kind U has no right to is not probed through the link
   either), then on the named record itself (read through GET): support staff
   write only into the tickets that are theirs or nobody's. A named record that
   does not exist passes here (derive_prepare says so). PERMISSION_DENIED
   naming the kind, action and field otherwise. */
crm_err_t authz_links(const Crm__User *u, const crm_entity_t *e, const ProtobufCMessage *cur,
                      const ProtobufCMessage *next, authz_get_fn get, void *arg, char *errbuf);
/* The action (authz_action_t) the policy's LINK row for KIND.FIELD asks of the
   named kind, or -1 if it has none. */
int authz_link_action(const char *kind, const char *field);
/* May U read audit entries made by users of department DEPT? */
bool authz_audit(const Crm__User *u, int dept);

#endif
