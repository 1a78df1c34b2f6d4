/*  crm_log - leveled logging to stderr */
#include "crm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crm_utf8.h"

crm_log_level_t crm_log_threshold = CRM_LOG_INFO;
static const char *s_prog = "crm";
static const char *const s_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
crm_log_init(const char *prog, crm_log_level_t level)
{
    s_prog = prog;
    crm_log_threshold = level;
}

const char *
crm_log_prog(void)
{
    return s_prog;
}

int
crm_log_parse_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void
crm_log_write(crm_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, s_level_names[level], s_prog);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one entry is one line: whatever a client sent shows escaped, so it can
       neither forge a line nor drive the terminal of whoever reads the log */
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    char *safe = crm_utf8_escape(msg, mlen, NULL);
    if (n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "%s", safe);
    free(safe);
    fprintf(stderr, "%s\n", line);
}

void
crm_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s: assertion failed: %s (%s:%d)\n", s_prog, expr, file, line);
    abort();
}

int
crm_log_allow(crm_ratelimit_t *rl, int per_sec, int *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec != rl->window) {
        rl->window = ts.tv_sec;
        rl->count = 0;
    }
    if (rl->count >= per_sec) {
        rl->suppressed++;
        return 0;
    }
    rl->count++;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return 1;
}
