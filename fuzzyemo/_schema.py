"""The rule-file schema: one pydantic model per file kind.

These models check structure and types (and give the JSON Schema for editors:
``fuzzyemo rules schema``); meaning (names, codes, shapes) is checked in ``_rulebase``,
which knows the SPEC's vocabulary and reports every problem with its file position.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal["low", "medium", "high"]
MFKind = Literal["trimf", "trapmf", "gaussmf"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MFSpec(_Strict):
    """A membership function in scikit-fuzzy's parameter order."""

    mf: MFKind = Field(description="trimf [a,b,c] | trapmf [a,b,c,d] | gaussmf [mean,sigma]")
    params: list[float] = Field(description="parameters, written at lambda_reference")


class TermSpec(MFSpec):
    """A linguistic term of a component: its SPEC code and its membership function."""

    code: int = Field(description="the SPEC code of this term (-1, 0 or 1)")


class ComponentSpec(_Strict):
    description: str = ""
    terms: dict[str, TermSpec]


class FcisFile(_Strict):
    """rules/fcis.yaml: the 12 facial components (FCIS, the paper's Table I and Fig. 2)."""

    format: Literal["fuzzyemo-fcis/1"]
    lambda_: float = Field(0.4, alias="lambda", gt=0, le=5,
                           description="lambda1, the FCIS membership range knob")
    lambda_reference: float = Field(0.4, gt=0, le=5,
                                    description="the lambda the params are written at")
    components: dict[str, ComponentSpec]


class RuleSpec(_Strict):
    """One FKIS rule. Give its antecedent in exactly one of ``when``, ``coding`` or ``if``."""

    id: str = Field(min_length=1)
    when: dict[str, int | str | list[int | str]] | None = Field(
        None, description="component: a term name or code, hedges allowed before a term name "
                          "('very raised', 'not very raised', 'any'), or a list of such "
                          "conditions on one component, ANDed: [raised, not very raised]")
    coding: str | None = Field(
        None, description="the paper's 12-symbol coding, '*' = don't care, e.g. "
                          "'0010010(-1)****(-1)' (crisp: no hedges)")
    if_: str | None = Field(
        None, alias="if", description="a sentence: 'brow_crest is frowning and mouth is pressed'; "
                                      "hedges go before a term: 'mouth is not very open'")
    graded: dict[str, str] | None = Field(
        None, description="component: term whose strength sets the intensity: the rule "
                          "stands for three rules, low, medium and high, each with these "
                          "conditions hedged as engine.yaml's `grading` says")
    then: Level | None = Field(None, description="low | medium | high (not with `graded`)")
    weight: float = Field(1.0, gt=0, le=1)
    source: str = Field(min_length=1, description="Table II row or the FACS prototype encoded")
    note: str = ""

    @model_validator(mode="after")
    def _one_antecedent(self) -> RuleSpec:
        given = [k for k in ("when", "coding", "if_") if getattr(self, k) is not None]
        if self.graded is not None:
            if self.coding is not None or len(given) > 1:
                raise ValueError("a graded rule takes its other conditions from 'when' or "
                                 "'if' (at most one of them), not from 'coding'")
            if self.then is not None:
                raise ValueError("a graded rule has no 'then': it stands for its low, medium "
                                 "and high rules")
            return self
        if len(given) != 1:
            raise ValueError("give the antecedent in exactly one of 'when', 'coding' or 'if'")
        if self.then is None:
            raise ValueError("missing 'then': low, medium or high (or use 'graded')")
        return self


class IntensitySpec(_Strict):
    low: MFSpec
    medium: MFSpec
    high: MFSpec


class FkisFile(_Strict):
    """rules/fkis/<emotion>.yaml: one emotion's intensity functions (Fig. 3) and rules."""

    format: Literal["fuzzyemo-fkis/1"]
    emotion: str
    lambda_: float = Field(0.4, alias="lambda", gt=0, le=5,
                           description="lambda2, the FKIS membership range knob")
    lambda_reference: float = Field(0.4, gt=0, le=5)
    intensity: IntensitySpec
    rules: list[RuleSpec] = Field(default_factory=list)


class GradingSpec(_Strict):
    """How a rule's ``graded`` conditions become its low, medium and high rules: per level,
    hedge chains each graded condition gets (ANDed), e.g. low: [somewhat, not] writes
    ``somewhat raised and not raised``. Hedges are fuzzylite's."""

    low: list[str] = Field(default_factory=lambda: list(DEFAULT_GRADING["low"]))
    medium: list[str] = Field(default_factory=lambda: list(DEFAULT_GRADING["medium"]))
    high: list[str] = Field(default_factory=lambda: list(DEFAULT_GRADING["high"]))


# The facs profile's ladder (docs/rules.md, "Graded rules"): on a term whose membership
# rises from 0 to 1 over the component's range, the same prototype at 30%, 60% and 100% of
# its strength reads low, medium and high.
DEFAULT_GRADING: dict[str, tuple[str, ...]] = {
    "low": ("somewhat", "not"),
    "medium": ("very", "not very very"),
    "high": ("very very",),
}


class EngineFile(_Strict):
    """rules/engine.yaml: inference options (SPEC section 3), overridable from the CLI."""

    format: Literal["fuzzyemo-engine/1"]
    tnorm: Literal["min", "product"] = "min"
    implication: Literal["min", "product"] = "min"
    aggregation: Literal["max"] = "max"
    defuzzifier: Literal["centroid"] = "centroid"
    resolution: Literal["exact"] | int = Field(
        "exact", description="'exact' centroid, or the number of grid points (>= 101)")
    min_activation: float = Field(0.1, ge=0, le=1)
    grading: GradingSpec | None = Field(
        None, description="the hedges that turn a graded rule into its low/medium/high rules")

    # A field validator (not a model one): its error carries the key, so a bad value is
    # reported at the line of `resolution:`, not at the top of engine.yaml.
    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 101:
            raise ValueError(f"must be 'exact' or an integer >= 101, got {value}")
        return value


def json_schemas() -> dict[str, dict]:
    """JSON Schemas for the three file kinds, for editors (yaml-language-server)."""
    return {
        "fcis": FcisFile.model_json_schema(by_alias=True),
        "fkis": FkisFile.model_json_schema(by_alias=True),
        "engine": EngineFile.model_json_schema(by_alias=True),
    }
