/*
 * The endpoint's hop keys from its DTLS association: the double material
 * (client/perc/double_material.c, docs/perc.md's rule) laid out and split
 * into inner and outer halves.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/perc_e2e.h"

#define SALT2 (2 * CV_PERC_HALF_SALT_BYTES)

int cv_perc_hop_keys_from_dtls(uint16_t srtp_profile_id,
			       const uint8_t *material, size_t len,
			       bool is_client, enum cv_perc_profile *profile,
			       struct cv_perc_hop_keys *out)
{
	uint8_t d[2 * (2 * 32 + SALT2)];
	struct cv_secret key[2], salt[2]; /* [0] client, [1] server */
	enum cv_perc_profile p;
	size_t half, off = 0;
	int n, err = 0;

	if (!out)
		return -EINVAL;
	n = cv_perc_double_material(srtp_profile_id, material, len, &p, d,
				    sizeof(d));
	if (n < 0)
		return n;
	half = cv_perc_profile_half_key_bytes(p);
	/* RFC 5764 section 4.2 layout with double lengths. */
	for (int i = 0; i < 2; i++) {
		cv_secret_init(&key[i]);
		cv_secret_init(&salt[i]);
	}
	for (int i = 0; i < 2 && !err; i++, off += 2 * half)
		err = cv_secret_set(&key[i], d + off, 2 * half);
	for (int i = 0; i < 2 && !err; i++, off += SALT2)
		err = cv_secret_set(&salt[i], d + off, SALT2);
	OPENSSL_cleanse(d, sizeof(d));
	/* The endpoint is the DTLS client: it sends with the client's keys. */
	int tx = is_client ? 0 : 1, rx = 1 - tx;
	struct cv_perc_hop_keys k;
	memset(&k, 0, sizeof(k));
	if (!err)
		err = cv_perc_split_double_key(p, &key[tx], &salt[tx],
					       &k.inner_tx, &k.outer_tx);
	if (!err)
		err = cv_perc_split_double_key(p, &key[rx], &salt[rx],
					       &k.inner_rx, &k.outer_rx);
	for (int i = 0; i < 2; i++) {
		cv_secret_wipe(&key[i]);
		cv_secret_wipe(&salt[i]);
	}
	if (err) {
		cv_perc_hop_keys_wipe(&k);
		return err;
	}
	*out = k;
	cv_perc_hop_keys_wipe(&k);
	if (profile)
		*profile = p;
	return 0;
}

void cv_perc_hop_keys_wipe(struct cv_perc_hop_keys *k)
{
	if (!k)
		return;
	cv_secret_wipe(&k->inner_tx);
	cv_secret_wipe(&k->outer_tx);
	cv_secret_wipe(&k->inner_rx);
	cv_secret_wipe(&k->outer_rx);
}
