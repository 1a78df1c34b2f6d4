#!/usr/bin/env bash
# bench_report.sh - at N customers: how long a segment count takes (answered from the
# indexes), how long a report over every customer takes (on the worker thread), and the p99
# of reads by id with and without reports running meanwhile (docs/PERFORMANCE.md, "Reports").
#   usage: tools/bench_report.sh BUILD_DIR WORK_DIR [N=1000000] [LOAD_SECONDS=15]
# A new WORK_DIR is initialized and preloaded (crm-bench: one customer in five consented,
# six provinces); an existing one is reused. Starts one crmd on 127.0.0.1 and stops it (by
# its PID) at the end.
set -euo pipefail
B=$1 W=$2 N=${3:-1000000} D=${4:-15}
PRELOAD=1
if [ -e "$W/data/db" ]; then
    PRELOAD=0
else
    mkdir -p "$W"
    "$B/crm-admin" init --data "$W/data" >/dev/null
    "$B/crm-admin" user add bench --dept sales --role manager --data "$W/data" --out "$W/bench.enroll" >/dev/null
    "$B/crm-admin" user add mk --dept marketing --role manager --data "$W/data" --out "$W/mk.enroll" >/dev/null
fi
"$B/crmd" --data "$W/data" --listen 'tcp://127.0.0.1:*' --sweep-every 0 >"$W/crmd.out" 2>"$W/crmd.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 1200); do grep -q READY "$W/crmd.out" && break; sleep 0.1; done
EP=$(awk '/^READY/{print $2}' "$W/crmd.out")
[ -n "$EP" ] || { echo "bench_report: crmd did not start (see $W/crmd.log)" >&2; exit 1; }
bench() { "$B/crm-bench" --config "$W/bench.enroll" --server "$EP" --server-pid "$PID" "$@"; }
crm() { "$B/crm" --server "$EP" "$@"; }
CRM=("$B/crm" --server "$EP") # for /usr/bin/time, which runs programs, not functions
echo "== $(uptime)"
if [ "$PRELOAD" = 1 ]; then
    echo "== preload $N"
    bench --preload "$N" --clients 4 --threads 2 --duration 1 | grep -E "^preload"
fi
echo "== segment counts (marketing), each timed from process start"
crm --config "$W/mk.enroll" segment save 上海同意 --province 上海 --view consented >/dev/null 2>&1 || true
crm --config "$W/mk.enroll" segment save 全部同意 --view consented >/dev/null 2>&1 || true
crm --config "$W/mk.enroll" segment save 浙江活跃 --province 浙江 --stage active >/dev/null 2>&1 || true
for s in s1 s2 s3; do
    for _ in 1 2 3; do
        /usr/bin/time -f "segment count $s: %e s wall" "${CRM[@]}" --config "$W/mk.enroll" segment count "$s"
    done
done
echo "== a report over every customer (value by tier), alone"
for _ in 1 2 3; do
    /usr/bin/time -f "report value: %e s wall" "${CRM[@]}" --config "$W/bench.enroll" report value --no-chart | tail -1
done
echo "== reads by id, 8 clients, ${D} s, no report running"
bench --ids "$N" --clients 8 --duration "$D" --mix 100,0,0,0,0 | grep -E "^(operation|get|all)"
echo "== the same while reports over every customer run back to back"
bench --ids "$N" --clients 8 --duration "$D" --mix 100,0,0,0,0 >"$W/load.out" &
BP=$!
end=$((SECONDS + D))
reports=0
while [ $SECONDS -lt $end ] && kill -0 "$BP" 2>/dev/null; do
    crm --config "$W/bench.enroll" report value --no-chart >/dev/null
    reports=$((reports + 1))
done
wait "$BP"
grep -E "^(operation|get|all)" "$W/load.out"
echo "reports completed during the load: $reports"
echo "== $(uptime)"
kill -TERM "$PID"; wait "$PID" || true
trap - EXIT
