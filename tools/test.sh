#!/usr/bin/env bash
# test.sh - the README's second command: install, then build and run the whole
# test suite twice: a warnings-as-errors build and an AddressSanitizer+UBSan build.
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
if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED" >&2
fi
exit "$status"
