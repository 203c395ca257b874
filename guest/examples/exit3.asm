; exit3: the smallest virtine. Entered in real mode at 0x8000 with eax = 0,
; it exits with code 0 in one instruction: 66 E7 FA.
[bits 16]
[org 0x8000]
	out 0xfa, eax
