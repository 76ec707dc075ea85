/*
 * SRTP sessions over libsrtp2: one srtp_t per direction of a transport.
 * libsrtp's statuses are translated here and nowhere else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include "conclave/err.h"
#include "conclave/srtp.h"

struct cv_srtp_profile_info {
	uint16_t id;
	const char *name;
	uint8_t key_bytes;
	uint8_t salt_bytes;
	uint8_t rtp_trailer;
	uint8_t rtcp_trailer;
};

/*
 * RFC 5764 section 4.1.2 (SRTP_AES128_CM_HMAC_SHA1_80 = {0x00, 0x01}: 128-bit
 * key, 112-bit salt, 80-bit tag) and RFC 7714 section 14.2
 * (SRTP_AEAD_AES_128_GCM = {0x00, 0x07}, SRTP_AEAD_AES_256_GCM = {0x00, 0x08}:
 * 96-bit salt, 16-octet tag). SRTCP adds the 4-octet E-flag || index
 * (RFC 3711 section 3.4, RFC 7714 section 9.1).
 */
static const struct cv_srtp_profile_info profiles[] = {
	[CV_SRTP_AES128_CM_HMAC_SHA1_80] = {0x0001, "SRTP_AES128_CM_SHA1_80",
					    16, 14, 10, 14},
	[CV_SRTP_AEAD_AES_128_GCM] = {0x0007, "SRTP_AEAD_AES_128_GCM", 16, 12,
				      16, 20},
	[CV_SRTP_AEAD_AES_256_GCM] = {0x0008, "SRTP_AEAD_AES_256_GCM", 32, 12,
				      16, 20},
};

static const struct cv_srtp_profile_info *info(enum cv_srtp_profile p)
{
	if ((int)p < CV_SRTP_AES128_CM_HMAC_SHA1_80 ||
	    (int)p > CV_SRTP_AEAD_AES_256_GCM)
		return NULL;
	return &profiles[p];
}

uint16_t cv_srtp_profile_id(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->id : 0;
}

int cv_srtp_profile_from_id(uint16_t id, enum cv_srtp_profile *out)
{
	for (int p = CV_SRTP_AES128_CM_HMAC_SHA1_80;
	     p <= CV_SRTP_AEAD_AES_256_GCM; p++) {
		if (profiles[p].id == id) {
			*out = (enum cv_srtp_profile)p;
			return 0;
		}
	}
	return CV_EUNSUPP;
}

const char *cv_srtp_profile_name(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->name : NULL;
}

int cv_srtp_profile_from_name(const char *name, enum cv_srtp_profile *out)
{
	if (!name)
		return -EINVAL;
	for (int p = CV_SRTP_AES128_CM_HMAC_SHA1_80;
	     p <= CV_SRTP_AEAD_AES_256_GCM; p++) {
		if (strcmp(profiles[p].name, name) == 0) {
			*out = (enum cv_srtp_profile)p;
			return 0;
		}
	}
	return CV_EUNSUPP;
}

size_t cv_srtp_profile_key_bytes(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->key_bytes : 0;
}

size_t cv_srtp_profile_salt_bytes(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->salt_bytes : 0;
}

size_t cv_srtp_profile_rtp_trailer_bytes(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->rtp_trailer : 0;
}

size_t cv_srtp_profile_rtcp_trailer_bytes(enum cv_srtp_profile p)
{
	const struct cv_srtp_profile_info *i = info(p);
	return i ? i->rtcp_trailer : 0;
}

int cv_srtp_split_keying(enum cv_srtp_profile p, const uint8_t *material,
			 size_t len, bool is_dtls_client,
			 struct cv_secret *local_out,
			 struct cv_secret *remote_out)
{
	const struct cv_srtp_profile_info *i = info(p);
	uint8_t client[CV_SRTP_MAX_KEY_SALT_BYTES];
	uint8_t server[CV_SRTP_MAX_KEY_SALT_BYTES];
	size_t k, s;
	int err;

	if (!local_out || !remote_out)
		return -EINVAL;
	cv_secret_wipe(local_out);
	cv_secret_wipe(remote_out);
	if (!i)
		return CV_EUNSUPP;
	k = i->key_bytes;
	s = i->salt_bytes;
	if (!material || len != 2 * (k + s))
		return -EINVAL;

	/* RFC 5764 section 4.2: client_write_SRTP_master_key[k] |
	 * server_write_SRTP_master_key[k] | client_write_SRTP_master_salt[s] |
	 * server_write_SRTP_master_salt[s]. libsrtp wants key || salt. */
	memcpy(client, material, k);
	memcpy(client + k, material + 2 * k, s);
	memcpy(server, material + k, k);
	memcpy(server + k, material + 2 * k + s, s);

	err = cv_secret_set(local_out, is_dtls_client ? client : server, k + s);
	if (!err)
		err = cv_secret_set(remote_out,
				    is_dtls_client ? server : client, k + s);
	OPENSSL_cleanse(client, sizeof(client));
	OPENSSL_cleanse(server, sizeof(server));
	if (err) {
		cv_secret_wipe(local_out);
		cv_secret_wipe(remote_out);
	}
	return err;
}

/* ---- global init and backend detection ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status = CV_ECRYPTO;
static const char *backend = "unknown";

struct module_scan {
	bool ossl, nss, any;
};

static void scan_modules(srtp_log_level_t level, const char *msg, void *data)
{
	struct module_scan *scan = data;
	(void)level;
	if (!msg)
		return;
	if (strstr(msg, "ossl") || strstr(msg, "openssl"))
		scan->ossl = true;
	if (strstr(msg, "nss"))
		scan->nss = true;
	if (strstr(msg, "aes icm"))
		scan->any = true;
}

static void global_init_once(void)
{
	struct module_scan scan = {0};

	if (srtp_init() != srtp_err_status_ok)
		return;
	init_status = 0;
	/* libsrtp has no query for its backend, but its debug module names
	 * carry it ("aes icm ossl", "aes icm nss", "aes icm"). */
	if (srtp_install_log_handler(scan_modules, &scan) ==
	    srtp_err_status_ok) {
		srtp_list_debug_modules();
		srtp_install_log_handler(NULL, NULL);
	}
	if (scan.ossl)
		backend = "openssl";
	else if (scan.nss)
		backend = "nss";
	else if (scan.any)
		backend = "builtin";
}

int cv_srtp_global_init(void)
{
	if (pthread_once(&init_once, global_init_once) != 0)
		return CV_ECRYPTO;
	return init_status;
}

const char *cv_srtp_backend(void)
{
	if (cv_srtp_global_init() != 0)
		return "unknown";
	return backend;
}

/* ---- sessions ---- */

struct cv_srtp {
	srtp_t ctx;
	enum cv_srtp_profile profile;
	enum cv_srtp_direction dir;
	uint8_t rtp_trailer;
	uint8_t rtcp_trailer;
	/*
	 * Inbound: the sender SSRCs libsrtp holds a stream for. libsrtp
	 * (ssrc_any_inbound) would add one per SSRC that authenticates,
	 * without limit; a peer with valid keys could grow it at will.
	 */
	uint32_t ssrcs[CV_SRTP_MAX_STREAMS];
	unsigned n_ssrcs;
};

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* May a packet from ssrc reach libsrtp? Known, or room for one more. */
static bool inbound_admit(const struct cv_srtp *s, uint32_t ssrc)
{
	for (unsigned i = 0; i < s->n_ssrcs; i++)
		if (s->ssrcs[i] == ssrc)
			return true;
	return s->n_ssrcs < CV_SRTP_MAX_STREAMS;
}

static void inbound_note(struct cv_srtp *s, uint32_t ssrc)
{
	for (unsigned i = 0; i < s->n_ssrcs; i++)
		if (s->ssrcs[i] == ssrc)
			return;
	if (s->n_ssrcs < CV_SRTP_MAX_STREAMS)
		s->ssrcs[s->n_ssrcs++] = ssrc;
}

void cv_srtp_forget(struct cv_srtp *s, uint32_t ssrc)
{
	for (unsigned i = 0; i < s->n_ssrcs; i++) {
		if (s->ssrcs[i] == ssrc) {
			s->ssrcs[i] = s->ssrcs[--s->n_ssrcs];
			srtp_remove_stream(s->ctx, htonl(ssrc));
			return;
		}
	}
}

static int translate(srtp_err_status_t st)
{
	switch (st) {
	case srtp_err_status_ok:
		return 0;
	case srtp_err_status_replay_fail:
	case srtp_err_status_replay_old:
		return CV_EREPLAY;
	case srtp_err_status_auth_fail:
		return CV_EINTEGRITY;
	case srtp_err_status_alloc_fail:
		return -ENOMEM;
	default:
		return CV_ECRYPTO;
	}
}

static int set_policy(srtp_crypto_policy_t *rtp, srtp_crypto_policy_t *rtcp,
		      enum cv_srtp_profile p)
{
	switch (p) {
	case CV_SRTP_AES128_CM_HMAC_SHA1_80:
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(rtp);
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(rtcp);
		return 0;
	case CV_SRTP_AEAD_AES_128_GCM:
		srtp_crypto_policy_set_aes_gcm_128_16_auth(rtp);
		srtp_crypto_policy_set_aes_gcm_128_16_auth(rtcp);
		return 0;
	case CV_SRTP_AEAD_AES_256_GCM:
		srtp_crypto_policy_set_aes_gcm_256_16_auth(rtp);
		srtp_crypto_policy_set_aes_gcm_256_16_auth(rtcp);
		return 0;
	}
	return CV_EUNSUPP;
}

int cv_srtp_create(struct cv_srtp **out, enum cv_srtp_profile p,
		   const struct cv_secret *key_salt, enum cv_srtp_direction dir)
{
	const struct cv_srtp_profile_info *i = info(p);
	uint8_t key[CV_SRTP_MAX_KEY_SALT_BYTES];
	srtp_policy_t policy;
	struct cv_srtp *s;
	int err;

	if (!out || !key_salt)
		return -EINVAL;
	if (!i)
		return CV_EUNSUPP;
	if (dir != CV_SRTP_INBOUND && dir != CV_SRTP_OUTBOUND)
		return -EINVAL;
	if (cv_secret_len(key_salt) != (size_t)i->key_bytes + i->salt_bytes)
		return -EINVAL;
	err = cv_srtp_global_init();
	if (err)
		return err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->profile = p;
	s->dir = dir;
	s->rtp_trailer = i->rtp_trailer;
	s->rtcp_trailer = i->rtcp_trailer;

	memset(&policy, 0, sizeof(policy));
	err = set_policy(&policy.rtp, &policy.rtcp, p);
	if (err)
		goto free_session;
	/* libsrtp takes a non-const key and derives its session keys from it
	 * in srtp_create(); give it a copy that we wipe right after. */
	memcpy(key, cv_secret_data(key_salt), cv_secret_len(key_salt));
	policy.key = key;
	policy.ssrc.type =
		dir == CV_SRTP_INBOUND ? ssrc_any_inbound : ssrc_any_outbound;
	/* RFC 3711 section 3.3.2: the replay list; 1024 tolerates the
	 * reordering of a video burst on a lossy path. */
	policy.window_size = CV_SRTP_REPLAY_WINDOW;
	/* NACK answers from the retransmission cache re-send a packet with the
	 * same index and payload, which is safe (same keystream, same data). */
	policy.allow_repeat_tx = dir == CV_SRTP_OUTBOUND;
	policy.next = NULL;

	err = translate(srtp_create(&s->ctx, &policy));
	OPENSSL_cleanse(key, sizeof(key));
	if (err)
		goto free_session;
	*out = s;
	return 0;

free_session:
	free(s);
	return err;
}

void cv_srtp_destroy(struct cv_srtp *s)
{
	if (!s)
		return;
	/* srtp_dealloc wipes the derived keys (octet_string_set_to_zero). */
	srtp_dealloc(s->ctx);
	free(s);
}

enum cv_srtp_profile cv_srtp_get_profile(const struct cv_srtp *s)
{
	return s->profile;
}

/*
 * RFC 3550 section 5.1 / 5.3.1: a 12-octet fixed header with V=2, CC CSRCs
 * of 4 octets, then if X is set a 4-octet extension header whose length
 * field counts further 32-bit words. Returns the header length or -1.
 */
static long rtp_header_len(const uint8_t *buf, size_t len)
{
	size_t hdr;

	if (len < 12 || (buf[0] >> 6) != 2)
		return -1;
	hdr = 12 + 4 * (size_t)(buf[0] & 0x0f);
	if (buf[0] & 0x10) {
		if (len < hdr + 4)
			return -1;
		hdr += 4 + 4 * (((size_t)buf[hdr + 2] << 8) | buf[hdr + 3]);
	}
	if (hdr > len)
		return -1;
	return (long)hdr;
}

/* RFC 3550 section 6.4.1: V=2 and at least the header and sender SSRC. */
static bool rtcp_header_ok(const uint8_t *buf, size_t len)
{
	return len >= 8 && (buf[0] >> 6) == 2;
}

int cv_srtp_protect(struct cv_srtp *s, uint8_t *buf, size_t *len, size_t cap)
{
	int n;
	int err;

	if (s->dir != CV_SRTP_OUTBOUND)
		return -EINVAL;
	if (*len > cap || cap - *len < s->rtp_trailer ||
	    *len > (size_t)INT_MAX - s->rtp_trailer)
		return CV_ETOOBIG;
	if (rtp_header_len(buf, *len) < 0)
		return CV_EPARSE;
	n = (int)*len;
	err = translate(srtp_protect(s->ctx, buf, &n));
	if (err)
		return err;
	*len = (size_t)n;
	return 0;
}

int cv_srtp_unprotect(struct cv_srtp *s, uint8_t *buf, size_t *len)
{
	long hdr;
	int n;
	int err;

	if (s->dir != CV_SRTP_INBOUND)
		return -EINVAL;
	if (*len > INT_MAX)
		return CV_ETOOBIG;
	hdr = rtp_header_len(buf, *len);
	if (hdr < 0 || *len - (size_t)hdr < s->rtp_trailer)
		return CV_EPARSE;
	uint32_t ssrc = be32_at(buf + 8);
	if (!inbound_admit(s, ssrc))
		return CV_ETOOBIG;
	n = (int)*len;
	err = translate(srtp_unprotect(s->ctx, buf, &n));
	if (err)
		return err;
	inbound_note(s, ssrc);
	*len = (size_t)n;
	return 0;
}

int cv_srtp_protect_rtcp(struct cv_srtp *s, uint8_t *buf, size_t *len,
			 size_t cap)
{
	int n;
	int err;

	if (s->dir != CV_SRTP_OUTBOUND)
		return -EINVAL;
	if (*len > cap || cap - *len < s->rtcp_trailer ||
	    *len > (size_t)INT_MAX - s->rtcp_trailer)
		return CV_ETOOBIG;
	if (!rtcp_header_ok(buf, *len))
		return CV_EPARSE;
	n = (int)*len;
	err = translate(srtp_protect_rtcp(s->ctx, buf, &n));
	if (err)
		return err;
	*len = (size_t)n;
	return 0;
}

int cv_srtp_unprotect_rtcp(struct cv_srtp *s, uint8_t *buf, size_t *len)
{
	int n;
	int err;

	if (s->dir != CV_SRTP_INBOUND)
		return -EINVAL;
	if (*len > INT_MAX)
		return CV_ETOOBIG;
	if (!rtcp_header_ok(buf, *len) || *len - 8 < s->rtcp_trailer)
		return CV_EPARSE;
	uint32_t ssrc = be32_at(buf + 4);
	if (!inbound_admit(s, ssrc))
		return CV_ETOOBIG;
	n = (int)*len;
	err = translate(srtp_unprotect_rtcp(s->ctx, buf, &n));
	if (err)
		return err;
	inbound_note(s, ssrc);
	*len = (size_t)n;
	return 0;
}

int cv_srtp_sessions_from_dtls(uint16_t profile_id, const uint8_t *material,
			       size_t len, bool is_dtls_client,
			       struct cv_srtp **inbound,
			       struct cv_srtp **outbound)
{
	enum cv_srtp_profile p;
	struct cv_secret local, remote;
	struct cv_srtp *in = NULL, *out = NULL;
	int err = cv_srtp_profile_from_id(profile_id, &p);

	if (err)
		return err;
	cv_secret_init(&local);
	cv_secret_init(&remote);
	err = cv_srtp_split_keying(p, material, len, is_dtls_client, &local,
				   &remote);
	if (!err)
		err = cv_srtp_create(&out, p, &local, CV_SRTP_OUTBOUND);
	if (!err)
		err = cv_srtp_create(&in, p, &remote, CV_SRTP_INBOUND);
	cv_secret_wipe(&local);
	cv_secret_wipe(&remote);
	if (err) {
		cv_srtp_destroy(out);
		return err;
	}
	*inbound = in;
	*outbound = out;
	return 0;
}
