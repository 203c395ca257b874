#!/usr/bin/env bash
# crash_test.sh CASE: no checkpoint is ever lost, and no partial one ever
# runs (issue 6, crash consistency). Real KVM, the real tools.
#
#   kill_periodic  wasp-run writes a checkpoint to one path every 1 ms and is
#                  killed with SIGKILL at a random moment, CRASH_RUNS times
#                  (default 50). After every kill the checkpoint at that path
#                  passes wasp-inspect and wasp-restore finishes the guest
#                  with the output, log file and exit status of a run nobody
#                  touched; temporary files of killed writers do not pile up
#                  (the next save removes them: docs/hostile-guests.md).
#   kill_ckpt_tool wasp-ckpt -o PATH killed at random moments, many times,
#                  against one running virtine; then that virtine is killed:
#                  PATH still restores and finishes right; no temp files stay.
#   sweep          which leftover temporary files a save removes (only its
#                  own path's, of dead writers, not locked) and which it keeps.
#   files_rollback a checkpoint by SIGUSR1, the guest appends N more lines
#                  (N = 0, 1, 3, 8, 20, waited for by line count), kill -9;
#                  wasp-restore on the sandbox as the crash left it: the
#                  log, the output and the exit status are those of a run
#                  nobody touched (issue 12, item 2: before, lines written
#                  after the checkpoint were written twice). The log starts
#                  with 2 MiB written before the run, more than a checkpoint
#                  carries, so the restore must cut it back, not rewrite it.
#   files_refuse   the same crash, then a byte of the log changed where the
#                  checkpoint cannot put it back: wasp-restore refuses in
#                  one line naming counter.log, exit 125, runs nothing and
#                  changes no file; --files strict refuses the crash's
#                  appended lines likewise; --files ignore takes the file
#                  as it is.
#   truncated      a real checkpoint cut at every record boundary (and one
#                  byte either side) and at random offsets: wasp-restore
#                  refuses each with "truncated" and exit 125, the guest
#                  prints nothing and no file changes; wasp-inspect says 1.
#
# ctest passes WASP_RUN, WASP_CKPT, WASP_RESTORE, WASP_INSPECT, GUEST_DIR.
# Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for v in WASP_RUN WASP_CKPT WASP_RESTORE WASP_INSPECT GUEST_DIR; do
	[ -n "${!v:-}" ] || { echo "FAIL: $case_name: $v is not set"; exit 1; }
done
work=$(mktemp -d /tmp/wasp-crash-XXXXXX)
export WASP_RUN_DIR=$work/run
bg_pids=()
cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"

G=$GUEST_DIR
ALLOW=--allow=console_write,get_arg,files
RUNS=${CRASH_RUNS:-50}
box=$work/box ckpt=$work/box.wckpt
mkdir -p "$box" "$WASP_RUN_DIR"

# make_ref STEPS WORK: the reference, one run nobody touched: ref.out,
# ref.log, ref_rc. Sets STEPS and WORK for the case.
make_ref() {
	STEPS=$1 WORK=$2
	rm -f "$box/counter.log"
	"$WASP_RUN" $ALLOW --dir "$box" "$G/counter.bin" -- $STEPS $WORK >"$work/ref.out" 2>"$work/ref.err"
	ref_rc=$?
	mv "$box/counter.log" "$work/ref.log"
	grep -q '^done hash ' "$work/ref.out" || fail "the reference run did not finish"
}

temps() { find "$work" -maxdepth 1 -name "$(basename "$ckpt").tmp.*" | wc -l; }
rand_ms() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }

# check_restores WHAT: the checkpoint at $ckpt is whole and finishes the
# guest exactly as the reference did, on counter.log as the crash left it:
# the restore itself cuts back (or rewrites) what the killed run wrote
# after the checkpoint, which would otherwise be appended twice.
check_restores() {
	"$WASP_INSPECT" --json "$ckpt" >"$work/inspect.json" 2>"$work/inspect.err" ||
		fail "$1: wasp-inspect rejects the checkpoint: $(tail -1 "$work/inspect.err")"
	read -r off cb < <(python3 -I -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is True
f = d["host"]["files"] or []
print(f[0]["offset"] if f else 0, d["host"]["console_bytes"])' "$work/inspect.json") ||
		fail "$1: cannot read the checkpoint's file offset"
	# What the killed run wrote up to the offset must be right (unless the
	# checkpoint is older than that run and the file not yet that long).
	if [ -e "$box/counter.log" ] && [ "$(stat -c %s "$box/counter.log")" -ge "$off" ]; then
		cmp -s -n "$off" "$box/counter.log" "$work/ref.log" ||
			fail "$1: counter.log before the checkpoint's offset $off differs ($(stat -c %s "$box/counter.log") bytes; $(cmp -n "$off" "$box/counter.log" "$work/ref.log" 2>&1); checkpoint $(grep -o '"id": "[0-9a-f]*"' "$work/inspect.json" | head -1))"
	fi
	"$WASP_RESTORE" --dir "$box" --no-stdin "$ckpt" >"$work/restore.out" 2>"$work/restore.err"
	local rc=$?
	[ "$rc" -eq "$ref_rc" ] || fail "$1: the restore exited $rc, expected $ref_rc: $(tail -1 "$work/restore.err")"
	# The restored run prints what the reference printed after the
	# checkpoint's console position, byte for byte.
	tail -c +$((cb + 1)) "$work/ref.out" | cmp -s - "$work/restore.out" ||
		fail "$1: the restored output is not the reference output after byte $cb"
	cmp -s "$box/counter.log" "$work/ref.log" || fail "$1: counter.log differs from the reference"
}

# crash_after N: runs the counter on $box (its log starting as $work/pre.log),
# takes a checkpoint by SIGUSR1 once 10 lines are in, waits for N lines more
# than the checkpoint recorded and kills the run with SIGKILL.
crash_after() {
	local n=$1 pid off base at
	cp "$work/pre.log" "$box/counter.log"
	rm -f "$ckpt"
	base=$(wc -l <"$work/pre.log")
	"$WASP_RUN" $ALLOW --dir "$box" --checkpoint-path "$ckpt" "$G/counter.bin" -- $STEPS $WORK \
		>"$work/run.out" 2>"$work/run.err" &
	pid=$!
	bg_pids=("$pid")
	wait_until lines_at_least "$box/counter.log" $((base + 10)) || fail "N=$n: the guest wrote nothing"
	kill -USR1 "$pid"
	wait_until is_ckpt "$ckpt" || fail "N=$n: no checkpoint: $(tail -1 "$work/run.err")"
	"$WASP_INSPECT" --json "$ckpt" >"$work/inspect.json" || fail "N=$n: wasp-inspect rejects the checkpoint"
	off=$(python3 -I -S -c 'import json,sys; print(json.load(open(sys.argv[1]))["host"]["files"][0]["offset"])' "$work/inspect.json")
	at=$(head -c "$off" "$work/ref.log" | wc -l)
	wait_until lines_at_least "$box/counter.log" $((at + n)) || fail "N=$n: the guest did not go on"
	alive "$pid" || fail "N=$n: the run ended before the kill (make the guest longer)"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	crashed_at=$(($(wc -l <"$box/counter.log") - at))
}

# 2 MiB of earlier lines in front of the counter's: more than a checkpoint
# carries (WASP_CKPT_CARRY_DEFAULT, 1 MiB), so only cutting back can help.
make_pre() {
	python3 -I -S -c 'import sys; sys.stdout.write("".join("earlier line %06d\n" % i for i in range(110000)))' >"$work/pre.log"
	cp "$work/pre.log" "$box/counter.log"
	"$WASP_RUN" $ALLOW --dir "$box" "$G/counter.bin" -- $STEPS $WORK >"$work/ref.out" 2>"$work/ref.err"
	ref_rc=$?
	mv "$box/counter.log" "$work/ref.log"
	grep -q '^done hash ' "$work/ref.out" || fail "the reference run did not finish"
}

case $case_name in
files_rollback)
	# ~7 s of guest (1000 steps of ~7 ms): the kill comes well before its
	# end even where starting wasp-inspect and python3 between the
	# checkpoint and the kill is slow (an emulated CPU: 200 steps ended first).
	STEPS=1000 WORK=1000000
	make_pre
	for n in 0 1 3 8 20; do
		crash_after "$n"
		check_restores "N=$n"
		grep -q "put back 1 file" "$work/restore.err" || [ "$crashed_at" -eq 0 ] ||
			fail "N=$n: wasp-restore did not say it put counter.log back: $(cat "$work/restore.err")"
		echo "N=$n: killed $crashed_at lines after the checkpoint; the restore ends as the reference"
	done ;;
