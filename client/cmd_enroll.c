/*  cmd_enroll - `crm enroll FILE`: install an enrollment for this client */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "crm_keys.h"

static const char s_usage[] =
    "usage: crm enroll FILE\n"
    "\n"
    "Installs the enrollment FILE an admin gave you (made by 'crm-admin init' or\n"
    "'crm-admin user add') as this client's identity, at --config FILE, $CRM_CONFIG\n"
    "or ~/.config/crm/client.conf (mode 0600). A previous enrollment is replaced.";

/* mkdir -p for the parent directory of PATH, mode 0700. */
static int
s_make_parent(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int
cmd_enroll(int argc, char **argv, cli_ctx_t *ctx)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts(s_usage);
        return EXIT_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "crm enroll: expected one FILE\n\n%s\n", s_usage);
        return EXIT_USAGE;
    }
    char errbuf[CRM_ERRBUF];
    crm_enroll_t e;
    const char *dest = cli_config_path(ctx);
    int rc = EXIT_OK;
    if (crm_enroll_load(argv[1], &e, errbuf) != CRM_OK) {
        fprintf(stderr, "crm enroll: %s\n", errbuf);
        return EXIT_USAGE;
    }
    bool replacing = access(dest, F_OK) == 0;
    if (s_make_parent(dest) != 0) {
        fprintf(stderr, "crm enroll: cannot create the directory for '%s': %s\n", dest,
                strerror(errno));
        rc = EXIT_USAGE;
    } else if (crm_enroll_save(dest, &e, false, errbuf) != CRM_OK) {
        fprintf(stderr, "crm enroll: %s\n", errbuf);
        rc = EXIT_USAGE;
    } else {
        printf("enrolled as '%s' for %s%s\nconfig: %s\ntry: crm whoami\n", e.user, e.endpoint,
               replacing ? " (replaced the previous enrollment)" : "", dest);
    }
    sodium_memzero(&e, sizeof e);
    return rc;
}
