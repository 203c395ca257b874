#!/usr/bin/env bash
# cc_test.sh CASE: wasp-cc end to end (docs/embedding.md). Compiles the C
# files in tests/tools/cc/ with the real wasp-cc and runs what it built on KVM.
# Environment (tests/tools/cc.cmake): WASP_CC, CC_SRC (tests/cc), CC_FLAGS (extra
# host flags, e.g. the sanitizers of an ASan build), CC_INCLUDE and CC_LIB
# (wasp's headers and libwasp, for native builds of the same files), CC_LIBC
# (the musl-gcc wasp-cc links virtine functions with; empty: none).
set -u
case_name=$1
. "$(dirname "$0")/../lib.sh"
work=$(mktemp -d /tmp/wasp-cc-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
read -r -a flags <<<"${CC_FLAGS:-}"
needs_kvm() { [ -r /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }; }
needs_libc() {
	[ -n "${CC_LIBC:-}" ] ||
		{ echo "SKIP: wasp-cc has no C library (musl-gcc; Debian: musl-tools)"; exit 77; }
}

# same FILE: FILE built by wasp-cc (its virtine functions in virtines, with
# the C library) and by a plain cc (all native, the host's C library); both
# runs must write the same bytes to stdout and to stderr.
same() {
	needs_kvm
	needs_libc
	local b=${1%.c}
	"$WASP_CC" -O2 -Wall -Wextra -Werror "${flags[@]}" "$CC_SRC/$1" -o "$b" -lm \
		>cc.out 2>cc.err || { cat cc.err; fail "wasp-cc $1 failed"; }
	cc -O2 -Wall -Wextra -Werror "${flags[@]}" -I"$CC_INCLUDE" "$CC_SRC/$1" -o "$b.native" \
		-lm -L"$CC_LIB" -Wl,-rpath,"$CC_LIB" -lwasp >>cc.out 2>>cc.err ||
		{ cat cc.err; fail "plain cc $1 failed"; }
	nm "$b" | grep -q ' wasp_vfn_call' || fail "$b does not call through a pool"
	"./$b.native" >native.out 2>native.err || fail "$b.native failed"
	"./$b" >virtine.out 2>virtine.err || { cat virtine.out virtine.err; fail "$b failed"; }
	cat virtine.out
	cmp native.out virtine.out || { diff native.out virtine.out | head -20; fail "stdout differs"; }
	cmp native.err virtine.err || { diff native.err virtine.err | head -20; fail "stderr differs"; }
}

# bad FILE MESSAGE: wasp-cc refuses FILE with a one-line MESSAGE, exit 1.
bad() {
	"$WASP_CC" -c "$CC_SRC/$1" -o x.o >out.out 2>err.err && fail "$1 compiled"
	[ ! -e x.o ] || fail "$1 left an object behind"
	[ "$(wc -l <err.err)" -eq 1 ] || fail "$1: not one line"
	grep -qF -- "$2" err.err || fail "$1: message lacks '$2'"
	cat err.err
}

case $case_name in
virtines | no_snapshot)
	needs_kvm
	"$WASP_CC" -O2 -Wall -Wextra -Werror "${flags[@]}" -I"$CC_SRC" "$CC_SRC/virtines.c" \
		-o virtines -lpthread >cc.out 2>cc.err || fail "wasp-cc failed"
	[ "$case_name" = no_snapshot ] && export WASP_NO_SNAPSHOT=1
	./virtines >run.out 2>run.err || fail "virtines failed"
	cat run.out
	grep -q '^PASS: 0 failures$' run.out || fail "no PASS line"
	# square(3) == 9 came from the guest: its image is in the binary.
	grep -q "hello from a virtine" run.out || fail "the allowed console write is missing"
	! grep -q "should not appear" run.out run.err || fail "a denied console write got out"
	;;
separate)
	# cc-style: -c with the default object name, then a link step.
	needs_kvm
	cp "$CC_SRC/square.c" .
	"$WASP_CC" -c "${flags[@]}" square.c 2>cc.err || fail "wasp-cc -c failed"
	[ -s square.o ] || fail "no square.o"
	nm square.o | grep -q ' wasp_vfn_call' || fail "square.o does not call through the pool"
	"$WASP_CC" "${flags[@]}" square.o -o square 2>>cc.err || fail "link failed"
	out=$(./square 2>run.err) || fail "square failed: $out"
	[ "$out" = 9 ] || fail "square printed '$out'"
	# The same file with a plain cc: the keyword is empty, square runs natively.
	cc "${flags[@]}" -I"$CC_INCLUDE" square.c -o native 2>>cc.err || fail "plain cc failed"
	nm native | grep -q wasp_vfn_call && fail "plain cc build calls into wasp"
	[ "$(./native)" = 9 ] || fail "native square"
	;;
odd_paths)
	# A directory with a space, a local header found beside the source,
	# and a C file without the .c suffix given with -x c.
	needs_kvm
	mkdir "my dir"
	printf '#define FACTOR 3\n' >"my dir/local.h"
	printf '#include <stdio.h>\n#include <wasp/virtine.h>\n#include "local.h"\n%s\n%s\n' \
		'virtine int triple(int x) { return x * FACTOR; }' \
		'int main(void) { printf("%d %d\n", triple(14), wasp_virtine_errno()); return 0; }' \
		>"my dir/t.inc"
	"$WASP_CC" "${flags[@]}" -x c "my dir/t.inc" -x none -o t 2>cc.err || fail "wasp-cc failed"
	nm t | grep -q ' wasp_vfn_call' || fail "-x c: triple was not put in a virtine"
	out=$(./t 2>run.err) || fail "t failed"
	[ "$out" = "42 0" ] || fail "t printed '$out'"
	;;
