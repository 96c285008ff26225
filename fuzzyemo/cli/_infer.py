"""`fuzzyemo infer`, `fuzzyemo explain` and `fuzzyemo demo`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from .._errors import InputError
from .._preflight import check_input_file, check_output
from .._progress import Reporter
from .._table import (
    RESULT_COLUMNS,
    checked_components,
    read_table,
    require_rows,
    results_frame,
    rulebase_metadata,
    write_table,
)
from .._vocab import CLASS_NAMES, COMPONENTS
from ._common import (
    ImplicationOpt,
    LambdaFcisOpt,
    LambdaFkisOpt,
    MinActivationOpt,
    ResolutionOpt,
    RulesOpt,
    TnormOpt,
    command_line,
    err,
    load_rules,
    out,
    refuse_lint_errors,
    user_errors,
)

_BLOCK = 1 << 18  # rows per progress step


def _evaluate(engine, x: np.ndarray, progress: bool):
    """Evaluate in blocks with a progress bar on stderr for large inputs."""
    if not progress or len(x) <= _BLOCK:
        return results_frame(engine.evaluate(x))
    parts = []
    with Reporter("inference", len(x), unit="rows", console=err) as bar:
        for s in range(0, len(x), _BLOCK):
            parts.append(results_frame(engine.evaluate(x[s:s + _BLOCK])))
            bar.advance(min(_BLOCK, len(x) - s))
    return pd.concat(parts, ignore_index=True)


def _measurements(df: pd.DataFrame, input: Path) -> np.ndarray:
    """The table's 12 measurements, warnings printed (clipped, infinite values)."""
    x, notes = checked_components(df, str(input))
    for note in notes:
        err.print(f"warning: {note}", markup=False)
    return x


