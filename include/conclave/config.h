/*
 * The node's configuration: one table of keys (name, type, default, range,
 * one line of doc), loaded from defaults, then a file (`--config FILE`),
 * then command-line flags (`--key=value`), in that order of precedence.
 *
 * Values are read with typed getters. Each type has its own key enum, so
 * passing a string key to cv_config_int() is a compile-time error under
 * -Wextra -Werror (-Wenum-conversion), and a getter is an array read.
 *
 * A struct cv_config is built on one thread at startup, then only read:
 * any number of threads may call the getters concurrently.
 */
#ifndef CONCLAVE_CONFIG_H
#define CONCLAVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The list of keys: S string, I integer, B boolean, D duration in ms,
 * E enumeration (value is the index of the text in the table's list).
 * Docs, defaults and ranges live in config.c's table.
 */
#define CV_CONFIG_KEYS(S, I, B, D, E)                                          \
	I(NODE_WORKERS)                                                        \
	S(LISTEN_ADDRESS)                                                      \
	I(LISTEN_PORT)                                                         \
	S(MEDIA_ADDRESS)                                                       \
	I(MEDIA_PORT_BASE)                                                     \
	S(MEDIA_ANNOUNCE_ADDRESS)                                              \
	S(ADMIN_ADDRESS)                                                       \
	I(ADMIN_PORT)                                                          \
	S(ADMIN_TOKEN)                                                         \
	S(WEB_ROOT)                                                            \
	S(DTLS_CERT_FILE)                                                      \
	S(DTLS_KEY_FILE)                                                       \
	S(TOKEN_SECRET)                                                        \
	S(TOKEN_SECRET_FILE)                                                   \
	D(TOKEN_LEEWAY_MS)                                                     \
	E(LOG_LEVEL)                                                           \
	S(LOG_LEVELS)                                                          \
	E(LOG_FORMAT)                                                          \
	S(LOG_FILE)                                                            \
	S(LOG_OBFUSCATION_KEY)                                                 \
	I(WS_MAX_CONNECTIONS)                                                  \
	D(WS_JOIN_TIMEOUT_MS)                                                  \
	I(WS_MAX_MESSAGE_BYTES)                                                \
	I(WS_RATE_PER_SEC)                                                     \
	I(WS_RATE_BURST)                                                       \
	I(WS_MAX_QUEUED_BYTES)                                                 \
	I(ROOM_MAX_ROOMS)                                                      \
	I(ROOM_MAX_PARTICIPANTS)                                               \
	D(DRAIN_TIMEOUT_MS)                                                    \
	D(ICE_CONSENT_TIMEOUT_MS)                                              \
	I(POOL_PACKETS_PER_WORKER)                                             \
	I(SWITCH_NACK_CACHE_PACKETS)                                           \
	D(SWITCH_PLI_MIN_INTERVAL_MS)                                          \
	S(PERC_KD_ADDRESS)                                                     \
	I(PERC_KD_PORT)                                                        \
	S(PERC_KD_FINGERPRINT)                                                 \
	S(PERC_CERT_FILE)                                                      \
	S(PERC_KEY_FILE)                                                       \
	S(PERC_FINGERPRINT_FILE)                                               \
	S(PERC_KMS_ADDRESS)                                                    \
	I(PERC_KMS_PORT)                                                       \
	S(PERC_FAULT)                                                          \
	B(DEV)

#define CV_CONFIG_KEY_ALL_(id) CV_CFGK_##id,
#define CV_CONFIG_KEY_SKIP_(id)
#define CV_CONFIG_KEY_TYPED_(id) CV_CFG_##id = CV_CFGK_##id,

/* Every key, in table order: for iteration and lookup by name. */
enum cv_config_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_ALL_, CV_CONFIG_KEY_ALL_,
		       CV_CONFIG_KEY_ALL_, CV_CONFIG_KEY_ALL_,
		       CV_CONFIG_KEY_ALL_) CV_CFGK_COUNT
};

/* Keys by type: CV_CFG_<NAME> for the getters. */
enum cv_config_str_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_TYPED_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_) CV_CFG_STR_END_
};
enum cv_config_int_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_TYPED_,
		       CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_) CV_CFG_INT_END_
};
enum cv_config_bool_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_TYPED_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_) CV_CFG_BOOL_END_
};
enum cv_config_ms_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_TYPED_,
		       CV_CONFIG_KEY_SKIP_) CV_CFG_MS_END_
};
enum cv_config_enum_key {
	CV_CONFIG_KEYS(CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_SKIP_, CV_CONFIG_KEY_SKIP_,
		       CV_CONFIG_KEY_TYPED_) CV_CFG_ENUM_END_
};

