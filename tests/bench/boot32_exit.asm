; boot32_exit: real mode -> 32-bit protected mode (guest/rt/boot32.inc),
; then exit 0: wasp-bench-core's protected-mode boot row (Table 1 of the
; Wasp paper).
[org 0x8000]
%include "boot32.inc"

main32:
	xor eax, eax
	out 0xFA, eax
	hlt
