"""The ``fuzzyemo`` command line (typer). One small module per command group."""

from __future__ import annotations

import typer

from . import _annotate, _build, _infer, _rules, _train
from ._common import HELP_RENDERING, plain_help

app = typer.Typer(
    name="fuzzyemo",
    help="Fine-grained emotion labels from faces with declarative fuzzy rules (ST-F2M FCIS/FKIS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=HELP_RENDERING,
)
app.add_typer(_rules.app, name="rules")
app.add_typer(_build.build_app, name="build-dataset")
app.add_typer(_build.report_app, name="report")
app.command()(_infer.infer)
app.command()(_infer.explain)
app.command()(_infer.demo)
app.command()(_annotate.annotate)
app.command()(_train.train)
app.command()(_train.evaluate)
app.command()(_train.experiment)
app.command()(_train.predict)
app.command()(_train.export)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"fuzzyemo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Fine-grained emotion labels from faces with declarative fuzzy rules (ST-F2M FCIS/FKIS)."""


plain_help(app)


def main() -> None:
    app()
