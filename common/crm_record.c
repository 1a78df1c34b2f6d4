/*  =========================================================================
    crm_record - generic field handling for every record kind (see .h)
    =========================================================================
*/
#define _GNU_SOURCE /* timegm */
#include "crm_record.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_utf8.h"
#include "entities.pb-c.h"

#define MEMBER(m, fd) ((char *)(m) + (fd)->offset)
#define CMEMBER(m, fd) ((const char *)(m) + (fd)->offset)
#define COUNT(m, fd) (*(size_t *)((char *)(m) + (fd)->quantifier_offset))

/* ==== Descriptors ==== */

static size_t
s_elem_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

size_t
crm_record_elem_size(const ProtobufCFieldDescriptor *fd)
{
    return s_elem_size(fd);
}

const ProtobufCFieldDescriptor *
crm_record_field(const ProtobufCMessageDescriptor *d, const char *name)
{
    char buf[64];
    size_t n = strlen(name);
    if (n >= sizeof buf)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        buf[i] = name[i] == '-' ? '_' : name[i];
    return protobuf_c_message_descriptor_get_field_by_name(d, buf);
}

bool
crm_record_is_map(const ProtobufCFieldDescriptor *fd)
{
    if (fd->type != PROTOBUF_C_TYPE_MESSAGE || fd->label != PROTOBUF_C_LABEL_REPEATED)
        return false;
    const ProtobufCMessageDescriptor *sub = fd->descriptor;
    return sub->n_fields == 2 && !strcmp(sub->fields[0].name, "key") &&
           !strcmp(sub->fields[1].name, "value") &&
           sub->fields[0].type == PROTOBUF_C_TYPE_STRING &&
           sub->fields[1].type == PROTOBUF_C_TYPE_STRING;
}

/* ==== Parsing text ==== */

void
crm_record_format_time(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Milliseconds since the epoch, a date or a date-time: YYYY-MM-DD, then
   optionally [T or space]HH:MM[:SS[.fff]], then optionally Z or an offset
   (+08:00, +0800, +08). Without a zone the time is local (the process's TZ;
   the client's user's, UTC on a server), as people type it. */
static bool
s_parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, pos = 0, k = 0, ms = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &pos) != 3 || pos != 10) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        /* a number is milliseconds since 1970 (an older export's JSON), as 13 digits are
           today: 0 is unset, and fewer than 12 digits (epoch seconds, a typo) or a
           negative number is no time anyone meant */
        if (!*s || *end || errno || v < 0 || (v != 0 && v < 100000000000LL))
            return false;
        *out = v;
        return true;
    }
    const char *p = s + pos;
    if (*p == 'T' || *p == ' ') {
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5)
            return false;
        p += 1 + k;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2)
                return false;
            p += 1 + k;
            if (*p == '.') { /* fractions of a second: milliseconds kept, the rest dropped */
                if (*++p < '0' || *p > '9')
                    return false;
                for (int digit = 100; *p >= '0' && *p <= '9'; p++, digit /= 10)
                    ms += digit * (*p - '0');
            }
        }
    }
    bool zoned = false;
    long offset = 0; /* seconds east of UTC */
    if (*p == 'Z' || *p == 'z') {
        zoned = true;
        p++;
    } else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9') {
        int oh = 0, om = 0, sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2d%n", &oh, &k) != 1 || k != 2)
            return false;
        p += 1 + k;
        if (*p == ':')
            p++;
        if (*p >= '0' && *p <= '9') {
            if (sscanf(p, "%2d%n", &om, &k) != 1 || k != 2)
                return false;
            p += k;
        }
        if (oh > 14 || om > 59)
            return false;
        zoned = true;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p)
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 60)
        return false; /* 2026-02-30 is no day (mktime would make it 2 March) */
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    if (zoned) {
        *out = ((int64_t)timegm(&tm) - offset) * 1000 + ms;
    } else {
        tm.tm_isdst = -1;
        *out = (int64_t)mktime(&tm) * 1000 + ms;
    }
    return true;
}

bool
crm_record_parse_time(const char *text, int64_t *ms)
{
    return s_parse_time(text, ms);
}

/* "TICKET_STATUS_" for enum TicketStatus: the prefix its values may carry
   where a bare name would clash in the package (PRIORITY_LOW vs Tier's LOW). */
static size_t
s_enum_prefix(const ProtobufCEnumDescriptor *ed, char out[64])
{
    size_t n = 0;
    for (const char *p = ed->short_name; *p && n + 2 < 64; p++) {
        if (p != ed->short_name && isupper((unsigned char)*p))
            out[n++] = '_';
        out[n++] = (char)toupper((unsigned char)*p);
    }
    out[n++] = '_';
    out[n] = '\0';
    return n;
}

static bool
s_parse_enum(const ProtobufCEnumDescriptor *ed, const char *text, int *out)
{
    char buf[64];
    size_t n = strlen(text);
    if (n == 0 || !strcmp(text, "-")) {
        *out = 0;
        return true;
    }
    if (n >= sizeof buf)
        return false;
    for (size_t i = 0; i <= n; i++)
        buf[i] = (text[i] == '-' || text[i] == ' ') ? '_' : (char)toupper((unsigned char)text[i]);
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(ed, buf);
    if (!v) { /* "low" for PRIORITY_LOW */
        char full[128];
        size_t pl = s_enum_prefix(ed, full);
        snprintf(full + pl, sizeof full - pl, "%s", buf);
        v = protobuf_c_enum_descriptor_get_value_by_name(ed, full);
    }
    if (!v || v->value == 0)
        return false;
    *out = v->value;
    return true;
}

void
crm_record_enum_name(const ProtobufCEnumDescriptor *ed, int value, char *out, size_t n)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, value);
    size_t i = 0;
    char prefix[64];
    size_t pl = s_enum_prefix(ed, prefix);
    const char *name = v ? v->name : "";
    if (!strncmp(name, prefix, pl) && name[pl]) /* PRIORITY_LOW is "low" */
        name += pl;
    if (value != 0 && v)
        for (; name[i] && i + 1 < n; i++)
            out[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    else if (value != 0)
        i = (size_t)snprintf(out, n, "%d", value);
    out[i < n ? i : n - 1] = '\0';
}

