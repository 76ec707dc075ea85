#include <string.h>

#include "conclave/err.h"

const char *cv_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case CV_EAUTH:
		return "not authorized";
	case CV_EREPLAY:
		return "replayed";
	case CV_ETOOBIG:
		return "too big";
	case CV_EPARSE:
		return "malformed input";
	case CV_ECRYPTO:
		return "cryptographic failure";
	case CV_EPROTO:
		return "protocol violation";
	case CV_EEXPIRED:
		return "expired";
	case CV_EUNSUPP:
		return "not supported";
	case CV_EDRAINING:
		return "node is draining";
	case CV_EINTEGRITY:
		return "integrity check failed";
	default:
		/* strerror() is not thread-safe in theory; strerrordesc_np is.
		 */
		if (err < 0 && err > -1000) {
			const char *s = strerrordesc_np(-err);
			return s ? s : "unknown error";
		}
		return "unknown error";
	}
}
