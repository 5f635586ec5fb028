/*
 * cfg: the one option table.
 *
 * Owns cfg_options[], the single description of every setting: long flag,
 * environment variable, type, place in struct cfg, default, bounds, an
 * optional validator and the help line. Defaults, environment parsing, flag
 * parsing, the --help text and the --check dump are all loops over that
 * table (redis src/config.c static_configs[]), so adding an option is one
 * line here plus one field in struct cfg.
 *
 * Invariants: after a successful cfg_load() every string field is a
 * malloc'd copy (never NULL) and every number lies within its bounds; after
 * a failed one the struct is zeroed again. Precedence is flag > environment
 * > default; for a repeated flag the last one wins.
 *
 * Threads: startup only, on the loop thread, before anything else runs.
 * It does not act on the values (bind, mkdir, resolve the runtime dir,
 * apply the log level): main does that, and --check's deeper checks too.
 */
#include "cfg.h"

#include "envd.h"
#include "errmsg.h"
#include "log.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifndef E2BCI_KERNELS_DIR
#define E2BCI_KERNELS_DIR "/usr/local/share/e2b-ci/kernels"
#endif
#ifndef E2BCI_VERSION
#define E2BCI_VERSION "0.1.0"
#endif

enum cfg_type { CFG_STR, CFG_LONG };

#define CFG_SIZE 0x1 /* a byte count: accepts k, M and G suffixes */

struct cfg_opt {
	const char *name;
	const char *env;
	size_t off; /* of the field in struct cfg */
	const char *sdef;
	long ldef;
	long long min, max;
	int (*check)(const char *v); /* strings only: 0 when acceptable */
	const char *expect;	     /* what check accepts, for errors */
	const char *help;
	enum cfg_type type;
	unsigned flags;
};

static int cfg_check_nonempty(const char *v)
{
	return v[0] != '\0' ? 0 : -1;
}

static int cfg_check_abs(const char *v)
{
	return v[0] == '/' ? 0 : -1;
}

static int cfg_check_abs_or_empty(const char *v)
{
	return v[0] == '\0' || v[0] == '/' ? 0 : -1;
}

static int cfg_check_on_off(const char *v)
{
	return strcmp(v, "on") == 0 || strcmp(v, "off") == 0 ? 0 : -1;
}

/* Python module names: letters, digits, '_', '.', separated by ','. */
static int cfg_check_modules(const char *v)
{
	return v[strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
			   "XYZ0123456789_.,")] == '\0'
		   ? 0
		   : -1;
}

static int cfg_check_level(const char *v)
{
	return log_parse_level(v, NULL);
}

/* One line per option; the layout of this table is kept by hand. */
/* clang-format off */
#define STR(n, e, field, def, chk, exp, h)                                     \
	{.name = (n), .env = (e), .type = CFG_STR,                             \
	 .off = offsetof(struct cfg, field), .sdef = (def), .check = (chk),    \
	 .expect = (exp), .help = (h)}
#define NUM(n, e, field, def, lo, hi, fl, h)                                   \
	{.name = (n), .env = (e), .type = CFG_LONG,                            \
	 .off = offsetof(struct cfg, field), .ldef = (def), .min = (lo),       \
	 .max = (hi), .flags = (fl), .help = (h)}

