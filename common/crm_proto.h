/*  =========================================================================
    crm_proto - ZeroMQ frame <-> protobuf-c message glue

    Owns:      unpacking untrusted bytes with a memory budget, the generic
               descriptor-driven validation of unpacked messages (UTF-8,
               enum ranges, string lengths, unknown fields, nesting depth) and
               packing replies.
    Must not:  know about sockets, the store or handlers.
    =========================================================================
*/
#ifndef CRM_PROTO_H
#define CRM_PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crm.pb-c.h"
#include "crm_kv.h"

#define CRM_PROTO_MAX_STRING (64 * 1024) /* bytes in any one string field */
#define CRM_PROTO_MAX_DEPTH 8            /* nested message depth */
#define CRM_PROTO_MAX_REPEATED 1000      /* values of one repeated field a client may send */
/* Records in one import request: each costs the server thread about 0.2-0.4 ms (its index
   keys, duplicate checks and audit), so one request stays within a few milliseconds. */
#define CRM_PROTO_IMPORT_MAX 25
/* Most memory one decode may allocate. protobuf-c turns each tiny sub-message
   into a struct of 50-100 bytes, so a 1 MiB frame of empty sub-messages would
   decode into ~36 MiB; real requests (an import batch of 1,000 customers)
   decode into a few MiB. */
#define CRM_PROTO_BUDGET (16u << 20)

/* Unpack and validate a message of type DESC from untrusted bytes - what a
   client sent - allocating at most CRM_PROTO_BUDGET: every string judged by
   its wire length (a NUL inside is refused) and by the text rules of
   crm_utf8.h (CRM_TEXT_MULTILINE here; the record rules make most fields
   one line). Caller owns *out; free with crm_proto_free(). On failure *out
   is NULL and errbuf says why. */
crm_err_t crm_proto_unpack_wire(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
                                size_t len, ProtobufCMessage **out, char *errbuf);
/* The same for bytes this program or the store wrote: text is held to what
   older versions let in (CRM_TEXT_STORED), so data stored before the text
   rules tightened stays readable (and is shown escaped). */
crm_err_t crm_proto_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                           ProtobufCMessage **out, char *errbuf);
/* The same for what a client shows rather than stores: the budget, enums and
   unknown fields are checked, but text is taken as it comes, so one bad value
   stored long ago cannot hide a whole reply; the client escapes what it shows. */
crm_err_t crm_proto_unpack_shown(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
                                 size_t len, ProtobufCMessage **out, char *errbuf);
/* The varint field 1 (a Request's or Reply's id) of a frame that may not
   decode as a whole, so that even a refusal can be matched to its request.
   False (and *id = 0) if it cannot be read. */
bool crm_proto_peek_id(const uint8_t *buf, size_t len, uint64_t *id);
/* The same for the first varint field FIELD (a Request's op is field 2). */
bool crm_proto_peek_varint(const uint8_t *buf, size_t len, unsigned field, uint64_t *value);
/* The change events a feed reply R carries, in sequence order: its one event,
   or a batched watch's events (Reply.events). *EVS points into R. */
size_t crm_proto_reply_events(Crm__Reply *r, Crm__Event ***evs);
/* Write into OUT (if not NULL) the packed Event PACKED (LEN bytes) as a
   Reply's field: Reply.event, or with BATCH one of Reply.events - its tag,
   its length, its bytes. Returns the bytes that takes. A reply with one
   event is exactly one of these; a batched reply, several one after another
   (protobuf appends a repeated field's elements as they come). */
size_t crm_proto_event_frame(uint8_t *out, bool batch, const uint8_t *packed, size_t len);
/* Free a message from crm_proto_unpack(); NULL-safe, sets *msg_p = NULL. */
void crm_proto_free(ProtobufCMessage **msg_p);
/* Check every field of MSG against its descriptor (see banner). */
crm_err_t crm_proto_validate(const ProtobufCMessage *msg, char *errbuf);
/* Memory for messages built by hand: the same block layout crm_proto_unpack()
   uses, so crm_proto_free() frees built and unpacked messages alike. */
void *crm_proto_alloc(size_t size);
void crm_proto_release(void *ptr);
char *crm_proto_strdup(const char *s);
/* A fresh, initialized message of type DESC; free with crm_proto_free(). */
ProtobufCMessage *crm_proto_new(const ProtobufCMessageDescriptor *desc);
/* Pack MSG into a fresh buffer (caller free()s); *len gets its size. */
uint8_t *crm_proto_pack(const ProtobufCMessage *msg, size_t *len);
/* A deep copy of MSG (packed and unpacked); NULL for NULL; free with crm_proto_free(). */
ProtobufCMessage *crm_proto_dup(const ProtobufCMessage *msg);

#endif
