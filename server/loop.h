/*
 * loop: the daemon's one event loop.
 *
 * Everything the daemon waits on goes through here: ZeroMQ sockets of every
 * kernel, plain fds (libmicrohttpd's epoll fd, the signalfd, kernel stdio
 * pipes, envd sockets, watched client sockets) and one-shot timers. It is a
 * thin layer over poll(2), rebuilt from the watch list each turn, which is
 * cheap for the few dozen entries a sandbox has; sockets are polled through
 * their ZMQ_FD (see loop.c for the edge rules).
 *
 * Only the loop thread may call these functions. Callbacks may add and delete
 * watches and timers, including their own, at any time.
 */
#ifndef E2BCI_LOOP_H
#define E2BCI_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;

/* revents: ZMQ_POLLIN / ZMQ_POLLOUT / ZMQ_POLLERR bits as zmq_poll reports. */
typedef void (*loop_fn)(void *arg, short revents);

/* A timer lives inside its owner's struct (intrusive); the loop never frees it.
 */
struct loop_timer {
	uint64_t due_ms;
	loop_fn fn;
	void *arg;
	bool armed;
	struct loop_timer *next;
};

/* Returns a new loop or NULL. */
struct loop *loop_new(void);
/* Frees the loop and every watch still registered; accepts NULL. */
void loop_free(struct loop *l);

/* Watches a plain fd (events: ZMQ_POLLIN|ZMQ_POLLOUT). Returns a handle owned
 * by the loop, valid until loop_del(); NULL on allocation failure. */
struct loop_watch *loop_add_fd(struct loop *l, int fd, short events, loop_fn fn,
			       void *arg);
/* Same for a ZeroMQ socket. */
struct loop_watch *loop_add_zmq(struct loop *l, void *sock, short events,
				loop_fn fn, void *arg);
/* Changes the events a watch waits for (0 pauses it). */
void loop_set_events(struct loop_watch *w, short events);
/* Tells the loop a watched socket was sent on or read outside its callback:
 * such a call may consume the edge of its ZMQ_FD, so the loop reads its
 * ZMQ_EVENTS next turn. Every send on a watched socket must be followed by
 * this (or happen inside that socket's own callback). Accepts NULL. */
void loop_zmq_used(struct loop_watch *w);
/* Removes a watch; safe from inside any callback, accepts NULL. */
void loop_del(struct loop *l, struct loop_watch *w);

/* Arms t to fire once, ms milliseconds from now (re-arming moves it). */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms,
		    loop_fn fn, void *arg);
/* Disarms t if armed; safe on a timer never armed (zeroed). */
void loop_timer_disarm(struct loop *l, struct loop_timer *t);

/* Monotonic milliseconds. */
uint64_t loop_now_ms(void);

/* Waits at most max_ms (-1: no limit beyond timers) and runs what is ready.
 * Returns 0, or a negative errno when poll failed for a reason other than
 * EINTR. */
int loop_run_once(struct loop *l, int max_ms);

#endif
