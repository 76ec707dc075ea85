/* Client message parsing and node message building (docs/protocol.md). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conclave/err.h"
#include "conclave/msg.h"
#include "cv_test.h"

static int parse(const char *s, struct cv_msg *m, const char **code)
{
	*code = NULL;
	return cv_msg_parse(s, strlen(s), m, code);
}

static void test_valid(void)
{
	struct cv_msg m;
	const char *code;

	CV_CHECK_INT(parse("{\"type\":\"join\",\"id\":7,\"token\":\"t.k.n\","
			   "\"room\":\"r-1\",\"name\":\"Al\\u00e9\"}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.type, CV_MSG_JOIN);
	CV_CHECK_INT(m.id, 7);
	CV_CHECK_STR(m.join.token, "t.k.n");
	CV_CHECK_STR(m.join.room, "r-1");
	CV_CHECK_STR(m.join.name, "Al\xc3\xa9");
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"join\",\"token\":\"x\",\"room\":\"r\","
			   "\"extra\":[1,{}]}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.id, -1);
	CV_CHECK(m.join.name == NULL);
	cv_msg_fini(&m);

	CV_CHECK_INT(
		parse("{\"type\":\"publish\",\"id\":2147483647,\"sdp\":"
		      "\"v=0\\r\\n\",\"tracks\":[{\"mid\":\"0\",\"source\":"
		      "\"microphone\"},{\"mid\":\"1\",\"source\":"
		      "\"camera\"},{\"mid\":\"a_2\",\"source\":\"screen\"}]}",
		      &m, &code),
		0);
	CV_CHECK_INT(m.type, CV_MSG_PUBLISH);
	CV_CHECK_INT(m.id, 2147483647);
	CV_CHECK_STR(m.publish.sdp, "v=0\r\n");
	CV_CHECK_INT(m.publish.n_tracks, 3);
	CV_CHECK_STR(m.publish.tracks[0].mid, "0");
	CV_CHECK_INT(m.publish.tracks[0].source, CV_SOURCE_MICROPHONE);
	CV_CHECK_INT(m.publish.tracks[1].source, CV_SOURCE_CAMERA);
	CV_CHECK_STR(m.publish.tracks[2].mid, "a_2");
	CV_CHECK_INT(m.publish.tracks[2].source, CV_SOURCE_SCREEN);
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"subscribe_answer\",\"id\":0,\"sdp\":"
			   "\"v=0\"}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.type, CV_MSG_SUBSCRIBE_ANSWER);
	CV_CHECK_INT(m.id, 0);
	CV_CHECK_STR(m.subscribe_answer.sdp, "v=0");
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"candidate\",\"pc\":\"subscribe\","
			   "\"candidate\":\"candidate:1 1 udp 1 1.2.3.4 5 typ "
			   "host\",\"sdpMid\":\"0\"}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.type, CV_MSG_CANDIDATE);
	CV_CHECK_INT(m.candidate.pc, CV_PC_SUBSCRIBE);
	CV_CHECK_STR(m.candidate.sdp_mid, "0");
	cv_msg_fini(&m);
	CV_CHECK_INT(parse("{\"type\":\"candidate\",\"pc\":\"publish\","
			   "\"candidate\":\"\",\"sdpMid\":\"1\"}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.candidate.pc, CV_PC_PUBLISH);
	CV_CHECK_STR(m.candidate.candidate, "");
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"unpublish\",\"mid\":\"1\"}", &m, &code),
		     0);
	CV_CHECK_INT(m.type, CV_MSG_UNPUBLISH);
	CV_CHECK_STR(m.unpublish.mid, "1");
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"mute\",\"mid\":\"1\",\"muted\":true}",
			   &m, &code),
		     0);
	CV_CHECK_INT(m.type, CV_MSG_MUTE);
	CV_CHECK(m.mute.muted);
	cv_msg_fini(&m);
	CV_CHECK_INT(parse("{\"muted\":false,\"mid\":\"x\",\"type\":\"mute\"}",
			   &m, &code),
		     0);
	CV_CHECK(!m.mute.muted);
	cv_msg_fini(&m);

	CV_CHECK_INT(parse("{\"type\":\"leave\"}", &m, &code), 0);
	CV_CHECK_INT(m.type, CV_MSG_LEAVE);
	cv_msg_fini(&m);
	CV_CHECK_INT(parse(" {\"type\":\"ping\",\"id\":3} ", &m, &code), 0);
	CV_CHECK_INT(m.type, CV_MSG_PING);
	CV_CHECK_INT(m.id, 3);
	cv_msg_fini(&m);
	cv_msg_fini(&m); /* idempotent */
	cv_msg_fini(NULL);

	/* 16 tracks is the maximum. */
	char big[2048] = "{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[";
	for (int i = 0; i < CV_MSG_MAX_TRACKS; i++)
		sprintf(big + strlen(big),
			"%s{\"mid\":\"%d\",\"source\":\"camera\"}",
			i ? "," : "", i);
	strcat(big, "]}");
	CV_CHECK_INT(parse(big, &m, &code), 0);
	CV_CHECK_INT(m.publish.n_tracks, CV_MSG_MAX_TRACKS);
	CV_CHECK_STR(m.publish.tracks[15].mid, "15");
	cv_msg_fini(&m);
}

struct bad_case {
	const char *json, *code;
	int64_t id;
};

static void test_invalid(void)
{
	static const struct bad_case bad[] = {
		{"", "bad_message", -1},
		{"{", "bad_message", -1},
		{"[]", "bad_message", -1},
		{"\"join\"", "bad_message", -1},
		{"null", "bad_message", -1},
		{"{}", "bad_message", -1},
		{"{\"type\":1}", "bad_message", -1},
		{"{\"type\":\"shout\",\"id\":4}", "bad_message", 4},
		{"{\"type\":\"Ping\"}", "bad_message", -1},
		{"{\"type\":\"ping\",\"id\":-1}", "bad_message", -1},
		{"{\"type\":\"ping\",\"id\":2147483648}", "bad_message", -1},
		{"{\"type\":\"ping\",\"id\":1.5}", "bad_message", -1},
		{"{\"type\":\"ping\",\"id\":\"1\"}", "bad_message", -1},
		{"{\"type\":\"ping\",\"type\":\"leave\"}", "bad_message", -1},
		{"{\"type\":\"ping\"} x", "bad_message", -1},
		/* join */
		{"{\"type\":\"join\",\"id\":9,\"room\":\"r\"}", "token_missing",
		 9},
		{"{\"type\":\"join\",\"token\":\"\",\"room\":\"r\"}",
		 "token_missing", -1},
		{"{\"type\":\"join\",\"token\":5,\"room\":\"r\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\"}", "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"a b\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"*\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":"
		 "\"aaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"r\",\"name\":"
		 "1}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"r\",\"name\":"
		 "\"a\\nb\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\",\"room\":\"r\",\"name\":"
		 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aa"
		 "aaaa\"}",
		 "bad_message", -1},
		{"{\"type\":\"join\",\"token\":\"t\\u0000x\",\"room\":\"r\"}",
		 "bad_message", -1},
		/* publish */
		{"{\"type\":\"publish\",\"tracks\":[{\"mid\":\"0\",\"source\":"
		 "\"camera\"}]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"\",\"tracks\":[{\"mid\":"
		 "\"0\","
		 "\"source\":\"camera\"}]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\"}", "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":{}}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[1]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[{\"mid\":"
		 "\"0\","
		 "\"source\":\"webcam\"}]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[{\"mid\":"
		 "\"0\"}"
		 "]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[{\"mid\":\"0 "
		 "1\","
		 "\"source\":\"camera\"}]}",
		 "bad_message", -1},
		{"{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[{\"mid\":"
		 "\"0\","
		 "\"source\":\"camera\"},{\"mid\":\"0\",\"source\":\"screen\"}]"
		 "}",
		 "bad_message", -1},
		/* subscribe_answer */
		{"{\"type\":\"subscribe_answer\"}", "bad_message", -1},
		{"{\"type\":\"subscribe_answer\",\"sdp\":null}", "bad_message",
		 -1},
		/* candidate */
		{"{\"type\":\"candidate\",\"pc\":\"both\",\"candidate\":\"\","
		 "\"sdpMid\":\"0\"}",
		 "bad_message", -1},
		{"{\"type\":\"candidate\",\"candidate\":\"\",\"sdpMid\":\"0\"}",
		 "bad_message", -1},
		{"{\"type\":\"candidate\",\"pc\":\"publish\",\"sdpMid\":\"0\"}",
		 "bad_message", -1},
		{"{\"type\":\"candidate\",\"pc\":\"publish\",\"candidate\":"
		 "\"\"}",
		 "bad_message", -1},
		{"{\"type\":\"candidate\",\"pc\":\"publish\",\"candidate\":"
		 "\"\","
		 "\"sdpMid\":\"\"}",
		 "bad_message", -1},
		/* unpublish, mute */
		{"{\"type\":\"unpublish\"}", "bad_message", -1},
		{"{\"type\":\"unpublish\",\"mid\":7}", "bad_message", -1},
		{"{\"type\":\"mute\",\"mid\":\"1\"}", "bad_message", -1},
		{"{\"type\":\"mute\",\"mid\":\"1\",\"muted\":1}", "bad_message",
		 -1},
		{"{\"type\":\"mute\",\"muted\":true}", "bad_message", -1},
		{"{\"type\":\"mute\",\"mid\":"
		 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
		 "\"muted\":true}",
		 "bad_message", -1},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cv_msg m;
		const char *code = NULL;
		int rc = parse(bad[i].json, &m, &code);
		if (rc == 0 || !code || strcmp(code, bad[i].code) ||
		    m.id != bad[i].id)
			fprintf(stderr, "case %zu: %s\n", i, bad[i].json);
		CV_CHECK_INT(rc, CV_EPARSE);
		CV_CHECK_STR(code, bad[i].code);
		CV_CHECK_INT(m.id, bad[i].id);
		CV_CHECK(m.arena == NULL);
		cv_msg_fini(&m);
	}

	/* Too many tracks (17). */
	char big[2048] = "{\"type\":\"publish\",\"sdp\":\"s\",\"tracks\":[";
	for (int i = 0; i <= CV_MSG_MAX_TRACKS; i++)
		sprintf(big + strlen(big),
			"%s{\"mid\":\"%d\",\"source\":\"camera\"}",
			i ? "," : "", i);
	strcat(big, "]}");
	struct cv_msg m;
	const char *code;
	CV_CHECK_INT(parse(big, &m, &code), CV_EPARSE);

	/* A token over the size limit is token_invalid. */
	char *tok = malloc(6000);
	strcpy(tok, "{\"type\":\"join\",\"room\":\"r\",\"token\":\"");
	size_t l = strlen(tok);
	memset(tok + l, 'a', 4200);
	strcpy(tok + l + 4200, "\"}");
	CV_CHECK_INT(parse(tok, &m, &code), CV_EPARSE);
	CV_CHECK_STR(code, "token_invalid");
	free(tok);

	/* Invalid UTF-8 is refused. */
	CV_CHECK_INT(
		parse("{\"type\":\"unpublish\",\"mid\":\"\xff\"}", &m, &code),
		CV_EPARSE);
	/* Embedded NUL in the frame. */
	CV_CHECK_INT(cv_msg_parse("{\"type\":\"ping\"}\0", 16, &m, &code),
		     CV_EPARSE);
}

/* Every truncation of a valid message fails cleanly. */
static void test_truncation(void)
{
	const char *s = "{\"type\":\"publish\",\"id\":5,\"sdp\":\"v=0\","
			"\"tracks\":[{\"mid\":\"0\",\"source\":\"camera\"}]}";
	size_t len = strlen(s);
	for (size_t l = 0; l < len; l++) {
		char *cut = malloc(l ? l : 1);
		memcpy(cut, s, l);
		struct cv_msg m;
		const char *code = NULL;
		CV_CHECK_INT(cv_msg_parse(cut, l, &m, &code), CV_EPARSE);
		CV_CHECK_STR(code, "bad_message");
		free(cut);
	}
}

static json_t *load(char *s)
{
	CV_CHECK(s != NULL);
	json_t *j = s ? json_loads(s, 0, NULL) : NULL;
	CV_CHECK(j != NULL);
	free(s);
	return j;
}

static void test_builders(void)
{
	char *s = cv_msg_error(4, "bad_message", "nope");
	CV_CHECK_STR(s, "{\"type\":\"error\",\"id\":4,\"code\":\"bad_message\","
			"\"message\":\"nope\"}");
	free(s);
	s = cv_msg_error(-1, "too_big", NULL);
	CV_CHECK_STR(s, "{\"type\":\"error\",\"code\":\"too_big\",\"message\":"
			"\"\"}");
	free(s);
	s = cv_msg_ok(1);
	CV_CHECK_STR(s, "{\"type\":\"ok\",\"id\":1}");
	free(s);
	s = cv_msg_pong(-1);
	CV_CHECK_STR(s, "{\"type\":\"pong\"}");
	free(s);

	struct cv_msg_participant parts[] = {{"p1", "Alice"}, {"p2", NULL}};
	struct cv_msg_track_info tracks[] = {
		{"t1", "p1", CV_KIND_AUDIO, CV_SOURCE_MICROPHONE, false},
		{"t2", "p2", CV_KIND_VIDEO, CV_SOURCE_SCREEN, true},
	};
	json_t *j = load(cv_msg_joined(2, "p3", "room", parts, 2, tracks, 2));
	CV_CHECK_STR(json_string_value(json_object_get(j, "type")), "joined");
	CV_CHECK_INT(json_integer_value(json_object_get(j, "id")), 2);
	CV_CHECK_STR(json_string_value(json_object_get(j, "participant")),
		     "p3");
	json_t *pa = json_object_get(j, "participants");
	CV_CHECK_INT(json_array_size(pa), 2);
	CV_CHECK_STR(json_string_value(
			     json_object_get(json_array_get(pa, 0), "name")),
		     "Alice");
	CV_CHECK(json_object_get(json_array_get(pa, 1), "name") == NULL);
	json_t *t = json_array_get(json_object_get(j, "tracks"), 1);
	CV_CHECK_STR(json_string_value(json_object_get(t, "kind")), "video");
	CV_CHECK_STR(json_string_value(json_object_get(t, "source")), "screen");
	CV_CHECK(json_is_true(json_object_get(t, "muted")));
	json_decref(j);

	s = cv_msg_joined(-1, "p", "r", NULL, 0, NULL, 0);
	CV_CHECK_STR(s, "{\"type\":\"joined\",\"participant\":\"p\",\"room\":"
			"\"r\",\"participants\":[],\"tracks\":[]}");
	free(s);

	s = cv_msg_publish_answer(3, "v=0\r\n");
	CV_CHECK_STR(s, "{\"type\":\"publish_answer\",\"id\":3,\"sdp\":"
			"\"v=0\\r\\n\"}");
	free(s);
	struct cv_msg_mid_track map[] = {{"0", "t1"}, {"1", "t2"}};
	s = cv_msg_subscribe_offer("v=0", map, 2);
	CV_CHECK_STR(s, "{\"type\":\"subscribe_offer\",\"sdp\":\"v=0\","
			"\"tracks\":[{\"mid\":\"0\",\"track\":\"t1\"},{\"mid\":"
			"\"1\",\"track\":\"t2\"}]}");
	free(s);
	s = cv_msg_participant_joined(&parts[0]);
	CV_CHECK_STR(s, "{\"type\":\"participant_joined\",\"participant\":{"
			"\"id\":\"p1\",\"name\":\"Alice\"}}");
	free(s);
	s = cv_msg_participant_left("p1");
	CV_CHECK_STR(s, "{\"type\":\"participant_left\",\"participant\":"
			"\"p1\"}");
	free(s);
	s = cv_msg_track_added(&tracks[0]);
	CV_CHECK_STR(s, "{\"type\":\"track_added\",\"track\":{\"id\":\"t1\","
			"\"participant\":\"p1\",\"kind\":\"audio\",\"source\":"
			"\"microphone\",\"muted\":false}}");
	free(s);
	s = cv_msg_track_removed("t1");
	CV_CHECK_STR(s, "{\"type\":\"track_removed\",\"track\":\"t1\"}");
	free(s);
	s = cv_msg_track_muted("t2", true);
	CV_CHECK_STR(s, "{\"type\":\"track_muted\",\"track\":\"t2\",\"muted\":"
			"true}");
	free(s);
	s = cv_msg_draining(30000);
	CV_CHECK_STR(s, "{\"type\":\"draining\",\"deadline_ms\":30000}");
	free(s);
	s = cv_msg_removed();
	CV_CHECK_STR(s, "{\"type\":\"removed\"}");
	free(s);
	s = cv_msg_rekey();
	CV_CHECK_STR(s, "{\"type\":\"rekey\"}");
	free(s);
	struct cv_msg_perc_assoc pa2 = {"00112233445566778899aabbccddeeff",
					"ffeeddccbbaa99887766554433221100"};
	s = cv_msg_joined_perc(4, "p", "r", NULL, 0, NULL, 0, &pa2);
	CV_CHECK_STR(s, "{\"type\":\"joined\",\"id\":4,\"participant\":\"p\","
			"\"room\":\"r\",\"participants\":[],\"tracks\":[],"
			"\"perc\":{\"publish_assoc\":"
			"\"00112233445566778899aabbccddeeff\",\"subscribe_"
			"assoc\":\"ffeeddccbbaa99887766554433221100\"}}");
	free(s);
	CV_CHECK(cv_msg_joined_perc(4, "p", "r", NULL, 0, NULL, 0, NULL) ==
		 NULL);
	pa2.subscribe_assoc = NULL;
	CV_CHECK(cv_msg_joined_perc(4, "p", "r", NULL, 0, NULL, 0, &pa2) ==
		 NULL);

	/* Invalid UTF-8 or NULL strings give NULL, no leak. */
	CV_CHECK(cv_msg_participant_left("\xff") == NULL);
	CV_CHECK(cv_msg_error(1, NULL, "x") == NULL);
	struct cv_msg_participant badp[] = {{"p", "\xc3"}};
	CV_CHECK(cv_msg_joined(1, "p", "r", badp, 1, NULL, 0) == NULL);
	CV_CHECK(cv_msg_subscribe_offer(
			 "s", (struct cv_msg_mid_track[]){{"0", NULL}}, 1) ==
		 NULL);
}

int main(void)
{
	test_valid();
	test_invalid();
	test_truncation();
	test_builders();
	return cv_test_done("test_msg");
}
