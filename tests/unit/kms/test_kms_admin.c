/*
 * The KMS admin API (request parser, query parameters, the live server on
 * a SQLite store), its configuration table and its key files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "cv_test.h"
#include "kms/admin.h"
#include "kms/config.h"
#include "kms/kd_link.h"
#include "kms/files.h"
#include "kms/store.h"

static int parse(const char *s, struct cv_kms_http_req *r)
{
	return cv_kms_http_parse((const uint8_t *)s, strlen(s), r);
}

static void test_parser(void)
{
	struct cv_kms_http_req r;
	const char *ok = "GET /audit?room=conclave%3A%2F%2Frooms%2Fa&since=5 "
			 "HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "authorization:  Bearer abc \r\nAccept: */*\r\n\r\n";
	CV_CHECK_INT(parse(ok, &r), 0);
	CV_CHECK_STR(r.method, "GET");
	CV_CHECK_STR(r.path, "/audit");
	CV_CHECK_STR(r.query, "room=conclave%3A%2F%2Frooms%2Fa&since=5");
	CV_CHECK_STR(r.auth, "Bearer abc");

	/* Every truncation wants more bytes, never crashes. */
	size_t len = strlen(ok);
	for (size_t i = 0; i < len; i++)
		CV_CHECK_INT(cv_kms_http_parse((const uint8_t *)ok, i, &r),
			     -EAGAIN);

	CV_CHECK_INT(parse("GET /healthz HTTP/1.0\r\n\r\n", &r), 0);
	CV_CHECK_STR(r.path, "/healthz");
	CV_CHECK_STR(r.query, "");
	CV_CHECK_STR(r.auth, "");

	static const char *const bad[] = {
		"\r\n\r\n",
		"GET\r\n\r\n",
		"GET /x\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/2.0\r\n\r\n",
		"GET /x HTTP/1.1 \r\n\r\n",
		"GET  /x HTTP/1.1\r\n\r\n",
		"G(T /x HTTP/1.1\r\n\r\n",
		"GET /x\x01y HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET /x HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\x01\r\n\r\n",
		("GET /x HTTP/1.1\r\nAuthorization: a\r\n"
		 "Authorization: b\r\n\r\n"),
		"GET /x HTTP/1.1\nA: b\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &r);
		if (rc != CV_EPARSE)
			fprintf(stderr, "bad[%zu] gave %d\n", i, rc);
		CV_CHECK_INT(rc, CV_EPARSE);
	}
	CV_CHECK_INT(parse("TOOLONGMETHOD / HTTP/1.1\r\n\r\n", &r), CV_ETOOBIG);

	/* Oversized fields and heads. */
	static char big[CV_KMS_HTTP_HEAD_MAX + 64];
	int n = snprintf(big, sizeof(big), "GET /");
	memset(big + n, 'a', CV_KMS_HTTP_PATH_MAX);
	snprintf(big + n + CV_KMS_HTTP_PATH_MAX, 32, " HTTP/1.1\r\n\r\n");
	CV_CHECK_INT(parse(big, &r), CV_ETOOBIG);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CV_CHECK_INT(parse(big, &r), CV_ETOOBIG);
}

static void test_query(void)
{
	char v[32];
	const char *q = "a=1&room=x%2Fy+z&empty=&since=12";
	CV_CHECK_INT(cv_kms_query_param(q, "room", v, sizeof(v)), 0);
	CV_CHECK_STR(v, "x/y z");
	CV_CHECK_INT(cv_kms_query_param(q, "a", v, sizeof(v)), 0);
	CV_CHECK_STR(v, "1");
	CV_CHECK_INT(cv_kms_query_param(q, "empty", v, sizeof(v)), 0);
	CV_CHECK_STR(v, "");
	CV_CHECK_INT(cv_kms_query_param(q, "since", v, sizeof(v)), 0);
	CV_CHECK_STR(v, "12");
	CV_CHECK_INT(cv_kms_query_param(q, "room2", v, sizeof(v)), -ENOENT);
	CV_CHECK_INT(cv_kms_query_param(q, "roo", v, sizeof(v)), -ENOENT);
	CV_CHECK_INT(cv_kms_query_param("", "a", v, sizeof(v)), -ENOENT);
	CV_CHECK_INT(cv_kms_query_param("a=%2", "a", v, sizeof(v)), CV_EPARSE);
	CV_CHECK_INT(cv_kms_query_param("a=%zz", "a", v, sizeof(v)), CV_EPARSE);
	CV_CHECK_INT(cv_kms_query_param("a=%00", "a", v, sizeof(v)), CV_EPARSE);
	CV_CHECK_INT(cv_kms_query_param("a=12345", "a", v, 4), CV_ETOOBIG);
}

static void test_config(const char *dir)
{
	struct cv_kms_config c;
	char err[256];
	CV_CHECK_INT(cv_kms_config_init(&c), 0);
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_ADMIN_PORT), 8446);
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_ADMIN_ADDRESS),
		     "127.0.0.1");
	CV_CHECK_INT(cv_kms_config_set(&c, "admin.address", "0.0.0.0", err,
				       sizeof(err)),
		     -EINVAL);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "admin.address", "::1", err, sizeof(err)),
		0);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "kms.key_bytes", "24", err, sizeof(err)),
		-EINVAL);
	CV_CHECK_INT(cv_kms_config_set(&c, "nope", "1", err, sizeof(err)),
		     -ENOENT);
	const char *text = "# comment\n\nkms.name = kms.example.org\n"
			   "admin.port = 9000 # trailing\n"
			   "admin.token = \"a # b\"\n";
	CV_CHECK_INT(cv_kms_config_load_string(&c, text, strlen(text), "t", err,
					       sizeof(err)),
		     0);
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_NAME), "kms.example.org");
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_ADMIN_PORT), 9000);
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_ADMIN_TOKEN), "a # b");
	const char *badtext = "kms.name = x\nadmin.port = 70000\n";
	CV_CHECK_INT(cv_kms_config_load_string(&c, badtext, strlen(badtext),
					       "f", err, sizeof(err)),
		     -EINVAL);
	CV_CHECK(strncmp(err, "f:2:", 4) == 0);

	char *argv[] = {"kms", "--kms.data_dir", (char *)dir, "--admin.port=0",
			NULL};
	CV_CHECK_INT(cv_kms_config_parse_args(&c, 4, argv, "t", stdout, err,
					      sizeof(err)),
		     0);
	char path[512];
	CV_CHECK_INT(
		cv_kms_config_path(&c, CV_KMS_CFG_DATABASE, path, sizeof(path)),
		0);
	char want[512];
	snprintf(want, sizeof(want), "%s/kms.db", dir);
	CV_CHECK_STR(path, want);
	char *argv2[] = {"kms", "--bogus=1", NULL};
	CV_CHECK_INT(cv_kms_config_parse_args(&c, 2, argv2, "t", stdout, err,
					      sizeof(err)),
		     -ENOENT);
	cv_kms_config_fini(&c);
}

/* The channel and Key Distributor keys (docs/kms.md, "Configuration"). */
#define FP_A                                                                   \
	"sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:" \
	"23:45:67:89:AB:CD:EF:01:23:45:67:89"
#define FP_B                                                                   \
	"sha-256 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:" \
	"44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"

