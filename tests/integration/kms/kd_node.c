/*
 * Test helper for the Key Distributor integration test (kd_link.py): a
 * media node's end of the RFC 9185 tunnel (cv_tunnel_link) against a real
 * conclave-kms, and the certificates it needs.
 *
 *   kd_node cert DIR NAME
 *       writes DIR/NAME-cert.pem and DIR/NAME-key.pem (self-signed ECDSA
 *       P-256) and prints the certificate's "sha-256 AB:CD:..." fingerprint
 *   kd_node connect PORT CERT KEY KD_FINGERPRINT TIMEOUT_MS [hold]
 *       connects to 127.0.0.1:PORT pinning the KD's certificate. Prints
 *       "up" when the KD accepted us, "down <code>" on the first failure or
 *       loss, "timeout" at the deadline. Without `hold` it exits at the
 *       first of those (0 up, 1 down, 2 timeout); with `hold` it stays up
 *       until the link goes down (then exits 0) or the deadline (2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "conclave/tunnel.h"
#include "cv_test_ident.h"

static int make_cert(const char *dir, const char *name)
{
	char cert[512], key[512], fp[CV_TUNNEL_FP_STRLEN];

	snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, name);
	if (cv_test_write_ident(cert, key, name, 1, fp)) {
		fprintf(stderr, "kd_node: cannot write %s\n", cert);
		return 1;
	}
	printf("%s\n", fp);
	return 0;
}

struct state {
	int up, down, last_err;
};

static void on_up(void *arg)
{
	struct state *s = arg;
	s->up++;
	printf("up\n");
	fflush(stdout);
}

static void on_down(void *arg, int err)
{
	struct state *s = arg;
	s->down++;
	s->last_err = err;
	printf("down %d %s\n", err, cv_strerror(err));
	fflush(stdout);
}

static void on_message(void *arg, const struct cv_tunnel_msg *m)
{
	(void)arg;
	(void)m;
}

static int connect_kd(char **argv, int argc)
{
	struct cv_loop *loop = NULL;
	struct cv_tunnel_link *link = NULL;
	struct state st = {0};
	bool hold = argc > 7 && !strcmp(argv[7], "hold");
	struct cv_tunnel_link_opts lo = {
		.host = "127.0.0.1",
		.port = (uint16_t)atoi(argv[2]),
		.cert_file = argv[3],
		.key_file = argv[4],
		.kd_fingerprint = argv[5],
		.connect_timeout_ms = 5000,
	};
	struct cv_tunnel_link_callbacks cb = {.on_up = on_up,
					      .on_down = on_down,
					      .on_message = on_message,
					      .arg = &st};
	uint64_t end = cv_clock_now_ms() + (uint64_t)atoll(argv[6]);
	int rc = 2;

	if (cv_loop_create(&loop) ||
	    cv_tunnel_link_create(&link, loop, &lo, &cb)) {
		fprintf(stderr, "kd_node: cannot create the link\n");
		rc = 3;
		goto out;
	}
	while (cv_clock_now_ms() < end) {
		cv_loop_run_once(loop, 20);
		if (st.down) {
			rc = hold && st.up ? 0 : 1;
			break;
		}
		if (st.up && !hold) {
			rc = 0;
			break;
		}
	}
	if (rc == 2) {
		printf("timeout\n");
		fflush(stdout);
	}
out:
	cv_tunnel_link_destroy(link);
	cv_loop_destroy(loop);
	return rc;
}

int main(int argc, char **argv)
{
	cv_log_set_level_all(CV_LOG_ERROR);
	if (argc == 4 && !strcmp(argv[1], "cert"))
		return make_cert(argv[2], argv[3]);
	if (argc >= 7 && !strcmp(argv[1], "connect"))
		return connect_kd(argv, argc);
	fprintf(stderr, "usage: kd_node cert DIR NAME | connect PORT CERT KEY "
			"KD_FINGERPRINT TIMEOUT_MS [hold]\n");
	return 2;
}
