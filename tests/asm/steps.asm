; A short guest for single-step traces (tests/vmm/trace_test.sh lists its
; instruction addresses): straight code, a loop of three rounds, and a
; hypercall in the middle (PVM forgets a single step across an I/O exit;
; the trace must not). Exits with 3.
%include "longhdr.inc"
start:
	mov eax, 1
	mov ebx, 2
	add eax, ebx
	xor ecx, ecx
again:
	inc ecx
	cmp ecx, 3
	jne again
	mov eax, 0x7fff         ; no such hypercall: -ENOSYS, and on we go
	out 0xff, al
	mov eax, ecx
	out 0xfa, eax
theend:
