; fib32: fib16 in 32-bit protected mode, reached through boot32.inc.
; Argument: n (default 20). Prints "fib(N) = X" and exits 0.

[org 0x8000]
%include "boot32.inc"

main32:                                 ; [bits 32], flat segments, esp = top of memory
	jmp fib_main

%include "fib_common.inc"
