# test_daily_use - issue 12 items 2, 3 and 6 through the real client and server: list fields
# (--add-/--rm-, edit prints old → new), finding a customer without its id (phone, e-mail,
# exact name, any-case id; candidates when several), list --owner me / --unowned / OR values /
# --count / --sort, search with filters, --opt=value, and exports (--excel, --xlsx, filters,
# --limit, --after)
CRM_CLIENT_LEAKS=1 # the client's own features: its leaks are looked for here (lib.sh)
source "$(dirname "$0")/lib.sh"

init_data "$T/a"
start_server a "$T/a"
c() { RC=0; "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
py() { python3 -c "import json,sys; r=json.loads(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$2" "$2"; }
ids() { python3 -c 'import json,sys; print(" ".join(json.loads(l)["id"] for l in sys.stdin if l.strip()))' <<<"$OUT"; }

c customer add --name 张伟 --company 北京科技 --phone "138 0013 8000" --email zhang.wei@example.com --stage lead --city 北京 --owner admin
c customer add --name 李娜 --company 上海贸易 --phone 13900139000 --stage prospect --city 上海
c customer add --name 王芳 --phone 13700137000 --stage active --city 广州 --owner admin
c customer add --name 张伟 --company 深圳电子 --phone 13600136000 --stage lead --city 深圳
c customer add --name 赵磊 --phone 13500135000 --stage churned --city 北京 --company '=HYPERLINK("http://x","y")'
expect "five customers" test "$RC" -eq 0 -a "$OUT" = "created customer c5"

# ---- item 3: list fields, and edit says what changed
c customer edit 13800138000 --add-phone "139 1111 2222"
expect "--add-phone keeps the others; edit prints old → new" test "$RC" -eq 0 -a "$OUT" = "$(printf 'customer c1 is at version 2\n  phones  13800138000 → 13800138000;13911112222')"
c customer edit c1 --rm-phone "+86 138 0013 8000"
expect "--rm-phone removes the number however it is written" test "$RC" -eq 0 -a "$OUT" = "$(printf 'customer c1 is at version 3\n  phones  13800138000;13911112222 → 13911112222')"
c customer edit c1 --rm-phone 100
expect "--rm-phone of a number it does not have is a usage error naming what it has" test "$RC" -eq 2 -a -n "$(grep -F "c1 has no phone '100' (phones: 13911112222)" "$T/e")"
c customer edit c1 --add-email Li@Example.com --rm-email ZHANG.WEI@example.com --stage prospect
expect "--add-email and --rm-email with another field: each change on its line" test "$RC" -eq 0 -a "$(tail -n +2 <<<"$OUT" | sed 's/  */ /g')" = "$(printf ' emails zhang.wei@example.com → li@example.com\n stage lead → prospect')"
c customer edit c1 --stage prospect
expect "an edit that changes nothing says so" test "$RC" -eq 0 -a "$OUT" = "customer c1 is unchanged (version 4)"
c customer edit c1 --add-tag VIP --add-tag 重点
c --json customer show c1
expect "the list flags are generic: --add-tag" py 'r["record"]["tags"]==["vip","重点"] and r["record"]["phones"]==["13911112222"] and r["record"]["emails"]==["li@example.com"]' "$OUT"
c customer edit c1 --phones 13911112222 --phone 13922223333
expect "replacing a whole list stays possible" test "$RC" -eq 0 -a -n "$(grep -F '13911112222 → 13911112222;13922223333' "$T/o")"
c customer edit c1 --stage=active
expect "--opt=value" test "$RC" -eq 0 -a -n "$(grep -E 'stage +prospect → active' "$T/o")"

# ---- item 6: finding a customer without its id
c --json customer show "139 2222 3333"
expect "show by a phone number, any spacing" py 'r["record"]["id"]=="c1"' "$OUT"
c --json customer show LI@example.com
expect "show by an e-mail, any case" py 'r["record"]["id"]=="c1"' "$OUT"
c --json customer show 李娜
expect "show by the exact name" py 'r["record"]["id"]=="c2"' "$OUT"
c --json customer show C2
expect "ids are case-insensitive" py 'r["record"]["id"]=="c2"' "$OUT"
c customer show 张伟
expect "a name two customers share: exit 1, the candidates listed" test "$RC" -eq 1 -a -n "$(grep -F "'张伟' names 2 customer records; give one of their ids:" "$T/e")" -a -n "$(grep -E '^c1 +张伟 +北京科技' "$T/e")" -a -n "$(grep -E '^c4 +张伟 +深圳电子' "$T/e")"
c customer show 张
expect "part of a name is not a name: exit 1 pointing at search" test "$RC" -eq 1 -a -n "$(grep -F "no customer '张'" "$T/e")"
c note add 13700137000 回电话了
c --json activity list 王芳
expect "note add and activity list take a phone and a name" test "$RC" -eq 0 -a -n "$(grep -F '回电话了' "$T/o")"
c tag add 13600136000 深圳
c --json customer show c4
expect "tag add takes a phone" py '"深圳" in r["record"]["tags"]' "$OUT"
c customer history 13500135000
expect "history takes a phone" test "$RC" -eq 0 -a -n "$(grep -F "name: '' -> 赵磊" "$T/o")"
c customer delete 13500135000 --expect-version 1
expect "delete takes a phone" test "$RC" -eq 0 -a "${OUT%%;*}" = "deleted customer c5"
c customer add --name 赵磊 --phone 13500135000 --stage churned --city 北京 --company '=HYPERLINK("http://x","y")'

# ---- item 6: list
c --json customer list --stage lead,prospect
expect "--stage lead,prospect is lead OR prospect" test "$(ids)" = "c2 c4"
c --json customer list --stage lead,prospect,active --city 北京,上海
expect "OR within a filter, AND across filters" test "$(ids)" = "c1 c2"
c customer list --stage lead,prospect,active --count
expect "--count with OR values counts the union" test "$RC" -eq 0 -a "$OUT" = "4"
c customer list --count
expect "--count" test "$OUT" = "5"
c --json customer list --owner me
expect "--owner me" test "$(ids)" = "c1 c3"
c --json customer list --unowned
expect "--unowned: the pool sales may claim from" test "$(ids)" = "c2 c4 c6"
c --json customer list --unowned --city 北京
expect "--unowned with a filter" test "$(ids)" = "c6"
c customer list --stage lead,prospect,active --limit 2
expect "an OR page says where the next starts" test "$RC" -eq 0 -a -n "$(grep -F '(more: --after c2)' "$T/o")"
c --json customer list --stage lead,prospect,active --limit 2 --after c2
expect "... and --after continues the union exactly" test "$(ids)" = "c3 c4"
c --json customer list --sort city
expect "--sort city (Chinese in pinyin order: 北京 广州 上海 深圳)" test "$(ids)" = "c1 c6 c3 c2 c4"
c --json customer list --sort -name
expect "--sort -name (descending, pinyin: 赵磊 张伟 张伟 王芳 李娜; ties in id order)" test "$(ids)" = "c6 c1 c4 c3 c2"
c --json customer list --sort -created_at --limit 3
expect "--sort -FIELD is descending, --limit cuts" test "$(ids)" = "c6 c4 c3"
c customer list --sort nosuchfield
expect "--sort on no field is a usage error" test "$RC" -eq 2
c --json customer search 张伟 --stage lead
expect "search with a list filter" test "$(ids)" = "c4"
c --json customer search 张伟 --stage lead,active --city 深圳,北京
expect "search with OR filters" test "$(ids)" = "c1 c4"
c customer search 张伟 --count
expect "search --count" test "$OUT" = "2"

# ---- item 2: exports
c export --excel --out "$T/x.csv"
expect "--excel writes a file" test "$RC" -eq 0 -a "$OUT" = "exported 5 customer records to $T/x.csv"
expect "--excel: UTF-8 with a BOM, CRLF line ends, every row" python3 - "$T/x.csv" <<'PY'
import csv, io, sys
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"\xef\xbb\xbf"), raw[:4]
assert raw.count(b"\r\n") == 6 and raw.count(b"\n") == 6, raw.count(b"\r\n")
rows = list(csv.DictReader(io.StringIO(raw[3:].decode("utf-8"), newline="")))
assert [r["name"] for r in rows] == ["张伟", "李娜", "王芳", "张伟", "赵磊"], rows
assert rows[4]["company"] == "'=HYPERLINK(\"http://x\",\"y\")", rows[4]["company"]
PY
c import "$T/x.csv" --upsert-by phone
expect "the Excel export imports back unchanged" test "$RC" -eq 0 -a -n "$(grep -F '0 created, 0 updated, 5 unchanged' "$T/o")"
c export --xlsx "$T/x.xlsx" --stage lead,churned
expect "--xlsx writes a workbook, OR filters honoured" test "$RC" -eq 0 -a "$OUT" = "exported 2 customer records to $T/x.xlsx"
expect "the workbook: a sheet with the header and the 2 rows, text cells never formulas" python3 - "$T/x.xlsx" <<'PY'
import re, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
assert "<f>" not in sheet and "<f " not in sheet, "a formula cell"
assert sheet.count("<row ") == 3, sheet.count("<row ")
text = sheet + z.read("xl/sharedStrings.xml").decode("utf-8") if "xl/sharedStrings.xml" in z.namelist() else sheet
for s in ["张伟", "赵磊", "=HYPERLINK", "phones", "13600136000"]:
    assert s.replace('"', "&quot;") in text or s in text, s
