# test_session - init, start, enroll, ping, whoami, exit codes, data dir refusals
source "$(dirname "$0")/lib.sh"
CRM="$CRM_CLI/crm"
ADMIN="$CRM_BIN/crm-admin"

init_data "$T/data"
expect "init writes 0600 secrets" test "$(stat -c %a "$T/data/server.key" "$T/data/master.key" "$T/data/admin.enroll" | sort -u)" = 600
RC=0; "$ADMIN" init --data "$T/data" >"$T/o" 2>"$T/e" || RC=$?
OUT=""; ERR=$(cat "$T/e")
expect "init refuses a dir that holds data" test "$RC" -ne 0
expect "init says why" contains "$ERR" "already holds data"

start_server main "$T/data"
CONF="$T/client.conf"
RC=0; "$CRM" --config "$CONF" enroll "$T/data/admin.enroll" >"$T/o" 2>&1 || RC=$?
expect "enroll installs the enrollment" test "$RC" -eq 0 -a "$(stat -c %a "$CONF")" = 600

run_crm "$EP_main" "$CONF" ping
expect "ping answers" test "$RC" -eq 0
expect "ping names the server" contains "$OUT" "pong from $EP_main"

run_crm "$EP_main" "$CONF" whoami
expect "whoami exits 0" test "$RC" -eq 0
expect "whoami shows the user" contains "$OUT" "admin"
expect "whoami shows the role" contains "$OUT" "role            admin"

run_crm "$EP_main" "$CONF" whoami --json
expect "--json is also accepted after the subcommand" python3 -c 'import json,sys; assert json.loads(sys.argv[1])["user"]=="admin"' "$OUT"
RC=0; "$CRM" --json --config "$CONF" --server "$EP_main" whoami >"$T/o" 2>"$T/e" || RC=$?
OUT=$(cat "$T/o"); ERR=$(cat "$T/e")
expect "whoami --json exits 0" test "$RC" -eq 0
expect "whoami --json is JSON" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["user"]=="admin" and d["role"]=="admin"' "$OUT"

# environment instead of flags
RC=0; CRM_CONFIG="$CONF" CRM_SERVER="$EP_main" "$CRM" ping >"$T/o" 2>&1 || RC=$?
expect "CRM_CONFIG and CRM_SERVER are honoured" test "$RC" -eq 0

# usage errors: exit 2
run_crm "$EP_main" "$CONF" no-such-command
expect "unknown command exits 2" test "$RC" -eq 2
run_crm "$EP_main" "$CONF" ping extra
expect "extra argument exits 2" test "$RC" -eq 2
RC=0; "$CRM" --config "$T/nope.conf" ping >"$T/o" 2>"$T/e" || RC=$?; ERR=$(cat "$T/e")
expect "missing enrollment exits 2" test "$RC" -eq 2
expect "missing enrollment says to enroll" contains "$ERR" "crm enroll"
# a damaged enrollment (a key given twice) is named as such, not as a missing one
cp "$CONF" "$T/twice.conf"; chmod 600 "$T/twice.conf"
grep '^secret' "$CONF" >>"$T/twice.conf"
RC=0; "$CRM" --config "$T/twice.conf" ping >"$T/o" 2>"$T/e" || RC=$?; ERR=$(cat "$T/e")
expect "an enrollment with a key given twice exits 2" test "$RC" -eq 2
expect "it names the line and the key" contains "$ERR" "'secret' is given twice"
expect "it says the enrollment cannot be used" contains "$ERR" "cannot be used"
expect "it does not say to enroll first" bash -c "! grep -q 'enroll first' '$T/e'"
RC=0; "$CRM" --timeout abc ping >"$T/o" 2>&1 || RC=$?
expect "bad --timeout exits 2" test "$RC" -eq 2

# unreachable: exit 3 within the timeout, never a hang
start=$(date +%s%N)
run_crm "tcp://127.0.0.1:1" "$CONF" --timeout 1 ping
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
expect "unreachable server exits 3" test "$RC" -eq 3
expect "unreachable server is reported" contains "$ERR" "cannot reach the server"
expect "unreachable gives up within the timeout (${elapsed} ms)" test "$elapsed" -lt 3000

# the data dir is refused when missing, uninitialized, locked or its key is open
RC=0; "$CRM_BIN/crmd" --data "$T/missing" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
ERR=$(cat "$T/e")
expect "missing data dir is refused" test "$RC" -eq 1
expect "missing data dir says what to do" contains "$ERR" "crm-admin init"
mkdir "$T/empty"
RC=0; "$CRM_BIN/crmd" --data "$T/empty" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
ERR=$(cat "$T/e")
expect "uninitialized data dir is refused" contains "$ERR" "not initialized"
RC=0; "$CRM_BIN/crmd" --data "$T/data" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
ERR=$(cat "$T/e")
expect "a data dir in use is refused" test "$RC" -eq 1
expect "a data dir in use says so" contains "$ERR" "in use by another process"
RC=0; "$CRM_BIN/crmd" >"$T/o" 2>&1 || RC=$?
expect "crmd without --data exits 2" test "$RC" -eq 2

stop_server main
expect "server answered nothing after stop" true

chmod 644 "$T/data/server.key"
RC=0; "$CRM_BIN/crmd" --data "$T/data" --listen 'tcp://127.0.0.1:*' >"$T/o" 2>"$T/e" || RC=$?
ERR=$(cat "$T/e")
expect "a server key readable by others is refused" test "$RC" -eq 1
expect "the refusal says chmod 600" contains "$ERR" "chmod 600"
chmod 600 "$T/data/server.key"

# restart on the same data: the admin still works (users persisted)
start_server again "$T/data"
run_crm "$EP_again" "$CONF" whoami
expect "whoami works after a restart" test "$RC" -eq 0
stop_server again
finish
