/*
 * The KMS store against a real database: membership, rotation on removal,
 * denial with audit, audit immutability, keys never in clear at rest, and
 * data surviving a close/reopen.
 *
 *   test_kms_store sqlite            temp files under $TMPDIR
 *   test_kms_store postgres          a fresh database on the server that
 *                                    PGHOST/PGPORT/PGUSER name (started by
 *                                    with_postgres.sh); its data directory
 *                                    is $CV_KMS_PG_DATADIR (scanned)
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "conclave/secret.h"
#include "cv_test.h"
#include "kms/store.h"

#define ROOM	"conclave://rooms/alpha"
#define ROOM2	"conclave://rooms/beta"
#define ADMIN	"admin-0001"
#define ALICE	"7f3c2a10-alice"
#define BOB	"0b1d9e44-bob"
#define CAROL	"c4a801ff-carol"
#define MALLORY "99999999-mallory"
#define ROOM3	"conclave://rooms/gamma"
#define ROOM4	"conclave://rooms/delta"
#define NODE_ID "0123456789abcdef"

static uint64_t fake_now = 1700000000000ULL;

static uint64_t test_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

/* ---- raw database access (what an attacker with the file could do) ---- */

struct raw {
	bool pg;
	sqlite3 *sq;
	PGconn *pc;
};

static int raw_open(struct raw *r, const char *db)
{
	memset(r, 0, sizeof(*r));
	if (strncmp(db, "postgres", 8) == 0) {
		r->pg = true;
		r->pc = PQconnectdb(db);
		return PQstatus(r->pc) == CONNECTION_OK ? 0 : -1;
	}
	return sqlite3_open(db, &r->sq) == SQLITE_OK ? 0 : -1;
}

static void raw_close(struct raw *r)
{
	if (r->pg)
		PQfinish(r->pc);
	else
		sqlite3_close(r->sq);
}

/* 0 when the statement succeeded. */
static int raw_exec(struct raw *r, const char *sql)
{
	if (r->pg) {
		PGresult *res = PQexec(r->pc, sql);
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	}
	return sqlite3_exec(r->sq, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static long raw_count(struct raw *r, const char *sql)
{
	long n = -1;
	if (r->pg) {
		PGresult *res = PQexec(r->pc, sql);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res))
			n = atol(PQgetvalue(res, 0, 0));
		PQclear(res);
		return n;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(r->sq, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The first column of the first row as bytes. */
static size_t raw_blob(struct raw *r, const char *sql, uint8_t *out, size_t cap)
{
	size_t n = 0;
	if (r->pg) {
		PGresult *res =
			PQexecParams(r->pc, sql, 0, NULL, NULL, NULL, NULL, 1);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res)) {
			n = (size_t)PQgetlength(res, 0, 0);
			if (n > cap)
				n = 0;
			else
				memcpy(out, PQgetvalue(res, 0, 0), n);
		}
		PQclear(res);
		return n;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(r->sq, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		n = (size_t)sqlite3_column_bytes(st, 0);
		if (n > cap)
			n = 0;
		else
			memcpy(out, sqlite3_column_blob(st, 0), n);
	}
	sqlite3_finalize(st);
	return n;
}

/* ---- scanning files for bytes ------------------------------------------ */

static size_t count_in_file(const char *path, const uint8_t *needle,
			    size_t nlen)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	size_t hits = 0;
	uint8_t *buf = size > 0 ? malloc((size_t)size) : NULL;
	if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size)
		for (size_t i = 0; i + nlen <= (size_t)size; i++)
			if (buf[i] == needle[0] &&
			    memcmp(buf + i, needle, nlen) == 0)
				hits++;
	free(buf);
	fclose(f);
	return hits;
}

/* Hits of needle in every regular file under dir (recursively). */
static size_t scan_dir(const char *dir, const uint8_t *needle, size_t nlen)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t hits = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			hits += scan_dir(path, needle, nlen);
		else if (S_ISREG(st.st_mode))
			hits += count_in_file(path, needle, nlen);
	}
	closedir(d);
	return hits;
}

/* Raw bytes, lower- and upper-case hex. */
static size_t scan_key(const char *dir, const struct cv_secret *k)
{
	const uint8_t *p = cv_secret_data(k);
	size_t n = cv_secret_len(k), hits = scan_dir(dir, p, n);
	char lo[2 * CV_SECRET_MAX_BYTES + 1], up[2 * CV_SECRET_MAX_BYTES + 1];
	for (size_t i = 0; i < n; i++) {
		snprintf(lo + 2 * i, 3, "%02x", p[i]);
		snprintf(up + 2 * i, 3, "%02X", p[i]);
	}
	hits += scan_dir(dir, (const uint8_t *)lo, 2 * n);
	hits += scan_dir(dir, (const uint8_t *)up, 2 * n);
	return hits;
}

/* ---- audit helpers ----------------------------------------------------- */

#define MAX_ROWS 64

struct audit_log {
	size_t n;
	struct {
		int64_t id;
		char actor[65], action[32], room[256], object[256], reason[64];
		bool granted;
		uint64_t time_ms;
	} rows[MAX_ROWS];
};

static int collect(void *arg, const struct cv_kms_audit_row *r)
{
	struct audit_log *l = arg;
	if (l->n == MAX_ROWS)
		return -E2BIG;
	l->rows[l->n].id = r->id;
	l->rows[l->n].granted = r->granted;
	l->rows[l->n].time_ms = r->time_ms;
	snprintf(l->rows[l->n].actor, 65, "%s", r->actor);
	snprintf(l->rows[l->n].action, 32, "%s", r->action);
	snprintf(l->rows[l->n].room, 256, "%s", r->room);
	snprintf(l->rows[l->n].object, 256, "%s", r->object);
	snprintf(l->rows[l->n].reason, 64, "%s", r->reason);
	l->n++;
	return 0;
}

static void list(struct cv_kms_store *s, const char *room, uint64_t since,
		 int64_t after, struct audit_log *l)
{
	struct cv_kms_audit_filter f = {
		.room = room, .since_ms = since, .after_id = after};
	memset(l, 0, sizeof(*l));
	CV_CHECK_INT(cv_kms_store_list_audit(s, &f, collect, l), 0);
}

static bool has_row(const struct audit_log *l, const char *actor,
		    const char *action, const char *object, bool granted)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->rows[i].actor, actor) &&
		    !strcmp(l->rows[i].action, action) &&
		    (!object || !strcmp(l->rows[i].object, object)) &&
		    l->rows[i].granted == granted)
			return true;
	return false;
}

/* ---- the suite --------------------------------------------------------- */

struct ctx {
	char db[640];
	char scan_dir[512]; /* where the database's files live */
	struct cv_secret master;
	struct cv_kms_store_opts opts;
};

static struct cv_kms_store *open_store(struct ctx *c)
{
	struct cv_kms_store *s = NULL;
	int err = cv_kms_store_open(&s, &c->opts);
	CV_CHECK_INT(err, 0);
	return s;
}

static void test_membership(struct ctx *c, struct cv_kms_store *s,
			    struct cv_kms_key *k0, struct cv_kms_key *k1)
{
	uint32_t epoch = 99;
	CV_CHECK_INT(cv_kms_store_create_room(s, ADMIN, ROOM, &epoch), 0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_store_create_room(s, ADMIN, ROOM, NULL), -EEXIST);
	CV_CHECK_INT(cv_kms_store_create_room(s, ADMIN, ROOM2, NULL), 0);
	fake_now += 1000;
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, ALICE, &epoch), 0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, BOB, NULL), 0);
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, ALICE, NULL),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, "conclave://none", ALICE,
					     NULL),
		     -ENOENT);
	/* A real identity never enters the tables. */
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM,
					     "alice@example.com", NULL),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_add_member(s, "", ROOM, CAROL, NULL),
		     -EINVAL);

	/* Members get the room's key; both the same one. */
	struct cv_kms_key kb = {0};
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, k0), 0);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, BOB, &kb), 0);
	CV_CHECK_INT(k0->epoch, 0);
	CV_CHECK_INT(k0->spi, 0);
	CV_CHECK_INT(cv_secret_len(&k0->key), 16);
	CV_CHECK(cv_secret_equal(&k0->key, &kb.key));
	CV_CHECK_STR(k0->uri, kb.uri);
	CV_CHECK(strncmp(k0->uri, "kms://test.kms/keys/", 20) == 0);
	CV_CHECK_INT(strlen(k0->uri), 20 + 32);
	cv_kms_key_wipe(&kb);

	/* Another room has another key. */
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM2, ALICE, NULL), 0);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM2, ALICE, &kb), 0);
	CV_CHECK(!cv_secret_equal(&k0->key, &kb.key));
	cv_kms_key_wipe(&kb);

	/* Non-members and unknown rooms: refused alike. */
	memset(&kb, 0x5a, sizeof(kb));
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, MALLORY, &kb),
		     CV_EAUTH);
	CV_CHECK_INT(kb.epoch, 0x5a5a5a5a); /* untouched */
	CV_CHECK_INT(cv_kms_store_get_current_key(s, "conclave://none", MALLORY,
						  &kb),
		     CV_EAUTH);
	CV_CHECK_INT(cv_kms_store_get_key(s, k0->uri, MALLORY, &kb), CV_EAUTH);
	CV_CHECK_INT(
		cv_kms_store_get_key(s, "kms://test.kms/keys/nope", ALICE, &kb),
		CV_EAUTH);

	/* Removing a member rotates the key. */
	fake_now += 1000;
	CV_CHECK_INT(cv_kms_store_remove_member(s, ADMIN, ROOM, BOB, &epoch),
		     0);
	CV_CHECK_INT(epoch, 1);
	CV_CHECK_INT(cv_kms_store_remove_member(s, ADMIN, ROOM, BOB, NULL),
		     -ENOENT);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, k1), 0);
	CV_CHECK_INT(k1->epoch, 1);
	CV_CHECK_INT(k1->spi, 1);
	CV_CHECK(!cv_secret_equal(&k0->key, &k1->key));
	CV_CHECK(strcmp(k0->uri, k1->uri) != 0);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, BOB, &kb), CV_EAUTH);
	CV_CHECK_INT(cv_kms_store_get_key(s, k1->uri, BOB, &kb), CV_EAUTH);
	CV_CHECK_INT(cv_kms_store_get_key(s, k0->uri, BOB, &kb), CV_EAUTH);

	/* A remaining member may still fetch the retired key by URI (late
	 * packets); a member who joined after its retirement may not. */
	CV_CHECK_INT(cv_kms_store_get_key(s, k0->uri, ALICE, &kb), 0);
	CV_CHECK(cv_secret_equal(&k0->key, &kb.key));
	CV_CHECK_INT(kb.epoch, 0);
	cv_kms_key_wipe(&kb);
	fake_now += 1000;
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, CAROL, &epoch), 0);
	CV_CHECK_INT(epoch, 1);
	CV_CHECK_INT(cv_kms_store_get_key(s, k0->uri, CAROL, &kb), CV_EAUTH);
	CV_CHECK_INT(cv_kms_store_get_key(s, k1->uri, CAROL, &kb), 0);
	cv_kms_key_wipe(&kb);

	/* Bob may come back: the current key only. */
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, BOB, &epoch), 0);
	CV_CHECK_INT(epoch, 1);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, BOB, &kb), 0);
	CV_CHECK(cv_secret_equal(&k1->key, &kb.key));
	cv_kms_key_wipe(&kb);
	(void)c;
}

