#!/usr/bin/env bash
# demo.sh: set up, build, and run the demo virtine: a C function in its own
# KVM virtual machine that prints and returns a value.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
echo "== building wasp"
"$root/scripts/build.sh"
run=$root/build/tools/wasp-run
img=$root/build/guest/hello.bin

echo "== the three-byte virtine (out 0xFA, eax) exits 0:"
printf '\x66\xe7\xfa' >"$root/build/exit3.bin"
"$run" "$root/build/exit3.bin" && echo "   exit status $?"

echo "== a C virtine, entered directly in 64-bit ring 3:"
set +e
"$run" --stats "$img"
echo "   exit status $? (the value the virtine returned)"
echo "== the same image booted from 16-bit real mode by its own stub:"
"$run" --mode real "$img"
echo "   exit status $?"
echo "== fib(25) in a virtine:"
"$run" "$root/build/guest/fib64.bin" -- 25
