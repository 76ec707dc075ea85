/*
 * The linked libsrtp2 must be the OpenSSL build that
 * scripts/build-libsrtp2.sh installs (Debian's NSS build is ~5x slower for
 * AES-CM; docs/dependencies.md). Set CONCLAVE_ALLOW_NSS_SRTP=1 to accept
 * another backend on a machine where the script was not run.
 */
#include <stdlib.h>

#include "conclave/srtp.h"
#include "cv_test.h"

int main(void)
{
	const char *allow = getenv("CONCLAVE_ALLOW_NSS_SRTP");
	const char *b;

	CV_CHECK_INT(cv_srtp_global_init(), 0);
	b = cv_srtp_backend();
	printf("libsrtp2 backend: %s\n", b);
	CV_CHECK(strcmp(b, "unknown") != 0);
	if (!allow || strcmp(allow, "1") != 0)
		CV_CHECK_STR(b, "openssl");
	return cv_test_done("test_srtp_backend");
}
