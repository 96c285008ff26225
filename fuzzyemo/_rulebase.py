"""Loading, validating and describing a rule base (a rule directory or a shipped profile).

A rule base directory holds::

    engine.yaml           inference options (t-norm, implication, min_activation, ...)
    fcis.yaml             the 12 components: terms, codes, membership functions, lambda1
    fkis/<emotion>.yaml   one per emotion: intensity functions, lambda2 and the rules
    calibration.yaml      optional: overrides the shared calibration (docs/geometry.md)

The shipped rules root (``rules/`` in a checkout, ``fuzzyemo/_rules`` in a wheel) holds one
such directory per *profile* (SPEC section 3, "Rule profiles"): ``facs`` (the default) and
``paper``, beside the measurement data all profiles share (``calibration.yaml``,
``landmarks/``). :func:`resolve_rules` turns a profile name or a path into a directory.

Every problem is reported as ``path:line:col: message (hint)``, all at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from ._errors import Problem, RuleBaseError, did_you_mean
from ._hedges import ANY, HEDGES, hedged_text
from ._membership import MembershipFunction, check_params
from ._schema import DEFAULT_GRADING, EngineFile, FcisFile, FkisFile
from ._vocab import COMPONENT_TERMS, COMPONENTS, EMOTIONS, INTENSITIES
from ._yaml import Positions, load_yaml, position, top_level_problem

DONT_CARE = "*"
RULEBASE_FORMAT = "fuzzyemo-rulebase/1"  # SPEC section 4
RULEBASE_FORMAT_HEDGES = "fuzzyemo-rulebase/1+hedges"  # ours: conditions as lists (docs/exports.md)
_CODING_TOKEN = re.compile(r"\s*(\(-1\)|-1|0|1|\*)")
_SENTENCE_PART = re.compile(r"^\s*([A-Za-z_]+)\s+is\s+([A-Za-z_]+(?:\s+[A-Za-z_]+)*)\s*$")


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Term:
    name: str
    code: int
    mf: MembershipFunction  # as written, at the file's lambda_reference


@dataclass(frozen=True)
class Component:
    name: str
    description: str
    terms: tuple[Term, ...]  # ordered by code

    def term(self, code: int) -> Term:
        return next(t for t in self.terms if t.code == code)


class Condition(NamedTuple):
    """One condition of a rule: ``component is [hedges] term`` (the term given by its code).

    ``hedges`` apply right to left (``("not", "very")`` is not(very(mu))); a chain ending
    in ``any`` names no term (it is 1 whatever the measurement), and its code is 0.
    """

    component: str
    code: int
    hedges: tuple[str, ...] = ()

    @property
    def term(self) -> str | None:
        """The term's name, None after a final ``any``."""
        return None if self.hedges and self.hedges[-1] == ANY else COMPONENT_TERMS[
            self.component][self.code]

    def text(self) -> str:
        """``mouth is not very open`` (fuzzylite's proposition syntax)."""
        return hedged_text(self.component, self.term, self.hedges)


@dataclass(frozen=True)
class Rule:
    """``if conditions then <emotion> is <then>`` with a weight.

    ``conditions`` are (component, code) pairs in component order (a component may appear
    more than once, in the order written); ``hedges`` is the parallel tuple of each
    condition's hedge words (``()`` for a plain condition, the default for all of them).
    :attr:`terms` gives both together as :class:`Condition` triples.
    """

    id: str
    emotion: str
    conditions: tuple[tuple[str, int], ...]  # in component order
    then: str
    weight: float
    source: str
    location: str  # "path:line"
    note: str = ""
    hedges: tuple[tuple[str, ...], ...] = ()  # parallel to conditions; () = all plain

    def __post_init__(self) -> None:
        hedges = tuple(tuple(h) for h in self.hedges) or tuple(() for _ in self.conditions)
        if len(hedges) != len(self.conditions):
            raise ValueError(f"rule {self.id!r}: {len(hedges)} hedge tuples for "
                             f"{len(self.conditions)} conditions")
        object.__setattr__(self, "hedges", hedges)

    @property
    def terms(self) -> tuple[Condition, ...]:
        """The conditions as (component, code, hedges) triples."""
        return tuple(Condition(c, v, h) for (c, v), h in zip(self.conditions, self.hedges,
                                                             strict=True))

    @property
    def hedged(self) -> bool:
        """True when a condition has hedges or a component is named more than once."""
        names = [c for c, _ in self.conditions]
        return any(self.hedges) or len(set(names)) != len(names)

    @property
    def coding(self) -> str:
        """The paper's 12-symbol coding, with '*' for don't-care components.

        The crisp coding cannot express hedges: a component with a hedged condition, or
        with more than one condition, is also written '*' (:meth:`sentence` has them all).
        """
        named: dict[str, list[Condition]] = {}
        for cond in self.terms:
            named.setdefault(cond.component, []).append(cond)
        out = []
        for c in COMPONENTS:
            conds = named.get(c)
            if not conds or len(conds) > 1 or conds[0].hedges:
                out.append(DONT_CARE)
            else:
                v = conds[0].code
                out.append("(-1)" if v == -1 else str(v))
        return "".join(out)

    def sentence(self) -> str:
        parts = " and ".join(cond.text() for cond in self.terms)
        return f"if {parts} then {self.emotion} is {self.then}"


