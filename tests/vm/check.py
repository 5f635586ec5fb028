#!/usr/bin/python3
"""Boots the VM tier's image (tests/vm/build.py) under QEMU and checks e2b-ci
under systemd, from outside (HTTP on the forwarded port) and inside (ssh).

Run it in a network namespace of its own (`make vm-test` does):
    unshare -n sh -c 'ip link set lo up && tests/vm/check.py'

The accelerator: KVM only where KVM really boots the image's kernel (a
probe boot that must reach the kernel's panic for a missing root within
30 s; on hosts whose /dev/kvm runs only PVM guests it never does), else
TCG. VM_ACCEL=kvm|tcg skips the probe. Networking: QEMU's user-mode
network with restrict=on, so the guest reaches nothing; only
127.0.0.1:<port> -> 49999 and -> 22 are forwarded. The disk is used with
-snapshot: the image stays as built.

Prints one PASS/FAIL line per check and a summary line with the boot to
/health time; exits 1 if any check failed. The guest's serial console is
kept in build/vm/console.log; qemu is killed and the temporary files are
removed whatever happens.
"""

import argparse
import ctypes
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEM_MAX = 300 << 20          # E2B_CI_KERNEL_MEMORY_MAX in finalize.sh
TASKS_MAX = 128              # E2B_CI_KERNEL_TASKS_MAX in finalize.sh

RESULTS = []


class VmDown(Exception):
    pass


def say(msg):
    print(f"[vm-test] {msg}", flush=True)


def report(name, ok, detail=""):
    RESULTS.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'}  {name:<28} {detail}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """preexec_fn: qemu gets SIGKILL when this script dies, however."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ------------------------------------------------------------------ QEMU

