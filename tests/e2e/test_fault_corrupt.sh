# test_fault_corrupt - damage is reported, never answered around (issue 16, 2).
# A table file with a flipped byte: a search that reads it must fail with a
# clear error, and the log must name the file (an iterator that stops on an
# error used to look like the end of the data: the search answered OK
# without the customer). A data dir whose db/CURRENT is missing or garbage
# is reported as damaged, not as "not initialized".
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fault_lib.sh"

init_data "$T/data"
ADMIN="$T/data/admin.enroll"
add_staff "$T/data" wang
start_server s "$T/data"
for i in $(seq 1 30); do
    run_crm "$EP_s" "$ADMIN" customer add --name "customer $i" --email "person$i@example.com"
done
run_crm "$EP_s" "$ADMIN" customer add --name "Marker Person" --email marker.person@example.com
expect "customers created" test "$RC" -eq 0
stop_server s
# a restart replays the WAL into table files (one per column family)
start_server s1 "$T/data"
stop_server s1
cp -a "$T/data" "$T/pristine"

# the table file(s) holding the marker's e-mail index entry: flip bytes in every one of its
# data blocks. The store is sealed (no plaintext to look for): the entry's key holds the
# e-mail's blind term, which blind.py computes from the master key. A table file stores a
# key after the part it shares with the key before it, and a data block may be compressed,
# so the term is looked for in three 8-byte-or-longer pieces: its last 10 bytes (the key in
# a block stored as it is), its first or last 8 (the file's index block, uncompressed,
# whose separator keys share a prefix with the entry's key when it ends a block)
# (the customer kind's keys start with c; its e-mail index is tag e)
TERM=$(python3 "$(dirname "$0")/blind.py" "$T/data/master.key" c e 0 marker.person@example.com)
n=0
for f in "$T"/data/db/*.sst; do
    if python3 -c 'import sys
t, b = bytes.fromhex(sys.argv[2]), open(sys.argv[1], "rb").read()
sys.exit(not (t[6:] in b or t[:8] in b or t[8:] in b))' "$f" "$TERM"; then
        python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
# the footer (the last 53 bytes, block-based table format 1-5): a checksum type, then the
# metaindex and index blocks' handles (offset, size as varints); data blocks come before both
def varint(buf, i):
    v = shift = 0
    while True:
        c = buf[i]; i += 1
        v |= (c & 0x7F) << shift; shift += 7
        if not c & 0x80:
            return v, i
foot = bytes(b[-53:])
meta, i = varint(foot, 1)
_, i = varint(foot, i)
index, i = varint(foot, i)
for off in list(range(40, 80)) + list(range(80, min(meta, index), 256)):
    b[off] ^= 0x5A
open(p, "wb").write(b)
PY
        n=$((n + 1))
    fi
done
expect "damaged the table files holding the marker ($n)" test "$n" -ge 1

start_server s2 "$T/data"
run_crm "$EP_s2" "$T/data/wang.enroll" customer search marker.person@example.com
expect "a search over a damaged table file does not answer OK (rc=$RC, out=[$OUT])" test "$RC" -eq 1
expect "... and says the store is damaged ($ERR)" contains "$ERR" "Corruption"
expect "the log names the damaged file" grep -qE 'ERROR .*\.sst' "$T/s2.log"
expect "the server is still running" kill -0 "$PID_s2"
# a count from the indexes (on the helper thread: it may read much) and a list by an indexed
# field read the same damaged file: an error, never a count or a page cut short by it
for q in "list --stage active --count" "list --stage active"; do
    run_crm "$EP_s2" "$ADMIN" customer $q
    expect "customer $q over the damage does not answer OK (rc=$RC, out=[${OUT:0:80}])" test "$RC" -eq 1
    expect "... and says the store is damaged ($ERR)" contains "$ERR" "Corruption"
done

# A request that fails on the damage fails alone: four writers create customers while one
# connection sends, as fast as it is answered, a request that reads the damaged block. The
# writers' creates read nothing damaged and must all commit (the group used to be failed by
# any request that saw a read error, so writers got the reader's "Corruption").
#   beside_damage ENROLL READ WHAT: the hammer (tests/fault/faultload.c) with reader READ
beside_damage() {
    local enroll=$1 read=$2 what=$3 reads bad_reads writes bad_writes
    "$FAULTLOAD" hammer "$EP_s2" "$enroll" "$T/ham.txt" 4 $((3 * SLOW)) "$read"
    reads=$(awk '$2=="r"' "$T/ham.txt" | wc -l)
    bad_reads=$(awk '$2=="r" && $3!="OK"' "$T/ham.txt" | grep -c Corruption || true)
    writes=$(awk '$2=="w"' "$T/ham.txt" | wc -l)
    bad_writes=$(awk '$2=="w" && $3!="OK"' "$T/ham.txt" | wc -l)
    awk '$2=="w" && $3!="OK" && n++ < 3 {print "# " $0}' "$T/ham.txt"
    expect "$what: it hit the damage ($bad_reads of $reads say Corruption)" \
        test "$bad_reads" -ge 1 -a "$bad_reads" -eq "$reads"
    expect "$what: every create beside it committed ($bad_writes of $writes refused)" \
        test "$writes" -ge 100 -a "$bad_writes" -eq 0
    ACKED=$((ACKED + writes - bad_writes))
}
ACKED=0
# a create whose duplicate check reads the damaged e-mail index: its mutation is taken back
beside_damage "$T/data/wang.enroll" "email:marker.person@example.com" "a create on the damage"
# an admin's search of it: audited, so its audit entry is staged (outside any mutation)
beside_damage "$ADMIN" "search:marker.person@example.com" "an admin's search on the damage"
# the taken-back creates gave their sequence numbers back: the change log has no gap
export CRM_SERVER="$EP_s2"
cp "$ADMIN" "$T/admin"
as admin --json whoami
last=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["last_seq"])' <"$T/o")
watch_start admin w --since 0
wait_for 'grep -q "\"seq\":$last," "$T/w.out"'
if kill -0 "$W_w" 2>/dev/null; then watch_stop w; else wait "$W_w" || true; fi # ended on a gap?
seqs=$(python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["seq"]) for l in open(sys.argv[1]) if l.strip()))' "$T/w.out")
expect "the change log holds every change once, in order, no gap (1..$last)" \
    test "$seqs" = "$(seq 1 "$last" | paste -sd' ')"
expect "... the creates acknowledged among them ($last changes, $ACKED acknowledged)" \
    test "$last" -ge "$ACKED"
kill -TERM "$PID_s2"; wait "$PID_s2" || true
no_abort "$T/s2.log" "server s2"
# crm-admin check of the damaged data dir: a scan the damage stopped is a problem, never the
# end of the data (its entries after the damage were never looked at)
RC=0; "$CRM_BIN/crm-admin" check --data "$T/data" >"$T/chk" 2>&1 || RC=$?
grep -E "damaged file|CONSISTENT" "$T/chk" | sed "s/^/# /" || true
expect "crm-admin check of the damaged data dir fails (rc=$RC)" test "$RC" -eq 1
expect "... saying a scan stopped on the damage" \
    bash -c "grep -q 'NOT CONSISTENT' '$T/chk' && grep -q 'stopped on a damaged file, so what came after was not checked: .*Corruption' '$T/chk'"

# CURRENT missing / garbage
cp -a "$T/pristine" "$T/nocurrent"
rm "$T/nocurrent/db/CURRENT"
RC=0; "$CRM_BIN/crmd" --data "$T/nocurrent" --listen 'tcp://127.0.0.1:*' >"$T/nc.out" \
    2>"$T/nc.err" || RC=$?
ERR=$(cat "$T/nc.err")
expect "a data dir without db/CURRENT is refused (rc=$RC)" test "$RC" -eq 1
expect "... as damaged, not as uninitialized ($ERR)" \
    bash -c "grep -q damaged '$T/nc.err' && ! grep -q 'not initialized' '$T/nc.err'"
cp -a "$T/pristine" "$T/badcurrent"
printf 'garbage\n' >"$T/badcurrent/db/CURRENT"
RC=0; "$CRM_BIN/crmd" --data "$T/badcurrent" --listen 'tcp://127.0.0.1:*' >"$T/bc.out" \
    2>"$T/bc.err" || RC=$?
ERR=$(cat "$T/bc.err")
expect "a data dir with a garbage db/CURRENT is refused (rc=$RC)" test "$RC" -eq 1
expect "... as damaged ($ERR)" grep -q damaged "$T/bc.err"
# the pristine copy still works
start_server s3 "$T/pristine"
run_crm "$EP_s3" "$T/pristine/wang.enroll" customer search marker.person@example.com
expect "the undamaged copy finds the customer" contains "$OUT" "Marker Person"
stop_server s3
finish
