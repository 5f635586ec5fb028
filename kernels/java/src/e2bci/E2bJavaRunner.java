/*
 * E2bJavaRunner: the Java runner of the e2b-kernel host (kernels/RUNNER-PROTOCOL.md,
 * mode "json"). Requests arrive as NDJSON on stdin (or on the fd given by
 * --requests-fd, which run.sh uses so that fd 0 can be /dev/null for user code
 * and its children); user code writes to fd 1 and 2 directly; events go out as
 * NDJSON on fd 3, and only there.
 *
 * Code runs in one JShell with the "local" execution engine: snippets are
 * compiled by the in-process javac and run on a thread of this JVM, so
 * user.dir is the cwd the host started us in and E2b.setenv can reach this
 * JVM's environment. System.out and System.err are ours (Output): while a
 * cell runs, each flush of them is one "stream" event; subprocesses write
 * to fd 1 and 2 directly. An interrupt (SIGINT to our
 * process group) is JShell.stop(), which is Thread.stop on the snippet's
 * thread group on JDK 17. Requests are handled one at a time on the main
 * thread; the SIGINT handler thread only stops and never writes events.
 */
package e2bci;

import java.io.ByteArrayInputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

import jdk.jshell.DeclarationSnippet;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;

public final class E2bJavaRunner {
	/* The imports the jshell tool starts with (its DEFAULT startup). */
	private static final String[] STARTUP = {
		"import java.io.*;", "import java.math.*;", "import java.net.*;",
		"import java.nio.file.*;", "import java.util.*;", "import java.util.concurrent.*;",
		"import java.util.function.*;", "import java.util.prefs.*;",
		"import java.util.regex.*;", "import java.util.stream.*;",
	};

	private final FileOutputStream events;
	/* Held while writing one event line: lines of several threads never mix. */
	private final Object eventsLock = new Object();
	private final Output outSink;
	private final Output errSink;
	private PrintStream out;
	private PrintStream err;
	/* The running request's id while its output goes out as stream events. */
	private volatile Object streamId;
	private final JShell shell;
	private final SourceCodeAnalysis analysis;
	private volatile boolean shellDown;

	/* Guarded by lock: which request runs, whether JShell is inside eval, and
	 * whether an interrupt arrived for it. */
	private final Object lock = new Object();
	private long seq;
	private boolean busy;
	private boolean executing;
	private boolean interrupted;
	private boolean pendingInterrupt;
	/* A request line has left the queue but its cell has not started (or it
	 * was not an execute request): a SIGINT then is for that cell. */
	private boolean taken;
	/* Requests read but not yet handled, and bytes of an unfinished line;
	 * changed under lock, which is notified when a line arrives. */
	private final java.util.concurrent.LinkedBlockingQueue<String> queue =
			new java.util.concurrent.LinkedBlockingQueue<>();
	private int partial;
	private volatile FileInputStream requestsIn;
	private int requestsFd; /* its fd number, for poll */
	/* Ends the queue; compared by identity. */
	private static final String EOF = new String("EOF");

	/* Main thread only: the first line, in the running cell, of each of its snippets. */
	private final Map<String, Integer> cellLines = new java.util.HashMap<>();

	/** One error: ename, evalue, traceback lines. */
	private static final class Failure {
		final String ename;
		final String evalue;
		final List<String> traceback;

		Failure(String ename, String evalue, List<String> traceback) {
			this.ename = ename;
			this.evalue = evalue;
			this.traceback = traceback;
		}
	}

	/* A PrintStream subclass: on JDK 17 PrintStream.println(String) writes the
	 * text and the line separator in one write (and one flush) only for the
	 * class itself; for a subclass it is print + newLine, two flushes, as on
	 * JDK 11 and before, which is what the Jupyter Java kernel E2B's template
	 * runs (Output). Auto-flush: every print call flushes. */
	private static final class CellStream extends PrintStream {
		CellStream(OutputStream sink) {
			super(sink, true, StandardCharsets.UTF_8);
		}
	}

	private E2bJavaRunner(FileOutputStream events, FileOutputStream fd1, FileOutputStream fd2) {
		this.events = events;
		/* The batching timer's thread is in the main thread's group, never in
		 * the snippets' group, which JShell.stop() hits with Thread.stop. */
		ThreadGroup group = Thread.currentThread().getThreadGroup();
		java.util.concurrent.ScheduledThreadPoolExecutor timer =
				new java.util.concurrent.ScheduledThreadPoolExecutor(1, r -> {
					Thread t = new Thread(group, r, "e2b-output");
					t.setDaemon(true);
					return t;
				});
		timer.prestartCoreThread();
		this.outSink = new Output("stdout", fd1, this::stream, timer);
		this.errSink = new Output("stderr", fd2, this::stream, timer);
		this.out = new CellStream(outSink);
		this.err = new CellStream(errSink);
		System.setOut(out);
		System.setErr(err);
		this.shell = JShell.builder().executionEngine("local").out(out).err(err)
				.in(new ByteArrayInputStream(new byte[0])).build();
		this.analysis = shell.sourceCodeAnalysis();
		shell.onShutdown(s -> shellDown = true);
	}

	public static void main(String[] args) throws IOException {
		String requests = null;
		int requestsFd = 0;
		for (int k = 0; k < args.length; k++) {
			if (args[k].equals("--requests-fd") && k + 1 < args.length) {
				requestsFd = Integer.parseInt(args[++k]);
				requests = "/proc/self/fd/" + requestsFd;
			} else {
				System.err.println("usage: E2bJavaRunner [--requests-fd N]");
				System.exit(2);
			}
		}
		FileOutputStream events = openEvents();
		if (events == null)
			System.exit(2);
		FileInputStream in = requests == null ? new FileInputStream(FileDescriptor.in)
				: new FileInputStream(requests);
		System.setIn(new ByteArrayInputStream(new byte[0]));

		E2bJavaRunner r = new E2bJavaRunner(events, new FileOutputStream(FileDescriptor.out),
				new FileOutputStream(FileDescriptor.err));
		r.startup();
		/* Before "ready": a SIGINT right after the first request must find
		 * its bytes still in the pipe (onSigint). */
		r.requestsIn = in;
		r.requestsFd = requestsFd;
		r.installSigint();
		r.ready();
		r.serve(in);
	}

	/*
	 * Opens fd 3 for events. Java cannot wrap a raw fd, so this reopens
	 * /proc/self/fd/3, which is only safe when fd 3 is the host's pipe (or a
	 * socket or device): when the host left fd 3 closed, the JVM has since
	 * used that number for a file of its own (lib/modules), and opening it for
	 * writing would damage the JDK. Never truncates.
	 */
	private static FileOutputStream openEvents() {
		String target;
		try {
			target = Files.readSymbolicLink(Paths.get("/proc/self/fd/3")).toString();
		} catch (IOException | UnsupportedOperationException e) {
			System.err.println("e2b java runner: fd 3 (events) is not open");
			return null;
		}
		if (!target.startsWith("pipe:") && !target.startsWith("socket:")
				&& !target.startsWith("/dev/")) {
			System.err.println("e2b java runner: fd 3 must be the host's events pipe, not " + target);
			return null;
		}
		try {
			return new FileOutputStream("/proc/self/fd/3", true);
		} catch (IOException e) {
			System.err.println("e2b java runner: cannot open fd 3 (events): " + e.getMessage());
			return null;
		}
	}

	private void startup() {
		for (String s : STARTUP)
			for (SnippetEvent e : shell.eval(s))
				if (e.status() == Snippet.Status.REJECTED)
					err.println("e2b java runner: startup snippet failed: " + s);
	}

	private void installSigint() {
		sun.misc.Signal sigint = new sun.misc.Signal("INT");
		sun.misc.SignalHandler old = sun.misc.Signal.handle(sigint, s -> onSigint());
		/* HotSpot keeps an inherited SIG_IGN and then never calls us. */
		if (old == sun.misc.SignalHandler.SIG_IGN && Native.unignoreSigint())
			sun.misc.Signal.handle(sigint, s -> onSigint());
	}

	private void ready() {
		Map<String, Object> li = new LinkedHashMap<>();
		li.put("name", "java");
		li.put("version", System.getProperty("java.version"));
		li.put("mimetype", "text/x-java-source");
		li.put("file_extension", ".jshell");
		li.put("codemirror_mode", "java");
		li.put("pygments_lexer", "java");
		Map<String, Object> ev = new LinkedHashMap<>();
		ev.put("type", "ready");
		ev.put("language_info", li);
		ev.put("banner", "Java " + System.getProperty("java.version") + " (JShell, "
				+ System.getProperty("java.vm.name") + ")");
		emit(ev);
	}

