#!/usr/bin/env bash
# report.sh OUT [SUFFIX]: the benchmark report from a run of run.sh:
# OUT/report SUFFIX.md (the targets, then each benchmark's medians) and, when
# gnuplot is installed, PNG plots beside it named after the Wasp paper's
# figures. SUFFIX is "" (full run) or "-quick". Reads OUT/{core,pool,ckpt,
# http,linux,apps,cc,migrate}SUFFIX.{csv,log}; a missing one is left out of
# the report.
# Exit status: 0 written, 1 nothing to report or a write failed, 2 usage.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: report.sh OUT [SUFFIX]" >&2; exit 2; }
out=$1 sfx=${2:-}
md=$out/report$sfx.md
csv() { echo "$out/$1$sfx.csv"; }
[ -f "$(csv core)" ] || { echo "report.sh: no $(csv core): run the suite first" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wasp-report-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# median of core.csv's row NAME (empty when absent)
core() { awk -F, -v n="$1" '$1 == n { print $2 }' "$(csv core)"; }

plots=()
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
# plot NAME TITLE YLABEL SCRIPT: gnuplot SCRIPT draws NAME.png (data in $tmp).
plot() {
	[ $have_gnuplot = 1 ] || return 0
	local png=$out/$1$sfx.png
	if gnuplot <<-EOF 2>"$tmp/gp.err"; then
		set terminal pngcairo size 800,480 noenhanced
		set output "$png"
		set title "$2"
		set ylabel "$3"
		set grid
		set key top left
		$4
	EOF
		plots+=("$1$sfx.png|$2")
	else
		echo "report.sh: gnuplot failed for $1: $(head -n 3 "$tmp/gp.err")" >&2
	fi
}

# Fig. 3: fib(20) by mode
for m in real protected long; do
	v=$(core fib20_${m}_mode)
	[ -n "$v" ] && echo "$m $v"
done >"$tmp/fig3.dat"
[ -s "$tmp/fig3.dat" ] && plot fig3_fib20_by_mode "fib(20) by entry mode (Wasp Fig. 3)" "microseconds (log)" \
	"set logscale y; set style fill solid; set boxwidth 0.6; unset key; plot '$tmp/fig3.dat' using 0:2:xtic(1) with boxes"

# Fig. 8: context creation
: >"$tmp/fig8.dat"
for n in vmrun_3b pthread_create_join fork_waitpid vfork_exec_true virtine_create_16m virtine_cycle; do
	v=$(core $n)
	[ -n "$v" ] && echo "$n $v" >>"$tmp/fig8.dat"
done
if [ -f "$(csv pool)" ]; then
	awk -F, '$1 == "pool3_get_run" || $1 == "pool3_get_run_put" { print $1, $2 }' "$(csv pool)" >>"$tmp/fig8.dat"
fi
[ -s "$tmp/fig8.dat" ] && plot fig8_context_creation "Creating an execution context (Wasp Fig. 8)" "microseconds (log)" \
	"set logscale y; set style fill solid; set boxwidth 0.6; unset key; set xtics rotate by -30; plot '$tmp/fig8.dat' using 0:2:xtic(1) with boxes"

# Fig. 11: fib(n), native vs virtine vs snapshot
for n in 0 5 10 15 20 25; do
	a=$(core fib${n}_native) b=$(core fib${n}_virtine) c=$(core fib${n}_virtine_snapshot)
	[ -n "$a" ] && echo "$n $a $b $c"
done >"$tmp/fig11.dat"
[ -s "$tmp/fig11.dat" ] && plot fig11_fib_n "fib(n): native, virtine, virtine from a snapshot (Wasp Fig. 11)" "microseconds (log)" \
	"set logscale y; set xlabel 'n'; plot '$tmp/fig11.dat' using 1:2 with linespoints title 'native', '' using 1:3 with linespoints title 'virtine (pool, no snapshot)', '' using 1:4 with linespoints title 'virtine + snapshot'"

# Fig. 12: start latency vs image size
awk -F, '$1 ~ /^image_[0-9]+(B|KiB|MiB)_(load_run|pool_call)$/ {
	split($1, p, "_"); s = p[2]; mult = 1
	if (s ~ /KiB$/) mult = 1024; else if (s ~ /MiB$/) mult = 1048576
	sub(/[A-Za-z]+$/, "", s); key = s * mult
	if ($1 ~ /load_run/) l[key] = $2; else c[key] = $2; keys[key] = 1 }
	END { for (k in keys) print k, l[k], c[k] }' "$(csv core)" | sort -n >"$tmp/fig12.dat"
[ -s "$tmp/fig12.dat" ] && plot fig12_image_size "Start latency vs image size (Wasp Fig. 12)" "microseconds (log)" \
	"set logscale xy; set xlabel 'image bytes'; plot '$tmp/fig12.dat' using 1:2 with linespoints title 'load + run on a virtine', '' using 1:3 with linespoints title 'call through a pool'"

