"""``annotate`` at scale: units of work run in parallel, each written as a part or gathered.

:func:`annotate_to` is what ``fuzzyemo annotate`` runs: check the output and every input
before any work, group the sources into units (:mod:`.units`), skip the units whose part is
already there (resume), run the rest where :class:`~.pool.Where` says, show progress across
workers, and write either one table or one part per unit. :func:`annotate_units` is the
in-memory form behind :func:`fuzzyemo.annotate`.

Byte-identity: a unit's rows depend only on the unit (its sources, the rules and options),
never on which worker ran it or on the other units; the single file is the units' tables
concatenated in input order. So one worker, N processes and a Dask cluster write the same
bytes (tests/test_scale.py checks it).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .._errors import InputError, RuleBaseError
from .._files import file_sha256
from .._geometry import NeutralWarning
from .._video import Source, collect_sources
from .parts import Output, is_finished, part_record, resume_key
from .pool import TaskFailed, Where, cancelled, emit, run_tasks, worker_name
from .progress import RunProgress
from .units import Unit, media_units, resolve_runner

PROGRESS_FLUSH_S = 0.25  # workers send their frame counts at most this often
# Imported once by the local forkserver, so each worker process starts in a fraction of the
# time (numpy, pandas, pyarrow, OpenCV, MediaPipe: ~1 s of CPU per process otherwise).
PRELOAD = ("fuzzyemo._scale.annotate_run", "fuzzyemo._annotate", "fuzzyemo._mediapipe",
           "pyarrow.parquet")


class RunCancelled(Exception):
    """The caller cancelled the run while this unit was running."""


# ----------------------------------------------------------------------------- payloads
@dataclass
class AnnotateJob:
    """What every unit of one run shares: the options and the parsed rules. Travels to the
    workers (``prep``, a future in the calling process, does not: inline runs only)."""

    options: Any  # fuzzyemo._annotate.AnnotateOptions
    rules: tuple[Any, Any, Any] | None  # (RuleBase, Calibration, LandmarkScheme)
    versions: dict[str, str]
    prep: Future | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["prep"] = None
        return state

    def prepared(self) -> tuple[Any, Any, Any, Any]:
        """(RuleBase, Engine, Calibration, LandmarkScheme); the engine compiled once per
        process (it is 6 MB pickled; the rule base 40 kB)."""
        if self.prep is not None:
            return self.prep.result()
        rb, cal, scheme = self.rules
        key = (rb.sha256, repr(sorted(rb.options.__dict__.items())), rb.lambda_fcis,
               rb.lambda_fkis)
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = rb.compile()
        return rb, engine, cal, scheme


_ENGINES: dict[Any, Any] = {}


@dataclass
class UnitTask:
    index: int  # position among this run's tasks (progress events use it)
    unit: Unit
    job: AnnotateJob
    output: Output | None = None  # a dataset: the worker writes the unit's part there
    record: dict[str, Any] | None = None  # the part's "part" metadata (resume key, sources)
    reraise: bool = False  # in-memory annotate(): errors propagate as they are


@dataclass
class UnitResult:
    index: int
    error: str | None = None
    table: pd.DataFrame | None = None
    rows: int = 0
    frames: int = 0
    faces: int = 0
    notes: list[str] = field(default_factory=list)
    part: str | None = None
    worker: str = ""


# ----------------------------------------------------------------------------- worker side
class _Reporter:
    """Counts frames for the progress display; sends them every PROGRESS_FLUSH_S and checks
    whether the run was cancelled (then the unit stops between two frames)."""

    def __init__(self, index: int) -> None:
        self.index, self.pending, self.last = index, 0, time.monotonic()

    def step(self, source: Any = None) -> None:
        self.pending += 1
        now = time.monotonic()
        if now - self.last >= PROGRESS_FLUSH_S:
            self.last = now
            self.flush()
            if cancelled():
                raise RunCancelled

    def flush(self) -> None:
        if self.pending:
            emit(["frames", self.index, self.pending])
            self.pending = 0


def run_media_unit(unit: Unit, job: AnnotateJob, reporter: Any) -> pd.DataFrame:
    """The runner of image/video units: MediaPipe, measurements, labels (one unit)."""
    from .._annotate import annotate_sources

    if job.prep is not None and not job.prep.done():
        # Inline run: the rules are still being parsed; landmark meanwhile.
        return annotate_sources(list(unit.sources), job.options, prep=job.prep,
                                progress=reporter)
    return annotate_sources(list(unit.sources), job.options, prepared=job.prepared(),
                            progress=reporter)


def _check_versions(job: AnnotateJob) -> None:
    from .._mediapipe import mediapipe_version
    from .._version import __version__

    here = {"fuzzyemo": __version__, "mediapipe": mediapipe_version()}
    for name, want in job.versions.items():
        if here.get(name) != want:
            raise InputError(f"worker {worker_name()} has {name} {here.get(name)}, the caller "
                             f"{want}: install the same versions on every worker (outputs "
                             "would differ)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, InputError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def execute_unit(task: UnitTask) -> UnitResult:
    """Run one unit where this process is (inline, a worker process, a Dask worker)."""
    emit(["start", task.index, worker_name()])
    reporter = _Reporter(task.index)
    try:
        _check_versions(task.job)
        runner = resolve_runner(task.unit.runner)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NeutralWarning)
            df = runner(task.unit, task.job, reporter)
        reporter.flush()
        notes = [str(w.message) for w in caught if issubclass(w.category, NeutralWarning)]
        for w in caught:  # anything else is shown where it happened
            if not issubclass(w.category, NeutralWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        meta = dict(df.attrs["fuzzyemo"])
        result = UnitResult(task.index, rows=len(df), frames=int(meta.get("frames", len(df))),
                            faces=int(df["success"].sum()) if "success" in df else 0,
                            notes=notes, worker=worker_name())
        if task.output is None:
            result.table = df
            return result
        record = dict(task.record or {})
        record["sources"] = [dict(s, sha256=file_sha256(src.path)) for s, src in
                             zip(record.get("sources", []), task.unit.sources, strict=True)]
        record["faces"] = result.faces
        meta["part"] = record
        result.part = task.output.write(df, meta, task.unit.part_name)
        return result
    except RuleBaseError:
        raise  # the run's rules, not this source: stop everything
    except RunCancelled:
        return UnitResult(task.index, error="cancelled", worker=worker_name())
    except Exception as exc:
        if task.reraise:
            raise
        return UnitResult(task.index, error=_one_line(exc), worker=worker_name())


# ----------------------------------------------------------------------------- caller side
def _versions() -> dict[str, str]:
    from .._mediapipe import mediapipe_version
    from .._version import __version__

    return {"fuzzyemo": __version__, "mediapipe": mediapipe_version()}


def annotate_units(sources: list[Source], opts: Any, prep: Future, *, workers: int | None = 1,
                   scheduler: str | None = None, scheduler_file: Any = None,
                   progress: bool = True) -> list[pd.DataFrame]:
    """The tables of every unit, in input order (for :func:`fuzzyemo.annotate`). Errors
    propagate; NeutralWarnings are re-issued here, in unit order."""
    where = Where(workers, scheduler, None if scheduler_file is None else str(scheduler_file))
    units = media_units(sources, opts.baseline)
    inline = not where.dask and min(where.local_workers(), len(units)) <= 1
    if inline:
        job = AnnotateJob(opts, None, _versions(), prep=prep)
    else:
        rb, _, cal, scheme = prep.result()  # workers get the parsed rules
        job = AnnotateJob(opts, (rb, cal, scheme), _versions())
    # On a cluster the workers' working directory is not ours: they get absolute paths.
    tasks = [UnitTask(i, u.absolute() if where.dask else u, job, reraise=True)
             for i, u in enumerate(units)]
    results: dict[int, UnitResult] = {}
    estimate = [u.expected_frames(opts.every) for u in units]

    with RunProgress(len(units), sum(estimate), enabled=bool(progress)) as bar:
        def done(i: int, res: Any) -> None:
            if isinstance(res, TaskFailed):
                raise InputError(f"{units[i].label}: {res}")
            bar.finished(i, res.frames, estimate[i])
            results[i] = res

        run_tasks(execute_unit, tasks, where, done, bar.event, label="fuzzyemo-annotate",
                      preload=PRELOAD)
    for i in range(len(units)):
        for note in results[i].notes:
            warnings.warn(note, NeutralWarning, stacklevel=3)
    return [results[i].table for i in range(len(units))]


@dataclass
class RunReport:
    """What :func:`annotate_to` did."""

    output: str
    dataset: bool
    rows: int = 0
    faces: int = 0
    written: list[str] = field(default_factory=list)  # parts (or the file) written now
    reused: list[str] = field(default_factory=list)  # parts kept from an earlier run
    failed: list[str] = field(default_factory=list)  # "source: why", one line each
    other_parts: int = 0  # parts in the folder that belong to other inputs or settings
    parts: list[str | None] = field(default_factory=list)  # each unit's part, input order
    seconds: float = 0.0


def run_settings(rb: Any, cal: Any, opts: Any, runner: str) -> dict[str, Any]:
    """Everything that changes a part's rows: the resume key is its hash."""
    from .._geometry import Baseline
    from .._table import rulebase_metadata

    baseline = opts.baseline
    if isinstance(baseline, Baseline):
        baseline = "given:" + resume_key({"values": [float(v) for v in baseline.values],
                                          "source": baseline.source})
    return rulebase_metadata(rb, **opts.metadata(), calibration_sha256=cal.sha256,
                             baseline=baseline, runner=runner, **_versions())


