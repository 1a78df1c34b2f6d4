/*  =========================================================================
    crm_log - leveled logging to stderr

    Owns:      the process-wide log level and prefix.
    Must not:  log secrets (keys, passphrases) - callers pass public data only.
    =========================================================================
*/
#ifndef CRM_LOG_H
#define CRM_LOG_H

typedef enum { CRM_LOG_DEBUG, CRM_LOG_INFO, CRM_LOG_WARN, CRM_LOG_ERROR } crm_log_level_t;

extern crm_log_level_t crm_log_threshold;

/* Set the program name printed on each line and the minimum level. */
void crm_log_init(const char *prog, crm_log_level_t level);
/* The program name given to crm_log_init() ("crm" until then). */
const char *crm_log_prog(void);
/* Parse "debug|info|warn|error"; returns -1 if unknown. */
int crm_log_parse_level(const char *s);
/* Format and write one line; use the crm_log() macro instead. */
void crm_log_write(crm_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Checks the level before formatting anything (Redis serverLog). */
#define crm_log(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= crm_log_threshold)                                                          \
            crm_log_write((level), __VA_ARGS__);                                                   \
    } while (0)

/* Always-on assertion for programmer errors only, never for outside input. */
#define CRM_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            crm_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)
_Noreturn void crm_assert_fail(const char *expr, const char *file, int line);

/* At most PER_SEC lines a second from one call site; the rest are counted and
   reported with the next line that is let through. Bad input from the
   network must not be able to flood the log. */
typedef struct {
    long window;    /* the second the count is for */
    int count;      /* lines let through in that second */
    int suppressed; /* lines held back since the last one let through */
} crm_ratelimit_t;

/* True if a line may be written now; *suppressed gets how many were dropped. */
int crm_log_allow(crm_ratelimit_t *rl, int per_sec, int *suppressed);

/* Out of memory on a small allocation is a programmer-level failure here. */
#define CRM_ASSERT_ALLOC(p) CRM_ASSERT((p) != NULL)

#endif