def kvm_boots(vmdir, tmp):
    """True if KVM runs the image's kernel: it must print its panic for a
    missing root file system (and exit, -no-reboot) within 30 s."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    log = tmp / "kvm-probe.log"
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "q35",
           "-m", "256", "-kernel", str(vmdir / "vmlinuz"), "-append",
           "console=ttyS0 panic=-1", "-display", "none", "-monitor", "none",
           "-serial", f"file:{log}", "-no-reboot", "-nodefaults"]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30,
                           preexec_fn=die_with_parent)
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Kernel panic" in text:
            return True, "KVM boots the guest kernel"
        return False, f"KVM probe exited {p.returncode} without booting"
    except subprocess.TimeoutExpired:
        text = log.read_text(errors="replace") if log.exists() else ""
        last = [l for l in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
                .splitlines() if l.strip()]
        return False, ("KVM probe printed nothing for 30 s" if not last else
                       f"KVM probe hung after {last[-1].strip()[:60]!r}")


def probe_kvm(vmdir, tmp):
    """kvm_boots, remembered in VM_DIR/kvm-probe.json for this host kernel,
    /dev/kvm and guest kernel (the probe takes 30 s where KVM fails)."""
    try:
        st = os.stat("/dev/kvm")
        dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    except OSError:
        dev = "none"
    guest = hashlib.sha256((vmdir / "vmlinuz").read_bytes()).hexdigest()
    key = f"{os.uname().release} {dev} {guest[:16]}"
    f = vmdir / "kvm-probe.json"
    try:
        seen = json.loads(f.read_text())
        if seen["key"] == key:
            return seen["kvm"], seen["why"] + " (remembered)"
    except (OSError, ValueError, KeyError):
        pass
    ok, why = kvm_boots(vmdir, tmp)
    f.write_text(json.dumps({"key": key, "kvm": ok, "why": why}) + "\n")
    return ok, why


class Vm:
    def __init__(self, vmdir, tmp, accel):
        self.vmdir, self.tmp, self.accel = vmdir, tmp, accel
        self.http_port, self.ssh_port = free_port(), free_port()
        self.console = vmdir / "console.log"
        self.proc = None

    def start(self):
        accel = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" \
            else ["-accel", "tcg,thread=multi,tb-size=512", "-cpu", "max"]
        fwd = (f"hostfwd=tcp:127.0.0.1:{self.http_port}-:49999,"
               f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22")
        cmd = ["qemu-system-x86_64", "-name", "e2b-ci-vm", "-M", "q35",
               *accel, "-m", "2048", "-smp", "2", "-nodefaults",
               "-kernel", str(self.vmdir / "vmlinuz"),
               "-initrd", str(self.vmdir / "initrd.img"),
               "-append", "root=/dev/vda rw console=ttyS0 "
                          "systemd.show_status=1",
               "-drive", f"file={self.vmdir / 'e2b-ci.img'},format=raw,"
                         "if=virtio,snapshot=on",
               "-netdev", f"user,id=n0,restrict=on,{fwd}",
               "-device", "virtio-net-pci,netdev=n0",
               "-device", "virtio-rng-pci",
               "-display", "none", "-monitor", "none",
               "-serial", f"file:{self.console}", "-no-reboot"]
        # -snapshot's overlay goes to TMPDIR: ours, removed at the end.
        env = dict(os.environ, TMPDIR=str(self.tmp))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "qemu.err", "w"),
                                     env=env, preexec_fn=die_with_parent)
        self.t0 = time.monotonic()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            err = (self.tmp / "qemu.err").read_text(errors="replace")
            raise VmDown(f"qemu exited ({self.proc.returncode}) {err[-300:]}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -------------------------------------------------------------- ssh
    def ssh_args(self):
        return ["ssh", "-i", str(self.vmdir / "id_ed25519"),
                "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=30", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.tmp}/ssh-%C",
                "-o", "ControlPersist=600", "root@127.0.0.1"]

    def sh(self, script, timeout=120, check=True):
        """Runs a shell script in the guest as root; returns its stdout."""
        self.check_alive()
        r = subprocess.run([*self.ssh_args(), "sh", "-s"], input=script,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"guest script exit {r.returncode}: "
                                 f"{(r.stderr or r.stdout).strip()[-300:]}")
        return r.stdout

    def close_ssh(self):
        subprocess.run([*self.ssh_args()[:-1], "-O", "exit", "root@127.0.0.1"],
                       capture_output=True, timeout=10)

    # ------------------------------------------------------------- HTTP
    def request(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port,
                                          timeout=timeout)
        try:
            data = None if body is None else json.dumps(body)
            conn.request(method, path, data,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def health(self):
        try:
            return self.request("GET", "/health", timeout=5)[0]
        except (OSError, http.client.HTTPException):
            return None

    def wait_health(self, timeout, what="GET /health 200"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.check_alive()
            if self.health() == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"no {what} within {timeout:.0f} s")

    def execute(self, code, timeout=600, **kw):
        status, text = self.request("POST", "/execute",
                                    {"code": code, **kw}, timeout=timeout)
        assert status == 200, f"/execute answered {status}: {text[:200]}"
        lines = [json.loads(l) for l in text.splitlines() if l]
        assert lines and lines[-1]["type"] == "end_of_execution", lines[-3:]
        return lines


def main_text(lines):
    for l in lines:
        if l["type"] == "result" and l.get("is_main_result"):
            return l.get("text")
    return None


def any_text(lines):
    """R's IRkernel sends its values as display data, not execute_result."""
    return [l.get("text") for l in lines if l["type"] == "result"]


def out_text(lines, kind="stdout"):
    return "".join(l["text"] for l in lines if l["type"] == kind)


def error_of(lines):
    return next((l for l in lines if l["type"] == "error"), None)


# ---------------------------------------------------------------- checks

def check_e2b_finalize(vm):
    out = vm.sh("id -u user; sudo -u user sudo -n id -u; "
                "stat -c %a /usr/local; stat -c %U /home/user; "
                "swapon --show=NAME,SIZE --noheadings; "
                "cat /proc/sys/vm/swappiness")
    lines = out.split("\n")
    assert lines[:4] == ["1000", "0", "777", "user"], lines
    assert "/swap/swapfile" in out and lines[-2] == "0", out
    return "uid 1000, passwordless sudo, /usr/local 0777, 128M swap"


LANG_CASES = [
    ("python", "python", "1+1", lambda l: main_text(l) == "2"),
    ("javascript", "javascript", "40+2", lambda l: main_text(l) == "42"),
    ("javascript-import", "javascript",
     "import { basename } from 'node:path'\n"
     "const os = await import('node:os')\n"
     "basename('/x/answer.txt') + ' ' + typeof os.cpus",
     lambda l: main_text(l) == "answer.txt function"),
    ("typescript-import", "typescript",
     "import { join } from 'node:path'\n"
     "const p: string = join('a', 'b')\np",
     lambda l: main_text(l) == "a/b"),
    ("r", "r", "x <- c(1, 2, 3); mean(x)",
     lambda l: any_text(l) == ["[1] 2"]),
    ("bash", "bash", "echo $((6 * 7)) from $SHELL",
     lambda l: out_text(l).startswith("42 from ")),
    ("java", "java", "int sq(int x) { return x * x; }\nsq(7)",
     lambda l: main_text(l) == "49"),
]


def check_language(vm, lang, code, ok):
    t0 = time.monotonic()
    lines = vm.execute(code, language=lang)
    err = error_of(lines)
    assert ok(lines), (f"{err['name']}: {err['value'][:160]}" if err else
                       f"got {[l for l in lines if l['type'] != 'keepalive']}"
                       [:300])
    return f"{time.monotonic() - t0:.1f} s"


CGROUP_SCRIPT = r"""
unit=$(systemctl show -p ControlGroup --value e2b-ci)
main=$(systemctl show -p MainPID --value e2b-ci)
cg=/sys/fs/cgroup$unit
echo "unit $unit"
echo "fs $(stat -fc %T /sys/fs/cgroup)"
echo "subtree $(cat $cg/cgroup.subtree_control)"
echo "rootprocs $(cat $cg/cgroup.procs | tr '\n' ' ')"
echo "main $main $(cut -d: -f3 /proc/$main/cgroup) $(cat $cg/daemon/memory.max)"
for k in $cg/k-*; do
  [ -d "$k" ] || continue
  echo "group ${k##*/} $(cat $k/memory.max) $(cat $k/memory.oom.group) $(cat $k/cpu.weight) $(cat $k/cgroup.procs | wc -l)"
done
for p in $(pgrep -P $main); do
  echo "child $p $(cut -d: -f3 /proc/$p/cgroup) $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-200)"
done
"""


def check_cgroups(vm):
    out = vm.sh(CGROUP_SCRIPT)
    rows = [l.split(" ", 1) for l in out.splitlines()]
    get = {k: v for k, v in rows if k not in ("group", "child")}
    unit = get["unit"]
    assert get["fs"] == "cgroup2fs", f"not cgroup v2: {get['fs']}"
    assert {"memory", "cpu"} <= set(get["subtree"].split()), get["subtree"]
    assert get["rootprocs"].strip() == "", \
        f"processes in {unit} itself: {get['rootprocs']}"
    _, mcg, dmax = get["main"].split()
    assert mcg == f"{unit}/daemon", f"daemon in {mcg}"
    assert dmax == "max", f"the daemon's group has memory.max {dmax}"
    groups = {}
    for k, v in rows:
        if k == "group":
            name, mmax, oom, weight, nprocs = v.split()
            groups[name] = (int(mmax), oom, weight, int(nprocs))
    children = [v.split(" ", 2) for k, v in rows if k == "child"]
    # The zygotes (Python's, R's once an R kernel was asked for) are the
    # daemon's helpers, not kernels: they stay in the daemon's group (their
    # pages are every forked kernel's, and no kernel's memory.max may be
    # charged with them).
    zygotes = [c for c in children if "e2b_ci_zygote." in c[2]]
    for pid, cg, cmd in zygotes:
        assert cg == f"{unit}/daemon", f"zygote {pid} in {cg}"
    assert len(zygotes) <= 2, f"more than one zygote per kind: {zygotes}"
    children = [c for c in children if c not in zygotes]
    assert len(children) >= 7, f"expected 7+ kernels, got {children}"
    seen = set()
    for pid, cg, cmd in children:
        name = cg.rsplit("/", 1)[-1]
        assert cg == f"{unit}/{name}" and name.startswith("k-"), \
            f"kernel {pid} ({cmd}) in {cg}"
        assert name not in seen, f"two kernels share {cg}"
        seen.add(name)
        mmax, oom, _, _ = groups[name]
        assert mmax == MEM_MAX, f"{name} memory.max {mmax}"
        assert oom == "1", f"{name} memory.oom.group {oom}"
    stray = set(groups) - seen
    assert not stray, f"groups without a kernel: {stray}"
    return (f"daemon and {len(zygotes)} zygote(s) in {unit}/daemon, "
            f"{len(seen)} kernels in k-* groups with memory.max "
            f"{MEM_MAX >> 20} MiB")


