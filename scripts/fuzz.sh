#!/usr/bin/env bash
# fuzz.sh [--ci] [SECONDS] [TARGET...]: build the libFuzzer targets of
# tests/fuzz/ with clang (-fsanitize=fuzzer,address,undefined) in
# build-fuzz/, make their seed corpora from real checkpoints, and run each
# target for SECONDS (default 60; --ci: 40, about 4 minutes for all).
# Corpora grow in build-fuzz/corpus/TARGET; a crash, leak or hang is saved
# in build-fuzz/artifacts/TARGET/ and fails the run: fix it, then copy the
# input to tests/fuzz/regressions/TARGET/ so ctest replays it for good
# (docs/security.md, "Fuzzing").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" || exit 1

secs=60
if [ "${1:-}" = "--ci" ]; then
	secs=40
	shift
fi
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
all=(ckpt_decode ckpt_restore stream_chunks http_listen hypercall files_bundle syscall)
[ $# -gt 0 ] && targets=("$@") || targets=("${all[@]}")

# clang and its sanitizer runtimes (libFuzzer lives in libclang-rt-*-dev).
if ! command -v clang >/dev/null || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
	clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	echo "fuzz: installing clang"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	ver=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]*\).*/\1/p' | head -1)
	$sudo apt-get install -y -qq --no-install-recommends clang ${ver:+libclang-rt-$ver-dev} >/dev/null ||
		{ echo "fuzz: cannot install clang"; exit 1; }
fi

build=$root/build-fuzz
# clang lacks gcc's -Wno-format-truncation, and calls the kvm_msrs header
# inside a struct (gnu11, on purpose) an extension.
clang_flags="-Wno-unknown-warning-option -Wno-gnu-variable-sized-type-not-at-end"
echo "== building the fuzz targets in $build"
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWASP_SANITIZE=ON \
	-DWASP_FUZZ=ON -DCMAKE_C_FLAGS="$clang_flags" >/dev/null || { echo "fuzz: configure failed"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target fuzz_all >/dev/null ||
	{ echo "fuzz: build failed"; cmake --build "$build" --target fuzz_all 2>&1 | grep -m20 error; exit 1; }

out=$build/tests/fuzz
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rm -rf "$out/seeds"
"$out/fuzz_make_seeds" "$build/tests/asm" "$build/guest" "$out/seeds" >/dev/null
[ $? -eq 0 ] || echo "fuzz: no checkpoint seeds (no /dev/kvm?): decoders start from the others"

failed=() skipped=()
for t in "${targets[@]}"; do
	corpus=$build/corpus/$t art=$build/artifacts/$t
	mkdir -p "$corpus" "$art" "$out/seeds/$t"
	dirs=("$corpus" "$out/seeds/$t")
	[ -d "$root/tests/fuzz/regressions/$t" ] && dirs+=("$root/tests/fuzz/regressions/$t")
	echo "== fuzz_$t for ${secs}s"
	# -timeout: one input taking this long is a hang; -rss_limit_mb: a
	# guest's memory may be mapped, little of it is ever touched.
	"$out/fuzz_$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 \
		-max_len=1048576 -print_final_stats=1 -artifact_prefix="$art/" \
		"${dirs[@]}" >"$build/fuzz-$t.log" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then
		# A target that needs a virtine, on a host without /dev/kvm.
		echo "fuzz_$t skipped: $(grep -m1 -v '^#' "$build/fuzz-$t.log")"
		skipped+=("$t")
		continue
	fi
	grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/fuzz-$t.log" | tr '\n' ' '
	echo
	if [ $rc -ne 0 ]; then
		echo "fuzz_$t FAILED (exit $rc); artifacts in $art; the log's end:"
		grep -v '^#' "$build/fuzz-$t.log" | tail -n 25
		failed+=("$t")
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${#failed[@]} failed: ${failed[*]}"
	exit 1
fi
echo "fuzz: $((${#targets[@]} - ${#skipped[@]})) targets ran ${secs}s each without a finding${skipped[*]:+; skipped without KVM: ${skipped[*]}}"
