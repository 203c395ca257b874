#!/usr/bin/env bash
# trigger_test.sh CASE: checkpoints of a running virtine through its triggers
# (SIGUSR1, trigger file, period, the control socket via wasp-ckpt), end to
# end on real KVM. The rule every case checks: a virtine that was
# checkpointed (and not stopped) ends with exactly the output, log file and
# exit status of a run nobody touched.
#
# ctest passes WASP_RUN, WASP_CKPT, GUEST_DIR (examples: counter.bin),
# TEST_GUEST_DIR (spin_print.bin) and, once it is built, WASP_RESTORE.
# Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }

work=$(mktemp -d /tmp/wasp-trig-XXXXXX)
# A private socket directory: tests never touch /run/wasp.
export WASP_RUN_DIR=$work/run
bg_pids=()
small_mounted=
cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "$small_mounted" ] && umount "$work/small"
	rm -rf "$work"
}
trap cleanup EXIT

G=$GUEST_DIR T=$TEST_GUEST_DIR
ALLOW=--allow=console_write,get_arg,files
# About 2-3 s of guest work: 80 steps of ~30 ms, so a trigger sent after
# the first steps lands mid-run.
STEPS=80 WORK=20000000

. "$(dirname "$0")/../lib.sh"

gone() { ! alive "$1"; }

# ref: counter without any checkpoint, in $work/ref; sets ref_rc. Runs in the
# background while the case runs; ref_wait collects it.
ref() {
	mkdir -p "$work/ref"
	"$WASP_RUN" $ALLOW --dir "$work/ref" "$G/counter.bin" -- $STEPS $WORK \
		>"$work/ref.stdout" 2>"$work/ref.stderr" &
	ref_pid=$!
	bg_pids+=("$ref_pid")
}
ref_wait() {
	wait "$ref_pid"
	ref_rc=$?
	grep -q '^done hash ' "$work/ref.stdout" || fail "the reference run did not finish"
}

# start_counter N [OPTIONS]: counter in the background, sandbox $work/N,
# stdout N.out, stderr N.err; sets run_pid.
start_counter() {
	local n=$1
	shift
	mkdir -p "$work/$n"
	"$WASP_RUN" "$@" $ALLOW --dir "$work/$n" "$G/counter.bin" -- $STEPS $WORK \
		>"$work/$n.out" 2>"$work/$n.err" &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until lines_at_least "$work/$n.out" 5 || fail "$n: no output from the guest"
}
# run_status: waits for the background wasp-run; sets rc.
run_status() { wait "$run_pid"; rc=$?; }
# finish_exact N: the run ends exactly as the reference did.
finish_exact() {
	local n=$1
	run_status
	ref_wait
	[ "$rc" -eq "$ref_rc" ] || fail "$n: exit status $rc, the uninterrupted run's was $ref_rc"
	cmp -s "$work/ref.stdout" "$work/$n.out" || fail "$n: stdout differs from the uninterrupted run"
	cmp -s "$work/ref/counter.log" "$work/$n/counter.log" || fail "$n: counter.log differs from the uninterrupted run"
}
# restore_exact N FILE: the stopped run N goes on from FILE in its own
# sandbox, and stdout, counter.log and exit status end as one run's.
restore_exact() {
	local n=$1 file=$2
	"$WASP_RESTORE" --dir "$work/$n" "$file" >>"$work/$n.out" 2>"$work/restore.err"
	rc=$?
	ref_wait
	[ "$rc" -eq "$ref_rc" ] || fail "$n: restored run exit status $rc, expected $ref_rc: $(cat "$work/restore.err")"
	cmp -s "$work/ref.stdout" "$work/$n.out" || fail "$n: stopped + restored output differs from one run's"
	cmp -s "$work/ref/counter.log" "$work/$n/counter.log" || fail "$n: counter.log differs"
}
# mid_run N: the checkpoint landed while the guest still had work to do.
mid_run() { ! grep -q '^done hash' "$work/$1.out" || fail "$1: the guest finished before the checkpoint (make WORK bigger)"; }
# logged N K SOURCE: wasp-run logged checkpoint K from SOURCE as taken.
logged() { grep -q "^wasp-run: checkpoint $2 ($3[^)]*) to .*: [0-9]* bytes in " "$work/$1.err"; }

