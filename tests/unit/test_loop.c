/*
 * Unit tests for loop: fd and ZeroMQ watches, pausing, timers in due order,
 * disarm and re-arm, and adding or deleting watches from inside callbacks.
 * Readiness comes from real pipes and an inproc PAIR socket; waits are
 * bounded by max_ms so a broken loop fails instead of hanging.
 */
#include "loop.h"
#include "testhelp.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

/* What a callback saw; each test keeps its own. */
struct hit {
	int count;
	short revents;
	struct loop *l;
	struct loop_watch *self;    /* The watch this hit belongs to. */
	struct loop_watch **victim; /* A watch to delete, or NULL. */
	void *ptr;		    /* Test-specific: a socket, a timer... */
	int fd;			    /* Test-specific fd. */
	int order[8];		    /* For timers: ids in firing order. */
	int norder;
};

static void on_hit(void *arg, short revents)
{
	struct hit *h = arg;

	h->count++;
	h->revents = revents;
}

/* A pipe whose read end is readable (one byte in it). */
static void readable_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0 || write(p[1], "x", 1) != 1)
		abort();
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

static void test_fd_readable(void)
{
	struct loop *l = loop_new();
	struct hit h = {0};
	int p[2];

	REQUIRE(l);
	readable_pipe(p);
	REQUIRE(loop_add_fd(l, p[0], ZMQ_POLLIN, on_hit, &h));
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(h.count == 1);
	CHECK(h.revents & ZMQ_POLLIN);
	CHECK(!(h.revents & ZMQ_POLLOUT));
	/* Level-triggered: the byte is still there, so it fires again. */
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(h.count == 2);
	loop_free(l); /* Frees the watch still registered. */
	close_pipe(p);
}

static void test_fd_not_ready(void)
{
	struct loop *l = loop_new();
	struct hit h = {0};
	int p[2];

	REQUIRE(l);
	REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	REQUIRE(loop_add_fd(l, p[0], ZMQ_POLLIN, on_hit, &h));
	CHECK(loop_run_once(l, 10) == 0);
	CHECK(h.count == 0);
	loop_free(l);
	close_pipe(p);
}

static void test_pause(void)
{
	struct loop *l = loop_new();
	struct loop_watch *w;
	struct hit h = {0};
	int p[2];

	REQUIRE(l);
	readable_pipe(p);
	w = loop_add_fd(l, p[0], ZMQ_POLLIN, on_hit, &h);
	REQUIRE(w);
	loop_set_events(w, 0);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 0);
	loop_set_events(w, ZMQ_POLLIN);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(h.count == 1);
	loop_del(l, w);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 1);
	loop_free(l);
	close_pipe(p);
}

static void test_fd_writable(void)
{
	struct loop *l = loop_new();
	struct hit h = {0};
	int p[2];

	REQUIRE(l);
	REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	REQUIRE(loop_add_fd(l, p[1], ZMQ_POLLOUT, on_hit, &h));
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(h.count == 1);
	CHECK(h.revents == ZMQ_POLLOUT);
	loop_free(l);
	close_pipe(p);
}

static void on_zmq(void *arg, short revents)
{
	struct hit *h = arg;
	char buf[8] = {0};
	void *sock = h->ptr;

	h->count++;
	h->revents = revents;
	if (zmq_recv(sock, buf, sizeof(buf) - 1, ZMQ_DONTWAIT) == 2 &&
	    strcmp(buf, "hi") == 0)
		h->norder++;
}

/* Two connected PAIR sockets on an inproc endpoint: a bound, b connected. */
static int zmq_pair(void *ctx, const char *ep, void **a, void **b)
{
	*a = zmq_socket(ctx, ZMQ_PAIR);
	*b = zmq_socket(ctx, ZMQ_PAIR);
	if (!*a || !*b || zmq_bind(*a, ep) < 0 || zmq_connect(*b, ep) < 0)
		return -1;
	return 0;
}

static void test_zmq_readable(void)
{
	void *ctx = zmq_ctx_new(), *a, *b;
	struct loop *l = loop_new();
	struct hit h = {0};

	REQUIRE(ctx && l);
	REQUIRE(zmq_pair(ctx, "inproc://test-loop", &a, &b) == 0);
	h.ptr = b;
	REQUIRE(loop_add_zmq(l, b, ZMQ_POLLIN, on_zmq, &h));
	CHECK(loop_run_once(l, 10) == 0);
	CHECK(h.count == 0);
	REQUIRE(zmq_send(a, "hi", 2, 0) == 2);
	CHECK(loop_run_once(l, 5000) == 0);
	CHECK(h.count == 1);
	CHECK(h.revents == ZMQ_POLLIN);
	CHECK(h.norder == 1); /* The callback received the message. */
	/* Drained: nothing more to report. */
	CHECK(loop_run_once(l, 10) == 0);
	CHECK(h.count == 1);
	loop_free(l);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
}

/*
 * A send on a watched socket processes its pending commands and so may eat
 * the edge of its ZMQ_FD while a message waits: loop_zmq_used() makes the
 * next turn read ZMQ_EVENTS without waiting on the fd.
 */
static void test_zmq_edge_eaten_by_send(void)
{
	void *ctx = zmq_ctx_new(), *a, *b;
	struct loop *l = loop_new();
	struct loop_watch *w;
	struct hit h = {0};
	char buf[8];

	REQUIRE(ctx && l);
	REQUIRE(zmq_pair(ctx, "inproc://test-loop-edge", &a, &b) == 0);
	h.ptr = b;
	w = loop_add_zmq(l, b, ZMQ_POLLIN, on_zmq, &h);
	REQUIRE(w);
	CHECK(loop_run_once(l, 0) == 0); /* the first check after adding */
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 0);
	REQUIRE(zmq_send(a, "hi", 2, 0) == 2);
	REQUIRE(zmq_send(b, "yo", 2, 0) == 2); /* eats b's edge */
	loop_zmq_used(w);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 1);
	CHECK(h.norder == 1);
	REQUIRE(zmq_recv(a, buf, sizeof(buf), 0) == 2);
	/* Resuming a paused socket also checks it at once. */
	loop_set_events(w, 0);
	REQUIRE(zmq_send(a, "hi", 2, 0) == 2);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 1);
	loop_set_events(w, ZMQ_POLLIN);
	CHECK(loop_run_once(l, 0) == 0);
	CHECK(h.count == 2);
	CHECK(h.norder == 2);
	loop_free(l);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
}

struct tmr {
	struct loop_timer t;
	int id;
	int rearm;	 /* Re-arm itself this many more times. */
	struct hit *log; /* Shared record of firing order. */
};

static void on_timer(void *arg, short revents)
{
	struct tmr *t = arg;

	(void)revents;
	CHECK(!t->t.armed); /* Disarmed before the callback runs. */
	if (t->log->norder < 8)
		t->log->order[t->log->norder] = t->id;
	t->log->norder++;
	if (t->rearm-- > 0)
		loop_timer_arm(t->log->l, &t->t, 1, on_timer, t);
}

/* Turns the loop until cond holds or 5 s pass; returns cond. */
#define RUN_UNTIL(l, cond)                                                     \
	do {                                                                   \
		uint64_t th_end = loop_now_ms() + 5000;                        \
		while (!(cond) && loop_now_ms() < th_end)                      \
			CHECK(loop_run_once((l), 100) == 0);                   \
	} while (0)

