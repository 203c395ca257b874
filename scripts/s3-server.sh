#!/bin/bash
# A throwaway S3 server on loopback: Ceph's RADOS Gateway (Debian 12's
# radosgw) over a one-monitor, one-OSD cluster that keeps its objects in
# memory (memstore). It checks SigV4 signatures as AWS does, so the tests
# and benchmarks of s3:// checkpoints run against a real S3 implementation.
#
#   scripts/s3-server.sh start DIR [BUCKET...]   start; DIR/env holds AWS_* for it
#   scripts/s3-server.sh stop DIR                stop it and remove DIR
#   scripts/s3-server.sh kill-gateway DIR        SIGKILL the gateway only (tests)
#   scripts/s3-server.sh restart-gateway DIR     start it again, wait until it answers
#
# DIR/env sets AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
# AWS_REGION (source it). Exits 77 when radosgw is not installed
# (scripts/setup.sh installs it). Root is not needed.
set -u
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|kill-gateway DIR [BUCKET...]" >&2; exit 2; }
shift 2

pidof_in() { [ -f "$dir/run/$1.pid" ] && cat "$dir/run/$1.pid" 2>/dev/null; }

# Stops a daemon: TERM, then KILL if it has not gone within 5 s (radosgw
# ignores TERM once its monitor is gone).
stop_daemon() {
	local pid
	pid=$(pidof_in "$1") || return 0
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}

stop_all() {
	stop_daemon client.rgw
	stop_daemon osd.0
	stop_daemon mon.a
}

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

# Waits (bounded) until the gateway answers a signed request.
wait_gateway() {
	# shellcheck disable=SC1091
	. "$dir/env"
	local s=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
		 -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
	for _ in $(seq 600); do
		curl -sf -o /dev/null "${s[@]}" "$AWS_ENDPOINT_URL/" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

case "$cmd" in
restart-gateway)
	radosgw -c "$dir/ceph.conf" -n client.rgw 2>>"$dir/log/setup.log" && wait_gateway
	exit ;;
stop)
	[ -d "$dir" ] || exit 0
	stop_all
	rm -rf "$dir"
	exit 0 ;;
kill-gateway)
	pid=$(pidof_in client.rgw) && kill -9 "$pid" 2>/dev/null
	exit 0 ;;
start) ;;
*) echo "$0: unknown command '$cmd'" >&2; exit 2 ;;
esac

for t in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl; do
	command -v "$t" >/dev/null || { echo "SKIP: $t is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common curl, or scripts/setup.sh)"; exit 77; }
done

start_once() {
	rm -rf "$dir"
	mkdir -p "$dir/mon" "$dir/osd0" "$dir/run" "$dir/log" || return 1
	local fsid osd_uuid mon_port rgw_port
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	mon_port=$(free_port) && rgw_port=$(free_port) || return 1
	cat > "$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd objectstore = memstore
memstore device bytes = 17179869184
osd crush chooseleaf type = 0
ms bind ipv6 = false
ms bind msgr2 = false
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
EOF
	local c=(-c "$dir/ceph.conf")
	# step NAME: what the start is doing, named when it fails (the
	# daemons' own stderr is mostly noise: one line of it is there on
	# every start, good or bad).
	step=monmap; monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null &&
	step="monitor mkfs"; ceph-mon "${c[@]}" -i a --mkfs --monmap "$dir/monmap" 2>>"$dir/log/setup.log" &&
	step="monitor start"; ceph-mon "${c[@]}" -i a 2>>"$dir/log/setup.log" &&
	step="osd create"; timeout 60 ceph "${c[@]}" osd create "$osd_uuid" 0 >/dev/null 2>>"$dir/log/setup.log" &&
	step="osd mkfs"; ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/setup.log" &&
	step="osd start"; ceph-osd "${c[@]}" -i 0 2>>"$dir/log/setup.log" &&
	mkdir -p "$dir/rgw" &&
	step="gateway start"; radosgw "${c[@]}" -n client.rgw 2>>"$dir/log/setup.log" || return 1

	# The keys are random: nothing else on this host knows them.
	local ak sk
	ak=$(head -c 15 /dev/urandom | base32 | tr -d '=')
	sk=$(head -c 30 /dev/urandom | base64 | tr -d '=+/')
	step="user create"
	timeout 60 radosgw-admin "${c[@]}" user create --uid=wasp --display-name=wasp \
		--access-key="$ak" --secret-key="$sk" >/dev/null 2>>"$dir/log/setup.log" || return 1
	cat > "$dir/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$ak
export AWS_SECRET_ACCESS_KEY=$sk
export AWS_REGION=us-east-1
EOF
	chmod 600 "$dir/env"
	step="gateway answer"; wait_gateway || return 1
	step="bucket create"
	local s=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
	local b
	for b in "$@"; do
		curl -sf -o /dev/null "${s[@]}" -X PUT "http://127.0.0.1:$rgw_port/$b" || return 1
	done
	return 0
}

# A port taken between the check and the bind is the one way a start can
# fail by chance: try again on other ports.
step=config
for attempt in 1 2 3; do
	if start_once "$@"; then
		exit 0
	fi
	echo "s3-server: start $attempt failed at the $step: $(tail -n 3 "$dir/log/setup.log" 2>/dev/null | tr '\n' ' ')$(tail -n 2 "$dir/log/client.rgw.log" 2>/dev/null | tr '\n' ' ')" >&2
	stop_all
done
rm -rf "$dir"
echo "s3-server: could not start the S3 server" >&2
exit 1
