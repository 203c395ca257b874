; an invalid opcode with no IDT: triple fault
%include "longhdr.inc"
start:
	ud2
theend:
