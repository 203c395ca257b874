; Fills xmm0-15 (and, when [0x9008] != 0, ymm0-15 with AVX) with known
; patterns, spins [0x9000] iterations so a checkpoint lands mid-loop, waits
; until [0x9010] != 0 (so it cannot end before the host's pause), then
; checks every register still holds its pattern: exits 0 when all do,
; 1 + the first bad register's number otherwise.
%include "longhdr.inc"
start:
	mov r8, [0x9008]
	test r8, r8
	jnz .avx_fill
%assign i 0
%rep 16
	movdqu xmm %+ i, [pat + i * 32]
%assign i i + 1
%endrep
	jmp .spin
.avx_fill:
%assign i 0
%rep 16
	vmovdqu ymm %+ i, [pat + i * 32]
%assign i i + 1
%endrep
.spin:
	mov rcx, [0x9000]
.loop:	dec rcx
	jnz .loop
.wait:	cmp qword [0x9010], 0   ; the host's "go on": never before its pause
	je .wait
	test r8, r8
	jnz .avx_check
%assign i 0
%rep 16
	movdqu xmm15, [pat + i * 32]
	pcmpeqb xmm15, xmm %+ i
	pmovmskb eax, xmm15
	cmp eax, 0xffff
	mov eax, i + 1
	jne .bad
%assign i i + 1
%endrep
	xor eax, eax
	out 0xfa, eax
.avx_check:
%assign i 0
%rep 16
	vxorps ymm %+ i, ymm %+ i, [pat + i * 32]
	vptest ymm %+ i, ymm %+ i
	mov eax, i + 1
	jnz .bad
%assign i i + 1
%endrep
	xor eax, eax
.bad:	out 0xfa, eax

align 32
pat:
%assign i 0
%rep 16
%assign j 0
%rep 32
	db (i * 17 + j * 5 + 3) & 0xff
%assign j j + 1
%endrep
%assign i i + 1
%endrep
theend:
