#!/usr/bin/env bash
# bench_migrate.sh [--quick] [--runs N] [--sizes "16 64"] [--csv PATH]
# [--no-qemu | --require-qemu]: live
# migration over loopback (docs/migration.md), for guests of 16, 64 and
# 256 MiB at a low and a high dirty rate: a source wasp-run running
# tests/asm/dirtier.asm, a receiver wasp-restore --listen 127.0.0.1:0, and
# wasp-migrate --json between them. Beside each wasp row, the same for a
# QEMU/KVM guest (qemu/dirtier_mb.asm, driven by qemu/qemu_migrate.py);
# setup.sh installs qemu-system-x86 first. --no-qemu: wasp rows only.
# QEMU runs with the first CPU model of WASP_QEMU_CPUS (default
# host,EPYC,Skylake-Client,qemu64) that boots its guest, named in a line
# "bench_migrate: QEMU CPU model ...". When QEMU cannot run, the wasp rows
# still run and a line "bench_migrate: QEMU comparison FAILED: WHY" says so
# (report.sh puts it at the top of the report); with --require-qemu (a full
# run.sh) that also makes the exit status 1.
# Full: 5 runs per row; quick: 1 run, 64 MiB only (the downtime target);
# --sizes picks the sizes (MiB, of 16 64 256).
#
# Environment (the `bench` / `bench-quick` targets set them): WASP_RUN,
# WASP_RESTORE, WASP_MIGRATE, WASP_DIRTIER (dirtier.bin); optional
# WASP_QEMU_GUEST (dirtier_mb.bin; else nasm builds it here) and WASP_QEMU
# (default qemu-system-x86_64).
# Exit status: 0 done, 1 a migration or a step failed (or, with
# --require-qemu, QEMU could not run), 2 bad usage,
# 77 no usable /dev/kvm. Docs: README.md beside this file.
set -u

quick=0 runs='' csv='' want_qemu=1 need_qemu=0 sizes=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--runs) runs=${2:-}; shift ;;
	--csv) csv=${2:-}; shift ;;
	--sizes) sizes=${2:-}; shift ;;
	--no-qemu) want_qemu=0 ;;
	--require-qemu) need_qemu=1 ;;
	-h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench_migrate: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$runs" ]; then
	if [ $quick = 1 ]; then runs=1; else runs=5; fi
fi
case $runs in ''|*[!0-9]*|0) echo "bench_migrate: --runs wants a positive number" >&2; exit 2 ;; esac
for v in WASP_RUN WASP_RESTORE WASP_MIGRATE WASP_DIRTIER; do
	[ -n "${!v:-}" ] && [ -e "${!v}" ] || { echo "bench_migrate: set $v (now '${!v:-}')" >&2; exit 2; }
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench_migrate: SKIP: /dev/kvm is not available"; exit 77; }

for s in $sizes; do
	case $s in 16|64|256) ;; *) echo "bench_migrate: --sizes: '$s' is not one of 16 64 256" >&2; exit 2 ;; esac
done
if [ -z "$sizes" ]; then
	if [ $quick = 1 ]; then sizes="64"; else sizes="16 64 256"; fi
fi
# dirty rate = the dirtier's region, rewritten pass after pass with fresh
# incompressible data: low 64 KiB, high 4 MiB (its maximum).
declare -A region=([low]=64 [high]=4096)
PASSES=1000000000 # never ends by itself: it is killed at the receiver

