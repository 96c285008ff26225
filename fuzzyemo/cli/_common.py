"""Shared CLI plumbing: one-line user errors, rule loading with engine overrides, the lint
gate every command that labels runs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from .._errors import InputError, Problem, RuleBaseError
from .._files import InterruptedAfterWriting, os_reason
from .._rulebase import RuleBase

# Plain click help (no rich panels): flags without a `<bool>` type column, docstrings
# rewrapped as paragraphs; usage errors are click's plain lines, no box drawing. With
# PlainUsageCommand, arguments are named by their metavar (INPUT, not {input}).
# tests/test_bad_inputs.py reads the help of every command.
HELP_RENDERING = None


class PlainUsageCommand(typer.core.TyperCommand):
    """The usage line in the common convention: ``fuzzyemo infer [OPTIONS] INPUT`` (typer
    0.29 writes required arguments as ``{input}``). Built from click's public parameter
    API only, so it reads the same on any typer release."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or (param.name or "arg").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments by name (``INPUT...``, not ``INPUT... <list[Path]>``), then options."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((param.metavar or (param.name or "arg").upper(), record[1]))
            elif param.param_type_name == "option":
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def plain_help(app: typer.Typer) -> typer.Typer:
    """Give every command of ``app`` and its sub-apps :class:`PlainUsageCommand` (called once
    after all commands are registered, so commands added later are covered too)."""
    for info in app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):  # the default (None before 0.20)
            info.cls = PlainUsageCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
    return app

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
    except (InputError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err.print(f"error: {text}", markup=False)
        raise typer.Exit(2) from None
    except OSError as exc:
        # The OS said no (missing file, permission, read-only file system, full disk): the
        # path it was about, if it named one, and why; never a traceback.
        where = exc.filename if exc.filename is not None else None
        text = f"{where}: {os_reason(exc)}" if where is not None else os_reason(exc)
        err.print(f"error: {text}", markup=False)
        raise typer.Exit(2) from None
    except InterruptedAfterWriting as exc:
        err.print("interrupted after the outputs were complete; written: "
                  + ", ".join(str(p) for p in exc.written), markup=False)
        raise typer.Exit(130) from None
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
    res = resolution_option(resolution)
    rb = RuleBase.load(rules)
    return rb.with_options(tnorm=tnorm, implication=implication, resolution=res,
                           min_activation=min_activation, lambda_fcis=lambda_fcis,
                           lambda_fkis=lambda_fkis)


def resolution_option(text: str | None) -> str | int | None:
    """``--resolution``: 'exact' or a number of grid points >= 101, checked before loading."""
    if text is None or text == "exact":
        return text
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"--resolution must be 'exact' or an integer >= 101, got {text!r}") \
            from None
    if value < 101:
        raise InputError(f"--resolution {value}: a grid needs at least 101 points (or give "
                         "'exact')")
    return value


def refuse_lint_errors(rb: RuleBase) -> None:
    """Refuse a rule base that `fuzzyemo rules check` fails (conflicting rules, rules that
    can never fire): labels from it would be arbitrary. One line per problem, exit 2."""
    from .._lint import lint_errors

    found = lint_errors(rb)
    if not found:
        return
    problems = []
    for i, f in enumerate(found):
        path, _, line = f.location.rpartition(":")
        hint = (f"`fuzzyemo rules check {rb.source}` lists every finding; fix the rules "
                "before labelling with them") if i == len(found) - 1 else None
        problems.append(Problem(path or rb.source, int(line) if line.isdigit() else 1, 1,
                                f"{f.message} [{f.code}]", hint))
    raise RuleBaseError(problems)


def command_line() -> str:
    """The command line, for provenance metadata."""
    return " ".join(["fuzzyemo", *sys.argv[1:]])
