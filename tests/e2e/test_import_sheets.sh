# test_import_sheets - issue 12 item 1: spreadsheets as Excel and WPS save them, through the
# real client and server: BOM, GBK, ';' and tab separators, loose and Chinese headers,
# --map, unknown columns, --dry-run, --upsert-by, --rejects with every error of a line,
# a file ending inside a quoted cell, standard input, --json per line, Ctrl-C and --from-line
CRM_CLIENT_LEAKS=1 # the client's own features: its leaks are looked for here (lib.sh)
source "$(dirname "$0")/lib.sh"

F="$CRM_SRC/tests/fixtures/sheets"
init_data "$T/a"
start_server a "$T/a"
c() { RC=0; "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
# jq-less JSON checks: py 'python expression over r (the one record)' "$OUT"
py() { python3 -c "import json,sys; r=json.loads(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$2" "$2" 2>/dev/null; }
# how many customers the server holds
count() { "$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" --json customer list --limit 1000 | grep -c '"id"' || true; }
one() { c --json customer search "$1"; }

# ---- Excel "CSV UTF-8": BOM, CRLF, Chinese headers and values
c import "$F/excel_utf8_bom.csv"
expect "Excel UTF-8 with BOM, CRLF and Chinese headers imports cleanly" test "$RC" -eq 0 -a "$OUT" = "imported 4 customer records; 0 lines had errors"
one 13800138001
expect "姓名/手机/电话/邮箱/公司 fill name, phones, emails, company" py 'r["name"]=="王芳" and r["phones"]==["13800138001","01065528801"] and r["emails"]==["wang.fang@example.com"] and r["company"]=="北京星辰科技有限公司"' "$OUT"
expect "省份/城市/行业/负责人 fill their fields" py 'r["province"]=="北京" and r["city"]=="北京" and r["industry"]=="软件" and r["owner"]=="admin"' "$OUT"
expect "Chinese values: 潜在客户 is prospect, 转介绍 is referral" py 'r["stage"]=="prospect" and r["source"]=="referral"' "$OUT"
expect "a list cell split at '，' (标签: 重点，华北)" py 'r["tags"]==["重点","华北"]' "$OUT"
one 13700137003
expect "'、' splits a list too, +86 is dropped" py 'r["tags"]==["华南","制造"] and r["phones"]==["13700137003"]' "$OUT"
expect "the blank row at the end is not an error" test "$(count)" -eq 4

# ---- WPS / Chinese Excel CSV: GBK, and a column no field has
c import "$F/wps_gbk.csv"
expect "an unknown column is an error before anything is sent (exit 2)" test "$RC" -eq 2
expect "the unknown column is named, with the way out" contains "$ERR" "line 1: unknown column '备注': map it with --map 'COLUMN=FIELD' or skip it with --ignore-column 'COLUMN'"
expect "nothing was written" test "$(count)" -eq 4
c import "$F/wps_gbk.csv" --ignore-column 备注 --dry-run
expect "--dry-run checks every line and says what would happen" test "$RC" -eq 0 -a "$OUT" = "dry run: 3 customer records would be imported (3 new, 0 updated, 0 unchanged); 0 lines had errors; nothing was written"
expect "the GBK file is detected and said so" contains "$ERR" "as GB18030"
expect "--dry-run wrote nothing" test "$(count)" -eq 4
c import "$F/wps_gbk.csv" --map '备注=custom.note'
expect "--map COLUMN=custom.KEY imports the GBK file" test "$RC" -eq 0 -a "$OUT" = "imported 3 customer records; 0 lines had errors"
one 13500135001
expect "GBK text arrives as the right characters (客户名称, 意向客户, the note)" py 'r["name"]=="孙丽" and r["stage"]=="prospect" and r["source"]=="website" and r["industry"]=="零售" and r["custom"]=={"note":"老客户介绍，需回访"}' "$OUT"
c import "$F/wps_gbk.csv" --map '备注=nosuchfield'
expect "--map to a field that does not exist is a usage error" test "$RC" -eq 2 -a -n "$(grep -F "no field 'nosuchfield'" "$T/e")"
c import "$F/wps_gbk.csv" --encoding utf-8 --ignore-column 备注 --dry-run
expect "--encoding utf-8 on a GBK file: its header is refused, the encoding named" test "$RC" -eq 2 -a -n "$(grep -F "line 1: the header holds bytes that are not UTF-8 text" "$T/e")"
printf 'name,city\nok,\xb1\xb1\xbe\xa9\n' >"$T/mixed.csv"
c import "$T/mixed.csv" --encoding utf-8
expect "--encoding utf-8: a line with other bytes is a bad line, named" test "$RC" -eq 1 -a -n "$(grep -F "line 2: the line holds bytes that are not UTF-8 text" "$T/e")"
c import "$T/mixed.csv"
one ok
expect "detected: an ASCII header, then GBK bytes (北京) on a line" py 'r["city"]=="北京"' "$OUT"
c import "$F/wps_gbk.csv" --encoding no-such-encoding
expect "an unknown --encoding is a usage error" test "$RC" -eq 2 -a -n "$(grep -F "unknown encoding 'no-such-encoding'" "$T/e")"

# ---- ';' separated, English headers in other spellings
c import "$F/excel_semicolon.csv"
expect "a ';' separated file is detected" test "$RC" -eq 0 -a "$OUT" = "imported 2 customer records; 0 lines had errors"
one hans.mueller@example.de
expect "Full Name / E-Mail / Phone Number / Lead Source match, a quoted ',' survives" py 'r["name"]=="Hans Müller" and r["company"]=="Müller, Schmidt & Co" and r["phones"]==["+49301234567"] and r["tags"]==["export","eu"] and r["source"]=="website"' "$OUT"

# ---- tab separated, GBK, with --encoding named
c import "$F/wps_tab_gbk.txt" --encoding gbk
expect "a tab separated GBK file with --encoding gbk" test "$RC" -eq 0 -a "$OUT" = "imported 2 customer records; 0 lines had errors"
one 15800158001
expect "its cells are right" py 'r["name"]=="郑红" and r["city"]=="成都" and r["stage"]=="prospect"' "$OUT"

# ---- Excel's "Unicode text": UTF-16LE with its byte order mark, tab separated, CRLF
c import "$F/excel_unicode_text.txt"
expect "a UTF-16 file is detected by its mark and imported" test "$RC" -eq 0 -a "$OUT" = "imported 2 customer records; 0 lines had errors"
expect "... and the encoding is named" grep -qF "read '$F/excel_unicode_text.txt' as UTF-16LE" "$T/e"
one 13700137001
expect "its cells are right (姓名, 意向客户, the e-mail)" py 'r["name"]=="周敏" and r["stage"]=="prospect" and r["emails"]==["zhou.min@example.com"] and r["city"]=="杭州"' "$OUT"
c import - --dry-run <"$F/excel_unicode_text.txt"
expect "from standard input too: both lines are now duplicates" contains "$OUT" "2 lines had errors"
expect "count after the good files (and the mixed one)" test "$(count)" -eq 14

# ---- every error of a line, the rejects file, fix and re-import
c import "$F/errors_utf8_bom.csv" --rejects "$T/rejects.csv"
expect "a file with bad lines exits 1" test "$RC" -eq 1
expect "the good line is imported" contains "$OUT" "imported 1 customer record; 3 lines had errors"
expect "line 3: every error is reported, not just the first" python3 -c '
import sys
line = [l for l in sys.argv[1].splitlines() if l.startswith("line 3: ")][0]
for part in ["field '"'"'name'"'"' is required", "field '"'"'emails'"'"': '"'"'not-an-email'"'"'", "field '"'"'birthday'"'"'", "field '"'"'stage'"'"': unknown value '"'"'bogus'"'"'"]:
    assert part in line, part
' "$ERR"
expect "line 5: a phone that is none and a stage no one knows, both" python3 -c '
import sys
line = [l for l in sys.argv[1].splitlines() if l.startswith("line 5: ")][0]
assert "field '"'"'phones'"'"'" in line and "好客户" in line, line
' "$ERR"
expect "the rejects file is named" contains "$ERR" "rejects.csv"
expect "the rejects file: BOM, the header plus import_error, the 3 lines as they were" python3 - "$T/rejects.csv" <<'PY'
import csv, sys
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"\xef\xbb\xbf"), raw[:10]
rows = list(csv.reader(raw[3:].decode("utf-8").splitlines()))
assert rows[0] == ["姓名", "手机", "邮箱", "阶段", "生日", "import_error"], rows[0]
assert sorted(r[1] for r in rows[1:]) == ["13600136002", "13600136003", "待补充"], rows
for r in rows[1:]:
    assert r[5].startswith("line "), r