# checkpoint restore vs guest size (full and mappable)
if [ -f "$(csv ckpt)" ]; then
	awk -F, 'NR > 1 { for (i = 1; i <= NF; i++) if ($i ~ /^restore_total_ms/) col = i }
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == "restore_total_ms") col = i; next }
		$2 == 100 && $4 == "mappable" { print $1, $col, "mappable" }
		$2 == 100 && $4 == "zstd" && $3 != 1 { print $1, $col, "zstd" }' "$(csv ckpt)" >"$tmp/ck.all"
	grep ' zstd$' "$tmp/ck.all" | sort -n >"$tmp/ck_z.dat"
	grep ' mappable$' "$tmp/ck.all" | sort -n >"$tmp/ck_m.dat"
	if [ -s "$tmp/ck_m.dat" ]; then
		script="set logscale xy; set xlabel 'guest MiB (100 % written)'; plot '$tmp/ck_m.dat' using 1:2 with linespoints title 'mappable, mapped'"
		[ -s "$tmp/ck_z.dat" ] && script="$script, '$tmp/ck_z.dat' using 1:2 with linespoints title 'zstd, read'"
		plot ckpt_restore "Restore from a local checkpoint vs guest size" "milliseconds (log)" "$script"
	fi
fi

# Figs. 4 and 13: the HTTP echo server, native vs a virtine per request
if [ -f "$(csv http)" ]; then
	awk -F, '$2 == "native" { n[$3] = $5; nt[$3] = $9 } $2 == "virtine" { v[$3] = $5; vt[$3] = $9; c[$3] = 1 }
		END { for (k in c) print k, n[k], v[k], nt[k], vt[k] }' "$(csv http)" | sort -n >"$tmp/http.dat"
	if [ -s "$tmp/http.dat" ]; then
		plot fig4_http_latency "HTTP echo: median latency per request (Wasp Fig. 4)" "microseconds (log)" \
			"set logscale y; set xlabel 'concurrent connections'; plot '$tmp/http.dat' using 1:2 with linespoints title 'native handler', '' using 1:3 with linespoints title 'virtine per request'"
		plot fig13_http_throughput "HTTP echo: throughput (Wasp Fig. 13)" "requests/s (log)" \
			"set logscale y; set xlabel 'concurrent connections'; plot '$tmp/http.dat' using 1:4 with linespoints title 'native handler', '' using 1:5 with linespoints title 'virtine per request'"
	fi
fi

# migration downtime, wasp vs QEMU
if [ -f "$(csv migrate)" ]; then
	awk -F, 'NR > 1 { k = $2 "MiB-" $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k } d[$1, k] = $6 }
		END { for (i = 1; i <= n; i++) { k = order[i]; printf "%s %s %s\n", k, d["wasp", k], (("qemu", k) in d) ? d["qemu", k] : "NaN" } }' \
		"$(csv migrate)" >"$tmp/mig.dat"
	script="set style data histograms; set style fill solid; set xtics rotate by -30; plot '$tmp/mig.dat' using 2:xtic(1) title 'wasp'"
	grep -qv 'NaN$' "$tmp/mig.dat" && script="$script, '' using 3 title 'QEMU/KVM'"
	grep -q 'NaN$' "$tmp/mig.dat" && sed -i 's/NaN$/0/' "$tmp/mig.dat"
	[ -s "$tmp/mig.dat" ] && plot migrate_downtime "Live-migration downtime over loopback" "milliseconds" "$script"
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
		"set style data histograms; set style histogram clustered gap 1; set style fill solid border -1; set yrange [0:*]; set key top right; set rmargin 12; set xtics rotate by -20; plot '$tmp/fig14.dat' using 2:xtic(1) title 'this run, mean', '' using 3 title 'this run, median', '' using 4 title 'paper, mean'"
	# Sec. 6.4: throughput by block size, native EVP calls and a virtine call per block
	awk -F, '$1 ~ /^aes_native_/ { n[$2] = $9; s[$2] = 1 } $1 ~ /^aes_virtine_/ { v[$2] = $9 }
		END { for (k in s) print k, n[k], v[k] }' "$(csv apps)" | sort -n >"$tmp/aes.dat"
	[ -s "$tmp/aes.dat" ] && plot sec64_aes "AES-128-CBC, one block per call (Wasp Sec. 6.4)" "1000s of bytes per second (log)" \
		"set logscale xy; set xlabel 'block bytes'; set xtics (16, 64, 256, 1024, 8192); plot '$tmp/aes.dat' using 1:2 with linespoints title 'native EVP calls', '' using 1:3 with linespoints title 'a virtine call per block (crypto --serve)'"
fi

# ---- the markdown ----------------------------------------------------------
{
	echo "# wasp benchmark report${sfx:+ (quick)}"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Medians; ratios are against baselines measured in the same run (tests/bench/README.md)."
	echo
	echo "## Targets"
	echo
	echo "| ratio | value | target | met |"
	echo "|---|---|---|---|"
	for n in core pool ckpt http linux apps cc migrate; do
		[ -f "$out/$n$sfx.log" ] && grep '^ratio ' "$out/$n$sfx.log"
	done | awk '{ v = $3; t = $0; sub(/.*\(/, "", t); sub(/\).*/, "", t)
		met = "-"; if (t ~ /^target /) { sub(/^target /, "", t); met = (v + 0 <= t + 0) ? "yes" : "no" }
		printf "| %s | %s | %s | %s |\n", $2, v, t, met }'
	echo
	for p in "${plots[@]}"; do
		echo "![${p#*|}](${p%%|*})"
	done
	[ $have_gnuplot = 1 ] || echo "(no plots: gnuplot is not installed; tests/bench/setup.sh installs it)"
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
	for n in core pool ckpt http linux apps cc migrate; do
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
