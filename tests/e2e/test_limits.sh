# test_limits - issue 14, the rest of hostile input: bounded audit queries (item 1), limits per
# user and in total (item 5), idempotency keys (item 6), owners and consent (item 7).
#
# Every check here runs against the real crmd and fails on the code before issue 14 was done:
# the audit trail was scanned whole for `--user`, there were no limits, no idempotency key and
# no record of who withdrew consent.
source "$(dirname "$0")/lib.sh"
PROBE="$CRM_BIN/crm-probe"
ADMIN="$CRM_BIN/crm-admin"

# ---- item 1: an audit query for a user with (almost) no entries, at 200k entries ----
# The trail is written as an older OneView wrote it (by time only); crmd indexes it by user and
# department once at start. Then the worst queries run while another client pings. 200k in the
# optimized build, where the latency is the point; 100k under AddressSanitizer (CRM_TEST_SLOW
# 2), still seconds of scanning were the trail read whole, and half the phase's serial time.
N=$((200000 / SLOW))
init_data "$T/data"
for u in "mgr sales manager" "smgr support manager"; do
    set -- $u
    RC=0; "$ADMIN" user add "$1" --dept "$2" --role "$3" --data "$T/data" --out "$T/$1.enroll" \
        >"$T/o" 2>&1 || RC=$?
    expect "user $1 added" test "$RC" -eq 0
done
RC=0; OUT=$("$PROBE" fillaudit "$T/data" "$N" 2>&1) || RC=$?
expect "$N audit entries written the old way ($OUT)" test "$RC" -eq 0
# the one-time index of N entries takes a few seconds (more under the sanitizers)
START_WAIT=$((30 * SLOW)) start_server audit "$T/data"
expect "the server indexed the older entries once" grep -qE "audit: indexed $((N / 100))[0-9]{2} entries" "$T/audit.log"
A="$T/data/admin.enroll"
# under NAME ENROLL USER: the query runs 5 times, a ping right behind each. On a loaded machine
# (RocksDB compacting the back-fill, other tests) one run may stall for reasons of its own, so
# the best of up to 3 runs counts; the scan of the whole trail took 300-3000 ms on every run.
under() {
    local try
    for try in 1 2 3; do
        RC=0; OUT=$("$PROBE" auditunder "$EP_audit" "$2" "$A" "$3" 5 2>&1 | tail -1) || RC=$?
        echo "# $1: $OUT"
        worst=$(echo "$OUT" | awk '{print int($NF == "ms" ? $(NF-1) : $NF)}')
        [ "$RC" -eq 0 ] && quick_enough "$worst" 50 && break
    done
    expect "$1: answered" test "$RC" -eq 0
    expect_quick "$1: the slowest ping behind it" "$worst" 50
}
under "admin: audit --user nobody" "$A" nobody
expect "... and it found nothing, completely" contains "$OUT" "user 'nobody': 0 entries, cut 0"
under "admin: audit --user salesguy" "$A" salesguy
expect "... found all $((N / 1000)) of salesguy's entries through the back-filled index" \
    contains "$OUT" "$((N / 1000)) entries, cut 0"
under "sales manager: audit (their department)" "$T/mgr.enroll" -
expect "... $((N / 1000)) entries of their department, and only those" \
    contains "$OUT" "$((N / 1000)) entries, cut 0"
