#!/usr/bin/env bash
# linux_test.sh CASE VARIANT: a static Linux program (tests/linux/) run
# natively and in a virtine, compared byte for byte: stdout, stderr (less
# wasp-run's own "wasp-run:" lines), exit status and the files left in its
# box. VARIANT is how it was built: glibc (gcc -static), pie
# (gcc -static-pie), musl (musl-gcc -static). The hostile cases run only in
# virtines and check containment instead (tests/linux/hostile.c), as do
# oom and stack (tests/linux/limits.c: running out of memory and stack).
#
# Natively the program runs as `env -i NAME=VALUE... PROGRAM ARG...` in a
# fresh copy of the box; in the virtine as `wasp-run --dir BOX --env ...
# PROGRAM -- ARG...`, from the same path (so argv[0] is the same) and with
# the same stdin. It also runs natively twice, so a program that is not
# deterministic is told apart from a virtine that differs. Without /dev/kvm
# only the native runs are compared, then the case skips.
#
# VARIANT workload runs the workloads (build/examples/, docs/workloads.md)
# the same way: js, lua_app, sqlite, crypto_* and their error cases, as
# ctest's workload.CASE (tests/workloads/workloads.cmake).
#
# Environment (tests/linux/linux.cmake): WASP_RUN, LX_BIN (the built programs),
# LX_SRC (tests/linux), LX_SKIP (why this variant cannot be built, if so),
# LX_TIMEOUT (seconds per run, default 50); for workloads WL_DIR (the
# programs) and WL_SRC (tests/workloads). Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1 variant=$2
. "$(dirname "$0")/../lib.sh"
name="linux.$case_name.$variant"
[ "$variant" = workload ] && name="workload.$case_name"
[ -z "${LX_SKIP:-}" ] || { echo "SKIP: $name: $LX_SKIP"; exit 77; }
work=$(mktemp -d /tmp/wasp-linux-XXXXXX)
trap 'rm -rf "$work"' EXIT
ulimit -c 0 # a crashing program must not leave a core file in its box
umask 022
tmo=${LX_TIMEOUT:-50}
have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# ---- the cases: which program, its arguments, environment, stdin, box ----
prog=$case_name args=() envs=() stdin=/dev/null no_stdin=0 pipes=0 extra_opts=()
seed_box() { :; }
case $case_name in
stdio | heap | qsort | math | time | random | abort | segv | exit3 | hostile) ;;
inodes) seed_box() { ln -s sub/a.txt "$1/link"; } ;;
hostile_pair) prog=hostile ;;
oom | stack) prog=limits args=("$case_name") ;;
files)
	seed_box() {
		seq 1 1000 >"$1/input.txt"
		mkdir "$1/seed"
		echo aaa >"$1/seed/a.txt"
		echo b >"$1/seed/b.txt"
	}
	;;
files2)
	seed_box() {
		seq 1 500 >"$1/input.txt"
		mkdir "$1/seed"
		echo f >"$1/seed/f.txt"
		ln -s input.txt "$1/link"
		ln -s seed "$1/dirlink"
	}
	;;
args)
	args=(one "two words" "" -- --dashes "ünïcödé" "$(printf 'tab\there')" "*")
	envs=(HOME=/home/virtine EMPTY= WITH_EQUALS=a=b=c LANG=C "SPACES=a b  c")
	;;
badopen) seed_box() { echo present >"$1/present.txt"; } ;;
stdio_pipe) prog=stdio pipes=1 ;; # stdout a pipe, not a file
cat | cat_pipe)
	[ "$case_name" = cat_pipe ] && prog=cat pipes=1
	# Text, then every byte value, then text again.
	seq 1 20000 >"$work/stdin.txt"
	for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >>"$work/stdin.txt"
	seq 5 5 5000 >>"$work/stdin.txt"
	stdin=$work/stdin.txt
	;;
cat_eof) prog=cat no_stdin=1 ;;
lua)
	args=(compute.lua)
	seed_box() { cp "$LX_SRC/compute.lua" "$1/"; }
	;;
# The workloads: scripts and data from tests/workloads in the box.
js | js_error)
	prog=js args=(app.js x "y z")
	[ "$case_name" = js_error ] && args=(error.js)
	seed_box() { wl_seed "$1" app.js error.js; mkdir "$1/out"; }
	;;
