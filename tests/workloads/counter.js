// counter.js: tests/linux/core/counter.c in JavaScript, for the checkpoint
// and migration tests of the js workload (tests/linux/linux_ckpt_test.sh): N
// rounds of 32-bit FNV hashing, each printing a line and appending one to
// log.txt, with arrays made and dropped so the heap moves; one byte of
// stdin is read after rounds 20 and 200 (the gates that let a test trigger
// while the program waits, whatever the host's speed).
var n = args.length ? parseInt(args[0], 10) : 300;
var h = 2166136261;
var keep = [];
function hex(x) { return ('0000000' + (x >>> 0).toString(16)).slice(-8); }
for (var i = 0; i < n; i++) {
	for (var j = 0; j < 2000; j++)
		h = Math.imul(h ^ (i * j + 1), 16777619) >>> 0;
	var t = [];
	for (var k = 0; k < (h >>> 20) % 2000 + 1; k++)
		t.push({ k: k, v: k ^ h });
	keep[i % 8] = t;
	print(i + ' ' + hex(h) + ' ' + t.length);
	appendFile('log.txt', 'round ' + i + ' ' + (h & 0xffff).toString(16) + '\n');
	if (i == 19 || i == 199)
		readStdin(1);
}
print('done ' + hex(h));
