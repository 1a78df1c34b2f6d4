/*  crmd - the OneView server: argv, signals and wiring only */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crm_log.h"
#include "server.h"

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const char s_usage[] =
    "usage: crmd --data DIR [options]\n"
    "\n"
    "  --data DIR          data directory made by 'crm-admin init'\n"
    "  --listen ENDPOINT   where to listen (default " SERVER_DEFAULT_ENDPOINT ");\n"
    "                      'tcp://127.0.0.1:*' picks a free port\n"
    "  --sync              fsync every commit (survives power loss; default: survives a crash)\n"
    "  --max-msg BYTES     largest request frame accepted (default 1048576)\n"
    "  --max-memory MIB    heap cap; above it all connections are dropped (default 512)\n"
    "  --retain-events N   change-log entries kept for resuming watchers (default 10000000)\n"
    "  --retain-days D     ... and no older than D days (default: no age limit)\n"
    "  --rules FILE        customer value and deal rules (default DIR/value-rules.conf if it\n"
    "                      exists; 'crm-admin rules' prints the rules in force)\n"
    "  --sweep-every H     apply the time-based value rules every H hours (default 24, 0 = off;\n"
    "                      'crm-admin sweep' runs one now)\n"
    "  --backup-dir DIR    scheduled hot backups go here (RocksDB BackupEngine, incremental)\n"
    "  --backup-every T    ... this often: e.g. 6h, 30m, 1d, 90s (needs --backup-dir)\n"
    "  --backup-keep N     ... keeping the newest N (default 0 = all)\n"
    "  --bin-keep T        deleted customers stay in the recycle bin this long, then are purged\n"
    "                      (default 30d; e.g. 90d, 12h; 0 = deleted at once, not kept)\n"
    "  --max-rate N        requests a second per user; beyond: RESOURCE_EXHAUSTED\n"
    "                      (default 0 = no limit)\n"
    "  --max-conn-per-user N  connections per user whose requests are served (default 256)\n"
    "  --max-conn N        ... and in total (default 4096; 0 = no limit)\n"
    "  --io-threads N      libzmq I/O threads for TCP and CURVE (default 1; see\n"
    "                      docs/LIMITS.md on handshake floods)\n"
    "  --replica-of ENDPOINT  run as a read replica following the primary at ENDPOINT (data\n"
    "                      dir made by 'crm-admin replica init'); writes are refused\n"
    "  --replica-enroll FILE  the replica identity's enrollment (default DIR/replica.enroll)\n"
    "  --no-resync         a replica the primary's log no longer reaches back to says so\n"
    "                      and stops following (default: it re-syncs by itself from a new\n"
    "                      snapshot of the primary)\n"
    "  --lag-warn T        a replica logs a warning when further behind the primary than T\n"
    "                      (default 5s; e.g. 2s, 1m)\n"
    "  --sync-replicas K   answer a write only once K replicas hold it (default 0: at once;\n"
    "                      after 3 s without them the write is reported as not confirmed)\n"
    "  --wal-keep T        keep the write-ahead log this long for replicas to catch up\n"
    "                      (e.g. 24h, 30m, 90s; default 0: none beyond the live log - set it\n"
    "                      on a primary with replicas; every hour kept is disk)\n"
    "  --slow-log MS       log each request that holds the server thread MS ms or more (every\n"
    "                      other client waits that long; default 10, 0 = off)\n"
    "  --large-change N    a change of more than N records (a customer deleted, restored,\n"
    "                      merged or erased with its activities) runs on a helper thread,\n"
    "                      writes waiting meanwhile, reads served (default 100; 0 = never:\n"
    "                      on the server thread, holding every client up while it runs)\n"
    "  --log-level LEVEL   debug, info, warn or error (default info)\n"
    "  -h, --help          this text\n"
    "\n"
    "Once listening, prints 'READY <endpoint>' on stdout. SIGTERM or SIGINT stop it cleanly.\n";

