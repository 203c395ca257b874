#!/usr/bin/env bash
# ckpt_test.sh CASE: checkpoint and restore end to end, through the tools
# (wasp-run, wasp-ckpt, wasp-restore, wasp-inspect) on real KVM. The rule
# every case checks, byte for byte: a virtine checkpointed at any moment
# and restored in another process ends with exactly the stdout, counter.log
# and exit status of a run nobody touched.
#
# ctest passes WASP_RUN, WASP_CKPT, WASP_RESTORE, WASP_INSPECT, GUEST_DIR
# (examples: counter.bin, fib*.bin) and TEST_GUEST_DIR. JSON from
# wasp-inspect is read with python3 when there is one, else with sed
# (CKPT_TEST_NO_PYTHON=1 forces sed). CKPT_TEST_KEEP=1 keeps the work
# directory. Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for v in WASP_RUN WASP_CKPT WASP_RESTORE WASP_INSPECT GUEST_DIR; do
	[ -n "${!v:-}" ] || { echo "FAIL: $case_name: $v is not set"; exit 1; }
done
. "$(dirname "$0")/../lib.sh"
retry_slower "$@"

work=$(mktemp -d /tmp/wasp-ckpt-XXXXXX)
# A private socket directory: tests never touch /run/wasp.
export WASP_RUN_DIR=$work/run
bg_pids=()
cleanup() {
	for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ -n "${CKPT_TEST_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

G=$GUEST_DIR
ALLOW=--allow=console_write,get_arg,files
# About 2 s of guest work: 40 steps of ~50 ms, so checkpoints taken
# after a given number of steps land mid-run with room to spare (more
# steps when a slow host lost that race: retry_slower in lib.sh).
STEPS=$((40 * STEPS_SCALE)) WORK=20000000
have_py=0
command -v python3 >/dev/null 2>&1 && [ -z "${CKPT_TEST_NO_PYTHON:-}" ] && have_py=1

# wait_lines TAG N: TAG.out has N lines (the guest did N steps).
wait_lines() { wait_until lines_at_least "$work/$1.out" "$2" || fail "$1: fewer than $2 lines of output"; }
# sock_or_gone NAME PID: the runner listens as NAME, or has already ended.
sock_or_gone() { [ -e "$WASP_RUN_DIR/$1.sock" ] || ! alive "$2"; }
no_temp_files() {
	local left
	left=$(find "$work" -name '*.tmp.*' 2>/dev/null)
	[ -z "$left" ] || fail "temporary files left: $left"
}
size() { stat -c %s "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# bg TAG CMD...: CMD in the background, stdout TAG.out, stderr TAG.err; sets run_pid.
bg() {
	local tag=$1
	shift
	"$@" >"$work/$tag.out" 2>"$work/$tag.err" &
	run_pid=$!
	bg_pids+=("$run_pid")
}
# status PID: waits for it; sets rc.
status() { wait "$1"; rc=$?; }
# counter TAG DIR [OPTIONS]: wasp-run of counter in the background, sandbox DIR.
counter() {
	local tag=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	bg "$tag" "$WASP_RUN" "$@" $ALLOW --dir "$dir" "$G/counter.bin" -- $STEPS $WORK
}

# ref: counter without any checkpoint, in $work/ref (ref.out, ref/counter.log),
# in the background while the case runs; ref_wait collects it into ref_rc.
ref() {
	counter ref "$work/ref"
	ref_pid=$run_pid
}
ref_wait() {
	[ -n "${ref_rc:-}" ] && return
	wait "$ref_pid"
	ref_rc=$?
	grep -q '^done hash ' "$work/ref.out" || fail "the reference run did not finish (status $ref_rc)"
	[ "$(wc -l <"$work/ref/counter.log")" -eq "$STEPS" ] || fail "the reference counter.log is not $STEPS lines"
}
# same_as_ref WHAT OUT RC LOG [EXPECT]: stdout OUT, status RC and counter.log
# LOG are the reference's (stdout: EXPECT, by default all of the reference's).
same_as_ref() {
	local expect=${5:-$work/ref.out}
	ref_wait
	[ "$3" -eq "$ref_rc" ] || fail "$1: exit status $3, the uninterrupted run's was $ref_rc"
	cmp -s "$expect" "$2" || fail "$1: stdout differs from the uninterrupted run's ($(cmp "$expect" "$2" 2>&1))"
	cmp -s "$work/ref/counter.log" "$4" || fail "$1: counter.log differs from the uninterrupted run's ($(cmp "$work/ref/counter.log" "$4" 2>&1))"
}
# not_done TAG: the guest had not finished when it was checkpointed (if it
# had, the host was too slow for the case's steps: too_late).
not_done() { too_late_if_done "$work/$1.out" "$1: the guest finished before the checkpoint"; }
# logged TAG K SOURCE: the runner (wasp-run or wasp-restore) logged checkpoint K from SOURCE as taken.
logged() { grep -q "^wasp-[a-z]*: checkpoint $2 ($3[^)]*) to .*: [0-9]* bytes in " "$work/$1.err"; }
# wait_logged TAG K SOURCE PID: waits until TAG logged checkpoint K, or its
# process (PID) ended without it (the guest finished first: too_late).
logged_or_gone() { logged "$1" "$2" "$3" || ! alive "$4"; }
wait_logged() {
	wait_until logged_or_gone "$@" || fail "$1: no checkpoint $2 ($3) logged"
	logged "$1" "$2" "$3" && return
	too_late_if_done "$work/$1.out" "$1 finished before checkpoint $2 ($3)"
	fail "$1: ended without logging checkpoint $2 ($3)"
}
# stopped TAG: the process ended with status 0 after a checkpoint with stop.
stopped() {
	[ "$rc" -eq 0 ] || fail "$1: exit status $rc after a checkpoint with stop, expected 0"
	grep -q '^wasp-[a-z]*: stopped after checkpoint to ' "$work/$1.err" || fail "$1: no 'stopped after checkpoint' line"
}

# ck ARGS...: runs wasp-ckpt; stdout/stderr in ck.stdout/ck.stderr; sets rc.
ck() { "$WASP_CKPT" "$@" >"$work/ck.stdout" 2>"$work/ck.stderr"; rc=$?; }
# ck_ok [TAG]: it succeeded; if not, and TAG's guest had finished, too late.
ck_ok() {
	[ "$rc" -eq 0 ] && return
	[ -n "${1:-}" ] && too_late_if_done "$work/$1.out" "wasp-ckpt reached $1 after its last step"
	fail "wasp-ckpt: status $rc: $(cat "$work/ck.stderr")"
}

# info CKPT: reads the checkpoint with wasp-inspect --json; sets ck_off (the
# first open file's offset, -1 without one), ck_cb (console bytes), ck_cr0,
# ck_efer. Fails unless the checkpoint is valid. Cached per file (python3
# takes a while to start).
declare -A info_cache
info() {
	local js=$work/info.json
	if [ -n "${info_cache[$1]:-}" ]; then
		read -r ck_off ck_cb ck_cr0 ck_efer <<<"${info_cache[$1]}"
		return
	fi
	"$WASP_INSPECT" --json "$1" >"$js" 2>"$work/info.err" || fail "wasp-inspect $1: $(cat "$work/info.err")"
	if [ "$have_py" = 1 ]; then
		read -r ck_off ck_cb ck_cr0 ck_efer < <(python3 -I -S -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["valid"] is True and d["error"] is None
h, c = d["host"], d["vcpu"]["control"]
f = h["files"] or []
print(f[0]["offset"] if f else -1, h["console_bytes"], c["cr0"], c["efer"])' "$js") ||
			fail "$1: the JSON of wasp-inspect does not parse, or does not say valid"
	else
		grep -q '"valid": true' "$js" || fail "$1: wasp-inspect --json does not say valid"
		ck_off=$(sed -n 's/^ *"offset": \([0-9]*\).*/\1/p' "$js" | head -n 1)
		ck_cb=$(sed -n 's/^ *"console_bytes": \([0-9]*\).*/\1/p' "$js" | head -n 1)
		ck_cr0=$(sed -n 's/^ *"cr0": "\(0x[0-9a-f]*\)".*/\1/p' "$js" | head -n 1)
		ck_efer=$(sed -n 's/^ *"efer": "\(0x[0-9a-f]*\)".*/\1/p' "$js" | head -n 1)
		: "${ck_off:=-1}"
	fi
	[[ "$ck_off" =~ ^-?[0-9]+$ && "$ck_cb" =~ ^[0-9]+$ && "$ck_cr0" =~ ^0x[0-9a-f]+$ && "$ck_efer" =~ ^0x[0-9a-f]+$ ]] ||
		fail "$1: could not read offset/console_bytes/cr0/efer from wasp-inspect --json"
	info_cache[$1]="$ck_off $ck_cb $ck_cr0 $ck_efer"
}

# restore_bg CKPT TAG: restores a counter checkpoint in a new process, in the
# background, in sandbox $work/TAG holding the reference counter.log cut to
# the checkpoint's offset. Output TAG.out; restore_check TAG judges it.
declare -A r_pid r_cb
restore_bg() {
	local ckpt=$1 tag=$2
	ref_wait
	info "$ckpt"
	[ "$ck_off" -ge 0 ] || fail "$ckpt: counter.log is not open in the checkpoint"
	[ "$ck_off" -lt "$(size "$work/ref/counter.log")" ] || fail "$ckpt: taken after the last step (offset $ck_off)"
	[ "$ck_cb" -lt "$(size "$work/ref.out")" ] || fail "$ckpt: taken after the last output ($ck_cb console bytes)"
	mkdir -p "$work/$tag"
	head -c "$ck_off" "$work/ref/counter.log" >"$work/$tag/counter.log"
	r_cb[$tag]=$ck_cb
	bg "$tag" "$WASP_RESTORE" "$ckpt" --dir "$work/$tag"
	r_pid[$tag]=$run_pid
}
restore_check() {
	local tag=$1
	status "${r_pid[$tag]}"
	tail -c +$((r_cb[$tag] + 1)) "$work/ref.out" >"$work/$tag.expect"
	same_as_ref "restore $tag (from console byte ${r_cb[$tag]})" "$work/$tag.out" "$rc" "$work/$tag/counter.log" "$work/$tag.expect"
}

# r ARGS...: wasp-restore in the foreground; r.out, r.err; sets rc.
r() { "$WASP_RESTORE" "$@" >"$work/r.out" 2>"$work/r.err"; rc=$?; }
# refused WHAT PATTERN: the last wasp-restore exited 125 with one line on
# stderr matching PATTERN, printed nothing on stdout and left no socket.
refused() {
	[ "$rc" -eq 125 ] || fail "$1: wasp-restore exit status $rc, expected 125 ($(head -c 300 "$work/r.err"))"
	[ ! -s "$work/r.out" ] || fail "$1: wasp-restore printed on stdout: $(head -c 200 "$work/r.out")"
	[ "$(wc -l <"$work/r.err")" -eq 1 ] || fail "$1: the error is not one line: $(cat "$work/r.err")"
	grep -q '^wasp-restore: ' "$work/r.err" || fail "$1: the error does not name wasp-restore: $(cat "$work/r.err")"
	grep -q -- "$2" "$work/r.err" || fail "$1: the error lacks '$2': $(cat "$work/r.err")"
	run_dir_empty || fail "$1: socket files left: $(ls "$WASP_RUN_DIR")"
}

# stop_counter TAG DIR: a counter stopped by wasp-ckpt --stop after 3 steps,
# its checkpoint in $work/TAG.wckpt and DIR/counter.log as the guest left it.
stop_counter() {
	counter "$1" "$2" --name "$1"
	wait_lines "$1" 3
	ck "$1" --stop -o "$work/$1.wckpt"
	ck_ok "$1"
	status "$run_pid"
	stopped "$1"
	not_done "$1"
	is_ckpt "$work/$1.wckpt" || fail "$1: no checkpoint file"
}

# goes_on TAG WHAT: restores TAG's checkpoint (in sandbox $work/TAG) in the
# background until it has printed a line, then ends it: the guest went on
# with the next step, on the console and in counter.log.
goes_on() {
	local next=$(($(wc -l <"$work/$1.out") + 1))
	bg go "$WASP_RESTORE" "$work/$1.wckpt" --dir "$work/$1"
	wait_until lines_at_least "$work/go.out" 1 ||
		fail "$2: the restored guest printed nothing: $(cat "$work/go.err")"
	kill -TERM "$run_pid" 2>/dev/null
	status "$run_pid"
	[[ "$(head -n 1 "$work/go.out")" == "step $next/$STEPS hash "* ]] ||
		fail "$2: the restored guest printed '$(head -n 1 "$work/go.out")' first, expected step $next"
	[ "$(wc -l <"$work/$1/counter.log")" -ge "$next" ] || fail "$2: counter.log did not grow"
	run_dir_empty || fail "$2: socket files left after SIGTERM: $(ls "$WASP_RUN_DIR")"
}

# flip IN OFF XOR OUT: OUT is IN with the byte at OFF xor XOR.
flip() {
	local b
	cp "$1" "$4"
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "$(printf '\\%03o' $((b ^ $3)))" | dd of="$4" bs=1 seek="$2" conv=notrunc status=none
	cmp -s "$1" "$4" && fail "flip: $4 did not change at $2"
	[ "$(size "$1")" -eq "$(size "$4")" ] || fail "flip: $4 changed size"
}
# future IN OUT: OUT is IN with Header.version_major 2. The header is the
# first record: magic (8 bytes), varint length, 0x0a (Record field 1,
# length-delimited), varint length, then 0x08 (version_major, varint) 0x01.
future() {
	local -a b
	read -r -a b < <(od -An -v -tu1 -N 64 "$1" | tr '\n' ' ')
	local i=8
	while ((b[i] & 0x80)); do i=$((i + 1)); done
	i=$((i + 1))
	[ "${b[i]}" -eq 10 ] || fail "future: the first record is not a header (0x0a expected at $i)"
	i=$((i + 1))
	while ((b[i] & 0x80)); do i=$((i + 1)); done
	i=$((i + 1))
	[ "${b[i]}" -eq 8 ] && [ "${b[i + 1]}" -eq 1 ] || fail "future: no version_major 1 at byte $i"
	flip "$1" $((i + 1)) 3 "$2" # 1 ^ 3 = 2
}

# inspect_bad FILE: wasp-inspect says FILE is not a valid checkpoint. The
# JSON is kept as json/N.json for json_all_parse.
json_n=0
inspect_bad() {
	"$WASP_INSPECT" "$1" >"$work/i.out" 2>"$work/i.err"
	rc=$?
	[ "$rc" -eq 1 ] || fail "wasp-inspect $(basename "$1"): status $rc, expected 1"
	grep -q '^checksum ok' "$work/i.out" && fail "wasp-inspect $(basename "$1"): says checksum ok"
	[ -s "$work/i.err" ] || fail "wasp-inspect $(basename "$1"): no error on stderr"
	json_n=$((json_n + 1))
	mkdir -p "$work/json"
	"$WASP_INSPECT" --json "$1" >"$work/json/$json_n.json" 2>/dev/null
	rc=$?
	[ "$rc" -eq 1 ] || fail "wasp-inspect --json $(basename "$1"): status $rc, expected 1"
	grep -q '"valid": false' "$work/json/$json_n.json" || fail "wasp-inspect --json $(basename "$1"): no \"valid\": false"
}
# json_all_parse: every JSON kept by inspect_bad parses, says "valid": false
# and has an error; once, with one python3.
json_all_parse() {
	[ "$have_py" = 1 ] || return 0
	python3 -I -S -c '
import json, sys
for f in sys.argv[1:]:
    try:
        d = json.load(open(f))
    except ValueError as e:
        sys.exit("%s: %s" % (f, e))
    if d.get("valid") is not False or not d.get("error"):
        sys.exit("%s: valid %r, error %r" % (f, d.get("valid"), d.get("error")))' "$work"/json/*.json ||
		fail "wasp-inspect --json on a bad checkpoint is not JSON saying valid false with an error"
}

case $case_name in
moments)
	# One run, checkpointed at five moments by socket (3), SIGUSR1 and the
	# trigger file; it ends as the reference did, and so does each
	# checkpoint restored in a process of its own.
	ref
	P=$work/m.path T=$work/m.trig
	counter m "$work/m" --name mom --checkpoint-path "$P" --trigger-file "$T"
	m_pid=$run_pid
	wait_lines m 4
	ck mom -o "$work/ck1.wckpt"; ck_ok m
	wait_lines m 10
	ck mom -o "$work/ck2.wckpt"; ck_ok m
	wait_lines m 16
	kill -USR1 "$m_pid"
	wait_logged m 3 SIGUSR1 "$m_pid"
	cp "$P" "$work/ck3.wckpt"
	wait_lines m 22
	ck mom -o "$work/ck4.wckpt"; ck_ok m
	wait_lines m 28
	touch "$T"
	wait_logged m 5 'trigger file' "$m_pid"
	wait_until test ! -e "$T" || fail "the trigger file was not removed"
	cp "$P" "$work/ck5.wckpt"
	not_done m
	status "$m_pid"
	same_as_ref "the checkpointed run" "$work/m.out" "$rc" "$work/m/counter.log"
	[ "$(grep -c '^wasp-run: checkpoint [0-9]* (.*) to .*: [0-9]* bytes in ' "$work/m.err")" -eq 5 ] ||
		fail "not 5 checkpoints logged: $(cat "$work/m.err")"
	# A checkpoint holds all of guest memory: private to its owner.
	for f in "$work/ck1.wckpt" "$P"; do
		[ "$(stat -c %a "$f")" = 600 ] || fail "$(basename "$f") has mode $(stat -c %a "$f"), expected 600"
	done
	# Five different moments, in order.
	last=-1
	for k in 1 2 3 4 5; do
		is_ckpt "$work/ck$k.wckpt" || fail "ck$k is not a checkpoint"
		info "$work/ck$k.wckpt"
		[ "$ck_cb" -gt "$last" ] || fail "ck$k ($ck_cb console bytes) is not after the one before ($last)"
		last=$ck_cb
	done
	for k in 1 2 3 4 5; do restore_bg "$work/ck$k.wckpt" "r$k"; done
	for k in 1 2 3 4 5; do restore_check "r$k"; done
	no_temp_files
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
stop_chain)
	# Stop, restore with a new name, stop again...: five processes, one run.
	ref
	links=5 D=$work/chain
	counter c1 "$D" --name link1
	for ((k = 1; k < links; k++)); do
		wait_lines c$k 3
		ck link$k --stop -o "$work/c$k.wckpt"; ck_ok c$k
		grep -q 'the virtine stopped' "$work/ck.stderr" || fail "link $k: wasp-ckpt does not say it stopped"
		status "$run_pid"
		stopped c$k
		not_done c$k
		# Console bytes count the virtine's whole life, across processes.
		info "$work/c$k.wckpt"
		total=$(cat "$work"/c[0-9]*.out | wc -c)
		[ "$ck_cb" -eq "$total" ] || fail "link $k: the checkpoint says $ck_cb console bytes, the processes printed $total"
		[ "$ck_off" -eq "$(size "$D/counter.log")" ] || fail "link $k: offset $ck_off, counter.log has $(size "$D/counter.log") bytes"
		bg c$((k + 1)) "$WASP_RESTORE" "$work/c$k.wckpt" --dir "$D" --name link$((k + 1))
	done
	status "$run_pid"
	for ((k = 1; k <= links; k++)); do cat "$work/c$k.out"; done >"$work/chain.all"
	same_as_ref "the chain" "$work/chain.all" "$rc" "$D/counter.log"
	no_temp_files
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
pipe)
	# wasp-ckpt --stop -o - | wasp-restore -: the run moves through a pipe.
	ref
	D=$work/p
	counter p1 "$D" --name piper
	p1_pid=$run_pid
	wait_lines p1 5
	"$WASP_CKPT" piper --stop -o - 2>"$work/ck.stderr" | "$WASP_RESTORE" --dir "$D" - >"$work/p2.out" 2>"$work/p2.err"
	st=("${PIPESTATUS[@]}")
	[ "${st[0]}" -eq 0 ] || too_late_if_done "$work/p1.out" "wasp-ckpt reached p1 after its last step"
	[ "${st[0]}" -eq 0 ] || fail "wasp-ckpt -o - exit status ${st[0]}: $(cat "$work/ck.stderr")"
	grep -q ' to stdout: [0-9]* bytes in .*; the virtine stopped$' "$work/ck.stderr" ||
		fail "wasp-ckpt summary: $(cat "$work/ck.stderr")"
	status "$p1_pid"
	stopped p1
	not_done p1
	cat "$work/p1.out" "$work/p2.out" >"$work/p.all"
	same_as_ref "the piped run" "$work/p.all" "${st[1]}" "$D/counter.log"
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
mappable)
	# wasp-ckpt --mappable: restored by mapping the file (wasp-restore -s
	# says how many pages), the run ends as the reference; a second
	# restore of the same file reads it (--no-map) and ends alike; the
	# file is unchanged by the guests that ran from it.
	ref
	D=$work/m
	counter m1 "$D" --name mapper
	m1_pid=$run_pid
	wait_lines m1 5
	"$WASP_CKPT" mapper --mappable --incremental -o "$work/bad.wckpt" 2>"$work/ck.stderr" &&
		fail "--mappable --incremental was accepted"
	grep -q 'do not go together' "$work/ck.stderr" || fail "--mappable --incremental: $(cat "$work/ck.stderr")"
	ck mapper --stop --mappable -o "$work/m.wckpt"; ck_ok m1
	status "$m1_pid"
	stopped m1
	sum_before=$(sha "$work/m.wckpt")
	cp -r "$D" "$work/m_copy"
	"$WASP_RESTORE" -s --dir "$D" "$work/m.wckpt" >"$work/m2.out" 2>"$work/m2.err"
	rc2=$?
	grep -q 'chunks ([1-9][0-9]* mapped)' "$work/m2.err" || fail "the restore mapped nothing: $(cat "$work/m2.err")"
	cat "$work/m1.out" "$work/m2.out" >"$work/m.all"
	same_as_ref "the mapped run" "$work/m.all" "$rc2" "$D/counter.log"
	"$WASP_RESTORE" -s --no-map --dir "$work/m_copy" "$work/m.wckpt" >"$work/m3.out" 2>"$work/m3.err"
	rc3=$?
	grep -q 'chunks (0 mapped)' "$work/m3.err" || fail "--no-map mapped: $(cat "$work/m3.err")"
	cat "$work/m1.out" "$work/m3.out" >"$work/m3.all"
	same_as_ref "the read run" "$work/m3.all" "$rc3" "$work/m_copy/counter.log"
	[ "$(sha "$work/m.wckpt")" = "$sum_before" ] || fail "the guests' writes reached the checkpoint file"
	"$WASP_INSPECT" "$work/m.wckpt" >/dev/null || fail "wasp-inspect rejects the mappable checkpoint" ;;
