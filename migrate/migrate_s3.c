/*
 * migrate_s3.c: checkpoints in S3-compatible object storage (AWS S3, Ceph
 * RGW, MinIO, GCS's XML API) at s3://BUCKET/KEY.
 *
 * Writing is a transport (wasp_xfer): the stream fills parts of a
 * multipart upload that worker threads send while the checkpoint is still
 * being captured, so memory holds a few parts, never the checkpoint. The
 * object appears only when commit completes the upload, after the end
 * record; any failure, a cancel or a free before it aborts the upload, and
 * a writer killed outright leaves only invisible parts (no object, and an
 * older object at the key untouched). A stream smaller than one part goes
 * as one PUT with its length, which S3 also stores whole or not at all.
 *
 * Reading is a fetch source: ranged GETs on worker threads into a ring of
 * buffers, handed to the reader in order, each range pinned to the first
 * response's ETag (If-Match) so an object replaced mid-read is an error,
 * not a mix of two checkpoints.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4). Credentials, region
 * and endpoint are found as the AWS tools find them (s3_config()). The
 * payload is sent as UNSIGNED-PAYLOAD: a checkpoint carries its own CRC-32C
 * over every chunk and its end record, which a restore checks.
 * docs/object-storage.md has the whole story.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "migrate_internal.h"

#define S3_PART_DEFAULT (8u << 20)
#define S3_PART_MIN (5u << 20)   /* S3's smallest part but the last */
#define S3_PART_MAX (512u << 20)
#define S3_MAX_PARTS 10000       /* S3's limit per upload */
#define S3_THREADS_DEFAULT 4
#define S3_THREADS_MAX 16
#define S3_TRIES 6               /* per request, on 5xx and dropped links */
#define S3_BACKOFF_NS 100000000ull /* first wait; doubles */
#define S3_CONNECT_NS 5000000000ull
#define S3_STALL_NS 10000000000ull
#define S3_BODY_MAX 16384        /* XML answers kept */
#define S3_ETAG_MAX 128

/* ---- where and as whom ------------------------------------------------------ */

struct s3_target {
	char bucket[64];
	char key[1100];      /* as given */
	char url[2048];      /* the object's URL, key percent-encoded */
	char what[1200];     /* s3://BUCKET/KEY, for messages */
	char region[64];
	char sigv4[128];     /* "aws:amz:REGION:s3" */
	char key_id[256];
	char secret[256];
	char token[4096];    /* session token; "" none */
	char ca_file[1024];
	uint64_t connect_ns, stall_ns;
};

static void target_wipe(struct s3_target *t)
{
	explicit_bzero(t->secret, sizeof t->secret);
	explicit_bzero(t->token, sizeof t->token);
	explicit_bzero(t->key_id, sizeof t->key_id);
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	size_t i = 0;
	while (s[i] && isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

/* Looks `key` up in section `section` of an AWS-style INI file; with `sub`
 * ("s3"), in that nested block (`s3 =` followed by indented lines).
 * 1 found, 0 not (or no file). */
static int ini_get(const char *file, const char *section, const char *sub, const char *key,
		   char *out, size_t cap)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return 0;
	char line[8192], cur[256] = "", nest[64] = "";
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *c = line;
		trim(c);
		if (!*c || *c == '#' || *c == ';')
			continue;
		if (*c == '[') {
			char *e = strchr(c, ']');
			if (e)
				*e = '\0';
			snprintf(cur, sizeof cur, "%s", c + 1);
			trim(cur);
			nest[0] = '\0';
			continue;
		}
		char *eq = strchr(c, '=');
		if (!eq || strcmp(cur, section))
			continue;
		*eq = '\0';
		char *k = c, *val = eq + 1;
		trim(k);
		trim(val);
		if (!indented) {
			/* `s3 =` with nothing after it opens a nested block. */
			snprintf(nest, sizeof nest, "%s", *val ? "" : k);
			if (!sub && !strcmp(k, key)) {
				snprintf(out, cap, "%s", val);
				found = 1;
			}
		} else if (sub && !strcmp(nest, sub) && !strcmp(k, key)) {
			snprintf(out, cap, "%s", val);
			found = 1;
		}
	}
	explicit_bzero(line, sizeof line);
	fclose(f);
	return found;
}

static void home_file(const char *env, const char *name, char *out, size_t cap)
{
	const char *e = getenv(env), *home = getenv("HOME");
	if (e && *e)
		snprintf(out, cap, "%s", e);
	else
		snprintf(out, cap, "%s/.aws/%s", home && *home ? home : "/nonexistent", name);
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* Whether s is a bucket name S3 takes (3-63 of a-z 0-9 . -, starting and
 * ending with a letter or digit). */
static bool bucket_ok(const char *s, size_t n)
{
	if (n < 3 || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '.' ||
		      s[i] == '-'))
			return false;
	return true;
}

bool wasp_s3_url(const char *url)
{
	return url && !strncmp(url, "s3://", 5);
}

/* Fills *t for `url` (s3://BUCKET/KEY): credentials, region, endpoint and
 * addressing, in the order the AWS CLI uses (docs/object-storage.md). */