PY
# fix the rejects as a person would, in the file itself, and import it again
python3 - "$T/rejects.csv" "$T/fixed.csv" <<'PY'
import csv, sys
raw = open(sys.argv[1], "rb").read()[3:].decode("utf-8")
rows = list(csv.reader(raw.splitlines()))
fix = {"13600136002": ["孙七", "13600136002", "sun.qi@example.com", "lead", "1990-12-31"],
       "13600136003": ["李四", "13600136003", "li.si@example.com", "prospect", ""],
       "待补充": ["张三", "13600136004", "zhang.san@example.com", "潜在客户", ""]}
out = [rows[0]] + [fix[r[1]] + [r[5]] for r in rows[1:]]
with open(sys.argv[2], "w", newline="", encoding="utf-8-sig") as f:
    csv.writer(f, lineterminator="\r\n").writerows(out)
PY
c import "$T/fixed.csv" --upsert-by phone
expect "the fixed rejects import (their import_error column is ignored)" test "$RC" -eq 0 -a "$OUT" = "imported 3 customer records: 3 created, 0 updated, 0 unchanged; 0 lines had errors"
c import "$T/fixed.csv" --upsert-by phone
expect "re-running the fixed file creates nothing twice" test "$RC" -eq 0 -a "$OUT" = "imported 3 customer records: 0 created, 0 updated, 3 unchanged; 0 lines had errors"
c import "$F/errors_utf8_bom.csv" --upsert-by phone
expect "the good line of the first file, again with --upsert-by: unchanged" contains "$OUT" "0 created, 0 updated, 1 unchanged"
expect "count: 14 + 1 + 3" test "$(count)" -eq 18

