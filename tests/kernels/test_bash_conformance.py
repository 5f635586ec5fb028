"""jupyter_kernel_test's protocol conformance suite against the bash kernel
(kernels/bash). Debian package python3-jupyter-kernel-test; it validates
every message it sees against the message schemas.

Needs build/e2b-kernel (`make all`) or E2B_KERNEL_BIN."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ["JUPYTER_PATH"] = str(ROOT)

try:
    import jupyter_kernel_test as jkt
except ImportError:
    pytest.fail("jupyter_kernel_test is missing: apt-get install -y "
                "python3-jupyter-kernel-test (template/install-deps.sh)",
                pytrace=False)


class TestBashKernel(jkt.KernelTests):
    kernel_name = "bash"
    language_name = "bash"
    file_extension = ".sh"

    code_hello_world = "echo 'hello, world'"
    code_stderr = "echo 'oops' >&2"
    # No output, only the error: test_error wants exactly one message.
    code_generate_error = "(exit 3)"
    complete_code_samples = ["echo hi", "for i in 1 2; do echo $i; done", ""]

    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("E2B_KERNEL_BIN") or str(ROOT / "build" / "e2b-kernel")
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is missing: run `make all` first", pytrace=False)
        super().setUpClass()
