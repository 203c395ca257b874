; reads address 0, mapped for the supervisor only: triple fault at CPL 3
%include "longhdr.inc"
start:
	mov eax, [0]
	out 0xfa, eax
theend:
