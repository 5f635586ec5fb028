"""e2b-ci zygote: Python kernels forked from a preloaded process.

One long-lived process per (kernelspec, user). It imports the kernel stack
(ipykernel, IPython, our e2b_ci_display extension through e2b_ci_config.py)
and a preload list (default numpy, pandas, matplotlib with the inline
backend), collects and freezes the garbage collector's view of all that, and
then, on request of the daemon, forks one kernel per context. A forked kernel
does what a kernel exec'd from kernel.json does (own session, cgroup,
rlimits, oom_score_adj, user, cwd, environment, signals, fds) and then runs
IPKernelApp exactly as `python3 -m ipykernel_launcher <args>` would, without
paying for the imports again. Protocol: kernels/ZYGOTE-PROTOCOL.md.

Invariants: the zygote never runs user code, never holds a thread or a
ZeroMQ socket when it forks (it checks /proc/self/task before every fork and
refuses otherwise), never keeps a fd it was sent, and exits when its channel
closes or its parent dies. It is single-threaded and serves one request at a
time. Deliberately not done here: deciding when to use a zygote (the daemon
does, and falls back to exec'ing kernel.json on any error reply).

Usage (the daemon's; fd 3 a SOCK_SEQPACKET socket, the channel):
    /usr/bin/python3 e2b_ci_zygote.py [--channel-fd 3]
        [--preload numpy,pandas,matplotlib] [--config FILE]
"""

import sys

# Modules every Python process has before its main module runs.
STARTUP_MODULES = frozenset(sys.modules)

# A script's directory is sys.path[0]; a kernel's sys.path has no such
# entry (its first entry is its cwd), so this one goes before any import.
if sys.path and sys.path[0] == __file__.rpartition("/")[0]:
    del sys.path[0]

import ctypes  # noqa: E402
import errno  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
MAX_REQUEST = 1 << 20  # bytes of one request datagram
MAX_FDS = 8  # fds in one request
CHILD_TIMEOUT = 10.0  # seconds for a forked kernel to report its set-up
REPARENT_TIMEOUT = 2.0  # seconds for the intermediate process to go
DEFAULT_PRELOAD = "numpy,pandas,matplotlib"

# What a kernel imports beyond `import ipykernel.kernelapp` before it has
# answered kernel_info and run `1+1` (measured: sys.modules of an exec'd
# kernel against that import's, ipykernel 6.17, IPython 8.5). Imported here
# so the forked kernel finds them loaded; a name missing in another version
# is skipped (it only costs time).
KERNEL_STACK = (
    "ipykernel.kernelapp",
    "IPython.core.completerlib",
    "faulthandler",
)

# Expansions of preload names: matplotlib means pyplot with the backend the
# kernelspec selects, and pandas' plotting glue when pandas is there too.
# Names after "-" are imported for their dependencies and then forgotten:
# importing matplotlib_inline.backend_inline hooks it into the running
# IPython shell, so its own code must run again in each kernel.
EXPANSIONS = {
    "matplotlib": ("matplotlib", "matplotlib.pyplot",
                   "matplotlib.backends.backend_agg",
                   "-matplotlib_inline.backend_inline"),
}
WITH_BOTH = {("pandas", "matplotlib"): ("pandas.plotting._matplotlib",)}

# Environment variables read once, at interpreter start or when a preloaded
# module is imported. A request whose environment differs from the
# zygote's in one of these cannot be served faithfully by a fork: the error
# reply makes the daemon exec the kernel instead. (Variables read later, such
# as PATH, JPY_PARENT_PID or IPYTHONDIR, may differ; TZ and TMPDIR are
# re-read in the kernel.)
STARTUP_VARS = ("PYTHON", "LC_", "LANG", "LANGUAGE", "HOME", "MPL",
                "MATPLOTLIB", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                "OPENBLAS_", "OMP_", "MKL_", "GOTO", "BLIS_", "NPY_",
                "NUMPY_", "LD_", "MALLOC_", "GLIBC_TUNABLES", "PYDEVD_")
# PYTHONBREAKPOINT is read by each breakpoint() call.
STARTUP_VARS_EXCEPT = ("PYTHONBREAKPOINT",)

RLIMITS = {name[len("RLIMIT_"):].lower(): getattr(resource, name)
           for name in dir(resource) if name.startswith("RLIMIT_")}

_libc = ctypes.CDLL(None, use_errno=True)

