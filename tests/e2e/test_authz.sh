# test_authz - the per-department policy through the real server and client:
# every (department, role, kind, action) cell, field rules, ownership, masking
# and its side doors, user management, revocation on open connections, audit
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"
PROBE="$CRM_BIN/crm-probe"

init_data "$T/data"
# users are made on the stopped data dir first (direct store access) ...
RC=0; "$ADMIN_BIN" user add ss --dept sales --role staff --data "$T/data" --out "$T/ss" >"$T/o" 2>&1 || RC=$?
expect "user add on a stopped data dir" test "$RC" -eq 0 -a "$(stat -c %a "$T/ss")" = 600
start_server main "$T/data"
export CRM_SERVER="$EP_main"
# ... and the rest through the running server
for u in "ss2 sales staff" "sm sales manager" "ps support staff" "pm support manager" \
         "ms marketing staff" "mm marketing manager" "ad2 - admin"; do
    set -- $u
    dept=(--dept "$2"); [ "$2" = - ] && dept=()
    RC=0; "$ADMIN_BIN" user add "$1" "${dept[@]}" --role "$3" --data "$T/data" --out "$T/$1" >"$T/o" 2>&1 || RC=$?
    [ "$RC" -eq 0 ] || { cat "$T/o"; fail "user add $1 through the server"; }
done
cp "$T/data/admin.enroll" "$T/admin"
RC=0; "$ADMIN_BIN" user list --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "user list shows all nine users" test "$(tail -n +2 "$T/o" | wc -l)" -eq 9

new_customer() { as admin customer add --name "$1" --phone "$2" "${@:3}"; echo "${OUT#created customer }"; }
verdict() { if [ "$RC" -eq 0 ]; then echo allow; elif contains "$ERR" PERMISSION_DENIED; then echo deny; else echo "error($RC: $ERR)"; fi; }

C0=$(new_customer 基准客户 13811112222 --consent yes --consent-channel wechat)

