; fib16: recursive Fibonacci in 16-bit real mode, the way the host enters a
; plain image (cs:ip at 0x8000, edi = memory size). Argument: n (default 20).
; Hypercalls pass 32-bit linear addresses: with ds = 0, a label is one.
;
; Real-mode code is emulated on PVM (~0.5 us per instruction), so fib(20)
; takes a tenth of a second there and microseconds on hardware.

[bits 16]
[org 0x8000]
start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x8000                  ; stack grows down below the image
	jmp fib_main

%include "fib_common.inc"
