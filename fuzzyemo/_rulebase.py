"""Loading, validating and describing a rule base (rules/ directory).

A rule base directory holds::

    engine.yaml           inference options (t-norm, implication, min_activation, ...)
    fcis.yaml             the 12 components: terms, codes, membership functions, lambda1
    fkis/<emotion>.yaml   one per emotion: intensity functions, lambda2 and the rules

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
from typing import Any

from pydantic import BaseModel, ValidationError

from ._errors import Problem, RuleBaseError, did_you_mean
from ._membership import MembershipFunction, check_params
from ._schema import EngineFile, FcisFile, FkisFile
from ._vocab import COMPONENT_TERMS, COMPONENTS, EMOTIONS, INTENSITIES
from ._yaml import Positions, load_yaml, position

DONT_CARE = "*"
_CODING_TOKEN = re.compile(r"\s*(\(-1\)|-1|0|1|\*)")
_SENTENCE_PART = re.compile(r"^\s*([A-Za-z_]+)\s+is\s+([A-Za-z_]+)\s*$")


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


@dataclass(frozen=True)
class Rule:
    """``if conditions then <emotion> is <then>`` with a weight; conditions are (component, code)."""

    id: str
    emotion: str
    conditions: tuple[tuple[str, int], ...]  # in component order
    then: str
    weight: float
    source: str
    location: str  # "path:line"
    note: str = ""

    @property
    def coding(self) -> str:
        """The paper's 12-symbol coding, with '*' for don't-care components."""
        named = dict(self.conditions)
        out = []
        for c in COMPONENTS:
            v = named.get(c)
            out.append(DONT_CARE if v is None else ("(-1)" if v == -1 else str(v)))
        return "".join(out)

    def sentence(self) -> str:
        parts = " and ".join(f"{c} is {COMPONENT_TERMS[c][v]}" for c, v in self.conditions)
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
    source: str
    files: tuple[str, ...] = field(default=())

    # -- construction ----------------------------------------------------------
    @classmethod
    def load(cls, directory: str | os.PathLike | None = None) -> RuleBase:
        """Load and validate a rule base directory (default: the shipped rules)."""
        return _load(Path(directory) if directory is not None else default_rules_dir())

    @classmethod
    def default(cls) -> RuleBase:
        return cls.load(None)

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
            raise ValueError(f"engine option {first['loc'][0]}: {first['msg']}") from None
        out = replace(self, options=EngineOptions(**opts.model_dump(exclude={"format"})))
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
        """The SPEC section 4 compiled form (``fuzzyemo-rulebase/1``), lambdas applied."""
        o = self.options
        return {
            "format": "fuzzyemo-rulebase/1",
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
                 "rules": [{"id": r.id, "when": {c: v for c, v in r.conditions},
                            "then": r.then, "weight": r.weight, "source": r.source}
                           for r in e.rules]}
                for e in self.emotions
            ],
        }


def _mf_dict(name: str, mf: MembershipFunction, code: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if code is not None:
        out["code"] = code
    out["mf"] = mf.kind
    out["params"] = [round(float(p), 12) for p in mf.params]
    return out


# ----------------------------------------------------------------------------- locating
def default_rules_dir() -> Path:
    """The shipped rules: inside the installed wheel, else the checkout's top-level rules/."""
    env = os.environ.get("FUZZYEMO_RULES")
    if env:
        return Path(env)
    # A checkout (also an editable install) uses its live top-level rules/, so edits there
    # take effect at once; an installed wheel carries a copy as fuzzyemo/_rules.
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "rules" / "fcis.yaml").is_file():
        return root / "rules"
    packaged = resources.files("fuzzyemo") / "_rules"
    if packaged.is_dir():
        return Path(str(packaged))
    raise RuleBaseError([Problem("fuzzyemo/_rules", 1, 1,
                                 "the shipped rule base is missing from this installation",
                                 "reinstall fuzzyemo, or pass --rules DIR")])


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

    def __init__(self, shown: str, positions: Positions, sink: list[Problem]):
        self.shown, self.positions, self.sink = shown, positions, sink

    def add(self, loc: tuple, message: str, hint: str | None = None) -> None:
        line, col = position(self.positions, loc)
        self.sink.append(Problem(self.shown, line, col, message, hint))


