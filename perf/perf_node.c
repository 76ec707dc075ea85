/*
 * Starting and stopping a local conclave for conclave-perf, and --dev
 * tokens (see perf_node.h).
 */
#include "perf/perf_node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 20000
#define MAX_ARGS	 64

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A port the kernel gives for type on 127.0.0.1 (free when we close it;
 * the node binds it a moment later, a race tests accept). */
static int free_port(int type)
{
	int fd = socket(AF_INET, type, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	int port = -EADDRNOTAVAIL;
	if (!bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A base of count consecutive free UDP ports on 127.0.0.1. */
static int free_udp_range(unsigned count)
{
	for (int attempt = 0; attempt < 200; attempt++) {
		int base = free_port(SOCK_DGRAM);
		if (base < 0 || base + (int)count > 65535)
			continue;
		int fds[16];
		unsigned ok = 0;
		for (; ok < count && ok < 16; ok++) {
			fds[ok] = socket(AF_INET, SOCK_DGRAM, 0);
			struct sockaddr_in sa = {.sin_family = AF_INET};
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sa.sin_port = htons((uint16_t)(base + (int)ok));
			if (fds[ok] < 0 ||
			    bind(fds[ok], (struct sockaddr *)&sa, sizeof(sa))) {
				if (fds[ok] >= 0)
					close(fds[ok]);
				break;
			}
		}
		for (unsigned i = 0; i < ok; i++)
			close(fds[i]);
		if (ok == count)
			return base;
	}
	return -EADDRNOTAVAIL;
}

static void *drain_main(void *arg)
{
	struct perf_node *n = arg;
	char buf[4096];
	for (;;) {
		ssize_t r = read(n->out_fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		/* A log that cannot be written is dropped, never blocks. */
		if (n->log_fd >= 0 && write(n->log_fd, buf, (size_t)r) != r)
			n->log_fd_bad = 1;
	}
	return NULL;
}

static int spawn(struct perf_node *n, char **argv)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (pid == 0) {
		setsid();
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	n->pid = pid;
	n->out_fd = p[0];
	return 0;
}

/* Reads the node's output until its "listening on" line; fills n->url. */
static int wait_listening(struct perf_node *n)
{
	static const char mark[] = "conclave: listening on ";
	char seen[8192];
	size_t len = 0;
	uint64_t deadline = mono_ms() + START_TIMEOUT_MS;
	for (;;) {
		uint64_t now = mono_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = n->out_fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr <= 0)
			continue;
		if (len == sizeof(seen) - 1)
			len = 0; /* a flood of output without the line */
		ssize_t r = read(n->out_fd, seen + len, sizeof(seen) - 1 - len);
		if (r <= 0) {
			seen[len] = '\0';
			fprintf(stderr, "conclave-perf: node output: %s\n",
				seen);
			return -ECHILD;
		}
		len += (size_t)r;
		seen[len] = '\0';
		char *m = strstr(seen, mark);
		if (m && strchr(m, '\n')) {
			/* It prints its HTTP URL; the API is ws://.../ws. */
			char host[64];
			int port;
			if (sscanf(m + sizeof(mark) - 1, "http://%63[^:/]:%d",
				   host, &port) != 2)
				return -EINVAL;
			snprintf(n->url, sizeof(n->url), "ws://%s:%d/ws", host,
				 port);
			if (n->log_fd >= 0 &&
			    write(n->log_fd, seen, len) != (ssize_t)len)
				fprintf(stderr, "conclave-perf: node log: "
						"short write\n");
			return 0;
		}
	}
}

int perf_node_start(struct perf_node *n, const char *exe, unsigned workers,
		    const char *const *extra, size_t n_extra,
		    const char *log_path)
{
	memset(n, 0, sizeof(*n));
	n->out_fd = -1;
	n->log_fd = -1;
	if (n_extra > MAX_ARGS - 16)
		return -E2BIG;
	uint8_t rnd[32];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(n->secret + 2 * i, 3, "%02x", rnd[i]);
	int port = free_port(SOCK_STREAM), admin = free_port(SOCK_STREAM);
	int base = free_udp_range(workers ? workers : 8);
	if (port < 0 || admin < 0 || base < 0)
		return -EADDRNOTAVAIL;
	char a_port[32], a_admin[32], a_base[40], a_workers[32], a_secret[96];
	snprintf(a_port, sizeof(a_port), "--listen.port=%d", port);
	snprintf(a_admin, sizeof(a_admin), "--admin.port=%d", admin);
	snprintf(a_base, sizeof(a_base), "--media.port_base=%d", base);
	snprintf(a_workers, sizeof(a_workers), "--node.workers=%u", workers);
	snprintf(a_secret, sizeof(a_secret), "--token.secret=%s", n->secret);
	char *argv[MAX_ARGS];
	size_t argc = 0;
	argv[argc++] = (char *)exe;
	argv[argc++] = a_port;
	argv[argc++] = a_admin;
	argv[argc++] = a_base;
	if (workers)
		argv[argc++] = a_workers;
	argv[argc++] = a_secret;
	argv[argc++] = "--dev";
	argv[argc++] = "--media.address=127.0.0.1";
	argv[argc++] = "--media.announce_address=127.0.0.1";
	for (size_t i = 0; i < n_extra; i++)
		argv[argc++] = (char *)extra[i];
	argv[argc] = NULL;
	if (log_path) {
		n->log_fd =
			open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0644);
		if (n->log_fd < 0)
			return -errno;
	}
	int rc = spawn(n, argv);
	if (!rc)
		rc = wait_listening(n);
	if (!rc && !pthread_create(&n->drain, NULL, drain_main, n))
		n->drain_started = 1;
	if (rc)
		perf_node_stop(n);
	return rc;
}

void perf_node_stop(struct perf_node *n)
{
	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		uint64_t deadline = mono_ms() + 5000;
		int status;
		while (waitpid(n->pid, &status, WNOHANG) == 0) {
			if (mono_ms() > deadline) {
				kill(n->pid, SIGKILL);
				waitpid(n->pid, &status, 0);
				break;
			}
			usleep(20000);
		}
		n->pid = 0;
	}
	if (n->drain_started) {
		pthread_join(n->drain, NULL);
		n->drain_started = 0;
	}
	if (n->out_fd >= 0)
		close(n->out_fd);
	if (n->log_fd >= 0)
		close(n->log_fd);
	n->out_fd = n->log_fd = -1;
}

/* One HTTP/1.0 GET on host:port; returns the body of a 200 (malloc). */
static char *http_get(const char *host, int port, const char *path)
{
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	if (getaddrinfo(host, portstr, &hints, &ai) || !ai)
		return NULL;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return NULL;
	}
	freeaddrinfo(ai);
	char req[512];
	int len = snprintf(req, sizeof(req),
			   "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	char resp[8192];
	size_t got = 0;
	if (len > 0 && (size_t)len < sizeof(req) &&
	    write(fd, req, (size_t)len) == len) {
		ssize_t r;
		while (got < sizeof(resp) - 1 &&
		       (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
			got += (size_t)r;
	}
	close(fd);
	resp[got] = '\0';
	char *body = strstr(resp, "\r\n\r\n");
	if (!body || strncmp(resp, "HTTP/1.", 7) || !strstr(resp, " 200 "))
		return NULL;
	return strdup(body + 4);
}

char *perf_dev_token(const char *url, const char *room, const char *name)
{
	char host[256];
	int port = 80;
	if (strncmp(url, "ws://", 5) ||
	    sscanf(url + 5, "%255[^:/]:%d", host, &port) < 1)
		return NULL;
	/* room and name are ours ([A-Za-z0-9_.-]): nothing to escape. */
	char path[256];
	snprintf(path, sizeof(path), "/dev/token?room=%s&name=%s", room, name);
	char *body = http_get(host, port, path);
	if (!body)
		return NULL;
	json_t *doc = json_loads(body, 0, NULL);
	free(body);
	const char *tok = json_string_value(json_object_get(doc, "token"));
	char *out = tok ? strdup(tok) : NULL;
	json_decref(doc);
	return out;
}
