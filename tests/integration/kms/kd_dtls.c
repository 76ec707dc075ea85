/*
 * conclave-kms as Key Distributor, end to end: a real daemon (SQLite in a
 * temp dir, free ports, kd on) and, in this process, a media node's end of
 * the RFC 9185 tunnel (cv_tunnel_link + cv_dtls_tunnel_create) and perc
 * endpoints (cv_dtls_local_create, DTLS client, their own certificates)
 * that talk to the KMS over the client-KMS channel (client/kms_client.c).
 *
 * - An endpoint registers its certificate for an association id
 *   (REGISTER_ENDPOINT), pins the KD certificate from GET_KEY and
 *   handshakes through the node; the node's on_connected gets exactly the
 *   outer halves that the endpoint derives from its own exporter output
 *   with the docs/perc.md rule (both double profiles). Audit rows for the
 *   registration and for the hop keys.
 * - No registration, a non-member's registration, a certificate other
 *   than the registered one, a registration for an id that another room
 *   holds, a removed member's registration: refused, audited, no
 *   MediaKeys for the id.
 * - Two-part membership: a sealed add/remove POSTed with the node relay's
 *   Conclave-Room/Actor/Op/Member headers is carried out only when they
 *   name the same change (else bad_request, audited, nothing changes);
 *   the answer carries Conclave-Status. The client library's HTTP
 *   transport adds Conclave-Core/Op/Member to add/remove only.
 *
 *     kd_dtls CONCLAVE_KMS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conclave/clock.h"
#include "conclave/dtls.h"
#include "conclave/err.h"
#include "conclave/kms_client.h"
#include "conclave/log.h"
#include "conclave/loop.h"
#include "conclave/tunnel.h"
#include "cv_test.h"
#include "cv_test_ident.h"
#include "kms/channel.h"
#include "kms/files.h"
#include "kms/kd_dtls.h"
#include "kms/proto/kms_proto.h"
#include "kms/store.h"

#define ISSUER	"conclave-idp-kd-test"
#define SECRET	"kms-token-secret-for-kd-tests-0123456789"
#define R1	"conclave://rooms/perc-kd-1"
#define R2	"conclave://rooms/perc-kd-2"
#define WAIT_MS 15000

static char dir[] = "/tmp/cv-kms-kd-dtls-XXXXXX";
static char path_log[256], path_cert[256], node_crt[256], node_key[256];
static char node_fp[CV_TUNNEL_FP_STRLEN], kms_fp[CV_TUNNEL_FP_STRLEN];
static char kd_fp_logged[CV_DTLS_FINGERPRINT_STRLEN];
static pid_t kms_pid;
static uint16_t chan_port, kd_port;
static struct cv_secret secret;

/* ---- the daemon ---------------------------------------------------------- */

static int make_node_cert(void)
{
	snprintf(node_crt, sizeof(node_crt), "%s/node-cert.pem", dir);
	snprintf(node_key, sizeof(node_key), "%s/node-key.pem", dir);
	return cv_test_write_ident(node_crt, node_key, "node", 1, node_fp);
}

/* Copies what follows `key` up to `stop` on a log line into out. */
static bool log_field(const char *line, const char *key, char stop, char *out,
		      size_t cap)
{
	const char *p = strstr(line, key);
	if (!p)
		return false;
	p += strlen(key);
	const char *e = strchr(p, stop);
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return true;
}

static int wait_ready(void)
{
	uint64_t end = cv_clock_now_ms() + WAIT_MS;
	char v[256];
	while (cv_clock_now_ms() < end) {
		FILE *f = fopen(path_log, "r");
		char line[1024];
		bool ready = false;
		while (f && fgets(line, sizeof(line), f)) {
			if (log_field(line, "channel ready (address=127.0.0.1:",
				      ')', v, sizeof(v)))
				chan_port = (uint16_t)atoi(v);
			if (log_field(line, "kd ready (address=127.0.0.1:", ' ',
				      v, sizeof(v)))
				kd_port = (uint16_t)atoi(v);
			log_field(line,
				  "kd: dtls certificate (fingerprint=", ')',
				  kd_fp_logged, sizeof(kd_fp_logged));
			if (strstr(line, "ready (backend=") &&
			    log_field(line, "cert=", ')', kms_fp,
				      sizeof(kms_fp)))
				ready = true;
		}
		if (f)
			fclose(f);
		if (ready)
			return chan_port && kd_port && kd_fp_logged[0] ? 0 : -1;
		if (waitpid(kms_pid, NULL, WNOHANG) == kms_pid)
			return -1;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL); /* polling a file the daemon writes */
	}
	return -1;
}

