/*
 * rzyg: the C half of the R zygote (kernels/ir/e2b_ci_zygote.R), loaded into
 * R with dyn.load and called with .Call. It owns the channel to the daemon
 * (a SOCK_SEQPACKET socket carrying JSON and SCM_RIGHTS fds, which base R
 * cannot receive), the validation of spawn requests, the refusals (what a
 * fork cannot reproduce of an exec'd R), the double fork and every set-up
 * step of a forked kernel up to the point where R code runs IRkernel; the
 * protocol and the steps are kernels/ZYGOTE-PROTOCOL.md's, the same as the
 * Python zygote's.
 *
 * R calls rzyg_init first thing (it snapshots what a fresh R has: signal
 * handlers, environment, open fds), then loads and warms IRkernel, then
 * rzyg_setup (what to check per request), rzyg_send(ready) and rzyg_serve,
 * which loops over requests. rzyg_serve returns NULL in the zygote when the
 * channel closes; in a forked kernel, after its set-up, it returns the
 * connection file to R, which finishes R's own state, calls rzyg_started and
 * runs IRkernel::main. Single-threaded: R's main thread only. Deliberately
 * not done here: anything needing R's evaluator (loading, warming, the cli
 * ticker thread), which the R script does.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <R.h>
#include <R_ext/Rdynload.h>
#include <Rinternals.h>

/* libR's, not in the headers R ships without r-base-dev's extras. */
extern char *R_TempDir;
extern void R_set_command_line_arguments(int argc, char **argv);
extern void R_reInitTempDir(int die_on_fail);

extern char **environ;

#define RZYG_MAX_REQUEST (1 << 20) /* bytes of one request datagram */
#define RZYG_MAX_FDS	 8	   /* fds in one request */
#define RZYG_MAX_FD	 1024	   /* fds tracked in the snapshots */
#define RZYG_CHILD_MS	 10000	   /* a forked kernel's set-up */
#define RZYG_REPARENT_MS 2000	   /* the intermediate's exit */
#define RZYG_PATHS	 512	   /* files and package dirs checked */

/* A file whose change makes the zygote stale: its identity when loaded
 * (st_ino 0: it did not exist). */
struct rzyg_file {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
};

/* A loaded package and the index of the library it was loaded from. */
struct rzyg_pkg {
	char *name;
	int lib;
};

/* A user start-up file R reads (.Rprofile, .Renviron): which one the
 * zygote read, by the rule an exec'd R applies in its cwd. */
struct rzyg_profile {
	const char *name; /* ".Rprofile" */
	const char *var;  /* "R_PROFILE_USER" */
	struct rzyg_file read;
};

static struct {
	int chan;
	pid_t parent;
	int trace;
	struct timespec t0;
	json_t *marks;
	unsigned char fds_at_start[RZYG_MAX_FD];
	unsigned char preload_fds[RZYG_MAX_FD];
	struct sigaction sigs[NSIG];
	char **env_now;	 /* environ when R started the script */
	char **env_proc; /* /proc/self/environ: what exec gave the binary */
	char cwd[PATH_MAX];
	char *exe;    /* commandArgs()[1] of an exec'd R */
	char **rbins; /* real paths of accepted front-ends */
	struct rzyg_file files[RZYG_PATHS];
	int nfiles;
	struct rzyg_file libs[32]; /* library candidates (ino 0: absent) */
	int nlibs;
	struct rzyg_pkg pkgs[RZYG_PATHS];
	int npkgs;
	struct rzyg_profile profiles[2];
	int ready;
} z = {.chan = -1,
       .profiles = {{".Rprofile", "R_PROFILE_USER", {0}},
		    {".Renviron", "R_ENVIRON_USER", {0}}}};

/* A validated spawn request. */
struct rzyg_spec {
	const char *id;
	json_t *argv;
	const char *cwd;
	char **env; /* first of a name wins, as with execve */
	int out, err, cgroup;
	int has_user;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	int nrl;
	int rl_which[16];
	const char *rl_name[16];
	struct rlimit rl[16];
	int has_oom;
	int oom;
};

/* A step that failed: its name, errno (0 when none) and a sentence. */
struct rzyg_err {
	char step[32];
	int err;
	char reason[512];
};

static const struct {
	const char *name;
	int which;
} rzyg_rlimits[] = {
    {"as", RLIMIT_AS},
    {"core", RLIMIT_CORE},
    {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},
    {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE},
    {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},
    {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},
    {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

/* Environment variables R reads once, at start or when a preloaded package
 * loads (the front-end script, Renviron, the dynamic loader, locale, BLAS,
 * cli's ticker): a request that differs from the zygote in one of these is
 * refused, and the daemon execs. */
static const char *const rzyg_startup_vars[] = {
    "R_",	 "LC_",	      "LANG",		"HOME",
    "LD_",	 "MALLOC_",   "GLIBC_TUNABLES", "OMP_",
    "OPENBLAS_", "MKL_",      "GOTO",		"BLIS_",
    "CLI_",	 "RSTUDIO",   "EDITOR",		"VISUAL",
    "PAGER",	 "JAVA_HOME", "TEXI2DVI",	"MAKE",
    "TAR",	 NULL};

/* Set by R's front-end script whatever the caller gave (R_ARCH and
 * LD_LIBRARY_PATH are compared apart); R_SESSION_TMPDIR by R itself. */
static const char *const rzyg_forced_vars[] = {
    "R_HOME", "R_SHARE_DIR",	 "R_INCLUDE_DIR",    "R_DOC_DIR",
    "SED",    "LD_LIBRARY_PATH", "R_SESSION_TMPDIR", NULL};

__attribute__((format(printf, 2, 3))) static void rzyg_log(const char *level,
							   const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
			 "e2b-ci-zygote[%d]: %s: ", (int)getpid(), level);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* Nowhere else to say it. */
	}
}

__attribute__((format(printf, 4, 5))) static int
rzyg_fail(struct rzyg_err *e, const char *step, int err, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->step, sizeof(e->step), "%s", step);
	e->err = err;
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static double rzyg_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - z.t0.tv_sec) * 1e3 +
	       (double)(t.tv_nsec - z.t0.tv_nsec) / 1e6;
}

/* --trace: the milliseconds at which a step ended, from the request. */
static void rzyg_mark(const char *name)
{
	if (z.marks)
		json_object_set_new(
		    z.marks, name,
		    json_real((double)(long)(rzyg_ms() * 100) / 100));
}

