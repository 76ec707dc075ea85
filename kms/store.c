/*
 * The KMS store: membership, key rotation, key wrapping and the audit log,
 * written once over the backend interface of store_priv.h.
 *
 * Every public operation is one database transaction that includes its
 * audit rows: either the change and its audit row are both stored, or
 * neither is. A refused request still leaves its (denied) audit row: the
 * refusal is committed, the requested change is not.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conclave/clock.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/store.h"
#include "kms/store_priv.h"

/* Wrapped key layout: version (1) || nonce (12) || ciphertext || tag (16). */
#define WRAP_VERSION	 1
#define WRAP_NONCE_BYTES 12
#define WRAP_TAG_BYTES	 16
#define WRAP_MAX_BYTES	 (1 + WRAP_NONCE_BYTES + 32 + WRAP_TAG_BYTES)
#define AAD_MAX		 (32 + 2 * (CV_KMS_URI_MAX + 1) + 4)

/* RFC 8870 section 4.1: the SPI is 15 bits. */
#define SPI_MASK 0x7fff

struct cv_kms_store {
	pthread_mutex_t lock; /* guards db: one statement at a time */
	void *db;
	const struct kms_backend *ops;
	struct cv_secret master;
	char key_uri_base[CV_KMS_URI_MAX + 1];
	size_t key_bytes;
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
	int schema_version;
};

bool cv_kms_id_valid(const char *id)
{
	size_t len = id ? strlen(id) : 0;
	if (len == 0 || len > CV_KMS_ID_MAX)
		return false;
	/* Printable ASCII without blanks; '@' would let an e-mail address
	 * (a real identity) into the tables. */
	for (size_t i = 0; i < len; i++)
		if (id[i] <= 0x20 || id[i] >= 0x7f || id[i] == '@')
			return false;
	return true;
}

