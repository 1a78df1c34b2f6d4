# test_sealed - encryption at rest (SPEC §3, RELIABILITY "1,000 canary values"): 1,000
# customers whose every personal field is a random canary, with activities, notes, an
# update and a deletion, written through the real server; then no canary is found in the
# data dir (table files, WAL, RocksDB's LOG, the manifest), a backup, or the server's
# log. Searches by phone, last 4 digits, e-mail and name part, and the duplicates report,
# still work on the blind indexes; a restart reads everything back; a wrong or missing
# master key is refused with a clear error; a format-5 data dir (values in clear) is
# refused until crm-admin upgrade seals it, and then holds nothing in clear. (A value
# altered on disk does not open, and an interrupted sealing goes on: tests/unit/test_seal.c.)
source "$(dirname "$0")/lib.sh"
ADMIN_BIN="$CRM_BIN/crm-admin"
# upgrade DIR: crm-admin upgrade of DIR, its output in $T/o (shown), its exit code in RC
upgrade() { RC=0; "$ADMIN_BIN" upgrade --data "$1" >"$T/o" 2>&1 || RC=$?; sed 's/^/# /' "$T/o"; }
# faulted_upgrade DIR CTL: the same under tests/fault's faultfs, steered by the file CTL
faulted_upgrade() {
    RC=0
    LD_PRELOAD="$CRM_BIN/libfaultfs.so" FAULTFS_DIR="$1" FAULTFS_CTL="$2" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
        "$ADMIN_BIN" upgrade --data "$1" >"$T/o" 2>&1 || RC=$?
    sed 's/^/# /' "$T/o"
}
# try_start DIR: crmd on DIR, for a start it should refuse: stderr in $T/w.err, exit code in RC
try_start() {
    RC=0
    timeout 20 "$CRM_BIN/crmd" --data "$1" --listen 'tcp://127.0.0.1:*' >"$T/w.out" 2>"$T/w.err" || RC=$?
    # still serving when the timeout ended it: it did not refuse
    if [ "$RC" -eq 124 ]; then RC=0; fi
}

start_with_users "sa sales manager"
N=${CRM_SEAL_CANARIES:-1000}

