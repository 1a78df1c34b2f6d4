/*  suggest - "did you mean" (see suggest.h) */
#include "suggest.h"

#include <string.h>

size_t
suggest_distance(const char *a, const char *b)
{
    /* optimal string alignment: insertions, deletions, substitutions and
       transpositions of neighbours ("shwo" is one edit from "show") */
    size_t la = strlen(a), lb = strlen(b), d[65][65];
    if (la > 64 || lb > 64)
        return 99;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *
suggest_nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = 3, wl = strlen(word);
    for (size_t i = 0; i < n; i++) {
        if (!cands[i] || !strcmp(cands[i], word))
            continue;
        size_t d = suggest_distance(word, cands[i]);
        if (wl >= 3 && !strncmp(cands[i], word, wl))
            d = 1; /* "cust" for "customer" */
        if (d < bestd && d * 3 <= wl + 1) {
            bestd = d;
            best = cands[i];
        }
    }
    return best;
}