# --trace: spawn replies carry the milliseconds at which each step of the
# set-up ended, counted from the request's arrival.
TRACE = None


def mark(name):
    if TRACE is not None:
        TRACE[name] = round(1000 * (time.monotonic() - TRACE["t0"]), 2)


def log(level, text):
    """One line on stderr (the daemon drains it into its log)."""
    try:
        os.write(2, f"e2b-ci-zygote[{os.getpid()}]: {level}: {text}\n".encode(
            "utf-8", "replace"))
    except OSError:
        pass


def prctl(option, arg):
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def open_fds():
    """The fds open in this process (the listing's own fd left out)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def fd_target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def mapped_libraries(words):
    """Paths of the shared libraries mapped in this process whose file name
    contains one of words."""
    found = []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split(None, 5)[-1].strip()
            name = path.rpartition("/")[2]
            if ".so" in name and any(w in name for w in words) and \
                    path not in found:
                found.append(path)
    return found


def thread_count():
    return len(os.listdir("/proc/self/task"))


def thread_names():
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def is_startup_var(name):
    return name.startswith(STARTUP_VARS) and name not in STARTUP_VARS_EXCEPT


class SpawnError(Exception):
    """A step of a kernel's set-up failed: step, errno (0 when none), and a
    sentence for the daemon's log."""

    def __init__(self, step, reason, err=0):
        super().__init__(reason)
        self.step, self.reason, self.errno = step, reason, err

    def doc(self):
        return {"step": self.step, "errno": self.errno, "reason": self.reason}


def os_error(step, e, what):
    return SpawnError(step, f"{what}: {e.strerror or e}", e.errno or 0)


# ---------------------------------------------------------------- preload

