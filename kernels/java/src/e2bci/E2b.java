/*
 * E2b: helpers that code in the JShell session can call; the runner's
 * classes are on the session's class path, so e2bci.E2b is always there.
 *
 * env(base64 parts...) and restoreEnv() are the daemon's env helper cells
 * for Java (server/lang.c):
 *     e2bci.E2b.env("<base64 of {"set":{"K":"V"},"save":true}>", ...);
 *     e2bci.E2b.restoreEnv();
 * The document comes in parts because one string constant of a class file
 * holds at most 65535 bytes. With "save", env first remembers each
 * variable's value (or that it is unset) and its system property; restoreEnv
 * puts them back. setenv(base64) applies {"set":{...},"unset":[...]}.
 * They change the environment as seen by System.getenv (the JVM's cached,
 * unmodifiable map, changed underneath by reflection: the JVM must run with
 * --add-opens java.base/java.lang=ALL-UNNAMED and java.base/java.util=ALL-UNNAMED)
 * and by child processes (ProcessBuilder, Runtime.exec), through setenv(3)
 * in libe2bjenv.so. Call it from one thread at a time.
 */
package e2bci;

import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public final class E2b {
	private static Map<String, String> env;
	private static boolean warned;
	/* What env(..., save) overrode: name -> {environment value, system
	 * property}, null where unset. The first value wins until restoreEnv. */
	private static final Map<String, String[]> saved = new LinkedHashMap<>();

	private E2b() {
	}

	/** Applies base64(JSON {"set": {name: value}, "unset": [name]}): sets first, then unsets. */
	public static void setenv(String base64Json) {
		apply(decode(base64Json), false);
	}

	/**
	 * Applies base64(JSON {"set": {name: value}, "save": bool}) given in parts (joined); with save,
	 * remembers first what each variable in "set" is now, for restoreEnv.
	 */
	public static void env(String... base64Parts) {
		Map<?, ?> doc = decode(String.join("", base64Parts));
		apply(doc, Boolean.TRUE.equals(doc.get("save")));
	}

	/** Puts back every variable env(..., save) overrode, as it was, and forgets them. */
	public static void restoreEnv() {
		List<Map.Entry<String, String[]>> entries = new ArrayList<>(saved.entrySet());
		saved.clear();
		for (Map.Entry<String, String[]> e : entries) {
			String name = e.getKey(), value = e.getValue()[0], prop = e.getValue()[1];
			if (value == null)
				unsetenv(name);
			else
				setenv(name, value);
			if (prop == null)
				System.clearProperty(name);
			else
				System.setProperty(name, prop);
		}
	}

	private static Map<?, ?> decode(String base64Json) {
		String text = new String(Base64.getMimeDecoder().decode(base64Json), StandardCharsets.UTF_8);
		Object doc = Json.parse(text);
		if (!(doc instanceof Map))
			throw new IllegalArgumentException("env document must be a JSON object");
		return (Map<?, ?>) doc;
	}

	private static void apply(Map<?, ?> doc, boolean save) {
		Object set = doc.get("set");
		Object unset = doc.get("unset");
		if (set != null && !(set instanceof Map))
			throw new IllegalArgumentException("\"set\" must be an object");
		if (unset != null && !(unset instanceof List))
			throw new IllegalArgumentException("\"unset\" must be an array");
		if (set != null)
			for (Map.Entry<?, ?> e : ((Map<?, ?>) set).entrySet()) {
				if (!(e.getValue() instanceof String))
					throw new IllegalArgumentException("value of " + e.getKey() + " must be a string");
				String name = (String) e.getKey();
				if (save && !saved.containsKey(name)) {
					check(name);
					saved.put(name, new String[] {System.getenv(name), System.getProperty(name)});
				}
				setenv(name, (String) e.getValue());
			}
		if (unset != null)
			for (Object k : (List<?>) unset)
				unsetenv(String.valueOf(k));
	}

	/** Sets one variable for System.getenv and for child processes. */
	public static void setenv(String name, String value) {
		check(name);
		if (value.indexOf('\0') >= 0)
			throw new IllegalArgumentException("environment value contains NUL");
		javaEnv().put(name, value);
		/* E2B's reference sets env vars as system properties for Java, and
		 * its SDK tests read them with System.getProperty: do both. */
		System.setProperty(name, value);
		if (nativeOk()) {
			int rc = Native.setenv(name, value);
			if (rc != 0)
				throw new IllegalStateException("setenv(" + name + ") failed: errno " + rc);
		}
	}

	/** Removes one variable for System.getenv and for child processes. */
	public static void unsetenv(String name) {
		check(name);
		javaEnv().remove(name);
		System.clearProperty(name);
		if (nativeOk()) {
			int rc = Native.unsetenv(name);
			if (rc != 0)
				throw new IllegalStateException("unsetenv(" + name + ") failed: errno " + rc);
		}
	}

	private static void check(String name) {
		if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0)
			throw new IllegalArgumentException("bad environment variable name '" + name + "'");
	}

	private static boolean nativeOk() {
		if (Native.available())
			return true;
		if (!warned) {
			warned = true;
			System.err.println("e2b: child processes will not see environment changes: "
					+ Native.error());
		}
		return false;
	}

	/*
	 * System.getenv() is Collections.unmodifiableMap(new StringEnvironment(
	 * ProcessEnvironment.theEnvironment)) on Unix; the wrapped StringEnvironment
	 * is a live, writable view of the map System.getenv(name) reads.
	 */
	@SuppressWarnings("unchecked")
	private static synchronized Map<String, String> javaEnv() {
		if (env != null)
			return env;
		try {
			Class<?> pe = Class.forName("java.lang.ProcessEnvironment");
			Field f = pe.getDeclaredField("theUnmodifiableEnvironment");
			f.setAccessible(true);
			Object unmodifiable = f.get(null);
			Field m = Class.forName("java.util.Collections$UnmodifiableMap").getDeclaredField("m");
			m.setAccessible(true);
			env = (Map<String, String>) m.get(unmodifiable);
			return env;
		} catch (ReflectiveOperationException | RuntimeException e) {
			throw new IllegalStateException("cannot reach the JVM's environment map (the JVM needs "
					+ "--add-opens java.base/java.lang=ALL-UNNAMED --add-opens "
					+ "java.base/java.util=ALL-UNNAMED): " + e, e);
		}
	}
}
