"""Tests of the Java runner (kernels/java: e2bci.E2bJavaRunner, started by
kernels/java/run.sh), driven directly over its pipes as e2b-kernel drives it
(kernels/RUNNER-PROTOCOL.md, mode "json"): requests on stdin, user output on
fd 1 and 2, events on fd 3. The runner gets its own session, as the host
gives it, so SIGINT goes to its process group.

    /usr/bin/python3 -m pytest -q tests/kernels/test_java_runner.py

Builds the runner first (make build/java/...); needs a JDK
(kernels/java/install.sh).
"""

import base64
import json
import os
import resource
import signal
import subprocess
import time

import pytest

from runner_pipes import RunnerPipes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SH = os.path.join(ROOT, "kernels", "java", "run.sh")
BUILD = os.path.join(ROOT, "build", "java")
TARGETS = ["build/java/e2bci/E2bJavaRunner.class", "build/java/libe2bjenv.so"]


def env_helper(set_=None, unset=None):
    """The daemon's env helper cell for Java (see kernels/java/README.md)."""
    doc = json.dumps({"set": set_ or {}, "unset": unset or []})
    return 'e2bci.E2b.setenv("' + base64.b64encode(doc.encode()).decode() + '");'


class Runner(RunnerPipes):
    """The Java runner (kernels/java/run.sh)."""

    READY_TIMEOUT = 30
    EVENT_TIMEOUT = 30
    OUTPUT_TIMEOUT = 20
    CLOSE_TIMEOUT = 10
    FIRST_ID = 100

    def __init__(self, cwd=None, env=None, argv=None, preexec_fn=None):
        super().__init__(argv or ["/bin/sh", RUN_SH], cwd=cwd, env=env,
                         preexec_fn=preexec_fn)

    start = RunnerPipes.submit

    def finish(self, rid, timeout=30):
        """Waits for done; returns (events of rid, stdout, stderr) of the cell."""
        out0, err0 = len(self.out["stdout"]), len(self.out["stderr"])
        self.wait_event(lambda e: e.get("type") == "done" and e.get("id") == rid,
                        timeout)
        self.drain("stdout")
        self.drain("stderr")
        evs = [e for e in self.events if e.get("id") == rid]
        return (evs, self.out["stdout"][out0:].decode(),
                self.out["stderr"][err0:].decode())

    def run(self, code, silent=False, timeout=30):
        """Runs one cell; returns a dict: result, error, status, events, stdout, stderr."""
        out0, err0 = len(self.out["stdout"]), len(self.out["stderr"])
        rid = self.start(code, silent)
        evs, _, _ = self.finish(rid, timeout)
        assert evs[-1]["type"] == "done", evs
        assert [e["type"] for e in evs].count("done") == 1, evs
        results = [e for e in evs if e["type"] == "result"]
        errors = [e for e in evs if e["type"] == "error"]
        assert len(results) <= 1 and len(errors) <= 1, evs
        return {
            "result": results[0]["data"]["text/plain"] if results else None,
            "error": errors[0] if errors else None,
            "status": evs[-1]["status"],
            "events": evs,
            "stdout": self.out["stdout"][out0:].decode(),
            "stderr": self.out["stderr"][err0:].decode(),
        }


@pytest.fixture(scope="module", autouse=True)
def built():
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + TARGETS,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for t in TARGETS:
        assert os.path.exists(os.path.join(ROOT, t)), t


@pytest.fixture(scope="module")
def rn(built, tmp_path_factory):
    r = Runner(cwd=str(tmp_path_factory.mktemp("javacwd")))
    yield r
    r.close()


@pytest.fixture
def fresh(built, tmp_path):
    runners = []

    def make(**kw):
        kw.setdefault("cwd", str(tmp_path))
        r = Runner(**kw)
        runners.append(r)
        return r
    yield make
    for r in runners:
        r.close()


def assert_ok(res):
    assert res["status"] == "ok" and res["error"] is None, res


