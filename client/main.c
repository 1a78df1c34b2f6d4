/*  crm - the OneView client: global options, then a sorted command table (git.c) */
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "crm_log.h"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv, cli_ctx_t *ctx);
    const char *summary;
};

static const struct cmd s_cmds[] = {
    {"activity", cmd_activity, "log and list calls, visits, WeChat... on a customer's timeline"},
    {"audit", cmd_audit, "the audit trail (managers, admins)"},
    {"customer", cmd_customer, "add, show, edit, list, search, delete, convert customers"},
    {"deal", cmd_deal, "the sales pipeline: add, show, edit, list, move, delete deals"},
    {"enroll", cmd_enroll, "install the enrollment file an admin gave you"},
    {"export", cmd_export, "write records as CSV or JSON Lines"},
    {"feedback", cmd_feedback, "satisfaction scores (CSAT, NPS): add, list, summary"},
    {"import", cmd_import, "read records from CSV or JSON Lines"},
    {"note", cmd_note, "add a note to a customer's timeline"},
    {"order", cmd_order, "record orders and refunds; list, show orders"},
    {"ping", cmd_ping, "check that the server answers"},
    {"pipeline", cmd_pipeline, "deals by stage: count, amount, weighted amount"},
    {"tag", cmd_tag, "add or remove tags on a customer"},
    {"segment", cmd_segment, "saved audiences: save, list, show, count, export, rm"},
    {"task", cmd_task, "follow-up reminders: add, list, done, reopen"},
    {"ticket", cmd_ticket, "after-sales cases: open, show, list, assign, reply, resolve, close"},
    {"today", cmd_today, "your day: tasks, tickets near their deadline, customers to call"},
    {"watch", cmd_watch, "the live change feed"},
    {"whoami", cmd_whoami, "show your user, department and role"},
};

static const char s_usage[] =
    "usage: crm [--json] [--config FILE] [--server ENDPOINT] [--timeout SECONDS] COMMAND ...\n"
    "\n"
    "  --json             one JSON object per line instead of tables\n"
    "  --config FILE      enrollment to use (default $CRM_CONFIG or ~/.config/crm/client.conf)\n"
    "  --server ENDPOINT  server to talk to (default $CRM_SERVER or the enrollment's)\n"
    "  --timeout SECONDS  give up after this long (default 5)\n"
    "\n"
    "Exit codes: 0 ok, 1 the server refused, 2 usage error, 3 server unreachable or\n"
    "authentication failed.\n"
    "\n"
    "Commands (crm COMMAND --help for more):\n";

static int
s_usage_print(FILE *out)
{
    fputs(s_usage, out);
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(out, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    return out == stdout ? EXIT_OK : EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"server", required_argument, NULL, 's'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cli_ctx_t ctx = {false, NULL, getenv("CRM_SERVER"), 5000, false};
    if (ctx.server && !*ctx.server)
        ctx.server = NULL;
    crm_log_init("crm", CRM_LOG_WARN);
    out_guard_init(); /* nothing received may drive the terminal: see output.c */
    int c;
    /* '+': stop at the first non-option, the subcommand */
    while ((c = getopt_long(argc, argv, "+jc:s:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            ctx.json = true;
            break;
        case 'c':
            ctx.config = optarg;
            break;
        case 's':
            ctx.server = optarg;
            break;
        case 't': {
            char *end = NULL;
            double secs = strtod(optarg, &end);
            if (!*optarg || *end || secs <= 0 || secs > 3600) {
                fprintf(stderr, "crm: --timeout needs seconds between 0 and 3600, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            ctx.timeout_ms = (int)(secs * 1000);
            break;
        }
        case 'h':
            return s_usage_print(stdout);
        default:
            return s_usage_print(stderr);
        }
    }
    if (optind >= argc)
        return s_usage_print(stderr);
    if (sodium_init() < 0) {
        fprintf(stderr, "crm: libsodium failed to initialize\n");
        return EXIT_UNREACHABLE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (!strcmp(name, s_cmds[i].name)) {
            /* the subcommand's arguments, as every subcommand reads them: --json
               (global, also accepted here) taken out, and --opt=value split into
               --opt value (git, kubectl), up to a "--" */
            char **sub = calloc((size_t)(argc - optind) * 2 + 1, sizeof *sub);
            char *split[64];
            int nsub = 0, nsplit = 0, rc;
            CRM_ASSERT_ALLOC(sub);
            sub[nsub++] = argv[optind];
            for (int a = optind + 1; a < argc; a++) {
                const char *eq = strchr(argv[a], '=');
                if (!strcmp(argv[a], "--")) {
                    while (a < argc)
                        sub[nsub++] = argv[a++];
                    break;
                }
                if (!strcmp(argv[a], "--json")) {
                    ctx.json = true;
                } else if (!strncmp(argv[a], "--", 2) && eq && eq > argv[a] + 2 &&
                           nsplit < 64) {
                    split[nsplit] = strndup(argv[a], (size_t)(eq - argv[a]));
                    CRM_ASSERT_ALLOC(split[nsplit]);
                    sub[nsub++] = split[nsplit++];
                    sub[nsub++] = (char *)eq + 1;
                } else {
                    sub[nsub++] = argv[a];
                }
            }
            optind = 1; /* subcommands run their own getopt from argv[0] = name */
            rc = s_cmds[i].fn(nsub, sub, &ctx);
            for (int k = 0; k < nsplit; k++)
                free(split[k]);
            free(sub);
            return rc;
        }
    fprintf(stderr, "crm: unknown command '%s'\n\n", name);
    return s_usage_print(stderr);
}
