/*
 * PostgreSQL backend of the KMS store: one libpq connection, reconnected
 * by the health check when it was lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conclave/log.h"
#include "kms/store_priv.h"

/* pg_type.oid of bytea. */
#define BYTEA_OID 17

/*
 * Schema version 1, PostgreSQL dialect. Audit rows are append-only: a
 * trigger refuses UPDATE, DELETE and TRUNCATE (for every role, the owner
 * included), and the privileges are revoked from PUBLIC.
 */
static const char schema_v1[] =
	"CREATE TABLE rooms ("
	" id BIGSERIAL PRIMARY KEY,"
	" uri TEXT NOT NULL UNIQUE,"
	" created_ms BIGINT NOT NULL);"
	"CREATE TABLE members ("
	" id BIGSERIAL PRIMARY KEY,"
	" room_id BIGINT NOT NULL REFERENCES rooms(id),"
	" member TEXT NOT NULL,"
	" added_ms BIGINT NOT NULL,"
	" removed_ms BIGINT);"
	"CREATE UNIQUE INDEX members_active ON members(room_id, member)"
	" WHERE removed_ms IS NULL;"
	"CREATE TABLE keys ("
	" id BIGSERIAL PRIMARY KEY,"
	" room_id BIGINT NOT NULL REFERENCES rooms(id),"
	" uri TEXT NOT NULL UNIQUE,"
	" epoch BIGINT NOT NULL,"
	" spi INTEGER NOT NULL,"
	" wrapped BYTEA NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" retired_ms BIGINT,"
	" UNIQUE (room_id, epoch));"
	"CREATE UNIQUE INDEX keys_current ON keys(room_id)"
	" WHERE retired_ms IS NULL;"
	"CREATE TABLE audit ("
	" id BIGSERIAL PRIMARY KEY,"
	" time_ms BIGINT NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" room TEXT NOT NULL,"
	" object TEXT NOT NULL,"
	" granted SMALLINT NOT NULL CHECK (granted IN (0, 1)),"
	" reason TEXT NOT NULL);"
	"CREATE INDEX audit_room_time ON audit(room, time_ms);"
	"CREATE INDEX audit_time ON audit(time_ms);"
	"CREATE FUNCTION kms_audit_append_only() RETURNS trigger"
	" LANGUAGE plpgsql AS $f$ BEGIN"
	" RAISE EXCEPTION 'audit is append-only'"
	" USING ERRCODE = 'insufficient_privilege'; END $f$;"
	"CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
	" FOR EACH ROW EXECUTE FUNCTION kms_audit_append_only();"
	"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
	" FOR EACH STATEMENT EXECUTE FUNCTION kms_audit_append_only();"
	"REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC;";

static const char *const migrations[] = {schema_v1};

static void quiet_notices(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* "relation already exists, skipping" and the like */
}

static int map_result(PGconn *c, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (state && strcmp(state, "23505") == 0)
		return -EEXIST; /* unique_violation */
	if (state && strcmp(state, "42501") == 0)
		return -EPERM; /* insufficient_privilege (also our trigger) */
	/* The primary message names objects; DETAIL (which may quote
	 * values) is not logged. */
	const char *msg =
		r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!msg)
		msg = PQerrorMessage(c);
	cv_log(CV_LOG_WARN, CV_LOG_KMS,
	       "postgres: statement failed: %.*s (sqlstate=%s)",
	       (int)strcspn(msg, "\n"), msg, state ? state : "none");
	return -EIO;
}

