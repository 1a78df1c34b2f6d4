# test_large_change - changes that carry hundreds of records, through the real server and
# client: a customer with 3,000 activities is deleted with all of them, restored with all of
# them, merged into another, which then holds all of them, and erased - each one change. Such
# a change (more than --large-change records, default 100) runs on the writer thread with a
# group of its own: the server thread goes on answering reads (pings), and the writes that
# arrive meanwhile wait, in order, until it is committed - so a write that depends on it sees
# it (an activity added to a customer being deleted is refused, never left behind without
# its customer). With --large-change 0 it runs on the server thread as before, and the slow
# log names it. And `--slow-log MS`: a request that holds the server thread that long is
# logged with what it was and whose, as is the loop's own work (a slice of the value sweep);
# 0 logs none; a malformed value is refused.
source "$(dirname "$0")/lib.sh"

start_with_users "sm sales manager" "ps support staff" -- --slow-log 10 --large-change 0
N=3000
as admin customer add --name 大客户 --phone 13700000001
BIG=${OUT#created customer }
as admin customer add --name 另一家 --phone 13700000002
KEEP=${OUT#created customer }
python3 -c "
print('customer_id,type,summary')
for i in range($N): print('$BIG,call,call %d' % i)" >"$T/acts.csv"
as admin import --kind activity "$T/acts.csv"
expect "a customer with $N activities" contains "$OUT" "imported $N activity records"

# acts CUSTOMER: how many activities the export finds of CUSTOMER
acts() {
    rm -f "$T/acts.jsonl"
    "$CRM_CLI/crm" --config "$T/admin" export --jsonl --kind activity --customer-id "$1" \
        --out "$T/acts.jsonl" >/dev/null 2>&1 || { echo "export failed"; return; }
    wc -l <"$T/acts.jsonl" | tr -d ' '
}
# bg NAME ARGS...: `crm ARGS` as admin in the background, its output in $T/NAME.out;
# ended NAME: wait for it and set RC_NAME to its exit status
bg() { local n=$1; shift; "$CRM_CLI/crm" --config "$T/admin" "$@" >"$T/$n.out" 2>&1 & eval "BG_$n=$!"; }
ended() { local pid="BG_$1" rc=0; wait "${!pid}" || rc=$?; eval "RC_$1=$rc"; }
expect "... all exported ($(acts "$BIG"))" test "$(acts "$BIG")" = $N

# ---- on the server thread (--large-change 0): the slow log names it ----
# the slow log lets 10 lines a second through: the exports above may have used some
sleep 1.1
S0=$(as admin --json whoami; field last_seq)
as admin customer delete "$BIG" --yes
expect "deleted with all of them" contains "$OUT" "deleted customer $BIG with $N records of it"
S1=$(as admin --json whoami; field last_seq)
expect "... as one change" test "$S1" -eq $((S0 + 1))
expect "... none of them left ($(acts "$BIG"))" test "$(acts "$BIG")" = 0
expect "the slow log names the delete, the user and the time" \
    grep -qE "slow request [0-9]+: entity delete customer by 'admin' held the server thread [0-9.]+ ms \(--slow-log 10 ms\)" "$T/main.log"
as admin customer restore "$BIG"
expect "restored with all of them" contains "$OUT" "restored customer $BIG with $N records of it"
expect "... every one back ($(acts "$BIG"))" test "$(acts "$BIG")" = $N
stop_server main

# ---- on the writer thread (the default): pings go on, nothing is lost ----
start_server writer "$T/data" --slow-log 10 --log-level debug
export CRM_SERVER="$EP_writer"
PROBE="$CRM_BIN/crm-probe"
# a watcher: the writer decodes its change ahead, so that its delivery is light
"$CRM_CLI/crm" --config "$T/admin" --json watch >"$T/watch.out" 2>&1 &
WATCH=$!
as admin customer add --name 观察 --phone 13700000009
SEEN=${OUT#created customer }
# (live once it has seen a change)
wait_for 'as admin customer edit "$SEEN" --industry x$RANDOM; [ -s "$T/watch.out" ]'
expect "a watcher is live" test -s "$T/watch.out"
# a delete and a restore while another connection pings; best of up to 3 rounds (the
# machine's other work can preempt any thread), each judged on its own pings and slow log
for try in 1 2 3; do
    rm -f "$T/stop"
    "$PROBE" pings "$EP_writer" "$T/data/admin.enroll" 60 "$T/stop" >"$T/pings.out" 2>&1 &
    PINGS=$!
    wait_for 'grep -q "^ready" "$T/pings.out"' # connected: its pings time the changes
    LOGGED=$(wc -l <"$T/writer.log")
    S0=$(as admin --json whoami; field last_seq)
    as admin customer delete "$BIG" --yes
    DEL_OUT=$OUT
    S1=$(as admin --json whoami; field last_seq)
    LEFT=$(acts "$BIG")
    as admin customer restore "$BIG"
    RES_OUT=$OUT
    touch "$T/stop"
    RC2=0; wait "$PINGS" || RC2=$?
    worst=$(awk '/^pings:/{print int($NF == "ms" ? $(NF-1) : $NF)}' "$T/pings.out")
    SLOWLINES=$(tail -n +$((LOGGED + 1)) "$T/writer.log" |
        grep -E 'slow request [0-9]+: (entity delete|bin restore)|slow commit|slow feed' || true)
    echo "# round $try: $(tail -1 "$T/pings.out"); slow lines: ${SLOWLINES:-none}"
    [ "$RC2" -eq 0 ] && quick_enough "$worst" 15 && [ -z "$SLOWLINES" ] && break
done
kill "$WATCH" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true
expect "the watcher got the deletes and restores ($(grep -c '"op"' "$T/watch.out" || true) lines with parts)" \
    test "$(grep -c "\"id\":\"$BIG\"" "$T/watch.out" || true)" -ge 2
expect "... each decoded for it by the writer thread, not the server thread" \
    test "$(grep -c "($((N + 1)) records) decoded by the writer thread" "$T/writer.log" || true)" -ge 2
# (seen committed before the writer handed it over, the server thread would decode it again)
ON_SERVER=$(grep -c "records) decoded by the server thread" "$T/writer.log" || true)
expect "... and none of them again by the server thread ($ON_SERVER)" test "$ON_SERVER" = 0
# a large event goes to every subscriber as one framed copy they share (built once per reply
# shape): watches replaying the last delete and restore, one event a reply and batched, each
# read every event whole
FRAMED=$(grep -c "framed once for its batched subscribers" "$T/writer.log" || true)
expect "the live watcher's large events were framed once, to be shared ($FRAMED)" test "$FRAMED" -ge 2
for batch in 1 0; do
    RC=0; OUT=$("$PROBE" replay "$EP_writer" "$T/data/admin.enroll" "$S0" $batch 2>&1) || RC=$?
    expect "a watch replaying the delete and the restore (batch $batch) reads each whole ($OUT)" \
        bash -c "[ $RC -eq 0 ] && grep -qE '^events [2-9]' <<<'$OUT'"
    if [ $batch = 1 ]; then # same viewer, same reply shape: the live watcher's frames, not new ones
        AGAIN=$(grep -c "framed once for its batched subscribers" "$T/writer.log" || true)
        expect "... sharing the frames the live watcher got ($FRAMED framed before, $AGAIN after)" \
            test "$AGAIN" -eq "$FRAMED"
    fi
done
expect "... the one-event replies framed once too" \
    grep -q "framed once for its unbatched subscribers" "$T/writer.log"
expect "deleted with all of them on the writer thread" contains "$DEL_OUT" "deleted customer $BIG with $N records of it"
expect "... as one change" test "$S1" -eq $((S0 + 1))
expect "... none of them left ($LEFT)" test "$LEFT" = 0
expect "restored with all of them" contains "$RES_OUT" "restored customer $BIG with $N records of it"
expect "... every one back ($(acts "$BIG"))" test "$(acts "$BIG")" = $N
expect "pings went on meanwhile ($(grep -o 'pings: [0-9]*' "$T/pings.out"))" \
    bash -c "[ $RC2 -eq 0 ] && grep -qE '^pings: [1-9]' '$T/pings.out'"
expect_quick "the slowest ping beside a delete and a restore of $N records" "$worst" 15
if [ "$LATENCY" = 1 ]; then
    expect "... neither held the server thread 10 ms, nor did their delivery to the watcher (slow log: ${SLOWLINES:-none})" test -z "$SLOWLINES"
fi
as admin customer merge "$KEEP" "$BIG"
expect "merged on the writer thread" test "$RC" -eq 0
if [ "$LATENCY" = 1 ]; then
    expect "... not on the server thread (slow log)" \
        test -z "$(grep -E 'slow request [0-9]+: merge' "$T/writer.log" || true)"
fi
as admin customer show "$BIG"
expect "the merged customer is gone" contains "$ERR" NOT_FOUND
expect "the kept one holds all $N activities ($(acts "$KEEP"))" test "$(acts "$KEEP")" = $N
expect "... the merged one none" test "$(acts "$BIG")" = 0
as admin --json customer show "$KEEP"
expect "... and its version moved once" test "$(field record.version)" = 2

# an erasure of the customer that now holds them: the request on the writer thread, and so
# is its scrub of each change-log entry that carries thousands of its records (one entry is
# rewritten whole: 25-60 ms each on the server thread)
# replayed CHANGES FILE: the change log from its start, as an admin's watch replays it
replayed() {
    timeout $((3 * SLOW)) "$CRM_CLI/crm" --config "$T/admin" --json watch --since 0 \
        >"$T/replay.out" 2>/dev/null || true
}
replayed
BEFORE=$(grep -c '"call 2999"' "$T/replay.out" || true)
expect "the change log holds the activities' summaries before the erasure ($BEFORE entries)" \
    test "$BEFORE" -ge 3
LOGGED=$(wc -l <"$T/writer.log")
rm -f "$T/stop"
"$PROBE" pings "$EP_writer" "$T/data/admin.enroll" 60 "$T/stop" >"$T/pings.out" 2>&1 &
PINGS=$!
wait_for 'grep -q "^ready" "$T/pings.out"'
as admin customer erase "$KEEP" --yes
touch "$T/stop"
RC2=0; wait "$PINGS" || RC2=$?
echo "# erasure: $(tail -1 "$T/pings.out")"
expect "erased with all $N of its records, its history scrubbed ($OUT)" \
    contains "$OUT" "$((N + 1)) records blanked; its history is scrubbed"
replayed
expect "... none of their summaries left in the change log ($(grep -c '"call 2999"' "$T/replay.out" || true))" \
    test "$(grep -c '"call 2999"' "$T/replay.out" || true)" = 0
SLOWLINES=$(tail -n +$((LOGGED + 1)) "$T/writer.log" |
    grep -E "slow request [0-9]+: erase|slow housekeeping: a slice of an erasure's scrub|slow commit" ||
    true)
if [ "$LATENCY" = 1 ]; then
    expect "... neither the erasure nor its scrub held the server thread 10 ms (${SLOWLINES:-none})" \
        test -z "$SLOWLINES"
fi
stop_server writer

# ---- writes that come while it runs wait for it, in order; reads do not ----
# (--fault slow-large: the writer waits 1.5 s before its commit, a window to send them in)
start_server slowx "$T/data" --fault slow-large --log-level debug
export CRM_SERVER="$EP_slowx"
as admin customer add --name 第三家 --phone 13700000003
C3=${OUT#created customer }
python3 -c "
print('customer_id,type,summary')
for i in range(300): print('$C3,call,call %d' % i)" >"$T/acts3.csv"
as admin import --kind activity "$T/acts3.csv"
expect "a customer with 300 activities" contains "$OUT" "imported 300 activity records"
bg del customer delete "$C3" --yes
wait_for 'grep -q "fault slow-large: the large change is staged" "$T/slowx.log"'
bg late activity add "$C3" --type call --summary "too late"
bg upd customer edit "$KEEP" --industry retail
as sm customer show "$KEEP" # (an admin's read is audited: its answer waits for a commit)
READ_RC=$RC
RUNNING=0; kill -0 "$BG_del" 2>/dev/null && RUNNING=1
expect "a read is answered while the large change runs (rc $READ_RC, running $RUNNING)" \
    bash -c "[ $READ_RC -eq 0 ] && [ $RUNNING -eq 1 ]"
ended del; ended late; ended upd
expect "the large delete is done ($(cat "$T/del.out"))" \
    bash -c "[ $RC_del -eq 0 ] && grep -q 'deleted customer $C3 with 300 records of it' '$T/del.out'"
expect "an activity added to it meanwhile waited and is refused: its customer is gone ($(cat "$T/late.out"))" \
    bash -c "[ $RC_late -ne 0 ] && grep -q 'NOT_FOUND' '$T/late.out'"
expect "... so none is left without its customer ($(acts "$C3"))" test "$(acts "$C3")" = 0
expect "a write elsewhere meanwhile is done after it ($(cat "$T/upd.out"))" test "$RC_upd" -eq 0
as admin --json customer show "$KEEP"
expect "... and kept" test "$(field record.industry)" = retail
# a client may send a change and a read of it on one connection without waiting for the
# first answer (crm does not): its replies keep that order, and the read sees the change,
# when the change waits for another's large change and when it is the large change itself
bg res customer restore "$C3"
wait_for '[ "$(grep -c "fault slow-large: the large change is staged" "$T/slowx.log")" -ge 2 ]'
RC=0; OUT=$("$PROBE" pipeline "$EP_slowx" "$T/sm" "$KEEP" industry wholesale 2>&1) || RC=$?
echo "$OUT" | sed 's/^/# /'
ended res
expect "an update and a read of it sent together while a large change runs: the read comes after and sees it" \
    bash -c "[ $RC -eq 0 ] && [ $RC_res -eq 0 ]"
expect "... both kept until the large change was done" \
    bash -c "grep -q 'request 1: kept until the large change is done' '$T/slowx.log' &&
             grep -q 'request 2: kept until the large change is done' '$T/slowx.log'"
RC=0; OUT=$("$PROBE" pipeline "$EP_slowx" "$T/data/admin.enroll" "$C3" - - 2>&1) || RC=$?
echo "$OUT" | sed 's/^/# /'
expect "a large delete and a read of it sent together: the read comes after and finds it gone" \
    bash -c "[ $RC -eq 0 ] && grep -q 'reply to the read: NOT_FOUND' <<<'$OUT'"
expect "... (the delete ran on the writer thread)" \
    test "$(grep -c "fault slow-large: the large change is staged" "$T/slowx.log")" -ge 3
stop_server slowx
RC=0; "$CRM_BIN/crm-admin" check --data "$T/data" >"$T/check.out" 2>&1 || RC=$?
expect "crm-admin check finds every record and index entry right ($(tail -1 "$T/check.out"))" test "$RC" -eq 0

# ---- stopping while one runs: it is finished and answered; the writes waiting are not made ----
start_server stopx "$T/data" --fault slow-large --log-level debug
export CRM_SERVER="$EP_stopx"
# one who may not delete a large one is refused on the server thread: nothing goes to the writer
as ps customer delete "$KEEP" --yes
expect "a support user's delete of one with $N activities is refused ($ERR)" \
    contains "$ERR" PERMISSION_DENIED
expect "... before it was handed to the writer thread" \
    test -z "$(grep 'handed to the writer thread' "$T/stopx.log" || true)"
bg res customer restore "$C3"
wait_for 'grep -q "fault slow-large: the large change is staged" "$T/stopx.log"'
bg wait customer add --name 等待者 --phone 13700000006
wait_for 'grep -q "kept until the large change is done" "$T/stopx.log"'
kill -TERM "$PID_stopx"
ended res; ended wait
RC_S=0; wait "$PID_stopx" || RC_S=$?
expect "crmd stopped cleanly with a large change under way" test "$RC_S" -eq 0
expect "... which it finished and answered ($(cat "$T/res.out"))" \
    bash -c "[ $RC_res -eq 0 ] && grep -q 'restored customer $C3 with 300 records of it' '$T/res.out'"
expect "... and the write waiting for it was answered: not made ($(cat "$T/wait.out"))" \
    bash -c "[ $RC_wait -ne 0 ] && grep -q 'UNAVAILABLE' '$T/wait.out' && grep -q 'stopping' '$T/wait.out'"
start_server stopy "$T/data"
export CRM_SERVER="$EP_stopy"
expect "after a restart the restored one has all 300 ($(acts "$C3"))" test "$(acts "$C3")" = 300
as admin customer show 13700000006
expect "... and the write that was not made is not there" contains "$ERR" "no customer"
stop_server stopy

# ---- its answer is its own commit's: the server thread's next commit failing does not touch it ----
start_server failx "$T/data" --fault slow-large --fault fail-after-large
export CRM_SERVER="$EP_failx"
bg del customer delete "$C3" --yes
wait_for 'grep -q "fault slow-large: the large change is staged" "$T/failx.log"'
bg fail customer add --name 失败者 --phone 13700000007
ended del; ended fail
expect "a large delete is answered as done ($(cat "$T/del.out"))" \
    bash -c "[ $RC_del -eq 0 ] && grep -q 'deleted customer $C3 with 300 records of it' '$T/del.out'"
expect "... while the write after it, whose commit failed, is told so ($(cat "$T/fail.out"))" \
    bash -c "[ $RC_fail -ne 0 ] && grep -q 'fail-after-large' '$T/fail.out'"
expect "... and the delete was made ($(acts "$C3"))" test "$(acts "$C3")" = 0
as admin customer restore "$C3"
expect "... (restored again)" contains "$OUT" "restored customer $C3 with 300 records of it"
stop_server failx

# ---- one user's writes cannot fill the queue for everyone: at most a quarter of it each ----
start_server burstx "$T/data" --fault slow-large
export CRM_SERVER="$EP_burstx"
bg del customer delete "$C3" --yes
wait_for 'grep -q "fault slow-large: the large change is staged" "$T/burstx.log"'
"$CRM_CLI/crm" --config "$T/sm" customer add --name 另一个人 --phone 13700000008 >"$T/sm.out" 2>&1 &
SM=$!
OUT=$("$CRM_BIN/crm-probe" burst "$EP_burstx" "$T/data/admin.enroll" 3000 create 2>"$T/e" | tail -1)
ended del
RC_SM=0; wait "$SM" || RC_SM=$?
echo "# $OUT ($(cat "$T/e"))"
expect "3,000 creates pipelined by one user while it runs: 2,500 wait and are done ($OUT)" \
    grep -q "burst: 3000 sent, 2500 ok, 500 exhausted, 0 other" <<<"$OUT"
expect "... the rest refused, saying why" grep -q "2500 requests of yours waiting" "$T/e"
expect "... while another user's write waited and was done ($(cat "$T/sm.out"))" test "$RC_SM" -eq 0
expect "... as was the large delete" bash -c "[ $RC_del -eq 0 ] && grep -q 'with 300 records' '$T/del.out'"
stop_server burstx

# ---- an erasure's scrub goes past a large entry with a gap between slices ----
# (--fault slow-erase: 40 ms between slices; the slice that stops before a large entry leaves
# it to the writer, which must not wait out that gap and hand it back, forever)
init_data "$T/data6"
start_server gapx "$T/data6" --fault slow-erase --retain-events 3
A6=(--config "$T/data6/admin.enroll" --server "$EP_gapx")
"$CRM_CLI/crm" "${A6[@]}" customer add --name 间隔 --phone 13700000010 >"$T/o"
G=$(sed 's/^created customer //' "$T/o")
python3 -c "
print('customer_id,type,summary')
for i in range(1000): print('$G,call,call %d' % i)" >"$T/acts6.csv"
"$CRM_CLI/crm" "${A6[@]}" import --kind activity "$T/acts6.csv" >/dev/null 2>&1 || true
"$CRM_CLI/crm" "${A6[@]}" customer delete "$G" --yes >/dev/null 2>&1 || true
"$CRM_CLI/crm" "${A6[@]}" customer restore "$G" >"$T/o" 2>&1 || true
expect "a customer of 1,000 activities deleted and restored: two entries over 128 KiB ($(cat "$T/o"))" \
    grep -q "with 1000 records of it" "$T/o"
"$CRM_CLI/crm" "${A6[@]}" customer erase "$G" --yes --no-wait >/dev/null 2>&1 || true
left() { "$CRM_CLI/crm" "${A6[@]}" --json customer erase "$G" --status 2>/dev/null |
    sed -n 's/.*"history_left":\([0-9]*\).*/\1/p'; }
wait_for '[ "$(left)" = 0 ]'
expect "its scrub goes through the change log, large entries included ($(left) left)" \
    test "$(left)" = 0
stop_server gapx

# ---- a large change begins while the server thread's group keeps committing ----
# It waits for that group to have nothing staged or in flight. Admins' reads are audited:
# each stages an entry that commits with the turn's group, under --sync through the
# committer thread; 16 admins read without a pause while a large delete waits. (While one
# waits the group is also written at once on the server thread, so that entries staged
# every turn cannot keep it from emptying; this load did not starve it without that.)
init_data "$T/data5" # its c1 is read, its c2 deleted
start_server syncx "$T/data5" --sync
A5=(--config "$T/data5/admin.enroll" --server "$EP_syncx")
"$CRM_CLI/crm" "${A5[@]}" customer add --name 读者 --phone 13700000005 >/dev/null
"$CRM_CLI/crm" "${A5[@]}" customer add --name 第四家 --phone 13700000004 >"$T/o"
C4=$(sed 's/^created customer //' "$T/o")
sed "s/^$C3,/$C4,/" "$T/acts3.csv" >"$T/acts4.csv"
"$CRM_CLI/crm" "${A5[@]}" import --kind activity "$T/acts4.csv" >"$T/o" 2>&1 || true
expect "a customer with 300 activities" grep -q "imported 300 activity records" "$T/o"
"$CRM_BIN/crm-bench" "${A5[@]}" --ids 1 --clients 16 --duration $((6 * SLOW)) \
    --mix 100,0,0,0,0 >"$T/bench.out" 2>&1 &
BENCH=$!
sleep 1 # (the readers are under way)
RC=0; "$CRM_CLI/crm" "${A5[@]}" customer delete "$C4" --yes >"$T/o" 2>&1 || RC=$?
expect "a large delete beside 16 admins reading is done ($(cat "$T/o"))" \
    grep -q "deleted customer $C4 with 300 records of it" "$T/o"
RC_B=0; wait "$BENCH" || RC_B=$?
expect "... and so were their reads ($(grep get-by-id "$T/bench.out" || true))" \
    bash -c "[ $RC_B -eq 0 ] && awk '/^get-by-id/{exit !(\$2 > 0 && \$7 == 0)}' '$T/bench.out'"
stop_server syncx

# ---- two large changes at once, the first one's client gone mid-way ----
# (--fault slow-large: each waits 1.5 s on the writer before its commit)
start_server twox "$T/data5" --fault slow-large --log-level debug
A5=(--config "$T/data5/admin.enroll" --server "$EP_twox")
"$CRM_CLI/crm" "${A5[@]}" customer add --name 第五家 --phone 13700000011 >"$T/o"
H=$(sed 's/^created customer //' "$T/o")
sed "s/^$C3,/$H,/" "$T/acts3.csv" >"$T/acts5.csv"
"$CRM_CLI/crm" "${A5[@]}" import --kind activity "$T/acts5.csv" >/dev/null 2>&1 || true
"$CRM_CLI/crm" "${A5[@]}" customer restore "$C4" >/dev/null 2>&1 &
GONE=$!
wait_for 'grep -q "fault slow-large: the large change is staged" "$T/twox.log"'
kill "$GONE"; wait "$GONE" 2>/dev/null || true # its client vanishes before the answer
RC=0; "$CRM_CLI/crm" "${A5[@]}" customer delete "$H" --yes >"$T/o" 2>&1 || RC=$?
expect "a second large change sent meanwhile waits, then is done ($(cat "$T/o"))" \
    bash -c "[ $RC -eq 0 ] && grep -q 'deleted customer $H with 300 records of it' '$T/o'"
expect "... on the writer thread too ($(grep -c 'handed to the writer thread' "$T/twox.log") hand-overs)" \
    test "$(grep -c 'handed to the writer thread' "$T/twox.log")" -eq 2
RC=0; "$CRM_CLI/crm" "${A5[@]}" customer show "$C4" >/dev/null 2>&1 || RC=$?
expect "... and the first, whose client went away, was made as well" test "$RC" -eq 0
stop_server twox
RC=0; "$CRM_BIN/crm-admin" check --data "$T/data5" >"$T/check.out" 2>&1 || RC=$?
expect "crm-admin check finds both changes whole ($(tail -1 "$T/check.out"))" test "$RC" -eq 0

# the loop's own work is timed as requests are: a slice of the value sweep made slow
start_server sweep "$T/data" --slow-log 10 --sweep-every 0.0003 --fault slow-sweep
wait_for 'grep -q "slow housekeeping: a slice of the value sweep" "$T/sweep.log"'
expect "the slow log names a slow slice of the server's own sweep" \
    grep -qE "slow housekeeping: a slice of the value sweep held the server thread [0-9.]+ ms \(--slow-log 10 ms\)" "$T/sweep.log"
stop_server sweep

# the same store after a restart: what the committer thread wrote is on disk
start_server main2 "$T/data" --slow-log 0
export CRM_SERVER="$EP_main2"
expect "after a restart the kept one still holds all $N ($(acts "$KEEP"))" test "$(acts "$KEEP")" = $N
as admin customer delete "$KEEP" --yes
expect "a large delete with --slow-log 0" contains "$OUT" "with $N records of it"
expect "... is not logged" test -z "$(grep 'slow ' "$T/main2.log")"
stop_server main2

RC=0
"$CRM_BIN/crmd" --data "$T/data" --listen 'tcp://127.0.0.1:*' --slow-log 5ms >"$T/bad.out" 2>&1 || RC=$?
expect "--slow-log 5ms is refused" test "$RC" -eq 2
expect "... saying what it takes" grep -q "slow-log needs milliseconds" "$T/bad.out"
finish