static void test_audit(struct cv_kms_store *s, const struct cv_kms_key *k0,
		       const struct cv_kms_key *k1)
{
	struct audit_log l;
	list(s, ROOM, 0, 0, &l);
	CV_CHECK(has_row(&l, ADMIN, "room.create", ROOM, true));
	CV_CHECK(has_row(&l, ADMIN, "key.create", k0->uri, true));
	CV_CHECK(has_row(&l, ADMIN, "room.create", ROOM, false));
	CV_CHECK(has_row(&l, ADMIN, "member.add", ALICE, true));
	CV_CHECK(has_row(&l, ADMIN, "member.add", ALICE, false));
	CV_CHECK(has_row(&l, ALICE, "key.get", k0->uri, true));
	CV_CHECK(has_row(&l, BOB, "key.get", k0->uri, true));
	CV_CHECK(has_row(&l, MALLORY, "key.get", NULL, false));
	CV_CHECK(has_row(&l, ADMIN, "member.remove", BOB, true));
	CV_CHECK(has_row(&l, ADMIN, "key.rotate", k1->uri, true));
	CV_CHECK(has_row(&l, BOB, "key.get", k1->uri, false));
	CV_CHECK(has_row(&l, CAROL, "key.get", k0->uri, false));
	/* Rows of the other room are filtered out; ids increase. */
	for (size_t i = 0; i < l.n; i++) {
		CV_CHECK_STR(l.rows[i].room, ROOM);
		if (i)
			CV_CHECK(l.rows[i].id > l.rows[i - 1].id);
	}
	/* Denials name a reason. */
	for (size_t i = 0; i < l.n; i++)
		if (!l.rows[i].granted)
			CV_CHECK(l.rows[i].reason[0] != '\0');
	size_t all = l.n;

	/* One key access, one row. */
	struct cv_kms_key kb = {0};
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, &kb), 0);
	cv_kms_key_wipe(&kb);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, MALLORY, &kb),
		     CV_EAUTH);
	list(s, ROOM, 0, 0, &l);
	CV_CHECK_INT(l.n, all + 2);
	CV_CHECK_STR(l.rows[l.n - 2].action, "key.get");
	CV_CHECK(l.rows[l.n - 2].granted);
	CV_CHECK_STR(l.rows[l.n - 1].actor, MALLORY);
	CV_CHECK_STR(l.rows[l.n - 1].reason, "not a member");
	CV_CHECK(!l.rows[l.n - 1].granted);

	/* Paging and time filters. */
	int64_t mid = l.rows[2].id;
	struct audit_log l2;
	list(s, ROOM, 0, mid, &l2);
	CV_CHECK_INT(l2.n, l.n - 3);
	list(s, ROOM, fake_now, 0, &l2);
	CV_CHECK(l2.n >= 2 && l2.n < l.n);
	list(s, NULL, 0, 0, &l2);
	CV_CHECK(l2.n > l.n); /* the other room too */
	struct cv_kms_audit_filter f = {.room = ROOM, .limit = 2};
	memset(&l2, 0, sizeof(l2));
	CV_CHECK_INT(cv_kms_store_list_audit(s, &f, collect, &l2), 0);
	CV_CHECK_INT(l2.n, 2);
}

/* A member insert that fails (a trigger planted for the test) must take
 * the room of cv_kms_store_create_room_with_member down with it. */
static void test_create_atomic(struct ctx *c, struct cv_kms_store *s)
{
	struct raw r;
	CV_CHECK_INT(raw_open(&r, c->db), 0);
	int planted =
		r.pg ? raw_exec(&r,
				"CREATE FUNCTION poison() RETURNS trigger"
				" LANGUAGE plpgsql AS $$ BEGIN IF NEW.member"
				" = 'poison-1' THEN RAISE EXCEPTION 'poison';"
				" END IF; RETURN NEW; END $$;"
				"CREATE TRIGGER poison BEFORE INSERT ON members"
				" FOR EACH ROW EXECUTE FUNCTION poison()")
		     : raw_exec(&r,
				"CREATE TRIGGER poison BEFORE INSERT ON"
				" members WHEN NEW.member = 'poison-1'"
				" BEGIN SELECT RAISE(ABORT, 'poison'); END");
	CV_CHECK_INT(planted, 0);
	CV_CHECK(cv_kms_store_create_room_with_member(s, ADMIN, ROOM4,
						      "poison-1", NULL) != 0);
	CV_CHECK_INT(raw_count(&r, "SELECT COUNT(*) FROM rooms WHERE uri = "
				   "'" ROOM4 "'"),
		     0);
	CV_CHECK_INT(raw_count(&r, "SELECT COUNT(*) FROM audit WHERE room = "
				   "'" ROOM4 "'"),
		     0);
	CV_CHECK_INT(raw_exec(&r, r.pg ? "DROP TRIGGER poison ON members;"
					 "DROP FUNCTION poison()"
				       : "DROP TRIGGER poison"),
		     0);
	raw_close(&r);
	/* Nothing was left behind: the same room can be created now. */
	CV_CHECK_INT(cv_kms_store_create_room_with_member(s, ADMIN, ROOM4,
							  "poison-1", NULL),
		     0);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM4, "poison-1"), 1);
}

/* Refusals decided outside the store: one denied row each. */
static void test_refusals(struct cv_kms_store *s, int64_t after)
{
	struct audit_log l;
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, "-", "channel.open", NULL,
						"token invalid"),
		     0);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, NODE_ID, "node.connect", "",
						"unknown node certificate"),
		     0);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, MALLORY, "channel.request",
						ROOM3, "replayed"),
		     0);
	/* Refused arguments write nothing. */
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, NULL, "a.b", NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, "", "a.b", NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, "bob@example.com", "a.b",
						NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, MALLORY, "", NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, MALLORY, "a b", NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(
			     s, MALLORY, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
			     NULL, "r"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, MALLORY, "a.b", NULL, ""),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_audit_refusal(s, MALLORY, "a.b", NULL,
						"two\nlines"),
		     -EINVAL);
	CV_CHECK_INT(
		cv_kms_store_audit_refusal(s, MALLORY, "a.b", "bad room", "r"),
		-EINVAL);

	list(s, NULL, 0, after, &l);
	CV_CHECK_INT(l.n, 3);
	if (l.n != 3)
		return;
	CV_CHECK_STR(l.rows[0].actor, "-");
	CV_CHECK_STR(l.rows[0].action, "channel.open");
	CV_CHECK_STR(l.rows[0].room, "");
	CV_CHECK_STR(l.rows[0].reason, "token invalid");
	CV_CHECK_STR(l.rows[1].actor, NODE_ID);
	CV_CHECK_STR(l.rows[1].action, "node.connect");
	CV_CHECK_STR(l.rows[1].reason, "unknown node certificate");
	CV_CHECK_STR(l.rows[2].room, ROOM3);
	CV_CHECK_STR(l.rows[2].object, ROOM3);
	CV_CHECK_STR(l.rows[2].reason, "replayed");
	for (size_t i = 0; i < l.n; i++) {
		CV_CHECK(!l.rows[i].granted);
		CV_CHECK_INT(l.rows[i].time_ms, fake_now);
	}
}

/* create_room_with_member, is_member and audit_refusal. */
static void test_store_gaps(struct ctx *c, struct cv_kms_store *s)
{
	struct audit_log l;
	uint32_t epoch = 99;
	fake_now += 1000;
	CV_CHECK_INT(cv_kms_store_create_room_with_member(s, ALICE, ROOM3,
							  ALICE, &epoch),
		     0);
	CV_CHECK_INT(epoch, 0);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM3, ALICE), 1);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM3, BOB), 0);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM, ALICE), 1);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM, MALLORY), 0);
	CV_CHECK_INT(cv_kms_store_is_member(s, "conclave://none", ALICE), 0);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM3, "a@example.com"),
		     -EINVAL);
	CV_CHECK_INT(cv_kms_store_is_member(s, "", ALICE), -EINVAL);
	CV_CHECK_INT(cv_kms_store_is_member(s, "bad room", ALICE), -EINVAL);
	struct cv_kms_key k = {0};
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM3, ALICE, &k), 0);
	CV_CHECK_INT(k.epoch, 0);
	cv_kms_key_wipe(&k);

	/* Its rows: the room, its key, the member, in that order. */
	list(s, ROOM3, 0, 0, &l);
	CV_CHECK_INT(l.n, 4);
	if (l.n == 4) {
		CV_CHECK_STR(l.rows[0].action, "room.create");
		CV_CHECK_STR(l.rows[1].action, "key.create");
		CV_CHECK_STR(l.rows[2].action, "member.add");
		CV_CHECK_STR(l.rows[2].object, ALICE);
		CV_CHECK_STR(l.rows[3].action, "key.get");
		for (size_t i = 0; i < 3; i++) {
			CV_CHECK_STR(l.rows[i].actor, ALICE);
			CV_CHECK(l.rows[i].granted);
		}
	}

	/* An existing room: refused, audited, nobody added. */
	CV_CHECK_INT(cv_kms_store_create_room_with_member(s, BOB, ROOM3, BOB,
							  &epoch),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_store_create_room_with_member(s, MALLORY, ROOM,
							  MALLORY, NULL),
		     -EEXIST);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM3, BOB), 0);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM, MALLORY), 0);
	list(s, ROOM3, 0, 0, &l);
	CV_CHECK_INT(l.n, 5);
	if (l.n == 5) {
		CV_CHECK_STR(l.rows[4].actor, BOB);
		CV_CHECK_STR(l.rows[4].action, "room.create");
		CV_CHECK_STR(l.rows[4].reason, "room exists");
		CV_CHECK(!l.rows[4].granted);
	}
	list(s, ROOM, 0, 0, &l); /* the later denial, in the other room */
	CV_CHECK(l.n > 0 && !strcmp(l.rows[l.n - 1].actor, MALLORY) &&
		 !strcmp(l.rows[l.n - 1].reason, "room exists"));
	int64_t last = l.n ? l.rows[l.n - 1].id : 0;

	/* Bad ids: nothing happens, nothing is audited. */
	CV_CHECK_INT(cv_kms_store_create_room_with_member(
			     s, ALICE, ROOM4, "x@example.com", NULL),
		     -EINVAL);
	CV_CHECK_INT(
		cv_kms_store_create_room_with_member(s, "", ROOM4, ALICE, NULL),
		-EINVAL);
	CV_CHECK_INT(
		cv_kms_store_create_room_with_member(s, ALICE, "", ALICE, NULL),
		-EINVAL);
	list(s, NULL, 0, last, &l);
	CV_CHECK_INT(l.n, 0);

	/* Removal ends the membership the call made. */
	CV_CHECK_INT(cv_kms_store_remove_member(s, ALICE, ROOM3, ALICE, &epoch),
		     0);
	CV_CHECK_INT(epoch, 1);
	CV_CHECK_INT(cv_kms_store_is_member(s, ROOM3, ALICE), 0);
	list(s, ROOM3, 0, 0, &l);
	last = l.n ? l.rows[l.n - 1].id : 0;

	test_refusals(s, last);
	test_create_atomic(c, s);
}

static void test_immutable(struct ctx *c)
{
	struct raw r;
	CV_CHECK_INT(raw_open(&r, c->db), 0);
	long before = raw_count(&r, "SELECT COUNT(*) FROM audit");
	CV_CHECK(before > 10);
	CV_CHECK(raw_exec(&r, "UPDATE audit SET granted = 1") != 0);
	CV_CHECK(raw_exec(&r, "UPDATE audit SET reason = 'x' WHERE id = 1") !=
		 0);
	CV_CHECK(raw_exec(&r, "DELETE FROM audit WHERE id = 1") != 0);
	CV_CHECK(raw_exec(&r, "DELETE FROM audit") != 0);
	if (r.pg)
		CV_CHECK(raw_exec(&r, "TRUNCATE audit") != 0);
	CV_CHECK_INT(raw_count(&r, "SELECT COUNT(*) FROM audit"), before);
	CV_CHECK_INT(raw_count(&r, "SELECT COUNT(*) FROM audit WHERE "
				   "reason = 'x'"),
		     0);
	/* Inserting is what the table is for. */
	CV_CHECK_INT(raw_exec(&r, "INSERT INTO audit (time_ms, actor, action,"
				  " room, object, granted, reason) VALUES "
				  "(1, 'raw', 'test', '', '', 1, '')"),
		     0);
	raw_close(&r);
}

