/*  crm-admin - administration: a sorted command table, like git.c */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "adm.h"
#include "cmd.h"
#include "crm_log.h"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct cmd s_cmds[] = {
    {"backup", adm_backup, "hot backups: create, status, list, verify, purge"},
    {"check", adm_check, "check a stopped data dir: indexes, change-log gaps, derived values"},
    {"digest", adm_digest, "a content digest of a stopped data dir, as of its sequence number"},
    {"grep", adm_grep, "which column families of a stopped data dir hold a text (as decrypted)"},
    {"init", adm_init, "create a data directory, server keys and the first admin"},
    {"promote", adm_promote, "turn a running replica into the primary (a new epoch)"},
    {"replica", adm_replica, "make a new read replica's data dir from a running primary"},
    {"restore", adm_restore, "restore a backup into a new data dir"},
    {"rules", adm_rules, "print the customer value and deal rules in force"},
    {"status", adm_status, "a running server's role, sequence numbers, replicas and their lag"},
    {"unfence", adm_unfence, "let a stopped former primary take writes again (no promotion behind)"},
    {"sweep", adm_sweep, "apply the time-based value rules (at-risk, churned) as of a date"},
    {"upgrade", adm_upgrade, "rewrite a stopped data dir of an older format to this one"},
    {"user", adm_user, "add, list, disable, enable, change users; rotate their keys"},
};

static int
s_usage(FILE *out)
{
    fprintf(out, "usage: crm-admin COMMAND [options]   (crm-admin COMMAND --help for more)\n\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(out, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    return out == stdout ? 0 : 2;
}

int
main(int argc, char **argv)
{
    crm_log_init("crm-admin", CRM_LOG_WARN);
    umask(077); /* data dirs, backups, keys and enrollments are private to this user */
    out_guard_init(); /* what the server sends is shown escaped, as in crm */
    if (argc < 2)
        return s_usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return s_usage(stdout);
    if (sodium_init() < 0) {
        fprintf(stderr, "crm-admin: libsodium failed to initialize\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (!strcmp(argv[1], s_cmds[i].name))
            return s_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "crm-admin: unknown command '%s'\n\n", argv[1]);
    return s_usage(stderr);
}
