# test_timezones - dates and times are the user's (SPEC §3: stored in UTC, shown in the user's
# time zone, every input accepts an offset): a day in a filter, a report's --since/--until
# and its months are the user's local ones, in Shanghai (UTC+8) and in Los Angeles (UTC-8 in
# November), whatever zone the server runs in; an explicit offset is honoured; a range
# whose ends are no dates or times is refused, saying so; so is a view's N that is no number.
source "$(dirname "$0")/lib.sh"

start_with_users "sa sales staff" "sm sales manager"
sh() { TZ=Asia/Shanghai as "$@"; }
la() { TZ=America/Los_Angeles as "$@"; }
ids() { grep -oE '^o[0-9]+' <<<"$OUT" | sort | paste -sd, -; }

sh sa customer add --name 时区客户 --phone 13800001234; C=${OUT#created customer }
# midnight of the 15th in Shanghai is 16:00 UTC on the 14th
sh sa order add "$C" --line 'sku=A,quantity=1,unit_price=100' --ordered-at 2026-11-15; O1=${OUT#created order }
sh sa --json order show "$O1"
expect "a local date is stored as its instant in UTC" \
    test "$(field record.ordered_at)" = "$(date -u -d 2026-11-14T16:00:00Z +%s)000"
# 05:00 on 1 October in Shanghai is still 30 September in UTC
sh sa order add "$C" --line 'sku=B,quantity=1,unit_price=50' --ordered-at '2026-10-01 05:00'; O2=${OUT#created order }

sh sa order list --ordered-at 2026-11-15..2026-11-15
expect "in Shanghai, the order of the 15th is in a filter for the 15th" test "$(ids)" = "$O1"
sh sa order list --ordered-at 2026-11-14..2026-11-14
expect "... and not in one for the 14th" test -z "$(ids)"
la sa order list --ordered-at 2026-11-14..2026-11-14
expect "in Los Angeles the same instant is on the 14th" test "$(ids)" = "$O1"
la sa order list --ordered-at 2026-11-15..2026-11-15
expect "... not the 15th" test -z "$(ids)"
la sa order list --ordered-at '2026-11-14T16:00:00Z..2026-11-14T16:00:00Z'
expect "an end with its own zone is that instant, wherever the user is" test "$(ids)" = "$O1"
sh sa order list --ordered-at '2026-11-14T07:59:59-08:00..2026-11-14T08:00:00-08:00'
expect "... to the second, with an offset" test "$(ids)" = "$O1"
sh sa order list --ordered-at '2026-11-15 00:00:01'..
expect "a local time as an open range's start" test -z "$(ids)"
sh sa order list --ordered-at ..2026-10-01
expect "a date alone as an open range's end: that whole day" test "$(ids)" = "$O2"

sh sa order list --ordered-at ..'2026-10-01 05:00'
expect "a minute as TO is that whole minute" test "$(ids)" = "$O2"

# an unset time (a customer who never ordered) is in no range, open or not
sh sa customer add --name 未下单 --phone 13800005678; C2=${OUT#created customer }
sh sa customer list --last-order-at ..2099-12-31
expect "a customer without an order did not order before any day" \
    bash -c "grep -q '^$C ' <<<\"\$0\" && ! grep -q '^$C2 ' <<<\"\$0\"" "$OUT"
sh sa customer list --last-order-at 1960-01-01..
expect "... nor after one" bash -c "grep -q '^$C ' <<<\"\$0\" && ! grep -q '^$C2 ' <<<\"\$0\"" "$OUT"

# views by days: never contacted is stale at any N; an N that is no number is an error
sh sa customer list --view stale:25000
expect "a customer never contacted is stale even over 25,000 days (before 1970)" \
    grep -q "^$C2 " <<<"$OUT"
for bad in stale:abc stale:-5 stale: no-order:x stale:99999; do
    sh sa customer list --view "$bad"
    expect "--view $bad is refused, saying so" \
        bash -c "[ $RC -ne 0 ] && grep -q 'give a whole number' <<<\"\$0\"" "$ERR"
done

sh sm report sales --no-chart
expect "report months are the user's: 1 October 05:00 in Shanghai is October" \
    bash -c "grep -qE '^2026-10 +1 ' <<<\"\$0\" && ! grep -q '^2026-09' <<<\"\$0\"" "$OUT"
la sm report sales --no-chart
expect "... and September in Los Angeles" grep -qE '^2026-09 +1 ' <<<"$OUT"
sh sm report sales --since 2026-11-15 --until 2026-11-15 --no-chart
expect "--since/--until name the user's days" \
    bash -c "grep -qE '^2026-11 +1 ' <<<\"\$0\" && ! grep -q '^2026-10' <<<\"\$0\"" "$OUT"
la sm report sales --since 2026-11-15 --until 2026-11-15 --no-chart
expect "... which in Los Angeles hold nothing" contains "$OUT$ERR" "nothing in this period"

# ranges that are no dates or times: refused, saying so, not read as "nothing matches"
for bad in garbage.. x..y ..2026-13-45 2026-02-30.. 2026-11-15..tomorrow; do
    sh sa order list --ordered-at "$bad" --count
    expect "--ordered-at '$bad' is a usage error, not an empty list" \
        bash -c "[ $RC -eq 2 ] && grep -q 'is not a range of times' <<<\"\$0\"" "$ERR"
done
for bad in 2026-13-01.. ..2026-02-30 1990-1-1..; do
    sh sa customer list --birthday "$bad" --count
    expect "--birthday '$bad' is refused by the server, saying so" \
        bash -c "[ $RC -ne 0 ] && grep -q 'is not a range of dates' <<<\"\$0\"" "$ERR"
done
sh sa customer list --birthday 1990..1990-06 --count
expect "a year or a month is a date range's end" test "$RC" -eq 0
sh sm report sales --since yesterday
expect "a report's --since that is no date is a usage error" test "$RC" -eq 2

stop_server main
finish
