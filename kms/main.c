/*
 * conclave-kms: the security realm's daemon. It loads its configuration,
 * master key and certificate, opens (and migrates) its database, serves
 * the admin API, the client-KMS channel (kms/channel.h) and, when kd.port
 * is set, the Key Distributor: its end of the RFC 9185 tunnel
 * (kms/kd_link.h) and its DTLS side (kms/kd_dtls.h, with a DTLS
 * certificate generated at start whose fingerprint members get with
 * GET_KEY), until SIGTERM or SIGINT. SIGHUP reopens the log file.
 *
 * Threads: main (signals, start, stop), the admin API's and the channel's
 * own threads, and the Key Distributor's thread, which runs a cv_loop
 * holding the cv_kd_link and the cv_kd_dtls. The endpoint registry
 * (kms/endpoints.h) is shared by the channel's thread (registrations) and
 * the KD's (lookups) under its own mutex. The loop, the link and the
 * DTLS side are built on main before that thread starts and destroyed on
 * main after it is joined; in between only the KD thread touches them
 * (main only writes the wake-up eventfd).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "kms/admin.h"
#include "kms/channel.h"
#include "kms/config.h"
#include "kms/endpoints.h"
#include "kms/files.h"
#include "kms/kd_dtls.h"
#include "kms/kd_link.h"
#include "kms/store.h"

#define PATH_BYTES	 4096
#define TOKEN_SECRET_MAX 512
/* kd.node_fingerprints: CV_KD_MAX_ALLOWED items of at most
 * CV_DTLS_FINGERPRINT_STRLEN characters, with separators. */
#define FINGERPRINTS_BYTES (CV_KD_MAX_ALLOWED * 208)
/* Association ids refused for want of a registration, remembered so that
 * a ClientHello's retransmissions write one audit row, not one each. */
#define KD_REFUSED_MEMORY 64

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

/* The Key Distributor's loop, link, DTLS side and thread. */
struct kd_runner {
	struct cv_loop *loop;
	struct cv_kd_link *link;
	struct cv_kd_dtls *dtls;
	struct cv_dtls_cert *cert; /* the KD's DTLS certificate */
	struct cv_io wake;	   /* eventfd: main asks the loop to stop */
	pthread_t thread;
	bool running;
	struct cv_kms_store *store;	    /* borrowed: audit rows */
	struct cv_kms_endpoints *endpoints; /* borrowed: registrations */
	struct cv_tunnel_assoc_id refused[KD_REFUSED_MEMORY];
	size_t n_refused;
};

struct daemon {
	struct cv_kms_config cfg;
	struct cv_secret master;
	X509 *cert;
	EVP_PKEY *cert_key;
	struct cv_kms_store *store;
	struct cv_kms_admin *admin;
	struct cv_kms_channel *channel;
	struct cv_kms_endpoints *endpoints;
	struct kd_runner kd;
	struct cv_dtls_fingerprint kd_fp; /* of kd.cert; len 0 = no KD */
	char token[512];
};

static int start_channel(struct daemon *d)
{
	const struct cv_kms_config *c = &d->cfg;
	const char *sf =
		cv_kms_config_str(c, CV_KMS_CFG_CHANNEL_TOKEN_SECRET_FILE);
	const char *issuer =
		cv_kms_config_str(c, CV_KMS_CFG_CHANNEL_TOKEN_ISSUER);
	const char *addr = cv_kms_config_str(c, CV_KMS_CFG_CHANNEL_ADDRESS);
	if (!sf[0]) {
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "channel: off (no channel.token_secret_file)");
		return 0;
	}
	if (!issuer[0]) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "channel: channel.token_issuer is required");
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
		.cert_key = d->cert_key,
		.token_secret = &secret,
		.token_issuer = issuer,
		.token_audience =
			cv_kms_config_str(c, CV_KMS_CFG_CHANNEL_TOKEN_AUDIENCE),
		.endpoints = d->endpoints,
		.kd_fp = d->kd_fp.len ? &d->kd_fp : NULL,
	};
	err = cv_kms_channel_create(&d->channel, &co);
	cv_secret_wipe(&secret);
	if (!err)
		err = cv_kms_channel_listen(
			d->channel, addr,
			(uint16_t)cv_kms_config_int(c,
						    CV_KMS_CFG_CHANNEL_PORT));
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "channel: %s",
		       cv_strerror(err));
		return err;
	}
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "channel ready (address=%s:%u)", addr,
	       cv_kms_channel_port(d->channel));
	return 0;
}

/* ---- the Key Distributor (RFC 9185 tunnel) -------------------------------
 *
 * Callbacks run on the KD thread. Nodes are accepted, pinned and audited
 * when refused; what they tunnel goes to the KD's DTLS side, which asks
 * the endpoint registry (filled by REGISTER_ENDPOINT on the channel) for
 * the certificate each association must present, and reports each
 * outcome here for the audit log (action kd.media_keys).
 */

static void assoc_hex(const struct cv_tunnel_assoc_id *a,
		      char out[2 * CV_TUNNEL_ASSOC_ID_BYTES + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < CV_TUNNEL_ASSOC_ID_BYTES; i++) {
		out[2 * i] = digits[a->b[i] >> 4];
		out[2 * i + 1] = digits[a->b[i] & 15];
	}
	out[2 * CV_TUNNEL_ASSOC_ID_BYTES] = '\0';
}

/* True the first time an id is refused (within the last
 * KD_REFUSED_MEMORY refusals). */
static bool first_refusal(struct kd_runner *r,
			  const struct cv_tunnel_assoc_id *a)
{
	size_t n = r->n_refused < KD_REFUSED_MEMORY ? r->n_refused
						    : KD_REFUSED_MEMORY;
	for (size_t i = 0; i < n; i++)
		if (!memcmp(r->refused[i].b, a->b, sizeof(a->b)))
			return false;
	r->refused[r->n_refused++ % KD_REFUSED_MEMORY] = *a;
	return true;
}

/* cv_kd_dtls's fingerprints hook: the certificate registered for the
 * association, if any. */
static int kd_fingerprints(void *arg, struct cv_kd_node *node,
			   const struct cv_tunnel_assoc_id *assoc,
			   struct cv_dtls_fingerprint *fps, size_t max)
{
	struct kd_runner *r = arg;
	struct cv_kms_endpoint ep;
	char id[2 * CV_TUNNEL_ASSOC_ID_BYTES + 1];
	if (max < 1)
		return 0;
	if (cv_kms_endpoints_lookup(r->endpoints, assoc, &ep) == 0) {
		fps[0] = ep.fp;
		return 1;
	}
	if (first_refusal(r, assoc)) {
		assoc_hex(assoc, id);
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "kd: association without a registered endpoint "
		       "(node=%s)",
		       cv_kd_node_id(node));
		cv_kms_store_audit_event(r->store, "-", "kd.media_keys", NULL,
					 id, false, "no registered endpoint");
	}
	return 0;
}

static const char *done_reason(int err)
{
	switch (err) {
	case 0:
		return "";
	case CV_EAUTH:
		return "endpoint certificate does not match";
	case CV_EUNSUPP:
		return "profile not offered by the node";
	case CV_EEXPIRED:
		return "handshake timed out";
	case -ENOTCONN:
		return "endpoint closed";
	default:
		return "handshake failed";
	}
}

/* cv_kd_dtls's on_done: one audit row per association, granted (hop keys
 * went to the node) with the registration's actor and room, or denied. */
static void kd_done(void *arg, struct cv_kd_node *node,
		    const struct cv_tunnel_assoc_id *assoc,
		    uint16_t double_profile, int err)
{
	struct kd_runner *r = arg;
	struct cv_kms_endpoint ep;
	char id[2 * CV_TUNNEL_ASSOC_ID_BYTES + 1], room[17];
	assoc_hex(assoc, id);
	if (cv_kms_endpoints_lookup(r->endpoints, assoc, &ep) != 0) {
		snprintf(ep.actor, sizeof(ep.actor), "-");
		ep.room[0] = '\0';
	}
	cv_log_obfuscate(ep.room, strlen(ep.room), room);
	if (err)
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "kd: no media keys: %s (node=%s room=%s)",
		       done_reason(err), cv_kd_node_id(node), room);
	else
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "kd: media keys sent (node=%s room=%s "
		       "double_profile=0x%04x)",
		       cv_kd_node_id(node), room, double_profile);
	cv_kms_store_audit_event(r->store, ep.actor, "kd.media_keys", ep.room,
				 id, err == 0, done_reason(err));
}

static void kd_node_up(void *arg, struct cv_kd_node *node, const char *id)
{
	size_t n = 0;
	(void)arg;
	cv_kd_node_profiles(node, &n);
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "kd: node up (node=%s profiles=%zu)",
	       id, n);
}

static void kd_message(void *arg, struct cv_kd_node *node,
		       const struct cv_tunnel_msg *m)
{
	struct kd_runner *r = arg;
	int err = cv_kd_dtls_handle_message(r->dtls, node, m);
	if (err && err != CV_EAUTH)
		cv_log(CV_LOG_DEBUG, CV_LOG_KMS, "kd: %s dropped: %s (node=%s)",
		       cv_tunnel_msg_type_name((int)m->type), cv_strerror(err),
		       cv_kd_node_id(node));
}

static void kd_node_down(void *arg, struct cv_kd_node *node, int err)
{
	struct kd_runner *r = arg;
	cv_kd_dtls_node_down(r->dtls, node);
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "kd: node down: %s (node=%s)",
	       cv_strerror(err), cv_kd_node_id(node));
}

/* Every refused node leaves a denied audit row; id is already obfuscated
 * (of the certificate, or of the peer address without one). */
static void kd_refused(void *arg, const char *id, const char *reason)
{
	struct kd_runner *r = arg;
	cv_kms_store_audit_refusal(r->store, id, "node.connect", NULL, reason);
}

static void kd_wake(void *arg, uint32_t events)
{
	struct kd_runner *r = arg;
	uint64_t v;
	(void)events;
	ssize_t n = read(r->wake.fd, &v, sizeof(v));
	(void)n;
	cv_loop_stop(r->loop);
}

static void *kd_thread(void *arg)
{
	struct kd_runner *r = arg;
	int err = cv_loop_run(r->loop);
	if (err)
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "kd: loop failed: %s",
		       cv_strerror(err));
	return NULL;
}

/* Stops and joins the KD thread, then frees the link and the loop. */
static void stop_kd(struct kd_runner *r)
{
	if (r->running) {
		uint64_t one = 1;
		ssize_t n = write(r->wake.fd, &one, sizeof(one));
		(void)n;
		pthread_join(r->thread, NULL);
		r->running = false;
	}
	cv_kd_dtls_destroy(r->dtls);
	r->dtls = NULL;
	cv_kd_link_destroy(r->link);
	r->link = NULL;
	r->cert = cv_dtls_cert_unref(r->cert);
	if (r->wake.fd >= 0) {
		if (r->loop)
			cv_loop_del_io(r->loop, &r->wake);
		close(r->wake.fd);
	}
	r->wake.fd = -1;
	cv_loop_destroy(r->loop);
	r->loop = NULL;
}

static int kd_link_start(struct daemon *d, const char *crt, const char *key,
			 const char **allowed, size_t n_allowed)
{
	const struct cv_kms_config *c = &d->cfg;
	struct kd_runner *r = &d->kd;
	const char *addr = cv_kms_config_str(c, CV_KMS_CFG_KD_ADDRESS);
	struct cv_kd_link_opts o = {
		.address = addr,
		.port = (uint16_t)cv_kms_config_int(c, CV_KMS_CFG_KD_PORT),
		.cert_file = crt,
		.key_file = key,
		.allowed_nodes = allowed,
		.n_allowed = n_allowed,
	};
	struct cv_kd_link_callbacks cb = {
		.on_node_up = kd_node_up,
		.on_message = kd_message,
		.on_node_down = kd_node_down,
		.on_refused = kd_refused,
		.arg = r,
	};
	struct cv_kd_dtls_opts dop = {
		.fingerprints = kd_fingerprints,
		.on_done = kd_done,
		.arg = r,
	};
	r->store = d->store;
	r->endpoints = d->endpoints;
	r->wake = (struct cv_io){.fd = -1, .fn = kd_wake, .arg = r};
	int err = cv_loop_create(&r->loop);
	if (!err && (r->wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		err = -errno;
	if (!err)
		err = cv_loop_add_io(r->loop, &r->wake, EPOLLIN);
	if (!err)
		err = cv_kd_link_create(&r->link, r->loop, &o, &cb);
	if (!err)
		err = cv_kd_dtls_create(&r->dtls, r->loop, r->link, r->cert,
					&dop);
	if (!err)
		err = -pthread_create(&r->thread, NULL, kd_thread, r);
	if (err) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "kd: %s", cv_strerror(err));
		return err;
	}
	r->running = true;
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "kd ready (address=%s:%u nodes_allowed=%zu)", addr,
	       cv_kd_link_port(r->link), n_allowed);
	return 0;
}

static bool kd_on(const struct daemon *d)
{
	return cv_kms_config_int(&d->cfg, CV_KMS_CFG_KD_PORT) >= 0;
}

/*
 * The Key Distributor's DTLS certificate: ECDSA P-256, made at every
 * start (endpoints learn its fingerprint from GET_KEY, so nothing pins it
 * across restarts). The fingerprint is public: it is logged.
 */
static int make_kd_cert(struct daemon *d)
{
	struct kd_runner *r = &d->kd;
	int err = cv_dtls_cert_generate(&r->cert);
	const char *fp = err ? "" : cv_dtls_cert_fingerprint(r->cert);
	if (!err)
		err = cv_dtls_fingerprint_parse(&d->kd_fp, fp, strlen(fp));
	if (!err && d->kd_fp.hash != CV_DTLS_HASH_SHA256)
		err = CV_EUNSUPP;
	if (err) {
		d->kd_fp.len = 0;
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "kd: dtls certificate: %s",
		       cv_strerror(err));
		return err;
	}
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "kd: dtls certificate (fingerprint=%s)",
	       fp);
	return 0;
}

/* Runs the Key Distributor when kd.port is set. */
static int start_kd(struct daemon *d, const char *crt, const char *key)
{
	const struct cv_kms_config *c = &d->cfg;
	if (!kd_on(d)) {
		cv_log(CV_LOG_INFO, CV_LOG_KMS, "kd: off (no kd.port)");
		return 0;
	}
	static char buf[FINGERPRINTS_BYTES];
	const char *allowed[CV_KD_MAX_ALLOWED];
	size_t n = 0;
	int err = cv_kms_config_fingerprints(c, buf, sizeof(buf), allowed,
					     CV_KD_MAX_ALLOWED, &n);
	if (!err && n == 0) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "kd: kd.node_fingerprints is required with kd.port");
		err = -EINVAL;
	}
	if (!err)
		err = kd_link_start(d, crt, key, allowed, n);
	return err;
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
	/* Registrations: the channel writes, the KD reads. */
	if ((err = cv_kms_endpoints_create(&d->endpoints, 0, 0, NULL, NULL)) ||
	    (kd_on(d) && (err = make_kd_cert(d))) || (err = start_channel(d)) ||
	    (err = start_kd(d, crt, key)))
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
	/* The KD thread writes audit rows: it stops before the store. */
	stop_kd(&d->kd);
	cv_kms_channel_destroy(d->channel);
	cv_kms_endpoints_destroy(d->endpoints);
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
	d.kd.wake.fd = -1;
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
