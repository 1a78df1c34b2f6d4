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
#include <stddef.h>

/* Bytes currently allocated by malloc (not RSS: freed memory is not counted). */
size_t crm_mem_in_use(void);
/* Give freed memory back to the OS where the allocator allows it. */
void crm_mem_trim(void);

#endif