# -- start --

def test_ready_event(rn):
    assert rn.ready["type"] == "ready"
    li = rn.ready["language_info"]
    assert li["name"] == "java"
    assert li["version"].split(".")[0].isdigit()
    assert li["mimetype"] == "text/x-java-source"
    assert li["file_extension"]
    assert "Java" in rn.ready["banner"]
    assert rn.events[0] is rn.ready
    assert rn.ready_after < 15, rn.ready_after


# -- results --

def test_expression_result(rn):
    res = rn.run("1 + 1")
    assert_ok(res)
    assert res["result"] == "2"
    assert rn.run('"abc".toUpperCase()')["result"] == '"ABC"'
    assert rn.run("java.util.List.of(1, 2)")["result"] == "[1, 2]"


def test_statements_and_declarations_have_no_result(rn):
    for code in ["int unused1 = 5;", "void unusedM() {}", "class UnusedC {}",
                 'System.out.print("")', "import java.time.Duration;",
                 "Object nothing = null;", "nothing"]:
        res = rn.run(code)
        assert_ok(res)
        assert res["result"] is None, (code, res)


def test_last_snippet_of_a_cell_is_the_result(rn):
    res = rn.run('int a1 = 2;\nSystem.out.println("side " + a1);\na1 * 21\n')
    assert_ok(res)
    assert res["result"] == "42"
    assert res["stdout"] == "side 2\n"
    # A declaration last: no result, though an expression came before.
    res = rn.run("a1 + 1\nint a2 = 3;")
    assert_ok(res)
    assert res["result"] is None


def test_lines_without_semicolons(rn):
    res = rn.run('System.out.println("a")\nSystem.out.println("b")\nint nos = 4\nnos + 1')
    assert_ok(res)
    assert res["stdout"] == "a\nb\n"
    assert res["result"] == "5"


# -- output --

def test_stdout_and_stderr_stream_while_running(rn):
    # One snippet (a block): JShell flushes System.out after each snippet.
    rid = rn.start('{ System.out.println("first"); System.err.print("err-partial");'
                   ' System.out.print("no-newline"); Thread.sleep(5000);'
                   ' System.out.print("second"); }')
    rn.wait_output("stdout", "first\nno-newline", timeout=20)
    rn.wait_output("stderr", "err-partial", timeout=20)
    seen = time.monotonic()
    assert not any(e.get("id") == rid and e["type"] == "done" for e in rn.events)
    evs, out, _ = rn.finish(rid)
    # The output came while the cell slept, not with its end.
    assert time.monotonic() - seen > 1.0
    assert evs[-1]["status"] == "ok"
    assert rn.out["stdout"].endswith(b"first\nno-newlinesecond")


def test_output_is_flushed_before_done(rn):
    res = rn.run('for (int i = 0; i < 20000; i++) System.out.println("line " + i);'
                 ' System.out.print("tail-no-newline")')
    assert_ok(res)
    lines = res["stdout"].split("\n")
    assert len(lines) == 20001 and lines[-1] == "tail-no-newline", lines[-3:]
    assert lines[19999] == "line 19999"


def streams(res):
    """The (name, text) of the cell's stream events, in order."""
    return [(e["name"], e["text"]) for e in res["events"] if e["type"] == "stream"]


def test_one_stream_event_per_flush(rn):
    # println is print + newLine, two flushes of an auto-flushing stream: the
    # text and the line separator arrive as two messages, as from the
    # Jupyter Java kernel of E2B's template (whose SDK test reads
    # logs.stdout[0] == "Hello, World!").
    res = rn.run('System.out.println("Hello, World!")')
    assert_ok(res)
    assert streams(res) == [("stdout", "Hello, World!"), ("stdout", "\n")]
    res = rn.run('System.out.print("a"); System.out.print(1); System.err.println("e");')
    assert streams(res) == [("stdout", "a"), ("stdout", "1"), ("stderr", "e"),
                            ("stderr", "\n")]
    # printf's Formatter prints piece by piece, each a flush.
    res = rn.run('System.out.printf("%d-%s%n", 7, "x");')
    assert streams(res) == [("stdout", t) for t in ("7", "-", "x", "\n")]
    # Bytes without a flush wait for one; a UTF-8 sequence cut by a flush
    # waits for its end. (One snippet: JShell flushes after each.)
    res = rn.run("{ System.out.write(new byte[] {(byte) 0xe2, (byte) 0x98}); System.out.flush();"
                 " System.out.write(0x83); System.out.write('!'); System.out.flush(); }")
    assert streams(res) == [("stdout", "\u2603!")]
    assert rn.out["stdout"].endswith("\u2603!".encode())


def test_many_flushes_are_batched(rn):
    # The first 1000 flushes of a cell are a message each; then output is
    # batched (a message costs ~50 us on its way to the client).
    res = rn.run('for (int i = 0; i < 20000; i++) System.out.println(i);')
    assert_ok(res)
    chunks = [t for n, t in streams(res) if n == "stdout"]
    assert "".join(chunks) == "".join(f"{i}\n" for i in range(20000))
    assert chunks[:4] == ["0", "\n", "1", "\n"]
    assert 1000 < len(chunks) < 20000, len(chunks)
    # The count starts anew with each cell.
    assert streams(rn.run('System.out.println("again")')) == [("stdout", "again"), ("stdout", "\n")]


def test_huge_output_is_cut_into_bounded_events(rn):
    res = rn.run('System.out.print("x".repeat(2_500_000) + "\u00e9".repeat(600_000))')
    assert_ok(res)
    texts = [t for n, t in streams(res)]
    assert "".join(texts) == "x" * 2_500_000 + "\u00e9" * 600_000
    assert len(texts) >= 3 and all(len(t.encode()) <= 1 << 20 for t in texts)


def test_output_after_the_cell_is_not_lost(rn):
    # A thread the cell left behind writes after "done": no request to
    # attach it to, so it goes to fd 1 as it did before stream events.
    rid = rn.start('new Thread(() -> { try { Thread.sleep(300); } catch (Exception e) {}'
                   ' System.out.println("late line"); }).start();')
    evs, _, _ = rn.finish(rid)
    assert evs[-1]["status"] == "ok"
    rn.wait_output("stdout", "late line\n")
    assert not any(e["type"] == "stream" and "late" in e["text"] for e in rn.events)


def test_interrupt_while_printing_keeps_event_lines_whole(rn):
    # JShell.stop() is Thread.stop on the printing thread: an event line is
    # written whole or not at all (the test's JSON parser sees every line).
    evs = run_interrupted(rn, 'while (true) System.out.println("spin spin spin");')
    assert [e["ename"] for e in evs if e["type"] == "error"] == ["KeyboardInterrupt"]
    res = rn.run('System.out.println("next")')
    assert streams(res) == [("stdout", "next"), ("stdout", "\n")]


def test_unicode_output_and_values(rn):
    res = rn.run('System.out.println("h\\u00e9llo \\u2603 \\ud83d\\ude00"); "\\u00e9t\\u00e9"')
    assert_ok(res)
    assert res["stdout"] == "h\u00e9llo \u2603 \U0001F600\n"
    assert res["result"] == '"\u00e9t\u00e9"'


def test_subprocess_output_goes_to_fd_1(rn):
    res = rn.run('new ProcessBuilder("sh", "-c", "echo from-child; echo child-err >&2")'
                 ".inheritIO().start().waitFor()")
    assert_ok(res)
    assert "from-child\n" in res["stdout"]
    assert "child-err\n" in res["stderr"]
    assert res["result"] == "0"


def test_user_stdin_is_empty_and_requests_are_safe(rn):
    res = rn.run("System.in.read()")
    assert res["result"] == "-1"
    res = rn.run('new String(new ProcessBuilder("cat").redirectInput('
                 "ProcessBuilder.Redirect.INHERIT).start().getInputStream().readAllBytes())")
    assert_ok(res)
    assert res["result"] == '""'
    assert rn.run("7 * 6")["result"] == "42"


# -- state --

def test_state_persists_across_cells(rn):
    assert_ok(rn.run("int x = 5;"))
    assert rn.run("x * 2")["result"] == "10"
    assert_ok(rn.run("int twice(int v) {\n  return 2 * v;\n}"))
    assert rn.run("twice(x) + 1")["result"] == "11"
    assert_ok(rn.run("class Point {\n  final int a, b;\n  Point(int a, int b) { this.a = a; this.b = b; }\n"
                     "  int sum() { return a + b; }\n}"))
    assert rn.run("new Point(3, 4).sum()")["result"] == "7"
    assert_ok(rn.run("import java.time.LocalDate;"))
    assert rn.run("LocalDate.of(2024, 2, 29).getDayOfYear()")["result"] == "60"
    # Redefinition replaces.
    assert_ok(rn.run("int twice(int v) { return 3 * v; }"))
    assert rn.run("twice(2)")["result"] == "6"
    # Default imports, as the jshell tool has them.
    assert rn.run("new ArrayList<>(List.of(3, 1, 2)).stream().sorted()"
                  ".map(String::valueOf).collect(Collectors.joining(\",\"))")["result"] == '"1,2,3"'


# -- errors --

def test_compile_error(rn):
    res = rn.run('int bad = "s";')
    assert res["status"] == "error"
    err = res["error"]
    assert err["ename"] == "CompilationError"
    assert "incompatible types" in err["evalue"]
    assert err["evalue"].startswith("line 1, column 11:"), err["evalue"]
    assert any("^" in line for line in err["traceback"])
    assert res["result"] is None
    # Position in a multi-line cell; nothing after the error runs.
    res = rn.run('int okBefore = 1;\nSystem.out.println(undefinedName);\nSystem.out.println("after");')
    assert res["error"]["ename"] == "CompilationError"
    assert res["error"]["evalue"].startswith("line 2, column 20:"), res["error"]["evalue"]
    assert "cannot find symbol" in res["error"]["evalue"]
    assert "after" not in res["stdout"]
    assert rn.run("okBefore")["result"] == "1"


def test_incomplete_code_is_a_compile_error(rn):
    res = rn.run("for (int i = 0; i < 3; i++) {")
    assert res["status"] == "error"
    assert res["error"]["ename"] == "CompilationError"


def test_runtime_exception(rn):
    res = rn.run("1 / 0")
    assert res["status"] == "error"
    err = res["error"]
    assert err["ename"] == "ArithmeticException"
    assert err["evalue"] == "/ by zero"
    assert err["traceback"][0] == "java.lang.ArithmeticException: / by zero"
    assert res["result"] is None


def test_exception_from_a_method_with_cause(rn):
    assert_ok(rn.run("class MyError extends RuntimeException {\n"
                     "  MyError(String m, Throwable c) { super(m, c); }\n}\n"
                     "void failing() {\n"
                     '  throw new MyError("outer", new IllegalStateException("inner"));\n}'))
    res = rn.run('System.out.println("before");\nfailing();\nSystem.out.println("after");')
    err = res["error"]
    assert err["ename"] == "MyError"
    assert err["evalue"] == "outer"
    assert any(line.startswith("\tat failing") for line in err["traceback"]), err
    assert any(line.startswith("Caused by: java.lang.IllegalStateException: inner")
               for line in err["traceback"]), err
    assert res["stdout"] == "before\n"


def test_unresolved_reference(rn):
    res = rn.run("int usesMissing() { return missingVar; }")
    assert_ok(res)
    assert "missingVar" in res["stderr"]
    res = rn.run("usesMissing()")
    assert res["error"]["ename"] == "UnresolvedReferenceException"
    assert "missingVar" in res["error"]["evalue"]


def assert_session_healthy(r, name):
    """After a failed cell: a declaration, its value and println output."""
    assert_ok(r.run(f"int {name} = 5;"))
    assert r.run(name)["result"] == "5"
    res = r.run(f'System.out.println("still printing {name}")')
    assert_ok(res)
    assert res["stdout"] == f"still printing {name}\n"


def big_method(statements):
    return "void tooBig() {\n" + "".join(
        f"System.out.println({i});\n" for i in range(statements)) + "}"


@pytest.mark.parametrize("code,message", [
    # javac's class-file limits fail in code generation, which JShell
    # reports as a RECOVERABLE snippet, and they left javac's reused
    # constant pool holding the oversized entry (issue 11, item 7).
    ('String huge = "' + "x" * 70000 + '";', "constant string too long"),
    ('System.out.println("' + "y" * 70000 + '");', "constant string too long"),
    ('String folded = "' + "a" * 40000 + '" + "' + "b" * 40000 + '";',
     "constant string too long"),
    ("void manyConstants() { String[] a = {" +
     ",".join(f'"c{i}"' for i in range(70000)) + "}; }", None),
    (big_method(12000), "code too large"),
], ids=["literal", "statement", "folded", "constants", "code"])
def test_class_file_limits_fail_the_cell_not_the_session(fresh, code, message):
    r = fresh()
    assert_ok(r.run("int before = 1;"))
    res = r.run(code, timeout=120)
    assert res["status"] == "error", res["events"]
    assert res["error"]["ename"] == "CompilationError", res["error"]
    if message:
        assert message in res["error"]["evalue"], res["error"]
    assert_session_healthy(r, "q")
    assert r.run("before")["result"] == "1"
    assert res["stderr"] == "" and r.out["stderr"] == b"", r.out["stderr"]


def test_env_helper_with_a_value_over_the_constant_limit(fresh):
    # The daemon's helper cell passes values as one string literal; a
    # 49,200-character value must fail that cell, not every later one.
    r = fresh()
    r.run(env_helper({"L": "x" * 49200}), silent=True)
    assert_session_healthy(r, "q")


def test_failed_static_initializer_keeps_the_session(rn):
    assert_ok(rn.run("class Boom { static int v = 1 / 0; }"))
    res = rn.run("Boom.v")
    assert res["error"]["ename"] == "ExceptionInInitializerError", res["error"]
    assert any("ArithmeticException" in line for line in res["error"]["traceback"]), res["error"]
    res = rn.run("Boom.v")
    assert res["error"]["ename"] == "NoClassDefFoundError", res["error"]
    assert_session_healthy(rn, "afterBoom")
    # The class can be declared again.
    assert_ok(rn.run("class Boom { static int v = 2; }"))
    assert rn.run("Boom.v")["result"] == "2"


# -- interrupts --

def run_interrupted(rn, code):
    rid = rn.start('System.out.println("started"); ' + code)
    rn.wait_output("stdout", "started", timeout=20)
    time.sleep(0.3)
    rn.interrupt()
    # The cell would run for minutes, or forever, without the interrupt.
    evs, _, _ = rn.finish(rid, timeout=60)
    return evs


def test_interrupt_busy_loop_keeps_state(rn):
    assert_ok(rn.run("int kept = 41;"))
    evs = run_interrupted(rn, "while (true) {}")
    err = [e for e in evs if e["type"] == "error"]
    assert err and err[0]["ename"] == "KeyboardInterrupt", evs
    assert evs[-1] == {"type": "done", "id": evs[-1]["id"], "status": "error"}
    assert rn.run("kept + 1")["result"] == "42"


