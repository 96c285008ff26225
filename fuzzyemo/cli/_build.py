"""``fuzzyemo build-dataset disfa|wflw`` and ``fuzzyemo report disfa-fer``.

Register in fuzzyemo/cli/__init__.py with::

    from . import _build
    app.add_typer(_build.build_app, name="build-dataset")
    app.add_typer(_build.report_app, name="report")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import InputError
from .._files import InterruptedAfterWriting, write_text_atomic
from .._preflight import check_distinct, check_input_file, check_output, check_output_dir
from ._common import (
    HELP_RENDERING,
    LambdaFcisOpt,
    LambdaFkisOpt,
    RulesOpt,
    err,
    load_rules,
    out,
    refuse_lint_errors,
    user_errors,
)
from ._where import SchedulerFileOpt, SchedulerOpt

build_app = typer.Typer(
    help="Build DISFA-FER / WFLW-FER from the licensed DISFA / WFLW databases on disk.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=HELP_RENDERING)
report_app = typer.Typer(
    help="Reports on built datasets.", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False, rich_markup_mode=HELP_RENDERING)

SourceOpt = Annotated[Path | None, typer.Option(
    "--source", help="The database folder as distributed (default: $FUZZYEMO_DATA_DIR).",
    show_default=False)]
OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="Output parquet file.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="Parallel worker processes (default: the number of CPUs).",
    show_default=False)]
StrictOpt = Annotated[bool, typer.Option(
    "--strict", help="Fail on the first corrupt or truncated source file instead of "
                     "skipping it (skipped files are listed in the dataset card).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Show a progress bar on stderr.")]


def _source_errors(exc: InputError) -> None:
    """Print every line of a multi-line source error (expected paths, rerun command)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    err.print(f"error: {lines[0]}", markup=False)
    for line in lines[1:]:
        err.print(line, markup=False)
    raise typer.Exit(2)


def _summary(summary, crops: Path | None = None) -> None:
    """Every file the build wrote, by name."""
    files = [f"{summary.output} ({summary.rows} rows)", f"card {summary.card}"]
    if summary.plot:
        files.append(f"plot {summary.plot}")
    if crops is not None and (crops / "crops.csv").is_file():
        n = sum(1 for _ in crops.glob("*/*.png"))
        files.append(f"{n} crop PNGs and {crops / 'crops.csv'}")
    out.print("wrote " + ", ".join(files)
              + (f"; reused {summary.reused_parts} finished part(s)"
                 if summary.reused_parts else ""), markup=False)
    if summary.issues:
        err.print(f"warning: {len(summary.issues)} source problem(s) skipped (listed in the "
                  "card); first: " + str(summary.issues[0]), markup=False)


def _build(make: Callable[[Any], Any], output: Path, rules: Path | None,
           lambda_fcis: float | None, lambda_fkis: float | None,
           crops: Path | None = None) -> Any:
    """Check the outputs, load the rules, build with ``make(rulebase)``, print the summary;
    return the builder."""
    from builders._base import SourceError

    with user_errors():
        try:
            check_output(output, suffixes=(".parquet",))
            if crops is not None:
                check_output_dir(crops, "--crops")
            rb = load_rules(rules, lambda_fcis=lambda_fcis, lambda_fkis=lambda_fkis)
            refuse_lint_errors(rb)
            builder = make(rb)
            summary = builder.build(output)
        except SourceError as exc:
            _source_errors(exc)
        except KeyboardInterrupt as exc:
            if isinstance(exc, InterruptedAfterWriting):
                raise
            _interrupted(output)
    _summary(summary, crops)
    return builder


def _interrupted(output: Path) -> None:
    """Ctrl-C before the outputs were renamed into place: say what is (not) on disk."""
    parts = output.parent / f".{output.name}.parts"
    kept = (f"; finished subjects are kept in {parts} and reused by the next run"
            if parts.is_dir() and any(parts.iterdir()) else "")
    state = "unchanged" if output.exists() else "not written"
    err.print(f"interrupted: the dataset was not written ({output} {state}, no card "
              f"written){kept}", markup=False)
    raise typer.Exit(130)


