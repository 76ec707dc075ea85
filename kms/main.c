/*
 * conclave-kms: the security realm's daemon. It loads its configuration,
 * master key and certificate, opens (and migrates) its database, serves
 * the admin API and the client-KMS channel (kms/channel.h) until SIGTERM
 * or SIGINT. SIGHUP reopens the log file.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/admin.h"
#include "kms/channel.h"
#include "kms/config.h"
#include "kms/files.h"
#include "kms/store.h"

#define PATH_BYTES	 4096
#define TOKEN_SECRET_MAX 512

/*
 * The channel's settings. They belong in kms/config.c's key table; until
 * they are there, main() takes them as `--channel.KEY=VALUE` (or
 * `--channel.KEY VALUE`) flags and removes them before the config parser
 * sees the rest. No token secret file = no channel.
 */
enum { CH_ADDRESS, CH_PORT, CH_SECRET_FILE, CH_ISSUER, CH_AUDIENCE, CH_N };
static const char *const channel_keys[CH_N] = {
	"channel.address",	     "channel.port",
	"channel.token_secret_file", "channel.token_issuer",
	"channel.token_audience",
};

struct channel_cfg {
	const char *v[CH_N]; /* borrowed from argv, or defaults */
};

/* Removes the --channel.* flags from argv into *cc; returns the new argc
 * or -1 (message on stderr). */
static int take_channel_args(int argc, char **argv, struct channel_cfg *cc)
{
	cc->v[CH_ADDRESS] = "127.0.0.1";
	cc->v[CH_PORT] = "8447";
	cc->v[CH_SECRET_FILE] = "";
	cc->v[CH_ISSUER] = "";
	cc->v[CH_AUDIENCE] = CV_KMS_TOKEN_AUDIENCE_DEFAULT;
	int n = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int k = -1;
		size_t kl = 0;
		for (int j = 0; j < CH_N && strncmp(a, "--", 2) == 0; j++) {
			kl = strlen(channel_keys[j]);
			if (strncmp(a + 2, channel_keys[j], kl) == 0 &&
			    (a[2 + kl] == '=' || a[2 + kl] == '\0')) {
				k = j;
				break;
			}
		}
		if (k < 0) {
			argv[n++] = argv[i];
			continue;
		}
		if (a[2 + kl] == '=') {
			cc->v[k] = a + 3 + kl;
		} else if (i + 1 < argc) {
			cc->v[k] = argv[++i];
		} else {
			fprintf(stderr, "conclave-kms: %s needs a value\n", a);
			return -1;
		}
	}
	argv[n] = NULL;
	return n;
}

/* The KMS token secret: the file's bytes without a trailing newline, at
 * least CV_KMS_TOKEN_SECRET_MIN_BYTES, mode 0600 or stricter. */
static int read_token_secret(const char *path, struct cv_secret *out)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	if (st.st_mode & 077)
		return -EACCES;
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	uint8_t buf[TOKEN_SECRET_MAX + 1];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	int err = n < CV_KMS_TOKEN_SECRET_MIN_BYTES || n > TOKEN_SECRET_MAX
			  ? -EINVAL
			  : cv_secret_set(out, buf, n);
	OPENSSL_cleanse(buf, sizeof(buf));
	return err;
}

static int read_token_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int err = fgets(out, (int)cap, f) ? 0 : -EINVAL;
	fclose(f);
	if (!err)
		out[strcspn(out, "\r\n")] = '\0';
	return err;
}

static int setup_log(const struct cv_kms_config *c)
{
	enum cv_log_level lv = CV_LOG_INFO;
	const char *l = cv_kms_config_str(c, CV_KMS_CFG_LOG_LEVEL);
	cv_log_level_parse(l, strlen(l), &lv);
	cv_log_set_level_all(lv);
	const char *k = cv_kms_config_str(c, CV_KMS_CFG_LOG_OBFUSCATION_KEY);
	if (k[0])
		cv_log_set_obfuscation_key(k, strlen(k));
	return cv_log_open_file(cv_kms_config_str(c, CV_KMS_CFG_LOG_FILE));
}

