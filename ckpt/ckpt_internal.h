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

#include "ckpt_stream.h"
#include "vmm_parts.h"

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

/* ckpt_proto.c: between the vCPU part of a wasp_vstate (vmm_parts.h) and
 * the Vcpu record. from_proto initialises *s (wasp_vstate_free frees it). */
int wasp_vcpu_to_proto(const struct wasp_vstate *s, Wasp__Vcpu **out);
void wasp_vcpu_proto_free(Wasp__Vcpu *p);
int wasp_vcpu_from_proto(const Wasp__Vcpu *p, struct wasp_vstate *s);

/* ckpt_cpuid.c: refuses CPUID features this host lacks, naming them */
int wasp_cpuid_check(const struct kvm_cpuid2 *guest, const char *simulate_missing);
void wasp_cpu_vendor(char out[13]);

#endif
