"""Shared CLI plumbing: one-line user errors, rule loading with engine overrides."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .._errors import InputError, RuleBaseError
from .._rulebase import RuleBase

err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # paths may hold [ ]
out = Console(highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one line per problem on stderr and exit code 2."""
    try:
        yield
    except RuleBaseError as exc:
        for p in exc.problems:
            err.print(f"error: {p}", markup=False)
        raise typer.Exit(2) from None
    except (InputError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err.print(f"error: {text}", markup=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


RULES_HELP = ("A shipped rule profile (`fuzzyemo rules list`: facs, paper) or a rule directory "
              "(engine.yaml, fcis.yaml, fkis/). Default: $FUZZYEMO_RULES, else facs.")
RulesOpt = Annotated[str | None, typer.Option(
    "--rules", metavar="NAME|PATH", help=RULES_HELP, show_default=False)]
TnormOpt = Annotated[str | None, typer.Option(help="Override the t-norm: min or product.")]
ImplicationOpt = Annotated[str | None, typer.Option(help="Override the implication: min or product.")]
ResolutionOpt = Annotated[str | None, typer.Option(
    help="Override the defuzzifier resolution: 'exact' or a number of grid points.")]
MinActivationOpt = Annotated[float | None, typer.Option(
    "--min-activation", help="Override min_activation (below it a row is 'neutral').")]
LambdaFcisOpt = Annotated[float | None, typer.Option(
    "--lambda-fcis", help="Override lambda1, the FCIS membership range.")]
LambdaFkisOpt = Annotated[float | None, typer.Option(
    "--lambda-fkis", help="Override lambda2, the FKIS membership range.")]


def load_rules(
    rules: str | Path | None,
    tnorm: str | None = None,
    implication: str | None = None,
    resolution: str | None = None,
    min_activation: float | None = None,
    lambda_fcis: float | None = None,
    lambda_fkis: float | None = None,
) -> RuleBase:
    rb = RuleBase.load(rules)
    res: str | int | None = resolution
    if resolution is not None and resolution != "exact":
        try:
            res = int(resolution)
        except ValueError:
            raise InputError(f"--resolution must be 'exact' or an integer, got {resolution!r}") \
                from None
    return rb.with_options(tnorm=tnorm, implication=implication, resolution=res,
                           min_activation=min_activation, lambda_fcis=lambda_fcis,
                           lambda_fkis=lambda_fkis)


def command_line() -> str:
    """The command line, for provenance metadata."""
    return " ".join(["fuzzyemo", *sys.argv[1:]])
