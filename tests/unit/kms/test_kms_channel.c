/*
 * The client-KMS channel end to end: a real conclave-kms (SQLite in a temp
 * dir, free ports) and the client library's side (client/kms_client.c).
 * Membership, key fetches, rotation on removal, refusals with their audit
 * rows (non-member, replay, forged/expired/node token, expired request),
 * and a client that refuses a tampered KMS answer.
 *
 *     test_kms_channel PATH_TO_CONCLAVE_KMS
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/kms_client.h"
#include "cv_test.h"
#include "kms/channel.h"
#include "kms/files.h"
#include "kms/proto/kms_proto.h"
#include "kms/store.h"

#define ISSUER	"conclave-idp-test"
#define ROOM	"conclave://rooms/perc-channel-1"
#define SECRET	"kms-token-secret-for-tests-only-0123456789"
#define BAD_KEY "another-secret-nobody-configured-0123456789"

static char dir[] = "/tmp/cv-kms-channel-XXXXXX";
static char path_log[256], path_cert[256];
static pid_t kms_pid;
static uint16_t kms_port;
static struct cv_secret secret;

/* ---- the daemon ---------------------------------------------------------- */

static int wait_ready(void)
{
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(path_log, "r");
		char line[1024];
		while (f && fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, "channel ready (address=");
			const char *c = p ? strrchr(p, ':') : NULL;
			if (c) {
				kms_port = (uint16_t)atoi(c + 1);
				fclose(f);
				return 0;
			}
		}
		if (f)
			fclose(f);
		if (waitpid(kms_pid, NULL, WNOHANG) == kms_pid)
			return -1;
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int start_kms(const char *exe)
{
	char a_dir[300], a_log[300], a_secret[300], path_secret[256];
	snprintf(path_log, sizeof(path_log), "%s/kms.log", dir);
	snprintf(path_cert, sizeof(path_cert), "%s/data/kms-cert.pem", dir);
	snprintf(path_secret, sizeof(path_secret), "%s/token.secret", dir);
	FILE *f = fopen(path_secret, "w");
	if (!f)
		return -1;
	fputs(SECRET "\n", f);
	fclose(f);
	chmod(path_secret, 0600);
	snprintf(a_dir, sizeof(a_dir), "--kms.data_dir=%s/data", dir);
	snprintf(a_log, sizeof(a_log), "--log.file=%s", path_log);
	snprintf(a_secret, sizeof(a_secret), "--channel.token_secret_file=%s",
		 path_secret);
	kms_pid = fork();
	if (kms_pid == 0) {
		execl(exe, exe, a_dir, a_log, "--admin.port=0",
		      "--channel.port=0", a_secret,
		      "--channel.token_issuer=" ISSUER, (char *)NULL);
		_exit(127);
	}
	return kms_pid > 0 ? wait_ready() : -1;
}

static void stop_kms(void)
{
	if (kms_pid <= 0)
		return;
	kill(kms_pid, SIGTERM);
	int st = 0;
	waitpid(kms_pid, &st, 0);
	CV_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	kms_pid = 0;
}

/* ---- audit rows, read through the store on the daemon's database ----------
 */

struct audit_q {
	const char *action, *reason, *actor;
	int granted;
	int count;
};

static int count_row(void *arg, const struct cv_kms_audit_row *r)
{
	struct audit_q *q = arg;
	if (strcmp(r->action, q->action) == 0 &&
	    strcmp(r->reason, q->reason) == 0 &&
	    (int)r->granted == q->granted &&
	    (!q->actor || strcmp(r->actor, q->actor) == 0))
		q->count++;
	return 0;
}

static int audit_count(const char *actor, const char *action, int granted,
		       const char *reason)
{
	char db[300], mk[300];
	snprintf(db, sizeof(db), "%s/data/kms.db", dir);
	snprintf(mk, sizeof(mk), "%s/data/master.key", dir);
	struct cv_secret master = {0};
	struct cv_kms_store *s = NULL;
	struct audit_q q = {action, reason, actor, granted, 0};
	struct cv_kms_store_opts o = {.database = db,
				      .master_key = &master,
				      .key_uri_base = "kms://localhost"};
	struct cv_kms_audit_filter f = {.limit = 10000};
	if (cv_kms_master_key_load(mk, false, &master) ||
	    cv_kms_store_open(&s, &o) ||
	    cv_kms_store_list_audit(s, &f, count_row, &q))
		q.count = -1;
	cv_kms_store_close(s);
	cv_secret_wipe(&master);
	return q.count;
}