work=$(mktemp -d "${TMPDIR:-/tmp}/wasp-bench-mig-XXXXXX") || exit 1
export WASP_RUN_DIR=$work/run
unset WASP_MIGRATE_TOKEN
TOKEN=bench-token-$$-$RANDOM$RANDOM
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
	echo "bench_migrate: FAIL: $*" >&2
	local f
	for f in "$work"/*.err "$work"/mig.out; do
		[ -s "$f" ] && { echo "--- $(basename "$f") (tail)" >&2; tail -n 5 "$f" >&2; }
	done
	exit 1
}
# wait_until SECONDS CMD...: poll CMD every 50 ms, at most SECONDS.
wait_until() {
	local n=$(($1 * 20)) i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
# reap PID: kill -9 (if still alive) and collect it.
reap() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
# json KEY [FILE]: the value of KEY in a one-line JSON object (mig.out).
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "${2:-$work/mig.out}"; }

samples=$work/samples # system size dirty total downtime rounds bytes ratio pause
: >"$samples"

# one SIZE DIRTY RUN: one migration, its numbers appended to $samples.
one() {
	local size=$1 dirty=$2 run=$3 fill=$((($1 - 8) / 2))
	local tag="wasp $size MiB, $dirty, run $run"
	rm -rf "$work/src" "$work/dst" "$work"/*.out "$work"/*.err
	mkdir -p "$work/src" "$work/dst"
	"$WASP_RESTORE" --listen 127.0.0.1:0 --token "$TOKEN" --dir "$work/dst" \
		>"$work/dst.out" 2>"$work/dst.err" &
	local rcv=$!
	pids+=("$rcv")
	# The port: the kernel picks a free one (port 0) and the receiver names it.
	wait_until 10 grep -qs 'listening on' "$work/dst.err" || fail "$tag: the receiver did not start"
	local port
	port=$(sed -n 's/.*listening on .*:\([0-9]*\) .*/\1/p' "$work/dst.err")
	[ -n "$port" ] || fail "$tag: no port in '$(cat "$work/dst.err")'"
	local name=bench-$$-$size-$dirty-$run
	"$WASP_RUN" -m "${size}M" --name "$name" --allow=console_write,get_arg --dir "$work/src" \
		"$WASP_DIRTIER" -- $PASSES "${region[$dirty]}" "$fill" >"$work/src.out" 2>"$work/src.err" &
	local src=$!
	pids+=("$src")
	# Its first line ("pass 250") comes after the working set is filled.
	started() { [ -s "$work/src.out" ] || dead "$src"; }
	wait_until 120 started && alive "$src" || fail "$tag: no output from the guest"
	wait_until 10 test -S "$WASP_RUN_DIR/$src.sock" || fail "$tag: no control socket"
	local mrc=0
	timeout -k 5 180 "$WASP_MIGRATE" "$name" "http://127.0.0.1:$port" --token "$TOKEN" --json \
		>"$work/mig.out" 2>"$work/mig.err" || mrc=$?
	[ "$mrc" -eq 0 ] || fail "$tag: wasp-migrate exit status $mrc"
	[ "$(json outcome)" = migrated ] || fail "$tag: outcome '$(json outcome)'"
	# The source lets go ...
	wait_until 30 dead "$src" || fail "$tag: the source still runs after migrating"
	wait "$src"
	local src_rc=$?
	[ "$src_rc" -eq 0 ] || fail "$tag: the source exited $src_rc"
	grep -q '^wasp-run: migrated to .*; it runs there now$' "$work/src.err" ||
		fail "$tag: the source did not say it migrated"
	# ... and the receiver took it and runs it on.
	grep -q 'migration [0-9a-f]* from .*: running' "$work/dst.err" || fail "$tag: the receiver does not run it"
	alive "$rcv" || fail "$tag: the receiver died"
	# The guest's pause: the source's stop to the receiver letting it run
	# (one machine, one CLOCK_MONOTONIC), asked of the receiver while it
	# lives; the downtime runs on to the answer's arrival at the source.
	local stopped resumed pause
	stopped=$(json stopped_mono_ns)
	resumed=$(python3 -c 'import json, sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.load(u.urlopen(r, timeout=10))["resumed_mono_ns"])' \
		"http://127.0.0.1:$port/migrations/$(json id)" "$TOKEN" 2>"$work/status.err") ||
		fail "$tag: the receiver's status: $(tail -n 1 "$work/status.err")"
	case $stopped$resumed in ''|*[!0-9]*) fail "$tag: no stop or resume time ('$stopped', '$resumed')" ;; esac
	[ "$resumed" -gt "$stopped" ] || fail "$tag: resumed at $resumed, before the stop at $stopped"
	reap "$rcv"
	local v k
	v="wasp $size $dirty"
	for k in total_ms downtime_ms rounds bytes compression_ratio; do
		local x
		x=$(json $k)
		case $x in ''|*[!0-9.]*) fail "$tag: no number for $k in the JSON" ;; esac
		v="$v $x"
	done
	pause=$(awk -v a="$stopped" -v b="$resumed" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
	echo "$v $pause" >>"$samples"
	printf '  %-27s total %8.1f ms  downtime %6.1f ms  pause %6.1f ms  rounds %s\n' "$tag" \
		"$(json total_ms)" "$(json downtime_ms)" "$pause" "$(json rounds)"
}

