#!/usr/bin/env bash
# build.sh [BUILD_DIR] [cmake options...]: configure and build wasp, with
# warnings as errors (the project's own builds keep it warning-free; a
# plain `cmake` build, as a user makes, does not stop at a new warning).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWASP_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
