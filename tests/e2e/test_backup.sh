# test_backup - hot backups through the running crmd under a write load, incremental
# sharing, verify and restore (checksums, crm-admin check, ldb), a corrupted backup
# caught, a non-empty target refused, scheduled backups keeping N, and the restored
# server serving the existing users' enrollments with its feed continuing (SPEC §8).
source "$(dirname "$0")/lib.sh"
A="$CRM_BIN/crm-admin"

init_data "$T/data"
"$A" user add sa --dept sales --role staff --data "$T/data" --out "$T/sa" >/dev/null
cp "$T/data/admin.enroll" "$T/admin"
start_server main "$T/data"
export CRM_SERVER="$EP_main"
adm() { RC=0; "$A" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); ERR=$(cat "$T/e"); }
jget() { python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read().strip().splitlines()[-1])
    for k in sys.argv[1].split("."):
        d = d[int(k)] if isinstance(d, list) else d[k]
    print(d)
except (KeyError, IndexError, ValueError):
    print("")' "$1"; }

# some data first, so that backups have table files to share
"$CRM_BIN/crm-bench" --config "$T/admin" --server "$EP_main" --preload 2000 --duration 1 \
    --clients 2 --threads 1 >"$T/bench.out" 2>&1 || { cat "$T/bench.out"; fail "preload"; }

# ---- a hot backup under a concurrent write load ----
# the writer appends each acknowledged customer id to acked.txt after crm says "created"
: >"$T/acked.txt"
( for i in $(seq 1 400); do
      id=$("$CRM_CLI/crm" --config "$T/sa" customer add --name "load $i" 2>/dev/null) || continue
      echo "${id#created customer }" >>"$T/acked.txt"
      [ -e "$T/stop" ] && break
  done ) &
writer=$!
wait_for '[ "$(wc -l <"$T/acked.txt")" -ge 40 ]'
cp "$T/acked.txt" "$T/acked-before.txt"          # every write acknowledged before it began
adm backup create --data "$T/data" --to "$T/bk" --json
expect "hot backup through the running server succeeds" test "$RC" -eq 0
SEQ1=$(echo "$OUT" | jget backup.seq); ID1=$(echo "$OUT" | jget backup.id)
SIZE1=$(echo "$OUT" | jget backup.size)
expect "it records a sequence number ($SEQ1) and id ($ID1)" test "$SEQ1" -gt 0 -a "$ID1" = 1
n_before=$(wc -l <"$T/acked-before.txt")
expect "and record counts" test "$(echo "$OUT" | jget backup.counts.customer)" -ge $((2000 + n_before))
wait_for '[ "$(wc -l <"$T/acked.txt")" -ge $((n_before + 30)) ]'
expect "writes went on during and after the backup" test "$(wc -l <"$T/acked.txt")" -gt "$n_before"

# ---- a second backup is incremental: it shares the table files of the first ----
adm backup create --data "$T/data" --to "$T/bk" --json
ID2=$(echo "$OUT" | jget backup.id); SIZE2=$(echo "$OUT" | jget backup.size)
SEQ2=$(echo "$OUT" | jget backup.seq)
ondisk=$(du -sb --apparent-size "$T/bk" | cut -f1)
expect "second backup ($ID2) at a later sequence ($SEQ2 > $SEQ1)" test "$ID2" = 2 -a "$SEQ2" -gt "$SEQ1"
expect "incremental: $ondisk bytes on disk < $SIZE1 + $SIZE2 (shared files)" \
    test "$ondisk" -lt $(( (SIZE1 + SIZE2) * 8 / 10 ))
touch "$T/stop"; wait "$writer" || true

# ---- status, list, modes ----
adm backup status --data "$T/data"
expect "status names the last backup" contains "$OUT" "last backup:    2"
adm backup list --dir "$T/bk"
expect "list shows both backups with their sequence numbers" \
    test "$RC" -eq 0 -a "$(echo "$OUT" | grep -cE "^(1|2) .* ($SEQ1|$SEQ2) ")" -eq 2
expect "list closes with one line" test "$(echo "$OUT" | tail -1)" = "2 backups in $T/bk"
expect "backup files are 0600 and dirs 0700" test -z "$(find "$T/bk" -perm /077 | head -1)"
expect "the server keys are in the backup" test -s "$T/bk/oneview/1/server.key" -a -s "$T/bk/oneview/1/master.key"

# ---- verify: sizes, checksums via a scratch restore, crm-admin check, ldb ----
adm backup verify --dir "$T/bk" --id 1 --scratch "$T"
expect "verify passes on backup 1" test "$RC" -eq 0
expect "verify says what it checked" contains "$OUT" "backup 1 verified: files and checksums intact, restores to sequence $SEQ1"
expect "verify leaves no scratch dir" test -z "$(ls -d "$T"/crm-verify-* 2>/dev/null)"

# ---- restore backup 1 (taken under load) and serve it ----
adm restore --from "$T/bk" --id 1 --data "$T/r1" --json
expect "restore by id succeeds" test "$RC" -eq 0 -a "$(echo "$OUT" | jget backup.seq)" = "$SEQ1"
expect "restored files are private" test -z "$(find "$T/r1" -perm /077 | head -1)"
adm check --data "$T/r1"
expect "the restored store passes crm-admin check" test "$RC" -eq 0
start_server r1 "$T/r1"
RS="$EP_r1"
missing=0
while read -r id; do
    "$CRM_CLI/crm" --config "$T/sa" --server "$RS" customer show "$id" >/dev/null 2>&1 || missing=$((missing + 1))
done <"$T/acked-before.txt"
expect "every write acknowledged before the backup began is there ($n_before, $missing missing)" test "$missing" -eq 0
as sa --server "$RS" whoami
expect "an existing user's enrollment works against the restored server" test "$RC" -eq 0 -a -n "$(echo "$OUT" | grep sa)"
"$CRM_CLI/crm" --config "$T/admin" --server "$RS" --json watch --since "$SEQ1" >"$T/w.out" 2>"$T/w.err" &
W=$!
wait_for 'grep -q "watching from" "$T/w.err"'
as sa --server "$RS" customer add --name "after restore"
expect "the restored server takes writes" test "$RC" -eq 0
wait_for '[ -s "$T/w.out" ]'
kill -INT "$W"; wait "$W" || true
first=$(head -1 "$T/w.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])' 2>/dev/null || echo none)
expect "the change feed continues from the backup's sequence ($first = $SEQ1 + 1)" test "$first" = $((SEQ1 + 1))
stop_server r1

# ---- a corrupted backup file: verify catches it, restore refuses it ----
cp -a "$T/bk" "$T/bad"
# the largest table file of backup 2 (as its file list, meta/2, names them)
victim=$(cd "$T/bad" && ls -S $(awk '/\.sst crc32/{print $1}' meta/2) | head -1)
victim="$T/bad/$victim"
python3 - "$victim" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 3] ^= 0xff
open(p, 'wb').write(bytes(b))
EOF
adm backup verify --dir "$T/bad" --all --scratch "$T"
expect "verify catches a flipped byte" test "$RC" -eq 1
expect "and says the backup is not usable" contains "$ERR" "is NOT usable"
expect "naming the damaged file" contains "$ERR" "$(basename "$victim")' is damaged"
adm restore --from "$T/bad" --id 2 --data "$T/r-bad"
expect "restore refuses the corrupted backup" test "$RC" -eq 1
expect "naming the damaged file" contains "$ERR" "$(basename "$victim")"
expect "and leaves nothing behind" test ! -e "$T/r-bad"

# ---- a damaged server key in a backup: verify and restore catch it (crmd would refuse
# the restored dir: public key does not match the secret key) ----
cp -a "$T/bk" "$T/badkey"
python3 - "$T/badkey/oneview/1/server.key" <<'EOF'
import re, sys
p = sys.argv[1]
t = open(p).read()
m = re.search(r"^secret = (.)", t, re.M)
c = "A" if m.group(1) != "A" else "B"
open(p, "w").write(t[:m.start(1)] + c + t[m.start(1) + 1:])
EOF
adm backup verify --dir "$T/badkey" --id 1 --scratch "$T"
expect "verify catches a damaged server key (rc=$RC)" test "$RC" -eq 1
expect "... saying so ($(head -1 <<<"$ERR"))" contains "$ERR" "server key is damaged"
adm restore --from "$T/badkey" --id 1 --data "$T/r-badkey"
expect "restore refuses it too, leaving nothing behind" test "$RC" -eq 1 -a ! -e "$T/r-badkey"

