#!/usr/bin/env bash
# bench_backup.sh - measure hot backup, restore and verify at N customers, and the p99 of
# reads and writes while a hot backup runs (docs/PERFORMANCE.md, "Backups").
#   usage: tools/bench_backup.sh BUILD_DIR WORK_DIR [N=1000000] [LOAD_SECONDS=12]
# A new WORK_DIR is initialized and preloaded; an existing one (from an earlier run) is reused
# with its preloaded data (its backups and restores are removed first). Starts one crmd on
# 127.0.0.1 and stops it (by its PID) at the end.
set -euo pipefail
B=$1 W=$2 N=${3:-1000000} D=${4:-12}
PRELOAD=1
if [ -e "$W/data/db" ]; then
    PRELOAD=0
    rm -rf "$W/bk" "$W/restored" "$W"/crm-verify-*
else
    mkdir -p "$W"
    "$B/crm-admin" init --data "$W/data" >/dev/null
    "$B/crm-admin" user add bench --dept sales --role manager --data "$W/data" --out "$W/bench.enroll" >/dev/null
fi
"$B/crmd" --data "$W/data" --listen 'tcp://127.0.0.1:*' >"$W/crmd.out" 2>"$W/crmd.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q READY "$W/crmd.out" && break; sleep 0.1; done
EP=$(awk '/^READY/{print $2}' "$W/crmd.out")
bench() { "$B/crm-bench" --config "$W/bench.enroll" --server "$EP" --server-pid "$PID" "$@"; }

if [ "$PRELOAD" = 1 ]; then
    echo "== preload $N"
    bench --preload "$N" --clients 4 --threads 2 --duration 1 | grep -E "^preload"
fi
echo "== baseline: default mix, 32 clients, ${D} s, no backup"
bench --ids "$N" --clients 32 --duration "$D" | grep -E "^(operation|get|phone|name|update|activity|all)"
echo "== hot backup (first, full) under the same load"
bench --ids "$N" --clients 32 --duration "$D" >"$W/load.out" &
BP=$!
sleep 1
/usr/bin/time -f "backup create: %e s wall" "$B/crm-admin" backup create --data "$W/data" --server "$EP" --to "$W/bk"
wait "$BP"
grep -E "^(operation|get|phone|name|update|activity|all)" "$W/load.out"
echo "== second backup (incremental), no load"
/usr/bin/time -f "backup create: %e s wall" "$B/crm-admin" backup create --data "$W/data" --server "$EP" --to "$W/bk"
du -sh --apparent-size "$W/bk" "$W/data/db"
kill -TERM "$PID"; wait "$PID" || true
trap - EXIT
echo "== restore (newest backup) into a new dir"
/usr/bin/time -f "restore: %e s wall" "$B/crm-admin" restore --from "$W/bk" --data "$W/restored"
echo "== verify (newest backup): sizes, CRC-32C, scratch restore, crm-admin check, ldb"
/usr/bin/time -f "verify: %e s wall" "$B/crm-admin" backup verify --dir "$W/bk" --scratch "$W"
