# test_bin - the recycle bin (issue 12 item 10, issue 13 item 3) through the real server and
# client: a deleted customer goes to the bin with its activities, feedback and tasks in the
# same change; `crm customer bin` lists it masked as reads are; those who may delete it may
# restore it, with everything deleted with it and its history; `crm customer dupes` includes
# it; an admin purges it, and the server purges what is older than --bin-keep by itself.
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "sa sales staff" "sm sales manager" "ps support staff" "mk marketing staff"
as() { local who=$1; shift; RC=0; "$CRM_CLI/crm" --config "$T/$who" "$@" >"$T/o" 2>"$T/e" </dev/null || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }

# ---- a customer with activities and a task, deleted by a sales manager ----
as sa customer add --name 李娜 --company 华东贸易 --phone 13900001111 --email li.na@example.com
C=${OUT#created customer }
as sa activity log "$C" --type call --summary 首次联系
A1=${OUT#created activity }
as sa note add "$C" 客户对价格敏感
as sa task add "$C" --title 回访 --due 2026-12-01T09:00:00Z
K=${OUT#created task }
as sa customer delete "$C" --yes
expect "sales staff may not delete a customer" contains "$ERR" PERMISSION_DENIED
S0=$(as admin --json whoami; field last_seq)
"$CRM_CLI/crm" --config "$T/sm" --json watch >"$T/w.out" 2>"$T/w.err" & W=$!
wait_for 'grep -q "watching from" "$T/w.err"'
as sm customer delete "$C" --yes
expect "a sales manager deletes it" test "$RC" -eq 0
expect "... and is told it is in the recycle bin, with what was deleted with it" \
    contains "$OUT" "deleted customer $C with 3 records of it; it is in the recycle bin"
S1=$(as admin --json whoami; field last_seq)
expect "the deletion is one change" test "$S1" -eq $((S0 + 1))
wait_for 'grep -q "\"seq\":$S1" "$T/w.out"'
kill -INT $W; wait $W || true
expect "one event: the customer, its two activities and its task" python3 - "$T/w.out" "$S1" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l).get("seq") == int(sys.argv[2])][0]
kinds = sorted(p["kind"] for p in ev["parts"] if p["op"] == "delete")
assert kinds == ["activity", "activity", "customer", "task"], kinds
PY
as sa customer show "$C"
expect "it is gone from reads" contains "$ERR" NOT_FOUND
as sm customer history "$C"
expect "its history stays readable while it is in the bin, the deletion included" \
    bash -c "[ $RC -eq 0 ] && grep -q delete '$T/o' && grep -q create '$T/o' && grep -q 13900001111 '$T/o'"
as mk customer history "$C"
expect "... to marketing too, masked as before (no phone in clear)" \
    bash -c "[ $RC -eq 0 ] && grep -q delete '$T/o' && ! grep -q 13900001111 '$T/o'"
as sa --json activity show "$A1"
expect "... and so are its activities" contains "$ERR" NOT_FOUND

# ---- the bin: listed, masked as reads are ----
as sm --json customer bin
expect "the manager sees it in the bin" test "$(field record.id)" = "$C"
expect "... with when and by whom" test "$(field deleted_by)" = sm
expect "... and the three records deleted with it" test "$(field with)" = 3
as sa customer bin
expect "sales staff see it too (they may read customers)" contains "$OUT" "$C  李娜 (华东贸易)  deleted"
expect "... by sm, with 3 records" contains "$OUT" "by sm, with 3 records"
as mk --json customer bin
expect "marketing sees it masked (no consent): not the phone" test "$(field record.phones)" != '["13900001111"]'
expect "... nor the e-mail" test "$(field record.emails)" != '["li.na@example.com"]'
expect "... but the name" test "$(field record.name)" = 李娜

# ---- dupes include the deleted customer ----
as sa customer add --name 李娜 --company 华东贸易 --phone 13900001111
expect "a live customer with its phone is not a duplicate of a deleted one" test "$RC" -eq 0
C2=${OUT#created customer }
as sm customer dupes
expect "dupes lists the deleted customer with its live duplicate" \
    contains "$OUT" "$C (deleted),$C2 same phones (score 100)"
expect "... and by name and company" contains "$OUT" "$C (deleted),$C2 same name and company (score 70)"
as sm customer dupes --min-score 90
expect "--min-score leaves out the weaker match of the deleted one" \
    test "$(grep -c "(deleted)" <<<"$OUT")" -eq 1
as sm customer dupes --slice 1
expect "in small slices too" contains "$OUT" "$C (deleted),$C2 same phones"

# ---- restore: by those who may delete it, with everything, one change ----
as sa customer restore "$C"
expect "sales staff may not restore (they may not delete)" contains "$ERR" PERMISSION_DENIED
expect "... and are told why in words about restoring" contains "$ERR" "restoring one takes the right to delete it"
as admin --json audit --id "$C" --limit 5
expect "the refusal is audited" grep -q '"action":"restore".*"denied":true' "$T/o"
as sm customer restore "$C"
expect "restoring next to a live duplicate is refused" contains "$ERR" "likely duplicate of $C2"
as sm customer restore "$C" --allow-duplicate
expect "--allow-duplicate restores it with the 3 records" test "$RC" -eq 0 -a \
    "$OUT" = "restored customer $C with 3 records of it"
as sa --json customer show "$C"
expect "it is back with its id" test "$(field record.id)" = "$C"
expect "... its phone" test "$(field record.phones)" = '["13900001111"]'
expect "... and its timeline" test "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["timeline"]))' <<<"$OUT")" -eq 2
as sa --json task show "$K"
expect "its task is back" test "$(field record.title)" = 回访
as sm customer history "$C"
expect "its history is whole: created, deleted, restored" \
    test "$(grep -c 'create' <<<"$OUT"):$(grep -c 'delete' <<<"$OUT"):$(grep -c 'restored from the recycle bin' <<<"$OUT")" = 2:1:1
as sm customer bin
expect "the bin no longer has it" contains "$OUT" "0 deleted customers"
as sm customer restore "$C"
expect "restoring a live customer says so" contains "$ERR" "is not deleted"
as sm customer restore c999
expect "restoring what was never deleted says so" contains "$ERR" "not in the recycle bin"
as sa customer list --phone 13900001111
expect "the restored customer is found through its indexes again" contains "$OUT" "$C "

# ---- purge: admins only, audited; restore is then impossible ----
as sm customer delete "$C2" --yes
as sm customer delete "$C" --yes
as sm --json customer bin --limit 1
expect "a JSON page of the bin ends with the next page's cursor, as every JSON listing" \
    test "$(tail -1 <<<"$OUT")" = "{\"next_after\":\"$(head -1 <<<"$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["record"]["id"])')\"}"
as sm --json customer bin --limit 1 --after "$(tail -1 <<<"$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_after"])')"
expect "... and the next page has the other one, and no cursor" \
    test "$(wc -l <<<"$OUT"):$(grep -c next_after <<<"$OUT")" = 1:0
as sm customer restore "$C" --allow-duplicate
as sm customer purge "$C2"
expect "a manager may not purge" contains "$ERR" PERMISSION_DENIED
as admin customer purge "$C2"
expect "an admin purges one" test "$OUT" = "purged 1 deleted customer for good"
as sm customer restore "$C2"
expect "a purged customer cannot be restored" contains "$ERR" "not in the recycle bin"
as admin --json audit --id "$C2" --limit 5
expect "the purge is audited" grep -q '"action":"purge"' "$T/o"

# ---- the bin survives a restart; the indexes stay consistent through delete and restore ----
as sm customer delete "$C" --yes
as admin customer purge --expired
expect "purge --expired leaves what is younger than --bin-keep (30 days)" test "$OUT" = "purged 0 deleted customers for good"
stop_server main
RC=0; "$ADMIN_BIN" check --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "crm-admin check finds every index entry right after deletes and restores" test "$RC" -eq 0
start_server main "$T/data"
export CRM_SERVER="$EP_main"
as sm customer restore "$C" --allow-duplicate
expect "a deletion restored after a restart" test "$RC" -eq 0
stop_server main

# ---- retention: the server purges what is older than --bin-keep, by itself ----
start_server keep "$T/data" --bin-keep 2s
export CRM_SERVER="$EP_keep"
as sm customer delete "$C" --yes
expect "just deleted: in the bin" contains "$OUT" "it is in the recycle bin"
wait_for 'as sm customer bin; contains "$OUT" "0 deleted customers"'
wait_for 'as sm customer bin; contains "$OUT" "0 deleted customers"'
expect "after --bin-keep 2s the server purged it" contains "$OUT" "0 deleted customers"
as admin --json audit --id "$C" --limit 3
expect "... as user system, audited" grep -q '"user":"system","department":.*"action":"purge"' "$T/o"
stop_server keep

# ---- --bin-keep 0: nothing is kept ----
start_server none "$T/data" --bin-keep 0
export CRM_SERVER="$EP_none"
as sa customer add --name 临时客户
C3=${OUT#created customer }
as sm customer delete "$C3" --yes
expect "with --bin-keep 0 a deletion is final and says so" test "$OUT" = "deleted customer $C3"
as sm customer restore "$C3"
expect "... and cannot be restored" contains "$ERR" "not in the recycle bin"
as sm customer delete "$C3" --yes
stop_server none
finish
