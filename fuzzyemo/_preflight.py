"""Checks run before the work starts: every path a command will read or write.

A command calls these on all its inputs and outputs first, so a mistake costs a second, not
the run: an output that cannot be written (missing or read-only folder, no permission, a
directory in the way, a wrong extension, the input itself) and an input that cannot be read
are each one :class:`InputError` naming the path. What cannot be known in advance (the disk
filling up) is reported by the writers themselves (:mod:`fuzzyemo._files`), by path too.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._errors import InputError
from ._files import check_parent, os_reason

TABLE_SUFFIXES = (".parquet", ".csv")
DEVICES_HINT = "auto, cpu, cuda or cuda:N"


def probe_writable(folder: Path, shown: str | os.PathLike) -> None:
    """Create and remove a temp file in ``folder``: the only sure test that writing works
    there (read-only mounts, permissions, ACLs, quotas with no inode left)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fuzzyemo-check.", dir=folder)
    except OSError as exc:
        raise InputError(f"{shown}: cannot write to {folder} ({os_reason(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike, *, option: str = "-o",
                 suffixes: Sequence[str] | None = TABLE_SUFFIXES,
                 inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """An output file: the right extension, a writable folder that exists, no directory in
    the way, and not one of ``inputs`` (writing would destroy it). Returns the path."""
    out = Path(path)
    if suffixes is not None and out.suffix.lower() not in suffixes:
        got = f"ends in {out.suffix!r}" if out.suffix else "has no extension"
        raise InputError(f"{option} {out}: {got}; the output must end in "
                         + " or ".join(suffixes))
    check_parent(out)
    for item in inputs:
        if _same_file(out, Path(item)) or out.resolve() == Path(item).resolve():
            raise InputError(f"{option} {out} is also an input: writing it would replace "
                             "the input; choose another name")
    probe_writable(out.parent, out)
    return out


def check_distinct(named: dict[str, str | os.PathLike | None]) -> None:
    """Two outputs of one command must not be the same file (the second would replace the
    first): ``named`` maps each option to its path (None when not given)."""
    seen: dict[Path, str] = {}
    for option, path in named.items():
        if path is None:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {option} name the same file {path}; give each "
                             "its own name")
        seen[key] = option


def check_output_dir(path: str | os.PathLike, option: str = "-o") -> Path:
    """An output folder (made if missing): not a file, and creatable and writable where it
    goes. Returns the path."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: is a file, not a directory")
    base = out
    while not base.exists():  # the nearest existing folder is where it will be created
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise InputError(f"{option} {out}: {base} is a file, not a directory")
    probe_writable(base, out)
    return out


def check_input_file(path: str | os.PathLike, what: str = "input",
                     suffixes: Sequence[str] | None = None) -> Path:
    """An input file that exists, is a file (not a folder), is readable and not empty."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory; give the {what} file")
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise InputError(f"{p}: the {what} must end in " + " or ".join(suffixes))
    try:
        with open(p, "rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({os_reason(exc)})") from None
    if empty:
        raise InputError(f"{p}: file is empty")
    return p


def check_device(name: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N (checked without importing torch; whether a
    CUDA device is present is checked when the model is placed)."""
    if name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name):
        return name
    hint = " (use cuda for an NVIDIA GPU)" if name.lower() in ("gpu", "nvidia") else ""
    raise InputError(f"--device {name!r} is not a device fuzzyemo trains on: use "
                     f"{DEVICES_HINT}{hint}")