assert "李娜" not in text
PY
c export --csv --limit 2
expect "export honours --limit" test "$RC" -eq 0 -a "$(tail -n +2 <<<"$OUT" | cut -d, -f1 | tr '\n' ' ')" = "c1 c2 "
c export --csv --after c2 --limit 2
expect "export honours --after" test "$(tail -n +2 <<<"$OUT" | cut -d, -f1 | tr '\n' ' ')" = "c3 c4 "
c export --jsonl --unowned
expect "export takes --unowned (a view)" test "$(ids)" = "c2 c4 c6"
c export --csv --sort name
expect "export refuses --sort (it writes in id order)" test "$RC" -eq 2

# ---- item 5: local time, in and out
tz() { RC=0; TZ="$1" "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" "${@:2}" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
tz Asia/Shanghai activity log c2 --type call --summary 本地时间 --occurred-at "2026-11-29 09:00"
tz UTC activity log c2 --type call --summary 带时区 --occurred-at "2026-11-29T09:00+08:00"
tz UTC activity log c2 --type call --summary 世界时 --occurred-at "2026-11-29T01:00:00Z"
tz UTC --json activity list c2
expect "a local input, an offset and UTC name one moment; --json is RFC 3339" python3 -c '
import json, sys
got = {json.loads(l)["summary"]: json.loads(l)["occurred_at"] for l in sys.argv[1].splitlines()}
assert got == {"本地时间": "2026-11-29T01:00:00Z", "带时区": "2026-11-29T01:00:00Z", "世界时": "2026-11-29T01:00:00Z"}, got
' "$OUT"
tz Asia/Shanghai --json activity list c2
expect "--json shows the user's offset" python3 -c '
import json, sys
assert all(json.loads(l)["occurred_at"] == "2026-11-29T09:00:00+08:00" for l in sys.argv[1].splitlines())
' "$OUT"
tz Asia/Shanghai activity list c2
expect "tables show local time" test "$(grep -c '2026-11-29 09:00' "$T/o")" -eq 3
tz America/New_York activity list c2
expect "... in every zone (New York: the evening before)" test "$(grep -c '2026-11-28 20:00' "$T/o")" -eq 3
tz Asia/Shanghai customer show c2
expect "show prints times with their offset" test -n "$(grep -E '^last_contact_at +2026-11-29T09:00:00\+08:00$' "$T/o")"
tz Asia/Shanghai customer history c2 last_contact_at
expect "history shows a time's old and new values in the user's zone too" \
    grep -q -- "-> 2026-11-29 09:00:00" "$T/o"
tz Asia/Shanghai --json customer history c2 last_contact_at
expect "... and --json as RFC 3339 with the user's offset" \
    grep -q '"new_value":"2026-11-29T09:00:00+08:00"' "$T/o"
cp "$T/a/admin.enroll" "$T/tz.conf" && chmod 600 "$T/tz.conf" && echo "timezone = Asia/Tokyo" >>"$T/tz.conf"
RC=0; env -u TZ "$CRM_CLI/crm" --config "$T/tz.conf" --server "$EP_a" activity list c2 >"$T/o" 2>&1 || RC=$?
expect "timezone in the client config when TZ is not set" test "$RC" -eq 0 -a "$(grep -c '2026-11-29 10:00' "$T/o")" -eq 3
tz UTC activity log c2 --type call --summary bad --occurred-at "2026-11-29T09:00+99:00"
expect "a bad offset is refused, saying what a time looks like" test "$RC" -eq 2 -a -n "$(grep -F 'takes a time' "$T/e")"
tz Asia/Shanghai export --jsonl --kind activity --customer-id c2 --out "$T/acts.jsonl"
init_data "$T/b"
start_server b "$T/b"
for n in 张伟 李娜; do "$CRM_CLI/crm" --config "$T/b/admin.enroll" --server "$EP_b" customer add --name "$n" >/dev/null; done
RC=0; "$CRM_CLI/crm" --config "$T/b/admin.enroll" --server "$EP_b" import --kind activity "$T/acts.jsonl" >"$T/o" 2>&1 || RC=$?
expect "RFC 3339 times with offsets import back" test "$RC" -eq 0
RC=0; "$CRM_CLI/crm" --config "$T/b/admin.enroll" --server "$EP_b" --json activity list c2 >"$T/o" 2>&1 || RC=$?
expect "... as the same moments" test "$(grep -c '"occurred_at":"2026-11-29T01:00:00Z"' "$T/o")" -eq 3
stop_server b
# every time --json prints is RFC 3339 with the user's offset, whatever message holds it: a
# record's, a refund's inside an order, an audit entry's, an event's in watch, a deleted
# record's (they were integers outside the records: a refund's "at", audit and watch "time")
tz Asia/Shanghai order add c2 --line 'sku=T,quantity=1,unit_price=10'; TO=${OUT#created order }
tz Asia/Shanghai order refund "$TO" --amount 3 --reason 测试
tz Asia/Shanghai customer add --name 删除我; TD=${OUT#created customer }
tz Asia/Shanghai customer delete "$TD" --yes
: >"$T/times.jsonl"
for cmd in "order show $TO" "audit --limit 5" "customer bin" "whoami"; do
    tz Asia/Shanghai --json $cmd
    expect "--json $cmd answers" test "$RC" -eq 0
    cat "$T/o" >>"$T/times.jsonl"
done
TZ=Asia/Shanghai "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" --json watch --since 0 >"$T/w.jsonl" 2>"$T/w.err" &
WP=$!
for _ in $(seq 1 $((100 * SLOW))); do [ "$(wc -l <"$T/w.jsonl")" -ge 10 ] && break; sleep 0.05; done
kill -INT "$WP"; wait "$WP" || true
expect "watch --json replayed the changes" test "$(grep -c '"seq":' "$T/w.jsonl")" -ge 10
cat "$T/w.jsonl" >>"$T/times.jsonl"
expect "every time in --json is RFC 3339 with the user's offset (order, refund, audit, bin, watch)" python3 -c '
import json, re, sys
seen, bad = set(), []
def walk(v, key=""):
    if isinstance(v, dict):
        for k, x in v.items(): walk(x, k)
    elif isinstance(v, list):
        for x in v: walk(x, key)
    elif key in ("time", "at") or key.endswith("_at"):
        seen.add(key)
        if v is not None and not (isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+08:00", v)):
            bad.append((key, v))
for l in open(sys.argv[1]):
    if l.strip(): walk(json.loads(l))
assert not bad, bad
need = {"time", "at", "created_at", "deleted_at", "ordered_at"}
assert need <= seen, need - seen
' "$T/times.jsonl"

# ---- item 10: deleting on a terminal asks first; --yes and scripts do not
if command -v script >/dev/null; then
    c customer add --name 待删除 --phone 13300000001
    D=$(awk '{print $3}' <<<"$OUT")
    tty_crm() { RC=0; printf '%s\n' "$1" | script -qec "'$CRM_CLI/crm' --config '$T/a/admin.enroll' --server '$EP_a' ${*:2}" /dev/null >"$T/tty" 2>&1 || RC=$?; }
    tty_crm n customer delete "$D"
    expect "on a terminal, delete asks and names the customer" grep -q "delete customer $D (待删除) with its activities, feedback and tasks? \[y/N\]" "$T/tty"
    expect "... and 'n' deletes nothing" grep -q "not deleted" "$T/tty"
    c --json customer show "$D"
    expect "the customer is still there" test "$RC" -eq 0
    tty_crm y customer delete 13300000001
    expect "'y' deletes it" grep -q "deleted customer $D" "$T/tty"
    c customer add --name 待删除二 --phone 13300000002
    tty_crm '' customer delete 13300000002 --yes
    expect "--yes does not ask" test -z "$(grep -F '[y/N]' "$T/tty")" -a -n "$(grep -F 'deleted customer' "$T/tty")"
fi
c export --csv --kind nosuch
expect "an unknown --kind lists the kinds" test "$RC" -eq 2 -a -n "$(grep -F "unknown --kind 'nosuch' (kinds: customer, activity, deal" "$T/e")"

stop_server a
finish