two_files)
	# Two files with virtine functions, compiled and linked in one command;
	# each keeps its own state per call (every call starts at the snapshot).
	needs_kvm
	printf '#include <wasp/virtine.h>\nstatic int calls;\n%s\n' \
		'virtine int count(int x) { calls++; return calls * 1000 + x; }' >a.c
	printf '#include <stdio.h>\n#include <wasp/virtine.h>\nint count(int x);\n%s\n%s\n' \
		'virtine int twice(int x) { return 2 * x; }' \
		'int main(void) { int a = count(1), b = count(2); printf("%d %d %d\n", a, b, twice(21)); return 0; }' >b.c
	"$WASP_CC" "${flags[@]}" a.c b.c -o ab 2>cc.err || fail "wasp-cc failed"
	out=$(./ab 2>run.err) || fail "ab failed"
	# 1001 twice: the counter the second call sees is the snapshot's, not
	# what the first call left behind.
	[ "$out" = "1001 1002 42" ] || fail "ab printed '$out'"
	;;
cmake_project)
	# wasp-cc as a project's C compiler, with the compiler's dependency
	# files (CMake >= 3.20 Makefiles and Ninja use them): a rebuild after
	# touching the source works and the .d files name the real source.
	needs_kvm
	mkdir proj
	cp "$CC_SRC/square.c" proj/
	printf 'cmake_minimum_required(VERSION 3.20)\nproject(p C)\nadd_executable(square square.c)\n' \
		>proj/CMakeLists.txt
	CC="$WASP_CC" CFLAGS="${flags[*]}" LDFLAGS="${flags[*]}" cmake -S proj -B pb \
		>cmake.out 2>cmake.err || fail "configure with wasp-cc failed"
	cmake --build pb >build.out 2>build.err || fail "build failed"
	[ "$(./pb/square)" = 9 ] || fail "square"
	! grep -rqE "wasp-cc-[A-Za-z0-9]{6}/[0-9]+/" pb --include='*.d' ||
		fail "a .d file names wasp-cc's temporary copy"
	grep -rqF "proj/square.c" pb --include='*.d' || fail "no .d file names square.c"
	touch proj/square.c
	cmake --build pb >build.out 2>build.err || fail "rebuild failed"
	[ "$(./pb/square)" = 9 ] || fail "square after rebuild"
	;;
plain_file)
	# A file without virtine functions: wasp-cc is just cc.
	printf '#include <stdio.h>\nint main(void) { puts("plain"); return 0; }\n' >p.c
	"$WASP_CC" "${flags[@]}" p.c -o p 2>cc.err || fail "wasp-cc failed"
	[ "$(./p)" = plain ] || fail "p"
	;;
libc) same libc.c ;;
libc_stdio)
	same libc_stdio.c
	# Not vacuous: the guest's lines are there, between the host's.
	grep -q '^guest printf 2$' virtine.out && grep -q '^line 0299 of 300' virtine.out ||
		fail "the guest's output is missing"
	grep -q '^guest stderr 1$' virtine.err || fail "the guest's stderr is missing"
	;;
libc_errors)
	needs_kvm
	needs_libc
	"$WASP_CC" -O2 -Wall -Wextra -Werror "${flags[@]}" "$CC_SRC/libc_errors.c" -o errors \
		>cc.out 2>cc.err || { cat cc.err; fail "wasp-cc failed"; }
	./errors >run.out 2>run.err || { cat run.out run.err; fail "errors failed"; }
	cat run.out
	grep -q '^PASS: 0 failures$' run.out || fail "no PASS line"
	! grep -q "should not appear" run.out run.err || fail "a denied printf got out"
	;;
freestanding)
	# WASP_CC_LIBC=0: the freestanding runtime, as on a machine without
	# musl-gcc, still runs the whole suite of virtines.c.
	needs_kvm
	WASP_CC_LIBC=0 "$WASP_CC" -O2 -Wall -Wextra -Werror "${flags[@]}" -I"$CC_SRC" \
		"$CC_SRC/virtines.c" -o virtines -lpthread >cc.out 2>cc.err || fail "wasp-cc failed"
	./virtines >run.out 2>run.err || { cat run.out; fail "virtines failed"; }
	grep -q '^PASS: 0 failures$' run.out || fail "no PASS line"
	;;
bad_nolibc)
	# Without the C library, a call into it is refused, naming the call
	# and why there is no C library.
	export WASP_CC_LIBC=0
	bad libc.c "virtine function 'summarize' calls qsort, which a virtine does not have (only this file's functions and the guest runtime's; no C library: WASP_CC_LIBC=0)"
	;;
bad_variadic) bad bad_variadic.c "virtine function 'sum': it is variadic" ;;
bad_funcptr) bad bad_funcptr.c "virtine function 'apply': parameter 'fn' (int (*)(int)) is a function pointer" ;;
bad_voidptr) bad bad_voidptr.c "virtine function 'first': parameter 'p' (void *) points to void" ;;
bad_incomplete) bad bad_incomplete.c "virtine function 'peek': parameter 'o' (struct opaque *) points to an incomplete type" ;;
bad_ptrmember) bad bad_ptrmember.c "virtine function 'head': parameter 'n' (struct node) holds a pointer member" ;;
bad_retptr) bad bad_retptr.c "virtine function 'where': it returns a pointer" ;;
bad_hostcall) bad bad_hostcall.c "virtine function 'shout' calls host_log, which a virtine does not have" ;;
bad_flexible) bad bad_flexible.c "virtine function 'length': parameter 'm' (const struct msg *) points to an object holding a flexible array member" ;;
bad_allow) bad bad_allow.c "virtine function 'f': virtine_allow(console_write,launch_missiles): " ;;
bad_policy) bad bad_policy.c "virtine function 'f': virtine_mem(lots)" ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
echo "ok: $case_name"
