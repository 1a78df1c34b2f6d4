/*  =========================================================================
    crm_err - the one error list, shared with the wire

    Owns:      enum crm_err and its name/text tables, generated from crm_err.def.
    Must not:  grow a second list anywhere else.
    =========================================================================
*/
#ifndef CRM_ERR_H
#define CRM_ERR_H

typedef enum crm_err {
#define CRM_ERR(name, num, text) CRM_ERR_##name = num,
#include "crm_err.def"
#undef CRM_ERR
    CRM_ERR__COUNT
} crm_err_t;

#define CRM_OK CRM_ERR_OK

/* Upper-case name as on the wire, e.g. "NOT_FOUND"; "UNKNOWN" if out of range. */
const char *crm_err_name(int code);
/* Default human text, e.g. "no such record". */
const char *crm_err_str(int code);
/* Number of codes in the list. */
int crm_err_count(void);

#endif
