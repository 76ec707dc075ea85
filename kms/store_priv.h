/*
 * The two database backends of kms/store.c behind one small interface.
 * SQL text is written once for both where it can be: parameters are `$1`,
 * `$2`, ... (the SQLite backend rewrites them to `?1`, `?2`); the schema,
 * where the dialects differ, has one text per backend.
 *
 * Values cross this interface as text (integers in decimal) or bytes
 * (blobs); a row's columns are borrowed for the row callback only.
 *
 * Thread: a backend connection is used by one thread at a time (the store
 * holds its mutex around every call).
 */
#ifndef CONCLAVE_KMS_STORE_PRIV_H
#define CONCLAVE_KMS_STORE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kms_param_type {
	KMS_P_TEXT,
	KMS_P_INT,
	KMS_P_BLOB,
	KMS_P_NULL,
};

struct kms_param {
	enum kms_param_type type;
	const char *text;    /* KMS_P_TEXT, NUL-terminated */
	const uint8_t *blob; /* KMS_P_BLOB */
	size_t len;
	int64_t i; /* KMS_P_INT */
};

#define KMS_TEXT(s) ((struct kms_param){.type = KMS_P_TEXT, .text = (s)})
#define KMS_INT(v)  ((struct kms_param){.type = KMS_P_INT, .i = (int64_t)(v)})
#define KMS_BLOB(p, n)                                                         \
	((struct kms_param){.type = KMS_P_BLOB, .blob = (p), .len = (n)})

/* Most parameters and result columns of one statement. */
#define KMS_MAX_PARAMS 12
#define KMS_MAX_COLS   12

/* One column of a result row: text columns are NUL-terminated. */
struct kms_col {
	const uint8_t *p;
	size_t len;
	bool null;
};

/* Return non-zero to stop; that value comes back from query(). */
typedef int (*kms_row_fn)(void *arg, const struct kms_col *cols, size_t n);

struct kms_backend {
	const char *name;
	/* Migration i (0-based) brings the schema to version i + 1. */
	const char *const *migrations;
	size_t n_migrations;
	/* Opens a write transaction. */
	const char *begin_sql;
	/* Run inside the migration transaction before reading the version
	 * (serialises two daemons migrating at once), or NULL. */
	const char *migrate_lock_sql;
	/*
	 * Runs one statement with parameters, calling fn (may be NULL) per
	 * result row. Returns 0, fn's value, -EEXIST (unique constraint),
	 * -EPERM (refused by a trigger or a privilege), -EIO (anything else).
	 */
	int (*query)(void *db, const char *sql, const struct kms_param *p,
		     size_t n, kms_row_fn fn, void *arg);
	/* Runs several statements without parameters. 0 or as query(). */
	int (*script)(void *db, const char *sql);
	/* 0 if the connection works, after one reconnect attempt. */
	int (*ping)(void *db);
	void (*close)(void *db);
};

/* Opens a SQLite file (created 0600 if missing). 0, -EIO or -ENOMEM. */
int kms_sqlite_open(const char *path, void **db,
		    const struct kms_backend **ops);
/* Connects with a libpq connection string or URI. 0, -EIO or -ENOMEM. */
int kms_pg_open(const char *conninfo, void **db,
		const struct kms_backend **ops);

#endif