modes)
	# fib16 (real mode), fib32 (protected mode), fib64 (long mode, ring 3):
	# stopped mid-computation, restored, the same answer. n grows until an
	# uninterrupted run takes 300 ms, so a stop has a target on any host.
	# fib_ref: the uninterrupted run of $img -- $n, timed (ms).
	fib_ref() {
		t0=$(now_ms)
		"$WASP_RUN" "$G/$img.bin" -- "$n" >"$work/$img.ref" 2>"$work/$img.referr"
		fib_rc=$?
		ms=$(($(now_ms) - t0))
		[ "$fib_rc" -eq 0 ] && grep -q "^fib($n) = [0-9]*\$" "$work/$img.ref" ||
			fail "$img -- $n: status $fib_rc, output: $(cat "$work/$img.ref" "$work/$img.referr")"
	}
	for spec in fib16:20:30 fib32:20:30 fib64:38:46; do
		IFS=: read -r img n nmax <<<"$spec"
		while :; do
			fib_ref
			[ "$ms" -ge 300 ] || [ "$n" -ge "$nmax" ] && break
			n=$((n + 2))
		done
		# Stop it about a third of the way in; should it finish first
		# anyway (a busy host), try again with a longer computation while
		# there is one (n + 2: about 2.6 times the work), else sooner, and
		# after 8 tries at a point wasp-run takes itself (below).
		delay=$((ms / 3))
		for _ in 1 2 3 4 5 6 7 8; do
			bg "$img" "$WASP_RUN" --name "$img" "$G/$img.bin" -- "$n"
			wait_until sock_or_gone "$img" "$run_pid" || fail "$img: no control socket"
			sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
			ck "$img" --stop -o "$work/$img.wckpt"
			ckrc=$rc
			status "$run_pid"
			[ "$ckrc" -eq 0 ] && break
			# Too late: the guest finished first. When it ends just as
			# wasp-ckpt connects, the runner closes the connection; that
			# counts only if the run really finished with its answer.
			grep -q 'already exited\|no virtine named' "$work/ck.stderr" ||
				{ grep -q 'closed the connection' "$work/ck.stderr" &&
					grep -q "^fib($n) = " "$work/$img.out"; } ||
				fail "$img: wasp-ckpt --stop: $(cat "$work/ck.stderr")"
			if [ "$n" -lt "$nmax" ]; then
				n=$((n + 2))
				fib_ref
				delay=$((ms / 3))
			else
				delay=$((delay / 3))
			fi
		done
		if [ "$ckrc" -ne 0 ]; then
			# Every stop by wasp-ckpt came after the end: on this host the
			# run is over before its socket can answer. The checkpoint is
			# then taken at the guest's first hypercall (its argument; the
			# computation follows), a point no host's speed moves.
			echo "$img -- $n: ended before every wasp-ckpt --stop (last delay $delay ms); checkpoint after its first hypercall"
			"$WASP_RUN" --checkpoint-path "$work/$img.wckpt" --checkpoint-after-hypercalls 1 \
				--stop-after-checkpoint "$G/$img.bin" -- "$n" >"$work/$img.out" 2>"$work/$img.err"
			rc=$?
		fi
		stopped "$img"
		[ ! -s "$work/$img.out" ] || fail "$img: printed before the stop: $(cat "$work/$img.out")"
		info "$work/$img.wckpt"
		case $img in
		fib16) ((ck_cr0 & 1)) && fail "fib16: checkpoint not in real mode (cr0 $ck_cr0)" ;;
		fib32) ((ck_cr0 & 1)) && ! ((ck_efer & 0x400)) || fail "fib32: checkpoint not in protected mode (cr0 $ck_cr0 efer $ck_efer)" ;;
		fib64) ((ck_efer & 0x400)) || fail "fib64: checkpoint not in long mode (efer $ck_efer)" ;;
		esac
		"$WASP_RESTORE" "$work/$img.wckpt" >"$work/$img.rout" 2>"$work/$img.rerr"
		rc=$?
		[ "$rc" -eq "$fib_rc" ] || fail "$img: restored status $rc, expected $fib_rc: $(cat "$work/$img.rerr")"
		cmp -s "$work/$img.ref" "$work/$img.rout" ||
			fail "$img -- $n: restored output '$(cat "$work/$img.rout")', uninterrupted '$(cat "$work/$img.ref")'"
	done
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
bad_input)
	# Bad checkpoints and arguments: status 125, one line on stderr naming
	# the problem, nothing on stdout, nothing run, nothing changed.
	S=$work/bi
	stop_counter bi "$S"
	good=$work/bi.wckpt n=$(size "$good")
	good_sha=$(sha "$good") log_sha=$(sha "$S/counter.log")
	"$WASP_INSPECT" "$good" >"$work/i.out" 2>"$work/i.err"
	rc=$?
	[ "$rc" -eq 0 ] || fail "wasp-inspect on a good checkpoint: status $rc: $(cat "$work/i.err")"
	grep -q '^checksum ok (crc32c 0x[0-9a-f]*)$' "$work/i.out" || fail "wasp-inspect: no 'checksum ok'"
	"$WASP_INSPECT" --json "$good" >"$work/i.json" || fail "wasp-inspect --json on a good checkpoint failed"
	grep -q '"valid": true' "$work/i.json" || fail "wasp-inspect --json: no \"valid\": true"
	if [ "$have_py" = 1 ]; then
		python3 -I -S -m json.tool "$work/i.json" >/dev/null 2>&1 || fail "wasp-inspect --json: not JSON"
	fi

	: >"$work/empty"
	r "$work/empty" --dir "$S"; refused "an empty file" "empty stream"
	r - --dir "$S" <"$work/empty"; refused "an empty stdin" "empty stream"
	inspect_bad "$work/empty"
	printf 'WASPCKPX and then some\n' >"$work/text"
	r "$work/text" --dir "$S"; refused "a non-checkpoint file" "not a wasp checkpoint"
	inspect_bad "$work/text"
	cp "$G/counter.bin" "$work/image"
	r "$work/image" --dir "$S"; refused "a virtine image" "not a wasp checkpoint"

	# Cut short: inside the magic, right after it, inside the header, in
	# the middle, just before the end.
	for cut in 1 4 7 8 9 12 40 $((n / 3)) $((n / 2)) $((n - 100)) $((n - 2)) $((n - 1)); do
		head -c "$cut" "$good" >"$work/cut"
		r "$work/cut" --dir "$S"; refused "cut at $cut of $n bytes" "truncated"
		inspect_bad "$work/cut"
	done
	head -c $((n / 2)) "$good" | "$WASP_RESTORE" --dir "$S" - >"$work/r.out" 2>"$work/r.err"
	rc=$?
	refused "half a checkpoint through a pipe" "truncated"
	# Single bytes changed: a bit or a whole byte, in the header, host, memory,
	# vCPU and end records.
	k=0
	for off in 8 9 10 20 $(seq 0 $(((n - 1) / 19)) $((n - 1))) $((n - 30)) $((n - 10)); do
		k=$((k + 1))
		flip "$good" "$off" $((k % 2 ? 0x01 : 0xff)) "$work/bad"
		r "$work/bad" --dir "$S"; refused "byte $off changed" "^wasp-restore: $work/bad: ."
		inspect_bad "$work/bad"
	done
	future "$good" "$work/future"
	r "$work/future" --dir "$S"; refused "format 2.0" "checkpoint format 2.x is newer than this wasp (1.x)"
	inspect_bad "$work/future"
	r "$work/nonexistent.wckpt" --dir "$S"; refused "a missing file" "nonexistent.wckpt: No such file"
	"$WASP_INSPECT" "$work/nonexistent.wckpt" >/dev/null 2>&1
	rc=$?
	[ "$rc" -eq 125 ] || fail "wasp-inspect on a missing file: status $rc, expected 125"
	# The guest's open file is not in the sandbox: named, and not created.
	mkdir "$work/nolog"
	r "$good" --dir "$work/nolog"; refused "counter.log missing" "counter.log"
	[ -z "$(ls -A "$work/nolog")" ] || fail "the refused restore left files: $(ls -A "$work/nolog")"
	r "$good" --dir "$S" --simulate-missing-cpuid 1.edx.26; refused "no SSE2" "sse2"
	# Bad arguments.
	r; refused "no file" "checkpoint file"
	# Two full checkpoints: not one file, nor a chain (a full one and its
	# incremental ones) where wasp-restore takes chains.
	r "$good" "$good" --dir "$S"; refused "two files" "exactly one\|full"
	r --allow bogus "$good" --dir "$S"; refused "--allow bogus" "bogus"
	r --timeout soon "$good" --dir "$S"; refused "--timeout soon" "--timeout"
	r --frobnicate "$good" --dir "$S"
	# getopt's own message, and at most a hint to --help after it.
	[ "$rc" -eq 125 ] && [ ! -s "$work/r.out" ] && grep -q -- 'frobnicate' "$work/r.err" ||
		fail "an unknown option: status $rc: $(cat "$work/r.err")"
	[ "$(grep -cv "^Try 'wasp-restore --help'.\$" "$work/r.err")" -eq 1 ] ||
		fail "an unknown option: more than one line: $(cat "$work/r.err")"

	json_all_parse
	[ "$(sha "$good")" = "$good_sha" ] || fail "the checkpoint file was modified"
	[ "$(sha "$S/counter.log")" = "$log_sha" ] || fail "a refused restore changed counter.log"
	no_temp_files
	# The same file still restores, and the guest goes on where it stopped.
	goes_on bi "the good checkpoint" ;;
restore_again)
	# A restored virtine answers every trigger: SIGUSR1, the trigger file,
	# the socket by name and by pid; it ends as the reference did, and so
	# does each of those checkpoints restored.
	ref
	D=$work/ra P=$work/ra.path T=$work/ra.trig
	counter a0 "$D" --name gen0
	wait_lines a0 3
	ck gen0 --stop -o "$work/a0.wckpt"; ck_ok a0
	status "$run_pid"
	stopped a0
	bg a1 "$WASP_RESTORE" "$work/a0.wckpt" --dir "$D" --name gen1 --checkpoint-path "$P" --trigger-file "$T"
	a1_pid=$run_pid
	wait_lines a1 4
	kill -USR1 "$a1_pid"
	wait_logged a1 1 SIGUSR1 "$a1_pid"
	cp "$P" "$work/g1.wckpt"
	wait_lines a1 8
	ck gen1 -o "$work/g2.wckpt"; ck_ok a1
	grep -q "checkpoint of gen1 (pid $a1_pid)" "$work/ck.stderr" || fail "wasp-ckpt summary: $(cat "$work/ck.stderr")"
	wait_lines a1 12
	ck "$a1_pid" -o "$work/g3.wckpt"; ck_ok a1
	wait_lines a1 16
	touch "$T"
	wait_logged a1 4 'trigger file' "$a1_pid"
	wait_until test ! -e "$T" || fail "the trigger file was not removed"
	cp "$P" "$work/g4.wckpt"
	not_done a1
	status "$a1_pid"
	cat "$work/a0.out" "$work/a1.out" >"$work/a.all"
	same_as_ref "stopped + restored (and checkpointed 4 times)" "$work/a.all" "$rc" "$D/counter.log"
	for k in 1 2 3 4; do restore_bg "$work/g$k.wckpt" "g$k"; done
	for k in 1 2 3 4; do restore_check "g$k"; done
	no_temp_files
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
files_dir)
	# The guest has counter.log open: a restore needs a sandbox.
	stop_counter fd "$work/fd"
	log_sha=$(sha "$work/fd/counter.log")
	r "$work/fd.wckpt"; refused "no --dir" "sandbox"
	grep -q 'counter.log' "$work/r.err" || fail "the error does not name the open file: $(cat "$work/r.err")"
	r "$work/fd.wckpt" --dir "$work/nonexistent"; refused "a missing --dir" "nonexistent"
	[ ! -e "$work/nonexistent" ] || fail "the refused restore created the sandbox"
	touch "$work/plainfile"
	r "$work/fd.wckpt" --dir "$work/plainfile"; refused "--dir a file" "plainfile"
	[ "$(sha "$work/fd/counter.log")" = "$log_sha" ] || fail "a refused restore changed counter.log"
	# With it, the guest goes on.
	goes_on fd "with --dir" ;;
