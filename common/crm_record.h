/*  =========================================================================
    crm_record - generic field handling for every record kind

    Owns:      reading, writing, formatting, swapping and normalizing fields of
               any protobuf-c message through its descriptor: the one copy of
               this logic that serves the CLI flags, CSV and JSON import/export,
               table output and the server's validation.
    Must not:  know a particular kind's fields (crm_entity.c has the table).

    Memory: messages handled here are built with crm_proto_new() or come from
    crm_proto_unpack(); every value is allocated with crm_proto_alloc() so
    that crm_proto_free() releases built and unpacked messages alike.
    =========================================================================
*/
#ifndef CRM_RECORD_H
#define CRM_RECORD_H
#include <stdbool.h>
#include <stdint.h>

#include "crm_entity.h"
#include "crm_kv.h"

/* Field of D called NAME ('-' may stand for '_'), or NULL. */
const ProtobufCFieldDescriptor *crm_record_field(const ProtobufCMessageDescriptor *d,
                                                 const char *name);
/* Bytes of one value of FD in a message (one array element if repeated). */
size_t crm_record_elem_size(const ProtobufCFieldDescriptor *fd);
/* True if FD is a map<string,string> (a repeated key/value entry message). */
bool crm_record_is_map(const ProtobufCFieldDescriptor *fd);
/* Set FD of M from TEXT. A repeated field gets TEXT appended; a map takes
   "key=value" (an empty value removes the key). Enums by name, any case, '-'
   for '_' ("at-risk"); "" or "-" is the zero value. Booleans: true/false,
   yes/no, 1/0. With IS_TIME, an int64 takes ms since the epoch or an
   ISO-8601 date ("2026-11-23" or "2026-11-23T15:04:05Z"). */
crm_err_t crm_record_set_text(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                              const char *text, bool is_time, char *errbuf);
/* Reset FD to its default; repeated fields and maps become empty. */
void crm_record_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd);
/* Exchange the values of FD between A and B, two messages of one type. */
void crm_record_swap(ProtobufCMessage *a, ProtobufCMessage *b, const ProtobufCFieldDescriptor *fd);
/* True if FD holds a non-default value (non-empty for repeated). */
bool crm_record_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd);
/* FD as text (caller free()s): repeated values joined by ';', maps as
   "k=v;k=v", enums lower-case with '-', times ISO-8601 when IS_TIME. With
   HUMAN, unset enums and times show as "-". */
char *crm_record_format(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                        bool is_time, bool human);
/* Enum value name as people write it: "at-risk"; "" for the zero value. */
void crm_record_enum_name(const ProtobufCEnumDescriptor *ed, int value, char *out, size_t n);

/* Accessors for the common fields (and any string/int field by name). */
const char *crm_record_get_str(const ProtobufCMessage *m, const char *field);
void crm_record_set_str(ProtobufCMessage *m, const char *field, const char *value);
uint64_t crm_record_get_u64(const ProtobufCMessage *m, const char *field);
void crm_record_set_u64(ProtobufCMessage *m, const char *field, uint64_t v);
int64_t crm_record_get_i64(const ProtobufCMessage *m, const char *field);
void crm_record_set_i64(ProtobufCMessage *m, const char *field, int64_t v);
int crm_record_get_enum(const ProtobufCMessage *m, const char *field);
void crm_record_set_enum(ProtobufCMessage *m, const char *field, int v);
/* Number of values of a repeated FD, and value I of a repeated string FD. */
size_t crm_record_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd);
const char *crm_record_str_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                              size_t i);

/* Validate and normalize M as a record of kind E against its rules: trims
   text, normalizes phones and e-mails, folds tags, drops empty and duplicate
   values, checks lengths, dates and required fields. INVALID_ARGUMENT names
   the field and what is wrong. */
crm_err_t crm_record_normalize(const crm_entity_t *e, ProtobufCMessage *m, char *errbuf);
/* Normalize one phone number into out (at most 24 bytes); false if it is not one. */
bool crm_record_phone(const char *in, char out[24]);

/* ==== Money and sub-messages ==== */

/* The currency of amounts given without one. */
#define CRM_DEFAULT_CURRENCY "CNY"
/* Most entries of a repeated sub-message field (order lines). */
#define CRM_RECORD_MAX_ITEMS 500

/* True if FD is a Money field. */
bool crm_record_is_money(const ProtobufCFieldDescriptor *fd);
/* Digits after the point of an ISO 4217 CODE we know; -1 if unknown. */
int crm_money_minor_digits(const char *code);
/* MINOR units of CURRENCY as text: "¥1,234.50" (HUMAN) or "1234.50 CNY". */
void crm_money_format(int64_t minor, const char *currency, bool human, char *out, size_t n);
/* Parse "1234.50", "¥1,234.50", "99 USD"... (no currency: CRM_DEFAULT_CURRENCY). */
bool crm_money_parse(const char *text, int64_t *minor, char currency[4]);
/* A fresh element of the message field FD of M (appended if repeated). */
ProtobufCMessage *crm_record_add_message(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd);

/* The fields (names borrowed from the descriptor) whose values differ
   between A and B, two records of kind E, compared by value; the common
   server-managed fields (id, version, times, authors) are left out. */
/* The CRM_F_PAST times of M (an order's, an activity's) that differ from OLD (NULL on
   create) have happened: from 1970 on, at most a day ahead of NOW (ms; time zones and
   clocks). INVALID_ARGUMENT naming the field otherwise. */
crm_err_t crm_record_check_past(const crm_entity_t *e, const ProtobufCMessage *old,
                                const ProtobufCMessage *m, int64_t now, char *errbuf);
/* The fields (not CRM_F_SYSTEM) whose values differ between A and B, into OUT (at most MAX
   names); their count. */
size_t crm_record_diff(const crm_entity_t *e, const ProtobufCMessage *a, const ProtobufCMessage *b,
                       char **out, size_t max);
/* Field FD holds the same values in A and B, messages of one type (an unset string is ""). */
bool crm_record_field_equal(const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *a,
                            const ProtobufCMessage *b);
/* Blank the CRM_F_PERSONAL fields of M, a record of kind E (or a part of one: only
   what is set is touched): a required text becomes CRM_ERASED, anything else is
   cleared. The names of the fields it changed (borrowed from the descriptor) go
   to NAMES (up to MAX); returns how many changed. */
size_t crm_record_erase(const crm_entity_t *e, ProtobufCMessage *m, const char **names, size_t max);

/* ISO-8601 UTC text of a ms timestamp into out[32]. */
void crm_record_format_time(int64_t ms, char out[32]);
/* TEXT as ms since the epoch: a number of ms, YYYY-MM-DD, then optionally
   [T or space]HH:MM[:SS[.fff]], then optionally Z or an offset (+08:00);
   without a zone, local time (this process's TZ). False if it is none. */
bool crm_record_parse_time(const char *text, int64_t *ms);

#endif
