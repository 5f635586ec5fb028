"""Tests of the Node.js runner (kernels/node/runner.mjs), driven directly
over its pipes as e2b-kernel drives it (kernels/RUNNER-PROTOCOL.md, mode
"json"): requests on stdin, user output on fd 1 and 2, events on fd 3. The
runner gets its own session, as the host gives it, so SIGINT goes to its
process group.

    /usr/bin/python3 -m pytest -q tests/kernels/test_node_runner.py

Every test runs on the machine's node (/usr/bin/node, or $NODE) and on
Node.js 18.20.4, Debian 12's (tests/kernels/nodes.py). Needs
kernels/node/node_modules and tests/kernels/node18 (kernels/node/install.sh).
"""

import base64
import json
import os
import time

import pytest

import nodes
from runner_pipes import RunnerPipes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "kernels", "node", "runner.mjs")

# The daemon's env helper cell for javascript and typescript (server/lang.c).
ENV_BEFORE = "(() => { const d = JSON.parse(Buffer.from('"
ENV_AFTER = ("', 'base64').toString('utf8')); Object.assign(process.env, d.set); "
             "for (const k of d.unset) delete process.env[k]; })();")


def env_helper(set_=None, unset=None):
    doc = json.dumps({"set": set_ or {}, "unset": unset or []})
    return ENV_BEFORE + base64.b64encode(doc.encode()).decode() + ENV_AFTER


class Runner(RunnerPipes):
    """The Node.js runner (javascript or typescript)."""

    def __init__(self, node, language="javascript", cwd=None, env=None):
        super().__init__([node, RUNNER, "--language", language], cwd=cwd, env=env)

    def collect(self, rid, timeout=20):
        """The events of request rid up to its done, and the output seen
        by then (fd 1 and 2 drained on done, as the host does)."""
        out0 = {k: len(v) for k, v in self.out.items()}
        ev0 = len(self.events)
        done = self.wait_event(lambda e: e.get("type") == "done" and
                               e.get("id") == rid, timeout)
        self.drain("stdout")
        self.drain("stderr")
        evs = [e for e in self.events[ev0:] if e.get("id") == rid]
        assert evs[-1] is done, evs
        return Cell(evs, self.out["stdout"][out0["stdout"]:].decode(),
                    self.out["stderr"][out0["stderr"]:].decode())

    def run(self, code, silent=False, timeout=20):
        return self.collect(self.submit(code, silent), timeout)


class Cell:
    def __init__(self, events, stdout, stderr):
        self.events, self.stdout, self.stderr = events, stdout, stderr
        self.done = events[-1]
        self.status = self.done["status"]
        self.results = [e for e in events if e["type"] == "result"]
        self.displays = [e for e in events if e["type"] == "display"]
        errors = [e for e in events if e["type"] == "error"]
        assert len(self.results) <= 1 and len(errors) <= 1, events
        self.error = errors[0] if errors else None

    @property
    def text(self):
        assert self.results, f"no result: {self.events!r} stderr={self.stderr!r}"
        return self.results[0]["data"]["text/plain"]

    def ok(self):
        assert self.status == "ok" and self.error is None, (
            f"{self.events!r} stderr={self.stderr!r}")
        return self


@pytest.fixture
def workdir(tmp_path):
    """A cwd with a CommonJS package, an ESM-only package and a module."""
    nm = tmp_path / "node_modules"
    (nm / "cjspkg").mkdir(parents=True)
    (nm / "cjspkg" / "package.json").write_text('{"name":"cjspkg","main":"main.js"}')
    (nm / "cjspkg" / "main.js").write_text('module.exports = { hi: "from cjs" };')
    (nm / "esmonly").mkdir()
    (nm / "esmonly" / "package.json").write_text(
        '{"name":"esmonly","type":"module","exports":{"import":"./index.js"}}')
    (nm / "esmonly" / "index.js").write_text(
        'export const hello = "from esm"; export default 42;')
    (tmp_path / "local.mjs").write_text("export const answer = 41 + 1;")
    (tmp_path / "data.json").write_text('{"k": [1, 2]}')
    (tmp_path / "sub").mkdir()
    return tmp_path


