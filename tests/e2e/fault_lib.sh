# fault_lib.sh - helpers for the fault tests (test_fault_*.sh), sourced after
# lib.sh. Faults come from tests/fault/faultfs.c (an LD_PRELOAD shim that
# fails writes under the data dir, steered by a control file, or freezes the
# wall clock) or from a real full filesystem (a small tmpfs, as root).

RC=0 OUT="" ERR=""
FAULTLOAD="$CRM_BIN/crm-faultload"
FAULTFS="$CRM_BIN/libfaultfs.so"
# the shim is preloaded ahead of an ASan build's runtime: allow that
FAULT_ASAN_OPTIONS="${ASAN_OPTIONS}:verify_asan_link_order=0"

# start_faulty NAME DATADIR CTLFILE [crmd options...]: start_server under the shim
start_faulty() {
    local name=$1 data=$2 ctl=$3; shift 3
    [ -e "$ctl" ] || echo ok >"$ctl"
    LD_PRELOAD="$FAULTFS" FAULTFS_DIR="$data" FAULTFS_CTL="$ctl" \
        ASAN_OPTIONS="$FAULT_ASAN_OPTIONS" start_server "$name" "$data" "$@"
}

# set_fault CTLFILE WHAT: steer the shim ("ok", "EIO", "ENOSPC [suffix]")
set_fault() {
    sleep 0.02 # a new mtime for the shim to notice
    echo "$2" >"$1.tmp" && mv "$1.tmp" "$1"
}

# add_staff DATADIR NAME: a sales staff user (their reads are not audited)
add_staff() {
    "$CRM_BIN/crm-admin" user add "$2" --dept sales --role staff --out "$1/$2.enroll" \
        --data "$1" >"$T/adduser.out" 2>&1 || { cat "$T/adduser.out"; fail "user add $2"; }
}

# stop_expect NAME: SIGTERM, exit 0 expected; the log may hold the expected
# storage ERROR lines but no abort, assertion or sanitizer report
stop_expect() {
    local name=$1 pidvar="PID_$1" rc=0
    local pid=${!pidvar}
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    expect "server $name exits 0 on SIGTERM (rc=$rc)" test "$rc" -eq 0
    no_abort "$T/$name.log" "server $name"
}

# no_abort FILE WHAT: no assertion, abort or sanitizer report in the log
no_abort() {
    if grep -E 'Assertion|Aborted|Sanitizer|runtime error:' "$1" >/dev/null; then
        grep -E 'Assertion|Aborted|Sanitizer|runtime error:' "$1" | head -5
        fail "$2: no assertion, abort or sanitizer report"
    else
        ok "$2: no assertion, abort or sanitizer report"
    fi
}
