#!/usr/bin/env bash
# deps.sh - install every Debian 12 package OneView needs to build, test and run.
# Idempotent and non-interactive: installs only what is missing.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config git
    libzmq3-dev protobuf-c-compiler libprotobuf-c-dev librocksdb-dev
    libsodium-dev libutf8proc-dev libcmocka-dev libjansson-dev libcsv-dev libxlsxwriter-dev
    rocksdb-tools
    python3 procps util-linux strace
    clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#PKGS[@]} packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
