# test_pipeline - the sales pipeline through the real server and client: one
# change carrying many records (conversion, order + customer value), redacted
# per record for each department; money and order lines; derived customer
# value after orders, refunds and deletes; the sweep by date; deal stages and
# the pipeline report by scope; refusals; upgrade of a format-1 data dir; a
# format-2 data dir upgraded to indexed booleans (consent, task done).
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "sa sales staff" "sb sales staff" "sm sales manager" "ps support staff" "mk marketing staff" -- --sweep-every 0  # the sweeps here are driven by date
# field NAME: a field of the JSON object in $OUT (nested with dots)
# parts FILE SEQ: "op kind id" of every part of event SEQ in a watcher's output
parts() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["seq"] == int(sys.argv[2]):
        print(" ".join(p["op"] + ":" + p["kind"] + ":" + p["id"] for p in e["parts"]))' "$1" "$2"; }
# part_field FILE KIND ID FIELD: FIELD of the last part about KIND ID seen
part_field() { python3 -c '
import json, sys
val = "absent"
for l in open(sys.argv[1]):
    for p in json.loads(l)["parts"]:
        if p["kind"] == sys.argv[2] and p["id"] == sys.argv[3] and "record" in p:
            val = p["record"].get(sys.argv[4], "absent")
print(json.dumps(val, ensure_ascii=False) if isinstance(val, (dict, list)) else val)' "$@"; }
seq_now() { as admin --json whoami; field last_seq; }

# ---- a lead converted: one change, three records, redacted per department ----
as sa customer add --name 李娜 --phone 13900001111 --company 华东贸易 --stage lead
L=${OUT#created customer }
watch_start sa ws --customer "$L"
watch_start mk wm
watch_start ps wp
S0=$(seq_now)
as sa customer convert "$L" --deal-title 年度采购 --amount 50000 --expected-close 2026-12-31
expect "a lead converts" test "$RC" -eq 0
D=$(grep -o 'deal d[0-9]*' <<<"$OUT" | cut -d' ' -f2)
CONV=$((S0 + 1))
expect "the conversion is one sequence number" test "$(seq_now)" -eq "$CONV"
wait_for '[ -n "$(parts "$T/wm.out" $CONV)" ] && [ -n "$(parts "$T/ws.out" $CONV)" ] && [ -n "$(parts "$T/wp.out" $CONV)" ]'
expect "sales sees one event with the customer, the deal and the activity" \
    test "$(parts "$T/ws.out" $CONV | tr ' ' '\n' | cut -d: -f1,2 | sort | tr '\n' ' ')" = "create:activity create:deal update:customer "
expect "marketing sees the customer and the activity, not the deal" \
    test "$(parts "$T/wm.out" $CONV | tr ' ' '\n' | cut -d: -f2 | sort | tr '\n' ' ')" = "activity customer "
expect "marketing sees the customer masked" test "$(part_field "$T/wm.out" customer "$L" phones)" = '["139****1111"]'
expect "sales sees it in clear" test "$(part_field "$T/ws.out" customer "$L" phones)" = '["13900001111"]'
expect "support sees the deal too" \
    test "$(parts "$T/wp.out" $CONV | tr ' ' '\n' | cut -d: -f2 | sort | tr '\n' ' ')" = "activity customer deal "
as sa --json customer show "$L"
expect "the lead is now a prospect" test "$(field record.stage)" = prospect
expect "its deal carries the amount" test "$(field deals.0.amount.minor)" = 5000000
expect "and the activity logs it" contains "$(field timeline.0.summary)" "converted from lead to prospect"
as sa customer convert "$L" --deal-title again
expect "a prospect is not converted again" test "$RC" -eq 1
expect "and the refusal says why" contains "$ERR" "not a lead"
expect "the refusal wrote nothing" test "$(seq_now)" -eq "$CONV"

# ---- deals: stages, probability, lost reason, owner, scope ----
as sa deal move "$D" proposal
as sa --json deal show "$D"
expect "probability follows the stage" test "$(field record.probability)" = 30
as sa deal move "$D" lost
expect "a lost deal needs a reason" test "$RC" -eq 2 -o "$RC" -eq 1
expect "the refusal says so" contains "$ERR" "needs a reason"
as sa deal edit "$D" --probability 90
expect "probability is the server's" test "$RC" -eq 1
expect "and says it is derived" contains "$ERR" "derives it"
as sa deal add "$L" --title 第二单 --amount ¥1,234.50 --owner ps
expect "a deal's owner is a sales user" contains "$ERR" "not a sales user"
as sb deal add "$L" --title sb的单 --amount 1000 --expected-close 2027-01-15; DB=${OUT#created deal }
as sb deal add "$L" --title 美元 --amount "99 USD"
expect "deals are kept in the store's currency" contains "$ERR" "keeps deals and orders in CNY"
as sa deal show "$DB"
expect "sales staff do not read another's deal" contains "$ERR" PERMISSION_DENIED
as mk deal list
expect "marketing reads no deals" contains "$ERR" PERMISSION_DENIED
as sa --json deal list --owner me
expect "--owner me lists my deals" test "$(grep -c '"id"' <<<"$OUT")" -eq 1
as sm deal list --expected-close 2027-01-01..2027-01-31
expect "a close-date range filters" test "$(grep -c "^d" <<<"$OUT")" -eq 1 -a "$(grep -c "$DB" <<<"$OUT")" -eq 1
as sm --json deal list --expected-close ..2026-12-31
expect "an open-ended range, from the close-date index" test "$(grep -c '"id"' <<<"$OUT"):$(grep -c "\"$D\"" <<<"$OUT")" = 1:1
as sm --json deal list --expected-close 2026-01-01.. --stage proposal
expect "a range and a filter together" test "$(grep -c '"id"' <<<"$OUT"):$(grep -c "\"$D\"" <<<"$OUT")" = 1:1
as sm --json deal list --expected-close 2026-01-01.. --limit 1
expect "a range pages" test "$(grep -c '"id"' <<<"$OUT")" = 1
as sm deal list --expected-close 2026-01-01..2026-02-01
expect "an empty range lists nothing" contains "$OUT" "no deal records"
as sm deal list --title a..b
expect "a range on a field that is not a date is refused" contains "$ERR" "takes no range"
as sa --json pipeline
expect "the pipeline of sales staff counts their own deals" \
    test "$(python3 -c 'import json,sys; r={x["key"]:x for x in json.load(sys.stdin)["rows"]}; print(r["proposal"].get("count",0), r["qualify"].get("count",0))' <<<"$OUT")" = "1 0"
as sm --json pipeline
expect "a sales manager's pipeline counts every deal, amount and weighted amount" \
    test "$(python3 -c 'import json,sys; r={x["key"]:x for x in json.load(sys.stdin)["rows"]}; p=r["proposal"]; q=r["qualify"]; print(p["count"], p["sum"], p["weighted"], q["count"], q["sum"], q["weighted"])' <<<"$OUT")" = "1 5000000 1500000 1 100000 10000"
as sm pipeline
expect "the pipeline prints money by the currency" contains "$OUT" "¥50,000.00"
for i in 1 2 3; do as sm deal add "$L" --title "q$i" --amount 100; done
as mk --json pipeline
expect "marketing sees the pipeline in aggregate" test "$RC" -eq 0
expect "a stage of three or more deals shows its figures" \
    test "$(python3 -c 'import json,sys; r={x["key"]:x for x in json.load(sys.stdin)["rows"]}; q=r["qualify"]; print(q["count"], q["sum"])' <<<"$OUT")" = "4 130000"
expect "a stage of fewer hides them, so no single deal can be read off it" \
    test "$(python3 -c 'import json,sys; r={x["key"]:x for x in json.load(sys.stdin)["rows"]}; p=r["proposal (<3)"]; print(p.get("count",0), p.get("sum",0))' <<<"$OUT")" = "0 0"

# ---- a deal given to another owner leaves the old owner's feed with that change ----
as sa deal add "$L" --title 转交 --amount 100; DR=${OUT#created deal }
watch_start sa wr --kind deal
as sm deal edit "$DR" --owner sb
expect "a manager reassigns the deal" test "$RC" -eq 0
SR=$(seq_now)
as sb deal edit "$DR" --title 转交后
SR2=$(seq_now)
as sa deal add "$L" --title 之后 --amount 1; DA=${OUT#created deal }
wait_for 'grep -q "\"$DA\"" "$T/wr.out"'
watch_stop wr
expect "the old owner sees the change that takes the deal away" \
    test "$(parts "$T/wr.out" "$SR")" = "update:deal:$DR"
expect "with its new owner" test "$(part_field "$T/wr.out" deal "$DR" owner)" = sb
expect "and nothing the new owner does after" test -z "$(parts "$T/wr.out" "$SR2")"

# ---- orders: lines, totals, the customer's value in the same event ----
watch_start sa wo --customer "$L"
watch_start mk wm2
S1=$(seq_now)
as sa order add "$L" --line 'sku=A1,name=Widget,quantity=2,unit_price=99.50' \
    --line 'sku=B2,name=安装服务,quantity=1,unit_price=¥1,200.00'
O1=${OUT#created order }
expect "an order lands" test "$RC" -eq 0
OSEQ=$((S1 + 1))
wait_for '[ -n "$(parts "$T/wo.out" $OSEQ)" ] && [ -n "$(parts "$T/wm2.out" $OSEQ)" ]'
expect "the order and its customer's new value are one event" \
    test "$(parts "$T/wo.out" $OSEQ)" = "create:order:$O1 update:customer:$L"
expect "the event carries the new spend" test "$(part_field "$T/wo.out" customer "$L" total_spend)" = '{"minor": 139900, "currency": "CNY"}'
expect "and the tier" test "$(part_field "$T/wo.out" customer "$L" tier)" = mid
expect "marketing sees the customer's new value but not the order" test "$(parts "$T/wm2.out" $OSEQ)" = "update:customer:$L"
as sa --json order show "$O1"
expect "the server computes the total" test "$(field record.total.minor)" = 139900
expect "and each line's amount" test "$(field record.lines.0.amount.minor)" = 19900
expect "a new order is paid" test "$(field record.status)" = paid
as sa --json customer show "$L"
expect "order count" test "$(field record.order_count)" = 1
expect "a customer with orders is active" test "$(field record.stage)" = active
expect "average order value" test "$(field record.avg_order_value.minor)" = 139900

# an order or a contact happened: dated in 2099 (it would keep the customer active for
# decades) or before 1970 it is refused, saying why; tomorrow's date is within a day's slack
for when in 2099-01-01 1900-01-01; do
    as sa order add "$L" --line 'sku=Z,quantity=1,unit_price=1' --ordered-at "$when"
    expect "an order dated $when is refused, saying why" \
        bash -c "[ \"\$1\" != 0 ] && grep -qE \"ordered_at.*(in the future|before 1970)\" <<<\"\$0\"" "$ERR" "$RC"
    as sa activity log "$L" --type call --summary 未来 --occurred-at "$when"
    expect "... and an activity" contains "$ERR" "field 'occurred_at'"
done
as sa order edit "$O1" --ordered-at 2099-01-01
expect "... and an edit to such a date" contains "$ERR" "in the future"
as sa --json customer show "$L"
expect "the customer's orders are as they were" test "$(field record.order_count)" = 1
as sa activity log "$L" --type visit --summary 明天拜访记录 --occurred-at "$(date -u -d '+20 hours' +%Y-%m-%dT%H:%MZ)"
expect "a time within a day ahead is taken (clocks, time zones)" test "$RC" -eq 0

# an edit inside an order line is a change: an event and history
as sa order edit "$O1" --line 'sku=A1,name=Widget,quantity=3,unit_price=99.50' \
    --line 'sku=B2,name=安装服务,quantity=1,unit_price=¥1,200.00'
expect "an order line's quantity can change" test "$RC" -eq 0
wait_for 'grep -q "\"quantity\":3" "$T/wo.out"'
expect "the line edit is an event with the new total" test "$(part_field "$T/wo.out" order "$O1" total)" = '{"minor": 149850, "currency": "CNY"}'
expect "and the customer's spend follows" test "$(part_field "$T/wo.out" customer "$L" total_spend)" = '{"minor": 149850, "currency": "CNY"}'
as sa order history "$O1" lines
expect "the line change is in the history, old and new" contains "$OUT" "quantity=2"
expect "with the new quantity" contains "$OUT" "quantity=3"

# refunds
as sa order refund "$O1" --amount 49.50 --reason 少发一件
expect "a partial refund" contains "$OUT" "partially-refunded"
as sa --json customer show "$L"
expect "spend less refunds" test "$(field record.total_spend.minor)" = 144900
as sa order refund "$O1" --amount 99999
expect "a refund beyond the total is refused" contains "$ERR" "exceed the order's total"
as sa order refund "$O1" --amount 1449.00
expect "refunded in full" contains "$OUT" "refunded ¥1,498.50 in all, refunded"
as sa --json customer show "$L"
expect "spend is zero after a full refund" test "$(field record.total_spend.minor)" = 0
expect "the order still counts" test "$(field record.order_count)" = 1
expect "the tier is derived from spend and count" test "$(field record.tier)" = low

# orders round-trip through CSV and JSON Lines: lines, money and refunds as written
# (the CSV copy is in the JSON Lines export too: one original, three copies)
for fmt in csv jsonl; do
    as sa export --$fmt --kind order --customer-id "$L" --out "$T/orders.$fmt"
    as sa import --kind order "$T/orders.$fmt"
    expect "orders exported as $fmt import again ($OUT)" test "$RC" -eq 0
done
as sa --json order list --customer-id "$L" --limit 100
expect "the re-imported orders have the same lines, totals and refunds" python3 -c '
import json, re, sys
orders = [json.loads(l) for l in sys.stdin if l.strip()]
key = lambda o: json.dumps([o["lines"], o["total"], o["refunded"], o["status"],
                            [(r["amount"], r["reason"], re.sub(r"[.][0-9]+", "", r["at"]), r["by"]) for r in o["refunds"]]])  # CSV times are to the second
assert len(orders) == 4 and len({key(o) for o in orders}) == 1, [key(o) for o in orders]
' <<<"$OUT"
for o in $(python3 -c 'import json,sys; print(" ".join(json.loads(l)["id"] for l in sys.stdin if l.strip()))' <<<"$OUT"); do
    [ "$o" = "$O1" ] || as sm order delete "$o"
done
as sa --json customer show "$L"
expect "deleting the copies brings the customer's value back" test "$(field record.order_count):$(field record.total_spend.minor)" = 1:0
# an imported order's refunds keep when and by whom (an export imports back), but only as
# history can have them: after the order, not ahead of now, by a user of this server - the
# importer, or anyone when an admin imports another system's history
refund_line() { # AT BY
    printf '{"customer_id":"%s","ordered_at":"2026-06-01T10:00:00Z","lines":[{"sku":"F","quantity":1,"unit_price":{"minor":1000,"currency":"CNY"}}],"refunds":[{"amount":{"minor":500,"currency":"CNY"},"reason":"r","at":"%s","by":"%s"}]}\n' "$L" "$1" "$2"
}
refund_line 2099-11-02T00:00:00Z sa >"$T/r1.jsonl"
refund_line 2026-06-02T00:00:00Z admin >"$T/r2.jsonl"
refund_line 2026-05-01T00:00:00Z sa >"$T/r3.jsonl"
refund_line 2099-11-02T00:00:00Z "" >"$T/r5.jsonl" # a date without a name: still checked
for f in r1:"in the future" r2:"may name only you" r3:"before the order" r5:"in the future"; do
    as sa import --kind order "$T/${f%%:*}.jsonl"
    expect "a sales user's imported refund dated or signed as no history could be is refused: ${f#*:}" \
        contains "$ERR" "${f#*:}"
done
refund_line 2026-06-02T00:00:00Z nosuchuser >"$T/r6.jsonl"
as admin import --kind order "$T/r6.jsonl"
expect "... and an admin's, signed by no user of this server" contains "$ERR" "names no user"
refund_line 2026-06-02T00:00:00Z sa >"$T/r4.jsonl"
as admin import --kind order "$T/r4.jsonl"
expect "an admin imports another user's refund after its order, with its stamp" \
    contains "$OUT" "imported 1 order record"
as sa --json order list --customer-id "$L" --limit 100
expect "... as given" grep -q '"reason":"r","at":"2026-06-02T00:00:00Z","by":"sa"' "$T/o"
RO=$(python3 -c 'import json,sys; print(next(json.loads(l)["id"] for l in sys.stdin if "\"reason\":\"r\"" in l))' <"$T/o")
as sm order delete "$RO"
expect "... (and deleted again: $RO)" test "$RC" -eq 0
# a bare number as a time is milliseconds since 1970, as an old export has them: a short one
# (epoch seconds, a typo) is refused, not taken as a day in January 1970
as sa order add "$L" --line 'sku=N,quantity=1,unit_price=1' --ordered-at 1790000000
expect "a time given as 10 digits is refused, saying what a number means" \
    contains "$ERR" "a number is milliseconds since 1970"

# a second customer: tiers, override, deletes
as sb customer add --name 王强 --phone 13700002222; C2=${OUT#created customer }
for i in 1 2 3; do as sb order add "$C2" --line "sku=X$i,quantity=1,unit_price=600"; done
O3=${OUT#created order }
as sb --json customer show "$C2"
expect "three orders make a high spender (¥1,800 >= mid, 3 orders >= mid_orders)" test "$(field record.tier)" = mid
expect "order interval is computed" test "$(field record.order_count)" = 3
as sb customer edit "$C2" --tier high
as sb --json customer show "$C2"
expect "a tier set by hand overrides" test "$(field record.tier):$(field record.tier_override)" = high:true
as sb customer edit "$C2" --no-tier
as sb --json customer show "$C2"
expect "clearing it brings the derived tier back" test "$(field record.tier):$(field record.tier_override)" = mid:false
as sb customer edit "$C2" --stage lead
expect "the stage of a customer with orders is derived" test "$RC" -eq 1
expect "and the refusal says why" contains "$ERR" "follows its orders"
as sb customer edit "$C2" --order-count 9
expect "derived fields are refused from clients" contains "$ERR" "derives it"
as sb order delete "$O3"
expect "staff may not delete orders" contains "$ERR" PERMISSION_DENIED
as sm order delete "$O3"
expect "a manager deletes an order" test "$RC" -eq 0
as sb --json customer show "$C2"
expect "the customer's value follows the delete" test "$(field record.order_count):$(field record.total_spend.minor)" = 2:120000
as sm customer delete "$C2"
expect "a customer with orders cannot be deleted" test "$RC" -eq 1
expect "FAILED_PRECONDITION names the orders" contains "$ERR" "FAILED_PRECONDITION"
expect "naming them" contains "$ERR" "order o"
as sa customer add --name 只有活动; C3=${OUT#created customer }
as sa note add "$C3" 打过电话
as sm customer delete "$C3"
expect "a customer with only activities is deleted as before" test "$RC" -eq 0

# refusals of bad money and lines
as sa order add "$L" --line 'sku=A1,quantity=0,unit_price=1'
expect "quantity is range checked" contains "$ERR" "out of range"
as sa order add "$L" --line 'sku=A1,quantity=1,unit_price=1.234'
expect "more decimals than the currency has are refused" test "$RC" -eq 2
as sa order add "$L" --line 'sku=A1,quantity=1,unit_price=-5'
expect "a negative price is refused" test "$RC" -ne 0
as sa order add "$L"
expect "an order needs a line" contains "$ERR" "'lines' is required"
as sa order add "$L" --line 'sku=A1,quantity=1000000,unit_price=99999999999999'
expect "amounts that overflow are refused" test "$RC" -ne 0
as mk order list
expect "marketing reads no orders" contains "$ERR" PERMISSION_DENIED
as ps --json order show "$O1"
expect "support reads orders" test "$RC" -eq 0

# ---- the sweep: a date is a preview; the time-based rules written through the write path ----
# a customer whose last order was three days ago (the order dated then)
as sa customer add --name 老客户; CH=${OUT#created customer }
as sa order add "$CH" --line 'sku=H,quantity=1,unit_price=10' --ordered-at "$(date -u -d '-3 days' +%Y-%m-%d)"
watch_start admin wsw --customer "$L"
S2=$(seq_now)
future() { date -u -d "+$1 days" +%Y-%m-%d; }
RC=0; "$ADMIN_BIN" sweep --as-of "$(future 30)" --config "$T/admin" >"$T/o" 2>&1 || RC=$?
expect "a preview 30 days on would change nobody" contains "$(cat "$T/o")" ", 0 would change"
S0=$(date +%s%N); RC=0
"$ADMIN_BIN" sweep --as-of "$(future 30)" --config "$T/admin" --server tcp://127.0.0.1:1 >"$T/o" 2>&1 || RC=$?
expect "a sweep at a port nobody listens on fails within seconds, not 30 ($(( ($(date +%s%N) - S0) / 1000000 )) ms)" \
    test "$RC" -ne 0 -a $(( ($(date +%s%N) - S0) / 1000000 )) -lt $((10000 * SLOW))
RC=0; "$ADMIN_BIN" sweep --as-of "$(future 100)" --config "$T/admin" >"$T/o" 2>&1 || RC=$?
sed 's/^/# /' "$T/o"
expect "a preview 100 days on names the three customers with orders, and their stage" \
    bash -c "grep -q 'nothing written: .*, 3 would change:' \"\$0\" && grep -q \"^  $L: .*stage\" \"\$0\" && grep -q \"^  $CH: .*stage\" \"\$0\"" "$T/o"
as sa --json customer show "$L"
expect "... and writes nothing: the customer is still active" test "$(field record.stage)" = active
expect "... no change was committed (no event, no audit entry)" test "$(seq_now)" -eq "$S2"
watch_stop ws; watch_stop wm; watch_stop wp; watch_stop wo; watch_stop wm2; watch_stop wsw
expect "... and no event reached the customer's watcher" test "$(wc -l <"$T/wsw.out")" -eq 0
# time passing, as the rules see it (the server's own sweep is off): under at_risk_days 0
# every customer with orders is at risk now; under at_risk_days 1 and churned_days 2 the
# customer whose last order was three days ago has churned. crm-admin sweep (no date) writes
# what the rules give.
stop_server main
mkdir -p "$T/rules" && printf 'at_risk_days = 0\nchurned_days = 1000\n' >"$T/rules/risk.conf"
printf 'at_risk_days = 1\nchurned_days = 2\n' >"$T/rules/churn.conf"
start_server swp "$T/data" --rules "$T/rules/risk.conf" --sweep-every 0
export CRM_SERVER="$EP_swp"
watch_start admin wsw --customer "$L"
RC=0; "$ADMIN_BIN" sweep --config "$T/admin" >"$T/o" 2>&1 || RC=$?
expect "a sweep now under the new rules changes the three customers with orders" \
    contains "$(cat "$T/o")" ": 3 changed"
as sa --json customer show "$L"
expect "the customer is at risk" test "$(field record.stage)" = at-risk
wait_for 'grep -q "at-risk" "$T/wsw.out"'
watch_stop wsw
expect "the sweep's change is an event" grep -q '"stage":"at-risk"' "$T/wsw.out"
as admin audit --customer "$L" --limit 3
expect "and audited as the sweep" contains "$OUT" "sweep as of"
stop_server swp
start_server swp "$T/data" --rules "$T/rules/churn.conf" --sweep-every 0
export CRM_SERVER="$EP_swp"
RC=0; "$ADMIN_BIN" sweep --config "$T/admin" >"$T/o" 2>&1 || RC=$?
as sa --json customer show "$CH"
expect "three days without an order or contact, past churned_days 2, the customer has churned" \
    test "$(field record.stage)" = churned
as sa --json customer show "$L"
expect "... while one contacted today is active again" test "$(field record.stage)" = active
stop_server swp
start_server main "$T/data" --sweep-every 0
export CRM_SERVER="$EP_main"
as sa note add "$CH" 重新联系上了
as sa --json customer show "$CH"
expect "a contact today makes the churned customer active, in the same write" \
    test "$(field record.stage)" = active

# ---- check: derived values agree with orders and activities ----
stop_server main
RC=0; "$ADMIN_BIN" check --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "crm-admin check finds the store consistent" test "$RC" -eq 0
expect "and checked the derived values" grep -q "derived values: [1-9][0-9]* customers checked" "$T/o"

# ---- the server sweeps by itself, with the rules of a rules file ----
mkdir -p "$T/rules" && printf '# test rules\nat_risk_days = 0 # at risk at once\nchurned_days = 1000\n' >"$T/rules/r.conf"
printf 'at_risk_days = x\n' >"$T/rules/bad.conf"
RC=0; "$CRM_BIN/crmd" --data "$T/data" --rules "$T/rules/bad.conf" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
expect "a bad rules file is refused, naming the line" grep -q "bad.conf:1:" "$T/e"
RC=0; "$ADMIN_BIN" rules --rules "$T/rules/r.conf" >"$T/o" 2>&1 || RC=$?
expect "crm-admin rules prints the rules in force" grep -q "^at_risk_days = 0 " "$T/o"
start_server sweeper "$T/data" --rules "$T/rules/r.conf" --sweep-every 0.0003
"$CRM_CLI/crm" --config "$T/sa" --server "$EP_sweeper" --json watch --customer "$L" >"$T/sw.out" 2>/dev/null & WSW=$!
wait_for 'grep -q "\"actor\":\"system\"" "$T/sw.out"'
kill -INT $WSW; wait $WSW || true
expect "the server's own sweep applies the rules as user 'system'" grep -q '"actor":"system".*"stage":"at-risk"' "$T/sw.out"
stop_server sweeper

# ---- check catches a derived value that does not follow its orders ----
start_server broken "$T/data" --fault no-derive
"$CRM_CLI/crm" --config "$T/sa" --server "$EP_broken" order add "$L" --line 'sku=Z9,quantity=1,unit_price=5' >/dev/null
stop_server broken
RC=0; "$ADMIN_BIN" check --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "crm-admin check notices a customer whose value missed an order" test "$RC" -eq 1
expect "and names the field" grep -q "customer $L: order_count is '1', its orders and activities give '2'" "$T/o"

# ---- format: a format-1 data dir is refused, upgraded, then served ----
mkdir "$T/old" && tar -C "$T/old" -xzf "$CRM_SRC/tests/fixtures/format1-datadir.tar.gz"
RC=0; "$CRM_BIN/crmd" --data "$T/old/d" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
expect "crmd refuses a format-1 data dir" test "$RC" -ne 0
expect "and says what to do" grep -q "crm-admin upgrade --data" "$T/e"
RC=0; "$ADMIN_BIN" upgrade --data "$T/old/d" >"$T/o" 2>&1 || RC=$?
expect "crm-admin upgrade upgrades it" test "$RC" -eq 0
expect "rewriting its change log" grep -q "9 change-log entries rewritten" "$T/o"
RC=0; "$ADMIN_BIN" check --data "$T/old/d" >"$T/o" 2>&1 || RC=$?
expect "the upgraded data dir is consistent" test "$RC" -eq 0
start_server old "$T/old/d"
"$CRM_CLI/crm" --config "$T/old/d/admin.enroll" --server "$EP_old" --json watch --since 1 \
    >"$T/old.out" 2>"$T/old.err" & WOLD=$!
wait_for '[ "$(wc -l <"$T/old.out")" -ge 8 ]'
kill -INT $WOLD; wait $WOLD || true
expect "its old changes replay as events with parts" \
    test "$(python3 -c 'import json,sys; print(" ".join(str(len(json.loads(l)["parts"])) for l in open(sys.argv[1])))' "$T/old.out")" = "1 1 1 1 1 1 1 1"
expect "the old delete lists its record" grep -q '"op":"delete","kind":"customer","id":"c3"' "$T/old.out"
RC=0; "$CRM_CLI/crm" --config "$T/old/d/admin.enroll" --server "$EP_old" --json customer show c1 >"$T/o" 2>&1 || RC=$?
OUT=$(cat "$T/o")
expect "its customers read" test "$(field record.name)" = 张伟
expect "with their last contact derived" test "$(field record.last_contact_at)" -gt 0
RC=0; "$CRM_CLI/crm" --config "$T/old/d/admin.enroll" --server "$EP_old" order add c1 \
    --line 'sku=U1,quantity=1,unit_price=10' >"$T/o" 2>&1 || RC=$?
expect "and take orders" test "$RC" -eq 0
stop_server old
RC=0; "$ADMIN_BIN" upgrade --data "$T/old/d" >"$T/o" 2>&1 || RC=$?
expect "a second upgrade has nothing to do" grep -q "already format" "$T/o"
# ---- format 2 -> 8: booleans indexed (3), names by company (4), tickets by order (5), values sealed (6), blind terms per index (7), single Latin letters unlisted (8); the upgrade writes the new index entries (check: none missing) ----
mkdir "$T/f2" && tar -C "$T/f2" -xzf "$CRM_SRC/tests/fixtures/format2-datadir.tar.gz"
RC=0; "$ADMIN_BIN" check --data "$T/f2/d" >"$T/o" 2>&1 || RC=$?
expect "a format-2 data dir is refused by check too" grep -q "crm-admin upgrade --data" "$T/o"
RC=0; "$ADMIN_BIN" upgrade --data "$T/f2/d" >"$T/o" 2>&1 || RC=$?
expect "crm-admin upgrade upgrades format 2" test "$RC" -eq 0
expect "... sealing its values (the data dir has a master key)" grep -q "from format 2 to 8: .* [1-9][0-9]* values encrypted, [1-9][0-9]* index entries" "$T/o"
RC=0; "$ADMIN_BIN" check --data "$T/f2/d" >"$T/o" 2>&1 || RC=$?
expect "the upgraded format-2 data dir is consistent" test "$RC" -eq 0
start_server f2 "$T/f2/d"
f2() { RC=0; "$CRM_CLI/crm" --config "$T/f2/d/admin.enroll" --server "$EP_f2" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
ids() { awk 'NR>1{print $1}' "$T/o" | sort | tr '\n' ' '; }
f2 customer list --consent yes
expect "--consent yes reads the index: the two who consented" test "$(ids)" = "c1 c3 "
f2 customer list --consent no
expect "--consent no: the others" test "$(ids)" = "c2 c4 "
f2 customer list --view consented --province 浙江
expect "the consented view is the same index, combined with others" test "$(ids)" = "c3 "
f2 customer list --consent maybe
expect "a boolean filter that is not yes or no is refused" grep -q "takes yes or no" "$T/e"
f2 customer edit c2 --consent yes --consent-channel web
f2 customer edit c1 --consent no
f2 customer list --consent yes
expect "an edit moves a customer between the boolean's entries" test "$(ids)" = "c2 c3 "
f2 segment save 同意的 --view consented; SG=${OUT#created segment }
f2 --json segment count "$SG"
expect "a segment of the view counts from the index" grep -q '"customers":2,"consented":2' "$T/o"
f2 task add c4 --title 回访; K=${OUT#created task }
f2 task list
expect "an open task is listed" test "$(ids)" = "$K "
f2 task list --all
expect "and with --all" test "$(ids)" = "$K "
f2 task done "$K"
f2 task list
expect "a done task leaves the open tasks (done=false from the index)" test "$(ids)" = ""
f2 task list --all
expect "and stays in --all" test "$(ids)" = "$K "
stop_server f2
RC=0; "$ADMIN_BIN" check --data "$T/f2/d" >"$T/o" 2>&1 || RC=$?
expect "after the edits its indexes are still consistent" test "$RC" -eq 0
finish
