#!/usr/bin/env bash
# cli_test.sh CASE: wasp-run and the guest images, end to end on real KVM.
# ctest passes WASP_RUN, GUEST_DIR (examples), TEST_GUEST_DIR, ASM_DIR.
# Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }

work=$(mktemp -d /tmp/wasp-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
out=$work/stdout err=$work/stderr

fail() { echo "FAIL: $case_name: $*"; echo "--- stdout"; cat "$out" 2>/dev/null; echo "--- stderr"; cat "$err" 2>/dev/null; exit 1; }

# run ARGS...: runs wasp-run, leaving stdout/stderr in files and status in $rc
run() { "$WASP_RUN" "$@" >"$out" 2>"$err"; rc=$?; }

expect_rc() { [ "$rc" -eq "$1" ] || fail "exit status $rc, expected $1"; }
expect_out() { [ "$(cat "$out")" = "$1" ] || fail "stdout differs from: $1"; }
expect_err_has() { grep -q -- "$1" "$err" || fail "stderr lacks '$1'"; }
# Errors are one line, naming the tool.
expect_one_line_error() {
	expect_rc 125
	[ "$(wc -l <"$err")" -eq 1 ] || fail "error is not one line"
	grep -q '^wasp-run: ' "$err" || fail "error does not name wasp-run"
	expect_err_has "$1"
}

G=$GUEST_DIR T=$TEST_GUEST_DIR A=$ASM_DIR

case $case_name in
help)
	run --help; expect_rc 0
	for o in --mem --load-addr --mode --allow --dir --timeout --stats; do
		grep -q -- "$o" "$out" || fail "--help does not document $o"
	done ;;
no_image) run; expect_one_line_error "no image" ;;
missing_image) run "$work/nope.bin"; expect_one_line_error "nope.bin: No such file" ;;
bad_mem)
	for m in 12345 abc 0 -4M 8G 1Q; do
		run --mem "$m" "$A/exit7.bin"; expect_rc 125; [ "$(wc -l <"$err")" -eq 1 ] || fail "--mem $m"
	done ;;
bad_allow) run --allow=console_write,frobnicate "$A/exit7.bin"; expect_one_line_error "unknown hypercall 'frobnicate'" ;;
bad_timeout)
	for t in xyz 0 -1s 5parsecs; do
		run --timeout "$t" "$A/exit7.bin"; expect_one_line_error "--timeout"
	done ;;
bad_mode) run --mode=weird "$A/exit7.bin"; expect_one_line_error "--mode" ;;
bad_option) run --frobnicate "$A/exit7.bin"; expect_one_line_error "'--frobnicate' is unknown" ;;
extra_arg) run "$A/exit7.bin" stray; expect_one_line_error "put guest arguments after --" ;;
bad_dir) run --dir "$work/none" "$A/exit7.bin"; expect_one_line_error "sandbox directory" ;;
oversized_image)
	head -c 200000 /dev/zero >"$work/big.bin"
	run --mem 128K "$work/big.bin"; expect_one_line_error "does not fit" ;;
exit3)
	printf '\x66\xe7\xfa' >"$work/exit3.bin"
	[ "$(stat -c %s "$work/exit3.bin")" -eq 3 ] || fail "not three bytes"
	run "$work/exit3.bin"; expect_rc 0
	run "$G/exit3.bin"; expect_rc 0 ;;
exit7) run "$A/exit7.bin"; expect_rc 7 ;;
timeout) run --timeout 200ms "$A/spin.bin"; expect_rc 124; expect_err_has "timeout" ;;
fault) run "$A/ud2.bin"; expect_rc 139; expect_err_has "triple fault"; expect_err_has "rip=" ;;
hello)
	run "$G/hello.bin"; expect_rc 42; grep -q "^Hello from a virtine!$" "$out" || fail "no greeting" ;;
