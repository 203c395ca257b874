#!/usr/bin/env bash
# limits_test.sh CASE: the receiver's limits and transport errors against a
# real `wasp-restore --listen` (docs/security.md). Hostile or broken
# senders (curl, or raw bytes through bash's /dev/tcp) send oversized,
# slow, stalled, cut or garbage streams; the listener must refuse each with
# one clear line (its log, the HTTP answer or GET /migrations/ID), never
# restore or start any of it, and go on listening: each case ends by
# sending it a good checkpoint, which must run there to the same exit
# status as a run nobody touched. The TLS cases check the errors for a
# certificate outside the trusted CA and for plain HTTP to a TLS port.
#
# ctest passes WASP_RUN, WASP_RESTORE, WASP_CKPT, WASP_MIGRATE and ASM_DIR
# (dirtier.bin), and for bloat WASP_INSPECT and TEST_STREAM. Exit 0 pass, 1 fail, 77 skip.
set -u
case_name=$1
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not available"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }

. "$(dirname "$0")/../lib.sh"
work_dir wasp-limits

TOKEN=limits-test-token-$$-$RANDOM
ALLOW=--allow=console_write,get_arg
D=$ASM_DIR/dirtier.bin
# dirtier PASSES REGION_KIB: 4 KiB a pass runs a few seconds in all; 1 MiB
# a pass makes a checkpoint of over 1 MiB (random data).
GOOD_ARGS="1000000 4" BIG_ARGS="400000 1024"
LIMIT=512K LIMIT_BYTES=524288

# checkpoint NAME ARGS...: dirtier under wasp-run, stopped by wasp-ckpt
# into $work/NAME.wckpt; its output so far in NAME.src.out.
checkpoint() {
	local n=$1
	shift
	"$WASP_RUN" -m 8M $ALLOW --name "$n" "$D" -- "$@" >"$work/$n.src.out" 2>"$work/$n.src.err" &
	local p=$!
	bg_pids+=("$p")
	wait_until lines_at_least "$work/$n.src.out" 2 || fail "$n: no output from the guest"
	"$WASP_CKPT" -q --stop "$n" -o "$work/$n.wckpt" 2>"$work/$n.ckpt.err" ||
		fail "$n: wasp-ckpt: $(cat "$work/$n.ckpt.err")"
	wait "$p" || fail "$n: wasp-run exited $? after the checkpoint"
}

# The good checkpoint and the exit status of the same guest untouched.
good() {
	"$WASP_RUN" -m 8M $ALLOW "$D" -- $GOOD_ARGS >"$work/ref.out" 2>"$work/ref.err"
	ref_rc=$?
	checkpoint good $GOOD_ARGS
}

# start_receiver [OPTIONS]: the listener with small limits (512 KiB, idle
# 2 s, whole stream 5 s); sets rcv_pid, port, url.
start_receiver() {
	mkdir -p "$work/dst"
	# A fresh log: the shell truncates it only once the child runs, and an
	# earlier receiver's 'listening on' line must not be read meanwhile.
	rm -f "$work/dst.err"
	"$WASP_RESTORE" --listen 127.0.0.1:0 --token "$TOKEN" --dir "$work/dst" \
		--max-stream-size $LIMIT --idle-timeout 2s --stream-timeout 5s "$@" \
		>"$work/dst.out" 2>"$work/dst.err" &
	rcv_pid=$!
	bg_pids+=("$rcv_pid")
	wait_until grep -q 'listening on 127\.0\.0\.1:[0-9]' "$work/dst.err" || fail "the receiver did not start"
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/dst.err")
	[ -n "$port" ] || fail "no port in the receiver's log: $(cat "$work/dst.err")"
	url=http://127.0.0.1:$port
}

# post FILE [CURL OPTIONS]: POSTs FILE to the receiver; sets code (HTTP
# status, 000 without an answer), crc (curl's exit) and body.
post() {
	local f=$1
	shift
	code=$(curl -sS -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
		--data-binary @"$f" "$@" "$url/migrations" 2>"$work/curl.err")
	crc=$?
	body=$(cat "$work/body" 2>/dev/null)
}

# status ID: what GET /migrations/ID says.
status() {
	curl -sS -H "Authorization: Bearer $TOKEN" "$url/migrations/$1"
}