static void test_timers_order(void)
{
	struct hit log = {0};
	struct tmr t[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
	int i;

	log.l = loop_new();
	REQUIRE(log.l);
	for (i = 0; i < 4; i++)
		t[i].log = &log;
	loop_timer_arm(log.l, &t[0].t, 30, on_timer, &t[0]);
	loop_timer_arm(log.l, &t[1].t, 10, on_timer, &t[1]);
	loop_timer_arm(log.l, &t[2].t, 20, on_timer, &t[2]);
	/* Armed at 5 ms, then disarmed: must never fire. */
	loop_timer_arm(log.l, &t[3].t, 5, on_timer, &t[3]);
	CHECK(t[3].t.armed);
	loop_timer_disarm(log.l, &t[3].t);
	CHECK(!t[3].t.armed);
	loop_timer_disarm(log.l, &t[3].t); /* Twice is harmless. */
	RUN_UNTIL(log.l, log.norder >= 3);
	CHECK(log.norder == 3);
	CHECK(log.order[0] == 2);
	CHECK(log.order[1] == 3);
	CHECK(log.order[2] == 1);
	for (i = 0; i < 4; i++)
		CHECK(!t[i].t.armed);
	loop_free(log.l);
}

static void test_timer_rearm(void)
{
	struct hit log = {0};
	struct tmr a = {.id = 1, .rearm = 2}, b = {.id = 2};
	struct loop_timer never = {0};

	log.l = loop_new();
	REQUIRE(log.l);
	a.log = b.log = &log;
	loop_timer_disarm(log.l, &never); /* Never armed: a no-op. */
	/* Re-arming moves the timer: b armed at 1 ms, then moved to 60 s. */
	loop_timer_arm(log.l, &b.t, 1, on_timer, &b);
	loop_timer_arm(log.l, &b.t, 60000, on_timer, &b);
	loop_timer_arm(log.l, &a.t, 0, on_timer, &a);
	RUN_UNTIL(log.l, log.norder >= 3);
	CHECK(log.norder == 3); /* a fired once and re-armed itself twice. */
	CHECK(log.order[0] == 1 && log.order[1] == 1 && log.order[2] == 1);
	CHECK(!a.t.armed);
	CHECK(b.t.armed);
	loop_timer_disarm(log.l, &b.t);
	loop_free(log.l);
}

static void on_rearm_zero(void *arg, short revents)
{
	struct hit *h = arg;

	(void)revents;
	if (++h->count < 3)
		loop_timer_arm(h->l, h->ptr, 0, on_rearm_zero, h);
}

/* A timer re-arming itself with 0 ms fires once per turn, not in a loop
 * that never lets the turn end. */
static void test_timer_rearm_zero(void)
{
	struct loop_timer t = {0};
	struct hit h = {0};

	h.l = loop_new();
	REQUIRE(h.l);
	h.ptr = &t;
	loop_timer_arm(h.l, &t, 0, on_rearm_zero, &h);
	CHECK(loop_run_once(h.l, 1000) == 0);
	CHECK(h.count == 1);
	CHECK(t.armed);
	RUN_UNTIL(h.l, h.count >= 3);
	CHECK(h.count == 3);
	CHECK(!t.armed);
	loop_free(h.l);
}

/* run_once with nothing ready returns when the timer is due. */
static void test_timer_timeout(void)
{
	struct loop *l = loop_new();
	struct loop_timer t = {0};
	struct hit h = {0}, fdh = {0};
	int p[2];

	REQUIRE(l);
	REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	REQUIRE(loop_add_fd(l, p[0], ZMQ_POLLIN, on_hit, &fdh));
	loop_timer_arm(l, &t, 20, on_hit, &h);
	/* Without the timer this would block forever; a 20 ms timer may need
	 * another turn if poll returned a hair early, hence the bound. */
	for (int i = 0; i < 100 && !h.count; i++)
		CHECK(loop_run_once(l, -1) == 0);
	CHECK(h.count == 1);
	CHECK(h.revents == 0);
	CHECK(fdh.count == 0);
	loop_free(l);
	close_pipe(p);
}

/* Same with no watches at all, where the loop cannot use zmq_poll. */
static void test_timer_no_watches(void)
{
	struct loop *l = loop_new();
	struct loop_timer t = {0};
	struct hit h = {0};

	REQUIRE(l);
	loop_free(NULL);
	loop_del(l, NULL);
	loop_timer_arm(l, &t, 5, on_hit, &h);
	for (int i = 0; i < 100 && !h.count; i++)
		CHECK(loop_run_once(l, -1) == 0);
	CHECK(h.count == 1);
	CHECK(loop_run_once(l, 0) == 0); /* Nothing at all: returns. */
	loop_free(l);
}

static void on_del_self(void *arg, short revents)
{
	struct hit *h = arg;

	(void)revents;
	h->count++;
	loop_del(h->l, h->self);
	loop_del(h->l, h->self); /* A second delete in the same round. */
}

static void test_delete_self(void)
{
	struct hit h = {0};
	int p[2];

	h.l = loop_new();
	REQUIRE(h.l);
	readable_pipe(p);
	h.self = loop_add_fd(h.l, p[0], ZMQ_POLLIN, on_del_self, &h);
	REQUIRE(h.self);
	CHECK(loop_run_once(h.l, 1000) == 0);
	CHECK(h.count == 1);
	/* Still readable, but the watch is gone. */
	CHECK(loop_run_once(h.l, 0) == 0);
	CHECK(h.count == 1);
	loop_free(h.l);
	close_pipe(p);
}

static void on_del_other(void *arg, short revents)
{
	struct hit *h = arg;

	(void)revents;
	h->count++;
	loop_del(h->l, *h->victim);
	*h->victim = NULL;
}

/* Two ready watches, each deleting the other: whichever runs first wins and
 * the other is skipped in the same round. */
static void test_delete_other(void)
{
	struct loop *l = loop_new();
	struct loop_watch *wa, *wb;
	struct hit a = {0}, b = {0};
	int pa[2], pb[2];

	REQUIRE(l);
	readable_pipe(pa);
	readable_pipe(pb);
	a.l = b.l = l;
	a.victim = &wb;
	b.victim = &wa;
	wa = loop_add_fd(l, pa[0], ZMQ_POLLIN, on_del_other, &a);
	wb = loop_add_fd(l, pb[0], ZMQ_POLLIN, on_del_other, &b);
	REQUIRE(wa && wb);
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(a.count + b.count == 1);
	/* The survivor keeps firing; the deleted one never does. */
	CHECK(loop_run_once(l, 1000) == 0);
	CHECK(a.count + b.count == 2);
	CHECK(a.count == 0 || b.count == 0);
	loop_free(l);
	close_pipe(pa);
	close_pipe(pb);
}

static void on_add(void *arg, short revents)
{
	struct hit *h = arg;

	(void)revents;
	if (h->count++ == 0)
		CHECK(loop_add_fd(h->l, h->fd, ZMQ_POLLIN, on_hit, h->ptr));
}

static void test_add_in_callback(void)
{
	struct hit h = {0}, added = {0};
	int p[2], q[2];

	h.l = loop_new();
	REQUIRE(h.l);
	readable_pipe(p);
	readable_pipe(q);
	h.ptr = &added;
	h.fd = q[0]; /* The fd the callback adds a watch for. */
	REQUIRE(loop_add_fd(h.l, p[0], ZMQ_POLLIN, on_add, &h));
	CHECK(loop_run_once(h.l, 1000) == 0);
	CHECK(h.count == 1);
	CHECK(added.count == 0); /* Not dispatched in the round it was added. */
	CHECK(loop_run_once(h.l, 1000) == 0);
	CHECK(h.count == 2);
	CHECK(added.count == 1);
	loop_free(h.l);
	close_pipe(p);
	close_pipe(q);
}

static void on_timer_del(void *arg, short revents)
{
	struct hit *h = arg;

	(void)revents;
	h->count++;
	loop_del(h->l, h->self);
}

/* A timer callback deleting a watch, outside the dispatch round. */
static void test_timer_deletes_watch(void)
{
	struct loop_timer t = {0};
	struct hit h = {0}, fdh = {0};
	int p[2];

	h.l = loop_new();
	REQUIRE(h.l);
	REQUIRE(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	h.self = loop_add_fd(h.l, p[0], ZMQ_POLLIN, on_hit, &fdh);
	REQUIRE(h.self);
	loop_timer_arm(h.l, &t, 0, on_timer_del, &h);
	CHECK(loop_run_once(h.l, 1000) == 0);
	CHECK(h.count == 1);
	CHECK(write(p[1], "x", 1) == 1);
	CHECK(loop_run_once(h.l, 0) == 0);
	CHECK(fdh.count == 0);
	loop_free(h.l);
	close_pipe(p);
}

static void test_now_monotonic(void)
{
	uint64_t a = loop_now_ms(), b = loop_now_ms();

	CHECK(a > 0);
	CHECK(b >= a);
}

int main(void)
{
	TEST(test_fd_readable);
	TEST(test_fd_not_ready);
	TEST(test_pause);
	TEST(test_fd_writable);
	TEST(test_zmq_readable);
	TEST(test_zmq_edge_eaten_by_send);
	TEST(test_timers_order);
	TEST(test_timer_rearm);
	TEST(test_timer_rearm_zero);
	TEST(test_timer_timeout);
	TEST(test_timer_no_watches);
	TEST(test_delete_self);
	TEST(test_delete_other);
	TEST(test_add_in_callback);
	TEST(test_timer_deletes_watch);
	TEST(test_now_monotonic);
	return test_report();
}