/* The allowed names of an enum, for error messages. */
static void
s_enum_choices(const ProtobufCEnumDescriptor *ed, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < ed->n_values && used + 1 < n; i++) {
        char name[64];
        if (ed->values[i].value == 0)
            continue;
        crm_record_enum_name(ed, ed->values[i].value, name, sizeof name);
        used += (size_t)snprintf(out + used, n - used, "%s%s", used ? ", " : "", name);
    }
}

static bool
s_parse_bool(const char *t, protobuf_c_boolean *out)
{
    static const char *const yes[] = {"true", "yes", "1", "y", "on"};
    static const char *const no[] = {"false", "no", "0", "n", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!strcasecmp(t, yes[i]))
            return (*out = 1), true;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (!strcasecmp(t, no[i]))
            return (*out = 0), true;
    return false;
}

/* Grow the repeated FD of M by one element; returns the new slot. */
static void *
s_append(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    size_t n = COUNT(m, fd), sz = s_elem_size(fd);
    char **arr = (char **)MEMBER(m, fd);
    char *grown = crm_proto_alloc((n + 1) * sz);
    if (n)
        memcpy(grown, *arr, n * sz);
    memset(grown + n * sz, 0, sz);
    crm_proto_release(*arr);
    *arr = grown;
    COUNT(m, fd) = n + 1;
    return grown + n * sz;
}

static crm_err_t
s_set_map(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const char *text, char *errbuf)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s' takes key=value, not '%.60s'", fd->name, text);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    char key[256];
    size_t klen = (size_t)(eq - text);
    if (klen >= sizeof key) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': key is too long", fd->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    memcpy(key, text, klen);
    key[klen] = '\0';
    const char *value = eq + 1;
    size_t n = COUNT(m, fd);
    ProtobufCMessage **entries = *(ProtobufCMessage ***)MEMBER(m, fd);
    const ProtobufCMessageDescriptor *sub = fd->descriptor;
    for (size_t i = 0; i < n; i++) {
        char **k = (char **)((char *)entries[i] + sub->fields[0].offset);
        char **v = (char **)((char *)entries[i] + sub->fields[1].offset);
        if (strcmp(*k, key) != 0)
            continue;
        if (*value) {
            if (*v != sub->fields[1].default_value)
                crm_proto_release(*v);
            *v = crm_proto_strdup(value);
        } else { /* remove entry i */
            crm_proto_free(&entries[i]);
            memmove(&entries[i], &entries[i + 1], (n - i - 1) * sizeof *entries);
            COUNT(m, fd) = n - 1;
        }
        return CRM_OK;
    }
    if (!*value)
        return CRM_OK;
    ProtobufCMessage *entry = crm_proto_new(sub);
    *(char **)((char *)entry + sub->fields[0].offset) = crm_proto_strdup(key);
    *(char **)((char *)entry + sub->fields[1].offset) = crm_proto_strdup(value);
    *(ProtobufCMessage **)s_append(m, fd) = entry;
    return CRM_OK;
}

/* ==== Money ==== */

/* ISO 4217 currencies we print with a symbol; others print with their code.
   minor: digits after the decimal point. */
static const struct {
    const char *code, *symbol;
    int minor;
} s_currencies[] = {
    {"CNY", "¥", 2},  {"USD", "$", 2},   {"EUR", "€", 2},   {"GBP", "£", 2},
    {"HKD", "HK$", 2}, {"TWD", "NT$", 2}, {"SGD", "S$", 2}, {"JPY", "JP¥", 0},
    {"KRW", "₩", 0},  {"AUD", "A$", 2},  {"CAD", "C$", 2}, {"CHF", "CHF ", 2},
};
#define N_CURRENCIES (sizeof s_currencies / sizeof s_currencies[0])

bool
crm_record_is_money(const ProtobufCFieldDescriptor *fd)
{
    return fd->type == PROTOBUF_C_TYPE_MESSAGE && fd->descriptor == &crm__money__descriptor;
}

int
crm_money_minor_digits(const char *code)
{
    for (size_t i = 0; i < N_CURRENCIES; i++)
        if (!strcmp(s_currencies[i].code, code))
            return s_currencies[i].minor;
    return -1;
}

