; real mode: console_write with 32-bit arguments. In real mode a write to
; edi leaves the upper half of rdi as it was; the test fills the upper halves
; with garbage before the run, so the host must mask arguments outside long
; mode to find the message.
bits 16
org 0x8000
	mov eax, 1              ; WASP_HC_CONSOLE_WRITE
	mov edi, msg
	mov esi, msg_len
	out 0xff, al
	mov eax, 0
	out 0xfa, eax
msg:	db "hello from real mode", 10
msg_len equ $ - msg