static int rzyg_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* "3 threads (R, cli-ticker...)" into buf. */
static void rzyg_thread_names(char *buf, size_t size)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	size_t len;

	snprintf(buf, size, "%d threads (", rzyg_thread_count());
	while (d && (de = readdir(d))) {
		char path[320], comm[32] = "?";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 de->d_name);
		f = fopen(path, "r");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
		len = strlen(buf);
		snprintf(buf + len, size - len, "%s%s",
			 buf[len - 1] == '(' ? "" : ", ", comm);
	}
	if (d)
		closedir(d);
	len = strlen(buf);
	snprintf(buf + len, size - len, ")");
}

/* Marks the open fds in set (the listing's own fd left out). */
static void rzyg_open_fds(unsigned char *set)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	memset(set, 0, RZYG_MAX_FD);
	while (d && (de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] != '.' && fd >= 0 && fd < RZYG_MAX_FD &&
		    fd != dirfd(d))
			set[fd] = 1;
	}
	if (d)
		closedir(d);
}

static char **rzyg_strv_copy(char **v)
{
	size_t n = 0, i;
	char **out;

	while (v && v[n])
		n++;
	out = calloc(n + 1, sizeof(*out));
	for (i = 0; out && i < n; i++)
		out[i] = strdup(v[i]);
	return out;
}

/* The environment exec gave this binary (the daemon's, plus what R's
 * front-end script exported), from /proc/self/environ. */
static char **rzyg_proc_environ(void)
{
	char *buf = NULL, **v = NULL;
	size_t len = 0, n = 0, i;
	FILE *f = fopen("/proc/self/environ", "r");
	char chunk[4096];
	size_t got;

	if (!f)
		return calloc(1, sizeof(char *));
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *nb = realloc(buf, len + got + 1);

		if (!nb)
			break;
		buf = nb;
		memcpy(buf + len, chunk, got);
		len += got;
	}
	fclose(f);
	for (i = 0; i < len; i++)
		n += buf[i] == '\0';
	v = calloc(n + 2, sizeof(*v));
	for (i = 0, n = 0; v && i < len; i += strlen(buf + i) + 1)
		v[n++] = strdup(buf + i);
	free(buf);
	return v;
}

/* The value of name in v (NAME=value strings, first wins), or NULL. */
static const char *rzyg_env_get(char **v, const char *name)
{
	size_t n = strlen(name);

	for (; v && *v; v++)
		if (strncmp(*v, name, n) == 0 && (*v)[n] == '=')
			return *v + n + 1;
	return NULL;
}

static int rzyg_in_list(const char *name, const char *const *list, int prefix)
{
	for (; *list; list++) {
		size_t n = strlen(*list);

		if (prefix ? strncmp(name, *list, n) == 0
			   : strcmp(name, *list) == 0)
			return 1;
	}
	return 0;
}

static void rzyg_stat_file(struct rzyg_file *f, const char *path)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (stat(path, &st) == 0) {
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->mtime = st.st_mtim;
	}
}

/* Whether f is still the file it was (or still absent). */
static int rzyg_same_file(const struct rzyg_file *f)
{
	struct stat st;

	if (stat(f->path, &st) != 0)
		return f->ino == 0;
	return f->ino == st.st_ino && f->dev == st.st_dev &&
	       f->mtime.tv_sec == st.st_mtim.tv_sec &&
	       f->mtime.tv_nsec == st.st_mtim.tv_nsec;
}

/* The user start-up file an exec'd R in cwd would read: $VAR when set, else
 * cwd/name, else $HOME/name, else none (""). */
