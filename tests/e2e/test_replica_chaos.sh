# test_replica_chaos - issue 11 item 9: a read replica follows its primary under concurrent
# writers while, in turns, the replica and then the primary are killed with -9 mid-stream and
# restarted on the same endpoints. Afterwards: the replica catches up by itself; every write
# a client had acknowledged is on it (an edit: its last acknowledged value or a later one);
# a `crm watch` on the replica, left running across its restarts, saw every change-log
# sequence number from its start to the end exactly once, with the same content as a watch
# on the primary; both data dirs, stopped, have the same digest at the same sequence numbers.
#
# Durability: the primary runs in the default mode, in which an acknowledged write survives
# a kill -9 of crmd (it is in the WAL before the reply; README "Durability"); --sync would add
# only power-cut safety, which a kill -9 does not test.
#
# CRM_REPL_CHAOS_CYCLES (default 1): kill/restart cycles, each one of the replica and one of
# the primary; a long run sets more.
source "$(dirname "$0")/lib.sh"

A="$CRM_BIN/crm-admin"
CYCLES=${CRM_REPL_CHAOS_CYCLES:-1}
ADDERS=3
RC=0 OUT="" ERR=""
# eventually COND: until COND holds, at most 10 s (x SLOW) of wall time (COND may be slow:
# a status call starts a client); fails if it never does
eventually() {
    local end=$((SECONDS + 10 * SLOW))
    while [ "$SECONDS" -lt "$end" ]; do eval "$1" && return 0; sleep 0.05; done
    eval "$1"
}
# st EP FIELD: one top-level number or boolean of `crm-admin status --json` (as the admin);
# empty if no answer. Called in loops, so without starting an interpreter each time.
st() { { "$A" status --config "$T/p/admin.enroll" --server "$1" --json 2>/dev/null || true; } |
       grep -o "\"$2\":[0-9a-z]*" | head -n 1 | cut -d: -f2 || true; }
# kill9 NAME: kill -9 the server started as NAME, and reap it
kill9() { local pidvar="PID_$1"; kill -KILL "${!pidvar}"; wait "${!pidvar}" 2>/dev/null || true; }
# jitter: 0 to 0.39 s, so that the kills meet different moments of a pull or a commit
jitter() { sleep "0.$((RANDOM % 4))$((RANDOM % 10))"; }
# note TEXT: a timestamped comment line, to see where the time goes
note() { echo "# $(date +%T.%3N) $*"; }
acked() { cat "$T"/acked.* | wc -l; }

# ---- a primary with ten customers to edit, a replica of it, watchers on both from here on
init_data "$T/p"
start_server p0 "$T/p" --sweep-every 0
P=p0 EP_p=$EP_p0
"$A" user add repl1 --role replica --data "$T/p" --server "$EP_p" --out "$T/repl1.enroll" >/dev/null
for i in $(seq 0 9); do
    "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" customer add --name "改$i" \
        --phone "1380000000$i" >/dev/null
done
"$A" replica init --from "$EP_p" --data "$T/r" --enroll "$T/repl1.enroll" >/dev/null 2>&1
start_server r0 "$T/r" --replica-of "$EP_p"
R=r0 EP_r=$EP_r0
expect "the replica follows the primary" \
    eventually '[ "$(st "$EP_r" connected)" = true ]'

"$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r" --timeout 1 --json watch >"$T/wr.out" 2>"$T/wr.err" &
WR=$!
"$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" --timeout 1 --json watch >"$T/wp.out" 2>"$T/wp.err" &
WP=$!
eventually 'grep -q "watching from" "$T/wr.err" && grep -q "watching from" "$T/wp.err"' || true

# ---- writers: three add new customers, one edits the ten (each its last digit's ones);
# each records what was acknowledged, and stops by itself once the chaos is over ($T/stop),
# or after MAXW requests, or at the deadline, whichever comes first
MAXW=$((1000 * CYCLES))
DEADLINE=$((SECONDS + (30 + 30 * CYCLES) * SLOW))
trap 'touch "$T/stop" 2>/dev/null; cleanup' EXIT # writers stop on any exit too
wr() { [ -d "$T" ] && [ ! -e "$T/stop" ] && [ "$SECONDS" -lt "$DEADLINE" ]; }
: >"$T/edited"
WRITERS=()
for w in $(seq 1 $ADDERS); do
    : >"$T/acked.$w"
    (for i in $(seq 1 $MAXW); do
        wr || break
        ph=$(printf '137%d%07d' "$w" "$i")
        "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" --timeout 2 customer add \
            --name "并发$w-$i" --phone "$ph" >/dev/null 2>>"$T/writer$w.err" &&
            echo "$ph" >>"$T/acked.$w"
    done) &
    WRITERS+=($!)
done
(for i in $(seq 1 $MAXW); do
    wr || break
    "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_p" --timeout 2 customer edit \
        "1380000000$((i % 10))" --city "城$i" >/dev/null 2>>"$T/editor.err" &&
        echo "1380000000$((i % 10)) $i" >>"$T/edited"
done) &
WRITERS+=($!)
note "writers started"

# ---- the chaos, in turns: kill -9 of the replica while it applies the stream, then of the
# primary while it commits; each is restarted at once on its endpoint, and the replica must
# be following and applying new writes again before the next kill
# streaming: the writers got 20 more acknowledgements, and the replica applied some of them
streaming() {
    local base at
    base=$(acked)
    eventually '[ "$(acked)" -ge $((base + 20)) ]' || true
    at=$(st "$EP_r" last_seq)
    eventually '[ "$(st "$EP_r" last_seq)" -gt "${at:-0}" ]' || true
}
# follows_again WHAT: the replica is connected and applies writes committed from now on
follows_again() {
    local from=""
    eventually 'from=$(st "$EP_r" last_seq); [ -n "$from" ]' || true
    expect "$1 (replica at #$from, then further)" \
        eventually '[ "$(st "$EP_r" connected)" = true ] && [ "$(st "$EP_r" last_seq)" -gt "${from:-0}" ]'
}
n=0
for c in $(seq 1 "$CYCLES"); do
    n=$((n + 1))
    streaming
    jitter
    note "kill -9 of the replica $R at about #$(st "$EP_r" last_seq)"
    kill9 "$R"
    sleep "0.$((RANDOM % 10))" # down for up to 0.9 s: it comes back behind, catching up
    start_server "r$n" "$T/r" --replica-of "$EP_p" --listen "$EP_r"
    R=r$n
    follows_again "cycle $c: the replica, killed with -9 mid-stream and restarted, follows again"

    streaming
    jitter
    note "kill -9 of the primary $P at about #$(st "$EP_p" last_seq)"
    kill9 "$P"
    # down for 1 to 2 s: a request sent now is resent (after half of --timeout 2) to the
    # restarted primary or fails unacknowledged; one in flight may be committed unacknowledged
    sleep "1.$((RANDOM % 10))"
    start_server "p$n" "$T/p" --sweep-every 0 --listen "$EP_p"
    P=p$n
    # the replica notices when its pull to the old connection times out (3 s)
    follows_again "cycle $c: after a kill -9 of the primary mid-stream the replica follows again"
done
streaming
touch "$T/stop"
RC=0; for w in "${WRITERS[@]}"; do wait "$w" || RC=$?; done
note "writers stopped; $(cat "$T"/writer*.err "$T/editor.err" 2>/dev/null | wc -l) lines of errors from them (unacknowledged)"
expect "the writers stopped by themselves, before their deadline" \
    test "$RC" -eq 0 -a "$SECONDS" -lt "$DEADLINE"
expect "writes were acknowledged throughout ($(acked) adds, $(wc -l <"$T/edited") edits)" \
    test "$(acked)" -ge $((40 * CYCLES + 20)) -a "$(wc -l <"$T/edited")" -ge 10

# ---- catch-up: the watch on the primary has seen its last change (then stops, so that
# nothing more is written there), and the replica holds all the primary has
LAST=$(st "$EP_p" last_seq)
lastseq() { tail -n 1 "$1" | grep -o '^{"seq":[0-9]*' | cut -d: -f2 || true; }
expect "the watch on the primary saw its last change, #$LAST" \
    eventually '[ "$(lastseq "$T/wp.out")" = "$LAST" ]'
kill -INT "$WP"; wait "$WP" 2>/dev/null || true
sleep 0.3 # pulls happen every 50 ms while idle
expect "the replica catches up (lag 0, change log at #$LAST)" \
    eventually '[ "$(st "$EP_r" lag_entries)" = 0 ] && [ "$(st "$EP_r" connected)" = true ] && [ "$(st "$EP_r" last_seq)" = "$LAST" ]'
