/*
 * The node's perc control plane against real daemons: a conclave-kms
 * (SQLite in a temp dir, channel and Key Distributor on free ports) and
 * conclave nodes, driven by the client library's KMS client (through the
 * node's relay) and a raw WebSocket client.
 *
 *   - HELLO, GET_KEY, ADD and REMOVE relayed byte for byte (the answer
 *     equals the one a direct client gets);
 *   - perc joins: association ids in `joined`, wrong_mode, forbidden
 *     after a removal until an add;
 *   - the two-part removal: `removed` + close 4001 for the member,
 *     `rekey` for the others; a core token for another room changes
 *     nothing on either side;
 *   - the KMS stopped: the relay answers 502 at once, perc joins get
 *     kms_unavailable within 5 s;
 *   - --dev: a generated tunnel certificate (logged, written to
 *     perc.fingerprint_file), GET /dev/token?mode=perc; perc off:
 *     unsupported.
 *
 *     test_node_perc PATH_TO_CONCLAVE PATH_TO_CONCLAVE_KMS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/base64.h"
#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/kms_client.h"
#include "conclave/token.h"
#include "conclave/tunnel.h"
#include "cv_test.h"
#include "cv_test_ident.h"
#include "kms/channel.h"

#define ISSUER	    "conclave-idp-node-test"
#define KMS_SECRET  "kms-token-secret-for-node-tests-0123456789"
#define NODE_SECRET "node-token-secret-for-perc-tests-0123456789"
#define ROOM	    "perc-room-1"
#define SUB_ALICE   "sub-alice-5c1e"
#define SUB_BOB	    "sub-bob-7d3a"
#define SUB_CAROL   "sub-carol-92b4"

static char dir[] = "/tmp/cv-node-perc-XXXXXX";
static const char *node_exe, *kms_exe;
static char kms_log[256], kms_cert[256], node_fp[CV_TUNNEL_FP_STRLEN];
static char kms_fp[CV_TUNNEL_FP_STRLEN];
static uint16_t kms_port, kd_port;
static pid_t kms_pid;
static struct cv_secret kms_secret;

struct node {
	pid_t pid;
	uint16_t port, admin_port;
	char log[300], out[300];
};

/* ---- small helpers ---- */

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* The text after `key` on the first line of file path that has it, up to
 * one of the stop characters, in out; polls up to 10 s. */
static bool wait_log(const char *path, const char *key, const char *stop,
		     char *out, size_t cap, pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		char *s = slurp(path);
		const char *p = s ? strstr(s, key) : NULL;
		if (p) {
			p += strlen(key);
			size_t n = strcspn(p, stop);
			if (n < cap) {
				memcpy(out, p, n);
				out[n] = '\0';
				free(s);
				return true;
			}
		}
		free(s);
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		pause_ms(50);
	}
	return false;
}

