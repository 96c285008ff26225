"""`fuzzyemo rules ...`: list, check, show, export, schema and init a rule base."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .._errors import InputError, Problem, RuleBaseError
from .._files import write_text_atomic
from .._preflight import check_output
from .._rulebase import (
    DEFAULT_PROFILE,
    RuleBase,
    copy_profile,
    profile_dir,
    profiles,
    resolve_rules,
)
from .._vocab import INTENSITIES
from ._common import HELP_RENDERING, RULES_HELP, RulesOpt, err, out, user_errors

app = typer.Typer(help="Validate, inspect and export rule bases.", no_args_is_help=True,
                  rich_markup_mode=HELP_RENDERING)

DirArg = Annotated[str | None, typer.Argument(
    metavar="NAME|PATH", help=RULES_HELP, show_default=False)]


@app.command("list")
def list_profiles() -> None:
    """List the shipped rule profiles (use one with --rules NAME)."""
    with user_errors():
        names = profiles()
        loaded = {name: RuleBase.load(name) for name in names}
    table = Table(title="shipped rule profiles", title_justify="left")
    for col in ("profile", "rules", "directory", "sha256"):
        table.add_column(col)
    for name, rb in loaded.items():
        default = " (default)" if name == DEFAULT_PROFILE else ""
        table.add_row(f"{name}{default}", str(len(rb.rules)), str(profile_dir(name)),
                      rb.sha256[:16])
    out.print(table)


def _region(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``COMPONENT=LO:HI`` options -> {component: (lo, hi)}."""
    out = {}
    for item in items or []:
        name, sep, span = item.partition("=")
        lo, sep2, hi = span.partition(":")
        try:
            if not (sep and sep2):
                raise ValueError
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ValueError(f"--region {item!r}: expected COMPONENT=LO:HI, e.g. "
                             "mouth=-0.5:1") from None
    return out


@app.command()
def check(
    directory: DirArg = None,
    strict: Annotated[bool, typer.Option(help="Fail on warnings too.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Also list informational findings.")] = False,
    region: Annotated[list[str] | None, typer.Option(
        "--region", metavar="COMPONENT=LO:HI",
        help="Only measurements with LO <= x <= HI for this component count (repeatable; "
             "default: what the calibration can measure, [-1, 1] unless a component is read "
             "one-sided): rules that cannot reach min_activation there are reported.",
        show_default=False)] = None,
) -> None:
    """Validate a rule base and lint it: conflicts, rules that never fire or cannot reach
    min_activation, cross-emotion ties, constant conditions, unreachable classes.

    Exits 0 when clean, 1 on lint errors (or warnings with --strict), 2 when a file is invalid.
    """
    from .._geometry import Calibration
    from .._lint import check_region, lint

    with user_errors():
        # Every file the rule directory holds is checked, and the measurement files the rules
        # are used with: the calibration and AU mapping (the directory's own, else the
        # shipped ones) and the landmark schemes (the directory's, $FUZZYEMO_RULES's and the
        # shipped ones), as strictly as annotate, infer --from-aus and the builders read them.
        stray = _stray_files(resolve_rules(directory)[0])
        try:
            rb = RuleBase.load(directory)
        except RuleBaseError as exc:
            raise RuleBaseError([*stray, *exc.problems]) from None
        if stray:
            raise RuleBaseError(stray)
        cal = Calibration.load(rb.source)
        _check_schemes(Path(rb.source))
        from .._aus import AuMapping

        AuMapping.load(rb.source)  # the AU mapping `infer --from-aus` and the builders use
        # By default only what the calibration can measure counts (MediaPipe's path, where
        # a component read mostly from blendshapes may be one-sided); --region narrows it.
        box = {**cal.reachable(), **_region(region)}
        box = check_region(box)
    report = lint(rb, region=box)
    for f in report.findings:
        if f.level != "info" or verbose:
            (err if f.level != "info" else out).print(str(f), markup=False)
    table = Table(title=f"rules in {rb.source}"
                        + (f" (profile {rb.profile})" if rb.profile else ""), title_justify="left")
    table.add_column("emotion")
    for k in INTENSITIES:
        table.add_column(k, justify="right")
    table.add_column("total", justify="right")
    for emotion, counts in report.counts.items():
        table.add_row(emotion, *[str(counts[k]) for k in INTENSITIES], str(sum(counts.values())))
    out.print(table)
    narrowed = [f"{c} [{lo:g}, {hi:g}]" for c, (lo, hi) in box.items() if (lo, hi) != (-1, 1)]
    if narrowed:
        out.print("region: " + ", ".join(narrowed) + " (other components [-1, 1])", markup=False)
    infos = sum(f.level == "info" for f in report.findings)
    out.print(f"{len(rb.rules)} rules, {len(report.reached)}/18 classes reachable, "
              f"{len(report.errors)} error(s), {len(report.warnings)} warning(s), "
              f"{infos} note(s){'' if verbose or not infos else ' (--verbose lists them)'}; "
              f"sha256 {rb.sha256[:16]}", markup=False)
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


