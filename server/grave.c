/*
 * grave: kernels on their way out (see grave.h).
 *
 * Each buried kernel gets a small entry whose kernel callbacks ignore every
 * message and free the entry when the process is reaped. Loop thread only.
 */
#include "grave.h"

#include <stdlib.h>

#include "kernel.h"
#include "server.h"

#define GRAVE_STOP_GRACE_MS 1000

struct grave {
	struct kernel *kernel;
	struct server *srv;
	struct grave *next;
};

static void grave_exit(void *arg, struct kernel *k, int status, bool was_ready)
{
	struct grave *g = arg, **pp;

	(void)status;
	(void)was_ready;
	for (pp = &g->srv->graves; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	kernel_free(k);
	free(g);
}

static const struct kernel_ops grave_ops = {NULL, NULL, grave_exit};

void grave_bury(struct server *s, struct kernel *k)
{
	struct grave *g;

	if (!k)
		return;
	g = calloc(1, sizeof(*g));
	if (!g) {
		kernel_free(k);
		return;
	}
	g->kernel = k;
	g->srv = s;
	g->next = s->graves;
	s->graves = g;
	kernel_set_owner(k, &grave_ops, g);
	kernel_stop(k, GRAVE_STOP_GRACE_MS);
}

void grave_drain(struct server *s, uint64_t deadline)
{
	while (s->graves && loop_now_ms() < deadline)
		loop_run_once(s->loop, 50);
	while (s->graves) {
		struct grave *g = s->graves;
		s->graves = g->next;
		kernel_free(g->kernel);
		free(g);
	}
}
