#!/usr/bin/env bash
# workloads_test.sh CASE: the workloads (build/examples/, docs/workloads.md)
# served from pools and checkpointed while they work, compared byte for
# byte with the same binaries run natively.
#
#   serve_js serve_lua serve_sqlite
#            examples/workloads/serve.c makes one wasp_call per line through
#            a pool of `PROG --serve ...`; each result must be what the same
#            program gives natively for that line (`PROG --serve` answers one
#            call from stdin). sqlite's calls also write the database: the
#            pool's snapshot holds an open database whose file moves on
#   chunks   aes_chunks.c: AES-128-CBC, one call per chunk of 16 B and 1 KiB,
#            equal to the native `crypto aes-128-cbc` of the whole input (and
#            to `openssl enc` where openssl is installed)
#   park_js  a pool of js virtines parks call 3 as a checkpoint (a member
#            holding its argument) and serves the other calls on; another
#            process resumes the checkpoint and gives call 3's result
#   sqlite_crash_none sqlite_crash_commits sqlite_crash_hot
#            sqlite inserting rows in many transactions (statements fed on
#            stdin, a transaction open when checkpointed) is checkpointed by
#            its trigger file, runs on (none: stops at once; commits: 40
#            more transactions; hot: into a transaction left open, with a
#            hot journal), is killed with -9, and is restored on the
#            directory the crash left: the files go back to the checkpoint,
#            it finishes, `PRAGMA integrity_check` says ok, and stdout and
#            the rows equal the uninterrupted native run's
#   sqlite_copy    the same, restored in a copy of the directory
#   sqlite_migrate wasp-migrate --with-files mid-run to wasp-restore --listen
#                  over loopback: the receiver finishes identically
#
# ctest passes WASP_RUN, WASP_RESTORE, WASP_MIGRATE, WASP_INSPECT, WL_DIR
# (the workloads and examples), WL_SRC (tests/workloads) and WL_SKIP (why a
# workload was not built). Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -z "${WL_SKIP:-}" ] || { echo "SKIP: $WL_SKIP"; exit 77; }
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
for v in WASP_RUN WASP_RESTORE WASP_MIGRATE WASP_INSPECT WL_DIR WL_SRC; do
	[ -n "${!v:-}" ] || { echo "FAIL: $case_name: $v is not set"; exit 1; }
done
. "$(dirname "$0")/../lib.sh"
work_dir wasp-wl
E=$WL_DIR

# same A B WHAT: files A and B are equal, or the case fails showing how.
same() {
	cmp -s "$1" "$2" || fail "$3 ($(diff -a "$1" "$2" | head -6 | tr '\n' ' '))"
}

# ---- pools ----------------------------------------------------------------
# native_calls OUT DIR PROG ARG...: each line of $work/lines as one native
# call in DIR, results and newlines to OUT (what serve prints).
native_calls() {
	local out=$1 dir=$2 line
	shift 2
	: >"$out"
	while IFS= read -r line; do
		(cd "$dir" && printf %s "$line" | env -i "$@" >>"$out") || fail "native call '$line' failed"
		echo >>"$out"
	done <"$work/lines"
}
serve_case() { # PROG ARG...: native calls and the pool's, in two boxes
	local prog=$1
	shift
	native_calls "$work/native.out" "$work/nat" "$E/$prog" --serve "$@"
	"$E/serve" --dir "$work/vm" "$E/$prog" --serve "$@" <"$work/lines" >"$work/vm.out" 2>"$work/vm.err" ||
		fail "serve failed ($(tail -2 "$work/vm.err"))"
	same "$work/native.out" "$work/vm.out" "the pool's results differ from the native calls"
}

case $case_name in
serve_js | park_js)
	mkdir -p "$work/nat" "$work/vm"
	printf 'function handle(s) { return Duktape.enc("base64", s) + " " + s.length + " " + s.split("").reverse().join(""); }\n' |
		tee "$work/nat/app.js" >"$work/vm/app.js"
	printf '%s\n' "hello" "" "virtines at the hardware limit" "ünïcödé" "a b c" "$(seq -s, 1 300)" >"$work/lines"
	if [ "$case_name" = serve_js ]; then
		serve_case js app.js
	else
		"$E/serve" --dir "$work/vm" --park 3 "$work/parked.wckpt" "$E/js" --serve app.js <"$work/lines" \
			>"$work/vm.out" 2>"$work/vm.err" || fail "serve --park failed ($(tail -2 "$work/vm.err"))"
		is_ckpt "$work/parked.wckpt" || fail "no checkpoint of the parked call"
		native_calls "$work/native.out" "$work/nat" "$E/js" --serve app.js
		sed 3d "$work/native.out" >"$work/native-but-3.out"
		same "$work/native-but-3.out" "$work/vm.out" "the pool's other calls, around the parked one"
		"$E/serve" --dir "$work/vm" --resume "$work/parked.wckpt" >"$work/resumed.out" 2>"$work/resumed.err" ||
			fail "serve --resume failed ($(tail -2 "$work/resumed.err"))"
		sed -n 3p "$work/native.out" >"$work/native-3.out"
		same "$work/native-3.out" "$work/resumed.out" "the parked call, resumed in another process"
	fi ;;