static int deliver_rows(PGresult *r, kms_row_fn fn, void *arg)
{
	int nrows = PQntuples(r), ncols = PQnfields(r);
	if (ncols > KMS_MAX_COLS)
		return -EIO;
	for (int i = 0; i < nrows; i++) {
		struct kms_col cols[KMS_MAX_COLS];
		unsigned char *freed[KMS_MAX_COLS] = {0};
		int err = 0;
		for (int c = 0; c < ncols && !err; c++) {
			struct kms_col *col = &cols[c];
			col->null = PQgetisnull(r, i, c);
			col->p = (const uint8_t *)PQgetvalue(r, i, c);
			col->len = (size_t)PQgetlength(r, i, c);
			if (col->null || PQftype(r, c) != BYTEA_OID)
				continue;
			size_t len = 0;
			freed[c] = PQunescapeBytea(col->p, &len);
			if (!freed[c])
				err = -ENOMEM;
			col->p = freed[c];
			col->len = len;
		}
		if (!err)
			err = fn(arg, cols, (size_t)ncols);
		for (int c = 0; c < ncols; c++)
			if (freed[c]) {
				/* Wrapped keys only, but keep the heap clean.
				 */
				memset(freed[c], 0, cols[c].len);
				PQfreemem(freed[c]);
			}
		if (err)
			return err;
	}
	return 0;
}

static int pg_query(void *arg, const char *sql, const struct kms_param *p,
		    size_t n, kms_row_fn fn, void *fn_arg)
{
	PGconn *c = arg;
	const char *values[KMS_MAX_PARAMS];
	int lengths[KMS_MAX_PARAMS], formats[KMS_MAX_PARAMS];
	char ints[KMS_MAX_PARAMS][24];
	if (n > KMS_MAX_PARAMS)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		lengths[i] = 0;
		formats[i] = 0;
		switch (p[i].type) {
		case KMS_P_TEXT:
			values[i] = p[i].text;
			break;
		case KMS_P_INT:
			snprintf(ints[i], sizeof(ints[i]), "%lld",
				 (long long)p[i].i);
			values[i] = ints[i];
			break;
		case KMS_P_BLOB:
			values[i] = (const char *)p[i].blob;
			lengths[i] = (int)p[i].len;
			formats[i] = 1; /* binary: bytea as is */
			break;
		default:
			values[i] = NULL;
			break;
		}
	}
	PGresult *r =
		PQexecParams(c, sql, (int)n, NULL, values, lengths, formats, 0);
	int err = 0;
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
		if (fn)
			err = deliver_rows(r, fn, fn_arg);
		break;
	case PGRES_COMMAND_OK:
		break;
	default:
		err = map_result(c, r);
		break;
	}
	PQclear(r);
	return err;
}

static int pg_script(void *arg, const char *sql)
{
	PGconn *c = arg;
	/* A lost connection is re-established only at the start of a
	 * transaction: never in the middle of one. */
	if (PQstatus(c) != CONNECTION_OK && strcmp(sql, "BEGIN") == 0)
		PQreset(c);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int err = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
			  ? 0
			  : map_result(c, r);
	PQclear(r);
	return err;
}

static int pg_ping(void *arg)
{
	PGconn *c = arg;
	if (PQstatus(c) != CONNECTION_OK) {
		PQreset(c);
		if (PQstatus(c) != CONNECTION_OK)
			return -EIO;
		cv_log(CV_LOG_INFO, CV_LOG_KMS, "postgres: reconnected");
	}
	return pg_script(c, "SELECT 1");
}

static void pg_close(void *arg)
{
	PQfinish(arg);
}

static const struct kms_backend pg_backend = {
	.name = "postgres",
	.migrations = migrations,
	.n_migrations = sizeof(migrations) / sizeof(migrations[0]),
	.begin_sql = "BEGIN",
	.migrate_lock_sql = "LOCK TABLE kms_schema IN EXCLUSIVE MODE",
	.query = pg_query,
	.script = pg_script,
	.ping = pg_ping,
	.close = pg_close,
};

int kms_pg_open(const char *conninfo, void **out,
		const struct kms_backend **ops)
{
	PGconn *c = PQconnectdb(conninfo);
	if (!c)
		return -ENOMEM;
	if (PQstatus(c) != CONNECTION_OK) {
		/* libpq's message names host and database, not the password. */
		const char *m = PQerrorMessage(c);
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "postgres: cannot connect: %.*s", (int)strcspn(m, "\n"),
		       m);
		PQfinish(c);
		return -EIO;
	}
	PQsetNoticeProcessor(c, quiet_notices, NULL);
	int err = pg_script(c, "SET client_min_messages = warning");
	if (err) {
		PQfinish(c);
		return err;
	}
	*out = c;
	*ops = &pg_backend;
	return 0;
}
