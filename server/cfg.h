/*
 * cfg: the one option table.
 *
 * Each option has a long flag (--name VALUE or --name=VALUE), an environment
 * variable (E2B_CI_NAME, upper-case, '-' -> '_'), a type, a default, bounds
 * and a help line; the table drives defaults, parsing, --help and --check.
 * Precedence: flag > environment > default. Startup only; loop thread.
 */
#ifndef E2BCI_CFG_H
#define E2BCI_CFG_H

#include <stddef.h>
#include <stdio.h>

struct cfg {
	char *listen;	   /* --listen: address; "::" = all, IPv4+IPv6 */
	long port;	   /* --port: 49999 */
	char *cwd;	   /* --cwd: default context cwd, /home/user */
	char *envd_url;	   /* --envd-url: http://localhost:49983 */
	char *log_level;   /* --log-level: error|warn|info|debug */
	char *kernel_path; /* --kernel-path: extra kernelspec dirs, ':'-sep */
	char *runtime_dir; /* --runtime-dir: connection files, ipc sockets */
	char *default_languages; /* --default-languages: "python,javascript" */
	char *pool;		 /* --pool: spare kernels, "python=1" */
	long max_body;		 /* --max-body: request body cap, bytes */
	long keepalive_ms;	 /* --keepalive-ms: 5000 */
	long kernel_start_timeout_ms; /* --kernel-start-timeout-ms: 60000 */
	long kernel_retry_ms; /* --kernel-retry-ms: a FAILED context tries again
				 after this, doubling; 0 = never. 60000 */
	long interrupt_timeout_ms; /* --interrupt-timeout-ms: 5000, then restart
				    */
	long envd_timeout_ms;	   /* --envd-timeout-ms: 2000 */
	long max_contexts;	   /* --max-contexts: 64 */
	long max_kernels;	   /* --max-kernels: 96 */
	long max_connections;	   /* --max-connections: 2048 */
	long header_timeout_ms;	   /* --header-timeout-ms: 10000 */
	long stop_timeout_ms;	   /* --stop-timeout-ms: 10000 */
	long max_backlog; /* --max-backlog: bytes of output kept per execution,
			     64 MiB */
	char *access_token;	/* --access-token: "" = no check */
	long kernel_memory_max; /* --kernel-memory-max: bytes, 0 = none */
	long kernel_cpu_weight; /* --kernel-cpu-weight: 50 */
	long kernel_tasks_max;	/* --kernel-tasks-max: 0 = none */
	char *kernel_user;	/* --kernel-user: "" = the daemon's user */
	char *zygote;		/* --zygote: on|off */
	char *python_preload;	/* --python-preload: numpy,pandas,matplotlib */

	/* What kernel output may make the daemon hold (exec_budget,
	 * kernel_env.max_msg). */
	long max_backlog_total;	 /* --max-backlog-total: all, 96 MiB */
	long max_kernel_message; /* --max-kernel-message: one part, 6 MiB */
};

/* Fills c from defaults, environment and argv (argv[0] skipped). Returns 0 to
 * run, 1 when --help or --version was handled (printed to out), 2 for
 * --check (caller prints with cfg_print after its own checks), or -1 with a
 * message in err for a bad flag, a bad value or a value out of bounds. */
int cfg_load(struct cfg *c, int argc, char **argv, FILE *out, char *err,
	     size_t errlen);
/* Frees the strings; accepts a zeroed struct. */
void cfg_cleanup(struct cfg *c);
/* Prints the usage text (every option: flag, env var, default, help). */
void cfg_usage(FILE *out, const char *prog);
/* Prints "name = value" for every option (for --check and debug logs). */
void cfg_print(const struct cfg *c, FILE *out);

#endif
