; Writes all over its memory while it runs, for dirty tracking: iteration i
; stores i into the 8 bytes at 0x100000 + ((i * 40503) % [0x9008]) * 8 (a
; region of [0x9008] words), zeroes a whole page now and then, and every
; 4096 iterations asks the host to write its argument into the page at
; 0x200000 + (i / 4096 % 16) * 4096 (get_arg: pages the host dirties).
; After [0x9000] iterations it exits with a hash of the region.
%include "longhdr.inc"
start:
	mov r12, [0x9000]               ; iterations
	mov r13, [0x9008]               ; region words
	xor r14, r14                    ; i
.loop:	mov rax, r14
	imul rax, rax, 40503
	xor edx, edx
	div r13
	mov [0x100000 + rdx * 8], r14
	test r14w, 0x3ff
	jnz .no_zero
	; zero the page holding that word: a page that becomes all zero
	lea rdi, [0x100000 + rdx * 8]
	and rdi, ~0xfff
	mov ecx, 512
	xor eax, eax
	rep stosq
.no_zero:
	test r14w, 0xfff
	jnz .no_host
	mov rdi, r14
	shr rdi, 12
	and edi, 15
	shl edi, 12
	add rdi, 0x200000
	mov eax, 11                     ; WASP_HC_GET_ARG
	mov esi, 64
	out 0xff, al
.no_host:
	inc r14
	cmp r14, r12
	jb .loop
	; hash the region and the host-written pages (FNV-1a over qwords)
	mov rax, 0xcbf29ce484222325
	mov rbx, 0x100000001b3
	xor ecx, ecx
.hash:	xor rax, [0x100000 + rcx * 8]
	imul rax, rbx
	inc rcx
	cmp rcx, r13
	jb .hash
	xor ecx, ecx
.hash2:	xor rax, [0x200000 + rcx * 8]
	imul rax, rbx
	inc rcx
	cmp rcx, 8192
	jb .hash2
	mov rdx, rax
	shr rdx, 32
	xor eax, edx
	and eax, 0x7fffffff
	out 0xfa, eax
theend:
