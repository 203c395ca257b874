#!/usr/bin/env bash
# linux_ckpt_test.sh CASE VARIANT: a static Linux program (tests/linux/core/
# counter.c, built with VARIANT = glibc or musl; or, for VARIANT = lua or
# js, the same counter as a script, tests/workloads/counter.VARIANT, run by
# that workload, build/examples/VARIANT) checkpointed, restored and
# migrated while it runs, compared byte for byte with the same binary run
# natively: its stdout, its log.txt and its exit status (docs/linux.md,
# docs/workloads.md).
#
#   signal_kill  SIGUSR1 writes a checkpoint; the program goes on (and
#                appends to its log); kill -9; wasp-restore on the box as
#                the crash left it finishes the run: the output before the
#                checkpoint plus the restored run's is the native output,
#                and log.txt is the native log (the appended lines rolled
#                back, then written again by the restored program)
#   every        --checkpoint-every 20ms, then kill -9 after a few: the same
#   stop         wasp-ckpt --stop: the virtine stops once the checkpoint is
#                safe (wasp-run exits 0); restored in another directory (a
#                copy of the first) with --dir: the same
#   at           --checkpoint-at round_done:30, a symbol of the program's
#                own symbol table: the run goes on to its end, identical to
#                the native one; the checkpoint restored on the finished
#                box rolls log.txt back and ends identical too
#   migrate      wasp-migrate --with-files to wasp-restore --listen over
#                loopback mid-run: source output + receiver output = native
#   netns        the same between two network namespaces over veth (skips
#                where namespaces cannot be made)
#
# counter.c's two stdin gates (after rounds 20 and 200) hold it while the
# test triggers: it is started with its stdin on a FIFO the test writes one
# byte to when the program may go on, and every restore gets two bytes, so
# nothing here depends on how fast the host is.
#
# ctest passes WASP_RUN, WASP_CKPT, WASP_RESTORE, WASP_MIGRATE,
# WASP_INSPECT, LXC_DIR (the built programs) and, for the scripts, WL_DIR
# (the workloads) and WL_SKIP (why one was not built). Exit 0 pass, 1
# fail, 77 skip.
set -u
case_name=$1 variant=${2:-glibc}
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for v in WASP_RUN WASP_CKPT WASP_RESTORE WASP_MIGRATE WASP_INSPECT LXC_DIR; do
	[ -n "${!v:-}" ] || { echo "FAIL: $case_name: $v is not set"; exit 1; }
done
# The program, its arguments after the round count, and the script it
# runs (copied into every directory it runs in), if any.
script=
case $variant in
lua | js)
	[ -z "${WL_SKIP:-}" ] || { echo "SKIP: $WL_SKIP"; exit 77; }
	prog=$WL_DIR/$variant script=$(dirname "$0")/../workloads/counter.$variant ;;
*) prog=$LXC_DIR/counter-$variant ;;
esac
[ -x "$prog" ] || { echo "SKIP: $prog was not built (musl-gcc missing?)"; exit 77; }
args=(${script:+counter.$variant})
work=$(mktemp -d /tmp/wasp-lxckpt-XXXXXX)
export WASP_RUN_DIR=$work/run
unset WASP_MIGRATE_TOKEN
mkdir -p "$WASP_RUN_DIR"
bg_pids=() netns=()
cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for n in "${netns[@]}"; do ip netns del "$n" 2>/dev/null; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"

ROUNDS=300
# The native run: the reference for every case.
# box DIR: makes DIR, with the script in it.
box() { mkdir -p "$1" && { [ -z "$script" ] || cp "$script" "$1/"; }; }
box "$work/native"
(cd "$work/native" && printf xx | env -i "$prog" "${args[@]}" $ROUNDS >"$work/native.out" 2>"$work/native.err")
native_rc=$?
[ "$native_rc" -eq 0 ] && grep -q '^done ' "$work/native.out" || fail "the native run failed ($native_rc)"

# start N [OPTIONS]: wasp-run of the program in $work/N (stdout N.out,
# stderr N.err, stdin the FIFO N.in, held open on fd 3) in the background;
# sets pid once the program waits at its first gate (20 lines) and its
# control socket is there. PREFIX may hold a command.
start() {
	local n=$1
	shift
	box "$work/$n"
	mkfifo "$work/$n.in"
	exec 3<>"$work/$n.in"
	${PREFIX:-} "$WASP_RUN" --dir "$work/$n" "$@" "$prog" -- "${args[@]}" $ROUNDS <"$work/$n.in" \
		>"$work/$n.out" 2>"$work/$n.err" &
	pid=$!
	bg_pids+=("$pid")
	wait_until lines_at_least "$work/$n.out" 20 || fail "$n: no progress"
	wait_until test -S "$WASP_RUN_DIR/$pid.sock" || fail "$n: no control socket"
}
# go: opens the program's next gate.
go() { printf x >&3; }
# at_gate2 N: the program printed round 200 and waits at its second gate.
at_gate2() { lines_at_least "$work/$1.out" 200; }
# console_bytes CKPT: the stdout bytes written before the checkpoint.
console_bytes() {
	"$WASP_INSPECT" --json "$1" | python3 -I -S -c 'import json,sys; print(json.load(sys.stdin)["host"]["console_bytes"])'
}
# same OUT LOG RC WHAT: OUT, LOG and RC are the native run's.
same() {
	cmp -s "$1" "$work/native.out" ||
		fail "$4: stdout differs from the native run ($(diff "$work/native.out" "$1" | head -4 | tr '\n' ' '))"
	cmp -s "$2" "$work/native/log.txt" ||
		fail "$4: log.txt differs from the native run's ($(diff "$work/native/log.txt" "$2" | head -4 | tr '\n' ' '))"
	[ "$3" -eq "$native_rc" ] || fail "$4: exit status $3, natively $native_rc"
}
# restored CKPT DIR N WHAT: wasp-restore CKPT on DIR; the first run's stdout
# up to the checkpoint plus the restored run's must be the native output.
restored() {
	local ck=$1 dir=$2 n=$3
	local cb
	cb=$(console_bytes "$ck") || fail "$4: wasp-inspect cannot read the checkpoint"
	printf xx | "$WASP_RESTORE" --dir "$dir" "$ck" >"$work/r.out" 2>"$work/r.err"
	local rc=$?
	{ head -c "$cb" "$work/$n.out"; cat "$work/r.out"; } >"$work/joined.out"
	same "$work/joined.out" "$dir/log.txt" $rc "$4"
}
ckpt_valid() { is_ckpt "$1" && "$WASP_INSPECT" "$1" >/dev/null 2>&1; }

case $case_name in
signal_kill)
	# The checkpoint lands anywhere between the gates (or at the second);
	# the program then reaches the second gate, writing its log, and dies.
	start a --checkpoint-path "$work/a.wckpt"
	go
	kill -USR1 "$pid"
	wait_until ckpt_valid "$work/a.wckpt" || fail "no checkpoint after SIGUSR1"
	wait_until at_gate2 a || fail "no progress after the checkpoint"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	restored "$work/a.wckpt" "$work/a" a "SIGUSR1 + kill -9 + restore" ;;
every)
	start a --checkpoint-path "$work/a.wckpt" --checkpoint-every 20ms
	wait_until ckpt_valid "$work/a.wckpt" || fail "no periodic checkpoint"
	go
	wait_until at_gate2 a || fail "no progress"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	ckpt_valid "$work/a.wckpt" || fail "the checkpoint at the path is not whole after kill -9"
	restored "$work/a.wckpt" "$work/a" a "--checkpoint-every + kill -9 + restore" ;;
stop)
	start a --name lx-$$
	go
	"$WASP_CKPT" lx-$$ --stop -o "$work/a.wckpt" 2>"$work/ckpt.err" || fail "wasp-ckpt --stop: $(cat "$work/ckpt.err")"
	wait "$pid"
	rc=$?
	[ $rc -eq 0 ] || fail "wasp-run exited $rc after --stop"
	grep -q '^done ' "$work/a.out" && fail "the program finished before the stop"
	cp -a "$work/a" "$work/b"
	restored "$work/a.wckpt" "$work/b" a "wasp-ckpt --stop + restore in another directory" ;;
at)
	start a --checkpoint-path "$work/a.wckpt" --checkpoint-at round_done:30
	go
	go
	wait "$pid"
	rc=$?
	same "$work/a.out" "$work/a/log.txt" $rc "the run with a checkpoint point"
	ckpt_valid "$work/a.wckpt" || fail "no checkpoint at round_done:30"
	cb=$(console_bytes "$work/a.wckpt")
	[ "$(head -c "$cb" "$work/a.out" | wc -l)" -eq 30 ] ||
		fail "the checkpoint was not taken after round 30 ($(head -c "$cb" "$work/a.out" | wc -l) lines before it)"
	restored "$work/a.wckpt" "$work/a" a "--checkpoint-at + restore on the finished box" ;;
migrate | netns)
	TOKEN=linux-ckpt-test-token-$$-$RANDOM
	addr=127.0.0.1 opts=()
	if [ "$case_name" = netns ]; then
		command -v ip >/dev/null || { echo "SKIP: no ip(8)"; exit 77; }
		NS_A=wlx-a-$$ NS_B=wlx-b-$$ x=$(($$ % 200 + 20))
		ip netns add "$NS_A" 2>"$work/netns.err" || { echo "SKIP: ip netns: $(cat "$work/netns.err")"; exit 77; }
		netns+=("$NS_A")
		ip netns add "$NS_B" && netns+=("$NS_B") || fail "ip netns add"
		ip -n "$NS_A" link add wva type veth peer name wvb netns "$NS_B" 2>"$work/netns.err" ||
			{ echo "SKIP: no veth here: $(cat "$work/netns.err")"; exit 77; }
		ip -n "$NS_A" addr add 10.78.$x.1/24 dev wva && ip -n "$NS_B" addr add 10.78.$x.2/24 dev wvb || fail "addresses"
		for n in "$NS_A" "$NS_B"; do ip -n "$n" link set lo up; done
		ip -n "$NS_A" link set wva up && ip -n "$NS_B" link set wvb up || fail "link up"
		addr=10.78.$x.2 opts=(--allow-plain-http)
	fi
	mkdir -p "$work/dst"
	printf xx >"$work/dst.in"
	${NS_B:+ip netns exec $NS_B} "$WASP_RESTORE" --listen "$addr:0" --token "$TOKEN" --dir "$work/dst" \
		<"$work/dst.in" >"$work/dst.out" 2>"$work/dst.err" &
	rcv=$!
	bg_pids+=("$rcv")
	wait_until grep -q 'listening on' "$work/dst.err" || fail "the receiver did not start"
	port=$(sed -n 's/.*listening on .*:\([0-9]*\) .*/\1/p' "$work/dst.err")
	PREFIX=${NS_A:+ip netns exec $NS_A} start src
	go # it moves somewhere between its gates, or at the second
	"$WASP_MIGRATE" "$pid" "http://$addr:$port" --token "$TOKEN" --with-files "${opts[@]}" \
		>"$work/mig.out" 2>"$work/mig.err" || fail "wasp-migrate: $(cat "$work/mig.err")"
	wait "$pid" || fail "the source exited $? after migrating"
	grep -q '^done ' "$work/src.out" && fail "the program finished before the migration"
	wait "$rcv"
	rc=$?
	cat "$work/src.out" "$work/dst.out" >"$work/joined.out"
	same "$work/joined.out" "$work/dst/log.txt" $rc "live migration ($case_name)" ;;
*)
	echo "FAIL: unknown case $case_name"
	exit 1 ;;
esac
echo "$case_name $variant: ok"