static int start_kms(const char *exe)
{
	char a_dir[300], a_log[300], a_secret[300], a_pins[300],
		path_secret[256];
	snprintf(path_log, sizeof(path_log), "%s/kms.log", dir);
	snprintf(path_cert, sizeof(path_cert), "%s/data/kms-cert.pem", dir);
	snprintf(path_secret, sizeof(path_secret), "%s/token.secret", dir);
	FILE *f = fopen(path_secret, "w");
	if (!f || make_node_cert())
		return -1;
	fputs(SECRET "\n", f);
	fclose(f);
	chmod(path_secret, 0600);
	snprintf(a_dir, sizeof(a_dir), "--kms.data_dir=%s/data", dir);
	snprintf(a_log, sizeof(a_log), "--log.file=%s", path_log);
	snprintf(a_secret, sizeof(a_secret), "--channel.token_secret_file=%s",
		 path_secret);
	snprintf(a_pins, sizeof(a_pins), "--kd.node_fingerprints=%s", node_fp);
	kms_pid = fork();
	if (kms_pid == 0) {
		execl(exe, exe, a_dir, a_log, "--admin.port=0",
		      "--channel.port=0", a_secret,
		      "--channel.token_issuer=" ISSUER, "--kd.port=0", a_pins,
		      "--log.level=debug", (char *)NULL);
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

/* ---- audit rows, read through the store on the daemon's database ---- */

struct audit_q {
	const char *action, *reason, *actor, *room, *object;
	int granted;
	int count;
};

static int count_row(void *arg, const struct cv_kms_audit_row *r)
{
	struct audit_q *q = arg;
	if (!strcmp(r->action, q->action) && !strcmp(r->reason, q->reason) &&
	    (int)r->granted == q->granted &&
	    (!q->actor || !strcmp(r->actor, q->actor)) &&
	    (!q->room || !strcmp(r->room, q->room)) &&
	    (!q->object || !strcmp(r->object, q->object)))
		q->count++;
	return 0;
}

static int audit_count(const char *actor, const char *action, int granted,
		       const char *reason, const char *room, const char *object)
{
	char db[300], mk[300];
	snprintf(db, sizeof(db), "%s/data/kms.db", dir);
	snprintf(mk, sizeof(mk), "%s/data/master.key", dir);
	struct cv_secret master = {0};
	struct cv_kms_store *s = NULL;
	struct audit_q q = {action, reason, actor, room, object, granted, 0};
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

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- channel clients ----------------------------------------------------- */

static char *token_for(const char *sub)
{
	static char tok[8][1024];
	static int next;
	char *t = tok[next++ % 8];
	int64_t now = (int64_t)(cv_clock_wall_ms() / 1000);
	if (cv_kms_token_issue(&secret, ISSUER, CV_KMS_TOKEN_AUDIENCE_DEFAULT,
			       sub, now - 10, now + 600, t, 1024))
		t[0] = '\0';
	return t;
}

/* A transport that POSTs with chosen Conclave-* headers (what the node
 * relay adds) and keeps the answer's Conclave-Status. */
struct relay_hook {
	const char *headers; /* NULL: none */
	char status[64];
	int calls;
};

static int hook_send(void *arg, const uint8_t *req, size_t len, uint8_t *resp,
		     size_t cap, size_t *resp_len)
{
	struct relay_hook *h = arg;
	h->calls++;
	return cv_kms_client_http_ex("127.0.0.1", chan_port, 5000, h->headers,
				     req, len, resp, cap, resp_len, h->status,
				     sizeof(h->status));
}

static struct cv_kms_client *client_for(const char *sub, struct relay_hook *h,
					const char *core_token, uint16_t port)
{
	struct cv_kms_client_opts o = {
		.host = "127.0.0.1",
		.port = port ? port : chan_port,
		.kms_cert_file = path_cert,
		.token = token_for(sub),
		.transport = h ? hook_send : NULL,
		.transport_arg = h,
		.core_token = core_token,
	};
	struct cv_kms_client *c = NULL;
	CV_CHECK_INT(cv_kms_client_create(&c, &o), 0);
	if (c)
		CV_CHECK_INT(cv_kms_client_connect(c), 0);
	return c;
}

/* ---- the node and the endpoints ----------------------------------------- */

#define QUEUE 32

struct queue {
	uint8_t d[QUEUE][CV_DTLS_MAX_DATAGRAM];
	size_t len[QUEUE];
	size_t head, n;
};

static void q_put(struct queue *q, const uint8_t *p, size_t len)
{
	if (q->n == QUEUE || len > CV_DTLS_MAX_DATAGRAM)
		return; /* a lost datagram: DTLS retransmits */
	size_t i = (q->head + q->n++) % QUEUE;
	memcpy(q->d[i], p, len);
	q->len[i] = len;
}

/* One endpoint association through the node. */
struct pair {
	const char *name;
	struct cv_tunnel_assoc_id assoc;
	struct cv_dtls *node; /* tunnelled, server */
	struct cv_dtls *ep;   /* local, client */
	struct queue to_node, to_ep;
	int media_keys; /* MediaKeys seen on the link for this id */
	bool node_up, ep_up, ep_failed, node_failed;
	int ep_err;
	uint16_t node_prof, ep_prof;
	uint8_t node_mat[CV_DTLS_MATERIAL_MAX], ep_mat[CV_DTLS_MATERIAL_MAX];
	size_t node_len, ep_len;
};

#define MAX_PAIRS 8
static struct pair *pairs[MAX_PAIRS];
static size_t n_pairs;
static struct cv_loop *loop;
static struct cv_tunnel_link *link_;
static bool link_up;

static void node_send(void *arg, const uint8_t *rec, size_t len)
{
	q_put(&((struct pair *)arg)->to_ep, rec, len);
}

static void node_connected(void *arg, uint16_t prof, const uint8_t *m,
			   size_t len, bool is_client)
{
	struct pair *p = arg;
	CV_CHECK(!is_client);
	CV_CHECK(!p->node_up); /* once */
	p->node_up = true;
	p->node_prof = prof;
	p->node_len = len <= sizeof(p->node_mat) ? len : 0;
	memcpy(p->node_mat, m, p->node_len);
}

static void node_failed(void *arg, int err)
{
	(void)err;
	((struct pair *)arg)->node_failed = true;
}

static void ep_send(void *arg, const uint8_t *rec, size_t len)
{
	q_put(&((struct pair *)arg)->to_node, rec, len);
}

static void ep_connected(void *arg, uint16_t prof, const uint8_t *m, size_t len,
			 bool is_client)
{
	struct pair *p = arg;
	CV_CHECK(is_client);
	p->ep_up = true;
	p->ep_prof = prof;
	p->ep_len = len <= sizeof(p->ep_mat) ? len : 0;
	memcpy(p->ep_mat, m, p->ep_len);
}

static void ep_failed(void *arg, int err)
{
	struct pair *p = arg;
	p->ep_failed = true;
	p->ep_err = err;
}

static struct pair *pair_of(const struct cv_tunnel_assoc_id *a)
{
	for (size_t i = 0; i < n_pairs; i++)
		if (!memcmp(pairs[i]->assoc.b, a->b, sizeof(a->b)))
			return pairs[i];
	return NULL;
}

static void link_on_up(void *arg)
{
	(void)arg;
	link_up = true;
}

static void link_on_down(void *arg, int err)
{
	(void)arg;
	fprintf(stderr, "link down: %s\n", cv_strerror(err));
	link_up = false;
	for (size_t i = 0; i < n_pairs; i++)
		cv_dtls_tunnel_link_down(pairs[i]->node, err);
}

static void link_on_message(void *arg, const struct cv_tunnel_msg *m)
{
	(void)arg;
	const struct cv_tunnel_assoc_id *a = m->type == CV_TUNNEL_MEDIA_KEYS
						     ? &m->u.keys.assoc
						     : &m->u.dtls.assoc;
	struct pair *p = pair_of(a);
	if (!p)
		return;
	if (m->type == CV_TUNNEL_MEDIA_KEYS)
		p->media_keys++;
	cv_dtls_tunnel_handle_message(p->node, m);
}

/* One turn: the loop (link I/O), then the datagrams both ways, then the
 * DTLS timers. Never calls into a cv_dtls from its own callback. */
static void pump(void)
{
	cv_loop_run_once(loop, 5);
	uint64_t now = cv_loop_now_ms(loop);
	for (size_t i = 0; i < n_pairs; i++) {
		struct pair *p = pairs[i];
		while (p->to_node.n) {
			size_t k = p->to_node.head;
			p->to_node.head = (k + 1) % QUEUE;
			p->to_node.n--;
			cv_dtls_handle_datagram(p->node, p->to_node.d[k],
						p->to_node.len[k], now);
		}
		while (p->to_ep.n) {
			size_t k = p->to_ep.head;
			p->to_ep.head = (k + 1) % QUEUE;
			p->to_ep.n--;
			cv_dtls_handle_datagram(p->ep, p->to_ep.d[k],
						p->to_ep.len[k], now);
		}
		cv_dtls_handle_timer(p->ep, now);
		cv_dtls_handle_timer(p->node, now);
	}
}

/* Pumps until *flag or until the audit has `want` rows of a kind. */
static bool pump_until(const bool *flag)
{
	uint64_t end = cv_clock_now_ms() + WAIT_MS;
	while (!*flag && cv_clock_now_ms() < end)
		pump();
	return *flag;
}

static int pump_until_audit(int want, const char *actor, const char *action,
			    int granted, const char *reason, const char *room,
			    const char *object)
{
	uint64_t end = cv_clock_now_ms() + WAIT_MS, next = 0;
	int n = -1;
	while (cv_clock_now_ms() < end) {
		pump();
		if (cv_clock_now_ms() >= next) {
			n = audit_count(actor, action, granted, reason, room,
					object);
			if (n >= want)
				return n;
			next = cv_clock_now_ms() + 50;
		}
	}
	return n;
}

/* An endpoint with its own certificate, pinning `kd` (the KD's DTLS
 * certificate from GET_KEY), on a new association through the node. */
static struct pair *pair_new(const char *name, struct cv_dtls_ctx *ctx,
			     const struct cv_dtls_fingerprint *kd)
{
	struct pair *p = calloc(1, sizeof(*p));
	CV_CHECK(p != NULL && n_pairs < MAX_PAIRS);
	if (!p || n_pairs >= MAX_PAIRS)
		exit(1);
	p->name = name;
	CV_CHECK_INT(cv_dtls_tunnel_new_assoc_id(&p->assoc), 0);
	struct cv_dtls_callbacks ncb = {.send = node_send,
					.on_connected = node_connected,
					.on_failed = node_failed,
					.arg = p};
	struct cv_dtls_callbacks ecb = {.send = ep_send,
					.on_connected = ep_connected,
					.on_failed = ep_failed,
					.arg = p};
	CV_CHECK_INT(cv_dtls_tunnel_create(&p->node, link_, &p->assoc,
					   CV_DTLS_ROLE_SERVER, &ncb),
		     0);
	CV_CHECK_INT(cv_dtls_local_create(&p->ep, ctx, CV_DTLS_ROLE_CLIENT, kd,
					  1, &ecb),
		     0);
	pairs[n_pairs++] = p;
	return p;
}

static void pair_start(struct pair *p)
{
	CV_CHECK_INT(cv_dtls_start(p->ep, cv_loop_now_ms(loop)), 0);
}

static struct cv_dtls_fingerprint fp_of(struct cv_dtls_cert *c)
{
	struct cv_dtls_fingerprint f = {0};
	const char *s = cv_dtls_cert_fingerprint(c);
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&f, s, strlen(s)), 0);
	return f;
}

struct ident {
	struct cv_dtls_cert *cert;
	struct cv_dtls_ctx *ctx;
	struct cv_dtls_fingerprint fp;
};

static void ident_make(struct ident *id, uint16_t only_profile)
{
	CV_CHECK_INT(cv_dtls_cert_generate(&id->cert), 0);
	CV_CHECK_INT(cv_dtls_ctx_create(&id->ctx, id->cert), 0);
	if (only_profile)
		CV_CHECK_INT(cv_dtls_ctx_set_srtp_profiles(id->ctx,
							   &only_profile, 1),
			     0);
	id->fp = fp_of(id->cert);
}

static void ident_free(struct ident *id)
{
	cv_dtls_ctx_unref(id->ctx);
	cv_dtls_cert_unref(id->cert);
}

/* ---- scenarios ------------------------------------------------------------
 */

static struct cv_kms_client *alice, *bob, *mallory;
static struct cv_dtls_fingerprint kd_fp;
static struct ident id_alice, id_alice256, id_bob, id_mallory, id_other;
static int rows_nokey_before;

static void check_keys_match(struct pair *p)
{
	/* The endpoint's own derivation (docs/perc.md rule) from its
	 * exporter output; the node must hold exactly the outer halves. */
	struct cv_kd_double_keys k;
	CV_CHECK(p->ep_len > 0);
	CV_CHECK_INT(p->node_prof, p->ep_prof);
	CV_CHECK_INT(p->node_len, cv_dtls_srtp_material_len(p->ep_prof));
	CV_CHECK_INT(
		cv_kd_double_keys_derive(&k, p->ep_prof, p->ep_mat, p->ep_len),
		0);
	size_t h = k.half_key_len;
	uint8_t want[CV_DTLS_MATERIAL_MAX];
	memcpy(want, cv_secret_data(&k.client_write_key) + h, h);
	memcpy(want + h, cv_secret_data(&k.server_write_key) + h, h);
	memcpy(want + 2 * h, cv_secret_data(&k.client_write_salt) + 12, 12);
	memcpy(want + 2 * h + 12, cv_secret_data(&k.server_write_salt) + 12,
	       12);
	CV_CHECK_MEM(p->node_mat, want, 2 * h + 24);
	/* Neither the exporter output nor an inner half reached the node. */
	CV_CHECK(memcmp(p->node_mat, p->ep_mat, p->node_len) != 0);
	CV_CHECK(!memmem(p->node_mat, p->node_len,
			 cv_secret_data(&k.client_write_key), h));
	CV_CHECK(!memmem(p->node_mat, p->node_len,
			 cv_secret_data(&k.server_write_key), h));
	cv_kd_double_keys_wipe(&k);
	CV_CHECK_INT(p->media_keys, 1);
}

static void test_setup(void)
{
	alice = client_for("alice-1", NULL, NULL, 0);
	bob = client_for("bob-2", NULL, NULL, 0);
	mallory = client_for("mallory-3", NULL, NULL, 0);
	CV_CHECK_INT(cv_kms_client_create_room(alice, R1, NULL), 0);
	CV_CHECK_INT(cv_kms_client_create_room(mallory, R2, NULL), 0);
	struct cv_kms_room_key k = {0}, k2 = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(alice, R1, &k), 0);
	CV_CHECK_INT(cv_kms_client_get_room_key(mallory, R2, &k2), 0);
	/* GET_KEY carries the KD's certificate: the one the daemon logged
	 * at start, the same for every room. */
	CV_CHECK_INT(k.kd_fp.hash, CV_DTLS_HASH_SHA256);
	CV_CHECK_INT(k.kd_fp.len, 32);
	CV_CHECK_MEM(k.kd_fp.md, k2.kd_fp.md, 32);
	struct cv_dtls_fingerprint logged = {0};
	CV_CHECK_INT(cv_dtls_fingerprint_parse(&logged, kd_fp_logged,
					       strlen(kd_fp_logged)),
		     0);
	CV_CHECK_MEM(k.kd_fp.md, logged.md, 32);
	kd_fp = k.kd_fp;
	cv_kms_room_key_wipe(&k);
	cv_kms_room_key_wipe(&k2);
	ident_make(&id_alice, 0);
	ident_make(&id_alice256, CV_DTLS_SRTP_AEAD_AES_256_GCM);
	ident_make(&id_bob, 0);
	ident_make(&id_mallory, 0);
	ident_make(&id_other, 0);

	/* The node's link to the KD. */
	struct cv_tunnel_link_opts lo = {
		.host = "127.0.0.1",
		.port = kd_port,
		.cert_file = node_crt,
		.key_file = node_key,
		.kd_fingerprint = kms_fp,
		.connect_timeout_ms = 5000,
	};
	struct cv_tunnel_link_callbacks cb = {.on_up = link_on_up,
					      .on_down = link_on_down,
					      .on_message = link_on_message};
	CV_CHECK_INT(cv_loop_create(&loop), 0);
	CV_CHECK_INT(cv_tunnel_link_create(&link_, loop, &lo, &cb), 0);
	CV_CHECK(pump_until(&link_up));
	rows_nokey_before = audit_count(NULL, "kd.media_keys", 0,
					"no registered endpoint", NULL, NULL);
}

