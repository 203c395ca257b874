# lib.sh: helpers the shell-driven tests share (sourced, not run). Each
# script sets $case_name and $work before it uses them.

# fail MSG: the case fails; shows the tail of every output file in $work.
fail() {
	echo "FAIL: $case_name: $*"
	for f in "$work"/*.out "$work"/*.err "$work"/*.stderr; do
		[ -s "$f" ] && { echo "--- $(basename "$f") (tail)"; tail -n 8 "$f"; }
	done
	exit 1
}

# wait_until CMD...: runs CMD every 50 ms until it succeeds, for at most
# 100 s: a guard against a hang, never a time anything is expected to take
# (an emulated KVM on a loaded host is slow; a test waits for what it
# needs), and below the 120 s ctest gives most cases, so a wait that never
# ends fails with the case's own message, not a bare timeout.
wait_until() {
	local i
	for ((i = 0; i < 2000; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
lines_at_least() { [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; }
is_ckpt() { [ -s "$1" ] && [ "$(head -c 8 "$1")" = WASPCKPT ]; }
# alive PID: running, not a zombie.
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) [ZX] ' "/proc/$1/stat"; }
run_dir_empty() { [ -z "$(ls -A "$WASP_RUN_DIR" 2>/dev/null)" ]; }

# work_dir PREFIX: makes $work (/tmp/PREFIX-XXXXXX) with $WASP_RUN_DIR in it,
# and at exit kills what bg_pids holds and removes $work (unless KEEP_WORK).
work_dir() {
	work=$(mktemp -d "/tmp/$1-XXXXXX")
	export WASP_RUN_DIR=$work/run
	unset WASP_MIGRATE_TOKEN
	mkdir -p "$WASP_RUN_DIR"
	bg_pids=()
	trap work_cleanup EXIT
}
work_cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}

# Races with a finite guest. A case that must reach a running counter
# (checkpoint, stop or migrate it) before its last step can lose that race
# on a slow host (an emulated KVM, where starting wasp-ckpt costs seconds):
# the guest finished first. That says nothing about wasp, so the case says
# too_late, and retry_slower, called at the top of the script, runs the
# whole case again in a new process with 5 and then 25 times the steps
# (scripts scale STEPS by $STEPS_SCALE). A real failure fails every attempt
# and is reported as it is: retries hide no bug, only the lost race.
STEPS_SCALE=${WASP_TEST_STEPS_SCALE:-1}
retry_slower() {
	[ -n "${WASP_TEST_STEPS_SCALE:-}" ] && return 0
	local scale rc
	for scale in 1 5 25; do
		WASP_TEST_STEPS_SCALE=$scale "$BASH" "$0" "$@"
		rc=$?
		[ "$rc" -eq 75 ] || exit "$rc"
	done
	echo "FAIL: $1: the guest finished before the tools reached it, even with 25 times the steps"
	exit 1
}
# too_late MSG: the race is lost (exit 75: retry_slower runs the case again).
too_late() {
	echo "too late (${STEPS_SCALE}x steps): $case_name: $*; again with more steps"
	exit 75
}
# too_late_if_done OUT MSG: the guest whose stdout is OUT printed its last
# line ("done ..."), so what failed came too late for it.
too_late_if_done() { ! grep -q '^done' "$1" 2>/dev/null || too_late "$2"; }