def forked_total(vm):
    status, text = vm.request("GET", "/metrics")
    assert status == 200, f"/metrics: {status}"
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            m[name] = value
    return m


def check_zygote(vm):
    # A Python context made once the zygote is ready is a fork: the data
    # stack is there before any import, and /metrics counts it (its group is
    # checked by cgroup-v2-tree, its OOM by oom-kernel-not-daemon). The R
    # zygote started with lang-r's context: an R context is a fork too.
    end = time.monotonic() + 180
    while forked_total(vm).get("e2bci_zygotes_ready") != "2":
        if time.monotonic() >= end:
            said = vm.sh("journalctl -b -u e2b-ci --no-pager -o cat | "
                         "grep -iE 'zygote|kernelspec ir' | tail -n 6 | "
                         "tr '\\n' '|' || true")
            raise AssertionError(f"the zygotes never became ready: {said}")
        time.sleep(1)
    before = int(forked_total(vm)["e2bci_kernels_forked_total"])
    status, text = vm.request("POST", "/contexts", {"language": "python"},
                              timeout=600)
    assert status == 200, f"/contexts: {status} {text[:200]}"
    ctx = json.loads(text)["id"]
    lines = vm.execute("import sys\nprint('pandas' in sys.modules)",
                       context_id=ctx)
    out = "".join(l.get("text", "") for l in lines if l["type"] == "stdout")
    assert out == "True\n", f"got {lines}"
    after = int(forked_total(vm)["e2bci_kernels_forked_total"])
    assert after == before + 1, f"forked {before} -> {after}"
    vm.request("DELETE", f"/contexts/{ctx}")
    status, text = vm.request("POST", "/contexts", {"language": "r"},
                              timeout=600)
    assert status == 200, f"/contexts r: {status} {text[:200]}"
    ctx = json.loads(text)["id"]
    lines = vm.execute("cat(1 + 1)", context_id=ctx)
    out = "".join(l.get("text", "") for l in lines if l["type"] == "stdout")
    assert out == "2", f"got {lines}"
    r_after = int(forked_total(vm)["e2bci_kernels_forked_total"])
    assert r_after == after + 1, f"forked {after} -> {r_after} (R)"
    vm.request("DELETE", f"/contexts/{ctx}")
    return f"Python and R contexts forked; {r_after} kernels so far"


def unit_state(vm):
    out = vm.sh("systemctl show -p MainPID -p NRestarts -p ActiveState "
                "e2b-ci")
    return dict(l.split("=", 1) for l in out.split())


def check_oom(vm):
    before = unit_state(vm)
    status, text = vm.request("POST", "/contexts", {"language": "python"},
                              timeout=600)
    assert status == 200, f"/contexts: {status} {text[:200]}"
    ctx = json.loads(text)["id"]
    lines = vm.execute("x = b'\\x01' * (800 << 20)\nlen(x)", context_id=ctx)
    err = error_of(lines)
    assert err and err["name"] == "OutOfMemoryError", \
        f"got {err or lines[-4:]}"
    after = unit_state(vm)
    assert after == before, f"unit changed: {before} -> {after}"
    vm.wait_health(300)
    lines = vm.execute("1+1", context_id=ctx)
    assert main_text(lines) == "2", f"context after OOM: {lines[-4:]}"
    vm.request("DELETE", f"/contexts/{ctx}")
    return (f"'{err['value'][:70]}'; daemon pid {after['MainPID']} "
            "unchanged, /health 200, the context answers again")


def new_context(vm, language="python"):
    status, text = vm.request("POST", "/contexts", {"language": language},
                              timeout=600)
    assert status == 200, f"/contexts: {status} {text[:200]}"
    return json.loads(text)["id"]


def check_pids_max(vm):
    """pids.max of a kernel's group: a cell that forks without end gets the
    language's error, the daemon and the context go on, and what it started
    is gone with the context."""
    ctx = new_context(vm)
    lines = vm.execute(
        "import subprocess\nps = []\ntry:\n"
        "    for i in range(400):\n"
        "        ps.append(subprocess.Popen(['sleep', '931']))\n"
        "except OSError as e:\n    print(type(e).__name__, len(ps))",
        context_id=ctx)
    out = out_text(lines)
    assert out.startswith("BlockingIOError"), f"got {lines[-4:]}"
    started = int(out.split()[1])
    assert 0 < started < TASKS_MAX, f"{started} sleeps started"
    limits = vm.sh("cat /sys/fs/cgroup$(systemctl show -p ControlGroup "
                   "--value e2b-ci)/k-*/pids.max | sort -u").split()
    assert limits == [str(TASKS_MAX)], f"pids.max of the kernels: {limits}"
    vm.request("DELETE", f"/contexts/{ctx}")
    left = vm.sh("sleep 3; pgrep -cf '^sleep 931$' || true").strip()
    assert left in ("0", ""), f"{left} sleeps left after delete"
    vm.wait_health(300)
    return (f"BlockingIOError after {started} processes, pids.max "
            f"{TASKS_MAX} on every kernel, none left after delete")


def check_setsid_child(vm):
    """A process that left the kernel's session (start_new_session) ends
    with its context: cgroup.kill reaches what a session kill cannot."""
    ctx = new_context(vm)
    lines = vm.execute(
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '977'], start_new_session=True)\n"
        "print(p.pid)", context_id=ctx)
    pid = int(out_text(lines).strip())
    sid = vm.sh(f"ps -o sid= -p {pid}").strip()
    assert sid == str(pid), f"sleep {pid} is in session {sid}, not its own"
    vm.request("DELETE", f"/contexts/{ctx}")
    end = time.monotonic() + 30
    while vm.sh(f"kill -0 {pid} 2>/dev/null && echo alive || true").strip():
        assert time.monotonic() < end, f"sleep {pid} outlived its context"
        time.sleep(0.5)
    return f"setsid child {pid} gone after DELETE"


def check_watchdog(vm):
    unit_file = vm.sh("systemctl show -p FragmentPath --value e2b-ci").strip()
    text = vm.sh(f"cat {unit_file}")
    want = re.search(r"^WatchdogSec=(\S+)", text, re.M)[1]
    got = vm.sh("systemctl show -p WatchdogUSec --value e2b-ci").strip()
    assert got == want, f"WatchdogUSec={got}, unit says WatchdogSec={want}"
    # The daemon pings it: systemd records each WATCHDOG=1.
    prop = "WatchdogTimestampMonotonic"
    first = vm.sh(f"systemctl show -p {prop} --value e2b-ci").strip()
    end = time.monotonic() + 90
    while True:
        now = vm.sh(f"systemctl show -p {prop} --value e2b-ci").strip()
        if now != first and now not in ("", "0"):
            break
        assert time.monotonic() < end, f"{prop} stayed {first}"
        time.sleep(2)
    return f"WatchdogUSec={got}, pings arrive"


def check_kill9(vm):
    before = unit_state(vm)
    t0 = time.monotonic()
    vm.sh(f"kill -9 {before['MainPID']}")
    end = time.monotonic() + 600
    while True:
        vm.check_alive()
        st = unit_state(vm)
        if st["MainPID"] not in ("0", before["MainPID"]) and \
                vm.health() == 200:
            break
        assert time.monotonic() < end, f"no restart: {st}"
        time.sleep(1)
    assert int(st["NRestarts"]) == int(before["NRestarts"]) + 1, st
    return (f"pid {before['MainPID']} -> {st['MainPID']}, NRestarts "
            f"{st['NRestarts']}, /health 200 after "
            f"{time.monotonic() - t0:.0f} s")