static const struct cfg_opt cfg_options[] = {
	STR("listen", "E2B_CI_LISTEN", listen, "::", cfg_check_nonempty,
	    "an address", "address to bind; \"::\" means all IPv4 and IPv6 "
	    "addresses"),
	NUM("port", "E2B_CI_PORT", port, 49999, 0, 65535, 0,
	    "TCP port; 0 picks a free one and logs it"),
	STR("cwd", "E2B_CI_CWD", cwd, "/home/user", cfg_check_abs,
	    "an absolute path", "working directory of new contexts"),
	STR("envd-url", "E2B_CI_ENVD_URL", envd_url, "http://localhost:49983",
	    envd_url_check, "http://host[:port][/path]: envd is reached "
	    "over plain HTTP inside the sandbox; https is not supported",
	    "envd base URL, for the sandbox's environment variables"),
	STR("log-level", "E2B_CI_LOG_LEVEL", log_level, "info",
	    cfg_check_level, "one of error, warn, info, debug",
	    "error, warn, info or debug"),
	STR("kernel-path", "E2B_CI_KERNEL_PATH", kernel_path,
	    E2BCI_KERNELS_DIR, NULL, NULL,
	    "kernelspec dirs searched before the Jupyter ones, ':'-separated"),
	STR("runtime-dir", "E2B_CI_RUNTIME_DIR", runtime_dir, "",
	    cfg_check_abs_or_empty, "an absolute path or empty",
	    "connection files and ipc sockets; empty: $RUNTIME_DIRECTORY, "
	    "else /run/e2b-ci as root, else $XDG_RUNTIME_DIR/e2b-ci, else "
	    "/tmp/e2b-ci-UID"),
	STR("default-languages", "E2B_CI_DEFAULT_LANGUAGES", default_languages,
	    "python,javascript", NULL, NULL,
	    "languages with a warm kernel at startup, ','-separated"),
	STR("pool", "E2B_CI_POOL", pool, "python=1", NULL, NULL,
	    "spare warm kernels per language, e.g. python=1,javascript=1"),
	NUM("max-body", "E2B_CI_MAX_BODY", max_body, 10485760, 1024,
	    1073741824, CFG_SIZE, "largest request body, bytes"),
	NUM("keepalive-ms", "E2B_CI_KEEPALIVE_MS", keepalive_ms, 5000, 50,
	    600000, 0, "keepalive line interval on idle streams"),
	NUM("kernel-start-timeout-ms", "E2B_CI_KERNEL_START_TIMEOUT_MS",
	    kernel_start_timeout_ms, 60000, 1000, 600000, 0,
	    "how long a kernel may take to answer kernel_info"),
	NUM("kernel-retry-ms", "E2B_CI_KERNEL_RETRY_MS", kernel_retry_ms,
	    60000, 0, 86400000, 0,
	    "a context whose kernel failed to start tries again after this, "
	    "the wait doubling up to 10 minutes; 0: never"),
	NUM("interrupt-timeout-ms", "E2B_CI_INTERRUPT_TIMEOUT_MS",
	    interrupt_timeout_ms, 5000, 100, 600000, 0,
	    "how long an interrupt may take before the kernel is restarted"),
	NUM("envd-timeout-ms", "E2B_CI_ENVD_TIMEOUT_MS", envd_timeout_ms, 2000,
	    50, 60000, 0, "timeout of requests to envd"),
	NUM("max-contexts", "E2B_CI_MAX_CONTEXTS", max_contexts, 64, 1, 4096,
	    0, "most contexts alive at once"),
	NUM("max-kernels", "E2B_CI_MAX_KERNELS", max_kernels, 96, 1, 4096, 0,
	    "most kernel processes at once (contexts, warm spares, exiting)"),
	NUM("max-connections", "E2B_CI_MAX_CONNECTIONS", max_connections, 2048,
	    16, 65536, 0, "most HTTP connections at once; beyond, the longest "
	    "idle one is closed, else the new one gets 503"),
	NUM("header-timeout-ms", "E2B_CI_HEADER_TIMEOUT_MS", header_timeout_ms,
	    10000, 100, 600000, 0, "how long a connection may take to send a "
	    "request head, from its accept or its previous answer (so idle "
	    "keep-alive connections close then too)"),
	NUM("stop-timeout-ms", "E2B_CI_STOP_TIMEOUT_MS", stop_timeout_ms,
	    10000, 100, 600000, 0, "on SIGTERM, how long open streams may take "
	    "to reach their clients before the daemon exits anyway"),
	NUM("max-backlog", "E2B_CI_MAX_BACKLOG", max_backlog, 67108864, 65536,
	    4294967296LL, CFG_SIZE,
	    "output kept per execution for slow readers, bytes"),
	NUM("max-backlog-total", "E2B_CI_MAX_BACKLOG_TOTAL", max_backlog_total,
	    100663296, 65536, 4294967296LL, CFG_SIZE,
	    "output kept for slow readers over all executions, bytes"),
	NUM("max-kernel-message", "E2B_CI_MAX_KERNEL_MESSAGE",
	    max_kernel_message, 6291456, 65536, 1073741824, CFG_SIZE,
	    "largest message part taken from a kernel, bytes; a larger one is "
	    "cut with a notice in the stream"),
	STR("access-token", "E2B_CI_ACCESS_TOKEN", access_token, "", NULL,
	    NULL, "when set, every request must carry it in X-Access-Token or "
	    "E2B-Traffic-Access-Token (401 otherwise)"),
	NUM("kernel-memory-max", "E2B_CI_KERNEL_MEMORY_MAX", kernel_memory_max,
	    0, 0, 1099511627776LL, CFG_SIZE,
	    "memory limit of each kernel, bytes (cgroup v2 memory.max, else "
	    "RLIMIT_DATA per process); 0: none"),
	NUM("kernel-tasks-max", "E2B_CI_KERNEL_TASKS_MAX", kernel_tasks_max,
	    0, 0, 4194304, 0,
	    "most processes and threads of each kernel (cgroup pids.max, v2 "
	    "or v1); 0: none"),
	NUM("kernel-cpu-weight", "E2B_CI_KERNEL_CPU_WEIGHT", kernel_cpu_weight,
	    50, 1, 10000, 0,
	    "cgroup v2 cpu.weight of each kernel (the daemon keeps 100)"),
	STR("kernel-user", "E2B_CI_KERNEL_USER", kernel_user, "", NULL, NULL,
	    "run kernels as this user (E2B's \"user\"); empty: as the daemon"),
	STR("zygote", "E2B_CI_ZYGOTE", zygote, "on", cfg_check_on_off,
	    "on or off", "fork Python kernels from a preloaded process (on) "
	    "or exec each one (off)"),
	STR("python-preload", "E2B_CI_PYTHON_PRELOAD", python_preload,
	    "numpy,pandas,matplotlib", cfg_check_modules,
	    "module names, ','-separated, or empty",
	    "what the Python zygote imports for every kernel it forks"),
};

