#!/usr/bin/env bash
# Installs every dependency of Strata from Debian 12 packages and builds
# Release into build/ (binaries in build/bin/). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  capnproto libcapnp-dev
  liburing-dev libspdlog-dev libfmt-dev libasio-dev
  libgtest-dev libgmock-dev
  libsentencepiece-dev sentencepiece libpcre2-dev libicu-dev
  libcurl4-openssl-dev nlohmann-json3-dev libssl-dev libcli11-dev
  clang libclang-rt-14-dev fio
  bible-kjv bible-kjv-text jq
  chromium chromium-driver
)
# Node.js and npm run the official openai client in the API's tests; a
# machine that has them already (from elsewhere) keeps its own.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch's BLAS: make sure OpenBLAS (pthread flavour) is the selected libblas.
if command -v update-alternatives >/dev/null; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    cand=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -n1 || true)
    [ -n "$cand" ] && { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO update-alternatives --set "$alt" "$cand" >/dev/null || true; }
  done
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache
cmake --build build -j "$(nproc)"

# The official openai client, for the API's tests (versions pinned by the lock file).
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