inspect_chain)
	# wasp-inspect FULL INC... checks that each link names the one before.
	ref
	counter ic "$work/ic" --name "ic-$$"
	wait_lines ic 3
	ck "ic-$$" -o "$work/ic0.wckpt"; ck_ok ic
	for i in 1 2 3; do
		wait_lines ic $((3 + 3 * i))
		ck "ic-$$" --incremental -o "$work/ic$i.wckpt"; ck_ok ic
	done
	"$WASP_INSPECT" "$work/ic0.wckpt" "$work/ic1.wckpt" "$work/ic2.wckpt" "$work/ic3.wckpt" \
		>"$work/in.out" 2>"$work/in.err" || fail "a good chain: $(cat "$work/in.err")"
	grep -q '^chain: 4 checkpoints, every link names the one before it$' "$work/in.out" ||
		fail "no chain verdict"
	[ "$(grep -c '^  kind: incremental' "$work/in.out")" -eq 3 ] || fail "not three incremental links"
	"$WASP_INSPECT" --json "$work/ic0.wckpt" "$work/ic1.wckpt" >"$work/in.json" 2>"$work/in.err" ||
		fail "--json chain: $(cat "$work/in.err")"
	if command -v python3 >/dev/null; then
		python3 -m json.tool "$work/in.json" >/dev/null || fail "the chain's JSON does not parse"
	fi
	"$WASP_INSPECT" "$work/ic0.wckpt" "$work/ic2.wckpt" >"$work/in.out" 2>"$work/in.err"
	[ $? -eq 1 ] && grep -q 'follows .*, not the one before it' "$work/in.err" ||
		fail "a missing link was not named: $(cat "$work/in.err")"
	"$WASP_INSPECT" "$work/ic1.wckpt" >/dev/null 2>"$work/in.err" || fail "one increment alone is still a valid file"
	"$WASP_INSPECT" "$work/ic1.wckpt" "$work/ic2.wckpt" >/dev/null 2>"$work/in.err"
	[ $? -eq 1 ] && grep -q 'incremental' "$work/in.err" || fail "a chain without its full checkpoint passed"
	# The same chain restores and finishes like the uninterrupted run.
	ck "ic-$$" --stop --incremental -o "$work/ic4.wckpt"; ck_ok ic
	status "$run_pid"
	"$WASP_RESTORE" --dir "$work/ic" "$work/ic0.wckpt" "$work/ic1.wckpt" "$work/ic2.wckpt" \
		"$work/ic3.wckpt" "$work/ic4.wckpt" >"$work/ic2nd.out" 2>"$work/ic2nd.err"
	rc=$?
	cat "$work/ic.out" "$work/ic2nd.out" >"$work/icall.out"
	same_as_ref "chain restore" "$work/icall.out" "$rc" "$work/ic/counter.log" ;;
