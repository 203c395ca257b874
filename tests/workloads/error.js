// error.js: an uncaught error: its stack on stderr, exit 1 (test case js_error).
print('before');
function inner(x) { return x.missing.field; }
function outer() { return inner({}); }
outer();
print('never');
