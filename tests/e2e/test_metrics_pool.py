"""GET /metrics (Prometheus text) and the warm kernel pool."""

import os
import re

from harness import main_text, processes, stdout, wait_until


def scrape(client):
    r = client.request("GET", "/metrics")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[^"}]|"[^"]*")*\})?) (\S+)', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples[m.group(1)] = float(m.group(2))
    return samples


def test_metrics_count_what_happens(client, new_context):
    before = scrape(client)
    ctx = new_context()
    assert main_text(client.execute("1+1", context_id=ctx["id"])) == "2"
    client.request("GET", "/no-such-route")
    after = scrape(client)
    assert after["e2bci_executions_total"] == before["e2bci_executions_total"] + 1
    assert after['e2bci_http_requests_total{route="/execute",status="200"}'] >= \
        before.get('e2bci_http_requests_total{route="/execute",status="200"}', 0) + 1
    assert after['e2bci_http_requests_total{route="other",status="404"}'] >= 1
    assert after['e2bci_contexts{language="python"}'] >= 2
    assert after["e2bci_execution_duration_seconds_count"] == \
        before["e2bci_execution_duration_seconds_count"] + 1
    assert after['e2bci_execution_duration_seconds_bucket{le="+Inf"}'] == \
        after["e2bci_execution_duration_seconds_count"]
    assert after["e2bci_stream_bytes_total"] > before["e2bci_stream_bytes_total"]
    assert after["e2bci_executions_in_flight"] == 0
    assert after['e2bci_kernels{state="idle"}'] >= 2


def test_metrics_count_crashes_and_restarts(client, new_context):
    ctx = new_context()
    before = scrape(client)
    client.execute("import os; os._exit(3)", context_id=ctx["id"])
    assert client.restart(ctx["id"]).status == 200
    after = scrape(client)
    assert after["e2bci_kernel_crashes_total"] >= before["e2bci_kernel_crashes_total"] + 1
    assert after["e2bci_kernel_restarts_total"] == before["e2bci_kernel_restarts_total"] + 1


def test_pool_hands_out_fresh_kernels_without_leaking_state(make_daemon, tmp_path):
    d = make_daemon(args=["--pool", "python=1"]).wait_healthy()
    c = d.client()
    seen_pids = set()
    for i in range(3):
        ctx = c.create_context({"cwd": str(tmp_path)})
        # No state from the previous context, and the requested cwd applies.
        lines = c.execute("print('leak' in globals()); import os; "
                          "print(os.getcwd()); print(os.getpid())",
                          context_id=ctx["id"])
        leak, cwd, pid = stdout(lines).split()
        assert leak == "False"
        assert cwd == str(tmp_path)
        assert pid not in seen_pids
        seen_pids.add(pid)
        c.execute("leak = 1", context_id=ctx["id"])
    d.stop()


def test_pool_refills_and_replaces_a_crashed_spare(make_daemon):
    import os, signal
    # Kernels are told apart by pid: none may be replaced by a fork while
    # the test looks (the zygote settles first).
    d = make_daemon(args=["--pool", "python=1"]).wait_healthy() \
        .wait_zygote_settled()
    c = d.client()

    def warm():
        return scrape(c)['e2bci_kernels{state="warm"}']

    wait_until(lambda: warm() >= 1, "a warm spare", timeout=30, interval=0.1)
    assert warm() == 1
    # Kill the spare: the pool must start another one.
    busy_pids = set()
    for ctx in c.contexts():
        lines = c.execute("import os; print(os.getpid())", context_id=ctx["id"])
        busy_pids.add(int(stdout(lines)))
    spare = [p for p in _kernel_pids(d) if p not in busy_pids]
    assert len(spare) == 1
    os.kill(spare[0], signal.SIGKILL)
    def replaced():
        pids = [p for p in _kernel_pids(d) if p not in busy_pids]
        return pids and pids != spare and warm() == 1

    wait_until(replaced, "a new spare in place of the killed one", timeout=30,
               interval=0.1)
    assert warm() == 1
    d.stop()


def test_pool_size_zero_still_works(make_daemon):
    d = make_daemon(args=["--pool", "python=0"]).wait_healthy()
    c = d.client()
    ctx = c.create_context()
    assert main_text(c.execute("1+1", context_id=ctx["id"])) == "2"
    assert scrape(c)['e2bci_kernels{state="warm"}'] == 0
    d.stop()


def test_bad_pool_option_is_refused(e2bci_bin, tmp_path):
    import subprocess
    p = subprocess.run([e2bci_bin, "--pool", "python=lots", "--port", "0",
                        "--listen", "127.0.0.1", "--runtime-dir", str(tmp_path / "run"),
                        "--cwd", str(tmp_path)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "--pool" in p.stderr


def _kernel_pids(d):
    """Pids of kernel processes started by daemon d (their cmdline names a
    connection file in d's runtime dir)."""
    rundir = os.fsencode(str(d.runtime_dir))
    return [pid for pid, cmd in processes(zombies=True)
            if rundir in cmd and b"ipykernel" in cmd]
