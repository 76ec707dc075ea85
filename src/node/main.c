/*
 * conclave: the media node. Reads the configuration (defaults, file,
 * flags), starts the node and waits for signals:
 *   SIGTERM / SIGINT: drain (refuse joins, tell clients, wait for rooms to
 *                     empty up to drain.timeout_ms), then exit 0;
 *   SIGHUP:           reload what can be reloaded (log levels).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclave/config.h"
#include "conclave/err.h"
#include "conclave/log.h"
#include "src/node/node.h"

static int setup(struct cv_config **cfg_out, int argc, char **argv)
{
	char err[256] = "";
	struct cv_config *cfg;
	int rc = cv_config_create(&cfg);
	if (rc)
		return rc;
	rc = cv_config_parse_args(cfg, argc, argv, CONCLAVE_VERSION, stdout,
				  err, sizeof(err));
	if (rc == 0)
		rc = cv_config_validate(cfg, err, sizeof(err));
	if (rc) {
		if (rc != CV_CONFIG_EXIT)
			fprintf(stderr, "conclave: %s\n", err);
		cv_config_destroy(cfg);
		return rc;
	}
	if (cv_log_configure(cfg) != 0) {
		fprintf(stderr, "conclave: log settings: cannot apply\n");
		cv_config_destroy(cfg);
		return -1;
	}
	*cfg_out = cfg;
	return 0;
}

int main(int argc, char **argv)
{
	struct cv_config *cfg = NULL;
	int rc = setup(&cfg, argc, argv);
	if (rc == CV_CONFIG_EXIT)
		return 0;
	if (rc)
		return 2;

	/* Every thread inherits this mask; only sigwait below sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct cv_node *node;
	rc = cv_node_start(&node, cfg);
	if (rc) {
		fprintf(stderr, "conclave: cannot start: %s\n",
			cv_strerror(rc));
		cv_config_destroy(cfg);
		return 1;
	}
	printf("conclave: listening on %s\n", cv_node_url(node));
	if (cv_config_bool(cfg, CV_CFG_DEV))
		printf("conclave: dev mode: open %s in a browser to join a "
		       "room\n",
		       cv_node_url(node));
	fflush(stdout);

	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig == SIGHUP) {
			cv_log_configure(cfg);
			continue;
		}
		break;
	}
	cv_node_drain(node,
		      (uint64_t)cv_config_ms(cfg, CV_CFG_DRAIN_TIMEOUT_MS));
	cv_node_stop(node);
	cv_config_destroy(cfg);
	printf("conclave: stopped\n");
	return 0;
}
