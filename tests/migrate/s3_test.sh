#!/bin/bash
# s3:// checkpoints against a real S3 server (Ceph RGW on loopback, from
# scripts/s3-server.sh). Usage: s3_test.sh CASE: test_s3's cases (the
# library, no KVM) or ckpt_CASE (s3_ckpt_test.sh: virtines through the
# tools). The shared server is
# started once per run by the s3.server fixture (s3_test.sh start/stop);
# cases that kill the server start their own. Skips (77) where radosgw
# cannot be installed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../scripts/s3-server.sh
# The server's files hold its daemons' Unix sockets: they go under /tmp
# (a build directory may be too deep for a socket's 108-byte path, or on
# a file system without sockets, as 9p is), one per build directory.
shared=${TMPDIR:-/tmp}/wasp-s3-$(printf %s "${WASP_S3_SHARED:?set by tests/migrate/s3.cmake}" | md5sum | cut -c1-12)
case=$1

case "$case" in
start)
	"$script" stop "$shared"
	exec "$script" start "$shared" wasp ;;
stop)
	exec "$script" stop "$shared" ;;
esac

# Virtines need KVM: say so before starting a server of their own.
case "$case" in
ckpt_*) [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; } ;;
esac
dir=$shared
own=
if [ "$case" = server_killed ] || [ "$case" = ckpt_server_killed ]; then
	dir=$(mktemp -d /tmp/wasp-s3-own.XXXXXX)
	own=$dir
	trap '"$script" stop "$own"' EXIT
	"$script" start "$dir" wasp || exit $?
fi
if [ ! -f "$dir/env" ]; then
	echo "SKIP: no S3 server (s3.server did not start one: radosgw missing?)"
	exit 77
fi
# shellcheck disable=SC1091
. "$dir/env"
export WASP_S3_DIR=$dir WASP_S3_SCRIPT=$script
# Virtines through the tools (KVM): s3_ckpt_test.sh.
case "$case" in
ckpt_*) "$here/s3_ckpt_test.sh" "${case#ckpt_}"; exit $? ;;
esac
"${WASP_TEST_S3:?set by tests/migrate/s3.cmake}" "$case" || exit 1
if [ "$case" = abandon ]; then
	# Given up uploads were aborted: none is left behind for the key.
	uploads=$(curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$AWS_ENDPOINT_URL/wasp?uploads=") || exit 1
	if grep -q "<Key>abandon</Key>" <<<"$uploads"; then
		echo "FAIL: an abandoned upload of 'abandon' is still open at the server"
		exit 1
	fi
fi
