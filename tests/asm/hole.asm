; writes to 0x380000: mapped by the 2 MiB page that covers a 3 MiB guest's
; end, but not backed by memory: an MMIO exit the host reports as a fault
%include "longhdr.inc"
start:
	mov dword [0x380000], 1
	out 0xfa, eax
theend:
