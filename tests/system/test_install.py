"""`make install` and `make uninstall` (mk/install.mk) into a DESTDIR.

Checks the layout (binary, probe, unit, options file, the kernels/ tree,
build outputs), that no DESTDIR path leaks into what is installed, that the
installed binary looks for kernelspecs under PREFIX, that the options file
lists every option of --help with its default, and that an edited options
file survives both a reinstall and an uninstall.
"""

import filecmp
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make(*args, timeout=300, env=None):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT),
                        *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout}{r.stderr}"
    return r.stdout


def files_under(top):
    top = Path(top)
    return sorted(str(p.relative_to(top)) for p in top.rglob("*")
                  if (p.is_file() or p.is_symlink())
                  and "__pycache__" not in p.parts)


def extra_targets(build):
    """EXTRA_TARGETS as the install build sees them."""
    out = make("-s", "--eval=print-extra: ; @echo $(EXTRA_TARGETS)",
               "print-extra", f"BUILD={build}")
    return out.split()


def help_options(binary):
    """{ENV_NAME: default} from `binary --help`."""
    out = subprocess.run([str(binary), "--help"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    opts = dict(re.findall(r"\(env (E2B_CI_\w+), default (.*)\)$", out,
                           re.M))
    assert len(opts) >= 10, out
    return {k: "" if v == '""' else v for k, v in opts.items()}


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    d = tmp_path_factory.mktemp("destdir")
    make("install", f"DESTDIR={d}", "PREFIX=/usr/local")
    return d


def test_layout(dest):
    usr = dest / "usr/local"
    for exe in ("bin/e2b-ci", "bin/e2b-ci-debug-probe"):
        assert os.access(usr / exe, os.X_OK), exe
    assert (usr / "lib/systemd/system/e2b-ci.service").is_file()
    assert (usr / "share/e2b-ci/e2b-ci.default").is_file()
    assert (dest / "etc/default/e2b-ci").is_file()
    assert (usr / "lib/e2b-ci").is_dir()
    if (ROOT / "README.md").exists():
        assert (usr / "share/doc/e2b-ci/README.md").is_file()
    # Nothing outside PREFIX but the options file.
    assert sorted(p.name for p in dest.iterdir()) == ["etc", "usr"]
    assert files_under(dest / "etc") == ["default/e2b-ci"]


def test_the_whole_kernels_tree_is_installed(dest):
    src = files_under(ROOT / "kernels")
    got = files_under(dest / "usr/local/share/e2b-ci/kernels")
    assert src, "kernels/ is empty"
    missing = sorted(set(src) - set(got))
    assert not missing, f"not installed: {missing[:20]}"
    # Executable scripts (launch.sh, run.sh, ...) stay executable.
    for rel in src:
        if os.access(ROOT / "kernels" / rel, os.X_OK):
            assert os.access(dest / "usr/local/share/e2b-ci/kernels" / rel,
                             os.X_OK), rel


def test_build_outputs_go_to_lib(dest):
    build = "build/install/usr/local"
    outs = [t.rstrip("/") for t in extra_targets(build)
            if t.startswith(build + "/")]
    for t in outs:
        rel = t[len(build) + 1:]
        installed = dest / "usr/local/lib/e2b-ci" / rel
        assert installed.exists(), f"{t} not installed as lib/e2b-ci/{rel}"
        if (ROOT / t).is_file():
            assert filecmp.cmp(ROOT / t, installed, shallow=False), rel


FAKE_KERNEL_MK = """\
EXTRA_TARGETS += $(BUILD)/fake-kernel $(BUILD)/fakejava/
$(BUILD)/fake-kernel:
\tmkdir -p $(@D) && printf '#!/bin/sh\\n' >$@ && chmod +x $@
$(BUILD)/fakejava/:
\tmkdir -p $@pkg && echo class >$@pkg/A.class
"""


def test_extra_targets_of_a_kernel_build_mk(dest, tmp_path):
    """What a kernels/NAME/build.mk adds to EXTRA_TARGETS (a file and a
    directory under $(BUILD)) lands in lib/e2b-ci at the same relative
    path; MAKEFILES stands in for a build.mk (sub-makes read it too)."""
    # A build dir of its own, seeded (mtimes kept) with the install build
    # that `dest` just made, so that nothing is compiled again.
    shutil.copytree(ROOT / "build/install/usr/local",
                    tmp_path / "build/install/usr/local", symlinks=True)
    mk = tmp_path / "fake.mk"
    mk.write_text(FAKE_KERNEL_MK)
    dest = tmp_path / "dest"
    make("install", f"BUILD={tmp_path}/build", f"DESTDIR={dest}",
         "PREFIX=/usr/local", env=dict(os.environ, MAKEFILES=str(mk)))
    lib = dest / "usr/local/lib/e2b-ci"
    assert {"fake-kernel", "fakejava/pkg/A.class"} <= set(files_under(lib))
    assert os.access(lib / "fake-kernel", os.X_OK)


def test_installed_binary_runs_and_uses_prefix_kernels(dest):
    binary = dest / "usr/local/bin/e2b-ci"
    r = subprocess.run([str(binary), "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout and "--port" in r.stdout
    assert help_options(binary)["E2B_CI_KERNEL_PATH"] == \
        "/usr/local/share/e2b-ci/kernels"
    r = subprocess.run([str(binary), "--version"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("e2b-ci ")


def health(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def test_installed_kernels_start_from_the_installed_tree(dest, tmp_path):
    """The installed daemon, pointed at the installed kernels (paths inside
    them are relative, so the DESTDIR does not matter), gets every one of
    our kernelspecs ready: their launchers find what lib/e2b-ci holds."""
    kdir = dest / "usr/local/share/e2b-ci/kernels"
    langs = sorted({json.loads(p.read_text())["language"].lower()
                    for p in kdir.glob("*/kernel.json")})
    if not langs:
        pytest.skip("no kernelspec of our own in kernels/ yet")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "daemon.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [str(dest / "usr/local/bin/e2b-ci"), "--listen", "127.0.0.1",
             "--port", str(port), "--runtime-dir", str(tmp_path / "run"),
             "--cwd", str(tmp_path / "home"), "--kernel-path", str(kdir),
             "--default-languages", ",".join(langs)],
            stdout=logf, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 60
        while health(port) != 200:
            assert proc.poll() is None and time.monotonic() < end, \
                log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        for lang in langs:
            assert re.search(rf"language {lang} -> kernelspec \S+ "
                             rf"\({re.escape(str(kdir))}/", text), \
                f"{lang}: not from the installed tree\n{text}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()


def test_no_destdir_in_installed_files(dest):
    needle = os.fsencode(str(dest))
    for rel in files_under(dest):
        p = dest / rel
        if p.is_symlink():
            assert not os.readlink(p).startswith(str(dest)), rel
            continue
        assert needle not in p.read_bytes(), f"{rel} mentions DESTDIR"


def test_unit_points_at_installed_paths(dest):
    unit = (dest / "usr/local/lib/systemd/system/e2b-ci.service").read_text()
    assert "\nExecStart=/usr/local/bin/e2b-ci\n" in unit
    assert "\nEnvironmentFile=-/etc/default/e2b-ci\n" in unit
    assert (dest / "usr/local/bin/e2b-ci").exists()


def test_options_file_lists_every_option_with_its_default(dest):
    opts = help_options(dest / "usr/local/bin/e2b-ci")
    text = (dest / "etc/default/e2b-ci").read_text()
    listed = dict(re.findall(r"^#(E2B_CI_\w+)=(.*)$", text, re.M))
    assert listed == opts
    # Nothing is set: the file only documents.
    assert not re.search(r"^\s*E2B_CI_", text, re.M)


def test_other_prefix(tmp_path):
    """PREFIX=/opt/e2b-ci: paths follow, and the unit goes where systemd
    looks for it."""
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/opt/e2b-ci")
    unit = tmp_path / "etc/systemd/system/e2b-ci.service"
    assert "\nExecStart=/opt/e2b-ci/bin/e2b-ci\n" in unit.read_text()
    binary = tmp_path / "opt/e2b-ci/bin/e2b-ci"
    assert help_options(binary)["E2B_CI_KERNEL_PATH"] == \
        "/opt/e2b-ci/share/e2b-ci/kernels"
    text = (tmp_path / "etc/default/e2b-ci").read_text()
    assert "#E2B_CI_KERNEL_PATH=/opt/e2b-ci/share/e2b-ci/kernels\n" in text
    assert (tmp_path / "opt/e2b-ci/share/e2b-ci/kernels").is_dir()


def test_prefix_usr_as_the_e2b_template_installs(tmp_path):
    """PREFIX=/usr (template/template.mjs): everything under /usr, none of
    it under /usr/local (which E2B makes world-writable), the unit in
    systemd's package dir pointing at /usr/bin, and the binary looking for
    the kernels under /usr/share."""
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc", "usr"]
    assert not (tmp_path / "usr/local").exists()
    unit = (tmp_path / "usr/lib/systemd/system/e2b-ci.service").read_text()
    assert "\nExecStart=/usr/bin/e2b-ci\n" in unit
    settings = [l for l in unit.splitlines() if not l.startswith("#")]
    assert not [l for l in settings if "/usr/local" in l], settings
    assert help_options(tmp_path / "usr/bin/e2b-ci")["E2B_CI_KERNEL_PATH"] \
        == "/usr/share/e2b-ci/kernels"
    assert (tmp_path / "usr/lib/e2b-ci").is_dir()
    text = (tmp_path / "etc/default/e2b-ci").read_text()
    assert "#E2B_CI_KERNEL_PATH=/usr/share/e2b-ci/kernels\n" in text


def test_edited_options_file_survives_reinstall_and_uninstall(tmp_path):
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    opts = tmp_path / "etc/default/e2b-ci"
    opts.write_text(opts.read_text() + "E2B_CI_LOG_LEVEL=debug\n")
    edited = opts.read_text()
    out = make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    assert opts.read_text() == edited
    assert "kept" in out
    make("uninstall", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    assert files_under(tmp_path) == ["etc/default/e2b-ci"]
    assert opts.read_text() == edited


def test_uninstall_removes_an_unedited_install(tmp_path):
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    make("uninstall", f"DESTDIR={tmp_path}", "PREFIX=/usr/local")
    assert files_under(tmp_path) == []
