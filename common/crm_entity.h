/*  =========================================================================
    crm_entity - the table of record kinds

    Owns:      one row per kind: its protobuf-c descriptor, id prefix, field
               rules (validation and normalization) and secondary indexes.
    Must not:  know about the store or sockets; client and server share it.

    Adding a kind means a proto message (starting with the six common fields
    id, version, created_at, updated_at, created_by, updated_by), one row
    here and tests - no new handler, client command or printing code.
    =========================================================================
*/
#ifndef CRM_ENTITY_H
#define CRM_ENTITY_H
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Field rule flags. */
enum {
    CRM_F_REQUIRED = 1 << 0, /* must be non-empty on create and stay so */
    CRM_F_PHONE = 1 << 1,    /* normalized phone number(s) */
    CRM_F_EMAIL = 1 << 2,    /* checked and lower-cased e-mail address(es) */
    CRM_F_TIME = 1 << 3,     /* ms since the epoch; shown and parsed as a date-time */
    CRM_F_DATE = 1 << 4,     /* YYYY-MM-DD */
    CRM_F_SYSTEM = 1 << 5,   /* set by the server only (id, version, author...) */
    CRM_F_TAG = 1 << 6,      /* short label: trimmed, lower-cased, de-duplicated */
    CRM_F_USER = 1 << 7,     /* names an existing user */
    CRM_F_PARENT = 1 << 8,   /* id of the parent record (see crm_entity_t.parent) */
    CRM_F_CALLER = 1 << 9,   /* set by the server to the caller's name */
    CRM_F_CALLER_DEPT = 1 << 10, /* set by the server to the caller's department */
    CRM_F_OWNER = 1 << 11,   /* names the user who owns the record ("own" in the policy) */
    CRM_F_PII = 1 << 12,     /* personal contact data: masked where the policy says so */
    CRM_F_CONSENT = 1 << 13, /* the marketing consent that unmasks PII */
    CRM_F_CONSENT_BY = 1 << 14, /* how consent was given: required when it is given */
    CRM_F_CONSENT_AT = 1 << 15, /* when consent changed: set by the server if not given */
    CRM_F_DERIVED = 1 << 16,  /* computed by the server from this or other records; never
                                 written by a client */
    CRM_F_RANGE = 1 << 17,    /* a number (or money) checked against min..max */
    CRM_F_MULTILINE = 1 << 18, /* free text that may hold line breaks */
    CRM_F_SALES_OWNER = 1 << 19, /* a sales user's new record is theirs unless they name another */
    CRM_F_DUPE_KEY = 1 << 20,  /* a record with an equal value is likely a duplicate (phones) */
    CRM_F_DUPE_NAME = 1 << 21, /* ... and so is one with this text and the same company */
    CRM_F_STAMPED = 1 << 22,   /* set by the server when another field changes (the policy's
                                  STAMP rows, server/policy.def): never by a client */
    CRM_F_PAST = 1 << 23,      /* a time that has happened (an order, an activity): from
                                  1970 to a day from now (clocks and time zones), checked
                                  by the server when set or changed (crm_record_check_past) */
    CRM_F_PERSONAL = 1 << 24,  /* says who the customer is or what they said: blanked by
                                  `crm customer erase` (a required one becomes CRM_ERASED),
                                  in the record and in every change and audit entry */
};

/* What a required CRM_F_PERSONAL text holds once erased. */
#define CRM_ERASED "(erased)"

typedef struct {
    const char *field; /* proto field name */
    unsigned flags;    /* CRM_F_* */
    unsigned max_len;  /* bytes per string value; 0 = the protocol's limit */
    const char *def;   /* value given on create when the field is unset ("now" for times) */
    int64_t min, max;  /* CRM_F_RANGE: allowed values (money: minor units) */
} crm_rule_t;

/* How an index turns a field into lookup keys. */
typedef enum {
    CRM_IDX_EXACT,  /* each value as is (enums by name) */
    CRM_IDX_PHONE,  /* the whole number, and its last 4 digits under tag+1 */
    CRM_IDX_TEXT,   /* every pair of characters in a word, and every single non-ASCII one, folded */
    CRM_IDX_PARENT, /* the parent id, newest first by the time in sort_field */
    CRM_IDX_PAIR,   /* the folded value without spaces, with sort_field's likewise (a
                       name at a company): for likely duplicates, not a filter */
} crm_idx_kind_t;

typedef struct {
    const char *field;      /* proto field name */
    crm_idx_kind_t kind;
    char tag;               /* one byte naming the index inside the kind's key space */
    const char *sort_field; /* CRM_IDX_PARENT: the time field to order by; CRM_IDX_PAIR:
                               the second field */
} crm_index_t;

/* The names people give a field's column in a spreadsheet besides the field's
   own name ('|'-separated): Chinese labels (姓名, 手机...), English synonyms.
   Import matches a header against them ignoring case, spaces, '-', '_' and
   '*' (crm_entity_field_by_label); nothing else reads them. */
typedef struct {
    const char *field;  /* proto field name */
    const char *labels; /* "姓名|名字|客户名称" */
    const char *value;  /* NULL: labels of the field; else labels of this value of it
                           (an enum's or a yes/no's: {"stage", "潜在客户|意向客户", "prospect"}) */
} crm_label_t;

typedef struct {
    const char *name;                        /* "customer" */
    char prefix;                             /* id prefix and key-space byte, e.g. 'c' */
    const ProtobufCMessageDescriptor *desc;  /* the record message */
    const crm_rule_t *rules;                 /* terminated by {NULL} */
    const crm_index_t *indexes;              /* terminated by {NULL} */
    const char *parent;                      /* kind named by the CRM_F_PARENT field, or NULL */
    const char *columns;                     /* comma-separated fields for table output */
    int on_parent_delete;                    /* CRM_RESTRICT or CRM_CASCADE */
    const crm_label_t *labels;               /* column labels, terminated by {NULL}; or NULL */
} crm_entity_t;

/* What deleting a parent does to records of a child kind. */
enum {
    CRM_RESTRICT = 0, /* the parent cannot be deleted while it has any (orders, deals) */
    CRM_CASCADE = 1,  /* they are deleted with it, in the same mutation (activities) */
};

/* A field that names a record of another kind of the same customer (a ticket's order).
   The server keeps links whole: a link names an existing record of the record's own
   customer, and a record cannot be deleted while another links to it. Each link field
   has an exact index, which finds the records naming a given one. */
typedef struct {
    const char *kind;   /* the kind holding the field: "ticket" */
    const char *field;  /* "order_id" */
    const char *target; /* the kind it names: "order" */
} crm_link_t;

/* Every link, terminated by a row with kind NULL. */
const crm_link_t *crm_entity_links(void);

/* The row for NAME ("customer"), or NULL. */
const crm_entity_t *crm_entity_by_name(const char *name);
/* The row whose ids start with PREFIX, or NULL. */
const crm_entity_t *crm_entity_by_prefix(char prefix);
/* All rows, terminated by a row with name NULL. */
const crm_entity_t *crm_entity_all(void);
/* The rule flags of FIELD (0 if none). */
unsigned crm_entity_flags(const crm_entity_t *e, const char *field);
/* The rule of FIELD, or NULL. */
const crm_rule_t *crm_entity_rule(const crm_entity_t *e, const char *field);
/* The same for a field descriptor of E's message, looked up by its number (any
   other descriptor is looked up by name). */
unsigned crm_entity_flags_of(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd);
const crm_rule_t *crm_entity_rule_of(const crm_entity_t *e, const ProtobufCFieldDescriptor *fd);
/* True if FD of a message of D holds a time (ms since the epoch), shown and read as a
   date-time: an entity's field with CRM_F_TIME, or a time of another message the client
   prints or reads (a refund's, an audit entry's, an event's; a table in crm_entity.c). */
bool crm_entity_is_time(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd);
/* The first field whose rule has FLAG (e.g. CRM_F_OWNER), or NULL. */
const char *crm_entity_field_with(const crm_entity_t *e, unsigned flag);
/* The index on FIELD, or NULL. */
const crm_index_t *crm_entity_index(const crm_entity_t *e, const char *field);
/* The descriptors of IDX's field and (NULL if none) its sort_field, IDX one of
   E->indexes: looked up once for the whole table (the index paths ask per record). */
const ProtobufCFieldDescriptor *crm_entity_index_field(const crm_entity_t *e, const crm_index_t *idx);
const ProtobufCFieldDescriptor *crm_entity_index_sort_field(const crm_entity_t *e,
                                                            const crm_index_t *idx);

/* The field of E a spreadsheet column called LABEL holds: the field's name,
   the singular of a list ("phone"), or one of its labels, compared as keys
   (below). NULL if none. */
const char *crm_entity_field_by_label(const crm_entity_t *e, const char *label);
/* LABEL as a comparison key into OUT[N]: ASCII lower-cased; spaces (also
   U+3000), '-', '_', '*' and '.' dropped. "E-Mail *" and "email" are one key. */
void crm_entity_label_key(const char *label, char *out, size_t n);
/* The value of FIELD of E that a cell reading TEXT means by its label
   ("潜在客户" -> "prospect"), or NULL. */
const char *crm_entity_value_by_label(const crm_entity_t *e, const char *field, const char *text);

/* Record ids: the kind's prefix and a decimal number, e.g. "c42". */
void crm_entity_format_id(const crm_entity_t *e, uint64_t num, char out[24]);
/* Parse an id of kind E; 0 if malformed. */
uint64_t crm_entity_parse_id(const crm_entity_t *e, const char *id);

#endif