class Zygote:
    def __init__(self, chan, preload, config, warm=True):
        self.chan = chan
        self.parent = os.getppid()
        self.started = time.monotonic()
        self.fds_at_start = open_fds()
        self.env = dict(os.environ)
        self.cwd = os.getcwd()
        self.preload = preload
        self.config = config
        self.warm_up = warm
        self.loaded = []
        self.skipped = []
        self.launcher = None

    def load(self):
        """Imports the kernel stack (fatal if ipykernel is missing: no kernel
        could start anyway), the extension and the preload list (each
        failure is logged and skipped)."""
        import importlib
        import importlib.util

        spec = importlib.util.find_spec("ipykernel_launcher")
        if spec is None or not spec.origin:
            raise RuntimeError("ipykernel_launcher not found")
        self.launcher = spec.origin
        importlib.import_module("ipykernel.kernelapp")
        for name in KERNEL_STACK:
            try:
                importlib.import_module(name)
            except Exception:
                pass
        if self.config:
            self.load_config()
        for name in self.preload:
            for part in EXPANSIONS.get(name, (name,)):
                self.import_one(name, part)
        for pair, extra in WITH_BOTH.items():
            if all(p in self.loaded for p in pair):
                for part in extra:
                    self.import_one(pair[0], part)
        if self.warm_up:
            self.warm()

    def import_one(self, name, part):
        import importlib

        forget = part.startswith("-")
        part = part.lstrip("-")
        if name in {s["module"] for s in self.skipped}:
            return
        try:
            importlib.import_module(part)
        except BaseException as e:  # a preload never kills the zygote
            if isinstance(e, KeyboardInterrupt):
                raise
            reason = f"{type(e).__name__}: {e}"
            self.skipped.append({"module": name, "error": reason})
            log("warning", f"preload {name}: {part}: {reason}; skipped")
            return
        if forget:
            self.forget(part)
        elif name not in self.loaded:
            self.loaded.append(name)

    @staticmethod
    def forget(name):
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)

    def load_config(self):
        """Runs the kernelspec's extra config file the way traitlets will in
        the kernel, so that what it imports (e2b_ci_display) is loaded here;
        the kernel reads the file again and finds its modules loaded."""
        try:
            from traitlets.config import Config

            with open(self.config, "rb") as f:
                code = compile(f.read(), self.config, "exec")
            exec(code, {"get_config": Config, "__file__": self.config,
                        "__name__": "__main__"})
        except Exception as e:
            reason = f"{type(e).__name__}: {e}"
            self.skipped.append({"module": self.config, "error": reason})
            log("warning", f"config {self.config}: {reason}; skipped")

    def warm(self):
        """Work every kernel would repeat for its first table or chart and
        that depends on nothing but the installation: the imports a first
        chart makes (PIL's image plugins, the extension's modules), and
        matplotlib's lazily built state (font lookup cache, text layout,
        tick machinery), by drawing one figure to PNG through the
        object-oriented API. pyplot is never touched (no figure manager,
        no backend chosen: that happens in the kernel, with its shell), and
        the fonts matplotlib opened are closed again (an open font file
        would be one file offset shared by every kernel)."""
        import importlib
        import pkgutil

        ext = sys.modules.get("e2b_ci_display")
        if ext is not None:
            for info in pkgutil.iter_modules(ext.__path__):
                try:
                    importlib.import_module(f"e2b_ci_display.{info.name}")
                except Exception:
                    pass
        try:
            importlib.import_module("importlib.metadata")
        except Exception:
            pass
        if "pandas" in sys.modules:
            try:
                warm_pandas()
            except Exception as e:
                log("warning", f"pandas warm-up: {type(e).__name__}: {e}")
        if "matplotlib.pyplot" in sys.modules:
            try:
                warm_matplotlib()
            except Exception as e:
                log("warning", f"matplotlib warm-up: {type(e).__name__}: {e}")

    def quiesce(self):
        """Leaves the process with one thread if a preload started a known
        thread pool: OpenBLAS (numpy's BLAS where libopenblas0-pthread is
        installed) starts one when it is loaded. Its shutdown is the one its
        pthread_atfork handler runs anyway, and the first BLAS call in a
        kernel starts a new pool. (Debian's numpy links libblas.so.3: OpenBLAS
        when installed, else the reference BLAS, which has no threads.)"""
        if thread_count() == 1:
            return
        for lib in mapped_libraries(("blas", "lapack")):
            try:
                fn = getattr(ctypes.CDLL(lib), "blas_thread_shutdown_")
            except (OSError, AttributeError):
                continue
            fn()
            break
        deadline = time.monotonic() + 1.0
        while thread_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.005)

    def freeze(self):
        # A kernel's sys.path: its cwd, then this one as the imports left
        # it (they leave it as the interpreter set it up, in practice).
        self.path = list(sys.path)
        self.preloaded = Preloaded(self.path)
        gc.collect()
        gc.freeze()
        self.preload_fds = open_fds() - self.fds_at_start

    def ready_doc(self):
        return {"type": "ready", "pid": os.getpid(),
                "python": sys.version.split()[0],
                "preloaded": self.loaded, "skipped": self.skipped,
                "threads": thread_count(),
                "modules": len(sys.modules),
                "fds": {str(fd): fd_target(fd)
                        for fd in sorted(self.preload_fds)},
                "ms": round(1000 * (time.monotonic() - self.started))}

    # ------------------------------------------------------------ serving

    def send(self, doc):
        self.chan.send(json.dumps(doc, separators=(",", ":")).encode())

    def serve(self):
        """Answers requests until the channel closes. Returns None, or in a
        forked kernel the Kernel to run."""
        while True:
            try:
                data, anc, flags, _ = self.chan.recvmsg(
                    MAX_REQUEST, socket.CMSG_SPACE(MAX_FDS * 4))
            except InterruptedError:
                continue
            fds = []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    n = len(payload) // 4
                    fds += list(memoryview(payload)[:n * 4].cast("i"))
            if not data and not fds:
                return None  # the daemon closed the channel
            if TRACE is not None:
                TRACE.clear()
                TRACE["t0"] = time.monotonic()
            if os.getppid() != self.parent:
                return None  # the daemon is gone (PDEATHSIG covers it too)
            kernel = None
            try:
                kernel = self.handle(data, fds, flags)
            finally:
                if kernel is None:  # a forked kernel closed them itself
                    close_all(fds)
            if kernel is not None:
                return kernel

    def handle(self, data, fds, flags):
        rid = None
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise SpawnError("request", "request too long (more than "
                                 f"{MAX_REQUEST} bytes or {MAX_FDS} fds)")
            try:
                req = json.loads(data)
            except ValueError as e:
                raise SpawnError("request", f"not JSON: {e}")
            if not isinstance(req, dict):
                raise SpawnError("request", "not a JSON object")
            rid = req.get("id")
            if req.get("type") != "spawn":
                raise SpawnError("request",
                                 f"unknown request type {req.get('type')!r}")
            spec = Spec(req, fds, self)
            spec.check_zygote(self)
            return self.fork(spec)
        except SpawnError as e:
            doc = {"type": "error", "id": rid, "pid": None}
            doc.update(e.doc())
            self.send(doc)
            return None

    def fork(self, spec):
        """Forks the kernel through an intermediate process; sends the
        answer. Returns None, or in the forked kernel its Kernel."""
        n = thread_count()
        if n != 1:
            raise SpawnError("threads", f"the zygote has {n} threads "
                             f"({', '.join(thread_names())}); refusing to "
                             "fork (a preload started them)")
        mark("checked")
        rfd, wfd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            mid = os.fork()
        except OSError as e:
            os.close(rfd)
            os.close(wfd)
            raise os_error("fork", e, "fork")
        if mid == 0:
            os.close(rfd)
            return self.intermediate(spec, wfd)
        os.close(wfd)
        mark("forked")
        status, eof = read_status(rfd, CHILD_TIMEOUT)
        os.close(rfd)
        # Gone by now: the kernel reports only after it was re-parented.
        try:
            os.waitpid(mid, 0)
        except ChildProcessError:
            pass
        self.answer(spec, status, eof)
        return None

    def intermediate(self, spec, wfd):
        """Forks the kernel and exits, so that the kernel is re-parented to
        the daemon (a child subreaper). Returns only in the kernel."""
        try:
            ipid = os.getpid()
            if os.fork() == 0:
                return Kernel(spec, self, wfd, ipid)
        except BaseException as e:
            report(wfd, {"step": "fork", "errno": getattr(e, "errno", 0) or 0,
                         "reason": f"fork: {e}"})
        os._exit(0)

    def answer(self, spec, status, eof):
        """The spawn's answer from the kernel's status lines."""
        pid = status.get("pid")
        if status.get("ok"):
            doc = {"type": "spawned", "id": spec.id, "pid": pid}
            if TRACE is not None:
                mark("replied")
                doc["trace"] = dict(status.get("trace", {}), **{
                    k: v for k, v in TRACE.items() if k != "t0"})
            self.send(doc)
            return
        if "step" not in status and not eof:
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            status = {"step": "timeout", "errno": errno.ETIMEDOUT,
                      "reason": "the forked kernel did not report its "
                                f"set-up within {CHILD_TIMEOUT:g} s"}
        elif "step" not in status:
            status = {"step": "died", "errno": 0,
                      "reason": "the forked kernel exited during its set-up"}
        doc = {"type": "error", "id": spec.id, "pid": pid}
        doc.update({k: status.get(k) for k in ("step", "errno", "reason")})
        self.send(doc)


def warm_pandas():
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"],
                       "c": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    repr(df)
    df._repr_html_()
    df.describe()
    df.groupby("b")[["a"]].sum()
    conv = sys.modules.get("e2b_ci_display.data")
    if conv is not None:
        conv.frame_to_data(df)


def warm_matplotlib():
    import io

    import matplotlib
    from matplotlib import font_manager, pyplot
    from matplotlib._pylab_helpers import Gcf
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mpl_ext = sys.modules.get("e2b_ci_display.mpl")
    charts = sys.modules.get("e2b_ci_display.charts")
    with matplotlib.rc_context():
        if mpl_ext is not None:
            mpl_ext.apply_rc(font_manager)  # its font list, not its rc
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot([0, 1, 2], [1, 3, 2], label="a", marker="o")
        ax.bar([0, 1], [1, 2], label="b")
        ax.set_title("t")
        ax.set_xlabel("x (s)")
        ax.legend()
        if "pandas" in sys.modules and \
                "pandas.plotting._matplotlib" in sys.modules:
            warm_pandas_plot(ax)
        fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
        if charts is not None:
            charts.figure_to_chart(fig)
    font_manager._get_font.cache_clear()
    if getattr(pyplot, "_backend_mod", None) is not None or Gcf.figs:
        raise RuntimeError("pyplot state changed")


def warm_pandas_plot(ax):
    """DataFrame.plot on a given axes; pandas then calls
    pyplot.draw_if_interactive(), which would pick pyplot's backend here:
    it is a no-op for this call."""
    import pandas as pd
    from matplotlib import pyplot

    saved = pyplot.draw_if_interactive
    pyplot.draw_if_interactive = lambda *a, **k: None
    try:
        pd.DataFrame({"a": [1, 2]}).plot(ax=ax)
    finally:
        pyplot.draw_if_interactive = saved


