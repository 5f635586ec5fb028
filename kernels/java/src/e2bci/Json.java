/*
 * Json: the little JSON the runner needs, with no library: a parser for the
 * host's request lines and the env helper's document, and a writer for event
 * lines. Objects become LinkedHashMap<String, Object>, arrays ArrayList<Object>,
 * numbers Long (when integral and in range) or Double, plus String, Boolean
 * and null. Stateless: every entry point is a pure function.
 */
package e2bci;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class Json {
	private final String s;
	private int i;

	private Json(String s) {
		this.s = s;
	}

	/** Parses one JSON text; throws IllegalArgumentException when it is not. */
	public static Object parse(String text) {
		Json p = new Json(text);
		p.ws();
		Object v = p.value(0);
		p.ws();
		if (p.i != p.s.length())
			throw p.fail("trailing characters");
		return v;
	}

	private IllegalArgumentException fail(String why) {
		return new IllegalArgumentException("bad JSON at offset " + i + ": " + why);
	}

	private void ws() {
		while (i < s.length()) {
			char c = s.charAt(i);
			if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
				break;
			i++;
		}
	}

	private Object value(int depth) {
		if (depth > 64)
			throw fail("nested too deeply");
		if (i >= s.length())
			throw fail("unexpected end");
		char c = s.charAt(i);
		switch (c) {
		case '{':
			return object(depth);
		case '[':
			return array(depth);
		case '"':
			return string();
		case 't':
			return word("true", Boolean.TRUE);
		case 'f':
			return word("false", Boolean.FALSE);
		case 'n':
			return word("null", null);
		default:
			if (c == '-' || (c >= '0' && c <= '9'))
				return number();
			throw fail("unexpected '" + c + "'");
		}
	}

	private Object word(String w, Object v) {
		if (!s.startsWith(w, i))
			throw fail("expected " + w);
		i += w.length();
		return v;
	}

	private Map<String, Object> object(int depth) {
		Map<String, Object> m = new LinkedHashMap<>();
		i++;
		ws();
		if (i < s.length() && s.charAt(i) == '}') {
			i++;
			return m;
		}
		for (;;) {
			ws();
			if (i >= s.length() || s.charAt(i) != '"')
				throw fail("expected a key");
			String k = string();
			ws();
			if (i >= s.length() || s.charAt(i) != ':')
				throw fail("expected ':'");
			i++;
			ws();
			m.put(k, value(depth + 1));
			ws();
			if (i < s.length() && s.charAt(i) == ',') {
				i++;
				continue;
			}
			if (i < s.length() && s.charAt(i) == '}') {
				i++;
				return m;
			}
			throw fail("expected ',' or '}'");
		}
	}

	private List<Object> array(int depth) {
		List<Object> a = new ArrayList<>();
		i++;
		ws();
		if (i < s.length() && s.charAt(i) == ']') {
			i++;
			return a;
		}
		for (;;) {
			ws();
			a.add(value(depth + 1));
			ws();
			if (i < s.length() && s.charAt(i) == ',') {
				i++;
				continue;
			}
			if (i < s.length() && s.charAt(i) == ']') {
				i++;
				return a;
			}
			throw fail("expected ',' or ']'");
		}
	}

	private String string() {
		StringBuilder b = new StringBuilder();
		i++;
		for (;;) {
			if (i >= s.length())
				throw fail("unterminated string");
			char c = s.charAt(i++);
			if (c == '"')
				return b.toString();
			if (c < 0x20)
				throw fail("control character in string");
			if (c != '\\') {
				b.append(c);
				continue;
			}
			if (i >= s.length())
				throw fail("unterminated escape");
			char e = s.charAt(i++);
			switch (e) {
			case '"': b.append('"'); break;
			case '\\': b.append('\\'); break;
			case '/': b.append('/'); break;
			case 'b': b.append('\b'); break;
			case 'f': b.append('\f'); break;
			case 'n': b.append('\n'); break;
			case 'r': b.append('\r'); break;
			case 't': b.append('\t'); break;
			case 'u':
				if (i + 4 > s.length())
					throw fail("short \\u escape");
				try {
					b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
				} catch (NumberFormatException ex) {
					throw fail("bad \\u escape");
				}
				i += 4;
				break;
			default:
				throw fail("bad escape");
			}
		}
	}

	private Object number() {
		int start = i;
		if (s.charAt(i) == '-')
			i++;
		while (i < s.length() && "0123456789+-.eE".indexOf(s.charAt(i)) >= 0)
			i++;
		String t = s.substring(start, i);
		try {
			if (t.indexOf('.') < 0 && t.indexOf('e') < 0 && t.indexOf('E') < 0)
				return Long.parseLong(t);
			return Double.parseDouble(t);
		} catch (NumberFormatException ex) {
			try {
				return Double.parseDouble(t);
			} catch (NumberFormatException ex2) {
				throw fail("bad number " + t);
			}
		}
	}

	/** Appends v as JSON to b. Lone surrogates become U+FFFD. */
	public static StringBuilder write(StringBuilder b, Object v) {
		if (v == null) {
			b.append("null");
		} else if (v instanceof String) {
			quote(b, (String) v);
		} else if (v instanceof Boolean || v instanceof Long || v instanceof Integer) {
			b.append(v);
		} else if (v instanceof Number) {
			double d = ((Number) v).doubleValue();
			b.append(Double.isFinite(d) ? String.valueOf(d) : "null");
		} else if (v instanceof Map) {
			b.append('{');
			boolean first = true;
			for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
				if (!first)
					b.append(',');
				first = false;
				quote(b, String.valueOf(e.getKey()));
				b.append(':');
				write(b, e.getValue());
			}
			b.append('}');
		} else if (v instanceof List) {
			b.append('[');
			boolean first = true;
			for (Object o : (List<?>) v) {
				if (!first)
					b.append(',');
				first = false;
				write(b, o);
			}
			b.append(']');
		} else {
			quote(b, v.toString());
		}
		return b;
	}

	private static void quote(StringBuilder b, String s) {
		b.append('"');
		for (int k = 0; k < s.length(); k++) {
			char c = s.charAt(k);
			switch (c) {
			case '"': b.append("\\\""); break;
			case '\\': b.append("\\\\"); break;
			case '\n': b.append("\\n"); break;
			case '\r': b.append("\\r"); break;
			case '\t': b.append("\\t"); break;
			default:
				if (c < 0x20 || c == 0x7f) {
					b.append(String.format("\\u%04x", (int) c));
				} else if (Character.isHighSurrogate(c) && k + 1 < s.length()
						&& Character.isLowSurrogate(s.charAt(k + 1))) {
					b.append(c).append(s.charAt(++k));
				} else if (Character.isSurrogate(c)) {
					b.append('\uFFFD');
				} else {
					b.append(c);
				}
			}
		}
		b.append('"');
	}
}
