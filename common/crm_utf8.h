/*  crm_utf8 - UTF-8 checks (utf8proc does the decoding) */
#ifndef CRM_UTF8_H
#define CRM_UTF8_H
#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is valid UTF-8 with no NUL and no C0 control other than
   tab, newline and carriage return. On false, *bad_offset gets the byte offset
   of the first offending byte. */
bool crm_utf8_valid(const char *s, size_t len, size_t *bad_offset);
/* Number of code points in a valid UTF-8 string. */
size_t crm_utf8_length(const char *s, size_t len);
/* Terminal display width (CJK counts 2), for aligning tables. */
size_t crm_utf8_width(const char *s);

/* Folded for matching: NFKC and case-folded ("Ａbc" -> "abc"). Caller free()s. */
char *crm_utf8_fold(const char *s);

#endif
