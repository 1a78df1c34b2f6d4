#!/usr/bin/env python3
"""powercut - simulate a power cut on a data dir after its server was killed.

Usage: powercut.py baseline DBDIR SYNCLOG   record every file's size as durable
       powercut.py cut DBDIR SYNCLOG        drop what was never fsynced

Run "baseline" before the server starts (what is on disk then survived the
last cut), start the server under tests/fault/faultfs.c with FAULTFS_SYNCLOG,
kill -9 it, then "cut": every file under DBDIR is cut back to the length it
had at its last successful fsync/fdatasync (the last line for its path in
SYNCLOG); a file never synced loses everything. This is the page cache lost
at a power cut, as Jepsen's LazyFS or RocksDB's FaultInjectionTestFS model
it - for file data. Names are treated as durable (RocksDB fsyncs the
directory after creating or renaming a file it relies on), so a file is cut
to zero, not removed; renames logged by the shim carry the synced length
over to the new name. Prints what it dropped.
"""
import os
import sys


def main():
    mode, db, log = sys.argv[1:4]
    if mode == "baseline":
        with open(log, "a") as f:
            for name in sorted(os.listdir(db)):
                p = os.path.join(db, name)
                if os.path.isfile(p):
                    f.write(f"{os.path.realpath(p)} {os.path.getsize(p)}\n")
        return 0
    synced = {}
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("R\t"):  # a rename: the synced length follows the file
                fields = line.rstrip("\n").split("\t")
                if len(fields) == 3 and fields[1] in synced:
                    synced[fields[2]] = synced.pop(fields[1])
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and parts[1].strip().isdigit():
                synced[parts[0]] = int(parts[1])
    dropped = 0
    for name in sorted(os.listdir(db)):
        p = os.path.join(db, name)
        if not os.path.isfile(p):
            continue
        size = os.path.getsize(p)
        keep = min(size, synced.get(os.path.realpath(p), 0))
        if keep < size:
            os.truncate(p, keep)
            dropped += size - keep
            print(f"cut {name}: {size} -> {keep}")
    print(f"dropped {dropped} unsynced bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
