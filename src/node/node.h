/*
 * The node's control plane: rooms, participants and tracks as the
 * signaling protocol sees them, the offer/answer state of every peer
 * connection, and the commands that set up the media plane (the switch of
 * the room's worker) to match.
 *
 * One mutex guards all of it. It is taken by the WebSocket thread (client
 * messages), the admin routes and, rarely, by workers reporting transport
 * state; never on the packet path.
 */
#ifndef CONCLAVE_NODE_H
#define CONCLAVE_NODE_H

#include <stdbool.h>
#include <stdint.h>

struct cv_config;
struct cv_node;

/* Builds the node from cfg (borrowed for the node's life) and starts
 * workers, sockets and the signaling server. */
int cv_node_start(struct cv_node **out, const struct cv_config *cfg);

/*
 * Drain (SIGTERM): refuse new joins, tell every client, and return once
 * every room is empty or deadline_ms has passed.
 */
void cv_node_drain(struct cv_node *node, uint64_t deadline_ms);

/* Stops and frees everything. */
void cv_node_stop(struct cv_node *node);

/* The client URL ("http://127.0.0.1:8443/"). */
const char *cv_node_url(const struct cv_node *node);

#endif
