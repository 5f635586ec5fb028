/*
 * Unit tests for kernel_recv_frames, the first step of the daemon's kernel
 * receive path: a whole message comes back as its frames, an empty socket
 * gives 0, an overlong message is read to its end and dropped, and a receive
 * that fails after some frames arrived closes every one of them.
 *
 * ZeroMQ delivers multipart messages atomically, so a receive cannot fail
 * mid-message on its own; the failure is injected. The binary is linked with
 * -Wl,--wrap for zmq_msg_recv, zmq_msg_init and zmq_msg_close (mk/unit.mk):
 * the wrappers count every message our code opened and closed, and make the
 * receive of a chosen frame fail with EINTR. Frames are larger than
 * ZeroMQ's in-place size, so a frame left open is also a heap leak that
 * LeakSanitizer reports under `make asan`.
 */
#include "kernel.h"
#include "testhelp.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

int __real_zmq_msg_recv(zmq_msg_t *msg, void *s, int flags);
int __real_zmq_msg_init(zmq_msg_t *msg);
int __real_zmq_msg_close(zmq_msg_t *msg);
int __wrap_zmq_msg_recv(zmq_msg_t *msg, void *s, int flags);
int __wrap_zmq_msg_init(zmq_msg_t *msg);
int __wrap_zmq_msg_close(zmq_msg_t *msg);

static int recv_calls, fail_at, opened, closed;

int __wrap_zmq_msg_recv(zmq_msg_t *msg, void *s, int flags)
{
	if (++recv_calls == fail_at) {
		errno = EINTR;
		return -1;
	}
	return __real_zmq_msg_recv(msg, s, flags);
}

int __wrap_zmq_msg_init(zmq_msg_t *msg)
{
	opened++;
	return __real_zmq_msg_init(msg);
}

int __wrap_zmq_msg_close(zmq_msg_t *msg)
{
	closed++;
	return __real_zmq_msg_close(msg);
}

struct pair {
	void *ctx, *tx, *rx;
};

static void pair_open(struct pair *p)
{
	int zero = 0;

	p->ctx = zmq_ctx_new();
	p->rx = zmq_socket(p->ctx, ZMQ_PAIR);
	p->tx = zmq_socket(p->ctx, ZMQ_PAIR);
	zmq_setsockopt(p->rx, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(p->tx, ZMQ_LINGER, &zero, sizeof(zero));
	if (zmq_bind(p->rx, "inproc://recv") != 0 ||
	    zmq_connect(p->tx, "inproc://recv") != 0)
		abort();
}

static void pair_close(struct pair *p)
{
	zmq_close(p->tx);
	zmq_close(p->rx);
	zmq_ctx_term(p->ctx);
}

/* Sends one message of nframes frames of 100 bytes (frame i filled with
 * 'a' + i), and waits until it can be received. */
static void send_frames(struct pair *p, int nframes)
{
	char buf[100];
	zmq_pollitem_t it = {p->rx, 0, ZMQ_POLLIN, 0};

	for (int i = 0; i < nframes; i++) {
		memset(buf, 'a' + i % 26, sizeof(buf));
		if (zmq_send(p->tx, buf, sizeof(buf),
			     i + 1 < nframes ? ZMQ_SNDMORE : 0) < 0)
			abort();
	}
	if (zmq_poll(&it, 1, 5000) != 1)
		abort();
}

static void reset_counts(void)
{
	recv_calls = fail_at = opened = closed = 0;
}

static void test_whole_message(void)
{
	struct pair p;
	zmq_msg_t parts[KERNEL_MAX_FRAMES];
	int n;

	pair_open(&p);
	reset_counts();
	CHECK(kernel_recv_frames(p.rx, parts) == 0);
	CHECK(opened == closed);
	send_frames(&p, 7);
	n = kernel_recv_frames(p.rx, parts);
	REQUIRE(n == 7);
	for (int i = 0; i < n; i++) {
		CHECK(zmq_msg_size(&parts[i]) == 100);
		CHECK(((char *)zmq_msg_data(&parts[i]))[0] == 'a' + i);
		zmq_msg_close(&parts[i]);
	}
	CHECK(opened == closed);
	pair_close(&p);
}

/* The second, third or last frame fails: all frames before it are closed,
 * the first one included. */
static void test_failure_after_frames_closes_them(void)
{
	static const int at[] = {2, 3, 7};
	struct pair p;
	zmq_msg_t parts[KERNEL_MAX_FRAMES];

	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		pair_open(&p);
		send_frames(&p, 7);
		reset_counts();
		fail_at = at[i];
		CHECK(kernel_recv_frames(p.rx, parts) == -1);
		CHECK(recv_calls == at[i]);
		CHECK(opened == at[i]);
		CHECK(opened == closed);
		pair_close(&p);
	}
}

/* A failure on the very first frame is no message at all: -1, nothing
 * left open. */
static void test_failure_on_first_frame(void)
{
	struct pair p;
	zmq_msg_t parts[KERNEL_MAX_FRAMES];

	pair_open(&p);
	send_frames(&p, 3);
	reset_counts();
	fail_at = 1;
	CHECK(kernel_recv_frames(p.rx, parts) == -1);
	CHECK(opened == 1 && closed == 1);
	pair_close(&p);
}

/* More frames than slots: read to the end and dropped, the next message
 * comes through whole; a failure past the last slot closes every slot. */
static void test_overlong_message(void)
{
	struct pair p;
	zmq_msg_t parts[KERNEL_MAX_FRAMES];
	int n;

	pair_open(&p);
	send_frames(&p, KERNEL_MAX_FRAMES + 5);
	send_frames(&p, 2);
	reset_counts();
	CHECK(kernel_recv_frames(p.rx, parts) == -1);
	CHECK(recv_calls == KERNEL_MAX_FRAMES + 5);
	CHECK(opened == closed);
	n = kernel_recv_frames(p.rx, parts);
	CHECK(n == 2);
	for (int i = 0; i < n; i++)
		zmq_msg_close(&parts[i]);
	CHECK(opened == closed);

	send_frames(&p, KERNEL_MAX_FRAMES + 5);
	reset_counts();
	fail_at = KERNEL_MAX_FRAMES + 3;
	CHECK(kernel_recv_frames(p.rx, parts) == -1);
	CHECK(opened == closed);
	pair_close(&p);
}

int main(void)
{
	TEST(test_whole_message);
	TEST(test_failure_after_frames_closes_them);
	TEST(test_failure_on_first_frame);
	TEST(test_overlong_message);
	return test_report();
}
