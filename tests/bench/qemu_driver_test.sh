#!/usr/bin/env bash
# qemu_driver_test.sh DRIVER TOUCH_MB_BIN: qemu/qemu_migrate.py --checkpoint
# under QEMU's TCG (no KVM needed; the bench itself always uses KVM): the
# CPU-model fallback (a model QEMU refuses, then one it runs, named in the
# JSON), a checkpoint to a file and a restore whose checks pass, and a
# list where no model runs failing with every refusal named.
# Exit status: 0 pass, 1 fail, 2 usage, 77 no qemu-system-x86_64 or python3.
set -uo pipefail
[ $# -eq 2 ] && [ -f "$1" ] && [ -s "$2" ] || { echo "usage: qemu_driver_test.sh DRIVER TOUCH_MB_BIN" >&2; exit 2; }
driver=$1 guest=$2
for c in qemu-system-x86_64 python3; do
	command -v $c >/dev/null 2>&1 || { echo "qemu_driver_test: SKIP: no $c (tests/bench/setup.sh installs QEMU)"; exit 77; }
done
t=$(mktemp -d "${TMPDIR:-/tmp}/wasp-qdrv-test-XXXXXX") || exit 1
trap 'rm -rf "$t"' EXIT
bad=0
fail() { echo "qemu_driver_test: FAIL: $*"; bad=1; }
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "$t/out"; }

# 16 MiB keeps TCG's fill short.
mkdir -p "$t/w"
if python3 "$driver" --accel tcg --cpu Bogus-Model,qemu64 --kernel "$guest" --size 16 --checkpoint \
	--work "$t/w" --timeout 120 >"$t/out" 2>"$t/err"; then
	[ "$(json cpu)" = qemu64 ] || fail "cpu '$(json cpu)', not qemu64"
	grep -q '"cpu_refused": "Bogus-Model: source QEMU exited with status 1: .*Bogus-Model' "$t/out" ||
		fail "the refused model is not named: $(cat "$t/out")"
	for k in save_ms restore_ms restore_process_ms bytes filled_bytes dest_marks; do
		case $(json $k) in ''|*[!0-9.e+-]*) fail "no number for $k: $(cat "$t/out")" ;; esac
	done
	# The fill from 1.125 MiB to QEMU's RAM top (128 KiB under 16 MiB).
	[ "$(json filled_bytes)" = $((16 * 1048576 - 0x120000 - 131072)) ] || fail "filled_bytes $(json filled_bytes)"
	[ "$(json bytes)" -ge "$(json filled_bytes)" ] || fail "a file of $(json bytes) bytes"
else
	fail "the checkpoint failed: $(tail -n 1 "$t/err")"
fi

# No model runs: a failure that names each refusal.
rm -rf "$t/w" && mkdir -p "$t/w"
if python3 "$driver" --accel tcg --cpu Bogus-A,Bogus-B --kernel "$guest" --size 16 --checkpoint \
	--work "$t/w" --timeout 60 >"$t/out" 2>"$t/err"; then
	fail "ran with no usable CPU model: $(cat "$t/out")"
else
	grep -q 'no CPU model ran the guest: Bogus-A: .*; Bogus-B: ' "$t/err" || fail "the refusals are not named: $(cat "$t/err")"
fi

[ $bad = 0 ] && echo "qemu_driver_test: pass"
exit $bad