static struct pair *p_unreg, *p_nonmember, *p_wrongcert, *p_otherroom,
	*p_removed;

static void test_refusals(void)
{
	char id[33];

	/* 1. Nothing registered for the id: the KD opens nothing. */
	p_unreg = pair_new("unregistered", id_alice.ctx, &kd_fp);
	pair_start(p_unreg);
	hex(p_unreg->assoc.b, 16, id);
	CV_CHECK_INT(pump_until_audit(1, "-", "kd.media_keys", 0,
				      "no registered endpoint", "", id),
		     1);

	/* 2. A non-member registers: refused and audited; its handshake
	 * then finds nothing registered. */
	p_nonmember = pair_new("non-member", id_bob.ctx, &kd_fp);
	CV_CHECK_INT(cv_kms_client_register_endpoint(
			     bob, R1, &p_nonmember->assoc, &id_bob.fp),
		     -EACCES);
	CV_CHECK_STR(cv_kms_client_status(bob), "not_member");
	hex(p_nonmember->assoc.b, 16, id);
	CV_CHECK_INT(audit_count("bob-2", "endpoint.register", 0,
				 "actor not a member", R1, id),
		     1);
	pair_start(p_nonmember);
	CV_CHECK_INT(pump_until_audit(1, "-", "kd.media_keys", 0,
				      "no registered endpoint", "", id),
		     1);

	/* 3. Registered, but the endpoint shows another certificate: the
	 * KD's handshake fails, audited with the registration's actor. */
	p_wrongcert = pair_new("wrong certificate", id_other.ctx, &kd_fp);
	CV_CHECK_INT(cv_kms_client_register_endpoint(
			     alice, R1, &p_wrongcert->assoc, &id_alice.fp),
		     0);
	pair_start(p_wrongcert);
	hex(p_wrongcert->assoc.b, 16, id);
	CV_CHECK_INT(pump_until_audit(1, "alice-1", "kd.media_keys", 0,
				      "endpoint certificate does not match", R1,
				      id),
		     1);
	CV_CHECK(pump_until(&p_wrongcert->ep_failed));

	/* 4. An id registered for R1 cannot be registered for R2 (nor by
	 * another actor); the other room's endpoint gets nothing. */
	p_otherroom = pair_new("other room", id_mallory.ctx, &kd_fp);
	CV_CHECK_INT(cv_kms_client_register_endpoint(
			     alice, R1, &p_otherroom->assoc, &id_alice.fp),
		     0);
	CV_CHECK_INT(cv_kms_client_register_endpoint(
			     mallory, R2, &p_otherroom->assoc, &id_mallory.fp),
		     -EEXIST);
	CV_CHECK_STR(cv_kms_client_status(mallory), "exists");
	hex(p_otherroom->assoc.b, 16, id);
	CV_CHECK_INT(audit_count("mallory-3", "endpoint.register", 0,
				 "association registered elsewhere", R2, id),
		     1);
	pair_start(p_otherroom);
	CV_CHECK_INT(pump_until_audit(1, "alice-1", "kd.media_keys", 0,
				      "endpoint certificate does not match", R1,
				      id),
		     1);

	/* 5. A member registers, then is removed: the registration goes
	 * with the membership. */
	CV_CHECK_INT(cv_kms_client_add_member(alice, R1, "bob-2", NULL), 0);
	p_removed = pair_new("removed member", id_bob.ctx, &kd_fp);
	CV_CHECK_INT(cv_kms_client_register_endpoint(bob, R1, &p_removed->assoc,
						     &id_bob.fp),
		     0);
	hex(p_removed->assoc.b, 16, id);
	CV_CHECK_INT(audit_count("bob-2", "endpoint.register", 1, "", R1, id),
		     1);
	CV_CHECK_INT(cv_kms_client_remove_member(alice, R1, "bob-2", NULL), 0);
	pair_start(p_removed);
	CV_CHECK_INT(pump_until_audit(1, "-", "kd.media_keys", 0,
				      "no registered endpoint", "", id),
		     1);
	/* Bad arguments never reach the KMS. */
	struct cv_dtls_fingerprint sha1 = {.hash = CV_DTLS_HASH_SHA1,
					   .len = 20};
	CV_CHECK_INT(cv_kms_client_register_endpoint(alice, R1,
						     &p_removed->assoc, &sha1),
		     -EINVAL);
}