static void test_config_channel_kd(void)
{
	struct cv_kms_config c;
	char err[256], buf[1024];
	const char *items[CV_KD_MAX_ALLOWED];
	size_t n = 99;
	CV_CHECK_INT(cv_kms_config_init(&c), 0);
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_ADDRESS),
		     "127.0.0.1");
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_CHANNEL_PORT), 8447);
	CV_CHECK_STR(
		cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_TOKEN_SECRET_FILE),
		"");
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_TOKEN_ISSUER),
		     "");
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_TOKEN_AUDIENCE),
		     "conclave-kms");
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_KD_ADDRESS), "127.0.0.1");
	/* kd.port unset: the Key Distributor is off. */
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_KD_PORT), -1);
	CV_CHECK_INT(cv_kms_config_fingerprints(&c, buf, sizeof(buf), items,
						CV_KD_MAX_ALLOWED, &n),
		     0);
	CV_CHECK_INT(n, 0);

	/* Addresses: numeric, any interface allowed (unlike admin). */
	CV_CHECK_INT(cv_kms_config_set(&c, "channel.address", "0.0.0.0", err,
				       sizeof(err)),
		     0);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "kd.address", "::", err, sizeof(err)), 0);
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.address", "kms.example.org", err,
				       sizeof(err)),
		     -EINVAL);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "channel.address", "", err, sizeof(err)),
		-EINVAL);
	/* Ports. */
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.port", "0", err, sizeof(err)),
		     0);
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_KD_PORT), 0);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "kd.port", "70000", err, sizeof(err)),
		-EINVAL);
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.port", "-1", err, sizeof(err)),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_KD_PORT), 0);
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.port", "", err, sizeof(err)), 0);
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_KD_PORT), -1);
	CV_CHECK_INT(
		cv_kms_config_set(&c, "channel.port", "", err, sizeof(err)),
		-EINVAL);

	/* Fingerprints: a list, blanks around items, any hex case. */
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.node_fingerprints",
				       " " FP_A " ,\t" FP_B, err, sizeof(err)),
		     0);
	CV_CHECK_INT(cv_kms_config_fingerprints(&c, buf, sizeof(buf), items,
						CV_KD_MAX_ALLOWED, &n),
		     0);
	CV_CHECK_INT(n, 2);
	if (n == 2) {
		CV_CHECK_STR(items[0], FP_A);
		CV_CHECK_STR(items[1], FP_B);
	}
	CV_CHECK_INT(
		cv_kms_config_fingerprints(&c, buf, sizeof(buf), items, 1, &n),
		-ENOSPC);
	CV_CHECK_INT(cv_kms_config_fingerprints(&c, buf, 20, items,
						CV_KD_MAX_ALLOWED, &n),
		     -ENOSPC);
	const char *bad[] = {"sha-256 12:34", FP_A ",",	   FP_A ",," FP_B,
			     "AB:CD",	      "md5 AB:CD", ","};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CV_CHECK_INT(cv_kms_config_set(&c, "kd.node_fingerprints",
					       bad[i], err, sizeof(err)),
			     -EINVAL);
	/* At most CV_KD_MAX_ALLOWED. */
	static char many[(CV_KD_MAX_ALLOWED + 1) * (sizeof(FP_A) + 1)];
	size_t off = 0;
	for (int i = 0; i <= CV_KD_MAX_ALLOWED; i++)
		off += (size_t)snprintf(many + off, sizeof(many) - off, "%s%s",
					i ? "," : "", FP_A);
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.node_fingerprints", many, err,
				       sizeof(err)),
		     -EINVAL);
	many[off - sizeof(FP_A)] = '\0'; /* drop the last one */
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.node_fingerprints", many, err,
				       sizeof(err)),
		     0);
	/* The value that was refused left the key unchanged. */
	CV_CHECK_INT(cv_kms_config_set(&c, "kd.node_fingerprints", FP_B, err,
				       sizeof(err)),
		     0);

	/* In a file (quoted) and as flags. */
	const char *text = "channel.token_issuer = idp.example.org\n"
			   "channel.token_audience = kms-1\n"
			   "kd.node_fingerprints = \"" FP_A "\"\n";
	CV_CHECK_INT(cv_kms_config_load_string(&c, text, strlen(text), "t", err,
					       sizeof(err)),
		     0);
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_TOKEN_ISSUER),
		     "idp.example.org");
	CV_CHECK_STR(cv_kms_config_str(&c, CV_KMS_CFG_KD_NODE_FINGERPRINTS),
		     FP_A);
	char *argv[] = {"kms",
			"--channel.port=0",
			"--channel.token_secret_file",
			"/run/secret",
			"--kd.port=8448",
			NULL};
	CV_CHECK_INT(cv_kms_config_parse_args(&c, 5, argv, "t", stdout, err,
					      sizeof(err)),
		     0);
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_CHANNEL_PORT), 0);
	CV_CHECK_STR(
		cv_kms_config_str(&c, CV_KMS_CFG_CHANNEL_TOKEN_SECRET_FILE),
		"/run/secret");
	CV_CHECK_INT(cv_kms_config_int(&c, CV_KMS_CFG_KD_PORT), 8448);
	cv_kms_config_fini(&c);
}