void
crm_money_format(int64_t minor, const char *currency, bool human, char *out, size_t n)
{
    int digits = crm_money_minor_digits(currency);
    const char *symbol = NULL;
    for (size_t i = 0; i < N_CURRENCIES; i++)
        if (!strcmp(s_currencies[i].code, currency))
            symbol = s_currencies[i].symbol;
    if (digits < 0)
        digits = 2;
    uint64_t scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    bool neg = minor < 0;
    uint64_t v = neg ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    uint64_t whole = v / scale, frac = v % scale;
    char w[32], grouped[48];
    snprintf(w, sizeof w, "%" PRIu64, whole);
    size_t len = strlen(w), g = 0;
    for (size_t i = 0; i < len; i++) {
        if (human && i && (len - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = w[i];
    }
    grouped[g] = '\0';
    char fracs[8] = ""; /* "." and at most 3 digits: minor units of known currencies */
    if (digits > 0 && digits <= 3) {
        fracs[0] = '.';
        for (int i = digits; i >= 1; i--, frac /= 10)
            fracs[i] = (char)('0' + frac % 10);
        fracs[digits + 1] = '\0';
    }
    if (human && symbol)
        snprintf(out, n, "%s%s%s%s", neg ? "-" : "", symbol, grouped, fracs);
    else
        snprintf(out, n, "%s%s%s %s", neg ? "-" : "", grouped, fracs, *currency ? currency : "CNY");
}

/* "1234.50", "1,234.50", "¥1,234.50", "1234.50 CNY", "USD 12": minor units and code. */
bool
crm_money_parse(const char *text, int64_t *minor, char currency[4])
{
    char code[8] = "";
    const char *p = text;
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < N_CURRENCIES && !*code; i++) { /* a symbol first (longest wins) */
        size_t sl = strlen(s_currencies[i].symbol);
        if (!strncmp(p, s_currencies[i].symbol, sl) && strcmp(s_currencies[i].symbol, "$")) {
            snprintf(code, sizeof code, "%s", s_currencies[i].code);
            p += sl;
        }
    }
    if (!*code && *p == '$') {
        snprintf(code, sizeof code, "USD");
        p++;
    }
    if (!*code && isupper((unsigned char)p[0]) && isupper((unsigned char)p[1]) &&
        isupper((unsigned char)p[2]) && (p[3] == ' ' || isdigit((unsigned char)p[3]))) {
        memcpy(code, p, 3);
        code[3] = '\0';
        p += 3;
    }
    while (*p == ' ')
        p++;
    uint64_t whole = 0, frac = 0;
    int fdigits = 0;
    bool any = false, dot = false;
    for (; *p; p++) {
        if (*p == ',' && !dot && any)
            continue;
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (!isdigit((unsigned char)*p))
            break;
        any = true;
        if (dot) {
            if (fdigits == 6)
                return false;
            frac = frac * 10 + (uint64_t)(*p - '0');
            fdigits++;
        } else {
            if (whole > (UINT64_C(1) << 53) / 10) /* far beyond any amount we keep */
                return false;
            whole = whole * 10 + (uint64_t)(*p - '0');
        }
    }
    while (*p == ' ')
        p++;
    if (*p && !*code && isupper((unsigned char)p[0]) && isupper((unsigned char)p[1]) &&
        isupper((unsigned char)p[2]) && !p[3]) {
        memcpy(code, p, 3);
        code[3] = '\0';
        p += 3;
    }
    if (!any || *p)
        return false;
    if (!*code)
        snprintf(code, sizeof code, "%s", CRM_DEFAULT_CURRENCY);
    int digits = crm_money_minor_digits(code);
    if (digits < 0 || fdigits > digits)
        return false;
    uint64_t scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    for (int i = fdigits; i < digits; i++)
        frac *= 10;
    *minor = (int64_t)(whole * scale + frac);
    memcpy(currency, code, 4);
    return true;
}

/* ==== Sub-messages ==== */

/* A fresh element of the message field FD of M: appended if repeated,
   replacing the old value otherwise. */
ProtobufCMessage *
crm_record_add_message(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    CRM_ASSERT(fd->type == PROTOBUF_C_TYPE_MESSAGE);
    ProtobufCMessage *sub = crm_proto_new(fd->descriptor);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        *(ProtobufCMessage **)s_append(m, fd) = sub;
    } else {
        ProtobufCMessage **slot = (ProtobufCMessage **)MEMBER(m, fd);
        crm_proto_free(slot);
        *slot = sub;
    }
    return sub;
}

/* Parse "k=v,k=v" into SUB; a ',' starts a new pair only before "name=". */
static crm_err_t
s_parse_pairs(ProtobufCMessage *sub, const ProtobufCFieldDescriptor *outer, const char *text,
              char *errbuf)
{
    const ProtobufCMessageDescriptor *d = sub->descriptor;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        char name[64];
        if (!eq || (size_t)(eq - p) >= sizeof name) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s' takes name=value pairs, not '%.60s'",
                     outer->name, p);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        const ProtobufCFieldDescriptor *fd = crm_record_field(d, name);
        if (!fd) {
            char names[256] = "";
            size_t used = 0;
            for (unsigned i = 0; i < d->n_fields && used + 1 < sizeof names; i++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
                                         i ? ", " : "", d->fields[i].name);
            snprintf(errbuf, CRM_ERRBUF, "field '%.40s': unknown part '%.40s' (parts: %.200s)",
                     outer->name, name, names);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        /* the value runs to the next ",name=" with a known name, or the end */
        const char *v = eq + 1, *end = v + strlen(v);
        for (const char *c = strchr(v, ','); c; c = strchr(c + 1, ',')) {
            const char *q = c + 1;
            while (*q == ' ')
                q++;
            const char *e2 = strchr(q, '=');
            char nx[64];
            if (e2 && e2 > q && (size_t)(e2 - q) < sizeof nx) {
                memcpy(nx, q, (size_t)(e2 - q));
                nx[e2 - q] = '\0';
                if (crm_record_field(d, nx)) {
                    end = c;
                    break;
                }
                if (strspn(nx, "abcdefghijklmnopqrstuvwxyz_") == strlen(nx)) {
                    snprintf(errbuf, CRM_ERRBUF, "field '%s': unknown part '%.40s'", outer->name,
                             nx);
                    return CRM_ERR_INVALID_ARGUMENT;
                }
            }
        }
        char *val = strndup(v, (size_t)(end - v));
        CRM_ASSERT_ALLOC(val);
        crm_err_t rc = crm_record_set_text(sub, fd, val, crm_entity_is_time(d, fd), errbuf);
        free(val);
        if (rc != CRM_OK)
            return rc;
        p = end;
    }
    return CRM_OK;
}

static crm_err_t
s_set_message(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const char *text,
              char *errbuf)
{
    if (crm_record_is_money(fd)) {
        int64_t minor;
        char code[4];
        if (!crm_money_parse(text, &minor, code)) {
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%s' takes an amount such as 1234.50, ¥1,234.50 or 99 USD, not "
                     "'%.40s'",
                     fd->name, text);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        Crm__Money *money = (Crm__Money *)crm_record_add_message(m, fd);
        money->minor = minor;
        money->currency = crm_proto_strdup(code);
        return CRM_OK;
    }
    /* parse into a scratch message first, so a bad value leaves M untouched */
    ProtobufCMessage *sub = crm_proto_new(fd->descriptor);
    crm_err_t rc = s_parse_pairs(sub, fd, text, errbuf);
    if (rc == CRM_OK) {
        const ProtobufCMessageDescriptor *sd = fd->descriptor;
        ProtobufCMessage *slot = crm_record_add_message(m, fd);
        for (unsigned i = 0; i < sd->n_fields; i++) /* move SUB into the slot */
            crm_record_swap(slot, sub, &sd->fields[i]);
    }
    crm_proto_free(&sub);
    return rc;
}

