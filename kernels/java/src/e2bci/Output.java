/*
 * Output: the sink under System.out or System.err. While a cell runs, every
 * flush of the program's stream becomes one "stream" event (one Jupyter
 * stream message), so message boundaries are the program's: an auto-flushing
 * PrintStream flushes once per print call, and println is print + newLine,
 * two flushes, so System.out.println("Hello, World!") arrives as
 * "Hello, World!" and "\n", as the Jupyter Java kernel (IJava) E2B's own
 * template uses sends it. fd 1 (a pipe) cannot keep those boundaries: the
 * host would read both writes at once. Between cells (a thread a cell left
 * behind) there is no request to attach events to, and the bytes go to
 * fd 1 or 2 raw, as the host expects there.
 *
 * Bounds: a flush carries at most CHUNK bytes per event (longer output is
 * cut into events of that size at character boundaries), so neither the
 * runner nor the host ever holds one huge message. Batching: the first
 * SINGLE flushes of a cell are an event each; after that the flushes of
 * BATCH_MS go out as one event. A message costs about 50 us from here to
 * the HTTP client (measured: 100,000 println, 200,000 messages, 10.5 s;
 * batched 0.2 s), and a cell that prints that much is a bulk producer whose
 * message boundaries nobody reads one by one. An incomplete UTF-8
 * sequence at the end of a flush waits for the next one; drain() (the end
 * of a cell) sends it anyway, as U+FFFD.
 *
 * Thread-safe: every method is synchronized on the sink. The runner's
 * send() may block on the events pipe; the lock order is PrintStream, then
 * this sink, then the runner's events lock.
 */
package e2bci;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

final class Output extends OutputStream {
	/** Most bytes of output one event carries. */
	static final int CHUNK = 1 << 20;
	/** Flushes of a cell that are an event each. */
	static final int SINGLE = 1000;
	/** After SINGLE, output waits at most this long to go out. */
	static final long BATCH_MS = 10;

	/** Where complete text goes: true when it became an event of the running cell. */
	interface Target {
		boolean stream(String name, String text) throws IOException;
	}

	private final String name;
	private final FileOutputStream raw;
	private final Target target;
	private final ScheduledExecutorService timer;
	private byte[] buf = new byte[8192];
	private int len;
	private int flushes; /* since the last drain() */
	private boolean timerArmed;

	Output(String name, FileOutputStream raw, Target target, ScheduledExecutorService timer) {
		this.name = name;
		this.raw = raw;
		this.target = target;
		this.timer = timer;
	}

	@Override
	public synchronized void write(int b) throws IOException {
		room(1);
		buf[len++] = (byte) b;
		if (len >= CHUNK)
			send(false);
	}

	@Override
	public synchronized void write(byte[] b, int off, int n) throws IOException {
		Objects.checkFromIndexSize(off, n, b.length);
		while (n > 0) {
			int k = Math.min(n, CHUNK - len);
			room(k);
			System.arraycopy(b, off, buf, len, k);
			len += k;
			off += k;
			n -= k;
			if (len >= CHUNK)
				send(false);
		}
	}

	@Override
	public synchronized void flush() throws IOException {
		if (len == 0)
			return; /* PrintStream flushes twice per newLine() */
		if (++flushes <= SINGLE) {
			send(false);
		} else if (!timerArmed) {
			timerArmed = true;
			timer.schedule(this::timed, BATCH_MS, TimeUnit.MILLISECONDS);
		}
	}

	private synchronized void timed() {
		timerArmed = false;
		try {
			send(false);
		} catch (IOException e) {
			/* fd 1/2 closed: the host is gone. */
		}
	}

	/** The end of a cell: sends everything held, an incomplete UTF-8
	 * sequence included, and starts counting flushes anew. */
	synchronized void drain() throws IOException {
		send(true);
		flushes = 0;
		timerArmed = false; /* a Thread.stop may have cut flush() short */
	}

	private void room(int n) {
		if (len + n <= buf.length)
			return;
		byte[] nb = new byte[Math.max(len + n, Math.min(CHUNK, buf.length * 2))];
		System.arraycopy(buf, 0, nb, 0, len);
		buf = nb;
	}

	private void send(boolean all) throws IOException {
		int n = all ? len : len - incompleteTail(buf, len);
		if (n == 0)
			return;
		if (!target.stream(name, new String(buf, 0, n, StandardCharsets.UTF_8)))
			raw.write(buf, 0, n);
		System.arraycopy(buf, n, buf, 0, len - n);
		len -= n;
		if (buf.length > 65536 && len < 8192) {
			byte[] nb = new byte[8192];
			System.arraycopy(buf, 0, nb, 0, len);
			buf = nb;
		}
	}

	/* How many bytes at the end of b[0, n) start a UTF-8 sequence that the
	 * next write may complete (a lead byte with fewer continuation bytes
	 * after it than it announces); anything else is sent and repaired. */
	static int incompleteTail(byte[] b, int n) {
		for (int back = 1; back <= 3 && back <= n; back++) {
			int c = b[n - back] & 0xff;
			if ((c & 0xc0) == 0x80)
				continue;
			int want = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3
					: c >= 0xc2 && c <= 0xdf ? 2 : 1;
			return want > back ? back : 0;
		}
		return 0;
	}
}