# ---- 1,000 customers of canaries (random, so compression cannot hide a plaintext) ----
python3 - "$T" "$N" <<'PY'
import csv, secrets, sys
t, n = sys.argv[1], int(sys.argv[2])
canaries = open(f"{t}/canaries", "w")
phones = set()
with open(f"{t}/c.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["name", "company", "phones", "emails", "address", "tags", "custom"])
    for i in range(n):
        h = secrets.token_hex(8)  # a letter inside: an all-digit part searches phones
        name = "nm" + h[:3] + "x" + h[3:]
        company = "co" + secrets.token_hex(8)
        phone = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
        while phone in phones:  # two alike are a duplicate (1 run in 200 drew one)
            phone = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
        phones.add(phone)
        email = "em" + secrets.token_hex(6) + "@example.com"
        addr = "ad" + secrets.token_hex(10)
        tag = "tg" + secrets.token_hex(6)
        custom = "note=cu" + secrets.token_hex(8)
        w.writerow([name, company, phone, email, addr, tag, custom])
        for c in (name, company, phone, email.split("@")[0], addr, tag, custom[5:]):
            canaries.write(c + "\n")
PY
as sa import "$T/c.csv"
expect "1,000 canary customers import" contains "$OUT" "imported $N customer records"
expect "... 7 canaries each" test "$(wc -l <"$T/canaries")" -eq $((N * 7))

NAME1=$(sed -n 1p "$T/canaries"); PHONE1=$(sed -n 3p "$T/canaries"); MAIL1=$(sed -n 4p "$T/canaries")
PHONE2=$(sed -n 10p "$T/canaries")
# ids by phone (JSON Lines: one record a line)
id_of() { as sa --json customer search "$1"; sed -n 1p "$T/o" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
C1=$(id_of "$PHONE1"); C2=$(id_of "$PHONE2")
as sa --json customer show "$C1"
expect "search by phone finds the customer with that phone" test "$(field record.name)" = "$NAME1"
# more kinds of record, a change with before values, a deletion (the bin), a deal
for i in 1 2 3; do
    A="ac$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; echo "$A" >>"$T/canaries"
    as sa activity log "$C1" --type call --summary "$A"
    B="nb$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; echo "$B" >>"$T/canaries"
    as sa note add "$C1" "$B"
done
D="dl$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; echo "$D" >>"$T/canaries"
as sa deal add "$C1" --title "$D" --amount 100
expect "a deal with a canary title" test "$RC" -eq 0
NEWADDR="na$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; echo "$NEWADDR" >>"$T/canaries"
as sa customer edit "$C1" --address "$NEWADDR"
expect "an update (its before value goes into the change log and audit)" test "$RC" -eq 0
as sa customer delete "$C2" --yes
expect "a deletion (the record goes to the bin)" test "$RC" -eq 0

# ---- the blind indexes answer equality searches ----
as sa --json customer search "${PHONE1: -4}"
expect "search by the phone's last 4 digits finds it" contains "$OUT" "\"$C1\""
expect "search by e-mail finds it" test "$(id_of "$MAIL1@example.com")" = "$C1"
as sa --json customer search "${NAME1:2:6}"
expect "search by a part of the name finds it" contains "$OUT" "\"$C1\""
as sa --json customer search "${NAME1:2:6}zz"
expect "... and a part that is not in it finds nothing" bash -c "! grep -q '\"$C1\"' '$T/o'"
C3=$(id_of "$(sed -n 17p "$T/canaries")")
as sa customer add --name dupe-of-third --phone "$(sed -n 17p "$T/canaries")" --allow-duplicate
CD=${OUT#created customer }
as sa customer dupes
expect "the duplicates report groups equal phones through the blind index" \
    contains "$OUT" "$C3,$CD same phones"

# ---- a mistyped value is refused, named to its user, and not written to the server's log ----
as sa customer add --name "Mistyped" --email "$MAIL1"
expect "an e-mail without its domain is refused, the client naming the value" \
    bash -c "[ $RC -eq 1 ] && grep -qF -- '$MAIL1' '$T/e'"
expect "... and the server logs the bad request, with its value left out" \
    grep -q "bad request .* field 'emails': '\.\.\.' is not an e-mail address" "$T/main.log"

# ---- a backup, then every file of the data dir, the backup and the logs ----
"$ADMIN_BIN" backup create --data "$T/data" --to "$T/bk" >"$T/o" 2>&1
expect "a backup of the running server" test $? -eq 0
stop_server main
# the memtables are flushed into table files at close only when asked: the WAL holds them
leaks() { grep -a -r -o -F -f "$T/canaries" "$@" 2>/dev/null | wc -l; }
DBF=$(find "$T/data/db" -type f | wc -l)
expect "the data dir has table files and a WAL to look at" \
    bash -c "ls '$T/data/db' | grep -q '\.sst$\|\.log$'"
expect "no canary in the data dir ($DBF files: tables, WAL, MANIFEST, LOG)" \
    test "$(leaks "$T/data")" -eq 0
expect "no canary in the backup" test "$(leaks "$T/bk")" -eq 0
expect "no canary in the server's log and output" test "$(leaks "$T/main.log" "$T/main.out")" -eq 0
"$ADMIN_BIN" check --data "$T/data" >"$T/check.out" 2>&1
expect "crm-admin check reads the sealed store (records and blind indexes agree)" test $? -eq 0
expect "... and finds no canary either" test "$(leaks "$T/check.out")" -eq 0
"$ADMIN_BIN" grep --data "$T/data" "$(sed -n 1p "$T/canaries")" >"$T/grep.out" 2>&1
expect "crm-admin grep finds a canary as decrypted, in the records" \
    grep -q $'\trecords\t' "$T/grep.out"

# ---- a restart reads it all back ----
start_server main "$T/data"
export CRM_SERVER="$EP_main"
as sa --json customer show "$C1"
expect "after a restart the record reads back" test "$(field record.address)" = "$NEWADDR"
expect "... and the phone still finds it" test "$(id_of "$PHONE1")" = "$C1"
as sa customer history "$C1" address
expect "... and its history keeps the old value (sealed in the change log)" \
    contains "$OUT" "$(sed -n 5p "$T/canaries")"
stop_server main

# ---- keys: wrong, missing ----
cp "$T/data/master.key" "$T/master.key.good"
python3 - "$T/data/master.key" <<'PY'
import base64, os, re, sys
p = sys.argv[1]; s = open(p).read()
# another 32-byte key in the file's own text form (Z85 of random bytes)
alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
def z85(b):
    out = ""
    for i in range(0, len(b), 4):
        v = int.from_bytes(b[i:i+4], "big"); chunk = ""
        for _ in range(5):
            chunk = alphabet[v % 85] + chunk; v //= 85
        out += chunk
    return out
s = re.sub(r"(master\s*=\s*)\S+", lambda m: m.group(1) + z85(os.urandom(32)), s)
open(p, "w").write(s)
PY
try_start "$T/data"
ERR=$(cat "$T/w.err")
expect "another master key: crmd refuses to start" test "$RC" -ne 0
expect "... saying the data dir was encrypted with another key" contains "$ERR" "another master key"
rm "$T/data/master.key"
try_start "$T/data"
ERR=$(cat "$T/w.err")
expect "no master key: crmd refuses to start" test "$RC" -ne 0
expect "... naming the missing file" contains "$ERR" "master.key is missing"
cp "$T/master.key.good" "$T/data/master.key"; chmod 600 "$T/data/master.key"
start_server main "$T/data"
export CRM_SERVER="$EP_main"
as sa customer show "$C1"
expect "the right key back: it serves again" test "$RC" -eq 0
stop_server main
# ---- a format-5 data dir (values in clear) is refused, upgraded to sealed, then served ----
# (the fixture was made by the format-5 build: c1 欧阳明远 at 远方科技, 13955501234, whose
# address was edited; c2 Fiona Fivecanary; an activity and a note; f5canary in every text)
mkdir "$T/f5" && tar -C "$T/f5" -xzf "$CRM_SRC/tests/fixtures/format5-datadir.tar.gz"
F5='f5canary|13955501234|ouyang|欧阳明远|远方科技|Fivecanary'
f5leaks() { grep -a -r -o -E "$F5" "${1:-$T/f5/d}" 2>/dev/null | wc -l; }
expect "the format-5 data dir holds its values in clear (the check below can see them)" \
    test "$(f5leaks)" -gt 0
try_start "$T/f5/d"
expect "crmd refuses it, saying to upgrade" \
    bash -c "[ $RC -ne 0 ] && grep -q 'crm-admin upgrade --data' '$T/w.err'"
upgrade "$T/f5/d"
expect "crm-admin upgrade seals it" \
    bash -c "[ $RC -eq 0 ] && grep -q 'from format 5 to 8: .* [1-9][0-9]* values encrypted' '$T/o'"
expect "... saying that backups made before hold its values in clear" \
    grep -q 'backups made before this upgrade hold its values in clear' "$T/o"
expect "... and then no value is in clear in any file of the data dir (tables, WAL, manifest)" \
    test "$(f5leaks)" -eq 0
upgrade "$T/f5/d"
expect "a second upgrade has nothing to do" bash -c "[ $RC -eq 0 ] && grep -q 'already format 8' '$T/o'"
RC=0; "$ADMIN_BIN" check --data "$T/f5/d" >"$T/o" 2>&1 || RC=$?
expect "the upgraded data dir is consistent (records and blind index entries agree)" test "$RC" -eq 0
"$ADMIN_BIN" grep --data "$T/f5/d" f5canary >"$T/o" 2>&1
expect "... and holds its values, as decrypted" \
    bash -c "grep -q $'^f5canary\trecords\t' '$T/o' && grep -q $'^f5canary\tchangelog\t' '$T/o'"
start_server f5 "$T/f5/d"
f5() { RC=0; "$CRM_CLI/crm" --config "$T/f5/d/admin.enroll" --server "$EP_f5" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); }
f5 customer search 13955501234
expect "the phone finds its customer (a blind term now)" contains "$OUT" 欧阳明远
f5 customer search 5678
expect "... the last 4 digits too" contains "$OUT" Fivecanary
f5 customer search 欧阳
expect "... and a part of the name" contains "$OUT" c1
f5 --json customer show c1
expect "the record reads back" test "$(field record.address)" = "f5canary new street 9"
f5 customer history c1 address
expect "... with its history (the change log, sealed)" contains "$OUT" "f5canary road 88"
f5 activity list c2
expect "... and the note" contains "$OUT" "f5canary private note"
stop_server f5
# ---- a format-6 data dir: its blind terms had no domain, so a customer named as its company
# (the fixture, made by the format-6 build: c1 同名公司 at 同名公司, 13966601234; c2
# Sixcanary Six at Other Co, 13966605678, with a note) had one term in both parts of the
# names-at-a-company indexes; refused, upgraded to terms of their own per index, found ----
mkdir "$T/f6" && tar -C "$T/f6" -xzf "$CRM_SRC/tests/fixtures/format6-datadir.tar.gz"
# shared DIR: how many blind terms (16 bytes) are under more than one index or part, and of how many
shared() { ldb --db="$1/db" --column_family=indexes scan --hex 2>/dev/null | python3 -c '
import sys, collections
groups = collections.defaultdict(set)
for line in sys.stdin:
    k = bytes.fromhex(line.split(" : ")[0].strip()[2:])
    body = k[2:-8]
    if len(body) == 17 and body[16] == 0:
        groups[body[:16]].add((k[0], k[1], 0))
    elif len(body) in (18, 34) and body[16] == 0x1f:
        groups[body[:16]].add((k[0], k[1], 1))
        if len(body) == 34:
            groups[body[17:33]].add((k[0], k[1], 2))
print(sum(len(g) > 1 for g in groups.values()), len(groups))'; }
read -r SHARED TERMS <<<"$(shared "$T/f6/d")"
expect "the format-6 data dir has blind terms shared by two indexes or parts ($SHARED of ${TERMS:-?})" \
    test "${SHARED:-0}" -gt 0
try_start "$T/f6/d"
expect "crmd refuses it, saying to upgrade" \
    bash -c "[ $RC -ne 0 ] && grep -q 'crm-admin upgrade --data' '$T/w.err'"
upgrade "$T/f6/d"
expect "crm-admin upgrade rewrites its blind terms" \
    bash -c "[ $RC -eq 0 ] && grep -q 'from format 6 to 8: .* 0 values encrypted, [1-9][0-9]* index entries written or removed' '$T/o'"
expect "... and does not say backups before it hold values in clear (it sealed none)" \
    bash -c "! grep -q 'in clear' '$T/o'"
read -r SHARED TERMS <<<"$(shared "$T/f6/d")"
expect "... after which no blind term is under two indexes or parts ($SHARED of ${TERMS:-?})" \
    test "${SHARED:-1}" -eq 0 -a "${TERMS:-0}" -gt 10
RC=0; "$ADMIN_BIN" check --data "$T/f6/d" >"$T/o" 2>&1 || RC=$?
expect "... and records and index entries agree" test "$RC" -eq 0
"$ADMIN_BIN" grep --data "$T/f6/d" 13966601234 同名公司 >"$T/o" 2>&1 || true
expect "crm-admin grep finds a phone and a name in the indexes by their blind terms" \
    bash -c "grep -q $'^13966601234\tindexes\t' '$T/o' && grep -q $'^同名公司\tindexes\t' '$T/o'"
start_server f6 "$T/f6/d"
f6() { RC=0; "$CRM_CLI/crm" --config "$T/f6/d/admin.enroll" --server "$EP_f6" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); }
f6 customer search 13966601234
expect "the phone finds its customer" contains "$OUT" 同名公司
f6 customer search 5678
expect "... the last 4 digits too" contains "$OUT" Sixcanary
f6 customer search 名公
expect "... and a part of the name" contains "$OUT" c1
f6 activity list c2
expect "... and the note reads back" contains "$OUT" "sixcanary private note"
stop_server f6
# ---- a format-7 data dir (the fixture, made by the format-7 build: c1 Quincy Sevenfold at Xylo
# Works, c2 王七 at 七星公司, c3 Ann Lee at Qbit): its text index has a posting list per single
# Latin letter and digit, which format 8 drops; refused, upgraded (those entries removed),
# then a search for one letter checks records one by one and still finds them ----
mkdir "$T/f7" && tar -C "$T/f7" -xzf "$CRM_SRC/tests/fixtures/format7-datadir.tar.gz"
try_start "$T/f7/d" # (its open puts what the WAL holds into table files)
expect "crmd refuses a format-7 data dir, saying to upgrade" \
    bash -c "[ $RC -ne 0 ] && grep -q 'crm-admin upgrade --data' '$T/w.err'"
BEFORE=$(ldb --db="$T/f7/d/db" --column_family=indexes scan 2>/dev/null | wc -l)
upgrade "$T/f7/d"
expect "crm-admin upgrade takes it to format 8, removing index entries" \
    bash -c "[ $RC -eq 0 ] && grep -q 'from format 7 to 8: .* 0 values encrypted, [1-9][0-9]* index entries written or removed' '$T/o'"
expect "... saying nothing of values in clear" bash -c "! grep -q 'in clear' '$T/o'"
AFTER=$(ldb --db="$T/f7/d/db" --column_family=indexes scan 2>/dev/null | wc -l)
expect "... fewer index entries than before ($AFTER of $BEFORE)" test "$AFTER" -gt 0 -a "$AFTER" -lt "$BEFORE"
RC=0; "$ADMIN_BIN" check --data "$T/f7/d" >"$T/o" 2>&1 || RC=$?
expect "... and records and index entries agree" test "$RC" -eq 0
start_server f7 "$T/f7/d"
f7() { RC=0; "$CRM_CLI/crm" --config "$T/f7/d/admin.enroll" --server "$EP_f7" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); }
f7 customer search Q
expect "one Latin letter (no posting list) finds each name or company holding it" \
    bash -c "[ $RC -eq 0 ] && grep -q '^c1 ' '$T/o' && grep -q '^c3 ' '$T/o' && ! grep -q '^c2 ' '$T/o'"
f7 customer search 7
expect "... one digit that no name holds finds none" bash -c "[ $RC -eq 0 ] && grep -q '^no customer records' '$T/o'"
f7 customer search "x s"
expect "... single letters of two words: the records holding the whole text" \
    bash -c "[ $RC -eq 0 ] && ! grep -q '^c[0-9]' '$T/o'"
f7 customer search "y s"
expect "... and one that does hold it" bash -c "[ $RC -eq 0 ] && grep -q '^c1 ' '$T/o' && ! grep -q '^c3 ' '$T/o'"
f7 customer search 七
expect "one Chinese character keeps its posting list" bash -c "[ $RC -eq 0 ] && grep -q '^c2 ' '$T/o'"
f7 customer search yl
expect "a pair of letters finds the company holding it" bash -c "[ $RC -eq 0 ] && grep -q '^c1 ' '$T/o' && ! grep -q '^c3 ' '$T/o'"
f7 customer search $'\t'
expect "a search of white space only is still refused" bash -c "[ $RC -ne 0 ] && grep -q 'empty' '$T/e'"
f7 customer search "七　q"
expect "one term (七) of a text with an ideographic space: the whole text is checked" \
    bash -c "[ $RC -eq 0 ] && ! grep -q '^c[0-9]' '$T/o'"
f7 customer search "y　s"
expect "... and single letters across one found by it" bash -c "[ $RC -eq 0 ] && grep -q '^c1 ' '$T/o' && ! grep -q '^c3 ' '$T/o'"
f7 customer search "七　"
expect "white space at the end (an ideographic space) is trimmed: 七 alone" \
    bash -c "[ $RC -eq 0 ] && grep -q '^c2 ' '$T/o'"
f7 customer search "　q "
expect "... and at the start: q alone" bash -c "[ $RC -eq 0 ] && grep -q '^c1 ' '$T/o' && grep -q '^c3 ' '$T/o'"
f7 customer add --name 七七 --company Sevens
f7 customer search 七七七
expect "a repeated character (one term, 七七) is checked whole too: 七七 is not found" \
    bash -c "[ $RC -eq 0 ] && ! grep -q '^c[0-9]' '$T/o'"
stop_server f7
# killed half way (at its first table file: the index terms rewritten, not yet compacted),
# the upgrade leaves a data dir marked as being upgraded: crmd refuses it (a format-6 crmd
# would read it as format 6, its old terms partly gone) until a second run finishes it
mkdir "$T/f6k" && tar -C "$T/f6k" -xzf "$CRM_SRC/tests/fixtures/format6-datadir.tar.gz"
try_start "$T/f6k/d" # (its open puts what the WAL holds into table files)
echo "KILL .sst" >"$T/f6k.ctl"
faulted_upgrade "$T/f6k/d" "$T/f6k.ctl"
expect "an upgrade killed before its end ($RC) ..." test "$RC" -eq 137
try_start "$T/f6k/d"
expect "... leaves a data dir crmd refuses, saying to run the upgrade again" \
    bash -c "[ $RC -ne 0 ] && grep -q 'is being upgraded, or its upgrade stopped before the end: .*crm-admin upgrade --data' '$T/w.err'"
upgrade "$T/f6k/d"
expect "... and a second run finishes it, from format 6" \
    bash -c "[ $RC -eq 0 ] && grep -q 'from format 6 to 8' '$T/o'"
read -r SHARED TERMS <<<"$(shared "$T/f6k/d")"
RC=0; "$ADMIN_BIN" check --data "$T/f6k/d" >"$T/o" 2>&1 || RC=$?
expect "... with no blind term shared ($SHARED of ${TERMS:-?}), records and index entries agreeing" \
    test "$RC" -eq 0 -a "${SHARED:-1}" -eq 0 -a "${TERMS:-0}" -gt 10

# ---- a format-7 data dir in clear (the format-5 fixture upgraded by the format-7 build without
# its key), given its key: the upgrade to format 8 seals it and says what sealing cannot reach ----
mkdir "$T/f7c" && tar -C "$T/f7c" -xzf "$CRM_SRC/tests/fixtures/format7-clear-datadir.tar.gz"
expect "the format-7 data dir in clear holds values in clear" test "$(f5leaks "$T/f7c/d")" -gt 0
cp "$T/f7c/master.key" "$T/f7c/d/master.key"; chmod 600 "$T/f7c/d/master.key"
upgrade "$T/f7c/d"
expect "given its key, a format-7 data dir in clear is sealed by the upgrade to format 8" \
    bash -c "[ $RC -eq 0 ] && grep -q 'from format 7 to 8: .* [1-9][0-9]* values encrypted' '$T/o'"
expect "... saying that backups made before hold its values in clear" \
    grep -q 'backups made before this upgrade hold its values in clear' "$T/o"
expect "... and no value is left in clear in any file of it" test "$(f5leaks "$T/f7c/d")" -eq 0
RC=0; "$ADMIN_BIN" check --data "$T/f7c/d" >"$T/o" 2>&1 || RC=$?
expect "... records and index entries agreeing" test "$RC" -eq 0

# ---- upgraded while it had no master key: in clear, and said so; given one, sealed ----
mkdir "$T/f5b" && tar -C "$T/f5b" -xzf "$CRM_SRC/tests/fixtures/format5-datadir.tar.gz"
mv "$T/f5b/d/master.key" "$T/f5b/master.key"
upgrade "$T/f5b/d"
expect "with no master.key, upgrade brings it to format 8 and says its values stay in clear" \
    bash -c "[ $RC -eq 0 ] && grep -q 'no master.key: its values stay in clear' '$T/o' &&
             grep -q 'from format 5 to 8: .* 0 values encrypted' '$T/o'"
expect "... and they are in clear" test "$(f5leaks "$T/f5b/d")" -gt 0
upgrade "$T/f5b/d"
expect "again without a key: nothing to do, saying its values are in clear" \
    bash -c "[ $RC -eq 0 ] && grep -q 'already format 8: nothing to do (its values are in clear' '$T/o'"
cp "$T/f5b/master.key" "$T/f5b/d/master.key"; chmod 600 "$T/f5b/d/master.key"
start_server f5b "$T/f5b/d"
stop_server f5b
expect "crmd serves it given a key, warning that its values are in clear and how to seal them" \
    grep -q "holds its values in clear: stop the server and run 'crm-admin upgrade" "$T/f5b.log"
# stopped before its last step (the table files cannot be written: the disk is full), the
# sealing leaves a data dir that crmd refuses and that a second run finishes
# (the check's open first puts what crmd wrote at its start into table files, so that the
# fault is met by the sealing, not by the upgrade's own open; that one is tested below)
"$ADMIN_BIN" check --data "$T/f5b/d" >"$T/o" 2>&1
echo "ENOSPC .sst" >"$T/f5b.ctl"
faulted_upgrade "$T/f5b/d" "$T/f5b.ctl"
expect "an upgrade whose table files cannot be written fails, saying it can be run again" \
    bash -c "[ $RC -ne 0 ] && grep -q 'can be run again' '$T/o'"
try_start "$T/f5b/d"
expect "... and crmd refuses the half-sealed data dir, saying to upgrade" \
    bash -c "[ $RC -ne 0 ] && grep -q 'is being upgraded, or its upgrade stopped before the end: .*crm-admin upgrade --data' '$T/w.err'"
upgrade "$T/f5b/d"
expect "given the master.key and room, upgrade finishes sealing the data dir made in clear" \
    bash -c "[ $RC -eq 0 ] && grep -q 'upgraded .* from format 5 to 8: .* values encrypted' '$T/o'"
expect "... and no value is left in clear in any file of it" test "$(f5leaks "$T/f5b/d")" -eq 0
upgrade "$T/f5b/d"
expect "... after which there is nothing to do" \
    bash -c "[ $RC -eq 0 ] && grep -q 'already format 8: nothing to do$' '$T/o'"
# and in one run: a fresh copy upgraded without a key, then given it
rm -rf "$T/f5b" && mkdir "$T/f5b" && tar -C "$T/f5b" -xzf "$CRM_SRC/tests/fixtures/format5-datadir.tar.gz"
mv "$T/f5b/d/master.key" "$T/f5b/master.key"
"$ADMIN_BIN" upgrade --data "$T/f5b/d" >"$T/o" 2>&1
cp "$T/f5b/master.key" "$T/f5b/d/master.key"; chmod 600 "$T/f5b/d/master.key"
# (the first upgrade's last write is in the WAL: the next open puts it into a table file, and
# with the disk full that open fails before anything is changed)
faulted_upgrade "$T/f5b/d" "$T/f5b.ctl"
expect "an upgrade whose own opening of the data dir meets a full disk fails, saying nothing was changed" \
    bash -c "[ $RC -ne 0 ] && grep -q 'disk full.*nothing was changed: the upgrade can be run again' '$T/o'"
upgrade "$T/f5b/d"
expect "given the master.key, upgrade seals the format-7 data dir made in clear" \
    bash -c "[ $RC -eq 0 ] && grep -q 'sealed .* (format 8, made in clear): [1-9][0-9]* values encrypted' '$T/o'"
expect "... and then no value is in clear in any file of it" test "$(f5leaks "$T/f5b/d")" -eq 0
RC=0; "$ADMIN_BIN" check --data "$T/f5b/d" >"$T/o" 2>&1 || RC=$?
expect "... and it is consistent (records and blind index entries agree)" test "$RC" -eq 0
start_server f5b "$T/f5b/d"
f5b() { RC=0; "$CRM_CLI/crm" --config "$T/f5b/d/admin.enroll" --server "$EP_f5b" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); }
f5b customer search 13955501234
expect "... its phone finds its customer through a blind term" contains "$OUT" 欧阳明远
stop_server f5b
expect "... and crmd no longer warns" \
    bash -c "! grep -q 'holds its values in clear' '$T/f5b.log'"
