/*
 * ICE-lite agent: credential checks and the error answers, pair selection
 * and nomination, consent expiry by stepping the injected clock, ICE
 * restart, and credential generation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "conclave/err.h"
#include "conclave/ice.h"
#include "conclave/stun.h"
#include "cv_test.h"

static const struct cv_ice_credentials local1 = {"LoCa",
						 "localpassword1234567890"};
static const struct cv_ice_credentials remote1 = {"ReMo",
						  "remotepassword123456789"};
static const struct cv_ice_credentials local2 = {"LoC2",
						 "localpassword2xxxxxxxxxx"};
static const struct cv_ice_credentials remote2 = {"ReM2",
						  "remotepassword2yyyyyyyyy"};

static struct sockaddr_storage addr4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage addr6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

/* How a test check deviates from a well-formed one. */
struct check_opts {
	const char *username; /* default "<local>:<remote>" */
	const char *pwd;      /* default local pwd */
	bool use_candidate;
	bool controlled; /* send ICE-CONTROLLED instead of CONTROLLING */
	bool no_priority;
	bool no_integrity;
	bool no_fingerprint;
	bool bad_fingerprint;
	uint16_t unknown_attr; /* 0: none */
	uint16_t method;       /* 0: Binding */
	enum cv_stun_class cls;
};

static uint8_t next_txid;

static size_t make_check(uint8_t *buf, size_t cap,
			 const struct cv_ice_credentials *l,
			 const struct cv_ice_credentials *r,
			 const struct check_opts *o)
{
	char user[600];
	uint8_t txid[12];
	memset(txid, ++next_txid, sizeof(txid));
	if (o->username)
		snprintf(user, sizeof(user), "%s", o->username);
	else
		snprintf(user, sizeof(user), "%s:%s", l->ufrag, r->ufrag);
	const char *pwd = o->pwd ? o->pwd : l->pwd;

	struct cv_stun_writer w;
	size_t n = 0;
	cv_stun_writer_init(&w, buf, cap, o->cls,
			    o->method ? o->method : CV_STUN_METHOD_BINDING,
			    txid);
	if (user[0])
		cv_stun_put_attr(&w, CV_STUN_ATTR_USERNAME, user, strlen(user));
	if (!o->no_priority)
		cv_stun_put_u32(&w, CV_STUN_ATTR_PRIORITY, 0x6e7f1eff);
	if (o->use_candidate)
		cv_stun_put_attr(&w, CV_STUN_ATTR_USE_CANDIDATE, NULL, 0);
	cv_stun_put_u64(&w,
			o->controlled ? CV_STUN_ATTR_ICE_CONTROLLED
				      : CV_STUN_ATTR_ICE_CONTROLLING,
			0x0102030405060708ull);
	if (o->unknown_attr)
		cv_stun_put_u32(&w, o->unknown_attr, 0);
	if (!o->no_integrity)
		cv_stun_put_integrity(&w, (const uint8_t *)pwd, strlen(pwd));
	if (!o->no_fingerprint)
		cv_stun_put_fingerprint(&w);
	CV_CHECK_INT(cv_stun_writer_finish(&w, &n), 0);
	if (o->bad_fingerprint)
		buf[n - 1] ^= 1;
	return n;
}

/* Sends a check; returns the agent's verdict, parses the answer. */
static int send_check(struct cv_ice_lite *ice, const struct check_opts *o,
		      const struct cv_ice_credentials *l,
		      const struct cv_ice_credentials *r,
		      const struct sockaddr_storage *from, uint64_t now,
		      struct cv_stun_msg *resp_msg, uint8_t *resp,
		      size_t *resp_len)
{
	uint8_t req[700];
	size_t n = make_check(req, sizeof(req), l, r, o);
	int ret = cv_ice_lite_handle_stun(ice, req, n, from, now, resp,
					  CV_STUN_RESPONSE_MAX_BYTES, resp_len);
	if (*resp_len) {
		CV_CHECK_INT(cv_stun_parse(resp_msg, resp, *resp_len), 0);
		CV_CHECK_MEM(resp_msg->txid, req + 8, 12);
		CV_CHECK_INT(cv_stun_check_fingerprint(resp_msg), 0);
	}
	return ret;
}

static struct cv_ice_lite *new_agent(uint64_t now)
{
	struct cv_ice_lite *ice = NULL;
	CV_CHECK_INT(cv_ice_lite_create(&ice, NULL, now), 0);
	CV_CHECK_INT(cv_ice_lite_set_local(ice, &local1), 0);
	CV_CHECK_INT(cv_ice_lite_set_remote(ice, &remote1), 0);
	return ice;
}

static void test_credentials(void)
{
	struct cv_ice_credentials a, b;
	CV_CHECK_INT(cv_ice_credentials_generate(&a), 0);
	CV_CHECK_INT(cv_ice_credentials_generate(&b), 0);
	CV_CHECK_INT(strlen(a.ufrag), CV_ICE_UFRAG_CHARS);
	CV_CHECK_INT(strlen(a.pwd), CV_ICE_PWD_CHARS);
	CV_CHECK(strcmp(a.pwd, b.pwd) != 0);
	const char *ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789+/";
	CV_CHECK_INT(strspn(a.ufrag, ok), CV_ICE_UFRAG_CHARS);
	CV_CHECK_INT(strspn(a.pwd, ok), CV_ICE_PWD_CHARS);

	struct cv_ice_lite *ice = NULL;
	CV_CHECK_INT(cv_ice_lite_create(&ice, NULL, 0), 0);
	CV_CHECK_STR(cv_ice_lite_local_ufrag(ice), "");
	struct cv_ice_credentials bad = {"", "pwd"};
	CV_CHECK_INT(cv_ice_lite_set_local(ice, &bad), -EINVAL);
	struct cv_ice_credentials colon = {"a:b", "pwdpwdpwdpwdpwdpwdpwdpwd"};
	CV_CHECK_INT(cv_ice_lite_set_local(ice, &colon), -EINVAL);
	struct cv_ice_credentials nopwd = {"abcd", ""};
	CV_CHECK_INT(cv_ice_lite_set_remote(ice, &nopwd), -EINVAL);
	CV_CHECK_INT(cv_ice_lite_set_local(ice, &a), 0);
	CV_CHECK_STR(cv_ice_lite_local_ufrag(ice), a.ufrag);
	CV_CHECK(cv_ice_lite_owns_ufrag(ice, (const uint8_t *)a.ufrag, 8));
	CV_CHECK(!cv_ice_lite_owns_ufrag(ice, (const uint8_t *)a.ufrag, 7));
	cv_ice_lite_destroy(ice);
	cv_ice_lite_destroy(NULL);
	CV_CHECK_STR(cv_ice_state_name(CV_ICE_FAILED), "failed");
}

static void test_valid_check_and_nomination(void)
{
	struct cv_ice_lite *ice = new_agent(0);
	struct sockaddr_storage a = addr4("198.51.100.7", 40000);
	struct sockaddr_storage b = addr6("2001:db8::9", 40001);
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t rlen;
	struct cv_stun_msg r;
	struct check_opts o = {0};

	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_NEW);
	CV_CHECK(cv_ice_lite_selected(ice) == NULL);

	/* First valid check: selected before any nomination. */
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 100, &r, resp,
				&rlen),
		     0);
	CV_CHECK(rlen > 0);
	CV_CHECK_INT(r.cls, CV_STUN_SUCCESS);
	CV_CHECK(r.has_xor_mapped && cv_sockaddr_equal(&r.xor_mapped, &a));
	CV_CHECK_INT(cv_stun_check_integrity(&r, (const uint8_t *)local1.pwd,
					     strlen(local1.pwd)),
		     0);
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_CONNECTED);
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));
	CV_CHECK(!cv_ice_lite_nominated(ice));

	/* Another address, not nominated: answered, selection unchanged. */
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &b, 200, &r, resp,
				&rlen),
		     0);
	CV_CHECK(cv_sockaddr_equal(&r.xor_mapped, &b));
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));
	CV_CHECK(!cv_ice_lite_is_selected(ice, &b));

	/* USE-CANDIDATE moves it. */
	o.use_candidate = true;
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &b, 300, &r, resp,
				&rlen),
		     0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &b));
	CV_CHECK(cv_ice_lite_nominated(ice));
	CV_CHECK(cv_sockaddr_equal(cv_ice_lite_selected(ice), &b));

	/* A later plain check from a no longer selected address does not. */
	o.use_candidate = false;
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 400, &r, resp,
				&rlen),
		     0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &b));

	struct cv_ice_lite_stats st;
	cv_ice_lite_get_stats(ice, &st);
	CV_CHECK_INT(st.checks_ok, 4);
	CV_CHECK_INT(st.selected_changes, 2);
	cv_ice_lite_destroy(ice);
}

