"""`e2b-ci --check`: the configuration, then every default language's
kernel, starting none.

It prints the configuration as before, then one "ok" line per default
language whose kernelspec resolves, whose argv[0] is executable and whose
kernel.json check commands pass (our kernels: kernels/host/launch.sh
--check finds the kernel host binary and the runner files, as a start
would). Otherwise it names the language, the kernelspec and the reason on
stderr and exits 1. A kernel tree without a build (a fresh clone before
`make`) is the case that used to pass --check and then fail at start.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[2] / "kernels"


def check(binary, tmp_path, *args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("E2B_CI_", "E2B_KERNEL", "E2BCI_"))}
    return subprocess.run(
        [binary, "--check", "--runtime-dir", str(tmp_path / "run"),
         "--listen", "127.0.0.1", *args],
        capture_output=True, text=True, timeout=60, env=env,
        stdin=subprocess.DEVNULL)


def unbuilt_kernels(tmp_path):
    """The kernels/ tree as a fresh clone has it: no build/ next to it,
    no node_modules."""
    top = tmp_path / "clone"
    shutil.copytree(KERNELS, top / "kernels", ignore=shutil.ignore_patterns(
        "node_modules", "__pycache__"))
    return top / "kernels"


def test_check_passes_for_the_build_tree(e2bci_bin, tmp_path):
    p = check(e2bci_bin, tmp_path, "--default-languages",
              "python,javascript,typescript,bash")
    assert p.returncode == 0, p
    assert "port = 49999" in p.stdout  # the configuration, as before
    for lang in ("python", "javascript", "typescript", "bash"):
        assert f"kernel {lang}: kernelspec " in p.stdout, p.stdout
    assert p.stderr == "", p.stderr
    # Nothing was started: not even the runtime dir exists.
    assert not (tmp_path / "run").exists()


def test_check_names_a_kernel_that_cannot_start(e2bci_bin, tmp_path):
    kdir = unbuilt_kernels(tmp_path)
    p = check(e2bci_bin, tmp_path, "--kernel-path", str(kdir))
    assert p.returncode == 1, p
    assert "port = 49999" in p.stdout, p.stdout
    assert "kernel python: kernelspec python3" in p.stdout, p.stdout
    err = p.stderr.strip().splitlines()
    assert len(err) == 1, p.stderr
    assert err[0].startswith(
        f"e2b-ci: --check: kernel javascript: kernelspec javascript "
        f"({kdir / 'javascript'}): launch.sh: e2b-kernel not found"), err
    assert "exited with status 127" in err[0], err

    # With the host there, the runner's packages are missing next.
    (kdir.parent / "build").mkdir()
    host = next((b for b in (KERNELS.parent / d / "e2b-kernel"
                             for d in ("build", "build-asan")) if b.exists()),
                None)
    if host is None:
        pytest.skip("no e2b-kernel built in build/ or build-asan/")
    os.symlink(host, kdir.parent / "build" / "e2b-kernel")
    p = check(e2bci_bin, tmp_path, "--kernel-path", str(kdir))
    assert p.returncode == 1, p
    assert "node_modules/acorn/package.json not found" in p.stderr, p.stderr


def test_check_names_a_missing_kernelspec_and_launcher(e2bci_bin, tmp_path):
    kdir = tmp_path / "kernels"
    (kdir / "nolauncher").mkdir(parents=True)
    (kdir / "nolauncher" / "kernel.json").write_text(json.dumps({
        "argv": ["no-such-launcher-e2bci", "-f", "{connection_file}"],
        "language": "nolauncher"}))
    p = check(e2bci_bin, tmp_path, "--kernel-path", f"{kdir}:{KERNELS}",
              "--default-languages", "python,nolauncher,nosuchlang")
    assert p.returncode == 1, p
    assert "kernel python: kernelspec python3" in p.stdout
    assert ("kernel nolauncher: kernelspec nolauncher "
            f"({kdir / 'nolauncher'}): no-such-launcher-e2bci is not an "
            "executable file on PATH") in p.stderr, p.stderr
    assert "kernel nosuchlang: no kernelspec for nosuchlang" in p.stderr