# ck ARGS...: runs wasp-ckpt; stdout/stderr in ck.stdout/ck.stderr; sets rc.
ck() { "$WASP_CKPT" "$@" >"$work/ck.stdout" 2>"$work/ck.stderr"; rc=$?; }
# ck_error MESSAGE: the last wasp-ckpt failed with status 125 and one line naming it.
ck_error() {
	[ "$rc" -eq 125 ] || fail "wasp-ckpt: exit status $rc, expected 125 ($(cat "$work/ck.stderr"))"
	[ "$(wc -l <"$work/ck.stderr")" -eq 1 ] || fail "wasp-ckpt: error is not one line: $(cat "$work/ck.stderr")"
	grep -q '^wasp-ckpt: ' "$work/ck.stderr" || fail "wasp-ckpt: error does not name the tool"
	grep -q -- "$1" "$work/ck.stderr" || fail "wasp-ckpt: stderr lacks '$1': $(cat "$work/ck.stderr")"
}
ck_ok() { [ "$rc" -eq 0 ] || fail "wasp-ckpt failed ($rc): $(cat "$work/ck.stderr")"; }
no_temp_files() {
	local left
	left=$(find "$work" -name '*.tmp.*' 2>/dev/null)
	[ -z "$left" ] || fail "temporary files left: $left"
}

# run_fg ARGS...: wasp-run in the foreground; out/err in fg.out/fg.err; rc.
run_fg() { "$WASP_RUN" "$@" >"$work/fg.out" 2>"$work/fg.err"; rc=$?; }
fg_error() {
	[ "$rc" -eq 125 ] || fail "wasp-run: exit status $rc, expected 125"
	[ "$(wc -l <"$work/fg.err")" -eq 1 ] || fail "wasp-run: error is not one line: $(cat "$work/fg.err")"
	grep -q -- "$1" "$work/fg.err" || fail "wasp-run: stderr lacks '$1': $(cat "$work/fg.err")"
}

# ticks_consecutive FILE: "tick 0", "tick 1", ... with no gap or repeat.
ticks_consecutive() { awk '$0 != "tick " NR - 1 { bad = 1 } END { exit bad || NR == 0 }' "$1"; }

case $case_name in
sigusr1)
	ref
	start_counter s --checkpoint-path "$work/s.wckpt"
	kill -USR1 "$run_pid"
	wait_until logged s 1 SIGUSR1 || fail "no SIGUSR1 checkpoint logged"
	mid_run s
	is_ckpt "$work/s.wckpt" || fail "the checkpoint file is missing or not a checkpoint"
	kill -USR1 "$run_pid"
	wait_until logged s 2 SIGUSR1 || fail "no second SIGUSR1 checkpoint"
	finish_exact s
	no_temp_files ;;
sigusr1_no_path)
	# Without --checkpoint-path, SIGUSR1 is logged and ignored, never fatal.
	ref
	start_counter n
	kill -USR1 "$run_pid"
	wait_until grep -q 'checkpoint 1 (SIGUSR1).*failed: no checkpoint path' "$work/n.err" ||
		fail "SIGUSR1 without a path was not reported"
	finish_exact n ;;
sigusr1_stop)
	ref
	start_counter s --checkpoint-path "$work/s.wckpt" --stop-after-checkpoint
	kill -USR1 "$run_pid"
	run_status
	ref_wait
	[ "$rc" -eq 0 ] || fail "wasp-run stopped after a checkpoint exits $rc, expected 0"
	grep -q "^wasp-run: stopped after checkpoint to $work/s.wckpt\$" "$work/s.err" || fail "no stop line"
	is_ckpt "$work/s.wckpt" || fail "no checkpoint file"
	grep -q '^done' "$work/s.out" && fail "the guest ran to its end"
	cmp -s -n "$(stat -c %s "$work/s.out")" "$work/s.out" "$work/ref.stdout" ||
		fail "the output before the stop is not a prefix of the full run's"
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
trigger_file)
	ref
	start_counter t --checkpoint-path "$work/t.wckpt" --trigger-file "$work/trig"
	touch "$work/trig"
	wait_until test ! -e "$work/trig" || fail "the trigger file was not removed"
	logged t 1 'trigger file' || fail "no trigger-file checkpoint logged"
	mid_run t
	is_ckpt "$work/t.wckpt" || fail "no checkpoint file"
	# A rename onto the name counts as well.
	echo go >"$work/trig.new"
	mv "$work/trig.new" "$work/trig"
	wait_until test ! -e "$work/trig" || fail "the renamed trigger file was not removed"
	logged t 2 'trigger file' || fail "no second trigger-file checkpoint logged"
	finish_exact t
	[ "$(grep -c 'trigger file' "$work/t.err")" -eq 2 ] || fail "one trigger gave more than one checkpoint"
	no_temp_files ;;
trigger_at_start)
	# A trigger file already there at start asks for a checkpoint too.
	ref
	touch "$work/trig"
	start_counter t --checkpoint-path "$work/t.wckpt" --trigger-file "$work/trig"
	wait_until test ! -e "$work/trig" || fail "the trigger file was not removed"
	wait_until logged t 1 'trigger file' || fail "no checkpoint logged"
	is_ckpt "$work/t.wckpt" || fail "no checkpoint file"
	finish_exact t ;;
period)
	ref
	start_counter p --checkpoint-path "$work/p.wckpt" --checkpoint-every 300ms
	finish_exact p
	n=$(grep -c '^wasp-run: checkpoint [0-9]* (period) to .*bytes' "$work/p.err")
	[ "$n" -ge 2 ] || fail "$n periodic checkpoints in a run of seconds"
	is_ckpt "$work/p.wckpt" || fail "no checkpoint file"
	no_temp_files ;;
timeout)
	# The runner keeps --timeout: a guest that never ends still gets 124.
	# 5 s: time for the first periodic checkpoint (at 200 ms) to be
	# written on a loaded host before the timeout.
	"$WASP_RUN" --timeout 5s --checkpoint-path "$work/x.wckpt" --checkpoint-every 200ms \
		"$T/spin_print.bin" >"$work/x.out" 2>"$work/x.err"
	rc=$?
	[ "$rc" -eq 124 ] || fail "exit status $rc, expected 124"
	grep -q 'timeout' "$work/x.err" || fail "no timeout line"
	grep -q 'checkpoint 1 (period)' "$work/x.err" || fail "no periodic checkpoint before the timeout"
	run_dir_empty || fail "socket files left" ;;
socket_pid)
	ref
	start_counter c
	ck "$run_pid" -o "$work/c.wckpt"
	ck_ok
	mid_run c
	is_ckpt "$work/c.wckpt" || fail "no checkpoint file"
	grep -q "^wasp-ckpt: checkpoint of pid $run_pid to $work/c.wckpt: [0-9]* bytes in " "$work/ck.stderr" ||
		fail "no summary line: $(cat "$work/ck.stderr")"
	logged c 1 "socket, pid [0-9]*" || fail "wasp-run did not log the checkpoint"
	# Again over the earlier file, quietly.
	ck -q "$run_pid" -o "$work/c.wckpt"
	ck_ok
	[ -s "$work/ck.stderr" ] && fail "-q still printed: $(cat "$work/ck.stderr")"
	is_ckpt "$work/c.wckpt" || fail "the second checkpoint is not one"
	finish_exact c
	no_temp_files ;;
socket_name)
	ref
	start_counter c --name counter-1
	[ -L "$WASP_RUN_DIR/counter-1.sock" ] || fail "no name socket"
	[ -S "$WASP_RUN_DIR/$run_pid.sock" ] || fail "no pid socket"
	ck counter-1 -o "$work/c.wckpt"
	ck_ok
	grep -q "checkpoint of counter-1 (pid $run_pid)" "$work/ck.stderr" || fail "summary lacks the name"
	is_ckpt "$work/c.wckpt" || fail "no checkpoint file"
	finish_exact c
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
default_output)
	# Without -o the checkpoint is TARGET.wckpt in the current directory.
	ref
	start_counter c --name dflt
	mkdir "$work/cwd"
	(cd "$work/cwd" && "$WASP_CKPT" -q "$run_pid" && "$WASP_CKPT" -q dflt) 2>"$work/ck.stderr" ||
		fail "wasp-ckpt failed: $(cat "$work/ck.stderr")"
	is_ckpt "$work/cwd/$run_pid.wckpt" || fail "no $run_pid.wckpt"
	is_ckpt "$work/cwd/dflt.wckpt" || fail "no dflt.wckpt"
	finish_exact c ;;
queue)
	# Requests at once are taken one after the other, all of them.
	ref
	start_counter q --name q
	for i in 1 2 3 4; do
		"$WASP_CKPT" -q q -o "$work/q$i.wckpt" 2>"$work/q$i.ckerr" &
		ck_pids[i]=$!
	done
	for i in 1 2 3 4; do
		wait "${ck_pids[i]}" || fail "request $i failed: $(cat "$work/q$i.ckerr")"
		is_ckpt "$work/q$i.wckpt" || fail "request $i gave no checkpoint"
	done
	for i in 1 2 3 4; do logged q $i socket || fail "checkpoint $i not logged"; done
	finish_exact q
	no_temp_files ;;