files_refuse)
	STEPS=1000 WORK=1000000
	make_pre
	crash_after 3
	# Change one byte the checkpoint summed (the first line) and cannot put back.
	printf 'E' | dd of="$box/counter.log" bs=1 seek=0 conv=notrunc status=none
	sum=$(sha256sum <"$box/counter.log")
	"$WASP_RESTORE" --dir "$box" --no-stdin "$ckpt" >"$work/restore.out" 2>"$work/restore.err"
	rc=$?
	[ "$rc" -eq 125 ] || fail "a changed counter.log was restored: exit $rc"
	[ ! -s "$work/restore.out" ] || fail "the guest ran: $(head -1 "$work/restore.out")"
	[ "$(wc -l <"$work/restore.err")" -eq 1 ] && grep -q "refused.*'counter.log'" "$work/restore.err" ||
		fail "not one line naming counter.log: $(cat "$work/restore.err")"
	[ "$(sha256sum <"$box/counter.log")" = "$sum" ] || fail "the refused restore changed counter.log"
	echo "changed: $(cat "$work/restore.err")"
	# Only appended to: --files strict refuses that too, changing nothing.
	printf 'e' | dd of="$box/counter.log" bs=1 seek=0 conv=notrunc status=none
	sum=$(sha256sum <"$box/counter.log")
	"$WASP_RESTORE" --files strict --dir "$box" --no-stdin "$ckpt" >"$work/restore.out" 2>"$work/restore.err"
	rc=$?
	[ "$rc" -eq 125 ] && [ ! -s "$work/restore.out" ] && grep -q "refused.*'counter.log'" "$work/restore.err" ||
		fail "--files strict took appended lines: exit $rc: $(cat "$work/restore.err")"
	[ "$(sha256sum <"$box/counter.log")" = "$sum" ] || fail "--files strict changed counter.log"
	echo "strict: $(cat "$work/restore.err")"
	# ignore: the old way, the caller's business (cut back by hand here).
	off=$(python3 -I -S -c 'import json,sys; print(json.load(open(sys.argv[1]))["host"]["files"][0]["offset"])' "$work/inspect.json")
	head -c "$off" "$work/ref.log" >"$box/counter.log"
	"$WASP_RESTORE" --files ignore --dir "$box" --no-stdin "$ckpt" >"$work/restore.out" 2>"$work/restore.err"
	[ $? -eq "$ref_rc" ] || fail "--files ignore: $(tail -1 "$work/restore.err")"
	cmp -s "$box/counter.log" "$work/ref.log" || fail "--files ignore: counter.log differs" ;;
kill_periodic)
	# counter: ~0.4 s here without checkpoints; the kill comes after 10-250 ms.
	make_ref 60 1000000
	mid_write=0 restored_from_earlier=0 t0=$(date +%s)
	for ((i = 0; i < RUNS; i++)); do
		before=$(sha256sum "$ckpt" 2>/dev/null | cut -c1-16)
		rm -f "$box/counter.log"
		"$WASP_RUN" $ALLOW --dir "$box" --checkpoint-path "$ckpt" --checkpoint-every 1ms \
			"$G/counter.bin" -- $STEPS $WORK >"$work/run.out" 2>"$work/run.err" &
		pid=$!
		bg_pids=("$pid")
		# The first run waits for a first checkpoint; later ones find the
		# previous run's at the path already.
		[ "$i" -gt 0 ] || wait_until is_ckpt "$ckpt" || fail "no first checkpoint"
		sleep "0.$(printf %03d "$(rand_ms 10 250)")"
		alive "$pid" || fail "run $i: wasp-run ended before the kill (make the guest longer): $(tail -1 "$work/run.err")"
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		n=$(temps)
		[ "$n" -gt 0 ] && mid_write=$((mid_write + 1))
		[ "$n" -le 1 ] || fail "run $i: $n temporary files beside the checkpoint: they pile up"
		[ "$(sha256sum "$ckpt" | cut -c1-16)" = "$before" ] && restored_from_earlier=$((restored_from_earlier + 1))
		check_restores "run $i"
	done
	echo "$RUNS kills in $(($(date +%s) - t0)) s; $mid_write landed while a checkpoint was being written (a temp file was left); $restored_from_earlier times no new checkpoint had been renamed in yet"
	# The kill must hit writes for the test to mean anything.
	[ "$mid_write" -gt 0 ] || fail "no kill landed during a write"
	# One more save to the path removes what the last kill left.
	"$WASP_RUN" $ALLOW --dir "$box" --checkpoint-path "$ckpt" --checkpoint-every 1ms --stop-after-checkpoint \
		"$G/counter.bin" -- $STEPS $WORK >/dev/null 2>"$work/last.err" || fail "the last run failed: $(tail -1 "$work/last.err")"
	[ "$(temps)" -eq 0 ] || fail "temporary files stay after a later save: $(ls "$work")" ;;
