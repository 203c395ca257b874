; Real mode for single-step traces: PVM emulates ring 0, and its emulator
; reports steps as KVM_EXIT_DEBUG (long mode's come as shutdowns). Exits
; with 3; tests/vmm/trace_test.sh lists its instruction addresses.
bits 16
org 0x8000
	mov eax, 1
	add eax, 2
	out 0xfa, eax
