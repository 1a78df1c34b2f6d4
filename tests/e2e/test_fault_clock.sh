# test_fault_clock - a clock that steps back does not overwrite audit entries
# (issue 16, 3). Audit keys are <time ms><unique>; the unique counter used to
# restart at 0 in every process, so after a restart with the clock stepped
# back to an instant already used, new entries overwrote old ones. The wall
# clock is frozen at one instant in two runs with tests/fault/faultfs.c.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"

init_data "$T/data"
ADMIN="$T/data/admin.enroll"
FROZEN=1795000000000 # 2026-11-18, before now: the clock stepped back
for run in 1 2; do
    LD_PRELOAD="$FAULTFS" FAULTFS_CLOCK_MS=$FROZEN ASAN_OPTIONS="$FAULT_ASAN_OPTIONS" \
        start_server "f$run" "$T/data"
    epvar="EP_f$run"
    for i in 1 2 3; do # admin reads are audited: three entries per run
        run_crm "${!epvar}" "$ADMIN" customer list --stage "lead"
    done
    stop_server "f$run"
done
start_server s "$T/data"
run_crm "$EP_s" "$ADMIN" --json audit --limit 1000
# (--json prints times as RFC 3339: read back as ms)
n=$(python3 -c '
import datetime, json, sys
frozen = int(sys.argv[1])
ms = lambda t: round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)
print(sum(1 for l in sys.stdin if l.strip() and json.loads(l)["action"] == "entity list"
          and ms(json.loads(l)["time"]) == frozen))' "$FROZEN" <<<"$OUT")
expect "all 6 reads at the same frozen instant are in the audit trail ($n)" test "$n" -eq 6
stop_server s

# ---- a clock that was ahead: an order it dated stays editable ----
# An order's time must have happened (a day's slack) when it is given or changed; one
# stored while the server's clock ran three days fast keeps its date, and every other edit
# of it (a refund, a note) goes through.
AHEAD=$(( $(date +%s) * 1000 + 3 * 86400000 ))
LD_PRELOAD="$FAULTFS" FAULTFS_CLOCK_MS=$AHEAD ASAN_OPTIONS="$FAULT_ASAN_OPTIONS" \
    start_server ahead "$T/data"
run_crm "$EP_ahead" "$ADMIN" customer add --name 时钟超前
CA=${OUT#created customer }
run_crm "$EP_ahead" "$ADMIN" order add "$CA" --line 'sku=F,quantity=1,unit_price=10'
OA=${OUT#created order }
expect "the fast clock's order is made ($OA)" test "$RC" -eq 0
stop_server ahead
start_server back "$T/data"
run_crm "$EP_back" "$ADMIN" order refund "$OA" --amount 1 --reason 时钟
expect "back on time, the order dated ahead takes a refund" test "$RC" -eq 0
run_crm "$EP_back" "$ADMIN" order add "$CA" --line 'sku=F,quantity=1,unit_price=10' \
    --ordered-at "$(date -u -d '+3 days' +%Y-%m-%dT%H:%M:%SZ)"
expect "... while a new order dated three days ahead is refused" contains "$ERR" "in the future"
stop_server back
RC=0; "$CRM_BIN/crm-admin" check --data "$T/data" >"$T/check.out" 2>&1 || RC=$?
expect "crm-admin check warns of the order dated ahead, and passes" \
    bash -c "[ \"\$1\" = 0 ] && grep -q \"warning: order $OA: field 'ordered_at': .* is in the future\" \"\$0\" &&
             grep -q '^consistent: 0 problems, 1 warning' \"\$0\"" "$T/check.out" "$RC"
finish
