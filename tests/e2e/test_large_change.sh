# test_large_change - changes that carry hundreds of records, through the real server and
# client: a customer with 1,500 activities is deleted with all of them, restored with all of
# them, and merged into another, which then holds all of them - each one change. The
# handlers page through the customer's activities 256 at a time, and such a commit (about a
# megabyte) is written by the committer thread while the server thread goes on; both must
# lose nothing. And `--slow-log MS`: a request that holds the server thread that long is
# logged with what it was and whose, as is the loop's own work (a slice of the value sweep);
# 0 logs none; a malformed value is refused.
source "$(dirname "$0")/lib.sh"

start_with_users -- --slow-log 10
N=1500
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
expect "... all exported ($(acts "$BIG"))" test "$(acts "$BIG")" = $N

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

as admin customer merge "$KEEP" "$BIG"
expect "merged" test "$RC" -eq 0
as admin customer show "$BIG"
expect "the merged customer is gone" contains "$ERR" NOT_FOUND
expect "the kept one holds all $N activities ($(acts "$KEEP"))" test "$(acts "$KEEP")" = $N
expect "... the merged one none" test "$(acts "$BIG")" = 0
as admin --json customer show "$KEEP"
expect "... and its version moved once" test "$(field record.version)" = 2

# the loop's own work is timed as requests are: a slice of the value sweep made slow
stop_server main
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
