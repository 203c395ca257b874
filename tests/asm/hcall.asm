; one hypercall whose number and arguments the host test puts in
; memory at 0x9000 (nr, a0..a5); exits with the low 32 bits of the result
%include "longhdr.inc"
start:
	mov rax, [0x9000]
	mov rdi, [0x9008]
	mov rsi, [0x9010]
	mov rdx, [0x9018]
	mov r10, [0x9020]
	mov r8,  [0x9028]
	mov r9,  [0x9030]
	out 0xff, al
	out 0xfa, eax
theend:
