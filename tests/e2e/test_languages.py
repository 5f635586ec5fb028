"""Every language through the daemon: python (ipykernel), r (IRkernel),
javascript and typescript (kernels/node), bash (kernel host, bash mode),
java (kernels/java), and any other installed kernelspec by its name.

The checks every language must pass are parametrized over LANGS and share
one context per language (created on first use, in a directory of its own,
deleted at the end of the module), because what they check does not depend
on a fresh kernel: each test sets its own state under its own names. The
features of one language get their own tests below.

A language whose kernelspec is not installed is skipped with the reason;
a kernelspec that is installed but does not work fails.
"""

import json
import os
import re
import time

import pytest

from harness import (IPYKERNEL_ARGV, PROJECT_KERNELS, content, error, is_ready,
                     kernel_dirs, kernelspec, of_type, stderr, stdout,
                     write_kernelspec)

# Exactly what a kernel death must end the stream with (test_faults.py).
RESTARTING = {"type": "error", "name": "ContextRestarting",
              "value": "Context was restarted", "traceback": ""}

# A per-execution value with characters every language's quoting must
# survive (test_env.py covers the full set for python).
ENV_VALUE = "it's \"q\" \\back $HOME `x` %s {y} \u00e9"


# ------------------------------------------------------ the languages

class Lang:
    """How to say the same things in one language.

    env(var)       prints the variable's value, or <unset>, and a newline
    cwd            prints the working directory and a newline
    assign(n, v)   defines the variable n with the integer v
    show(n)        prints n and a newline; an error line when n is undefined
    fail           raises an error named error_name
    block          prints "ready", then runs (nearly) forever
    die            makes the kernel process exit with status 1
    """

    def __init__(self, name, spec, *, env, cwd, assign, show, fail, error_name,
                 block, die):
        self.name, self.spec = name, spec
        self.env, self.cwd, self.assign, self.show = env, cwd, assign, show
        self.fail, self.error_name = fail, error_name
        self.block, self.die = block, die
        self.kernel_json = kernelspec(spec, name)

    def __repr__(self):
        return self.name


def _js(name):
    return Lang(
        name, name,
        env=lambda k: f"console.log(process.env[{json.dumps(k)}] ?? '<unset>')",
        cwd="console.log(process.cwd())",
        assign=lambda n, v: f"let {n} = {v}",
        show=lambda n: f"console.log({n})",
        fail="throw new TypeError('lang boom')", error_name="TypeError",
        block="console.log('ready'); while (true) {}",
        die="process.exit(1)")


LANGS = [
    Lang("python", "python3",
         env=lambda k: f"import os; print(os.environ.get({k!r}, '<unset>'))",
         cwd="import os; print(os.getcwd())",
         assign=lambda n, v: f"{n} = {v}",
         show=lambda n: f"print({n})",
         fail="raise ValueError('lang boom')", error_name="ValueError",
         block="import time; print('ready', flush=True); time.sleep(300)",
         die="import os; os._exit(1)"),
    _js("javascript"),
    _js("typescript"),
    Lang("r", "ir",
         env=lambda k: f'cat(Sys.getenv("{k}", unset = "<unset>"), "\\n", sep = "")',
         cwd='cat(getwd(), "\\n", sep = "")',
         assign=lambda n, v: f"{n} <- {v}",
         show=lambda n: f'cat({n}, "\\n", sep = "")',
         fail='stop("lang boom")', error_name=None,  # IRkernel names it "ERROR"
         block='cat("ready\\n"); Sys.sleep(300)',
         # IRkernel replaces quit() by an "ask_exit" reply payload, see
         # test_r_quit_restarts_the_context; this is R's own quit.
         die='.Internal(quit("no", 1L, FALSE))'),
    Lang("bash", "bash",
         env=lambda k: f'echo "${{{k}-<unset>}}"',
         cwd="pwd",
         assign=lambda n, v: f"{n}={v}",
         # test fails (status 1, an error line) when n is unset.
         show=lambda n: f'test -n "${{{n}-}}" && echo "${n}"',
         fail="echo 'lang boom' >&2; false", error_name=None,
         block="echo ready; sleep 100",
         die="exit 1"),
    Lang("java", "java",
         env=lambda k: f'System.out.println(System.getenv().getOrDefault("{k}", "<unset>"));',
         cwd='System.out.println(System.getProperty("user.dir"));',
         assign=lambda n, v: f"int {n} = {v};",
         show=lambda n: f"System.out.println({n});",
         fail='throw new IllegalStateException("lang boom");',
         error_name="IllegalStateException",
         block='System.out.println("ready"); while (true) { }',
         die="System.exit(1);"),
]
BY_NAME = {l.name: l for l in LANGS}


def installed(lang):
    return pytest.mark.skipif(
        lang.kernel_json is None,
        reason=f"no kernelspec for {lang.name} ({lang.spec!r}) in any of "
               f"{[str(d) for d in kernel_dirs()]}")


def each_language():
    return pytest.mark.parametrize(
        "lang", [pytest.param(l, id=l.name, marks=installed(l)) for l in LANGS])


def need(name):
    lang = BY_NAME[name]
    if lang.kernel_json is None:
        pytest.skip(f"no kernelspec for {name} installed")
    return lang


# ---------------------------------------------------- shared contexts

class Contexts:
    """One context per language on the shared daemon, each in its own
    directory (with a space in its name), made on first use."""

    def __init__(self, daemon, tmp_factory):
        self.daemon = daemon
        self.tmp = tmp_factory
        self.by_lang = {}
        self.extra = []

    def _make(self, lang):
        cwd = os.path.realpath(self.tmp.mktemp(f"{lang.name} cwd"))
        ctx = self.daemon.client().create_context({"language": lang.name,
                                                   "cwd": cwd})
        assert ctx == {"id": ctx["id"], "language": lang.name, "cwd": cwd}, ctx
        return ctx

    def get(self, lang):
        if lang.name not in self.by_lang:
            self.by_lang[lang.name] = [self._make(lang), True]
        entry = self.by_lang[lang.name]
        entry[1] = True
        return entry[0]

    def unused(self, lang):
        """A context that has never run anything: the shared one if that is
        still true (the normal order of this module), else a new one."""
        if lang.name not in self.by_lang:
            self.by_lang[lang.name] = [self._make(lang), False]
        entry = self.by_lang[lang.name]
        if not entry[1]:
            entry[1] = True
            return entry[0]
        ctx = self._make(lang)
        self.extra.append(ctx)
        return ctx

    def close(self):
        c = self.daemon.client()
        for ctx in [e[0] for e in self.by_lang.values()] + self.extra:
            try:
                c.delete(ctx["id"])
            except OSError:
                pass


@pytest.fixture(scope="module")
def contexts(daemon, tmp_path_factory):
    ctxs = Contexts(daemon, tmp_path_factory)
    yield ctxs
    ctxs.close()


# ---------------------------------------------------------- helpers

def ok(lines):
    """The lines, after checking that they hold no error."""
    err = error(lines)
    assert err is None, f"unexpected error: {err}"
    return lines


def results(lines):
    return of_type(lines, "result")


def run_ok(client, code, ctx, timeout=60, **fields):
    return ok(client.execute(code, context_id=ctx["id"], timeout=timeout, **fields))


def printed(client, code, ctx, timeout=60, **fields):
    return stdout(run_ok(client, code, ctx, timeout=timeout, **fields))


def assert_restarting(lines):
    """The stream of a cell whose kernel died: the error, then the end
    (a bash kernel may echo "exit" to stderr before it goes)."""
    body = [l for l in content(lines)
            if l["type"] not in ("number_of_executions", "stdout", "stderr")]
    assert len(body) == 2, lines
    assert {k: body[0].get(k) for k in RESTARTING} == RESTARTING, lines
    assert body[1] == {"type": "end_of_execution"}, lines


# ---------------------------------------- the same checks, every language
# test_global_env_vars comes first: it wants the context's first execution.

@each_language()
def test_global_env_vars(client, contexts, envd, lang):
    """Sandbox-wide variables from envd on the first execution; a
    per-execution value overrides one and is restored to it afterwards."""
    envd.envs = {"E2BCI_LG": f"global {lang.name}", "E2BCI_LG2": "second"}
    ctx = contexts.unused(lang)
    assert printed(client, lang.env("E2BCI_LG"), ctx) == f"global {lang.name}\n"
    assert printed(client, lang.env("E2BCI_LG2"), ctx) == "second\n"
    assert printed(client, lang.env("E2BCI_LG"), ctx,
                   env_vars={"E2BCI_LG": "override"}) == "override\n"
    assert printed(client, lang.env("E2BCI_LG"), ctx) == f"global {lang.name}\n"


@each_language()
def test_cwd_state_and_errors(client, contexts, lang):
    ctx = contexts.get(lang)
    assert printed(client, lang.cwd, ctx) == ctx["cwd"] + "\n"
    run_ok(client, lang.assign("langState", 41), ctx)
    assert printed(client, lang.show("langState"), ctx) == "41\n"
    lines = client.execute(lang.fail, context_id=ctx["id"])
    assert len(of_type(lines, "error")) == 1, lines
    err = error(lines)
    if lang.error_name:
        assert err["name"] == lang.error_name, err
    if lang.name == "bash":
        assert re.search(r"\b1\b", err["value"]), err  # the exit status
        assert stderr(lines) == "lang boom\n", lines
    else:
        assert "lang boom" in err["value"] + err["traceback"], err
    assert not results(lines), lines
    # The context goes on after an error, state intact.
    assert printed(client, lang.show("langState"), ctx) == "41\n"


@each_language()
def test_env_vars_per_execution(client, contexts, lang):
    ctx = contexts.get(lang)
    assert printed(client, lang.env("E2BCI_LV"), ctx,
                   env_vars={"E2BCI_LV": ENV_VALUE, "E2BCI_LV2": "two"}) \
        == ENV_VALUE + "\n"
    assert printed(client, lang.env("E2BCI_LV2"), ctx,
                   env_vars={"E2BCI_LV2": "again"}) == "again\n"
    # Restored: unset again for the next execution.
    assert printed(client, lang.env("E2BCI_LV"), ctx) == "<unset>\n"
    assert printed(client, lang.env("E2BCI_LV2"), ctx) == "<unset>\n"


@each_language()
def test_disconnect_interrupts_and_keeps_state(client, contexts, lang):
    ctx = contexts.get(lang)
    run_ok(client, lang.assign("keptState", 7), ctx)
    s = client.stream(lang.block, context_id=ctx["id"])
    try:
        assert s.status == 200
        s.read_until(is_ready, timeout=60)
    finally:
        s.close()
    # The shared daemon restarts a kernel that is still busy 2 s after the
    # interrupt: state kept means the cell itself was interrupted.
    assert printed(client, lang.show("keptState"), ctx, timeout=20) == "7\n"


@each_language()
def test_kernel_death_restarts_the_context(client, contexts, lang):
    ctx = contexts.get(lang)
    run_ok(client, lang.assign("doomedState", 3), ctx)
    assert_restarting(client.execute(lang.die, context_id=ctx["id"], timeout=60))
    # Same context, new kernel: usable at once, same cwd, state gone.
    assert printed(client, lang.cwd, ctx) == ctx["cwd"] + "\n"
    assert [c for c in client.contexts() if c["id"] == ctx["id"]] == [ctx]
    lines = client.execute(lang.show("doomedState"), context_id=ctx["id"])
    assert error(lines) is not None, lines
    assert "3" not in stdout(lines), lines


@each_language()
def test_restart_keeps_cwd_and_refetches_globals(client, contexts, envd, lang):
    ctx = contexts.get(lang)
    run_ok(client, lang.assign("restartState", 5), ctx)
    envd.envs = {"E2BCI_LR": f"after restart {lang.name}"}
    r = client.restart(ctx["id"])
    assert r.status == 200, r
    assert r.json() is None
    lines = client.execute(lang.show("restartState"), context_id=ctx["id"])
    assert error(lines) is not None, lines
    assert "5" not in stdout(lines), lines
    assert printed(client, lang.cwd, ctx) == ctx["cwd"] + "\n"
    assert printed(client, lang.env("E2BCI_LR"), ctx) == \
        f"after restart {lang.name}\n"
    assert [c for c in client.contexts() if c["id"] == ctx["id"]] == [ctx]


# ------------------------------------------------------------ JavaScript

def js_run(client, code, timeout=60):
    return ok(client.execute(code, language="js", timeout=timeout))


def main_result(lines):
    mains = [r for r in results(lines) if r["is_main_result"]]
    assert len(mains) == 1, lines
    return mains[0]


def test_javascript_output_and_results(client, daemon):
    need("javascript")
    lines = js_run(client, 'console.log("Hello World!")')
    assert stdout(lines) == "Hello World!\n" and not results(lines), lines
    # The main result is the last expression, strings unquoted.
    assert main_result(js_run(client, "process.cwd()"))["text"] == daemon.cwd
    assert main_result(js_run(client, "'single'"))["text"] == "single"
    assert main_result(js_run(client, "6 * 7"))["text"] == "42"
    # Objects as Node's inspector shows them.
    r = main_result(js_run(client, "({a: 1, b: [1, 2], s: 'x', n: null})"))
    assert r["text"] == "{ a: 1, b: [ 1, 2 ], s: 'x', n: null }", r
    r = main_result(js_run(client, "new Map([[1, {a: 'x'}]])"))
    assert r["text"] == "Map(1) { 1 => { a: 'x' } }", r
    # No result for a statement.
    assert not results(js_run(client, "let jsNoResult = 1"))


def test_javascript_await_and_imports(client):
    need("javascript")
    lines = js_run(client, "\n    await Promise.resolve('Hello World!')\n    ")
    assert main_result(lines)["text"] == "Hello World!"
    lines = js_run(client, "const jsDelayed = await new Promise("
                           "(r) => setTimeout(() => r(21), 10))\njsDelayed * 2")
    assert main_result(lines)["text"] == "42"
    lines = js_run(client, "\n    import { readFileSync } from 'fs'\n"
                           "    console.log(typeof readFileSync)\n    ")
    assert stdout(lines) == "function\n", lines
    # The import binding stays, like any other top-level declaration.
    assert main_result(js_run(client, "typeof readFileSync"))["text"] == "function"
    lines = js_run(client, "import * as jsPath from 'node:path'\n"
                           "const jsOs = require('os')\n"
                           "jsPath.join('a', 'b') + ' ' + typeof jsOs.cpus")
    assert main_result(lines)["text"] == "a/b function"


def test_javascript_declarations_persist(client):
    need("javascript")
    js_run(client, "let jsLet = 1\nconst jsConst = 2\nvar jsVar = 3\n"
                   "function jsFn(x) { return x * 10 }\n"
                   "class JsClass { constructor() { this.v = 100 } }")
    # "js" and "javascript" are the same default context.
    lines = ok(client.execute("jsLet + jsConst + jsVar + jsFn(4) + new JsClass().v",
                              language="javascript"))
    assert main_result(lines)["text"] == "146"
    js_run(client, "jsLet += 1")
    assert main_result(js_run(client, "jsLet"))["text"] == "2"


def test_javascript_errors(client):
    need("javascript")
    lines = client.execute("function jsThrower() { throw new RangeError('bad range') }\n"
                           "console.log('before')\njsThrower()", language="js")
    assert stdout(lines) == "before\n"
    errs = of_type(lines, "error")
    assert len(errs) == 1, lines
    err = errs[0]
    assert (err["name"], err["value"]) == ("RangeError", "bad range"), err
    assert err["traceback"].startswith("RangeError: bad range\n"), err
    assert "jsThrower" in err["traceback"], err
    assert not results(lines), lines
    err = error(client.execute("jsUndefinedName + 1", language="js"))
    assert err["name"] == "ReferenceError", err
    assert "jsUndefinedName" in err["value"], err
    err = error(client.execute("let = = 1", language="js"))
    assert err["name"] == "SyntaxError", err
    # Throwing something that is not an Error is still one error line.
    lines = client.execute("throw 'plain string'", language="js")
    assert len(of_type(lines, "error")) == 1, lines
    assert "plain string" in error(lines)["value"] + error(lines)["traceback"]
    assert main_result(js_run(client, "1 + 1"))["text"] == "2"


def test_javascript_busy_loop_is_interrupted(client, new_context, tmp_path):
    """The disconnect test above, on a context of its own, with a busy loop
    in a function and a microtask-free cell, and state in let/const/class."""
    need("javascript")
    ctx = new_context({"language": "js", "cwd": str(tmp_path)})
    assert ctx["language"] == "javascript"
    run_ok(client, "let jsKept = 'kept'\nclass JsKept { get v() { return 9 } }", ctx)
    s = client.stream("function spin() { for (;;) {} }\nconsole.log('ready')\nspin()",
                      context_id=ctx["id"])
    try:
        s.read_until(is_ready, timeout=30)
    finally:
        s.close()
    lines = run_ok(client, "jsKept + new JsKept().v", ctx, timeout=20)
    assert main_result(lines)["text"] == "kept9"


def test_javascript_busy_leftover_timer_is_interrupted(client, new_context, tmp_path):
    """A cell ends but leaves a timer that spins: the next execution waits
    behind it (keepalives). The client gives up; the interrupt stops the
    leftover callback instead of the kernel being restarted, so state
    survives."""
    need("javascript")
    ctx = new_context({"language": "js", "cwd": str(tmp_path)})
    run_ok(client, "let leftoverKept = 'kept'", ctx)
    run_ok(client, "setTimeout(() => { while (true) {} }, 0); 1", ctx)
    time.sleep(0.3)  # the callback is spinning by now
    s = client.stream("'queued'", context_id=ctx["id"])
    try:
        assert s.status == 200
        assert s.next_line(timeout=30)["type"] == "number_of_executions"
    finally:
        s.close()
    lines = run_ok(client, "leftoverKept", ctx, timeout=30)
    assert main_result(lines)["text"] == "kept"


# ------------------------------------------------------------ TypeScript

def test_typescript(client):
    need("typescript")
    lines = ok(client.execute('const message: string = "Hello World!"; console.log(message)',
                              language="ts"))
    assert stdout(lines) == "Hello World!\n", lines
    code = ("interface TsPoint { x: number; y?: string }\n"
            "type TsPair<A, B> = [A, B]\n"
            "function tsId<T>(v: T): T { return v }\n"
            "enum TsColor { Red, Green = 5 }\n"
            "class TsBox<T> { constructor(private readonly v: T) {} get(): T { return this.v } }\n"
            "const tsP: TsPoint = { x: tsId<number>(3) }\n"
            "const tsPair: TsPair<string, number> = ['a', 1]\n"
            "tsP.x + TsColor.Green + new TsBox<number>(10).get() + (tsPair[1] as number)")
    lines = ok(client.execute(code, language="typescript"))
    assert main_result(lines)["text"] == "19"
    # The declarations persist, in the "ts" default context...
    lines = ok(client.execute("TsColor[TsColor.Green] + ' ' + tsId<string>(typeof message)",
                              language="ts"))
    assert main_result(lines)["text"] == "Green string"
    lines = ok(client.execute("await Promise.resolve<number>(5)", language="ts"))
    assert main_result(lines)["text"] == "5"
    # ...which is not JavaScript's.
    lines = ok(client.execute("typeof message + ' ' + typeof TsColor", language="js"))
    assert main_result(lines)["text"] == "undefined undefined"
    defaults = [c for c in client.contexts()
                if c["language"] in ("javascript", "typescript")]
    langs = sorted(c["language"] for c in defaults)
    assert "javascript" in langs and "typescript" in langs, defaults
    ids = {c["id"] for c in defaults}
    assert len(ids) == len(defaults), defaults
    err = error(client.execute("throw new Error('ts boom')", language="ts"))
    assert (err["name"], err["value"]) == ("Error", "ts boom"), err


# --------------------------------------------------------------------- R

def test_r_results_and_state(client, contexts):
    ctx = contexts.get(need("r"))
    lines = run_ok(client, "1+1", ctx)
    res = results(lines)
    # IRkernel answers with display_data, hence not the main result.
    assert len(res) == 1 and res[0]["text"] == "[1] 2", lines
    run_ok(client, "r_f <- function(x) x * 2; r_v <- 21", ctx)
    lines = run_ok(client, 'print("hi"); r_f(r_v)', ctx)
    assert stdout(lines) == '[1] "hi"\n', lines
    assert [r["text"] for r in results(lines)] == ["[1] 42"], lines
    lines = client.execute('stop("r boom")', context_id=ctx["id"])
    assert len(of_type(lines, "error")) == 1, lines
    assert "r boom" in error(lines)["value"], lines
    lines = client.execute("r_undefined_thing", context_id=ctx["id"])
    assert "r_undefined_thing" in error(lines)["value"], lines
    assert [r["text"] for r in results(run_ok(client, "r_v", ctx))] == ["[1] 21"]
    lines = run_ok(client, "getwd()", ctx)
    assert [r["text"] for r in results(lines)] == [f'[1] "{ctx["cwd"]}"'], lines


def test_r_quit_restarts_the_context(client, contexts):
    """quit() in R ends the session. IRkernel does not exit there: it
    answers the execute_request with an "ask_exit" payload (keepkernel
    false) and leaves the exit to the frontend, which is the daemon."""
    ctx = contexts.get(need("r"))
    run_ok(client, "r_quit_state <- 1", ctx)
    assert_restarting(client.execute("quit(status = 1)", context_id=ctx["id"]))
    lines = client.execute("r_quit_state", context_id=ctx["id"])
    assert error(lines) is not None, lines
    assert printed(client, BY_NAME["r"].cwd, ctx) == ctx["cwd"] + "\n"


# ------------------------------------------------------------------ Bash

def test_bash_shell_state_and_streams(client, new_context, tmp_path):
    need("bash")
    (tmp_path / "sub dir").mkdir()
    ctx = new_context({"language": "bash", "cwd": str(tmp_path)})
    assert printed(client, "echo Hello; pwd", ctx) == f"Hello\n{tmp_path}\n"
    run_ok(client, "export BASH_EXPORTED=exp; bash_plain=plain; cd 'sub dir'", ctx)
    assert printed(client, 'pwd; echo "$BASH_EXPORTED $bash_plain"; '
                           "bash -c 'echo \"child:$BASH_EXPORTED:${bash_plain-}\"'", ctx) \
        == f"{tmp_path}/sub dir\nexp plain\nchild:exp:\n"
    # Functions and aliases-free helpers persist as well.
    run_ok(client, 'bash_fn() { echo "fn:$1"; }', ctx)
    assert printed(client, "bash_fn 7", ctx) == "fn:7\n"
    # stdout and stderr stay apart.
    lines = run_ok(client, "echo out; echo err >&2; echo out2", ctx)
    assert stdout(lines) == "out\nout2\n" and stderr(lines) == "err\n", lines
    # Only the last command's status counts.
    run_ok(client, "false; true", ctx)
    lines = client.execute("true; ls /e2bci-nonexistent", context_id=ctx["id"])
    assert len(of_type(lines, "error")) == 1, lines
    assert re.search(r"\b2\b", error(lines)["value"]), lines  # ls: status 2
    assert "e2bci-nonexistent" in stderr(lines), lines
    lines = client.execute("(exit 3)", context_id=ctx["id"])
    assert re.search(r"\b3\b", error(lines)["value"]), lines
    # The shell is still there, where it was.
    assert printed(client, "pwd", ctx) == f"{tmp_path}/sub dir\n"


# ------------------------------------------------------------------ Java

def java_run(client, code, ctx, timeout=60):
    return run_ok(client, code, ctx, timeout=timeout)


def test_java_snippets(client, contexts):
    java = need("java")
    ctx = contexts.get(java)
    lines = java_run(client, 'System.getProperty("user.dir")', ctx)
    assert main_result(lines)["text"] == ctx["cwd"], lines
    assert main_result(java_run(client, "1 + 2", ctx))["text"] == "3"
    # Statements (no result), imports, methods, classes: all persist.
    lines = java_run(client, "import java.util.*;\nimport java.util.stream.*;\n"
                             "List<Integer> javaXs = new ArrayList<>(List.of(3, 1, 2));\n"
                             "int javaCount = 0;\n"
                             "for (int i = 0; i < 5; i++) { javaCount++; }", ctx)
    assert not results(lines), lines
    java_run(client, "int javaTwice(int v) { return 2 * v; }", ctx)
    java_run(client, "class JavaBox { private final int v; JavaBox(int v) { this.v = v; } "
                     "int get() { return v; } }", ctx)
    lines = java_run(client, "Collections.sort(javaXs);\n"
                             'System.out.println("sorted " + javaXs);\n'
                             "javaTwice(new JavaBox(javaCount).get()) + javaXs.stream()"
                             ".mapToInt(Integer::intValue).sum()", ctx)
    assert stdout(lines) == "sorted [1, 2, 3]\n", lines
    assert main_result(lines)["text"] == "16", lines
    lines = java_run(client, '"a" + "b"', ctx)
    assert main_result(lines)["text"] == "ab", lines
    # Exceptions and compile errors are error lines; the state survives them.
    lines = client.execute('Integer.parseInt("nope")', context_id=ctx["id"])
    assert len(of_type(lines, "error")) == 1, lines
    err = error(lines)
    assert err["name"] == "NumberFormatException", err
    assert "nope" in err["value"] and "NumberFormatException" in err["traceback"], err
    lines = client.execute("javaUndefined + 1", context_id=ctx["id"])
    assert len(of_type(lines, "error")) == 1, lines
    assert "javaUndefined" in error(lines)["value"] + error(lines)["traceback"], lines
    assert main_result(java_run(client, "javaCount", ctx))["text"] == "5"


# ------------------------------------------- any installed kernelspec

def test_any_installed_kernelspec_by_name(make_daemon, tmp_path):
    if kernelspec("python3", "python") is None:
        pytest.skip("no python3 kernelspec: ipykernel is not installed")
    # The python kernel under another name, self-contained (no
    # {resource_dir} files), marked by an env entry.
    write_kernelspec(tmp_path / "kernels", "myecho", argv=IPYKERNEL_ARGV,
                     display_name="My Echo", language="python",
                     interrupt_mode="signal",
                     env={"E2BCI_MYECHO": "this is myecho"})
    # A kernelspec of a name the daemon has never heard of, first on the
    # path, besides our own kernels.
    daemon = make_daemon(args=["--kernel-path", f"{tmp_path / 'kernels'}:{PROJECT_KERNELS}"])
    daemon.wait_healthy()
    c = daemon.client()
    lines = ok(c.execute("import os; print(os.environ['E2BCI_MYECHO']); 1+1",
                         language="myecho"))
    assert stdout(lines) == "this is myecho\n", lines
    assert main_result(lines)["text"] == "2"
    ctx = c.create_context({"language": "myecho"})
    assert ctx["language"] == "myecho", ctx
    assert ctx["cwd"] == daemon.cwd, ctx
    lines = ok(c.execute("import os; os.environ.get('E2BCI_MYECHO')",
                         context_id=ctx["id"]))
    assert main_result(lines)["text"] == "this is myecho"
    # python is still python3, not the copy that claims the same language.
    lines = ok(c.execute("import os; os.environ.get('E2BCI_MYECHO', 'plain')"))
    assert main_result(lines)["text"] == "plain"
    # And our own kernels are still found after the added directory.
    if BY_NAME["javascript"].kernel_json is not None:
        assert main_result(ok(c.execute("1 + 1", language="js")))["text"] == "2"
    assert c.delete(ctx["id"]).status == 200
