#!/usr/bin/env bash
# test.sh - the README's second command: install, then build and run the whole
# test suite twice - a warnings-as-errors build and an AddressSanitizer+UBSan build -
# and fuzz the request path with libFuzzer for CRM_FUZZ_SECONDS (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
status=0
for type in RelWithDebInfo Asan; do
    dir="build-test-$type"
    echo "=== $type build ==="
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCRM_WERROR=ON >/dev/null
    cmake --build "$dir" -j"$(nproc)"
    echo "=== $type tests ==="
    (cd "$dir" && ctest --output-on-failure --timeout 300) || status=1
done
# libFuzzer on the request path (decode, authenticate, authorize, handlers, feed)
echo "=== fuzz: dispatch, ${CRM_FUZZ_SECONDS:=60} s ==="
dir=build-test-fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRM_FUZZ=ON -DCRM_WERROR=OFF >/dev/null
cmake --build "$dir" --target fuzz_dispatch -j"$(nproc)"
rm -rf "$dir/corpus" "$dir/tmp" && mkdir -p "$dir/corpus" "$dir/tmp"
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