	/* Reads request lines into the queue, ending it with EOF; a thread of its own,
	 * so that a SIGINT can see a request that has arrived but not started. */
	private void readRequests(FileInputStream in) {
		byte[] chunk = new byte[1 << 16];
		java.io.ByteArrayOutputStream line = new java.io.ByteArrayOutputStream();
		try {
			/* With the native helper, bytes leave the pipe only under lock
			 * (poll, then a read that cannot block): onSigint sees a request
			 * either in the pipe (available) or in here. Without it, a SIGINT
			 * that lands between read() and the lock finds neither. */
			boolean polled = Native.waitReadable(requestsFd) == 0;
			for (;;) {
				int n;
				if (polled) {
					synchronized (lock) {
						n = in.read(chunk);
						if (n > 0)
							split(chunk, n, line);
					}
					polled = n <= 0 || Native.waitReadable(requestsFd) == 0;
				} else {
					n = in.read(chunk);
					if (n > 0)
						synchronized (lock) {
							split(chunk, n, line);
						}
				}
				if (n <= 0)
					break;
			}
		} catch (IOException e) {
			err.println("e2b java runner: reading requests: " + e.getMessage());
		}
		synchronized (lock) {
			queue.add(EOF);
			lock.notifyAll();
		}
	}

	/* Under lock: n bytes of requests into complete lines (queued) and the
	 * unfinished rest (line). */
	private void split(byte[] chunk, int n, java.io.ByteArrayOutputStream line) {
		for (int k = 0; k < n; k++) {
			if (chunk[k] != '\n') {
				line.write(chunk[k]);
				continue;
			}
			queue.add(new String(line.toByteArray(), StandardCharsets.UTF_8));
			line.reset();
		}
		partial = line.size();
		lock.notifyAll();
	}

	/* The next request line (or EOF), waiting for one. Taken under lock, so a
	 * SIGINT always sees the request somewhere: queued, taken or running. */
	private String nextLine() {
		synchronized (lock) {
			String line;
			while ((line = queue.poll()) == null) {
				try {
					lock.wait();
				} catch (InterruptedException e) {
					/* keep waiting: only EOF ends the loop */
				}
			}
			taken = line != EOF;
			return line;
		}
	}

	private void untake() {
		synchronized (lock) {
			taken = false;
		}
	}

	private static int available(FileInputStream in) {
		try {
			return in == null ? 0 : in.available();
		} catch (IOException e) {
			return 0;
		}
	}

	private void serve(FileInputStream in) throws IOException {
		Thread reader = new Thread(() -> readRequests(in), "e2b-requests");
		reader.setDaemon(true);
		reader.start();
		String line;
		for (;;) {
			line = nextLine();
			if (line == EOF)
				break;
			if (line.isBlank()) {
				untake();
				continue;
			}
			Map<?, ?> req;
			try {
				Object o = Json.parse(line);
				if (!(o instanceof Map))
					throw new IllegalArgumentException("not an object");
				req = (Map<?, ?>) o;
			} catch (IllegalArgumentException e) {
				untake();
				err.println("e2b java runner: bad request: " + e.getMessage());
				continue;
			}
			Object type = req.get("type");
			if ("shutdown".equals(type))
				break;
			if (!"execute".equals(type)) {
				untake();
				err.println("e2b java runner: unknown request type " + type);
				continue;
			}
			Object code = req.get("code");
			execute(req.get("id"), code instanceof String ? (String) code : "",
					Boolean.TRUE.equals(req.get("silent")));
		}
		out.flush();
		err.flush();
		System.exit(0);
	}

	/* SIGINT handler (its own thread): ignored while idle; otherwise stops the
	 * snippet thread, and keeps doing so while the same request is still in
	 * JShell, since a stop that lands while javac is compiling finds nothing
	 * to stop, and code that catches ThreadDeath needs another one. */
	private void onSigint() {
		long mine;
		synchronized (lock) {
			if (!busy) {
				/* The host only interrupts a running cell: if its request has
				 * arrived but not started, it starts interrupted. */
				if (taken || !queue.isEmpty() || partial > 0 || available(requestsIn) > 0)
					pendingInterrupt = true;
				return;
			}
			interrupted = true;
			mine = seq;
		}
		for (;;) {
			synchronized (lock) {
				if (!busy || seq != mine)
					return;
				if (executing) {
					try {
						shell.stop();
					} catch (Throwable t) {
						/* Nothing has run yet in this JShell: nothing to stop. */
					}
				}
			}
			try {
				Thread.sleep(100);
			} catch (InterruptedException e) {
				return;
			}
		}
	}

