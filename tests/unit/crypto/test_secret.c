#include <errno.h>

#include "conclave/err.h"
#include "conclave/secret.h"
#include "cv_test.h"

static void test_set_and_read(void)
{
	struct cv_secret s;
	uint8_t k[16];

	for (size_t i = 0; i < sizeof(k); i++)
		k[i] = (uint8_t)(i + 1);
	cv_secret_init(&s);
	CV_CHECK_INT(cv_secret_len(&s), 0);
	CV_CHECK_INT(cv_secret_set(&s, k, sizeof(k)), 0);
	CV_CHECK_INT(cv_secret_len(&s), 16);
	CV_CHECK_MEM(cv_secret_data(&s), k, sizeof(k));

	/* A shorter key leaves nothing of the old one behind. */
	CV_CHECK_INT(cv_secret_set(&s, k, 4), 0);
	CV_CHECK_INT(cv_secret_len(&s), 4);
	for (size_t i = 4; i < CV_SECRET_MAX_BYTES; i++)
		CV_CHECK_INT(s.bytes[i], 0);

	CV_CHECK_INT(cv_secret_set(&s, NULL, 0), 0);
	CV_CHECK_INT(cv_secret_len(&s), 0);
	CV_CHECK_INT(cv_secret_set(&s, NULL, 3), -EINVAL);
}

static void test_too_big(void)
{
	uint8_t big[CV_SECRET_MAX_BYTES + 1] = {0};
	struct cv_secret s;

	big[0] = 7;
	cv_secret_init(&s);
	CV_CHECK_INT(cv_secret_set(&s, big, CV_SECRET_MAX_BYTES), 0);
	CV_CHECK_INT(cv_secret_set(&s, big, sizeof(big)), CV_ETOOBIG);
	CV_CHECK_INT(cv_secret_len(&s), 0);
	CV_CHECK_INT(s.bytes[0], 0);
	CV_CHECK_INT(cv_secret_random(&s, sizeof(big)), CV_ETOOBIG);
	CV_CHECK_INT(cv_secret_len(&s), 0);
}

static void test_wipe_copy_equal(void)
{
	struct cv_secret a, b, c;
	const uint8_t k1[] = {1, 2, 3, 4, 5};
	const uint8_t k2[] = {1, 2, 3, 4, 6};

	cv_secret_init(&a);
	cv_secret_init(&b);
	cv_secret_init(&c);
	CV_CHECK(cv_secret_equal(&a, &b)); /* both empty */
	cv_secret_set(&a, k1, sizeof(k1));
	CV_CHECK(!cv_secret_equal(&a, &b));
	cv_secret_copy(&b, &a);
	CV_CHECK(cv_secret_equal(&a, &b));
	cv_secret_copy(&b, &b); /* self copy is harmless */
	CV_CHECK(cv_secret_equal(&a, &b));
	cv_secret_set(&c, k2, sizeof(k2));
	CV_CHECK(!cv_secret_equal(&a, &c));
	cv_secret_set(&c, k1, 4); /* prefix: different length */
	CV_CHECK(!cv_secret_equal(&a, &c));

	cv_secret_wipe(&a);
	CV_CHECK_INT(cv_secret_len(&a), 0);
	for (size_t i = 0; i < CV_SECRET_MAX_BYTES; i++)
		CV_CHECK_INT(a.bytes[i], 0);
	CV_CHECK(!cv_secret_equal(&a, &b));
}

static void test_random(void)
{
	struct cv_secret a, b;

	cv_secret_init(&a);
	cv_secret_init(&b);
	CV_CHECK_INT(cv_secret_random(&a, 30), 0);
	CV_CHECK_INT(cv_secret_random(&b, 30), 0);
	CV_CHECK_INT(cv_secret_len(&a), 30);
	CV_CHECK(!cv_secret_equal(&a, &b));
	cv_secret_wipe(&a);
	cv_secret_wipe(&b);
}

static void test_id(void)
{
	struct cv_secret a, b;
	char ida[CV_SECRET_ID_SIZE], idb[CV_SECRET_ID_SIZE];
	const uint8_t k1[] = "0123456789abcdef";
	const uint8_t k2[] = "0123456789abcdeF";

	cv_secret_init(&a);
	cv_secret_id(&a, ida);
	CV_CHECK_STR(ida, "00000000");

	cv_secret_set(&a, k1, 16);
	cv_secret_set(&b, k1, 16);
	cv_secret_id(&a, ida);
	cv_secret_id(&b, idb);
	CV_CHECK_INT(strlen(ida), 8);
	CV_CHECK_STR(ida, idb);
	for (int i = 0; i < 8; i++)
		CV_CHECK((ida[i] >= '0' && ida[i] <= '9') ||
			 (ida[i] >= 'a' && ida[i] <= 'f'));
	/* Not the key itself: the id of "0123..." must not start "3031". */
	CV_CHECK(memcmp(ida, "3031", 4) != 0);
	cv_secret_set(&b, k2, 16);
	cv_secret_id(&b, idb);
	CV_CHECK(strcmp(ida, idb) != 0);
}

int main(void)
{
	test_set_and_read();
	test_too_big();
	test_wipe_copy_equal();
	test_random();
	test_id();
	return cv_test_done("test_secret");
}
