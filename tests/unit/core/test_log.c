/* Logging: levels, line shapes, context, rate limit, obfuscation, files. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "conclave/config.h"
#include "conclave/log.h"
#include "cv_test.h"

/* The sink keeps the last line and counts lines. */
static char last[CV_LOG_LINE_MAX + 1];
static size_t last_len;
static int nlines;

static void capture(void *arg, enum cv_log_level level,
		    enum cv_log_subsys subsys, const char *line, size_t len)
{
	(void)level;
	(void)subsys;
	CV_CHECK(arg == &nlines);
	CV_CHECK(len <= CV_LOG_LINE_MAX);
	CV_CHECK(line[len] == '\0');
	memcpy(last, line, len + 1);
	last_len = len;
	nlines++;
}

static void reset_capture(void)
{
	last[0] = '\0';
	last_len = 0;
	nlines = 0;
}

static void test_names(void)
{
	enum cv_log_level lv;
	enum cv_log_subsys ss;

	CV_CHECK_STR(cv_log_level_name(CV_LOG_WARN), "warn");
	CV_CHECK_STR(cv_log_level_name((enum cv_log_level)9), "?");
	CV_CHECK_STR(cv_log_subsys_name(CV_LOG_ADMIN), "admin");
	CV_CHECK_STR(cv_log_subsys_name(CV_LOG_SWITCH), "switch");
	CV_CHECK_INT(cv_log_level_parse("trace", 5, &lv), 0);
	CV_CHECK_INT(lv, CV_LOG_TRACE);
	CV_CHECK_INT(cv_log_level_parse("tracex", 5, &lv), 0);
	CV_CHECK_INT(cv_log_level_parse("trac", 4, &lv), -EINVAL);
	CV_CHECK_INT(cv_log_subsys_parse("dtls", 4, &ss), 0);
	CV_CHECK_INT(ss, CV_LOG_DTLS);
	CV_CHECK_INT(cv_log_subsys_parse("DTLS", 4, &ss), -EINVAL);
}

static void test_levels(void)
{
	enum cv_log_level lv[CV_LOG_SUBSYS_COUNT];

	for (int i = 0; i < CV_LOG_SUBSYS_COUNT; i++)
		lv[i] = CV_LOG_INFO;
	CV_CHECK_INT(cv_log_levels_parse("", lv), 0);
	CV_CHECK_INT(cv_log_levels_parse("ice=debug, dtls = trace", lv), 0);
	CV_CHECK_INT(lv[CV_LOG_ICE], CV_LOG_DEBUG);
	CV_CHECK_INT(lv[CV_LOG_DTLS], CV_LOG_TRACE);
	CV_CHECK_INT(lv[CV_LOG_SRTP], CV_LOG_INFO);
	static const char *const bad[] = {
		"ice",	      "ice=",
		"=debug",     "ice=loud",
		"foo=debug",  "ice=debug,",
		",ice=debug", "ice=debug,,dtls=info",
		"ice:debug",  "srtp=info,x=y",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CV_CHECK_INT(cv_log_levels_parse(bad[i], lv), -EINVAL);
		/* untouched on error */
		CV_CHECK_INT(lv[CV_LOG_SRTP], CV_LOG_INFO);
	}

	cv_log_set_level_all(CV_LOG_WARN);
	CV_CHECK_INT(cv_log_set_levels("ice=trace"), 0);
	CV_CHECK(cv_log_enabled(CV_LOG_TRACE, CV_LOG_ICE));
	CV_CHECK(cv_log_enabled(CV_LOG_WARN, CV_LOG_WS));
	CV_CHECK(!cv_log_enabled(CV_LOG_INFO, CV_LOG_WS));
	CV_CHECK(!cv_log_enabled(CV_LOG_ERROR, (enum cv_log_subsys)99));
	CV_CHECK_INT(cv_log_set_levels("ice=bogus"), -EINVAL);
	CV_CHECK_INT(cv_log_get_level(CV_LOG_ICE), CV_LOG_TRACE);
	cv_log_set_level_all(CV_LOG_INFO);
}

static int evaluated;
static int side_effect(void)
{
	return ++evaluated;
}