kill_ckpt_tool)
	# A few seconds of guest, longer than the loop of killed checkpointers.
	make_ref 3000 200000
	"$WASP_RUN" $ALLOW --dir "$box" --name crashy "$G/counter.bin" -- $STEPS $WORK >"$work/run.out" 2>"$work/run.err" &
	pid=$!
	bg_pids=("$pid")
	wait_until test -S "$WASP_RUN_DIR/crashy.sock" || fail "no control socket"
	"$WASP_CKPT" -q -o "$ckpt" crashy || fail "the first checkpoint failed"
	kills=0 done_ok=0
	for ((i = 0; i < RUNS; i++)); do
		"$WASP_CKPT" -q -o "$ckpt" crashy 2>"$work/ckpt.err" &
		cpid=$!
		sleep "0.00$(rand_ms 0 9)"
		if kill -9 "$cpid" 2>/dev/null; then kills=$((kills + 1)); fi
		wait "$cpid" && done_ok=$((done_ok + 1))
		alive "$pid" || fail "round $i: the virtine died when its checkpointer was killed: $(tail -2 "$work/run.err")"
		is_ckpt "$ckpt" || fail "round $i: no checkpoint at the path"
		[ "$(temps)" -le 2 ] || fail "round $i: temporary files pile up: $(temps)"
	done
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	echo "$kills wasp-ckpt processes killed, $done_ok finished first; $(temps) temp file(s) before the next save"
	check_restores "after $RUNS killed checkpointers"
	# A later checkpoint to the path removes what killed writers left.
	"$WASP_RUN" $ALLOW --dir "$box" --name crashy2 "$G/counter.bin" -- $STEPS $WORK >/dev/null 2>&1 &
	pid=$!
	bg_pids=("$pid")
	wait_until test -S "$WASP_RUN_DIR/crashy2.sock" || fail "no control socket"
	"$WASP_CKPT" -q --stop -o "$ckpt" crashy2 || fail "a clean checkpoint failed"
	wait "$pid"
	[ "$(temps)" -eq 0 ] || fail "temporary files stay after a later save: $(ls "$work")" ;;
truncated)
	"$WASP_RUN" $ALLOW --dir "$box" --name trunc "$G/counter.bin" -- 400 1000000 >/dev/null 2>&1 &
	pid=$!
	bg_pids=("$pid")
	wait_until test -S "$WASP_RUN_DIR/trunc.sock" || fail "no control socket"
	sleep 0.2
	"$WASP_CKPT" -q --stop -o "$ckpt" trunc || fail "checkpoint failed"
	wait "$pid"
	n=$(stat -c %s "$ckpt")
	# Record boundaries: magic (8 bytes), then varint length + message.
	python3 -I -S - "$ckpt" >"$work/cuts" 2>"$work/records" <<'EOF' || fail "cannot list the record boundaries"
import random, sys
data = open(sys.argv[1], 'rb').read()
pos, bounds = 8, [0, 8]
while pos < len(data):
    length = shift = 0
    while True:
        b = data[pos]; pos += 1
        length |= (b & 0x7f) << shift; shift += 7
        if not b & 0x80: break
    bounds.append(pos)          # after the length varint
    pos += length
    bounds.append(pos)          # after the record