# ---- a replica made while its primary held its values in clear, the primary then sealed:
# the replica applies none of the sealed log (its values would not read there), keeps serving
# what it has and says what to do ----
mkdir "$T/f5c" && tar -C "$T/f5c" -xzf "$CRM_SRC/tests/fixtures/format5-datadir.tar.gz"
mv "$T/f5c/d/master.key" "$T/f5c/master.key"
"$ADMIN_BIN" upgrade --data "$T/f5c/d" >"$T/o" 2>&1 # format 8, in clear
cp "$T/f5c/master.key" "$T/f5c/d/master.key"; chmod 600 "$T/f5c/d/master.key"
start_server f5c "$T/f5c/d" --sweep-every 0
PEP=$EP_f5c
f5c() { local ep=$1; shift; RC=0; "$CRM_CLI/crm" --config "$T/f5c/d/admin.enroll" --server "$ep" "$@" >"$T/o" 2>"$T/e" || RC=$?; OUT=$(cat "$T/o"); }
"$ADMIN_BIN" user add repl1 --role replica --data "$T/f5c/d" --server "$PEP" \
    --out "$T/f5c/repl1.enroll" >"$T/o" 2>&1
RC=0; "$ADMIN_BIN" replica init --from "$PEP" --data "$T/f5c/r" --enroll "$T/f5c/repl1.enroll" \
    >"$T/o" 2>&1 || RC=$?
