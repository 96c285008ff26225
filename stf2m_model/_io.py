"""Atomic file writes for run directories (shared with fuzzyemo's writers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fuzzyemo._files import atomic_path, write_text_atomic


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then move the temp file over ``path`` (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        write(tmp)
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out, text)
