/*
 * pool: warm kernels waiting to become a context (see pool.h).
 *
 * Owns the spare kernels and the per-language targets. A spare is a kernel
 * whose owner is the pool: its messages are ignored, its exit removes it and
 * schedules a refill (with back-off after failures, so a broken kernelspec
 * does not spin). pool_take() transfers ownership with kernel_set_owner()
 * and refills. Loop thread only.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "grave.h"
#include "kernel.h"
#include "log.h"
#include "req.h"
#include "server.h"

#define POOL_MAX_BACKOFF_MS 30000

struct pool_target {
	char *language;
	long n;
};

struct pool_kernel {
	struct pool *p;
	struct kernel *k;
	const struct pool_target *t;
	struct pool_kernel *next;
};

struct pool {
	struct server *s;
	struct pool_target *targets;
	size_t ntargets;
	struct pool_kernel *spares;
	struct loop_timer refill_timer;
	unsigned failures;
};

static void pool_unlink(struct pool *p, struct pool_kernel *pk)
{
	for (struct pool_kernel **pp = &p->spares; *pp; pp = &(*pp)->next) {
		if (*pp == pk) {
			*pp = pk->next;
			return;
		}
	}
}

static void pool_on_ready(void *arg, struct kernel *k)
{
	struct pool_kernel *pk = arg;

	(void)k;
	pk->p->failures = 0;
	log_debug("pool: a spare %s kernel is ready", pk->t->language);
}

static void pool_refill_tick(void *arg, short revents)
{
	(void)revents;
	pool_refill(arg);
}

static void pool_on_exit(void *arg, struct kernel *k, int status,
			 bool was_ready)
{
	struct pool_kernel *pk = arg;
	struct pool *p = pk->p;
	uint64_t delay;

	(void)status;
	log_warnx("pool: a spare %s kernel died%s", pk->t->language,
		  was_ready ? "" : " while starting");
	pool_unlink(p, pk);
	kernel_free(k);
	free(pk);
	if (p->s->stopping)
		return;
	delay = p->failures < 8 ? 250u << p->failures : POOL_MAX_BACKOFF_MS;
	if (delay > POOL_MAX_BACKOFF_MS)
		delay = POOL_MAX_BACKOFF_MS;
	p->failures++;
	loop_timer_arm(p->s->loop, &p->refill_timer, delay, pool_refill_tick,
		       p->s);
}

static const struct kernel_ops pool_ops = {pool_on_ready, NULL, pool_on_exit};

static int pool_parse_one(struct pool_target *t, const char *item, char *err,
			  size_t errlen)
{
	const char *eq = strchr(item, '=');
	char *end = NULL, name[64];
	long n;

	if (!eq || eq == item || (size_t)(eq - item) >= sizeof(name)) {
		return errmsg_set(err, errlen, -1,
				  "--pool: '%s' is not LANGUAGE=COUNT", item);
	}
	memcpy(name, item, (size_t)(eq - item));
	name[eq - item] = '\0';
	n = strtol(eq + 1, &end, 10);
	if (!*(eq + 1) || *end || n < 0 || n > 16) {
		return errmsg_set(err, errlen, -1,
				  "--pool: count in '%s' must be 0..16", item);
	}
	t->language = req_normalize_language(name);
	t->n = n;
	if (!t->language)
		return errmsg_set(err, errlen, -1, "out of memory");
	return 0;
}

int pool_init(struct server *s, char *err, size_t errlen)
{
	struct pool *p = calloc(1, sizeof(*p));
	char *copy = strdup(s->cfg.pool), *save = NULL, *tok;
	int rc = 0;

	if (!p || !copy ||
	    !(p->targets = calloc(strlen(copy) / 2 + 1, sizeof(*p->targets)))) {
		rc = errmsg_set(err, errlen, -1, "out of memory");
		goto out;
	}
	p->s = s;
	for (tok = strtok_r(copy, ",", &save); tok && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		tok += strspn(tok, " \t");
		if (!*tok)
			continue;
		rc = pool_parse_one(&p->targets[p->ntargets], tok, err, errlen);
		if (rc == 0)
			p->ntargets++;
	}
out:
	free(copy);
	s->pool = p;
	return rc;
}

static size_t pool_have(const struct pool *p, const struct pool_target *t)
{
	size_t n = 0;

	for (const struct pool_kernel *pk = p->spares; pk; pk = pk->next)
		n += pk->t == t;
	return n;
}

static void pool_spawn(struct pool *p, const struct pool_target *t)
{
	const struct kspec *spec = kspec_cache_get(&p->s->specs, t->language);
	struct pool_kernel *pk;
	char err[256];

	/* Spares never take the last kernel slots: contexts come first. */
	if (!spec || (long)kernel_live() >= p->s->cfg.max_kernels)
		return;
	pk = calloc(1, sizeof(*pk));
	if (!pk)
		return;
	pk->p = p;
	pk->t = t;
	pk->k = kernel_start(&p->s->kenv, spec, p->s->cfg.cwd, &pool_ops, pk,
			     err, sizeof(err));
	if (!pk->k) {
		log_warnx("pool: %s", err);
		free(pk);
		return;
	}
	p->s->metrics.kernel_starts++;
	pk->next = p->spares;
	p->spares = pk;
}

void pool_refill(struct server *s)
{
	struct pool *p = s->pool;

	if (!p || !s->ready || s->stopping)
		return;
	for (size_t i = 0; i < p->ntargets; i++) {
		const struct pool_target *t = &p->targets[i];
		for (size_t n = pool_have(p, t); n < (size_t)t->n; n++)
			pool_spawn(p, t);
	}
}

struct kernel *pool_take(struct server *s, const char *language,
			 const struct kernel_ops *ops, void *arg)
{
	struct pool *p = s->pool;
	struct kernel *k;

	if (!p)
		return NULL;
	for (struct pool_kernel *pk = p->spares; pk; pk = pk->next) {
		if (strcmp(pk->t->language, language) != 0 ||
		    kernel_state(pk->k) != KERNEL_READY)
			continue;
		k = pk->k;
		pool_unlink(p, pk);
		free(pk);
		kernel_set_owner(k, ops, arg);
		/* The successor starts with the next turn of the loop, after
		 * the answer of the request that took this one. A pending
		 * back-off stays as it is. */
		if (!p->refill_timer.armed)
			loop_timer_arm(s->loop, &p->refill_timer, 0,
				       pool_refill_tick, s);
		return k;
	}
	return NULL;
}

void pool_renew(struct server *s, const struct kspec *spec)
{
	struct pool *p = s->pool;
	struct pool_kernel **pp;

	if (!p || !s->ready || s->stopping)
		return;
	for (pp = &p->spares; *pp;) {
		struct pool_kernel *pk = *pp;
		if (kspec_cache_get(&s->specs, pk->t->language) != spec) {
			pp = &pk->next;
			continue;
		}
		*pp = pk->next;
		grave_bury(s, pk->k);
		free(pk);
	}
	pool_refill(s);
}

void pool_count(const struct server *s, size_t *ready, size_t *starting)
{
	*ready = *starting = 0;
	if (!s->pool)
		return;
	for (const struct pool_kernel *pk = s->pool->spares; pk;
	     pk = pk->next) {
		if (kernel_state(pk->k) == KERNEL_READY)
			(*ready)++;
		else
			(*starting)++;
	}
}

void pool_shutdown(struct server *s)
{
	struct pool *p = s->pool;

	if (!p)
		return;
	loop_timer_disarm(s->loop, &p->refill_timer);
	while (p->spares) {
		struct pool_kernel *pk = p->spares;
		p->spares = pk->next;
		grave_bury(s, pk->k);
		free(pk);
	}
	for (size_t i = 0; i < p->ntargets; i++)
		free(p->targets[i].language);
	free(p->targets);
	free(p);
	s->pool = NULL;
}
