#!/usr/bin/env bash
# build-matrix.sh [COMPILER...]: builds wasp with each compiler (default:
# gcc and clang, those installed) in Debug, RelWithDebInfo and Release,
# warnings as errors, each in a scratch directory; CI runs it. Prints one
# line per build and ends with "N built, N failed". Exit 1 if any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
compilers=("$@")
[ ${#compilers[@]} -gt 0 ] || compilers=(gcc clang)
scratch=$(mktemp -d /tmp/wasp-matrix-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
built=0 failed=0
for cc in "${compilers[@]}"; do
	if ! command -v "$cc" >/dev/null; then
		echo "matrix: $cc is not installed: skipped"
		continue
	fi
	for type in Debug RelWithDebInfo Release; do
		dir=$scratch/$cc-$type
		start=$(date +%s)
		if CC=$cc cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=$type -DWASP_WERROR=ON >"$dir.log" 2>&1 &&
			cmake --build "$dir" -j"$(nproc)" >>"$dir.log" 2>&1; then
			echo "matrix: $cc $type: built in $(($(date +%s) - start)) s"
			built=$((built + 1))
		else
			echo "matrix: $cc $type: FAILED; the first errors:"
			grep -m 10 -E 'error|Error' "$dir.log" | sed 's/^/  /'
			failed=$((failed + 1))
		fi
		rm -rf "$dir"
	done
done
echo "$built built, $failed failed"
[ "$failed" -eq 0 ]
