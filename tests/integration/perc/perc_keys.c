/*
 * Issue 4, done-when 2: the node never holds an end-to-end key. Run by
 * perc_keys.py, which starts the real conclave-kms and node and mints the
 * tokens.
 *
 * usage: perc_keys URL ROOM KMS_CERT NODE_PID NODE_LOG MEMSCAN
 *                  NTOK_A KTOK_A NTOK_B KTOK_B NTOK_C KTOK_C
 *
 * Three client-library endpoints (A creates the perc room at the KMS and
 * adds B and C) exchange audio and video through the node. While the call
 * runs, and again after everyone left, tests/tools/memscan reads the
 * node's whole memory (/proc/PID/mem, every readable mapping) and its log
 * for every end-to-end key the endpoints used -- their inner master keys,
 * the inner SRTP session keys derived from them, the EKT keys and the
 * inner master salts -- as raw octets, hex and base64: no hit allowed.
 * The same scan must find the hop-by-hop keys (libsrtp keeps the session
 * keys it derives from them, not the master keys, so both are searched):
 * that shows the scan can see key material where it is.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "conclave/client.h"

#define MAX_ARGS 512

static int failed;

static void check(bool ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failed++;
}

static struct cv_client *ep[3];

static struct cv_client *endpoint(struct cv_client_loop *loop, char **argv,
				  const char *ntok, const char *ktok,
				  bool create)
{
	static const char *const add[] = {"sub-b", "sub-c", NULL};
	struct cv_client_opts o = {
		.url = argv[1],
		.token = ntok,
		.room = argv[2],
		.audio = true,
		.video = true,
		.subscribe = true,
		.ice_address = "127.0.0.1",
		.perc = {.enabled = true,
			 .kms_cert_file = argv[3],
			 .kms_token = ktok,
			 .create_room = create,
			 .add_members = create ? add : NULL},
	};
	struct cv_client *c = NULL;

	if (cv_client_create(&c, loop, &o, NULL)) {
		fprintf(stderr, "perc_keys: cv_client_create failed\n");
		exit(1);
	}
	return c;
}

static bool run_until(struct cv_client_loop *loop, bool (*done)(void),
		      int64_t timeout_ms)
{
	int64_t end = g_get_monotonic_time() + timeout_ms * 1000;

	while (!done()) {
		if (g_get_monotonic_time() >= end)
			return false;
		cv_client_loop_run(loop, 20, false);
	}
	return true;
}

static bool a_joined(void)
{
	return cv_client_get_state(ep[0]) != CV_CLIENT_CONNECTING;
}

static bool all_flowing(void)
{
	for (int i = 0; i < 3; i++) {
		struct cv_client_perc_stats s;

		cv_client_perc_stats(ep[i], &s);
		if (cv_client_get_state(ep[i]) != CV_CLIENT_SUBSCRIBED ||
		    s.verified < 300)
			return false;
	}
	return true;
}

/* ---- the scan's key list ---- */

static char *scan_args[MAX_ARGS];
static size_t n_scan_args;

static void add_key(const char *kind, int idx, const uint8_t *b, size_t len)
{
	char *s = g_malloc(strlen(kind) + 16 + 2 * len + 1);
	int n = sprintf(s, "%s%d=", kind, idx);

	for (size_t i = 0; i < len; i++)
		n += sprintf(s + n, "%02x", b[i]);
	if (n_scan_args < MAX_ARGS)
		scan_args[n_scan_args++] = s;
	else
		g_free(s);
}

/*
 * The RFC 3711 section 4.3 KDF with the AES-CM PRF, key derivation rate
 * 0, as libsrtp runs it for the AEAD profiles (RFC 7714 section 12: the
 * 96-bit salt padded with two zero octets): x = salt XOR (label << 48),
 * IV = x || 0x0000, session key = the first len octets of AES-CTR keystream
 * under the master key.
 */
static int kdf(const uint8_t *master, size_t key_len, const uint8_t salt[12],
	       uint8_t label, uint8_t *out)
{
	uint8_t iv[16] = {0}, zeros[32] = {0};
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	memcpy(iv, salt, 12);
	iv[7] ^= label;
	ok = ctx &&
	     EVP_EncryptInit_ex(
		     ctx, key_len == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr(),
		     NULL, master, iv) == 1 &&
	     EVP_EncryptUpdate(ctx, out, &n, zeros, (int)key_len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok && n == (int)key_len ? 0 : -1;
}

/* A hop key (key || 12-octet salt): the master key and the SRTP and SRTCP
 * session encryption keys libsrtp derives from it. */
static void add_hop(const struct cv_client_perc_key *k, int *idx)
{
	size_t key_len = k->len > 12 ? (size_t)k->len - 12 : 0;
	uint8_t sk[32];

	if (key_len != 16 && key_len != 32)
		return;
	add_key("hop_master", *idx, k->b, key_len);
	if (!kdf(k->b, key_len, k->b + key_len, 0x00, sk))
		add_key("hop_srtp", *idx, sk, key_len);
	if (!kdf(k->b, key_len, k->b + key_len, 0x03, sk))
		add_key("hop_srtcp", *idx, sk, key_len);
	OPENSSL_cleanse(sk, sizeof(sk));
	(*idx)++;
}

static void collect_keys(void)
{
	int e2e = 0, hop = 0;

	for (int i = 0; i < 3; i++) {
		struct cv_client_perc_keys k;

		cv_client_perc_keys(ep[i], &k);
		for (size_t j = 0; j < k.n_ekt; j++) {
			add_key("e2e_ekt", e2e++, k.ekt[j].b, k.ekt[j].len);
			add_key("e2e_inner_salt", e2e++, k.inner_salt[j].b,
				k.inner_salt[j].len);
		}
		for (size_t j = 0; j < k.n_inner; j++) {
			uint8_t sk[32];

			add_key("e2e_inner", e2e++, k.inner[j].b,
				k.inner[j].len);
			for (size_t s = 0; s < k.n_ekt; s++)
				if (k.inner_salt[s].len == 12 &&
				    (k.inner[j].len == 16 ||
				     k.inner[j].len == 32) &&
				    !kdf(k.inner[j].b, k.inner[j].len,
					 k.inner_salt[s].b, 0x00, sk))
					add_key("e2e_inner_srtp", e2e++, sk,
						k.inner[j].len);
			OPENSSL_cleanse(sk, sizeof(sk));
		}
		for (int j = 0; j < 2; j++) {
			add_hop(&k.hop_out[j], &hop);
			add_hop(&k.hop_in[j], &hop);
		}
		OPENSSL_cleanse(&k, sizeof(k));
	}
	printf("scanning for %d end-to-end and %d hop-by-hop key forms\n", e2e,
	       hop * 3);
}

/* Runs memscan; sums the hits of the e2e_* and hop_* keys. */
static int scan(const char *memscan, const char *pid, const char *log,
		unsigned long *e2e_hits, unsigned long *hop_hits,
		char *e2e_first, size_t first_cap)
{
	char *argv[MAX_ARGS + 8];
	size_t n = 0;
	gchar *out = NULL;
	gint status = 0;
	GError *err = NULL;

	argv[n++] = (char *)memscan;
	argv[n++] = "--pid";
	argv[n++] = (char *)pid;
	argv[n++] = "--file";
	argv[n++] = (char *)log;
	for (size_t i = 0; i < n_scan_args; i++)
		argv[n++] = scan_args[i];
	argv[n] = NULL;
	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out,
			  NULL, &status, &err) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		fprintf(stderr, "perc_keys: memscan failed: %s\n",
			err ? err->message : "exit status");
		g_clear_error(&err);
		g_free(out);
		return -1;
	}
	*e2e_hits = *hop_hits = 0;
	e2e_first[0] = '\0';
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char name[64];
		unsigned long raw, hex, b64;

		if (sscanf(line, "%63s raw=%lu hex=%lu base64=%lu", name, &raw,
			   &hex, &b64) != 4)
			continue;
		if (!strncmp(name, "e2e_", 4)) {
			*e2e_hits += raw + hex + b64;
			if (raw + hex + b64 && !e2e_first[0])
				snprintf(e2e_first, first_cap, "%s", line);
		} else if (!strncmp(name, "hop_", 4) && raw + hex + b64) {
			*hop_hits += raw + hex + b64;
			if (*hop_hits == raw + hex + b64)
				printf("hop key found: %s\n", line);
		}
	}
	g_free(out);
	return 0;
}

