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
finish
