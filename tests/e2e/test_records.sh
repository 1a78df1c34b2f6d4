# test_records - customers and activities through the real server and client:
# CRUD, validation, indexes and search (CJK too), filters and paging, versions
# and conflicts, tags, notes and the timeline, 16 concurrent incrementers
CRM_CLIENT_LEAKS=1 # the client's own features: its leaks are looked for here (lib.sh)
source "$(dirname "$0")/lib.sh"
PROBE="$CRM_BIN/crm-probe"

init_data "$T/data"
start_server main "$T/data"
export CRM_CONFIG="$T/data/admin.enroll" CRM_SERVER="$EP_main"
c() { RC=0; "$CRM_CLI/crm" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
jq_() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$OUT"; }

c customer add --name 张伟 --company 北京科技有限公司 --phone "138 0013 8000" \
    --email Zhang.Wei@Example.COM --city 北京 --province 北京 --industry 制造 --tag VIP --custom level=3
expect "add a Chinese customer" test "$RC" -eq 0 -a "$OUT" = "created customer c1"
c customer add --name "Alice Smith" --company "Acme Ltd" --phone "+1 415-555-0101" \
    --stage prospect --tier high --city Shanghai --tag vip --tag export --birthday 1990-02-28
expect "add an English customer" test "$RC" -eq 0 -a "$OUT" = "created customer c2"
c customer add --name "王芳" --phone "+86 139 1234 5678" --stage prospect --city 上海
expect "add a third customer" test "$RC" -eq 0

c --json customer show c1
expect "phone is normalized" test "$(jq_ 'd["record"]["phones"][0]')" = 13800138000
expect "email is lower-cased" test "$(jq_ 'd["record"]["emails"][0]')" = zhang.wei@example.com
expect "tag is folded" test "$(jq_ 'd["record"]["tags"][0]')" = vip
expect "stage defaults to lead" test "$(jq_ 'd["record"]["stage"]')" = lead
expect "version starts at 1" test "$(jq_ 'd["record"]["version"]')" = 1
expect "created_by is the caller" test "$(jq_ 'd["record"]["created_by"]')" = admin
c --json customer show c3
expect "+86 is dropped for Chinese numbers" test "$(jq_ 'd["record"]["phones"][0]')" = 13912345678

# validation: every refusal names the field, and nothing is written
for bad in "--company nobody" "--name x --stage foo" "--name x --phone 12ab" \
           "--name x --email not-an-email" "--name x --birthday 2023-02-30" \
           "--name $(python3 -c 'print("x"*201)')" "--name x --tag a,b" "--name x --id c9"; do
    # shellcheck disable=SC2086
    c customer add $bad
    expect "refused: $bad (rc $RC)" test "$RC" -eq 1 -o "$RC" -eq 2
    expect "the refusal names a field: $ERR" contains "$ERR" "field '"
done
c customer add --name $'bad\xff'
expect "invalid UTF-8 is refused" test "$RC" -eq 1
expect "invalid UTF-8 is named" contains "$ERR" "UTF-8"
c --json customer list
expect "refused adds wrote nothing" test "$(echo "$OUT" | wc -l)" -eq 3

# search: CJK substrings, phone whole and last 4, e-mail, English words
for q in 伟 张伟 科技 北京科技 13800138000 "138-0013-8000" 8000 zhang.wei@example.com; do
    c --json customer search "$q"
    expect "search '$q' finds c1" test "$(echo "$OUT" | python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin))')" = c1
done
c --json customer search smith
expect "search 'smith' finds c2 only" test "$(echo "$OUT" | python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin))')" = c2
c --json customer search 芳伟
expect "search for a pair nobody has finds nothing" test -z "$OUT"

# filters are ANDed
c --json customer list --stage prospect
expect "list --stage prospect" test "$(echo "$OUT" | python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin))')" = c2,c3
c --json customer list --stage prospect --tag vip
expect "list --stage prospect --tag vip" test "$(echo "$OUT" | python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin))')" = c2
c customer list --name 张伟
expect "filtering on a non-indexed field is refused" test "$RC" -eq 1
expect "and says which fields are" contains "$ERR" "filterable:"

# paging with a stable order
for i in $(seq 1 7); do c customer add --name "page $i" --tag paging; done
c --json customer list --tag paging --limit 3
expect "page 1 has 3 and then the cursor line" test "$(echo "$OUT" | grep -c '"id"'):$(echo "$OUT" | tail -1)" = '3:{"next_after":"c6"}'
last=$(echo "$OUT" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_after"])')
ids() { python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin if "id" in json.loads(l)))'; }
c --json customer list --tag paging --limit 3 --after "$last"
p2=$(echo "$OUT" | ids)
c --json customer list --tag paging --limit 3 --after "${p2##*,}"
p3=$(echo "$OUT" | ids)
expect "pages 2 and 3 continue in id order ($p2 / $p3)" test "$p2/$p3" = "c7,c8,c9/c10"
c customer list --tag paging --limit 3
expect "the table tells how to get the next page" contains "$OUT" "(more: --after c6)"

# edits, versions and conflicts
c customer edit c1 --stage active --custom tier2=yes
expect "edit works" test "$RC" -eq 0 -a "$(head -n 1 <<<"$OUT")" = "customer c1 is at version 2"
# (issue 12: edit says what changed, old → new, one line per field and nothing else)
expect "edit prints each change, old → new" test "$(tail -n +2 <<<"$OUT" | sed 's/  */ /g')" = "$(printf ' stage lead → active\n custom level=3 → level=3;tier2=yes')"
c --json customer show c1
expect "a map edit merges keys" test "$(jq_ 'd["record"]["custom"]["level"] + d["record"]["custom"]["tier2"]')" = 3yes
c customer edit c1 --expect-version 1 --stage churned
expect "a stale version whose field changed since is refused with exit 1" test "$RC" -eq 1
expect "CONFLICT names the field, who changed it and the current version" contains "$ERR" "'stage' was changed by admin"
expect "... and the current version" contains "$ERR" "(now 2)"
c customer edit c1 --expect-version 2 --city 天津
expect "the right version is accepted" test "$RC" -eq 0
c --json customer list --city 北京
expect "the old city index entry is gone" test -z "$OUT"
c --json customer list --city 天津
expect "the new city is indexed" contains "$OUT" '"id":"c1"'
c customer edit c1 --no-emails
c --json customer search zhang.wei@example.com
expect "a cleared e-mail is no longer found" test -z "$OUT"
c customer edit c1 --name ""
expect "a required field cannot be emptied" test "$RC" -eq 1
c customer edit c1 --version 9
expect "server fields cannot be edited" test "$RC" -eq 1

# tags, notes, activities and the timeline (newest first)
c tag add c1 key-account
c tag rm c1 vip
c --json customer show c1
expect "tag add and rm" test "$(jq_ '",".join(d["record"]["tags"])')" = key-account
c note add c1 第一次 电话 沟通
expect "note add" test "$RC" -eq 0
c activity log c1 --type wechat --summary "sent the quote" --direction outbound --occurred-at 2026-01-02T03:04:05Z
expect "activity log" test "$RC" -eq 0
c activity log c1 --type visit --summary "site visit" --occurred-at 2025-12-01
c activity log c99 --type call --summary x
expect "an activity for a missing customer is refused" test "$RC" -eq 1
expect "and says which" contains "$ERR" "no customer 'c99'"
c activity log c1 --type fax --summary x
expect "an unknown activity type is refused" test "$RC" -eq 2
c --json customer show c1
expect "timeline newest first" test "$(jq_ '",".join(a["type"] for a in d["timeline"])')" = note,wechat,visit
expect "note text kept" test "$(jq_ 'd["timeline"][0]["summary"]')" = "第一次 电话 沟通"
c customer show c1
expect "show prints the timeline" contains "$OUT" "timeline (newest first):"
c --json activity list c1 --limit 2
expect "activity list pages" test "$(echo "$OUT" | grep -c '"id"'):$(echo "$OUT" | tail -1)" = '2:{"next_after":"a2"}'

# delete takes the activities and the index entries along
c customer delete c3
expect "delete" test "$RC" -eq 0
c customer show c3
expect "a deleted customer is gone" test "$RC" -eq 1
c --json customer search 13912345678
expect "its phone index entry is gone" test -z "$OUT"

# 16 concurrent clients, 100 increments each, retrying on conflict
c customer add --name counter
cid=${OUT#created customer }
"$PROBE" increment "$EP_main" "$CRM_CONFIG" "$cid" n 16 100 >"$T/inc.out" 2>&1 &
inc_pid=$!
# reads stay correct while 16 writers hammer the store
wrong=0
for i in $(seq 1 20); do
    c --json customer search 北京科技
    [ "$(echo "$OUT" | python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in sys.stdin))')" = c1 ] || wrong=$((wrong + 1))
    c --json customer list --tag paging
    [ "$(echo "$OUT" | wc -l)" -eq 7 ] || wrong=$((wrong + 1))
done
expect "searches and lists are right while others write ($wrong wrong)" test "$wrong" -eq 0
RC=0; wait "$inc_pid" || RC=$?
OUT=$(cat "$T/inc.out")
echo "# $OUT"
expect "all 1600 increments went through" test "$RC" -eq 0
c --json customer show "$cid"
expect "no lost update: the counter is exactly 1600" test "$(jq_ 'd["record"]["custom"]["n"]')" = 1600
expect "and the version is 1601" test "$(jq_ 'd["record"]["version"]')" = 1601

stop_server main
# everything survives a restart
start_server again "$T/data"
export CRM_SERVER="$EP_again"
c --json customer show "$cid"
expect "records survive a restart" test "$(jq_ 'd["record"]["custom"]["n"]')" = 1600
c customer add --name after-restart
expect "ids continue after a restart" test "$OUT" = "created customer c$(( ${cid#c} + 1 ))"
stop_server again
finish
