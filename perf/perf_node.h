/*
 * conclave-perf's side of the node: starting a local conclave on free
 * loopback ports and stopping it, and fetching --dev tokens over HTTP.
 * Thread: the harness's main thread (a node's output is drained by a
 * thread of its own).
 */
#ifndef CONCLAVE_PERF_NODE_H
#define CONCLAVE_PERF_NODE_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

struct perf_node {
	pid_t pid;
	char url[128];	 /* ws://127.0.0.1:PORT/ws */
	char secret[65]; /* the token secret it was given (hex) */
	int out_fd;	 /* its stdout + stderr, drained by drain */
	int log_fd;	 /* where the drained output goes, or -1 */
	int log_fd_bad;	 /* a write to it failed */
	pthread_t drain;
	int drain_started;
};

/*
 * Starts exe (borrowed path) with --dev, a random token secret, loopback
 * addresses, free ports and `workers` media workers (0: the node's
 * default), plus the n_extra arguments extra[] (borrowed), and waits up
 * to 20 s for its "conclave: listening on URL" line. Its later output
 * goes to log_path (borrowed; NULL: discarded). Fills *n (borrowed).
 * Returns 0; -errno; -ETIMEDOUT; -ECHILD (it exited first; its output is
 * on stderr).
 */
int perf_node_start(struct perf_node *n, const char *exe, unsigned workers,
		    const char *const *extra, size_t n_extra,
		    const char *log_path);

/* SIGTERM (the node drains), then SIGKILL after 5 s; reaps it and the
 * drain thread. Safe on a node that failed to start (pid 0). */
void perf_node_stop(struct perf_node *n);

/*
 * GET /dev/token?room=ROOM&name=NAME from a --dev node at url
 * (ws://HOST:PORT/...). Returns a malloc'd token or NULL.
 */
char *perf_dev_token(const char *url, const char *room, const char *name);

#endif
