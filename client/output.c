/*  =========================================================================
    output - printing any reply body, driven by protobuf-c descriptors

    One generic walk serves every message: JSON for scripts (--json) and
    aligned "name  value" lines for people. New reply types need no new
    printing code.
    =========================================================================
*/
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "crm_record.h"
#include "crm_utf8.h"

void
out_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void s_json_message(FILE *f, const ProtobufCMessage *msg);

static void
s_json_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
    char name[64];
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        out_json_str(f, *(const char *const *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        crm_record_enum_name(fd->descriptor, *(const int *)p, name, sizeof name);
        out_json_str(f, name);
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(f, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        fprintf(f, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(f, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        fprintf(f, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        fprintf(f, "%g", (double)*(const float *)p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        fprintf(f, "%g", *(const double *)p);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        fputc('"', f);
        for (size_t i = 0; i < b->len; i++)
            fprintf(f, "%02x", b->data[i]);
        fputc('"', f);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        if (sub)
            s_json_message(f, sub);
        else
            fputs("null", f);
        break;
    }
    }
}

/* True if field FD of MSG is set (oneof members only when selected). */
static bool
s_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd)
{
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)msg + fd->quantifier_offset) == fd->id;
    return true;
}

static void
s_json_message(FILE *f, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    bool first = true;
    fputc('{', f);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!s_present(msg, fd))
            continue;
        const char *member = (const char *)msg + fd->offset;
        fprintf(f, "%s\"%s\":", first ? "" : ",", fd->name);
        first = false;
        if (crm_record_is_map(fd)) { /* map<string,string> as a JSON object */
            size_t n = crm_record_count(msg, fd);
            const ProtobufCMessage *const *entries = *(const ProtobufCMessage *const *const *)member;
            const ProtobufCMessageDescriptor *sub = fd->descriptor;
            fputc('{', f);
            for (size_t j = 0; j < n; j++) {
                if (j)
                    fputc(',', f);
                out_json_str(f, *(const char *const *)((const char *)entries[j] +
                                                        sub->fields[0].offset));
                fputc(':', f);
                out_json_str(f, *(const char *const *)((const char *)entries[j] +
                                                        sub->fields[1].offset));
            }
            fputc('}', f);
        } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + fd->quantifier_offset);
            const char *arr = *(const char *const *)member;
            fputc('[', f);
            for (size_t j = 0; j < n; j++) {
                if (j)
                    fputc(',', f);
                s_json_value(f, fd, arr + j * crm_record_elem_size(fd));
            }
            fputc(']', f);
        } else {
            s_json_value(f, fd, member);
        }
    }
    fputc('}', f);
}

void
out_json(FILE *f, const ProtobufCMessage *msg)
{
    s_json_message(f, msg);
    fputc('\n', f);
}

void
out_json_inline(FILE *f, const ProtobufCMessage *msg)
{
    s_json_message(f, msg);
}

void
out_fields(FILE *f, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    size_t width = 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (crm_utf8_width(d->fields[i].name) > width)
            width = crm_utf8_width(d->fields[i].name);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!s_present(msg, fd) || fd->label == PROTOBUF_C_LABEL_REPEATED ||
            fd->type == PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *member = (const char *)msg + fd->offset;
        fprintf(f, "%s%*s  ", fd->name, (int)(width - crm_utf8_width(fd->name)), "");
        if (fd->type == PROTOBUF_C_TYPE_STRING)
            fputs(*(const char *const *)member, f);
        else if (fd->type == PROTOBUF_C_TYPE_ENUM) {
            char name[64];
            crm_record_enum_name(fd->descriptor, *(const int *)member, name, sizeof name);
            fputs(*name ? name : "-", f);
        } else
            s_json_value(f, fd, member);
        fputc('\n', f);
    }
}