def report(fd, doc):
    """One status line from a forked kernel (or the intermediate) to the
    zygote. Returns whether it was written."""
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode())
        return True
    except OSError:
        return False


def close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def read_status(fd, timeout):
    """The forked kernel's status lines merged, up to EOF (the kernel
    reported or died: eof True) or the timeout."""
    buf = b""
    eof = False
    deadline = time.monotonic() + timeout
    while not eof:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 65536)
        eof = not chunk
        buf += chunk
    status = {}
    for line in buf.splitlines():
        try:
            status.update(json.loads(line))
        except ValueError:
            pass
    return status, eof


# ----------------------------------------------------------- the request

class Spec:
    """A validated spawn request."""

    def __init__(self, req, fds, zygote):
        self.id = req.get("id")
        if not isinstance(self.id, str) or not 0 < len(self.id) <= 64:
            raise SpawnError("request", "id: a string of 1 to 64 characters")
        self.argv = self.strings(req, "argv")
        self.cwd = req.get("cwd")
        if not isinstance(self.cwd, str) or not self.cwd.startswith("/"):
            raise SpawnError("request", "cwd: an absolute path")
        self.env = self.strings(req, "env")
        self.envd = {}
        for item in self.env:
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise SpawnError("request", f"env: {item!r} is not NAME=value")
            self.envd.setdefault(name, value)
        names = req.get("fds")
        if (not isinstance(names, list) or len(names) != len(fds) or
                set(names) - {"stdout", "stderr", "cgroup"} or
                len(set(names)) != len(names)):
            raise SpawnError("request", f"fds: {names!r} does not name the "
                             f"{len(fds)} fds sent (stdout, stderr, cgroup)")
        self.fds = dict(zip(names, fds))
        if "stdout" not in self.fds or "stderr" not in self.fds:
            raise SpawnError("request", "fds: stdout and stderr are required")
        self.user = self.parse_user(req.get("user"))
        self.rlimits = self.parse_rlimits(req.get("rlimits"))
        self.oom = req.get("oom_score_adj")
        if self.oom is not None and (not isinstance(self.oom, int) or
                                     not -1000 <= self.oom <= 1000):
            raise SpawnError("request", "oom_score_adj: -1000 to 1000")
        self.check_argv(zygote)

    @staticmethod
    def strings(req, key):
        v = req.get(key)
        if (not isinstance(v, list) or not v or
                not all(isinstance(s, str) and "\0" not in s for s in v)):
            raise SpawnError("request", f"{key}: a list of strings")
        return v

    @staticmethod
    def parse_user(u):
        if u is None:
            return None
        ok = (isinstance(u, dict) and
              all(isinstance(u.get(k), int) and u[k] >= 0
                  for k in ("uid", "gid")) and
              isinstance(u.get("groups", []), list) and
              all(isinstance(g, int) and g >= 0 for g in u.get("groups", [])))
        if not ok:
            raise SpawnError("request", "user: {uid, gid, groups}")
        return (u["uid"], u["gid"], list(u.get("groups") or [u["gid"]]))

    @staticmethod
    def parse_rlimits(r):
        if r is None:
            return []
        if not isinstance(r, dict):
            raise SpawnError("request", "rlimits: an object")
        out = []
        for name, v in r.items():
            if name not in RLIMITS:
                raise SpawnError("request", f"rlimits: unknown limit {name!r}")
            if (not isinstance(v, list) or len(v) != 2 or
                    not all(isinstance(x, int) and x >= -1 for x in v)):
                raise SpawnError("request", f"rlimits.{name}: [soft, hard], "
                                 "-1 for unlimited")
            lim = tuple(resource.RLIM_INFINITY if x == -1 else x for x in v)
            out.append((name, RLIMITS[name], lim))
        return out

    def check_argv(self, zygote):
        """kernel.json's argv, as the daemon would exec it: this
        interpreter, -m ipykernel_launcher, then the kernel's arguments."""
        a = self.argv
        if (len(a) < 3 or a[1:3] != ["-m", "ipykernel_launcher"] or
                os.path.realpath(a[0]) != os.path.realpath(sys.executable)):
            raise SpawnError("argv", "argv is not "
                             f"[{sys.executable}, -m, ipykernel_launcher, "
                             f"...]: {a[:3]!r}")

    def check_zygote(self, zygote):
        """Refuses what a fork cannot reproduce (the daemon then execs)."""
        for name in sorted(set(self.envd) | set(zygote.env)):
            if is_startup_var(name) and \
                    self.envd.get(name) != zygote.env.get(name):
                raise SpawnError("environment", f"{name} differs from the "
                                 "zygote's (it is read when Python starts)")
        if "matplotlib" in sys.modules and (
                os.path.exists(os.path.join(self.cwd, "matplotlibrc")) !=
                os.path.exists(os.path.join(zygote.cwd, "matplotlibrc"))):
            raise SpawnError("shadowed", f"{self.cwd}/matplotlibrc: "
                             "matplotlib read its settings without it")
        zygote.preloaded.check(self.cwd)