under "support manager: audit --user salesguy (another department's user)" "$T/smgr.enroll" salesguy
expect "... nothing for them" contains "$OUT" "0 entries"
under "sales manager: audit --user busy ($N entries, none theirs)" "$T/mgr.enroll" busy
expect "... stops on its budget and says so" contains "$OUT" "0 entries, cut 1"
RC=0; "$CRM_CLI/crm" --config "$T/mgr.enroll" --server "$EP_audit" audit --user busy >"$T/o" 2>"$T/e" || RC=$?
expect "crm audit tells the user the scan was cut short" grep -q "older entries may match" "$T/e"
RC=0; "$CRM_CLI/crm" --config "$A" --server "$EP_audit" --json audit --user salesguy --limit 3 >"$T/o" 2>"$T/e" || RC=$?
expect "the newest three of salesguy's, newest first" test "$(python3 -c '
import datetime, json, sys
t = [datetime.datetime.fromisoformat(json.loads(l)["time"]) for l in open(sys.argv[1])]
print(len(t) == 3 and t == sorted(t, reverse=True))' "$T/o")" = True
# a new entry lands in the indexes in the same write
RC=0; "$CRM_CLI/crm" --config "$T/mgr.enroll" --server "$EP_audit" customer add --name "Idx Test" >/dev/null 2>&1 || RC=$?
RC=0; "$CRM_CLI/crm" --config "$A" --server "$EP_audit" --json audit --user mgr >"$T/o" 2>"$T/e" || RC=$?
expect "a new entry is found by user at once" grep -q '"action":"create"' "$T/o"
stop_server audit
start_server audit "$T/data"
expect "the back-fill runs once only" test "$(grep -c 'audit: indexed' "$T/audit.log")" -eq 0
stop_server audit

# ---- item 1: the history of one field of a record with N (200k) history entries ----
# Entries that never touched the field are read to find the few that did: `history ID FIELD`
# runs on the worker thread, so a ping behind it waits for none of that.
init_data "$T/dh"
RC=0; OUT=$("$PROBE" fillaudit "$T/dh" "$N" c1 2>&1) || RC=$?
expect "$N history entries of c1 written ($OUT)" test "$RC" -eq 0
START_WAIT=$((30 * SLOW)) start_server hist "$T/dh"
AH="$T/dh/admin.enroll"
RC=0; "$CRM_CLI/crm" --config "$AH" --server "$EP_hist" customer add --name "Long Lived" >"$T/o" 2>&1 || RC=$?
expect "customer c1 created" grep -q "created customer c1" "$T/o"
"$CRM_CLI/crm" --config "$AH" --server "$EP_hist" customer edit c1 --stage active >/dev/null
for try in 1 2 3; do
    RC=0; OUT=$("$PROBE" historyunder "$EP_hist" "$AH" c1 stage 5 2>&1 | tail -1) || RC=$?
    echo "# history: $OUT"
    worst=$(echo "$OUT" | awk '{print int($NF == "ms" ? $(NF-1) : $NF)}')
    [ "$RC" -eq 0 ] && quick_enough "$worst" 50 && break
done
expect "history c1 stage answered" test "$RC" -eq 0
expect "... with its two changes of stage (create, edit) among $N entries" contains "$OUT" ": 2 entries, cut 0"
slowest_query=$(echo "$OUT" | sed -n 's/.*slowest query \([0-9]*\).*/\1/p')
expect "... a long read (${slowest_query} ms) that would stall a ping on the server thread" \
    test "$slowest_query" -ge 50
expect_quick "the slowest ping behind it" "$worst" 50
stop_server hist

# ---- item 6: a create sent twice with one idempotency key makes one record ----
init_data "$T/d6"
start_server idem "$T/d6"
A6="$T/d6/admin.enroll"
count() { "$CRM_CLI/crm" --config "$A6" --server "$EP_idem" --json customer list --limit 1000 | grep -c '"id"' || true; }
RC=0; FIRST=$("$PROBE" create "$EP_idem" "$A6" key-1 "Once Only" 2>&1 | tail -1) || RC=$?
expect "a create with a key: $FIRST" test "$RC" -eq 0
RC=0; SECOND=$("$PROBE" create "$EP_idem" "$A6" key-1 "Once Only" 2>&1 | tail -1) || RC=$?
expect "the same create again with the same key returns the first result ($SECOND)" \
    test "$RC" -eq 0 -a "$SECOND" = "$FIRST"