/* The database setting as the log may show it: a PostgreSQL URI's
 * user-info (which may hold a password) is cut. */
static void database_for_log(const char *db, char *out, size_t cap)
{
	const char *scheme_end = strstr(db, "://");
	const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
	if (scheme_end && at)
		snprintf(out, cap, "%.*s://***%s", (int)(scheme_end - db), db,
			 at);
	else
		snprintf(out, cap, "%s", scheme_end ? db : "sqlite file");
}

struct daemon {
	struct cv_kms_config cfg;
	struct cv_secret master;
	X509 *cert;
	EVP_PKEY *cert_key;
	struct cv_kms_store *store;
	struct cv_kms_admin *admin;
	struct cv_kms_channel *channel;
	struct channel_cfg ch;
	char token[512];
};

static int start_channel(struct daemon *d, const char *db)
{
	const char *sf = d->ch.v[CH_SECRET_FILE];
	if (!sf[0]) {
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "channel: off (no channel.token_secret_file)");
		return 0;
	}
	char *end = NULL;
	long port = strtol(d->ch.v[CH_PORT], &end, 10);
	if (!end || *end || port < 0 || port > 65535 ||
	    !d->ch.v[CH_ISSUER][0]) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "channel: bad channel.port or no channel.token_issuer");
		return -EINVAL;
	}
	struct cv_secret secret = {0};
	int err = read_token_secret(sf, &secret);
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "channel: token secret: %s",
		       cv_strerror(err));
		return err;
	}
	struct cv_kms_channel_opts co = {
		.store = d->store,
		.database = db,
		.cert_key = d->cert_key,
		.token_secret = &secret,
		.token_issuer = d->ch.v[CH_ISSUER],
		.token_audience = d->ch.v[CH_AUDIENCE],
	};
	err = cv_kms_channel_create(&d->channel, &co);
	cv_secret_wipe(&secret);
	if (!err)
		err = cv_kms_channel_listen(d->channel, d->ch.v[CH_ADDRESS],
					    (uint16_t)port);
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "channel: %s",
		       cv_strerror(err));
		return err;
	}
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "channel ready (address=%s:%u)",
	       d->ch.v[CH_ADDRESS], cv_kms_channel_port(d->channel));
	return 0;
}

static int start(struct daemon *d)
{
	const struct cv_kms_config *c = &d->cfg;
	char db[PATH_BYTES], mk[PATH_BYTES], crt[PATH_BYTES], key[PATH_BYTES];
	const char *dir = cv_kms_config_str(c, CV_KMS_CFG_DATA_DIR);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "cannot create data dir: %s",
		       strerror(errno));
		return -errno;
	}
	int err;
	if ((err = cv_kms_config_path(c, CV_KMS_CFG_DATABASE, db,
				      sizeof(db))) ||
	    (err = cv_kms_config_path(c, CV_KMS_CFG_MASTER_KEY_FILE, mk,
				      sizeof(mk))) ||
	    (err = cv_kms_config_path(c, CV_KMS_CFG_CERT_FILE, crt,
				      sizeof(crt))) ||
	    (err = cv_kms_config_path(c, CV_KMS_CFG_KEY_FILE, key,
				      sizeof(key))))
		return err;
	/* Generate only at the default places: a mistyped path must not
	 * silently become a fresh master key that unwraps nothing. */
	bool mk_default = !cv_kms_config_str(c, CV_KMS_CFG_MASTER_KEY_FILE)[0];
	bool cert_default = !cv_kms_config_str(c, CV_KMS_CFG_CERT_FILE)[0] &&
			    !cv_kms_config_str(c, CV_KMS_CFG_KEY_FILE)[0];
	if ((err = cv_kms_master_key_load(mk, mk_default, &d->master))) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "master key: %s",
		       cv_strerror(err));
		return err;
	}
	const char *name = cv_kms_config_str(c, CV_KMS_CFG_NAME);
	char fp[CV_KMS_FINGERPRINT_SIZE];
	if ((err = cv_kms_cert_load(crt, key, name, cert_default, &d->cert,
				    &d->cert_key, fp))) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "certificate: %s",
		       cv_strerror(err));
		return err;
	}
	char base[CV_KMS_URI_MAX + 1];
	snprintf(base, sizeof(base), "kms://%s", name);
	struct cv_kms_store_opts so = {
		.database = db,
		.master_key = &d->master,
		.key_uri_base = base,
		.key_bytes = (size_t)cv_kms_config_int(c, CV_KMS_CFG_KEY_BYTES),
	};
	char db_log[PATH_BYTES + 16];
	database_for_log(db, db_log, sizeof(db_log));
	if ((err = cv_kms_store_open(&d->store, &so))) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "database %s: %s", db_log,
		       cv_strerror(err));
		return err;
	}
	const char *tf = cv_kms_config_str(c, CV_KMS_CFG_ADMIN_TOKEN_FILE);
	snprintf(d->token, sizeof(d->token), "%s",
		 cv_kms_config_str(c, CV_KMS_CFG_ADMIN_TOKEN));
	if (tf[0] && (err = read_token_file(tf, d->token, sizeof(d->token)))) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "admin token file: %s",
		       cv_strerror(err));
		return err;
	}
	const char *addr = cv_kms_config_str(c, CV_KMS_CFG_ADMIN_ADDRESS);
	struct cv_kms_admin_opts ao = {
		.address = addr,
		.port = (uint16_t)cv_kms_config_int(c, CV_KMS_CFG_ADMIN_PORT),
		.token = d->token,
		.store = d->store,
	};
	err = cv_kms_admin_start(&d->admin, &ao);
	OPENSSL_cleanse(d->token, sizeof(d->token));
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "admin api: %s",
		       cv_strerror(err));
		return err;
	}
	if ((err = start_channel(d, db)))
		return err;
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "ready (backend=%s database=%s schema=%d admin=%s:%u "
	       "cert=%s)",
	       cv_kms_store_backend(d->store), db_log,
	       cv_kms_store_schema_version(d->store), addr,
	       cv_kms_admin_port(d->admin), fp);
	return 0;
}

static void stop(struct daemon *d)
{
	cv_kms_channel_destroy(d->channel);
	cv_kms_admin_stop(d->admin);
	cv_kms_store_close(d->store);
	X509_free(d->cert);
	EVP_PKEY_free(d->cert_key);
	cv_secret_wipe(&d->master);
	cv_kms_config_fini(&d->cfg);
}

int main(int argc, char **argv)
{
	static struct daemon d;
	char err[512];
	if (cv_kms_config_init(&d.cfg)) {
		fprintf(stderr, "conclave-kms: out of memory\n");
		return 1;
	}
	argc = take_channel_args(argc, argv, &d.ch);
	if (argc < 0) {
		cv_kms_config_fini(&d.cfg);
		return 2;
	}
	int rc = cv_kms_config_parse_args(&d.cfg, argc, argv, "0.1.0", stdout,
					  err, sizeof(err));
	if (rc) {
		if (rc != CV_KMS_CONFIG_EXIT)
			fprintf(stderr, "conclave-kms: %s\n", err);
		cv_kms_config_fini(&d.cfg);
		return rc == CV_KMS_CONFIG_EXIT ? 0 : 2;
	}
	if (setup_log(&d.cfg)) {
		fprintf(stderr, "conclave-kms: cannot open the log file\n");
		cv_kms_config_fini(&d.cfg);
		return 1;
	}
	/* Signals are taken with sigwait() here; every thread started
	 * below inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (start(&d)) {
		stop(&d);
		return 1;
	}
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			cv_log_open_file(
				cv_kms_config_str(&d.cfg, CV_KMS_CFG_LOG_FILE));
			continue;
		}
		cv_log(CV_LOG_INFO, CV_LOG_KMS, "stopping (signal=%d)", sig);
		break;
	}
	stop(&d);
	return 0;
}