class Preloaded:
    """What the zygote loaded, to tell whether an exec'd kernel would load
    the same: the top-level modules imported after start (the ones before
    are in every Python process), where each came from and its file's
    mtime, the sys.path entries and the site directories that existed."""

    def __init__(self, path):
        self.path = [p for p in path if p]
        self.site_dirs = site_dirs()
        self.exe = os.readlink("/proc/self/exe")
        self.modules = {}  # top name -> (origin, index in path, mtime_ns)
        for name, mod in list(sys.modules.items()):
            if "." in name or name in STARTUP_MODULES:
                continue
            spec = getattr(mod, "__spec__", None)
            origin = getattr(spec, "origin", None)
            if not origin or origin in ("built-in", "frozen"):
                continue
            try:
                mtime = os.stat(origin).st_mtime_ns
            except OSError:
                continue
            index = next((i for i, e in enumerate(self.path)
                          if origin.startswith(e.rstrip("/") + "/")), None)
            self.modules[name] = (origin, index, mtime)
        self.listings = {}

    def names(self, directory):
        """The entries of directory (cached while its mtime holds)."""
        try:
            mtime = os.stat(directory).st_mtime_ns
        except OSError:
            return ()
        cached = self.listings.get(directory)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            names = frozenset(os.listdir(directory))
        except OSError:
            names = frozenset()
        self.listings[directory] = (mtime, names)
        return names

    def found_in(self, directory, below=None):
        """A module this process loaded from a sys.path entry after index
        below (any entry when None) that `import` would now find in
        directory instead, as "name.py", "name/", ...; or None. Modules
        loaded from outside sys.path (the extension, by its own loader) are
        not looked up there."""
        for entry in self.names(directory):
            base = entry.split(".", 1)[0]
            origin, index, _ = self.modules.get(base, (None, None, 0))
            if index is None or (below is not None and index <= below):
                continue
            if entry == base:
                if not any(os.path.exists(os.path.join(directory, entry, i))
                           for i in ("__init__.py", "__init__.pyc")):
                    continue  # a namespace portion never wins over a package
            elif not entry.endswith((".py", ".pyc", ".so")):
                continue
            return entry
        return None

    def check(self, cwd):
        """Raises SpawnError when an exec'd kernel in cwd would not load
        what this process has loaded: step "stale" when the installation
        changed (a newer zygote would be right again), "shadowed" when cwd
        holds a module of the same name (cwd is sys.path[0] in a kernel)."""
        if os.readlink("/proc/self/exe") != self.exe:
            raise SpawnError("stale", f"{self.exe} was replaced")
        now = site_dirs()
        if now != self.site_dirs:
            raise SpawnError("stale", "site directories changed: "
                             f"{sorted(now ^ self.site_dirs)}")
        for name, (origin, index, mtime) in self.modules.items():
            try:
                changed = os.stat(origin).st_mtime_ns != mtime
            except OSError:
                changed = True
            if changed:
                raise SpawnError("stale", f"{origin} changed since the "
                                 "zygote loaded it")
        for i, entry in enumerate(self.path):
            shadow = self.found_in(entry, below=i)
            if shadow:
                raise SpawnError("stale", f"{entry}/{shadow} would now be "
                                 "imported instead of a preloaded module")
        if cwd not in self.path:
            shadow = self.found_in(cwd)
            if shadow:
                raise SpawnError("shadowed", f"{cwd}/{shadow} would shadow a "
                                 "preloaded module in the kernel")


def site_dirs():
    """The site-packages directories `site` would add at start now."""
    import site

    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return frozenset(d for d in dirs if os.path.isdir(d))


