/*
 * Master key file and KMS certificate: load, or generate on first start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/files.h"
#include "kms/store.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int write_new_key(const char *path)
{
	struct cv_secret k;
	cv_secret_init(&k);
	int err = cv_secret_random(&k, CV_KMS_MASTER_KEY_BYTES);
	if (err)
		return err;
	char hex[2 * CV_KMS_MASTER_KEY_BYTES + 2];
	const uint8_t *d = cv_secret_data(&k);
	for (size_t i = 0; i < CV_KMS_MASTER_KEY_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	hex[2 * CV_KMS_MASTER_KEY_BYTES] = '\n';
	cv_secret_wipe(&k);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	size_t len = 2 * CV_KMS_MASTER_KEY_BYTES + 1;
	if (write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
		err = errno ? -errno : -EIO;
	close(fd);
	if (err)
		unlink(path);
	else
		cv_log(CV_LOG_INFO, CV_LOG_KMS,
		       "master key generated (first start)");
out:
	OPENSSL_cleanse(hex, sizeof(hex));
	return err;
}

int cv_kms_master_key_load(const char *path, bool create, struct cv_secret *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		int err = write_new_key(path);
		if (err && err != -EEXIST)
			return err;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "master key file is readable by others: chmod 600 it");
		close(fd);
		return -EACCES;
	}
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return -errno;
	uint8_t key[CV_KMS_MASTER_KEY_BYTES];
	size_t got = 0;
	int err = 0, hi = -1;
	for (ssize_t i = 0; i < n && !err; i++) {
		char c = buf[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		int v = hexval(c);
		if (v < 0 || got == sizeof(key)) {
			err = CV_EPARSE;
		} else if (hi < 0) {
			hi = v;
		} else {
			key[got++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (!err && (got != sizeof(key) || hi >= 0))
		err = CV_EPARSE;
	if (!err)
		err = cv_secret_set(out, key, sizeof(key));
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(key, sizeof(key));
	return err;
}

/* ---- certificate ------------------------------------------------------- */

static int generate(const char *cn, X509 **cert_out, EVP_PKEY **key_out)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int err = CV_ECRYPTO;
	uint8_t serial[16];
	if (!key || !x)
		goto fail;
	BIGNUM *bn = NULL;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* RFC 5280 section 4.1.2.2: positive */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	X509_NAME *name = X509_get_subject_name(x);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    X509_set_version(x, 2) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_set_pubkey(x, key) != 1 ||
	    X509_sign(x, key, EVP_sha256()) <= 0) {
		BN_free(bn);
		goto fail;
	}
	BN_free(bn);
	*cert_out = x;
	*key_out = key;
	return 0;
fail:
	X509_free(x);
	EVP_PKEY_free(key);
	return err;
}

static int save(const char *cert_path, const char *key_path, X509 *x,
		EVP_PKEY *key)
{
	int fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || ok != 1)
		goto fail_key;
	f = fopen(cert_path, "wx");
	if (!f)
		goto fail_key;
	ok = PEM_write_X509(f, x);
	if (fclose(f) != 0 || ok != 1) {
		unlink(cert_path);
		goto fail_key;
	}
	return 0;
fail_key:
	unlink(key_path);
	return CV_ECRYPTO;
}

static int load(const char *cert_path, const char *key_path, X509 **cert_out,
		EVP_PKEY **key_out)
{
	FILE *f = fopen(cert_path, "re");
	if (!f)
		return -errno;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return CV_EPARSE;
	f = fopen(key_path, "re");
	if (!f) {
		int err = -errno;
		X509_free(x);
		return err;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	int err = 0;
	char group[32] = "";
	size_t glen = 0;
	if (!key)
		err = CV_EPARSE;
	else if (!EVP_PKEY_is_a(key, "EC") ||
		 EVP_PKEY_get_utf8_string_param(key, "group", group,
						sizeof(group), &glen) != 1 ||
		 strcmp(group, "prime256v1") != 0)
		err = CV_EUNSUPP;
	else if (X509_check_private_key(x, key) != 1)
		err = CV_ECRYPTO;
	if (err) {
		X509_free(x);
		EVP_PKEY_free(key);
		return err;
	}
	*cert_out = x;
	*key_out = key;
	return 0;
}

int cv_kms_cert_load(const char *cert_path, const char *key_path,
		     const char *cn, bool create, X509 **cert_out,
		     EVP_PKEY **key_out,
		     char fingerprint[CV_KMS_FINGERPRINT_SIZE])
{
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	int err;
	if (create && access(cert_path, F_OK) != 0 &&
	    access(key_path, F_OK) != 0) {
		err = generate(cn, &x, &key);
		if (!err)
			err = save(cert_path, key_path, x, key);
		if (!err)
			cv_log(CV_LOG_INFO, CV_LOG_KMS,
			       "certificate generated (first start)");
	} else {
		err = load(cert_path, key_path, &x, &key);
	}
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	if (!err && X509_digest(x, EVP_sha256(), md, &md_len) != 1)
		err = CV_ECRYPTO;
	if (err) {
		X509_free(x);
		EVP_PKEY_free(key);
		return err;
	}
	int n = snprintf(fingerprint, CV_KMS_FINGERPRINT_SIZE, "sha-256 ");
	for (unsigned i = 0; i < md_len; i++)
		n += snprintf(fingerprint + n,
			      CV_KMS_FINGERPRINT_SIZE - (size_t)n, "%s%02X",
			      i ? ":" : "", md[i]);
	*cert_out = x;
	*key_out = key;
	return 0;
}
