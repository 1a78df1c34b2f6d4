# test_watch_reconnect - issue 12 item 9: `crm watch` stays across a server restart: it says
# it lost the server, retries with backoff, reconnects, and prints every change exactly once,
# in order, including one committed while it was away
source "$(dirname "$0")/lib.sh"

init_data "$T/a"
start_server a "$T/a"
EP=$EP_a
c() { RC=0; "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP" "$@" >"$T/o" 2>"$T/e" || RC=$?; }
wait_for() { for _ in $(seq 1 300); do eval "$1" && return 0; sleep 0.05; done; return 1; }

"$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP" --timeout 1 --json watch >"$T/w.out" 2>"$T/w.err" &
W=$!
wait_for 'grep -q "watching from" "$T/w.err"'
c customer add --name 第一个 --phone 13100000001
wait_for 'grep -q 第一个 "$T/w.out"'
expect "the watch sees a change" grep -q 第一个 "$T/w.out"

stop_server a
sleep 6 # longer than the watch waits for silence (3.5 s) and one try (--timeout 1): it retries
# the same endpoint again: the data dir and the address a watcher knows
"$CRM_BIN/crmd" --data "$T/a" --listen "$EP" >"$T/b.out" 2>"$T/b.log" &
PID_b=$!
SERVER_PIDS+=("$PID_b")
wait_for 'grep -q "^READY " "$T/b.out"' || { cat "$T/b.log"; fail "restart on $EP"; }
c customer add --name 第二个 --phone 13100000002 # while the watch is still away, most likely
wait_for 'grep -q "reconnected" "$T/w.err"'
c customer add --name 第三个 --phone 13100000003
wait_for 'grep -q 第三个 "$T/w.out"'
kill -INT "$W"
RC=0; wait "$W" || RC=$?
expect "Ctrl-C ends the watch cleanly" test "$RC" -eq 0
expect "it said it lost the server" grep -q "the server fell silent; reconnecting from" "$T/w.err"
expect "it retried with backoff, saying so" test -n "$(grep -F "no answer from $EP; retrying in 0.5 s" "$T/w.err")" -a -n "$(grep -F "retrying in 1.0 s" "$T/w.err")"
expect "it said it was back" grep -q "reconnected to $EP; resuming after #" "$T/w.err"
expect "every change exactly once, in order, none missed while it was away" python3 - "$T/w.out" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
names = [p["record"]["name"] for e in evs for p in e["parts"] if p["kind"] == "customer"]
assert names == ["第一个", "第二个", "第三个"], names
seqs = [e["seq"] for e in evs]
assert seqs == sorted(set(seqs)), seqs
PY
kill -TERM "$PID_b"; RC=0; wait "$PID_b" || RC=$?
expect "the restarted server exits 0" test "$RC" -eq 0
check_log "$T/b.log" "restarted server"
finish