static void test_at_rest(struct ctx *c, const struct cv_kms_key *k0,
			 const struct cv_kms_key *k1)
{
	struct raw r;
	CV_CHECK_INT(raw_open(&r, c->db), 0);
	if (r.pg) /* flush shared buffers into the data files */
		CV_CHECK_INT(raw_exec(&r, "CHECKPOINT"), 0);
	uint8_t wrapped[128];
	size_t wlen = raw_blob(&r,
			       "SELECT wrapped FROM keys WHERE epoch = 0 "
			       "ORDER BY id LIMIT 1",
			       wrapped, sizeof(wrapped));
	raw_close(&r);
	CV_CHECK_INT(wlen, 1 + 12 + 16 + 16);
	/* The scan works: it finds the wrapped form... */
	CV_CHECK(scan_dir(c->scan_dir, wrapped, wlen) >= 1);
	/* ...and never a clear key, raw or hex. */
	CV_CHECK_INT(scan_key(c->scan_dir, &k0->key), 0);
	CV_CHECK_INT(scan_key(c->scan_dir, &k1->key), 0);
	CV_CHECK_INT(scan_key(c->scan_dir, &c->master), 0);
}

static void test_restart(struct ctx *c, const struct cv_kms_key *k1)
{
	struct cv_kms_store *s = open_store(c);
	if (!s)
		return;
	CV_CHECK_INT(cv_kms_store_schema_version(s), CV_KMS_SCHEMA_VERSION);
	struct audit_log l;
	list(s, ROOM, 0, 0, &l);
	size_t n = l.n;
	CV_CHECK(n > 10);
	struct cv_kms_key k = {0};
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, &k), 0);
	CV_CHECK(cv_secret_equal(&k.key, &k1->key));
	CV_CHECK_STR(k.uri, k1->uri);
	CV_CHECK_INT(k.epoch, 1);
	cv_kms_key_wipe(&k);
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, MALLORY, &k),
		     CV_EAUTH);
	list(s, ROOM, 0, 0, &l);
	CV_CHECK_INT(l.n, n + 2);
	/* Membership survived too. */
	CV_CHECK_INT(cv_kms_store_add_member(s, ADMIN, ROOM, ALICE, NULL),
		     -EEXIST);
	cv_kms_store_close(s);

	/* Another master key: rows do not unwrap (and say so). */
	struct cv_secret other;
	cv_secret_init(&other);
	CV_CHECK_INT(cv_secret_random(&other, 32), 0);
	struct cv_kms_store_opts o = c->opts;
	o.master_key = &other;
	s = NULL;
	CV_CHECK_INT(cv_kms_store_open(&s, &o), 0);
	if (s) {
		CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, &k),
			     CV_EINTEGRITY);
		cv_kms_store_close(s);
	}
	cv_secret_wipe(&other);
}

/* A key row moved onto another epoch does not unwrap: the AAD binds it. */
static void test_tamper(struct ctx *c)
{
	struct raw r;
	CV_CHECK_INT(raw_open(&r, c->db), 0);
	CV_CHECK_INT(raw_exec(&r, "UPDATE keys SET wrapped = (SELECT wrapped "
				  "FROM keys k2 WHERE k2.epoch = 0 AND "
				  "k2.room_id = keys.room_id) WHERE epoch = 1"),
		     0);
	raw_close(&r);
	struct cv_kms_store *s = open_store(c);
	if (!s)
		return;
	struct cv_kms_key k = {0};
	CV_CHECK_INT(cv_kms_store_get_current_key(s, ROOM, ALICE, &k),
		     CV_EINTEGRITY);
	struct audit_log l;
	list(s, ROOM, 0, 0, &l);
	CV_CHECK_STR(l.rows[l.n - 1].reason, "key does not unwrap");
	cv_kms_store_close(s);
}

/* A database written by a newer KMS is refused, not "migrated". */
static void test_newer_schema(struct ctx *c)
{
	struct raw r;
	CV_CHECK_INT(raw_open(&r, c->db), 0);
	CV_CHECK_INT(raw_exec(&r, "INSERT INTO kms_schema (version, "
				  "applied_ms) VALUES (99, 0)"),
		     0);
	raw_close(&r);
	struct cv_kms_store *s = NULL;
	CV_CHECK_INT(cv_kms_store_open(&s, &c->opts), CV_EUNSUPP);
	CV_CHECK(s == NULL);
}

static int setup_sqlite(struct ctx *c)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(c->scan_dir, sizeof(c->scan_dir), "%s/kms-store-XXXXXX", tmp);
	if (!mkdtemp(c->scan_dir))
		return -1;
	snprintf(c->db, sizeof(c->db), "%s/kms.db", c->scan_dir);
	return 0;
}

static int setup_postgres(struct ctx *c)
{
	const char *dir = getenv("CV_KMS_PG_DATADIR");
	if (!dir || !getenv("PGHOST")) {
		fprintf(stderr, "postgres: run through with_postgres.sh\n");
		return -1;
	}
	snprintf(c->scan_dir, sizeof(c->scan_dir), "%s", dir);
	PGconn *pc = PQconnectdb("dbname=postgres");
	if (PQstatus(pc) != CONNECTION_OK) {
		fprintf(stderr, "postgres: %s", PQerrorMessage(pc));
		PQfinish(pc);
		return -1;
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE kms_test_%d", getpid());
	PGresult *res = PQexec(pc, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	PQfinish(pc);
	snprintf(c->db, sizeof(c->db), "postgresql:///kms_test_%d", getpid());
	return ok ? 0 : -1;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "sqlite";
	bool pg = strcmp(mode, "postgres") == 0;
	cv_log_set_level_all(CV_LOG_WARN);
	static struct ctx c;
	if ((pg ? setup_postgres(&c) : setup_sqlite(&c)) != 0) {
		fprintf(stderr, "test_kms_store: cannot set up %s\n", mode);
		return 1;
	}
	cv_secret_init(&c.master);
	CV_CHECK_INT(cv_secret_random(&c.master, 32), 0);
	c.opts = (struct cv_kms_store_opts){
		.database = c.db,
		.master_key = &c.master,
		.key_uri_base = "kms://test.kms",
		.now_ms = test_clock,
	};

	struct cv_kms_store *s = open_store(&c);
	if (!s)
		return cv_test_done("kms_store");
	CV_CHECK_STR(cv_kms_store_backend(s), pg ? "postgres" : "sqlite");
	CV_CHECK_INT(cv_kms_store_schema_version(s), CV_KMS_SCHEMA_VERSION);
	CV_CHECK_INT(cv_kms_store_ping(s), 0);
	cv_kms_store_close(s);
	s = open_store(&c); /* migrations are idempotent */
	if (!s)
		return cv_test_done("kms_store");
	CV_CHECK_INT(cv_kms_store_schema_version(s), CV_KMS_SCHEMA_VERSION);

	struct cv_kms_key k0 = {0}, k1 = {0};
	test_membership(&c, s, &k0, &k1);
	test_audit(s, &k0, &k1);
	test_store_gaps(&c, s);
	cv_kms_store_close(s);
	test_immutable(&c);
	test_at_rest(&c, &k0, &k1);
	test_restart(&c, &k1);
	test_tamper(&c);
	test_newer_schema(&c);

	/* Options the store refuses. */
	struct cv_kms_store_opts bad = c.opts;
	struct cv_secret short_key;
	cv_secret_init(&short_key);
	cv_secret_random(&short_key, 16);
	bad.master_key = &short_key;
	CV_CHECK_INT(cv_kms_store_open(&s, &bad), -EINVAL);
	bad = c.opts;
	bad.key_bytes = 24;
	CV_CHECK_INT(cv_kms_store_open(&s, &bad), -EINVAL);

	cv_kms_key_wipe(&k0);
	cv_kms_key_wipe(&k1);
	cv_secret_wipe(&c.master);
	if (!pg)
		rm_tree(c.scan_dir);
	return cv_test_done(pg ? "kms_store_postgres" : "kms_store_sqlite");
}
