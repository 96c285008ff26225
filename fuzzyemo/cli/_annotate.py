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


def annotate(
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT...", readable=False,  # checked before the run, by name
        help="Images, videos (anything OpenCV decodes) or folders of them; or landmark tables "
             "from other tools: OpenFace 2.0 / py-feat .csv, iBUG .pts.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o",
                                         help="Output table: .parquet (default) or .csv.")],
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
    progress: Annotated[bool, typer.Option(help="Progress bar with frames/s on stderr.")] = True,
) -> None:
    """Landmark faces (MediaPipe, offline), measure the 12 components and label every frame."""
    from .._annotate import annotate as run
    from .._annotate import write_table

    with user_errors():
        # Everything is checked before the first frame: a mistake costs a second, not the run.
        sources = _preflight(inputs, output, plot, overlay)
        overrides = (tnorm, implication, resolution, min_activation, lambda_fcis, lambda_fkis)
        rb = load_rules(rules, *overrides)
        refuse_lint_errors(rb)
        if sources:  # landmark tables are read and checked whole by annotate before use
            _check_measurement_files(rb)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NeutralWarning)
            warnings.simplefilter("always", MediaWarning)
            df = run(inputs, rules=rb, baseline=baseline, every=every, max_faces=max_faces,
                     smoothing=None if smoothing == "none" else smoothing, progress=progress,
                     detector=detector, verify=verify, min_confidence=min_confidence,
                     scheme=scheme)
        for w in caught:  # one line each, no Python warning machinery on the user's terminal
            if issubclass(w.category, (NeutralWarning, MediaWarning)):
                err.print(f"warning: {w.message}", markup=False)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        write_table(df, output)
        written = [f"{output} ({len(df)} rows, {int(df['success'].sum())} with a face)"]
        if plot is not None:
            from .._plots import plot_timeline

            plot_timeline(df, plot)
            written.append(f"timeline {plot}")
        if overlay is not None:
            from .._plots import write_overlay

            first_video = next(s for s in sources if s.kind == "video")
            write_overlay(df, overlay, source=first_video.name, progress=progress)
            written.append(f"overlay {overlay}")
        err.print("wrote " + "; ".join(written), markup=False)


def _preflight(inputs: list[Path], output: Path, plot: Path | None,
               overlay: Path | None) -> list:
    """Every input probed (images walked to their end, videos opened; landmark tables must
    be readable files), every output's folder, extension and name checked, the extras the
    outputs need present. Returns the media sources ([] for landmark tables)."""
    from .._landmark_tables import is_landmark_table
    from .._preflight import check_input_file
    from .._video import collect_sources

    check_distinct({"-o": output, "--plot": plot, "--overlay": overlay})
    if any(is_landmark_table(p) for p in inputs):
        sources = []
        paths = [check_input_file(p, "landmark table") for p in inputs
                 if is_landmark_table(p)]
    else:
        sources = collect_sources(inputs)
        paths = [s.path for s in sources]
    check_output(output, inputs=paths)
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
