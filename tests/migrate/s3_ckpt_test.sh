#!/usr/bin/env bash
# s3_ckpt_test.sh CASE: running virtines checkpointed into a real S3 server
# (Ceph RGW on loopback, tests/migrate/s3_test.sh starts it) through the
# tools, and restored from it. The rule, byte for byte: a virtine stopped
# into a bucket and restored from it ends with the stdout, counter.log and
# exit status of a run nobody touched; a checkpoint that fails leaves no
# object (an older one at the key untouched) and the virtine running.
#
#   stop          wasp-ckpt --stop -o s3://…, wasp-inspect and wasp-restore s3://…
#   live          wasp-ckpt -o s3://… without --stop: the virtine goes on and
#                 finishes; the object restores and finishes alike
#   run_path      wasp-run --checkpoint-path s3://… with a trigger file and
#                 --stop-after-checkpoint
#   chain         a full checkpoint and two incremental ones as objects,
#                 restored as a chain, and merged into one object
#                 (wasp-restore --merge) that restores the same
#   refused       a wrong secret, a missing bucket, no credentials: one line
#                 saying which; no object; the virtine keeps running
#   server_killed the gateway killed while the upload is under way (seen
#                 in its list of uploads): the checkpoint fails, no object,
#                 the virtine keeps running; restarted, the next one works
#   kill_writer   wasp-ckpt killed -9 while its upload is under way: the
#                 object at the key stays the older good one, the virtine
#                 keeps running and finishes as an untouched run
#   many          64 virtines checkpointed (--stop) into one bucket at once,
#                 each restored and going on with its next line
#
# Environment: what s3_test.sh sets (AWS_*, WASP_S3_DIR, WASP_S3_SCRIPT)
# and WASP_RUN, WASP_CKPT, WASP_RESTORE, WASP_INSPECT, GUEST_DIR,
# TEST_GUEST_DIR, ASM_DIR.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for v in WASP_RUN WASP_CKPT WASP_RESTORE WASP_INSPECT GUEST_DIR TEST_GUEST_DIR ASM_DIR \
	AWS_ENDPOINT_URL WASP_S3_DIR WASP_S3_SCRIPT; do
	[ -n "${!v:-}" ] || { echo "FAIL: $case_name: $v is not set"; exit 1; }
done
. "$(dirname "$0")/../lib.sh"
retry_slower "$@"
work_dir wasp-s3ck

G=$GUEST_DIR
ALLOW=--allow=console_write,get_arg,files
STEPS=$((40 * STEPS_SCALE)) WORK=20000000
# Every case its own keys: the shared bucket outlives the cases.
K=s3://wasp/$case_name-$$