console_blocked)
	# A console nobody reads: a FIFO this shell holds open and never
	# reads, filled to its capacity first, so the flood guest blocks on
	# its first line. --timeout still ends the run (124) while the reader
	# lives; a checkpoint of the blocked guest succeeds, and its restore
	# prints exactly the lines not yet written (byte for byte with a run
	# nobody blocked). Before the fix both hung in write(2).
	F=$TEST_GUEST_DIR/flood.bin N=20000 FA=--allow=console_write,get_arg,files
	mkdir -p "$work/fl"
	"$WASP_RUN" $FA --dir "$work/fl" "$F" -- $N >"$work/fl.ref" 2>"$work/fl.ref.err" ||
		fail "the uninterrupted run: $(cat "$work/fl.ref.err")"
	[ "$(wc -l <"$work/fl.ref")" -eq $N ] || fail "the uninterrupted run printed $(wc -l <"$work/fl.ref") lines"
	mkfifo "$work/fifo"
	exec 3<>"$work/fifo"
	# fill: 64 KiB, a pipe's capacity (a smaller pipe fills before).
	fill() { timeout 10 dd if=/dev/zero bs=4096 count=16 >&3 2>/dev/null; }
	# drain FILE: what the pipe holds, without waiting for more.
	drain() { dd if="$work/fifo" iflag=nonblock bs=65536 of="$1" 2>/dev/null; true; }
	fill
	timeout -s KILL 30 "$WASP_RUN" --timeout 1s $FA "$F" -- $N >"$work/fifo" 2>"$work/t.err"
	rc=$?
	[ $rc -eq 124 ] || fail "wasp-run --timeout 1s into a full pipe: exit $rc, expected 124: $(cat "$work/t.err")"
	drain "$work/t.got"
	fill
	"$WASP_RUN" --name "flood-$$" $FA --dir "$work/fl" "$F" -- $N >"$work/fifo" 2>"$work/c.err" &
	c_pid=$!
	bg_pids+=("$c_pid")
	rm -f "$work/fl/started"
	wait_until test -e "$work/fl/started" || fail "the flood guest did not start"
	timeout -s KILL 30 "$WASP_CKPT" --stop "flood-$$" -o "$work/fl.wckpt" >"$work/ck.stdout" 2>"$work/ck.stderr"
	rc=$?
	[ $rc -eq 0 ] || fail "a checkpoint of the blocked guest: exit $rc: $(cat "$work/ck.stderr")"
	status "$c_pid"
	[ $rc -eq 0 ] && grep -q 'stopped after checkpoint' "$work/c.err" || fail "the blocked run: exit $rc: $(cat "$work/c.err")"
	drain "$work/c.got"
	tail -c +65537 "$work/c.got" >"$work/c.src"
	[ "$(wc -l <"$work/c.src")" -lt $N ] || fail "the guest was not blocked: it wrote everything"
	"$WASP_RESTORE" --dir "$work/fl" "$work/fl.wckpt" >"$work/c.rst" 2>"$work/c.rst.err"
	rc=$?
	[ $rc -eq 0 ] || fail "the restore: exit $rc: $(cat "$work/c.rst.err")"
	cat "$work/c.src" "$work/c.rst" | cmp -s - "$work/fl.ref" ||
		fail "before + after the checkpoint differs from the uninterrupted run: $(cat "$work/c.src" "$work/c.rst" | cmp - "$work/fl.ref" 2>&1)"
	exec 3<&-
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")" ;;
mappable_truncate)
	# A mappable checkpoint truncated under the restore running from it:
	# the process must not die of SIGBUS (135). Either the guest had
	# already touched everything it needed and finishes as the reference,
	# or the run ends with the memory-lost fault (139, one line saying
	# so); no socket is left in WASP_RUN_DIR. Then: a copy others may
	# write (group write permission) is not mapped at all, and ends as
	# the reference.
	ref
	D=$work/mt
	counter mt1 "$D" --name "mt-$$"
	wait_lines mt1 3
	ck "mt-$$" --stop --mappable -o "$work/mt.wckpt"; ck_ok mt1
	status "$run_pid"
	stopped mt1
	cp "$work/mt.wckpt" "$work/mt-shared.wckpt"
	cp -r "$D" "$work/mt_copy"
	bg mt2 "$WASP_RESTORE" -s --dir "$D" "$work/mt.wckpt"
	mt2_pid=$run_pid
	wait_lines mt2 1
	grep -q 'chunks ([1-9][0-9]* mapped)' "$work/mt2.err" || fail "the restore mapped nothing: $(cat "$work/mt2.err")"
	truncate -s 0 "$work/mt.wckpt"
	status "$mt2_pid"
	[ $rc -ne 135 ] || fail "wasp-restore died of SIGBUS: $(cat "$work/mt2.err")"
	if [ $rc -eq 139 ]; then
		grep -q 'guest memory lost: the checkpoint file it was mapped from was truncated' "$work/mt2.err" ||
			fail "exit 139 without the reason: $(cat "$work/mt2.err")"
	else
		cat "$work/mt1.out" "$work/mt2.out" >"$work/mt.all"
		same_as_ref "the truncated mapped run" "$work/mt.all" "$rc" "$D/counter.log"
	fi
	echo "truncated under the restore: exit $rc"
	run_dir_empty || fail "socket files left: $(ls "$WASP_RUN_DIR")"
	chmod 0620 "$work/mt-shared.wckpt"
	"$WASP_RESTORE" -s --dir "$work/mt_copy" "$work/mt-shared.wckpt" >"$work/mt3.out" 2>"$work/mt3.err"
	rc3=$?
	grep -q 'chunks (0 mapped)' "$work/mt3.err" || fail "a group-writable file was mapped: $(cat "$work/mt3.err")"
	cat "$work/mt1.out" "$work/mt3.out" >"$work/mt3.all"
	same_as_ref "the group-writable run" "$work/mt3.all" "$rc3" "$work/mt_copy/counter.log" ;;
*) echo "no such case: $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
