# test_watch_changes - issue 12 item 9 (the rest): `crm watch` shows each change readably
# through the real client and server: the customer's name (a child record's customer's
# name, sent by the server to those who may read that customer), old → new for each
# changed field (the previous values travel in the event, from the change log), one line
# per change cut to the terminal's width by display width (CJK counts double). The old
# values are masked exactly like the new ones: a marketing user without the customer's
# consent never receives a phone number, old or new - live, on replay from the change log
# after a restart, and when consent is given in the very change.
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"

start_with_users "ss sales staff" "ms marketing staff"
# width FILE: the widest line's display width (East Asian wide and full-width count 2)
width() { python3 -c '
import sys, unicodedata
w = lambda s: sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
print(max([w(l.rstrip("\n")) for l in open(sys.argv[1], encoding="utf-8")] or [0]))' "$1"; }
# watch_bg NAME USER ARGS...: a watcher in the background (PID in WPID_NAME), once it started
watch_bg() {
    local name=$1 who=$2; shift 2
    "$CRM_CLI/crm" --config "$T/$who" watch "$@" >"$T/w.$name" 2>"$T/w.$name.err" &
    printf -v "WPID_$name" '%s' $!
    for i in $(seq 1 100); do grep -q '^watching from' "$T/w.$name.err" && return 0; sleep 0.05; done
    fail "watcher $name did not start"; cat "$T/w.$name.err"
}
stop_watch() { local p="WPID_$1"; kill -INT "${!p}"; wait "${!p}" || true; }
# replay FILE WHO [--json]: `crm watch --since $S0` as WHO into FILE, stopped once the newest
# change is in (or after 10 s x SLOW): a replay, not a fixed wait
replay() {
    local file=$1 who=$2; shift 2
    local last; last=$("$CRM_CLI/crm" --config "$T/admin" --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])')
    "$CRM_CLI/crm" --config "$T/$who" "$@" watch --since "$S0" >"$file" 2>/dev/null &
    local p=$!
    wait_for "grep -qE '(\"seq\":| #)$last[ ,]' '$file'"
    kill -INT $p; wait $p || true
}

