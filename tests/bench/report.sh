#!/usr/bin/env bash
# report.sh OUT [SUFFIX]: the benchmark report from a run of run.sh:
# OUT/report SUFFIX.md (the targets, then each benchmark's medians) and, when
# gnuplot is installed, PNG plots beside it named after the Wasp paper's
# figures. SUFFIX is "" (full run) or "-quick". Reads OUT/{core,pool,ckpt,
# http,linux,apps,cc,migrate,qemu_ckpt}SUFFIX.{csv,log}; a missing one is
# left out of the report. Writes the ratios between two benchmarks (wasp's
# checkpoint rows over QEMU's) to OUT/vs_qemuSUFFIX.log and prints them.
# The report's first lines say whether the QEMU comparison ran, and with
# which CPU model; a full run without it is a failure, said there first.
# WASP_BENCH_FAILED (run.sh): the benchmarks that failed, also said there.
# Exit status: 0 written, 1 nothing to report or a write failed, 2 usage.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: report.sh OUT [SUFFIX]" >&2; exit 2; }
out=$1 sfx=${2:-}
md=$out/report$sfx.md
csv() { echo "$out/$1$sfx.csv"; }
found=0
for n in core pool ckpt http linux apps cc migrate qemu_ckpt; do
	[ -f "$(csv $n)" ] && found=1
done
[ $found = 1 ] || { echo "report.sh: no CSV of the suite in $out: run the suite first" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasp-report-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# median of core.csv's row NAME (empty when absent)
core() { [ -f "$(csv core)" ] && awk -F, -v n="$1" '$1 == n { print $2 }' "$(csv core)"; }

# ---- wasp over QEMU, from two benchmarks of this run ------------------------
# wasp-bench-ckpt's 64 MiB x 100 % row (the first one: the grid's, auto
# threads) against bench_qemu_ckpt.sh's 64 MiB: save_file (the whole
# wasp_ckpt_save_file() call of the paused guest: capture, compress, write,
# fsync, rename, fsync of the directory) over QEMU's save (migrate of the
# stopped guest to the file until written, fsync of file and directory);
# restore_call (open, wasp_ckpt_restore_file(): a new virtine, read,
# decompress, apply) over QEMU's restore (migrate-incoming into a started
# QEMU until completed). README.md, "QEMU comparison".
# col FILE NAME: the column number of NAME in FILE's header (empty if none).
col() { head -n 1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1; }
vs=$out/vs_qemu$sfx.log
: >"$vs" || exit 1
if [ -f "$(csv ckpt)" ] && [ -f "$(csv qemu_ckpt)" ]; then
	ws=$(col "$(csv ckpt)" save_file_ms) wr=$(col "$(csv ckpt)" restore_call_ms)
	qs=$(col "$(csv qemu_ckpt)" save_ms) qr=$(col "$(csv qemu_ckpt)" restore_ms)
	if [ -n "$ws" ] && [ -n "$wr" ] && [ -n "$qs" ] && [ -n "$qr" ]; then
		w=$(awk -F, -v s="$ws" -v r="$wr" '$1 == 64 && $2 == 100 && $4 == "zstd" { print $s, $r; exit }' "$(csv ckpt)")
		q=$(awk -F, -v s="$qs" -v r="$qr" '$2 == 64 { print $s, $r; exit }' "$(csv qemu_ckpt)")
		if [ -n "$w" ] && [ -n "$q" ]; then
			awk -v w="$w" -v q="$q" 'BEGIN { split(w, a, " "); split(q, b, " ")
				if (b[1] > 0) printf "ratio ckpt_save_64MiB_full/qemu %.2f (target 0.6)\n", a[1] / b[1]
				if (b[2] > 0) printf "ratio restore_64MiB_full/qemu %.2f (target 0.5)\n", a[2] / b[2]
				printf "(wasp save_file %.1f ms, restore_call %.1f ms; QEMU save %.1f ms, restore %.1f ms)\n", a[1], a[2], b[1], b[2] }' >"$vs"
		fi
	fi
fi
[ -s "$vs" ] && cat "$vs"