crm_err_t
crm_record_set_text(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const char *text,
                    bool is_time, char *errbuf)
{
    bool repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;
    if (crm_record_is_map(fd))
        return s_set_map(m, fd, text, errbuf);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return s_set_message(m, fd, text, errbuf);
    void *slot = NULL;
    int ival = 0;
    protobuf_c_boolean bval = 0;
    int64_t lval = 0;
    char choices[200];
    /* parse first, so a bad value leaves the field untouched */
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        break;
    case PROTOBUF_C_TYPE_ENUM:
        if (!s_parse_enum(fd->descriptor, text, &ival)) {
            s_enum_choices(fd->descriptor, choices, sizeof choices);
            snprintf(errbuf, CRM_ERRBUF, "field '%s': unknown value '%.40s' (use one of: %s)",
                     fd->name, text, choices);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!s_parse_bool(text, &bval)) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s' takes yes or no, not '%.40s'", fd->name,
                     text);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT64: {
        bool ok;
        if (is_time) {
            ok = s_parse_time(text, &lval);
        } else {
            char *end = NULL;
            errno = 0;
            lval = strtoll(text, &end, 10);
            ok = *text && !*end && !errno;
        }
        bool unsig = fd->type == PROTOBUF_C_TYPE_UINT32 || fd->type == PROTOBUF_C_TYPE_UINT64;
        bool narrow = fd->type == PROTOBUF_C_TYPE_INT32 || fd->type == PROTOBUF_C_TYPE_SINT32 ||
                      fd->type == PROTOBUF_C_TYPE_UINT32;
        if (ok && ((unsig && lval < 0) || (narrow && (lval > INT32_MAX || lval < INT32_MIN))))
            ok = false;
        if (!ok) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s' takes %s, not '%.40s'", fd->name,
                     is_time ? "a time (YYYY-MM-DD, YYYY-MM-DD HH:MM, or with an offset: "
                               "2026-11-29T09:00+08:00; a number is milliseconds since 1970)"
                             : "a number",
                     text);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        break;
    }
    default:
        snprintf(errbuf, CRM_ERRBUF, "field '%s' cannot be set from text", fd->name);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    slot = repeated ? s_append(m, fd) : MEMBER(m, fd);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **p = slot;
        if (*p && *p != fd->default_value)
            crm_proto_release(*p);
        *p = crm_proto_strdup(text);
        break;
    }
    case PROTOBUF_C_TYPE_ENUM:
        *(int *)slot = ival;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)slot = bval;
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_UINT32:
        *(int32_t *)slot = (int32_t)lval;
        break;
    default:
        *(int64_t *)slot = lval;
        break;
    }
    return CRM_OK;
}

/* ==== Clear, swap, test ==== */

void
crm_record_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    /* Build an empty message of the same type, swap the field into it, free it. */
    ProtobufCMessage *empty = crm_proto_new(m->descriptor);
    crm_record_swap(m, empty, fd);
    crm_proto_free(&empty);
}

void
crm_record_swap(ProtobufCMessage *a, ProtobufCMessage *b, const ProtobufCFieldDescriptor *fd)
{
    CRM_ASSERT(a->descriptor == b->descriptor);
    size_t sz = fd->label == PROTOBUF_C_LABEL_REPEATED ? sizeof(void *) : s_elem_size(fd);
    char tmp[sizeof(ProtobufCBinaryData)];
    memcpy(tmp, MEMBER(a, fd), sz);
    memcpy(MEMBER(a, fd), MEMBER(b, fd), sz);
    memcpy(MEMBER(b, fd), tmp, sz);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = COUNT(a, fd);
        COUNT(a, fd) = COUNT(b, fd);
        COUNT(b, fd) = n;
    }
}

bool
crm_record_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return crm_record_count(m, fd) > 0;
    const char *p = CMEMBER(m, fd);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        return *(const char *const *)p && **(const char *const *)p;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)p != NULL;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    default: {
        static const char zero[8] = {0};
        return memcmp(p, zero, s_elem_size(fd)) != 0;
    }
    }
}

size_t
crm_record_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    return *(const size_t *)((const char *)m + fd->quantifier_offset);
}

const char *
crm_record_str_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, size_t i)
{
    return (*(char *const *const *)CMEMBER(m, fd))[i];
}

/* ==== Formatting ==== */

typedef struct {
    char *data;
    size_t len, cap;
} s_sb_t;

static void
s_sb_add(s_sb_t *sb, const char *s)
{
    size_t n = strlen(s);
    if (sb->len + n + 1 > sb->cap) {
        sb->cap = (sb->len + n + 1) * 2;
        sb->data = realloc(sb->data, sb->cap);
        CRM_ASSERT_ALLOC(sb->data);
    }
    memcpy(sb->data + sb->len, s, n + 1);
    sb->len += n;
}

