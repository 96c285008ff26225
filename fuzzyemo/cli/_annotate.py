"""`fuzzyemo annotate`: images and videos -> per-frame table (+ timeline PNG, overlay MP4)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Annotated

import typer

from .._errors import InputError
from .._geometry import NeutralWarning
from .._preflight import check_distinct, check_output
from .._video import MediaWarning
from ._common import (
    ImplicationOpt,
    LambdaFcisOpt,
    LambdaFkisOpt,
    MinActivationOpt,
    ResolutionOpt,
    RulesOpt,
    TnormOpt,
    err,
    load_rules,
    refuse_lint_errors,
    user_errors,
)
from ._where import SchedulerFileOpt, SchedulerOpt, WorkersOpt


def annotate(
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT...", readable=False,  # checked before the run, by name
        help="Images, videos (anything OpenCV decodes) or folders of them; or landmark tables "
             "from other tools: OpenFace 2.0 / py-feat .csv, iBUG .pts.", show_default=False)],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Output table: .parquet (default) or .csv; or DIR/ (a trailing "
                               "slash, or an existing folder) for a dataset with one parquet "
                               "part per source. Local paths or fsspec URLs (s3://, gs://).")],
    rules: RulesOpt = None,
    baseline: Annotated[str, typer.Option(
        help="Neutral face: auto (videos self-calibrated, images population), self, "
             "population, or a baseline .json file.")] = "auto",
    every: Annotated[int, typer.Option("--every", min=1, help="Landmark every N-th video frame.")] = 1,
    max_faces: Annotated[int, typer.Option("--max-faces", min=1, help="Faces per frame.")] = 1,
    detector: Annotated[str, typer.Option(
        "--detector", help="Faces in still images: auto (full-range when --max-faces > 1), "
                           "short-range (the landmarker's own detector) or full-range (also "
                           "BlazeFace full-range over the image and its tiles: group photos, "
                           "small faces).")] = "auto",
    verify: Annotated[bool, typer.Option(
        "--verify/--no-verify", help="Check that each face's landmarks fit (quality reason "
                                     "'misfit'): one more landmarking per face in stills, "
                                     "once per second per face in videos.")] = True,
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", min=0.0, max=1.0,
        help="Label rows whose confidence is below this 'unknown' (measurements kept); 0.5 "
             "drops faces beyond the pose limit or with a misfit.")] = 0.0,
    scheme: Annotated[str | None, typer.Option(
        "--scheme", help="Landmark tables only: their landmark scheme (name or file), when the "
                         "point count does not say it (68: ibug68, 66: disfa66, 98: wflw98).",
        show_default=False)] = None,
    smoothing: Annotated[str, typer.Option(
        help="One Euro smoothing across frames: none, landmarks or measurements.")] = "none",
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also write a timeline PNG (first source, face 0).", show_default=False)] = None,
    overlay: Annotated[Path | None, typer.Option(
        "--overlay", help="Also write an MP4 of the first video with landmarks and labels.",
        show_default=False)] = None,
    tnorm: TnormOpt = None,
    implication: ImplicationOpt = None,
    resolution: ResolutionOpt = None,
    min_activation: MinActivationOpt = None,
    lambda_fcis: LambdaFcisOpt = None,
    lambda_fkis: LambdaFkisOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    scheduler_file: SchedulerFileOpt = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first bad source (default: report it, skip it and "
                         "keep the others' work).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="With -o DIR/: keep the parts an earlier run finished "
                                     "with the same rules and options.")] = True,
    progress: Annotated[bool, typer.Option(
        help="Progress on stderr: frames done of the total, frames/s and time left (a bar on "
             "a terminal, else a line every few sources).")] = True,
) -> None:
    """Landmark faces (MediaPipe, offline), measure the 12 components and label every frame."""
    from .._scale.annotate_run import annotate_to

    with user_errors():
        # Everything is checked before the first frame: a mistake costs a second, not the run.
        problems: list[str] | None = None if strict else []
        sources = _preflight(inputs, output, plot, overlay, problems)
        overrides = (tnorm, implication, resolution, min_activation, lambda_fcis, lambda_fkis)
        rb = load_rules(rules, *overrides)
        refuse_lint_errors(rb)
        if sources:  # landmark tables are read and checked whole by annotate before use
            _check_measurement_files(rb)
        for problem in problems or ():
            err.print(f"warning: skipped {problem}", markup=False)
        # The sources that passed the checks, by the names the user gave (folders expanded).
        run_inputs = [s.name for s in sources] if sources else [str(i) for i in inputs]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NeutralWarning)
            warnings.simplefilter("always", MediaWarning)
            report = annotate_to(
                run_inputs, output, rules=rb, baseline=baseline, every=every,
                max_faces=max_faces, smoothing=None if smoothing == "none" else smoothing,
                progress=progress, detector=detector, verify=verify,
                min_confidence=min_confidence, workers=workers, scheduler=scheduler,
                scheduler_file=scheduler_file, strict=strict, resume=resume, scheme=scheme)
        for w in caught:  # one line each, no Python warning machinery on the user's terminal
            if issubclass(w.category, (NeutralWarning, MediaWarning)):
                err.print(f"warning: {w.message}", markup=False)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        for problem in report.failed:
            err.print(f"warning: skipped {problem}", markup=False)
        skipped = len(report.failed) + len(problems or ())
        if report.dataset:
            written = [f"{report.output}: {len(report.written)} part(s) written, "
                       f"{len(report.reused)} kept from an earlier run, {report.rows} rows, "
                       f"{report.faces} with a face"
                       + (f", {skipped} source(s) skipped" if skipped else "")
                       + (f", {report.other_parts} other part(s) in the folder left alone"
                          if report.other_parts else "")]
        else:
            written = [f"{report.output} ({report.rows} rows, {report.faces} with a face"
                       + (f", {skipped} source(s) skipped" if skipped else "") + ")"]
        written += _figures(report, plot, overlay, progress)
        err.print("wrote " + "; ".join(written), markup=False)


def _figures(report, plot: Path | None, overlay: Path | None, progress: bool) -> list[str]:
    """--plot / --overlay from what the run wrote (the file, or the first parts)."""
    if plot is None and overlay is None:
        return []
    import pandas as pd

    from .._video import IMAGE_SUFFIXES

    if report.dataset:
        tables = [pd.read_parquet(p) for p in report.parts if p is not None]
        df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    else:
        df = pd.read_parquet(report.output) if not report.output.lower().endswith(".csv") \
            else pd.read_csv(report.output)
    written = []
    if plot is not None:
        from .._plots import plot_timeline

        plot_timeline(df, plot)
        written.append(f"timeline {plot}")
    if overlay is not None:
        from .._plots import write_overlay

        videos = [s for s in dict.fromkeys(df["source"])
                  if Path(s).suffix.lower() not in IMAGE_SUFFIXES]
        if not videos:
            raise ValueError("--overlay needs a video input")
        write_overlay(df, overlay, source=videos[0], progress=progress)
        written.append(f"overlay {overlay}")
    return written


def _preflight(inputs: list[Path], output: str, plot: Path | None, overlay: Path | None,
               problems: list[str] | None = None) -> list:
    """Every input probed (images walked to their end, videos opened; landmark tables must
    be readable files), every output's folder, extension and name checked, the extras the
    outputs need present. Returns the media sources ([] for landmark tables). With a
    ``problems`` list a bad source is noted there and left out (corpus runs) instead of
    stopping the run; nothing usable is still an error."""
    from .._landmark_tables import is_landmark_table
    from .._preflight import check_input_file
    from .._scale.parts import Output
    from .._video import collect_sources

    out = Output.parse(output)
    local_file = not out.dataset and "://" not in str(output)
    check_distinct({"-o": Path(output) if local_file else None, "--plot": plot,
                    "--overlay": overlay})
    if any(is_landmark_table(p) for p in inputs):
        sources = []
        paths = [check_input_file(p, "landmark table") for p in inputs
                 if is_landmark_table(p)]
    else:
        sources = collect_sources(inputs, problems)
        paths = [s.path for s in sources]
    if local_file:
        check_output(Path(output), inputs=paths)
    else:
        out.check()
    if plot is not None:
        check_output(plot, option="--plot", suffixes=(".png",), inputs=paths)
        if importlib.util.find_spec("matplotlib") is None:
            raise InputError('--plot needs matplotlib; install it with: '
                             'pip install "fuzzyemo[video]"')
    if overlay is not None:
        check_output(overlay, option="--overlay", suffixes=(".mp4",), inputs=paths)
        if not any(s.kind == "video" for s in sources):
            raise InputError("--overlay needs a video among the inputs (it draws on the "
                             "first video's frames)")
    return sources


def _check_measurement_files(rb) -> None:
    """The calibration and landmark scheme annotate measures with (loads are cached, so
    annotate reuses them): a broken file fails now, not after the landmarking."""
    from .._annotate import SCHEME
    from .._geometry import Baseline, Calibration
    from .._landmarks import LandmarkScheme

    Calibration.load(rb.source)
    Baseline.population(LandmarkScheme.load(SCHEME))