static void test_media_keys(void)
{
	char id[33];
	/* Both double profiles: AEAD_AES_128_GCM (0x0009) by default, the
	 * 256 one for an endpoint that offers only AEAD_AES_256_GCM. */
	struct ident *ids[] = {&id_alice, &id_alice256};
	uint16_t profs[] = {CV_DTLS_SRTP_AEAD_AES_128_GCM,
			    CV_DTLS_SRTP_AEAD_AES_256_GCM};
	for (size_t i = 0; i < 2; i++) {
		struct pair *p = pair_new("registered", ids[i]->ctx, &kd_fp);
		CV_CHECK_INT(cv_kms_client_register_endpoint(
				     alice, R1, &p->assoc, &ids[i]->fp),
			     0);
		CV_CHECK_STR(cv_kms_client_status(alice), "ok");
		hex(p->assoc.b, 16, id);
		CV_CHECK_INT(audit_count("alice-1", "endpoint.register", 1, "",
					 R1, id),
			     1);
		pair_start(p);
		CV_CHECK(pump_until(&p->node_up));
		CV_CHECK(pump_until(&p->ep_up));
		CV_CHECK_INT(p->ep_prof, profs[i]);
		check_keys_match(p);
		CV_CHECK_INT(pump_until_audit(1, "alice-1", "kd.media_keys", 1,
					      "", R1, id),
			     1);
	}
	/* Everything refused before got no MediaKeys (the KD answers a
	 * link in order: they would have come before these) and one
	 * audit row each, whatever the retransmissions. */
	struct pair *refused[] = {p_unreg, p_nonmember, p_wrongcert,
				  p_otherroom, p_removed};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (refused[i]->media_keys || refused[i]->node_up)
			fprintf(stderr, "%s: media keys\n", refused[i]->name);
		CV_CHECK_INT(refused[i]->media_keys, 0);
		CV_CHECK(!refused[i]->node_up);
		CV_CHECK(!refused[i]->ep_up);
	}
	CV_CHECK_INT(audit_count(NULL, "kd.media_keys", 0,
				 "no registered endpoint", NULL, NULL),
		     rows_nokey_before + 3);
}

