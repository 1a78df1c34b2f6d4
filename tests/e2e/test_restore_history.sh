# test_restore_history - RELIABILITY.md trap 15: a primary restored from an older backup
# begins a history of its own, and whoever saw changes of the old one past the backup is
# not fed the new one's as if they were the same: a replica that had followed the old
# primary past that point re-syncs fully by itself (also once the restored primary has
# written past the replica's own sequence number, where "behind me" no longer shows it);
# a watcher that had printed those changes is told, on its reconnect to the restored
# primary and on the re-synced replica, instead of going on silently; a watcher that had
# seen only changes the two share goes on
source "$(dirname "$0")/lib.sh"

A="$CRM_BIN/crm-admin"
eventually() { for _ in $(seq 1 $((200 * SLOW))); do eval "$1" && return 0; sleep 0.05; done; return 1; }
cp_() { RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
cr_() { RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
# watch NAME EP ARGS...: crm --json watch ARGS in the background, its output in $T/NAME.{out,err}
watch_() {
    local name=$1 ep=$2; shift 2
    "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$ep" --timeout 1 --json watch "$@" \
        >"$T/$name.out" 2>"$T/$name.err" &
    printf -v "W_$name" '%s' "$!"
}
# exited NAME: the background watch NAME has ended; sets WRC to its exit status
exited() { local p="W_$1"; ! kill -0 "${!p}" 2>/dev/null && { WRC=0; wait "${!p}" || WRC=$?; }; }

# ---- a primary with three customers in a backup, two more after it, and a replica of all
init_data "$T/p"
start_server p "$T/p" --sweep-every 0
for u in repl1 repl2 repl3; do
    "$A" user add $u --role replica --data "$T/p" --server "$EP_p" --out "$T/$u.enroll" >/dev/null
done
for i in 1 2; do cp_ customer add --name "旧$i" --phone "1350000000$i"; done
# a replica made before the backup, started only after the restore: behind the point where
# the histories part, it is only behind (the restored primary's log begins at the restore,
# so it takes a new snapshot, as any replica behind the retained log does)
"$A" replica init --from "$EP_p" --data "$T/r3" --enroll "$T/repl3.enroll" >/dev/null 2>"$T/e"
cp_ customer add --name 旧3 --phone 13500000003
"$A" backup create --to "$T/bk" --config "$T/p/admin.enroll" --server "$EP_p" >"$T/o" 2>"$T/e"
AT=$(grep -Eo 'sequence [0-9]+' "$T/o" | head -1 | awk '{print $2}')
expect "a backup of the first changes (at #${AT:-?})" test -n "$AT"
for i in 4 5 6 7 8; do cp_ customer add --name "旧$i" --phone "1350000000$i"; done
"$A" replica init --from "$EP_p" --data "$T/r" --enroll "$T/repl1.enroll" >/dev/null 2>"$T/e"
# a second one, started only after the restore, with --no-resync
"$A" replica init --from "$EP_p" --data "$T/r2" --enroll "$T/repl2.enroll" >/dev/null 2>"$T/e"
start_server r "$T/r" --replica-of "$EP_p"
expect "the replica holds the changes past the backup" \
    eventually 'cr_ customer show 13500000005; [ "$RC" = 0 ]'
# watchers that printed every change (past the backup), on both servers
watch_ wp "$EP_p" --since 0
watch_ wr "$EP_r" --since 0
expect "both watchers printed the changes past the backup" \
    eventually 'grep -q 旧5 "$T/wp.out" && grep -q 旧5 "$T/wr.out"'

# ---- the primary's data dir is lost; the backup is restored and serves at the same address
stop_server p
# a restore killed half way (at its first open of the restored store, after the database
# and side files are in place): its data dir is refused, by crmd and by a second restore,
# saying to remove it and restore again
echo "KILL .log" >"$T/kill.ctl"
RC=0; LD_PRELOAD="$CRM_BIN/libfaultfs.so" FAULTFS_DIR="$T/pk" FAULTFS_CTL="$T/kill.ctl" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
    "$A" restore --from "$T/bk" --data "$T/pk" >"$T/o" 2>"$T/e" || RC=$?
expect "a restore killed before the restored store begins its history leaves its mark ($RC)" \
    bash -c "[ $RC -eq 137 ] && [ -e '$T/pk/db/CURRENT' ] && [ -e '$T/pk/server.key' ] && [ -e '$T/pk/RESTORE-UNFINISHED' ]"
RC=0; timeout 20 "$CRM_BIN/crmd" --data "$T/pk" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
expect "crmd refuses the half-restored data dir, saying to restore again" \
    bash -c "[ $RC -ne 0 ] && [ $RC -ne 124 ] && grep -q 'holds a restore that did not finish.*remove the data dir and run the restore again' '$T/e'"
RC=0; "$A" restore --from "$T/bk" --data "$T/pk" >"$T/o" 2>"$T/e" || RC=$?
expect "... so does a second restore into it" \
    bash -c "[ $RC -ne 0 ] && grep -q 'holds a restore that did not finish: remove it' '$T/e'"
rm -rf "$T/pk"
RC=0; "$A" restore --from "$T/bk" --data "$T/p2" >"$T/o.restore" 2>"$T/e" || RC=$?
expect "the restore says it begins a history of its own after the backup's last change" \
    bash -c "[ $RC -eq 0 ] && grep -Eq '^it begins history [0-9]{13,} after change #$AT:' '$T/o.restore'"
start_server p "$T/p2" --sweep-every 0 --listen "$EP_p"
watch_ wq "$EP_p" --since "$AT"
# it writes past where the replica was: WAL numbers alone no longer tell the histories apart
for i in 1 2 3 4 5 6; do cp_ customer add --name "新$i" --phone "1360000000$i"; done
expect "the restored primary serves and takes writes" test "$RC" -eq 0

# ---- the replica re-syncs fully by itself
expect "the replica sees the other history and re-syncs by itself" \
    eventually 'grep -q "re-synced from a new snapshot of $EP_p" "$T/r.log"'
expect "... saying first why" \
    grep -q "re-syncing: this replica holds WAL sequence [0-9]* of history 1, but the primary at $EP_p began history [0-9]* after" "$T/r.log"
expect "... then holds the restored primary's changes" \
    eventually 'cr_ customer show 13600000006; [ "$RC" = 0 ]'
cr_ customer show 13500000005
expect "... and not the old history's past the backup" \
    eval '[ "$RC" -ne 0 ] && contains "$ERR" "no customer '"'"'13500000005'"'"'"'
cp_ customer list --json --limit 100; P_LIST=$OUT
cr_ customer list --json --limit 100
expect "... the same customers as the primary" test "$OUT" = "$P_LIST"
cp_ customer add --name 新7 --phone 13600000007
expect "... and follows it again" eventually 'cr_ customer show 13600000007; [ "$RC" = 0 ]'

# ---- a replica from before the backup follows the restored primary: behind, not diverged
start_server r3 "$T/r3" --replica-of "$EP_p"
expect "a replica behind the restore point follows the restored primary" \
    eventually '"$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r3" customer show 13600000007 >/dev/null 2>&1'
cp_ customer list --json --limit 100; P_LIST=$OUT
RC=0; OUT=$("$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r3" customer list --json --limit 100 2>&1) || RC=$?
expect "... holding what the primary holds" test "$OUT" = "$P_LIST"
expect "... as a replica behind its primary's log, not one that diverged" \
    bash -c "grep -q 're-syncing: the primary at $EP_p no longer keeps its log' '$T/r3.log' && ! grep -q 'holds WAL sequence' '$T/r3.log'"
stop_server r3

# ---- with --no-resync a replica says it diverged, and keeps serving what it has
start_server r2 "$T/r2" --replica-of "$EP_p" --no-resync
expect "a replica started with --no-resync says it diverged and how to go on" \
    eventually 'grep -q "diverged: this replica holds WAL sequence [0-9]* of history 1, but the primary at $EP_p began history [0-9]* after [0-9]* (restored from a backup, or another replica promoted); make this replica again with .crm-admin replica init., or start crmd without --no-resync" "$T/r2.log"'
RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r2" customer show 13500000005 >/dev/null 2>&1 || RC=$?
expect "... keeps serving what it has" test "$RC" -eq 0
RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r2" customer show 13600000001 >/dev/null 2>&1 || RC=$?
expect "... and takes none of the other history" test "$RC" -ne 0
stop_server r2

# ---- watchers: told, not fed another history's changes under the numbers they saw
WRC=
expect "the primary's watcher, reconnecting to the restored primary, stops" \
    eventually 'exited wp'
expect "... with an error status ($WRC)" test "${WRC:-0}" -ne 0
expect "... told the history changed after the backup's change and where to watch from" \
    grep -q "this server's history parts from the one you watched after #$AT (a restore from a backup, or a promotion).*crm watch --since $AT" "$T/wp.err"
expect "... not offered a resume from a number of the old history" \
    bash -c "! grep -q 'resume with' '$T/wp.err'"
expect "... and printed no change of the new history" bash -c "! grep -q 新 '$T/wp.out'"
WRC=
expect "the replica's watcher is told by the replica after its re-sync" eventually 'exited wr'
expect "... with an error status ($WRC)" test "${WRC:-0}" -ne 0
expect "... and the same reason" grep -q "this server's history parts from the one you watched after #$AT" "$T/wr.err"
expect "... having printed no change of the new history" bash -c "! grep -q 新 '$T/wr.out'"
expect "a watcher from a number both histories share goes on with the new one's changes" \
    eventually 'grep -q 新7 "$T/wq.out"'
expect "... still running" bash -c "kill -0 $W_wq"
kill -INT "$W_wq"; wait "$W_wq" || true
H=$(grep -Eo 'history [0-9]+ after' "$T/o.restore" | awk '{print $2}')
expect "... and its Ctrl-C names where to resume, in the restored history ($H)" \
    grep -Eq "resume with: crm watch --since [0-9]+ --history $H\$" "$T/wq.err"
# a resume by hand, with the old history's number and id: refused, saying from where
RC=0; timeout 20 "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" --timeout 2 \
    watch --since $((AT + 2)) --history 1 >"$T/o" 2>"$T/e" || RC=$?
expect "crm watch --since N --history H of the old history is refused" test "$RC" -eq 1
expect "... saying the history changed after the backup's change" \
    grep -q "this server's history parts from the one you watched after #$AT" "$T/e"
RC=0; timeout 20 "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" --timeout 2 \
    watch --since $((AT + 2)) --history "$H" >"$T/o" 2>"$T/e" &
WH=$!
expect "... and with the restored one's id it goes on" eventually 'grep -q "watching from sequence $((AT + 2))" "$T/e"'
kill -INT $WH; wait $WH || true

# ---- the other way: the old data dir serves again (the restore was a mistake); a watcher
# that printed the restored server's changes is told so on its reconnect, at the same point
watch_ wn "$EP_p" --since "$AT"
eventually 'grep -q 新7 "$T/wn.out"' || true
stop_server p
start_server p0 "$T/p" --sweep-every 0 --listen "$EP_p"
WRC=
expect "a watcher of the restored server reconnecting to the old one stops" eventually 'exited wn'
expect "... with an error status ($WRC)" test "${WRC:-0}" -ne 0
expect "... told where the two histories part" \
    grep -q "this server's history parts from the one you watched after #$AT " "$T/wn.err"
stop_server p0

# ---- --sync-replicas: a diverged replica does not count as holding the restored primary's
# writes (its WAL number is past them, but of the other history): a second restore, whose
# first write is at a WAL number the replica (five customers past the backup) has passed
stop_server r
"$A" restore --from "$T/bk" --data "$T/p3" >/dev/null 2>"$T/e"
start_server p "$T/p3" --sweep-every 0 --listen "$EP_p" --sync-replicas 1
mv "$T/r2.log" "$T/r2.log.1"
start_server r2 "$T/r2" --replica-of "$EP_p" --no-resync
expect "a replica of the old history past the second restore's start says it diverged" \
    eventually 'grep -q "diverged: " "$T/r2.log"'
cp_ customer add --name 新8 --phone 13600000008
expect "with --sync-replicas 1 and only a diverged replica a write is not confirmed" \
    eval '[ "$RC" -ne 0 ] && contains "$ERR" "fewer than 1 replica"'
stop_server r2

# ---- two beginnings in a row: a replica of the restored primary is promoted (history
# T+1, begun past the WAL number the old history's replica holds); that replica, pointed
# at the promoted one, is told where its history and the new line part (at the restore,
# not at the promotion) and takes none of its entries
"$A" replica init --from "$EP_p" --data "$T/q" --enroll "$T/repl1.enroll" >/dev/null 2>"$T/e"
start_server q "$T/q" --replica-of "$EP_p"
# (writes until the primary's WAL is past the old replica's: how many that takes depends on
# the build, so the loop reads both; bounded)
HAVE=$(grep -Eo 'holds WAL sequence [0-9]+' "$T/r2.log" | tail -1 | awk '{print $4}')
wal() { "$A" status --config "$T/p/admin.enroll" --server "$1" --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("wal_seq", 0))' 2>/dev/null || echo 0; }
i=0
while [ "$(wal "$EP_p")" -le "$((${HAVE:-0} + 10))" ] && [ "$i" -lt 100 ]; do
    i=$((i + 1))
    cp_ customer add --name "再$i" --phone "$((13700000000 + i))"
done
LAST_PHONE=$((13700000000 + i))
expect "the restored primary's replica holds its writes ($i, past WAL ${HAVE:-?})" \
    eventually '"$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_q" customer show $LAST_PHONE >/dev/null 2>&1'
kill -KILL "$PID_p"; wait "$PID_p" 2>/dev/null || true
"$A" promote --config "$T/p/admin.enroll" --server "$EP_q" >"$T/o" 2>"$T/e"
expect "... and is promoted, past where the old history's replica is" \
    bash -c "grep -q 'promoted' '$T/o' && [ \$(grep -Eo 'WAL sequence [0-9]+' '$T/q.log' | tail -1 | awk '{print \$3}') -gt \$(grep -Eo 'holds WAL sequence [0-9]+' '$T/r2.log' | tail -1 | awk '{print \$4}') ]"
mv "$T/r2.log" "$T/r2.log.2"
start_server r2 "$T/r2" --replica-of "$EP_q" --no-resync
expect "the old history's replica is told it diverged where the restore began" \
    eventually 'grep -q "diverged: this replica holds WAL sequence [0-9]* of history 1, but the primary at $EP_q began history [0-9]* after" "$T/r2.log"'
RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r2" customer show "$LAST_PHONE" >/dev/null 2>&1 || RC=$?
expect "... and took none of the new line's entries" test "$RC" -ne 0
stop_server r2
stop_server q

finish