# ------------------------------------------------------------ the kernel

class Kernel:
    """A forked kernel: set up with the steps of the daemon's kproc_child
    (server/kproc.c), each step reported as the step of an error; then it is
    run by main()."""

    def __init__(self, spec, zygote, status_fd, intermediate):
        self.spec = spec
        self.status_fd = status_fd
        step = "setup"
        try:
            mark("kernel_forked")
            report(status_fd, {"pid": os.getpid()})
            step = "signals"
            reset_signals()
            step = "setsid"
            os.setsid()
            if spec.oom is not None:
                step = "oom_score_adj"
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write(str(spec.oom))
            step = "stdio"
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(spec.fds["stdout"], 1)
            os.dup2(spec.fds["stderr"], 2)
            os.close(null)
            self.join_cgroup()
            for name, which, lim in spec.rlimits:
                step = f"rlimit {name}"
                resource.setrlimit(which, lim)
            self.become_user()
            step = "dumpable"
            # As after an exec: the zygote is not dumpable (no process of
            # its uid may ptrace it or read its memory), and a uid change
            # clears the flag as well.
            prctl(PR_SET_DUMPABLE, 1)
            step = "chdir"
            os.chdir(spec.cwd)
            step = "fds"
            zygote.chan.close()
            keep = {0, 1, 2, status_fd} | zygote.preload_fds
            for fd in open_fds() - keep:
                os.close(fd)
            mark("kernel_fds")
            step = "python"
            self.python_state(zygote)
            mark("kernel_state")
            # Last: the intermediate's exit (tearing down its copy of the
            # address space) overlaps with the steps above.
            step = "parent"
            self.wait_reparent(intermediate, zygote.parent)
            mark("kernel_reparented")
        except SpawnError as e:
            self.fail(e)
        except OSError as e:
            self.fail(os_error(step, e, step))
        except ValueError as e:  # setrlimit's soft above hard, for one
            self.fail(SpawnError(step, f"{step}: {e}", errno.EINVAL))
        except Exception as e:
            self.fail(SpawnError(step, f"{step}: {type(e).__name__}: {e}"))

    def fail(self, e):
        report(self.status_fd, e.doc())
        os._exit(127)

    def join_cgroup(self):
        fd = self.spec.fds.get("cgroup")
        if fd is None:
            return
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise os_error("cgroup", e, "cannot join the kernel's cgroup")

    def become_user(self):
        u = self.spec.user
        if u is None:
            return
        uid, gid, groups = u
        if os.geteuid() != 0:
            if (os.getuid(), os.getgid()) == (uid, gid) and \
                    set(os.getgroups()) <= set(groups) | {gid}:
                return
            raise SpawnError("user", f"the zygote runs as uid {os.getuid()}"
                             f" and cannot become uid {uid}", errno.EPERM)
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
        except OSError as e:
            raise os_error("user", e, f"cannot become uid {uid} gid {gid}")

    @staticmethod
    def wait_reparent(intermediate, daemon):
        """The kernel must be the daemon's child (pidfd, waitpid, OOM
        verdicts as for an exec'd kernel): once the intermediate process has
        exited, the kernel is re-parented to the daemon, a child subreaper.
        The parent-death signal is set only then (it would fire on the
        intermediate's exit, and a uid change above clears it), and the
        parent checked once more: a daemon that died before the prctl left
        the kernel to init, without the signal."""
        deadline = time.monotonic() + REPARENT_TIMEOUT
        while os.getppid() == intermediate:
            if time.monotonic() > deadline:
                raise SpawnError("parent", "the intermediate process did not "
                                 "exit")
            time.sleep(0.0002)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        ppid = os.getppid()
        if ppid != daemon:
            raise SpawnError("parent", f"re-parented to pid {ppid}, not to "
                             f"the daemon (pid {daemon}): the daemon must be "
                             "a child subreaper (PR_SET_CHILD_SUBREAPER)",
                             errno.ESRCH)

    def python_state(self, zygote):
        """What the interpreter would have read at start in this kernel's
        place, and the state no two kernels may share."""
        spec = self.spec
        os.environ.clear()
        for name, value in spec.envd.items():
            os.environ[name] = value
        sys.path[:] = [spec.cwd] + zygote.path
        import importlib
        importlib.invalidate_caches()
        sys.argv = [zygote.launcher] + spec.argv[3:]
        sys.orig_argv = list(spec.argv)
        set_title(spec.argv)
        time.tzset()
        import tempfile
        tempfile.tempdir = None
        # random reseeds itself after fork; numpy's global state does not.
        np_random = sys.modules.get("numpy.random")
        if np_random is not None:
            np_random.seed()

    def started(self):
        """Tells the zygote that the set-up succeeded (the moment an exec'd
        kernel's CLOEXEC error pipe closes)."""
        mark("kernel_ok")
        doc = {"ok": True}
        if TRACE is not None:
            doc["trace"] = {k: v for k, v in TRACE.items() if k != "t0"}
        if not report(self.status_fd, doc):
            os._exit(127)  # the zygote gave up on this kernel: nobody knows it
        os.close(self.status_fd)

    def run(self):
        self.started()
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        return 0


