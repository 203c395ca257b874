#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR: `cmake --install` into a scratch
# prefix, build examples/ against it with pkg-config only, and run them.
set -eu
build=$1 src=$2
tmp=$(mktemp -d /tmp/wasp-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/wasp/vmm.h include/wasp/wasp_abi.h include/wasp/migrate.h include/wasp/runner.h bin/wasp-run; do
	[ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
ls "$tmp"/prefix/lib*/libwasp.a "$tmp"/prefix/lib*/libwasp.so >/dev/null
export PKG_CONFIG_PATH=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1)
cmake -S "$src/examples" -B "$tmp/ex" >/dev/null
cmake --build "$tmp/ex" >/dev/null
# Also the plain compiler line from the docs.
cc "$src/examples/embed.c" $(pkg-config --cflags --libs wasp) -o "$tmp/embed-cc"
# The layers' own libraries: an embedder who needs only vmm.h links
# libwasp-vmm and pulls no curl, libmicrohttpd, protobuf-c or zstd.
for f in lib*/libwasp-vmm.a lib*/libwasp-ckpt.a lib*/pkgconfig/wasp-vmm.pc lib*/pkgconfig/wasp-ckpt.pc; do
	ls "$tmp"/prefix/$f >/dev/null 2>&1 || { echo "FAIL: $f not installed"; exit 1; }
done
vmm_libs=$(pkg-config --libs --static wasp-vmm)
case "$vmm_libs" in *curl* | *microhttpd* | *protobuf* | *zstd*) echo "FAIL: wasp-vmm pulls '$vmm_libs'"; exit 1 ;; esac
pkg-config --libs --static wasp-ckpt | grep -q zstd || { echo "FAIL: wasp-ckpt does not name zstd"; exit 1; }
cc "$src/examples/embed.c" $(pkg-config --cflags wasp-vmm) $vmm_libs -o "$tmp/embed-vmm" ||
	{ echo "FAIL: embed.c against libwasp-vmm alone"; exit 1; }
# Running them needs KVM; installing and building them does not.
[ -r /dev/kvm ] || { echo "SKIP: /dev/kvm is not available (the install and the examples' build passed)"; exit 77; }
out=$(LD_LIBRARY_PATH=$(dirname "$PKG_CONFIG_PATH") "$tmp/ex/embed")
[ "$out" = "virtine exited with 0" ] || { echo "FAIL: embed printed '$out'"; exit 1; }
out=$(LD_LIBRARY_PATH=$(dirname "$PKG_CONFIG_PATH") "$tmp/embed-cc" "$build/guest/hello.bin")
echo "$out" | grep -q "virtine exited with 42" || { echo "FAIL: hello via embed: '$out'"; exit 1; }
out=$("$tmp/embed-vmm" "$build/guest/hello.bin")
echo "$out" | grep -q "virtine exited with 42" || { echo "FAIL: hello via embed on libwasp-vmm: '$out'"; exit 1; }
# A run loop, the pool, function-style calls, a checkpoint of a virtine we own.
lib=$(dirname "$PKG_CONFIG_PATH")
out=$(LD_LIBRARY_PATH=$lib "$tmp/ex/run_loop")
echo "$out" | grep -q "^virtine exited with 86$" || { echo "FAIL: run_loop: '$out'"; exit 1; }
out=$(LD_LIBRARY_PATH=$lib "$tmp/ex/pool" "$build/tests/pool_fib.bin" 20)
echo "$out" | grep -q "^fib(20) = 6765$" || { echo "FAIL: pool: '$out'"; exit 1; }
echo "$out" | grep -q "^again: 6765$" || { echo "FAIL: pool by hand: '$out'"; exit 1; }
out=$(LD_LIBRARY_PATH=$lib "$tmp/ex/checkpoint" "$build/guest/counter.bin" 50)
echo "$out" | grep -q ": same$\|nothing to checkpoint" || { echo "FAIL: checkpoint: '$out'"; exit 1; }
# A service calling a workload through a pool (docs/workloads.md).
if [ -x "$build/examples/js" ]; then
	mkdir "$tmp/box"
	echo 'function handle(s) { return Duktape.enc("base64", s); }' >"$tmp/box/app.js"
	out=$(printf 'virtine\n' | LD_LIBRARY_PATH=$lib "$tmp/ex/serve" --dir "$tmp/box" "$build/examples/js" --serve app.js)
	[ "$out" = dmlydGluZQ== ] || { echo "FAIL: serve of js: '$out'"; exit 1; }
fi
# wasp-cc, from the installed prefix alone (installed when libclang was found).
if [ -x "$tmp/prefix/bin/wasp-cc" ]; then
	for f in include/wasp/virtine.h lib/wasp/guest/boot.o lib/wasp/guest/libwasp_guest_rt.a \
		lib/wasp/guest/virtine.ld; do
		ls "$tmp"/prefix/${f/lib\//lib*/} >/dev/null 2>&1 || { echo "FAIL: $f not installed"; exit 1; }
	done
	# It must take the runtime from the prefix, not from the build tree:
	# the freestanding one (WASP_CC_LIBC=0), and the headers with the C library.
	for libc in 0 ""; do
		WASP_CC_LIBC=$libc WASP_CC_VERBOSE=1 "$tmp/prefix/bin/wasp-cc" "$src/examples/square.c" \
			-o "$tmp/square2" 2>"$tmp/cc.log" ||
			{ echo "FAIL: installed wasp-cc"; cat "$tmp/cc.log"; exit 1; }
		want=include
		[ -z "$libc" ] || want="lib.*/wasp/guest/boot.o"
		grep -q -- "$tmp/prefix/bin/../$want" "$tmp/cc.log" ||
			{ echo "FAIL: installed wasp-cc did not use the prefix's runtime"; exit 1; }
		! grep -qF "$build" "$tmp/cc.log" || { echo "FAIL: installed wasp-cc used $build"; exit 1; }
		[ "$("$tmp/square2" | head -1)" = "9 25" ] || { echo "FAIL: square2"; exit 1; }
	done
	out=$("$tmp/ex/square")
	echo "$out" | grep -q "^9 25$" || { echo "FAIL: square: '$out'"; exit 1; }
	echo "$out" | grep -q "hello from inside a virtine" || { echo "FAIL: square: '$out'"; exit 1; }
fi
echo "ok: installed library, headers, pkg-config file and examples"
