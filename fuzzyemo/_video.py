"""Inputs for ``annotate``: images, folders of images and videos, decoded in the background.

:func:`collect_sources` turns the user's paths into a checked list of :class:`Source`
(folders expand to their images, sorted by name); every problem found before any work starts
is one line naming the file: a JPEG or PNG cut short or damaged (their structure is walked to
the end, cheaply: OpenCV would decode a truncated JPEG into a grey-bottomed picture without a
word), any other image decoded once. :func:`read_frames` yields RGB frames of all sources in
order, decoded by a background thread into a bounded queue, so decoding the next frame
overlaps landmarking this one (OpenCV releases the GIL while it decodes and converts
colours); a video that ends well before the frame count its header announces (a truncated
file) gives a :class:`MediaWarning` with both counts.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError


class MediaWarning(UserWarning):
    """A damaged input that can still be used in part (a video that ends early)."""

# Still-image suffixes (decoded with cv2.imread); anything else is tried as a video.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                            ".webp", ".pbm", ".pgm", ".ppm", ".pnm", ".sr", ".ras", ".jp2",
                            ".exr", ".hdr", ".pic", ".avif"})
DEFAULT_FPS = 30.0  # for videos whose container reports no frame rate


def require_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "not installed"
        raise InputError(f"reading images and videos needs OpenCV ({why}); install it with: "
                         'pip install "fuzzyemo[video]"') from None
    return cv2


@dataclass(frozen=True)
class Source:
    """One input: a still image or a video. ``n_frames`` is the container's estimate for
    videos (0 if unknown), 1 for images; ``fps`` is 0 for images."""

    path: Path
    kind: str  # "image" | "video"
    n_frames: int = 1
    fps: float = 0.0
    width: int = 0
    height: int = 0
    shown: str | None = None  # the name as the user gave it, when ``path`` was made absolute

    @property
    def name(self) -> str:
        return self.shown if self.shown is not None else str(self.path)


@dataclass
class Frame:
    """One decoded frame. ``index`` is the source's position in the source list; ``number``
    is 1-based within the source (the video's real frame number, also with ``every``);
    ``timestamp`` is seconds from the start of the video (0 for images)."""

    index: int
    source: Source
    number: int
    timestamp: float
    rgb: np.ndarray


def collect_sources(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                    problems: list[str] | None = None) -> list[Source]:
    """Expand and check the inputs: every file must exist, be non-empty and be decodable.

    Folders give their image and video files (sorted; not recursive). Videos are opened and
    their first frame decoded here, and images checked for a known header, so a bad file
    fails before a long run starts. With a ``problems`` list, each bad input is appended to
    it as one line naming the file and skipped instead of stopping the run (corpus runs).
    """
    cv2 = require_cv2()
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]

    def bad(message: str) -> None:
        if problems is None:
            raise InputError(message)
        problems.append(message)

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            media = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES
                     or _looks_like_video(f)]
            if not media:
                bad(f"{p}: folder has no images or videos")
            paths.extend(media)
        elif p.exists():
            paths.append(p)
        else:
            bad(f"{p}: no such file or folder")
    if not paths:
        raise InputError("no inputs given" if problems is None or not problems
                         else f"no usable inputs ({len(problems)} bad: {problems[0]})")
    sources = []
    for p in paths:
        try:
            sources.append(_probe(cv2, p))
        except InputError as exc:
            bad(str(exc))
    if not sources:
        raise InputError(f"no usable inputs ({len(problems or ())} bad: {(problems or [''])[0]})")
    return sources


_VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                             ".wmv", ".flv", ".3gp", ".ogv", ".ts", ".mts", ".m2ts", ".gif"})


def _looks_like_video(p: Path) -> bool:
    return p.suffix.lower() in _VIDEO_SUFFIXES


def _probe(cv2: Any, p: Path) -> Source:
    try:
        st = p.stat()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from None
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: cannot read (permission denied)")
    if st.st_size == 0:
        raise InputError(f"{p}: file is empty")
    # Cached by the file's identity and stamp: the CLI checks every input before the run
    # and annotate() collects them again; the second time is free.
    return _probe_file(cv2, p, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _probe_file(cv2: Any, p: Path, inode: int, size: int, mtime_ns: int) -> Source:
    if p.suffix.lower() in IMAGE_SUFFIXES:
        if not cv2.haveImageReader(str(p)):
            raise InputError(f"{p}: not a readable image (unknown or corrupt header)")
        damage = image_damage(cv2, p)
        if damage:
            raise InputError(f"{p}: damaged image: {damage}")
        return Source(p, "image")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise InputError(f"{p}: cannot decode as an image or a video (corrupt, or a "
                             "format OpenCV cannot read)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{p}: video has no decodable frames (empty or corrupt)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = fps if math.isfinite(fps) and 0 < fps < 10_000 else DEFAULT_FPS
        return Source(p, "video", max(count, 0), fps, frame.shape[1], frame.shape[0])
    finally:
        cap.release()


# A JPEG marker: 0xFF then a code that is neither a stuffed zero, a restart (inside the
# entropy-coded data of a scan) nor another fill byte.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_damage(cv2: Any, path: Path) -> str | None:
    """Why an image file is unusable, or None. JPEG and PNG are walked segment by segment
    to their end marker (a file cut short has none; PNG chunks are CRC-checked), which takes
    milliseconds; other formats are decoded once."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_damage(head + f.read())
        if head == _PNG_SIGNATURE:
            return _png_damage(f)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return "the decoder cannot read it (corrupt or unsupported)" if img is None else None


def _jpeg_damage(data: bytes) -> str | None:
    pos, n = 2, len(data)
    while True:
        m = _JPEG_MARKER.search(data, pos)
        if m is None:
            return (f"the file ends after {n:,} bytes without the JPEG end marker (cut short: "
                    "an interrupted download or copy?)")
        code = data[m.start() + 1]
        if code == 0xD9:  # EOI: the picture is complete (anything after it is not ours)
            return None
        if code == 0x01:  # TEM: no length
            pos = m.end()
            continue
        if m.end() + 2 > n:
            return f"the file ends inside a JPEG segment after {n:,} bytes (cut short)"
        length = struct.unpack(">H", data[m.end():m.end() + 2])[0]
        if length < 2:
            return f"bad JPEG segment length at byte {m.start():,}"
        pos = m.end() + length
        if pos > n:
            return f"the file ends inside a JPEG segment after {n:,} bytes (cut short)"
        # After SOS the entropy-coded data follows; the search skips it to the next marker.


def _png_damage(f: Any) -> str | None:
    offset = 8
    while True:
        header = f.read(8)
        if len(header) < 8:
            return (f"the file ends after {offset:,} bytes without the PNG end chunk (cut "
                    "short: an interrupted download or copy?)")
        length, kind = struct.unpack(">I4s", header)
        body = f.read(length + 4)
        if len(body) < length + 4:
            return f"the file ends inside a PNG {kind.decode('latin-1')!r} chunk (cut short)"
        if zlib.crc32(kind + body[:length]) != struct.unpack(">I", body[length:])[0]:
            return (f"PNG chunk {kind.decode('latin-1')!r} at byte {offset:,} fails its "
                    "checksum (corrupt)")
        if kind == b"IEND":
            return None
        offset += 12 + length


def _to_rgb(cv2: Any, img: np.ndarray) -> np.ndarray:
    """BGR(A)/grey/16-bit OpenCV image -> contiguous RGB uint8."""
    if img.dtype != np.uint8:
        # 16-bit or float images: scale to 8 bits (cv2.imread keeps depth with IMREAD_ANYDEPTH
        # only, so this mostly matters for EXR/HDR).
        scale = 255.0 / 65535.0 if img.dtype == np.uint16 else 255.0
        img = np.clip(img.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _decode(cv2: Any, sources: list[Source], every: int) -> Iterator[Frame]:
    """Decode every source's frames in order (every ``every``-th frame of each video)."""
    for i, src in enumerate(sources):
        if src.kind == "image":
            img = cv2.imread(str(src.path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{src.path}: cannot decode image (corrupt or unsupported)")
            yield Frame(i, src, 1, 0.0, _to_rgb(cv2, img))
            continue
        cap = cv2.VideoCapture(str(src.path))
        try:
            if not cap.isOpened():
                raise InputError(f"{src.path}: cannot open video")
            number = 0
            while True:
                # grab() skips frames without the colour conversion and copy of retrieve().
                if not cap.grab():
                    break
                number += 1
                if (number - 1) % every:
                    continue
                ok, img = cap.retrieve()
                if not ok or img is None:
                    raise InputError(f"{src.path}: cannot decode frame {number}")
                yield Frame(i, src, number, (number - 1) / src.fps, _to_rgb(cv2, img))
            if number == 0:
                raise InputError(f"{src.path}: video has no decodable frames")
            if number < src.n_frames - max(1, src.n_frames // 100):
                yield VideoEndedEarly(src, number)
        finally:
            cap.release()


@dataclass(frozen=True)
class VideoEndedEarly:
    """Decoding stopped before the frame count the video's header announces (slack: 1%, at
    least one frame, for containers that estimate it): the file is truncated or damaged."""

    source: Source
    decoded: int

    def message(self) -> str:
        return (f"{self.source.path}: the video ends after frame {self.decoded} of the "
                f"{self.source.n_frames} its header announces (truncated or damaged file?); "
                f"frames {self.decoded + 1}-{self.source.n_frames} are missing")


def _deliver(item: Any) -> bool:
    """True for a frame; a notice becomes a warning here, in the consumer's thread (where
    the caller's warning filters and catch_warnings apply)."""
    if isinstance(item, VideoEndedEarly):
        warnings.warn(item.message(), MediaWarning, stacklevel=3)
        return False
    return True


_DONE = object()


def read_frames(sources: list[Source], every: int = 1, queue_size: int = 8,
                threaded: bool = True) -> Iterator[Frame]:
    """Yield the frames of all sources in order (every ``every``-th frame of each video).

    With ``threaded`` (the default) a background thread decodes ahead into a queue of at most
    ``queue_size`` frames, so memory stays bounded. Decoding errors surface in the caller as
    :class:`InputError` at the frame where they happen; closing the generator early (an error
    downstream, Ctrl-C) stops the thread.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"every must be a positive integer, got {every!r}")
    cv2 = require_cv2()
    if not threaded:
        for item in _decode(cv2, sources, every):
            if _deliver(item):
                yield item
        return

    q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for frame in _decode(cv2, sources, every):
                if not put(frame):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    worker = threading.Thread(target=run, name="fuzzyemo-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            if _deliver(item):
                yield item
    finally:
        stop.set()
        worker.join(timeout=5)