def _read_measurements(input: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The input table (with rows) and its measurements."""
    df = read_table(input)
    require_rows(df, str(input))
    return df, _measurements(df, input)


def infer(
    input: Annotated[Path, typer.Argument(
        metavar="INPUT", readable=False,  # read and checked by read_table, by name
        help="CSV or parquet with the 12 component columns.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .parquet (or .csv).")],
    rules: RulesOpt = None,
    tnorm: TnormOpt = None,
    implication: ImplicationOpt = None,
    resolution: ResolutionOpt = None,
    min_activation: MinActivationOpt = None,
    lambda_fcis: LambdaFcisOpt = None,
    lambda_fkis: LambdaFkisOpt = None,
    from_aus: Annotated[bool, typer.Option(
        "--from-aus", help="Read FACS action-unit intensities (OpenFace AU01_r, py-feat AU01, "
                           "DISFA) instead of the 12 components, mapped by rules/aus.yaml "
                           "(or the rule directory's aus.yaml).")] = False,
    au_scale: Annotated[float | None, typer.Option(
        "--au-scale", help="Divide AU intensities by this to reach 0-1 (default: 5 for "
                           "OpenFace '_r' columns and 0-5 tables, else 1).",
        show_default=False)] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Run the fuzzy systems on a table of component measurements (or AU intensities).

    Reads the 12 component columns by name (other columns are kept), and writes codes,
    activations, eccentricities, the 18 intensity scores, label and class_index. Rows with
    a missing measurement are labelled 'unknown'. With --from-aus the 12 components are
    computed from the table's AU columns first and written too.
    """
    with user_errors():
        check_input_file(input, "input table")
        check_output(output, inputs=[input])
        rb = load_rules(rules, tnorm, implication, resolution, min_activation,
                        lambda_fcis, lambda_fkis)
        refuse_lint_errors(rb)
        df = read_table(input)
        require_rows(df, str(input))
        if from_aus:
            from .._aus import measure_aus

            x, info = measure_aus(df, Path(rb.source) if rb.source else None, au_scale,
                                  source=str(input))
            if info["unread"]:
                err.print(f"note: no AU of {', '.join(info['unread'])} in {input}: they read "
                          "0 (neutral)", markup=False)
            df = df.drop(columns=[c for c in COMPONENTS if c in df.columns])
            df = pd.concat([df.reset_index(drop=True),
                            pd.DataFrame(x, columns=list(COMPONENTS))], axis=1)
        else:
            x = _measurements(df, input)
        engine = rb.compile()
        results = _evaluate(engine, x, progress)
        kept = df.drop(columns=[c for c in RESULT_COLUMNS if c in df.columns]).reset_index(drop=True)
        table = pd.concat([kept, results], axis=1)
        write_table(table, output, rulebase_metadata(
            rb, source=str(input), command=command_line(),
            **({"measured_from": "aus", "au_scale": info["scale"]} if from_aus else {})))
    counts = table["label"].value_counts()
    err.print(f"wrote {len(table):,} rows to {output} "
              f"({', '.join(f'{k}: {v}' for k, v in counts.head(4).items())}"
              f"{', ...' if len(counts) > 4 else ''})", markup=False)


def explain(
    input: Annotated[Path, typer.Argument(
        metavar="INPUT", readable=False,  # read and checked by read_table, by name
        help="CSV or parquet with the 12 component columns.")],
    row: Annotated[int, typer.Option(help="1-based row number to explain.")] = 1,
    top: Annotated[int, typer.Option(help="How many of the rules that fired to show (>= 1).")
                   ] = 5,
    rules: RulesOpt = None,
) -> None:
    """Why did a row get its label? Shows the strongest rules that fired and their conditions."""
    with user_errors():
        if top < 1:
            raise InputError(f"--top {top}: give how many rules to show, 1 or more")
        check_input_file(input, "input table")
        rb = load_rules(rules)
        df, x = _read_measurements(input)
        if not 1 <= row <= len(x):
            raise InputError(f"{input}: --row {row} is out of range (1..{len(x)})")
        engine = rb.compile()
        res = engine.evaluate(x[row - 1:row])
        # Rules that did not fire (strength 0) explain nothing: only the ones that did.
        reasons = [r for r in engine.explain(x[row - 1], top=top) if r["strength"] > 0]
    out.print(f"row {row}: label [bold]{res.labels[0]}[/bold]")
    if res.class_index[0] == -2:
        missing = [c for c, v in zip(COMPONENTS, x[row - 1], strict=True) if np.isnan(v)]
        out.print(f"missing measurement(s): {', '.join(missing)}")
        return
    if not reasons:
        out.print(f"no rule fired for this row: it is {res.labels[0]}", markup=False)
        return
    best = np.argsort(-res.scores[0])[:3]
    out.print("top scores: " + ", ".join(f"{CLASS_NAMES[i]}={res.scores[0, i]:.3f}" for i in best))
    table = Table(title=f"strongest rules that fired ({len(reasons)})", title_justify="left")
    for col in ("rule", "then", "strength", "conditions (x -> membership)", "source"):
        table.add_column(col, overflow="fold")
    for r in reasons:
        conds = "; ".join(f"{c['text']} ({c['x']:+.2f} -> {c['membership']:.2f})"
                          for c in r["conditions"])
        table.add_row(r["rule"], f"{r['emotion']} {r['then']}", f"{r['strength']:.3f}", conds,
                      r["source"])
    out.print(table)


def sample_path() -> Path:
    """The embedded sample of component measurements shipped with fuzzyemo."""
    return Path(str(resources.files("fuzzyemo") / "data" / "sample_components.csv"))


def demo(
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Also write the results here.")] = None,
    rules: RulesOpt = None,
) -> None:
    """Run the shipped rules on the embedded sample of faces' component measurements."""
    with user_errors():
        if output is not None:
            check_output(output)
        rb = load_rules(rules)
        refuse_lint_errors(rb)
        df = read_table(sample_path())
        res = rb.compile().evaluate(checked_components(df, "sample")[0])
        frame = results_frame(res)
        if output is not None:
            write_table(pd.concat([df, frame], axis=1), output,
                        rulebase_metadata(rb, source="embedded sample", command=command_line()))
    name = f"profile {rb.profile}, " if rb.profile else ""
    table = Table(title=f"fuzzyemo demo: {len(df)} embedded samples, {len(rb.rules)} rules "
                        f"({name}rules sha256 {rb.sha256[:12]})", title_justify="left")
    for col in ("sample", "label", "score", "strongest emotion activation"):
        table.add_column(col)
    for i, name in enumerate(df["sample"]):
        if res.class_index[i] == -2:
            table.add_row(name, "unknown", "-", "-")
            continue
        e = int(np.argmax(res.activations[i]))
        score = "-" if res.class_index[i] < 0 else f"{res.scores[i, res.class_index[i]]:.3f}"
        strongest = (f"{rb.emotions[e].name} {res.activations[i, e]:.2f}"
                     if res.activations[i, e] > 0 else "-")
        table.add_row(name, str(res.labels[i]), score, strongest)
    out.print(table)
    if output is not None:
        err.print(f"wrote {output} ({len(df)} rows)", markup=False)