def _parse(model: type[BaseModel], data: Any, col: _Collector) -> Any:
    if not isinstance(data, Mapping):
        col.add((), f"expected a mapping at the top of the file, got {type(data).__name__}")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic reports union members as extra loc parts ("int", "str"): drop them.
            loc = tuple(p for p in loc if p not in ("int", "str", "literal['exact']"))
            msg, hint = err["msg"], None
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


def _rule_conditions(rule, loc: tuple, col: _Collector) -> list[tuple[str, int]] | None:
    """Antecedent of a rule spec as (component, code) pairs, reporting problems."""
    pairs: list[tuple[str, Any, tuple]] = []
    ok = True
    if rule.coding is not None:
        try:
            symbols = parse_coding(rule.coding)
        except ValueError as exc:
            col.add((*loc, "coding"), str(exc), "e.g. '0010010(-1)(-1)(-1)(-1)(-1)'")
            return None
        pairs = [(c, v, (*loc, "coding")) for c, v in zip(COMPONENTS, symbols, strict=True)
                 if v is not None]
    elif rule.when is not None:
        pairs = [(c, v, (*loc, "when", c)) for c, v in rule.when.items()]
    else:
        text = rule.if_.strip()
        text = text[3:] if text.lower().startswith("if ") else text
        for part in re.split(r"\s+and\s+", text):
            m = _SENTENCE_PART.match(part)
            if not m:
                col.add((*loc, "if"), f"cannot read {part.strip()!r}",
                        "write '<component> is <term>' joined by 'and'")
                ok = False
                continue
            pairs.append((m.group(1), m.group(2), (*loc, "if")))
    out: dict[str, int] = {}
    for comp, value, at in pairs:
        if comp not in COMPONENT_TERMS:
            col.add(at, f"unknown component {comp!r}", did_you_mean(comp, COMPONENTS))
            ok = False
            continue
        domain = COMPONENT_TERMS[comp]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            col.add(at, f"{comp}: expected a term name or a code, got {value!r}")
            ok = False
            continue
        if isinstance(value, str):
            if value.lstrip("-").isdigit():
                value = int(value)
            elif value in domain.values():
                value = next(c for c, t in domain.items() if t == value)
            else:
                col.add(at, f"{comp} has no term {value!r}", did_you_mean(value, domain.values()))
                ok = False
                continue
        if value not in domain:
            col.add(at, f"code {value} is outside {comp}'s domain {sorted(domain)}",
                    "terms: " + ", ".join(f"{c}={t}" for c, t in domain.items()))
            ok = False
            continue
        if comp in out and out[comp] != value:
            col.add(at, f"{comp} is named twice with different terms")
            ok = False
        out[comp] = value
    if ok and not out:
        col.add(loc, "a rule must name at least one component (all are don't care)")
        return None
    return [(c, out[c]) for c in COMPONENTS if c in out] if ok else None


def _load_fkis(path: Path, shown: str, expected: str, sink: list[Problem], seen_ids: dict):
    data, positions = load_yaml(path, shown)
    col = _Collector(shown, positions, sink)
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
        conds = _rule_conditions(rspec, loc, col)
        if conds is None:
            continue
        rules.append(Rule(rspec.id, expected, tuple(conds), rspec.then, float(rspec.weight),
                          rspec.source.strip(), f"{shown}:{line}", rspec.note.strip()))
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
    if engine_path.is_file():
        files.append(engine_path)
        data, positions = load_yaml(engine_path, shown(engine_path))
        spec = _parse(EngineFile, data, _Collector(shown(engine_path), positions, problems))
        if spec is not None:
            options = EngineOptions(**spec.model_dump(exclude={"format"}))

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
            e = _load_fkis(p, shown(p), emotion, problems, seen_ids)
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
