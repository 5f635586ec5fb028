/*
 * kh_bash.c: bash mode.
 *
 * The runner is one long-lived "bash --noprofile --norc --noediting +o
 * history -i" (kernels/bash/kernel.json) with pipes for stdin, stdout and
 * stderr; cwd, variables, exports, functions and aliases persist because
 * every cell runs in that one shell. Interactive
 * mode is what makes interrupts work: on SIGINT an interactive bash abandons
 * the whole command line it is running (a foreground child, a builtin loop)
 * and goes back to reading commands, where a non-interactive one would exit.
 * --noediting keeps readline away (it would echo our input); +o history
 * keeps bash from loading and saving a history file.
 *
 * Protocol with bash, all in-band with a per-kernel random token T:
 *  - At start the host sends one init line that silences prompts and
 *    history, moves bash's pipes to high fds (see kh_bash_init_head: so a
 *    cell's "exec >file" cannot swallow markers, and low fds stay free for
 *    user code), defines __e2b_begin and __e2b_end (readonly functions),
 *    sets PROMPT_COMMAND=__e2b_end (readonly) and prints "T V<bash
 *    version>". Before touching its pipes, each function checks that they
 *    still are the pipes (bash's [[ -ef ]], a few stats) and opens any that
 *    user code closed or replaced again from the host's own copies of the
 *    runner's ends, /proc/<host pid>/fd/N.
 *  - Each cell is sent as one line:
 *        __e2b_begin N; eval -- $'<code, escaped>'
 *    __e2b_begin points fd 0 at /dev/null, so user code never eats our
 *    input, and prints "T B N" on a pipe of its own (the runner's fd 3,
 *    the host's events pipe); eval runs the code in the shell itself.
 *    Keeping the begin marker off stdout and stderr leaves both pipes
 *    empty when the cell's code starts, so the host can tell which of
 *    them the cell wrote first (kh_proc reads pipes in arrival order).
 *  - Before every prompt bash runs PROMPT_COMMAND, which prints
 *    "T E N:<exit status of the line>" on stdout and on stderr. A line cut
 *    short by SIGINT still gets its prompt, with status 130.
 * The cell is over when the end marker of N has arrived on both streams:
 * by then everything the cell wrote to either pipe has been read.
 * Markers are stripped (kh_scan); the exit status of the last command
 * becomes the execute_reply status (non-zero: error "BashError").
 *
 * Interrupts and their races: SIGINT goes to bash's process group (bash and
 * the foreground job, since there is no job control) only after the begin
 * marker of the running cell arrived, i.e. once bash is executing the line;
 * before that it is held (a SIGINT while bash is still reading the line
 * could discard part of it). A late SIGINT, landing after the cell ended,
 * just makes bash print another prompt: its end markers carry the old N and
 * are ignored, as are second markers for a stream that already ended.
 *
 * One SIGINT can also be swallowed by the foreground child in the moment
 * between fork and exec, while it still runs bash's own handler: then the
 * child lives on and bash waits for it. So while the interrupted cell has
 * not ended, the SIGINT is repeated a few times with growing gaps
 * (KH_BASH_REPEAT_MS, doubling, KH_BASH_REPEATS times), which stays far from
 * a program that handles SIGINT and takes a moment to wind down.
 *
 * Deliberately absent: a pty (stdout and stderr stay separate; programs see
 * no terminal), job control, stdin for user code. A cell that runs "exit"
 * (or trips "set -e") ends bash, and with it the host, on purpose.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "jtext.h"
#include "kh.h"
#include "kh_exec.h"
#include "kh_scan.h"
#include "log.h"

#define KH_BASH_TOKEN_BYTES 16
#define KH_BASH_REPEAT_MS   250 /* first repeat of an unanswered SIGINT */
#define KH_BASH_REPEATS	    3

struct kh_bash {
	char token[8 + 2 * KH_BASH_TOKEN_BYTES + 1];
	struct kh_scan scan[KH_NFD]; /* for fd 1, 2 and 3 */
	unsigned long seq;	  /* the running cell's N; 0: the init line */
	bool begun;		  /* its begin marker arrived */
	bool ended[KH_NFD];	  /* its end marker arrived on fd 1 / fd 2 */
	int status;		  /* exit status from the first end marker */
	bool interrupted;	  /* an interrupt was asked for this cell */
	bool pending;		  /* ... and waits for the begin marker */
	struct loop_timer repeat; /* repeats SIGINT until the cell ends */
	int repeats;		  /* repeats left */
	uint64_t repeat_ms;	  /* gap before the next repeat */
	char version[64];	  /* $BASH_VERSION */
};

/* The scanner callbacks' argument: which stream a marker came from. */
struct kh_bash_src {
	struct kh *kh;
	enum kh_fd fd;
};

/*
 * The init line. Bash keeps its pipes on high fds, so user code is free to
 * use low ones ("exec 10>lock"; bash's own {var}> allocations start at
 * 10): the command pipe on 253, stdout and stderr on 250 and 251, the
 * begin markers' pipe on 252. A cell runs with fd 0 on /dev/null, set by
 * __e2b_begin with exec rather than by a redirection of the eval: bash
 * saves a redirected fd on the lowest free fd from 10 up, where user code
 * would clobber it. __e2b_end puts the command pipe back before the next
 * prompt (a line cut short by SIGINT still gets its PROMPT_COMMAND).
 * __e2b_fds runs first in both: a pipe that user code closed or replaced
 * is opened again from the host's copy of its end. Kept free of '!'
 * because history expansion is only switched off once the line runs.
 */
static const char kh_bash_init_head[] =
    "set +o history +H; unset HISTFILE TMOUT MAILCHECK PROMPT_COMMAND; "
    "PS1=; PS2=; PS0=; PS4='+ '; exec 253<&0 250>&1 251>&2 252>&3 3>&-; "
    "__e2b_t=";
static const char kh_bash_init_fds[] =
    "; readonly __e2b_t; __e2b_seq=0; __e2b_fds() { ";
static const char kh_bash_init_tail[] =
    "}; __e2b_begin() { __e2b_fds; exec 0</dev/null; __e2b_seq=$1; "
    "builtin printf '%sB%s\\n' \"$__e2b_t\" \"$1\" >&252; }; "
    "__e2b_end() { local s=$? x=$-; { set +x; } 2>/dev/null; __e2b_fds; "
    "exec 0<&253; "
    "builtin printf '%sE%s:%s\\n' \"$__e2b_t\" \"$__e2b_seq\" \"$s\" >&250; "
    "builtin printf '%sE%s:%s\\n' \"$__e2b_t\" \"$__e2b_seq\" \"$s\" >&251; "
    "case $x in *x*) set -x;; esac; return 0; }; "
    "readonly -f __e2b_fds __e2b_begin __e2b_end; "
    "PROMPT_COMMAND=__e2b_end; readonly PROMPT_COMMAND; "
    "builtin printf '%sV%s\\n' \"$__e2b_t\" \"$BASH_VERSION\" >&250\n";

/* Bash's fd for each of the runner's pipes (kh_proc's cfd index), and how
 * __e2b_fds opens it again. */
static const struct {
	int fd, cfd;
	const char *op;
} kh_bash_fds[] = {
    {253, 0, "<"},
    {250, KH_FD_STDOUT, ">|"},
    {251, KH_FD_STDERR, ">|"},
    {252, KH_FD_EVENTS, ">|"},
};

static int kh_bash_init(struct kh *kh)
{
	unsigned char rnd[KH_BASH_TOKEN_BYTES];
	struct kh_bash *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	kh->bash = b;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return errno ? -errno : -EIO;
	strcpy(b->token, "__e2b_k_");
	jtext_hex(rnd, sizeof(rnd), b->token + 8);
	kh_scan_init(&b->scan[KH_FD_STDOUT], b->token, "EV");
	kh_scan_init(&b->scan[KH_FD_STDERR], b->token, "E");
	kh_scan_init(&b->scan[KH_FD_EVENTS], b->token, "B");
	return 0;
}

static int kh_bash_start(struct kh *kh)
{
	struct kh_bash *b = kh->bash;
	long pid = (long)getpid();
	char *line = NULL;
	size_t size = 0;
	int rc = -ENOMEM;
	bool bad;
	FILE *f = open_memstream(&line, &size);

	if (!f)
		return -ENOMEM;
	fprintf(f, "%s%s%s", kh_bash_init_head, b->token, kh_bash_init_fds);
	for (size_t i = 0; i < sizeof(kh_bash_fds) / sizeof(*kh_bash_fds);
	     i++) {
		int fd = kh_bash_fds[i].fd,
		    c = kh->proc.cfd[kh_bash_fds[i].cfd];
		fprintf(f,
			"[[ /dev/fd/%d -ef /proc/%ld/fd/%d ]] || exec "
			"%d%s/proc/%ld/fd/%d; ",
			fd, pid, c, fd, kh_bash_fds[i].op, pid, c);
	}
	fputs(kh_bash_init_tail, f);
	bad = ferror(f) != 0;
	if (fclose(f) == 0 && !bad)
		rc = kh_proc_write(&kh->proc, line, size);
	free(line);
	return rc;
}