/* ---- two-part membership -------------------------------------------------
 */

static void test_core_headers(void)
{
	struct relay_hook h = {0};
	struct cv_kms_client *a = client_for("alice-1", &h, NULL, 0);
	struct cv_kms_client *carol = client_for("carol-4", NULL, NULL, 0);
	struct cv_kms_room_key k = {0};
	int differ = audit_count("alice-1", "member.remove", 0,
				 "core and kms parts differ", R1, NULL);

	/* Both parts name the same add: carried out, status ok. */
	h.headers = "Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		    "Conclave-Op: add_member\r\nConclave-Member: carol-4\r\n";
	CV_CHECK_INT(cv_kms_client_add_member(a, R1, "carol-4", NULL), 0);
	CV_CHECK_STR(h.status, "ok");
	CV_CHECK_INT(cv_kms_client_get_room_key(carol, R1, &k), 0);

	/* Parts that differ: refused, audited, nothing changes. */
	static const char *const bad[] = {
		/* another member */
		"Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: dave-5\r\n",
		/* another room */
		"Conclave-Room: " R2 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n",
		/* another actor (the node token's sub) */
		"Conclave-Room: " R1 "\r\nConclave-Actor: mallory-3\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n",
		/* another op */
		"Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Op: add_member\r\nConclave-Member: carol-4\r\n",
		/* a header missing */
		"Conclave-Room: " R1 "\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n",
		/* a header twice */
		"Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Actor: alice-1\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n",
	};
	size_t nbad = sizeof(bad) / sizeof(bad[0]);
	for (size_t i = 0; i < nbad; i++) {
		h.headers = bad[i];
		h.status[0] = '\0';
		CV_CHECK_INT(
			cv_kms_client_remove_member(a, R1, "carol-4", NULL),
			-EINVAL);
		CV_CHECK_STR(h.status, "bad_request");
		CV_CHECK_INT(cv_kms_client_get_room_key(carol, R1, &k), 0);
	}
	CV_CHECK_INT(audit_count("alice-1", "member.remove", 0,
				 "core and kms parts differ", R1, NULL),
		     differ + (int)nbad);
	/* A core part on another request (a key fetch) or on a HELLO:
	 * refused; the node must not act on it. */
	h.headers =
		"Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n";
	CV_CHECK_INT(cv_kms_client_get_room_key(a, R1, &k), -EINVAL);
	CV_CHECK_STR(h.status, "bad_request");
	CV_CHECK_INT(cv_kms_client_connect(a), -EINVAL);
	CV_CHECK_STR(h.status, "bad_request");
	/* Without the headers: no Conclave-Status. */
	h.headers = NULL;
	CV_CHECK_INT(cv_kms_client_connect(a), 0);
	CV_CHECK_STR(h.status, "");
	/* The matching remove: carried out. */
	h.headers =
		"Conclave-Room: " R1 "\r\nConclave-Actor: alice-1\r\n"
		"Conclave-Op: remove_member\r\nConclave-Member: carol-4\r\n";
	CV_CHECK_INT(cv_kms_client_remove_member(a, R1, "carol-4", NULL), 0);
	CV_CHECK_STR(h.status, "ok");
	CV_CHECK_INT(cv_kms_client_get_room_key(carol, R1, &k), -EACCES);
	/* Header values a relay could not have sent are refused by the
	 * client library before any I/O. */
	h.headers = "Conclave-Room: x\r\n\r\nInjected: 1\r\n";
	CV_CHECK_INT(cv_kms_client_add_member(a, R1, "carol-4", NULL), -EINVAL);
	cv_kms_room_key_wipe(&k);
	cv_kms_client_destroy(a);
	cv_kms_client_destroy(carol);
}