# ---- --upsert-by updates: fields replaced, lists united, by phone or e-mail
printf '姓名,手机,城市,标签\r\n王芳,13800138001,天津,新客户\r\n' >"$T/move.csv"
c import "$T/move.csv" --upsert-by phone
expect "a line naming an existing customer's phone updates it" test "$RC" -eq 0 -a "$OUT" = "imported 1 customer record: 0 created, 1 updated, 0 unchanged; 0 lines had errors"
one 13800138001
expect "the city is replaced, phones and tags are united, the version moved" py 'r["city"]=="天津" and r["phones"]==["13800138001","01065528801"] and r["tags"]==["重点","华北","新客户"] and r["version"]==2' "$OUT"
printf 'email,industry\nLIU.YANG@example.com,物流\n' >"$T/bymail.csv"
c import "$T/bymail.csv" --upsert-by email
expect "--upsert-by email: a line without a name updates by its e-mail" test "$RC" -eq 0 -a -n "$(echo "$OUT" | grep -F '1 updated')"
one liu.yang@example.com
expect "the industry was set" py 'r["industry"]=="物流" and r["name"]=="刘洋"' "$OUT"
c customer add --name 双胞胎 --phone 13911112222
c customer add --name 双胞胎二 --phone 13911112222 --allow-duplicate
printf 'name,phone,city\n双胞胎,13911112222,西安\n' >"$T/two.csv"
c import "$T/two.csv" --upsert-by phone
expect "a phone that names two customers is refused with both ids" test "$RC" -eq 1 -a -n "$(echo "$ERR" | grep -E 'line 2: its phones match 2 customer records \(c[0-9]+, c[0-9]+\)')"
c import "$T/two.csv" --upsert-by fax
expect "--upsert-by takes phone or email only" test "$RC" -eq 2

# ---- a file ending inside a quoted cell
n0=$(count)
c import "$F/unterminated.csv"
expect "a file ending inside a quoted cell is an error" test "$RC" -eq 1 -a -n "$(echo "$ERR" | grep -F "line 2: the file ends inside a quoted cell")"
expect "... and its last line is not imported" test "$(count)" -eq "$n0"

# ---- standard input, and --json per line
c import - --upsert-by email <"$F/excel_semicolon.csv"
expect "crm import - reads standard input" test "$RC" -eq 0 -a -n "$(echo "$OUT" | grep -F '2 unchanged')"
c --json import "$F/errors_utf8_bom.csv" --dry-run
expect "--json: one object per bad line, then the summary" python3 -c '
import json, sys
objs = [json.loads(l) for l in sys.argv[1].splitlines()]
lines = sorted(o["line"] for o in objs if "line" in o)
assert lines == [2, 3, 4, 5], lines   # line 2 is now a duplicate of what it created
s = objs[-1]
assert s["dry_run"] is True and s["failed"] == 4 and s["imported"] == 0, s
' "$OUT"
c --json import nosuchfile.csv --bogus
expect "--json: a usage error is JSON too" py 'r["error"]=="USAGE" and "--bogus" in r["message"]' "$OUT"

# ---- Ctrl-C: stop cleanly, say how far, continue with --from-line
python3 - "$T/big.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("name,phone\n")
    for i in range(700):
        f.write("批量%04d,1520000%04d\n" % (i, i))
