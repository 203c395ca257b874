; exits with code 7 from a direct 64-bit entry
%include "longhdr.inc"
start:
	mov eax, 7
	out 0xfa, eax
theend:
