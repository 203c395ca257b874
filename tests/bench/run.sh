#!/usr/bin/env bash
# run.sh [--quick]: the whole benchmark suite, as the `bench` and
# `bench-quick` targets run it (tests/bench/README.md). Each program's output
# goes to the terminal and to OUT/NAME[-quick].log, its numbers to
# OUT/NAME[-quick].csv; then report.sh writes OUT/report[-quick].md with the
# PNG plots beside it. Last, every target ratio of the run, one per line:
#   ratio <name> <value> (target <target>)
#
# Environment (the targets set it): WASP_BENCH_OUT (the output directory),
# WASP_BENCH_CORE, WASP_BENCH_CKPT, WASP_BENCH_POOL (programs), WASP_BENCH_HTTP,
# WASP_BENCH_LINUX, WASP_BENCH_APPS and WASP_BENCH_CC (optional),
# WASP_BENCH_MIGRATE (bench_migrate.sh) with the variables it reads;
# bench_qemu_ckpt.sh (beside this script) reads WASP_QEMU_CKPT_GUEST.
# A full run needs the QEMU comparison: when QEMU cannot run, the migrate
# and qemu_ckpt benchmarks fail (report.sh says why at the top of the
# report); a quick run only notes it.
# Exit status: 0 all ran, 1 a benchmark failed (the others still run),
# 2 bad usage.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

quick=0
case "${1:-}" in
--quick) quick=1 ;;
'') ;;
-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
esac
for v in WASP_BENCH_OUT WASP_BENCH_CORE WASP_BENCH_CKPT WASP_BENCH_POOL WASP_BENCH_MIGRATE; do
	[ -n "${!v:-}" ] || { echo "run.sh: set $v" >&2; exit 2; }
done
out=$WASP_BENCH_OUT
mkdir -p "$out" || exit 1
sfx='' qopt=()
if [ $quick = 1 ]; then sfx=-quick qopt=(--quick); fi

# Plots need gnuplot, the QEMU rows QEMU: both only for the benchmarks.
"$here/setup.sh" || echo "run.sh: the report will lack what setup.sh could not install"

failed=()
start=$(date +%s)
# one NAME CMD...: runs CMD (its stdout also to NAME.log).
one() {
	local name=$1
	shift
	echo "== $name: $*"
	"$@" | tee "$out/$name$sfx.log"
	local st=${PIPESTATUS[0]}
	[ "$st" -eq 0 ] || { echo "run.sh: $name failed (exit status $st)"; failed+=("$name"); }
}
one core "$WASP_BENCH_CORE" "${qopt[@]}" --csv "$out/core$sfx.csv"
one pool "$WASP_BENCH_POOL" "${qopt[@]}" --csv "$out/pool$sfx.csv"
# wasp-bench-ckpt's bucket rows go to a Ceph RGW on loopback (a real S3
# server that checks signatures, scripts/s3-server.sh), when it is installed;
# its keys reach wasp-bench-ckpt alone.
s3dir=$(mktemp -d "${TMPDIR:-/tmp}/wasp-bench-s3.XXXXXX")
s3opt=()
if "$here/../../scripts/s3-server.sh" start "$s3dir/s3" bench >"$out/s3-server$sfx.log" 2>&1; then
	s3opt=(--s3 s3://bench/ckpt)
else
	echo "run.sh: no S3 server ($out/s3-server$sfx.log): wasp-bench-ckpt runs without its bucket rows"
fi
if [ ${#s3opt[@]} -gt 0 ]; then
	one ckpt bash -c '. "$1" && shift && exec "$@"' - "$s3dir/s3/env" \
		"$WASP_BENCH_CKPT" "${qopt[@]}" "${s3opt[@]}" --csv "$out/ckpt$sfx.csv"
	"$here/../../scripts/s3-server.sh" stop "$s3dir/s3" >/dev/null 2>&1
else
	one ckpt "$WASP_BENCH_CKPT" "${qopt[@]}" --csv "$out/ckpt$sfx.csv"
fi
rm -rf "$s3dir"
if [ -n "${WASP_BENCH_HTTP:-}" ]; then
	one http "$WASP_BENCH_HTTP" "${qopt[@]}" --csv "$out/http$sfx.csv"
fi
if [ -n "${WASP_BENCH_LINUX:-}" ]; then
	one linux "$WASP_BENCH_LINUX" "${qopt[@]}" --csv "$out/linux$sfx.csv"
fi
if [ -n "${WASP_BENCH_APPS:-}" ]; then
	one apps "$WASP_BENCH_APPS" "${qopt[@]}" --csv "$out/apps$sfx.csv"
fi
if [ -n "${WASP_BENCH_CC:-}" ]; then
	one cc "$WASP_BENCH_CC" "${qopt[@]}" --csv "$out/cc$sfx.csv"
fi
# Quick: no QEMU migrations (its guests take a minute of their own), but
# its checkpoint rows (seconds), for the ckpt .../qemu ratios.
if [ $quick = 1 ]; then
	one migrate bash "$WASP_BENCH_MIGRATE" --quick --no-qemu --csv "$out/migrate$sfx.csv"
	one qemu_ckpt bash "$here/bench_qemu_ckpt.sh" --quick --csv "$out/qemu_ckpt$sfx.csv"
else
	one migrate bash "$WASP_BENCH_MIGRATE" --require-qemu --csv "$out/migrate$sfx.csv"
	one qemu_ckpt bash "$here/bench_qemu_ckpt.sh" --require-qemu --csv "$out/qemu_ckpt$sfx.csv"
fi

# report.sh also writes the ratios between benchmarks (wasp's checkpoint
# rows over QEMU's) to vs_qemu.log, and the comparison's failures first.
WASP_BENCH_FAILED="${failed[*]}" "$here/report.sh" "$out" "$sfx" || failed+=(report)
echo
echo "== the suite's targets ($(($(date +%s) - start)) s; report: $out/report$sfx.md)"
for n in core pool ckpt http linux apps cc migrate qemu_ckpt vs_qemu; do
	[ -f "$out/$n$sfx.log" ] && grep '^ratio ' "$out/$n$sfx.log"
done
# Last words, where they are seen: a comparison that did not run.
cat "$out/migrate$sfx.log" "$out/qemu_ckpt$sfx.log" 2>/dev/null | grep 'QEMU comparison FAILED' | sort -u
if [ ${#failed[@]} -gt 0 ]; then
	echo "run.sh: failed: ${failed[*]}"
	exit 1
fi
exit 0
