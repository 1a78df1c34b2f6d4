# test_crash_orders - kill -9 while orders, refunds and contacts land; after
# every restart `crm-admin check` must find each customer's derived value
# (order count, spend, tier...) equal to what its orders and activities give,
# the indexes consistent and the change log gap-free; at the end every
# acknowledged order is there. CRM_CRASH_CYCLES sets the number of cycles.
source "$(dirname "$0")/lib.sh"
CYCLES=${CRM_CRASH_CYCLES:-8}

init_data "$T/data"
"$CRM_BIN/crm-admin" user add sa --dept sales --role staff --data "$T/data" --out "$T/sa" >/dev/null
start_server setup "$T/data"
for i in 1 2 3 4; do
    "$CRM_CLI/crm" --config "$T/sa" --server "$EP_setup" customer add --name "买家$i" >/dev/null
done
stop_server setup
: >"$T/acked"

# writer EP TAG: orders on four customers, now and then a refund or a note,
# until the server goes away; acknowledged order ids go to $T/acked
writer() {
    local ep=$1 tag=$2 n=0 out
    while [ $n -lt 400 ]; do
        n=$((n + 1))
        local c=c$(( (RANDOM % 4) + 1 ))
        out=$("$CRM_CLI/crm" --timeout 2 --config "$T/sa" --server "$ep" order add "$c" \
              --line "sku=$tag-$n,quantity=$(( RANDOM % 3 + 1 )),unit_price=$(( RANDOM % 500 + 1 )).50" \
              2>/dev/null) || return 0
        local o=${out#created order }
        echo "$o" >>"$T/acked"
        if [ $((n % 4)) -eq 0 ]; then
            "$CRM_CLI/crm" --timeout 2 --config "$T/sa" --server "$ep" order refund "$o" --amount 1 \
                >/dev/null 2>&1 || return 0
        fi
        if [ $((n % 5)) -eq 0 ]; then
            "$CRM_CLI/crm" --timeout 2 --config "$T/sa" --server "$ep" note add "$c" "call $tag-$n" \
                >/dev/null 2>&1 || return 0
        fi
    done
}

for cycle in $(seq 1 "$CYCLES"); do
    start_server "c$cycle" "$T/data"
    epvar="EP_c$cycle"; pidvar="PID_c$cycle"
    writer "${!epvar}" "k$cycle-a" & wa=$!
    writer "${!epvar}" "k$cycle-b" & wb=$!
    sleep "0.$(( RANDOM % 7 + 3 ))"
    kill -KILL "${!pidvar}"
    wait "${!pidvar}" 2>/dev/null || true
    wait $wa $wb || true
    RC=0; "$CRM_BIN/crm-admin" check --data "$T/data" >"$T/check.out" 2>&1 || RC=$?
    if [ "$RC" -ne 0 ]; then head -20 "$T/check.out"; fi
    expect "cycle $cycle: derived values, indexes and log consistent after kill -9 ($(tail -1 "$T/check.out"))" test "$RC" -eq 0
done

start_server final "$T/data"
missing=0
for c in c1 c2 c3 c4; do
    "$CRM_CLI/crm" --config "$T/sa" --server "$EP_final" --json order list --customer-id "$c" --limit 1000 \
        >>"$T/orders.json"
done
acked=$(wc -l <"$T/acked")
missing=$(python3 - "$T/acked" "$T/orders.json" <<'PY'
import json, sys
have = {json.loads(l)["id"] for l in open(sys.argv[2]) if l.strip()}
lost = [l.strip() for l in open(sys.argv[1]) if l.strip() not in have]
print(len(lost))
PY
)
expect "orders were acknowledged across $CYCLES crashes ($acked)" test "$acked" -gt 10
expect "no acknowledged order was lost ($missing of $acked missing)" test "$missing" -eq 0
"$CRM_CLI/crm" --config "$T/sa" --server "$EP_final" --json customer show c1 >"$T/o"
expect "a customer's order count is what its orders say" python3 - "$T/o" "$T/orders.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["record"]
orders = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
mine = [o for o in orders if o["customer_id"] == "c1"]
assert c["order_count"] == len(mine), (c["order_count"], len(mine))
spend = sum(o["total"]["minor"] - (o["refunded"] or {"minor": 0})["minor"] for o in mine)
assert (c["total_spend"] or {"minor": 0})["minor"] == spend, (c["total_spend"], spend)
PY
stop_server final
finish
