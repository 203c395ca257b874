#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR: `cmake --install` into a scratch
# prefix, build examples/ against it with pkg-config only, and run them.
set -eu
build=$1 src=$2
[ -r /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
tmp=$(mktemp -d /tmp/wasp-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in include/wasp/vmm.h include/wasp/wasp_abi.h bin/wasp-run; do
	[ -e "$tmp/prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
ls "$tmp"/prefix/lib*/libwasp.a "$tmp"/prefix/lib*/libwasp.so >/dev/null
export PKG_CONFIG_PATH=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1)
cmake -S "$src/examples" -B "$tmp/ex" >/dev/null
cmake --build "$tmp/ex" >/dev/null
# Also the plain compiler line from the docs.
cc "$src/examples/embed.c" $(pkg-config --cflags --libs wasp) -o "$tmp/embed-cc"
out=$(LD_LIBRARY_PATH=$(dirname "$PKG_CONFIG_PATH") "$tmp/ex/embed")
[ "$out" = "virtine exited with 0" ] || { echo "FAIL: embed printed '$out'"; exit 1; }
out=$(LD_LIBRARY_PATH=$(dirname "$PKG_CONFIG_PATH") "$tmp/embed-cc" "$build/guest/hello.bin")
echo "$out" | grep -q "virtine exited with 42" || { echo "FAIL: hello via embed: '$out'"; exit 1; }
echo "ok: installed library, headers, pkg-config file and examples"
