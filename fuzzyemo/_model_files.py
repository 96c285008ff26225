"""Vendored model files: read once per (path, mtime, size), checked against a sha256.

The landmarker and the full-range detector are both vendored ``.tflite``/``.task`` files whose
hashes are pinned; a damaged or replaced file must stop the run with one line, not produce
silently different landmarks.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ._errors import InputError

INSTALL_HINT = 'pip install "fuzzyemo[video]"'

_HASHES: dict[int, tuple[bytes, str]] = {}


@lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> bytes:
    return Path(path).read_bytes()


def sha256_of(data: bytes) -> str:
    """sha256 of model bytes, remembered for the cached bytes objects (every landmarker of a
    run, e.g. the crop landmarker, then checks the same bytes without hashing megabytes again)."""
    hit = _HASHES.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    digest = hashlib.sha256(data).hexdigest()
    if len(_HASHES) >= 8:
        _HASHES.clear()
    _HASHES[id(data)] = (data, digest)
    return digest


def read_model_file(path: str | os.PathLike, sha256: str | None, what: str) -> bytes:
    """The bytes of model file ``path`` (``what`` names it in errors, e.g. "face detector
    model"), checked against ``sha256`` (None skips the check for a user's own model)."""
    p = Path(path)
    try:
        st = p.stat()
        data = _read(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} ({exc.strerror}); "
                         f"reinstall with: {INSTALL_HINT}") from None
    if sha256 is not None:
        got = sha256_of(data)
        if got != sha256:
            raise InputError(f"{p}: {what} has sha256 {got[:12]}..., expected "
                             f"{sha256[:12]}... (corrupt or replaced file; reinstall fuzzyemo)")
    return data
