# test_agent - `crm agent` (issue 15, the one-shot client): one connection kept for many crm
# calls of one user; the same answers as a direct call; concurrent calls each get their own
# reply; a call that loses the agent goes on directly and a write is not done twice; the
# agent follows a server restart, stops on a refused handshake, when idle and on request;
# never serves another enrollment; keeps its socket only where nobody else can reach it
CRM_CLIENT_LEAKS=1 # the client's own feature: its leaks are looked for in the ASan build
source "$(dirname "$0")/lib.sh"
ADMIN="$CRM_BIN/crm-admin"
export XDG_RUNTIME_DIR="$T/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
start_with_users "sam sales staff" "mia sales staff"

# agent_start WHO ARGS...: `crm agent start` as WHO; AGENT_PID is its pid, also killed at exit
agent_start() {
    local who=$1; shift
    as "$who" agent start "$@"
    AGENT_PID=$(sed -n 's/^agent started (pid \([0-9]*\)).*/\1/p' <<<"$OUT")
    [ -n "$AGENT_PID" ] && SERVER_PIDS+=("$AGENT_PID")
}
# agent_up WHO: wait until WHO's agent has its connection (start returns once the server
# took the key, and the agent shakes hands by itself after); the start's RC and OUT are kept
agent_up() {
    local rc=$RC out=$OUT
    wait_for "as $1 agent status; contains \"\$OUT\" 'connection up'"
    RC=$rc OUT=$out
}
# calls WHO: how many calls WHO's agent has carried (empty if none runs)
calls() { as "$1" agent status; awk '$1 == "calls" {print $2}' <<<"$OUT"; }
gone() { ! kill -0 "$1" 2>/dev/null; }

as sam agent status
expect "status without an agent exits 1" test "$RC" -eq 1
expect "status says there is none" contains "$OUT" "no agent is running for sam"

agent_start sam --idle 3600
agent_up sam
expect "agent start exits 0" test "$RC" -eq 0 -a -n "$AGENT_PID"
SOCK=$(ls "$T/run/crm/"*.sock)
expect "its directory is closed to others" test "$(stat -c %a "$T/run/crm")" = 700
expect "its socket is the user's alone" test "$(stat -c %a "$SOCK")" = 600
as sam agent status
expect "status shows the connection up" contains "$OUT" "connection up (1 handshakes)"
expect "status names the user and pid" contains "$OUT" "pid        $AGENT_PID"
as sam agent start
expect "a second start leaves the running one" test "$RC" -eq 0
expect "and says so" contains "$OUT" "already running for sam at $CRM_SERVER (pid $AGENT_PID)"

# the same answers through the agent as directly, and the calls did go through it
BEFORE=$(calls sam)
as sam customer add --name 'Agent Wang' --phone 13800001111
ID=$(sed -n 's/^created customer \(c[0-9]*\).*/\1/p' <<<"$OUT")
expect "a write through the agent" test "$RC" -eq 0 -a -n "$ID"
as sam --json customer show "$ID"; VIA=$OUT
as sam --json --no-agent customer show "$ID"; DIRECT=$OUT
expect "show through the agent prints what a direct show prints" test -n "$VIA" -a "$VIA" = "$DIRECT"
RC=0; CRM_AGENT=off "$CRM_CLI/crm" --config "$T/sam" --json customer show "$ID" >"$T/o" 2>&1 || RC=$?
expect "CRM_AGENT=off connects directly too" test "$RC" -eq 0 -a "$(cat "$T/o")" = "$DIRECT"
AFTER=$(calls sam)
# add, and show (the record and its six child lists, sent together)
expect "the add and the show went through the agent ($BEFORE -> $AFTER calls)" \
    test "$AFTER" -ge $((BEFORE + 8))
as sam customer show nope
expect "a refusal through the agent exits 1" test "$RC" -eq 1
expect "and says why" contains "$ERR" "no customer 'nope'"

# many crm processes at once: each its own answer
BEFORE=$(calls sam)
PIDS=()
for i in $(seq 1 12); do
    "$CRM_CLI/crm" --config "$T/sam" --json customer add --name "Para $i" \
        --phone "1390000$(printf %04d "$i")" >"$T/par$i.out" 2>"$T/par$i.err" &
    PIDS+=($!)
done
BAD=0
for i in $(seq 1 12); do wait "${PIDS[$((i - 1))]}" || BAD=$((BAD + 1)); done
expect "12 concurrent adds through the agent all succeed" test "$BAD" -eq 0
MINE=0
for i in $(seq 1 12); do
    NAME=$(OUT=$(cat "$T/par$i.out") field name 2>/dev/null || true)
    [ "$NAME" = "Para $i" ] && MINE=$((MINE + 1))
done
expect "each got the reply to its own request" test "$MINE" -eq 12
as sam --json --no-agent customer search Para
expect "the server holds the 12" test "$(grep -o '"name":"Para [0-9]*"' <<<"$OUT" | sort -u | wc -l)" -eq 12
expect "they went through the agent" test "$(calls sam)" -ge $((BEFORE + 12))

# what would cost every caller the shared connection goes directly instead: a request over
# 1 MiB (the server drops a connection sending over twice its --max-msg), and a caller
# finding every slot taken goes directly rather than wait in the socket's queue
handshakes() { calls sam >/dev/null; sed -n 's/^connection .*(\([0-9]*\) handshakes)/\1/p' <<<"$OUT"; }
HS=$(handshakes)
BEFORE=$(calls sam)
python3 - "$SOCK" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
body = b"R" + b"\x08\x07" + b"\x1a" + b"\xff\xff\xbf\x01" + b"k" * (3 << 20)  # id 7, a 3 MiB string
s.sendall(struct.pack(">I", len(body)) + body)
s.settimeout(3)
try:
    print("# the agent answered a 3 MiB request with", len(s.recv(100)), "bytes (0: closed)")
except OSError as e:
    print("# no answer to a 3 MiB request:", e)
PY
sleep 0.5 # a dropped connection's reconnect, if it was passed on
python3 - "$SOCK" >"$T/w.txt" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
body = b"R" + b"\x08\x09" + b"\x10\x28" + b"\x72\x00"  # id 9, OP_WATCH (40), watch {}
s.sendall(struct.pack(">I", len(body)) + body)
s.settimeout(3)
try:
    print(len(s.recv(100)))
except OSError:
    print("no answer")
PY
expect "a WATCH is not passed on: the agent closes that caller (it goes directly)" \
    test "$(cat "$T/w.txt")" = 0
as sam customer show "$ID"
expect "a 3 MiB request is not passed on: the shared connection stays up" \
    test "$RC" -eq 0 -a "$(handshakes)" = "$HS"
expect "... and was not counted as a call" test "$(calls sam)" -le $((BEFORE + 8))
python3 - "$SOCK" "$T/held" <<'PY' &
import os, socket, sys, time
held = []
for _ in range(70):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
open(sys.argv[2], "w").close()
t = time.time()
while time.time() - t < 20 and os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
HOLDER=$!
wait_for 'test -e "$T/held"'
sleep 0.3
RC=0; "$CRM_CLI/crm" --config "$T/sam" --timeout 4 customer show "$ID" >"$T/o" 2>"$T/e" || RC=$?
expect "with every one of its 64 slots held, a call goes on directly" test "$RC" -eq 0
as sam agent status
expect "... and status says the agent is there but busy" contains "$OUT" "is there but did not answer"
rm -f "$T/held"
wait "$HOLDER" || true

# another enrollment never reaches this agent
BEFORE=$(calls sam)
as mia agent status
expect "mia has no agent" test "$RC" -eq 1
as mia customer list
expect "mia's calls go directly" test "$RC" -eq 0
expect "and not through sam's agent" test "$(calls sam)" -eq "$BEFORE"

# crm watch connects directly even while the agent runs
BEFORE=$(calls sam)
watch_start sam w1
as mia customer add --name 'Seen Live' --phone 13800002222
wait_for 'grep -q "Seen Live" "$T/w1.out"'
expect "a watch beside the agent sees changes" grep -q "Seen Live" "$T/w1.out"
watch_stop w1
expect "and did not go through the agent" test "$(calls sam)" -eq "$BEFORE"

# the agent lost mid-call: the call goes on directly, and a write the server had already
# done for the agent is not done twice (the same idempotency key). The server is stopped
# until the agent has passed the write on, then the agent until the server has done it and
# answered, and then the agent dies with the answer unread.
# server_recvq: bytes waiting in the (stopped) server's connections, from /proc/net/tcp
server_recvq() { python3 -c '
import sys
port, n = int(sys.argv[1]), 0
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    if int(f[1].split(":")[1], 16) == port and f[3] == "01":
        n += int(f[4].split(":")[1], 16)
print(n)' "${CRM_SERVER##*:}"; }
BEFORE=$(calls sam)
kill -STOP "$PID_main"
"$CRM_CLI/crm" --config "$T/sam" customer add --allow-duplicate --name 'Once Only' \
    --phone 13800003333 >"$T/once.out" 2>"$T/once.err" &
BG=$!
wait_for '[ "$(calls sam)" -gt "$BEFORE" ] && [ "$(server_recvq)" -gt 0 ]' # passed on
kill -STOP "$AGENT_PID"
kill -CONT "$PID_main"
wait_for 'as sam --json --no-agent customer search "Once Only"; contains "$OUT" "Once Only"'
expect "the server did the write while the agent was stopped, its answer unread" \
    contains "$OUT" '"name":"Once Only"'
kill -KILL "$AGENT_PID"
RC=0; wait "$BG" || RC=$?
OUT=$(cat "$T/once.out"); ERR=$(cat "$T/once.err")
expect "a call whose agent died is answered directly" test "$RC" -eq 0
expect "and says it created the customer" contains "$OUT" "created customer"
as sam --json --no-agent customer search 'Once Only'
expect "the write was done once" test "$(grep -o '"name":"Once Only"' <<<"$OUT" | wc -l)" -eq 1
expect "the dead agent's socket is left" test -S "$SOCK"
as sam customer list
expect "calls with a dead agent's socket left go directly" test "$RC" -eq 0
as sam agent status
expect "status finds no agent behind it" test "$RC" -eq 1

agent_start sam --idle 3600
agent_up sam # its first handshake is done before the server goes
expect "a new agent starts where one died" test "$RC" -eq 0 -a -n "$AGENT_PID"

# a server restart on the same endpoint: the agent reconnects by itself
stop_server main
start_server main "$T/data" --listen "$CRM_SERVER"
expect "the server is back on the same endpoint" test "$EP_main" = "$CRM_SERVER"
wait_for 'calls sam >/dev/null; contains "$OUT" "connection up (2 handshakes)"'
as sam customer show "$ID"
expect "a call through the agent after the restart" test "$RC" -eq 0
as sam agent status
expect "the agent shook hands again" contains "$OUT" "connection up (2 handshakes)"

# a handshake that breaks off without an answer is retried, not taken for a refusal: this
# server has no ZAP handler, so it drops every handshake unanswered (as a server that is
# stopping or starting can drop one). The agent stays, the calls go directly meanwhile,
# and it shakes hands with the server that comes back.
stop_server main
start_server main "$T/data" --listen "$CRM_SERVER" --fault no-zap
broken() { awk '$1 == "broken" {print $3}' <<<"$OUT"; }
wait_for 'as sam agent status; [ "$(broken)" -ge 2 ] 2>/dev/null'
as sam agent status
expect "handshakes that break off are retried and counted" test "$(broken)" -ge 2
expect "... and the agent stays" kill -0 "$AGENT_PID"
expect "... and says the connection is down" contains "$OUT" "connection down (2 handshakes)"
RC=0; "$CRM_CLI/crm" --config "$T/sam" --timeout 2 customer list >"$T/o" 2>"$T/e" || RC=$?
expect "a call meanwhile goes directly and fails (exit 3)" test "$RC" -eq 3
expect "... naming the handshake" grep -q "secure handshake" "$T/e"
stop_server main
start_server main "$T/data" --listen "$CRM_SERVER"
wait_for 'calls sam >/dev/null; contains "$OUT" "connection up (3 handshakes)"'
expect "the agent shakes hands with the server that came back" \
    contains "$OUT" "connection up (3 handshakes)"
expect "... and counts no broken handshake since" contains "$OUT" "broken off 0 handshakes"
expect "the agent logged the broken handshakes, not a refusal" \
    bash -c "grep -q 'broke off' '$T'/run/crm/*.log && ! grep -q 'refused the handshake' '$T'/run/crm/*.log"

# a write while the server is away fails, and is not done later when the server is back
# (nothing waits in the agent's queue after its caller gave up)
stop_server main
RC=0; "$CRM_CLI/crm" --config "$T/sam" --timeout 2 customer add --name 'Phantom Agent' \
    --phone 13800004444 >"$T/o" 2>"$T/e" || RC=$?
expect "a write while the server is away fails (exit 3)" test "$RC" -eq 3
start_server main "$T/data" --listen "$CRM_SERVER"
wait_for 'calls sam >/dev/null; contains "$OUT" "connection up (4 handshakes)"'
# a write after it through the agent's one connection: anything the agent still held
# would have gone before it
as sam customer add --name 'After Phantom' --phone 13800004445
expect "a write through the agent after the server is back" test "$RC" -eq 0
as sam --no-agent --json customer search Phantom
expect "... and is not done when the server is back" bash -c "! grep -q 'Phantom Agent' '$T/o'"

# a refused handshake stops the agent, and the next call says why, directly
RC=0; "$ADMIN" user disable sam --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "sam disabled" test "$RC" -eq 0
stop_server main
start_server main "$T/data" --listen "$CRM_SERVER"
wait_for 'gone "$AGENT_PID"'
expect "the agent stops when the server refuses its key" gone "$AGENT_PID"
expect "its socket is removed" test ! -e "$SOCK"
as sam customer list
expect "the next call goes directly and fails authentication" test "$RC" -eq 3
expect "and says so" contains "$ERR" "authentication failed"
RC=0; "$ADMIN" user enable sam --data "$T/data" >"$T/o" 2>&1 || RC=$?
expect "sam enabled again" test "$RC" -eq 0

# idle: it stops by itself; on request: at once
agent_start mia --idle 1
expect "mia's agent with --idle 1" test "$RC" -eq 0 -a -n "$AGENT_PID"
wait_for 'gone "$AGENT_PID"'
expect "an idle agent stops by itself" gone "$AGENT_PID"
agent_start mia
OLD=$AGENT_PID
as mia agent stop
expect "agent stop exits 0" test "$RC" -eq 0
agent_start mia
expect "a start right after a stop starts a new agent" \
    test "$RC" -eq 0 -a -n "$AGENT_PID" -a "$AGENT_PID" != "$OLD"
wait_for 'gone "$OLD"'
expect "... the stopped one is gone" gone "$OLD"
as mia agent stop
wait_for 'gone "$AGENT_PID"'
expect "... and the new one stops too" gone "$AGENT_PID"
as mia agent stop
expect "stop without an agent exits 1" test "$RC" -eq 1
# two starts at once: one agent, and both say so with exit 0
( as mia agent start; echo "$RC" >"$T/s1" ) &
S1=$!
( as mia agent start; echo "$RC" >"$T/s2" ) &
S2=$!
wait "$S1" "$S2" || true
as mia agent status
APID=$(awk '$1 == "pid" {print $2}' <<<"$OUT")
[ -n "$APID" ] && SERVER_PIDS+=("$APID")
expect "two starts at once both exit 0" test "$(cat "$T/s1")$(cat "$T/s2")" = 00
expect "... and leave one agent" test "$(pgrep -f "crm --config $T/mia agent start" -c || true)" -le 1 -a -n "$APID"
as mia agent stop
expect "the agents' logs have no errors" test -z "$(grep -E ' ERROR |Sanitizer|runtime error' "$T/run/crm/"*.log)"

# agent = auto in the client config (or CRM_AGENT=auto): a call that finds no agent starts
# one for the calls after it, and is not kept waiting for it
cp "$T/mia" "$T/mia-auto"
echo 'agent = auto' >>"$T/mia-auto"
RC=0; timeout 20 bash -c 'OUT=$("$0" --config "$1" customer list); [ -n "$OUT" ]' \
    "$CRM_CLI/crm" "$T/mia-auto" >"$T/o" 2>&1 || RC=$?
expect "with agent = auto a call captured by \$(...) returns (the agent holds none of its output)" \
    test "$RC" -eq 0
wait_for 'as mia-auto agent status; [ "$RC" -eq 0 ] && contains "$OUT" "connection up"'
APID=$(awk '$1 == "pid" {print $2}' <<<"$OUT")
[ -n "$APID" ] && SERVER_PIDS+=("$APID")
expect "... and an agent is running after it" test "$RC" -eq 0 -a -n "$APID"
as mia-auto customer list
as mia-auto agent status
expect "... which carries the next call" contains "$OUT" "calls      1"
as mia-auto customer list
expect "... and only one agent was started" test "$(pgrep -f "crm --config $T/mia-auto" | wc -l)" -eq 1
as mia-auto agent stop
wait_for 'gone "$APID"'
RC=0; CRM_AGENT=off "$CRM_CLI/crm" --config "$T/mia-auto" customer list >"$T/o" 2>&1 || RC=$?
# an agent would have been forked before the call returned
expect "CRM_AGENT=off over agent = auto: no agent process" \
    test -z "$(pgrep -f "crm --config $T/mia-auto")"
as mia-auto agent status
expect "CRM_AGENT=off over agent = auto: no agent started" test "$RC" -eq 1
RC=0; CRM_AGENT=auto "$CRM_CLI/crm" --config "$T/mia" customer list >"$T/o" 2>&1 || RC=$?
wait_for 'as mia agent status; [ "$RC" -eq 0 ]'
APID=$(awk '$1 == "pid" {print $2}' <<<"$OUT")
[ -n "$APID" ] && SERVER_PIDS+=("$APID")
expect "CRM_AGENT=auto starts one too" test "$RC" -eq 0 -a -n "$APID"
as mia agent stop
RC=0; CRM_AGENT=sometimes "$CRM_CLI/crm" --config "$T/mia" customer list >"$T/o" 2>"$T/e" || RC=$?
expect "an agent setting that is none of on, off, auto is said" \
    bash -c "[ $RC -eq 0 ] && grep -q \"agent is on, off or auto, not 'sometimes'\" '$T/e'"

# nowhere unsafe: a directory others can enter is not used, and calls still work
mkdir -m 755 "$T/open"
chmod 755 "$T/open"
mkdir -m 777 "$T/open/crm"
chmod 777 "$T/open/crm"
RC=0; XDG_RUNTIME_DIR="$T/open" "$CRM_CLI/crm" --config "$T/mia" agent start >"$T/o" 2>"$T/e" || RC=$?
OUT=$(cat "$T/o"); ERR=$(cat "$T/e")
expect "agent start refuses a directory open to others" test "$RC" -eq 2
expect "and says why" contains "$ERR" "closed to others"
expect "no socket is made there" test -z "$(ls "$T/open/crm")"
RC=0; XDG_RUNTIME_DIR="$T/open" "$CRM_CLI/crm" --config "$T/mia" customer list >"$T/o" 2>&1 || RC=$?
expect "calls there go directly" test "$RC" -eq 0

as sam agent bogus
expect "an unknown agent command is a usage error" test "$RC" -eq 2
as sam agent start --idle 0
expect "--idle 0 is a usage error" test "$RC" -eq 2

stop_server main
# a failure here is often about the agent's timing: its own account goes with the report
[ "$FAILS" -eq 0 ] || tail -n 40 "$T"/run/crm/*.log
finish