def test_interrupt_sleep_keeps_state(rn):
    assert_ok(rn.run("String keptS = \"still here\";"))
    evs = run_interrupted(rn, "Thread.sleep(100000);")
    assert [e["ename"] for e in evs if e["type"] == "error"] == ["KeyboardInterrupt"]
    assert evs[-1]["status"] == "error"
    assert rn.run("keptS")["result"] == '"still here"'


def test_interrupt_stops_the_rest_of_the_cell(rn):
    evs = run_interrupted(rn, 'Thread.sleep(100000);\nSystem.out.println("not-reached");')
    assert evs[-1]["status"] == "error"
    rn.drain("stdout")
    assert b"not-reached" not in rn.out["stdout"]


def test_interrupt_works_when_sigint_was_ignored_at_start(fresh):
    # HotSpot keeps an inherited SIG_IGN for SIGINT and then never runs the
    # runner's handler; the runner resets it (libe2bjenv.so).
    r = fresh(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert_ok(r.run("int k = 1;"))
    evs = run_interrupted(r, "while (true) {}")
    assert [e["ename"] for e in evs if e["type"] == "error"] == ["KeyboardInterrupt"]
    assert r.run("k")["result"] == "1"


def test_interrupt_right_after_the_request(rn):
    # The host may interrupt as soon as it has written the request: before the
    # runner has read it, while its reader thread holds the bytes (a window
    # that lost about one interrupt in 50, and the cell then ran forever),
    # or while JShell still compiles it.
    for delay in [0] * 40 + [0.001, 0.05, 0.2]:
        rid = rn.start("while (true) {}")
        time.sleep(delay)
        rn.interrupt()
        evs, _, _ = rn.finish(rid, timeout=15)
        assert [e["ename"] for e in evs if e["type"] == "error"] == ["KeyboardInterrupt"], (delay, evs)
    # Nothing is left pending for the next cell.
    res = rn.run("2 + 2")
    assert_ok(res)
    assert res["result"] == "4"


def test_sigint_while_idle_is_ignored(rn):
    rn.interrupt()
    time.sleep(0.5)
    rn.interrupt()
    time.sleep(0.5)
    assert rn.proc.poll() is None
    res = rn.run("3 + 4")
    assert_ok(res)
    assert res["result"] == "7"


def test_starts_under_an_address_space_limit(fresh):
    # The daemon's fallback for --kernel-memory-max is RLIMIT_AS; the JVM's
    # default reservations alone exceed 1 GiB.
    lim = 1 << 30
    r = fresh(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (lim, lim)))
    res = r.run("Runtime.getRuntime().maxMemory() < (1L << 30)")
    assert res["result"] == "true", res
    assert r.run("new int[20_000_000].length")["result"] == "20000000"


# -- cwd, env, silent --

def test_user_dir_is_the_start_cwd(fresh, tmp_path):
    d = tmp_path / "wd with space"
    d.mkdir()
    r = fresh(cwd=str(d))
    assert r.run('System.getProperty("user.dir")')["result"] == json.dumps(str(d))
    assert r.run('new java.io.File("x").getAbsolutePath()')["result"] == json.dumps(str(d / "x"))
    r.run('java.nio.file.Files.writeString(java.nio.file.Path.of("made.txt"), "hi")')
    assert (d / "made.txt").read_text() == "hi"


def test_env_helper_sets_and_unsets(rn):
    value = "v\u00e9 'q\" $x\nline2"
    res = rn.run(env_helper({"E2B_JT": value, "E2B_JT2": "two"}), silent=True)
    assert_ok(res)
    assert [e["type"] for e in res["events"]] == ["done"]
    assert rn.run('System.getenv("E2B_JT")')["result"] == json.dumps(value, ensure_ascii=False)
    assert rn.run('System.getenv().get("E2B_JT2")')["result"] == '"two"'
    # Children see it: ProcessBuilder without an explicit environment.
    res = rn.run('new String(new ProcessBuilder("sh", "-c", "printf %s \\"$E2B_JT\\"")'
                 ".start().getInputStream().readAllBytes(), \"UTF-8\")")
    assert res["result"] == json.dumps(value, ensure_ascii=False)
    res = rn.run('new String(Runtime.getRuntime().exec(new String[]{"printenv", "E2B_JT2"})'
                 ".getInputStream().readAllBytes()).trim()")
    assert res["result"] == '"two"'
    # Restore, as the daemon does after the cell.
    assert_ok(rn.run(env_helper({"E2B_JT2": "restored"}, ["E2B_JT"]), silent=True))
    assert rn.run('String.valueOf(System.getenv("E2B_JT"))')["result"] == '"null"'
    assert rn.run('System.getenv("E2B_JT2")')["result"] == '"restored"'
    res = rn.run('new String(new ProcessBuilder("sh", "-c", "echo ${E2B_JT-unset}")'
                 ".start().getInputStream().readAllBytes()).trim()")
    assert res["result"] == '"unset"'


def test_env_helper_rejects_bad_input(rn):
    res = rn.run('e2bci.E2b.setenv("not base64!");', silent=True)
    assert res["status"] == "error"
    assert res["error"]["ename"] == "IllegalArgumentException"


def test_silent_requests_have_no_result(rn):
    res = rn.run("40 + 2", silent=True)
    assert_ok(res)
    assert [e["type"] for e in res["events"]] == ["done"]
    # Errors are still reported.
    res = rn.run("1 / 0", silent=True)
    assert res["error"]["ename"] == "ArithmeticException"
    assert res["status"] == "error"


# -- lifecycle --

def test_shutdown_request_exits_0(fresh):
    r = fresh()
    assert r.run("1")["result"] == "1"
    r.send({"type": "shutdown"})
    assert r.proc.wait(timeout=10) == 0


def test_eof_on_requests_exits(fresh):
    r = fresh()
    r.proc.stdin.close()
    assert r.proc.wait(timeout=10) == 0


def test_system_exit_ends_the_runner(fresh):
    r = fresh()
    rid = r.start('System.out.println("bye"); System.exit(3);')
    assert r.proc.wait(timeout=10) == 3
    r.drain("events")
    r.drain("stdout")
    assert b"bye" in r.out["stdout"]
    assert [e["type"] for e in r.events if e.get("id") == rid] == ["stream"] * 2


def test_bad_request_lines_are_skipped(rn):
    rn.proc.stdin.write(b"this is not json\n{\"type\":\"nonsense\"}\n")
    rn.proc.stdin.flush()
    assert rn.run("5 - 3")["result"] == "2"


def test_events_fd_must_be_a_pipe(built, tmp_path):
    # The runner reopens fd 3 by path: it must refuse anything but a pipe,
    # socket or device, or a regular file the JVM opened itself (its own
    # lib/modules when fd 3 was left closed) would be overwritten.
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    fd = os.open(victim, os.O_RDONLY)
    try:
        r = subprocess.run(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{fd}', "/usr/bin/java",
             "-cp", BUILD, "e2bci.E2bJavaRunner"],
            stdin=subprocess.DEVNULL, capture_output=True, pass_fds=(fd,),
            timeout=60)
    finally:
        os.close(fd)
    assert r.returncode == 2, r
    assert b"fd 3 must be the host's events pipe" in r.stderr
    assert victim.read_bytes() == b"precious"


def test_run_sh_refuses_a_closed_fd_3(built, tmp_path):
    # A stand-in for java records whether run.sh would have started it.
    fake = tmp_path / "java"
    mark = tmp_path / "started"
    fake.write_text(f"#!/bin/sh\ntouch {mark}\n")
    fake.chmod(0o755)
    r = subprocess.run(["/bin/bash", "-c", 'exec 3>&-; exec /bin/sh "$0"', RUN_SH],
                       env=dict(os.environ, E2BCI_JAVA=str(fake)),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert r.returncode == 2, r
    assert b"fd 3" in r.stderr
    assert not mark.exists()
