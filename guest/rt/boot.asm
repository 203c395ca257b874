; boot.asm: the first bytes of every C virtine image, and its two entry paths.
;
; Image layout (linked at WASP_GPA_LOAD by virtine.ld, .text.boot first):
;   +0  EB xx                  jmp short boot16: real-mode entry lands here
;   +2  struct wasp_image_header (wasp_abi.h): magic, abi, mode, load, entry64, mem_end
;   ... boot16, GDT, boot64 (ring-0 trampoline), then .text/.rodata/.data
;
; Entry paths (both end in _start64 at CPL 3 with rdi = memory size):
;   direct   the host reads the header (mode = WASP_IMAGE_LONG), builds the
;            page tables itself and starts at entry64 = _start64. No guest
;            ring-0 code runs: this is the fast path.
;   real     the host starts the image at its first byte in 16-bit real mode
;            (edi = memory size). boot16 builds the same identity map the
;            host would, enters long mode and drops to ring 3.
;
; Guest ring-0 code is emulated on some KVMs (PVM: ~0.6 us per instruction,
; measured), so the real path counts instructions: no zeroing passes (the
; host hands over memory that is zero outside the image, see docs/guest.md),
; unrolled page-table loops, and only as much of the map as memory needs.

%include "wasp_abi.inc"

%define GDT_KCODE 0x08          ; 64-bit ring-0 code
%define GDT_KDATA 0x10
%define GDT_UCODE 0x18          ; 64-bit ring-3 code: user selectors are 0x1b / 0x23,
%define GDT_UDATA 0x20          ; the same the host loads for direct entry
%define GDT_TSS 0x28            ; 16-byte system descriptor (WASP_GPA_TSS)

%define PTE_P 0x1
%define PTE_RW 0x2
%define PTE_US 0x4
%define PTE_PS 0x80             ; 2 MiB page in a page directory
%define PTE_URW (PTE_P | PTE_RW | PTE_US)

%define CR0_PE (1 << 0)
%define CR0_MP (1 << 1)
%define CR0_ET (1 << 4)
%define CR0_NE (1 << 5)
%define CR0_WP (1 << 16)
%define CR0_AM (1 << 18)
%define CR0_PG (1 << 31)
%define CR4_PAE (1 << 5)
%define CR4_OSFXSR (1 << 9)
%define CR4_OSXMMEXCPT (1 << 10)
%define MSR_EFER 0xC0000080
%define EFER_LME (1 << 8)

%define RFLAGS_USER 0x3002      ; IOPL 3 (so `out` works at CPL 3), IF 0, bit 1 reserved

extern _end                     ; end of .bss, from virtine.ld
extern main
extern wasp_rt_init

section .note.GNU-stack noalloc noexec nowrite progbits

section .text.boot progbits alloc exec nowrite align=1

bits 16
global wasp_image_start
wasp_image_start:
	jmp short boot16

global wasp_image_header
wasp_image_header:
	; A static assertion: the header must sit at WASP_IMAGE_HEADER_OFFSET
	; (one of these TIMES counts goes negative otherwise).
	times WASP_IMAGE_HEADER_OFFSET - (wasp_image_header - wasp_image_start) db 0
	times (wasp_image_header - wasp_image_start) - WASP_IMAGE_HEADER_OFFSET db 0
	db WASP_IMAGE_MAGIC             ; magic[8]
	dd WASP_ABI_VERSION             ; abi_version
	dd WASP_IMAGE_LONG              ; mode: C images prefer direct 64-bit entry
	dq wasp_image_start             ; load_addr
	dq _start64                     ; entry64
	dq _end                         ; mem_end
.end:
	times 40 - (.end - wasp_image_header) db 0   ; struct is 40 bytes, packed
	times (.end - wasp_image_header) - 40 db 0

; Real mode, any cs:ip that reaches this byte, edi = memory size (0 means 4 GiB:
; edi cannot hold 2^32). Only near/relative jumps until the far jump below, and
; data is addressed through ds = 0, so the cs the host picked does not matter.
boot16:
	cli
	xor ax, ax
	mov ds, ax

	; PT0: 4 KiB pages for the first 2 MiB, 8 entries per pass. Only as many
	; passes as memory needs (a 1 MiB guest fills half). Entries are written
	; as low dwords: the high dwords are already zero.
	lea ecx, [edi - 1]
	shr ecx, 15                     ; (mem - 1) / 32 KiB ...
	inc ecx                         ; ... rounded up: 8-entry passes
	cmp ecx, 64
	jbe .pt0_count
	mov ecx, 64
.pt0_count:
	mov si, WASP_GPA_PT0
	mov eax, PTE_URW
