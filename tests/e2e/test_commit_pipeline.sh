# test_commit_pipeline - --sync commits are pipelined (docs/ARCHITECTURE.md, "Writes"): the
# committer thread writes and fsyncs one group while the server thread stages the next, whose
# reads must see the group in flight. Concurrent read-modify-writes of one record across
# those groups: each order adds one to its customer's order count and its amount to the
# customer's total spend, on the server, so an order staged on a stale read of the customer
# (one that missed the group in flight) leaves the count short. Also: every change reaches
# a watcher once, in order, and a restart keeps them all. And a client that sends a change
# and a read of it together on one connection, without waiting for the first answer (crm
# does not; the protocol allows it), gets the answers in that order, the read seeing the
# change - in --sync mode beside those writers, and in the default mode.
source "$(dirname "$0")/lib.sh"
WRITERS=6
ORDERS=8

init_data "$T/data"
cp "$T/data/admin.enroll" "$T/admin"
start_server main "$T/data" --sync
export CRM_SERVER="$EP_main"
as admin customer add --name 流水线客户 --phone 13900007777
C=${OUT#created customer }
# the customer's order count and total spend, from its record
counts() { as admin --json customer show "$C"
    python3 -c 'import json,sys; r=json.load(sys.stdin)["record"]; print(r["order_count"], (r["total_spend"] or {}).get("minor", 0))' <"$T/o"; }
watch_start admin w --since 0

# pipelined EP TAG: 20 rounds of an update and a read of it sent together; prints how many
# came back in order with the read seeing the update (an update that met a writer's change,
# CONFLICT, is sent again, at most 20 times)
pipelined() {
    local ok=0 i try rc
    for i in $(seq 1 20); do
        for try in $(seq 1 20); do
            rc=0
            "$CRM_BIN/crm-probe" pipeline "$1" "$T/admin" "$C" industry "$2$i" \
                >>"$T/pipelined.out" 2>&1 || rc=$?
            [ $rc -eq 3 ] || break
        done
        [ $rc -eq 0 ] && ok=$((ok + 1))
    done
    echo $ok
}
( pipelined "$EP_main" sync >"$T/ok_sync" ) &
PIPELINED=$!
writers=()
for w in $(seq 1 $WRITERS); do
    ( for n in $(seq 1 $ORDERS); do
        "$CRM_CLI/crm" --config "$T/admin" order add "$C" --line "sku=W$w,quantity=1,unit_price=$n" \
            >/dev/null 2>>"$T/writers.err" || echo "writer $w order $n failed" >>"$T/writers.err"
    done ) &
    writers+=($!)
done
wait "${writers[@]}"
RUNNING=0; kill -0 "$PIPELINED" 2>/dev/null && RUNNING=1
wait "$PIPELINED"
OK_SYNC=$(cat "$T/ok_sync")
expect "an update and a read of it sent together, 20 times beside the writers (--sync; still going when the writers were done: $RUNNING): each read after its update, seeing it ($OK_SYNC of 20)" \
    test "$OK_SYNC" = 20
expect "every order was acknowledged" test ! -s "$T/writers.err"
# each writer's orders cost 1 + 2 + ... + ORDERS (in minor units: 100 per unit)
want="$((WRITERS * ORDERS)) $((WRITERS * ORDERS * (ORDERS + 1) / 2 * 100))"
got=$(counts)
expect "the customer counts every order and its amount ($got, want $want): none was based on a stale read" \
    test "$got" = "$want"

seqs() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["seq"]) for l in open(sys.argv[1]) if l.strip()))' "$1"; }
last=$(as admin --json whoami; python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])' <"$T/o")
wait_for 'grep -q "\"seq\":$last," "$T/w.out"'
watch_stop w
expect "the watcher got every change once, in order (1..$last)" \
    test "$(seqs "$T/w.out")" = "$(seq 1 "$last" | paste -sd' ')"

stop_server main
start_server again "$T/data" --sync
export CRM_SERVER="$EP_again"
expect "after a restart the customer still counts them all ($(counts))" test "$(counts)" = "$want"
stop_server again
start_server plain "$T/data"
export CRM_SERVER="$EP_plain"
OK_PLAIN=$(pipelined "$EP_plain" plain)
expect "... and 20 times in the default mode ($OK_PLAIN of 20)" test "$OK_PLAIN" = 20
as admin --json customer show "$C"
expect "... the last one kept" test "$(field record.industry)" = plain20
stop_server plain

# what a connection sends after a request that went to the helper thread (a report, here
# held 1.5 s by --fault slow-report) waits for its answer: a report, a read, an update and
# a ping sent together are answered in that order; another connection's write does not wait
start_server slowrep "$T/data" --fault slow-report
export CRM_SERVER="$EP_slowrep"
as admin customer add --name 另一位 --phone 13900007778
OTHER=${OUT#created customer }
"$CRM_BIN/crm-probe" seq "$EP_slowrep" "$T/admin" "$C" rgup >"$T/seq.out" 2>&1 &
SEQ=$!
wait_for 'grep -q "fault slow-report: the report" "$T/slowrep.log"'
T0=$(date +%s%N)
as admin customer edit "$OTHER" --industry elsewhere
T1=$(date +%s%N)
EDIT_RC=$RC
wait "$SEQ"
expect "a report, a read, an update and a ping sent together: answered in that order ($(paste -sd' ' "$T/seq.out"))" \
    test "$(cut -d' ' -f1 "$T/seq.out" | paste -sd' ')" = "1r 2g 3u 4p"
expect "... each done (the read before the update saw the value before it)" \
    test "$(paste -sd' ' "$T/seq.out")" = "1r OK 2g OK industry=plain20 3u OK 4p OK"
expect "... meanwhile another connection's update was done" test "$EDIT_RC" -eq 0
expect_quick "... and not held behind them" $(((T1 - T0) / 1000000)) 1000
as admin --json customer show "$C"
expect "... the update kept" test "$(field record.industry)" = seq3
# a connection whose kept read waits for its report does not hold up another's kept read: the
# other sends an update and a read of it together (the read kept until the update is
# answered) and has both answers while the report still runs
"$CRM_BIN/crm-probe" seq "$EP_slowrep" "$T/admin" "$C" rg >"$T/seqA.out" 2>&1 &
SEQA=$!
wait_for 'test "$(grep -c "fault slow-report: the report" "$T/slowrep.log")" -ge 2'
T0=$(date +%s%N)
"$CRM_BIN/crm-probe" seq "$EP_slowrep" "$T/admin" "$OTHER" ug >"$T/seqB.out" 2>&1
T1=$(date +%s%N)
A_THEN=$(wc -c <"$T/seqA.out")
expect "another connection's update and read of it, kept behind the first one's read: answered ($(paste -sd' ' "$T/seqB.out"))" \
    test "$(paste -sd' ' "$T/seqB.out")" = "1u OK 2g OK industry=seq1"
expect "... while the report and the read behind it still waited (nothing answered there yet)" \
    test "$A_THEN" -eq 0
expect_quick "... and without waiting for them" $(((T1 - T0) / 1000000)) 1000
wait "$SEQA"
expect "... which came after, in order ($(paste -sd' ' "$T/seqA.out"))" \
    test "$(cut -d' ' -f1-2 "$T/seqA.out" | paste -sd' ')" = "1r OK 2g OK"
stop_server slowrep

# stopped while a report runs: per connection the answers keep their order - the running
# report is answered, then what its connection sent after it is refused; a report still
# waiting for the helper thread (another connection's) is refused, then what came after it
start_server slowstop "$T/data" --fault slow-report --log-level debug
"$CRM_BIN/crm-probe" seq "$EP_slowstop" "$T/admin" "$C" rgup >"$T/stop1.out" 2>&1 &
SEQ1=$!
wait_for 'grep -q "fault slow-report: the report" "$T/slowstop.log"'
"$CRM_BIN/crm-probe" seq "$EP_slowstop" "$T/admin" "$C" rp >"$T/stop2.out" 2>&1 &
SEQ2=$!
wait_for 'grep -q "worker: request 1 handed over (2 waiting or running)" "$T/slowstop.log"'
stop_server slowstop
wait "$SEQ1"
wait "$SEQ2"
expect "stopped during a report: it is answered, then its connection's read, update and ping refused ($(paste -sd' ' "$T/stop1.out"))" \
    test "$(paste -sd' ' "$T/stop1.out")" = "1r OK 2g UNAVAILABLE 3u UNAVAILABLE 4p UNAVAILABLE"
expect "... a report waiting behind it refused, then its connection's ping ($(paste -sd' ' "$T/stop2.out"))" \
    test "$(paste -sd' ' "$T/stop2.out")" = "1r UNAVAILABLE 2p UNAVAILABLE"

# under --sync-replicas a write's answer waits for the replicas (here none: it is told so
# after 3 s); a read sent after it on its connection waits for that answer too
start_server replsync "$T/data" --sync-replicas 1
CRM_SERVER=$EP_replsync as admin --json customer show "$C"
expect "(the update refused at the stop was not made)" test "$(field record.industry)" = seq3
"$CRM_BIN/crm-probe" seq "$EP_replsync" "$T/admin" "$C" ug >"$T/seq2.out" 2>&1
expect "--sync-replicas: an update and a read of it sent together are answered in that order, the read seeing it ($(paste -sd' ' "$T/seq2.out"))" \
    test "$(paste -sd' ' "$T/seq2.out")" = "1u UNAVAILABLE 2g OK industry=seq1"
# a write whose answer does not come within --timeout is said to have maybe been made (here
# it was, waiting for replicas): "try again" alone invited a second one
RC=0; "$CRM_CLI/crm" --no-agent --config "$T/admin" --server "$EP_replsync" --timeout 1 \
    customer add --name 超时客户 --phone 13900007790 >"$T/o" 2>"$T/e" || RC=$?
expect "a write unanswered within --timeout: exit 3, saying it may have been made ($(tail -1 "$T/e"))" \
    test "$RC" -eq 3 -a -n "$(grep -F "may have been made all the same" "$T/e")"
stop_server replsync
finish
