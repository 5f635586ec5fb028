/*
 * libfloor: the resident memory e2b-ci cannot go below with Debian's builds
 * of the libraries on the design card. It links exactly the daemon's
 * libraries, makes each initialise what the daemon's startup makes it
 * initialise (a ZeroMQ context with a socket, an MHD daemon on an epoll fd,
 * a jansson object, a UUID, the watchdog query), prints "ready" and waits.
 * `make bench` measures its RSS next to the idle daemon's: the difference
 * is what e2b-ci itself holds.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <zmq.h>

static enum MHD_Result refuse(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **state)
{
	(void)cls, (void)c, (void)url, (void)method, (void)version;
	(void)data, (void)size, (void)state;
	return MHD_NO;
}

int main(void)
{
	void *z = zmq_ctx_new(), *s = z ? zmq_socket(z, ZMQ_DEALER) : NULL;
	json_t *j = json_object();
	struct MHD_Daemon *d;
	uuid_t u;

	uuid_generate_random(u);
	/* Port 0: the kernel picks a free one. */
	d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
			     refuse, NULL, MHD_OPTION_END);
	if (!s || !j || !d) {
		fprintf(stderr, "libfloor: setup failed\n");
		return 1;
	}
	printf("ready %d\n", sd_watchdog_enabled(0, NULL));
	fflush(stdout);
	pause();
	return 0;
}
