/*
 * ckpt_cpuid.c: may a guest that saw these CPUID features run here?
 *
 * A guest may have decided, long before the checkpoint, to use AVX2 or
 * AES-NI because CPUID said so; restoring it where they are missing would
 * make it fault later for no visible reason. So a restore compares the
 * feature leaves the guest was given with what this host's KVM offers (after
 * wasp's own filter) and refuses, naming each missing feature.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

/* Feature words compared, and bits that are not features but state
 * (OSXSAVE and OSPKE mirror CR4; the APIC bit follows the APIC base MSR). */
static const struct {
	uint32_t function, index;
	int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore;
} words[] = {
	{1, 0, 2, 1u << 27},
	{1, 0, 3, 1u << 9},
	{7, 0, 1, 0},
	{7, 0, 2, 1u << 4},
	{7, 0, 3, 0},
	{7, 1, 0, 0},
	{0xd, 1, 0, 0},
	{0x80000001, 0, 2, 0},
	{0x80000001, 0, 3, 0},
};

/* Names for the features a compiler is likely to use, for the message. */
static const struct {
	uint32_t function, index;
	int reg, bit;
	const char *name;
} names[] = {
	{1, 0, 2, 0, "sse3"},     {1, 0, 2, 1, "pclmulqdq"}, {1, 0, 2, 9, "ssse3"},
	{1, 0, 2, 12, "fma"},     {1, 0, 2, 19, "sse4.1"},   {1, 0, 2, 20, "sse4.2"},
	{1, 0, 2, 22, "movbe"},   {1, 0, 2, 23, "popcnt"},   {1, 0, 2, 25, "aes"},
	{1, 0, 2, 26, "xsave"},   {1, 0, 2, 28, "avx"},      {1, 0, 2, 29, "f16c"},
	{1, 0, 2, 30, "rdrand"},  {1, 0, 3, 25, "sse"},      {1, 0, 3, 26, "sse2"},
	{7, 0, 1, 3, "bmi1"},     {7, 0, 1, 5, "avx2"},      {7, 0, 1, 8, "bmi2"},
	{7, 0, 1, 16, "avx512f"}, {7, 0, 1, 18, "rdseed"},   {7, 0, 1, 19, "adx"},
	{7, 0, 1, 29, "sha"},     {7, 0, 1, 30, "avx512bw"}, {7, 0, 1, 31, "avx512vl"},
	{7, 0, 2, 8, "gfni"},     {7, 0, 2, 9, "vaes"},      {7, 0, 2, 10, "vpclmulqdq"},
	{0x80000001, 0, 2, 5, "lzcnt"},
};

static const char *reg_names[] = {"eax", "ebx", "ecx", "edx"};

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, int reg)
{
	switch (reg) {
	case 0: return e->eax;
	case 1: return e->ebx;
	case 2: return e->ecx;
	default: return e->edx;
	}
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn &&
		    (c->entries[i].index == idx ||
		     !(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)))
			return &c->entries[i];
	return NULL;
}

/* "leaf.reg.bit" entries the test hook removes from the host's list. */
static bool simulated_missing(const char *list, uint32_t fn, int reg, int bit)
{
	if (!list)
		return false;
	char want[48];
	snprintf(want, sizeof want, "%x.%s.%d", fn, reg_names[reg], bit);
	size_t n = strlen(want);
	for (const char *p = list; (p = strstr(p, want)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return true;
	return false;
}

int wasp_cpuid_check(const struct kvm_cpuid2 *guest, const char *simulate_missing)
{
	const struct kvm_cpuid2 *host;
	int r = wasp_host_cpuid((const void **)&host);
	if (r < 0)
		return r;

	char missing[512] = "";
	size_t len = 0;
	int count = 0;
	for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
		const struct kvm_cpuid_entry2 *g = find(guest, words[w].function, words[w].index);
		const struct kvm_cpuid_entry2 *h = find(host, words[w].function, words[w].index);
		if (!g)
			continue;
		uint32_t want = reg_of(g, words[w].reg) & ~words[w].ignore;
		uint32_t have = h ? reg_of(h, words[w].reg) : 0;
		for (int bit = 0; bit < 32; bit++) {
			if (simulated_missing(simulate_missing, words[w].function, words[w].reg, bit))
				have &= ~(1u << bit);
			if (!(want & (1u << bit)) || (have & (1u << bit)))
				continue;
			const char *name = NULL;
			for (size_t i = 0; i < sizeof names / sizeof *names; i++)
				if (names[i].function == words[w].function && names[i].index == words[w].index &&
				    names[i].reg == words[w].reg && names[i].bit == bit)
					name = names[i].name;
			char one[64];
			if (name)
				snprintf(one, sizeof one, "%s", name);
			else
				snprintf(one, sizeof one, "cpuid 0x%x.%u %s bit %d", words[w].function,
					 words[w].index, reg_names[words[w].reg], bit);
			if (len + strlen(one) + 3 < sizeof missing)
				len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%s",
							count ? ", " : "", one);
			count++;
		}
	}
	if (count)
		return wasp_fail(-ENOTSUP,
				 "this host lacks %d CPU feature%s the checkpointed guest was given: %s",
				 count, count == 1 ? "" : "s", missing);
	return 0;
}

void wasp_cpu_vendor(char out[13])
{
	unsigned a, b, c, d;
	memset(out, 0, 13);
	if (!__get_cpuid(0, &a, &b, &c, &d))
		return;
	memcpy(out, &b, 4);
	memcpy(out + 4, &d, 4);
	memcpy(out + 8, &c, 4);
}
