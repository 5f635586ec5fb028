"""stdout/stderr of the e2b-ci Python kernel, published in bounded pieces.

ipykernel's OutStream buffers what a cell writes and publishes the whole
buffer as one `stream` message when it flushes (every 0.2 s, or on
flush()): `print("y" * 300_000_000)` becomes one 300 MB message, which every
hop (ZeroMQ, the daemon's parser, its NDJSON encoder) then holds whole.
ChunkedOutStream publishes the same text, in the same order, as messages of
at most PIECE (512 KiB) of UTF-8 (a message of at most 3 MiB even when all
of it is control characters, which JSON writes as \\u00XX) (cut after a newline where one is in the second
half of the piece, so lines stay whole where they can), and flushes as soon
as a piece's worth is buffered instead of waiting for the timer.

install(c) also makes the iopub socket queue without limit (SNDHWM 0): the
daemon reads iopub with a small receive queue and lets the kernel hold what
it has not read yet. With ZeroMQ's default of 1000 messages a PUB socket
drops messages silently once that many wait, so a daemon busy for a moment
would lose output (or the `status: idle` that ends a cell).

Written against Debian 12's ipykernel 6.17; only OutStream._flush_buffer,
write() and IPKernelApp.init_iopub are hooked, each calling the original.
"""

import zmq
from ipykernel.iostream import OutStream
from ipykernel.kernelapp import IPKernelApp

# Largest text of one stream message, in bytes of UTF-8.
PIECE = 512 * 1024


def pieces(data, piece=PIECE):
    """data in consecutive slices of at most `piece` bytes as UTF-8."""
    # An ASCII str has one byte per character (isascii() is O(1)); else a
    # character takes at most four.
    step = piece if data.isascii() else piece // 4
    i, n = 0, len(data)
    while i < n:
        j = min(i + step, n)
        if j < n:
            nl = data.rfind("\n", i + step // 2, j)
            if nl >= 0:
                j = nl + 1
        yield data[i:j]
        i = j


class ChunkedOutStream(OutStream):
    """OutStream whose flush publishes the buffer in pieces (see above)."""

    _rest = None  # the pieces of the text being published; IO thread only
    _early = False  # an early flush is scheduled

    def _flush_buffer(self):
        # OutStream._flush() publishes what this returns; _flush() below
        # calls it until the whole buffer went out, one piece per call.
        if self._rest is None:
            self._rest = pieces(super()._flush_buffer())
        piece = next(self._rest, "")
        if not piece:
            self._rest = None
        return piece

    def _flush(self):
        self._early = False
        super()._flush()
        while self._rest is not None:
            super()._flush()

    def write(self, string):
        n = super().write(string)
        # A piece's worth waiting: publish it now rather than after
        # flush_interval, so the buffer never grows far past a piece.
        # (tell() counts characters; the pieces themselves count bytes.)
        if (not self._early and self.pub_thread is not None
                and self._is_master_process()
                and self._buffer.tell() >= PIECE):
            self._early = True
            self.pub_thread.schedule(self._flush)
        return n


def _init_iopub(self, context, _orig=IPKernelApp.init_iopub):
    context.setsockopt(zmq.SNDHWM, 0)  # default for the sockets made now
    try:
        _orig(self, context)
    finally:
        context.sockopts.pop(zmq.SNDHWM, None)


def install(c):
    """Called by e2b_ci_config.py with the kernel's Config, before the
    kernel makes its sockets and streams."""
    c.IPKernelApp.outstream_class = __name__ + ".ChunkedOutStream"
    IPKernelApp.init_iopub = _init_iopub
