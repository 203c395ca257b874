; dirtier: a guest that dirties memory faster than a slow link can copy
; it. Pass after pass it rewrites a region (1 MiB by default) with fresh
; xorshift data, so every page of it is dirty and incompressible every pass.
; Arguments (get_arg, decimal): PASSES [REGION_KIB [FILL_MIB]]: passes
; (default 4000), the region's size in KiB (1 to 4096, default 1024), and
; MiB of memory from 8 MiB up to fill once at the start (half of each page
; random, half zero: a working set that compresses about 2x; default 0).
; Prints "pass N" every 250 passes and "done X" at the end, where X folds
; the region, then exits with X & 0x7f. Deterministic: the output depends on
; the arguments only, so a migrated run must print and return exactly what
; an unmigrated one does. Needs 8 MiB of memory (-m 8M or more), plus FILL.
%include "longhdr.inc"
%include "dirtier.inc"
REGION  equ 0x400000
FILLAT  equ 0x800000
BUF     equ 0x3f0000            ; the arguments, then text lines
EVERY   equ 250

start:
	mov eax, 11             ; WASP_HC_GET_ARG(buf, cap)
	mov edi, BUF
	mov esi, 128
	out 0xff, al
	mov r12d, 4000          ; passes
	mov r9d, 1024 * 128     ; region, qwords
	xor r10d, r10d          ; fill, qwords
	test rax, rax
	jle .go
	cmp rax, 128
	jbe .len_ok
	mov eax, 128
.len_ok:
	mov rsi, BUF
	lea r11, [rsi + rax]    ; end of the arguments
	call number
	test rax, rax
	jz .a2
	mov r12, rax
.a2:
	call number
	test rax, rax
	jz .a3
	cmp rax, 4096
	jbe .a2_ok
	mov eax, 4096
.a2_ok:
	shl rax, 7              ; KiB -> qwords
	mov r9, rax
.a3:
	call number
	shl rax, 17             ; MiB -> qwords
	mov r10, rax
	jmp .go

.go:
	mov r13, 0x9e3779b97f4a7c15 ; xorshift state
	mov rdi, FILLAT         ; the working set, once
	mov rcx, r10
	FILL_WORKING_SET
	xor r14d, r14d          ; passes done
.pass:
	mov rdi, REGION
	mov rcx, r9
	DIRTY_REGION
	inc r14
	mov rax, r14
	xor edx, edx
	mov ebx, EVERY
	div rbx
	test rdx, rdx
	jnz .quiet
	lea rsi, [rel pass_txt]
	mov ecx, pass_len
	mov rax, r14
	call print_line
.quiet:
	cmp r14, r12
	jb .pass

	xor ebx, ebx            ; fold the region and the working set
	mov rdi, REGION
	mov rcx, r9
.fold:
	xor rbx, [rdi]
	rol rbx, 1
	add rdi, 8
	dec rcx
	jnz .fold
	mov rdi, FILLAT
	mov rcx, r10
	test rcx, rcx
	jz .folded
.fold2:
	xor rbx, [rdi]
	rol rbx, 1
	add rdi, 8
	dec rcx
	jnz .fold2
.folded:
	mov r15, rbx
	lea rsi, [rel done_txt]
	mov ecx, done_len
	mov rax, r15
	and rax, 0xffffff
	call print_line
	mov eax, r15d
	and eax, 0x7f
	out 0xfa, eax

; print_line: writes the rcx bytes at rsi, then rax in decimal and a
; newline, with WASP_HC_CONSOLE_WRITE. Clobbers rax rbx rcx rdx rsi rdi r8.
print_line:
	mov rdi, BUF
.copy:
	mov bl, [rsi]
	mov [rdi], bl
	inc rsi
	inc rdi
	dec ecx
	jnz .copy
	mov r8, rdi             ; digits go here, reversed first
	mov ebx, 10
.conv:
	xor edx, edx
	div rbx
	add dl, '0'
	mov [rdi], dl
	inc rdi
	test rax, rax
	jnz .conv
	lea rsi, [rdi - 1]      ; reverse [r8, rdi)
.rev:
	cmp r8, rsi
	jae .nl
	mov al, [r8]
	mov dl, [rsi]
	mov [r8], dl
	mov [rsi], al
	inc r8
	dec rsi
	jmp .rev
.nl:
	mov byte [rdi], 10
	inc rdi
	mov rsi, rdi
	sub rsi, BUF            ; length
	mov edi, BUF
	mov eax, 1              ; WASP_HC_CONSOLE_WRITE(buf, len)
	out 0xff, al
	ret

; number: the decimal at rsi (up to r11 or a NUL) in rax; rsi past its NUL.
number:
	xor eax, eax
.n_next:
	cmp rsi, r11
	jae .n_done
	movzx edx, byte [rsi]
	inc rsi
	sub edx, '0'
	cmp edx, 9
	ja .n_done              ; the NUL (or junk) ends it
	imul rax, rax, 10
	add rax, rdx
	jmp .n_next
.n_done:
	ret

pass_txt: db "pass "
pass_len equ $ - pass_txt
done_txt: db "done "
done_len equ $ - done_txt
theend:
