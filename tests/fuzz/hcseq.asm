; fuzz_hypercall's guest: makes the hypercalls the host put in a table at
; 0x9000 (count, then nr a0..a5 per entry, 56 bytes each), one after the
; other through the real exit path, storing each result over its nr;
; then exits 0. Only rax changes across a hypercall.
%include "longhdr.inc"
start:
	mov rcx, [0x9000]
	mov rbx, 0x9008
.next:
	test rcx, rcx
	jz .done
	mov rax, [rbx]
	mov rdi, [rbx + 8]
	mov rsi, [rbx + 16]
	mov rdx, [rbx + 24]
	mov r10, [rbx + 32]
	mov r8, [rbx + 40]
	mov r9, [rbx + 48]
	out 0xff, al
	mov [rbx], rax
	add rbx, 56
	dec rcx
	jmp .next
.done:
	xor eax, eax
	out 0xfa, eax
theend:
