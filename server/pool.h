/*
 * pool: warm kernels waiting to become a context.
 *
 * Per language a configured number of spare kernels (--pool, e.g.
 * "python=1,javascript=1") is started in the default cwd, handshaken and
 * kept idle. Creating a context, restarting one or recovering from a kernel
 * death takes a ready spare instead of waiting for a start; the pool then
 * refills in the background (after the daemon became ready, so spares never
 * slow the default contexts down). A spare that dies is replaced with
 * back-off. A kernel is handed out once and never returns: no state can leak
 * between contexts. Loop thread only.
 */
#ifndef E2BCI_POOL_H
#define E2BCI_POOL_H

#include <stddef.h>

struct server;
struct kernel;
struct kernel_ops;
struct kspec;

/* Parses s->cfg.pool into the pool's targets. Returns 0, or -1 with a reason
 * in err. */
int pool_init(struct server *s, char *err, size_t errlen);
/* Starts spares up to the targets (no-op before the server is ready). */
void pool_refill(struct server *s);
/* Hands out a ready spare for language, now owned by (ops, arg), or NULL.
 * Its cwd is the default cwd. */
struct kernel *pool_take(struct server *s, const char *language,
			 const struct kernel_ops *ops, void *arg);
/* Replaces the spares of spec's languages (they go to the graveyard, new
 * ones start): once the Python zygote is ready, the spares exec'd while it
 * loaded give way to forks, which are cheaper to keep. */
void pool_renew(struct server *s, const struct kspec *spec);
/* Counts spares: ready ones in *ready, starting ones in *starting. */
void pool_count(const struct server *s, size_t *ready, size_t *starting);
/* Stops every spare (asynchronously; they die in the graveyard) and frees
 * the pool. */
void pool_shutdown(struct server *s);

#endif
