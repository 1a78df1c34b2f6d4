/*  =========================================================================
    adm_user - `crm-admin user add|list|disable|enable|set|rotate-key`

    Works on a running server (as an admin, through its enrollment) or
    directly on a stopped data dir: with --data DIR it opens the store itself
    and, if a running crmd holds it, goes through that server with
    DIR/admin.enroll. Both ways run the same users_apply().

    New keypairs are made here; only public keys travel. The enrollment file
    for the user (endpoint, server key, the user's keypair) is written 0600.
    =========================================================================
*/
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adm.h"
#include "cmd.h"
#include "conn.h"
#include "crm_keys.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "server.h"
#include "store.h"
#include "users.h"

static const char s_usage[] =
    "usage: crm-admin user COMMAND ... [--data DIR | --config ENROLL] [--server ENDPOINT]\n"
    "\n"
    "  add NAME --dept sales|support|marketing --role staff|manager|admin|replica [--out FILE]\n"
    "                 [--endpoint ENDPOINT]   (writes the user's enrollment, default NAME.enroll)\n"
    "  list\n"
    "  disable NAME | enable NAME\n"
    "  set NAME [--dept DEPT] [--role ROLE]\n"
    "  rotate-key NAME [--out FILE]           (the old key stops working at once)\n"
    "\n"
    "With --data DIR the data dir is changed directly when no server holds it, else\n"
    "through the running server as DIR/admin.enroll. Without --data the server named by\n"
    "--config (default: your crm enrollment) is used; you must be an admin.\n";

typedef struct {
    const char *data, *config, *server, *out, *endpoint;
    Crm__UserRequest req;
    const char *cmd;
} s_args_t;

/* Where the work happens: a store opened here, or a connection to crmd. */
typedef struct {
    store_t *store;
    conn_t *conn;
    crm_keypair_t server_keys; /* local: the server's keys (public half used) */
    char endpoint[256];        /* for enrollment files */
} s_target_t;

static int
s_open_target(const s_args_t *a, s_target_t *t)
{
    char errbuf[CRM_ERRBUF], path[PATH_MAX];
    memset(t, 0, sizeof *t);
    if (a->data) {
        crm_err_t rc = store_open(a->data, 0, &t->store, errbuf);
        if (rc == CRM_OK) {
            snprintf(path, sizeof path, "%s/server.key", a->data);
            if (crm_keys_load(path, &t->server_keys, errbuf) != CRM_OK) {
                fprintf(stderr, "crm-admin user: %s\n", errbuf);
                return EXIT_USAGE;
            }
            crm_enroll_t admin;
            snprintf(path, sizeof path, "%s/admin.enroll", a->data);
            snprintf(t->endpoint, sizeof t->endpoint, "%s",
                     a->server ? a->server
                               : (crm_enroll_load(path, &admin, errbuf) == CRM_OK
                                      ? admin.endpoint
                                      : SERVER_DEFAULT_ENDPOINT));
            sodium_memzero(&admin, sizeof admin);
            return EXIT_OK;
        }
        if (rc != CRM_ERR_UNAVAILABLE) {
            fprintf(stderr, "crm-admin user: %s\n", errbuf);
            return EXIT_USAGE;
        }
        /* a running server holds the data dir: go through it */
    }
    static char admin_path[PATH_MAX];
    const char *env = getenv("CRM_SERVER");
    cli_ctx_t ctx = {.config = a->config,
                     .server = a->server ? a->server : (env && *env ? env : NULL),
                     .timeout_ms = 5000};
    if (!ctx.config && a->data) {
        snprintf(admin_path, sizeof admin_path, "%s/admin.enroll", a->data);
        ctx.config = admin_path;
    }
    int rc = conn_open(&ctx, &t->conn);
    if (rc == EXIT_OK)
        snprintf(t->endpoint, sizeof t->endpoint, "%s", conn_endpoint(t->conn));
    return rc;
}

static void
s_close_target(s_target_t *t)
{
    store_destroy(&t->store);
    conn_destroy(&t->conn);
    sodium_memzero(&t->server_keys, sizeof t->server_keys);
}