@build_app.command("disfa")
def build_disfa(
    output: OutputOpt,
    source: SourceOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    scheduler_file: SchedulerFileOpt = None,
    strict: StrictOpt = False,
    from_video: Annotated[bool, typer.Option(
        "--from-video", help="Landmark the left-camera videos with MediaPipe instead of "
                             "using the shipped .mat landmarks (needs the \\[video] extra).")]
    = False,
    rules: RulesOpt = None,
    lambda_fcis: LambdaFcisOpt = None,
    lambda_fkis: LambdaFkisOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """DISFA -> DISFA-FER: one row per frame with emotion labels and AU ground truth."""
    from builders.disfa import SUBJECTS, DisfaBuilder

    builder = _build(
        lambda rb: DisfaBuilder(source, from_video=from_video, rules=rules, rulebase=rb,
                                workers=workers, strict=strict, progress=progress,
                                scheduler=scheduler, scheduler_file=scheduler_file),
        output, rules, lambda_fcis, lambda_fkis)
    present = set(builder.subjects())
    absent = [s for s in SUBJECTS if s not in present]
    if absent:
        err.print(f"warning: {len(absent)} of DISFA's {len(SUBJECTS)} subjects are not in the "
                  f"source ({', '.join(absent[:4])}{' ...' if len(absent) > 4 else ''}); "
                  f"built the {len(present)} present", markup=False)


@build_app.command("wflw")
def build_wflw(
    output: OutputOpt,
    source: SourceOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    scheduler_file: SchedulerFileOpt = None,
    strict: StrictOpt = False,
    crops: Annotated[Path | None, typer.Option(
        "--crops", help="Also write aligned 224x224 face crops (PNG) and crops.csv here.",
        show_default=False)] = None,
    rules: RulesOpt = None,
    lambda_fcis: LambdaFcisOpt = None,
    lambda_fkis: LambdaFkisOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """WFLW -> WFLW-FER: one row per face with emotion labels, boxes and attributes."""
    from builders.wflw import WflwBuilder

    _build(lambda rb: WflwBuilder(source, crops=crops, rules=rules, rulebase=rb,
                                  workers=workers, strict=strict, progress=progress,
                                  scheduler=scheduler, scheduler_file=scheduler_file),
           output, rules, lambda_fcis, lambda_fkis, crops)


@report_app.command("disfa-fer")
def report_disfa_fer(
    table: Annotated[Path, typer.Argument(metavar="TABLE", readable=False,
                                         help="A DISFA-FER parquet file.")],
    figure: Annotated[Path | None, typer.Option(
        "--figure", help="Figure path (default: <table>_validity.png beside the table).",
        show_default=False)] = None,
    no_figure: Annotated[bool, typer.Option("--no-figure", help="Skip the figure.")] = False,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the report as JSON.", show_default=False)] = None,
) -> None:
    """How our measurements and labels agree with DISFA's FACS ground truth."""
    from .._report import render_text, save_figure, validity_report

    with user_errors():
        check_input_file(table, "DISFA-FER table")
        fig = None if no_figure else figure or table.with_name(f"{table.stem}_validity.png")
        check_distinct({"--figure": fig, "--json": json_out})
        if fig is not None:
            check_output(fig, option="--figure", suffixes=(".png",), inputs=[table])
        if json_out is not None:
            check_output(json_out, option="--json", suffixes=(".json",), inputs=[table])
        rep = validity_report(table)
        out.print(render_text(rep), markup=False, highlight=False)
        if fig is not None:
            save_figure(rep, fig)
            out.print(f"figure: {fig}", markup=False)
        if json_out is not None:
            write_text_atomic(json_out, json.dumps(rep.to_dict(), indent=2, default=float) + "\n")
            out.print(f"json: {json_out}", markup=False)
