"""Keeps the kernel able to answer when a cell breaks sys.stdout or sys.stderr.

ipykernel flushes sys.stdout and sys.stderr after every request, outside any
try: once a cell leaves either one unflushable (`sys.stdout = None`, an
object without flush, a closed file), every later request ends with neither
a reply nor an idle status, and the kernel never answers again. After each
cell (IPython's post_execute event, which ipykernel fires before that flush)
a stream whose flush fails is replaced by the kernel's own again, with one
note on stderr saying so. A working replacement (a StringIO, a file) is left
alone.
"""

import sys

NAMES = ("stdout", "stderr")


class Guard:
    def __init__(self):
        # Loaded as an extension, after ipykernel installed its streams.
        self.own = {name: getattr(sys, name) for name in NAMES}

    def __call__(self):
        for name in NAMES:
            stream = getattr(sys, name)
            if stream is self.own[name]:
                continue  # the common case costs no flush
            try:
                stream.flush()
                continue
            except Exception as e:  # None, no flush, closed, a raising flush
                why = f"{type(e).__name__}: {e}"
            setattr(sys, name, self.own[name])
            try:
                self.own["stderr"].write(
                    f"[e2b-ci] sys.{name} could not be flushed ({why}); "
                    f"the kernel's own sys.{name} is back, since the kernel "
                    f"needs one to answer\n")
            except Exception:
                pass


def install(ip):
    guard = Guard()
    ip.events.register("post_execute", guard)
    return guard


def uninstall(ip, guard):
    try:
        ip.events.unregister("post_execute", guard)
    except ValueError:
        pass