static void rzyg_profile_path(const struct rzyg_profile *p, char **env,
			      const char *cwd, char *out, size_t size)
{
	const char *set = rzyg_env_get(env, p->var), *home;
	char path[PATH_MAX];

	out[0] = '\0';
	if (set && *set) {
		snprintf(out, size, "%s", set);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", cwd, p->name);
	if (access(path, F_OK) == 0) {
		snprintf(out, size, "%s", path);
		return;
	}
	home = rzyg_env_get(env, "HOME");
	if (!home)
		return;
	snprintf(path, sizeof(path), "%s/%s", home, p->name);
	if (access(path, F_OK) == 0)
		snprintf(out, size, "%s", path);
}

/* ------------------------------------------------------------ R entries */

static SEXP rzyg_int(int v)
{
	return ScalarInteger(v);
}

/* rzyg_init(channel_fd, trace): the first call of the script. Sets the
 * parent-death signal, makes the zygote non-dumpable, snapshots what a
 * fresh R has. Returns NULL, or a string saying why the zygote cannot run. */
SEXP rzyg_init(SEXP fd, SEXP trace);
SEXP rzyg_init(SEXP fd, SEXP trace)
{
	int type = 0, s;
	socklen_t len = sizeof(type);

	z.chan = asInteger(fd);
	z.trace = asLogical(trace) == TRUE;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Kernels of the same uid may not ptrace the zygote or read its
	 * memory: it is the template of every later kernel. */
	prctl(PR_SET_DUMPABLE, 0);
	z.parent = getppid();
	if (z.parent == 1)
		return mkString("no parent (the daemon is gone)");
	if (getsockopt(z.chan, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
	    type != SOCK_SEQPACKET)
		return mkString(
		    "the channel fd is not a SOCK_SEQPACKET socket");
	fcntl(z.chan, F_SETFD, FD_CLOEXEC);
	for (s = 1; s < NSIG; s++)
		sigaction(s, NULL, &z.sigs[s]);
	rzyg_open_fds(z.fds_at_start);
	z.env_now = rzyg_strv_copy(environ);
	z.env_proc = rzyg_proc_environ();
	if (!getcwd(z.cwd, sizeof(z.cwd)))
		return mkString("getcwd failed");
	return R_NilValue;
}

/* rzyg_setup(info): what each request is checked against, once the kernel
 * stack is loaded: info is a list of exe (commandArgs()[1]), rbins (the R
 * front-ends an argv[0] may name), files (paths whose change makes the
 * zygote stale), libs (the library candidates R's start-up considers, in
 * order), pkgs and pkglibs (the loaded packages and the index of the library
 * each came from, -1 for none). Also records the fds the loading opened
 * (kept in kernels). Returns the number of threads. */
SEXP rzyg_setup(SEXP info);
SEXP rzyg_setup(SEXP info)
{
	SEXP exe = VECTOR_ELT(info, 0), rbins = VECTOR_ELT(info, 1);
	SEXP files = VECTOR_ELT(info, 2), libs = VECTOR_ELT(info, 3);
	SEXP pkgs = VECTOR_ELT(info, 4), pkglibs = VECTOR_ELT(info, 5);
	unsigned char now[RZYG_MAX_FD];
	char path[PATH_MAX];
	int i, n = 0;

	z.exe = strdup(CHAR(STRING_ELT(exe, 0)));
	z.rbins = calloc((size_t)LENGTH(rbins) + 1, sizeof(char *));
	for (i = 0; z.rbins && i < LENGTH(rbins); i++)
		if (realpath(CHAR(STRING_ELT(rbins, i)), path))
			z.rbins[n++] = strdup(path);
	for (i = 0; i < LENGTH(files) && z.nfiles < RZYG_PATHS; i++)
		rzyg_stat_file(&z.files[z.nfiles++],
			       CHAR(STRING_ELT(files, i)));
	for (i = 0; i < LENGTH(libs) && z.nlibs < 32; i++)
		rzyg_stat_file(&z.libs[z.nlibs++], CHAR(STRING_ELT(libs, i)));
	for (i = 0; i < LENGTH(pkgs) && z.npkgs < RZYG_PATHS; i++) {
		z.pkgs[z.npkgs].name = strdup(CHAR(STRING_ELT(pkgs, i)));
		z.pkgs[z.npkgs++].lib = INTEGER(pkglibs)[i];
	}
	for (i = 0; i < 2; i++) {
		rzyg_profile_path(&z.profiles[i], z.env_now, z.cwd, path,
				  sizeof(path));
		rzyg_stat_file(&z.profiles[i].read, path);
	}
	rzyg_open_fds(now);
	for (i = 0; i < RZYG_MAX_FD; i++)
		z.preload_fds[i] = now[i] && !z.fds_at_start[i];
	z.ready = 1;
	return rzyg_int(rzyg_thread_count());
}

/* The fds the loading opened, as {"4": "/dev/null"}. */
SEXP rzyg_preload_fds(void);
SEXP rzyg_preload_fds(void)
{
	json_t *o = json_object();
	char *s;
	SEXP out;
	int i;

	for (i = 0; i < RZYG_MAX_FD; i++) {
		char key[16], link[64], target[PATH_MAX];
		ssize_t n;

		if (!z.preload_fds[i])
			continue;
		snprintf(key, sizeof(key), "%d", i);
		snprintf(link, sizeof(link), "/proc/self/fd/%d", i);
		n = readlink(link, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		json_object_set_new(o, key, json_string(n < 0 ? "?" : target));
	}
	s = json_dumps(o, JSON_COMPACT);
	out = mkString(s ? s : "{}");
	free(s);
	json_decref(o);
	return out;
}

/* Names of the threads as one sentence. */
SEXP rzyg_threads(void);
SEXP rzyg_threads(void)
{
	char buf[512];

	rzyg_thread_names(buf, sizeof(buf));
	return mkString(buf);
}

/* OpenBLAS (R's libblas.so.3 where libopenblas0-pthread is installed)
 * starts a thread pool when R loads it: ended here, as its
 * pthread_atfork handler would end it in a fork anyway; the first BLAS
 * call in a kernel starts a new pool. The reference BLAS has no threads
 * and no such function. TRUE when a pool was ended. */
SEXP rzyg_blas_shutdown(void);
SEXP rzyg_blas_shutdown(void)
{
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "re");
	int done = 0;

	while (f && !done && fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');
		void *h;
		void (*fn)(void);

		if (!path || (!strstr(path, "blas") && !strstr(path, "lapack")))
			continue;
		path[strcspn(path, "\n")] = '\0';
		h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
		*(void **)(&fn) = h ? dlsym(h, "blas_thread_shutdown_") : NULL;
		if (fn) {
			fn();
			done = 1;
		}
		if (h)
			dlclose(h);
	}
	if (f)
		fclose(f);
	return ScalarLogical(done);
}

static int rzyg_send_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT);
	ssize_t n = -1;

	if (s) {
		do
			n = send(z.chan, s, strlen(s), MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
	}
	free(s);
	json_decref(doc);
	return n < 0 ? -1 : 0;
}

/* rzyg_send(json): one message (R builds ready with jsonlite). */
SEXP rzyg_send(SEXP text);
SEXP rzyg_send(SEXP text)
{
	const char *s = CHAR(STRING_ELT(text, 0));
	ssize_t n;

	do
		n = send(z.chan, s, strlen(s), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return ScalarLogical(n >= 0);
}

/* rzyg_failed(reason): the "failed" message, built here since jsonlite may
 * be what is missing. */
SEXP rzyg_failed(SEXP reason);
SEXP rzyg_failed(SEXP reason)
{
	rzyg_send_json(json_pack("{s:s, s:s}", "type", "failed", "reason",
				 CHAR(STRING_ELT(reason, 0))));
	return R_NilValue;
}

/* rzyg_log(level, text): one line on stderr, the zygote's format. */
SEXP rzyg_log_r(SEXP level, SEXP text);
SEXP rzyg_log_r(SEXP level, SEXP text)
{
	rzyg_log(CHAR(STRING_ELT(level, 0)), "%s", CHAR(STRING_ELT(text, 0)));
	return R_NilValue;
}

/* ------------------------------------------------------------ requests */

static int rzyg_status_fd = -1; /* in a forked kernel: to the zygote */

static int rzyg_strings(json_t *v, struct rzyg_err *e, const char *key)
{
	size_t i;
	json_t *s;

	if (!json_is_array(v) || json_array_size(v) == 0)
		return rzyg_fail(e, "request", 0, "%s: a list of strings", key);
	json_array_foreach(v, i, s)
	{
		if (!json_is_string(s) ||
		    strlen(json_string_value(s)) != json_string_length(s))
			return rzyg_fail(e, "request", 0,
					 "%s: a list of strings", key);
	}
	return 0;
}

static int rzyg_parse_user(json_t *u, struct rzyg_spec *sp, struct rzyg_err *e)
{
	json_t *groups, *g;
	size_t i;

	if (!u || json_is_null(u))
		return 0;
	groups = json_object_get(u, "groups");
	if (!json_is_object(u) || !json_is_integer(json_object_get(u, "uid")) ||
	    !json_is_integer(json_object_get(u, "gid")) ||
	    json_integer_value(json_object_get(u, "uid")) < 0 ||
	    json_integer_value(json_object_get(u, "gid")) < 0 ||
	    (groups &&
	     (!json_is_array(groups) || json_array_size(groups) > 64)))
		return rzyg_fail(e, "request", 0, "user: {uid, gid, groups}");
	sp->has_user = 1;
	sp->uid = (uid_t)json_integer_value(json_object_get(u, "uid"));
	sp->gid = (gid_t)json_integer_value(json_object_get(u, "gid"));
	json_array_foreach(groups, i, g)
	{
		if (!json_is_integer(g) || json_integer_value(g) < 0)
			return rzyg_fail(e, "request", 0,
					 "user: {uid, gid, groups}");
		sp->groups[sp->ngroups++] = (gid_t)json_integer_value(g);
	}
	if (sp->ngroups == 0)
		sp->groups[sp->ngroups++] = sp->gid;
	return 0;
}

static int rzyg_parse_rlimits(json_t *r, struct rzyg_spec *sp,
			      struct rzyg_err *e)
{
	const char *name;
	json_t *v;
	size_t k;

	if (!r || json_is_null(r))
		return 0;
	if (!json_is_object(r))
		return rzyg_fail(e, "request", 0, "rlimits: an object");
	json_object_foreach(r, name, v)
	{
		int which = -1, j;

		for (k = 0; k < sizeof(rzyg_rlimits) / sizeof(rzyg_rlimits[0]);
		     k++)
			if (strcmp(rzyg_rlimits[k].name, name) == 0)
				which = (int)k;
		if (which < 0 || sp->nrl >= 16)
			return rzyg_fail(e, "request", 0,
					 "rlimits: unknown limit '%s'", name);
		if (!json_is_array(v) || json_array_size(v) != 2)
			return rzyg_fail(e, "request", 0,
					 "rlimits.%s: [soft, hard], -1 for "
					 "unlimited",
					 name);
		for (j = 0; j < 2; j++) {
			json_t *x = json_array_get(v, (size_t)j);
			json_int_t n = json_integer_value(x);

			if (!json_is_integer(x) || n < -1)
				return rzyg_fail(e, "request", 0,
						 "rlimits.%s: [soft, hard], -1 "
						 "for unlimited",
						 name);
			*(j ? &sp->rl[sp->nrl].rlim_max
			    : &sp->rl[sp->nrl].rlim_cur) =
			    n == -1 ? RLIM_INFINITY : (rlim_t)n;
		}
		sp->rl_which[sp->nrl] = rzyg_rlimits[which].which;
		sp->rl_name[sp->nrl++] = rzyg_rlimits[which].name;
	}
	return 0;
}

/* fds: the names of the fds sent, in order. */
static int rzyg_parse_fds(json_t *names, const int *fds, int nfds,
			  struct rzyg_spec *sp, struct rzyg_err *e)
{
	size_t i;
	json_t *n;

	sp->out = sp->err = sp->cgroup = -1;
	if (!json_is_array(names) || json_array_size(names) != (size_t)nfds)
		goto bad;
	json_array_foreach(names, i, n)
	{
		const char *s = json_string_value(n);
		int *slot = !s			       ? NULL
			    : strcmp(s, "stdout") == 0 ? &sp->out
			    : strcmp(s, "stderr") == 0 ? &sp->err
			    : strcmp(s, "cgroup") == 0 ? &sp->cgroup
						       : NULL;

		if (!slot || *slot != -1)
			goto bad;
		*slot = fds[i];
	}
	if (sp->out < 0 || sp->err < 0)
		return rzyg_fail(e, "request", 0,
				 "fds: stdout and stderr are required");
	return 0;
bad:
	return rzyg_fail(e, "request", 0,
			 "fds: does not name the %d fds sent (stdout, stderr, "
			 "cgroup)",
			 nfds);
}

static int rzyg_parse_env(json_t *env, struct rzyg_spec *sp, struct rzyg_err *e)
{
	size_t i;
	json_t *s;

	if (rzyg_strings(env, e, "env") < 0)
		return -1;
	sp->env = calloc(json_array_size(env) + 1, sizeof(char *));
	if (!sp->env)
		return rzyg_fail(e, "request", ENOMEM, "env: out of memory");
	json_array_foreach(env, i, s)
	{
		const char *v = json_string_value(s), *eq = strchr(v, '=');

		if (!eq || eq == v)
			return rzyg_fail(e, "request", 0,
					 "env: '%.100s' is not NAME=value", v);
		sp->env[i] = (char *)v;
	}
	return 0;
}

static int rzyg_parse(json_t *req, const int *fds, int nfds,
		      struct rzyg_spec *sp, struct rzyg_err *e)
{
	json_t *oom = json_object_get(req, "oom_score_adj");

	sp->id = json_string_value(json_object_get(req, "id"));
	if (!sp->id || strlen(sp->id) == 0 || strlen(sp->id) > 64)
		return rzyg_fail(e, "request", 0,
				 "id: a string of 1 to 64 characters");
	sp->argv = json_object_get(req, "argv");
	if (rzyg_strings(sp->argv, e, "argv") < 0)
		return -1;
	sp->cwd = json_string_value(json_object_get(req, "cwd"));
	if (!sp->cwd || sp->cwd[0] != '/')
		return rzyg_fail(e, "request", 0, "cwd: an absolute path");
	if (rzyg_parse_env(json_object_get(req, "env"), sp, e) < 0 ||
	    rzyg_parse_fds(json_object_get(req, "fds"), fds, nfds, sp, e) < 0 ||
	    rzyg_parse_user(json_object_get(req, "user"), sp, e) < 0 ||
	    rzyg_parse_rlimits(json_object_get(req, "rlimits"), sp, e) < 0)
		return -1;
	if (oom && !json_is_null(oom)) {
		if (!json_is_integer(oom) || json_integer_value(oom) < -1000 ||
		    json_integer_value(oom) > 1000)
			return rzyg_fail(e, "request", 0,
					 "oom_score_adj: -1000 to 1000");
		sp->has_oom = 1;
		sp->oom = (int)json_integer_value(oom);
	}
	return 0;
}

/* argv[0] as execvp would find it with the request's PATH, made real. */
static int rzyg_find_exe(const char *name, char **env, char *out)
{
	const char *path = rzyg_env_get(env, "PATH"), *p;

	if (strchr(name, '/'))
		return realpath(name, out) ? 0 : -1;
	for (p = path ? path : "/usr/bin:/bin"; p;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char cand[PATH_MAX];

		snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, n ? p : ".",
			 name);
		if (access(cand, X_OK) == 0 && realpath(cand, out))
			return 0;
		p = colon ? colon + 1 : NULL;
	}
	return -1;
}

/* kernel.json's argv: [<R>, --slave, -e, IRkernel::main(), --args, <file>]
 * with <R> this installation's front-end. */
static int rzyg_check_argv(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	static const char *const want[] = {"--slave", "-e", "IRkernel::main()",
					   "--args"};
	char real[PATH_MAX];
	size_t i;
	int ok = json_array_size(sp->argv) == 6;

	for (i = 0; ok && i < 4; i++)
		ok = strcmp(json_string_value(json_array_get(sp->argv, i + 1)),
			    want[i]) == 0;
	if (ok && rzyg_find_exe(json_string_value(json_array_get(sp->argv, 0)),
				sp->env, real) == 0) {
		for (ok = 0, i = 0; z.rbins && z.rbins[i]; i++)
			ok |= strcmp(z.rbins[i], real) == 0;
	} else {
		ok = 0;
	}
	if (!ok)
		return rzyg_fail(e, "argv", 0,
				 "argv is not [R, --slave, -e, "
				 "IRkernel::main(), --args, <connection "
				 "file>] with this installation's R");
	return 0;
}

/* A start-up variable differs from the zygote's (see rzyg_startup_vars). */
static int rzyg_check_var(const char *name, char **env, struct rzyg_err *e)
{
	const char *want = rzyg_env_get(z.env_proc, name);
	const char *got = rzyg_env_get(env, name);
	size_t wl, gl;

	if (!rzyg_in_list(name, rzyg_startup_vars, 1) ||
	    (rzyg_in_list(name, rzyg_forced_vars, 0) &&
	     strcmp(name, "LD_LIBRARY_PATH") != 0))
		return 0;
	if (strcmp(name, "R_ARCH") == 0) {
		/* The front-end script sets it to "" when unset. */
		want = want ? want : "";
		got = got ? got : "";
	}
	if (strcmp(name, "LD_LIBRARY_PATH") == 0) {
		/* The script puts R's own dirs before the caller's: the
		 * caller's value is what follows them, if anything. */
		if (!got)
			return 0;
		wl = want ? strlen(want) : 0;
		gl = strlen(got);
		if (wl > gl && want[wl - gl - 1] == ':' &&
		    strcmp(want + wl - gl, got) == 0)
			return 0;
		want = NULL;
	}
	if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
		return rzyg_fail(e, "environment", 0,
				 "%s differs from the zygote's (it is read "
				 "when R starts)",
				 name);
	return 0;
}

static int rzyg_check_env(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	char **v;
	char name[256];

	for (int pass = 0; pass < 2; pass++)
		for (v = pass ? z.env_proc : sp->env; v && *v; v++) {
			size_t n = strcspn(*v, "=");

			if (n >= sizeof(name))
				continue;
			memcpy(name, *v, n);
			name[n] = '\0';
			if (rzyg_check_var(name, sp->env, e) < 0)
				return -1;
		}
	return 0;
}

/* The user start-up files and .RData an exec'd R reads in cwd. */
static int rzyg_check_profiles(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	char path[PATH_MAX];
	int i;

	snprintf(path, sizeof(path), "%s/.RData", sp->cwd);
	if (access(path, F_OK) == 0)
		return rzyg_fail(e, "shadowed", 0,
				 "%s: an exec'd R restores it, the zygote "
				 "did not",
				 path);
	for (i = 0; i < 2; i++) {
		const struct rzyg_file *r = &z.profiles[i].read;
		size_t cl = strlen(sp->cwd);

		rzyg_profile_path(&z.profiles[i], sp->env, sp->cwd, path,
				  sizeof(path));
		if (strcmp(path, r->path) != 0)
			return rzyg_fail(
			    e,
			    (strncmp(path, sp->cwd, cl) == 0 &&
			     path[cl] == '/') ||
				    r->path[0]
				? "shadowed"
				: "stale",
			    0, "R would read %s, the zygote read %s",
			    path[0] ? path : "no user start-up file",
			    r->path[0] ? r->path : "none");
		if (path[0] && !rzyg_same_file(r))
			return rzyg_fail(e, "stale", 0,
					 "%s changed since the zygote read it",
					 path);
	}
	return 0;
}

/* The installation changed: a watched file, a library dir that appeared or
 * went, a package installed into an earlier library than a loaded one's. */
static int rzyg_check_stale(struct rzyg_err *e)
{
	char path[PATH_MAX];
	int i, l;

	for (i = 0; i < z.nfiles; i++)
		if (!rzyg_same_file(&z.files[i]))
			return rzyg_fail(e, "stale", 0,
					 "%s changed since the zygote loaded "
					 "it",
					 z.files[i].path);
	for (l = 0; l < z.nlibs; l++) {
		struct stat st;
		int now = stat(z.libs[l].path, &st) == 0 && S_ISDIR(st.st_mode);

		if (now != (z.libs[l].ino != 0))
			return rzyg_fail(e, "stale", 0,
					 "library %s %s since the zygote "
					 "started",
					 z.libs[l].path,
					 now ? "appeared" : "went");
	}
	for (i = 0; i < z.npkgs; i++)
		for (l = 0; l < z.pkgs[i].lib && l < z.nlibs; l++) {
			snprintf(path, sizeof(path), "%s/%s/DESCRIPTION",
				 z.libs[l].path, z.pkgs[i].name);
			if (access(path, F_OK) == 0)
				return rzyg_fail(e, "stale", 0,
						 "%s would now be loaded "
						 "instead of a preloaded "
						 "package",
						 path);
		}
	return 0;
}

/* ------------------------------------------------------- the kernel */

static void rzyg_report(json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT);

	if (s && rzyg_status_fd >= 0) {
		size_t n = strlen(s);

		s[n] = '\n';
		if (write(rzyg_status_fd, s, n + 1) < 0) {
			/* The zygote gave up on this kernel. */
		}
	}
	free(s);
	json_decref(doc);
}

