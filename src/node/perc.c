/*
 * The node's control plane for perc rooms, apart from the join itself
 * (node.c): the tunnel identity the workers' KD links use, the relay of
 * the client-KMS channel, and the deny list of the two-part removal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/config.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/switch.h"
#include "conclave/ws_server.h"
#include "src/node/node_priv.h"
#include "src/node/relay.h"

/* ---- the tunnel identity ---- */

/* A self-signed ECDSA P-256 certificate, valid for 30 days: the node's
 * name towards the KD, which pins its SHA-256 fingerprint. */
static int write_identity(const char *cert_path, const char *key_path,
			  char fp[CV_TUNNEL_FP_STRLEN])
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *fc = NULL, *fk = NULL;
	uint8_t serial[8];
	int rc = CV_ECRYPTO;
	if (!pk || !x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		BN_free(bn);
		goto out;
	}
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_set_pubkey(x, pk);
	X509_NAME *nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
				   (const unsigned char *)"conclave-node", -1,
				   -1, 0);
	X509_set_issuer_name(x, nm);
	if (X509_sign(x, pk, EVP_sha256()) <= 0)
		goto out;
	rc = -EIO;
	fc = fopen(cert_path, "w");
	int kfd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	fk = kfd >= 0 ? fdopen(kfd, "w") : NULL;
	if (!fk && kfd >= 0)
		close(kfd);
	if (!fc || !fk || !PEM_write_X509(fc, x) ||
	    !PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL))
		goto out;
	rc = cv_tunnel_cert_fingerprint(x, fp);
out:
	if (fc && fclose(fc) && !rc)
		rc = -EIO;
	if (fk && fclose(fk) && !rc)
		rc = -EIO;
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

/* --dev without perc.cert_file: a fresh identity in a private temp dir,
 * its fingerprint logged (not a secret) and written where asked. */
static int generate_identity(struct cv_node *n)
{
	char fp[CV_TUNNEL_FP_STRLEN];
	snprintf(n->perc_dir, sizeof(n->perc_dir), "/tmp/conclave-perc-XXXXXX");
	if (!mkdtemp(n->perc_dir)) {
		n->perc_dir[0] = '\0';
		return -errno;
	}
	snprintf(n->perc_cert, sizeof(n->perc_cert), "%s/node-cert.pem",
		 n->perc_dir);
	snprintf(n->perc_key, sizeof(n->perc_key), "%s/node-key.pem",
		 n->perc_dir);
	int err = write_identity(n->perc_cert, n->perc_key, fp);
	if (err)
		return err;
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "perc: tunnel certificate generated (fingerprint=%s)", fp);
	const char *out = cv_config_str(n->cfg, CV_CFG_PERC_FINGERPRINT_FILE);
	if (out[0]) {
		/* Written whole under another name, then renamed: a reader
		 * polling for the file never sees half of it. */
		char tmp[4200];
		snprintf(tmp, sizeof(tmp), "%s.tmp", out);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%s\n", fp) < 0 || fclose(f) ||
		    rename(tmp, out)) {
			cv_log(CV_LOG_ERROR, CV_LOG_NODE,
			       "perc: cannot write perc.fingerprint_file");
			return -EIO;
		}
	}
	return 0;
}

int cv_node_perc_init(struct cv_node *n)
{
	const struct cv_config *c = n->cfg;
	int64_t port = cv_config_int(c, CV_CFG_PERC_KD_PORT);
	if (port == 0)
		return 0;
	const char *cert = cv_config_str(c, CV_CFG_PERC_CERT_FILE);
	if (cert[0]) {
		snprintf(n->perc_cert, sizeof(n->perc_cert), "%s", cert);
		snprintf(n->perc_key, sizeof(n->perc_key), "%s",
			 cv_config_str(c, CV_CFG_PERC_KEY_FILE));
		if (strlen(cert) >= sizeof(n->perc_cert) ||
		    strlen(cv_config_str(c, CV_CFG_PERC_KEY_FILE)) >=
			    sizeof(n->perc_key))
			return -ENAMETOOLONG;
	} else if (cv_config_bool(c, CV_CFG_DEV)) {
		int err = generate_identity(n);
		if (err)
			return err;
	} else {
		return -EINVAL; /* cv_config_validate says so first */
	}
	n->kd = (struct cv_tunnel_link_opts){
		.host = cv_config_str(c, CV_CFG_PERC_KD_ADDRESS),
		.port = (uint16_t)port,
		.cert_file = n->perc_cert,
		.key_file = n->perc_key,
		.kd_fingerprint = cv_config_str(c, CV_CFG_PERC_KD_FINGERPRINT),
	};
	n->perc = true;
	return 0;
}

bool cv_node_kd_up(struct cv_node *n, unsigned w)
{
	bool up = false;
	pthread_mutex_lock(&n->start_lock);
	if (w < n->n_workers && n->wref[w].sw)
		up = cv_switch_kd_up(n->wref[w].sw);
	pthread_mutex_unlock(&n->start_lock);
	return up;
}

/* ---- the deny list (lock held) ---- */

static struct deny_entry *deny_find(const struct cv_node *n, const char *room,
				    const char *sub)
{
	for (size_t i = 0; i < n->n_deny; i++) {
		struct deny_entry *e =
			&n->deny[(n->deny_head + i) % NODE_DENY_MAX];
		if (!strcmp(e->room, room) && !strcmp(e->sub, sub))
			return e;
	}
	return NULL;
}

bool cv_node_denied(const struct cv_node *n, const char *room, const char *sub)
{
	return deny_find(n, room, sub) != NULL;
}

void cv_node_deny(struct cv_node *n, const char *room, const char *sub)
{
	if (deny_find(n, room, sub))
		return;
	if (!n->deny) {
		n->deny = calloc(NODE_DENY_MAX, sizeof(*n->deny));
		if (!n->deny)
			return;
	}
	if (n->n_deny == NODE_DENY_MAX) { /* the oldest goes */
		n->deny_head = (n->deny_head + 1) % NODE_DENY_MAX;
		n->n_deny--;
	}
	struct deny_entry *e =
		&n->deny[(n->deny_head + n->n_deny) % NODE_DENY_MAX];
	snprintf(e->room, sizeof(e->room), "%s", room);
	snprintf(e->sub, sizeof(e->sub), "%s", sub);
	n->n_deny++;
}

void cv_node_allow(struct cv_node *n, const char *room, const char *sub)
{
	struct deny_entry *e = deny_find(n, room, sub);
	if (!e)
		return;
	/* Move the newest into the hole: order only matters for eviction. */
	struct deny_entry *last =
		&n->deny[(n->deny_head + n->n_deny - 1) % NODE_DENY_MAX];
	*e = *last;
	memset(last, 0, sizeof(*last));
	n->n_deny--;
}

/* ---- the relay ---- */

/* Relay thread: the KMS answered (or not); apply our part, answer. */
static void relay_done(void *arg, const struct cv_relay_job *job,
		       const struct cv_relay_result *res)
{
	struct cv_node *n = arg;
	struct cv_ws_header h = {"Conclave-Status", res->kms_status};
	pthread_mutex_lock(&n->lock);
	/* Seeds "Room Authorization": both parts or neither. The KMS said
	 * ok for exactly this change (it compared our headers with the
	 * sealed request), so the node applies its part now. */
	if (job->core.op != CV_RELAY_OP_NONE && res->status == 200 &&
	    strcmp(res->kms_status, "ok") == 0)
		cv_node_apply_membership(n, &job->core);
	if (n->ws)
		cv_ws_post_reply(n->ws, job->post_id, res->status, &h,
				 res->kms_status[0] ? 1 : 0, res->body,
				 res->len);
	pthread_mutex_unlock(&n->lock);
}

int cv_node_relay_start(struct cv_node *n)
{
	int64_t port = cv_config_int(n->cfg, CV_CFG_PERC_KMS_PORT);
	if (port == 0)
		return 0;
	struct cv_relay_opts o = {
		.host = cv_config_str(n->cfg, CV_CFG_PERC_KMS_ADDRESS),
		.port = (uint16_t)port,
		.timeout_ms = 5000,
		.done = relay_done,
		.arg = n,
	};
	struct cv_relay *r;
	int err = cv_relay_create(&r, &o);
	if (err)
		return err;
	pthread_mutex_lock(&n->lock);
	n->relay = r;
	pthread_mutex_unlock(&n->lock);
	cv_log(CV_LOG_INFO, CV_LOG_NODE,
	       "perc: relaying POST /v1/channel to the KMS (kms=%s:%u)", o.host,
	       (unsigned)port);
	return 0;
}

void cv_node_perc_stop(struct cv_node *n)
{
	pthread_mutex_lock(&n->lock);
	struct cv_relay *r = n->relay;
	n->relay = NULL;
	pthread_mutex_unlock(&n->lock);
	cv_relay_destroy(r);
	if (n->perc_dir[0]) {
		unlink(n->perc_cert);
		unlink(n->perc_key);
		rmdir(n->perc_dir);
		n->perc_dir[0] = '\0';
	}
	/* Under the lock: a join still being handled reads the deny list. */
	pthread_mutex_lock(&n->lock);
	free(n->deny);
	n->deny = NULL;
	n->n_deny = 0;
	pthread_mutex_unlock(&n->lock);
}

/* Signaling thread: a whole POST /v1/channel. Never blocks on the KMS. */
int cv_node_on_post(void *arg, const struct cv_ws_post *req)
{
	struct cv_node *n = arg;
	if (req->len > CV_RELAY_BODY_MAX)
		return 413;
	struct cv_relay_job *job = malloc(sizeof(*job));
	if (!job)
		return 503;
	job->post_id = req->id;
	memcpy(job->body, req->body, req->len);
	job->len = req->len;
	int status = cv_relay_check_core(
		n->token_key, n->token_key_len, req->headers[0],
		req->headers[1], req->headers[2],
		(int64_t)(cv_clock_wall_ms() / 1000), &job->core);
	if (status == 0) {
		pthread_mutex_lock(&n->lock);
		if (!n->relay)
			status = 404;
		else if (cv_relay_submit(n->relay, job) != 0)
			status = 503;
		pthread_mutex_unlock(&n->lock);
	} else {
		cv_log(CV_LOG_INFO, CV_LOG_NODE,
		       "perc: relayed membership change refused (status=%d)",
		       status);
	}
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
	return status;
}