static uint16_t free_port(int type)
{
	int fd = socket(AF_INET, type, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof(a);
	uint16_t port = 0;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int write_identity(const char *cert, const char *key,
			  char fp[CV_TUNNEL_FP_STRLEN])
{
	return cv_test_write_ident(cert, key, "test-node", 7, fp);
}

/* ---- the daemons ---- */

static int start_kms(void)
{
	char a_dir[400], a_log[400], a_secret[400], a_pin[200], path[300];
	snprintf(kms_log, sizeof(kms_log), "%s/kms.log", dir);
	snprintf(kms_cert, sizeof(kms_cert), "%s/data/kms-cert.pem", dir);
	snprintf(path, sizeof(path), "%s/kms-token.secret", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(KMS_SECRET "\n", f);
	fclose(f);
	chmod(path, 0600);
	snprintf(a_dir, sizeof(a_dir), "--kms.data_dir=%s/data", dir);
	snprintf(a_log, sizeof(a_log), "--log.file=%s", kms_log);
	snprintf(a_secret, sizeof(a_secret), "--channel.token_secret_file=%s",
		 path);
	snprintf(a_pin, sizeof(a_pin), "--kd.node_fingerprints=%s", node_fp);
	kms_pid = fork();
	if (kms_pid == 0) {
		execl(kms_exe, kms_exe, a_dir, a_log, "--admin.port=0",
		      "--channel.port=0", a_secret,
		      "--channel.token_issuer=" ISSUER, "--kd.port=0",
		      "--kd.address=127.0.0.1", a_pin, (char *)NULL);
		_exit(127);
	}
	char v[128];
	if (kms_pid < 0 ||
	    !wait_log(kms_log, "channel ready (address=127.0.0.1:", ")", v,
		      sizeof(v), kms_pid))
		return -1;
	kms_port = (uint16_t)atoi(v);
	if (!wait_log(kms_log, "kd ready (address=127.0.0.1:", " )", v,
		      sizeof(v), kms_pid))
		return -1;
	kd_port = (uint16_t)atoi(v);
	if (!wait_log(kms_log, "cert=", " )\n", kms_fp, sizeof(kms_fp),
		      kms_pid))
		return -1;
	/* "cert=sha-256 AB:..": the value has one blank inside. */
	char *s = slurp(kms_log);
	const char *p = s ? strstr(s, "cert=sha-256 ") : NULL;
	if (p) {
		p += 5;
		size_t n = strcspn(p + 8, " )\n") + 8;
		snprintf(kms_fp, sizeof(kms_fp), "%.*s", (int)n, p);
	}
	free(s);
	return p ? 0 : -1;
}

static int stop_pid(pid_t *pid)
{
	if (*pid <= 0)
		return -1;
	kill(*pid, SIGTERM);
	int st = 0;
	waitpid(*pid, &st, 0);
	*pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts a node with common flags plus extra[] (NULL-terminated). */
static int start_node(struct node *nd, const char *name,
		      const char *const *extra)
{
	char a_port[64], a_admin[64], a_media[64], a_log[320];
	nd->port = free_port(SOCK_STREAM);
	nd->admin_port = free_port(SOCK_STREAM);
	uint16_t media = free_port(SOCK_DGRAM);
	snprintf(nd->log, sizeof(nd->log), "%s/%s.log", dir, name);
	snprintf(nd->out, sizeof(nd->out), "%s/%s.out", dir, name);
	snprintf(a_port, sizeof(a_port), "--listen.port=%u", nd->port);
	snprintf(a_admin, sizeof(a_admin), "--admin.port=%u", nd->admin_port);
	snprintf(a_media, sizeof(a_media), "--media.port_base=%u", media);
	snprintf(a_log, sizeof(a_log), "--log.file=%s", nd->log);
	const char *argv[40] = {node_exe,
				a_port,
				a_admin,
				a_media,
				a_log,
				"--node.workers=1",
				"--media.announce_address=127.0.0.1",
				"--drain.timeout_ms=0"};
	size_t n = 8;
	for (size_t i = 0; extra[i] && n < 39; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	nd->pid = fork();
	if (nd->pid == 0) {
		FILE *o = freopen(nd->out, "w", stdout);
		(void)o;
		execv(node_exe, (char *const *)argv);
		_exit(127);
	}
	char url[128];
	return nd->pid > 0 && wait_log(nd->out, "conclave: listening on ", "\n",
				       url, sizeof(url), nd->pid)
		       ? 0
		       : -1;
}

/* ---- HTTP and WebSocket on raw sockets ---- */

static int tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 8};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t k = recv(fd, c, n, 0);
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		if (recv(fd, buf + n, 1, 0) != 1)
			return -1;
		buf[++n] = '\0';
		if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4))
			return atoi(buf + 9);
	}
	return -1;
}

/* One request; returns the status and the body (NUL-terminated). */
static int http(uint16_t port, const char *method, const char *path,
		const void *data, size_t len, char *body, size_t cap)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return -1;
	char req[512], head[4096];
	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
		 "%zu\r\nConnection: close\r\n\r\n",
		 method, path, len);
	send_all(fd, req, strlen(req));
	if (len)
		send_all(fd, data, len);
	int status = read_head(fd, head, sizeof(head));
	body[0] = '\0';
	const char *cl = status > 0 ? strcasestr(head, "content-length:") : 0;
	size_t want = cl ? (size_t)atol(cl + 15) : 0;
	if (want < cap && recv_all(fd, body, want) == 0)
		body[want] = '\0';
	close(fd);
	return status;
}