def _check_schemes(directory: Path) -> None:
    """Load every landmark scheme that a name can resolve to from this rule directory; a
    scheme the front ends use by name (mediapipe478, wflw98, ...) must also have their point
    count and a neutral face (template or population), as annotate and the builders need."""
    from .._geometry import Baseline
    from .._landmarks import LandmarkScheme, _search_dirs, shipped_landmarks_dir

    shipped = {f.stem: f for f in shipped_landmarks_dir().glob("*.yaml")}
    problems: list[Problem] = []
    for folder in dict.fromkeys(_search_dirs(directory)):
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.yaml")):
            try:
                scheme = LandmarkScheme.load(f)
                if f.stem in shipped and f != shipped[f.stem]:
                    want = LandmarkScheme.load(shipped[f.stem]).n_points
                    if scheme.n_points != want:
                        problems.append(Problem(str(f), 1, 1, f"n_points is {scheme.n_points}, "
                                                f"but the {f.stem} front end gives {want} "
                                                "points per face"))
                        continue
                Baseline.population(scheme)
            except RuleBaseError as exc:
                problems.extend(exc.problems)
            except InputError as exc:
                problems.append(Problem(str(f), 1, 1, str(exc)))
    if problems:
        raise RuleBaseError(problems)


# What a rule directory may hold besides the files it is read from: notes, and the JSON
# Schemas `fuzzyemo rules schema` writes for editors.
_IGNORED_SUFFIXES = (".md", ".txt", ".rst")
_READ_SUFFIXES = (".yaml", ".yml", ".json")


def _stray_files(directory: Path) -> list[Problem]:
    """Every file in the rule directory is one fuzzyemo reads (and so checks) or plainly not
    a rule file: a misnamed file (engine.yml, fkis/anger.yml, calibration.yaml.bak as YAML)
    would be skipped without a word, and the rules used would not be the ones edited."""
    from .._errors import did_you_mean
    from .._vocab import EMOTIONS

    expected = {
        Path("engine.yaml"), Path("fcis.yaml"), Path("calibration.yaml"), Path("aus.yaml"),
        *(Path("fkis") / f"{e}.yaml" for e in EMOTIONS),
    }
    problems = []
    for f in sorted(directory.rglob("*")):
        rel = f.relative_to(directory)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue  # hidden files, editor back-ups, __pycache__
        if f.is_dir():
            if rel in expected:
                problems.append(Problem(str(f), 1, 1, "is a directory; a rule file is "
                                        "expected here"))
            continue
        if rel in expected or (rel.parent == Path("landmarks") and f.suffix == ".yaml"):
            continue
        if f.suffix.lower() in _IGNORED_SUFFIXES or f.name.endswith(".schema.json"):
            continue
        if rel.parent == Path("fkis") and f.suffix == ".yaml":
            continue  # the loader reports an unknown emotion with a 'did you mean'
        if f.suffix.lower() not in _READ_SUFFIXES and rel.parent not in (
                Path("."), Path("fkis"), Path("landmarks")):
            continue  # other folders' non-rule files (images, scripts) are not ours
        names = [p.as_posix() for p in expected] + (
            [f"landmarks/{f.stem}.yaml"] if rel.parent == Path("landmarks") else [])
        close = did_you_mean(rel.with_suffix(".yaml").as_posix(), names)
        problems.append(Problem(str(f), 1, 1, "fuzzyemo does not read this file, so its "
                                "settings have no effect",
                                close if close and close.startswith("did") else
                                "rule files are engine.yaml, fcis.yaml, calibration.yaml, "
                                "aus.yaml, fkis/<emotion>.yaml and landmarks/<scheme>.yaml"))
    return problems


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
    name = f" (profile {rb.profile})" if rb.profile else ""
    out.print(f"[bold]rule base[/bold] {escape(str(rb.source))}{name}  sha256 {rb.sha256[:16]}  "
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
    rules: RulesOpt = None,
    lambda_fcis: Annotated[float | None, typer.Option("--lambda-fcis")] = None,
    lambda_fkis: Annotated[float | None, typer.Option("--lambda-fkis")] = None,
) -> None:
    """Export the compiled rule base: SPEC JSON (lambdas applied) or fuzzylite FLL."""
    from .._export import to_fll, to_json

    with user_errors():
        if fmt not in ("json", "fll"):
            raise InputError(f"--format must be json or fll, got {fmt!r}")
        if output is not None:
            check_output(output, suffixes=(f".{fmt}",))
        rb = RuleBase.load(rules).with_options(lambda_fcis=lambda_fcis, lambda_fkis=lambda_fkis)
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
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY",
                                               help="New directory to create.")],
    profile: Annotated[str, typer.Option(
        "--profile", metavar="NAME",
        help="The shipped profile to copy (`fuzzyemo rules list`).")] = DEFAULT_PROFILE,
) -> None:
    """Copy a shipped rule profile into DIRECTORY to edit it (then use --rules DIRECTORY).

    The copy is self-contained: it also gets the shared calibration.yaml and landmarks/.
    """
    with user_errors():
        # profile_dir: a name only (never a directory of that name), else a one-line error.
        copy_profile(profile_dir(profile), directory)
    err.print(f"copied the shipped {profile} rules to {directory}; edit them, then run "
              f"`fuzzyemo rules check {directory}`", markup=False)
