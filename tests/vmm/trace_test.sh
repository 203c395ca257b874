#!/usr/bin/env bash
# trace_test.sh CASE: wasp-run --trace and the checkpoints at chosen points
# (--checkpoint-at, --checkpoint-after-exits, --checkpoint-after-hypercalls),
# end to end on real KVM. Traces are read with python3's json module, so
# every line must be valid JSON. A checkpoint taken at a point and restored
# in another process must end exactly like a run nobody touched: the same
# stdout, byte for byte, and the same exit status.
#
# ctest passes WASP_RUN, WASP_RESTORE, WASP_INSPECT, GUEST_DIR (fib64.bin),
# TEST_GUEST_DIR (calls.bin and its calls.sym) and ASM_DIR (steps.bin,
# nullrd.bin). Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read traces"; exit 77; }

work=$(mktemp -d /tmp/wasp-trace-XXXXXX)
export WASP_RUN_DIR=$work/run
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/../lib.sh"

G=$GUEST_DIR T=$TEST_GUEST_DIR A=$ASM_DIR

# events FILE KIND [FIELD]: one line per event of KIND (all kinds: '*'),
# FIELD's value or the kind; fails on a line that is not JSON.
events() {
	python3 - "$@" <<'PY'
import json, sys
path, kind = sys.argv[1], sys.argv[2]
field = sys.argv[3] if len(sys.argv) > 3 else "ev"
for n, line in enumerate(open(path), 1):
    try:
        ev = json.loads(line)
    except ValueError:
        sys.exit("line %d is not JSON: %r" % (n, line))
    if kind in ("*", ev["ev"]):
        print(ev.get(field, ""))
PY
}

# expect_fail STATUS MESSAGE ARGS...: wasp-run ARGS fails with STATUS and
# one line on stderr containing MESSAGE.
expect_fail() {
	local want=$1 msg=$2
	shift 2
	"$WASP_RUN" "$@" >"$work/x.out" 2>"$work/x.err"
	local rc=$?
	[ "$rc" -eq "$want" ] || fail "exit status $rc, expected $want"
	grep -qF -- "$msg" "$work/x.err" || fail "stderr lacks '$msg': $(cat "$work/x.err")"
	[ "$(wc -l <"$work/x.err")" -eq 1 ] || fail "more than one line on stderr"
}

# point_restore OPTIONS...: calls.bin stopped at a point, restored in a new
# process; the two outputs together are the uninterrupted run's.
point_restore() {
	"$WASP_RUN" "$T/calls.bin" >"$work/ref.out" 2>"$work/ref.err"
	local ref_rc=$?
	"$WASP_RUN" --checkpoint-path "$work/p.wckpt" --stop-after-checkpoint "$@" \
		"$T/calls.bin" >"$work/p.out" 2>"$work/p.err"
	local rc=$?
	[ "$rc" -eq 0 ] || fail "stopped run: exit status $rc"
	grep -q "stopped after checkpoint" "$work/p.err" || fail "it did not stop at the point"
	is_ckpt "$work/p.wckpt" || fail "no checkpoint"
	"$WASP_RESTORE" "$work/p.wckpt" >>"$work/p.out" 2>"$work/r.err"
	rc=$?
	[ "$rc" -eq "$ref_rc" ] || fail "restored run: exit status $rc, expected $ref_rc"
	cmp -s "$work/ref.out" "$work/p.out" || fail "stopped + restored output differs from one run's"
}

case $case_name in
fib_hypercalls)
	# fib64 asks for its argument, prints once and exits: exactly these
	# hypercalls, in this order, with their results.
	"$WASP_RUN" --trace=hypercalls --trace-out "$work/t.jsonl" "$G/fib64.bin" -- 10 >"$work/o.out" 2>"$work/o.err" ||
		fail "exit status $?"
	[ "$(cat "$work/o.out")" = "fib(10) = 55" ] || fail "wrong output"
	[ "$(events "$work/t.jsonl" hypercall name | tr '\n' ' ')" = "get_arg console_write " ] ||
		fail "hypercalls: $(events "$work/t.jsonl" hypercall name | tr '\n' ' ')"
	[ "$(events "$work/t.jsonl" hypercall result | tr '\n' ' ')" = "3 13 " ] ||
		fail "results: $(events "$work/t.jsonl" hypercall result | tr '\n' ' ')"
	[ "$(events "$work/t.jsonl" '*' | head -1)" = start ] || fail "no start line"
	[ "$(events "$work/t.jsonl" end reason)" = exited ] || fail "no end line"
	[ "$(events "$work/t.jsonl" end code)" = 0 ] || fail "end code" ;;
