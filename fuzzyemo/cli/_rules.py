"""`fuzzyemo rules ...`: check, show, export, schema and init a rule base."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .._files import write_text_atomic
from .._rulebase import RuleBase, default_rules_dir
from .._vocab import INTENSITIES
from ._common import err, out, user_errors

app = typer.Typer(help="Validate, inspect and export rule bases.", no_args_is_help=True)

DirArg = Annotated[Path | None, typer.Argument(
    help="Rule directory (default: the shipped rules).", show_default=False)]


@app.command()
def check(
    directory: DirArg = None,
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Also list informational findings.")] = False,
) -> None:
    """Validate a rule base and lint it: conflicts, rules that never fire, unreachable classes.

    Exits 0 when clean, 1 on lint errors (or warnings with --strict), 2 when a file is invalid.
    """
    from .._lint import lint

    with user_errors():
        rb = RuleBase.load(directory)
    report = lint(rb)
    for f in report.findings:
        if f.level != "info" or verbose:
            (err if f.level != "info" else out).print(str(f), markup=False)
    table = Table(title=f"rules in {rb.source}", title_justify="left")
    table.add_column("emotion")
    for k in INTENSITIES:
        table.add_column(k, justify="right")
    table.add_column("total", justify="right")
    for emotion, counts in report.counts.items():
        table.add_row(emotion, *[str(counts[k]) for k in INTENSITIES], str(sum(counts.values())))
    out.print(table)
    infos = sum(f.level == "info" for f in report.findings)
    out.print(f"{len(rb.rules)} rules, {len(report.reached)}/18 classes reachable, "
              f"{len(report.errors)} error(s), {len(report.warnings)} warning(s), "
              f"{infos} note(s){'' if verbose or not infos else ' (--verbose lists them)'}; "
              f"sha256 {rb.sha256[:16]}", markup=False)
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@app.command()
def show(
    directory: DirArg = None,
    emotion: Annotated[str | None, typer.Option(help="Only this emotion.")] = None,
) -> None:
    """Print the rule base readably: membership functions and every rule as a sentence."""
    with user_errors():
        rb = RuleBase.load(directory)
        if emotion is not None and emotion not in [e.name for e in rb.emotions]:
            raise ValueError(f"unknown emotion {emotion!r}")
    out.print(f"[bold]rule base[/bold] {escape(str(rb.source))}  sha256 {rb.sha256[:16]}  "
              f"lambda1={rb.lambda_fcis:g} lambda2={rb.lambda_fkis}  engine: "
              + ", ".join(f"{k}={v}" for k, v in rb.options.__dict__.items()))
    if emotion is None:
        comps = Table(title="FCIS components (membership functions, lambda applied)",
                      title_justify="left")
        for col in ("#", "component", "terms"):
            comps.add_column(col)
        for i, c in enumerate(rb.components, 1):
            terms = "; ".join(
                f"{t.code:+d} {t.name}: {rb.component_mf(c.name, t.code).kind}"
                f"{list(round(p, 4) for p in rb.component_mf(c.name, t.code).params)}"
                for t in c.terms)
            comps.add_row(str(i), c.name, terms)
        out.print(comps)
    for e in rb.emotions:
        if emotion and e.name != emotion:
            continue
        mfs = ", ".join(f"{k} {rb.intensity_mf(e.name, k).kind}"
                        f"{list(round(p, 4) for p in rb.intensity_mf(e.name, k).params)}"
                        for k in INTENSITIES)
        out.print(f"\n[bold]{e.name}[/bold]: {len(e.rules)} rules; intensity {mfs}; "
                  f"lambda2={e.lambda_:g}")
        for r in e.rules:
            out.print(f"  {r.id}  {r.coding}  weight {r.weight:g}  ({r.location})", markup=False)
            out.print(f"    {r.sentence()}", markup=False)
            out.print(f"    source: {r.source}", markup=False)
            if r.note:
                out.print(f"    note: {r.note}", markup=False)


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="json (SPEC section 4) or fll.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write here instead of stdout.")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Rule directory.")] = None,
    lambda_fcis: Annotated[float | None, typer.Option("--lambda-fcis")] = None,
    lambda_fkis: Annotated[float | None, typer.Option("--lambda-fkis")] = None,
) -> None:
    """Export the compiled rule base: SPEC JSON (lambdas applied) or fuzzylite FLL."""
    from .._export import to_fll, to_json
    from .._table import InputError

    with user_errors():
        rb = RuleBase.load(rules).with_options(lambda_fcis=lambda_fcis, lambda_fkis=lambda_fkis)
        if fmt not in ("json", "fll"):
            raise InputError(f"--format must be json or fll, got {fmt!r}")
        text = to_json(rb) if fmt == "json" else to_fll(rb)
        if output is None:
            typer.echo(text, nl=False)
        else:
            write_text_atomic(output, text)
            err.print(f"wrote {output}", markup=False)


@app.command()
def schema(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the schemas.")]
    = Path("."),
) -> None:
    """Write JSON Schemas of the rule files, for editor completion and validation."""
    from .._export import json_schema_files

    with user_errors():
        for p in json_schema_files(output):
            err.print(f"wrote {p}", markup=False)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="New directory to create.")],
) -> None:
    """Copy the shipped rule base into DIRECTORY to edit it (then use --rules DIRECTORY)."""
    with user_errors():
        if directory.exists():
            raise ValueError(f"{directory} already exists; choose a new directory")
        shutil.copytree(default_rules_dir(), directory,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    err.print(f"copied the shipped rules to {directory}; edit them, then run "
              f"`fuzzyemo rules check {directory}`", markup=False)
