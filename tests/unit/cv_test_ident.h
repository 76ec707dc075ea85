/*
 * Test identities: a self-signed ECDSA P-256 certificate and its key,
 * written as PEM files, with the certificate's "sha-256 AB:..." pin. What
 * every test of the RFC 9185 tunnel or the Key Distributor needs for its
 * node and KD ends (tests/unit/net, switch, node; tests/integration/kms).
 * Header-only (static inline) so that any test program can use it
 * without a helper library in its meson target.
 */
#ifndef CV_TEST_IDENT_H
#define CV_TEST_IDENT_H

#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/tunnel.h"

/*
 * Writes cert_path and key_path (a new key pair each call; subject and
 * issuer CN = cn, valid from an hour ago for a day, serial `serial`) and
 * the certificate's pin into fp (may be NULL). Returns 0, or -1 when any
 * step failed (partly written files are left behind).
 */
static inline int cv_test_write_ident(const char *cert_path,
				      const char *key_path, const char *cn,
				      long serial, char fp[CV_TUNNEL_FP_STRLEN])
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *fc = fopen(cert_path, "w"), *fk = fopen(key_path, "w");
	X509_NAME *nm;
	int rc = -1;

	if (!pk || !x || !fc || !fk)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, nm);
	if (X509_sign(x, pk, EVP_sha256()) > 0 && PEM_write_X509(fc, x) &&
	    PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL) &&
	    (!fp || cv_tunnel_cert_fingerprint(x, fp) == 0))
		rc = 0;
out:
	if (fc)
		fclose(fc);
	if (fk)
		fclose(fk);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

#endif