# The QEMU/KVM comparison (README.md, "QEMU comparison"): qemu=1 once the
# package is there, the guest is built and a probe guest ran here.
qemu=0
QEMU=${WASP_QEMU:-qemu-system-x86_64}
DRIVER=$(cd "$(dirname "$0")" && pwd)/qemu/qemu_migrate.py
SETUP=$(cd "$(dirname "$0")" && pwd)/setup.sh
QGUEST_SRC=$(cd "$(dirname "$0")" && pwd)/qemu/dirtier_mb.asm
# Said on stdout, so it is in the log report.sh reads, not only on a terminal.
qemu_failed=''
qemu_off() { qemu_failed=$*; echo "bench_migrate: QEMU comparison FAILED: $*"; }
QCPUS=${WASP_QEMU_CPUS:-host,EPYC,Skylake-Client,qemu64}
qcpu=
# bg CMD...: CMD in the background, waited for, so a signal's trap runs at
# once and kills it with the rest (its QEMUs die with it).
bg() { "$@" & local p=$!; pids+=("$p"); wait "$p"; }
qemu_prepare() {
	local out
	if ! out=$(bash "$SETUP" 2>&1); then
		qemu_off "${out##*$'\n'}"
		return
	fi
	[ -n "$out" ] && echo "$out"
	command -v "$QEMU" >/dev/null 2>&1 || { qemu_off "no $QEMU after set-up"; return; }
	command -v python3 >/dev/null 2>&1 || { qemu_off "no python3 (scripts/setup.sh installs it)"; return; }
	qguest=${WASP_QEMU_GUEST:-}
	if [ -z "$qguest" ]; then
		qguest=$work/dirtier_mb.bin
		nasm -f bin -I"$(dirname "$0")/../asm/" -I"$(dirname "$0")/qemu/" -o "$qguest" "$QGUEST_SRC" 2>"$work/nasm.err" ||
			{ qemu_off "nasm: $(head -n 1 "$work/nasm.err")"; return; }
	fi
	[ -s "$qguest" ] || { qemu_off "no guest image '$qguest'"; return; }
	mkdir -p "$work/q"
	# Does QEMU/KVM run a guest here at all, and with which CPU model?
	# Boot one with each model in turn until one runs, then time its passes.
	local d cpus=$QCPUS
	for d in low high; do
		bg python3 "$DRIVER" --qemu "$QEMU" --kernel "$qguest" --size 16 --region "${region[$d]}" \
			--fill 4 --work "$work/q" --probe --cpu "$cpus" --timeout 120 >"$work/q.out" 2>"$work/q.err" ||
			{ qemu_off "QEMU/KVM cannot run a guest here (CPU models tried: $cpus): $(tail -n 1 "$work/q.err")"; return; }
		qrate[$d]=$(json passes_per_s "$work/q.out")
		if [ -z "$qcpu" ]; then
			qcpu=$(json cpu "$work/q.out")
			cpus=$qcpu
			local refused
			refused=$(sed -n 's/.*"cpu_refused": "\([^"]*\)".*/\1/p' "$work/q.out")
			echo "bench_migrate: QEMU CPU model $qcpu${refused:+ (refused: $refused)}"
		fi
	done
	"$QEMU" --version | head -n 1 | sed 's/^/bench_migrate: /'
	qemu=1
}
declare -A qrate wrate
# wasp_rate DIRTY: the wasp guest's passes per second, unmigrated, 16 MiB.
wasp_rate() {
	rm -f "$work/rate.out"
	mkdir -p "$work/rate"
	"$WASP_RUN" -m 16M --allow=console_write,get_arg --dir "$work/rate" \
		"$WASP_DIRTIER" -- $PASSES "${region[$1]}" 4 >"$work/rate.out" 2>"$work/rate.err" &
	local p=$!
	pids+=("$p")
	bg python3 "$DRIVER" --rate-file "$work/rate.out" --timeout 60 >"$work/q.out" 2>"$work/q.err" ||
		fail "the wasp guest's rate: $(tail -n 1 "$work/q.err")"
	reap "$p"
	wrate[$1]=$(json passes_per_s "$work/q.out")
}

