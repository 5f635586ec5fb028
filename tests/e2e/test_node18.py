"""JavaScript and TypeScript behind the real daemon on Node.js 18.20.4,
the node of Debian 12 and so of the E2B template image (issue 10: every
import failed there, since the runner used a vm option of Node >= 20.12).

The daemon gets kernelspecs of its own, ahead of the repository's on
--kernel-path, that are the repository's javascript and typescript ones with
/usr/bin/node replaced by tests/kernels/node18's binary (installed by
kernels/node/install.sh). Node 18 is skipped only off x86_64. The module's
daemon overrides conftest's `daemon`, so `client` talks to it.
"""

import json
import sys
from pathlib import Path

import pytest

import harness
from harness import error, main_text, stderr, stdout

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "kernels"))
import nodes  # noqa: E402


def kernelspecs(into, node):
    """Copies of the javascript and typescript kernelspecs that run node."""
    for lang in ("javascript", "typescript"):
        spec = json.loads((ROOT / "kernels" / lang / "kernel.json").read_text())
        argv = []
        for a in spec["argv"]:
            a = a.replace("{resource_dir}/..", str(ROOT / "kernels"))
            argv.append(node if a == "/usr/bin/node" else a)
        assert node in argv, spec["argv"]
        spec["argv"] = argv
        (into / lang).mkdir(parents=True)
        (into / lang / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def daemon(e2bci_bin, envd_server, tmp_path_factory):
    node = nodes.node18()
    specs = tmp_path_factory.mktemp("node18-kernels")
    kernelspecs(specs, node)
    with harness.serving(harness.Daemon(
            e2bci_bin, tmp_path_factory.mktemp("node18"),
            envd_url=envd_server.url, name="node18 daemon",
            args=["--kernel-path", f"{specs}:{ROOT / 'kernels'}",
                  "--default-languages", "python,javascript"])) as d:
        # A package and modules in the default cwd, as a user would have.
        home = Path(d.cwd)
        pkg = home / "node_modules" / "esmonly"
        pkg.mkdir(parents=True)
        (pkg / "package.json").write_text(
            '{"name":"esmonly","type":"module","exports":{"import":"./index.js"}}')
        (pkg / "index.js").write_text('export const hello = "from esm"; export default 42;')
        (home / "local.mjs").write_text("export const answer = 41 + 1;")
        (home / "data.json").write_text('{"k": [1, 2]}')
        yield d


def run(client, code, language="js"):
    lines = client.execute(code, language=language)
    err = error(lines)
    assert err is None, f"{err['name']}: {err['value']}\n{err['traceback']}"
    return lines


def test_runs_on_node18(client):
    assert main_text(run(client, "process.version")) == "v" + nodes.NODE18_VERSION


def test_static_and_dynamic_imports(client):
    lines = run(client, "import { readFileSync } from 'fs'\n"
                     "import * as p from 'node:path'\n"
                     "import { answer } from './local.mjs'\n"
                     "import esm, { hello } from 'esmonly'\n"
                     "import data from './data.json' with { type: 'json' }\n"
                     "console.log(typeof readFileSync, p.join('a', 'b'), answer, esm, hello, data.k)")
    assert stdout(lines) == "function a/b 42 42 from esm [ 1, 2 ]\n", lines
    assert stderr(lines) == "", lines
    assert main_text(run(client, "(await import('esmonly')).hello")) == "from esm"
    assert main_text(run(client, "const { sep } = await import('node:path'); sep")) == "/"
    # The README's example: top-level await and an import in one cell.
    lines = run(client, "import { setTimeout as sleep } from 'node:timers/promises'\n"
                     "await sleep(10)\n'slept'")
    assert main_text(lines) == "slept"


def test_missing_module_is_an_error(client):
    lines = client.execute("import x from 'no-such-package-e2bci'", language="js")
    err = error(lines)
    assert err is not None and "Cannot find package 'no-such-package-e2bci'" in err["value"], lines
    assert main_text(run(client, "'still alive'")) == "still alive"


def test_typescript_imports(client):
    lines = run(client, "import { basename } from 'node:path'\n"
                     "import type { Nope } from 'does-not-exist'\n"
                     "const n: number = (await import('esmonly')).default\n"
                     "basename('/x/y.ts') + ' ' + n", language="typescript")
    assert main_text(lines) == "y.ts 42"