static int s3_config(const char *url, const struct wasp_xfer_opts *o, struct s3_target *t)
{
	memset(t, 0, sizeof *t);
	if (!wasp_s3_url(url))
		return wasp_fail(-EINVAL, "'%s': not an s3:// URL", url);
	const char *b = url + 5, *slash = strchr(b, '/');
	if (!slash || !slash[1])
		return wasp_fail(-EINVAL, "'%s': give s3://BUCKET/KEY", url);
	size_t blen = (size_t)(slash - b);
	if (!bucket_ok(b, blen))
		return wasp_fail(-EINVAL, "'%s': '%.*s' is not a valid bucket name", url,
				 (int)(blen < 100 ? blen : 100), b);
	memcpy(t->bucket, b, blen);
	const char *key = slash + 1;
	if (strlen(key) > 1024)
		return wasp_fail(-ENAMETOOLONG, "'%s': the key is longer than S3's 1024 bytes", url);
	for (const char *p = key; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return wasp_fail(-EINVAL, "'%s': the key holds control characters", url);
	snprintf(t->key, sizeof t->key, "%s", key);
	snprintf(t->what, sizeof t->what, "s3://%s/%s", t->bucket, t->key);

	char cfgfile[1024], credfile[1024], section[300], val[4096];
	home_file("AWS_CONFIG_FILE", "config", cfgfile, sizeof cfgfile);
	home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", credfile, sizeof credfile);
	const char *profile = env_nonempty("AWS_PROFILE");
	bool named = profile != NULL;
	if (!profile)
		profile = "default";
	/* ~/.aws/config names a profile "[profile NAME]", but "[default]". */
	if (!strcmp(profile, "default"))
		snprintf(section, sizeof section, "default");
	else
		snprintf(section, sizeof section, "profile %s", profile);

	/* Region. */
	const char *r = env_nonempty("AWS_REGION");
	if (!r)
		r = env_nonempty("AWS_DEFAULT_REGION");
	if (r)
		snprintf(t->region, sizeof t->region, "%s", r);
	else if (!ini_get(cfgfile, section, NULL, "region", t->region, sizeof t->region))
		snprintf(t->region, sizeof t->region, "us-east-1");
	for (const char *p = t->region; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return wasp_fail(-EINVAL, "region '%s' is not a region name", t->region);
	snprintf(t->sigv4, sizeof t->sigv4, "aws:amz:%s:s3", t->region);

	/* Credentials: the environment, then the profile in the credentials
	 * file, then in the config file. */
	const char *id = env_nonempty("AWS_ACCESS_KEY_ID"), *sec = env_nonempty("AWS_SECRET_ACCESS_KEY");
	const char *from = NULL;
	if (id || sec) {
		if (!id || !sec)
			return wasp_fail(-EINVAL, "%s is set but %s is not",
					 id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
					 id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		snprintf(t->key_id, sizeof t->key_id, "%s", id);
		snprintf(t->secret, sizeof t->secret, "%s", sec);
		const char *tok = env_nonempty("AWS_SESSION_TOKEN");
		if (tok)
			snprintf(t->token, sizeof t->token, "%s", tok);
		from = "the environment";
	} else {
		const char *files[2] = {credfile, cfgfile};
		const char *sections[2] = {profile, section};
		for (int i = 0; i < 2 && !from; i++) {
			if (!ini_get(files[i], sections[i], NULL, "aws_access_key_id", t->key_id,
				     sizeof t->key_id))
				continue;
			if (!ini_get(files[i], sections[i], NULL, "aws_secret_access_key", t->secret,
				     sizeof t->secret))
				return wasp_fail(-EINVAL, "%s: profile '%s' has aws_access_key_id but no "
						 "aws_secret_access_key", files[i], profile);
			ini_get(files[i], sections[i], NULL, "aws_session_token", t->token,
				sizeof t->token);
			from = files[i];
		}
	}
	if (!from) {
		if (named)
			return wasp_fail(-ENOKEY, "no S3 credentials: profile '%s' (AWS_PROFILE) is in "
					 "neither %s nor %s", profile, credfile, cfgfile);
		return wasp_fail(-ENOKEY, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
				 "AWS_SECRET_ACCESS_KEY, or a [default] profile in %s", credfile);
	}
	/* curl takes user and password apart, so a ':' cannot split them
	 * wrongly; control characters would corrupt the request. */
	for (const char *p = t->key_id; *p; p++)
		if ((unsigned char)*p <= 0x20)
			return wasp_fail(-EINVAL, "the access key ID from %s holds blanks or control "
					 "characters", from);
	for (const char *p = t->token; *p; p++)
		if ((unsigned char)*p < 0x20)
			return wasp_fail(-EINVAL, "the session token from %s holds control characters",
					 from);

	/* Endpoint: the option, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
	 * profile's s3 endpoint_url, its endpoint_url; else AWS itself. */
	char endpoint[1024] = "";
	const char *e = o->s3_endpoint && *o->s3_endpoint ? o->s3_endpoint : NULL;
	if (!e)
		e = env_nonempty("AWS_ENDPOINT_URL_S3");
	if (!e)
		e = env_nonempty("AWS_ENDPOINT_URL");
	if (e)
		snprintf(endpoint, sizeof endpoint, "%s", e);
	else if (!ini_get(cfgfile, section, "s3", "endpoint_url", endpoint, sizeof endpoint))
		ini_get(cfgfile, section, NULL, "endpoint_url", endpoint, sizeof endpoint);
	bool aws = !endpoint[0];
	if (aws)
		snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", t->region);
	if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8))
		return wasp_fail(-EINVAL, "S3 endpoint '%s': give http://HOST[:PORT] or https://...",
				 endpoint);
	size_t elen = strlen(endpoint);
	while (elen && endpoint[elen - 1] == '/')
		endpoint[--elen] = '\0';
	const char *host = strstr(endpoint, "://") + 3;
	if (!*host || strchr(host, '/') || strchr(host, '?') || strchr(host, '@'))
		return wasp_fail(-EINVAL, "S3 endpoint '%s': give the scheme and host only", endpoint);

	/* Addressing: AWS by bucket host name (virtual-hosted), other servers
	 * by path, unless the profile's `s3 = addressing_style` says. A
	 * bucket with dots cannot be a host name under https (the
	 * certificate's wildcard covers one label). */
	bool path_style = !aws;
	if (ini_get(cfgfile, section, "s3", "addressing_style", val, sizeof val)) {
		if (!strcmp(val, "path"))
			path_style = true;
		else if (!strcmp(val, "virtual"))
			path_style = false;
		else if (strcmp(val, "auto"))
			return wasp_fail(-EINVAL, "%s: addressing_style '%s': give path, virtual or auto",
					 cfgfile, val);
	}
	if (strchr(t->bucket, '.') && !strncmp(endpoint, "https://", 8))
		path_style = true;

	char enc[3400];
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)t->key; *p && n + 4 < sizeof enc; p++) {
		if (isalnum(*p) || strchr("-._~/", *p))
			enc[n++] = (char)*p;
		else
			n += (size_t)snprintf(enc + n, sizeof enc - n, "%%%02X", *p);
	}
	enc[n] = '\0';
	int w;
	if (path_style)
		w = snprintf(t->url, sizeof t->url, "%s/%s/%s", endpoint, t->bucket, enc);
	else
		w = snprintf(t->url, sizeof t->url, "%.*s%s.%s/%s", (int)(host - endpoint), endpoint,
			     t->bucket, host, enc);
	if (w < 0 || (size_t)w >= sizeof t->url)
		return wasp_fail(-ENAMETOOLONG, "'%s': the URL is too long", url);
	if (o->ca_file)
		snprintf(t->ca_file, sizeof t->ca_file, "%s", o->ca_file);
	t->connect_ns = o->connect_timeout_ns ? o->connect_timeout_ns : S3_CONNECT_NS;
	t->stall_ns = o->stall_timeout_ns ? o->stall_timeout_ns : S3_STALL_NS;
	return 0;
}

