#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "media/switch/addr_map.h"
#include "cv_test.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (void *)&ss;
	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	inet_pton(AF_INET, ip, &a->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *a = (void *)&ss;
	memset(&ss, 0, sizeof(ss));
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &a->sin6_addr);
	return ss;
}

int main(void)
{
	struct cv_addr_map m;
	int vals[5000];
	CV_CHECK_INT(cv_addr_map_init(&m, 4), 0);
	/* Many entries: growth keeps every one findable. */
	for (int i = 0; i < 5000; i++) {
		struct sockaddr_storage a =
			v4("10.0.0.1", (uint16_t)(1000 + i));
		CV_CHECK_INT(cv_addr_map_put(&m, &a, &vals[i]), 0);
	}
	int found = 0;
	for (int i = 0; i < 5000; i++) {
		struct sockaddr_storage a =
			v4("10.0.0.1", (uint16_t)(1000 + i));
		found += cv_addr_map_get(&m, &a) == &vals[i];
	}
	CV_CHECK_INT(found, 5000);
	/* Same port, other address; IPv6; unknown. */
	struct sockaddr_storage b = v4("10.0.0.2", 1000);
	struct sockaddr_storage c = v6("::1", 1000);
	CV_CHECK(cv_addr_map_get(&m, &b) == NULL);
	CV_CHECK_INT(cv_addr_map_put(&m, &c, &vals[1]), 0);
	CV_CHECK(cv_addr_map_get(&m, &c) == &vals[1]);
	/* Deleting keeps the others reachable (tombstones); only the named
	 * value is deleted. */
	for (int i = 0; i < 5000; i += 2) {
		struct sockaddr_storage a =
			v4("10.0.0.1", (uint16_t)(1000 + i));
		cv_addr_map_del(&m, &a, &vals[i + 1]); /* wrong value: kept */
		CV_CHECK(cv_addr_map_get(&m, &a) == &vals[i]);
		cv_addr_map_del(&m, &a, &vals[i]);
	}
	found = 0;
	for (int i = 0; i < 5000; i++) {
		struct sockaddr_storage a =
			v4("10.0.0.1", (uint16_t)(1000 + i));
		void *v = cv_addr_map_get(&m, &a);
		found += (i % 2) ? v == &vals[i] : v == NULL;
	}
	CV_CHECK_INT(found, 5000);
	/* Re-inserting over tombstones, then churn does not grow forever. */
	for (int round = 0; round < 20; round++)
		for (int i = 0; i < 5000; i += 2) {
			struct sockaddr_storage a =
				v4("10.0.0.1", (uint16_t)(1000 + i));
			cv_addr_map_put(&m, &a, &vals[i]);
			cv_addr_map_del(&m, &a, NULL);
		}
	CV_CHECK(m.cap <= 32768);
	CV_CHECK_INT(m.live, 2501);
	struct sockaddr_storage bad;
	memset(&bad, 0, sizeof(bad));
	CV_CHECK(cv_addr_map_put(&m, &bad, &vals[0]) < 0);
	CV_CHECK(cv_addr_map_get(&m, &bad) == NULL);
	cv_addr_map_fini(&m);
	return cv_test_done("test_addr_map");
}
