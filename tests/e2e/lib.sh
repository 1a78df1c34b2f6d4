# lib.sh - shared helpers for the end-to-end tests (sourced, not run).
#
# Every test gets its own temporary directory, initializes a data dir there,
# starts the real crmd on an ephemeral loopback port, waits for its READY
# line, drives it with the real crm client, and at the end stops it with
# SIGTERM, requiring exit status 0 and a log free of ERROR and sanitizer lines.
# Only processes this test started are ever signalled, by their PID.

set -euo pipefail
# the system's tools first (tools/deps.sh installs them): a version manager's python3 shim
# in front of them costs 0.7 s a call here, against 0.07 s, and the tests call it in loops
PATH="/usr/bin:/bin:$PATH"

: "${CRM_BIN:?set CRM_BIN to the build directory}"
# The command-line client's directory: CRM_CLIENT_BIN if set, else CRM_BIN. tools/test.sh's
# ThreadSanitizer phase points it at the RelWithDebInfo build: there the servers' threads
# are what is checked, crm has no threads of its own, and a call of a TSan crm costs about
# 270 ms here against 19 ms (crmd, crm-admin and the test programs stay the TSan build's).
CRM_CLI=${CRM_CLIENT_BIN:-$CRM_BIN}
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/crm-e2e-$TEST_NAME-XXXXXX")
# In the ASan build (CMake sets CRM_ASAN_BUILD=1) the one-shot client runs without
# LeakSanitizer's scan at exit, which costs about 55 ms of its 90 ms per call here and
# adds up to minutes over the suite; every other ASan and UBSan check stays on. The
# tests that drive the client's own features set CRM_CLIENT_LEAKS=1 before sourcing
# this file, so its leaks are still looked for there (CRM_CLIENT_LEAKS=1 in the
# environment: everywhere); the servers' always are.
if [ "${CRM_ASAN_BUILD:-0}" = 1 ]; then CRM_CLIENT_LEAKS=${CRM_CLIENT_LEAKS:-0}; fi
if [ "${CRM_CLIENT_LEAKS:-1}" = 0 ]; then
    mkdir -p "$T/cli"
    printf '#!/bin/sh\nASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" exec "%s/crm" "$@"\n' \
        "$CRM_CLI" >"$T/cli/crm"
    chmod +x "$T/cli/crm"
    CRM_CLI="$T/cli"
fi
SERVER_PIDS=()
FAILS=0
PASSES=0

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$FAILS" -gt 0 ]; then
        echo "# kept $T for inspection"
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# Leak checks stay on; a smaller quarantine keeps ASan memory figures honest.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=16}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Tsan builds: the suppressions, each explained in the file (CMake sets the same for ctest)
export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=${CRM_SRC:-$(dirname "$0")/../..}/tests/tsan.supp second_deadlock_stack=1}"

# Sanitizer builds are slower: a test that needs N seconds of load to reach a
# count runs it for N * CRM_TEST_SLOW seconds (the count it expects is unchanged),
# and a latency bound of L ms is L * CRM_TEST_SLOW there (CMake sets it per build type).
SLOW=${CRM_TEST_SLOW:-1}
# Latency bounds (a ping behind a long request, a report) are judged where latency is the
# point: in the optimized build, where the tests that have them run alone (RUN_SERIAL in
# CMakeLists.txt). Under the sanitizers those tests run beside others (CRM_TEST_LATENCY=0):
# the same sections run, for memory errors and races, and print their figures unjudged.
LATENCY=${CRM_TEST_LATENCY:-1}
# quick_enough MS BOUND: MS is under BOUND x SLOW ms, or latency is not judged in this build
quick_enough() { [ "$LATENCY" != 1 ] || [ "${1:-99999}" -lt $(($2 * SLOW)) ]; }
# expect_quick WHAT MS BOUND: WHAT took MS ms, under BOUND x SLOW where latency is judged
expect_quick() {
    if [ "$LATENCY" = 1 ]; then
        expect "$1 within $(($3 * SLOW)) ms (${2:-no figure} ms)" test "${2:-99999}" -lt $(($3 * SLOW))
    else
        echo "# $1: ${2:-no figure} ms (latency not judged in this build)"
    fi
}

ok()   { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }

# finish: print the closing line and exit non-zero on any failure.
finish() {
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

# init_data DIR: a new data dir with its admin enrollment at DIR/admin.enroll
init_data() {
    "$CRM_BIN/crm-admin" init --data "$1" >"$T/init.out" 2>&1 || {
        cat "$T/init.out"; fail "crm-admin init $1"; finish; }
}

# start_server NAME DATADIR [crmd options...]: sets EP_<NAME> and PID_<NAME>; waits up to
# START_WAIT seconds (default 10, times CRM_TEST_SLOW) for READY
start_server() {
    local name=$1 data=$2; shift 2
    "$CRM_BIN/crmd" --data "$data" --listen 'tcp://127.0.0.1:*' "$@" \
        >"$T/$name.out" 2>"$T/$name.log" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    local i
    for i in $(seq 1 $((${START_WAIT:-$((10 * SLOW))} * 20))); do
        if grep -q '^READY ' "$T/$name.out" 2>/dev/null; then
            printf -v "EP_$name" '%s' "$(awk '/^READY /{print $2}' "$T/$name.out")"
            printf -v "PID_$name" '%s' "$pid"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$T/$name.log"
    fail "server $name did not print READY"
    finish
}

# stop_server NAME: SIGTERM, expect exit 0 and a clean log
stop_server() {
    local name=$1 pidvar="PID_$1" rc=0
    local pid=${!pidvar}
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    if [ "$rc" -eq 0 ]; then ok "server $name exits 0 on SIGTERM"; else
        fail "server $name exited $rc on SIGTERM"; fi
    check_log "$T/$name.log" "server $name"
}

# check_log FILE WHAT: no ERROR level lines, no sanitizer reports
check_log() {
    if grep -E ' ERROR |Sanitizer|runtime error:|LeakSanitizer' "$1" >/dev/null; then
        grep -E ' ERROR |Sanitizer|runtime error:' "$1" | head -20
        fail "$2 log has errors or sanitizer reports"
    else
        ok "$2 log is clean"
    fi
}

# run_crm ENDPOINT CONFIG ARGS...: runs the client; sets RC, OUT, ERR
run_crm() {
    local ep=$1 conf=$2; shift 2
    RC=0
    "$CRM_CLI/crm" --config "$conf" --server "$ep" "$@" >"$T/crm.out" 2>"$T/crm.err" || RC=$?
    OUT=$(cat "$T/crm.out")
    ERR=$(cat "$T/crm.err")
}

# expect WHAT CONDITION...: evaluate a test expression
expect() {
    local what=$1; shift
    if "$@"; then ok "$what"; else
        fail "$what"; echo "#   rc=$RC out=[$OUT] err=[$ERR]"; fi
}

contains() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }

# field PATH: a value of the JSON object in $OUT ("record.phones", "items.0.id"): lists and
# objects as JSON, booleans as true/false, RFC 3339 times (crm --json, issue 12) as ms since
# the epoch and an unset time as 0, so that they compare with date +%s%3N
field() { python3 -c '
import datetime, json, re, sys
v = json.loads(sys.stdin.read())
for k in sys.argv[1].split("."):
    v = v[k] if not isinstance(v, list) else v[int(k)]
if v is None and sys.argv[1].rsplit(".", 1)[-1].endswith(("_at", "_due", "due")):
    v = 0
elif isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", v):
    v = round(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
if isinstance(v, bool):
    v = str(v).lower()
print(json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v)' "$1" <<<"$OUT"; }

# wait_for COND: until the shell condition COND holds, at most 10 s (x SLOW); never fails
# by itself - the expect after it does
wait_for() { for _ in $(seq 1 $((200 * SLOW))); do eval "$1" && return 0; sleep 0.05; done; return 0; }

# rss_kb PID: resident set size now
# start_with_users "NAME DEPT ROLE"... [-- CRMD_ARGS...]: the data dir $T/data with these users
# (enrollments $T/NAME, the admin's $T/admin), its server "main" started with CRMD_ARGS, and
# CRM_SERVER set to it for `as`
start_with_users() {
    local users=() u name dept role
    while [ $# -gt 0 ] && [ "$1" != -- ]; do users+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    init_data "$T/data"
    for u in "${users[@]}"; do
        read -r name dept role <<<"$u"
        "$CRM_BIN/crm-admin" user add "$name" --dept "$dept" --role "$role" --data "$T/data" \
            --out "$T/$name" >"$T/o" 2>&1 || { cat "$T/o"; fail "user add $name"; }
    done
    cp "$T/data/admin.enroll" "$T/admin"
    start_server main "$T/data" "$@"
    export CRM_SERVER="$EP_main"
}
# as WHO ARGS...: crm as user WHO (enrollment $T/WHO); sets RC, OUT and ERR
as() {
    local who=$1; shift; RC=0
    "$CRM_CLI/crm" --config "$T/$who" "$@" >"$T/o" 2>"$T/e" || RC=$?
    OUT=$(cat "$T/o"); ERR=$(cat "$T/e")
}
# watch_start WHO NAME ARGS...: `crm --json watch ARGS` as WHO in the background, its JSON
# lines in $T/NAME.out, its PID in W_NAME; returns once it says "watching from"; watch_stop
# NAME interrupts it and waits (RC: its exit status)
watch_start() {
    local who=$1 name=$2; shift 2
    "$CRM_CLI/crm" --config "$T/$who" --json watch "$@" >"$T/$name.out" 2>"$T/$name.err" &
    eval "W_$name=$!"
    for _ in $(seq 1 $((100 * SLOW))); do grep -q "watching from" "$T/$name.err" && return 0; sleep 0.05; done
    fail "watcher $name did not start"; cat "$T/$name.err"
}
watch_stop() { local pid; eval "pid=\$W_$1"; kill -INT "$pid"; RC=0; wait "$pid" || RC=$?; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