expect "one record, not two" test "$(count)" -eq 1
RC=0; OUT=$("$PROBE" create "$EP_idem" "$A6" key-1 "Someone Else" 2>&1 | tail -1) || RC=$?
expect "the same key with another request is refused: $OUT" contains "$OUT" "refused INVALID_ARGUMENT: idempotency key 'key-1' was already used"
RC=0; OUT=$("$PROBE" create "$EP_idem" "$A6" key-2 "Once Only" 2>&1 | tail -1) || RC=$?
expect "another key is another record ($OUT)" test "$RC" -eq 0 -a "$OUT" != "$FIRST"
RC=0; OUT=$("$PROBE" create "$EP_idem" "$A6" - "Once Only" 2>&1 | tail -1) || RC=$?
RC=0; OUT=$("$PROBE" create "$EP_idem" "$A6" - "Once Only" 2>&1 | tail -1) || RC=$?
expect "without a key, two sends are two records" test "$(count)" -eq 4
stop_server idem
start_server idem "$T/d6"
RC=0; AGAIN=$("$PROBE" create "$EP_idem" "$A6" key-1 "Once Only" 2>&1 | tail -1) || RC=$?
expect "the key survives a restart: committed with the write ($AGAIN)" test "$AGAIN" = "$FIRST"
expect "still four records" test "$(count)" -eq 4
# crm's own retry: the server is stopped past half of crm's timeout, so crm sends the create
# again; both copies reach the server when it resumes, and one record is made
"$CRM_CLI/crm" --config "$A6" --server "$EP_idem" ping >/dev/null
kill -STOP "$PID_idem"
RC=0; "$CRM_CLI/crm" --config "$A6" --server "$EP_idem" --timeout $((4 * SLOW)) customer add \
    --name "Retried" --allow-duplicate >"$T/o" 2>"$T/e" &
CRMPID=$!
sleep "$(awk -v s="$SLOW" 'BEGIN { print 2.5 * s }')" # past half the timeout: sent again
kill -CONT "$PID_idem"
wait "$CRMPID" || RC=$?
OUT=$(cat "$T/o"); ERR=$(cat "$T/e")
expect "crm's create got its answer after resending it (rc $RC)" test "$RC" -eq 0
expect "the resent create made one record" test "$("$CRM_CLI/crm" --config "$A6" --server "$EP_idem" --json customer list --limit 1000 | grep -c '"Retried"')" -eq 1
stop_server idem

# ---- item 7: owners and consent (SPEC §3-4), enforced by the policy's STAMP and REFER rows ----
init_data "$T/d7"
for u in "ss sales staff" "sup support staff" "mk marketing staff" "mgr sales manager"; do
    set -- $u
    "$ADMIN" user add "$1" --dept "$2" --role "$3" --data "$T/d7" --out "$T/$1.e7" >/dev/null 2>&1