assert pos == len(data), "records do not end at the end of the file"
cuts = set()
for b in bounds:
    cuts.update((b - 1, b, b + 1))
random.seed(6)
cuts.update(random.randrange(1, len(data)) for _ in range(60))
print(len(bounds) // 2 - 1, file=sys.stderr)
for c in sorted(cuts):
    if 0 <= c < len(data): print(c)
EOF
	records=$(cat "$work/records")
	cp "$box/counter.log" "$work/log.before"
	tried=0
	while read -r cut; do
		head -c "$cut" "$ckpt" >"$work/cut.wckpt"
		"$WASP_RESTORE" --dir "$box" --no-stdin "$work/cut.wckpt" >"$work/cut.out" 2>"$work/cut.err"
		rc=$?
		[ "$rc" -eq 125 ] || fail "cut at $cut of $n: exit $rc, expected 125"
		[ ! -s "$work/cut.out" ] || fail "cut at $cut of $n: the guest ran and printed: $(head -1 "$work/cut.out")"
		[ "$(wc -l <"$work/cut.err")" -eq 1 ] || fail "cut at $cut: not one line of error"
		if [ "$cut" -ge 8 ]; then
			grep -q 'truncated' "$work/cut.err" || fail "cut at $cut of $n: unclear error: $(cat "$work/cut.err")"
		else
			grep -Eq 'truncated|not a wasp checkpoint|empty' "$work/cut.err" || fail "cut at $cut: unclear error: $(cat "$work/cut.err")"
		fi
		"$WASP_INSPECT" "$work/cut.wckpt" >/dev/null 2>&1
		[ $? -eq 1 ] || fail "cut at $cut: wasp-inspect did not say 1"
		tried=$((tried + 1))
	done <"$work/cuts"
	cmp -s "$box/counter.log" "$work/log.before" || fail "a refused restore changed counter.log"
	# Through a pipe, the same.
	head -c $((n - 1)) "$ckpt" | "$WASP_RESTORE" --dir "$box" - >"$work/cut.out" 2>"$work/cut.err"
	[ $? -eq 125 ] && [ ! -s "$work/cut.out" ] && grep -q truncated "$work/cut.err" || fail "a pipe cut one byte short was not refused"
	echo "$tried cuts of a $n-byte checkpoint refused (every record boundary of $records and random ones); e.g.: $(cat "$work/cut.err")" ;;
sweep)
	# Which leftovers a save removes: only temp files of this path whose
	# writer is dead AND whose flock is free.
	sh -c 'exit 0' &
	dead=$!
	wait "$dead"
	alive "$dead" && fail "pid $dead is still alive"
	b=$(basename "$ckpt")
	for f in "$b.tmp.$dead" "$b.tmp.$dead.0123abcd" "$b.tmp.$$" "$b.tmp.$dead.locked" \
		"$b.tmp.notapid" "other.wckpt.tmp.$dead" "$b.tmp.${dead}x"; do
		echo junk >"$work/$f"
	done
	mv "$work/$b.tmp.$dead.locked" "$work/$b.tmp.$dead.fedc"
	(flock 9 && exec sleep 20) 9<>"$work/$b.tmp.$dead.fedc" &
	bg_pids+=($!)
	locked() { ! flock -n "$work/$b.tmp.$dead.fedc" true; }
	wait_until locked || fail "flock(1) did not take the lock"
	make_ref 20 100000
	"$WASP_RUN" $ALLOW --dir "$box" --checkpoint-path "$ckpt" --checkpoint-every 1ms --stop-after-checkpoint \
		"$G/counter.bin" -- 20 1000000 >/dev/null 2>"$work/run.err" || fail "the save failed: $(cat "$work/run.err")"
	left=$(cd "$work" && ls | grep tmp | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$b.tmp.$$" "$b.tmp.$dead.fedc" "$b.tmp.notapid" "other.wckpt.tmp.$dead" "$b.tmp.${dead}x" | sort | tr '\n' ' ')
	[ "$left" = "$want" ] || fail "left: $left; expected: $want"
	echo "kept: $left" ;;
*) echo "no such case: $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
