# test_demo - issue 12 item 11: the demo of the set-up (tools/demo.sh, which tools/setup.sh
# runs) makes people in each department with enrollment files under DATA/demo/users/ and
# gives customers owners, so that ownership, departments and masking can be tried at once:
# a salesperson sees and edits their own customers, not a colleague's; their manager may;
# marketing sees phone numbers masked where the customer gave no consent.
source "$(dirname "$0")/lib.sh"
SRC=${CRM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

init_data "$T/data"
start_server main "$T/data"
export CRM_SERVER="$EP_main"
RC=0; CRM_BIN="$CRM_BIN" bash "$SRC/tools/demo.sh" "$T/data" 60 >"$T/demo.out" 2>&1 || RC=$?
expect "the demo loads ($(tail -3 "$T/demo.out" | tr '\n' ' '))" test "$RC" -eq 0
expect "every import is clean" test "$(grep -c '; 0 lines had errors' "$T/demo.out")" -eq 7
U="$T/data/demo/users"
as() { local who=$1; shift; RC=0; "$CRM_CLI/crm" --config "$U/$who.enroll" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
adm() { RC=0; "$CRM_CLI/crm" --config "$T/data/admin.enroll" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }

# ---- the people
"$CRM_BIN/crm-admin" user list --data "$T/data" >"$T/users" 2>&1
for u in "lina sales staff" "zhaolei sales staff" "wangfang sales manager" "chenjie support staff" \
         "liuyang support manager" "sunli marketing staff" "zhoumin marketing manager"; do
    set -- $u
    expect "user $1 exists: $2 $3" test -n "$(grep -E "^$1 +$2 +$3 " "$T/users")"
    expect "... with its enrollment file, 0600" test "$(stat -c %a "$U/$1.enroll" 2>/dev/null)" = 600
    as "$1" --json whoami
    expect "... which works" test "$RC" -eq 0 -a -n "$(grep -F "\"user\":\"$1\"" <<<"$OUT")"
done
expect "the enrollment dir is 0700" test "$(stat -c %a "$U")" = 700

# ---- ownership: a salesperson's own customers, a colleague's, the pool
want=$(python3 -c 'import csv,sys; print(sum(1 for r in csv.DictReader(open(sys.argv[1])) if r["owner"]=="lina"))' "$T/data/demo/customers.csv")
as lina --json customer list --owner me --limit 1000
got=$(grep -c '"id"' <<<"$OUT" || true)
expect "lina's own customers: $got of the $want the demo gave her" test "$RC" -eq 0 -a "$got" -eq "$want" -a "$want" -gt 3
expect "... every one hers" test -z "$(grep -v '"owner":"lina"' <<<"$OUT")"
MINE=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])' <<<"$OUT")
as lina --json customer list --owner zhaolei --limit 1
THEIRS=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])' <<<"$OUT")
as lina --json customer list --unowned --limit 1
POOL=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])' <<<"$OUT")
expect "there are customers of zhaolei's ($THEIRS) and unowned ones ($POOL)" test -n "$THEIRS" -a -n "$POOL"
as lina customer edit "$MINE" --industry 教育
expect "lina edits her own customer" test "$RC" -eq 0
as lina customer edit "$POOL" --industry 教育
expect "... and one from the pool" test "$RC" -eq 0
as lina customer edit "$THEIRS" --industry 教育
expect "... but not zhaolei's (PERMISSION_DENIED)" test "$RC" -eq 1 -a -n "$(grep -F PERMISSION_DENIED <<<"$ERR")"
as wangfang customer edit "$THEIRS" --industry 教育
expect "their manager wangfang may" test "$RC" -eq 0
as lina --json deal list --limit 1000
expect "lina's deals are hers" test "$RC" -eq 0 -a -n "$OUT" -a -z "$(grep -v '"owner":"lina"' <<<"$OUT")"

# ---- masking: marketing sees phones only where the customer consented
adm --json customer list --consent false --limit 1
NOC=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])' <<<"$OUT")
PHONE=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["phones"][0])' <<<"$OUT")
adm --json customer list --consent true --limit 1
YES=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])' <<<"$OUT")
as sunli --json customer show "$NOC"
expect "marketing (sunli) sees a customer without consent with the phone masked" \
    test "$RC" -eq 0 -a -n "$(grep -F '****' <<<"$OUT")" -a -z "$(grep -F "$PHONE" <<<"$OUT")"
as lina --json customer show "$NOC"
expect "sales (lina) sees the same customer's phone" test "$RC" -eq 0 -a -n "$(grep -F "$PHONE" <<<"$OUT")"
as sunli --json customer show "$YES"
expect "marketing sees a consenting customer's phone in clear" test "$RC" -eq 0 -a -z "$(grep -F '****' <<<"$OUT")"
as sunli deal list
expect "marketing reads no deals" test "$RC" -eq 1 -a -n "$(grep -F PERMISSION_DENIED <<<"$ERR")"
as chenjie --json ticket list --assignee chenjie --limit 1000
expect "support (chenjie) has tickets assigned" test "$RC" -eq 0 -a -n "$(grep -F '"assignee":"chenjie"' <<<"$OUT")"

stop_server main
finish