/* A stand-in for the node relay: records each POST's head and forwards
 * the body to the KMS as is. */
struct capture {
	int fd;
	uint16_t port;
	int n;
	char heads[8][8192];
	pthread_t thread;
};

static void *capture_thread(void *arg)
{
	struct capture *c = arg;
	static uint8_t buf[16384], resp[CV_KMS_MSG_MAX_BYTES];
	for (;;) {
		int fd = accept(c->fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		size_t got = 0, hl = 0, clen = 0;
		while (got < sizeof(buf)) {
			ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
			char *e = memmem(buf, got, "\r\n\r\n", 4);
			if (e && !hl) {
				hl = (size_t)(e - (char *)buf) + 4;
				char *cl = strcasestr((char *)buf,
						      "content-length:");
				clen = cl ? (size_t)atol(cl + 15) : 0;
			}
			if (hl && got >= hl + clen)
				break;
		}
		if (c->n < 8 && hl) {
			memcpy(c->heads[c->n], buf, hl);
			c->heads[c->n][hl] = '\0';
			c->n++;
		}
		size_t rl = 0;
		if (hl &&
		    cv_kms_client_http("127.0.0.1", chan_port, 5000, buf + hl,
				       clen, resp, sizeof(resp), &rl) == 0) {
			char head[200];
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.1 200 OK\r\nContent-Length: "
					 "%zu\r\nConnection: close\r\n\r\n",
					 rl);
			send(fd, head, (size_t)n, MSG_NOSIGNAL);
			send(fd, resp, rl, MSG_NOSIGNAL);
		}
		close(fd);
	}
}

static void test_client_core_token(void)
{
	struct capture c = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	CV_CHECK(c.fd >= 0 && bind(c.fd, (struct sockaddr *)&sa, sl) == 0 &&
		 listen(c.fd, 4) == 0 &&
		 getsockname(c.fd, (struct sockaddr *)&sa, &sl) == 0);
	c.port = ntohs(sa.sin_port);
	CV_CHECK_INT(pthread_create(&c.thread, NULL, capture_thread, &c), 0);
	const char *jwt = "eyJub2RlIjoxfQ.eyJzdWIiOiJhbGljZS0xIn0.c2ln";
	struct cv_kms_client *a = client_for("alice-1", NULL, jwt, c.port);
	CV_CHECK_INT(cv_kms_client_add_member(a, R1, "erin-6", NULL), 0);
	CV_CHECK_INT(cv_kms_client_remove_member(a, R1, "erin-6", NULL), 0);
	struct cv_kms_room_key k = {0};
	CV_CHECK_INT(cv_kms_client_get_room_key(a, R1, &k), 0);
	cv_kms_room_key_wipe(&k);
	cv_kms_client_destroy(a);
	shutdown(c.fd, SHUT_RDWR);
	close(c.fd);
	pthread_join(c.thread, NULL);
	/* hello, add, remove, get key */
	CV_CHECK_INT(c.n, 4);
	if (c.n != 4)
		return;
	CV_CHECK(!strcasestr(c.heads[0], "Conclave-"));
	CV_CHECK(strstr(c.heads[1], "\r\nConclave-Core: "
				    "eyJub2RlIjoxfQ.eyJzdWIiOiJhbGljZS0xIn0."
				    "c2ln\r\n") != NULL);
	CV_CHECK(strstr(c.heads[1], "\r\nConclave-Op: add_member\r\n"));
	CV_CHECK(strstr(c.heads[1], "\r\nConclave-Member: erin-6\r\n"));
	CV_CHECK(strstr(c.heads[2], "\r\nConclave-Core: eyJ"));
	CV_CHECK(strstr(c.heads[2], "\r\nConclave-Op: remove_member\r\n"));
	CV_CHECK(strstr(c.heads[2], "\r\nConclave-Member: erin-6\r\n"));
	CV_CHECK(!strcasestr(c.heads[3], "Conclave-"));
	/* Neither the client nor the KMS part names a room in clear. */
	for (int i = 0; i < 4; i++)
		CV_CHECK(!strstr(c.heads[i], "rooms/perc"));
}

static void test_log_clean(void)
{
	FILE *f = fopen(path_log, "r");
	CV_CHECK(f != NULL);
	if (!f)
		return;
	static char buf[1 << 21];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	CV_CHECK(strstr(buf, "alice-1") == NULL);
	CV_CHECK(strstr(buf, "perc-kd") == NULL);
	CV_CHECK(strstr(buf, SECRET) == NULL);
	CV_CHECK(strstr(buf, "eyJ") == NULL);
	/* Endpoint fingerprints are not logged. */
	CV_CHECK(strstr(buf, cv_dtls_cert_fingerprint(id_alice.cert)) == NULL);
	CV_CHECK(strstr(buf, "kd: media keys sent") != NULL);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CONCLAVE_KMS\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	cv_log_set_level_all(CV_LOG_ERROR);
	cv_secret_set(&secret, (const uint8_t *)SECRET, strlen(SECRET));
	if (!mkdtemp(dir) || start_kms(argv[1])) {
		fprintf(stderr, "conclave-kms did not start\n");
		if (kms_pid > 0)
			kill(kms_pid, SIGKILL);
		return 1;
	}
	test_setup();
	test_refusals();
	test_media_keys();
	test_core_headers();
	test_client_core_token();
	for (size_t i = 0; i < n_pairs; i++) {
		cv_dtls_destroy(pairs[i]->ep);
		cv_dtls_destroy(pairs[i]->node);
		free(pairs[i]);
	}
	cv_tunnel_link_destroy(link_);
	cv_loop_destroy(loop);
	cv_kms_client_destroy(alice);
	cv_kms_client_destroy(bob);
	cv_kms_client_destroy(mallory);
	stop_kms();
	test_log_clean();
	struct ident *all[] = {&id_alice, &id_alice256, &id_bob, &id_mallory,
			       &id_other};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		ident_free(all[i]);
	cv_secret_wipe(&secret);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (!getenv("KD_DTLS_KEEP") && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return cv_test_done("kd_dtls");
}
