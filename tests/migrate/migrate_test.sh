#!/usr/bin/env bash
# migrate_test.sh CASE: live migration end to end on real KVM: a source
# wasp-run, a receiver wasp-restore --listen, and wasp-migrate between them
# (docs/migration.md). The rule every case checks: the virtine's output,
# counted over both sides, and its exit status (and counter.log, when its
# files move with it) are exactly those of a run nobody touched, whether
# the migration succeeded or failed; a failed migration leaves it running
# at the source, and it never runs in two places.
#
# ctest passes WASP_RUN, WASP_RESTORE, WASP_CKPT, WASP_MIGRATE, WASP_INSPECT, GUEST_DIR
# (counter.bin) and ASM_DIR (dirtier.bin). Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
. "$(dirname "$0")/../lib.sh"
retry_slower "$@"

work=$(mktemp -d /tmp/wasp-mig-XXXXXX)
export WASP_RUN_DIR=$work/run
unset WASP_MIGRATE_TOKEN
bg_pids=()
netns=()
cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for n in "${netns[@]}"; do ip netns del "$n" 2>/dev/null; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

G=$GUEST_DIR A=$ASM_DIR
TOKEN=migrate-test-token-$$-$RANDOM
ALLOW=--allow=console_write,get_arg,files
# counter: about 2-3 s (80 steps of ~30 ms; more when a slow host lost
# the race to it, retry_slower in lib.sh); dirtier: 1 MiB of fresh random
# data per pass, ~0.3 ms a pass (more while it is being tracked).
STEPS=$((80 * STEPS_SCALE)) WORK=20000000

# ref NAME GUEST ARGS...: the unmigrated run, in the background, in $work/ref-NAME.
ref() {
	local n=$1 guest=$2
	shift 2
	mkdir -p "$work/ref-$n"
	"$WASP_RUN" -m 16M $ALLOW --dir "$work/ref-$n" "$guest" -- "$@" \
		>"$work/ref-$n.stdout" 2>"$work/ref-$n.stderr" &
	eval "ref_pid_$n=$!"
	bg_pids+=("$!")
}
ref_wait() {
	local n=$1 p
	eval "p=\$ref_pid_$n"
	wait "$p"
	ref_rc=$?
	grep -q '^done' "$work/ref-$n.stdout" || fail "the reference run $n did not finish"
}

# start_source N GUEST ARGS...: wasp-run in the background (sandbox $work/N,
# stdout N.out, stderr N.err); sets src_pid. PREFIX may hold a command
# (ip netns exec ...) to run it under.
start_source() {
	local n=$1 guest=$2
	shift 2
	mkdir -p "$work/$n"
	${PREFIX:-} "$WASP_RUN" -m 16M $ALLOW --dir "$work/$n" "$guest" -- "$@" \
		>"$work/$n.out" 2>"$work/$n.err" &
	src_pid=$!
	bg_pids+=("$src_pid")
	wait_until lines_at_least "$work/$n.out" 3 || fail "$n: no output from the guest"
	wait_until test -S "$WASP_RUN_DIR/$src_pid.sock" || fail "$n: no control socket"
}

# start_receiver N [OPTIONS]: wasp-restore --listen ADDR:0 in the background
# (sandbox $work/N, stdout N.out, stderr N.err); sets rcv_pid and rcv_port.
start_receiver() {
	local n=$1
	shift
	mkdir -p "$work/$n"
	${RPREFIX:-} "$WASP_RESTORE" --listen "${LISTEN_ADDR:-127.0.0.1}:0" --token "$TOKEN" \
		--dir "$work/$n" "$@" >"$work/$n.out" 2>"$work/$n.err" &
	rcv_pid=$!
	bg_pids+=("$rcv_pid")
	wait_until grep -q 'listening on' "$work/$n.err" || fail "$n: the receiver did not start"
	rcv_port=$(sed -n 's/.*listening on .*:\([0-9]*\) .*/\1/p' "$work/$n.err")
	[ -n "$rcv_port" ] || fail "$n: no port in '$(cat "$work/$n.err")'"
}
receiving() { grep -q "migration [0-9a-f]* from .*: receiving" "$work/$1.err"; }

# migrate TARGET URL [OPTIONS]: wasp-migrate, stdout mig.out, stderr mig.err; sets mrc.
migrate() {
	local target=$1 url=$2
	shift 2
	"$WASP_MIGRATE" "$target" "$url" "$@" >"$work/mig.out" 2>"$work/mig.err"
	mrc=$?
}
mig_ok() {
	[ "$mrc" -eq 0 ] || too_late_if_done "$work/src.out" "wasp-migrate reached the source after its last step"
	[ "$mrc" -eq 0 ] || fail "wasp-migrate exit status $mrc: $(cat "$work/mig.err")"
	grep -q '^wasp-migrate: migrated .* total [0-9.]* s, downtime [0-9.]* ms, [0-9]* rounds\?, .* sent, compression [0-9.]*x$' \
		"$work/mig.err" || fail "no summary line: $(cat "$work/mig.err")"
}
# mig_failed MESSAGE: the migration failed and says the virtine runs on.
mig_failed() {
	[ "$mrc" -eq 1 ] || fail "wasp-migrate exit status $mrc, expected 1: $(cat "$work/mig.err")"
	grep -q 'failed: .*; the virtine keeps running here$' "$work/mig.err" ||
		fail "no failure line: $(cat "$work/mig.err")"
	grep -q -- "$1" "$work/mig.err" || fail "wasp-migrate: stderr lacks '$1': $(cat "$work/mig.err")"
}
# json_num KEY: a number from wasp-migrate --json.
json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$work/mig.out"; }

# moved SRC DST REF [files]: the source stopped (0, "migrated to"), the
# receiver ran to the end, and together they equal the reference.
moved() {
	local s=$1 d=$2 r=$3
	wait "$src_pid"
	local src_rc=$?
	[ "$src_rc" -eq 0 ] || fail "the source exited $src_rc after migrating"
	grep -q "^wasp-run: migrated to .*; it runs there now$" "$work/$s.err" || fail "the source did not say it migrated"
	wait "$rcv_pid"
	local rcv_rc=$?
	ref_wait "$r"
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "the receiver exited $rcv_rc, the unmigrated run $ref_rc"
	cat "$work/$s.out" "$work/$d.out" >"$work/both.out"
	cmp -s "$work/ref-$r.stdout" "$work/both.out" ||
		fail "source + receiver output differs from the unmigrated run's ($(diff "$work/ref-$r.stdout" "$work/both.out" | head -4 | tr '\n' ' '))"
	if [ "${4:-}" = files ]; then
		cmp -s "$work/ref-$r/counter.log" "$work/$d/counter.log" || fail "counter.log at the receiver differs"
	fi
}
# stayed SRC REF: the source ran to its end alone, exactly like the reference.
stayed() {
	local s=$1 r=$2
	wait "$src_pid"
	local src_rc=$?
	ref_wait "$r"
	[ "$src_rc" -eq "$ref_rc" ] || fail "the source exited $src_rc, the unmigrated run $ref_rc: $(tail -2 "$work/$s.err")"
	cmp -s "$work/ref-$r.stdout" "$work/$s.out" || fail "the source's output differs from the unmigrated run's"
	grep -q "^wasp-run: migration 1 (socket, pid [0-9]*) to .* failed: .*; the virtine goes on here$" "$work/$s.err" ||
		fail "the source did not log the failed migration"
}
# nothing_ran N: a receiver that must not have run the virtine.
nothing_ran() { [ ! -s "$work/$1.out" ] || fail "the receiver ran the virtine: $(head -2 "$work/$1.out")"; }

# A little TCP relay (python3) that can be killed to cut a connection.
start_proxy() {
	command -v python3 >/dev/null || { echo "SKIP: no python3 for the relay"; exit 77; }
	python3 - "$1" >"$work/proxy.port" 2>"$work/proxy.err" <<'EOF' &
import socket, sys, threading
dst = int(sys.argv[1])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
print(ls.getsockname()[1], flush=True)
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
while True:
    c, _ = ls.accept()
    u = socket.create_connection(("127.0.0.1", dst))
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
EOF
	proxy_pid=$!
	bg_pids+=("$proxy_pid")
	wait_until test -s "$work/proxy.port" || fail "the relay did not start"
	proxy_port=$(cat "$work/proxy.port")
}

