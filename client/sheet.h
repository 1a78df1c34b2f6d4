/*  =========================================================================
    sheet - reading text files as spreadsheets save them

    Owns:      turning the bytes of a CSV file written by Excel, WPS or a
               script into UTF-8 lines: a UTF-8 byte order mark dropped, GBK /
               GB18030 (what Chinese Excel and WPS save) detected or named and
               converted with iconv, the separator (',' ';' or tab) guessed
               from the header line.
    Must not:  know records or fields (cmd_import.c maps columns to fields).

    Detection is per line and streaming (standard input works, nothing is read
    ahead): a file is read as UTF-8 until a line is not valid UTF-8, and from
    that line on as GB18030 (a superset of GBK and GB2312). A newline byte
    never occurs inside a GB18030 character, so lines split the same in both.
    =========================================================================
*/
#ifndef SHEET_H
#define SHEET_H
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct sheet_reader sheet_reader_t;

/* A reader of F (borrowed). ENCODING names an iconv encoding ("gbk",
   "gb18030", "utf-8"...) or is NULL to detect. NULL with ERRBUF[256] set if
   iconv does not know the encoding. */
sheet_reader_t *sheet_reader_new(FILE *f, const char *encoding, char *errbuf);
/* The next line, newline included, as UTF-8 in *LINE (valid until the next
   call); -1 at the end of the file or on a read error (errno says; EINTR
   when a signal interrupted the read). *BAD is set when the line held bytes
   that are not valid in the encoding (each is shown as U+FFFD). */
ssize_t sheet_reader_line(sheet_reader_t *r, const char **line, bool *bad);
/* Was the last line UTF-8 in a file read as GB18030 since an earlier line (mixed
   encodings; the line is given as it is, with *BAD set)? */
bool sheet_reader_mixed(const sheet_reader_t *r);
/* The encoding the lines so far were read in: "UTF-8", "GB18030" or the given one. */
const char *sheet_reader_encoding(const sheet_reader_t *r);
/* Bytes read from the file so far. */
off_t sheet_reader_offset(const sheet_reader_t *r);
/* NULL-safe; sets *self_p = NULL. */
void sheet_reader_destroy(sheet_reader_t **self_p);

/* The separator of a CSV file whose header line is LINE: the one of ',' ';'
   and tab that occurs most often outside quotes (',' on a tie or none). */
char sheet_guess_separator(const char *line);

/* IN[0..LEN) converted from encoding FROM to UTF-8: a fresh NUL-terminated
   string (caller free()s); invalid bytes become U+FFFD and set *BAD. NULL if
   iconv does not know FROM. */
char *sheet_to_utf8(const char *from, const char *in, size_t len, bool *bad);

#endif