	private void execute(Object id, String code, boolean silent) {
		synchronized (lock) {
			seq++;
			busy = true;
			taken = false;
			interrupted = pendingInterrupt;
			pendingInterrupt = false;
		}
		streamId = id;
		Failure failure = null;
		String result = null;
		cellLines.clear();
		try {
			String rest = code;
			int base = 0;
			for (;;) {
				if (wasInterrupted()) {
					failure = keyboardInterrupt();
					break;
				}
				SourceCodeAnalysis.CompletionInfo ci = analysis.analyzeCompletion(rest);
				SourceCodeAnalysis.Completeness c = ci.completeness();
				if (c == SourceCodeAnalysis.Completeness.EMPTY)
					break;
				String src, next;
				if (c.isComplete() && rest.endsWith(ci.remaining())) {
					src = ci.source();
					next = ci.remaining();
				} else {
					/* Incomplete: let the compiler say what is missing. */
					src = rest;
					next = "";
				}
				if (next.length() >= rest.length())
					next = ""; /* always progress */
				List<SnippetEvent> evs = eval(src);
				if (wasInterrupted()) {
					failure = keyboardInterrupt();
					break;
				}
				int split = missingSemicolonSplit(evs, src);
				if (split > 0) {
					/* "a()\nb()": JShell sees one snippet with a missing ';' at
					 * the end of a line; nothing ran, so run the lines apart. */
					next = rest.substring(split);
					src = analysis.analyzeCompletion(rest.substring(0, split)).source();
					evs = eval(src);
					if (wasInterrupted()) {
						failure = keyboardInterrupt();
						break;
					}
				}
				result = null;
				for (SnippetEvent e : evs)
					if (e.causeSnippet() == null)
						cellLines.put(e.snippet().id(), lineOf(code, base + leadingBlankLines(src)));
				failure = classFileLimits(evs, code, base);
				if (failure == null)
					failure = inspect(evs, code, base);
				if (failure != null)
					break;
				result = valueOf(evs);
				base += rest.length() - next.length();
				rest = next;
			}
		} catch (Throwable t) {
			failure = new Failure(t.getClass().getSimpleName(), String.valueOf(t.getMessage()),
					List.of("runner error: " + t));
		}
		finish(id, failure, result, silent);
		if (shellDown) {
			/* Nothing can run any more: let the host see a dead kernel. */
			err.println("e2b java runner: the JShell execution engine has ended");
			System.exit(70);
		}
	}

	private List<SnippetEvent> eval(String src) {
		synchronized (lock) {
			executing = true;
		}
		try {
			return shell.eval(src);
		} finally {
			synchronized (lock) {
				executing = false;
			}
		}
	}

	private boolean wasInterrupted() {
		synchronized (lock) {
			return interrupted;
		}
	}

	private void finish(Object id, Failure failure, String result, boolean silent) {
		System.out.flush();
		System.err.flush();
		endStreams();
		if (failure != null && failure.ename.equals("KeyboardInterrupt"))
			freshStreams();
		if (failure != null) {
			Map<String, Object> ev = event("error", id);
			ev.put("ename", failure.ename);
			ev.put("evalue", failure.evalue);
			ev.put("traceback", failure.traceback);
			emit(ev);
		} else if (result != null && !silent) {
			Map<String, Object> ev = event("result", id);
			Map<String, Object> data = new LinkedHashMap<>();
			data.put("text/plain", result);
			ev.put("data", data);
			ev.put("metadata", new LinkedHashMap<String, Object>());
			emit(ev);
		}
		synchronized (lock) {
			busy = false;
			interrupted = false;
		}
		Map<String, Object> done = event("done", id);
		done.put("status", failure == null ? "ok" : "error");
		emit(done);
	}

	private static Map<String, Object> event(String type, Object id) {
		Map<String, Object> ev = new LinkedHashMap<>();
		ev.put("type", type);
		ev.put("id", id);
		return ev;
	}

	/* Writes one event line with one write call: FileOutputStream.write is a
	 * native loop that an asynchronous Thread.stop (JShell.stop, which hits
	 * the snippet threads that write stream events) cannot cut short, so a
	 * line is on the pipe whole or not at all. */
	private void emit(Map<String, Object> ev) {
		byte[] line = Json.write(new StringBuilder(), ev).append('\n').toString()
				.getBytes(StandardCharsets.UTF_8);
		synchronized (eventsLock) {
			try {
				events.write(line);
			} catch (IOException e) {
				/* The host is gone: nothing to report to; stdin EOF ends us. */
			}
		}
	}

	/* Output.Target: one stream event of the running cell, or false between
	 * cells (the sink then writes to fd 1/2). */
	private boolean stream(String name, String text) {
		Object id = streamId;
		if (id == null)
			return false;
		Map<String, Object> ev = event("stream", id);
		ev.put("name", name);
		ev.put("text", text);
		emit(ev);
		return true;
	}

	/* A Thread.stop (the interrupt) inside a print can leave the PrintStream's
	 * encoder half-way (later prints then come out in odd pieces, or with a
	 * leftover of the interrupted one): new ones over the same sinks. */
	private void freshStreams() {
		out = new CellStream(outSink);
		err = new CellStream(errSink);
		System.setOut(out);
		System.setErr(err);
	}

	/* Sends what the cell's streams hold and stops attaching output to it.
	 * Under the sinks' locks, so a stream event another thread is sending
	 * right now still goes out before the cell's "done". */
	private void endStreams() {
		out.flush();
		err.flush();
		synchronized (outSink) {
			synchronized (errSink) {
				try {
					outSink.drain();
					errSink.drain();
				} catch (IOException e) {
					/* The host is gone. */
				}
				streamId = null;
			}
		}
	}

	private static Failure keyboardInterrupt() {
		return new Failure("KeyboardInterrupt", "", List.of("KeyboardInterrupt: execution interrupted"));
	}

	/* When src was rejected for a syntax error ("';' expected", "reached end
	 * of file") at the end of a line, and the text before it is a complete
	 * snippet, returns where to cut; else -1. */
	private int missingSemicolonSplit(List<SnippetEvent> evs, String src) {
		for (SnippetEvent e : evs) {
			if (e.causeSnippet() != null || e.status() != Snippet.Status.REJECTED)
				continue;
			Diag d = shell.diagnostics(e.snippet()).filter(Diag::isError).findFirst().orElse(null);
			if (d == null || !(d.getCode().startsWith("compiler.err.expected")
					|| d.getCode().equals("compiler.err.premature.eof")))
				return -1;
			int p = (int) d.getPosition();
			if (p <= 0 || p >= src.length())
				return -1;
			int nl = src.indexOf('\n', p);
			if (nl < 0 || !src.substring(p, nl).isBlank())
				return -1;
			SourceCodeAnalysis.CompletionInfo ci = analysis.analyzeCompletion(src.substring(0, p));
			if (!ci.completeness().isComplete() || !ci.remaining().isBlank())
				return -1;
			return p;
		}
		return -1;
	}

	/* A snippet that exceeds a class-file limit (a string constant over 65535
	 * bytes, too many constants, a method over 64 KiB of code) fails in
	 * javac's code generation, which JShell reports as RECOVERABLE (as if a
	 * name were only missing) and so the cell as fine. Worse, javac's
	 * constant pool writer keeps the oversized entry, and JShell reuses that
	 * compiler context (its JavacTaskPool): every later snippet then fails
	 * with the same error, a silent failure that loses every later
	 * declaration and all output (issue 11, item 7). So: a fresh compiler
	 * pool, the cell's offending snippet dropped (nothing half-defined stays
	 * behind to be recompiled), and a CompilationError for the cell. */
	private Failure classFileLimits(List<SnippetEvent> evs, String code, int base) {
		Snippet main = null;
		boolean hit = false;
		for (SnippetEvent e : evs) {
			if (shell.diagnostics(e.snippet()).noneMatch(E2bJavaRunner::classFileLimit))
				continue;
			hit = true;
			if (e.causeSnippet() == null && main == null)
				main = e.snippet();
		}
		if (!hit)
			return null;
		resetCompiler();
		if (main == null)
			return new Failure("CompilationError", "a class-file limit of javac was exceeded",
					List.of("error: a class-file limit of javac was exceeded"));
		Failure f = compileError(main, code, base);
		Snippet.Status st = shell.status(main);
		if (st != Snippet.Status.REJECTED && st != Snippet.Status.DROPPED
				&& st != Snippet.Status.OVERWRITTEN) {
			try {
				shell.drop(main);
			} catch (RuntimeException e) {
				err.println("e2b java runner: could not drop the failed snippet: " + e);
			}
		}
		return f;
	}