as admin customer add --name 王五 --phone 13800001111 --city 北京 --company 北京王五贸易
C1=${OUT#created customer }
as admin customer add --name 赵六 --phone 13700003333 --city 广州
C2=${OUT#created customer }

COLUMNS=100 watch_bg admin100 admin
S0=$(grep -o "watching from sequence [0-9]*" "$T/w.admin100.err" | awk '{print $4}')
COLUMNS=60 watch_bg admin60 admin
watch_bg adminj admin --json
watch_bg msj ms --json
watch_bg ss ss

as admin customer edit "$C1" --phones 13900002222 --city 上海
as admin activity log "$C1" --type call --summary "回访：客户对新报价满意，下周签约"
A1=${OUT#created activity }
as admin customer edit "$C1" --company "北京王五国际贸易与供应链管理集团有限公司上海分公司华东大区销售中心"
# consent given in the very change that changes the phone: still masked, old and new
as admin customer edit "$C2" --phones 13600004444 --consent yes --consent-channel wechat
# every watcher may see the last change (a customer's): stop each once it has shown it
LAST=$("$CRM_CLI/crm" --config "$T/admin" --json whoami | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])')
for w in admin100 admin60 adminj msj ss; do
    wait_for "grep -qE '(\"seq\":| #)$LAST[ ,]' '$T/w.$w'"
    stop_watch $w
done

L=$(grep -F "update customer $C1" "$T/w.admin100" | head -1)
expect "a customer's change: its name, then each field old → new ($L)" \
    contains "$L" "update customer $C1 王五  phones 13800001111 → 13900002222, city 北京 → 上海"
L=$(grep -F "create activity $A1" "$T/w.admin100" | head -1)
expect "a child record names its customer ($L)" contains "$L" "create activity $A1 of 王五  "
expect "a new record shows its fields" contains "$L" "summary=回访"
for w in 100 60; do
    expect "every line fits $w columns by display width (CJK counts 2): widest $(width "$T/w.admin$w")" \
        test "$(width "$T/w.admin$w")" -le $w
done
expect "a line too wide is cut with …" test -n "$(grep -F "update customer $C1 王五  company 北京王五贸易 → 北京王五国际" "$T/w.admin100" | grep '…$')"
expect "in 60 columns too" test -n "$(grep -F "update customer $C1 王五  phones 1" "$T/w.admin60" | grep '…$')"
expect "a pipe without COLUMNS keeps the line whole" \
    test -n "$(grep -F '华东大区销售中心' "$T/w.ss")"
expect "sales sees the old and new numbers in clear" \
    test -n "$(grep -F "phones 13800001111 → 13900002222" "$T/w.ss")"
python3 - "$T/w.adminj" "$C1" "$A1" >"$T/py.out" 2>&1 <<'EOF' && ok "json: before holds only the changed fields' old values; customer_name on the child" || { fail "json before/customer_name"; cat "$T/py.out"; }
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
parts = [p for e in evs for p in e["parts"]]
up = [p for p in parts if p["id"] == sys.argv[2] and p["op"] == "update"][0]
assert set(up["fields"]) >= {"phones", "city"}, up
assert up["before"].get("phones") == ["13800001111"] and up["before"].get("city") == "北京", up["before"]
assert up["before"]["name"] == "" and up["before"]["stage"] == "", up["before"]
act = [p for p in parts if p["id"] == sys.argv[3]][0]
assert act["customer_name"] == "王五", act
EOF

# marketing without consent: masked, old values too - and never a number in clear
python3 - "$T/w.msj" "$C1" "$C2" >"$T/py.out" 2>&1 <<'EOF' && ok "marketing: old and new phones masked alike (no consent; consent given in this change)" || { fail "marketing masking of old values"; cat "$T/py.out"; }
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
parts = [p for e in evs for p in e["parts"]]
up = [p for p in parts if p["id"] == sys.argv[2] and p["op"] == "update" and "phones" in p["fields"]][0]
assert up["record"]["phones"] == ["139****2222"], up["record"]
assert up["before"]["phones"] == ["138****1111"], up["before"]
assert up["before"]["city"] == "北京", up["before"]
c2 = [p for p in parts if p["id"] == sys.argv[3] and p["op"] == "update"][0]
assert c2["record"]["phones"] == ["136****4444"] and c2["before"]["phones"] == ["137****3333"], c2
EOF
expect "no phone number reaches marketing's live feed in clear" \
    test -z "$(grep -E '13800001111|13900002222|13700003333|13600004444' "$T/w.msj")"

# replay from the change log (a restart empties the server's cache of recent changes)
stop_server main
start_server main2 "$T/data"
export CRM_SERVER="$EP_main2"
replay "$T/r.msj" ms --json
replay "$T/r.ms" ms
expect "replay after a restart delivers the changes" test "$(grep -c '"seq"' "$T/r.msj")" -ge 4
expect "replay: marketing sees the old phone masked" \
    test -n "$(grep -F "phones 138****1111 → 139****2222, city 北京 → 上海" "$T/r.ms")"
expect "replay: no phone number in clear, old or new" \
    test -z "$(grep -E '13800001111|13900002222|13700003333|13600004444' "$T/r.msj" "$T/r.ms")"
replay "$T/r.ss" ss
expect "replay: sales sees them in clear" test -n "$(grep -F "phones 13700003333 → 13600004444" "$T/r.ss")"

# consent withdrawn: the older changes, replayed, are masked by what marketing may read now
as admin customer add --name 孙七 --phone 13500005555 --consent yes --consent-channel web
C3=${OUT#created customer }
as admin customer edit "$C3" --phones 13500006666
replay "$T/r2.msj" ms --json
expect "with consent, marketing's replay shows the numbers" \
    bash -c "grep -q 13500005555 '$T/r2.msj' && grep -q 13500006666 '$T/r2.msj'"
as admin customer edit "$C3" --consent no
replay "$T/r3.msj" ms --json
expect "consent withdrawn: a replay of the older changes shows no number in clear" \
    bash -c "grep -q '\"$C3\"' '$T/r3.msj' && ! grep -qE '13500005555|13500006666' '$T/r3.msj'"
expect "... but masked, visibly" grep -qF '135****6666' "$T/r3.msj"
replay "$T/r3.ssj" ss --json
expect "... while sales still sees them" grep -q 13500006666 "$T/r3.ssj"

stop_server main2
finish
