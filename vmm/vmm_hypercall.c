/*
 * vmm_hypercall.c: the hypercall table and its policy. Every hypercall is
 * denied until it is allowed by name (exit alone is always allowed: a guest
 * may always stop). Lookup is an index into a fixed table, so dispatch costs
 * nothing next to the exit that brought us here.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "vmm_internal.h"

void wasp_hc_init(struct wasp_virtine *v)
{
	memset(v->hc, 0, sizeof v->hc);
	wasp_hc_register_builtins(v);
	v->hc[WASP_HC_EXIT].allowed = true;
}

void wasp_hc_fini(struct wasp_virtine *v)
{
	free(v->arg);
	free(v->ret);
	v->arg = v->ret = NULL;
}

bool wasp_hc_dispatch(struct wasp_virtine *v, uint64_t nr, const uint64_t args[6],
		      int64_t *result)
{
	if (nr >= WASP_HC_MAX || !v->hc[nr].fn) {
		if (v->cfg.hypercall_exits)
			return false;
		*result = -ENOSYS;
		return true;
	}
	if (!v->hc[nr].allowed) {
		v->stats.hypercalls_denied++;
		*result = -EPERM;
		return true;
	}
	*result = v->hc[nr].fn(v, args, v->hc[nr].opaque);
	return true;
}

int wasp_virtine_register_hypercall(struct wasp_virtine *v, unsigned nr, const char *name,
				    wasp_hypercall_fn fn, void *opaque)
{
	if (nr < WASP_HC_USER_BASE || nr >= WASP_HC_MAX)
		return wasp_fail(-EINVAL, "hypercall number %u: embedders use %d..%d", nr,
				 WASP_HC_USER_BASE, WASP_HC_MAX - 1);
	if (!fn || !name || !*name || strchr(name, ','))
		return wasp_fail(-EINVAL, "hypercall %u needs a handler and a name without commas",
				 nr);
	for (unsigned i = 0; i < WASP_HC_MAX; i++)
		if (i != nr && v->hc[i].name && !strcmp(v->hc[i].name, name))
			return wasp_fail(-EEXIST, "hypercall name '%s' is taken by %u", name, i);
	v->hc[nr] = (struct wasp_hc_entry){.name = name, .fn = fn, .opaque = opaque};
	return 0;
}

/* Groups a user can name instead of listing each hypercall. */
static const struct {
	const char *name;
	const unsigned nrs[10];
} groups[] = {
	{"files", {WASP_HC_OPEN, WASP_HC_CLOSE, WASP_HC_READ, WASP_HC_WRITE, WASP_HC_PREAD,
		   WASP_HC_PWRITE, WASP_HC_LSEEK, WASP_HC_FSTAT}},
};

/* Calls fn(v, nr) for each hypercall named in `names`; with v == NULL only
 * the built-in names are known. Returns -ENOENT naming the first unknown. */
static int for_each_named(struct wasp_virtine *v, const char *names,
			  void (*fn)(struct wasp_virtine *, unsigned))
{
	struct wasp_virtine scratch;
	char *copy = strdup(names), *save = NULL;
	int r = 0;

	if (!copy)
		return wasp_fail(-ENOMEM, "out of memory");
	if (!v) {
		memset(scratch.hc, 0, sizeof scratch.hc);
		wasp_hc_register_builtins(&scratch);
	}
	const struct wasp_virtine *t = v ? v : &scratch;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool found = false;
		if (!strcmp(tok, "none"))
			continue;
		for (unsigned i = 0; i < WASP_HC_MAX; i++) {
			if (t->hc[i].name && (!strcmp(tok, "all") || !strcmp(tok, t->hc[i].name))) {
				found = true;
				if (fn)
					fn(v, i);
			}
		}
		for (size_t g = 0; !found && g < sizeof groups / sizeof *groups; g++) {
			if (strcmp(tok, groups[g].name))
				continue;
			found = true;
			for (size_t j = 0; j < 10 && groups[g].nrs[j]; j++)
				if (fn)
					fn(v, groups[g].nrs[j]);
		}
		if (!found) {
			r = wasp_fail(-ENOENT, "unknown hypercall '%s'", tok);
			break;
		}
	}
	free(copy);
	return r;
}

static void allow_one(struct wasp_virtine *v, unsigned nr)
{
	v->hc[nr].allowed = true;
}

int wasp_virtine_allow(struct wasp_virtine *v, const char *names)
{
	/* Check the whole list before changing anything. */
	int r = for_each_named(v, names, NULL);
	if (r < 0)
		return r;
	return for_each_named(v, names, allow_one);
}

int wasp_hypercall_names_valid(const char *names)
{
	return for_each_named(NULL, names, NULL);
}

int wasp_virtine_allow_nr(struct wasp_virtine *v, unsigned nr, bool allowed)
{
	if (nr >= WASP_HC_MAX || !v->hc[nr].name)
		return wasp_fail(-ENOENT, "no hypercall %u", nr);
	if (nr == WASP_HC_EXIT && !allowed)
		return wasp_fail(-EINVAL, "exit cannot be denied");
	v->hc[nr].allowed = allowed;
	return 0;
}

bool wasp_virtine_allowed(const struct wasp_virtine *v, unsigned nr)
{
	return nr < WASP_HC_MAX && v->hc[nr].name && v->hc[nr].allowed;
}

const char *wasp_virtine_hypercall_name(const struct wasp_virtine *v, unsigned nr)
{
	return nr < WASP_HC_MAX ? v->hc[nr].name : NULL;
}
