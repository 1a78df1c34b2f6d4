/*  crm_proto - frame <-> message glue with a memory budget and validation */
#include "crm_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crm_utf8.h"

/* ==== Bounded allocator ==== */

/* protobuf-c has no nesting or size limits of its own (RELIABILITY.md trap 9):
   a frame of many empty sub-messages decodes into far more memory than it
   occupies on the wire. Each block carries its size in a header so
   that the budget can be refunded on free. */
typedef struct {
    size_t used;  /* bytes handed out so far */
    size_t limit; /* most we hand out for one unpack */
} s_budget_t;

typedef union {
    size_t size;
    max_align_t align;
} s_header_t;

static void *
s_budget_alloc(void *data, size_t size)
{
    s_budget_t *b = data;
    if (b) {
        if (size > b->limit - b->used)
            return NULL;
        b->used += size;
    }
    s_header_t *h = malloc(sizeof *h + size);
    if (!h)
        return NULL;
    h->size = size;
    return h + 1;
}

static void
s_budget_free(void *data, void *ptr)
{
    if (!ptr)
        return;
    s_header_t *h = (s_header_t *)ptr - 1;
    s_budget_t *b = data;
    if (b)
        b->used -= h->size;
    free(h);
}

/* Used to free: same block layout, no budget to refund. */
static ProtobufCAllocator s_free_allocator = {s_budget_alloc, s_budget_free, NULL};

void *
crm_proto_alloc(size_t size)
{
    void *p = s_budget_alloc(NULL, size);
    CRM_ASSERT_ALLOC(p);
    return p;
}

void
crm_proto_release(void *ptr)
{
    s_budget_free(NULL, ptr);
}

char *
crm_proto_strdup(const char *s)
{
    size_t n = strlen(s);
    char *d = crm_proto_alloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

ProtobufCMessage *
crm_proto_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = crm_proto_alloc(desc->sizeof_message);
    desc->message_init(m);
    return m;
}

/* ==== Validation ==== */

/* How strings are judged: a crm_text_t (CRM_TEXT_MULTILINE on the wire,
   CRM_TEXT_STORED for what is read back from the store), or not at all (a
   client showing what it received). */
#define TEXT_UNJUDGED (-1)

/* A field's path ("entity.record.custom"), kept by the walkers below as a chain on their
   stacks and spelled out only for an error: spelling it for every sub-message present cost
   a printf each (2.5 % of the server's CPU for reads by id). NULL is the top. */
typedef struct s_path {
    const struct s_path *up;
    const char *name;
} s_path_t;

static void
s_path_text(const s_path_t *p, char *out, size_t cap)
{
    const char *names[CRM_PROTO_MAX_DEPTH + 4];
    size_t n = 0, len = 0;
    for (; p && n < sizeof names / sizeof names[0]; p = p->up)
        names[n++] = p->name;
    out[0] = '\0';
    while (n-- > 0 && len < cap)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "." : "", names[n]);
}

static crm_err_t s_validate(const ProtobufCMessage *msg, const s_path_t *path, int depth,
                            int text, char *errbuf);

/* VALUE of field F in the message at PARENT. */
static crm_err_t
s_validate_value(const ProtobufCFieldDescriptor *f, const void *value, const s_path_t *parent,
                 int depth, int text, char *errbuf)
{
    char path[256];
    const s_path_t here = {parent, f->name};
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)value;
        size_t len = s ? strlen(s) : 0, bad = 0;
        int cp = 0;
        bool too_long = len > CRM_PROTO_MAX_STRING;
        if (!too_long &&
            (!s || text == TEXT_UNJUDGED || crm_utf8_text_ok(s, len, text, &bad, &cp)))
            return CRM_OK;
        s_path_text(&here, path, sizeof path);
        if (too_long)
            snprintf(errbuf, CRM_ERRBUF, "field '%s' is too long (%zu bytes, at most %d)", path,
                     len, CRM_PROTO_MAX_STRING);
        else if (cp < 0)
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%s' is not valid UTF-8 text (bad byte at offset %zu)", path, bad);
        else
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%.120s' holds the control character U+%04X at offset %zu: text may "
                     "not hold control or bidirectional-override characters",
                     path, (unsigned)cp, bad);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)value;
        if (protobuf_c_enum_descriptor_get_value(f->descriptor, v))
            return CRM_OK;
        s_path_text(&here, path, sizeof path);
        snprintf(errbuf, CRM_ERRBUF, "field '%s' has unknown value %d", path, v);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)value;
        return m ? s_validate(m, &here, depth + 1, text, errbuf) : CRM_OK;
    }
    default:
        return CRM_OK;
    }
}

static size_t
s_value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    default:
        return 0; /* not inspected */
    }
}

static crm_err_t
s_validate(const ProtobufCMessage *msg, const s_path_t *path, int depth, int text,
           char *errbuf)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (depth > CRM_PROTO_MAX_DEPTH) {
        char where[256];
        s_path_text(path, where, sizeof where);
        snprintf(errbuf, CRM_ERRBUF, "'%s' is nested too deeply", where);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (msg->n_unknown_fields > 0) {
        snprintf(errbuf, CRM_ERRBUF, "unknown field number %u in '%s' (client newer than server?)",
                 msg->unknown_fields[0].tag, d->short_name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t vsize = s_value_size(f);
        if (vsize == 0)
            continue;
        const char *member = (const char *)msg + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)msg + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
            const char *arr = *(const char *const *)member;
            for (size_t j = 0; j < n; j++) {
                crm_err_t rc = s_validate_value(f, arr + j * vsize, path, depth, text, errbuf);
                if (rc != CRM_OK)
                    return rc;
            }
        } else {
            crm_err_t rc = s_validate_value(f, member, path, depth, text, errbuf);
            if (rc != CRM_OK)
                return rc;
        }
    }
    return CRM_OK;
}

crm_err_t
crm_proto_validate(const ProtobufCMessage *msg, char *errbuf)
{
    return s_validate(msg, NULL, 0, CRM_TEXT_MULTILINE, errbuf);
}

/* ==== Strings on the wire ==== */

/* Read a varint at BUF[*I..LEN); false if it runs off the end. */
static bool
s_varint(const uint8_t *buf, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = buf[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* protobuf-c copies a string and puts a NUL after it, so a string with a NUL
   inside would be read short and silently truncated. Strings carry their
   length on the wire: look there. Runs after a successful unpack, so the
   frame is well formed; anything unexpected just ends the walk. */
static crm_err_t
s_wire_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
               const s_path_t *path, int depth, char *errbuf)
{
    size_t i = 0;
    while (i < len) {
        uint64_t key, v;
        if (!s_varint(buf, len, &i, &key))
            return CRM_OK;
        switch (key & 7) {
        case 0:
            if (!s_varint(buf, len, &i, &v))
                return CRM_OK;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2: {
            if (!s_varint(buf, len, &i, &v) || v > len - i)
                return CRM_OK;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                    : NULL;
            const s_path_t here = {path, f ? f->name : ""};
            if (f && f->type == PROTOBUF_C_TYPE_STRING) {
                const uint8_t *nul = memchr(buf + i, 0, (size_t)v);
                if (nul) {
                    char sub[256];
                    s_path_text(&here, sub, sizeof sub);
                    snprintf(errbuf, CRM_ERRBUF,
                             "field '%.120s' holds a NUL byte at offset %zu of its %zu: text may "
                             "not hold NUL",
                             sub, (size_t)(nul - (buf + i)), (size_t)v);
                    return CRM_ERR_INVALID_ARGUMENT;
                }
            } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < CRM_PROTO_MAX_DEPTH) {
                crm_err_t rc = s_wire_strings(f->descriptor, buf + i, (size_t)v, &here,
                                              depth + 1, errbuf);
                if (rc != CRM_OK)
                    return rc;
            }
            i += (size_t)v;
            break;
        }
        default:
            return CRM_OK;
        }
    }
    return CRM_OK;
}

/* Bounded work: count the values of every repeated field before anything is
   decoded, so that a request with a huge list (a map of 20,000 keys where 100
   are allowed) is refused for the price of one pass over its bytes, not after
   allocating and checking every value. Nested messages are counted the same. */
static crm_err_t
s_wire_counts(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
              const s_path_t *path, int depth, char *errbuf)
{
    uint32_t counts[64] = {0}; /* by field index; messages have fewer fields than this */
    size_t i = 0;
    while (i < len) {
        uint64_t key, v = 0;
        if (!s_varint(buf, len, &i, &key))
            return CRM_OK; /* malformed: the decoder says so */
        unsigned wt = (unsigned)(key & 7);
        if (wt == 0 ? !s_varint(buf, len, &i, &v)
                    : wt == 2 ? (!s_varint(buf, len, &i, &v) || v > len - i)
                              : wt != 1 && wt != 5)
            return CRM_OK;
        size_t vlen = wt == 2 ? (size_t)v : 0;
        const ProtobufCFieldDescriptor *f =
            key >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                : NULL;
        size_t idx = f ? (size_t)(f - d->fields) : 0;
        const s_path_t here = {path, f ? f->name : ""};
        if (f && f->label == PROTOBUF_C_LABEL_REPEATED && idx < 64 &&
            ++counts[idx] > CRM_PROTO_MAX_REPEATED) {
            char where[256];
            s_path_text(&here, where, sizeof where);
            snprintf(errbuf, CRM_ERRBUF, "field '%.200s' has more than %d values in one request",
                     where, CRM_PROTO_MAX_REPEATED);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (f && wt == 2 && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < CRM_PROTO_MAX_DEPTH) {
            crm_err_t rc = s_wire_counts(f->descriptor, buf + i, vlen, &here, depth + 1, errbuf);
            if (rc != CRM_OK)
                return rc;
        }
        i += wt == 1 ? 8 : wt == 5 ? 4 : vlen;
    }
    return CRM_OK;
}

bool
crm_proto_peek_id(const uint8_t *buf, size_t len, uint64_t *id)
{
    return crm_proto_peek_varint(buf, len, 1, id);
}

size_t
crm_proto_event_frame(uint8_t *out, bool batch, const uint8_t *packed, size_t len)
{
    /* field 15 (event) or 20 (events), length-delimited: (N << 3 | 2) as a varint */
    static const uint8_t one[] = {15 << 3 | 2}, many[] = {((20 << 3 | 2) & 0x7f) | 0x80, 1};
    const uint8_t *tag = batch ? many : one;
    size_t n = batch ? sizeof many : sizeof one;
    uint8_t head[16];
    memcpy(head, tag, n);
    for (uint64_t v = len; ; v >>= 7) {
        head[n++] = (uint8_t)(v >= 0x80 ? (v & 0x7f) | 0x80 : v);
        if (v < 0x80)
            break;
    }
    if (out) {
        memcpy(out, head, n);
        memcpy(out + n, packed, len);
    }
    return n + len;
}

size_t
crm_proto_reply_events(Crm__Reply *r, Crm__Event ***evs)
{
    if (r->body_case == CRM__REPLY__BODY_EVENT) {
        *evs = &r->event;
        return 1;
    }
    *evs = r->events;
    return r->n_events;
}

bool
crm_proto_peek_varint(const uint8_t *buf, size_t len, unsigned field, uint64_t *value)
{
    size_t i = 0;
    *value = 0;
    while (i < len) {
        uint64_t key, v;
        if (!s_varint(buf, len, &i, &key))
            return false;
        if (key == ((uint64_t)field << 3 | 0)) /* the field, as a varint */
            return s_varint(buf, len, &i, value);
        switch (key & 7) {
        case 0:
            if (!s_varint(buf, len, &i, &v))
                return false;
            break;
        case 1:
            i += 8;
            break;
        case 5:
            i += 4;
            break;
        case 2:
            if (!s_varint(buf, len, &i, &v) || v > len - i)
                return false;
            i += (size_t)v;
            break;
        default:
            return false;
        }
    }
    return false;
}

/* ==== Pack / unpack ==== */

static crm_err_t s_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                          int text, ProtobufCMessage **out, char *errbuf);

crm_err_t
crm_proto_unpack_wire(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                      ProtobufCMessage **out, char *errbuf)
{
    return s_unpack(desc, buf, len, CRM_TEXT_MULTILINE, out, errbuf);
}

crm_err_t
crm_proto_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                 ProtobufCMessage **out, char *errbuf)
{
    return s_unpack(desc, buf, len, CRM_TEXT_STORED, out, errbuf);
}

crm_err_t
crm_proto_unpack_shown(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                       ProtobufCMessage **out, char *errbuf)
{
    return s_unpack(desc, buf, len, TEXT_UNJUDGED, out, errbuf);
}

static crm_err_t
s_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len, int text,
         ProtobufCMessage **out, char *errbuf)
{
    s_budget_t budget = {0, CRM_PROTO_BUDGET};
    ProtobufCAllocator alloc = {s_budget_alloc, s_budget_free, &budget};
    *out = NULL;
    if (len == 0) {
        snprintf(errbuf, CRM_ERRBUF, "empty message: expected a '%s'", desc->short_name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    if (text == CRM_TEXT_MULTILINE) {
        crm_err_t rc = s_wire_counts(desc, buf, len, NULL, 0, errbuf);
        if (rc != CRM_OK)
            return rc;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &alloc, len, buf);
    if (!msg) {
        snprintf(errbuf, CRM_ERRBUF,
                 "malformed message: %zu bytes are not a valid '%s' (or decode too large)", len,
                 desc->short_name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    crm_err_t rc =
        text == CRM_TEXT_MULTILINE ? s_wire_strings(desc, buf, len, NULL, 0, errbuf) : CRM_OK;
    if (rc == CRM_OK)
        rc = s_validate(msg, NULL, 0, text, errbuf);
    if (rc != CRM_OK) {
        crm_proto_free(&msg);
        return rc;
    }
    *out = msg;
    return CRM_OK;
}

void
crm_proto_free(ProtobufCMessage **msg_p)
{
    if (*msg_p)
        protobuf_c_message_free_unpacked(*msg_p, &s_free_allocator);
    *msg_p = NULL;
}

uint8_t *
crm_proto_pack(const ProtobufCMessage *msg, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    CRM_ASSERT_ALLOC(buf);
    *len = protobuf_c_message_pack(msg, buf);
    return buf;
}

ProtobufCMessage *
crm_proto_dup(const ProtobufCMessage *msg)
{
    if (!msg)
        return NULL;
    size_t len;
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *copy = NULL;
    uint8_t *packed = crm_proto_pack(msg, &len);
    crm_err_t rc = crm_proto_unpack(msg->descriptor, packed, len, &copy, errbuf);
    free(packed);
    CRM_ASSERT(rc == CRM_OK); /* packed here */
    return copy;
}