static void test_text_line(void)
{
	reset_capture();
	cv_log(CV_LOG_INFO, CV_LOG_ICE, "binding failed: %s (port=%d)", "nope",
	       40000);
	CV_CHECK_INT(nlines, 1);
	/* 2026-11-22T03:27:20.123Z info ice: ... */
	CV_CHECK_INT(last_len, 24 + strlen(" info ice: binding failed: nope "
					   "(port=40000)\n"));
	CV_CHECK(last[4] == '-' && last[10] == 'T' && last[19] == '.' &&
		 last[23] == 'Z');
	CV_CHECK_STR(last + 24,
		     " info ice: binding failed: nope (port=40000)\n");

	/* Disabled: nothing written, arguments not evaluated. */
	cv_log(CV_LOG_DEBUG, CV_LOG_ICE, "x %d", side_effect());
	CV_CHECK_INT(nlines, 1);
	CV_CHECK_INT(evaluated, 0);

	/* A peer's newline cannot forge a second line. */
	cv_log(CV_LOG_WARN, CV_LOG_WS, "bad name: %s", "a\nb\x1b[1m");
	CV_CHECK_STR(last + 24, " warn ws: bad name: a?b?[1m\n");
}

static void test_context(void)
{
	reset_capture();
	cv_log_set_context(3, "1a2b3c4d", "9f8e7d6c");
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "unprotect failed");
	CV_CHECK_STR(last + 24, " error [w=3 room=1a2b3c4d p=9f8e7d6c] srtp: "
				"unprotect failed\n");
	cv_log_set_context(-1, "r", NULL);
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error [room=r] srtp: x\n");
	cv_log_set_context(0, NULL, NULL);
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error [w=0] srtp: x\n");
	/* cut to CV_LOG_CONTEXT_MAX */
	cv_log_set_context(-1, "0123456789012345678901234567890123456789",
			   NULL);
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error [room=01234567890123456789012345678901]"
				" srtp: x\n");
	cv_log_set_context(-1, NULL, "");
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error srtp: x\n");
	cv_log_set_context(-1, NULL, "p");
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error [p=p] srtp: x\n");
	cv_log_clear_context();
	cv_log(CV_LOG_ERROR, CV_LOG_SRTP, "x");
	CV_CHECK_STR(last + 24, " error srtp: x\n");
}

static void *log_other_thread(void *arg)
{
	(void)arg;
	cv_log(CV_LOG_INFO, CV_LOG_CORE, "from thread");
	return NULL;
}

static void test_context_thread_local(void)
{
	pthread_t t;

	cv_log_set_context(7, "room", "part");
	pthread_create(&t, NULL, log_other_thread, NULL);
	pthread_join(t, NULL);
	CV_CHECK_STR(last + 24, " info core: from thread\n");
	cv_log_clear_context();
}

static void test_json_line(void)
{
	reset_capture();
	cv_log_set_format(CV_LOG_FORMAT_JSON);
	cv_log_set_context(2, "ab\"c", NULL);
	cv_log(CV_LOG_WARN, CV_LOG_DTLS, "say \"%s\" \\ %s", "hi", "\n\xc3");
	CV_CHECK(strncmp(last, "{\"ts\":\"", 7) == 0);
	CV_CHECK(last[7 + 23] == 'Z');
	CV_CHECK_STR(last + 7 + 24,
		     "\",\"level\":\"warn\",\"subsys\":\"dtls\",\"worker\":2,"
		     "\"room\":\"ab\\\"c\",\"msg\":\"say \\\"hi\\\" \\\\ "
		     "\\u000a\\u00c3\"}\n");
	cv_log_clear_context();
	cv_log_set_format(CV_LOG_FORMAT_TEXT);
}

static void test_truncation(void)
{
	char *big = malloc(3 * CV_LOG_LINE_MAX);

	memset(big, 'x', 3 * CV_LOG_LINE_MAX - 1);
	big[3 * CV_LOG_LINE_MAX - 1] = '\0';
	reset_capture();
	cv_log(CV_LOG_INFO, CV_LOG_CORE, "%s", big);
	CV_CHECK(last_len <= CV_LOG_LINE_MAX && last_len > 4000);
	CV_CHECK(last[last_len - 1] == '\n');
	cv_log_set_format(CV_LOG_FORMAT_JSON);
	/* Escapes grow the text: 6 bytes per control byte. */
	memset(big, '\x01', 3 * CV_LOG_LINE_MAX - 1);
	cv_log(CV_LOG_INFO, CV_LOG_CORE, "%s", big);
	CV_CHECK(last_len <= CV_LOG_LINE_MAX && last_len > 4000);
	CV_CHECK(strcmp(last + last_len - 3, "\"}\n") == 0);
	cv_log_set_format(CV_LOG_FORMAT_TEXT);
	free(big);
}

static void test_ratelimit(void)
{
	struct cv_log_ratelimit rl = {0};
	uint32_t sup = 99;
	int ok = 0;

	for (int i = 0; i < 8; i++)
		ok += cv_log_ratelimit_check(&rl, 3, 10000 + (uint64_t)i, &sup);
	CV_CHECK_INT(ok, 3);
	CV_CHECK_INT(sup, 0);
	CV_CHECK(!cv_log_ratelimit_check(&rl, 3, 10999, &sup));
	CV_CHECK_INT(sup, 0);
	/* New window: allowed again, reports the 6 dropped lines once. */
	CV_CHECK(cv_log_ratelimit_check(&rl, 3, 11000, &sup));
	CV_CHECK_INT(sup, 6);
	CV_CHECK(cv_log_ratelimit_check(&rl, 3, 11001, &sup));
	CV_CHECK_INT(sup, 0);
	CV_CHECK(cv_log_ratelimit_check(&rl, 3, 20000, &sup));
	CV_CHECK_INT(sup, 0);

	/* Through the macro: a burst of 50 gives at most the budget (or
	 * twice it if a window boundary falls inside the loop). */
	reset_capture();
	for (int i = 0; i < 50; i++)
		cv_log_ratelimited(CV_LOG_INFO, CV_LOG_WS, "junk from peer %d",
				   i);
	CV_CHECK(nlines >= CV_LOG_RATELIMIT_PER_SEC);
	CV_CHECK(nlines <= 2 * CV_LOG_RATELIMIT_PER_SEC + 1);
	/* Disabled level: nothing at all. */
	reset_capture();
	for (int i = 0; i < 5; i++)
		cv_log_ratelimited_n(2, CV_LOG_TRACE, CV_LOG_WS, "t %d", i);
	CV_CHECK_INT(nlines, 0);
}

static void test_obfuscate(void)
{
	char out[17], again[17];
	/* RFC 4231 test cases 2 and 6: first 8 bytes of HMAC-SHA-256. */
	static const char rfc_data[] = "what do ya want for nothing?";
	static const char big_data[] =
		"Test Using Larger Than Block-Size Key - Hash Key First";
	unsigned char big_key[131];

	cv_log_set_obfuscation_key("Jefe", 4);
	cv_log_obfuscate(rfc_data, strlen(rfc_data), out);
	CV_CHECK_STR(out, "5bdcc146bf60754e");
	memset(big_key, 0xaa, sizeof(big_key));
	cv_log_set_obfuscation_key(big_key, sizeof(big_key));
	cv_log_obfuscate(big_data, strlen(big_data), out);
	CV_CHECK_STR(out, "60e431591ee0b67f");

	/* A configured key correlates; a random one does not. */
	cv_log_set_obfuscation_key("node-key", 8);
	cv_log_obfuscate("alice", 5, out);
	cv_log_obfuscate("alice", 5, again);
	CV_CHECK_STR(out, again);
	cv_log_set_obfuscation_key(NULL, 0);
	cv_log_obfuscate("alice", 5, again);
	CV_CHECK(strcmp(out, again) != 0);
	CV_CHECK_INT(strlen(again), 16);
	cv_log_obfuscate("", 0, again);
	CV_CHECK_INT(strlen(again), 16);

	/* A token subject logged the way the design says never shows. */
	static const char subject[] = "alice@example.com";
	char id[17];

	reset_capture();
	cv_log_obfuscate(subject, strlen(subject), id);
	cv_log(CV_LOG_INFO, CV_LOG_WS, "join refused: token expired (sub=%s)",
	       id);
	CV_CHECK_INT(nlines, 1);
	CV_CHECK(strstr(last, subject) == NULL);
	CV_CHECK(strstr(last, "alice") == NULL);
	CV_CHECK(strstr(last, id) != NULL);
}

struct writer {
	int index;
};

static void *write_many(void *arg)
{
	const struct writer *w = arg;

	for (int i = 0; i < 300; i++)
		cv_log(CV_LOG_INFO, CV_LOG_CORE,
		       "thread %d line %d padding "
		       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		       w->index, i);
	return NULL;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	if (!f)
		return NULL;
	buf = calloc(1, 1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	return buf;
}

static void test_files(void)
{
	char dir[] = "/tmp/cv_test_log_XXXXXX";
	char a[64], b[64];
	pthread_t t[4];
	struct writer w[4];
	size_t len;
	char *text;

	CV_CHECK(mkdtemp(dir) != NULL);
	snprintf(a, sizeof(a), "%s/a.log", dir);
	snprintf(b, sizeof(b), "%s/b.log", dir);
	cv_log_set_sink(NULL, NULL);
	CV_CHECK_INT(cv_log_open_file("/nonexistent/dir/x.log"), -ENOENT);
	CV_CHECK_INT(cv_log_open_file(a), 0);
	cv_log(CV_LOG_INFO, CV_LOG_NODE, "first file");
	/* Rotation: the old file was renamed, reopen the path. */
	CV_CHECK_INT(cv_log_open_file(b), 0);
	for (int i = 0; i < 4; i++) {
		w[i].index = i;
		pthread_create(&t[i], NULL, write_many, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CV_CHECK_INT(cv_log_open_file(NULL), 0);

	text = read_all(a, &len);
	CV_CHECK(text && strstr(text, " info node: first file\n"));
	CV_CHECK(text && strchr(text, '\n') == text + len - 1);
	free(text);

	/* 1200 whole lines, none interleaved. */
	text = read_all(b, &len);
	CV_CHECK(text != NULL);
	int lines = 0, good = 0;
	for (char *p = text, *nl; text && (nl = strchr(p, '\n')); p = nl + 1) {
		int th, i, n = 0;

		*nl = '\0';
		lines++;
		if (sscanf(p + 24, " info core: thread %d line %d padding %n",
			   &th, &i, &n) == 2 &&
		    n && strlen(p + 24 + n) == 52)
			good++;
	}
	CV_CHECK_INT(lines, 1200);
	CV_CHECK_INT(good, 1200);
	free(text);
	unlink(a);
	unlink(b);
	rmdir(dir);
	cv_log_set_sink(capture, &nlines);
}

static void test_configure(void)
{
	struct cv_config *cfg;
	char err[256];

	CV_CHECK_INT(cv_config_create(&cfg), 0);
	CV_CHECK_INT(cv_config_set(cfg, "log.level", "warn", err, sizeof(err)),
		     0);
	CV_CHECK_INT(
		cv_config_set(cfg, "log.levels", "sip=debug", err, sizeof(err)),
		0);
	CV_CHECK_INT(cv_config_set(cfg, "log.format", "json", err, sizeof(err)),
		     0);
	CV_CHECK_INT(cv_config_set(cfg, "log.obfuscation_key", "Jefe", err,
				   sizeof(err)),
		     0);
	CV_CHECK_INT(cv_log_configure(cfg), 0);
	CV_CHECK_INT(cv_log_get_level(CV_LOG_ICE), CV_LOG_WARN);
	CV_CHECK_INT(cv_log_get_level(CV_LOG_SIP), CV_LOG_DEBUG);
	reset_capture();
	cv_log(CV_LOG_WARN, CV_LOG_ICE, "j");
	CV_CHECK(last[0] == '{');
	char out[17];
	cv_log_obfuscate("what do ya want for nothing?", 28, out);
	CV_CHECK_STR(out, "5bdcc146bf60754e");
	cv_log_set_format(CV_LOG_FORMAT_TEXT);
	cv_log_set_level_all(CV_LOG_INFO);
	cv_config_destroy(cfg);
}

int main(void)
{
	cv_log_set_sink(capture, &nlines);
	test_names();
	test_levels();
	test_text_line();
	test_context();
	test_context_thread_local();
	test_json_line();
	test_truncation();
	test_ratelimit();
	test_obfuscate();
	test_files();
	test_configure();
	cv_log_set_sink(NULL, NULL);
	return cv_test_done("test_log");
}