# ---- the matrix, as SPEC §4 states it (not read from the server's table) ----
# columns: ss sm ps pm ms mm admin
declare -A WANT=(
  [customer.create]="allow allow allow allow allow allow allow"
  [customer.read]="allow allow allow allow allow allow allow"
  [customer.list]="allow allow allow allow allow allow allow"
  [customer.search]="allow allow allow allow allow allow allow"
  [customer.update]="allow allow deny deny deny deny allow"
  [customer.delete]="deny allow deny allow deny deny allow"
  [activity.create]="allow allow allow allow allow allow allow"
  [activity.read]="allow allow allow allow allow allow allow"
  [activity.list]="allow allow allow allow allow allow allow"
  [activity.update]="allow allow allow allow allow allow allow"
  [activity.delete]="allow allow allow allow allow allow allow"
)
USERS=(ss sm ps pm ms mm admin)
as admin activity log "$C0" --type call --summary "base call"
A0=${OUT#created activity }
for cell in customer.create customer.read customer.list customer.search customer.update \
            customer.delete activity.create activity.read activity.list activity.update \
            activity.delete; do
    kind=${cell%.*} action=${cell#*.}
    read -r -a want <<<"${WANT[$cell]}"
    for i in "${!USERS[@]}"; do
        u=${USERS[$i]}
        case $cell in
        customer.create) as "$u" customer add --name "new by $u" ;;
        customer.read) as "$u" customer show "$C0" ;;
        customer.list) as "$u" customer list --limit 1 ;;
        customer.search) as "$u" customer search 13811112222 ;;
        customer.update) id=$(new_customer "upd $u" 1390000000$i); as "$u" customer edit "$id" --industry 制造 ;;
        customer.delete) id=$(new_customer "del $u" 1391000000$i); as "$u" customer delete "$id" ;;
        activity.create) as "$u" activity log "$C0" --type visit --summary "by $u" ;;
        activity.read) as "$u" activity show "$A0" ;;
        activity.list) as "$u" activity list "$C0" --limit 1 ;;
        activity.update|activity.delete)
            as "$u" activity log "$C0" --type note --summary "own by $u"; aid=${OUT#created activity }
            if [ "$action" = update ]; then as "$u" activity edit "$aid" --summary changed
            else as "$u" activity delete "$aid"; fi ;;
        esac
        got=$(verdict)
        expect "$u may$( [ "${want[$i]}" = deny ] && echo " not") $action $kind (got $got)" test "$got" = "${want[$i]}"
    done
done

# ---- ownership ----
as ss customer add --name "owned by ss"; OWNED=${OUT#created customer }
as admin --json customer show "$OWNED"
expect "a sales user's new customer is theirs" contains "$OUT" '"owner":"ss"'
as ss2 customer edit "$OWNED" --industry x
expect "sales staff may not change another's customer" test "$(verdict)" = deny
expect "the denial says why" contains "$ERR" "do not own"
as sm customer edit "$OWNED" --industry y
expect "a sales manager may" test "$(verdict)" = allow
as ss2 customer edit "$OWNED" --owner ss2
expect "staff may not take another's customer" test "$(verdict)" = deny
U=$(new_customer unowned 13920000001)
as ss2 customer edit "$U" --owner ss
expect "staff may not give a customer to someone else" test "$(verdict)" = deny
as ss2 customer edit "$U" --owner ss2
expect "staff may claim an unowned customer" test "$(verdict)" = allow
as sm customer edit "$U" --owner ss
expect "a manager reassigns" test "$(verdict)" = allow
as ss2 activity list "$C0" --limit 50
SSACT=$(as ss activity log "$C0" --type call --summary "ss call"; echo "${OUT#created activity }")
as ss2 activity edit "$SSACT" --summary stolen
expect "staff may not edit another's activity" test "$(verdict)" = deny
as sm activity edit "$SSACT" --summary "fixed by manager"
expect "their manager may" test "$(verdict)" = allow
as pm activity edit "$SSACT" --summary "other department"
expect "another department's manager may not" test "$(verdict)" = deny

# ---- fields ----
S=$(new_customer 客服 13930000001)
as ps customer edit "$S" --phone "139 3000 0002"
expect "support may change contact fields" test "$(verdict)" = allow
as ps customer edit "$S" --stage active
expect "support may not change the stage" test "$(verdict)" = deny
expect "the denial names the field" contains "$ERR" "field 'stage'"
as ms customer add --name lead --stage active
expect "marketing may not create beyond a lead" test "$(verdict)" = deny
as ms customer add --name "a lead"; L=${OUT#created customer }
expect "marketing creates leads" test "$RC" -eq 0
as ms customer edit "$L" --stage prospect --tag campaign-1
expect "marketing moves lead -> prospect and tags" test "$(verdict)" = allow
as ms customer edit "$L" --stage active
expect "marketing may not move beyond prospect" test "$(verdict)" = deny
as ms customer edit "$L" --name renamed
expect "marketing may not rename" test "$(verdict)" = deny
# a field the caller may not change, sent with the value it has, is no change of it (a
# spreadsheet's name column in a support user's import); a new value is refused as before
as ps customer edit "$S" --name 客服 --phone "139 3000 0003"
expect "support may send the name unchanged with a contact change" test "$(verdict)" = allow
as ps customer edit "$S" --name 客服改名
expect "... but not a new name, and the denial names the field" \
    bash -c "[ \"\$1\" = deny ] && grep -q \"field 'name'\" <<<\"\$0\"" "$ERR" "$(verdict)"
printf 'name,phone,email\n客服,13930000003,kefu@example.com\n' >"$T/support.csv"
as ps import "$T/support.csv" --upsert-by phone
expect "a support user's sheet with its name column updates the contact fields" \
    contains "$OUT" "0 created, 1 updated, 0 unchanged"
as admin --json customer show "$S"
expect "... the e-mail added, the name as it was" \
    test "$(field record.emails):$(field record.name)" = '["kefu@example.com"]:客服'
printf 'name,phone\n别的名字,13930000003\n' >"$T/support2.csv"
as ps import "$T/support2.csv" --upsert-by phone
expect "... and a sheet that renames is refused for that line, naming the field" contains "$ERR" "field 'name'"
# ... but only a field the server does nothing with: a tier given, even the one it has,
# pins the tier (tier_override), so support may not send it
S3=$(new_customer 分级客户 13930000010)
as admin order add "$S3" --line 'sku=T,quantity=1,unit_price=10'
as admin --json customer show "$S3"; TIER=$(field record.tier)
as ps customer edit "$S3" --tier "$TIER"
expect "support may not pin a customer's tier by sending the one it has ($TIER)" \
    bash -c "[ \"\$1\" = deny ] && grep -q \"field 'tier'\" <<<\"\$0\"" "$ERR" "$(verdict)"
as admin --json customer show "$S3"
expect "... the tier is still derived" test "$(field record.tier_override)" = false
# an update naming one field 65 times and then another (no client sends one) is refused
# whole: the fields are each judged once, none skipped
as admin --json customer show "$S"; V=$(field record.version)
RC=0; OUT=$("$PROBE" padded "$EP_main" "$T/ps" "$S" "$V" name 改了名 2>&1) || RC=$?
expect "a padded field list is refused ($OUT)" \
    bash -c "[ \"\$1\" = 0 ] && grep -q '^INVALID_ARGUMENT' <<<\"\$0\"" "$OUT" "$RC"
as admin --json customer show "$S"
expect "... and the name is as it was" test "$(field record.name)" = 客服

# ---- masking and the side doors ----
P=$(new_customer 隐私 13940000001 --email private@example.com --address "北京市朝阳区" --birthday 1990-01-02)
as ms --json customer show "$P"
expect "marketing sees the phone masked" contains "$OUT" '"phones":["139****0001"]'
expect "and the e-mail" contains "$OUT" '"emails":["p***@e***.com"]'
expect "and the address" contains "$OUT" '"address":"***"'
expect "no clear phone anywhere" test "$(echo "$OUT" | grep -c 13940000001)" -eq 0
as ss --json customer show "$P"
expect "sales sees it in clear" contains "$OUT" '"phones":["13940000001"]'
as ms --json customer show "$C0"
expect "marketing sees a consented customer in clear" contains "$OUT" '"phones":["13811112222"]'
as ms --json customer search 13940000001
expect "marketing cannot find an unconsented customer by phone" test -z "$OUT"
as ms --json customer search 0001
expect "nor by the last 4 digits" test "$(echo "$OUT" | grep -c "隐私")" -eq 0
as ms --json customer search private@example.com
expect "nor by e-mail" test -z "$OUT"
as ms --json customer list --phone 13940000001
expect "nor through a list filter" test -z "$OUT"
as ms --json customer search 隐私
expect "by name it is found, masked" contains "$OUT" '"phones":["139****0001"]'
as ms export --csv
expect "an export by marketing holds no masked value in clear" test "$(echo "$OUT" | grep -c 13940000001)" -eq 0
expect "the export still has the consented one" contains "$OUT" 13811112222
as ms customer history "$P" phones
expect "history is masked as reads are" contains "$OUT" "139****0001"
expect "history holds no clear value" test "$(echo "$OUT" | grep -c 13940000001)" -eq 0

# a field marketing sees masked is judged before its value is: an unchanged hidden phone
# is refused like a changed one, so a refusal tells nothing about the number
for ph in 13940000001 13940000009; do
    as ms customer edit "$P" --phone "$ph"
    expect "marketing may not send a phone it sees masked ($ph), whether or not it is the number" \
        bash -c "[ \"\$1\" = deny ] && grep -q \"field 'phones'\" <<<\"\$0\"" "$ERR" "$(verdict)"
done
# consent: needs a channel; giving it does not reveal what was hidden before
as ms customer edit "$P" --consent yes
expect "consent without a channel is refused" test "$RC" -eq 1
expect "and says what is missing" contains "$ERR" "consent_channel"
as ms --json customer edit "$P" --consent yes --consent-channel 电话
expect "marketing records consent with its channel" test "$RC" -eq 0
expect "the answer to that change still masks the phone" contains "$OUT" '"phones":["139****0001"]'
as admin --json customer show "$P"
# (issue 12: --json times are RFC 3339 strings with the user's offset)
expect "the consent time is set by the server" test "$(echo "$OUT" | python3 -c 'import datetime,json,sys; print(datetime.datetime.fromisoformat(json.load(sys.stdin)["record"]["consent_at"].replace("Z","+00:00")).year >= 2026)')" = True
as ms customer history "$P" phones
expect "old values stay masked in history after consent" test "$(echo "$OUT" | grep -c 13940000001)" -eq 0
# withdrawn again: edit prints what changed, not the fields that are only masked again now
as ms customer edit "$P" --consent no
expect "withdrawing consent prints the change ($(tr '\n' '|' <"$T/o"))" \
    test "$RC" -eq 0 -a -n "$(grep -E '^ +consent +yes → no' "$T/o")"
expect "... and no phone, e-mail or address line: those values did not change" \
    test "$(grep -cE '^ +(phones|emails|address|birthday) ' "$T/o")" -eq 0
as admin customer add --name 短号 --phone 62345678 --email a@qq.com; SH=${OUT#created customer }
as ms --json customer show "$SH"
expect "a short number shows only its last 2 digits" contains "$OUT" '"phones":["****78"]'
expect "a short e-mail hides its domain" contains "$OUT" '"emails":["a***@q***.com"]'

# permission is judged before the version: no CONFLICT leaks to the unauthorized
as ss2 customer edit "$OWNED" --expect-version 99 --industry q
expect "a stale version from someone not allowed is PERMISSION_DENIED" test "$(verdict)" = deny
as ps customer delete "$S" --expect-version 99
expect "also for delete" test "$(verdict)" = deny

# ---- audit trail ----
as admin audit --customer "$S"
expect "the audit shows the support change" contains "$OUT" "ps "
expect "personal values stay out of the trail" contains "$OUT" "phones: (personal data) -> (personal data)"
expect "the denial is in the trail" contains "$OUT" "DENIED"
as admin audit --user ss2
expect "the trail filters by user" test "$(echo "$OUT" | grep -vc ' ss2 ')" -eq 0
as sm audit
expect "a sales manager sees sales users" contains "$OUT" " ss "
expect "but not support users" test "$(echo "$OUT" | grep -c ' ps ')" -eq 0
as ss audit
expect "staff may not read the trail" test "$(verdict)" = deny
as admin customer edit "$OWNED" --industry z
as admin customer history "$OWNED" industry
expect "field history lists every value, newest first" test "$(echo "$OUT" | awk '{print $(NF-2) ">" $NF}' | paste -sd,)" = "y>z,''>y"
expect "with who changed it" test "$(echo "$OUT" | awk '{print $3}' | paste -sd,)" = "admin,sm"
as admin customer history "$S" stage
expect "a refused change leaves no history" test "$(echo "$OUT" | grep -c active)" -eq 0
as admin customer show "$S"
as admin customer search 客服
as admin audit --customer "$S"
expect "what an admin reads is audited too" contains "$OUT" "entity get customer $S"
as admin audit --user admin
expect "with what was searched" contains "$OUT" "search '客服'"
as ss audit --since 2000-01-01
as admin audit --since 2000-01-01 --limit 1000
expect "denials of audit reads are audited too" contains "$OUT" "audit: permission denied"

# ---- revocation: new connections at once, open ones on their next request ----
rm -f "$T/go"
"$PROBE" session "$EP_main" "$T/ss2" "$T/go" >"$T/session.out" 2>&1 &
probe=$!
for _ in $(seq 1 $((100 * SLOW))); do grep -q first "$T/session.out" && break; sleep 0.05; done
as admin whoami
RC=0; "$ADMIN_BIN" user disable ss2 --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "disable through the server" test "$RC" -eq 0
touch "$T/go"
wait "$probe" || true
expect "the open connection worked before" grep -q "first OK" "$T/session.out"
expect "and is refused right after the disable" grep -q "second UNAUTHENTICATED .*disabled" "$T/session.out"
as ss2 whoami
expect "a disabled user cannot connect" test "$RC" -eq 3
"$ADMIN_BIN" user enable ss2 --data "$T/data" >/dev/null
as ss2 whoami
expect "enabled again, they can" test "$RC" -eq 0
rm -f "$T/go"
"$PROBE" session "$EP_main" "$T/ss2" "$T/go" >"$T/session.out" 2>&1 &
probe=$!
for _ in $(seq 1 $((100 * SLOW))); do grep -q first "$T/session.out" && break; sleep 0.05; done
RC=0; "$ADMIN_BIN" user rotate-key ss2 --data "$T/data" --out "$T/ss2-new" >"$T/o" 2>&1 || RC=$?
expect "rotate-key writes a new enrollment" test "$RC" -eq 0 -a -f "$T/ss2-new"
touch "$T/go"
wait "$probe" || true
expect "the old key's open connection is refused" grep -q "second UNAUTHENTICATED .*no longer valid" "$T/session.out"
as ss2 whoami
expect "the old key cannot connect" test "$RC" -eq 3
as ss2-new whoami
expect "the new key can" test "$RC" -eq 0
# an --out that is no enrollment (the data dir's master key) or cannot be written is refused
# before the key changes: the key stays, the file too (it used to be overwritten, or the key
# rotated with its secret lost)
cp "$T/data/master.key" "$T/master.before"
for out in "$T/data/master.key" "$T/data/server.key" "$T/no/such/dir/ss2.enroll"; do
    RC=0; "$ADMIN_BIN" user rotate-key ss2 --data "$T/data" --out "$out" >"$T/o" 2>&1 || RC=$?
    expect "rotate-key --out $(basename "$out"): refused, nothing changed (rc=$RC, $(head -1 "$T/o"))" \
        test "$RC" -eq 2 -a -n "$(grep -F "nothing was changed" "$T/o")"
done
expect "... master.key as it was" cmp -s "$T/data/master.key" "$T/master.before"
as ss2-new whoami
expect "... and the key as it was" test "$RC" -eq 0
RC=0; "$ADMIN_BIN" user add nobody --dept sales --role staff --data "$T/data" \
    --out "$T/no/such/dir/nobody.enroll" >"$T/o" 2>&1 || RC=$?
expect "user add with an --out it cannot write: refused (rc=$RC)" test "$RC" -eq 2
RC=0; "$ADMIN_BIN" user list --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "... and no user made whose key nobody holds" test "$(grep -c '^nobody ' "$T/o")" -eq 0
RC=0; "$ADMIN_BIN" user set ms --role manager --config "$T/sm" >"$T/o" 2>&1 || RC=$?
expect "only admins manage users" test "$RC" -eq 1
RC=0; "$ADMIN_BIN" user disable admin --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "an admin cannot lock themselves out" test "$RC" -eq 1
RC=0; "$ADMIN_BIN" user set ms --role manager --data "$T/data" >"$T/o" 2>&1 || RC=$?
as ms whoami
expect "user set changes the role" contains "$OUT" "role            manager"
stop_server main

# with the server stopped, crm-admin works on the data dir itself
RC=0; "$ADMIN_BIN" user disable ps --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "disable on a stopped data dir" test "$RC" -eq 0
# ... but does not leave the server without an enabled admin (there no one is "yourself"):
# with ad2 disabled, admin is the last one
RC=0; "$ADMIN_BIN" user disable ad2 --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "another admin may be disabled while one is left" test "$RC" -eq 0
for change in "disable admin" "set admin --role manager --dept sales"; do
    RC=0; "$ADMIN_BIN" user $change --data "$T/data" >"$T/o" 2>&1 || RC=$?
    expect "user $change, the last admin, on a stopped data dir: refused (rc=$RC, $(head -1 "$T/o"))" \
        test "$RC" -ne 0 -a -n "$(grep -F "the last enabled admin" "$T/o")"
done
"$ADMIN_BIN" user enable ad2 --data "$T/data" >/dev/null
start_server again "$T/data"
export CRM_SERVER="$EP_again"
as ps whoami
expect "which the server honours" test "$RC" -eq 3
as admin audit --user admin --limit 1000
expect "user changes are audited" contains "$OUT" "user set user ms  role: staff -> manager"
stop_server again
finish