__attribute__((noreturn)) static void rzyg_child_fail(const struct rzyg_err *e)
{
	rzyg_report(json_pack("{s:s, s:i, s:s}", "step", e->step, "errno",
			      e->err, "reason", e->reason));
	_exit(127);
}

/* Signals as a fresh R has them: R's start-up handlers, mask empty. */
static void rzyg_reset_signals(void)
{
	sigset_t none;
	int s;

	for (s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &z.sigs[s], NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int rzyg_become_user(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	if (!sp->has_user)
		return 0;
	if (geteuid() != 0) {
		if (getuid() == sp->uid && getgid() == sp->gid)
			return 0;
		return rzyg_fail(e, "user", EPERM,
				 "the zygote runs as uid %d and cannot become "
				 "uid %d",
				 (int)getuid(), (int)sp->uid);
	}
	if (setgroups((size_t)sp->ngroups, sp->groups) < 0 ||
	    setgid(sp->gid) < 0 || setuid(sp->uid) < 0)
		return rzyg_fail(e, "user", errno,
				 "cannot become uid %d gid %d: %s",
				 (int)sp->uid, (int)sp->gid, strerror(errno));
	return 0;
}

/* Closes every fd but 0, 1, 2, the status pipe and the preload's. */
static void rzyg_close_fds(void)
{
	unsigned char now[RZYG_MAX_FD];
	int fd;

	rzyg_open_fds(now);
	for (fd = 3; fd < RZYG_MAX_FD; fd++)
		if (now[fd] && fd != rzyg_status_fd && !z.preload_fds[fd])
			close(fd);
}

/* Steps 2 to 8 of the set-up (ZYGOTE-PROTOCOL.md). */
static int rzyg_child_process(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	int null, i;
	char buf[16];

	rzyg_reset_signals();
	if (setsid() < 0)
		return rzyg_fail(e, "setsid", errno, "setsid: %s",
				 strerror(errno));
	if (sp->has_oom) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY);
		int n = snprintf(buf, sizeof(buf), "%d", sp->oom);

		if (fd < 0 || write(fd, buf, (size_t)n) != n)
			return rzyg_fail(e, "oom_score_adj", errno,
					 "oom_score_adj: %s", strerror(errno));
		close(fd);
	}
	null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, 0) < 0 || dup2(sp->out, 1) < 0 ||
	    dup2(sp->err, 2) < 0)
		return rzyg_fail(e, "stdio", errno, "stdio: %s",
				 strerror(errno));
	if (null > 2)
		close(null);
	if (sp->cgroup >= 0 && write(sp->cgroup, "0", 1) != 1)
		return rzyg_fail(e, "cgroup", errno,
				 "cannot join the kernel's cgroup: %s",
				 strerror(errno));
	for (i = 0; i < sp->nrl; i++)
		if (setrlimit((__rlimit_resource_t)sp->rl_which[i],
			      &sp->rl[i]) < 0) {
			snprintf(buf, sizeof(buf), "rlimit %s", sp->rl_name[i]);
			return rzyg_fail(e, buf, errno, "%s: %s", buf,
					 strerror(errno));
		}
	if (rzyg_become_user(sp, e) < 0)
		return -1;
	/* As after an exec: the zygote is not dumpable, and a uid change
	 * clears the flag as well. */
	if (prctl(PR_SET_DUMPABLE, 1) < 0)
		return rzyg_fail(e, "dumpable", errno, "dumpable: %s",
				 strerror(errno));
	if (chdir(sp->cwd) < 0)
		return rzyg_fail(e, "chdir", errno, "chdir: %s",
				 strerror(errno));
	rzyg_close_fds();
	rzyg_mark("kernel_fds");
	return 0;
}