	private static boolean classFileLimit(Diag d) {
		return d.isError() && d.getCode().startsWith("compiler.err.limit.");
	}

	/* Replaces JShell's pool of javac contexts with an empty one (TaskFactory's
	 * own initTaskPool), so the next compilation starts from a clean
	 * compiler. Needs --add-opens jdk.jshell/jdk.jshell (run.sh); the pool is
	 * only a cache of javac instances, JShell's state lives elsewhere.
	 * tests/kernels/test_java_runner.py pins this on the JDK we ship. */
	private void resetCompiler() {
		try {
			java.lang.reflect.Field f = JShell.class.getDeclaredField("taskFactory");
			f.setAccessible(true);
			Object factory = f.get(shell);
			java.lang.reflect.Method m = factory.getClass().getDeclaredMethod("initTaskPool");
			m.setAccessible(true);
			m.invoke(factory);
		} catch (ReflectiveOperationException | RuntimeException e) {
			err.println("e2b java runner: cannot reset the compiler after a class-file limit ("
					+ e + "); if later cells fail to compile, restart the context");
		}
	}

	/* The first error among the events of one snippet, or null. */
	private Failure inspect(List<SnippetEvent> evs, String code, int base) {
		for (SnippetEvent e : evs) {
			if (e.causeSnippet() != null)
				continue;
			JShellException x = e.exception();
			if (x instanceof UnresolvedReferenceException)
				return unresolved((UnresolvedReferenceException) x);
			if (x instanceof EvalException)
				return runtimeError((EvalException) x);
			if (x != null)
				return new Failure(x.getClass().getSimpleName(), String.valueOf(x.getMessage()), List.of());
			if (e.status() == Snippet.Status.REJECTED)
				return compileError(e.snippet(), code, base);
			if (e.status() == Snippet.Status.RECOVERABLE_DEFINED
					|| e.status() == Snippet.Status.RECOVERABLE_NOT_DEFINED)
				noteUnresolved(e.snippet());
		}
		return null;
	}

	/* The text/plain of the cell's value: only when the snippet is an
	 * expression (as in IJava); declarations and statements show nothing,
	 * and neither does null. */
	private static String valueOf(List<SnippetEvent> evs) {
		for (SnippetEvent e : evs) {
			if (e.causeSnippet() != null)
				continue;
			switch (e.snippet().subKind()) {
			case VAR_VALUE_SUBKIND:
			case OTHER_EXPRESSION_SUBKIND:
			case TEMP_VAR_EXPRESSION_SUBKIND:
				String v = e.value();
				return v == null || v.equals("null") ? null : v;
			default:
				return null;
			}
		}
		return null;
	}

	/* 1-based line of offset in code. */
	private static int lineOf(String code, int offset) {
		int line = 1;
		for (int k = 0; k < offset && k < code.length(); k++)
			if (code.charAt(k) == '\n')
				line++;
		return line;
	}

	/* Characters of src before its first line that has more than blanks;
	 * JShell numbers snippet lines from there. */
	private static int leadingBlankLines(String src) {
		int k = 0, start = 0;
		while (k < src.length() && Character.isWhitespace(src.charAt(k))) {
			if (src.charAt(k) == '\n')
				start = k + 1;
			k++;
		}
		return start;
	}

