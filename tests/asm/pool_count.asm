; pool_count: a real-mode virtine with state. Exits with the dword at 0x9000
; and leaves it one higher, so a pool that resets memory sees 0 on every
; call and one that does not sees 0, 1, 2, ... It also loads LSTAR with the
; old value (ring 0 may), which a reset must put back too.
[bits 16]
[org 0x8000]
	mov ecx, 0xc0000082
	rdmsr
	add eax, [0x9000]
	inc dword [0x9000]
	push eax
	inc eax
	xor edx, edx
	wrmsr
	pop eax
	out 0xfa, eax
