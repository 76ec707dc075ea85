#include <errno.h>

#include "media/switch/nack_cache.h"
#include "cv_test.h"

int main(void)
{
	struct cv_nack_cache *c;
	CV_CHECK_INT(cv_nack_cache_create(&c, 0), -EINVAL);
	CV_CHECK_INT(cv_nack_cache_create(&c, 100), 0); /* 128 slots */
	uint8_t pkt[1600] = {0x80, 96};
	const uint8_t *got;
	size_t len;
	for (unsigned i = 0; i < 300; i++) {
		pkt[2] = (uint8_t)i;
		cv_nack_cache_put(c, (uint16_t)(65500 + i), pkt, 100, 1000 + i);
	}
	/* Wrapped sequence numbers are found; evicted ones are not. */
	CV_CHECK_INT(cv_nack_cache_get(c, (uint16_t)(65500 + 299), 1299, 1000,
				       &got, &len),
		     0);
	CV_CHECK_INT(len, 100);
	CV_CHECK_INT(got[2], (uint8_t)299);
	CV_CHECK_INT(cv_nack_cache_get(c, (uint16_t)(65500 + 100), 1299, 1000,
				       &got, &len),
		     -ENOENT);
	/* Too old. */
	CV_CHECK_INT(cv_nack_cache_get(c, (uint16_t)(65500 + 299), 5000, 1000,
				       &got, &len),
		     -ENOENT);
	/* Oversized packets are not kept and clear the slot. */
	cv_nack_cache_put(c, 7, pkt, sizeof(pkt), 2000);
	CV_CHECK_INT(cv_nack_cache_get(c, 7, 2000, 1000, &got, &len), -ENOENT);
	cv_nack_cache_destroy(c);
	return cv_test_done("test_nack_cache");
}
