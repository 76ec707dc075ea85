/*
 * Configuration: one table drives parsing, defaults, --help, the docs
 * table and the dump. Defaults are written as text and go through the same
 * parser as a file value, so a default can never be out of its own range.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conclave/config.h"
#include "conclave/err.h"
#include "conclave/log.h"

#define LINE_MAX_BYTES 4096
#define FILE_MAX_BYTES (1024 * 1024)

typedef int (*check_fn)(const char *value, char *msg, size_t msglen);

struct key_def {
	const char *name;
	const char *def;     /* default, in file syntax */
	const char *doc_def; /* shown instead of def when build-dependent */
	int64_t min, max;    /* int and duration */
	const char *const *values; /* enum, NULL-terminated */
	bool secret;
	check_fn check; /* extra check of a string value */
	const char *doc;
};

#define CV_T_S_(id) CV_CONFIG_STRING,
#define CV_T_I_(id) CV_CONFIG_INT,
#define CV_T_B_(id) CV_CONFIG_BOOL,
#define CV_T_D_(id) CV_CONFIG_DURATION_MS,
#define CV_T_E_(id) CV_CONFIG_ENUM,
static const enum cv_config_type key_types[CV_CFGK_COUNT] = {
	CV_CONFIG_KEYS(CV_T_S_, CV_T_I_, CV_T_B_, CV_T_D_, CV_T_E_)};

static int check_ip(const char *v, char *msg, size_t msglen);
static int check_ip_or_empty(const char *v, char *msg, size_t msglen);
static int check_levels(const char *v, char *msg, size_t msglen);
static int check_fp_or_empty(const char *v, char *msg, size_t msglen);
static int check_fault(const char *v, char *msg, size_t msglen);

/* Same order as enum cv_log_level / enum cv_log_format. */
static const char *const level_values[] = {"error", "warn",  "info",
					   "debug", "trace", NULL};
static const char *const format_values[] = {"text", "json", NULL};

/* One row per key reads better than clang-format would make it. */
/* clang-format off */
#define MIB (1024 * 1024)

/* Table rows by kind (the type comes from CV_CONFIG_KEYS); fields not
 * named are zero. */
#define PLAIN(n, d, doc_) {.name = n, .def = d, .doc = doc_}
#define CHECKED(n, d, chk, doc_) \
	{.name = n, .def = d, .check = chk, .doc = doc_}
#define SECRET(n, doc_) {.name = n, .def = "", .secret = true, .doc = doc_}
#define RANGE(n, d, lo, hi, doc_) \
	{.name = n, .def = d, .min = lo, .max = hi, .doc = doc_}
#define CHOICE(n, d, vals, doc_) \
	{.name = n, .def = d, .values = vals, .doc = doc_}

