/*
 * Conclave's one error convention: acting functions return 0 on success or
 * a negative errno. Codes errno lacks live here, below -1000 so that they
 * never collide with an errno value.
 */
#ifndef CONCLAVE_ERR_H
#define CONCLAVE_ERR_H

enum cv_err {
	CV_EAUTH = -1001,     /* authentication or authorization failed */
	CV_EREPLAY = -1002,   /* replayed packet or request */
	CV_ETOOBIG = -1003,   /* input or output exceeds a configured ceiling */
	CV_EPARSE = -1004,    /* malformed input */
	CV_ECRYPTO = -1005,   /* a cryptographic operation failed */
	CV_EPROTO = -1006,    /* a peer broke the protocol */
	CV_EEXPIRED = -1007,  /* token, consent or key expired */
	CV_EUNSUPP = -1008,   /* valid but not supported (codec, profile) */
	CV_EDRAINING = -1009, /* the node is draining: no new joins */
	CV_EINTEGRITY = -1010, /* integrity check (tag, HMAC, CRC) failed */
};

/*
 * Returns a static, human-readable text for a 0 / negative errno / CV_E*
 * code. Thread: any.
 */
const char *cv_strerror(int err);

#endif
