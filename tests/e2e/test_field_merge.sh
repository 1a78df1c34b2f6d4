# test_field_merge - issue 12 item 4 through the real client and server: no false
# conflicts, and honest ones. Two edits of different fields based on one version both
# land (the server merges by field against the version each read); an edit of a field
# someone changed since its base is a CONFLICT naming who changed which field, and
# when; list fields (phones, tags by --add-/--rm-) the same; `crm ... edit` without
# --expect-version still detects it (the version it read is the base); every kind
# through the one generic path (an activity too).
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "alice sales staff" "bob sales staff"
py() { python3 -c "import json,sys; r=json.loads(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$2" "$2"; }

as admin customer add --name 陈晨 --phone 13800001111 --city 北京 --stage lead --industry retail
C=${OUT#created customer }
expect "a customer at version 1" test "$RC" -eq 0 -a -n "$C"

# ---- two edits of different fields from the same base both land
as alice customer edit "$C" --expect-version 1 --city 上海
expect "alice changes the city based on version 1" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 2"
as bob customer edit "$C" --expect-version 1 --stage prospect
expect "bob changes the stage, also based on version 1: merged, no conflict" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 3"
expect "... and crm says it merged with others' changes" contains "$OUT" "(merged: others changed other fields since version 1)"
as admin --json customer show "$C"
expect "both changes are there" py 'r["record"]["city"]=="上海" and r["record"]["stage"]=="prospect" and r["record"]["version"]==3' "$OUT"

# ---- an edit of a field changed since its base: CONFLICT naming who, which field, when
as bob customer edit "$C" --expect-version 1 --city 广州
expect "bob's city based on version 1 is a conflict (exit 1, CONFLICT)" test "$RC" -eq 1 -a -n "$(grep -F CONFLICT <<<"$ERR")"
expect "the conflict names the field, who changed it, when and at which version ($ERR)" \
    test -n "$(grep -E "'city' was changed by alice [0-9]+ s ago \(version 2\)" <<<"$ERR")"
expect "... and the version the change was based on" contains "$ERR" "based on version 1 (now 3)"
as admin --json customer show "$C"
expect "the refused edit changed nothing" py 'r["record"]["city"]=="上海" and r["record"]["version"]==3' "$OUT"
as bob customer edit "$C" --expect-version 2 --industry tech
expect "a field nobody changed since version 2 merges too" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 4"
as bob customer edit "$C" --expect-version 2 --stage active
expect "bob's own later change of the stage is a change since version 2 as well" test "$RC" -eq 1 -a -n "$(grep -F "'stage' was changed by bob " <<<"$ERR")"
as bob customer edit "$C" --expect-version 9 --stage active
expect "a base newer than the record is a conflict that says so" test "$RC" -eq 1 -a -n "$(grep -F 'older than the version 9 your change was based on' <<<"$ERR")"

# ---- list fields: a whole field each; --add-/--rm- of different lists merge
as alice customer edit "$C" --expect-version 4 --add-phone 13900002222
expect "alice adds a phone based on version 4" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 5"
as bob customer edit "$C" --expect-version 4 --add-tag vip --add-tag 重点
expect "bob adds tags based on version 4: merged" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 6"
as admin --json customer show "$C"
expect "both lists changed" py 'r["record"]["phones"]==["13800001111","13900002222"] and r["record"]["tags"]==["vip","重点"]' "$OUT"
as bob customer edit "$C" --expect-version 4 --rm-phone 13800001111
expect "bob's --rm-phone based on version 4 conflicts with alice's phone added since" \
    test "$RC" -eq 1 -a -n "$(grep -E "'phones' was changed by alice [0-9]+ s ago \(version 5\)" <<<"$ERR")"
as alice customer edit "$C" --expect-version 5 --rm-tag vip
expect "alice's --rm-tag based on version 5 conflicts with bob's tags" \
    test "$RC" -eq 1 -a -n "$(grep -E "'tags' was changed by bob [0-9]+ s ago \(version 6\)" <<<"$ERR")"
as alice tag add "$C" 回头客
expect "crm tag reads the current version and lands" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "customer $C is at version 7"

# ---- without --expect-version: the version the client read is the base
# (CRM_TEST_EDIT_PAUSE_MS holds bob's edit between its read and its write; both times are
# scaled for the sanitizer builds, where a client's start alone can take a good part of them)
CRM_TEST_EDIT_PAUSE_MS=$((1500 * SLOW)) "$CRM_CLI/crm" --config "$T/bob" customer edit "$C" --city 深圳 >"$T/bob.o" 2>"$T/bob.e" &
BOB=$!
sleep "$(awk -v s="$SLOW" 'BEGIN { print 0.7 * s }')" # bob has read, alice goes in his pause
as alice customer edit "$C" --city 杭州
expect "alice changes the city while bob's edit is pending" test "$RC" -eq 0
RC=0; wait "$BOB" || RC=$?
ERR=$(cat "$T/bob.e")
expect "bob's edit without --expect-version is refused: alice changed the city after bob read it" \
    test "$RC" -eq 1 -a -n "$(grep -E "'city' was changed by alice [0-9]+ s ago \(version 8\)" <<<"$ERR")"
CRM_TEST_EDIT_PAUSE_MS=$((1500 * SLOW)) "$CRM_CLI/crm" --config "$T/bob" customer edit "$C" --industry 制造 >"$T/bob.o" 2>"$T/bob.e" &
BOB=$!
sleep "$(awk -v s="$SLOW" 'BEGIN { print 0.7 * s }')" # bob has read, alice goes in his pause
as alice customer edit "$C" --add-email chen@example.com
RC=0; wait "$BOB" || RC=$?
expect "... and lands when alice changed another field meanwhile" test "$RC" -eq 0 -a "$(head -1 "$T/bob.o")" = "customer $C is at version 10"
as admin --json customer show "$C"
expect "the customer has both" py 'r["record"]["industry"]=="制造" and r["record"]["emails"]==["chen@example.com"] and r["record"]["city"]=="杭州"' "$OUT"

# ---- many writers at once, each field by its own writer: every write lands
WRITERS=()
for f in "alice --industry" "bob --province" "admin --company"; do
    set -- $f
    ( for i in 1 2 3 4 5 6; do
          "$CRM_CLI/crm" --config "$T/$1" customer edit "$C" "$2" "v$i" >/dev/null 2>>"$T/par.$1" || echo "fail $i" >>"$T/par.$1"
      done ) &
    WRITERS+=($!)
done
wait "${WRITERS[@]}"
expect "three writers of three fields at once: no conflict ($(cat "$T"/par.* 2>/dev/null | head -3))" test -z "$(cat "$T"/par.* 2>/dev/null)"
as admin --json customer show "$C"
expect "... and every last value is there" py 'r["record"]["industry"]=="v6" and r["record"]["province"]=="v6" and r["record"]["company"]=="v6" and r["record"]["version"]==28' "$OUT"

# ---- every kind through the one generic path: an activity
as alice activity log "$C" --type call --summary 初次电话
A=${OUT#created activity }
as alice activity edit "$A" --expect-version 1 --body 约了下周见面
expect "activity: alice changes the body based on version 1" test "$RC" -eq 0
as admin activity edit "$A" --expect-version 1 --direction inbound
expect "activity: admin changes the direction based on version 1: merged" test "$RC" -eq 0 -a "$(head -1 <<<"$OUT")" = "activity $A is at version 3"
as admin activity edit "$A" --expect-version 1 --body 改了
expect "activity: admin's body based on version 1 names alice's change" \
    test "$RC" -eq 1 -a -n "$(grep -E "activity '$A' changed meanwhile: 'body' was changed by alice [0-9]+ s ago" <<<"$ERR")"

# ---- the field history is unchanged by all this
as admin customer history "$C" city
expect "history of the city lists each value" test "$RC" -eq 0 -a -n "$(grep -F '杭州' <<<"$OUT")"

stop_server main
finish