plots=()
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
# plot NAME TITLE YLABEL SCRIPT: gnuplot SCRIPT draws NAME.png (data in $tmp).
# Every axis starts at zero (y here; a numeric x in SCRIPT): a log axis or
# one cut at the smallest value shows ratios that are not there. Rows of
# very different sizes are bars with their values written on them; sizes
# that span orders of magnitude are categories on x, not a log scale.
plot() {
	[ $have_gnuplot = 1 ] || return 0
	local png=$out/$1$sfx.png
	if gnuplot <<-EOF 2>"$tmp/gp.err"; then
		set terminal pngcairo size 800,480 noenhanced
		set output "$png"
		set title "$2"
		set ylabel "$3"
		set yrange [0:*]
		set grid y
		set key below width 2
		set offsets 0, 0, graph 0.08, 0
		set datafile missing "NaN"
		$4
	EOF
		plots+=("$1$sfx.png|$2")
	else
		echo "report.sh: gnuplot failed for $1: $(head -n 3 "$tmp/gp.err")" >&2
	fi
}
# Bars with their values on top: one series, column 2 of FILE, labels column 1.
bars() {
	echo "set style fill solid; set boxwidth 0.6; unset key; set offsets 0.5, 0.5, graph 0.08, 0; ${2:-}
		plot '$1' using 0:2:xtic(1) with boxes, '' using 0:2:(\$2 >= 100 ? sprintf('%.0f', \$2) : sprintf('%.3g', \$2)) with labels offset 0,0.8"
}
# Clustered bars, one cluster per row of FILE (labels column 1), one series
# per column 2.. titled TITLES ("a|b|c"), each bar's value written on it
# (small bars beside large ones stay readable); a NaN leaves its bar out.
clusters() {
	local f=$1 titles=$2 extra=${3:-} i=2 n cmd='' lab='' t
	n=$(awk -F'|' '{ print NF }' <<<"$titles")
	local IFS='|'
	for t in $titles; do
		if [ $i = 2 ]; then cmd="'$f' using 2:xtic(1) title '$t'"; else cmd="$cmd, '' using $i title '$t'"; fi
		# gap 1: a cluster is n + 1 bar widths wide, centred on its index.
		lab="$lab, '' using (\$0 + ($i - 2 - ($n - 1) / 2.0) / ($n + 1)):$i:(column($i) >= 100 ? sprintf('%.0f', column($i)) : sprintf('%.3g', column($i))) with labels font ',8' offset 0,0.6 notitle"
		i=$((i + 1))
	done
	echo "set style data histograms; set style histogram clustered gap 1; set style fill solid border -1; $extra; plot $cmd$lab"
}

# Fig. 3: fib(20) by mode
for m in real protected long; do
	v=$(core fib20_${m}_mode)
	[ -n "$v" ] && echo "$m $v"
done >"$tmp/fig3.dat"
[ -s "$tmp/fig3.dat" ] && plot fig3_fib20_by_mode "fib(20) by entry mode (Wasp Fig. 3)" "microseconds" \
	"$(bars "$tmp/fig3.dat")"

# Fig. 8: context creation, wasp's beside the host's (threads, processes)
: >"$tmp/fig8.dat"
for n in vmrun_3b pthread_create_join fork_waitpid vfork_exec_true virtine_create_16m virtine_cycle; do
	v=$(core $n)
	[ -n "$v" ] && echo "$n $v" >>"$tmp/fig8.dat"
done
if [ -f "$(csv pool)" ]; then
	awk -F, '$1 == "pool3_get_run" || $1 == "pool3_get_run_put" { print $1, $2 }' "$(csv pool)" >>"$tmp/fig8.dat"
fi
[ -s "$tmp/fig8.dat" ] && plot fig8_context_creation "Creating an execution context (Wasp Fig. 8)" "microseconds" \
	"$(bars "$tmp/fig8.dat" "set xtics rotate by -30")"

# Fig. 11: fib(n), native vs virtine vs snapshot
for n in 0 5 10 15 20 25; do
	a=$(core fib${n}_native) b=$(core fib${n}_virtine) c=$(core fib${n}_virtine_snapshot)
	[ -n "$a" ] && echo "$n ${a:-NaN} ${b:-NaN} ${c:-NaN}"
done >"$tmp/fig11.dat"
[ -s "$tmp/fig11.dat" ] && plot fig11_fib_n "fib(n): native, virtine, virtine from a snapshot (Wasp Fig. 11)" "microseconds" \
	"$(clusters "$tmp/fig11.dat" "native|virtine (pool, no snapshot)|virtine + snapshot" "set xlabel 'n'")"