int main(int argc, char **argv)
{
	struct cv_client_loop *loop = NULL;
	unsigned long e2e = 0, hop = 0;
	char first[128], line[256];

	if (argc != 13) {
		fprintf(stderr, "usage: perc_keys URL ROOM KMS_CERT NODE_PID "
				"NODE_LOG MEMSCAN NTOK_A KTOK_A NTOK_B "
				"KTOK_B NTOK_C KTOK_C\n");
		return 2;
	}
	if (cv_client_loop_create(&loop, NULL))
		return 1;
	ep[0] = endpoint(loop, argv, argv[7], argv[8], true);
	check(run_until(loop, a_joined, 15000) &&
		      cv_client_get_state(ep[0]) != CV_CLIENT_FAILED,
	      "A created the room at the KMS and joined");
	ep[1] = endpoint(loop, argv, argv[9], argv[10], false);
	ep[2] = endpoint(loop, argv, argv[11], argv[12], false);
	check(run_until(loop, all_flowing, 20000),
	      "A, B and C verify each other's media end to end");
	if (failed)
		goto out;
	collect_keys();

	check(scan(argv[6], argv[4], argv[5], &e2e, &hop, first,
		   sizeof(first)) == 0,
	      "memscan read the node's memory and log during the call");
	snprintf(line, sizeof(line),
		 "during the call: %lu hits of end-to-end keys in the node's "
		 "memory and log%s%s",
		 e2e, first[0] ? ", first: " : "", first);
	check(e2e == 0, line);
	snprintf(line, sizeof(line),
		 "during the call: %lu hits of hop-by-hop keys (the scan sees "
		 "keys that are there)",
		 hop);
	check(hop > 0, line);

	/* Everyone leaves. The node frees their transports when it sees
	 * the sockets close (and on ICE consent loss at the latest): scan
	 * until the hop keys are gone too, at most 15 s; every scan on the
	 * way must be free of end-to-end keys. */
	for (int i = 0; i < 3; i++)
		cv_client_leave(ep[i]);
	{
		int64_t end = g_get_monotonic_time() + 15000000;
		bool scanned = true;
		unsigned long e2e_any = 0;

		do {
			cv_client_loop_run(loop, 300, false);
			scanned = scan(argv[6], argv[4], argv[5], &e2e, &hop,
				       first, sizeof(first)) == 0;
			e2e_any += e2e;
		} while (scanned && hop && g_get_monotonic_time() < end);
		check(scanned && e2e_any == 0,
		      "after the call: no end-to-end key in the node's memory "
		      "or log");
		/* Hygiene, not the claim: the node wipes the hop keys of
		 * the sessions it freed (libsrtp contexts, the tunnel's
		 * TLS buffers). */
		snprintf(line, sizeof(line),
			 "after the call: %lu hits of hop-by-hop keys (the "
			 "node wiped the keys of the sessions it closed)",
			 hop);
		check(hop == 0, line);
	}
out:
	for (int i = 0; i < 3; i++)
		cv_client_destroy(ep[i]);
	for (size_t i = 0; i < n_scan_args; i++) {
		OPENSSL_cleanse(scan_args[i], strlen(scan_args[i]));
		g_free(scan_args[i]);
	}
	cv_client_loop_destroy(loop);
	printf("%s: %d failed\n", failed ? "FAIL" : "PASS", failed);
	return failed ? 1 : 0;
}
