"""template/install-deps.sh: which packages each mode asks apt for.

The script runs in a copy of the tree whose kernels/ holds one stub
install.sh (it records its arguments), with a PATH of stubs: dpkg-query
answers from a list of "installed" packages, apt-get and apt-mark log what
they are asked and apt-get install adds to that list, id says root, and
node is there or not. The package sets are read from the script itself.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "template" / "install-deps.sh"


def package_set(name):
    text = SCRIPT.read_text()
    m = re.search(rf'^{name}="([^"]*)"', text, re.M)
    assert m, f"no {name}= in {SCRIPT}"
    return m[1].split()


STUBS = {
    "dpkg-query": """#!/bin/sh
# dpkg-query -W -f=... PKG
for p; do :; done
grep -qx "$p" "$STUB/installed" && { printf 'install ok installed'; exit 0; }
exit 1
""",
    "apt-get": """#!/bin/sh
echo "apt-get $*" >>"$STUB/log"
if [ "$1" = install ]; then
    for p; do case $p in -*|install) ;; *) echo "$p" >>"$STUB/installed";; esac; done
fi
""",
    "apt-mark": """#!/bin/sh
echo "apt-mark $*" >>"$STUB/log"
""",
    "id": """#!/bin/sh
echo 0
""",
    "node": """#!/bin/sh
exit 0
""",
}
# What the script needs from the system besides the stubs; node must not
# come along (it lives in /usr/bin here).
TOOLS = ["sh", "cat", "mkdir", "rm", "rmdir", "dirname", "grep", "echo",
         "printf"]


@pytest.fixture
def env(tmp_path):
    tree = tmp_path / "tree"
    (tree / "template").mkdir(parents=True)
    shutil.copy2(SCRIPT, tree / "template" / "install-deps.sh")
    k = tree / "kernels" / "stub"
    k.mkdir(parents=True)
    (k / "install.sh").write_text(
        '#!/bin/sh\necho "kernel-install [$*]" >>"$STUB/log"\n')
    (k / "install.sh").chmod(0o755)
    stub = tmp_path / "stub"
    (stub / "bin").mkdir(parents=True)
    for name, text in STUBS.items():
        (stub / "bin" / name).write_text(text)
        (stub / "bin" / name).chmod(0o755)
    (stub / "sys").mkdir()
    for t in TOOLS:
        path = shutil.which(t)
        assert path, t
        (stub / "sys" / t).symlink_to(path)
    (stub / "installed").write_text("")
    (stub / "log").write_text("")
    return {"tree": tree, "stub": stub}


def run(env, *args, node=False, installed=()):
    stub = env["stub"]
    with open(stub / "installed", "a") as f:
        f.writelines(p + "\n" for p in installed)
    if not node:
        (stub / "bin" / "node").unlink(missing_ok=True)
    r = subprocess.run(
        ["/bin/sh", str(env["tree"] / "template" / "install-deps.sh"), *args],
        env={"PATH": f"{stub}/bin:{stub}/sys", "STUB": str(stub),
             "E2BCI_BUILD_DEPS_RECORD": str(stub / "record" / "build-deps")},
        capture_output=True, text=True, timeout=60)
    log = (stub / "log").read_text().splitlines()
    (stub / "log").write_text("")
    return r, log


def installs(log):
    """The packages of every `apt-get install` in the log."""
    return [p for l in log if l.startswith("apt-get install ")
            for p in l.split()[2:] if not p.startswith("-")]


def test_runtime_only_without_node_installs_nodejs(env):
    """The kernels run on node: --runtime-only must install it where it is
    missing (it used to leave it out, then kernels/node/install.sh failed)."""
    r, log = run(env, "--runtime-only", installed=package_set("RUNTIME"))
    assert r.returncode == 0, r.stderr
    assert set(installs(log)) == {"nodejs", "npm"}, log
    assert "kernel-install [--runtime-only]" in log


def test_runtime_only_asks_for_no_build_or_test_package(env):
    r, log = run(env, "--runtime-only", node=True)
    assert r.returncode == 0, r.stderr
    assert set(installs(log)) == set(package_set("RUNTIME")), log


def test_default_installs_everything_and_records_nothing(env):
    r, log = run(env, node=True)
    assert r.returncode == 0, r.stderr
    want = package_set("RUNTIME") + package_set("BUILD") + package_set("TEST")
    assert set(installs(log)) == set(want), log
    assert "kernel-install []" in log
    assert not (env["stub"] / "record").exists()


def test_no_tests_then_remove_build_deps_takes_exactly_what_it_added(env):
    build = package_set("BUILD")
    # One build package was there before: it is the machine's, not ours.
    kept = build[0]
    r, log = run(env, "--no-tests", installed=package_set("RUNTIME") + [kept])
    assert r.returncode == 0, r.stderr
    got = installs(log)
    assert set(got) == (set(build) - {kept}) | {"nodejs", "npm"}, log
    assert not set(got) & set(package_set("TEST")), got
    record = (env["stub"] / "record" / "build-deps").read_text().split()
    assert sorted(record) == sorted(set(build) - {kept})  # npm stays for users

    r, log = run(env, "--remove-build-deps")
    assert r.returncode == 0, r.stderr
    marked = [l for l in log if l.startswith("apt-mark auto ")]
    assert len(marked) == 1 and sorted(marked[0].split()[2:]) == \
        sorted(record), log
    assert any(l.startswith("apt-get autoremove") and "--purge" in l
               for l in log), log
    assert "apt-get clean" in log
    assert not installs(log)
    assert not (env["stub"] / "record").exists()


def test_remove_build_deps_without_a_record_removes_nothing(env):
    r, log = run(env, "--remove-build-deps", node=True)
    assert r.returncode == 0, r.stderr
    assert log == [], log
    assert "nothing to remove" in r.stderr


def test_unknown_option_is_refused(env):
    r, log = run(env, "--bogus", node=True)
    assert r.returncode == 2 and "usage" in r.stderr
    assert log == []

