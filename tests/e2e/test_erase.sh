# test_erase - `crm customer erase` (SPEC §5, privacy): a customer's personal data leaves
# its records, their indexes, every earlier change (feed replay) and the audit trail,
# while the records themselves stay (an order keeps its amount) and another customer's
# data is untouched; the erasure is one event carrying only the fact; admins only; a
# deleted customer leaves the recycle bin; the scrub of the history goes on after a
# kill -9; and no value is left in any column family of the store (crm-admin grep).
source "$(dirname "$0")/lib.sh"

start_with_users "sa sales staff" "ps support staff" "mk marketing staff" "sm sales manager" \
    -- --fault slow-erase

# ---- a customer with a history: every kind of record, updates, a deleted note ----
as sa customer add --name 王秘密 --company 秘密贸易 --phone 13911112222 --email wang.secret@example.com \
    --address 秘密路1号 --tag 机密 --birthday 1980-02-03
C=${OUT#created customer }
as sa customer edit "$C" --phone 13933334444 --address 秘密路2号
as sa customer add --name 李公开 --company 公开公司 --phone 13800005555 --email li.open@example.com
D=${OUT#created customer }
as sa activity log "$C" --type call --summary 秘密通话 --body 秘密内容很长
as sa activity log "$C" --type note --summary 秘密便签
A2=${OUT#created activity }
as sa activity delete "$A2" --yes
expect "a note of the customer is deleted (its change stays in the log)" test "$RC" -eq 0
as sa order add "$C" --line 'sku=TV-1,name=电视,quantity=1,unit_price=3999' --note 秘密备注
O=${OUT#created order }
as sa deal add "$C" --title 秘密项目 --amount 1000
as ps ticket open "$C" --subject 秘密工单 --body 秘密描述 --priority high
TK=${OUT#created ticket }
as ps ticket reply "$TK" 秘密回复
as ps feedback add "$C" --score-kind csat --score 4 --comment 秘密评价
as sa task add "$C" --title 秘密回访 --due 2026-12-01T09:00:00Z
as sa activity log "$D" --type call --summary 公开通话
as admin customer show "$C"
expect "the customer's history is there before" contains "$OUT" 王秘密

# a watcher that saw (and so made the server decode) every change so far
watch_start admin live --since 0
wait_for 'grep -q 秘密回访 "$T/live.out"'
expect "the live watcher saw the customer's changes" grep -q 秘密回访 "$T/live.out"

# ---- who may erase ----
as sm customer erase "$C" --yes
expect "a sales manager may not erase" test "$RC" -eq 1
expect "... and is told so" contains "$ERR" "PERMISSION_DENIED"
as admin customer erase c999 --yes
expect "a customer that never existed: not found" contains "$ERR" "no customer 'c999' ever existed"

# ---- a replica, and a watcher on it that has seen (decoded) every change ----
"$CRM_BIN/crm-admin" user add repl1 --role replica --data "$T/data" --server "$EP_main" \
    --out "$T/repl1.enroll" >"$T/o" 2>&1 || { cat "$T/o"; fail "replica identity"; }
"$CRM_BIN/crm-admin" replica init --from "$EP_main" --data "$T/r" --enroll "$T/repl1.enroll" \
    >"$T/o" 2>&1 || { cat "$T/o"; fail "replica init"; }
start_server r "$T/r" --replica-of "$EP_main"
rw() { "$CRM_CLI/crm" --config "$T/admin" --server "$EP_r" --json watch --since 0 >"$T/$1.out" 2>"$T/$1.err" & eval "W_$1=$!"; }

# ---- a deleted customer leaves the recycle bin ----
as sa customer add --name 赵删除 --phone 13700007777
E=${OUT#created customer }
rw rlive
wait_for 'grep -q 赵删除 "$T/rlive.out"'
expect "a watcher on the replica saw the customer (the replica decoded its changes)" grep -q 赵删除 "$T/rlive.out"
as sm customer delete "$E" --yes
as admin customer erase "$E" --yes
expect "a deleted customer is erased" contains "$OUT" "erased customer $E"
as admin customer bin
expect "... and is no longer in the recycle bin" test -z "$(grep -o "$E" <<<"$OUT")"
as sa customer restore "$E"
expect "... so it cannot be restored" test "$RC" -ne 0
wait_for 'grep -q 赵删除 "$T/live.out"'
expect "the live watcher had seen it (the server decoded those changes)" grep -q 赵删除 "$T/live.out"
watch_start admin replay1 --since 0
wait_for 'grep -q 公开通话 "$T/replay1.out"'
watch_stop replay1
expect "a replay on the same server after the erasure shows none of its values" \
    test -z "$(grep -o '赵删除\|13700007777' "$T/replay1.out")"
lag() { "$CRM_BIN/crm-admin" status --config "$T/admin" --server "$EP_r" --json 2>/dev/null |
       python3 -c "import json,sys; print(json.load(sys.stdin).get('lag_entries',''))"; }
sleep 0.3 # the replica pulls every 50 ms while idle: then it holds the scrub's last batch
wait_for '[ "$(lag)" = 0 ]'
watch_stop rlive
rw rreplay
wait_for 'grep -q 公开通话 "$T/rreplay.out"'
watch_stop rreplay
expect "a replay on the replica shows the other customer's changes" grep -q 公开通话 "$T/rreplay.out"
expect "... and none of the erased customer's values (the replica applied the scrub)" \
    test -z "$(grep -o '赵删除\|13700007777' "$T/rreplay.out")"
stop_server r


# ---- erase: stopped mid-way by kill -9 (the test server scrubs one entry per 40 ms) ----
as admin customer erase "$C" --yes --no-wait
expect "erase answers" test "$RC" -eq 0
expect "erase says how many records it blanked" contains "$OUT" "erased customer $C: 8 records blanked"
as admin --json customer erase "$C" --status
expect "the scrub of the history runs after the answer ($(field history_left) changes to go)" \
    test "$(field under_way)" = true
as sa customer edit "$C" --phone 13944445555 --company 新开公司
expect "a new phone and company are given while the scrub is under way" test "$RC" -eq 0
kill -9 "$PID_main"
wait "$PID_main" 2>/dev/null || true
wait_for 'grep -q "\"fields\"" "$T/live.out" && grep -q erased "$T/live.out"'
watch_stop live
ERASE_EV=$(grep '(erased)' "$T/live.out" | head -1)
expect "the erasure is one event with every record it blanked" \
    test "$(python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read())["parts"]))' <<<"$ERASE_EV")" -eq 8
expect "... which carries none of the erased values" test -z "$(grep -o '秘密\|1391111\|1393333\|wang.secret' <<<"$ERASE_EV")"
start_server main "$T/data"
export CRM_SERVER="$EP_main"
for _ in $(seq 1 200); do
    as admin --json customer erase "$C" --status
    [ "$(field under_way)" = false ] && break
    sleep 0.1
done
expect "after kill -9 and a restart the scrub goes on and finishes" test "$(field under_way)" = false

# ---- the store: no value left in any column family (before anyone searches again) ----
stop_server main
# read through the store (values are encrypted at rest, so a raw scan would see none of them)
"$CRM_BIN/crm-admin" grep --data "$T/data" 秘密 机密 13933334444 13911112222 wang.secret 13700007777 \
    赵删除 WANG.Secret@Example.com >"$T/grep.out" 2>&1 && RC=0 || RC=$?
expect "no column family holds an erased value (records, indexes, change log, audit, bin)" \
    test "$RC" -eq 1 -a ! -s "$T/grep.out"
"$CRM_BIN/crm-admin" grep --data "$T/data" 13800005555 LI.Open@Example.com >"$T/grep.out" 2>&1 && RC=0 || RC=$?
expect "... while the other customer's phone is there" \
    grep -q "^13800005555"$'\t'"records"$'\t' "$T/grep.out"
expect "... in its index too, as a blind term (so the index check above could see a leftover)" \
    grep -q "^13800005555"$'\t'"indexes"$'\t' "$T/grep.out"
expect "... and its e-mail's, however it is written (indexes fold case)" \
    grep -q "^LI.Open@Example.com"$'\t'"indexes"$'\t' "$T/grep.out"
"$CRM_BIN/crm-admin" check --data "$T/data" >"$T/check.out" 2>&1 && RC=0 || RC=$?
expect "crm-admin check passes after the erasure" test "$RC" -eq 0
start_server main "$T/data"
export CRM_SERVER="$EP_main"

# ---- nothing of the customer is readable any more ----
as admin customer show "$C"
expect "the customer is still there, erased" contains "$OUT" "(erased)"
expect "... without its name, phones, e-mail, address" \
    test -z "$(grep -o '王秘密\|13933334444\|wang.secret\|秘密路' <<<"$OUT")"
as admin --json order show "$O"
expect "its order keeps its amount" test "$(field record.total.minor)" = 399900
as admin --json customer show "$C"
expect "the customer keeps its derived value" test "$(field record.order_count)" = 1
as admin --json audit --limit 1000
expect "the audit trail names the erasure" contains "$OUT" '"action":"erase"'
expect "the audit trail holds none of the values" test -z "$(grep -o '秘密\|1391111\|1393333\|wang.secret' <<<"$OUT")"
expect "... and still holds the other customer's" contains "$OUT" 李公开
as admin customer search 13933334444
expect "the phone finds nothing" test -z "$(grep -o "$C" <<<"$OUT")"
as admin customer search 王秘密
expect "the name finds nothing" test -z "$(grep -o "$C" <<<"$OUT")"
as admin customer history "$C" name
expect "the name's history holds no old value" test -z "$(grep -o '王秘密' <<<"$OUT")"
as admin customer history "$C" phones
expect "the phones' history holds no old value" test -z "$(grep -o '1391111\|1393333' <<<"$OUT")"
expect "... and keeps the one given after the erasure" contains "$OUT" 13944445555
as admin --json audit --limit 1000
expect "the audit trail keeps what was given after the erasure" contains "$OUT" '"new_value":"新开公司"'
watch_start admin replay --since 0
wait_for 'grep -q 公开通话 "$T/replay.out"'
watch_stop replay
expect "a replay of the feed shows the other customer's changes" grep -q 公开通话 "$T/replay.out"
expect "a replay of the feed shows none of the erased values" \
    test -z "$(grep -o '秘密\|1391111\|1393333\|wang.secret' "$T/replay.out")"
as admin customer show "$D"
expect "the other customer is untouched" contains "$OUT" 13800005555
as admin customer erase "$D" --status
expect "the status of a customer nobody erased does not call it clean" contains "$OUT" "no scrub of the history of customer $D is under way"

# ---- a customer merged into another: its history is scrubbed, and the answer names the other ----
as sa customer add --name 孙合并 --phone 13622220000; M1=${OUT#created customer }
as sa customer add --name 孙合并二 --phone 13622221111 --allow-duplicate; M2=${OUT#created customer }
as sm customer merge "$M1" "$M2"
expect "two customers merged" test "$RC" -eq 0
as admin customer erase "$M2" --yes
expect "erasing the merged one says where its data went" contains "$OUT" "customer $M2 had been merged into $M1, which holds its data now: erase $M1 too"
as admin customer history "$M1"
expect "the kept customer's history shows the merged one's values before" contains "$OUT" 13622221111
as admin customer erase "$M1" --yes
as admin customer history "$M1"
expect "... and after both erasures it holds none" \
    test "$RC" -eq 0 -a -z "$(grep -o '孙合并\|1362222' <<<"$OUT")"

as admin customer erase "$C" --yes
expect "erasing again blanks what was given since" contains "$OUT" "erased customer $C: 1 record blanked; its history is scrubbed"
as admin customer erase "$C" --yes
expect "... and once more, nothing" contains "$OUT" "erased customer $C: 0 records blanked; its history is scrubbed"

# ---- the change log trimmed by retention: the audit trail (field history) is scrubbed anyway ----
stop_server main
start_server main "$T/data" --retain-events 3
export CRM_SERVER="$EP_main"
as sa customer add --name 周保留 --phone 13655556666; F=${OUT#created customer }
as sa customer edit "$F" --phone 13655557777
for i in 1 2 3 4 5; do as sa customer add --name "填充$i"; done
sleep 1.5 # the server trims once a second
RC=0; timeout 5 "$CRM_CLI/crm" --config "$T/admin" --json watch --since 1 >"$T/o" 2>"$T/e" || RC=$?
expect "the change log was trimmed (a replay from the start is refused)" grep -q OUT_OF_RANGE "$T/e"
as admin customer history "$F" phones
expect "the old phone is in the field history" contains "$OUT" 13655556666
as admin customer erase "$F" --yes
as admin customer history "$F" phones
expect "after the erasure of a customer whose changes were trimmed, its field history holds no phone" \
    test -z "$(grep -o '1365555' <<<"$OUT")"
stop_server main
finish