static const struct key_def defs[CV_CFGK_COUNT] = {
	[CV_CFGK_NODE_WORKERS] = RANGE("node.workers", "0", 0, 256,
		"Media worker threads; 0 = one per online CPU core."),
	[CV_CFGK_LISTEN_ADDRESS] = CHECKED("listen.address", "127.0.0.1", check_ip,
		"Address of the HTTP and WebSocket listener for clients."),
	[CV_CFGK_LISTEN_PORT] = RANGE("listen.port", "8443", 1, 65535,
		"TCP port of the HTTP and WebSocket listener for clients."),
	[CV_CFGK_MEDIA_ADDRESS] = CHECKED("media.address", "0.0.0.0", check_ip,
		"Address the media workers' UDP sockets bind to."),
	[CV_CFGK_MEDIA_PORT_BASE] = RANGE("media.port_base", "40000", 1, 65535,
		"UDP port of media worker 0; worker i uses port_base + i."),
	[CV_CFGK_MEDIA_ANNOUNCE_ADDRESS] = CHECKED("media.announce_address", "",
		check_ip_or_empty,
		"Address put in ICE candidates; empty = the first "
		"non-loopback IPv4 address, else 127.0.0.1."),
	[CV_CFGK_ADMIN_ADDRESS] = CHECKED("admin.address", "127.0.0.1", check_ip,
		"Address of the admin API (metrics, health, drain)."),
	[CV_CFGK_ADMIN_PORT] = RANGE("admin.port", "8444", 1, 65535,
		"TCP port of the admin API."),
	[CV_CFGK_ADMIN_TOKEN] = SECRET("admin.token",
		"Bearer token the admin API requires; empty = requests that "
		"need it are refused."),
	[CV_CFGK_WEB_ROOT] = {.name = "web.root", .def = NULL,
		.doc_def = "source tree's web/, else /usr/share/conclave/web",
		.doc = "Directory of the demo page served over HTTP."},
	[CV_CFGK_DTLS_CERT_FILE] = PLAIN("dtls.cert_file", "",
		"PEM certificate for DTLS; empty = a self-signed one "
		"generated at start-up."),
	[CV_CFGK_DTLS_KEY_FILE] = PLAIN("dtls.key_file", "",
		"PEM private key of dtls.cert_file; empty = generated with "
		"the certificate."),
	[CV_CFGK_TOKEN_SECRET] = SECRET("token.secret",
		"HS256 secret of join tokens; required (or token.secret_file) "
		"unless dev."),
	[CV_CFGK_TOKEN_SECRET_FILE] = PLAIN("token.secret_file", "",
		"File whose first line is the token secret (instead of "
		"token.secret)."),
	[CV_CFGK_TOKEN_LEEWAY_MS] = RANGE("token.leeway_ms", "60000", 0, 600000,
		"Clock skew allowed when checking a token's exp, nbf and iat."),
	[CV_CFGK_LOG_LEVEL] = CHOICE("log.level", "info", level_values,
		"Level of every log subsystem not named in log.levels."),
	[CV_CFGK_LOG_LEVELS] = CHECKED("log.levels", "", check_levels,
		"Per-subsystem levels, e.g. ice=debug,dtls=trace."),
	[CV_CFGK_LOG_FORMAT] = CHOICE("log.format", "text", format_values,
		"Log lines as plain text or JSON (one object per line)."),
	[CV_CFGK_LOG_FILE] = PLAIN("log.file", "",
		"Append logs to this file (reopened on SIGHUP); empty = "
		"stderr."),
	[CV_CFGK_LOG_OBFUSCATION_KEY] = SECRET("log.obfuscation_key",
		"Key of the HMAC that obfuscates ids in logs; share it so ids "
		"correlate across nodes; empty = random per process."),
	[CV_CFGK_WS_MAX_CONNECTIONS] = RANGE("ws.max_connections", "1024", 1,
		1000000,
		"Most client WebSocket connections at once; more are refused."),
	[CV_CFGK_WS_JOIN_TIMEOUT_MS] = RANGE("ws.join_timeout_ms", "10000",
		1000, 600000,
		"A client connection that has not joined a room by then is "
		"closed (1008), so idle sockets cannot crowd out real ones."),
	[CV_CFGK_WS_MAX_MESSAGE_BYTES] = RANGE("ws.max_message_bytes", "65536",
		1024, 16 * MIB,
		"Largest WebSocket message accepted (bigger: closed with "
		"1009)."),
	[CV_CFGK_WS_RATE_PER_SEC] = RANGE("ws.rate_per_sec", "50", 1, 100000,
		"Sustained messages per second a connection may send."),
	[CV_CFGK_WS_RATE_BURST] = RANGE("ws.rate_burst", "100", 1, 100000,
		"Burst of messages a connection may send above the sustained "
		"rate."),
	[CV_CFGK_WS_MAX_QUEUED_BYTES] = RANGE("ws.max_queued_bytes", "262144",
		4096, 64 * MIB,
		"Output queued for one connection before it is closed with "
		"1008."),
	[CV_CFGK_ROOM_MAX_ROOMS] = RANGE("room.max_rooms", "1000", 1, 1000000,
		"Most rooms open at once on this node."),
	[CV_CFGK_ROOM_MAX_PARTICIPANTS] = RANGE("room.max_participants", "100",
		1, 10000, "Most participants in one room."),
	[CV_CFGK_DRAIN_TIMEOUT_MS] = RANGE("drain.timeout_ms", "30000", 0,
		86400000,
		"On SIGTERM, how long to wait for rooms to empty before "
		"exiting."),
	[CV_CFGK_ICE_CONSENT_TIMEOUT_MS] = RANGE("ice.consent_timeout_ms",
		"30000", 1000, 600000,
		"A transport without consent for this long is closed "
		"(RFC 7675)."),
	[CV_CFGK_POOL_PACKETS_PER_WORKER] = RANGE("pool.packets_per_worker",
		"8192", 256, 1048576, "Packet buffers in each worker's pool."),
	[CV_CFGK_SWITCH_NACK_CACHE_PACKETS] = RANGE("switch.nack_cache_packets",
		"512", 0, 1024,
		"Packets kept per video track to answer NACKs; 0 = no "
		"retransmission (at most the SRTP replay window, 1024)."),
	[CV_CFGK_SWITCH_PLI_MIN_INTERVAL_MS] = RANGE(
		"switch.pli_min_interval_ms", "500", 0, 60000,
		"Shortest interval between PLI/FIR forwarded to one "
		"publisher."),
	[CV_CFGK_PERC_KD_ADDRESS] = CHECKED("perc.kd_address", "127.0.0.1",
		check_ip,
		"Numeric address of the Key Distributor (conclave-kms kd.port) "
		"for perc rooms."),
	[CV_CFGK_PERC_KD_PORT] = RANGE("perc.kd_port", "0", 0, 65535,
		"TCP port of the Key Distributor's RFC 9185 tunnel; 0 = perc "
		"rooms are off (joins get unsupported)."),
	[CV_CFGK_PERC_KD_FINGERPRINT] = CHECKED("perc.kd_fingerprint", "",
		check_fp_or_empty,
		"Pin of the KMS certificate, \"sha-256 AB:CD:...\"; required "
		"with perc.kd_port."),
	[CV_CFGK_PERC_CERT_FILE] = PLAIN("perc.cert_file", "",
		"PEM certificate of the node's tunnel identity (the KMS pins "
		"its fingerprint); empty = generated at start-up (dev only)."),
	[CV_CFGK_PERC_KEY_FILE] = PLAIN("perc.key_file", "",
		"PEM private key of perc.cert_file."),
	[CV_CFGK_PERC_FINGERPRINT_FILE] = PLAIN("perc.fingerprint_file", "",
		"With a generated tunnel certificate: write its "
		"\"sha-256 AB:..\" fingerprint to this file (for the KMS "
		"allow list)."),
	[CV_CFGK_PERC_KMS_ADDRESS] = CHECKED("perc.kms_address", "127.0.0.1",
		check_ip,
		"Numeric address of the conclave-kms channel the node relays "
		"POST /v1/channel to."),
	[CV_CFGK_PERC_KMS_PORT] = RANGE("perc.kms_port", "0", 0, 65535,
		"Port of the conclave-kms channel (channel.port); 0 = no relay "
		"(POST /v1/channel answers 404)."),
	[CV_CFGK_PERC_FAULT] = CHECKED("perc.fault", "", check_fault,
		"Test builds with -Dperc_faulty_node=true only: tamper every "
		"forwarded perc packet (ssrc, timestamp, payload, inner_tag, "
		"ohb, ekt_move); empty = none."),
	[CV_CFGK_DEV] = PLAIN("dev", "false",
		"Development mode: random token.secret and GET /dev/token. "
		"Never in production."),
};

