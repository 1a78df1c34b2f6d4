# test_fault_restate - no reply before the commit it depends on (issue 16, 1).
# A reply whose content comes from staged, uncommitted state must wait for
# that commit and become an error if it fails:
#  - on one connection, update A and an update B that restates A's change
#    at A's version, both in one group commit that then fails: B found
#    nothing to change in A's staged record and used to be answered OK at
#    once - a version that never reached the disk;
#  - an admin's read is audited: with its audit entry lost in a failed
#    commit, the read must not be answered OK.
# Write errors are injected under the store with tests/fault/faultfs.c.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"

init_data "$T/data"
CTL="$T/fault.ctl"
start_faulty s "$T/data" "$CTL"
ADMIN="$T/data/admin.enroll"

# 1. A and B in one failing group (SIGSTOP/SIGCONT puts both in one turn;
#    CONFLICT means B was served in a later turn: try again)
same_group=0
for attempt in 1 2 3 4 5; do
    "$FAULTLOAD" restate "$EP_s" "$ADMIN" "$PID_s" "$CTL" EIO >"$T/restate.out" 2>&1 || true
    cat "$T/restate.out"
    line=$(grep '^A=' "$T/restate.out" || true)
    a=$(sed -n 's/^A=\([A-Z_]*\) .*/\1/p' <<<"$line")
    b=$(sed -n 's/.* B=\([A-Z_]*\) .*/\1/p' <<<"$line")
    # wait for the server to take writes again before the next attempt
    for i in $(seq 1 40); do
        kill -0 "$PID_s" 2>/dev/null || break
        "$CRM_CLI/crm" --timeout 1 --config "$ADMIN" --server "$EP_s" customer add \
            --name probe >/dev/null 2>&1 && break
        sleep 0.1
    done
    kill -0 "$PID_s" 2>/dev/null || break
    [ "$b" = CONFLICT ] && continue
    same_group=1
    break
done
expect "A and B were served in one group commit" test "$same_group" -eq 1
expect "A's commit failed (A=$a)" test -n "$a" -a "$a" != OK
expect "B, answered from A's staged record, is not acknowledged once that commit failed (B=$b)" \
    test -n "$b" -a "$b" != OK
expect "B's error names the cause" grep -q 'B.message=.*Input/output error' "$T/restate.out"

expect "the server survived the failed commit" kill -0 "$PID_s"
kill -0 "$PID_s" 2>/dev/null || { no_abort "$T/s.log" "server s"; finish; }
# whatever was acknowledged is there after a restart
stop_expect s
start_server s2 "$T/data"
run_crm "$EP_s2" "$ADMIN" --json customer list --limit 1000
acked_v=$(sed -n 's/.*B=OK B.version=\([0-9]*\).*/\1/p' "$T/restate.out")
if [ -n "$acked_v" ]; then
    have=$(grep -c "\"version\":$acked_v" <<<"$OUT" || true)
    expect "B's acknowledged version $acked_v survived a restart" test "$have" -ge 1
fi
stop_server s2

# 2. an admin read whose audit entry is lost with a failed commit
start_faulty s3 "$T/data" "$CTL"
set_fault "$CTL" EIO
run_crm "$EP_s3" "$ADMIN" customer list
set_fault "$CTL" ok
expect "an admin read is not answered OK when its audit entry cannot be written (rc=$RC)" \
    test "$RC" -eq 1
expect "... and says why ($ERR)" contains "$ERR" "Input/output error"
# once writes work again, the same read is answered (and audited)
for i in $(seq 1 40); do
    run_crm "$EP_s3" "$ADMIN" customer list
    [ "$RC" -eq 0 ] && break
    sleep 0.1
done
expect "reads are answered again once writes work" test "$RC" -eq 0
stop_expect s3
finish