lua_app | lua_error)
	prog=lua args=(app.lua x) envs=(WORKLOAD=lua)
	[ "$case_name" = lua_error ] && args=(error.lua)
	seed_box() { wl_seed "$1" app.lua error.lua; }
	;;
sqlite | sqlite_error) # a script file; a database made from nothing
	prog=sqlite args=(app.db app.sql)
	[ "$case_name" = sqlite_error ] && args=(app.db error.sql)
	seed_box() { wl_seed "$1" app.sql error.sql; }
	;;
sqlite_stdin) # the same fed on stdin, a statement at a time
	prog=sqlite args=(app.db) stdin=$WL_SRC/app.sql
	;;
crypto_sha)
	prog=crypto args=(sha256 words.txt bytes.bin - missing.txt)
	seed_box() { wl_seed "$1"; }
	stdin=$work/bytes.bin
	;;
crypto_aes | crypto_aes_d)
	prog=crypto args=(aes-128-cbc -K 2b7e151628aed2a6abf7158809cf4f3c -iv 000102030405060708090a0b0c0d0e0f)
	stdin=$work/bytes.bin
	if [ "$case_name" = crypto_aes_d ]; then
		args+=(-d)
		stdin=$work/cipher.bin
	fi
	;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
# wl_seed BOX FILE...: tests/workloads' FILEs and words.txt, bytes.bin.
wl_seed() {
	local box=$1 f
	shift
	for f in "$@"; do cp "$WL_SRC/$f" "$box/"; done
	printf '%s\n' virtine wasp kernel hypervisor snapshot checkpoint restore migrate duktape \
		lua sqlite openssl alpha beta gamma delta epsilon zeta eta theta >"$box/words.txt"
	cp "$work/bytes.bin" "$box/"
}
if [ "$variant" = workload ]; then
	[ -z "${WL_SKIP:-}" ] || { echo "SKIP: $name: $WL_SKIP"; exit 77; }
	# Every byte value, then text: 25 KiB that is not a multiple of 16.
	{ for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done; seq 1 5000; } >"$work/bytes.bin"
	bin=$WL_DIR/$prog
	if [ "$case_name" = crypto_aes_d ]; then
		"$bin" "${args[@]:0:5}" <"$work/bytes.bin" >"$work/cipher.bin" ||
			{ echo "FAIL: $name: the native encryption failed"; exit 1; }
	fi
else
	bin=$LX_BIN/$prog.$variant
fi
[ -x "$bin" ] || { echo "FAIL: $name: $bin was not built (targets linux_test_programs, workloads)"; exit 1; }

# ---- running ----
# run_io OUT ERR RC CMD...: runs CMD in a subshell with the case's stdin
# and stdout, files or (pipes=1) pipes; its status goes to RC.
run_io() {
	local out=$1 err=$2 rc=$3
	shift 3
	if [ "$pipes" = 1 ]; then
		cat "$stdin" | ("$@") 2>"$err" | cat >"$out"
		echo "${PIPESTATUS[1]}" >"$rc"
	else
		("$@") <"$stdin" >"$out" 2>"$err"
		echo $? >"$rc"
	fi
}

# run_native TAG: in $work/TAG.box; leaves TAG.out, TAG.err, TAG.rc.
run_native() {
	local box=$work/$1.box
	mkdir "$box" && seed_box "$box"
	# Only fds 0-2, as in a virtine: none this shell may have inherited.
	run_io "$work/$1.out" "$work/$1.err" "$work/$1.rc" eval 'cd "$box" &&
		for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd<&-"; done
		exec timeout -k 5 "$tmo" env -i "${envs[@]}" "$bin" "${args[@]}"'
}

