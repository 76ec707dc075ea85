/*
 * The 5-tuple map of a switch: peer address -> transport, so that a
 * datagram finds its transport in constant time however many transports
 * the worker has. Open addressing with linear probing; grows on insert
 * (inserts happen when ICE selects an address, not per packet).
 * One map belongs to one worker thread.
 */
#ifndef CONCLAVE_SWITCH_ADDR_MAP_H
#define CONCLAVE_SWITCH_ADDR_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cv_addr_key {
	uint8_t addr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
	uint16_t port;	  /* network order, as in the sockaddr */
	uint8_t family;	  /* 4 or 6; 0: empty slot */
	uint8_t tomb;	  /* 1: deleted slot (keeps probe chains) */
};

struct cv_addr_map {
	struct cv_addr_key *keys;
	void **values;
	size_t cap;  /* power of two */
	size_t used; /* live + tombstones */
	size_t live;
};

int cv_addr_map_init(struct cv_addr_map *m, size_t initial_cap);
void cv_addr_map_fini(struct cv_addr_map *m);

/* Maps addr to value (replacing). Returns 0, -EAFNOSUPPORT, -ENOMEM. */
int cv_addr_map_put(struct cv_addr_map *m, const struct sockaddr_storage *addr,
		    void *value);
/* The value for addr, or NULL. */
void *cv_addr_map_get(const struct cv_addr_map *m,
		      const struct sockaddr_storage *addr);
/* Removes addr if present and mapped to value (NULL: whatever value). */
void cv_addr_map_del(struct cv_addr_map *m, const struct sockaddr_storage *addr,
		     const void *value);

#endif
