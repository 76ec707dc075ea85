/*
 * Test helper for the conclave-kms integration test: acts on the daemon's
 * database with the daemon's own configuration (same master key file),
 * standing in for the client-KMS channel that does not exist yet.
 *
 *   kms_fixture --config FILE seed ROOM
 *       creates ROOM, adds two members, lets both fetch the key, refuses a
 *       non-member, removes one member (rotation)
 *   kms_fixture --config FILE key ROOM MEMBER
 *       prints "<epoch> <key uri> <key id>" of the member's current key
 *       (the id is cv_secret_id(): never the key itself)
 */
#include <stdio.h>
#include <string.h>

#include "conclave/err.h"
#include "conclave/log.h"
#include "kms/config.h"
#include "kms/files.h"
#include "kms/store.h"

static int open_store(const char *conf, struct cv_kms_store **s,
		      struct cv_secret *master)
{
	struct cv_kms_config c;
	char err[256], db[4096], mk[4096], base[300];
	if (cv_kms_config_init(&c) ||
	    cv_kms_config_load_file(&c, conf, err, sizeof(err))) {
		fprintf(stderr, "kms_fixture: config: %s\n", err);
		cv_kms_config_fini(&c);
		return 1;
	}
	cv_kms_config_path(&c, CV_KMS_CFG_DATABASE, db, sizeof(db));
	cv_kms_config_path(&c, CV_KMS_CFG_MASTER_KEY_FILE, mk, sizeof(mk));
	snprintf(base, sizeof(base), "kms://%s",
		 cv_kms_config_str(&c, CV_KMS_CFG_NAME));
	int rc = cv_kms_master_key_load(mk, false, master);
	struct cv_kms_store_opts o = {
		.database = db,
		.master_key = master,
		.key_uri_base = base,
		.key_bytes =
			(size_t)cv_kms_config_int(&c, CV_KMS_CFG_KEY_BYTES),
	};
	if (!rc)
		rc = cv_kms_store_open(s, &o);
	cv_kms_config_fini(&c);
	if (rc)
		fprintf(stderr, "kms_fixture: open: %s\n", cv_strerror(rc));
	return rc ? 1 : 0;
}

static int seed(struct cv_kms_store *s, const char *room)
{
	struct cv_kms_key k;
	int bad = 0;
	bad |= cv_kms_store_create_room(s, "operator-1", room, NULL) != 0;
	bad |= cv_kms_store_add_member(s, "operator-1", room, "member-a",
				       NULL) != 0;
	bad |= cv_kms_store_add_member(s, "operator-1", room, "member-b",
				       NULL) != 0;
	bad |= cv_kms_store_get_current_key(s, room, "member-a", &k) != 0;
	cv_kms_key_wipe(&k);
	bad |= cv_kms_store_get_current_key(s, room, "member-b", &k) != 0;
	cv_kms_key_wipe(&k);
	bad |= cv_kms_store_get_current_key(s, room, "outsider-x", &k) !=
	       CV_EAUTH;
	uint32_t epoch = 0;
	bad |= cv_kms_store_remove_member(s, "operator-1", room, "member-b",
					  &epoch) != 0;
	bad |= epoch != 1;
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[1], "--config") != 0) {
		fprintf(stderr, "usage: kms_fixture --config FILE seed ROOM | "
				"key ROOM MEMBER\n");
		return 2;
	}
	cv_log_set_level_all(CV_LOG_WARN);
	struct cv_kms_store *s = NULL;
	struct cv_secret master;
	cv_secret_init(&master);
	if (open_store(argv[2], &s, &master))
		return 1;
	int rc = 2;
	if (!strcmp(argv[3], "seed")) {
		rc = seed(s, argv[4]);
	} else if (!strcmp(argv[3], "key") && argc > 5) {
		struct cv_kms_key k;
		rc = cv_kms_store_get_current_key(s, argv[4], argv[5], &k);
		if (!rc) {
			char id[CV_SECRET_ID_SIZE];
			cv_secret_id(&k.key, id);
			printf("%u %s %s\n", k.epoch, k.uri, id);
			cv_kms_key_wipe(&k);
		} else {
			fprintf(stderr, "kms_fixture: key: %s\n",
				cv_strerror(rc));
			rc = 1;
		}
	}
	cv_kms_store_close(s);
	cv_secret_wipe(&master);
	return rc;
}
