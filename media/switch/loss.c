#include <string.h>

#include "conclave/rtp.h"
#include "media/switch/loss.h"

void cv_loss_init(struct cv_loss_tracker *l)
{
	memset(l, 0, sizeof(*l));
	l->bad_seq = UINT32_MAX;
}

static void remove_at(struct cv_loss_tracker *l, size_t i)
{
	l->m[i] = l->m[--l->n];
}

bool cv_loss_is_missing(const struct cv_loss_tracker *l, uint16_t seq)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->m[i].seq == seq)
			return true;
	return false;
}

enum cv_loss_verdict cv_loss_update(struct cv_loss_tracker *l, uint16_t seq,
				    uint64_t now_ms)
{
	if (!l->started) {
		l->started = true;
		l->highest = seq;
		return CV_LOSS_NEW;
	}
	if (!cv_seq16_newer(seq, l->highest)) {
		for (size_t i = 0; i < l->n; i++) {
			if (l->m[i].seq == seq) {
				remove_at(l, i);
				return CV_LOSS_RECOVERED;
			}
		}
		if ((uint16_t)(l->highest - seq) <= CV_LOSS_MAX_MISORDER)
			return CV_LOSS_OLD;
		/* RFC 3550 A.1: far behind: a restart if the next packet
		 * follows on from this one. */
		if (l->bad_seq == seq) {
			l->highest = seq;
			l->n = 0;
			l->bad_seq = UINT32_MAX;
			return CV_LOSS_NEW;
		}
		l->bad_seq = (uint16_t)(seq + 1);
		return CV_LOSS_OLD;
	}
	uint16_t gap = (uint16_t)(seq - l->highest - 1);
	l->highest = seq;
	if (gap == 0)
		return CV_LOSS_NEW;
	if (gap > CV_LOSS_MAX_MISSING - l->n) {
		/* Too much at once: stop chasing, the receiver side asks for
		 * a keyframe. */
		l->given_up += gap + l->n;
		l->n = 0;
		return CV_LOSS_NEW;
	}
	for (uint16_t k = gap; k > 0; k--) {
		struct cv_loss_missing *m = &l->m[l->n++];
		m->seq = (uint16_t)(seq - k);
		m->tries = 0;
		m->next_ms = now_ms + CV_LOSS_REORDER_MS;
	}
	return CV_LOSS_NEW;
}

size_t cv_loss_due(struct cv_loss_tracker *l, uint64_t now_ms, uint16_t *out,
		   size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n && n < cap;) {
		struct cv_loss_missing *m = &l->m[i];
		if (m->next_ms > now_ms) {
			i++;
			continue;
		}
		if (m->tries == CV_LOSS_MAX_TRIES) {
			l->given_up++;
			remove_at(l, i);
			continue;
		}
		out[n++] = m->seq;
		m->tries++;
		m->next_ms = now_ms + CV_LOSS_RETRY_MS;
		i++;
	}
	return n;
}
