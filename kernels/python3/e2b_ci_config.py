"""IPython configuration of the e2b-ci Python kernel.

kernel.json passes this file as --IPKernelApp.extra_config_file: it is read
after the user's own profile configuration (~/.ipython/profile_default),
and command-line options still come last. Nothing is ever written to this
directory (no __pycache__ either), so the kernelspec may live in a
read-only place; IPython's history and matplotlib's font cache stay where
they always are (IPYTHONDIR, MPLCONFIGDIR, both under $HOME by default).
"""

# c (the Config object) is given to this file by traitlets.
c = get_config()  # noqa: F821

# Plain text: no ANSI colour codes, in tracebacks too.
c.InteractiveShell.colors = "NoColor"

# text/plain of long lists, dicts, ...: never "..." after 1000 items.
c.PlainTextFormatter.max_seq_length = 0

# History in memory: every kernel of the sandbox would otherwise share one
# ~/.ipython history.sqlite, and with many kernels busy at once SQLite's
# "database is locked" warnings end up in users' stdout (and a locked
# database can stall a starting kernel). In/Out and execution_count work the
# same without the file.
c.HistoryManager.hist_file = ":memory:"

# matplotlib figures are PNG images (kernel.json selects the inline backend).
c.InlineBackend.figure_formats = {"png"}


def _register_package():
    """Makes e2b_ci_display importable without touching sys.path (the
    user's imports resolve exactly as in a plain kernel), and without ever
    writing __pycache__ next to the sources: the kernelspec directory may
    be read-only, or a packaging DESTDIR; compiling these few files takes
    a few milliseconds."""
    import importlib.machinery as machinery
    import importlib.util
    import os
    import sys

    name = "e2b_ci_display"
    if name in sys.modules:
        return name

    class Loader(machinery.SourceFileLoader):
        def set_data(self, *args, **kwargs):
            pass  # no bytecode cache

    pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    init = os.path.join(pkg, "__init__.py")
    # The finder for the package's own directory (its submodules).
    sys.path_importer_cache[pkg] = machinery.FileFinder(
        pkg, (Loader, machinery.SOURCE_SUFFIXES))
    spec = importlib.util.spec_from_file_location(
        name, init, loader=Loader(name, init), submodule_search_locations=[pkg])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return name


# The rich outputs (e2b/data, e2b/chart, application/json, PIL images).
c.IPKernelApp.extensions.append(_register_package())


# --- Stream output in bounded pieces (e2b_ci_stream.py) ----------------------
# stdout/stderr go out as messages of at most 512 KiB of text each, and the
# iopub socket queues in the kernel instead of dropping (see the module).
def _load_stream_module():
    """Imports e2b_ci_stream.py from this directory the way _register_package
    imports the extension: importable by name for traitlets, no sys.path
    entry, no __pycache__."""
    import importlib.machinery as machinery
    import importlib.util
    import os
    import sys

    name = "e2b_ci_stream"
    if name in sys.modules:
        return sys.modules[name]

    class Loader(machinery.SourceFileLoader):
        def set_data(self, *args, **kwargs):
            pass  # no bytecode cache

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path,
                                                  loader=Loader(name, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


_load_stream_module().install(c)