@pytest.fixture(params=nodes.PARAMS)
def node(request):
    """Each test runs once per Node binary."""
    return nodes.binary(request.param)


@pytest.fixture
def js(node, workdir):
    r = Runner(node, "javascript", cwd=str(workdir))
    yield r
    r.close()


@pytest.fixture
def ts(node, workdir):
    r = Runner(node, "typescript", cwd=str(workdir))
    yield r
    r.close()


# ---- start, results, output ----

@pytest.mark.parametrize("language,mimetype,ext", [
    ("javascript", "application/javascript", ".js"),
    ("typescript", "text/typescript", ".ts"),
])
def test_ready_comes_first_with_language_info(node, workdir, language, mimetype, ext):
    r = Runner(node, language, cwd=str(workdir))
    try:
        assert r.events[0]["type"] == "ready"
        li = r.events[0]["language_info"]
        node_version = nodes.version(node)
        assert li == {"name": language, "version": node_version,
                      "mimetype": mimetype, "file_extension": ext}
        assert r.ready_after < 5, r.ready_after
        assert r.run("1").ok().text == "1"
        assert r.out == {"stdout": b"", "stderr": b""}, r.out
    finally:
        r.close()


def test_stdout_and_last_expression(js):
    c = js.run("console.log('hello'); process.stderr.write('warn\\n'); 6 * 7").ok()
    assert c.stdout == "hello\n"
    assert c.stderr == "warn\n"
    assert c.text == "42"


def test_cwd_string_is_inspected_with_quotes(js, workdir):
    assert js.run("process.cwd()").ok().text == f"'{workdir}'"


def test_objects_are_shown_like_the_inspector(js):
    assert js.run("({a: 1, b: 'x', c: [1, 2, {d: null}]})").ok().text == \
        "{ a: 1, b: 'x', c: [ 1, 2, { d: null } ] }"
    assert js.run("{a: 1}").ok().text == "{ a: 1 }"
    assert js.run("new Map([[1, 'one']])").ok().text == "Map(1) { 1 => 'one' }"
    assert js.run("class Pt { constructor() { this.x = 1 } }; new Pt()").ok().text \
        == "Pt { x: 1 }"


def test_results_are_not_cut_by_inspect_defaults(js):
    # util.inspect's defaults cut strings at 10,000 characters, arrays at
    # 100 items and nesting at depth 2; Python's repr cuts none of them.
    text = js.run("'x'.repeat(10 * 1024 * 1024)").ok().text
    assert text == "'" + "x" * (10 * 1024 * 1024) + "'"
    text = js.run("Array.from({length: 1000}, (_, i) => i)").ok().text
    assert "more item" not in text
    assert [int(v) for v in text.strip("[] \n").replace("\n", "").split(",")] == \
        list(range(1000))
    assert js.run("new Set(Array.from({length: 300}, (_, i) => i)).size").ok().text == "300"
    assert "more item" not in js.run("new Set(Array.from({length: 300}, (_, i) => i))").ok().text
    # Plain data (what JSON.parse returns) to any depth.
    text = js.run("JSON.parse('{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":[1,{\"f\":2}]}}}}}')").ok().text
    assert "[Object]" not in text and "f: 2" in text, text
    assert "[Object]" not in js.run("new Map([[1, {a: {b: {c: {d: 1}}}}]])").ok().text
    # Other objects keep the REPL's depth: a module's object graph could
    # otherwise be hundreds of MB.
    assert js.run("function F() {}; F.a = {b: {c: {d: 1}}}; F").ok().text == \
        "[Function: F] { a: { b: { c: [Object] } } }"
    # An instance holding data: the instance is not plain, so depth 2.
    assert js.run("class Box { constructor() { this.v = {a: {b: {c: 1}}} } }; new Box()") \
        .ok().text == "Box { v: { a: { b: [Object] } } }"


def test_no_result_for_undefined_declarations_and_silent(js):
    for code in ("undefined", "let q = 5", "console.log(1)", "function f() {}",
                 "if (true) { 3 }"):
        assert js.run(code).ok().results == [], code
    c = js.run("1 + 1", silent=True).ok()
    assert c.results == []


def test_top_level_await(js):
    assert js.run("await Promise.resolve('Hello World!')").ok().text == "'Hello World!'"
    c = js.run("const v = await new Promise(r => setTimeout(() => r(5), 50)); v * 2").ok()
    assert c.text == "10"
    # A promise as the last expression is awaited.
    assert js.run("Promise.resolve(7)").ok().text == "7"


def test_state_persists_across_cells(js):
    js.run("const a = 1; let b = 2; var c = 3\n"
           "function add(x, y) { return x + y }\n"
           "class Counter { constructor() { this.n = 0 } inc() { return ++this.n } }\n"
           "const {p, q: [r]} = {p: 4, q: [5]}").ok()
    assert js.run("add(a, b) + c + p + r").ok().text == "15"
    assert js.run("const k = new Counter(); k.inc(); k.inc()").ok().text == "2"
    assert js.run("k.inc()").ok().text == "3"
    # Redeclaring is allowed, as in a notebook.
    assert js.run("const a = 10; a").ok().text == "10"
    # Functions are hoisted within their cell.
    assert js.run("early()\nfunction early() { return 'hoisted' }").ok().results == []
    assert js.run("early()").ok().text == "'hoisted'"
    # var without initializer keeps the value.
    assert js.run("var c; c").ok().text == "3"
    # var in blocks and for heads is global too, as in the REPL.
    js.run("if (true) { var inBlock = 'b' }\nfor (var i = 0; i < 3; i++) {}\n"
           "if (i) var noBraces = 'n'; else var other = 'o'").ok()
    assert js.run("[inBlock, i, noBraces, other]").ok().text == \
        "[ 'b', 3, 'n', undefined ]"
    # let inside a block stays in the block.
    assert js.run("{ let blockOnly = 1 }\ntypeof blockOnly").ok().text == "'undefined'"


def test_exports_statics_and_odd_cells(js):
    js.run("export const ex = 1; export function exf() { return 2 }\n"
           "class S { static { var staticLocal = 3 } }").ok()
    assert js.run("[ex, exf(), typeof staticLocal]").ok().text == "[ 1, 2, 'undefined' ]"
    assert js.run("// only a comment").ok().results == []
    assert js.run("").ok().results == []
    assert js.run("1 // trailing comment").ok().text == "1"
    assert js.run("(1, 2)").ok().text == "2"
    assert js.run("this === globalThis").ok().text == "true"
    c = js.run("return 5")
    assert c.error["ename"] == "SyntaxError", c.error


def test_redeclaring_builtin_globals(js):
    js.run("const crypto = require('crypto')").ok()
    assert js.run("crypto.createHash('sha256').update('x').digest('hex').length") \
        .ok().text == "64"
    assert js.run("const performance = 'mine'; performance").ok().text == "'mine'"


def test_static_imports_and_require(js):
    c = js.run("import { readFileSync } from 'fs'\n"
               "import * as pathNs from 'node:path'\n"
               "import os, { EOL } from 'os'\n"
               "import { answer } from './local.mjs'\n"
               "import data from './data.json' with { type: 'json' }").ok()
    assert c.stderr == ""  # no ExperimentalWarning for JSON on Node 18
    assert js.run("typeof readFileSync").ok().text == "'function'"
    assert js.run("pathNs.join('a', 'b')").ok().text == "'a/b'"
    assert js.run("typeof os.cpus === 'function' && EOL === '\\n'").ok().text == "true"
    assert js.run("answer").ok().text == "42"
    assert js.run("data.k").ok().text == "[ 1, 2 ]"
    assert js.run("const fs2 = require('fs'); typeof fs2.statSync").ok().text == "'function'"
    assert js.run("require('cjspkg').hi").ok().text == "'from cjs'"
    js.run("import cj from 'cjspkg'; import esm, { hello } from 'esmonly'").ok()
    assert js.run("[cj.hi, esm, hello]").ok().text == "[ 'from cjs', 42, 'from esm' ]"
    assert js.run("(await import('esmonly')).hello").ok().text == "'from esm'"
    assert js.run("import.meta.url.startsWith('file://')").ok().text == "true"


def test_resolution_follows_chdir(js, workdir):
    (workdir / "sub" / "node_modules" / "subpkg").mkdir(parents=True)
    (workdir / "sub" / "node_modules" / "subpkg" / "index.js").write_text(
        "module.exports = 'sub';")
    c = js.run("require('subpkg')")
    assert c.status == "error" and "Cannot find module" in c.error["evalue"]
    js.run("process.chdir('sub')").ok()
    assert js.run("require('subpkg')").ok().text == "'sub'"
    assert js.run("(await import('subpkg')).default").ok().text == "'sub'"


# ---- errors ----

def test_thrown_error(js):
    c = js.run("let before = 1\nfunction boom() { throw new TypeError('bad thing') }\nboom()")
    assert c.status == "error" and c.results == []
    e = c.error
    assert (e["ename"], e["evalue"]) == ("TypeError", "bad thing")
    assert e["traceback"][0] == "TypeError: bad thing"
    assert any("at boom (<cell" in line and ":2:" in line for line in e["traceback"]), e
    text = "\n".join(e["traceback"])
    assert "runner.mjs" not in text and "transform.mjs" not in text
    assert "node:internal" not in text and "node:events" not in text
    assert e["traceback"][-1].strip().startswith("at <cell"), e
    # The runner keeps going, state intact.
    assert js.run("before").ok().text == "1"


def test_error_names(js):
    c = js.run("class MyErr extends Error {}; throw new MyErr('m')")
    assert (c.error["ename"], c.error["evalue"]) == ("MyErr", "m")
    c = js.run("throw 'just a string'")
    assert (c.error["ename"], c.error["evalue"]) == ("Error", "just a string")
    c = js.run("await Promise.reject(new RangeError('r'))")
    assert (c.error["ename"], c.error["evalue"]) == ("RangeError", "r")
    c = js.run("throw new Error('outer', { cause: new Error('inner') })")
    assert "[cause]: Error: inner" in c.error["traceback"], c.error
    assert "runner.mjs" not in "\n".join(c.error["traceback"])
    c = js.run("undefinedName + 1")
    assert c.error["ename"] == "ReferenceError"
    assert "undefinedName is not defined" in c.error["evalue"]


def test_syntax_error_points_into_the_cell(js):
    c = js.run("const ok = 1\nlet x = (1 +;\n")
    assert c.status == "error"
    e = c.error
    assert e["ename"] == "SyntaxError"
    assert "line 2" in e["evalue"], e
    assert "let x = (1 +;" in e["traceback"], e
    assert any(line.strip() == "^" for line in e["traceback"]), e
    # Nothing of the cell ran.
    assert js.run("typeof ok").ok().text == "'undefined'"


def test_late_errors_do_not_kill_the_runner(js):
    js.run("setTimeout(() => { throw new Error('late boom') }, 10);"
           "setTimeout(() => Promise.reject(new Error('late reject')), 10); 1").ok()
    js.wait_output("stderr", "late boom")
    js.wait_output("stderr", "late reject")
    assert js.proc.poll() is None
    assert js.run("2 + 2").ok().text == "4"


# ---- env helper, flushing, ordering ----

def test_daemon_env_helper(js):
    c = js.run(env_helper({"FOO": "bar baz", "EMPTY": ""}, []), silent=True).ok()
    assert c.results == [] and c.stdout == ""
    assert js.run("process.env.FOO").ok().text == "'bar baz'"
    assert js.run("require('child_process').execSync('printf %s \"$FOO\"').toString()") \
        .ok().text == "'bar baz'"
    js.run(env_helper({}, ["FOO"]), silent=True).ok()
    assert js.run("'FOO' in process.env").ok().text == "false"


def test_stdout_is_flushed_before_done(js):
    # Read stdout slowly so Node's pipe writes queue up; by the time done
    # arrives, everything must be in the pipe (the host drains until EAGAIN).
    n = 3 << 20
    rid = js.submit(f"process.stdout.write('x'.repeat({n})); console.error('end')")
    deadline = time.monotonic() + 30
    while not any(e.get("type") == "done" and e.get("id") == rid for e in js.events):
        assert time.monotonic() < deadline
        js.pump(0.001, limit=4096)
        time.sleep(0.001)
    js.drain("stdout")
    js.drain("stderr")
    assert len(js.out["stdout"]) == n
    assert js.out["stderr"].endswith(b"end\n")


def test_requests_run_in_order(js):
    ids = [js.submit(f"await new Promise(r => setTimeout(r, {30 - 10 * i})); "
                     f"console.log('cell {i}'); {i}") for i in range(3)]
    cells = [js.collect(i) for i in ids]
    assert [c.text for c in cells] == ["0", "1", "2"]
    assert js.out["stdout"].decode().splitlines()[-3:] == ["cell 0", "cell 1", "cell 2"]
    dones = [e["id"] for e in js.events if e["type"] == "done"]
    assert dones[-3:] == ids


# ---- interrupts ----

def interrupted(r, rid, settle=0.5):
    time.sleep(settle)
    r.interrupt()
    c = r.collect(rid, timeout=10)
    assert c.status == "error", c.events
    assert c.error["ename"] == "KeyboardInterrupt", c.error
    return c


def test_interrupt_busy_loop_keeps_state(js):
    js.run("let kept = 'still here'; let n = 0").ok()
    interrupted(js, js.submit("while (true) { n++ }"))
    assert js.run("kept").ok().text == "'still here'"
    assert int(js.run("n").ok().text) > 0


def test_interrupt_empty_busy_loop(js):
    interrupted(js, js.submit("while(true){}"))
    assert js.run("1").ok().text == "1"


def test_interrupt_busy_loop_after_await(js):
    c = interrupted(js, js.submit("await new Promise(r => setTimeout(r, 10)); for (;;) {}"))
    assert any("<cell" in line for line in c.error["traceback"]), c.error
    assert js.run("'alive'").ok().text == "'alive'"


def test_interrupt_busy_recursion(js):
    js.run("function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) }").ok()
    interrupted(js, js.submit("fib(60)"))
    assert js.run("fib(10)").ok().text == "55"


def test_interrupt_pending_await(js):
    js.run("const keep = [1, 2, 3]").ok()
    interrupted(js, js.submit("await new Promise(() => {})"))
    assert js.run("keep.length").ok().text == "3"


def test_interrupt_busy_timer_callback(js):
    rid = js.submit("setTimeout(() => { while (true) {} }, 0);"
                    "await new Promise(r => setTimeout(r, 60000))")
    interrupted(js, rid)
    assert js.run("'after'").ok().text == "'after'"


def test_interrupt_busy_leftover_between_cells(js):
    # A cell leaves a timer whose callback spins after the cell is done; the
    # next request waits unread behind it. An interrupt stops the callback,
    # the waiting request then runs (or ends as interrupted) and the state
    # of earlier cells is intact.
    js.run("let survivor = 'kept'; let spins = 0").ok()
    js.run("setTimeout(() => { spins++; while (true) {} }, 50); 1").ok()
    time.sleep(0.3)
    rid = js.submit("survivor + '!'")
    time.sleep(0.3)
    js.interrupt()
    c = js.collect(rid, timeout=10)
    if c.status == "ok":
        assert c.text == "'kept!'"
    else:
        assert c.error["ename"] == "KeyboardInterrupt", c.error
    assert js.run("survivor").ok().text == "'kept'"
    assert js.run("spins").ok().text == "1"
    # Timers of cell code run again afterwards.
    js.run("let ticks = 0; const t = setInterval(() => { for (let i = 0; i < 3; i++) ticks++ }, 20)").ok()
    time.sleep(1.5)
    assert int(js.run("clearInterval(t); ticks").ok().text) >= 30


def test_interrupt_while_idle_is_ignored(js):
    js.run("const idle = 'ok'").ok()
    js.interrupt()
    time.sleep(0.3)
    js.interrupt()
    time.sleep(0.3)
    assert js.proc.poll() is None
    assert js.run("idle").ok().text == "'ok'"


def test_interrupt_right_after_started(js):
    # The runner announces "started" for each request, and the host sends
    # an interrupt's SIGINT only after it (kernels/RUNNER-PROTOCOL.md): a
    # signal before it could come before the request was read, pass for a
    # late one and be lost, and the busy cell would run for ever (it did, on
    # the first request after ready every time). Do as the host does.
    assert js.ready["announces_start"] is True
    js.run("const survives = 'yes'").ok()
    for _ in range(30):
        rid = js.submit("while (true) {}")
        js.wait_event(lambda e: e.get("type") == "started" and e.get("id") == rid)
        js.interrupt()
        c = js.collect(rid, timeout=10)
        assert c.error["ename"] == "KeyboardInterrupt", c.events
        assert [e["type"] for e in js.events if e.get("id") == rid][0] == "started"
    assert js.run("survives").ok().text == "'yes'"


@pytest.mark.parametrize("node_options", ["", "--pending-deprecation --throw-deprecation"])
def test_interrupt_worker_is_armed(node, workdir, node_options):
    # The busy-cell interrupt rests on an internal binding (runner.mjs,
    # WORKER_SRC): it must work, silently, on every Node we support, even
    # when deprecations are pending or fatal.
    env = dict(os.environ, NODE_OPTIONS=node_options)
    r = Runner(node, "javascript", cwd=str(workdir), env=env)
    try:
        interrupted(r, r.submit("for (;;) {}"))
        assert r.run("'after'").ok().text == "'after'"
        assert r.out["stderr"] == b"", r.out["stderr"]
    finally:
        r.close()


def test_interrupt_worker_failure_is_reported(node, workdir, tmp_path):
    # A Node that no longer offers the binding must not go unnoticed: the
    # runner says so on stderr at start, and still runs cells.
    pre = tmp_path / "break-binding.cjs"
    pre.write_text("if (!require('node:worker_threads').isMainThread)\n"
                   "  process.binding = () => { throw new Error('binding gone'); };\n")
    env = dict(os.environ, NODE_OPTIONS=f"--require {pre}")
    r = Runner(node, "javascript", cwd=str(workdir), env=env)
    try:
        assert r.run("40 + 2").ok().text == "42"
        r.wait_output("stderr", "busy cells cannot be interrupted")
        assert b"runner: interrupt worker failed (binding gone)" in r.out["stderr"]
    finally:
        r.close()


def test_interrupt_stops_child_process(js):
    interrupted(js, js.submit("require('child_process').execSync('sleep 30')"), settle=0.5)
    assert js.run("3").ok().text == "3"


# ---- display ----

def test_display_helpers(js):
    c = js.run("display.html('<b>hi</b>'); display.png(Buffer.from('PNG'));"
               "display({a: 1}); display.markdown('# t'); 5").ok()
    assert [d["data"] for d in c.displays] == [
        {"text/html": "<b>hi</b>"}, {"image/png": base64.b64encode(b"PNG").decode()},
        {"text/plain": "{ a: 1 }"}, {"text/markdown": "# t"}]
    assert c.text == "5"
    c = js.run("({ [Symbol.for('Jupyter.display')]() { return {'text/html': '<i>r</i>'} } })").ok()
    assert c.results[0]["data"]["text/html"] == "<i>r</i>"
    assert "text/plain" in c.results[0]["data"]


# ---- lifecycle ----

def test_shutdown_request_and_eof(node, workdir):
    r = Runner(node, "javascript", cwd=str(workdir))
    r.send({"type": "shutdown"})
    assert r.proc.wait(5) == 0
    r.close()
    # EOF on stdin: the queued cells still run, then the runner exits.
    r = Runner(node, "javascript", cwd=str(workdir))
    rid = r.submit("await new Promise(r => setTimeout(r, 200)); 'last'")
    r.proc.stdin.close()
    assert r.collect(rid).ok().text == "'last'"
    assert r.proc.wait(5) == 0
    r.proc.stdin = open(os.devnull, "wb")
    r.close()


def test_event_pipe_is_not_inherited_by_subprocesses(js):
    ino = os.fstat(js.fds["events"]).st_ino
    listing = js.run("require('child_process').execSync("
                     "\"sh -c 'ls -l /proc/$$/fd'\").toString()").ok().text
    assert " 0 -> " in listing, listing
    assert f"pipe:[{ino}]" not in listing, listing


# ---- TypeScript ----

def test_typescript_hello(ts):
    c = ts.run('const message: string = "Hello World!";\nconsole.log(message)').ok()
    assert c.stdout == "Hello World!\n"


def test_typescript_types_generics_enums_classes(ts):
    ts.run("interface Point { x: number; y: number }\n"
           "type Id = string | number\n"
           "function first<T>(xs: T[]): T | undefined { return xs[0] }\n"
           "enum Color { Red, Green = 'g', Blue = 4 }\n"
           "class Box<T> { constructor(public value: T, private label?: string) {} }\n"
           "const p: Point = { x: 1, y: 2 }\n"
           "let id: Id = 7").ok()
    assert ts.run("first<number>([3, 4])").ok().text == "3"
    assert ts.run("[Color.Red, Color[0], Color.Green, Color.Blue]").ok().text == \
        "[ 0, 'Red', 'g', 4 ]"
    assert ts.run("new Box<number>(5).value + p.x + (id as number)").ok().text == "13"
    assert ts.run("const s = {a: 1} satisfies object; s.a!").ok().text == "1"


def test_typescript_await_import_and_errors(ts):
    ts.run("import type { Nope } from 'does-not-exist'\n"
           "import { readFileSync } from 'fs'\n"
           "const n: number = await Promise.resolve(3)").ok()
    assert ts.run("typeof readFileSync + n").ok().text == "'function3'"
    assert ts.run("import path = require('path'); path.basename('/a/b.ts')") \
        .ok().text == "'b.ts'"
    c = ts.run("const x: = 1")
    assert c.error["ename"] == "SyntaxError", c.error
    c = ts.run("const y: number = 1;\nthrow new Error('ts boom')")
    assert (c.error["ename"], c.error["evalue"]) == ("Error", "ts boom")
    assert any("<cell" in line and ":2:" in line for line in c.error["traceback"]), c.error
    c = ts.run("namespace NS { export const k = 1 }")
    assert c.error["ename"] == "SyntaxError" and "namespace" in c.error["evalue"]
    assert ts.run("namespace T { export type A = number }\n1").ok().text == "1"


def test_typescript_interrupt_and_env(ts):
    ts.run("let t: number = 1").ok()
    interrupted(ts, ts.submit("while (true) { t++ }"))
    assert int(ts.run("t").ok().text) > 1
    ts.run(env_helper({"TSVAR": "yes"}), silent=True).ok()
    assert ts.run("process.env.TSVAR as string").ok().text == "'yes'"
