"""`fuzzyemo annotate`: images and videos -> per-frame table (+ timeline PNG, overlay MP4)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from .._geometry import NeutralWarning
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
    user_errors,
)
from ._where import SchedulerFileOpt, SchedulerOpt, WorkersOpt


def annotate(
    inputs: Annotated[list[Path], typer.Argument(
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
        overrides = (tnorm, implication, resolution, min_activation, lambda_fcis, lambda_fkis)
        # Without overrides pass the directory: rule parsing then overlaps checking inputs.
        rb = load_rules(rules, *overrides) if any(o is not None for o in overrides) else rules
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NeutralWarning)
            report = annotate_to(
                [str(i) for i in inputs], output, rules=rb, baseline=baseline, every=every,
                max_faces=max_faces, smoothing=None if smoothing == "none" else smoothing,
                progress=progress, detector=detector, verify=verify,
                min_confidence=min_confidence, workers=workers, scheduler=scheduler,
                scheduler_file=scheduler_file, strict=strict, resume=resume, scheme=scheme)
        for w in caught:  # one line each, no Python warning machinery on the user's terminal
            if issubclass(w.category, NeutralWarning):
                err.print(f"warning: {w.message}", markup=False)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        for problem in report.failed:
            err.print(f"warning: skipped {problem}", markup=False)
        if plot is not None or overlay is not None:
            _figures(report, plot, overlay)
        if report.dataset:
            err.print(f"wrote {report.output}: {len(report.written)} part(s) written, "
                      f"{len(report.reused)} kept from an earlier run, {report.rows} rows, "
                      f"{report.faces} with a face"
                      + (f"; {len(report.failed)} source(s) skipped" if report.failed else "")
                      + (f"; {report.other_parts} other part(s) in the folder left alone"
                         if report.other_parts else ""), markup=False)
        else:
            err.print(f"wrote {report.output}: {report.rows} rows, {report.faces} with a face"
                      + (f"; {len(report.failed)} source(s) skipped" if report.failed else ""),
                      markup=False)


def _figures(report, plot: Path | None, overlay: Path | None) -> None:
    """--plot / --overlay from what the run wrote (the file, or the first parts)."""
    import pandas as pd

    from .._video import IMAGE_SUFFIXES

    if report.dataset:
        tables = [pd.read_parquet(p) for p in report.parts if p is not None]
        df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    else:
        df = pd.read_parquet(report.output) if not report.output.lower().endswith(".csv") \
            else pd.read_csv(report.output)
    if plot is not None:
        from .._plots import plot_timeline

        plot_timeline(df, plot)
    if overlay is not None:
        from .._plots import write_overlay

        videos = [s for s in dict.fromkeys(df["source"])
                  if Path(s).suffix.lower() not in IMAGE_SUFFIXES]
        if not videos:
            raise ValueError("--overlay needs a video input")
        write_overlay(df, overlay, source=videos[0])