# run_virtine TAG [BOX]: the same in a virtine; the raw stderr stays in
# TAG.raw, TAG.err is it without wasp-run's own lines.
run_virtine() {
	local box=${2:-$work/$1.box} e
	local opts=(--dir "$box")
	[ -d "$box" ] || { mkdir "$box" && seed_box "$box"; }
	for e in "${envs[@]}"; do opts+=(--env "$e"); done
	[ "$no_stdin" = 1 ] && opts+=(--no-stdin)
	opts+=("${extra_opts[@]}" "$bin")
	[ ${#args[@]} -gt 0 ] && opts+=(-- "${args[@]}")
	run_io "$work/$1.out" "$work/$1.raw" "$work/$1.rc" timeout -k 5 "$tmo" "$WASP_RUN" "${opts[@]}"
	grep -av '^wasp-run:' "$work/$1.raw" >"$work/$1.err"
}

# manifest DIR: every entry below DIR with its type and mode, and size
# for files (a directory's size depends on the file system, not the program).
manifest() {
	(cd "$1" && find . -mindepth 1 \( -type d -printf 'dir  %m %P\n' \) \
		-o \( -type f -printf 'file %m %s %P\n' \) \
		-o \( -type l -printf 'link %P -> %l\n' \) -o -printf 'other %y %P\n' | LC_ALL=C sort)
}

# compare A B WHAT: all four results of runs A and B; prints each
# difference and returns 1 if there was any.
compare() {
	local a=$1 b=$2 what=$3 s bad=0
	for s in out err; do
		local label=stdout
		[ $s = err ] && label=stderr
		if ! cmp -s "$work/$a.$s" "$work/$b.$s"; then
			bad=1
			echo "DIFF $name $label ($what): $(cmp "$work/$a.$s" "$work/$b.$s" 2>&1 | head -1)"
			diff -a "$work/$a.$s" "$work/$b.$s" | head -n 30
		fi
	done
	if [ "$(cat "$work/$a.rc")" != "$(cat "$work/$b.rc")" ]; then
		bad=1
		echo "DIFF $name exit status ($what): $(cat "$work/$a.rc") vs $(cat "$work/$b.rc")"
	fi
	if ! diff <(manifest "$work/$a.box") <(manifest "$work/$b.box") >"$work/manifest.diff"; then
		bad=1
		echo "DIFF $name files in the box ($what): names, modes or sizes"
		head -n 30 "$work/manifest.diff"
	elif ! diff -rq --no-dereference "$work/$a.box" "$work/$b.box" >"$work/content.diff" 2>&1; then
		bad=1
		echo "DIFF $name file contents in the box ($what):"
		head -n 30 "$work/content.diff"
	fi
	return $bad
}

# show TAG: what the run left, for a failure's message.
show() {
	echo "--- $1: exit status $(cat "$work/$1.rc")"
	[ -s "$work/$1.raw" ] && { echo "--- $1: wasp-run's stderr (tail)"; tail -n 12 "$work/$1.raw"; }
	[ -s "$work/$1.out" ] && { echo "--- $1: stdout (tail)"; tail -n 5 "$work/$1.out"; }
	return 0
}

# trace TAG [BOX]: runs the virtine again with --trace syscalls and shows the
# last calls it made (where a hang or a wrong answer usually is).
trace() {
	# To stderr, which is unbuffered: a run the timeout ends keeps it all.
	local saved=("${extra_opts[@]}")
	extra_opts+=(--trace syscalls)
	tmo=$(((tmo + 1) / 2)) run_virtine "$1" "${2:-}"
	extra_opts=("${saved[@]}")
	echo "--- $1: exit status $(cat "$work/$1.rc"); the last system calls (--trace syscalls):"
	grep -a '^{' "$work/$1.raw" | tail -n 15 | cut -c1-300
}

# ---- the differential cases ----
differential() {
	run_native nat1
	run_native nat2
	if ! compare nat1 nat2 "two native runs"; then
		echo "FAIL: $name: the program is not deterministic natively"
		exit 1
	fi
	if ! have_kvm; then
		echo "SKIP: $name: /dev/kvm is not available (the two native runs agree)"
		exit 77
	fi
	run_virtine vm
	if ! compare nat1 vm "native vs virtine"; then
		show vm
		trace vmtrace
		echo "FAIL: $name: the virtine differs from the native run"
		exit 1
	fi
	# A fault names where it happened: rip in the program's text and the
	# address it touched (segv.c stores to NULL): "at 0x0" where the host
	# catches the exception, "cr2=0x0" where a triple fault kept the state.
	if [ "$case_name" = segv ] &&
		! grep -Eq '^wasp-run: guest fault: .*(at 0x0 |cr2=0x0[ )]).*rip=0x[4-9a-f][0-9a-f]{5}' "$work/vm.raw"; then
		show vm
		fail "the fault report does not name rip and the address: $(grep '^wasp-run: guest fault' "$work/vm.raw")"
	fi
	echo "PASS: $name: stdout $(wc -c <"$work/vm.out") bytes, stderr $(wc -c <"$work/vm.err") bytes," \
		"exit $(cat "$work/vm.rc"), $(manifest "$work/vm.box" | wc -l) box entries: identical"
}

# ---- the hostile cases ----
# Layout: work/outside.txt and work/jail/near.txt hold secrets; the box is
# work/jail/box (so ../near.txt and ../../outside.txt are the secrets).
hostile_box() {
	local jail=$work/$1 box=$work/$1/box
	mkdir -p "$box"
	echo "SECRET: near the box" >"$jail/near.txt"
	echo "inside the box" >"$box/inbox.txt"
	ln -s / "$box/root"
	ln -s ../.. "$box/up"
	ln -s "$work/outside.txt" "$box/abs"
	ln -s "$jail" "$box/absdir"
}

# outside_state: everything in $work outside the boxes and the results,
# with the secrets' checksums, and the host's /etc/passwd the program names.
outside_state() {
	find "$work" -mindepth 1 \( -path "$work/*/box" -o -name '*.out' -o -name '*.err' \
		-o -name '*.raw' -o -name '*.rc' -o -name 'state.*' -o -name '*.diff' \
		-o -path "$work/*.box" \) -prune -o -printf '%y %m %s %T@ %p -> %l\n' | LC_ALL=C sort
	find "$work" \( -path "$work/*/box" -o -path "$work/*.box" \) -prune -o -type f \
		\( -name '*.txt' \) -exec sha256sum {} + | LC_ALL=C sort
	sha256sum /etc/passwd /etc/shadow 2>/dev/null
	stat -c '%n %s %Y' /etc/passwd
}

# check_hostile TAG [MIN]: the run finished, refused every escape (at
# least MIN, default 150, of them), leaked nothing.
check_hostile() {
	local out=$work/$1.out n_refused n_attempts min=${2:-150}
	if [ "$(cat "$work/$1.rc")" != 0 ] || ! grep -q '^hostile: done$' "$out"; then
		show "$1"
		hostile_box "$1-trace"
		trace "$1-trace" "$work/$1-trace/box"
		fail "$1: exit status $(cat "$work/$1.rc") (expected 0), last line: $(tail -n 1 "$out")"
	fi
	if grep -a '^escape: BREACH' "$out"; then
		fail "$1: an escape attempt was not refused (above)"
	fi
	n_refused=$(grep -ac '^escape: refused ' "$out")
	n_attempts=$(sed -n 's/^hostile: \([0-9]*\) escape attempts, \([0-9]*\) refused$/\1 \2/p' "$out")
	[ "$n_attempts" = "$n_refused $n_refused" ] || fail "$1: $n_refused refused lines, the program counted '$n_attempts'"
	[ "$n_refused" -ge "$min" ] || fail "$1: only $n_refused escape attempts ran"
	if grep -aq SECRET "$out" "$work/$1.raw"; then
		fail "$1: a secret from outside the box reached the output"
	fi
	echo "$1: $n_refused escape attempts refused, $(grep -ac '^sys ' "$out") syscalls swept"
}

hostile() {
	if ! have_kvm; then
		echo "SKIP: $name: /dev/kvm is not available (hostile.c never runs natively)"
		exit 77
	fi
	no_stdin=1
	echo "SECRET: outside the box" >"$work/outside.txt"
	hostile_box jail
	hostile_box jailh
	[ "$case_name" = hostile_pair ] && hostile_box jail2
	outside_state >"$work/state.before"
	# An old access time shows a read of the secret (relatime updates it).
	touch -a -d '2001-01-01 00:00:00' "$work/outside.txt" "$work/jail/near.txt"
	local atimes
	atimes=$(stat -c '%X' "$work/outside.txt" "$work/jail/near.txt")

	run_virtine alone "$work/jail/box"
	# wasp's own hypercalls by `out`: refused, or the `out` faults (139).
	args=(hypercalls)
	run_virtine hypercalls "$work/jailh/box"
	# A ring-3 call into the host's syscall stub ends in a guest fault.
	args=(stub)
	run_virtine stub "$work/jailh/box"
	args=()
	[ "$(cat "$work/stub.rc")" = 139 ] && grep -q '^wasp-run: guest fault' "$work/stub.raw" &&
		grep -q '^hostile: stub start$' "$work/stub.out" && ! grep -q survived "$work/stub.out" ||
		{ show stub; fail "a ring-3 call into the syscall stub did not end in a guest fault"; }
	if [ "$case_name" = hostile_pair ]; then
		# The same beside a good virtine (heap), both at once.
		local good=heap saved_bin=$bin
		(bin=$LX_BIN/$good.$variant; no_stdin=0; run_virtine good) &
		local pid_good=$!
		run_virtine paired "$work/jail2/box"
		wait "$pid_good"
		bin=$LX_BIN/$good.$variant
		run_native good_nat
		bin=$saved_bin
		compare good_nat good "the good virtine beside the hostile one, vs native" ||
			{ show good; fail "the good virtine's results changed beside the hostile one"; }
	fi

	[ "$(stat -c '%X' "$work/outside.txt" "$work/jail/near.txt")" = "$atimes" ] ||
		fail "a file outside the box was read (its access time changed)"
	outside_state >"$work/state.after"
	if ! diff "$work/state.before" "$work/state.after"; then
		fail "something outside the box changed (above)"
	fi
	check_hostile alone
	if [ "$(cat "$work/hypercalls.rc")" = 139 ] && grep -q '^wasp-run: guest fault' "$work/hypercalls.raw"; then
		grep -q '^hostile: hypercalls start$' "$work/hypercalls.out" || fail "hypercalls: did not start"
		! grep -aq SECRET "$work/hypercalls.out" "$work/hypercalls.raw" || fail "hypercalls: a secret reached the output"
		echo "hypercalls: ring 3 may not use \`out\` here: the program ended with a guest fault (139)"
	else
		check_hostile hypercalls 7
	fi
	if [ "$case_name" = hostile_pair ]; then
		check_hostile paired
		if ! cmp -s "$work/alone.out" "$work/paired.out"; then
			diff -a "$work/alone.out" "$work/paired.out" | head -n 30
			fail "the hostile program's output differs beside a good virtine"
		fi
		echo "PASS: $name: identical output alone and beside a good virtine; the good one matched its native run"
	else
		echo "PASS: $name: contained"
	fi
}

# ---- running out of memory and of stack (virtines only) ----
limits() {
	if ! have_kvm; then
		echo "SKIP: $name: /dev/kvm is not available (limits.c never runs natively)"
		exit 77
	fi
	no_stdin=1
	extra_opts=(--mem 64M)
	run_virtine vm
	local rc
	rc=$(cat "$work/vm.rc")
	if [ "$case_name" = oom ]; then
		[ "$rc" = 0 ] || { show vm; trace vmtrace; fail "exit status $rc, expected 0"; }
		local want
		for want in "malloc failed before 64 GiB: yes, with ENOMEM: yes, blocks > 0: yes" \
			"mmap of 64 MiB more: failed" "blocks intact: yes" "malloc after freeing: yes" \
			"limits: oom done"; do
			grep -qF "$want" "$work/vm.out" || { show vm; fail "stdout lacks '$want'"; }
		done
		echo "PASS: $name: malloc and mmap ran out with ENOMEM in 64 MiB and the program went on"
	else
		[ "$rc" = 139 ] || { show vm; fail "exit status $rc, expected 139"; }
		grep -q '^limits: recursing$' "$work/vm.out" || fail "did not start"
		grep -q '^wasp-run: guest fault' "$work/vm.raw" || { show vm; fail "no guest fault reported"; }
		echo "PASS: $name: $(grep '^wasp-run: guest fault' "$work/vm.raw" | head -n 1)"
	fi
}

case $case_name in
hostile | hostile_pair) hostile ;;
oom | stack) limits ;;
*) differential ;;
esac
exit 0