# Fig. 12: start latency vs image size (sizes as categories: they span
# bytes to MiB)
awk -F, '$1 ~ /^image_[0-9]+(B|KiB|MiB)_(load_run|pool_call)$/ {
	split($1, p, "_"); s = p[2]; mult = 1
	if (s ~ /KiB$/) mult = 1024; else if (s ~ /MiB$/) mult = 1048576
	name[s * mult] = s; sub(/[A-Za-z]+$/, "", s); key = s * mult
	if ($1 ~ /load_run/) l[key] = $2; else c[key] = $2; keys[key] = 1 }
	END { for (k in keys) print k, name[k], (k in l) ? l[k] : "NaN", (k in c) ? c[k] : "NaN" }' "$(csv core)" 2>/dev/null |
	sort -n | cut -d' ' -f2- >"$tmp/fig12.dat"
[ -s "$tmp/fig12.dat" ] && plot fig12_image_size "Start latency vs image size (Wasp Fig. 12)" "microseconds" \
	"$(clusters "$tmp/fig12.dat" "load + run on a virtine|call through a pool" "set xlabel 'image size'")"

# Checkpoint and restore of fully written memory: wasp beside QEMU
if [ -f "$(csv ckpt)" ]; then
	wr=$(col "$(csv ckpt)" restore_call_ms)
	qf=()
	[ -f "$(csv qemu_ckpt)" ] && qf=("$(csv qemu_ckpt)")
	# restore vs guest size, all memory written: compressed, mapped, QEMU
	awk -F, -v c="$wr" 'NR > 1 && $2 == 100 && ($4 == "zstd" || $4 == "mappable") && !(($1, $4) in v) {
			v[$1, $4] = $c; s[$1] = 1 }
		FILENAME != ARGV[1] && FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "restore_ms") qc = i }
		FILENAME != ARGV[1] && FNR > 1 && qc { q[$2] = $qc; s[$2] = 1 }
		END { for (k in s) printf "%d %s %s %s\n", k, ((k, "zstd") in v) ? v[k, "zstd"] : "NaN",
			((k, "mappable") in v) ? v[k, "mappable"] : "NaN", (k in q) ? q[k] : "NaN" }' \
		"$(csv ckpt)" "${qf[@]}" | sort -n |
		awk '{ $1 = $1 " MiB"; print }' | sed 's/^\([0-9]*\) MiB/"\1 MiB"/' >"$tmp/ck.dat"
	[ -s "$tmp/ck.dat" ] && plot ckpt_restore "Restore from a local checkpoint, all memory written" "milliseconds" \
		"$(clusters "$tmp/ck.dat" "wasp, compressed (restore_call)|wasp, mappable (restore_call)|QEMU migrate-incoming from a file" "set xlabel 'guest size'")"
	# save and restore of 64 MiB, wasp and QEMU side by side (report.sh's ratios)
	if [ -s "$vs" ]; then
		sed -n 's/^(wasp save_file \([0-9.]*\) ms, restore_call \([0-9.]*\) ms; QEMU save \([0-9.]*\) ms, restore \([0-9.]*\) ms)$/"save" \1 \3\n"restore" \2 \4/p' \
			"$vs" >"$tmp/ckq.dat"
		[ -s "$tmp/ckq.dat" ] && plot ckpt_vs_qemu "Checkpoint to a file and restore, 64 MiB fully written" "milliseconds" \
			"$(clusters "$tmp/ckq.dat" "wasp|QEMU/KVM (migrate to / from a file)")"
	fi
fi

# Figs. 4 and 13: the HTTP echo server, native vs a virtine per request
if [ -f "$(csv http)" ]; then
	awk -F, '$2 == "native" { n[$3] = $5; nt[$3] = $9 } $2 == "virtine" { v[$3] = $5; vt[$3] = $9; c[$3] = 1 }
		END { for (k in c) print k, n[k], v[k], nt[k], vt[k] }' "$(csv http)" | sort -n >"$tmp/http.dat"
	if [ -s "$tmp/http.dat" ]; then
		plot fig4_http_latency "HTTP echo: median latency per request (Wasp Fig. 4)" "microseconds" \
			"set xrange [0:*]; set xlabel 'concurrent connections'; plot '$tmp/http.dat' using 1:2 with linespoints title 'native handler', '' using 1:3 with linespoints title 'virtine per request'"
		plot fig13_http_throughput "HTTP echo: throughput (Wasp Fig. 13)" "requests/s" \
			"set xrange [0:*]; set xlabel 'concurrent connections'; plot '$tmp/http.dat' using 1:4 with linespoints title 'native handler', '' using 1:5 with linespoints title 'virtine per request'"
	fi