expect "the watch on the replica saw the last change too" \
    eventually '[ "$(lastseq "$T/wr.out")" = "$LAST" ]'
kill -INT "$WR"; wait "$WR" 2>/dev/null || true

# ---- every acknowledged write is on the replica
RC=0; "$CRM_CLI/crm" --config "$T/p/admin.enroll" --server "$EP_r" export --csv --out "$T/r.csv" \
    >"$T/o" 2>"$T/e" || RC=$?
expect "the replica exports its customers" test "$RC" -eq 0
expect "every acknowledged add is on the replica once, and every edit's last acknowledged value or a later one" \
    python3 - "$T/r.csv" "$T/edited" "$T"/acked.* <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")))
phones = {}
for r in rows:
    for ph in r["phones"].replace(";", ",").split(","):
        if ph.strip():
            phones[ph.strip()] = r
lost = [l.strip() for f in sys.argv[3:] for l in open(f) if l.strip() not in phones]
assert not lost, ("acknowledged adds missing on the replica", len(lost), lost[:10])
n = {}
for r in rows:
    n[r["phones"]] = n.get(r["phones"], 0) + 1
twice = [ph for ph, k in n.items() if k > 1]
assert not twice, ("one add made two records (a resend not recognised)", twice[:10])
last = {}
for l in open(sys.argv[2]):
    ph, i = l.split()
    last[ph] = max(last.get(ph, 0), int(i))
for ph, i in last.items():
    city = phones[ph]["city"]
    j = int(city[1:])
    assert j >= i and j % 10 == int(ph[-1]), ("edit lost", ph, "acked", i, "has", city)
PY

# ---- the replica's feed: every sequence number once, across its restarts, as the primary's
expect "the watch on the replica reconnected across each of its restarts" \
    test "$(grep -c "reconnected to $EP_r" "$T/wr.err")" -ge "$CYCLES"
expect "the watch on the replica saw every change-log number from its start to #$LAST exactly once, with the primary's content" \
    python3 - "$T/wr.out" "$T/wr.err" "$T/wp.out" "$T/wp.err" "$LAST" <<'PY'
import json, re, sys
def load(out, err):
    start = int(re.search(r"watching from sequence (\d+)", open(err).read()).group(1))
    evs = [json.loads(l) for l in open(out, encoding="utf-8") if l.strip()]
    return start, [(e["seq"], [(x["op"], x["kind"], x["id"], json.dumps(x.get("record"), sort_keys=True)) for x in e["parts"]]) for e in evs]
rs, r = load(sys.argv[1], sys.argv[2])
ps, p = load(sys.argv[3], sys.argv[4])
last = int(sys.argv[5])
seqs = [s for s, _ in r]
want = list(range(rs + 1, last + 1))
if seqs != want:
    have = set(seqs)
    dup = sorted({s for s in seqs if seqs.count(s) > 1})
    gap = [s for s in want if s not in have]
    sys.exit(f"replica feed from #{rs}: {len(seqs)} events, want {len(want)}; gaps {gap[:20]} duplicates {dup[:20]}")
pseqs = [s for s, _ in p]
assert pseqs == list(range(ps + 1, last + 1)), ("the primary's feed has a gap", ps, len(pseqs))
pm = dict(p)
diff = [s for s, parts in r if s in pm and pm[s] != parts]
assert not diff, ("the replica's feed differs from the primary's at", diff[:10])
PY

# ---- same content: digests of both stopped data dirs
stop_server "$R"
stop_server "$P"
for old in $(seq 0 $((n - 1))); do
    check_log "$T/r$old.log" "killed replica r$old"
    check_log "$T/p$old.log" "killed primary p$old"
done
"$A" digest --data "$T/p" >"$T/dp"
"$A" digest --data "$T/r" >"$T/dr"
expect "primary and replica are at the same sequence numbers ($(grep _seq "$T/dp" | tr '\n' ' '))" \
    test "$(grep _seq "$T/dp")" = "$(grep _seq "$T/dr")"
expect "primary and replica have the same digest" \
    bash -c "grep -q '^keys [1-9]' '$T/dp' && [ \"\$(grep ^digest '$T/dp')\" = \"\$(grep ^digest '$T/dr')\" ]"
RC=0; "$A" check --data "$T/r" >"$T/o" 2>&1 || RC=$?
expect "the replica's data dir is consistent ($(tail -1 "$T/o"))" test "$RC" -eq 0
finish
