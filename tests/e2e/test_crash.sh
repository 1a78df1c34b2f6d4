# test_crash - kill -9 under write load, restart, verify: every acknowledged
# write is there, indexes agree with records, the change log has no gap
source "$(dirname "$0")/lib.sh"
PROBE="$CRM_BIN/crm-probe"
CYCLES=${CRM_CRASH_CYCLES:-20}

init_data "$T/data"
: >"$T/acked"
for cycle in $(seq 1 "$CYCLES"); do
    start_server "c$cycle" "$T/data"
    epvar="EP_c$cycle"; pidvar="PID_c$cycle"
    pids=()
    for w in 1 2 3; do
        "$PROBE" ackwriter "${!epvar}" "$T/data/admin.enroll" "$T/acked" "k$cycle-w$w" 3000 \
            >>"$T/writers.out" 2>&1 &
        pids+=($!)
    done
    # let them write, then kill the server at a random moment
    sleep "0.$(( RANDOM % 7 + 3 ))"
    kill -KILL "${!pidvar}"
    wait "${!pidvar}" 2>/dev/null || true
    for p in "${pids[@]}"; do wait "$p" || true; done
    RC=0; "$CRM_BIN/crm-admin" check --data "$T/data" >"$T/check.out" 2>&1 || RC=$?
    if [ "$RC" -ne 0 ]; then cat "$T/check.out"; fi
    expect "cycle $cycle: consistent after kill -9 ($(tail -1 "$T/check.out"))" test "$RC" -eq 0
done

start_server final "$T/data"
"$CRM_CLI/crm" --config "$T/data/admin.enroll" --server "$EP_final" export --csv --out "$T/all.csv" >/dev/null
acked=$(wc -l <"$T/acked")
missing=$(python3 - "$T/acked" "$T/all.csv" <<'PY'
import csv, sys
have = {(r["id"], r["name"]) for r in csv.DictReader(open(sys.argv[2], newline=""))}
lost = [l.split() for l in open(sys.argv[1]) if tuple(l.split()) not in have]
print(len(lost))
for l in lost[:10]:
    print("lost:", *l, file=sys.stderr)
PY
)
expect "writes were acknowledged across $CYCLES crashes ($acked)" test "$acked" -gt 100
expect "no acknowledged write was lost ($missing of $acked missing)" test "$missing" -eq 0
stop_server final
finish