static int ws_open(uint16_t port)
{
	int fd = tcp_connect(port);
	if (fd < 0)
		return -1;
	static const char req[] =
		"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Protocol: conclave.v1\r\n"
		"Sec-WebSocket-Version: 13\r\n\r\n";
	char head[1024];
	send_all(fd, req, sizeof(req) - 1);
	if (read_head(fd, head, sizeof(head)) != 101) {
		close(fd);
		return -1;
	}
	return fd;
}

static void ws_send(int fd, const char *s)
{
	size_t len = strlen(s), hl = 2;
	uint8_t h[8], mask[4] = {1, 2, 3, 4};
	h[0] = 0x81;
	if (len < 126) {
		h[1] = (uint8_t)(0x80 | len);
	} else {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	}
	memcpy(h + hl, mask, 4);
	hl += 4;
	uint8_t *buf = malloc(hl + len);
	memcpy(buf, h, hl);
	for (size_t i = 0; i < len; i++)
		buf[hl + i] = (uint8_t)s[i] ^ mask[i % 4];
	send_all(fd, buf, hl + len);
	free(buf);
}

/*
 * The next text frame as JSON; NULL when the socket closed (*close_code
 * gets the code, if any) or nothing came within the socket timeout.
 */
static json_t *ws_next(int fd, int *close_code)
{
	for (;;) {
		uint8_t h[8];
		if (recv_all(fd, h, 2))
			return NULL;
		int op = h[0] & 0x0f;
		uint64_t len = h[1] & 0x7f;
		if (len == 126) {
			if (recv_all(fd, h, 2))
				return NULL;
			len = (uint64_t)h[0] << 8 | h[1];
		} else if (len == 127) {
			if (recv_all(fd, h, 8))
				return NULL;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | h[i];
		}
		char *buf = malloc(len + 1);
		if (!buf || recv_all(fd, buf, len)) {
			free(buf);
			return NULL;
		}
		buf[len] = '\0';
		if (op == 8) {
			if (close_code && len >= 2)
				*close_code =
					(uint8_t)buf[0] << 8 | (uint8_t)buf[1];
			free(buf);
			return NULL;
		}
		json_t *j = op == 1 ? json_loads(buf, 0, NULL) : NULL;
		free(buf);
		if (j)
			return j;
	}
}

static const char *jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* The next message of `type` (others skipped); NULL if none came. */
static json_t *ws_expect(int fd, const char *type, int *close_code)
{
	json_t *j;
	while ((j = ws_next(fd, close_code))) {
		if (jstr(j, "type") && !strcmp(jstr(j, "type"), type))
			return j;
		json_decref(j);
	}
	return NULL;
}

static char *node_token(const char *sub, const char *room,
			enum cv_token_mode mode)
{
	static char tok[8][1024];
	static int next;
	char *t = tok[next++ % 8];
	struct cv_token_claims c = {
		.rights = CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
		.exp_s = (int64_t)(cv_clock_wall_ms() / 1000) + 600,
		.mode = mode,
	};
	snprintf(c.sub, sizeof(c.sub), "%s", sub);
	snprintf(c.room, sizeof(c.room), "%s", room);
	if (cv_token_issue_claims((const uint8_t *)NODE_SECRET,
				  strlen(NODE_SECRET), &c, t, 1024))
		t[0] = '\0';
	return t;
}

/* Opens a socket and joins; returns the reply (joined or error). */
static json_t *join(uint16_t port, const char *token, const char *room,
		    int *fd_out)
{
	int fd = ws_open(port);
	*fd_out = fd;
	if (fd < 0)
		return NULL;
	char msg[2048];
	snprintf(
		msg, sizeof(msg),
		"{\"type\":\"join\",\"id\":1,\"token\":\"%s\",\"room\":\"%s\"}",
		token, room);
	ws_send(fd, msg);
	json_t *j;
	while ((j = ws_next(fd, NULL))) {
		const char *t = jstr(j, "type");
		if (t && (!strcmp(t, "joined") || !strcmp(t, "error")))
			return j;
		json_decref(j);
	}
	return NULL;
}

