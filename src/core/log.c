/*
 * Logging. A line is assembled in a stack buffer and leaves in one write(2)
 * so that concurrent threads never interleave; nothing here allocates.
 * Identifiers are obfuscated with HMAC-SHA256 from OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "conclave/config.h"
#include "conclave/log.h"

static const char *const level_names[CV_LOG_LEVEL_COUNT] = {
	"error", "warn", "info", "debug", "trace",
};

static const char *const subsys_names[CV_LOG_SUBSYS_COUNT] = {
	[CV_LOG_CORE] = "core", [CV_LOG_ICE] = "ice",
	[CV_LOG_DTLS] = "dtls", [CV_LOG_SRTP] = "srtp",
	[CV_LOG_PERC] = "perc", [CV_LOG_SWITCH] = "switch",
	[CV_LOG_MIX] = "mix",	[CV_LOG_SIP] = "sip",
	[CV_LOG_WS] = "ws",	[CV_LOG_KMS] = "kms",
	[CV_LOG_NODE] = "node", [CV_LOG_ADMIN] = "admin",
};

static _Atomic unsigned char levels[CV_LOG_SUBSYS_COUNT] = {
	CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO,
	CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO,
	CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO, CV_LOG_INFO,
};
_Static_assert(CV_LOG_SUBSYS_COUNT == 12, "levels[] initializer");

static _Atomic int log_format = CV_LOG_FORMAT_TEXT;
static _Atomic int log_fd = STDERR_FILENO;

/* Guards owned_fd (the file we opened; reopened in place with dup3). */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static int owned_fd = -1;

/* Guards sink_fn and sink_arg; sink_on lets the common path skip it. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool sink_on;
static cv_log_sink_fn sink_fn;
static void *sink_arg;

struct log_context {
	bool set;
	int worker;
	char room[CV_LOG_CONTEXT_MAX + 1];
	char participant[CV_LOG_CONTEXT_MAX + 1];
};
static _Thread_local struct log_context tls_ctx;

const char *cv_log_level_name(enum cv_log_level level)
{
	if ((unsigned)level >= CV_LOG_LEVEL_COUNT)
		return "?";
	return level_names[level];
}

const char *cv_log_subsys_name(enum cv_log_subsys subsys)
{
	if ((unsigned)subsys >= CV_LOG_SUBSYS_COUNT)
		return "?";
	return subsys_names[subsys];
}

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	}
	return -1;
}

int cv_log_level_parse(const char *s, size_t len, enum cv_log_level *out)
{
	int i = find_name(level_names, CV_LOG_LEVEL_COUNT, s, len);

	if (i < 0)
		return -EINVAL;
	*out = (enum cv_log_level)i;
	return 0;
}

int cv_log_subsys_parse(const char *s, size_t len, enum cv_log_subsys *out)
{
	int i = find_name(subsys_names, CV_LOG_SUBSYS_COUNT, s, len);

	if (i < 0)
		return -EINVAL;
	*out = (enum cv_log_subsys)i;
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims blanks around [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
	while (*len && is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_blank((*s)[*len - 1]))
		(*len)--;
}

static int parse_level_item(const char *item, size_t len,
			    enum cv_log_level out[CV_LOG_SUBSYS_COUNT])
{
	const char *eq = memchr(item, '=', len);
	enum cv_log_subsys subsys;
	enum cv_log_level level;

	if (!eq)
		return -EINVAL;
	const char *name = item, *val = eq + 1;
	size_t nlen = (size_t)(eq - item), vlen = len - nlen - 1;

	trim(&name, &nlen);
	trim(&val, &vlen);
	if (cv_log_subsys_parse(name, nlen, &subsys) < 0 ||
	    cv_log_level_parse(val, vlen, &level) < 0)
		return -EINVAL;
	out[subsys] = level;
	return 0;
}

int cv_log_levels_parse(const char *spec,
			enum cv_log_level out[CV_LOG_SUBSYS_COUNT])
{
	enum cv_log_level tmp[CV_LOG_SUBSYS_COUNT];
	const char *p = spec;

	memcpy(tmp, out, sizeof(tmp));
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = p;

		trim(&item, &len);
		/* An empty spec is fine, an empty item between commas not. */
		if (len == 0 && (comma || p != spec))
			return -EINVAL;
		if (len && parse_level_item(item, len, tmp) < 0)
			return -EINVAL;
		if (!comma)
			break;
		p = comma + 1;
	}
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

