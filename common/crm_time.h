/*  crm_time - clocks */
#ifndef CRM_TIME_H
#define CRM_TIME_H
#include <stdint.h>

/* Wall clock, milliseconds since the epoch (UTC). */
int64_t crm_time_now_ms(void);
/* Wall clock, microseconds since the epoch (UTC). */
int64_t crm_time_now_us(void);
/* Monotonic clock in microseconds, for timeouts and latencies. */
int64_t crm_time_mono_us(void);

#endif
