/*
 * The KMS's own files: the master key that wraps keys at rest and the
 * KMS certificate (ECDSA P-256) that authenticates it to clients. Both are
 * generated on first start when absent, private files created 0600.
 *
 * Thread: startup (blocking file I/O).
 */
#ifndef CONCLAVE_KMS_FILES_H
#define CONCLAVE_KMS_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "conclave/secret.h"

/* "sha-256 " + 32 hex pairs with colons + NUL. */
#define CV_KMS_FINGERPRINT_SIZE 104

/*
 * Reads the master key (64 hex digits, blanks and a newline around are
 * fine) from `path` into *out. When the file does not exist and `create`
 * is true, generates a random key and writes it (O_EXCL, mode 0600).
 * Errors: -ENOENT (missing, create false), CV_EPARSE (not 64 hex digits),
 * -EACCES when the file is readable by group or others, other -errno.
 * *out is written on success only.
 */
int cv_kms_master_key_load(const char *path, bool create,
			   struct cv_secret *out);

/*
 * Loads the PEM certificate and private key; when both files are missing
 * and `create` is true, generates an ECDSA P-256 key and a self-signed
 * certificate (CN `cn`, 10 years) and writes them (key 0600). The key must
 * be a P-256 EC key matching the certificate. *cert_out / *key_out (new
 * references, free with X509_free / EVP_PKEY_free) and fingerprint (the
 * certificate's SHA-256, "sha-256 AB:CD:...") are written on success only.
 * Errors: -ENOENT, CV_EPARSE, CV_EUNSUPP (not P-256), CV_ECRYPTO, -errno.
 */
int cv_kms_cert_load(const char *cert_path, const char *key_path,
		     const char *cn, bool create, X509 **cert_out,
		     EVP_PKEY **key_out,
		     char fingerprint[CV_KMS_FINGERPRINT_SIZE]);

#endif