/*
 * Appends code as one bash $'...' word: quote and backslash escaped,
 * printable ASCII as is, everything else as \xHH so that no byte can end
 * the line or depend on the locale. NUL bytes cannot be passed to bash at
 * all and are dropped. dst needs 4 * len + 3 bytes; returns the end.
 */
static char *kh_bash_quote(char *dst, const char *code, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	*dst++ = '$';
	*dst++ = '\'';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)code[i];

		if (c == '\0')
			continue;
		if (c == '\'' || c == '\\') {
			*dst++ = '\\';
			*dst++ = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			*dst++ = (char)c;
		} else if (c == '\n') {
			*dst++ = '\\';
			*dst++ = 'n';
		} else {
			*dst++ = '\\';
			*dst++ = 'x';
			*dst++ = hex[c >> 4];
			*dst++ = hex[c & 15];
		}
	}
	*dst++ = '\'';
	return dst;
}

static int kh_bash_execute(struct kh *kh, json_t *code, bool silent)
{
	static const char tail[] = "\n";
	struct kh_bash *b = kh->bash;
	size_t len = json_string_length(code), n;
	char *line, *p;
	int rc;

	(void)silent;
	if (len > (SIZE_MAX - 128) / 4)
		return -E2BIG;
	line = malloc(4 * len + 128);
	if (!line)
		return -ENOMEM;
	b->seq++;
	b->begun = b->pending = b->interrupted = false;
	b->ended[KH_FD_STDOUT] = b->ended[KH_FD_STDERR] = false;
	b->status = 0;
	n = (size_t)sprintf(line, "__e2b_begin %lu; eval -- ", b->seq);
	p = kh_bash_quote(line + n, json_string_value(code), len);
	memcpy(p, tail, sizeof(tail) - 1);
	p += sizeof(tail) - 1;
	rc = kh_proc_write(&kh->proc, line, (size_t)(p - line));
	free(line);
	return rc;
}

static void kh_bash_sigint(struct kh *kh);

/* The interrupted cell is still running: send SIGINT again. */
static void kh_bash_repeat(void *arg, short revents)
{
	struct kh *kh = arg;
	struct kh_bash *b = kh->bash;

	(void)revents;
	if (!kh->running || b->ended[KH_FD_STDOUT] || b->repeats <= 0)
		return;
	b->repeats--;
	b->repeat_ms *= 2;
	kh_bash_sigint(kh);
}

/* Signals bash's process group and arms the repeat. */
static void kh_bash_sigint(struct kh *kh)
{
	struct kh_bash *b = kh->bash;

	kh_proc_signal(&kh->proc, SIGINT);
	if (b->repeats > 0)
		loop_timer_arm(kh->loop, &b->repeat, b->repeat_ms,
			       kh_bash_repeat, kh);
}

static void kh_bash_interrupt(struct kh *kh)
{
	struct kh_bash *b = kh->bash;

	b->interrupted = true;
	b->repeats = KH_BASH_REPEATS;
	b->repeat_ms = KH_BASH_REPEAT_MS;
	if (b->ended[KH_FD_STDOUT])
		return; /* the line is over; nothing left to stop */
	if (!b->begun) {
		b->pending = true;
		return;
	}
	kh_bash_sigint(kh);
}

static void kh_bash_ready(struct kh *kh)
{
	struct kh_bash *b = kh->bash;
	char banner[160];
	json_t *li;

	li = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", "bash", "version",
		       b->version, "mimetype", "text/x-sh", "file_extension",
		       ".sh", "pygments_lexer", "bash", "codemirror_mode",
		       "shell");
	snprintf(banner, sizeof(banner), "e2b-kernel %s: GNU bash %s",
		 KH_VERSION, b->version);
	kh_ready(kh, li, banner);
	json_decref(li);
}

/* Both end markers of the running line arrived. */
static void kh_bash_line_done(struct kh *kh)
{
	struct kh_bash *b = kh->bash;
	char evalue[64];

	if (kh->state == KH_STARTING && b->seq == 0) {
		kh_bash_ready(kh);
		return;
	}
	if (!kh->running)
		return;
	if (b->status != 0 && b->interrupted) {
		kh_exec_error(kh, "KeyboardInterrupt", "Interrupted", NULL);
	} else if (b->status != 0) {
		snprintf(evalue, sizeof(evalue),
			 "Command exited with status %d", b->status);
		kh_exec_error(kh, "BashError", evalue, NULL);
	}
	kh_exec_done(kh);
}

