/*  =========================================================================
    crm_mem - how many heap bytes the process holds right now

    Used by the server's memory guard: libzmq (4.3.4) assembles a multipart
    message completely before the application sees any of it and bounds
    frames, not messages, so a peer streaming endless small frames can only
    be detected by watching the heap (RELIABILITY.md trap 4).
    =========================================================================
*/
#ifndef CRM_MEM_H
#define CRM_MEM_H
#include <stdbool.h>
#include <stddef.h>

/* Bytes currently allocated by malloc (not RSS: freed memory is not counted). */
size_t crm_mem_in_use(void);
/* Bytes resident in RAM (/proc/self/statm, read through a descriptor kept open), or 0
   if it cannot be read. */
size_t crm_mem_resident(void);
/* The heap bytes in use if they may exceed CAP, else 0: the memory guard's look.
   glibc's count (mallinfo2) walks every arena's free lists under the arena's lock -
   measured in crmd under a 1,000-subscriber feed, 0.43 ms a call on average and up to
   8.8 ms - so unless EXACT it is taken only when the resident set, which holds every
   heap page written to and still in RAM, is over CAP. Memory allocated but never written
   to, and pages swapped out, are seen only by an EXACT look (the guard makes one a
   second: a flood's half-received frames are what the kernel swaps out first). Under a
   sanitizer's allocator its own count is cheap and is taken every time. The descriptor
   kept for the resident set is the opening process's (crmd does not fork). */
size_t crm_mem_over(size_t cap, bool exact);
/* Give freed memory back to the OS where the allocator allows it. */
void crm_mem_trim(void);

/* A thread that looks every EVERY_MS for freed memory to give back. glibc keeps what a
   thread freed in that thread's arena: after a 1M-customer import crmd held
   515 MB resident of which malloc_trim returned 270 MB (RocksDB's flush and
   compaction threads each fill an arena). It trims only when more than 64 MiB
   are free in the heap: a trim walks each arena under its lock. NULL under a
   sanitizer's allocator, which has its own. */
typedef struct crm_mem_trimmer crm_mem_trimmer_t;
crm_mem_trimmer_t *crm_mem_trimmer_start(int every_ms);
/* Stops and joins it; NULL-safe; sets *self_p = NULL. */
void crm_mem_trimmer_stop(crm_mem_trimmer_t **self_p);

#endif
