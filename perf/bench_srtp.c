/*
 * Micro-benchmark: cv_srtp_protect / cv_srtp_unprotect time per 1200-byte
 * RTP packet (12-octet header + 1188 payload) for each profile, and which
 * libsrtp2 backend is linked. Usage: bench_srtp [packets per run]
 * Prints the best of 5 runs, in microseconds per packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conclave/srtp.h"

#define PKT_BYTES 1200

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void header(uint8_t *buf, uint32_t i, uint32_t ssrc)
{
	buf[0] = 0x80;
	buf[1] = 96;
	buf[2] = (uint8_t)(i >> 8);
	buf[3] = (uint8_t)i;
	buf[4] = (uint8_t)(i >> 24);
	buf[5] = (uint8_t)(i >> 16);
	buf[6] = (uint8_t)(i >> 8);
	buf[7] = (uint8_t)i;
	buf[8] = (uint8_t)(ssrc >> 24);
	buf[9] = (uint8_t)(ssrc >> 16);
	buf[10] = (uint8_t)(ssrc >> 8);
	buf[11] = (uint8_t)ssrc;
}

static int bench(enum cv_srtp_profile p, unsigned n, double *prot_us,
		 double *unprot_us)
{
	_Alignas(16) static uint8_t buf[PKT_BYTES + CV_SRTP_MAX_TRAILER_BYTES];
	uint8_t *enc = NULL;
	size_t trailer = cv_srtp_profile_rtp_trailer_bytes(p);
	size_t stride = (PKT_BYTES + trailer + 15) & ~(size_t)15;
	struct cv_secret k;
	struct cv_srtp *out = NULL, *in = NULL;
	int err;

	cv_secret_init(&k);
	err = cv_secret_random(&k, cv_srtp_profile_key_bytes(p) +
					   cv_srtp_profile_salt_bytes(p));
	if (!err)
		err = cv_srtp_create(&out, p, &k, CV_SRTP_OUTBOUND);
	if (!err)
		err = cv_srtp_create(&in, p, &k, CV_SRTP_INBOUND);
	cv_secret_wipe(&k);
	enc = malloc(stride * 4096);
	if (err || !enc)
		goto out;
	memset(buf, 0x5a, sizeof(buf));

	*prot_us = 1e30;
	*unprot_us = 1e30;
	for (int run = 0; run < 5; run++) {
		uint32_t base = (uint32_t)run * n;
		double t0 = now_us(), t;

		/* protect in place; the payload is whatever the last
		 * iteration left, which costs the same to encrypt */
		for (unsigned i = 0; i < n; i++) {
			size_t len = PKT_BYTES;
			header(buf, base + i, 0x12345678);
			if (cv_srtp_protect(out, buf, &len, sizeof(buf))) {
				err = -1;
				goto out;
			}
		}
		t = (now_us() - t0) / n;
		if (t < *prot_us)
			*prot_us = t;
	}

	/* unprotect: batches of 4096 packets protected first, so that only
	 * the unprotect calls are timed */
	for (int run = 0; run < 5; run++) {
		double total = 0;
		for (unsigned done = 0; done < n; done += 4096) {
			/* another SSRC: its first packet must have ROC 0
			 * for the receiver to guess it */
			uint32_t base = (uint32_t)run * n + done;
			unsigned batch = n - done < 4096 ? n - done : 4096;
			double t0;
			for (unsigned i = 0; i < batch; i++) {
				size_t len = PKT_BYTES;
				uint8_t *b = enc + i * stride;
				memset(b, 0x5a, PKT_BYTES);
				header(b, base + i, 0x9abcdef0);
				if (cv_srtp_protect(out, b, &len, stride)) {
					err = -1;
					goto out;
				}
			}
			t0 = now_us();
			for (unsigned i = 0; i < batch; i++) {
				size_t len = PKT_BYTES + trailer;
				if (cv_srtp_unprotect(in, enc + i * stride,
						      &len)) {
					err = -1;
					goto out;
				}
			}
			total += now_us() - t0;
		}
		if (total / n < *unprot_us)
			*unprot_us = total / n;
	}
out:
	free(enc);
	cv_srtp_destroy(out);
	cv_srtp_destroy(in);
	return err;
}

int main(int argc, char **argv)
{
	static const enum cv_srtp_profile ps[] = {
		CV_SRTP_AES128_CM_HMAC_SHA1_80,
		CV_SRTP_AEAD_AES_128_GCM,
		CV_SRTP_AEAD_AES_256_GCM,
	};
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;

	if (n == 0 || n > 10000000 || cv_srtp_global_init() != 0)
		return 2;
	printf("libsrtp2 backend: %s, %u packets of %d bytes per run\n",
	       cv_srtp_backend(), n, PKT_BYTES);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		double p = 0, u = 0;
		if (bench(ps[i], n, &p, &u)) {
			fprintf(stderr, "bench_srtp: %s failed\n",
				cv_srtp_profile_name(ps[i]));
			return 1;
		}
		printf("%-24s protect %6.2f us/pkt  unprotect %6.2f us/pkt\n",
		       cv_srtp_profile_name(ps[i]), p, u);
	}
	return 0;
}