@dataclass(frozen=True)
class EmotionRules:
    name: str
    intensity: dict[str, MembershipFunction]  # as written
    lambda_: float
    lambda_reference: float
    rules: tuple[Rule, ...]
    path: str


@dataclass(frozen=True)
class EngineOptions:
    tnorm: str = "min"
    implication: str = "min"
    aggregation: str = "max"
    defuzzifier: str = "centroid"
    resolution: str | int = "exact"
    min_activation: float = 0.1


@dataclass(frozen=True)
class RuleBase:
    """A validated rule base. Build it with :meth:`load` or :meth:`default`."""

    components: tuple[Component, ...]
    emotions: tuple[EmotionRules, ...]
    lambda_fcis: float
    lambda_fcis_reference: float
    options: EngineOptions
    sha256: str
    source: str  # the rule directory
    files: tuple[str, ...] = field(default=())
    profile: str | None = None  # the shipped profile's name, None for another directory

    # -- construction ----------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None) -> RuleBase:
        """Load and validate a rule base: a shipped profile name or a rule directory.

        An existing directory always wins; a string that is not one but names a shipped
        profile (:func:`profiles`) loads that profile. None means ``$FUZZYEMO_RULES`` (a
        name or a path) when set, else the default profile ``facs``.
        """
        directory, profile = resolve_rules(name_or_path)
        return replace(_load(directory), profile=profile)

    @classmethod
    def default(cls, name: str | None = None) -> RuleBase:
        """A shipped profile: ``name``, else ``$FUZZYEMO_RULES``, else ``facs``."""
        return cls.load(name)

    def with_options(
        self,
        *,
        lambda_fcis: float | None = None,
        lambda_fkis: float | None = None,
        **engine: Any,
    ) -> RuleBase:
        """A copy with lambda knobs and/or engine options overridden (None = keep)."""
        engine = {k: v for k, v in engine.items() if v is not None}
        try:
            opts = EngineFile(format="fuzzyemo-engine/1", **{**self.options.__dict__, **engine})
        except ValidationError as exc:
            first = exc.errors()[0]
            # A model-level error has an empty loc: name the options then, never index it.
            where = ".".join(str(p) for p in first["loc"]) or ", ".join(sorted(engine))
            msg = first["msg"].replace("Value error, ", "")
            raise ValueError(f"engine option {where}: {msg}") from None
        dumped = opts.model_dump(exclude={"format", "grading"})
        out = replace(self, options=EngineOptions(**dumped))
        for name, value in (("lambda_fcis", lambda_fcis), ("lambda_fkis", lambda_fkis)):
            if value is not None and not (0 < value <= 5):
                raise ValueError(f"{name} must be in (0, 5], got {value}")
        if lambda_fcis is not None:
            out = replace(out, lambda_fcis=float(lambda_fcis))
        if lambda_fkis is not None:
            out = replace(out, emotions=tuple(replace(e, lambda_=float(lambda_fkis))
                                              for e in out.emotions))
        return out

    # -- effective membership functions (lambda applied) -------------------------
    def component_mf(self, component: str, code: int) -> MembershipFunction:
        comp = self.components[COMPONENTS.index(component)]
        return comp.term(code).mf.scaled(self.lambda_fcis / self.lambda_fcis_reference)

    def intensity_mf(self, emotion: str, level: str) -> MembershipFunction:
        emo = self.emotions[EMOTIONS.index(emotion)]
        return emo.intensity[level].scaled(emo.lambda_ / emo.lambda_reference)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(r for e in self.emotions for r in e.rules)

    @property
    def lambda_fkis(self) -> float | None:
        """The common lambda2, or None when emotions use different ones."""
        values = {e.lambda_ for e in self.emotions}
        return values.pop() if len(values) == 1 else None

    def compile(self, **kwargs: Any):
        """Compile to a vectorised :class:`~fuzzyemo.Engine`."""
        from ._engine import Engine

        return Engine(self, **kwargs)

    # -- export ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The SPEC section 4 compiled form (``fuzzyemo-rulebase/1``), lambdas applied.

        A rule base with a hedged or repeated condition cannot be written in SPEC's form
        (``when`` maps a component to one code), so it declares ``fuzzyemo-rulebase/1+hedges``
        (docs/exports.md): a reader of plain SPEC JSON then refuses it by its format instead
        of misreading a condition list."""
        o = self.options
        hedged = any(r.hedged for e in self.emotions for r in e.rules)
        return {
            "format": RULEBASE_FORMAT_HEDGES if hedged else RULEBASE_FORMAT,
            "rules_sha256": self.sha256,
            "engine": {"tnorm": o.tnorm, "implication": o.implication,
                       "aggregation": o.aggregation, "defuzzifier": o.defuzzifier,
                       "resolution": o.resolution, "min_activation": o.min_activation},
            "lambda_fcis": self.lambda_fcis,
            "lambda_fkis": self.lambda_fkis,
            "components": [
                {"index": i + 1, "name": c.name, "description": c.description,
                 "terms": [_mf_dict(t.name, self.component_mf(c.name, t.code), code=t.code)
                           for t in c.terms]}
                for i, c in enumerate(self.components)
            ],
            "emotions": [
                {"name": e.name, "lambda": e.lambda_,
                 "intensity": [_mf_dict(k, self.intensity_mf(e.name, k)) for k in INTENSITIES],
                 "rules": [{"id": r.id, "when": when_dict(r),
                            "then": r.then, "weight": r.weight, "source": r.source}
                           for r in e.rules]}
                for e in self.emotions
            ],
        }


def when_dict(rule: Rule) -> dict[str, Any]:
    """A rule's ``when`` in SPEC section 4's JSON: ``{component: code}`` for a component with
    one plain condition; a list of ``{"term", "code", "hedges"}`` objects for a component with
    a hedged condition or several conditions (``term`` and ``code`` are null after a final
    ``any``). Components in SPEC order, a component's conditions in the order written."""
    grouped: dict[str, list[Condition]] = {}
    for cond in rule.terms:
        grouped.setdefault(cond.component, []).append(cond)
    out: dict[str, Any] = {}
    for c in COMPONENTS:
        conds = grouped.get(c)
        if not conds:
            continue
        if len(conds) == 1 and not conds[0].hedges:
            out[c] = conds[0].code
        else:
            out[c] = [{"term": cond.term, "code": None if cond.term is None else cond.code,
                       "hedges": list(cond.hedges)} for cond in conds]
    return out