# bg TAG CMD...: CMD in the background, TAG.out and TAG.err; sets run_pid.
bg() {
	local tag=$1
	shift
	"$@" >"$work/$tag.out" 2>"$work/$tag.err" &
	run_pid=$!
	bg_pids+=("$run_pid")
}
# counter TAG [OPTIONS]: counter under wasp-run, sandbox $work/TAG.
counter() {
	local tag=$1
	shift
	mkdir -p "$work/$tag"
	bg "$tag" "$WASP_RUN" "$@" $ALLOW --dir "$work/$tag" "$G/counter.bin" -- $STEPS $WORK
}
wait_lines() { wait_until lines_at_least "$work/$1.out" "$2" || fail "$1: fewer than $2 lines of output"; }
ref() {
	counter ref
	ref_pid=$run_pid
}
ref_wait() {
	[ -n "${ref_rc:-}" ] && return
	wait "$ref_pid"
	ref_rc=$?
	grep -q '^done hash ' "$work/ref.out" || fail "the reference run did not finish (status $ref_rc)"
}
# ck ARGS...: wasp-ckpt; ck.out/ck.err; sets rc.
ck() { "$WASP_CKPT" "$@" >"$work/ck.out" 2>"$work/ck.err"; rc=$?; }
# ck_ok [TAG]: it succeeded; if not, and TAG's guest had finished, too late.
ck_ok() {
	[ "$rc" -eq 0 ] && return
	[ -n "${1:-}" ] && too_late_if_done "$work/$1.out" "wasp-ckpt reached $1 after its last step"
	fail "wasp-ckpt: status $rc: $(cat "$work/ck.err")"
}
# one_line_error WHAT PATTERN: the last wasp-ckpt failed with one line matching PATTERN.
one_line_error() {
	[ "$rc" -ne 0 ] || fail "$1: wasp-ckpt succeeded"
	[ "$(wc -l <"$work/ck.err")" -eq 1 ] || fail "$1: not one line: $(cat "$work/ck.err")"
	grep -q -- "$2" "$work/ck.err" || fail "$1: the error lacks '$2': $(cat "$work/ck.err")"
	! grep -q "$AWS_SECRET_ACCESS_KEY" "$work/ck.err" || fail "$1: the secret is in the error"
}
# no_object URL: the server has no object there.
no_object() {
	"$WASP_INSPECT" "$1" >/dev/null 2>"$work/ni.err" && fail "an object appeared at $1"
	grep -q 'no such object' "$work/ni.err" || fail "$1: $(cat "$work/ni.err")"
}
# finish_from TAG URL...: the virtine stopped as TAG, restored from URL...
# in TAG's sandbox, ends as the untouched run.
finish_from() {
	local tag=$1
	shift
	"$WASP_RESTORE" "$@" --dir "$work/$tag" >"$work/$tag.rest.out" 2>"$work/$tag.rest.err"
	local rrc=$?
	ref_wait
	[ "$rrc" -eq "$ref_rc" ] || fail "$tag: the restore exited $rrc, the untouched run $ref_rc: $(tail -3 "$work/$tag.rest.err")"
	cat "$work/$tag.out" "$work/$tag.rest.out" | cmp -s - "$work/ref.out" ||
		fail "$tag: stdout before and after differs from the untouched run's"
	cmp -s "$work/ref/counter.log" "$work/$tag/counter.log" || fail "$tag: counter.log differs"
}
# stopped TAG: wasp-run TAG ended (0) after a checkpoint with stop.
stopped() {
	wait "$1"
	local s=$?
	too_late_if_done "$work/$2.out" "$2: the guest finished before the checkpoint"
	[ "$s" -eq 0 ] || fail "$2: exit status $s after a checkpoint with stop"
}
# s3_list QUERY: the bucket's answer to GET ?QUERY, signed by curl.
s3_list() {
	curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$AWS_ENDPOINT_URL/wasp?$1"
}
uploading() { s3_list "uploads=" | grep -q "<Key>${1#s3://wasp/}</Key>"; }
object_id() { "$WASP_INSPECT" --json "$1" 2>/dev/null | sed -n 's/^ *"id": "\([0-9a-f]*\)".*/\1/p' | head -1; }

case $case_name in
stop)
	ref
	counter a --name "a$$"
	wait_lines a 3
	ck --stop "a$$" -o "$K/a.wckpt"
	ck_ok a
	stopped "$run_pid" a
	"$WASP_INSPECT" "$K/a.wckpt" >"$work/i.out" 2>"$work/i.err" || fail "wasp-inspect: $(cat "$work/i.err")"
	finish_from a "$K/a.wckpt" ;;
live)
	ref
	counter b --name "b$$"
	wait_lines b 3
	ck "b$$" -o "$K/b.wckpt"
	ck_ok b
	wait "$run_pid"
	brc=$?
	ref_wait
	[ "$brc" -eq "$ref_rc" ] && cmp -s "$work/b.out" "$work/ref.out" ||
		fail "the virtine did not go on as an untouched run after its checkpoint"
	# The object holds the state at its moment: restored in a sandbox cut
	# back to that moment, it ends the same.
	"$WASP_INSPECT" --json "$K/b.wckpt" >"$work/b.json" 2>"$work/i.err" || fail "wasp-inspect: $(cat "$work/i.err")"
	off=$(sed -n 's/^ *"offset": \([0-9]*\).*/\1/p' "$work/b.json" | head -1)
	cb=$(sed -n 's/^ *"console_bytes": \([0-9]*\).*/\1/p' "$work/b.json" | head -1)
	[ -n "$off" ] && [ -n "$cb" ] || fail "no offset or console bytes in wasp-inspect --json"
	mkdir -p "$work/c"
	head -c "$off" "$work/ref/counter.log" >"$work/c/counter.log"
	head -c "$cb" "$work/ref.out" >"$work/c.out"
	finish_from c "$K/b.wckpt" ;;
