/*  crm_utf8 - UTF-8 checks on top of utf8proc */
#include "crm_utf8.h"
#include "crm_log.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <utf8proc.h>

bool
crm_utf8_is_control(int cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

/* The joiners and selectors: they change how the character before them (and, for
   the joiners, after) is drawn - in Arabic and Indic scripts, emoji sequences,
   Mongolian, a glyph variant - and show as nothing anywhere else */
static bool
s_joiner(int cp)
{
    return cp == 0x200c || cp == 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f) ||
           (cp >= 0xe0100 && cp <= 0xe01ef) || (cp >= 0x180b && cp <= 0x180d) || cp == 0x180f;
}

/* A character a joiner or selector after it does nothing to: ASCII, Chinese (and
   the other CJK scripts), their punctuation and full-width forms */
static bool
s_plain(int cp)
{
    return cp < 0x80 || (cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7a3) ||
           (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xffef) ||
           (cp >= 0x20000 && cp <= 0x3ffff);
}

bool
crm_utf8_is_invisible(int cp)
{
    /* Unicode's Default_Ignorable_Code_Point (utf8proc's "ignorable": fillers, tags,
       format controls...) but the joiners and selectors, which are judged by what they
       follow (crm_utf8_strip_invisible); plus U+061C, U+180E */
    if (cp < 0xa0 || s_joiner(cp) || crm_utf8_is_control(cp)) /* (controls are refused) */
        return false;
    if (cp == 0x061c || cp == 0x180e || utf8proc_get_property(cp)->ignorable)
        return true;
    /* the other format characters (interlinear annotation, hieroglyph joiners...) but
       the prepended concatenation marks, which are drawn (Arabic number signs...) */
    bool drawn = (cp >= 0x0600 && cp <= 0x0605) || cp == 0x06dd || cp == 0x070f ||
                 cp == 0x0890 || cp == 0x0891 || cp == 0x08e2 || cp == 0x110bd ||
                 cp == 0x110cd;
    return !drawn && utf8proc_category(cp) == UTF8PROC_CATEGORY_CF;
}

size_t
crm_utf8_strip_invisible(char *s)
{
    size_t len = strlen(s), i = 0, o = 0;
    int prev = -1; /* the last character kept (-1: none yet) */
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) { /* not reached for valid UTF-8: keep the rest as it is */
            memmove(s + o, s + i, len - i);
            o += len - i;
            break;
        }
        bool drop = crm_utf8_is_invisible(cp) || (s_joiner(cp) && (prev < 0 || s_plain(prev)));
        if (!drop) {
            memmove(s + o, s + i, (size_t)n);
            o += (size_t)n;
            prev = cp;
        }
        i += (size_t)n;
    }
    s[o] = '\0';
    return len - o;
}

bool
crm_utf8_text_ok(const char *s, size_t len, crm_text_t kind, size_t *bad_offset, int *bad_cp)
{
    size_t i = 0;
    bool ok = true;
    utf8proc_int32_t cp = -1;
    while (i < len) {
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            cp = -1;
            ok = false;
            break;
        }
        bool refused = kind == CRM_TEXT_STORED
                           ? cp == 0 || cp == 0x7f ||
                                 (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r')
                           : crm_utf8_is_control(cp) &&
                                 !(kind == CRM_TEXT_MULTILINE && (cp == '\n' || cp == '\t'));
        if (refused) {
            ok = false;
            break;
        }
        i += (size_t)n;
    }
    if (bad_offset)
        *bad_offset = ok ? 0 : i;
    if (bad_cp)
        *bad_cp = ok ? 0 : cp;
    return ok;
}

bool
crm_utf8_valid(const char *s, size_t len, size_t *bad_offset)
{
    return crm_utf8_text_ok(s, len, CRM_TEXT_STORED, bad_offset, NULL);
}

