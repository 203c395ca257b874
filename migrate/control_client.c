/*
 * control_client.c: the client side of a runner's control socket, for
 * wasp-ckpt, wasp-migrate and embedders: find the runner of a pid or name
 * in a directory it can trust, check that a runner of this user answers,
 * then ask for a checkpoint or a migration and read the answer. The lines
 * are control_proto.c's, shared with the runner.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner_internal.h"

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int wasp_runner_connect(const char *target, uint64_t timeout_ns, int *sock,
			struct wasp_runner_peer *peer)
{
	uint64_t deadline = timeout_ns ? wasp_now_ns() + timeout_ns : 0;
	bool is_pid = all_digits(target);
	long pid = 0;
	char what[WASP_RUNNER_NAME_MAX + 32];

	*sock = -1;
	memset(peer, 0, sizeof *peer);
	if (is_pid) {
		char *end;
		errno = 0;
		pid = strtol(target, &end, 10);
		if (errno || pid <= 0 || pid > INT_MAX)
			return wasp_fail(-EINVAL, "'%s' is not a pid", target);
		snprintf(what, sizeof what, "pid %ld", pid);
	} else {
		if (wasp_runner_name_valid(target) < 0)
			return wasp_fail(-EINVAL, "'%s' is neither a pid nor a virtine name", target);
		snprintf(what, sizeof what, "virtine %s", target);
	}

	/* Where it may be: $WASP_RUN_DIR alone, or every default place (a
	 * runner picks the first usable one, which may differ for its user). */
	char dirs[3][PATH_MAX];
	int ndirs;
	const char *env = getenv("WASP_RUN_DIR");
	if (env && *env) {
		snprintf(dirs[0], PATH_MAX, "%s", env);
		ndirs = 1;
	} else {
		ndirs = wasp_rn_candidate_dirs(dirs);
	}
	char path[PATH_MAX] = "", denied[PATH_MAX] = "", untrusted[PATH_MAX + 128] = "";
	bool found = false;
	for (int i = 0; i < ndirs && !found; i++) {
		struct stat st;
		int n = snprintf(path, sizeof path, "%s/%s.sock", dirs[i], target);
		if (n < 0 || (size_t)n >= sizeof path)
			continue;
		if (stat(path, &st) < 0) {
			if (errno == EACCES && !denied[0])
				snprintf(denied, sizeof denied, "%s", path);
			continue;
		}
		/* A socket in a place another user could have written is never
		 * used: it would get our checkpoint's fd, or a migration token. */
		char why[PATH_MAX + 128];
		if (wasp_rn_dir_trusted(dirs[i], why, sizeof why) == 0)
			found = true;
		else if (!untrusted[0])
			snprintf(untrusted, sizeof untrusted, "%s", why);
	}
	if (!found) {
		if (untrusted[0])
			return wasp_fail(-EACCES, "%s: not using its socket: %s", what, untrusted);
		if (denied[0])
			return wasp_fail(-EACCES, "%s: permission denied (%s)", what, denied);
		if (!is_pid)
			return wasp_fail(-ENOENT, "no virtine named %s", target);
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return wasp_fail(-ESRCH, "no wasp-run with pid %ld", pid);
		return wasp_fail(-ENOTSOCK, "pid %ld is not a virtine (no control socket)", pid);
	}

	int s, r = wasp_rn_connect_path(path, deadline, &s);
	if (r == -ECONNREFUSED || r == -ENOENT) {
		/* A file left by a runner that died. */
		if (!is_pid)
			return wasp_fail(-ENOENT, "no virtine named %s (stale socket %s)", target, path);
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return wasp_fail(-ESRCH, "no wasp-run with pid %ld (stale socket %s)", pid, path);
		return wasp_fail(-ENOTSOCK, "pid %ld is not a virtine (stale socket %s)", pid, path);
	}
	if (r == -EACCES || r == -EPERM)
		return wasp_fail(-EACCES, "%s: permission denied (%s)", what, path);
	if (r == -EPROTOTYPE || r == -ENOTSOCK)
		return wasp_fail(-ENOTSOCK, "%s is not a virtine's control socket", path);
	if (r == -ETIMEDOUT || r == -EAGAIN)
		return wasp_fail(-ETIMEDOUT, "%s: no answer (%s)", what, path);
	if (r < 0)
		return wasp_fail(r, "connect %s: %s", path, strerror(-r));

	/* The directory was ours or root's, but check who answers anyway: only
	 * a runner of this user (or root's) gets our requests. */
	struct ucred cred;
	socklen_t clen = sizeof cred;
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		int e = errno;
		close(s);
		return wasp_fail(-e, "%s: cannot tell who serves %s: %s", what, path, strerror(e));
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		close(s);
		return wasp_fail(-EACCES, "%s: %s is served by uid %u, not by this user (%u) or root: "
					  "not using it", what, path, (unsigned)cred.uid,
				 (unsigned)geteuid());
	}

	char line[MSG_MAX];
	r = wasp_rn_ping(s, deadline, peer, line, sizeof line);
	if (r < 0) {
		close(s);
		switch (r) {
		case -EACCES:
			return wasp_fail(-EACCES, "%s: permission denied (the runner refused this user)",
					 what);
		case -ETIMEDOUT:
			return wasp_fail(-ETIMEDOUT, "%s did not answer in time (%s)", what, path);
		case -ECONNRESET:
			return wasp_fail(-ECONNRESET, "%s closed the connection (%s)", what, path);
		default:
			return wasp_fail(-EPROTO, "%s does not answer as a wasp runner (%s)", path, what);
		}
	}
	if (!is_pid && strcmp(peer->name, target)) {
		close(s);
		return wasp_fail(-ENOENT, "no virtine named %s (%s answers as pid %d)", target, path,
				 (int)peer->pid);
	}
	snprintf(peer->path, sizeof peer->path, "%s", path);
	*sock = s;
	return 0;
}

