/*  =========================================================================
    suggest - "did you mean" for commands, subcommands, flags and columns

    Owns:      the distance between a mistyped word and the words a table
               knows, and the choice of the one to suggest.
    Must not:  print (callers word the message).
    =========================================================================
*/
#ifndef SUGGEST_H
#define SUGGEST_H
#include <stddef.h>

/* Edit distance of A and B in bytes, a swap of neighbours counting one
   (99 for words over 64 bytes). */
size_t suggest_distance(const char *a, const char *b);
/* The word of CANDS[0..N) nearest to WORD, if near enough to be a typo
   (at most 2 edits and at most a third of WORD), else NULL. A candidate that
   starts with WORD (an abbreviation, 3 bytes at least) counts as near. */
const char *suggest_nearest(const char *word, const char *const *cands, size_t n);

#endif