static void
s_format_one(s_sb_t *sb, const ProtobufCFieldDescriptor *fd, const void *p, bool is_time,
             bool human)
{
    char buf[64];
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING:
        s_sb_add(sb, *(const char *const *)p ? *(const char *const *)p : "");
        return;
    case PROTOBUF_C_TYPE_ENUM:
        crm_record_enum_name(fd->descriptor, *(const int *)p, buf, sizeof buf);
        s_sb_add(sb, human && !*buf ? "-" : buf);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        s_sb_add(sb, *(const protobuf_c_boolean *)p ? (human ? "yes" : "true")
                                                     : (human ? "no" : "false"));
        return;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, sizeof buf, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, sizeof buf, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(const int64_t *)p;
        if (is_time && v == 0)
            snprintf(buf, sizeof buf, "%s", human ? "-" : "");
        else if (is_time)
            crm_record_format_time(v, buf);
        else
            snprintf(buf, sizeof buf, "%" PRId64, v);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *e = *(const ProtobufCMessage *const *)p;
        if (!e)
            return;
        if (crm_record_is_money(fd)) {
            const Crm__Money *money = (const Crm__Money *)e;
            char out[64];
            crm_money_format(money->minor, money->currency, human, out, sizeof out);
            s_sb_add(sb, out);
        } else if (crm_record_is_map(fd)) {
            const ProtobufCMessageDescriptor *sub = fd->descriptor;
            s_sb_add(sb, *(const char *const *)((const char *)e + sub->fields[0].offset));
            s_sb_add(sb, "=");
            s_sb_add(sb, *(const char *const *)((const char *)e + sub->fields[1].offset));
        } else { /* name=value pairs of the set parts */
            const ProtobufCMessageDescriptor *sub = fd->descriptor;
            bool first = true;
            for (unsigned i = 0; i < sub->n_fields; i++) {
                const ProtobufCFieldDescriptor *sf = &sub->fields[i];
                if (!crm_record_is_set(e, sf))
                    continue;
                char *v = crm_record_format(e, sf, crm_entity_is_time(sub, sf), human);
                s_sb_add(sb, first ? "" : ",");
                s_sb_add(sb, sf->name);
                s_sb_add(sb, "=");
                s_sb_add(sb, v);
                free(v);
                first = false;
            }
        }
        return;
    }
    default:
        buf[0] = '\0';
        break;
    }
    s_sb_add(sb, buf);
}

char *
crm_record_format(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, bool is_time,
                  bool human)
{
    s_sb_t sb = {NULL, 0, 0};
    s_sb_add(&sb, "");
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = crm_record_count(m, fd), sz = s_elem_size(fd);
        const char *arr = *(const char *const *)CMEMBER(m, fd);
        for (size_t i = 0; i < n; i++) {
            if (i)
                s_sb_add(&sb, ";");
            s_format_one(&sb, fd, arr + i * sz, is_time, human);
        }
    } else {
        s_format_one(&sb, fd, CMEMBER(m, fd), is_time, human);
    }
    return sb.data;
}

/* ==== Accessors ==== */

static const ProtobufCFieldDescriptor *
s_need(const ProtobufCMessage *m, const char *field)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, field);
    CRM_ASSERT(fd != NULL);
    return fd;
}

const char *
crm_record_get_str(const ProtobufCMessage *m, const char *field)
{
    const ProtobufCFieldDescriptor *fd = s_need(m, field);
    CRM_ASSERT(fd->type == PROTOBUF_C_TYPE_STRING && fd->label != PROTOBUF_C_LABEL_REPEATED);
    return *(const char *const *)CMEMBER(m, fd);
}

void
crm_record_set_str(ProtobufCMessage *m, const char *field, const char *value)
{
    const ProtobufCFieldDescriptor *fd = s_need(m, field);
    CRM_ASSERT(fd->type == PROTOBUF_C_TYPE_STRING && fd->label != PROTOBUF_C_LABEL_REPEATED);
    char **p = (char **)MEMBER(m, fd);
    if (*p && *p != fd->default_value)
        crm_proto_release(*p);
    *p = crm_proto_strdup(value);
}

uint64_t
crm_record_get_u64(const ProtobufCMessage *m, const char *field)
{
    return *(const uint64_t *)CMEMBER(m, s_need(m, field));
}

void
crm_record_set_u64(ProtobufCMessage *m, const char *field, uint64_t v)
{
    *(uint64_t *)MEMBER(m, s_need(m, field)) = v;
}

int64_t
crm_record_get_i64(const ProtobufCMessage *m, const char *field)
{
    return *(const int64_t *)CMEMBER(m, s_need(m, field));
}

void
crm_record_set_i64(ProtobufCMessage *m, const char *field, int64_t v)
{
    *(int64_t *)MEMBER(m, s_need(m, field)) = v;
}

int
crm_record_get_enum(const ProtobufCMessage *m, const char *field)
{
    return *(const int *)CMEMBER(m, s_need(m, field));
}

void
crm_record_set_enum(ProtobufCMessage *m, const char *field, int v)
{
    *(int *)MEMBER(m, s_need(m, field)) = v;
}

/* ==== Normalization ==== */

bool
crm_record_phone(const char *in, char out[24])
{
    char digits[40];
    size_t n = 0;
    bool plus = false;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-' || *p == '(' || *p == ')' || *p == '.' || *p == '\t')
            continue;
        if (*p == '+' && n == 0 && !plus) {
            plus = true;
            continue;
        }
        if (*p < '0' || *p > '9' || n + 1 >= sizeof digits)
            return false;
        digits[n++] = *p;
    }
    digits[n] = '\0';
    const char *d = digits;
    if (!plus && n > 2 && d[0] == '0' && d[1] == '0') { /* 0086... */
        plus = true;
        d += 2;
    }
    if (plus && !strncmp(d, "86", 2)) { /* China: store the national number */
        plus = false;
        d += 2;
    }
    size_t len = strlen(d);
    if (len < 5 || len > 15)
        return false;
    out[0] = '+';
    memcpy(out + plus, d, len + 1); /* at most 1 + 15 + 1 bytes */
    return true;
}

static bool
s_email_ok(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.' ||
        s[strlen(s) - 1] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == ';' || *p == ',' || *p == '<' || *p == '>' || *p == '"')
            return false;
    return true;
}

static bool
s_date_ok(const char *s)
{
    int y, m, d;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3 || m < 1 || m > 12 ||
        d < 1 || y < 1900 || y > 2200)
        return false;
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d <= days[m - 1] && !(m == 2 && d == 29 && (y % 4 || (y % 100 == 0 && y % 400)));
}