pipe)
	# -o - writes to wasp-ckpt's stdout: the runner writes straight into the pipe.
	ref
	start_counter c --name piped
	set -o pipefail
	"$WASP_CKPT" piped -o - 2>"$work/ck.stderr" | cat >"$work/pipe.wckpt" ||
		fail "wasp-ckpt -o - failed: $(cat "$work/ck.stderr")"
	set +o pipefail
	is_ckpt "$work/pipe.wckpt" || fail "the pipe did not carry a checkpoint"
	grep -q ' to stdout: [0-9]* bytes' "$work/ck.stderr" || fail "no summary"
	bytes=$(sed -n 's/.* to stdout: \([0-9]*\) bytes.*/\1/p' "$work/ck.stderr")
	[ "$bytes" -eq "$(stat -c %s "$work/pipe.wckpt")" ] || fail "summary says $bytes bytes, the pipe carried $(stat -c %s "$work/pipe.wckpt")"
	finish_exact c ;;
terminal)
	# -o - on a terminal is refused before anything is asked.
	command -v script >/dev/null || { echo "SKIP: no script(1)"; exit 77; }
	"$WASP_RUN" --name tty --timeout 600s "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -e "$WASP_RUN_DIR/tty.sock" || fail "no socket"
	script -qec "'$WASP_CKPT' tty -o -" /dev/null >"$work/ck.stderr" 2>&1
	rc=$?
	[ "$rc" -eq 125 ] || fail "exit status $rc on a terminal"
	grep -q 'terminal' "$work/ck.stderr" || fail "no terminal message: $(cat "$work/ck.stderr")" ;;
stop)
	ref
	start_counter st --name st
	ck st --stop -o "$work/st.wckpt"
	ck_ok
	grep -q 'the virtine stopped' "$work/ck.stderr" || fail "summary does not say it stopped"
	run_status
	ref_wait
	[ "$rc" -eq 0 ] || fail "wasp-run exit status $rc after a stop, expected 0"
	grep -q "^wasp-run: stopped after checkpoint to $work/st.wckpt\$" "$work/st.err" ||
		fail "no 'stopped after checkpoint' line"
	is_ckpt "$work/st.wckpt" || fail "no checkpoint file"
	grep -q '^done' "$work/st.out" && fail "the guest ran to its end"
	cmp -s -n "$(stat -c %s "$work/st.out")" "$work/st.out" "$work/ref.stdout" ||
		fail "the output before the stop is not a prefix of the full run's"
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
stop_restore)
	# The whole point: stop here, continue from the file, end as if never moved.
	[ -n "${WASP_RESTORE:-}" ] && [ -x "$WASP_RESTORE" ] || { echo "SKIP: no wasp-restore"; exit 77; }
	ref
	start_counter st --name st
	ck st --stop -o "$work/st.wckpt"
	ck_ok
	run_status
	[ "$rc" -eq 0 ] || fail "wasp-run exit status $rc after a stop"
	restore_exact st "$work/st.wckpt" ;;
spin)
	# A guest that never ends: several checkpoints, then a stop; its ticks
	# go on without a gap or a repeat.
	"$WASP_RUN" --name spin "$T/spin_print.bin" >"$work/spin.out" 2>"$work/spin.err" &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until lines_at_least "$work/spin.out" 3 || fail "no ticks"
	for i in 1 2 3; do
		ck -q spin -o "$work/spin$i.wckpt"
		ck_ok
		is_ckpt "$work/spin$i.wckpt" || fail "checkpoint $i is not one"
	done
	ck -q spin --stop -o "$work/spin.wckpt"
	ck_ok
	run_status
	[ "$rc" -eq 0 ] || fail "exit status $rc after --stop"
	ticks_consecutive "$work/spin.out" || fail "ticks have a gap or a repeat"
	run_dir_empty || fail "socket files left" ;;
