/*  =========================================================================
    crm - the OneView client: global options, then a sorted command table (git.c)

    Everything that applies to every command happens here, once: global
    options (also accepted after the command: --json, --wide, --columns),
    --opt=value split into --opt value, `crm help CMD`, "did you mean" for a
    mistyped command, and with --json a usage error as one JSON object on
    stdout. The bash completion script is generated from this table and the
    record kinds' tables (`crm completion bash`).
    =========================================================================
*/
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cmd.h"
#include "crm_entity.h"
#include "crm_kv.h"
#include "crm_log.h"
#include "suggest.h"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv, cli_ctx_t *ctx);
    const char *summary;
};

static int s_completion(int argc, char **argv, cli_ctx_t *ctx);
static int s_help(int argc, char **argv, cli_ctx_t *ctx);

static const struct cmd s_cmds[] = {
    {"activity", cmd_activity, "log and list calls, visits, WeChat... on a customer's timeline"},
    {"agent", cmd_agent, "keep one connection open for the commands you run next: start, stop, status"},
    {"audit", cmd_audit, "the audit trail (managers, admins)"},
    {"completion", s_completion, "print the bash completion script: source <(crm completion bash)"},
    {"customer", cmd_customer, "add, show, edit, list, search, delete, convert customers"},
    {"deal", cmd_deal, "the sales pipeline: add, show, edit, list, move, delete deals"},
    {"enroll", cmd_enroll, "install the enrollment file an admin gave you"},
    {"export", cmd_export, "write records as CSV, Excel CSV, xlsx or JSON Lines"},
    {"feedback", cmd_feedback, "satisfaction scores (CSAT, NPS): add, list, summary"},
    {"help", s_help, "help COMMAND: what a command does and the flags it takes"},
    {"import", cmd_import, "read records from spreadsheets (CSV, GBK...) or JSON Lines"},
    {"note", cmd_note, "add a note to a customer's timeline"},
    {"order", cmd_order, "record orders and refunds; list, show orders"},
    {"ping", cmd_ping, "check that the server answers"},
    {"pipeline", cmd_pipeline, "deals by stage: count, amount, weighted amount"},
    {"profile", cmd_profile, "the enrollments this client holds: list, use"},
    {"report", cmd_report, "reports: summary, pipeline, sales, tickets, satisfaction, value, activity"},
    {"segment", cmd_segment, "saved audiences: save, list, show, count, export, rm"},
    {"tag", cmd_tag, "add or remove tags on a customer"},
    {"task", cmd_task, "follow-up reminders: add, list, done, reopen"},
    {"ticket", cmd_ticket, "after-sales cases: open, show, list, assign, reply, resolve, close"},
    {"today", cmd_today, "your day: tasks, tickets near their deadline, customers to call"},
    {"watch", cmd_watch, "the live change feed"},
    {"whoami", cmd_whoami, "show your user, department and role"},
};
#define NCMDS (sizeof s_cmds / sizeof s_cmds[0])