# raw ID BYTES SECONDS_BETWEEN TRICKLE...: a chunked POST through
# /dev/tcp: headers and BYTES (printf format) at once, then each TRICKLE
# chunk after SECONDS_BETWEEN seconds, then waits for the receiver to close
# (at most 20 s). Sets took (s) and answer.
raw() {
	local id=$1 first=$2 gap=$3 t0=$SECONDS
	shift 3
	exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
	printf "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\nWasp-Migration-Id: $id\r\nTransfer-Encoding: chunked\r\n\r\n$first" >&3
	# A subshell that ignores SIGPIPE: the receiver may close first.
	(
		trap '' PIPE
		for c in "$@"; do
			sleep "$gap"
			printf "$c" >&3 2>/dev/null || break
		done
	)
	answer=$(timeout 20 cat <&3)
	[ $? -eq 124 ] && fail "the receiver did not cut off the connection within 20 s"
	exec 3<&-
	took=$((SECONDS - t0))
}

# refused_with ID TEXT: the migration ID was refused, saying TEXT, and
# nothing of it was restored or started.
refused_with() {
	local s
	s=$(status "$1")
	echo "$s" | grep -q '"status":"refused"' || fail "migration $1 not refused: $s"
	echo "$s" | grep -q -- "$2" || fail "migration $1: the reason lacks '$2': $s"
	grep -q "migration $1 .*refused: .*$2" "$work/dst.err" || fail "the log lacks '$2' for $1"
	grep -q "migration $1.*restored" "$work/dst.err" && fail "migration $1 was restored"
	true
}

# still_serves: the listener takes the good checkpoint and runs it to the
# untouched run's exit status; it restored nothing else.
still_serves() {
	post "$work/good.wckpt"
	[ "$code" = 200 ] || fail "the good checkpoint after that: HTTP $code: $body $(cat "$work/curl.err")"
	wait "$rcv_pid"
	local rc=$?
	[ "$rc" -eq "$ref_rc" ] || fail "the receiver exited $rc, the untouched run $ref_rc"
	[ "$(grep -c 'restored' "$work/dst.err")" -eq 1 ] || fail "more than one restore: $(grep restored "$work/dst.err")"
	cat "$work/good.src.out" "$work/dst.out" | cmp -s - "$work/ref.out" || fail "the output differs from the untouched run"
}

# tls_certs: a CA, a server certificate it signed, and a self-signed one
# for the same address that it did not.
tls_certs() {
	command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }
	local o=(-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1)
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" \
		-days 1 -subj /CN=wasp-test-ca >/dev/null 2>&1 &&
	openssl req -newkey rsa:2048 -nodes -keyout "$work/srv.key" -out "$work/srv.csr" \
		-subj /CN=127.0.0.1 >/dev/null 2>&1 &&
	printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext" &&
	openssl x509 -req -in "$work/srv.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
		-CAcreateserial -days 1 -extfile "$work/ext" -out "$work/srv.pem" >/dev/null 2>&1 &&
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/self.key" -out "$work/self.pem" \
		"${o[@]}" >/dev/null 2>&1 || { echo "SKIP: openssl cannot make certificates"; exit 77; }
}

case $case_name in
length)
	# A body whose Content-Length is over the limit: 413 at once.
	good
	checkpoint big $BIG_ARGS
	[ "$(stat -c %s "$work/big.wckpt")" -gt $LIMIT_BYTES ] || fail "the big checkpoint is not big"
	start_receiver
	post "$work/big.wckpt"
	[ "$code" = 413 ] || fail "HTTP $code, expected 413: $body"
	echo "$body" | grep -q "exceeds this receiver's limit of $LIMIT_BYTES bytes (--max-stream-size)" ||
		fail "the answer does not say why: $body"
	grep -q "refused: a stream of [0-9]* bytes exceeds" "$work/dst.err" || fail "not in the log"
	still_serves ;;
chunked)
	# The same stream chunked (no length): cut off once it passes the
	# limit; the reason is in the log and the status.
	good
	checkpoint big $BIG_ARGS
	start_receiver
	id=00000000000000000000000000000b16
	post "$work/big.wckpt" -H 'Transfer-Encoding: chunked' -H "Wasp-Migration-Id: $id"
	# No answer (at most curl's "100 Continue"): the connection is closed.
	[ "$code" = 000 ] || [ "$code" = 100 ] || fail "curl got an answer (HTTP $code): $body"
	[ "$crc" -ne 0 ] || fail "curl saw a whole exchange"
	refused_with $id "limit of $LIMIT_BYTES bytes"
	still_serves ;;
file)
	# Files and stdin obey --max-stream-size too.
	checkpoint big $BIG_ARGS
	"$WASP_RESTORE" --max-stream-size 64K "$work/big.wckpt" >"$work/f.out" 2>"$work/f.err"
	rc=$?
	[ $rc -eq 125 ] || fail "exit $rc, expected 125"
	[ "$(wc -l <"$work/f.err")" -eq 1 ] && grep -q 'the stream would exceed its limit of 65536 bytes' "$work/f.err" ||
		fail "not one clear line: $(cat "$work/f.err")"
	[ -s "$work/f.out" ] && fail "the guest ran"
	"$WASP_RESTORE" --max-stream-size 64K - <"$work/big.wckpt" >"$work/f.out" 2>"$work/f.err"
	[ $? -eq 125 ] && grep -q 'limit of 65536 bytes' "$work/f.err" || fail "stdin: $(cat "$work/f.err")"
	true ;;
bloat)
	# A checkpoint whose one record is 16 MiB of empty repeated strings
	# (~40 times that once decoded): wasp-inspect, wasp-restore from a
	# file and from stdin, and the receiver refuse it in one line, and
	# none of them peaks above the record, its decode budget (2 x 16 MiB
	# + 4 MiB) and a base of 40 MiB: 100 MiB.
	good
	"$TEST_STREAM" write-bloat names 16 "$work/bloat.wckpt" || fail "cannot write the bloated checkpoint"
	why='bytes of memory to decode: too many elements'
	bound=$((100 * 1024))
	/usr/bin/time -f %M -o "$work/peak" "$WASP_INSPECT" "$work/bloat.wckpt" >"$work/i.out" 2>"$work/i.err"
	rc=$?
	[ $rc -ne 0 ] && grep -q "$why" "$work/i.out" "$work/i.err" ||
		fail "wasp-inspect: exit $rc: $(tail -2 "$work/i.out") $(cat "$work/i.err")"
	[ "$(tail -1 "$work/peak")" -le $bound ] || fail "wasp-inspect peaked at $(tail -1 "$work/peak") KiB"
	echo "wasp-inspect: $(tail -1 "$work/peak") KiB at the peak"
	for how in file stdin; do
		if [ $how = file ]; then
			/usr/bin/time -f %M -o "$work/peak" "$WASP_RESTORE" "$work/bloat.wckpt" >"$work/r.out" 2>"$work/r.err"
		else
			/usr/bin/time -f %M -o "$work/peak" "$WASP_RESTORE" - <"$work/bloat.wckpt" >"$work/r.out" 2>"$work/r.err"
		fi
		rc=$?
		[ $rc -eq 125 ] && [ "$(wc -l <"$work/r.err")" -eq 1 ] && grep -q "$why" "$work/r.err" ||
			fail "wasp-restore from a $how: exit $rc: $(cat "$work/r.err")"
		[ "$(tail -1 "$work/peak")" -le $bound ] || fail "wasp-restore from a $how peaked at $(tail -1 "$work/peak") KiB"
		echo "wasp-restore from a $how: $(tail -1 "$work/peak") KiB at the peak"
	done
	start_receiver --max-stream-size 64M
	post "$work/bloat.wckpt"
	[ "$code" = 422 ] && echo "$body" | grep -q "$why" || fail "the receiver: HTTP $code: $body"
	hwm=$(awk '/^VmHWM:/ {print $2}' /proc/$rcv_pid/status)
	[ -n "$hwm" ] && [ "$hwm" -le $bound ] || fail "the receiver peaked at ${hwm:-?} KiB"
	echo "the receiver: $hwm KiB at the peak"
	still_serves ;;
idle)
	# A source that stops sending is cut off after the idle timeout (2 s).
	good
	start_receiver
	id=000000000000000000000000000001d1
	raw $id '8\r\nWASPCKPT\r\n' 0
	[ $took -le 12 ] || fail "cut off after $took s"
	refused_with $id "sent nothing for 2 s and was cut off (--idle-timeout)"
	still_serves ;;
slow)
	# A source that trickles a byte a second (never idle for 2 s) is cut
	# off when the whole stream passes 5 s.
	good
	start_receiver
	id=0000000000000000000000000000510e
	# The magic, then the length of a 64 KiB record whose bytes trickle.
	raw $id 'b\r\nWASPCKPT\x80\x80\x04\r\n' 1 '1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n' \
		'1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n' '1\r\nA\r\n'
	[ $took -le 12 ] || fail "cut off after $took s"
	refused_with $id "took longer than 5 s and was cut off (--stream-timeout)"
	still_serves ;;
garbage)
	# Bytes that are no checkpoint: a 422 that says so.
	good
	start_receiver
	head -c 65536 /dev/urandom >"$work/junk"
	post "$work/junk"
	[ "$code" = 422 ] || fail "HTTP $code, expected 422: $body"
	echo "$body" | grep -q 'not a wasp checkpoint (bad magic)' || fail "the answer does not say why: $body"
	# A real checkpoint with one byte changed in the middle.
	cp "$work/good.wckpt" "$work/flip"
	sz=$(stat -c %s "$work/flip")
	b=$(od -An -tu1 -j $((sz / 2)) -N1 "$work/flip" | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ 1)))" | dd of="$work/flip" bs=1 seek=$((sz / 2)) conv=notrunc 2>/dev/null
	cmp -s "$work/flip" "$work/good.wckpt" && fail "no byte changed"
	post "$work/flip"
	[ "$code" = 422 ] || fail "a flipped byte: HTTP $code: $body"
	echo "$body" | grep -q '"status":"refused"' || fail "a flipped byte: $body"
	still_serves ;;
cut)
	# Half a checkpoint: as a whole (chunked) body it is truncated; as a
	# connection that ends early it never was a whole stream.
	good
	start_receiver
	sz=$(stat -c %s "$work/good.wckpt")
	head -c $((sz / 2)) "$work/good.wckpt" >"$work/half"
	post "$work/half" -H 'Transfer-Encoding: chunked'
	[ "$code" = 422 ] && echo "$body" | grep -q 'truncated' || fail "half a stream: HTTP $code: $body"
	id=00000000000000000000000000000c07
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	{ printf "POST /migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOKEN\r\nWasp-Migration-Id: $id\r\nContent-Length: $sz\r\n\r\n"
	  cat "$work/half"; } >&3
	exec 3<&-
	wait_until bash -c "curl -s -H 'Authorization: Bearer $TOKEN' $url/migrations/$id | grep -q refused" ||
		fail "the cut stream was not refused: $(status $id)"
	refused_with $id "connection ended before the stream was complete"
	still_serves ;;
tls_wrong_ca)
	# The client verifies the server by default: a self-signed certificate
	# outside the CA it trusts is refused before anything is sent, with
	# curl's reason; the CA's own certificate works.
	tls_certs
	good
	start_receiver --tls-cert "$work/self.pem" --tls-key "$work/self.key"
	curl -sS --cacert "$work/ca.pem" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$port/migrations" \
		>/dev/null 2>"$work/curl.err" && fail "curl trusted a certificate outside the CA"
	grep -qi 'certificate' "$work/curl.err" || fail "curl: $(cat "$work/curl.err")"
	"$WASP_RUN" -m 8M $ALLOW --name src "$D" -- $GOOD_ARGS >"$work/src.out" 2>"$work/src.err" &
	src_pid=$!
	bg_pids+=("$src_pid")
	wait_until test -S "$WASP_RUN_DIR/$src_pid.sock" || fail "no control socket"
	"$WASP_MIGRATE" src "https://127.0.0.1:$port" --token "$TOKEN" --cacert "$work/ca.pem" \
		>"$work/mig.out" 2>"$work/mig.err"
	mrc=$?
	[ $mrc -eq 1 ] && grep -q 'certificate\|SSL' "$work/mig.err" &&
		grep -q 'the virtine keeps running here$' "$work/mig.err" ||
		fail "wasp-migrate to an untrusted certificate: exit $mrc: $(cat "$work/mig.err")"
	[ "$(wc -l <"$work/mig.err")" -le 2 ] || fail "not a short error: $(cat "$work/mig.err")"
	alive "$src_pid" || fail "the source stopped"
	kill "$rcv_pid"
	wait "$rcv_pid" 2>/dev/null
	start_receiver --tls-cert "$work/srv.pem" --tls-key "$work/srv.key"
	"$WASP_MIGRATE" src "https://127.0.0.1:$port" --token "$TOKEN" --cacert "$work/ca.pem" \
		>"$work/mig.out" 2>"$work/mig.err" || fail "with the CA's certificate: $(cat "$work/mig.err")"
	wait "$src_pid" || fail "the source exited $?"
	wait "$rcv_pid"
	rc=$?
	[ $rc -eq "$ref_rc" ] || fail "the receiver exited $rc, the untouched run $ref_rc"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref.out" || fail "the output differs" ;;
http_to_tls)
	# Plain HTTP to the TLS port, and HTTPS to a plain port: each side
	# says so in one line, the receiver goes on.
	tls_certs
	good
	start_receiver --tls-cert "$work/srv.pem" --tls-key "$work/srv.key"
	"$WASP_RUN" -m 8M $ALLOW --name src "$D" -- $GOOD_ARGS >"$work/src.out" 2>"$work/src.err" &
	src_pid=$!
	bg_pids+=("$src_pid")
	wait_until test -S "$WASP_RUN_DIR/$src_pid.sock" || fail "no control socket"
	"$WASP_MIGRATE" src "http://127.0.0.1:$port" --token "$TOKEN" >"$work/mig.out" 2>"$work/mig.err"
	mrc=$?
	[ $mrc -eq 1 ] && grep -q 'the virtine keeps running here$' "$work/mig.err" ||
		fail "http to the TLS port: exit $mrc: $(cat "$work/mig.err")"
	grep -q 'an HTTPS receiver? try https://' "$work/mig.err" || fail "the error does not say TLS: $(cat "$work/mig.err")"
	grep -q 'did not speak TLS (plain http:// to this https:// port?)' "$work/dst.err" ||
		fail "the receiver does not say TLS: $(cat "$work/dst.err")"
	alive "$src_pid" || fail "the source stopped"
	curl -sS --cacert "$work/ca.pem" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$port/migrations" \
		>"$work/ready" 2>&1 || fail "the receiver stopped serving HTTPS: $(cat "$work/ready")"
	grep -q '"status":"ready"' "$work/ready" || fail "not ready: $(cat "$work/ready")"
	# HTTPS to a plain receiver.
	mkdir -p "$work/plain"
	"$WASP_RESTORE" --listen 127.0.0.1:0 --token "$TOKEN" --dir "$work/plain" >"$work/plain.out" 2>"$work/plain.err" &
	plain_pid=$!
	bg_pids+=("$plain_pid")
	wait_until grep -q 'listening on' "$work/plain.err" || fail "the plain receiver did not start"
	pport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/plain.err")
	"$WASP_MIGRATE" src "https://127.0.0.1:$pport" --token "$TOKEN" >"$work/mig.out" 2>"$work/mig.err"
	mrc=$?
	[ $mrc -eq 1 ] && grep -q 'the virtine keeps running here$' "$work/mig.err" ||
		fail "https to a plain port: exit $mrc: $(cat "$work/mig.err")"
	grep -qi 'SSL\|TLS' "$work/mig.err" || fail "the error does not say TLS: $(cat "$work/mig.err")"
	"$WASP_MIGRATE" src "https://127.0.0.1:$port" --token "$TOKEN" --cacert "$work/ca.pem" \
		>"$work/mig.out" 2>"$work/mig.err" || fail "the right way: $(cat "$work/mig.err")"
	wait "$src_pid" || fail "the source exited $?"
	wait "$rcv_pid"
	rc=$?
	[ $rc -eq "$ref_rc" ] || fail "the receiver exited $rc, the untouched run $ref_rc"
	cat "$work/src.out" "$work/dst.out" | cmp -s - "$work/ref.out" || fail "the output differs" ;;
*)
	echo "unknown case $case_name"
	exit 2 ;;
esac
echo "PASS: $case_name"