/* Run OP (or a list when LIST) on the target; *users gets the users of the answer. */
static int
s_run(s_target_t *t, users_op_t op, bool list, const Crm__UserRequest *req, Crm__User ***users,
      size_t *n, char server_key[CRM_Z85_LEN + 1])
{
    char errbuf[CRM_ERRBUF];
    *users = NULL;
    *n = 0;
    if (t->store) {
        crm_keys_to_z85(t->server_keys.pub, server_key);
        if (list)
            return users_list(t->store, users, n) == CRM_OK ? EXIT_OK : EXIT_REFUSED;
        Crm__User actor = CRM__USER__INIT;
        actor.name = (char *)"crm-admin";
        actor.role = CRM__ROLE__ADMIN;
        store_group_t *g = store_group_new(t->store);
        Crm__User *result = NULL;
        crm_err_t rc = users_apply(t->store, g, &actor, op, req, &result, errbuf);
        if (rc == CRM_OK)
            rc = store_group_commit(g, errbuf);
        store_group_destroy(&g);
        if (rc != CRM_OK) {
            users_free(&result);
            fprintf(stderr, "crm-admin user: %s\n", errbuf);
            return EXIT_REFUSED;
        }
        *users = malloc(sizeof **users);
        (*users)[0] = result;
        *n = 1;
        return EXIT_OK;
    }
    static const Crm__Op ops[] = {CRM__OP__OP_USER_ADD, CRM__OP__OP_USER_SET,
                                  CRM__OP__OP_USER_ROTATE};
    Crm__Request r = CRM__REQUEST__INIT;
    r.op = list ? CRM__OP__OP_USER_LIST : ops[op];
    r.body_case = CRM__REQUEST__BODY_USER;
    r.user = (Crm__UserRequest *)req;
    Crm__Reply *reply = NULL;
    int rc = conn_call(t->conn, &r, &reply);
    if (rc == EXIT_OK && reply->body_case == CRM__REPLY__BODY_USER) {
        Crm__UserReply *ur = reply->user;
        snprintf(server_key, CRM_Z85_LEN + 1, "%s", ur->server_key);
        *users = calloc(ur->n_users + 1, sizeof **users);
        for (size_t i = 0; i < ur->n_users; i++) { /* detach them from the reply */
            (*users)[i] = ur->users[i];
            ur->users[i] = (Crm__User *)crm_proto_new(&crm__user__descriptor);
        }
        *n = ur->n_users;
    }
    conn_reply_free(&reply);
    return rc;
}

/* Where the new enrollment of A goes (--out, else NAME.enroll) into PATH. */
static void
s_out_path(const s_args_t *a, char path[PATH_MAX])
{
    if (a->out)
        snprintf(path, PATH_MAX, "%s", a->out);
    else
        snprintf(path, PATH_MAX, "%s.enroll", a->req.name);
}

/* Before the key changes: the enrollment's file may be written, and replaces nothing
   but an enrollment (never the data dir's master.key or server.key, or any other file).
   A key changed whose enrollment cannot be written is a key nobody holds. */
static int
s_check_out(const s_args_t *a)
{
    char path[PATH_MAX], probe[PATH_MAX + 32], errbuf[CRM_ERRBUF];
    s_out_path(a, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        crm_enroll_t old;
        crm_err_t rc = S_ISREG(st.st_mode) ? crm_enroll_load(path, &old, errbuf)
                                           : CRM_ERR_INVALID_ARGUMENT;
        sodium_memzero(&old, sizeof old);
        if (rc != CRM_OK) {
            fprintf(stderr,
                    "crm-admin user %s: '%s' exists and is not an enrollment: it is not "
                    "overwritten (give --out another file); nothing was changed\n",
                    a->cmd, path);
            return EXIT_USAGE;
        }
    }
    snprintf(probe, sizeof probe, "%s.probe.%d", path, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "crm-admin user %s: cannot write '%s': %s; nothing was changed\n",
                a->cmd, path, strerror(errno));
        return EXIT_USAGE;
    }
    close(fd);
    unlink(probe);
    return EXIT_OK;
}

static int
s_write_enrollment(const s_args_t *a, const s_target_t *t, const char *server_key,
                   const crm_keypair_t *keys)
{
    crm_enroll_t e;
    char errbuf[CRM_ERRBUF], path[PATH_MAX];
    memset(&e, 0, sizeof e);
    snprintf(e.endpoint, sizeof e.endpoint, "%s", a->endpoint ? a->endpoint : t->endpoint);
    snprintf(e.user, sizeof e.user, "%s", a->req.name);
    if (!crm_keys_from_z85(server_key, e.server_pub)) {
        fprintf(stderr, "crm-admin user: the server sent no usable public key\n");
        return EXIT_REFUSED;
    }
    e.keys = *keys;
    s_out_path(a, path);
    crm_err_t rc = crm_enroll_save(path, &e, false, errbuf);
    sodium_memzero(&e, sizeof e);
    if (rc != CRM_OK) { /* (checked writable before the change: a full disk, say) */
        fprintf(stderr,
                "crm-admin user %s: the key of '%s' WAS changed, but its enrollment could not "
                "be written: %s; run 'crm-admin user rotate-key %s --out FILE' again\n",
                a->cmd, a->req.name, errbuf, a->req.name);
        return EXIT_REFUSED;
    }
    printf("enrollment for '%s' written to %s (mode 0600): hand it over privately; they run\n"
           "  crm enroll %s\n",
           a->req.name, path, path);
    return EXIT_OK;
}

static void
s_print_users(Crm__User **users, size_t n)
{
    printf("%-20s %-10s %-8s %-8s %-10s %s\n", "NAME", "DEPT", "ROLE", "ENABLED", "KEY", "UPDATED");
    for (size_t i = 0; i < n; i++) {
        char dept[32], role[32], key[CRM_Z85_LEN + 1], when[32];
        crm_record_enum_name(&crm__department__descriptor, users[i]->department, dept,
                             sizeof dept);
        crm_record_enum_name(&crm__role__descriptor, users[i]->role, role, sizeof role);
        crm_keys_to_z85_safe(users[i]->public_key.len == 32 ? users[i]->public_key.data : NULL,
                             key);
        crm_record_format_time(users[i]->updated_at, when);
        printf("%-20s %-10s %-8s %-8s %.8s…  %s\n", users[i]->name, *dept ? dept : "-", role,
               users[i]->enabled ? "yes" : "no", key, when);
    }
}