/* Parses "N" (begin) or "N:S" (end) from a marker body. */
static int kh_bash_parse(const char *body, size_t len, unsigned long *seq,
			 int *status)
{
	char buf[64], *end;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, body, len);
	buf[len] = '\0';
	*seq = strtoul(buf, &end, 10);
	if (end == buf)
		return -EINVAL;
	if (!status)
		return *end == '\0' ? 0 : -EINVAL;
	if (*end != ':')
		return -EINVAL;
	*status = (int)strtol(end + 1, &end, 10);
	return *end == '\0' ? 0 : -EINVAL;
}

static void kh_bash_on_begin(struct kh *kh, unsigned long seq)
{
	struct kh_bash *b = kh->bash;

	/* The begin marker has a pipe of its own and may be read after the
	 * line ended: then there is nothing left to interrupt. */
	if (seq != b->seq || b->begun || b->ended[KH_FD_STDOUT])
		return;
	b->begun = true;
	if (b->pending) {
		b->pending = false;
		kh_bash_sigint(kh);
	}
}

static void kh_bash_on_end(struct kh *kh, enum kh_fd fd, unsigned long seq,
			   int status)
{
	struct kh_bash *b = kh->bash;

	/* Stale (a prompt after a late SIGINT) or a repeat on this stream. */
	if (seq != b->seq || b->ended[fd])
		return;
	b->ended[fd] = true;
	if (fd == KH_FD_STDOUT)
		b->status = status;
	if (b->ended[KH_FD_STDOUT])
		loop_timer_disarm(kh->loop, &b->repeat);
	if (b->ended[KH_FD_STDOUT] && b->ended[KH_FD_STDERR])
		kh_bash_line_done(kh);
}

static void kh_bash_on_mark(void *arg, char kind, const char *body, size_t len)
{
	struct kh_bash_src *src = arg;
	struct kh_bash *b = src->kh->bash;
	unsigned long seq;
	int status;

	if (kind == 'V') {
		snprintf(b->version, sizeof(b->version), "%.*s", (int)len,
			 body);
	} else if (kind == 'B') {
		if (kh_bash_parse(body, len, &seq, NULL) == 0)
			kh_bash_on_begin(src->kh, seq);
	} else if (kind == 'E') {
		if (kh_bash_parse(body, len, &seq, &status) == 0)
			kh_bash_on_end(src->kh, src->fd, seq, status);
	}
}

static void kh_bash_on_text(void *arg, const char *buf, size_t len)
{
	struct kh_bash_src *src = arg;

	/* Startup noise ("no job control in this shell", the first prompt)
	 * is nobody's output, nor is what user code wrote to fd 252. */
	if (src->kh->state == KH_STARTING || src->fd == KH_FD_EVENTS) {
		log_debug("bash fd %d, not output: %.*s", (int)src->fd,
			  (int)(len > 200 ? 200 : len), buf);
		return;
	}
	kh_exec_stream(src->kh, src->fd, buf, len);
}

static const struct kh_scan_ops kh_bash_scan_ops = {kh_bash_on_text,
						    kh_bash_on_mark};

static void kh_bash_data(struct kh *kh, enum kh_fd fd, const char *buf,
			 size_t len)
{
	struct kh_bash_src src = {kh, fd};

	if (kh_scan_feed(&kh->bash->scan[fd], buf, len, &kh_bash_scan_ops,
			 &src) < 0)
		log_warnx("bash output lost: out of memory");
}

/* An interactive bash ignores SIGTERM; SIGHUP ends it and its jobs. */
static int kh_bash_stop(struct kh *kh)
{
	(void)kh;
	return SIGHUP;
}

static void kh_bash_cleanup(struct kh *kh)
{
	struct kh_bash *b = kh->bash;

	if (!b)
		return;
	loop_timer_disarm(kh->loop, &b->repeat);
	kh_scan_cleanup(&b->scan[KH_FD_STDOUT]);
	kh_scan_cleanup(&b->scan[KH_FD_STDERR]);
	kh_scan_cleanup(&b->scan[KH_FD_EVENTS]);
	free(b);
	kh->bash = NULL;
}

const struct kh_mode kh_bash_mode = {
    .name = "bash",
    .events = true, /* the begin markers' pipe */
    .init = kh_bash_init,
    .start = kh_bash_start,
    .execute = kh_bash_execute,
    .interrupt = kh_bash_interrupt,
    .data = kh_bash_data,
    .stop = kh_bash_stop,
    .cleanup = kh_bash_cleanup,
};