/* ---- clients ------------------------------------------------------------- */

/* A transport hook that records what it carries and can tamper. */
struct hook {
	uint8_t last_req[CV_KMS_MSG_MAX_BYTES];
	size_t last_req_len;
	uint8_t saved[CV_KMS_MSG_MAX_BYTES]; /* a captured request */
	size_t saved_len;
	bool send_saved;  /* replay `saved` instead of the real request */
	int flip_resp_at; /* >= 0: flip a bit of the answer there */
	bool seen_room, seen_token;
	const char *token;
};

static int hook_send(void *arg, const uint8_t *req, size_t len, uint8_t *resp,
		     size_t cap, size_t *resp_len)
{
	struct hook *h = arg;
	memcpy(h->last_req, req, len);
	h->last_req_len = len;
	/* What a relay sees: never the room, never the token. */
	if (memmem(req, len, "rooms/perc", 10))
		h->seen_room = true;
	if (h->token && memmem(req, len, h->token, strlen(h->token)))
		h->seen_token = true;
	if (h->send_saved) {
		req = h->saved;
		len = h->saved_len;
		h->send_saved = false;
	}
	int err = cv_kms_client_http("127.0.0.1", kms_port, 5000, req, len,
				     resp, cap, resp_len);
	if (!err && h->flip_resp_at >= 0 &&
	    (size_t)h->flip_resp_at < *resp_len) {
		resp[h->flip_resp_at] ^= 0x01;
		h->flip_resp_at = -1;
	}
	return err;
}

static uint64_t past_clock(void *arg)
{
	(void)arg;
	return cv_clock_wall_ms() - 10 * 60 * 1000;
}

static char *token_for(const struct cv_secret *key, const char *sub,
		       const char *aud, int64_t exp_rel_s)
{
	static char tok[4][1024];
	static int next;
	char *t = tok[next++ % 4];
	int64_t now = (int64_t)(cv_clock_wall_ms() / 1000);
	if (cv_kms_token_issue(key, ISSUER, aud, sub, now - 10, now + exp_rel_s,
			       t, 1024))
		t[0] = '\0';
	return t;
}

static struct cv_kms_client *client(const char *token, struct hook *h,
				    bool past)
{
	struct cv_kms_client_opts o = {
		.host = "127.0.0.1",
		.port = kms_port,
		.kms_cert_file = path_cert,
		.token = token,
		.transport = h ? hook_send : NULL,
		.transport_arg = h,
		.now_ms = past ? past_clock : NULL,
	};
	struct cv_kms_client *c = NULL;
	CV_CHECK_INT(cv_kms_client_create(&c, &o), 0);
	return c;
}

static struct cv_kms_client *connected(const char *sub, struct hook *h)
{
	struct cv_kms_client *c = client(
		token_for(&secret, sub, CV_KMS_TOKEN_AUDIENCE_DEFAULT, 600), h,
		false);
	CV_CHECK_INT(cv_kms_client_connect(c), 0);
	return c;
}

/* ---- scenarios ------------------------------------------------------------
 */