/* clang-format on */

#define CFG_NOPTS (sizeof(cfg_options) / sizeof(cfg_options[0]))

static char **cfg_str(struct cfg *c, const struct cfg_opt *o)
{
	return (char **)(void *)((char *)c + o->off);
}

static long *cfg_long(struct cfg *c, const struct cfg_opt *o)
{
	return (long *)(void *)((char *)c + o->off);
}

static const char *cfg_str_get(const struct cfg *c, const struct cfg_opt *o)
{
	return *(char *const *)(const void *)((const char *)c + o->off);
}

static long cfg_long_get(const struct cfg *c, const struct cfg_opt *o)
{
	return *(const long *)(const void *)((const char *)c + o->off);
}

/* Parses a decimal integer, with a k/M/G suffix for byte counts, within
 * the option's bounds. Signs, spaces, hex and overflow are all rejected. */
static int cfg_parse_long(const struct cfg_opt *o, const char *s, long *out)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	if ((o->flags & CFG_SIZE) && *p != '\0' && p[1] == '\0') {
		mult = *p == 'k' || *p == 'K'	? 1ULL << 10
		       : *p == 'm' || *p == 'M' ? 1ULL << 20
		       : *p == 'g' || *p == 'G' ? 1ULL << 30
						: 0;
		if (mult == 0)
			return -1;
		p++;
	}
	if (*p != '\0' || v > ULLONG_MAX / mult)
		return -1;
	v *= mult;
	if (v < (unsigned long long)o->min || v > (unsigned long long)o->max ||
	    v > LONG_MAX)
		return -1;
	*out = (long)v;
	return 0;
}

/* Sets one option from text; src names where the text came from. */
static int cfg_set(struct cfg *c, const struct cfg_opt *o, const char *v,
		   const char *src, char *err, size_t errlen)
{
	char **sp;
	char *dup;
	long n;

	if (o->type == CFG_LONG) {
		if (cfg_parse_long(o, v, &n) == 0) {
			*cfg_long(c, o) = n;
			return 0;
		}
		return errmsg_set(err, errlen, -1,
				  "%s: invalid value '%s' (expected an "
				  "integer from %lld to %lld%s)",
				  src, v, o->min, o->max,
				  (o->flags & CFG_SIZE)
				      ? ", optionally with a k, M or G suffix"
				      : "");
	}
	if (o->check != NULL && o->check(v) != 0) {
		return errmsg_set(err, errlen, -1,
				  "%s: invalid value '%s' (expected %s)", src,
				  v, o->expect);
	}
	if ((dup = strdup(v)) == NULL) {
		return errmsg_set(err, errlen, -1, "%s: out of memory", src);
	}
	sp = cfg_str(c, o);
	free(*sp);
	*sp = dup;
	return 0;
}

static int cfg_defaults(struct cfg *c, char *err, size_t errlen)
{
	const struct cfg_opt *o;
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++) {
		o = &cfg_options[i];
		if (o->type == CFG_LONG) {
			*cfg_long(c, o) = o->ldef;
		} else if ((*cfg_str(c, o) = strdup(o->sdef)) == NULL) {
			return errmsg_set(err, errlen, -1, "out of memory");
		}
	}
	return 0;
}

static int cfg_env(struct cfg *c, char *err, size_t errlen)
{
	const struct cfg_opt *o;
	const char *v;
	char src[80];
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++) {
		o = &cfg_options[i];
		if ((v = getenv(o->env)) == NULL)
			continue;
		snprintf(src, sizeof(src), "environment %s", o->env);
		if (cfg_set(c, o, v, src, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static const struct cfg_opt *cfg_lookup(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++) {
		if (strlen(cfg_options[i].name) == len &&
		    strncmp(cfg_options[i].name, name, len) == 0)
			return &cfg_options[i];
	}
	return NULL;
}

/* Handles -h/--help and --version before anything else, so that they work
 * even when the environment holds a bad value. Returns 1 if handled. */
static int cfg_early(int argc, char **argv, FILE *out)
{
	const char *prog = argc > 0 && argv[0] != NULL ? argv[0] : "e2b-ci";
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cfg_usage(out, prog);
			return 1;
		}
		if (strcmp(argv[i], "--version") == 0) {
			fprintf(out, "e2b-ci %s\n", E2BCI_VERSION);
			return 1;
		}
	}
	return 0;
}

/* Parses the flag at argv[*i] (which starts with "--" and is not "--"),
 * advancing *i past its value. Returns 0, 2 for --check, or -1. */
static int cfg_flag(struct cfg *c, int argc, char **argv, int *i, char *err,
		    size_t errlen)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '='), *v = NULL;
	size_t len = eq != NULL ? (size_t)(eq - a) : strlen(a);
	const struct cfg_opt *o = cfg_lookup(a, len);
	char src[80];

	if (len == 5 && strncmp(a, "check", 5) == 0) {
		if (eq == NULL)
			return 2;
		return errmsg_set(err, errlen, -1,
				  "option --check takes no value");
	}
	if (o == NULL) {
		return errmsg_set(err, errlen, -1,
				  "unknown option --%.*s (see --help)",
				  (int)(len > 64 ? 64 : len), a);
	}
	snprintf(src, sizeof(src), "option --%s", o->name);
	/* A following flag is never taken as a value: "--cwd --port 1" is a
	 * forgotten value, not a directory called "--port". */
	if (eq != NULL)
		v = eq + 1;
	else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
		v = argv[++*i];
	if (v == NULL) {
		return errmsg_set(err, errlen, -1, "%s: missing value", src);
	}
	return cfg_set(c, o, v, src, err, errlen);
}

/* Parses the flags. Returns 0, 2 for --check, or -1 with err set. */
static int cfg_args(struct cfg *c, int argc, char **argv, char *err,
		    size_t errlen)
{
	const char *a;
	int i, r, check = 0;

	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (strcmp(a, "--") == 0) {
			if (i + 1 == argc)
				break;
			a = argv[i + 1];
		} else if (strncmp(a, "--", 2) == 0) {
			if ((r = cfg_flag(c, argc, argv, &i, err, errlen)) < 0)
				return -1;
			check |= r == 2;
			continue;
		} else if (a[0] == '-' && a[1] != '\0') {
			return errmsg_set(err, errlen, -1,
					  "unknown option %s (see --help)", a);
		}
		/* The daemon takes no operands. */
		return errmsg_set(err, errlen, -1,
				  "unexpected argument '%s' (see --help)", a);
	}
	return check ? 2 : 0;
}