static int
s_parse_enum(const ProtobufCEnumDescriptor *ed, const char *text, int *out, const char *what)
{
    Crm__User tmp = CRM__USER__INIT;
    char errbuf[CRM_ERRBUF];
    const ProtobufCFieldDescriptor *fd =
        crm_record_field(&crm__user__descriptor, ed == &crm__role__descriptor ? "role"
                                                                               : "department");
    if (crm_record_set_text(&tmp.base, fd, text, false, errbuf) != CRM_OK) {
        fprintf(stderr, "crm-admin user: unknown %s '%s' (%s)\n", what, text,
                ed == &crm__role__descriptor ? "staff, manager, admin, replica"
                                             : "sales, support, marketing");
        return -1;
    }
    *out = ed == &crm__role__descriptor ? (int)tmp.role : (int)tmp.department;
    return 0;
}

int
adm_user(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},     {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'},   {"out", required_argument, NULL, 'o'},
        {"endpoint", required_argument, NULL, 'e'}, {"dept", required_argument, NULL, 'D'},
        {"role", required_argument, NULL, 'R'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    s_args_t a;
    memset(&a, 0, sizeof a);
    crm__user_request__init(&a.req);
    int c, dept, role;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': a.data = optarg; break;
        case 'c': a.config = optarg; break;
        case 's': a.server = optarg; break;
        case 'o': a.out = optarg; break;
        case 'e': a.endpoint = optarg; break;
        case 'D':
            if (s_parse_enum(&crm__department__descriptor, optarg, &dept, "department") != 0)
                return EXIT_USAGE;
            a.req.department = (Crm__Department)dept;
            a.req.set_department = true;
            break;
        case 'R':
            if (s_parse_enum(&crm__role__descriptor, optarg, &role, "role") != 0)
                return EXIT_USAGE;
            a.req.role = (Crm__Role)role;
            a.req.set_role = true;
            break;
        case 'h': fputs(s_usage, stdout); return EXIT_OK;
        default: fputs(s_usage, stderr); return EXIT_USAGE;
        }
    }
    a.cmd = optind < argc ? argv[optind++] : NULL;
    a.req.name = (char *)(optind < argc ? argv[optind++] : "");
    bool list = a.cmd && !strcmp(a.cmd, "list");
    users_op_t op = USERS_SET;
    if (!a.cmd || optind != argc || (!list && !*a.req.name)) {
        fprintf(stderr, "crm-admin user: %s\n\n%s",
                a.cmd ? "expected one NAME" : "expected a command", s_usage);
        return EXIT_USAGE;
    }
    crm_keypair_t keys;
    if (!strcmp(a.cmd, "add") || !strcmp(a.cmd, "rotate-key")) {
        op = a.cmd[0] == 'a' ? USERS_ADD : USERS_ROTATE;
        crm_keys_generate(&keys);
        a.req.public_key.data = keys.pub;
        a.req.public_key.len = CRM_KEY_BYTES;
        if (op == USERS_ADD && (!a.req.set_role)) {
            fprintf(stderr, "crm-admin user add: --role is required (and --dept unless admin)\n");
            return EXIT_USAGE;
        }
    } else if (!strcmp(a.cmd, "disable") || !strcmp(a.cmd, "enable")) {
        a.req.set_enabled = true;
        a.req.enabled = a.cmd[0] == 'e';
    } else if (strcmp(a.cmd, "set") && !list) {
        fprintf(stderr, "crm-admin user: unknown command '%s'\n\n%s", a.cmd, s_usage);
        return EXIT_USAGE;
    } else if (!list && !a.req.set_department && !a.req.set_role) {
        fprintf(stderr, "crm-admin user set: give --dept and/or --role\n");
        return EXIT_USAGE;
    }
    s_target_t t;
    Crm__User **users = NULL;
    size_t n = 0;
    char server_key[CRM_Z85_LEN + 1] = "";
    int rc = op == USERS_ADD || op == USERS_ROTATE ? s_check_out(&a) : EXIT_OK;
    if (rc != EXIT_OK) {
        sodium_memzero(&keys, sizeof keys);
        return rc;
    }
    rc = s_open_target(&a, &t);
    if (rc == EXIT_OK)
        rc = s_run(&t, op, list, &a.req, &users, &n, server_key);
    if (rc == EXIT_OK && list)
        s_print_users(users, n);
    else if (rc == EXIT_OK && (op == USERS_ADD || op == USERS_ROTATE))
        rc = s_write_enrollment(&a, &t, server_key, &keys);
    else if (rc == EXIT_OK)
        printf("user '%s' updated\n", a.req.name);
    for (size_t i = 0; i < n; i++)
        users_free(&users[i]);
    free(users);
    s_close_target(&t);
    sodium_memzero(&keys, sizeof keys);
    return rc;
}