static void test_membership_and_rotation(void)
{
	struct hook ha = {.flip_resp_at = -1};
	struct cv_kms_client *alice = connected("alice-1", &ha);
	struct cv_kms_client *bob = connected("bob-2", NULL);
	struct cv_kms_client *carol = connected("carol-3", NULL);
	uint32_t epoch = 99;
	CV_CHECK_INT(cv_kms_client_create_room(alice, ROOM, &epoch), 0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_client_create_room(bob, ROOM, NULL), -EEXIST);
	CV_CHECK_STR(cv_kms_client_status(bob), "exists");

	/* Not a member yet: refused, and the store audits the denial. */
	struct cv_kms_room_key kb = {0}, ka = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &kb), -EACCES);
	CV_CHECK_STR(cv_kms_client_status(bob), "not_member");
	CV_CHECK_INT(audit_count("bob-2", "key.get", 0, "not a member"), 1);

	/* A non-member cannot add anyone (itself included). */
	CV_CHECK_INT(cv_kms_client_add_member(carol, ROOM, "carol-3", NULL),
		     -EACCES);
	CV_CHECK_INT(
		audit_count("carol-3", "member.add", 0, "actor not a member"),
		1);

	CV_CHECK_INT(cv_kms_client_add_member(alice, ROOM, "bob-2", &epoch), 0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_client_add_member(alice, ROOM, "bob-2", NULL),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &kb), 0);
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &ka), 0);
	CV_CHECK_INT(kb.epoch, 0);
	CV_CHECK_INT(cv_secret_len(&kb.key), 16);
	CV_CHECK_INT(cv_secret_len(&kb.inner_salt), 12);
	CV_CHECK(cv_secret_equal(&ka.key, &kb.key));
	CV_CHECK(cv_secret_equal(&ka.inner_salt, &kb.inner_salt));
	CV_CHECK_STR(ka.uri, kb.uri);
	CV_CHECK(strncmp(kb.uri, "kms://localhost/keys/", 21) == 0);
	struct cv_perc_ekt_key ekt = {0};
	CV_CHECK_INT(cv_kms_room_key_to_ekt(&kb, &ekt), 0);
	CV_CHECK_INT(ekt.spi, kb.spi);
	CV_CHECK(cv_secret_equal(&ekt.key, &kb.key));
	cv_perc_ekt_key_wipe(&ekt);
	CV_CHECK(audit_count("bob-2", "key.get", 1, "") >= 1);

	/* The relay saw neither the room nor the token. */
	CV_CHECK(!ha.seen_room && !ha.seen_token);

	/* Remove bob: a new epoch and key for members, refusal for bob. */
	struct cv_kms_room_key ka2 = {0};
	CV_CHECK_INT(cv_kms_client_remove_member(alice, ROOM, "bob-2", &epoch),
		     0);
	CV_CHECK_INT(epoch, 1);
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &ka2), 0);
	CV_CHECK_INT(ka2.epoch, 1);
	CV_CHECK(!cv_secret_equal(&ka.key, &ka2.key));
	CV_CHECK(strcmp(ka.uri, ka2.uri) != 0);
	CV_CHECK_INT(cv_kms_client_get_room_key(bob, ROOM, &kb), -EACCES);
	CV_CHECK_INT(kb.epoch, 0); /* untouched on failure */
	CV_CHECK_INT(audit_count("bob-2", "key.get", 0, "not a member"), 2);
	CV_CHECK_INT(audit_count("alice-1", "key.rotate", 1, ""), 1);
	/* bob is no member: he cannot remove anyone. */
	CV_CHECK_INT(cv_kms_client_remove_member(bob, ROOM, "alice-1", NULL),
		     -EACCES);
	CV_CHECK_INT(cv_kms_client_remove_member(alice, ROOM, "bob-2", NULL),
		     -EACCES);
	cv_kms_room_key_wipe(&ka);
	cv_kms_room_key_wipe(&ka2);
	cv_kms_room_key_wipe(&kb);
	cv_kms_client_destroy(alice);
	cv_kms_client_destroy(bob);
	cv_kms_client_destroy(carol);
}

