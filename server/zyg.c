/*
 * zyg.c: the zygotes (see zyg.h and kernels/ZYGOTE-PROTOCOL.md).
 *
 * Owns one struct zyg per kernelspec served, in a list that lives from the
 * first zyg_start to zyg_shutdown: the zygote's pid and pidfd, the daemon
 * end of its SOCK_SEQPACKET channel, its stdout and stderr pipes, its
 * state, the restart timer and back-off. An outage is logged once, when
 * the zygote is reaped; kernels are exec'd until a new one is READY.
 *
 * States: STARTING (launched, its "ready" not read yet) -> READY -> DEAD
 * (reaped; the restart timer is armed) -> STARTING ... ; OFF when the
 * daemon gave up on it for good ("threads" or "parent": a preload or the
 * set-up is broken, a new zygote would be the same; threads in "ready"
 * get three zygotes in a row first, a thread slow to end on a busy or
 * emulated CPU being no broken preload). Only a READY zygote
 * is asked for kernels. Its death is seen on its pidfd (reaped there); a
 * closed channel, a "failed" or a spawn that got no answer within a second
 * kill it, and the reap follows at once.
 *
 * Requests are asynchronous: zyg_spawn sends one and queues it (struct
 * zyg_wait); the zygote answers in order, and the loop's channel watch
 * matches each answer to the head of the queue by id and calls its done.
 * The head has a second from the moment the zygote could start on it (its
 * sending, or the previous answer) or the zygote is killed. When a zygote
 * dies with requests queued, what it forked for them is killed too (a
 * kernel would run on a connection file the exec'd one then reuses), and
 * each is answered -EAGAIN: exec. A cancelled request stays queued until
 * its answer, whose pid is then killed and reaped. While any request is
 * queued, zyg_outstanding() holds kproc's stray reaping back (an answer's
 * pid is the daemon's child before the answer is read); zyg_when_idle
 * runs it once the queues are empty.
 */
#include "zyg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "child.h"
#include "kspec.h"
#include "log.h"

#define ZYG_ANSWER_MS	   1000
#define ZYG_BACKOFF_MIN_MS 1000
#define ZYG_THREAD_TRIES   3
#define ZYG_BACKOFF_MAX_MS 60000
#define ZYG_MSG_MAX	   (64 * 1024)
#define ZYG_LINE	   1024

enum zyg_state { ZYG_STARTING, ZYG_READY, ZYG_DEAD, ZYG_OFF };

struct zyg;

/* A request sent, awaiting its answer. */
struct zyg_wait {
	char id[65];
	void (*done)(void *arg, pid_t pid); /* NULL once cancelled */
	void *arg;
	struct zyg_wait *next;
};

/* The zygote's stdout or stderr, read line by line into the log. */
struct zyg_pipe {
	int fd;
	struct loop_watch *w;
	struct zyg *z;
	char line[ZYG_LINE];
	size_t len;
};

struct zyg {
	const struct kspec *spec; /* borrowed from the kspec cache */
	const struct zyg_kind *kind;
	char **envp; /* the kernels' environment, owned */
	enum zyg_state state;
	pid_t pid; /* 0 when none runs */
	int pidfd, chan;
	struct loop_watch *pidw, *chanw;
	struct zyg_pipe out, err;
	struct loop_timer restart;
	struct zyg_wait *waits;	  /* sent, unanswered; oldest first */
	struct loop_timer answer; /* the oldest's second */
	uint64_t backoff_ms;
	unsigned thread_tries; /* zygotes in a row ready with threads */
	bool served;	       /* forked a kernel since its start */
	bool was_ready;	       /* a zygote of spec was READY once */
	const char *why_death; /* set by whoever killed it, for the log */
	struct zyg *next;
};

/* A kind of zygote: the script its kernelspec's dir ships, the argv
 * shape of the kernels it forks, and how it is started (the kernelspec's
 * argv[0], then pre, the script, post, then "--channel-fd 3"). */
struct zyg_kind {
	const char *name;
	const char *script;
	const char *const *shape; /* argv[1..], NULL: any from here on */
	const char *const *pre, *const *post;
	bool preload; /* takes --preload (--python-preload) */
};

static const struct zyg_kind zyg_kinds[] = {
    {"Python", "e2b_ci_zygote.py",
     (const char *const[]){"-m", "ipykernel_launcher", NULL},
     (const char *const[]){NULL}, (const char *const[]){NULL}, true},
    /* kernels/ir: IRkernel's argv, as Debian's kernelspec has it. */
    {"R", "e2b_ci_zygote.R",
     (const char *const[]){"--slave", "-e", "IRkernel::main()", "--args",
			   "{connection_file}", NULL},
     (const char *const[]){"--slave", "--no-restore", "-f", NULL},
     (const char *const[]){"--args", NULL}, false},
};

static struct zyg_opts zyg_o;
static struct zyg *zyg_list;
static bool zyg_stopping;
static void (*zyg_idle_fn)(void);

static void zyg_launch(struct zyg *z);
static void zyg_fail_waits(struct zyg *z);

void zyg_init(const struct zyg_opts *o)
{
	zyg_o = *o;
}

/* Whether spec's argv has kind k's shape (the Python one ends with the
 * kernelspec's own arguments; the R one is exact). */
static bool zyg_shaped(const struct zyg_kind *k, const struct kspec *spec)
{
	size_t i;

	for (i = 0; k->shape[i]; i++)
		if (i + 1 >= (size_t)spec->argc ||
		    strcmp(spec->argv[i + 1], k->shape[i]) != 0)
			return false;
	return k->preload || i + 1 == (size_t)spec->argc;
}

/* The kind of zygote that serves spec, or NULL. */
static const struct zyg_kind *zyg_kind_of(const struct kspec *spec)
{
	char path[600];

	for (size_t i = 0;
	     zyg_o.on && i < sizeof(zyg_kinds) / sizeof(*zyg_kinds); i++) {
		snprintf(path, sizeof(path), "%s/%s", spec->dir,
			 zyg_kinds[i].script);
		if (zyg_shaped(&zyg_kinds[i], spec) && access(path, R_OK) == 0)
			return &zyg_kinds[i];
	}
	return NULL;
}

bool zyg_serves(const struct kspec *spec)
{
	return zyg_kind_of(spec) != NULL;
}

static struct zyg *zyg_find(const struct kspec *spec)
{
	for (struct zyg *z = zyg_list; z; z = z->next)
		if (z->spec == spec)
			return z;
	return NULL;
}

static char **zyg_strv_dup(char *const *v)
{
	size_t n = 0;
	char **c;

	while (v[n])
		n++;
	c = calloc(n + 1, sizeof(*c));
	for (size_t i = 0; c && i < n; i++) {
		c[i] = strdup(v[i]);
		if (!c[i]) {
			kspec_strv_free(c);
			return NULL;
		}
	}
	return c;
}

/* ------------------------------------------------- its output */

static void zyg_pipe_line(struct zyg_pipe *pp)
{
	pp->line[pp->len] = '\0';
	if (pp->len && strstr(pp->line, "warning"))
		log_warnx("%s zygote: %s", pp->z->spec->name, pp->line);
	else if (pp->len)
		log_debug("%s zygote: %s", pp->z->spec->name, pp->line);
	pp->len = 0;
}

/* One read into the log. Returns 1 when more may follow, 0 when nothing
 * is there now, -1 at EOF or on an error. */
static int zyg_pipe_read(struct zyg_pipe *pp)
{
	char buf[4096];
	ssize_t n = read(pp->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || pp->len == sizeof(pp->line) - 1)
			zyg_pipe_line(pp);
		if (buf[i] != '\n')
			pp->line[pp->len++] = buf[i];
	}
	return 1;
}

/* What the zygote wrote last (a traceback) is read before the close. */
static void zyg_pipe_close(struct zyg_pipe *pp)
{
	loop_del(zyg_o.loop, pp->w);
	pp->w = NULL;
	for (int i = 0; i < 16 && pp->fd >= 0; i++)
		if (zyg_pipe_read(pp) <= 0)
			break;
	if (pp->fd >= 0) {
		zyg_pipe_line(pp);
		close(pp->fd);
	}
	pp->fd = -1;
}

static void zyg_on_pipe(void *arg, short revents)
{
	struct zyg_pipe *pp = arg;

	(void)revents;
	if (zyg_pipe_read(pp) < 0)
		zyg_pipe_close(pp);
}

/* ------------------------------------------------- death and restart */

static void zyg_on_restart(void *arg, short revents)
{
	struct zyg *z = arg;

	(void)revents;
	if (!zyg_stopping && z->state == ZYG_DEAD)
		zyg_launch(z);
}

/* The zygote was reaped (status from waitpid): everything of it goes, and
 * unless the daemon gave up on it, a new one is due after the back-off. */
static void zyg_reaped(struct zyg *z, int status)
{
	char how[64];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d",
			 WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exit status %d",
			 WEXITSTATUS(status));
	loop_del(zyg_o.loop, z->pidw);
	loop_del(zyg_o.loop, z->chanw);
	z->pidw = z->chanw = NULL;
	if (z->pidfd >= 0)
		close(z->pidfd);
	if (z->chan >= 0)
		close(z->chan);
	z->pidfd = z->chan = -1;
	zyg_pipe_close(&z->out);
	zyg_pipe_close(&z->err);
	z->pid = 0;
	loop_timer_disarm(zyg_o.loop, &z->answer);
	if (zyg_stopping)
		return;
	if (z->served)
		z->backoff_ms = ZYG_BACKOFF_MIN_MS;
	z->served = false;
	if (z->state != ZYG_OFF) {
		log_warnx("%s zygote exited (%s%s%s): kernels are exec'd until "
			  "it is back (in %llu ms)",
			  z->spec->name, how, z->why_death ? ", " : "",
			  z->why_death ? z->why_death : "",
			  (unsigned long long)z->backoff_ms);
		z->state = ZYG_DEAD;
		loop_timer_arm(zyg_o.loop, &z->restart, z->backoff_ms,
			       zyg_on_restart, z);
		z->backoff_ms = z->backoff_ms * 2 > ZYG_BACKOFF_MAX_MS
				    ? ZYG_BACKOFF_MAX_MS
				    : z->backoff_ms * 2;
	}
	z->why_death = NULL;
	zyg_fail_waits(z);
}

static void zyg_on_pidfd(void *arg, short revents)
{
	struct zyg *z = arg;
	int status = 0;
	pid_t r = waitpid(z->pid, &status, WNOHANG);

	(void)revents;
	if (r == 0 || (r < 0 && errno != ECHILD))
		return;
	zyg_reaped(z, status);
}

/* Kills the zygote and reaps it now (it holds no state worth a clean
 * exit); why goes into the log line. */
static void zyg_kill_now(struct zyg *z, const char *why)
{
	int status = 0;

	if (z->pid <= 0)
		return;
	z->why_death = why;
	kill(z->pid, SIGKILL);
	if (waitpid(z->pid, &status, 0) < 0)
		status = 0;
	zyg_reaped(z, status);
}

/* ------------------------------------------------- the channel */