/* ---- one request ------------------------------------------------------------ */

/* One connection (curl handle) per thread, kept for keep-alive. */
struct s3_call {
	const char *method;  /* GET PUT POST DELETE */
	const char *query;   /* after '?', e.g. "uploads="; NULL: none */
	const char *body;    /* PUT or POST */
	size_t len;
	const char *range;   /* GET: "bytes=A-B" */
	const char *if_match;
	char *dst;           /* GET: the body goes here, up to dst_cap */
	size_t dst_cap, dst_len;
	bool dst_over;       /* more came than dst_cap */
	const atomic_bool *cancel;
	unsigned tries;      /* 0: S3_TRIES */
	/* Out: */
	long code;
	char etag[S3_ETAG_MAX];
	char content_range[128];
	char answer[S3_BODY_MAX + 1]; /* an XML answer (not a GET's body) */
	size_t answer_len;
	char why[768];       /* the failure, for a message */
};

struct s3_upload_src {
	const char *p;
	size_t left;
};

static size_t up_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct s3_upload_src *u = ctx;
	size_t len = size * n < u->left ? size * n : u->left;
	memcpy(buf, u->p, len);
	u->p += len;
	u->left -= len;
	return len;
}

static size_t down_write(char *p, size_t size, size_t n, void *ctx)
{
	struct s3_call *k = ctx;
	size_t len = size * n;
	/* header_cb has seen the status line: a GET's data goes to dst,
	 * anything else is an answer to keep. */
	if (k->dst && (k->code == 200 || k->code == 206)) {
		if (len > k->dst_cap - k->dst_len) {
			k->dst_over = true;
			return 0;
		}
		memcpy(k->dst + k->dst_len, p, len);
		k->dst_len += len;
		return len;
	}
	size_t room = S3_BODY_MAX - k->answer_len;
	memcpy(k->answer + k->answer_len, p, len < room ? len : room);
	k->answer_len += len < room ? len : room;
	k->answer[k->answer_len] = '\0';
	return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ctx)
{
	struct s3_call *k = ctx;
	size_t len = size * n;
	char line[512];
	snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), p);
	trim(line);
	if (!strncmp(line, "HTTP/", 5)) {
		/* A new response (after a 100 Continue, too): its code decides
		 * where the body goes. */
		char *sp = strchr(line, ' ');
		k->code = sp ? strtol(sp + 1, NULL, 10) : 0;
	} else if (!strncasecmp(line, "etag:", 5)) {
		char *v = line + 5;
		trim(v);
		snprintf(k->etag, sizeof k->etag, "%s", v);
	} else if (!strncasecmp(line, "content-range:", 14)) {
		char *v = line + 14;
		trim(v);
		snprintf(k->content_range, sizeof k->content_range, "%s", v);
	}
	return len;
}

static int progress_cb(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const atomic_bool *cancel = ctx;
	(void)dt, (void)dn, (void)ut, (void)un;
	return cancel && atomic_load(cancel) ? 1 : 0;
}

/* The text between <tag> and </tag> in an XML answer; "" when absent. */
static void xml_get(const char *xml, const char *tag, char *out, size_t cap)
{
	char open[64], close[64];
	snprintf(open, sizeof open, "<%s>", tag);
	snprintf(close, sizeof close, "</%s>", tag);
	out[0] = '\0';
	const char *a = strstr(xml, open);
	if (!a)
		return;
	a += strlen(open);
	const char *b = strstr(a, close);
	if (!b)
		return;
	size_t n = (size_t)(b - a);
	snprintf(out, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), a);
}