/* The environment of an exec'd R: the request's, then what R's front-end
 * script forces (R_HOME...), then what R's start-up files default (EDITOR,
 * R_LIBS_USER...: set in the zygote by R, absent from what exec gave it)
 * where the request has no value. */
static int rzyg_child_environ(const struct rzyg_spec *sp)
{
	char **v;
	int pass;

	if (clearenv() != 0)
		return -1;
	for (pass = 0; pass < 3; pass++)
		for (v = pass ? z.env_now : sp->env; v && *v; v++) {
			size_t n = strcspn(*v, "=");
			char name[256];
			int forced;

			if (n >= sizeof(name))
				continue;
			memcpy(name, *v, n);
			name[n] = '\0';
			forced = rzyg_in_list(name, rzyg_forced_vars, 0);
			if (pass == 1 && !forced)
				continue;
			if (pass == 2 &&
			    (forced || rzyg_env_get(z.env_proc, name)))
				continue;
			if (setenv(name, *v + n + 1, pass == 1) < 0)
				return -1;
		}
	return 0;
}

/* rzyg_tempdir(): R's per-session directory, made anew in a forked kernel
 * by R itself (TMPDIR, TMP, TEMP, /tmp; R_SESSION_TMPDIR): R removes the one
 * it made when the kernel exits, so each kernel needs its own, and R's own
 * record of it (the one its exit removes) must be the kernel's, not the
 * zygote's. Returns the new path; an R error if none could be made. */
