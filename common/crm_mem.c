/*  crm_mem - heap bytes in use, under glibc malloc or a sanitizer allocator */
#include "crm_mem.h"

#include <malloc.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CRM_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CRM_SANITIZER_ALLOCATOR 1
#endif
#endif

#ifdef CRM_SANITIZER_ALLOCATOR
/* from <sanitizer/allocator_interface.h>, which gcc does not always install */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

size_t
crm_mem_in_use(void)
{
#ifdef CRM_SANITIZER_ALLOCATOR
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

void
crm_mem_trim(void)
{
#ifndef CRM_SANITIZER_ALLOCATOR
    malloc_trim(0);
#endif
}
