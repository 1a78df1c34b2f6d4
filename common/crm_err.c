/*  crm_err - name and text tables generated from crm_err.def */
#include "crm_err.h"

static const struct {
    const char *name;
    const char *text;
} s_errors[] = {
#define CRM_ERR(name, num, text) [num] = {#name, text},
#include "crm_err.def"
#undef CRM_ERR
};

const char *
crm_err_name(int code)
{
    if (code < 0 || code >= CRM_ERR__COUNT || !s_errors[code].name)
        return "UNKNOWN";
    return s_errors[code].name;
}

const char *
crm_err_str(int code)
{
    if (code < 0 || code >= CRM_ERR__COUNT || !s_errors[code].text)
        return "unknown error";
    return s_errors[code].text;
}

int
crm_err_count(void)
{
    return CRM_ERR__COUNT;
}
