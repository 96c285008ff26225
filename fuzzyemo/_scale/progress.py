"""Progress of a run across workers: frames done of the total, frames/s, time left.

Workers send events (:func:`fuzzyemo._scale.pool.emit`): ``["start", unit, worker]``,
``["frames", unit, n]``. :class:`RunProgress` adds them up in the caller and shows them on
stderr: a live bar when stderr is a terminal, otherwise one line every ``every`` finished
units (logs, CI, ``nohup``), and a last line at the end. A unit that starts again (its worker
died) has its frames counted from zero again, so the count never runs ahead of the work.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunProgress:
    """Frames and units done for one run; ``enabled=False`` counts without showing."""

    def __init__(self, units: int, frames: int, *, enabled: bool = True, what: str = "annotate",
                 every: int | None = None, stream: TextIO | None = None,
                 reused: int = 0) -> None:
        self.units_total, self.frames_total = units, max(frames, 0)
        self.what, self.reused = what, reused
        self.stream = stream if stream is not None else sys.stderr
        self.per_unit: dict[int, int] = {}
        self.units_done = self.units_failed = 0
        self.frames_done = 0
        self.t0 = time.monotonic()
        self.window: deque[tuple[float, int]] = deque([(self.t0, 0)])
        # Plain lines when stderr is not a terminal: about 20 per run by default.
        self.every = every if every is not None else max(1, units // 20)
        self.enabled = enabled
        self._bar: Any = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            self._bar = self._rich_bar()

    # -- events -------------------------------------------------------------------
    def event(self, event: list) -> None:
        kind, unit = event[0], int(event[1])
        if kind == "start":
            self._count(unit, -self.per_unit.get(unit, 0))  # a retry starts from zero
        elif kind == "frames":
            self._count(unit, int(event[2]))

    def _count(self, unit: int, n: int) -> None:
        if n:
            self.per_unit[unit] = self.per_unit.get(unit, 0) + n
            self.frames_done += n
            self._refresh()

    def finished(self, unit: int, frames: int, estimate: int, failed: bool = False) -> None:
        """A unit is done: its real frame count replaces the container's estimate."""
        self.frames_done -= self.per_unit.pop(unit, 0)
        if failed:
            self.units_failed += 1
            self.frames_total -= estimate
        else:
            self.units_done += 1
            self.frames_done += frames
            self.frames_total += frames - estimate
        self._refresh()
        finished = self.units_done + self.units_failed
        if self._bar is None and self.enabled and finished % self.every == 0 \
                and finished < self.units_total:
            self._line()

    # -- numbers ------------------------------------------------------------------
    def fps(self) -> float:
        """Frames per second over the last 10 s (the whole run when shorter)."""
        now = time.monotonic()
        self.window.append((now, self.frames_done))
        while len(self.window) > 2 and now - self.window[1][0] > 10.0:
            self.window.popleft()
        t, n = self.window[0]
        return (self.frames_done - n) / (now - t) if now > t else 0.0

    def eta(self) -> float | None:
        fps = self.fps()
        left = self.frames_total - self.frames_done
        return left / fps if fps > 0 and left >= 0 else None

    def text(self) -> str:
        eta = self.eta()
        parts = [f"{self.what}: {self.units_done}/{self.units_total} sources",
                 f"{self.frames_done}/{max(self.frames_total, self.frames_done)} frames",
                 f"{self.fps():.1f} frames/s", f"{_clock(time.monotonic() - self.t0)} elapsed"]
        if eta is not None and self.units_done + self.units_failed < self.units_total:
            parts.append(f"ETA {_clock(eta)}")
        if self.units_failed:
            parts.append(f"{self.units_failed} failed")
        if self.reused:
            parts.append(f"{self.reused} reused")
        return ", ".join(parts)

    # -- display ------------------------------------------------------------------
    def _line(self) -> None:
        print(self.text(), file=self.stream, flush=True)

    def _rich_bar(self) -> Any:
        from rich.console import Console
        from rich.progress import TextColumn

        from .._progress import rich_bar

        bar = rich_bar(TextColumn("{task.fields[fps]:6.1f} frames/s"),
                       console=Console(file=self.stream), transient=False,
                       speed_estimate_period=10.0)
        self._task = bar.add_task(self._describe(), total=max(self.frames_total, 1), fps=0.0)
        bar.start()
        return bar

    def _describe(self) -> str:
        text = f"{self.what} {self.units_done}/{self.units_total} sources"
        return text + (f", {self.units_failed} failed" if self.units_failed else "")

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.frames_done,
                             total=max(self.frames_total, self.frames_done, 1),
                             description=self._describe(), fps=self.fps())

    def close(self, ok: bool = True) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
            self._bar = None
        elif self.enabled and ok:
            self._line()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(ok=exc_type is None)
