/*  sheet - reading text files as spreadsheets save them (see sheet.h) */
#include "sheet.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crm_utf8.h"

struct sheet_reader {
    FILE *f;            /* borrowed; or the converted text of a UTF-16 file (owned) */
    FILE *borrowed;     /* the caller's stream when f is the converted text */
    char *text;         /* the converted text of a UTF-16 file */
    char label[32];     /* the encoding of the file when it is not that of its lines */
    char *raw;          /* getline's buffer */
    size_t rawcap;
    char *conv;         /* the converted line */
    char enc[32];       /* the encoding in use */
    bool forced;        /* given with --encoding: never switched */
    bool first;         /* the first line: drop a byte order mark */
    bool switched;      /* read as UTF-8 until a line was not: GB18030 since */
    bool mixed;         /* the last line is UTF-8 all the same (mixed encodings) */
    off_t offset;       /* bytes read */
};

/* Does valid UTF-8 P[0..N) hold a Chinese character (U+3400-U+9FFF)? GB18030 text is
   hardly ever valid UTF-8 (3 lines in 10,000 of names and cities), and then not with
   one: none in 200,000 lines of GB2312's common characters */
static bool
s_has_cjk(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i + 2 < n; i++)
        if ((u[i] & 0xf0) == 0xe0) {
            unsigned cp = (u[i] & 0x0fu) << 12 | (u[i + 1] & 0x3fu) << 6 | (u[i + 2] & 0x3fu);
            if (cp >= 0x3400 && cp <= 0x9fff)
                return true;
        }
    return false;
}

bool
sheet_reader_mixed(const sheet_reader_t *r)
{
    return r->mixed;
}

static bool
s_is_utf8(const char *name)
{
    return !strcasecmp(name, "utf-8") || !strcasecmp(name, "utf8");
}

sheet_reader_t *
sheet_reader_new(FILE *f, const char *encoding, char *errbuf)
{
    if (encoding && !s_is_utf8(encoding)) {
        iconv_t cd = iconv_open("UTF-8", encoding);
        if (cd == (iconv_t)-1) {
            snprintf(errbuf, 256, "unknown encoding '%.40s' (try gb18030, gbk, big5, utf-8)",
                     encoding);
            return NULL;
        }
        iconv_close(cd);
    }
    sheet_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->f = f;
    r->first = true;
    r->forced = encoding != NULL;
    snprintf(r->enc, sizeof r->enc, "%s", encoding && !s_is_utf8(encoding) ? encoding : "UTF-8");
    return r;
}

char *
sheet_to_utf8(const char *from, const char *in, size_t len, bool *bad)
{
    iconv_t cd = iconv_open("UTF-8", from);
    if (cd == (iconv_t)-1)
        return NULL;
    size_t cap = len * 4 + 8, outleft = cap - 1;
    char *out = malloc(cap), *o = out;
    char *i = (char *)in;
    size_t inleft = len;
    if (!out)
        abort();
    while (inleft > 0) {
        if (iconv(cd, &i, &inleft, &o, &outleft) != (size_t)-1)
            break;
        if (errno == E2BIG)
            break; /* cannot happen: 4 bytes out per byte in is enough */
        /* EILSEQ, or EINVAL (a character cut at the end): show U+FFFD, skip a byte */
        *bad = true;
        if (outleft < 3)
            break;
        memcpy(o, "\xEF\xBF\xBD", 3);
        o += 3;
        outleft -= 3;
        i++;
        inleft--;
    }
    *o = '\0';
    iconv_close(cd);
    return out;
}

/* Excel's "Unicode text" (and some WPS exports) is UTF-16 with a byte order
   mark: no line is found byte by byte in it, so the whole file (HEAD, the
   first N bytes read, then the rest of the stream) is converted to UTF-8 and
   read from memory. Line numbers stay right; offsets count converted bytes. */
static int
s_utf16(sheet_reader_t *r, const char *from, const char *head, size_t n, bool *bad)
{
    size_t len = n, cap = n + 65536;
    char *all = malloc(cap);
    if (!all)
        abort();
    memcpy(all, head, n);
    size_t got;
    while ((got = fread(all + len, 1, cap - len, r->f)) > 0) {
        len += got;
        if (len == cap && !(all = realloc(all, cap *= 2)))
            abort();
    }
    r->text = sheet_to_utf8(from, all, len, bad);
    free(all);
    if (!r->text)
        return -1;
    FILE *mem = fmemopen(r->text, strlen(r->text), "r");
    if (!mem)
        return -1;
    r->borrowed = r->f;
    r->f = mem;
    snprintf(r->label, sizeof r->label, "%s", from);
    snprintf(r->enc, sizeof r->enc, "UTF-8"); /* what its lines are now */
    return 0;
}

