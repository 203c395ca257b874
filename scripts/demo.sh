#!/usr/bin/env bash
# demo.sh: set up, build, and show the product: a virtine that is
# checkpointed while it runs, restored in a new process, and finishes with
# the same result as a run that was never interrupted; then a JavaScript
# engine in a virtine and a pool of them serving calls (docs/workloads.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
echo "== building wasp"
"$root/scripts/build.sh"
B=$root/build
run=$B/tools/wasp-run
work=$(mktemp -d /tmp/wasp-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== the three-byte virtine (out 0xFA, eax) exits 0:"
printf '\x66\xe7\xfa' >"$work/exit3.bin"
"$run" "$work/exit3.bin" && echo "   exit status $?"

echo "== a C virtine, entered directly in 64-bit ring 3, prints and returns 42:"
set +e
"$run" --stats "$B/guest/hello.bin"
echo "   exit status $?"
set -e

# counter: 40 steps of deterministic work; it keeps state in memory, a
# running hash, and appends each step to counter.log in its sandbox.
allow=console_write,get_arg,files
args=(-- 40 20000000)
mkdir "$work/ref" "$work/box"
echo "== an uninterrupted run of the counter virtine (for reference)"
set +e
"$run" --allow=$allow --dir "$work/ref" "$B/guest/counter.bin" "${args[@]}" >"$work/ref.out"
ref_status=$?
set -e
tail -n 1 "$work/ref.out"

echo "== the same virtine, checkpointed mid-run and stopped (wasp-ckpt --stop)"
"$run" --allow=$allow --dir "$work/box" --name wasp-demo "$B/guest/counter.bin" "${args[@]}" \
	>"$work/part1.out" &
pid=$!
# Wait until it is well under way, then take the checkpoint.
for _ in $(seq 200); do
	[ "$(wc -l <"$work/part1.out")" -ge 10 ] && break
	sleep 0.05
done
"$B/tools/wasp-ckpt" wasp-demo --stop -o "$work/demo.wckpt"
wait "$pid"
echo "   the first process printed $(wc -l <"$work/part1.out") lines and exited"
"$B/tools/wasp-inspect" "$work/demo.wckpt" | grep -E '^(checksum|  (rip|pages|ratio|console_bytes)|    - fd)'

echo "== restored in a new process (wasp-restore), it continues where it stopped:"
set +e
"$B/tools/wasp-restore" --stats --dir "$work/box" "$work/demo.wckpt" >"$work/part2.out"
status=$?
set -e
head -n 2 "$work/part2.out" | sed 's/^/   /'
echo "   ..."
tail -n 1 "$work/part2.out" | sed 's/^/   /'

cat "$work/part1.out" "$work/part2.out" >"$work/both.out"
if cmp -s "$work/both.out" "$work/ref.out" && cmp -s "$work/box/counter.log" "$work/ref/counter.log" &&
	[ "$status" -eq "$ref_status" ]; then
	echo "== same output, same counter.log, same exit status ($status) as the uninterrupted run"
else
	echo "== MISMATCH with the uninterrupted run" >&2
	exit 1
fi

# A real engine (docs/workloads.md), where its Debian package was there.
if [ -x "$B/examples/js" ]; then
	echo "== Duktape, a JavaScript engine, unmodified in a virtine; then a pool of them serving calls:"
	mkdir "$work/js"
	cat >"$work/js/app.js" <<-'EOF'
		function handle(s) { return s + ' -> ' + Duktape.enc('base64', s); }
		print('   hello from JavaScript in a virtine; 2^53 =', Math.pow(2, 53));
	EOF
	"$run" --dir "$work/js" "$B/examples/js" -- app.js
	printf 'virtine\ncheckpoint\n' | "$B/examples/serve" --dir "$work/js" "$B/examples/js" --serve app.js |
		sed 's/^/   /'
fi