static bool uri_valid(const char *uri)
{
	size_t len = uri ? strlen(uri) : 0;
	if (len == 0 || len > CV_KMS_URI_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (uri[i] <= 0x20 || uri[i] >= 0x7f)
			return false;
	return true;
}

static uint64_t now(struct cv_kms_store *s)
{
	return s->now_ms ? s->now_ms(s->clock_arg) : cv_clock_wall_ms();
}

static int64_t col_i64(const struct kms_col *c)
{
	return c->null ? 0 : strtoll((const char *)c->p, NULL, 10);
}

/* Row callbacks. */
static int one_i64(void *arg, const struct kms_col *cols, size_t n)
{
	if (n < 1)
		return -EIO;
	*(int64_t *)arg = col_i64(&cols[0]);
	return 1; /* first row only */
}

static int query_i64(struct cv_kms_store *s, const char *sql,
		     const struct kms_param *p, size_t n, int64_t *out)
{
	int err = s->ops->query(s->db, sql, p, n, one_i64, out);
	if (err == 1)
		return 0;
	return err ? err : -ENOENT;
}

static int tx_begin(struct cv_kms_store *s)
{
	return s->ops->script(s->db, s->ops->begin_sql);
}

static int tx_commit(struct cv_kms_store *s)
{
	return s->ops->script(s->db, "COMMIT");
}

static void tx_rollback(struct cv_kms_store *s)
{
	s->ops->script(s->db, "ROLLBACK");
}

static int audit(struct cv_kms_store *s, uint64_t t, const char *actor,
		 const char *action, const char *room, const char *object,
		 bool granted, const char *reason)
{
	struct kms_param p[] = {
		KMS_INT(t),
		KMS_TEXT(actor),
		KMS_TEXT(action),
		KMS_TEXT(room ? room : ""),
		KMS_TEXT(object ? object : ""),
		KMS_INT(granted ? 1 : 0),
		KMS_TEXT(reason ? reason : ""),
	};
	return s->ops->query(s->db,
			     "INSERT INTO audit (time_ms, actor, action, room,"
			     " object, granted, reason)"
			     " VALUES ($1, $2, $3, $4, $5, $6, $7)",
			     p, 7, NULL, NULL);
}

/* A denial in a transaction of its own (the request changed nothing). */
static int audit_denied(struct cv_kms_store *s, const char *actor,
			const char *action, const char *room,
			const char *object, const char *reason)
{
	int err = tx_begin(s);
	if (err)
		return err;
	err = audit(s, now(s), actor, action, room, object, false, reason);
	if (!err)
		err = tx_commit(s);
	if (err)
		tx_rollback(s);
	char r[17];
	cv_log_obfuscate(room ? room : "", room ? strlen(room) : 0, r);
	cv_log(CV_LOG_INFO, CV_LOG_KMS, "%s denied: %s (room=%s)", action,
	       reason, r);
	return err;
}

/* ---- key wrapping ------------------------------------------------------ */

static size_t make_aad(uint8_t *aad, const char *room_uri, const char *key_uri,
		       uint32_t epoch)
{
	static const char label[] = "conclave-kms key v1";
	size_t n = 0, l;
	memcpy(aad + n, label, sizeof(label)); /* with its NUL */
	n += sizeof(label);
	l = strlen(room_uri) + 1;
	memcpy(aad + n, room_uri, l);
	n += l;
	l = strlen(key_uri) + 1;
	memcpy(aad + n, key_uri, l);
	n += l;
	aad[n++] = (uint8_t)(epoch >> 24);
	aad[n++] = (uint8_t)(epoch >> 16);
	aad[n++] = (uint8_t)(epoch >> 8);
	aad[n++] = (uint8_t)epoch;
	return n;
}

/*
 * AES-256-GCM under the master key with a random 96-bit nonce; the AAD
 * binds the wrapped key to its room, URI and epoch.
 */
static int wrap_key(struct cv_kms_store *s, const struct cv_secret *key,
		    const char *room_uri, const char *key_uri, uint32_t epoch,
		    uint8_t *out, size_t *out_len)
{
	uint8_t aad[AAD_MAX];
	size_t aad_len = make_aad(aad, room_uri, key_uri, epoch);
	size_t klen = cv_secret_len(key);
	int err = CV_ECRYPTO, n = 0;
	out[0] = WRAP_VERSION;
	if (RAND_bytes(out + 1, WRAP_NONCE_BYTES) != 1)
		return CV_ECRYPTO;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	uint8_t *ct = out + 1 + WRAP_NONCE_BYTES;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL,
			       cv_secret_data(&s->master), out + 1) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n, cv_secret_data(key), (int)klen) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, WRAP_TAG_BYTES,
				ct + klen) != 1)
		goto out;
	*out_len = 1 + WRAP_NONCE_BYTES + klen + WRAP_TAG_BYTES;
	err = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return err;
}

static int unwrap_key(struct cv_kms_store *s, const uint8_t *in, size_t len,
		      const char *room_uri, const char *key_uri, uint32_t epoch,
		      struct cv_secret *key)
{
	if (len < 1 + WRAP_NONCE_BYTES + WRAP_TAG_BYTES + 16 ||
	    len > WRAP_MAX_BYTES || in[0] != WRAP_VERSION)
		return CV_EINTEGRITY;
	size_t klen = len - 1 - WRAP_NONCE_BYTES - WRAP_TAG_BYTES;
	uint8_t aad[AAD_MAX], clear[32];
	size_t aad_len = make_aad(aad, room_uri, key_uri, epoch);
	const uint8_t *ct = in + 1 + WRAP_NONCE_BYTES;
	uint8_t tag[WRAP_TAG_BYTES];
	memcpy(tag, ct + klen, sizeof(tag));
	int err = CV_EINTEGRITY, n = 0;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL,
			       cv_secret_data(&s->master), in + 1) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    EVP_DecryptUpdate(c, clear, &n, ct, (int)klen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, WRAP_TAG_BYTES, tag) !=
		    1 ||
	    EVP_DecryptFinal_ex(c, clear + n, &n) != 1)
		goto out;
	err = cv_secret_set(key, clear, klen);
out:
	OPENSSL_cleanse(clear, sizeof(clear));
	EVP_CIPHER_CTX_free(c);
	return err;
}

/* Creates, wraps and inserts the room's key of `epoch`; audits it. */
static int insert_key(struct cv_kms_store *s, uint64_t t, const char *actor,
		      int64_t room_id, const char *room_uri, uint32_t epoch,
		      const char *action)
{
	uint8_t rnd[16], wrapped[WRAP_MAX_BYTES];
	char uri[CV_KMS_URI_MAX + 1];
	size_t wlen = 0;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return CV_ECRYPTO;
	int n = snprintf(uri, sizeof(uri), "%s/keys/", s->key_uri_base);
	for (size_t i = 0; i < sizeof(rnd) && n > 0; i++)
		n += snprintf(uri + n, sizeof(uri) - (size_t)n, "%02x", rnd[i]);
	if (n <= 0 || (size_t)n >= sizeof(uri))
		return -EINVAL;
	struct cv_secret key;
	cv_secret_init(&key);
	int err = cv_secret_random(&key, s->key_bytes);
	if (!err)
		err = wrap_key(s, &key, room_uri, uri, epoch, wrapped, &wlen);
	cv_secret_wipe(&key);
	if (err)
		return err;
	struct kms_param p[] = {
		KMS_INT(room_id),	 KMS_TEXT(uri),
		KMS_INT(epoch),		 KMS_INT(epoch & SPI_MASK),
		KMS_BLOB(wrapped, wlen), KMS_INT(t),
	};
	err = s->ops->query(s->db,
			    "INSERT INTO keys (room_id, uri, epoch, spi,"
			    " wrapped, created_ms)"
			    " VALUES ($1, $2, $3, $4, $5, $6)",
			    p, 6, NULL, NULL);
	if (!err)
		err = audit(s, t, actor, action, room_uri, uri, true, "");
	return err;
}

static int room_id_of(struct cv_kms_store *s, const char *room_uri, int64_t *id)
{
	struct kms_param p[] = {KMS_TEXT(room_uri)};
	return query_i64(s, "SELECT id FROM rooms WHERE uri = $1", p, 1, id);
}

static int current_epoch(struct cv_kms_store *s, int64_t room_id,
			 int64_t *epoch)
{
	struct kms_param p[] = {KMS_INT(room_id)};
	return query_i64(s,
			 "SELECT epoch FROM keys WHERE room_id = $1"
			 " AND retired_ms IS NULL",
			 p, 1, epoch);
}

/* ---- open / close ------------------------------------------------------ */

static int migrate_one(struct cv_kms_store *s, bool *done)
{
	int64_t v = 0;
	int err = tx_begin(s);
	if (err)
		return err;
	if (s->ops->migrate_lock_sql &&
	    (err = s->ops->script(s->db, s->ops->migrate_lock_sql)))
		goto fail;
	if ((err = query_i64(s,
			     "SELECT COALESCE(MAX(version), 0)"
			     " FROM kms_schema",
			     NULL, 0, &v)))
		goto fail;
	if (v > (int64_t)s->ops->n_migrations) {
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "store: database schema is newer than this kms "
		       "(version=%lld known=%zu)",
		       (long long)v, s->ops->n_migrations);
		err = CV_EUNSUPP;
		goto fail;
	}
	s->schema_version = (int)v;
	if (v == (int64_t)s->ops->n_migrations) {
		*done = true;
		tx_rollback(s);
		return 0;
	}
	struct kms_param p[] = {KMS_INT(v + 1), KMS_INT(now(s))};
	if ((err = s->ops->script(s->db, s->ops->migrations[v])) ||
	    (err = s->ops->query(s->db,
				 "INSERT INTO kms_schema (version, applied_ms)"
				 " VALUES ($1, $2)",
				 p, 2, NULL, NULL)) ||
	    (err = tx_commit(s)))
		goto fail;
	s->schema_version = (int)v + 1;
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "store: schema migrated (backend=%s "
	       "version=%d)",
	       s->ops->name, s->schema_version);
	return 0;
fail:
	tx_rollback(s);
	return err;
}

static int migrate(struct cv_kms_store *s)
{
	int err =
		s->ops->script(s->db, "CREATE TABLE IF NOT EXISTS kms_schema ("
				      " version INTEGER PRIMARY KEY,"
				      " applied_ms BIGINT NOT NULL)");
	bool done = false;
	while (!err && !done)
		err = migrate_one(s, &done);
	return err;
}

static bool is_postgres(const char *db)
{
	return strncmp(db, "postgres://", 11) == 0 ||
	       strncmp(db, "postgresql://", 13) == 0;
}

int cv_kms_store_open(struct cv_kms_store **out,
		      const struct cv_kms_store_opts *o)
{
	if (!o || !o->database || !o->database[0] || !o->master_key ||
	    cv_secret_len(o->master_key) != CV_KMS_MASTER_KEY_BYTES ||
	    !uri_valid(o->key_uri_base) ||
	    strlen(o->key_uri_base) > CV_KMS_URI_MAX - 40 ||
	    (o->key_bytes != 0 && o->key_bytes != 16 && o->key_bytes != 32))
		return -EINVAL;
	struct cv_kms_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	cv_secret_copy(&s->master, o->master_key);
	snprintf(s->key_uri_base, sizeof(s->key_uri_base), "%s",
		 o->key_uri_base);
	s->key_bytes = o->key_bytes ? o->key_bytes : 16;
	s->now_ms = o->now_ms;
	s->clock_arg = o->clock_arg;
	int err;
	if (is_postgres(o->database)) {
		err = kms_pg_open(o->database, &s->db, &s->ops);
	} else {
		const char *path = o->database;
		if (strncmp(path, "sqlite:", 7) == 0)
			path += 7;
		err = kms_sqlite_open(path, &s->db, &s->ops);
	}
	if (!err)
		err = migrate(s);
	if (err) {
		cv_kms_store_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void cv_kms_store_close(struct cv_kms_store *s)
{
	if (!s)
		return;
	if (s->db)
		s->ops->close(s->db);
	cv_secret_wipe(&s->master);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *cv_kms_store_backend(const struct cv_kms_store *s)
{
	return s->ops->name;
}

int cv_kms_store_schema_version(struct cv_kms_store *s)
{
	int64_t v = 0;
	pthread_mutex_lock(&s->lock);
	int err = query_i64(s,
			    "SELECT COALESCE(MAX(version), 0)"
			    " FROM kms_schema",
			    NULL, 0, &v);
	pthread_mutex_unlock(&s->lock);
	return err ? err : (int)v;
}

int cv_kms_store_ping(struct cv_kms_store *s)
{
	pthread_mutex_lock(&s->lock);
	int err = s->ops->ping(s->db);
	pthread_mutex_unlock(&s->lock);
	return err ? -EIO : 0;
}

/* ---- rooms and members ------------------------------------------------- */

static int create_room_tx(struct cv_kms_store *s, const char *actor,
			  const char *room_uri)
{
	uint64_t t = now(s);
	int64_t room_id = 0;
	struct kms_param p[] = {KMS_TEXT(room_uri), KMS_INT(t)};
	int err = query_i64(s,
			    "INSERT INTO rooms (uri, created_ms)"
			    " VALUES ($1, $2) RETURNING id",
			    p, 2, &room_id);
	if (!err)
		err = audit(s, t, actor, "room.create", room_uri, room_uri,
			    true, "");
	if (!err)
		err = insert_key(s, t, actor, room_id, room_uri, 0,
				 "key.create");
	return err;
}

int cv_kms_store_create_room(struct cv_kms_store *s, const char *actor,
			     const char *room_uri, uint32_t *epoch_out)
{
	if (!cv_kms_id_valid(actor) || !uri_valid(room_uri))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (!err) {
		err = create_room_tx(s, actor, room_uri);
		if (!err)
			err = tx_commit(s);
		if (err)
			tx_rollback(s);
	}
	if (err == -EEXIST)
		audit_denied(s, actor, "room.create", room_uri, room_uri,
			     "room exists");
	pthread_mutex_unlock(&s->lock);
	if (!err && epoch_out)
		*epoch_out = 0;
	return err;
}

static int add_member_tx(struct cv_kms_store *s, const char *actor,
			 const char *room_uri, const char *member,
			 int64_t *epoch, const char **why)
{
	uint64_t t = now(s);
	int64_t room_id = 0;
	int err = room_id_of(s, room_uri, &room_id);
	if (err == -ENOENT)
		*why = "no such room";
	if (err)
		return err;
	struct kms_param p[] = {KMS_INT(room_id), KMS_TEXT(member), KMS_INT(t)};
	err = s->ops->query(s->db,
			    "INSERT INTO members (room_id, member, added_ms)"
			    " VALUES ($1, $2, $3)",
			    p, 3, NULL, NULL);
	if (err == -EEXIST)
		*why = "already a member";
	if (!err)
		err = current_epoch(s, room_id, epoch);
	if (!err)
		err = audit(s, t, actor, "member.add", room_uri, member, true,
			    "");
	return err;
}

int cv_kms_store_add_member(struct cv_kms_store *s, const char *actor,
			    const char *room_uri, const char *member,
			    uint32_t *epoch_out)
{
	if (!cv_kms_id_valid(actor) || !uri_valid(room_uri) ||
	    !cv_kms_id_valid(member))
		return -EINVAL;
	const char *why = NULL;
	int64_t epoch = 0;
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (!err) {
		err = add_member_tx(s, actor, room_uri, member, &epoch, &why);
		if (!err)
			err = tx_commit(s);
		if (err)
			tx_rollback(s);
	}
	if (why)
		audit_denied(s, actor, "member.add", room_uri, member, why);
	pthread_mutex_unlock(&s->lock);
	if (err)
		return err;
	char r[17], m[17];
	cv_log_obfuscate(room_uri, strlen(room_uri), r);
	cv_log_obfuscate(member, strlen(member), m);
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "member added (room=%s member=%s epoch=%lld)", r, m,
	       (long long)epoch);
	if (epoch_out)
		*epoch_out = (uint32_t)epoch;
	return 0;
}

int cv_kms_store_create_room_with_member(struct cv_kms_store *s,
					 const char *actor,
					 const char *room_uri,
					 const char *member,
					 uint32_t *epoch_out)
{
	if (!cv_kms_id_valid(actor) || !uri_valid(room_uri) ||
	    !cv_kms_id_valid(member))
		return -EINVAL;
	const char *why = NULL;
	int64_t epoch = 0;
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (!err) {
		err = create_room_tx(s, actor, room_uri);
		/* The room is new in this transaction: the member cannot be
		 * in it already, so a refusal here is an internal error and
		 * the whole creation is rolled back unaudited. */
		if (!err)
			err = add_member_tx(s, actor, room_uri, member, &epoch,
					    &why);
		if (!err)
			err = tx_commit(s);
		if (err)
			tx_rollback(s);
	}
	if (err == -EEXIST && !why)
		audit_denied(s, actor, "room.create", room_uri, room_uri,
			     "room exists");
	pthread_mutex_unlock(&s->lock);
	if (err)
		return err == -EEXIST && why ? -EIO : err;
	char r[17], m[17];
	cv_log_obfuscate(room_uri, strlen(room_uri), r);
	cv_log_obfuscate(member, strlen(member), m);
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "room created with its first member (room=%s member=%s)", r, m);
	if (epoch_out)
		*epoch_out = (uint32_t)epoch;
	return 0;
}

int cv_kms_store_is_member(struct cv_kms_store *s, const char *room_uri,
			   const char *member)
{
	if (!uri_valid(room_uri) || !cv_kms_id_valid(member))
		return -EINVAL;
	struct kms_param p[] = {KMS_TEXT(room_uri), KMS_TEXT(member)};
	int64_t one = 0;
	pthread_mutex_lock(&s->lock);
	int err = query_i64(s,
			    "SELECT 1 FROM members m JOIN rooms r"
			    " ON r.id = m.room_id WHERE r.uri = $1"
			    " AND m.member = $2 AND m.removed_ms IS NULL",
			    p, 2, &one);
	pthread_mutex_unlock(&s->lock);
	if (err == -ENOENT)
		return 0;
	return err ? err : 1;
}

/* Printable ASCII, 1..max characters; blanks only when `blanks`. */
static bool text_valid(const char *t, size_t max, bool blanks)
{
	size_t len = t ? strlen(t) : 0;
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (t[i] < 0x20 || t[i] >= 0x7f || (!blanks && t[i] == ' '))
			return false;
	return true;
}

int cv_kms_store_audit_refusal(struct cv_kms_store *s, const char *actor,
			       const char *action, const char *room,
			       const char *reason)
{
	if (!actor || (strcmp(actor, "-") != 0 && !cv_kms_id_valid(actor)) ||
	    !text_valid(action, 32, false) || !text_valid(reason, 128, true) ||
	    (room && room[0] && !uri_valid(room)))
		return -EINVAL;
	if (!room)
		room = "";
	pthread_mutex_lock(&s->lock);
	int err = audit_denied(s, actor, action, room, room, reason);
	pthread_mutex_unlock(&s->lock);
	if (err)
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "store: refusal not audited: %s (action=%s)",
		       cv_strerror(err), action);
	return err;
}

int cv_kms_store_audit_event(struct cv_kms_store *s, const char *actor,
			     const char *action, const char *room,
			     const char *object, bool granted,
			     const char *reason)
{
	if (!s || !actor ||
	    (strcmp(actor, "-") != 0 && !cv_kms_id_valid(actor)) ||
	    !text_valid(action, 32, false) || !reason ||
	    (reason[0] && !text_valid(reason, 128, true)) ||
	    (!granted && !reason[0]) || (room && room[0] && !uri_valid(room)) ||
	    (object && object[0] && !uri_valid(object)))
		return -EINVAL;
	if (!room)
		room = "";
	if (!object || !object[0])
		object = room;
	if (!granted) {
		pthread_mutex_lock(&s->lock);
		int err = audit_denied(s, actor, action, room, object, reason);
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (!err)
		err = audit(s, now(s), actor, action, room, object, true,
			    reason);
	if (!err)
		err = tx_commit(s);
	if (err)
		tx_rollback(s);
	pthread_mutex_unlock(&s->lock);
	if (err)
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "store: event not audited: %s (action=%s)",
		       cv_strerror(err), action);
	return err;
}

/* RFC 8871 section 6.3 / RFC 8870 section 5: when a participant leaves,
 * the EKT key changes so that it cannot read what is sent afterwards. */