int cfg_load(struct cfg *c, int argc, char **argv, FILE *out, char *err,
	     size_t errlen)
{
	int r;

	memset(c, 0, sizeof(*c));
	errmsg_set(err, errlen, 0, "%s", "");
	if (cfg_early(argc, argv, out != NULL ? out : stdout))
		return 1;
	r = cfg_defaults(c, err, errlen);
	if (r == 0)
		r = cfg_env(c, err, errlen);
	if (r == 0)
		r = cfg_args(c, argc, argv, err, errlen);
	if (r < 0)
		cfg_cleanup(c);
	return r;
}

void cfg_cleanup(struct cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < CFG_NOPTS; i++) {
		if (cfg_options[i].type == CFG_STR)
			free(*cfg_str(c, &cfg_options[i]));
	}
	memset(c, 0, sizeof(*c));
}

void cfg_usage(FILE *out, const char *prog)
{
	const struct cfg_opt *o;
	char flag[64];
	size_t i;

	fprintf(out,
		"Usage: %s [OPTION]...\n"
		"Serves E2B's code-interpreter API, running code in "
		"Jupyter kernels.\n\n"
		"Options (flags beat environment variables, which beat "
		"defaults):\n",
		prog);
	for (i = 0; i < CFG_NOPTS; i++) {
		o = &cfg_options[i];
		snprintf(flag, sizeof(flag), "--%s VALUE", o->name);
		fprintf(out, "  %-32s %s (env %s, default ", flag, o->help,
			o->env);
		if (o->type == CFG_LONG)
			fprintf(out, "%ld)\n", o->ldef);
		else
			fprintf(out, "%s)\n", o->sdef[0] ? o->sdef : "\"\"");
	}
	fprintf(out, "  %-32s %s\n  %-32s %s\n  %-32s %s\n", "--check",
		"validate the configuration, print it, check that each default "
		"language's kernel can start (starting none) and exit",
		"--version", "print the version and exit", "-h, --help",
		"print this help and exit");
	fputs(
	    "\nRoutes: GET /health, POST /execute (NDJSON stream), GET and "
	    "POST "
	    "/contexts,\n  POST /contexts/{id}/restart, DELETE /contexts/{id}, "
	    "GET /metrics (Prometheus).\n"
	    "\nFiles:\n"
	    "  /etc/default/e2b-ci   E2B_CI_* settings read by e2b-ci.service\n"
	    "  runtime dir           kernel connection files and ipc sockets "
	    "(0700), removed at exit\n"
	    "  kernelspecs           --kernel-path, $JUPYTER_PATH/kernels, "
	    "~/.local/share/jupyter/kernels,\n"
	    "                        /usr/local/share/jupyter/kernels, "
	    "/usr/share/jupyter/kernels\n"
	    "\nEnvironment besides E2B_CI_*:\n"
	    "  NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID   systemd notify "
	    "protocol (READY, STATUS, STOPPING, WATCHDOG)\n"
	    "  JOURNAL_STREAM        log lines get <N> syslog priorities\n"
	    "  RUNTIME_DIRECTORY     default runtime dir (systemd "
	    "RuntimeDirectory=)\n"
	    "  JUPYTER_PATH, JUPYTER_DATA_DIR, HOME   kernelspec search\n"
	    "\nSignals: SIGTERM, SIGINT and SIGHUP stop the daemon: streams "
	    "end "
	    "with an error line,\n  kernels are stopped, runtime files "
	    "removed.\n"
	    "\nExit status: 0 after a clean stop (and for --help, --version, "
	    "--check), 1 when\n  startup failed (port taken, runtime dir) or "
	    "--check found a default kernel\n  that cannot start, 2 for a "
	    "bad option or value.\n",
	    out);
}

void cfg_print(const struct cfg *c, FILE *out)
{
	const struct cfg_opt *o;
	const char *s;
	size_t i;

	for (i = 0; i < CFG_NOPTS; i++) {
		o = &cfg_options[i];
		if (o->type == CFG_LONG) {
			fprintf(out, "%s = %ld\n", o->name, cfg_long_get(c, o));
			continue;
		}
		s = cfg_str_get(c, o);
		fprintf(out, "%s = %s\n", o->name,
			s == NULL || s[0] == '\0' ? "\"\"" : s);
	}
}