hello_real)
	# The same image booted from 16-bit real mode through the guest's own stub.
	run --mode real "$G/hello.bin"; expect_rc 42; grep -q "^Hello from a virtine!$" "$out" || fail "no greeting" ;;
fib16) run "$G/fib16.bin" -- 15; expect_rc 0; expect_out "fib(15) = 610" ;;
fib32) run "$G/fib32.bin" -- 15; expect_rc 0; expect_out "fib(15) = 610" ;;
fib64)
	run "$G/fib64.bin" -- 25; expect_rc 0; expect_out "fib(25) = 75025"
	run "$G/fib64.bin"; expect_rc 0; expect_out "fib(20) = 6765" ;;
counter)
	mkdir "$work/a" "$work/b"
	run --allow=console_write,get_arg,files --dir "$work/a" "$G/counter.bin" -- 20 100000
	rc1=$rc; cp "$out" "$work/out1"
	[ "$(wc -l <"$work/a/counter.log")" -eq 20 ] || fail "counter.log has $(wc -l <"$work/a/counter.log") lines"
	grep -q '^done hash ' "$out" || fail "no final hash"
	run --allow=console_write,get_arg,files --dir "$work/b" "$G/counter.bin" -- 20 100000
	[ "$rc" -eq "$rc1" ] || fail "exit status differs between runs"
	cmp -s "$out" "$work/out1" || fail "output differs between runs"
	cmp -s "$work/a/counter.log" "$work/b/counter.log" || fail "log differs between runs" ;;
filecopy)
	head -c 300000 /dev/urandom >"$work/src.bin"
	run --allow=console_write,get_arg,files --dir "$work" "$G/filecopy.bin" -- src.bin dst.bin
	expect_rc 0; cmp -s "$work/src.bin" "$work/dst.bin" || fail "copy differs"
	run --allow=console_write,get_arg,files --dir "$work" "$G/filecopy.bin" -- missing.bin x.bin
	[ "$rc" -ne 0 ] || fail "copying a missing file succeeded"
	# Without the file hypercalls allowed, the copy is refused.
	run --dir "$work" "$G/filecopy.bin" -- src.bin dst2.bin
	[ "$rc" -ne 0 ] && [ ! -e "$work/dst2.bin" ] || fail "copy ran without files allowed" ;;
badptr) run --allow=all --dir "$work" "$T/badptr.bin" -- x; expect_rc 0 ;;
escape)
	mkdir -p "$work/box/sub"; echo secret >"$work/outside.txt"; echo hi >"$work/box/inside.txt"
	ln -s "$work/outside.txt" "$work/box/link_out"
	ln -s "$work" "$work/box/link_dir"
	run --allow=all --dir "$work/box" "$T/escape.bin"; expect_rc 0
	[ ! -e "$work/escape_created.txt" ] || fail "a file was created outside the sandbox" ;;
rtcheck) run "$T/rtcheck.bin" -- one two; expect_rc 0 ;;
argret)
	# wasp-run shows no return buffer; the guest must still run cleanly.
	run "$T/argret.bin" -- abc; expect_rc 0 ;;
denied) run --allow=console_write "$T/denied.bin"; expect_rc 0 ;;
triple) run "$T/triple.bin"; expect_rc 139; expect_err_has "triple fault" ;;
nullderef) run "$T/nullderef.bin"; expect_rc 139; expect_err_has "triple fault" ;;
mmio) run "$T/mmio.bin"; expect_rc 139; expect_err_has "guest fault" ;;
loop_timeout) run --timeout 300ms "$T/loop.bin"; expect_rc 124 ;;
sse) run "$T/sse.bin"; expect_rc 0; [ -s "$out" ] || fail "no output" ;;
hcflood) run --allow=console_write,clock "$T/hcflood.bin"; expect_rc 0; grep -q 10000 "$out" || fail "count missing" ;;
stats)
	run --stats "$A/exit7.bin"; expect_rc 7
	expect_err_has "create"; expect_err_has "exits 1" ;;
*) echo "no such case: $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
