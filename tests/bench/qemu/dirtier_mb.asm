; dirtier_mb: the QEMU twin of tests/asm/dirtier.asm for bench_migrate.sh.
; A multiboot (v1) kernel for `qemu-system-x86_64 -kernel dirtier_mb.bin
; -append "REGION_KIB FILL_MIB"`: it goes to long mode, drops to ring 3
; and there does exactly what the wasp dirtier does with PASSES = forever:
; fills FILL_MIB MiB from 8 MiB once (half of each page xorshift, half
; zero), then rewrites REGION_KIB KiB (1 to 4096, default 1024) at 4 MiB
; with fresh xorshift words pass after pass, and every 250 passes writes
; one byte, the count of such marks (1, 2, ... mod 256), to the debugcon
; port 0xe9: one exit, as the wasp guest makes one console hypercall for
; its "pass N" line (a whole line here would be one exit per byte, ~20 %
; fewer passes). Same addresses, same instructions in the loops, same ring
; as the wasp guest: under PVM ring-0 code is emulated (docs/design.md), so
; a ring-0 loop would dirty ~100x slower. Never exits; a fault triple-faults
; (run it with -no-reboot).
%include "climb64.inc"
bits 32
org 0x100000
%include "dirtier.inc"   ; tests/asm: the loops it shares with dirtier.asm

PML4    equ 0x200000            ; page tables: PML4, PDPT, PD (1 GiB, 2 MiB pages)
PDPT    equ 0x201000
PD      equ 0x202000
STACK0  equ 0x1ff000            ; ring 0 (only a fault would use it)
STACK3  equ 0x3ff000            ; ring 3, under the region
REGION  equ 0x400000
FILLAT  equ 0x800000
EVERY   equ 250
PORT    equ 0xe9

MULTIBOOT_HEADER

entry32:
	; eax = 0x2badb002, ebx = multiboot info; protected mode, paging off.
	cmp eax, 0x2badb002
	jne $
	mov esp, STACK0
	; The arguments first: QEMU puts the info and command line after us.
	mov dword [arg_region], 1024
	mov dword [arg_fill], 0
	test dword [ebx], 4     ; cmdline valid?
	jz .args_done
	mov esi, [ebx + 16]
.skip_name:                     ; QEMU's command line: "FILE ARGS"
	mov al, [esi]
	test al, al
	jz .args_done
	inc esi
	cmp al, ' '
	jne .skip_name
	call num32
	test eax, eax
	jz .a2
	cmp eax, 4096
	jbe .a1_ok
	mov eax, 4096
.a1_ok:
	mov [arg_region], eax
.a2:
	call num32
	mov [arg_fill], eax
.args_done:
	; Identity map the first GiB with 2 MiB pages, user-accessible.
	mov edi, PML4
	mov ecx, 3 * 4096 / 4
	xor eax, eax
	rep stosd
	CLIMB64 PML4, PDPT, PD

; num32: the decimal at esi in eax (0 if none); esi past it. Skips spaces.
num32:
	xor eax, eax
.sp:
	cmp byte [esi], ' '
	jne .dig
	inc esi
	jmp .sp
.dig:
	movzx edx, byte [esi]
	sub edx, '0'
	cmp edx, 9
	ja .done
	imul eax, eax, 10
	add eax, edx
	inc esi
	jmp .dig
.done:
	ret

bits 64
entry64:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov ax, 0x28
	ltr ax
	; Ring 3 with IOPL 3: `out` to the debugcon is legal there (the TSS
	; bitmap allows it too, which PVM checks anyway: docs/design.md).
	push 0x18 | 3           ; ss
	push STACK3             ; rsp
	push 0x3002             ; rflags: IOPL 3, interrupts off
	push 0x20 | 3           ; cs
	mov rax, user
	push rax
	iretq

; Ring 3 from here on: dirtier.asm's loops with PASSES = forever.
user:
	mov r9d, [rel arg_region]
	shl r9, 7               ; KiB -> qwords
	mov r10d, [rel arg_fill]
	shl r10, 17             ; MiB -> qwords
	mov r13, 0x9e3779b97f4a7c15 ; xorshift state
	mov rdi, FILLAT         ; the working set, once
	mov rcx, r10
	FILL_WORKING_SET
	xor r14d, r14d          ; passes done
	xor r15d, r15d          ; marks written
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
	jnz .pass
	inc r15                 ; every 250 passes: one byte, one exit
	mov eax, r15d
	out PORT, al
	jmp .pass

align 8
arg_region: dd 0
arg_fill:   dd 0
CLIMB64_TABLES STACK0