expect "a replica of the primary in clear is made" test "$RC" -eq 0
start_server f5r "$T/f5c/r" --replica-of "$PEP"
f5c "$PEP" customer add --name 'Before Seal' --phone 13955507777
wait_for 'f5c "$EP_f5r" customer search 13955507777; contains "$OUT" "Before Seal"'
expect "the replica follows the primary in clear" contains "$OUT" "Before Seal"
stop_server f5c
upgrade "$T/f5c/d"
expect "the primary is then sealed" \
    bash -c "[ $RC -eq 0 ] && grep -q 'sealed .* (format 8, made in clear): [1-9][0-9]* values encrypted' '$T/o'"
start_server f5c "$T/f5c/d" --sweep-every 0 --listen "$PEP"
f5c "$PEP" customer add --name 'After Seal' --phone 13955508888
expect "the sealed primary takes writes" test "$RC" -eq 0
wait_for 'grep -q "refusing the log of" "$T/f5r.log"'
expect "the replica refuses the sealed log: the primary's values encrypted, its own in clear" \
    grep -q "the primary's values are encrypted and this replica's data dir is in clear" "$T/f5r.log"
expect "... saying to make the replica again" \
    grep -q "make this replica again with 'crm-admin replica init'" "$T/f5r.log"
f5c "$EP_f5r" --json customer show c1
expect "the replica still serves what it had" \
    test "$RC" -eq 0 -a "$(field record.address)" = "f5canary new street 9"
f5c "$EP_f5r" customer search 13955507777
expect "... the customer added before the sealing too" contains "$OUT" "Before Seal"
f5c "$EP_f5r" customer search 13955508888
expect "... and nothing of the sealed log" bash -c "! grep -q 'After Seal' '$T/o'"
stop_server f5r
stop_server f5c
finish
