#!/usr/bin/env bash
# setup.sh: install what only the benchmarks need, beyond scripts/setup.sh:
# qemu-system-x86 (and nasm), for bench_migrate.sh's QEMU/KVM comparison,
# and gnuplot-nox for the report's plots (report.sh).
# Idempotent: when both are present it only asks dpkg and returns. The test
# suite never runs this; nothing in it needs QEMU.
# Exit status: 0 installed, 1 it could not install (one line on stderr).
set -uo pipefail

packages=(qemu-system-x86 nasm gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "bench setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
	sudo="sudo -n"
fi
command -v apt-get >/dev/null 2>&1 || { echo "bench setup: no apt-get to install ${missing[*]}" >&2; exit 1; }
echo "bench setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp "${TMPDIR:-/tmp}/wasp-bench-setup-XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	echo "bench setup: apt-get could not install ${missing[*]}: $(grep -E '^(E|W):' "$log" | tail -n 1)" >&2
	exit 1
fi
exit 0