/* A 4xx/5xx answer in words: which of the things an operator can fix. */
static void explain(const struct s3_target *t, struct s3_call *k)
{
	char code[64], msg[200];
	xml_get(k->answer, "Code", code, sizeof code);
	xml_get(k->answer, "Message", msg, sizeof msg);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	const char *what = NULL;
	if (!strcmp(code, "NoSuchBucket"))
		what = "the bucket does not exist";
	else if (!strcmp(code, "NoSuchKey"))
		what = "no such object";
	else if (!strcmp(code, "AccessDenied"))
		what = "access denied (the credentials may not do this)";
	else if (!strcmp(code, "InvalidAccessKeyId"))
		what = "the access key ID is not known to the server";
	else if (!strcmp(code, "SignatureDoesNotMatch"))
		what = "the signature does not match: the secret access key is wrong";
	else if (!strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired"))
		what = "the session token has expired";
	else if (!strcmp(code, "InvalidToken"))
		what = "the session token is not valid";
	else if (!strcmp(code, "RequestTimeTooSkewed"))
		what = "this host's clock is too far from the server's";
	else if (!strcmp(code, "NoSuchUpload"))
		what = "the multipart upload is gone (aborted, or completed already)";
	else if (!strcmp(code, "PreconditionFailed"))
		what = "the object changed while it was being read";
	else if (!strcmp(code, "AuthorizationHeaderMalformed"))
		what = "the server refused the region of the signature";
	else if (k->code == 404 && !code[0])
		what = "no such object (or bucket)";
	else if (k->code == 403 && !code[0])
		what = "access denied";
	else if (k->code == 412)
		what = "the object changed while it was being read";
	if (what)
		snprintf(k->why, sizeof k->why, "%s: %s (%s, HTTP %ld)", t->what, what,
			 code[0] ? code : "no code", k->code);
	else
		snprintf(k->why, sizeof k->why, "%s: the server said %s%s%.200s (HTTP %ld)", t->what,
			 code[0] ? code : "an error", msg[0] ? ": " : "", msg, k->code);
}

static bool retryable_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static void nap(uint64_t ns, const atomic_bool *cancel)
{
	/* In slices, so a cancel is not kept waiting. */
	while (ns && !(cancel && atomic_load(cancel))) {
		uint64_t s = ns < 20000000ull ? ns : 20000000ull;
		struct timespec ts = {0, (long)s};
		nanosleep(&ts, NULL);
		ns -= s;
	}
}

/* Runs one request on h, retried with backoff on 5xx, 429, S3's
 * RequestTimeout and links that dropped; 0 on 2xx, else -errno with
 * k->why (never the credentials). */
static int s3_do(CURL *h, const struct s3_target *t, struct s3_call *k)
{
	char url[2200], line[4200];
	snprintf(url, sizeof url, "%s%s%s", t->url, k->query ? "?" : "", k->query ? k->query : "");
	unsigned tries = k->tries ? k->tries : S3_TRIES;
	uint64_t wait = S3_BACKOFF_NS;
	int err = -EIO;
	unsigned attempt;
	for (attempt = 1;; attempt++) {
		struct curl_slist *hd = NULL;
		char errbuf[CURL_ERROR_SIZE] = "";
		struct s3_upload_src src = {k->body, k->len};
		hd = curl_slist_append(hd, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
		if (t->token[0]) {
			snprintf(line, sizeof line, "x-amz-security-token: %s", t->token);
			hd = curl_slist_append(hd, line);
			explicit_bzero(line, sizeof line);
		}
		if (k->range) {
			snprintf(line, sizeof line, "Range: %s", k->range);
			hd = curl_slist_append(hd, line);
		}
		if (k->if_match && k->if_match[0]) {
			snprintf(line, sizeof line, "If-Match: %s", k->if_match);
			hd = curl_slist_append(hd, line);
		}
		/* Not "Expect:" to spare the 100-continue round trip: curl
		 * 7.88 signs the header it then leaves out, and the signature
		 * no longer matches. */
		if (!hd)
			return -ENOMEM;
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->connect_ns / 1000000ull));
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
				 (long)(t->stall_ns / 1000000000ull ? t->stall_ns / 1000000000ull : 1));
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, t->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, t->key_id);
		curl_easy_setopt(h, CURLOPT_PASSWORD, t->secret);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, down_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)k->cancel);
		if (t->ca_file[0])
			curl_easy_setopt(h, CURLOPT_CAINFO, t->ca_file);
		if (!strcmp(k->method, "PUT")) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, up_read);
			curl_easy_setopt(h, CURLOPT_READDATA, &src);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)k->len);
		} else if (!strcmp(k->method, "POST")) {
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, k->body ? k->body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->len);
		} else if (strcmp(k->method, "GET")) {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, k->method);
		}
		k->code = 0;
		k->etag[0] = k->content_range[0] = k->answer[0] = '\0';
		k->answer_len = k->dst_len = 0;
		k->dst_over = false;
		CURLcode res = curl_easy_perform(h);
		curl_slist_free_all(hd);
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		k->code = code;
		if (k->cancel && atomic_load(k->cancel)) {
			snprintf(k->why, sizeof k->why, "%s: canceled", t->what);
			return -ECANCELED;
		}
		bool retry;
		if (res == CURLE_OK && code >= 200 && code < 300)
			return 0;
		if (res == CURLE_WRITE_ERROR && k->dst_over) {
			snprintf(k->why, sizeof k->why, "%s: the server sent more than the range asked "
				 "for (it ignores Range requests)", t->what);
			return -EPROTO;
		}
		if (res != CURLE_OK) {
			retry = retryable_curl(res);
			snprintf(k->why, sizeof k->why, "%s: %s", t->what,
				 errbuf[0] ? errbuf : curl_easy_strerror(res));
			err = res == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
			      : res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			      : res == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH : -EIO;
		} else {
			char code_s[64];
			xml_get(k->answer, "Code", code_s, sizeof code_s);
			retry = code >= 500 || code == 429 || !strcmp(code_s, "RequestTimeout") ||
				!strcmp(code_s, "SlowDown");
			explain(t, k);
			err = code == 404 ? -ENOENT : code == 403 ? -EACCES : code == 412 ? -ESTALE
			      : code == 416 ? -ERANGE : -EIO;
		}
		if (!retry || attempt >= tries)
			break;
		nap(wait + (uint64_t)(rand() % 50) * 1000000ull, k->cancel);
		wait *= 2;
	}
	if (attempt > 1 && strlen(k->why) + 40 < sizeof k->why) {
		size_t n = strlen(k->why);
		snprintf(k->why + n, sizeof k->why - n, " (after %u tries)", attempt);
	}
	return err;
}

