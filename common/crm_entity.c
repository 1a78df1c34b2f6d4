/*  crm_entity - the table of record kinds (see crm_entity.h) */
#include "crm_entity.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entities.pb-c.h"

/* The six fields every kind shares, managed by the server. */
#define COMMON_RULES                                                                               \
    {"id", CRM_F_SYSTEM, 0, NULL}, {"version", CRM_F_SYSTEM, 0, NULL},                                        \
        {"created_at", CRM_F_SYSTEM | CRM_F_TIME, 0, NULL},                                              \
        {"updated_at", CRM_F_SYSTEM | CRM_F_TIME, 0, NULL}, {"created_by", CRM_F_SYSTEM, 0, NULL},             \
        {"updated_by", CRM_F_SYSTEM, 0, NULL}

static const crm_rule_t s_customer_rules[] = {
    COMMON_RULES,
    {"name", CRM_F_REQUIRED, 200, NULL},
    {"company", 0, 200, NULL},
    {"phones", CRM_F_PHONE | CRM_F_PII, 32, NULL},
    {"emails", CRM_F_EMAIL | CRM_F_PII, 254, NULL},
    {"address", CRM_F_PII, 500, NULL},
    {"province", 0, 64, NULL},
    {"city", 0, 64, NULL},
    {"industry", 0, 64, NULL},
    {"tags", CRM_F_TAG, 50, NULL},
    {"owner", CRM_F_USER | CRM_F_OWNER, 64, NULL},
    {"birthday", CRM_F_DATE | CRM_F_PII, 10, NULL},
    {"consent", CRM_F_CONSENT, 0, NULL},
    {"consent_at", CRM_F_TIME | CRM_F_CONSENT_AT, 0, NULL},
    {"consent_channel", CRM_F_CONSENT_BY, 64, NULL},
    {"stage", 0, 0, "lead"},
    {"kind", 0, 0, "person"},
    {"custom", 0, 1000, NULL},
    {NULL, 0, 0, NULL},
};

static const crm_index_t s_customer_indexes[] = {
    {"phones", CRM_IDX_PHONE, 'p', NULL}, /* 'q': last 4 digits */
    {"emails", CRM_IDX_EXACT, 'e', NULL},
    {"name", CRM_IDX_TEXT, 'n', NULL},
    {"company", CRM_IDX_TEXT, 'n', NULL}, /* same text index: search finds either */
    {"tags", CRM_IDX_EXACT, 't', NULL},
    {"stage", CRM_IDX_EXACT, 's', NULL},
    {"tier", CRM_IDX_EXACT, 'r', NULL},
    {"province", CRM_IDX_EXACT, 'v', NULL},
    {"city", CRM_IDX_EXACT, 'y', NULL},
    {"industry", CRM_IDX_EXACT, 'i', NULL},
    {"owner", CRM_IDX_EXACT, 'o', NULL},
    {"source", CRM_IDX_EXACT, 'u', NULL},
    {"kind", CRM_IDX_EXACT, 'k', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_activity_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL},
    {"summary", CRM_F_REQUIRED, 500, NULL},
    {"body", 0, 0, NULL},
    {"occurred_at", CRM_F_TIME, 0, "now"},
    {"type", 0, 0, "note"},
    {"author", CRM_F_CALLER | CRM_F_OWNER, 0, NULL},
    {"department", CRM_F_CALLER_DEPT, 0, NULL},
    {NULL, 0, 0, NULL},
};

static const crm_index_t s_activity_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "occurred_at"},
    {"type", CRM_IDX_EXACT, 't', NULL},
    {"author", CRM_IDX_EXACT, 'a', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_entity_t s_entities[] = {
    {"customer", 'c', &crm__customer__descriptor, s_customer_rules, s_customer_indexes, NULL,
     "id,name,company,phones,city,stage,tier,owner"},
    {"activity", 'a', &crm__activity__descriptor, s_activity_rules, s_activity_indexes,
     "customer", "id,occurred_at,type,direction,author,summary"},
    {NULL, 0, NULL, NULL, NULL, NULL, NULL},
};

const crm_entity_t *
crm_entity_all(void)
{
    return s_entities;
}

const crm_entity_t *
crm_entity_by_name(const char *name)
{
    for (const crm_entity_t *e = s_entities; e->name; e++)
        if (!strcmp(e->name, name))
            return e;
    return NULL;
}

const crm_entity_t *
crm_entity_by_prefix(char prefix)
{
    for (const crm_entity_t *e = s_entities; e->name; e++)
        if (e->prefix == prefix)
            return e;
    return NULL;
}

const crm_rule_t *
crm_entity_rule(const crm_entity_t *e, const char *field)
{
    for (const crm_rule_t *r = e->rules; r->field; r++)
        if (!strcmp(r->field, field))
            return r;
    return NULL;
}

unsigned
crm_entity_flags(const crm_entity_t *e, const char *field)
{
    const crm_rule_t *r = crm_entity_rule(e, field);
    return r ? r->flags : 0;
}

const char *
crm_entity_field_with(const crm_entity_t *e, unsigned flag)
{
    for (const crm_rule_t *r = e->rules; r->field; r++)
        if (r->flags & flag)
            return r->field;
    return NULL;
}

const crm_index_t *
crm_entity_index(const crm_entity_t *e, const char *field)
{
    for (const crm_index_t *i = e->indexes; i->field; i++)
        if (!strcmp(i->field, field))
            return i;
    return NULL;
}

void
crm_entity_format_id(const crm_entity_t *e, uint64_t num, char out[24])
{
    snprintf(out, 24, "%c%" PRIu64, e->prefix, num);
}

uint64_t
crm_entity_parse_id(const crm_entity_t *e, const char *id)
{
    if (!id || id[0] != e->prefix || id[1] < '1' || id[1] > '9' || strlen(id) > 20)
        return 0;
    uint64_t v = 0;
    for (const char *p = id + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}
