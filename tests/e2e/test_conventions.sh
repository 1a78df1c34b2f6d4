# test_conventions - issue 12 items 7 and 8 through the real client and server: --version,
# crm help CMD, "did you mean" for commands, subcommands and flags, per-subcommand --help,
# --json usage errors, the generated bash completion, named profiles, and tables that fit
# the terminal by display width (CJK included) with --wide and --columns
CRM_CLIENT_LEAKS=1 # the client's own features: its leaks are looked for here (lib.sh)
source "$(dirname "$0")/lib.sh"

init_data "$T/a"
"$CRM_BIN/crm-admin" user add wang --dept sales --role staff --data "$T/a" --out "$T/wang.enroll" >"$T/o" 2>&1 || { cat "$T/o"; fail "user add"; }
start_server a "$T/a"
export HOME="$T/home" XDG_CONFIG_HOME= CRM_CONFIG= CRM_PROFILE=
mkdir -p "$HOME"
c() { RC=0; "$CRM_CLI/crm" --server "$EP_a" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
A=(--config "$T/a/admin.enroll")

# ---- version, help, did you mean
c --version
expect "crm --version" test "$RC" -eq 0 -a "$OUT" = "crm (OneView) 0.1.0"
c help customer
expect "crm help CMD is CMD's help" test "$RC" -eq 0 -a -n "$(grep -F 'usage: crm customer SUBCOMMAND' "$T/o")"
c help customer edit
expect "crm help CMD SUB" test "$RC" -eq 0 -a -n "$(grep -F 'usage: crm customer edit' "$T/o")"
c custmer list
expect "a mistyped command: did you mean" test "$RC" -eq 2 -a "$(head -n 1 <<<"$ERR")" = "crm: unknown command 'custmer'; did you mean 'customer'?"
c customer shwo c1
expect "a mistyped subcommand: did you mean" test "$RC" -eq 2 -a "$(head -n 1 <<<"$ERR")" = "crm customer: unknown subcommand 'shwo'; did you mean 'show'?"
c "${A[@]}" customer list --stge lead
expect "a mistyped flag: did you mean" test "$RC" -eq 2 -a "$ERR" = "crm customer list: unknown option or field '--stge'; did you mean '--stage'?"
c customer list --help
expect "list --help lists its filters, kebab-case, and no edit flags" test "$RC" -eq 0 -a -n "$(grep -F -- '--stage' "$T/o")" -a -n "$(grep -F -- '--unowned' "$T/o")" -a -z "$(grep -F -- '--add-phone' "$T/o")" -a -z "$(grep -F -- '--consent-channel' "$T/o")"
expect "and consent, a filter since booleans are indexed" grep -qE -- '--consent( |$)' "$T/o"
c customer edit --help
expect "edit --help lists the list flags and one spelling (--consent-channel)" test -n "$(grep -F -- '--add-phone' "$T/o")" -a -n "$(grep -F -- '--consent-channel' "$T/o")" -a -z "$(grep -F -- 'consent_channel' "$T/o")"
c customer show --help
expect "show --help lists no fields" test "$RC" -eq 0 -a -z "$(grep -F -- '--company' "$T/o")"
c --json custmer
expect "--json: a usage error is one JSON object on stdout" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["error"]=="USAGE" and "did you mean" in d["message"], d' "$OUT"
c "${A[@]}" customer list --stage=lead --limit=5
expect "--opt=value" test "$RC" -eq 0 -a "$OUT" = "no customer records"

# ---- the bash completion, generated from the tables
c completion bash
echo "$OUT" >"$T/complete.bash"
expect "the completion script is valid bash" bash -n "$T/complete.bash"
complete_words() { # complete_words WORD... : what completing the last word offers
    PATH="$CRM_BIN:$PATH" bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _crm; printf "%s\n" "${COMPREPLY[@]}"' _ "$T/complete.bash" "$@"
}
expect "completes a command" test "$(complete_words crm cust)" = "customer"
expect "completes a subcommand from the kind's table" test "$(complete_words crm customer ed)" = "edit"
expect "completes a subcommand's flags" test "$(complete_words crm customer edit c1 --add-ph)" = "--add-phone"
expect "completes global options" test -n "$(complete_words crm --pro | grep -x -- --profile)"

# ---- named profiles: a second identity never silently replaces the first
c enroll "$T/a/admin.enroll"
expect "enroll installs the default enrollment" test "$RC" -eq 0 -a -f "$HOME/.config/crm/client.conf"
c enroll "$T/wang.enroll"
expect "enrolling another identity over it is refused, with the way out" test "$RC" -eq 2 -a -n "$(grep -F -- "--profile NAME" "$T/e")"
c whoami
expect "... and the first is still in use" test -n "$(grep -E '^user +admin' "$T/o")"
c enroll "$T/wang.enroll" --profile sales
expect "enroll --profile NAME keeps both" test "$RC" -eq 0 -a -f "$HOME/.config/crm/profiles/sales.conf"
c --profile sales whoami
expect "crm --profile NAME uses it" test -n "$(grep -E '^user +wang' "$T/o")"
c whoami
expect "without it, the default" test -n "$(grep -E '^user +admin' "$T/o")"
c profile list
expect "profile list shows both, the one in use starred" test "$(sed 's/  */ /g' <<<"$OUT" | cut -d' ' -f1-3)" = "$(printf '* default admin\n sales wang')"
c profile use sales
c whoami
expect "profile use NAME switches" test -n "$(grep -E '^user +wang' "$T/o")"
c profile use nosuch
expect "profile use of no profile is refused" test "$RC" -eq 2
c profile use default
c whoami
expect "profile use default switches back" test -n "$(grep -E '^user +admin' "$T/o")"
c enroll "$T/a/admin.enroll"
expect "re-enrolling the same identity replaces it quietly" test "$RC" -eq 0

# ---- tables that fit the screen
c customer add --name 欧阳娜娜 --company 北京市海淀区中关村科技园区创新软件开发有限责任公司第一分公司 --phone 13800001111 --city 北京
c customer add --name "Alexander Montgomery-Fitzgerald" --company "International Business Machines Corporation Limited" --phone 13800002222 --city Shanghai
RC=0; COLUMNS=80 "$CRM_CLI/crm" --server "$EP_a" customer list >"$T/o" 2>&1 || RC=$?
expect "a table fits 80 columns by display width (CJK counts two)" python3 - "$T/o" 80 <<'PY'
import sys, unicodedata
w = lambda s: sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 3, lines
assert all(w(l) <= int(sys.argv[2]) for l in lines), [w(l) for l in lines]
assert "…" in lines[1] and lines[1].startswith("c1 ") and lines[2].startswith("c2 "), lines
PY
RC=0; COLUMNS=60 "$CRM_CLI/crm" --server "$EP_a" customer list >"$T/o" 2>&1 || RC=$?
expect "... and 60" python3 -c '
import sys, unicodedata
w = lambda s: sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
assert all(w(l) <= 60 for l in open(sys.argv[1], encoding="utf-8").read().splitlines())' "$T/o"
RC=0; COLUMNS=80 "$CRM_CLI/crm" --server "$EP_a" customer list --wide >"$T/o" 2>&1 || RC=$?
expect "--wide shows every value whole" test -n "$(grep -F '北京市海淀区中关村科技园区创新软件开发有限责任公司第一分公司' "$T/o")" -a -n "$(grep -F 'International Business Machines Corporation Limited' "$T/o")"
c customer list --columns id,name,phone
expect "--columns picks the columns (singular names too)" test "$(head -n 1 <<<"$OUT" | sed 's/  */ /g')" = "ID NAME PHONES" -a -n "$(grep -E '^c1 +欧阳娜娜 +13800001111$' "$T/o")"
c customer edit c1 --add-phnoe 1
expect "a mistyped list flag: did you mean" test "$RC" -eq 2 -a -n "$(grep -F "did you mean '--add-phone'?" "$T/e")"
c customer list --columns id,nosuch
expect "--columns with no such field says so" test -n "$(grep -F "no field 'nosuch'" "$T/e")"

# ---- --json list pages end with the next cursor, which goes on without gap or repeat
for n in 1 2 3; do c "${A[@]}" customer add --name "Page $n" --tag paging --allow-duplicate; done
c "${A[@]}" --json customer list --tag paging --limit 2
expect "a --json page that has a next one ends with its cursor" python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines()]
assert len(lines) == 3 and [l["name"] for l in lines[:2]] == ["Page 1", "Page 2"], lines
assert lines[2] == {"next_after": lines[1]["id"]}, lines[2]' "$OUT"
after=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1].splitlines()[-1])["next_after"])' "$OUT")
c "${A[@]}" --json customer list --tag paging --limit 2 --after "$after"
expect "... and the last page has none" python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [l.get("name") for l in lines] == ["Page 3"], lines' "$OUT"

# a number option that is not a number in its range is a usage error saying the range, never
# read as 0 or cut to what fits (audit --limit 2^64 was 2^32-1, ticket list --limit x was 0)
for args in "ticket list --limit x" "task list --limit 0" "customer bin --limit 5000" \
    "audit --limit 18446744073709551616" "today --stale-days -3"; do
    c "${A[@]}" $args
    expect "crm $args: usage error naming the range (rc=$RC, $ERR)" \
        test "$RC" -eq 2 -a -n "$(grep -E 'takes a whole number from [0-9]+ to [0-9]+' "$T/e")"
done

stop_server a
finish
