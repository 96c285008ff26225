"""Units of work: what one worker processes on its own, and what one output part holds.

A :class:`Unit` is a list of sources that must be processed together plus the name of the
function that processes them (``runner``, ``"module:function"``). The runner is named, not
looked up in a registry, so that a worker process or a Dask worker can run any kind of unit
by importing its module: images and videos through MediaPipe (:func:`media_units`) are one
kind; other kinds of source (landmark tables, ...) add their own runner and grouping.

For images and videos a unit is one source, except under ``baseline="self"``, where the
stills of one folder are calibrated together and so form one unit. Everything a unit's rows
depend on is inside the unit, which is why the output is the same whether units run one
after the other, in parallel processes or on a cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import head_tail_sha256
from .._video import Source

MEDIA_RUNNER = "fuzzyemo._scale.annotate_run:run_media_unit"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Unit:
    """Sources processed together by ``runner``; ``key`` identifies them across runs."""

    runner: str
    sources: tuple[Source, ...]
    key: str  # absolute path(s): the part's name is derived from it
    label: str  # what messages call it: the source as given, or "stills in DIR"

    @property
    def frames(self) -> int:
        """Frames expected (containers' estimates for videos; for the progress total)."""
        return sum(s.n_frames if s.kind == "video" else 1 for s in self.sources)

    def expected_frames(self, every: int) -> int:
        return sum(-(-max(s.n_frames, 1) // every) if s.kind == "video" else 1
                   for s in self.sources)

    @property
    def part_name(self) -> str:
        """``<readable stem>-<16 hex of sha256(key)>.parquet``: unique per key, stable across
        runs and input orders (so a rerun finds its parts), safe on every filesystem."""
        stem = _UNSAFE.sub("_", self.label.rstrip("/").replace(os.sep, "/").rsplit("/", 1)[-1])
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{stem[:60].strip('._') or 'source'}-{digest[:16]}.parquet"

    def absolute(self) -> Unit:
        """The same unit with absolute source paths (names unchanged), for workers whose
        working directory is not the caller's (a Dask cluster)."""
        srcs = tuple(dataclasses.replace(s, path=Path(os.path.abspath(s.path)), shown=s.name)
                     for s in self.sources)
        return dataclasses.replace(self, sources=srcs)

    def sizes(self) -> list[int]:
        """The sources' sizes in bytes now (part of the resume check)."""
        return [os.path.getsize(s.path) for s in self.sources]

    def probes(self) -> list[str]:
        """A cheap fingerprint of each source now (part of the resume check): sha256 of its
        first and last 64 KiB. A file replaced by another of the same size almost always
        differs there (container headers, index, trailer), at 128 KiB read per source
        instead of the whole video."""
        return [head_tail_sha256(s.path) for s in self.sources]


def media_units(sources: Sequence[Source], baseline: Any) -> list[Unit]:
    """Images and videos -> units, in input order (a group sits at its first member).

    Under ``baseline == "self"`` the stills of one folder are calibrated on each other, so
    they make one unit; otherwise every source is its own unit.
    """
    units: list[Unit] = []
    groups: dict[str, list[Source]] = {}
    order: list[str | Source] = []
    for s in sources:
        if baseline == "self" and s.kind == "image":
            folder = os.path.abspath(s.path.parent)
            if folder not in groups:
                groups[folder] = []
                order.append(folder)
            groups[folder].append(s)
        else:
            order.append(s)
    for item in order:
        if isinstance(item, str):
            members = tuple(groups[item])
            # Keyed by the folder, not its members: a still added later replaces the part
            # (the resume check compares the members) instead of adding a second one.
            key = "stills:" + item
            units.append(Unit(MEDIA_RUNNER, members, key,
                              f"stills in {members[0].path.parent}"))
        else:
            units.append(Unit(MEDIA_RUNNER, (item,), os.path.abspath(item.path), item.name))
    return units


def resolve_runner(name: str) -> Callable[..., Any]:
    """``"module:function"`` -> the function (imported in whichever process runs the unit)."""
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)
