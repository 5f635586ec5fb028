/*
 * test_kernel_start: a kernel whose start fails before it was spawned
 * (here: no connection file can be written) leaves nothing behind, and
 * above all closes no fd it does not own. Its cgroup fds were 0 in the
 * zeroed struct until kres_prepare set them, so a failure before that made
 * kernel_free close fd 0, again on every failed start: whatever the daemon
 * had opened there since (a socket, a pipe) was closed under it.
 */
#include "testhelp.h"

#include "kernel.h"
#include "kspec.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char spec_json[] =
    "{\"argv\": [\"/bin/true\", \"{connection_file}\"],"
    " \"display_name\": \"t\", \"language\": \"t\"}";

static void test_failed_start_closes_no_fd_of_others(void)
{
	struct kspec *spec;
	struct kernel_env env = {0};
	char err[512] = "";
	int fd0;

	spec = kspec_parse(spec_json, strlen(spec_json), "/tmp", "t", err,
			   sizeof(err));
	REQUIRE(spec);
	/* Something the process owns sits on fd 0. */
	fd0 = open("/dev/null", O_RDONLY);
	REQUIRE(fd0 >= 0);
	REQUIRE(dup2(fd0, 0) == 0);
	close(fd0);
	env.runtime_dir = "/nonexistent/e2bci-test-runtime";
	for (int i = 0; i < 2; i++) {
		CHECK(kernel_start(&env, spec, "/", NULL, NULL, err,
				   sizeof(err)) == NULL);
		CHECK(strstr(err, "connection file") != NULL);
		CHECK(fcntl(0, F_GETFD) >= 0);
	}
	CHECK(kernel_live() == 0);
	kspec_free(spec);
}

int main(void)
{
	TEST(test_failed_start_closes_no_fd_of_others);
	return test_report();
}
