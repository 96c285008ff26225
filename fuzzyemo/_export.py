"""Exports of a rule base: the SPEC JSON form, fuzzylite's FLL, and JSON Schemas.

* :func:`to_json` - SPEC section 4 (``fuzzyemo-rulebase/1``), the form other tools read.
* :func:`to_fll` - the FuzzyLite Language, so fuzzylite / jfuzzylite / pyfuzzylite /
  QtFuzzyLite run our rules. FLL holds SPEC steps 1-5 (memberships, rules, activations,
  centroid); the 18 scores, the labels and min_activation have no FLL construct, so they
  travel as ``#`` comments (see docs/exports.md).
* :func:`json_schema_files` - JSON Schemas of the three YAML file kinds, for editors.

All three are deterministic: the same rule base gives byte-identical text.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import write_text_atomic
from ._hedges import hedged_text
from ._membership import MembershipFunction
from ._schema import json_schemas
from ._version import __version__
from ._vocab import COMPONENT_TERMS, EMOTIONS, INTENSITIES

if TYPE_CHECKING:
    from ._rulebase import RuleBase

# scikit-fuzzy kinds -> fuzzylite terms; the parameter order is the same for all three
# (trimf [a,b,c] = Triangle a b c, trapmf [a,b,c,d] = Trapezoid a b c d,
# gaussmf [mean, sigma] = Gaussian mean sigma), and so is the shape, vertical sides included.
FLL_TERMS: dict[str, str] = {"trimf": "Triangle", "trapmf": "Trapezoid", "gaussmf": "Gaussian"}
# Our t-norm / implication names -> fuzzylite's TNorm classes.
FLL_TNORMS: dict[str, str] = {"min": "Minimum", "product": "AlgebraicProduct"}
FLL_DEFAULT_RESOLUTION = 10001

# Declared as draft-07: VS Code's YAML extension (yaml-language-server) implements draft-07
# and warns on 2020-12; pydantic's output uses only draft-07 keywords ($defs is reached
# through plain JSON-pointer $refs, which every draft resolves).
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
SCHEMA_FILES: dict[str, str] = {
    "fcis": "fcis.schema.json",
    "fkis": "fkis.schema.json",
    "engine": "engine.schema.json",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ----------------------------------------------------------------------------- JSON
def to_json(rulebase: RuleBase) -> str:
    """SPEC section 4 JSON of ``rulebase`` (lambdas applied), indent 2, trailing newline.

    Keys keep the SPEC's order (not sorted), so a diff of two exports reads like the SPEC.
    ASCII-only (non-ASCII escaped) so the bytes do not depend on a console's encoding.
    """
    return json.dumps(rulebase.to_dict(), indent=2, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------- FLL
def _num(x: float) -> str:
    """Shortest text that reads back as the same float (after the JSON's 12-decimal rounding)."""
    text = repr(round(float(x), 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text[:-2] if text.endswith(".0") else text


def _comment(text: str) -> str:
    """One comment line's text: FLL comments end at the newline, so fold whitespace."""
    return " ".join(str(text).split())


def _fll_term(name: str, mf: MembershipFunction) -> str:
    return f"  term: {name} {FLL_TERMS[mf.kind]} " + " ".join(_num(p) for p in mf.params)


def _check_identifier(name: str) -> str:
    # FLL identifiers are [A-Za-z0-9_.]; our vocabulary is fixed (SPEC), so this is a guard.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid FLL identifier")
    return name


def to_fll(rulebase: RuleBase, resolution: int = FLL_DEFAULT_RESOLUTION) -> str:
    """``rulebase`` in the FuzzyLite Language (fuzzylite 6+, pyfuzzylite 7+, jfuzzylite 6+).

    One Engine; 12 input variables (range -1 1, lock-range true: SPEC clips inputs); 6 output
    variables (range 0 1, terms low/medium/high, aggregation Maximum, defuzzifier Centroid
    ``resolution``, default nan); one rule block with conjunction and implication from the
    rule base (Minimum or AlgebraicProduct) and activation General. Each output variable's
    value is SPEC's eccentricity eps_e (nan where the emotion is not activated).
    """
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) \
            or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    resolution = int(resolution)
    o = rulebase.options
    for key, value in (("tnorm", o.tnorm), ("implication", o.implication)):
        if value not in FLL_TNORMS:
            raise ValueError(f"engine {key} {value!r} has no FLL equivalent "
                             f"(expected one of {', '.join(FLL_TNORMS)})")
    if o.aggregation != "max" or o.defuzzifier != "centroid":
        raise ValueError(f"FLL export supports aggregation max and defuzzifier centroid, got "
                         f"{o.aggregation} and {o.defuzzifier}")
    lam2 = rulebase.lambda_fkis
    lam2_text = _num(lam2) if lam2 is not None else ", ".join(
        f"{e.name} {_num(e.lambda_)}" for e in rulebase.emotions)

    lines = [
        "# fuzzyemo rule base in the FuzzyLite Language (FLL), for fuzzylite, jfuzzylite,",
        "# pyfuzzylite and QtFuzzyLite. Exported by fuzzyemo "
        f"{__version__} (`fuzzyemo rules export --format fll`); see docs/exports.md.",
        f"# rules_sha256: {rulebase.sha256}",
        "# format: fuzzyemo-rulebase/1 (the same rule base as JSON: --format json)",
        f"# lambda_fcis: {_num(rulebase.lambda_fcis)}   lambda_fkis: {lam2_text}"
        "   (already applied to every term below)",
        f"# engine: tnorm {o.tnorm}, implication {o.implication}, aggregation {o.aggregation},"
        f" defuzzifier {o.defuzzifier} (fuzzyemo resolution: {o.resolution};"
        f" here Centroid {resolution})",
        f"# min_activation: {_num(o.min_activation)}",
        "#",
        "# Each output variable e is SPEC's eccentricity eps_e: the centroid over [0, 1] of the",
        "# aggregated intensity set (nan where no rule of e fires). FLL cannot express the rest",
        "# of SPEC section 3 (steps 3, 6, 7); compute it from the engine after process():",
        "#   a_e = activation of e = max over e's rules of (weight * conjunction of its",
        "#         hedged terms)",
        "#         (pyfuzzylite: max(ov.fuzzy.activation_degree(t) for t in ov.terms))",
        "#   s[e][k] = a_e * nu_{e,k}(eps_e) for k = low, medium, high (0 where a_e = 0),",
        "#         nu_{e,k} = the membership function of output term k of e: the 18 scores",
        "#   class index = 3 * emotion_index + intensity_index, emotions in the order",
        f"#         {', '.join(EMOTIONS)}",
        "#   label = 'neutral' (-1) if max_e a_e < min_activation, else (SPEC rev. 2) the",
        "#         emotion e* with the largest a_e (ties: the lower emotion index) at the",
        "#         level k* = argmax_k nu_{e*,k}(eps_e*) (ties: the lower level); a row with a",
        "#         missing (NaN) component is 'unknown' (-2) with NaN scores.",
        "# fuzzylite skips rules whose activation is below its tolerance (1e-5 by default).",
        "",
        "Engine: fuzzyemo",
    ]
    for i, comp in enumerate(rulebase.components, 1):
        lines.append(f"InputVariable: {_check_identifier(comp.name)}")
        lines.append(f"  # component {i}: {_comment(comp.description)}" if comp.description
                     else f"  # component {i}")
        lines.append("  # terms (code): " + ", ".join(f"{t.name} ({t.code})" for t in comp.terms))
        lines += ["  enabled: true", "  range: -1 1", "  lock-range: true"]
        for t in comp.terms:
            lines.append(_fll_term(_check_identifier(t.name),
                                   rulebase.component_mf(comp.name, t.code)))
    for emo in rulebase.emotions:
        lines += [
            f"OutputVariable: {_check_identifier(emo.name)}",
            f"  # eccentricity of {emo.name} (lambda_fkis {_num(emo.lambda_)} applied)",
            "  enabled: true",
            "  range: 0 1",
            "  lock-range: false",
            "  aggregation: Maximum",
            f"  defuzzifier: Centroid {resolution}",
            "  default: nan",
            "  lock-previous: false",
        ]
        for level in INTENSITIES:
            lines.append(_fll_term(level, rulebase.intensity_mf(emo.name, level)))
    lines += [
        "RuleBlock: fuzzyemo",
        "  enabled: true",
        f"  conjunction: {FLL_TNORMS[o.tnorm]}",
        "  disjunction: none",
        f"  implication: {FLL_TNORMS[o.implication]}",
        "  activation: General",
    ]
    for emo in rulebase.emotions:
        for rule in emo.rules:
            lines.append(f"  # {rule.id} [{rule.coding}]: {_comment(rule.source)}")
            lines.append(f"  rule: {fll_rule(rule.terms, emo.name, rule.then, rule.weight)}")
    return "\n".join(lines) + "\n"


def fll_rule(conditions: Sequence[tuple[str, int] | tuple[str, int, Sequence[str]]],
             emotion: str, then: str, weight: float = 1.0) -> str:
    """One rule in FLL: ``if c1 is t1 and c2 is very t2 then emotion is level [with w]``.

    ``conditions`` are (component, code) pairs or (component, code, hedges) triples; hedges
    are written natively, fuzzylite's ``[hedge]* term`` (``mouth is not very open``), and a
    chain ending in ``any`` has no term (``mouth is any``)."""
    parts = []
    for cond in conditions:
        c, v, hedges = (*cond, ())[:3]
        parts.append(hedged_text(c, COMPONENT_TERMS[c][v], tuple(hedges)))
    antecedent = " and ".join(parts)
    text = f"if {antecedent} then {emotion} is {then}"
    # FLL's weight defaults to 1; writing it only when it differs keeps rules readable.
    return text if float(weight) == 1.0 else f"{text} with {_num(weight)}"


# ----------------------------------------------------------------------------- JSON Schema
def schema_texts() -> dict[str, str]:
    """File name -> deterministic JSON text of each rule-file schema (draft-07)."""
    out = {}
    for kind, schema in json_schemas().items():
        full: dict[str, Any] = {"$schema": SCHEMA_DIALECT}
        full.update({k: v for k, v in schema.items() if k != "$schema"})
        out[SCHEMA_FILES[kind]] = json.dumps(full, indent=2) + "\n"
    return out


def json_schema_files(directory: str | os.PathLike) -> list[Path]:
    """Write ``fcis.schema.json``, ``fkis.schema.json`` and ``engine.schema.json`` into
    ``directory`` (created if missing), each atomically; return the paths written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        path = directory / name
        write_text_atomic(path, text)
        written.append(path)
    return written



__all__ = ["fll_rule", "json_schema_files", "schema_texts", "to_fll", "to_json"]
