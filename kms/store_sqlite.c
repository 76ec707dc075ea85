/*
 * SQLite backend of the KMS store: one connection to a local file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "conclave/log.h"
#include "kms/store_priv.h"

/*
 * Schema version 1. Audit rows are append-only: the triggers make any
 * UPDATE or DELETE on them fail (the code never issues one).
 */
static const char schema_v1[] =
	"CREATE TABLE rooms ("
	" id INTEGER PRIMARY KEY,"
	" uri TEXT NOT NULL UNIQUE,"
	" created_ms INTEGER NOT NULL);"
	"CREATE TABLE members ("
	" id INTEGER PRIMARY KEY,"
	" room_id INTEGER NOT NULL REFERENCES rooms(id),"
	" member TEXT NOT NULL,"
	" added_ms INTEGER NOT NULL,"
	" removed_ms INTEGER);"
	"CREATE UNIQUE INDEX members_active ON members(room_id, member)"
	" WHERE removed_ms IS NULL;"
	"CREATE TABLE keys ("
	" id INTEGER PRIMARY KEY,"
	" room_id INTEGER NOT NULL REFERENCES rooms(id),"
	" uri TEXT NOT NULL UNIQUE,"
	" epoch INTEGER NOT NULL,"
	" spi INTEGER NOT NULL,"
	" wrapped BLOB NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" retired_ms INTEGER,"
	" UNIQUE (room_id, epoch));"
	"CREATE UNIQUE INDEX keys_current ON keys(room_id)"
	" WHERE retired_ms IS NULL;"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time_ms INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" room TEXT NOT NULL,"
	" object TEXT NOT NULL,"
	" granted INTEGER NOT NULL CHECK (granted IN (0, 1)),"
	" reason TEXT NOT NULL);"
	"CREATE INDEX audit_room_time ON audit(room, time_ms);"
	"CREATE INDEX audit_time ON audit(time_ms);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;";

static const char *const migrations[] = {schema_v1};

static int map_err(sqlite3 *db, int rc)
{
	int ext = sqlite3_extended_errcode(db);
	if (ext == SQLITE_CONSTRAINT_UNIQUE ||
	    ext == SQLITE_CONSTRAINT_PRIMARYKEY)
		return -EEXIST;
	if (ext == SQLITE_CONSTRAINT_TRIGGER)
		return -EPERM;
	/* The message names tables and constraints, never values. */
	cv_log(CV_LOG_WARN, CV_LOG_KMS, "sqlite: statement failed: %s (rc=%d)",
	       sqlite3_errmsg(db), rc);
	return -EIO;
}

/* `$N` -> `?N`: SQLite reads `$N` as a named parameter. */
static char *rewrite_params(const char *sql)
{
	char *out = strdup(sql);
	if (!out)
		return NULL;
	for (char *c = out; *c; c++)
		if (c[0] == '$' && c[1] >= '1' && c[1] <= '9')
			c[0] = '?';
	return out;
}

static int bind_params(sqlite3_stmt *st, const struct kms_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int idx = (int)i + 1, rc;
		switch (p[i].type) {
		case KMS_P_TEXT:
			rc = sqlite3_bind_text(st, idx, p[i].text, -1,
					       SQLITE_STATIC);
			break;
		case KMS_P_INT:
			rc = sqlite3_bind_int64(st, idx, p[i].i);
			break;
		case KMS_P_BLOB:
			rc = sqlite3_bind_blob(st, idx, p[i].blob,
					       (int)p[i].len, SQLITE_STATIC);
			break;
		default:
			rc = sqlite3_bind_null(st, idx);
			break;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

static int row_cols(sqlite3_stmt *st, struct kms_col *cols, size_t *n)
{
	int count = sqlite3_column_count(st);
	if (count > KMS_MAX_COLS)
		return -EIO;
	for (int c = 0; c < count; c++) {
		struct kms_col *col = &cols[c];
		int type = sqlite3_column_type(st, c);
		col->null = type == SQLITE_NULL;
		if (type == SQLITE_BLOB)
			col->p = sqlite3_column_blob(st, c);
		else
			col->p = sqlite3_column_text(st, c);
		col->len = (size_t)sqlite3_column_bytes(st, c);
		if (!col->p)
			col->p = (const uint8_t *)"";
	}
	*n = (size_t)count;
	return 0;
}

static int sq_query(void *arg, const char *sql, const struct kms_param *p,
		    size_t n, kms_row_fn fn, void *fn_arg)
{
	sqlite3 *db = arg;
	sqlite3_stmt *st = NULL;
	char *text = rewrite_params(sql);
	if (!text)
		return -ENOMEM;
	int rc = sqlite3_prepare_v2(db, text, -1, &st, NULL);
	free(text);
	if (rc != SQLITE_OK)
		return map_err(db, rc);
	int err = 0;
	rc = bind_params(st, p, n);
	if (rc != SQLITE_OK) {
		err = map_err(db, rc);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct kms_col cols[KMS_MAX_COLS];
		size_t ncols = 0;
		if ((err = row_cols(st, cols, &ncols)))
			goto out;
		if (fn && (err = fn(fn_arg, cols, ncols)))
			goto out;
	}
	if (rc != SQLITE_DONE)
		err = map_err(db, rc);
out:
	sqlite3_finalize(st);
	return err;
}

static int sq_script(void *arg, const char *sql)
{
	sqlite3 *db = arg;
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : map_err(db, rc);
}

static int sq_ping(void *arg)
{
	return sq_script(arg, "SELECT 1");
}

static void sq_close(void *arg)
{
	sqlite3_close(arg);
}

static const struct kms_backend sqlite_backend = {
	.name = "sqlite",
	.migrations = migrations,
	.n_migrations = sizeof(migrations) / sizeof(migrations[0]),
	/* Take the write lock at once: no deadlock upgrading a read lock. */
	.begin_sql = "BEGIN IMMEDIATE",
	.migrate_lock_sql = NULL,
	.query = sq_query,
	.script = sq_script,
	.ping = sq_ping,
	.close = sq_close,
};

int kms_sqlite_open(const char *path, void **out,
		    const struct kms_backend **ops)
{
	/* Create the file ourselves so that it is never world-readable. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "sqlite: cannot open database file: %s",
		       strerror(errno));
		return -EIO;
	}
	close(fd);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(
		path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS, "sqlite: cannot open: %s",
		       db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, 5000);
	/* secure_delete: freed pages (old journal content, rows of a
	 * rolled-back transaction) are zeroed, not left in the file. */
	rc = sqlite3_exec(db,
			  "PRAGMA foreign_keys = ON;"
			  "PRAGMA secure_delete = ON;",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int err = map_err(db, rc);
		sqlite3_close(db);
		return err;
	}
	*out = db;
	*ops = &sqlite_backend;
	return 0;
}