static void test_rejections(void)
{
	struct cv_ice_lite *ice = new_agent(0);
	struct sockaddr_storage a = addr4("198.51.100.7", 40000);
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t rlen;
	struct cv_stun_msg r;
	const uint8_t *lkey = (const uint8_t *)local1.pwd;
	size_t lkey_len = strlen(local1.pwd);

	struct {
		struct check_opts o;
		int ret;
		int code;
		bool mi; /* the error answer carries MESSAGE-INTEGRITY */
	} cases[] = {
		{{.username = "ReMo:LoCa"}, CV_EAUTH, 401, false},
		{{.username = "LoCa:Other"}, CV_EAUTH, 401, false},
		{{.username = "LoCa"}, CV_EAUTH, 401, false},
		{{.username = "LoCaX:ReMo"}, CV_EAUTH, 401, false},
		{{.pwd = "wrong password 12345678"}, CV_EAUTH, 401, false},
		{{.pwd = remote1.pwd}, CV_EAUTH, 401, false},
		{{.no_integrity = true}, CV_EAUTH, 400, false},
		{{.username = ""}, CV_EAUTH, 400, false},
		{{.unknown_attr = 0x7123}, CV_EUNSUPP, 420, true},
		{{.controlled = true}, CV_EPROTO, 487, true},
		{{.no_priority = true}, CV_EPROTO, 400, true},
		{{.method = 0x003}, CV_EUNSUPP, 400, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = send_check(ice, &cases[i].o, &local1, &remote1, &a,
				     10, &r, resp, &rlen);
		CV_CHECK_INT(ret, cases[i].ret);
		CV_CHECK(rlen > 0);
		if (!rlen)
			continue;
		CV_CHECK_INT(r.cls, CV_STUN_ERROR);
		CV_CHECK_INT(r.error_code, cases[i].code);
		if (cases[i].mi)
			CV_CHECK_INT(
				cv_stun_check_integrity(&r, lkey, lkey_len), 0);
		else
			CV_CHECK_INT(r.integrity_offset, 0);
		if (cases[i].code == 420) {
			struct cv_stun_attr_iter it;
			struct cv_stun_attr at;
			bool listed = false;
			cv_stun_attr_iter_init(&it, &r);
			while (cv_stun_attr_next(&it, &at) == 1)
				listed |=
					at.type ==
						CV_STUN_ATTR_UNKNOWN_ATTRIBUTES &&
					at.len == 2 && at.value[0] == 0x71 &&
					at.value[1] == 0x23;
			CV_CHECK(listed);
		}
	}
	/* None of them counted as a check. */
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_NEW);
	CV_CHECK(cv_ice_lite_selected(ice) == NULL);
	struct cv_ice_lite_stats st;
	cv_ice_lite_get_stats(ice, &st);
	CV_CHECK_INT(st.checks_ok, 0);
	CV_CHECK_INT(st.auth_failures, 10);
	CV_CHECK_INT(st.unknown_attrs, 1);
	CV_CHECK_INT(st.role_conflicts, 1);

	/* Silent drops. */
	struct {
		struct check_opts o;
		int ret;
	} drops[] = {
		{{.no_fingerprint = true}, CV_EINTEGRITY},
		{{.bad_fingerprint = true}, CV_EINTEGRITY},
		{{.cls = CV_STUN_SUCCESS}, CV_EPROTO},
		{{.cls = CV_STUN_ERROR}, CV_EPROTO},
		{{.cls = CV_STUN_INDICATION, .method = 5}, CV_EPROTO},
		{{.cls = CV_STUN_INDICATION}, 0},
	};
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
		int ret = send_check(ice, &drops[i].o, &local1, &remote1, &a,
				     10, &r, resp, &rlen);
		CV_CHECK_INT(ret, drops[i].ret);
		CV_CHECK_INT(rlen, 0);
	}
	static const uint8_t junk[] = {0x00, 0x01, 0x00, 0x00, 1, 2, 3};
	rlen = 99;
	CV_CHECK_INT(cv_ice_lite_handle_stun(ice, junk, sizeof(junk), &a, 10,
					     resp, sizeof(resp), &rlen),
		     CV_EPARSE);
	CV_CHECK_INT(rlen, 0);
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_NEW);

	/* Too small an answer buffer: nothing sent, nothing changed. */
	uint8_t req[256];
	struct check_opts ok = {0};
	size_t n = make_check(req, sizeof(req), &local1, &remote1, &ok);
	CV_CHECK_INT(
		cv_ice_lite_handle_stun(ice, req, n, &a, 10, resp, 40, &rlen),
		-ENOBUFS);
	CV_CHECK_INT(rlen, 0);
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_NEW);
	cv_ice_lite_destroy(ice);
}