def reset_signals():
    """Signals as a fresh interpreter has them: all default and unblocked,
    but SIGINT raising KeyboardInterrupt and SIGPIPE, SIGXFSZ ignored."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.set_wakeup_fd(-1)
    for s in signal.valid_signals():
        if s in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_IGN)


def set_title(argv):
    """/proc/PID/cmdline of an exec'd kernel (ps, and whoever looks for the
    connection file there). The new command line goes over the zygote's own
    argv strings, and past their end into the environment strings when it
    is longer (the setproctitle convention, which the kernel honours): the
    environment was just replaced, so nothing reads those strings."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        arg_start, arg_end, env_start, env_end = (int(x)
                                                  for x in fields[45:49])
    except (OSError, ValueError, IndexError):
        return
    room = arg_end - arg_start
    title = b"\0".join(os.fsencode(a) for a in argv) + b"\0"
    if len(title) <= room:
        data = title + b"\0" * (room - len(title))
    elif env_start == arg_end and len(title) <= env_end - arg_start:
        data = b" ".join(os.fsencode(a) for a in argv) + b"\0"
    else:
        data = title[:room - 1] + b"\0"
    ctypes.memmove(arg_start, data, len(data))


# ------------------------------------------------------------------ main

def parse_args(argv):
    import argparse

    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(prog="e2b_ci_zygote.py")
    p.add_argument("--channel-fd", type=int, default=3)
    p.add_argument("--preload", default=DEFAULT_PRELOAD,
                   help="comma-separated modules (empty: none)")
    p.add_argument("--no-warm", dest="warm", action="store_false",
                   help="skip the warm-up drawing (for measurements)")
    p.add_argument("--trace", action="store_true",
                   help="spawn replies carry the set-up's step times")
    p.add_argument("--config", default=os.path.join(here, "e2b_ci_config.py"),
                   help="the kernelspec's extra config file (empty: none)")
    a = p.parse_args(argv)
    a.preload = [m.strip() for m in a.preload.split(",") if m.strip()]
    return a


def main(argv=None):
    """Returns an exit status, or in a forked kernel a Kernel to run."""
    global TRACE
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.trace:
        TRACE = {}
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Kernels of the same uid may not ptrace the zygote or read its memory
    # (it is the template of every future kernel); they get the flag back.
    prctl(PR_SET_DUMPABLE, 0)
    if os.getppid() == 1:
        log("error", "no parent (the daemon is gone)")
        return 1
    try:
        chan = socket.socket(fileno=args.channel_fd)
    except OSError as e:
        log("error", f"channel fd {args.channel_fd}: {e}")
        return 2
    if chan.type != socket.SOCK_SEQPACKET:
        log("error", f"channel fd {args.channel_fd} is not a SOCK_SEQPACKET "
            "socket")
        return 2
    z = Zygote(chan, args.preload, args.config, args.warm)
    try:
        z.load()
    except Exception as e:
        log("error", f"cannot load the kernel stack: {type(e).__name__}: {e}")
        try:
            z.send({"type": "failed", "reason": f"{type(e).__name__}: {e}"})
        except OSError:
            pass
        return 1
    z.quiesce()
    z.freeze()
    if thread_count() != 1:
        log("warning", f"{thread_count()} threads after the preload "
            f"({', '.join(thread_names())}): every spawn will be refused")
    try:
        z.send(z.ready_doc())
        return z.serve() or 0
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    result = main()
    if isinstance(result, Kernel):
        sys.exit(result.run())
    sys.exit(result)
