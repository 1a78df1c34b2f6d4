#!/usr/bin/env bash
# test.sh - the README's second command: install, then build every documented build type
# with warnings as errors and run the suite where it tells something:
#   Release, Debug        build only, the programs (they must compile cleanly: -O3 finds
#                         other warnings)
#   Asan                  unit and end-to-end tests, all of them (AddressSanitizer + UBSan)
#   RelWithDebInfo        the unit tests and the end-to-end tests labelled "speed" in
#                         CMakeLists.txt (bounded latencies, the kill -9 loops at their full
#                         counts); CRM_TEST_ALL=1 runs every test here too (a long run)
#   Tsan                  ThreadSanitizer on the threaded tests: the unit tests and the
#                         end-to-end tests that drive the server's threads (ZAP, feed,
#                         worker, committer, a replica's follower), with tests/tsan.supp (each
#                         suppression explained there); their command-line client `crm`, which
#                         has no threads of its own, is the RelWithDebInfo build's
# and fuzz the request path and feed delivery with libFuzzer for CRM_FUZZ_SECONDS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
status=0
jobs=$(nproc)
for type in Release Debug RelWithDebInfo Asan Tsan; do
    dir="build-test-$type"
    echo "=== $type build ==="
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCRM_WERROR=ON >/dev/null
    targets=()
    case $type in Release | Debug) targets=(--target crmd crm crm-admin crm-bench) ;; esac
    if ! cmake --build "$dir" -j"$jobs" "${targets[@]}"; then
        echo "test.sh: the $type build failed" >&2
        status=1
        continue
    fi
    # Two tests at a time (three under ASan, below; each has its own server, port and data
    # dir); in RelWithDebInfo the tests that bound a latency run alone (RUN_SERIAL in
    # CMakeLists.txt) and their bounds are judged; under the sanitizers they run beside
    # others and print their figures (CRM_TEST_LATENCY=0). The kill -9 loops are shorter
    # under the sanitizers (they look for memory errors in restarts; the long counts run in
    # RelWithDebInfo)
    par=(-j2)
    envs=()
    case $type in
    Release | Debug) continue ;;
    RelWithDebInfo) only=(-L '^(unit|speed)$'); [ "${CRM_TEST_ALL:-0}" = 1 ] && only=() ;;
    Tsan)
        only=(-R '^(unit_|e2e_test_session$|e2e_test_security$|e2e_test_feed$|e2e_test_hostile$|e2e_test_report$|e2e_test_replica$|e2e_test_replica_sync$|e2e_test_restore_history$|e2e_test_commit_pipeline$|e2e_test_large_change$)')
        # the one-shot client from the RelWithDebInfo build (tests/e2e/lib.sh, CRM_CLI)
        envs=(CRM_CLIENT_BIN="$PWD/build-test-RelWithDebInfo") ;;
    *) only=(); envs=(CRM_CRASH_CYCLES=4)
        # three at a time here: at two, a fifth of both cores sat idle while tests waited on
        # their servers (819 s of CPU in 486 s; three: 857 s in 450 s, the same 52 passing)
        par=(-j3) ;;
    esac
    echo "=== $type tests ==="
    (cd "$dir" && env "${envs[@]}" ctest --output-on-failure --timeout 400 "${par[@]}" "${only[@]}") || status=1
done
# libFuzzer on the request path (decode, authenticate, authorize, handlers) and feed delivery
echo "=== fuzz: dispatch, ${CRM_FUZZ_SECONDS:=30} s ==="
dir=build-test-fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRM_FUZZ=ON -DCRM_WERROR=OFF >/dev/null
cmake --build "$dir" --target fuzz_dispatch -j"$(nproc)"
rm -rf "$dir/corpus" "$dir/tmp" && mkdir -p "$dir/corpus" "$dir/tmp"
# first the inputs that once failed (tests/fuzz/regress: each a bug fixed since), one by one
if ! TMPDIR="$PWD/$dir/tmp" "$dir/fuzz_dispatch" -rss_limit_mb=2048 tests/fuzz/regress/* \
    >"$dir/regress.log" 2>&1; then
    tail -40 "$dir/regress.log"
    echo "fuzz: a saved input of tests/fuzz/regress fails again" >&2
    status=1
fi
if TMPDIR="$PWD/$dir/tmp" CRM_FUZZ_SEEDS="$PWD/$dir/corpus" \
    "$dir/fuzz_dispatch" -max_total_time="$CRM_FUZZ_SECONDS" -rss_limit_mb=2048 \
    -artifact_prefix="$dir/" "$dir/corpus" >"$dir/fuzz.log" 2>&1; then
    echo "fuzz: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$dir/fuzz.log"), no crash"
else
    tail -40 "$dir/fuzz.log"
    echo "fuzz: FAILED (crash input saved under $dir/)" >&2
    status=1
fi
rm -rf "$dir/tmp"

if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED" >&2
fi
exit "$status"
