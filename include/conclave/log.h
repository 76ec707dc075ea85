/*
 * Logging: one line per event, per-subsystem runtime levels, a thread-local
 * context prefix, rate limiting for lines a peer can provoke, and
 * obfuscation of identifiers.
 *
 * Line shapes (one write(2) per line, so threads never interleave; a line
 * is cut to CV_LOG_LINE_MAX bytes):
 *
 *   text: 2026-11-22T03:27:20.123Z info [w=0 room=1a2b.. p=3c4d..] ice: what:
 * why (k=v) json: {"ts":"...","level":"info","subsys":"ice","worker":0,
 *          "room":"...","participant":"...","msg":"what: why (k=v)"}
 *
 * Messages are lower case, `what failed: why (key=value ...)`. Never log
 * keys, tokens, SDP crypto lines or user identities in clear: pass them
 * through cv_log_obfuscate() first.
 *
 * Thread: every function may be called from any thread unless its comment
 * says "startup", which means: before other threads log.
 */
#ifndef CONCLAVE_LOG_H
#define CONCLAVE_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_config;

enum cv_log_level {
	CV_LOG_ERROR,
	CV_LOG_WARN,
	CV_LOG_INFO,
	CV_LOG_DEBUG,
	CV_LOG_TRACE,
};
#define CV_LOG_LEVEL_COUNT 5

enum cv_log_subsys {
	CV_LOG_CORE,
	CV_LOG_ICE,
	CV_LOG_DTLS,
	CV_LOG_SRTP,
	CV_LOG_PERC,
	CV_LOG_SWITCH,
	CV_LOG_MIX,
	CV_LOG_SIP,
	CV_LOG_WS,
	CV_LOG_KMS,
	CV_LOG_NODE,
	CV_LOG_ADMIN,
	CV_LOG_SUBSYS_COUNT,
};

enum cv_log_format {
	CV_LOG_FORMAT_TEXT,
	CV_LOG_FORMAT_JSON,
};

/* Longest line written, newline included (PIPE_BUF: atomic on a pipe). */
#define CV_LOG_LINE_MAX 4096
/* Longest context string kept (room / participant id), without the NUL. */
#define CV_LOG_CONTEXT_MAX 32
/* Default budget of cv_log_ratelimited(): lines per second per call site. */
#define CV_LOG_RATELIMIT_PER_SEC 10

/* "error", "warn", ...; "?" when out of range. */
const char *cv_log_level_name(enum cv_log_level level);
/* "core", "ice", ...; "?" when out of range. */
const char *cv_log_subsys_name(enum cv_log_subsys subsys);

/*
 * Parses a level name (`len` bytes of `s`, no NUL needed). Returns 0 and
 * writes *out, or -EINVAL (nothing written).
 */
int cv_log_level_parse(const char *s, size_t len, enum cv_log_level *out);
/* Parses a subsystem name like cv_log_level_parse(). */
int cv_log_subsys_parse(const char *s, size_t len, enum cv_log_subsys *out);

/*
 * Parses a per-subsystem spec `ice=debug,dtls=trace` (spaces around items
 * allowed, empty string allowed) into levels[] (entries not named are left
 * as they are). Returns 0, or -EINVAL with levels[] untouched.
 */
int cv_log_levels_parse(const char *spec,
			enum cv_log_level levels[CV_LOG_SUBSYS_COUNT]);

/* Runtime level of one subsystem (atomic; default info). */
void cv_log_set_level(enum cv_log_subsys subsys, enum cv_log_level level);
/* Sets every subsystem's level. */
void cv_log_set_level_all(enum cv_log_level level);
enum cv_log_level cv_log_get_level(enum cv_log_subsys subsys);
/* Applies a spec as cv_log_levels_parse() reads it. 0 or -EINVAL. */
int cv_log_set_levels(const char *spec);

/* True when a line of `level` for `subsys` would be written. Cheap. */
bool cv_log_enabled(enum cv_log_level level, enum cv_log_subsys subsys);

/* Text (default) or JSON lines. */
void cv_log_set_format(enum cv_log_format format);