/* Letters that render as blank space (Hangul fillers, braille blank). */
static bool
s_blank_letter(int cp)
{
    return cp == 0x115f || cp == 0x1160 || cp == 0x3164 || cp == 0xffa0 || cp == 0x2800;
}

bool
crm_utf8_has_visible(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0)
            return false;
        /* letters, digits, punctuation, symbols show; spaces, marks alone,
           format (zero-width), controls and unassigned code points do not */
        utf8proc_category_t cat = utf8proc_category(cp);
        bool shows = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                     (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_SO);
        if (shows && !s_blank_letter(cp))
            return true;
        i += (size_t)n;
    }
    return false;
}

void
crm_utf8_describe(int cp, unsigned char byte, char out[16])
{
    if (cp < 0)
        snprintf(out, 16, "byte 0x%02x", byte);
    else
        snprintf(out, 16, "U+%04X", (unsigned)cp);
}

char *
crm_utf8_escape(const char *s, size_t len, const char *keep)
{
    /* worst case: every byte becomes \xHH (4), or a 2-byte C1 becomes \u009b (6) */
    char *out = malloc(len * 4 + 1), *o = out;
    if (!out)
        abort();
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            o += sprintf(o, "\\x%02x", (unsigned char)s[i]);
            i++;
            continue;
        }
        if (crm_utf8_is_control(cp) && !(cp > 0 && cp < 0x80 && keep && strchr(keep, cp))) {
            if (cp == '\n' || cp == '\t' || cp == '\r')
                o += sprintf(o, "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r');
            else if (cp < 0x80)
                o += sprintf(o, "\\x%02x", (unsigned)cp);
            else
                o += sprintf(o, "\\u%04x", (unsigned)cp);
        } else {
            memcpy(o, s + i, (size_t)n);
            o += n;
        }
        i += (size_t)n;
    }
    *o = '\0';
    return out;
}

size_t
crm_utf8_length(const char *s, size_t len)
{
    size_t i = 0, count = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        i += n > 0 ? (size_t)n : 1;
        count++;
    }
    return count;
}

/* The code points of S (at most MAX) into OUT; returns how many. */
static size_t
s_codepoints(const char *s, utf8proc_int32_t *out, size_t max)
{
    size_t len = strlen(s), i = 0, n = 0;
    while (i < len && n < max) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        out[n++] = k > 0 ? cp : -1;
        i += k > 0 ? (size_t)k : 1;
    }
    return n;
}

size_t
crm_utf8_distance(const char *a, const char *b, size_t max)
{
    enum { CAP = 64 };
    utf8proc_int32_t x[CAP], y[CAP];
    size_t m = s_codepoints(a, x, CAP), n = s_codepoints(b, y, CAP);
    if ((m > n ? m - n : n - m) > max)
        return max + 1;
    /* Levenshtein, two rows; stop once a whole row is past MAX */
    size_t prev[CAP + 1], cur[CAP + 1];
    for (size_t j = 0; j <= n; j++)
        prev[j] = j;
    for (size_t i = 1; i <= m; i++) {
        size_t best = cur[0] = i;
        for (size_t j = 1; j <= n; j++) {
            size_t sub = prev[j - 1] + (x[i - 1] != y[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (cur[j] < best)
                best = cur[j];
        }
        if (best > max)
            return max + 1;
        memcpy(prev, cur, (n + 1) * sizeof *prev);
    }
    return prev[n] > max ? max + 1 : prev[n];
}

size_t
crm_utf8_width(const char *s)
{
    size_t len = strlen(s), i = 0, width = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) {
            width++;
            i++;
            continue;
        }
        width += (size_t)utf8proc_charwidth(cp);
        i += (size_t)n;
    }
    return width;
}

