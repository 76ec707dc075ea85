/*
 * The faulty node (tests only: meson -Dperc_faulty_node=true, never in a
 * release build; the default build compiles neither this header's users
 * nor perc_fault.c). It tampers every forwarded perc RTP packet in one
 * way, so that tests can show that receivers reject and count each kind
 * (docs/perc.md, "The faulty node").
 */
#ifndef CONCLAVE_SWITCH_PERC_FAULT_H
#define CONCLAVE_SWITCH_PERC_FAULT_H

#include <stddef.h>
#include <stdint.h>

#ifndef CV_PERC_FAULTY_NODE
#error "perc_fault.h is for faulty-node builds only"
#endif

enum cv_perc_fault_kind {
	CV_PERC_FAULT_NONE = 0,
	CV_PERC_FAULT_SSRC,	 /* an SSRC bit flipped */
	CV_PERC_FAULT_TIMESTAMP, /* a timestamp bit flipped */
	CV_PERC_FAULT_PAYLOAD,	 /* a byte of the inner ciphertext flipped */
	CV_PERC_FAULT_INNER_TAG, /* a byte of the inner tag flipped */
	CV_PERC_FAULT_OHB,	 /* the OHB claims another original SEQ */
	CV_PERC_FAULT_EKT_MOVE,	 /* EKTField moved into the outer plaintext */
};

struct cv_perc_fault {
	enum cv_perc_fault_kind kind;
};

/* NULL or "" -> none; "ssrc", "timestamp", "payload", "inner_tag", "ohb",
 * "ekt_move". Returns 0 or -EINVAL. */
int cv_perc_fault_parse(const char *s, struct cv_perc_fault *out);

/* A cv_perc_hop_tamper_fn; arg is the struct cv_perc_fault. */
void cv_perc_fault_tamper(void *arg, uint8_t *plain, size_t *plain_len,
			  size_t hdr_len, uint8_t *ekt, size_t *ekt_len);

#endif