STOP_SCRIPT = r"""
unit=$(systemctl show -p ControlGroup --value e2b-ci)
main=$(systemctl show -p MainPID --value e2b-ci)
pids=$(cat $(find /sys/fs/cgroup$unit -name cgroup.procs) | grep -vx "$main" | sort -u)
echo "before $(echo $pids | wc -w)"
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl stop e2b-ci
echo "state $(systemctl show -p ActiveState --value e2b-ci)"
left=
for p in $pids; do [ -d /proc/$p ] && left="$left $p"; done
echo "left$left"
echo "cgroup $( [ -d /sys/fs/cgroup$unit ] && cat $(find /sys/fs/cgroup$unit -name cgroup.procs) | wc -l || echo gone)"
echo "strays $(pgrep -f 'ipykernel|e2b-kernel|IRkernel|E2bJavaRunner|runner.mjs' | wc -l)"
echo "sigkill $(journalctl -u e2b-ci --since "$since" --no-pager | grep -c 'with signal SIGKILL')"
"""


def check_stop(vm):
    out = vm.sh(STOP_SCRIPT, timeout=120)
    get = dict(l.split(" ", 1) if " " in l else (l, "")
               for l in out.splitlines())
    assert int(get["before"]) >= 2, f"no kernels to stop: {out}"
    assert get["state"] == "inactive", get["state"]
    assert get["left"].strip() == "", f"still running: {get['left']}"
    assert get["cgroup"] in ("gone", "0"), f"cgroup: {get['cgroup']}"
    assert get["strays"] == "0", f"{get['strays']} kernel processes left"
    return (f"{get['before']} kernel processes gone, cgroup {get['cgroup']}"
            f", systemd SIGKILLed {get['sigkill']} leftovers")


NOTIFY_SCRIPT = r"""
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 localhost:49999/health; }
( while :; do echo "poll $(code)"; sleep 0.2; done ) >/run/e2b-ci-vm-poll &
poller=$!
systemctl start e2b-ci
rc=$?
after=$(code)
kill $poller; wait $poller 2>/dev/null
echo "rc $rc"
echo "after $after"
cat /run/e2b-ci-vm-poll; rm -f /run/e2b-ci-vm-poll
"""


def check_notify(vm):
    t0 = time.monotonic()
    out = vm.sh(NOTIFY_SCRIPT, timeout=600)
    host = vm.health()
    took = time.monotonic() - t0
    rows = [l.split(" ", 1) for l in out.splitlines()]
    get = dict(r for r in rows if r[0] != "poll")
    polls = [r[1] for r in rows if r[0] == "poll"]
    assert get["rc"] == "0", f"systemctl start exited {get['rc']}"
    assert get["after"] == "200", \
        f"/health {get['after']} right after `systemctl start` returned"
    assert host == 200, f"/health from the host {host} after the start"
    waiting = [p for p in polls if p != "200"]
    assert waiting, f"start returned before any not-ready poll: {polls}"
    return (f"start blocked {took:.0f} s while /health said "
            f"{sorted(set(waiting))}; 200 as it returned")


PERM_SCRIPT = r"""
unit=$(systemctl show -p FragmentPath --value e2b-ci)
bin=$(systemctl show -p ExecStart --value e2b-ci | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
prefix=${bin%/bin/*}
kernels=$prefix/share/e2b-ci/kernels
lib=$prefix/lib/e2b-ci
envfile=$(systemctl show -p EnvironmentFiles --value e2b-ci | cut -d' ' -f1)
echo "paths $unit $bin $kernels $lib $envfile"
# Every path, each of its parent directories, and everything below the
# kernels and lib dirs: nothing writable by others (sticky dirs aside).
for p in "$unit" "$bin" "$kernels" "$lib" "$envfile"; do
  d=$p
  while [ "$d" != / ]; do
    find "$d" -maxdepth 0 ! -type l -perm -0002 ! -perm -1000 -printf 'ww %m %p\n'
    d=$(dirname "$d")
  done
done
find "$kernels" "$lib" ! -type l -perm -0002 -printf 'ww %m %p\n' | head -20
sudo -u user test -w "$bin" && echo "ww user-can-write $bin"
true
"""


