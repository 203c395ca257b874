/*
 * wasp_abi.h: the one contract between a virtine and its host.
 *
 * Included by guest code (freestanding) and by the host's vmm, so it holds
 * only fixed-width types, constants and plain structs. docs/abi.md explains
 * each call in prose; this header is the authority.
 *
 * Versioning rule: WASP_ABI_VERSION is bumped when, and only when, an existing
 * meaning changes (a number reused, a struct field moved or resized, a
 * register convention altered). Adding a new hypercall number, a new flag or a
 * field at the END of a struct does not bump it. Numbers are never reused:
 * a retired hypercall keeps its slot and answers -ENOSYS.
 */
#ifndef WASP_ABI_H
#define WASP_ABI_H

#include <stdint.h>

#define WASP_ABI_VERSION 1

/*
 * Exits. `out WASP_PORT_EXIT, eax` ends the virtine with the code in eax (the
 * original Wasp convention, so the three-byte image `out 0xFA, eax` works).
 * `out WASP_PORT_HYPERCALL, al` is a hypercall: number in rax, arguments in
 * rdi rsi rdx r10 r8 r9, result in rax (>= 0, or a negative Linux errno).
 * All other registers are preserved by the host.
 */
#define WASP_PORT_EXIT 0xFA
#define WASP_PORT_HYPERCALL 0xFF
/* A Linux program's `syscall` (docs/linux.md): the host's stub at LSTAR
 * exits here; never used by wasp's own guests. */
#define WASP_PORT_SYSCALL 0xFE
/* A Linux program's CPU exception, from the host's ring-0 handlers where
 * a triple fault would lose the registers (docs/linux.md). */
#define WASP_PORT_EXCEPTION 0xFD

/*
 * Guest memory layout for images entered in 64-bit mode (by the host's direct
 * entry or by the guest's own boot stub). Guest-virtual equals
 * guest-physical (identity map), so hypercall pointers are guest-physical.
 * Page 0 is not mapped, so a NULL dereference faults.
 */
#define WASP_GPA_PML4 0x1000u
#define WASP_GPA_PT0 0x2000u  /* 4 KiB pages for the first 2 MiB */
#define WASP_GPA_PDPT 0x3000u
#define WASP_GPA_PD 0x4000u   /* 4 page directories: up to 4 GiB mapped */
#define WASP_GPA_PD_COUNT 4u
#define WASP_GPA_LOAD 0x8000u /* default image load address (Wasp's) */
#define WASP_MEM_MAX (4ull << 30)

/*
 * Task state segment for ring-3 I/O. RFLAGS.IOPL = 3 should be enough for
 * ring 3 to execute `out`, but some KVMs (PVM) consult the TSS I/O
 * permission bitmap anyway, and the reset TR (base 0) points into the
 * unmapped page 0, so every hypercall would triple-fault. The host's direct
 * entry and the guest's boot stub therefore both load TR with a 64-bit TSS at
 * WASP_GPA_TSS, the upper half of the PML4 page (PML4 entries 256-511 are
 * never used by a map below 4 GiB): the I/O map base (u16 at offset 0x66) is
 * WASP_TSS_IOMAP, followed by a zero bitmap that allows ports 0-255, and the
 * limit WASP_TSS_LIMIT covers the bitmap plus one byte. All other TSS bytes
 * stay zero, so none of them looks like a present PML4 entry.
 */
#define WASP_GPA_TSS 0x1800u
#define WASP_TSS_IOMAP 0x68u
#define WASP_TSS_LIMIT 0x88u

/*
 * Entry state. In every mode the host sets rdi = guest memory size in bytes
 * and rax = 0 (so `out 0xFA, eax` exits 0). Direct 64-bit entry also sets
 * rsp = top of guest memory, CPL 3, RFLAGS.IOPL = 3, and jumps to the image
 * header's entry64.
 * Guest memory outside the image (and the page tables the host builds) is
 * zero at entry: the guest runtime does not clear .bss or the page-table
 * area (on PVM, touching 1 MiB of .bss costs ~8 ms of first-touch faults).
 */

/*
 * Optional image header. An image that starts with a two-byte short jump
 * (0xEB, disp8) followed by this struct describes itself; the jump lets the
 * same bytes run when entered in real mode at the load address. Images
 * without it (the three-byte exit) are plain real-mode code.
 */
