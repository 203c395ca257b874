// app.js: the js workload's differential test (tests/linux/linux_test.sh, case
// js): the engine's everyday work, with files in its box, printed in a
// form that is the same on every run: no times, no addresses.
var words = readFile('words.txt').split('\n').filter(function (w) { return w.length; });
print('words', words.length, 'args', args.join('|'));
var counts = {};
words.forEach(function (w) { var k = w.charAt(0); counts[k] = (counts[k] || 0) + 1; });
print(JSON.stringify(counts));
var sorted = words.slice().sort(function (a, b) { return b.length - a.length || (a < b ? -1 : a > b ? 1 : 0); });
print('longest', sorted.slice(0, 3).join(','));
print('base64', Duktape.enc('base64', 'virtines at the hardware limit'));
print('hex', Duktape.enc('hex', 'wasp'));
print('regex', 'a1b22c333'.replace(/[0-9]+/g, function (m) { return '<' + m.length + '>'; }));
var primes = [];
for (var n = 2; primes.length < 500; n++) {
	var p = true;
	for (var d = 2; d * d <= n; d++) if (n % d === 0) { p = false; break; }
	if (p) primes.push(n);
}
print('primes', primes.length, primes[499], primes.reduce(function (a, b) { return a + b; }, 0));
print('math', Math.sqrt(2).toFixed(12), Math.pow(3, 40), (0.1 + 0.2).toString(), (1e21).toString());
var o = JSON.parse('{"a":[1,2,{"b":null}],"c":"\\u00e9"}');
print('json', JSON.stringify(o), o.c.length);
try { null.x; } catch (e) { print('caught', e.name); }
writeFile('out/result.json', JSON.stringify({ words: words.length, primes: primes.length }));
appendFile('out/log.txt', 'one\n');
appendFile('out/log.txt', 'two\n');
print('read back', readFile('out/result.json'), readFile('out/log.txt').length);