fi

# Live migration, wasp beside QEMU: downtime (and wasp's pause) and total
if [ -f "$(csv migrate)" ]; then
	awk -F, 'NR > 1 { k = $2 "MiB-" $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
			t[$1, k] = $5; d[$1, k] = $6; p[$1, k] = $10 }
		function g(a, s, k) { return ((s, k) in a) ? a[s, k] : "NaN" }
		END { for (i = 1; i <= n; i++) { k = order[i]
			printf "%s %s %s %s %s %s\n", k, g(d, "wasp", k), g(p, "wasp", k), g(d, "qemu", k), g(t, "wasp", k), g(t, "qemu", k) } }' \
		"$(csv migrate)" >"$tmp/mig.dat"
	# Without QEMU rows the plots say so in their titles.
	qnote=''
	awk '$4 != "NaN" { f = 1 } END { exit !f }' "$tmp/mig.dat" || qnote=' (NO QEMU ROWS: see the report)'
	cut -d' ' -f1-4 "$tmp/mig.dat" >"$tmp/mig_d.dat"
	cut -d' ' -f1,5,6 "$tmp/mig.dat" >"$tmp/mig_t.dat"
	[ -s "$tmp/mig.dat" ] && plot migrate_downtime "Live-migration downtime over loopback$qnote" "milliseconds" \
		"$(clusters "$tmp/mig_d.dat" "wasp downtime|wasp pause (guest stopped)|QEMU/KVM downtime (= its pause)" "set xtics rotate by -30")"
	[ -s "$tmp/mig.dat" ] && plot migrate_total "Live-migration total time over loopback$qnote" "milliseconds" \
		"$(clusters "$tmp/mig_t.dat" "wasp|QEMU/KVM" "set xtics rotate by -30")"
fi

# Fig. 14 and Sec. 6.4 (wasp-bench-apps). apps.csv: name,bytes,mean_us,
# median_us,p10_us,p90_us,min_us,samples,kB_per_s,exits,reset_us,
# reset_pages,paper_us.
if [ -f "$(csv apps)" ]; then
	# Fig. 14: each row's time over native, this run's (mean and median)
	# beside the paper's (means on its machine): absolute times differ
	# between machines, the shape should not.
	awk -F, '$1 == "fig14_native" { m = $3; d = $4 } $1 ~ /^fig14_/ { n[++k] = $1; a[k] = $3; b[k] = $4; p[k] = $13 }
		END { if (m > 0) for (i = 1; i <= k; i++) { l = n[i]; sub(/^fig14_/, "", l); gsub(/_/, " ", l)
			printf "\"%s\" %.3f %.3f %s\n", l, a[i] / m, b[i] / d, p[i] != "" ? sprintf("%.3f", p[i] / 419.5) : "NaN" } }' \
		"$(csv apps)" >"$tmp/fig14.dat"
	[ -s "$tmp/fig14.dat" ] && plot fig14_js "JavaScript virtines (Wasp Fig. 14): time per request / native Duktape" "x native (lower is faster)" \
		"$(clusters "$tmp/fig14.dat" "this run, mean|this run, median|paper, mean" "set xtics rotate by -20")"
	# Sec. 6.4: throughput by block size, native EVP calls and a virtine call per block
	awk -F, '$1 ~ /^aes_native_/ { n[$2] = $9; s[$2] = 1 } $1 ~ /^aes_virtine_/ { v[$2] = $9 }
		END { for (k in s) print k, n[k], (k in v) ? v[k] : "NaN" }' "$(csv apps)" | sort -n >"$tmp/aes.dat"
	[ -s "$tmp/aes.dat" ] && plot sec64_aes "AES-128-CBC, one block per call (Wasp Sec. 6.4)" "1000s of bytes per second" \
		"$(clusters "$tmp/aes.dat" "native EVP calls|a virtine call per block (crypto --serve)" "set xlabel 'block bytes'")"