def annotate_to(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                output: str | os.PathLike, rules: Any = None, baseline: Any = "auto",
                every: int = 1, max_faces: int = 1, smoothing: Any = None,
                progress: bool = True, *, calibration: Any = None, model_path: Any = None,
                queue_size: int = 8, detector: str = "auto", verify: bool = True,
                min_confidence: float = 0.0, workers: int | None = None,
                scheduler: str | None = None, scheduler_file: str | os.PathLike | None = None,
                strict: bool = False, resume: bool = True,
                scheme: str | os.PathLike | None = None) -> RunReport:
    """Annotate ``inputs`` into ``output`` at scale; the options are :func:`annotate`'s.

    ``output``: ``file.parquet``/``file.csv`` for one table, or ``DIR/`` for a dataset with
    one part per unit of work (a local path or an fsspec URL). ``workers``: local processes
    (default: every core); ``scheduler``/``scheduler_file``: a Dask cluster instead.
    ``strict``: stop at the first bad source (default: report it, skip it, keep going).
    ``resume``: keep the parts of an earlier run with the same rules and options.
    Landmark tables (OpenFace / py-feat CSV, .pts; ``scheme``) are measured in this process
    (no landmarking to spread) and written as one file.
    """
    from .._annotate import _prepare, annotate_options

    t0 = time.perf_counter()
    out = Output.parse(output)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    from .._landmark_tables import is_landmark_table

    if paths and any(is_landmark_table(p) for p in paths):
        return _annotate_tables_to(paths, out, rules, baseline, calibration, smoothing,
                                   min_confidence, scheme, t0)
    opts = annotate_options(every=every, max_faces=max_faces, detector=detector, verify=verify,
                            min_confidence=min_confidence, smoothing=smoothing,
                            baseline=baseline, model_path=model_path, queue_size=queue_size)
    where = Where(workers, scheduler, None if scheduler_file is None else str(scheduler_file))
    out.check()  # before any work: a missing folder must not cost a finished run
    report = RunReport(str(out), out.dataset)
    problems: list[str] | None = None if strict else []
    # The rules are parsed in a helper thread while the inputs are checked (and, for one
    # unit run here, while its first frames are landmarked).
    helper = ThreadPoolExecutor(1, thread_name_prefix="fuzzyemo-rules")
    prep = helper.submit(_prepare, rules, calibration)
    try:
        sources = collect_sources(inputs, problems)
        report.failed.extend(problems or [])
        units = media_units(sources, opts.baseline)
        if out.dataset or where.dask or min(where.local_workers(), len(units)) > 1:
            rb, _, cal, scheme = prep.result()  # the workers get the parsed rules
            job = AnnotateJob(opts, (rb, cal, scheme), _versions())
            rkey = resume_key(run_settings(rb, cal, opts, units[0].runner))
        else:
            job = AnnotateJob(opts, None, _versions(), prep=prep)
            rkey = ""
        _run(units, job, out, where, report, rkey, strict, resume, progress)
    finally:
        prep.cancel()
        helper.shutdown(wait=True)
    report.seconds = time.perf_counter() - t0
    return report