errors)
	mkdir "$work/cwd"
	cd "$work/cwd" || fail "cd"
	ck; ck_error "no target"
	ck 1 2; ck_error "give one target"
	ck --timeout soon 1; ck_error "--timeout"
	ck 'a/b'; ck_error "neither a pid nor a virtine name"
	ck --frobnicate 1; [ "$rc" -eq 125 ] || fail "a bad option exits $rc"
	free=$(($(cat /proc/sys/kernel/pid_max) - 1))
	while [ -e "/proc/$free" ]; do free=$((free - 1)); done
	ck "$free"; ck_error "no wasp-run with pid $free"
	ck "$$"; ck_error "pid $$ is not a virtine (no control socket)"
	ck nosuch; ck_error "no virtine named nosuch"
	[ -z "$(ls -A "$work/cwd")" ] || fail "failed requests left files: $(ls -A "$work/cwd")"
	ck --help; [ "$rc" -eq 0 ] && grep -q -- '--stop' "$work/ck.stdout" || fail "--help" ;;
killed)
	# A runner killed outright leaves a stale socket: wasp-ckpt says so,
	# and the next wasp-run of that name takes it over.
	"$WASP_RUN" --name k "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -e "$WASP_RUN_DIR/k.sock" || fail "no socket"
	kill -9 "$run_pid"
	wait "$run_pid" 2>/dev/null
	ck "$run_pid"; ck_error "no wasp-run with pid $run_pid (stale socket"
	ck k; ck_error "no virtine named k (stale socket"
	run_fg --name k "$G/hello.bin"
	[ "$rc" -eq 42 ] || fail "a wasp-run could not take over a stale name: $(cat "$work/fg.err")"
	[ -z "$(ls "$WASP_RUN_DIR" | grep -v "^$run_pid.sock\$")" ] || fail "files left: $(ls "$WASP_RUN_DIR")" ;;
dropped)
	# The runner dies while a request waits for its answer: wasp-ckpt fails,
	# removes its temporary file and leaves the earlier checkpoint whole.
	echo "the earlier checkpoint" >"$work/d.wckpt"
	start_counter d --name drop
	# First a checkpoint into a pipe nobody reads: the save fills it and
	# blocks, so the guest stands still (the reader outlives any slow
	# host; work_cleanup kills it)...
	exec 4> >(exec sleep 3600 >/dev/null 2>&1)
	bg_pids+=($!)
	"$WASP_CKPT" drop -o - >&4 2>/dev/null &
	bg_pids+=($!)
	exec 4>&-
	stalled() {
		local a b
		a=$(wc -l <"$work/d.out"); sleep 0.4; b=$(wc -l <"$work/d.out")
		[ "$a" -eq "$b" ]
	}
	wait_until stalled || fail "the guest never stood still for the blocked checkpoint"
	# ...then ours, which queues behind it; then the runner dies.
	"$WASP_CKPT" drop -o "$work/d.wckpt" >/dev/null 2>"$work/ck.stderr" &
	ck_pid=$!
	wait_until compgen -G "$work/d.wckpt.tmp.*" >/dev/null || fail "wasp-ckpt never opened its file"
	sleep 0.2
	kill -9 "$run_pid"
	wait "$ck_pid"
	rc=$?
	ck_error "connection"
	[ "$(cat "$work/d.wckpt")" = "the earlier checkpoint" ] || fail "the earlier checkpoint was changed"
	no_temp_files ;;
cancel)
	# wasp-ckpt gives up (--timeout) on a pipe nobody reads: the runner
	# abandons that write and the guest goes on as if never asked.
	ref
	start_counter c --name cn
	exec 3> >(exec sleep 3600 >/dev/null 2>&1)
	bg_pids+=($!)
	"$WASP_CKPT" cn --timeout 1s -o - >&3 2>"$work/ck.stderr"
	rc=$?
	exec 3>&-
	ck_error "no answer in time"
	wait_until grep -q 'checkpoint 1 (socket, pid [0-9]*) to .* failed: .*canceled' "$work/c.err" ||
		fail "the runner did not give the write up"
	mid_run c
	finish_exact c ;;
name_collision)
	"$WASP_RUN" --name dup "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -e "$WASP_RUN_DIR/dup.sock" || fail "no socket"
	run_fg --name dup "$G/hello.bin"
	fg_error "name dup is in use by pid $run_pid"
	[ "$(ls "$WASP_RUN_DIR" | sort | tr '\n' ' ')" = "$run_pid.sock dup.sock " ] ||
		fail "the refused run left files: $(ls "$WASP_RUN_DIR")"
	# SIGTERM: the sockets go with the process.
	kill -TERM "$run_pid"
	wait_until gone "$run_pid" || fail "SIGTERM did not end wasp-run"
	run_dir_empty || fail "SIGTERM left socket files: $(ls "$WASP_RUN_DIR")"
	# A dangling name from some dead process is taken over.
	mkdir -p "$WASP_RUN_DIR"
	ln -s 999999.sock "$WASP_RUN_DIR/dup.sock"
	run_fg --name dup "$G/hello.bin"
	[ "$rc" -eq 42 ] || fail "a stale name was not taken over: $(cat "$work/fg.err")"
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
cleanup)
	# Socket files go on every kind of end.
	run_fg --name c1 "$G/hello.bin"; [ "$rc" -eq 42 ] || fail "hello: $rc"
	run_dir_empty || fail "normal exit left: $(ls "$WASP_RUN_DIR")"
	run_fg --name c2 "$T/triple.bin"; [ "$rc" -eq 139 ] || fail "triple: $rc"
	run_dir_empty || fail "a guest fault left: $(ls "$WASP_RUN_DIR")"
	run_fg --name c3 --timeout 200ms "$T/spin_print.bin"; [ "$rc" -eq 124 ] || fail "timeout: $rc"
	run_dir_empty || fail "a timeout left: $(ls "$WASP_RUN_DIR")"
	"$WASP_RUN" --name c4 "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -e "$WASP_RUN_DIR/c4.sock" || fail "no socket"
	kill -INT "$run_pid"
	wait_until gone "$run_pid" || fail "SIGINT did not end wasp-run"
	run_dir_empty || fail "SIGINT left: $(ls "$WASP_RUN_DIR")" ;;
run_args)
	run_fg --trigger-file "$work/t" "$G/hello.bin"; fg_error "needs --checkpoint-path"
	run_fg --checkpoint-every 1s "$G/hello.bin"; fg_error "needs --checkpoint-path"
	run_fg --checkpoint-path "$work/x" --checkpoint-every soon "$G/hello.bin"; fg_error "--checkpoint-every"
	run_fg --name 'a/b' "$G/hello.bin"; fg_error "--name"
	run_fg --name 123 "$G/hello.bin"; fg_error "all digits"
	run_fg --checkpoint-path "$work/x" --trigger-file "$work/none/t" "$G/hello.bin"; fg_error "directory"
	run_dir_empty || fail "refused runs left: $(ls "$WASP_RUN_DIR")"
	run_fg --help
	for o in --name --checkpoint-path --trigger-file --checkpoint-every --stop-after-checkpoint; do
		grep -q -- "$o" "$work/fg.out" || fail "--help does not document $o"
	done ;;
permission)
	# Another user cannot checkpoint our virtine.
	[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null || { echo "SKIP: needs root and setpriv"; exit 77; }
	"$WASP_RUN" --name mine --timeout 600s "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -e "$WASP_RUN_DIR/mine.sock" || fail "no socket"
	chmod 711 "$work"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$WASP_CKPT" "$run_pid" -o /tmp/nope.wckpt \
		>"$work/ck.stdout" 2>"$work/ck.stderr"
	rc=$?
	ck_error "permission denied"
	[ ! -e /tmp/nope.wckpt ] || fail "a file was written" ;;
stop_pipe_refused)
	# The README's recipe where the restore fails: a pipe cannot say what
	# its reader did, so the source stops only after keeping a local copy,
	# says where, and that copy ends the work exactly as one run would.
	[ -n "${WASP_RESTORE:-}" ] && [ -x "$WASP_RESTORE" ] || { echo "SKIP: no wasp-restore"; exit 77; }
	ref
	start_counter sp --name sp
	mkdir -p "$work/empty"
	"$WASP_CKPT" sp --stop -o - --keep "$work/sp.kept.wckpt" 2>"$work/ck.stderr" |
		"$WASP_RESTORE" --dir "$work/empty" - >"$work/r.out" 2>"$work/r.err"
	[ "${PIPESTATUS[1]}" -ne 0 ] || fail "the restore into an empty directory should have failed"
	run_status
	[ "$rc" -eq 0 ] || fail "wasp-run exit status $rc after a stop, expected 0"
	kept=$(sed -n 's/^wasp-run: stopped after checkpoint to .*; a copy is kept in \(.*\)$/\1/p' "$work/sp.err")
	[ "$kept" = "$work/sp.kept.wckpt" ] && is_ckpt "$kept" || fail "no kept copy: $(cat "$work/sp.err")"
	grep -q "kept in $kept" "$work/ck.stderr" || fail "wasp-ckpt did not say where the copy is: $(cat "$work/ck.stderr")"
	restore_exact sp "$kept" ;;