/* clang-format on */

union value {
	int64_t i;
	bool b;
	char *s;
};

struct cv_config {
	union value v[CV_CFGK_COUNT];
};

static void msgf(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void msgf(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (!msglen)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

static const char *web_root_default(void)
{
#ifdef CV_SOURCE_WEB_DIR
	if (access(CV_SOURCE_WEB_DIR, R_OK) == 0)
		return CV_SOURCE_WEB_DIR;
#endif
	return "/usr/share/conclave/web";
}

static int check_ip(const char *v, char *msg, size_t msglen)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, v, addr) == 1 ||
	    inet_pton(AF_INET6, v, addr) == 1)
		return 0;
	msgf(msg, msglen, "'%s' is not an IPv4 or IPv6 address", v);
	return -EINVAL;
}

static int check_ip_or_empty(const char *v, char *msg, size_t msglen)
{
	return *v ? check_ip(v, msg, msglen) : 0;
}

/* "sha-256 AB:CD:..." with 32 colon-separated hex octets (RFC 8122
 * section 5 syntax, the hash the KMS's cert= log line prints). */
static int check_fp_or_empty(const char *v, char *msg, size_t msglen)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	const char *p = v + 8;

	if (!*v)
		return 0;
	if (strncasecmp(v, "sha-256 ", 8) != 0)
		goto bad;
	for (int i = 0; i < 32; i++, p += 3) {
		if (!p[0] || !p[1] || !strchr(hex, p[0]) || !strchr(hex, p[1]))
			goto bad;
		if (p[2] != (i == 31 ? '\0' : ':'))
			goto bad;
	}
	return 0;
bad:
	msgf(msg, msglen, "not a \"sha-256 AB:CD:...\" fingerprint");
	return -EINVAL;
}

