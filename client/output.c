/*  =========================================================================
    output - printing any reply body, driven by protobuf-c descriptors

    One generic walk serves every message: JSON for scripts (--json) and
    aligned "name  value" lines for people. New reply types need no new
    printing code.

    Owns also the terminal guard: whatever a server sends (a record, an
    error message, a colleague's note) reaches the terminal with every
    control character escaped, so stored text can neither move the cursor
    nor forge a line. Done once, at the streams (out_guard_init wraps stdout
    and stderr), so no printing site can forget it; fields shown on one line
    also escape newline and tab (out_escape).
    =========================================================================
*/
#define _GNU_SOURCE 1 /* fopencookie */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "crm_entity.h"
#include "crm_record.h"
#include "crm_utf8.h"

/* ==== The terminal guard ==== */

typedef struct {
    int fd;            /* where the escaped text goes */
    char pending[4];   /* the start of a UTF-8 sequence cut by a buffer boundary */
    size_t npending;
    char first[512];   /* the first line written (stderr: the error, for --json) */
    size_t nfirst;
    bool first_done;   /* its line break was seen */
} s_guard_t;

static FILE *s_raw_stdout, *s_raw_stderr; /* the streams before out_guard_init */
static s_guard_t s_guards[2];             /* stdout's and stderr's */

static int
s_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Escape and write BUF[0..N); a UTF-8 sequence cut at the end waits for the
   rest in the next call (or is escaped at close). */
static ssize_t
s_guard_write(void *cookie, const char *buf, size_t n)
{
    s_guard_t *g = cookie;
    char *all = malloc(g->npending + n + 1);
    if (!all)
        return -1;
    memcpy(all, g->pending, g->npending);
    memcpy(all + g->npending, buf, n);
    size_t len = g->npending + n, cut = len;
    /* hold back an incomplete sequence at the end: a lead byte whose length runs past LEN */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)all[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > back)
            cut = len - back;
        break;
    }
    g->npending = len - cut;
    memcpy(g->pending, all + cut, g->npending);
    char *safe = crm_utf8_escape(all, cut, "\n\t");
    for (const char *p = safe; *p && !g->first_done; p++) {
        if (*p == '\n')
            g->first_done = g->nfirst > 0; /* blank lines before it do not count */
        else if (g->nfirst + 1 < sizeof g->first)
            g->first[g->nfirst++] = *p;
    }
    int rc = s_write_all(g->fd, safe, strlen(safe));
    free(safe);
    free(all);
    return rc == 0 ? (ssize_t)n : -1;
}

static int
s_guard_close(void *cookie)
{
    s_guard_t *g = cookie;
    if (g->npending) { /* a sequence that never completed: shown as bytes */
        char *safe = crm_utf8_escape(g->pending, g->npending, NULL);
        s_write_all(g->fd, safe, strlen(safe));
        free(safe);
        g->npending = 0;
    }
    return 0;
}

static FILE *
s_guard_open(s_guard_t *g, int fd, int mode)
{
    static const cookie_io_functions_t io = {NULL, s_guard_write, NULL, s_guard_close};
    g->fd = fd;
    FILE *f = fopencookie(g, "w", io);
    if (f)
        setvbuf(f, NULL, mode, BUFSIZ);
    return f;
}

/* At exit: flush and close the guarded streams, then give back the raw ones. */
static void
s_guard_fini(void)
{
    if (stdout != s_raw_stdout) {
        fclose(stdout);
        stdout = s_raw_stdout;
    }
    if (stderr != s_raw_stderr) {
        fclose(stderr);
        stderr = s_raw_stderr;
    }
}

void
out_guard_init(void)
{
    if (s_raw_stdout)
        return;
    fflush(stdout);
    fflush(stderr);
    s_raw_stdout = stdout;
    s_raw_stderr = stderr;
    FILE *o = s_guard_open(&s_guards[0], STDOUT_FILENO, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF);
    FILE *e = s_guard_open(&s_guards[1], STDERR_FILENO, _IOLBF);
    if (o)
        stdout = o;
    if (e)
        stderr = e;
    atexit(s_guard_fini);
}

bool
out_stdout_written(void)
{
    fflush(stdout);
    return s_guards[0].nfirst > 0 || s_guards[0].first_done;
}

const char *
out_first_error(void)
{
    fflush(stderr);
    s_guards[1].first[s_guards[1].nfirst] = '\0';
    return s_guards[1].first;
}

