# test_report - `crm report` through the real server and client: every report
# with figures worked out by hand from the records made here, --since/--until
# and --by, the caller's scope (sales staff see their own deals, a manager
# the department, marketing an aggregate with rows of fewer than 3 records
# shown without figures, support refused what it cannot read), --json and
# --csv, charts, refusals; and that a report runs on the worker thread on a
# snapshot: while a (deliberately slow) report runs, other clients are served
# and a write made meanwhile is not in its figures.
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "sa sales staff" "sb sales staff" "sm sales manager" "ps support staff" "mk marketing staff" -- --sweep-every 0
# row KEY: the row of a report table whose first column is KEY (spaces squeezed)
row() { awk -v k="$1" '$1 == k' "$T/o" | tr -s ' '; }
# jrow KEY FIELD: a field of the row KEY in a --json report
jrow() { python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
cols = [c["name"] for c in r.get("columns", [])]
for row in r.get("rows", []):
    if row["key"] == sys.argv[2]:
        f = sys.argv[3]
        if f in ("suppressed", "count"):
            print(str(row.get(f, False if f == "suppressed" else 0)).lower())
        else:
            i = cols.index(f)
            print("-" if row.get("empty", [False] * len(cols))[i] else row.get("values", [0] * len(cols))[i])' "$T/o" "$1" "$2"; }

# ---- records whose figures are worked out by hand ----
as sa customer add --name 王磊 --phone 13900002001 --province 上海 --industry 制造 --source ad; C1=${OUT#created customer }
as sa customer add --name 刘洋 --phone 13900002002 --province 浙江 --industry 零售 --source event; C2=${OUT#created customer }
as sb customer add --name 陈静 --phone 13900002003 --province 上海 --industry 制造 --source ad; C3=${OUT#created customer }
as sa order add "$C1" --line 'sku=A,quantity=1,unit_price=100' --ordered-at 2026-09-10
expect "an order with its date" test "$RC" -eq 0
as sa order add "$C1" --line 'sku=B,quantity=2,unit_price=100' --ordered-at 2026-10-05
as sa order add "$C2" --line 'sku=C,quantity=3,unit_price=100' --ordered-at 2026-10-20
as sb order add "$C3" --line 'sku=D,quantity=1,unit_price=50' --ordered-at 2026-10-25
as sa deal add "$C1" --title 一期 --amount 1000; D1=${OUT#created deal }
as sa deal add "$C2" --title 二期 --amount 2000; D2=${OUT#created deal }
as sa deal move "$D2" won
expect "a deal is won" test "$RC" -eq 0
as sb deal add "$C3" --title 三期 --amount 500; D3=${OUT#created deal }
as sb deal move "$D3" lost --lost-reason 预算不足
expect "a deal is lost" test "$RC" -eq 0
as sb deal add "$C3" --title 四期 --amount 700
as sa activity add "$C1" --type call --summary 电话回访
as sa activity add "$C2" --type call --summary 电话沟通
as sa activity add "$C2" --type visit --summary 上门拜访
as ps ticket add "$C1" --subject 设备故障 --priority high; TK=${OUT#created ticket }
as ps ticket assign "$TK" me
as ps ticket reply "$TK" 已安排工程师
as ps ticket resolve "$TK" --resolution 已修复
expect "a ticket is answered and resolved" test "$RC" -eq 0
as ps ticket add "$C2" --subject 咨询发票; TK2=${OUT#created ticket }
for s in "csat 4" "csat 2" "nps 10" "nps 0" "nps 8"; do
    set -- $s
    as ps feedback add "$C1" --score-kind "$1" --score "$2"
done
expect "feedback recorded" test "$RC" -eq 0

# ---- sales: orders, revenue, AOV, buyers, frequency, repeat ----
as sa report sales --no-chart
expect "sales by month: September" test "$(row 2026-09)" = "2026-09 1 ¥100.00 ¥100.00 1 1.00 0.00%"
expect "sales by month: October (AOV 550/3, three buyers once each)" \
    test "$(row 2026-10)" = "2026-10 3 ¥550.00 ¥183.33 3 1.00 0.00%"
expect "it says what it read and as of which change" contains "$OUT" "4 records read, as of change"
as sa report sales --by region --no-chart
expect "by region: 上海 has C1 twice and C3 (repeat 1 of 2 buyers)" \
    test "$(row 上海)" = "上海 3 ¥350.00 ¥116.67 2 1.50 50.00%"
expect "by region: 浙江" test "$(row 浙江)" = "浙江 1 ¥300.00 ¥300.00 1 1.00 0.00%"
as sa report sales --by industry --since 2026-10-01 --until 2026-10-20 --no-chart
expect "--since/--until (a date means its whole day) and --by industry" \
    test "$(row 制造)" = "制造 1 ¥200.00 ¥200.00 1 1.00 0.00%"
expect "the order of the 20th is in, the 25th is not" \
    test "$(row 零售)" = "零售 1 ¥300.00 ¥300.00 1 1.00 0.00%"
as sa --json report sales --by industry
rowkeys=$(python3 -c 'import json,sys; print(" ".join(r["key"] for r in json.load(sys.stdin).get("rows", [])))' <"$T/o")
expect "rows keyed by text in pinyin order, as --sort (零售 líng before 制造 zhì; by bytes 制造 first): $rowkeys" \
    test "$rowkeys" = "零售 制造"
as sa report sales --csv
expect "--csv: a header with units" test "$(head -1 "$T/o")" = "month,orders,revenue (major units),aov (major units),buyers,orders/buyer,repeat (%)"
expect "--csv: plain numbers" grep -qx "2026-10,3,550.00,183.33,3,1.00,0.00" "$T/o"
as sa report sales --chart revenue
expect "--chart draws bars of the column" grep -q "^2026-10  ████████████████████████████████████████ ¥550.00" "$T/o"
expect "and a sparkline when the rows are months" grep -q "^trend  " "$T/o"
as sa report sales --chart nosuch
expect "--chart names a column" contains "$ERR" "no such column"

# ---- marketing: orders and deals only in aggregate, small rows without figures ----
as mk --json report sales
expect "marketing's sales report is an aggregate" \
    test "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("aggregate", False))' "$T/o")" = True
expect "a month of 3 orders shows its figures" test "$(jrow 2026-10 revenue)" = 55000
expect "a month of 1 order shows none" test "$(jrow 2026-09 suppressed)" = true
expect "not even its revenue" test "$(jrow 2026-09 revenue)" = "-"
as mk report sales --no-chart
expect "and says so in the table" test "$(row 2026-09)" = "2026-09 (<3) (<3) (<3) (<3) (<3) (<3)"
as mk report pipeline --no-chart
expect "marketing's pipeline: every stage has fewer than 3 deals" test "$(row qualify)" = "qualify (<3) (<3) (<3) (<3) (<3) (<3)"

# ---- pipeline: scope per role, win rate ----
as sa report pipeline --by owner --no-chart
expect "sales staff see their own deals only (weighted: 10% of 1,000 + 2,000 won)" test "$(row sa)" = "sa 2 ¥3,000.00 ¥2,100.00 1 0 100.00%"
expect "not a colleague's" test -z "$(row sb)"
as sm report pipeline --by owner --csv
expect "a sales manager sees the department: sa" grep -qx "sa,2,3000.00,2100.00,1,0,100.00" "$T/o"
expect "and sb (one lost, none won: win rate 0)" grep -qx "sb,2,1200.00,70.00,0,1,0.00" "$T/o"
as sm report pipeline --no-chart
expect "by stage by default" test "$(row won)" = "won 1 ¥2,000.00 ¥2,000.00 1 0 100.00%"
as sm pipeline
expect "crm pipeline keeps its own shape" contains "$OUT" "WEIGHTED"

# ---- tickets, satisfaction, value, activity, summary ----
as ps --json report tickets
M=$(date -u +%Y-%m)
expect "tickets: two opened this month" test "$(jrow "$M" opened)" = 2
expect "one resolved" test "$(jrow "$M" resolved)" = 1
expect "its time to first response is measured" test "$(jrow "$M" "response p50")" != "-"
expect "and to resolution" test "$(jrow "$M" "resolution p90")" != "-"
as mk report tickets
expect "marketing cannot read tickets: refused" contains "$ERR" "PERMISSION_DENIED"
as ps --json report satisfaction
expect "satisfaction: 5 responses" test "$(jrow "$M" responses)" = 5
expect "CSAT is the mean of 4 and 2" test "$(jrow "$M" csat)" = 300
expect "NPS: one promoter, one detractor of three" test "$(jrow "$M" nps)" = 0
as sm --json report value --by region
expect "value by region: 上海 has two buyers" test "$(jrow 上海 buyers)" = 2
expect "whose spend is 350" test "$(jrow 上海 spend)" = 35000
as sm report activity --no-chart
expect "activity per user and type" test "$(row sa)" = "sa 3 2 0 0 1 0 0 0"
as sa --json report summary --by source
expect "new customers by source" test "$(jrow ad new)" = 2
as sa report summary --since 2099-01-01 --no-chart
expect "an empty period says so" contains "$OUT" "nothing in this period"

# ---- refusals ----
as sa report sales --by phones
expect "grouping by a list field is refused" contains "$ERR" "cannot be grouped by 'phones'"
as sa report sales --since yesterday-ish
expect "a bad date is refused" contains "$ERR" "give a date"
as sa report nosuch
expect "an unknown report is a usage error" test "$RC" -eq 2
expect "naming the reports" contains "$ERR" "summary, pipeline, sales"
as sa report sales --by 'x"y'
expect "a bad --by is refused, not crashed" contains "$ERR" "cannot be grouped"
expect "... and the server's log names the user, not their key" \
    grep -q "bad request [0-9]* from 'sa': .*cannot be grouped" "$T/main.log"

# ---- off the request thread, on a snapshot ----
stop_server main
start_server slow "$T/data" --sweep-every 0 --fault slow-report
export CRM_SERVER="$EP_slow"
"$CRM_CLI/crm" --config "$T/sm" --json report sales >"$T/slow.out" 2>"$T/slow.err" & RP=$!
# its snapshot taken (the fault logs it, then holds the report 1.5 s): what follows is
# written after the snapshot, whenever the report got there
wait_for 'grep -q "fault slow-report: the report.s snapshot is taken" "$T/slow.log"'
as sa ping
expect "while a report runs, others are served" test "$RC" -eq 0
expect "and the report is still running then" kill -0 "$RP"
MS=$(sed -n 's/.* in \([0-9]*\)\.[0-9]* ms$/\1/p' <<<"$OUT")
expect_quick "the ping is answered at once, not after the report:" "$MS" 500
as sa order add "$C2" --line 'sku=E,quantity=1,unit_price=1' --ordered-at 2026-10-28
expect "writes too" test "$RC" -eq 0
RRC=0; wait "$RP" || RRC=$?
expect "the report answers" test "$RRC" -eq 0
cp "$T/slow.out" "$T/o"
expect "from the snapshot it began with: the order written meanwhile is not in it" \
    test "$(jrow 2026-10 orders)" = 3
as sm --json report sales
expect "the next report has it" test "$(jrow 2026-10 orders)" = 4
stop_server slow

# ---- sums past 64 bits: a clear error, and the server goes on ----
# an order may be up to 10^17 minor units and a customer's total spend up to 2^63-1: 47
# such orders for each of two customers make a sales month and a value tier past 2^63-1
start_server big "$T/data" --sweep-every 0
export CRM_SERVER="$EP_big"
for n in 1 2; do
    as sa customer add --name "大客户$n" --phone "1390000300$n"; BIG=${OUT#created customer }
    for i in $(seq 1 47); do
        as sa order add "$BIG" --line 'sku=X,quantity=1000000,unit_price=1000000000.00' \
            --ordered-at 2026-11-15 || break
    done
    expect "47 orders of ¥10^15 for customer $n" test "$RC" -eq 0
done
for r in sales value; do
    as sm report "$r"
    expect "report $r: a sum past 64 bits is refused (rc=$RC), not a negative figure" test "$RC" -eq 1
    expect "... saying so ($ERR)" contains "$ERR" "beyond what 64 bits hold"
done
as sm report sales --until 2026-11-01 --no-chart
expect "... and narrowed, it answers (rc=$RC)" test "$RC" -eq 0 -a -n "$(row 2026-10)"
as sa ping
expect "the server goes on" test "$RC" -eq 0
stop_server big

# a report waits long for its answer (300 s without --timeout), not for a server that is not
# there: that is said within the usual 5 s, as for any command
T0=$(date +%s)
RC=0; timeout 60 "$CRM_CLI/crm" --no-agent --config "$T/sm" --server "$EP_big" report summary \
    >"$T/down.out" 2>"$T/down.err" || RC=$?
T1=$(date +%s)
expect "a report with no server there: exit 3 in $((T1 - T0)) s (at most 5 s and a margin)" \
    test "$RC" -eq 3 -a $((T1 - T0)) -le 15
expect "... saying so ($(cat "$T/down.err"))" grep -q "cannot reach the server at .* within 5.0 s" "$T/down.err"
finish
