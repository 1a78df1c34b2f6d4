/*  crm_utf8 - UTF-8 checks on top of utf8proc */
#include "crm_utf8.h"

#include <string.h>
#include <sys/types.h>
#include <utf8proc.h>

bool
crm_utf8_valid(const char *s, size_t len, size_t *bad_offset)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') ||
            cp == 0x7f) {
            if (bad_offset)
                *bad_offset = i;
            return false;
        }
        i += (size_t)n;
    }
    if (bad_offset)
        *bad_offset = 0;
    return true;
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
