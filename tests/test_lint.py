"""Lint (fuzzyemo/_lint.py, `fuzzyemo rules check`): cross-emotion ties, rules that cannot
reach min_activation in a region of measurements, constant (hedged) conditions."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fuzzyemo import COMPONENTS, EMOTIONS, RuleBase
from fuzzyemo._lint import check_region, component_max, lint
from fuzzyemo.cli import app

SAMPLES = 2000  # the class-reachability probe is not what these tests are about


def add(rules: Path, emotion: str, rule_id: str, when: str, then: str = "low",
        weight: float = 0.55) -> int:
    """Append a rule; return its 1-based line (its '- id:' line, as rule locations say)."""
    path = rules / "fkis" / f"{emotion}.yaml"
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n"
    line = text.count("\n") + 1
    path.write_text(text + f"  - id: {rule_id}\n    when: {when}\n    then: {then}\n"
                    f"    weight: {weight}\n    source: \"lint test\"\n", encoding="utf-8")
    return line


def findings(rb: RuleBase, code: str, **kwargs) -> list:
    return [f for f in lint(rb, samples=SAMPLES, **kwargs).findings if f.code == code]


def test_shipped_profiles_have_no_new_findings():
    for name in ("paper", "facs"):
        report = lint(RuleBase.load(name), samples=SAMPLES)
        new = [f for f in report.findings
               if f.code in ("tie", "unreachable-rule", "constant", "never-fires")]
        assert not new, [str(f) for f in new]
        assert min(report.max_strength.values()) >= RuleBase.load(name).options.min_activation


# ------------------------------------------------------------------ (a) ties
def test_tie_subset_antecedent_equal_weights(rules_copy):
    line_a = add(rules_copy, "anger", "anger-tie", "{mouth: pressed, nose: wrinkled}")
    line_b = add(rules_copy, "disgust", "disgust-tie",
                 "{mouth: pressed, nose: wrinkled, upper_lip: very thick}")
    rb = RuleBase.load(rules_copy)
    (tie,) = findings(rb, "tie")
    text = str(tie)
    assert "'anger-tie'" in text and "'disgust-tie'" in text
    assert f"anger.yaml:{line_a}" in text and f"disgust.yaml:{line_b}" in text
    assert "equal weights 0.55" in text and "anger comes before disgust" in text
    # The tie is real: at the larger rule's prototype both fire at 0.55, anger wins by order.
    x = np.zeros((1, 12))
    for c, v in (("mouth", -1), ("nose", 1), ("upper_lip", 1)):
        x[0, COMPONENTS.index(c)] = v
    res = rb.compile(precision="double").evaluate(x, strengths=True)
    ids = [r.id for r in rb.rules]
    s = res.strengths[0, [ids.index("anger-tie"), ids.index("disgust-tie")]]
    assert s.tolist() == [0.55, 0.55]
    assert res.activations[0, EMOTIONS.index("anger")] == res.activations[
        0, EMOTIONS.index("disgust")]
    assert res.labels[0].startswith("anger_")


def test_tie_identical_hedged_antecedents_and_non_ties(rules_copy):
    add(rules_copy, "happiness", "happiness-tie", "{left_mouth_corner: [raised, not very raised]}")
    add(rules_copy, "fear", "fear-tie", "{left_mouth_corner: [raised, not very raised]}")
    # Not ties: different weights; hedges that differ ('very low' is not 'low').
    add(rules_copy, "anger", "anger-notie", "{right_mouth_corner: low, nostril: dilated}",
        weight=0.6)
    add(rules_copy, "sadness", "sadness-notie",
        "{right_mouth_corner: low, nostril: dilated, lower_lip: thin}", weight=0.5)
    add(rules_copy, "surprise", "surprise-notie", "{left_eye: very wide, nostril: dilated}")
    add(rules_copy, "fear", "fear-notie", "{left_eye: wide, nostril: dilated, mouth: open}")
    rb = RuleBase.load(rules_copy)
    ties = findings(rb, "tie")
    assert len(ties) == 1, [str(t) for t in ties]
    assert "the same antecedent" in str(ties[0]) and "'happiness-tie'" in str(ties[0])
    assert "happiness comes before fear" in str(ties[0])
    # Identical antecedents of different consequents are a conflict (an error) as well.
    assert any("happiness-tie" in str(f) for f in findings(rb, "conflict"))


def test_tie_below_min_activation_is_not_reported(rules_copy):
    add(rules_copy, "anger", "anger-faint", "{mouth: pressed, nose: wrinkled}", weight=0.05)
    add(rules_copy, "disgust", "disgust-faint", "{mouth: pressed, nose: wrinkled, "
        "upper_lip: thick}", weight=0.05)
    assert findings(RuleBase.load(rules_copy), "tie") == []


# ------------------------------------------------------------------ (b) unreachable rules
def test_component_max_is_exact():
    rb = RuleBase.load("paper")
    from fuzzyemo._rulebase import Condition

    slight = [Condition("left_mouth_corner", 1), Condition("left_mouth_corner", 1,
                                                           ("not", "very"))]
    best, at = component_max(rb, slight)
    assert best == pytest.approx((math.sqrt(5) - 1) / 2, abs=1e-9)  # r = 1 - r^2
    assert at == pytest.approx(0.15 + 0.45 * (math.sqrt(5) - 1) / 2, abs=1e-6)
    product = rb.with_options(tnorm="product")
    best, _ = component_max(product, slight)
    assert best == pytest.approx(2 / (3 * math.sqrt(3)), abs=1e-9)  # max r (1 - r^2)
    # An interval that cuts the term: raised at x = 0.2 is (0.2 - 0.15) / 0.45.
    best, at = component_max(rb, [Condition("left_mouth_corner", 1)], (-1.0, 0.2))
    assert (best, at) == (pytest.approx(1 / 9, abs=1e-12), pytest.approx(0.2))


def test_unreachable_rule_weight_and_region(rules_copy):
    line = add(rules_copy, "anger", "anger-weak", "{brow_crest: frowning, mouth: pressed}",
               weight=0.08)
    add(rules_copy, "happiness", "happiness-slight",
        "{left_mouth_corner: [raised, not very raised]}", weight=0.5)
    rb = RuleBase.load(rules_copy)
    report = lint(rb, samples=SAMPLES)
    weak = [f for f in report.findings if f.code == "unreachable-rule"]
    assert [f.location for f in weak] == [f"{rules_copy / 'fkis' / 'anger.yaml'}:{line}"]
    assert "fires at most 0.08" in str(weak[0]) and "below min_activation 0.1" in str(weak[0])
    assert report.max_strength["happiness-slight"] == pytest.approx(
        0.5 * (math.sqrt(5) - 1) / 2, abs=1e-9)
    # In a narrower region (e.g. what a calibration can produce) the slight smile cannot
    # reach min_activation: corners up to 0.2 give raised 1/9, so 0.5 / 9 = 0.0556.
    report = lint(rb, samples=SAMPLES, region={"left_mouth_corner": (-0.5, 0.2)})
    weak = {f.message.split("'")[1]: str(f) for f in report.findings
            if f.code == "unreachable-rule"}
    assert set(weak) >= {"anger-weak", "happiness-slight"}
    assert "fires at most 0.05556" in weak["happiness-slight"]
    assert "left_mouth_corner [-0.5, 0.2]" in weak["happiness-slight"]
    assert report.max_strength["happiness-slight"] == pytest.approx(0.5 / 9, abs=1e-9)
    assert report.region["left_mouth_corner"] == (-0.5, 0.2)
    assert report.region["mouth"] == (-1.0, 1.0)
    # Zero in the region only: a warning, not the never-fires error.
    report = lint(rb, samples=SAMPLES, region={"mouth": (-0.1, 0.1)})
    assert not report.errors
    assert any("'anger-weak'" in str(f) and "fires at most 0 " in str(f)
               for f in report.warnings)


def test_conditions_that_never_hold_together(rules_copy):
    line = add(rules_copy, "anger", "anger-never", "{mouth: [pressed, open]}", weight=0.9)
    (f,) = [f for f in lint(RuleBase.load(rules_copy), samples=SAMPLES).errors
            if f.code == "never-fires"]
    assert f.location.endswith(f"anger.yaml:{line}")
    assert "its conditions on mouth never hold together on [-1, 1]" in f.message


@pytest.mark.parametrize(("region", "message"), [
    ({"mouht": (0, 1)}, "unknown component 'mouht' (did you mean 'mouth'?)"),
    ({"mouth": (0.5, 0.2)}, "interval [lo, hi] within [-1, 1]"),
    ({"mouth": (-1.5, 0.2)}, "interval [lo, hi] within [-1, 1]"),
])
def test_region_is_validated(region, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_region(region)


# ------------------------------------------------------------------ (c) constant conditions
def test_constant_conditions(rules_copy):
    line_any = add(rules_copy, "anger", "anger-any", "{nose: any, mouth: pressed, "
                   "brow_crest: frowning, lower_lip: thick}")
    line_not = add(rules_copy, "fear", "fear-notany", "{nose: not any, mouth: open}")
    report = lint(RuleBase.load(rules_copy), samples=SAMPLES)
    constant = {f.location.rsplit(":", 1)[1]: f.message for f in report.findings
                if f.code == "constant"}
    assert set(constant) == {str(line_any), str(line_not)}
    assert "'nose is any' is 1 for every measurement: it does nothing" in constant[str(line_any)]
    assert "'nose is not any' is 0" in constant[str(line_not)]
    never = [f for f in report.errors if f.code == "never-fires"]
    assert [f.location.rsplit(":", 1)[1] for f in never] == [str(line_not)]


# ------------------------------------------------------------------ CLI
def test_rules_check_region_option(rules_copy):
    add(rules_copy, "happiness", "happiness-slight",
        "{left_mouth_corner: [raised, not very raised]}", weight=0.5)
    runner = CliRunner()
    result = runner.invoke(app, ["rules", "check", str(rules_copy), "--region",
                                 "left_mouth_corner=-0.5:0.2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # warnings only
    assert "[unreachable-rule]" in result.output and "happiness-slight" in result.output
    assert "region: left_mouth_corner [-0.5, 0.2]" in result.output
    assert runner.invoke(app, ["rules", "check", str(rules_copy), "--strict", "--region",
                               "left_mouth_corner=-0.5:0.2"]).exit_code == 1
    bad = runner.invoke(app, ["rules", "check", str(rules_copy), "--region", "mouth=0.2"])
    assert bad.exit_code == 2 and "expected COMPONENT=LO:HI" in bad.output