fi

# ---- the markdown ----------------------------------------------------------
{
	echo "# wasp benchmark report${sfx:+ (quick)}"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Medians; ratios are against baselines measured in the same run (tests/bench/README.md)."
	echo
	cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
	# scripts/nested-kvm.sh's VM: its CPU, and the KVM in it, are emulated.
	case $cpu in
	*TCG*) echo "**Emulated: the CPU is \`$cpu\` (QEMU TCG, e.g. scripts/nested-kvm.sh): these numbers show that the rows run and are measured, not how fast wasp or QEMU is.**"; echo ;;
	esac
	# The QEMU comparison first: it must never vanish unnoticed.
	qfail=$(cat "$out/migrate$sfx.log" "$out/qemu_ckpt$sfx.log" 2>/dev/null |
		sed -n 's/^\(bench_[a-z_]*\): QEMU comparison FAILED: /\1: /p' | sort -u)
	if [ -z "$sfx" ]; then
		# A full run must show the peers: positive evidence, not the absence of a complaint.
		grep -qs '^qemu,' "$(csv migrate)" || qfail="$qfail${qfail:+$'\n'}migrate$sfx.csv has no QEMU rows"
	fi
	# Quick runs run bench_qemu_ckpt.sh too.
	if [ -z "$sfx" ] || [ -f "$out/qemu_ckpt$sfx.log" ]; then
		grep -qs '^qemu,' "$(csv qemu_ckpt)" || qfail="$qfail${qfail:+$'\n'}qemu_ckpt$sfx.csv has no QEMU rows"
	fi
	if [ -n "$qfail" ]; then
		if [ -z "$sfx" ]; then
			echo "**FAILED: the QEMU comparison did not run.** Its rows and ratios are missing from this report:"
		else
			echo "**No QEMU comparison in this quick run** (a full run fails for it). Its rows and ratios are missing:"
		fi
		echo
		sed 's/^/    /' <<<"$qfail"
		echo
	else
		qcpu=$(cat "$out/migrate$sfx.log" "$out/qemu_ckpt$sfx.log" 2>/dev/null |
			sed -n 's/^\(bench_[a-z_]*\): QEMU CPU model /- \1: CPU model /p')
		qver=$(cat "$out/migrate$sfx.log" "$out/qemu_ckpt$sfx.log" 2>/dev/null |
			grep -o 'QEMU emulator version [^ ]*' | head -n 1)
		if [ -n "$qcpu" ]; then
			echo "QEMU comparison ran: ${qver:-QEMU} with KVM."
			echo
			echo "$qcpu"
		fi
		grep -qs 'QEMU comparison not run (--no-qemu)' "$out/migrate$sfx.log" &&
			echo "(Quick: no QEMU migrations; QEMU's checkpoint rows only.)"
		echo
	fi
	if [ -n "${WASP_BENCH_FAILED:-}" ]; then
		echo "**FAILED benchmarks: ${WASP_BENCH_FAILED}** (their logs: $out)"
		echo
	fi
	echo "## Targets"
	echo
	echo "| ratio | value | target | met |"
	echo "|---|---|---|---|"
	for n in core pool ckpt http linux apps cc migrate qemu_ckpt vs_qemu; do
		[ -f "$out/$n$sfx.log" ] && grep '^ratio ' "$out/$n$sfx.log"
	done | awk '{ v = $3; t = $0; sub(/.*\(/, "", t); sub(/\).*/, "", t)
		met = "-"; if (t ~ /^target /) { sub(/^target /, "", t); met = (v + 0 <= t + 0) ? "yes" : "no" }
		printf "| %s | %s | %s | %s |\n", $2, v, t, met }'
	echo
	for p in "${plots[@]}"; do
		echo "![${p#*|}](${p%%|*})"
	done
	[ $have_gnuplot = 1 ] || echo "(no plots: gnuplot is not installed; tests/bench/setup.sh installs it)"
	if [ -s "$vs" ]; then
		echo
		echo "## wasp vs QEMU: checkpoint to a file and restore, 64 MiB fully written"
		echo
		echo "Medians of this run (tests/bench/README.md, \"QEMU comparison\"). wasp: save_file is the whole"
		echo "wasp_ckpt_save_file() call of the paused guest (capture, compress, write, fsync, rename, fsync of"
		echo "the directory); restore_call is open + wasp_ckpt_restore_file() (a new virtine, read, decompress,"
		echo "apply). QEMU: save is QMP \`migrate exec:cat > FILE\` of the stopped guest until QEMU's child has"
		echo "written the file and exited, plus fsync of the file and its directory; restore is QMP"
		echo "\`migrate-incoming exec:cat FILE\` into a started QEMU (\`-incoming defer\`) until it completes;"
		echo "its guest is then checked to run on (fill read back, marks continuing)."
		echo
		sed 's/^/    /' "$vs"
	fi
	# The paper's two application experiments as the paper tables them.
	if [ -f "$(csv apps)" ] && grep -q '^fig14_native,' "$(csv apps)"; then
		echo
		echo "## Fig. 14: JavaScript virtines"
		echo
		jsb=$(sed -n 's/.*strings of \([0-9]*\) bytes.*/\1/p' "$out/apps$sfx.log" 2>/dev/null | head -n 1)
		echo "One request: a Duktape heap with one native, a small JavaScript function that base64-encodes a string of ${jsb:-?} bytes, the result handed back (tests/bench/README.md). x = over native; the paper's means were measured on its machine."
		echo
		echo "| row | mean µs | x | median µs | x | exits | paper µs | paper x |"
		echo "|---|---|---|---|---|---|---|---|"
		awk -F, '$1 == "fig14_native" { m = $3; d = $4 } $1 ~ /^fig14_/ { n[++k] = $1; a[k] = $3; b[k] = $4; e[k] = $10; p[k] = $13 }
			END { for (i = 1; i <= k; i++) { l = n[i]; sub(/^fig14_/, "", l)
				printf "| %s | %.1f | %.2f | %.1f | %.2f | %s | %s | %s |\n", l, a[i], a[i] / m, b[i], b[i] / d,
					e[i] == "" ? "-" : e[i], p[i] == "" ? "-" : p[i], p[i] == "" ? "-" : sprintf("%.2f", p[i] / 419.5) } }' "$(csv apps)"
	fi
	if [ -f "$(csv apps)" ] && grep -q '^aes_native_' "$(csv apps)"; then
		echo
		echo "## Sec. 6.4: AES-128-CBC, one block per call"
		echo
		echo "As \`openssl speed\` prints it: 1000s of bytes per second, from the median time of one call (key and IV set every call)."
		echo
		awk -F, '$1 ~ /^aes_(native|virtine)_/ { k = $1; sub(/_[0-9]+$/, "", k); sub(/^aes_/, "", k); t[k, $2] = $9; u[k, $2] = $4; s[$2] = 1 }
			END { n = 0; for (b in s) z[++n] = b + 0
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (z[j] < z[i]) { x = z[i]; z[i] = z[j]; z[j] = x }
				printf "| type |"; for (i = 1; i <= n; i++) printf " %d bytes |", z[i]; printf "\n|---|"; for (i = 1; i <= n; i++) printf "---|"; printf "\n"
				split("native virtine", kinds, " ")
				for (j = 1; j <= 2; j++) { printf "| aes-128-cbc %s |", kinds[j]; for (i = 1; i <= n; i++) printf " %.2fk |", t[kinds[j], z[i]]; printf "\n" }
				printf "| µs per call, virtine |"; for (i = 1; i <= n; i++) printf " %.1f |", u["virtine", z[i]]; printf "\n"
				printf "| virtine / native |"; for (i = 1; i <= n; i++) printf " %.4f |", t["virtine", z[i]] / t["native", z[i]]; printf "\n" }' "$(csv apps)"
	fi
	for n in core pool ckpt qemu_ckpt http linux apps cc migrate; do
		f=$(csv $n)
		[ -f "$f" ] || continue
		echo
		echo "## $n ($(basename "$f"))"
		echo
		awk -F, 'NR == 1 { printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n|"; for (i = 1; i <= NF; i++) printf "---|"; printf "\n"; next }
			{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n" }' "$f"
	done
} >"$md" || { echo "report.sh: cannot write $md" >&2; exit 1; }
echo "report.sh: $md (${#plots[@]} plots)"