PY
n0=$(count)
mkfifo "$T/fifo"
"$CRM_CLI/crm" --config "$T/a/admin.enroll" --server "$EP_a" import - <"$T/fifo" >"$T/int.out" 2>"$T/int.err" &
IMP=$!
exec 3>"$T/fifo"
head -n 601 "$T/big.csv" >&3          # the header and 600 lines; the pipe stays open
# all 600 committed (so answered too: the replies left with the commits), then Ctrl-C
for i in $(seq 1 $((200 * SLOW))); do [ "$(count)" -ge $((n0 + 600)) ] && break; sleep 0.05; done
sleep 0.3
kill -INT "$IMP"
RC=0; wait "$IMP" || RC=$?
exec 3>&-
OUT=$(cat "$T/int.out"); ERR=$(cat "$T/int.err")
expect "Ctrl-C: exit 130" test "$RC" -eq 130
expect "Ctrl-C: says how many lines were imported and how to continue" contains "$ERR" "interrupted: lines up to 601 are done (600 imported, 0 with errors); to continue: crm import --from-line 602 -"
expect "Ctrl-C: the lines read before it are all imported" test "$(count)" -eq $((n0 + 600))
c import --from-line 602 "$T/big.csv"
expect "--from-line continues where it stopped" test "$RC" -eq 0 -a "$OUT" = "imported 100 customer records; 0 lines had errors"
expect "every line once: no gap, no duplicate" test "$(count)" -eq $((n0 + 700))

# a NUL byte in a cell: the line is refused, not cut short at it
printf 'name,phone\nab\000cd,13811119901\nclean,13811119902\n' >"$T/nul.csv"
c import "$T/nul.csv"
expect "a NUL byte in a cell refuses its line, saying so" contains "$ERR" "line 2: a cell holds a NUL byte"
expect "... and the other lines are imported" contains "$OUT" "imported 1 customer record; 1 line had errors"
c customer list --phone 13811119901
expect "... nothing of the NUL line is stored (it was 'ab')" contains "$OUT" "no customer records"

# byte order marks inside the file (a BOM written twice, files joined): dropped, not stored
printf '\xef\xbb\xbf\xef\xbb\xbfname,phone\n\xef\xbb\xbfBOM甲,13811119903\n' >"$T/bom2.csv"
c import "$T/bom2.csv"
expect "a doubled BOM before the header is no part of the first column's name" \
    contains "$OUT" "imported 1 customer record; 0 lines had errors"
c --json customer list --phone 13811119903
expect "... and a BOM at a line's start is no part of the name" \
    python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); sys.exit(0 if r["name"] == "BOM甲" else 1)' <<<"$OUT"

# mixed encodings: read as UTF-8 until a line is not, GB18030 from there; a later line that
# is UTF-8 all the same is a bad line saying so (it was imported garbled, exit 0)
python3 - "$T/mixed.csv" <<'PY'
import sys
open(sys.argv[1], "wb").write("name,city\n混合甲,北京\n".encode() + "混合乙,上海\n".encode("gbk")
                              + "混合丙,广州\n".encode())
PY
c import "$T/mixed.csv"
expect "a UTF-8 line after the switch to GB18030 is a bad line (rc=$RC, $(grep -F 'line 4' "$T/e"))" \
    test "$RC" -eq 1 -a -n "$(grep -F "line 4: the line is UTF-8, and the file was read as GB18030" "$T/e")"
c customer search 混合乙 --count
expect "... the GBK line before it imported as it should" test "$OUT" = 1

# --rejects naming the file being imported (the README's loop run one step too far) is
# refused before anything is read or written: it used to empty the file as it was read
printf 'name,phone\n同名甲,13811119911\n同名乙,13811119912\nbad,\xe4\n' >"$T/fixme.csv"
cp "$T/fixme.csv" "$T/fixme.orig"
c import "$T/fixme.csv" --rejects "$T/fixme.csv"
expect "--rejects the input itself: a usage error (rc=$RC, $(head -1 <<<"$ERR"))" \
    test "$RC" -eq 2 -a -n "$(grep -F "names the file being imported" "$T/e")"
expect "... the file untouched" cmp -s "$T/fixme.csv" "$T/fixme.orig"
c customer search 同名甲 --count
expect "... and nothing imported" test "$OUT" = 0
# a workbook is named as one, not read as a CSV whose header is 'PK\x03\x04'
c export --xlsx "$T/book.xlsx" --limit 5
c import "$T/book.xlsx"
expect "an .xlsx given to import: says to save it as CSV (rc=$RC, $(head -1 <<<"$ERR"))" \
    test "$RC" -eq 2 -a -n "$(grep -F "is a workbook (.xlsx)" "$T/e")"
stop_server a
finish