serve_lua)
	mkdir -p "$work/nat" "$work/vm"
	# A call prints (buffered: stdout is a pipe) before its result.
	printf 'n = 0\nfunction handle(s)\n n = n + 1\n io.write("call ", s, "\\n")\n return string.format("%%d %%s %%d", n, s:upper(), #s)\nend\n' |
		tee "$work/nat/app.lua" >"$work/vm/app.lua"
	printf '%s\n' one two "three four" "" "$(seq -s' ' 1 200)" >"$work/lines"
	# n is 1 in every call: each starts from the snapshot.
	serve_case lua app.lua
	# What the script prints while it loads shows once, not once a call.
	printf 'io.write("loading\\n")\n' >>"$work/vm/app.lua"
	"$E/serve" --dir "$work/vm" "$E/lua" --serve app.lua <"$work/lines" >"$work/vm2.out" 2>"$work/vm2.err" ||
		fail "serve failed ($(tail -2 "$work/vm2.err"))"
	[ "$(grep -c '^loading$' "$work/vm2.out")" = 1 ] ||
		fail "output from before the snapshot showed $(grep -c '^loading$' "$work/vm2.out") times" ;;
serve_sqlite)
	mkdir -p "$work/nat" "$work/vm"
	(cd "$work/nat" && env -i "$E/sqlite" app.db "$WL_SRC/app.sql" >/dev/null) || fail "making the database"
	cp "$work/nat/app.db" "$work/vm/"
	printf '%s\n' "SELECT count(*), sum(pages) FROM book" \
		"SELECT name FROM author WHERE id IN (3, 7) ORDER BY id" \
		"INSERT INTO author(name) VALUES ('new one'); SELECT count(*) FROM author" \
		"SELECT count(*) FROM author" "SELECT no_such FROM book" \
		"DELETE FROM book WHERE year < 1950; SELECT changes(), count(*) FROM book" \
		"PRAGMA integrity_check" >"$work/lines"
	serve_case sqlite app.db
	same "$work/nat/app.db" "$work/vm/app.db" "the database the calls left differs from the native one" ;;
chunks)
	{ for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done; seq 1 3000; } >"$work/plain"
	key=2b7e151628aed2a6abf7158809cf4f3c iv=f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
	env -i "$E/crypto" aes-128-cbc -K $key -iv $iv <"$work/plain" >"$work/native.bin" || fail "native encryption"
	if command -v openssl >/dev/null; then
		openssl enc -aes-128-cbc -K $key -iv $iv <"$work/plain" >"$work/openssl.bin" || fail "openssl enc"
		same "$work/openssl.bin" "$work/native.bin" "crypto differs from openssl enc"
	fi
	for c in 16 1024; do
		"$E/aes_chunks" --chunk $c "$E/crypto" $key $iv <"$work/plain" >"$work/vm$c.bin" 2>"$work/vm$c.err" ||
			fail "aes_chunks --chunk $c failed ($(tail -2 "$work/vm$c.err"))"
		same "$work/native.bin" "$work/vm$c.bin" "chunks of $c bytes in virtines"
	done ;;