#define WASP_IMAGE_MAGIC "WASPIMG1"
enum wasp_image_mode {
	WASP_IMAGE_REAL = 0,   /* enter in 16-bit real mode at the load address */
	WASP_IMAGE_LONG = 1,   /* direct 64-bit entry at entry64 (default for C) */
};
struct wasp_image_header {
	char magic[8];        /* WASP_IMAGE_MAGIC */
	uint32_t abi_version; /* WASP_ABI_VERSION the image was built against */
	uint32_t mode;        /* preferred entry: enum wasp_image_mode */
	uint64_t load_addr;   /* guest-physical address the image is linked at */
	uint64_t entry64;     /* 64-bit entry point (0: none) */
	uint64_t mem_end;     /* end of .bss: guest memory must be larger */
} __attribute__((packed));
#define WASP_IMAGE_HEADER_OFFSET 2

/*
 * Hypercall numbers. Built-ins live below WASP_HC_USER_BASE; an embedder
 * registers its own from WASP_HC_USER_BASE up to WASP_HC_MAX - 1.
 * Each line: IN arguments -> result.
 */
enum wasp_hypercall {
	WASP_HC_EXIT = 0,       /* IN code -> does not return */
	WASP_HC_CONSOLE_WRITE = 1, /* IN buf, len -> bytes written */
	WASP_HC_STDIN_READ = 2, /* IN buf, cap -> bytes read (0 at EOF) */
	WASP_HC_OPEN = 3,       /* IN path (NUL-terminated), flags (WASP_O_*), mode -> fd */
	WASP_HC_CLOSE = 4,      /* IN fd -> 0 */
	WASP_HC_READ = 5,       /* IN fd, buf, cap -> bytes read */
	WASP_HC_WRITE = 6,      /* IN fd, buf, len -> bytes written */
	WASP_HC_PREAD = 7,      /* IN fd, buf, cap, offset -> bytes read */
	WASP_HC_LSEEK = 8,      /* IN fd, offset, whence (0 set,1 cur,2 end) -> new offset */
	WASP_HC_FSTAT = 9,      /* IN fd, OUT struct wasp_stat * -> 0 */
	WASP_HC_CLOCK = 10,     /* IN clock (WASP_CLOCK_*) -> nanoseconds */
	WASP_HC_GET_ARG = 11,   /* IN buf, cap -> argument length (copies min(len,cap)) */
	WASP_HC_SET_RET = 12,   /* IN buf, len -> 0 */
	WASP_HC_SNAPSHOT = 13,  /* [IN buf, cap, WASP_SNAPSHOT_ARG] -> 0: "initialised; later calls may start here" */
	WASP_HC_PWRITE = 14,    /* IN fd, buf, len, offset -> bytes written */
	WASP_HC_BUILTIN_COUNT,
	WASP_HC_USER_BASE = 64,
	WASP_HC_MAX = 128,
};

/*
 * WASP_HC_SNAPSHOT with rdx = WASP_SNAPSHOT_ARG names an argument buffer
 * (rdi = buf, rsi = cap): a host that starts a call at the snapshot (the
 * pool, docs/pool.md) copies min(len, cap) bytes of the call's argument
 * there and returns its length len (> 0) as the hypercall's result, which
 * saves the WASP_HC_GET_ARG exit. A result of 0 means nothing was copied:
 * fetch the argument with WASP_HC_GET_ARG. Without the marker the other
 * registers are ignored.
 */
#define WASP_SNAPSHOT_ARG 0x47524157u /* "WARG" */

/*
 * A Linux program (docs/linux.md) makes hypercall N as the system call
 * WASP_LINUX_HC_BASE + N, with the same arguments and result; no Linux
 * number comes near it. guest/wasp_linux.h wraps them.
 */
#define WASP_LINUX_HC_BASE 0x57410000u

/* open flags (the guest never sees host values; the host maps these) */
#define WASP_O_RDONLY 0x0
#define WASP_O_WRONLY 0x1
#define WASP_O_RDWR 0x2
#define WASP_O_CREAT 0x40
#define WASP_O_TRUNC 0x200
#define WASP_O_APPEND 0x400
#define WASP_O_EXCL 0x80

#define WASP_CLOCK_REALTIME 0
#define WASP_CLOCK_MONOTONIC 1

/* OUT of WASP_HC_FSTAT */
struct wasp_stat {
	uint64_t size;
	uint32_t mode;  /* file type and permission bits, Linux encoding */
	uint32_t pad;
	int64_t mtime_ns;
};

#endif /* WASP_ABI_H */