run_path)
	ref
	counter d --checkpoint-path "$K/d.wckpt" --trigger-file "$work/go" --stop-after-checkpoint
	wait_lines d 3
	touch "$work/go"
	stopped "$run_pid" d
	grep -q "checkpoint 1 (trigger file) to $K/d.wckpt" "$work/d.err" || fail "no log line: $(cat "$work/d.err")"
	finish_from d "$K/d.wckpt" ;;
chain)
	ref
	counter e --name "e$$"
	wait_lines e 3
	ck "e$$" -o "$K/full"
	ck_ok e
	wait_lines e 5
	ck "e$$" --incremental -o "$K/inc1"
	ck_ok e
	wait_lines e 7
	ck "e$$" --incremental --stop -o "$K/inc2"
	ck_ok e
	stopped "$run_pid" e
	# The chain merged into one object restores the same (--merge).
	"$WASP_RESTORE" --merge "$K/merged" "$K/full" "$K/inc1" "$K/inc2" 2>"$work/merge.err" ||
		fail "--merge to an object: $(cat "$work/merge.err")"
	cp -a "$work/e" "$work/em" && cp "$work/e.out" "$work/em.out"
	finish_from e "$K/full" "$K/inc1" "$K/inc2"
	finish_from em "$K/merged" ;;
refused)
	# An endless guest (spin_print), so it is surely still there for each
	# refused checkpoint, however slow the host.
	bg f "$WASP_RUN" -m 4M --name "f$$" "$TEST_GUEST_DIR/spin_print.bin"
	wait_lines f 1
	AWS_SECRET_ACCESS_KEY=wrong-$AWS_SECRET_ACCESS_KEY ck --stop "f$$" -o "$K/f.wckpt"
	one_line_error "wrong secret" "the secret access key is wrong"
	ck --stop "f$$" -o "s3://no-such-bucket-$$/f.wckpt"
	one_line_error "missing bucket" "the bucket does not exist"
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$work" "$WASP_CKPT" --stop "f$$" \
		-o "$K/f.wckpt" >"$work/ck.out" 2>"$work/ck.err"
	rc=$?
	one_line_error "no credentials" "no S3 credentials"
	no_object "$K/f.wckpt"
	alive "$run_pid" || fail "the virtine stopped"
	# It still answers: a good checkpoint stops it, and it goes on from there.
	ck --stop "f$$" -o "$K/f.wckpt"
	ck_ok
	wait "$run_pid" || fail "wasp-run exited $? after the stop"
	last=$(tail -1 "$work/f.out" | awk '{print $2}')
	bg fr "$WASP_RESTORE" "$K/f.wckpt"
	wait_lines fr 1
	kill "$run_pid" 2>/dev/null
	[ "$(head -1 "$work/fr.out")" = "tick $((last + 1))" ] ||
		fail "restored, it printed '$(head -1 "$work/fr.out")', expected tick $((last + 1))"
	# wasp-run with an s3:// path that cannot work says so at start.
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$work" "$WASP_RUN" \
		--checkpoint-path "$K/g.wckpt" "$G/counter.bin" -- 1 1 >"$work/g.out" 2>"$work/g.err"
	grc=$?
	[ "$grc" -eq 125 ] && grep -q "no S3 credentials" "$work/g.err" ||
		fail "wasp-run without credentials: exit $grc: $(cat "$work/g.err")"
	[ ! -s "$work/g.out" ] || fail "wasp-run ran the guest anyway" ;;