/* Trim spaces around S in place (a fresh string if it changes). */
static void
s_trim(char **p, const ProtobufCFieldDescriptor *fd)
{
    char *s = *p;
    if (!s || !*s)
        return;
    size_t start = strspn(s, " \t\r\n"), end = strlen(s);
    while (end > start && strchr(" \t\r\n", s[end - 1]))
        end--;
    if (start == 0 && end == strlen(s))
        return;
    char *t = crm_proto_alloc(end - start + 1);
    memcpy(t, s + start, end - start);
    t[end - start] = '\0';
    if (s != fd->default_value)
        crm_proto_release(s);
    *p = t;
}

/* Text that cannot lie (crm_utf8.h): one line unless the rule says
   CRM_F_MULTILINE, and a required field must show something. */
static bool
s_text_ok(const char *field, const char *s, size_t len, unsigned flags, char *errbuf)
{
    size_t bad = 0;
    int cp = 0;
    crm_text_t kind = (flags & CRM_F_MULTILINE) ? CRM_TEXT_MULTILINE : CRM_TEXT_LINE;
    if (!crm_utf8_text_ok(s, len, kind, &bad, &cp)) {
        char what[16];
        crm_utf8_describe(cp, (unsigned char)s[bad], what);
        snprintf(errbuf, CRM_ERRBUF,
                 "field '%s' may not hold %s (at byte %zu): %s", field, what, bad,
                 kind == CRM_TEXT_LINE ? "it is one line of text without control characters"
                                       : "text may hold line breaks and tabs but no other "
                                         "control characters");
        return false;
    }
    if ((flags & CRM_F_REQUIRED) && !crm_utf8_has_visible(s, len)) {
        snprintf(errbuf, CRM_ERRBUF,
                 "field '%s' has no visible character (only spaces, zero-width or format "
                 "characters)",
                 field);
        return false;
    }
    return true;
}

static bool
s_ascii(const char *s)
{
    while (*s && !((unsigned char)*s & 0x80))
        s++;
    return !*s;
}

/* Normalize one string value V of field FD under rule flags; false with errbuf on error. */
static bool
s_normalize_value(const ProtobufCFieldDescriptor *fd, const crm_rule_t *rule, char **v,
                  char *errbuf)
{
    unsigned flags = rule ? rule->flags : 0;
    s_trim(v, fd);
    char *s = *v;
    size_t len = strlen(s);
    /* invisible characters out of one-line text (free text keeps what it was given) */
    if (!(flags & CRM_F_MULTILINE) && !s_ascii(s) && crm_utf8_valid(s, len, NULL)) {
        char *copy = crm_proto_strdup(s);
        if (crm_utf8_strip_invisible(copy)) {
            if (s != fd->default_value)
                crm_proto_release(s);
            *v = copy;
            s_trim(v, fd);
            s = *v;
            len = strlen(s);
        } else {
            crm_proto_release(copy);
        }
    }
    if (rule && rule->max_len && len > rule->max_len) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s' is too long (%zu bytes, at most %u)", fd->name,
                 len, rule->max_len);
        return false;
    }
    if (!*s)
        return true;
    if (!s_text_ok(fd->name, s, len, flags, errbuf))
        return false;
    if (flags & CRM_F_PHONE) {
        char norm[24];
        if (!crm_record_phone(s, norm)) {
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%s': '%.40s' is not a phone number (5-15 digits, optionally +country "
                     "code)",
                     fd->name, s);
            return false;
        }
        if (strcmp(norm, s)) {
            if (s != fd->default_value)
                crm_proto_release(s);
            *v = crm_proto_strdup(norm);
        }
    } else if (flags & CRM_F_EMAIL) {
        if (!s_email_ok(s)) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s': '%.60s' is not an e-mail address", fd->name,
                     s);
            return false;
        }
    } else if (flags & CRM_F_TAG) {
        for (char *p = s; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
            if (*p == ',' || *p == ';' || *p == '=') {
                snprintf(errbuf, CRM_ERRBUF, "field '%s': '%.40s' may not contain , ; or =",
                         fd->name, s);
                return false;
            }
        }
    } else if (flags & CRM_F_DATE) {
        if (!s_date_ok(s)) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s': '%.20s' is not a date (YYYY-MM-DD)",
                     fd->name, s);
            return false;
        }
    } else if (fd->label == PROTOBUF_C_LABEL_REPEATED && strchr(s, ';')) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': values may not contain ';'", fd->name);
        return false;
    }
    return true;
}

/* Drop empty and duplicate values of a repeated string field. */
static void
s_dedupe(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    size_t n = COUNT(m, fd), out = 0;
    char **arr = *(char ***)MEMBER(m, fd);
    for (size_t i = 0; i < n; i++) {
        bool keep = arr[i] && *arr[i];
        for (size_t j = 0; keep && j < out; j++)
            keep = strcmp(arr[j], arr[i]) != 0;
        if (keep)
            arr[out++] = arr[i];
        else if (arr[i] && arr[i] != fd->default_value)
            crm_proto_release(arr[i]);
    }
    COUNT(m, fd) = out;
}

static crm_err_t
s_normalize_map(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const crm_rule_t *rule,
                char *errbuf)
{
    const ProtobufCMessageDescriptor *sub = fd->descriptor;
    ProtobufCMessage **entries = *(ProtobufCMessage ***)MEMBER(m, fd);
    size_t n = COUNT(m, fd);
    if (n > 100) { /* before the pairwise check below, which is quadratic */
        snprintf(errbuf, CRM_ERRBUF, "field '%s' has %zu keys, at most 100", fd->name, n);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < n; i++) {
        char **k = (char **)((char *)entries[i] + sub->fields[0].offset);
        char **v = (char **)((char *)entries[i] + sub->fields[1].offset);
        s_trim(k, &sub->fields[0]);
        if (!**k || strlen(*k) > 64 || strpbrk(*k, "=;")) {
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%s': key '%.40s' must be 1-64 bytes without '=' or ';'", fd->name,
                     *k);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if ((rule && rule->max_len && strlen(*v) > rule->max_len) || strchr(*v, ';')) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s': value of '%.40s' is too long or has ';'",
                     fd->name, *k);
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (!s_text_ok(fd->name, *k, strlen(*k), 0, errbuf) ||
            !s_text_ok(fd->name, *v, strlen(*v), 0, errbuf))
            return CRM_ERR_INVALID_ARGUMENT;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(*(char **)((char *)entries[j] + sub->fields[0].offset), *k)) {
                snprintf(errbuf, CRM_ERRBUF, "field '%s': key '%.40s' appears twice", fd->name,
                         *k);
                return CRM_ERR_INVALID_ARGUMENT;
            }
    }
    return CRM_OK;
}

