/*  crm_mem - heap bytes in use, under glibc malloc or a sanitizer allocator */
#include "crm_mem.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "crm_log.h"

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

size_t
crm_mem_resident(void)
{
    static _Atomic int fd = -1;
    int f = atomic_load(&fd);
    if (f < 0) {
        f = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (f < 0)
            return 0;
        int none = -1;
        if (!atomic_compare_exchange_strong(&fd, &none, f)) { /* another thread's is kept */
            close(f);
            f = none;
        }
    }
    char buf[128];
    ssize_t n = pread(f, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size, pages;
    if (sscanf(buf, "%llu %llu", &size, &pages) != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (size_t)pages * (size_t)(page > 0 ? page : 4096);
}

size_t
crm_mem_over(size_t cap, bool exact)
{
#ifndef CRM_SANITIZER_ALLOCATOR
    size_t rss = exact ? 0 : crm_mem_resident();
    if (rss && rss <= cap)
        return 0;
#else
    (void)exact;
#endif
    size_t used = crm_mem_in_use();
    return used > cap ? used : 0;
}

void
crm_mem_trim(void)
{
#ifndef CRM_SANITIZER_ALLOCATOR
    malloc_trim(0);
#endif
}

#define TRIM_MIN_FREE (64u << 20) /* freed bytes held before a trim is worth it */

struct crm_mem_trimmer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    int every_ms;
};

#ifndef CRM_SANITIZER_ALLOCATOR
static int64_t
s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
s_trimmer(void *arg)
{
    crm_mem_trimmer_t *self = arg;
    int64_t longest_us = 0;
    unsigned long passes = 0;
    pthread_mutex_lock(&self->lock);
    while (!self->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += self->every_ms / 1000;
        until.tv_nsec += (long)(self->every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!self->stop && pthread_cond_timedwait(&self->wake, &self->lock, &until) == 0)
            ;
        if (self->stop)
            break;
        pthread_mutex_unlock(&self->lock);
        /* a trim holds each arena's lock while it walks it (tens of ms for hundreds of
           MB): only when there is much to give back, not every turn of a steady load */
        struct mallinfo2 mi = mallinfo2();
        if (mi.fordblks < TRIM_MIN_FREE) {
            pthread_mutex_lock(&self->lock);
            continue;
        }
        int64_t t0 = s_mono_us();
        crm_mem_trim();
        int64_t took = s_mono_us() - t0;
        passes++;
        if (took > longest_us) {
            longest_us = took;
            crm_log(CRM_LOG_DEBUG, "memory trim: %.1f ms (the longest so far)", took / 1000.0);
        }
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    crm_log(CRM_LOG_DEBUG, "memory trim: %lu passes, the longest %.1f ms", passes,
            longest_us / 1000.0);
    return NULL;
}
#endif

crm_mem_trimmer_t *
crm_mem_trimmer_start(int every_ms)
{
#ifdef CRM_SANITIZER_ALLOCATOR
    (void)every_ms;
    return NULL;
#else
    crm_mem_trimmer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->every_ms = every_ms > 0 ? every_ms : 1000;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&self->thread, NULL, s_trimmer, self) != 0) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    return self;
#endif
}

void
crm_mem_trimmer_stop(crm_mem_trimmer_t **self_p)
{
    crm_mem_trimmer_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
