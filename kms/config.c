/*
 * conclave-kms configuration: one table drives parsing, defaults and
 * --help. Defaults go through the same checks as file values.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/dtls.h"
#include "conclave/log.h"
#include "kms/channel.h"
#include "kms/config.h"
#include "kms/kd_link.h"

#define FILE_MAX_BYTES (64 * 1024)
#define LINE_MAX_BYTES 4096

struct key_def {
	const char *name;
	const char *def;
	bool is_int;
	int64_t min, max;
	bool secret;
	bool loopback;	   /* an IP address on loopback only */
	bool ip;	   /* a numeric IPv4 or IPv6 address */
	bool optional;	   /* an integer key that may also be "" (unset) */
	bool fingerprints; /* comma-separated certificate fingerprints */
	bool level;	   /* a log level name */
	const char *doc;
};

/* clang-format off */
static const struct key_def defs[CV_KMS_CFG_COUNT] = {
	[CV_KMS_CFG_NAME] = {"kms.name", "localhost", .doc =
		"Host name of this KMS: in key URIs (kms://NAME/keys/...) and "
		"the certificate's CN."},
	[CV_KMS_CFG_DATA_DIR] = {"kms.data_dir", "/var/lib/conclave-kms",
		.doc = "Directory (created 0700) of the generated files and "
		"of the default SQLite database."},
	[CV_KMS_CFG_DATABASE] = {"kms.database", "", .doc =
		"postgres://... (libpq URI) or a SQLite file path; empty = "
		"DATA_DIR/kms.db."},
	[CV_KMS_CFG_MASTER_KEY_FILE] = {"kms.master_key_file", "", .doc =
		"File holding the 32-byte master key (64 hex digits) that "
		"wraps keys at rest; empty = DATA_DIR/master.key, generated "
		"on first start."},
	[CV_KMS_CFG_CERT_FILE] = {"kms.cert_file", "", .doc =
		"PEM ECDSA P-256 certificate of the KMS; empty = "
		"DATA_DIR/kms-cert.pem, self-signed on first start."},
	[CV_KMS_CFG_KEY_FILE] = {"kms.key_file", "", .doc =
		"PEM private key of kms.cert_file; empty = DATA_DIR/kms-key.pem."},
	[CV_KMS_CFG_KEY_BYTES] = {"kms.key_bytes", "16", true, 16, 32, .doc =
		"Length of the rooms' EKT keys: 16 (AES-128) or 32 (AES-256)."},
	[CV_KMS_CFG_ADMIN_ADDRESS] = {"admin.address", "127.0.0.1",
		.loopback = true, .doc =
		"Loopback address of the admin API (/healthz, /audit)."},
	[CV_KMS_CFG_ADMIN_PORT] = {"admin.port", "8446", true, 0, 65535,
		.doc = "TCP port of the admin API; 0 = any free port."},
	[CV_KMS_CFG_ADMIN_TOKEN] = {"admin.token", "", .secret = true, .doc =
		"Bearer token that /audit requires; empty (and no "
		"admin.token_file) = /audit is refused."},
	[CV_KMS_CFG_ADMIN_TOKEN_FILE] = {"admin.token_file", "", .doc =
		"File whose first line is the admin token."},
	[CV_KMS_CFG_CHANNEL_ADDRESS] = {"channel.address", "127.0.0.1",
		.ip = true, .doc = "IP address of the client-KMS channel's "
		"HTTP listener (POST /v1/channel)."},
	[CV_KMS_CFG_CHANNEL_PORT] = {"channel.port", "8447", true, 0, 65535,
		.doc = "TCP port of the client-KMS channel; 0 = any free port "
		"(the 'channel ready' log line names it)."},
	[CV_KMS_CFG_CHANNEL_TOKEN_SECRET_FILE] = {"channel.token_secret_file",
		"", .doc = "File (mode 0600, >= 32 bytes) holding the HMAC "
		"secret of KMS tokens; empty = the channel is off."},
	[CV_KMS_CFG_CHANNEL_TOKEN_ISSUER] = {"channel.token_issuer", "",
		.doc = "Expected 'iss' of KMS tokens (required with "
		"channel.token_secret_file)."},
	[CV_KMS_CFG_CHANNEL_TOKEN_AUDIENCE] = {"channel.token_audience",
		CV_KMS_TOKEN_AUDIENCE_DEFAULT, .doc =
		"Expected 'aud' of KMS tokens."},
	[CV_KMS_CFG_KD_ADDRESS] = {"kd.address", "127.0.0.1", .ip = true,
		.doc = "IP address on which the Key Distributor accepts media "
		"nodes (RFC 9185 tunnel, TLS 1.3); 0.0.0.0 or :: for remote "
		"nodes."},
	[CV_KMS_CFG_KD_PORT] = {"kd.port", "", true, 0, 65535,
		.optional = true, .doc = "TCP port of the Key Distributor; "
		"empty = off, 0 = any free port (the 'kd ready' log line "
		"names it)."},
	[CV_KMS_CFG_KD_NODE_FINGERPRINTS] = {"kd.node_fingerprints", "",
		.fingerprints = true, .doc = "Comma-separated certificate "
		"fingerprints (\"sha-256 AB:CD:...\") of the media nodes "
		"allowed to connect; required with kd.port."},
	[CV_KMS_CFG_LOG_LEVEL] = {"log.level", "info", .level = true, .doc =
		"error, warn, info, debug or trace."},
	[CV_KMS_CFG_LOG_FILE] = {"log.file", "", .doc =
		"Append logs to this file; empty = stderr."},
	[CV_KMS_CFG_LOG_OBFUSCATION_KEY] = {"log.obfuscation_key", "",
		.secret = true, .doc = "Key of the HMAC that obfuscates ids in "
		"logs (share it with the nodes to correlate); empty = random."},
};
/* clang-format on */

static void msg(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void msg(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void free_value(struct cv_kms_config *c, enum cv_kms_cfg k)
{
	if (c->values[k] && defs[k].secret)
		OPENSSL_cleanse(c->values[k], strlen(c->values[k]));
	free(c->values[k]);
	c->values[k] = NULL;
}

static bool is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Each comma-separated item parses as a fingerprint; at most
 * CV_KD_MAX_ALLOWED of them. */
static bool fingerprints_valid(const char *v)
{
	size_t n = 0;
	const char *p = v;
	if (!v[0])
		return true;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *e = comma ? comma : p + strlen(p);
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		struct cv_dtls_fingerprint fp;
		if (++n > CV_KD_MAX_ALLOWED ||
		    cv_dtls_fingerprint_parse(&fp, p, (size_t)(e - p)))
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

static bool is_ip(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	return inet_pton(AF_INET, addr, &a4) == 1 ||
	       inet_pton(AF_INET6, addr, &a6) == 1;
}

static int check(enum cv_kms_cfg k, const char *v, char *err, size_t errlen)
{
	const struct key_def *d = &defs[k];
	if (d->is_int && !(d->optional && !v[0])) {
		char *end = NULL;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (!v[0] || *end || errno || n < d->min || n > d->max) {
			msg(err, errlen,
			    "%s: expected an integer in [%lld, %lld]", d->name,
			    (long long)d->min, (long long)d->max);
			return -EINVAL;
		}
		if (k == CV_KMS_CFG_KEY_BYTES && n != 16 && n != 32) {
			msg(err, errlen, "%s: 16 or 32", d->name);
			return -EINVAL;
		}
	}
	if (d->ip && !is_ip(v)) {
		msg(err, errlen,
		    "%s: a numeric IPv4 or IPv6 address is required", d->name);
		return -EINVAL;
	}
	if (d->fingerprints && !fingerprints_valid(v)) {
		msg(err, errlen,
		    "%s: expected \"sha-256 AB:CD:...\" items separated by "
		    "commas (at most %d)",
		    d->name, CV_KD_MAX_ALLOWED);
		return -EINVAL;
	}
	if (d->loopback && !is_loopback(v)) {
		msg(err, errlen, "%s: a loopback IP address is required",
		    d->name);
		return -EINVAL;
	}
	enum cv_log_level lv;
	if (d->level && cv_log_level_parse(v, strlen(v), &lv)) {
		msg(err, errlen, "%s: unknown level", d->name);
		return -EINVAL;
	}
	return 0;
}

static int set_key(struct cv_kms_config *c, enum cv_kms_cfg k, const char *v,
		   char *err, size_t errlen)
{
	int rc = check(k, v, err, errlen);
	if (rc)
		return rc;
	char *copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	free_value(c, k);
	c->values[k] = copy;
	return 0;
}

int cv_kms_config_init(struct cv_kms_config *c)
{
	memset(c, 0, sizeof(*c));
	for (int k = 0; k < CV_KMS_CFG_COUNT; k++)
		if (set_key(c, (enum cv_kms_cfg)k, defs[k].def, NULL, 0))
			return -ENOMEM;
	return 0;
}

void cv_kms_config_fini(struct cv_kms_config *c)
{
	for (int k = 0; k < CV_KMS_CFG_COUNT; k++)
		free_value(c, (enum cv_kms_cfg)k);
}

const char *cv_kms_config_str(const struct cv_kms_config *c,
			      enum cv_kms_cfg key)
{
	return c->values[key] ? c->values[key] : "";
}

int64_t cv_kms_config_int(const struct cv_kms_config *c, enum cv_kms_cfg key)
{
	const char *v = cv_kms_config_str(c, key);
	return v[0] ? strtoll(v, NULL, 10) : -1;
}

int cv_kms_config_fingerprints(const struct cv_kms_config *c, char *buf,
			       size_t cap, const char **items, size_t max,
			       size_t *n)
{
	const char *v = cv_kms_config_str(c, CV_KMS_CFG_KD_NODE_FINGERPRINTS);
	size_t len = strlen(v), count = 0;
	*n = 0;
	if (len >= cap)
		return -ENOSPC;
	memcpy(buf, v, len + 1);
	for (char *p = buf; *p;) {
		char *comma = strchr(p, ',');
		char *e = comma ? comma : p + strlen(p);
		char *next = comma ? comma + 1 : e;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		if (count == max)
			return -ENOSPC;
		items[count++] = p;
		p = next;
	}
	*n = count;
	return 0;
}

const char *cv_kms_config_name(enum cv_kms_cfg key)
{
	return defs[key].name;
}

static int find(const char *name, size_t len, enum cv_kms_cfg *out)
{
	for (int k = 0; k < CV_KMS_CFG_COUNT; k++)
		if (strlen(defs[k].name) == len &&
		    memcmp(defs[k].name, name, len) == 0) {
			*out = (enum cv_kms_cfg)k;
			return 0;
		}
	return -ENOENT;
}

int cv_kms_config_set(struct cv_kms_config *c, const char *name,
		      const char *value, char *err, size_t errlen)
{
	enum cv_kms_cfg k;
	if (find(name, strlen(name), &k)) {
		msg(err, errlen, "unknown key '%s'", name);
		return -ENOENT;
	}
	return set_key(c, k, value, err, errlen);
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s &&
	       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

static int load_line(struct cv_kms_config *c, char *line, const char *origin,
		     int lineno, char *err, size_t errlen)
{
	char *end = line + strlen(line);
	char *eq = strchr(line, '=');
	char *t = trim(line, eq ? eq : end);
	if (!eq) {
		if (!t[0] || t[0] == '#')
			return 0;
		msg(err, errlen, "%s:%d: expected key = value", origin, lineno);
		return -EINVAL;
	}
	char *v = trim(eq + 1, end);
	size_t vl = strlen(v);
	if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
		v[vl - 1] = '\0';
		v++;
	} else {
		char *hash = strstr(v, " #");
		if (hash)
			v = trim(v, hash);
	}
	char sub[256];
	int rc = cv_kms_config_set(c, t, v, sub, sizeof(sub));
	if (rc)
		msg(err, errlen, "%s:%d: %s", origin, lineno, sub);
	return rc;
}

int cv_kms_config_load_string(struct cv_kms_config *c, const char *text,
			      size_t len, const char *origin, char *err,
			      size_t errlen)
{
	int lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		lineno++;
		if (l >= LINE_MAX_BYTES) {
			msg(err, errlen, "%s:%d: line too long", origin,
			    lineno);
			return -EINVAL;
		}
		char line[LINE_MAX_BYTES];
		memcpy(line, text + pos, l);
		line[l] = '\0';
		int rc = load_line(c, line, origin, lineno, err, errlen);
		OPENSSL_cleanse(line, sizeof(line));
		if (rc)
			return rc;
		pos += l + 1;
	}
	return 0;
}

int cv_kms_config_load_file(struct cv_kms_config *c, const char *path,
			    char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		msg(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *buf = malloc(FILE_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, FILE_MAX_BYTES + 1, f);
	fclose(f);
	int rc;
	if (n > FILE_MAX_BYTES) {
		msg(err, errlen, "%s: larger than %d bytes", path,
		    FILE_MAX_BYTES);
		rc = -EINVAL;
	} else {
		rc = cv_kms_config_load_string(c, buf, n, path, err, errlen);
	}
	OPENSSL_cleanse(buf, n);
	free(buf);
	return rc;
}

void cv_kms_config_print_help(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [--config FILE] [--key=value ...]\n"
		"conclave-kms: keys, membership and audit of PERC rooms.\n\n",
		prog);
	for (int k = 0; k < CV_KMS_CFG_COUNT; k++)
		fprintf(out, "  --%s (default \"%s\")\n      %s\n",
			defs[k].name, defs[k].def, defs[k].doc);
}

int cv_kms_config_parse_args(struct cv_kms_config *c, int argc, char **argv,
			     const char *version, FILE *out, char *err,
			     size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cv_kms_config_print_help(out, argv[0]);
			return CV_KMS_CONFIG_EXIT;
		}
		if (!strcmp(argv[i], "--version")) {
			fprintf(out, "conclave-kms %s\n", version);
			return CV_KMS_CONFIG_EXIT;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
			const char *path = a[8] == '=' ? a + 9 : argv[++i];
			if (!path) {
				msg(err, errlen, "--config needs a file");
				return -EINVAL;
			}
			int rc = cv_kms_config_load_file(c, path, err, errlen);
			if (rc)
				return rc;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--config")) {
			i++;
			continue;
		}
		if (!strncmp(a, "--config=", 9))
			continue;
		if (strncmp(a, "--", 2) != 0) {
			msg(err, errlen, "unexpected argument '%s'", a);
			return -EINVAL;
		}
		const char *name = a + 2, *eq = strchr(name, '='), *v;
		char key[64];
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		if (nl >= sizeof(key)) {
			msg(err, errlen, "unknown option '%s'", a);
			return -ENOENT;
		}
		memcpy(key, name, nl);
		key[nl] = '\0';
		if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			msg(err, errlen, "--%s needs a value", key);
			return -EINVAL;
		}
		int rc = cv_kms_config_set(c, key, v, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

int cv_kms_config_path(const struct cv_kms_config *c, enum cv_kms_cfg key,
		       char *buf, size_t len)
{
	const char *v = cv_kms_config_str(c, key);
	const char *file = NULL;
	switch (key) {
	case CV_KMS_CFG_DATABASE:
		file = "kms.db";
		break;
	case CV_KMS_CFG_MASTER_KEY_FILE:
		file = "master.key";
		break;
	case CV_KMS_CFG_CERT_FILE:
		file = "kms-cert.pem";
		break;
	case CV_KMS_CFG_KEY_FILE:
		file = "kms-key.pem";
		break;
	default:
		break;
	}
	int n = v[0] || !file
			? snprintf(buf, len, "%s", v)
			: snprintf(buf, len, "%s/%s",
				   cv_kms_config_str(c, CV_KMS_CFG_DATA_DIR),
				   file);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
