# test_bench - crm-bench runs against a real server and reports every operation
source "$(dirname "$0")/lib.sh"
init_data "$T/data"
start_server main "$T/data"
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_main" --preload 2000 \
    --clients 8 --duration 1 --server-pid "$PID_main" >"$T/bench.out" 2>&1 || RC=$?
cat "$T/bench.out" | sed 's/^/# /'
expect "crm-bench exits 0 (no errors)" test "$RC" -eq 0
expect "the preload reports no failure" grep -q "preload: 2000 customers .* 0 failed" "$T/bench.out"
for op in get-by-id search-phone search-name update add-activity; do
    expect "$op was measured" grep -Eq "^$op +[1-9][0-9]* " "$T/bench.out"
done
expect "server CPU per operation is reported" grep -q "us per operation" "$T/bench.out"
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_main" --ids 2000 \
    --clients 4 --duration 1 --mix 0,0,0,0,100 --feed 3 >"$T/feed.out" 2>&1 || RC=$?
sed 's/^/# /' "$T/feed.out"
expect "crm-bench --feed exits 0" test "$RC" -eq 0
expect "every subscriber watched" grep -q "feed: 3 of 3 subscribers watching" "$T/feed.out"
expect "events were delivered without a gap" grep -Eq "feed: 3 subscribers, [1-9][0-9]* events delivered .*, 0 gaps" "$T/feed.out"
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_main" --ids 2000 \
    --clients 4 --duration 1 --mix 0,0,0,0,0,100 >"$T/order.out" 2>&1 || RC=$?
sed 's/^/# /' "$T/order.out"
expect "crm-bench add-order exits 0 (no errors)" test "$RC" -eq 0
expect "add-order was measured" grep -Eq "^add-order +[1-9][0-9]* " "$T/order.out"
"$CRM_CLI/crm" --config "$T/data/admin.enroll" --server "$EP_main" --json order list --limit 1 >"$T/o"; OUT=$(cat "$T/o"); ERR=""
expect "the orders landed" grep -q '"total":{"minor":28980' "$T/o"
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_main" --ids 2000 \
    --clients 4 --duration 1 --mix 0,0,0,0,0,0,100 >"$T/ticket.out" 2>&1 || RC=$?
sed 's/^/# /' "$T/ticket.out"
expect "crm-bench ticket-open exits 0 (no errors)" test "$RC" -eq 0
expect "ticket-open was measured" grep -Eq "^ticket-open +[1-9][0-9]* " "$T/ticket.out"
RC=0; "$CRM_BIN/crm-bench" --server "$EP_main" >/dev/null 2>&1 || RC=$?
expect "crm-bench without --config is a usage error" test "$RC" -eq 2
# one Latin letter has no posting list (format 8): the server checks 2,000 records a request,
# and crm goes on from where it stopped. The one customer holding a "q" comes after the
# 2,000 preloaded ones (Chinese names), so it takes more than one request to find
crmm() { RC=0; "$CRM_CLI/crm" --config "$T/data/admin.enroll" --server "$EP_main" "$@" >"$T/o" 2>"$T/e" || RC=$?; }
# add_customer NAME COMPANY: its id in NEW
add_customer() { crmm customer add --name "$1" --company "$2"; NEW=$(sed -n 's/^created customer \(c[0-9]*\).*/\1/p' "$T/o"); }
add_customer Q "Zed Works"
QID=$NEW
expect "a customer named Q was made after the preloaded ones ($QID)" test "${QID#c}" -gt 2000
crmm customer search q
expect "a search for one letter finds it past the first 2,000 records" \
    bash -c "[ $RC -eq 0 ] && grep -q '^$QID ' '$T/o' && [ \$(grep -c '^c[0-9]' '$T/o') -eq 1 ]"
crmm --json customer show Q
expect "... and so does its name, given for an id" bash -c "[ $RC -eq 0 ] && grep -q '\"id\":\"$QID\"' '$T/o'"
# a second "q" more than a request's 2,000 records after the first (a preload tops the store
# up to 4,300 customers): the lookup goes on past its first match and refuses to pick one
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_main" --preload 4300 \
    --clients 2 --duration 0.1 >"$T/pre2.out" 2>&1 || true
add_customer q "Other Works"
Q2=$NEW
expect "a second q was made over 2,000 records after the first ($Q2)" test "$(( ${Q2#c} - ${QID#c} ))" -gt 2000
crmm customer show Q
expect "... and then the name resolves to neither" \
    bash -c "[ $RC -ne 0 ] && grep -q \"'Q' names 2 customer records\" '$T/e'"