# make_netns: two "hosts" (network namespaces) joined by a veth pair;
# sets NS_A, NS_B, IP_A, IP_B. Removed by cleanup.
make_netns() {
	command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
	NS_A=wasp-a-$$ NS_B=wasp-b-$$
	local x=$(($$ % 200 + 20))
	IP_A=10.77.$x.1 IP_B=10.77.$x.2
	if ! ip netns add "$NS_A" 2>"$work/netns.err"; then
		echo "SKIP: ip netns is not permitted here: $(cat "$work/netns.err")"
		exit 77
	fi
	netns+=("$NS_A")
	ip netns add "$NS_B" || fail "ip netns add $NS_B"
	netns+=("$NS_B")
	ip -n "$NS_A" link add wva type veth peer name wvb netns "$NS_B" || fail "veth"
	ip -n "$NS_A" addr add "$IP_A/24" dev wva || fail "address A"
	ip -n "$NS_B" addr add "$IP_B/24" dev wvb || fail "address B"
	for n in "$NS_A" "$NS_B"; do ip -n "$n" link set lo up; done
	ip -n "$NS_A" link set wva up && ip -n "$NS_B" link set wvb up || fail "link up"
}

case $case_name in
loopback)
	# The main road: a counter moves with its files, mid-run.
	ref c "$G/counter.bin" $STEPS $WORK
	start_receiver dst
	start_source src "$G/counter.bin" $STEPS $WORK
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --with-files
	mig_ok
	grep -q '^done' "$work/src.out" && fail "the guest finished before the migration (make WORK bigger)"
	moved src dst c files
	grep -q "migration [0-9a-f]*: 1 files" "$work/dst.err" || fail "the receiver got no files" ;;
json)
	ref c "$G/counter.bin" $STEPS $WORK
	start_receiver dst
	start_source src "$G/counter.bin" $STEPS $WORK
	WASP_MIGRATE_TOKEN=$TOKEN migrate "$src_pid" "http://127.0.0.1:$rcv_port" --with-files --json
	[ "$mrc" -eq 0 ] || fail "wasp-migrate exit status $mrc: $(cat "$work/mig.err")"
	[ "$(wc -l <"$work/mig.out")" -eq 1 ] || fail "--json is not one line"
	for k in '"outcome":"migrated"' '"downtime_ms":' '"total_ms":' '"rounds":' '"bytes":' \
		'"pages_per_round":\[' '"compression_ratio":' '"dirty_rate":' '"error":null'; do
		grep -q "$k" "$work/mig.out" || fail "--json lacks $k: $(cat "$work/mig.out")"
	done
	# The guest's pause on this one clock: the source's stop, then the
	# receiver's resume (its status query). Not checked against the
	# downtime: the receiver's thread may take the CPU back after the
	# answer has already reached the source.
	stopped=$(sed -n 's/.*"stopped_mono_ns":\([0-9]*\).*/\1/p' "$work/mig.out")
	id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/mig.out")
	resumed=$(python3 -c 'import json, sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.load(u.urlopen(r, timeout=10))["resumed_mono_ns"])' \
		"http://127.0.0.1:$rcv_port/migrations/$id" "$TOKEN" 2>"$work/status.err") ||
		fail "status query: $(tail -1 "$work/status.err")"
	awk -v s="$stopped" -v r="$resumed" 'BEGIN { exit !(s > 0 && r > s && r - s < 10e9) }' ||
		fail "stopped at $stopped, resumed at $resumed: not one clock, or not in order"
	moved src dst c files ;;
stdout)
	# wasp-migrate TARGET - | wasp-restore -: a pipe instead of HTTP. A pipe
	# cannot say whether its reader has the virtine, so the source holds
	# it (exit 2, "held in"), and the reader runs it.
	ref d "$A/dirtier.bin" 9000
	start_source src "$A/dirtier.bin" 9000
	mkdir -p "$work/dst"
	"$WASP_MIGRATE" "$src_pid" - --hold "$work/held.wckpt" 2>"$work/mig.err" |
		"$WASP_RESTORE" - >"$work/dst.out" 2>"$work/dst.err"
	mrc=${PIPESTATUS[0]} rcv_rc=${PIPESTATUS[1]}
	[ "$mrc" -eq 2 ] || fail "wasp-migrate into a pipe exited $mrc, expected 2 (held): $(cat "$work/mig.err")"
	grep -q "is held in $work/held.wckpt" "$work/mig.err" || fail "no held line: $(cat "$work/mig.err")"
	is_ckpt "$work/held.wckpt" || fail "the held copy is not a checkpoint"
	wait "$src_pid"
	[ $? -eq 125 ] || fail "the source of a held migration should exit 125"
	ref_wait d
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "restored from the pipe: exit $rcv_rc, expected $ref_rc"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref-d.stdout" || fail "output differs" ;;
file)
	ref d "$A/dirtier.bin" 9000
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "file://$work/moved.wckpt"
	mig_ok
	[ "$(head -c 8 "$work/moved.wckpt")" = WASPCKPT ] || fail "file:// wrote no checkpoint"
	ls "$work"/moved.wckpt.tmp.* >/dev/null 2>&1 && fail "a temporary file was left"
	wait "$src_pid" || fail "the source exited $?"
	"$WASP_RESTORE" "$work/moved.wckpt" >"$work/dst.out" 2>"$work/dst.err"
	rcv_rc=$?
	ref_wait d
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "restored: exit $rcv_rc, expected $ref_rc"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref-d.stdout" || fail "output differs" ;;
fetch)
	# wasp-restore http://...: a checkpoint fetched with libcurl.
	command -v python3 >/dev/null || { echo "SKIP: no python3 for a web server"; exit 77; }
	ref d "$A/dirtier.bin" 9000
	start_source src "$A/dirtier.bin" 9000
	mkdir -p "$work/www"
	"$WASP_CKPT" -q --stop "$src_pid" -o "$work/www/ck.wckpt" 2>"$work/ck.err" ||
		fail "wasp-ckpt: $(cat "$work/ck.err")"
	wait "$src_pid"
	(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 0 >"$work/www.out" 2>&1) &
	bg_pids+=("$!")
	wait_until grep -q 'port [0-9]*' "$work/www.out" || fail "no web server"
	port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/www.out" | head -1)
	"$WASP_RESTORE" "http://127.0.0.1:$port/ck.wckpt" >"$work/dst.out" 2>"$work/dst.err"
	rcv_rc=$?
	ref_wait d
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "fetched and restored: exit $rcv_rc, expected $ref_rc: $(cat "$work/dst.err")"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref-d.stdout" || fail "output differs"
	"$WASP_RESTORE" "http://127.0.0.1:$port/missing.wckpt" >/dev/null 2>"$work/dst.err"
	[ $? -eq 125 ] && grep -q 'HTTP 404' "$work/dst.err" || fail "a missing URL: $(cat "$work/dst.err")" ;;
netns)
	# Two hosts with their own addresses: the source in A, the receiver in B.
	make_netns
	ref c "$G/counter.bin" $STEPS $WORK
	RPREFIX="ip netns exec $NS_B" LISTEN_ADDR=$IP_B start_receiver dst
	PREFIX="ip netns exec $NS_A" start_source src "$G/counter.bin" $STEPS $WORK
	# Not loopback: plain http must be asked for (docs/migration.md).
	migrate "$src_pid" "http://$IP_B:$rcv_port" --token "$TOKEN" --with-files
	mig_failed 'refused to send the token in clear text over http:// to '"$IP_B"
	migrate "$src_pid" "http://$IP_B:$rcv_port" --token "$TOKEN" --with-files --allow-plain-http
	mig_ok
	grep -q "from $IP_A: receiving" "$work/dst.err" || fail "the receiver did not see host A's address"
	moved src dst c files ;;
netns_cut)
	# The link goes down mid-stream (no RST, no FIN: packets just vanish);
	# the source notices the stall and goes on.
	make_netns
	ref d "$A/dirtier.bin" 9000
	RPREFIX="ip netns exec $NS_B" LISTEN_ADDR=$IP_B start_receiver dst
	PREFIX="ip netns exec $NS_A" start_source src "$A/dirtier.bin" 9000
	( wait_until receiving dst && ip -n "$NS_B" link set wvb down ) &
	migrate "$src_pid" "http://$IP_B:$rcv_port" --token "$TOKEN" --bandwidth-limit 1M --stall-timeout 2s \
		--allow-plain-http
	mig_failed 'stalled\|timed out\|Timeout\|broke off'
	stayed src d
	nothing_ran dst ;;
kill_receiver)
	ref d "$A/dirtier.bin" 9000
	start_receiver dst
	start_source src "$A/dirtier.bin" 9000
	( wait_until receiving dst && kill -9 "$rcv_pid" ) &
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --bandwidth-limit 1M
	mig_failed 'broke off before it was complete'
	stayed src d
	nothing_ran dst ;;
cut)
	# A relay between the two is killed mid-stream.
	ref d "$A/dirtier.bin" 9000
	start_receiver dst
	start_proxy "$rcv_port"
	start_source src "$A/dirtier.bin" 9000
	( wait_until receiving dst && kill -9 "$proxy_pid" ) &
	migrate "$src_pid" "http://127.0.0.1:$proxy_port" --token "$TOKEN" --bandwidth-limit 1M
	mig_failed 'broke off before it was complete'
	stayed src d
	nothing_ran dst ;;
