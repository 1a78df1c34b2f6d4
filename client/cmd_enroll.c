/*  cmd_enroll - `crm enroll FILE [--profile NAME]` and `crm profile list|use`: the
    enrollments this client holds, one per identity, never one silently over another */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "crm_keys.h"

static const char s_usage[] =
    "usage: crm enroll FILE [--profile NAME] [--replace]\n"
    "\n"
    "Installs the enrollment FILE an admin gave you (made by 'crm-admin init' or\n"
    "'crm-admin user add') as this client's identity, at --config FILE, $CRM_CONFIG,\n"
    "~/.config/crm/profiles/NAME.conf with --profile NAME, or ~/.config/crm/client.conf\n"
    "(mode 0600). The first profile enrolled becomes the one in use ('crm profile use').\n"
    "An enrollment of another user or server never replaces the one installed: give\n"
    "the new one a --profile NAME, or say --replace. The same user's new key (after\n"
    "'crm-admin user rotate-key') replaces the old one.";

static const char s_profile_usage[] =
    "usage: crm profile list          the enrollments this client holds (* in use)\n"
    "       crm profile use NAME      use profile NAME from now on ('default': client.conf)\n"
    "\n"
    "One command with another identity: crm --profile NAME COMMAND ... (or $CRM_PROFILE).";

/* True if NAME is a profile name: letters, digits, '-', '_', '.', not starting with '.'. */
static bool
s_profile_name_ok(const char *name)
{
    if (!*name || *name == '.' || strlen(name) > 40)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("-_.", *p)))
            return false;
    return true;
}

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
    const char *file = NULL;
    bool replace = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts(s_usage);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--profile") && i + 1 < argc) {
            ctx->profile = argv[++i];
        } else if (!strcmp(argv[i], "--replace")) {
            replace = true;
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            fprintf(stderr, "crm enroll: unexpected argument '%s'\n\n%s\n", argv[i], s_usage);
            return EXIT_USAGE;
        }
    }
    if (!file) {
        fprintf(stderr, "crm enroll: expected one FILE\n\n%s\n", s_usage);
        return EXIT_USAGE;
    }
    if (ctx->profile && !s_profile_name_ok(ctx->profile)) {
        fprintf(stderr, "crm enroll: '%s' is not a profile name (letters, digits, - _ .)\n",
                ctx->profile);
        return EXIT_USAGE;
    }
    char errbuf[CRM_ERRBUF], dir[PATH_MAX - 64], current[64];
    crm_enroll_t e, old;
    bool had_current;
    cli_config_dir(dir, sizeof dir);
    cli_profile_current(&(cli_ctx_t){0}, current, sizeof current);
    had_current = *current != '\0';
    const char *dest = cli_config_path(ctx);
    int rc = EXIT_OK;
    if (crm_enroll_load(file, &e, errbuf) != CRM_OK) {
        fprintf(stderr, "crm enroll: %s\n", errbuf);
        return EXIT_USAGE;
    }
    bool replacing = access(dest, F_OK) == 0;
    if (replacing && !replace && crm_enroll_load(dest, &old, errbuf) == CRM_OK &&
        (strcmp(old.user, e.user) || strcmp(old.endpoint, e.endpoint))) {
        /* another identity: keep both, or say so */
        fprintf(stderr,
                "crm enroll: '%s' holds the enrollment of '%s' for %s; this one is '%s' for %s.\n"
                "Keep both: crm enroll %s --profile NAME (then crm --profile NAME ..., or crm "
                "profile use NAME); replace it: --replace\n",
                dest, old.user, old.endpoint, e.user, e.endpoint, file);
        rc = EXIT_USAGE;
    }
    if (replacing)
        sodium_memzero(&old, sizeof old);
    if (rc != EXIT_OK) {
    } else if (s_make_parent(dest) != 0) {
        fprintf(stderr, "crm enroll: cannot create the directory for '%s': %s\n", dest,
                strerror(errno));
        rc = EXIT_USAGE;
    } else if (crm_enroll_save(dest, &e, false, errbuf) != CRM_OK) {
        fprintf(stderr, "crm enroll: %s\n", errbuf);
        rc = EXIT_USAGE;
    } else {
        printf("enrolled as '%s' for %s%s\nconfig: %s\n", e.user, e.endpoint,
               replacing ? " (replaced the previous enrollment)" : "", dest);
        if (ctx->profile && !ctx->config && !getenv("CRM_CONFIG")) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/client.conf", dir);
            if (!had_current && access(path, F_OK) != 0) { /* the first identity: in use */
                snprintf(path, sizeof path, "%s/current", dir);
                FILE *f = fopen(path, "w");
                if (f) {
                    fprintf(f, "%s\n", ctx->profile);
                    fclose(f);
                }
                printf("profile '%s' is in use\ntry: crm whoami\n", ctx->profile);
            } else {
                printf("profile '%s' (in use: %s)\ntry: crm --profile %s whoami, or crm profile "
                       "use %s\n",
                       ctx->profile, had_current ? current : "default", ctx->profile,
                       ctx->profile);
            }
        } else {
            printf("try: crm whoami\n");
        }
    }
    sodium_memzero(&e, sizeof e);
    return rc;
}