static int check_fault(const char *v, char *msg, size_t msglen)
{
	static const char *const kinds[] = {"",	       "ssrc",	    "timestamp",
					    "payload", "inner_tag", "ohb",
					    "ekt_move"};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(v, kinds[i]) == 0)
			return 0;
	msgf(msg, msglen,
	     "'%s' is not one of ssrc|timestamp|payload|inner_tag|ohb|"
	     "ekt_move",
	     v);
	return -EINVAL;
}

static int check_levels(const char *v, char *msg, size_t msglen)
{
	enum cv_log_level lv[CV_LOG_SUBSYS_COUNT] = {0};

	if (cv_log_levels_parse(v, lv) == 0)
		return 0;
	msgf(msg, msglen,
	     "'%s' is not a list of subsystem=level (e.g. "
	     "ice=debug,dtls=trace)",
	     v);
	return -EINVAL;
}

static int parse_int(const char *v, int64_t *out)
{
	char *end;
	long long x;

	if (!*v || (*v != '-' && (*v < '0' || *v > '9')))
		return -EINVAL;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_duration(const char *v, int64_t *out)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {
		{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;
	unsigned long long x;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || x > INT64_MAX / 3600000)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			*out = (int64_t)x * units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static void free_string(enum cv_config_key key, char *s)
{
	if (s && defs[key].secret)
		explicit_bzero(s, strlen(s));
	free(s);
}

static int set_string(struct cv_config *cfg, enum cv_config_key key,
		      const char *v, char *msg, size_t msglen)
{
	const struct key_def *d = &defs[key];
	char *copy;

	if (strlen(v) > LINE_MAX_BYTES) {
		msgf(msg, msglen, "%s: value too long", d->name);
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			msgf(msg, msglen, "%s: control character in value",
			     d->name);
			return -EINVAL;
		}
	}
	if (d->check) {
		char why[256];
		int ret = d->check(v, why, sizeof(why));

		if (ret < 0) {
			msgf(msg, msglen, "%s: %s", d->name, why);
			return ret;
		}
	}
	copy = strdup(v);
	if (!copy) {
		msgf(msg, msglen, "%s: out of memory", d->name);
		return -ENOMEM;
	}
	free_string(key, cfg->v[key].s);
	cfg->v[key].s = copy;
	return 0;
}

static int set_ranged(struct cv_config *cfg, enum cv_config_key key,
		      const char *v, char *msg, size_t msglen)
{
	const struct key_def *d = &defs[key];
	bool ms = key_types[key] == CV_CONFIG_DURATION_MS;
	int64_t x;

	if ((ms ? parse_duration(v, &x) : parse_int(v, &x)) < 0) {
		msgf(msg, msglen,
		     ms ? "%s: '%s' is not a duration (e.g. 500, 500ms, 30s, "
			  "2m)"
			: "%s: '%s' is not an integer",
		     d->name, v);
		return -EINVAL;
	}
	if (x < d->min || x > d->max) {
		msgf(msg, msglen,
		     "%s: %" PRId64 " is out of range (%" PRId64 "..%" PRId64
		     "%s)",
		     d->name, x, d->min, d->max, ms ? " ms" : "");
		return -EINVAL;
	}
	cfg->v[key].i = x;
	return 0;
}

static int set_enum(struct cv_config *cfg, enum cv_config_key key,
		    const char *v, char *msg, size_t msglen)
{
	const struct key_def *d = &defs[key];
	char list[256] = "";

	for (int i = 0; d->values[i]; i++) {
		if (strcmp(v, d->values[i]) == 0) {
			cfg->v[key].i = i;
			return 0;
		}
		if (i)
			strncat(list, "|", sizeof(list) - strlen(list) - 1);
		strncat(list, d->values[i], sizeof(list) - strlen(list) - 1);
	}
	msgf(msg, msglen, "%s: '%s' is not one of %s", d->name, v, list);
	return -EINVAL;
}

/* Sets one key from text; msg gets "key: why" on error, value unchanged. */
static int set_value(struct cv_config *cfg, enum cv_config_key key,
		     const char *v, char *msg, size_t msglen)
{
	switch (key_types[key]) {
	case CV_CONFIG_STRING:
		return set_string(cfg, key, v, msg, msglen);
	case CV_CONFIG_INT:
	case CV_CONFIG_DURATION_MS:
		return set_ranged(cfg, key, v, msg, msglen);
	case CV_CONFIG_BOOL:
		if (parse_bool(v, &cfg->v[key].b) == 0)
			return 0;
		msgf(msg, msglen, "%s: '%s' is not a boolean (true|false)",
		     defs[key].name, v);
		return -EINVAL;
	case CV_CONFIG_ENUM:
		return set_enum(cfg, key, v, msg, msglen);
	}
	return -EINVAL;
}

int cv_config_create(struct cv_config **out)
{
	struct cv_config *cfg = calloc(1, sizeof(*cfg));
	char msg[256];

	if (!cfg)
		return -ENOMEM;
	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		const char *def =
			defs[k].def ? defs[k].def : web_root_default();
		int ret = set_value(cfg, (enum cv_config_key)k, def, msg,
				    sizeof(msg));

		/* Only allocation can fail: the unit test parses every
		 * default. */
		if (ret < 0) {
			cv_config_destroy(cfg);
			return ret;
		}
	}
	*out = cfg;
	return 0;
}