static int remove_member_tx(struct cv_kms_store *s, const char *actor,
			    const char *room_uri, const char *member,
			    int64_t *epoch, const char **why)
{
	uint64_t t = now(s);
	int64_t room_id = 0, id = 0, old_epoch = 0;
	int err = room_id_of(s, room_uri, &room_id);
	if (err == -ENOENT)
		*why = "no such room";
	if (err)
		return err;
	struct kms_param pm[] = {KMS_INT(t), KMS_INT(room_id),
				 KMS_TEXT(member)};
	err = query_i64(s,
			"UPDATE members SET removed_ms = $1 WHERE room_id = $2"
			" AND member = $3 AND removed_ms IS NULL RETURNING id",
			pm, 3, &id);
	if (err == -ENOENT)
		*why = "not a member";
	if (!err)
		err = audit(s, t, actor, "member.remove", room_uri, member,
			    true, "");
	if (!err)
		err = current_epoch(s, room_id, &old_epoch);
	struct kms_param pk[] = {KMS_INT(t), KMS_INT(room_id)};
	if (!err)
		err = s->ops->query(
			s->db,
			"UPDATE keys SET retired_ms = $1"
			" WHERE room_id = $2 AND retired_ms IS NULL",
			pk, 2, NULL, NULL);
	if (!err && old_epoch >= UINT32_MAX)
		err = -EOVERFLOW;
	if (!err)
		err = insert_key(s, t, actor, room_id, room_uri,
				 (uint32_t)old_epoch + 1, "key.rotate");
	*epoch = old_epoch + 1;
	return err;
}

int cv_kms_store_remove_member(struct cv_kms_store *s, const char *actor,
			       const char *room_uri, const char *member,
			       uint32_t *epoch_out)
{
	if (!cv_kms_id_valid(actor) || !uri_valid(room_uri) ||
	    !cv_kms_id_valid(member))
		return -EINVAL;
	const char *why = NULL;
	int64_t epoch = 0;
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (!err) {
		err = remove_member_tx(s, actor, room_uri, member, &epoch,
				       &why);
		if (!err)
			err = tx_commit(s);
		if (err)
			tx_rollback(s);
	}
	if (why)
		audit_denied(s, actor, "member.remove", room_uri, member, why);
	pthread_mutex_unlock(&s->lock);
	if (err)
		return err;
	char r[17], m[17];
	cv_log_obfuscate(room_uri, strlen(room_uri), r);
	cv_log_obfuscate(member, strlen(member), m);
	cv_log(CV_LOG_INFO, CV_LOG_KMS,
	       "member removed, key rotated (room=%s member=%s epoch=%lld)", r,
	       m, (long long)epoch);
	if (epoch_out)
		*epoch_out = (uint32_t)epoch;
	return 0;
}

/* ---- key access -------------------------------------------------------- */

void cv_kms_key_wipe(struct cv_kms_key *k)
{
	cv_secret_wipe(&k->key);
	memset(k, 0, sizeof(*k));
}

/* A key row as read: columns uri, epoch, spi, wrapped, created_ms,
 * retired_ms, room uri, room id. */
struct key_row {
	bool found;
	char uri[CV_KMS_URI_MAX + 1];
	char room[CV_KMS_URI_MAX + 1];
	int64_t epoch, spi, created_ms, retired_ms, room_id;
	uint8_t wrapped[WRAP_MAX_BYTES];
	size_t wrapped_len;
};

static int read_key_row(void *arg, const struct kms_col *c, size_t n)
{
	struct key_row *k = arg;
	if (n < 8 || c[0].len > CV_KMS_URI_MAX || c[6].len > CV_KMS_URI_MAX ||
	    c[3].len > sizeof(k->wrapped))
		return -EIO;
	memcpy(k->uri, c[0].p, c[0].len);
	k->uri[c[0].len] = '\0';
	k->epoch = col_i64(&c[1]);
	k->spi = col_i64(&c[2]);
	memcpy(k->wrapped, c[3].p, c[3].len);
	k->wrapped_len = c[3].len;
	k->created_ms = col_i64(&c[4]);
	k->retired_ms = c[5].null ? -1 : col_i64(&c[5]);
	memcpy(k->room, c[6].p, c[6].len);
	k->room[c[6].len] = '\0';
	k->room_id = col_i64(&c[7]);
	k->found = true;
	return 1;
}

#define KEY_COLS                                                               \
	"SELECT k.uri, k.epoch, k.spi, k.wrapped, k.created_ms,"               \
	" k.retired_ms, r.uri, r.id FROM keys k JOIN rooms r"                  \
	" ON r.id = k.room_id "

/* The member's active membership: when it started, or -ENOENT. */
static int member_since(struct cv_kms_store *s, int64_t room_id,
			const char *member, int64_t *added_ms)
{
	struct kms_param p[] = {KMS_INT(room_id), KMS_TEXT(member)};
	return query_i64(s,
			 "SELECT added_ms FROM members WHERE room_id = $1"
			 " AND member = $2 AND removed_ms IS NULL",
			 p, 2, added_ms);
}

/*
 * Checks the member's right to the key in *k (found by the caller), unwraps
 * it into *out and audits. Returns 0, CV_EAUTH with *why set (audit left
 * to the caller), or an error.
 */
static int grant_key_tx(struct cv_kms_store *s, struct key_row *k,
			const char *member, struct cv_kms_key *out,
			const char **why)
{
	int64_t added = 0;
	int err = member_since(s, k->room_id, member, &added);
	if (err == -ENOENT) {
		*why = "not a member";
		return CV_EAUTH;
	}
	if (err)
		return err;
	/* Keys retired before the member joined stay out of reach. */
	if (k->retired_ms >= 0 && k->retired_ms < added) {
		*why = "key retired before membership";
		return CV_EAUTH;
	}
	err = unwrap_key(s, k->wrapped, k->wrapped_len, k->room, k->uri,
			 (uint32_t)k->epoch, &out->key);
	if (err) {
		*why = "key does not unwrap";
		cv_log(CV_LOG_ERROR, CV_LOG_KMS,
		       "key row does not unwrap: tampered or another master "
		       "key (epoch=%lld)",
		       (long long)k->epoch);
		return err;
	}
	err = audit(s, now(s), member, "key.get", k->room, k->uri, true, "");
	if (err)
		return err;
	snprintf(out->uri, sizeof(out->uri), "%s", k->uri);
	out->epoch = (uint32_t)k->epoch;
	out->spi = (uint16_t)k->spi;
	out->created_ms = (uint64_t)k->created_ms;
	return 0;
}

static int get_key_common(struct cv_kms_store *s, const char *sql,
			  const char *arg, const char *room_hint,
			  const char *member, struct cv_kms_key *out)
{
	struct key_row k = {0};
	struct cv_kms_key got = {0};
	const char *why = NULL;
	struct kms_param p[] = {KMS_TEXT(arg)};
	pthread_mutex_lock(&s->lock);
	int err = tx_begin(s);
	if (err)
		goto unlock;
	err = s->ops->query(s->db, sql, p, 1, read_key_row, &k);
	if (err == 1)
		err = 0;
	if (!err && !k.found) {
		why = room_hint ? "no such room" : "no such key";
		err = CV_EAUTH;
	}
	if (!err)
		err = grant_key_tx(s, &k, member, &got, &why);
	if (!err)
		err = tx_commit(s);
	if (err) {
		tx_rollback(s);
		cv_kms_key_wipe(&got);
	}
	if (why)
		audit_denied(s, member, "key.get", k.found ? k.room : room_hint,
			     k.found ? k.uri : arg, why);
unlock:
	pthread_mutex_unlock(&s->lock);
	OPENSSL_cleanse(&k, sizeof(k));
	if (!err)
		*out = got;
	OPENSSL_cleanse(&got, sizeof(got));
	return err;
}

int cv_kms_store_get_current_key(struct cv_kms_store *s, const char *room_uri,
				 const char *member, struct cv_kms_key *out)
{
	if (!uri_valid(room_uri) || !cv_kms_id_valid(member) || !out)
		return -EINVAL;
	return get_key_common(s,
			      KEY_COLS "WHERE r.uri = $1"
				       " AND k.retired_ms IS NULL",
			      room_uri, room_uri, member, out);
}

int cv_kms_store_get_key(struct cv_kms_store *s, const char *key_uri,
			 const char *member, struct cv_kms_key *out)
{
	if (!uri_valid(key_uri) || !cv_kms_id_valid(member) || !out)
		return -EINVAL;
	return get_key_common(s, KEY_COLS "WHERE k.uri = $1", key_uri, NULL,
			      member, out);
}

/* ---- audit listing ----------------------------------------------------- */

struct list_ctx {
	cv_kms_audit_fn fn;
	void *arg;
};

static int list_row(void *arg, const struct kms_col *c, size_t n)
{
	struct list_ctx *l = arg;
	if (n < 8)
		return -EIO;
	struct cv_kms_audit_row row = {
		.id = col_i64(&c[0]),
		.time_ms = (uint64_t)col_i64(&c[1]),
		.actor = (const char *)c[2].p,
		.action = (const char *)c[3].p,
		.room = (const char *)c[4].p,
		.object = (const char *)c[5].p,
		.granted = col_i64(&c[6]) != 0,
		.reason = (const char *)c[7].p,
	};
	return l->fn(l->arg, &row);
}

int cv_kms_store_list_audit(struct cv_kms_store *s,
			    const struct cv_kms_audit_filter *f,
			    cv_kms_audit_fn fn, void *arg)
{
	struct cv_kms_audit_filter all = {0};
	if (!f)
		f = &all;
	if (!fn)
		return -EINVAL;
	bool by_room = f->room && f->room[0];
	size_t limit = f->limit ? f->limit : 1000;
	struct kms_param p[] = {
		KMS_INT(f->since_ms > INT64_MAX ? INT64_MAX : f->since_ms),
		KMS_INT(f->after_id),
		KMS_INT(limit > INT64_MAX ? INT64_MAX : limit),
		KMS_TEXT(by_room ? f->room : ""),
	};
	struct list_ctx l = {fn, arg};
	const char *sql =
		by_room ? "SELECT id, time_ms, actor, action, room, object,"
			  " granted, reason FROM audit WHERE time_ms >= $1"
			  " AND id > $2 AND room = $4 ORDER BY id LIMIT $3"
			: "SELECT id, time_ms, actor, action, room, object,"
			  " granted, reason FROM audit WHERE time_ms >= $1"
			  " AND id > $2 ORDER BY id LIMIT $3";
	pthread_mutex_lock(&s->lock);
	int err = s->ops->query(s->db, sql, p, by_room ? 4 : 3, list_row, &l);
	pthread_mutex_unlock(&s->lock);
	return err;
}
