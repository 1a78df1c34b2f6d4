# test_segment - saved audiences through the real server and client: criteria
# of every shape (indexed values, money and number ranges, views), counts from
# the server, exports of the consented customers only, masked as the caller's
# reads, and who may save, read and export segments.
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "sa sales staff" "ps support staff" "mk marketing staff" "mm marketing manager" -- --sweep-every 0
field() { python3 -c '
import json, sys
v = json.loads(sys.stdin.read())
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1" <<<"$OUT"; }

# five customers in 上海 and one elsewhere; spend from orders; consent on some
mk_customer() { # NAME PROVINCE CONSENT AMOUNT
    local c=(--name "$1" --province "$2" --phone "1390000$((10000 + RANDOM % 89999))")
    [ "$3" = yes ] && c+=(--consent yes --consent-channel wechat)
    as sa customer add "${c[@]}" --allow-duplicate; local id=${OUT#created customer }
    [ "$4" -gt 0 ] && as sa order add "$id" --line "sku=S,quantity=1,unit_price=$4"
    echo "$id"
}
A=$(mk_customer 甲 上海 yes 20000)
B=$(mk_customer 乙 上海 no 15000)
C=$(mk_customer 丙 上海 yes 500)
D=$(mk_customer 丁 上海 yes 0)
E=$(mk_customer 戊 北京 yes 30000)

# a name that finds no segment says what finds one: segments have no phones, e-mails or
# text search (the hint offered all three)
as mk segment show 没有这个
expect "a missing segment is named, with what finds one and nothing that does not exist" \
    bash -c "grep -q \"no segment '没有这个' (give an id or the exact name)\" <<<\"\$0\" && ! grep -q search <<<\"\$0\"" "$ERR"
as mk customer show 没有这个
expect "a missing customer still offers phones, e-mails and search" \
    bash -c "grep -q 'a phone number, an e-mail or the exact name' <<<\"\$0\" && grep -q \"'crm customer search'\" <<<\"\$0\"" "$ERR"

as mk segment save 华东高价值 --province 上海 --total-spend 10000.. --description "for the spring campaign"
expect "marketing saves a segment" test "$RC" -eq 0
S=${OUT#created segment }
as mk segment save 坏的 --colour red
expect "an unknown criterion is refused at once" test "$RC" -ne 0
as mk segment save 坏的 --province 上海 --order-count x..y
expect "a bad range is refused" contains "$ERR" "criterion 2"
as mk segment count "$S"
expect "count: two customers, one consented" contains "$OUT" "2 customers, 1 of them consented"
as mk segment export "$S" --csv --out "$T/s.csv"
expect "export says how many it left out and why" contains "$OUT" "exported 1 customers of segment $S; left out 1 without marketing consent"
expect "the file holds only the consented customer" test "$(tail -n +2 "$T/s.csv" | cut -d, -f1 | tr '\n' ' ')" = "$A "
as mk segment save 买过的 --order-count 1.. --view consented
S2=${OUT#created segment }
as mk --json segment count "$S2"
expect "a number range and a view" test "$(field customers):$(field consented)" = 3:3
as mk segment save 沉默 --province 上海 --view stale:30
S3=${OUT#created segment }
as mk segment count "$S3"
expect "a view with a number of days (never contacted counts)" contains "$OUT" "4 customers"
as mk customer list --province 上海 --view consented --total-spend ..1000
expect "the same criteria work on list" test "$(grep -c "^c" <<<"$OUT")" -eq 2
as mk segment export "$S2" --jsonl --out "$T/s2.jsonl"
expect "exports are masked as the caller's reads (consented: in clear)" test "$(grep -c '\*\*\*\*' "$T/s2.jsonl")" -eq 0
as sa segment list
expect "sales reads segments" contains "$OUT" 华东高价值
as sa segment save mine --province 上海
expect "sales does not save segments" contains "$ERR" PERMISSION_DENIED
as ps segment list
expect "support has no segments" contains "$ERR" PERMISSION_DENIED
as mm segment rm "$S3"
expect "a marketing manager removes one" test "$RC" -eq 0
stop_server main
finish
