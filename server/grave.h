/*
 * grave: kernels on their way out.
 *
 * A kernel replaced by a restart, left by a deleted context or a stopped
 * pool gets SIGTERM (SIGKILL after a grace period) and waits here until its
 * process is reaped; then it is freed. Nobody waits for it: a restart never
 * blocks on the old process. Loop thread only.
 */
#ifndef E2BCI_GRAVE_H
#define E2BCI_GRAVE_H

#include <stdint.h>

struct server;
struct kernel;

/* Takes ownership of k (NULL is fine) and starts stopping it. */
void grave_bury(struct server *s, struct kernel *k);
/* Runs the loop until every buried kernel is reaped or deadline (loop_now_ms
 * clock) passes, then kills and frees the rest. For shutdown. */
void grave_drain(struct server *s, uint64_t deadline);

#endif