/* The error code of a join, "" when it joined; the socket is closed. */
static const char *join_code(uint16_t port, const char *token, const char *room)
{
	static char code[64];
	int fd;
	json_t *j = join(port, token, room, &fd);
	snprintf(code, sizeof(code), "%s",
		 !j				      ? "(none)"
		 : !strcmp(jstr(j, "type"), "joined") ? ""
						      : jstr(j, "code"));
	json_decref(j);
	if (fd >= 0)
		close(fd);
	return code;
}

static double metric(const struct node *nd, const char *name)
{
	char *body = malloc(1 << 18);
	double v = -1;
	if (body && http(nd->admin_port, "GET", "/metrics", NULL, 0, body,
			 1 << 18) == 200) {
		char key[160];
		snprintf(key, sizeof(key), "\n%s ", name);
		const char *p = strstr(body, key);
		if (p)
			v = atof(p + strlen(key));
	}
	free(body);
	return v;
}

/* ---- KMS clients ---- */

static char *kms_token(const char *sub)
{
	static char tok[8][1024];
	static int next;
	char *t = tok[next++ % 8];
	int64_t now = (int64_t)(cv_clock_wall_ms() / 1000);
	if (cv_kms_token_issue(&kms_secret, ISSUER,
			       CV_KMS_TOKEN_AUDIENCE_DEFAULT, sub, now - 10,
			       now + 600, t, 1024))
		t[0] = '\0';
	return t;
}

/* A client of the KMS through the node's relay (port = the node's
 * listener) or direct (port = the KMS channel). */
static struct cv_kms_client *kms_client(uint16_t port, const char *sub,
					const char *core)
{
	struct cv_kms_client_opts o = {
		.host = "127.0.0.1",
		.port = port,
		.kms_cert_file = kms_cert,
		.token = kms_token(sub),
		.core_token = core,
	};
	struct cv_kms_client *c = NULL;
	CV_CHECK_INT(cv_kms_client_create(&c, &o), 0);
	if (c)
		CV_CHECK_INT(cv_kms_client_connect(c), 0);
	return c;
}

