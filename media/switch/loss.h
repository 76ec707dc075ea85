/*
 * Loss tracking on a publisher's stream, so that the node asks the
 * publisher to retransmit (RFC 4585 6.2.1 generic NACK) what did not
 * arrive: which sequence numbers are missing, which are due to be NACKed
 * now, and which came back. Pure logic with the time passed in; one
 * tracker per publisher track, on its worker's thread.
 */
#ifndef CONCLAVE_SWITCH_LOSS_H
#define CONCLAVE_SWITCH_LOSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most missing packets tracked; a larger gap is given up (a keyframe
 * request repairs that faster than hundreds of retransmissions). */
#define CV_LOSS_MAX_MISSING 64
/* Wait before the first NACK: packets reordered by a few ms arrive on
 * their own. */
#define CV_LOSS_REORDER_MS 5
/* Between NACKs of one packet, and how many. */
#define CV_LOSS_RETRY_MS  100
#define CV_LOSS_MAX_TRIES 3
/* RFC 3550 A.1: a packet this far behind the highest is not reordering;
 * two such in a row mean the sender restarted its sequence. */
#define CV_LOSS_MAX_MISORDER 100

struct cv_loss_missing {
	uint16_t seq;
	uint8_t tries;
	uint64_t next_ms;
};

struct cv_loss_tracker {
	bool started;
	uint16_t highest;
	size_t n;
	struct cv_loss_missing m[CV_LOSS_MAX_MISSING];
	uint64_t given_up; /* gaps too large, or NACKed too often */
	uint32_t bad_seq; /* RFC 3550 A.1: the next seq after a big jump back */
};

enum cv_loss_verdict {
	CV_LOSS_NEW,	   /* in order, or after a gap (now tracked) */
	CV_LOSS_RECOVERED, /* was missing: a retransmission or late */
	CV_LOSS_OLD,	   /* duplicate or older than anything tracked */
	/* A big jump back: NEW once confirmed by the next packet (the
	 * tracker restarts there), OLD for the first one. */
};

void cv_loss_init(struct cv_loss_tracker *l);

/* Accounts a packet with seq arriving at now_ms. */
enum cv_loss_verdict cv_loss_update(struct cv_loss_tracker *l, uint16_t seq,
				    uint64_t now_ms);

/* True when seq is tracked as missing. */
bool cv_loss_is_missing(const struct cv_loss_tracker *l, uint16_t seq);

/*
 * Writes up to cap sequence numbers due for a NACK at now_ms into out
 * and schedules their next try; entries past CV_LOSS_MAX_TRIES are given
 * up. Returns how many were written.
 */
size_t cv_loss_due(struct cv_loss_tracker *l, uint64_t now_ms, uint16_t *out,
		   size_t cap);

#endif
