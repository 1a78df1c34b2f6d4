# test_merge - duplicates and merge through the real server and client: a
# likely duplicate (same phone, same e-mail, same or very similar name at the same company) is
# refused on create and per line on import unless allowed; three departments'
# copies of one customer are merged by a manager as one change, one event with
# every record it touched, fields combined, records moved, value recomputed,
# history kept and the merged ids pointing to the kept one.
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "sa sales staff" "sm sales manager" "ps support staff" "pm support manager" "mk marketing staff" "mm marketing manager"

# ---- three departments, three copies of 李娜 ----
as sa customer add --name 李娜 --company 华东贸易 --phone 13900001111 --city 上海 --tag vip
C1=${OUT#created customer }
as ps customer add --name 李娜 --phone "+86 139 0000 1111" --email li.na@example.com
expect "the same phone is a likely duplicate" test "$RC" -eq 1
expect "the refusal names it and why" contains "$ERR" "$C1 (same phones)"
expect "and how to create it anyway" contains "$ERR" "--allow-duplicate"
as ps customer add --name 李娜 --email li.na@example.com --industry 零售 --allow-duplicate
expect "--allow-duplicate creates it" test "$RC" -eq 0
C2=${OUT#created customer }
as mk customer add --name "李 娜" --company 华东贸易 --email other@example.com
expect "the same name at the same company is a likely duplicate" contains "$ERR" "$C1 (same name and company)"
as sa customer add --name 李娜 --email LI.NA@example.com
expect "the same e-mail (any case) is a likely duplicate" contains "$ERR" "$C2 (same emails)"
as mk customer add --name 李娜 --company 华东贸易 --source event --tag 展会 --allow-duplicate
C3=${OUT#created customer }
as sa customer add --name 李娜
expect "a bare common name alone is not called a duplicate" test "$RC" -eq 0
printf 'name,phones\n王强,13700002222\n李娜,13900001111\n' >"$T/in.csv"
as sa import "$T/in.csv"
expect "an import reports duplicates per line" contains "$ERR" "line 3: likely a duplicate of customer $C1"
expect "and imports the rest" contains "$OUT" "imported 1 customer record;"
as sa import "$T/in.csv" --allow-duplicate
expect "--allow-duplicate imports every line" contains "$OUT" "imported 2 customer records; 0 lines"
printf 'name,emails\n甲,twin@example.com\n乙,TWIN@example.com\n' >"$T/twins.csv"
as sa import "$T/twins.csv"
expect "two lines of one file that duplicate each other: the second is refused" \
    test "$RC" -eq 1 -a "$(grep -c 'likely a duplicate' <<<"$ERR")" -eq 1
expect "and the first imported" contains "$OUT" "imported 1 customer record;"

# very similar names at the same company: one character apart (3+), words reordered
as sa customer add --name 王小明 --company 远航科技 --phone 13700003001; W1=${OUT#created customer }
as sa customer add --name 王晓明 --company "远航 科技" --phone 13700003002
expect "a name one character apart at the same company is a likely duplicate" \
    contains "$ERR" "$W1 (similar name, same company)"
as sa customer add --name 王晓明 --company 启明科技 --phone 13700003003
expect "not at another company" test "$RC" -eq 0
as sa customer add --name "Zhang Wei" --company Acme --phone 13700003004; Z1=${OUT#created customer }
as sa customer add --name "wei zhang" --company ACME --phone 13700003005
expect "the same words in another order are a likely duplicate" contains "$ERR" "$Z1 (similar name, same company)"
as sa customer add --name 李那 --company 华东贸易 --phone 13700003006
expect "two-character names one character apart are two people" test "$RC" -eq 0
as sa customer add --name "门店 12" --company 远航科技 --phone 13700003009
as sa customer add --name "门店 13" --company 远航科技 --phone 13700003010
expect "names that differ in a number are two records" test "$RC" -eq 0
printf 'name,company,phones
赵一鸣,星海公司,13700003007
赵一明,星海公司,13700003008
' >"$T/sim.csv"
as sa import "$T/sim.csv"
expect "in an import, a line similar to the line before is reported" \
    contains "$ERR" "line 3: likely a duplicate of customer"
# the lines before in the same request are not committed yet: each kind of match among them
printf 'name,company,phones,emails
甲一,北辰公司,13700004001,jia@example.com
甲二,南方公司,+86 137 0000 4001,
乙一,西山公司,13700004003,JIA@example.com
甲一,北辰公司,13700004004,
' >"$T/same.csv"
as sa import "$T/same.csv"
expect "in one import: the same phone as a line before" \
    test -n "$(grep -E '^line 3: likely a duplicate of customer c[0-9]+ \(same phones\)' <<<"$ERR")"
expect "... the same e-mail" test -n "$(grep -E '^line 4: .*\(same emails\)' <<<"$ERR")"
expect "... the same name at the same company" test -n "$(grep -E '^line 5: .*\(same name and company\)' <<<"$ERR")"
expect "... and the first line is imported" contains "$OUT" "imported 1 customer record; 3 lines had errors"

# the duplicate check must not reveal what marketing sees masked
as sa customer add --name 私密 --phone 13600006666 --birthday 1990-01-02; HIDDEN=${OUT#created customer }
as sa customer add --name 公开 --phone 13600007777 --birthday 1991-05-06 --consent yes --consent-channel wechat
OPEN=${OUT#created customer }
as mk customer add --name 探测 --phone 13600006666
expect "marketing is not told that a number it sees masked exists" test "$RC" -eq 0
as mk customer add --name 探测2 --phone 13600007777
expect "a consented customer's number is a duplicate for marketing too" contains "$ERR" "$OPEN (same phones)"
as mk customer list --birthday 1990-01-01..1990-01-03
expect "a birthday range does not find a customer whose birthday marketing sees masked" \
    test "$(grep -c "$HIDDEN" <<<"$OUT")" -eq 0
as mk customer list --birthday 1991-05-01..1991-05-31
expect "it finds a consented one" contains "$OUT" "$OPEN"
as sa customer list --birthday 1990-01-01..1990-01-03
expect "sales finds it" contains "$OUT" "$HIDDEN"

as sa customer add --name 娜娜 --email li.na@example.com --allow-duplicate; C4=${OUT#created customer }
as pm customer dupes
expect "dupes lists the customers sharing a phone" grep -q "^$C1,[c0-9,]* same phones" <<<"$OUT"
expect "and an e-mail" grep -q "^$C2,$C4 same emails (score 90)" <<<"$OUT"
expect "and a name at the same company, from its index (李 娜 and 李娜 at 华东贸易)" \
    grep -q "^$C1,$C3 same name and company (score 70)" <<<"$OUT"
expect "and counts the groups" contains "$OUT" "groups of likely duplicates"
ALL=$(sort <<<"$OUT")
as pm customer dupes --slice 2
expect "read two index entries at a time, the groups are the same" test "$(sort <<<"$OUT")" = "$ALL"
as pm customer dupes --min-score 80
expect "--min-score 80 leaves out the name-and-company groups" test "$(grep -c "same name and company" <<<"$OUT")" -eq 0
expect "and keeps the e-mail ones" grep -q "^$C2,$C4 same emails" <<<"$OUT"
as pm --json customer dupes --min-score 95
expect "--json gives each group's score" grep -q '"score":100' <<<"$OUT"
expect "--min-score 95: phones only" test "$(grep -c '"score":90' <<<"$OUT")" -eq 0
as pm customer dupes --min-score lots
expect "a bad --min-score is a usage error" test "$RC" -eq 2
as ps customer dupes
expect "dupes is for those who may merge" contains "$ERR" PERMISSION_DENIED
expect "... saying so" contains "$ERR" "finding duplicates, like merging them, takes the right to delete customers"

# their records in each department
as sa note add "$C1" 第一次电话
as sa order add "$C1" --line 'sku=A,quantity=1,unit_price=500'
as ps customer edit "$C2" --phone 13511112222
as ps ticket open "$C2" --subject 咨询; T2=${OUT#created ticket }
as ps feedback add "$C2" --score-kind csat --score 4
as sa order add "$C2" --line 'sku=B,quantity=2,unit_price=300'; O2=${OUT#created order }
as mk note add "$C3" 展会上认识

# ---- who may merge ----
as sa customer merge "$C1" "$C2"
expect "sales staff may not merge" contains "$ERR" PERMISSION_DENIED
as mm customer merge "$C1" "$C2"
expect "nor marketing managers" contains "$ERR" PERMISSION_DENIED
as pm customer merge "$C1" "$C1"
expect "a record is not merged into itself" test "$RC" -ne 0
as pm customer merge "$C1" "$C2" --take "consent=$C2"
expect "consent is never taken from another record" contains "$ERR" "not consent"
as pm customer merge "$C1" "$C2" --take "stage=$C2"
expect "--take is a change the caller's policy must allow" contains "$ERR" PERMISSION_DENIED

# ---- the merge: one change ----
S0=$(as admin --json whoami; field last_seq)
"$CRM_CLI/crm" --config "$T/sa" --json watch >"$T/w.out" 2>"$T/w.err" & W=$!
wait_for 'grep -q "watching from" "$T/w.err"'
# a support manager may merge, but a merge's changes to the kept record are judged as an
# update's: filling in the industry and uniting tags is beyond what support may change
as pm customer merge "$C1" "$C2" "$C3" --take "phones=$C2"
expect "a support manager's merge that would fill in fields support may not change is refused" \
    bash -c "grep -q PERMISSION_DENIED <<<\"\$0\" && grep -qE \"field '(industry|tags)'\" <<<\"\$0\"" "$ERR"
expect "... before anything moved" test "$(as admin --json whoami; field last_seq)" -eq "$S0"
as sm customer merge "$C1" "$C2" "$C3" --take "phones=$C2"
expect "a sales manager merges three into one" test "$RC" -eq 0
S1=$(as admin --json whoami; field last_seq)
expect "the merge is one sequence number" test "$S1" -eq $((S0 + 1))
wait_for 'grep -q "\"seq\":$S1" "$T/w.out"'
kill -INT $W; wait $W || true
expect "one event carries every record it touched" python3 - "$T/w.out" "$S1" "$C1" "$C2" "$C3" "$O2" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["seq"] == int(sys.argv[2])][0]
parts = {(p["op"], p["kind"], p["id"]) for p in ev["parts"]}
c1, c2, c3, o2 = sys.argv[3:]
assert ("update", "customer", c1) in parts, parts
assert ("delete", "customer", c2) in parts and ("delete", "customer", c3) in parts, parts
assert ("update", "order", o2) in parts, parts
assert len([p for p in parts if p[1] == "activity"]) == 1, parts  # the one of c1 stays put
PY
as pm --json customer show "$C1"
expect "--take decides a field (phones from $C2 only)" test "$(field record.phones)" = '["13511112222"]'
expect "blank fields are filled from the others" test "$(field record.emails)" = '["li.na@example.com"]'
expect "and so is the industry" test "$(field record.industry)" = 零售
expect "the kept value wins otherwise" test "$(field record.city)" = 上海
expect "tags are united" test "$(field record.tags)" = '["vip", "展会"]'
expect "activities moved" test "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["timeline"]))' <<<"$OUT")" -eq 2
expect "orders, tickets and feedback moved" test "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["orders"]), len(d["tickets"]), len(d["feedbacks"]))' <<<"$OUT")" = "2 1 1"
expect "the value is recomputed from all the orders" test "$(field record.order_count):$(field record.total_spend.minor)" = 2:110000
as pm customer show "$C2"
expect "a merged id answers with a pointer to the kept one" contains "$ERR" "was merged into '$C1'"
as ps --json ticket show "$T2"
expect "the ticket belongs to the kept customer now" test "$(field record.customer_id)" = "$C1"
as pm customer history "$C1" phones
expect "the history of the merged records is kept with it" contains "$OUT" 13511112222
as pm customer history "$C1"
expect "including the others' creation" test "$(grep -c create <<<"$OUT")" -ge 3
as admin audit --customer "$C2"
expect "the audit trail records the merge per record" contains "$OUT" "merged into $C1"

# a tier the server derived is no field a merge fills: a support manager merges a customer
# with orders into one without, and the tier follows the orders moved (a hand-set tier
# would carry over, with its override, and take the right to set it)
as admin customer add --name 合并保留 --phone 13722220001; KM=${OUT#created customer }
as admin customer add --name 合并另一 --phone 13722220002 --allow-duplicate; OM=${OUT#created customer }
as admin order add "$OM" --line 'sku=M,quantity=1,unit_price=10'
as pm customer merge "$KM" "$OM"
expect "a support manager merges a customer with orders into one without" test "$RC" -eq 0
as admin --json customer show "$KM"
expect "... its phones united, its tier derived from the orders moved" \
    test "$(field record.phones):$(field record.tier):$(field record.tier_override)" = '["13722220001", "13722220002"]:low:false'

stop_server main
RC=0; "$ADMIN_BIN" check --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "the store is consistent after the merge" test "$RC" -eq 0

# ---- format 3 -> 8 (3 -> 4): the company-and-name index the similar-name check reads, filled by upgrade ----
# (the fixture was made by the format-3 build: 王小明 and 李娜 at 星河科技, Zhang Wei at Blue Sky
# Ltd, one customer without a company)
mkdir "$T/f3" && tar -C "$T/f3" -xzf "$CRM_SRC/tests/fixtures/format3-datadir.tar.gz"
RC=0; "$ADMIN_BIN" upgrade --data "$T/f3/d" >"$T/o" 2>&1 || RC=$?
expect "crm-admin upgrade upgrades format 3" test "$RC" -eq 0
expect "... writing index entries and sealing its values" grep -q "from format 3 to 8: .* [1-9][0-9]* values encrypted, [1-9][0-9]* index entries" "$T/o"
RC=0; "$ADMIN_BIN" check --data "$T/f3/d" >"$T/o" 2>&1 || RC=$?
expect "the upgraded data dir is consistent" test "$RC" -eq 0
start_server f3 "$T/f3/d"
RC=0; "$CRM_CLI/crm" --config "$T/f3/d/admin.enroll" --server "$EP_f3" customer add --name 王晓明 \
    --company "星河 科技" >"$T/o" 2>"$T/e" || RC=$?
expect "a similar name at a company of the old data dir is found through the new index" \
    contains "$(cat "$T/e")" "c1 (similar name, same company)"
RC=0; "$CRM_CLI/crm" --config "$T/f3/d/admin.enroll" --server "$EP_f3" customer add --name "wei zhang" \
    --company "blue sky ltd" >"$T/o" 2>"$T/e" || RC=$?
expect "... and reordered words at the same company, case aside" contains "$(cat "$T/e")" "c3 (similar name, same company)"
stop_server f3
finish