/* A fresh call: only the fields set by the caller matter. */
static struct s3_call *call_new(const char *method, const atomic_bool *cancel)
{
	struct s3_call *k = calloc(1, sizeof *k);
	if (k) {
		k->method = method;
		k->cancel = cancel;
	}
	return k;
}

/* ---- writing: a multipart upload ------------------------------------------------ */

struct s3_part {
	char *p;
	size_t len;
	unsigned num;
};

struct s3_xfer {
	struct wasp_xfer x;
	struct s3_target t;
	CURL *h;                 /* the writer's own requests */
	size_t part_size;
	unsigned nthreads;
	char *cur;               /* the part being filled */
	size_t cur_len;
	unsigned parts;          /* handed to the workers */
	char upload_id[512];     /* "" until the first part is full */
	bool completed;
	atomic_bool canceled;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct s3_part *todo;    /* ring of nthreads */
	unsigned todo_head, todo_n;
	char **spare;            /* free part buffers */
	unsigned nspare, nbufs, maxbufs;
	char (*etag)[S3_ETAG_MAX];
	unsigned etag_cap;
	bool closing;            /* no more parts will come */
	int err;                 /* the first failure (under lock) */
	char msg[800];
	pthread_t th[S3_THREADS_MAX];
	unsigned nth;
};