steps)
	# Every instruction of steps.asm, in order, the loop three times, the
	# hypercall and the instructions after it included (PVM drops a single
	# step across an I/O exit; the vmm sets it again).
	"$WASP_RUN" --trace=steps --trace-out "$work/t.jsonl" "$A/steps.bin" 2>"$work/o.err"
	rc=$?
	[ "$rc" -eq 3 ] || fail "exit status $rc, expected 3"
	want="0x802a 0x802f 0x8034 0x8036 0x8038 0x803a 0x803d 0x8038 0x803a 0x803d 0x8038 0x803a 0x803d 0x803f 0x8044 0x8046 0x8048 "
	got=$(events "$work/t.jsonl" step rip | tr '\n' ' ')
	[ "$got" = "$want" ] || fail "steps: $got"
	[ "$(events "$work/t.jsonl" end steps)" = 17 ] || fail "end line counts $(events "$work/t.jsonl" end steps) steps" ;;
steps_real)
	# Real mode: the other way steps arrive (KVM_EXIT_DEBUG).
	"$WASP_RUN" --trace=steps,exits --trace-out "$work/t.jsonl" "$A/steps16.bin" 2>"$work/o.err"
	rc=$?
	[ "$rc" -eq 3 ] || fail "exit status $rc, expected 3"
	[ "$(events "$work/t.jsonl" step rip | tr '\n' ' ')" = "0x8000 0x8006 0x800a " ] ||
		fail "steps: $(events "$work/t.jsonl" step rip | tr '\n' ' ')" ;;
steps_bound)
	# A bound ends stepping; the guest then runs on and ends as usual.
	"$WASP_RUN" --trace=steps --trace-steps 5 --trace-regs rcx,rip --trace-out "$work/t.jsonl" \
		"$A/steps.bin" 2>"$work/o.err"
	rc=$?
	[ "$rc" -eq 3 ] || fail "exit status $rc, expected 3"
	[ "$(events "$work/t.jsonl" step rip | tr '\n' ' ')" = "0x802a 0x802f 0x8034 0x8036 0x8038 " ] ||
		fail "steps: $(events "$work/t.jsonl" step rip | tr '\n' ' ')"
	# registers after the step: rip is the next instruction
	[ "$(events "$work/t.jsonl" step regs | tail -1)" = "{'rcx': '0x1', 'rip': '0x803a'}" ] ||
		fail "registers: $(events "$work/t.jsonl" step regs | tail -1)"
	"$WASP_RUN" --trace=steps --trace-steps 1us --trace-out "$work/t2.jsonl" "$A/steps.bin" 2>"$work/o2.err"
	[ $? -eq 3 ] || fail "time bound: wrong exit status"
	n=$(events "$work/t2.jsonl" step | wc -l)
	[ "$n" -ge 1 ] && [ "$n" -lt 17 ] || fail "a 1 us bound gave $n steps" ;;
steps_fault)
	# A real fault while stepping stays a fault, not a step.
	"$WASP_RUN" --trace=steps,faults --trace-out "$work/t.jsonl" "$A/nullrd.bin" 2>"$work/o.err"
	rc=$?
	[ "$rc" -eq 139 ] || fail "exit status $rc, expected 139"
	[ "$(events "$work/t.jsonl" fault kvm)" = shutdown ] || fail "no fault event"
	[ "$(events "$work/t.jsonl" end reason)" = fault ] || fail "end reason" ;;
all_events)
	# exits, io and hypercalls of one `out 0xff`, with memory attached.
	"$WASP_RUN" --trace=all --trace-mem 0x8000:4 --trace-out "$work/t.jsonl" "$A/steps.bin" 2>"$work/o.err"
	[ $? -eq 3 ] || fail "exit status"
	[ "$(events "$work/t.jsonl" io port | tr '\n' ' ')" = "255 250 " ] || fail "io ports"
	[ "$(events "$work/t.jsonl" hypercall result)" = -38 ] || fail "hypercall result (ENOSYS)"
	[ "$(events "$work/t.jsonl" exit kvm | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')" = "io=2 shutdown=15 " ] ||
		fail "exits: $(events "$work/t.jsonl" exit kvm | sort | uniq -c | tr '\n' ' ')"
	# the image starts with a short jmp (0xeb) over its header
	[ "$(events "$work/t.jsonl" hypercall mem)" = "{'addr': '0x8000', 'hex': 'eb285741'}" ] ||
		fail "memory: $(events "$work/t.jsonl" hypercall mem)" ;;
inspect)
	"$WASP_RUN" --trace=hypercalls,exits --trace-out "$work/t.jsonl" "$T/calls.bin" >/dev/null 2>&1
	"$WASP_INSPECT" --trace "$work/t.jsonl" >"$work/s.out" 2>"$work/s.err" || fail "inspect failed"
	grep -Eq '^  hypercall +8$' "$work/s.out" || fail "hypercall count: $(cat "$work/s.out")"
	grep -Eq '^  console_write +7 ' "$work/s.out" || fail "console_write count: $(cat "$work/s.out")"
	grep -Eq '^  get_arg +1 ' "$work/s.out" || fail "get_arg count"
	grep -q '^end: exited, code 164$' "$work/s.out" || fail "end line: $(cat "$work/s.out")"
	echo '{"no":1}' >"$work/bad.jsonl"
	"$WASP_INSPECT" --trace "$work/bad.jsonl" >/dev/null 2>"$work/b.err"
	[ $? -eq 1 ] || fail "a malformed trace is not an error"
	grep -q "line 1 is not a trace event" "$work/b.err" || fail "message: $(cat "$work/b.err")" ;;
trace_off)
	# No --trace: nothing but the guest's output.
	"$WASP_RUN" "$A/steps.bin" >"$work/o.out" 2>"$work/o.err"
	[ $? -eq 3 ] || fail "exit status"
	[ ! -s "$work/o.out" ] && [ ! -s "$work/o.err" ] || fail "output without --trace" ;;
at_third_call)
	# A breakpoint on step()'s entry (from calls.sym), its third call.
	point_restore --checkpoint-at step:3
	grep -q "breakpoint 0x[0-9a-f]* hit 3" "$work/p.err" || fail "log line: $(cat "$work/p.err")"
	# stopped exactly before the third call: two lines printed, then the rest
	"$WASP_RUN" --checkpoint-path "$work/q.wckpt" --stop-after-checkpoint --checkpoint-at step:3 \
		"$T/calls.bin" >"$work/q.out" 2>/dev/null
	[ "$(wc -l <"$work/q.out")" -eq 2 ] || fail "$(wc -l <"$work/q.out") lines before the point" ;;
restore_on_point)
	# A restore that starts on the breakpoint it stopped at, with the same
	# point again: it steps over it (no instant re-hit) and stops at the
	# next call. Three processes, one uninterrupted output.
	point_restore --checkpoint-at step:3
	"$WASP_RUN" --checkpoint-path "$work/a.wckpt" --stop-after-checkpoint --checkpoint-at step:3 \
		"$T/calls.bin" >"$work/chain.out" 2>/dev/null || fail "first run"
	"$WASP_RESTORE" --checkpoint-path "$work/b.wckpt" --stop-after-checkpoint \
		--checkpoint-at step --symbols "$T/calls.sym" "$work/a.wckpt" >"$work/mid.out" 2>"$work/mid.err" ||
		fail "second run: $(cat "$work/mid.err")"
	[ "$(cat "$work/mid.out")" = "$(sed -n 3p "$work/ref.out")" ] ||
		fail "the restore between the two points printed '$(cat "$work/mid.out")'"
	cat "$work/mid.out" >>"$work/chain.out"
	"$WASP_RESTORE" "$work/b.wckpt" >>"$work/chain.out" 2>/dev/null
	[ $? -eq 164 ] || fail "last run: wrong exit status"
	cmp -s "$work/ref.out" "$work/chain.out" || fail "three runs' output differs from one run's" ;;
at_continue)
	# Without a stop the run goes on past the breakpoint (and a tracer
	# sees the breakpoint's hits); the checkpoint restores as well.
	"$WASP_RUN" "$T/calls.bin" >"$work/ref.out" 2>/dev/null
	ref_rc=$?
	addr=0x$(awk '$3 == "step" {print $1}' "$T/calls.sym")
	"$WASP_RUN" --checkpoint-path "$work/c.wckpt" --checkpoint-at "$addr:2" --trace=hypercalls \
		--trace-out "$work/t.jsonl" "$T/calls.bin" >"$work/c.out" 2>"$work/c.err"
	rc=$?
	[ "$rc" -eq "$ref_rc" ] || fail "exit status $rc, expected $ref_rc"
	cmp -s "$work/ref.out" "$work/c.out" || fail "output differs with a checkpoint taken on the way"
	[ "$(events "$work/t.jsonl" break hits | tr '\n' ' ')" = "1 2 " ] || fail "break events"
	"$WASP_RESTORE" "$work/c.wckpt" >"$work/r.out" 2>"$work/r.err"
	[ $? -eq "$ref_rc" ] || fail "restored: wrong exit status"
	tail -n +2 "$work/ref.out" | cmp -s - "$work/r.out" || fail "restored output is not the rest" ;;