void cv_config_destroy(struct cv_config *cfg)
{
	if (!cfg)
		return;
	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		if (key_types[k] == CV_CONFIG_STRING)
			free_string((enum cv_config_key)k, cfg->v[k].s);
	}
	free(cfg);
}

const char *cv_config_str(const struct cv_config *cfg,
			  enum cv_config_str_key key)
{
	assert(key_types[key] == CV_CONFIG_STRING);
	return cfg->v[key].s;
}

int64_t cv_config_int(const struct cv_config *cfg, enum cv_config_int_key key)
{
	assert(key_types[key] == CV_CONFIG_INT);
	return cfg->v[key].i;
}

bool cv_config_bool(const struct cv_config *cfg, enum cv_config_bool_key key)
{
	assert(key_types[key] == CV_CONFIG_BOOL);
	return cfg->v[key].b;
}

int64_t cv_config_ms(const struct cv_config *cfg, enum cv_config_ms_key key)
{
	assert(key_types[key] == CV_CONFIG_DURATION_MS);
	return cfg->v[key].i;
}

int cv_config_enum(const struct cv_config *cfg, enum cv_config_enum_key key)
{
	assert(key_types[key] == CV_CONFIG_ENUM);
	return (int)cfg->v[key].i;
}

const char *cv_config_key_name(enum cv_config_key key)
{
	return (unsigned)key < CV_CFGK_COUNT ? defs[key].name : "?";
}

enum cv_config_type cv_config_key_type(enum cv_config_key key)
{
	assert((unsigned)key < CV_CFGK_COUNT);
	return key_types[key];
}

bool cv_config_key_secret(enum cv_config_key key)
{
	return (unsigned)key < CV_CFGK_COUNT && defs[key].secret;
}

int cv_config_find(const char *name, size_t len, enum cv_config_key *out)
{
	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		if (strlen(defs[k].name) == len &&
		    memcmp(defs[k].name, name, len) == 0) {
			*out = (enum cv_config_key)k;
			return 0;
		}
	}
	return -ENOENT;
}

int cv_config_set(struct cv_config *cfg, const char *name, const char *value,
		  char *err, size_t errlen)
{
	enum cv_config_key key;

	if (cv_config_find(name, strlen(name), &key) < 0) {
		msgf(err, errlen, "unknown key '%s'", name);
		return -ENOENT;
	}
	return set_value(cfg, key, value, err, errlen);
}

int cv_config_format(const struct cv_config *cfg, enum cv_config_key key,
		     char *buf, size_t buflen)
{
	const union value *v = &cfg->v[key];

	switch (key_types[key]) {
	case CV_CONFIG_STRING:
		if (defs[key].secret && v->s[0])
			return snprintf(buf, buflen, "<set>");
		return snprintf(buf, buflen,
				strchr(v->s, '"') ? "'%s'" : "\"%s\"", v->s);
	case CV_CONFIG_INT:
	case CV_CONFIG_DURATION_MS:
		return snprintf(buf, buflen, "%" PRId64, v->i);
	case CV_CONFIG_BOOL:
		return snprintf(buf, buflen, "%s", v->b ? "true" : "false");
	case CV_CONFIG_ENUM:
		return snprintf(buf, buflen, "%s", defs[key].values[v->i]);
	}
	return snprintf(buf, buflen, "?");
}

/*
 * Splits one line (NUL-free, no newline) into key and value, both written
 * NUL-terminated into bufs of LINE_MAX_BYTES + 1. Returns 1 for a setting,
 * 0 for a blank or comment line, -EINVAL with msg for bad syntax.
 */
static int split_line(const char *p, size_t len, char *key, char *val,
		      char *msg, size_t msglen)
{
	const char *end = p + len, *eq, *v, *vend;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p == '#')
		return 0;
	eq = memchr(p, '=', (size_t)(end - p));
	if (!eq) {
		msgf(msg, msglen, "expected 'key = value'");
		return -EINVAL;
	}
	const char *kend = eq;
	while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
		kend--;
	memcpy(key, p, (size_t)(kend - p));
	key[kend - p] = '\0';
	v = eq + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if (v < end && (*v == '"' || *v == '\'')) {
		const char *close = memchr(v + 1, *v, (size_t)(end - v - 1));
		const char *rest;

		if (!close) {
			msgf(msg, msglen, "%s: unterminated quote", key);
			return -EINVAL;
		}
		for (rest = close + 1;
		     rest < end && (*rest == ' ' || *rest == '\t'); rest++)
			;
		if (rest < end && *rest != '#') {
			msgf(msg, msglen, "%s: text after the closing quote",
			     key);
			return -EINVAL;
		}
		memcpy(val, v + 1, (size_t)(close - v - 1));
		val[close - v - 1] = '\0';
		return 1;
	}
	/* Unquoted: a '#' at the start or after a blank opens a comment. */
	for (vend = v; vend < end; vend++) {
		if (*vend == '#' &&
		    (vend == v || vend[-1] == ' ' || vend[-1] == '\t'))
			break;
	}
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	memcpy(val, v, (size_t)(vend - v));
	val[vend - v] = '\0';
	return 1;
}

static int load_line(struct cv_config *cfg, const char *p, size_t len,
		     char *msg, size_t msglen)
{
	char key[LINE_MAX_BYTES + 1], val[LINE_MAX_BYTES + 1];
	enum cv_config_key k;
	int ret;

	if (len && p[len - 1] == '\r')
		len--;
	if (len > LINE_MAX_BYTES) {
		msgf(msg, msglen, "line longer than %d bytes", LINE_MAX_BYTES);
		return CV_ETOOBIG;
	}
	if (memchr(p, '\0', len)) {
		msgf(msg, msglen, "NUL byte in line");
		return -EINVAL;
	}
	ret = split_line(p, len, key, val, msg, msglen);
	if (ret <= 0)
		return ret;
	if (cv_config_find(key, strlen(key), &k) < 0) {
		msgf(msg, msglen, "unknown key '%s'", key);
		return -ENOENT;
	}
	return set_value(cfg, k, val, msg, msglen);
}

int cv_config_load_string(struct cv_config *cfg, const char *text, size_t len,
			  const char *origin, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	char msg[512];

	for (unsigned line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int ret = load_line(cfg, p, n, msg, sizeof(msg));

		if (ret < 0) {
			msgf(err, errlen, "%s:%u: %s", origin, line, msg);
			return ret;
		}
		p += n + (nl ? 1 : 0);
	}
	return 0;
}

