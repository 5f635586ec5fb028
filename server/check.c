/*
 * check: what `e2b-ci --check` verifies beyond the option values.
 *
 * For every default language: that a kernelspec resolves on the search
 * path, that its argv[0] is an executable file (looked up on PATH the way
 * execvp does), and that each command its kernel.json lists under
 * metadata["e2b-ci"]["check"] exits 0. Our own kernelspecs list there their
 * launcher's check mode (kernels/host/launch.sh --check: the kernel host
 * binary it would start, the runner files; kernels/java/run.sh --check: the
 * compiled runner), so the launcher's own search decides, not a copy of it.
 *
 * It starts no kernel and opens no port. A check command only looks for
 * files; it runs in the kernelspec's directory with stdin and stdout on
 * /dev/null and a deadline, and the last lines of its stderr are the
 * reason when it fails. Startup only, before anything else runs; blocking.
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kspec.h"

#define CHECK_DEADLINE_MS 10000
#define CHECK_TAIL	  600

extern char **environ;

static bool check_is_exec(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

/* Whether cmd names an executable file: as a path when it has a '/', else
 * in one of $PATH's directories (execvp's default path when unset). */
static bool check_resolves(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(cmd, '/'))
		return check_is_exec(cmd);
	if (!path)
		path = "/bin:/usr/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)n, path,
			 n ? "/" : "", cmd);
		if (check_is_exec(buf))
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static uint64_t check_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keeps the last CHECK_TAIL bytes read from fd until EOF or the deadline.
 * Returns 0 at EOF, -1 at the deadline. */
static int check_drain(int fd, char *tail, size_t *len, uint64_t deadline)
{
	char buf[1024];
	struct pollfd p = {fd, POLLIN, 0};

	for (;;) {
		uint64_t now = check_now_ms();
		if (now >= deadline)
			return -1;
		if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
			return -1;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return 0;
		}
		size_t keep = (size_t)n < CHECK_TAIL ? (size_t)n : CHECK_TAIL;
		if (*len + keep > CHECK_TAIL) {
			size_t drop = *len + keep - CHECK_TAIL;
			memmove(tail, tail + drop, *len - drop);
			*len -= drop;
		}
		memcpy(tail + *len, buf + n - keep, keep);
		*len += keep;
	}
}

/* The captured stderr as one line: newlines become " | ", other control
 * characters spaces, surrounding blanks trimmed. */
static void check_one_line(char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;

	while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	for (size_t i = 0; i < len && o + 4 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n') {
			memcpy(out + o, " | ", 3);
			o += 3;
		} else {
			out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
		}
	}
	out[o] = '\0';
}

static int check_spawn(char **argv, const char *dir, int errfd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	posix_spawn_file_actions_addchdir_np(&fa, dir);
	rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

/* The name a check command goes by in reasons: the script an interpreter
 * runs ("/bin/sh .../launch.sh" -> launch.sh), else the program. */
static const char *check_base(char *const *argv)
{
	const char *a = argv[1] && argv[1][0] != '-' ? argv[1] : argv[0];
	const char *slash = strrchr(a, '/');

	return slash ? slash + 1 : a;
}

/* Runs one check command; 0 when it exits 0, else -1 with a reason. */
static int check_command(const struct kspec *k, char *const *cmd, char *why,
			 size_t whylen)
{
	char **argv = kspec_subst_argv(k, cmd, "kernel-check.json");
	char tail[CHECK_TAIL], line[2 * CHECK_TAIL];
	int p[2] = {-1, -1}, status = 0, rc = -1;
	size_t len = 0;
	pid_t pid;

	if (!argv || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "cannot run its check: %s",
			 strerror(errno));
		goto out;
	}
	if ((errno = check_spawn(argv, k->dir, p[1], &pid)) != 0) {
		snprintf(why, whylen, "cannot run its check %s: %s", argv[0],
			 strerror(errno));
		goto out;
	}
	close(p[1]);
	p[1] = -1;
	if (check_drain(p[0], tail, &len, check_now_ms() + CHECK_DEADLINE_MS) <
	    0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check_one_line(tail, len, line, sizeof(line));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = 0;
	else
		snprintf(why, whylen, "%s (its check %s %s %d)",
			 *line ? line : "no message", check_base(argv),
			 WIFEXITED(status) ? "exited with status"
					   : "was killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status)
					   : WTERMSIG(status));
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	kspec_strv_free(argv);
	return rc;
}

/* Checks one language; 0, or -1 with a reason. */
static int check_language(char *const *path, const char *lang, FILE *out,
			  char *why, size_t whylen)
{
	struct kspec *k = kspec_resolve(path, lang);
	int rc = -1;

	if (!k) {
		snprintf(why, whylen,
			 "no kernelspec for %s on the search path "
			 "(--kernel-path, then the Jupyter dirs)",
			 lang);
		return -1;
	}
	if (!check_resolves(k->argv[0])) {
		snprintf(why, whylen,
			 "kernelspec %s (%s): %s is not an executable file%s",
			 k->name, k->dir, k->argv[0],
			 strchr(k->argv[0], '/') ? "" : " on PATH");
		goto out;
	}
	for (size_t i = 0; k->check && k->check[i]; i++) {
		char r[3 * CHECK_TAIL];
		if (check_command(k, k->check[i], r, sizeof(r)) < 0) {
			snprintf(why, whylen, "kernelspec %s (%s): %s", k->name,
				 k->dir, r);
			goto out;
		}
	}
	fprintf(out, "kernel %s: kernelspec %s (%s): ok\n", lang, k->name,
		k->dir);
	rc = 0;
out:
	kspec_free(k);
	return rc;
}

int check_kernels(char *const *path, char *const *languages, FILE *out,
		  FILE *err)
{
	char why[6 * CHECK_TAIL];
	int failed = 0;

	for (size_t i = 0; languages && languages[i]; i++) {
		if (check_language(path, languages[i], out, why, sizeof(why)) ==
		    0)
			continue;
		fprintf(err, "e2b-ci: --check: kernel %s: %s\n", languages[i],
			why);
		failed++;
	}
	return failed;
}