/* A money value: a known currency, not negative, within the rule's range. */
static crm_err_t
s_check_money(const char *field, const Crm__Money *money, const crm_rule_t *rule, char *errbuf)
{
    if (!money)
        return CRM_OK;
    if (crm_money_minor_digits(money->currency) < 0) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': unknown currency '%.8s' (use an ISO 4217 code "
                 "such as CNY, USD, EUR)", field, money->currency);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    int64_t max = rule && (rule->flags & CRM_F_RANGE) ? rule->max : INT64_C(100000000000000000);
    if (money->minor < 0 || money->minor > max) {
        char lim[64];
        crm_money_format(max, money->currency, true, lim, sizeof lim);
        snprintf(errbuf, CRM_ERRBUF, "field '%s': amount must be between 0 and %s", field, lim);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

/* Validate the parts of one sub-message (an order line): text trimmed and
   bounded, money checked. */
static crm_err_t
s_normalize_sub(const ProtobufCFieldDescriptor *outer, ProtobufCMessage *sub,
                const crm_rule_t *rule, char *errbuf)
{
    const ProtobufCMessageDescriptor *d = sub->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type == PROTOBUF_C_TYPE_STRING && fd->label != PROTOBUF_C_LABEL_REPEATED) {
            char **v = (char **)MEMBER(sub, fd);
            s_trim(v, fd);
            size_t max = rule && rule->max_len ? rule->max_len : 200;
            if (strlen(*v) > max || strchr(*v, ';')) {
                snprintf(errbuf, CRM_ERRBUF, "field '%s': '%s' is too long (at most %zu bytes) "
                         "or holds ';'", outer->name, fd->name, max);
                return CRM_ERR_INVALID_ARGUMENT;
            }
        } else if (crm_record_is_money(fd)) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", outer->name, fd->name);
            crm_err_t rc = s_check_money(name, *(const Crm__Money **)MEMBER(sub, fd), NULL,
                                         errbuf);
            if (rc != CRM_OK)
                return rc;
        }
    }
    return CRM_OK;
}

static crm_err_t
s_normalize_messages(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                     const crm_rule_t *rule, char *errbuf)
{
    if (crm_record_is_money(fd))
        return s_check_money(fd->name, *(const Crm__Money **)MEMBER(m, fd), rule, errbuf);
    if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
        ProtobufCMessage *sub = *(ProtobufCMessage **)MEMBER(m, fd);
        return sub ? s_normalize_sub(fd, sub, rule, errbuf) : CRM_OK;
    }
    size_t n = COUNT(m, fd);
    if (n > CRM_RECORD_MAX_ITEMS) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s' has %zu entries, at most %d", fd->name, n,
                 CRM_RECORD_MAX_ITEMS);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    ProtobufCMessage **arr = *(ProtobufCMessage ***)MEMBER(m, fd);
    for (size_t i = 0; i < n; i++) {
        crm_err_t rc = s_normalize_sub(fd, arr[i], rule, errbuf);
        if (rc != CRM_OK)
            return rc;
    }
    return CRM_OK;
}

/* Integers under a CRM_F_RANGE rule. */
static crm_err_t
s_check_range(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const crm_rule_t *rule,
              char *errbuf)
{
    if (!rule || !(rule->flags & CRM_F_RANGE) || fd->label == PROTOBUF_C_LABEL_REPEATED)
        return CRM_OK;
    int64_t v;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
        v = *(const int32_t *)CMEMBER(m, fd);
        break;
    case PROTOBUF_C_TYPE_UINT32:
        v = *(const uint32_t *)CMEMBER(m, fd);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
        v = *(const int64_t *)CMEMBER(m, fd);
        break;
    case PROTOBUF_C_TYPE_UINT64: {
        uint64_t u = *(const uint64_t *)CMEMBER(m, fd);
        v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    }
    default:
        return CRM_OK;
    }
    if (v < rule->min || v > rule->max) {
        snprintf(errbuf, CRM_ERRBUF, "field '%s': %" PRId64 " is out of range (%" PRId64
                 " to %" PRId64 ")", fd->name, v, rule->min, rule->max);
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

crm_err_t
crm_record_normalize(const crm_entity_t *e, ProtobufCMessage *m, char *errbuf)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    CRM_ASSERT(d == e->desc);
    /* consent without a record of how it was given is no consent */
    const char *consent = crm_entity_field_with(e, CRM_F_CONSENT);
    const char *by = crm_entity_field_with(e, CRM_F_CONSENT_BY);
    if (consent && by && *(const protobuf_c_boolean *)CMEMBER(m, crm_record_field(d, consent))) {
        const char *channel = crm_record_get_str(m, by);
        if (!channel[strspn(channel, " \t")]) {
            snprintf(errbuf, CRM_ERRBUF,
                     "field '%s' is required when '%s' is given: say how (wechat, web form...)",
                     by, consent);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const crm_rule_t *rule = crm_entity_rule_of(e, fd);
        if (crm_record_is_map(fd)) {
            crm_err_t rc = s_normalize_map(m, fd, rule, errbuf);
            if (rc != CRM_OK)
                return rc;
            continue;
        }
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            crm_err_t rc = s_normalize_messages(m, fd, rule, errbuf);
            if (rc == CRM_OK && rule && (rule->flags & CRM_F_REQUIRED) && !crm_record_is_set(m, fd)) {
                snprintf(errbuf, CRM_ERRBUF, "field '%s' is required", fd->name);
                rc = CRM_ERR_INVALID_ARGUMENT;
            }
            if (rc != CRM_OK)
                return rc;
            continue;
        }
        if (fd->type != PROTOBUF_C_TYPE_STRING) {
            crm_err_t rc = s_check_range(m, fd, rule, errbuf);
            if (rc != CRM_OK)
                return rc;
            continue;
        }
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = COUNT(m, fd);
            char **arr = *(char ***)MEMBER(m, fd);
            if (n > 20) {
                snprintf(errbuf, CRM_ERRBUF, "field '%s' has %zu values, at most 20", fd->name,
                         n);
                return CRM_ERR_INVALID_ARGUMENT;
            }
            for (size_t j = 0; j < n; j++)
                if (!s_normalize_value(fd, rule, &arr[j], errbuf))
                    return CRM_ERR_INVALID_ARGUMENT;
            s_dedupe(m, fd);
        } else if (!s_normalize_value(fd, rule, (char **)MEMBER(m, fd), errbuf)) {
            return CRM_ERR_INVALID_ARGUMENT;
        }
        if (rule && (rule->flags & CRM_F_REQUIRED) && !crm_record_is_set(m, fd)) {
            snprintf(errbuf, CRM_ERRBUF, "field '%s' is required", fd->name);
            return CRM_ERR_INVALID_ARGUMENT;
        }
    }
    return CRM_OK;
}