/* The global options: one table for getopt, the usage and the completion. */
static const struct option s_longopts[] = {{"json", no_argument, NULL, 'j'},
                                           {"config", required_argument, NULL, 'c'},
                                           {"server", required_argument, NULL, 's'},
                                           {"timeout", required_argument, NULL, 't'},
                                           {"profile", required_argument, NULL, 'p'},
                                           {"wide", no_argument, NULL, 'w'},
                                           {"columns", required_argument, NULL, 'C'},
                                           {"no-agent", no_argument, NULL, 'A'},
                                           {"version", no_argument, NULL, 'V'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};

static const char s_usage[] =
    "usage: crm [--json] [--config FILE] [--profile NAME] [--server ENDPOINT] [--timeout SECONDS]\n"
    "           [--wide] [--columns A,B,C] [--no-agent] [--version] COMMAND ...\n"
    "\n"
    "  --json             one JSON object per line instead of tables (usage errors too)\n"
    "  --config FILE      enrollment to use (default $CRM_CONFIG, the profile, or\n"
    "                     ~/.config/crm/client.conf)\n"
    "  --profile NAME     use the enrollment of profile NAME (default $CRM_PROFILE, or the\n"
    "                     one 'crm profile use' chose)\n"
    "  --server ENDPOINT  server to talk to (default $CRM_SERVER or the enrollment's)\n"
    "  --timeout SECONDS  give up after this long (default 5)\n"
    "  --wide             tables show every value whole, however wide\n"
    "  --columns A,B,C    the columns of a table (fields of the kind listed)\n"
    "  --no-agent         connect directly even if a crm agent is running (CRM_AGENT=off)\n"
    "  --version          print the version\n"
    "Options take '--opt value' or '--opt=value'.\n"
    "\n"
    "Exit codes: 0 ok, 1 the server refused, 2 usage error, 3 server unreachable or\n"
    "authentication failed.\n"
    "\n"
    "Commands (crm help COMMAND, or crm COMMAND --help, for more):\n";

static int
s_usage_print(FILE *out)
{
    fputs(s_usage, out);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    return out == stdout ? EXIT_OK : EXIT_USAGE;
}

static const struct cmd *
s_lookup(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (!strcmp(name, s_cmds[i].name))
            return &s_cmds[i];
    return NULL;
}

/* "unknown command 'X'", with the nearest command if it looks like a typo. */
static int
s_unknown(const char *name)
{
    const char *names[NCMDS];
    for (size_t i = 0; i < NCMDS; i++)
        names[i] = s_cmds[i].name;
    const char *near = suggest_nearest(name, names, NCMDS);
    if (near)
        fprintf(stderr, "crm: unknown command '%s'; did you mean '%s'?\n", name, near);
    else
        fprintf(stderr, "crm: unknown command '%s' (crm --help lists them)\n", name);
    return EXIT_USAGE;
}

/* `crm help [COMMAND [SUBCOMMAND]]`: the command's own --help. */
static int
s_help(int argc, char **argv, cli_ctx_t *ctx)
{
    if (argc < 2)
        return s_usage_print(stdout);
    const struct cmd *c = s_lookup(argv[1]);
    if (!c)
        return s_unknown(argv[1]);
    char *args[4] = {argv[1], argc > 2 ? argv[2] : (char *)"--help",
                     argc > 2 ? (char *)"--help" : NULL, NULL};
    return c->fn(argc > 2 ? 3 : 2, args, ctx);
}

/* `crm completion bash`: a completion script made from the tables - the
   commands and global options here, each record kind's subcommands and
   flags from `crm KIND --complete` at completion time (entity.c). */
static int
s_completion(int argc, char **argv, cli_ctx_t *ctx)
{
    (void)ctx;
    if (argc != 2 || strcmp(argv[1], "bash")) {
        bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: crm completion bash\n\nPrints a bash completion script; load it with\n"
                "  source <(crm completion bash)\nor save it as "
                "~/.local/share/bash-completion/completions/crm.\n");
        return help ? EXIT_OK : EXIT_USAGE;
    }
    printf("# bash completion for crm, generated by 'crm completion bash' from its command table\n"
           "_crm() {\n"
           "    local cur=${COMP_WORDS[COMP_CWORD]} i cmd= sub= n=0\n"
           "    local cmds='");
    for (size_t i = 0; i < NCMDS; i++)
        printf("%s%s", i ? " " : "", s_cmds[i].name);
    printf("'\n    local globals='");
    for (const struct option *o = s_longopts; o->name; o++)
        printf("%s--%s", o == s_longopts ? "" : " ", o->name);
    printf("'\n    local kinds='");
    size_t k = 0;
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++)
        if (s_lookup(e->name))
            printf("%s%s", k++ ? " " : "", e->name);
    printf("'\n"
           "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
           "        case ${COMP_WORDS[i]} in\n"
           "            --config|--profile|--server|--timeout|--columns) ((i++)) ;;\n"
           "            -*) ;;\n"
           "            *) if [ -z \"$cmd\" ]; then cmd=${COMP_WORDS[i]};\n"
           "               elif [ -z \"$sub\" ]; then sub=${COMP_WORDS[i]}; fi ;;\n"
           "        esac\n"
           "    done\n"
           "    if [ -z \"$cmd\" ]; then\n"
           "        COMPREPLY=($(compgen -W \"$cmds $globals\" -- \"$cur\")); return\n"
           "    fi\n"
           "    if [ \"$cmd\" = help ]; then COMPREPLY=($(compgen -W \"$cmds\" -- \"$cur\")); return; fi\n"
           "    if [[ \" $kinds \" == *\" $cmd \"* ]]; then\n"
           "        if [ -z \"$sub\" ]; then\n"
           "            COMPREPLY=($(compgen -W \"$(crm \"$cmd\" --complete 2>/dev/null)\" -- \"$cur\"))\n"
           "        else\n"
           "            COMPREPLY=($(compgen -W \"$(crm \"$cmd\" \"$sub\" --complete 2>/dev/null)\" -- \"$cur\"))\n"
           "        fi\n"
           "        return\n"
           "    fi\n"
           "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
           "}\n"
           "complete -F _crm crm\n");
    return EXIT_OK;
}

/* How crm uses a crm agent (agent.h), from V: on (one that runs; the default), off, auto
   (and start one when none runs). */
static void
s_agent_mode(cli_ctx_t *ctx, const char *v)
{
    if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no"))
        ctx->agent = false;
    else if (!strcmp(v, "auto"))
        ctx->agent_auto = true;
    else if (strcmp(v, "on") && strcmp(v, "1") && strcmp(v, "yes"))
        fprintf(stderr, "crm: agent is on, off or auto, not '%s' (taken as on)\n", v);
}

/* What the client config (the enrollment file) says where the environment does not:
   times are shown and read in the user's zone - TZ, else `timezone = Asia/Shanghai`,
   else the system's; the agent - --no-agent, else CRM_AGENT (AGENT_ENV), else `agent =
   on|off|auto`, else on. */
