#!/usr/bin/env bash
# exports_test.sh LIBWASP_SO HEADER...: libwasp.so exports exactly the
# functions its public headers declare with WASP_API (vmm/wasp_api.h), and
# every function those headers declare carries it. So an internal function
# never becomes API by accident, and a public one is never left hidden.
set -u
so=$1
shift
command -v nm >/dev/null || { echo "SKIP: no nm (binutils)"; exit 77; }
tmp=$(mktemp -d /tmp/wasp-exports-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Declarations start at column 0: a return type, then the name and "(".
decl='^(WASP_API )?(const )?(struct |enum |unsigned )?[A-Za-z_][A-Za-z_0-9]*[ *]+\**((wasp|virtine)_[A-Za-z_0-9]*)\('
grep -hE "$decl" "$@" | grep -vE '^(typedef|static|#)' | sed -E "s/$decl.*/\4/" | sort -u >"$tmp/declared"
grep -hE "^WASP_API " "$@" | sed -E "s/$decl.*/\4/" | sort -u >"$tmp/api"
# Names the compiler or a sanitizer adds begin with '_'; ours never do.
nm -D --defined-only "$so" | awk '$2 ~ /^[TtWwDdBbRr]$/ && $3 !~ /^_/ {print $3}' | sort -u >"$tmp/exported"
[ -s "$tmp/api" ] || { echo "FAIL: no WASP_API declaration found in $*"; exit 1; }
bad=0
if ! diff -q "$tmp/declared" "$tmp/api" >/dev/null; then
	echo "FAIL: declared in a public header without WASP_API:"
	comm -23 "$tmp/declared" "$tmp/api" | sed 's/^/  /'
	bad=1
fi
if ! diff -q "$tmp/api" "$tmp/exported" >/dev/null; then
	echo "FAIL: WASP_API but not exported by $so:"
	comm -23 "$tmp/api" "$tmp/exported" | sed 's/^/  /'
	echo "FAIL: exported by $so but not public API:"
	comm -13 "$tmp/api" "$tmp/exported" | sed 's/^/  /'
	bad=1
fi
[ $bad = 0 ] || exit 1
echo "ok: libwasp.so exports the $(wc -l <"$tmp/api") functions of the public headers and nothing else"