# one_qemu SIZE DIRTY RUN: one QEMU/KVM migration (qemu/qemu_migrate.py
# checks it: completed, the destination runs the guest on where it
# stopped), its numbers appended to $samples.
one_qemu() {
	local size=$1 dirty=$2 run=$3 fill=$((($1 - 8) / 2))
	local tag="qemu $size MiB, $dirty, run $run"
	rm -f "$work"/q/*
	bg python3 "$DRIVER" --qemu "$QEMU" --kernel "$qguest" --size "$size" --region "${region[$dirty]}" \
		--fill "$fill" --downtime-ms 50 --cpu "$qcpu" --work "$work/q" --timeout 180 >"$work/q.out" 2>"$work/q.err" ||
		fail "$tag: $(tail -n 1 "$work/q.err")"
	local v="qemu $size $dirty" k x
	for k in total_ms downtime_ms rounds bytes ratio; do
		x=$(json $k "$work/q.out")
		case $x in ''|*[!0-9.]*) fail "$tag: no number for $k in $(cat "$work/q.out")" ;; esac
		v="$v $x"
	done
	# QEMU's downtime is already STOP to RESUME: its pause.
	echo "$v $(json downtime_ms "$work/q.out")" >>"$samples"
	printf '  %-27s total %8.1f ms  downtime %6.1f ms  rounds %s (syncs %s; QEMU says total %s ms, downtime %s ms)\n' \
		"$tag" "$(json total_ms "$work/q.out")" "$(json downtime_ms "$work/q.out")" \
		"$(json rounds "$work/q.out")" "$(json syncs "$work/q.out")" \
		"$(json qemu_total_ms "$work/q.out")" "$(json qemu_downtime_ms "$work/q.out")"
}

start=$(date +%s)
echo "bench_migrate: $runs run(s) per row, sizes $sizes MiB, dirty low (64 KiB region) / high (4 MiB region), loopback"
if [ $want_qemu = 1 ]; then
	qemu_prepare
else
	echo "bench_migrate: QEMU comparison not run (--no-qemu)"
fi
if [ $qemu = 1 ]; then
	# How closely the two guests match: passes per second, unmigrated.
	wasp_rate low
	wasp_rate high
	printf 'bench_migrate: guest passes/s unmigrated (16 MiB, best of 3 s): low wasp %.0f qemu %.0f, high wasp %.0f qemu %.0f\n' \
		"${wrate[low]}" "${qrate[low]}" "${wrate[high]}" "${qrate[high]}"
fi
# Rows in the inner loop, runs in the outer one: drift spreads over all rows.
for ((r = 1; r <= runs; r++)); do
	for s in $sizes; do
		for d in low high; do
			one "$s" "$d" "$r"
			[ $qemu = 1 ] && one_qemu "$s" "$d" "$r"
		done
	done
done

# The table: median [min-max] per row; the CSV: the medians.
table=$(awk '
function med(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 " " $2 " " $3; if (!(k in n)) order[++rows] = k; n[k]++
  for (c = 4; c <= 9; c++) v[k, c, n[k]] = $c }
END {
	for (r = 1; r <= rows; r++) {
		k = order[r]; line = k " " n[k]
		for (c = 4; c <= 9; c++) {
			delete a; lo = ""; hi = ""
			for (i = 1; i <= n[k]; i++) { a[i] = v[k, c, i] + 0
				if (lo == "" || a[i] < lo) lo = a[i]; if (hi == "" || a[i] > hi) hi = a[i] }
			line = line " " med(a, n[k]) " " lo " " hi
		}
		print line
	}
}' "$samples")

echo
printf '%-6s %-4s %-5s %4s  %-22s %-22s %-22s %-9s %-22s %s\n' system MiB dirty runs 'total ms med [min-max]' \
	'downtime ms med [mm]' 'pause ms med [mm]' rounds 'MiB sent med [min-max]' 'ratio med [mm]'
while read -r sys size dirty n t tl th d dl dh ro rol roh b bl bh q ql qh p pl ph; do
	printf '%-6s %-4s %-5s %4s  %-22s %-22s %-22s %-9s %-22s %s\n' "$sys" "$size" "$dirty" "$n" \
		"$(printf '%.1f [%.1f-%.1f]' "$t" "$tl" "$th")" \
		"$(printf '%.1f [%.1f-%.1f]' "$d" "$dl" "$dh")" \
		"$(printf '%.1f [%.1f-%.1f]' "$p" "$pl" "$ph")" \
		"$(printf '%g [%g-%g]' "$ro" "$rol" "$roh")" \
		"$(awk -v m="$b" -v l="$bl" -v h="$bh" 'BEGIN { printf "%.1f [%.1f-%.1f]", m / 1048576, l / 1048576, h / 1048576 }')" \
		"$(printf '%.2f [%.2f-%.2f]' "$q" "$ql" "$qh")"
done <<<"$table"

# Issue 5's target: the downtime of a 64 MiB guest at the low rate, in ms
# (a value, not a ratio, but printed in the suite's one format).
awk '$1 == "wasp" && $2 == 64 && $3 == "low" { printf "ratio migrate_downtime_64MiB_low_ms %.2f (target 2)\n", $8
	printf "ratio migrate_pause_64MiB_low_ms %.2f (for comparison)\n", $20 }' <<<"$table"

# wasp / qemu per size and rate, from the medians (below 1: wasp is faster).
if [ $qemu = 1 ]; then
	echo
	awk '{ k = $2 " MiB " $3; t[$1, k] = $5; d[$1, k] = $8; p[$1, k] = $20; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
	END { for (i = 1; i <= n; i++) { k = order[i]
		if ((("qemu", k) in t) && t["qemu", k] > 0 && d["qemu", k] > 0)
			printf "wasp / qemu, %-12s downtime %.2fx, pause %.2fx, total %.2fx\n", k ":",
				d["wasp", k] / d["qemu", k], p["wasp", k] / d["qemu", k], t["wasp", k] / t["qemu", k] } }' <<<"$table"
fi

if [ -n "$csv" ]; then
	{
		echo system,size_mib,dirty,runs,total_ms,downtime_ms,rounds,bytes,ratio,pause_ms
		while read -r sys size dirty n t _ _ d _ _ ro _ _ b _ _ q _ _ p _ _; do
			printf '%s,%s,%s,%s,%.3f,%.3f,%g,%.0f,%.3f,%.3f\n' "$sys" "$size" "$dirty" "$n" "$t" "$d" "$ro" "$b" "$q" "$p"
		done <<<"$table"
	} >"$csv" || { echo "bench_migrate: cannot write $csv" >&2; exit 1; }
	echo "CSV: $csv"
fi
echo "bench_migrate: done in $(($(date +%s) - start)) s"
if [ -n "$qemu_failed" ]; then
	echo "bench_migrate: QEMU comparison FAILED: $qemu_failed"
	[ $need_qemu = 1 ] && exit 1
fi
exit 0