ssize_t
sheet_reader_line(sheet_reader_t *r, const char **line, bool *bad)
{
    *bad = false;
    *line = NULL;
    ssize_t n = getline(&r->raw, &r->rawcap, r->f);
    if (n < 0)
        return -1;
    r->offset += n;
    char *p = r->raw;
    bool forced16 = r->forced && (!strncasecmp(r->enc, "utf-16", 6) ||
                                  !strncasecmp(r->enc, "utf16", 5));
    bool bom16 = !r->forced && n >= 2 && (!memcmp(p, "\xFF\xFE", 2) || !memcmp(p, "\xFE\xFF", 2));
    if (r->first && (forced16 || bom16)) {
        char from[32];
        snprintf(from, sizeof from, "%s", forced16 ? r->enc : p[0] == '\xFF' ? "UTF-16LE" : "UTF-16BE");
        size_t skip = bom16 ? 2 : 0;
        r->first = false;
        if (s_utf16(r, from, p + skip, (size_t)n - skip, bad) != 0)
            return -1;
        if ((n = getline(&r->raw, &r->rawcap, r->f)) < 0)
            return -1;
        r->offset = n;
        p = r->raw;
    }
    if (r->first) {
        r->first = false;
        if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { /* UTF-8 byte order mark */
            p += 3;
            n -= 3;
        }
    }
    free(r->conv);
    r->conv = NULL;
    r->mixed = false;
    size_t badoff;
    /* a line of Chinese in UTF-8 after the switch is UTF-8, not GB18030: decoded as
       GB18030 it was imported garbled, without a word */
    if (r->switched && crm_utf8_valid(p, (size_t)n, &badoff) && s_has_cjk(p, (size_t)n)) {
        r->mixed = true;
        *bad = true;
        *line = p;
        return n;
    }
    if (s_is_utf8(r->enc)) {
        if (crm_utf8_valid(p, (size_t)n, &badoff) || memchr(p, '\0', (size_t)n)) {
            *line = p; /* a NUL or a control character is for the record rules to refuse */
            return n;
        }
        /* valid except for control characters? crm_utf8_valid refuses those too:
           look at the byte it stopped at */
        unsigned char c = (unsigned char)p[badoff];
        if (c < 0x80) {
            *line = p;
            return n;
        }
        if (r->forced) {
            r->conv = sheet_to_utf8("UTF-8", p, (size_t)n, bad);
            *line = r->conv;
            return (ssize_t)strlen(r->conv);
        }
        snprintf(r->enc, sizeof r->enc, "GB18030"); /* Chinese Excel and WPS */
        r->switched = true;
    }
    r->conv = sheet_to_utf8(r->enc, p, (size_t)n, bad);
    if (!r->conv) { /* checked in _new; cannot happen */
        *line = p;
        return n;
    }
    *line = r->conv;
    return (ssize_t)strlen(r->conv);
}

const char *
sheet_reader_encoding(const sheet_reader_t *r)
{
    return *r->label ? r->label : r->enc;
}

off_t
sheet_reader_offset(const sheet_reader_t *r)
{
    return r->offset;
}

void
sheet_reader_destroy(sheet_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->borrowed)
        fclose((*self_p)->f);
    free((*self_p)->text);
    free((*self_p)->raw);
    free((*self_p)->conv);
    free(*self_p);
    *self_p = NULL;
}

char
sheet_guess_separator(const char *line)
{
    size_t comma = 0, semi = 0, tab = 0;
    bool quoted = false;
    for (const char *p = line; *p && (quoted || (*p != '\n' && *p != '\r')); p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == ',')
            comma++;
        else if (!quoted && *p == ';')
            semi++;
        else if (!quoted && *p == '\t')
            tab++;
    }
    if (tab > comma && tab >= semi)
        return '\t';
    if (semi > comma)
        return ';';
    return ',';
}
