"""Fixtures for the end-to-end tests of e2b-ci.

The daemon under test is E2BCI_BIN (the Makefile passes build/e2b-ci). One
daemon serves the whole session unless a test needs its own (different
flags, or it is going to stop or break the daemon): kernel start-up costs
about a second per context, so sharing keeps the suite fast.

Every daemon runs with --default-languages python and --keepalive-ms 300, on
127.0.0.1 and a free port, with its own runtime dir and default cwd under
pytest's tmp dir, and talks to a fake envd. Stopping it (SIGTERM) must give
exit status 0, leave no process that mentions its runtime dir, and leave the
runtime dir empty (harness.serving, the one way a fixture runs a daemon). On
a failure the tail of the log of every daemon alive during the test is
attached to the report.

A module whose tests need a daemon of their own for all of them overrides
`daemon` with a module-scoped fixture: `client` and `new_context` then use
it (test_env_restore.py, test_node18.py).
"""

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import harness


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item.e2bci_started = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    since = getattr(item, "e2bci_started", 0)
    for d in harness.Daemon.all:
        if d.active_since(since):
            rep.sections.append((f"{d.name} log ({d.log_path})", d.log_tail()))


@pytest.fixture(scope="session")
def e2bci_bin():
    path = os.environ.get("E2BCI_BIN")
    if not path:
        pytest.fail("E2BCI_BIN is not set: run `make e2e`, or set it to the "
                    "absolute path of the e2b-ci binary", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"E2BCI_BIN={path} is not an executable file (build it "
                    f"with `make`)", pytrace=False)
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def envd_server():
    fake = harness.FakeEnvd().start()
    yield fake
    fake.close()


@pytest.fixture
def envd(envd_server):
    """The session's fake envd, reset after the test."""
    envd_server.reset()
    yield envd_server
    envd_server.reset()


@pytest.fixture(scope="session")
def daemon(e2bci_bin, envd_server, tmp_path_factory):
    """The shared daemon."""
    with harness.serving(harness.Daemon(
            e2bci_bin, tmp_path_factory.mktemp("shared"),
            envd_url=envd_server.url, name="shared daemon",
            args=["--interrupt-timeout-ms", "2000"])) as d:
        yield d


@pytest.fixture
def client(daemon):
    assert daemon.running(), \
        f"the shared daemon died earlier\n{daemon.log_tail()}"
    return daemon.client()


@pytest.fixture
def new_context(client):
    """new_context(body=None) -> a new context; all are deleted afterwards."""
    made = []

    def make(body=None):
        ctx = client.create_context(body)
        made.append(ctx["id"])
        return ctx

    yield make
    for ctx_id in made:
        try:
            client.delete(ctx_id)
        except OSError:
            pass


@pytest.fixture(scope="session")
def aux_daemon(e2bci_bin, tmp_path_factory):
    """A second daemon with a small body limit (--max-body 4096) and no envd
    behind --envd-url (a port nothing listens on)."""
    closed = harness.free_port()
    with harness.serving(harness.Daemon(
            e2bci_bin, tmp_path_factory.mktemp("aux"),
            envd_url=f"http://127.0.0.1:{closed}", name="aux daemon",
            args=["--max-body", "4096"])) as d:
        yield d


@pytest.fixture
def make_daemon(e2bci_bin, envd_server, tmp_path_factory):
    """make_daemon(**kw) -> a started (not yet healthy) dedicated daemon;
    stopped and checked after the test unless the test stopped it."""
    with contextlib.ExitStack() as made:
        def make(**kw):
            kw.setdefault("envd_url", envd_server.url)
            kw.setdefault("name", "dedicated daemon")
            d = harness.Daemon(e2bci_bin, tmp_path_factory.mktemp("dedicated"),
                               **kw)
            return made.enter_context(harness.serving(d, healthy=False))

        yield make


@pytest.fixture
def open_dir():
    """A cwd an unprivileged kernel user may enter (mode 0777, its parent
    too), outside pytest's tmp root: that is 0700, and every pytest session
    that starts makes it 0700 again, which another session running beside
    this one would do while the kernel starts."""
    base = Path(tempfile.mkdtemp(prefix="e2bci-open-"))
    path = base / "home"
    path.mkdir()
    for p in (base, path):
        os.chmod(p, 0o777)
    yield path
    shutil.rmtree(base, ignore_errors=True)
