/*
 * Native: the four things the runner cannot do in Java, from the small JNI
 * library libe2bjenv.so built next to these classes (kernels/java/src/e2bjenv.c):
 * change the C environment (which the JVM hands to every process it spawns
 * without an explicit environment), undo an inherited "ignore SIGINT",
 * which would otherwise make the JVM refuse to handle interrupts, and wait
 * for a pipe to be readable without reading it (poll).
 * The library is looked up beside the class files (or jar) this class was
 * loaded from; when it is missing, available() is false and callers say so.
 */
package e2bci;

import java.io.File;
import java.nio.charset.StandardCharsets;

final class Native {
	private static final String LIB = "libe2bjenv.so";
	private static String loadError = "";
	private static final boolean LOADED = load();

	private Native() {
	}

	private static boolean load() {
		try {
			File base = new File(Native.class.getProtectionDomain().getCodeSource()
					.getLocation().toURI());
			File lib = new File(base.isDirectory() ? base : base.getParentFile(), LIB);
			System.load(lib.getAbsolutePath());
			return true;
		} catch (Throwable t) {
			loadError = t.toString();
			return false;
		}
	}

	static boolean available() {
		return LOADED;
	}

	static String error() {
		return loadError;
	}

	/** setenv(3); returns 0 or an errno value. */
	static int setenv(String name, String value) {
		return setenv0(cstr(name), cstr(value));
	}

	/** unsetenv(3); returns 0 or an errno value. */
	static int unsetenv(String name) {
		return unsetenv0(cstr(name));
	}

	/** When SIGINT is ignored (inherited SIG_IGN), makes it SIG_DFL and returns true. */
	static boolean unignoreSigint() {
		return LOADED && unignoreSigint0();
	}

	/** Blocks until fd has bytes to read or is at its end; 0, or -errno
	 * (also when the library is missing: then callers read blindly). */
	static int waitReadable(int fd) {
		return LOADED ? waitReadable0(fd) : -38; /* ENOSYS */
	}

	private static byte[] cstr(String s) {
		byte[] b = s.getBytes(StandardCharsets.UTF_8);
		byte[] z = new byte[b.length + 1];
		System.arraycopy(b, 0, z, 0, b.length);
		return z;
	}

	private static native int setenv0(byte[] name, byte[] value);

	private static native int unsetenv0(byte[] name);

	private static native boolean unignoreSigint0();

	private static native int waitReadable0(int fd);
}