FILE *
out_raw_stderr(void)
{
    fflush(stderr);
    return s_raw_stderr ? s_raw_stderr : stderr;
}

FILE *
out_data_stdout(void)
{
    if (!s_raw_stdout || isatty(STDOUT_FILENO))
        return stdout;
    fflush(stdout);
    return s_raw_stdout;
}

char *
out_escape(const char *s)
{
    return crm_utf8_escape(s ? s : "", s ? strlen(s) : 0, NULL);
}

/* ==== JSON ==== */

void
out_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        /* one UTF-8 sequence at a time: controls (C1 and bidi ones too) as \u escapes */
        size_t n = *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 1;
        if (strnlen((const char *)p, n) < n)
            n = 1;
        char *one = crm_utf8_escape((const char *)p, n, NULL);
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else if (one[0] == '\\' && one[1] == 'u')
            fputs(one, f); /* \u009b, \u202e: the same escape JSON uses */
        else if (one[0] == '\\' && one[1] == 'x')
            fputs("\\ufffd", f); /* not UTF-8: the replacement character */
        else
            fwrite(p, 1, n, f);
        free(one);
        p += n;
    }
    fputc('"', f);
}

static void s_json_message(FILE *f, const ProtobufCMessage *msg);

/* True if FD of a message of D holds one time (not a list of them). */
static bool
s_is_time(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd)
{
    return fd->label != PROTOBUF_C_LABEL_REPEATED && crm_entity_is_time(d, fd);
}

void
out_time(int64_t ms, out_time_t style, char out[40])
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    localtime_r(&secs, &tm); /* TZ, or the client config's timezone (main.c) */
    size_t n = style == OUT_TIME_TABLE  ? strftime(out, 40, "%Y-%m-%d %H:%M", &tm)
               : style == OUT_TIME_LINE ? strftime(out, 40, "%Y-%m-%d %H:%M:%S", &tm)
                                        : strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    if (style != OUT_TIME_RFC3339)
        return;
    int frac = (int)(ms - (int64_t)secs * 1000); /* milliseconds, kept when there are any */
    if (frac)
        n += (size_t)snprintf(out + n, 40 - n, ".%03d", frac);
    long off = tm.tm_gmtoff;
    if (off == 0)
        snprintf(out + n, 40 - n, "Z");
    else
        snprintf(out + n, 40 - n, "%c%02ld:%02ld", off < 0 ? '-' : '+', labs(off) / 3600,
                 labs(off) % 3600 / 60);
}

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
        } else if (s_is_time(d, fd)) { /* RFC 3339 with the user's offset; null if unset */
            int64_t ms = *(const int64_t *)member;
            char when[40];
            out_time(ms, OUT_TIME_RFC3339, when);
            if (ms)
                out_json_str(f, when);
            else
                fputs("null", f);
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

/* V (fresh; freed here) cut to MAXW display columns on a whole character,
   with "…" as its last column when cut. */
char *
out_cut(char *v, size_t maxw)
{
    if (crm_utf8_width(v) <= maxw)
        return v;
    size_t w = 0, i = 0, len = strlen(v);
    while (i < len) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)v[i + n] & 0xC0) == 0x80)
            n++;
        char ch[8] = {0};
        memcpy(ch, v + i, n < 8 ? n : 7);
        size_t cw = crm_utf8_width(ch);
        if (w + cw + 1 > maxw)
            break;
        w += cw;
        i += n;
    }
    char *cut = malloc(i + sizeof "…");
    CRM_ASSERT_ALLOC(cut);
    memcpy(cut, v, i);
    memcpy(cut + i, "…", sizeof "…");
    free(v);
    return cut;
}

/* The width a table may take on OUT: the terminal's, or $COLUMNS; 0 if neither. */
size_t
out_term_width(FILE *out)
{
    struct winsize ws;
    const char *env = getenv("COLUMNS");
    if (env && atoi(env) > 0)
        return (size_t)atoi(env);
    if (isatty(fileno(out)) && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 0;
}

bool
cli_number_opt(const char *what, const char *opt, const char *val, unsigned long long min,
               unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (*val < '0' || *val > '9' || *end || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "crm %s: %s takes a whole number from %llu to %llu, not '%s'\n", what,
                opt, min, max, val);
        return false;
    }
    *out = v;
    return true;
}