sqlite_*)
	# The script: 100 transactions, then one left open (a SELECT inside it
	# shows it got there): part 1. Part 2 commits it and adds 200 more;
	# part 3 is the end: checks and a digest of every row.
	txn() { # FROM TO: one transaction per number
		local i
		for ((i = $1; i <= $2; i++)); do
			printf "BEGIN;\nINSERT INTO t(k, v) VALUES (%d, printf('%%08d-%%x', %d, %d));\n" $i $((i * 7919)) $i
			printf "INSERT INTO t(k, v) SELECT k + 100000, v FROM t WHERE k = %d;\nCOMMIT;\nSELECT %d, count(*) FROM t;\n" $i $i
		done
	}
	{
		echo "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
		txn 1 100
		printf "BEGIN;\nINSERT INTO t(k, v) VALUES (0, 'open');\nSELECT 'open', count(*) FROM t;\n"
	} >"$work/part1.sql"
	{ echo "COMMIT;"; txn 101 300; } >"$work/part2.sql"
	printf "PRAGMA integrity_check;\nSELECT count(*), sum(k), group_concat(v, '') IS NOT NULL FROM t;\nSELECT k, v FROM t ORDER BY k;\n" \
		>"$work/part3.sql"
	mkdir -p "$work/native"
	cat "$work/part1.sql" "$work/part2.sql" "$work/part3.sql" |
		(cd "$work/native" && env -i "$E/sqlite" app.db) >"$work/native.out" 2>"$work/native.err" ||
		fail "the native run failed"
	grep -qx ok "$work/native.out" || fail "the native run's integrity check"
	rows() { (cd "$1" && env -i "$E/sqlite" app.db "$work/part3.sql"); }

	# The first run: part 1 through a FIFO held open on fd 3.
	mkdir -p "$work/a"
	mkfifo "$work/a.in"
	exec 3<>"$work/a.in"
	lines=101
	if [ "$case_name" = sqlite_migrate ]; then
		TOKEN=wl-test-token-$$-$RANDOM
		mkdir -p "$work/dst"
		cat "$work/part2.sql" "$work/part3.sql" >"$work/dst.in"
		"$WASP_RESTORE" --listen 127.0.0.1:0 --token "$TOKEN" --dir "$work/dst" <"$work/dst.in" \
			>"$work/dst.out" 2>"$work/dst.err" &
		rcv=$!
		bg_pids+=("$rcv")
		wait_until grep -q 'listening on' "$work/dst.err" || fail "the receiver did not start"
		port=$(sed -n 's/.*listening on .*:\([0-9]*\) .*/\1/p' "$work/dst.err")
		"$WASP_RUN" --dir "$work/a" "$E/sqlite" -- app.db <"$work/a.in" >"$work/a.out" 2>"$work/a.err" &
		pid=$!
		bg_pids+=("$pid")
		cat "$work/part1.sql" >&3
		wait_until lines_at_least "$work/a.out" $lines || fail "no progress"
		wait_until test -S "$WASP_RUN_DIR/$pid.sock" || fail "no control socket"
		"$WASP_MIGRATE" "$pid" "http://127.0.0.1:$port" --token "$TOKEN" --with-files \
			>"$work/mig.out" 2>"$work/mig.err" || fail "wasp-migrate: $(cat "$work/mig.err")"
		wait "$pid" || fail "the source exited $? after migrating"
		wait "$rcv" || fail "the receiver's run exited $?"
		cat "$work/a.out" "$work/dst.out" >"$work/joined.out"
		same "$work/native.out" "$work/joined.out" "stdout across the migration"
		rows "$work/dst" >"$work/dst.rows" && rows "$work/native" >"$work/native.rows" || fail "reading the rows"
		same "$work/native.rows" "$work/dst.rows" "the rows after the migration"
		echo "$case_name: ok"
		exit 0
	fi
	"$WASP_RUN" --dir "$work/a" --checkpoint-path "$work/a.wckpt" --trigger-file "$work/go" \
		"$E/sqlite" -- app.db <"$work/a.in" >"$work/a.out" 2>"$work/a.err" &
	pid=$!
	bg_pids+=("$pid")
	cat "$work/part1.sql" >&3
	wait_until lines_at_least "$work/a.out" $lines || fail "no progress"
	touch "$work/go"
	wait_until is_ckpt "$work/a.wckpt" || fail "no checkpoint after the trigger file"
	wait_until test ! -e "$work/go" || fail "the trigger was not taken"
	"$WASP_INSPECT" "$work/a.wckpt" >/dev/null 2>&1 || fail "the checkpoint does not read back"
	# The crash: the first process runs on, then dies.
	case $case_name in
	sqlite_crash_commits)
		{ echo "COMMIT;"; txn 101 140; } >&3
		wait_until lines_at_least "$work/a.out" $((lines + 40)) || fail "no progress after the checkpoint" ;;
	sqlite_crash_hot)
		{ echo "COMMIT;"; txn 101 110; printf "BEGIN;\nDELETE FROM t WHERE k %% 3 = 0;\nSELECT 'hot', count(*) FROM t;\n"; } >&3
		wait_until lines_at_least "$work/a.out" $((lines + 11)) || fail "no progress after the checkpoint"
		ls "$work/a"/app.db-journal >/dev/null 2>&1 || fail "no hot journal when the process died" ;;
	esac
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	dir=$work/a
	if [ "$case_name" = sqlite_copy ]; then
		cp -a "$work/a" "$work/b"
		dir=$work/b
	fi
	cb=$("$WASP_INSPECT" --json "$work/a.wckpt" |
		python3 -I -S -c 'import json,sys; print(json.load(sys.stdin)["host"]["console_bytes"])') ||
		fail "wasp-inspect cannot read the checkpoint"
	cat "$work/part2.sql" "$work/part3.sql" |
		"$WASP_RESTORE" --dir "$dir" "$work/a.wckpt" >"$work/r.out" 2>"$work/r.err" || fail "the restored run exited $?"
	{ head -c "$cb" "$work/a.out"; cat "$work/r.out"; } >"$work/joined.out"
	same "$work/native.out" "$work/joined.out" "stdout before the checkpoint and after the restore"
	rows "$dir" >"$work/r.rows" && rows "$work/native" >"$work/native.rows" || fail "reading the rows"
	same "$work/native.rows" "$work/r.rows" "the rows of the restored database"
	[ "$(head -1 "$work/r.rows")" = ok ] || fail "the restored database's integrity check: $(head -1 "$work/r.rows")" ;;
*)
	echo "FAIL: unknown case $case_name"
	exit 1 ;;
esac
echo "$case_name: ok"
