#!/usr/bin/env bash
# bench_qemu_ckpt.sh [--quick] [--runs N] [--sizes "64"] [--csv PATH]
# [--require-qemu]: QEMU/KVM's checkpoint to a file and restore, the peer of
# wasp-bench-ckpt's 100 % rows (README.md, "QEMU comparison"). Per run, a
# fresh QEMU boots qemu/touch_mb.bin, which fills its RAM with xorshift64
# words as touch.asm does; qemu/qemu_migrate.py --checkpoint stops it,
# migrates it to a file, restores a fresh QEMU from the file and checks the
# guest runs on (its fill read back, its marks continuing). Prints each
# run, then the medians; report.sh sets them beside wasp's rows as the
# ratios ckpt_save_64MiB_full/qemu and restore_64MiB_full/qemu.
# Full: 5 runs of 64 MiB; quick: 2.
#
# QEMU runs with the first CPU model of WASP_QEMU_CPUS (default
# host,EPYC,Skylake-Client,qemu64) that boots the guest, named in a line
# "bench_qemu_ckpt: QEMU CPU model ...". When QEMU cannot run, a line
# "bench_qemu_ckpt: QEMU comparison FAILED: WHY" says so (report.sh puts it
# at the top of the report); with --require-qemu the exit status is then 1,
# else 0 (the quick suite does not fail for want of QEMU).
# Environment: WASP_QEMU (default qemu-system-x86_64), WASP_QEMU_CKPT_GUEST
# (touch_mb.bin; else nasm builds it here), WASP_QEMU_CPUS.
# Exit status: 0 done, 1 a run failed (or QEMU could not run and
# --require-qemu), 2 bad usage, 77 no usable /dev/kvm.
set -u

quick=0 runs='' csv='' need_qemu=0 sizes=64
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=${2:-}; shift ;;
	--sizes) sizes=${2:-}; shift ;;
	--csv) csv=${2:-}; shift ;;
	--require-qemu) need_qemu=1 ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench_qemu_ckpt: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$runs" ]; then
	if [ $quick = 1 ]; then runs=2; else runs=5; fi
fi
case $runs in ''|*[!0-9]*|0) echo "bench_qemu_ckpt: --runs wants a positive number" >&2; exit 2 ;; esac
for s in $sizes; do
	case $s in ''|*[!0-9]*) echo "bench_qemu_ckpt: --sizes: '$s' is not a number of MiB" >&2; exit 2 ;; esac
	[ "$s" -ge 4 ] || { echo "bench_qemu_ckpt: --sizes: $s MiB is too small for the guest" >&2; exit 2; }
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench_qemu_ckpt: SKIP: /dev/kvm is not available"; exit 77; }

here=$(cd "$(dirname "$0")" && pwd)
QEMU=${WASP_QEMU:-qemu-system-x86_64}
DRIVER=$here/qemu/qemu_migrate.py
cpus=${WASP_QEMU_CPUS:-host,EPYC,Skylake-Client,qemu64}
work=$(mktemp -d "${TMPDIR:-/tmp}/wasp-bench-qckpt-XXXXXX") || exit 1
pid=''
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Said on stdout, so it is in the log report.sh reads, not only on a terminal.
off() {
	echo "bench_qemu_ckpt: QEMU comparison FAILED: $*"
	[ $need_qemu = 1 ] && exit 1
	exit 0
}
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "${2:-$work/q.out}"; }

start=$(date +%s)
out=$(bash "$here/setup.sh" 2>&1) || off "${out##*$'\n'}"
[ -n "$out" ] && echo "$out"
command -v "$QEMU" >/dev/null 2>&1 || off "no $QEMU after set-up"
command -v python3 >/dev/null 2>&1 || off "no python3 (scripts/setup.sh installs it)"
guest=${WASP_QEMU_CKPT_GUEST:-}
if [ -z "$guest" ]; then
	guest=$work/touch_mb.bin
	nasm -f bin -I"$here/../asm/" -I"$here/qemu/" -o "$guest" "$here/qemu/touch_mb.asm" 2>"$work/nasm.err" ||
		off "nasm: $(head -n 1 "$work/nasm.err")"
fi
[ -s "$guest" ] || off "no guest image '$guest'"
echo "bench_qemu_ckpt: $runs run(s) per size, sizes $sizes MiB, RAM filled with xorshift64 words; $("$QEMU" --version | head -n 1)"
echo "  save    = QMP migrate exec:cat >FILE of the stopped guest until QEMU's exec child has written it and exited, + fsync of file and directory"
echo "  restore = QMP migrate-incoming exec:cat FILE into a started QEMU (-incoming defer) until its MIGRATION completed event"
echo "  (restore+start: the same from starting the QEMU process)"

