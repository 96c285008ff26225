"""File helpers: atomic writes (a temp file in the target's directory, renamed over it on
success: readers never see half a file, a failed write leaves none) and content hashes.

A failed write (read-only file system, full disk, permission, a directory in the way) is an
:class:`InputError` naming the user's path and the reason, never the hidden temp file.
Inside :func:`commit_together`, atomic writes are staged and renamed together at the end of
the block, in the order they were written, with Ctrl-C held back while the names change.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._errors import InputError


def default_mode() -> int:
    """0o666 minus the process umask: the mode a plain open() would have given."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def os_reason(exc: BaseException) -> str:
    """A short lower-case reason for an OS error ('read-only file system', 'no space left on
    device'), also for libraries (pyarrow) that put the errno only into the message."""
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        m = re.search(r"\[errno (\d+)\]", str(exc), re.I)
        code = int(m[1]) if m else None
    if isinstance(code, int) and code > 0:
        text = os.strerror(code)
    else:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:1].lower() + text[1:]


def write_error(path: str | os.PathLike, exc: BaseException) -> InputError:
    """The one-line error for a failed write of ``path`` (the user's name for it)."""
    code = getattr(exc, "errno", None)
    if code == errno.EISDIR or (code in (errno.EEXIST, errno.ENOTEMPTY) and Path(path).is_dir()):
        return InputError(f"{path}: is a directory; give a file name")
    return InputError(f"{path}: cannot write ({os_reason(exc)})")


def check_parent(out: Path) -> None:
    """The folder ``out`` goes into must exist and be a folder; ``out`` must not be one."""
    parent = out.parent
    if not parent.exists():
        raise InputError(f"{out}: output directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{out}: {parent} is a file, not a directory")
    if out.is_dir():
        raise InputError(f"{out}: is a directory; give a file name")


# Staged renames of the enclosing commit_together() block (None outside one).
_STAGED: contextvars.ContextVar[list[tuple[str, Path]] | None] = contextvars.ContextVar(
    "fuzzyemo_staged", default=None)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temp path next to ``path``; when the block succeeds, rename it over ``path``
    (inside :func:`commit_together`: at the end of that block)."""
    out = Path(path)
    check_parent(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
    except OSError as exc:
        raise write_error(out, exc) from None
    os.close(fd)
    try:
        try:
            yield tmp
            os.chmod(tmp, default_mode())  # mkstemp creates 0600
            staged = _STAGED.get()
            if staged is not None:
                staged.append((tmp, out))
                return
            os.replace(tmp, out)
        except OSError as exc:
            raise write_error(out, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def commit_together() -> Iterator[None]:
    """Stage every atomic write of the block; on success rename them all, in the order they
    were written (write the file that marks a finished job last), with Ctrl-C held back
    until the last rename. On failure or Ctrl-C inside the block, nothing is renamed and
    every staged temp file is removed: the old outputs, if any, stay as they were."""
    staged: list[tuple[str, Path]] = []
    token = _STAGED.set(staged)
    try:
        yield
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _STAGED.reset(token)
    with hold_interrupts() as held:
        for i, (tmp, out) in enumerate(staged):
            try:
                os.replace(tmp, out)
            except OSError as exc:
                for later, _ in staged[i:]:
                    Path(later).unlink(missing_ok=True)
                raise write_error(out, exc) from None
    if held:
        raise InterruptedAfterWriting([out for _, out in staged])


class InterruptedAfterWriting(KeyboardInterrupt):
    """Ctrl-C arrived while finished outputs were being renamed into place: they all were
    (``written``), so the job is complete; the interrupt is delivered afterwards."""

    def __init__(self, written: list[Path]):
        super().__init__()
        self.written = list(written)


@contextmanager
def hold_interrupts() -> Iterator[list[Any]]:
    """Hold Ctrl-C (SIGINT) back for the block: for a few renames that must all happen or
    none. Yields a list that is non-empty after the block when Ctrl-C was pressed during it
    (the caller delivers it). Outside the main thread (where Python handles no signals) and
    under a non-default handler it changes nothing."""
    received: list[Any] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text (LF line ends) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return Path(path)


def save_png(fig: Any, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Save a matplotlib figure as PNG atomically. Without the 'Software' text chunk (and
    matplotlib writes no date into PNGs) the same figure gives the same bytes."""
    with atomic_path(path, ".png") as tmp, open(tmp, "wb") as f:  # closed if the write fails
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def head_tail_sha256(path: str | os.PathLike, span: int = 1 << 16) -> str:
    """sha256 of a file's first and last ``span`` bytes (the whole file when it is shorter
    than two spans): a fingerprint that costs two small reads, not a pass over the file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        if size <= 2 * span:
            h.update(f.read())
        else:
            h.update(f.read(span))
            f.seek(size - span)
            h.update(f.read(span))
    return h.hexdigest()