static void up_fail(struct s3_xfer *s, int err, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	if (!s->err) {
		s->err = err;
		snprintf(s->msg, sizeof s->msg, "%s", msg);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *up_worker(void *arg)
{
	struct s3_xfer *s = arg;
	CURL *h = curl_easy_init();
	struct s3_call *k = call_new("PUT", &s->canceled);
	if (!h || !k) {
		up_fail(s, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (!s->todo_n && !s->closing && !s->err)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->err || !s->todo_n) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		struct s3_part part = s->todo[s->todo_head];
		s->todo_head = (s->todo_head + 1) % s->nthreads;
		s->todo_n--;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);

		char q[700];
		snprintf(q, sizeof q, "partNumber=%u&uploadId=%s", part.num, s->upload_id);
		k->query = q;
		k->body = part.p;
		k->len = part.len;
		int r = s3_do(h, &s->t, k);
		pthread_mutex_lock(&s->lock);
		if (r < 0 || !k->etag[0]) {
			if (!s->err) {
				s->err = r < 0 ? r : -EPROTO;
				snprintf(s->msg, sizeof s->msg, "uploading part %u: %s", part.num,
					 r < 0 ? k->why : "the server gave no ETag");
			}
		} else {
			snprintf(s->etag[part.num - 1], S3_ETAG_MAX, "%s", k->etag);
		}
		s->spare[s->nspare++] = part.p;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
out:
	free(k);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

/* A buffer for the next part: a spare one, a new one while under the
 * bound, else waits for a worker to give one back. */
static int up_buffer(struct s3_xfer *s)
{
	pthread_mutex_lock(&s->lock);
	while (!s->nspare && s->nbufs >= s->maxbufs && !s->err)
		pthread_cond_wait(&s->cond, &s->lock);
	int err = s->err;
	if (!err) {
		if (s->nspare) {
			s->cur = s->spare[--s->nspare];
		} else if ((s->cur = malloc(s->part_size))) {
			s->nbufs++;
		} else {
			err = s->err = -ENOMEM;
			snprintf(s->msg, sizeof s->msg, "out of memory");
		}
	}
	char msg[800];
	snprintf(msg, sizeof msg, "%s", s->msg);
	pthread_mutex_unlock(&s->lock);
	s->cur_len = 0;
	return err ? wasp_fail(err, "%s", msg) : 0;
}

static int up_start(struct s3_xfer *s)
{
	struct s3_call *k = call_new("POST", &s->canceled);
	if (!k)
		return wasp_fail(-ENOMEM, "out of memory");
	/* "uploads=", not "uploads": curl 7.88 signs a bare key without its
	 * '=', which the server's canonical form has. */
	k->query = "uploads=";
	int r = s3_do(s->h, &s->t, k);
	if (r < 0) {
		r = wasp_fail(r, "starting the upload: %s", k->why);
		free(k);
		return r;
	}
	xml_get(k->answer, "UploadId", s->upload_id, sizeof s->upload_id);
	free(k);
	for (const char *p = s->upload_id; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._~", *p)) {
			s->upload_id[0] = '\0';
			break;
		}
	if (!s->upload_id[0])
		return wasp_fail(-EPROTO, "%s: the server's answer to starting the upload has no "
				 "usable UploadId", s->t.what);
	for (unsigned i = 0; i < s->nthreads; i++) {
		int e = pthread_create(&s->th[i], NULL, up_worker, s);
		if (e) {
			up_fail(s, -e, "pthread_create failed");
			return wasp_fail(-e, "pthread_create: %s", strerror(e));
		}
		s->nth++;
	}
	return 0;
}

/* Hands the full part to the workers (starting the upload first). */
static int up_hand(struct s3_xfer *s)
{
	int r;
	if (!s->upload_id[0] && (r = up_start(s)) < 0)
		return r;
	if (s->parts >= S3_MAX_PARTS)
		return wasp_fail(-EFBIG, "%s: more than %u parts of %zu bytes: give a bigger part size",
				 s->t.what, S3_MAX_PARTS, s->part_size);
	if (s->parts >= s->etag_cap) {
		unsigned cap = s->etag_cap ? s->etag_cap * 2 : 64;
		pthread_mutex_lock(&s->lock);
		void *n = realloc(s->etag, (size_t)cap * S3_ETAG_MAX);
		if (n) {
			s->etag = n;
			memset(s->etag[s->etag_cap], 0, (size_t)(cap - s->etag_cap) * S3_ETAG_MAX);
			s->etag_cap = cap;
		}
		pthread_mutex_unlock(&s->lock);
		if (!n)
			return wasp_fail(-ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&s->lock);
	while (s->todo_n == s->nthreads && !s->err)
		pthread_cond_wait(&s->cond, &s->lock);
	int err = s->err;
	char msg[800];
	snprintf(msg, sizeof msg, "%s", s->msg);
	if (!err) {
		s->todo[(s->todo_head + s->todo_n) % s->nthreads] =
			(struct s3_part){s->cur, s->cur_len, ++s->parts};
		s->todo_n++;
		s->cur = NULL;
		s->cur_len = 0;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return err ? wasp_fail(err, "%s", msg) : 0;
}

static int s3x_write(struct wasp_xfer *x, const void *buf, size_t len)
{
	struct s3_xfer *s = (struct s3_xfer *)x;
	const char *p = buf;
	int r;
	while (len) {
		if (atomic_load(&s->canceled))
			return wasp_fail(-ECANCELED, "%s: canceled", x->what);
		if (!s->cur && (r = up_buffer(s)) < 0)
			return r;
		size_t n = s->part_size - s->cur_len;
		if (n > len)
			n = len;
		memcpy(s->cur + s->cur_len, p, n);
		s->cur_len += n;
		p += n;
		len -= n;
		if (s->cur_len == s->part_size && (r = up_hand(s)) < 0)
			return r;
	}
	return 0;
}

/* Stops the workers (after the queue drains, unless it failed). */
static void up_join(struct s3_xfer *s)
{
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nth; i++)
		pthread_join(s->th[i], NULL);
	s->nth = 0;
}

/* Drops the upload and its parts at the server (a few tries: it may be
 * the server that failed). */
static void up_abort(struct s3_xfer *s)
{
	if (!s->upload_id[0] || s->completed)
		return;
	struct s3_call *k = call_new("DELETE", NULL);
	if (k) {
		char q[600];
		snprintf(q, sizeof q, "uploadId=%s", s->upload_id);
		k->query = q;
		k->tries = 2;
		s3_do(s->h, &s->t, k);
		free(k);
	}
	s->upload_id[0] = '\0';
}

static int up_complete(struct s3_xfer *s)
{
	size_t cap = (size_t)s->parts * (S3_ETAG_MAX + 64) + 128, n = 0;
	char *xml = malloc(cap);
	struct s3_call *k = call_new("POST", &s->canceled);
	int r;
	if (!xml || !k) {
		free(xml);
		free(k);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	n += (size_t)snprintf(xml + n, cap - n, "<CompleteMultipartUpload>");
	for (unsigned i = 0; i < s->parts; i++) {
		n += (size_t)snprintf(xml + n, cap - n, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
		/* An ETag is a quoted hex digest; escape what XML would not take. */
		for (const char *e = s->etag[i]; *e; e++) {
			if (*e == '&')
				n += (size_t)snprintf(xml + n, cap - n, "&amp;");
			else if (*e == '<')
				n += (size_t)snprintf(xml + n, cap - n, "&lt;");
			else if (*e == '>')
				n += (size_t)snprintf(xml + n, cap - n, "&gt;");
			else if (n + 1 < cap)
				xml[n++] = *e;
		}
		xml[n] = '\0';
		n += (size_t)snprintf(xml + n, cap - n, "</ETag></Part>");
	}
	n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
	char q[600];
	snprintf(q, sizeof q, "uploadId=%s", s->upload_id);
	k->query = q;
	k->body = xml;
	k->len = n;
	r = s3_do(s->h, &s->t, k);
	/* S3 can answer 200 and then report a failure in the body. */
	if (r == 0 && strstr(k->answer, "<Error>")) {
		explain(&s->t, k);
		r = -EIO;
	}
	if (r < 0)
		r = wasp_fail(r, "completing the upload: %s", k->why);
	else
		s->completed = true;
	free(xml);
	free(k);
	return r;
}

static int s3x_commit(struct wasp_xfer *x, enum wasp_xfer_verdict *v)
{
	struct s3_xfer *s = (struct s3_xfer *)x;
	int r;
	/* Failures are verdicts, with their message, as for the others. */
	*v = WASP_XFER_REFUSED;
	if (atomic_load(&s->canceled)) {
		wasp_fail(-ECANCELED, "%s: canceled", x->what);
		return 0;
	}
	if (!s->upload_id[0]) {
		/* Less than one part: a single PUT of known length is stored
		 * whole or not at all. */
		struct s3_call *k = call_new("PUT", &s->canceled);
		if (!k) {
			wasp_fail(-ENOMEM, "out of memory");
			return 0;
		}
		k->body = s->cur ? s->cur : "";
		k->len = s->cur_len;
		r = s3_do(s->h, &s->t, k);
		if (r < 0)
			wasp_fail(r, "%s", k->why);
		else
			*v = WASP_XFER_ACCEPTED;
		free(k);
		return 0;
	}
	if (s->cur_len && (r = up_hand(s)) < 0) {
		up_join(s);
		up_abort(s);
		return 0;
	}
	up_join(s);
	if (s->err) {
		wasp_fail(s->err, "%s", s->msg);
		up_abort(s);
		return 0;
	}
	if (up_complete(s) < 0) {
		char msg[800];
		snprintf(msg, sizeof msg, "%s", wasp_last_error());
		up_abort(s);
		wasp_fail(-EIO, "%s", msg);
		return 0;
	}
	*v = WASP_XFER_ACCEPTED;
	return 0;
}

static void s3x_cancel(struct wasp_xfer *x)
{
	struct s3_xfer *s = (struct s3_xfer *)x;
	atomic_store(&s->canceled, true);
	up_fail(s, -ECANCELED, "canceled");
}

static void s3x_destroy(struct wasp_xfer *x)
{
	struct s3_xfer *s = (struct s3_xfer *)x;
	if (s->nth) {
		up_fail(s, -ECANCELED, "canceled");
		up_join(s);
	}
	/* Never completed: drop the parts, so nothing is billed for them and
	 * no object ever appears. */
	up_abort(s);
	for (unsigned i = 0; i < s->nspare; i++)
		free(s->spare[i]);
	for (unsigned i = 0; i < s->todo_n; i++)
		free(s->todo[(s->todo_head + i) % s->nthreads].p);
	free(s->cur);
	free(s->spare);
	free(s->todo);
	free(s->etag);
	if (s->h)
		curl_easy_cleanup(s->h);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	target_wipe(&s->t);
	free(s);
}

static const struct wasp_xfer_ops s3_ops = {
	.name = "s3",
	.write = s3x_write,
	.commit = s3x_commit,
	.cancel = s3x_cancel,
	.destroy = s3x_destroy,
};

static size_t part_size(const struct wasp_xfer_opts *o)
{
	size_t p = o->s3_part_size ? o->s3_part_size : S3_PART_DEFAULT;
	return p < S3_PART_MIN ? S3_PART_MIN : p > S3_PART_MAX ? S3_PART_MAX : p;
}

static unsigned threads(const struct wasp_xfer_opts *o)
{
	unsigned n = o->s3_threads ? o->s3_threads : S3_THREADS_DEFAULT;
	return n > S3_THREADS_MAX ? S3_THREADS_MAX : n;
}

int wasp_s3_xfer_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_xfer **out)
{
	int r;
	*out = NULL;
	if ((r = wasp_curl_ready()) < 0)
		return r;
	struct s3_xfer *s = calloc(1, sizeof *s);
	if (!s)
		return wasp_fail(-ENOMEM, "out of memory");
	if ((r = s3_config(url, o, &s->t)) < 0) {
		target_wipe(&s->t);
		free(s);
		return r;
	}
	s->x.ops = &s3_ops;
	s->x.o = *o;
	s->x.o.s3_endpoint = NULL; /* copied into t; the caller's may go */
	snprintf(s->x.what, sizeof s->x.what, "%s", s->t.what);
	s->part_size = part_size(o);
	s->nthreads = threads(o);
	s->maxbufs = s->nthreads + 2; /* the queue, one being filled, one spare */
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->todo = calloc(s->nthreads, sizeof *s->todo);
	s->spare = calloc(s->maxbufs, sizeof *s->spare);
	s->h = curl_easy_init();
	if (!s->todo || !s->spare || !s->h) {
		s3x_destroy(&s->x);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	*out = &s->x;
	return 0;
}

/* ---- reading: ranged GETs ------------------------------------------------------- */

enum { SLOT_FREE, SLOT_LOADING, SLOT_READY };

struct s3_slot {
	char *p;
	size_t len;
	uint64_t chunk;
	int state;
};

struct wasp_s3_get {
	struct s3_target t;
	size_t range;
	unsigned nslots;
	struct s3_slot *slots;
	uint64_t total, nchunks;
	uint64_t next_claim;      /* the next range a worker fetches */
	uint64_t next_read;       /* the range the reader is in */
	size_t read_off;
	char etag[S3_ETAG_MAX];
	atomic_bool stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int err;
	char msg[800];
	pthread_t th[S3_THREADS_MAX];
	unsigned nth;
};

static int get_range(CURL *h, struct wasp_s3_get *g, struct s3_call *k, uint64_t chunk,
		     struct s3_slot *slot)
{
	char range[80];
	uint64_t a = chunk * g->range, b = a + g->range - 1;
	if (g->total && b >= g->total)
		b = g->total - 1;
	snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)a,
		 (unsigned long long)b);
	k->range = range;
	k->if_match = g->etag;
	k->dst = slot->p;
	k->dst_cap = g->range;
	int r = s3_do(h, &g->t, k);
	/* The first range is asked before the size is known. */
	if (r == 0 && g->total && k->dst_len != b - a + 1) {
		snprintf(k->why, sizeof k->why, "%s: range %llu-%llu came back with %zu bytes",
			 g->t.what, (unsigned long long)a, (unsigned long long)b, k->dst_len);
		r = -EPROTO;
	}
	slot->len = k->dst_len;
	return r;
}

static void *get_worker(void *arg)
{
	struct wasp_s3_get *g = arg;
	CURL *h = curl_easy_init();
	struct s3_call *k = call_new("GET", &g->stop);
	if (!h || !k) {
		pthread_mutex_lock(&g->lock);
		if (!g->err) {
			g->err = -ENOMEM;
			snprintf(g->msg, sizeof g->msg, "out of memory");
		}
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		goto out;
	}
	pthread_mutex_lock(&g->lock);
	for (;;) {
		while (!atomic_load(&g->stop) && !g->err && g->next_claim < g->nchunks &&
		       g->next_claim >= g->next_read + g->nslots)
			pthread_cond_wait(&g->cond, &g->lock);
		if (atomic_load(&g->stop) || g->err || g->next_claim >= g->nchunks)
			break;
		uint64_t c = g->next_claim++;
		struct s3_slot *slot = &g->slots[c % g->nslots];
		slot->chunk = c;
		slot->state = SLOT_LOADING;
		pthread_mutex_unlock(&g->lock);
		int r = get_range(h, g, k, c, slot);
		pthread_mutex_lock(&g->lock);
		if (r < 0 && !g->err) {
			g->err = r;
			snprintf(g->msg, sizeof g->msg, "%s", k->why);
		}
		slot->state = SLOT_READY;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
out:
	free(k);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

static void get_free(struct wasp_s3_get *g)
{
	if (g->slots)
		for (unsigned i = 0; i < g->nslots; i++)
			free(g->slots[i].p);
	free(g->slots);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	target_wipe(&g->t);
	free(g);
}

int wasp_s3_get_open(const char *url, const struct wasp_xfer_opts *o, struct wasp_s3_get **out)
{
	int r;
	*out = NULL;
	if ((r = wasp_curl_ready()) < 0)
		return r;
	struct wasp_s3_get *g = calloc(1, sizeof *g);
	if (!g)
		return wasp_fail(-ENOMEM, "out of memory");
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if ((r = s3_config(url, o, &g->t)) < 0) {
		get_free(g);
		return r;
	}
	g->range = part_size(o);
	unsigned nth = threads(o);
	g->nslots = nth + 1;
	g->slots = calloc(g->nslots, sizeof *g->slots);
	CURL *h = curl_easy_init();
	struct s3_call *k = call_new("GET", NULL);
	if (!g->slots || !h || !k || !(g->slots[0].p = malloc(g->range))) {
		free(k);
		if (h)
			curl_easy_cleanup(h);
		get_free(g);
		return wasp_fail(-ENOMEM, "out of memory");
	}
	/* The first range also tells the object's size and ETag. */
	r = get_range(h, g, k, 0, &g->slots[0]);
	if (r == -ERANGE) {
		/* 416 on bytes=0-: the object is empty. */
		g->total = 0;
		r = 0;
	} else if (r == 0 && k->code == 200) {
		/* No Range support, but the whole object fit in the range. */
		g->total = k->dst_len;
	} else if (r == 0) {
		const char *slash = strrchr(k->content_range, '/');
		char *end = NULL;
		unsigned long long total = slash ? strtoull(slash + 1, &end, 10) : 0;
		size_t want = total < g->range ? (size_t)total : g->range;
		if (!slash || end == slash + 1 || *end || !total) {
			snprintf(k->why, sizeof k->why, "%s: the server gave no object size "
				 "(Content-Range '%.100s')", g->t.what, k->content_range);
			r = -EPROTO;
		} else if (g->slots[0].len != want) {
			snprintf(k->why, sizeof k->why, "%s: the first range came back with %zu of %zu "
				 "bytes", g->t.what, g->slots[0].len, want);
			r = -EPROTO;
		} else {
			g->total = total;
		}
	}
	curl_easy_cleanup(h);
	if (r < 0) {
		r = wasp_fail(r, "%s", k->why);
		free(k);
		get_free(g);
		return r;
	}
	snprintf(g->etag, sizeof g->etag, "%s", k->etag);
	free(k);
	g->slots[0].state = SLOT_READY;
	g->slots[0].chunk = 0;
	g->nchunks = g->total ? (g->total + g->range - 1) / g->range : 1;
	if (!g->total)
		g->slots[0].len = 0;
	g->next_claim = 1;
	for (unsigned i = 1; i < g->nslots && i < g->nchunks; i++)
		if (!(g->slots[i].p = malloc(g->range))) {
			get_free(g);
			return wasp_fail(-ENOMEM, "out of memory");
		}
	for (unsigned i = 0; i < nth && i + 1 < g->nchunks; i++) {
		int e = pthread_create(&g->th[i], NULL, get_worker, g);
		if (e) {
			wasp_s3_get_close(g);
			return wasp_fail(-e, "pthread_create: %s", strerror(e));
		}
		g->nth++;
	}
	*out = g;
	return 0;
}

ssize_t wasp_s3_get_read(struct wasp_s3_get *g, void *buf, size_t len)
{
	pthread_mutex_lock(&g->lock);
	if (g->next_read >= g->nchunks) {
		pthread_mutex_unlock(&g->lock);
		return 0;
	}
	struct s3_slot *slot = &g->slots[g->next_read % g->nslots];
	while (!g->err && (slot->state != SLOT_READY || slot->chunk != g->next_read))
		pthread_cond_wait(&g->cond, &g->lock);
	if (g->err) {
		char msg[800];
		int err = g->err;
		snprintf(msg, sizeof msg, "%s", g->msg);
		pthread_mutex_unlock(&g->lock);
		return wasp_fail(err, "%s", msg);
	}
	size_t n = slot->len - g->read_off;
	if (n > len)
		n = len;
	memcpy(buf, slot->p + g->read_off, n);
	g->read_off += n;
	if (g->read_off == slot->len) {
		slot->state = SLOT_FREE;
		g->read_off = 0;
		g->next_read++;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
	return (ssize_t)n;
}

uint64_t wasp_s3_get_size(const struct wasp_s3_get *g)
{
	return g->total;
}

int wasp_s3_get_close(struct wasp_s3_get *g)
{
	if (!g)
		return 0;
	atomic_store(&g->stop, true);
	pthread_mutex_lock(&g->lock);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	for (unsigned i = 0; i < g->nth; i++)
		pthread_join(g->th[i], NULL);
	/* A reader that stopped early cancels what was still coming: that
	 * is no failure of the download. */
	int r = g->err && g->err != -ECANCELED ? wasp_fail(g->err, "%s", g->msg) : 0;
	get_free(g);
	return r;
}