static void test_credentials_not_yet_known(void)
{
	struct sockaddr_storage a = addr4("192.0.2.1", 5000);
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t rlen;
	struct cv_stun_msg r;
	struct check_opts o = {0};
	struct cv_ice_lite *ice = NULL;

	/* No local credentials: nothing can authenticate. */
	CV_CHECK_INT(cv_ice_lite_create(&ice, NULL, 0), 0);
	CV_CHECK_INT(
		send_check(ice, &o, &local1, &remote1, &a, 1, &r, resp, &rlen),
		CV_EAUTH);
	CV_CHECK_INT(r.error_code, 401);

	/* Local only: any remote ufrag is accepted (RFC 8445 7.3). */
	CV_CHECK_INT(cv_ice_lite_set_local(ice, &local1), 0);
	o.username = "LoCa:whatever";
	CV_CHECK_INT(
		send_check(ice, &o, &local1, &remote1, &a, 2, &r, resp, &rlen),
		0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));
	/* Once the remote is known, it must match. */
	CV_CHECK_INT(cv_ice_lite_set_remote(ice, &remote1), 0);
	CV_CHECK_INT(
		send_check(ice, &o, &local1, &remote1, &a, 3, &r, resp, &rlen),
		CV_EAUTH);
	o.username = NULL;
	CV_CHECK_INT(
		send_check(ice, &o, &local1, &remote1, &a, 4, &r, resp, &rlen),
		0);
	cv_ice_lite_destroy(ice);
}

static void test_consent(void)
{
	struct cv_ice_lite *ice = new_agent(0);
	struct sockaddr_storage a = addr4("198.51.100.7", 40000);
	struct sockaddr_storage b = addr4("198.51.100.8", 40000);
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t rlen;
	struct cv_stun_msg r;
	struct check_opts o = {.use_candidate = true};

	CV_CHECK_INT(cv_ice_lite_next_timeout_ms(ice), 30000);
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 1000, &r, resp,
				&rlen),
		     0);
	CV_CHECK_INT(cv_ice_lite_next_timeout_ms(ice), 11000);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 10999), CV_ICE_CONNECTED);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 11000), CV_ICE_DISCONNECTED);
	CV_CHECK_INT(cv_ice_lite_next_timeout_ms(ice), 31000);
	/* Still selected while disconnected: media may flow. */
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));

	/* A check on the selected pair brings it back. */
	o.use_candidate = false;
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 12000, &r, resp,
				&rlen),
		     0);
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_CONNECTED);

	/* Checks on another pair are no consent for this one. */
	for (uint64_t t = 13000; t < 42000; t += 5000)
		CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &b, t, &r,
					resp, &rlen),
			     0);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 41999), CV_ICE_DISCONNECTED);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 42000), CV_ICE_FAILED);
	CV_CHECK(cv_ice_lite_selected(ice) == NULL);
	CV_CHECK(!cv_ice_lite_is_selected(ice, &a));
	CV_CHECK(cv_ice_lite_next_timeout_ms(ice) == UINT64_MAX);

	/* RFC 7675: once expired, nothing is answered. */
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 43000, &r, resp,
				&rlen),
		     CV_EEXPIRED);
	CV_CHECK_INT(rlen, 0);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 100000), CV_ICE_FAILED);

	/* A restart revives it from scratch. */
	CV_CHECK_INT(cv_ice_lite_restart(ice, &local2, &remote2, 50000), 0);
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_NEW);
	CV_CHECK(cv_ice_lite_selected(ice) == NULL);
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 50001, &r, resp,
				&rlen),
		     CV_EAUTH);
	CV_CHECK_INT(send_check(ice, &o, &local2, &remote2, &b, 50002, &r, resp,
				&rlen),
		     0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &b));
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_CONNECTED);
	cv_ice_lite_destroy(ice);

	/* Connect timeout, and a custom configuration. */
	struct cv_ice_lite_config cfg = {.connect_timeout_ms = 5000};
	CV_CHECK_INT(cv_ice_lite_create(&ice, &cfg, 1000), 0);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 5999), CV_ICE_NEW);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 6000), CV_ICE_FAILED);
	/* A clock that seems to go back does not underflow. */
	CV_CHECK_INT(cv_ice_lite_tick(ice, 0), CV_ICE_FAILED);
	cv_ice_lite_destroy(ice);
}