stop_epipe)
	# The pipe's reader goes away mid-stream: the checkpoint fails, and the
	# virtine goes on as if never asked.
	ref
	start_counter se --name se
	"$WASP_CKPT" se --stop -o - 2>"$work/ck.stderr" | head -c 100 >/dev/null
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 125 ] || fail "wasp-ckpt exit status $rc into a broken pipe, expected 125"
	wait_until grep -q 'checkpoint 1 (socket, pid [0-9]*) to .* failed' "$work/se.err" ||
		fail "the runner did not report the failed checkpoint"
	mid_run se
	finish_exact se ;;
stop_enospc)
	# A full disk: the checkpoint fails, the earlier file stays whole, no
	# temporary file is left, and the virtine goes on.
	mkdir -p "$work/small"
	mount -t tmpfs -o size=32k tmpfs "$work/small" 2>/dev/null || { echo "SKIP: cannot mount a small tmpfs"; exit 77; }
	small_mounted=1
	echo "the earlier checkpoint" >"$work/small/e.wckpt"
	ref
	start_counter en --name en
	ck en --stop -o "$work/small/e.wckpt"
	ck_error "No space left on device"
	[ "$(cat "$work/small/e.wckpt")" = "the earlier checkpoint" ] || fail "the earlier checkpoint was changed"
	[ -z "$(ls "$work/small" | grep -v '^e.wckpt$')" ] || fail "files left: $(ls "$work/small")"
	mid_run en
	finish_exact en ;;
stop_client_killed)
	# wasp-ckpt --stop dies at each step of its commit (before fsync,
	# before rename, before it says "commit"): the virtine never stops, the
	# earlier file is replaced only by a whole checkpoint, and a later stop
	# restores to exactly one run's output.
	command -v strace >/dev/null || { echo "SKIP: no strace"; exit 77; }
	[ -n "${WASP_RESTORE:-}" ] && [ -x "$WASP_RESTORE" ] || { echo "SKIP: no wasp-restore"; exit 77; }
	STEPS=400 # ~12 s: it must outlive four checkpoints under strace
	ref
	start_counter sk --name sk
	echo "the earlier checkpoint" >"$work/sk.wckpt"
	n=0
	went_on() { [ "$(grep -c 'did not commit the checkpoint; the virtine goes on' "$work/sk.err")" -eq "$n" ]; }
	for at in fsync rename,renameat,renameat2 sendmsg:when=3; do
		n=$((n + 1))
		set=${at%%:*}
		strace -f -qq -o /dev/null -e "inject=$set:error=EIO:signal=KILL${at#"$set"}" \
			"$WASP_CKPT" sk --stop -o "$work/sk.wckpt" >/dev/null 2>"$work/ck.stderr"
		alive "$run_pid" || fail "killed at $at: the virtine did not survive"
		grep -q 'stopped after checkpoint' "$work/sk.err" && fail "killed at $at: the virtine stopped"
		case $at in
		sendmsg*) is_ckpt "$work/sk.wckpt" || fail "killed after its rename: no checkpoint in the file" ;;
		*) [ "$(cat "$work/sk.wckpt")" = "the earlier checkpoint" ] || fail "killed at $at: the earlier file changed" ;;
		esac
		wait_until went_on || fail "killed at $at: the runner did not go on: $(tail -2 "$work/sk.err")"
	done
	ck sk --stop -o "$work/sk.wckpt"
	ck_ok
	run_status
	[ "$rc" -eq 0 ] || fail "wasp-run exit status $rc after the stop"
	no_temp_files
	restore_exact sk "$work/sk.wckpt" ;;
stop_runner_killed)
	# The runner dies while it waits, guest paused, for wasp-ckpt's commit:
	# wasp-ckpt still commits the whole checkpoint it was given and says so,
	# and that file ends the work exactly.
	command -v strace >/dev/null || { echo "SKIP: no strace"; exit 77; }
	[ -n "${WASP_RESTORE:-}" ] && [ -x "$WASP_RESTORE" ] || { echo "SKIP: no wasp-restore"; exit 77; }
	ref
	start_counter rk --name rk
	renames=rename,renameat,renameat2
	strace -f -qq -o "$work/strace.log" -e trace=$renames -e inject=$renames:signal=STOP \
		"$WASP_CKPT" rk --stop -o "$work/rk.wckpt" >/dev/null 2>"$work/ck.stderr" &
	st_pid=$!
	bg_pids+=("$st_pid")
	wait_until grep -q 'stopped by SIGSTOP' "$work/strace.log" || fail "wasp-ckpt never reached its rename"
	ck_pid=$(pgrep -P "$st_pid" -x wasp-ckpt) || fail "no wasp-ckpt under strace"
	kill -9 "$run_pid"
	run_status
	kill -CONT "$ck_pid"
	wait "$st_pid"
	rc=$?
	[ "$rc" -ne 0 ] || fail "wasp-ckpt said all is well though the runner died"
	grep -q "the checkpoint is saved in $work/rk.wckpt" "$work/ck.stderr" ||
		fail "wasp-ckpt did not say the checkpoint is saved: $(cat "$work/ck.stderr")"
	restore_exact rk "$work/rk.wckpt" ;;
