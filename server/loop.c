/*
 * loop: the daemon's one event loop, over poll(2).
 *
 * Owns the list of watches (a plain fd or a ZeroMQ socket, the events wanted
 * and a callback) and a list of armed timers sorted by due time. Timers live
 * inside their owners' structs; the loop links them but never frees them.
 *
 * Each turn builds a pollfd array from the watches whose events are not 0,
 * waits until the earliest timer is due (or max_ms), calls the callbacks of
 * the ready watches, then fires the due timers.
 *
 * ZeroMQ sockets are polled through their ZMQ_FD, which signals "the
 * socket's state may have changed" as an edge: the state itself comes from
 * ZMQ_EVENTS, and any zmq call on the socket (a send, a receive) may consume
 * the edge. So a socket's ZMQ_EVENTS is read when its fd fired, when it is
 * marked for a recheck (new, resumed, dispatched last turn and perhaps not
 * drained, or used by its owner outside a callback: loop_zmq_used()), and,
 * as a safety net, when the loop wakes anyway and the socket was last read
 * over LOOP_ZMQ_STALE_MS ago. zmq_poll() did this for every socket on every
 * turn: two system calls per socket (getpid and a zero-timeout poll of the
 * mailbox), which made a turn cost O(kernels) syscalls while streaming.
 *
 * The invariants that make callbacks free to add and delete anything:
 *  - A watch deleted while the ready watches are being dispatched is only
 *    marked; it is skipped for the rest of that round and freed after it.
 *  - A watch added during dispatch is not in this turn's poll array, so it is
 *    first dispatched next turn.
 *  - A timer is disarmed before its callback runs, so the callback may re-arm
 *    it. A timer armed while timers fire is due one millisecond after this
 *    turn's clock reading at the earliest, so a callback re-arming itself
 *    with 0 ms cannot keep one turn from ending.
 *
 * Loop thread only; there are no locks. Each turn is O(watches + timers),
 * which is fine for the few dozen entries a sandbox has. It does not own the
 * fds and sockets it watches (never closes them), does not support calling
 * loop_run_once() from inside a callback, and does not retry on EINTR: the
 * caller's main loop simply turns again.
 */
#include "loop.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <zmq.h>

/* A socket's ZMQ_EVENTS is read at least this often while the loop turns. */
#define LOOP_ZMQ_STALE_MS 50

struct loop_watch {
	int fd;	      /* The fd, or the socket's ZMQ_FD. */
	void *sock;   /* A ZeroMQ socket, or NULL for a plain fd. */
	short events; /* ZMQ_POLLIN|ZMQ_POLLOUT; 0 means paused. */
	loop_fn fn;
	void *arg;
	bool deleted;	     /* Set by loop_del() during dispatch. */
	bool recheck;	     /* ZeroMQ: read ZMQ_EVENTS next turn, fd or not. */
	uint64_t checked_ms; /* ZeroMQ: when ZMQ_EVENTS was last read. */
	struct loop_watch *next;
};

struct loop {
	struct loop_watch *watches; /* In insertion order. */
	struct loop_timer *timers;  /* Armed timers, earliest first. */
	bool dispatching;	    /* Inside the watch callbacks of a turn. */
	bool firing;		    /* Inside the timer callbacks of a turn. */
	uint64_t fire_now;	    /* The clock reading timers fire against. */
	size_t ndeleted;	    /* Watches marked deleted this round. */
	struct pollfd *items;	    /* The poll array, reused across turns. */
	struct loop_watch *
	    *owners; /* owners[i] is the watch behind items[i]. */
	size_t cap;  /* Capacity of items and owners. */
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
	return calloc(1, sizeof(struct loop));
}

void loop_free(struct loop *l)
{
	struct loop_watch *w, *next;

	if (!l)
		return;
	assert(!l->dispatching && !l->firing);
	for (w = l->watches; w; w = next) {
		next = w->next;
		free(w);
	}
	/* Timers belong to their owners, who may already be gone: unlinked,
	 * never touched. */
	free(l->items);
	free(l->owners);
	free(l);
}

static struct loop_watch *watch_add(struct loop *l, int fd, void *sock,
				    short events, loop_fn fn, void *arg)
{
	struct loop_watch *w, **tail;

	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fd = fd;
	w->sock = sock;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	for (tail = &l->watches; *tail; tail = &(*tail)->next)
		;
	*tail = w;
	return w;
}

struct loop_watch *loop_add_fd(struct loop *l, int fd, short events, loop_fn fn,
			       void *arg)
{
	return watch_add(l, fd, NULL, events, fn, arg);
}

struct loop_watch *loop_add_zmq(struct loop *l, void *sock, short events,
				loop_fn fn, void *arg)
{
	struct loop_watch *w;
	size_t len = sizeof(int);
	int fd = -1;

	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) < 0 || fd < 0)
		return NULL;
	w = watch_add(l, fd, sock, events, fn, arg);
	if (w)
		w->recheck = true;
	return w;
}

void loop_set_events(struct loop_watch *w, short events)
{
	w->events = events;
	if (w->sock)
		w->recheck = true;
}

void loop_zmq_used(struct loop_watch *w)
{
	if (w)
		w->recheck = true;
}

void loop_del(struct loop *l, struct loop_watch *w)
{
	struct loop_watch **pp;

	if (!w || w->deleted)
		return;
	if (l->dispatching) {
		/* The poll array may still point at w: free it after the round.
		 */
		w->deleted = true;
		w->events = 0;
		l->ndeleted++;
		return;
	}
	for (pp = &l->watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			free(w);
			return;
		}
	}
	assert(!"loop_del: watch not registered with this loop");
}

/* Frees the watches marked deleted during the round that just ended. */
static void sweep_deleted(struct loop *l)
{
	struct loop_watch **pp = &l->watches, *w;

	while (l->ndeleted && *pp) {
		w = *pp;
		if (w->deleted) {
			*pp = w->next;
			free(w);
			l->ndeleted--;
		} else {
			pp = &w->next;
		}
	}
	assert(l->ndeleted == 0);
}