	private Failure compileError(Snippet sn, String code, int base) {
		List<Diag> diags = shell.diagnostics(sn).filter(Diag::isError).collect(Collectors.toList());
		List<String> tb = new ArrayList<>();
		String evalue = null;
		for (Diag d : diags) {
			String msg = cleanMessage(d.getMessage(Locale.ROOT));
			String where = "";
			String[] caret = null;
			if (d.getPosition() >= 0) {
				int abs = Math.min(code.length(), base + (int) d.getPosition());
				int lineStart = code.lastIndexOf('\n', abs - 1) + 1;
				int lineEnd = code.indexOf('\n', abs);
				if (lineEnd < 0)
					lineEnd = code.length();
				int line = lineOf(code, lineStart);
				where = "line " + line + ", column " + (abs - lineStart + 1) + ": ";
				String text = code.substring(lineStart, lineEnd);
				caret = new String[] {"    " + text, "    " + " ".repeat(abs - lineStart) + "^"};
			}
			if (evalue == null)
				evalue = where + msg;
			tb.add("error: " + where + msg);
			if (caret != null) {
				tb.add(caret[0]);
				tb.add(caret[1]);
			}
		}
		if (evalue == null)
			evalue = "the snippet was rejected";
		return new Failure("CompilationError", evalue, tb);
	}

	/* javac's "location: class" names JShell's wrapper, which means nothing here. */
	private static String cleanMessage(String msg) {
		StringBuilder b = new StringBuilder();
		for (String l : msg.split("\n")) {
			if (l.strip().matches("location: class( \\$?JShell\\$?\\w*)?"))
				continue;
			if (b.length() > 0)
				b.append('\n');
			b.append(l);
		}
		return b.toString();
	}

	private Failure runtimeError(EvalException x) {
		String cls = x.getExceptionClassName();
		String simple = cls.substring(cls.lastIndexOf('.') + 1);
		simple = simple.substring(simple.lastIndexOf('$') + 1);
		String msg = x.getMessage() == null ? "" : x.getMessage();
		List<String> tb = new ArrayList<>();
		Throwable t = x;
		String prefix = "";
		for (int depth = 0; t != null && depth < 20; depth++, t = t.getCause()) {
			String name = t instanceof EvalException ? ((EvalException) t).getExceptionClassName()
					: t.getClass().getName();
			tb.add(prefix + name + (t.getMessage() == null ? "" : ": " + t.getMessage()));
			for (StackTraceElement s : t.getStackTrace()) {
				String c = s.getClassName();
				if (c.startsWith("jdk.internal.reflect.") || c.startsWith("java.lang.reflect.")
						|| c.startsWith("jdk.jshell."))
					break;
				tb.add("\tat " + frame(s));
			}
			prefix = "Caused by: ";
		}
		return new Failure(simple, msg, tb);
	}

	/* JShell reports snippet frames with the file "#<snippet id>" and the
	 * wrapper class and method names removed; show frames of the running cell
	 * as (line N), earlier cells' as JShell does, (#12:3). */
	private String frame(StackTraceElement s) {
		String file = s.getFileName();
		if (file == null || !file.startsWith("#"))
			return s.toString();
		String c = s.getClassName(), m = s.getMethodName();
		String name = c.isEmpty() ? m : m.isEmpty() ? c : c + "." + m;
		Integer first = cellLines.get(file.substring(1));
		String where = first != null && s.getLineNumber() > 0
				? "line " + (first + s.getLineNumber() - 1)
				: s.getLineNumber() > 0 ? file + ":" + s.getLineNumber() : file;
		return (name.isEmpty() ? "" : name + " ") + "(" + where + ")";
	}

	private Failure unresolved(UnresolvedReferenceException x) {
		DeclarationSnippet sn = x.getSnippet();
		String deps = shell.unresolvedDependencies(sn).collect(Collectors.joining(", "));
		String msg = "attempted to use " + kindName(sn) + " " + sn.name()
				+ " which cannot be invoked until " + deps + " is declared";
		return new Failure("UnresolvedReferenceException", msg, List.of("UnresolvedReferenceException: " + msg));
	}

	private void noteUnresolved(Snippet sn) {
		if (!(sn instanceof DeclarationSnippet))
			return;
		DeclarationSnippet d = (DeclarationSnippet) sn;
		String deps = shell.unresolvedDependencies(d).collect(Collectors.joining(", "));
		if (!deps.isEmpty())
			err.println("note: " + kindName(d) + " " + d.name() + " was declared, but cannot be used until "
					+ deps + " is declared");
	}

	private static String kindName(Snippet sn) {
		switch (sn.kind()) {
		case METHOD:
			return "method";
		case VAR:
			return "variable";
		case TYPE_DECL:
			return "class";
		default:
			return "snippet";
		}
	}
}