server_killed | kill_writer)
	# A guest that fills 120 MiB at start, half of each page random: its
	# checkpoint is ~60 MiB, eight parts, so its upload is seen under way
	# (in the server's list of uploads) long before it could end.
	bg big "$WASP_RUN" -m 160M --name "h$$" --allow=console_write,get_arg "$ASM_DIR/dirtier.bin" -- 4000000000 4 120
	wait_lines big 1
	if [ "$case_name" = kill_writer ]; then
		# A good object at the key first: the killed writer must leave it.
		ck "h$$" -o "$K/h.wckpt"
		ck_ok
		good=$(object_id "$K/h.wckpt")
		[ -n "$good" ] || fail "the first checkpoint did not land"
	fi
	"$WASP_CKPT" "h$$" -o "$K/h.wckpt" >"$work/ck2.out" 2>"$work/ck2.err" &
	ck_pid=$!
	bg_pids+=("$ck_pid")
	wait_until uploading "$K/h.wckpt" ||
		fail "no upload of $K/h.wckpt seen under way at the server: $(cat "$work/ck2.err")"
	if [ "$case_name" = server_killed ]; then
		"$WASP_S3_SCRIPT" kill-gateway "$WASP_S3_DIR" || fail "kill-gateway"
		wait "$ck_pid"
		crc=$?
		[ "$crc" -ne 0 ] || fail "wasp-ckpt succeeded with the gateway killed mid-upload"
		[ "$(wc -l <"$work/ck2.err")" -eq 1 ] || fail "not one line: $(cat "$work/ck2.err")"
		alive "$run_pid" || fail "the virtine stopped"
		"$WASP_S3_SCRIPT" restart-gateway "$WASP_S3_DIR" || fail "restart-gateway"
		no_object "$K/h.wckpt"
	else
		kill -9 "$ck_pid"
		wait "$ck_pid" 2>/dev/null
		alive "$run_pid" || fail "the virtine stopped"
		[ "$(object_id "$K/h.wckpt")" = "$good" ] || fail "the object at the key is not the older good one"
	fi
	# The runner is unharmed: the next checkpoint lands and stops it.
	ck "h$$" --stop -o "$K/h2.wckpt"
	ck_ok
	wait "$run_pid" || fail "wasp-run exited $? after the stop"
	"$WASP_INSPECT" "$K/h2.wckpt" >/dev/null 2>"$work/i.err" || fail "the next checkpoint: $(cat "$work/i.err")" ;;
many)
	# Endless guests (spin_print: "tick N" forever), so none can end before
	# its checkpoint: each restored one goes on with the next tick.
	N=64
	for ((i = 0; i < N; i++)); do
		bg "m$i" "$WASP_RUN" -m 4M --name "m$i-$$" "$TEST_GUEST_DIR/spin_print.bin"
		mpid[$i]=$run_pid
	done
	for ((i = 0; i < N; i++)); do wait_lines "m$i" 1; done
	for ((i = 0; i < N; i++)); do
		"$WASP_CKPT" -q --stop "m$i-$$" -o "$K/m$i.wckpt" >"$work/ck$i.out" 2>"$work/ck$i.err" &
		cpid[$i]=$!
	done
	for ((i = 0; i < N; i++)); do
		wait "${cpid[$i]}" || fail "wasp-ckpt of m$i: $(cat "$work/ck$i.err")"
		wait "${mpid[$i]}" || fail "m$i: wasp-run exited $? after the stop"
	done
	for ((i = 0; i < N; i++)); do
		last=$(tail -1 "$work/m$i.out" | awk '{print $2}')
		bg "r$i" "$WASP_RESTORE" "$K/m$i.wckpt"
		wait_lines "r$i" 1
		kill "$run_pid" 2>/dev/null
		wait "$run_pid" 2>/dev/null
		[ "$(head -1 "$work/r$i.out")" = "tick $((last + 1))" ] ||
			fail "m$i restored printed '$(head -1 "$work/r$i.out")', expected tick $((last + 1))"
	done ;;
*)
	echo "s3_ckpt_test.sh: unknown case '$case_name'"
	exit 2 ;;
esac
exit 0
