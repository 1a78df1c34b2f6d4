/*  crm_entity - the table of record kinds (see crm_entity.h) */
#include "crm_entity.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "crm.pb-c.h"
#include "crm_log.h"
#include "entities.pb-c.h"

/* The six fields every kind shares, managed by the server. */
#define COMMON_RULES                                                                               \
    {"id", CRM_F_SYSTEM, 0, NULL, 0, 0}, {"version", CRM_F_SYSTEM, 0, NULL, 0, 0},                                        \
        {"created_at", CRM_F_SYSTEM | CRM_F_TIME, 0, NULL, 0, 0},                                              \
        {"updated_at", CRM_F_SYSTEM | CRM_F_TIME, 0, NULL, 0, 0}, {"created_by", CRM_F_SYSTEM, 0, NULL, 0, 0},             \
        {"updated_by", CRM_F_SYSTEM, 0, NULL, 0, 0}

static const crm_rule_t s_customer_rules[] = {
    COMMON_RULES,
    {"name", CRM_F_REQUIRED | CRM_F_DUPE_NAME | CRM_F_PERSONAL, 200, NULL, 0, 0},
    {"company", CRM_F_PERSONAL, 200, NULL, 0, 0},
    {"phones", CRM_F_PHONE | CRM_F_PII | CRM_F_DUPE_KEY | CRM_F_PERSONAL, 32, NULL, 0, 0},
    {"emails", CRM_F_EMAIL | CRM_F_PII | CRM_F_DUPE_KEY | CRM_F_PERSONAL, 254, NULL, 0, 0},
    {"address", CRM_F_PII | CRM_F_PERSONAL, 500, NULL, 0, 0},
    {"province", 0, 64, NULL, 0, 0},
    {"city", 0, 64, NULL, 0, 0},
    {"industry", 0, 64, NULL, 0, 0},
    {"tags", CRM_F_TAG | CRM_F_PERSONAL, 50, NULL, 0, 0},
    {"owner", CRM_F_USER | CRM_F_OWNER | CRM_F_SALES_OWNER, 64, NULL, 0, 0},
    {"birthday", CRM_F_DATE | CRM_F_PII | CRM_F_PERSONAL, 10, NULL, 0, 0},
    {"consent", CRM_F_CONSENT, 0, NULL, 0, 0},
    {"consent_at", CRM_F_TIME | CRM_F_CONSENT_AT | CRM_F_STAMPED, 0, NULL, 0, 0},
    {"consent_withdrawn_at", CRM_F_TIME | CRM_F_STAMPED, 0, NULL, 0, 0},
    {"consent_withdrawn_by", CRM_F_STAMPED, 64, NULL, 0, 0},
    {"consent_channel", CRM_F_CONSENT_BY | CRM_F_PERSONAL, 64, NULL, 0, 0},
    {"stage", 0, 0, "lead", 0, 0},
    {"kind", 0, 0, "person", 0, 0},
    {"custom", CRM_F_PERSONAL, 1000, NULL, 0, 0},
    {"tier_override", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"order_count", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"total_spend", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"avg_order_value", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"first_order_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"last_order_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"order_interval_days", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"last_contact_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
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
    {"consent", CRM_IDX_EXACT, 'g', NULL}, /* since format 3 */
    {"name", CRM_IDX_PAIR, 'm', "company"}, /* since format 3: likely duplicates */
    {"company", CRM_IDX_PAIR, 'w', "name"}, /* since format 4: the names at a company */
    {NULL, 0, 0, NULL},
};

static const crm_label_t s_customer_labels[] = {
    {"name", "姓名|名字|客户|客户名称|客户姓名|联系人|联系人姓名|full name|contact|contact name", NULL},
    {"kind", "客户类型|类型|type", NULL},
    {"company", "公司|公司名称|单位|企业|企业名称|工作单位|organization|organisation|account", NULL},
    {"phones", "手机|手机号|手机号码|电话|电话号码|联系电话|联系方式|移动电话|座机|mobile|"
               "mobile phone|cell|telephone|tel|phone number", NULL},
    {"emails", "邮箱|电子邮箱|电子邮件|邮件|邮箱地址|mail|e-mail address|email address", NULL},
    {"address", "地址|联系地址|详细地址|通讯地址", NULL},
    {"province", "省份|省|所在省份|state|region", NULL},
    {"city", "城市|市|所在城市", NULL},
    {"industry", "行业|所属行业", NULL},
    {"source", "来源|客户来源|线索来源|lead source", NULL},
    {"stage", "阶段|客户阶段|生命周期|lifecycle stage", NULL},
    {"tier", "等级|客户等级|级别|价值等级", NULL},
    {"tags", "标签|客户标签|tag", NULL},
    {"owner", "负责人|销售|销售负责人|归属人|所有人|跟进人|客户经理|account owner", NULL},
    {"birthday", "生日|出生日期|date of birth|dob", NULL},
    {"consent", "营销同意|同意营销|订阅|marketing consent|opt in", NULL},
    {"consent_channel", "同意渠道|consent via", NULL},
    {"custom", "自定义|自定义字段", NULL},
    /* values, as Chinese spreadsheets write them */
    {"kind", "个人|自然人", "person"},
    {"kind", "企业|公司|单位|机构", "company"},
    {"stage", "线索|新线索|潜在线索", "lead"},
    {"stage", "潜在客户|意向客户|商机|跟进中", "prospect"},
    {"stage", "成交客户|已成交|活跃|活跃客户|正式客户", "active"},
    {"stage", "流失风险|有流失风险|沉睡|沉睡客户", "at-risk"},
    {"stage", "已流失|流失|流失客户", "churned"},
    {"tier", "高|重要|a|a类", "high"},
    {"tier", "中|一般|b|b类", "mid"},
    {"tier", "低|普通|c|c类", "low"},
    {"source", "广告|投放|广告投放", "ad"},
    {"source", "活动|展会|会议|会展", "event"},
    {"source", "转介绍|推荐|介绍|老客户介绍", "referral"},
    {"source", "官网|网站|网站注册", "website"},
    {"source", "社交媒体|微信|微博|抖音|小红书", "social"},
    {"source", "上门|到店|自然到访", "walk-in"},
    {"source", "其他|其它", "other"},
    {"consent", "是|同意|已同意", "yes"},
    {"consent", "否|不同意|未同意", "no"},
    {NULL, NULL, NULL},
};

static const crm_rule_t s_activity_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL, 0, 0},
    {"summary", CRM_F_REQUIRED | CRM_F_PERSONAL, 500, NULL, 0, 0},
    {"body", CRM_F_MULTILINE | CRM_F_PERSONAL, 0, NULL, 0, 0},
    {"occurred_at", CRM_F_TIME | CRM_F_PAST, 0, "now", 0, 0},
    {"type", 0, 0, "note", 0, 0},
    {"author", CRM_F_CALLER | CRM_F_OWNER, 0, NULL, 0, 0},
    {"department", CRM_F_CALLER_DEPT, 0, NULL, 0, 0},
    {"ticket_id", 0, 24, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_activity_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "occurred_at"},
    {"type", CRM_IDX_EXACT, 't', NULL},
    {"author", CRM_IDX_EXACT, 'a', NULL},
    {"ticket_id", CRM_IDX_EXACT, 'k', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_label_t s_activity_labels[] = {
    {"customer_id", "客户|客户编号|客户id|customer", NULL},
    {"type", "类型|方式|跟进方式", NULL},
    {"direction", "方向|呼入呼出", NULL},
    {"summary", "摘要|主题|标题|跟进内容|subject", NULL},
    {"body", "内容|详情|备注|正文|details|notes", NULL},
    {"occurred_at", "时间|日期|跟进时间|发生时间|date|time|when", NULL},
    {NULL, NULL, NULL},
};

static const crm_label_t s_deal_labels[] = {
    {"customer_id", "客户|客户编号|客户id|customer", NULL},
    {"title", "标题|商机|商机名称|名称|name", NULL},
    {"amount", "金额|商机金额|预计金额|value", NULL},
    {"stage", "阶段|销售阶段", NULL},
    {"expected_close", "预计成交|预计成交日期|close date", NULL},
    {"owner", "负责人|销售|跟进人", NULL},
    {NULL, NULL, NULL},
};

static const crm_rule_t s_deal_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL, 0, 0},
    {"title", CRM_F_REQUIRED | CRM_F_PERSONAL, 200, NULL, 0, 0},
    {"amount", CRM_F_RANGE, 0, NULL, 0, 100000000000000LL}, /* up to 1e12 in major units */
    {"stage", 0, 0, "qualify", 0, 0},
    {"lost_reason", CRM_F_PERSONAL, 500, NULL, 0, 0},
    {"expected_close", CRM_F_DATE, 10, NULL, 0, 0},
    {"owner", CRM_F_USER | CRM_F_OWNER | CRM_F_SALES_OWNER, 64, NULL, 0, 0},
    {"probability", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"closed_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_deal_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "created_at"},
    {"stage", CRM_IDX_EXACT, 's', NULL},
    {"owner", CRM_IDX_EXACT, 'o', NULL},
    {"expected_close", CRM_IDX_EXACT, 'x', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_order_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL, 0, 0},
    {"lines", CRM_F_REQUIRED, 200, NULL, 0, 0}, /* max_len: bytes per text value of a line */
    {"total", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"status", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"refunds", 0, 200, NULL, 0, 0},
    {"refunded", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"ordered_at", CRM_F_TIME | CRM_F_PAST, 0, "now", 0, 0},
    {"note", CRM_F_MULTILINE | CRM_F_PERSONAL, 2000, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_order_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "ordered_at"},
    {"status", CRM_IDX_EXACT, 's', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_ticket_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL, 0, 0},
    {"kind", 0, 0, "question", 0, 0},
    {"subject", CRM_F_REQUIRED | CRM_F_PERSONAL, 200, NULL, 0, 0},
    {"body", CRM_F_MULTILINE | CRM_F_PERSONAL, 4000, NULL, 0, 0},
    {"priority", 0, 0, "normal", 0, 0},
    {"status", 0, 0, "open", 0, 0},
    {"assignee", CRM_F_USER | CRM_F_OWNER, 64, NULL, 0, 0},
    {"order_id", 0, 24, NULL, 0, 0},
    {"resolution", CRM_F_MULTILINE | CRM_F_PERSONAL, 2000, NULL, 0, 0},
    {"opened_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"first_response_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"resolved_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"closed_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"response_due", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"resolution_due", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"response_breached", CRM_F_DERIVED, 0, NULL, 0, 0},
    {"resolution_breached", CRM_F_DERIVED, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_ticket_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "opened_at"},
    {"status", CRM_IDX_EXACT, 's', NULL},
    {"assignee", CRM_IDX_EXACT, 'a', NULL},
    {"priority", CRM_IDX_EXACT, 'p', NULL},
    {"kind", CRM_IDX_EXACT, 'k', NULL},
    {"order_id", CRM_IDX_EXACT, 'o', NULL}, /* a link: which tickets name an order */
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_feedback_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_REQUIRED | CRM_F_PARENT, 24, NULL, 0, 0},
    {"channel", 0, 64, NULL, 0, 0},
    {"score_kind", 0, 0, "csat", 0, 0},
    {"score", CRM_F_RANGE, 0, NULL, 0, 10}, /* CSAT 1-5, NPS 0-10: the kind's hook */
    {"comment", CRM_F_MULTILINE | CRM_F_PERSONAL, 2000, NULL, 0, 0},
    {"ticket_id", 0, 24, NULL, 0, 0},
    {"department", CRM_F_CALLER_DEPT, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_feedback_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "created_at"},
    {"score_kind", CRM_IDX_EXACT, 'k', NULL},
    {"ticket_id", CRM_IDX_EXACT, 't', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_task_rules[] = {
    COMMON_RULES,
    {"customer_id", CRM_F_PARENT, 24, NULL, 0, 0},
    {"assignee", CRM_F_USER | CRM_F_OWNER, 64, "me", 0, 0},
    {"title", CRM_F_REQUIRED | CRM_F_PERSONAL, 200, NULL, 0, 0},
    {"due", CRM_F_TIME, 0, NULL, 0, 0},
    {"done", 0, 0, NULL, 0, 0},
    {"done_at", CRM_F_DERIVED | CRM_F_TIME, 0, NULL, 0, 0},
    {"department", CRM_F_CALLER_DEPT, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_task_indexes[] = {
    {"customer_id", CRM_IDX_PARENT, 'c', "due"},
    {"assignee", CRM_IDX_EXACT, 'a', NULL},
    {"done", CRM_IDX_EXACT, 'd', NULL}, /* since format 3 */
    {NULL, 0, 0, NULL},
};

static const crm_rule_t s_segment_rules[] = {
    COMMON_RULES,
    {"name", CRM_F_REQUIRED, 100, NULL, 0, 0},
    {"description", CRM_F_MULTILINE, 500, NULL, 0, 0},
    {"criteria", CRM_F_REQUIRED, 100, NULL, 0, 0},
    {"department", CRM_F_CALLER_DEPT, 0, NULL, 0, 0},
    {NULL, 0, 0, NULL, 0, 0},
};

static const crm_index_t s_segment_indexes[] = {
    {"name", CRM_IDX_EXACT, 'n', NULL},
    {NULL, 0, 0, NULL},
};

static const crm_entity_t s_entities[] = {
    {"customer", 'c', &crm__customer__descriptor, s_customer_rules, s_customer_indexes, NULL,
     "id,name,company,phones,city,stage,tier,owner", CRM_RESTRICT, s_customer_labels},
    {"activity", 'a', &crm__activity__descriptor, s_activity_rules, s_activity_indexes,
     "customer", "id,occurred_at,type,direction,author,summary", CRM_CASCADE, s_activity_labels},
    {"deal", 'd', &crm__deal__descriptor, s_deal_rules, s_deal_indexes, "customer",
     "id,customer_id,title,amount,stage,probability,expected_close,owner", CRM_RESTRICT, s_deal_labels},
    {"order", 'o', &crm__order__descriptor, s_order_rules, s_order_indexes, "customer",
     "id,ordered_at,customer_id,lines,total,refunded,status", CRM_RESTRICT, NULL},
    {"ticket", 't', &crm__ticket__descriptor, s_ticket_rules, s_ticket_indexes, "customer",
     "id,customer_id,kind,priority,status,assignee,subject,resolution_due", CRM_RESTRICT, NULL},
    {"feedback", 'f', &crm__feedback__descriptor, s_feedback_rules, s_feedback_indexes, "customer",
     "id,created_at,customer_id,score_kind,score,channel,comment", CRM_CASCADE, NULL},
    {"task", 'k', &crm__task__descriptor, s_task_rules, s_task_indexes, "customer",
     "id,due,assignee,customer_id,title,done", CRM_CASCADE, NULL},
    {"segment", 's', &crm__segment__descriptor, s_segment_rules, s_segment_indexes, NULL,
     "id,name,department,criteria,description", CRM_RESTRICT, NULL},
    {NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL},
};

static const crm_link_t s_links[] = {
    {"activity", "ticket_id", "ticket"}, /* a reply or note in a ticket's conversation */
    {"feedback", "ticket_id", "ticket"}, /* the score a ticket's resolution got */
    {"ticket", "order_id", "order"},     /* the order a return, exchange or repair is about */
    {NULL, NULL, NULL},
};

const crm_link_t *
crm_entity_links(void)
{
    return s_links;
}

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

/* Rules by field number, built once: s_rule_at[k][i] is the rule of field i of
   kind k's message (the hot paths - normalize, diff, masking, audit - ask per
   field of a record, and the name search was 2.7 % of an update's CPU). */
#define S_KINDS (sizeof s_entities / sizeof s_entities[0] - 1)
#define S_FIELDS_MAX 64
#define S_INDEXES_MAX 32
static const crm_rule_t *s_rule_at[S_KINDS][S_FIELDS_MAX];
/* [k][i][0]: the field of index i of kind k; [1]: its sort_field */
static const ProtobufCFieldDescriptor *s_index_fd[S_KINDS][S_INDEXES_MAX][2];
static once_flag s_rule_once = ONCE_FLAG_INIT;

static void
s_rule_index(void)
{
    for (size_t k = 0; k < S_KINDS; k++) {
        const ProtobufCMessageDescriptor *d = s_entities[k].desc;
        for (unsigned i = 0; i < d->n_fields && i < S_FIELDS_MAX; i++)
            s_rule_at[k][i] = crm_entity_rule(&s_entities[k], d->fields[i].name);
        size_t i = 0;
        for (const crm_index_t *x = s_entities[k].indexes; x->field; x++, i++) {
            CRM_ASSERT(i < S_INDEXES_MAX);
            s_index_fd[k][i][0] = protobuf_c_message_descriptor_get_field_by_name(d, x->field);
            s_index_fd[k][i][1] =
                x->sort_field ? protobuf_c_message_descriptor_get_field_by_name(d, x->sort_field)
                              : NULL;
        }
    }
}

static const ProtobufCFieldDescriptor *
s_index_fd_of(const crm_entity_t *e, const crm_index_t *idx, int which)
{
    uintptr_t k = ((uintptr_t)e - (uintptr_t)s_entities) / sizeof *e;
    if ((uintptr_t)e >= (uintptr_t)s_entities && k < S_KINDS && e == &s_entities[k]) {
        uintptr_t i = ((uintptr_t)idx - (uintptr_t)e->indexes) / sizeof *idx;
        if ((uintptr_t)idx >= (uintptr_t)e->indexes && i < S_INDEXES_MAX &&
            idx == &e->indexes[i]) {
            call_once(&s_rule_once, s_rule_index);
            return s_index_fd[k][i][which];
        }
    }
    const char *name = which ? idx->sort_field : idx->field;
    return name ? protobuf_c_message_descriptor_get_field_by_name(e->desc, name) : NULL;
}

const ProtobufCFieldDescriptor *
crm_entity_index_field(const crm_entity_t *e, const crm_index_t *idx)
{
    return s_index_fd_of(e, idx, 0);
}

const ProtobufCFieldDescriptor *
crm_entity_index_sort_field(const crm_entity_t *e, const crm_index_t *idx)
{
    return s_index_fd_of(e, idx, 1);
}

const crm_rule_t *
crm_entity_rule_of(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd)
{
    /* by number when E is a row of the table and FD a field of its message (compared
       as addresses: either may come from elsewhere), else by name */
    uintptr_t k = ((uintptr_t)e - (uintptr_t)s_entities) / sizeof *e;
    if ((uintptr_t)e >= (uintptr_t)s_entities && k < S_KINDS && e == &s_entities[k]) {
        const ProtobufCFieldDescriptor *f = e->desc->fields;
        uintptr_t i = ((uintptr_t)fd - (uintptr_t)f) / sizeof *fd;
        if ((uintptr_t)fd >= (uintptr_t)f && i < e->desc->n_fields && i < S_FIELDS_MAX &&
            fd == &f[i]) {
            call_once(&s_rule_once, s_rule_index);
            return s_rule_at[k][i];
        }
    }
    return crm_entity_rule(e, fd->name);
}

unsigned
crm_entity_flags_of(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd)
{
    const crm_rule_t *r = crm_entity_rule_of(e, fd);
    return r ? r->flags : 0;
}

/* The times of messages that are no entity kind: each shown and read like an entity's
   CRM_F_TIME field (RFC 3339 in --json, a date-time in exports and imports). */
static const struct {
    const ProtobufCMessageDescriptor *desc;
    const char *field;
} s_other_times[] = {
    {&crm__refund__descriptor, "at"},
    {&crm__user__descriptor, "created_at"},
    {&crm__user__descriptor, "updated_at"},
    {&crm__change__descriptor, "time"},
    {&crm__audit_entry__descriptor, "time"},
    {&crm__binned__descriptor, "deleted_at"},
    {&crm__event__descriptor, "time"},
    {&crm__ping_reply__descriptor, "server_time"},
    {&crm__backup_info__descriptor, "time"},
    {&crm__backup_reply__descriptor, "started"},
    {&crm__backup_reply__descriptor, "last_error_time"},
    {&crm__backup_reply__descriptor, "next_scheduled"},
};

bool
crm_entity_is_time(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd)
{
    if (fd->type != PROTOBUF_C_TYPE_INT64)
        return false;
    for (const crm_entity_t *e = s_entities; e->name; e++)
        if (e->desc == d)
            return (crm_entity_flags_of(e, fd) & CRM_F_TIME) != 0;
    for (size_t i = 0; i < sizeof s_other_times / sizeof s_other_times[0]; i++)
        if (s_other_times[i].desc == d && !strcmp(s_other_times[i].field, fd->name))
            return true;
    return false;
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
crm_entity_label_key(const char *label, char *out, size_t n)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)label;
    while (*p && o + 1 < n) {
        if (p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) { /* U+3000 ideographic space */
            p += 3;
            continue;
        }
        if (!strchr(" \t-_*.", *p))
            out[o++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        p++;
    }
    out[o] = '\0';
}

const char *
crm_entity_field_by_label(const crm_entity_t *e, const char *label)
{
    char key[256], want[256];
    crm_entity_label_key(label, key, sizeof key);
    if (!*key)
        return NULL;
    for (unsigned i = 0; i < e->desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        size_t kl = strlen(key);
        crm_entity_label_key(fd->name, want, sizeof want);
        if (!strcmp(key, want))
            return fd->name;
        /* the singular of a list: "phone", "E-mail" */
        if (fd->label == PROTOBUF_C_LABEL_REPEATED && strlen(want) == kl + 1 &&
            want[kl] == 's' && !strncmp(key, want, kl))
            return fd->name;
    }
    for (const crm_label_t *l = e->labels; l && l->field; l++) {
        if (l->value)
            continue;
        const char *p = l->labels;
        while (*p) {
            size_t len = strcspn(p, "|");
            char one[128];
            snprintf(one, sizeof one, "%.*s", (int)len, p);
            crm_entity_label_key(one, want, sizeof want);
            if (!strcmp(key, want))
                return l->field;
            p += len + (p[len] == '|');
        }
    }
    return NULL;
}

const char *
crm_entity_value_by_label(const crm_entity_t *e, const char *field, const char *text)
{
    char key[256], want[256];
    crm_entity_label_key(text, key, sizeof key);
    for (const crm_label_t *l = e->labels; *key && l && l->field; l++) {
        if (!l->value || strcmp(l->field, field))
            continue;
        for (const char *p = l->labels; *p;) {
            size_t len = strcspn(p, "|");
            char one[128];
            snprintf(one, sizeof one, "%.*s", (int)len, p);
            crm_entity_label_key(one, want, sizeof want);
            if (!strcmp(key, want))
                return l->value;
            p += len + (p[len] == '|');
        }
    }
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