def check_permissions(vm):
    out = vm.sh(PERM_SCRIPT)
    paths = out.splitlines()[0].split()[1:]
    bad = sorted({l[3:] for l in out.splitlines() if l.startswith("ww ")})
    assert not bad, f"world-writable after E2B's finalize: {bad[:6]}"
    return "not writable by others: " + " ".join(paths)


def check_journal(vm):
    out = vm.sh("journalctl -b --no-pager -o cat | "
                "grep -iE 'world-writable|world-inaccessible|"
                "e2b-ci.service:.*(unknown|ignoring|invalid)' || true")
    assert not out.strip(), f"systemd says: {out.strip()[:300]}"
    return "no world-writable or unit-file warning in journalctl -b"


# ------------------------------------------------------------------ main

def run_check(vm, name, fn, *args):
    try:
        detail = fn(vm, *args)
        report(name, True, detail or "")
    except VmDown:
        raise
    except Exception as e:  # noqa: BLE001 -- one line per failed check
        report(name, False, f"{type(e).__name__}: {e}"[:400])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.environ.get("VM_DIR",
                                                    str(ROOT / "build/vm")))
    args = ap.parse_args()
    vmdir = Path(args.dir).resolve()
    for f in ("e2b-ci.img", "vmlinuz", "initrd.img", "id_ed25519"):
        if not (vmdir / f).exists():
            sys.exit(f"vm-test: {vmdir / f} missing: run tests/vm/build.py")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="e2b-ci-vm-"))
    vm, boot_s = None, None
    try:
        accel = os.environ.get("VM_ACCEL", "")
        if accel not in ("kvm", "tcg"):
            ok, why = probe_kvm(vmdir, tmp)
            accel = "kvm" if ok else "tcg"
            say(f"accelerator: {accel} ({why})")
        vm = Vm(vmdir, tmp, accel)
        vm.start()
        boot_limit = 300 if accel == "kvm" else 900
        try:
            vm.wait_health(boot_limit)
            boot_s = time.monotonic() - vm.t0
            report("boot-to-health", True,
                   f"{boot_s:.0f} s from qemu start to GET /health 200 "
                   f"({accel})")
        except AssertionError as e:
            boot_s = None
            report("boot-to-health", False, str(e))
            raise VmDown("the guest never became healthy")
        end = time.monotonic() + 300
        while subprocess.run([*vm.ssh_args(), "true"], capture_output=True,
                             timeout=60).returncode != 0:
            vm.check_alive()
            if time.monotonic() > end:
                raise VmDown("no ssh into the guest")
            time.sleep(1)
        run_check(vm, "e2b-finalize", check_e2b_finalize)
        for name, lang, code, ok in LANG_CASES:
            run_check(vm, f"lang-{name}", check_language, lang, code, ok)
        run_check(vm, "cgroup-v2-tree", check_cgroups)
        run_check(vm, "zygote-forks", check_zygote)
        run_check(vm, "oom-kernel-not-daemon", check_oom)
        run_check(vm, "pids-max", check_pids_max)
        run_check(vm, "setsid-child-ends", check_setsid_child)
        run_check(vm, "watchdog", check_watchdog)
        run_check(vm, "kill-9-restart", check_kill9)
        run_check(vm, "stop-leaves-no-kernel", check_stop)
        run_check(vm, "notify-start-blocks", check_notify)
        run_check(vm, "not-world-writable", check_permissions)
        run_check(vm, "journal-no-warnings", check_journal)
        t0 = time.monotonic()
        subprocess.run([*vm.ssh_args(), "systemctl poweroff"],
                       capture_output=True, timeout=60)
        try:
            vm.proc.wait(120)
            report("poweroff", True, f"{time.monotonic() - t0:.0f} s")
        except subprocess.TimeoutExpired:
            report("poweroff", False, "qemu still running after 120 s")
    except VmDown as e:
        report("vm", False, f"{e} (console: {vm.console if vm else '-'})")
    finally:
        if vm is not None:
            try:
                vm.close_ssh()
            except Exception:  # noqa: BLE001 -- cleanup goes on regardless
                pass
            vm.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [n for n, ok in RESULTS if not ok]
    say(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + (f"; boot to /health {boot_s:.0f} s" if boot_s else "")
        + (f"; console log {vm.console}" if vm else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