.pt0:
%assign i 0
%rep 8
	mov [si + i * 8], eax
	add eax, 0x1000
%assign i i + 1
%endrep
	add si, 64
	loop .pt0                       ; cx: 16-bit address size
	mov dword [WASP_GPA_PT0], 0     ; page 0 not present: NULL faults

	; Page directories: PD[0] -> PT0, then 2 MiB pages up to the end of
	; memory rounded up to 2 MiB (up to 2047 of them); the PDs are
	; consecutive pages, so the loops run across all of them. 8 entries per
	; pass, then the remainder one by one.
	lea ecx, [edi - 1]
	shr ecx, 21                     ; 2 MiB pages after the first
	mov dx, cx
	mov dword [WASP_GPA_PD], WASP_GPA_PT0 | PTE_URW
	mov si, WASP_GPA_PD + 8
	mov eax, (1 << 21) | PTE_URW | PTE_PS
	shr cx, 3
	jcxz .pd_rest
.pd8:
%assign i 0
%rep 8
	mov [si + i * 8], eax
	add eax, 1 << 21
%assign i i + 1
%endrep
	add si, 64
	loop .pd8
.pd_rest:
	mov cx, dx
	and cx, 7
	jcxz .pd_done
.pd:
	mov [si], eax
	add eax, 1 << 21
	add si, 8
	loop .pd
.pd_done:

	; PDPT: one entry per page directory in use (1..WASP_GPA_PD_COUNT).
	lea ecx, [edi - 1]
	shr ecx, 30
	inc ecx
	mov si, WASP_GPA_PDPT
	mov eax, WASP_GPA_PD | PTE_URW
.pdpt:
	mov [si], eax
	add eax, 0x1000
	add si, 8
	loop .pdpt
	mov dword [WASP_GPA_PML4], WASP_GPA_PDPT | PTE_URW
	mov word [WASP_GPA_TSS + 0x66], WASP_TSS_IOMAP  ; the rest of the TSS is zero

	o32 lgdt [boot_gdt_ptr]
	o32 lidt [boot_idt_null]        ; limit 0: any exception triple-faults
	mov eax, CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT
	mov cr4, eax
	mov eax, WASP_GPA_PML4
	mov cr3, eax
	mov ecx, MSR_EFER
	mov eax, EFER_LME
	xor edx, edx
	wrmsr
	; The CR0 the host loads for direct entry; MP without EM lets SSE run.
	mov eax, CR0_PG | CR0_AM | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE
	mov cr0, eax
	jmp dword GDT_KCODE:boot64

align 8
boot_gdt:
	dq 0
	dq 0x00AF9A000000FFFF           ; GDT_KCODE: present, DPL 0, code, L
	dq 0x00CF92000000FFFF           ; GDT_KDATA
	dq 0x00AFFA000000FFFF           ; GDT_UCODE: DPL 3, code, L
	dq 0x00CFF2000000FFFF           ; GDT_UDATA: DPL 3
	; GDT_TSS: available 64-bit TSS (type 9), present, base WASP_GPA_TSS
	dq WASP_TSS_LIMIT | ((WASP_GPA_TSS & 0xFFFFFF) << 16) | (0x89 << 40) | ((WASP_GPA_TSS >> 24) << 56)
	dq 0                            ; base bits 63:32
boot_gdt_end:
boot_gdt_ptr:
	dw boot_gdt_end - boot_gdt - 1
	dd boot_gdt
boot_idt_null:
	dw 0
	dd 0

bits 64
; Long mode, ring 0. Drop to ring 3 with the register state direct entry gives.
boot64:
	mov ax, GDT_TSS                 ; ring-3 `out` needs the I/O bitmap (wasp_abi.h)
	ltr ax
	mov eax, GDT_UDATA | 3
	mov ds, eax
	mov es, eax
	mov fs, eax
	mov gs, eax
	mov edi, edi                    ; upper halves are undefined after the mode switch
	test edi, edi
	jnz .sized
	bts rdi, 32                     ; edi == 0: 4 GiB
.sized:
	mov rsp, rdi                    ; the frame sits just below the top; iretq pops it
	push GDT_UDATA | 3              ; ss
	push rdi                        ; rsp = top of memory
	push RFLAGS_USER
	push GDT_UCODE | 3              ; cs
	push _start64
	iretq

section .text
; Ring 3, rdi = memory size, rsp = top of memory (either path). No hypercall
; before main: every exit costs tens of microseconds.
global _start64
_start64:
	and rsp, -16
	xor ebp, ebp                    ; ends frame-pointer walks
	call wasp_rt_init               ; (uint64_t mem_size)
	call main
.exit:
	out WASP_PORT_EXIT, eax
	jmp .exit
