"""Keep native libraries' routine log lines off the user's terminal.

MediaPipe's C++ graph logs about eight lines to file descriptor 2 each time a task is
created ("Logging before InitGoogle()", "Created TensorFlow Lite XNNPACK delegate", feedback
manager notices): Python's ``sys.stderr`` never sees them, so they can only be caught at the
descriptor. :func:`native_logs_quieted` points fd 2 at a temp file for the block, then writes
back whatever was not such a routine line (errors, anything unknown, our own output).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# glog INFO/WARNING lines ("I0000 00:00:...", "W0000 ..."), absl's pre-init notice and
# TensorFlow Lite's INFO lines. Errors (E..., F...) and anything else are written back.
ROUTINE = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] .*"
                     rb"|WARNING: Logging before InitGoogle\(\) is written to STDERR"
                     rb"|INFO: .*)$")

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_capture: tempfile._TemporaryFileWrapper | None = None  # type: ignore[type-arg]


def _flush() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def native_logs_quieted() -> Iterator[None]:
    """Drop routine native log lines written to fd 2 during the block (thread-safe: the
    first thread in redirects, the last one out restores and writes back the rest)."""
    global _depth, _saved_fd, _capture
    with _lock:
        if _depth == 0:
            try:
                _flush()
                _capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed on the way out
                _saved_fd = os.dup(2)
                os.dup2(_capture.fileno(), 2)
            except OSError:  # no fd 2 (embedded interpreters): nothing to quiet
                if _capture is not None:
                    _capture.close()
                _capture, _saved_fd = None, None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None and _capture is not None:
                _flush()
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _capture.seek(0)
                kept = [line for line in _capture.read().splitlines(keepends=True)
                        if not ROUTINE.match(line.rstrip(b"\r\n"))]
                _capture.close()
                _capture, _saved_fd = None, None
                if kept:
                    with contextlib.suppress(OSError):
                        os.write(2, b"".join(kept))
