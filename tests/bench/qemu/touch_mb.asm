; touch_mb: the QEMU twin of tests/bench/touch.asm at 100 %, for the
; checkpoint-to-file rows of bench_qemu_ckpt.sh (README.md beside
; bench_migrate.sh, "QEMU comparison").
; A multiboot (v1) kernel for `qemu-system-x86_64 -kernel touch_mb.bin`: it
; goes to long mode, drops to ring 3 and there fills every byte of guest RAM
; from FILL (1 MiB + 128 KiB, past this image and the multiboot information
; QEMU puts after it) to the top of RAM with xorshift64 words, the same
; incompressible stream as touch.asm (same step, same 8-byte words), then
; spins. Every 2^22 laps of the spin it writes one byte, the count of such
; marks (1, 2, ... mod 256), to the debugcon port 0xe9, so the driver sees
; it run and, after a restore, that it runs on exactly where it stopped.
; It keeps its seed, the first and the last word it wrote and the RAM top in
; its data (RESULT below), where the driver reads them back through QMP
; after the restore. Ring 3 as touch.asm and dirtier_mb.asm (under PVM ring-0
; code is emulated, docs/design.md). Never exits; a fault triple-faults (run
; it with -no-reboot).
%include "climb64.inc"
%include "xorshift_fill.inc"
bits 32
org 0x100000

FILL    equ 0x120000
SEED    equ 0x9e3779b97f4a7c15 ; touch.asm's round-1 seed base
PORT    equ 0xe9
LAPS    equ 22                  ; a mark every 2^LAPS laps

MULTIBOOT_HEADER

entry32:
	; eax = 0x2badb002, ebx = multiboot info; protected mode, paging off.
	cmp eax, 0x2badb002
	jne $
	mov esp, stack0_top
	; The RAM top: mem_upper (KiB above 1 MiB), valid with flag 0. Read
	; before the fill, which overwrites the information.
	test dword [ebx], 1
	jz $
	mov eax, [ebx + 8]
	add eax, 1024
	shl eax, 10
	mov [result_top], eax
	; Identity map the first GiB with 2 MiB pages, user-accessible.
	CLIMB64 pml4, pdpt, pd

bits 64
entry64:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov ax, 0x28
	ltr ax
	; Ring 3 with IOPL 3: `out` to the debugcon is legal there.
	push 0x18 | 3           ; ss
	push stack3_top         ; rsp
	push 0x3002             ; rflags: IOPL 3, interrupts off
	push 0x20 | 3           ; cs
	mov rax, user
	push rax
	iretq

; Ring 3 from here on.
user:
	mov rax, SEED
	mov [rel result_seed], rax
	mov rsi, FILL
	mov ecx, [rel result_top]
	sub rcx, rsi
	shr rcx, 3              ; words
	XORSHIFT_FILL
	mov [rel result_last], rax
	mov rax, [FILL]
	mov [rel result_first], rax
	mov qword [rel result_done], 0x454e4f44 ; "DONE", as touch.asm's
	xor ebx, ebx            ; laps
	xor ecx, ecx            ; marks
.spin:
	inc rbx
	test ebx, (1 << LAPS) - 1
	jnz .spin
	inc ecx
	mov eax, ecx
	out PORT, al
	jmp .spin

align 8
; RESULT: what the driver reads back (offsets from the image start, 0x100000,
; are in qemu_migrate.py: keep them in step).
times 0x800 - ($ - $$) db 0
result_done:  dq 0              ; +0x800
result_seed:  dq 0              ; +0x808
result_first: dq 0              ; +0x810 the word at FILL
result_last:  dq 0              ; +0x818 the word at the RAM top - 8
result_top:   dq 0              ; +0x820 the RAM top (bytes)
CLIMB64_TABLES stack0_top
; Page tables and stacks inside the image (zeros in the file), so nothing
; the fill writes lies under them.
align 4096
pml4:	times 4096 db 0
pdpt:	times 4096 db 0
pd:	times 4096 db 0
	times 4096 db 0
stack0_top:
	times 4096 db 0
stack3_top:
