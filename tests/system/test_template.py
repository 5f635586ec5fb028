"""template/template.mjs, rendered offline with E2B's own Template SDK.

Node imports the template, and the SDK turns it into a Dockerfile
(Template.toDockerfile) and into the build request E2B would receive
(Template.toJSON, which also carries the start and ready commands). The
test reads the steps back: Debian 12, the install script without the test
toolchain, `make install` into a prefix E2B leaves alone, the build
packages removed again, the unit enabled, the start command and the ready
check on :49999/health. (`make vm-test` builds and boots this image.)
The SDK's glob over the file context is replayed with the template's
ignore patterns to check what would be uploaded.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template"

RENDER = r"""
import { Template } from 'e2b'
import { glob } from 'glob'
import { makeTemplate, IGNORE, ROOT } from './template.mjs'

const t = makeTemplate()
const files = await glob('**/*', { cwd: ROOT, ignore: IGNORE, dot: true,
                                   nodir: true })
process.stdout.write(JSON.stringify({
  dockerfile: Template.toDockerfile(t),
  request: JSON.parse(await Template.toJSON(t, false)),
  files,
}))
"""


@pytest.fixture(scope="module")
def rendered():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    if not (TEMPLATE / "node_modules" / "e2b").is_dir():
        # The SDK version is pinned by template/package-lock.json.
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                           cwd=TEMPLATE, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([node, "--input-type=module", "-e", RENDER],
                       cwd=TEMPLATE, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def steps(rendered):
    return [(s["type"], s["args"]) for s in rendered["request"]["steps"]]


def index_of(rendered, kind, pattern):
    for i, (t, args) in enumerate(steps(rendered)):
        if t == kind and re.search(pattern, " ".join(args)):
            return i
    pytest.fail(f"no {kind} step matching {pattern!r} in {steps(rendered)}")


def user_at(rendered, i):
    user = None
    for t, args in steps(rendered)[:i]:
        if t == "USER":
            user = args[0]
    return user


def test_base_image_is_debian_12(rendered):
    assert rendered["request"]["fromImage"] == "debian:bookworm"
    assert rendered["dockerfile"].splitlines()[0] == "FROM debian:bookworm"


def test_build_steps_in_order_as_root(rendered):
    deps = index_of(rendered, "RUN", r"/template/install-deps\.sh\b")
    src = index_of(rendered, "COPY", r"^\. ")
    inst = index_of(rendered, "RUN", r"\bmake\b.*\binstall\b")
    enable = index_of(rendered, "RUN", r"systemctl enable e2b-ci\.service")
    assert deps < src < inst < enable, steps(rendered)
    for i in (deps, inst, enable):
        assert user_at(rendered, i) == "root", steps(rendered)[i]
    # The script is uploaded before it runs, and it is the project's own.
    copy_deps = index_of(rendered, "COPY", r"^template/install-deps\.sh ")
    assert copy_deps < deps
    dest = steps(rendered)[copy_deps][1][1]
    assert " ".join(steps(rendered)[deps][1]).startswith(dest)
    # make install builds the sources that were copied.
    src_dir = steps(rendered)[src][1][1].rstrip("/")
    make = " ".join(steps(rendered)[inst][1])
    assert f"-C {src_dir} " in make, make


def install_prefix(rendered):
    make = " ".join(steps(rendered)[index_of(rendered, "RUN",
                                             r"\bmake\b.*\binstall\b")][1])
    m = re.search(r"\bPREFIX=(\S+)", make)
    return m[1] if m else "/usr/local"   # the Makefile's default


def test_install_prefix_is_not_one_e2b_makes_world_writable(rendered):
    """E2B runs `chmod -R 777 /usr/local` after a template's steps: the
    binary the unit runs as root, the kernels and the unit itself must be
    installed elsewhere, with the unit where systemd finds it."""
    prefix = install_prefix(rendered)
    assert prefix != "/usr/local" and \
        not prefix.startswith("/usr/local/"), prefix
    r = subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"PREFIX={prefix}",
         "--eval=print-unitdir: ; @echo $(UNITDIR)", "print-unitdir"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    unitdir = r.stdout.strip()
    assert unitdir in ("/usr/lib/systemd/system", "/etc/systemd/system"), \
        unitdir
    # install.mk writes the prefix into the unit's ExecStart.
    unit = (ROOT / "e2b-ci.service").read_text()
    assert "\nExecStart=/usr/local/bin/e2b-ci\n" in unit
    assert "s|/usr/local/|$(PREFIX)/|g" in (ROOT / "mk/install.mk").read_text()


def test_image_holds_no_test_toolchain_and_drops_build_packages(rendered):
    """install-deps.sh runs --no-tests (no clang, valgrind, pytest), and
    once `make install` is done --remove-build-deps takes the compilers,
    -dev packages away again (npm stays, for users); the build tree goes
    too."""
    deps = index_of(rendered, "RUN", r"/template/install-deps\.sh\b")
    assert steps(rendered)[deps][1][0].split()[1:] == ["--no-tests"], \
        steps(rendered)[deps]
    inst = index_of(rendered, "RUN", r"\bmake\b.*\binstall\b")
    clean = index_of(rendered, "RUN", r"\bmake -C \S+ clean\b")
    remove = index_of(rendered, "RUN",
                      r"/template/install-deps\.sh --remove-build-deps$")
    assert deps < inst <= clean and inst < remove, steps(rendered)
    assert user_at(rendered, remove) == "root"
    # Nothing after the removal needs a build package (make, cc).
    for t, args in steps(rendered)[remove + 1:]:
        assert t != "RUN" or not re.search(r"\b(make|cc|gcc|npm)\b",
                                           args[0]), args


def test_image_gets_what_the_unit_and_ready_check_need(rendered):
    """systemctl (for `enable`), curl (ready check, probe) and sudo (start
    command) are run-time packages of install-deps.sh, which stay in the
    image when the build packages go."""
    text = (ROOT / "template/install-deps.sh").read_text()
    runtime = re.search(r'^RUNTIME="([^"]*)"', text, re.M)[1].split()
    missing = {"systemd", "curl", "sudo"} - set(runtime)
    assert not missing, f"install-deps.sh's RUNTIME lacks {sorted(missing)}"


def test_start_command_and_ready_check(rendered):
    req = rendered["request"]
    assert re.fullmatch(r"(sudo )?systemctl start e2b-ci(\.service)?",
                        req["startCmd"]), req["startCmd"]
    assert "http://localhost:49999/health" in req["readyCmd"]
    assert re.search(r"\b200\b", req["readyCmd"]), req["readyCmd"]
    assert rendered["dockerfile"].rstrip().endswith(
        f"ENTRYPOINT {req['startCmd']}")
    # Sandboxes run as E2B's default user, who needs sudo to start a unit.
    last_user = user_at(rendered, len(steps(rendered)))
    assert last_user == "user"
    assert req["startCmd"].startswith("sudo ")


def test_uploaded_files(rendered):
    files = set(rendered["files"])
    for needed in ("Makefile", "e2b-ci.service", "server/main.c",
                   "mk/install.mk", "template/install-deps.sh",
                   "template/e2b-ci.default", "template/debug-probe.sh"):
        assert needed in files, needed
    junk = [f for f in files if re.match(r"(\.git|build|build-asan)/", f)
            or "node_modules/" in f or "__pycache__/" in f]
    assert not junk, junk[:10]