crm_err_t
crm_record_check_past(const crm_entity_t *e, const ProtobufCMessage *old,
                      const ProtobufCMessage *m, int64_t now, char *errbuf)
{
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        const ProtobufCFieldDescriptor *fd = crm_record_field(m->descriptor, r->field);
        if (!(r->flags & CRM_F_PAST) || !fd || fd->type != PROTOBUF_C_TYPE_INT64 ||
            fd->label == PROTOBUF_C_LABEL_REPEATED)
            continue;
        int64_t v = *(const int64_t *)CMEMBER(m, fd);
        if (old && *(const int64_t *)CMEMBER(old, fd) == v)
            continue; /* as stored: an old record is not refused every edit for it */
        bool early = v < 0, late = v > now + INT64_C(86400000);
        if (!early && !late)
            continue;
        char when[32];
        crm_record_format_time(v, when);
        snprintf(errbuf, CRM_ERRBUF, "field '%s': %s is %s; it takes a time that has passed, "
                 "from 1970 on", fd->name, when, early ? "before 1970" : "in the future");
        return CRM_ERR_INVALID_ARGUMENT;
    }
    return CRM_OK;
}

static bool s_message_equal(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                            const ProtobufCMessage *b);

/* One element of FD's type at P and at Q: the same value? (An unset string is "".) */
static bool
s_value_equal(const ProtobufCFieldDescriptor *fd, const void *p, const void *q)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(const char *const *)p, *y = *(const char *const *)q;
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = p, *y = q;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_message_equal(fd->descriptor, *(const ProtobufCMessage *const *)p,
                               *(const ProtobufCMessage *const *)q);
    default:
        return memcmp(p, q, s_elem_size(fd)) == 0;
    }
}

/* Field FD of A and of B (either NULL: a message with nothing set) holds the same values. */
static bool
s_field_equal(const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *a,
              const ProtobufCMessage *b)
{
    static const char none[sizeof(ProtobufCBinaryData) + 8]; /* every type's zero value */
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t na = a ? crm_record_count(a, fd) : 0, nb = b ? crm_record_count(b, fd) : 0;
        if (na != nb)
            return false;
        size_t sz = s_elem_size(fd);
        const char *x = na ? *(const char *const *)CMEMBER(a, fd) : NULL;
        const char *y = nb ? *(const char *const *)CMEMBER(b, fd) : NULL;
        for (size_t i = 0; i < na; i++)
            if (!s_value_equal(fd, x + i * sz, y + i * sz))
                return false;
        return true;
    }
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) { /* the member holds FD only when chosen */
        if (a && *(const uint32_t *)((const char *)a + fd->quantifier_offset) != fd->id)
            a = NULL;
        if (b && *(const uint32_t *)((const char *)b + fd->quantifier_offset) != fd->id)
            b = NULL;
    }
    return s_value_equal(fd, a ? CMEMBER(a, fd) : none, b ? CMEMBER(b, fd) : none);
}

static bool
s_message_equal(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                const ProtobufCMessage *b)
{
    if (a == b)
        return true;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!s_field_equal(&d->fields[i], a, b))
            return false;
    return true;
}

bool
crm_record_field_equal(const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *a,
                       const ProtobufCMessage *b)
{
    return s_field_equal(fd, a, b);
}

/* By value, field by field through the descriptors: formatting both as text cost an
   allocation and a printf a field, and took a change inside one second of a time, or
   ["a;b"] against ["a", "b"], for none. */
size_t
crm_record_diff(const crm_entity_t *e, const ProtobufCMessage *a, const ProtobufCMessage *b,
                char **out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < e->desc->n_fields && n < max; i++) {
        const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
        if (crm_entity_flags_of(e, fd) & CRM_F_SYSTEM)
            continue;
        if (!s_field_equal(fd, a, b))
            out[n++] = (char *)fd->name;
    }
    return n;
}

size_t
crm_record_erase(const crm_entity_t *e, ProtobufCMessage *m, const char **names, size_t max)
{
    size_t n = 0;
    for (const crm_rule_t *r = e->rules; r->field; r++) {
        if (!(r->flags & CRM_F_PERSONAL))
            continue;
        const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, r->field);
        if (!fd || !crm_record_is_set(m, fd))
            continue;
        bool keep_text = (r->flags & CRM_F_REQUIRED) && fd->type == PROTOBUF_C_TYPE_STRING &&
                         fd->label != PROTOBUF_C_LABEL_REPEATED;
        if (keep_text && !strcmp(crm_record_get_str(m, fd->name), CRM_ERASED))
            continue; /* erased before */
        if (keep_text)
            crm_record_set_str(m, fd->name, CRM_ERASED);
        else
            crm_record_clear(m, fd);
        if (n < max)
            names[n] = fd->name;
        n++;
    }
    return n;
}
