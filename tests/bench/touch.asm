; touch.asm: the guest of wasp-bench-ckpt (64-bit, direct entry, ring 3).
;
; Fills the first PCT % of the pages above the parameter page (from
; TOUCH_BASE up to the end of guest memory, whose size the host passes in
; rdi) with xorshift64 words, incompressible for zstd; reports how many
; pages it filled and its final xorshift state, raises DONE, then spins
; forever, counting its laps in SPIN so the host can see it is running.
; Only a pause (or a timeout) stops it; it makes no exits of its own.
;
; Parameter page (host writes PCT and SEED after load, before the run):
%include "xorshift_fill.inc"
PARAM      equ 0x9000
PCT        equ PARAM + 0x00 ; u64 in: percent of the pages to fill, 0..100
SEED       equ PARAM + 0x08 ; u64 in: xorshift64 state, non-zero
PAGES      equ PARAM + 0x10 ; u64 out: pages filled
DONE       equ PARAM + 0x18 ; u64 out: DONE_MAGIC once every page is filled
SPIN       equ PARAM + 0x20 ; u64 out: laps of the final loop
LAST       equ PARAM + 0x28 ; u64 out: last word written (the final state)
TOUCH_BASE equ 0xa000       ; first page filled
DONE_MAGIC equ 0x454e4f44   ; "DONE"

%include "longhdr.inc"
start:
	mov rax, rdi            ; pages above TOUCH_BASE * PCT / 100
	sub rax, TOUCH_BASE
	shr rax, 12
	imul rax, [PCT]
	xor edx, edx
	mov ecx, 100
	div rcx
	mov [PAGES], rax
	mov rcx, rax
	shl rcx, 9              ; 512 words a page
	mov rsi, TOUCH_BASE
	mov rax, [SEED]
	test rcx, rcx
	jz .filled
	XORSHIFT_FILL
.filled:
	mov [LAST], rax
	mov qword [DONE], DONE_MAGIC
.spin:	inc qword [SPIN]
	jmp .spin
theend:
