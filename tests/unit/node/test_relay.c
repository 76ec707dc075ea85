/*
 * The KMS channel relay's pure parts (src/node/relay.c): the two-part
 * headers a client sends, the request head the node writes, and its
 * parser of the KMS's answer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/token.h"
#include "cv_test.h"
#include "src/node/relay.h"

#define NOW 1700000000

static const uint8_t key[] = "node-token-secret-for-relay-tests";
#define KEY_LEN (sizeof(key) - 1)

static void token(char *buf, size_t cap, const char *sub, const char *room,
		  enum cv_token_mode mode, int64_t exp)
{
	struct cv_token_claims c = {
		.rights = CV_RIGHT_PUBLISH | CV_RIGHT_SUBSCRIBE,
		.exp_s = exp,
		.mode = mode,
	};
	snprintf(c.sub, sizeof(c.sub), "%s", sub);
	snprintf(c.room, sizeof(c.room), "%s", room);
	CV_CHECK_INT(cv_token_issue_claims(key, KEY_LEN, &c, buf, cap), 0);
}

static void test_check_core(void)
{
	char perc[1024], fwd[1024], old[1024], other[1024];
	token(perc, sizeof(perc), "alice", "room-1", CV_TOKEN_MODE_PERC,
	      NOW + 60);
	token(fwd, sizeof(fwd), "alice", "room-1", CV_TOKEN_MODE_FORWARD,
	      NOW + 60);
	token(old, sizeof(old), "alice", "room-1", CV_TOKEN_MODE_PERC, NOW);
	struct cv_relay_core c;

	/* No two-part headers: a plain channel message. */
	CV_CHECK_INT(
		cv_relay_check_core(key, KEY_LEN, NULL, NULL, NULL, NOW, &c),
		0);
	CV_CHECK_INT(c.op, CV_RELAY_OP_NONE);

	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, perc, "remove_member",
					 "bob-2", NOW, &c),
		     0);
	CV_CHECK_INT(c.op, CV_RELAY_OP_REMOVE);
	CV_CHECK_STR(c.room, "room-1");
	CV_CHECK_STR(c.actor, "alice");
	CV_CHECK_STR(c.member, "bob-2");
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, perc, "add_member",
					 "bob-2", NOW, &c),
		     0);
	CV_CHECK_INT(c.op, CV_RELAY_OP_ADD);

	/* Missing or malformed headers: 400, nothing filled. */
	const char *bad[][3] = {
		{perc, NULL, "bob"},
		{perc, "remove_member", NULL},
		{NULL, "remove_member", "bob"},
		{perc, "delete_member", "bob"},
		{perc, "REMOVE_MEMBER", "bob"},
		{perc, "remove_member", ""},
		{perc, "remove_member", "bob smith"},
		{perc, "remove_member", "bob\r\nConclave-Room: x"},
		{perc, "remove_member", "b\x7f"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, bad[i][0],
						 bad[i][1], bad[i][2], NOW, &c),
			     400);
		CV_CHECK_INT(c.op, CV_RELAY_OP_NONE);
	}
	char longm[CV_TOKEN_SUB_MAX + 2];
	memset(longm, 'm', sizeof(longm) - 1);
	longm[sizeof(longm) - 1] = '\0';
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, perc, "add_member",
					 longm, NOW, &c),
		     400);

	/* A token the node does not accept for a perc change: 403. */
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, fwd, "remove_member",
					 "bob", NOW, &c),
		     403);
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, old, "remove_member",
					 "bob", NOW, &c),
		     403);
	CV_CHECK_INT(c.room[0], 0);
	CV_CHECK_INT(cv_relay_check_core((const uint8_t *)"another-key", 11,
					 perc, "remove_member", "bob", NOW, &c),
		     403);
	snprintf(other, sizeof(other), "%s", perc);
	other[strlen(other) - 2] ^= 1; /* signature */
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, other, "remove_member",
					 "bob", NOW, &c),
		     403);
	CV_CHECK_INT(cv_relay_check_core(key, KEY_LEN, "not-a-jwt",
					 "remove_member", "bob", NOW, &c),
		     403);
}

static void test_request_head(void)
{
	char head[CV_RELAY_HEAD_MAX];
	struct cv_relay_core c = {.op = CV_RELAY_OP_NONE};
	int n = cv_relay_request_head(head, sizeof(head), "127.0.0.1", 77, &c);
	CV_CHECK(n > 0);
	CV_CHECK_STR(head, "POST /v1/channel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			   "Content-Type: application/octet-stream\r\n"
			   "Content-Length: 77\r\nConnection: close\r\n\r\n");
	CV_CHECK_INT(n, strlen(head));
	CV_CHECK(cv_relay_request_head(head, sizeof(head), "::1", 1, NULL) > 0);
	CV_CHECK(!strstr(head, "Conclave-"));

	c.op = CV_RELAY_OP_REMOVE;
	snprintf(c.room, sizeof(c.room), "room-1");
	snprintf(c.actor, sizeof(c.actor), "alice");
	snprintf(c.member, sizeof(c.member), "bob-2");
	n = cv_relay_request_head(head, sizeof(head), "127.0.0.1", 5, &c);
	CV_CHECK(n > 0);
	CV_CHECK(strstr(head, "\r\nConclave-Room: room-1\r\n"
			      "Conclave-Actor: alice\r\n"
			      "Conclave-Op: remove_member\r\n"
			      "Conclave-Member: bob-2\r\n") != NULL);
	CV_CHECK(strstr(head, "Content-Length: 5\r\n") != NULL);
	/* The client's own headers never pass: only what the node wrote. */
	CV_CHECK(!strstr(head, "Conclave-Core"));
	CV_CHECK_INT(cv_relay_request_head(head, 40, "127.0.0.1", 5, &c),
		     -ENOSPC);
}

static int parse(const char *text, struct cv_relay_answer *a)
{
	return cv_relay_parse_answer((const uint8_t *)text, strlen(text), a);
}

static void test_parse_answer(void)
{
	struct cv_relay_answer a;
	CV_CHECK_INT(parse("HTTP/1.1 200 OK\r\nContent-Type: application/"
			   "octet-stream\r\nContent-Length: 3\r\n"
			   "Conclave-Status: ok\r\nConnection: close\r\n\r\n"
			   "abc",
			   &a),
		     0);
	CV_CHECK_INT(a.status, 200);
	CV_CHECK_INT(a.len, 3);
	CV_CHECK_MEM(a.body, "abc", 3);
	CV_CHECK_STR(a.kms_status, "ok");
	CV_CHECK_INT(parse("HTTP/1.0 400 Bad Request\r\ncontent-length:0\r\n"
			   "\r\n",
			   &a),
		     0);
	CV_CHECK_INT(a.status, 400);
	CV_CHECK_INT(a.len, 0);
	CV_CHECK_STR(a.kms_status, "");
	CV_CHECK_INT(parse("HTTP/1.1 200 OK\r\nCONCLAVE-STATUS:  not_member "
			   "\r\nContent-Length: 1\r\n\r\nx",
			   &a),
		     0);
	CV_CHECK_STR(a.kms_status, "not_member");

	static const char *bad[] = {
		"",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcd",
		"HTTP/1.1 200 OK\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
		"\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		"Content-Length: 0\r\n\r\n",
		"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 999 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConclave-Status: "
		"OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConclave-Status: "
		"\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConclave-Status: ok"
		"\r\nConclave-Status: ok\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConclave-Status: "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
		"garbage\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &a);
		if (rc != -EPROTO)
			fprintf(stderr, "answer case %zu: %d\n", i, rc);
		CV_CHECK_INT(rc, -EPROTO);
	}
	/* Every truncation of a good answer is refused. */
	const char *good = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
			   "Conclave-Status: ok\r\n\r\nbody";
	for (size_t l = 0; l < strlen(good); l++)
		CV_CHECK_INT(
			cv_relay_parse_answer((const uint8_t *)good, l, &a),
			-EPROTO);
	CV_CHECK_STR(cv_relay_op_name(CV_RELAY_OP_ADD), "add_member");
	CV_CHECK_STR(cv_relay_op_name(CV_RELAY_OP_REMOVE), "remove_member");
	CV_CHECK(cv_relay_op_name(CV_RELAY_OP_NONE) == NULL);
}

int main(void)
{
	test_check_core();
	test_request_head();
	test_parse_answer();
	return cv_test_done("test_relay");
}
