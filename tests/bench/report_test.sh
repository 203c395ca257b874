#!/usr/bin/env bash
# report_test.sh REPORT_SH: report.sh on made-up CSVs and logs (no KVM):
# the wasp/QEMU checkpoint ratios come from the right rows and columns, the
# report's first lines say whether the QEMU comparison ran and with which
# CPU model, and a full run without QEMU rows says FAILED there even when
# no log complains. Exit status: 0 pass, 1 fail, 2 usage.
set -uo pipefail
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: report_test.sh REPORT_SH" >&2; exit 2; }
report=$1
t=$(mktemp -d "${TMPDIR:-/tmp}/wasp-report-test-XXXXXX") || exit 1
trap 'rm -rf "$t"' EXIT
bad=0
fail() { echo "report_test: FAIL: $*"; bad=1; }
# has FILE TEXT [LINES]: FILE holds TEXT (in its first LINES lines).
# (grep without -q reads to the end: -q would stop at the match, and head,
# still writing, would die of SIGPIPE, which pipefail counts as a failure;
# that made this test fail now and then on a loaded host.)
has() { head -n "${3:-100000}" "$1" | grep -F -- "$2" >/dev/null || fail "$(basename "$1") lacks '$2'${3:+ in its first $3 lines}"; }
hasnt() { ! grep -qF -- "$2" "$1" || fail "$(basename "$1") has '$2'"; }

# wasp-bench-ckpt's CSV as it writes it: the 64 MiB x 100 % grid row first,
# then the threads=1 row of the same size (which the ratios must not use).
ckpt_csv() {
	local ph="pause capture compress write save_total sync save_file save_buffer read decompress apply restore_total resume restore_call" p h
	h="size_mib,touched_pct,threads,format,iterations,touched_pages,ckpt_pages,bytes,ratio,fill_ms"
	for p in $ph; do h="$h,${p}_ms,${p}_p10_ms,${p}_p90_ms"; done
	echo "$h"
	row() { # SIZE PCT THREADS FORMAT SAVE_FILE RESTORE_CALL
		local v="$1,$2,$3,$4,7,100,100,1000,1.0,10" q
		for p in $ph; do
			case $p in save_file) q=$5 ;; restore_call) q=$6 ;; *) q=1 ;; esac
			v="$v,$q,$q,$q"
		done
		echo "$v"
	}
	row 16 100 2 zstd 30 12
	row 64 100 2 zstd 100 50
	row 64 100 1 zstd 400 300
	row 256 100 2 mappable 900 20
}
qemu_csv() {
	echo system,size_mib,runs,filled_bytes,bytes,save_ms,save_min_ms,save_max_ms,save_fsync_ms,restore_ms,restore_min_ms,restore_max_ms,restore_process_ms,cpu
	echo qemu,64,5,65798144,66415506,200.000,190.000,210.000,5.000,125.000,120.000,130.000,400.000,EPYC
}
mig_csv() {
	echo system,size_mib,dirty,runs,total_ms,downtime_ms,rounds,bytes,ratio,pause_ms
	echo wasp,64,low,5,86.000,3.600,3,50000000,1.900,3.000
	[ "${1:-}" = wasp ] || echo qemu,64,low,5,95.000,13.000,1,100000000,1.000,13.000
}

# 1. A full run with QEMU: the ratios, and who ran with what.
o=$t/full
mkdir -p "$o"
ckpt_csv >"$o/ckpt.csv"; qemu_csv >"$o/qemu_ckpt.csv"; mig_csv >"$o/migrate.csv"
printf 'bench_migrate: QEMU CPU model EPYC (refused: host: source QEMU died of signal 6: x)\nbench_migrate: QEMU emulator version 7.2.22\n' >"$o/migrate.log"
echo 'bench_qemu_ckpt: QEMU CPU model EPYC' >"$o/qemu_ckpt.log"
bash "$report" "$o" >"$t/out" 2>&1 || fail "report.sh exited $? ($(tail -n 1 "$t/out"))"
has "$o/vs_qemu.log" "ratio ckpt_save_64MiB_full/qemu 0.50 (target 0.6)"
has "$o/vs_qemu.log" "ratio restore_64MiB_full/qemu 0.40 (target 0.5)"
has "$t/out" "ratio restore_64MiB_full/qemu 0.40 (target 0.5)"
has "$o/report.md" "| ckpt_save_64MiB_full/qemu | 0.50 | 0.6 | yes |"
has "$o/report.md" "QEMU comparison ran" 8
has "$o/report.md" "- bench_migrate: CPU model EPYC (refused: host: source QEMU died of signal 6: x)" 12
hasnt "$o/report.md" "FAILED"

# 2. A full run where QEMU could not run: FAILED first, with the reason.
o=$t/nofull
mkdir -p "$o"
ckpt_csv >"$o/ckpt.csv"; mig_csv wasp >"$o/migrate.csv"
echo 'bench_migrate: QEMU comparison FAILED: QEMU/KVM cannot run a guest here: kvm_buf_set_msrs' >"$o/migrate.log"
WASP_BENCH_FAILED="migrate qemu_ckpt" bash "$report" "$o" >"$t/out" 2>&1 || fail "report.sh exited $? ($(tail -n 1 "$t/out"))"
has "$o/report.md" "**FAILED: the QEMU comparison did not run.**" 6
has "$o/report.md" "bench_migrate: QEMU/KVM cannot run a guest here: kvm_buf_set_msrs" 10
has "$o/report.md" "qemu_ckpt.csv has no QEMU rows" 12
has "$o/report.md" "**FAILED benchmarks: migrate qemu_ckpt**" 16
[ -s "$o/vs_qemu.log" ] && fail "ratios without QEMU rows: $(cat "$o/vs_qemu.log")"

# 3. A full run whose logs say nothing: the missing rows alone are a failure.
o=$t/silent
mkdir -p "$o"
ckpt_csv >"$o/ckpt.csv"; mig_csv wasp >"$o/migrate.csv"; : >"$o/migrate.log"
bash "$report" "$o" >"$t/out" 2>&1 || fail "report.sh exited $? ($(tail -n 1 "$t/out"))"
has "$o/report.md" "**FAILED: the QEMU comparison did not run.**" 6
has "$o/report.md" "migrate.csv has no QEMU rows" 10

# 4. A quick run: no QEMU migrations by design, its checkpoint rows there.
o=$t/quick
mkdir -p "$o"
ckpt_csv >"$o/ckpt-quick.csv"; qemu_csv >"$o/qemu_ckpt-quick.csv"; mig_csv wasp >"$o/migrate-quick.csv"
echo 'bench_migrate: QEMU comparison not run (--no-qemu)' >"$o/migrate-quick.log"
echo 'bench_qemu_ckpt: QEMU CPU model host' >"$o/qemu_ckpt-quick.log"
bash "$report" "$o" -quick >"$t/out" 2>&1 || fail "report.sh exited $? ($(tail -n 1 "$t/out"))"
hasnt "$o/report-quick.md" "FAILED"
has "$o/report-quick.md" "(Quick: no QEMU migrations; QEMU's checkpoint rows only.)" 12
has "$o/vs_qemu-quick.log" "ratio ckpt_save_64MiB_full/qemu 0.50 (target 0.6)"

[ $bad = 0 ] && echo "report_test: pass"
exit $bad
