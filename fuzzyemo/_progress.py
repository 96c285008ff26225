"""Progress on stderr for long jobs, on a terminal and off it.

On a terminal: a rich bar (description, bar, done/total, elapsed, time left). Anywhere else
(a log file, CI, ``nohup``), where a bar would print nothing until the end: one plain line
each time another tenth of the job is done, and at least every ``LINE_EVERY_S`` seconds::

    meta-training: 30/100 steps (30%), 12.5 steps/s, 6 s left, loss 1.234 acc 0.41
"""

from __future__ import annotations

import time
from typing import Any

LINE_EVERY_S = 60.0  # off a terminal: a line at least this often while work goes on


def rich_bar(*extra_columns: Any, console: Any, **progress_options: Any) -> Any:
    """The project's one bar layout: description, bar, done/total, ``extra_columns``,
    elapsed, time left (a ``rich.progress.Progress``, not started)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *extra_columns, TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, **progress_options)


class Reporter:
    """``with Reporter("inference", total, unit="rows") as bar: bar.advance(n)``.

    ``enabled=False`` prints nothing. ``fields`` (e.g. ``loss``) are shown after the counts
    with :meth:`update`; ``field_format`` formats them (default ``name value``)."""

    def __init__(self, description: str, total: int | None, *, unit: str = "",
                 enabled: bool = True, console: Any = None, transient: bool = True,
                 field_format: str | None = None, auto_lines: bool = True) -> None:
        from rich.console import Console

        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.console = console if console is not None else Console(stderr=True,
                                                                   highlight=False)
        self.field_format = field_format
        self.completed = 0
        self.fields: dict[str, Any] = {}
        self._bar: Any = None
        self._task: Any = None
        self._start = time.perf_counter()
        self._last_line = self._start
        self._last_tenth = 0
        self._transient = transient
        self.lines = not self.console.is_terminal  # plain lines instead of a bar
        # Off a terminal, a line every tenth (and every LINE_EVERY_S); auto_lines=False leaves
        # the lines to the caller's line() (training prints one per logged step).
        self.auto_lines = auto_lines

    # -- context -----------------------------------------------------------------
    def __enter__(self) -> Reporter:
        self._start = self._last_line = time.perf_counter()
        if self.enabled and not self.lines:
            from rich.progress import TextColumn

            extra = ([TextColumn(self.unit)] if self.unit else []) \
                + ([TextColumn("{task.fields[text]}")] if self.field_format else [])
            self._bar = rich_bar(*extra, console=self.console, transient=self._transient)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, text="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled and self.lines and exc[0] is None and self.completed \
                and self._last_tenth < 10:
            self._line()  # the final count, when the last tenth was not reached exactly

    # -- updates -----------------------------------------------------------------
    def advance(self, n: int = 1, **fields: Any) -> None:
        self.update(self.completed + n, **fields)

    def update(self, completed: int, total: int | None = None, **fields: Any) -> None:
        self.completed = int(completed)
        if total is not None:
            self.total = total
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, total=self.total,
                             text=self._field_text())
            return
        if not self.auto_lines:
            return
        now = time.perf_counter()
        tenth = 10 * self.completed // self.total if self.total else 0
        if tenth > self._last_tenth or now - self._last_line >= LINE_EVERY_S:
            self._line(now)

    def line(self, **fields: Any) -> None:
        """Print the status line now (off a terminal only; a bar shows it already)."""
        self.fields.update(fields)
        if self.enabled and self.lines and self._bar is None:
            self._line()

    def description_is(self, text: str) -> None:
        """Change the description (e.g. the file being worked on)."""
        self.description = text
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    # -- plain lines ---------------------------------------------------------------
    def _field_text(self) -> str:
        if not self.fields or not self.field_format:
            return ""
        try:
            return self.field_format.format(**self.fields)
        except (KeyError, ValueError, TypeError):
            return ""

    def _line(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._last_line = now
        if self.total:
            self._last_tenth = max(self._last_tenth, 10 * self.completed // self.total)
        elapsed = max(now - self._start, 1e-9)
        rate = self.completed / elapsed
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.description}: {self.completed:,}"
                 + (f"/{self.total:,}{unit} ({100 * self.completed // self.total}%)"
                    if self.total else unit)]
        if self.completed:
            parts.append(f"{rate:,.1f}{unit or ' done'}/s")
            if self.total and self.completed < self.total and rate > 0:
                parts.append(f"{(self.total - self.completed) / rate:,.0f} s left")
        text = self._field_text()
        if text:
            parts.append(text)
        self.console.print(", ".join(parts), markup=False, highlight=False, soft_wrap=True)
