/*
 * An inbound session keeps state for at most CV_SRTP_MAX_STREAMS sender
 * SSRCs: a peer with valid keys cannot make it grow without limit, and
 * cv_srtp_forget() makes room again.
 */
#include <string.h>

#include "conclave/err.h"
#include "conclave/secret.h"
#include "conclave/srtp.h"
#include "cv_test.h"

static size_t rtp(uint8_t *buf, uint16_t seq, uint32_t ssrc)
{
	memset(buf, 0, 200);
	buf[0] = 0x80;
	buf[1] = 96;
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	buf[8] = (uint8_t)(ssrc >> 24);
	buf[9] = (uint8_t)(ssrc >> 16);
	buf[10] = (uint8_t)(ssrc >> 8);
	buf[11] = (uint8_t)ssrc;
	memset(buf + 12, 0xab, 100);
	return 112;
}

int main(void)
{
	enum cv_srtp_profile p = CV_SRTP_AEAD_AES_128_GCM;
	struct cv_secret key;
	struct cv_srtp *tx, *rx;
	cv_secret_init(&key);
	cv_secret_random(&key, cv_srtp_profile_key_bytes(p) +
				       cv_srtp_profile_salt_bytes(p));
	CV_CHECK_INT(cv_srtp_create(&tx, p, &key, CV_SRTP_OUTBOUND), 0);
	CV_CHECK_INT(cv_srtp_create(&rx, p, &key, CV_SRTP_INBOUND), 0);
	_Alignas(8) uint8_t buf[256];
	int ok = 0, refused = 0;
	for (uint32_t ssrc = 1; ssrc <= CV_SRTP_MAX_STREAMS + 8; ssrc++) {
		size_t len = rtp(buf, 1, ssrc);
		CV_CHECK_INT(cv_srtp_protect(tx, buf, &len, sizeof(buf)), 0);
		int rc = cv_srtp_unprotect(rx, buf, &len);
		ok += rc == 0;
		refused += rc == CV_ETOOBIG;
	}
	CV_CHECK_INT(ok, CV_SRTP_MAX_STREAMS);
	CV_CHECK_INT(refused, 8);
	/* A known SSRC still passes; after forgetting one, a new one fits. */
	size_t len = rtp(buf, 2, 5);
	cv_srtp_protect(tx, buf, &len, sizeof(buf));
	CV_CHECK_INT(cv_srtp_unprotect(rx, buf, &len), 0);
	cv_srtp_forget(rx, 7);
	cv_srtp_forget(rx, 12345); /* unknown: harmless */
	len = rtp(buf, 2, CV_SRTP_MAX_STREAMS + 1);
	cv_srtp_protect(tx, buf, &len, sizeof(buf));
	CV_CHECK_INT(cv_srtp_unprotect(rx, buf, &len), 0);
	len = rtp(buf, 2, CV_SRTP_MAX_STREAMS + 2);
	cv_srtp_protect(tx, buf, &len, sizeof(buf));
	CV_CHECK_INT(cv_srtp_unprotect(rx, buf, &len), CV_ETOOBIG);
	cv_srtp_destroy(tx);
	cv_srtp_destroy(rx);
	cv_secret_wipe(&key);
	return cv_test_done("test_srtp_streams");
}