timeout_blocked)
	# A checkpoint blocked on a pipe nobody reads does not hold the guest
	# past its --timeout: wasp-run ends (124) while the reader still lives.
	"$WASP_RUN" --name tb --timeout 5s $ALLOW --dir "$work" "$G/counter.bin" -- 100000 $WORK \
		>"$work/tb.out" 2>"$work/tb.err" &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -S "$WASP_RUN_DIR/tb.sock" || fail "no socket"
	exec 4> >(exec sleep 100 >/dev/null 2>&1)
	reader=$!
	bg_pids+=("$reader")
	"$WASP_CKPT" tb -o - >&4 2>"$work/ck.stderr" &
	bg_pids+=($!)
	exec 4>&-
	run_status
	alive "$reader" || fail "the guest was held until the pipe's reader died"
	[ "$rc" -eq 124 ] || fail "wasp-run exit status $rc, expected the timeout's 124"
	grep -q "time ran out while its checkpoint waited for a reader" "$work/tb.err" ||
		fail "the runner did not say why the checkpoint failed: $(cat "$work/tb.err")" ;;
planted_socket)
	# Another user's socket is never used: not in a directory another user
	# can write (as /tmp/wasp-0 could be), and not when its server runs as
	# another user. Neither gets a request or our checkpoint's fd.
	[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && command -v python3 >/dev/null ||
		{ echo "SKIP: needs root, setpriv and python3"; exit 77; }
	chmod 711 "$work"
	mkdir -p "$work/evil" && chown 65534:65534 "$work/evil"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		python3 "$(dirname "$0")/fake_runner.py" "$work/evil/job.sock" "$work/evil/log" &
	bg_pids+=($!)
	wait_until grep -q listening "$work/evil/log" 2>/dev/null || fail "the fake runner did not start"
	WASP_RUN_DIR=$work/evil ck job -o "$work/p.wckpt"
	ck_error "not using its socket: $work/evil is owned by uid 65534"
	mkdir -p "$work/safe"
	touch "$work/safe.log"
	python3 "$(dirname "$0")/fake_runner.py" "$work/safe/job.sock" "$work/safe.log" drop &
	bg_pids+=($!)
	wait_until grep -q listening "$work/safe.log" || fail "the second fake runner did not start"
	WASP_RUN_DIR=$work/safe ck job -o "$work/p.wckpt"
	ck_error "is served by uid 65534"
	if grep -qv '^listening$' "$work/evil/log" "$work/safe.log"; then
		fail "a planted socket was spoken to: $(cat "$work/evil/log" "$work/safe.log")"
	fi
	[ ! -e "$work/p.wckpt" ] || fail "a checkpoint file was made"
	no_temp_files ;;
guessed_temp)
	# Another user who creates the temporary names wasp-ckpt would use next
	# (OUT.tmp.<pid> for the next pids) cannot make it fail: its names are
	# random.
	[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null || { echo "SKIP: needs root and setpriv"; exit 77; }
	chmod 711 "$work"
	mkdir -p "$work/pub" && chmod 1777 "$work/pub"
	"$WASP_RUN" --name gt --timeout 600s "$T/spin_print.bin" >/dev/null 2>&1 &
	run_pid=$!
	bg_pids+=("$run_pid")
	wait_until test -S "$WASP_RUN_DIR/gt.sock" || fail "no socket"
	last=$(cat /proc/sys/kernel/ns_last_pid)
	setpriv --reuid=65534 --regid=65534 --clear-groups bash -c \
		'for ((p = $1; p < $1 + 3000; p++)); do : >"$2.tmp.$p"; done' - "$last" "$work/pub/x.wckpt"
	ck gt -o "$work/pub/x.wckpt"
	ck_ok
	is_ckpt "$work/pub/x.wckpt" || fail "no checkpoint written" ;;
*) echo "no such case: $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