static void test_files(const char *dir)
{
	char mk[512], crt[512], key[512];
	snprintf(mk, sizeof(mk), "%s/master.key", dir);
	snprintf(crt, sizeof(crt), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	struct cv_secret a, b;
	cv_secret_init(&a);
	cv_secret_init(&b);
	CV_CHECK_INT(cv_kms_master_key_load(mk, false, &a), -ENOENT);
	CV_CHECK_INT(cv_kms_master_key_load(mk, true, &a), 0);
	CV_CHECK_INT(cv_secret_len(&a), 32);
	struct stat st;
	CV_CHECK_INT(stat(mk, &st), 0);
	CV_CHECK_INT(st.st_mode & 0777, 0600);
	CV_CHECK_INT(cv_kms_master_key_load(mk, true, &b), 0);
	CV_CHECK(cv_secret_equal(&a, &b));
	chmod(mk, 0644);
	CV_CHECK_INT(cv_kms_master_key_load(mk, false, &b), -EACCES);
	FILE *f = fopen(mk, "w");
	fputs("abcd\n", f);
	fclose(f);
	chmod(mk, 0600);
	CV_CHECK_INT(cv_kms_master_key_load(mk, false, &b), CV_EPARSE);

	X509 *x = NULL, *x2 = NULL;
	EVP_PKEY *k = NULL, *k2 = NULL;
	char fp[CV_KMS_FINGERPRINT_SIZE], fp2[CV_KMS_FINGERPRINT_SIZE];
	CV_CHECK_INT(cv_kms_cert_load(crt, key, "kms.test", false, &x, &k, fp),
		     -ENOENT);
	CV_CHECK_INT(cv_kms_cert_load(crt, key, "kms.test", true, &x, &k, fp),
		     0);
	CV_CHECK(strncmp(fp, "sha-256 ", 8) == 0 && strlen(fp) == 8 + 95);
	CV_CHECK_INT(stat(key, &st), 0);
	CV_CHECK_INT(st.st_mode & 0777, 0600);
	CV_CHECK_INT(
		cv_kms_cert_load(crt, key, "kms.test", true, &x2, &k2, fp2), 0);
	CV_CHECK_STR(fp, fp2); /* loaded, not regenerated */
	CV_CHECK(k && EVP_PKEY_is_a(k, "EC"));
	X509_free(x);
	X509_free(x2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	cv_secret_wipe(&a);
	cv_secret_wipe(&b);
}

/* One HTTP exchange with the server; the response in buf. Returns the
 * status code or -1. */
static int http_get(uint16_t port, const char *req, char *buf, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	send(fd, req, strlen(req), MSG_NOSIGNAL);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = recv(fd, buf + len, cap - len - 1, 0)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	int status = -1;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -1;
	return status;
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");
	return b ? b + 4 : "";
}

static void test_server(const char *dir)
{
	char db[512];
	snprintf(db, sizeof(db), "%s/admin.db", dir);
	struct cv_secret m;
	cv_secret_init(&m);
	cv_secret_random(&m, 32);
	struct cv_kms_store_opts so = {
		.database = db, .master_key = &m, .key_uri_base = "kms://t"};
	struct cv_kms_store *s = NULL;
	CV_CHECK_INT(cv_kms_store_open(&s, &so), 0);
	if (!s)
		return;
	const char *room = "conclave://rooms/a+b";
	CV_CHECK_INT(cv_kms_store_create_room(s, "adm", room, NULL), 0);
	CV_CHECK_INT(cv_kms_store_create_room(s, "adm", "conclave://r2", NULL),
		     0);
	struct cv_kms_key k;
	CV_CHECK_INT(cv_kms_store_get_current_key(s, room, "eve", &k),
		     CV_EAUTH);

	struct cv_kms_admin *a = NULL;
	struct cv_kms_admin_opts ao = {.address = "127.0.0.1",
				       .port = 0,
				       .token = "t0ken",
				       .store = s};
	struct cv_kms_admin_opts bad = ao;
	bad.address = "0.0.0.0";
	CV_CHECK_INT(cv_kms_admin_start(&a, &bad), -EINVAL);
	CV_CHECK_INT(cv_kms_admin_start(&a, &ao), 0);
	if (!a) {
		cv_kms_store_close(s);
		return;
	}
	uint16_t port = cv_kms_admin_port(a);
	CV_CHECK(port != 0);
	static char resp[65536];
	CV_CHECK_INT(http_get(port, "GET /healthz HTTP/1.1\r\n\r\n", resp,
			      sizeof(resp)),
		     200);
	CV_CHECK_STR(body_of(resp), "ok\n");
	CV_CHECK_INT(http_get(port, "GET /audit HTTP/1.1\r\n\r\n", resp,
			      sizeof(resp)),
		     401);
	CV_CHECK_INT(http_get(port,
			      "GET /audit HTTP/1.1\r\nAuthorization: Bearer "
			      "t0ke\r\n\r\n",
			      resp, sizeof(resp)),
		     401);
	CV_CHECK_INT(http_get(port, "POST /audit HTTP/1.1\r\n\r\n", resp,
			      sizeof(resp)),
		     405);
	CV_CHECK_INT(http_get(port, "GET /nope HTTP/1.1\r\n\r\n", resp,
			      sizeof(resp)),
		     404);
	CV_CHECK_INT(http_get(port, "garbage\r\n\r\n", resp, sizeof(resp)),
		     400);
	CV_CHECK_INT(http_get(port,
			      "GET /audit?limit=0 HTTP/1.1\r\nAuthorization: "
			      "Bearer t0ken\r\n\r\n",
			      resp, sizeof(resp)),
		     400);
	CV_CHECK_INT(http_get(port,
			      "GET /audit?room=conclave%3A%2F%2Frooms%2Fa%2Bb"
			      "&since=0 HTTP/1.1\r\nAuthorization: bearer "
			      "t0ken\r\n\r\n",
			      resp, sizeof(resp)),
		     200);
	json_error_t je;
	json_t *doc = json_loads(body_of(resp), 0, &je);
	json_t *rows = json_object_get(doc, "rows");
	CV_CHECK(json_is_array(rows));
	/* room.create, key.create, the denial. */
	CV_CHECK_INT(json_array_size(rows), 3);
	json_t *last = json_array_get(rows, 2);
	CV_CHECK_STR(json_string_value(json_object_get(last, "actor")), "eve");
	CV_CHECK_STR(json_string_value(json_object_get(last, "action")),
		     "key.get");
	CV_CHECK(json_is_false(json_object_get(last, "granted")));
	CV_CHECK_STR(json_string_value(json_object_get(last, "reason")),
		     "not a member");
	json_int_t first_id = json_integer_value(
		json_object_get(json_array_get(rows, 0), "id"));
	json_decref(doc);

	char req[256];
	snprintf(req, sizeof(req),
		 "GET /audit?after=%lld&limit=2 HTTP/1.1\r\nAuthorization: "
		 "Bearer t0ken\r\n\r\n",
		 (long long)first_id);
	CV_CHECK_INT(http_get(port, req, resp, sizeof(resp)), 200);
	doc = json_loads(body_of(resp), 0, &je);
	CV_CHECK_INT(json_array_size(json_object_get(doc, "rows")), 2);
	json_decref(doc);
	cv_kms_admin_stop(a);

	/* No token configured: /audit is refused, /healthz still works. */
	ao.token = "";
	CV_CHECK_INT(cv_kms_admin_start(&a, &ao), 0);
	port = cv_kms_admin_port(a);
	CV_CHECK_INT(http_get(port,
			      "GET /audit HTTP/1.1\r\nAuthorization: Bearer "
			      "\r\n\r\n",
			      resp, sizeof(resp)),
		     403);
	CV_CHECK_INT(http_get(port, "GET /healthz HTTP/1.1\r\n\r\n", resp,
			      sizeof(resp)),
		     200);
	cv_kms_admin_stop(a);
	cv_kms_store_close(s);
	cv_secret_wipe(&m);
}

int main(void)
{
	cv_log_set_level_all(CV_LOG_WARN);
	char dir[] = "/tmp/kms-admin-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	test_parser();
	test_query();
	test_config(dir);
	test_config_channel_kd();
	test_files(dir);
	test_server(dir);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done("kms_admin");
}