void cv_log_set_level(enum cv_log_subsys subsys, enum cv_log_level level)
{
	if ((unsigned)subsys < CV_LOG_SUBSYS_COUNT &&
	    (unsigned)level < CV_LOG_LEVEL_COUNT)
		atomic_store_explicit(&levels[subsys], (unsigned char)level,
				      memory_order_relaxed);
}

void cv_log_set_level_all(enum cv_log_level level)
{
	for (int i = 0; i < CV_LOG_SUBSYS_COUNT; i++)
		cv_log_set_level((enum cv_log_subsys)i, level);
}

enum cv_log_level cv_log_get_level(enum cv_log_subsys subsys)
{
	if ((unsigned)subsys >= CV_LOG_SUBSYS_COUNT)
		return CV_LOG_ERROR;
	return (enum cv_log_level)atomic_load_explicit(&levels[subsys],
						       memory_order_relaxed);
}

int cv_log_set_levels(const char *spec)
{
	enum cv_log_level tmp[CV_LOG_SUBSYS_COUNT];

	for (int i = 0; i < CV_LOG_SUBSYS_COUNT; i++)
		tmp[i] = cv_log_get_level((enum cv_log_subsys)i);
	if (cv_log_levels_parse(spec, tmp) < 0)
		return -EINVAL;
	for (int i = 0; i < CV_LOG_SUBSYS_COUNT; i++)
		cv_log_set_level((enum cv_log_subsys)i, tmp[i]);
	return 0;
}

bool cv_log_enabled(enum cv_log_level level, enum cv_log_subsys subsys)
{
	if ((unsigned)subsys >= CV_LOG_SUBSYS_COUNT)
		return false;
	return (unsigned)level <=
	       atomic_load_explicit(&levels[subsys], memory_order_relaxed);
}

void cv_log_set_format(enum cv_log_format format)
{
	atomic_store(&log_format, (int)format);
}

int cv_log_open_file(const char *path)
{
	int fd, ret = 0;

	pthread_mutex_lock(&file_lock);
	if (!path || !*path) {
		/* owned_fd stays open: a thread may still be writing to it. */
		atomic_store(&log_fd, STDERR_FILENO);
		goto unlock;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		ret = -errno;
		goto unlock;
	}
	if (owned_fd < 0) {
		owned_fd = fd;
	} else {
		/* Same descriptor number, new file: writers never see a
		 * closed or reused fd. */
		if (dup3(fd, owned_fd, O_CLOEXEC) < 0)
			ret = -errno;
		close(fd);
		if (ret < 0)
			goto unlock;
	}
	atomic_store(&log_fd, owned_fd);
unlock:
	pthread_mutex_unlock(&file_lock);
	return ret;
}

void cv_log_set_sink(cv_log_sink_fn fn, void *arg)
{
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_arg = arg;
	atomic_store(&sink_on, fn != NULL);
	pthread_mutex_unlock(&sink_lock);
}

static void copy_ctx(char *dst, const char *src)
{
	size_t n = 0;

	if (src) {
		n = strnlen(src, CV_LOG_CONTEXT_MAX);
		memcpy(dst, src, n);
	}
	dst[n] = '\0';
}

void cv_log_set_context(int worker, const char *room, const char *participant)
{
	tls_ctx.set = true;
	tls_ctx.worker = worker;
	copy_ctx(tls_ctx.room, room);
	copy_ctx(tls_ctx.participant, participant);
}

void cv_log_clear_context(void)
{
	memset(&tls_ctx, 0, sizeof(tls_ctx));
}

/* A bounded line under construction; `len` never exceeds `cap`. */
struct line {
	char *buf;
	size_t len, cap;
};

