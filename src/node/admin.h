/* The node's HTTP routes and its metrics registry. */
#ifndef CONCLAVE_NODE_ADMIN_H
#define CONCLAVE_NODE_ADMIN_H

#include <stddef.h>

struct cv_node;
struct cv_metrics;
struct figure;

#define CV_ADMIN_MAX_FIGURES 64

struct cv_admin {
	struct cv_node *node;
	struct cv_metrics *metrics;
	struct figure *figures[CV_ADMIN_MAX_FIGURES];
	size_t n_figures;
};

/* Registers every figure. Thread: startup. */
int cv_admin_init(struct cv_admin *a, struct cv_node *node);
void cv_admin_fini(struct cv_admin *a);

/* cv_ws_http_fn (arg: the struct cv_node) for the admin vhost and for the
 * client vhost (--dev). */
int cv_admin_http(void *arg, const char *path, const char *query, int *status,
		  const char **ctype, char **body, size_t *body_len);
int cv_admin_dev_http(void *arg, const char *path, const char *query,
		      int *status, const char **ctype, char **body,
		      size_t *body_len);

#endif