void loop_timer_disarm(struct loop *l, struct loop_timer *t)
{
	struct loop_timer **pp;

	if (!t->armed)
		return;
	for (pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->armed = false;
	t->next = NULL;
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms,
		    loop_fn fn, void *arg)
{
	struct loop_timer **pp;
	uint64_t now = loop_now_ms();

	loop_timer_disarm(l, t);
	t->due_ms = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
	if (l->firing && t->due_ms <= l->fire_now)
		t->due_ms = l->fire_now + 1;
	t->fn = fn;
	t->arg = arg;
	/* After every timer due at the same time: equal timers fire in the
	 * order they were armed. */
	for (pp = &l->timers; *pp && (*pp)->due_ms <= t->due_ms;
	     pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	t->armed = true;
}

/* The poll timeout: until the first timer is due, capped by max_ms; 0 when
 * a socket is due for a recheck. */
static long poll_timeout(const struct loop *l, int max_ms)
{
	const struct loop_watch *w;
	uint64_t now, wait;
	long timeout = max_ms < 0 ? -1 : max_ms;

	for (w = l->watches; w; w = w->next)
		if (w->sock && w->events && w->recheck)
			return 0;
	if (!l->timers)
		return timeout;
	now = loop_now_ms();
	wait = l->timers->due_ms > now ? l->timers->due_ms - now : 0;
	if (wait > INT_MAX)
		wait = INT_MAX;
	if (timeout < 0 || (long)wait < timeout)
		timeout = (long)wait;
	return timeout;
}

/* ZMQ_POLL* bits <-> poll(2) bits, as zmq_poll maps them for plain fds:
 * anything beyond IN, OUT and PRI reads as ZMQ_POLLERR. */
static short to_poll(short zev)
{
	return (short)((zev & ZMQ_POLLIN ? POLLIN : 0) |
		       (zev & ZMQ_POLLOUT ? POLLOUT : 0) |
		       (zev & ZMQ_POLLPRI ? POLLPRI : 0));
}

static short from_poll(short pev)
{
	return (short)((pev & POLLIN ? ZMQ_POLLIN : 0) |
		       (pev & POLLOUT ? ZMQ_POLLOUT : 0) |
		       (pev & POLLPRI ? ZMQ_POLLPRI : 0) |
		       (pev & ~(POLLIN | POLLOUT | POLLPRI) ? ZMQ_POLLERR : 0));
}

/* Fills the poll array from the active watches; returns its length or
 * -ENOMEM. */
static int build_items(struct loop *l)
{
	struct loop_watch *w;
	size_t n = 0, cap;
	void *p;

	for (w = l->watches; w; w = w->next)
		n += w->events != 0;
	if (n > (size_t)INT_MAX)
		return -ENOMEM;
	if (n > l->cap) {
		cap = n < 16 ? 16 : n * 2;
		p = realloc(l->items, cap * sizeof(*l->items));
		if (!p)
			return -ENOMEM;
		l->items = p;
		// NOLINTNEXTLINE(bugprone-sizeof-expression): pointers
		p = realloc(l->owners, cap * sizeof(*l->owners));
		if (!p)
			return -ENOMEM;
		l->owners = p;
		l->cap = cap;
	}
	n = 0;
	for (w = l->watches; w; w = w->next) {
		if (!w->events)
			continue;
		l->items[n].fd = w->fd;
		/* ZMQ_FD only ever signals readable. */
		l->items[n].events = w->sock ? POLLIN : to_poll(w->events);
		l->items[n].revents = 0;
		l->owners[n++] = w;
	}
	return (int)n;
}

/* What a watch is ready for now (ZMQ_POLL* bits), 0 when nothing. */
static short watch_ready(struct loop_watch *w, short pev, uint64_t now)
{
	size_t len = sizeof(int);
	int zev = 0;

	if (!w->sock)
		return (short)(from_poll(pev) & (w->events | ZMQ_POLLERR));
	if (!pev && !w->recheck && now - w->checked_ms < LOOP_ZMQ_STALE_MS)
		return 0;
	w->recheck = false;
	w->checked_ms = now;
	if (zmq_getsockopt(w->sock, ZMQ_EVENTS, &zev, &len) < 0)
		return ZMQ_POLLERR;
	return (short)(zev & w->events);
}

/* Calls the callbacks of the ready watches, skipping any deleted or paused
 * by an earlier callback of the same round. A socket dispatched is checked
 * again next turn: its callback may have left messages behind. */
static void dispatch(struct loop *l, int n)
{
	struct loop_watch *w;
	uint64_t now = loop_now_ms();
	short revents;
	int i;

	l->dispatching = true;
	for (i = 0; i < n; i++) {
		w = l->owners[i];
		if (w->deleted || !w->events)
			continue;
		revents = watch_ready(w, l->items[i].revents, now);
		if (!revents)
			continue;
		w->fn(w->arg, revents);
		/* Not after a failed ZMQ_EVENTS: a broken socket would spin. */
		if (w->sock && !w->deleted && revents != ZMQ_POLLERR)
			w->recheck = true;
	}
	l->dispatching = false;
	sweep_deleted(l);
}

/* Fires every timer due at the start of this phase, earliest first. */
static void fire_timers(struct loop *l)
{
	struct loop_timer *t;

	l->firing = true;
	l->fire_now = loop_now_ms();
	while ((t = l->timers) && t->due_ms <= l->fire_now) {
		loop_timer_disarm(l, t);
		t->fn(t->arg, 0);
	}
	l->firing = false;
}

int loop_run_once(struct loop *l, int max_ms)
{
	long timeout;
	int n, rc;

	assert(!l->dispatching && !l->firing);
	n = build_items(l);
	if (n < 0)
		return n;
	timeout = poll_timeout(l, max_ms);
	rc = poll(l->items, (nfds_t)n, (int)timeout);
	if (rc < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	/* Even with no fd ready: sockets due for a recheck. */
	dispatch(l, n);
	fire_timers(l);
	return 0;
}