# ---- a backup missing a side file it was saved with, or its metadata: verify and restore
# say so (both passed, and the restored dir had no admin.enroll) ----
expect "the metadata names the side files saved" grep -q "^sides=server.key,master.key,admin.enroll" "$T/bk/oneview/1/meta"
cp -a "$T/bk" "$T/noenroll"; rm "$T/noenroll/oneview/1/admin.enroll"
adm backup verify --dir "$T/noenroll" --id 1 --scratch "$T"
expect "verify catches a missing admin.enroll (rc=$RC)" test "$RC" -eq 1
expect "... naming it ($(head -1 <<<"$ERR"))" contains "$ERR" "admin.enroll', which was saved with it"
adm restore --from "$T/noenroll" --id 1 --data "$T/r-noenroll"
expect "restore refuses it too, leaving nothing behind" test "$RC" -eq 1 -a ! -e "$T/r-noenroll"
cp -a "$T/bk" "$T/nometa"; rm "$T/nometa/oneview/1/meta"
adm backup verify --dir "$T/nometa" --id 1 --scratch "$T"
expect "verify refuses a backup without its metadata (rc=$RC)" test "$RC" -eq 1
expect "... saying so ($(head -1 <<<"$ERR"))" contains "$ERR" "has no metadata"
# a sidecar written before the "sides" line: admin.enroll is optional there, as it was
cp -a "$T/bk" "$T/oldmeta"; sed -i '/^sides=/d' "$T/oldmeta/oneview/1/meta"; rm "$T/oldmeta/oneview/1/admin.enroll"
adm backup verify --dir "$T/oldmeta" --id 1 --scratch "$T"
expect "a backup with an older sidecar and no admin.enroll still verifies (rc=$RC, $ERR)" test "$RC" -eq 0

# ---- a dir that holds no backup, and a backup dir inside the data dir ----
adm backup list --dir "$T/data"
expect "backup list of a data dir given by mistake: refused (rc=$RC, $ERR)" \
    test "$RC" -eq 1 -a -n "$(grep -F "holds no backup" "$T/e")"
adm backup purge --dir "$T/data" --keep 1
expect "... and purge too" test "$RC" -eq 1
expect "... neither wrote the backup engine's dirs into it" test ! -e "$T/data/meta" -a ! -e "$T/data/oneview"
for to in "$T/data/bk" "$T/data/db"; do
    adm backup create --data "$T/data" --to "$to"
    expect "backup create --to $(basename "$to") inside the data dir: refused (rc=$RC, $(head -1 <<<"$ERR"))" \
        test "$RC" -eq 1 -a -n "$(grep -F "is inside the data dir" "$T/e")"
done
expect "... nothing made there" test ! -e "$T/data/bk" -a ! -e "$T/data/db/meta"

# ---- a backup dir is one server's: another server's backup into it is refused (they were
# listed as one series, purged by each other's --keep, restored in each other's place) ----
init_data "$T/other"
adm backup create --data "$T/other" --to "$T/bk"
expect "another server's backup into this one's backup dir: refused (rc=$RC, $(head -1 <<<"$ERR"))" \
    test "$RC" -eq 1 -a -n "$(grep -F "holds the backups of another server" "$T/e")"
adm backup create --data "$T/other" --to "$T/bk-other"
expect "... into a dir of its own it is taken" test "$RC" -eq 0

# ---- restore refuses a non-empty directory ----
mkdir "$T/full"; echo keep >"$T/full/precious"
adm restore --from "$T/bk" --data "$T/full"
expect "restore refuses a non-empty dir" test "$RC" -eq 1 -a "$(ls "$T/full")" = precious
expect "saying why" contains "$ERR" "is not empty"
adm restore --from "$T/bk" --id 9 --data "$T/r9"
expect "restore of an unknown id is refused" test "$RC" -eq 1 && contains "$ERR" "has no backup 9"

# ---- purge ----
adm backup purge --dir "$T/bk" --keep 1 --json
expect "purge --keep 1 removes one" test "$RC" -eq 0 -a "$(echo "$OUT" | jget removed)" = 1
expect "... and says the limit it kept to as keep" test "$(echo "$OUT" | jget keep)" = 1
expect "and its sidecar" test ! -e "$T/bk/oneview/1" -a -e "$T/bk/oneview/2/meta"

# ---- scheduled backups keep N ----
stop_server main
adm backup create --data "$T/data" --to "$T/bk" --json
expect "on a stopped data dir, backup works directly" test "$RC" -eq 0 -a "$(echo "$OUT" | jget backup.id)" = 3
start_server sched "$T/data" --backup-dir "$T/sched" --backup-every 1s --backup-keep 2
export CRM_SERVER="$EP_sched"
wait_for '[ "$("$A" backup status --data "$T/data" --json 2>/dev/null | jget finished)" -ge 4 ]'
adm backup status --data "$T/data" --json
expect "the server made scheduled backups by itself ($(echo "$OUT" | jget finished))" \
    test "$(echo "$OUT" | jget finished)" -ge 4
expect "and none failed" test -z "$(echo "$OUT" | jget last_error)"
stop_server sched
adm backup list --dir "$T/sched" --json
expect "--backup-keep 2 keeps the newest 2" test "$(echo "$OUT" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["backups"]))')" = 2
expect "and their sidecars only" test "$(ls "$T/sched/oneview" | grep -c '^[0-9]')" = 2

finish
