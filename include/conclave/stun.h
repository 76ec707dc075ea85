/*
 * STUN (RFC 8489) message parsing and writing, as much as the node's
 * ICE-lite agent (RFC 8445) and the client library need: Binding requests,
 * success and error responses, short-term credentials (MESSAGE-INTEGRITY
 * with HMAC-SHA1), FINGERPRINT, and the ICE attributes.
 *
 * Everything here works on caller-provided memory: parsing fills a value
 * view (struct cv_stun_msg) whose pointers borrow from the parsed buffer,
 * writing fills a caller buffer. Nothing allocates, locks or logs, so every
 * function may run on the packet path of any thread.
 */
#ifndef CONCLAVE_STUN_H
#define CONCLAVE_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CV_STUN_HEADER_BYTES	   20
#define CV_STUN_MAGIC_COOKIE	   0x2112A442u
#define CV_STUN_TXID_BYTES	   12
#define CV_STUN_USERNAME_MAX_BYTES 513 /* RFC 8489 section 14.3 */
#define CV_STUN_HMAC_SHA1_BYTES	   20
/* How many unknown comprehension-required attributes a view records. */
#define CV_STUN_MAX_UNKNOWN 8
/* A buffer this large always holds any message cv_ice_lite or the
 * cv_stun_build_* helpers write (the longest is a 420 error). */
#define CV_STUN_RESPONSE_MAX_BYTES 256

/* RFC 8489 section 5: the two class bits C1 C0. */
enum cv_stun_class {
	CV_STUN_REQUEST = 0,
	CV_STUN_INDICATION = 1,
	CV_STUN_SUCCESS = 2,
	CV_STUN_ERROR = 3,
};

#define CV_STUN_METHOD_BINDING 0x001

/* Attribute types (RFC 8489 section 18.3, RFC 8445 section 16.1). Types
 * 0x0000-0x7FFF are comprehension-required, 0x8000-0xFFFF optional. */
enum cv_stun_attr_type {
	CV_STUN_ATTR_MAPPED_ADDRESS = 0x0001,
	CV_STUN_ATTR_USERNAME = 0x0006,
	CV_STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
	CV_STUN_ATTR_ERROR_CODE = 0x0009,
	CV_STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
	CV_STUN_ATTR_REALM = 0x0014,
	CV_STUN_ATTR_NONCE = 0x0015,
	CV_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
	CV_STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
	CV_STUN_ATTR_USERHASH = 0x001E,
	CV_STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
	CV_STUN_ATTR_PRIORITY = 0x0024,
	CV_STUN_ATTR_USE_CANDIDATE = 0x0025,
	CV_STUN_ATTR_SOFTWARE = 0x8022,
	CV_STUN_ATTR_ALTERNATE_SERVER = 0x8023,
	CV_STUN_ATTR_FINGERPRINT = 0x8028,
	CV_STUN_ATTR_ICE_CONTROLLED = 0x8029,
	CV_STUN_ATTR_ICE_CONTROLLING = 0x802A,
};

/* Error codes this code writes (RFC 8489 section 14.8, RFC 8445 7.3.1.1). */
enum cv_stun_error_code {
	CV_STUN_ERR_BAD_REQUEST = 400,
	CV_STUN_ERR_UNAUTHORIZED = 401,
	CV_STUN_ERR_UNKNOWN_ATTRIBUTE = 420,
	CV_STUN_ERR_ROLE_CONFLICT = 487,
};

/*
 * A parsed message: a view into the buffer given to cv_stun_parse(), valid
 * while that buffer is. Only the first instance of each attribute is
 * recorded (RFC 8489 section 14); attributes after MESSAGE-INTEGRITY other
 * than FINGERPRINT are ignored (section 14.5).
 */
struct cv_stun_msg {
	const uint8_t *buf; /* the whole message */
	size_t len;	    /* 20 + the header's length field */
	uint16_t type;	    /* raw 14-bit message type */
	enum cv_stun_class cls;
	uint16_t method;
	const uint8_t *txid; /* CV_STUN_TXID_BYTES, inside buf */

	const uint8_t *username; /* not NUL-terminated; NULL when absent */
	size_t username_len;
	const uint8_t *software; /* NULL when absent */
	size_t software_len;

	bool has_priority;
	uint32_t priority;
	bool use_candidate;
	bool has_ice_controlling;
	bool has_ice_controlled;
	uint64_t tiebreaker; /* of whichever of the two came first */

