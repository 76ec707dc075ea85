/*
 * conclave-kms configuration: its own key table (the node's cv_config
 * holds the node's keys only), in the same shape as the node's: defaults,
 * then a file (`--config FILE`, `key = value` lines), then `--key=value`
 * flags, in that order of precedence.
 *
 * Built on one thread at startup, then only read.
 */
#ifndef CONCLAVE_KMS_CONFIG_H
#define CONCLAVE_KMS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cv_kms_cfg {
	CV_KMS_CFG_NAME,
	CV_KMS_CFG_DATA_DIR,
	CV_KMS_CFG_DATABASE,
	CV_KMS_CFG_MASTER_KEY_FILE,
	CV_KMS_CFG_CERT_FILE,
	CV_KMS_CFG_KEY_FILE,
	CV_KMS_CFG_KEY_BYTES,
	CV_KMS_CFG_ADMIN_ADDRESS,
	CV_KMS_CFG_ADMIN_PORT,
	CV_KMS_CFG_ADMIN_TOKEN,
	CV_KMS_CFG_ADMIN_TOKEN_FILE,
	CV_KMS_CFG_CHANNEL_ADDRESS,
	CV_KMS_CFG_CHANNEL_PORT,
	CV_KMS_CFG_CHANNEL_TOKEN_SECRET_FILE,
	CV_KMS_CFG_CHANNEL_TOKEN_ISSUER,
	CV_KMS_CFG_CHANNEL_TOKEN_AUDIENCE,
	CV_KMS_CFG_KD_ADDRESS,
	CV_KMS_CFG_KD_PORT,
	CV_KMS_CFG_KD_NODE_FINGERPRINTS,
	CV_KMS_CFG_LOG_LEVEL,
	CV_KMS_CFG_LOG_FILE,
	CV_KMS_CFG_LOG_OBFUSCATION_KEY,
	CV_KMS_CFG_COUNT,
};

/* Returned by cv_kms_config_parse_args() after --help or --version. */
#define CV_KMS_CONFIG_EXIT 1

struct cv_kms_config {
	char *values[CV_KMS_CFG_COUNT]; /* owned; secrets wiped on fini */
};

/* Fills every key with its default. 0 or -ENOMEM (then fini is safe). */
int cv_kms_config_init(struct cv_kms_config *c);
/* Frees the values, wiping secret ones. */
void cv_kms_config_fini(struct cv_kms_config *c);

/* The value (borrowed from c, never NULL; "" = unset). */
const char *cv_kms_config_str(const struct cv_kms_config *c,
			      enum cv_kms_cfg key);
/* An integer key's value (checked against its range when it was set); an
 * optional integer key that is unset ("") reads -1. */
int64_t cv_kms_config_int(const struct cv_kms_config *c, enum cv_kms_cfg key);
/* The dotted name ("admin.port"). */
const char *cv_kms_config_name(enum cv_kms_cfg key);

/*
 * Sets a key by name from its text form. -ENOENT (unknown key), -EINVAL
 * (bad value) or -ENOMEM, with a message in err (errlen bytes); the key is
 * unchanged on error.
 */
int cv_kms_config_set(struct cv_kms_config *c, const char *name,
		      const char *value, char *err, size_t errlen);

/*
 * Loads `key = value` lines (`#` comments, blank lines, optional "double"
 * quotes) from text (len bytes); `origin` names it in messages
 * ("origin:line: message"). Errors as cv_kms_config_set().
 */
int cv_kms_config_load_string(struct cv_kms_config *c, const char *text,
			      size_t len, const char *origin, char *err,
			      size_t errlen);
/* Reads `path` (at most 64 KiB) and loads it as above. */
int cv_kms_config_load_file(struct cv_kms_config *c, const char *path,
			    char *err, size_t errlen);

/*
 * `--config FILE` first, then `--key=value` / `--key value` in order;
 * `--help` and `--version` print to out and return CV_KMS_CONFIG_EXIT.
 * 0, CV_KMS_CONFIG_EXIT or a negative errno with a message in err.
 */
int cv_kms_config_parse_args(struct cv_kms_config *c, int argc, char **argv,
			     const char *version, FILE *out, char *err,
			     size_t errlen);

/* Prints every key with its default and doc. */
void cv_kms_config_print_help(FILE *out, const char *prog);

/*
 * Splits kd.node_fingerprints ("sha-256 AB:..., sha-256 CD:...") into its
 * items, blanks around each one removed: copies the value into buf (cap
 * bytes; the items point into it) and fills items[0..max), *n their count
 * (0 when the key is unset). The value was checked when it was set (every
 * item a fingerprint, at most CV_KD_MAX_ALLOWED). 0 or -ENOSPC (buf or
 * items too small).
 */
int cv_kms_config_fingerprints(const struct cv_kms_config *c, char *buf,
			       size_t cap, const char **items, size_t max,
			       size_t *n);

/*
 * Paths derived from kms.data_dir when a key is empty: the SQLite file,
 * master key, certificate and its private key. Writes into buf (len bytes).
 * 0 or -ENAMETOOLONG.
 */
int cv_kms_config_path(const struct cv_kms_config *c, enum cv_kms_cfg key,
		       char *buf, size_t len);

#endif
