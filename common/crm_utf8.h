/*  crm_utf8 - UTF-8 checks (utf8proc does the decoding) */
#ifndef CRM_UTF8_H
#define CRM_UTF8_H
#include <stdbool.h>
#include <stddef.h>

/* Text that cannot lie: what a stored string may hold.

   Every string on the wire is checked by its length, not up to a NUL, and must
   be valid UTF-8 (no overlongs, no surrogates) free of anything a terminal or a
   text renderer acts on instead of showing: NUL and the other C0 controls,
   DEL, the C1 controls U+0080-U+009F (U+009B is an 8-bit CSI), the
   bidirectional embeddings, overrides and isolates U+202A-U+202E and
   U+2066-U+2069 (they reorder what follows, "Trojan Source"), and the line and
   paragraph separators U+2028/U+2029. Multi-line text (a note's body) may also
   hold newline and tab; single-line text (names, phones, everything else) may
   not. */
typedef enum {
    CRM_TEXT_LINE = 0,      /* one line: no control character at all */
    CRM_TEXT_MULTILINE = 1, /* may also hold '\n' and '\t' */
    CRM_TEXT_STORED = 2,    /* what older versions let in ('\r', C1, bidi): read, never written */
} crm_text_t;

/* True if CP is never shown raw (the list above; '\n' and '\t' included). */
bool crm_utf8_is_control(int cp);
/* Characters that show as nothing and change no letter: Unicode's default
   ignorables - zero-width space, word joiner, BOM, soft hyphen, direction marks,
   tag characters, fillers and the like - but the zero-width (non-)joiners and
   variation selectors, which emoji and some scripts need (judged in context by
   crm_utf8_strip_invisible). Pasted names carry them unseen; kept, "李<U+200B>娜"
   or "李<U+E0041>娜" is not 李娜 to search or duplicates. */
bool crm_utf8_is_invisible(int cp);
/* S without its invisible characters (crm_utf8_is_invisible), in place, and
   without a joiner or variation selector that follows nothing it can act on
   (ASCII, Chinese and the other CJK scripts, or the start); returns how many
   bytes were removed. S must be valid UTF-8. */
size_t crm_utf8_strip_invisible(char *s);
/* True if S[0..LEN) is allowed text of kind KIND. On false, *bad_offset gets the
   byte offset of the first offending character and *bad_cp its code point (-1
   for bytes that are not UTF-8); either may be NULL. */
bool crm_utf8_text_ok(const char *s, size_t len, crm_text_t kind, size_t *bad_offset, int *bad_cp);
/* Valid UTF-8 without NUL, DEL or C0 controls but tab, newline and carriage
   return: what data stored by older versions holds (CRM_TEXT_STORED). */
bool crm_utf8_valid(const char *s, size_t len, size_t *bad_offset);
/* True if S[0..LEN) has a visible character: not only spaces, zero-width,
   format or filler characters. */
bool crm_utf8_has_visible(const char *s, size_t len);
/* "U+009B" or "byte 0xff": how an error message names CP (-1: BYTE). */
void crm_utf8_describe(int cp, unsigned char byte, char out[16]);
/* S[0..LEN) with every control character (crm_utf8_is_control) written as an
   escape a reader can see: \n, \t, \r; other C0 and DEL as \x1b; the rest
   as \u009b; bytes that
   are not UTF-8 as \xff. Characters in KEEP ("\n", or NULL) pass unchanged.
   Fresh string; caller free()s. */
char *crm_utf8_escape(const char *s, size_t len, const char *keep);
/* Number of code points in a valid UTF-8 string. */
size_t crm_utf8_length(const char *s, size_t len);
/* Edit distance (Levenshtein, by code point, of the first 64) between A and
   B, or MAX + 1 if it is more than MAX. */
size_t crm_utf8_distance(const char *a, const char *b, size_t max);
/* Terminal display width (CJK counts 2), for aligning tables. */
size_t crm_utf8_width(const char *s);

/* Folded for matching: NFKC and case-folded ("Ａbc" -> "abc"). Caller free()s. */
char *crm_utf8_fold(const char *s);

/* Sorting text as a reader expects, not by its bytes. A key to compare with
   memcmp (shorter first on a tie): Latin letters without case or accents
   ("émile" with "Emile"), compatibility forms folded (fullwidth "Ａ" is "a");
   Chinese characters in pinyin order for the 3,755 common characters of GB2312
   (its level 1, which is ordered by pinyin: 阿 北 陈 李 王 张 赵), as MySQL's
   ORDER BY CONVERT(name USING gbk) does; the rarer characters after those (by
   radical and stroke, then by code). ASCII comes first, then the common
   characters, then everything else. Made with iconv (UTF-8 to GB18030, which
   covers every code point) by a collator, which is not thread-safe. */
typedef struct crm_collator crm_collator_t;
/* NULL if this C library has no GB18030 converter. */
crm_collator_t *crm_collator_new(void);
void crm_collator_free(crm_collator_t **self_p);
/* The key of S (valid UTF-8), its length in *LEN. Caller free()s. */
char *crm_collate_key(crm_collator_t *self, const char *s, size_t *len);

#endif