enum cv_config_type {
	CV_CONFIG_STRING,
	CV_CONFIG_INT,
	CV_CONFIG_BOOL,
	CV_CONFIG_DURATION_MS,
	CV_CONFIG_ENUM,
};

/* Values of log.format: same order as enum cv_log_format. log.level's
 * values follow enum cv_log_level. */

/* Returned by cv_config_parse_args() after --help or --version. */
#define CV_CONFIG_EXIT 1

struct cv_config;

/*
 * Creates a configuration holding every key's default. *out is written on
 * success only. Returns 0 or -ENOMEM. Thread: any.
 */
int cv_config_create(struct cv_config **out);
/* Frees cfg and its strings (secrets wiped). NULL is fine. */
void cv_config_destroy(struct cv_config *cfg);

/* Typed getters. Strings are borrowed from cfg (never NULL; "" = unset). */
const char *cv_config_str(const struct cv_config *cfg,
			  enum cv_config_str_key key);
int64_t cv_config_int(const struct cv_config *cfg, enum cv_config_int_key key);
bool cv_config_bool(const struct cv_config *cfg, enum cv_config_bool_key key);
int64_t cv_config_ms(const struct cv_config *cfg, enum cv_config_ms_key key);
int cv_config_enum(const struct cv_config *cfg, enum cv_config_enum_key key);

/* Table access: name ("listen.port"), type, whether it is a secret. */
const char *cv_config_key_name(enum cv_config_key key);
enum cv_config_type cv_config_key_type(enum cv_config_key key);
bool cv_config_key_secret(enum cv_config_key key);
/* Finds a key by its dotted name (`len` bytes). 0 or -ENOENT. */
int cv_config_find(const char *name, size_t len, enum cv_config_key *out);

/*
 * Sets a key from its text form (as in a file: "8080", "30s", "true",
 * "json"). On error returns -ENOENT (unknown key) / -EINVAL (bad value) /
 * -ENOMEM, writes a message to err (errlen bytes, may be 0) and leaves the
 * key unchanged.
 */
int cv_config_set(struct cv_config *cfg, const char *name, const char *value,
		  char *err, size_t errlen);

/*
 * Writes a key's value as text into buf (cut to buflen, NUL-terminated):
 * secrets that are set read "<set>". Returns the full length (snprintf).
 */
int cv_config_format(const struct cv_config *cfg, enum cv_config_key key,
		     char *buf, size_t buflen);

/*
 * Loads `key = value` lines: `#` comments, blank lines, values optionally
 * in "double" or 'single' quotes (quoted text is literal; unquoted, a `#`
 * after a blank starts a comment). `origin` names the text in messages.
 * Errors (-ENOENT unknown key, -EINVAL bad syntax or value, CV_ETOOBIG line
 * over 4096 bytes) write "origin:line: message" to err; keys before the
 * bad line stay set.
 */
int cv_config_load_string(struct cv_config *cfg, const char *text, size_t len,
			  const char *origin, char *err, size_t errlen);
/* Reads `path` (at most 1 MiB) and loads it as above. Thread: startup. */
int cv_config_load_file(struct cv_config *cfg, const char *path, char *err,
			size_t errlen);

/*
 * Applies the command line (argv[0] is the program name, borrowed):
 * `--config FILE` is loaded first wherever it appears, then every
 * `--key=value` / `--key value` in order; a boolean key alone (`--dev`)
 * means true. `--help` / `--version` print to `out` and return
 * CV_CONFIG_EXIT. Returns 0 (run), CV_CONFIG_EXIT, or a negative errno
 * with a message in err. Thread: startup.
 */
int cv_config_parse_args(struct cv_config *cfg, int argc, char **argv,
			 const char *version, FILE *out, char *err,
			 size_t errlen);

/*
 * Checks what one key cannot check alone (a token secret unless dev; not
 * both token.secret and token.secret_file; port ranges). 0 or -EINVAL with
 * a message.
 */
int cv_config_validate(const struct cv_config *cfg, char *err, size_t errlen);

/* Prints the --help text (every flag, its default and doc) to out. */
void cv_config_print_help(FILE *out, const char *prog);

/* Writes the Markdown table of docs/config.md to out. */
void cv_config_write_docs(FILE *out);

/* Writes `key = value` for every key (secrets as "<set>") to out. */
void cv_config_dump(const struct cv_config *cfg, FILE *out);
/* The same through cv_log(info, core), one line per key. */
void cv_config_log(const struct cv_config *cfg);

#endif