char *
crm_utf8_fold(const char *s)
{
    /* ASCII is its own NFKC form and case-folds to itself with A-Z lowered: most text
       of a Latin-script CRM, and utf8proc's per-character decomposition was the largest
       cost of a search checked record by record (PERFORMANCE.md, "Single Latin letters
       and digits not indexed") */
    size_t len = 0;
    while (s[len] && !((unsigned char)s[len] & 0x80))
        len++;
    if (!s[len]) {
        char *low = malloc(len + 1);
        CRM_ASSERT_ALLOC(low);
        for (size_t i = 0; i <= len; i++)
            low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + ('a' - 'A') : s[i]);
        return low;
    }
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)s, 0, &out,
                     UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                         UTF8PROC_CASEFOLD);
    if (n < 0) {
        char *copy = strdup(s);
        return copy;
    }
    return (char *)out;
}

/* ==== Sorting ==== */

struct crm_collator {
    iconv_t cd; /* UTF-8 to GB18030 */
};

crm_collator_t *
crm_collator_new(void)
{
    iconv_t cd = iconv_open("GB18030", "UTF-8");
    if (cd == (iconv_t)-1)
        return NULL;
    crm_collator_t *self = malloc(sizeof *self);
    CRM_ASSERT_ALLOC(self);
    self->cd = cd;
    return self;
}

void
crm_collator_free(crm_collator_t **self_p)
{
    if (!*self_p)
        return;
    iconv_close((*self_p)->cd);
    free(*self_p);
    *self_p = NULL;
}

/* The class of a character that starts with LEAD in GB18030 (N bytes): ASCII,
   then GB2312's level 1 (lead bytes 0xB0-0xD7: the common characters, in pinyin
   order), then everything else */
static unsigned char
s_collate_class(unsigned char lead, size_t n)
{
    if (lead < 0x80)
        return 1;
    return n == 2 && lead >= 0xb0 && lead <= 0xd7 ? 2 : 3;
}

char *
crm_collate_key(crm_collator_t *self, const char *s, size_t *len)
{
    /* case, accents and compatibility forms folded: NFKD, marks stripped, case-folded */
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t flen =
        utf8proc_map((const utf8proc_uint8_t *)s, 0, &folded,
                     UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE |
                         UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD);
    if (flen < 0) { /* not UTF-8: its bytes, after all the text that is */
        size_t n = strlen(s);
        char *key = malloc(n + 2);
        CRM_ASSERT_ALLOC(key);
        key[0] = 4;
        memcpy(key + 1, s, n + 1);
        *len = n + 1;
        return key;
    }
    /* GB18030 takes at most 4 bytes a character, UTF-8 at least 1 */
    size_t cap = 4 * (size_t)flen + 4, gleft = cap, fleft = (size_t)flen;
    char *gb = malloc(cap), *in = (char *)folded, *out = gb;
    CRM_ASSERT_ALLOC(gb);
    iconv(self->cd, NULL, NULL, NULL, NULL);
    while (fleft && iconv(self->cd, &in, &fleft, &out, &gleft) == (size_t)-1 && errno == EILSEQ) {
        in++; /* (GB18030 maps every code point: not reached with valid UTF-8) */
        fleft--;
    }
    size_t glen = cap - gleft, k = 0;
    /* each character: its class, then its GB18030 bytes (2 or 4 bytes in a class of
       several lengths never make one a prefix of another: a 4-byte code has 0x30-0x39
       second, a 2-byte code 0x40-0xfe) */
    char *key = malloc(2 * glen + 1);
    CRM_ASSERT_ALLOC(key);
    const unsigned char *g = (const unsigned char *)gb;
    for (size_t i = 0; i < glen;) {
        size_t n = g[i] < 0x80                                             ? 1
                   : i + 3 < glen && g[i + 1] >= 0x30 && g[i + 1] <= 0x39 ? 4
                   : i + 1 < glen                                         ? 2
                                                                          : 1;
        key[k++] = (char)s_collate_class(g[i], n);
        memcpy(key + k, g + i, n);
        k += n;
        i += n;
    }
    key[k] = '\0';
    free(gb);
    free(folded);
    *len = k;
    return key;
}
