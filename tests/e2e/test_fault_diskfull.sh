# test_fault_diskfull - storage failures are survived, not fatal (issue 16, 2-3).
# On a real full filesystem (a 48 MiB tmpfs; needs root) and with write
# errors injected under the store (faultfs): every writer gets a clear
# RESOURCE_EXHAUSTED ("disk full") / UNAVAILABLE naming the cause within a
# second, reads keep being served, the server never aborts, the failure is
# logged once, writes resume by themselves once space returns, and the
# change log has no gap afterwards. A restart on a full disk is refused with
# a clear message instead of aborting. A WATCH that fails so gets no events. The full disk is tried in both modes: default
# (commits on the server thread) and --sync (commits in flight on the committer thread).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"
FULL_SECONDS=${CRM_DISKFULL_SECONDS:-3} # how long the disk stays full (a long run: 30)

if [ "$(id -u)" -ne 0 ]; then
    echo "ok - # SKIP the full-filesystem part needs root (mount -t tmpfs)"
    finish
    exit 0
fi
MNT="$T/mnt"
mkdir -p "$MNT"
# 48 MiB: the loads below leave about 29 MB of store at their fullest (sealed values and
# blind index keys, encryption at rest); a reopen after the fault writes the memtables out
# as a table file, which needs room of its own once the filler is gone
mount -t tmpfs -o size=48m tmpfs "$MNT" || { fail "mount a 48 MiB tmpfs"; finish; }
# The writers together create at most 1,500 customers a second (about what the ASan build
# reaches unpaced): unpaced, a Release build wrote 2.5 times as many, its store outgrew the
# 48 MiB by itself, and writes could not resume once the filler was gone
export FAULTLOAD_WRITE_RATE=1500
fault_cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
    cleanup
}
trap fault_cleanup EXIT
D="$MNT/data"
init_data "$D"
add_staff "$D" wang

# analyse HAMMER_FILE FULL_FROM_MS FREE_AT_MS WHAT CAUSE
analyse() {
    python3 - "$@" <<'PY'
import sys
path, full_from, free_at, what, cause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [l.rstrip("\n").split(" ", 4) for l in open(path)]
rows = [(int(t), k, st, int(lat), (m[0] if m else "")) for t, k, st, lat, *m in rows]
def say(ok, text):
    print(("ok - " if ok else "not ok - ") + what + ": " + text)
    return ok
good = True
timeouts = [r for r in rows if r[2] == "TIMEOUT"]
good &= say(not timeouts, f"no request went unanswered ({len(timeouts)} timeouts of {len(rows)})")
reads = [r for r in rows if r[1] == "r"]
bad_reads = [r for r in reads if r[2] != "OK"]
good &= say(reads and not bad_reads, f"every read answered OK while writes failed ({len(reads)} reads, {len(bad_reads)} not OK)")
errs = [r for r in rows if r[1] == "w" and r[2] != "OK"]
first_err = min((r[0] for r in errs), default=None)
good &= say(errs and first_err >= full_from - 50, f"writers were refused after the fault began ({len(errs)} refusals)")
slow = [r for r in errs if r[3] >= 1000]
good &= say(errs and not slow, f"every refusal came within 1 s (max {max((r[3] for r in errs), default=0)} ms)")
unclear = [r for r in errs if cause not in r[4]]
good &= say(errs and not unclear, f"every refusal names the cause '{cause}' ({len(unclear)} do not; e.g. {errs[0][2]} {errs[0][4][:120] if errs else ''})")
after = [r for r in rows if r[1] == "w" and r[2] == "OK" and r[0] > free_at]
first_ok = min((r[0] for r in after), default=None)
good &= say(first_ok is not None and first_ok - free_at < 3000, f"writes resumed by themselves {None if first_ok is None else first_ok - free_at} ms after the fault ended")
late_errs = [r for r in errs if r[0] > (first_ok or 10**12)]
good &= say(not late_errs, f"no write refused once they had resumed ({len(late_errs)})")
print("# writes ok:", sum(1 for r in rows if r[1] == "w" and r[2] == "OK"), "refused:", len(errs))
PY
}

count_analysis() {
    PASSES=$((PASSES + $(grep -c '^ok - ' "$1" || true)))
    FAILS=$((FAILS + $(grep -c '^not ok - ' "$1" || true)))
}

# hammer_start FILE ARGS...: the faultload hammer (tests/fault/faultload.c) into FILE, in
# the background (HPID), until hammer_stop; returns once 20 writes were acknowledged
hammer_start() {
    local file=$1; shift
    rm -f "$T/ham-stop"
    FAULTLOAD_STOP="$T/ham-stop" "$FAULTLOAD" hammer "$1" "$2" "$file" "$3" \
        $((FULL_SECONDS + 120 * SLOW)) &
    HPID=$!
    wait_for "[ \$(awk '\$2 == \"w\" && \$3 == \"OK\"' '$file' 2>/dev/null | wc -l) -ge 20 ]"
}
# hammer_stop FILE T_FREE: once a write sent after T_FREE (ms) was acknowledged - or the
# wait ran out, which the analysis then reports - and a second more, the hammer stops
hammer_stop() {
    wait_for "awk -v t=$2 '\$2 == \"w\" && \$3 == \"OK\" && \$1 > t {f = 1} END {exit !f}' '$1'"
    sleep 1
    touch "$T/ham-stop"
    wait "$HPID"
}