# a name that 6,500 records hold as a part ("Lee 1" .. "Lee 6500") and none exactly: the
# lookup reads 100 matches a request and stops after 64 requests, saying so, not "no customer"
{ echo name; seq 1 6500 | sed 's/^/Lee /'; } >"$T/lee.csv"
crmm import "$T/lee.csv"
expect "6,500 customers named Lee N imported" test "$RC" -eq 0
crmm customer show Lee
expect "a name too many records hold as a part is refused, and said so" \
    bash -c "[ $RC -ne 0 ] && grep -q \"too many customer records hold 'Lee' to look it up by name; give an id\" '$T/e'"
stop_server main
# a lookup the server refuses midway (a rate limit) is said as such, not as "no such record":
# "x" is in no name or company, so the lookup checks all 10,800 records, 2,000 a request,
# and --max-rate 2 refuses the third request
start_server lim "$T/data" --max-rate 2
RC=0; "$CRM_CLI/crm" --config "$T/data/admin.enroll" --server "$EP_lim" customer show x \
    >"$T/o" 2>"$T/e" || RC=$?
expect "a lookup cut by the rate limit names the limit" \
    bash -c "[ $RC -ne 0 ] && grep -q \"cannot look up customer 'x' by name: .*(RESOURCE_EXHAUSTED)\" '$T/e'"
expect "... and does not say there is no such customer" bash -c "! grep -q \"no customer 'x'\" '$T/e'"
stop_server lim
# the quick mode (issue 15 item 5) against a --sync server, as tools/bench/compare uses it:
# every operation runs and is counted; it asserts counts, never a time
start_server sync "$T/data" --sync --sweep-every 0
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_sync" --ids 2000 --quick \
    --server-pid "$PID_sync" >"$T/quick.out" 2>&1 || RC=$?
sed 's/^/# /' "$T/quick.out"
expect "crm-bench --quick exits 0" test "$RC" -eq 0
expect "crm-bench --quick counted every operation" grep -q "^quick: every operation counted, no errors" "$T/quick.out"
for op in get-by-id search-phone search-name update add-activity add-order ticket-open; do
    expect "--quick measured $op" grep -Eq "^$op +[1-9][0-9]* " "$T/quick.out"
done
expect "--quick reports server CPU per operation" grep -q "us per operation" "$T/quick.out"
RC=0
"$CRM_BIN/crm-bench" --config "$T/data/admin.enroll" --server "$EP_sync" --ids 2000 --quick \
    --mix 0,0,0,0,0,0,0 >"$T/quick2.out" 2>&1 || RC=$?
expect "a mix of all zero weights is a usage error" test "$RC" -eq 2
# tools/bench/compare's floor of a one-shot call: it builds, and it is answered
RC=0; cc -std=c17 -O2 -Wall -Wextra -Werror "$CRM_SRC/tools/bench/curve_ping.c" -o "$T/bench-ping" \
    -lzmq >"$T/ping.out" 2>&1 || RC=$?
expect "bench-ping builds with warnings as errors" test "$RC" -eq 0
RC=0; "$T/bench-ping" "$EP_sync" "$T/data/admin.enroll" || RC=$?
expect "bench-ping's PING is answered" test "$RC" -eq 0
grep -v '^secret' "$T/data/admin.enroll" >"$T/nokey.enroll"
RC=0; "$T/bench-ping" "$EP_sync" "$T/nokey.enroll" 2>/dev/null || RC=$?
expect "bench-ping refuses an enrollment without its secret key" test "$RC" -eq 2
stop_server sync
# the import floor (docs/PERFORMANCE.md, "An import floor"): its own check reads back every
# key it wrote to table files and ingested, over several chunks, sealed and in clear
for how in sealed clear; do
    RC=0
    "$CRM_BIN/crm-import-floor" --customers 3000 --chunk 1000 --dir "$T" \
        $([ $how = clear ] && echo --clear) >"$T/floor-$how.out" 2>&1 || RC=$?
    sed 's/^/# /' "$T/floor-$how.out"
    expect "crm-import-floor ($how) exits 0: every key read back" test "$RC" -eq 0
    expect "crm-import-floor ($how) wrote a record and its index entries a customer" \
        grep -Eq "^customers 3000, .*keys [0-9]+ \(([2-9][0-9])\.[0-9] a customer\), chunks of 1000" "$T/floor-$how.out"
done
expect "crm-import-floor left no scratch dir" test -z "$(ls -d "$T"/import-floor-* 2>/dev/null)"
RC=0; "$CRM_BIN/crm-import-floor" --customers 0 >/dev/null 2>&1 || RC=$?
expect "crm-import-floor --customers 0 is refused" test "$RC" -eq 1
# the comparison script parses and explains itself (it is not run here: it takes minutes)
expect "tools/bench/compare parses" bash -n "$CRM_SRC/tools/bench/compare"
RC=0; bash "$CRM_SRC/tools/bench/compare" --help >"$T/cmp.out" 2>&1 || RC=$?
expect "tools/bench/compare --help exits 0" test "$RC" -eq 0
expect "tools/bench/compare --help names --customers" grep -q -- "--customers N" "$T/cmp.out"
finish