/* One line of `crm profile list`: NAME, the enrollment at PATH, * if in use. */
static void
s_profile_line(cli_ctx_t *ctx, const char *name, const char *path, bool in_use)
{
    char errbuf[CRM_ERRBUF];
    crm_enroll_t e;
    bool ok = crm_enroll_load(path, &e, errbuf) == CRM_OK;
    if (ctx->json) {
        printf("{\"profile\":");
        out_json_str(stdout, name);
        printf(",\"in_use\":%s,\"user\":", in_use ? "true" : "false");
        out_json_str(stdout, ok ? e.user : "");
        printf(",\"endpoint\":");
        out_json_str(stdout, ok ? e.endpoint : "");
        printf(",\"config\":");
        out_json_str(stdout, path);
        printf("}\n");
    } else {
        printf("%s %-12s %-12s %s\n", in_use ? "*" : " ", name, ok ? e.user : "(unreadable)",
               ok ? e.endpoint : errbuf);
    }
    if (ok)
        sodium_memzero(&e, sizeof e);
}

int
cmd_profile(int argc, char **argv, cli_ctx_t *ctx)
{
    char dir[PATH_MAX - 300], path[PATH_MAX], current[64];
    cli_config_dir(dir, sizeof dir);
    cli_profile_current(ctx, current, sizeof current);
    if (argc == 2 && !strcmp(argv[1], "list")) {
        snprintf(path, sizeof path, "%s/client.conf", dir);
        if (access(path, F_OK) == 0)
            s_profile_line(ctx, "default", path, !*current);
        snprintf(path, sizeof path, "%s/profiles", dir);
        DIR *d = opendir(path);
        struct dirent *de;
        char names[64][48];
        size_t n = 0;
        while (d && (de = readdir(d)) && n < 64) {
            size_t len = strlen(de->d_name);
            if (len > 5 && len < 48 && !strcmp(de->d_name + len - 5, ".conf")) {
                snprintf(names[n], sizeof names[n], "%.*s", (int)(len - 5), de->d_name);
                n++;
            }
        }
        if (d)
            closedir(d);
        qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/profiles/%.47s.conf", dir, names[i]);
            s_profile_line(ctx, names[i], path, !strcmp(current, names[i]));
        }
        return EXIT_OK;
    }
    if (argc == 3 && !strcmp(argv[1], "use")) {
        const char *name = argv[2];
        if (!strcmp(name, "default"))
            snprintf(path, sizeof path, "%s/client.conf", dir);
        else if (s_profile_name_ok(name))
            snprintf(path, sizeof path, "%s/profiles/%.47s.conf", dir, name);
        else
            path[0] = '\0';
        if (!*path || access(path, F_OK) != 0) {
            fprintf(stderr, "crm profile: no profile '%s' (crm profile list)\n", name);
            return EXIT_USAGE;
        }
        snprintf(path, sizeof path, "%s/current", dir);
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "%s\n", name) < 0 || fclose(f) != 0) {
            fprintf(stderr, "crm profile: cannot write '%s': %s\n", path, strerror(errno));
            return EXIT_USAGE;
        }
        printf("using profile '%s'\n", name);
        return EXIT_OK;
    }
    bool help = argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr, "%s\n", s_profile_usage);
    return help ? EXIT_OK : EXIT_USAGE;
}