# full_disk NAME WRITERS WHAT: WRITERS connections create customers on server NAME (one
# reads); once they write, the disk is filled for FULL_SECONDS s. Checks the promises
# above on its replies ($T/ham-NAME.txt) and log.
full_disk() {
    local name=$1 writers=$2 what=$3 epvar="EP_$1" pidvar="PID_$1" t_full t_free n_err
    hammer_start "$T/ham-$name.txt" "${!epvar}" "$D/wang.enroll" "$writers"
    t_full=$(( $(date +%s%N) / 1000000 ))
    dd if=/dev/zero of="$MNT/filler" bs=1M 2>/dev/null || true
    sleep "$FULL_SECONDS"
    rm -f "$MNT/filler"
    t_free=$(( $(date +%s%N) / 1000000 ))
    hammer_stop "$T/ham-$name.txt" "$t_free"
    expect "$what: the server is still running after the disk was full" kill -0 "${!pidvar}"
    analyse "$T/ham-$name.txt" "$t_full" "$t_free" "$what" "disk full" >"$T/an-$name.txt"
    cat "$T/an-$name.txt"
    count_analysis "$T/an-$name.txt"
    n_err=$(grep -c 'refusing writes' "$T/$name.log" || true)
    expect "$what: the failure is logged once, not per write ($n_err lines)" test "$n_err" -eq 1
    expect "$what: the log says when writes work again" grep -q 'writes work again' "$T/$name.log"
}

# ---- 1. a real full disk under load
start_server s "$D"
full_disk s 2 "full disk"

# ---- 1b. the same under --sync: commits written and fsynced by the committer thread
# while the server thread stages the next group, so the disk fills under a commit in
# flight and the writes staged on it must fail with it, clearly, and nothing else
stop_expect s
start_server sy "$D" --sync
full_disk sy 6 "full disk, --sync"
stop_expect sy
start_server s "$D"

# ---- 2. a restart on a full disk is refused clearly, then works once space returns
dd if=/dev/zero of="$MNT/filler" bs=1M 2>/dev/null || true
stop_expect s
dd if=/dev/zero of="$MNT/filler2" bs=4k 2>/dev/null || true # what the stop freed
RC=0
timeout 20 "$CRM_BIN/crmd" --data "$D" --listen 'tcp://127.0.0.1:*' >"$T/full.out" \
    2>"$T/full.log" || RC=$?
expect "a start on a full disk exits 1 (rc=$RC)" test "$RC" -eq 1
expect "... saying the disk is full" grep -q 'disk full' "$T/full.log"
no_abort "$T/full.log" "start on a full disk"
rm -f "$MNT/filler" "$MNT/filler2"
RC=0; "$CRM_BIN/crm-admin" check --data "$D" >"$T/check.out" 2>&1 || RC=$?
expect "indexes and the change log are consistent, no gap ($(tail -1 "$T/check.out"))" test "$RC" -eq 0

# every acknowledged write is there, and nothing unacknowledged
start_server s2 "$D"
run_crm "$EP_s2" "$D/admin.enroll" export --csv --out "$T/all.csv"
have=$(sed -n 's/^exported \([0-9]*\) customer.*/\1/p' <<<"$OUT")
acked=$(( $(cat "$T/ham-s.txt" "$T/ham-sy.txt" | awk '$2=="w" && $3=="OK"' | wc -l) + 2 )) # + the one each run reads
expect "exactly the acknowledged writes are stored ($have stored, $acked acknowledged)" \
    test "$have" = "$acked"
stop_expect s2

# ---- 3. write errors injected under the store (EIO), same promises
CTL="$T/fault.ctl"
start_faulty s3 "$D" "$CTL"
hammer_start "$T/ham3.txt" "$EP_s3" "$D/wang.enroll" 2
t_full=$(( $(date +%s%N) / 1000000 ))
set_fault "$CTL" EIO
sleep 1.5
set_fault "$CTL" ok
t_free=$(( $(date +%s%N) / 1000000 ))
hammer_stop "$T/ham3.txt" "$t_free"
analyse "$T/ham3.txt" "$t_full" "$t_free" "EIO" "Input/output error" >"$T/an3.txt"
cat "$T/an3.txt"
count_analysis "$T/an3.txt"

# a WATCH answered with an error (an admin's watch is audited: its entry could not be
# written) does not subscribe: the client was told it failed, so no event may follow
RC=0; OUT=$("$CRM_BIN/crm-probe" watchfail "$EP_s3" "$D/admin.enroll" "$CTL" 2>&1) || RC=$?
echo "$OUT" | sed 's/^/# /' | grep -v 'reply id=' || true
expect "a WATCH whose audit entry fails is answered with the cause" \
    contains "$(grep '^watch ' <<<"$OUT")" "UNAVAILABLE cannot write to the store: IO error"
expect "... and that watcher gets no event of a later change (rc=$RC)" test "$RC" -eq 0
stop_expect s3
RC=0; "$CRM_BIN/crm-admin" check --data "$D" >"$T/check.out" 2>&1 || RC=$?
expect "consistent after injected write errors, no change-log gap" test "$RC" -eq 0
finish