/* A datagram as JSON, or NULL (logged). */
static json_t *zyg_recv(struct zyg *z, bool *eof)
{
	char *buf = malloc(ZYG_MSG_MAX);
	ssize_t n;
	json_t *o = NULL;

	*eof = false;
	if (!buf)
		return NULL;
	n = recv(z->chan, buf, ZYG_MSG_MAX, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		*eof = true;
	if (n > 0) {
		o = json_loadb(buf, (size_t)n, 0, NULL);
		if (!json_is_object(o))
			log_warnx("%s zygote: not a JSON object: %.*s",
				  z->spec->name, (int)(n > 200 ? 200 : n), buf);
	}
	free(buf);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static const char *zyg_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static void zyg_on_ready(struct zyg *z, const json_t *o)
{
	json_t *skipped = json_object_get(o, "skipped"), *e;
	json_int_t threads = json_integer_value(json_object_get(o, "threads"));
	/* Python counts modules, R packages (namespaces). */
	const char *unit =
	    json_object_get(o, "packages") ? "packages" : "modules";
	size_t i;

	for (i = 0; i < json_array_size(skipped); i++) {
		e = json_array_get(skipped, i);
		log_warnx("%s zygote: preload %s skipped: %s", z->spec->name,
			  json_object_get(e, "package") ? zyg_str(e, "package")
							: zyg_str(e, "module"),
			  zyg_str(e, "error"));
	}
	/* A thread the preload started and the zygote could not end in time
	 * (a busy or emulated CPU) may be gone in the next one: a few tries
	 * with the back-off, then the daemon gives up on it. */
	if (threads > 1) {
		bool last = ++z->thread_tries >= ZYG_THREAD_TRIES;
		log_warnx("%s zygote has %lld threads after its preload: %s",
			  z->spec->name, (long long)threads,
			  last ? "it cannot fork; kernels are exec'd"
			       : "starting another");
		if (last)
			z->state = ZYG_OFF;
		zyg_kill_now(z, "threads");
		return;
	}
	z->thread_tries = 0;
	z->state = ZYG_READY;
	log_info("%s zygote ready (pid %d, %lld ms, %lld %s)", z->spec->name,
		 (int)z->pid,
		 (long long)json_integer_value(json_object_get(o, "ms")),
		 (long long)json_integer_value(json_object_get(o, unit)), unit);
	if (!z->was_ready && zyg_o.on_ready)
		zyg_o.on_ready(zyg_o.arg, z->spec);
	z->was_ready = true;
}

static void zyg_on_answer(struct zyg *z, const json_t *o);

/* The loop's watch: "ready" or "failed" while STARTING, the answers to
 * spawns, EOF any time. */
static void zyg_on_chan(void *arg, short revents)
{
	struct zyg *z = arg;
	bool eof;
	json_t *o = zyg_recv(z, &eof);
	const char *type = zyg_str(o, "type");

	(void)revents;
	if (eof) {
		zyg_kill_now(z, "its channel closed");
	} else if (strcmp(type, "ready") == 0 && z->state == ZYG_STARTING) {
		zyg_on_ready(z, o);
	} else if (strcmp(type, "spawned") == 0 || strcmp(type, "error") == 0) {
		zyg_on_answer(z, o);
	} else if (strcmp(type, "failed") == 0) {
		log_warnx("%s zygote failed: %s", z->spec->name,
			  zyg_str(o, "reason"));
		zyg_kill_now(z, "failed");
	} else if (o) {
		log_debug("%s zygote: unexpected %s message", z->spec->name,
			  type);
	}
	json_decref(o);
}

/* ------------------------------------------------- start */

/* The zygote between fork and exec: async-signal-safe calls only. */
static void zyg_child(struct child *c, char **argv, char **envp, int out,
		      int err, int chan)
{
	/* An empty kernel handle: kres_child then only switches the user. */
	struct kres_kernel none = {.procs_fd = -1, .pprocs_fd = -1};
	int src[4], oom, rc;

	if (child_reset(c, CHILD_SESSION) < 0)
		child_fail(c);
	/* As a kernel's: a kernel running as a non-root user could not go
	 * below its zygote's value. */
	oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (oom >= 0) {
		if (write(oom, "800", 3) < 0)
			(void)0;
		close(oom);
	}
	if (zyg_o.kres) {
		rc = kres_child(zyg_o.kres, &none);
		if (rc < 0) {
			errno = -rc;
			child_fail(c);
		}
		if (child_die_with_parent(c) < 0)
			child_fail(c);
	}
	if (chdir(zyg_o.cwd) < 0)
		child_fail(c);
	src[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	src[1] = out;
	src[2] = err;
	src[3] = chan;
	if (src[0] < 0 || child_fds(c, src, 4) < 0)
		child_fail(c);
	execvpe(argv[0], argv, envp);
	child_fail(c);
}

/* Forks and execs the zygote; its end of the channel is fd 3. Returns 0,
 * or -errno (logged by the caller). */
static int zyg_exec(struct zyg *z, int sv[2], int outp[2], int errp[2])
{
	char script[600], *argv[16];
	char **kargv = kspec_argv(z->spec, "");
	const struct zyg_kind *k = z->kind;
	struct child c;
	size_t n = 0;
	int rc;

	if (!kargv)
		return -ENOMEM;
	snprintf(script, sizeof(script), "%s/%s", z->spec->dir, k->script);
	argv[n++] = kargv[0];
	for (size_t i = 0; k->pre[i]; i++)
		argv[n++] = (char *)k->pre[i];
	argv[n++] = script;
	for (size_t i = 0; k->post[i]; i++)
		argv[n++] = (char *)k->post[i];
	argv[n++] = "--channel-fd";
	argv[n++] = "3";
	if (k->preload) {
		argv[n++] = "--preload";
		argv[n++] = (char *)zyg_o.preload;
	}
	argv[n] = NULL;
	rc = child_fork(&c);
	if (rc == 0 && c.pid == 0)
		zyg_child(&c, argv, z->envp, outp[1], errp[1], sv[1]);
	if (rc == 0)
		rc = child_wait(&c);
	if (rc == 0)
		z->pid = c.pid;
	kspec_strv_free(kargv);
	return rc;
}

/* Starts the zygote and watches it; on failure it is DEAD and a restart
 * is due after the back-off. */
static void zyg_launch(struct zyg *z)
{
	int sv[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int buf = 1 << 20, rc;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	/* A datagram is bounded by the sender's buffer: room for a large
	 * environment (the kernel caps it at wmem_max). */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	rc = zyg_exec(z, sv, outp, errp);
	if (rc < 0)
		goto out;
	z->pidfd = pidfd_open(z->pid, 0);
	z->chan = sv[0];
	z->out.fd = outp[0];
	z->err.fd = errp[0];
	sv[0] = outp[0] = errp[0] = -1;
	fcntl(z->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(z->err.fd, F_SETFL, O_NONBLOCK);
	z->state = ZYG_STARTING;
	z->pidw =
	    loop_add_fd(zyg_o.loop, z->pidfd, ZMQ_POLLIN, zyg_on_pidfd, z);
	z->chanw = loop_add_fd(zyg_o.loop, z->chan, ZMQ_POLLIN, zyg_on_chan, z);
	z->out.w = loop_add_fd(zyg_o.loop, z->out.fd, ZMQ_POLLIN, zyg_on_pipe,
			       &z->out);
	z->err.w = loop_add_fd(zyg_o.loop, z->err.fd, ZMQ_POLLIN, zyg_on_pipe,
			       &z->err);
	rc = z->pidfd >= 0 && z->pidw && z->chanw ? 0 : -ENOMEM;
	if (rc == 0)
		log_info("%s zygote started (pid %d, %s zygote%s%s%s)",
			 z->spec->name, (int)z->pid, z->kind->name,
			 z->kind->preload ? ", preload '" : "",
			 z->kind->preload ? zyg_o.preload : "",
			 z->kind->preload ? "'" : "");
	else
		zyg_kill_now(z, "cannot watch it");
out:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (rc < 0 && z->pid <= 0 && z->state != ZYG_OFF) {
		log_warnx("cannot start the %s zygote: %s", z->spec->name,
			  strerror(-rc));
		z->state = ZYG_DEAD;
		loop_timer_arm(zyg_o.loop, &z->restart, z->backoff_ms,
			       zyg_on_restart, z);
	}
}

void zyg_start(const struct kspec *spec, char *const *envp)
{
	struct zyg *z;

	const struct zyg_kind *k = zyg_kind_of(spec);

	if (zyg_stopping || !k || zyg_find(spec))
		return;
	z = calloc(1, sizeof(*z));
	if (!z)
		return;
	z->envp = zyg_strv_dup(envp);
	if (!z->envp) {
		free(z);
		return;
	}
	z->spec = spec;
	z->kind = k;
	z->pidfd = z->chan = z->out.fd = z->err.fd = -1;
	z->out.z = z->err.z = z;
	z->backoff_ms = ZYG_BACKOFF_MIN_MS;
	z->next = zyg_list;
	zyg_list = z;
	zyg_launch(z);
}

/* ------------------------------------------------- spawn */

static json_t *zyg_strv_json(char *const *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* The "spawn" request (user omitted: the zygote already runs as the
 * kernel user). A new string or NULL. */
static char *zyg_request_text(const struct zyg_request *rq)
{
	json_t *o = json_object(), *fds = json_array(), *lim;
	char *text = NULL;

	if (!o || !fds)
		goto out;
	json_object_set_new(o, "type", json_string("spawn"));
	json_object_set_new(o, "id", json_string(rq->id));
	json_object_set_new(o, "argv", zyg_strv_json(rq->argv));
	json_object_set_new(o, "cwd", json_string(rq->cwd));
	json_object_set_new(o, "env", zyg_strv_json(rq->envp));
	json_array_append_new(fds, json_string("stdout"));
	json_array_append_new(fds, json_string("stderr"));
	if (rq->cgroup >= 0)
		json_array_append_new(fds, json_string("cgroup"));
	json_object_set(o, "fds", fds);
	if (rq->mem_rlimit > 0) {
		lim = json_pack("{s:[I,I]}", "data", (json_int_t)rq->mem_rlimit,
				(json_int_t)rq->mem_rlimit);
		json_object_set_new(o, "rlimits", lim);
	}
	/* No oom_score_adj: the kernel inherits the zygote's 800, and a
	 * zygote running as the kernel user is non-dumpable, so its forks
	 * could not open /proc/self/oom_score_adj before their set-up made
	 * them dumpable again. */
	text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(fds);
	json_decref(o);
	return text;
}

static int zyg_send(struct zyg *z, const char *text,
		    const struct zyg_request *rq)
{
	int fds[3] = {rq->out, rq->err, rq->cgroup};
	size_t nfds = rq->cgroup >= 0 ? 3 : 2;
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = {(void *)text, strlen(text)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
	struct cmsghdr *cm;

	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	return sendmsg(z->chan, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) ==
		       (ssize_t)iov.iov_len
		   ? 0
		   : -errno;
}

/* Whether child pid is a leftover of the request for kernel id: the
 * kernel before its set-up rewrote its command line (the zygote's until
 * then, and no live zygote's), or after (the kernel's argv, which names
 * the connection file "kernel-<id8>.json"). */
static bool zyg_is_leftover(pid_t pid, const char *script, const char *id)
{
	char path[64], cmd[4096], mark[32];
	ssize_t n;
	int fd;

	if (zyg_is_zygote(pid))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		cmd[i] = cmd[i] ? cmd[i] : ' ';
	cmd[n] = '\0';
	snprintf(mark, sizeof(mark), "kernel-%.8s.json", id);
	return strstr(cmd, script) || strstr(cmd, mark);
}

/* After the zygote died with request id unanswered: kills and reaps what
 * it may have forked for it meanwhile (the kernel would run on a
 * connection file the exec'd kernel then uses). */
static void zyg_kill_leftovers(const struct zyg *z, const char *id)
{
	char path[64], buf[4096];
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");

	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/children",
			 e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
			pid_t pid = (pid_t)atoi(t);
			if (pid > 0 &&
			    zyg_is_leftover(pid, z->kind->script, id)) {
				log_warnx("killing pid %d, forked by a zygote "
					  "that did not answer",
					  (int)pid);
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
			}
		}
	}
	if (d)
		closedir(d);
}

static void zyg_reap_pid(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* The queues emptied: the function waiting for that runs, once. */
static void zyg_check_idle(void)
{
	void (*fn)(void) = zyg_idle_fn;

	if (fn && !zyg_outstanding()) {
		zyg_idle_fn = NULL;
		fn();
	}
}

/* The zygote is gone: every queued request is answered -EAGAIN (exec)
 * after what it may have forked for it is killed; at shutdown, when
 * nothing is exec'd any more, none is answered. The queue is taken
 * first: a done may start another kernel, which this zygote declines. */
static void zyg_fail_waits(struct zyg *z)
{
	struct zyg_wait *w = z->waits, *next;

	z->waits = NULL;
	for (; w; w = next) {
		next = w->next;
		zyg_kill_leftovers(z, w->id);
		if (w->done && !zyg_stopping)
			w->done(w->arg, -EAGAIN);
		free(w);
	}
	zyg_check_idle();
}

static void zyg_on_answer_late(void *arg, short revents)
{
	struct zyg *z = arg;

	(void)revents;
	if (z->waits)
		zyg_kill_now(z, "no answer to a spawn within 1 s");
}

/* An "error" answer: its pid reaped, the zygote's fate decided. */
static void zyg_on_error(struct zyg *z, const json_t *o)
{
	const char *step = zyg_str(o, "step");

	zyg_reap_pid((pid_t)json_integer_value(json_object_get(o, "pid")));
	log_debug("%s zygote declined a kernel (%s): %s; exec'd", z->spec->name,
		  step, zyg_str(o, "reason"));
	if (strcmp(step, "stale") == 0) {
		log_info("%s zygote is stale (%s): restarting it",
			 z->spec->name, zyg_str(o, "reason"));
		z->served = false;
		z->backoff_ms = 0;
		zyg_kill_now(z, "stale");
		z->backoff_ms = ZYG_BACKOFF_MIN_MS;
	} else if (strcmp(step, "threads") == 0 ||
		   strcmp(step, "parent") == 0) {
		log_warnx("%s zygote cannot fork kernels (%s: %s): kernels "
			  "are exec'd from now on",
			  z->spec->name, step, zyg_str(o, "reason"));
		z->state = ZYG_OFF;
		zyg_kill_now(z, step);
	}
}

/* "spawned" or "error" for the oldest request: taken off the queue, the
 * next one's second starts, and its done hears the pid or -EAGAIN (last:
 * it may start kernels). An answer to no request kills the zygote. */
static void zyg_on_answer(struct zyg *z, const json_t *o)
{
	struct zyg_wait *w = z->waits;
	json_int_t pid = json_integer_value(json_object_get(o, "pid"));
	bool ok = strcmp(zyg_str(o, "type"), "spawned") == 0 && pid > 0;

	if (!w || strcmp(zyg_str(o, "id"), w->id) != 0) {
		zyg_reap_pid(ok ? (pid_t)pid : 0);
		zyg_kill_now(z, "an answer out of order");
		return;
	}
	z->waits = w->next;
	loop_timer_disarm(zyg_o.loop, &z->answer);
	if (z->waits)
		loop_timer_arm(zyg_o.loop, &z->answer, ZYG_ANSWER_MS,
			       zyg_on_answer_late, z);
	if (ok)
		z->served = true;
	else
		zyg_on_error(z, o);
	if (ok && !w->done)
		zyg_reap_pid((pid_t)pid);
	else if (w->done)
		w->done(w->arg, ok ? (pid_t)pid : -EAGAIN);
	free(w);
	zyg_check_idle();
}

int zyg_spawn(const struct kspec *spec, const struct zyg_request *rq)
{
	struct zyg *z = zyg_find(spec);
	struct zyg_wait *w, **tail;
	char *text;
	int rc;

	if (!z) {
		zyg_start(spec, rq->envp);
		return -EAGAIN;
	}
	if (z->state != ZYG_READY || strlen(rq->id) >= sizeof(w->id))
		return -EAGAIN;
	w = calloc(1, sizeof(*w));
	text = zyg_request_text(rq);
	rc = w && text ? zyg_send(z, text, rq) : -ENOMEM;
	free(text);
	if (rc < 0) {
		free(w);
		/* A full channel (many requests queued) or no memory: this
		 * one is exec'd, the zygote stays. */
		if (rc == -ENOMEM || rc == -EAGAIN || rc == -EWOULDBLOCK)
			return -EAGAIN;
		/* Killed, not reaped here: its pidfd handler answers what
		 * waits, from the loop. */
		log_warnx("%s zygote: cannot send a request: %s", spec->name,
			  strerror(-rc));
		z->why_death = "its channel failed";
		kill(z->pid, SIGKILL);
		z->state = ZYG_DEAD;
		return -EAGAIN;
	}
	snprintf(w->id, sizeof(w->id), "%s", rq->id);
	w->done = rq->done;
	w->arg = rq->arg;
	for (tail = &z->waits; *tail; tail = &(*tail)->next)
		;
	*tail = w;
	if (!z->answer.armed)
		loop_timer_arm(zyg_o.loop, &z->answer, ZYG_ANSWER_MS,
			       zyg_on_answer_late, z);
	return 0;
}

void zyg_cancel(const char *id)
{
	for (struct zyg *z = zyg_list; z; z = z->next)
		for (struct zyg_wait *w = z->waits; w; w = w->next)
			if (strcmp(w->id, id) == 0)
				w->done = NULL;
}

bool zyg_outstanding(void)
{
	for (struct zyg *z = zyg_list; z; z = z->next)
		if (z->waits)
			return true;
	return false;
}

void zyg_when_idle(void (*fn)(void))
{
	zyg_idle_fn = fn;
	zyg_check_idle();
}

bool zyg_is_zygote(pid_t pid)
{
	for (struct zyg *z = zyg_list; z; z = z->next)
		if (z->pid > 0 && z->pid == pid)
			return true;
	return false;
}

size_t zyg_ready(void)
{
	size_t n = 0;

	for (struct zyg *z = zyg_list; z; z = z->next)
		n += z->state == ZYG_READY;
	return n;
}

void zyg_shutdown(void)
{
	struct zyg *z;

	zyg_stopping = true;
	while ((z = zyg_list)) {
		zyg_list = z->next;
		loop_timer_disarm(zyg_o.loop, &z->restart);
		zyg_kill_now(z, "shutdown");
		zyg_fail_waits(z);
		kspec_strv_free(z->envp);
		free(z);
	}
}
