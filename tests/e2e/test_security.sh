# test_security - who gets service: unknown keys, wrong server key, plaintext, no ZAP
source "$(dirname "$0")/lib.sh"
PROBE="$CRM_BIN/crm-probe"

init_data "$T/data"
start_server main "$T/data"
ADMIN_CONF="$T/data/admin.enroll"

run_crm "$EP_main" "$ADMIN_CONF" ping
expect "the enrolled admin gets service" test "$RC" -eq 0

"$PROBE" forge "$ADMIN_CONF" "$T/stranger.enroll"
start=$(date +%s%N)
run_crm "$EP_main" "$T/stranger.enroll" --timeout 3 whoami
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
expect "an unknown key gets exit 3" test "$RC" -eq 3
expect "an unknown key is told authentication failed" contains "$ERR" "authentication failed"
expect "the refusal comes within the timeout (${elapsed} ms)" test "$elapsed" -lt 4000
expect "the server logs the refused key" grep -q "refused a connection from 127.0.0.1: unknown key" "$T/main.log"

"$PROBE" forge "$ADMIN_CONF" "$T/wrongserver.enroll" server
run_crm "$EP_main" "$T/wrongserver.enroll" --timeout 2 whoami
expect "a wrong server key gets exit 3" test "$RC" -eq 3
expect "a wrong server key is reported as a failed handshake" contains "$ERR" "handshake"

RC=0; OUT=$("$PROBE" plaintext "$EP_main" 2>&1) || RC=$?; ERR=""
expect "a plaintext client gets no reply" test "$RC" -eq 0
expect "the plaintext probe saw nothing" contains "$OUT" "no reply"

run_crm "$EP_main" "$ADMIN_CONF" whoami
expect "the admin is still served after the intruders" test "$RC" -eq 0
stop_server main

# With the ZAP handler not running the server must refuse everyone (fail closed).
start_server nozap "$T/data" --fault no-zap
run_crm "$EP_nozap" "$ADMIN_CONF" --timeout 2 whoami
expect "without ZAP even the admin is refused" test "$RC" -eq 3
expect "without ZAP nothing was served" test -z "$OUT"
stop_server nozap
finish