static void put_mem(struct line *l, const char *s, size_t n)
{
	if (n > l->cap - l->len)
		n = l->cap - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_str(struct line *l, const char *s)
{
	put_mem(l, s, strlen(s));
}

static void put_fmt(struct line *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void put_fmt(struct line *l, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put_mem(l, tmp,
			(size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Text: control characters (a peer's newline, escape codes) become '?'
 * so that one event stays one line. */
static void put_text_safe(struct line *l, const char *s)
{
	for (; *s && l->len < l->cap; s++) {
		unsigned char c = (unsigned char)*s;

		l->buf[l->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
}

/* JSON string body (RFC 8259 section 7); bytes >= 0x80 as \u00XX so the
 * output is valid whatever the input. */
static void put_json_escaped(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[6];

		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			put_mem(l, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			put_mem(l, e, 6);
		} else {
			put_mem(l, (const char *)&c, 1);
		}
		if (l->len == l->cap)
			break;
	}
}

static void format_time(char out[32])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void build_text(struct line *l, enum cv_log_level level,
		       enum cv_log_subsys subsys, const char *ts,
		       const char *msg)
{
	const struct log_context *c = &tls_ctx;

	put_str(l, ts);
	put_str(l, " ");
	put_str(l, cv_log_level_name(level));
	if (c->set && (c->worker >= 0 || c->room[0] || c->participant[0])) {
		const char *sep = " [";

		if (c->worker >= 0) {
			put_fmt(l, " [w=%d", c->worker);
			sep = " ";
		}
		if (c->room[0]) {
			put_str(l, sep);
			put_str(l, "room=");
			put_text_safe(l, c->room);
			sep = " ";
		}
		if (c->participant[0]) {
			put_str(l, sep);
			put_str(l, "p=");
			put_text_safe(l, c->participant);
		}
		put_str(l, "]");
	}
	put_str(l, " ");
	put_str(l, cv_log_subsys_name(subsys));
	put_str(l, ": ");
	put_text_safe(l, msg);
}

static void build_json(struct line *l, enum cv_log_level level,
		       enum cv_log_subsys subsys, const char *ts,
		       const char *msg)
{
	const struct log_context *c = &tls_ctx;

	put_str(l, "{\"ts\":\"");
	put_str(l, ts);
	put_str(l, "\",\"level\":\"");
	put_str(l, cv_log_level_name(level));
	put_str(l, "\",\"subsys\":\"");
	put_str(l, cv_log_subsys_name(subsys));
	put_str(l, "\"");
	if (c->set && c->worker >= 0)
		put_fmt(l, ",\"worker\":%d", c->worker);
	if (c->set && c->room[0]) {
		put_str(l, ",\"room\":\"");
		put_json_escaped(l, c->room);
		put_str(l, "\"");
	}
	if (c->set && c->participant[0]) {
		put_str(l, ",\"participant\":\"");
		put_json_escaped(l, c->participant);
		put_str(l, "\"");
	}
	put_str(l, ",\"msg\":\"");
	put_json_escaped(l, msg);
	/* Room for the closing `"}` is reserved by the caller. */
	l->cap += 2;
	put_str(l, "\"}");
}

static void emit(enum cv_log_level level, enum cv_log_subsys subsys,
		 const char *line, size_t len)
{
	if (atomic_load_explicit(&sink_on, memory_order_acquire)) {
		bool done = false;

		pthread_mutex_lock(&sink_lock);
		if (sink_fn) {
			sink_fn(sink_arg, level, subsys, line, len);
			done = true;
		}
		pthread_mutex_unlock(&sink_lock);
		if (done)
			return;
	}
	int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);

	while (len) {
		ssize_t n = write(fd, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report it */
		line += n;
		len -= (size_t)n;
	}
}

void cv_log_vwrite(enum cv_log_level level, enum cv_log_subsys subsys,
		   const char *fmt, va_list ap)
{
	char msg[CV_LOG_LINE_MAX];
	char buf[CV_LOG_LINE_MAX];
	char ts[32];
	int err = errno;
	/* Reserve 3 bytes: `"}` for JSON and the newline, plus the NUL. */
	struct line l = {.buf = buf, .len = 0, .cap = sizeof(buf) - 4};

	vsnprintf(msg, sizeof(msg), fmt, ap);
	format_time(ts);
	if (atomic_load_explicit(&log_format, memory_order_relaxed) ==
	    CV_LOG_FORMAT_JSON)
		build_json(&l, level, subsys, ts, msg);
	else
		build_text(&l, level, subsys, ts, msg);
	buf[l.len++] = '\n';
	buf[l.len] = '\0';
	emit(level, subsys, buf, l.len);
	errno = err; /* callers log errno-based failures after the fact */
}

void cv_log_write(enum cv_log_level level, enum cv_log_subsys subsys,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cv_log_vwrite(level, subsys, fmt, ap);
	va_end(ap);
}

bool cv_log_ratelimit_check(struct cv_log_ratelimit *rl, uint32_t per_sec,
			    uint64_t now_ms, uint32_t *suppressed_out)
{
	uint64_t start =
		atomic_load_explicit(&rl->window_ms, memory_order_relaxed);

	*suppressed_out = 0;
	if (now_ms - start >= 1000 || now_ms < start) {
		/* One thread wins the new window and reports the old one. */
		if (atomic_compare_exchange_strong(&rl->window_ms, &start,
						   now_ms)) {
			atomic_store(&rl->count, 0);
			*suppressed_out = atomic_exchange(&rl->suppressed, 0);
		}
	}
	if (atomic_fetch_add_explicit(&rl->count, 1, memory_order_relaxed) <
	    per_sec)
		return true;
	atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
	return false;
}

void cv_log_ratelimited_write(struct cv_log_ratelimit *rl, uint32_t per_sec,
			      enum cv_log_level level,
			      enum cv_log_subsys subsys, const char *fmt, ...)
{
	struct timespec ts;
	uint32_t suppressed;
	va_list ap;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ok = cv_log_ratelimit_check(rl, per_sec,
				    (uint64_t)ts.tv_sec * 1000 +
					    (uint64_t)ts.tv_nsec / 1000000,
				    &suppressed);
	if (suppressed)
		cv_log_write(level, subsys, "log: suppressed %u lines",
			     suppressed);
	if (!ok)
		return;
	va_start(ap, fmt);
	cv_log_vwrite(level, subsys, fmt, ap);
	va_end(ap);
}

/* The obfuscation key: HMAC-SHA256 (OpenSSL) over the identifier. */
static uint8_t obf_key[64];
static size_t obf_key_len;
static pthread_once_t obf_once = PTHREAD_ONCE_INIT;
static bool obf_key_fixed;

static void random_key(void)
{
	size_t got = 0;

	memset(obf_key, 0, sizeof(obf_key));
	while (got < 32) {
		ssize_t n = getrandom(obf_key + got, 32 - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* still a per-process value: see below */
		got += (size_t)n;
	}
	if (got < 32) {
		/* No entropy source: never fall back to a constant key. */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(obf_key, &ts, sizeof(ts));
		pid_t pid = getpid();
		memcpy(obf_key + sizeof(ts), &pid, sizeof(pid));
	}
	obf_key_len = 32;
}

static void obf_init(void)
{
	if (!obf_key_fixed)
		random_key();
}

void cv_log_set_obfuscation_key(const void *key, size_t len)
{
	pthread_once(&obf_once, obf_init);
	if (len == 0) {
		/* Keep a random key across reloads: ids stay stable. */
		if (obf_key_fixed)
			random_key();
		obf_key_fixed = false;
		return;
	}
	memset(obf_key, 0, sizeof(obf_key));
	if (len > 64) {
		SHA256(key, len, obf_key);
		obf_key_len = 32;
	} else {
		memcpy(obf_key, key, len);
		obf_key_len = len;
	}
	obf_key_fixed = true;
}

void cv_log_obfuscate(const char *in, size_t len, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	pthread_once(&obf_once, obf_init);
	HMAC(EVP_sha256(), obf_key, (int)obf_key_len, (const uint8_t *)in, len,
	     mac, &mac_len);
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[16] = '\0';
}

int cv_log_configure(const struct cv_config *cfg)
{
	const char *key = cv_config_str(cfg, CV_CFG_LOG_OBFUSCATION_KEY);
	int ret;

	cv_log_set_level_all(
		(enum cv_log_level)cv_config_enum(cfg, CV_CFG_LOG_LEVEL));
	ret = cv_log_set_levels(cv_config_str(cfg, CV_CFG_LOG_LEVELS));
	if (ret < 0)
		return ret;
	cv_log_set_format(
		(enum cv_log_format)cv_config_enum(cfg, CV_CFG_LOG_FORMAT));
	cv_log_set_obfuscation_key(key, strlen(key));
	return cv_log_open_file(cv_config_str(cfg, CV_CFG_LOG_FILE));
}