after_exits)
	point_restore --checkpoint-after-exits 4
	grep -q "after 4 exits" "$work/p.err" || fail "log line" ;;
after_hypercalls)
	point_restore --checkpoint-after-hypercalls 3
	grep -q "after 3 hypercalls" "$work/p.err" || fail "log line" ;;
usr1_with_breakpoint)
	# A checkpoint by another trigger while a breakpoint is planted (in
	# wasp_printf, hit on every tick) holds the plain code: the restored
	# guest prints on where it stopped. A leaked int3 would fault it.
	"$WASP_RUN" --checkpoint-path "$work/u.wckpt" --checkpoint-at wasp_printf:1000000 \
		--stop-after-checkpoint "$T/spin_print.bin" >"$work/u.out" 2>"$work/u.err" &
	pid=$!
	wait_until lines_at_least "$work/u.out" 3 || fail "no ticks"
	kill -USR1 "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] || fail "exit status $rc after the stop"
	grep -q "(SIGUSR1)" "$work/u.err" || fail "no SIGUSR1 checkpoint"
	last=$(tail -1 "$work/u.out" | awk '{print $2}')
	"$WASP_RESTORE" --timeout 1s "$work/u.wckpt" >"$work/r.out" 2>"$work/r.err"
	[ $? -eq 124 ] || fail "the restored guest did not run until its timeout"
	[ "$(head -1 "$work/r.out")" = "tick $((last + 1))" ] ||
		fail "restored guest printed '$(head -1 "$work/r.out")', expected tick $((last + 1))" ;;
point_at_end)
	# calls.bin makes 9 exits, the last its exit: a point there saves nothing.
	"$WASP_RUN" --checkpoint-path "$work/e.wckpt" --checkpoint-after-exits 9 "$T/calls.bin" \
		>"$work/e.out" 2>"$work/e.err"
	rc=$?
	[ "$rc" -eq 164 ] || fail "exit status $rc, expected the guest's 164"
	grep -q "after 9 exits: the guest ended there; no checkpoint" "$work/e.err" || fail "no note"
	[ ! -e "$work/e.wckpt" ] || fail "a checkpoint was written" ;;
bad_event)
	expect_fail 125 "--trace: unknown event 'calls'" --trace=hypercalls,calls "$A/steps.bin"
	expect_fail 125 "--trace: no events" --trace= "$A/steps.bin" ;;
bad_regs)
	expect_fail 125 "unknown register 'eax'" --trace=steps --trace-regs eax "$A/steps.bin"
	expect_fail 125 "need --trace" --trace-regs rax "$A/steps.bin" ;;
bad_mem)
	expect_fail 125 "outside guest memory" --trace=hypercalls --trace-mem 0xfffff0:64 -m 16M "$A/steps.bin"
	expect_fail 125 "is not ADDR:LEN" --trace=hypercalls --trace-mem 0x9000 "$A/steps.bin" ;;
bad_addr)
	expect_fail 125 "breakpoint 0x40000000 is outside guest memory" \
		--checkpoint-path "$work/x.wckpt" --checkpoint-at 0x40000000 "$A/steps.bin"
	[ ! -e "$work/x.wckpt" ] || fail "a checkpoint was written" ;;
bad_symbol)
	expect_fail 125 "no symbol 'nosuch' in" --checkpoint-path "$work/x.wckpt" \
		--checkpoint-at nosuch "$T/calls.bin"
	expect_fail 125 "give one with --symbols" --checkpoint-path "$work/x.wckpt" \
		--checkpoint-at step "$A/steps.bin" ;;
bad_count)
	expect_fail 125 "is not a count" --checkpoint-path "$work/x.wckpt" --checkpoint-at step:0 "$T/calls.bin"
	expect_fail 125 "is not a count" --checkpoint-path "$work/x.wckpt" --checkpoint-after-exits x "$T/calls.bin" ;;
needs_path)
	expect_fail 125 "--checkpoint-at needs --checkpoint-path" --checkpoint-at step "$T/calls.bin"
	expect_fail 125 "--checkpoint-after-hypercalls needs --checkpoint-path" \
		--checkpoint-after-hypercalls 2 "$T/calls.bin" ;;
*)
	echo "unknown case $case_name"
	exit 2 ;;
esac
echo "PASS: $case_name"
