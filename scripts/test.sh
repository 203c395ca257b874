#!/usr/bin/env bash
# test.sh [--sanitize]: set up, build and run the whole test suite on real
# KVM. --sanitize builds with AddressSanitizer + UBSan in build-asan/.
# Ends with the line "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" || exit 1

build=$root/build
opts=()
if [ "${1:-}" = "--sanitize" ]; then
	build=$root/build-asan
	opts=(-DWASP_SANITIZE=ON)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
echo "== building in $build"
"$root/scripts/build.sh" "$build" "${opts[@]}" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

cd "$build"
ctest --output-on-failure -j2 --timeout 300 2>&1 | tee ctest.log
status=${PIPESTATUS[0]}
passed=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* +Passed' ctest.log)
skipped=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*Skipped' ctest.log)
# Everything else that ended (***Failed, ***Timeout, ***Exception, ...);
# a skip is written "***Skipped" too, so it must not count here.
ran=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: ' ctest.log)
failed=$((ran - passed - skipped))
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