def _mf_dict(name: str, mf: MembershipFunction, code: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if code is not None:
        out["code"] = code
    out["mf"] = mf.kind
    out["params"] = [round(float(p), 12) for p in mf.params]
    return out


# ----------------------------------------------------------------------------- locating
DEFAULT_PROFILE = "facs"


def shipped_rules_root() -> Path:
    """The shipped rules root: the checkout's top-level rules/, else the wheel's copy."""
    # A checkout (also an editable install) uses its live top-level rules/, so edits there
    # take effect at once; an installed wheel carries a copy as fuzzyemo/_rules.
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and any((root / "rules").glob("*/fcis.yaml")):
        return root / "rules"
    packaged = resources.files("fuzzyemo") / "_rules"
    if packaged.is_dir():
        return Path(str(packaged))
    raise RuleBaseError([Problem("fuzzyemo/_rules", 1, 1,
                                 "the shipped rule base is missing from this installation",
                                 "reinstall fuzzyemo, or pass --rules DIR")])


def profiles() -> tuple[str, ...]:
    """Names of the shipped rule profiles (subdirectories of the rules root with fcis.yaml)."""
    root = shipped_rules_root()
    return tuple(sorted(p.name for p in root.iterdir()
                        if p.is_dir() and (p / "fcis.yaml").is_file()))


def profile_dir(name: str) -> Path:
    """The directory of shipped profile ``name``; RuleBaseError when there is none."""
    if name not in profiles():
        raise _unknown_rules(name)
    return shipped_rules_root() / name


def _unknown_rules(text: str) -> RuleBaseError:
    names = profiles()
    listed = f"shipped profiles: {', '.join(names)}"
    if _looks_like_name(text):
        close = did_you_mean(text, names)
        hint = f"{close} {listed}" if close and close.startswith("did") else listed
        return RuleBaseError([Problem(text, 1, 1, f"no rule profile or directory {text!r}", hint)])
    return RuleBaseError([Problem(text, 1, 1, "rule directory not found",
                                  f"pass a directory holding engine.yaml, fcis.yaml and fkis/, "
                                  f"or a profile name ({listed})")])


def _looks_like_name(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", text)) and text not in (".", "..")


def resolve_rules(name_or_path: str | os.PathLike | None = None) -> tuple[Path, str | None]:
    """(rule directory, profile name or None) for a profile name, a path, or None.

    An existing directory wins over a profile of the same name; None means
    ``$FUZZYEMO_RULES`` (a name or a path) when set, else the default profile ``facs``.
    A path that is a shipped profile's directory also reports that profile's name.
    Raises RuleBaseError (one problem, listing the profiles) when neither exists.
    """
    if name_or_path is None:
        name_or_path = os.environ.get("FUZZYEMO_RULES") or DEFAULT_PROFILE
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.is_dir():
        try:
            root = shipped_rules_root().resolve()
        except RuleBaseError:
            return path, None
        here = path.resolve()
        name = here.name if here.parent == root and (here / "fcis.yaml").is_file() else None
        return path, name
    if _looks_like_name(text) and text in profiles():
        return shipped_rules_root() / text, text
    raise _unknown_rules(text)


def default_rules_dir() -> Path:
    """The default rule directory: ``$FUZZYEMO_RULES`` (a name or a path), else ``facs``."""
    return resolve_rules(None)[0]


def copy_profile(name_or_path: str | os.PathLike | None, dest: str | os.PathLike) -> Path:
    """Copy a profile (or rule directory) into the new directory ``dest``, self-contained.

    The shared measurement data of the rules root (``calibration.yaml``, ``aus.yaml``,
    ``landmarks/``) comes along unless the source directory has its own, so the copy can be edited and
    used as ``--rules DEST`` for inference, annotation and dataset builds alike.
    """
    import shutil

    src, profile = resolve_rules(name_or_path)
    dest = Path(dest)
    if dest.exists():
        raise ValueError(f"{dest} already exists; choose a new directory")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(src, dest, ignore=ignore)
    if profile is not None:
        root = shipped_rules_root()
        for shared in ("calibration.yaml", "aus.yaml", "landmarks"):
            if (root / shared).exists() and not (dest / shared).exists():
                if (root / shared).is_dir():
                    shutil.copytree(root / shared, dest / shared, ignore=ignore)
                else:
                    shutil.copy2(root / shared, dest / shared)
    return dest


def rules_sha256(directory: Path, files: Iterable[Path]) -> str:
    """Hash of the rule files' relative paths and bytes (order-independent)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.relative_to(directory).as_posix()):
        h.update(f.relative_to(directory).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- loading
class _Collector:
    """Gathers problems for one file, resolving value paths to positions."""

    def __init__(self, shown: str, positions: Positions, sink: list[Problem],
                 lines: list[str] | None = None):
        self.shown, self.positions, self.sink = shown, positions, sink
        self.lines = lines or []

    def add(self, loc: tuple, message: str, hint: str | None = None,
            find: tuple[str, int] | None = None) -> None:
        """Report at ``loc``; ``find = (text, offset)`` moves the column to where ``text``
        starts on that line, at or after ``offset`` characters past the position (e.g. a
        hedge inside a sentence), when it is there."""
        line, col = position(self.positions, loc)
        if find is not None and 0 < line <= len(self.lines):
            text, offset = find
            hit = self.lines[line - 1].find(text, col - 1 + offset)
            if hit >= 0:
                col = hit + 1
        self.sink.append(Problem(self.shown, line, col, message, hint))


def _parse(model: type[BaseModel], data: Any, col: _Collector) -> Any:
    if not isinstance(data, Mapping):
        col.add((), top_level_problem(data))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reported: set[tuple] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic reports union members as extra loc parts ("int", "str",
            # "list[union[int,str]]"): drop them.
            loc = tuple(p for p in loc if not (isinstance(p, str) and (
                p in ("int", "str") or p.startswith(("literal[", "list[")))))
            msg, hint = err["msg"], None
            if "when" in loc[:-1] and err["type"] != "extra_forbidden":
                # One line per condition value, not one per union member.
                loc = loc[:loc.index("when") + 2]
                if loc in reported:
                    continue
                reported.add(loc)
                col.add(loc, f"{loc[-1]}: expected a term name or a code (hedges before a term "
                        f"name: 'very raised'), or a list of them, got {err.get('input')!r}")
                continue
            if err["type"] == "extra_forbidden":
                fields = [f.alias or n for n, f in _model_at(model, loc[:-1]).model_fields.items()]
                msg, hint = f"unknown key {loc[-1]!r}", did_you_mean(str(loc[-1]), fields)
            elif err["type"] == "missing":
                msg = f"missing required key {loc[-1]!r}"
                loc = loc[:-1]
            elif err["type"] == "literal_error":
                expected = err.get("ctx", {}).get("expected", "")
                choices = re.findall(r"'([^']*)'", expected)
                hint = did_you_mean(str(err.get("input")), choices) if choices else None
                msg = f"{loc[-1] if loc else 'value'}: {msg}"
            else:
                where = ".".join(str(p) for p in loc)
                msg = f"{where}: {msg}" if where else msg
            col.add(loc, msg.replace("Value error, ", ""), hint)
        return None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The sub-model a location points into (for 'unknown key' hints)."""
    from typing import get_args

    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        fld = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if fld is None:
            break
        candidates = [fld.annotation, *get_args(fld.annotation)]
        for c in list(candidates):
            candidates.extend(get_args(c))
        sub = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                   None)
        if sub is None:
            break
        current = sub
    return current


def _check_mf(kind: str, params: list[float], loc: tuple, col: _Collector) -> MembershipFunction | None:
    problem = check_params(kind, params)
    if problem:
        col.add((*loc, "params"), problem)
        return None
    return MembershipFunction(kind, tuple(float(p) for p in params))


def _load_fcis(path: Path, shown: str, sink: list[Problem]):
    data, positions = load_yaml(path, shown)
    col = _Collector(shown, positions, sink)
    spec = _parse(FcisFile, data, col)
    if spec is None:
        return None
    comps = []
    for name in spec.components:
        if name not in COMPONENT_TERMS:
            col.add(("components", name), f"unknown component {name!r}",
                    did_you_mean(name, COMPONENTS))
    for name in COMPONENTS:
        if name not in spec.components:
            col.add(("components",), f"component {name!r} is missing (SPEC lists 12 components)")
            continue
        cspec = spec.components[name]
        domain = COMPONENT_TERMS[name]
        terms = []
        for tname, tspec in cspec.terms.items():
            loc = ("components", name, "terms", tname)
            if tname not in domain.values():
                col.add(loc, f"{name} has no term {tname!r}", did_you_mean(tname, domain.values()))
                continue
            want = next(c for c, t in domain.items() if t == tname)
            if tspec.code != want:
                col.add((*loc, "code"), f"{name}.{tname} must have code {want}, got {tspec.code}",
                        "codes are fixed by SPEC section 1")
                continue
            mf = _check_mf(tspec.mf, tspec.params, loc, col)
            if mf is None:
                continue
            lo, hi = mf.core
            if not (lo <= want <= hi):
                col.add((*loc, "params"),
                        f"{name}.{tname} must have membership 1 at its code x={want}, "
                        f"but its core is [{lo:g}, {hi:g}]",
                        "SPEC section 1: a crisp code and a measurement must agree")
                continue
            terms.append(Term(tname, want, mf))
        missing = [t for t in domain.values() if t not in cspec.terms]
        if missing:
            col.add(("components", name, "terms"), f"{name} is missing term(s) {', '.join(missing)}")
        comps.append(Component(name, cspec.description.strip(), tuple(sorted(terms, key=lambda t: t.code))))
    return spec, tuple(comps)


def parse_coding(text: str) -> list[int | None]:
    """Parse the paper's coding, e.g. ``'0010010(-1)(-1)(-1)(-1)(-1)'``; '*' is don't care.

    Raises ValueError with the symbol count when it is not 12 symbols.
    """
    symbols: list[int | None] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _CODING_TOKEN.match(text, pos)
        if not m:
            rest = text[pos:].lstrip()
            raise ValueError(f"unexpected {rest[:1]!r} at symbol {len(symbols) + 1} of the coding "
                             "(symbols are 0, 1, -1 or (-1), and * for don't care)")
        tok = m.group(1)
        symbols.append(None if tok == "*" else int(tok.strip("()")))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if len(symbols) != len(COMPONENTS):
        raise ValueError(f"a coding has {len(COMPONENTS)} symbols, one per component; "
                         f"this one has {len(symbols)}")
    return symbols


def _rule_conditions(rule, loc: tuple, col: _Collector) -> list[Condition] | None:
    """Antecedent of a rule spec as :class:`Condition` triples, reporting problems.

    In component order; a component's conditions keep the order they were written in.
    """
    # (component, value, loc, text offset of the value within the sentence or None)
    items: list[tuple[str, Any, tuple, int | None]] = []
    ok = True
    if rule.coding is not None:
        try:
            symbols = parse_coding(rule.coding)
        except ValueError as exc:
            col.add((*loc, "coding"), str(exc), "e.g. '0010010(-1)(-1)(-1)(-1)(-1)'")
            return None
        items = [(c, v, (*loc, "coding"), None) for c, v in zip(COMPONENTS, symbols, strict=True)
                 if v is not None]
    elif rule.when is not None:
        for c, v in rule.when.items():
            if isinstance(v, list):
                if not v:
                    col.add((*loc, "when", c), f"{c}: an empty list of conditions",
                            "give one condition or several, e.g. [raised, not very raised]")
                    ok = False
                items += [(c, item, (*loc, "when", c, i), 0) for i, item in enumerate(v)]
            else:
                items.append((c, v, (*loc, "when", c), len(c)))
    else:
        text = rule.if_
        stripped = text.lstrip()
        base = len(text) - len(stripped)
        if stripped.lower().startswith("if "):
            base += 3
        pos = base
        for part in re.split(r"(\s+and\s+)", text[base:]):
            if re.fullmatch(r"\s+and\s+", part):
                pos += len(part)
                continue
            m = _SENTENCE_PART.match(part)
            if not m:
                col.add((*loc, "if"), f"cannot read {part.strip()!r}",
                        "write '<component> is [hedge ...] <term>' joined by 'and'")
                ok = False
            else:
                items.append((m.group(1), m.group(2), (*loc, "if"), pos + m.start(2)))
            pos += len(part)
    out: list[Condition] = []
    seen: set[Condition] = set()
    for comp, value, at, offset in items:
        if comp not in COMPONENT_TERMS:
            col.add(at, f"unknown component {comp!r}", did_you_mean(comp, COMPONENTS))
            ok = False
            continue
        cond = _condition(comp, value, at, offset, col)
        if cond is None:
            ok = False
            continue
        if cond in seen:
            col.add(at, f"duplicate condition '{cond.text()}'",
                    "each condition of a rule must differ (in its term or its hedges)")
            ok = False
            continue
        seen.add(cond)
        out.append(cond)
    if ok and not out:
        col.add(loc, "a rule must name at least one component (all are don't care)")
        return None
    order = {c: i for i, c in enumerate(COMPONENTS)}
    return sorted(out, key=lambda cond: order[cond.component]) if ok else None


def _condition(comp: str, value: Any, at: tuple, offset: int | None,
               col: _Collector) -> Condition | None:
    """One condition's value: a code, a term name, or hedge words and a term name."""
    domain = COMPONENT_TERMS[comp]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        col.add(at, f"{comp}: expected a term name or a code, got {value!r}")
        return None
    if isinstance(value, int):
        words = [str(value)]
    else:
        words = value.split()
        if not words:
            col.add(at, f"{comp}: empty condition", "write a term name, e.g. "
                    f"{comp}: {domain[max(domain)]}")
            return None

    def find(word: str) -> tuple[str, int] | None:
        # Point at the word itself: in a sentence from the value's offset in it (an opening
        # quote before it is skipped by the search), in a mapping after its key.
        return (word, offset) if offset is not None else None

    *hedges, last = words
    if ANY in hedges:
        col.add(at, f"{comp}: 'any' ends a condition, no term follows it",
                f"write '{comp}: any' (always 1) or drop 'any'", find(ANY))
        return None
    if last == ANY:
        hedges.append(ANY)
        last = None
    for h in hedges:
        if h not in HEDGES:
            if h.lstrip("-").isdigit() or h in domain.values():
                col.add(at, f"{comp}: {value!r}: a hedge comes before its term, and one term "
                        "per condition", "e.g. 'very raised'; for two conditions on one "
                        "component give a list: [raised, not very raised]", find(h))
            else:
                col.add(at, f"unknown hedge {h!r} in '{comp} is {value}'",
                        did_you_mean(h, HEDGES), find(h))
            return None
    if last is None:  # ... any: no term; the code is a placeholder (0 is every component's)
        return Condition(comp, 0, tuple(hedges))
    if last.lstrip("-").isdigit():
        code = int(last)
        if hedges:
            col.add(at, f"{comp}: hedges apply to term names, not codes",
                    f"write '{' '.join(hedges)} {domain.get(code, 'TERM')}'", find(hedges[0]))
            return None
    elif last in domain.values():
        code = next(c for c, t in domain.items() if t == last)
    elif last in HEDGES:
        col.add(at, f"{comp}: the hedge {last!r} needs a term after it",
                f"e.g. '{last} {domain[max(domain)]}'", find(last))
        return None
    else:
        col.add(at, f"{comp} has no term {last!r}", did_you_mean(last, domain.values()))
        return None
    if code not in domain:
        col.add(at, f"code {code} is outside {comp}'s domain {sorted(domain)}",
                "terms: " + ", ".join(f"{c}={t}" for c, t in domain.items()))
        return None
    return Condition(comp, code, tuple(hedges))


_DEFAULT_CHAINS = {level: tuple(tuple(c.split()) for c in chains)
                   for level, chains in DEFAULT_GRADING.items()}


def _grading(spec: Any, col: _Collector) -> dict[str, tuple[tuple[str, ...], ...]]:
    """engine.yaml's ``grading`` as hedge chains per level, reporting unknown hedges."""
    out = {}
    for level in INTENSITIES:
        chains = []
        for i, chain in enumerate(getattr(spec, level)):
            words = tuple(chain.split())
            bad = [w for w in words if w not in HEDGES or w == ANY]
            if not words or bad:
                col.add(("grading", level, i),
                        f"grading.{level}: {chain!r} is not a chain of hedges",
                        did_you_mean(bad[0], HEDGES) if bad else "e.g. 'not very'")
                continue
            chains.append(words)
        if not chains:
            col.add(("grading", level), f"grading.{level}: give at least one hedge chain")
        out[level] = tuple(chains)
    return out


def _graded_rules(rspec: Any, base: list[Condition], loc: tuple, col: _Collector,
                  grading: dict[str, tuple[tuple[str, ...], ...]]
                  ) -> list[tuple[str, list[Condition]]] | None:
    """(level, conditions) of a graded rule's three rules, or None after reporting problems."""
    graded: list[Condition] = []
    ok = True
    for comp, term in rspec.graded.items():
        at = (*loc, "graded", comp)
        if comp not in COMPONENT_TERMS:
            col.add(at, f"unknown component {comp!r}", did_you_mean(comp, COMPONENTS))
            ok = False
            continue
        cond = _condition(comp, term, at, len(comp), col)
        if cond is None:
            ok = False
        elif cond.hedges:
            col.add(at, f"graded {comp}: name the term only; the levels add their hedges",
                    f"write '{comp}: {cond.term}'")
            ok = False
        elif cond.code == 0:
            col.add(at, f"graded {comp}: grade an action (a term other than "
                    f"{COMPONENT_TERMS[comp][0]!r})")
            ok = False
        else:
            graded.append(cond)
    if not ok:
        return None
    order = {c: i for i, c in enumerate(COMPONENTS)}
    out = []
    for level in INTENSITIES:
        conds = list(base) + [Condition(g.component, g.code, chain)
                              for g in graded for chain in grading[level]]
        out.append((level, sorted(conds, key=lambda c: order[c.component])))
    return out


def _load_fkis(path: Path, shown: str, expected: str, sink: list[Problem], seen_ids: dict,
               grading: dict[str, tuple[tuple[str, ...], ...]] | None = None):
    data, positions = load_yaml(path, shown)
    col = _Collector(shown, positions, sink, path.read_text(encoding="utf-8").splitlines())
    spec = _parse(FkisFile, data, col)
    if spec is None:
        return None
    if spec.emotion != expected:
        col.add(("emotion",), f"file {path.name} must declare emotion: {expected}, "
                f"got {spec.emotion!r}", did_you_mean(spec.emotion, EMOTIONS))
        return None
    intensity = {}
    for level in INTENSITIES:
        mspec = getattr(spec.intensity, level)
        mf = _check_mf(mspec.mf, mspec.params, ("intensity", level), col)
        if mf is not None:
            intensity[level] = mf
    rules = []
    for i, rspec in enumerate(spec.rules):
        loc = ("rules", i)
        if rspec.id in seen_ids:
            col.add((*loc, "id"), f"duplicate rule id {rspec.id!r}",
                    f"first defined at {seen_ids[rspec.id]}")
            continue
        line, _ = position(positions, loc)
        seen_ids[rspec.id] = f"{shown}:{line}"
        if rspec.graded is not None:
            base = ([] if rspec.when is None and rspec.if_ is None
                    else _rule_conditions(rspec, loc, col))
            levels = None if base is None else _graded_rules(
                rspec, base, loc, col, grading or _DEFAULT_CHAINS)
            if levels is None:
                continue
        else:
            conds = _rule_conditions(rspec, loc, col)
            if conds is None:
                continue
            levels = [(rspec.then, conds)]
        for level, conds in levels:
            rid = f"{rspec.id}/{level}" if rspec.graded is not None else rspec.id
            rules.append(Rule(rid, expected, tuple((c.component, c.code) for c in conds),
                              level, float(rspec.weight), rspec.source.strip(),
                              f"{shown}:{line}", rspec.note.strip(),
                              tuple(c.hedges for c in conds)))
    if len(intensity) < 3:
        return None
    return EmotionRules(expected, intensity, float(spec.lambda_), float(spec.lambda_reference),
                        tuple(rules), shown)


def _load(directory: Path) -> RuleBase:
    if not directory.is_dir():
        raise RuleBaseError([Problem(str(directory), 1, 1, "rule directory not found",
                                     "pass a directory holding engine.yaml, fcis.yaml and fkis/")])

    def shown(p: Path) -> str:
        return str(p)

    problems: list[Problem] = []
    files: list[Path] = []
    engine_path, fcis_path = directory / "engine.yaml", directory / "fcis.yaml"

    options = EngineOptions()
    grading: dict[str, tuple[tuple[str, ...], ...]] = {
        level: tuple(tuple(chain.split()) for chain in chains)
        for level, chains in DEFAULT_GRADING.items()}
    if engine_path.is_file():
        files.append(engine_path)
        data, positions = load_yaml(engine_path, shown(engine_path))
        col = _Collector(shown(engine_path), positions, problems)
        spec = _parse(EngineFile, data, col)
        if spec is not None:
            options = EngineOptions(**spec.model_dump(exclude={"format", "grading"}))
            if spec.grading is not None:
                grading = _grading(spec.grading, col)

    fcis = None
    if not fcis_path.is_file():
        problems.append(Problem(shown(fcis_path), 1, 1, "missing fcis.yaml",
                                "copy it from `fuzzyemo rules init DIR`"))
    else:
        files.append(fcis_path)
        try:
            fcis = _load_fcis(fcis_path, shown(fcis_path), problems)
        except RuleBaseError as exc:
            problems.extend(exc.problems)

    emotions = []
    seen_ids: dict[str, str] = {}
    fkis_dir = directory / "fkis"
    present = {p.stem: p for p in fkis_dir.glob("*.yaml")} if fkis_dir.is_dir() else {}
    for stem, p in sorted(present.items()):
        if stem not in EMOTIONS:
            problems.append(Problem(shown(p), 1, 1, f"{p.name} is not an emotion of the SPEC",
                                    did_you_mean(stem, EMOTIONS)))
    for emotion in EMOTIONS:
        p = present.get(emotion)
        if p is None:
            problems.append(Problem(shown(fkis_dir / f"{emotion}.yaml"), 1, 1,
                                    f"missing FKIS file for {emotion}",
                                    "every emotion needs its file, even with no rules"))
            continue
        files.append(p)
        try:
            e = _load_fkis(p, shown(p), emotion, problems, seen_ids, grading)
        except RuleBaseError as exc:
            problems.extend(exc.problems)
            continue
        if e is not None:
            emotions.append(e)

    if problems or fcis is None or len(emotions) != len(EMOTIONS):
        raise RuleBaseError(problems or [Problem(str(directory), 1, 1, "rule base incomplete")])
    spec, comps = fcis
    return RuleBase(
        components=comps,
        emotions=tuple(emotions),
        lambda_fcis=float(spec.lambda_),
        lambda_fcis_reference=float(spec.lambda_reference),
        options=options,
        sha256=rules_sha256(directory, files),
        source=str(directory),
        files=tuple(str(f) for f in files),
    )