static void test_replay(void)
{
	struct hook h = {.flip_resp_at = -1};
	struct cv_kms_client *alice = connected("alice-1", &h);
	struct cv_kms_room_key k = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &k), 0);
	memcpy(h.saved, h.last_req, h.last_req_len);
	h.saved_len = h.last_req_len;
	int before = audit_count("alice-1", "channel.request", 0, "replayed");

	/* The captured request, byte for byte, through the client: the KMS
	 * answers "replayed" (sealed) and audits it. */
	h.send_saved = true;
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &k), CV_EREPLAY);
	CV_CHECK_STR(cv_kms_client_status(alice), "replayed");
	/* And raw, as a relay would replay it. */
	uint8_t resp[CV_KMS_MSG_MAX_BYTES];
	size_t rlen = 0;
	CV_CHECK_INT(cv_kms_client_http("127.0.0.1", kms_port, 5000, h.saved,
					h.saved_len, resp, sizeof(resp), &rlen),
		     0);
	struct cv_kms_msg m;
	CV_CHECK_INT(cv_kms_msg_parse(resp, rlen, &m), 0);
	CV_CHECK_INT(m.type, CV_KMS_MSG_RESPONSE);
	CV_CHECK_INT(audit_count("alice-1", "channel.request", 0, "replayed"),
		     before + 2);
	/* The session still works afterwards. */
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, ROOM, &k), 0);

	/* A request sealed for another session / flipped: plain refusal. */
	memcpy(resp, h.saved, h.saved_len);
	resp[h.saved_len - 1] ^= 1;
	CV_CHECK_INT(cv_kms_client_http("127.0.0.1", kms_port, 5000, resp,
					h.saved_len, resp, sizeof(resp), &rlen),
		     0);
	CV_CHECK_INT(cv_kms_msg_parse(resp, rlen, &m), 0);
	CV_CHECK_INT(m.type, CV_KMS_MSG_ERROR);
	CV_CHECK_INT(m.status, CV_KMS_BAD_REQUEST);
	cv_kms_room_key_wipe(&k);
	cv_kms_client_destroy(alice);
}

static void test_tokens(void)
{
	struct cv_secret bad = {0};
	cv_secret_set(&bad, (const uint8_t *)BAD_KEY, strlen(BAD_KEY));
	int inv = audit_count(NULL, "channel.open", 0, "token invalid");
	int exp = audit_count(NULL, "channel.open", 0, "token expired");

	/* Forged: signed with a key the KMS does not know. */
	struct cv_kms_client *c =
		client(token_for(&bad, "mallory-9",
				 CV_KMS_TOKEN_AUDIENCE_DEFAULT, 600),
		       NULL, false);
	CV_CHECK_INT(cv_kms_client_connect(c), CV_EAUTH);
	CV_CHECK_STR(cv_kms_client_status(c), "token_invalid");
	CV_CHECK_INT(cv_kms_client_create_room(c, ROOM "-x", NULL), -ENOTCONN);
	cv_kms_client_destroy(c);
	/* Right key, wrong audience (e.g. a token meant for the node). */
	c = client(token_for(&secret, "alice-1", "conclave-node", 600), NULL,
		   false);
	CV_CHECK_INT(cv_kms_client_connect(c), CV_EAUTH);
	cv_kms_client_destroy(c);
	/* A node join token: another format and secret altogether. */
	c = client("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwicm9vbSI6InIiLCJleHAiOj"
		   "k5OTk5OTk5OTl9.c2lnbmF0dXJlLW5vdC12YWxpZC1mb3ItdGhlLWttcw",
		   NULL, false);
	CV_CHECK_INT(cv_kms_client_connect(c), CV_EAUTH);
	cv_kms_client_destroy(c);
	CV_CHECK_INT(audit_count(NULL, "channel.open", 0, "token invalid"),
		     inv + 3);

	/* Expired. */
	c = client(token_for(&secret, "alice-1", CV_KMS_TOKEN_AUDIENCE_DEFAULT,
			     -5),
		   NULL, false);
	CV_CHECK_INT(cv_kms_client_connect(c), CV_EEXPIRED);
	CV_CHECK_STR(cv_kms_client_status(c), "token_expired");
	cv_kms_client_destroy(c);
	CV_CHECK_INT(audit_count(NULL, "channel.open", 0, "token expired"),
		     exp + 1);

	/* An expired request (the client's clock says it expired 10 min
	 * ago): refused and audited. */
	c = client(token_for(&secret, "alice-1", CV_KMS_TOKEN_AUDIENCE_DEFAULT,
			     600),
		   NULL, true);
	CV_CHECK_INT(cv_kms_client_connect(c), 0);
	struct cv_kms_room_key k = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(c, ROOM, &k), CV_EEXPIRED);
	CV_CHECK_STR(cv_kms_client_status(c), "request_expired");
	CV_CHECK_INT(
		audit_count("alice-1", "channel.request", 0, "request expired"),
		1);
	cv_kms_client_destroy(c);
	cv_secret_wipe(&bad);
}

static void test_tampered_answers(void)
{
	/* A man in the middle flips one bit of the HELLO_REPLY: in the
	 * session id, in the KMS's ECDH half, in the expiry, in the
	 * signature. The client refuses each. */
	static const int at[] = {2, 20, 90, CV_KMS_REPLY_SIGNED_BYTES + 10};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		struct hook h = {.flip_resp_at = at[i]};
		struct cv_kms_client *c =
			client(token_for(&secret, "alice-1",
					 CV_KMS_TOKEN_AUDIENCE_DEFAULT, 600),
			       &h, false);
		int rc = cv_kms_client_connect(c);
		if (rc != CV_EINTEGRITY)
			fprintf(stderr, "flip at %d gave %d\n", at[i], rc);
		CV_CHECK_INT(rc, CV_EINTEGRITY);
		CV_CHECK_INT(cv_kms_client_get_room_key(
				     c, ROOM, &(struct cv_kms_room_key){0}),
			     -ENOTCONN);
		cv_kms_client_destroy(c);
	}
	/* A client pinned to another certificate refuses the real KMS. */
	char other[300];
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0700);
	char oc[400], ok[400], fp[CV_KMS_FINGERPRINT_SIZE];
	snprintf(oc, sizeof(oc), "%s/cert.pem", other);
	snprintf(ok, sizeof(ok), "%s/key.pem", other);
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	CV_CHECK_INT(cv_kms_cert_load(oc, ok, "impostor", true, &x, &pk, fp),
		     0);
	X509_free(x);
	EVP_PKEY_free(pk);
	struct cv_kms_client_opts o = {
		.host = "127.0.0.1",
		.port = kms_port,
		.kms_cert_file = oc,
		.token = token_for(&secret, "alice-1",
				   CV_KMS_TOKEN_AUDIENCE_DEFAULT, 600),
	};
	struct cv_kms_client *c = NULL;
	CV_CHECK_INT(cv_kms_client_create(&c, &o), 0);
	/* Sealed to the wrong key, the KMS cannot open the hello. */
	CV_CHECK_INT(cv_kms_client_connect(c), -EINVAL);
	CV_CHECK_STR(cv_kms_client_status(c), "bad_request");
	cv_kms_client_destroy(c);

	/* A flipped bit in a RESPONSE: the tag fails, nothing is used. */
	struct hook h = {.flip_resp_at = -1};
	c = connected("alice-1", &h);
	struct cv_kms_room_key k = {0};
	h.flip_resp_at = CV_KMS_SEALED_HEAD_BYTES + 3;
	CV_CHECK_INT(cv_kms_client_get_room_key(c, ROOM, &k), CV_EINTEGRITY);
	CV_CHECK_INT(cv_secret_len(&k.key), 0);
	h.flip_resp_at = 5; /* in the session id */
	CV_CHECK_INT(cv_kms_client_get_room_key(c, ROOM, &k), CV_EPROTO);
	CV_CHECK_INT(cv_kms_client_get_room_key(c, ROOM, &k), 0);
	cv_kms_room_key_wipe(&k);
	cv_kms_client_destroy(c);
}

static void test_log_clean(void)
{
	FILE *f = fopen(path_log, "r");
	CV_CHECK(f != NULL);
	if (!f)
		return;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	CV_CHECK(strstr(buf, "alice-1") == NULL);
	CV_CHECK(strstr(buf, "perc-channel") == NULL);
	CV_CHECK(strstr(buf, SECRET) == NULL);
	CV_CHECK(strstr(buf, "eyJ") == NULL); /* no token */
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CONCLAVE_KMS\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	cv_secret_set(&secret, (const uint8_t *)SECRET, strlen(SECRET));
	if (!mkdtemp(dir) || start_kms(argv[1])) {
		fprintf(stderr, "conclave-kms did not start\n");
		if (kms_pid > 0)
			kill(kms_pid, SIGKILL);
		return 1;
	}
	test_membership_and_rotation();
	test_replay();
	test_tokens();
	test_tampered_answers();
	stop_kms();
	test_log_clean();
	cv_secret_wipe(&secret);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done("test_kms_channel");
}