def _annotate_tables_to(paths: list[Any], out: Output, rules: Any, baseline: Any,
                        calibration: Any, smoothing: Any, min_confidence: float, scheme: Any,
                        t0: float) -> RunReport:
    """Landmark tables into one output file (:func:`fuzzyemo._annotate.annotate_tables`)."""
    from .._annotate import annotate_tables, write_table
    from .._errors import InputError
    from .._landmark_tables import is_landmark_table

    if not all(is_landmark_table(p) for p in paths):
        raise InputError("landmark tables (.csv, .pts) and images or videos cannot be "
                         "annotated in one run: run them separately")
    if out.dataset:
        raise InputError(f"{out}: landmark tables are written to one file (-o FILE.parquet "
                         "or .csv), not a folder of parts")
    out.check()
    df = annotate_tables(paths, rules, baseline, scheme=scheme, calibration=calibration,
                         smoothing=smoothing, min_confidence=min_confidence)
    write_table(df, str(out))
    report = RunReport(str(out), False, rows=len(df), faces=int(df["success"].sum()),
                       written=[str(out)], parts=[None])
    report.seconds = time.perf_counter() - t0
    return report


def _run(units: list[Unit], job: AnnotateJob, out: Output, where: Where, report: RunReport,
         rkey: str, strict: bool, resume: bool, progress: bool) -> None:
    from .._annotate import combine_tables

    tasks: list[UnitTask] = []
    slot: list[int] = []  # task -> position of its unit in report.parts
    present = out.part_names() if out.dataset else set()
    ours = {u.part_name for u in units}
    report.other_parts = len(present - ours)
    for u in units:
        record = None
        if out.dataset:
            record = part_record(u.key, list(zip([s.name for s in u.sources], u.sizes(),
                                                 u.probes(), strict=True)), rkey)
            report.parts.append(None)
            meta = out.read_part_metadata(u.part_name) if u.part_name in present else None
            if resume and is_finished(meta, record):
                report.parts[-1] = out.part(u.part_name)
                report.reused.append(out.part(u.part_name))
                report.rows += int((meta or {}).get("rows", 0))
                report.faces += int(((meta or {}).get("part") or {}).get("faces", 0))
                continue
        slot.append(len(report.parts) - 1)
        # On a cluster the workers' working directory is not ours: they get absolute paths.
        tasks.append(UnitTask(len(tasks), u.absolute() if where.dask else u, job,
                              (out.absolute() if where.dask else out) if out.dataset else None,
                              record))
    out.sweep(ours)

    estimate = [t.unit.expected_frames(job.options.every) for t in tasks]
    results: dict[int, UnitResult] = {}

    def done(i: int, res: Any) -> None:
        if isinstance(res, TaskFailed):
            res = UnitResult(i, error=str(res))
        bar.finished(i, res.frames, estimate[i], failed=res.error is not None)
        results[i] = res
        label = tasks[i].unit.label
        if res.error is not None:
            if strict:
                kept = sum(r.part is not None for r in results.values())
                raise InputError(f"{label}: {res.error} (--strict: stopped at the first bad "
                                 f"source{f'; {kept} finished part(s) kept' if kept else ''})")
            report.failed.append(f"{label}: {res.error}")
            return
        for note in res.notes:
            warnings.warn(note, NeutralWarning, stacklevel=2)
        if res.part is not None:
            report.written.append(res.part)
            report.parts[slot[i]] = res.part
        report.rows += res.rows
        report.faces += res.faces

    try:
        with RunProgress(len(tasks), sum(estimate), enabled=bool(progress and tasks),
                         reused=len(report.reused)) as bar:
            run_tasks(execute_unit, tasks, where, done, bar.event, label="fuzzyemo-annotate",
                      preload=PRELOAD)
    finally:
        out.sweep(ours)  # temp files of parts a terminated worker was writing

    if not out.dataset:
        ok = [i for i in range(len(tasks)) if results[i].error is None]
        if not ok:
            first = report.failed[0] if report.failed else "nothing to do"
            raise InputError(f"no source could be annotated ({len(report.failed)} failed; "
                             f"first: {first})")
        df = combine_tables([results[i].table for i in ok],
                            [s for i in ok for s in tasks[i].unit.sources])
        report.written.append(out.write(df, df.attrs["fuzzyemo"]))
    elif not report.written and not report.reused:
        first = report.failed[0] if report.failed else "nothing to do"
        raise InputError(f"no source could be annotated ({len(report.failed)} failed; "
                         f"first: {first})")
