#!/usr/bin/env bash
# setup.sh: install every Debian package wasp's build, tests and benchmarks
# need. Idempotent: when all are present it only asks dpkg and returns.
set -euo pipefail

packages=(
	gcc make cmake nasm pkg-config binutils
	protobuf-c-compiler libprotobuf-c-dev libzstd-dev
	libcurl4-openssl-dev libmicrohttpd-dev
	iproute2 procps openssl python3 libclang-dev strace
	musl-tools liblua5.4-dev # the static Linux programs of tests/linux/linux.cmake
	duktape-dev libsqlite3-dev libssl-dev # the workloads (docs/workloads.md)
	ceph-mon ceph-osd radosgw ceph-common curl # a real S3 server for s3:// (scripts/s3-server.sh)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
