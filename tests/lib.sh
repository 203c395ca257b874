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