wrong_token)
	ref d "$A/dirtier.bin" 9000
	start_receiver dst
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "not-$TOKEN"
	mig_failed 'refused the token (HTTP 401)'
	stayed src d
	nothing_ran dst
	grep -q 'receiving' "$work/dst.err" && fail "a stream started with a wrong token"
	true ;;
cpu)
	# The receiver's CPU lacks a feature the guest was given (simulated):
	# it refuses after the whole stream; the source goes on.
	ref d "$A/dirtier.bin" 9000
	start_receiver dst --simulate-missing-cpuid 1.edx.26
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_failed 'the receiver refused (HTTP 422): .*lacks .*sse2'
	stayed src d
	nothing_ran dst ;;
not_listening)
	# A port nobody listens on: bind one, note it, let it go. Before the
	# source starts: python3 takes seconds on an emulated host, time in
	# which the finite guest could end.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
	ref d "$A/dirtier.bin" 9000
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$port" --token "$TOKEN"
	mig_failed "cannot reach http://127.0.0.1:$port"
	stayed src d ;;
busy)
	# A receiver that took its virtine refuses a second one (409).
	ref c "$G/counter.bin" $STEPS $WORK
	start_receiver dst
	start_source src "$G/counter.bin" $STEPS $WORK
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --with-files
	mig_ok
	first_src=$src_pid
	ref d "$A/dirtier.bin" 9000
	start_source src2 "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_failed 'busy: this receiver has taken its virtine'
	stayed src2 d
	src_pid=$first_src
	moved src dst c files ;;
lost_answer)
	# The receiver runs the virtine but its answer never arrives: the
	# source asks (GET /migrations/ID), hears "running", and ends.
	ref d "$A/dirtier.bin" 9000
	start_receiver dst --test-fault drop-answer
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_ok
	moved src dst d ;;
unanswered_refusal)
	# The receiver does not run it and its answer is lost: the status
	# query says "refused", so the source goes on.
	ref d "$A/dirtier.bin" 9000
	start_receiver dst --test-fault forget-answer
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_failed 'did not start it'
	stayed src d
	nothing_ran dst ;;
receiver_died)
	# The receiver dies after the whole stream, before running it: no
	# answer, nobody to ask. The source must not resume (it cannot know),
	# so it holds the virtine in a checkpoint; that checkpoint finishes the
	# work exactly (nothing lost).
	ref d "$A/dirtier.bin" 9000
	start_receiver dst --test-fault die-before-resume
	start_source src "$A/dirtier.bin" 9000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --query-timeout 2s \
		--hold "$work/held.wckpt"
	[ "$mrc" -eq 2 ] || fail "wasp-migrate exit status $mrc, expected 2: $(cat "$work/mig.err")"
	grep -q "outcome unknown: .*held in $work/held.wckpt" "$work/mig.err" || fail "no hold message: $(cat "$work/mig.err")"
	wait "$src_pid"
	src_rc=$?
	[ "$src_rc" -eq 125 ] || fail "the source exited $src_rc, expected 125 (held)"
	grep -q "outcome unknown, so the virtine is held in $work/held.wckpt" "$work/src.err" || fail "the source did not say it holds it"
	nothing_ran dst
	"$WASP_RESTORE" "$work/held.wckpt" >"$work/held.out" 2>"$work/held.err"
	rcv_rc=$?
	ref_wait d
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "the held checkpoint ran to exit $rcv_rc, expected $ref_rc"
	cat "$work/src.out" "$work/held.out" | cmp -s - "$work/ref-d.stdout" || fail "source + held output differs" ;;
round_limit)
	# A guest that dirties memory faster than the link carries it: pre-copy
	# stops at the round limit and the migration still completes, with a
	# longer stop.
	ref d "$A/dirtier.bin" 12000
	start_receiver dst
	start_source src "$A/dirtier.bin" 12000
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --bandwidth-limit 4M \
		--max-rounds 3 --max-downtime 20ms --json
	[ "$mrc" -eq 0 ] || fail "wasp-migrate exit status $mrc: $(cat "$work/mig.err")"
	grep -q '"stop_reason":"round limit"' "$work/mig.out" || fail "pre-copy did not stop at the round limit: $(cat "$work/mig.out")"
	[ "$(json_num rounds)" -eq 3 ] || fail "$(json_num rounds) rounds, the limit is 3"
	dt=$(json_num downtime_ms)
	awk -v d="$dt" 'BEGIN { exit !(d >= 100) }' || fail "downtime $dt ms: a stop-and-copy of ~1 MiB at 4 MiB/s takes longer"
	awk -v d="$(json_num expected_downtime_ms)" 'BEGIN { exit !(d > 20) }' || fail "the estimate was within the target"
	moved src dst d ;;
cancel)
	# wasp-migrate interrupted during pre-copy: the migration is given up.
	ref d "$A/dirtier.bin" 9000
	start_receiver dst
	start_source src "$A/dirtier.bin" 9000
	"$WASP_MIGRATE" "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --bandwidth-limit 1M \
		>"$work/mig.out" 2>"$work/mig.err" &
	mig_pid=$!
	wait_until receiving dst || fail "no stream"
	kill -INT "$mig_pid"
	wait "$mig_pid"
	stayed src d
	grep -q 'canceled' "$work/src.err" || fail "the source did not say the migration was canceled"
	nothing_ran dst ;;
keep_listening)
	# One receiver takes two virtines, each on its own thread (counters
	# without files: the two would share the receiver's directory).
	ALLOW=--allow=console_write,get_arg
	ref c "$G/counter.bin" $STEPS $WORK
	start_receiver dst --keep-listening
	ref c2 "$G/counter.bin" $((STEPS + 1)) $WORK
	start_source src "$G/counter.bin" $STEPS $WORK
	p1=$src_pid
	migrate "$p1" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_ok
	start_source src2 "$G/counter.bin" $((STEPS + 1)) $WORK
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_ok
	wait "$p1" && wait "$src_pid" || fail "a source did not end well"
	both_ended() { [ "$(grep -c 'the virtine exited with code' "$work/dst.err")" -eq 2 ]; }
	wait_until both_ended || fail "the receiver did not run both to their end"
	ref_wait c
	ref_wait c2
	cat "$work/src.out" "$work/dst.out" | grep "/$STEPS " >"$work/one.out"
	grep "/$STEPS " "$work/ref-c.stdout" | cmp -s - "$work/one.out" || fail "the first virtine's steps differ"
	cat "$work/src2.out" "$work/dst.out" | grep "/$((STEPS + 1)) " >"$work/two.out"
	grep "/$((STEPS + 1)) " "$work/ref-c2.stdout" | cmp -s - "$work/two.out" || fail "the second virtine's steps differ"
	kill "$rcv_pid" ;;
keep_listening_term)
	# A --keep-listening receiver ended by SIGTERM takes the control
	# sockets of its virtines (PID.N.sock) with it, as wasp-run does.
	ALLOW=--allow=console_write,get_arg
	start_receiver dst --keep-listening
	start_source src "$G/counter.bin" 100000 $WORK
	migrate "$src_pid" "http://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_ok
	wait "$src_pid" || fail "the source did not end well"
	wait_until test -S "$WASP_RUN_DIR/$rcv_pid.1.sock" || fail "no control socket $rcv_pid.1.sock"
	kill -TERM "$rcv_pid"
	wait "$rcv_pid"
	run_dir_empty || fail "SIGTERM left: $(ls "$WASP_RUN_DIR")" ;;
keep_listening_onward)
	# A virtine a --keep-listening receiver took has a control socket of
	# its own (target PID.N): it is checkpointed there and migrated on to
	# a second receiver, and the three outputs add up to the unmigrated run.
	ALLOW=--allow=console_write,get_arg
	steps=$((STEPS * 2))
	ref c "$G/counter.bin" $steps $WORK
	start_receiver dst --keep-listening
	keep_pid=$rcv_pid
	keep_port=$rcv_port
	start_source src "$G/counter.bin" $steps $WORK
	p1=$src_pid
	migrate "$p1" "http://127.0.0.1:$keep_port" --token "$TOKEN" --json
	mig_ok
	wait "$p1" || fail "the source did not end well"
	# The receiver names the target in its answer, and wasp-migrate passes it on.
	target=$(sed -n 's/.*"remote_target":"\([^"]*\)".*/\1/p' "$work/mig.out")
	[ "$target" = "$keep_pid.1" ] || fail "remote_target '$target', expected $keep_pid.1: $(cat "$work/mig.out")"
	grep -q "^wasp-migrate: there it is $target " "$work/mig.err" || fail "wasp-migrate did not say where it is"
	grep -q "the virtine's target is $target " "$work/dst.err" || fail "the receiver did not log its target"
	[ -S "$WASP_RUN_DIR/$target.sock" ] || fail "no control socket $target.sock"
	"$WASP_CKPT" -q "$target" -o "$work/k.wckpt" 2>"$work/ck.err" ||
		fail "wasp-ckpt $target: $(cat "$work/ck.err")"
	"$WASP_INSPECT" "$work/k.wckpt" >/dev/null 2>&1 || fail "the checkpoint taken there does not read back"
	start_receiver dst2
	migrate "$target" "http://127.0.0.1:$rcv_port" --token "$TOKEN" --json
	mig_ok
	grep -q "\"remote_target\":\"$rcv_pid\"" "$work/mig.out" ||
		fail "a plain receiver's target should be its pid $rcv_pid: $(cat "$work/mig.out")"
	went_on() { grep -q 'the virtine migrated on' "$work/dst.err"; }
	wait_until went_on || fail "the first receiver did not let it go: $(tail -3 "$work/dst.err")"
	[ ! -e "$WASP_RUN_DIR/$target.sock" ] || fail "$target.sock is left behind"
	wait "$rcv_pid"
	rcv_rc=$?
	ref_wait c
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "the second receiver exited $rcv_rc, expected $ref_rc"
	cat "$work/src.out" "$work/dst.out" "$work/dst2.out" >"$work/all.out"
	cmp -s "$work/ref-c.stdout" "$work/all.out" ||
		fail "the three outputs differ from the unmigrated run's ($(diff "$work/ref-c.stdout" "$work/all.out" | head -4 | tr '\n' ' '))"
	kill "$keep_pid" ;;
https)
	command -v openssl >/dev/null || { echo "SKIP: no openssl to make a certificate"; exit 77; }
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
		-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
		{ echo "SKIP: openssl cannot make a certificate"; exit 77; }
	ref d "$A/dirtier.bin" 9000
	start_receiver dst --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
	start_source src "$A/dirtier.bin" 9000
	# Not trusted: refused before anything is sent.
	migrate "$src_pid" "https://127.0.0.1:$rcv_port" --token "$TOKEN"
	mig_failed 'certificate\|SSL'
	migrate "$src_pid" "https://127.0.0.1:$rcv_port" --token "$TOKEN" --cacert "$work/cert.pem"
	mig_ok
	wait "$src_pid" || fail "the source exited $?"
	wait "$rcv_pid"
	rcv_rc=$?
	ref_wait d
	[ "$rcv_rc" -eq "$ref_rc" ] || fail "the receiver exited $rcv_rc, expected $ref_rc"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref-d.stdout" || fail "output differs" ;;
incremental | merge)
	# A chain of ten checkpoints (one full, nine incremental) restores to
	# what the reference run did from there on (incremental), and so does
	# the chain merged into one full checkpoint (merge).
	ref c "$G/counter.bin" $STEPS $WORK
	start_source src "$G/counter.bin" $STEPS $WORK
	"$WASP_CKPT" -q --incremental "$src_pid" -o "$work/x.wckpt" 2>"$work/ck.err"
	[ $? -eq 125 ] && grep -q 'no parent checkpoint: take a full one first' "$work/ck.err" ||
		fail "--incremental before any full checkpoint: $(cat "$work/ck.err")"
	"$WASP_CKPT" -q "$src_pid" -o "$work/c0.wckpt" || {
		too_late_if_done "$work/src.out" "the full checkpoint: the guest had finished"
		fail "full checkpoint"
	}
	for i in 1 2 3 4 5 6 7 8; do
		# One more step of the guest between links (not a fixed sleep).
		n=$(wc -l <"$work/src.out")
		wait_until eval 'lines_at_least "$work/src.out" $((n + 1)) || ! alive "$src_pid"' ||
			fail "inc $i: the guest made no progress"
		"$WASP_CKPT" -q --incremental "$src_pid" -o "$work/c$i.wckpt" 2>"$work/ck.err" || {
			too_late_if_done "$work/src.out" "inc $i: the guest had finished"
			fail "inc $i: $(cat "$work/ck.err")"
		}
	done
	"$WASP_CKPT" --incremental --stop "$src_pid" -o "$work/c9.wckpt" 2>"$work/ck.err" || {
		too_late_if_done "$work/src.out" "inc 9: the guest had finished"
		fail "inc 9: $(cat "$work/ck.err")"
	}
	grep -q '^wasp-ckpt: incremental checkpoint of' "$work/ck.err" || fail "no incremental summary: $(cat "$work/ck.err")"
	wait "$src_pid" || fail "the source exited $?"
	chain=()
	for i in 0 1 2 3 4 5 6 7 8 9; do chain+=("$work/c$i.wckpt"); done
	"$WASP_RESTORE" --merge "$work/merged.wckpt" "${chain[@]}" 2>"$work/merge.err" || fail "--merge: $(cat "$work/merge.err")"
	# A link holds only the pages written since the one before: less than
	# the whole state at the chain's end (the merged chain), which also
	# carries the image and page tables. (Not less than c0: c0 was taken
	# early, when the counter's array was still mostly zero pages, and on
	# a slow host many steps pass between links.)
	for i in 1 2 3 4 5 6 7 8 9; do
		[ "$(stat -c %s "$work/c$i.wckpt")" -lt "$(stat -c %s "$work/merged.wckpt")" ] ||
			fail "c$i is not smaller than the whole state (the merged chain)"
	done
	cp -r "$work/src" "$work/src-m"
	if [ "$case_name" = incremental ]; then
		"$WASP_RESTORE" --dir "$work/src" "${chain[@]}" >"$work/chain.out" 2>"$work/chain.err"
		crc=$?
		ref_wait c
		[ "$crc" -eq "$ref_rc" ] || fail "the chain ran to exit $crc, expected $ref_rc: $(cat "$work/chain.err")"
		cat "$work/src.out" "$work/chain.out" | cmp -s - "$work/ref-c.stdout" || fail "source + chain output differs"
		cmp -s "$work/ref-c/counter.log" "$work/src/counter.log" || fail "counter.log after the chain differs"
	else
		"$WASP_RESTORE" --dir "$work/src-m" "$work/merged.wckpt" >"$work/merged.out" 2>"$work/merged.err"
		mrc=$?
		ref_wait c
		[ "$mrc" -eq "$ref_rc" ] || fail "the merged checkpoint ran to exit $mrc, expected $ref_rc: $(cat "$work/merged.err")"
		cat "$work/src.out" "$work/merged.out" | cmp -s - "$work/ref-c.stdout" || fail "source + merged output differs"
		cmp -s "$work/ref-c/counter.log" "$work/src-m/counter.log" || fail "counter.log after the merged one differs"
	fi ;;
chain_errors)
	# A chain with a missing or mismatched link is refused, naming it.
	start_source src "$G/counter.bin" $STEPS $WORK
	"$WASP_CKPT" -q "$src_pid" -o "$work/c0.wckpt" || fail "full"
	for i in 1 2; do "$WASP_CKPT" -q --incremental "$src_pid" -o "$work/c$i.wckpt" || fail "inc $i"; done
	"$WASP_CKPT" -q "$src_pid" -o "$work/d0.wckpt" || fail "another full one"
	"$WASP_CKPT" -q --incremental --stop "$src_pid" -o "$work/d1.wckpt" || fail "inc after d0"
	wait "$src_pid"
	chk() {
		"$WASP_RESTORE" --dir "$work/src" "$@" >"$work/r.out" 2>"$work/r.err"
		local rc=$?
		[ "$rc" -eq 125 ] || fail "a bad chain ($*) ran: $rc"
		[ ! -s "$work/r.out" ] || fail "a bad chain printed guest output"
	}
	chk "$work/c0.wckpt" "$work/c2.wckpt"
	grep -q 'follows .*, not the one before it' "$work/r.err" || fail "missing link: $(cat "$work/r.err")"
	chk "$work/c0.wckpt" "$work/c1.wckpt" "$work/d1.wckpt"
	grep -q 'follows .*, not the one before it' "$work/r.err" || fail "mismatched link: $(cat "$work/r.err")"
	chk "$work/c1.wckpt" "$work/c2.wckpt"
	grep -q 'incremental checkpoint: restore it after its parent' "$work/r.err" || fail "no full first: $(cat "$work/r.err")"
	chk "$work/c0.wckpt" "$work/d0.wckpt"
	grep -q 'full one; only the first may be' "$work/r.err" || fail "two full: $(cat "$work/r.err")" ;;
*)
	echo "unknown case $case_name"
	exit 2 ;;
esac
echo "PASS: $case_name"
exit 0
