#!/usr/bin/env bash
# flake-check.sh [BUILD_DIR] [ROUNDS]: runs the whole test suite ROUNDS
# times (default 3) in a row while stress-ng keeps every CPU busy, and
# fails at the first round that fails: a test that depends on wall time
# rather than on the guest's progress shows here (issue 15, "tests that
# never flake"). Installs stress-ng (Debian) when it is missing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
[ -d "$build" ] && build=$(cd "$build" && pwd)
if ! command -v stress-ng >/dev/null; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get install -y -qq stress-ng >/dev/null || { echo "flake-check: cannot install stress-ng"; exit 1; }
fi
[ -f "$build/CTestTestfile.cmake" ] || { echo "flake-check: no build in $build (scripts/build.sh first)"; exit 1; }
stress-ng --cpu "$(nproc)" --timeout 0 --quiet &
load=$!
trap 'kill "$load" 2>/dev/null; wait 2>/dev/null' EXIT
for ((i = 1; i <= rounds; i++)); do
	log=$build/flake-check.$i.log
	(cd "$build" && ctest -j2 --timeout 600 >"$log" 2>&1)
	rc=$?
	echo "flake-check: round $i of $rounds under load: $(grep -E 'tests passed|tests failed' "$log" | tail -1)"
	if [ $rc -ne 0 ]; then
		grep -E '\*\*\*(Failed|Timeout|Exception)' "$log" | sed 's/^/  /'
		exit 1
	fi
done
echo "flake-check: $rounds rounds passed under load"
