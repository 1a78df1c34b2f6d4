/*  adm_init - `crm-admin init`: a new data directory with keys and a first admin */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "adm.h"
#include "crm_keys.h"
#include "server.h"
#include "store.h"
#include "users.h"

static const char s_usage[] =
    "usage: crm-admin init --data DIR [--endpoint ENDPOINT] [--admin NAME]\n"
    "\n"
    "Creates DIR (which must be new or empty) with the database, the server's\n"
    "Curve keypair (DIR/server.key), the master key for encryption at rest\n"
    "(DIR/master.key) and the first admin user, whose enrollment is written to\n"
    "DIR/admin.enroll (install it with 'crm enroll DIR/admin.enroll').\n"
    "\n"
    "  --endpoint ENDPOINT  where clients will reach the server\n"
    "                       (default " SERVER_DEFAULT_ENDPOINT ")\n"
    "  --admin NAME         name of the first admin (default admin)\n";

/* True if DIR does not exist or is an empty directory. */
static bool
s_dir_is_new(const char *dir, char *errbuf)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return true;
        snprintf(errbuf, CRM_ERRBUF, "cannot use '%s': %s", dir, strerror(errno));
        return false;
    }
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = false;
    closedir(d);
    if (!empty)
        snprintf(errbuf, CRM_ERRBUF,
                 "data dir '%s' already holds data; refusing to initialize over it (pick a new "
                 "directory, or remove this one if you really mean to start over)",
                 dir);
    return empty;
}

int
adm_init(int argc, char **argv)
{
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"endpoint", required_argument, NULL, 'e'},
                                             {"admin", required_argument, NULL, 'a'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *dir = NULL, *endpoint = SERVER_DEFAULT_ENDPOINT, *admin = "admin";
    int c, status = 1;
    char errbuf[CRM_ERRBUF] = "", path[PATH_MAX];
    store_t *store = NULL;
    store_group_t *group = NULL;
    crm_keypair_t server_keys, admin_keys;
    uint8_t master[CRM_KEY_BYTES];
    crm_enroll_t enroll;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:e:a:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'e': endpoint = optarg; break;
        case 'a': admin = optarg; break;
        case 'h': fputs(s_usage, stdout); return 0;
        default: fputs(s_usage, stderr); return 2;
        }
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "crm-admin init: %s\n\n%s",
                dir ? "unexpected argument" : "--data DIR is required", s_usage);
        return 2;
    }
    if (users_check_name(admin, errbuf) != CRM_OK || strlen(endpoint) >= sizeof enroll.endpoint) {
        fprintf(stderr, "crm-admin init: %s\n", errbuf[0] ? errbuf : "endpoint is too long");
        return 2;
    }
    if (!s_dir_is_new(dir, errbuf))
        goto cleanup;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, CRM_ERRBUF, "cannot create '%s': %s", dir, strerror(errno));
        goto cleanup;
    }
    chmod(dir, 0700);

    crm_keys_generate(&server_keys);
    snprintf(path, sizeof path, "%s/server.key", dir);
    if (crm_keys_save(path, &server_keys, errbuf) != CRM_OK)
        goto cleanup;
    randombytes_buf(master, sizeof master);
    snprintf(path, sizeof path, "%s/master.key", dir);
    if (crm_keys_save_master(path, master, errbuf) != CRM_OK)
        goto cleanup;

    if (store_open(dir, STORE_CREATE, &store, errbuf) != CRM_OK)
        goto cleanup;
    crm_keys_generate(&admin_keys);
    Crm__UserRequest req = CRM__USER_REQUEST__INIT;
    Crm__User system = CRM__USER__INIT;
    system.name = (char *)"system";
    system.role = CRM__ROLE__ADMIN;
    req.name = (char *)admin;
    req.department = CRM__DEPARTMENT__DEPARTMENT_NONE;
    req.role = CRM__ROLE__ADMIN;
    req.public_key.data = admin_keys.pub;
    req.public_key.len = CRM_KEY_BYTES;
    group = store_group_new(store);
    if (users_apply(store, group, &system, USERS_ADD, &req, NULL, errbuf) != CRM_OK ||
        store_group_commit(group, errbuf) != CRM_OK)
        goto cleanup;

    memset(&enroll, 0, sizeof enroll);
    strcpy(enroll.endpoint, endpoint);
    snprintf(enroll.user, sizeof enroll.user, "%s", admin);
    memcpy(enroll.server_pub, server_keys.pub, CRM_KEY_BYTES);
    enroll.keys = admin_keys;
    snprintf(path, sizeof path, "%s/admin.enroll", dir);
    if (crm_enroll_save(path, &enroll, true, errbuf) != CRM_OK)
        goto cleanup;
    printf("initialized '%s'\n"
           "  first admin '%s'; enrollment: %s\n"
           "  start the server:   crmd --data %s\n"
           "  enroll the client:  crm enroll %s\n",
           dir, admin, path, dir, path);
    status = 0;
cleanup:
    if (status != 0)
        fprintf(stderr, "crm-admin init: %s\n", errbuf);
    store_group_destroy(&group);
    store_destroy(&store);
    sodium_memzero(&server_keys, sizeof server_keys);
    sodium_memzero(&admin_keys, sizeof admin_keys);
    sodium_memzero(master, sizeof master);
    sodium_memzero(&enroll, sizeof enroll);
    return status;
}