int cv_config_load_file(struct cv_config *cfg, const char *path, char *err,
			size_t errlen)
{
	FILE *f = fopen(path, "rbe");
	char *buf;
	size_t n;
	int ret;

	if (!f) {
		ret = -errno;
		msgf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	buf = malloc(FILE_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		msgf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	n = fread(buf, 1, FILE_MAX_BYTES + 1, f);
	if (ferror(f)) {
		ret = -EIO;
		msgf(err, errlen, "%s: read error", path);
	} else if (n > FILE_MAX_BYTES) {
		ret = CV_ETOOBIG;
		msgf(err, errlen, "%s: larger than %d bytes", path,
		     FILE_MAX_BYTES);
	} else {
		ret = cv_config_load_string(cfg, buf, n, path, err, errlen);
	}
	/* The file may hold secrets. */
	explicit_bzero(buf, n);
	free(buf);
	fclose(f);
	return ret;
}

static const char *type_hint(enum cv_config_key k, char *buf, size_t len)
{
	switch (key_types[k]) {
	case CV_CONFIG_STRING:
		return defs[k].check == check_levels ? "LIST"
		       : defs[k].check		     ? "ADDRESS"
						     : "TEXT";
	case CV_CONFIG_INT:
		return "N";
	case CV_CONFIG_BOOL:
		return "BOOL";
	case CV_CONFIG_DURATION_MS:
		return "MS";
	case CV_CONFIG_ENUM:
		buf[0] = '\0';
		for (int i = 0; defs[k].values[i]; i++) {
			if (i)
				strncat(buf, "|", len - strlen(buf) - 1);
			strncat(buf, defs[k].values[i], len - strlen(buf) - 1);
		}
		return buf;
	}
	return "?";
}

/* The default as shown to people: "" is spelled out. */
static const char *shown_default(enum cv_config_key k)
{
	if (defs[k].doc_def)
		return defs[k].doc_def;
	return defs[k].def[0] ? defs[k].def : "(empty)";
}

void cv_config_print_help(FILE *out, const char *prog)
{
	char hint[128];

	fprintf(out,
		"Usage: %s [--config FILE] [--KEY=VALUE | --KEY VALUE]...\n\n"
		"  --config FILE  load settings from FILE (flags override it)\n"
		"  --dev          development mode (same as --dev=true)\n"
		"  --help         print this help and exit\n"
		"  --version      print the version and exit\n\n"
		"Settings (also `KEY = VALUE` lines in the config file):\n",
		prog ? prog : "conclave");
	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		enum cv_config_key key = (enum cv_config_key)k;

		fprintf(out, "  --%s=%s  (default: %s", defs[k].name,
			type_hint(key, hint, sizeof(hint)), shown_default(key));
		if (key_types[k] == CV_CONFIG_INT ||
		    key_types[k] == CV_CONFIG_DURATION_MS)
			fprintf(out, "; %" PRId64 "..%" PRId64, defs[k].min,
				defs[k].max);
		fprintf(out, "%s)\n      %s\n",
			defs[k].secret ? "; secret" : "", defs[k].doc);
	}
}

static const char *const type_names[] = {
	[CV_CONFIG_STRING] = "string", [CV_CONFIG_INT] = "int",
	[CV_CONFIG_BOOL] = "bool",     [CV_CONFIG_DURATION_MS] = "duration",
	[CV_CONFIG_ENUM] = "enum",
};

void cv_config_write_docs(FILE *out)
{
	fprintf(out, "| key | type | default | values | description |\n"
		     "|---|---|---|---|---|\n");
	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		enum cv_config_key key = (enum cv_config_key)k;
		const struct key_def *d = &defs[k];

		/* A build-dependent default is prose, not a value. */
		fprintf(out,
			d->doc_def ? "| `%s` | %s | %s | "
				   : "| `%s` | %s | `%s` | ",
			d->name, type_names[key_types[k]], shown_default(key));
		switch (key_types[k]) {
		case CV_CONFIG_INT:
			fprintf(out, "%" PRId64 "..%" PRId64, d->min, d->max);
			break;
		case CV_CONFIG_DURATION_MS:
			fprintf(out, "%" PRId64 "..%" PRId64 " ms", d->min,
				d->max);
			break;
		case CV_CONFIG_BOOL:
			fprintf(out, "true, false");
			break;
		case CV_CONFIG_ENUM:
			for (int i = 0; d->values[i]; i++)
				fprintf(out, "%s%s", i ? ", " : "",
					d->values[i]);
			break;
		case CV_CONFIG_STRING:
			fprintf(out, "%s",
				d->check == check_levels ? "subsystem=level,..."
				: d->check		 ? "IP address"
							 : "text");
			break;
		}
		fprintf(out, " | %s%s |\n", d->doc,
			d->secret ? " Secret: never logged." : "");
	}
}

void cv_config_dump(const struct cv_config *cfg, FILE *out)
{
	char buf[LINE_MAX_BYTES + 8];

	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		cv_config_format(cfg, (enum cv_config_key)k, buf, sizeof(buf));
		fprintf(out, "%s = %s\n", defs[k].name, buf);
	}
}

void cv_config_log(const struct cv_config *cfg)
{
	char buf[LINE_MAX_BYTES + 8];

	for (int k = 0; k < CV_CFGK_COUNT; k++) {
		cv_config_format(cfg, (enum cv_config_key)k, buf, sizeof(buf));
		cv_log(CV_LOG_INFO, CV_LOG_CORE, "config: %s = %s",
		       defs[k].name, buf);
	}
}

static bool is_flag(const char *arg, const char *name)
{
	return strcmp(arg, name) == 0;
}

/* First pass: --help, --version and --config, wherever they are. */
static int pre_scan(struct cv_config *cfg, int argc, char **argv,
		    const char *version, FILE *out, char *err, size_t errlen)
{
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if (is_flag(argv[i], "--help") || is_flag(argv[i], "-h")) {
			cv_config_print_help(out, argv[0]);
			return CV_CONFIG_EXIT;
		}
		if (is_flag(argv[i], "--version")) {
			fprintf(out, "conclave %s\n", version ? version : "?");
			return CV_CONFIG_EXIT;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
		} else if (is_flag(argv[i], "--config")) {
			if (i + 1 >= argc) {
				msgf(err, errlen, "--config needs a FILE");
				return -EINVAL;
			}
			path = argv[++i];
		}
	}
	return path ? cv_config_load_file(cfg, path, err, errlen) : 0;
}

