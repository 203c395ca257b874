; spins forever without exits: only a timeout or a pause stops it
%include "longhdr.inc"
start:
	inc rbx
	jmp start
theend:
