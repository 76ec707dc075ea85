/*
 * conclave-kms storage: rooms, their members, the room's EKT keys and the
 * append-only audit log, on SQLite (embedded, default) or PostgreSQL.
 *
 * Identities: every member and actor id handed to this API is already an
 * obfuscated identity (a random id from the identity service, e.g. a UUID),
 * never a name, e-mail address or phone number: ids holding '@', blanks or
 * control characters are refused with -EINVAL.
 *
 * Keys at rest: every key row holds the EKT key wrapped (AES-256-GCM) with
 * the KMS master key, bound to its room, key URI and epoch (the AAD), so a
 * row copied onto another room or epoch does not unwrap. Clear keys exist
 * only in memory, in struct cv_secret.
 *
 * Audit: every key access (granted or denied) and every membership or key
 * change writes one audit row in the same transaction as the change. The
 * code never updates or deletes audit rows and the schema refuses it (a
 * trigger on both backends, revoked privileges on PostgreSQL).
 *
 * Thread: a store may be used from any thread; calls are serialised by the
 * store's own mutex (which guards the one database connection). Calls block
 * on database I/O: never call them from a media worker.
 */
#ifndef CONCLAVE_KMS_STORE_H
#define CONCLAVE_KMS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclave/secret.h"

/* Longest room URI, key URI or id accepted, without the NUL. */
#define CV_KMS_URI_MAX 255
#define CV_KMS_ID_MAX  64
/* Bytes of the master key (AES-256). */
#define CV_KMS_MASTER_KEY_BYTES 32
/* Highest schema version this code knows (see docs/kms.md). */
#define CV_KMS_SCHEMA_VERSION 1

struct cv_kms_store;

struct cv_kms_store_opts {
	/* "postgres://..." or "postgresql://..." (libpq URI), else a SQLite
	 * file path, optionally prefixed "sqlite:". Borrowed. */
	const char *database;
	/* CV_KMS_MASTER_KEY_BYTES bytes; borrowed, copied. */
	const struct cv_secret *master_key;
	/* Prefix of key URIs, e.g. "kms://kms.example.com": a key's URI is
	 * "<base>/keys/<32 hex digits>". Borrowed, copied. */
	const char *key_uri_base;
	/* Length of EKT keys: 16 (AES-128, default when 0) or 32. */
	size_t key_bytes;
	/* Wall clock in ms since the epoch; NULL = the system clock (tests
	 * inject one). */
	uint64_t (*now_ms)(void *arg);
	void *clock_arg;
};

/*
 * Connects to the database, applies the schema migrations that are missing
 * (each in its own transaction; idempotent; refused with CV_EUNSUPP when
 * the database is newer than this code) and returns the store in *out
 * (written on success only). Errors: -EINVAL (options), -EIO (cannot
 * open or connect), CV_EUNSUPP, -ENOMEM. Thread: any.
 */
int cv_kms_store_open(struct cv_kms_store **out,
		      const struct cv_kms_store_opts *opts);

/* Closes the connection and wipes the master key. NULL is fine. */
void cv_kms_store_close(struct cv_kms_store *s);

/* "sqlite" or "postgres". */
const char *cv_kms_store_backend(const struct cv_kms_store *s);

/* The database's schema version (after migrations), or a negative errno. */
int cv_kms_store_schema_version(struct cv_kms_store *s);

/* A round trip to the database (health check; reconnects PostgreSQL if the
 * connection was lost). 0 or -EIO. */
int cv_kms_store_ping(struct cv_kms_store *s);

/*
 * Creates a room and its first key (epoch 0); audits "room.create" and
 * "key.create". `actor`, `room_uri` borrowed. *epoch_out (may be NULL) gets
 * 0. Errors: -EINVAL, -EEXIST (room exists), -EIO, CV_ECRYPTO.
 */
int cv_kms_store_create_room(struct cv_kms_store *s, const char *actor,
			     const char *room_uri, uint32_t *epoch_out);

/*
 * Creates a room, its first key (epoch 0) and makes `member` (usually the
 * creator, i.e. `actor`) its first member, all in one transaction: either
 * the room exists with that member or nothing changed. Audits
 * "room.create", "key.create" and "member.add" (actor `actor`); a room
 * that exists already is refused and audited ("room.create" denied, "room
 * exists"). `actor`, `room_uri`, `member` borrowed. *epoch_out (may be
 * NULL) gets 0. Errors: -EINVAL, -EEXIST, -EIO, CV_ECRYPTO.
 */
int cv_kms_store_create_room_with_member(struct cv_kms_store *s,
					 const char *actor,
					 const char *room_uri,
					 const char *member,
					 uint32_t *epoch_out);

/*
 * Makes `member` a member of the room (no key change: a new member may
 * fetch the current key); audits "member.add". *epoch_out (may be NULL)
 * gets the room's current key epoch. Errors: -EINVAL, -ENOENT (no room),
 * -EEXIST (already a member), -EIO.
 */
int cv_kms_store_add_member(struct cv_kms_store *s, const char *actor,
			    const char *room_uri, const char *member,
			    uint32_t *epoch_out);

/*
 * Removes `member` and rotates the room's key, all in one transaction: the
 * current key is retired, a new key (epoch + 1) becomes current. Audits
 * "member.remove" and "key.rotate". *epoch_out (may be NULL) gets the new
 * epoch. Errors: -EINVAL, -ENOENT (no room, or not a member), -EIO,
 * CV_ECRYPTO.
 */
int cv_kms_store_remove_member(struct cv_kms_store *s, const char *actor,
			       const char *room_uri, const char *member,
			       uint32_t *epoch_out);

/*
 * Whether `member` is a current member of the room: 1 yes, 0 no (also when
 * the room does not exist). Not audited: callers that refuse something
 * because of the answer audit the refusal (cv_kms_store_audit_refusal).
 * Strings borrowed. Errors: -EINVAL (bad id or URI), -EIO.
 */
int cv_kms_store_is_member(struct cv_kms_store *s, const char *room_uri,
			   const char *member);

/*
 * Writes one denied audit row for a refusal decided outside the store (a
 * bad KMS token, a replayed request, a node certificate the Key
 * Distributor does not know), in a transaction of its own. `actor`: an id
 * as cv_kms_id_valid() wants, or "-" when nobody is known; `action`: a
 * dotted name ("channel.open", "node.connect"; 1..32 printable
 * characters, no blank); `room`: the room URI, or NULL / "" when none (the
 * row's object is the room too); `reason`: short text for operators
 * (1..128 printable characters, never a key, token or clear identity).
 * All borrowed. Errors: -EINVAL, -EIO. Thread: any (blocks on the
 * database).
 */
int cv_kms_store_audit_refusal(struct cv_kms_store *s, const char *actor,
			       const char *action, const char *room,
			       const char *reason);

/*
 * Writes one audit row, granted or denied, for a decision taken outside
 * the store (an endpoint registered over the channel, hop keys the Key
 * Distributor sent a node), in a transaction of its own. Arguments as
 * cv_kms_store_audit_refusal(); `object` (NULL / "" = the room): what the
 * decision was about, e.g. an association id in hex (1..255 printable
 * characters, no blank); `reason` may be "" for a granted row. Errors:
 * -EINVAL, -EIO. Thread: any (blocks on the database).
 */
int cv_kms_store_audit_event(struct cv_kms_store *s, const char *actor,
			     const char *action, const char *room,
			     const char *object, bool granted,
			     const char *reason);

/* A key handed out: the clear key lives in `key` (wipe it with
 * cv_kms_key_wipe()). */
struct cv_kms_key {
	char uri[CV_KMS_URI_MAX + 1];
	uint32_t epoch;
	/* The RFC 8870 section 4.1 SPI the key travels under: 15 bits,
	 * epoch mod 2^15. */
	uint16_t spi;
	uint64_t created_ms;
	struct cv_secret key;
};

/* Wipes the key bytes and clears the record. */
void cv_kms_key_wipe(struct cv_kms_key *k);

/*
 * The room's current key for `member`, who fetches it for themself (the
 * member is the actor). Audits "key.get" granted, or denied with a reason
 * ("no such room", "not a member") and then returns CV_EAUTH: the caller
 * cannot tell a missing room from a refused one. *out is written on
 * success only. Errors: -EINVAL, CV_EAUTH, -EIO, CV_EINTEGRITY (the row
 * does not unwrap with the master key: tampered, or another master key).
 */
int cv_kms_store_get_current_key(struct cv_kms_store *s, const char *room_uri,
				 const char *member, struct cv_kms_key *out);

/*
 * A key by its URI (a current or retired one), for a current member of its
 * room. Audits "key.get" granted or denied like the call above; errors the
 * same.
 */
int cv_kms_store_get_key(struct cv_kms_store *s, const char *key_uri,
			 const char *member, struct cv_kms_key *out);

/* One audit row; strings borrowed for the callback only ("" when unset). */
struct cv_kms_audit_row {
	int64_t id; /* increasing: the order rows were written in */
	uint64_t time_ms;
	const char *actor;
	const char *action; /* room.create, member.add, key.get, ... */
	const char *room;   /* room URI */
	const char *object; /* key URI, member id or room URI */
	bool granted;
	const char *reason;
};

/* Return non-zero to stop the listing (that value is returned). */
typedef int (*cv_kms_audit_fn)(void *arg, const struct cv_kms_audit_row *row);

struct cv_kms_audit_filter {
	const char *room;  /* NULL or "": every room */
	uint64_t since_ms; /* rows with time_ms >= since_ms */
	int64_t after_id;  /* rows with id > after_id (paging) */
	size_t limit;	   /* 0 = 1000 */
};

/*
 * Calls fn for each audit row matching `f` (borrowed; NULL = all), oldest
 * first. Returns 0, fn's non-zero value, or -EIO. Listing is itself not
 * audited (the admin API is the operator's).
 */
int cv_kms_store_list_audit(struct cv_kms_store *s,
			    const struct cv_kms_audit_filter *f,
			    cv_kms_audit_fn fn, void *arg);

/* True when `id` is acceptable as an obfuscated member or actor id. */
bool cv_kms_id_valid(const char *id);

#endif
