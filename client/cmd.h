/*  =========================================================================
    cmd - the crm client's shared context, exit codes and subcommands

    Exit codes scripts can rely on:
      0 ok, 1 the server refused (its message is printed), 2 usage error,
      3 cannot reach the server or authentication failed.
    =========================================================================
*/
#ifndef CMD_H
#define CMD_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "crm.pb-c.h"

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define CLI_TIMEOUT_MS 5000          /* a request's answer, unless --timeout */
#define CLI_REPORT_TIMEOUT_MS 300000 /* a report's (a scan of every record) */

typedef struct {
    bool json;           /* --json: machine-readable output */
    const char *config;  /* --config FILE / CRM_CONFIG / ~/.config/crm/client.conf */
    const char *server;  /* --server ENDPOINT / CRM_SERVER: overrides the enrollment */
    int timeout_ms;      /* --timeout SECONDS */
    bool allow_duplicate; /* add, import --allow-duplicate: create even a likely duplicate */
    const char *profile; /* --profile NAME / CRM_PROFILE: a named enrollment */
    bool wide;           /* --wide: tables show every value whole */
    const char *columns; /* --columns a,b,c: the table's columns */
    bool agent;          /* calls may go through a running crm agent (crm; not --no-agent) */
    bool agent_auto;     /* and one is started when none runs (agent = auto, CRM_AGENT=auto) */
} cli_ctx_t;

/* Where the enrollment is installed: --config, $CRM_CONFIG, the profile
   (--profile, $CRM_PROFILE, or the one `crm profile use` chose) under
   ~/.config/crm/profiles/NAME.conf, else ~/.config/crm/client.conf. */
const char *cli_config_path(const cli_ctx_t *ctx);
/* ~/.config/crm (or $XDG_CONFIG_HOME/crm) into OUT[N]. */
void cli_config_dir(char *out, size_t n);
/* The profile in use ("" for the default enrollment) into OUT[N]. */
void cli_profile_current(const cli_ctx_t *ctx, char *out, size_t n);

/* VAL as a whole number from MIN to MAX into *OUT; else false, having said on stderr
   "crm WHAT: OPT takes a whole number from MIN to MAX, not 'VAL'". */
bool cli_number_opt(const char *what, const char *opt, const char *val, unsigned long long min,
                    unsigned long long max, unsigned long long *out);

/* Subcommands: cmd_<name>(argc, argv, ctx) with argv[0] the subcommand. */
int cmd_enroll(int argc, char **argv, cli_ctx_t *ctx);
int cmd_profile(int argc, char **argv, cli_ctx_t *ctx);
int cmd_ping(int argc, char **argv, cli_ctx_t *ctx);
int cmd_whoami(int argc, char **argv, cli_ctx_t *ctx);
int cmd_customer(int argc, char **argv, cli_ctx_t *ctx);
int cmd_activity(int argc, char **argv, cli_ctx_t *ctx);
int cmd_deal(int argc, char **argv, cli_ctx_t *ctx);
int cmd_order(int argc, char **argv, cli_ctx_t *ctx);
int cmd_pipeline(int argc, char **argv, cli_ctx_t *ctx);
int cmd_report(int argc, char **argv, cli_ctx_t *ctx);
int cmd_ticket(int argc, char **argv, cli_ctx_t *ctx);
int cmd_feedback(int argc, char **argv, cli_ctx_t *ctx);
int cmd_task(int argc, char **argv, cli_ctx_t *ctx);
int cmd_today(int argc, char **argv, cli_ctx_t *ctx);
int cmd_note(int argc, char **argv, cli_ctx_t *ctx);
int cmd_tag(int argc, char **argv, cli_ctx_t *ctx);
int cmd_import(int argc, char **argv, cli_ctx_t *ctx);
int cmd_export(int argc, char **argv, cli_ctx_t *ctx);
/* `crm export` with its ARGV, quietly; the number of records exported goes to COUNT_OUT. */
int cmd_export_counted(int argc, char **argv, cli_ctx_t *ctx, char *count_out, size_t n);
int cmd_segment(int argc, char **argv, cli_ctx_t *ctx);
int cmd_audit(int argc, char **argv, cli_ctx_t *ctx);
int cmd_watch(int argc, char **argv, cli_ctx_t *ctx);
/* Every value FIELD (or every field) of record ID has had, by whom and when. */
int cmd_history(cli_ctx_t *ctx, const char *kind, const char *id, const char *field);

/* One CSV cell S to OUT, quoted when it holds SEP, a quote or a line break;
   unless RAW, a cell a spreadsheet would run as a formula gets a leading '. */
void cmd_csv_cell(FILE *out, const char *s, bool raw, char sep);

/* ==== output.c: generic printing driven by protobuf-c descriptors ==== */

/* How a time is shown: tables (minutes), lines (seconds), RFC 3339 with the
   offset (show, --json): always in the user's time zone (TZ or timezone). */
typedef enum { OUT_TIME_TABLE, OUT_TIME_LINE, OUT_TIME_RFC3339 } out_time_t;
/* MS (since the epoch) in the user's time zone, as STYLE says, into OUT[40]. */
void out_time(int64_t ms, out_time_t style, char out[40]);

/* One JSON object for MSG on one line (field names as in the .proto). */
void out_json(FILE *f, const ProtobufCMessage *msg);
/* The same without the newline, to nest in a larger object. */
void out_json_inline(FILE *f, const ProtobufCMessage *msg);
/* S as a JSON string literal, escaped. */
void out_json_str(FILE *f, const char *s);
/* "name   value" lines, names padded by display width; enums in lower case. */
void out_fields(FILE *f, const ProtobufCMessage *msg);
/* Wrap stdout and stderr so that every control character written to them is
   shown escaped (\x1b, \u009b); newline and tab pass. Call once, first. */
void out_guard_init(void);
/* S on one line: every control character escaped, newline and tab too.
   Fresh string; caller free()s. */
char *out_escape(const char *s);
/* V (fresh; freed here) cut to MAXW display columns (CJK counts double) on a
   whole character, with "…" as its last column when cut. */
char *out_cut(char *v, size_t maxw);
/* The width lines may take on OUT: $COLUMNS, else the terminal's; 0 if neither. */
size_t out_term_width(FILE *out);
/* The first line written to stderr so far ("" if none), escaped: what
   `--json` reports as the message of a usage error. */
const char *out_first_error(void);
/* True once anything was written to stdout (through the guard). */
bool out_stdout_written(void);
/* stderr before the guard, for the progress bar's carriage returns. */
FILE *out_raw_stderr(void);
/* Where data (an export) goes: stdout unguarded when it is not a terminal. */
FILE *out_data_stdout(void);

#endif