/*
 * Sends lines to `path` (opened append, created 0640) instead of stderr.
 * Calling it again reopens atomically (log rotation on SIGHUP). NULL or ""
 * goes back to stderr. Returns 0 or a negative errno (output unchanged).
 */
int cv_log_open_file(const char *path);

/*
 * Capture hook (tests, admin ring buffer): when set, every line goes to
 * fn instead of the file. `line` is borrowed for the call, `len` bytes,
 * newline included, NUL-terminated. fn runs on the logging thread under
 * an internal lock: it must not log. NULL restores file output.
 */
typedef void (*cv_log_sink_fn)(void *arg, enum cv_log_level level,
			       enum cv_log_subsys subsys, const char *line,
			       size_t len);
void cv_log_set_sink(cv_log_sink_fn fn, void *arg);

/*
 * Thread-local context printed with every line of the calling thread:
 * worker index (< 0: none), room and participant ids (already obfuscated;
 * NULL: none; copied, cut to CV_LOG_CONTEXT_MAX).
 */
void cv_log_set_context(int worker, const char *room, const char *participant);
/* Forgets the calling thread's context. */
void cv_log_clear_context(void);

/*
 * Writes one line (unconditionally: the cv_log() macro checks the level
 * first so that disabled lines cost neither formatting nor argument
 * evaluation). No trailing newline in fmt.
 */
void cv_log_write(enum cv_log_level level, enum cv_log_subsys subsys,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cv_log_vwrite(enum cv_log_level level, enum cv_log_subsys subsys,
		   const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define cv_log(level, subsys, ...)                                             \
	do {                                                                   \
		if (cv_log_enabled((level), (subsys)))                         \
			cv_log_write((level), (subsys), __VA_ARGS__);          \
	} while (0)

/*
 * Rate limiting, one state per call site (a static in the macro). At most
 * `per_sec` lines per one-second window; the first line after a window in
 * which lines were dropped is preceded by "suppressed K lines".
 */
struct cv_log_ratelimit {
	_Atomic uint64_t window_ms;
	_Atomic uint32_t count;
	_Atomic uint32_t suppressed;
};

/*
 * The decision alone, with the caller's clock (testable): true when a line
 * may be written now. *suppressed_out gets the number of lines dropped in
 * the window that just closed (0 if none or if the window is still open).
 */
bool cv_log_ratelimit_check(struct cv_log_ratelimit *rl, uint32_t per_sec,
			    uint64_t now_ms, uint32_t *suppressed_out);

/* cv_log_write() through a rate limit (monotonic clock). */
void cv_log_ratelimited_write(struct cv_log_ratelimit *rl, uint32_t per_sec,
			      enum cv_log_level level,
			      enum cv_log_subsys subsys, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#define cv_log_ratelimited_n(per_sec, level, subsys, ...)                      \
	do {                                                                   \
		static struct cv_log_ratelimit cv_log_rl_;                     \
		if (cv_log_enabled((level), (subsys)))                         \
			cv_log_ratelimited_write(&cv_log_rl_, (per_sec),       \
						 (level), (subsys),            \
						 __VA_ARGS__);                 \
	} while (0)

#define cv_log_ratelimited(level, subsys, ...)                                 \
	cv_log_ratelimited_n(CV_LOG_RATELIMIT_PER_SEC, level, subsys,          \
			     __VA_ARGS__)

/*
 * Obfuscates an identifier (token subject, room name, address) for logs:
 * the first 8 bytes of HMAC-SHA256(key, in) as 16 lower-case hex digits
 * and a NUL in out. The key is random per process unless set with
 * cv_log_set_obfuscation_key(). `in` borrowed, `len` bytes (may be 0).
 */
void cv_log_obfuscate(const char *in, size_t len, char out[17]);

/*
 * Sets the obfuscation key so that ids correlate across nodes (`len`
 * bytes, copied; len 0 goes back to a random key, kept if the key was
 * already random). Startup.
 */
void cv_log_set_obfuscation_key(const void *key, size_t len);

/*
 * Applies log.level, log.levels, log.format, log.file and
 * log.obfuscation_key from a loaded configuration. Startup (and SIGHUP).
 * Returns 0 or a negative errno (levels or file); on error the settings
 * already applied stay.
 */
int cv_log_configure(const struct cv_config *cfg);

#endif