static int apply_flag(struct cv_config *cfg, int argc, char **argv, int *i,
		      char *err, size_t errlen)
{
	const char *arg = argv[*i], *name = arg + 2, *eq, *val;
	enum cv_config_key key;
	size_t nlen;

	if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
		msgf(err, errlen, "unexpected argument '%s' (see --help)", arg);
		return -EINVAL;
	}
	eq = strchr(name, '=');
	nlen = eq ? (size_t)(eq - name) : strlen(name);
	if (cv_config_find(name, nlen, &key) < 0) {
		msgf(err, errlen, "unknown flag --%.*s (see --help)", (int)nlen,
		     name);
		return -ENOENT;
	}
	if (eq)
		val = eq + 1;
	else if (key_types[key] == CV_CONFIG_BOOL)
		val = "true";
	else if (*i + 1 < argc)
		val = argv[++*i];
	else {
		msgf(err, errlen, "--%s needs a value", defs[key].name);
		return -EINVAL;
	}
	return set_value(cfg, key, val, err, errlen);
}

int cv_config_parse_args(struct cv_config *cfg, int argc, char **argv,
			 const char *version, FILE *out, char *err,
			 size_t errlen)
{
	int ret = pre_scan(cfg, argc, argv, version, out, err, errlen);

	if (ret != 0)
		return ret;
	for (int i = 1; i < argc; i++) {
		if (is_flag(argv[i], "--config")) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "--config=", 9) == 0)
			continue;
		ret = apply_flag(cfg, argc, argv, &i, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The perc.* keys that go together (docs/config.md). */
static int validate_perc(const struct cv_config *cfg, char *err, size_t errlen)
{
	bool kd = cfg->v[CV_CFGK_PERC_KD_PORT].i != 0;
	bool cert = cfg->v[CV_CFGK_PERC_CERT_FILE].s[0] != '\0';

	if (cert != (cfg->v[CV_CFGK_PERC_KEY_FILE].s[0] != '\0')) {
		msgf(err, errlen,
		     "perc.cert_file and perc.key_file go together");
		return -EINVAL;
	}
	if (kd && !cfg->v[CV_CFGK_PERC_KD_FINGERPRINT].s[0]) {
		msgf(err, errlen, "perc.kd_port needs perc.kd_fingerprint");
		return -EINVAL;
	}
	if (kd && !cert && !cfg->v[CV_CFGK_DEV].b) {
		msgf(err, errlen,
		     "perc.kd_port needs perc.cert_file and perc.key_file "
		     "(or --dev)");
		return -EINVAL;
	}
	return 0;
}

int cv_config_validate(const struct cv_config *cfg, char *err, size_t errlen)
{
	bool secret = cfg->v[CV_CFGK_TOKEN_SECRET].s[0] != '\0';
	bool secret_file = cfg->v[CV_CFGK_TOKEN_SECRET_FILE].s[0] != '\0';
	int64_t workers = cfg->v[CV_CFGK_NODE_WORKERS].i;

	if (secret && secret_file) {
		msgf(err, errlen,
		     "token.secret and token.secret_file are both set");
		return -EINVAL;
	}
	if (!secret && !secret_file && !cfg->v[CV_CFGK_DEV].b) {
		msgf(err, errlen,
		     "token.secret or token.secret_file is required (or "
		     "--dev)");
		return -EINVAL;
	}
	if (cfg->v[CV_CFGK_MEDIA_PORT_BASE].i + (workers ? workers : 1) - 1 >
	    65535) {
		msgf(err, errlen,
		     "media.port_base + node.workers goes beyond port 65535");
		return -EINVAL;
	}
	if (cfg->v[CV_CFGK_LISTEN_PORT].i == cfg->v[CV_CFGK_ADMIN_PORT].i &&
	    strcmp(cfg->v[CV_CFGK_LISTEN_ADDRESS].s,
		   cfg->v[CV_CFGK_ADMIN_ADDRESS].s) == 0) {
		msgf(err, errlen, "listen and admin use the same address:port");
		return -EINVAL;
	}
	if ((cfg->v[CV_CFGK_DTLS_CERT_FILE].s[0] != '\0') !=
	    (cfg->v[CV_CFGK_DTLS_KEY_FILE].s[0] != '\0')) {
		msgf(err, errlen,
		     "dtls.cert_file and dtls.key_file go together");
		return -EINVAL;
	}
	return validate_perc(cfg, err, errlen);
}