static bool is_hex32(const char *s)
{
	if (!s || strlen(s) != 32)
		return false;
	for (int i = 0; i < 32; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

/* ---- scenarios ---- */

/* Perc joins until the worker's KD link is up (10 s). */
static int wait_kd_up(const struct node *nd, const char *token, int *fd,
		      json_t **joined)
{
	for (int i = 0; i < 100; i++) {
		json_t *j = join(nd->port, token, ROOM, fd);
		if (j && !strcmp(jstr(j, "type"), "joined")) {
			*joined = j;
			return 0;
		}
		CV_CHECK(j && !strcmp(jstr(j, "code"), "kms_unavailable"));
		json_decref(j);
		if (*fd >= 0)
			close(*fd);
		pause_ms(100);
	}
	return -1;
}

static void test_perc_node(const struct node *nd)
{
	const char *tok_alice = node_token(SUB_ALICE, ROOM, CV_TOKEN_MODE_PERC);
	const char *tok_bob = node_token(SUB_BOB, ROOM, CV_TOKEN_MODE_PERC);
	const char *tok_carol = node_token(SUB_CAROL, ROOM, CV_TOKEN_MODE_PERC);
	int fa = -1, fb = -1, fc = -1;
	json_t *ja = NULL;

	/* The first perc join fixes the mode; ids for both transports. */
	CV_CHECK_INT(wait_kd_up(nd, tok_alice, &fa, &ja), 0);
	json_t *perc = json_object_get(ja, "perc");
	CV_CHECK(is_hex32(jstr(perc, "publish_assoc")));
	CV_CHECK(is_hex32(jstr(perc, "subscribe_assoc")));
	CV_CHECK(jstr(perc, "publish_assoc") && jstr(perc, "subscribe_assoc") &&
		 strcmp(jstr(perc, "publish_assoc"),
			jstr(perc, "subscribe_assoc")));
	json_decref(ja);
	CV_CHECK_STR(
		join_code(nd->port,
			  node_token("sub-dave", ROOM, CV_TOKEN_MODE_FORWARD),
			  ROOM),
		"wrong_mode");

	/* HELLO, CREATE, ADD (two-part), GET_KEY through the relay. */
	struct cv_kms_client *alice =
		kms_client(nd->port, SUB_ALICE, tok_alice);
	struct cv_kms_client *bob = kms_client(nd->port, SUB_BOB, NULL);
	struct cv_kms_client *direct = kms_client(kms_port, SUB_ALICE, NULL);
	if (!alice || !bob || !direct)
		return;
	uint32_t epoch = 9;
	CV_CHECK_INT(cv_kms_client_create_room(alice, ROOM, &epoch), 0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_client_add_member(alice, ROOM, SUB_BOB, &epoch), 0);
	CV_CHECK_INT(cv_kms_client_add_member(alice, ROOM, SUB_CAROL, NULL), 0);
	struct cv_kms_room_key k_relay = {0}, k_direct = {0}, k_bob = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &k_relay), 0);
	CV_CHECK_INT(cv_kms_client_get_room_key(direct, ROOM, &k_direct), 0);
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &k_bob), 0);
	CV_CHECK(cv_secret_equal(&k_relay.key, &k_direct.key));
	CV_CHECK(cv_secret_equal(&k_bob.key, &k_direct.key));
	CV_CHECK_INT(k_relay.spi, k_direct.spi);
	CV_CHECK_INT(k_relay.epoch, 0);
	CV_CHECK(metric(nd, "conclave_kms_relay_requests_total") >= 7);
	CV_CHECK_INT(metric(nd, "conclave_perc_membership_applied_total"), 2);

	json_t *j = join(nd->port, tok_bob, ROOM, &fb);
	CV_CHECK(j && !strcmp(jstr(j, "type"), "joined"));
	json_decref(j);
	j = join(nd->port, tok_carol, ROOM, &fc);
	CV_CHECK(j && !strcmp(jstr(j, "type"), "joined"));
	json_decref(j);

	/* A core token for another room: the KMS refuses, nothing moves. */
	const char *tok_other =
		node_token(SUB_ALICE, "other-room", CV_TOKEN_MODE_PERC);
	struct cv_kms_client *mallory =
		kms_client(nd->port, SUB_ALICE, tok_other);
	if (mallory) {
		CV_CHECK_INT(cv_kms_client_remove_member(mallory, ROOM, SUB_BOB,
							 NULL),
			     -EINVAL);
		CV_CHECK_STR(cv_kms_client_status(mallory), "bad_request");
		cv_kms_client_destroy(mallory);
	}
	/* A forward token is not even forwarded. */
	struct cv_kms_client *fwd =
		kms_client(nd->port, SUB_ALICE,
			   node_token(SUB_ALICE, ROOM, CV_TOKEN_MODE_FORWARD));
	if (fwd) {
		CV_CHECK(cv_kms_client_remove_member(fwd, ROOM, SUB_BOB,
						     NULL) != 0);
		cv_kms_client_destroy(fwd);
	}
	CV_CHECK_INT(metric(nd, "conclave_perc_membership_applied_total"), 2);
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &k_bob), 0);
	CV_CHECK_INT(k_bob.epoch, 0);
	/* bob is still in: his next message is the pong to his ping. */
	ws_send(fb, "{\"type\":\"ping\",\"id\":5}");
	j = ws_next(fb, NULL);
	while (j && !strcmp(jstr(j, "type"), "participant_joined")) {
		json_decref(j);
		j = ws_next(fb, NULL);
	}
	CV_CHECK(j && !strcmp(jstr(j, "type"), "pong"));
	json_decref(j);

	/* The real removal: bob is told and closed, the others rekey. */
	CV_CHECK_INT(cv_kms_client_remove_member(alice, ROOM, SUB_BOB, &epoch),
		     0);
	CV_CHECK_INT(epoch, 1);
	int code = 0;
	j = ws_expect(fb, "removed", &code);
	CV_CHECK(j != NULL);
	json_decref(j);
	CV_CHECK(ws_next(fb, &code) == NULL);
	CV_CHECK_INT(code, 4001);
	close(fb);
	j = ws_expect(fa, "rekey", NULL);
	CV_CHECK(j != NULL);
	json_decref(j);
	j = ws_expect(fc, "rekey", NULL);
	CV_CHECK(j != NULL);
	json_decref(j);
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &k_bob), -EACCES);
	CV_CHECK_STR(join_code(nd->port, tok_bob, ROOM), "forbidden");
	CV_CHECK_INT(metric(nd, "conclave_perc_membership_applied_total"), 3);

	/* Added again through the node: bob may join again. */
	CV_CHECK_INT(cv_kms_client_add_member(alice, ROOM, SUB_BOB, NULL), 0);
	CV_CHECK_STR(join_code(nd->port, tok_bob, ROOM), "");
	CV_CHECK_INT(metric(nd, "conclave_perc_membership_applied_total"), 4);

	cv_kms_room_key_wipe(&k_relay);
	cv_kms_room_key_wipe(&k_direct);
	cv_kms_room_key_wipe(&k_bob);
	cv_kms_client_destroy(alice);
	cv_kms_client_destroy(bob);
	cv_kms_client_destroy(direct);
	close(fa);
	close(fc);

	/* The node's log names no member, token or key. */
	char *log = slurp(nd->log);
	CV_CHECK(log && !strstr(log, SUB_BOB) && !strstr(log, SUB_ALICE) &&
		 !strstr(log, tok_alice) && !strstr(log, "Conclave-Core"));
	free(log);
}

/* The KMS stopped: 502 at once, perc joins fail fast. */
static void test_kms_down(const struct node *nd)
{
	CV_CHECK_INT(stop_pid(&kms_pid), 0);
	uint64_t t0 = cv_clock_now_ms();
	char body[256];
	CV_CHECK_INT(http(nd->port, "POST", "/v1/channel", "\x01\x01hello", 7,
			  body, sizeof(body)),
		     502);
	CV_CHECK(cv_clock_now_ms() - t0 < 2000);
	CV_CHECK(metric(nd, "conclave_kms_relay_failures_total") >= 1);
	const char *tok =
		node_token("sub-erin", "perc-room-2", CV_TOKEN_MODE_PERC);
	const char *code = "";
	while (cv_clock_now_ms() - t0 < 5000) {
		code = join_code(nd->port, tok, "perc-room-2");
		if (!strcmp(code, "kms_unavailable"))
			break;
		pause_ms(100);
	}
	CV_CHECK_STR(code, "kms_unavailable");
	CV_CHECK(cv_clock_now_ms() - t0 < 5000);
}

/* --dev: a generated identity; GET /dev/token with mode perc. */
static void test_dev_identity(void)
{
	char fpfile[300], a_fpfile[400], a_kd[64], a_pin[200], fp[128];
	snprintf(fpfile, sizeof(fpfile), "%s/node-fp.txt", dir);
	snprintf(a_fpfile, sizeof(a_fpfile), "--perc.fingerprint_file=%s",
		 fpfile);
	snprintf(a_kd, sizeof(a_kd), "--perc.kd_port=%u", kd_port);
	snprintf(a_pin, sizeof(a_pin), "--perc.kd_fingerprint=%s", kms_fp);
	const char *extra[] = {"--dev", a_kd, a_pin, a_fpfile, NULL};
	struct node nd = {0};
	CV_CHECK_INT(start_node(&nd, "dev", extra), 0);
	char *f = slurp(fpfile);
	CV_CHECK(f && !strncmp(f, "sha-256 ", 8) && strlen(f) == 104);
	CV_CHECK(wait_log(nd.log, "tunnel certificate generated (fingerprint=",
			  ")", fp, sizeof(fp), nd.pid));
	CV_CHECK(f && !strncmp(f, fp, strlen(fp)) && strlen(fp) == 103);
	free(f);

	char body[4096];
	CV_CHECK_INT(http(nd.port, "GET", "/dev/token?room=dev-room&mode=perc",
			  NULL, 0, body, sizeof(body)),
		     200);
	json_t *j = json_loads(body, 0, NULL);
	const char *tok = jstr(j, "token");
	const char *d1 = tok ? strchr(tok, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char payload[1024] = "";
	size_t plen = 0;
	if (d2 && !cv_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1),
				       (uint8_t *)payload, sizeof(payload) - 1,
				       &plen))
		payload[plen] = '\0';
	CV_CHECK(strstr(payload, "\"mode\":\"perc\"") != NULL);
	CV_CHECK(jstr(j, "sub") && strstr(payload, jstr(j, "sub")));
	/* The KD does not know this node's certificate. */
	CV_CHECK_STR(join_code(nd.port, tok ? tok : "", "dev-room"),
		     "kms_unavailable");
	json_decref(j);
	CV_CHECK_INT(http(nd.port, "GET", "/dev/token?room=dev-room&mode=mix",
			  NULL, 0, body, sizeof(body)),
		     400);
	CV_CHECK_INT(stop_pid(&nd.pid), 0);
	/* The generated identity is gone with the node. */
	char *log = slurp(nd.log);
	CV_CHECK(log && !strstr(log, "BEGIN"));
	free(log);
}

/* Perc off: perc joins are unsupported, forward ones work; no relay. */
static void test_perc_off(void)
{
	const char *extra[] = {"--token.secret=" NODE_SECRET, NULL};
	struct node nd = {0};
	CV_CHECK_INT(start_node(&nd, "off", extra), 0);
	CV_CHECK_STR(join_code(nd.port,
			       node_token("sub-f", "r1", CV_TOKEN_MODE_PERC),
			       "r1"),
		     "unsupported");
	CV_CHECK_STR(join_code(nd.port,
			       node_token("sub-f", "r1", CV_TOKEN_MODE_FORWARD),
			       "r1"),
		     "");
	char body[64];
	CV_CHECK_INT(http(nd.port, "POST", "/v1/channel", "x", 1, body,
			  sizeof(body)),
		     404);
	CV_CHECK_INT(stop_pid(&nd.pid), 0);
}

/* ---- SSRCs are never reused in a perc room ---- */

static const char *offer_path; /* tests/unit/sdp/data/chromium_av_offer.sdp */

/* text with every occurrence of from replaced by to (malloc'ed). */
static char *replaced(const char *text, const char *from, const char *to)
{
	size_t n = 0, lf = strlen(from), lt = strlen(to);
	for (const char *p = strstr(text, from); p; p = strstr(p + lf, from))
		n++;
	char *out = malloc(strlen(text) + n * lt + 1), *w = out;
	if (!out)
		return NULL;
	for (const char *p = text, *q;; p = q + lf) {
		q = strstr(p, from);
		size_t k = q ? (size_t)(q - p) : strlen(p);
		memcpy(w, p, k);
		w += k;
		if (!q)
			break;
		memcpy(w, to, lt);
		w += lt;
	}
	*w = '\0';
	return out;
}

/* Sends a publish with sdp (camera + microphone) and returns the type of
 * the reply: "publish_answer", or the error code. */
static const char *publish(int fd, const char *sdp)
{
	static char code[64];
	json_t *m = json_pack("{s:s,s:i,s:s,s:[{s:s,s:s},{s:s,s:s}]}", "type",
			      "publish", "id", 7, "sdp", sdp, "tracks", "mid",
			      "0", "source", "microphone", "mid", "1", "source",
			      "camera");
	char *text = json_dumps(m, JSON_COMPACT);
	ws_send(fd, text);
	free(text);
	json_decref(m);
	json_t *j;
	code[0] = '\0';
	while ((j = ws_next(fd, NULL))) {
		const char *t = jstr(j, "type");
		if (t && !strcmp(t, "publish_answer"))
			snprintf(code, sizeof(code), "%s", t);
		else if (t && !strcmp(t, "error"))
			snprintf(code, sizeof(code), "%s", jstr(j, "code"));
		json_decref(j);
		if (code[0])
			break;
	}
	return code;
}

/*
 * A subscriber's hop SRTP stream is named by the publisher's SSRC and
 * outlives the track (node_priv.h, struct room): an SSRC announced again in
 * the room -- twice in one offer, or after its track is gone -- is
 * bad_sdp, or the hop key would see its SEQs (AES-GCM nonces) again.
 */
static void test_ssrc_once(const struct node *nd)
{
	const char *room = "perc-ssrc";
	char *offer = slurp(offer_path);
	int fe = -1, ff = -1;
	CV_CHECK(offer != NULL);
	if (!offer)
		return;
	json_t *j =
		join(nd->port, node_token("sub-erin", room, CV_TOKEN_MODE_PERC),
		     room, &fe);
	CV_CHECK(j && !strcmp(jstr(j, "type"), "joined"));
	json_decref(j);
	j = join(nd->port, node_token("sub-frank", room, CV_TOKEN_MODE_PERC),
		 room, &ff);
	CV_CHECK(j && !strcmp(jstr(j, "type"), "joined"));
	json_decref(j);

	/* Erin publishes audio 1510285434 and video 4154914216. */
	CV_CHECK_STR(publish(fe, offer), "publish_answer");
	/* Frank: one SSRC on both m-lines of one offer. */
	char *a = replaced(offer, "1510285434", "777001");
	char *twice = a ? replaced(a, "4154914216", "777001") : NULL;
	CV_CHECK_STR(twice ? publish(ff, twice) : "", "bad_sdp");
	/* Erin's audio goes; Frank announces its SSRC: refused. */
	ws_send(fe, "{\"type\":\"unpublish\",\"id\":8,\"mid\":\"0\"}");
	json_decref(ws_expect(fe, "ok", NULL));
	char *b = replaced(offer, "4154914216", "777002");
	CV_CHECK_STR(b ? publish(ff, b) : "", "bad_sdp");
	/* With SSRCs of its own, Frank publishes. */
	char *c = b ? replaced(b, "1510285434", "777003") : NULL;
	CV_CHECK_STR(c ? publish(ff, c) : "", "publish_answer");
	free(a);
	free(twice);
	free(b);
	free(c);
	free(offer);
	close(fe);
	close(ff);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s CONCLAVE CONCLAVE_KMS OFFER_SDP\n",
			argv[0]);
		return 2;
	}
	node_exe = argv[1];
	kms_exe = argv[2];
	offer_path = argv[3];
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	cv_secret_set(&kms_secret, (const uint8_t *)KMS_SECRET,
		      strlen(KMS_SECRET));
	char cert[300], key[300];
	snprintf(cert, sizeof(cert), "%s/node-cert.pem", dir);
	snprintf(key, sizeof(key), "%s/node-key.pem", dir);
	CV_CHECK_INT(write_identity(cert, key, node_fp), 0);
	CV_CHECK_INT(start_kms(), 0);

	char a_kd[64], a_pin[200], a_cert[400], a_key[400], a_kms[64];
	snprintf(a_kd, sizeof(a_kd), "--perc.kd_port=%u", kd_port);
	snprintf(a_pin, sizeof(a_pin), "--perc.kd_fingerprint=%s", kms_fp);
	snprintf(a_cert, sizeof(a_cert), "--perc.cert_file=%s", cert);
	snprintf(a_key, sizeof(a_key), "--perc.key_file=%s", key);
	snprintf(a_kms, sizeof(a_kms), "--perc.kms_port=%u", kms_port);
	const char *extra[] = {"--token.secret=" NODE_SECRET,
			       a_kd,
			       a_pin,
			       a_cert,
			       a_key,
			       a_kms,
			       NULL};
	struct node nd = {0};
	if (kms_pid > 0 && start_node(&nd, "node", extra) == 0) {
		test_perc_node(&nd);
		test_ssrc_once(&nd);
		test_kms_down(&nd);
		CV_CHECK_INT(stop_pid(&nd.pid), 0);
	} else {
		CV_CHECK(!"the daemons started");
	}
	test_dev_identity();
	test_perc_off();
	if (kms_pid > 0)
		stop_pid(&kms_pid);
	cv_secret_wipe(&kms_secret);
	/* CV_KEEP_LOGS=1 keeps the daemons' logs of a passing run too. */
	if (cv_test_failures == 0 && !getenv("CV_KEEP_LOGS")) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	} else {
		fprintf(stderr, "logs kept in %s\n", dir);
	}
	return cv_test_done("test_node_perc");
}