	bool has_xor_mapped;
	struct sockaddr_storage xor_mapped; /* de-xored, AF_INET or AF_INET6 */

	bool has_error_code;
	uint16_t error_code;   /* 300..699 */
	const uint8_t *reason; /* UTF-8, not NUL-terminated */
	size_t reason_len;

	/* Offsets of the attribute headers from buf; 0 when absent (an
	 * attribute never starts at 0). */
	size_t integrity_offset;
	size_t fingerprint_offset;

	/* Unknown comprehension-required attribute types, for a 420 answer;
	 * n_unknown counts them all, unknown[] keeps the first few. */
	uint16_t unknown[CV_STUN_MAX_UNKNOWN];
	size_t n_unknown;
};

/* One attribute as the iterator yields it. */
struct cv_stun_attr {
	uint16_t type;
	uint16_t len;	      /* value length without padding */
	const uint8_t *value; /* inside the message */
	size_t offset; /* of the attribute header from the message start */
};

/* Walks the attributes of a message whose header was checked (by
 * cv_stun_parse). Plain value; initialise with cv_stun_attr_iter_init. */
struct cv_stun_attr_iter {
	const uint8_t *buf;
	size_t len;
	size_t off;
};

/*
 * Quick demultiplexing test (RFC 7983 section 7: first byte 0..3) plus the
 * RFC 8489 magic cookie and minimum length. True means "hand it to the STUN
 * parser", not "valid". buf: borrowed, may be NULL when len is 0.
 * Thread: any.
 */
bool cv_stun_is_stun(const uint8_t *buf, size_t len);

/*
 * Parses and checks the header and every attribute's framing and, for the
 * attributes listed in struct cv_stun_msg, its value. Does not verify
 * MESSAGE-INTEGRITY nor FINGERPRINT (see below). buf: borrowed and pointed
 * into by *msg. Returns 0, or CV_EPARSE (msg then undefined). Thread: any.
 */
int cv_stun_parse(struct cv_stun_msg *msg, const uint8_t *buf, size_t len);

/*
 * Attribute iteration over a parsed message (or any buffer whose header
 * cv_stun_parse accepted). cv_stun_attr_next returns 1 and fills *attr,
 * 0 at the end, or CV_EPARSE on a truncated attribute. Thread: any.
 */
void cv_stun_attr_iter_init(struct cv_stun_attr_iter *it,
			    const struct cv_stun_msg *msg);
int cv_stun_attr_next(struct cv_stun_attr_iter *it, struct cv_stun_attr *attr);

/*
 * Verifies MESSAGE-INTEGRITY (RFC 8489 section 14.5) with key: the
 * short-term password bytes (the ICE pwd, section 9.1.1), or the 16-byte
 * MD5 long-term key. key: borrowed. Returns 0, -ENOENT when the message has
 * no MESSAGE-INTEGRITY, CV_EINTEGRITY on mismatch. Constant-time compare.
 * Thread: any.
 */
int cv_stun_check_integrity(const struct cv_stun_msg *msg, const uint8_t *key,
			    size_t key_len);

/*
 * Verifies FINGERPRINT (RFC 8489 section 14.7). Returns 0, -ENOENT when
 * absent, CV_EINTEGRITY on mismatch. Thread: any.
 */
int cv_stun_check_fingerprint(const struct cv_stun_msg *msg);

/*
 * From a Binding request, the part of USERNAME before the first ':' (the
 * receiver's ufrag, RFC 8445 section 7.2.2), without checking integrity:
 * lets a worker route a request from an unknown address to the transport
 * owning that ufrag. *ufrag points into buf (borrowed). Returns 0,
 * CV_EPARSE (not a well-formed STUN message), -ENOENT (not a Binding
 * request, no USERNAME or no ':'). Thread: any.
 */
int cv_stun_local_ufrag(const uint8_t *buf, size_t len, const uint8_t **ufrag,
			size_t *ufrag_len);

/*
 * Message writer. Every put returns 0 or -ENOBUFS; after a failure the
 * writer stays failed and later calls fail too, so a caller may check only
 * cv_stun_writer_finish. Attributes are padded with pad_byte (0 as RFC 8489
 * section 14 wants; tests set 0x20 to regenerate RFC 5769 messages).
 */
struct cv_stun_writer {
	uint8_t *buf; /* borrowed, caller-owned */
	size_t cap;
	size_t len;
	int err;
	uint8_t pad_byte;
};

/* Starts a message of the given class and method; txid (12 bytes) is
 * borrowed and copied. Thread: any. */
void cv_stun_writer_init(struct cv_stun_writer *w, uint8_t *buf, size_t cap,
			 enum cv_stun_class cls, uint16_t method,
			 const uint8_t *txid);
/* Appends an attribute with an opaque value (value may be NULL if len 0). */
int cv_stun_put_attr(struct cv_stun_writer *w, uint16_t type, const void *value,
		     size_t len);
int cv_stun_put_u32(struct cv_stun_writer *w, uint16_t type, uint32_t v);
int cv_stun_put_u64(struct cv_stun_writer *w, uint16_t type, uint64_t v);
/* XOR-MAPPED-ADDRESS style encoding (RFC 8489 section 14.2) of an AF_INET
 * or AF_INET6 address; -EAFNOSUPPORT for other families. */
int cv_stun_put_xor_address(struct cv_stun_writer *w, uint16_t type,
			    const struct sockaddr_storage *addr);
/* ERROR-CODE (section 14.8); reason NUL-terminated, NULL for the default
 * phrase of code. -EINVAL unless 300 <= code <= 699. */
int cv_stun_put_error_code(struct cv_stun_writer *w, int code,
			   const char *reason);
/* MESSAGE-INTEGRITY over everything written so far (section 14.5). */
int cv_stun_put_integrity(struct cv_stun_writer *w, const uint8_t *key,
			  size_t key_len);
/* FINGERPRINT (section 14.7); must be the last put. */
int cv_stun_put_fingerprint(struct cv_stun_writer *w);
/* Returns 0 and the message length in *out_len, or the first error. */
int cv_stun_writer_finish(struct cv_stun_writer *w, size_t *out_len);

/*
 * Binding success response to the request with txid: XOR-MAPPED-ADDRESS
 * of mapped, MESSAGE-INTEGRITY with key (skipped when key is NULL),
 * FINGERPRINT. All pointers borrowed. Returns 0 and *out_len, -ENOBUFS,
 * -EAFNOSUPPORT. Thread: any.
 */
int cv_stun_build_binding_success(uint8_t *buf, size_t cap, const uint8_t *txid,
				  const struct sockaddr_storage *mapped,
				  const uint8_t *key, size_t key_len,
				  size_t *out_len);

/*
 * Error response (class error, given method) with ERROR-CODE and its
 * default reason, UNKNOWN-ATTRIBUTES when code is 420 (unknown[0..n)),
 * MESSAGE-INTEGRITY when key is not NULL, FINGERPRINT. Returns 0 and
 * *out_len, -ENOBUFS, -EINVAL. Thread: any.
 */
int cv_stun_build_error(uint8_t *buf, size_t cap, uint16_t method,
			const uint8_t *txid, int code, const uint16_t *unknown,
			size_t n_unknown, const uint8_t *key, size_t key_len,
			size_t *out_len);

/* What an ICE connectivity check carries (RFC 8445 section 7.1.2). */
struct cv_stun_binding_request {
	const uint8_t *txid;  /* 12 bytes, borrowed; caller draws it */
	const char *username; /* "<remote ufrag>:<local ufrag>" or NULL */
	const uint8_t *key;   /* remote pwd bytes, or NULL: no integrity */
	size_t key_len;
	uint32_t priority; /* 0: no PRIORITY attribute */
	bool use_candidate;
	bool controlling; /* ICE-CONTROLLING, else ICE-CONTROLLED */
	bool ice;	  /* false: a plain STUN request, no role */
	uint64_t tiebreaker;
};

/*
 * Binding request with USERNAME, PRIORITY, USE-CANDIDATE, the role
 * attribute, MESSAGE-INTEGRITY and FINGERPRINT as req says. Returns 0 and
 * *out_len, -ENOBUFS, -EINVAL (username too long). Thread: any.
 */
int cv_stun_build_binding_request(uint8_t *buf, size_t cap,
				  const struct cv_stun_binding_request *req,
				  size_t *out_len);

/*
 * True when a and b are the same family, address and port (and IPv6 scope
 * id). Other families compare false. Borrowed. Thread: any.
 */
bool cv_sockaddr_equal(const struct sockaddr_storage *a,
		       const struct sockaddr_storage *b);

#endif