static void
s_client_config(cli_ctx_t *ctx, const char *agent_env)
{
    char errbuf[CRM_ERRBUF];
    crm_kv_t *kv = NULL;
    const char *tz = getenv("TZ");
    bool want_tz = !tz || !*tz, want_agent = ctx->agent && !agent_env;
    if ((want_tz || want_agent) && access(cli_config_path(ctx), R_OK) == 0 &&
        crm_kv_load(cli_config_path(ctx), true, &kv, errbuf) == CRM_OK) {
        const char *zone = crm_kv_get(kv, "timezone");
        if (want_tz && zone && *zone)
            setenv("TZ", zone, 1);
        const char *agent = crm_kv_get(kv, "agent");
        if (want_agent && agent && *agent)
            s_agent_mode(ctx, agent);
    }
    if (ctx->agent && agent_env)
        s_agent_mode(ctx, agent_env);
    crm_kv_destroy(&kv);
    tzset();
}

int
main(int argc, char **argv)
{
    cli_ctx_t ctx = {.server = getenv("CRM_SERVER"), .timeout_ms = CLI_TIMEOUT_MS, .agent = true};
    const char *agent_env = getenv("CRM_AGENT");
    if (agent_env && !*agent_env)
        agent_env = NULL;
    if (ctx.server && !*ctx.server)
        ctx.server = NULL;
    if (getenv("CRM_PROFILE") && *getenv("CRM_PROFILE"))
        ctx.profile = getenv("CRM_PROFILE");
    crm_log_init("crm", CRM_LOG_WARN);
    out_guard_init(); /* nothing received may drive the terminal: see output.c */
    int c, rc;
    for (int a = 1; a < argc && argv[a][0] == '-'; a++) /* --json before anything is printed */
        if (!strcmp(argv[a], "--json"))
            ctx.json = true;
    /* '+': stop at the first non-option, the subcommand */
    while ((c = getopt_long(argc, argv, "+jc:s:t:p:wC:AVh", s_longopts, NULL)) != -1) {
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
        case 'p':
            ctx.profile = optarg;
            break;
        case 'w':
            ctx.wide = true;
            break;
        case 'C':
            ctx.columns = optarg;
            break;
        case 'A':
            ctx.agent = false;
            break;
        case 'V':
            printf(ctx.json ? "{\"version\":\"%s\"}\n" : "crm (OneView) %s\n", CRM_VERSION);
            return EXIT_OK;
        case 't': {
            char *end = NULL;
            double secs = strtod(optarg, &end);
            if (!*optarg || *end || secs <= 0 || secs > 3600) {
                fprintf(stderr,
                        "crm: --timeout needs seconds, more than 0 and at most 3600, not '%s'\n",
                        optarg);
                rc = EXIT_USAGE;
                goto done;
            }
            ctx.timeout_ms = (int)(secs * 1000);
            break;
        }
        case 'h':
            return s_usage_print(stdout);
        default:
            rc = s_usage_print(stderr);
            goto done;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "crm: a COMMAND is required\n\n");
        rc = s_usage_print(stderr);
        goto done;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "crm: libsodium failed to initialize\n");
        return EXIT_UNREACHABLE;
    }
    s_client_config(&ctx, agent_env);
    const struct cmd *cmd = s_lookup(argv[optind]);
    if (!cmd) {
        rc = s_unknown(argv[optind]);
        goto done;
    }
    /* the subcommand's arguments, as every subcommand reads them: the global
       --json, --wide and --columns C taken out, and --opt=value split into
       --opt value (git, kubectl), up to a "--" */
    char **sub = calloc((size_t)(argc - optind) * 2 + 1, sizeof *sub);
    char *split[64];
    int nsub = 0, nsplit = 0;
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
        } else if (!strcmp(argv[a], "--wide")) {
            ctx.wide = true;
        } else if (!strcmp(argv[a], "--columns") && a + 1 < argc) {
            ctx.columns = argv[++a];
        } else if (!strncmp(argv[a], "--columns=", 10)) {
            ctx.columns = argv[a] + 10;
        } else if (!strncmp(argv[a], "--", 2) && eq && eq > argv[a] + 2 && nsplit < 64) {
            split[nsplit] = strndup(argv[a], (size_t)(eq - argv[a]));
            CRM_ASSERT_ALLOC(split[nsplit]);
            sub[nsub++] = split[nsplit++];
            sub[nsub++] = (char *)eq + 1;
        } else {
            sub[nsub++] = argv[a];
        }
    }
    optind = 1; /* subcommands run their own getopt from argv[0] = name */
    rc = cmd->fn(nsub, sub, &ctx);
    for (int k = 0; k < nsplit; k++)
        free(split[k]);
    free(sub);
done:
    /* with --json a usage error is JSON too, unless the command said it as JSON */
    if (rc == EXIT_USAGE && ctx.json && !out_stdout_written()) {
        printf("{\"error\":\"USAGE\",\"message\":");
        out_json_str(stdout, out_first_error());
        printf("}\n");
    }
    return rc;
}