/* "6h", "30m", "90s", "1d" (a bare number is hours) into ms; -1 if malformed. */
static int64_t
s_parse_duration(const char *arg)
{
    char *end = NULL;
    double v = strtod(arg, &end);
    double unit = 3600000.0;
    if (!*arg || v <= 0 || end == arg)
        return -1;
    if (*end == 's')
        unit = 1000.0;
    else if (*end == 'm')
        unit = 60000.0;
    else if (*end == 'd')
        unit = 86400000.0;
    else if (*end != 'h' && *end)
        return -1;
    if (*end && end[1])
        return -1;
    return v * unit < 1000.0 || v * unit > 366 * 86400000.0 ? -1 : (int64_t)(v * unit);
}

static int
s_parse_size(const char *arg, const char *opt, size_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(arg, &end, 10);
    if (!*arg || *end || v == 0) {
        fprintf(stderr, "crmd: %s needs a positive number, not '%s'\n", opt, arg);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int
main(int argc, char **argv)
{
    enum { OPT_SYNC = 256, OPT_MAXMSG, OPT_MAXMEM, OPT_LOG, OPT_FAULT, OPT_RETAIN, OPT_RETAIN_DAYS, OPT_RULES, OPT_SWEEP,
           OPT_BACKUP_DIR, OPT_BACKUP_EVERY, OPT_BACKUP_KEEP, OPT_MAX_RATE, OPT_MAX_CONN_USER,
           OPT_MAX_CONN, OPT_IO_THREADS, OPT_BIN_KEEP, OPT_REPLICA_OF, OPT_REPLICA_ENROLL,
           OPT_WAL_KEEP, OPT_SYNC_REPLICAS, OPT_NO_RESYNC, OPT_LAG_WARN, OPT_SLOW_LOG,
           OPT_LARGE_CHANGE };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},       {"listen", required_argument, NULL, 'l'},
        {"sync", no_argument, NULL, OPT_SYNC},        {"max-msg", required_argument, NULL, OPT_MAXMSG},
        {"max-memory", required_argument, NULL, OPT_MAXMEM},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"fault", required_argument, NULL, OPT_FAULT}, {"help", no_argument, NULL, 'h'},
        {"retain-events", required_argument, NULL, OPT_RETAIN},
        {"retain-days", required_argument, NULL, OPT_RETAIN_DAYS},
        {"rules", required_argument, NULL, OPT_RULES},
        {"sweep-every", required_argument, NULL, OPT_SWEEP},
        {"backup-dir", required_argument, NULL, OPT_BACKUP_DIR},
        {"backup-every", required_argument, NULL, OPT_BACKUP_EVERY},
        {"backup-keep", required_argument, NULL, OPT_BACKUP_KEEP},
        {"max-rate", required_argument, NULL, OPT_MAX_RATE},
        {"max-conn-per-user", required_argument, NULL, OPT_MAX_CONN_USER},
        {"max-conn", required_argument, NULL, OPT_MAX_CONN},
        {"io-threads", required_argument, NULL, OPT_IO_THREADS},
        {"replica-of", required_argument, NULL, OPT_REPLICA_OF},
        {"replica-enroll", required_argument, NULL, OPT_REPLICA_ENROLL},
        {"no-resync", no_argument, NULL, OPT_NO_RESYNC},
        {"lag-warn", required_argument, NULL, OPT_LAG_WARN},
        {"slow-log", required_argument, NULL, OPT_SLOW_LOG},
        {"large-change", required_argument, NULL, OPT_LARGE_CHANGE},
        {"wal-keep", required_argument, NULL, OPT_WAL_KEEP},
        {"sync-replicas", required_argument, NULL, OPT_SYNC_REPLICAS},
        {"bin-keep", required_argument, NULL, OPT_BIN_KEEP},
        {NULL, 0, NULL, 0}};
    server_config_t cfg;
    server_config_defaults(&cfg);
    crm_log_init("crmd", CRM_LOG_INFO);
    int c, level;
    size_t mib;
    while ((c = getopt_long(argc, argv, "d:l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            cfg.data_dir = optarg;
            break;
        case 'l':
            cfg.listen = optarg;
            break;
        case OPT_SYNC:
            cfg.sync = true;
            break;
        case OPT_MAXMSG:
            if (s_parse_size(optarg, "--max-msg", &cfg.max_msg) != 0)
                return 2;
            break;
        case OPT_MAXMEM:
            if (s_parse_size(optarg, "--max-memory", &mib) != 0)
                return 2;
            cfg.max_memory = mib << 20;
            break;
        case OPT_LOG:
            if ((level = crm_log_parse_level(optarg)) < 0) {
                fprintf(stderr, "crmd: unknown log level '%s' (debug, info, warn, error)\n",
                        optarg);
                return 2;
            }
            crm_log_threshold = (crm_log_level_t)level;
            break;
        case OPT_RETAIN:
            if (s_parse_size(optarg, "--retain-events", &mib) != 0)
                return 2;
            cfg.retain_events = mib;
            break;
        case OPT_RETAIN_DAYS: {
            char *end = NULL;
            double days = strtod(optarg, &end);
            if (!*optarg || *end || days <= 0) {
                fprintf(stderr, "crmd: --retain-days needs a positive number of days\n");
                return 2;
            }
            cfg.retain_ms = (int64_t)(days * 86400000.0);
            break;
        }
        case OPT_FAULT: /* test-only fault injection, to show that a test can fail */
            if (!strcmp(optarg, "no-zap")) {
                cfg.fault_no_zap = true;
            } else if (!strcmp(optarg, "no-derive")) {
                cfg.fault_no_derive = true;
            } else if (!strcmp(optarg, "slow-report")) {
                cfg.fault_slow_report = true;
            } else if (!strcmp(optarg, "slow-erase")) {
                cfg.fault_slow_erase = true;
            } else if (!strcmp(optarg, "slow-sweep")) {
                cfg.fault_slow_sweep = true;
            } else if (!strcmp(optarg, "slow-large")) {
                cfg.fault_slow_large = true;
            } else if (!strcmp(optarg, "fail-after-large")) {
                cfg.fault_fail_after_large = true;
            } else {
                fprintf(stderr, "crmd: unknown fault '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_RULES:
            cfg.rules_path = optarg;
            break;
        case OPT_SWEEP: {
            char *end = NULL;
            double hours = strtod(optarg, &end);
            if (!*optarg || *end || hours < 0 || hours > 24 * 365) {
                fprintf(stderr, "crmd: --sweep-every needs a number of hours, not '%s'\n", optarg);
                return 2;
            }
            cfg.sweep_every_ms = (int64_t)(hours * 3600000.0);
            break;
        }
        case OPT_BACKUP_DIR:
            cfg.backup_dir = optarg;
            break;
        case OPT_BIN_KEEP:
            if (strcmp(optarg, "0") && (cfg.bin_keep_ms = s_parse_duration(optarg)) < 0) {
                fprintf(stderr, "crmd: --bin-keep needs a duration such as 30d, 12h or 90s, or 0, "
                                "not '%s'\n", optarg);
                return 2;
            }
            if (!strcmp(optarg, "0"))
                cfg.bin_keep_ms = 0;
            break;
        case OPT_BACKUP_EVERY:
            if ((cfg.backup_every_ms = s_parse_duration(optarg)) < 0) {
                fprintf(stderr, "crmd: --backup-every needs a duration such as 6h, 30m or 1d, "
                                "not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_BACKUP_KEEP:
            if (s_parse_size(optarg, "--backup-keep", &mib) != 0)
                return 2;
            cfg.backup_keep = (uint32_t)mib;
            break;
        case OPT_MAX_RATE:
        case OPT_MAX_CONN_USER:
        case OPT_MAX_CONN: {
            char *end = NULL;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || v > 100000000UL) {
                fprintf(stderr, "crmd: %s needs a number (0 = no limit), not '%s'\n",
                        c == OPT_MAX_RATE ? "--max-rate"
                        : c == OPT_MAX_CONN ? "--max-conn" : "--max-conn-per-user", optarg);
                return 2;
            }
            *(c == OPT_MAX_RATE ? &cfg.max_rate
              : c == OPT_MAX_CONN ? &cfg.max_conn : &cfg.max_conn_per_user) = (uint32_t)v;
            break;
        }
        case OPT_IO_THREADS:
            if (s_parse_size(optarg, "--io-threads", &mib) != 0 || mib > 64) {
                fprintf(stderr, "crmd: --io-threads needs 1 to 64\n");
                return 2;
            }
            cfg.io_threads = (int)mib;
            break;
        case OPT_REPLICA_OF:
            cfg.replica_of = optarg;
            break;
        case OPT_SYNC_REPLICAS:
            if (s_parse_size(optarg, "--sync-replicas", &mib) != 0 || mib > 32) {
                fprintf(stderr, "crmd: --sync-replicas needs 1 to 32\n");
                return 2;
            }
            cfg.sync_replicas = (uint32_t)mib;
            break;
        case OPT_NO_RESYNC:
            cfg.no_resync = true;
            break;
        case OPT_LAG_WARN: {
            int64_t ms = s_parse_duration(optarg);
            if (ms <= 0) {
                fprintf(stderr, "crmd: --lag-warn needs a duration such as 5s, 30s or 2m, "
                                "not '%s'\n", optarg);
                return 2;
            }
            cfg.lag_warn_ms = ms;
            break;
        }
        case OPT_SLOW_LOG: {
            char *end = NULL;
            double ms = strtod(optarg, &end);
            if (!*optarg || *end || !(ms >= 0 && ms <= 3600000)) {
                fprintf(stderr, "crmd: --slow-log needs milliseconds (e.g. 10, 2.5; 0 = off), "
                                "not '%s'\n", optarg);
                return 2;
            }
            cfg.slow_us = (int64_t)(ms * 1000);
            break;
        }
        case OPT_LARGE_CHANGE: {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (!isdigit((unsigned char)*optarg) || *end || errno || n > 1000000) {
                fprintf(stderr, "crmd: --large-change needs a number of records (e.g. 100; 0 = "
                                "never), not '%s'\n", optarg);
                return 2;
            }
            cfg.large_records = (size_t)n;
            break;
        }
        case OPT_REPLICA_ENROLL:
            cfg.replica_enroll = optarg;
            break;
        case OPT_WAL_KEEP: {
            int64_t ms = strcmp(optarg, "0") ? s_parse_duration(optarg) : 0;
            if (ms < 0) {
                fprintf(stderr, "crmd: --wal-keep needs a duration such as 24h, 30m or 90s, "
                                "not '%s'\n", optarg);
                return 2;
            }
            cfg.wal_keep_s = (uint64_t)(ms + 999) / 1000;
            break;
        }
        case 'h':
            fputs(s_usage, stdout);
            return 0;
        default:
            fputs(s_usage, stderr);
            return 2;
        }
    }
    if (!cfg.data_dir || optind != argc) {
        fprintf(stderr, "crmd: %s\n\n%s",
                optind != argc ? "unexpected argument" : "--data DIR is required", s_usage);
        return 2;
    }
    if ((cfg.backup_every_ms > 0) != (cfg.backup_dir != NULL)) {
        fprintf(stderr, "crmd: --backup-dir and --backup-every go together\n");
        return 2;
    }
    if (cfg.backup_dir && mkdir(cfg.backup_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "crmd: cannot create the backup dir '%s': %s\n", cfg.backup_dir,
                strerror(errno));
        return 1;
    }
    if (cfg.backup_dir && access(cfg.backup_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "crmd: cannot write into the backup dir '%s': %s\n", cfg.backup_dir,
                strerror(errno));
        return 1;
    }
    if (sodium_init() < 0) {
        crm_log(CRM_LOG_ERROR, "libsodium failed to initialize");
        return 1;
    }
    /* files RocksDB and backups create hold customer data: private to this user */
    umask(077);
    /* secrets live in this process: no core dumps */
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_poll returns on a signal */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errbuf[CRM_ERRBUF] = "";
    server_t *server = NULL;
    if (server_new(&cfg, &server, errbuf) != CRM_OK) {
        fprintf(stderr, "crmd: %s\n", errbuf);
        return 1;
    }
    crm_log(CRM_LOG_INFO, "serving '%s' on %s (%s mode%s%s)", cfg.data_dir,
            server_endpoint(server), cfg.sync ? "sync" : "default",
            cfg.replica_of ? ", read replica of " : "", cfg.replica_of ? cfg.replica_of : "");
    printf("READY %s\n", server_endpoint(server));
    fflush(stdout);
    crm_err_t rc = server_run(server, &s_stop);
    crm_log(CRM_LOG_INFO, "shutting down");
    server_destroy(&server);
    crm_log(CRM_LOG_INFO, "stopped cleanly");
    return rc == CRM_OK ? 0 : 1;
}
