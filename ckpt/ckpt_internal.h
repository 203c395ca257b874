/*
 * ckpt_internal.h: what the files of ckpt/ share.
 */
#ifndef WASP_CKPT_INTERNAL_H
#define WASP_CKPT_INTERNAL_H

#include <errno.h>
#include <string.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>

#include "ckpt_stream.h"
#include "vmm_parts.h"

/* Checked vCPU ioctl: -errno with the command's name in wasp_last_error(). */
static inline int wasp_ckpt_ioctl(int fd, unsigned long cmd, const char *name, void *arg)
{
	int r = ioctl(fd, cmd, arg);
	return r < 0 ? wasp_fail(-errno, "%s: %s", name, strerror(errno)) : r;
}

/* The vCPU as KVM gives it, between capture and encoding (or decoding and
 * apply). */
struct wasp_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	void *xsave; /* struct kvm_xsave of xsave_size bytes, or NULL */
	size_t xsave_size;
	struct kvm_fpu fpu;
	bool have_fpu;
	struct kvm_xcrs xcrs;
	bool have_xcrs;
	struct kvm_msrs *msrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp_state;
	struct kvm_cpuid2 *cpuid;
	enum wasp_mode mode;
};

/* ckpt.c: the header, and the host+vCPU+end that close every stream (the
 * guest stopped) */
int wasp_ckpt_write_header(struct wasp_stream_writer *w, struct wasp_virtine *v,
			   bool incremental, const uint8_t *parent_id, uint8_t id[16]);
int wasp_ckpt_write_state(struct wasp_stream_writer *w, struct wasp_virtine *v,
			  const struct wasp_save_opts *opts, struct wasp_ckpt_stats *stats);

/* ckpt_files.c: the files the guest wrote, in the host record */
struct wasp_files_pb {
	Wasp__FileState *states, **ptrs;
	size_t n;
	char **listing;   /* the sandbox's regular files, when `listed` */
	size_t nlisting;
	bool listed;
};
/* Written files a checkpoint records at most (the vmm's WASP_MAX_WRITTEN). */
#define WASP_CKPT_MAX_WRITTEN 256u
/* A listing of more files, or more bytes of names, is left out (and a
 * restore cannot tell files made after the checkpoint). */
#define WASP_CKPT_LIST_MAX_FILES 4096
#define WASP_CKPT_LIST_MAX_BYTES (1u << 20)
/* Records every file the guest wrote (size, CRC-32C and, within `carry`
 * bytes in all, the bytes: 0 means WASP_CKPT_CARRY_DEFAULT, < 0 none). */
int wasp_files_to_proto(struct wasp_virtine *v, int64_t carry, struct wasp_files_pb *b,
			struct wasp_ckpt_stats *stats);
void wasp_files_pb_free(struct wasp_files_pb *b);
/* Checks every file of h->written in v's sandbox (`dir` names it in
 * messages) and, when all can be, puts them back as the checkpoint had
 * them; refuses naming the first that cannot be, having changed nothing. */
int wasp_files_apply(struct wasp_virtine *v, const Wasp__Host *h, enum wasp_files_policy policy,
		     const char *dir, struct wasp_ckpt_stats *stats);

/* ckpt_vcpu.c */
int wasp_vcpu_capture(struct wasp_virtine *v, struct wasp_vcpu_state *s);
/* Does the once-per-process probing (readable MSRs, whether the TSC can
 * be set) ahead of time, so a capture or apply in a migration's downtime
 * does not pay for it. v must not be running: its TSC is written. */
int wasp_vcpu_prepare(struct wasp_virtine *v);
/* The same on a throwaway vCPU, for when the virtine's own may be running
 * (a live stream begins while the guest runs). Once per process. */
int wasp_vcpu_prepare_host(void);
/* Applies s; fills `unrestored` with what the host accepted but did not
 * keep. -errno when the state could not be applied or did not read back. */
int wasp_vcpu_apply(struct wasp_virtine *v, const struct wasp_vcpu_state *s, char *unrestored,
		    size_t cap);
void wasp_vcpu_state_free(struct wasp_vcpu_state *s);

/* ckpt_proto.c: between wasp_vcpu_state and the Vcpu record */
int wasp_vcpu_to_proto(const struct wasp_vcpu_state *s, Wasp__Vcpu **out);
void wasp_vcpu_proto_free(Wasp__Vcpu *p);
int wasp_vcpu_from_proto(const Wasp__Vcpu *p, struct wasp_vcpu_state *s);

/* ckpt_cpuid.c: refuses CPUID features this host lacks, naming them */
int wasp_cpuid_check(const struct kvm_cpuid2 *guest, const char *simulate_missing);
void wasp_cpu_vendor(char out[13]);

#endif