static void test_restart(void)
{
	struct cv_ice_lite *ice = new_agent(0);
	struct sockaddr_storage a = addr4("198.51.100.7", 40000);
	struct sockaddr_storage b = addr4("203.0.113.5", 50000);
	uint8_t resp[CV_STUN_RESPONSE_MAX_BYTES];
	size_t rlen;
	struct cv_stun_msg r;
	struct check_opts o = {.use_candidate = true};

	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 1000, &r, resp,
				&rlen),
		     0);
	struct cv_ice_credentials bad = {"x:y", "z"};
	CV_CHECK_INT(cv_ice_lite_restart(ice, &bad, &remote2, 2000), -EINVAL);
	CV_CHECK_INT(cv_ice_lite_restart(ice, &local2, &remote2, 2000), 0);
	CV_CHECK_STR(cv_ice_lite_local_ufrag(ice), local2.ufrag);
	CV_CHECK(cv_ice_lite_owns_ufrag(ice, (const uint8_t *)"LoCa", 4));
	CV_CHECK(cv_ice_lite_owns_ufrag(ice, (const uint8_t *)"LoC2", 4));
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));
	CV_CHECK_INT(cv_ice_lite_state(ice), CV_ICE_CONNECTED);

	/* Old credentials still answered and keep consent on the old pair,
	 * answered with the old password. */
	o.use_candidate = false;
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 20000, &r, resp,
				&rlen),
		     0);
	CV_CHECK_INT(cv_stun_check_integrity(&r, (const uint8_t *)local1.pwd,
					     strlen(local1.pwd)),
		     0);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 29999), CV_ICE_CONNECTED);
	/* Old credentials from elsewhere change nothing. */
	o.use_candidate = true;
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &b, 21000, &r, resp,
				&rlen),
		     0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &a));

	/* First valid check with the new credentials takes over. */
	o.use_candidate = false;
	CV_CHECK_INT(send_check(ice, &o, &local2, &remote2, &b, 30000, &r, resp,
				&rlen),
		     0);
	CV_CHECK_INT(cv_stun_check_integrity(&r, (const uint8_t *)local2.pwd,
					     strlen(local2.pwd)),
		     0);
	CV_CHECK(cv_ice_lite_is_selected(ice, &b));
	CV_CHECK(!cv_ice_lite_nominated(ice));
	CV_CHECK(!cv_ice_lite_owns_ufrag(ice, (const uint8_t *)"LoCa", 4));
	CV_CHECK_INT(send_check(ice, &o, &local1, &remote1, &a, 30001, &r, resp,
				&rlen),
		     CV_EAUTH);
	CV_CHECK_INT(cv_ice_lite_tick(ice, 39999), CV_ICE_CONNECTED);
	cv_ice_lite_destroy(ice);
}

int main(void)
{
	test_credentials();
	test_valid_check_and_nomination();
	test_rejections();
	test_credentials_not_yet_known();
	test_consent();
	test_restart();
	return cv_test_done("test_ice_lite");
}