samples=$work/samples # size save restore restore_process bytes filled save_fsync
: >"$samples"
mkdir -p "$work/q"
for ((r = 1; r <= runs; r++)); do
	for s in $sizes; do
		rm -rf "$work/q" && mkdir -p "$work/q"
		python3 "$DRIVER" --qemu "$QEMU" --kernel "$guest" --size "$s" --cpu "$cpus" --checkpoint \
			--work "$work/q" --timeout 300 >"$work/q.out" 2>"$work/q.err" &
		pid=$!
		wait "$pid"
		st=$? pid=''
		if [ $st -ne 0 ]; then
			# The first run finds the CPU model: none booting is QEMU not
			# running here, not a checkpoint that failed.
			[ -z "${cpu:-}" ] && off "QEMU/KVM cannot run a guest here (CPU models tried: $cpus): $(tail -n 1 "$work/q.err")"
			echo "bench_qemu_ckpt: FAIL: $s MiB, run $r: $(tail -n 1 "$work/q.err")" >&2
			exit 1
		fi
		if [ -z "${cpu:-}" ]; then
			cpu=$(json cpu) cpus=$cpu
			refused=$(sed -n 's/.*"cpu_refused": "\([^"]*\)".*/\1/p' "$work/q.out")
			echo "bench_qemu_ckpt: QEMU CPU model $cpu${refused:+ (refused: $refused)}"
		fi
		v="$s"
		for k in save_ms restore_ms restore_process_ms bytes filled_bytes save_fsync_ms; do
			x=$(json $k)
			case $x in ''|*[!0-9.e+-]*) echo "bench_qemu_ckpt: FAIL: no $k in $(cat "$work/q.out")" >&2; exit 1 ;; esac
			v="$v $x"
		done
		echo "$v" >>"$samples"
		printf '  qemu %4s MiB, run %d: save %8.1f ms (fsync %.1f)  restore %8.1f ms  restore+start %8.1f ms  file %.1f MiB\n' \
			"$s" "$r" "$(json save_ms)" "$(json save_fsync_ms)" "$(json restore_ms)" "$(json restore_process_ms)" \
			"$(awk -v b="$(json bytes)" 'BEGIN { printf "%.1f", b / 1048576 }')"
	done
done

# Medians [min-max] per size.
table=$(awk '
function med(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1; if (!(k in n)) order[++rows] = k; n[k]++; for (c = 2; c <= 7; c++) v[k, c, n[k]] = $c }
END {
	for (r = 1; r <= rows; r++) {
		k = order[r]; line = k " " n[k]
		for (c = 2; c <= 7; c++) {
			delete a; lo = ""; hi = ""
			for (i = 1; i <= n[k]; i++) { a[i] = v[k, c, i] + 0
				if (lo == "" || a[i] < lo) lo = a[i]; if (hi == "" || a[i] > hi) hi = a[i] }
			line = line " " med(a, n[k]) " " lo " " hi
		}
		print line
	}
}' "$samples")
echo
printf '%-6s %-4s %4s  %-24s %-24s %-24s %s\n' system MiB runs 'save ms med [min-max]' 'restore ms med [mm]' \
	'restore+start ms [mm]' 'file MiB'
while read -r size n sv svl svh rs rsl rsh rp rpl rph b _; do
	printf '%-6s %-4s %4s  %-24s %-24s %-24s %.1f\n' qemu "$size" "$n" \
		"$(printf '%.1f [%.1f-%.1f]' "$sv" "$svl" "$svh")" "$(printf '%.1f [%.1f-%.1f]' "$rs" "$rsl" "$rsh")" \
		"$(printf '%.1f [%.1f-%.1f]' "$rp" "$rpl" "$rph")" "$(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1048576 }')"
done <<<"$table"
if [ -n "$csv" ]; then
	{
		echo system,size_mib,runs,filled_bytes,bytes,save_ms,save_min_ms,save_max_ms,save_fsync_ms,restore_ms,restore_min_ms,restore_max_ms,restore_process_ms,cpu
		while read -r size n sv svl svh rs rsl rsh rp _ _ b _ _ f _ _ fs _ _; do
			printf 'qemu,%s,%s,%.0f,%.0f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%s\n' "$size" "$n" "$f" "$b" \
				"$sv" "$svl" "$svh" "$fs" "$rs" "$rsl" "$rsh" "$rp" "$cpu"
		done <<<"$table"
	} >"$csv" || { echo "bench_qemu_ckpt: cannot write $csv" >&2; exit 1; }
	echo "CSV: $csv"
fi
echo "bench_qemu_ckpt: done in $(($(date +%s) - start)) s"