SEXP rzyg_tempdir(void);
SEXP rzyg_tempdir(void)
{
	R_TempDir = NULL;
	R_reInitTempDir(0);
	return mkString(R_TempDir ? R_TempDir : "");
}

/* /proc/PID/cmdline of an exec'd kernel (ps, and the daemon looking for
 * "kernel-<id>.json" there), written over the zygote's argv strings. Not
 * into the environment strings behind them: R keeps pointers into those
 * (R_HOME). A longer command line drops argv[0]'s directory, then is cut. */
static void rzyg_set_title(char **argv, int argc)
{
	unsigned long start = 0, end = 0;
	char stat[4096], *p, title[8192];
	size_t room, len = 0;
	FILE *f = fopen("/proc/self/stat", "r");
	int i;

	if (!f)
		return;
	p = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
	fclose(f);
	for (i = 0; p && i < 46; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %lu %lu", &start, &end) != 2 || end <= start)
		return;
	room = end - start;
	for (int pass = 0; pass < 2; pass++) {
		len = 0;
		for (i = 0; i < argc && len < sizeof(title) - 1; i++) {
			const char *a = argv[i];

			if (i == 0 && pass == 1 && strrchr(a, '/'))
				a = strrchr(a, '/') + 1;
			len += (size_t)snprintf(title + len,
						sizeof(title) - len, "%s", a) +
			       1;
		}
		if (len <= room)
			break;
	}
	if (len > room) {
		len = room;
		title[len - 1] = '\0';
	}
	memset(title + len, 0,
	       sizeof(title) - len < room - len ? sizeof(title) - len
						: room - len);
	memcpy((void *)start, title, len);
	memset((char *)start + len, 0, room - len);
}

/* Step 10: what R would have built from scratch in the kernel's place. */
static int rzyg_child_r(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	int argc = (int)json_array_size(sp->argv), i;
	char **argv = calloc((size_t)argc + 1, sizeof(char *));

	if (!argv || rzyg_child_environ(sp) < 0)
		return rzyg_fail(e, "r", errno, "environment: %s",
				 strerror(errno));
	tzset();
	argv[0] = z.exe;
	for (i = 1; i < argc; i++)
		argv[i] = strdup(
		    json_string_value(json_array_get(sp->argv, (size_t)i)));
	R_set_command_line_arguments(argc, argv);
	rzyg_set_title(argv, argc);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	return 0;
}

/* Step 11: the kernel must be the daemon's child. Once the intermediate
 * has exited it is re-parented to the daemon (a child subreaper); the
 * parent-death signal is set only then (it would fire on the
 * intermediate's exit, and a uid change clears it), and the parent checked
 * once more: a daemon that died before the prctl left it to init. */
static int rzyg_child_reparent(pid_t intermediate, struct rzyg_err *e)
{
	struct timespec pause = {0, 200000};
	int waited = 0;
	pid_t ppid;

	while (getppid() == intermediate) {
		if (waited++ > RZYG_REPARENT_MS * 5)
			return rzyg_fail(e, "parent", 0,
					 "the intermediate process did not "
					 "exit");
		nanosleep(&pause, NULL);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	ppid = getppid();
	if (ppid != z.parent)
		return rzyg_fail(e, "parent", ESRCH,
				 "re-parented to pid %d, not to the daemon "
				 "(pid %d): the daemon must be a child "
				 "subreaper (PR_SET_CHILD_SUBREAPER)",
				 (int)ppid, (int)z.parent);
	return 0;
}

/* A forked kernel's set-up; returns only on success. */
static void rzyg_child(const struct rzyg_spec *sp, pid_t intermediate)
{
	struct rzyg_err e = {{0}, 0, {0}};

	rzyg_mark("kernel_forked");
	rzyg_report(json_pack("{s:i}", "pid", (int)getpid()));
	if (rzyg_child_process(sp, &e) < 0 || rzyg_child_r(sp, &e) < 0)
		rzyg_child_fail(&e);
	rzyg_mark("kernel_state");
	/* Last: the intermediate's exit (tearing down its copy of the
	 * address space) overlaps with the steps above. */
	if (rzyg_child_reparent(intermediate, &e) < 0)
		rzyg_child_fail(&e);
	rzyg_mark("kernel_reparented");
}

/* rzyg_started(): tells the zygote that the set-up succeeded (the moment
 * an exec'd kernel's CLOEXEC error pipe closes). */
SEXP rzyg_started(void);
SEXP rzyg_started(void)
{
	json_t *doc = json_pack("{s:b}", "ok", 1);
	char *s;
	ssize_t n;
	size_t len;

	rzyg_mark("kernel_ok");
	if (z.marks)
		json_object_set(doc, "trace", z.marks);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	len = s ? strlen(s) : 0;
	if (s)
		s[len++] = '\n';
	n = s ? write(rzyg_status_fd, s, len) : -1;
	free(s);
	if (n < 0)
		_exit(127); /* the zygote gave up on this kernel: nobody
			       knows it */
	close(rzyg_status_fd);
	rzyg_status_fd = -1;
	return R_NilValue;
}

/* rzyg_abort(step, reason): a set-up step done in R failed. */
SEXP rzyg_abort(SEXP step, SEXP reason);
SEXP rzyg_abort(SEXP step, SEXP reason)
{
	struct rzyg_err e = {0};

	rzyg_fail(&e, CHAR(STRING_ELT(step, 0)), 0, "%s",
		  CHAR(STRING_ELT(reason, 0)));
	rzyg_child_fail(&e);
}

/* ------------------------------------------------------- the zygote */

/* The kernel's status lines merged, up to EOF (*eof 1) or the timeout. */
static json_t *rzyg_read_status(int fd, int *eof)
{
	json_t *status = json_object();
	char buf[65536];
	size_t len = 0;
	struct timespec t0, t;
	char *line, *nl;

	*eof = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!*eof && len < sizeof(buf) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = RZYG_CHILD_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
					(t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			break;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		*eof = n <= 0;
		len += n > 0 ? (size_t)n : 0;
	}
	buf[len] = '\0';
	for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
		json_t *doc;

		*nl = '\0';
		doc = json_loads(line, 0, NULL);
		if (json_is_object(doc))
			json_object_update(status, doc);
		json_decref(doc);
	}
	return status;
}

/* The spawn's answer from the kernel's status lines. */
static void rzyg_answer(const struct rzyg_spec *sp, json_t *st, int eof)
{
	json_t *pid = json_object_get(st, "pid"), *doc;

	if (json_is_true(json_object_get(st, "ok"))) {
		doc = json_pack("{s:s, s:s, s:O}", "type", "spawned", "id",
				sp->id, "pid", pid);
		if (z.marks) {
			json_t *trace = json_object_get(st, "trace");

			rzyg_mark("replied");
			trace = trace ? json_deep_copy(trace) : json_object();
			json_object_update(trace, z.marks);
			json_object_set_new(doc, "trace", trace);
		}
		rzyg_send_json(doc);
		return;
	}
	if (!json_object_get(st, "step") && !eof) {
		if (json_is_integer(pid))
			kill((pid_t)json_integer_value(pid), SIGKILL);
		json_object_update(
		    st, json_pack("{s:s, s:i, s:s}", "step", "timeout", "errno",
				  ETIMEDOUT, "reason",
				  "the forked kernel did not report its set-up "
				  "within 10 s"));
	} else if (!json_object_get(st, "step")) {
		json_object_update(
		    st,
		    json_pack("{s:s, s:i, s:s}", "step", "died", "errno", 0,
			      "reason",
			      "the forked kernel exited during its set-up"));
	}
	doc = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O}", "type", "error", "id",
			sp->id, "pid", pid ? pid : json_null(), "step",
			json_object_get(st, "step"), "errno",
			json_object_get(st, "errno"), "reason",
			json_object_get(st, "reason"));
	rzyg_send_json(doc);
}