done
start_server own "$T/d7"
as() { local who=$1; shift; RC=0
    "$CRM_CLI/crm" --config "$T/$who.e7" --server "$EP_own" "$@" >"$T/o" 2>"$T/e" || RC=$?
    OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
# a field of the record in $T/o; --json times are RFC 3339 strings (issue 12): read as ms
field() { python3 -c '
import datetime, json, re, sys
v = json.load(sys.stdin)["record"].get(sys.argv[1], "")
if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", v):
    v = round(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)
print("" if v is None else v)' "$1" <"$T/o"; }
as mk customer add --name "Backdated" --consent yes --consent-channel wechat --consent-at 2020-01-01T00:00:00Z
expect "a client cannot give the consent time (rc $RC): $ERR" test "$RC" -eq 1
expect "... the refusal names the field" contains "$ERR" "consent_at"
t0=$(date +%s%3N)
as mk customer add --name "Consenting" --consent yes --consent-channel wechat
expect "marketing records a consent" test "$RC" -eq 0
C=${OUT#created customer }
as mk --json customer show "$C"
at=$(field consent_at); t1=$(date +%s%3N)
expect "the consent time is the server's, now ($t0 <= $at <= $t1)" test "$at" -ge "$t0" -a "$at" -le "$t1"
as mk customer edit "$C" --consent-at 2020-01-01T00:00:00Z
expect "nor can it backdate it later (rc $RC)" test "$RC" -eq 1
sleep 0.05
t0=$(date +%s%3N)
as mk customer edit "$C" --consent no
expect "marketing withdraws the consent" test "$RC" -eq 0
as ss --json customer show "$C"
w_at=$(field consent_withdrawn_at); w_by=$(field consent_withdrawn_by)
expect "the withdrawal records when ($w_at >= $t0)" test "${w_at:-0}" -ge "$t0"
expect "... and by whom ($w_by)" test "$w_by" = mk
expect "... and keeps when consent had been given" test "$(field consent_at)" = "$at"
as ss customer history "$C" consent_withdrawn_by
expect "the withdrawal is in the record's history" contains "$OUT" "mk"
as mk customer edit "$C" --consent-withdrawn-by someone
expect "nobody writes the withdrawal record (rc $RC)" test "$RC" -eq 1
# owners are sales users, on create and on every change of owner
as mgr customer add --name "Owned" --owner sup
expect "a support user cannot own a customer: $ERR" contains "$ERR" "'sup' is not a sales user"
as mgr customer add --name "Owned" --owner ss
expect "a sales user can" test "$RC" -eq 0
O=${OUT#created customer }
as mgr customer edit "$O" --owner mk
expect "nor can a marketing user become its owner: $ERR" contains "$ERR" "'mk' is not a sales user"
as mgr customer edit "$O" --owner mgr
expect "a sales manager can" test "$RC" -eq 0
stop_server own
# ---- item 5: limits per user and in total; everyone else is served ----
init_data "$T/d5"
for u in bob carol dave; do
    "$ADMIN" user add "$u" --dept sales --role staff --data "$T/d5" --out "$T/$u.e5" >/dev/null 2>&1
done
start_server lim "$T/d5" --max-rate 50 --max-conn-per-user 2 --max-conn 4
RC=0; OUT=$("$PROBE" burst "$EP_lim" "$T/bob.e5" 300 2>"$T/e" | tail -1) || RC=$?
echo "# $OUT ($(cat "$T/e"))"
ok=$(echo "$OUT" | awk '{print $4}'); ex=$(echo "$OUT" | awk '{print $6}')
expect "300 pings at once, --max-rate 50: about 50 served ($ok)" test "$ok" -ge 40 -a "$ok" -le 150
expect "... the rest refused RESOURCE_EXHAUSTED with their ids ($ex)" test "$((ok + ex))" -eq 300
expect "... saying which limit" grep -q "over 50 a second (crmd --max-rate)" "$T/e"
RC=0; "$CRM_CLI/crm" --config "$T/carol.e5" --server "$EP_lim" ping >/dev/null 2>&1 || RC=$?
expect "another user is served at once" test "$RC" -eq 0
sleep 1
RC=0; "$CRM_CLI/crm" --config "$T/bob.e5" --server "$EP_lim" ping >/dev/null 2>&1 || RC=$?
expect "bob is served again a second later" test "$RC" -eq 0
RC=0; OUT=$("$PROBE" conns "$EP_lim" 3 "$T/bob.e5" 2>/dev/null | tail -1) || RC=$?
expect "--max-conn-per-user 2: bob's third connection is refused ($OUT)" \
    test "$OUT" = "conns: OK OK RESOURCE_EXHAUSTED"
# once they are closed (the socket monitor reports it), bob connects again
for _ in $(seq 1 $((10 * SLOW))); do
    RC=0; "$CRM_CLI/crm" --config "$T/bob.e5" --server "$EP_lim" ping >/dev/null 2>&1 || RC=$?
    [ "$RC" -eq 0 ] && break; sleep 0.2
done
expect "closed connections are no longer counted" test "$RC" -eq 0
RC=0; OUT=$("$PROBE" conns "$EP_lim" 2 "$T/bob.e5" "$T/carol.e5" "$T/dave.e5" 2>/dev/null | tail -1) || RC=$?
expect "--max-conn 4: two users hold four, the fifth connection is refused, in order ($OUT)" \
    test "$OUT" = "conns: OK OK OK OK RESOURCE_EXHAUSTED RESOURCE_EXHAUSTED"
stop_server lim
finish