int wasp_runner_request_checkpoint(int sock, const struct wasp_checkpoint_request *req,
				   int dest_fd, uint64_t timeout_ns,
				   struct wasp_checkpoint_reply *rep)
{
	uint64_t deadline = timeout_ns ? wasp_now_ns() + timeout_ns : 0;
	char line[MSG_MAX];
	bool wait = false;

	memset(rep, 0, sizeof *rep);
	if (wasp_ctl_format_checkpoint(line, sizeof line, req) < 0)
		return wasp_fail(-E2BIG, "checkpoint request too long");
	wasp_ctl_frame(line, sizeof line);
	int r = wasp_rn_send_msg(sock, line, dest_fd);
	if (r == -EPIPE || r == -ECONNRESET)
		return wasp_fail(-ECONNRESET, "the runner closed the connection");
	if (r < 0)
		return wasp_fail(r, "send: %s", strerror(-r));
	r = wasp_rn_recv_line(sock, line, sizeof line, deadline);
	if (r == 0 && wasp_ctl_parse_checkpoint_reply(line, rep, &wait) == 0 && wait) {
		/* Written and synced, guest paused: our turn to commit. */
		int c = req->commit ? req->commit(req->commit_ctx) : 0;
		char answer[8] = WASP_CTL_COMMIT;
		if (c != 0)
			snprintf(answer, sizeof answer, "%s", WASP_CTL_ABORT);
		wasp_ctl_frame(answer, sizeof answer);
		rep->committed = c == 0;
		if (wasp_rn_send_msg(sock, answer, -1) < 0 && c == 0)
			return wasp_fail(-ECONNRESET, "the checkpoint is saved, but the runner "
						      "went away before it could stop the virtine");
		if (c < 0)
			return c; /* the virtine goes on; the commit said why */
		r = wasp_rn_recv_line(sock, line, sizeof line, deadline);
		if (r < 0)
			return wasp_fail(r == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET,
					 "the checkpoint is saved, but the runner did not say whether "
					 "the virtine stopped (%s)",
					 r == -ETIMEDOUT ? "no answer in time" : "did its process die?");
	}
	if (r == -ECONNRESET)
		return wasp_fail(-ECONNRESET,
				 "the connection closed before the checkpoint was done (did the virtine's process die?)");
	if (r == -ETIMEDOUT)
		return wasp_fail(-ETIMEDOUT, "no answer in time");
	if (r < 0)
		return wasp_fail(r, "recv: %s", strerror(-r));
	const char *err = wasp_ctl_parse_error(line);
	if (err)
		return wasp_fail(-EREMOTEIO, "%s", err);
	if (wasp_ctl_parse_checkpoint_reply(line, rep, &wait) < 0)
		return wasp_fail(-EPROTO, "unexpected answer: %.100s", line);
	return 0;
}

int wasp_runner_request_migrate(int sock, const struct wasp_migrate_request *req, int dest_fd,
				void (*progress)(void *opaque, const struct wasp_migrate_progress *p),
				void *opaque, struct wasp_migrate_reply *rep)
{
	char line[MSG_MAX];
	memset(rep, 0, sizeof *rep);
	rep->outcome = WASP_MIGRATE_RESUMED;

	if (wasp_ctl_format_migrate(line, sizeof line, req) < 0) {
		memset(line, 0, sizeof line); /* it held the token */
		return wasp_fail(-E2BIG, "migrate request too long");
	}
	wasp_ctl_frame(line, sizeof line);
	int r = wasp_rn_send_msg(sock, line, dest_fd);
	memset(line, 0, sizeof line); /* it held the token */
	if (r == -EPIPE || r == -ECONNRESET)
		return wasp_fail(-ECONNRESET, "the runner closed the connection");
	if (r < 0)
		return wasp_fail(r, "send: %s", strerror(-r));
	for (;;) {
		r = wasp_rn_recv_line(sock, line, sizeof line, 0);
		if (r == -ECONNRESET)
			return wasp_fail(-ECONNRESET,
					 "the connection closed before the migration was done (did the virtine's process die?)");
		if (r < 0)
			return wasp_fail(r, "recv: %s", strerror(-r));
		char phase[32];
		struct wasp_migrate_progress p;
		if (wasp_ctl_parse_progress(line, &p, phase, sizeof phase)) {
			if (progress)
				progress(opaque, &p);
			continue;
		}
		const char *err = wasp_ctl_parse_error(line);
		if (err)
			return wasp_fail(-EREMOTEIO, "%s", err);
		if (wasp_ctl_parse_migrate_reply(line, rep) == 0)
			return 0;
		return wasp_fail(-EPROTO, "unexpected answer: %.100s", line);
	}
}