/* Forks the kernel through an intermediate process. Returns 1 in the
 * kernel (set up), 0 in the zygote (answer sent), -1 with e set when
 * nothing was forked. */
static int rzyg_fork(const struct rzyg_spec *sp, struct rzyg_err *e)
{
	int pfd[2], eof;
	pid_t mid, ipid;
	json_t *st;
	char names[512];

	if (rzyg_thread_count() != 1) {
		rzyg_thread_names(names, sizeof(names));
		return rzyg_fail(e, "threads", 0,
				 "the zygote has %s; refusing to fork (a "
				 "preload started them)",
				 names);
	}
	rzyg_mark("checked");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return rzyg_fail(e, "fork", errno, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	mid = fork();
	if (mid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return rzyg_fail(e, "fork", errno, "fork: %s", strerror(errno));
	}
	if (mid == 0) {
		close(pfd[0]);
		rzyg_status_fd = pfd[1];
		ipid = getpid();
		mid = fork();
		if (mid == 0) {
			rzyg_child(sp, ipid);
			return 1;
		}
		if (mid < 0)
			rzyg_report(json_pack("{s:s, s:i, s:s}", "step", "fork",
					      "errno", errno, "reason",
					      "fork failed"));
		_exit(0);
	}
	close(pfd[1]);
	rzyg_mark("forked");
	st = rzyg_read_status(pfd[0], &eof);
	close(pfd[0]);
	/* Gone by now: the kernel reports only after it was re-parented. */
	waitpid(mid, NULL, 0);
	rzyg_answer(sp, st, eof);
	json_decref(st);
	return 0;
}

/* One request: 1 in a forked kernel, 0 in the zygote (answered). */
static int rzyg_request(const char *data, size_t len, int trunc, const int *fds,
			int nfds, struct rzyg_spec *sp)
{
	struct rzyg_err e = {{0}, 0, {0}};
	json_error_t jerr;
	json_t *req = NULL;
	const char *type;
	int r = -1;

	if (trunc) {
		rzyg_fail(&e, "request", EMSGSIZE,
			  "request too long (at most 1 MiB and 8 fds)");
		goto out;
	}
	req = json_loadb(data, len, 0, &jerr);
	if (!json_is_object(req)) {
		rzyg_fail(&e, "request", 0, "not a JSON object: %s",
			  req ? "" : jerr.text);
		goto out;
	}
	sp->id = json_string_value(json_object_get(req, "id"));
	type = json_string_value(json_object_get(req, "type"));
	if (!type || strcmp(type, "spawn") != 0) {
		rzyg_fail(&e, "request", 0, "unknown request type '%s'",
			  type ? type : "");
		goto out;
	}
	if (rzyg_parse(req, fds, nfds, sp, &e) < 0 ||
	    rzyg_check_argv(sp, &e) < 0 || rzyg_check_env(sp, &e) < 0 ||
	    rzyg_check_profiles(sp, &e) < 0 || rzyg_check_stale(&e) < 0)
		goto out;
	r = rzyg_fork(sp, &e);
out:
	if (r < 0)
		rzyg_send_json(json_pack("{s:s, s:s?, s:n, s:s, s:i, s:s}",
					 "type", "error", "id", sp->id, "pid",
					 "step", e.step, "errno", e.err,
					 "reason", e.reason));
	if (r == 1) {
		/* The kernel keeps the request (its argv) until R has it. */
		sp->argv = json_incref(sp->argv);
	}
	json_decref(req);
	return r == 1;
}

/* Receives one datagram with its fds; returns its length, 0 at EOF. */
static ssize_t rzyg_recv(char *buf, int *fds, int *nfds, int *trunc)
{
	union {
		char buf[CMSG_SPACE(RZYG_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {buf, RZYG_MAX_REQUEST};
	struct msghdr msg = {NULL, 0, &iov, 1, ctl.buf, sizeof(ctl.buf), 0};
	struct cmsghdr *c;
	ssize_t n;

	do
		n = recvmsg(z.chan, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	*nfds = 0;
	for (c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k =
			    (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			memcpy(fds + *nfds, CMSG_DATA(c),
			       (size_t)k * sizeof(int));
			*nfds += k;
		}
	*trunc = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
	return n < 0 ? 0 : (n == 0 && *nfds ? 1 : n);
}

/* rzyg_serve(): answers requests until the channel closes (NULL) or, in a
 * forked kernel, returns its connection file. */
SEXP rzyg_serve(void);
SEXP rzyg_serve(void)
{
	static char buf[RZYG_MAX_REQUEST + 1];
	int fds[RZYG_MAX_FDS], nfds, trunc, i;

	for (;;) {
		struct rzyg_spec sp;
		ssize_t n = rzyg_recv(buf, fds, &nfds, &trunc);
		int kernel;

		if (n == 0 || getppid() != z.parent)
			return R_NilValue; /* the daemon closed or is gone */
		clock_gettime(CLOCK_MONOTONIC, &z.t0);
		json_decref(z.marks);
		z.marks = z.trace ? json_object() : NULL;
		memset(&sp, 0, sizeof(sp));
		kernel = rzyg_request(buf, (size_t)n, trunc, fds, nfds, &sp);
		free(sp.env);
		if (kernel)
			return mkString(
			    json_string_value(json_array_get(sp.argv, 5)));
		for (i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

/* R's DL_FUNC through void (*)(void), the type that matches any function. */
#define RZYG_FN(f) ((DL_FUNC)(void (*)(void))(f))

static const R_CallMethodDef rzyg_calls[] = {
    {"rzyg_init", RZYG_FN(rzyg_init), 2},
    {"rzyg_setup", RZYG_FN(rzyg_setup), 1},
    {"rzyg_preload_fds", RZYG_FN(rzyg_preload_fds), 0},
    {"rzyg_threads", RZYG_FN(rzyg_threads), 0},
    {"rzyg_blas_shutdown", RZYG_FN(rzyg_blas_shutdown), 0},
    {"rzyg_send", RZYG_FN(rzyg_send), 1},
    {"rzyg_failed", RZYG_FN(rzyg_failed), 1},
    {"rzyg_log", RZYG_FN(rzyg_log_r), 2},
    {"rzyg_serve", RZYG_FN(rzyg_serve), 0},
    {"rzyg_started", RZYG_FN(rzyg_started), 0},
    {"rzyg_tempdir", RZYG_FN(rzyg_tempdir), 0},
    {"rzyg_abort", RZYG_FN(rzyg_abort), 2},
    {NULL, NULL, 0},
};

void R_init_rzyg(DllInfo *dll);
void R_init_rzyg(DllInfo *dll)
{
	R_registerRoutines(dll, NULL, rzyg_calls, NULL, NULL);
	R_useDynamicSymbols(dll, FALSE);
}
